/* SPDX-License-Identifier: MIT */
/*
 * Merging a chain of layers into the entries a reader sees, with overlayfs
 * rules: an upper entry hides the lower one of the same path; a whiteout
 * hides the path and everything below it; a non-directory hides everything
 * below its path; an opaque directory hides what lower layers hold below
 * it (but not its own layer's children).
 */
#include <stdlib.h>
#include <string.h>

#include "layer/internal.h"

typedef struct seen {
	const char *path;
	uint32_t len;
	uint32_t layer;	 /* 0 = top */
	uint32_t blocks; /* 1: hides lower descendants; 2: only from below
			    its own layer (opaque dir) */
	uint32_t used;
} seen;

typedef struct seen_set {
	seen *slots;
	size_t cap;
} seen_set;

static seen *seen_find(seen_set *t, const char *p, uint32_t len, bool *found)
{
	size_t j = lam__hash64(p, len) & (t->cap - 1);
	while (t->slots[j].used) {
		if (t->slots[j].len == len &&
		    memcmp(t->slots[j].path, p, len) == 0) {
			*found = true;
			return &t->slots[j];
		}
		j = (j + 1) & (t->cap - 1);
	}
	*found = false;
	return &t->slots[j];
}

/* Is a lower entry at path p (from layer L) hidden by an ancestor that a
 * higher layer put in the set? */
static bool hidden_by_ancestor(seen_set *t, const char *p, uint32_t len,
			       uint32_t layer)
{
	/* Ancestors: "" (the root), then each prefix ending before a '/'. */
	for (uint32_t i = 0; i <= len; i++) {
		if (i != 0 && (i == len || p[i] != '/'))
			continue;
		if (i == len)
			break;
		bool found;
		seen *s = seen_find(t, p, i, &found);
		if (!found)
			continue;
		if (s->blocks == 1)
			return true;
		if (s->blocks == 2 && s->layer < layer)
			return true;
	}
	return false;
}

static int ent_cmp(const void *a, const void *b, void *ctx)
{
	/* qsort may compare copies, so only the element's own fields count. */
	const lam__merged *m = ctx;
	const lam__merged_ent *ma = a, *mb = b;
	lam__entry x, y;
	lam__index_get(&m->chain[ma->layer]->index, ma->index, &x);
	lam__index_get(&m->chain[mb->layer]->index, mb->index, &y);
	return lam__entry_cmp(&x, &y);
}

void lam__merged_get(const lam__merged *m, size_t i, lam__entry *out)
{
	const lam__merged_ent *me = &m->ents[i];
	lam__index_get(&m->chain[me->layer]->index, me->index, out);
}

void lam__merged_free(lam__merged *m)
{
	for (size_t i = 0; i < m->depth; i++)
		lam_layer_free(m->chain[i]);
	lam__free(m->chain);
	lam__free(m->ents);
	memset(m, 0, sizeof(*m));
}

static int load_chain(lam__merged *m, lam_layer *top)
{
	size_t cap = top->rec.depth ? top->rec.depth : 1;
	m->chain = lam__calloc(cap, sizeof(*m->chain));
	if (m->chain == NULL)
		return lam__error(LAM_ENOMEM, "out of memory");
	lam_layer *cur = lam_layer_ref(top);
	while (cur != NULL) {
		const lam__index *idx;
		int rc = lam__layer_index(cur, &idx);
		if (rc == 0 && m->depth == cap)
			rc = lam__error(LAM_ECORRUPT,
					"layer %s: chain longer than its depth",
					top->rec.id);
		if (rc < 0) {
			lam_layer_free(cur);
			return rc;
		}
		m->chain[m->depth++] = cur;
		lam_layer *next;
		rc = lam_layer_parent(&next, cur);
		if (rc < 0)
			return rc;
		cur = next;
	}
	return 0;
}

int lam__merged_build(lam__merged *m, lam_layer *top)
{
	memset(m, 0, sizeof(*m));
	int rc = load_chain(m, top);
	if (rc < 0) {
		lam__merged_free(m);
		return rc;
	}
	uint64_t total = 0;
	for (size_t l = 0; l < m->depth; l++)
		total += m->chain[l]->index.count;
	seen_set t = {0};
	t.cap = 16;
	while (t.cap < total * 2 + 2)
		t.cap *= 2;
	t.slots = lam__calloc(t.cap, sizeof(*t.slots));
	m->ents = lam__malloc((total ? total : 1) * sizeof(*m->ents));
	if (t.slots == NULL || m->ents == NULL) {
		lam__free(t.slots);
		lam__merged_free(m);
		return lam__error(LAM_ENOMEM, "out of memory");
	}
	for (uint32_t l = 0; l < m->depth; l++) {
		const lam__index *idx = &m->chain[l]->index;
		for (uint64_t i = 0; i < idx->count; i++) {
			lam__entry e;
			lam__index_get(idx, i, &e);
			bool found;
			seen *s = seen_find(&t, e.path, e.path_len, &found);
			if (found) {
				/* A higher layer's folder hides this entry, but
				 * what this entry is still ends the lookup for
				 * the layers below it: an opaque folder, a
				 * whiteout or a non-folder hides their
				 * contents under this path. */
				bool ends = (e.flags & (LAM__E_OPAQUE |
							LAM__E_WHITEOUT)) ||
					    !S_ISDIR(e.mode);
				if (ends && s->blocks == 0) {
					s->blocks = 2;
					s->layer = l;
				}
				continue;
			}
			if (e.path_len != 0 &&
			    hidden_by_ancestor(&t, e.path, e.path_len, l))
				continue;
			/* seen_find may have been asked about ancestors since;
			 * look the slot up again before filling it. */
			s = seen_find(&t, e.path, e.path_len, &found);
			s->used = 1;
			s->path = e.path;
			s->len = e.path_len;
			s->layer = l;
			if ((e.flags & LAM__E_WHITEOUT) || !S_ISDIR(e.mode))
				s->blocks = 1;
			else if (e.flags & LAM__E_OPAQUE)
				s->blocks = 2;
			if (e.flags & LAM__E_WHITEOUT)
				continue;
			m->ents[m->count].layer = l;
			m->ents[m->count].index = i;
			m->count++;
		}
	}
	lam__free(t.slots);
	if (m->count > 1)
		qsort_r(m->ents, m->count, sizeof(*m->ents), ent_cmp, m);
	return 0;
}
