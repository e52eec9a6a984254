/* SPDX-License-Identifier: MIT */
/* View lifecycle: create, open, free, list, remove, reset. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "kv/internal.h"
#include "view/internal.h"

int lam__view_posix(int err, const char *fmt, ...)
{
	char msg[900];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return lam__error_os(LAM_EPOSIX, err, "%s", msg);
}

void lam__view_upper_name(char out[32], unsigned int gen)
{
	snprintf(out, 32, "upper-%u", gen);
}

static int views_dir(lam_store *s, int *fd)
{
	if (mkdirat(s->rootfd, "views", 0755) < 0 && errno != EEXIST)
		return lam__error_errno(errno, "creating %s/views", s->path);
	*fd = openat(s->rootfd, "views",
		     O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (*fd < 0)
		return lam__error_errno(errno, "opening %s/views", s->path);
	return 0;
}

typedef struct view_rec {
	char id[37];
	char base[33];
	unsigned int gen;
} view_rec;

static int meta_write(int viewfd, const view_rec *r)
{
	lam__buf b = {0};
	int rc = lam__buf_printf(&b, "lamina-view 1\nid %s\nbase %s\ngen %u\n",
				 r->id, r->base[0] ? r->base : "-", r->gen);
	if (rc == 0)
		rc = lam__buf_printf(&b, "checksum %016" PRIx64 "\n",
				     lam__hash64(b.data, b.len));
	if (rc == 0)
		rc = lam__write_file_atomic(viewfd, "meta", b.data, b.len);
	lam__buf_free(&b);
	return rc;
}

static int meta_read(int viewfd, const char *id, view_rec *r)
{
	char *text;
	size_t len;
	int rc = lam__read_file_at(viewfd, "meta", &text, &len, 4096);
	if (rc < 0)
		return lam__error_prefix(LAM_ECORRUPT, "view %s", id);
	memset(r, 0, sizeof(*r));
	char base[40] = "";
	const char *ck = strstr(text, "\nchecksum ");
	char want[17] = "";
	if (ck != NULL)
		snprintf(want, sizeof(want), "%016" PRIx64,
			 lam__hash64(text, (size_t)(ck + 1 - text)));
	int n = sscanf(text, "lamina-view 1\nid %36s\nbase %34s\ngen %u\n",
		       r->id, base, &r->gen);
	bool ok = n == 3 && ck != NULL && strncmp(ck + 10, want, 16) == 0 &&
		  strcmp(r->id, id) == 0;
	if (ok && strcmp(base, "-") != 0) {
		ok = strlen(base) == 32 && lam__is_hex(base, 32);
		memcpy(r->base, base, 33);
	}
	lam__free(text);
	if (!ok)
		return lam__error(LAM_ECORRUPT, "view %s: meta is damaged", id);
	return 0;
}

void lam__view_ovl(const lam_view *v, char out[64], const char *key)
{
	snprintf(out, 64, "%s%s", v->store->overlay_xattr, key);
}

bool lam__view_private_xattr(const char *name)
{
	return strcmp(name, "trusted.lamina.partial") == 0 ||
	       strcmp(name, "user.lamina.partial") == 0 ||
	       strncmp(name, "trusted.overlay.", 16) == 0 ||
	       strncmp(name, "user.overlay.", 13) == 0;
}

void lam__view_tmpname(char out[64])
{
	char u[37];
	lam__uuid_new(u);
	snprintf(out, 64, "tmp-%s", u);
}

int lam__view_workfd(lam_view *v)
{
	int fd = openat(v->viewfd, "work",
			O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return lam__error_errno(errno, "view %s: opening work", v->id);
	return fd;
}

/* The upper root carries the base root's metadata, so that an untouched
 * root commits as it was. */
/* The root entry of the base's chain: the topmost layer that has one.
 * *holder keeps the entry's mapping alive. */
