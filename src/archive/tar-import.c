/* SPDX-License-Identifier: MIT */
/*
 * lam_layer_import_tar(): a layer from an OCI layer tar stream, in one
 * pass. File contents go straight from the stream into content objects;
 * the members are collected as entries, checked and normalised by the OCI
 * rules once the whole stream has been read (an opaque marker applies
 * whatever its position, a whiteout never hides its own layer's entries),
 * and the digests are verified; only then is the layer folder staged from
 * the entries and published (layer/builder.c). Nothing is ever extracted
 * to a path that a member names: the staging is built from validated
 * relative paths, below folders the builder created itself.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "archive/internal.h"
#include "kv/internal.h"

#define MAX_ENTRIES (16u << 20)

enum {
	K_REAL,
	K_WHITEOUT,
	K_OPAQUE,
	K_IMPLICIT
};

typedef struct rec {
	lam__entry e; /* strings owned */
	uint32_t kind;
	uint32_t group; /* 1 + the index of its hard-link group's first rec */
	bool staged;	/* the writers put it in fs/ already */
} rec;

typedef struct imp {
	lam_store *s;
	lam_layer *parent;
	lam__chain *chain; /* the parent's merged chain, or NULL */
	const lam_tar_import_options *o;
	lam__tin in;
	lam__tar_reader r;
	lam__tar_hdr h;
	rec *recs;
	size_t n, cap;
	uint32_t *map; /* open addressing over real and implicit recs */
	size_t mcap, mused;
	uint32_t *wmap; /* the whiteouts */
	size_t wcap, nwhiteouts;
	lam__writers *jobs;
	lam__objid *created;
	size_t ncreated, ccap;
	lam__buf work;
	lam__buf path; /* the normalised path of the current member */
	lam__buf link;
} imp;

/* ---- the path map ---- */

static size_t slot(const imp *im, const char *p, size_t len)
{
	return (size_t)lam__hash64(p, len) & (im->mcap - 1);
}

static int64_t map_find(const imp *im, const char *p, size_t len)
{
	if (im->mcap == 0)
		return -1;
	for (size_t j = slot(im, p, len); im->map[j] != 0;
	     j = (j + 1) & (im->mcap - 1)) {
		const lam__entry *e = &im->recs[im->map[j] - 1].e;
		if (e->path_len == len && memcmp(e->path, p, len) == 0)
			return im->map[j] - 1;
	}
	return -1;
}

static int map_add(imp *im, size_t idx)
{
	if ((im->mused + 1) * 2 > im->mcap) {
		size_t cap = im->mcap ? im->mcap * 2 : 1024;
		uint32_t *m = lam__calloc(cap, sizeof(*m));
		if (m == NULL)
			return lam__error(LAM_ENOMEM, "out of memory");
		uint32_t *old = im->map;
		size_t ocap = im->mcap;
		im->map = m;
		im->mcap = cap;
		for (size_t i = 0; i < ocap; i++) {
			if (old[i] == 0)
				continue;
			const lam__entry *e = &im->recs[old[i] - 1].e;
			size_t j = slot(im, e->path, e->path_len);
			while (m[j] != 0)
				j = (j + 1) & (cap - 1);
			m[j] = old[i];
		}
		lam__free(old);
	}
	const lam__entry *e = &im->recs[idx].e;
	size_t j = slot(im, e->path, e->path_len);
	while (im->map[j] != 0)
		j = (j + 1) & (im->mcap - 1);
	im->map[j] = (uint32_t)idx + 1;
	im->mused++;
	return 0;
}

static rec *new_rec(imp *im, const char *path, size_t len, uint32_t kind)
{
	if (im->n >= MAX_ENTRIES) {
		lam__error(LAM_EQUOTA, "more than %u entries in one layer",
			   MAX_ENTRIES);
		return NULL;
	}
	if (im->n == im->cap) {
		size_t cap = im->cap ? im->cap * 2 : 256;
		rec *r = lam__realloc(im->recs, cap * sizeof(*r));
		if (r == NULL) {
			lam__error(LAM_ENOMEM, "out of memory");
			return NULL;
		}
		im->recs = r;
		im->cap = cap;
	}
	char *p = lam__strndup(path, len);
	if (p == NULL) {
		lam__error(LAM_ENOMEM, "out of memory");
		return NULL;
	}
	rec *r = &im->recs[im->n++];
	memset(r, 0, sizeof(*r));
	r->e.path = p;
	r->e.path_len = (uint32_t)len;
	r->e.nlink = 1;
	r->kind = kind;
	return r;
}

/* ---- paths ---- */

/* Normalise a member's path: "./" prefixes, "." and empty components and a
 * trailing "/" go; a leading "/" or a ".." component is refused. The root
 * is "". */
