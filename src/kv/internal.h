/* SPDX-License-Identifier: MIT */
/*
 * The key/value namespace: registry-style keys and typed values in every
 * layer and view.
 *
 * On disk:
 *   layers/<id>/kv   the layer's delta: one immutable, checksummed file of
 *                    records sorted by folded path (delta.c has the format)
 *   views/<uuid>/kv.log
 *                    the view's changes: an append-only log of checksummed
 *                    records, grouped into units that commit whole; its
 *                    header names the base layer it applies to (log.c)
 *
 * In memory, a view's namespace (struct lam__kv_view) is the merged chain
 * of its base (merge.c: one sorted array of the visible records of every
 * layer, and a hash table over it, shared by every user of the same top
 * layer) under the upper (upper.c: a tree of the keys and values the view
 * changed).
 *
 * Every delta, on disk and in memory, is a closed tree: when it holds a
 * record for a key or value, it holds a key record for every ancestor too
 * (a "pass-through" record when the ancestor itself did not change). A
 * key's values follow its record, then its subkeys, each with its subtree:
 * the separator sorts before every other byte.
 */
#ifndef LAM_KV_INTERNAL_H
#define LAM_KV_INTERNAL_H

#include "view/internal.h"

/* ---- the view integration (called from src/view and src/store) ---- */

struct lam__kv_view;
void lam__kv_view_free(struct lam__kv_view *kv);
int lam__kv_stage(lam_view *view, int layer_dirfd, lam__digest *digest,
		  bool *has_changes);
int lam__kv_committed(lam_view *view);
int lam__kv_reset(lam_view *view);
int lam__kv_layer_digest(lam_store *s, const char *layer_id,
			 lam__digest *digest, bool *present);
/* Write into layer_dirfd the delta ("kv") that takes onto's merged tree
 * (NULL: the empty tree) to top's, as lam__kv_stage() would write it; with
 * no difference, no file and *has false (squash.c). */
int lam__kv_squash(lam_store *s, lam_layer *top, lam_layer *onto,
		   int layer_dirfd, lam__digest *digest, bool *has);

/* ---- names (name.c) ---- */

/* Check UTF-8 (no NUL); -1 with *bad_at on failure. *units16 receives the
 * length in UTF-16 code units. */
int lam__kv_utf8_check(const char *s, size_t len, size_t *bad_at,
		       size_t *units16);
size_t lam__kv_utf8_put(char *out, uint32_t cp);
/* Decode the character at s[i]: its length, or 0 when malformed. */
size_t lam__kv_utf8_next(const char *s, size_t len, size_t i, uint32_t *cp);
/* Fold len bytes of valid UTF-8 into out (exactly len bytes). */
void lam__kv_fold(char *out, const char *s, size_t len);
/* Compare folded paths, '\' first; and folded value names, bytewise. */
int lam__kv_path_cmp(const char *a, size_t alen, const char *b, size_t blen);
int lam__kv_name_cmp(const char *a, size_t alen, const char *b, size_t blen);
uint64_t lam__kv_key_hash(const char *fold, size_t len);
uint64_t lam__kv_value_hash(uint64_t key_hash, const char *fold, size_t len);
/* LAM_EBADNAME / LAM_ENAMETOOLONG with a message, or 0. */
int lam__kv_name_check(const char *s, size_t len, bool value);

/* A checked key path: its spelling and its folded form (same length, one
 * allocation). */
typedef struct lam__kv_path {
	char *disp;
	char *fold;
	size_t len;
	unsigned int depth; /* names in the path; 0 for the root */
	uint64_t hash;	    /* lam__kv_key_hash of fold */
} lam__kv_path;

/* Join base (an existing key's spelling, may be empty) and rel, checking
 * every name of rel and the depth. */
int lam__kv_path_parse(lam__kv_path *out, const char *base, size_t base_len,
		       const char *rel, size_t rel_len);
void lam__kv_path_free(lam__kv_path *p);

/* ---- values (value.c) ---- */

bool lam__kv_type_known(uint32_t type);
/* Check data against its type: LAM_EINVAL with a message naming the value
 * (what) on failure. */
int lam__kv_value_check(uint32_t type, const void *data, size_t size,
			const char *what);
/* UTF-16LE to UTF-8 and back. utf16_to_utf8 appends to b and fails on
 * unpaired surrogates or NUL characters (-1, *bad_at in bytes). */