static int base_root(lam_view *v, lam__entry *e, lam_layer **holder)
{
	*holder = NULL;
	lam_layer *cur = lam_layer_ref(v->base);
	while (cur != NULL) {
		const lam__index *idx;
		int rc = lam__layer_index(cur, &idx);
		if (rc < 0) {
			lam_layer_free(cur);
			return rc;
		}
		int64_t i = lam__index_find(idx, "", 0);
		if (i >= 0) {
			lam__index_get(idx, (uint64_t)i, e);
			*holder = cur;
			return 0;
		}
		lam_layer *next;
		rc = lam_layer_parent(&next, cur);
		lam_layer_free(cur);
		if (rc < 0)
			return rc;
		cur = next;
	}
	return 0;
}

static int init_upper_root(lam_view *v)
{
	lam__entry e;
	lam_layer *holder;
	int rc = base_root(v, &e, &holder);
	if (rc < 0 || holder == NULL)
		return rc;
	if (geteuid() == 0)
		(void)!fchown(v->upperfd, e.uid, e.gid);
	fchmod(v->upperfd, e.mode & 07777);
	uint32_t off = 0;
	lam__xattr x;
	char name[256];
	while (lam__xattr_next(e.xattrs, e.xattrs_len, &off, &x) == 1) {
		if (x.name_len >= sizeof(name))
			continue;
		memcpy(name, x.name, x.name_len);
		name[x.name_len] = '\0';
		fsetxattr(v->upperfd, name, x.value, x.value_len, 0);
	}
	struct timespec ts[2] = {{e.mtime_sec, e.mtime_nsec},
				 {e.mtime_sec, e.mtime_nsec}};
	futimens(v->upperfd, ts);
	lam_layer_free(holder);
	return 0;
}