static int norm_path(lam__buf *out, const char *in, size_t len,
		     const char *what)
{
	out->len = 0;
	if (len > 0 && in[0] == '/')
		return lam__error(LAM_EUNSAFE,
				  "%s \"%.200s\": absolute paths are refused",
				  what, in);
	int rc = lam__buf_grow(out, len + 1);
	if (rc < 0)
		return rc;
	size_t i = 0;
	while (i < len) {
		size_t j = i;
		while (j < len && in[j] != '/')
			j++;
		size_t cl = j - i;
		if (cl == 2 && in[i] == '.' && in[i + 1] == '.')
			return lam__error(LAM_EUNSAFE,
					  "%s \"%.200s\": \"..\" leads out of "
					  "the layer",
					  what, in);
		if (cl > NAME_MAX)
			return lam__error(LAM_ENAMETOOLONG,
					  "%s \"%.200s\": a name is longer "
					  "than %d bytes",
					  what, in, NAME_MAX);
		if (cl > 0 && !(cl == 1 && in[i] == '.')) {
			if (out->len)
				out->data[out->len++] = '/';
			memcpy(out->data + out->len, in + i, cl);
			out->len += cl;
		}
		i = j + 1;
	}
	out->data[out->len] = '\0';
	return 0;
}

static size_t parent_len(const char *p, size_t len)
{
	for (size_t k = len; k > 0; k--)
		if (p[k - 1] == '/')
			return k - 1;
	return 0;
}

/* ---- members ---- */

static bool reserved_xattr(const char *n, size_t len)
{
	/* overlayfs's marks would change what a kernel mount of the layer
	 * folder shows (a redirect could point anywhere in the objects);
	 * lamina's partial mark would make a reader trust missing data. */
	static const char *const pre[] = {"trusted.overlay.", "user.overlay."};
	static const char *const exact[] = {"trusted.lamina.partial",
					    "user.lamina.partial"};
	for (size_t i = 0; i < LAM__ARRAY_LEN(pre); i++) {
		size_t pl = strlen(pre[i]);
		if (len >= pl && memcmp(n, pre[i], pl) == 0)
			return true;
	}
	for (size_t i = 0; i < LAM__ARRAY_LEN(exact); i++)
		if (len == strlen(exact[i]) && memcmp(n, exact[i], len) == 0)
			return true;
	return false;
}

typedef struct xa {
	const char *name, *value;
	uint32_t nl, vl;
} xa;

static int xa_cmp(const void *a, const void *b)
{
	const xa *x = a, *y = b;
	size_t n = x->nl < y->nl ? x->nl : y->nl;
	int c = memcmp(x->name, y->name, n);
	return c ? c : (x->nl > y->nl) - (x->nl < y->nl);
}

/* The member's xattrs, checked, as a blob sorted by name (the form the
 * folder import gives, so that the digests agree). */
static int take_xattrs(imp *im, lam__entry *e)
{
	const lam__buf *b = &im->h.xattrs;
	if (b->len == 0)
		return 0;
	size_t count = 0;
	uint32_t off = 0;
	lam__xattr x;
	while (lam__xattr_next(b->data, (uint32_t)b->len, &off, &x) == 1)
		count++;
	xa *v = lam__malloc(count * sizeof(*v));
	char *blob = lam__malloc(b->len);
	if (v == NULL || blob == NULL) {
		lam__free(v);
		lam__free(blob);
		return lam__error(LAM_ENOMEM, "out of memory");
	}
	off = 0;
	for (size_t i = 0; i < count; i++) {
		lam__xattr_next(b->data, (uint32_t)b->len, &off, &x);
		v[i] = (xa){x.name, x.value, x.name_len, x.value_len};
		if (reserved_xattr(x.name, x.name_len)) {
			lam__free(v);
			lam__free(blob);
			return lam__error(LAM_EUNSAFE,
					  "entry %s: xattr %.*s is reserved "
					  "for overlayfs and lamina",
					  im->path.data, (int)x.name_len,
					  x.name);
		}
	}
	qsort(v, count, sizeof(*v), xa_cmp);
	size_t o = 0;
	for (size_t i = 0; i < count; i++) {
		uint32_t hdr[2] = {htole32(v[i].nl), htole32(v[i].vl)};
		memcpy(blob + o, hdr, 8);
		memcpy(blob + o + 8, v[i].name, v[i].nl);
		memcpy(blob + o + 8 + v[i].nl, v[i].value, v[i].vl);
		o += 8 + v[i].nl + v[i].vl;
	}
	lam__free(v);
	e->xattrs = blob;
	e->xattrs_len = (uint32_t)o;
	return 0;
}

