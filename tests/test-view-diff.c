/* SPDX-License-Identifier: MIT */
/*
 * The differential test of views against the kernel's overlayfs.
 *
 * A base image of three layers (files, folders, symlinks, hard links, a
 * fifo, whiteouts, an opaque folder, user.* xattrs, owners, old mtimes) is
 * imported into the store. A lamina view is created over its top, and the
 * same layer folders are mounted by the kernel as overlayfs lowerdirs with
 * an upper of their own. Random sequences of file operations (seeded and
 * reproducible) are applied to both: each operation must give the same
 * result (0 or the same errno), and after every step the two merged trees
 * must be the same (names, types, modes, owners, sizes, contents, symlink
 * targets, link counts and hard-link groups of non-folders, user.* xattrs,
 * and the mtimes that operations set explicitly). Every so often the view is
 * committed; the checkout of the new layer and the view over it are compared
 * with the kernel mount again, and the committed chain itself, mounted by
 * the kernel as lowerdirs, must show what its checkout shows.
 *
 * The kernel is mounted in its most capable mode (redirect_dir=on,
 * metacopy=on, index=on), where its semantics are the ones lamina follows.
 * Where lamina deliberately differs (docs/views.md, "Deliberate differences
 * from the kernel"), a dedicated test below pins lamina's behaviour and the
 * random test normalises exactly that aspect.
 *
 * Seeds: LAMINA_SEED (default a fixed value) seeds run 0; run k uses seed
 * + k, and a failure names its seed and prints the last operations.
 * LAMINA_DIFF_STEPS sets the steps per run, LAMINA_DIFF_RUNS the runs,
 * LAMINA_DIFF_COMMIT_EVERY the steps between commits,
 * LAMINA_DIFF_VERBOSE=1 prints every operation, and
 * LAMINA_DIFF_TOLERATE=tag,... lets known bugs through while exploring.
 *
 * Needs root and an overlayfs with data-only lower layers, metacopy and
 * index (Linux 6.5+); exits 77 otherwise. Each test runs in its own mount
 * namespace, so its mounts vanish with it whatever happens.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "support.h"

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif
#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif

#define DEFAULT_SEED  20240611u
#define DEFAULT_STEPS 700
#define DEFAULT_RUNS  4
#define COMMIT_EVERY  175

/* Times before this were set on purpose (the base image, utimens); later
 * ones are "now" and differ between the two sides by nanoseconds. */
#define Y2K 946684800

static const char *const kernel_opts = "redirect_dir=on,metacopy=on,index=on";

/* ---- small helpers ----------------------------------------------------- */

typedef struct rng {
	uint64_t s;
} rng;

static uint64_t rnd(rng *r)
{
	uint64_t x = r->s;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	r->s = x;
	return x * 0x2545F4914F6CDD1Dull;
}

static uint64_t below(rng *r, uint64_t n)
{
	return n ? rnd(r) % n : 0;
}

static bool chance(rng *r, unsigned int pct)
{
	return below(r, 100) < pct;
}

static uint64_t env_u64(const char *name, uint64_t def)
{
	const char *s = getenv(name);
	return s && s[0] ? strtoull(s, NULL, 0) : def;
}

static void fill(char *buf, size_t len, uint64_t seed)
{
	rng r = {seed * 0x9E3779B97F4A7C15ull + 1};
	for (size_t i = 0; i < len; i++)
		buf[i] = (char)('a' + rnd(&r) % 26);
}

/* Differences known to be lamina bugs, let through while exploring with
 * LAMINA_DIFF_TOLERATE=tag,tag (never by default). */
static bool tolerate(const char *tag)
{
	const char *s = getenv("LAMINA_DIFF_TOLERATE");
	size_t n = strlen(tag);
	while (s != NULL && *s) {
		if (strncmp(s, tag, n) == 0 && (s[n] == ',' || s[n] == '\0'))
			return true;
		s = strchr(s, ',');
		s = s ? s + 1 : NULL;
	}
	return false;
}

/* Mounts made by the current test, taken down by the teardown (the mount
 * namespace takes them down anyway when the test's process ends). */
static char mounts[8][4096];
static int nmounts;

static bool private_mounts(void)
{
	if (unshare(CLONE_NEWNS) < 0)
		return false;
	return mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0;
}

static void setup(void)
{
	ck_assert_msg(private_mounts(), "private mount namespace: %s",
		      strerror(errno));
	umask(0);
	nmounts = 0;
	lt_setup();
}

static void teardown(void)
{
	while (nmounts > 0)
		umount2(mounts[--nmounts], MNT_DETACH);
	lt_teardown();
}

/* The lowerdir list of a layer's chain: its layer folders, top first, then
 * the objects folder as a data-only layer. */
typedef struct chain_opts {
	char buf[16384];
	size_t len;
} chain_opts;

/* Relative to STORE/layers, the working folder while mounting: mount(2)
 * takes at most a page of options. */
static int add_lower(lam_layer *l, void *ud)
{
	chain_opts *c = ud;
	c->len += (size_t)snprintf(c->buf + c->len, sizeof(c->buf) - c->len,
				   "%s%s/fs", c->len ? ":" : "",
				   lam_layer_id(l));
	return 0;
}

/* Mount a layer's chain at mnt; with upper (and work) writable. Returns
 * 0 or the errno of mount(2). */
static int mount_chain(const char *mnt, lam_layer *top, const char *upper,
		       const char *work, const char *extra)
{
	chain_opts c = {.len = 0};
	LT_OK(lam_layer_ancestors_foreach(top, add_lower, &c));
	char opts[20000];
	if (upper != NULL)
		snprintf(opts, sizeof(opts),
			 "lowerdir=%s::../objects,upperdir=%s,workdir=%s,%s",
			 c.buf, upper, work, extra);
	else
		snprintf(opts, sizeof(opts),
			 "lowerdir=%s::../objects,metacopy=on,"
			 "redirect_dir=follow",
			 c.buf);
	lt_mkdir(mnt);
	if (upper != NULL) {
		lt_mkdir(upper);
		lt_mkdir(work);
	}
	char layers[4300];
	snprintf(layers, sizeof(layers), "%s/layers", lt_store_path);
	int cwd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	ck_assert_int_ge(cwd, 0);
	ck_assert_int_eq(chdir(layers), 0);
	int rc = mount("overlay", mnt, "overlay", upper ? 0 : MS_RDONLY, opts);
	int err = errno;
	ck_assert_int_eq(fchdir(cwd), 0);
	close(cwd);
	if (rc < 0)
		return err;
	snprintf(mounts[nmounts++], sizeof(mounts[0]), "%s", mnt);
	return 0;
}

/* ---- tree listings ----------------------------------------------------- */

typedef struct tent {
	char *path;
	uint32_t mode, uid, gid, nlink;
	uint64_t size, ino, rdev;
	int64_t mtime, mtime_ns;
	char *data; /* content of a file, target of a symlink */
	size_t len;
	char *xattrs;	    /* "name=hex;" for each user.* xattr, sorted */
	const char *leader; /* first path of its hard-link group, or "" */
	uint32_t links;	    /* paths of the tree in its hard-link group */
} tent;

typedef struct tree {
	tent *v;
	size_t n, cap;
} tree;

static tent *tree_add(tree *t, const char *path)
{
	if (t->n == t->cap) {
		t->cap = t->cap ? t->cap * 2 : 128;
		t->v = realloc(t->v, t->cap * sizeof(*t->v));
		ck_assert_ptr_nonnull(t->v);
	}
	tent *e = &t->v[t->n++];
	memset(e, 0, sizeof(*e));
	e->path = strdup(path);
	e->leader = "";
	return e;
}

static void tree_free(tree *t)
{
	for (size_t i = 0; i < t->n; i++) {
		free(t->v[i].path);
		free(t->v[i].data);
		free(t->v[i].xattrs);
	}
	free(t->v);
	memset(t, 0, sizeof(*t));
}

static int tent_cmp(const void *a, const void *b)
{
	return strcmp(((const tent *)a)->path, ((const tent *)b)->path);
}

/* Sort, and name each hard-link group by its first path. */
static void tree_finish(tree *t)
{
	qsort(t->v, t->n, sizeof(*t->v), tent_cmp);
	for (size_t i = 0; i < t->n; i++) {
		tent *e = &t->v[i];
		if (S_ISDIR(e->mode))
			continue;
		e->links = 1;
		for (size_t k = 0; k < t->n; k++) {
			if (k == i || S_ISDIR(t->v[k].mode) ||
			    t->v[k].ino != e->ino)
				continue;
			e->links++;
			if (k < i && e->leader[0] == '\0')
				e->leader = t->v[k].path;
		}
	}
}

/* The text of a sorted list of user.* xattr names and values. */
typedef struct xlist {
	char names[64][64];
	char vals[64][256];
	size_t vlen[64];
	int n;
} xlist;

static int xname_cmp(const void *a, const void *b)
{
	return strcmp(a, b);
}

static char *xattr_text(xlist *x)
{
	/* Sort names and values together: sort indexes by name. */
	int idx[64];
	for (int i = 0; i < x->n; i++)
		idx[i] = i;
	for (int i = 1; i < x->n; i++)
		for (int j = i; j > 0 && xname_cmp(x->names[idx[j - 1]],
						   x->names[idx[j]]) > 0;
		     j--) {
			int t = idx[j];
			idx[j] = idx[j - 1];
			idx[j - 1] = t;
		}
	char *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);
	for (int i = 0; i < x->n; i++) {
		fprintf(f, "%s=", x->names[idx[i]]);
		for (size_t k = 0; k < x->vlen[idx[i]]; k++)
			fprintf(f, "%02x", (unsigned char)x->vals[idx[i]][k]);
		fprintf(f, ";");
	}
	fclose(f);
	return out;
}

/* Failures reading a host tree, as text (malloc'd). */
static char *host_fail(const char *what, const char *path)
{
	char *out = NULL;
	if (asprintf(&out, "%s %s: %s", what, path, strerror(errno)) < 0)
		out = NULL;
	return out;
}

static char *host_entry(tree *t, const char *root, const char *rel)
{
	char full[8192];
	snprintf(full, sizeof(full), "%s%s%s", root, rel[0] ? "/" : "", rel);
	struct stat st;
	if (lstat(full, &st) < 0)
		return host_fail("lstat", full);
	tent *e = tree_add(t, rel);
	e->mode = st.st_mode;
	e->uid = st.st_uid;
	e->gid = st.st_gid;
	e->nlink = (uint32_t)st.st_nlink;
	e->size = (uint64_t)st.st_size;
	e->ino = (uint64_t)st.st_ino;
	e->rdev = st.st_rdev;
	e->mtime = st.st_mtim.tv_sec;
	e->mtime_ns = st.st_mtim.tv_nsec;
	e->xattrs = strdup("");
	if (S_ISREG(st.st_mode)) {
		int fd = open(full, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			return host_fail("open", full);
		e->data = malloc((size_t)st.st_size + 1);
		ssize_t n = pread(fd, e->data, (size_t)st.st_size + 1, 0);
		close(fd);
		if (n < 0)
			return host_fail("read", full);
		e->len = (size_t)n;
	} else if (S_ISLNK(st.st_mode)) {
		e->data = malloc(PATH_MAX);
		ssize_t n = readlink(full, e->data, PATH_MAX);
		if (n < 0)
			return host_fail("readlink", full);
		e->len = (size_t)n;
	}
	xlist *x = calloc(1, sizeof(*x));
	char names[4096];
	ssize_t nl = llistxattr(full, names, sizeof(names));
	for (ssize_t i = 0; i < nl; i += (ssize_t)strlen(names + i) + 1) {
		if (strncmp(names + i, "user.", 5) != 0 || x->n == 64)
			continue;
		snprintf(x->names[x->n], 64, "%s", names + i);
		ssize_t vl = lgetxattr(full, names + i, x->vals[x->n], 256);
		x->vlen[x->n] = vl < 0 ? 0 : (size_t)vl;
		x->n++;
	}
	free(e->xattrs);
	e->xattrs = xattr_text(x);
	free(x);
	if (!S_ISDIR(st.st_mode))
		return NULL;
	DIR *d = opendir(full);
	if (d == NULL)
		return host_fail("opendir", full);
	struct dirent *de;
	char *err = NULL;
	while (err == NULL && (de = readdir(d)) != NULL) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		char r[4096];
		snprintf(r, sizeof(r), "%s%s%s", rel, rel[0] ? "/" : "",
			 de->d_name);
		err = host_entry(t, root, r);
	}
	closedir(d);
	return err;
}

