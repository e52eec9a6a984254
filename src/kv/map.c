/* SPDX-License-Identifier: MIT */
/*
 * A hash table of pointers: linear probing, kept at most half full, with
 * backward-shift deletion so that no tombstones build up. The caller owns
 * the items and gives their hash; equality is the caller's too.
 */
#include <string.h>

#include "kv/internal.h"

void *lam__kv_map_find(const lam__kv_map *m, uint64_t hash, lam__kv_map_eq eq,
		       const void *key)
{
	if (m->cap == 0)
		return NULL;
	size_t mask = m->cap - 1;
	for (size_t i = (size_t)hash & mask;; i = (i + 1) & mask) {
		void *it = m->items[i];
		if (it == NULL)
			return NULL;
		if (m->hashes[i] == hash && eq(it, key))
			return it;
	}
}

static int grow(lam__kv_map *m)
{
	size_t cap = m->cap ? m->cap * 2 : 16;
	void **items = lam__calloc(cap, sizeof(*items));
	uint64_t *hashes = lam__calloc(cap, sizeof(*hashes));

	if (items == NULL || hashes == NULL) {
		lam__free(items);
		lam__free(hashes);
		return lam__error(LAM_ENOMEM, "out of memory");
	}
	for (size_t i = 0; i < m->cap; i++) {
		if (m->items[i] == NULL)
			continue;
		size_t j = (size_t)m->hashes[i] & (cap - 1);
		while (items[j] != NULL)
			j = (j + 1) & (cap - 1);
		items[j] = m->items[i];
		hashes[j] = m->hashes[i];
	}
	lam__free(m->items);
	lam__free(m->hashes);
	m->items = items;
	m->hashes = hashes;
	m->cap = cap;
	return 0;
}

int lam__kv_map_put(lam__kv_map *m, uint64_t hash, void *item)
{
	if ((m->count + 1) * 2 > m->cap) {
		int rc = grow(m);
		if (rc < 0)
			return rc;
	}
	size_t mask = m->cap - 1;
	size_t i = (size_t)hash & mask;
	while (m->items[i] != NULL)
		i = (i + 1) & mask;
	m->items[i] = item;
	m->hashes[i] = hash;
	m->count++;
	return 0;
}

void lam__kv_map_del(lam__kv_map *m, uint64_t hash, const void *item)
{
	if (m->cap == 0)
		return;
	size_t mask = m->cap - 1;
	size_t i = (size_t)hash & mask;
	while (m->items[i] != item) {
		if (m->items[i] == NULL)
			return;
		i = (i + 1) & mask;
	}
	m->items[i] = NULL;
	m->count--;
	/* Shift back the items of the run that follows, so that each stays
	 * reachable from its home slot. */
	for (size_t j = (i + 1) & mask; m->items[j] != NULL;
	     j = (j + 1) & mask) {
		size_t home = (size_t)m->hashes[j] & mask;
		/* Leave the item where it is when its home lies cyclically
		 * in (i, j]. */
		if (((j - home) & mask) < ((j - i) & mask))
			continue;
		m->items[i] = m->items[j];
		m->hashes[i] = m->hashes[j];
		m->items[j] = NULL;
		i = j;
	}
}

void lam__kv_map_free(lam__kv_map *m)
{
	lam__free(m->items);
	lam__free(m->hashes);
	memset(m, 0, sizeof(*m));
}
