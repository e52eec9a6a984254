/* SPDX-License-Identifier: MIT */
/* Commit of a view's upper into a layer, diffs, and squash. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "kv/internal.h"
#include "view/internal.h"

int lam__view_switch(lam_view *v, lam_layer *base);

/* A partly copied-up file whose data never changed commits as its lower
 * object without being read; one that changed is completed, then hashed
 * like any file. */
static int commit_file(void *ctx, int dirfd, const char *name, int fd,
		       lam__entry *e, bool *handled)
{
	lam_view *v = ctx;
	lam__partial *p;
	int rc = lam__partial_load(v, fd, &p);
	if (rc < 0 || p == NULL)
		return rc;
	if (lam__partial_untouched(v, p, e->size)) {
		if (e->size > 0) {
			e->obj = p->obj;
			e->flags |= LAM__E_OBJECT;
		}
		*handled = true;
	} else {
		int wfd = openat(dirfd, name, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
		if (wfd < 0)
			rc = lam__view_posix(errno, "completing %s", name);
		else {
			rc = lam__partial_complete(v, p, wfd);
			close(wfd);
		}
	}
	lam__partial_free(p);
	return rc;
}

/* The key/value delta goes into the same staged layer folder, and its
 * digest into the layer's diff digest: one layer, both namespaces. */
static int commit_kv(void *ctx, int layerfd, lam__digest *extra, bool *has)
{
	return lam__kv_stage(ctx, layerfd, extra, has);
}

/* A whiteout of the upper is worth committing only if the base shows
 * something there: one moved along inside a renamed folder, or left under
 * an opaque one, hides nothing. */
static bool commit_keep_whiteout(void *ctx, const char *path, size_t len)
{
	lam_view *v = ctx;
	if (v->base == NULL || lam__view_need_chain(v) < 0) {
		lam__error_reset();
		return v->base != NULL;
	}
	if (lam__chain_find(v->chain, path, len) < 0)
		return false;
	/* The parent must let the lower show through in the view. */
	const char *slash = memrchr(path, '/', len);
	lam__vpath *vp = lam__malloc(sizeof(*vp));
	if (vp == NULL)
		return true;
	char parent[4096];
	size_t plen = slash ? (size_t)(slash - path) : 0;
	memcpy(parent, path, plen);
	parent[plen] = '\0';
	bool keep = true;
	if (lam__view_resolve(v, parent, 0, vp) == 0)
		keep = lam__vlast(vp)->lower_ok;
	lam__error_reset();
	lam__free(vp);
	return keep;
}

int lam_view_commit(lam_view *view, lam_layer **out,
		    const lam_commit_options *options)
{
	lam__error_reset();
	if (out != NULL)
		*out = NULL;
	if (view == NULL)
		return lam__error(LAM_EINVAL, "lam_view_commit: NULL view");
	if (options != NULL && options->version != LAM_COMMIT_OPTIONS_VERSION)
		return lam__error(LAM_EINVAL, "unknown commit options version");
	int rc = lam__view_writable(view);
	if (rc < 0)
		return rc;
	char src[4200], upper[32];
	lam__view_upper_name(upper, view->gen);
	snprintf(src, sizeof(src), "%s/views/%s/%s", view->store->path,
		 view->id, upper);
	lam__import_hooks hooks = {.file = commit_file,
				   .stage = commit_kv,
				   .keep_whiteout = commit_keep_whiteout,
				   .ctx = view};
	lam_layer *layer = NULL;
	rc = lam__layer_import(&layer, view->store, src, view->base, &hooks);
	if (rc < 0)
		return lam__error_prefix(rc, "committing view %s", view->id);
	rc = lam__view_switch(view, layer);
	if (rc == 0)
		rc = lam__kv_committed(view);
	if (rc == 0 && out != NULL)
		*out = layer;
	else
		lam_layer_free(layer);
	return rc;
}

/* Changes, collected then sorted so every diff reports in path order. */
typedef struct change {
	char *path;
	lam_change_kind kind;
} change;

typedef struct changes {
	change *v;
	size_t n, cap;
} changes;

static int add_change(changes *c, const char *path, size_t len,
		      lam_change_kind kind)
{
	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 64;
		change *p = lam__realloc(c->v, cap * sizeof(*p));
		if (p == NULL)
			return lam__error(LAM_ENOMEM, "out of memory");
		c->v = p;
		c->cap = cap;
	}
	char *s = lam__strndup(path, len);
	if (s == NULL)
		return lam__error(LAM_ENOMEM, "out of memory");
	c->v[c->n++] = (change){s, kind};
	return 0;
}

