/* SPDX-License-Identifier: MIT */
/*
 * Files copied up in part. Opening a lower file for writing, or changing
 * its metadata, makes an upper file of the right size that holds no data
 * yet: a sparse file marked with the private xattr <priv>partial naming a
 * map in partial/. The map says which 64 KiB chunks the upper holds; the
 * others still come from the lower content object. A write first brings in
 * the chunks it touches (only the bytes it does not overwrite). Completing
 * the file (for a commit, or a kernel mount) fills the remaining chunks.
 *
 * Map file: "LAMPART1", u64 valid, u64 chunks, 16-byte digest, u32 variant,
 * u32 zero, then one byte per chunk (1 = in the upper). A crash between a
 * chunk's copy and its map byte leaves the byte 0: the chunk reads from the
 * lower, which is what it held before the write began.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "view/internal.h"

#define MAGIC "LAMPART1"
#define HDR   48

static void priv_name(const lam_view *v, char out[64])
{
	bool trusted = strncmp(v->store->overlay_xattr, "trusted.", 8) == 0;
	snprintf(out, 64, "%s",
		 trusted ? "trusted.lamina.partial" : "user.lamina.partial");
}

void lam__partial_free(lam__partial *p)
{
	if (p == NULL)
		return;
	lam__close(&p->objfd);
	lam__close(&p->mapfd);
	lam__free(p->bits);
	lam__free(p);
}

static int write_header(lam__partial *p)
{
	unsigned char h[HDR] = {0};
	memcpy(h, MAGIC, 8);
	memcpy(h + 8, &p->valid, 8);
	memcpy(h + 16, &p->nchunks, 8);
	memcpy(h + 24, p->obj.digest.b, 16);
	memcpy(h + 40, &p->obj.variant, 4);
	if (pwrite(p->mapfd, h, HDR, 0) != HDR)
		return lam__view_posix(errno ? errno : EIO,
				       "writing chunk map");
	return 0;
}

int lam__partial_create(lam_view *v, int fd, const lam__objid *obj,
			uint64_t size)
{
	lam__partial p = {.objfd = -1, .mapfd = -1};
	lam__uuid_new(p.id);
	p.obj = *obj;
	p.valid = size;
	p.nchunks = (size + LAM__CHUNK - 1) / LAM__CHUNK;
	char name[64];
	snprintf(name, sizeof(name), "partial/%s", p.id);
	p.mapfd = openat(v->viewfd, name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC,
			 0600);
	if (p.mapfd < 0)
		return lam__view_posix(errno, "creating chunk map");
	int rc = write_header(&p);
	/* The map's chunk bytes are a hole: all zero, nothing present. */
	if (rc == 0 && ftruncate(p.mapfd, (off_t)(HDR + p.nchunks)) < 0)
		rc = lam__view_posix(errno, "creating chunk map");
	char x[64];
	priv_name(v, x);
	if (rc == 0 && fsetxattr(fd, x, p.id, 36, 0) < 0)
		rc = lam__view_posix(errno, "marking a partial file");
	close(p.mapfd);
	if (rc < 0)
		unlinkat(v->viewfd, name, 0);
	return rc;
}

