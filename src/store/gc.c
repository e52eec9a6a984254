/* SPDX-License-Identifier: MIT */
/* Garbage collection and statistics: both walk the object pool and the
 * layers' indexes. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "layer/internal.h"

/* Parse ".<22 base64url>[.n]" back into an id. */
static bool parse_object_name(const char *name, lam__objid *id)
{
	if (name[0] != '.')
		return false;
	name++;
	size_t len = strcspn(name, ".");
	if (len != 22)
		return false;
	char b[23];
	memcpy(b, name, 22);
	b[22] = '\0';
	if (lam__digest_from_b64(&id->digest, b) < 0)
		return false;
	id->variant = 0;
	if (name[22] == '.') {
		char *end;
		unsigned long v = strtoul(name + 23, &end, 10);
		if (*end != '\0' || v == 0 || v > 1000)
			return false;
		id->variant = (uint32_t)v;
	} else if (name[22] != '\0') {
		return false;
	}
	return true;
}

typedef int (*object_cb)(lam_store *s, int dirfd, const char *name,
			 const lam__objid *id, const struct stat *st,
			 void *userdata);

/* Call cb for every file in objects/; id is NULL for a file whose name is
 * not an object's. */
static int objects_foreach(lam_store *s, object_cb cb, void *userdata)
{
	DIR *d = lam__opendir_dup(s->objectsfd);
	if (d == NULL)
		return lam__error_errno(errno, "reading %s/objects", s->path);
	int rc = 0;
	struct dirent *de;
	while (rc == 0 && (de = readdir(d)) != NULL) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		struct stat st;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		lam__objid id;
		bool ok = parse_object_name(de->d_name, &id);
		rc = cb(s, dirfd(d), de->d_name, ok ? &id : NULL, &st,
			userdata);
	}
	closedir(d);
	return rc;
}

/* Add every object the layers use to a set. */
static int used_objects(lam_store *s, const lam__layer_rec *recs, size_t n,
			lam__objset *set, uint64_t *files)
{
	for (size_t i = 0; i < n; i++) {
		lam_layer *l;
		int rc = lam__layer_new(&l, s, &recs[i]);
		const lam__index *idx = NULL;
		if (rc == 0)
			rc = lam__layer_index(l, &idx);
		for (uint64_t k = 0; rc == 0 && k < idx->count; k++) {
			lam__entry e;
			lam__index_get(idx, k, &e);
			if (S_ISREG(e.mode) && !(e.flags & LAM__E_WHITEOUT) &&
			    files)
				(*files)++;
			if (e.flags & LAM__E_OBJECT) {
				int r = lam__objset_add(set, &e.obj);
				if (r < 0)
					rc = r;
			}
		}
		lam_layer_free(l);
		if (rc < 0)
			return rc;
	}
	return 0;
}

typedef struct gc_ctx {
	lam__objset *used;
	lam_gc_stats *stats;
} gc_ctx;

static int gc_object(lam_store *s, int dirfd, const char *name,
		     const lam__objid *id, const struct stat *st, void *ud)
{
	(void)s;
	gc_ctx *g = ud;
	if (id != NULL && lam__objset_has(g->used, id))
		return 0;
	if (unlinkat(dirfd, name, 0) == 0) {
		g->stats->objects_removed++;
		g->stats->bytes_freed += (uint64_t)st->st_size;
	}
	return 0;
}

static int depth_desc(const void *a, const void *b)
{
	const lam__layer_rec *x = a, *y = b;
	return x->depth < y->depth ? 1 : x->depth > y->depth ? -1 : 0;
}

static int find_rec(const lam__layer_rec *recs, size_t n, const char *id)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(recs[i].id, id) == 0)
			return (int)i;
	return -1;
}

/* oci-cache/ maps an OCI layer (its parent, diff id and key/value delta)
 * to the layer an import made of it (src/archive/oci-import.c): an entry
 * naming a layer that is gone would only miss, so it goes too. */
