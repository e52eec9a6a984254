/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "layer/internal.h"

int lam__layer_new(lam_layer **out, lam_store *s, const lam__layer_rec *rec)
{
	*out = NULL;
	lam_layer *l = lam__calloc(1, sizeof(*l));
	if (l == NULL)
		return lam__error(LAM_ENOMEM, "out of memory");
	l->refcount = 1;
	l->store = lam__store_ref(s);
	l->rec = *rec;
	pthread_mutex_init(&l->mutex, NULL);
	*out = l;
	return 0;
}

int lam__layer_open_id(lam_layer **out, lam_store *s, const char *id)
{
	*out = NULL;
	lam__layer_rec rec;
	int rc = lam__catalog_find(s, id, &rec);
	if (rc < 0)
		return rc;
	return lam__layer_new(out, s, &rec);
}

int lam_layer_open(lam_layer **out, lam_store *store, const char *name)
{
	lam__error_reset();
	if (out == NULL)
		return lam__error(LAM_EINVAL, "lam_layer_open: out is NULL");
	*out = NULL;
	if (store == NULL || name == NULL)
		return lam__error(LAM_EINVAL, "lam_layer_open: NULL argument");
	lam__layer_rec rec;
	int rc = lam__catalog_resolve(store, name, &rec);
	if (rc < 0)
		return rc;
	return lam__layer_new(out, store, &rec);
}

lam_layer *lam_layer_ref(lam_layer *layer)
{
	if (layer != NULL)
		__atomic_add_fetch(&layer->refcount, 1, __ATOMIC_RELAXED);
	return layer;
}

void lam_layer_free(lam_layer *layer)
{
	if (layer == NULL ||
	    __atomic_sub_fetch(&layer->refcount, 1, __ATOMIC_ACQ_REL))
		return;
	lam__index_close(&layer->index);
	pthread_mutex_destroy(&layer->mutex);
	lam__store_unref(layer->store);
	lam__free(layer);
}

int lam__layer_index(lam_layer *l, const lam__index **out)
{
	pthread_mutex_lock(&l->mutex);
	int rc = 0;
	if (!l->index_loaded) {
		char name[64];
		snprintf(name, sizeof(name), "%s/index", l->rec.id);
		rc = lam__index_open(&l->index, l->store->layersfd, name);
		if (rc < 0)
			lam__error_prefix(rc, "opening layer %s", l->rec.id);
		else
			l->index_loaded = true;
	}
	pthread_mutex_unlock(&l->mutex);
	*out = rc == 0 ? &l->index : NULL;
	return rc;
}

const char *lam_layer_id(const lam_layer *layer)
{
	return layer ? layer->rec.id : NULL;
}

const char *lam_layer_diff_digest(const lam_layer *layer)
{
	return layer ? layer->rec.diff : NULL;
}

const char *lam_layer_uuid(const lam_layer *layer)
{
	return layer ? layer->rec.uuid : NULL;
}

const char *lam_layer_parent_id(const lam_layer *layer)
{
	return layer && layer->rec.parent[0] ? layer->rec.parent : NULL;
}

unsigned int lam_layer_depth(const lam_layer *layer)
{
	return layer ? layer->rec.depth : 0;
}

uint64_t lam_layer_size(const lam_layer *layer)
{
	return layer ? layer->rec.size : 0;
}

uint64_t lam_layer_entry_count(const lam_layer *layer)
{
	return layer ? layer->rec.entries : 0;
}

int64_t lam_layer_created(const lam_layer *layer)
{
	return layer ? layer->rec.created : 0;
}

int lam_layer_parent(lam_layer **out, lam_layer *layer)
{
	lam__error_reset();
	if (out == NULL || layer == NULL)
		return lam__error(LAM_EINVAL,
				  "lam_layer_parent: NULL argument");
	*out = NULL;
	if (layer->rec.parent[0] == '\0')
		return 0;
	int rc = lam__layer_open_id(out, layer->store, layer->rec.parent);
	if (rc == LAM_ENOTFOUND)
		return lam__error(LAM_ECORRUPT,
				  "layer %s: parent %s is missing",
				  layer->rec.id, layer->rec.parent);
	return rc;
}
