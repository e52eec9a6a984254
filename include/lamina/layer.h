/* SPDX-License-Identifier: MIT */
/**
 * @file lamina/layer.h
 * @brief lam_layer: an immutable node of the layer graph.
 *
 * A layer holds a delta: the files it adds or changes, and whiteouts and
 * opaque directories that hide what lies below it. A layer names at most one
 * parent; a chain of layers from a base up to a layer is that layer's image.
 * Layers never change once committed; many images share a base by pointing
 * at it, never by copying it.
 *
 * Identity: each layer has a UUID given at creation, a diff digest over the
 * canonical form of its own delta, and a chain digest over its parent's
 * chain digest and its diff digest (XXH3-128, 32 hex digits). The chain
 * digest is the layer's id: the same content on the same parent is the same
 * layer on any machine, and committing it twice stores nothing new.
 *
 * Lifetime: a lam_layer handle is owned by the caller and freed with
 * lam_layer_free(); it holds a reference to its store. Handles passed to
 * callbacks are borrowed for the duration of the call.
 *
 * Threading: committed layers are immutable; a handle may be used from
 * several threads at once.
 */
#ifndef LAMINA_LAYER_H
#define LAMINA_LAYER_H

#include <lamina/common.h>
#include <lamina/error.h>
#include <lamina/store.h>

