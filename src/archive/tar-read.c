/* SPDX-License-Identifier: MIT */
/*
 * A strict tar reader: POSIX ustar, PAX extended headers ('x'; 'g' is read
 * and ignored) and GNU long names ('L', 'K'). Anything it cannot read
 * exactly is refused with the offset of the header at fault: a bad
 * checksum, a malformed number, a negative or out-of-range size, a PAX
 * size that disagrees with the header's, a stream that ends early.
 */
#include <endian.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "archive/internal.h"

#define BLOCK	      512
#define MAX_EXT	      (8u << 20) /* PAX headers (xattrs included) */
#define MAX_LONGNAME  (PATH_MAX * 2)
#define OCTAL11_MAX   077777777777ull
#define XATTR_VAL_MAX 65536

typedef struct ext {
	bool has_path, has_link, has_size, has_uid, has_gid, has_mtime;
	bool has_major, has_minor;
	uint64_t size, uid, gid, major, minor;
	int64_t mtime_sec;
	uint32_t mtime_nsec;
} ext;

static int bad(lam__tar_reader *r, uint64_t at, const char *what)
{
	return lam__error(LAM_ECORRUPT, "tar header at offset %llu: %s",
			  (unsigned long long)at, what);
}

static int read_exact(lam__tar_reader *r, void *buf, size_t len, uint64_t at,
		      const char *what)
{
	size_t got = 0;
	int rc = lam__tin_read(r->in, buf, len, &got);
	if (rc != 0)
		return rc;
	r->pos += got;
	if (got != len)
		return lam__error(LAM_ECORRUPT,
				  "truncated stream: %s at offset %llu ends "
				  "early",
				  what, (unsigned long long)at);
	return 0;
}

static int skip_exact(lam__tar_reader *r, uint64_t len, uint64_t at)
{
	uint64_t got = 0;
	int rc = lam__tin_skip(r->in, len, &got);
	if (rc != 0)
		return rc;
	r->pos += got;
	if (got != len)
		return lam__error(LAM_ECORRUPT,
				  "truncated stream: entry at offset %llu "
				  "ends early",
				  (unsigned long long)at);
	return 0;
}

/* A numeric field: octal (space or NUL terminated, leading spaces), or
 * base-256 (first byte 0x80; 0xff, negative, is refused). */
static int parse_num(lam__tar_reader *r, uint64_t at, const unsigned char *f,
		     size_t len, uint64_t *out, const char *field)
{
	char msg[96];
	*out = 0;
	if (f[0] & 0x80) {
		if (f[0] != 0x80) {
			snprintf(msg, sizeof(msg),
				 "negative base-256 number in %s", field);
			return bad(r, at, msg);
		}
		uint64_t v = 0;
		for (size_t i = 1; i < len; i++) {
			if (v >> 55) {
				snprintf(msg, sizeof(msg),
					 "base-256 number out of range in %s",
					 field);
				return bad(r, at, msg);
			}
			v = v << 8 | f[i];
		}
		if (v > INT64_MAX) {
			snprintf(msg, sizeof(msg),
				 "base-256 number out of range in %s", field);
			return bad(r, at, msg);
		}
		*out = v;
		return 0;
	}
	size_t i = 0;
	while (i < len && f[i] == ' ')
		i++;
	uint64_t v = 0;
	for (; i < len && f[i] != ' ' && f[i] != '\0'; i++) {
		if (f[i] < '0' || f[i] > '7') {
			snprintf(msg, sizeof(msg), "bad number in %s", field);
			return bad(r, at, msg);
		}
		v = v * 8 + (uint64_t)(f[i] - '0');
	}
	for (; i < len; i++) {
		if (f[i] != ' ' && f[i] != '\0') {
			snprintf(msg, sizeof(msg), "bad number in %s", field);
			return bad(r, at, msg);
		}
	}
	*out = v;
	return 0;
}

static bool all_zero(const unsigned char *b)
{
	for (int i = 0; i < BLOCK; i++)
		if (b[i] != 0)
			return false;
	return true;
}

