/* SPDX-License-Identifier: MIT */
/**
 * @file lamina/archive.h
 * @brief Layer exchange: OCI tar layers and OCI image layouts, in and out.
 *
 * A layer travels as an OCI layer tar stream (image-spec v1.1 layer.md):
 * whiteouts are `.wh.<name>` entries, opaque directories carry a
 * `.wh..wh..opq` entry, and hard links, symlinks, devices, fifos, modes,
 * owners, modification times and extended attributes (PAX `SCHILY.xattr.*`)
 * are kept. Export is deterministic: the same layer always gives the same
 * bytes, hence the same sha256 digests.
 *
 * Import reads a stream from anyone: it refuses paths that leave the layer
 * (`..`, absolute paths, writes through symlinks, hard links to anything
 * but an earlier entry of the same archive), malformed headers, and
 * streams over a size cap; it verifies the sha256 digests it is given
 * before anything is published. A refused import leaves the store as it
 * was. docs/oci.md lists every rule.
 *
 * An image layout folder (`oci-layout`, `index.json`, `blobs/sha256/`)
 * holds images: lam_oci_export() writes a ref's chain as an image,
 * lam_oci_import() takes one in, extracting only the layers the store does
 * not hold yet. A layer's key/value delta travels inside the image config
 * (see docs/oci.md), so other tools see an ordinary image and a round trip
 * between lamina stores keeps the same chain digests.
 *
 * These functions need libarchive and libcrypto at build time; a library
 * built without them returns LAM_ENOTSUP.
 *
 * Threading: each call works on its own arguments; the store may be shared
 * between threads as usual. An import starts worker threads of its own
 * for its length (see LAM_TAR_ONE_THREAD); they never call the allocator
 * or the progress callback, but may call the log handler. Two lamina
 * processes may export into one layout folder at once (index.json is
 * rewritten under an flock of the folder).
 */
#ifndef LAMINA_ARCHIVE_H
#define LAMINA_ARCHIVE_H

#include <lamina/common.h>
#include <lamina/error.h>
#include <lamina/layer.h>
#include <lamina/store.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * Size of a buffer holding an OCI digest, "sha256:" and 64 hex digits,
 * with its NUL. @since 0.1
 */
#define LAM_OCI_DIGEST_SIZE 72

/** Compression of a layer stream. @since 0.1 */
typedef enum lam_compression {
	LAM_COMPRESS_NONE = 0,
	LAM_COMPRESS_GZIP = 1,
	LAM_COMPRESS_ZSTD = 2,
} lam_compression;

/**
 * A progress callback for long operations.
 * @param[in] done bytes processed so far (uncompressed tar bytes).
 * @param[in] total bytes expected in all, or 0 when unknown.
 * @param[in] userdata as given.
 * @return 0 to go on; non-zero stops the operation, which fails with that
 *         value (and leaves the store as it was).
 * @since 0.1
 */
typedef int (*lam_progress_cb)(uint64_t done, uint64_t total, void *userdata);

#define LAM_TAR_OPTIONS_VERSION 1

/** Options for lam_layer_export_tar(). @since 0.1 */
typedef struct lam_tar_options {
	unsigned int version;	  /**< LAM_TAR_OPTIONS_VERSION */
	unsigned int compression; /**< a lam_compression */
	int level;		  /**< compression level; 0 for the default */
	lam_progress_cb progress; /**< NULL, or called as data goes out */
	void *userdata;		  /**< passed to @p progress */
} lam_tar_options;

/** Initialise a lam_tar_options. @since 0.1 */
/* clang-format off */
#define LAM_TAR_OPTIONS_INIT {LAM_TAR_OPTIONS_VERSION, LAM_COMPRESS_NONE, 0, NULL, NULL}
/* clang-format on */

