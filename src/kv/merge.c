/* SPDX-License-Identifier: MIT */
/*
 * Merged chains: the visible key/value records of a stack of layers, as one
 * sorted array with a hash table over it. A lookup costs one probe whatever
 * the depth of the stack, and a key's values and subkeys are contiguous, so
 * enumeration through 500 layers walks an array as it does through one.
 *
 * The array is built by a k-way merge of the layers' sorted files. For
 * each record the topmost layer wins; a key tombstone or an opaque key in
 * layer c hides everything below that key in the layers under c. A chain
 * one layer above a chain already built is derived from it by a two-way
 * merge, which is what a view's commit uses.
 *
 * Chains are shared, as a weak cache: every user of the same top layer of a
 * store holds the same chain, which is freed when the last one lets go.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "kv/internal.h"

/* A layer's file, shared between chains. */
typedef struct lfile {
	int refcount;
	lam__kv_file f;
} lfile;

static pthread_mutex_t cache_mutex = PTHREAD_MUTEX_INITIALIZER;
static lam__kv_chain *cache;

static void lfile_unref(lfile *lf)
{
	if (lf && __atomic_sub_fetch(&lf->refcount, 1, __ATOMIC_ACQ_REL) == 0) {
		lam__kv_file_close(&lf->f);
		lam__free(lf);
	}
}

/* The chain keeps its files as lfile pointers in a parallel array; files[]
 * mirrors them for fast access. */
typedef struct chain_priv {
	lam__kv_chain c;
	lfile **lfiles;
} chain_priv;

static void chain_free(lam__kv_chain *c)
{
	chain_priv *p = (chain_priv *)c;
	if (c == NULL)
		return;
	for (size_t i = 0; i < c->nlayers; i++)
		lfile_unref(p->lfiles ? p->lfiles[i] : NULL);
	lam__free(p->lfiles);
	lam__free(c->files);
	lam__free(c->ids);
	lam__free(c->ents);
	lam__free(c->slots);
	if (c->store)
		lam__store_unref(c->store);
	lam__free(p);
}

lam__kv_chain *lam__kv_chain_ref(lam__kv_chain *c)
{
	pthread_mutex_lock(&cache_mutex);
	c->refcount++;
	pthread_mutex_unlock(&cache_mutex);
	return c;
}

void lam__kv_chain_unref(lam__kv_chain *c)
{
	if (c == NULL)
		return;
	pthread_mutex_lock(&cache_mutex);
	if (--c->refcount > 0) {
		pthread_mutex_unlock(&cache_mutex);
		return;
	}
	for (lam__kv_chain **pp = &cache; *pp; pp = &(*pp)->next_cached) {
		if (*pp == c) {
			*pp = c->next_cached;
			break;
		}
	}
	pthread_mutex_unlock(&cache_mutex);
	chain_free(c);
}

void lam__kv_chain_rec(const lam__kv_chain *c, size_t i, lam__kv_rec *out)
{
	lam__kv_file_get(&c->files[c->ents[i].layer], c->ents[i].rec, out);
}

int64_t lam__kv_chain_find_key(const lam__kv_chain *c, const char *fold,
			       size_t len, uint64_t hash)
{
	if (c == NULL || c->hcap == 0)
		return -1;
	size_t mask = c->hcap - 1;
	for (size_t j = (size_t)hash & mask; c->slots[j] != 0;
	     j = (j + 1) & mask) {
		const lam__kv_ment *e = &c->ents[c->slots[j] - 1];
		lam__kv_rec r;
		if (e->hash != hash)
			continue;
		lam__kv_file_get(&c->files[e->layer], e->rec, &r);
		if (r.kind == LAM__KV_KEY && r.len == len &&
		    memcmp(r.fold, fold, len) == 0)
			return c->slots[j] - 1;
	}
	return -1;
}

int64_t lam__kv_chain_find_value(const lam__kv_chain *c, int64_t key,
				 const char *fold, size_t len, uint64_t hash)
{
	if (c == NULL || c->hcap == 0 || key < 0)
		return -1;
	size_t mask = c->hcap - 1;
	for (size_t j = (size_t)hash & mask; c->slots[j] != 0;
	     j = (j + 1) & mask) {
		const lam__kv_ment *e = &c->ents[c->slots[j] - 1];
		lam__kv_rec r;
		if (e->hash != hash || e->skip != (uint32_t)key)
			continue;
		lam__kv_file_get(&c->files[e->layer], e->rec, &r);
		if (r.kind == LAM__KV_VALUE && r.len == len &&
		    memcmp(r.fold, fold, len) == 0)
			return c->slots[j] - 1;
	}
	return -1;
}

