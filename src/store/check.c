/* SPDX-License-Identifier: MIT */
/* lam_store_check: verify everything the store holds and report each
 * problem with the thing at fault. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "kv/internal.h"
#include "layer/internal.h"

typedef struct checker {
	lam_store *s;
	unsigned int flags;
	lam_store_problem_cb cb;
	void *userdata;
	size_t problems;
	int stop;
	/* Objects already verified in this run: shared ones are hashed once. */
	lam__objset ok;
	char *buf;
} checker;

static void problem(checker *c, const char *what, const char *fmt, ...)
	LAM__PRINTF(3, 4);

static void problem(checker *c, const char *what, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	c->problems++;
	lam__log(LAM_LOG_WARNING, "check: %s: %s", what, msg);
	if (c->cb != NULL && c->stop == 0)
		c->stop = c->cb(what, msg, c->userdata);
}

static void check_object(checker *c, const char *what, const lam__entry *e)
{
	char name[48];
	lam__object_name(name, &e->obj);
	if (lam__objset_has(&c->ok, &e->obj))
		return;
	int fd = openat(c->s->objectsfd, name,
			O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		problem(c, what, "%.*s: object %s is missing", (int)e->path_len,
			e->path, name);
		return;
	}
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
	    (uint64_t)st.st_size != e->size) {
		problem(c, what, "%.*s: object %s has the wrong size",
			(int)e->path_len, e->path, name);
		close(fd);
		return;
	}
	if (!(c->flags & LAM_CHECK_QUICK)) {
		lam__hasher h;
		lam__hasher_init(&h);
		ssize_t n;
		while ((n = read(fd, c->buf, 1u << 20)) > 0)
			lam__hasher_update(&h, c->buf, (size_t)n);
		lam__digest d;
		lam__hasher_digest(&h, &d);
		if (n < 0 || memcmp(&d, &e->obj.digest, sizeof(d)) != 0) {
			problem(c, "object",
				"%s: content does not match its "
				"digest (used by %.*s in %s)",
				name, (int)e->path_len, e->path, what);
			close(fd);
			return;
		}
	}
	close(fd);
	lam__objset_add(&c->ok, &e->obj);
}

static bool valid_path(const char *p, uint32_t len)
{
	if (len == 0)
		return true;
	if (p[0] == '/' || p[len - 1] == '/')
		return false;
	for (uint32_t i = 0; i < len;) {
		uint32_t j = i;
		while (j < len && p[j] != '/') {
			if (p[j] == '\0')
				return false;
			j++;
		}
		uint32_t n = j - i;
		if (n == 0 || (n == 1 && p[i] == '.') ||
		    (n == 2 && p[i] == '.' && p[i + 1] == '.'))
			return false;
		i = j + 1;
	}
	return true;
}

/* The fs/ entry for e must have e's type (a whiteout: a 0/0 character
 * device or the xattr form), and regular files e's size. */
static void check_fs_entry(checker *c, const char *what, int fsfd,
			   const lam__entry *e)
{
	char path[PATH_MAX];
	if (e->path_len >= sizeof(path))
		return;
	memcpy(path, e->path, e->path_len);
	path[e->path_len] = '\0';
	struct stat st;
	if (fstatat(fsfd, e->path_len ? path : ".", &st, AT_SYMLINK_NOFOLLOW) <
	    0) {
		problem(c, what, "fs/%s: missing from the layer folder", path);
		return;
	}
	bool ok;
	if (e->flags & LAM__E_WHITEOUT)
		ok = (S_ISCHR(st.st_mode) && st.st_rdev == 0) ||
		     S_ISREG(st.st_mode);
	else if (S_ISCHR(e->mode) || S_ISBLK(e->mode))
		ok = (st.st_mode & S_IFMT) == (e->mode & S_IFMT) ||
		     S_ISREG(st.st_mode);
	else
		ok = (st.st_mode & S_IFMT) == (e->mode & S_IFMT);
	if (!ok) {
		problem(c, what, "fs/%s: type differs from the index", path);
		return;
	}
	if (S_ISREG(e->mode) && !(e->flags & LAM__E_WHITEOUT) &&
	    (uint64_t)st.st_size != e->size)
		problem(c, what, "fs/%s: size differs from the index", path);
	if (S_ISREG(e->mode) && (e->flags & LAM__E_OBJECT) &&
	    !(e->flags & LAM__E_WHITEOUT)) {
		/* A kernel mount finds the data through the redirect. */
		char x[64], want[52], got[64];
		char obj[48];
		lam__object_name(obj, &e->obj);
		snprintf(want, sizeof(want), "/%s", obj);
		snprintf(x, sizeof(x), "%sredirect", c->s->overlay_xattr);
		ssize_t n =
			lam__getxattr_at(fsfd, path, x, got, sizeof(got) - 1);
		if (n >= 0)
			got[n] = '\0';
		if (n < 0 && errno != EPERM && errno != ENOTSUP)
			problem(c, what, "fs/%s: no redirect to its object",
				path);
		else if (n >= 0 && strcmp(got, want) != 0)
			problem(c, what, "fs/%s: redirect names %s, not %s",
				path, got, want);
	}
}

