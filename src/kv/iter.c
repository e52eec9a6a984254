/* SPDX-License-Identifier: MIT */
/*
 * Walking a key's subkeys or values: the upper's sorted children merged
 * with the lower chain's, which lie contiguous in the merged array (values)
 * or a subtree skip apart (subkeys). The upper wins on equal names, and its
 * tombstones hide the lower entry. After a change to the namespace the walk
 * finds its place again from the last name it returned.
 */
#include <string.h>

#include "kv/internal.h"

static int name_of_lower(const lam__kv_walk *w, int64_t i, lam__kv_rec *r,
			 const char **fold, uint32_t *flen)
{
	lam__kv_chain_rec(w->chain, (size_t)i, r);
	if (w->values) {
		*fold = r->fold;
		*flen = r->len;
	} else {
		*fold = r->fold + w->len + (w->len ? 1 : 0);
		*flen = r->len - w->len - (w->len ? 1 : 0);
	}
	return 0;
}

static void upper_name(const lam__kv_walk *w, size_t i, const char **fold,
		       uint32_t *flen)
{
	if (w->values) {
		const lam__kv_uval *v = w->up->vals[i];
		*fold = v->fold;
		*flen = v->len;
	} else {
		const lam__kv_ukey *k = w->up->kids[i];
		*fold = k->fold + w->len + (w->len ? 1 : 0);
		*flen = k->len - w->len - (w->len ? 1 : 0);
	}
}

static size_t upper_count(const lam__kv_walk *w)
{
	if (w->up == NULL)
		return 0;
	return w->values ? w->up->nvals : w->up->nkids;
}

/* Compare a child's own folded name with the last one returned. */
static int cmp_last(const lam__kv_walk *w, const char *fold, uint32_t len)
{
	if (w->values)
		return lam__kv_name_cmp(fold, len, w->last, w->last_len);
	return lam__kv_path_cmp(fold, len, w->last, w->last_len);
}

/* Position both sides at the first child after the last name returned (or
 * at the first child when nothing was returned yet). */
static void seek(lam__kv_walk *w)
{
	lam__kv_res res;
	lam__kv *kv = w->kv;

	if (w->started && w->last != w->last_buf.data) {
		/* The last name may live in what the change freed. */
		w->last_buf.len = 0;
		if (lam__buf_add(&w->last_buf, w->last, w->last_len) < 0) {
			w->gone = true;
			return;
		}
		w->last = w->last_buf.data;
	}
	if (w->chain != kv->lower) {
		lam__kv_chain_unref(w->chain);
		w->chain = kv->lower ? lam__kv_chain_ref(kv->lower) : NULL;
	}
	lam__kv_resolve(kv, w->fold, w->len, w->hash, &res);
	w->up = res.exists ? res.up : NULL;
	w->gone = !res.exists;
	if (w->up)
		lam__kv_ukey_sort(w->up);
	w->up_pos = 0;
	w->low_next = -1;
	w->low_end = 0;
	if (res.exists && res.low >= 0) {
		const lam__kv_ment *e = &w->chain->ents[res.low];
		uint32_t first = (uint32_t)res.low + 1;
		if (w->values) {
			w->low_end = first + e->nvalues;
			w->low_next = first < w->low_end ? (int64_t)first : -1;
		} else {
			w->low_end = e->skip;
			first += e->nvalues;
			w->low_next = first < w->low_end ? (int64_t)first : -1;
		}
	}
	w->version = kv->version;
	if (!w->started)
		return;
	/* Skip what was already returned. */
	size_t n = upper_count(w);
	while (w->up_pos < n) {
		const char *f;
		uint32_t l;
		upper_name(w, w->up_pos, &f, &l);
		if (cmp_last(w, f, l) > 0)
			break;
		w->up_pos++;
	}
	while (w->low_next >= 0) {
		lam__kv_rec r;
		const char *f;
		uint32_t l;
		name_of_lower(w, w->low_next, &r, &f, &l);
		if (cmp_last(w, f, l) > 0)
			break;
		w->low_next = w->values ? w->low_next + 1 :
					  w->chain->ents[w->low_next].skip;
		if ((uint32_t)w->low_next >= w->low_end)
			w->low_next = -1;
	}
}

