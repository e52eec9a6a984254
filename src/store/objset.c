/* SPDX-License-Identifier: MIT */
/* A set of object ids, open addressing; gc and check use it. */
#include <string.h>

#include "store/internal.h"

static size_t obj_hash(const lam__objid *id, size_t cap)
{
	uint64_t h;
	memcpy(&h, id->digest.b, 8);
	return (size_t)(h ^ id->variant) & (cap - 1);
}

int lam__objset_add(lam__objset *s, const lam__objid *id)
{
	if ((s->count + 1) * 2 > s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 1024;
		lam__objid *slots = lam__calloc(cap, sizeof(*slots));
		bool *used = lam__calloc(cap, sizeof(*used));
		if (slots == NULL || used == NULL) {
			lam__free(slots);
			lam__free(used);
			return lam__error(LAM_ENOMEM, "out of memory");
		}
		for (size_t i = 0; i < s->cap; i++) {
			if (!s->used[i])
				continue;
			size_t j = obj_hash(&s->slots[i], cap);
			while (used[j])
				j = (j + 1) & (cap - 1);
			slots[j] = s->slots[i];
			used[j] = true;
		}
		lam__free(s->slots);
		lam__free(s->used);
		s->slots = slots;
		s->used = used;
		s->cap = cap;
	}
	size_t j = obj_hash(id, s->cap);
	while (s->used[j]) {
		if (memcmp(&s->slots[j], id, sizeof(*id)) == 0)
			return 0;
		j = (j + 1) & (s->cap - 1);
	}
	s->slots[j] = *id;
	s->used[j] = true;
	s->count++;
	return 1;
}

bool lam__objset_has(const lam__objset *s, const lam__objid *id)
{
	if (s->cap == 0)
		return false;
	size_t j = obj_hash(id, s->cap);
	while (s->used[j]) {
		if (memcmp(&s->slots[j], id, sizeof(*id)) == 0)
			return true;
		j = (j + 1) & (s->cap - 1);
	}
	return false;
}

void lam__objset_free(lam__objset *s)
{
	lam__free(s->slots);
	lam__free(s->used);
	memset(s, 0, sizeof(*s));
}