static uint64_t count_tree(int dirfd)
{
	DIR *d = lam__opendir_dup(dirfd);
	if (d == NULL)
		return 0;
	uint64_t n = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		n++;
		if (de->d_type != DT_DIR)
			continue;
		int sub =
			openat(dirfd, de->d_name,
			       O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (sub >= 0) {
			n += count_tree(sub);
			close(sub);
		}
	}
	closedir(d);
	return n;
}

static void check_index(checker *c, const char *what, const lam__layer_rec *r,
			const lam__index *idx)
{
	lam__entry prev = {0}, e;
	uint64_t size = 0;
	/* One flag per hard-link group: each group's size counts once. */
	bool *group_seen = lam__calloc(idx->count + 2, sizeof(bool));
	if (group_seen == NULL) {
		problem(c, what, "out of memory checking the index");
		return;
	}
	for (uint64_t i = 0; i < idx->count && c->stop == 0; i++) {
		lam__index_get(idx, i, &e);
		if (!valid_path(e.path, e.path_len))
			problem(c, what,
				"index: entry %" PRIu64 " has an invalid path",
				i);
		if (i > 0 && lam__entry_cmp(&prev, &e) >= 0)
			problem(c, what, "index: entries out of order at %.*s",
				(int)e.path_len, e.path);
		uint32_t off = 0;
		lam__xattr x;
		int xr;
		while ((xr = lam__xattr_next(e.xattrs, e.xattrs_len, &off,
					     &x)) == 1)
			;
		if (xr < 0)
			problem(c, what, "index: %.*s: malformed xattrs",
				(int)e.path_len, e.path);
		if (e.flags & LAM__E_OBJECT)
			check_object(c, what, &e);
		if (S_ISREG(e.mode) && !(e.flags & LAM__E_WHITEOUT)) {
			bool counted = false;
			if (e.link_group != 0 && e.link_group <= idx->count) {
				counted = group_seen[e.link_group];
				group_seen[e.link_group] = true;
			}
			if (!counted)
				size += e.size;
		}
		prev = e;
	}
	lam__free(group_seen);
	lam__digest diff;
	lam__entry *ents =
		lam__malloc((idx->count ? idx->count : 1) * sizeof(*ents));
	if (ents == NULL)
		return;
	for (uint64_t i = 0; i < idx->count; i++)
		lam__index_get(idx, i, &ents[i]);
	lam__entries_digest(&diff, ents, idx->count);
	lam__free(ents);
	lam__digest kvd;
	bool has_kv = false;
	if (lam__kv_layer_digest(c->s, r->id, &kvd, &has_kv) < 0)
		problem(c, what, "%s", lam_error_last()->message);
	else if (has_kv)
		lam__diff_fold(&diff, &kvd);
	char hex[33];
	lam__digest_hex(hex, &diff);
	if (strcmp(hex, r->diff) != 0)
		problem(c, what, "diff digest does not match the index");
	lam__digest chain;
	lam__chain_digest(&chain, r->parent[0] ? r->parent : NULL, &diff);
	lam__digest_hex(hex, &chain);
	if (strcmp(hex, r->id) != 0)
		problem(c, what, "chain digest does not match parent and diff");
	if (r->entries != idx->count)
		problem(c, what,
			"meta says %" PRIu64 " entries, index has %" PRIu64,
			r->entries, idx->count);
	if (r->size != size)
		problem(c, what,
			"meta size %" PRIu64 " differs from the "
			"index (%" PRIu64 ")",
			r->size, size);
}

