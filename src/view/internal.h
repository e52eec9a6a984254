/* SPDX-License-Identifier: MIT */
/*
 * Views: a writable upper over a cached merged chain.
 *
 * On disk, a stored view is views/<uuid>/:
 *   meta         the view record (base layer, upper generation), checksummed
 *   upper-<gen>/ the upper, in overlayfs upperdir form (whiteouts are 0/0
 *                character devices, opaque folders carry <ns>opaque=y,
 *                a folder renamed from a lower layer carries <ns>redirect)
 *   work/        an empty overlayfs workdir, for a kernel mount of the view
 *   partial/     chunk maps of files copied up only in part
 *   kv.log       the key/value change log (src/kv)
 * Commit publishes a layer, then switches meta to the new base and a fresh
 * upper generation in one atomic write; the old upper is removed after.
 */
#ifndef LAM_VIEW_INTERNAL_H
#define LAM_VIEW_INTERNAL_H

#include "layer/internal.h"

struct lam__kv_view; /* owned by src/kv */

/* The view's own quotas and what its upper uses (when limits are set). */
typedef struct lam__vquota {
	lam_view_quota limits;
	uint64_t bytes;	 /* allocated bytes of upper regular files */
	uint64_t inodes; /* upper inodes, the root not counted */
	bool loaded;	 /* limits read from the view's folder */
	bool counted;	 /* usage is known (false: walk the upper again) */
} lam__vquota;

struct lam_view {
	lam_store *store;
	char id[37];
	bool readonly;
	bool stored;
	lam_layer *base;   /* NULL for a view over nothing */
	lam__chain *chain; /* merged lookup table of base's chain, or NULL */
	int viewfd;	   /* views/<uuid>, or -1 */
	int upperfd;	   /* views/<uuid>/upper-<gen>, or -1 */
	unsigned int gen;
	struct lam__kv_view *kv; /* key/value state, created on first use */
	lam__vquota quota;
	bool chain_stale; /* base changed: build chain on first need */
	/* The upper root's state, read once: lookups start there. */
	bool root_known;
	uint32_t root_mode;
	bool root_opaque;
};

/* Quotas: every function is free when the view has no limits. */
int lam__quota_inodes(lam_view *v, uint64_t more); /* EDQUOT if over */
void lam__quota_add_inodes(lam_view *v, int64_t delta);
/* Before writing [off, off+n) to fd: EDQUOT if it could pass max_bytes. */
int lam__quota_write(lam_view *v, int fd, uint64_t off, uint64_t n,
		     bool partial);
/* After a change to fd's allocation: charge the difference. */
void lam__quota_blocks(lam_view *v, uint64_t before, uint64_t after);
uint64_t lam__quota_alloc(int fd);
/* The upper changed in a way not counted step by step: recount later. */
void lam__quota_dirty(lam_view *v);
/* The view's stored limits (no limits when none were set). */
int lam__quota_limits(lam_view *v, lam_view_quota *out);

/* The view's folder name for its current upper. */
void lam__view_upper_name(char out[32], unsigned int gen);

/* Resolution of a view path: one level per component, the root first. */
typedef struct lam__vlevel {
	uint32_t len;  /* length of the view path up to this level */
	int64_t lower; /* merged chain index of the lower entry, or -1 */
	uint32_t mode; /* type and permissions visible here, 0 = nothing */
	bool upper;    /* a real (non-whiteout) upper entry exists */
	bool whiteout; /* the upper holds a whiteout here */
	bool opaque;   /* the upper folder here is opaque */
	bool lower_ok; /* lower entries may show below this folder */
} lam__vlevel;

#define LAM__VIEW_MAX_DEPTH 2048

typedef struct lam__vpath {
	char p[4096]; /* the normalised path, no leading '/', "" = root */
	uint32_t len;
	uint32_t depth; /* levels in lv, root included */
	lam__vlevel lv[LAM__VIEW_MAX_DEPTH];
} lam__vpath;

enum {
	LAM__FOLLOW = 1u << 0, /* follow a final symlink */
	LAM__CREATE = 1u << 1, /* the last name is to be made: a trailing
				  slash neither follows nor needs a folder */
};

/* Errors of the file API: LAM_EPOSIX carrying errno. */
int lam__view_posix(int err, const char *fmt, ...) LAM__PRINTF(2, 3);

