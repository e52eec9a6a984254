/* SPDX-License-Identifier: MIT */
/*
 * Checkout: write the merged tree of a chain into a host folder. Entries
 * come sorted so that each folder precedes its contents; a stack of open
 * folder descriptors follows the walk, so every entry is created with an
 * *at() call relative to its parent and nothing can land outside dest.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "layer/internal.h"

typedef struct dir_frame {
	uint32_t path_len;
	int fd;
	size_t ent; /* merged entry number, for final metadata */
} dir_frame;

typedef struct checkout {
	lam__merged m;
	const char *dest;
	int rootfd;
	bool chown;
	dir_frame *stack;
	size_t depth, cap;
	/* First path of each hard-link group seen: (layer, group) → entry. */
	size_t *link_first;
	size_t *group_base; /* per layer: offset into link_first */
	char *buf;
} checkout;

static int co_fail(checkout *c, const lam__entry *e, int err, const char *what)
{
	return lam__error_os(lam__errno_to_code(err), err, "%s %s/%.*s", what,
			     c->dest, (int)e->path_len, e->path);
}

static void set_meta(checkout *c, int fd, int dirfd, const char *name,
		     const lam__entry *e)
{
	char lpath[PATH_MAX + 64] = "";
	bool have_path = fd < 0 &&
			 lam__fd_path(lpath, sizeof(lpath), dirfd, name) == 0;
	if (fd >= 0 || have_path)
		lam__entry_set_xattrs(fd, lpath, e);
	struct timespec ts[2] = {{e->mtime_sec, e->mtime_nsec},
				 {e->mtime_sec, e->mtime_nsec}};
	if (fd >= 0) {
		if (c->chown)
			(void)!fchown(fd, e->uid, e->gid);
		fchmod(fd, e->mode & 07777);
		futimens(fd, ts);
		return;
	}
	if (c->chown)
		(void)!fchownat(dirfd, name, e->uid, e->gid,
				AT_SYMLINK_NOFOLLOW);
	if (!S_ISLNK(e->mode))
		fchmodat(dirfd, name, e->mode & 07777, 0);
	utimensat(dirfd, name, ts, AT_SYMLINK_NOFOLLOW);
}

static int copy_data(checkout *c, int in, int out, const lam__entry *e)
{
	uint64_t left = e->size;
	while (left > 0) {
		ssize_t n = copy_file_range(
			in, NULL, out, NULL,
			left > (1u << 30) ? (1u << 30) : (size_t)left, 0);
		if (n > 0) {
			left -= (uint64_t)n;
			continue;
		}
		if (n == 0)
			return lam__error(LAM_ECORRUPT,
					  "object of %.*s is shorter than its "
					  "entry",
					  (int)e->path_len, e->path);
		if (errno != EXDEV && errno != ENOSYS && errno != EOPNOTSUPP &&
		    errno != EINVAL)
			return co_fail(c, e, errno, "writing");
		/* Fall back to plain reads and writes. */
		ssize_t r = read(in, c->buf, 1u << 20);
		if (r <= 0)
			return r < 0 ? co_fail(c, e, errno,
					       "reading object of") :
				       lam__error(LAM_ECORRUPT,
						  "object of %.*s is short",
						  (int)e->path_len, e->path);
		int w = lam__write_all(out, c->buf, (size_t)r);
		if (w < 0)
			return co_fail(c, e, -w, "writing");
		left -= (uint64_t)r;
	}
	return 0;
}

static int make_file(checkout *c, int dirfd, const char *name,
		     const lam__entry *e, lam_layer *layer)
{
	int out = openat(dirfd, name,
			 O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
			 0600);
	if (out < 0)
		return co_fail(c, e, errno, "creating");
	int rc = 0;
	if (e->flags & LAM__E_OBJECT) {
		int in = lam__object_open(layer->store, &e->obj);
		if (in < 0)
			rc = lam__error_prefix(LAM_ECORRUPT, "layer %s, %.*s",
					       layer->rec.id, (int)e->path_len,
					       e->path);
		else {
			rc = copy_data(c, in, out, e);
			close(in);
		}
	}
	if (rc == 0)
		set_meta(c, out, -1, NULL, e);
	close(out);
	return rc;
}

