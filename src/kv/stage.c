/* SPDX-License-Identifier: MIT */
/*
 * What src/view and src/store call: staging a view's key/value delta into a
 * new layer, starting over after the commit, reset, and the check of a
 * layer's delta.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "kv/internal.h"

typedef struct recs {
	lam__kv_rec *v;
	size_t n, cap;
} recs;

static int push(recs *r, const lam__kv_rec *x)
{
	if (r->n == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 64;
		lam__kv_rec *v = lam__realloc(r->v, cap * sizeof(*v));
		if (v == NULL)
			return lam__error(LAM_ENOMEM, "out of memory");
		r->v = v;
		r->cap = cap;
	}
	r->v[r->n++] = *x;
	return 0;
}

static lam__kv_rec key_rec(const lam__kv_ukey *k, uint8_t flags)
{
	lam__kv_rec r = {0};
	r.kind = LAM__KV_KEY;
	r.flags = flags;
	r.depth = k->depth;
	r.disp = k->path;
	r.fold = k->fold;
	r.len = k->len;
	r.mtime = (flags & LAM__KV_DELETED) || !(k->flags & LAM__U_CHANGED) ?
			  0 :
			  k->mtime;
	return r;
}

/* Emit a node's durable records; *any tells whether it emitted some. */
static int emit(recs *r, lam__kv_ukey *k, bool *any)
{
	int rc;

	*any = false;
	if (k->flags & LAM__U_VOLATILE) {
		/* A volatile key leaves only the tombstone it stands on. */
		if (!(k->flags & LAM__U_OPAQUE))
			return 0;
		lam__kv_rec t = key_rec(k, LAM__KV_DELETED);
		*any = true;
		return push(r, &t);
	}
	if (!(k->flags & LAM__U_EXISTS)) {
		lam__kv_rec t = key_rec(k, LAM__KV_DELETED);
		*any = true;
		return push(r, &t);
	}
	size_t start = r->n;
	lam__kv_rec kr =
		key_rec(k, k->flags & LAM__U_OPAQUE ? LAM__KV_OPAQUE : 0);
	rc = push(r, &kr);
	if (rc < 0)
		return rc;
	lam__kv_ukey_sort(k);
	for (size_t i = 0; i < k->nvals; i++) {
		const lam__kv_uval *v = k->vals[i];
		lam__kv_rec vr = {0};
		vr.kind = LAM__KV_VALUE;
		vr.flags = v->deleted ? LAM__KV_DELETED : 0;
		vr.type = v->deleted ? 0 : v->type;
		vr.disp = v->name;
		vr.fold = v->fold;
		vr.len = v->len;
		vr.data = v->data;
		vr.size = v->deleted ? 0 : v->size;
		rc = push(r, &vr);
		if (rc < 0)
			return rc;
	}
	bool below = false;
	for (size_t i = 0; i < k->nkids; i++) {
		bool a;
		rc = emit(r, k->kids[i], &a);
		if (rc < 0)
			return rc;
		below |= a;
	}
	if (!below && k->nvals == 0 &&
	    !(k->flags & (LAM__U_CHANGED | LAM__U_OPAQUE))) {
		r->n = start; /* a pass-through key over nothing */
		return 0;
	}
	*any = true;
	return 0;
}

int lam__kv_upper_records(lam__kv_upper *u, lam__kv_rec **out, size_t *n)
{
	recs r = {0};
	bool any;
	int rc = 0;

	*out = NULL;
	*n = 0;
	if (u->root)
		rc = emit(&r, u->root, &any);
	if (rc < 0) {
		lam__free(r.v);
		return rc;
	}
	*out = r.v;
	*n = r.n;
	return 0;
}

static bool log_exists(int viewfd)
{
	return viewfd >= 0 &&
	       faccessat(viewfd, "kv.log", F_OK, AT_SYMLINK_NOFOLLOW) == 0;
}

int lam__kv_stage(lam_view *view, int layer_dirfd, lam__digest *digest,
		  bool *has_changes)
{
	lam__kv *kv;
	lam__kv_rec *r;
	size_t n;
	int rc;

	*has_changes = false;
	memset(digest, 0, sizeof(*digest));
	if (view->kv == NULL && !log_exists(view->viewfd))
		return 0;
	rc = lam__kv_of_view(&kv, view);
	if (rc < 0)
		return rc;
	if (kv->in_txn)
		return lam__error(LAM_EBUSY,
				  "view %s: a key/value transaction is open",
				  view->id);
	rc = lam__kv_upper_records(&kv->up, &r, &n);
	if (rc < 0)
		return rc;
	if (n > 0) {
		rc = lam__kv_file_write(layer_dirfd, "kv", r, n, digest);
		if (rc == 0)
			*has_changes = true;
	}
	lam__free(r);
	return rc;
}

int lam__kv_committed(lam_view *view)
{
	lam__kv *kv = view->kv;
	lam__kv_chain *lower = NULL;
	lam__buf snap = {0};
	const char *base = view->base ? view->base->rec.id : "";
	int rc;

	if (kv == NULL) {
		/* A log left from the former base is dropped when it is
		 * loaded: its header names that base. */
		return 0;
	}
	rc = lam__kv_volatile_snapshot(kv, &snap);
	if (rc == 0)
		rc = lam__kv_chain_get(&lower, kv->store, base);
	if (rc < 0) {
		lam__buf_free(&snap);
		kv->stale = true;
		return rc;
	}
	lam__kv_upper_free(&kv->up);
	lam__kv_chain_unref(kv->lower);
	kv->lower = lower;
	snprintf(kv->base, sizeof(kv->base), "%s", base);
	kv->version++;
	rc = lam__kv_raw_apply(kv, snap.data, snap.len, true);
	lam__buf_free(&snap);
	if (rc == 0)
		rc = lam__kv_log_rewrite(kv, base);
	if (rc < 0)
		kv->stale = true;
	return rc;
}

int lam__kv_reset(lam_view *view)
{
	lam__kv *kv;
	int rc;

	if (view->kv == NULL && !log_exists(view->viewfd))
		return 0;
	rc = lam__kv_of_view(&kv, view);
	if (rc < 0)
		return rc;
	kv->in_txn = false;
	kv->pending.len = 0;
	kv->vsnap.len = 0;
	lam__kv_notes_clear(kv);
	lam__kv_upper_free(&kv->up);
	kv->version++;
	rc = lam__kv_log_rewrite(kv, kv->base);
	if (rc < 0)
		kv->stale = true;
	return rc;
}

int lam__kv_layer_digest(lam_store *s, const char *layer_id,
			 lam__digest *digest, bool *present)
{
	lam__kv_file f;
	char name[48], what[48];
	int rc;

	*present = false;
	memset(digest, 0, sizeof(*digest));
	snprintf(name, sizeof(name), "%s/kv", layer_id);
	snprintf(what, sizeof(what), "layer %s", layer_id);
	rc = lam__kv_file_open(&f, s->layersfd, name, what);
	if (rc == LAM_ENOTFOUND) {
		lam__error_reset();
		return 0;
	}
	if (rc < 0)
		return rc;
	lam__kv_file_digest(&f, digest);
	lam__kv_file_close(&f);
	*present = true;
	return 0;
}