/**
 * Write a layer's own delta as an OCI layer tar stream.
 *
 * Entries come in path order, in PAX format (ustar headers, with PAX
 * records only where ustar cannot hold a value), with numeric owners,
 * empty owner names and no access or change times. The output depends on
 * the layer's content alone.
 *
 * @param[in] layer the layer.
 * @param[in] fd where the stream goes (a file or a pipe); written from its
 *            current position, not closed.
 * @param[in] options NULL for an uncompressed stream.
 * @param[out] out_diff_id "sha256:…" of the uncompressed stream (the OCI
 *             diff id); may be NULL.
 * @param[out] out_digest "sha256:…" of the bytes written (the OCI blob
 *             digest; the diff id when uncompressed); may be NULL.
 * @return 0, LAM_EINVAL, LAM_EIO (writing @p fd failed), LAM_ECORRUPT (the
 *         layer's content is damaged), LAM_ENOMEM, LAM_ENOTSUP, or a
 *         non-zero value returned by the progress callback.
 * @since 0.1
 */
LAM_API int lam_layer_export_tar(lam_layer *layer, int fd,
				 const lam_tar_options *options,
				 char out_diff_id[LAM_OCI_DIGEST_SIZE],
				 char out_digest[LAM_OCI_DIGEST_SIZE]);

/** Flags for lam_tar_import_options.flags. @since 0.1 */
enum lam_tar_import_flags {
	/** Refuse character and block devices (LAM_EUNSAFE). */
	LAM_TAR_REFUSE_DEVICES = 1u << 0,
	/** Refuse files with the setuid or setgid bit (LAM_EUNSAFE). */
	LAM_TAR_REFUSE_SETID = 1u << 1,
	/** Clear setuid and setgid bits instead of refusing them. */
	LAM_TAR_STRIP_SETID = 1u << 2,
	/** Do all the work in the calling thread. By default the files'
	 * contents and layer-folder files are written by up to four worker
	 * threads (one per CPU the caller may run on), and one more starts
	 * the write-back of what they wrote, while the calling thread reads
	 * the stream; all of them live for the length of the call only. */
	LAM_TAR_ONE_THREAD = 1u << 3,
};

#define LAM_TAR_IMPORT_OPTIONS_VERSION 1

/** Options for lam_layer_import_tar(). @since 0.1 */
typedef struct lam_tar_import_options {
	unsigned int version; /**< LAM_TAR_IMPORT_OPTIONS_VERSION */
	unsigned int flags;   /**< lam_tar_import_flags */
	/** NULL, or the "sha256:…" the uncompressed stream must have. */
	const char *diff_id;
	/** NULL, or the "sha256:…" the stream as read must have. */
	const char *digest;
	/** The most uncompressed bytes to accept; 0 for no limit. */
	uint64_t max_size;
	lam_progress_cb progress; /**< NULL, or called as data comes in */
	void *userdata;		  /**< passed to @p progress */
} lam_tar_import_options;

/** Initialise a lam_tar_import_options. @since 0.1 */
/* clang-format off */
#define LAM_TAR_IMPORT_OPTIONS_INIT {LAM_TAR_IMPORT_OPTIONS_VERSION, 0, NULL, NULL, 0, NULL, NULL}
/* clang-format on */

/**
 * Create a layer from an OCI layer tar stream and commit it.
 *
 * The stream may be uncompressed, gzip or zstd (detected from its first
 * bytes). It is read to its end, so that its digests cover every byte.
 * With a parent, `.wh.<name>` entries hide the parent chain's @p name and
 * `.wh..wh..opq` makes its directory opaque; a whiteout never hides an
 * entry of its own layer. Directories that entries imply but the stream
 * lacks take the parent chain's metadata (or mode 0755, owner 0:0).
 *
 * Refused, with nothing stored: paths with `..` or a leading `/`
 * (LAM_EUNSAFE); an entry below a symlink, of this stream or of the parent
 * chain (LAM_EUNSAFE); hard links to anything but an earlier entry of the
 * stream (LAM_EUNSAFE); two entries for one path, unless both are
 * directories (LAM_EUNSAFE); a bare `.wh.` or a whiteout of `.` or `..`
 * (LAM_EBADNAME); overlayfs or lamina xattrs (LAM_EUNSAFE); malformed or
 * truncated headers, sizes that disagree or do not fit (LAM_ECORRUPT);
 * a stream over options->max_size (LAM_EQUOTA); a digest that does not
 * match (LAM_ECORRUPT); devices or setid bits refused by the flags
 * (LAM_EUNSAFE); sparse files (LAM_ENOTSUP).
 *
 * @param[out] out the committed layer; the caller frees it with
 *             lam_layer_free(). NULL on failure.
 * @param[in] store the store.
 * @param[in] fd the stream, read from its current position to its end;
 *            not closed.
 * @param[in] parent the parent layer, or NULL for a base layer.
 * @param[in] options NULL for the defaults.
 * @return 0, or one of the codes above, LAM_EINVAL, LAM_EIO, LAM_ENOMEM,
 *         LAM_ENOTSUP, or a non-zero value returned by the progress
 *         callback. On failure the store is as it was.
 * @since 0.1
 */
