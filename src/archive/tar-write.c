/* SPDX-License-Identifier: MIT */
/*
 * lam_layer_export_tar(): a layer's own delta as an OCI layer tar stream.
 *
 * The output depends on the layer's content alone: entries in index order
 * (paths sorted, a folder before what it holds), ustar headers with PAX
 * records only where ustar cannot hold a value (long paths and targets,
 * big sizes and ids, sub-second mtimes, xattrs as SCHILY.xattr.*), numeric
 * owners with empty owner names, no access or change times, and a fixed
 * name for each PAX header. Whiteouts become `.wh.<name>`, an opaque
 * folder is followed by its `.wh..wh..opq`, and the later members of a
 * hard-link group link to the first one in path order.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "archive/internal.h"

#define BLOCK	    512
#define OCTAL7_MAX  07777777ull
#define OCTAL11_MAX 077777777777ull
#define COPY_CHUNK  (1u << 20)

typedef struct member {
	const char *name;
	size_t name_len;
	char type;
	uint32_t mode;
	uint32_t uid, gid;
	int64_t mtime_sec;
	uint32_t mtime_nsec;
	uint64_t size;
	const char *link;
	size_t link_len;
	uint32_t major, minor;
	const char *xattrs;
	uint32_t xattrs_len;
} member;

static void octal(unsigned char *f, size_t width, uint64_t v)
{
	/* width - 1 digits and a NUL. */
	f[width - 1] = '\0';
	for (size_t i = width - 1; i > 0; i--) {
		f[i - 1] = (unsigned char)('0' + (v & 7));
		v >>= 3;
	}
}

static int pax_add(lam__buf *b, const char *key, const char *val, size_t vlen)
{
	/* "LEN KEY=VALUE\n", LEN counting its own digits. */
	size_t base = strlen(key) + vlen + 3;
	size_t len = base + 1;
	for (;;) {
		char d[24];
		size_t dl = (size_t)snprintf(d, sizeof(d), "%zu", len);
		if (base + dl == len)
			break;
		len = base + dl;
	}
	int rc = lam__buf_printf(b, "%zu %s=", len, key);
	if (rc == 0)
		rc = lam__buf_add(b, val, vlen);
	if (rc == 0)
		rc = lam__buf_add(b, "\n", 1);
	return rc;
}

static int pax_num(lam__buf *b, const char *key, uint64_t v)
{
	char d[24];
	int n = snprintf(d, sizeof(d), "%llu", (unsigned long long)v);
	return pax_add(b, key, d, (size_t)n);
}

static void header(unsigned char h[BLOCK], const char *name, size_t nl,
		   char type, uint32_t mode, uint64_t uid, uint64_t gid,
		   uint64_t size, uint64_t mtime, const char *link, size_t ll,
		   uint32_t major, uint32_t minor)
{
	memset(h, 0, BLOCK);
	memcpy(h, name, nl > 100 ? 100 : nl);
	octal(h + 100, 8, mode);
	octal(h + 108, 8, uid);
	octal(h + 116, 8, gid);
	octal(h + 124, 12, size);
	octal(h + 136, 12, mtime);
	h[156] = (unsigned char)type;
	if (link)
		memcpy(h + 157, link, ll > 100 ? 100 : ll);
	memcpy(h + 257,
	       "ustar\0"
	       "00",
	       8);
	octal(h + 329, 8, major);
	octal(h + 337, 8, minor);
	memset(h + 148, ' ', 8);
	unsigned int sum = 0;
	for (int i = 0; i < BLOCK; i++)
		sum += h[i];
	octal(h + 148, 7, sum);
	h[155] = ' ';
}

static const unsigned char zeros[BLOCK];

static int pad(lam__tout *t, uint64_t size)
{
	size_t p = (size_t)((BLOCK - size % BLOCK) % BLOCK);
	return p ? lam__tout_write(t, zeros, p) : 0;
}

