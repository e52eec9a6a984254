/* SPDX-License-Identifier: MIT */
/*
 * Writing tar streams by hand for the tests: well-formed members, and the
 * malformed ones no tar writer would produce (a header can be patched
 * before its checksum is computed).
 */
#ifndef LAMINA_TEST_TAR_BUILD_H
#define LAMINA_TEST_TAR_BUILD_H

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "support.h"

typedef struct tb {
	unsigned char *d;
	size_t len, cap;
} tb;

static inline void tb_init(tb *t)
{
	memset(t, 0, sizeof(*t));
}

static inline void tb_put(tb *t, const void *p, size_t n)
{
	if (t->len + n > t->cap) {
		t->cap = (t->len + n) * 2 + 4096;
		t->d = realloc(t->d, t->cap);
		ck_assert_ptr_nonnull(t->d);
	}
	memcpy(t->d + t->len, p, n);
	t->len += n;
}

static inline void tb_octal(unsigned char *f, size_t w, unsigned long long v)
{
	snprintf((char *)f, w, "%0*llo", (int)w - 1, v);
}

/* A ustar header; fix() may patch it before the checksum. */
static inline void tb_header(tb *t, const char *name, char type, unsigned mode,
			     unsigned long long size, const char *link,
			     void (*fix)(unsigned char *))
{
	unsigned char h[512];
	memset(h, 0, sizeof(h));
	strncpy((char *)h, name, 100);
	tb_octal(h + 100, 8, mode);
	tb_octal(h + 108, 8, 0);
	tb_octal(h + 116, 8, 0);
	tb_octal(h + 124, 12, size);
	tb_octal(h + 136, 12, 1600000000);
	h[156] = (unsigned char)type;
	if (link)
		strncpy((char *)h + 157, link, 100);
	memcpy(h + 257,
	       "ustar\0"
	       "00",
	       8);
	if (fix)
		fix(h);
	memset(h + 148, ' ', 8);
	unsigned sum = 0;
	for (int i = 0; i < 512; i++)
		sum += h[i];
	snprintf((char *)h + 148, 8, "%06o", sum);
	tb_put(t, h, 512);
}

static inline void tb_pad(tb *t)
{
	static const unsigned char z[512];
	size_t p = (512 - t->len % 512) % 512;
	tb_put(t, z, p);
}

static inline void tb_data(tb *t, const void *p, size_t n)
{
	tb_put(t, p, n);
	tb_pad(t);
}

static inline void tb_file(tb *t, const char *name, unsigned mode,
			   const char *data, size_t n)
{
	tb_header(t, name, '0', mode, n, NULL, NULL);
	tb_data(t, data, n);
}

static inline void tb_dir(tb *t, const char *name, unsigned mode)
{
	tb_header(t, name, '5', mode, 0, NULL, NULL);
}

static inline void tb_symlink(tb *t, const char *name, const char *target)
{
	tb_header(t, name, '2', 0777, 0, target, NULL);
}

static inline void tb_hardlink(tb *t, const char *name, const char *target)
{
	tb_header(t, name, '1', 0644, 0, target, NULL);
}

/* A PAX extended header holding the given records ("key=value" each). */
static inline void tb_pax(tb *t, const char *const *recs, size_t n)
{
	char body[8192];
	size_t bl = 0;
	for (size_t i = 0; i < n; i++) {
		size_t base = strlen(recs[i]) + 2, len = base + 1;
		while ((size_t)snprintf(NULL, 0, "%zu", len) + base != len)
			len = base + (size_t)snprintf(NULL, 0, "%zu", len);
		bl += (size_t)snprintf(body + bl, sizeof(body) - bl, "%zu %s\n",
				       len, recs[i]);
	}
	tb_header(t, "PaxHeaders/x", 'x', 0644, bl, NULL, NULL);
	tb_data(t, body, bl);
}

static inline void tb_end(tb *t)
{
	static const unsigned char z[1024];
	tb_put(t, z, sizeof(z));
}

/* A failed import leaves no staging folder in the store's tmp/. */
static inline void tb_assert_tmp_empty(const char *store_path)
{
	char cmd[8400];
	snprintf(cmd, sizeof(cmd), "test -z \"$(ls -A '%s/tmp')\"", store_path);
	ck_assert_msg(lt_run(cmd) == 0, "%s/tmp is not empty", store_path);
}

/* The stream in a file, open for reading at its start. */
static inline int tb_fd(const tb *t)
{
	char path[4200];
	snprintf(path, sizeof(path), "%s/stream-XXXXXX", lt_dir);
	int fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	unlink(path);
	ck_assert_int_eq(write(fd, t->d, t->len), (ssize_t)t->len);
	lseek(fd, 0, SEEK_SET);
	return fd;
}

static inline int tb_import(const tb *t, lam_store *s, lam_layer *parent,
			    const lam_tar_import_options *o, lam_layer **out)
{
	int fd = tb_fd(t);
	int rc = lam_layer_import_tar(out, s, fd, parent, o);
	close(fd);
	return rc;
}

static inline lam_layer *tb_import_ok(tb *t, lam_store *s, lam_layer *parent,
				      const lam_tar_import_options *o)
{
	lam_layer *l = NULL;
	LT_OK(tb_import(t, s, parent, o, &l));
	free(t->d);
	t->d = NULL;
	return l;
}

/* True when the library was built without OCI support. */
static inline bool lt_archive_missing(void)
{
	lam_layer *l = NULL;
	return lam_layer_import_tar(&l, NULL, -1, NULL, NULL) == LAM_ENOTSUP;
}

#endif