static int open_upper(lam_view *v)
{
	char name[32];
	lam__view_upper_name(name, v->gen);
	v->upperfd = openat(v->viewfd, name,
			    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (v->upperfd < 0)
		return lam__error_os(LAM_ECORRUPT, errno,
				     "view %s: %s is missing", v->id, name);
	return 0;
}

/* The merged chain of a new base is built when a lookup first needs it,
 * not here: a commit then costs what changed, not the image's size. */
static int set_base(lam_view *v, lam_layer *base)
{
	lam_layer *old = v->base;
	v->base = base ? lam_layer_ref(base) : NULL;
	lam_layer_free(old);
	lam__chain_unref(v->chain);
	v->chain = NULL;
	v->chain_stale = base != NULL;
	return 0;
}

int lam__view_need_chain(lam_view *v)
{
	if (!v->chain_stale)
		return 0;
	int rc = lam__chain_get(&v->chain, v->base);
	if (rc == 0)
		v->chain_stale = false;
	return rc;
}

static lam_view *view_alloc(lam_store *s, unsigned int flags)
{
	lam_view *v = lam__calloc(1, sizeof(*v));
	if (v == NULL)
		return NULL;
	v->store = lam__store_ref(s);
	v->viewfd = v->upperfd = -1;
	v->readonly = (flags & LAM_VIEW_READONLY) != 0;
	return v;
}

void lam_view_free(lam_view *view)
{
	if (view == NULL)
		return;
	lam__kv_view_free(view->kv);
	lam__chain_unref(view->chain);
	lam_layer_free(view->base);
	lam__close(&view->viewfd);
	lam__close(&view->upperfd);
	lam__store_unref(view->store);
	lam__free(view);
}

static int check_options(const lam_view_options *o)
{
	if (o != NULL && o->version != LAM_VIEW_OPTIONS_VERSION)
		return lam__error(LAM_EINVAL, "unknown view options version");
	return 0;
}

int lam_view_create(lam_view **out, lam_store *store, lam_layer *base,
		    const lam_view_options *options)
{
	lam__error_reset();
	if (out == NULL)
		return lam__error(LAM_EINVAL, "lam_view_create: out is NULL");
	*out = NULL;
	if (store == NULL)
		return lam__error(LAM_EINVAL, "lam_view_create: NULL store");
	int rc = check_options(options);
	if (rc < 0)
		return rc;
	if (base != NULL && base->store != store)
		return lam__error(LAM_EINVAL, "base layer of another store");
	lam_view *v = view_alloc(store, options ? options->flags : 0);
	if (v == NULL)
		return lam__error(LAM_ENOMEM, "out of memory");
	rc = set_base(v, base);
	if (rc < 0 || v->readonly) {
		if (rc < 0)
			lam_view_free(v);
		else
			*out = v;
		return rc;
	}
	/* Built aside in the store's tmp/ (where a killed creator's
	 * leftovers are cleared like any writer's), published by one rename;
	 * the shared gc lock keeps the clean-up away meanwhile. */
	int vdir = -1;
	rc = views_dir(store, &vdir);
	int gclk = rc == 0 ? lam__store_gc_lock(store, false, true) : -1;
	if (rc == 0 && gclk < 0)
		rc = gclk;
	char tmp[37] = "";
	if (rc == 0)
		rc = lam__store_staging(store, tmp, &v->viewfd);
	lam__uuid_new(v->id);
	view_rec r = {.gen = 1};
	memcpy(r.id, v->id, 37);
	if (base != NULL)
		memcpy(r.base, base->rec.id, 33);
	v->gen = 1;
	if (rc == 0 && (mkdirat(v->viewfd, "upper-1", 0755) < 0 ||
			mkdirat(v->viewfd, "work", 0700) < 0 ||
			mkdirat(v->viewfd, "partial", 0700) < 0))
		rc = lam__error_errno(errno, "creating view folders");
	if (rc == 0)
		rc = open_upper(v);
	if (rc == 0)
		rc = init_upper_root(v);
	if (rc == 0)
		rc = meta_write(v->viewfd, &r);
	lam__crash_point();
	if (rc == 0 && renameat(store->tmpfd, tmp, vdir, v->id) < 0)
		rc = lam__error_errno(errno, "publishing view %s", v->id);
	lam__crash_point();
	if (rc == 0 && fsync(vdir) < 0)
		rc = lam__error_errno(errno, "syncing views");
	if (rc < 0 && tmp[0])
		lam__rmtree_quiet(store->tmpfd, tmp);
	lam__unlock(gclk);
	lam__close(&vdir);
	if (rc < 0) {
		lam_view_free(v);
		return rc;
	}
	v->stored = true;
	*out = v;
	return 0;
}

/* Resolve a UUID or a unique prefix among stored views. */
static int find_view(lam_store *s, int vdir, const char *id, char out[37])
{
	size_t len = strlen(id);
	if (len < 4 || len > 36)
		return lam__error(LAM_ENOTFOUND, "no view '%s'", id);
	DIR *d = lam__opendir_dup(vdir);
	if (d == NULL)
		return lam__error_errno(errno, "reading %s/views", s->path);
	size_t matches = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (strlen(de->d_name) != 36 ||
		    strncmp(de->d_name, id, len) != 0)
			continue;
		if (matches++ == 0)
			memcpy(out, de->d_name, 37);
	}
	closedir(d);
	if (matches == 0)
		return lam__error(LAM_ENOTFOUND, "no view '%s'", id);
	if (matches > 1)
		return lam__error(LAM_EAMBIGUOUS,
				  "view prefix %s matches %zu views", id,
				  matches);
	return 0;
}

