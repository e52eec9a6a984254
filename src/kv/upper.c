/* SPDX-License-Identifier: MIT */
/*
 * The upper: the keys and values a view changed, as a tree of nodes with a
 * hash table over the keys' folded paths and one per key over its values.
 * Like a delta on disk it is a closed tree: every node's ancestors have
 * nodes, pass-through ones when they did not change themselves.
 */
#include <stdlib.h>
#include <string.h>

#include "kv/internal.h"

typedef struct fkey {
	const char *fold;
	size_t len;
} fkey;

static bool key_eq(const void *item, const void *key)
{
	const lam__kv_ukey *k = item;
	const fkey *f = key;
	return k->len == f->len && memcmp(k->fold, f->fold, f->len) == 0;
}

static bool val_eq(const void *item, const void *key)
{
	const lam__kv_uval *v = item;
	const fkey *f = key;
	return v->len == f->len && memcmp(v->fold, f->fold, f->len) == 0;
}

lam__kv_ukey *lam__kv_upper_find(const lam__kv_upper *u, const char *fold,
				 size_t len, uint64_t hash)
{
	fkey f = {fold, len};
	return lam__kv_map_find(&u->keys, hash, key_eq, &f);
}

lam__kv_uval *lam__kv_ukey_find_value(const lam__kv_ukey *k, const char *fold,
				      size_t len, uint64_t hash)
{
	fkey f = {fold, len};
	return lam__kv_map_find(&k->vmap, hash, val_eq, &f);
}

static int kid_cmp(const void *a, const void *b)
{
	const lam__kv_ukey *x = *(lam__kv_ukey *const *)a;
	const lam__kv_ukey *y = *(lam__kv_ukey *const *)b;
	return lam__kv_path_cmp(x->fold, x->len, y->fold, y->len);
}

static int val_cmp(const void *a, const void *b)
{
	const lam__kv_uval *x = *(lam__kv_uval *const *)a;
	const lam__kv_uval *y = *(lam__kv_uval *const *)b;
	return lam__kv_name_cmp(x->fold, x->len, y->fold, y->len);
}

void lam__kv_ukey_sort(lam__kv_ukey *k)
{
	if (!k->kids_sorted) {
		if (k->nkids > 1)
			qsort(k->kids, k->nkids, sizeof(*k->kids), kid_cmp);
		k->kids_sorted = true;
	}
	if (!k->vals_sorted) {
		if (k->nvals > 1)
			qsort(k->vals, k->nvals, sizeof(*k->vals), val_cmp);
		k->vals_sorted = true;
	}
}

static bool durable(const lam__kv_ukey *k)
{
	return !(k->flags & LAM__U_VOLATILE);
}

/* Counts for the quotas: a durable key counts when it changed or is a
 * tombstone. */
static bool counts(const lam__kv_ukey *k)
{
	return durable(k) &&
	       ((k->flags & LAM__U_CHANGED) || !(k->flags & LAM__U_EXISTS));
}

void lam__kv_upper_set_flags(lam__kv_upper *u, lam__kv_ukey *k, uint32_t flags)
{
	bool was_cut = k->flags & LAM__U_CUT, was_counted = counts(k);
	k->flags = flags;
	if (was_cut && !(flags & LAM__U_CUT))
		u->ncut--;
	else if (!was_cut && (flags & LAM__U_CUT))
		u->ncut++;
	if (was_counted && !counts(k))
		u->nchanged--;
	else if (!was_counted && counts(k))
		u->nchanged++;
}

static void free_value(lam__kv_upper *u, const lam__kv_ukey *k, lam__kv_uval *v)
{
	if (durable(k))
		u->value_bytes -= v->size;
	lam__free(v->name);
	lam__free(v->data);
	lam__free(v);
}

void lam__kv_ukey_drop_value(lam__kv_upper *u, lam__kv_ukey *k, lam__kv_uval *v)
{
	lam__kv_map_del(&k->vmap, v->hash, v);
	for (size_t i = 0; i < k->nvals; i++) {
		if (k->vals[i] == v) {
			k->vals[i] = k->vals[--k->nvals];
			k->vals_sorted = false;
			break;
		}
	}
	free_value(u, k, v);
}