static int write_member(lam__tout *t, lam__buf *pax, const member *m)
{
	pax->len = 0;
	int rc = 0;
	if (m->name_len > 100)
		rc = pax_add(pax, "path", m->name, m->name_len);
	if (rc == 0 && m->link_len > 100)
		rc = pax_add(pax, "linkpath", m->link, m->link_len);
	if (rc == 0 && m->size > OCTAL11_MAX)
		rc = pax_num(pax, "size", m->size);
	if (rc == 0 && m->uid > OCTAL7_MAX)
		rc = pax_num(pax, "uid", m->uid);
	if (rc == 0 && m->gid > OCTAL7_MAX)
		rc = pax_num(pax, "gid", m->gid);
	if (rc == 0 && m->major > OCTAL7_MAX)
		rc = pax_num(pax, "SCHILY.devmajor", m->major);
	if (rc == 0 && m->minor > OCTAL7_MAX)
		rc = pax_num(pax, "SCHILY.devminor", m->minor);
	bool time_pax = m->mtime_nsec != 0 || m->mtime_sec < 0 ||
			(uint64_t)m->mtime_sec > OCTAL11_MAX;
	if (rc == 0 && time_pax) {
		char d[48];
		int64_t sec = m->mtime_sec;
		uint32_t ns = m->mtime_nsec;
		int n;
		if (sec < 0 && ns != 0) {
			/* -2 s + 0.75 s is written -1.25. */
			sec += 1;
			ns = 1000000000u - ns;
			n = snprintf(d, sizeof(d), "-%lld.%09u",
				     (long long)-sec, ns);
		} else if (ns != 0) {
			n = snprintf(d, sizeof(d), "%lld.%09u", (long long)sec,
				     ns);
		} else {
			n = snprintf(d, sizeof(d), "%lld", (long long)sec);
		}
		while (ns != 0 && d[n - 1] == '0')
			n--;
		rc = pax_add(pax, "mtime", d, (size_t)n);
	}
	uint32_t off = 0;
	lam__xattr x;
	while (rc == 0 &&
	       lam__xattr_next(m->xattrs, m->xattrs_len, &off, &x) == 1) {
		char key[13 + 256];
		if (x.name_len > 255)
			continue;
		memcpy(key, "SCHILY.xattr.", 13);
		memcpy(key + 13, x.name, x.name_len);
		key[13 + x.name_len] = '\0';
		rc = pax_add(pax, key, x.value, x.value_len);
	}
	if (rc < 0)
		return rc;
	unsigned char h[BLOCK];
	if (pax->len > 0) {
		char pname[100];
		const char *base = m->name;
		size_t bl = m->name_len;
		while (bl > 0 && base[bl - 1] == '/')
			bl--;
		for (size_t i = bl; i > 0; i--) {
			if (base[i - 1] == '/') {
				base += i;
				bl -= i;
				break;
			}
		}
		if (bl > 80)
			bl = 80;
		int n = snprintf(pname, sizeof(pname), "PaxHeaders/%.*s",
				 (int)bl, base);
		header(h, pname, (size_t)n, 'x', 0644, 0, 0, pax->len, 0, NULL,
		       0, 0, 0);
		rc = lam__tout_write(t, h, BLOCK);
		if (rc == 0)
			rc = lam__tout_write(t, pax->data, pax->len);
		if (rc == 0)
			rc = pad(t, pax->len);
		if (rc != 0)
			return rc;
	}
	uint64_t mt = time_pax ? (m->mtime_sec < 0 ? 0 :
				  (uint64_t)m->mtime_sec > OCTAL11_MAX ?
						     OCTAL11_MAX :
						     (uint64_t)m->mtime_sec) :
				 (uint64_t)m->mtime_sec;
	header(h, m->name, m->name_len, m->type, m->mode & 07777,
	       m->uid > OCTAL7_MAX ? 0 : m->uid,
	       m->gid > OCTAL7_MAX ? 0 : m->gid,
	       m->size > OCTAL11_MAX ? 0 : m->size, mt, m->link, m->link_len,
	       m->major > OCTAL7_MAX ? 0 : m->major,
	       m->minor > OCTAL7_MAX ? 0 : m->minor);
	return lam__tout_write(t, h, BLOCK);
}

