/* SPDX-License-Identifier: MIT */
/*
 * The store: its folders, locks, the catalog of layer records, refs and the
 * content-object pool.
 *
 * On disk:
 *   format        "lamina-store 1" and settings, one per line
 *   lock          flock: held exclusively while publishing (layers, refs)
 *   gc.lock       flock: shared by every writer while it stages, exclusive
 *                 for gc and for clearing leftovers of killed writers
 *   refs          "name id" lines, sorted, replaced atomically
 *   layers/<id>/  a committed layer: meta, index, fs/ (an overlayfs lowerdir)
 *   objects/xx/   content objects, named by the rest of their XXH3-128
 *                 digest; a data-only overlayfs lower layer
 *   tmp/          staging folders of writers in progress
 */
#ifndef LAM_STORE_INTERNAL_H
#define LAM_STORE_INTERNAL_H

#include <pthread.h>

#include "util/internal.h"

#define LAM__STORE_FORMAT 1

/* The record of one committed layer, as its meta file holds it. */
typedef struct lam__layer_rec {
	char id[33];
	char diff[33];
	char uuid[37];
	char parent[33]; /* "" for a base layer */
	unsigned int depth;
	uint64_t size;
	uint64_t entries;
	int64_t created;
} lam__layer_rec;

struct lam_store {
	int refcount;
	pthread_mutex_t mutex;
	char *path;
	int rootfd;
	int layersfd;
	int objectsfd;
	int tmpfd;
	/* "trusted.overlay." as root, "user.overlay." otherwise: the
	 * namespace of the overlayfs xattrs written into layer folders. */
	char overlay_xattr[24];
	/* The catalog: every committed layer's record, sorted by id, reloaded
	 * when the layers folder changes. */
	lam__layer_rec *recs;
	size_t nrecs;
	struct timespec layers_mtime;
	ino_t layers_ino;
	bool catalog_valid;
	/* Merged chains that views hold, found again by top layer (not owned:
	 * a chain removes itself when its last user lets go). */
	struct lam__chain *chains;
	/* The refs file as last parsed, reused while it is unchanged. */
	struct lam__ref *refs_cache;
	size_t nrefs_cache;
	struct stat refs_st;
};

lam_store *lam__store_ref(lam_store *s);
void lam__store_unref(lam_store *s);

/* Locks: each returns an fd to pass to lam__unlock(), or a negative code. */
int lam__store_lock(lam_store *s);
int lam__store_gc_lock(lam_store *s, bool exclusive, bool wait);
void lam__unlock(int fd);

/* Remove ".tmp-*" files of killed atomic writes from a folder. */
void lam__clear_tmp_files(int dirfd);

/* Remove everything in tmp/; the caller holds the exclusive gc lock. */
void lam__store_clear_tmp(lam_store *s);

/* Make a staging folder under tmp/; *name_out receives its name (37 bytes).
 * The caller holds the shared gc lock. */
int lam__store_staging(lam_store *s, char name_out[37], int *fd_out);

/* Catalog access; the store mutex is taken inside. Returned copies are the
 * caller's. */
int lam__catalog_refresh(lam_store *s);
int lam__catalog_find(lam_store *s, const char *id, lam__layer_rec *out);
/* Copy the whole catalog out (sorted by id). */
int lam__catalog_snapshot(lam_store *s, lam__layer_rec **out, size_t *n);
int lam__catalog_resolve(lam_store *s, const char *name, lam__layer_rec *out);

/* Layer records. */
int lam__meta_format(lam__buf *out, const lam__layer_rec *r);
int lam__meta_parse(lam__layer_rec *r, const char *text, size_t len);
int lam__meta_read(lam_store *s, const char *id, lam__layer_rec *r);

/* Refs. */
typedef struct lam__ref {
	char *name;
	char id[33];
} lam__ref;
int lam__refs_load(lam_store *s, lam__ref **out, size_t *n);
/* The names of the refs that hold id (a malloc'd array of malloc'd
 * strings, in name order), from the cached refs. */
int lam__refs_naming(lam_store *s, const char *id, char ***out, size_t *n);
void lam__refs_free(lam__ref *refs, size_t n);

/* Content objects. */
typedef struct lam__objid {
	lam__digest digest;
	uint32_t variant; /* > 0 only after a hash collision */
} lam__objid;

/* Name of an object relative to objects/: "xx/<30 hex>[.n]". */
void lam__object_name(char out[48], const lam__objid *id);
/* Store the contents of fd (size bytes, read from offset 0) as an object,
 * sharing an existing identical one; *stored_out tells whether new bytes
 * were written. */
/* Store content held in memory. Safe to call from several threads at once
 * on one store (errors land in the calling thread's record); scratch is
 * LAM__OBJECT_SCRATCH bytes for comparing with an object of the same hash.
 * link_first: the caller expects a new object (its last ones were), so the
 * lookup before the write is skipped; an existing object is still found
 * (by the link's EEXIST) and compared, only at the cost of the write. */
#define LAM__OBJECT_SCRATCH (1u << 20)
int lam__object_put_buf(lam_store *s, const void *data, size_t len,
			char *scratch, bool link_first, lam__objid *out,
			bool *stored_out);
int lam__object_put_fd(lam_store *s, int fd, uint64_t size, lam__buf *work,
		       bool link_first, lam__objid *out, bool *stored_out);
int lam__object_open(lam_store *s, const lam__objid *id);
/* The same for content that comes from a reader (a tar stream): read()
 * must deliver exactly size bytes in all, *got < len only at the end; a
 * non-zero return from it is returned unchanged. */
typedef int (*lam__object_read_fn)(void *ctx, void *buf, size_t len,
				   size_t *got);
int lam__object_put_stream(lam_store *s, uint64_t size,
			   lam__object_read_fn read, void *ctx, lam__buf *work,
			   bool link_first, lam__objid *out, bool *stored_out);

/* The base layers of all stored views (implemented with the views): gc
 * keeps them and delete refuses them. */
int lam__view_bases(lam_store *s, char (**out)[33], size_t *n);

/* A set of object ids. */
typedef struct lam__objset {
	lam__objid *slots;
	bool *used;
	size_t cap, count;
} lam__objset;
/* 1 when added, 0 when already there, <0 on error. */
int lam__objset_add(lam__objset *s, const lam__objid *id);
bool lam__objset_has(const lam__objset *s, const lam__objid *id);
void lam__objset_free(lam__objset *s);

#endif