/* List a host tree; NULL, or why it could not be read (malloc'd). */
static char *dump_host_soft(tree *t, const char *root)
{
	tree_free(t);
	char *err = host_entry(t, root, "");
	tree_finish(t);
	return err;
}

static void dump_host(tree *t, const char *root)
{
	char *err = dump_host_soft(t, root);
	ck_assert_msg(err == NULL, "%s", err);
}

#define VIEW_OK(expr, path)                                                    \
	do {                                                                   \
		int rc_ = (expr);                                              \
		ck_assert_msg(rc_ == 0, "%s on '%s': %d (errno %d) %s", #expr, \
			      path, rc_, lam_error_last()->os_errno,           \
			      lam_error_last()->message);                      \
	} while (0)

static void view_entry(tree *t, lam_view *v, const char *rel, uint32_t dmode)
{
	lam_stat st;
	VIEW_OK(lam_view_lstat(v, rel, &st), rel);
	tent *e = tree_add(t, rel);
	e->mode = st.mode;
	e->uid = st.uid;
	e->gid = st.gid;
	e->nlink = st.nlink;
	e->size = st.size;
	e->ino = st.ino;
	e->rdev = st.rdev;
	e->mtime = st.mtime_sec;
	e->mtime_ns = st.mtime_nsec;
	ck_assert_msg(rel[0] == '\0' || (dmode & S_IFMT) == (st.mode & S_IFMT),
		      "%s: listed as type %o, lstat says %o", rel, dmode,
		      st.mode & S_IFMT);
	if (S_ISREG(st.mode)) {
		lam_view_file *f;
		VIEW_OK(lam_view_file_open(&f, v, rel, O_RDONLY | O_NOFOLLOW,
					   0),
			rel);
		e->data = malloc(st.size + 1);
		size_t got = 0;
		VIEW_OK(lam_view_file_pread(f, e->data, st.size + 1, 0, &got),
			rel);
		e->len = got;
		lam_stat fst;
		VIEW_OK(lam_view_file_stat(f, &fst), rel);
		ck_assert_msg(fst.size == st.size && fst.ino == st.ino,
			      "%s: fstat differs from lstat", rel);
		VIEW_OK(lam_view_file_close(f), rel);
	} else if (S_ISLNK(st.mode)) {
		char *target;
		VIEW_OK(lam_view_readlink(&target, v, rel), rel);
		e->len = strlen(target);
		e->data = strdup(target);
		lam_free(target);
	}
	xlist *x = calloc(1, sizeof(*x));
	char *names = NULL;
	size_t nl = 0;
	VIEW_OK(lam_view_listxattr(&names, &nl, v, rel, LAM_NOFOLLOW), rel);
	for (size_t i = 0; i < nl; i += strlen(names + i) + 1) {
		if (strncmp(names + i, "user.", 5) != 0 || x->n == 64)
			continue;
		snprintf(x->names[x->n], 64, "%s", names + i);
		size_t need = 0;
		VIEW_OK(lam_view_getxattr(v, rel, names + i, x->vals[x->n], 256,
					  &need, LAM_NOFOLLOW),
			rel);
		x->vlen[x->n] = need;
		x->n++;
	}
	lam_free(names);
	e->xattrs = xattr_text(x);
	free(x);
	if (!S_ISDIR(st.mode))
		return;
	lam_view_dir_iter *it;
	VIEW_OK(lam_view_dir_iter_new(&it, v, rel), rel);
	/* Names first: the iterator's names live only until the next call,
	 * and the recursion makes calls of its own. */
	char(*names_v)[256] = NULL;
	uint32_t *modes = NULL;
	size_t n = 0;
	lam_dirent d;
	int rc;
	while ((rc = lam_view_dir_iter_next(it, &d)) == 0) {
		names_v = realloc(names_v, (n + 1) * sizeof(*names_v));
		modes = realloc(modes, (n + 1) * sizeof(*modes));
		snprintf(names_v[n], 256, "%s", d.name);
		modes[n++] = d.mode;
	}
	ck_assert_int_eq(rc, LAM_ITEROVER);
	lam_view_dir_iter_free(it);
	for (size_t i = 0; i < n; i++) {
		char r[4096];
		snprintf(r, sizeof(r), "%s%s%s", rel, rel[0] ? "/" : "",
			 names_v[i]);
		view_entry(t, v, r, modes[i]);
	}
	free(names_v);
	free(modes);
}

static void dump_view(tree *t, lam_view *v)
{
	tree_free(t);
	view_entry(t, v, "", S_IFDIR);
	tree_finish(t);
}

/* Link counts of non-folders must match, with one deliberate difference
 * (docs/views.md): for a lower hard link whose other links are hidden by a
 * whiteout in a later layer, the kernel reports the lower inode's own count,
 * stale, while lamina counts the links the merged tree shows. So a count
 * on side a (the kernel) that differs from the links its tree shows is let
 * through when side b's count is exactly the links its tree shows. */
static bool nlink_ok(const tent *x, const tent *y)
{
	if (x->nlink == y->nlink)
		return true;
	return x->nlink != x->links && y->nlink == y->links;
}

static bool old_time(const tent *e)
{
	return e->mtime < Y2K;
}

/* NULL when the trees match, else a description of the first difference
 * (malloc'd). */
/* Set while comparing a kernel mount of committed layer folders: the
 * kernel counts the links of a lower inode that later layers hid
 * (docs/views.md, "Link counts of lower hard links"). */
static bool ignore_nlink;

static char *tree_compare(const tree *a, const tree *b, const char *an,
			  const char *bn)
{
	size_t i = 0, k = 0;
	char *out = NULL;
	while (i < a->n || k < b->n) {
		int c = i == a->n ? 1 :
			k == b->n ? -1 :
				    strcmp(a->v[i].path, b->v[k].path);
		if (c != 0) {
			const tent *e = c < 0 ? &a->v[i] : &b->v[k];
			if (asprintf(&out, "'%s' only in %s (mode %o)", e->path,
				     c < 0 ? an : bn, e->mode) < 0)
				out = NULL;
			return out;
		}
		const tent *x = &a->v[i++], *y = &b->v[k++];
		bool dir = S_ISDIR(x->mode);
		char what[512] = "";
		if (x->mode != y->mode)
			snprintf(what, sizeof(what), "mode %o vs %o", x->mode,
				 y->mode);
		else if (x->uid != y->uid || x->gid != y->gid)
			snprintf(what, sizeof(what), "owner %u:%u vs %u:%u",
				 x->uid, x->gid, y->uid, y->gid);
		else if (!dir && x->size != y->size)
			snprintf(what, sizeof(what),
				 "size %" PRIu64 " vs %" PRIu64, x->size,
				 y->size);
		else if ((S_ISREG(x->mode) || S_ISLNK(x->mode)) &&
			 (x->len != y->len ||
			  memcmp(x->data, y->data, x->len))) {
			size_t at = 0;
			while (at < x->len && at < y->len &&
			       x->data[at] == y->data[at])
				at++;
			snprintf(what, sizeof(what),
				 "%s (lengths %zu vs %zu, first difference at "
				 "%zu)",
				 S_ISLNK(x->mode) ? "symlink target" :
						    "content",
				 x->len, y->len, at);
		} else if ((S_ISCHR(x->mode) || S_ISBLK(x->mode)) &&
			   x->rdev != y->rdev)
			snprintf(what, sizeof(what), "device number");
		else if (strcmp(x->xattrs, y->xattrs) != 0)
			snprintf(what, sizeof(what), "xattrs '%s' vs '%s'",
				 x->xattrs, y->xattrs);
		else if (!dir && !ignore_nlink && !nlink_ok(x, y))
			snprintf(what, sizeof(what), "link count %u vs %u",
				 x->nlink, y->nlink);
		else if (!dir && strcmp(x->leader, y->leader) != 0)
			snprintf(what, sizeof(what),
				 "hard-link group '%s' vs '%s'", x->leader,
				 y->leader);
		else if (!dir && (old_time(x) || old_time(y)) &&
			 (x->mtime != y->mtime || x->mtime_ns != y->mtime_ns))
			snprintf(what, sizeof(what),
				 "mtime %" PRId64 ".%09" PRId64 " vs %" PRId64
				 ".%09" PRId64,
				 x->mtime, x->mtime_ns, y->mtime, y->mtime_ns);
		if (what[0]) {
			if (asprintf(&out, "'%s' differs: %s (%s vs %s)",
				     x->path, what, an, bn) < 0)
				out = NULL;
			return out;
		}
	}
	return NULL;
}

/* ---- the base image ---------------------------------------------------- */

static void put(const char *rel, const char *content, mode_t mode)
{
	lt_write(rel, content);
	ck_assert_int_eq(chmod(rel, mode), 0);
}

static void put_bytes(const char *rel, size_t len, uint64_t seed)
{
	char *b = malloc(len);
	fill(b, len, seed);
	lt_write_bytes(rel, b, len);
	free(b);
}

static void put_x(const char *path, const char *name, const char *value)
{
	ck_assert_msg(lsetxattr(path, name, value, strlen(value), 0) == 0,
		      "setxattr %s: %s", path, strerror(errno));
}

static void own(const char *path, uid_t u, gid_t g)
{
	ck_assert_int_eq(lchown(path, u, g), 0);
}

static int64_t old_stamp;

/* Give every entry below root an old mtime of its own (with nanoseconds),
 * so that mtimes carried through copy-up and commit can be compared. */
static void age_tree(const char *root)
{
	DIR *d = opendir(root);
	ck_assert_ptr_nonnull(d);
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		char p[8192];
		snprintf(p, sizeof(p), "%s/%s", root, de->d_name);
		struct stat st;
		ck_assert_int_eq(lstat(p, &st), 0);
		if (S_ISDIR(st.st_mode))
			age_tree(p);
		old_stamp += 86400 + 17;
		struct timespec ts[2] = {
			{old_stamp, (old_stamp * 7919) % 1000000000},
			{old_stamp, (old_stamp * 104729) % 1000000000}};
		ck_assert_int_eq(
			utimensat(AT_FDCWD, p, ts, AT_SYMLINK_NOFOLLOW), 0);
	}
	closedir(d);
	struct timespec ts[2] = {{old_stamp, 1}, {old_stamp, 2}};
	ck_assert_int_eq(utimensat(AT_FDCWD, root, ts, 0), 0);
}