int lam__partial_load(lam_view *v, int fd, lam__partial **out)
{
	*out = NULL;
	char x[64], id[37];
	priv_name(v, x);
	ssize_t n = fgetxattr(fd, x, id, 36);
	if (n < 0) {
		if (errno == ENODATA || errno == ENOTSUP)
			return 0;
		return lam__view_posix(errno, "reading a partial mark");
	}
	if (n != 36)
		return lam__error(LAM_ECORRUPT, "view %s: bad partial mark",
				  v->id);
	id[36] = '\0';
	lam__partial *p = lam__calloc(1, sizeof(*p));
	if (p == NULL)
		return lam__error(LAM_ENOMEM, "out of memory");
	p->objfd = -1;
	memcpy(p->id, id, 37);
	char name[64];
	snprintf(name, sizeof(name), "partial/%s", id);
	p->mapfd = openat(v->viewfd, name, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
	unsigned char h[HDR];
	int rc = 0;
	if (p->mapfd < 0 || pread(p->mapfd, h, HDR, 0) != HDR ||
	    memcmp(h, MAGIC, 8) != 0)
		rc = lam__error(LAM_ECORRUPT, "view %s: chunk map %s damaged",
				v->id, id);
	if (rc == 0) {
		memcpy(&p->valid, h + 8, 8);
		memcpy(&p->nchunks, h + 16, 8);
		memcpy(p->obj.digest.b, h + 24, 16);
		memcpy(&p->obj.variant, h + 40, 4);
		if (p->nchunks > (1ull << 40) / LAM__CHUNK ||
		    p->valid > p->nchunks * LAM__CHUNK)
			rc = lam__error(LAM_ECORRUPT, "view %s: chunk map %s",
					v->id, id);
	}
	struct stat st;
	if (rc == 0 && fstat(fd, &st) == 0 && (uint64_t)st.st_size < p->valid) {
		/* Cut, but killed before the map said so. */
		p->valid = (uint64_t)st.st_size;
		rc = write_header(p);
	}
	if (rc == 0 &&
	    (p->bits = lam__malloc(p->nchunks ? p->nchunks : 1)) == NULL)
		rc = lam__error(LAM_ENOMEM, "out of memory");
	if (rc == 0 && p->nchunks &&
	    pread(p->mapfd, p->bits, p->nchunks, HDR) != (ssize_t)p->nchunks)
		rc = lam__error(LAM_ECORRUPT, "view %s: chunk map %s short",
				v->id, id);
	if (rc < 0) {
		lam__partial_free(p);
		return rc;
	}
	*out = p;
	return 0;
}

static int object_fd(lam_view *v, lam__partial *p)
{
	if (p->objfd >= 0)
		return p->objfd;
	p->objfd = lam__object_open(v->store, &p->obj);
	return p->objfd;
}

static bool present(const lam__partial *p, uint64_t chunk)
{
	return chunk >= p->nchunks || p->bits[chunk] != 0 ||
	       chunk * LAM__CHUNK >= p->valid;
}

int lam__partial_read(lam_view *v, lam__partial *p, int fd, void *buf, size_t n,
		      uint64_t off, size_t *got)
{
	*got = 0;
	struct stat st;
	if (fstat(fd, &st) < 0)
		return lam__view_posix(errno, "reading");
	uint64_t size = (uint64_t)st.st_size;
	if (off >= size)
		return 0;
	if (n > size - off)
		n = (size_t)(size - off);
	char *out = buf;
	size_t done = 0;
	while (done < n) {
		uint64_t pos = off + done;
		uint64_t chunk = pos / LAM__CHUNK;
		uint64_t end = (chunk + 1) * LAM__CHUNK;
		size_t len =
			(size_t)((end - pos) < n - done ? end - pos : n - done);
		int src = fd;
		if (!present(p, chunk) && pos < p->valid) {
			/* From the lower object, up to what is still valid. */
			if (pos + len > p->valid)
				len = (size_t)(p->valid - pos);
			src = object_fd(v, p);
			if (src < 0)
				return src;
		}
		ssize_t r = pread(src, out + done, len, (off_t)pos);
		if (r < 0)
			return lam__view_posix(errno, "reading");
		if ((size_t)r < len) /* a hole at the end reads as zeros */
			memset(out + done + r, 0, len - (size_t)r);
		done += len;
	}
	*got = n;
	return 0;
}

static int mark_chunk(lam__partial *p, uint64_t chunk)
{
	p->bits[chunk] = 1;
	if (pwrite(p->mapfd, &p->bits[chunk], 1, (off_t)(HDR + chunk)) != 1)
		return lam__view_posix(errno, "updating a chunk map");
	return 0;
}

static int fill_chunk(lam_view *v, lam__partial *p, int fd, uint64_t chunk,
		      uint64_t skip_from, uint64_t skip_to, bool mark)
{
	uint64_t start = chunk * LAM__CHUNK;
	uint64_t end = start + LAM__CHUNK;
	if (end > p->valid)
		end = p->valid;
	char buf[LAM__CHUNK];
	int src = object_fd(v, p);
	if (src < 0)
		return src;
	/* Copy only the bytes the coming write will not cover. */
	uint64_t ranges[2][2] = {{start, skip_from < end ? skip_from : end},
				 {skip_to > start ? skip_to : start, end}};
	for (int k = 0; k < 2; k++) {
		uint64_t a = ranges[k][0], b = ranges[k][1];
		if (a >= b)
			continue;
		ssize_t r = pread(src, buf, (size_t)(b - a), (off_t)a);
		if (r != (ssize_t)(b - a))
			return lam__error(LAM_ECORRUPT,
					  "view %s: content object short",
					  v->id);
		if (pwrite(fd, buf, (size_t)r, (off_t)a) != r)
			return lam__view_posix(errno, "copying up a chunk");
	}
	lam__crash_point();
	return mark ? mark_chunk(p, chunk) : 0;
}

int lam__partial_prepare_write(lam_view *v, lam__partial *p, int fd,
			       uint64_t off, uint64_t n)
{
	if (n == 0)
		return 0;
	uint64_t last = (off + n - 1) / LAM__CHUNK;
	for (uint64_t c = off / LAM__CHUNK; c <= last; c++) {
		if (present(p, c))
			continue;
		/* Whole chunks come up with their old bytes, and are marked
		 * together before the write (lam__partial_mark): killed
		 * before the write lands, the file reads as it was; after,
		 * as written. Skipping the bytes the write will cover would
		 * save a copy but show holes if killed in between. */
		int rc = fill_chunk(v, p, fd, c, 0, 0, false);
		if (rc < 0)
			return rc;
	}
	return lam__partial_mark(p, off, n);
}

int lam__partial_mark(lam__partial *p, uint64_t off, uint64_t n)
{
	if (n == 0)
		return 0;
	uint64_t first = off / LAM__CHUNK, last = (off + n - 1) / LAM__CHUNK;
	if (first >= p->nchunks)
		return 0;
	if (last >= p->nchunks)
		last = p->nchunks - 1;
	/* One write for all the chunks a write touched: a write that spans
	 * chunks shows whole or not at all, even when killed. */
	for (uint64_t c = first; c <= last; c++)
		p->bits[c] = 1;
	size_t len = (size_t)(last - first + 1);
	if (pwrite(p->mapfd, &p->bits[first], len, (off_t)(HDR + first)) !=
	    (ssize_t)len)
		return lam__view_posix(errno, "updating a chunk map");
	return 0;
}

int lam__partial_truncate(lam_view *v, lam__partial *p, uint64_t size)
{
	(void)v;
	if (size >= p->valid)
		return 0;
	/* Below the new size nothing changes; above it the lower bytes are
	 * gone for good, even if the file grows again. */
	p->valid = size;
	return write_header(p);
}

bool lam__partial_untouched(lam_view *v, lam__partial *p, uint64_t size)
{
	for (uint64_t c = 0; c < p->nchunks; c++)
		if (p->bits[c])
			return false;
	if (size != p->valid)
		return false;
	/* valid only ever shrinks: equal to the object's size means it was
	 * never cut. */
	struct stat st;
	int fd = object_fd(v, p);
	return fd >= 0 && fstat(fd, &st) == 0 &&
	       (uint64_t)st.st_size == p->valid;
}

int lam__partial_forget(lam_view *v, int fd)
{
	char x[64], id[37], name[64];
	priv_name(v, x);
	ssize_t n = fgetxattr(fd, x, id, 36);
	if (n != 36)
		return 0;
	id[36] = '\0';
	fremovexattr(fd, x);
	snprintf(name, sizeof(name), "partial/%s", id);
	unlinkat(v->viewfd, name, 0);
	return 0;
}

int lam__partial_complete(lam_view *v, lam__partial *p, int fd)
{
	for (uint64_t c = 0; c < p->nchunks; c++) {
		if (present(p, c))
			continue;
		int rc = fill_chunk(v, p, fd, c, 0, 0, true);
		if (rc < 0)
			return rc;
	}
	return lam__partial_forget(v, fd);
}
