/* SPDX-License-Identifier: MIT */
/*
 * Layers: the index format, import from folders, merging a chain, checkout
 * and the graph queries.
 *
 * A layer folder (layers/<id>/) holds:
 *   meta   the layer record (text, checksummed)
 *   index  every entry of the delta, sorted, fixed-size records plus a
 *          string table; read through mmap (format below)
 *   fs/    the delta in overlayfs lowerdir form: whiteouts are 0/0 character
 *          devices, opaque folders carry <ns>opaque=y, and regular files
 *          are metadata-only (<ns>metacopy) with <ns>redirect naming their
 *          content object in the store's objects/ folder, which serves as
 *          a data-only lower layer (lowerdir=fs::objects).
 */
#ifndef LAM_LAYER_INTERNAL_H
#define LAM_LAYER_INTERNAL_H

#include "store/internal.h"

enum {
	LAM__E_WHITEOUT = 1u << 0,
	LAM__E_OPAQUE = 1u << 1,
	LAM__E_OBJECT = 1u << 2,
};

/* One entry of a layer's delta. Strings point into the index mapping (or
 * into the importer's memory while a layer is built); they are not
 * NUL-terminated. The root folder is the entry with the empty path. */
typedef struct lam__entry {
	const char *path;
	const char *target; /* symlink target */
	const char *xattrs; /* blob: {u32 nlen, u32 vlen, name, value}… */
	uint32_t path_len;
	uint32_t target_len;
	uint32_t xattrs_len;
	uint32_t mode; /* st_mode, type bits included */
	uint32_t uid;
	uint32_t gid;
	uint32_t flags;
	uint32_t nlink;
	uint32_t link_group; /* 0, or a hard-link group number ≥ 1 */
	uint32_t mtime_nsec;
	int64_t mtime_sec;
	uint64_t size;
	uint64_t rdev;
	lam__objid obj; /* when flags has LAM__E_OBJECT */
} lam__entry;

/* A layer's index, mapped read-only. */
typedef struct lam__index {
	void *map;
	size_t map_len;
	uint64_t count;
	const unsigned char *records;
	const char *strtab;
	uint64_t strtab_len;
} lam__index;

int lam__index_write(int dirfd, const char *name, lam__entry *entries,
		     size_t n);
int lam__index_open(lam__index *idx, int dirfd, const char *name);
void lam__index_close(lam__index *idx);
void lam__index_get(const lam__index *idx, uint64_t i, lam__entry *out);
/* Binary search; returns the position or -1. */
int64_t lam__index_find(const lam__index *idx, const char *path, size_t len);
/* Digest over the canonical form of a sorted entry array. */
void lam__entries_digest(lam__digest *out, const lam__entry *e, size_t n);
int lam__entry_cmp(const lam__entry *a, const lam__entry *b);
/* Set an entry's xattrs on a file (fd, or the no-follow path lpath when fd
 * is -1). Refusals (security.* unprivileged, say) are logged, not errors:
 * the index stays authoritative. */
void lam__entry_set_xattrs(int fd, const char *lpath, const lam__entry *e);
/* A layer's diff digest with a key/value delta: files digest folded with
 * the key/value digest. The chain digest: parent's chain and diff. */
void lam__diff_fold(lam__digest *diff, const lam__digest *kv);
void lam__chain_digest(lam__digest *out, const char *parent_hex,
		       const lam__digest *diff);

/* Append one xattr to a blob (names must come in sorted order). */
int lam__xattr_append(lam__buf *blob, const char *name, uint32_t name_len,
		      const void *value, uint32_t value_len);
/* Walk an xattr blob. */
typedef struct lam__xattr {
	const char *name;
	const char *value;
	uint32_t name_len;
	uint32_t value_len;
} lam__xattr;
/* Returns 1 with *x filled and *off advanced, 0 at the end, <0 if the blob
 * is malformed. */
