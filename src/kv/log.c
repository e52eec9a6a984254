/* SPDX-License-Identifier: MIT */
/*
 * The view's key/value log (views/<uuid>/kv.log):
 *   header (64 bytes): magic "LAMKVLOG", u32 version, u32 flags (0), the
 *     base layer's id (32 hex digits, zeros for a view over nothing), 8
 *     bytes zero, u64 checksum: XXH3-64 of the first 56 bytes
 *   records, each: u32 payload length, u8 op, u8 flags (1 = the last
 *     record of a unit), u16 zero, u64 checksum, then the payload:
 *     u32 length + key path, u32 length + value name, u32 argument,
 *     i64 mtime, u32 length + data
 *   Each checksum is XXH3-64 of the payload, seeded with the previous
 *   record's checksum (the header's for the first) xor the record's first
 *   8 bytes: a record only checks in its place.
 *
 * A unit (one change, or a transaction) is written with one write and
 * synced; replay applies a unit only when its last record is there and
 * every record checks. A bad record that reaches the end of the file (or is
 * followed by zeros only) is a torn write: it is dropped, with the unit it
 * belongs to, and the file is cut there. A bad record followed by more
 * data is damage: the view refuses to open rather than lose what follows.
 *
 * The header's base id makes the log safe across a commit: the commit
 * publishes the layer, switches the view to it, then replaces the log; a
 * crash before the replacement leaves a log whose base is not the view's,
 * and replay drops it (the new base holds those changes).
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

#include "kv/internal.h"

#define MAGIC	    "LAMKVLOG"
#define VERSION	    1
#define HEADER_SIZE 64
#define REC_HEADER  16
#define F_END	    1u
#define LOG_NAME    "kv.log"
#define LOCK_NAME   "kv.lock"

static const char *view_name(const lam__kv *kv)
{
	return kv->view && kv->view->id[0] ? kv->view->id : "view";
}

static uint64_t rec_sum(const unsigned char *rec, uint64_t seed)
{
	return XXH3_64bits_withSeed(rec + REC_HEADER, lam__get_le32(rec),
				    seed ^ lam__get_le64(rec));
}

static int put_str(lam__buf *b, const void *s, size_t len)
{
	unsigned char l[4];
	lam__put_le32(l, (uint32_t)len);
	int rc = lam__buf_add(b, l, 4);
	if (rc == 0 && len > 0)
		rc = lam__buf_add(b, s, len);
	return rc;
}

static int encode(lam__buf *b, uint8_t op, const char *path, size_t plen,
		  const char *name, size_t name_len, uint32_t arg,
		  const void *data, size_t size, int64_t mtime)
{
	size_t start = b->len;
	unsigned char h[REC_HEADER] = {0};
	unsigned char t[12];
	int rc;

	if (plen + name_len + size > UINT32_MAX - 64)
		return lam__error(LAM_EINVAL, "change too large to log");
	rc = lam__buf_add(b, h, sizeof(h));
	if (rc == 0)
		rc = put_str(b, path, plen);
	if (rc == 0)
		rc = put_str(b, name, name_len);
	lam__put_le32(t, arg);
	lam__put_le64(t + 4, (uint64_t)mtime);
	if (rc == 0)
		rc = lam__buf_add(b, t, sizeof(t));
	if (rc == 0)
		rc = put_str(b, data, size);
	if (rc < 0) {
		b->len = start;
		return rc;
	}
	unsigned char *r = (unsigned char *)b->data + start;
	lam__put_le32(r, (uint32_t)(b->len - start - REC_HEADER));
	r[4] = op;
	return 0;
}

int lam__kv_log_op(lam__kv *kv, uint8_t op, const lam__kv_path *p,
		   const char *name, size_t name_len, uint32_t arg,
		   const void *data, size_t size, int64_t mtime)
{
	if (kv->replaying || kv->dirfd < 0)
		return 0;
	return encode(&kv->pending, op, p->disp, p->len, name, name_len, arg,
		      data, size, mtime);
}

/* Close the records of buf[start…] into one unit chained from *seed. */
static void seal(char *data, size_t start, size_t end, uint64_t *seed)
{
	size_t last = start;
	for (size_t off = start; off < end;) {
		unsigned char *r = (unsigned char *)data + off;
		last = off;
		off += REC_HEADER + lam__get_le32(r);
	}
	for (size_t off = start; off < end;) {
		unsigned char *r = (unsigned char *)data + off;
		r[5] = off == last ? F_END : 0;
		lam__put_le64(r + 8, 0);
		uint64_t c = rec_sum(r, *seed);
		lam__put_le64(r + 8, c);
		*seed = c;
		off += REC_HEADER + lam__get_le32(r);
	}
}

