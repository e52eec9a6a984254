/* SPDX-License-Identifier: MIT */
/*
 * Path resolution inside a view, and copy-up.
 *
 * A path is walked one component at a time. At each level the upper is
 * consulted first (only below a folder that exists in the upper, with
 * no-follow lookups), then the merged lower chain (one hash probe), unless
 * a whiteout or an opaque folder hides it. Symlinks are expanded by lamina
 * itself: an absolute target restarts from the view's root and ".." at the
 * root stays there, so no path can leave the view.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "view/internal.h"

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif

#define MAX_SYMLINKS 40

bool lam__view_is_whiteout(lam_view *v, int dirfd, const char *name,
			   const struct stat *st)
{
	if (S_ISCHR(st->st_mode) && st->st_rdev == 0)
		return true;
	if (!S_ISREG(st->st_mode) || st->st_size != 0 ||
	    (st->st_mode & 07777) != 0)
		return false;
	/* The xattr form, used where mknod is not allowed. */
	char name_x[64];
	lam__view_ovl(v, name_x, "whiteout");
	return lam__getxattr_at(dirfd, name, name_x, NULL, 0) >= 0;
}

int lam__view_make_whiteout(lam_view *v, int dirfd, const char *name)
{
	int q = lam__quota_inodes(v, 1);
	if (q < 0)
		return q;
	lam__quota_add_inodes(v, 1);
	if (mknodat(dirfd, name, S_IFCHR | 0000, 0) == 0)
		return 0;
	if (errno != EPERM)
		return lam__view_posix(errno, "creating whiteout %s", name);
	int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
			0000);
	if (fd < 0)
		return lam__view_posix(errno, "creating whiteout %s", name);
	char x[64];
	lam__view_ovl(v, x, "whiteout");
	int r = fsetxattr(fd, x, "y", 1, 0);
	close(fd);
	return r < 0 ? lam__view_posix(errno, "creating whiteout %s", name) : 0;
}

static bool is_opaque(lam_view *v, const char *path)
{
	char x[64];
	lam__view_ovl(v, x, "opaque");
	char val[4];
	ssize_t n = lam__getxattr_at(v->upperfd, path, x, val, sizeof(val));
	return n == 1 && val[0] == 'y';
}

/* Fill level d (path already in vp->p[0..len]) from the upper and lower. */
static void look_up(lam_view *v, lam__vpath *vp, uint32_t d)
{
	lam__vlevel *parent = &vp->lv[d - 1], *l = &vp->lv[d];
	const char *p = vp->p;
	memset(l, 0, sizeof(*l));
	l->len = vp->len;
	l->lower = -1;
	if (parent->upper && S_ISDIR(parent->mode)) {
		struct stat st;
		if (fstatat(v->upperfd, p, &st, AT_SYMLINK_NOFOLLOW) == 0) {
			if (lam__view_is_whiteout(v, v->upperfd, p, &st)) {
				l->whiteout = true;
			} else {
				l->upper = true;
				l->mode = st.st_mode;
				if (S_ISDIR(st.st_mode))
					l->opaque = is_opaque(v, p);
			}
		}
	}
	if (parent->lower_ok && v->chain != NULL) {
		l->lower = lam__chain_find(v->chain, p, vp->len);
		if (l->lower >= 0 && !l->upper && !l->whiteout) {
			lam__entry e;
			lam__chain_entry(v->chain, (size_t)l->lower, &e);
			l->mode = e.mode;
		}
	}
	l->lower_ok = l->lower >= 0 && !l->whiteout && !l->opaque &&
		      S_ISDIR(l->mode);
	if (l->lower_ok && l->upper) {
		lam__entry e;
		lam__chain_entry(v->chain, (size_t)l->lower, &e);
		l->lower_ok = S_ISDIR(e.mode);
	}
}

void lam__view_look_up(lam_view *v, lam__vpath *vp, uint32_t d)
{
	look_up(v, vp, d);
}

