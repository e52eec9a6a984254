/* SPDX-License-Identifier: MIT */
/* The view's namespace operations: stat, create, remove, rename, links,
 * metadata and extended attributes. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "view/internal.h"

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif
#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif
#ifndef RENAME_WHITEOUT
#define RENAME_WHITEOUT (1 << 2)
#endif

/* Resolve a path into a freshly allocated vpath. */
static int begin(lam_view *v, const char *path, unsigned int flags,
		 lam__vpath **out)
{
	*out = NULL;
	lam__error_reset();
	if (v == NULL || path == NULL)
		return lam__error(LAM_EINVAL, "NULL view or path");
	lam__vpath *vp = lam__malloc(sizeof(*vp));
	if (vp == NULL)
		return lam__error(LAM_ENOMEM, "out of memory");
	int rc = lam__view_resolve(v, path, flags, vp);
	if (rc < 0) {
		lam__free(vp);
		return rc;
	}
	*out = vp;
	return 0;
}

static int need_entry(lam__vpath *vp, const char *path)
{
	if (lam__vlast(vp)->mode == 0)
		return lam__view_posix(ENOENT, "%s: no such entry", path);
	return 0;
}

static void fill_from_stat(lam_stat *o, const struct stat *st)
{
	memset(o, 0, sizeof(*o));
	o->ino = (uint64_t)st->st_ino | (1ull << 63);
	o->mode = st->st_mode;
	o->nlink = (uint32_t)st->st_nlink;
	o->uid = st->st_uid;
	o->gid = st->st_gid;
	o->size = (uint64_t)st->st_size;
	o->rdev = st->st_rdev;
	o->mtime_sec = st->st_mtim.tv_sec;
	o->mtime_nsec = st->st_mtim.tv_nsec;
	o->atime_sec = st->st_atim.tv_sec;
	o->atime_nsec = st->st_atim.tv_nsec;
	o->ctime_sec = st->st_ctim.tv_sec;
	o->ctime_nsec = st->st_ctim.tv_nsec;
}

void lam__view_fill_lower(lam_view *v, size_t idx, lam_stat *o);

/* The links of a lower hard-link group that the view still shows: a
 * member deleted or replaced in the upper no longer counts (the kernel
 * keeps reporting the lower inode's count; docs/views.md). */
static uint32_t visible_links(lam_view *v, size_t idx)
{
	size_t first, count;
	lam__chain_link_members(v->chain, idx, &first, &count);
	lam__vpath *mp = lam__malloc(sizeof(*mp));
	if (mp == NULL)
		return (uint32_t)count;
	uint32_t n = 0;
	lam__error_saved saved;
	lam__error_save(&saved);
	for (size_t k = 0; k < count; k++) {
		uint32_t m = v->chain->links[first + k];
		lam__entry e;
		lam__chain_entry(v->chain, m, &e);
		char path[4096];
		if (e.path_len >= sizeof(path))
			continue;
		memcpy(path, e.path, e.path_len);
		path[e.path_len] = '\0';
		if (lam__view_resolve(v, path, 0, mp) == 0 &&
		    lam__vlast(mp)->lower == (int64_t)m &&
		    !lam__vlast(mp)->upper && !lam__vlast(mp)->whiteout)
			n++;
	}
	lam__error_restore(&saved);
	lam__free(mp);
	return n ? n : 1;
}

void lam__view_fill_lower(lam_view *v, size_t idx, lam_stat *o)
{
	lam__entry e;
	lam__chain_entry(v->chain, idx, &e);
	memset(o, 0, sizeof(*o));
	o->ino = lam__view_lower_ino(v->chain, idx);
	o->mode = e.mode;
	o->uid = e.uid;
	o->gid = e.gid;
	o->size = S_ISLNK(e.mode) ? e.target_len : e.size;
	o->rdev = e.rdev;
	o->mtime_sec = o->atime_sec = o->ctime_sec = e.mtime_sec;
	o->mtime_nsec = o->atime_nsec = o->ctime_nsec = e.mtime_nsec;
	if (S_ISDIR(e.mode)) {
		o->nlink = 2;
	} else if (e.link_group != 0) {
		o->nlink = visible_links(v, idx);
	} else {
		o->nlink = 1;
	}
}

int lam__view_stat_level(lam_view *v, lam__vpath *vp, lam_stat *out)
{
	lam__vlevel *l = lam__vlast(vp);
	if (l->mode == 0)
		return lam__view_posix(ENOENT, "%s: no such entry", vp->p);
	if (l->upper) {
		struct stat st;
		if (fstatat(v->upperfd, vp->len ? vp->p : ".", &st,
			    AT_SYMLINK_NOFOLLOW) < 0)
			return lam__view_posix(errno, "stat %s", vp->p);
		fill_from_stat(out, &st);
		return 0;
	}
	lam__view_fill_lower(v, (size_t)l->lower, out);
	return 0;
}

static int do_stat(lam_view *v, const char *path, lam_stat *out,
		   unsigned int flags)
{
	lam__vpath *vp;
	int rc = begin(v, path, flags, &vp);
	if (rc < 0)
		return rc;
	if (out == NULL)
		rc = lam__error(LAM_EINVAL, "NULL stat buffer");
	else
		rc = lam__view_stat_level(v, vp, out);
	lam__free(vp);
	return rc;
}