static void gc_oci_cache(lam_store *s, const lam__layer_rec *recs, size_t n)
{
	int fd = openat(s->rootfd, "oci-cache",
			O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return;
	lam__clear_tmp_files(fd);
	DIR *d = lam__opendir_dup(fd);
	struct dirent *de;
	while (d != NULL && (de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		char *id = NULL;
		size_t len = 0;
		bool live = false;
		if (lam__read_file_at(fd, de->d_name, &id, &len, 64) == 0 &&
		    len == 32 && lam__is_hex(id, 32)) {
			char hex[33];
			memcpy(hex, id, 32);
			hex[32] = '\0';
			live = find_rec(recs, n, hex) >= 0;
		}
		lam__free(id);
		if (!live)
			unlinkat(fd, de->d_name, 0);
	}
	if (d != NULL)
		closedir(d);
	close(fd);
}

int lam_store_gc(lam_store *store, lam_gc_stats *out)
{
	lam__error_reset();
	if (store == NULL)
		return lam__error(LAM_EINVAL, "lam_store_gc: NULL store");
	lam_gc_stats stats = {0};
	int gclk = lam__store_gc_lock(store, true, true);
	if (gclk < 0)
		return gclk;
	int lk = lam__store_lock(store);
	if (lk < 0) {
		lam__unlock(gclk);
		return lk;
	}
	lam__layer_rec *recs = NULL;
	lam__ref *refs = NULL;
	size_t n = 0, nrefs = 0;
	bool *keep = NULL;
	lam__objset used = {0};
	int rc = lam__catalog_snapshot(store, &recs, &n);
	if (rc == 0)
		rc = lam__refs_load(store, &refs, &nrefs);
	if (rc == 0 && (keep = lam__calloc(n + 1, sizeof(bool))) == NULL)
		rc = lam__error(LAM_ENOMEM, "out of memory");
	char(*bases)[33] = NULL;
	size_t nbases = 0;
	if (rc == 0)
		rc = lam__view_bases(store, &bases, &nbases);
	/* Mark every layer a ref or a view reaches through its parents. */
	for (size_t r = 0; rc == 0 && r < nrefs + nbases; r++) {
		int i = find_rec(recs, n,
				 r < nrefs ? refs[r].id : bases[r - nrefs]);
		while (i >= 0 && !keep[i]) {
			keep[i] = true;
			i = recs[i].parent[0] ?
				    find_rec(recs, n, recs[i].parent) :
				    -1;
		}
	}
	if (rc == 0) {
		/* Sweep unmarked layers, deepest first, so a crash never
		 * leaves a child whose parent is gone. */
		size_t m = 0;
		for (size_t i = 0; i < n; i++)
			if (!keep[i])
				recs[m++] = recs[i];
		if (m > 1)
			qsort(recs, m, sizeof(*recs), depth_desc);
		for (size_t i = 0; i < m && rc == 0; i++) {
			char trash[48], uuid[37];
			lam__uuid_new(uuid);
			snprintf(trash, sizeof(trash), "gc-%s", uuid);
			if (renameat(store->layersfd, recs[i].id, store->tmpfd,
				     trash) < 0) {
				rc = lam__error_errno(
					errno, "removing layer %s", recs[i].id);
				break;
			}
			lam__crash_point();
			lam__rmtree_quiet(store->tmpfd, trash);
			stats.layers_removed++;
		}
		if (rc == 0 && m > 0 && fsync(store->layersfd) < 0)
			rc = lam__error_errno(errno, "syncing layers");
	}
	lam__free(recs);
	recs = NULL;
	if (rc == 0)
		rc = lam__catalog_snapshot(store, &recs, &n);
	if (rc == 0)
		rc = used_objects(store, recs, n, &used, NULL);
	if (rc == 0) {
		gc_ctx g = {&used, &stats};
		rc = objects_foreach(store, gc_object, &g);
	}
	lam__objset_free(&used);
	lam__free(bases);
	if (rc == 0) {
		lam__error_saved saved;
		lam__error_save(&saved);
		gc_oci_cache(store, recs, n);
		lam__error_restore(&saved);
		lam__store_clear_tmp(store);
		lam__clear_tmp_files(store->rootfd);
	}
	lam__free(keep);
	lam__free(recs);
	lam__refs_free(refs, nrefs);
	lam__unlock(lk);
	lam__unlock(gclk);
	if (out)
		*out = stats;
	return rc;
}

static int count_object(lam_store *s, int dirfd, const char *name,
			const lam__objid *id, const struct stat *st, void *ud)
{
	(void)s;
	(void)dirfd;
	(void)name;
	lam_store_stats *st_out = ud;
	if (id == NULL || !S_ISREG(st->st_mode))
		return 0;
	st_out->objects++;
	st_out->stored_bytes += (uint64_t)st->st_size;
	return 0;
}

int lam_store_stats_get(lam_store *store, lam_store_stats *out)
{
	lam__error_reset();
	if (store == NULL || out == NULL)
		return lam__error(LAM_EINVAL,
				  "lam_store_stats_get: NULL argument");
	memset(out, 0, sizeof(*out));
	lam__layer_rec *recs;
	size_t n;
	int rc = lam__catalog_snapshot(store, &recs, &n);
	if (rc < 0)
		return rc;
	out->layers = n;
	for (size_t i = 0; i < n; i++) {
		out->entries += recs[i].entries;
		out->logical_bytes += recs[i].size;
	}
	lam__objset used = {0};
	rc = used_objects(store, recs, n, &used, &out->files);
	lam__objset_free(&used);
	lam__free(recs);
	lam__ref *refs;
	size_t nrefs;
	if (rc == 0)
		rc = lam__refs_load(store, &refs, &nrefs);
	if (rc == 0) {
		out->refs = nrefs;
		lam__refs_free(refs, nrefs);
		rc = objects_foreach(store, count_object, out);
	}
	return rc;
}