static int write_at(int fd, const char *data, size_t len, uint64_t off)
{
	while (len > 0) {
		ssize_t n = pwrite(fd, data, len, (off_t)off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		data += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

static void make_header(unsigned char h[HEADER_SIZE], const char *base)
{
	memset(h, 0, HEADER_SIZE);
	memcpy(h, MAGIC, 8);
	lam__put_le32(h + 8, VERSION);
	if (base[0] != '\0')
		memcpy(h + 16, base, 32);
	lam__put_le64(h + 56, XXH3_64bits(h, 56));
}

int lam__kv_log_sync(lam__kv *kv)
{
	if (kv->logfd < 0)
		return 0;
	if (fdatasync(kv->logfd) < 0)
		return lam__error_errno(errno, "view %s: syncing kv.log",
					view_name(kv));
	return 0;
}

int lam__kv_log_flush_unit(lam__kv *kv)
{
	uint64_t seed = kv->log_seed;
	int r;

	if (kv->dirfd < 0 || kv->pending.len == 0)
		return 0;
	if (kv->logfd < 0)
		return lam__error(LAM_EIO,
				  "view %s: kv.log is not open after an "
				  "earlier failure",
				  view_name(kv));
	seal(kv->pending.data, 0, kv->pending.len, &seed);
	lam__crash_point();
	r = write_at(kv->logfd, kv->pending.data, kv->pending.len, kv->log_end);
	lam__crash_point();
	if (r == 0 && !kv->nosync && fdatasync(kv->logfd) < 0)
		r = -errno;
	if (r < 0) {
		/* Cut what was written of the unit, so that the next unit
		 * follows the last good one. */
		if (ftruncate(kv->logfd, (off_t)kv->log_end) < 0)
			lam__close(&kv->logfd);
		return lam__error_errno(-r, "view %s: writing kv.log",
					view_name(kv));
	}
	lam__crash_point();
	kv->log_end += kv->pending.len;
	kv->log_seed = seed;

	/* Keep the log near the size of what it holds: replace it by a
	 * snapshot when it has grown four times over. A failure here loses
	 * nothing (the replacement is atomic), so it is only logged. */
	uint64_t floor = kv->log_live > (1u << 18) ? kv->log_live : (1u << 18);
	if (kv->log_end > 4 * floor && !kv->in_txn) {
		lam__error_saved saved;
		lam__error_save(&saved);
		if (lam__kv_log_rewrite(kv, kv->base) < 0)
			lam__log(LAM_LOG_WARNING,
				 "view %s: compacting kv.log: %s",
				 view_name(kv), lam_error_last()->message);
		lam__error_restore(&saved);
	}
	return 0;
}

/* Encode one upper node (and, when all, its values) as raw records. */
static int raw_node(lam__buf *b, const lam__kv_ukey *k)
{
	int rc = encode(b, LAM__KV_OP_RAW_KEY, k->path, k->len, NULL, 0,
			k->flags & ~(uint32_t)LAM__U_CUT, NULL, 0, k->mtime);
	for (size_t i = 0; rc == 0 && i < k->nvals; i++) {
		const lam__kv_uval *v = k->vals[i];
		rc = encode(b, LAM__KV_OP_RAW_VALUE, k->path, k->len, v->name,
			    v->len, v->type | (v->deleted ? 1u << 31 : 0),
			    v->data, v->size, 0);
	}
	return rc;
}

static int snapshot(lam__buf *b, const lam__kv_ukey *k, bool vol)
{
	int rc = 0;
	bool is_vol = k->flags & LAM__U_VOLATILE;

	if (is_vol != vol && is_vol)
		return 0; /* a volatile subtree in a durable snapshot */
	if (is_vol == vol) {
		bool passthrough =
			(k->flags & (LAM__U_CHANGED | LAM__U_OPAQUE)) == 0 &&
			(k->flags & LAM__U_EXISTS) && k->nvals == 0;
		if (!passthrough ||
		    (vol && k->parent && !(k->parent->flags & LAM__U_VOLATILE)))
			rc = raw_node(b, k);
	}
	for (size_t i = 0; rc == 0 && i < k->nkids; i++)
		rc = snapshot(b, k->kids[i], vol);
	return rc;
}

int lam__kv_volatile_snapshot(lam__kv *kv, lam__buf *out)
{
	out->len = 0;
	if (kv->up.root == NULL)
		return 0;
	return snapshot(out, kv->up.root, true);
}

/* A decoded record. */
typedef struct logrec {
	uint8_t op;
	const char *path;
	uint32_t plen;
	const char *name;
	uint32_t nlen;
	uint32_t arg;
	int64_t mtime;
	const char *data;
	uint32_t size;
} logrec;

static int decode(logrec *r, const unsigned char *rec)
{
	uint32_t len = lam__get_le32(rec);
	const unsigned char *p = rec + REC_HEADER, *end = p + len;

	r->op = rec[4];
	if (end - p < 4)
		return -1;
	r->plen = lam__get_le32(p);
	p += 4;
	if ((size_t)(end - p) < r->plen)
		return -1;
	r->path = (const char *)p;
	p += r->plen;
	if (end - p < 4)
		return -1;
	r->nlen = lam__get_le32(p);
	p += 4;
	if ((size_t)(end - p) < r->nlen)
		return -1;
	r->name = (const char *)p;
	p += r->nlen;
	if (end - p < 16)
		return -1;
	r->arg = lam__get_le32(p);
	r->mtime = (int64_t)lam__get_le64(p + 4);
	r->size = lam__get_le32(p + 12);
	p += 16;
	if ((size_t)(end - p) != r->size)
		return -1;
	r->data = (const char *)p;
	return 0;
}

static int apply_raw_key(lam__kv *kv, const lam__kv_path *p, uint32_t flags,
			 int64_t mtime, bool restore)
{
	lam__kv_ukey *k = NULL;
	int rc;

	flags &= LAM__U_EXISTS | LAM__U_OPAQUE | LAM__U_CHANGED |
		 LAM__U_VOLATILE;
	if (restore) {
		/* Put a volatile key back only where it still fits: its
		 * parent exists and nothing took its place. */
		lam__kv_res res, parent;
		size_t plen = 0;
		for (size_t i = p->len; i-- > 0;) {
			if (p->fold[i] == '\\') {
				plen = i;
				break;
			}
		}
		lam__kv_resolve(kv, p->fold, plen,
				lam__kv_key_hash(p->fold, plen), &parent);
		lam__kv_resolve(kv, p->fold, p->len, p->hash, &res);
		if (!parent.exists || res.exists)
			return 0;
		if (!(res.up && !(res.up->flags & LAM__U_EXISTS)))
			flags &= ~(uint32_t)LAM__U_OPAQUE;
	}
	rc = lam__kv_upper_node(&kv->up, p, &k);
	if (rc < 0)
		return rc;
	if (!(flags & LAM__U_EXISTS)) {
		lam__kv_upper_clear(&kv->up, k);
		flags |= LAM__U_CUT;
	}
	if (flags & LAM__U_OPAQUE)
		flags |= LAM__U_CUT;
	if (k->parent && (k->parent->flags & LAM__U_CUT))
		flags |= LAM__U_CUT;
	if (k->parent && (k->parent->flags & LAM__U_VOLATILE))
		flags |= LAM__U_VOLATILE;
	lam__kv_upper_set_flags(&kv->up, k, flags);
	k->mtime = mtime;
	return 0;
}

static int apply_raw_value(lam__kv *kv, const lam__kv_path *p, const logrec *r,
			   bool restore)
{
	lam__kv_ukey *k = lam__kv_upper_find(&kv->up, p->fold, p->len, p->hash);
	bool deleted = r->arg & (1u << 31);
	uint32_t type = r->arg & ~(1u << 31);
	char *fold;
	int rc;

	if (k == NULL || !(k->flags & LAM__U_EXISTS)) {
		if (restore)
			return 0;
		return lam__error(LAM_ECORRUPT, "a value of a missing key");
	}
	if (restore && !(k->flags & LAM__U_VOLATILE))
		return 0;
	rc = lam__kv_name_check(r->name, r->nlen, true);
	if (rc == 0 && !deleted)
		rc = lam__kv_value_check(type, r->data, r->size, "value");
	if (rc < 0)
		return rc;
	fold = lam__malloc((size_t)r->nlen + 1);
	if (fold == NULL)
		return lam__error(LAM_ENOMEM, "out of memory");
	lam__kv_fold(fold, r->name, r->nlen);
	rc = lam__kv_ukey_set_value(&kv->up, k, r->name, fold, r->nlen,
				    lam__kv_value_hash(p->hash, fold, r->nlen),
				    deleted ? 0 : type, r->data,
				    deleted ? 0 : r->size, deleted);
	lam__free(fold);
	return rc;
}

static int apply_rec(lam__kv *kv, const logrec *r, bool restore)
{
	lam__kv_path p;
	int rc = lam__kv_path_parse(&p, NULL, 0, r->path, r->plen);
	if (rc < 0)
		return rc;
	if (p.len != r->plen) {
		lam__kv_path_free(&p);
		return lam__error(LAM_ECORRUPT, "a key path in a bad form");
	}
	switch (r->op) {
	case LAM__KV_OP_CREATE:
		rc = lam__kv_create_key(kv, &p, false, NULL, r->mtime);
		break;
	case LAM__KV_OP_DELETE:
		rc = lam__kv_delete_key(kv, &p, r->arg & 1, r->mtime);
		break;
	case LAM__KV_OP_SET:
		rc = lam__kv_set(kv, &p, r->name, r->nlen, r->arg, r->data,
				 r->size, r->mtime);
		break;
	case LAM__KV_OP_UNSET:
		rc = lam__kv_unset(kv, &p, r->name, r->nlen, r->mtime);
		break;
	case LAM__KV_OP_RAW_KEY:
		rc = apply_raw_key(kv, &p, r->arg, r->mtime, restore);
		break;
	case LAM__KV_OP_RAW_VALUE:
		rc = apply_raw_value(kv, &p, r, restore);
		break;
	default:
		rc = lam__error(LAM_ECORRUPT, "unknown change %u", r->op);
	}
	lam__kv_path_free(&p);
	return rc;
}

int lam__kv_raw_apply(lam__kv *kv, const char *data, size_t len, bool restore)
{
	bool was = kv->replaying;
	int rc = 0;

	kv->replaying = true;
	for (size_t off = 0; off + REC_HEADER <= len;) {
		const unsigned char *rec = (const unsigned char *)data + off;
		logrec r;
		if (decode(&r, rec) < 0) {
			rc = lam__error(LAM_ECORRUPT, "bad snapshot record");
			break;
		}
		rc = apply_rec(kv, &r, restore);
		if (rc < 0)
			break;
		off += REC_HEADER + lam__get_le32(rec);
	}
	kv->replaying = was;
	kv->version++;
	return rc;
}

int lam__kv_log_rewrite(lam__kv *kv, const char *base)
{
	lam__buf b = {0};
	unsigned char h[HEADER_SIZE];
	int rc, fd;

	if (kv->dirfd < 0 || kv->readonly)
		return 0;
	make_header(h, base);
	rc = lam__buf_add(&b, h, sizeof(h));
	if (rc == 0 && kv->up.root)
		rc = snapshot(&b, kv->up.root, false);
	if (rc < 0) {
		lam__buf_free(&b);
		return rc;
	}
	uint64_t seed = lam__get_le64(h + 56);
	seal(b.data, HEADER_SIZE, b.len, &seed);
	rc = lam__write_file_atomic(kv->dirfd, LOG_NAME, b.data, b.len);
	if (rc < 0) {
		lam__buf_free(&b);
		return lam__error_prefix(rc, "view %s: writing kv.log",
					 view_name(kv));
	}
	fd = openat(kv->dirfd, LOG_NAME, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		rc = lam__error_errno(errno, "view %s: opening kv.log",
				      view_name(kv));
		lam__buf_free(&b);
		lam__close(&kv->logfd);
		return rc;
	}
	lam__close(&kv->logfd);
	kv->logfd = fd;
	kv->log_end = b.len;
	kv->log_live = b.len;
	kv->log_seed = seed;
	lam__buf_free(&b);
	return 0;
}

static int take_lock(lam__kv *kv)
{
	if (kv->readonly || kv->lockfd >= 0)
		return 0;
	int fd = openat(kv->dirfd, LOCK_NAME, O_RDWR | O_CREAT | O_CLOEXEC,
			0644);
	if (fd < 0)
		return lam__error_errno(errno, "view %s: opening kv.lock",
					view_name(kv));
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		int e = errno;
		close(fd);
		if (e == EWOULDBLOCK)
			return lam__error(LAM_EBUSY,
					  "view %s: its key/value log is open "
					  "for writing in another handle",
					  view_name(kv));
		return lam__error_errno(e, "view %s: locking kv.lock",
					view_name(kv));
	}
	kv->lockfd = fd;
	return 0;
}

/* Replay the records of a log image; *valid_out is where good data ends. */
static int replay(lam__kv *kv, const unsigned char *img, size_t size,
		  size_t *valid_out, uint64_t *seed_out)
{
	uint64_t seed = lam__get_le64(img + 56);
	uint64_t unit_seed = seed;
	size_t off = HEADER_SIZE, unit = HEADER_SIZE;
	int rc = 0;

	while (off < size) {
		const unsigned char *rec = img + off;
		bool torn = false;

		if (size - off < REC_HEADER) {
			torn = true;
		} else {
			uint32_t len = lam__get_le32(rec);
			if (len > size - off - REC_HEADER) {
				torn = true;
			} else if (rec_sum(rec, seed) !=
					   lam__get_le64(rec + 8) ||
				   rec[6] != 0 || rec[7] != 0 ||
				   (rec[5] & ~F_END) != 0) {
				/* Torn only when nothing but zeros follows
				 * the record. */
				torn = true;
				for (size_t i = off + REC_HEADER + len;
				     i < size; i++) {
					if (img[i] != 0) {
						torn = false;
						break;
					}
				}
				if (!torn)
					return lam__error(
						LAM_ECORRUPT,
						"view %s: kv.log: damaged "
						"record at offset %zu",
						view_name(kv), off);
			}
		}
		if (torn)
			break;
		seed = lam__get_le64(rec + 8);
		off += REC_HEADER + lam__get_le32(rec);
		if (!(rec[5] & F_END))
			continue;
		/* A whole unit: apply it. */
		for (size_t u = unit; u < off;) {
			const unsigned char *r = img + u;
			logrec lr;
			if (decode(&lr, r) < 0) {
				rc = lam__error(LAM_ECORRUPT, "bad record");
			} else {
				rc = apply_rec(kv, &lr, false);
			}
			if (rc < 0)
				return lam__error_prefix(
					LAM_ECORRUPT,
					"view %s: kv.log: record at offset %zu "
					"does not apply",
					view_name(kv), u);
			u += REC_HEADER + lam__get_le32(r);
		}
		unit = off;
		unit_seed = seed;
	}
	*valid_out = unit;
	*seed_out = unit_seed;
	return 0;
}

int lam__kv_log_load(lam__kv *kv)
{
	struct stat st;
	unsigned char *img = NULL;
	size_t got = 0, valid = 0;
	uint64_t seed = 0;
	int fd, rc;

	rc = take_lock(kv);
	if (rc < 0)
		return rc;
	fd = openat(kv->dirfd, LOG_NAME,
		    (kv->readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC |
			    O_NOFOLLOW);
	if (fd < 0) {
		if (errno != ENOENT)
			return lam__error_errno(errno,
						"view %s: opening kv.log",
						view_name(kv));
		/* No log yet: nothing changed. A writer starts one. */
		if (kv->readonly)
			return 0;
		return lam__kv_log_rewrite(kv, kv->base);
	}
	if (fstat(fd, &st) < 0) {
		rc = lam__error_errno(errno, "view %s: reading kv.log",
				      view_name(kv));
		close(fd);
		return rc;
	}
	if ((uint64_t)st.st_size < HEADER_SIZE) {
		close(fd);
		return lam__error(LAM_ECORRUPT,
				  "view %s: kv.log: truncated header",
				  view_name(kv));
	}
	img = lam__malloc((size_t)st.st_size);
	if (img == NULL) {
		close(fd);
		return lam__error(LAM_ENOMEM, "out of memory reading kv.log");
	}
	rc = lam__read_all(fd, img, (size_t)st.st_size, &got);
	if (rc < 0 || got != (size_t)st.st_size) {
		rc = lam__error_errno(rc < 0 ? -rc : EIO,
				      "view %s: reading kv.log", view_name(kv));
		goto out;
	}
	if (memcmp(img, MAGIC, 8) != 0 ||
	    XXH3_64bits(img, 56) != lam__get_le64(img + 56)) {
		rc = lam__error(LAM_ECORRUPT, "view %s: kv.log: bad header",
				view_name(kv));
		goto out;
	}
	if (lam__get_le32(img + 8) != VERSION) {
		rc = lam__error(LAM_EVERSION,
				"view %s: kv.log: format version %u",
				view_name(kv), lam__get_le32(img + 8));
		goto out;
	}
	char base[33] = {0};
	if (img[16] != 0)
		memcpy(base, img + 16, 32);
	if (strcmp(base, kv->base) != 0) {
		/* The log belongs to the base the view had before a commit
		 * that went through: the new base holds its changes. */
		lam__log(LAM_LOG_INFO,
			 "view %s: dropping kv.log of the former base %s",
			 view_name(kv), base[0] ? base : "(none)");
		close(fd);
		fd = -1;
		rc = lam__kv_log_rewrite(kv, kv->base);
		goto out;
	}
	kv->replaying = true;
	rc = replay(kv, img, got, &valid, &seed);
	kv->replaying = false;
	kv->version++;
	if (rc < 0)
		goto out;
	if (valid < got && !kv->readonly) {
		lam__log(LAM_LOG_WARNING,
			 "view %s: kv.log: dropping a torn tail of %zu bytes",
			 view_name(kv), got - valid);
		if (ftruncate(fd, (off_t)valid) < 0 || fsync(fd) < 0) {
			rc = lam__error_errno(errno, "view %s: cutting kv.log",
					      view_name(kv));
			goto out;
		}
	}
	kv->log_end = valid;
	kv->log_live = valid;
	kv->log_seed = seed;
	if (!kv->readonly) {
		kv->logfd = fd;
		fd = -1;
	}
out:
	if (fd >= 0)
		close(fd);
	lam__free(img);
	if (rc < 0) {
		lam__error_saved saved;
		lam__error_save(&saved);
		lam__kv_upper_free(&kv->up);
		lam__error_restore(&saved);
	}
	return rc;
}
