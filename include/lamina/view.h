/* SPDX-License-Identifier: MIT */
/**
 * @file lamina/view.h
 * @brief lam_view: a copy-on-write union view over a layer chain.
 *
 * A view stacks the layers of a chain (the base layer and its ancestors)
 * under one writable upper layer and offers a file API relative to the
 * view's root, without mounting anything and without privileges. What the
 * host changes lands in the upper; lam_view_commit() turns the changes into
 * a new immutable child layer and the view goes on above it.
 *
 * Semantics follow Linux overlayfs and the OCI layer rules: the upper wins,
 * whiteouts hide lower entries, opaque directories hide everything below
 * them, and a lower file is copied up before it changes. lamina differs from
 * the kernel where the kernel's default is worse, and says so in
 * docs/views.md: renaming a lower directory works (no EXDEV), hard links stay
 * linked when one of them is written, and writing into a large lower file
 * copies up only the chunks written.
 *
 * Paths: every path is resolved inside the view. A leading '/' is optional;
 * "..", absolute symlinks and symlink chains never leave the view's root
 * (an absolute symlink is resolved from the view's root, ".." at the root
 * stays at the root); more than 40 symlinks in one lookup give ELOOP.
 *
 * Errors: file-API calls fail with LAM_EPOSIX and put the POSIX errno a
 * program expects (ENOENT, EEXIST, ENOTDIR, EISDIR, ENOTEMPTY, ELOOP,
 * EROFS…) in the error record's os_errno; other failures use the usual
 * codes.
 *
 * Lifetime: a writable view persists in its store under its UUID until it is
 * removed; lam_view_open() reopens it with every change intact. Read-only
 * views are not stored. Handles hold references to their store and layers.
 *
 * Threading: a view and its files are used by one thread at a time but may
 * move between threads. Many views over one image are cheap: they share the
 * layers' mapped indexes and one merged lookup table per chain.
 */
#ifndef LAMINA_VIEW_H
#define LAMINA_VIEW_H

#include <lamina/common.h>
#include <lamina/error.h>
#include <lamina/layer.h>
#include <lamina/store.h>