int lam_view_open(lam_view **out, lam_store *store, const char *id,
		  const lam_view_options *options)
{
	lam__error_reset();
	if (out == NULL)
		return lam__error(LAM_EINVAL, "lam_view_open: out is NULL");
	*out = NULL;
	if (store == NULL || id == NULL)
		return lam__error(LAM_EINVAL, "lam_view_open: NULL argument");
	int rc = check_options(options);
	if (rc < 0)
		return rc;
	int vdir = -1;
	rc = views_dir(store, &vdir);
	char full[37];
	if (rc == 0)
		rc = find_view(store, vdir, id, full);
	lam_view *v = NULL;
	if (rc == 0 &&
	    (v = view_alloc(store, options ? options->flags : 0)) == NULL)
		rc = lam__error(LAM_ENOMEM, "out of memory");
	if (rc == 0) {
		memcpy(v->id, full, 37);
		v->viewfd =
			openat(vdir, full,
			       O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (v->viewfd < 0)
			rc = lam__error_errno(errno, "opening view %s", full);
	}
	lam__close(&vdir);
	view_rec r;
	if (rc == 0)
		rc = meta_read(v->viewfd, full, &r);
	lam_layer *base = NULL;
	if (rc == 0 && r.base[0]) {
		rc = lam__layer_open_id(&base, store, r.base);
		if (rc == LAM_ENOTFOUND)
			rc = lam__error(LAM_ECORRUPT,
					"view %s: base layer %s is missing",
					full, r.base);
	}
	if (rc == 0) {
		v->gen = r.gen;
		v->stored = true;
		rc = set_base(v, base);
	}
	lam_layer_free(base);
	if (rc == 0)
		rc = open_upper(v);
	if (rc == 0 && !v->readonly)
		lam__clear_tmp_files(v->viewfd);
	if (rc == 0 && !v->readonly) {
		/* Needs the base's chain for nothing: the journal names
		 * upper paths. */
		rc = lam__view_recover_work(v);
	}
	if (rc == 0 && !v->readonly) {
		/* Uppers of earlier generations are leftovers of a commit
		 * killed before it cleaned up. */
		for (unsigned int g = v->gen > 3 ? v->gen - 3 : 0; g < v->gen;
		     g++) {
			char name[32];
			lam__view_upper_name(name, g);
			lam__rmtree_quiet(v->viewfd, name);
		}
	}
	if (rc < 0) {
		lam_view_free(v);
		return rc;
	}
	*out = v;
	return 0;
}

const char *lam_view_id(const lam_view *view)
{
	return view ? view->id : NULL;
}

int lam_view_base(lam_layer **out, lam_view *view)
{
	lam__error_reset();
	if (out == NULL || view == NULL)
		return lam__error(LAM_EINVAL, "lam_view_base: NULL argument");
	*out = lam_layer_ref(view->base);
	return 0;
}

int lam_view_foreach(lam_store *store, lam_view_cb cb, void *userdata)
{
	lam__error_reset();
	if (store == NULL || cb == NULL)
		return lam__error(LAM_EINVAL,
				  "lam_view_foreach: NULL argument");
	int vdir;
	int rc = views_dir(store, &vdir);
	if (rc < 0)
		return rc;
	DIR *d = fdopendir(vdir);
	if (d == NULL) {
		close(vdir);
		return lam__error_errno(errno, "reading views");
	}
	char(*ids)[37] = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (strlen(de->d_name) != 36)
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			char(*p)[37] = lam__realloc(ids, cap * sizeof(*ids));
			if (p == NULL) {
				rc = lam__error(LAM_ENOMEM, "out of memory");
				break;
			}
			ids = p;
		}
		memcpy(ids[n++], de->d_name, 37);
	}
	if (rc == 0 && n > 1)
		qsort(ids, n, sizeof(*ids),
		      (int (*)(const void *, const void *))strcmp);
	for (size_t i = 0; rc == 0 && i < n; i++) {
		int fd = openat(dirfd(d), ids[i],
				O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		view_rec r;
		if (fd < 0)
			continue;
		int mr = meta_read(fd, ids[i], &r);
		close(fd);
		if (mr < 0) {
			lam__error_reset();
			continue;
		}
		rc = cb(ids[i], r.base[0] ? r.base : NULL, userdata);
	}
	closedir(d);
	lam__free(ids);
	return rc;
}