static int change_cmp(const void *a, const void *b)
{
	const change *x = a, *y = b;
	return lam__path_cmp(x->path, strlen(x->path), y->path,
			     strlen(y->path));
}

static int emit(changes *c, lam_change_cb cb, void *ud)
{
	if (c->n > 1)
		qsort(c->v, c->n, sizeof(*c->v), change_cmp);
	int rc = 0;
	for (size_t i = 0; cb != NULL && i < c->n && rc == 0; i++)
		rc = cb(c->v[i].kind, c->v[i].path, ud);
	for (size_t i = 0; i < c->n; i++)
		lam__free(c->v[i].path);
	lam__free(c->v);
	return rc;
}

static bool same_xattrs(const lam__entry *a, const lam__entry *b)
{
	return a->xattrs_len == b->xattrs_len &&
	       memcmp(a->xattrs, b->xattrs, a->xattrs_len) == 0;
}

/* 0: same, 'M': content or type, 'm': metadata only. */
static int compare_entries(const lam__entry *a, const lam__entry *b)
{
	if ((a->mode & S_IFMT) != (b->mode & S_IFMT))
		return LAM_CHANGE_MODIFIED;
	if (S_ISREG(a->mode) &&
	    (a->size != b->size || ((a->flags ^ b->flags) & LAM__E_OBJECT) ||
	     memcmp(&a->obj.digest, &b->obj.digest, 16) != 0))
		return LAM_CHANGE_MODIFIED;
	if (S_ISLNK(a->mode) &&
	    (a->target_len != b->target_len ||
	     memcmp(a->target, b->target, a->target_len) != 0))
		return LAM_CHANGE_MODIFIED;
	if ((S_ISCHR(a->mode) || S_ISBLK(a->mode)) && a->rdev != b->rdev)
		return LAM_CHANGE_MODIFIED;
	if (a->mode != b->mode || a->uid != b->uid || a->gid != b->gid ||
	    a->mtime_sec != b->mtime_sec || a->mtime_nsec != b->mtime_nsec ||
	    !same_xattrs(a, b))
		return LAM_CHANGE_METADATA;
	return 0;
}

static bool under(const char *dir, size_t dlen, const lam__entry *e)
{
	return e->path_len > dlen && e->path[dlen] == '/' &&
	       memcmp(e->path, dir, dlen) == 0;
}

/* Merge-join two merged trees (either may be empty). */
static int diff_merged(lam__merged *a, lam__merged *b, changes *out)
{
	size_t i = 0, k = 0;
	int rc = 0;
	const char *gone = NULL; /* the last deleted folder */
	size_t gone_len = 0;
	while (rc == 0 && (i < a->count || k < b->count)) {
		lam__entry x, y;
		int c;
		if (i < a->count)
			lam__merged_get(a, i, &x);
		if (k < b->count)
			lam__merged_get(b, k, &y);
		if (i == a->count)
			c = 1;
		else if (k == b->count)
			c = -1;
		else
			c = lam__path_cmp(x.path, x.path_len, y.path,
					  y.path_len);
		if (c < 0) {
			/* Deleted: report a folder once, not its contents. */
			bool inside = gone && under(gone, gone_len, &x);
			if (!inside) {
				rc = add_change(out, x.path, x.path_len,
						LAM_CHANGE_DELETED);
				if (S_ISDIR(x.mode)) {
					gone = x.path;
					gone_len = x.path_len;
				}
			}
			i++;
		} else if (c > 0) {
			rc = add_change(out, y.path, y.path_len,
					LAM_CHANGE_ADDED);
			k++;
		} else {
			int kind = x.path_len ? compare_entries(&x, &y) : 0;
			if (kind)
				rc = add_change(out, y.path, y.path_len,
						(lam_change_kind)kind);
			i++;
			k++;
		}
	}
	return rc;
}

int lam_layer_diff(lam_layer *from, lam_layer *to, lam_change_cb cb,
		   void *userdata)
{
	lam__error_reset();
	if (cb == NULL)
		return lam__error(LAM_EINVAL, "lam_layer_diff: NULL callback");
	lam__merged a = {0}, b = {0};
	int rc = 0;
	if (from != NULL)
		rc = lam__merged_build(&a, from);
	if (rc == 0 && to != NULL)
		rc = lam__merged_build(&b, to);
	changes c = {0};
	if (rc == 0)
		rc = diff_merged(&a, &b, &c);
	if (rc == 0)
		rc = emit(&c, cb, userdata);
	else
		emit(&c, NULL, NULL);
	lam__merged_free(&a);
	lam__merged_free(&b);
	return rc;
}

