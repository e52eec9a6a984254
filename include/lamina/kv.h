/* SPDX-License-Identifier: MIT */
/**
 * @file lamina/kv.h
 * @brief lam_key: registry-style keys and typed values inside a view.
 *
 * Every view and every layer holds a tree of keys beside its files, modelled
 * on the Windows registry. Paths use '\' between names ("Software\Vendor");
 * "" (or "\") is the root key, which exists always and may hold values
 * too. Names are UTF-8, case-insensitive and case-preserving: the stored
 * spelling is the one given when the key or value was created, and lookups
 * fold case with the simple fold that docs/kv.md lists (ASCII, Latin-1,
 * Latin Extended-A, Greek, Cyrillic, Armenian and fullwidth Latin letters).
 * The registry's limits hold: a key name has 1 to 255 characters, a value
 * name 0 to 16,383 ("" is the key's default value), a path at most 512
 * levels, counted in UTF-16 code units as the registry counts them. A key
 * name may not hold '\'; no name may hold a NUL character.
 *
 * Stacking: each committed layer carries its key/value delta (created
 * keys, set values, and tombstones for deleted values and keys); a view
 * shows the merge of its chain, the upper layer winning. Deleting a key
 * and creating it again hides the whole lower subtree. Enumeration merges
 * every layer and lists names in one stable order: by folded name, byte
 * by byte.
 *
 * Durability: a writable view logs each change to an append-only log
 * with checksums in its folder, synced before the call returns (unless
 * LAM_KV_NOSYNC), and replays it when the view is opened again; a change
 * torn by a crash is dropped whole. lam_view_commit() puts the key/value
 * delta into the new layer with the file delta. Changes grouped between
 * lam_kv_txn_begin() and lam_kv_txn_commit() reach the log as one unit.
 *
 * Handles: a lam_key names a key by path. It holds a reference to the
 * view's key/value state and to the store, so it stays usable after
 * lam_view_free() (reading what the view held, and writing to its log) and
 * may be freed in any order. When the key is deleted, calls on the handle
 * fail with LAM_ENOTFOUND; when a key of that path is created again, the
 * handle reaches the new key.
 *
 * Errors: bad names give LAM_EBADNAME or LAM_ENAMETOOLONG, bad values
 * LAM_EINVAL, writes to a read-only view or layer LAM_EPOSIX with EROFS,
 * each with a message that names the key or value.
 *
 * Threading: a view's keys, iterators and watches are used by one thread
 * at a time (the view's), but may move between threads. Read-only keys
 * opened on a committed layer share nothing writable and may be used from
 * several threads, one thread per handle.
 */
#ifndef LAMINA_KV_H
#define LAMINA_KV_H

#include <lamina/common.h>
#include <lamina/error.h>
#include <lamina/layer.h>
#include <lamina/store.h>
#include <lamina/view.h>