static void check_layer(checker *c, const char *id, const lam__layer_rec *recs,
			size_t n)
{
	char what[64];
	snprintf(what, sizeof(what), "layer %s", id);
	lam__layer_rec r;
	int rc = lam__meta_read(c->s, id, &r);
	if (rc < 0) {
		problem(c, what, "%s", lam_error_last()->message);
		return;
	}
	if (r.parent[0]) {
		const lam__layer_rec *p = NULL;
		for (size_t i = 0; i < n; i++)
			if (strcmp(recs[i].id, r.parent) == 0)
				p = &recs[i];
		if (p == NULL)
			problem(c, what, "parent %s is missing", r.parent);
		else if (p->depth + 1 != r.depth)
			problem(c, what, "depth %u does not follow parent's %u",
				r.depth, p->depth);
	} else if (r.depth != 1) {
		problem(c, what, "base layer with depth %u", r.depth);
	}
	lam__index idx;
	char name[64];
	snprintf(name, sizeof(name), "%s/index", id);
	rc = lam__index_open(&idx, c->s->layersfd, name);
	if (rc < 0) {
		problem(c, what, "%s", lam_error_last()->message);
		return;
	}
	check_index(c, what, &r, &idx);
	snprintf(name, sizeof(name), "%s/fs", id);
	int fsfd = openat(c->s->layersfd, name,
			  O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fsfd < 0) {
		problem(c, what, "fs: the layer folder is missing");
	} else {
		for (uint64_t i = 0; i < idx.count && c->stop == 0; i++) {
			lam__entry e;
			lam__index_get(&idx, i, &e);
			check_fs_entry(c, what, fsfd, &e);
		}
		uint64_t found = count_tree(fsfd);
		if (idx.count > 0 && found != idx.count - 1)
			problem(c, what,
				"fs: the layer folder holds %" PRIu64
				" entries, the index %" PRIu64,
				found, idx.count - 1);
		close(fsfd);
	}
	lam__index_close(&idx);
}

int lam_store_check(lam_store *store, unsigned int flags,
		    lam_store_problem_cb cb, void *userdata,
		    size_t *problems_out)
{
	lam__error_reset();
	if (problems_out)
		*problems_out = 0;
	if (store == NULL)
		return lam__error(LAM_EINVAL, "lam_store_check: NULL store");
	checker c = {
		.s = store, .flags = flags, .cb = cb, .userdata = userdata};
	c.buf = lam__malloc(1u << 20);
	if (c.buf == NULL)
		return lam__error(LAM_ENOMEM, "out of memory");
	lam__layer_rec *recs = NULL;
	size_t n = 0;
	int rc = lam__catalog_snapshot(store, &recs, &n);
	DIR *d = rc == 0 ? lam__opendir_dup(store->layersfd) : NULL;
	if (rc == 0 && d == NULL)
		rc = lam__error_errno(errno, "reading %s/layers", store->path);
	if (d != NULL) {
		struct dirent *de;
		while (c.stop == 0 && (de = readdir(d)) != NULL) {
			if (!strcmp(de->d_name, ".") ||
			    !strcmp(de->d_name, ".."))
				continue;
			if (strlen(de->d_name) != 32 ||
			    !lam__is_hex(de->d_name, 32)) {
				problem(&c, "layers", "unexpected entry '%s'",
					de->d_name);
				continue;
			}
			check_layer(&c, de->d_name, recs, n);
		}
		closedir(d);
	}
	lam__ref *refs = NULL;
	size_t nrefs = 0;
	if (rc == 0 && c.stop == 0) {
		if (lam__refs_load(store, &refs, &nrefs) < 0)
			problem(&c, "refs", "%s", lam_error_last()->message);
	}
	for (size_t i = 0; i < nrefs && c.stop == 0; i++) {
		bool found = false;
		for (size_t k = 0; k < n; k++)
			found |= strcmp(recs[k].id, refs[i].id) == 0;
		char what[300];
		snprintf(what, sizeof(what), "ref %s", refs[i].name);
		if (!found)
			problem(&c, what, "points at missing layer %s",
				refs[i].id);
		if (lam_store_ref_check_name(refs[i].name) < 0)
			problem(&c, what, "invalid name");
	}
	lam__refs_free(refs, nrefs);
	lam__free(recs);
	lam__objset_free(&c.ok);
	lam__free(c.buf);
	if (problems_out)
		*problems_out = c.problems;
	if (rc < 0)
		return rc;
	lam__error_reset();
	return c.stop;
}
