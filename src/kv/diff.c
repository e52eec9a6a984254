/* SPDX-License-Identifier: MIT */
/*
 * Diffs of key trees: two namespaces walked side by side, key by key in the
 * stable order.
 */
#include <string.h>

#include "kv/internal.h"

typedef struct diff {
	lam_kv_change_cb cb;
	void *userdata;
	lam__buf name; /* a NUL-terminated copy of the current value name */
} diff;

static int child_path(lam__kv_path *out, const lam__kv_item *it)
{
	return lam__kv_path_parse(out, NULL, 0, it->disp, it->len);
}

static int emit(diff *d, lam_change_kind kind, const char *key,
		const char *value, size_t value_len)
{
	if (value == NULL)
		return d->cb(kind, key, NULL, d->userdata);
	d->name.len = 0;
	if (lam__buf_add(&d->name, value, value_len) < 0)
		return LAM_ENOMEM;
	return d->cb(kind, key, d->name.data, d->userdata);
}

/* Report a whole subtree as added or deleted. */
static int whole(diff *d, lam__kv *kv, const lam__kv_path *p,
		 lam_change_kind kind)
{
	lam__kv_walk w;
	lam__kv_item it;
	int rc;

	if (p->len > 0) {
		rc = emit(d, kind, p->disp, NULL, 0);
		if (rc != 0)
			return rc;
	}
	rc = lam__kv_walk_start(&w, kv, p, true);
	if (rc < 0)
		return rc;
	while ((rc = lam__kv_walk_next(&w, &it)) > 0) {
		rc = emit(d, kind, p->disp, it.disp, it.len);
		if (rc != 0)
			break;
	}
	lam__kv_walk_free(&w);
	if (rc != 0)
		return rc;
	rc = lam__kv_walk_start(&w, kv, p, false);
	if (rc < 0)
		return rc;
	while ((rc = lam__kv_walk_next(&w, &it)) > 0) {
		lam__kv_path c;
		rc = child_path(&c, &it);
		if (rc == 0) {
			rc = whole(d, kv, &c, kind);
			lam__kv_path_free(&c);
		}
		if (rc != 0)
			break;
	}
	lam__kv_walk_free(&w);
	return rc;
}

/* Compare the names of two walk items (values, or subkeys by path); *err
 * is set when the folded copies cannot be made. */
static int item_cmp(const lam__kv_item *a, const lam__kv_item *b, bool values,
		    lam__buf *fa, lam__buf *fb, int *err)
{
	fa->len = fb->len = 0;
	if (lam__buf_grow(fa, a->len) < 0 || lam__buf_grow(fb, b->len) < 0) {
		*err = LAM_ENOMEM;
		return 0;
	}
	lam__kv_fold(fa->data, a->disp, a->len);
	lam__kv_fold(fb->data, b->disp, b->len);
	if (values)
		return lam__kv_name_cmp(fa->data, a->len, fb->data, b->len);
	return lam__kv_path_cmp(fa->data, a->len, fb->data, b->len);
}