int lam__kv_walk_start(lam__kv_walk *w, lam__kv *kv, const lam__kv_path *p,
		       bool values)
{
	memset(w, 0, sizeof(*w));
	w->kv = lam__kv_ref(kv);
	w->fold = lam__strndup(p->fold, p->len);
	if (w->fold == NULL) {
		lam__kv_unref(kv);
		return lam__error(LAM_ENOMEM, "out of memory");
	}
	w->len = p->len;
	w->hash = p->hash;
	w->values = values;
	w->low_next = -1;
	seek(w);
	if (w->gone) {
		lam__kv_walk_free(w);
		return lam__error(LAM_ENOTFOUND, "no key \"%s\"", p->disp);
	}
	return 0;
}

void lam__kv_walk_free(lam__kv_walk *w)
{
	if (w->kv == NULL)
		return;
	lam__kv_chain_unref(w->chain);
	lam__kv_unref(w->kv);
	lam__free(w->fold);
	lam__buf_free(&w->last_buf);
	memset(w, 0, sizeof(*w));
}

static void advance_low(lam__kv_walk *w)
{
	w->low_next = w->values ? w->low_next + 1 :
				  w->chain->ents[w->low_next].skip;
	if ((uint32_t)w->low_next >= w->low_end)
		w->low_next = -1;
}

int lam__kv_walk_next(lam__kv_walk *w, lam__kv_item *it)
{
	if (w->version != w->kv->version)
		seek(w);
	for (;;) {
		size_t n = upper_count(w);
		const char *uf = NULL, *lf = NULL;
		uint32_t ul = 0, ll = 0;
		lam__kv_rec r;
		int c;

		if (w->up_pos < n)
			upper_name(w, w->up_pos, &uf, &ul);
		if (w->low_next >= 0)
			name_of_lower(w, w->low_next, &r, &lf, &ll);
		if (uf == NULL && lf == NULL)
			return 0;
		if (uf == NULL)
			c = 1;
		else if (lf == NULL)
			c = -1;
		else
			c = w->values ? lam__kv_name_cmp(uf, ul, lf, ll) :
					lam__kv_path_cmp(uf, ul, lf, ll);
		const char *name;
		uint32_t nlen;
		memset(it, 0, sizeof(*it));
		if (c <= 0) {
			size_t i = w->up_pos++;
			if (c == 0)
				advance_low(w);
			name = uf;
			nlen = ul;
			if (w->values) {
				const lam__kv_uval *v = w->up->vals[i];
				if (v->deleted)
					continue;
				it->disp = v->name;
				it->len = v->len;
				it->type = v->type;
				it->data = v->data;
				it->size = v->size;
			} else {
				const lam__kv_ukey *k = w->up->kids[i];
				if (!(k->flags & LAM__U_EXISTS))
					continue;
				it->disp = k->path;
				it->len = k->len;
				it->name_off = k->name_off;
				it->volatile_key = k->flags & LAM__U_VOLATILE;
			}
			it->upper = true;
		} else {
			advance_low(w);
			name = lf;
			nlen = ll;
			it->disp = r.disp;
			it->len = r.len;
			if (w->values) {
				it->type = r.type;
				it->data = r.data;
				it->size = r.size;
			} else {
				it->name_off = r.len - nlen;
			}
		}
		if (it->upper) {
			/* The upper may change before the next call: keep
			 * a copy. */
			w->last_buf.len = 0;
			if (lam__buf_add(&w->last_buf, name, nlen) < 0)
				return LAM_ENOMEM;
			name = w->last_buf.data;
		}
		w->last = name;
		w->last_len = nlen;
		w->started = true;
		return 1;
	}
}
