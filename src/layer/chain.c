/* SPDX-License-Identifier: MIT */
/*
 * Merged chains with lookup tables: a path lookup costs one hash probe
 * whatever the depth of the stack, and a folder's children are found by
 * skipping over subtrees in the sorted merged array.
 */
#include <stdlib.h>
#include <string.h>

#include "layer/internal.h"

static size_t slot_of(const lam__chain *c, const char *p, size_t len)
{
	return (size_t)lam__hash64(p, len) & (c->hcap - 1);
}

void lam__chain_entry(const lam__chain *c, size_t i, lam__entry *out)
{
	lam__merged_get(&c->m, i, out);
}

lam_layer *lam__chain_layer(const lam__chain *c, size_t i)
{
	return c->m.chain[c->m.ents[i].layer];
}

int64_t lam__chain_find(const lam__chain *c, const char *path, size_t len)
{
	if (c->hcap == 0)
		return -1;
	size_t j = slot_of(c, path, len);
	while (c->hash[j] != 0) {
		lam__entry e;
		lam__chain_entry(c, c->hash[j] - 1, &e);
		if (e.path_len == len && memcmp(e.path, path, len) == 0)
			return c->hash[j] - 1;
		j = (j + 1) & (c->hcap - 1);
	}
	return -1;
}

static bool is_under(const lam__entry *dir, const lam__entry *e)
{
	if (dir->path_len == 0)
		return e->path_len > 0;
	return e->path_len > dir->path_len && e->path[dir->path_len] == '/' &&
	       memcmp(e->path, dir->path, dir->path_len) == 0;
}

int64_t lam__chain_first_child(const lam__chain *c, int64_t i)
{
	if (i < 0) {
		/* No root entry: the children of the root start the array. */
		return c->m.count > 0 ? 0 : -1;
	}
	size_t j = (size_t)i + 1;
	if (j >= c->m.count)
		return -1;
	lam__entry d, e;
	lam__chain_entry(c, (size_t)i, &d);
	lam__chain_entry(c, j, &e);
	return is_under(&d, &e) ? (int64_t)j : -1;
}

int64_t lam__chain_next_child(const lam__chain *c, int64_t parent,
			      int64_t child)
{
	size_t j = c->skip[child];
	if (j >= c->m.count)
		return -1;
	if (parent < 0)
		return (int64_t)j;
	lam__entry d, e;
	lam__chain_entry(c, (size_t)parent, &d);
	lam__chain_entry(c, j, &e);
	return is_under(&d, &e) ? (int64_t)j : -1;
}

static int link_cmp(const void *a, const void *b, void *ctx)
{
	const lam__chain *c = ctx;
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	const lam__merged_ent *mx = &c->m.ents[x], *my = &c->m.ents[y];
	if (mx->layer != my->layer)
		return mx->layer < my->layer ? -1 : 1;
	lam__entry ex, ey;
	lam__chain_entry(c, x, &ex);
	lam__chain_entry(c, y, &ey);
	if (ex.link_group != ey.link_group)
		return ex.link_group < ey.link_group ? -1 : 1;
	return x < y ? -1 : x > y;
}

void lam__chain_link_members(const lam__chain *c, size_t i, size_t *first,
			     size_t *count)
{
	lam__entry e;
	lam__chain_entry(c, i, &e);
	*first = 0;
	*count = 0;
	if (e.link_group == 0)
		return;
	/* Binary search for the first member of (layer, group). */
	uint32_t layer = c->m.ents[i].layer;
	size_t lo = 0, hi = c->nlinks;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		uint32_t k = c->links[mid];
		lam__entry ek;
		lam__chain_entry(c, k, &ek);
		uint32_t kl = c->m.ents[k].layer;
		bool before = kl < layer ||
			      (kl == layer && ek.link_group < e.link_group);
		if (before)
			lo = mid + 1;
		else
			hi = mid;
	}
	size_t n = 0;
	while (lo + n < c->nlinks) {
		uint32_t k = c->links[lo + n];
		lam__entry ek;
		lam__chain_entry(c, k, &ek);
		if (c->m.ents[k].layer != layer ||
		    ek.link_group != e.link_group)
			break;
		n++;
	}
	*first = lo;
	*count = n;
}

