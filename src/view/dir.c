/* SPDX-License-Identifier: MIT */
/* Merged directory listing: the upper folder's entries (whiteouts hide,
 * they are not listed), then the lower chain's children unless the folder
 * is opaque, each name once, sorted. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "view/internal.h"

typedef struct dent {
	char *name;
	uint32_t mode;
	uint64_t ino;
	bool hidden; /* a whiteout: hides the lower name, not listed */
} dent;

struct lam_view_dir_iter {
	dent *v;
	size_t n, cap, next;
};

static int add(lam_view_dir_iter *it, const char *name, size_t len,
	       uint32_t mode, uint64_t ino, bool hidden)
{
	if (it->n == it->cap) {
		size_t cap = it->cap ? it->cap * 2 : 32;
		dent *p = lam__realloc(it->v, cap * sizeof(*p));
		if (p == NULL)
			return lam__error(LAM_ENOMEM, "out of memory");
		it->v = p;
		it->cap = cap;
	}
	char *s = lam__strndup(name, len);
	if (s == NULL)
		return lam__error(LAM_ENOMEM, "out of memory");
	it->v[it->n++] = (dent){s, mode, ino, hidden};
	return 0;
}

static int dent_cmp(const void *a, const void *b)
{
	return strcmp(((const dent *)a)->name, ((const dent *)b)->name);
}

void lam_view_dir_iter_free(lam_view_dir_iter *it)
{
	if (it == NULL)
		return;
	for (size_t i = 0; i < it->n; i++)
		lam__free(it->v[i].name);
	lam__free(it->v);
	lam__free(it);
}

static uint64_t lower_ino(const lam__chain *c, size_t i);

static int read_upper(lam_view *v, lam__vpath *vp, lam_view_dir_iter *it)
{
	int fd = openat(v->upperfd, vp->len ? vp->p : ".",
			O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return lam__view_posix(errno, "listing %s", vp->p);
	DIR *d = fdopendir(fd);
	if (d == NULL) {
		close(fd);
		return lam__view_posix(errno, "listing %s", vp->p);
	}
	int rc = 0;
	struct dirent *de;
	while (rc == 0 && (de = readdir(d)) != NULL) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		struct stat st;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		bool wh = lam__view_is_whiteout(v, dirfd(d), de->d_name, &st);
		rc = add(it, de->d_name, strlen(de->d_name), st.st_mode,
			 (uint64_t)st.st_ino | (1ull << 63), wh);
	}
	closedir(d);
	return rc;
}

static int collect(lam_view *v, lam__vpath *vp, lam_view_dir_iter *it,
		   bool stop_at_first)
{
	lam__vlevel *l = lam__vlast(vp);
	int rc = 0;
	if (l->upper)
		rc = read_upper(v, vp, it);
	size_t nup = it->n;
	if (rc == 0 && nup > 1)
		qsort(it->v, nup, sizeof(*it->v), dent_cmp);
	if (stop_at_first) {
		for (size_t i = 0; i < nup; i++)
			if (!it->v[i].hidden)
				return 1;
	}
	if (rc == 0 && l->lower_ok) {
		for (int64_t c = lam__chain_first_child(v->chain, l->lower);
		     c >= 0 && rc == 0;
		     c = lam__chain_next_child(v->chain, l->lower, c)) {
			lam__entry e;
			lam__chain_entry(v->chain, (size_t)c, &e);
			const char *nm = memrchr(e.path, '/', e.path_len);
			nm = nm ? nm + 1 : e.path;
			size_t len = e.path_len - (size_t)(nm - e.path);
			char key[256];
			if (len >= sizeof(key))
				continue;
			memcpy(key, nm, len);
			key[len] = '\0';
			dent probe = {.name = key};
			if (nup && bsearch(&probe, it->v, nup, sizeof(*it->v),
					   dent_cmp))
				continue;
			if (stop_at_first)
				return 1;
			rc = add(it, nm, len, e.mode,
				 lower_ino(v->chain, (size_t)c), false);
		}
	}
	if (rc < 0)
		return rc;
	/* Drop whiteouts, then sort the merged list. */
	size_t k = 0;
	for (size_t i = 0; i < it->n; i++) {
		if (it->v[i].hidden)
			lam__free(it->v[i].name);
		else
			it->v[k++] = it->v[i];
	}
	it->n = k;
	if (k > 1)
		qsort(it->v, k, sizeof(*it->v), dent_cmp);
	return 0;
}

static uint64_t lower_ino(const lam__chain *c, size_t i)
{
	lam__entry e;
	lam__chain_entry(c, i, &e);
	const lam_layer *l = c->m.chain[c->m.ents[i].layer];
	char key[48];
	uint64_t h;
	if (e.link_group != 0) {
		memcpy(key, l->rec.id, 32);
		memcpy(key + 32, &e.link_group, 4);
		h = lam__hash64(key, 36);
	} else {
		h = lam__hash64(e.path, e.path_len) ^
		    lam__hash64(l->rec.id, 32);
	}
	return (h & ~(1ull << 63)) | 1;
}

uint64_t lam__view_lower_ino(const lam__chain *c, size_t i);

uint64_t lam__view_lower_ino(const lam__chain *c, size_t i)
{
	return lower_ino(c, i);
}

int lam__view_dir_empty(lam_view *v, lam__vpath *vp, bool *empty)
{
	lam_view_dir_iter it = {0};
	int rc = collect(v, vp, &it, true);
	*empty = rc == 0;
	for (size_t i = 0; i < it.n; i++)
		lam__free(it.v[i].name);
	lam__free(it.v);
	return rc < 0 ? rc : 0;
}

int lam_view_dir_iter_new(lam_view_dir_iter **out, lam_view *view,
			  const char *path)
{
	lam__error_reset();
	if (out == NULL)
		return lam__error(LAM_EINVAL,
				  "lam_view_dir_iter_new: NULL out");
	*out = NULL;
	if (view == NULL)
		return lam__error(LAM_EINVAL,
				  "lam_view_dir_iter_new: NULL view");
	lam__vpath *vp = lam__malloc(sizeof(*vp));
	lam_view_dir_iter *it = lam__calloc(1, sizeof(*it));
	int rc = vp && it ? 0 : lam__error(LAM_ENOMEM, "out of memory");
	if (rc == 0)
		rc = lam__view_resolve(view, path, LAM__FOLLOW, vp);
	if (rc == 0 && lam__vlast(vp)->mode == 0)
		rc = lam__view_posix(ENOENT, "%s: no such entry", path);
	if (rc == 0 && !S_ISDIR(lam__vlast(vp)->mode))
		rc = lam__view_posix(ENOTDIR, "%s: not a folder", path);
	if (rc == 0)
		rc = collect(view, vp, it, false);
	lam__free(vp);
	if (rc < 0) {
		lam_view_dir_iter_free(it);
		return rc;
	}
	*out = it;
	return 0;
}

int lam_view_dir_iter_next(lam_view_dir_iter *it, lam_dirent *out)
{
	if (it == NULL || out == NULL)
		return lam__error(LAM_EINVAL, "lam_view_dir_iter_next: NULL");
	if (it->next >= it->n)
		return LAM_ITEROVER;
	dent *d = &it->v[it->next++];
	out->name = d->name;
	out->mode = d->mode & S_IFMT;
	out->ino = d->ino;
	return 0;
}
