/* SPDX-License-Identifier: MIT */
/*
 * The index file:
 *   header (64 bytes): magic "LAMIDX\0\1", u32 version, u32 record size,
 *     u64 count, u64 strtab length, u64 checksum (XXH3-64 of everything
 *     after the header), 24 bytes reserved (zero)
 *   count records of RECORD_SIZE bytes, sorted by path (lam__path_cmp)
 *   the string table: paths, symlink targets and xattr blobs
 * All integers are little-endian.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <limits.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "layer/internal.h"

#define MAGIC	    "LAMIDX\0\1"
#define VERSION	    1
#define HEADER_SIZE 64
#define RECORD_SIZE 112

/* Record layout (byte offsets). */
enum {
	R_PATH_OFF = 0,
	R_PATH_LEN = 4,
	R_TARGET_OFF = 8,
	R_TARGET_LEN = 12,
	R_XATTR_OFF = 16,
	R_XATTR_LEN = 20,
	R_MODE = 24,
	R_UID = 28,
	R_GID = 32,
	R_FLAGS = 36,
	R_NLINK = 40,
	R_LINK_GROUP = 44,
	R_MTIME_NSEC = 48,
	R_VARIANT = 52,
	R_MTIME_SEC = 56,
	R_SIZE = 64,
	R_RDEV = 72,
	R_DIGEST = 80,
	/* 96..111 reserved */
};

int lam__entry_cmp(const lam__entry *a, const lam__entry *b)
{
	return lam__path_cmp(a->path, a->path_len, b->path, b->path_len);
}

static void encode(unsigned char *r, const lam__entry *e, uint32_t path_off,
		   uint32_t target_off, uint32_t xattr_off)
{
	memset(r, 0, RECORD_SIZE);
	lam__put_le32(r + R_PATH_OFF, path_off);
	lam__put_le32(r + R_PATH_LEN, e->path_len);
	lam__put_le32(r + R_TARGET_OFF, target_off);
	lam__put_le32(r + R_TARGET_LEN, e->target_len);
	lam__put_le32(r + R_XATTR_OFF, xattr_off);
	lam__put_le32(r + R_XATTR_LEN, e->xattrs_len);
	lam__put_le32(r + R_MODE, e->mode);
	lam__put_le32(r + R_UID, e->uid);
	lam__put_le32(r + R_GID, e->gid);
	lam__put_le32(r + R_FLAGS, e->flags);
	lam__put_le32(r + R_NLINK, e->nlink);
	lam__put_le32(r + R_LINK_GROUP, e->link_group);
	lam__put_le32(r + R_MTIME_NSEC, e->mtime_nsec);
	lam__put_le32(r + R_VARIANT, e->obj.variant);
	lam__put_le64(r + R_MTIME_SEC, (uint64_t)e->mtime_sec);
	lam__put_le64(r + R_SIZE, e->size);
	lam__put_le64(r + R_RDEV, e->rdev);
	memcpy(r + R_DIGEST, e->obj.digest.b, 16);
}

int lam__index_write(int dirfd, const char *name, lam__entry *entries, size_t n)
{
	lam__buf strtab = {0};
	size_t reclen = n * RECORD_SIZE;
	unsigned char *recs = lam__malloc(reclen ? reclen : 1);
	if (recs == NULL)
		return lam__error(LAM_ENOMEM, "out of memory writing index");
	int rc = 0;
	for (size_t i = 0; i < n && rc == 0; i++) {
		const lam__entry *e = &entries[i];
		uint32_t po = (uint32_t)strtab.len;
		rc = lam__buf_add(&strtab, e->path, e->path_len);
		uint32_t to = (uint32_t)strtab.len;
		if (rc == 0)
			rc = lam__buf_add(&strtab, e->target, e->target_len);
		uint32_t xo = (uint32_t)strtab.len;
		if (rc == 0)
			rc = lam__buf_add(&strtab, e->xattrs, e->xattrs_len);
		if (rc == 0 && strtab.len > UINT32_MAX)
			rc = lam__error(LAM_ENAMETOOLONG,
					"index string table over 4 GiB");
		encode(recs + i * RECORD_SIZE, e, po, to, xo);
	}
	unsigned char hdr[HEADER_SIZE] = {0};
	if (rc == 0) {
		memcpy(hdr, MAGIC, 8);
		lam__put_le32(hdr + 8, VERSION);
		lam__put_le32(hdr + 12, RECORD_SIZE);
		lam__put_le64(hdr + 16, n);
		lam__put_le64(hdr + 24, strtab.len);
		/* The checksum runs over records then strings, as stored. */
		lam__buf all = {0};
		rc = lam__buf_add(&all, recs, reclen);
		if (rc == 0)
			rc = lam__buf_add(&all, strtab.data, strtab.len);
		if (rc == 0)
			lam__put_le64(hdr + 32, lam__hash64(all.data, all.len));
		lam__buf_free(&all);
	}
	if (rc == 0) {
		int fd = openat(dirfd, name,
				O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444);
		if (fd < 0) {
			rc = lam__error_errno(errno, "creating index");
		} else {
			int r = lam__write_all(fd, hdr, HEADER_SIZE);
			if (r == 0)
				r = lam__write_all(fd, recs, reclen);
			if (r == 0)
				r = lam__write_all(fd, strtab.data, strtab.len);
			close(fd);
			if (r < 0)
				rc = lam__error_errno(-r, "writing index");
		}
	}
	lam__free(recs);
	lam__buf_free(&strtab);
	return rc;
}