static int make_entry(checkout *c, size_t i, int dirfd, const char *name,
		      const lam__entry *e)
{
	const lam__merged_ent *me = &c->m.ents[i];
	lam_layer *layer = c->m.chain[me->layer];
	if (e->link_group != 0) {
		size_t slot = c->group_base[me->layer] + e->link_group;
		if (c->link_first[slot] != 0) {
			lam__entry first;
			lam__merged_get(&c->m, c->link_first[slot] - 1, &first);
			char *fp = lam__strndup(first.path, first.path_len);
			if (fp == NULL)
				return lam__error(LAM_ENOMEM, "out of memory");
			int r = linkat(c->rootfd, fp, dirfd, name, 0);
			lam__free(fp);
			return r < 0 ? co_fail(c, e, errno, "linking") : 0;
		}
		c->link_first[slot] = i + 1;
	}
	switch (e->mode & S_IFMT) {
	case S_IFREG:
		return make_file(c, dirfd, name, e, layer);
	case S_IFLNK: {
		char *t = lam__strndup(e->target, e->target_len);
		if (t == NULL)
			return lam__error(LAM_ENOMEM, "out of memory");
		int r = symlinkat(t, dirfd, name);
		lam__free(t);
		if (r < 0)
			return co_fail(c, e, errno, "creating");
		break;
	}
	case S_IFCHR:
	case S_IFBLK:
	case S_IFIFO:
		if (mknodat(dirfd, name, e->mode & (S_IFMT | 07777),
			    (dev_t)e->rdev) < 0)
			return co_fail(c, e, errno, "creating");
		break;
	default:
		return lam__error(LAM_ECORRUPT,
				  "layer %s: %.*s has an unknown type %o",
				  layer->rec.id, (int)e->path_len, e->path,
				  e->mode);
	}
	set_meta(c, -1, dirfd, name, e);
	return 0;
}

static int push_dir(checkout *c, int fd, uint32_t len, size_t ent)
{
	if (c->depth == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 32;
		dir_frame *s = lam__realloc(c->stack, cap * sizeof(*s));
		if (s == NULL) {
			close(fd);
			return lam__error(LAM_ENOMEM, "out of memory");
		}
		c->stack = s;
		c->cap = cap;
	}
	c->stack[c->depth++] = (dir_frame){len, fd, ent};
	return 0;
}

/* Leaving a folder: its times go last, after its contents changed it. */
static void pop_dir(checkout *c)
{
	dir_frame *f = &c->stack[--c->depth];
	if (f->ent != SIZE_MAX) {
		lam__entry e;
		lam__merged_get(&c->m, f->ent, &e);
		set_meta(c, f->fd, -1, NULL, &e);
	}
	if (f->fd != c->rootfd)
		close(f->fd);
}

static int run(checkout *c)
{
	for (size_t i = 0; i < c->m.count; i++) {
		lam__entry e;
		lam__merged_get(&c->m, i, &e);
		if (e.path_len == 0) {
			/* The root's metadata applies to dest itself. */
			int rc = push_dir(c, c->rootfd, 0, i);
			if (rc < 0)
				return rc;
			continue;
		}
		if (c->depth == 0) {
			int rc = push_dir(c, c->rootfd, 0, SIZE_MAX);
			if (rc < 0)
				return rc;
		}
		const char *slash = memrchr(e.path, '/', e.path_len);
		uint32_t plen = slash ? (uint32_t)(slash - e.path) : 0;
		while (c->depth > 1 && c->stack[c->depth - 1].path_len != plen)
			pop_dir(c);
		if (c->stack[c->depth - 1].path_len != plen)
			return lam__error(LAM_ECORRUPT,
					  "%.*s has no parent folder in the "
					  "merged tree",
					  (int)e.path_len, e.path);
		uint32_t nlen = e.path_len - (slash ? plen + 1 : 0);
		if (nlen > NAME_MAX)
			return lam__error(LAM_ENAMETOOLONG,
					  "name too long: %.*s",
					  (int)e.path_len, e.path);
		char name[NAME_MAX + 1];
		memcpy(name, e.path + e.path_len - nlen, nlen);
		name[nlen] = '\0';
		int dirfd = c->stack[c->depth - 1].fd;
		if (S_ISDIR(e.mode)) {
			if (mkdirat(dirfd, name, 0700) < 0)
				return co_fail(c, &e, errno, "creating");
			int fd = openat(dirfd, name,
					O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
						O_CLOEXEC);
			if (fd < 0)
				return co_fail(c, &e, errno, "opening");
			int rc = push_dir(c, fd, e.path_len, i);
			if (rc < 0)
				return rc;
			continue;
		}
		int rc = make_entry(c, i, dirfd, name, &e);
		if (rc < 0)
			return rc;
	}
	return 0;
}