#ifdef __cplusplus
extern "C" {
#endif

/** A key of a view or layer. @since 0.1 */
typedef struct lam_key lam_key;

/** An iterator over the subkeys of a key. @since 0.1 */
typedef struct lam_key_subkey_iter lam_key_subkey_iter;

/** An iterator over the values of a key. @since 0.1 */
typedef struct lam_key_value_iter lam_key_value_iter;

/** A watch on a key or a subtree. @since 0.1 */
typedef struct lam_kv_watch lam_kv_watch;

/** Characters in a key name, at most. @since 0.1 */
#define LAM_KV_MAX_KEY_NAME 255
/** Characters in a value name, at most. @since 0.1 */
#define LAM_KV_MAX_VALUE_NAME 16383
/** Levels of a key path, at most. @since 0.1 */
#define LAM_KV_MAX_DEPTH 512
/** The default cap on one value's size, in bytes (1 MiB). @since 0.1 */
#define LAM_KV_DEFAULT_MAX_VALUE_SIZE (1024u * 1024u)

/**
 * Value types, with the registry's numbers.
 *
 * lamina checks data against its type when it is set:
 * - DWORD and DWORD_BIG_ENDIAN hold exactly 4 bytes (little- and
 *   big-endian), QWORD exactly 8 (little-endian);
 * - SZ, EXPAND_SZ and LINK hold UTF-8 text ending in its one NUL
 *   ("text\0"; the registry's UTF-16 appears only in .reg files);
 * - MULTI_SZ holds non-empty UTF-8 strings, each ending in NUL, then one
 *   more NUL ("a\0b\0\0"; the empty list is "\0");
 * - NONE, BINARY and the three resource types hold any bytes.
 * @since 0.1
 */
typedef enum lam_kv_type {
	LAM_KV_NONE = 0,
	LAM_KV_SZ = 1,
	LAM_KV_EXPAND_SZ = 2,
	LAM_KV_BINARY = 3,
	LAM_KV_DWORD = 4,
	LAM_KV_DWORD_BIG_ENDIAN = 5,
	LAM_KV_LINK = 6,
	LAM_KV_MULTI_SZ = 7,
	LAM_KV_RESOURCE_LIST = 8,
	LAM_KV_FULL_RESOURCE_DESCRIPTOR = 9,
	LAM_KV_RESOURCE_REQUIREMENTS_LIST = 10,
	LAM_KV_QWORD = 11,
} lam_kv_type;

/**
 * The registry's name of a type ("REG_SZ").
 * @return a static string; "REG_UNKNOWN" for a number that is no type.
 * @since 0.1
 */
LAM_API const char *lam_kv_type_name(uint32_t type);

/** Flags for key calls. @since 0.1 */
enum lam_key_flags {
	/** lam_key_create(): a new key (and each new parent) is volatile:
	 * it lives in the view only, is never logged nor committed, and is
	 * gone when the view is opened again. Keys created under a volatile
	 * key must be volatile too. */
	LAM_KEY_VOLATILE = 1u << 0,
	/** lam_key_delete(): delete the key's whole subtree. */
	LAM_KEY_TREE = 1u << 1,
};

#define LAM_KV_OPTIONS_VERSION 1

/** Flags for lam_kv_options.flags. @since 0.1 */
enum lam_kv_flags {
	/** Do not sync the log after each change; lam_kv_flush() and
	 * lam_view_commit() sync it. A crash may lose the unsynced tail,
	 * never misread it. */
	LAM_KV_NOSYNC = 1u << 0,
};

/** Options of a view's key/value namespace. @since 0.1 */
typedef struct lam_kv_options {
	unsigned int version; /**< LAM_KV_OPTIONS_VERSION */
	unsigned int flags;   /**< lam_kv_flags */
	/** The largest value accepted, in bytes. */
	uint64_t max_value_size;
	/** Quota: keys the view may create or change (0: no limit). */
	uint64_t max_keys;
	/** Quota: value bytes the view's changes may hold (0: no limit). */
	uint64_t max_value_bytes;
} lam_kv_options;

/** Initialise a lam_kv_options with the defaults. @since 0.1 */
/* clang-format off */
#define LAM_KV_OPTIONS_INIT {LAM_KV_OPTIONS_VERSION, 0, LAM_KV_DEFAULT_MAX_VALUE_SIZE, 0, 0}
/* clang-format on */

/**
 * Set the options of a view's key/value namespace; they last while the
 * view handle lives.
 * @param[in] view the view.
 * @param[in] options the options; NULL restores the defaults.
 * @return 0, LAM_EINVAL (a version this library does not know, or a
 *         max_value_size of 0), and the errors of loading the view's
 *         key/value state (LAM_ECORRUPT, LAM_EIO, LAM_ENOMEM, LAM_EBUSY).
 * @since 0.1
 */
LAM_API int lam_kv_configure(lam_view *view, const lam_kv_options *options);

/**
 * Open an existing key of a view.
 * @param[out] out the key; the caller frees it with lam_key_free(). NULL on
 *             failure.
 * @param[in] view the view.
 * @param[in] path the key's path; "" is the root.
 * @param[in] flags 0.
 * @return 0, LAM_ENOTFOUND, LAM_EBADNAME, LAM_ENAMETOOLONG, LAM_EINVAL,
 *         LAM_ECORRUPT (the key/value data of a layer or of the view's log
 *         is damaged; the message names it), LAM_EBUSY (another handle of
 *         the same stored view writes its key/value log), LAM_EIO,
 *         LAM_ENOMEM.
 * @since 0.1
 */
LAM_API int lam_key_open(lam_key **out, lam_view *view, const char *path,
			 unsigned int flags);

/**
 * Open a subkey of an open key ("" opens the key itself again).
 * @param[out] out as lam_key_open().
 * @param[in] parent the key @p path is relative to.
 * @param[in] path a relative path.
 * @param[in] flags 0.
 * @return as lam_key_open().
 * @since 0.1
 */
LAM_API int lam_key_open_at(lam_key **out, lam_key *parent, const char *path,
			    unsigned int flags);

/**
 * Open a key of a committed layer's merged tree, read-only.
 * @param[out] out the key; the caller frees it with lam_key_free().
 * @param[in] layer the top of the chain to read.
 * @param[in] path the key's path.
 * @return as lam_key_open(); writes through the key fail with LAM_EPOSIX
 *         (EROFS).
 * @since 0.1
 */
LAM_API int lam_key_open_layer(lam_key **out, lam_layer *layer,
			       const char *path);

/**
 * Open a key, creating it (and any missing parent) when it does not exist.
 * @param[out] out the key; the caller frees it with lam_key_free(). NULL on
 *             failure.
 * @param[in] view the view.
 * @param[in] path the key's path.
 * @param[in] flags 0 or LAM_KEY_VOLATILE (ignored when the key exists).
 * @param[out] created 1 when the key was created, 0 when it existed; may
 *             be NULL.
 * @return 0, LAM_EBADNAME, LAM_ENAMETOOLONG (a name over 255 characters,
 *         or a path deeper than 512), LAM_EINVAL (a durable key under a
 *         volatile one, or the root), LAM_EQUOTA, LAM_EPOSIX (EROFS),
 *         LAM_ECORRUPT, LAM_EBUSY, LAM_EIO, LAM_ENOMEM.
 * @since 0.1
 */
LAM_API int lam_key_create(lam_key **out, lam_view *view, const char *path,
			   unsigned int flags, int *created);

/** lam_key_create() relative to an open key. @since 0.1 */
LAM_API int lam_key_create_at(lam_key **out, lam_key *parent, const char *path,
			      unsigned int flags, int *created);

/**
 * Delete a key. Without LAM_KEY_TREE, a key that has subkeys is kept.
 * Keys of lower layers are hidden by a tombstone; keys the view created
 * are simply removed.
 * @param[in] view the view.
 * @param[in] path the key's path (not the root).
 * @param[in] flags 0 or LAM_KEY_TREE.
 * @return 0, LAM_ENOTFOUND, LAM_EBUSY (the key has subkeys and
 *         LAM_KEY_TREE was not given), LAM_EINVAL (the root),
 *         LAM_EBADNAME, LAM_ENAMETOOLONG, LAM_EPOSIX (EROFS),
 *         LAM_ECORRUPT, LAM_EIO, LAM_ENOMEM.
 * @since 0.1
 */
LAM_API int lam_key_delete(lam_view *view, const char *path,
			   unsigned int flags);

/** Release a key handle. Accepts NULL. @since 0.1 */
LAM_API void lam_key_free(lam_key *key);

/**
 * The key's path, spelled as stored ("Software\Vendor"; "" for the root).
 * @return borrowed, valid while @p key lives.
 * @since 0.1
 */
LAM_API const char *lam_key_path(const lam_key *key);

/**
 * The key's own name, the last name of its path.
 * @return borrowed, valid while @p key lives.
 * @since 0.1
 */
LAM_API const char *lam_key_name(const lam_key *key);

/** Flags of lam_key_info.flags. @since 0.1 */
enum lam_key_info_flags {
	LAM_KEY_INFO_VOLATILE = 1u << 0, /**< the key is volatile */
};

/** What lam_key_info_get() reports. @since 0.1 */
typedef struct lam_key_info {
	uint32_t subkeys;	  /**< direct subkeys */
	uint32_t values;	  /**< values, the default one included */
	uint32_t max_subkey_name; /**< longest subkey name (characters) */
	uint32_t max_value_name;  /**< longest value name (characters) */
	uint32_t max_value_size;  /**< largest value (bytes) */
	uint32_t flags;		  /**< lam_key_info_flags */
	int64_t last_write_sec;	  /**< when the key or a value last changed */
	int64_t last_write_nsec;  /**< its nanoseconds */
} lam_key_info;

/**
 * Counts, longest names and last-write time of a key. Characters are
 * counted in UTF-16 code units, as the registry counts them.
 * @param[in] key the key.
 * @param[out] out filled on success.
 * @return 0, LAM_ENOTFOUND (the key was deleted), LAM_ENOMEM.
 * @since 0.1
 */
LAM_API int lam_key_info_get(lam_key *key, lam_key_info *out);

/**
 * Start listing the subkeys of a key, merged over every layer, in the
 * stable order (by folded name). Changes made while iterating are seen or
 * not, but no name is listed twice and the order holds.
 * @param[out] out the iterator; free it with lam_key_subkey_iter_free().
 * @param[in] key the key.
 * @return 0, LAM_ENOTFOUND (the key was deleted), LAM_ENOMEM.
 * @since 0.1
 */
LAM_API int lam_key_subkey_iter_new(lam_key_subkey_iter **out, lam_key *key);

/**
 * The next subkey name.
 * @param[out] name borrowed until the next call on the iterator or the
 *             next change to the view.
 * @return 0, LAM_ITEROVER at the end, LAM_ENOMEM.
 * @since 0.1
 */
LAM_API int lam_key_subkey_iter_next(lam_key_subkey_iter *iter,
				     const char **name);

/** Free an iterator. Accepts NULL. @since 0.1 */
LAM_API void lam_key_subkey_iter_free(lam_key_subkey_iter *iter);

/** One value, as iterators report it. @since 0.1 */
typedef struct lam_kv_value {
	const char *name; /**< "" for the default value */
	uint32_t type;	  /**< a lam_kv_type */
	const void *data; /**< the bytes */
	size_t size;	  /**< their number */
} lam_kv_value;

/**
 * Start listing the values of a key, merged over every layer, in the
 * stable order (by folded name; the default value first).
 * @param[out] out the iterator; free it with lam_key_value_iter_free().
 * @param[in] key the key.
 * @return 0, LAM_ENOTFOUND (the key was deleted), LAM_ENOMEM.
 * @since 0.1
 */
LAM_API int lam_key_value_iter_new(lam_key_value_iter **out, lam_key *key);

/**
 * The next value.
 * @param[out] out its fields are borrowed until the next call on the
 *             iterator or the next change to the view.
 * @return 0, LAM_ITEROVER at the end, LAM_ENOMEM.
 * @since 0.1
 */
LAM_API int lam_key_value_iter_next(lam_key_value_iter *iter,
				    lam_kv_value *out);

/** Free an iterator. Accepts NULL. @since 0.1 */
LAM_API void lam_key_value_iter_free(lam_key_value_iter *iter);

/**
 * Set a value, checking the data against the type (see lam_kv_type) and
 * the size against the view's cap.
 * @param[in] key the key.
 * @param[in] name the value's name; NULL or "" for the default value.
 * @param[in] type a lam_kv_type.
 * @param[in] data the bytes; may be NULL when @p size is 0.
 * @param[in] size their number.
 * @return 0, LAM_EINVAL (an unknown type, data that does not fit the
 *         type, a value over the cap; the message says which),
 *         LAM_EBADNAME, LAM_ENAMETOOLONG, LAM_ENOTFOUND (the key was
 *         deleted), LAM_EQUOTA, LAM_EPOSIX (EROFS), LAM_EIO, LAM_ENOMEM.
 * @since 0.1
 */
LAM_API int lam_key_set_value(lam_key *key, const char *name, uint32_t type,
			      const void *data, size_t size);

/**
 * Read a value into the caller's buffer.
 * @param[in] key the key.
 * @param[in] name the value's name; NULL or "" for the default value.
 * @param[out] type its type; may be NULL.
 * @param[out] buf where the bytes go; NULL to ask the size only.
 * @param[in] size the room in @p buf.
 * @param[out] needed the value's size, also when @p buf is too small; may
 *             be NULL.
 * @return 0, LAM_EPOSIX with ERANGE when @p buf is too small (as
 *         lam_view_getxattr()), LAM_ENOTFOUND (no such value, or the key
 *         was deleted), LAM_EBADNAME, LAM_ENAMETOOLONG.
 * @since 0.1
 */
LAM_API int lam_key_get_value(lam_key *key, const char *name, uint32_t *type,
			      void *buf, size_t size, size_t *needed);

/**
 * Delete a value. A value of a lower layer is hidden by a tombstone.
 * @return 0, LAM_ENOTFOUND, LAM_EBADNAME, LAM_ENAMETOOLONG, LAM_EPOSIX
 *         (EROFS), LAM_EIO, LAM_ENOMEM.
 * @since 0.1
 */
LAM_API int lam_key_delete_value(lam_key *key, const char *name);

/** Set a DWORD value. @return as lam_key_set_value(). @since 0.1 */
LAM_API int lam_key_set_dword(lam_key *key, const char *name, uint32_t value);

/**
 * Read a DWORD or DWORD_BIG_ENDIAN value as a number.
 * @return 0, LAM_EINVAL (the value has another type), LAM_ENOTFOUND.
 * @since 0.1
 */
LAM_API int lam_key_get_dword(lam_key *key, const char *name, uint32_t *out);

/** Set a QWORD value. @return as lam_key_set_value(). @since 0.1 */
LAM_API int lam_key_set_qword(lam_key *key, const char *name, uint64_t value);

/**
 * Read a QWORD value (or a DWORD, widened).
 * @return 0, LAM_EINVAL (another type), LAM_ENOTFOUND.
 * @since 0.1
 */
LAM_API int lam_key_get_qword(lam_key *key, const char *name, uint64_t *out);

/**
 * Set a string value of type SZ, EXPAND_SZ or LINK.
 * @param[in] type LAM_KV_SZ, LAM_KV_EXPAND_SZ or LAM_KV_LINK.
 * @param[in] value NUL-terminated UTF-8.
 * @return as lam_key_set_value().
 * @since 0.1
 */
LAM_API int lam_key_set_string(lam_key *key, const char *name, uint32_t type,
			       const char *value);

/**
 * Read a value of type SZ, EXPAND_SZ or LINK.
 * @param[out] out the string; the caller frees it with lam_free(). NULL on
 *             failure.
 * @param[out] type its type; may be NULL.
 * @return 0, LAM_EINVAL (another type), LAM_ENOTFOUND, LAM_ENOMEM.
 * @since 0.1
 */
LAM_API int lam_key_get_string(char **out, lam_key *key, const char *name,
			       uint32_t *type);

/**
 * Set a MULTI_SZ value from @p count strings.
 * @param[in] strings non-empty NUL-terminated UTF-8 strings.
 * @return as lam_key_set_value(); an empty string gives LAM_EINVAL.
 * @since 0.1
 */
LAM_API int lam_key_set_multi_sz(lam_key *key, const char *name,
				 const char *const *strings, size_t count);

/**
 * Read a MULTI_SZ value.
 * @param[out] out a NULL-terminated array of the strings, in one block;
 *             the caller frees it with lam_free(). NULL on failure.
 * @param[out] count the number of strings; may be NULL.
 * @return 0, LAM_EINVAL (another type), LAM_ENOTFOUND, LAM_ENOMEM.
 * @since 0.1
 */
LAM_API int lam_key_get_multi_sz(char ***out, size_t *count, lam_key *key,
				 const char *name);

/**
 * Read a value by key path, without a key handle (RegGetValue's way).
 * @param[in] view the view.
 * @param[in] path the key's path.
 * @param[in] name the value's name; NULL or "" for the default value.
 * @param[out] type,buf,size,needed as lam_key_get_value().
 * @return as lam_key_open() and lam_key_get_value().
 * @since 0.1
 */
LAM_API int lam_kv_get_value(lam_view *view, const char *path, const char *name,
			     uint32_t *type, void *buf, size_t size,
			     size_t *needed);

/**
 * Set a value by key path, creating the key (and its parents) when it does
 * not exist (RegSetKeyValue's way).
 * @return as lam_key_create() and lam_key_set_value().
 * @since 0.1
 */
LAM_API int lam_kv_set_value(lam_view *view, const char *path, const char *name,
			     uint32_t type, const void *data, size_t size);

/**
 * Start a transaction: the view's key/value changes from now on are seen
 * by the view at once but reach its log only at lam_kv_txn_commit(), as one
 * unit that a crash keeps whole or drops whole.
 * @return 0, LAM_EBUSY (a transaction is already open), LAM_EPOSIX
 *         (EROFS), LAM_ECORRUPT, LAM_EIO, LAM_ENOMEM.
 * @since 0.1
 */
LAM_API int lam_kv_txn_begin(lam_view *view);

/**
 * Write the transaction's changes to the log as one unit and sync it.
 * On failure the changes are undone and the view is as before
 * lam_kv_txn_begin().
 * @return 0, LAM_EINVAL (no transaction is open), LAM_EIO, LAM_ENOMEM.
 * @since 0.1
 */
LAM_API int lam_kv_txn_commit(lam_view *view);

/**
 * Undo the transaction's changes.
 * @return 0, LAM_EINVAL (no transaction is open), LAM_ECORRUPT, LAM_EIO,
 *         LAM_ENOMEM.
 * @since 0.1
 */
LAM_API int lam_kv_txn_abort(lam_view *view);

/**
 * Sync the view's key/value log (useful with LAM_KV_NOSYNC).
 * @return 0, LAM_EIO.
 * @since 0.1
 */
LAM_API int lam_kv_flush(lam_view *view);

/**
 * Called once per key/value change.
 * @param[in] kind LAM_CHANGE_ADDED, LAM_CHANGE_MODIFIED (a value's type or
 *            data changed) or LAM_CHANGE_DELETED.
 * @param[in] key_path the key, spelled as stored; borrowed for the call.
 * @param[in] value_name the value ("" for the default value), or NULL when
 *            the change is to the key itself; borrowed for the call.
 * @param[in] userdata as given.
 * @return 0 to go on; non-zero stops (see each function).
 * @since 0.1
 */
typedef int (*lam_kv_change_cb)(lam_change_kind kind, const char *key_path,
				const char *value_name, void *userdata);

/**
 * Compare the merged key trees of two layers (either may be NULL: the
 * empty tree) and report each change from @p from to @p to, in the stable
 * order: a key before its values, its values before its subkeys. An added
 * or deleted key is reported, then each of its values and subkeys.
 * In the single-string form that lam_layer_diff() uses, a key reads
 * "Key\Sub" and a value "Key\Sub:Name" (docs/kv.md).
 * @return 0, a non-zero value from @p cb, LAM_EINVAL (layers of different
 *         stores), LAM_ECORRUPT, LAM_EIO, LAM_ENOMEM.
 * @since 0.1
 */
LAM_API int lam_kv_diff(lam_layer *from, lam_layer *to, lam_kv_change_cb cb,
			void *userdata);

/**
 * Report each key/value change the view holds against its base layer, as
 * lam_kv_diff() does (volatile keys included).
 * @return as lam_kv_diff().
 * @since 0.1
 */
LAM_API int lam_kv_view_diff(lam_view *view, lam_kv_change_cb cb,
			     void *userdata);

/** Flags for lam_key_watch(). @since 0.1 */
enum lam_kv_watch_flags {
	/** Report changes anywhere below the key, not only to the key, its
	 * values and its direct subkeys. */
	LAM_KV_WATCH_SUBTREE = 1u << 0,
};

/**
 * Watch a key: after each change made through the view to the key, its
 * values or its direct subkeys (or, with LAM_KV_WATCH_SUBTREE, anything
 * below it), @p cb is called, and the watch's file descriptor becomes
 * readable. Changes in a transaction are reported when it commits. The
 * callback may not change the view; a non-zero return ends the
 * notifications of that watch (the watch stays valid to free).
 * @param[out] out the watch; free it with lam_kv_watch_free().
 * @param[in] key the key (it need not go on existing).
 * @param[in] flags lam_kv_watch_flags.
 * @param[in] cb the callback, or NULL to use the descriptor only.
 * @param[in] userdata passed to @p cb.
 * @return 0, LAM_EINVAL (a key of a committed layer or of a read-only
 *         view, which never changes), LAM_ENOMEM.
 * @since 0.1
 */
LAM_API int lam_key_watch(lam_kv_watch **out, lam_key *key, unsigned int flags,
			  lam_kv_change_cb cb, void *userdata);

/**
 * A descriptor (an eventfd, non-blocking, close-on-exec) that becomes
 * readable when the watch has seen changes; reading 8 bytes from it
 * returns their count and clears it.
 * @return the descriptor, owned by the watch; or a negative lam_err code
 *         (LAM_EIO) when one could not be made.
 * @since 0.1
 */
LAM_API int lam_kv_watch_fd(lam_kv_watch *watch);

/** Stop and free a watch. Accepts NULL. @since 0.1 */
LAM_API void lam_kv_watch_free(lam_kv_watch *watch);

#define LAM_REG_OPTIONS_VERSION 1

/** Flags for lam_reg_options.flags. @since 0.1 */
enum lam_reg_flags {
	/** Export: write UTF-16LE with a BOM and CRLF line ends, as regedit
	 * does, instead of UTF-8 with LF. */
	LAM_REG_UTF16 = 1u << 0,
	/** Export: the key and its values only, not its subkeys. */
	LAM_REG_NO_SUBKEYS = 1u << 1,
	/** Export: write string values as hex(N): bytes in UTF-16LE, as
	 * hivexregedit --export does; tools that read a .reg file as bytes
	 * (hivexregedit --merge) then store the right characters. */
	LAM_REG_HEX_STRINGS = 1u << 2,
};

/** Options for .reg import and export. @since 0.1 */
typedef struct lam_reg_options {
	unsigned int version; /**< LAM_REG_OPTIONS_VERSION */
	unsigned int flags;   /**< lam_reg_flags */
	/**
	 * The key that stands for a hive's root, or NULL for the view's
	 * root. On import, a root-relative key name as hivex writes it
	 * ("[\Foo]") lands below it. On export, keys below it are written
	 * root-relative ("[\Foo]", what `hivexregedit --merge` takes),
	 * and keys outside it are not written.
	 */
	const char *root;
	/** A name for the text in error messages (a file name), or NULL. */
	const char *source;
} lam_reg_options;

/** Initialise a lam_reg_options. @since 0.1 */
/* clang-format off */
#define LAM_REG_OPTIONS_INIT {LAM_REG_OPTIONS_VERSION, 0, NULL, NULL}
/* clang-format on */

/**
 * Import a .reg file ("Windows Registry Editor Version 5.00" or
 * "REGEDIT4") into a view, as one transaction: every change or none.
 *
 * The text may be UTF-16LE with a BOM, or UTF-8 with or without one (a
 * line that is not UTF-8 is read as Latin-1, as REGEDIT4 files and
 * hivexregedit's output may need).
 * Keys: "[Path]" creates, "[-Path]" deletes a subtree. Values: "Name"=
 * or @= (the default value) followed by a "string", dword:XXXXXXXX,
 * hex:bytes (BINARY), hex(N):bytes (type N; the string types' bytes are
 * UTF-16LE, or 8-bit text in a REGEDIT4 file), str(N):"string", or - to
 * delete. Lines ending in '\' go on in the next line; ';' starts a
 * comment. Root names: HKLM, HKCU, HKCR, HKU and HKCC are written out in
 * full (HKEY_LOCAL_MACHINE…), and a name starting with '\' is below
 * @p options->root (docs/kv.md).
 *
 * @param[in] view the view.
 * @param[in] text the file's bytes.
 * @param[in] len their number.
 * @param[in] options NULL for the defaults.
 * @return 0, LAM_EINVAL (a syntax error or a bad value: the message names
 *         the line), LAM_EBADNAME, LAM_ENAMETOOLONG (with the line too),
 *         LAM_EBUSY (a transaction is open), LAM_EQUOTA, LAM_EPOSIX
 *         (EROFS), LAM_EIO, LAM_ENOMEM. On failure the view is unchanged.
 * @since 0.1
 */
LAM_API int lam_kv_import_reg(lam_view *view, const char *text, size_t len,
			      const lam_reg_options *options);

/**
 * Export a key and its subtree as a .reg file ("Windows Registry Editor
 * Version 5.00"). The output is deterministic: keys depth first and values
 * in the stable order; SZ values as "strings" (or hex(1) when they hold
 * line breaks or other control characters), DWORDs as dword:, everything
 * else as hex(N): with the string types in UTF-16LE, lines wrapped as
 * regedit wraps them.
 * @param[out] out the text, NUL-terminated (also in UTF-16); the caller
 *             frees it with lam_free(). NULL on failure.
 * @param[out] len its length in bytes, without the terminator; may be
 *             NULL.
 * @param[in] key the key to export (a view's or a layer's).
 * @param[in] options NULL for the defaults.
 * @return 0, LAM_EINVAL (the key is outside options->root),
 *         LAM_ENOTFOUND (the key was deleted), LAM_ENOMEM.
 * @since 0.1
 */
LAM_API int lam_key_export_reg(char **out, size_t *len, lam_key *key,
			       const lam_reg_options *options);

#ifdef __cplusplus
}
#endif

#endif