static int read_data(void *ctx, void *buf, size_t len, size_t *got)
{
	imp *im = ctx;
	int rc = lam__tar_data(&im->r, buf, len, got);
	if (rc == 0 && *got < len)
		rc = lam__error(LAM_ECORRUPT,
				"truncated stream: file %s ends early",
				im->path.data);
	return rc;
}

static int note_created(imp *im, const lam__objid *id)
{
	if (im->ncreated == im->ccap) {
		size_t cap = im->ccap ? im->ccap * 2 : 64;
		lam__objid *c = lam__realloc(im->created, cap * sizeof(*c));
		if (c == NULL)
			return lam__error(LAM_ENOMEM, "out of memory");
		im->created = c;
		im->ccap = cap;
	}
	im->created[im->ncreated++] = *id;
	return 0;
}

/* A writer's result, in order: the rec's object, and whether the file is
 * staged. */
static int reaped(void *ctx, const lam__writer_result *r)
{
	imp *im = ctx;
	rec *rc = &im->recs[r->tag];
	if (r->has_obj) {
		rc->e.obj = r->obj;
		rc->e.flags |= LAM__E_OBJECT;
	}
	rc->staged = r->staged;
	return r->stored ? note_created(im, &r->obj) : 0;
}

/* Read regular file idx's content and hand it to the writers. */
static int store_content(imp *im, size_t idx)
{
	lam__entry *e = &im->recs[idx].e;
	void *data = NULL;
	int rc = 0;
	if (e->size > LAM__WRITERS_MAX) {
		bool stored = false;
		rc = lam__object_put_stream(im->s, e->size, read_data, im,
					    &im->work, false, &e->obj, &stored);
		if (rc == 0) {
			e->flags |= LAM__E_OBJECT;
			if (stored)
				rc = note_created(im, &e->obj);
		}
	} else if (e->size > 0) {
		data = lam__malloc((size_t)e->size);
		if (data == NULL)
			return lam__error(LAM_ENOMEM, "out of memory");
		size_t got = 0;
		rc = read_data(im, data, (size_t)e->size, &got);
		if (rc != 0)
			lam__free(data);
	}
	if (rc != 0) {
		if (rc < 0 && lam_error_last()->code == rc &&
		    strstr(lam_error_last()->message, im->path.data) == NULL)
			lam__error_prefix(rc, "file %s", im->path.data);
		return rc;
	}
	return lam__writers_submit(im->jobs, idx, e, data);
}

static int dup_str(const char **out, const char *s, uint32_t len)
{
	*out = NULL;
	if (len == 0)
		return 0;
	char *p = lam__malloc(len);
	if (p == NULL)
		return lam__error(LAM_ENOMEM, "out of memory");
	memcpy(p, s, len);
	*out = p;
	return 0;
}

static int add_hardlink(imp *im, rec *r)
{
	int rc = norm_path(&im->link, im->h.link.data, im->h.link.len,
			   "hard link target");
	if (rc < 0)
		return lam__error_prefix(rc, "entry %s", im->path.data);
	int64_t t = map_find(im, im->link.data, im->link.len);
	const rec *tr = t >= 0 ? &im->recs[t] : NULL;
	if (tr == NULL || tr->kind != K_REAL || S_ISDIR(tr->e.mode))
		return lam__error(LAM_EUNSAFE,
				  "hard link %s -> %s: the target is not an "
				  "earlier file of this archive",
				  im->path.data, im->link.data);
	size_t root = tr->group ? tr->group - 1 : (size_t)t;
	im->recs[root].group = (uint32_t)root + 1;
	const lam__entry *src = &im->recs[root].e;
	const char *path = r->e.path;
	uint32_t plen = r->e.path_len;
	r->e = *src;
	r->e.path = path;
	r->e.path_len = plen;
	r->group = (uint32_t)root + 1;
	rc = dup_str(&r->e.target, src->target, src->target_len);
	if (rc == 0)
		rc = dup_str(&r->e.xattrs, src->xattrs, src->xattrs_len);
	return rc;
}