#ifdef __cplusplus
extern "C" {
#endif

/** A committed layer. @since 0.1 */
typedef struct lam_layer lam_layer;

/** Length of a digest in hex digits (XXH3-128). @since 0.1 */
#define LAM_DIGEST_HEX_LEN 32

/**
 * Open a layer by name: a ref, or a prefix of a chain digest (at least 4 hex
 * digits) that matches exactly one layer. A ref wins over a digest prefix.
 *
 * @param[out] out the layer; the caller frees it with lam_layer_free().
 *             NULL on failure.
 * @param[in] store the store.
 * @param[in] name a ref or digest prefix.
 * @return 0, LAM_ENOTFOUND (no ref or layer by that name), LAM_EAMBIGUOUS
 *         (the prefix matches several layers), LAM_EINVAL, LAM_ECORRUPT,
 *         LAM_EIO, LAM_ENOMEM.
 * @since 0.1
 */
LAM_API int lam_layer_open(lam_layer **out, lam_store *store, const char *name);

/** Release a layer handle. Accepts NULL. @since 0.1 */
LAM_API void lam_layer_free(lam_layer *layer);

/**
 * Take one more reference to a layer handle.
 * @return @p layer; release each reference with lam_layer_free().
 * @since 0.1
 */
LAM_API lam_layer *lam_layer_ref(lam_layer *layer);

#define LAM_IMPORT_OPTIONS_VERSION 1

/** Options for lam_layer_import_dir(). @since 0.1 */
typedef struct lam_import_options {
	unsigned int version; /**< LAM_IMPORT_OPTIONS_VERSION */
	unsigned int flags;   /**< reserved, 0 */
} lam_import_options;

/** Initialise a lam_import_options. @since 0.1 */
/* clang-format off */
#define LAM_IMPORT_OPTIONS_INIT {LAM_IMPORT_OPTIONS_VERSION, 0}
/* clang-format on */

/**
 * Create a layer from a host folder and commit it.
 *
 * Without a parent, @p src is a full root filesystem (a base layer). With a
 * parent, @p src is a diff in overlayfs form: a 0/0 character device is a
 * whiteout that hides the parent's entry of that name, and a directory with
 * the xattr `trusted.overlay.opaque` (or `user.overlay.opaque`) set to "y"
 * hides everything below it in the parent chain.
 *
 * Regular files, directories, symlinks, hard links, devices, fifos, modes,
 * owners, modification times and extended attributes are kept. The folder
 * is read with `*at()` calls and never followed out of itself: symlinks
 * inside it are stored, never followed; sockets are skipped.
 *
 * Identical file contents are stored once in the whole store; a hash hit is
 * confirmed byte for byte. If the resulting layer already exists (same
 * content on the same parent) it is returned and nothing new is stored.
 *
 * @param[out] out the committed layer; the caller frees it with
 *             lam_layer_free(). NULL on failure.
 * @param[in] store the store.
 * @param[in] src the folder to read.
 * @param[in] parent the parent layer, or NULL for a base layer.
 * @param[in] options NULL for the defaults.
 * @return 0, LAM_ENOTFOUND (@p src missing), LAM_EACCES (an entry of @p src
 *         is unreadable; the message names it), LAM_ENAMETOOLONG (a path
 *         over PATH_MAX), LAM_EINVAL, LAM_EIO, LAM_ENOMEM. On failure the
 *         store is as it was.
 * @since 0.1
 */
LAM_API int lam_layer_import_dir(lam_layer **out, lam_store *store,
				 const char *src, lam_layer *parent,
				 const lam_import_options *options);

/**
 * The layer's id: its chain digest, 32 lower-case hex digits.
 * @return borrowed, valid while @p layer lives.
 * @since 0.1
 */
LAM_API const char *lam_layer_id(const lam_layer *layer);

/**
 * The digest of the layer's own delta, 32 lower-case hex digits.
 * @return borrowed, valid while @p layer lives.
 * @since 0.1
 */
LAM_API const char *lam_layer_diff_digest(const lam_layer *layer);

/**
 * The UUID given to the layer when it was first created, in the usual
 * 36-character form.
 * @return borrowed, valid while @p layer lives.
 * @since 0.1
 */
LAM_API const char *lam_layer_uuid(const lam_layer *layer);

/**
 * The parent's chain digest.
 * @return borrowed, valid while @p layer lives; NULL for a base layer.
 * @since 0.1
 */
LAM_API const char *lam_layer_parent_id(const lam_layer *layer);

/**
 * The number of layers in the chain that ends at this layer (1 for a base).
 * @since 0.1
 */
LAM_API unsigned int lam_layer_depth(const lam_layer *layer);

/**
 * The bytes of regular-file content in the layer's own delta (each hard-link
 * group counted once).
 * @since 0.1
 */
LAM_API uint64_t lam_layer_size(const lam_layer *layer);

/** The number of entries (paths, whiteouts included) in the layer's delta. */
LAM_API uint64_t lam_layer_entry_count(const lam_layer *layer);

/** When the layer was first committed, in seconds since the epoch. */
LAM_API int64_t lam_layer_created(const lam_layer *layer);

/**
 * Open the layer's parent.
 * @param[out] out the parent, which the caller frees with lam_layer_free();
 *             NULL for a base layer (still a success) or on failure.
 * @param[in] layer the layer.
 * @return 0, LAM_ECORRUPT (the parent is missing), LAM_EIO, LAM_ENOMEM.
 * @since 0.1
 */
LAM_API int lam_layer_parent(lam_layer **out, lam_layer *layer);

/**
 * A layer callback.
 * @param[in] layer borrowed for the call; take lam_layer_ref() to keep it.
 * @param[in] userdata as given.
 * @return 0 to go on; non-zero stops the iteration and is returned.
 * @since 0.1
 */
typedef int (*lam_layer_cb)(lam_layer *layer, void *userdata);

/**
 * Call @p cb for every layer of the store, in chain-digest order.
 * @return 0, a non-zero value from @p cb, LAM_EIO, LAM_ECORRUPT, LAM_ENOMEM.
 * @since 0.1
 */
LAM_API int lam_layer_foreach(lam_store *store, lam_layer_cb cb,
			      void *userdata);

/**
 * Call @p cb for each child of @p layer (layers whose parent it is), in
 * chain-digest order.
 * @return 0, a non-zero value from @p cb, LAM_EIO, LAM_ECORRUPT, LAM_ENOMEM.
 * @since 0.1
 */
LAM_API int lam_layer_children_foreach(lam_layer *layer, lam_layer_cb cb,
				       void *userdata);

/**
 * Call @p cb for each layer of the chain, from @p layer itself down to the
 * base.
 * @return 0, a non-zero value from @p cb, LAM_ECORRUPT, LAM_EIO, LAM_ENOMEM.
 * @since 0.1
 */
LAM_API int lam_layer_ancestors_foreach(lam_layer *layer, lam_layer_cb cb,
					void *userdata);

/**
 * Call @p cb for each ref that points exactly at @p layer, in name order.
 * @return 0, a non-zero value from @p cb, LAM_EIO, LAM_ECORRUPT, LAM_ENOMEM.
 * @since 0.1
 */
LAM_API int lam_layer_refs_foreach(lam_layer *layer, lam_ref_cb cb,
				   void *userdata);

/**
 * The merge base of two layers: the nearest layer that is in both chains.
 * @param[out] out the merge base, which the caller frees with
 *             lam_layer_free(); NULL when the chains share no layer (still a
 *             success) or on failure.
 * @param[in] a,b the two layers, of the same store.
 * @return 0, LAM_EINVAL (different stores), LAM_ECORRUPT, LAM_EIO,
 *         LAM_ENOMEM.
 * @since 0.1
 */
LAM_API int lam_layer_merge_base(lam_layer **out, lam_layer *a, lam_layer *b);

/** Flags for lam_layer_delete(). @since 0.1 */
enum lam_delete_flags {
	/** Also delete every descendant, and every ref to the deleted layers. */
	LAM_DELETE_CASCADE = 1u << 0,
};

/**
 * Delete a layer from the store. Without LAM_DELETE_CASCADE this is refused
 * while a ref points at the layer or another layer names it as parent.
 * Content objects are released by the next lam_store_gc(). The handle stays
 * valid (for its ids) but the layer's content is gone.
 *
 * @param[in] layer the layer.
 * @param[in] flags lam_delete_flags.
 * @return 0, LAM_EBUSY (refs or children depend on it; the message names
 *         one), LAM_ENOTFOUND (already deleted), LAM_EIO, LAM_ENOMEM.
 * @since 0.1
 */
LAM_API int lam_layer_delete(lam_layer *layer, unsigned int flags);

#define LAM_CHECKOUT_OPTIONS_VERSION 1

/** Flags for lam_checkout_options.flags. @since 0.1 */
enum lam_checkout_flags {
	/** Do not try to set owners (useful when not root). */
	LAM_CHECKOUT_NO_CHOWN = 1u << 0,
};

/** Options for lam_layer_checkout(). @since 0.1 */
typedef struct lam_checkout_options {
	unsigned int version; /**< LAM_CHECKOUT_OPTIONS_VERSION */
	unsigned int flags;   /**< lam_checkout_flags */
} lam_checkout_options;

/** Initialise a lam_checkout_options. @since 0.1 */
/* clang-format off */
#define LAM_CHECKOUT_OPTIONS_INIT {LAM_CHECKOUT_OPTIONS_VERSION, 0}
/* clang-format on */

/**
 * Materialise the merged tree of the layer's chain into a host folder:
 * whiteouts and opaque directories through the whole chain are honoured,
 * hard links are recreated as hard links, and modes, owners (when
 * permitted), times and xattrs are set. Nothing is written outside @p dest.
 *
 * @param[in] layer the top of the chain.
 * @param[in] dest a folder that does not exist yet or is empty.
 * @param[in] options NULL for the defaults.
 * @return 0, LAM_EEXISTS (@p dest is not empty), LAM_ECORRUPT, LAM_EACCES,
 *         LAM_EIO, LAM_ENOMEM.
 * @since 0.1
 */
LAM_API int lam_layer_checkout(lam_layer *layer, const char *dest,
			       const lam_checkout_options *options);

#ifdef __cplusplus
}
#endif

#endif