static bool checksum_ok(const unsigned char *b, uint64_t want)
{
	uint64_t u = 0;
	int64_t s = 0;
	for (int i = 0; i < BLOCK; i++) {
		unsigned char c = (i >= 148 && i < 156) ? ' ' : b[i];
		u += c;
		s += (signed char)c;
	}
	return u == want || (uint64_t)s == want;
}

static int set_str(lam__buf *b, const char *s, size_t len)
{
	b->len = 0;
	int rc = lam__buf_grow(b, len + 1);
	if (rc < 0)
		return rc;
	memcpy(b->data, s, len);
	b->data[len] = '\0';
	b->len = len;
	return 0;
}

static int field_str(lam__buf *b, const unsigned char *f, size_t max)
{
	size_t n = strnlen((const char *)f, max);
	return set_str(b, (const char *)f, n);
}

static int parse_dec(const char *v, size_t len, uint64_t *out)
{
	if (len == 0 || len > 20)
		return -1;
	uint64_t x = 0;
	for (size_t i = 0; i < len; i++) {
		if (v[i] < '0' || v[i] > '9')
			return -1;
		uint64_t d = (uint64_t)(v[i] - '0');
		if (x > (UINT64_MAX - d) / 10)
			return -1;
		x = x * 10 + d;
	}
	*out = x;
	return 0;
}

static int parse_time(const char *v, size_t len, int64_t *sec, uint32_t *nsec)
{
	bool neg = len > 0 && v[0] == '-';
	size_t i = neg ? 1 : 0;
	size_t dot = i;
	while (dot < len && v[dot] != '.')
		dot++;
	uint64_t s;
	if (parse_dec(v + i, dot - i, &s) < 0 || s > INT64_MAX)
		return -1;
	uint32_t ns = 0;
	if (dot < len) {
		size_t k = 0;
		for (size_t j = dot + 1; j < len; j++, k++) {
			if (v[j] < '0' || v[j] > '9')
				return -1;
			if (k < 9)
				ns = ns * 10 + (uint32_t)(v[j] - '0');
		}
		if (k == 0)
			return -1;
		for (; k < 9; k++)
			ns *= 10;
	}
	if (neg) {
		/* -1.25 is 1.25 s before the epoch: -2 s + 0.75 s. */
		*sec = -(int64_t)s - (ns ? 1 : 0);
		*nsec = ns ? 1000000000u - ns : 0;
	} else {
		*sec = (int64_t)s;
		*nsec = ns;
	}
	return 0;
}

static int add_xattr(lam__tar_reader *r, uint64_t at, lam__tar_hdr *h,
		     const char *name, size_t nl, const char *val, size_t vl)
{
	if (nl == 0 || nl > 255 || memchr(name, '\0', nl))
		return bad(r, at, "bad xattr name in PAX header");
	if (vl > XATTR_VAL_MAX)
		return bad(r, at, "xattr value over 64 KiB in PAX header");
	uint32_t off = 0;
	lam__xattr x;
	while (lam__xattr_next(h->xattrs.data, (uint32_t)h->xattrs.len, &off,
			       &x) == 1) {
		if (x.name_len == nl && memcmp(x.name, name, nl) == 0)
			return bad(r, at, "xattr given twice");
	}
	return lam__xattr_append(&h->xattrs, name, (uint32_t)nl, val,
				 (uint32_t)vl);
}