static int add_member(imp *im)
{
	const lam__tar_hdr *h = &im->h;
	int rc = norm_path(&im->path, h->path.data, h->path.len, "entry");
	if (rc < 0)
		return rc;
	const char *p = im->path.data;
	size_t len = im->path.len;
	size_t pl = parent_len(p, len);
	const char *base = p + (pl ? pl + 1 : 0);
	size_t bl = len - (size_t)(base - p);
	if (bl >= 4 && memcmp(base, ".wh.", 4) == 0) {
		if (bl == 4)
			return lam__error(LAM_EBADNAME,
					  "entry %s: a bare \".wh.\" names "
					  "nothing",
					  h->path.data);
		if (bl == 12 && memcmp(base, ".wh..wh..opq", 12) == 0)
			return new_rec(im, p, pl, K_OPAQUE) ? 0 : -1;
		if (bl >= 8 && memcmp(base, ".wh..wh.", 8) == 0) {
			/* aufs's own files, not whiteouts: docker skips
			 * them too. */
			lam__log(LAM_LOG_INFO, "skipping %s", h->path.data);
			return 0;
		}
		const char *name = base + 4;
		size_t nl = bl - 4;
		if (nl == 1 && name[0] == '.')
			return lam__error(LAM_EBADNAME,
					  "entry %s: a whiteout of \".\" (the "
					  "folder itself) is refused",
					  h->path.data);
		if (nl == 2 && name[0] == '.' && name[1] == '.')
			return lam__error(LAM_EUNSAFE,
					  "entry %s: a whiteout of \"..\" "
					  "leads out of the layer",
					  h->path.data);
		char *wp = lam__malloc(len + 1);
		if (wp == NULL)
			return lam__error(LAM_ENOMEM, "out of memory");
		memcpy(wp, p, (size_t)(base - p));
		memcpy(wp + (base - p), name, nl);
		rec *r = new_rec(im, wp, (size_t)(base - p) + nl, K_WHITEOUT);
		lam__free(wp);
		if (r == NULL)
			return -1;
		r->e.mode = S_IFCHR | h->mode;
		r->e.uid = h->uid;
		r->e.gid = h->gid;
		r->e.mtime_sec = h->mtime_sec;
		r->e.mtime_nsec = h->mtime_nsec;
		r->e.flags = LAM__E_WHITEOUT;
		return 0;
	}
	int64_t prev = map_find(im, p, len);
	if (prev >= 0) {
		/* A folder given twice: the later metadata wins. */
		if (h->type == '5' && S_ISDIR(im->recs[prev].e.mode) &&
		    im->recs[prev].kind == K_REAL) {
			lam__entry *e = &im->recs[prev].e;
			lam__free((char *)e->xattrs);
			e->xattrs = NULL;
			e->xattrs_len = 0;
			e->mode = S_IFDIR | h->mode;
			e->uid = h->uid;
			e->gid = h->gid;
			e->mtime_sec = h->mtime_sec;
			e->mtime_nsec = h->mtime_nsec;
			return take_xattrs(im, e);
		}
		return lam__error(LAM_EUNSAFE,
				  "entry %s appears twice in the archive",
				  len ? p : ".");
	}
	unsigned int flags = im->o ? im->o->flags : 0;
	uint32_t mode = h->mode;
	if (h->type != '5' && (mode & (S_ISUID | S_ISGID))) {
		if (flags & LAM_TAR_REFUSE_SETID)
			return lam__error(LAM_EUNSAFE,
					  "entry %s: setuid and setgid files "
					  "are refused",
					  h->path.data);
		if (flags & LAM_TAR_STRIP_SETID)
			mode &= ~(uint32_t)(S_ISUID | S_ISGID);
	}
	if ((h->type == '3' || h->type == '4') &&
	    (flags & LAM_TAR_REFUSE_DEVICES))
		return lam__error(LAM_EUNSAFE,
				  "entry %s: device nodes are refused",
				  h->path.data);
	if (len == 0 && h->type != '5')
		return lam__error(LAM_EUNSAFE,
				  "entry %s: the layer root must be a folder",
				  h->path.data);
	rec *r = new_rec(im, p, len, K_REAL);
	if (r == NULL)
		return -1;
	size_t idx = im->n - 1;
	lam__entry *e = &r->e;
	e->uid = h->uid;
	e->gid = h->gid;
	e->mtime_sec = h->mtime_sec;
	e->mtime_nsec = h->mtime_nsec;
	switch (h->type) {
	case '1':
		rc = add_hardlink(im, r);
		break;
	case '0':
		e->mode = S_IFREG | mode;
		e->size = h->size;
		/* The writers take the xattrs with the file. */
		rc = take_xattrs(im, e);
		if (rc == 0)
			rc = store_content(im, idx);
		break;
	case '2':
		if (h->link.len == 0)
			return lam__error(LAM_ECORRUPT,
					  "entry %s: symlink without a target",
					  h->path.data);
		/* Linux has no symlink permissions: they read 0777. */
		e->mode = S_IFLNK | 0777;
		rc = dup_str(&e->target, h->link.data, (uint32_t)h->link.len);
		e->target_len = (uint32_t)h->link.len;
		break;
	case '3':
	case '4':
		e->mode = (h->type == '3' ? S_IFCHR : S_IFBLK) | mode;
		e->rdev = makedev(h->devmajor, h->devminor);
		break;
	case '5':
		e->mode = S_IFDIR | mode;
		break;
	case '6':
		e->mode = S_IFIFO | mode;
		break;
	}
	if (rc == 0 && h->type != '1' && h->type != '0')
		rc = take_xattrs(im, &im->recs[idx].e);
	if (rc == 0)
		rc = map_add(im, idx);
	return rc;
}

