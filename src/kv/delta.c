/* SPDX-License-Identifier: MIT */
/*
 * A layer's key/value delta file (layers/<id>/kv):
 *   header (64 bytes): magic "LAMKV\0\0\1", u32 version, u32 record size,
 *     u64 record count, u64 data length, 24 bytes reserved (zero), u64
 *     checksum: XXH3-64 of everything after the header, seeded with the
 *     XXH3-64 of the header's first 56 bytes
 *   count records of RECORD_SIZE bytes, sorted (lam__kv_rec_cmp), a closed
 *     tree whose first record is the root key
 *   the data area: each record's spelling and its folded form, each
 *     followed by a NUL (so that readers can hand names out as they are),
 *     and value data
 * All integers are little-endian. A record:
 *   0 u8 kind, 1 u8 flags, 2 u16 zero,
 *   4 u32 value type, or key depth
 *   8 u32 value's key record, or key's value count
 *   12 u32 key's skip (index after its subtree), or zero
 *   16 u64 string offset, 24 u32 string length, 28 u32 data size,
 *   32 u64 data offset, 40 i64 key mtime (ns; 0 for a pass-through key)
 * Opening verifies the checksum and every structural rule, so that reads
 * never need to check bounds again.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

#include "kv/internal.h"

#define MAGIC	    "LAMKV\0\0\1"
#define VERSION	    1
#define HEADER_SIZE 64
#define RECORD_SIZE 48

int lam__kv_rec_cmp(const char *apath, uint32_t alen, const lam__kv_rec *a,
		    const char *bpath, uint32_t blen, const lam__kv_rec *b)
{
	int c = lam__kv_path_cmp(apath, alen, bpath, blen);
	if (c != 0)
		return c;
	if (a->kind != b->kind)
		return a->kind == LAM__KV_KEY ? -1 : 1;
	if (a->kind == LAM__KV_KEY)
		return 0;
	return lam__kv_name_cmp(a->fold, a->len, b->fold, b->len);
}

void lam__kv_digest_begin(lam__kv_digester *d)
{
	lam__hasher_init(&d->h);
	lam__hasher_update(&d->h, "lamina-kv-1", 11);
}

void lam__kv_digest_rec(lam__kv_digester *d, const lam__kv_rec *r)
{
	unsigned char b[24];
	memset(b, 0, sizeof(b));
	b[0] = r->kind;
	b[1] = r->flags;
	lam__put_le32(b + 4, r->kind == LAM__KV_VALUE ? r->type : 0);
	lam__put_le64(b + 8, r->kind == LAM__KV_KEY ? (uint64_t)r->mtime : 0);
	lam__put_le32(b + 16, r->len);
	lam__put_le32(b + 20, r->kind == LAM__KV_VALUE ? r->size : 0);
	lam__hasher_update(&d->h, b, sizeof(b));
	lam__hasher_update(&d->h, r->disp, r->len);
	if (r->kind == LAM__KV_VALUE && r->size > 0)
		lam__hasher_update(&d->h, r->data, r->size);
}

void lam__kv_digest_end(lam__kv_digester *d, lam__digest *out)
{
	lam__hasher_digest(&d->h, out);
}

/* Fill in key, nvalues and skip of a sorted closed record array. */
static int link_records(lam__kv_rec *recs, size_t n)
{
	uint32_t stack[LAM_KV_MAX_DEPTH + 2];
	size_t top = 0;

	if (n > UINT32_MAX - 1)
		return lam__error(LAM_EINVAL, "too many key/value records");
	for (size_t i = 0; i < n; i++) {
		lam__kv_rec *r = &recs[i];
		if (r->kind == LAM__KV_KEY) {
			while (top > 0 &&
			       recs[stack[top - 1]].depth >= r->depth)
				recs[stack[--top]].skip = (uint32_t)i;
			if (top >= LAM__ARRAY_LEN(stack))
				return lam__error(LAM_EINVAL,
						  "key/value tree too deep");
			r->nvalues = 0;
			stack[top++] = (uint32_t)i;
		} else {
			if (top == 0)
				return lam__error(
					LAM_EINVAL,
					"value record before any key");
			r->key = stack[top - 1];
			recs[r->key].nvalues++;
		}
	}
	while (top > 0)
		recs[stack[--top]].skip = (uint32_t)n;
	return 0;
}