/* Records "LEN KEY=VALUE\n" of a PAX extended header. */
static int parse_pax(lam__tar_reader *r, uint64_t at, lam__tar_hdr *h, ext *x,
		     const char *p, size_t len)
{
	size_t off = 0;
	while (off < len) {
		size_t sp = off;
		while (sp < len && p[sp] != ' ')
			sp++;
		uint64_t rl;
		if (sp >= len || parse_dec(p + off, sp - off, &rl) < 0 ||
		    rl < 5 || rl > len - off || p[off + rl - 1] != '\n')
			return bad(r, at, "malformed PAX record");
		const char *key = p + sp + 1;
		const char *end = p + off + rl - 1;
		const char *eq = memchr(key, '=', (size_t)(end - key));
		if (eq == NULL || eq == key)
			return bad(r, at, "malformed PAX record");
		size_t kl = (size_t)(eq - key);
		const char *v = eq + 1;
		size_t vl = (size_t)(end - v);
		int rc = 0;
#define KEY(s) (kl == sizeof(s) - 1 && memcmp(key, s, kl) == 0)
		if (KEY("path") || KEY("linkpath")) {
			if (memchr(v, '\0', vl))
				return bad(r, at, "NUL in a PAX path");
			if (vl >= PATH_MAX)
				return lam__error(LAM_ENAMETOOLONG,
						  "tar header at offset %llu: "
						  "path longer than PATH_MAX",
						  (unsigned long long)at);
			bool is_path = KEY("path");
			if (vl > 0)
				rc = set_str(is_path ? &h->path : &h->link, v,
					     vl);
			if (is_path)
				x->has_path = vl > 0;
			else
				x->has_link = vl > 0;
		} else if (KEY("size")) {
			if (parse_dec(v, vl, &x->size) < 0 ||
			    x->size > INT64_MAX)
				return bad(r, at, "bad PAX size");
			x->has_size = true;
		} else if (KEY("uid") || KEY("gid")) {
			uint64_t id;
			if (parse_dec(v, vl, &id) < 0 || id > UINT32_MAX)
				return bad(r, at, "bad PAX uid or gid");
			if (KEY("uid")) {
				x->uid = id;
				x->has_uid = true;
			} else {
				x->gid = id;
				x->has_gid = true;
			}
		} else if (KEY("mtime")) {
			if (parse_time(v, vl, &x->mtime_sec, &x->mtime_nsec) <
			    0)
				return bad(r, at, "bad PAX mtime");
			x->has_mtime = true;
		} else if (KEY("SCHILY.devmajor") || KEY("SCHILY.devminor")) {
			uint64_t d;
			if (parse_dec(v, vl, &d) < 0 || d > UINT32_MAX)
				return bad(r, at, "bad PAX device number");
			if (KEY("SCHILY.devmajor")) {
				x->major = d;
				x->has_major = true;
			} else {
				x->minor = d;
				x->has_minor = true;
			}
		} else if (kl > 13 && memcmp(key, "SCHILY.xattr.", 13) == 0) {
			rc = add_xattr(r, at, h, key + 13, kl - 13, v, vl);
		} else if (kl >= 11 && memcmp(key, "GNU.sparse.", 11) == 0) {
			return lam__error(LAM_ENOTSUP,
					  "tar header at offset %llu: sparse "
					  "files are not supported",
					  (unsigned long long)at);
		}
#undef KEY
		if (rc < 0)
			return rc;
		off += (size_t)rl;
	}
	return 0;
}

static int read_ext_data(lam__tar_reader *r, uint64_t at, uint64_t size,
			 uint64_t max, const char *what)
{
	if (size > max) {
		char msg[96];
		snprintf(msg, sizeof(msg), "%s of %llu bytes is too large",
			 what, (unsigned long long)size);
		return bad(r, at, msg);
	}
	r->pax.len = 0;
	int rc = lam__buf_grow(&r->pax, (size_t)size + 1);
	if (rc < 0)
		return rc;
	rc = read_exact(r, r->pax.data, (size_t)size, at, what);
	if (rc != 0)
		return rc;
	r->pax.len = (size_t)size;
	r->pax.data[size] = '\0';
	uint64_t pad = (BLOCK - size % BLOCK) % BLOCK;
	return skip_exact(r, pad, at);
}

int lam__tar_skip_data(lam__tar_reader *r)
{
	uint64_t n = r->pending + r->pad;
	r->pending = r->pad = 0;
	return skip_exact(r, n, r->pos);
}