int lam__xattr_next(const char *blob, uint32_t len, uint32_t *off,
		    lam__xattr *x);

/* Import with hooks, for commits of views. file() sees each regular file
 * (open for reading) after its metadata is read; it may fill e->obj and
 * flags and set *handled, so that the content is not read again. */
typedef struct lam__import_hooks {
	int (*file)(void *ctx, int dirfd, const char *name, int fd,
		    lam__entry *e, bool *handled);
	/* Called with the staging layer folder before its digests are
	 * computed: may add files (the key/value delta) and give a digest to
	 * fold into the diff digest. */
	int (*stage)(void *ctx, int layerfd, lam__digest *extra, bool *has);
	/* Does the whiteout at path hide anything in the parent chain? */
	bool (*keep_whiteout)(void *ctx, const char *path, size_t len);
	void *ctx;
	/* lam__layer_build: per entry, non-zero when the caller staged it
	 * already (a regular file, with lam__stage_file_fd()) in
	 * stagefd/layer/fs, which the caller made, with folders 0700 as
	 * needed on the way; NULL when nothing is staged. */
	const unsigned char *staged;
} lam__import_hooks;

/* How staged entries get their metadata (shared by the layer builder and
 * the tar import's workers; safe to use from several threads). */
typedef struct lam__stager {
	lam_store *s;
	bool can_chown;
	bool owner_known; /* what a new entry below fs/ is owned by: */
	uint32_t uid, gid;
} lam__stager;

void lam__stager_init(lam__stager *st, lam_store *s, int fsfd);
/* Give the regular file fd (just created, empty) entry e's layer-folder
 * form: a metacopy stub redirecting into e's object, or an empty file;
 * then e's xattrs, owner, mode and times. */
int lam__stage_file_fd(const lam__stager *st, int fd, const lam__entry *e);
/* Open stagefd's layer/ and layer/fs/, made first with make. */
int lam__staging_layer(int stagefd, bool make, int *layerfd, int *fsfd);

/* ---- writers.c ---- */

/* Regular files up to this size are read whole and handed to the writers;
 * larger ones stream into their object in the calling thread. */
#define LAM__WRITERS_MAX (4u << 20)

/* The writers of an import (a tar stream, a folder): content objects and
 * staged layer-folder files, made by worker threads (or inline), reported
 * in order. */
typedef struct lam__writers lam__writers;

typedef struct lam__writer_result {
	size_t tag;	/* as submitted */
	lam__objid obj; /* the content's object, when has_obj */
	bool has_obj;	/* the job stored the content */
	bool stored;	/* ... as a new object */
	bool staged;	/* the file is in fs/ */
} lam__writer_result;

/* Called in the submitting thread, in submission order; <0 stops the
 * jobs with that error (its record set). */
typedef int (*lam__writer_cb)(void *ctx, const lam__writer_result *r);

/* Worker threads for this machine: 0 (inline) on one CPU. */
unsigned int lam__writers_default_threads(void);
/* fsfd: the staging layer folder's fs/ (borrowed) to stage files in, or
 * -1 to store contents only; threads 0 runs each job at submission. */
int lam__writers_start(lam__writers **out, lam_store *s, int fsfd,
		       unsigned int threads, lam__writer_cb cb, void *ctx);
/* Queue regular file e (its strings borrowed until its result is
 * reported) with its content: data, e->size bytes, owned by the jobs from
 * now (lam__free), or NULL when e->obj is stored already or e is empty.
 * Blocks while too much is in flight. Returns the first error of any
 * job so far. */
int lam__writers_submit(lam__writers *j, size_t tag, const lam__entry *e,
			void *data);
/* Wait for every job; the first error of any. */
int lam__writers_finish(lam__writers *j);
/* Stop the workers (jobs not yet run are skipped, finished ones are still
 * reported) and free. */
void lam__writers_free(lam__writers *j);