static int both(diff *d, lam__kv *a, lam__kv *b, const lam__kv_path *pa,
		const lam__kv_path *pb)
{
	lam__kv_walk wa, wb;
	lam__kv_item ia, ib;
	lam__buf fa = {0}, fb = {0};
	int ra, rb, rc = 0;

	for (int pass = 0; pass < 2 && rc == 0; pass++) {
		bool values = pass == 0;
		rc = lam__kv_walk_start(&wa, a, pa, values);
		if (rc < 0)
			break;
		rc = lam__kv_walk_start(&wb, b, pb, values);
		if (rc < 0) {
			lam__kv_walk_free(&wa);
			break;
		}
		ra = lam__kv_walk_next(&wa, &ia);
		rb = lam__kv_walk_next(&wb, &ib);
		while (rc == 0 && (ra > 0 || rb > 0)) {
			int c = ra <= 0 ? 1 :
				rb <= 0 ? -1 :
					  item_cmp(&ia, &ib, values, &fa, &fb,
						   &rc);
			if (rc != 0)
				break;
			if (values) {
				if (c < 0) {
					rc = emit(d, LAM_CHANGE_DELETED,
						  pa->disp, ia.disp, ia.len);
				} else if (c > 0) {
					rc = emit(d, LAM_CHANGE_ADDED, pb->disp,
						  ib.disp, ib.len);
				} else if (ia.type != ib.type ||
					   ia.size != ib.size ||
					   (ia.size > 0 &&
					    memcmp(ia.data, ib.data, ia.size) !=
						    0)) {
					rc = emit(d, LAM_CHANGE_MODIFIED,
						  pb->disp, ib.disp, ib.len);
				}
			} else {
				lam__kv_path ca = {0}, cb = {0};
				if (c <= 0)
					rc = child_path(&ca, &ia);
				if (rc == 0 && c >= 0)
					rc = child_path(&cb, &ib);
				if (rc == 0) {
					if (c < 0)
						rc = whole(d, a, &ca,
							   LAM_CHANGE_DELETED);
					else if (c > 0)
						rc = whole(d, b, &cb,
							   LAM_CHANGE_ADDED);
					else
						rc = both(d, a, b, &ca, &cb);
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
		lam__kv_walk_free(&wa);
		lam__kv_walk_free(&wb);
	}
	lam__buf_free(&fa);
	lam__buf_free(&fb);
	return rc;
}

static int diff_ns(lam__kv *a, lam__kv *b, lam_kv_change_cb cb, void *userdata)
{
	diff d = {cb, userdata, {0}};
	lam__kv_path root;
	int rc = lam__kv_path_parse(&root, NULL, 0, "", 0);
	if (rc < 0)
		return rc;
	rc = both(&d, a, b, &root, &root);
	lam__kv_path_free(&root);
	lam__buf_free(&d.name);
	return rc;
}

int lam__kv_diff_ids(lam_store *s, const char *from, const char *to,
		     lam_kv_change_cb cb, void *userdata)
{
	lam__kv *a = NULL, *b = NULL;
	int rc = lam__kv_open(&a, s, from, -1, true);
	if (rc == 0)
		rc = lam__kv_open(&b, s, to, -1, true);
	if (rc == 0)
		rc = diff_ns(a, b, cb, userdata);
	lam__kv_unref(a);
	lam__kv_unref(b);
	return rc;
}

int lam_kv_diff(lam_layer *from, lam_layer *to, lam_kv_change_cb cb,
		void *userdata)
{
	lam__error_reset();
	if (cb == NULL)
		return lam__error(LAM_EINVAL, "lam_kv_diff: no callback");
	if (from && to && from->store != to->store)
		return lam__error(LAM_EINVAL,
				  "lam_kv_diff: layers of different stores");
	lam_store *s = from ? from->store : to ? to->store : NULL;
	if (s == NULL)
		return 0;
	return lam__kv_diff_ids(s, from ? from->rec.id : NULL,
				to ? to->rec.id : NULL, cb, userdata);
}

int lam_kv_view_diff(lam_view *view, lam_kv_change_cb cb, void *userdata)
{
	lam__kv *kv, *base = NULL;
	int rc;

	lam__error_reset();
	if (cb == NULL)
		return lam__error(LAM_EINVAL, "lam_kv_view_diff: no callback");
	rc = lam__kv_of_view(&kv, view);
	if (rc == 0)
		rc = lam__kv_open(&base, kv->store, kv->base, -1, true);
	if (rc < 0)
		return rc;
	rc = diff_ns(base, kv, cb, userdata);
	lam__kv_unref(base);
	return rc;
}

/* The single-string form for lam_layer_diff(): "Key\Sub" for a key,
 * "Key\Sub:Name" for a value. */
typedef struct flat {
	lam_change_cb cb;
	void *userdata;
	lam__buf b;
} flat;

static int flat_cb(lam_change_kind kind, const char *key, const char *value,
		   void *userdata)
{
	flat *f = userdata;
	f->b.len = 0;
	if (lam__buf_puts(&f->b, key) < 0 ||
	    (value && (lam__buf_add(&f->b, ":", 1) < 0 ||
		       lam__buf_puts(&f->b, value) < 0)))
		return LAM_ENOMEM;
	return f->cb(kind, f->b.data, f->userdata);
}

int lam__kv_diff_paths(lam_store *s, const char *from, const char *to,
		       lam_change_cb cb, void *userdata)
{
	flat f = {cb, userdata, {0}};
	int rc = lam__kv_diff_ids(s, from, to, flat_cb, &f);
	lam__buf_free(&f.b);
	return rc;
}
