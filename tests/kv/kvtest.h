/* SPDX-License-Identifier: MIT */
/*
 * Helpers the key/value suites share: views over a fresh store, commits,
 * and short ways to read and write values.
 */
#ifndef LAMINA_TEST_KV_H
#define LAMINA_TEST_KV_H

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kv/internal.h"
#include "support.h"

/* A view over base (NULL: over nothing). */
static inline lam_view *kt_view(lam_layer *base)
{
	lam_view *v;
	LT_OK(lam_view_create(&v, lt_store, base, NULL));
	return v;
}

static inline void kt_view_free(lam_view *v)
{
	lam_view_free(v);
}

/* Reopen a stored view by its id (the old handle is freed). */
static inline lam_view *kt_reopen(lam_view *v)
{
	char id[37];
	lam_view *n;
	snprintf(id, sizeof(id), "%s", lam_view_id(v));
	kt_view_free(v);
	LT_OK(lam_view_open(&n, lt_store, id, NULL));
	return n;
}

/* Commit the view and return the new layer (the caller frees it). Each
 * commit also writes a file of its own, so that no two commits make the
 * same layer. */
static inline lam_layer *kt_commit(lam_view *v)
{
	static unsigned int n;
	char name[64], body[64];
	lam_view_file *f;
	lam_layer *l;
	size_t w;

	snprintf(name, sizeof(name), "/kt-commit-%u", n);
	snprintf(body, sizeof(body), "%u %d", n++, (int)getpid());
	LT_OK(lam_view_file_open(&f, v, name, O_CREAT | O_WRONLY | O_TRUNC,
				 0644));
	LT_OK(lam_view_file_write(f, body, strlen(body), &w));
	LT_OK(lam_view_file_close(f));
	LT_OK(lam_view_commit(v, &l, NULL));
	return l;
}

static inline lam_key *kt_create(lam_view *v, const char *path)
{
	lam_key *k;
	LT_OK(lam_key_create(&k, v, path, 0, NULL));
	return k;
}

static inline void kt_set_sz(lam_view *v, const char *path, const char *name,
			     const char *s)
{
	LT_OK(lam_kv_set_value(v, path, name, LAM_KV_SZ, s, strlen(s) + 1));
}

static inline void kt_set_dword(lam_view *v, const char *path, const char *name,
				uint32_t d)
{
	unsigned char le[4] = {(unsigned char)d, (unsigned char)(d >> 8),
			       (unsigned char)(d >> 16),
			       (unsigned char)(d >> 24)};
	LT_OK(lam_kv_set_value(v, path, name, LAM_KV_DWORD, le, 4));
}

/* A string value, or NULL when it is missing (malloc'd, caller frees). */
static inline char *kt_get_sz(lam_view *v, const char *path, const char *name)
{
	char buf[4096];
	size_t need = 0;
	uint32_t type = 0;
	int rc =
		lam_kv_get_value(v, path, name, &type, buf, sizeof(buf), &need);
	if (rc == LAM_ENOTFOUND)
		return NULL;
	ck_assert_msg(rc == 0, "get %s:%s: %s", path, name,
		      lam_error_last()->message);
	ck_assert_msg(type == LAM_KV_SZ, "%s:%s is type %u", path, name, type);
	return strdup(buf);
}

static inline void kt_assert_sz(lam_view *v, const char *path, const char *name,
				const char *want)
{
	char *got = kt_get_sz(v, path, name);
	if (want == NULL)
		ck_assert_msg(got == NULL, "%s:%s is \"%s\", expected none",
			      path, name, got);
	else
		ck_assert_msg(got && strcmp(got, want) == 0,
			      "%s:%s is \"%s\", expected \"%s\"", path, name,
			      got ? got : "(none)", want);
	free(got);
}

static inline bool kt_key_exists(lam_view *v, const char *path)
{
	lam_key *k;
	int rc = lam_key_open(&k, v, path, 0);
	lam_key_free(k);
	return rc == 0;
}

/* Subkey names of a key, joined with ',' (malloc'd). */
static inline char *kt_subkeys(lam_key *k)
{
	lam_key_subkey_iter *it;
	const char *name;
	char *out = calloc(1, 1);
	size_t len = 0;
	int rc;

	LT_OK(lam_key_subkey_iter_new(&it, k));
	while ((rc = lam_key_subkey_iter_next(it, &name)) == 0) {
		size_t n = strlen(name);
		out = realloc(out, len + n + 2);
		if (len)
			out[len++] = ',';
		memcpy(out + len, name, n + 1);
		len += n;
	}
	ck_assert_int_eq(rc, LAM_ITEROVER);
	lam_key_subkey_iter_free(it);
	return out;
}

/* Value names of a key, joined with ',' (malloc'd). */
static inline char *kt_values(lam_key *k)
{
	lam_key_value_iter *it;
	lam_kv_value val;
	char *out = calloc(1, 1);
	size_t len = 0;
	int rc;

	LT_OK(lam_key_value_iter_new(&it, k));
	bool first = true;
	while ((rc = lam_key_value_iter_next(it, &val)) == 0) {
		size_t n = strlen(val.name);
		out = realloc(out, len + n + 2);
		if (!first)
			out[len++] = ',';
		first = false;
		memcpy(out + len, val.name, n + 1);
		len += n;
	}
	ck_assert_int_eq(rc, LAM_ITEROVER);
	lam_key_value_iter_free(it);
	return out;
}

static inline void kt_assert_str(char *got, const char *want)
{
	ck_assert_msg(strcmp(got, want) == 0, "got \"%s\", expected \"%s\"",
		      got, want);
	free(got);
}

#endif