int lam_view_stat(lam_view *view, const char *path, lam_stat *out)
{
	return do_stat(view, path, out, LAM__FOLLOW);
}

int lam_view_lstat(lam_view *view, const char *path, lam_stat *out)
{
	return do_stat(view, path, out, 0);
}

/* Get ready to create the last level: it must not exist, the view must be
 * writable and the parents are copied up. */
static int prep_create(lam_view *v, lam__vpath *vp, const char *path,
		       bool folder)
{
	int rc = lam__view_writable(v);
	if (rc < 0)
		return rc;
	/* "new/" names a folder: only mkdir makes one. */
	size_t plen = strlen(path);
	if (plen > 0 && path[plen - 1] == '/' && lam__vlast(vp)->mode == 0 &&
	    !folder)
		return lam__view_posix(ENOENT, "%s: no such folder", path);
	if (vp->depth < 2)
		return lam__view_posix(EEXIST, "%s: the root exists", path);
	if (lam__vlast(vp)->mode != 0)
		return lam__view_posix(EEXIST, "%s: already exists", path);
	return lam__view_copy_up(v, vp, false);
}

/* Put an entry staged as work/<tmp> at the last level's path, replacing
 * the whiteout there in one step; a folder replacing a whiteout becomes
 * opaque so the deleted lower folder stays hidden. */
static int publish_staged(lam_view *v, int workfd, const char *tmp,
			  lam__vpath *vp, bool dir)
{
	if (dir) {
		char x[64], p[PATH_MAX + 64];
		lam__view_ovl(v, x, "opaque");
		if (lam__fd_path(p, sizeof(p), workfd, tmp) == 0 &&
		    lsetxattr(p, x, "y", 1, 0) < 0)
			return lam__view_posix(errno, "marking %s", vp->p);
		if (renameat2(workfd, tmp, v->upperfd, vp->p, RENAME_EXCHANGE) <
		    0)
			return lam__view_posix(errno, "creating %s", vp->p);
		unlinkat(workfd, tmp, 0);
		return 0;
	}
	if (renameat(workfd, tmp, v->upperfd, vp->p) < 0)
		return lam__view_posix(errno, "creating %s", vp->p);
	return 0;
}

typedef int (*make_fn)(int dirfd, const char *name, void *arg);

static int make_link(int dirfd, const char *name, void *arg);
static const make_fn make_link_fn = make_link;
static int create_entry_in(lam_view *v, lam__vpath *vp, bool dir, make_fn make,
			   void *arg);

/* Create an entry with make(): in place when nothing is there, or staged
 * in work/ and swapped in over a whiteout. */
static int create_entry(lam_view *v, lam__vpath *vp, bool dir, make_fn make,
			void *arg)
{
	/* A hard link takes no inode; anything else takes one. */
	bool inode = make != make_link_fn;
	if (inode) {
		int q = lam__quota_inodes(v, 1);
		if (q < 0)
			return q;
	}
	int rc = create_entry_in(v, vp, dir, make, arg);
	if (rc == 0 && inode)
		lam__quota_add_inodes(v, 1);
	return rc;
}

static int create_entry_in(lam_view *v, lam__vpath *vp, bool dir, make_fn make,
			   void *arg)
{
	if (!lam__vlast(vp)->whiteout) {
		int r = make(v->upperfd, vp->p, arg);
		return r < 0 ? lam__view_posix(-r, "creating %s", vp->p) : 0;
	}
	int workfd = lam__view_workfd(v);
	if (workfd < 0)
		return workfd;
	char tmp[64];
	lam__view_tmpname(tmp);
	int rc = make(workfd, tmp, arg);
	if (rc < 0)
		rc = lam__view_posix(-rc, "creating %s", vp->p);
	else {
		lam__view_inherit_setgid(v, vp, workfd, tmp, dir);
		rc = publish_staged(v, workfd, tmp, vp, dir);
	}
	if (rc < 0)
		lam__rmtree_quiet(workfd, tmp);
	close(workfd);
	return rc;
}

static int make_dir(int dirfd, const char *name, void *arg)
{
	return mkdirat(dirfd, name, *(uint32_t *)arg & 07777) < 0 ? -errno : 0;
}

int lam_view_mkdir(lam_view *view, const char *path, uint32_t mode)
{
	lam__vpath *vp;
	int rc = begin(view, path, LAM__CREATE, &vp);
	if (rc < 0)
		return rc;
	rc = prep_create(view, vp, path, true);
	if (rc == 0)
		rc = create_entry(view, vp, true, make_dir, &mode);
	lam__free(vp);
	return rc;
}

typedef struct node_arg {
	uint32_t mode;
	uint64_t rdev;
} node_arg;

static int make_node(int dirfd, const char *name, void *arg)
{
	node_arg *a = arg;
	if (S_ISREG(a->mode)) {
		int fd = openat(dirfd, name,
				O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
				a->mode & 07777);
		if (fd < 0)
			return -errno;
		close(fd);
		return 0;
	}
	return mknodat(dirfd, name, a->mode, (dev_t)a->rdev) < 0 ? -errno : 0;
}

