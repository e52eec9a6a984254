/* SPDX-License-Identifier: MIT */
/*
 * Squash of key trees: the delta that takes one layer's merged tree to
 * another's. The two trees are walked side by side, as diff.c does, and
 * every difference is applied to an in-memory namespace over the lower
 * tree (no log, no caps, no notes); its upper is then written as a commit
 * writes a view's, so the result is the same delta format with the same
 * tombstones and opaque keys.
 */
#include <string.h>

#include "kv/internal.h"

typedef struct squash {
	lam__kv *o; /* onto's tree (read) */
	lam__kv *t; /* top's tree (read) */
	lam__kv *w; /* onto's tree, changed into top's */
	lam__buf fa, fb;
} squash;

static int64_t key_mtime(lam__kv *kv, const lam__kv_path *p)
{
	lam__kv_res res;
	int64_t t = 0;

	lam__kv_resolve(kv, p->fold, p->len, p->hash, &res);
	if (res.exists && res.low >= 0)
		t = lam__kv_lower_mtime(kv->lower, res.low);
	return t != 0 ? t : lam__kv_now();
}

static int item_cmp(squash *s, const lam__kv_item *a, const lam__kv_item *b,
		    bool values, int *err)
{
	s->fa.len = s->fb.len = 0;
	if (lam__buf_grow(&s->fa, a->len) < 0 ||
	    lam__buf_grow(&s->fb, b->len) < 0) {
		*err = lam__error(LAM_ENOMEM, "out of memory");
		return 0;
	}
	lam__kv_fold(s->fa.data, a->disp, a->len);
	lam__kv_fold(s->fb.data, b->disp, b->len);
	if (values)
		return lam__kv_name_cmp(s->fa.data, a->len, s->fb.data, b->len);
	return lam__kv_path_cmp(s->fa.data, a->len, s->fb.data, b->len);
}

static bool same_spelling(const lam__kv_item *a, const lam__kv_item *b)
{
	return a->len == b->len && memcmp(a->disp, b->disp, a->len) == 0;
}

static bool same_value(const lam__kv_item *a, const lam__kv_item *b)
{
	return same_spelling(a, b) && a->type == b->type &&
	       a->size == b->size &&
	       (a->size == 0 || memcmp(a->data, b->data, a->size) == 0);
}

static int sync_key(squash *s, const lam__kv_path *po, const lam__kv_path *pt);

/* Create key p of top's tree in w, with its whole subtree. */
static int add_tree(squash *s, const lam__kv_path *p)
{
	int rc = lam__kv_create_key(s->w, p, false, NULL, key_mtime(s->t, p));
	return rc < 0 ? rc : sync_key(s, NULL, p);
}

/* Make key pt of w (onto's key po, or a key just created when po is NULL)
 * hold what top's key holds: its values, then its subkeys. */
static int sync_key(squash *s, const lam__kv_path *po, const lam__kv_path *pt)
{
	lam__kv_walk wa, wb;
	lam__kv_item ia = {0}, ib = {0};
	int64_t mtime = key_mtime(s->t, pt);
	int ra, rb, rc = 0;

	for (int pass = 0; pass < 2 && rc == 0; pass++) {
		bool values = pass == 0;
		if (po) {
			rc = lam__kv_walk_start(&wa, s->o, po, values);
			if (rc < 0)
				break;
		}
		rc = lam__kv_walk_start(&wb, s->t, pt, values);
		if (rc < 0) {
			if (po)
				lam__kv_walk_free(&wa);
			break;
		}
		ra = po ? lam__kv_walk_next(&wa, &ia) : 0;
		rb = lam__kv_walk_next(&wb, &ib);
		while (rc == 0 && (ra > 0 || rb > 0)) {
			int c = ra <= 0 ? 1 :
				rb <= 0 ? -1 :
					  item_cmp(s, &ia, &ib, values, &rc);
			if (rc != 0)
				break;
			if (values) {
				if (c < 0)
					rc = lam__kv_unset(s->w, pt, ia.disp,
							   ia.len, mtime);
				else if (c > 0 || !same_value(&ia, &ib))
					rc = lam__kv_set(s->w, pt, ib.disp,
							 ib.len, ib.type,
							 ib.data, ib.size,
							 mtime);
			} else {
				lam__kv_path ca = {0}, cb = {0};
				if (c <= 0)
					rc = lam__kv_path_parse(
						&ca, NULL, 0, ia.disp, ia.len);
				if (rc == 0 && c >= 0)
					rc = lam__kv_path_parse(
						&cb, NULL, 0, ib.disp, ib.len);
				if (rc == 0) {
					if (c < 0)
						rc = lam__kv_delete_key(
							s->w, &ca, true, mtime);
					else if (c > 0)
						rc = add_tree(s, &cb);
					else if (!same_spelling(&ia, &ib)) {
						/* Spelled anew: made again
						 * whole. */
						rc = lam__kv_delete_key(
							s->w, &ca, true, mtime);
						if (rc == 0)
							rc = add_tree(s, &cb);
					} else {
						rc = sync_key(s, &ca, &cb);
					}
				}
				lam__kv_path_free(&ca);
				lam__kv_path_free(&cb);
			}
			if (c <= 0)
				ra = lam__kv_walk_next(&wa, &ia);
			if (c >= 0)
				rb = lam__kv_walk_next(&wb, &ib);
			if (rc == 0 && (ra < 0 || rb < 0))
				rc = ra < 0 ? ra : rb;
		}
		if (po)
			lam__kv_walk_free(&wa);
		lam__kv_walk_free(&wb);
	}
	return rc;
}

int lam__kv_squash(lam_store *s, lam_layer *top, lam_layer *onto,
		   int layer_dirfd, lam__digest *digest, bool *has)
{
	squash sq = {0};
	lam__kv_path root = {0};
	lam__kv_rec *r = NULL;
	size_t n = 0;
	int rc;

	*has = false;
	memset(digest, 0, sizeof(*digest));
	const char *onto_id = onto ? onto->rec.id : "";
	rc = lam__kv_open(&sq.o, s, onto_id, -1, true);
	if (rc == 0)
		rc = lam__kv_open(&sq.t, s, top->rec.id, -1, true);
	if (rc == 0)
		rc = lam__kv_open(&sq.w, s, onto_id, -1, false);
	if (rc == 0) {
		sq.w->replaying = true; /* no log, caps or notes */
		rc = lam__kv_path_parse(&root, NULL, 0, "", 0);
	}
	if (rc == 0)
		rc = sync_key(&sq, &root, &root);
	if (rc == 0)
		rc = lam__kv_upper_records(&sq.w->up, &r, &n);
	if (rc == 0 && n > 0) {
		rc = lam__kv_file_write(layer_dirfd, "kv", r, n, digest);
		if (rc == 0)
			*has = true;
	}
	lam__free(r);
	lam__kv_path_free(&root);
	lam__buf_free(&sq.fa);
	lam__buf_free(&sq.fb);
	lam__kv_unref(sq.o);
	lam__kv_unref(sq.t);
	lam__kv_unref(sq.w);
	return rc;
}