int lam__kv_utf16_to_utf8(lam__buf *b, const unsigned char *s, size_t len,
			  size_t *bad_at);
int lam__kv_utf8_to_utf16(lam__buf *b, const char *s, size_t len);

/* ---- an open-addressing hash table of pointers (map.c) ---- */

typedef struct lam__kv_map {
	void **items;
	uint64_t *hashes;
	size_t cap; /* a power of two, or 0 */
	size_t count;
} lam__kv_map;

typedef bool (*lam__kv_map_eq)(const void *item, const void *key);
void *lam__kv_map_find(const lam__kv_map *m, uint64_t hash, lam__kv_map_eq eq,
		       const void *key);
int lam__kv_map_put(lam__kv_map *m, uint64_t hash, void *item);
void lam__kv_map_del(lam__kv_map *m, uint64_t hash, const void *item);
void lam__kv_map_free(lam__kv_map *m);

/* ---- layer delta files (delta.c) ---- */

enum {
	LAM__KV_KEY = 1,
	LAM__KV_VALUE = 2,
};

enum {
	LAM__KV_DELETED = 1u << 0, /* a tombstone */
	LAM__KV_OPAQUE = 1u << 1,  /* key: hides everything below it */
};

/* One record of a delta, decoded. Strings point into the mapping, where
 * each is followed by a NUL, or into the writer's memory. */
typedef struct lam__kv_rec {
	uint8_t kind;
	uint8_t flags;
	uint32_t type;	  /* value: its type */
	uint32_t depth;	  /* key: names in its path */
	uint32_t key;	  /* value: index of its key's record */
	uint32_t nvalues; /* key: value records right after it */
	uint32_t skip;	  /* key: the index after its subtree */
	int64_t mtime;	  /* key: last write, ns since the epoch; 0 =
			      unchanged (a pass-through record) */
	const char *disp; /* key: full path; value: name */
	const char *fold; /* the same, folded */
	uint32_t len;
	const void *data; /* value */
	uint32_t size;
} lam__kv_rec;

typedef struct lam__kv_file {
	void *map;
	size_t map_len;
	uint64_t count;
	const unsigned char *recs;
	const char *data;
	uint64_t data_len;
} lam__kv_file;

/* Order of two records: by folded key path, a key before its values, values
 * by folded name. For values, kpath/klen is their key's folded path. */
int lam__kv_rec_cmp(const char *apath, uint32_t alen, const lam__kv_rec *a,
		    const char *bpath, uint32_t blen, const lam__kv_rec *b);

/* Write a delta: recs sorted and closed; key, nvalues and skip are
 * computed here. *digest receives the digest of the canonical delta. */
int lam__kv_file_write(int dirfd, const char *name, lam__kv_rec *recs, size_t n,
		       lam__digest *digest);
/* Open and verify a delta. A missing file gives LAM_ENOTFOUND with no
 * message of interest; what ("layer 3f2a…") starts every other message. */
int lam__kv_file_open(lam__kv_file *f, int dirfd, const char *name,
		      const char *what);
void lam__kv_file_close(lam__kv_file *f);
void lam__kv_file_get(const lam__kv_file *f, uint64_t i, lam__kv_rec *out);
void lam__kv_file_digest(const lam__kv_file *f, lam__digest *out);

/* Digest of a canonical delta, record by record. */
typedef struct lam__kv_digester {
	lam__hasher h;
} lam__kv_digester;
void lam__kv_digest_begin(lam__kv_digester *d);
void lam__kv_digest_rec(lam__kv_digester *d, const lam__kv_rec *r);
void lam__kv_digest_end(lam__kv_digester *d, lam__digest *out);

/* ---- merged chains (merge.c) ---- */

/* One visible record of a merged chain. */
typedef struct lam__kv_ment {
	uint32_t layer;	  /* position in the chain, 0 = top */
	uint32_t rec;	  /* record number in that layer's file */
	uint32_t skip;	  /* key: merged index after its subtree; value: merged
			   index of its key */
	uint32_t nvalues; /* key: visible values right after it */
	uint64_t hash;	  /* key: key hash; value: value hash */
} lam__kv_ment;

typedef struct lam__kv_chain {
	int refcount;
	lam_store *store;
	char top[33];
	size_t nlayers;
	lam__kv_file *files; /* top first; map NULL for a layer with no kv */
	char (*ids)[33];
	lam__kv_ment *ents; /* sorted; ents[0] is the root when count > 0 */
	size_t count;
	uint32_t *slots; /* merged index + 1, 0 = empty */
	size_t hcap;
	struct lam__kv_chain *next_cached;
} lam__kv_chain;

