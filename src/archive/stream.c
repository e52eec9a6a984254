/* SPDX-License-Identifier: MIT */
/*
 * Byte streams in and out of the tar code. In: the first bytes of the
 * stream say its compression (gzip 1f 8b, zstd 28 b5 2f fd, otherwise none);
 * libarchive's filter of that one kind decompresses, through its "raw"
 * format, and every byte is hashed twice, as read and as decompressed.
 * Out: tar bytes are buffered, hashed, and compressed by libarchive's
 * filter (gzip without a timestamp, so that output is deterministic).
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>

#include "archive/internal.h"

#define RBUF	       (1u << 20)
#define WBUF	       (256u << 10)
#define PROGRESS_EVERY (4u << 20)

static ssize_t read_fd(int fd, void *buf, size_t len)
{
	for (;;) {
		ssize_t n = read(fd, buf, len);
		if (n < 0 && errno == EINTR)
			continue;
		return n;
	}
}

/* Read raw bytes into rbuf, hashing them. */
static ssize_t raw_fill(lam__tin *t)
{
	ssize_t n = read_fd(t->fd, t->rbuf, RBUF);
	if (n > 0) {
		lam__sha256_update(&t->raw, t->rbuf, (size_t)n);
		t->raw_total += (uint64_t)n;
		t->rlen = (size_t)n;
		t->rpos = 0;
	}
	return n;
}

static la_ssize_t ar_read(struct archive *a, void *ud, const void **buf)
{
	lam__tin *t = ud;
	if (t->rpos < t->rlen) {
		*buf = t->rbuf + t->rpos;
		size_t n = t->rlen - t->rpos;
		t->rpos = t->rlen;
		return (la_ssize_t)n;
	}
	ssize_t n = raw_fill(t);
	if (n < 0) {
		archive_set_error(a, errno, "reading the stream");
		return -1;
	}
	t->rpos = t->rlen = (size_t)n;
	*buf = t->rbuf;
	return n;
}

int lam__tin_open(lam__tin *t, int fd, uint64_t max, lam__progress_fn cb,
		  void *ud)
{
	memset(t, 0, sizeof(*t));
	t->fd = fd;
	t->max = max;
	t->progress = cb;
	t->userdata = ud;
	t->next_progress = PROGRESS_EVERY;
	int rc = lam__sha256_init(&t->raw);
	if (rc == 0)
		rc = lam__sha256_init(&t->plain);
	t->hashing = true;
	t->rbuf = lam__malloc(RBUF);
	if (rc == 0 && t->rbuf == NULL)
		rc = lam__error(LAM_ENOMEM, "out of memory");
	if (rc < 0)
		return rc;
	/* Read ahead until the magic number can be seen. */
	while (t->rlen < 4) {
		ssize_t n = read_fd(fd, t->rbuf + t->rlen, RBUF - t->rlen);
		if (n < 0)
			return lam__error_errno(errno, "reading the stream");
		if (n == 0)
			break;
		lam__sha256_update(&t->raw, t->rbuf + t->rlen, (size_t)n);
		t->raw_total += (uint64_t)n;
		t->rlen += (size_t)n;
	}
	const unsigned char *m = t->rbuf;
	if (t->rlen >= 2 && m[0] == 0x1f && m[1] == 0x8b)
		t->compression = LAM_COMPRESS_GZIP;
	else if (t->rlen >= 4 && m[0] == 0x28 && m[1] == 0xb5 && m[2] == 0x2f &&
		 m[3] == 0xfd)
		t->compression = LAM_COMPRESS_ZSTD;
	else if (t->rlen >= 6 && memcmp(m,
					"\xfd"
					"7zXZ",
					5) == 0)
		return lam__error(LAM_ENOTSUP,
				  "xz-compressed layers are not supported "
				  "(OCI layers are plain, gzip or zstd)");
	else
		t->compression = LAM_COMPRESS_NONE;
	if (t->compression == LAM_COMPRESS_NONE) {
		t->win = t->rbuf;
		t->wlen = t->rlen;
		t->wpos = 0;
		if (max != 0 && t->wlen > max)
			return lam__error(LAM_EQUOTA,
					  "the stream is larger than the "
					  "size cap of %llu bytes",
					  (unsigned long long)max);
		return 0;
	}
	t->ar = archive_read_new();
	if (t->ar == NULL)
		return lam__error(LAM_ENOMEM, "out of memory (libarchive)");
	int r = t->compression == LAM_COMPRESS_GZIP ?
			archive_read_support_filter_gzip(t->ar) :
			archive_read_support_filter_zstd(t->ar);
	if (r == ARCHIVE_OK || r == ARCHIVE_WARN)
		r = archive_read_support_format_raw(t->ar);
	if (r == ARCHIVE_OK)
		r = archive_read_open(t->ar, t, NULL, ar_read, NULL);
	struct archive_entry *ent;
	if (r == ARCHIVE_OK)
		r = archive_read_next_header(t->ar, &ent);
	if (r != ARCHIVE_OK && r != ARCHIVE_WARN)
		return lam__error(LAM_ECORRUPT, "decompressing the stream: %s",
				  archive_error_string(t->ar) ?
					  archive_error_string(t->ar) :
					  "not readable");
	return 0;
}