static bool folder_has_entries(int fd)
{
	DIR *d = lam__opendir_dup(fd);
	if (d == NULL)
		return false;
	bool any = false;
	struct dirent *de;
	while (!any && (de = readdir(d)) != NULL)
		any = strcmp(de->d_name, ".") && strcmp(de->d_name, "..");
	closedir(d);
	return any;
}

static void empty_folder(int fd)
{
	DIR *d = fd >= 0 ? lam__opendir_dup(fd) : NULL;
	if (d == NULL)
		return;
	struct dirent *de;
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			lam__rmtree_at(fd, de->d_name);
	closedir(d);
}

static int prepare_dest(const char *dest, int *fd_out, bool *created)
{
	*created = false;
	if (mkdir(dest, 0700) == 0)
		*created = true;
	else if (errno != EEXIST)
		return lam__error_errno(errno, "creating %s", dest);
	int fd = open(dest, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return lam__error_errno(errno, "opening %s", dest);
	if (!*created && folder_has_entries(fd)) {
		close(fd);
		return lam__error(LAM_EEXISTS,
				  "checkout destination %s is not empty", dest);
	}
	*fd_out = fd;
	return 0;
}

/* Write a merged entry list (borrowed) into dest. */
int lam__checkout_merged(lam__merged *m, const char *dest, bool chown)
{
	checkout c;
	memset(&c, 0, sizeof(c));
	c.dest = dest;
	c.rootfd = -1;
	c.chown = chown;
	c.m = *m;
	int rc = 0;
	size_t groups = 0;
	c.group_base = lam__calloc(c.m.depth + 1, sizeof(size_t));
	for (size_t l = 0; c.group_base && l < c.m.depth; l++) {
		c.group_base[l] = groups;
		groups += c.m.chain[l]->index.count + 1;
	}
	c.link_first = lam__calloc(groups + 1, sizeof(size_t));
	c.buf = lam__malloc(1u << 20);
	if (c.group_base == NULL || c.link_first == NULL || c.buf == NULL) {
		rc = lam__error(LAM_ENOMEM, "out of memory");
		goto out;
	}
	bool created;
	rc = prepare_dest(dest, &c.rootfd, &created);
	if (rc < 0)
		goto out;
	rc = run(&c);
	while (c.depth > 0) {
		if (rc == 0)
			pop_dir(&c);
		else if (c.stack[--c.depth].fd != c.rootfd)
			close(c.stack[c.depth].fd);
	}
	if (rc < 0) {
		/* Take back what this call wrote; a folder that was there
		 * before (empty) stays. */
		lam__error_saved saved;
		lam__error_save(&saved);
		if (created)
			lam__rmtree_at(AT_FDCWD, dest);
		else
			empty_folder(c.rootfd);
		lam__error_restore(&saved);
	}
	lam__close(&c.rootfd);
out:
	lam__free(c.stack);
	lam__free(c.link_first);
	lam__free(c.group_base);
	lam__free(c.buf);
	return rc;
}

int lam_layer_checkout(lam_layer *layer, const char *dest,
		       const lam_checkout_options *options)
{
	lam__error_reset();
	if (layer == NULL || dest == NULL || dest[0] == '\0')
		return lam__error(LAM_EINVAL,
				  "lam_layer_checkout: NULL argument");
	if (options != NULL && options->version != LAM_CHECKOUT_OPTIONS_VERSION)
		return lam__error(LAM_EINVAL,
				  "unknown checkout options version");
	bool chown = geteuid() == 0 &&
		     !(options && (options->flags & LAM_CHECKOUT_NO_CHOWN));
	lam__merged m;
	int rc = lam__merged_build(&m, layer);
	if (rc < 0)
		return lam__error_prefix(rc, "checking out layer %s",
					 layer->rec.id);
	rc = lam__checkout_merged(&m, dest, chown);
	lam__merged_free(&m);
	return rc;
}