static void root_level(lam_view *v, lam__vpath *vp)
{
	lam__vlevel *r = &vp->lv[0];
	memset(r, 0, sizeof(*r));
	r->upper = v->upperfd >= 0;
	r->lower = v->chain ? lam__chain_find(v->chain, "", 0) : -1;
	r->mode = S_IFDIR | 0755;
	if (r->upper) {
		/* Only lamina changes the upper, and every change to the
		 * root's metadata forgets this. */
		if (!v->root_known) {
			struct stat st;
			v->root_mode = fstat(v->upperfd, &st) == 0 ?
					       st.st_mode :
					       (S_IFDIR | 0755);
			v->root_opaque = is_opaque(v, ".");
			v->root_known = true;
		}
		r->mode = v->root_mode;
		r->opaque = v->root_opaque;
	} else if (r->lower >= 0) {
		lam__entry e;
		lam__chain_entry(v->chain, (size_t)r->lower, &e);
		r->mode = e.mode;
	}
	r->lower_ok = v->chain != NULL && !r->opaque;
	vp->p[0] = '\0';
	vp->len = 0;
	vp->depth = 1;
}

static int read_target(lam_view *v, lam__vpath *vp, char *buf, size_t size)
{
	lam__vlevel *l = lam__vlast(vp);
	if (l->upper) {
		ssize_t n = readlinkat(v->upperfd, vp->p, buf, size - 1);
		if (n < 0)
			return lam__view_posix(errno, "reading link %s", vp->p);
		buf[n] = '\0';
		return 0;
	}
	lam__entry e;
	lam__chain_entry(v->chain, (size_t)l->lower, &e);
	if (e.target_len >= size)
		return lam__view_posix(ENAMETOOLONG, "link %s", vp->p);
	memcpy(buf, e.target, e.target_len);
	buf[e.target_len] = '\0';
	return 0;
}

int lam__view_resolve(lam_view *v, const char *path, unsigned int flags,
		      lam__vpath *vp)
{
	if (path == NULL)
		return lam__error(LAM_EINVAL, "NULL path");
	int crc = lam__view_need_chain(v);
	if (crc < 0)
		return crc;
	size_t plen = strlen(path);
	if (plen >= PATH_MAX)
		return lam__view_posix(ENAMETOOLONG, "path too long");
	/* rest holds what is left to walk; symlink targets are put in front
	 * of it. */
	char rest[2 * PATH_MAX + 2], target[PATH_MAX + 1];
	memcpy(rest, path, plen + 1);
	size_t pos = 0;
	int links = 0;
	root_level(v, vp);
	for (;;) {
		while (rest[pos] == '/')
			pos++;
		if (rest[pos] == '\0')
			return 0;
		size_t n = strcspn(rest + pos, "/");
		const char *name = rest + pos;
		pos += n;
		bool last = rest[pos + strspn(rest + pos, "/")] == '\0';
		/* "name/" must be a folder: a final symlink is followed. */
		bool trailing = last && rest[pos] == '/' &&
				!(flags & LAM__CREATE);
		if (n > NAME_MAX)
			return lam__view_posix(ENAMETOOLONG,
					       "name too long in %s", path);
		lam__vlevel *cur = lam__vlast(vp);
		/* "." needs a folder to stand in, as any name does. */
		if (n == 1 && name[0] == '.' && cur->mode != 0 &&
		    S_ISDIR(cur->mode))
			continue;
		if (cur->mode == 0)
			return lam__view_posix(ENOENT, "%s: no such entry",
					       path);
		if (!S_ISDIR(cur->mode))
			return lam__view_posix(ENOTDIR, "%s: not a folder",
					       path);
		if (n == 2 && name[0] == '.' && name[1] == '.') {
			if (vp->depth > 1) {
				vp->depth--;
				vp->len = vp->lv[vp->depth - 1].len;
				vp->p[vp->len] = '\0';
			}
			continue;
		}
		if (vp->len + 1 + n >= sizeof(vp->p) ||
		    vp->depth >= LAM__VIEW_MAX_DEPTH)
			return lam__view_posix(ENAMETOOLONG, "path too long");
		if (vp->len > 0)
			vp->p[vp->len++] = '/';
		memcpy(vp->p + vp->len, name, n);
		vp->len += (uint32_t)n;
		vp->p[vp->len] = '\0';
		look_up(v, vp, vp->depth);
		vp->depth++;
		lam__vlevel *l = lam__vlast(vp);
		if (trailing && l->mode != 0 && !S_ISDIR(l->mode) &&
		    !S_ISLNK(l->mode))
			return lam__view_posix(ENOTDIR, "%s: not a folder",
					       path);
		if (!S_ISLNK(l->mode) ||
		    (last && !trailing && !(flags & LAM__FOLLOW)))
			continue;
		if (++links > MAX_SYMLINKS)
			return lam__view_posix(ELOOP, "%s: too many symlinks",
					       path);
		int rc = read_target(v, vp, target, sizeof(target));
		if (rc < 0)
			return rc;
		/* Replace the link by its target, then walk on. */
		size_t tlen = strlen(target), rlen = strlen(rest + pos);
		if (tlen + 1 + rlen + 1 > sizeof(rest))
			return lam__view_posix(ENAMETOOLONG,
					       "%s: link target "
					       "too long",
					       path);
		/* What follows the link starts with its '/' (or is empty),
		 * so a trailing slash stays exactly as given. */
		memmove(rest + tlen, rest + pos, rlen + 1);
		memcpy(rest, target, tlen);
		pos = 0;
		vp->depth--;
		vp->len = vp->lv[vp->depth - 1].len;
		vp->p[vp->len] = '\0';
		if (target[0] == '/')
			root_level(v, vp);
	}
}