/* A source of sorted records: a layer's file, or an older merged chain. */
typedef struct cursor {
	uint32_t layer; /* the winning order: lower is higher in the stack */
	const lam__kv_file *f;
	uint64_t pos, end;
	const lam__kv_chain *old; /* when merging from a chain */
	lam__kv_rec rec;
	const char *path; /* folded key path of rec (its key's, for a value) */
	uint32_t plen;
} cursor;

static bool cursor_load(cursor *k)
{
	if (k->pos >= k->end)
		return false;
	if (k->old) {
		const lam__kv_ment *e = &k->old->ents[k->pos];
		k->layer = e->layer + 1;
		k->f = &k->old->files[e->layer];
		lam__kv_file_get(k->f, e->rec, &k->rec);
	} else {
		lam__kv_file_get(k->f, k->pos, &k->rec);
	}
	if (k->rec.kind == LAM__KV_KEY) {
		k->path = k->rec.fold;
		k->plen = k->rec.len;
	} else {
		lam__kv_rec key;
		lam__kv_file_get(k->f, k->rec.key, &key);
		k->path = key.fold;
		k->plen = key.len;
	}
	return true;
}

static int cursor_cmp(const cursor *a, const cursor *b)
{
	int c = lam__kv_rec_cmp(a->path, a->plen, &a->rec, b->path, b->plen,
				&b->rec);
	if (c != 0)
		return c;
	return a->layer < b->layer ? -1 : a->layer > b->layer ? 1 : 0;
}

static void heap_down(cursor **h, size_t n, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, m = i;
		if (l < n && cursor_cmp(h[l], h[m]) < 0)
			m = l;
		if (l + 1 < n && cursor_cmp(h[l + 1], h[m]) < 0)
			m = l + 1;
		if (m == i)
			return;
		cursor *t = h[i];
		h[i] = h[m];
		h[m] = t;
		i = m;
	}
}

/* A key on the path of the merge. */
typedef struct frame {
	uint32_t depth;
	bool visible;
	uint32_t cut; /* layers below this index are hidden under the key */
	uint32_t ment;
	uint64_t hash;
} frame;

static int push_ment(lam__kv_chain *c, size_t *cap, const lam__kv_ment *e)
{
	if (c->count == *cap) {
		size_t ncap = *cap ? *cap * 2 : 256;
		lam__kv_ment *n = lam__realloc(c->ents, ncap * sizeof(*n));
		if (n == NULL)
			return lam__error(LAM_ENOMEM, "out of memory");
		c->ents = n;
		*cap = ncap;
	}
	if (c->count >= UINT32_MAX - 1)
		return lam__error(LAM_ENOMEM, "too many keys and values");
	c->ents[c->count++] = *e;
	return 0;
}

static int merge(lam__kv_chain *c, cursor *curs, size_t ncurs)
{
	cursor **heap = lam__calloc(ncurs ? ncurs : 1, sizeof(*heap));
	frame stack[LAM_KV_MAX_DEPTH + 2];
	size_t top = 0, n = 0, cap = 0;
	int rc = 0;

	if (heap == NULL)
		return lam__error(LAM_ENOMEM, "out of memory");
	for (size_t i = 0; i < ncurs; i++)
		if (cursor_load(&curs[i]))
			heap[n++] = &curs[i];
	for (size_t i = n; i-- > 0;)
		heap_down(heap, n, i);

	while (n > 0) {
		cursor *w = heap[0];
		lam__kv_rec rec = w->rec;
		const char *path = w->path;
		uint32_t plen = w->plen, layer = w->layer;
		const lam__kv_file *wf = w->f;
		uint32_t wrec = w->old ? w->old->ents[w->pos].rec :
					 (uint32_t)w->pos;

		/* Skip the same record in the layers below the winner; the
		 * topmost of them that deletes the key or makes it opaque
		 * cuts off what lies below it. */
		uint32_t cutl = UINT32_MAX;
		do {
			cursor *k = heap[0];
			if (cutl == UINT32_MAX && k->rec.kind == LAM__KV_KEY &&
			    (k->rec.flags & (LAM__KV_DELETED | LAM__KV_OPAQUE)))
				cutl = k->layer;
			k->pos++;
			if (cursor_load(k)) {
				heap_down(heap, n, 0);
			} else {
				heap[0] = heap[--n];
				heap_down(heap, n, 0);
			}
		} while (n > 0 &&
			 lam__kv_rec_cmp(heap[0]->path, heap[0]->plen,
					 &heap[0]->rec, path, plen, &rec) == 0);

		uint32_t li = layer;
		(void)wf;

		if (rec.kind == LAM__KV_KEY) {
			while (top > 0 && stack[top - 1].depth >= rec.depth) {
				top--;
				if (stack[top].visible)
					c->ents[stack[top].ment].skip =
						(uint32_t)c->count;
			}
			if (top >= LAM__ARRAY_LEN(stack)) {
				rc = lam__error(LAM_ECORRUPT,
						"key/value tree too deep");
				goto out;
			}
			frame f = {.depth = rec.depth, .cut = UINT32_MAX};
			bool parent_ok = true;
			if (top > 0) {
				f.cut = stack[top - 1].cut;
				parent_ok = stack[top - 1].visible;
			}
			if (parent_ok && li <= f.cut) {
				if (cutl < f.cut)
					f.cut = cutl;
				f.visible = !(rec.flags & LAM__KV_DELETED);
			}
			if (f.visible) {
				lam__kv_ment e = {
					.layer = li,
					.rec = wrec,
					.hash = lam__kv_key_hash(rec.fold,
								 rec.len),
				};
				f.ment = (uint32_t)c->count;
				f.hash = e.hash;
				rc = push_ment(c, &cap, &e);
				if (rc < 0)
					goto out;
			}
			stack[top++] = f;
		} else {
			if (top == 0) {
				rc = lam__error(LAM_ECORRUPT,
						"value record without its key");
				goto out;
			}
			frame *k = &stack[top - 1];
			if (!k->visible || li > k->cut ||
			    (rec.flags & LAM__KV_DELETED))
				continue;
			lam__kv_ment e = {
				.layer = li,
				.rec = wrec,
				.skip = k->ment,
				.hash = lam__kv_value_hash(k->hash, rec.fold,
							   rec.len),
			};
			rc = push_ment(c, &cap, &e);
			if (rc < 0)
				goto out;
			c->ents[k->ment].nvalues++;
		}
	}
	while (top > 0) {
		top--;
		if (stack[top].visible)
			c->ents[stack[top].ment].skip = (uint32_t)c->count;
	}
out:
	lam__free(heap);
	return rc;
}

