/* SPDX-License-Identifier: MIT */
/*
 * A view's own quotas. The limits are stored in views/<uuid>/quota; usage
 * is counted from the upper itself (a walk, when first needed and after
 * operations too complex to count step by step), then kept up to date by
 * each change. A write is checked before it starts against the bytes it
 * could newly allocate (holes it fills, growth past the end, chunks copied
 * up), so a refused write changes nothing.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "kv/internal.h"
#include "view/internal.h"

static bool limited(const lam__vquota *q)
{
	return q->limits.max_bytes || q->limits.max_inodes;
}

static int load_limits(lam_view *v)
{
	lam__vquota *q = &v->quota;
	if (q->loaded)
		return 0;
	q->limits = (lam_view_quota)LAM_VIEW_QUOTA_INIT;
	q->loaded = true;
	if (v->viewfd < 0)
		return 0;
	char *text;
	size_t len;
	int rc = lam__read_file_at(v->viewfd, "quota", &text, &len, 4096);
	if (rc == LAM_ENOTFOUND) {
		lam__error_reset();
		return 0;
	}
	if (rc < 0)
		return rc;
	unsigned long long b, i, k, vb;
	if (sscanf(text, "bytes %llu\ninodes %llu\nkeys %llu\nvalue-bytes %llu",
		   &b, &i, &k, &vb) != 4) {
		lam__free(text);
		return lam__error(LAM_ECORRUPT, "view %s: quota file damaged",
				  v->id);
	}
	lam__free(text);
	q->limits.max_bytes = b;
	q->limits.max_inodes = i;
	q->limits.max_keys = k;
	q->limits.max_value_bytes = vb;
	return 0;
}

uint64_t lam__quota_alloc(int fd)
{
	struct stat st;
	return fstat(fd, &st) == 0 ? (uint64_t)st.st_blocks * 512 : 0;
}

/* Count the upper: distinct inodes, and allocation of regular files. */
static void count_tree(int dirfd, lam__vquota *q, lam__objset *seen)
{
	DIR *d = lam__opendir_dup(dirfd);
	if (d == NULL)
		return;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		struct stat st;
		if (fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		/* Hard links: one inode, counted once. */
		lam__objid key = {{{0}}, 0};
		memcpy(key.digest.b, &st.st_ino, sizeof(st.st_ino));
		if (st.st_nlink > 1 && lam__objset_add(seen, &key) == 0)
			continue;
		q->inodes++;
		if (S_ISREG(st.st_mode))
			q->bytes += (uint64_t)st.st_blocks * 512;
		if (!S_ISDIR(st.st_mode))
			continue;
		int sub =
			openat(dirfd, de->d_name,
			       O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (sub >= 0) {
			count_tree(sub, q, seen);
			close(sub);
		}
	}
	closedir(d);
}

static int ensure_counted(lam_view *v)
{
	int rc = load_limits(v);
	lam__vquota *q = &v->quota;
	if (rc < 0 || q->counted || v->upperfd < 0)
		return rc;
	q->bytes = q->inodes = 0;
	lam__objset seen = {0};
	count_tree(v->upperfd, q, &seen);
	lam__objset_free(&seen);
	q->counted = true;
	return 0;
}

void lam__quota_dirty(lam_view *v)
{
	v->quota.counted = false;
}

int lam__quota_inodes(lam_view *v, uint64_t more)
{
	int rc = load_limits(v);
	if (rc < 0 || !limited(&v->quota) || v->quota.limits.max_inodes == 0)
		return rc;
	rc = ensure_counted(v);
	if (rc == 0 && v->quota.inodes + more > v->quota.limits.max_inodes)
		return lam__view_posix(EDQUOT,
				       "view %s: inode quota of %" PRIu64
				       " reached",
				       v->id, v->quota.limits.max_inodes);
	return rc;
}

void lam__quota_add_inodes(lam_view *v, int64_t delta)
{
	lam__vquota *q = &v->quota;
	if (!q->counted)
		return;
	if (delta < 0 && (uint64_t)-delta > q->inodes)
		q->inodes = 0;
	else
		q->inodes = (uint64_t)((int64_t)q->inodes + delta);
}

/* Bytes in [off, off+n) of fd that hold no data yet (holes and growth),
 * rounded up to whole blocks. */
static uint64_t unallocated(int fd, uint64_t off, uint64_t n)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return n;
	uint64_t blk = st.st_blksize > 0 ? (uint64_t)st.st_blksize : 4096;
	uint64_t start = off / blk * blk;
	uint64_t end = (off + n + blk - 1) / blk * blk;
	uint64_t size = (uint64_t)st.st_size;
	uint64_t missing = end > size ? end - (size > start ? size : start) : 0;
	uint64_t pos = start;
	uint64_t limit = end < size ? end : size;
	while (pos < limit) {
		off_t hole = lseek(fd, (off_t)pos, SEEK_HOLE);
		if (hole < 0 || (uint64_t)hole >= limit)
			break;
		off_t data = lseek(fd, hole, SEEK_DATA);
		uint64_t hend = data < 0 || (uint64_t)data > limit ?
					limit :
					(uint64_t)data;
		missing += hend - (uint64_t)hole;
		pos = hend;
	}
	return missing;
}