/* A whole file of the upper against a lower entry: same bytes? (Costs a
 * read of the file, which the change wrote anyway.) */
static bool same_content(int fd, const lam__entry *e, uint64_t size)
{
	if (fd < 0 || size != e->size)
		return false;
	if (size == 0)
		return true;
	if (!(e->flags & LAM__E_OBJECT))
		return false;
	lam__hasher h;
	lam__hasher_init(&h);
	char buf[65536];
	ssize_t n;
	uint64_t off = 0;
	while ((n = pread(fd, buf, sizeof(buf), (off_t)off)) > 0) {
		lam__hasher_update(&h, buf, (size_t)n);
		off += (uint64_t)n;
	}
	lam__digest d;
	lam__hasher_digest(&h, &d);
	return n == 0 && off == size && memcmp(&d, &e->obj.digest, 16) == 0;
}

static bool same_view_xattrs(lam_view *v, lam__vpath *vp, const lam__entry *e)
{
	lam__buf b = {0};
	bool same = lam__view_xattr_blob(v, vp, &b) == 0 &&
		    b.len == e->xattrs_len &&
		    (b.len == 0 || memcmp(b.data, e->xattrs, b.len) == 0);
	lam__buf_free(&b);
	lam__error_reset();
	return same;
}

/* The view's changes: a walk of its upper, against the lower chain. */
static int diff_upper(lam_view *v, lam__vpath *vp, changes *out)
{
	int fd = openat(v->upperfd, vp->len ? vp->p : ".",
			O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return lam__view_posix(errno, "reading %s", vp->p);
	DIR *d = fdopendir(fd);
	if (d == NULL) {
		close(fd);
		return lam__view_posix(errno, "reading %s", vp->p);
	}
	char **names = NULL;
	size_t n = 0;
	int rc = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		char **p = lam__realloc(names, (n + 1) * sizeof(*names));
		if (p == NULL || (p[n] = lam__strdup(de->d_name)) == NULL) {
			if (p != NULL)
				names = p;
			rc = lam__error(LAM_ENOMEM, "out of memory");
			break;
		}
		names = p;
		n++;
	}
	closedir(d);
	uint32_t base_len = vp->len, base_depth = vp->depth;
	for (size_t i = 0; rc == 0 && i < n; i++) {
		size_t nl = strlen(names[i]);
		if (base_len + 1 + nl >= sizeof(vp->p))
			continue;
		uint32_t at = base_len;
		if (at > 0)
			vp->p[at++] = '/';
		memcpy(vp->p + at, names[i], nl + 1);
		vp->len = at + (uint32_t)nl;
		lam__view_look_up(v, vp, base_depth);
		vp->depth = base_depth + 1;
		lam__vlevel *cl = lam__vlast(vp);
		if (cl->whiteout) {
			if (cl->lower >= 0)
				rc = add_change(out, vp->p, vp->len,
						LAM_CHANGE_DELETED);
		} else if (cl->lower < 0) {
			rc = add_change(out, vp->p, vp->len, LAM_CHANGE_ADDED);
			/* Everything below a new folder is new too. */
		} else {
			lam_stat us, ls;
			lam__entry e;
			lam__chain_entry(v->chain, (size_t)cl->lower, &e);
			rc = lam__view_stat_level(v, vp, &us);
			lam__view_fill_lower(v, (size_t)cl->lower, &ls);
			int kind = 0;
			if ((us.mode & S_IFMT) != (ls.mode & S_IFMT))
				kind = LAM_CHANGE_MODIFIED;
			else if (S_ISREG(us.mode)) {
				int f = openat(v->upperfd, vp->p,
					       O_RDONLY | O_NOFOLLOW |
						       O_CLOEXEC);
				lam__partial *p = NULL;
				if (f >= 0)
					lam__partial_load(v, f, &p);
				if (p != NULL &&
				    !lam__partial_untouched(v, p, us.size))
					kind = LAM_CHANGE_MODIFIED;
				else if (p == NULL &&
					 !same_content(f, &e, us.size))
					kind = LAM_CHANGE_MODIFIED;
				lam__partial_free(p);
				if (f >= 0)
					close(f);
			}
			if (!kind &&
			    (us.mode != ls.mode || us.uid != ls.uid ||
			     us.gid != ls.gid || us.mtime_sec != ls.mtime_sec ||
			     us.mtime_nsec != ls.mtime_nsec ||
			     !same_view_xattrs(v, vp, &e)))
				kind = LAM_CHANGE_METADATA;
			if (rc == 0 && kind)
				rc = add_change(out, vp->p, vp->len,
						(lam_change_kind)kind);
		}
		if (rc == 0 && cl->upper && S_ISDIR(cl->mode)) {
			/* An opaque folder deletes what the lower held. */
			if (cl->opaque && cl->lower >= 0) {
				lam__entry e;
				lam__chain_entry(v->chain, (size_t)cl->lower,
						 &e);
				for (int64_t c = lam__chain_first_child(
					     v->chain, cl->lower);
				     c >= 0 && rc == 0;
				     c = lam__chain_next_child(v->chain,
							       cl->lower, c)) {
					lam__entry ce;
					lam__chain_entry(v->chain, (size_t)c,
							 &ce);
					rc = add_change(out, ce.path,
							ce.path_len,
							LAM_CHANGE_DELETED);
				}
			}
			if (rc == 0)
				rc = diff_upper(v, vp, out);
		}
		vp->len = base_len;
		vp->p[base_len] = '\0';
		vp->depth = base_depth;
	}
	for (size_t i = 0; i < n; i++)
		lam__free(names[i]);
	lam__free(names);
	return rc;
}

