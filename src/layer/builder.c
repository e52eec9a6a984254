/* SPDX-License-Identifier: MIT */
/*
 * Building a layer from an entry array that is already complete (what a tar
 * import collects): the fs/ folder is staged from the entries in path
 * order, with a stack of open folders so that every call is an *at() call
 * on a folder this builder made itself, then the index, the record and one
 * syncfs, and the layer is published by one rename.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "layer/internal.h"

typedef struct frame {
	size_t ent;
	int fd;
} frame;

typedef struct builder {
	lam__stager st;
	const lam__entry *ents;
	size_t n;
	int fsfd;
	const unsigned char *staged;
	frame *stack;
	size_t depth, cap;
	size_t *first_of_group; /* per link group: first member's index + 1 */
	size_t ngroups;
} builder;

static int fail(const lam__entry *e, int e2, const char *what)
{
	return lam__error_errno(e2, "%s %.*s", what, (int)e->path_len, e->path);
}

void lam__stager_init(lam__stager *st, lam_store *s, int fsfd)
{
	memset(st, 0, sizeof(*st));
	st->s = s;
	st->can_chown = geteuid() == 0;
	/* What the folders of fs/ give a new entry: the creator's ids,
	 * unless a set-group-ID folder above hands down its group. */
	struct stat sb;
	if (fstat(fsfd, &sb) == 0 && !(sb.st_mode & S_ISGID)) {
		st->owner_known = true;
		st->uid = geteuid();
		st->gid = getegid();
	}
}

static int set_ovl(const lam__stager *st, int fd, const lam__entry *e,
		   const char *key, const char *value)
{
	char name[64];
	snprintf(name, sizeof(name), "%s%s", st->s->overlay_xattr, key);
	if (fsetxattr(fd, name, value, strlen(value), 0) == 0)
		return 0;
	if (errno != EPERM)
		return fail(e, errno, "marking staged entry");
	/* The index stays authoritative; only a kernel mount of this
	 * layer's folder would lack the mark (see import.c). */
	lam__log(LAM_LOG_WARNING, "cannot set %s on %.*s (not privileged)",
		 name, (int)e->path_len, e->path);
	return 0;
}

static void apply_meta_fd(const lam__stager *st, int fd, const lam__entry *e)
{
	struct timespec ts[2] = {{e->mtime_sec, e->mtime_nsec},
				 {e->mtime_sec, e->mtime_nsec}};
	lam__entry_set_xattrs(fd, NULL, e);
	if (st->can_chown &&
	    !(st->owner_known && e->uid == st->uid && e->gid == st->gid))
		(void)!fchown(fd, e->uid, e->gid);
	fchmod(fd, e->mode & 07777);
	futimens(fd, ts);
}

static void apply_meta_at(const lam__stager *st, int dirfd, const char *name,
			  const lam__entry *e)
{
	struct timespec ts[2] = {{e->mtime_sec, e->mtime_nsec},
				 {e->mtime_sec, e->mtime_nsec}};
	char lpath[PATH_MAX + 64];
	if (lam__fd_path(lpath, sizeof(lpath), dirfd, name) == 0)
		lam__entry_set_xattrs(-1, lpath, e);
	if (st->can_chown)
		(void)!fchownat(dirfd, name, e->uid, e->gid,
				AT_SYMLINK_NOFOLLOW);
	if (!S_ISLNK(e->mode))
		fchmodat(dirfd, name, e->mode & 07777, 0);
	utimensat(dirfd, name, ts, AT_SYMLINK_NOFOLLOW);
}