/* ---- normalisation ---- */

static bool whited_out(const imp *im, const char *p, size_t len)
{
	if (im->nwhiteouts == 0)
		return false;
	uint64_t h = lam__hash64(p, len);
	for (size_t j = (size_t)h & (im->wcap - 1); im->wmap[j] != 0;
	     j = (j + 1) & (im->wcap - 1)) {
		const lam__entry *e = &im->recs[im->wmap[j] - 1].e;
		if (e->path_len == len && memcmp(e->path, p, len) == 0)
			return true;
	}
	return false;
}

/* Index the whiteouts (once the stream is read and recs stop moving). */
static int map_whiteouts(imp *im)
{
	for (size_t i = 0; i < im->n; i++)
		if (im->recs[i].kind == K_WHITEOUT)
			im->nwhiteouts++;
	if (im->nwhiteouts == 0)
		return 0;
	im->wcap = 16;
	while (im->wcap < im->nwhiteouts * 2)
		im->wcap *= 2;
	im->wmap = lam__calloc(im->wcap, sizeof(*im->wmap));
	if (im->wmap == NULL)
		return lam__error(LAM_ENOMEM, "out of memory");
	for (size_t i = 0; i < im->n; i++) {
		if (im->recs[i].kind != K_WHITEOUT)
			continue;
		const lam__entry *e = &im->recs[i].e;
		size_t j = (size_t)lam__hash64(e->path, e->path_len) &
			   (im->wcap - 1);
		while (im->wmap[j] != 0)
			j = (j + 1) & (im->wcap - 1);
		im->wmap[j] = (uint32_t)i + 1;
	}
	return 0;
}

/* Give folder p (missing from the stream) an entry: the parent chain's
 * metadata for it, or the defaults. A symlink below would make the members
 * under p land through it: refused. */
static int add_implicit(imp *im, const char *p, size_t len, const char *child)
{
	lam__entry lower;
	bool have_lower = false;
	if (im->chain != NULL && !whited_out(im, p, len)) {
		int64_t k = lam__chain_find(im->chain, p, len);
		if (k >= 0) {
			lam__chain_entry(im->chain, (size_t)k, &lower);
			if (S_ISLNK(lower.mode))
				return lam__error(
					LAM_EUNSAFE,
					"entry %.*s lies below %.*s, a symlink "
					"in a lower layer: writing through "
					"symlinks is refused",
					(int)strlen(child), child, (int)len, p);
			have_lower = S_ISDIR(lower.mode);
		}
	}
	char *copy = lam__strndup(p, len);
	if (copy == NULL)
		return lam__error(LAM_ENOMEM, "out of memory");
	rec *r = new_rec(im, copy, len, K_IMPLICIT);
	lam__free(copy);
	if (r == NULL)
		return -1;
	if (have_lower) {
		r->e.mode = lower.mode;
		r->e.uid = lower.uid;
		r->e.gid = lower.gid;
		r->e.mtime_sec = lower.mtime_sec;
		r->e.mtime_nsec = lower.mtime_nsec;
		int rc = dup_str(&r->e.xattrs, lower.xattrs, lower.xattrs_len);
		if (rc == 0)
			r->e.xattrs_len = lower.xattrs_len;
		else
			return rc;
	} else {
		r->e.mode = S_IFDIR | 0755;
	}
	return map_add(im, im->n - 1);
}

/* Every ancestor of every entry (and the folder of an opaque marker) must
 * be a folder of this layer. */
static int add_parents(imp *im)
{
	size_t n = im->n;
	if (map_find(im, "", 0) < 0) {
		int rc = add_implicit(im, "", 0, "");
		if (rc < 0)
			return rc;
	}
	for (size_t i = 0; i < n; i++) {
		size_t len = im->recs[i].e.path_len;
		size_t pl;
		if (im->recs[i].kind == K_OPAQUE)
			pl = len;
		else if (len == 0)
			continue;
		else
			pl = parent_len(im->recs[i].e.path, len);
		for (;;) {
			const char *p = im->recs[i].e.path;
			int64_t k = map_find(im, p, pl);
			if (k >= 0) {
				/* Checked already, or a member: which must
				 * be a folder. */
				const lam__entry *a = &im->recs[k].e;
				if (!S_ISDIR(a->mode))
					return lam__error(
						LAM_EUNSAFE,
						"entry %.*s lies below %.*s, "
						"which this archive makes a "
						"%s",
						(int)len, p, (int)pl, p,
						S_ISLNK(a->mode) ?
							"symlink: writing "
							"through symlinks is "
							"refused" :
							"non-folder");
				break;
			}
			char *child = lam__strndup(p, len);
			if (child == NULL)
				return lam__error(LAM_ENOMEM, "out of memory");
			int rc = add_implicit(im, p, pl, child);
			lam__free(child);
			if (rc < 0)
				return rc;
			if (pl == 0)
				break;
			pl = parent_len(im->recs[i].e.path, pl);
		}
	}
	return 0;
}