#ifdef __cplusplus
extern "C" {
#endif

/** A union view. @since 0.1 */
typedef struct lam_view lam_view;

/** An open file of a view. @since 0.1 */
typedef struct lam_view_file lam_view_file;

/** An iterator over a merged directory. @since 0.1 */
typedef struct lam_view_dir_iter lam_view_dir_iter;

/** Flags for lam_view_options.flags. @since 0.1 */
enum lam_view_flags {
	/** A view that refuses every change (EROFS); it is not stored. */
	LAM_VIEW_READONLY = 1u << 0,
};

#define LAM_VIEW_OPTIONS_VERSION 1

/** Options for lam_view_create() and lam_view_open(). @since 0.1 */
typedef struct lam_view_options {
	unsigned int version; /**< LAM_VIEW_OPTIONS_VERSION */
	unsigned int flags;   /**< lam_view_flags */
} lam_view_options;

/** Initialise a lam_view_options. @since 0.1 */
/* clang-format off */
#define LAM_VIEW_OPTIONS_INIT {LAM_VIEW_OPTIONS_VERSION, 0}
/* clang-format on */

/**
 * Create a view over a layer (or over nothing, for a fresh base).
 *
 * A writable view gets a UUID and is stored (views/<uuid>/ in the store)
 * until lam_view_remove(); it keeps its base layer from garbage collection.
 *
 * @param[out] out the view; the caller frees it with lam_view_free().
 *             NULL on failure.
 * @param[in] store the store.
 * @param[in] base the layer to stack, or NULL for an empty view.
 * @param[in] options NULL for the defaults.
 * @return 0, LAM_EINVAL, LAM_EIO, LAM_ENOMEM, LAM_ECORRUPT (a layer of the
 *         chain is damaged).
 * @since 0.1
 */
LAM_API int lam_view_create(lam_view **out, lam_store *store, lam_layer *base,
			    const lam_view_options *options);

/**
 * Reopen a stored view by its UUID, with every change it holds.
 * @param[out] out the view; the caller frees it with lam_view_free().
 * @param[in] store the store.
 * @param[in] id the view's UUID (or a unique prefix of at least 4
 *            characters).
 * @param[in] options NULL for the defaults; LAM_VIEW_READONLY opens it
 *            without allowing changes.
 * @return 0, LAM_ENOTFOUND, LAM_EAMBIGUOUS, LAM_ECORRUPT, LAM_EIO,
 *         LAM_ENOMEM.
 * @since 0.1
 */
LAM_API int lam_view_open(lam_view **out, lam_store *store, const char *id,
			  const lam_view_options *options);

/** Release a view handle (the stored view stays). Accepts NULL. @since 0.1 */
LAM_API void lam_view_free(lam_view *view);

/**
 * The view's UUID.
 * @return borrowed, valid while @p view lives; "" for a read-only view that
 *         is not stored.
 * @since 0.1
 */
LAM_API const char *lam_view_id(const lam_view *view);

/**
 * The layer the view currently stacks.
 * @param[out] out the layer, which the caller frees with lam_layer_free();
 *             NULL for a view over nothing (still a success).
 * @return 0, LAM_ENOMEM.
 * @since 0.1
 */
LAM_API int lam_view_base(lam_layer **out, lam_view *view);

/**
 * Called once per stored view.
 * @param[in] id the view's UUID; borrowed for the call.
 * @param[in] base_id the chain digest of its base, or NULL; borrowed.
 * @param[in] userdata as given.
 * @return 0 to go on; non-zero stops and is returned.
 * @since 0.1
 */
typedef int (*lam_view_cb)(const char *id, const char *base_id, void *userdata);

/**
 * Call @p cb for each stored view, in UUID order.
 * @return 0, a non-zero value from @p cb, LAM_EIO, LAM_ECORRUPT, LAM_ENOMEM.
 * @since 0.1
 */
LAM_API int lam_view_foreach(lam_store *store, lam_view_cb cb, void *userdata);

/**
 * Remove a stored view and all its changes. Handles still open on it fail
 * with LAM_ENOTFOUND afterwards.
 * @param[in] store the store.
 * @param[in] id the view's UUID or a unique prefix.
 * @return 0, LAM_ENOTFOUND, LAM_EAMBIGUOUS, LAM_EIO.
 * @since 0.1
 */
LAM_API int lam_view_remove(lam_store *store, const char *id);

/**
 * Drop every change of the view: it shows its base layer again.
 * @return 0, LAM_EPOSIX (EROFS for a read-only view), LAM_EIO.
 * @since 0.1
 */
LAM_API int lam_view_reset(lam_view *view);

#define LAM_COMMIT_OPTIONS_VERSION 1

/** Options for lam_view_commit(). @since 0.1 */
typedef struct lam_commit_options {
	unsigned int version; /**< LAM_COMMIT_OPTIONS_VERSION */
	unsigned int flags;   /**< reserved, 0 */
} lam_commit_options;

/** Initialise a lam_commit_options. @since 0.1 */
/* clang-format off */
#define LAM_COMMIT_OPTIONS_INIT {LAM_COMMIT_OPTIONS_VERSION, 0}
/* clang-format on */

/**
 * Publish the view's changes as a new child layer of its base, crash-safe
 * as any commit, in time proportional to what changed. The view then stacks
 * the new layer with an empty upper. Committing a view with no changes still
 * makes a (empty) layer.
 *
 * @param[in] view the view.
 * @param[out] out the new layer, which the caller frees with
 *             lam_layer_free(); may be NULL when not wanted.
 * @param[in] options NULL for the defaults.
 * @return 0, LAM_EPOSIX (EROFS for a read-only view), LAM_EIO, LAM_ENOMEM,
 *         LAM_ECORRUPT.
 * @since 0.1
 */
LAM_API int lam_view_commit(lam_view *view, lam_layer **out,
			    const lam_commit_options *options);

#define LAM_VIEW_QUOTA_VERSION 1

/**
 * A view's own limits on what it may write (0 = no limit). They work on any
 * filesystem: lamina counts, the filesystem need not.
 * @since 0.1
 */
typedef struct lam_view_quota {
	unsigned int version;	  /**< LAM_VIEW_QUOTA_VERSION */
	uint64_t max_bytes;	  /**< bytes allocated by files of the upper */
	uint64_t max_inodes;	  /**< entries (inodes) in the upper */
	uint64_t max_keys;	  /**< keys written to the key/value upper */
	uint64_t max_value_bytes; /**< value bytes written to it */
} lam_view_quota;

/** Initialise a lam_view_quota: no limits. @since 0.1 */
/* clang-format off */
#define LAM_VIEW_QUOTA_INIT {LAM_VIEW_QUOTA_VERSION, 0, 0, 0, 0}
/* clang-format on */

/** What a view's upper uses. @since 0.1 */
typedef struct lam_view_usage {
	uint64_t bytes;	      /**< bytes allocated by files of the upper */
	uint64_t inodes;      /**< entries (inodes) in the upper */
	uint64_t keys;	      /**< keys written to the key/value upper */
	uint64_t value_bytes; /**< value bytes written to it */
} lam_view_usage;

/**
 * Set the view's quotas; they are stored with the view. A write that would
 * pass a limit fails with LAM_EPOSIX and errno EDQUOT (the file API) or
 * LAM_EQUOTA (the key/value API) and changes nothing; what was written
 * before stays. Lowering a limit below the current usage is allowed: only
 * further growth is refused.
 * @param[in] view a writable view.
 * @param[in] quota the limits, copied.
 * @return 0, LAM_EINVAL, LAM_EPOSIX (EROFS), LAM_EIO.
 * @since 0.1
 */
LAM_API int lam_view_set_quota(lam_view *view, const lam_view_quota *quota);

/**
 * Read the view's quotas.
 * @return 0, LAM_EINVAL, LAM_EIO.
 * @since 0.1
 */
LAM_API int lam_view_get_quota(lam_view *view, lam_view_quota *out);

/**
 * What the view's upper uses now, counted from the upper itself (so it is
 * right after a restart, whatever happened before).
 * @return 0, LAM_EINVAL, LAM_EIO, LAM_ENOMEM.
 * @since 0.1
 */
LAM_API int lam_view_get_usage(lam_view *view, lam_view_usage *out);

/**
 * Bring the view's upper to plain overlayfs upperdir form: every file that
 * was copied up only in part gets its remaining chunks from the lower. The
 * upper (views/<uuid>/upper-<n>/ in the store, with views/<uuid>/work/ as
 * workdir) can then be mounted by the kernel over the layer folders.
 * Commit does this by itself for the files it needs.
 * @return 0, LAM_EPOSIX (EROFS, EDQUOT), LAM_EIO, LAM_ECORRUPT.
 * @since 0.1
 */
LAM_API int lam_view_sync_upper(lam_view *view);

/** File status, as lam_view_stat() reports it. @since 0.1 */
typedef struct lam_stat {
	uint64_t ino;	    /**< stable while the view lives; equal for links */
	uint32_t mode;	    /**< type and permission bits, as st_mode */
	uint32_t nlink;	    /**< hard links */
	uint32_t uid;	    /**< owner */
	uint32_t gid;	    /**< group */
	uint64_t size;	    /**< bytes (target length for a symlink) */
	uint64_t rdev;	    /**< device number of a device node */
	int64_t mtime_sec;  /**< modification time */
	int64_t mtime_nsec; /**< its nanoseconds */
	int64_t atime_sec;  /**< access time */
	int64_t atime_nsec; /**< its nanoseconds */
	int64_t ctime_sec;  /**< status change time */
	int64_t ctime_nsec; /**< its nanoseconds */
} lam_stat;

/**
 * Status of a path, following a final symlink (inside the view).
 * @param[in] view the view.
 * @param[in] path the path.
 * @param[out] out filled on success.
 * @return 0, LAM_EPOSIX (ENOENT, ENOTDIR, ELOOP, ENAMETOOLONG), LAM_EIO.
 * @since 0.1
 */
LAM_API int lam_view_stat(lam_view *view, const char *path, lam_stat *out);

/** As lam_view_stat(), but a final symlink is reported itself. @since 0.1 */
LAM_API int lam_view_lstat(lam_view *view, const char *path, lam_stat *out);

/**
 * Open (or create) a file. @p flags take O_RDONLY, O_WRONLY, O_RDWR,
 * O_CREAT, O_EXCL, O_TRUNC, O_APPEND, O_NOFOLLOW and O_DIRECTORY from
 * <fcntl.h>; others give EINVAL. Opening a lower file for writing copies
 * up its metadata only; data chunks are copied as they are written.
 *
 * @param[out] out the file; the caller closes it with lam_view_file_close().
 *             NULL on failure.
 * @param[in] view the view.
 * @param[in] path the path.
 * @param[in] flags the open flags.
 * @param[in] mode permission bits of a created file.
 * @return 0, LAM_EPOSIX (ENOENT, EEXIST, EISDIR, ENOTDIR, ELOOP, EROFS…),
 *         LAM_EQUOTA, LAM_EIO, LAM_ENOMEM.
 * @since 0.1
 */
LAM_API int lam_view_file_open(lam_view_file **out, lam_view *view,
			       const char *path, int flags, uint32_t mode);

/**
 * Read at the file's position and advance it.
 * @param[out] got the bytes read; 0 at the end of the file.
 * @return 0, LAM_EPOSIX (EBADF when not open for reading), LAM_EIO.
 * @since 0.1
 */
LAM_API int lam_view_file_read(lam_view_file *file, void *buf, size_t size,
			       size_t *got);

/** Read at an offset; the position does not move. @since 0.1 */
LAM_API int lam_view_file_pread(lam_view_file *file, void *buf, size_t size,
				uint64_t offset, size_t *got);

/**
 * Write at the file's position (the end with O_APPEND) and advance it.
 * @param[out] written the bytes written (all of them on success).
 * @return 0, LAM_EPOSIX (EBADF, EFBIG), LAM_EQUOTA, LAM_EIO.
 * @since 0.1
 */
LAM_API int lam_view_file_write(lam_view_file *file, const void *buf,
				size_t size, size_t *written);

/** Write at an offset; the position does not move. @since 0.1 */
LAM_API int lam_view_file_pwrite(lam_view_file *file, const void *buf,
				 size_t size, uint64_t offset, size_t *written);

/** Set the file's size. @return 0, LAM_EPOSIX, LAM_EQUOTA, LAM_EIO. */
LAM_API int lam_view_file_truncate(lam_view_file *file, uint64_t size);

/** Make the file's data and metadata durable. @since 0.1 */
LAM_API int lam_view_file_fsync(lam_view_file *file);

/** Status of an open file. @since 0.1 */
LAM_API int lam_view_file_stat(lam_view_file *file, lam_stat *out);

/**
 * Close a file and free its handle, whatever the result. Accepts NULL.
 * @return 0, or LAM_EIO when data could not be written back.
 * @since 0.1
 */
LAM_API int lam_view_file_close(lam_view_file *file);

/** Truncate a path (following symlinks). @since 0.1 */
LAM_API int lam_view_truncate(lam_view *view, const char *path, uint64_t size);

/** Create a directory. @return 0, LAM_EPOSIX (EEXIST, ENOENT…). */
LAM_API int lam_view_mkdir(lam_view *view, const char *path, uint32_t mode);

/** Remove an empty directory. @return 0, LAM_EPOSIX (ENOTEMPTY…). */
LAM_API int lam_view_rmdir(lam_view *view, const char *path);

/** Remove a non-directory. @return 0, LAM_EPOSIX (EISDIR, ENOENT…). */
LAM_API int lam_view_unlink(lam_view *view, const char *path);

/** Flags for lam_view_rename(). @since 0.1 */
enum lam_rename_flags {
	LAM_RENAME_NOREPLACE = 1u << 0, /**< fail with EEXIST if new exists */
	LAM_RENAME_EXCHANGE = 1u << 1,	/**< swap the two entries */
};

/**
 * Rename, with rename(2)'s rules (a directory only over an empty directory,
 * a non-directory only over a non-directory). Directories from lower layers
 * rename like any other.
 * @return 0, LAM_EPOSIX (ENOENT, EEXIST, ENOTEMPTY, EISDIR, ENOTDIR, EINVAL
 *         for a directory moved into itself), LAM_EQUOTA, LAM_EIO.
 * @since 0.1
 */
LAM_API int lam_view_rename(lam_view *view, const char *oldpath,
			    const char *newpath, unsigned int flags);

/** Make a hard link @p newpath to @p oldpath. @since 0.1 */
LAM_API int lam_view_link(lam_view *view, const char *oldpath,
			  const char *newpath);

/** Make a symlink at @p linkpath holding @p target. @since 0.1 */
LAM_API int lam_view_symlink(lam_view *view, const char *target,
			     const char *linkpath);

/**
 * Read a symlink.
 * @param[out] out the target, NUL-terminated; the caller frees it with
 *             lam_free(). NULL on failure.
 * @return 0, LAM_EPOSIX (EINVAL when not a symlink, ENOENT).
 * @since 0.1
 */
LAM_API int lam_view_readlink(char **out, lam_view *view, const char *path);

/** Change permission bits (following symlinks). @since 0.1 */
LAM_API int lam_view_chmod(lam_view *view, const char *path, uint32_t mode);

/** Flags for lam_view_chown(), lam_view_utimens() and xattr calls. */
enum lam_path_flags {
	LAM_NOFOLLOW = 1u << 0, /**< act on a final symlink itself */
};

/**
 * Change owner and group; (uint32_t)-1 leaves one unchanged.
 * @param[in] flags LAM_NOFOLLOW or 0.
 * @since 0.1
 */
LAM_API int lam_view_chown(lam_view *view, const char *path, uint32_t uid,
			   uint32_t gid, unsigned int flags);

/** A time for lam_view_utimens(). @since 0.1 */
typedef struct lam_time {
	int64_t sec;
	int64_t nsec; /**< or LAM_TIME_NOW, LAM_TIME_OMIT */
} lam_time;

#define LAM_TIME_NOW  ((int64_t)((1l << 30) - 1))
#define LAM_TIME_OMIT ((int64_t)((1l << 30) - 2))

/**
 * Set access and modification times.
 * @param[in] times [0] access, [1] modification.
 * @param[in] flags LAM_NOFOLLOW or 0.
 * @since 0.1
 */
LAM_API int lam_view_utimens(lam_view *view, const char *path,
			     const lam_time times[2], unsigned int flags);

/**
 * Make a device node, fifo or regular file (mode's type bits choose).
 * @since 0.1
 */
LAM_API int lam_view_mknod(lam_view *view, const char *path, uint32_t mode,
			   uint64_t rdev);

/** Make a fifo. @since 0.1 */
LAM_API int lam_view_mkfifo(lam_view *view, const char *path, uint32_t mode);

/**
 * Read an extended attribute.
 * @param[out] buf where the value goes, or NULL to ask its size.
 * @param[in] size the room in @p buf.
 * @param[out] needed the value's size (also when @p buf is too small, which
 *             fails with ERANGE).
 * @param[in] flags LAM_NOFOLLOW or 0.
 * @return 0, LAM_EPOSIX (ENODATA, ERANGE, ENOENT).
 * @since 0.1
 */
LAM_API int lam_view_getxattr(lam_view *view, const char *path,
			      const char *name, void *buf, size_t size,
			      size_t *needed, unsigned int flags);

/** Flags for lam_view_setxattr(), as setxattr(2)'s. */
enum lam_xattr_flags {
	LAM_XATTR_CREATE = 1u << 4,  /**< fail with EEXIST if present */
	LAM_XATTR_REPLACE = 1u << 5, /**< fail with ENODATA if absent */
};

/** Set an extended attribute. @since 0.1 */
LAM_API int lam_view_setxattr(lam_view *view, const char *path,
			      const char *name, const void *value, size_t size,
			      unsigned int flags);

/**
 * List extended attribute names, as listxattr(2) lays them out (each name
 * NUL-terminated, one after the other, sorted).
 * @param[out] out the list; the caller frees it with lam_free(); NULL when
 *             there are none.
 * @param[out] len its length in bytes.
 * @since 0.1
 */
LAM_API int lam_view_listxattr(char **out, size_t *len, lam_view *view,
			       const char *path, unsigned int flags);

/** Remove an extended attribute. @return 0, LAM_EPOSIX (ENODATA…). */
LAM_API int lam_view_removexattr(lam_view *view, const char *path,
				 const char *name, unsigned int flags);

/** One entry of a merged directory listing. @since 0.1 */
typedef struct lam_dirent {
	const char *name; /**< borrowed until the next call on the iterator */
	uint32_t mode;	  /**< type bits (S_IFMT) of the entry */
	uint64_t ino;	  /**< as lam_stat.ino */
} lam_dirent;

/**
 * List a directory, merging all layers: names in byte order, each once,
 * whiteouts and what they hide left out, "." and ".." not listed.
 * @param[out] out the iterator; free it with lam_view_dir_iter_free().
 * @return 0, LAM_EPOSIX (ENOENT, ENOTDIR), LAM_ENOMEM, LAM_EIO.
 * @since 0.1
 */
LAM_API int lam_view_dir_iter_new(lam_view_dir_iter **out, lam_view *view,
				  const char *path);

/**
 * The next entry.
 * @return 0 with @p out filled, LAM_ITEROVER at the end.
 * @since 0.1
 */
LAM_API int lam_view_dir_iter_next(lam_view_dir_iter *iter, lam_dirent *out);

/** Free an iterator. Accepts NULL. @since 0.1 */
LAM_API void lam_view_dir_iter_free(lam_view_dir_iter *iter);

/** What changed at a path, for diffs. @since 0.1 */
typedef enum lam_change_kind {
	LAM_CHANGE_ADDED = 'A',
	LAM_CHANGE_MODIFIED = 'M', /**< content (or type) changed */
	LAM_CHANGE_METADATA = 'm', /**< only metadata changed */
	LAM_CHANGE_DELETED = 'D',
} lam_change_kind;

/**
 * Called once per changed path, in path order ('/' before other bytes, so a
 * folder comes right before its contents).
 * @param[in] kind what changed.
 * @param[in] path the path, without a leading '/'; borrowed for the call.
 * @param[in] userdata as given.
 * @return 0 to go on; non-zero stops and is returned.
 * @since 0.1
 */
typedef int (*lam_change_cb)(lam_change_kind kind, const char *path,
			     void *userdata);

/**
 * Compare the merged trees of two layers (either may be NULL: the empty
 * tree) and report each change from @p from to @p to.
 * @return 0, a non-zero value from @p cb, LAM_ECORRUPT, LAM_EIO, LAM_ENOMEM.
 * @since 0.1
 */
LAM_API int lam_layer_diff(lam_layer *from, lam_layer *to, lam_change_cb cb,
			   void *userdata);

/**
 * Report each change the view holds against its base.
 * @return 0, a non-zero value from @p cb, LAM_EIO, LAM_ENOMEM.
 * @since 0.1
 */
LAM_API int lam_view_diff(lam_view *view, lam_change_cb cb, void *userdata);

/**
 * Squash the chain from @p top down to (not including) @p onto into one
 * layer on top of @p onto, holding the same merged content as @p top.
 * @param[out] out the new layer; the caller frees it with lam_layer_free().
 * @param[in] top the top of the chain.
 * @param[in] onto an ancestor of @p top, or NULL to squash the whole chain
 *            into a base layer.
 * @return 0, LAM_EINVAL (@p onto is not an ancestor), LAM_EIO, LAM_ENOMEM.
 * @since 0.1
 */
LAM_API int lam_layer_squash(lam_layer **out, lam_layer *top, lam_layer *onto);

#ifdef __cplusplus
}
#endif

#endif