static int copy_object(lam__tout *t, lam_store *s, const lam__entry *e,
		       char *buf)
{
	int fd = lam__object_open(s, &e->obj);
	if (fd < 0)
		return lam__error_prefix(fd, "exporting %.*s", (int)e->path_len,
					 e->path);
	uint64_t left = e->size;
	int rc = 0;
	while (left > 0) {
		size_t want = left < COPY_CHUNK ? (size_t)left : COPY_CHUNK;
		size_t got = 0;
		int r = lam__read_all(fd, buf, want, &got);
		if (r < 0) {
			rc = lam__error_errno(-r, "reading content of %.*s",
					      (int)e->path_len, e->path);
			break;
		}
		if (got != want) {
			rc = lam__error(LAM_ECORRUPT,
					"content of %.*s is shorter than its "
					"size",
					(int)e->path_len, e->path);
			break;
		}
		rc = lam__tout_write(t, buf, got);
		if (rc != 0)
			break;
		left -= got;
	}
	close(fd);
	if (rc == 0)
		rc = pad(t, e->size);
	return rc;
}

static int export_entries(lam__tout *t, lam_layer *layer, const lam__index *idx,
			  lam__buf *name, lam__buf *pax, char *buf)
{
	uint32_t maxg = 0;
	for (uint64_t i = 0; i < idx->count; i++) {
		lam__entry e;
		lam__index_get(idx, i, &e);
		if (e.link_group > maxg)
			maxg = e.link_group;
	}
	uint64_t *first = lam__calloc((size_t)maxg + 1, sizeof(*first));
	if (first == NULL)
		return lam__error(LAM_ENOMEM, "out of memory");
	int rc = 0;
	for (uint64_t i = 0; rc == 0 && i < idx->count; i++) {
		lam__entry e;
		lam__index_get(idx, i, &e);
		member m;
		memset(&m, 0, sizeof(m));
		m.mode = e.mode;
		m.uid = e.uid;
		m.gid = e.gid;
		m.mtime_sec = e.mtime_sec;
		m.mtime_nsec = e.mtime_nsec;
		m.xattrs = e.xattrs;
		m.xattrs_len = e.xattrs_len;
		name->len = 0;
		size_t pl = 0;
		for (size_t k = e.path_len; k > 0; k--) {
			if (e.path[k - 1] == '/') {
				pl = k;
				break;
			}
		}
		if (e.flags & LAM__E_WHITEOUT) {
			rc = lam__buf_add(name, e.path, pl);
			if (rc == 0)
				rc = lam__buf_add(name, ".wh.", 4);
			if (rc == 0)
				rc = lam__buf_add(name, e.path + pl,
						  e.path_len - pl);
			m.type = '0';
			m.xattrs = NULL;
			m.xattrs_len = 0;
		} else if (S_ISDIR(e.mode)) {
			rc = e.path_len ?
				     lam__buf_add(name, e.path, e.path_len) :
				     lam__buf_add(name, ".", 1);
			if (rc == 0)
				rc = lam__buf_add(name, "/", 1);
			m.type = '5';
		} else {
			rc = lam__buf_add(name, e.path, e.path_len);
			if (e.link_group != 0 && first[e.link_group] != 0) {
				lam__entry f;
				lam__index_get(idx, first[e.link_group] - 1,
					       &f);
				m.type = '1';
				m.link = f.path;
				m.link_len = f.path_len;
			} else {
				if (e.link_group != 0)
					first[e.link_group] = i + 1;
				if (S_ISREG(e.mode)) {
					m.type = '0';
					m.size = e.size;
				} else if (S_ISLNK(e.mode)) {
					m.type = '2';
					m.link = e.target;
					m.link_len = e.target_len;
				} else if (S_ISCHR(e.mode) || S_ISBLK(e.mode)) {
					m.type = S_ISCHR(e.mode) ? '3' : '4';
					m.major = major((dev_t)e.rdev);
					m.minor = minor((dev_t)e.rdev);
				} else if (S_ISFIFO(e.mode)) {
					m.type = '6';
				} else {
					continue; /* sockets: never stored */
				}
			}
		}
		if (rc < 0)
			break;
		m.name = name->data;
		m.name_len = name->len;
		rc = write_member(t, pax, &m);
		if (rc == 0 && m.type == '0' && m.size > 0)
			rc = copy_object(t, layer->store, &e, buf);
		if (rc == 0 && S_ISDIR(e.mode) && (e.flags & LAM__E_OPAQUE)) {
			/* The marker sits right after its folder. */
			member o;
			memset(&o, 0, sizeof(o));
			name->len = 0;
			rc = lam__buf_add(name, e.path, e.path_len);
			if (rc == 0)
				rc = lam__buf_puts(
					name, e.path_len ? "/.wh..wh..opq" :
							   ".wh..wh..opq");
			o.name = name->data;
			o.name_len = name->len;
			o.type = '0';
			o.uid = e.uid;
			o.gid = e.gid;
			o.mtime_sec = e.mtime_sec;
			o.mtime_nsec = e.mtime_nsec;
			if (rc == 0)
				rc = write_member(t, pax, &o);
		}
	}
	lam__free(first);
	if (rc == 0) {
		unsigned char end[2 * BLOCK];
		memset(end, 0, sizeof(end));
		rc = lam__tout_write(t, end, sizeof(end));
	}
	return rc;
}