int lam_view_mknod(lam_view *view, const char *path, uint32_t mode,
		   uint64_t rdev)
{
	uint32_t type = mode & S_IFMT;
	if (type == 0)
		type = S_IFREG;
	if (type != S_IFREG && type != S_IFIFO && type != S_IFCHR &&
	    type != S_IFBLK && type != S_IFSOCK) {
		lam__error_reset();
		return lam__view_posix(EINVAL, "%s: mknod of this type",
				       path ? path : "");
	}

	lam__vpath *vp;
	int rc = begin(view, path, LAM__CREATE, &vp);
	if (rc < 0)
		return rc;
	node_arg a = {type | (mode & 07777), rdev};
	rc = prep_create(view, vp, path, false);
	/* A 0/0 character device is a whiteout to overlayfs: refused, as
	 * the kernel refuses it (after EEXIST, as the kernel orders it). */
	if (rc == 0 && type == S_IFCHR && rdev == 0)
		rc = lam__view_posix(EPERM,
				     "%s: a 0/0 character device is "
				     "a whiteout",
				     path);
	if (rc == 0)
		rc = create_entry(view, vp, false, make_node, &a);
	lam__free(vp);
	return rc;
}

int lam_view_mkfifo(lam_view *view, const char *path, uint32_t mode)
{
	return lam_view_mknod(view, path, S_IFIFO | (mode & 07777), 0);
}

static int make_symlink(int dirfd, const char *name, void *arg)
{
	return symlinkat(arg, dirfd, name) < 0 ? -errno : 0;
}

int lam_view_symlink(lam_view *view, const char *target, const char *linkpath)
{
	if (target == NULL || target[0] == '\0') {
		lam__error_reset();
		return lam__view_posix(ENOENT, "empty symlink target");
	}
	lam__vpath *vp;
	int rc = begin(view, linkpath, LAM__CREATE, &vp);
	if (rc < 0)
		return rc;
	rc = prep_create(view, vp, linkpath, false);
	if (rc == 0)
		rc = create_entry(view, vp, false, make_symlink,
				  (void *)target);
	lam__free(vp);
	return rc;
}

typedef struct link_arg {
	int upperfd;
	const char *old;
} link_arg;

static int make_link(int dirfd, const char *name, void *arg)
{
	link_arg *a = arg;
	return linkat(a->upperfd, a->old, dirfd, name, 0) < 0 ? -errno : 0;
}

int lam_view_link(lam_view *view, const char *oldpath, const char *newpath)
{
	lam__vpath *op, *np = NULL;
	int rc = begin(view, oldpath, 0, &op);
	if (rc < 0)
		return rc;
	rc = need_entry(op, oldpath);
	if (rc == 0)
		rc = begin(view, newpath, LAM__CREATE, &np);
	/* link(2) reports an existing new path before a folder as old. */
	if (rc == 0)
		rc = prep_create(view, np, newpath, false);
	if (rc == 0 && S_ISDIR(lam__vlast(op)->mode))
		rc = lam__view_posix(EPERM, "%s: cannot link a folder",
				     oldpath);
	if (rc == 0)
		rc = lam__view_copy_up(view, op, true);
	if (rc == 0) {
		/* Copying the old path up may have changed the new path's
		 * parents (shared folders); resolve it again. */
		rc = lam__view_resolve(view, newpath, 0, np);
		if (rc == 0)
			rc = lam__view_copy_up(view, np, false);
	}
	link_arg a = {view->upperfd, op->p};
	if (rc == 0)
		rc = create_entry(view, np, false, make_link, &a);
	lam__free(op);
	lam__free(np);
	return rc;
}

int lam_view_readlink(char **out, lam_view *view, const char *path)
{
	if (out != NULL)
		*out = NULL;
	lam__vpath *vp;
	int rc = begin(view, path, 0, &vp);
	if (rc < 0)
		return rc;
	if (out == NULL)
		rc = lam__error(LAM_EINVAL, "lam_view_readlink: NULL out");
	if (rc == 0)
		rc = need_entry(vp, path);
	if (rc == 0 && !S_ISLNK(lam__vlast(vp)->mode))
		rc = lam__view_posix(EINVAL, "%s: not a symlink", path);
	if (rc == 0) {
		lam__vlevel *l = lam__vlast(vp);
		char buf[PATH_MAX + 1];
		if (l->upper) {
			ssize_t n = readlinkat(view->upperfd, vp->p, buf,
					       sizeof(buf) - 1);
			if (n < 0)
				rc = lam__view_posix(errno, "%s", path);
			else
				buf[n] = '\0';
		} else {
			lam__entry e;
			lam__chain_entry(view->chain, (size_t)l->lower, &e);
			size_t n = e.target_len < PATH_MAX ? e.target_len :
							     PATH_MAX;
			memcpy(buf, e.target, n);
			buf[n] = '\0';
		}
		if (rc == 0 && (*out = lam__strdup(buf)) == NULL)
			rc = lam__error(LAM_ENOMEM, "out of memory");
	}
	lam__free(vp);
	return rc;
}

/* Remove the upper entry at the last level (if any) and leave a whiteout
 * when a lower entry would show through, as one step where the kernel
 * allows (RENAME_WHITEOUT). */