int lam__kv_file_write(int dirfd, const char *name, lam__kv_rec *recs, size_t n,
		       lam__digest *digest)
{
	lam__buf b = {0};
	uint64_t data_len = 0;
	lam__kv_digester d;
	int rc;

	rc = link_records(recs, n);
	if (rc < 0)
		return rc;
	for (size_t i = 0; i < n; i++)
		data_len += 2 * (uint64_t)recs[i].len + 2 +
			    (recs[i].kind == LAM__KV_VALUE ? recs[i].size : 0);
	rc = lam__buf_grow(&b, HEADER_SIZE + n * RECORD_SIZE + data_len);
	if (rc < 0)
		return rc;
	memset(b.data, 0, HEADER_SIZE + n * RECORD_SIZE);
	b.len = HEADER_SIZE + n * RECORD_SIZE;

	lam__kv_digest_begin(&d);
	uint64_t off = 0;
	for (size_t i = 0; i < n; i++) {
		const lam__kv_rec *r = &recs[i];
		unsigned char *p =
			(unsigned char *)b.data + HEADER_SIZE + i * RECORD_SIZE;
		p[0] = r->kind;
		p[1] = r->flags;
		lam__put_le16(p + 2, 0);
		if (r->kind == LAM__KV_KEY) {
			lam__put_le32(p + 4, r->depth);
			lam__put_le32(p + 8, r->nvalues);
			lam__put_le32(p + 12, r->skip);
			lam__put_le64(p + 40, (uint64_t)r->mtime);
		} else {
			lam__put_le32(p + 4, r->type);
			lam__put_le32(p + 8, r->key);
			lam__put_le32(p + 28, r->size);
		}
		lam__put_le64(p + 16, off);
		lam__put_le32(p + 24, r->len);
		lam__buf_add(&b, r->disp, r->len);
		lam__buf_add(&b, "", 1);
		lam__buf_add(&b, r->fold, r->len);
		lam__buf_add(&b, "", 1);
		off += 2 * (uint64_t)r->len + 2;
		if (r->kind == LAM__KV_VALUE) {
			lam__put_le64(p + 32, off);
			lam__buf_add(&b, r->data, r->size);
			off += r->size;
		}
		lam__kv_digest_rec(&d, r);
	}
	lam__kv_digest_end(&d, digest);

	unsigned char *h = (unsigned char *)b.data;
	memcpy(h, MAGIC, 8);
	lam__put_le32(h + 8, VERSION);
	lam__put_le32(h + 12, RECORD_SIZE);
	lam__put_le64(h + 16, n);
	lam__put_le64(h + 24, data_len);
	uint64_t seed = XXH3_64bits(h, 56);
	lam__put_le64(h + 56, XXH3_64bits_withSeed(b.data + HEADER_SIZE,
						   b.len - HEADER_SIZE, seed));
	rc = lam__write_file_atomic(dirfd, name, b.data, b.len);
	lam__buf_free(&b);
	return rc;
}

void lam__kv_file_get(const lam__kv_file *f, uint64_t i, lam__kv_rec *out)
{
	const unsigned char *p = f->recs + i * RECORD_SIZE;
	uint64_t soff = lam__get_le64(p + 16);

	out->kind = p[0];
	out->flags = p[1];
	out->len = lam__get_le32(p + 24);
	out->disp = f->data + soff;
	out->fold = f->data + soff + out->len + 1;
	if (out->kind == LAM__KV_KEY) {
		out->depth = lam__get_le32(p + 4);
		out->nvalues = lam__get_le32(p + 8);
		out->skip = lam__get_le32(p + 12);
		out->mtime = (int64_t)lam__get_le64(p + 40);
		out->type = 0;
		out->key = 0;
		out->data = NULL;
		out->size = 0;
	} else {
		out->type = lam__get_le32(p + 4);
		out->key = lam__get_le32(p + 8);
		out->size = lam__get_le32(p + 28);
		out->data = f->data + lam__get_le64(p + 32);
		out->depth = 0;
		out->nvalues = 0;
		out->skip = 0;
		out->mtime = 0;
	}
}