/* Metadata from a lower entry onto a fresh upper entry. */
static void apply_meta(int fd, int dirfd, const char *name, const lam__entry *e)
{
	char lpath[PATH_MAX + 64] = "";
	bool have = fd < 0 &&
		    lam__fd_path(lpath, sizeof(lpath), dirfd, name) == 0;
	if (fd >= 0 || have)
		lam__entry_set_xattrs(fd, lpath, e);
	struct timespec ts[2] = {{e->mtime_sec, e->mtime_nsec},
				 {e->mtime_sec, e->mtime_nsec}};
	if (fd >= 0) {
		if (geteuid() == 0)
			(void)!fchown(fd, e->uid, e->gid);
		fchmod(fd, e->mode & 07777);
		futimens(fd, ts);
		return;
	}
	if (geteuid() == 0)
		(void)!fchownat(dirfd, name, e->uid, e->gid,
				AT_SYMLINK_NOFOLLOW);
	if (!S_ISLNK(e->mode))
		fchmodat(dirfd, name, e->mode & 07777, 0);
	utimensat(dirfd, name, ts, AT_SYMLINK_NOFOLLOW);
}

/* Copy-ups are built in work/ and renamed into place, as the kernel does:
 * a crash leaves the entry either not copied up (the lower shows) or
 * copied up whole, never half made. */