static int remove_entry(lam_view *v, lam__vpath *vp)
{
	lam__vlevel *l = lam__vlast(vp);
	bool need_whiteout = l->lower >= 0;
	int rc = 0;
	if (!l->upper)
		return need_whiteout ?
			       lam__view_make_whiteout(v, v->upperfd, vp->p) :
			       0;
	if (need_whiteout) {
		/* The whiteout replaces the entry: check before removing. */
		rc = lam__quota_inodes(v, 0);
		if (rc < 0)
			return rc;
	}
	if (S_ISDIR(l->mode)) {
		lam__quota_dirty(v);
	} else {
		struct stat st;
		if (fstatat(v->upperfd, vp->p, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    st.st_nlink == 1) {
			lam__quota_add_inodes(v, -1);
			if (S_ISREG(st.st_mode))
				lam__quota_blocks(
					v, (uint64_t)st.st_blocks * 512, 0);
		}
	}
	if (S_ISREG(l->mode)) {
		int fd = openat(v->upperfd, vp->p,
				O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		struct stat st;
		if (fd >= 0 && fstat(fd, &st) == 0 && st.st_nlink == 1)
			lam__partial_forget(v, fd);
		if (fd >= 0)
			close(fd);
	}
	int workfd = lam__view_workfd(v);
	if (workfd < 0)
		return workfd;
	char tmp[64];
	lam__view_tmpname(tmp);
	if (need_whiteout) {
		if (renameat2(v->upperfd, vp->p, workfd, tmp,
			      RENAME_WHITEOUT) == 0) {
			lam__rmtree_quiet(workfd, tmp);
			close(workfd);
			lam__quota_add_inodes(v, 1);
			return 0;
		}
		/* Not supported here (unprivileged): in two steps. */
	}
	if (renameat(v->upperfd, vp->p, workfd, tmp) < 0)
		rc = lam__view_posix(errno, "removing %s", vp->p);
	else
		lam__rmtree_quiet(workfd, tmp);
	close(workfd);
	if (rc == 0 && need_whiteout)
		rc = lam__view_make_whiteout(v, v->upperfd, vp->p);
	return rc;
}

int lam_view_unlink(lam_view *view, const char *path)
{
	lam__vpath *vp;
	int rc = begin(view, path, LAM__CREATE, &vp);
	if (rc < 0)
		return rc;
	rc = lam__view_writable(view);
	if (rc == 0)
		rc = need_entry(vp, path);
	if (rc == 0 && S_ISDIR(lam__vlast(vp)->mode))
		rc = lam__view_posix(EISDIR, "%s: is a folder", path);
	size_t plen = strlen(path);
	if (rc == 0 && plen > 0 && path[plen - 1] == '/')
		rc = lam__view_posix(ENOTDIR, "%s: not a folder", path);
	if (rc == 0)
		rc = lam__view_copy_up(view, vp, false);
	if (rc == 0)
		rc = remove_entry(view, vp);
	lam__free(vp);
	return rc;
}

/* The last name of a path given to rename: "." and ".." are refused with
 * EBUSY, as rename(2) does; a trailing slash is noted. */
static bool last_is_dot(const char *path, bool *slash)
{
	size_t len = strlen(path);
	*slash = len > 0 && path[len - 1] == '/';
	while (len > 0 && path[len - 1] == '/')
		len--;
	size_t start = len;
	while (start > 0 && path[start - 1] != '/')
		start--;
	size_t n = len - start;
	return (n == 1 && path[start] == '.') ||
	       (n == 2 && path[start] == '.' && path[start + 1] == '.');
}

int lam_view_rmdir(lam_view *view, const char *path)
{
	lam__vpath *vp;
	int rc = begin(view, path, LAM__CREATE, &vp);
	if (rc < 0)
		return rc;
	rc = lam__view_writable(view);
	if (rc == 0)
		rc = need_entry(vp, path);
	if (rc == 0 && !S_ISDIR(lam__vlast(vp)->mode))
		rc = lam__view_posix(ENOTDIR, "%s: not a folder", path);
	bool slash;
	if (rc == 0 && last_is_dot(path, &slash))
		rc = lam__view_posix(EINVAL, "%s: cannot remove . or ..", path);
	if (rc == 0 && vp->depth < 2)
		rc = lam__view_posix(EBUSY, "cannot remove the root");
	bool empty = false;
	if (rc == 0)
		rc = lam__view_dir_empty(view, vp, &empty);
	if (rc == 0 && !empty)
		rc = lam__view_posix(ENOTEMPTY, "%s: not empty", path);
	if (rc == 0)
		rc = lam__view_copy_up(view, vp, false);
	if (rc == 0)
		rc = remove_entry(view, vp);
	lam__free(vp);
	return rc;
}

/* Apply a metadata change to the copied-up entry at the last level. */
typedef int (*meta_fn)(lam_view *v, const char *upath, void *arg);

static int change_meta_checked(lam_view *v, const char *path,
			       unsigned int rflags, meta_fn fn, void *arg,
			       const char *user_xattr)
{
	lam__vpath *vp;
	int rc = begin(v, path, rflags, &vp);
	if (rc < 0)
		return rc;
	rc = lam__view_writable(v);
	if (rc == 0)
		rc = need_entry(vp, path);
	/* user.* attributes exist only on files and folders (xattr(7)). */
	if (rc == 0 && user_xattr != NULL &&
	    strncmp(user_xattr, "user.", 5) == 0 &&
	    !S_ISREG(lam__vlast(vp)->mode) && !S_ISDIR(lam__vlast(vp)->mode))
		rc = lam__view_posix(EPERM, "%s: no user xattrs here", path);
	if (rc == 0)
		rc = lam__view_copy_up(v, vp, true);
	if (rc == 0)
		rc = fn(v, vp->len ? vp->p : ".", arg);
	if (vp->len == 0)
		v->root_known = false;
	lam__free(vp);
	return rc;
}

static int change_meta(lam_view *v, const char *path, unsigned int rflags,
		       meta_fn fn, void *arg)
{
	return change_meta_checked(v, path, rflags, fn, arg, NULL);
}

static int do_chmod(lam_view *v, const char *p, void *arg)
{
	if (fchmodat(v->upperfd, p, *(uint32_t *)arg & 07777, 0) < 0)
		return lam__view_posix(errno, "chmod %s", p);
	return 0;
}

int lam_view_chmod(lam_view *view, const char *path, uint32_t mode)
{
	return change_meta(view, path, LAM__FOLLOW, do_chmod, &mode);
}

static int do_chown(lam_view *v, const char *p, void *arg)
{
	uint32_t *ids = arg;
	if (fchownat(v->upperfd, p, ids[0], ids[1], AT_SYMLINK_NOFOLLOW) < 0)
		return lam__view_posix(errno, "chown %s", p);
	return 0;
}

int lam_view_chown(lam_view *view, const char *path, uint32_t uid, uint32_t gid,
		   unsigned int flags)
{
	uint32_t ids[2] = {uid, gid};
	return change_meta(view, path, (flags & LAM_NOFOLLOW) ? 0 : LAM__FOLLOW,
			   do_chown, ids);
}

static int do_utimens(lam_view *v, const char *p, void *arg)
{
	const lam_time *t = arg;
	struct timespec ts[2];
	for (int i = 0; i < 2; i++) {
		ts[i].tv_sec = (time_t)t[i].sec;
		ts[i].tv_nsec = t[i].nsec == LAM_TIME_NOW  ? UTIME_NOW :
				t[i].nsec == LAM_TIME_OMIT ? UTIME_OMIT :
							     (long)t[i].nsec;
	}
	if (utimensat(v->upperfd, p, ts, AT_SYMLINK_NOFOLLOW) < 0)
		return lam__view_posix(errno, "utimens %s", p);
	return 0;
}

int lam_view_utimens(lam_view *view, const char *path, const lam_time times[2],
		     unsigned int flags)
{
	lam_time now[2] = {{0, LAM_TIME_NOW}, {0, LAM_TIME_NOW}};
	return change_meta(view, path, (flags & LAM_NOFOLLOW) ? 0 : LAM__FOLLOW,
			   do_utimens, (void *)(times ? times : now));
}

typedef struct xattr_arg {
	const char *name;
	const void *value;
	size_t size;
	int flags;
} xattr_arg;

static int check_xattr_name(const char *name)
{
	if (name == NULL || name[0] == '\0' || strlen(name) > 255)
		return lam__view_posix(ERANGE, "bad xattr name");
	if (lam__view_private_xattr(name))
		return lam__view_posix(EPERM, "xattr %s is reserved", name);
	return 0;
}

static int do_setxattr(lam_view *v, const char *p, void *arg)
{
	xattr_arg *a = arg;
	char lp[PATH_MAX + 64];
	int rc = lam__fd_path(lp, sizeof(lp), v->upperfd, p);
	if (rc == 0 && lsetxattr(lp, a->name, a->value, a->size, a->flags) < 0)
		rc = lam__view_posix(errno, "setxattr %s on %s", a->name, p);
	return rc;
}

static int do_removexattr(lam_view *v, const char *p, void *arg)
{
	xattr_arg *a = arg;
	char lp[PATH_MAX + 64];
	int rc = lam__fd_path(lp, sizeof(lp), v->upperfd, p);
	if (rc == 0 && lremovexattr(lp, a->name) < 0)
		rc = lam__view_posix(errno, "removexattr %s on %s", a->name, p);
	return rc;
}

int lam_view_setxattr(lam_view *view, const char *path, const char *name,
		      const void *value, size_t size, unsigned int flags)
{
	lam__error_reset();
	int rc = check_xattr_name(name);
	if (rc < 0)
		return rc;
	int xf = ((flags & LAM_XATTR_CREATE) ? XATTR_CREATE : 0) |
		 ((flags & LAM_XATTR_REPLACE) ? XATTR_REPLACE : 0);
	xattr_arg a = {name, value, size, xf};
	return change_meta_checked(view, path,
				   (flags & LAM_NOFOLLOW) ? 0 : LAM__FOLLOW,
				   do_setxattr, &a, name);
}

/* Read the visible entry's xattrs as a sorted blob (the index's form). */
static int cstr_cmp(const void *a, const void *b);

/* The visible entry's xattrs as a blob sorted by name, the index's form,
 * so that blobs compare equal when the xattrs are. */
int lam__view_xattr_blob(lam_view *v, lam__vpath *vp, lam__buf *out)
{
	lam__vlevel *l = lam__vlast(vp);
	if (!l->upper) {
		lam__entry e;
		lam__chain_entry(v->chain, (size_t)l->lower, &e);
		return lam__buf_add(out, e.xattrs, e.xattrs_len);
	}
	char lp[PATH_MAX + 64], names[65536];
	int rc =
		lam__fd_path(lp, sizeof(lp), v->upperfd, vp->len ? vp->p : ".");
	if (rc < 0)
		return rc;
	ssize_t len = llistxattr(lp, names, sizeof(names));
	if (len < 0)
		return errno == ENOTSUP ? 0 :
					  lam__view_posix(errno, "listxattr");
	char *val = lam__malloc(65536);
	const char **sorted =
		lam__malloc(((size_t)len / 2 + 1) * sizeof(*sorted));
	if (val == NULL || sorted == NULL) {
		lam__free(val);
		lam__free(sorted);
		return lam__error(LAM_ENOMEM, "out of memory");
	}
	size_t n = 0;
	for (ssize_t i = 0; i < len; i += (ssize_t)strlen(names + i) + 1)
		if (!lam__view_private_xattr(names + i))
			sorted[n++] = names + i;
	if (n > 1)
		qsort(sorted, n, sizeof(*sorted), cstr_cmp);
	for (size_t k = 0; k < n && rc == 0; k++) {
		ssize_t vl = lgetxattr(lp, sorted[k], val, 65536);
		if (vl < 0)
			continue;
		/* Little-endian lengths, as the index stores them: blobs
		 * compare equal exactly when the xattrs are. */
		rc = lam__xattr_append(out, sorted[k],
				       (uint32_t)strlen(sorted[k]), val,
				       (uint32_t)vl);
	}
	lam__free(val);
	lam__free(sorted);
	return rc;
}

int lam_view_getxattr(lam_view *view, const char *path, const char *name,
		      void *buf, size_t size, size_t *needed,
		      unsigned int flags)
{
	lam__vpath *vp;
	int rc = begin(view, path, (flags & LAM_NOFOLLOW) ? 0 : LAM__FOLLOW,
		       &vp);
	if (rc < 0)
		return rc;
	if (needed)
		*needed = 0;
	rc = need_entry(vp, path);
	lam__buf blob = {0};
	if (rc == 0 && name == NULL)
		rc = lam__error(LAM_EINVAL, "NULL xattr name");
	if (rc == 0)
		rc = lam__view_xattr_blob(view, vp, &blob);
	if (rc == 0) {
		uint32_t off = 0;
		lam__xattr x;
		bool found = false;
		while (!found && lam__xattr_next(blob.data, (uint32_t)blob.len,
						 &off, &x) == 1) {
			if (x.name_len != strlen(name) ||
			    memcmp(x.name, name, x.name_len) != 0)
				continue;
			found = true;
			if (needed)
				*needed = x.value_len;
			if (buf != NULL && size < x.value_len)
				rc = lam__view_posix(ERANGE,
						     "xattr %s: %u "
						     "bytes needed",
						     name, x.value_len);
			else if (buf != NULL)
				memcpy(buf, x.value, x.value_len);
		}
		if (!found)
			rc = lam__view_posix(ENODATA, "%s: no xattr %s", path,
					     name);
	}
	lam__buf_free(&blob);
	lam__free(vp);
	return rc;
}

static int cstr_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int lam_view_listxattr(char **out, size_t *len, lam_view *view,
		       const char *path, unsigned int flags)
{
	if (out)
		*out = NULL;
	if (len)
		*len = 0;
	lam__vpath *vp;
	int rc = begin(view, path, (flags & LAM_NOFOLLOW) ? 0 : LAM__FOLLOW,
		       &vp);
	if (rc < 0)
		return rc;
	if (out == NULL || len == NULL)
		rc = lam__error(LAM_EINVAL, "NULL out");
	if (rc == 0)
		rc = need_entry(vp, path);
	lam__buf blob = {0}, list = {0};
	if (rc == 0)
		rc = lam__view_xattr_blob(view, vp, &blob);
	char **names = NULL;
	size_t n = 0;
	uint32_t off = 0;
	lam__xattr x;
	while (rc == 0 &&
	       lam__xattr_next(blob.data, (uint32_t)blob.len, &off, &x) == 1) {
		char **p = lam__realloc(names, (n + 1) * sizeof(*names));
		if (p == NULL) {
			rc = lam__error(LAM_ENOMEM, "out of memory");
			break;
		}
		names = p;
		if ((names[n] = lam__strndup(x.name, x.name_len)) == NULL) {
			rc = lam__error(LAM_ENOMEM, "out of memory");
			break;
		}
		n++;
	}
	if (rc == 0 && n > 1)
		qsort(names, n, sizeof(*names), cstr_cmp);
	for (size_t i = 0; rc == 0 && i < n; i++)
		rc = lam__buf_add(&list, names[i], strlen(names[i]) + 1);
	for (size_t i = 0; i < n; i++)
		lam__free(names[i]);
	lam__free(names);
	lam__buf_free(&blob);
	lam__free(vp);
	if (rc < 0) {
		lam__buf_free(&list);
		return rc;
	}
	*out = list.data;
	*len = list.len;
	return 0;
}

int lam_view_removexattr(lam_view *view, const char *path, const char *name,
			 unsigned int flags)
{
	lam__error_reset();
	int rc = check_xattr_name(name);
	if (rc < 0)
		return rc;
	/* A symlink holds no user.* attribute: EPERM, as the kernel says,
	 * before absence (ENODATA), before anything is copied up. */
	lam_stat st;
	rc = (flags & LAM_NOFOLLOW) ? lam_view_lstat(view, path, &st) :
				      lam_view_stat(view, path, &st);
	if (rc < 0)
		return rc;
	if (strncmp(name, "user.", 5) == 0 && !S_ISREG(st.mode) &&
	    !S_ISDIR(st.mode))
		return lam__view_posix(EPERM, "%s: no user xattrs here", path);
	size_t needed;
	rc = lam_view_getxattr(view, path, name, NULL, 0, &needed, flags);
	if (rc < 0)
		return rc;
	xattr_arg a = {name, NULL, 0, 0};
	return change_meta(view, path, (flags & LAM_NOFOLLOW) ? 0 : LAM__FOLLOW,
			   do_removexattr, &a);
}

static bool is_prefix_dir(const lam__vpath *a, const lam__vpath *b)
{
	/* Is a an ancestor of b (or b itself)? */
	return b->len >= a->len && memcmp(a->p, b->p, a->len) == 0 &&
	       (b->len == a->len || a->len == 0 || b->p[a->len] == '/');
}

/* Remove the whiteouts an upper folder holds, so that rename(2) can
 * replace it (the merged folder is empty, so nothing else is there). */
static int clear_whiteouts(lam_view *v, lam__vpath *vp)
{
	if (!lam__vlast(vp)->upper)
		return 0;
	/* As the kernel does: swap the folder with a fresh, empty, opaque
	 * one that has its metadata, then clean the old one in work/. The
	 * view shows the same empty folder at every moment; removing the
	 * whiteouts in place would let hidden lower entries show if killed
	 * half way. */
	int workfd = lam__view_workfd(v);
	if (workfd < 0)
		return workfd;
	char tmp[64], x[64];
	lam__view_tmpname(tmp);
	lam__view_ovl(v, x, "opaque");
	struct stat st;
	int rc = 0;
	if (fstatat(v->upperfd, vp->p, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
	    mkdirat(workfd, tmp, st.st_mode & 07777) < 0)
		rc = lam__view_posix(errno, "%s", vp->p);
	int fd = rc == 0 ? openat(workfd, tmp,
				  O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
					  O_CLOEXEC) :
			   -1;
	if (rc == 0 && fd < 0)
		rc = lam__view_posix(errno, "%s", vp->p);
	if (rc == 0) {
		struct timespec ts[2] = {st.st_atim, st.st_mtim};
		if (geteuid() == 0)
			(void)!fchown(fd, st.st_uid, st.st_gid);
		fchmod(fd, st.st_mode & 07777);
		if (fsetxattr(fd, x, "y", 1, 0) < 0)
			rc = lam__view_posix(errno, "%s", vp->p);
		futimens(fd, ts);
	}
	if (fd >= 0)
		close(fd);
	if (rc == 0 &&
	    renameat2(workfd, tmp, v->upperfd, vp->p, RENAME_EXCHANGE) < 0)
		rc = lam__view_posix(errno, "%s", vp->p);
	lam__rmtree_quiet(workfd, tmp);
	close(workfd);
	return rc;
}

static int mark_opaque(lam_view *v, const char *path)
{
	char x[64], p[PATH_MAX + 64];
	lam__view_ovl(v, x, "opaque");
	int rc = lam__fd_path(p, sizeof(p), v->upperfd, path);
	if (rc == 0 && lsetxattr(p, x, "y", 1, 0) < 0)
		rc = lam__view_posix(errno, "marking %s opaque", path);
	return rc;
}

/* Bring an entry about to move wholly into the upper. */
static int materialise(lam_view *v, lam__vpath *vp)
{
	lam__vlevel *l = lam__vlast(vp);
	if (S_ISDIR(l->mode) && l->lower_ok)
		return lam__view_copy_up_tree(v, vp);
	return lam__view_copy_up(v, vp, true);
}

static int rename_checks(lam__vpath *op, lam__vpath *np, unsigned int flags,
			 const char *oldpath, const char *newpath)
{
	lam__vlevel *o = lam__vlast(op), *n = lam__vlast(np);
	bool oslash, nslash;
	bool odot = last_is_dot(oldpath, &oslash);
	bool ndot = last_is_dot(newpath, &nslash);
	/* rename(2)'s order: "." as old is EBUSY; as new, EEXIST when
	 * asked not to replace, else EBUSY. */
	if (odot)
		return lam__view_posix(EBUSY, "cannot rename . or ..");
	if (ndot)
		return lam__view_posix((flags & LAM_RENAME_NOREPLACE) ? EEXIST :
									EBUSY,
				       "cannot rename over . or ..");
	if (o->mode == 0)
		return lam__view_posix(ENOENT, "%s: no such entry", op->p);
	if (op->depth < 2 || np->depth < 2)
		return lam__view_posix(EBUSY, "cannot rename the root");
	if ((flags & LAM_RENAME_EXCHANGE) && n->mode == 0)
		return lam__view_posix(ENOENT, "%s: no such entry", np->p);
	if ((flags & LAM_RENAME_NOREPLACE) && n->mode != 0)
		return lam__view_posix(EEXIST, "%s: exists", np->p);
	/* Trailing slashes are for folders only: each path's own entry in
	 * an exchange, the moving entry otherwise. */
	bool exch = flags & LAM_RENAME_EXCHANGE;
	if ((oslash && !S_ISDIR(o->mode)) ||
	    (nslash && !S_ISDIR(exch ? n->mode : o->mode)))
		return lam__view_posix(ENOTDIR, "%s: not a folder",
				       oslash && !S_ISDIR(o->mode) ? op->p :
								     np->p);
	if (S_ISDIR(o->mode) && is_prefix_dir(op, np) && op->len != np->len)
		return lam__view_posix(EINVAL, "%s: into itself", np->p);
	/* The target holds the source: it is not empty. */
	if (n->mode != 0 && !(flags & LAM_RENAME_EXCHANGE) &&
	    is_prefix_dir(np, op) && op->len != np->len)
		return lam__view_posix(ENOTEMPTY, "%s: not empty", np->p);
	if ((flags & LAM_RENAME_EXCHANGE) && S_ISDIR(n->mode) &&
	    is_prefix_dir(np, op) && op->len != np->len)
		return lam__view_posix(EINVAL, "%s: into itself", op->p);
	if (n->mode == 0 || (flags & LAM_RENAME_EXCHANGE))
		return 0;
	if (S_ISDIR(o->mode) && !S_ISDIR(n->mode))
		return lam__view_posix(ENOTDIR, "%s: not a folder", np->p);
	if (!S_ISDIR(o->mode) && S_ISDIR(n->mode))
		return lam__view_posix(EISDIR, "%s: is a folder", np->p);
	return 0;
}

int lam_view_rename(lam_view *view, const char *oldpath, const char *newpath,
		    unsigned int flags)
{
	lam__vpath *op, *np = NULL;
	int rc = begin(view, oldpath, LAM__CREATE, &op);
	if (rc < 0)
		return rc;
	if ((flags & ~(LAM_RENAME_NOREPLACE | LAM_RENAME_EXCHANGE)) ||
	    (flags & LAM_RENAME_NOREPLACE && flags & LAM_RENAME_EXCHANGE))
		rc = lam__view_posix(EINVAL, "bad rename flags");
	if (rc == 0)
		rc = lam__view_writable(view);
	if (rc == 0)
		rc = begin(view, newpath, LAM__CREATE, &np);
	if (rc == 0)
		rc = rename_checks(op, np, flags, oldpath, newpath);
	if (rc < 0 || (op->len == np->len && !memcmp(op->p, np->p, op->len)))
		goto out;
	bool exchange = flags & LAM_RENAME_EXCHANGE;
	lam__vlevel *n = lam__vlast(np);
	if (!exchange && n->mode != 0 && S_ISDIR(n->mode)) {
		bool empty;
		rc = lam__view_dir_empty(view, np, &empty);
		if (rc == 0 && !empty)
			rc = lam__view_posix(ENOTEMPTY, "%s: not empty",
					     newpath);
		if (rc < 0)
			goto out;
	}
	/* Everything that moves goes to the upper first (a lower folder's
	 * whole subtree, files metadata-only); then both paths are looked
	 * up again, since copying up changed the upper under them. */
	rc = materialise(view, op);
	if (rc == 0 && exchange)
		rc = materialise(view, np);
	if (rc == 0)
		rc = lam__view_resolve(view, newpath, 0, np);
	if (rc == 0)
		rc = lam__view_copy_up(view, np, false);
	if (rc == 0)
		rc = lam__view_resolve(view, oldpath, 0, op);
	if (rc < 0)
		goto out;
	lam__vlevel *o = lam__vlast(op);
	n = lam__vlast(np);
	/* A folder arriving where a lower entry lies must not merge it. */
	if (S_ISDIR(o->mode) && n->lower >= 0 && !o->opaque)
		rc = mark_opaque(view, op->p);
	if (rc == 0 && exchange && S_ISDIR(n->mode) && o->lower >= 0 &&
	    !n->opaque)
		rc = mark_opaque(view, np->p);
	if (rc < 0)
		goto out;
	if (exchange) {
		if (renameat2(view->upperfd, op->p, view->upperfd, np->p,
			      RENAME_EXCHANGE) < 0)
			rc = lam__view_posix(errno, "rename %s", oldpath);
		goto out;
	}
	if (n->upper && S_ISDIR(n->mode))
		rc = clear_whiteouts(view, np);
	if (rc == 0 && n->upper && S_ISREG(n->mode)) {
		int fd = openat(view->upperfd, np->p,
				O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		struct stat st;
		if (fd >= 0 && fstat(fd, &st) == 0 && st.st_nlink == 1)
			lam__partial_forget(view, fd);
		if (fd >= 0)
			close(fd);
	}
	if (rc < 0)
		goto out;
	if (n->whiteout) {
		/* Swap with the whiteout: the old path then holds it, which
		 * is right when a lower entry lies there, and harmless (it
		 * hides nothing) otherwise. */
		if (renameat2(view->upperfd, op->p, view->upperfd, np->p,
			      RENAME_EXCHANGE) < 0)
			rc = lam__view_posix(errno, "rename %s", oldpath);
		else if (o->lower < 0)
			unlinkat(view->upperfd, op->p, 0);
		goto out;
	}
	if (o->lower >= 0 && renameat2(view->upperfd, op->p, view->upperfd,
				       np->p, RENAME_WHITEOUT) == 0)
		goto out;
	if (renameat(view->upperfd, op->p, view->upperfd, np->p) < 0)
		rc = lam__view_posix(errno, "rename %s", oldpath);
	else if (o->lower >= 0)
		rc = lam__view_make_whiteout(view, view->upperfd, op->p);
out:
	/* Renames move, replace and copy up too much to count by hand. */
	lam__quota_dirty(view);
	lam__free(op);
	lam__free(np);
	return rc;
}