/* Three layers; returns the top (and the base through *base_out). */
static lam_layer *build_image(lam_layer **l1_out, lam_layer **l2_out)
{
	old_stamp = 800000000;
	/* L1: a root filesystem. */
	put(lt_path("l1/etc/hostname"), "base-host\n", 0644);
	put(lt_path("l1/etc/passwd"), "root:x:0:0\n", 0644);
	lt_link(lt_path("l1/etc/passwd"), lt_path("l1/etc/passwd.lnk"));
	lt_link(lt_path("l1/etc/passwd"), lt_path("l1/bin/pw"));
	put(lt_path("l1/etc/group"), "root:x:0:\n", 0600);
	own(lt_path("l1/etc/group"), 1000, 100);
	put_x(lt_path("l1/etc/group"), "user.note", "group");
	put(lt_path("l1/usr/bin/tool"), "#!/bin/sh\n", 0755);
	put(lt_path("l1/usr/bin/suid"), "suid\n", 04755);
	put(lt_path("l1/usr/lib/a/one"), "1", 0644);
	put(lt_path("l1/usr/lib/a/two"), "22", 0644);
	put(lt_path("l1/usr/lib/a/sub/three"), "333", 0644);
	put(lt_path("l1/usr/share/doc/readme"), "read me\n", 0644);
	put_x(lt_path("l1/usr/share/doc/readme"), "user.lang", "en");
	put_x(lt_path("l1/usr/share/doc/readme"), "user.v", "1");
	put_x(lt_path("l1/usr"), "user.dir", "usr");
	put_bytes(lt_path("l1/big"), 300000, 1);
	lt_mkdir(lt_path("l1/empty"));
	ck_assert_int_eq(chmod(lt_path("l1/empty"), 0700), 0);
	put(lt_path("l1/sticky/file"), "s", 0666);
	ck_assert_int_eq(chmod(lt_path("l1/sticky"), 01777), 0);
	put(lt_path("l1/data/keep"), "keep", 0644);
	put(lt_path("l1/data/drop"), "drop", 0644);
	put(lt_path("l1/data/sub/deep"), "deep", 0644);
	own(lt_path("l1/data/sub"), 1000, 1000);
	lt_symlink("etc/hostname", lt_path("l1/sym-rel"));
	lt_symlink("usr/lib", lt_path("l1/sym-dir"));
	lt_symlink("nothing/here", lt_path("l1/dangling"));
	lt_symlink("loop", lt_path("l1/loop"));
	ck_assert_int_eq(mkfifo(lt_path("l1/fifo"), 0644), 0);
	put(lt_path("l1/hl/a"), "hard", 0640);
	lt_link(lt_path("l1/hl/a"), lt_path("l1/hl/b"));
	put(lt_path("l1/var/log/app.log"), "log\n", 0644);
	age_tree(lt_path("l1"));
	lam_layer *l1 = lt_import(lt_path("l1"), NULL);

	/* L2: whiteouts (one member of a hard-link group, a folder), an
	 * opaque folder, replaced entries, a new hard-link pair. */
	lt_whiteout(lt_path("l2/etc/passwd.lnk"));
	lt_whiteout(lt_path("l2/usr/lib/a/sub"));
	lt_opaque(lt_path("l2/data"));
	put(lt_path("l2/data/fresh"), "fresh", 0644);
	put(lt_path("l2/data/sub2/x"), "x", 0644);
	put(lt_path("l2/usr/bin/tool"), "#!/bin/bash\n", 0755);
	put(lt_path("l2/opt/app/cfg"), "cfg=1\n", 0644);
	lt_link(lt_path("l2/opt/app/cfg"), lt_path("l2/opt/app/cfg.lnk"));
	put_x(lt_path("l2/opt"), "user.o", "1");
	put(lt_path("l2/etc/motd"), "hello\n", 0644);
	put_x(lt_path("l2/etc/motd"), "user.m", "motd");
	put(lt_path("l2/usr/share/doc"), "doc is a file now\n", 0644);
	put(lt_path("l2/var/log/app.log/current"), "current\n", 0644);
	age_tree(lt_path("l2"));
	lam_layer *l2 = lt_import(lt_path("l2"), l1);

	/* L3: another big file, a whiteout in a group, a changed symlink, a
	 * replaced file with another mode. */
	put_bytes(lt_path("l3/big2"), 140000, 2);
	lt_whiteout(lt_path("l3/hl/b"));
	lt_symlink("etc/motd", lt_path("l3/sym-rel"));
	lt_mkdir(lt_path("l3/newdir"));
	put(lt_path("l3/etc/group"), "root:x:0:\nstaff:x:50:\n", 0640);
	age_tree(lt_path("l3"));
	lam_layer *l3 = lt_import(lt_path("l3"), l2);
	*l1_out = l1;
	*l2_out = l2;
	return l3;
}

/* ---- operations -------------------------------------------------------- */

enum opkind {
	K_CREATE,
	K_PWRITE,
	K_APPEND,
	K_TRUNCATE,
	K_MKDIR,
	K_RMDIR,
	K_UNLINK,
	K_RENAME,
	K_LINK,
	K_SYMLINK,
	K_CHMOD,
	K_CHOWN,
	K_UTIMENS,
	K_MKFIFO,
	K_SETXATTR,
	K_REMOVEXATTR,
	K_STAT,
	K_OPEN,
	K_LIST,
	K_READLINK,
	K_MKNOD,
	NKINDS,
};

static const char *const kind_name[NKINDS] = {
	"create",  "pwrite",   "append",   "truncate",	  "mkdir", "rmdir",
	"unlink",  "rename",   "link",	   "symlink",	  "chmod", "chown",
	"utimens", "mkfifo",   "setxattr", "removexattr", "stat",  "open",
	"list",	   "readlink", "mknod",
};

/* Relative weights of the kinds. */
static const unsigned int kind_weight[NKINDS] = {
	10, 10, 5, 5, 7, 5, 8, 14, 5, 5, 4, 4, 4, 2, 5, 3, 4, 3, 2, 2, 1,
};

typedef struct op {
	enum opkind kind;
	char a[512], b[512]; /* paths; for symlink, b is the target */
	int flags;	     /* open, rename or xattr flags */
	bool nofollow;
	uint32_t mode, uid, gid;
	uint64_t off, len, dseed, rdev;
	int64_t t[2][2];
	char xname[16];
	char xval[32];
	size_t xlen;
} op;

static void op_text(const op *o, char *buf, size_t size)
{
	int n = snprintf(buf, size, "%s '%s'", kind_name[o->kind], o->a);
	switch (o->kind) {
	case K_CREATE:
		snprintf(buf + n, size - (size_t)n,
			 " flags %#x mode %o len %" PRIu64, o->flags, o->mode,
			 o->len);
		break;
	case K_PWRITE:
	case K_APPEND:
		snprintf(buf + n, size - (size_t)n,
			 " off %" PRIu64 " len %" PRIu64, o->off, o->len);
		break;
	case K_TRUNCATE:
		snprintf(buf + n, size - (size_t)n, " size %" PRIu64, o->len);
		break;
	case K_MKDIR:
	case K_CHMOD:
	case K_MKFIFO:
		snprintf(buf + n, size - (size_t)n, " mode %o", o->mode);
		break;
	case K_MKNOD:
		snprintf(buf + n, size - (size_t)n, " mode %o device %u:%u",
			 o->mode, major(o->rdev), minor(o->rdev));
		break;
	case K_RENAME:
		snprintf(buf + n, size - (size_t)n, " -> '%s' flags %d", o->b,
			 o->flags);
		break;
	case K_LINK:
		snprintf(buf + n, size - (size_t)n, " -> '%s'", o->b);
		break;
	case K_SYMLINK:
		snprintf(buf + n, size - (size_t)n, " holding '%s'", o->b);
		break;
	case K_CHOWN:
		snprintf(buf + n, size - (size_t)n, " %d:%d%s", (int)o->uid,
			 (int)o->gid, o->nofollow ? " nofollow" : "");
		break;
	case K_UTIMENS:
		snprintf(buf + n, size - (size_t)n,
			 " %" PRId64 ".%" PRId64 " %" PRId64 ".%" PRId64 "%s",
			 o->t[0][0], o->t[0][1], o->t[1][0], o->t[1][1],
			 o->nofollow ? " nofollow" : "");
		break;
	case K_SETXATTR:
		snprintf(buf + n, size - (size_t)n,
			 " %s (%zu bytes) flags %d%s", o->xname, o->xlen,
			 o->flags, o->nofollow ? " nofollow" : "");
		break;
	case K_REMOVEXATTR:
		snprintf(buf + n, size - (size_t)n, " %s%s", o->xname,
			 o->nofollow ? " nofollow" : "");
		break;
	case K_STAT:
		snprintf(buf + n, size - (size_t)n, "%s",
			 o->nofollow ? " nofollow" : "");
		break;
	case K_OPEN:
		snprintf(buf + n, size - (size_t)n, " flags %#x", o->flags);
		break;
	default:
		break;
	}
}

/* What an operation gave: the errno (0 on success), and for queries what
 * they saw. */
typedef struct result {
	int err;
	uint32_t type; /* the kernel side: the type of what open() opened */
	char info[512];
	char unexpected[900]; /* a lamina code other than LAM_EPOSIX */
} result;

/* ---- the kernel side --------------------------------------------------- */

typedef struct kside {
	char mnt[4096];
	int fd;
} kside;

static void kpath(const kside *k, const char *rel, char *out, size_t size)
{
	snprintf(out, size, "%s/%s", k->mnt, rel);
}

static int write_all(int fd, const char *buf, size_t len, uint64_t off,
		     bool positioned)
{
	size_t done = 0;
	while (done < len) {
		ssize_t n = positioned ? pwrite(fd, buf + done, len - done,
						(off_t)(off + done)) :
					 write(fd, buf + done, len - done);
		if (n < 0)
			return errno;
		done += (size_t)n;
	}
	return 0;
}

/* What a stat saw. Link counts are left to the tree comparison, which
 * knows the links each tree shows. */