/* The merged chain of top_id's chain (shared; unref when done). With a
 * NULL or empty top_id, *out is NULL. */
int lam__kv_chain_get(lam__kv_chain **out, lam_store *s, const char *top_id);
lam__kv_chain *lam__kv_chain_ref(lam__kv_chain *c);
void lam__kv_chain_unref(lam__kv_chain *c);
int64_t lam__kv_chain_find_key(const lam__kv_chain *c, const char *fold,
			       size_t len, uint64_t hash);
int64_t lam__kv_chain_find_value(const lam__kv_chain *c, int64_t key,
				 const char *fold, size_t len, uint64_t hash);
void lam__kv_chain_rec(const lam__kv_chain *c, size_t i, lam__kv_rec *out);
/* A value's key path (folded) for a merged value entry. */

/* The last-write time of the merged lower key i (api.c). */
int64_t lam__kv_lower_mtime(const lam__kv_chain *c, int64_t i);

/* ---- the upper: a view's changes in memory (upper.c) ---- */

enum {
	LAM__U_EXISTS = 1u << 0,   /* the key exists (else a tombstone) */
	LAM__U_OPAQUE = 1u << 1,   /* created over a deleted lower key */
	LAM__U_CHANGED = 1u << 2,  /* created or written here: has mtime */
	LAM__U_VOLATILE = 1u << 3, /* lives in memory only */
	LAM__U_CUT = 1u << 4,	   /* lower layers hidden for this key */
};

typedef struct lam__kv_uval {
	uint64_t hash; /* lam__kv_value_hash(key hash, fold) */
	char *name;    /* name and fold in one allocation */
	char *fold;
	uint32_t len;
	uint32_t type;
	uint32_t size;
	bool deleted; /* a tombstone */
	void *data;
} lam__kv_uval;

typedef struct lam__kv_ukey {
	uint64_t hash;
	char *path; /* path and fold in one allocation */
	char *fold;
	uint32_t len;
	uint32_t name_off; /* where the last name starts */
	uint32_t depth;
	uint32_t flags;
	int64_t mtime;
	struct lam__kv_ukey *parent;
	struct lam__kv_ukey **kids;
	size_t nkids, capkids;
	bool kids_sorted;
	lam__kv_map vmap;
	lam__kv_uval **vals;
	size_t nvals, capvals;
	bool vals_sorted;
} lam__kv_ukey;

typedef struct lam__kv_upper {
	lam__kv_map keys;
	lam__kv_ukey *root;
	size_t ncut;	   /* keys with LAM__U_CUT */
	uint64_t nchanged; /* durable keys with LAM__U_CHANGED or tombstones */
	uint64_t value_bytes;
} lam__kv_upper;

void lam__kv_upper_free(lam__kv_upper *u);
lam__kv_ukey *lam__kv_upper_find(const lam__kv_upper *u, const char *fold,
				 size_t len, uint64_t hash);
lam__kv_uval *lam__kv_ukey_find_value(const lam__kv_ukey *k, const char *fold,
				      size_t len, uint64_t hash);
/* Sorted views of a key's children and values (sorted on demand). */
void lam__kv_ukey_sort(lam__kv_ukey *k);
/* Make the upper node of an existing key and of its ancestors, as
 * pass-through nodes: disp names come from the caller (the merged
 * spelling). Returns the node. */
int lam__kv_upper_node(lam__kv_upper *u, const lam__kv_path *p,
		       lam__kv_ukey **out);
/* Remove a node and its subtree; prune pass-through ancestors that no
 * longer hold anything. */
void lam__kv_upper_remove(lam__kv_upper *u, lam__kv_ukey *k);
/* Drop a node's children and values (for a tombstone). */
void lam__kv_upper_clear(lam__kv_upper *u, lam__kv_ukey *k);
int lam__kv_ukey_set_value(lam__kv_upper *u, lam__kv_ukey *k, const char *name,
			   const char *fold, uint32_t len, uint64_t hash,
			   uint32_t type, const void *data, uint32_t size,
			   bool deleted);
void lam__kv_ukey_drop_value(lam__kv_upper *u, lam__kv_ukey *k,
			     lam__kv_uval *v);
