/* SPDX-License-Identifier: MIT */
/**
 * @file lamina/store.h
 * @brief lam_store: a folder that holds layers, refs and content objects.
 *
 * A store is one folder on a local filesystem. It holds immutable layers
 * (each a folder that kernel overlayfs can use as a lower layer, plus a
 * compact sorted index), content objects shared between layers (identical
 * file contents are stored once), and refs: names that point at layers.
 *
 * Lifetime: lam_store_open() returns a handle that the caller frees with
 * lam_store_free(). Layer handles hold a counted reference to their store,
 * so handles may be freed in any order.
 *
 * Crash safety: every change is published by one atomic rename after its
 * data is synced, so a process killed at any point leaves the store
 * openable with each change either fully done or not done at all.
 *
 * Concurrency: several processes may open one store at once. Writers take
 * file locks around the moments they publish; readers only read immutable
 * files. Refs change with compare-and-swap.
 *
 * Threading: a store handle is internally locked and may be shared between
 * threads. Handles are not usable in a child after fork().
 */
#ifndef LAMINA_STORE_H
#define LAMINA_STORE_H

#include <lamina/common.h>
#include <lamina/error.h>

#ifdef __cplusplus
extern "C" {
#endif

/** An open store. @since 0.1 */
typedef struct lam_store lam_store;

/** Flags for lam_store_options.flags. @since 0.1 */
enum lam_store_flags {
	/** Create the store folder (and its format file) if it is missing. */
	LAM_STORE_CREATE = 1u << 0,
};

#define LAM_STORE_OPTIONS_VERSION 1

/** Options for lam_store_open(). @since 0.1 */
typedef struct lam_store_options {
	unsigned int version; /**< LAM_STORE_OPTIONS_VERSION */
	unsigned int flags;   /**< lam_store_flags */
} lam_store_options;

/** Initialise a lam_store_options. @since 0.1 */
/* clang-format off */
#define LAM_STORE_OPTIONS_INIT {LAM_STORE_OPTIONS_VERSION, 0}
/* clang-format on */

/**
 * Open a store folder, creating it first when LAM_STORE_CREATE is given.
 *
 * Checks the store's format file and refuses a format newer than this
 * library understands. Leftovers of writers that were killed (staging
 * folders no process holds) are removed.
 *
 * @param[out] out the new handle; the caller owns it and frees it with
 *             lam_store_free(). NULL on failure.
 * @param[in] path the store folder.
 * @param[in] options NULL for the defaults.
 * @return 0, or LAM_ENOTFOUND (no store there and no LAM_STORE_CREATE),
 *         LAM_EVERSION (a newer format), LAM_ECORRUPT (format file damaged,
 *         or the folder is something else), LAM_EACCES, LAM_EIO, LAM_ENOMEM,
 *         LAM_EINVAL.
 * @since 0.1
 */
LAM_API int lam_store_open(lam_store **out, const char *path,
			   const lam_store_options *options);

/**
 * Release a store handle. Accepts NULL. Layers opened from it stay usable
 * until they are freed too.
 * @since 0.1
 */
LAM_API void lam_store_free(lam_store *store);

/**
 * The store's folder, as given to lam_store_open().
 * @return borrowed, valid while @p store lives.
 * @since 0.1
 */
LAM_API const char *lam_store_path(const lam_store *store);

/** Flags for lam_store_check(). @since 0.1 */
enum lam_check_flags {
	/** Skip re-hashing object contents (sizes and presence still checked). */
	LAM_CHECK_QUICK = 1u << 0,
};

/**
 * Called once per problem that lam_store_check() finds.
 * @param[in] what the thing at fault ("layer 3f2a…", "object 9c1e…",
 *            "ref base"), borrowed for the call.
 * @param[in] problem what is wrong with it, borrowed for the call.
 * @param[in] userdata as given.
 * @return 0 to go on, non-zero to stop the check (returned unchanged).
 * @since 0.1
 */
typedef int (*lam_store_problem_cb)(const char *what, const char *problem,
				    void *userdata);

/**
 * Verify the whole store: the format file, every layer record and index
 * (checksums, digests recomputed, parents present), every layer folder
 * against its index, every object a layer uses (present, right size, right
 * content hash), and every ref.
 *
 * @param[in] store the store.
 * @param[in] flags lam_check_flags.
 * @param[in] cb called for each problem; may be NULL.
 * @param[in] userdata passed to @p cb.
 * @param[out] problems_out the number of problems found; may be NULL.
 * @return 0 when the check ran (even if it found problems: see
 *         @p problems_out), a non-zero value returned by @p cb, or LAM_EIO,
 *         LAM_ENOMEM.
 * @since 0.1
 */
LAM_API int lam_store_check(lam_store *store, unsigned int flags,
			    lam_store_problem_cb cb, void *userdata,
			    size_t *problems_out);

/** What lam_store_gc() removed. @since 0.1 */
typedef struct lam_gc_stats {
	uint64_t layers_removed;  /**< layers no ref reaches */
	uint64_t objects_removed; /**< content objects no layer uses */
	uint64_t bytes_freed;	  /**< bytes of those objects */
} lam_gc_stats;

/**
 * Remove every layer that no ref (and no open view) reaches, then every
 * content object that no remaining layer uses, the OCI import's cache
 * entries for layers that are gone, and leftovers of killed writers. Safe
 * against writers in other processes.
 *
 * @param[in] store the store.
 * @param[out] out what was removed; may be NULL.
 * @return 0, LAM_EIO, LAM_ENOMEM.
 * @since 0.1
 */
LAM_API int lam_store_gc(lam_store *store, lam_gc_stats *out);

/** Counts and sizes of a store. @since 0.1 */
typedef struct lam_store_stats {
	uint64_t layers;	/**< committed layers */
	uint64_t refs;		/**< refs */
	uint64_t entries;	/**< index entries, summed over all layers */
	uint64_t files;		/**< regular files, summed over all layers */
	uint64_t objects;	/**< content objects stored */
	uint64_t logical_bytes; /**< file bytes as the layers hold them */
	uint64_t stored_bytes;	/**< file bytes actually stored (objects) */
} lam_store_stats;

/**
 * Count what the store holds. logical_bytes over stored_bytes is the
 * saving from content sharing.
 * @param[in] store the store.
 * @param[out] out filled on success.
 * @return 0, LAM_EIO, LAM_ENOMEM, LAM_ECORRUPT.
 * @since 0.1
 */
LAM_API int lam_store_stats_get(lam_store *store, lam_store_stats *out);

/**
 * Write the layer graph as Graphviz DOT: one node per layer, labelled with
 * its short chain digest, its size and the refs that point at it, and one
 * edge from each layer to its parent.
 * @param[out] out a NUL-terminated string; the caller frees it with
 *             lam_free(). NULL on failure.
 * @param[in] store the store.
 * @return 0, LAM_EIO, LAM_ENOMEM, LAM_ECORRUPT.
 * @since 0.1
 */
LAM_API int lam_store_graph_dot(char **out, lam_store *store);

/**
 * Check whether @p name is a valid ref name: 1 to 255 bytes of letters,
 * digits and `. _ - + : @ /`, not starting with `/` or `.`, with no empty,
 * `.` or `..` component.
 * @return 0 when valid, LAM_EBADNAME (with a message saying why).
 * @since 0.1
 */
LAM_API int lam_store_ref_check_name(const char *name);

/**
 * Point a ref at a layer, with compare-and-swap.
 *
 * @param[in] store the store.
 * @param[in] name the ref name (see lam_store_ref_check_name()).
 * @param[in] layer_id the layer's full chain digest (hex).
 * @param[in] expected NULL to set unconditionally; "" to require that the
 *            ref does not exist yet; otherwise the chain digest the ref
 *            must still hold.
 * @return 0, LAM_EBADNAME, LAM_ENOTFOUND (no such layer), LAM_ECONFLICT
 *         (the ref does not hold @p expected), LAM_EIO, LAM_ENOMEM.
 * @since 0.1
 */
LAM_API int lam_store_ref_set(lam_store *store, const char *name,
			      const char *layer_id, const char *expected);

/**
 * Read a ref.
 * @param[out] out the chain digest it holds, as hex; the caller frees it
 *             with lam_free(). NULL on failure.
 * @param[in] store the store.
 * @param[in] name the ref name.
 * @return 0, LAM_ENOTFOUND, LAM_EBADNAME, LAM_EIO, LAM_ECORRUPT, LAM_ENOMEM.
 * @since 0.1
 */
LAM_API int lam_store_ref_get(char **out, lam_store *store, const char *name);

/**
 * Delete a ref, with compare-and-swap.
 * @param[in] store the store.
 * @param[in] name the ref name.
 * @param[in] expected NULL, or the chain digest the ref must still hold.
 * @return 0, LAM_ENOTFOUND, LAM_ECONFLICT, LAM_EBADNAME, LAM_EIO.
 * @since 0.1
 */
LAM_API int lam_store_ref_delete(lam_store *store, const char *name,
				 const char *expected);

/**
 * Called once per ref, in name order.
 * @param[in] name borrowed for the call.
 * @param[in] layer_id the chain digest the ref holds; borrowed for the call.
 * @param[in] userdata as given.
 * @return 0 to go on; non-zero stops the iteration and is returned.
 * @since 0.1
 */
typedef int (*lam_ref_cb)(const char *name, const char *layer_id,
			  void *userdata);

/**
 * Call @p cb for each ref, in name order.
 * @return 0, a non-zero value from @p cb, LAM_EIO, LAM_ECORRUPT, LAM_ENOMEM.
 * @since 0.1
 */
LAM_API int lam_store_ref_foreach(lam_store *store, lam_ref_cb cb,
				  void *userdata);

#ifdef __cplusplus
}
#endif

#endif
