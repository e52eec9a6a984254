/* SPDX-License-Identifier: MIT */
/*
 * Import of a host folder as a layer: a walk with *at() calls that never
 * follows a symlink, building the layer folder in a staging area, then one
 * atomic rename that publishes it.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "layer/internal.h"

/* Where the walk keeps hard-link groups: (dev, ino) of the first member. */
typedef struct hl_slot {
	uint64_t dev;
	uint64_t ino;
	size_t ent; /* index of the first member's entry, +1; 0 = empty */
} hl_slot;

typedef struct importer {
	lam_store *s;
	const char *src;
	int fsfd; /* the staging layer's fs/ */
	bool diff;
	const char *ovl;
	lam__entry *ents;
	uint32_t *hl_of; /* per entry: its hard-link slot + 1, or 0 */
	size_t n, cap;
	hl_slot *hl;
	size_t hl_cap, hl_used;
	lam__buf work;
	char path[PATH_MAX];
	/* Objects this import wrote, so a failed import can take them back. */
	lam__objid *created;
	size_t ncreated, created_cap;
	unsigned int new_run; /* objects stored new in a row */
	/* With worker threads (writers.c): small files go to them, and the
	 * folders' metadata waits until they are done (their files would
	 * change the folders' times); dirs lists the folders, children
	 * first. */
	lam__writers *w;
	size_t *dirs;
	size_t ndirs, dirs_cap;
	bool can_chown;
	uid_t euid;
	gid_t egid;
	const lam__import_hooks *hooks;
} importer;

static int fail_at(importer *im, int code, int e, const char *what)
{
	const char *p = im->path[0] ? im->path : ".";
	if (e != 0)
		return lam__error_os(code, e, "%s %s/%s", what, im->src, p);
	return lam__error(code, "%s %s/%s", what, im->src, p);
}

static int os_fail(importer *im, int e, const char *what)
{
	return fail_at(im, lam__errno_to_code(e), e, what);
}

static lam__entry *new_entry(importer *im, size_t plen)
{
	if (im->n == im->cap) {
		size_t cap = im->cap ? im->cap * 2 : 256;
		lam__entry *e = lam__realloc(im->ents, cap * sizeof(*e));
		if (e == NULL)
			return NULL;
		im->ents = e;
		uint32_t *h = lam__realloc(im->hl_of, cap * sizeof(*h));
		if (h == NULL)
			return NULL;
		im->hl_of = h;
		im->cap = cap;
	}
	lam__entry *e = &im->ents[im->n];
	memset(e, 0, sizeof(*e));
	char *p = lam__strndup(im->path, plen);
	if (p == NULL)
		return NULL;
	e->path = p;
	e->path_len = (uint32_t)plen;
	im->hl_of[im->n] = 0;
	im->n++;
	return e;
}