int lam__layer_import(lam_layer **out, lam_store *store, const char *src,
		      lam_layer *parent, const lam__import_hooks *hooks);

/* Build a layer from a finished entry array rather than a folder walk (a
 * tar import): entries sorted, every parent folder present (the root, ""
 * first), hard-link groups numbered in path order with nlink counted, and
 * regular files' objects already stored. The caller holds the shared gc
 * lock and made stagefd with lam__store_staging(); the layer folder is
 * staged there, then published. size is the layer's content bytes. */
int lam__layer_build(lam_layer **out, lam_store *s, int stagefd,
		     lam_layer *parent, const lam__entry *ents, size_t n,
		     uint64_t size, const lam__import_hooks *hooks);
/* Publish a staged layer folder (stagefd/layer) under rec->id, under the
 * store lock; a layer of that id with the same index is shared. */
int lam__layer_publish(lam_store *s, int stagefd, const lam__layer_rec *rec,
		       const char *parent, bool *existed);
/* Take back objects a failed import wrote, when no writer is staging. */
void lam__objects_drop(lam_store *s, const lam__objid *ids, size_t n);

struct lam_layer {
	int refcount;
	lam_store *store;
	lam__layer_rec rec;
	pthread_mutex_t mutex;
	bool index_loaded;
	lam__index index;
};

int lam__layer_new(lam_layer **out, lam_store *s, const lam__layer_rec *rec);
/* The layer's index, loaded on first use. */
int lam__layer_index(lam_layer *l, const lam__index **out);
int lam__layer_open_id(lam_layer **out, lam_store *s, const char *id);

/* A merged chain: the visible entries of a stack of layers. */
typedef struct lam__merged_ent {
	uint32_t layer; /* position in the chain, 0 = top */
	uint64_t index; /* entry number in that layer's index */
} lam__merged_ent;

typedef struct lam__merged {
	lam_layer **chain; /* top first, each referenced */
	size_t depth;
	lam__merged_ent *ents; /* sorted by path */
	size_t count;
} lam__merged;

int lam__merged_build(lam__merged *m, lam_layer *top);
int lam__checkout_merged(lam__merged *m, const char *dest, bool chown);
void lam__merged_free(lam__merged *m);
void lam__merged_get(const lam__merged *m, size_t i, lam__entry *out);

/* A merged chain with its lookup tables, shared by every view over the
 * same top layer of one store (a weak cache in the store: it lives while
 * some view holds it). */
typedef struct lam__chain {
	int refcount;
	lam_store *store;
	char top[33];
	lam__merged m;
	uint32_t *hash; /* open addressing: merged index + 1, 0 = empty */
	size_t hcap;
	uint32_t *skip;	 /* per entry: the index after its subtree */
	uint32_t *links; /* merged indices of hard-linked entries, sorted by
			     (layer, link_group, path) */
	size_t nlinks;
	struct lam__chain *next_cached;
} lam__chain;

int lam__chain_get(lam__chain **out, lam_layer *top);
lam__chain *lam__chain_ref(lam__chain *c);
void lam__chain_unref(lam__chain *c);
/* The merged index of a path ("" is the root), or -1. */
int64_t lam__chain_find(const lam__chain *c, const char *path, size_t len);
void lam__chain_entry(const lam__chain *c, size_t i, lam__entry *out);
/* The layer an entry comes from. */
lam_layer *lam__chain_layer(const lam__chain *c, size_t i);
/* Direct children of entry i (or of the root when i < 0 and the chain has
 * no root entry): call first/next until it returns -1. */
int64_t lam__chain_first_child(const lam__chain *c, int64_t i);
int64_t lam__chain_next_child(const lam__chain *c, int64_t parent,
			      int64_t child);
/* The visible members of entry i's hard-link group (i itself included):
 * *first and *count index c->links. */
void lam__chain_link_members(const lam__chain *c, size_t i, size_t *first,
			     size_t *count);

#endif