static int build_hash(lam__kv_chain *c)
{
	size_t cap = 16;
	while (cap < 2 * c->count)
		cap *= 2;
	c->slots = lam__calloc(cap, sizeof(*c->slots));
	if (c->slots == NULL)
		return lam__error(LAM_ENOMEM, "out of memory");
	c->hcap = cap;
	for (size_t i = 0; i < c->count; i++) {
		size_t j = (size_t)c->ents[i].hash & (cap - 1);
		while (c->slots[j] != 0)
			j = (j + 1) & (cap - 1);
		c->slots[j] = (uint32_t)i + 1;
	}
	return 0;
}

static int open_lfile(lfile **out, lam_store *s, const char *id)
{
	char name[48], what[48];
	lfile *lf;
	int rc;

	*out = NULL;
	snprintf(name, sizeof(name), "%s/kv", id);
	snprintf(what, sizeof(what), "layer %s", id);
	lf = lam__calloc(1, sizeof(*lf));
	if (lf == NULL)
		return lam__error(LAM_ENOMEM, "out of memory");
	lf->refcount = 1;
	rc = lam__kv_file_open(&lf->f, s->layersfd, name, what);
	if (rc == LAM_ENOTFOUND) {
		/* A layer without key/value changes. */
		lam__error_reset();
		rc = 0;
	}
	if (rc < 0) {
		lam__free(lf);
		return rc;
	}
	*out = lf;
	return 0;
}

static lam__kv_chain *cache_find(lam_store *s, const char *top)
{
	for (lam__kv_chain *c = cache; c; c = c->next_cached)
		if (c->store == s && strcmp(c->top, top) == 0)
			return c;
	return NULL;
}

static int chain_alloc(chain_priv **out, lam_store *s, const char *top,
		       size_t nlayers)
{
	chain_priv *p = lam__calloc(1, sizeof(*p));
	if (p == NULL)
		return lam__error(LAM_ENOMEM, "out of memory");
	p->c.refcount = 1;
	p->c.store = lam__store_ref(s);
	snprintf(p->c.top, sizeof(p->c.top), "%s", top);
	p->lfiles = lam__calloc(nlayers, sizeof(*p->lfiles));
	p->c.files = lam__calloc(nlayers, sizeof(*p->c.files));
	p->c.ids = lam__calloc(nlayers, sizeof(*p->c.ids));
	if (p->lfiles == NULL || p->c.files == NULL || p->c.ids == NULL) {
		chain_free(&p->c);
		return lam__error(LAM_ENOMEM, "out of memory");
	}
	*out = p;
	return 0;
}

/* Publish a built chain in the cache, or take the one another thread
 * published first. */
static lam__kv_chain *cache_publish(lam__kv_chain *c)
{
	pthread_mutex_lock(&cache_mutex);
	lam__kv_chain *other = cache_find(c->store, c->top);
	if (other) {
		other->refcount++;
		pthread_mutex_unlock(&cache_mutex);
		chain_free(c);
		return other;
	}
	c->next_cached = cache;
	cache = c;
	pthread_mutex_unlock(&cache_mutex);
	return c;
}