static int report(lam__tin *t)
{
	if (t->progress == NULL || t->total < t->next_progress)
		return 0;
	t->next_progress = t->total + PROGRESS_EVERY;
	int r = t->progress(t->total, 0, t->userdata);
	if (r != 0) {
		t->cb_rc = r;
		lam__error(r < 0 ? r : LAM_ERROR, "stopped by the progress "
						  "callback");
	}
	return r;
}

/* Make the window non-empty, or set eof. */
static int fill(lam__tin *t)
{
	if (t->wpos < t->wlen || t->eof)
		return 0;
	uint64_t before = t->total;
	if (t->compression == LAM_COMPRESS_NONE) {
		ssize_t n = raw_fill(t);
		if (n < 0)
			return lam__error_errno(errno, "reading the stream");
		if (n == 0) {
			t->eof = true;
			return 0;
		}
		t->win = t->rbuf;
		t->wlen = (size_t)n;
		t->rpos = t->rlen;
	} else {
		const void *buf;
		size_t size;
		la_int64_t off;
		int r = archive_read_data_block(t->ar, &buf, &size, &off);
		if (r == ARCHIVE_EOF) {
			t->eof = true;
			return 0;
		}
		if (r != ARCHIVE_OK && r != ARCHIVE_WARN)
			return lam__error(LAM_ECORRUPT,
					  "decompressing the stream: %s",
					  archive_error_string(t->ar) ?
						  archive_error_string(t->ar) :
						  "damaged");
		t->win = buf;
		t->wlen = size;
		if (t->hashing)
			lam__sha256_update(&t->plain, buf, size);
	}
	t->wpos = 0;
	(void)before;
	return 0;
}

static int take(lam__tin *t, size_t n)
{
	t->wpos += n;
	t->total += n;
	if (t->max != 0 && t->total > t->max)
		return lam__error(LAM_EQUOTA,
				  "the stream is larger than the size cap of "
				  "%llu bytes (a decompression bomb?)",
				  (unsigned long long)t->max);
	return report(t);
}

int lam__tin_read(lam__tin *t, void *buf, size_t len, size_t *got)
{
	*got = 0;
	while (*got < len) {
		int rc = fill(t);
		if (rc < 0)
			return rc;
		if (t->eof)
			break;
		size_t n = t->wlen - t->wpos;
		if (n > len - *got)
			n = len - *got;
		memcpy((char *)buf + *got, t->win + t->wpos, n);
		*got += n;
		rc = take(t, n);
		if (rc != 0)
			return rc;
	}
	return 0;
}