static int rec_cmp(const void *a, const void *b)
{
	return lam__entry_cmp(&((const rec *)a)->e, &((const rec *)b)->e);
}

/* Apply opaque markers and whiteouts to this layer's entries, drop what
 * they make moot, sort, and number hard-link groups. */
static int finish(imp *im, lam__entry **out, size_t *nout, uint64_t *size)
{
	bool diff = im->parent != NULL;
	int rc = map_whiteouts(im);
	if (rc == 0)
		rc = add_parents(im);
	if (rc < 0)
		return rc;
	for (size_t i = 0; i < im->n; i++) {
		rec *r = &im->recs[i];
		if (r->kind != K_OPAQUE && r->kind != K_WHITEOUT)
			continue;
		int64_t k = map_find(im, r->e.path, r->e.path_len);
		if (r->kind == K_OPAQUE) {
			/* add_parents() gave the folder an entry. */
			lam__entry *d = &im->recs[k].e;
			if (!S_ISDIR(d->mode))
				return lam__error(LAM_EINVAL,
						  "opaque marker in %.*s, "
						  "which is not a folder",
						  (int)r->e.path_len,
						  r->e.path);
			if (diff)
				d->flags |= LAM__E_OPAQUE;
			continue;
		}
		if (k >= 0) {
			/* Never hides its own layer: over a folder of this
			 * layer it means "nothing from below". */
			lam__entry *d = &im->recs[k].e;
			if (S_ISDIR(d->mode) && diff)
				d->flags |= LAM__E_OPAQUE;
			r->kind = K_OPAQUE; /* dropped below */
		} else if (!diff) {
			r->kind = K_OPAQUE;
		} else {
			/* Keep one whiteout per path. */
			rc = map_add(im, i);
			if (rc < 0)
				return rc;
		}
	}
	size_t m = 0;
	for (size_t i = 0; i < im->n; i++) {
		if (im->recs[i].kind == K_OPAQUE) {
			lam__free((char *)im->recs[i].e.path);
			continue;
		}
		im->recs[m++] = im->recs[i];
	}
	/* Hard-link groups point at rec indices: carry them as paths of
	 * the group's first member through the compaction and sort. */
	im->n = m;
	for (size_t i = 0; i < im->n; i++)
		im->recs[i].e.link_group = 0;
	qsort(im->recs, im->n, sizeof(*im->recs), rec_cmp);
	lam__entry *ents = lam__calloc(im->n ? im->n : 1, sizeof(*ents));
	if (ents == NULL)
		return lam__error(LAM_ENOMEM, "out of memory");
	for (size_t i = 0; i + 1 < im->n; i++) {
		if (lam__entry_cmp(&im->recs[i].e, &im->recs[i + 1].e) == 0) {
			lam__free(ents);
			return lam__error(LAM_EUNSAFE,
					  "entry %.*s appears twice in the "
					  "archive",
					  (int)im->recs[i].e.path_len,
					  im->recs[i].e.path);
		}
	}
	*size = 0;
	for (size_t i = 0; i < im->n; i++) {
		ents[i] = im->recs[i].e;
		if (S_ISREG(ents[i].mode) && im->recs[i].group == 0)
			*size += ents[i].size;
	}
	*out = ents;
	*nout = im->n;
	return 0;
}

static void imp_free(imp *im)
{
	/* First: the writers borrow the recs' strings. */
	lam__writers_free(im->jobs);
	im->jobs = NULL;
	for (size_t i = 0; i < im->n; i++) {
		lam__free((char *)im->recs[i].e.path);
		lam__free((char *)im->recs[i].e.target);
		lam__free((char *)im->recs[i].e.xattrs);
	}
	lam__free(im->recs);
	lam__free(im->map);
	lam__free(im->wmap);
	lam__free(im->created);
	lam__buf_free(&im->work);
	lam__buf_free(&im->path);
	lam__buf_free(&im->link);
	lam__buf_free(&im->r.pax);
	lam__tar_hdr_free(&im->h);
	lam__tin_close(&im->in);
	if (im->chain)
		lam__chain_unref(im->chain);
}

typedef struct kv_ctx {
	const void *data;
	size_t len;
} kv_ctx;