static void fill_stat(lam__entry *e, const struct stat *st)
{
	e->mode = st->st_mode;
	e->uid = st->st_uid;
	e->gid = st->st_gid;
	e->mtime_sec = st->st_mtim.tv_sec;
	e->mtime_nsec = (uint32_t)st->st_mtim.tv_nsec;
	e->nlink = 1;
	if (S_ISCHR(st->st_mode) || S_ISBLK(st->st_mode))
		e->rdev = st->st_rdev;
	if (S_ISREG(st->st_mode))
		e->size = (uint64_t)st->st_size;
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool is_overlay_xattr(const char *name)
{
	return strncmp(name, "trusted.overlay.", 16) == 0 ||
	       strncmp(name, "user.overlay.", 13) == 0;
}

/* lamina's own mark (a partial copy-up in a view's upper): never data. */
static bool is_private_xattr(const char *name)
{
	return strcmp(name, "trusted.lamina.partial") == 0 ||
	       strcmp(name, "user.lamina.partial") == 0;
}

static ssize_t x_list(int fd, const char *lpath, char *buf, size_t size)
{
	return fd >= 0 ? flistxattr(fd, buf, size) :
			 llistxattr(lpath, buf, size);
}

static ssize_t x_get(int fd, const char *lpath, const char *name, void *buf,
		     size_t size)
{
	return fd >= 0 ? fgetxattr(fd, name, buf, size) :
			 lgetxattr(lpath, name, buf, size);
}

/* Read the extended attributes of an entry (through fd, or through the
 * no-follow path lpath) into a sorted blob; note an overlayfs opaque mark. */
static int read_xattrs(importer *im, int fd, const char *lpath, lam__entry *e,
		       bool *opaque)
{
	*opaque = false;
	char stackbuf[1024];
	char *list = stackbuf;
	ssize_t len = x_list(fd, lpath, list, sizeof(stackbuf));
	if (len < 0 && errno == ERANGE) {
		len = x_list(fd, lpath, NULL, 0);
		list = len > 0 ? lam__malloc((size_t)len) : NULL;
		if (list == NULL)
			return lam__error(LAM_ENOMEM, "out of memory");
		len = x_list(fd, lpath, list, (size_t)len);
	}
	if (len < 0) {
		int e2 = errno;
		if (list != stackbuf)
			lam__free(list);
		if (e2 == ENOTSUP || e2 == ENODATA)
			return 0;
		return os_fail(im, e2, "listing xattrs of");
	}
	size_t count = 0;
	for (ssize_t i = 0; i < len; i += (ssize_t)strlen(list + i) + 1)
		count++;
	char **names = lam__malloc((count ? count : 1) * sizeof(*names));
	lam__buf blob = {0};
	int rc = names ? 0 : lam__error(LAM_ENOMEM, "out of memory");
	size_t k = 0;
	for (ssize_t i = 0; rc == 0 && i < len;
	     i += (ssize_t)strlen(list + i) + 1)
		names[k++] = list + i;
	if (rc == 0 && count > 1)
		qsort(names, count, sizeof(*names), name_cmp);
	char *val = NULL;
	for (size_t i = 0; rc == 0 && i < count; i++) {
		ssize_t vl = x_get(fd, lpath, names[i], NULL, 0);
		if (vl < 0) {
			if (errno == ENODATA)
				continue;
			rc = os_fail(im, errno, "reading xattrs of");
			break;
		}
		lam__free(val);
		val = lam__malloc((size_t)vl + 1);
		if (val == NULL) {
			rc = lam__error(LAM_ENOMEM, "out of memory");
			break;
		}
		vl = x_get(fd, lpath, names[i], val, (size_t)vl);
		if (vl < 0) {
			rc = os_fail(im, errno, "reading xattrs of");
			break;
		}
		if (is_private_xattr(names[i]))
			continue;
		if (is_overlay_xattr(names[i])) {
			/* overlayfs's own marks are meaning, not data. */
			const char *suffix = strchr(names[i], '.') + 9;
			if (strcmp(suffix, "opaque") == 0 && vl == 1 &&
			    val[0] == 'y')
				*opaque = true;
			continue;
		}
		rc = lam__xattr_append(&blob, names[i],
				       (uint32_t)strlen(names[i]), val,
				       (uint32_t)vl);
	}
	lam__free(val);
	lam__free(names);
	if (list != stackbuf)
		lam__free(list);
	if (rc < 0) {
		lam__buf_free(&blob);
		return rc;
	}
	e->xattrs = blob.data;
	e->xattrs_len = (uint32_t)blob.len;
	return 0;
}

static void apply_owner_mode_time(importer *im, int fd, int dirfd,
				  const char *name, const lam__entry *e)
{
	struct timespec ts[2] = {{e->mtime_sec, e->mtime_nsec},
				 {e->mtime_sec, e->mtime_nsec}};
	if (fd >= 0) {
		/* Entries we create are ours already: skip a needless chown. */
		if (im->can_chown && (e->uid != im->euid || e->gid != im->egid))
			(void)!fchown(fd, e->uid, e->gid);
		fchmod(fd, e->mode & 07777);
		futimens(fd, ts);
		return;
	}
	if (im->can_chown)
		(void)!fchownat(dirfd, name, e->uid, e->gid,
				AT_SYMLINK_NOFOLLOW);
	if (!S_ISLNK(e->mode))
		fchmodat(dirfd, name, e->mode & 07777, 0);
	utimensat(dirfd, name, ts, AT_SYMLINK_NOFOLLOW);
}

static int set_ovl(importer *im, int fd, const char *key, const char *value)
{
	char name[64];
	snprintf(name, sizeof(name), "%s%s", im->ovl, key);
	if (fsetxattr(fd, name, value, strlen(value), 0) == 0)
		return 0;
	if (errno != EPERM)
		return os_fail(im, errno, "marking staged entry for");
	/* A store made by root keeps overlayfs marks in trusted.*, which an
	 * ordinary user cannot write. The index stays authoritative, so the
	 * layer is complete for lamina; only a kernel mount of this layer's
	 * folder would lack the mark. */
	lam__log(LAM_LOG_WARNING,
		 "cannot set %s on %s/%s (not privileged); the layer folder "
		 "will not serve as an overlayfs lowerdir",
		 name, im->src, im->path);
	return 0;
}

static hl_slot *hl_lookup(importer *im, uint64_t dev, uint64_t ino, bool *found)
{
	if (im->hl_used * 2 >= im->hl_cap) {
		size_t cap = im->hl_cap ? im->hl_cap * 2 : 64;
		hl_slot *t = lam__calloc(cap, sizeof(*t));
		if (t == NULL)
			return NULL;
		for (size_t i = 0; i < im->hl_cap; i++) {
			if (im->hl[i].ent == 0)
				continue;
			size_t j = (im->hl[i].ino * 31 + im->hl[i].dev) &
				   (cap - 1);
			while (t[j].ent != 0)
				j = (j + 1) & (cap - 1);
			t[j] = im->hl[i];
		}
		lam__free(im->hl);
		im->hl = t;
		im->hl_cap = cap;
	}
	size_t j = (ino * 31 + dev) & (im->hl_cap - 1);
	while (im->hl[j].ent != 0) {
		if (im->hl[j].dev == dev && im->hl[j].ino == ino) {
			*found = true;
			return &im->hl[j];
		}
		j = (j + 1) & (im->hl_cap - 1);
	}
	*found = false;
	im->hl[j].dev = dev;
	im->hl[j].ino = ino;
	return &im->hl[j];
}

static int remember_object(importer *im, const lam__objid *id)
{
	if (im->ncreated == im->created_cap) {
		size_t cap = im->created_cap ? im->created_cap * 2 : 64;
		lam__objid *c = lam__realloc(im->created, cap * sizeof(*c));
		if (c == NULL)
			return lam__error(LAM_ENOMEM, "out of memory");
		im->created = c;
		im->created_cap = cap;
	}
	im->created[im->ncreated++] = *id;
	return 0;
}

/* Hand a file's content (read whole) to the writers, which store it and
 * stage its layer-folder file. */
static int give_to_writers(importer *im, int fd, lam__entry *e)
{
	size_t ei = (size_t)(e - im->ents);
	void *data = NULL;
	if (e->size > 0) {
		data = lam__malloc((size_t)e->size);
		if (data == NULL)
			return lam__error(LAM_ENOMEM, "out of memory");
		size_t got = 0;
		char extra;
		size_t more = 0;
		int r = lam__read_all(fd, data, (size_t)e->size, &got);
		if (r == 0 && got == e->size)
			r = lam__read_all(fd, &extra, 1, &more);
		if (r < 0 || got != e->size || more != 0) {
			lam__free(data);
			return r < 0 ? os_fail(im, -r, "cannot read") :
				       fail_at(im, LAM_EIO, 0,
					       "changed size while read:");
		}
	}
	return lam__writers_submit(im->w, ei, e, data);
}

static int stage_file(importer *im, int srcdir, int dstdir, const char *name,
		      lam__entry *e)
{
	int fd = openat(srcdir, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return os_fail(im, errno, "cannot read");
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return fail_at(im, LAM_EIO, 0, "changed while read:");
	}
	fill_stat(e, &st);
	bool opaque;
	int rc = read_xattrs(im, fd, NULL, e, &opaque);
	/* Hard-link members stay here: the next members link to the first
	 * one's layer-folder file as the walk meets them. */
	if (rc == 0 && im->w != NULL && e->size <= LAM__WRITERS_MAX &&
	    im->hl_of[e - im->ents] == 0) {
		rc = give_to_writers(im, fd, e);
		close(fd);
		return rc;
	}
	bool handled = false;
	if (rc == 0 && im->hooks && im->hooks->file)
		rc = im->hooks->file(im->hooks->ctx, srcdir, name, fd, e,
				     &handled);
	if (rc == 0 && !handled && e->size > 0) {
		bool stored;
		/* After a run of new objects, expect new ones (see
		 * lam__object_put_buf()). */
		rc = lam__object_put_fd(im->s, fd, e->size, &im->work,
					im->new_run >= 16, &e->obj, &stored);
		if (rc < 0)
			lam__error_prefix(rc, "importing %s/%s", im->src,
					  im->path);
		else if (stored)
			rc = remember_object(im, &e->obj);
		im->new_run = rc == 0 && stored ? im->new_run + 1 : 0;
		e->flags |= LAM__E_OBJECT;
	}
	close(fd);
	if (rc < 0)
		return rc;
	int out = openat(dstdir, name,
			 O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
			 0600);
	if (out < 0)
		return os_fail(im, errno, "staging");
	if (e->flags & LAM__E_OBJECT) {
		/* A metadata-only file: its size, and where its data lives
		 * in the data-only lower layer of objects. */
		char obj[48], redirect[52];
		lam__object_name(obj, &e->obj);
		snprintf(redirect, sizeof(redirect), "/%s", obj);
		if (ftruncate(out, (off_t)e->size) < 0)
			rc = os_fail(im, errno, "staging");
		if (rc == 0)
			rc = set_ovl(im, out, "metacopy", "");
		if (rc == 0)
			rc = set_ovl(im, out, "redirect", redirect);
	}
	if (rc == 0) {
		lam__entry_set_xattrs(out, NULL, e);
		apply_owner_mode_time(im, out, -1, NULL, e);
	}
	close(out);
	lam__crash_point();
	return rc;
}

static int stage_special(importer *im, int srcdir, int dstdir, const char *name,
			 const struct stat *st, lam__entry *e)
{
	char lpath[PATH_MAX + 64];
	int rc = lam__fd_path(lpath, sizeof(lpath), srcdir, name);
	if (rc < 0)
		return rc;
	fill_stat(e, st);
	bool opaque;
	rc = read_xattrs(im, -1, lpath, e, &opaque);
	if (rc < 0)
		return rc;
	if (S_ISLNK(st->st_mode)) {
		size_t cap = (size_t)st->st_size + 1;
		char *t = lam__malloc(cap);
		if (t == NULL)
			return lam__error(LAM_ENOMEM, "out of memory");
		ssize_t n = readlinkat(srcdir, name, t, cap);
		if (n < 0 || (size_t)n >= cap) {
			int e2 = n < 0 ? errno : EIO;
			lam__free(t);
			return os_fail(im, e2, "cannot read link");
		}
		e->target = t;
		e->target_len = (uint32_t)n;
		t[n] = '\0';
		if (symlinkat(t, dstdir, name) < 0)
			return os_fail(im, errno, "staging");
	} else if (mknodat(dstdir, name, st->st_mode & S_IFMT,
			   S_ISFIFO(st->st_mode) ? 0 : st->st_rdev) < 0) {
		if (errno != EPERM)
			return os_fail(im, errno, "staging");
		/* Without CAP_MKNOD the folder gets a placeholder; the
		 * index still records the device. */
		int fd = openat(dstdir, name,
				O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd < 0)
			return os_fail(im, errno, "staging");
		close(fd);
	}
	char dpath[PATH_MAX + 64];
	if (lam__fd_path(dpath, sizeof(dpath), dstdir, name) == 0)
		lam__entry_set_xattrs(-1, dpath, e);
	apply_owner_mode_time(im, -1, dstdir, name, e);
	lam__crash_point();
	return 0;
}

static int stage_whiteout(importer *im, int dstdir, const char *name,
			  lam__entry *e, const struct stat *st)
{
	fill_stat(e, st);
	e->flags |= LAM__E_WHITEOUT;
	e->rdev = 0;
	e->size = 0;
	if (mknodat(dstdir, name, S_IFCHR | 0000, 0) == 0) {
		apply_owner_mode_time(im, -1, dstdir, name, e);
		lam__crash_point();
		return 0;
	}
	if (errno != EPERM)
		return os_fail(im, errno, "staging whiteout");
	/* Unprivileged: overlayfs's xattr form of a whiteout. */
	int fd = openat(dstdir, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
			0000);
	if (fd < 0)
		return os_fail(im, errno, "staging whiteout");
	int rc = set_ovl(im, fd, "whiteout", "y");
	close(fd);
	return rc;
}

static int walk(importer *im, int srcdir, int dstdir, size_t plen, int depth);

/* overlayfs's xattr form of a whiteout (an empty mode-0 file marked
 * <ns>whiteout), which unprivileged writers use. */
static bool is_xattr_whiteout(importer *im, int dirfd, const char *name)
{
	char path[PATH_MAX + 64], x[64];
	if (lam__fd_path(path, sizeof(path), dirfd, name) < 0)
		return false;
	snprintf(x, sizeof(x), "%swhiteout", im->ovl);
	return lgetxattr(path, x, NULL, 0) >= 0;
}

/* A staged folder's own metadata, once everything below it is in place
 * (its children's creation changed its times). */
static int dir_meta(importer *im, int dfd, size_t ei)
{
	const lam__entry *e = &im->ents[ei];
	int rc = 0;
	if (e->flags & LAM__E_OPAQUE)
		rc = set_ovl(im, dfd, "opaque", "y");
	if (rc == 0) {
		lam__entry_set_xattrs(dfd, NULL, e);
		apply_owner_mode_time(im, dfd, -1, NULL, e);
		lam__crash_point();
	}
	return rc;
}

static int defer_dir(importer *im, size_t ei)
{
	if (im->ndirs == im->dirs_cap) {
		size_t cap = im->dirs_cap ? im->dirs_cap * 2 : 64;
		size_t *d = lam__realloc(im->dirs, cap * sizeof(*d));
		if (d == NULL)
			return lam__error(LAM_ENOMEM, "out of memory");
		im->dirs = d;
		im->dirs_cap = cap;
	}
	im->dirs[im->ndirs++] = ei;
	return 0;
}

/* The writers' results, in order: a file's object. Every file they get
 * must be staged (the walk names each path once). */
static int writer_done(void *ctx, const lam__writer_result *r)
{
	importer *im = ctx;
	lam__entry *e = &im->ents[r->tag];
	if (r->has_obj) {
		e->obj = r->obj;
		e->flags |= LAM__E_OBJECT;
	}
	int rc = r->stored ? remember_object(im, &r->obj) : 0;
	if (rc == 0 && !r->staged)
		rc = lam__error(LAM_EIO, "staging %s/%.*s: not created",
				im->src, (int)e->path_len, e->path);
	return rc;
}

/* After the walk: wait for the writers, then give the folders their
 * metadata, children first, each opened below fs/ without following a
 * symlink (they are folders this import made). */
static int finish_writers(importer *im, int rc)
{
	if (rc == 0)
		rc = lam__writers_finish(im->w);
	lam__writers_free(im->w);
	im->w = NULL;
	for (size_t i = 0; rc == 0 && i < im->ndirs; i++) {
		const lam__entry *e = &im->ents[im->dirs[i]];
		int dfd = lam__open_dir_beneath(im->fsfd, e->path, e->path_len,
						false);
		if (dfd < 0)
			return lam__error_errno(errno, "staging %s/%.*s",
						im->src, (int)e->path_len,
						e->path);
		rc = dir_meta(im, dfd, im->dirs[i]);
		close(dfd);
	}
	return rc;
}

static int stage_dir(importer *im, int srcdir, int dstdir, const char *name,
		     size_t plen, lam__entry *e, int depth)
{
	size_t ei = (size_t)(e - im->ents);
	/* The root (name NULL) is the folder the host named, already open. */
	int sfd =
		name ? openat(srcdir, name,
			      O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) :
		       dup(srcdir);
	if (sfd < 0)
		return os_fail(im, errno, "cannot read folder");
	struct stat st;
	if (fstat(sfd, &st) < 0) {
		int e2 = errno;
		close(sfd);
		return os_fail(im, e2, "cannot read folder");
	}
	fill_stat(e, &st);
	bool opaque;
	int rc = read_xattrs(im, sfd, NULL, e, &opaque);
	if (rc < 0) {
		close(sfd);
		return rc;
	}
	if (opaque && im->diff)
		e->flags |= LAM__E_OPAQUE;
	int dfd = -1;
	if (name != NULL) {
		if (mkdirat(dstdir, name, 0700) < 0) {
			int e2 = errno;
			close(sfd);
			return os_fail(im, e2, "staging");
		}
		dfd = openat(dstdir, name,
			     O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	} else {
		dfd = dup(dstdir);
	}
	if (dfd < 0) {
		int e2 = errno;
		close(sfd);
		return os_fail(im, e2, "staging");
	}
	rc = walk(im, sfd, dfd, plen, depth + 1);
	close(sfd);
	if (rc == 0 && im->w != NULL) {
		close(dfd);
		return defer_dir(im, ei);
	}
	rc = rc == 0 ? dir_meta(im, dfd, ei) : rc;
	close(dfd);
	return rc;
}

static int import_one(importer *im, int srcdir, int dstdir, const char *name,
		      size_t plen, int depth)
{
	size_t nlen = strlen(name);
	size_t newlen = plen + (plen ? 1 : 0) + nlen;
	if (newlen >= PATH_MAX) {
		im->path[plen] = '\0';
		return lam__error(LAM_ENAMETOOLONG,
				  "path longer than PATH_MAX: %s/%s/%s",
				  im->src, im->path, name);
	}
	if (plen)
		im->path[plen] = '/';
	memcpy(im->path + plen + (plen ? 1 : 0), name, nlen + 1);
	struct stat st;
	if (fstatat(srcdir, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return os_fail(im, errno, "cannot read");
	if (S_ISSOCK(st.st_mode)) {
		lam__log(LAM_LOG_INFO, "skipping socket %s/%s", im->src,
			 im->path);
		return 0;
	}
	bool whiteout = S_ISCHR(st.st_mode) && st.st_rdev == 0;
	if (!whiteout && S_ISREG(st.st_mode) && st.st_size == 0 &&
	    (st.st_mode & 07777) == 0)
		whiteout = is_xattr_whiteout(im, srcdir, name);
	if (whiteout && !im->diff)
		return 0; /* nothing below a base layer to hide */
	/* A whiteout that hides nothing is left out: a kernel mount would
	 * list it (as a 0/0 device) in a folder that is not merged. */
	if (whiteout && im->hooks && im->hooks->keep_whiteout &&
	    !im->hooks->keep_whiteout(im->hooks->ctx, im->path, newlen))
		return 0;
	lam__entry *e = new_entry(im, newlen);
	if (e == NULL)
		return lam__error(LAM_ENOMEM, "out of memory");
	if (whiteout)
		return stage_whiteout(im, dstdir, name, e, &st);
	if (S_ISDIR(st.st_mode))
		return stage_dir(im, srcdir, dstdir, name, newlen, e, depth);
	if (st.st_nlink > 1) {
		bool found;
		hl_slot *slot = hl_lookup(im, st.st_dev, st.st_ino, &found);
		if (slot == NULL)
			return lam__error(LAM_ENOMEM, "out of memory");
		size_t ei = im->n - 1;
		im->hl_of[ei] = (uint32_t)(slot - im->hl) + 1;
		if (found) {
			const lam__entry *first = &im->ents[slot->ent - 1];
			lam__entry copy = *first;
			/* The members share one inode: same metadata, same
			 * content; only the path and owned strings differ. */
			copy.path = e->path;
			copy.path_len = e->path_len;
			copy.target = copy.target_len ?
					      lam__strndup(first->target,
							   first->target_len) :
					      NULL;
			copy.xattrs = copy.xattrs_len ?
					      lam__strndup(first->xattrs,
							   first->xattrs_len) :
					      NULL;
			*e = copy;
			if ((copy.target_len && !copy.target) ||
			    (copy.xattrs_len && !copy.xattrs))
				return lam__error(LAM_ENOMEM, "out of memory");
			char *fp = lam__strndup(first->path, first->path_len);
			if (fp == NULL)
				return lam__error(LAM_ENOMEM, "out of memory");
			int r = linkat(im->fsfd, fp, dstdir, name, 0);
			lam__free(fp);
			if (r < 0)
				return os_fail(im, errno, "staging link");
			lam__crash_point();
			return 0;
		}
		slot->ent = ei + 1;
		im->hl_used++;
	}
	if (S_ISREG(st.st_mode))
		return stage_file(im, srcdir, dstdir, name, e);
	return stage_special(im, srcdir, dstdir, name, &st, e);
}

static int walk(importer *im, int srcdir, int dstdir, size_t plen, int depth)
{
	DIR *d = lam__opendir_dup(srcdir);
	if (d == NULL) {
		im->path[plen] = '\0';
		return os_fail(im, errno, "cannot read folder");
	}
	int rc = 0;
	for (;;) {
		errno = 0;
		struct dirent *de = readdir(d);
		if (de == NULL) {
			if (errno != 0) {
				im->path[plen] = '\0';
				rc = os_fail(im, errno, "cannot read folder");
			}
			break;
		}
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		rc = import_one(im, srcdir, dstdir, de->d_name, plen, depth);
		if (rc < 0)
			break;
	}
	closedir(d);
	im->path[plen] = '\0';
	return rc;
}

static int ent_cmp(const void *a, const void *b)
{
	return lam__entry_cmp(a, b);
}

/* Sort, then number hard-link groups in path order and count members, so
 * that the index does not depend on the order the walk met them. */
static int finish_entries(importer *im, uint64_t *size_out)
{
	/* Carry each entry's slot through the sort in its link_group. */
	for (size_t i = 0; i < im->n; i++)
		im->ents[i].link_group = im->hl_of[i];
	if (im->n > 1)
		qsort(im->ents, im->n, sizeof(*im->ents), ent_cmp);
	size_t ngroups = im->hl_cap > im->n + 1 ? im->hl_cap : im->n + 1;
	uint32_t *group_of_slot = lam__calloc(ngroups, sizeof(uint32_t));
	uint32_t *members =
		lam__calloc(im->n ? im->n + 1 : 1, sizeof(uint32_t));
	if (group_of_slot == NULL || members == NULL) {
		lam__free(group_of_slot);
		lam__free(members);
		return lam__error(LAM_ENOMEM, "out of memory");
	}
	uint32_t next = 0;
	uint64_t size = 0;
	for (size_t i = 0; i < im->n; i++) {
		lam__entry *e = &im->ents[i];
		if (e->link_group != 0) {
			uint32_t slot = e->link_group - 1;
			bool first = group_of_slot[slot] == 0;
			if (first)
				group_of_slot[slot] = ++next;
			e->link_group = group_of_slot[slot];
			members[e->link_group]++;
			if (!first)
				continue;
		}
		if (S_ISREG(e->mode))
			size += e->size;
	}
	for (size_t i = 0; i < im->n; i++) {
		lam__entry *e = &im->ents[i];
		if (e->link_group != 0 && members[e->link_group] < 2)
			e->link_group = 0; /* its other links lie outside */
		else if (e->link_group != 0)
			e->nlink = members[e->link_group];
	}
	/* Renumber after dropping singletons so numbers stay dense. */
	memset(group_of_slot, 0, ngroups * sizeof(uint32_t));
	next = 0;
	for (size_t i = 0; i < im->n; i++) {
		lam__entry *e = &im->ents[i];
		if (e->link_group == 0)
			continue;
		if (group_of_slot[e->link_group] == 0)
			group_of_slot[e->link_group] = ++next;
		e->link_group = group_of_slot[e->link_group];
	}
	lam__free(group_of_slot);
	lam__free(members);
	*size_out = size;
	return 0;
}

static void importer_free(importer *im)
{
	/* First: the writers borrow the entries' strings. */
	lam__writers_free(im->w);
	im->w = NULL;
	for (size_t i = 0; i < im->n; i++) {
		lam__free((char *)im->ents[i].path);
		lam__free((char *)im->ents[i].target);
		lam__free((char *)im->ents[i].xattrs);
	}
	lam__free(im->ents);
	lam__free(im->dirs);
	lam__free(im->hl_of);
	lam__free(im->hl);
	lam__free(im->created);
	lam__buf_free(&im->work);
}

/* Take back the objects a failed import wrote, when no other writer is
 * staging (one might already share them); otherwise gc will. */
void lam__objects_drop(lam_store *s, const lam__objid *ids, size_t n)
{
	if (n == 0)
		return;
	int lk = lam__store_gc_lock(s, true, false);
	if (lk < 0)
		return;
	for (size_t i = 0; i < n; i++) {
		char name[48];
		lam__object_name(name, &ids[i]);
		unlinkat(s->objectsfd, name, 0);
	}
	lam__unlock(lk);
}

static void drop_created(importer *im)
{
	lam__objects_drop(im->s, im->created, im->ncreated);
}

static int same_file_contents(int dira, const char *a, int dirb, const char *b)
{
	char *x = NULL, *y = NULL;
	size_t xl = 0, yl = 0;
	int rc = lam__read_file_at(dira, a, &x, &xl, SIZE_MAX / 2);
	if (rc == 0)
		rc = lam__read_file_at(dirb, b, &y, &yl, SIZE_MAX / 2);
	int same = rc == 0 && xl == yl && memcmp(x, y, xl) == 0;
	lam__free(x);
	lam__free(y);
	return rc < 0 ? rc : same;
}

/* Publish the staged layer folder under its id. If the id exists already
 * its index must match ours byte for byte (which proves the contents are
 * the same, objects being compared byte for byte): then nothing new is
 * stored. A different index under the same id is a digest collision. */
int lam__layer_publish(lam_store *s, int stagefd, const lam__layer_rec *rec,
		       const char *parent, bool *existed)
{
	*existed = false;
	int lk = lam__store_lock(s);
	if (lk < 0)
		return lk;
	int rc = 0;
	char path[80];
	if (parent[0] != '\0') {
		snprintf(path, sizeof(path), "%s/meta", parent);
		if (faccessat(s->layersfd, path, F_OK, 0) < 0) {
			rc = lam__error(
				LAM_ENOTFOUND,
				"parent layer %s was deleted during the "
				"import",
				parent);
			goto out;
		}
	}
	lam__crash_point();
	if (renameat(stagefd, "layer", s->layersfd, rec->id) == 0) {
		lam__crash_point();
		if (fsync(s->layersfd) < 0)
			rc = lam__error_errno(errno, "syncing %s/layers",
					      s->path);
		lam__crash_point();
		goto out;
	}
	if (errno != EEXIST && errno != ENOTEMPTY) {
		rc = lam__error_errno(errno, "publishing layer %s", rec->id);
		goto out;
	}
	snprintf(path, sizeof(path), "%s/index", rec->id);
	int same =
		same_file_contents(stagefd, "layer/index", s->layersfd, path);
	if (same < 0)
		rc = lam__error_prefix(same, "comparing with layer %s",
				       rec->id);
	else if (!same)
		rc = lam__error(LAM_ECORRUPT,
				"layer %s exists with different contents: "
				"digest collision, refusing to share it",
				rec->id);
	else
		*existed = true;
out:
	lam__unlock(lk);
	return rc;
}

static int stage_and_publish(importer *im, int srcfd, lam_layer *parent,
			     int stagefd, lam_layer **out)
{
	int layerfd = -1;
	int rc = lam__staging_layer(stagefd, true, &layerfd, &im->fsfd);
	if (rc < 0)
		return rc;
	im->path[0] = '\0';
	lam__entry *root = new_entry(im, 0);
	if (root == NULL)
		rc = lam__error(LAM_ENOMEM, "out of memory");
	/* Worker threads where there are CPUs for them, and where no hook
	 * takes over files (a view's commit reads its own). */
	unsigned int threads = lam__writers_default_threads();
	if (rc == 0 && threads > 0 && !(im->hooks && im->hooks->file))
		rc = lam__writers_start(&im->w, im->s, im->fsfd, threads,
					writer_done, im);
	if (rc == 0)
		rc = stage_dir(im, srcfd, im->fsfd, NULL, 0, root, 0);
	if (im->w != NULL)
		rc = finish_writers(im, rc);
	uint64_t size = 0;
	if (rc == 0)
		rc = finish_entries(im, &size);
	lam__layer_rec rec;
	memset(&rec, 0, sizeof(rec));
	if (rc == 0)
		rc = lam__index_write(layerfd, "index", im->ents, im->n);
	lam__digest extra;
	bool has_extra = false;
	if (rc == 0 && im->hooks && im->hooks->stage)
		rc = im->hooks->stage(im->hooks->ctx, layerfd, &extra,
				      &has_extra);
	if (rc == 0) {
		lam__digest diff, chain;
		lam__entries_digest(&diff, im->ents, im->n);
		if (has_extra)
			lam__diff_fold(&diff, &extra);
		lam__chain_digest(&chain, parent ? parent->rec.id : NULL,
				  &diff);
		lam__digest_hex(rec.id, &chain);
		lam__digest_hex(rec.diff, &diff);
		lam__uuid_new(rec.uuid);
		if (parent != NULL)
			memcpy(rec.parent, parent->rec.id, 33);
		rec.depth = parent ? parent->rec.depth + 1 : 1;
		rec.size = size;
		rec.entries = im->n;
		rec.created = (int64_t)time(NULL);
		lam__buf meta = {0};
		rc = lam__meta_format(&meta, &rec);
		if (rc == 0)
			rc = lam__write_file_atomic(layerfd, "meta", meta.data,
						    meta.len);
		lam__buf_free(&meta);
	}
	lam__close(&im->fsfd);
	/* One syncfs makes every staged file and new object durable before
	 * the rename that publishes them; far cheaper than an fsync each. */
	if (rc == 0 && syncfs(layerfd) < 0)
		rc = lam__error_errno(errno, "syncing %s", im->s->path);
	lam__close(&layerfd);
	lam__crash_point();
	bool existed = false;
	if (rc == 0)
		rc = lam__layer_publish(im->s, stagefd, &rec,
					parent ? parent->rec.id : "", &existed);
	if (rc == 0)
		rc = lam__layer_open_id(out, im->s, rec.id);
	return rc;
}

int lam_layer_import_dir(lam_layer **out, lam_store *store, const char *src,
			 lam_layer *parent, const lam_import_options *options)
{
	lam__error_reset();
	if (out == NULL)
		return lam__error(LAM_EINVAL,
				  "lam_layer_import_dir: out is NULL");
	*out = NULL;
	if (store == NULL || src == NULL || src[0] == '\0')
		return lam__error(LAM_EINVAL,
				  "lam_layer_import_dir: NULL argument");
	if (options != NULL && options->version != LAM_IMPORT_OPTIONS_VERSION)
		return lam__error(LAM_EINVAL, "unknown import options version");
	return lam__layer_import(out, store, src, parent, NULL);
}

int lam__layer_import(lam_layer **out, lam_store *store, const char *src,
		      lam_layer *parent, const lam__import_hooks *hooks)
{
	if (parent != NULL && parent->store != store)
		return lam__error(LAM_EINVAL,
				  "parent layer belongs to another store");
	if (parent != NULL) {
		lam__layer_rec check;
		int r = lam__catalog_find(store, parent->rec.id, &check);
		if (r < 0)
			return lam__error(LAM_ENOTFOUND,
					  "parent layer %s does not exist",
					  parent->rec.id);
	}
	int srcfd = open(src, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (srcfd < 0)
		return lam__error_errno(errno, "opening source folder %s", src);
	importer im;
	memset(&im, 0, sizeof(im));
	im.s = store;
	im.src = src;
	im.fsfd = -1;
	im.diff = parent != NULL;
	im.ovl = store->overlay_xattr;
	im.can_chown = geteuid() == 0;
	im.euid = geteuid();
	im.egid = getegid();
	im.hooks = hooks;
	int gclk = lam__store_gc_lock(store, false, true);
	if (gclk < 0) {
		close(srcfd);
		return gclk;
	}
	char stage[37] = "";
	int stagefd = -1;
	int rc = lam__store_staging(store, stage, &stagefd);
	if (rc == 0)
		rc = stage_and_publish(&im, srcfd, parent, stagefd, out);
	close(srcfd);
	lam__close(&stagefd);
	lam__unlock(gclk);
	if (rc < 0)
		drop_created(&im);
	/* The staging folder goes in every case: on success its layer was
	 * renamed away or was a duplicate. Failing to remove it is harmless
	 * (the next open clears it), so its error does not mask ours. */
	if (stage[0] != '\0')
		lam__rmtree_quiet(store->tmpfd, stage);
	importer_free(&im);
	return rc;
}
