/* SPDX-License-Identifier: MIT */
/*
 * Squash: one layer on @onto that holds @top's merged content. The entries
 * that differ from @onto's merged tree (with their folders, and whole
 * hard-link groups) are checked out into a staging folder, deletions
 * become whiteouts, and the folder is imported like any diff. Contents are
 * shared objects, so nothing new is stored for unchanged bytes.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "kv/internal.h"
#include "layer/internal.h"

static bool differs(const lam__entry *a, const lam__entry *b)
{
	return a->mode != b->mode || a->uid != b->uid || a->gid != b->gid ||
	       a->size != b->size || a->rdev != b->rdev ||
	       a->mtime_sec != b->mtime_sec || a->mtime_nsec != b->mtime_nsec ||
	       ((a->flags ^ b->flags) & LAM__E_OBJECT) ||
	       memcmp(&a->obj.digest, &b->obj.digest, 16) != 0 ||
	       a->target_len != b->target_len ||
	       memcmp(a->target, b->target, a->target_len) != 0 ||
	       a->xattrs_len != b->xattrs_len ||
	       memcmp(a->xattrs, b->xattrs, a->xattrs_len) != 0;
}

static bool is_ancestor(lam_layer *onto, lam_layer *top)
{
	lam_layer *cur = lam_layer_ref(top);
	bool found = false;
	while (cur != NULL && !found) {
		found = strcmp(cur->rec.id, onto->rec.id) == 0;
		lam_layer *next = NULL;
		if (!found && lam_layer_parent(&next, cur) < 0)
			next = NULL;
		lam_layer_free(cur);
		cur = found ? NULL : next;
	}
	lam__error_reset();
	return found;
}

/* Mark, in the sorted merged array, entry i and every folder above it. */
static void mark_with_parents(const lam__chain *c, uint8_t *keep, size_t i)
{
	lam__entry e;
	lam__chain_entry(c, i, &e);
	keep[i] = 1;
	for (uint32_t k = e.path_len; k > 0; k--) {
		if (e.path[k - 1] != '/')
			continue;
		int64_t p = lam__chain_find(c, e.path, k - 1);
		if (p < 0 || keep[p])
			break;
		keep[p] = 1;
	}
	int64_t root = lam__chain_find(c, "", 0);
	if (root >= 0)
		keep[root] = 1;
}