/* Derive the chain of top (whose parent chain is old) by merging top's
 * file over old's array. */
static int derive(lam__kv_chain **out, lam_store *s, const char *top,
		  lam__kv_chain *old)
{
	chain_priv *p, *op = (chain_priv *)old;
	lfile *lf;
	int rc;

	rc = open_lfile(&lf, s, top);
	if (rc < 0)
		return rc;
	rc = chain_alloc(&p, s, top, old->nlayers + 1);
	if (rc < 0) {
		lfile_unref(lf);
		return rc;
	}
	p->c.nlayers = old->nlayers + 1;
	p->lfiles[0] = lf;
	p->c.files[0] = lf->f;
	snprintf(p->c.ids[0], 33, "%s", top);
	for (size_t i = 0; i < old->nlayers; i++) {
		p->lfiles[i + 1] = op->lfiles[i];
		__atomic_add_fetch(&op->lfiles[i]->refcount, 1,
				   __ATOMIC_ACQ_REL);
		p->c.files[i + 1] = old->files[i];
		memcpy(p->c.ids[i + 1], old->ids[i], 33);
	}
	cursor curs[2] = {
		{.layer = 0, .f = &p->c.files[0], .end = lf->f.count},
		{.old = old, .end = old->count},
	};
	rc = merge(&p->c, curs, 2);
	if (rc == 0)
		rc = build_hash(&p->c);
	if (rc < 0) {
		chain_free(&p->c);
		return rc;
	}
	*out = cache_publish(&p->c);
	return 0;
}

int lam__kv_chain_get(lam__kv_chain **out, lam_store *s, const char *top_id)
{
	lam__kv_chain *c;
	chain_priv *p;
	char(*ids)[33] = NULL;
	size_t n = 0, cap = 0;
	int rc;

	*out = NULL;
	if (top_id == NULL || top_id[0] == '\0')
		return 0;
	pthread_mutex_lock(&cache_mutex);
	c = cache_find(s, top_id);
	if (c)
		c->refcount++;
	pthread_mutex_unlock(&cache_mutex);
	if (c) {
		*out = c;
		return 0;
	}

	/* The chain's ids, top first. */
	char id[33];
	snprintf(id, sizeof(id), "%s", top_id);
	while (id[0] != '\0') {
		lam__layer_rec rec;
		rc = lam__catalog_find(s, id, &rec);
		if (rc < 0) {
			lam__free(ids);
			if (rc == LAM_ENOTFOUND && n > 0)
				return lam__error(LAM_ECORRUPT,
						  "layer %s: parent %s is "
						  "missing",
						  ids[n - 1], id);
			return rc;
		}
		/* A parent chain already built: derive from it. */
		if (n == 1) {
			pthread_mutex_lock(&cache_mutex);
			lam__kv_chain *old = cache_find(s, id);
			if (old)
				old->refcount++;
			pthread_mutex_unlock(&cache_mutex);
			if (old) {
				lam__free(ids);
				rc = derive(out, s, top_id, old);
				lam__kv_chain_unref(old);
				return rc;
			}
		}
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 16;
			char(*nids)[33] =
				lam__realloc(ids, ncap * sizeof(*ids));
			if (nids == NULL) {
				lam__free(ids);
				return lam__error(LAM_ENOMEM, "out of memory");
			}
			ids = nids;
			cap = ncap;
		}
		memcpy(ids[n++], id, 33);
		if (n > 1000000) {
			lam__free(ids);
			return lam__error(LAM_ECORRUPT,
					  "layer %s: the chain loops", top_id);
		}
		snprintf(id, sizeof(id), "%s", rec.parent);
	}

	rc = chain_alloc(&p, s, top_id, n);
	if (rc < 0) {
		lam__free(ids);
		return rc;
	}
	p->c.nlayers = n;
	cursor *curs = lam__calloc(n, sizeof(*curs));
	if (curs == NULL) {
		rc = lam__error(LAM_ENOMEM, "out of memory");
		goto fail;
	}
	for (size_t i = 0; i < n; i++) {
		memcpy(p->c.ids[i], ids[i], 33);
		rc = open_lfile(&p->lfiles[i], s, ids[i]);
		if (rc < 0)
			goto fail;
		p->c.files[i] = p->lfiles[i]->f;
	}
	for (size_t i = 0; i < n; i++) {
		curs[i].layer = (uint32_t)i;
		curs[i].f = &p->c.files[i];
		curs[i].end = p->c.files[i].count;
	}
	rc = merge(&p->c, curs, n);
	if (rc == 0)
		rc = build_hash(&p->c);
	if (rc < 0)
		goto fail;
	lam__free(curs);
	lam__free(ids);
	*out = cache_publish(&p->c);
	return 0;
fail:
	lam__free(curs);
	lam__free(ids);
	chain_free(&p->c);
	return rc;
}