void lam__kv_upper_set_flags(lam__kv_upper *u, lam__kv_ukey *k, uint32_t flags);
/* Whether the node holds nothing of its own: no change, no values, no
 * children. */
bool lam__kv_ukey_is_empty(const lam__kv_ukey *k);

/* ---- the view's namespace (kv.c) ---- */

typedef struct lam__kv_note {
	lam_change_kind kind;
	char *key;  /* the key's spelling, then its folded form */
	char *fold; /* points into key's allocation */
	size_t len;
	char *value; /* NULL for a key change */
} lam__kv_note;

struct lam__kv_view {
	int refcount;
	lam_store *store;
	lam_view *view; /* NULL once the view handle is freed */
	char base[33];	/* "" for a view over nothing */
	lam__kv_chain *lower;
	lam__kv_upper up;
	int dirfd;  /* the view's folder, or -1 */
	int logfd;  /* the log, or -1 */
	int lockfd; /* kv.lock, held by the one writer of the log */
	bool readonly;
	bool stale;	   /* reload from disk before the next use */
	bool replaying;	   /* applying the log: no checks of caps, no logging */
	uint64_t log_end;  /* bytes of valid log */
	uint64_t log_live; /* bytes the last rewrite left */
	uint64_t log_seed; /* checksum of the last record (chaining) */
	uint64_t version;  /* bumped by every change */
	/* The open transaction (or the one change being made). */
	bool in_txn;
	lam__buf pending;
	lam__buf vsnap; /* the volatile keys when the transaction began */
	lam__kv_note *notes;
	size_t nnotes, capnotes;
	/* Options. */
	bool nosync;
	uint64_t max_value_size;
	uint64_t max_keys;
	uint64_t max_value_bytes;
	struct lam_kv_watch *watches;
};

typedef struct lam__kv_view lam__kv;

struct lam_key {
	lam__kv *kv;
	lam__kv_path path;
	const char *name;
	/* The key resolved, while the namespace has not changed since. */
	uint64_t cached_version;
	const lam__kv_chain *cached_chain;
	bool cached;
	struct lam__kv_res {
		bool exists;
		struct lam__kv_ukey *up; /* its upper node, or NULL */
		int64_t low;	  /* its merged lower entry, or -1 when none or
				hidden */
		const char *disp; /* its spelling (full path) */
		uint32_t disp_len;
	} cache;
};

/* Open a namespace: over top_id's chain, with the log of the view folder
 * dirfd (or none with -1). Used by views, by read-only layer keys and by
 * tests. */
int lam__kv_open(lam__kv **out, lam_store *s, const char *top_id, int dirfd,
		 bool readonly);
lam__kv *lam__kv_ref(lam__kv *kv);
void lam__kv_unref(lam__kv *kv);
/* The namespace of a view, loaded on first use. */
int lam__kv_of_view(lam__kv **out, lam_view *view);
/* Reload a namespace that a failure left stale. */
int lam__kv_ready(lam__kv *kv);

/* Resolution of a key in the merged namespace (struct lam__kv_res, in
 * struct lam_key above). */
typedef struct lam__kv_res lam__kv_res;

void lam__kv_resolve(lam__kv *kv, const char *fold, size_t len, uint64_t hash,
		     lam__kv_res *out);

/* Changes; each checks, applies, logs (or queues in the transaction) and
 * notifies. mtime is the time to record (ns). */
int lam__kv_create_key(lam__kv *kv, const lam__kv_path *p, bool vol,
		       int *created, int64_t mtime);
int lam__kv_delete_key(lam__kv *kv, const lam__kv_path *p, bool tree,
		       int64_t mtime);
int lam__kv_set(lam__kv *kv, const lam__kv_path *p, const char *name,
		size_t name_len, uint32_t type, const void *data, size_t size,
		int64_t mtime);
int lam__kv_unset(lam__kv *kv, const lam__kv_path *p, const char *name,
		  size_t name_len, int64_t mtime);
int64_t lam__kv_now(void);

int lam__kv_begin(lam__kv *kv);
int lam__kv_commit(lam__kv *kv);
int lam__kv_abort(lam__kv *kv);
/* Check a name and give its fold (same length) in a new buffer. */
int lam__kv_value_name(const char *name, char **fold_out, size_t *len_out);

/* ---- the log (log.c) ---- */