LAM_API int lam_layer_import_tar(lam_layer **out, lam_store *store, int fd,
				 lam_layer *parent,
				 const lam_tar_import_options *options);

#define LAM_OCI_OPTIONS_VERSION 1

/** Options for lam_oci_export() and lam_oci_import(). @since 0.1 */
typedef struct lam_oci_options {
	unsigned int version; /**< LAM_OCI_OPTIONS_VERSION */
	/** Import: lam_tar_import_flags for every layer. */
	unsigned int flags;
	/** Export: the layers' lam_compression. */
	unsigned int compression;
	/** Import: "os/arch[/variant]" to pick from a multi-platform
	 * index; NULL for the host's platform. */
	const char *platform;
	/** Import: the most uncompressed bytes per layer; 0 for no limit. */
	uint64_t max_size;
	lam_progress_cb progress; /**< NULL, or called as data moves */
	void *userdata;		  /**< passed to @p progress */
} lam_oci_options;

/** Initialise a lam_oci_options. @since 0.1 */
/* clang-format off */
#define LAM_OCI_OPTIONS_INIT {LAM_OCI_OPTIONS_VERSION, 0, LAM_COMPRESS_GZIP, NULL, 0, NULL, NULL}
/* clang-format on */

/**
 * Write the chain of a layer as an image into an OCI image layout folder.
 *
 * The folder is created if missing; an existing layout keeps its images
 * and shares its blobs (a layer already there is not written again). The
 * image's manifest is recorded in `index.json` under @p tag (the
 * `org.opencontainers.image.ref.name` annotation), replacing an image of
 * the same tag. The config lists each layer's diff id and one history
 * entry per layer, for the host's platform.
 *
 * @param[in] store the store.
 * @param[in] name a ref or layer id prefix: the top of the chain.
 * @param[in] dir the layout folder.
 * @param[in] tag the tag to record; NULL records the image untagged.
 * @param[in] options NULL for the defaults (gzip layers).
 * @return 0, LAM_ENOTFOUND (no such layer), LAM_EINVAL (a bad tag or
 *         options), LAM_ECORRUPT (@p dir holds a broken layout), LAM_EIO,
 *         LAM_ENOMEM, LAM_ENOTSUP, or a progress callback's value.
 * @since 0.1
 */
LAM_API int lam_oci_export(lam_store *store, const char *name, const char *dir,
			   const char *tag, const lam_oci_options *options);

/**
 * Import an image from an OCI image layout folder.
 *
 * @p tag selects the image by its `org.opencontainers.image.ref.name`;
 * NULL takes the only image of the layout. An image index (nested, or a
 * multi-platform index.json) gives the manifest for options->platform, or
 * for the host. Every blob is checked against its digest and size, and
 * each layer against its diff id, before anything is published. Layers
 * the store already holds on the same parent are not read again.
 *
 * @param[out] out the top layer of the image; the caller frees it with
 *             lam_layer_free(). NULL on failure.
 * @param[in] store the store.
 * @param[in] dir the layout folder.
 * @param[in] tag the tag, or NULL.
 * @param[in] options NULL for the defaults.
 * @return 0, LAM_ENOTFOUND (no such tag, no manifest for the platform, a
 *         missing blob), LAM_EAMBIGUOUS (no tag given and several images),
 *         LAM_ECORRUPT (malformed JSON, a digest mismatch), LAM_ENOTSUP (a
 *         media type lamina does not read), the codes of
 *         lam_layer_import_tar(), LAM_EIO, LAM_ENOMEM. Layers of the image
 *         that were committed before a failure stay in the store (without
 *         a ref, gc removes them).
 * @since 0.1
 */
LAM_API int lam_oci_import(lam_layer **out, lam_store *store, const char *dir,
			   const char *tag, const lam_oci_options *options);

#ifdef __cplusplus
}
#endif

#endif