static int stage_kv(void *ctx, int layerfd, lam__digest *extra, bool *has)
{
	kv_ctx *k = ctx;
	*has = false;
	if (k->data == NULL)
		return 0;
	int rc = lam__write_file_atomic(layerfd, "kv", k->data, k->len);
	if (rc < 0)
		return rc;
	lam__kv_file f;
	rc = lam__kv_file_open(&f, layerfd, "kv", "key/value delta");
	if (rc < 0)
		return lam__error_prefix(rc == LAM_ENOTFOUND ? LAM_ECORRUPT :
							       rc,
					 "importing a key/value delta");
	lam__kv_file_digest(&f, extra);
	lam__kv_file_close(&f);
	*has = true;
	return 0;
}

static int check_digest(const char *want, const char *got, const char *what)
{
	if (want == NULL || strcmp(want, got) == 0)
		return 0;
	return lam__error(LAM_ECORRUPT, "%s mismatch: expected %s, got %s",
			  what, want, got);
}

/* Group numbers were rec indices + 1 before the sort: renumber them in
 * path order, densely, counting members for nlink. */
static int renumber(imp *im, lam__entry *ents, size_t n, uint32_t *old_group)
{
	size_t maxg = 0;
	for (size_t i = 0; i < n; i++)
		if (old_group[i] > maxg)
			maxg = old_group[i];
	uint32_t *map = lam__calloc(maxg + 1, sizeof(*map));
	uint32_t *members = lam__calloc(n + 1, sizeof(*members));
	if (map == NULL || members == NULL) {
		lam__free(map);
		lam__free(members);
		return lam__error(LAM_ENOMEM, "out of memory");
	}
	uint32_t next = 0;
	for (size_t i = 0; i < n; i++) {
		if (old_group[i] == 0)
			continue;
		if (map[old_group[i]] == 0)
			map[old_group[i]] = ++next;
		ents[i].link_group = map[old_group[i]];
		members[ents[i].link_group]++;
	}
	for (size_t i = 0; i < n; i++) {
		if (ents[i].link_group == 0)
			continue;
		if (members[ents[i].link_group] < 2)
			ents[i].link_group = 0;
		else
			ents[i].nlink = members[ents[i].link_group];
	}
	/* Dense again after dropping singletons. */
	memset(map, 0, (maxg + 1) * sizeof(*map));
	next = 0;
	uint32_t *m2 = lam__calloc(n + 1, sizeof(*m2));
	if (m2 == NULL) {
		lam__free(map);
		lam__free(members);
		return lam__error(LAM_ENOMEM, "out of memory");
	}
	for (size_t i = 0; i < n; i++) {
		if (ents[i].link_group == 0)
			continue;
		if (m2[ents[i].link_group] == 0)
			m2[ents[i].link_group] = ++next;
		ents[i].link_group = m2[ents[i].link_group];
	}
	lam__free(m2);
	lam__free(map);
	lam__free(members);
	(void)im;
	return 0;
}