int lam__tar_data(lam__tar_reader *r, void *buf, size_t len, size_t *got)
{
	*got = 0;
	if (len > r->pending)
		len = (size_t)r->pending;
	if (len == 0)
		return 0;
	int rc = read_exact(r, buf, len, r->pos, "file data");
	if (rc != 0)
		return rc;
	*got = len;
	r->pending -= len;
	return 0;
}

void lam__tar_hdr_free(lam__tar_hdr *h)
{
	lam__buf_free(&h->path);
	lam__buf_free(&h->link);
	lam__buf_free(&h->xattrs);
}

int lam__tar_next(lam__tar_reader *r, lam__tar_hdr *h)
{
	int rc = lam__tar_skip_data(r);
	if (rc != 0)
		return rc;
	ext x;
	memset(&x, 0, sizeof(x));
	bool gnu_path = false, gnu_link = false;
	h->path.len = h->link.len = h->xattrs.len = 0;
	unsigned char b[BLOCK];
	for (;;) {
		uint64_t at = r->pos;
		h->offset = at;
		size_t got = 0;
		rc = lam__tin_read(r->in, b, BLOCK, &got);
		if (rc != 0)
			return rc;
		r->pos += got;
		if (got == 0 && at == 0)
			return lam__error(LAM_ECORRUPT,
					  "empty stream: not a tar archive");
		if (got != BLOCK && at == 0)
			return lam__error(LAM_ECORRUPT,
					  "not a tar archive: %zu bytes, less "
					  "than one header",
					  got);
		if (got != BLOCK)
			return lam__error(LAM_ECORRUPT,
					  "truncated stream: no end-of-archive "
					  "marker after offset %llu",
					  (unsigned long long)at);
		if (all_zero(b)) {
			if (x.has_path || gnu_path || h->xattrs.len)
				return bad(r, at,
					   "extended header without an entry");
			return 0;
		}
		uint64_t sum;
		rc = parse_num(r, at, b + 148, 8, &sum, "checksum");
		if (rc < 0)
			return rc;
		if (!checksum_ok(b, sum))
			return bad(r, at,
				   at == 0 ? "bad checksum: not a tar archive" :
					     "bad checksum");
		uint64_t size, mode, uid, gid, mtime, major, minor;
		if ((rc = parse_num(r, at, b + 124, 12, &size, "size")) < 0 ||
		    (rc = parse_num(r, at, b + 100, 8, &mode, "mode")) < 0 ||
		    (rc = parse_num(r, at, b + 108, 8, &uid, "uid")) < 0 ||
		    (rc = parse_num(r, at, b + 116, 8, &gid, "gid")) < 0 ||
		    (rc = parse_num(r, at, b + 136, 12, &mtime, "mtime")) < 0)
			return rc;
		char type = (char)b[156];
		bool ustar = memcmp(b + 257,
				    "ustar\0"
				    "00",
				    8) == 0;
		bool gnu = memcmp(b + 257, "ustar  \0", 8) == 0;
		major = minor = 0;
		if ((ustar || gnu) && (type == '3' || type == '4')) {
			if ((rc = parse_num(r, at, b + 329, 8, &major,
					    "devmajor")) < 0 ||
			    (rc = parse_num(r, at, b + 337, 8, &minor,
					    "devminor")) < 0)
				return rc;
		}
		if (r->in->max != 0 && size > r->in->max)
			return lam__error(LAM_EQUOTA,
					  "tar header at offset %llu: an "
					  "entry of %llu bytes is over the "
					  "size cap",
					  (unsigned long long)at,
					  (unsigned long long)size);
		switch (type) {
		case 'x':
			rc = read_ext_data(r, at, size, MAX_EXT, "PAX header");
			if (rc == 0)
				rc = parse_pax(r, at, h, &x, r->pax.data,
					       r->pax.len);
			if (rc != 0)
				return rc;
			continue;
		case 'g':
			rc = read_ext_data(r, at, size, MAX_EXT,
					   "PAX global header");
			if (rc != 0)
				return rc;
			continue;
		case 'L':
		case 'K':
			rc = read_ext_data(r, at, size, MAX_LONGNAME,
					   "GNU long name");
			if (rc != 0)
				return rc;
			{
				size_t n = strnlen(r->pax.data, r->pax.len);
				if (n >= PATH_MAX)
					return lam__error(
						LAM_ENAMETOOLONG,
						"tar header at offset %llu: "
						"path longer than PATH_MAX",
						(unsigned long long)at);
				rc = set_str(type == 'L' ? &h->path : &h->link,
					     r->pax.data, n);
				if (type == 'L')
					gnu_path = true;
				else
					gnu_link = true;
			}
			if (rc < 0)
				return rc;
			continue;
		case 'S':
			return lam__error(LAM_ENOTSUP,
					  "tar header at offset %llu: sparse "
					  "files are not supported",
					  (unsigned long long)at);
		case 'V':
			r->pending = size;
			r->pad = (BLOCK - size % BLOCK) % BLOCK;
			rc = lam__tar_skip_data(r);
			if (rc != 0)
				return rc;
			continue;
		case '\0':
		case '7':
			type = '0';
			break;
		case '0':
		case '1':
		case '2':
		case '3':
		case '4':
		case '5':
		case '6':
			break;
		default: {
			char msg[64];
			snprintf(msg, sizeof(msg),
				 "unsupported entry type '%c' (0x%02x)",
				 type >= 32 && type < 127 ? type : '?',
				 (unsigned char)type);
			return lam__error(LAM_ENOTSUP,
					  "tar header at offset %llu: %s",
					  (unsigned long long)at, msg);
		}
		}
		/* A member: the extensions override the header. */
		if (!x.has_path && !gnu_path) {
			char full[256 + 100];
			size_t n = 0;
			if (ustar && b[345] != '\0') {
				size_t pl = strnlen((const char *)b + 345, 155);
				memcpy(full, b + 345, pl);
				full[pl] = '/';
				n = pl + 1;
			}
			size_t nl = strnlen((const char *)b, 100);
			memcpy(full + n, b, nl);
			n += nl;
			rc = set_str(&h->path, full, n);
			if (rc < 0)
				return rc;
		}
		if (!x.has_link && !gnu_link) {
			rc = field_str(&h->link, b + 157, 100);
			if (rc < 0)
				return rc;
		}
		if (x.has_size) {
			if (size != 0 && size != x.size &&
			    size != OCTAL11_MAX) {
				char msg[128];
				snprintf(msg, sizeof(msg),
					 "PAX size %llu disagrees with the "
					 "header's size %llu",
					 (unsigned long long)x.size,
					 (unsigned long long)size);
				return bad(r, at, msg);
			}
			size = x.size;
			if (r->in->max != 0 && size > r->in->max)
				return lam__error(LAM_EQUOTA,
						  "tar header at offset %llu: "
						  "an entry of %llu bytes is "
						  "over the size cap",
						  (unsigned long long)at,
						  (unsigned long long)size);
		}
		if (h->path.len == 0)
			return bad(r, at, "entry without a name");
		if (uid > UINT32_MAX || gid > UINT32_MAX)
			return bad(r, at, "uid or gid out of range");
		if (major > UINT32_MAX || minor > UINT32_MAX)
			return bad(r, at, "device number out of range");
		h->type = type;
		h->mode = (uint32_t)(mode & 07777);
		h->uid = x.has_uid ? (uint32_t)x.uid : (uint32_t)uid;
		h->gid = x.has_gid ? (uint32_t)x.gid : (uint32_t)gid;
		if (x.has_mtime) {
			h->mtime_sec = x.mtime_sec;
			h->mtime_nsec = x.mtime_nsec;
		} else {
			h->mtime_sec = (int64_t)mtime;
			h->mtime_nsec = 0;
		}
		h->devmajor = x.has_major ? (uint32_t)x.major : (uint32_t)major;
		h->devminor = x.has_minor ? (uint32_t)x.minor : (uint32_t)minor;
		h->size = size;
		r->pending = size;
		r->pad = (BLOCK - size % BLOCK) % BLOCK;
		return 1;
	}
}