int lam__tin_skip(lam__tin *t, uint64_t len, uint64_t *skipped)
{
	*skipped = 0;
	while (*skipped < len) {
		int rc = fill(t);
		if (rc < 0)
			return rc;
		if (t->eof)
			break;
		size_t n = t->wlen - t->wpos;
		if (n > len - *skipped)
			n = (size_t)(len - *skipped);
		*skipped += n;
		rc = take(t, n);
		if (rc != 0)
			return rc;
	}
	return 0;
}

int lam__tin_finish(lam__tin *t, char diff_id[LAM_OCI_DIGEST_SIZE],
		    char digest[LAM_OCI_DIGEST_SIZE])
{
	for (;;) {
		uint64_t got;
		int rc = lam__tin_skip(t, UINT64_MAX, &got);
		if (rc != 0)
			return rc;
		if (t->eof)
			break;
	}
	if (t->compression != LAM_COMPRESS_NONE) {
		/* What follows the compressed stream counts in its digest. */
		for (;;) {
			ssize_t n = raw_fill(t);
			if (n < 0)
				return lam__error_errno(errno,
							"reading the stream");
			if (n == 0)
				break;
		}
	}
	lam__sha256_final(&t->raw, digest);
	if (t->compression == LAM_COMPRESS_NONE)
		memcpy(diff_id, digest, LAM_OCI_DIGEST_SIZE);
	else
		lam__sha256_final(&t->plain, diff_id);
	return 0;
}

void lam__tin_close(lam__tin *t)
{
	if (t->ar != NULL)
		archive_read_free(t->ar);
	t->ar = NULL;
	lam__sha256_free(&t->raw);
	lam__sha256_free(&t->plain);
	lam__free(t->rbuf);
	t->rbuf = NULL;
}

/* ---- out ---- */

static la_ssize_t ar_write(struct archive *a, void *ud, const void *buf,
			   size_t n)
{
	lam__tout *t = ud;
	lam__sha256_update(&t->raw, buf, n);
	int r = lam__write_all(t->fd, buf, n);
	if (r < 0) {
		t->werr = -r;
		archive_set_error(a, -r, "writing the stream");
		return -1;
	}
	return (la_ssize_t)n;
}

static int ar_fail(lam__tout *t, const char *what)
{
	if (t->werr != 0)
		return lam__error_errno(t->werr, "writing the stream");
	return lam__error(LAM_ERROR, "%s: %s", what,
			  archive_error_string(t->ar) ?
				  archive_error_string(t->ar) :
				  "libarchive failed");
}

int lam__tout_open(lam__tout *t, int fd, int compression, int level,
		   lam__progress_fn cb, void *ud)
{
	memset(t, 0, sizeof(*t));
	t->fd = fd;
	t->compression = compression;
	t->progress = cb;
	t->userdata = ud;
	int rc = lam__sha256_init(&t->raw);
	if (rc == 0)
		rc = lam__sha256_init(&t->plain);
	if (rc < 0)
		return rc;
	t->cap = WBUF;
	t->buf = lam__malloc(t->cap);
	if (t->buf == NULL)
		return lam__error(LAM_ENOMEM, "out of memory");
	if (compression == LAM_COMPRESS_NONE)
		return 0;
	if (compression != LAM_COMPRESS_GZIP &&
	    compression != LAM_COMPRESS_ZSTD)
		return lam__error(LAM_EINVAL, "unknown compression %d",
				  compression);
	t->ar = archive_write_new();
	if (t->ar == NULL)
		return lam__error(LAM_ENOMEM, "out of memory (libarchive)");
	const char *fname = compression == LAM_COMPRESS_GZIP ? "gzip" : "zstd";
	int r = compression == LAM_COMPRESS_GZIP ?
			archive_write_add_filter_gzip(t->ar) :
			archive_write_add_filter_zstd(t->ar);
	if (r != ARCHIVE_OK && r != ARCHIVE_WARN)
		return lam__error(LAM_ENOTSUP, "%s compression: %s", fname,
				  archive_error_string(t->ar));
	/* A gzip header holds a time unless told not to. */
	if (compression == LAM_COMPRESS_GZIP)
		archive_write_set_filter_option(t->ar, "gzip", "timestamp",
						NULL);
	if (level != 0) {
		char lv[16];
		snprintf(lv, sizeof(lv), "%d", level);
		if (archive_write_set_filter_option(t->ar, fname,
						    "compression-level",
						    lv) != ARCHIVE_OK)
			return lam__error(LAM_EINVAL,
					  "compression level %d: %s", level,
					  archive_error_string(t->ar));
	}
	r = archive_write_set_format_raw(t->ar);
	if (r == ARCHIVE_OK)
		r = archive_write_set_bytes_per_block(t->ar, 0);
	if (r == ARCHIVE_OK)
		r = archive_write_open(t->ar, t, NULL, ar_write, NULL);
	if (r != ARCHIVE_OK)
		return ar_fail(t, "starting compression");
	struct archive_entry *e = archive_entry_new();
	if (e == NULL)
		return lam__error(LAM_ENOMEM, "out of memory (libarchive)");
	archive_entry_set_filetype(e, AE_IFREG);
	archive_entry_set_pathname(e, "layer.tar");
	r = archive_write_header(t->ar, e);
	archive_entry_free(e);
	if (r != ARCHIVE_OK)
		return ar_fail(t, "starting compression");
	return 0;
}