int lam_view_diff(lam_view *view, lam_change_cb cb, void *userdata)
{
	lam__error_reset();
	if (view == NULL || cb == NULL)
		return lam__error(LAM_EINVAL, "lam_view_diff: NULL argument");
	if (view->upperfd < 0)
		return 0;
	lam__vpath *vp = lam__malloc(sizeof(*vp));
	if (vp == NULL)
		return lam__error(LAM_ENOMEM, "out of memory");
	int rc = lam__view_resolve(view, "", 0, vp);
	changes c = {0};
	if (rc == 0)
		rc = diff_upper(view, vp, &c);
	lam__free(vp);
	/* An opaque folder's deletions may repeat what whiteouts said. */
	if (rc == 0 && c.n > 1) {
		qsort(c.v, c.n, sizeof(*c.v), change_cmp);
		size_t k = 1;
		for (size_t i = 1; i < c.n; i++) {
			if (strcmp(c.v[i].path, c.v[k - 1].path) == 0) {
				lam__free(c.v[i].path);
				continue;
			}
			c.v[k++] = c.v[i];
		}
		c.n = k;
	}
	if (rc == 0)
		return emit(&c, cb, userdata);
	emit(&c, NULL, NULL);
	return rc;
}

static int complete_tree(lam_view *v, int dirfd)
{
	DIR *d = lam__opendir_dup(dirfd);
	if (d == NULL)
		return lam__view_posix(errno, "reading the upper");
	int rc = 0;
	struct dirent *de;
	while (rc == 0 && (de = readdir(d)) != NULL) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		struct stat st;
		if (fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		if (S_ISDIR(st.st_mode)) {
			int sub = openat(dirfd, de->d_name,
					 O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
						 O_CLOEXEC);
			if (sub < 0)
				rc = lam__view_posix(errno, "%s", de->d_name);
			else {
				rc = complete_tree(v, sub);
				close(sub);
			}
			continue;
		}
		if (!S_ISREG(st.st_mode) || st.st_size == 0)
			continue;
		int f = openat(dirfd, de->d_name,
			       O_RDWR | O_NOFOLLOW | O_CLOEXEC);
		if (f < 0) {
			rc = lam__view_posix(errno, "%s", de->d_name);
			break;
		}
		lam__partial *p = NULL;
		rc = lam__partial_load(v, f, &p);
		if (rc == 0 && p != NULL) {
			/* Filling chunks allocates: the quota applies. */
			rc = lam__quota_write(v, f, 0, (uint64_t)st.st_size,
					      true);
			uint64_t before = lam__quota_alloc(f);
			if (rc == 0)
				rc = lam__partial_complete(v, p, f);
			lam__quota_blocks(v, before, lam__quota_alloc(f));
			/* Completing writes data: keep the file's times. */
			struct timespec ts[2] = {st.st_atim, st.st_mtim};
			futimens(f, ts);
		}
		lam__partial_free(p);
		close(f);
	}
	closedir(d);
	return rc;
}

int lam_view_sync_upper(lam_view *view)
{
	lam__error_reset();
	if (view == NULL)
		return lam__error(LAM_EINVAL, "lam_view_sync_upper: NULL view");
	int rc = lam__view_writable(view);
	if (rc == 0)
		rc = complete_tree(view, view->upperfd);
	return rc;
}