void lam__kv_file_close(lam__kv_file *f)
{
	if (f->map != NULL)
		munmap(f->map, f->map_len);
	memset(f, 0, sizeof(*f));
}

/* Check that a key path is made of valid names and has depth names. */
static int check_path(const char *s, uint32_t len, uint32_t depth)
{
	uint32_t names = 0;

	if (len == 0)
		return depth == 0 ? 0 : -1;
	for (uint32_t i = 0; i <= len;) {
		const char *end = memchr(s + i, '\\', len - i);
		uint32_t n = end ? (uint32_t)(end - (s + i)) : len - i;
		if (lam__kv_name_check(s + i, n, false) < 0)
			return -1;
		names++;
		i += n + 1;
		if (!end)
			break;
	}
	return names == depth ? 0 : -1;
}

/* Verify everything the readers rely on; the message says what failed. */
static int verify(const lam__kv_file *f, const char *what)
{
	uint32_t stack[LAM_KV_MAX_DEPTH + 2];
	size_t top = 0;
	lam__buf scratch = {0};
	lam__kv_rec prev = {0}, r;
	const char *prev_path = NULL;
	uint32_t prev_plen = 0;
	uint32_t cur_key = UINT32_MAX, cur_values = 0;
	int rc = 0;

#define BAD(...)                                            \
	do {                                                \
		rc = lam__error(LAM_ECORRUPT, __VA_ARGS__); \
		goto out;                                   \
	} while (0)

	if (f->count > 0 && f->count > UINT32_MAX - 1)
		BAD("%s: kv: too many records", what);
	for (uint64_t i = 0; i < f->count; i++) {
		const unsigned char *p = f->recs + i * RECORD_SIZE;
		uint64_t soff = lam__get_le64(p + 16);
		uint32_t len = lam__get_le32(p + 24);

		if (lam__get_le16(p + 2) != 0)
			BAD("%s: kv: record %lu: bad reserved field", what,
			    (unsigned long)i);
		if (soff > f->data_len ||
		    2 * (uint64_t)len + 2 > f->data_len - soff)
			BAD("%s: kv: record %lu: string out of bounds", what,
			    (unsigned long)i);
		lam__kv_file_get(f, i, &r);
		if (r.disp[len] != '\0' || r.fold[len] != '\0')
			BAD("%s: kv: record %lu: unterminated string", what,
			    (unsigned long)i);
		scratch.len = 0;
		if (lam__buf_grow(&scratch, len) < 0) {
			rc = LAM_ENOMEM;
			goto out;
		}
		if (lam__kv_utf8_check(r.disp, len, NULL, NULL) < 0)
			BAD("%s: kv: record %lu: invalid UTF-8", what,
			    (unsigned long)i);
		lam__kv_fold(scratch.data, r.disp, len);
		if (memcmp(scratch.data, r.fold, len) != 0)
			BAD("%s: kv: record %lu: folded name does not match",
			    what, (unsigned long)i);

		const char *path;
		uint32_t plen;
		if (r.kind == LAM__KV_KEY) {
			if (r.flags & ~(uint32_t)(LAM__KV_DELETED |
						  LAM__KV_OPAQUE) ||
			    (r.flags & LAM__KV_DELETED &&
			     r.flags & LAM__KV_OPAQUE))
				BAD("%s: kv: record %lu: bad key flags", what,
				    (unsigned long)i);
			if (r.depth > LAM_KV_MAX_DEPTH ||
			    check_path(r.disp, len, r.depth) < 0)
				BAD("%s: kv: record %lu: bad key path", what,
				    (unsigned long)i);
			if (lam__get_le64(p + 32) != 0 ||
			    lam__get_le32(p + 28) != 0)
				BAD("%s: kv: record %lu: bad key record", what,
				    (unsigned long)i);
			if (i == 0 && r.depth != 0)
				BAD("%s: kv: the first record is not the root "
				    "key",
				    what);
			if (i > 0 && r.depth == 0)
				BAD("%s: kv: record %lu: a second root key",
				    what, (unsigned long)i);
			/* Close the keys this one is not below. */
			while (top > 0) {
				lam__kv_rec k;
				lam__kv_file_get(f, stack[top - 1], &k);
				if (k.depth < r.depth)
					break;
				if (k.skip != i)
					BAD("%s: kv: record %u: bad subtree "
					    "end",
					    what, stack[top - 1]);
				top--;
			}
			if (r.depth > 0) {
				lam__kv_rec parent;
				if (top == 0)
					BAD("%s: kv: record %lu: no parent key",
					    what, (unsigned long)i);
				lam__kv_file_get(f, stack[top - 1], &parent);
				if (parent.depth != r.depth - 1 ||
				    (parent.flags & LAM__KV_DELETED) ||
				    (parent.len > 0 &&
				     (len <= parent.len ||
				      r.fold[parent.len] != '\\' ||
				      memcmp(parent.fold, r.fold, parent.len) !=
					      0)))
					BAD("%s: kv: record %lu: not below its "
					    "parent key",
					    what, (unsigned long)i);
			}
			if (cur_key != UINT32_MAX) {
				lam__kv_rec k;
				lam__kv_file_get(f, cur_key, &k);
				if (k.nvalues != cur_values)
					BAD("%s: kv: record %u: bad value "
					    "count",
					    what, cur_key);
			}
			if ((r.flags & LAM__KV_DELETED) &&
			    (r.nvalues != 0 || r.skip != i + 1))
				BAD("%s: kv: record %lu: a deleted key with "
				    "contents",
				    what, (unsigned long)i);
			if (r.skip <= i || r.skip > f->count)
				BAD("%s: kv: record %lu: bad subtree end", what,
				    (unsigned long)i);
			stack[top++] = (uint32_t)i;
			cur_key = (uint32_t)i;
			cur_values = 0;
			path = r.fold;
			plen = len;
		} else if (r.kind == LAM__KV_VALUE) {
			uint64_t doff = lam__get_le64(p + 32);
			if (r.flags & ~(uint32_t)LAM__KV_DELETED)
				BAD("%s: kv: record %lu: bad value flags", what,
				    (unsigned long)i);
			if (cur_key == UINT32_MAX || r.key != cur_key)
				BAD("%s: kv: record %lu: value not after its "
				    "key",
				    what, (unsigned long)i);
			if (lam__get_le64(p + 40) != 0 ||
			    lam__get_le32(p + 12) != 0)
				BAD("%s: kv: record %lu: bad value record",
				    what, (unsigned long)i);
			if (doff > f->data_len || r.size > f->data_len - doff)
				BAD("%s: kv: record %lu: data out of bounds",
				    what, (unsigned long)i);
			if (lam__kv_name_check(r.disp, len, true) < 0)
				BAD("%s: kv: record %lu: bad value name", what,
				    (unsigned long)i);
			if (r.flags & LAM__KV_DELETED) {
				if (r.size != 0 || r.type != 0)
					BAD("%s: kv: record %lu: a deleted "
					    "value with data",
					    what, (unsigned long)i);
			} else if (lam__kv_value_check(r.type, r.data, r.size,
						       "value") < 0) {
				char why[256];
				snprintf(why, sizeof(why), "%s",
					 lam_error_last()->message);
				BAD("%s: kv: record %lu: %s", what,
				    (unsigned long)i, why);
			}
			cur_values++;
			lam__kv_rec k;
			lam__kv_file_get(f, r.key, &k);
			path = k.fold;
			plen = k.len;
		} else {
			BAD("%s: kv: record %lu: unknown kind %u", what,
			    (unsigned long)i, r.kind);
		}
		if (i > 0 && lam__kv_rec_cmp(prev_path, prev_plen, &prev, path,
					     plen, &r) >= 0)
			BAD("%s: kv: record %lu: out of order", what,
			    (unsigned long)i);
		prev = r;
		prev_path = path;
		prev_plen = plen;
	}
	if (cur_key != UINT32_MAX) {
		lam__kv_rec k;
		lam__kv_file_get(f, cur_key, &k);
		if (k.nvalues != cur_values)
			BAD("%s: kv: record %u: bad value count", what,
			    cur_key);
	}
	while (top > 0) {
		lam__kv_rec k;
		lam__kv_file_get(f, stack[--top], &k);
		if (k.skip != f->count)
			BAD("%s: kv: bad subtree end", what);
	}
#undef BAD
out:
	lam__buf_free(&scratch);
	return rc;
}