/* Base layers of all stored views: gc keeps them. */
int lam__view_bases(lam_store *s, char (**out)[33], size_t *n)
{
	*out = NULL;
	*n = 0;
	int vdir = openat(s->rootfd, "views",
			  O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (vdir < 0)
		return errno == ENOENT ?
			       0 :
			       lam__error_errno(errno, "reading views");
	DIR *d = fdopendir(vdir);
	if (d == NULL) {
		close(vdir);
		return lam__error_errno(errno, "reading views");
	}
	size_t cap = 0;
	int rc = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (strlen(de->d_name) != 36)
			continue;
		int fd = openat(dirfd(d), de->d_name,
				O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		view_rec r;
		if (fd < 0)
			continue;
		int mr = meta_read(fd, de->d_name, &r);
		close(fd);
		if (mr < 0 || r.base[0] == '\0') {
			lam__error_reset();
			continue;
		}
		if (*n == cap) {
			cap = cap ? cap * 2 : 16;
			char(*p)[33] = lam__realloc(*out, cap * sizeof(**out));
			if (p == NULL) {
				rc = lam__error(LAM_ENOMEM, "out of memory");
				break;
			}
			*out = p;
		}
		memcpy((*out)[(*n)++], r.base, 33);
	}
	closedir(d);
	return rc;
}

int lam_view_remove(lam_store *store, const char *id)
{
	lam__error_reset();
	if (store == NULL || id == NULL)
		return lam__error(LAM_EINVAL, "lam_view_remove: NULL argument");
	int vdir;
	int rc = views_dir(store, &vdir);
	char full[37];
	if (rc == 0)
		rc = find_view(store, vdir, id, full);
	if (rc == 0) {
		char trash[64];
		lam__view_tmpname(trash);
		if (renameat(vdir, full, store->tmpfd, trash) < 0)
			rc = lam__error_errno(errno, "removing view %s", full);
		else {
			fsync(vdir);
			lam__rmtree_quiet(store->tmpfd, trash);
		}
	}
	if (vdir >= 0)
		close(vdir);
	return rc;
}

int lam__view_writable(lam_view *v)
{
	if (v->readonly || !v->stored)
		return lam__view_posix(EROFS, "the view is read-only");
	return 0;
}

/* Switch the view to a base and a fresh, empty upper generation: the meta
 * write is the atomic step; the old upper goes afterwards. */
int lam__view_switch(lam_view *v, lam_layer *base);

int lam__view_switch(lam_view *v, lam_layer *base)
{
	unsigned int gen = v->gen + 1;
	char name[32], old[32];
	lam__view_upper_name(name, gen);
	lam__view_upper_name(old, v->gen);
	lam__rmtree_quiet(v->viewfd, name);
	if (mkdirat(v->viewfd, name, 0755) < 0)
		return lam__error_errno(errno, "view %s: new upper", v->id);
	view_rec r = {.gen = gen};
	memcpy(r.id, v->id, 37);
	if (base != NULL)
		memcpy(r.base, base->rec.id, 33);
	int rc = lam__fsync_dir_at(v->viewfd, ".");
	lam__crash_point();
	if (rc == 0)
		rc = meta_write(v->viewfd, &r);
	if (rc < 0) {
		lam__rmtree_quiet(v->viewfd, name);
		return rc;
	}
	lam__crash_point();
	lam__close(&v->upperfd);
	lam__quota_dirty(v);
	v->root_known = false;
	v->gen = gen;
	rc = set_base(v, base);
	if (rc == 0)
		rc = open_upper(v);
	if (rc == 0)
		rc = init_upper_root(v);
	lam__rmtree_quiet(v->viewfd, old);
	/* The partial maps belonged to the old upper's files. */
	lam__rmtree_quiet(v->viewfd, "partial");
	mkdirat(v->viewfd, "partial", 0700);
	return rc;
}

int lam_view_reset(lam_view *view)
{
	lam__error_reset();
	if (view == NULL)
		return lam__error(LAM_EINVAL, "lam_view_reset: NULL view");
	int rc = lam__view_writable(view);
	if (rc == 0)
		rc = lam__kv_reset(view);
	if (rc == 0)
		rc = lam__view_switch(view, view->base);
	return rc;
}