void lam__index_close(lam__index *idx)
{
	if (idx->map != NULL && idx->map != MAP_FAILED)
		munmap(idx->map, idx->map_len);
	memset(idx, 0, sizeof(*idx));
}

static int check_record(const lam__index *idx, uint64_t i)
{
	const unsigned char *r = idx->records + i * RECORD_SIZE;
	uint64_t ends[3] = {
		(uint64_t)lam__get_le32(r + R_PATH_OFF) +
			lam__get_le32(r + R_PATH_LEN),
		(uint64_t)lam__get_le32(r + R_TARGET_OFF) +
			lam__get_le32(r + R_TARGET_LEN),
		(uint64_t)lam__get_le32(r + R_XATTR_OFF) +
			lam__get_le32(r + R_XATTR_LEN),
	};
	for (int k = 0; k < 3; k++)
		if (ends[k] > idx->strtab_len)
			return -1;
	return 0;
}

int lam__index_open(lam__index *idx, int dirfd, const char *name)
{
	memset(idx, 0, sizeof(*idx));
	int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return lam__error_errno(errno == ENOENT ? EIO : errno,
					"index: cannot open");
	struct stat st;
	if (fstat(fd, &st) < 0) {
		int e = errno;
		close(fd);
		return lam__error_errno(e, "index");
	}
	if (!S_ISREG(st.st_mode) || st.st_size < HEADER_SIZE) {
		close(fd);
		return lam__error(LAM_ECORRUPT, "index: truncated");
	}
	idx->map_len = (size_t)st.st_size;
	idx->map = mmap(NULL, idx->map_len, PROT_READ, MAP_SHARED, fd, 0);
	close(fd);
	if (idx->map == MAP_FAILED) {
		idx->map = NULL;
		return lam__error_errno(errno, "index: mapping");
	}
	const unsigned char *h = idx->map;
	if (memcmp(h, MAGIC, 8) != 0 || lam__get_le32(h + 8) != VERSION ||
	    lam__get_le32(h + 12) != RECORD_SIZE) {
		lam__index_close(idx);
		return lam__error(LAM_ECORRUPT, "index: bad magic or version");
	}
	uint64_t count = lam__get_le64(h + 16);
	uint64_t slen = lam__get_le64(h + 24);
	if (count > (idx->map_len - HEADER_SIZE) / RECORD_SIZE ||
	    HEADER_SIZE + count * RECORD_SIZE + slen != idx->map_len) {
		lam__index_close(idx);
		return lam__error(LAM_ECORRUPT, "index: size mismatch");
	}
	if (lam__hash64(h + HEADER_SIZE, idx->map_len - HEADER_SIZE) !=
	    lam__get_le64(h + 32)) {
		lam__index_close(idx);
		return lam__error(LAM_ECORRUPT, "index: checksum mismatch");
	}
	idx->count = count;
	idx->records = h + HEADER_SIZE;
	idx->strtab = (const char *)(h + HEADER_SIZE + count * RECORD_SIZE);
	idx->strtab_len = slen;
	for (uint64_t i = 0; i < count; i++) {
		if (check_record(idx, i) < 0) {
			lam__index_close(idx);
			return lam__error(LAM_ECORRUPT,
					  "index: record %llu out of bounds",
					  (unsigned long long)i);
		}
	}
	return 0;
}

void lam__index_get(const lam__index *idx, uint64_t i, lam__entry *e)
{
	const unsigned char *r = idx->records + i * RECORD_SIZE;
	e->path = idx->strtab + lam__get_le32(r + R_PATH_OFF);
	e->path_len = lam__get_le32(r + R_PATH_LEN);
	e->target = idx->strtab + lam__get_le32(r + R_TARGET_OFF);
	e->target_len = lam__get_le32(r + R_TARGET_LEN);
	e->xattrs = idx->strtab + lam__get_le32(r + R_XATTR_OFF);
	e->xattrs_len = lam__get_le32(r + R_XATTR_LEN);
	e->mode = lam__get_le32(r + R_MODE);
	e->uid = lam__get_le32(r + R_UID);
	e->gid = lam__get_le32(r + R_GID);
	e->flags = lam__get_le32(r + R_FLAGS);
	e->nlink = lam__get_le32(r + R_NLINK);
	e->link_group = lam__get_le32(r + R_LINK_GROUP);
	e->mtime_nsec = lam__get_le32(r + R_MTIME_NSEC);
	e->obj.variant = lam__get_le32(r + R_VARIANT);
	e->mtime_sec = (int64_t)lam__get_le64(r + R_MTIME_SEC);
	e->size = lam__get_le64(r + R_SIZE);
	e->rdev = lam__get_le64(r + R_RDEV);
	memcpy(e->obj.digest.b, r + R_DIGEST, 16);
}