int lam__kv_file_open(lam__kv_file *f, int dirfd, const char *name,
		      const char *what)
{
	struct stat st;
	int fd;
	int rc;

	memset(f, 0, sizeof(*f));
	fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		if (errno == ENOENT)
			return lam__error(LAM_ENOTFOUND, "%s: no kv file",
					  what);
		return lam__error_errno(errno, "%s: opening kv", what);
	}
	if (fstat(fd, &st) < 0) {
		rc = lam__error_errno(errno, "%s: reading kv", what);
		close(fd);
		return rc;
	}
	if (!S_ISREG(st.st_mode) || st.st_size < HEADER_SIZE) {
		close(fd);
		return lam__error(LAM_ECORRUPT, "%s: kv: truncated file", what);
	}
	f->map_len = (size_t)st.st_size;
	f->map = mmap(NULL, f->map_len, PROT_READ, MAP_SHARED, fd, 0);
	close(fd);
	if (f->map == MAP_FAILED) {
		f->map = NULL;
		return lam__error_errno(errno, "%s: mapping kv", what);
	}
	const unsigned char *h = f->map;
	rc = 0;
	if (memcmp(h, MAGIC, 8) != 0) {
		rc = lam__error(LAM_ECORRUPT, "%s: kv: not a key/value file",
				what);
	} else if (lam__get_le32(h + 8) != VERSION) {
		rc = lam__error(LAM_EVERSION, "%s: kv: format version %u", what,
				lam__get_le32(h + 8));
	} else if (lam__get_le32(h + 12) != RECORD_SIZE) {
		rc = lam__error(LAM_ECORRUPT, "%s: kv: bad record size", what);
	} else {
		uint64_t n = lam__get_le64(h + 16), dl = lam__get_le64(h + 24);
		uint64_t body = f->map_len - HEADER_SIZE;
		uint64_t seed = XXH3_64bits(h, 56);
		if (XXH3_64bits_withSeed(h + HEADER_SIZE, body, seed) !=
		    lam__get_le64(h + 56))
			rc = lam__error(LAM_ECORRUPT,
					"%s: kv: checksum mismatch", what);
		else if (n > body / RECORD_SIZE || dl != body - n * RECORD_SIZE)
			rc = lam__error(LAM_ECORRUPT, "%s: kv: bad sizes",
					what);
		else {
			f->count = n;
			f->recs = h + HEADER_SIZE;
			f->data =
				(const char *)h + HEADER_SIZE + n * RECORD_SIZE;
			f->data_len = dl;
		}
	}
	if (rc == 0)
		rc = verify(f, what);
	if (rc < 0)
		lam__kv_file_close(f);
	return rc;
}

void lam__kv_file_digest(const lam__kv_file *f, lam__digest *out)
{
	lam__kv_digester d;
	lam__kv_rec r;

	lam__kv_digest_begin(&d);
	for (uint64_t i = 0; i < f->count; i++) {
		lam__kv_file_get(f, i, &r);
		lam__kv_digest_rec(&d, &r);
	}
	lam__kv_digest_end(&d, out);
}