int lam_layer_export_tar(lam_layer *layer, int fd,
			 const lam_tar_options *options,
			 char out_diff_id[LAM_OCI_DIGEST_SIZE],
			 char out_digest[LAM_OCI_DIGEST_SIZE])
{
	lam__error_reset();
	if (out_diff_id)
		out_diff_id[0] = '\0';
	if (out_digest)
		out_digest[0] = '\0';
	if (layer == NULL || fd < 0)
		return lam__error(LAM_EINVAL,
				  "lam_layer_export_tar: bad argument");
	if (options != NULL && options->version != LAM_TAR_OPTIONS_VERSION)
		return lam__error(LAM_EINVAL, "unknown tar options version");
	const lam__index *idx;
	int rc = lam__layer_index(layer, &idx);
	if (rc < 0)
		return rc;
	lam__tout t;
	lam__buf name = {0}, pax = {0};
	char *buf = lam__malloc(COPY_CHUNK);
	rc = buf ? 0 : lam__error(LAM_ENOMEM, "out of memory");
	if (rc == 0)
		rc = lam__tout_open(&t, fd,
				    options ? (int)options->compression : 0,
				    options ? options->level : 0,
				    options ? options->progress : NULL,
				    options ? options->userdata : NULL);
	else
		memset(&t, 0, sizeof(t));
	t.expect = layer->rec.size;
	if (rc == 0)
		rc = export_entries(&t, layer, idx, &name, &pax, buf);
	if (rc == 0)
		rc = lam__tout_finish(&t, out_diff_id, out_digest);
	if (rc != 0) {
		if (out_diff_id)
			out_diff_id[0] = '\0';
		if (out_digest)
			out_digest[0] = '\0';
		if (rc < 0)
			lam__error_prefix(rc, "exporting layer %s",
					  layer->rec.id);
	}
	lam__tout_close(&t);
	lam__buf_free(&name);
	lam__buf_free(&pax);
	lam__free(buf);
	return rc;
}
