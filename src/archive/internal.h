/* SPDX-License-Identifier: MIT */
/*
 * Layer exchange: OCI tar streams and image layouts.
 *
 *   sha256.c      sha256 (libcrypto), OCI digest strings, base64
 *   stream.c      byte streams in and out: compression (libarchive's
 *                 filters with its "raw" format), digests, size cap,
 *                 progress
 *   tar-read.c    a strict tar reader (ustar, PAX, GNU long names)
 *   tar-write.c   the deterministic tar writer: lam_layer_export_tar()
 *   tar-import.c  entries from a tar stream, checked and normalised by the
 *                 OCI rules, built into a layer: lam_layer_import_tar()
 *   json.c        a small JSON reader (a tree) for manifests and configs
 *   oci.c         image layouts out: lam_oci_export()
 *   oci-import.c  image layouts in: lam_oci_import()
 *
 * The tar reader is lamina's own rather than libarchive's: the import must
 * refuse what libarchive quietly accepts (a PAX size that disagrees with
 * the header, negative base-256 numbers) and must name the offending entry
 * precisely. libarchive does the (de)compression.
 */
#ifndef LAM_ARCHIVE_INTERNAL_H
#define LAM_ARCHIVE_INTERNAL_H

#include "layer/internal.h"

/* ---- sha256.c ---- */

typedef struct lam__sha256 {
	void *ctx; /* EVP_MD_CTX */
} lam__sha256;

int lam__sha256_init(lam__sha256 *h);
void lam__sha256_update(lam__sha256 *h, const void *data, size_t len);
/* "sha256:" and 64 hex digits; the state is reset for another use. */
void lam__sha256_final(lam__sha256 *h, char out[LAM_OCI_DIGEST_SIZE]);
void lam__sha256_free(lam__sha256 *h);
void lam__sha256_buf(const void *data, size_t len,
		     char out[LAM_OCI_DIGEST_SIZE]);
/* 0 when d is "sha256:" and 64 lower-case hex digits; LAM_EINVAL else. */
int lam__oci_digest_check(const char *d, const char *what);
int lam__base64_encode(lam__buf *out, const void *data, size_t len);
int lam__base64_decode(lam__buf *out, const char *s, size_t len);

/* ---- stream.c ---- */

typedef int (*lam__progress_fn)(uint64_t done, uint64_t total, void *ud);

/* A stream in: the bytes of fd, decompressed. */
typedef struct lam__tin {
	int fd;
	int compression;
	struct archive *ar;
	lam__sha256 raw;   /* the bytes as read (compressed) */
	lam__sha256 plain; /* the bytes as decompressed */
	unsigned char *rbuf;
	size_t rlen, rpos; /* raw bytes read ahead, and taken */
	const unsigned char *win;
	size_t wlen, wpos; /* the decompressed window */
	uint64_t total;	   /* decompressed bytes taken */
	uint64_t max;	   /* 0: no cap */
	uint64_t raw_total;
	uint64_t next_progress;
	bool eof;
	bool hashing;
	lam__progress_fn progress;
	void *userdata;
	int cb_rc;
} lam__tin;

int lam__tin_open(lam__tin *t, int fd, uint64_t max, lam__progress_fn cb,
		  void *ud);
/* Up to len bytes; *got < len only at the end of the stream. */
int lam__tin_read(lam__tin *t, void *buf, size_t len, size_t *got);
int lam__tin_skip(lam__tin *t, uint64_t len, uint64_t *skipped);
/* Read the rest of the stream (digests cover every byte), then the
 * digests. */
int lam__tin_finish(lam__tin *t, char diff_id[LAM_OCI_DIGEST_SIZE],
		    char digest[LAM_OCI_DIGEST_SIZE]);
void lam__tin_close(lam__tin *t);

/* A stream out: tar bytes, compressed to fd. */
typedef struct lam__tout {
	int fd;
	int compression;
	struct archive *ar;
	lam__sha256 raw, plain;
	unsigned char *buf;
	size_t len, cap;
	uint64_t total;
	int werr; /* errno of a failed write */
	lam__progress_fn progress;
	void *userdata;
	uint64_t expect;
} lam__tout;