int64_t lam__index_find(const lam__index *idx, const char *path, size_t len)
{
	uint64_t lo = 0, hi = idx->count;
	while (lo < hi) {
		uint64_t mid = lo + (hi - lo) / 2;
		const unsigned char *r = idx->records + mid * RECORD_SIZE;
		int c = lam__path_cmp(idx->strtab +
					      lam__get_le32(r + R_PATH_OFF),
				      lam__get_le32(r + R_PATH_LEN), path, len);
		if (c == 0)
			return (int64_t)mid;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

void lam__entries_digest(lam__digest *out, const lam__entry *e, size_t n)
{
	/* The canonical form is the record encoding with string offsets
	 * replaced by the strings themselves, so it does not depend on how
	 * a string table was laid out; the object variant is left out
	 * because it is local to a store. */
	lam__hasher hs, *h = &hs;
	unsigned char r[RECORD_SIZE];
	lam__hasher_init(h);
	lam__hasher_update(h, "lamina-diff-1", 13);
	for (size_t i = 0; i < n; i++) {
		lam__entry c = e[i];
		c.obj.variant = 0;
		encode(r, &c, c.path_len, c.target_len, c.xattrs_len);
		lam__hasher_update(h, r, RECORD_SIZE);
		lam__hasher_update(h, c.path, c.path_len);
		lam__hasher_update(h, c.target, c.target_len);
		lam__hasher_update(h, c.xattrs, c.xattrs_len);
	}
	lam__hasher_digest(h, out);
}

int lam__xattr_append(lam__buf *blob, const char *name, uint32_t name_len,
		      const void *value, uint32_t value_len)
{
	unsigned char hdr[8];
	lam__put_le32(hdr, name_len);
	lam__put_le32(hdr + 4, value_len);
	int rc = lam__buf_add(blob, hdr, sizeof(hdr));
	if (rc == 0)
		rc = lam__buf_add(blob, name, name_len);
	if (rc == 0)
		rc = lam__buf_add(blob, value, value_len);
	return rc;
}

int lam__xattr_next(const char *blob, uint32_t len, uint32_t *off,
		    lam__xattr *x)
{
	if (*off >= len)
		return 0;
	if (len - *off < 8)
		return -1;
	const unsigned char *p = (const unsigned char *)blob + *off;
	uint32_t nl = lam__get_le32(p), vl = lam__get_le32(p + 4);
	if ((uint64_t)nl + vl > len - *off - 8 || nl == 0)
		return -1;
	x->name = blob + *off + 8;
	x->name_len = nl;
	x->value = x->name + nl;
	x->value_len = vl;
	*off += 8 + nl + vl;
	return 1;
}

void lam__diff_fold(lam__digest *diff, const lam__digest *kv)
{
	unsigned char buf[15 + 32];
	memcpy(buf, "lamina-diff-kv1", 15);
	memcpy(buf + 15, diff->b, 16);
	memcpy(buf + 31, kv->b, 16);
	lam__hash128(diff, buf, sizeof(buf));
}

void lam__chain_digest(lam__digest *out, const char *parent_hex,
		       const lam__digest *diff)
{
	lam__digest pd;
	memset(&pd, 0, sizeof(pd));
	if (parent_hex != NULL)
		lam__digest_parse(&pd, parent_hex);
	unsigned char buf[14 + 32];
	memcpy(buf, "lamina-chain-1", 14);
	memcpy(buf + 14, pd.b, 16);
	memcpy(buf + 30, diff->b, 16);
	lam__hash128(out, buf, sizeof(buf));
}

void lam__entry_set_xattrs(int fd, const char *lpath, const lam__entry *e)
{
	uint32_t off = 0;
	lam__xattr x;
	char name[XATTR_NAME_MAX + 1];
	while (lam__xattr_next(e->xattrs, e->xattrs_len, &off, &x) == 1) {
		if (x.name_len > XATTR_NAME_MAX)
			continue;
		memcpy(name, x.name, x.name_len);
		name[x.name_len] = '\0';
		int r = fd >= 0 ?
				fsetxattr(fd, name, x.value, x.value_len, 0) :
				lsetxattr(lpath, name, x.value, x.value_len, 0);
		if (r < 0)
			lam__log(LAM_LOG_DEBUG, "cannot set xattr %s on %.*s",
				 name, (int)e->path_len, e->path);
	}
}
