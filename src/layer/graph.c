/* SPDX-License-Identifier: MIT */
/* The layer graph: iteration, parents and children, refs, merge base,
 * deletion and the DOT rendering. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "layer/internal.h"

/* Call cb with a handle for each record accepted by keep (all if NULL). */
static int foreach_rec(lam_store *s, const char *parent_filter, lam_layer_cb cb,
		       void *userdata)
{
	lam__layer_rec *recs;
	size_t n;
	int rc = lam__catalog_snapshot(s, &recs, &n);
	if (rc < 0)
		return rc;
	for (size_t i = 0; i < n && rc == 0; i++) {
		if (parent_filter && strcmp(recs[i].parent, parent_filter) != 0)
			continue;
		lam_layer *l;
		rc = lam__layer_new(&l, s, &recs[i]);
		if (rc < 0)
			break;
		rc = cb(l, userdata);
		lam_layer_free(l);
	}
	lam__free(recs);
	return rc;
}

int lam_layer_foreach(lam_store *store, lam_layer_cb cb, void *userdata)
{
	lam__error_reset();
	if (store == NULL || cb == NULL)
		return lam__error(LAM_EINVAL,
				  "lam_layer_foreach: NULL argument");
	return foreach_rec(store, NULL, cb, userdata);
}

int lam_layer_children_foreach(lam_layer *layer, lam_layer_cb cb,
			       void *userdata)
{
	lam__error_reset();
	if (layer == NULL || cb == NULL)
		return lam__error(LAM_EINVAL,
				  "lam_layer_children_foreach: NULL argument");
	return foreach_rec(layer->store, layer->rec.id, cb, userdata);
}

int lam_layer_ancestors_foreach(lam_layer *layer, lam_layer_cb cb,
				void *userdata)
{
	lam__error_reset();
	if (layer == NULL || cb == NULL)
		return lam__error(LAM_EINVAL,
				  "lam_layer_ancestors_foreach: NULL argument");
	lam_layer *cur = lam_layer_ref(layer);
	int rc = 0;
	unsigned int steps = 0;
	while (cur != NULL && rc == 0) {
		rc = cb(cur, userdata);
		if (rc != 0)
			break;
		if (++steps > layer->rec.depth) {
			rc = lam__error(LAM_ECORRUPT,
					"layer %s: parent chain has a cycle",
					layer->rec.id);
			break;
		}
		lam_layer *next;
		rc = lam_layer_parent(&next, cur);
		lam_layer_free(cur);
		cur = next;
	}
	lam_layer_free(cur);
	return rc;
}

int lam_layer_refs_foreach(lam_layer *layer, lam_ref_cb cb, void *userdata)
{
	lam__error_reset();
	if (layer == NULL || cb == NULL)
		return lam__error(LAM_EINVAL,
				  "lam_layer_refs_foreach: NULL argument");
	char **names;
	size_t n;
	int rc = lam__refs_naming(layer->store, layer->rec.id, &names, &n);
	for (size_t i = 0; rc == 0 && i < n; i++)
		rc = cb(names[i], layer->rec.id, userdata);
	for (size_t i = 0; i < n; i++)
		lam__free(names[i]);
	lam__free(names);
	return rc;
}