int lam__layer_import_tar(lam_layer **out, lam_store *s, int fd,
			  lam_layer *parent, lam__tar_import *ti)
{
	*out = NULL;
	if (parent != NULL && parent->store != s)
		return lam__error(LAM_EINVAL,
				  "parent layer belongs to another store");
	const lam_tar_import_options *o = ti->opts;
	if (o != NULL && o->diff_id != NULL &&
	    lam__oci_digest_check(o->diff_id, "expected diff id") < 0)
		return LAM_EINVAL;
	if (o != NULL && o->digest != NULL &&
	    lam__oci_digest_check(o->digest, "expected digest") < 0)
		return LAM_EINVAL;
	imp im;
	memset(&im, 0, sizeof(im));
	im.s = s;
	im.parent = parent;
	im.o = o;
	int rc = 0;
	if (parent != NULL) {
		lam__layer_rec check;
		if (lam__catalog_find(s, parent->rec.id, &check) < 0)
			return lam__error(LAM_ENOTFOUND,
					  "parent layer %s does not exist",
					  parent->rec.id);
		rc = lam__chain_get(&im.chain, parent);
		if (rc < 0)
			return rc;
	}
	int gclk = lam__store_gc_lock(s, false, true);
	if (gclk < 0) {
		imp_free(&im);
		return gclk;
	}
	/* The staging folder first: the writers put files in its fs/ as the
	 * stream goes. */
	char stage[37] = "";
	int stagefd = -1, fsfd = -1;
	rc = lam__store_staging(s, stage, &stagefd);
	int layerfd = -1;
	if (rc == 0)
		rc = lam__staging_layer(stagefd, true, &layerfd, &fsfd);
	lam__close(&layerfd);
	unsigned int flags = o ? o->flags : 0;
	if (rc == 0)
		rc = lam__writers_start(&im.jobs, s, fsfd,
					(flags & LAM_TAR_ONE_THREAD) ?
						0 :
						lam__writers_default_threads(),
					reaped, &im);
	if (rc == 0)
		rc = lam__tin_open(&im.in, fd, o ? o->max_size : 0,
				   o ? o->progress : NULL,
				   o ? o->userdata : NULL);
	im.r.in = &im.in;
	while (rc == 0) {
		int r = lam__tar_next(&im.r, &im.h);
		if (r <= 0) {
			rc = r;
			break;
		}
		rc = add_member(&im);
		if (rc == -1 && lam_error_last()->code != 0)
			rc = lam_error_last()->code;
	}
	if (rc == 0)
		rc = lam__tin_finish(&im.in, ti->diff_id, ti->digest);
	if (rc == 0 && o != NULL)
		rc = check_digest(o->diff_id, ti->diff_id, "diff id");
	if (rc == 0 && o != NULL)
		rc = check_digest(o->digest, ti->digest, "digest");
	if (rc == 0)
		rc = lam__writers_finish(im.jobs);
	/* Every result is in (a failed import still learns which objects
	 * it created, to take them back). */
	lam__writers_free(im.jobs);
	im.jobs = NULL;
	/* Hard-link members copied their file's entry before its object
	 * was known. */
	for (size_t i = 0; rc == 0 && i < im.n; i++) {
		rec *r = &im.recs[i];
		if (r->group == 0 || r->group - 1 == i)
			continue;
		const lam__entry *src = &im.recs[r->group - 1].e;
		r->e.obj = src->obj;
		r->e.flags |= src->flags & LAM__E_OBJECT;
	}
	lam__entry *ents = NULL;
	size_t n = 0;
	uint64_t size = 0;
	uint32_t *groups = NULL;
	unsigned char *staged = NULL;
	if (rc == 0)
		rc = finish(&im, &ents, &n, &size);
	if (rc == 0) {
		groups = lam__calloc(n ? n : 1, sizeof(*groups));
		staged = lam__calloc(n ? n : 1, 1);
		if (groups == NULL || staged == NULL)
			rc = lam__error(LAM_ENOMEM, "out of memory");
	}
	if (rc == 0) {
		/* rec.group is 1 + the old index of the group's first
		 * member; the sort moved recs, but a group's identity is
		 * all that matters, so the old index serves as a key. */
		for (size_t i = 0; i < n; i++) {
			groups[i] = im.recs[i].group;
			staged[i] = im.recs[i].staged;
		}
		rc = renumber(&im, ents, n, groups);
	}
	if (rc == 0) {
		/* Hard-link members that were counted as content once. */
		size = 0;
		uint32_t seen_max = 0;
		for (size_t i = 0; i < n; i++) {
			if (!S_ISREG(ents[i].mode) ||
			    (ents[i].flags & LAM__E_WHITEOUT))
				continue;
			if (ents[i].link_group == 0)
				size += ents[i].size;
			else if (ents[i].link_group > seen_max) {
				seen_max = ents[i].link_group;
				size += ents[i].size;
			}
		}
	}
	lam__close(&fsfd);
	if (rc == 0) {
		kv_ctx k = {ti->kv, ti->kv_len};
		lam__import_hooks hooks = {
			.stage = stage_kv, .ctx = &k, .staged = staged};
		rc = lam__layer_build(out, s, stagefd, parent, ents, n, size,
				      &hooks);
	}
	lam__close(&stagefd);
	lam__unlock(gclk);
	if (rc != 0)
		lam__objects_drop(s, im.created, im.ncreated);
	if (stage[0] != '\0')
		lam__rmtree_quiet(s->tmpfd, stage);
	lam__free(staged);
	lam__free(groups);
	lam__free(ents);
	imp_free(&im);
	return rc;
}

int lam_layer_import_tar(lam_layer **out, lam_store *store, int fd,
			 lam_layer *parent,
			 const lam_tar_import_options *options)
{
	lam__error_reset();
	if (out == NULL)
		return lam__error(LAM_EINVAL,
				  "lam_layer_import_tar: out is NULL");
	*out = NULL;
	if (store == NULL || fd < 0)
		return lam__error(LAM_EINVAL,
				  "lam_layer_import_tar: bad argument");
	if (options != NULL &&
	    options->version != LAM_TAR_IMPORT_OPTIONS_VERSION)
		return lam__error(LAM_EINVAL,
				  "unknown tar import options version");
	lam__tar_import ti;
	memset(&ti, 0, sizeof(ti));
	ti.opts = options;
	return lam__layer_import_tar(out, store, fd, parent, &ti);
}