static int write_whiteouts(lam_store *s, const lam__merged *mo,
			   const lam__chain *ct, const char *dest)
{
	int dfd = open(dest, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return lam__error_errno(errno, "opening %s", dest);
	int rc = 0;
	const char *gone = NULL;
	uint32_t gone_len = 0;
	for (size_t i = 0; i < mo->count && rc == 0; i++) {
		lam__entry e;
		lam__merged_get(mo, i, &e);
		if (e.path_len == 0 ||
		    lam__chain_find(ct, e.path, e.path_len) >= 0)
			continue;
		/* Below a path that top holds as a non-folder, nothing needs
		 * hiding: that entry hides it already. */
		const char *slash = memrchr(e.path, '/', e.path_len);
		if (slash != NULL) {
			int64_t p = lam__chain_find(ct, e.path,
						    (size_t)(slash - e.path));
			lam__entry pe;
			if (p < 0)
				continue;
			lam__chain_entry(ct, (size_t)p, &pe);
			if (!S_ISDIR(pe.mode))
				continue;
		}
		if (gone && e.path_len > gone_len && e.path[gone_len] == '/' &&
		    memcmp(e.path, gone, gone_len) == 0)
			continue; /* inside a folder already whited out */
		gone = e.path;
		gone_len = e.path_len;
		char path[4096];
		if (e.path_len >= sizeof(path))
			continue;
		memcpy(path, e.path, e.path_len);
		path[e.path_len] = '\0';
		if (mknodat(dfd, path, S_IFCHR | 0000, 0) == 0)
			continue;
		if (errno != EPERM) {
			rc = lam__error_errno(errno, "whiteout for %s", path);
			break;
		}
		int fd = openat(dfd, path,
				O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0000);
		char x[64];
		snprintf(x, sizeof(x), "%swhiteout", s->overlay_xattr);
		if (fd < 0 || fsetxattr(fd, x, "y", 1, 0) < 0)
			rc = lam__error_errno(errno, "whiteout for %s", path);
		if (fd >= 0)
			close(fd);
	}
	close(dfd);
	return rc;
}

/* The key/value delta of the squashed layer, staged with its files. */
typedef struct squash_kv {
	lam_layer *top, *onto;
} squash_kv;

static int stage_kv(void *ctx, int layerfd, lam__digest *extra, bool *has)
{
	squash_kv *k = ctx;
	return lam__kv_squash(k->top->store, k->top, k->onto, layerfd, extra,
			      has);
}

int lam_layer_squash(lam_layer **out, lam_layer *top, lam_layer *onto)
{
	lam__error_reset();
	if (out == NULL)
		return lam__error(LAM_EINVAL, "lam_layer_squash: NULL out");
	*out = NULL;
	if (top == NULL)
		return lam__error(LAM_EINVAL, "lam_layer_squash: NULL top");
	if (onto != NULL &&
	    (onto->store != top->store || !is_ancestor(onto, top)))
		return lam__error(LAM_EINVAL,
				  "squash: %s is not an ancestor of %s",
				  onto->rec.id, top->rec.id);
	lam_store *s = top->store;
	lam__chain *ct = NULL;
	lam__merged mo = {0};
	uint8_t *keep = NULL;
	lam__merged sub = {0};
	int rc = lam__chain_get(&ct, top);
	if (rc == 0 && onto != NULL)
		rc = lam__merged_build(&mo, onto);
	if (rc == 0 && (keep = lam__calloc(ct->m.count + 1, 1)) == NULL)
		rc = lam__error(LAM_ENOMEM, "out of memory");
	lam__chain *co = NULL;
	if (rc == 0 && onto != NULL)
		rc = lam__chain_get(&co, onto);
	for (size_t i = 0; rc == 0 && i < ct->m.count; i++) {
		lam__entry e, o;
		lam__chain_entry(ct, i, &e);
		int64_t j = co ? lam__chain_find(co, e.path, e.path_len) : -1;
		if (j >= 0) {
			lam__chain_entry(co, (size_t)j, &o);
			if (!differs(&e, &o))
				continue;
		}
		mark_with_parents(ct, keep, i);
		size_t first, count;
		lam__chain_link_members(ct, i, &first, &count);
		for (size_t k = 0; k < count; k++)
			mark_with_parents(ct, keep, ct->links[first + k]);
	}
	/* A filtered view of the merged array, borrowing its layers. */
	if (rc == 0) {
		sub.chain = ct->m.chain;
		sub.depth = ct->m.depth;
		sub.ents = lam__malloc((ct->m.count + 1) * sizeof(*sub.ents));
		if (sub.ents == NULL)
			rc = lam__error(LAM_ENOMEM, "out of memory");
		for (size_t i = 0; rc == 0 && i < ct->m.count; i++)
			if (keep[i])
				sub.ents[sub.count++] = ct->m.ents[i];
	}
	char stage[37] = "", dest[4200];
	int stagefd = -1, gclk = -1;
	if (rc == 0) {
		gclk = lam__store_gc_lock(s, false, true);
		if (gclk < 0)
			rc = gclk;
	}
	if (rc == 0)
		rc = lam__store_staging(s, stage, &stagefd);
	snprintf(dest, sizeof(dest), "%s/tmp/%s/tree", s->path, stage);
	if (rc == 0)
		rc = lam__checkout_merged(&sub, dest, geteuid() == 0);
	if (rc == 0 && onto != NULL)
		rc = write_whiteouts(s, &mo, ct, dest);
	squash_kv kctx = {top, onto};
	lam__import_hooks hooks = {.stage = stage_kv, .ctx = &kctx};
	if (rc == 0)
		rc = lam__layer_import(out, s, dest, onto, &hooks);
	lam__unlock(gclk);
	lam__close(&stagefd);
	if (stage[0])
		lam__rmtree_quiet(s->tmpfd, stage);
	lam__free(sub.ents);
	lam__free(keep);
	lam__merged_free(&mo);
	lam__chain_unref(co);
	lam__chain_unref(ct);
	return rc;
}