/* Find a record in a sorted snapshot. */
static const lam__layer_rec *snap_find(const lam__layer_rec *recs, size_t n,
				       const char *id)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(recs[mid].id, id);
		if (c == 0)
			return &recs[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

int lam_layer_merge_base(lam_layer **out, lam_layer *a, lam_layer *b)
{
	lam__error_reset();
	if (out == NULL)
		return lam__error(LAM_EINVAL,
				  "lam_layer_merge_base: out is NULL");
	*out = NULL;
	if (a == NULL || b == NULL)
		return lam__error(LAM_EINVAL,
				  "lam_layer_merge_base: NULL argument");
	if (a->store != b->store)
		return lam__error(LAM_EINVAL,
				  "merge base: layers of different stores");
	lam__layer_rec *recs;
	size_t n;
	int rc = lam__catalog_snapshot(a->store, &recs, &n);
	if (rc < 0)
		return rc;
	/* Walk the deeper chain up to the other's depth, then both together
	 * until they meet. */
	lam__layer_rec x = a->rec, y = b->rec;
	const lam__layer_rec *px = &x, *py = &y;
	while (rc == 0 && px != NULL && py != NULL &&
	       strcmp(px->id, py->id) != 0) {
		if (px->depth >= py->depth)
			px = px->parent[0] ? snap_find(recs, n, px->parent) :
					     NULL;
		else
			py = py->parent[0] ? snap_find(recs, n, py->parent) :
					     NULL;
	}
	if (px != NULL && py != NULL)
		rc = lam__layer_new(out, a->store, px);
	lam__free(recs);
	return rc;
}

static int delete_one(lam_store *s, const char *id)
{
	char trash[48];
	char uuid[37];
	lam__uuid_new(uuid);
	snprintf(trash, sizeof(trash), "del-%s", uuid);
	if (renameat(s->layersfd, id, s->tmpfd, trash) < 0)
		return lam__error_errno(errno, "deleting layer %s", id);
	lam__crash_point();
	if (fsync(s->layersfd) < 0)
		return lam__error_errno(errno, "syncing %s/layers", s->path);
	lam__rmtree_quiet(s->tmpfd, trash);
	return 0;
}

/* Collect id and its descendants (in the snapshot) into a list, children
 * after parents. */
static int collect_descendants(const lam__layer_rec *recs, size_t n,
			       const char *id, const char ***list,
			       size_t *count)
{
	const char **l = lam__malloc((n + 1) * sizeof(*l));
	if (l == NULL)
		return lam__error(LAM_ENOMEM, "out of memory");
	size_t c = 0;
	l[c++] = id;
	for (size_t head = 0; head < c; head++)
		for (size_t i = 0; i < n; i++)
			if (strcmp(recs[i].parent, l[head]) == 0 && c <= n)
				l[c++] = recs[i].id;
	*list = l;
	*count = c;
	return 0;
}

int lam_layer_delete(lam_layer *layer, unsigned int flags)
{
	lam__error_reset();
	if (layer == NULL)
		return lam__error(LAM_EINVAL, "lam_layer_delete: NULL layer");
	lam_store *s = layer->store;
	const char *id = layer->rec.id;
	int gclk = lam__store_gc_lock(s, false, true);
	if (gclk < 0)
		return gclk;
	int lk = lam__store_lock(s);
	if (lk < 0) {
		lam__unlock(gclk);
		return lk;
	}
	lam__layer_rec *recs = NULL;
	lam__ref *refs = NULL;
	size_t n = 0, nrefs = 0, count = 0;
	const char **list = NULL;
	int rc = lam__catalog_snapshot(s, &recs, &n);
	if (rc == 0)
		rc = lam__refs_load(s, &refs, &nrefs);
	if (rc < 0)
		goto out;
	if (snap_find(recs, n, id) == NULL) {
		rc = lam__error(LAM_ENOTFOUND, "layer %s does not exist", id);
		goto out;
	}
	rc = collect_descendants(recs, n, id, &list, &count);
	if (rc < 0)
		goto out;
	if (!(flags & LAM_DELETE_CASCADE)) {
		if (count > 1) {
			rc = lam__error(LAM_EBUSY,
					"layer %s has child layers (%s…); "
					"delete them first or cascade",
					id, list[1]);
			goto out;
		}
		for (size_t i = 0; i < nrefs; i++)
			if (strcmp(refs[i].id, id) == 0) {
				rc = lam__error(LAM_EBUSY,
						"layer %s is held by ref %s",
						id, refs[i].name);
				goto out;
			}
	}
	/* A stored view over any doomed layer keeps all of them. */
	char(*bases)[33] = NULL;
	size_t nbases = 0;
	rc = lam__view_bases(s, &bases, &nbases);
	for (size_t i = 0; rc == 0 && i < nbases; i++) {
		const lam__layer_rec *r = snap_find(recs, n, bases[i]);
		while (r != NULL && rc == 0) {
			for (size_t k = 0; k < count && rc == 0; k++)
				if (strcmp(r->id, list[k]) == 0)
					rc = lam__error(LAM_EBUSY,
							"layer %s is used by a "
							"view (remove the view "
							"first)",
							list[k]);
			r = r->parent[0] ? snap_find(recs, n, r->parent) : NULL;
		}
	}
	lam__free(bases);
	if (rc < 0)
		goto out;
	/* Refs go first, so a crash never leaves a ref to a missing layer.
	 * The store lock is held, so the refs file is rewritten directly. */
	lam__buf b = {0};
	bool changed = false;
	for (size_t i = 0; rc == 0 && i < nrefs; i++) {
		bool doomed = false;
		for (size_t k = 0; k < count; k++)
			doomed |= strcmp(refs[i].id, list[k]) == 0;
		if (doomed)
			changed = true;
		else
			rc = lam__buf_printf(&b, "%s %s\n", refs[i].name,
					     refs[i].id);
	}
	if (rc == 0 && changed)
		rc = lam__write_file_atomic(s->rootfd, "refs",
					    b.data ? b.data : "", b.len);
	lam__buf_free(&b);
	/* Children before parents: a crash leaves no orphan child. */
	for (size_t k = count; rc == 0 && k > 0; k--)
		rc = delete_one(s, list[k - 1]);
out:
	lam__free(list);
	lam__free(recs);
	lam__refs_free(refs, nrefs);
	lam__unlock(lk);
	lam__unlock(gclk);
	return rc;
}

static int dot_escape(lam__buf *b, const char *s)
{
	int rc = 0;
	for (; *s && rc == 0; s++) {
		if (*s == '"' || *s == '\\')
			rc = lam__buf_add(b, "\\", 1);
		if (rc == 0)
			rc = lam__buf_add(b, s, 1);
	}
	return rc;
}

int lam_store_graph_dot(char **out, lam_store *store)
{
	lam__error_reset();
	if (out == NULL)
		return lam__error(LAM_EINVAL,
				  "lam_store_graph_dot: out is NULL");
	*out = NULL;
	if (store == NULL)
		return lam__error(LAM_EINVAL,
				  "lam_store_graph_dot: NULL store");
	lam__layer_rec *recs;
	lam__ref *refs = NULL;
	size_t n, nrefs = 0;
	int rc = lam__catalog_snapshot(store, &recs, &n);
	if (rc == 0)
		rc = lam__refs_load(store, &refs, &nrefs);
	lam__buf b = {0};
	if (rc == 0)
		rc = lam__buf_puts(&b,
				   "digraph lamina {\n"
				   "\trankdir=BT;\n"
				   "\tnode [shape=box, fontname=monospace];\n");
	for (size_t i = 0; rc == 0 && i < n; i++) {
		const lam__layer_rec *r = &recs[i];
		rc = lam__buf_printf(&b,
				     "\t\"%s\" [label=\"%.12s\\n%" PRIu64
				     " bytes",
				     r->id, r->id, r->size);
		for (size_t k = 0; rc == 0 && k < nrefs; k++) {
			if (strcmp(refs[k].id, r->id) != 0)
				continue;
			rc = lam__buf_puts(&b, "\\n");
			if (rc == 0)
				rc = dot_escape(&b, refs[k].name);
		}
		if (rc == 0)
			rc = lam__buf_puts(&b, "\"];\n");
		if (rc == 0 && r->parent[0])
			rc = lam__buf_printf(&b, "\t\"%s\" -> \"%s\";\n", r->id,
					     r->parent);
	}
	if (rc == 0)
		rc = lam__buf_puts(&b, "}\n");
	lam__free(recs);
	lam__refs_free(refs, nrefs);
	if (rc < 0) {
		lam__buf_free(&b);
		return rc;
	}
	*out = b.data;
	return 0;
}