int lam__staging_layer(int stagefd, bool make, int *layerfd, int *fsfd)
{
	*layerfd = *fsfd = -1;
	if (make && (mkdirat(stagefd, "layer", 0755) < 0 ||
		     mkdirat(stagefd, "layer/fs", 0755) < 0))
		return lam__error_errno(errno, "creating staging folder");
	*layerfd = openat(stagefd, "layer", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	*fsfd = openat(stagefd, "layer/fs", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (*layerfd < 0 || *fsfd < 0) {
		int e = errno;
		lam__close(layerfd);
		lam__close(fsfd);
		return lam__error_errno(e, "opening staging folder");
	}
	return 0;
}

int lam__stage_file_fd(const lam__stager *st, int fd, const lam__entry *e)
{
	int rc = 0;
	if (e->flags & LAM__E_OBJECT) {
		char obj[48], redirect[52];
		lam__object_name(obj, &e->obj);
		snprintf(redirect, sizeof(redirect), "/%s", obj);
		if (ftruncate(fd, (off_t)e->size) < 0)
			rc = fail(e, errno, "staging");
		if (rc == 0)
			rc = set_ovl(st, fd, e, "metacopy", "");
		if (rc == 0)
			rc = set_ovl(st, fd, e, "redirect", redirect);
	}
	if (rc == 0)
		apply_meta_fd(st, fd, e);
	return rc;
}

/* Close the folder on top of the stack, giving it its metadata now that
 * its children are in place (their creation changed its mtime). */
static int pop(builder *b)
{
	frame *f = &b->stack[--b->depth];
	const lam__entry *e = &b->ents[f->ent];
	int rc = 0;
	if (e->flags & LAM__E_OPAQUE)
		rc = set_ovl(&b->st, f->fd, e, "opaque", "y");
	if (rc == 0)
		apply_meta_fd(&b->st, f->fd, e);
	close(f->fd);
	lam__crash_point();
	return rc;
}

static int push(builder *b, size_t ent, int fd)
{
	if (b->depth == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 32;
		frame *st = lam__realloc(b->stack, cap * sizeof(*st));
		if (st == NULL) {
			close(fd);
			return lam__error(LAM_ENOMEM, "out of memory");
		}
		b->stack = st;
		b->cap = cap;
	}
	b->stack[b->depth].ent = ent;
	b->stack[b->depth].fd = fd;
	b->depth++;
	return 0;
}

/* Open the folder holding path (a path of this layer, whose folders this
 * builder or the writers made), never following a symlink. */
static int open_parent(builder *b, const char *path, size_t len,
		       const char **base)
{
	size_t pl = len;
	while (pl > 0 && path[pl - 1] != '/')
		pl--;
	*base = path + pl;
	int fd = lam__open_dir_beneath(b->fsfd, path, pl ? pl - 1 : 0, false);
	if (fd < 0)
		return lam__error_errno(errno, "staging link to %.*s", (int)len,
					path);
	return fd;
}

static int stage_link(builder *b, size_t i, int dirfd, const char *name)
{
	const lam__entry *e = &b->ents[i];
	const lam__entry *first =
		&b->ents[b->first_of_group[e->link_group] - 1];
	char fpath[PATH_MAX];
	if (first->path_len >= sizeof(fpath))
		return lam__error(LAM_ENAMETOOLONG, "path too long");
	memcpy(fpath, first->path, first->path_len);
	fpath[first->path_len] = '\0';
	const char *base = NULL;
	int pfd = open_parent(b, fpath, first->path_len, &base);
	if (pfd < 0)
		return pfd;
	int r = linkat(pfd, base, dirfd, name, 0);
	int e2 = errno;
	close(pfd);
	if (r < 0)
		return fail(e, e2, "staging link");
	lam__crash_point();
	return 0;
}

static int stage_file(builder *b, const lam__entry *e, int dirfd,
		      const char *name)
{
	int fd = openat(dirfd, name,
			O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
			0600);
	if (fd < 0)
		return fail(e, errno, "staging");
	int rc = lam__stage_file_fd(&b->st, fd, e);
	close(fd);
	lam__crash_point();
	return rc;
}

static int stage_whiteout(builder *b, const lam__entry *e, int dirfd,
			  const char *name)
{
	if (mknodat(dirfd, name, S_IFCHR | 0000, 0) == 0) {
		apply_meta_at(&b->st, dirfd, name, e);
		lam__crash_point();
		return 0;
	}
	if (errno != EPERM)
		return fail(e, errno, "staging whiteout");
	int fd = openat(dirfd, name,
			O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
			0000);
	if (fd < 0)
		return fail(e, errno, "staging whiteout");
	int rc = set_ovl(&b->st, fd, e, "whiteout", "y");
	close(fd);
	return rc;
}

static int stage_special(builder *b, const lam__entry *e, int dirfd,
			 const char *name)
{
	if (S_ISLNK(e->mode)) {
		char *t =
			lam__strndup(e->target ? e->target : "", e->target_len);
		if (t == NULL)
			return lam__error(LAM_ENOMEM, "out of memory");
		int r = symlinkat(t, dirfd, name);
		int e2 = errno;
		lam__free(t);
		if (r < 0)
			return fail(e, e2, "staging");
	} else if (mknodat(dirfd, name, e->mode & S_IFMT,
			   S_ISFIFO(e->mode) ? 0 : (dev_t)e->rdev) < 0) {
		if (errno != EPERM)
			return fail(e, errno, "staging");
		int fd = openat(dirfd, name,
				O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
					O_CLOEXEC,
				0600);
		if (fd < 0)
			return fail(e, errno, "staging");
		close(fd);
	}
	apply_meta_at(&b->st, dirfd, name, e);
	lam__crash_point();
	return 0;
}

static int stage_entry(builder *b, size_t i)
{
	const lam__entry *e = &b->ents[i];
	size_t plen = 0;
	for (size_t k = e->path_len; k > 0; k--) {
		if (e->path[k - 1] == '/') {
			plen = k - 1;
			break;
		}
	}
	/* Close the folders this entry is not below. */
	for (;;) {
		if (b->depth == 0)
			return lam__error(LAM_ECORRUPT,
					  "entry %.*s has no parent folder",
					  (int)e->path_len, e->path);
		const lam__entry *top = &b->ents[b->stack[b->depth - 1].ent];
		if (top->path_len == plen &&
		    memcmp(top->path, e->path, plen) == 0)
			break;
		int rc = pop(b);
		if (rc < 0)
			return rc;
	}
	int dirfd = b->stack[b->depth - 1].fd;
	size_t nl = e->path_len - plen - (plen ? 1 : 0);
	if (nl == 0 || nl > NAME_MAX)
		return lam__error(LAM_EBADNAME, "bad name in %.*s",
				  (int)e->path_len, e->path);
	char name[NAME_MAX + 1];
	memcpy(name, e->path + e->path_len - nl, nl);
	name[nl] = '\0';
	if (e->flags & LAM__E_WHITEOUT)
		return stage_whiteout(b, e, dirfd, name);
	if (S_ISDIR(e->mode)) {
		/* With files staged ahead, their folders may exist already
		 * (made 0700 by the writers; never a symlink). */
		int fd = lam__open_dir_beneath(dirfd, name, nl, true);
		if (fd < 0)
			return fail(e, errno, "staging");
		return push(b, i, fd);
	}
	if (b->staged != NULL && b->staged[i])
		return 0;
	if (e->link_group != 0) {
		if (e->link_group > b->ngroups)
			return lam__error(LAM_ECORRUPT, "bad link group");
		if (b->first_of_group[e->link_group] != 0)
			return stage_link(b, i, dirfd, name);
		b->first_of_group[e->link_group] = i + 1;
	}
	if (S_ISREG(e->mode))
		return stage_file(b, e, dirfd, name);
	return stage_special(b, e, dirfd, name);
}

static int stage_fs(builder *b)
{
	if (b->n == 0 || b->ents[0].path_len != 0 || !S_ISDIR(b->ents[0].mode))
		return lam__error(LAM_ECORRUPT, "layer without a root folder");
	uint32_t maxg = 0;
	for (size_t i = 0; i < b->n; i++)
		if (b->ents[i].link_group > maxg)
			maxg = b->ents[i].link_group;
	b->ngroups = maxg;
	b->first_of_group = lam__calloc((size_t)maxg + 1, sizeof(size_t));
	if (b->first_of_group == NULL)
		return lam__error(LAM_ENOMEM, "out of memory");
	/* A group's member staged ahead is the one the others link to. */
	for (size_t i = 0; b->staged != NULL && i < b->n; i++)
		if (b->staged[i] && b->ents[i].link_group != 0 &&
		    b->first_of_group[b->ents[i].link_group] == 0)
			b->first_of_group[b->ents[i].link_group] = i + 1;
	int fd = dup(b->fsfd);
	if (fd < 0)
		return lam__error_errno(errno, "staging");
	int rc = push(b, 0, fd);
	for (size_t i = 1; rc == 0 && i < b->n; i++)
		rc = stage_entry(b, i);
	while (b->depth > 0) {
		if (rc == 0) {
			rc = pop(b);
		} else {
			close(b->stack[b->depth - 1].fd);
			b->depth--;
		}
	}
	return rc;
}

int lam__layer_build(lam_layer **out, lam_store *s, int stagefd,
		     lam_layer *parent, const lam__entry *ents, size_t n,
		     uint64_t size, const lam__import_hooks *hooks)
{
	*out = NULL;
	int layerfd = -1, fsfd = -1;
	int rc = lam__staging_layer(stagefd, false, &layerfd, &fsfd);
	if (rc < 0)
		return rc;
	builder b;
	memset(&b, 0, sizeof(b));
	lam__stager_init(&b.st, s, fsfd);
	b.ents = ents;
	b.n = n;
	b.fsfd = fsfd;
	b.staged = hooks ? hooks->staged : NULL;
	rc = stage_fs(&b);
	lam__free(b.stack);
	lam__free(b.first_of_group);
	lam__close(&fsfd);
	/* The index writer takes a mutable array but only reads it. */
	if (rc == 0)
		rc = lam__index_write(layerfd, "index", (lam__entry *)ents, n);
	lam__digest extra;
	bool has_extra = false;
	if (rc == 0 && hooks && hooks->stage)
		rc = hooks->stage(hooks->ctx, layerfd, &extra, &has_extra);
	lam__layer_rec rec;
	memset(&rec, 0, sizeof(rec));
	if (rc == 0) {
		lam__digest diff, chain;
		lam__entries_digest(&diff, ents, n);
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
		rec.entries = n;
		rec.created = (int64_t)time(NULL);
		lam__buf meta = {0};
		rc = lam__meta_format(&meta, &rec);
		if (rc == 0)
			rc = lam__write_file_atomic(layerfd, "meta", meta.data,
						    meta.len);
		lam__buf_free(&meta);
	}
	if (rc == 0 && syncfs(layerfd) < 0)
		rc = lam__error_errno(errno, "syncing %s", s->path);
	lam__close(&layerfd);
	lam__crash_point();
	bool existed = false;
	if (rc == 0)
		rc = lam__layer_publish(s, stagefd, &rec,
					parent ? parent->rec.id : "", &existed);
	if (rc == 0)
		rc = lam__layer_open_id(out, s, rec.id);
	return rc;
}