static void free_node(lam__kv_upper *u, lam__kv_ukey *k)
{
	for (size_t i = 0; i < k->nkids; i++)
		free_node(u, k->kids[i]);
	for (size_t i = 0; i < k->nvals; i++)
		free_value(u, k, k->vals[i]);
	lam__kv_map_del(&u->keys, k->hash, k);
	/* A plain existing key neither counts nor cuts. */
	lam__kv_upper_set_flags(u, k, LAM__U_EXISTS);
	lam__kv_map_free(&k->vmap);
	lam__free(k->kids);
	lam__free(k->vals);
	lam__free(k->path);
	lam__free(k);
}

void lam__kv_upper_clear(lam__kv_upper *u, lam__kv_ukey *k)
{
	for (size_t i = 0; i < k->nkids; i++)
		free_node(u, k->kids[i]);
	for (size_t i = 0; i < k->nvals; i++)
		free_value(u, k, k->vals[i]);
	k->nkids = 0;
	k->nvals = 0;
	lam__kv_map_free(&k->vmap);
}

bool lam__kv_ukey_is_empty(const lam__kv_ukey *k)
{
	return k->nkids == 0 && k->nvals == 0 &&
	       (k->flags & (LAM__U_CHANGED | LAM__U_OPAQUE)) == 0 &&
	       (k->flags & LAM__U_EXISTS) && k->parent != NULL;
}

void lam__kv_upper_remove(lam__kv_upper *u, lam__kv_ukey *k)
{
	lam__kv_ukey *parent = k->parent;

	if (parent == NULL) {
		/* The root stays; it only loses what it holds. */
		lam__kv_upper_clear(u, k);
		lam__kv_upper_set_flags(u, k, LAM__U_EXISTS);
		return;
	}
	for (size_t i = 0; i < parent->nkids; i++) {
		if (parent->kids[i] == k) {
			parent->kids[i] = parent->kids[--parent->nkids];
			parent->kids_sorted = false;
			break;
		}
	}
	free_node(u, k);
	/* Pass-through ancestors that now hold nothing go too. */
	while (parent && lam__kv_ukey_is_empty(parent)) {
		lam__kv_ukey *gp = parent->parent;
		for (size_t i = 0; i < gp->nkids; i++) {
			if (gp->kids[i] == parent) {
				gp->kids[i] = gp->kids[--gp->nkids];
				gp->kids_sorted = false;
				break;
			}
		}
		free_node(u, parent);
		parent = gp;
	}
}

void lam__kv_upper_free(lam__kv_upper *u)
{
	if (u->root)
		free_node(u, u->root);
	lam__kv_map_free(&u->keys);
	memset(u, 0, sizeof(*u));
}

static int new_node(lam__kv_upper *u, lam__kv_ukey *parent, const char *disp,
		    const char *fold, size_t len, uint32_t depth,
		    lam__kv_ukey **out)
{
	lam__kv_ukey *k = lam__calloc(1, sizeof(*k));
	int rc;

	if (k == NULL)
		return lam__error(LAM_ENOMEM, "out of memory");
	k->path = lam__malloc(2 * len + 2);
	if (k->path == NULL) {
		lam__free(k);
		return lam__error(LAM_ENOMEM, "out of memory");
	}
	memcpy(k->path, disp, len);
	k->path[len] = '\0';
	k->fold = k->path + len + 1;
	memcpy(k->fold, fold, len);
	k->fold[len] = '\0';
	k->len = (uint32_t)len;
	k->depth = depth;
	k->hash = lam__kv_key_hash(fold, len);
	k->kids_sorted = k->vals_sorted = true;
	const char *slash = NULL;
	for (size_t i = len; i-- > 0;) {
		if (disp[i] == '\\') {
			slash = disp + i;
			break;
		}
	}
	k->name_off = slash ? (uint32_t)(slash - disp + 1) : 0;
	k->parent = parent;
	if (parent) {
		if (parent->nkids == parent->capkids) {
			size_t cap = parent->capkids ? parent->capkids * 2 : 4;
			lam__kv_ukey **kids =
				lam__realloc(parent->kids, cap * sizeof(*kids));
			if (kids == NULL) {
				lam__free(k->path);
				lam__free(k);
				return lam__error(LAM_ENOMEM, "out of memory");
			}
			parent->kids = kids;
			parent->capkids = cap;
		}
	}
	rc = lam__kv_map_put(&u->keys, k->hash, k);
	if (rc < 0) {
		lam__free(k->path);
		lam__free(k);
		return rc;
	}
	if (parent) {
		parent->kids[parent->nkids++] = k;
		parent->kids_sorted = false;
		uint32_t inherit = parent->flags &
				   (LAM__U_CUT | LAM__U_VOLATILE);
		k->flags = LAM__U_EXISTS;
		lam__kv_upper_set_flags(u, k, LAM__U_EXISTS | inherit);
	} else {
		k->flags = LAM__U_EXISTS;
	}
	*out = k;
	return 0;
}