static int build_tables(lam__chain *c)
{
	size_t n = c->m.count;
	c->hcap = 16;
	while (c->hcap < n * 2 + 2)
		c->hcap *= 2;
	c->hash = lam__calloc(c->hcap, sizeof(*c->hash));
	c->skip = lam__malloc((n ? n : 1) * sizeof(*c->skip));
	c->links = lam__malloc((n ? n : 1) * sizeof(*c->links));
	uint32_t *stack = lam__malloc((n ? n : 1) * sizeof(*stack));
	if (c->hash == NULL || c->skip == NULL || c->links == NULL ||
	    stack == NULL) {
		lam__free(stack);
		return lam__error(LAM_ENOMEM, "out of memory");
	}
	size_t depth = 0;
	for (size_t i = 0; i < n; i++) {
		lam__entry e;
		lam__chain_entry(c, i, &e);
		size_t j = slot_of(c, e.path, e.path_len);
		while (c->hash[j] != 0)
			j = (j + 1) & (c->hcap - 1);
		c->hash[j] = (uint32_t)i + 1;
		if (e.link_group != 0)
			c->links[c->nlinks++] = (uint32_t)i;
		/* Close the subtrees this entry is not part of. */
		while (depth > 0) {
			lam__entry top;
			lam__chain_entry(c, stack[depth - 1], &top);
			if (is_under(&top, &e))
				break;
			c->skip[stack[--depth]] = (uint32_t)i;
		}
		stack[depth++] = (uint32_t)i;
	}
	while (depth > 0)
		c->skip[stack[--depth]] = (uint32_t)n;
	lam__free(stack);
	if (c->nlinks > 1)
		qsort_r(c->links, c->nlinks, sizeof(*c->links), link_cmp, c);
	return 0;
}

static void chain_destroy(lam__chain *c)
{
	lam__merged_free(&c->m);
	lam__free(c->hash);
	lam__free(c->skip);
	lam__free(c->links);
	lam__free(c);
}

lam__chain *lam__chain_ref(lam__chain *c)
{
	if (c != NULL) {
		pthread_mutex_lock(&c->store->mutex);
		c->refcount++;
		pthread_mutex_unlock(&c->store->mutex);
	}
	return c;
}

void lam__chain_unref(lam__chain *c)
{
	if (c == NULL)
		return;
	lam_store *s = c->store;
	pthread_mutex_lock(&s->mutex);
	bool last = --c->refcount == 0;
	if (last) {
		for (lam__chain **p = &s->chains; *p; p = &(*p)->next_cached)
			if (*p == c) {
				*p = c->next_cached;
				break;
			}
	}
	pthread_mutex_unlock(&s->mutex);
	if (last) {
		chain_destroy(c);
		lam__store_unref(s);
	}
}

int lam__chain_get(lam__chain **out, lam_layer *top)
{
	*out = NULL;
	lam_store *s = top->store;
	pthread_mutex_lock(&s->mutex);
	for (lam__chain *c = s->chains; c; c = c->next_cached) {
		if (strcmp(c->top, top->rec.id) == 0) {
			c->refcount++;
			*out = c;
			break;
		}
	}
	pthread_mutex_unlock(&s->mutex);
	if (*out != NULL)
		return 0;
	lam__chain *c = lam__calloc(1, sizeof(*c));
	if (c == NULL)
		return lam__error(LAM_ENOMEM, "out of memory");
	int rc = lam__merged_build(&c->m, top);
	if (rc == 0)
		rc = build_tables(c);
	if (rc < 0) {
		chain_destroy(c);
		return rc;
	}
	c->refcount = 1;
	memcpy(c->top, top->rec.id, 33);
	c->store = lam__store_ref(s);
	pthread_mutex_lock(&s->mutex);
	/* Another thread may have built the same chain meanwhile; keeping
	 * both is harmless, the cache just finds the newer first. */
	c->next_cached = s->chains;
	s->chains = c;
	pthread_mutex_unlock(&s->mutex);
	*out = c;
	return 0;
}