enum {
	LAM__KV_OP_CREATE = 1,	  /* path, flags u32, mtime */
	LAM__KV_OP_DELETE = 2,	  /* path, tree u32, mtime */
	LAM__KV_OP_SET = 3,	  /* path, name, type, data, mtime */
	LAM__KV_OP_UNSET = 4,	  /* path, name, mtime */
	LAM__KV_OP_RAW_KEY = 5,	  /* path, flags, mtime: snapshot */
	LAM__KV_OP_RAW_VALUE = 6, /* path, name, type, deleted, data */
};

/* Encode one change into kv->pending. */
int lam__kv_log_op(lam__kv *kv, uint8_t op, const lam__kv_path *p,
		   const char *name, size_t name_len, uint32_t arg,
		   const void *data, size_t size, int64_t mtime);
/* Write kv->pending to the log as one unit (and sync). */
int lam__kv_log_flush_unit(lam__kv *kv);
/* Open (creating when writable) and replay the log. */
int lam__kv_log_load(lam__kv *kv);
/* Replace the log with a snapshot of the upper, for base (atomically). */
int lam__kv_log_rewrite(lam__kv *kv, const char *base);
int lam__kv_log_sync(lam__kv *kv);
/* Encode the volatile keys (or, with durable, the durable part of the
 * upper) as raw records, and apply such records. */
int lam__kv_volatile_snapshot(lam__kv *kv, lam__buf *out);
int lam__kv_raw_apply(lam__kv *kv, const char *data, size_t len,
		      bool volatile_restore);

/* ---- staging and digests (stage.c) ---- */

/* Turn the durable part of the upper into sorted closed records. Strings
 * point into the upper. */
int lam__kv_upper_records(lam__kv_upper *u, lam__kv_rec **out, size_t *n);

/* ---- diffs (diff.c) ---- */

/* Diff two layers' key trees by id (NULL or "": the empty tree). */
int lam__kv_diff_ids(lam_store *s, const char *from, const char *to,
		     lam_kv_change_cb cb, void *userdata);
/* The same in lam_layer_diff()'s single-string form: "Key\Sub" for a key,
 * "Key\Sub:Name" for a value. */
int lam__kv_diff_paths(lam_store *s, const char *from, const char *to,
		       lam_change_cb cb, void *userdata);

/* ---- watches (watch.c) ---- */

void lam__kv_notify(lam__kv *kv, const lam__kv_note *notes, size_t n);
int lam__kv_note_add(lam__kv *kv, lam_change_kind kind, const char *key,
		     size_t key_len, const char *value, size_t value_len);
void lam__kv_notes_clear(lam__kv *kv);

/* ---- iteration helpers (iter.c) ---- */

/* Walk the merged children (subkeys) or values of a key, upper and lower
 * together, in the stable order. */
typedef struct lam__kv_walk {
	lam__kv *kv;
	char *fold; /* the key's folded path (owned) */
	size_t len;
	uint64_t hash;
	uint64_t version;
	bool values;
	bool gone;	      /* the key does not exist (any more) */
	lam__kv_chain *chain; /* the lower chain walked (referenced) */
	lam__kv_ukey *up;     /* the key's upper node, or NULL */
	int64_t low_next;     /* next lower child/value, or -1 */
	uint32_t low_end;
	size_t up_pos;
	/* The last name returned (folded), to find the place again after a
	 * change: a pointer into the lower chain, or a copy in last_buf. */
	const char *last;
	uint32_t last_len;
	lam__buf last_buf;
	bool started;
} lam__kv_walk;

typedef struct lam__kv_item {
	const char *disp; /* subkey: full path; value: name; NUL-terminated */
	uint32_t len;
	uint32_t name_off; /* subkey: where its own name starts */
	uint32_t type;
	const void *data;
	uint32_t size;
	bool upper;
	bool volatile_key;
} lam__kv_item;

/* The current value of a resolved key, upper or lower. */
bool lam__kv_lookup_value(lam__kv *kv, const lam__kv_res *res, const char *fold,
			  size_t len, uint64_t vhash, lam__kv_item *it);

int lam__kv_walk_start(lam__kv_walk *w, lam__kv *kv, const lam__kv_path *p,
		       bool values);
/* 1 with *it filled, 0 at the end. */
int lam__kv_walk_next(lam__kv_walk *w, lam__kv_item *it);
void lam__kv_walk_free(lam__kv_walk *w);

#endif