static void stat_info(char *info, size_t size, uint32_t mode, uint32_t uid,
		      uint32_t gid, uint64_t sz)
{
	snprintf(info, size, "mode %o owner %u:%u size %" PRIu64, mode, uid,
		 gid, S_ISDIR(mode) ? 0 : sz);
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The kernel side resolves a leading '/' from the host's root: give it the
 * path relative to the mount (lamina resolves it from the view's root).
 * Nothing else can leave the mount: ".." only follows a real folder and
 * symlink targets only lead downwards. */
static void relative(op *o)
{
	char *p[2] = {o->a, o->kind == K_SYMLINK ? NULL : o->b};
	for (int i = 0; i < 2; i++) {
		if (p[i] == NULL || p[i][0] != '/')
			continue;
		size_t skip = strspn(p[i], "/");
		memmove(p[i], p[i] + skip, strlen(p[i] + skip) + 1);
		if (p[i][0] == '\0')
			strcpy(p[i], ".");
	}
}

static void k_apply(const kside *k, const op *lo, result *r)
{
	op kop = *lo, *o = &kop;
	relative(o);
	memset(r, 0, sizeof(*r));
	char full[8192], *buf = NULL;
	kpath(k, o->a, full, sizeof(full));
	int fd, e = 0;
	switch (o->kind) {
	case K_CREATE:
	case K_PWRITE:
	case K_APPEND: {
		int fl = O_WRONLY | O_NONBLOCK | O_CLOEXEC;
		if (o->kind == K_CREATE)
			fl |= O_CREAT | o->flags;
		if (o->kind == K_APPEND)
			fl |= O_APPEND;
		fd = openat(k->fd, o->a, fl, o->mode);
		if (fd < 0) {
			r->err = errno;
			break;
		}
		struct stat fst;
		if (fstat(fd, &fst) == 0)
			r->type = fst.st_mode & S_IFMT;
		buf = malloc(o->len + 1);
		fill(buf, o->len, o->dseed);
		e = write_all(fd, buf, o->len, o->off, o->kind == K_PWRITE);
		if (close(fd) < 0 && e == 0)
			e = errno;
		r->err = e;
		break;
	}
	case K_TRUNCATE:
		r->err = truncate(full, (off_t)o->len) < 0 ? errno : 0;
		break;
	case K_MKDIR:
		r->err = mkdirat(k->fd, o->a, o->mode) < 0 ? errno : 0;
		break;
	case K_RMDIR:
		r->err = unlinkat(k->fd, o->a, AT_REMOVEDIR) < 0 ? errno : 0;
		break;
	case K_UNLINK:
		r->err = unlinkat(k->fd, o->a, 0) < 0 ? errno : 0;
		break;
	case K_RENAME:
		r->err = renameat2(k->fd, o->a, k->fd, o->b,
				   (o->flags & LAM_RENAME_NOREPLACE ?
					    RENAME_NOREPLACE :
					    0) |
					   (o->flags & LAM_RENAME_EXCHANGE ?
						    RENAME_EXCHANGE :
						    0)) < 0 ?
				 errno :
				 0;
		break;
	case K_LINK:
		r->err = linkat(k->fd, o->a, k->fd, o->b, 0) < 0 ? errno : 0;
		break;
	case K_SYMLINK:
		r->err = symlinkat(o->b, k->fd, o->a) < 0 ? errno : 0;
		break;
	case K_CHMOD:
		r->err = fchmodat(k->fd, o->a, o->mode, 0) < 0 ? errno : 0;
		break;
	case K_CHOWN:
		r->err = fchownat(k->fd, o->a, o->uid, o->gid,
				  o->nofollow ? AT_SYMLINK_NOFOLLOW : 0) < 0 ?
				 errno :
				 0;
		break;
	case K_UTIMENS: {
		struct timespec ts[2];
		for (int i = 0; i < 2; i++) {
			ts[i].tv_sec = (time_t)o->t[i][0];
			ts[i].tv_nsec =
				o->t[i][1] == LAM_TIME_NOW  ? UTIME_NOW :
				o->t[i][1] == LAM_TIME_OMIT ? UTIME_OMIT :
							      (long)o->t[i][1];
		}
		r->err = utimensat(k->fd, o->a, ts,
				   o->nofollow ? AT_SYMLINK_NOFOLLOW : 0) < 0 ?
				 errno :
				 0;
		break;
	}
	case K_MKFIFO:
		r->err = mknodat(k->fd, o->a, S_IFIFO | o->mode, 0) < 0 ?
				 errno :
				 0;
		break;
	case K_MKNOD:
		r->err = mknodat(k->fd, o->a, o->mode, (dev_t)o->rdev) < 0 ?
				 errno :
				 0;
		break;
	case K_SETXATTR: {
		int fl = (o->flags & LAM_XATTR_CREATE ? XATTR_CREATE : 0) |
			 (o->flags & LAM_XATTR_REPLACE ? XATTR_REPLACE : 0);
		int rc = o->nofollow ?
				 lsetxattr(full, o->xname, o->xval, o->xlen,
					   fl) :
				 setxattr(full, o->xname, o->xval, o->xlen, fl);
		r->err = rc < 0 ? errno : 0;
		break;
	}
	case K_REMOVEXATTR: {
		int rc = o->nofollow ? lremovexattr(full, o->xname) :
				       removexattr(full, o->xname);
		r->err = rc < 0 ? errno : 0;
		break;
	}
	case K_STAT: {
		struct stat st;
		if (fstatat(k->fd, o->a, &st,
			    o->nofollow ? AT_SYMLINK_NOFOLLOW : 0) < 0)
			r->err = errno;
		else
			stat_info(r->info, sizeof(r->info), st.st_mode,
				  st.st_uid, st.st_gid, (uint64_t)st.st_size);
		break;
	}
	case K_OPEN:
		fd = openat(k->fd, o->a,
			    O_RDONLY | O_NONBLOCK | O_CLOEXEC | o->flags);
		if (fd < 0) {
			r->err = errno;
		} else {
			struct stat st;
			if (fstat(fd, &st) == 0)
				r->type = st.st_mode & S_IFMT;
			close(fd);
		}
		break;
	case K_LIST: {
		fd = openat(k->fd, o->a, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0) {
			r->err = errno;
			break;
		}
		DIR *d = fdopendir(fd);
		struct dirent *de;
		char *names[512];
		int n = 0;
		while ((de = readdir(d)) != NULL && n < 512)
			if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
				names[n++] = strdup(de->d_name);
		closedir(d);
		qsort(names, (size_t)n, sizeof(*names), name_cmp);
		size_t len = 0;
		for (int i = 0; i < n; i++) {
			len += (size_t)snprintf(r->info + len,
						len < sizeof(r->info) ?
							sizeof(r->info) - len :
							0,
						"%s ", names[i]);
			if (len >= sizeof(r->info))
				len = sizeof(r->info) - 1;
			free(names[i]);
		}
		break;
	}
	case K_READLINK: {
		char t[PATH_MAX];
		ssize_t n = readlinkat(k->fd, o->a, t, sizeof(t) - 1);
		if (n < 0)
			r->err = errno;
		else
			snprintf(r->info, sizeof(r->info), "%.*s", (int)n, t);
		break;
	}
	default:
		break;
	}
	free(buf);
}

/* ---- the lamina side --------------------------------------------------- */

/* The errno of a lamina result; a code other than LAM_EPOSIX is noted. */
static int lerr(int rc, result *r, const char *what)
{
	if (rc == 0)
		return 0;
	if (rc == LAM_EPOSIX)
		return lam_error_last()->os_errno;
	snprintf(r->unexpected, sizeof(r->unexpected), "%s: code %d (%s): %s",
		 what, rc, lam_strerror(rc), lam_error_last()->message);
	return -1000;
}

static void v_apply(lam_view *v, const op *o, result *r)
{
	memset(r, 0, sizeof(*r));
	char *buf = NULL;
	lam_view_file *f = NULL;
	int rc;
	switch (o->kind) {
	case K_CREATE:
	case K_PWRITE:
	case K_APPEND: {
		int fl = O_WRONLY;
		if (o->kind == K_CREATE)
			fl |= O_CREAT | o->flags;
		if (o->kind == K_APPEND)
			fl |= O_APPEND;
		rc = lam_view_file_open(&f, v, o->a, fl, o->mode);
		if ((r->err = lerr(rc, r, "open")) != 0)
			break;
		buf = malloc(o->len + 1);
		fill(buf, o->len, o->dseed);
		size_t n = 0;
		if (o->kind == K_PWRITE)
			rc = lam_view_file_pwrite(f, buf, o->len, o->off, &n);
		else
			rc = lam_view_file_write(f, buf, o->len, &n);
		r->err = lerr(rc, r, "write");
		if (rc == 0 && n != o->len)
			snprintf(r->unexpected, sizeof(r->unexpected),
				 "short write %zu of %" PRIu64, n, o->len);
		rc = lam_view_file_close(f);
		if (r->err == 0)
			r->err = lerr(rc, r, "close");
		break;
	}
	case K_TRUNCATE:
		r->err =
			lerr(lam_view_truncate(v, o->a, o->len), r, "truncate");
		break;
	case K_MKDIR:
		r->err = lerr(lam_view_mkdir(v, o->a, o->mode), r, "mkdir");
		break;
	case K_RMDIR:
		r->err = lerr(lam_view_rmdir(v, o->a), r, "rmdir");
		break;
	case K_UNLINK:
		r->err = lerr(lam_view_unlink(v, o->a), r, "unlink");
		break;
	case K_RENAME:
		r->err =
			lerr(lam_view_rename(v, o->a, o->b, (unsigned)o->flags),
			     r, "rename");
		break;
	case K_LINK:
		r->err = lerr(lam_view_link(v, o->a, o->b), r, "link");
		break;
	case K_SYMLINK:
		r->err = lerr(lam_view_symlink(v, o->b, o->a), r, "symlink");
		break;
	case K_CHMOD:
		r->err = lerr(lam_view_chmod(v, o->a, o->mode), r, "chmod");
		break;
	case K_CHOWN:
		r->err = lerr(lam_view_chown(v, o->a, o->uid, o->gid,
					     o->nofollow ? LAM_NOFOLLOW : 0),
			      r, "chown");
		break;
	case K_UTIMENS: {
		lam_time t[2] = {{o->t[0][0], o->t[0][1]},
				 {o->t[1][0], o->t[1][1]}};
		r->err = lerr(lam_view_utimens(v, o->a, t,
					       o->nofollow ? LAM_NOFOLLOW : 0),
			      r, "utimens");
		break;
	}
	case K_MKFIFO:
		r->err = lerr(lam_view_mkfifo(v, o->a, o->mode), r, "mkfifo");
		break;
	case K_MKNOD:
		r->err = lerr(lam_view_mknod(v, o->a, o->mode, o->rdev), r,
			      "mknod");
		break;
	case K_SETXATTR:
		r->err = lerr(lam_view_setxattr(
				      v, o->a, o->xname, o->xval, o->xlen,
				      (unsigned)o->flags |
					      (o->nofollow ? LAM_NOFOLLOW : 0)),
			      r, "setxattr");
		break;
	case K_REMOVEXATTR:
		r->err = lerr(lam_view_removexattr(v, o->a, o->xname,
						   o->nofollow ? LAM_NOFOLLOW :
								 0),
			      r, "removexattr");
		break;
	case K_STAT: {
		lam_stat st;
		rc = o->nofollow ? lam_view_lstat(v, o->a, &st) :
				   lam_view_stat(v, o->a, &st);
		r->err = lerr(rc, r, "stat");
		if (rc == 0)
			stat_info(r->info, sizeof(r->info), st.mode, st.uid,
				  st.gid, st.size);
		break;
	}
	case K_OPEN:
		rc = lam_view_file_open(&f, v, o->a, O_RDONLY | o->flags, 0);
		r->err = lerr(rc, r, "open");
		if (rc == 0)
			lam_view_file_close(f);
		break;
	case K_LIST: {
		lam_view_dir_iter *it;
		rc = lam_view_dir_iter_new(&it, v, o->a);
		if ((r->err = lerr(rc, r, "list")) != 0)
			break;
		char *names[512];
		int n = 0;
		lam_dirent d;
		while (n < 512 && lam_view_dir_iter_next(it, &d) == 0)
			names[n++] = strdup(d.name);
		lam_view_dir_iter_free(it);
		qsort(names, (size_t)n, sizeof(*names), name_cmp);
		size_t len = 0;
		for (int i = 0; i < n; i++) {
			len += (size_t)snprintf(r->info + len,
						len < sizeof(r->info) ?
							sizeof(r->info) - len :
							0,
						"%s ", names[i]);
			if (len >= sizeof(r->info))
				len = sizeof(r->info) - 1;
			free(names[i]);
		}
		break;
	}
	case K_READLINK: {
		char *t = NULL;
		rc = lam_view_readlink(&t, v, o->a);
		r->err = lerr(rc, r, "readlink");
		if (rc == 0)
			snprintf(r->info, sizeof(r->info), "%s", t);
		lam_free(t);
		break;
	}
	default:
		break;
	}
	free(buf);
}

/* ---- generating operations --------------------------------------------- */

static const char *const pool[] = {"a", "b", "c",  "d", "f1",  "f2",
				   "g", "h", "x",  "y", "sub", "new",
				   "n", "m", "d1", "d2"};
#define POOL_LEN (sizeof(pool) / sizeof(pool[0]))

/* Content objects are found by the kernel through absolute redirects such
 * as "/n/fmZQ3AT...", looked up in every lower layer before the data-only
 * one: a root folder of that one-letter name in a layer breaks them
 * (reported), so while that is tolerated the names get longer. */
static const char *pool_name(rng *r)
{
	static char buf[8];
	const char *name = pool[below(r, POOL_LEN)];
	if (!tolerate("redirect-collision"))
		return name;
	snprintf(buf, sizeof(buf), "r%s", name);
	return buf;
}

enum want {
	W_ANY,
	W_FILE,
	W_DIR,
	W_NONDIR,
	W_NEW
};

static bool depth_ok(const char *p)
{
	int d = 0;
	for (; *p; p++)
		d += *p == '/';
	return d < 6;
}

static const tent *pick_entry(rng *r, const tree *t, enum want w)
{
	size_t cand[4096], n = 0;
	for (size_t i = 1; i < t->n && n < 4096; i++) {
		uint32_t m = t->v[i].mode;
		bool ok = w == W_ANY || (w == W_FILE && S_ISREG(m)) ||
			  (w == W_DIR && S_ISDIR(m)) ||
			  (w == W_NONDIR && !S_ISDIR(m));
		if (ok)
			cand[n++] = i;
	}
	return n ? &t->v[cand[below(r, n)]] : NULL;
}

/* A path in an existing folder that likely does not exist. */
static void pick_new(rng *r, const tree *t, char *out, size_t size)
{
	const tent *d = chance(r, 20) ? NULL : pick_entry(r, t, W_DIR);
	const char *name = pool_name(r);
	if (d == NULL || !depth_ok(d->path))
		snprintf(out, size, "%s", name);
	else
		snprintf(out, size, "%s/%s", d->path, name);
}

/* Odd paths: through a file, through a missing folder, through a symlink,
 * with "." and ".." in them, doubled slashes, the root. */
static void pick_odd(rng *r, const tree *t, char *out, size_t size)
{
	const tent *e;
	const char *name = pool_name(r);
	unsigned int k = (unsigned int)below(r, 8);
	/* Trailing "/" and "/." must name a folder (reported: a view takes
	 * "file/" for "file"). */
	if (k >= 6 && tolerate("trailing-slash"))
		k = 5;
	switch (k) {
	case 6:
		e = chance(r, 30) ? NULL : pick_entry(r, t, W_ANY);
		snprintf(out, size, "%s/", e ? e->path : name);
		break;
	case 7:
		e = pick_entry(r, t, W_ANY);
		snprintf(out, size, "%s/.", e ? e->path : name);
		break;
	case 0:
		e = pick_entry(r, t, W_NONDIR);
		snprintf(out, size, "%s/%s", e ? e->path : "etc/hostname",
			 name);
		break;
	case 1:
		snprintf(out, size, "nowhere/%s", name);
		break;
	case 2:
		snprintf(out, size, "sym-dir/%s", chance(r, 50) ? "a" : name);
		break;
	case 3:
		e = pick_entry(r, t, W_DIR);
		snprintf(out, size, "%s/./%s", e ? e->path : "etc", name);
		break;
	case 4:
		e = pick_entry(r, t, W_DIR);
		snprintf(out, size, "%s/../%s", e ? e->path : "etc", name);
		break;
	default:
		e = pick_entry(r, t, W_DIR);
		snprintf(out, size, "/%s//%s", e ? e->path : "etc", name);
		break;
	}
}

static void pick(rng *r, const tree *t, enum want w, char *out, size_t size)
{
	if (chance(r, 8)) {
		pick_odd(r, t, out, size);
		return;
	}
	if (w == W_NEW) {
		pick_new(r, t, out, size);
		return;
	}
	const tent *e = pick_entry(r, t, chance(r, 15) ? W_ANY : w);
	if (e == NULL)
		pick_new(r, t, out, size);
	else
		snprintf(out, size, "%s", e->path);
}

/* A symlink target that never leads out of the tree: a relative path
 * downwards from the link's folder (which may dangle or loop). */
static void pick_target(rng *r, const tree *t, const char *link, char *out,
			size_t size)
{
	const char *slash = strrchr(link, '/');
	size_t dlen = slash ? (size_t)(slash - link) : 0;
	unsigned int k = (unsigned int)below(r, 10);
	if (k < 4) {
		/* An entry below the link's folder. */
		for (int tries = 0; tries < 8; tries++) {
			const tent *e = pick_entry(r, t, W_ANY);
			if (e == NULL)
				break;
			if (dlen == 0) {
				snprintf(out, size, "%s", e->path);
				return;
			}
			if (strncmp(e->path, link, dlen) == 0 &&
			    e->path[dlen] == '/') {
				snprintf(out, size, "%s", e->path + dlen + 1);
				return;
			}
		}
	}
	if (k < 7)
		snprintf(out, size, "%s", pool_name(r));
	else if (k < 8)
		snprintf(out, size, "%s", slash ? slash + 1 : link);
	else {
		char first[8];
		snprintf(first, sizeof(first), "%s", pool_name(r));
		snprintf(out, size, "%s/%s", first, pool_name(r));
	}
}

static const uint32_t file_modes[] = {0644,  0600, 0755,  0400,
				      04755, 0666, 02750, 0};
static const uint32_t dir_modes[] = {0755, 0700, 0750, 01777, 02755, 0555};
static const uint32_t ids[] = {0, 1000, 1234, (uint32_t)-1};

/* Entries made over a whiteout in a set-group-ID folder lose its group
 * and S_ISGID (reported): while that is tolerated, no mode sets it. */
static uint32_t no_setgid(uint32_t mode)
{
	return tolerate("setgid-staged") ? mode & ~(uint32_t)S_ISGID : mode;
}

static uint64_t pick_len(rng *r)
{
	if (chance(r, 10))
		return below(r, 100000);
	return below(r, 3000);
}

static uint64_t pick_off(rng *r)
{
	if (chance(r, 30))
		return below(r, 320000);
	return below(r, 9000);
}

static int64_t old_time_value(rng *r)
{
	return 631152000 + (int64_t)below(r, 300000000);
}

static void gen_op(rng *r, const tree *t, unsigned int tree_size_hint, op *o)
{
	memset(o, 0, sizeof(*o));
	unsigned int total = 0, w[NKINDS];
	for (int i = 0; i < NKINDS; i++) {
		w[i] = kind_weight[i];
		/* Keep the tree from growing without bound. */
		if (tree_size_hint > 220 &&
		    (i == K_CREATE || i == K_MKDIR || i == K_LINK ||
		     i == K_SYMLINK || i == K_MKFIFO))
			w[i] = 1;
		total += w[i];
	}
	unsigned int x = (unsigned int)below(r, total);
	int kind = 0;
	while (x >= w[kind])
		x -= w[kind++];
	o->kind = (enum opkind)kind;
	o->dseed = rnd(r);
	switch (o->kind) {
	case K_CREATE:
		pick(r, t, chance(r, 60) ? W_NEW : W_FILE, o->a, sizeof(o->a));
		o->flags = (chance(r, 20) ? O_EXCL : 0) |
			   (chance(r, 30) ? O_TRUNC : 0);
		o->mode = file_modes[below(r, 7)];
		o->len = pick_len(r);
		break;
	case K_PWRITE:
		pick(r, t, W_FILE, o->a, sizeof(o->a));
		o->off = pick_off(r);
		o->len = 1 + pick_len(r);
		break;
	case K_APPEND:
		pick(r, t, W_FILE, o->a, sizeof(o->a));
		o->len = 1 + below(r, 2000);
		break;
	case K_TRUNCATE:
		pick(r, t, W_FILE, o->a, sizeof(o->a));
		o->len = chance(r, 30) ? below(r, 320000) : below(r, 6000);
		break;
	case K_MKDIR:
		pick(r, t, chance(r, 85) ? W_NEW : W_ANY, o->a, sizeof(o->a));
		o->mode = no_setgid(dir_modes[below(r, 6)]);
		break;
	case K_RMDIR:
		pick(r, t, W_DIR, o->a, sizeof(o->a));
		break;
	case K_UNLINK:
		pick(r, t, W_NONDIR, o->a, sizeof(o->a));
		break;
	case K_RENAME: {
		bool dir = chance(r, 35);
		pick(r, t, dir ? W_DIR : W_NONDIR, o->a, sizeof(o->a));
		pick(r, t,
		     chance(r, 50) ? W_NEW :
		     dir	   ? W_DIR :
				     W_NONDIR,
		     o->b, sizeof(o->b));
		unsigned int f = (unsigned int)below(r, 100);
		o->flags = f < 70 ? 0 :
			   f < 85 ? LAM_RENAME_NOREPLACE :
				    LAM_RENAME_EXCHANGE;
		break;
	}
	case K_LINK:
		pick(r, t, W_NONDIR, o->a, sizeof(o->a));
		pick(r, t, W_NEW, o->b, sizeof(o->b));
		break;
	case K_SYMLINK:
		pick(r, t, W_NEW, o->a, sizeof(o->a));
		pick_target(r, t, o->a, o->b, sizeof(o->b));
		break;
	case K_CHMOD:
		pick(r, t, W_ANY, o->a, sizeof(o->a));
		o->mode = no_setgid(chance(r, 50) ? file_modes[below(r, 8)] :
						    dir_modes[below(r, 6)]);
		break;
	case K_CHOWN:
		pick(r, t, W_ANY, o->a, sizeof(o->a));
		o->uid = ids[below(r, 4)];
		o->gid = ids[below(r, 4)];
		o->nofollow = chance(r, 50);
		break;
	case K_UTIMENS:
		pick(r, t, W_ANY, o->a, sizeof(o->a));
		for (int i = 0; i < 2; i++) {
			unsigned int k = (unsigned int)below(r, 10);
			o->t[i][0] = old_time_value(r);
			o->t[i][1] = k < 7 ? (int64_t)below(r, 1000000000) :
				     k < 8 ? LAM_TIME_NOW :
					     LAM_TIME_OMIT;
		}
		o->nofollow = chance(r, 50);
		break;
	case K_MKFIFO:
		pick(r, t, chance(r, 85) ? W_NEW : W_ANY, o->a, sizeof(o->a));
		o->mode = chance(r, 50) ? 0644 : 0600;
		break;
	case K_MKNOD:
		/* Device nodes; 0/0 is overlayfs's whiteout, which the kernel
		 * refuses to make (EPERM). */
		pick(r, t, chance(r, 85) ? W_NEW : W_ANY, o->a, sizeof(o->a));
		o->mode = S_IFCHR | 0600;
		o->rdev = chance(r, 50) ? 0 : makedev(1, 3);
		break;
	case K_SETXATTR:
	case K_REMOVEXATTR:
		pick(r, t, W_ANY, o->a, sizeof(o->a));
		snprintf(o->xname, sizeof(o->xname), "user.%c",
			 "abcm"[below(r, 4)]);
		o->xlen = below(r, 20);
		fill(o->xval, o->xlen, o->dseed);
		{
			unsigned int f = (unsigned int)below(r, 10);
			o->flags = f < 6 ? 0 :
				   f < 8 ? LAM_XATTR_CREATE :
					   LAM_XATTR_REPLACE;
		}
		if (o->kind == K_REMOVEXATTR)
			o->flags = 0;
		o->nofollow = chance(r, 50);
		break;
	case K_STAT:
		pick(r, t, W_ANY, o->a, sizeof(o->a));
		o->nofollow = chance(r, 50);
		break;
	case K_OPEN: {
		pick(r, t, W_FILE, o->a, sizeof(o->a));
		unsigned int f = (unsigned int)below(r, 4);
		o->flags = f == 0 ? O_NOFOLLOW : f == 1 ? O_DIRECTORY : 0;
		break;
	}
	case K_LIST:
		pick(r, t, W_DIR, o->a, sizeof(o->a));
		break;
	case K_READLINK:
		pick(r, t, W_ANY, o->a, sizeof(o->a));
		break;
	default:
		break;
	}
}

/* ---- the random run ---------------------------------------------------- */

/* Mismatches of results that are deliberate differences (docs/views.md,
 * each with a test of its own below). */
static bool deliberate(const op *o, const result *k, const result *v)
{
	/* Opening a fifo or device node (to read, or to write into): lamina
	 * has no such files to hand out and says ENXIO. */
	bool opens = o->kind == K_OPEN || o->kind == K_CREATE ||
		     o->kind == K_PWRITE || o->kind == K_APPEND;
	if (opens && k->err == 0 && v->err == ENXIO &&
	    (k->type == S_IFIFO || k->type == S_IFCHR || k->type == S_IFBLK))
		return true;
	/* utimensat() with both times UTIME_OMIT: Linux returns 0 without
	 * looking at the path; lamina resolves it like any other call. */
	if (o->kind == K_UTIMENS && o->t[0][1] == LAM_TIME_OMIT &&
	    o->t[1][1] == LAM_TIME_OMIT && k->err == 0)
		return true;
	return false;
}

/* Mismatches of results that are known lamina bugs (reported), let
 * through only with LAMINA_DIFF_TOLERATE naming their tag. */
static bool known_bug(const op *o, const result *k, const result *v)
{
	/* Linking a folder to a name that exists or cannot be made: Linux
	 * resolves the new name (EEXIST, ENOENT, ENOTDIR) before it looks at
	 * the source (EPERM); lamina the other way round. */
	if (o->kind == K_LINK && k->err != 0 && v->err == EPERM)
		return tolerate("link-order");
	/* Renaming a file over a folder it lies in ("d/f" -> "d"): Linux
	 * finds the new name is an ancestor of the old (ENOTEMPTY) before it
	 * compares their types; lamina says EISDIR. */
	if (o->kind == K_RENAME && k->err == ENOTEMPTY && v->err == EISDIR)
		return tolerate("rename-ancestor");
	return false;
}

typedef struct history {
	char ops[48][700];
	int n;
} history;

static void remember(history *h, int step, const op *o)
{
	char t[600];
	op_text(o, t, sizeof(t));
	snprintf(h->ops[h->n % 48], sizeof(h->ops[0]), "  step %d: %s", step,
		 t);
	h->n++;
}

static void print_history(const history *h)
{
	int first = h->n > 48 ? h->n - 48 : 0;
	fprintf(stderr, "the last operations:\n");
	for (int i = first; i < h->n; i++)
		fprintf(stderr, "%s\n", h->ops[i % 48]);
}

typedef struct run {
	uint64_t seed;
	int step;
	history h;
	kside k;
	lam_view *v;
	tree kt, vt, ct;
	int commits;
} run;

#define RUN_FAIL(ru, ...)                                               \
	do {                                                            \
		print_history(&(ru)->h);                                \
		char msg_[2048];                                        \
		snprintf(msg_, sizeof(msg_), __VA_ARGS__);              \
		ck_abort_msg("seed %" PRIu64 " (LAMINA_SEED=%" PRIu64   \
			     " to repeat), step %d: %s",                \
			     (ru)->seed, (ru)->seed, (ru)->step, msg_); \
	} while (0)

static void compare_now(run *ru, const char *when)
{
	dump_host(&ru->kt, ru->k.mnt);
	dump_view(&ru->vt, ru->v);
	char *d = tree_compare(&ru->kt, &ru->vt, "kernel", "view");
	if (d != NULL)
		RUN_FAIL(ru, "%s: %s", when, d);
}

static int problem_cb(const char *what, const char *problem, void *ud)
{
	fprintf(stderr, "store check: %s: %s\n", what, problem);
	(*(int *)ud)++;
	return 0;
}

/* Commit the view, check out the new layer and compare it (and the view
 * over it) with the kernel mount. */
static lam_layer *commit_and_compare(run *ru)
{
	lam_layer *l = NULL;
	int rc = lam_view_commit(ru->v, &l, NULL);
	if (rc != 0)
		RUN_FAIL(ru, "commit: %d %s", rc, lam_error_last()->message);
	char co[4096];
	snprintf(co, sizeof(co), "%s", lt_path("co-%d", ru->commits++));
	rc = lam_layer_checkout(l, co, NULL);
	if (rc != 0)
		RUN_FAIL(ru, "checkout: %d %s", rc, lam_error_last()->message);
	dump_host(&ru->ct, co);
	dump_host(&ru->kt, ru->k.mnt);
	char *d = tree_compare(&ru->kt, &ru->ct, "kernel", "checkout");
	if (d != NULL)
		RUN_FAIL(ru, "after commit %d: %s", ru->commits, d);
	compare_now(ru, "the view after a commit");
	/* The committed chain itself, mounted by the kernel as lowerdirs,
	 * shows what its checkout shows. (Whiteouts that hide nothing are
	 * committed, and the kernel lists them: reported.) */
	if (tolerate("phantom-whiteouts"))
		goto checked;
	char mnt[4096];
	snprintf(mnt, sizeof(mnt), "%s", lt_path("mnt-commit"));
	int err = mount_chain(mnt, l, NULL, NULL, NULL);
	if (err != 0)
		RUN_FAIL(ru, "mounting the committed chain: %s", strerror(err));
	tree mt = {0};
	char *why = dump_host_soft(&mt, mnt);
	if (why == NULL)
		why = tree_compare(&mt, &ru->ct, "committed chain", "checkout");
	tree_free(&mt);
	umount2(mnt, MNT_DETACH);
	nmounts--;
	if (why != NULL)
		RUN_FAIL(ru, "after commit %d, the committed chain mounted: %s",
			 ru->commits, why);
checked:
	lt_rmtree(co);
	int problems = 0;
	size_t n = 0;
	LT_OK(lam_store_check(lt_store, LAM_CHECK_QUICK, problem_cb, &problems,
			      &n));
	if (n != 0)
		RUN_FAIL(ru, "store check: %zu problems", n);
	return l;
}

static void random_run(uint64_t seed, int steps)
{
	run *ru = calloc(1, sizeof(*ru));
	ru->seed = seed;
	ru->step = -1;
	rng r = {seed * 0x9E3779B97F4A7C15ull + 0x1234567};
	bool verbose = env_u64("LAMINA_DIFF_VERBOSE", 0) != 0;
	int commit_every =
		(int)env_u64("LAMINA_DIFF_COMMIT_EVERY", COMMIT_EVERY);
	lam_layer *l1, *l2, *top = build_image(&l1, &l2);
	LT_OK(lam_view_create(&ru->v, lt_store, top, NULL));
	snprintf(ru->k.mnt, sizeof(ru->k.mnt), "%s", lt_path("mnt"));
	int err = mount_chain(ru->k.mnt, top, lt_path("kupper"),
			      lt_path("kwork"), kernel_opts);
	ck_assert_msg(err == 0, "mounting the kernel overlay: %s",
		      strerror(err));
	ru->k.fd = open(ru->k.mnt, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	ck_assert_int_ge(ru->k.fd, 0);
	compare_now(ru, "before any operation");
	lam_layer *last = NULL;
	for (ru->step = 0; ru->step < steps; ru->step++) {
		op o;
		gen_op(&r, &ru->kt, (unsigned int)ru->kt.n, &o);
		remember(&ru->h, ru->step, &o);
		if (verbose)
			fprintf(stderr, "%s\n", ru->h.ops[(ru->h.n - 1) % 48]);
		result kr, vr;
		k_apply(&ru->k, &o, &kr);
		v_apply(ru->v, &o, &vr);
		char t[600];
		op_text(&o, t, sizeof(t));
		if (vr.unexpected[0])
			RUN_FAIL(ru, "%s: lamina failed: %s", t, vr.unexpected);
		if (kr.err != vr.err && !deliberate(&o, &kr, &vr) &&
		    !known_bug(&o, &kr, &vr))
			RUN_FAIL(ru, "%s: kernel gives %d (%s), view %d (%s)",
				 t, kr.err, strerror(kr.err), vr.err,
				 strerror(vr.err));
		if (strcmp(kr.info, vr.info) != 0)
			RUN_FAIL(ru, "%s: kernel sees '%s', view '%s'", t,
				 kr.info, vr.info);
		compare_now(ru, t);
		if ((ru->step + 1) % commit_every == 0 ||
		    ru->step + 1 == steps) {
			lam_layer_free(last);
			last = commit_and_compare(ru);
		}
	}
	close(ru->k.fd);
	tree_free(&ru->kt);
	tree_free(&ru->vt);
	tree_free(&ru->ct);
	lam_view_free(ru->v);
	lam_layer_free(last);
	lam_layer_free(top);
	lam_layer_free(l1);
	lam_layer_free(l2);
	free(ru);
}

START_TEST(test_random_operations_match_kernel_overlayfs)
{
	uint64_t seed = env_u64("LAMINA_SEED", DEFAULT_SEED) + (uint64_t)_i;
	int steps = (int)env_u64("LAMINA_DIFF_STEPS", DEFAULT_STEPS);
	fprintf(stderr, "view-diff: run %d, seed %" PRIu64 ", %d steps\n", _i,
		seed, steps);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	random_run(seed, steps);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	fprintf(stderr, "view-diff: run %d done in %.1f s\n", _i,
		(double)(t1.tv_sec - t0.tv_sec) +
			(double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
}
END_TEST

/* ---- deliberate differences, one test each (docs/views.md) ------------- */

static char *read_view(lam_view *v, const char *path)
{
	lam_view_file *f;
	LT_OK(lam_view_file_open(&f, v, path, O_RDONLY, 0));
	char *buf = calloc(1, 65536);
	size_t got;
	LT_OK(lam_view_file_read(f, buf, 65535, &got));
	LT_OK(lam_view_file_close(f));
	return buf;
}

static void write_view(lam_view *v, const char *path, const char *text,
		       int flags)
{
	lam_view_file *f;
	LT_OK(lam_view_file_open(&f, v, path, O_WRONLY | flags, 0644));
	size_t n;
	LT_OK(lam_view_file_write(f, text, strlen(text), &n));
	LT_OK(lam_view_file_close(f));
}

static void expect_errno(int rc, int err)
{
	ck_assert_int_eq(rc, LAM_EPOSIX);
	ck_assert_int_eq(lam_error_last()->os_errno, err);
}

/* A kernel overlay of a plain host folder (not a layer folder), with the
 * kernel's own options; returns 0 or mount(2)'s errno. */
static int mount_plain(const char *name, const char *lower, const char *opts)
{
	char o[16384];
	snprintf(o, sizeof(o), "lowerdir=%s,upperdir=%s,workdir=%s%s%s", lower,
		 lt_path("%s-u", name), lt_path("%s-w", name),
		 opts[0] ? "," : "", opts);
	lt_mkdir(lt_path("%s-u", name));
	lt_mkdir(lt_path("%s-w", name));
	lt_mkdir(lt_path("%s", name));
	if (mount("overlay", lt_path("%s", name), "overlay", 0, o) < 0)
		return errno;
	snprintf(mounts[nmounts++], sizeof(mounts[0]), "%s",
		 lt_path("%s", name));
	return 0;
}

/* Renaming a folder of a lower layer: the kernel without redirect_dir
 * (its default) refuses with EXDEV; a view renames it, children and all,
 * and the commit holds it at its new place. */
START_TEST(test_rename_of_a_lower_folder_works_where_the_kernel_says_exdev)
{
	lt_write(lt_path("plain/d/f"), "f");
	lt_write(lt_path("plain/d/sub/g"), "g");
	lam_layer *base = lt_import(lt_path("plain"), NULL);
	lam_view *v;
	LT_OK(lam_view_create(&v, lt_store, base, NULL));
	LT_OK(lam_view_rename(v, "d", "e", 0));
	char *t = read_view(v, "e/sub/g");
	ck_assert_str_eq(t, "g");
	free(t);
	lam_stat st;
	expect_errno(lam_view_stat(v, "d", &st), ENOENT);
	lam_layer *l;
	LT_OK(lam_view_commit(v, &l, NULL));
	LT_OK(lam_layer_checkout(l, lt_path("co"), NULL));
	ck_assert(lt_exists(lt_path("co/e/sub/g")));
	ck_assert(!lt_exists(lt_path("co/d")));
	/* The kernel's default: EXDEV, and the program must copy. */
	ck_assert_int_eq(mount_plain("k", lt_path("plain"),
				     "redirect_dir=off,index=off"),
			 0);
	ck_assert_int_eq(rename(lt_path("k/d"), lt_path("k/e")), -1);
	ck_assert_int_eq(errno, EXDEV);
	lam_layer_free(l);
	lam_view_free(v);
	lam_layer_free(base);
}
END_TEST

/* Writing one link of a lower hard-link pair: the kernel without index
 * (its default) copies up that link alone, and the other keeps the old
 * content; in a view both links change, as on any filesystem. */
START_TEST(test_hard_links_stay_linked_where_the_kernel_breaks_them)
{
	lt_write(lt_path("plain/a"), "old");
	lt_link(lt_path("plain/a"), lt_path("plain/b"));
	lam_layer *base = lt_import(lt_path("plain"), NULL);
	lam_view *v;
	LT_OK(lam_view_create(&v, lt_store, base, NULL));
	write_view(v, "a", "new", O_TRUNC);
	char *t = read_view(v, "b");
	ck_assert_str_eq(t, "new");
	free(t);
	lam_stat sa, sb;
	LT_OK(lam_view_stat(v, "a", &sa));
	LT_OK(lam_view_stat(v, "b", &sb));
	ck_assert_uint_eq(sa.ino, sb.ino);
	ck_assert_uint_eq(sa.nlink, 2);
	ck_assert_int_eq(mount_plain("k", lt_path("plain"), "index=off"), 0);
	lt_write(lt_path("k/a"), "new");
	t = lt_read(lt_path("k/b"), NULL);
	ck_assert_str_eq(t, "old");
	free(t);
	lam_view_free(v);
	lam_layer_free(base);
}
END_TEST

/* A lower hard link whose other links a later layer deleted: the kernel
 * reports the lower inode's own link count (3 here, in every mode);
 * a view counts the links it shows (2). */
START_TEST(test_link_count_leaves_out_links_hidden_by_later_layers)
{
	lt_write(lt_path("l1/a"), "x");
	lt_link(lt_path("l1/a"), lt_path("l1/b"));
	lt_link(lt_path("l1/a"), lt_path("l1/c"));
	lam_layer *l1 = lt_import(lt_path("l1"), NULL);
	lt_whiteout(lt_path("l2/c"));
	lam_layer *l2 = lt_import(lt_path("l2"), l1);
	lam_view *v;
	LT_OK(lam_view_create(&v, lt_store, l2, NULL));
	lam_stat st;
	LT_OK(lam_view_stat(v, "a", &st));
	ck_assert_uint_eq(st.nlink, 2);
	lam_layer *l3;
	LT_OK(lam_view_commit(v, &l3, NULL));
	LT_OK(lam_layer_checkout(l3, lt_path("co"), NULL));
	struct stat hs;
	ck_assert_int_eq(stat(lt_path("co/a"), &hs), 0);
	ck_assert_uint_eq(hs.st_nlink, 2);
	ck_assert_int_eq(mount_chain(lt_path("m"), l2, NULL, NULL, NULL), 0);
	ck_assert_int_eq(stat(lt_path("m/a"), &hs), 0);
	ck_assert_uint_eq(hs.st_nlink, 3);
	lam_layer_free(l3);
	lam_view_free(v);
	lam_layer_free(l2);
	lam_layer_free(l1);
}
END_TEST

/* Deleting one link of a lower pair in the view leaves the other with one
 * link, as the kernel (index=on) reports too. */
START_TEST(test_link_count_drops_when_a_lower_link_is_deleted)
{
	lt_write(lt_path("l1/a"), "x");
	lt_link(lt_path("l1/a"), lt_path("l1/b"));
	lam_layer *l1 = lt_import(lt_path("l1"), NULL);
	lam_view *v;
	LT_OK(lam_view_create(&v, lt_store, l1, NULL));
	LT_OK(lam_view_unlink(v, "b"));
	lam_stat st;
	LT_OK(lam_view_stat(v, "a", &st));
	ck_assert_uint_eq(st.nlink, 1);
	lam_view_free(v);
	lam_layer_free(l1);
}
END_TEST

/* A view hands out regular files only: opening a fifo or a device node
 * gives ENXIO, where the kernel opens the fifo. */
START_TEST(test_opening_a_fifo_gives_enxio)
{
	lt_mkdir(lt_path("plain"));
	ck_assert_int_eq(mkfifo(lt_path("plain/fifo"), 0644), 0);
	lam_layer *base = lt_import(lt_path("plain"), NULL);
	lam_view *v;
	LT_OK(lam_view_create(&v, lt_store, base, NULL));
	LT_OK(lam_view_mkfifo(v, "fifo2", 0600));
	lam_view_file *f;
	expect_errno(lam_view_file_open(&f, v, "fifo", O_RDONLY, 0), ENXIO);
	expect_errno(lam_view_file_open(&f, v, "fifo2", O_RDONLY, 0), ENXIO);
	expect_errno(lam_view_file_open(&f, v, "fifo", O_WRONLY, 0), ENXIO);
	lam_stat st;
	LT_OK(lam_view_lstat(v, "fifo", &st));
	ck_assert(S_ISFIFO(st.mode));
	ck_assert_int_eq(mount_plain("k", lt_path("plain"), ""), 0);
	int fd = open(lt_path("k/fifo"), O_RDONLY | O_NONBLOCK);
	ck_assert_int_ge(fd, 0);
	close(fd);
	lam_view_free(v);
	lam_layer_free(base);
}
END_TEST

/* utimensat() with both times UTIME_OMIT returns 0 without looking at the
 * path; a view resolves the path like any call, so a missing one is
 * ENOENT. */
START_TEST(test_utimens_omitting_both_times_still_needs_the_path)
{
	lt_write(lt_path("plain/f"), "f");
	lam_layer *base = lt_import(lt_path("plain"), NULL);
	lam_view *v;
	LT_OK(lam_view_create(&v, lt_store, base, NULL));
	lam_time omit[2] = {{0, LAM_TIME_OMIT}, {0, LAM_TIME_OMIT}};
	expect_errno(lam_view_utimens(v, "missing", omit, 0), ENOENT);
	LT_OK(lam_view_utimens(v, "f", omit, 0));
	struct timespec ts[2] = {{0, UTIME_OMIT}, {0, UTIME_OMIT}};
	ck_assert_int_eq(utimensat(AT_FDCWD, lt_path("missing"), ts, 0), 0);
	lam_view_free(v);
	lam_layer_free(base);
}
END_TEST

/* Folder link counts are not comparable: a folder only in lower layers
 * counts 2 in a view; overlayfs says 1 for a merged folder. */
START_TEST(test_folder_link_counts)
{
	lt_write(lt_path("plain/d/sub/f"), "f");
	lt_mkdir(lt_path("plain/d/sub2"));
	lam_layer *base = lt_import(lt_path("plain"), NULL);
	lam_view *v;
	LT_OK(lam_view_create(&v, lt_store, base, NULL));
	lam_stat st;
	LT_OK(lam_view_stat(v, "d", &st));
	ck_assert_uint_eq(st.nlink, 2);
	write_view(v, "d/new", "n", O_CREAT);
	LT_OK(lam_view_stat(v, "d", &st));
	ck_assert_uint_ge(st.nlink, 2);
	ck_assert_int_eq(mount_plain("k", lt_path("plain"), ""), 0);
	lt_write(lt_path("k/d/new"), "n");
	struct stat hs;
	ck_assert_int_eq(stat(lt_path("k/d"), &hs), 0);
	ck_assert_uint_eq(hs.st_nlink, 1);
	lam_view_free(v);
	lam_layer_free(base);
}
END_TEST

/* An absolute symlink resolves from the view's root; through a kernel
 * mount it resolves from the host's root. (The random test makes only
 * relative symlinks that lead downwards.) */
START_TEST(test_absolute_symlinks_resolve_inside_the_view)
{
	lt_write(lt_path("plain/etc/hostname"), "inside the view\n");
	lt_symlink("/etc/hostname", lt_path("plain/abs"));
	lam_layer *base = lt_import(lt_path("plain"), NULL);
	lam_view *v;
	LT_OK(lam_view_create(&v, lt_store, base, NULL));
	char *t = read_view(v, "abs");
	ck_assert_str_eq(t, "inside the view\n");
	free(t);
	ck_assert_int_eq(mount_plain("k", lt_path("plain"), ""), 0);
	t = lt_read(lt_path("k/abs"), NULL);
	ck_assert(t == NULL || strcmp(t, "inside the view\n") != 0);
	free(t);
	lam_view_free(v);
	lam_layer_free(base);
}
END_TEST

/* ---- regressions: bugs the random test found, each pinned down ------- */

/* The checkout of a layer and a kernel mount of its chain (read-only, as
 * lowerdirs) must show the same tree; so must a view over it. */
static void expect_kernel_agrees(lam_layer *top, const char *name)
{
	tree co = {0}, km = {0}, vt = {0};
	LT_OK(lam_layer_checkout(top, lt_path("%s-co", name), NULL));
	dump_host(&co, lt_path("%s-co", name));
	ck_assert_int_eq(
		mount_chain(lt_path("%s-m", name), top, NULL, NULL, NULL), 0);
	char *why = dump_host_soft(&km, lt_path("%s-m", name));
	ck_assert_msg(why == NULL, "kernel mount of the chain: %s", why);
	char *d = tree_compare(&km, &co, "kernel", "checkout");
	ck_assert_msg(d == NULL, "%s", d);
	lam_view *v;
	LT_OK(lam_view_create(&v, lt_store, top, NULL));
	dump_view(&vt, v);
	d = tree_compare(&km, &vt, "kernel", "view");
	ck_assert_msg(d == NULL, "%s", d);
	lam_view_free(v);
	tree_free(&co);
	tree_free(&km);
	tree_free(&vt);
}

/* A folder made opaque, replaced by a file or deleted in a middle layer
 * must hide the bottom layer's children even when a later layer (here a
 * commit that touched the folder) holds the folder again. */
START_TEST(test_a_middle_layer_keeps_hiding_what_lies_below)
{
	lt_write(lt_path("l1/opq/drop"), "1");
	lt_write(lt_path("l1/rep/drop"), "1");
	lt_write(lt_path("l1/wh/drop"), "1");
	lam_layer *l1 = lt_import(lt_path("l1"), NULL);
	lt_opaque(lt_path("l2/opq"));
	lt_write(lt_path("l2/opq/kept"), "k");
	lt_write(lt_path("l2/rep"), "a file");
	lt_whiteout(lt_path("l2/wh"));
	lam_layer *l2 = lt_import(lt_path("l2"), l1);
	lam_view *v;
	LT_OK(lam_view_create(&v, lt_store, l2, NULL));
	write_view(v, "opq/kept", "changed", O_TRUNC);
	LT_OK(lam_view_unlink(v, "rep"));
	LT_OK(lam_view_mkdir(v, "rep", 0755));
	LT_OK(lam_view_mkdir(v, "wh", 0755));
	lam_layer *l3;
	LT_OK(lam_view_commit(v, &l3, NULL));
	lam_stat st;
	expect_errno(lam_view_stat(v, "opq/drop", &st), ENOENT);
	expect_errno(lam_view_stat(v, "rep/drop", &st), ENOENT);
	expect_errno(lam_view_stat(v, "wh/drop", &st), ENOENT);
	expect_kernel_agrees(l3, "a");
	lam_layer_free(l3);
	lam_view_free(v);
	lam_layer_free(l2);
	lam_layer_free(l1);
}
END_TEST

/* Whiteouts that hide nothing (inside an opaque folder; inside a folder
 * whose lower counterpart is hidden) must not reach a committed layer: a
 * kernel mount would list names it cannot open. */
START_TEST(test_commits_hold_no_whiteouts_that_hide_nothing)
{
	lt_write(lt_path("l1/d/f"), "f");
	lt_write(lt_path("l1/d/g"), "g");
	lt_write(lt_path("l1/a/b/c"), "c");
	lt_write(lt_path("l1/a/b/d"), "d");
	lam_layer *l1 = lt_import(lt_path("l1"), NULL);
	lam_view *v;
	LT_OK(lam_view_create(&v, lt_store, l1, NULL));
	LT_OK(lam_view_unlink(v, "d/f"));
	LT_OK(lam_view_rename(v, "d", "e", 0));
	LT_OK(lam_view_unlink(v, "a/b/c"));
	LT_OK(lam_view_rename(v, "a", "z", 0));
	LT_OK(lam_view_rename(v, "z/b", "nb", 0));
	lam_layer *l2;
	LT_OK(lam_view_commit(v, &l2, NULL));
	expect_kernel_agrees(l2, "b");
	lam_layer_free(l2);
	lam_view_free(v);
	lam_layer_free(l1);
}
END_TEST

/* Layer folders find content through redirects into the data-only layer;
 * root folders of an image, whatever their names, must not capture them. */
START_TEST(test_layer_folders_mount_whatever_the_root_folders_are_called)
{
	const char *names = "abcdefghijklmnopqrstuvwxyz"
			    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.";
	for (const char *c = names; *c; c++)
		lt_mkdir(lt_path("l1/%c%s", *c, *c == '.' ? "x" : ""));
	lam_layer *l1 = lt_import(lt_path("l1"), NULL);
	lt_write(lt_path("l2/file"), "hello\n");
	lt_write(lt_path("l2/other"), "world\n");
	lam_layer *l2 = lt_import(lt_path("l2"), l1);
	expect_kernel_agrees(l2, "c");
	lam_layer_free(l2);
	lam_layer_free(l1);
}
END_TEST

/* Exchanging a lower folder with a lower file that is a hard link of a
 * file inside it: copying the folder up brings the link up too. */
START_TEST(test_exchange_with_a_hard_link_of_its_own_child)
{
	lt_write(lt_path("l1/d/x"), "x");
	lt_link(lt_path("l1/d/x"), lt_path("l1/y"));
	lam_layer *l1 = lt_import(lt_path("l1"), NULL);
	lam_view *v;
	LT_OK(lam_view_create(&v, lt_store, l1, NULL));
	LT_OK(lam_view_rename(v, "d", "y", LAM_RENAME_EXCHANGE));
	char *t = read_view(v, "y/x");
	ck_assert_str_eq(t, "x");
	free(t);
	lam_stat a, b;
	LT_OK(lam_view_stat(v, "d", &a));
	LT_OK(lam_view_stat(v, "y/x", &b));
	ck_assert_uint_eq(a.ino, b.ino);
	ck_assert_uint_eq(a.nlink, 2);
	lam_view_free(v);
	lam_layer_free(l1);
}
END_TEST

/* In a set-group-ID folder new entries take the folder's group, and new
 * folders the S_ISGID bit: also when they replace a deleted lower entry
 * (made aside, then moved in). */
START_TEST(test_entries_made_over_a_whiteout_inherit_a_setgid_folder)
{
	lt_write(lt_path("l1/d/f"), "f");
	lt_mkdir(lt_path("l1/d/sub"));
	ck_assert_int_eq(chown(lt_path("l1/d"), 0, 100), 0);
	ck_assert_int_eq(chmod(lt_path("l1/d"), 02775), 0);
	lam_layer *l1 = lt_import(lt_path("l1"), NULL);
	lam_view *v;
	LT_OK(lam_view_create(&v, lt_store, l1, NULL));
	LT_OK(lam_view_rmdir(v, "d/sub"));
	LT_OK(lam_view_mkdir(v, "d/sub", 0755));
	LT_OK(lam_view_unlink(v, "d/f"));
	write_view(v, "d/f", "new", O_CREAT);
	lam_stat st;
	LT_OK(lam_view_stat(v, "d/sub", &st));
	ck_assert_uint_eq(st.gid, 100);
	ck_assert_uint_eq(st.mode & 07777, 02755);
	LT_OK(lam_view_stat(v, "d/f", &st));
	ck_assert_uint_eq(st.gid, 100);
	lam_view_free(v);
	lam_layer_free(l1);
}
END_TEST

/* ---- main -------------------------------------------------------------- */

/* Can this kernel mount a writable overlay of layer folders (data-only
 * lower layer, metacopy, index)? Tried in a child, in its own namespace. */
static bool kernel_overlay_works(void)
{
	const char *base = getenv("TMPDIR");
	char dir[4096];
	snprintf(dir, sizeof(dir), "%s/lamina-probe-XXXXXX",
		 base && base[0] ? base : "/tmp");
	if (mkdtemp(dir) == NULL)
		return false;
	pid_t pid = fork();
	if (pid == 0) {
		char p[5][4200], opts[20000];
		const char *names[5] = {"l", "data", "u", "w", "m"};
		for (int i = 0; i < 5; i++) {
			snprintf(p[i], sizeof(p[i]), "%s/%s", dir, names[i]);
			if (mkdir(p[i], 0755) < 0)
				_exit(1);
		}
		snprintf(opts, sizeof(opts),
			 "lowerdir=%s::%s,upperdir=%s,workdir=%s,%s", p[0],
			 p[1], p[2], p[3], kernel_opts);
		if (!private_mounts() ||
		    mount("overlay", p[4], "overlay", 0, opts) < 0) {
			fprintf(stderr, "view-diff: overlay mount: %s\n",
				strerror(errno));
			_exit(1);
		}
		umount2(p[4], MNT_DETACH);
		_exit(0);
	}
	int status = 1;
	if (pid > 0)
		waitpid(pid, &status, 0);
	char cmd[4200];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
	return pid > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

int main(void)
{
	if (!lt_is_root()) {
		fprintf(stderr, "view-diff: needs root, skipped\n");
		return 77;
	}
	if (!kernel_overlay_works()) {
		fprintf(stderr, "view-diff: no overlayfs with data-only lower "
				"layers, metacopy and index here, skipped\n");
		return 77;
	}
	Suite *s = suite_create("view-diff");
	TCase *tc = tcase_create("random");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 240);
	int runs = (int)env_u64("LAMINA_DIFF_RUNS", DEFAULT_RUNS);
	tcase_add_loop_test(tc, test_random_operations_match_kernel_overlayfs,
			    0, runs);
	suite_add_tcase(s, tc);
	TCase *td = tcase_create("differences");
	tcase_add_checked_fixture(td, setup, teardown);
	tcase_add_test(
		td,
		test_rename_of_a_lower_folder_works_where_the_kernel_says_exdev);
	tcase_add_test(
		td, test_hard_links_stay_linked_where_the_kernel_breaks_them);
	tcase_add_test(td,
		       test_link_count_leaves_out_links_hidden_by_later_layers);
	tcase_add_test(td, test_link_count_drops_when_a_lower_link_is_deleted);
	tcase_add_test(td, test_opening_a_fifo_gives_enxio);
	tcase_add_test(td,
		       test_utimens_omitting_both_times_still_needs_the_path);
	tcase_add_test(td, test_folder_link_counts);
	tcase_add_test(td, test_absolute_symlinks_resolve_inside_the_view);
	suite_add_tcase(s, td);
	TCase *tr = tcase_create("regressions");
	tcase_add_checked_fixture(tr, setup, teardown);
	tcase_add_test(tr, test_a_middle_layer_keeps_hiding_what_lies_below);
	tcase_add_test(tr, test_commits_hold_no_whiteouts_that_hide_nothing);
	tcase_add_test(
		tr,
		test_layer_folders_mount_whatever_the_root_folders_are_called);
	tcase_add_test(tr, test_exchange_with_a_hard_link_of_its_own_child);
	tcase_add_test(
		tr, test_entries_made_over_a_whiteout_inherit_a_setgid_folder);
	suite_add_tcase(s, tr);
	return lt_main(s);
}