int lam__quota_write(lam_view *v, int fd, uint64_t off, uint64_t n,
		     bool partial)
{
	int rc = load_limits(v);
	if (rc < 0 || v->quota.limits.max_bytes == 0 || n == 0)
		return rc;
	rc = ensure_counted(v);
	if (rc < 0)
		return rc;
	/* In a partial file, chunks brought up from the lower fill holes
	 * around the range too. */
	uint64_t cs = partial ? off / LAM__CHUNK * LAM__CHUNK : off;
	uint64_t ce =
		partial ? (off + n + LAM__CHUNK - 1) / LAM__CHUNK * LAM__CHUNK :
			  off + n;
	uint64_t need = unallocated(fd, cs, ce - cs);
	if (v->quota.bytes + need > v->quota.limits.max_bytes)
		return lam__view_posix(EDQUOT,
				       "view %s: byte quota of %" PRIu64
				       " reached (%" PRIu64 " used)",
				       v->id, v->quota.limits.max_bytes,
				       v->quota.bytes);
	return 0;
}

void lam__quota_blocks(lam_view *v, uint64_t before, uint64_t after)
{
	lam__vquota *q = &v->quota;
	if (!q->counted)
		return;
	if (after >= before)
		q->bytes += after - before;
	else
		q->bytes = q->bytes > before - after ?
				   q->bytes - (before - after) :
				   0;
}

int lam__quota_limits(lam_view *v, lam_view_quota *out)
{
	int rc = load_limits(v);
	if (rc == 0)
		*out = v->quota.limits;
	return rc;
}

int lam_view_set_quota(lam_view *view, const lam_view_quota *quota)
{
	lam__error_reset();
	if (view == NULL || quota == NULL)
		return lam__error(LAM_EINVAL, "lam_view_set_quota: NULL");
	if (quota->version != LAM_VIEW_QUOTA_VERSION)
		return lam__error(LAM_EINVAL, "unknown quota version %u",
				  quota->version);
	int rc = lam__view_writable(view);
	if (rc < 0)
		return rc;
	char text[256];
	int n = snprintf(text, sizeof(text),
			 "bytes %" PRIu64 "\ninodes %" PRIu64 "\nkeys %" PRIu64
			 "\nvalue-bytes %" PRIu64 "\n",
			 quota->max_bytes, quota->max_inodes, quota->max_keys,
			 quota->max_value_bytes);
	rc = lam__write_file_atomic(view->viewfd, "quota", text, (size_t)n);
	if (rc < 0)
		return rc;
	view->quota.limits = *quota;
	view->quota.loaded = true;
	if (view->kv != NULL) {
		view->kv->max_keys = quota->max_keys;
		view->kv->max_value_bytes = quota->max_value_bytes;
	}
	return 0;
}

int lam_view_get_quota(lam_view *view, lam_view_quota *out)
{
	lam__error_reset();
	if (view == NULL || out == NULL)
		return lam__error(LAM_EINVAL, "lam_view_get_quota: NULL");
	int rc = load_limits(view);
	if (rc == 0)
		*out = view->quota.limits;
	return rc;
}

int lam_view_get_usage(lam_view *view, lam_view_usage *out)
{
	lam__error_reset();
	if (view == NULL || out == NULL)
		return lam__error(LAM_EINVAL, "lam_view_get_usage: NULL");
	memset(out, 0, sizeof(*out));
	lam__quota_dirty(view);
	int rc = ensure_counted(view);
	if (rc == 0) {
		out->bytes = view->quota.bytes;
		out->inodes = view->quota.inodes;
	}
	/* The key/value side counts what its log replays. */
	lam__kv *kv;
	if (rc == 0 && view->stored && lam__kv_of_view(&kv, view) == 0) {
		out->keys = kv->up.nchanged;
		out->value_bytes = kv->up.value_bytes;
	}
	if (rc == 0)
		lam__error_reset();
	return rc;
}