static int flush(lam__tout *t)
{
	if (t->len == 0)
		return 0;
	lam__sha256_update(&t->plain, t->buf, t->len);
	if (t->compression == LAM_COMPRESS_NONE) {
		int r = lam__write_all(t->fd, t->buf, t->len);
		if (r < 0)
			return lam__error_errno(-r, "writing the stream");
	} else {
		size_t off = 0;
		while (off < t->len) {
			la_ssize_t n = archive_write_data(t->ar, t->buf + off,
							  t->len - off);
			if (n <= 0)
				return ar_fail(t, "compressing");
			off += (size_t)n;
		}
	}
	t->total += t->len;
	t->len = 0;
	if (t->progress != NULL) {
		int r = t->progress(t->total, t->expect, t->userdata);
		if (r != 0) {
			lam__error(r < 0 ? r : LAM_ERROR,
				   "stopped by the progress callback");
			return r;
		}
	}
	return 0;
}

int lam__tout_write(lam__tout *t, const void *data, size_t len)
{
	const char *p = data;
	while (len > 0) {
		size_t n = t->cap - t->len;
		if (n > len)
			n = len;
		memcpy(t->buf + t->len, p, n);
		t->len += n;
		p += n;
		len -= n;
		if (t->len == t->cap) {
			int rc = flush(t);
			if (rc != 0)
				return rc;
		}
	}
	return 0;
}

int lam__tout_finish(lam__tout *t, char diff_id[LAM_OCI_DIGEST_SIZE],
		     char digest[LAM_OCI_DIGEST_SIZE])
{
	int rc = flush(t);
	if (rc != 0)
		return rc;
	char d[LAM_OCI_DIGEST_SIZE];
	lam__sha256_final(&t->plain, d);
	if (diff_id)
		memcpy(diff_id, d, sizeof(d));
	if (t->compression == LAM_COMPRESS_NONE) {
		if (digest)
			memcpy(digest, d, sizeof(d));
		return 0;
	}
	if (archive_write_close(t->ar) != ARCHIVE_OK)
		return ar_fail(t, "finishing compression");
	lam__sha256_final(&t->raw, d);
	if (digest)
		memcpy(digest, d, sizeof(d));
	return 0;
}

void lam__tout_close(lam__tout *t)
{
	if (t->ar != NULL)
		archive_write_free(t->ar);
	t->ar = NULL;
	lam__sha256_free(&t->raw);
	lam__sha256_free(&t->plain);
	lam__free(t->buf);
	t->buf = NULL;
}