int lam__tout_open(lam__tout *t, int fd, int compression, int level,
		   lam__progress_fn cb, void *ud);
int lam__tout_write(lam__tout *t, const void *data, size_t len);
int lam__tout_finish(lam__tout *t, char diff_id[LAM_OCI_DIGEST_SIZE],
		     char digest[LAM_OCI_DIGEST_SIZE]);
void lam__tout_close(lam__tout *t);

/* ---- tar-read.c ---- */

/* One tar member, with its extensions (PAX, GNU long names) applied. */
typedef struct lam__tar_hdr {
	lam__buf path;	 /* NUL-terminated, as in the archive */
	lam__buf link;	 /* link target, NUL-terminated */
	lam__buf xattrs; /* blob {u32 nlen, u32 vlen, name, value}…, unsorted */
	char type;	 /* '0' regular, '1' hard link, '2' symlink, '3', '4',
			    '5' dir, '6' fifo */
	uint32_t mode;	 /* permission bits as given (07777) */
	uint32_t uid, gid;
	int64_t mtime_sec;
	uint32_t mtime_nsec;
	uint64_t size; /* data bytes that follow */
	uint32_t devmajor, devminor;
	uint64_t offset; /* where the member's header starts */
} lam__tar_hdr;

typedef struct lam__tar_reader {
	lam__tin *in;
	uint64_t pos;	  /* offset in the decompressed stream */
	uint64_t pending; /* data bytes of the current member left */
	uint64_t pad;	  /* then padding */
	lam__buf pax;	  /* scratch for extended headers */
} lam__tar_reader;

/* 1 with *h filled, 0 at the end-of-archive marker, <0 on error. The
 * member's data must then be read with lam__tar_data() or skipped. */
int lam__tar_next(lam__tar_reader *r, lam__tar_hdr *h);
int lam__tar_data(lam__tar_reader *r, void *buf, size_t len, size_t *got);
int lam__tar_skip_data(lam__tar_reader *r);
void lam__tar_hdr_free(lam__tar_hdr *h);

/* ---- tar-import.c ---- */

/* The import with the extras an image import needs: a key/value delta to
 * give the layer (NULL, or the bytes of a layers/<id>/kv file), and the
 * digests of what was read. */
typedef struct lam__tar_import {
	const lam_tar_import_options *opts;
	const void *kv;
	size_t kv_len;
	char diff_id[LAM_OCI_DIGEST_SIZE]; /* out */
	char digest[LAM_OCI_DIGEST_SIZE];  /* out */
	uint64_t total;			   /* expected bytes, for progress */
} lam__tar_import;

int lam__layer_import_tar(lam_layer **out, lam_store *s, int fd,
			  lam_layer *parent, lam__tar_import *ti);

/* ---- json.c ---- */

enum {
	LAM__JSON_NULL,
	LAM__JSON_BOOL,
	LAM__JSON_NUMBER,
	LAM__JSON_STRING,
	LAM__JSON_ARRAY,
	LAM__JSON_OBJECT,
};

typedef struct lam__json lam__json;
struct lam__json {
	int type;
	char *str; /* STRING: decoded, NUL-terminated; NUMBER: its text */
	size_t len;
	lam__json *items; /* ARRAY and OBJECT: the values */
	char **keys;	  /* OBJECT: the keys */
	size_t n;
	bool b;
	const char *raw; /* where the value's text starts in the input */
	size_t raw_len;
};

/* Parse a whole document; what names it in messages. */
int lam__json_parse(lam__json *out, const char *text, size_t len,
		    const char *what);
void lam__json_free(lam__json *j);
const lam__json *lam__json_get(const lam__json *obj, const char *key);
/* A string member, or NULL when missing or of another type. */
const char *lam__json_str(const lam__json *obj, const char *key);
/* An integer member; LAM_ECORRUPT when missing or not an integer ≥ 0. */
int lam__json_u64(const lam__json *obj, const char *key, uint64_t *out,
		  const char *what);
/* Append s as a JSON string literal. */
int lam__json_quote(lam__buf *b, const char *s, size_t len);

/* ---- oci.c ---- */

/* The host's platform as the OCI spells it ("amd64", "arm64"…). */
const char *lam__oci_host_arch(void);
const char *lam__oci_host_variant(void);

#endif