static int stage_copy(lam_view *v, const char *path, const lam__entry *e,
		      int workfd, const char *tmp)
{
	switch (e->mode & S_IFMT) {
	case S_IFDIR: {
		if (mkdirat(workfd, tmp, 0700) < 0)
			return lam__view_posix(errno, "copying up %s", path);
		int fd =
			openat(workfd, tmp,
			       O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			return lam__view_posix(errno, "copying up %s", path);
		apply_meta(fd, -1, NULL, e);
		close(fd);
		return 0;
	}
	case S_IFREG: {
		int fd = openat(workfd, tmp,
				O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW |
					O_CLOEXEC,
				0600);
		if (fd < 0)
			return lam__view_posix(errno, "copying up %s", path);
		int rc = 0;
		if (ftruncate(fd, (off_t)e->size) < 0)
			rc = lam__view_posix(errno, "copying up %s", path);
		if (rc == 0 && (e->flags & LAM__E_OBJECT))
			rc = lam__partial_create(v, fd, &e->obj, e->size);
		if (rc == 0)
			apply_meta(fd, -1, NULL, e);
		close(fd);
		return rc;
	}
	case S_IFLNK: {
		char t[PATH_MAX + 1];
		if (e->target_len > PATH_MAX)
			return lam__view_posix(ENAMETOOLONG, "%s", path);
		memcpy(t, e->target, e->target_len);
		t[e->target_len] = '\0';
		if (symlinkat(t, workfd, tmp) < 0)
			return lam__view_posix(errno, "copying up %s", path);
		break;
	}
	default:
		if (mknodat(workfd, tmp, e->mode & (S_IFMT | 07777),
			    (dev_t)e->rdev) < 0)
			return lam__view_posix(errno, "copying up %s", path);
		break;
	}
	apply_meta(-1, workfd, tmp, e);
	return 0;
}

static int copy_up_as(lam_view *v, const char *path, const lam__entry *e)
{
	int q = lam__quota_inodes(v, 1);
	if (q < 0)
		return q;
	int workfd = lam__view_workfd(v);
	if (workfd < 0)
		return workfd;
	char tmp[64];
	lam__view_tmpname(tmp);
	int rc = stage_copy(v, path, e, workfd, tmp);
	lam__crash_point();
	bool there = false;
	if (rc == 0 &&
	    renameat2(workfd, tmp, v->upperfd, path, RENAME_NOREPLACE) < 0) {
		/* Copied up already by an earlier step of this operation
		 * (a shared parent, another link of a group): keep that. */
		there = errno == EEXIST;
		if (!there)
			rc = lam__view_posix(errno, "copying up %s", path);
	}
	if (rc < 0 || there) {
		/* A partial map made for the staged file goes with it. */
		int fd = openat(workfd, tmp, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		if (fd >= 0) {
			lam__partial_forget(v, fd);
			close(fd);
		}
		lam__rmtree_quiet(workfd, tmp);
	} else {
		lam__quota_add_inodes(v, 1);
	}
	close(workfd);
	return rc;
}

/* Copy up a lower folder (without contents) at level d. */
static int copy_up_dir(lam_view *v, lam__vpath *vp, uint32_t d)
{
	lam__vlevel *l = &vp->lv[d];
	char path[4096];
	memcpy(path, vp->p, l->len);
	path[l->len] = '\0';
	lam__entry e;
	lam__chain_entry(v->chain, (size_t)l->lower, &e);
	int rc = copy_up_as(v, path, &e);
	if (rc == 0)
		l->upper = true;
	return rc;
}

/* Copy up a lower non-folder entry to an upper path. */
static int copy_up_entry(lam_view *v, const char *path, const lam__entry *e)
{
	return copy_up_as(v, path, e);
}

static int copy_up_parents(lam_view *v, lam__vpath *vp, uint32_t upto)
{
	for (uint32_t d = 1; d < upto; d++) {
		if (vp->lv[d].upper)
			continue;
		if (vp->lv[d].lower < 0)
			return lam__view_posix(
				ENOENT, "%s: a parent is missing", vp->p);
		int rc = copy_up_dir(v, vp, d);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* Hard links stay linked: copy up the other visible members of a lower
 * hard-link group as links of the first copy. */
/* Place the links a journal names: each path the upper does not hold yet
 * gets a link of work/<tmp>. Used by a group copy-up and, after a kill,
 * by the next open, which so finishes what was begun. */
static int place_links(lam_view *v, int workfd, const char *tmp,
		       const char *list)
{
	int rc = 0;
	for (const char *p = list; *p && rc == 0;) {
		size_t n = strcspn(p, "\n");
		char path[4096];
		if (n > 0 && n < sizeof(path)) {
			memcpy(path, p, n);
			path[n] = '\0';
			struct stat st;
			if (fstatat(v->upperfd, path, &st,
				    AT_SYMLINK_NOFOLLOW) < 0 &&
			    linkat(workfd, tmp, v->upperfd, path, 0) < 0 &&
			    errno != EEXIST)
				rc = lam__view_posix(errno, "linking %s", path);
			lam__crash_point();
		}
		p += n;
		if (*p == '\n')
			p++;
	}
	return rc;
}

/* Hard links stay linked: a lower hard-link group is copied up whole, as
 * links of one upper inode. The staged file and a journal naming every
 * member go to work/ first, so a kill half way is finished on reopen. */
static int copy_up_group(lam_view *v, lam__vpath *vp, const lam__entry *e)
{
	size_t first, count;
	lam__chain_link_members(v->chain, (size_t)lam__vlast(vp)->lower, &first,
				&count);
	lam__vpath *mp = lam__malloc(sizeof(*mp));
	lam__buf list = {0};
	if (mp == NULL)
		return lam__error(LAM_ENOMEM, "out of memory");
	int rc = lam__buf_printf(&list, "%s\n", vp->p);
	for (size_t k = 0; k < count && rc == 0; k++) {
		uint32_t m = v->chain->links[first + k];
		if ((int64_t)m == lam__vlast(vp)->lower)
			continue;
		lam__entry me;
		lam__chain_entry(v->chain, m, &me);
		char path[4096];
		if (me.path_len >= sizeof(path))
			continue;
		memcpy(path, me.path, me.path_len);
		path[me.path_len] = '\0';
		/* Only members the view still shows from the lower. */
		if (lam__view_resolve(v, path, 0, mp) < 0) {
			lam__error_reset();
			continue;
		}
		lam__vlevel *l = lam__vlast(mp);
		if (l->upper || l->whiteout || l->lower != (int64_t)m)
			continue;
		rc = copy_up_parents(v, mp, mp->depth - 1);
		if (rc == 0)
			rc = lam__buf_printf(&list, "%s\n", path);
	}
	lam__free(mp);
	int workfd = rc == 0 ? lam__view_workfd(v) : -1;
	if (rc == 0 && workfd < 0)
		rc = workfd;
	char tmp[64], journal[80];
	lam__view_tmpname(tmp);
	snprintf(journal, sizeof(journal), "%s.links", tmp);
	if (rc == 0)
		rc = lam__quota_inodes(v, 1);
	if (rc == 0)
		rc = stage_copy(v, vp->p, e, workfd, tmp);
	lam__crash_point();
	if (rc == 0)
		rc = lam__write_file_atomic(workfd, journal, list.data,
					    list.len);
	if (rc == 0)
		rc = place_links(v, workfd, tmp, list.data);
	if (rc == 0) {
		lam__quota_add_inodes(v, 1);
		unlinkat(workfd, journal, 0);
		unlinkat(workfd, tmp, 0);
	} else if (workfd >= 0) {
		unlinkat(workfd, journal, 0);
		lam__rmtree_quiet(workfd, tmp);
	}
	if (workfd >= 0)
		close(workfd);
	lam__buf_free(&list);
	return rc;
}

int lam__view_recover_work(lam_view *v)
{
	int workfd = lam__view_workfd(v);
	if (workfd < 0)
		return workfd;
	DIR *d = lam__opendir_dup(workfd);
	int rc = 0;
	struct dirent *de;
	/* First finish interrupted group copy-ups, then clear the rest. */
	while (d != NULL && rc == 0 && (de = readdir(d)) != NULL) {
		size_t n = strlen(de->d_name);
		if (n < 7 || strcmp(de->d_name + n - 6, ".links") != 0)
			continue;
		char tmp[64];
		if (n - 6 >= sizeof(tmp))
			continue;
		memcpy(tmp, de->d_name, n - 6);
		tmp[n - 6] = '\0';
		char *text;
		size_t len;
		if (lam__read_file_at(workfd, de->d_name, &text, &len,
				      1u << 24) < 0) {
			lam__error_reset();
			continue;
		}
		rc = place_links(v, workfd, tmp, text);
		lam__free(text);
	}
	if (d != NULL)
		closedir(d);
	if (rc == 0) {
		d = lam__opendir_dup(workfd);
		while (d != NULL && (de = readdir(d)) != NULL)
			if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
				lam__rmtree_quiet(workfd, de->d_name);
		if (d != NULL)
			closedir(d);
	}
	close(workfd);
	return rc;
}

int lam__view_copy_up(lam_view *v, lam__vpath *vp, bool self)
{
	int rc = copy_up_parents(v, vp, vp->depth - 1);
	if (rc < 0 || !self)
		return rc;
	lam__vlevel *l = lam__vlast(vp);
	if (l->upper)
		return 0;
	if (l->lower < 0 || l->whiteout)
		return lam__view_posix(ENOENT, "%s: no such entry", vp->p);
	if (S_ISDIR(l->mode))
		return copy_up_dir(v, vp, vp->depth - 1);
	lam__entry e;
	lam__chain_entry(v->chain, (size_t)l->lower, &e);
	if (e.link_group != 0)
		rc = copy_up_group(v, vp, &e);
	else
		rc = copy_up_entry(v, vp->p, &e);
	if (rc == 0)
		l->upper = true;
	return rc;
}

/* Copy up everything below a folder the view shows, then mark it opaque:
 * the upper alone now holds the whole subtree. */
static int copy_up_below(lam_view *v, lam__vpath *vp)
{
	lam__vlevel *l = lam__vlast(vp);
	if (!l->lower_ok)
		return 0;
	int64_t c = lam__chain_first_child(v->chain, l->lower);
	uint32_t base_len = vp->len, base_depth = vp->depth;
	int rc = 0;
	while (c >= 0 && rc == 0) {
		lam__entry e;
		lam__chain_entry(v->chain, (size_t)c, &e);
		const char *name = memrchr(e.path, '/', e.path_len);
		name = name ? name + 1 : e.path;
		uint32_t nlen = e.path_len - (uint32_t)(name - e.path);
		/* Descend by hand: append the name and look it up. */
		vp->p[base_len] = '/';
		memcpy(vp->p + base_len + 1, name, nlen);
		vp->len = base_len + 1 + nlen;
		vp->p[vp->len] = '\0';
		look_up(v, vp, base_depth);
		vp->depth = base_depth + 1;
		lam__vlevel *cl = lam__vlast(vp);
		if (!cl->whiteout && cl->lower == c) {
			if (!cl->upper)
				rc = lam__view_copy_up(v, vp, true);
			if (rc == 0 && S_ISDIR(cl->mode))
				rc = copy_up_below(v, vp);
		}
		vp->len = base_len;
		vp->p[base_len] = '\0';
		vp->depth = base_depth;
		c = lam__chain_next_child(v->chain, l->lower, c);
	}
	return rc;
}

int lam__view_copy_up_tree(lam_view *v, lam__vpath *vp)
{
	lam__quota_dirty(v);
	int rc = lam__view_copy_up(v, vp, true);
	if (rc == 0)
		rc = copy_up_below(v, vp);
	if (rc == 0 && lam__vlast(vp)->lower >= 0) {
		char x[64];
		lam__view_ovl(v, x, "opaque");
		char p[PATH_MAX + 64];
		rc = lam__fd_path(p, sizeof(p), v->upperfd,
				  vp->len ? vp->p : ".");
		if (rc == 0 && lsetxattr(p, x, "y", 1, 0) < 0)
			rc = lam__view_posix(errno, "marking %s opaque", vp->p);
		if (rc == 0) {
			lam__vlast(vp)->opaque = true;
			lam__vlast(vp)->lower_ok = false;
		}
	}
	return rc;
}

void lam__view_inherit_setgid(lam_view *v, lam__vpath *vp, int workfd,
			      const char *tmp, bool dir)
{
	if (vp->depth < 2)
		return;
	char parent[4096];
	uint32_t plen = vp->lv[vp->depth - 2].len;
	memcpy(parent, vp->p, plen);
	parent[plen] = '\0';
	struct stat ps, st;
	if (fstatat(v->upperfd, plen ? parent : ".", &ps, AT_SYMLINK_NOFOLLOW) <
		    0 ||
	    !(ps.st_mode & S_ISGID) ||
	    fstatat(workfd, tmp, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return;
	if (st.st_gid != ps.st_gid)
		(void)!fchownat(workfd, tmp, (uid_t)-1, ps.st_gid,
				AT_SYMLINK_NOFOLLOW);
	if (dir)
		fchmodat(workfd, tmp, (st.st_mode & 07777) | S_ISGID, 0);
}