int lam__view_resolve(lam_view *v, const char *path, unsigned int flags,
		      lam__vpath *out);
static inline lam__vlevel *lam__vlast(lam__vpath *vp)
{
	return &vp->lv[vp->depth - 1];
}
/* Is the view writable? EROFS otherwise. */
int lam__view_writable(lam_view *v);
/* Copy up every folder above the last level (and, with self, the last
 * level itself: files metadata-only, folders without their contents). */
int lam__view_copy_up(lam_view *v, lam__vpath *vp, bool self);
/* Make a whole folder subtree live in the upper (for renames), marking it
 * opaque. */
int lam__view_copy_up_tree(lam_view *v, lam__vpath *vp);
/* Finish group copy-ups a kill interrupted, and clear work/ (at open). */
int lam__view_recover_work(lam_view *v);
/* An entry staged in work/ for the last level of vp gets what creating it
 * in its real folder would have given: a set-group-ID folder's group, and
 * for a folder the set-group-ID bit too. */
void lam__view_inherit_setgid(lam_view *v, lam__vpath *vp, int workfd,
			      const char *tmp, bool dir);
/* Is the merged folder empty? */
int lam__view_dir_empty(lam_view *v, lam__vpath *vp, bool *empty);
/* Private xattr names (partial-file marks), hidden from readers. */
bool lam__view_private_xattr(const char *name);
/* Full names of overlayfs marks in this store's namespace. */
void lam__view_ovl(const lam_view *v, char out[64], const char *key);
bool lam__view_is_whiteout(lam_view *v, int dirfd, const char *name,
			   const struct stat *st);
int lam__view_make_whiteout(lam_view *v, int dirfd, const char *name);
/* A fresh name in work/ for staging an entry. */
void lam__view_tmpname(char out[64]);
int lam__view_workfd(lam_view *v);

/* Partially copied-up files. */
typedef struct lam__partial {
	char id[37];
	lam__objid obj; /* the lower content */
	uint64_t valid; /* bytes below this may come from the object */
	uint64_t nchunks;
	uint8_t *bits; /* chunk present in the upper */
	int objfd;     /* opened lazily */
	int mapfd;     /* partial/<id>, for updates */
} lam__partial;

#define LAM__CHUNK (64u * 1024u)

/* Load the partial state of an upper file (fd); *out NULL if complete. */
int lam__partial_load(lam_view *v, int fd, lam__partial **out);
int lam__partial_create(lam_view *v, int fd, const lam__objid *obj,
			uint64_t size);
void lam__partial_free(lam__partial *p);
int lam__partial_read(lam_view *v, lam__partial *p, int fd, void *buf, size_t n,
		      uint64_t off, size_t *got);
/* Make chunks touched by [off, off+n) present before a write. */
int lam__partial_prepare_write(lam_view *v, lam__partial *p, int fd,
			       uint64_t off, uint64_t n);
/* After a write of [off, off+n) landed: its chunks now live in the upper. */
int lam__partial_mark(lam__partial *p, uint64_t off, uint64_t n);
int lam__partial_truncate(lam_view *v, lam__partial *p, uint64_t size);
/* Fill every missing chunk and drop the partial state: a plain file. */
int lam__partial_complete(lam_view *v, lam__partial *p, int fd);
/* True when no chunk was copied and nothing was cut: same content as the
 * lower object (for metadata-only commits). */
bool lam__partial_untouched(lam_view *v, lam__partial *p, uint64_t size);
int lam__partial_forget(lam_view *v, int fd);

/* Stat of a visible entry at the last level. */
int lam__view_stat_level(lam_view *v, lam__vpath *vp, lam_stat *out);
uint64_t lam__view_lower_ino(const lam__chain *c, size_t i);
void lam__view_fill_lower(lam_view *v, size_t idx, lam_stat *o);
/* Build the merged chain of the base if it is not built yet. */
int lam__view_need_chain(lam_view *v);
int lam__view_xattr_blob(lam_view *v, lam__vpath *vp, lam__buf *out);
/* Fill level d of vp from the path already in vp->p (for walks that
 * descend by hand). */
void lam__view_look_up(lam_view *v, lam__vpath *vp, uint32_t d);

#endif