int lam__kv_upper_node(lam__kv_upper *u, const lam__kv_path *p,
		       lam__kv_ukey **out)
{
	lam__kv_ukey *k = NULL;
	int rc;

	if (u->root == NULL) {
		rc = new_node(u, NULL, "", "", 0, 0, &u->root);
		if (rc < 0)
			return rc;
	}
	k = lam__kv_upper_find(u, p->fold, p->len, p->hash);
	if (k) {
		*out = k;
		return 0;
	}
	/* Find the deepest ancestor that has a node, then add the rest. */
	size_t start = 0;
	k = u->root;
	for (size_t i = p->len; i-- > 0;) {
		if (p->fold[i] != '\\')
			continue;
		lam__kv_ukey *a = lam__kv_upper_find(
			u, p->fold, i, lam__kv_key_hash(p->fold, i));
		if (a) {
			k = a;
			start = i + 1;
			break;
		}
	}
	uint32_t depth = k->depth;
	for (size_t i = start; i <= p->len; i++) {
		if (i < p->len && p->fold[i] != '\\')
			continue;
		lam__kv_ukey *n = NULL;
		rc = new_node(u, k, p->disp, p->fold, i, depth + 1, &n);
		if (rc < 0)
			return rc;
		k = n;
		depth++;
	}
	*out = k;
	return 0;
}

int lam__kv_ukey_set_value(lam__kv_upper *u, lam__kv_ukey *k, const char *name,
			   const char *fold, uint32_t len, uint64_t hash,
			   uint32_t type, const void *data, uint32_t size,
			   bool deleted)
{
	lam__kv_uval *v = lam__kv_ukey_find_value(k, fold, len, hash);
	void *copy = NULL;

	if (size > 0) {
		copy = lam__malloc(size);
		if (copy == NULL)
			return lam__error(LAM_ENOMEM, "out of memory");
		memcpy(copy, data, size);
	}
	if (v) {
		/* The new spelling wins, as the registry keeps the one of the
		 * last write. */
		memcpy(v->name, name, len);
		if (durable(k))
			u->value_bytes -= v->size;
		lam__free(v->data);
	} else {
		if (k->nvals == k->capvals) {
			size_t cap = k->capvals ? k->capvals * 2 : 4;
			lam__kv_uval **vals =
				lam__realloc(k->vals, cap * sizeof(*vals));
			if (vals == NULL) {
				lam__free(copy);
				return lam__error(LAM_ENOMEM, "out of memory");
			}
			k->vals = vals;
			k->capvals = cap;
		}
		v = lam__calloc(1, sizeof(*v));
		if (v)
			v->name = lam__malloc(2 * (size_t)len + 2);
		if (v == NULL || v->name == NULL) {
			if (v)
				lam__free(v);
			lam__free(copy);
			return lam__error(LAM_ENOMEM, "out of memory");
		}
		memcpy(v->name, name, len);
		v->name[len] = '\0';
		v->fold = v->name + len + 1;
		memcpy(v->fold, fold, len);
		v->fold[len] = '\0';
		v->len = len;
		v->hash = hash;
		int rc = lam__kv_map_put(&k->vmap, hash, v);
		if (rc < 0) {
			lam__free(v->name);
			lam__free(v);
			lam__free(copy);
			return rc;
		}
		k->vals[k->nvals++] = v;
		k->vals_sorted = false;
	}
	v->type = type;
	v->data = copy;
	v->size = size;
	v->deleted = deleted;
	if (durable(k))
		u->value_bytes += size;
	return 0;
}
