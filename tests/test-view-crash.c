/* SPDX-License-Identifier: MIT */
/*
 * Crash safety of views: a process killed at any moment of a file
 * operation, a commit or a reset leaves a store that opens, checks clean,
 * and a view that reopens by its id showing exactly the state before the
 * interrupted operation or the state after it, nothing else.
 *
 * One scenario of about fifty lamina calls (writes into large lower files
 * that copy up only chunks, new files, truncation down and up, an append to
 * a hard link, unlinks, renames of lower files and folders, an exchange, a
 * rename over a folder of whiteouts, mkdir and mkfifo over whiteouts, links,
 * symlinks, metadata and xattr changes, three commits, a reset) runs once as
 * a reference, recording the merged tree after each call. Then it runs again
 * in a forked child once per kill point and is killed there with SIGKILL:
 *
 *  - at each of lamina's own crash points (lam__test_crash_at), and
 *  - before each system call that changes a file (traced with seccomp and
 *    ptrace), which covers every state a process death can leave: a
 *    death after a call is the same as a death before the next one.
 *
 * After each kill the store and the view are reopened and compared with
 * the reference: the calls the child finished (it notes each one in a
 * progress file) must all be there, the one it was in may be there or
 * not, and for a commit the view stacks either the old base with its
 * changes in the upper or the new layer with an empty upper. The store
 * must check clean and the view must go on (a change and a commit).
 *
 * The stores live in a tmpfs of the test's own mount namespace: hundreds of
 * copies cost no disk I/O, and the mount goes away with the test.
 *
 * Needs root (whiteouts, owners, trusted.* xattrs, mounts) and, for the
 * syscall kills, ptrace and seccomp; skips what it cannot do.
 * LAMINA_CRASH_STRIDE=n kills at every n-th syscall only;
 * LAMINA_CRASH_KEEP_GOING=1 reports every failing kill point, not just the
 * first.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "support.h"
#include "util/internal.h"

/* ---- the merged tree as text ------------------------------------------- */

typedef struct text {
	char *s;
	size_t len, cap;
} text;

static void addf(text *t, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void addf(text *t, const char *fmt, ...)
{
	va_list ap;
	for (;;) {
		va_start(ap, fmt);
		int n = vsnprintf(t->s + t->len, t->cap - t->len, fmt, ap);
		va_end(ap);
		if (n >= 0 && t->len + (size_t)n < t->cap) {
			t->len += (size_t)n;
			return;
		}
		t->cap = t->cap ? t->cap * 2 + (size_t)n : 4096 + (size_t)n;
		t->s = realloc(t->s, t->cap);
		if (t->s == NULL)
			abort();
	}
}

static uint64_t fnv(const void *p, size_t n)
{
	const unsigned char *b = p;
	uint64_t h = 1469598103934665603ull;
	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 1099511628211ull;
	return h;
}

/* One line per entry: path, mode, owner, size, link count (non-folders),
 * content hash or symlink target, xattrs. Times are left out: files
 * written "now" differ between runs. Returns 0, or the failing lamina
 * code (the text then says where). */
static int dump_entry(lam_view *v, text *t, const char *path)
{
	lam_stat st;
	int rc = lam_view_lstat(v, path, &st);
	if (rc != 0) {
		addf(t, "! lstat %s: %d %s\n", path, rc,
		     lam_error_last()->message);
		return rc;
	}
	addf(t, "%s|%o|%u:%u|%" PRIu64 "|%u", path[0] ? path : "/", st.mode,
	     st.uid, st.gid, S_ISDIR(st.mode) ? 0 : st.size,
	     S_ISDIR(st.mode) ? 0 : st.nlink);
	if (S_ISREG(st.mode)) {
		lam_view_file *f;
		rc = lam_view_file_open(&f, v, path, O_RDONLY | O_NOFOLLOW, 0);
		char *buf = malloc(st.size + 1);
		size_t got = 0;
		if (rc == 0)
			rc = lam_view_file_pread(f, buf, st.size + 1, 0, &got);
		lam_view_file_close(f);
		if (rc == 0)
			addf(t, "|%016" PRIx64 ":%zu", fnv(buf, got), got);
		free(buf);
	} else if (S_ISLNK(st.mode)) {
		char *target = NULL;
		rc = lam_view_readlink(&target, v, path);
		if (rc == 0)
			addf(t, "|->%s", target);
		lam_free(target);
	}
	char *names = NULL;
	size_t nl = 0;
	if (rc == 0)
		rc = lam_view_listxattr(&names, &nl, v, path, LAM_NOFOLLOW);
	for (size_t i = 0; rc == 0 && i < nl; i += strlen(names + i) + 1) {
		char val[256];
		size_t need = 0;
		rc = lam_view_getxattr(v, path, names + i, val, sizeof(val),
				       &need, LAM_NOFOLLOW);
		if (rc == 0)
			addf(t, "|%s=%.*s", names + i, (int)need, val);
	}
	lam_free(names);
	addf(t, "\n");
	if (rc != 0) {
		addf(t, "! reading %s: %d %s\n", path, rc,
		     lam_error_last()->message);
		return rc;
	}
	if (!S_ISDIR(st.mode))
		return 0;
	lam_view_dir_iter *it;
	rc = lam_view_dir_iter_new(&it, v, path);
	if (rc != 0) {
		addf(t, "! listing %s: %d\n", path, rc);
		return rc;
	}
	char(*kids)[256] = NULL;
	size_t n = 0;
	lam_dirent d;
	while (lam_view_dir_iter_next(it, &d) == 0) {
		kids = realloc(kids, (n + 1) * sizeof(*kids));
		snprintf(kids[n++], 256, "%s", d.name);
	}
	lam_view_dir_iter_free(it);
	for (size_t i = 0; rc == 0 && i < n; i++) {
		char p[4096];
		snprintf(p, sizeof(p), "%s%s%s", path, path[0] ? "/" : "",
			 kids[i]);
		rc = dump_entry(v, t, p);
	}
	free(kids);
	return rc;
}

static char *dump_view(lam_view *v)
{
	text t = {0};
	dump_entry(v, &t, "");
	return t.s;
}

/* The first line where two dumps differ, for messages (static). */
static const char *first_difference(const char *a, const char *b)
{
	static char out[1200];
	while (*a && *a == *b) {
		const char *ea = strchr(a, '\n'), *eb = strchr(b, '\n');
		if (!ea || !eb || ea - a != eb - b ||
		    memcmp(a, b, (size_t)(ea - a)))
			break;
		a = ea + 1;
		b = eb + 1;
	}
	int la = (int)strcspn(a, "\n"), lb = (int)strcspn(b, "\n");
	snprintf(out, sizeof(out), "'%.*s' vs expected '%.*s'",
		 la > 500 ? 500 : la, a, lb > 500 ? 500 : lb, b);
	return out;
}

/* ---- the scenario ------------------------------------------------------ */

static void put(const char *rel, const char *content, mode_t mode)
{
	lt_write(rel, content);
	ck_assert_int_eq(chmod(rel, mode), 0);
}

static void put_big(const char *rel, size_t len, unsigned int seed)
{
	char *b = malloc(len);
	for (size_t i = 0; i < len; i++)
		b[i] = (char)('a' + (i * 7 + seed + i / 4099) % 26);
	lt_write_bytes(rel, b, len);
	free(b);
}

/* Two layers over which the view works. */
static lam_layer *build_image(void)
{
	put(lt_path("l1/etc/hostname"), "base-host\n", 0644);
	put(lt_path("l1/etc/passwd"), "root:x:0:0\n", 0644);
	lt_link(lt_path("l1/etc/passwd"), lt_path("l1/etc/passwd.lnk"));
	put_big(lt_path("l1/big"), 300000, 1);
	put(lt_path("l1/dir/a"), "a", 0644);
	put(lt_path("l1/dir/b"), "bb", 0600);
	put(lt_path("l1/dir/sub/c"), "ccc", 0644);
	ck_assert_int_eq(
		lsetxattr(lt_path("l1/dir/sub/c"), "user.k", "v", 1, 0), 0);
	lt_symlink("etc/hostname", lt_path("l1/sym"));
	lt_mkdir(lt_path("l1/empty"));
	put(lt_path("l1/full/a"), "a", 0644);
	put(lt_path("l1/full/b"), "b", 0644);
	put(lt_path("l1/gone/x"), "x", 0644);
	lam_layer *l1 = lt_import(lt_path("l1"), NULL);
	lt_whiteout(lt_path("l2/gone"));
	lt_opaque(lt_path("l2/op"));
	put(lt_path("l2/op/inside"), "in", 0644);
	put_big(lt_path("l2/big2"), 140000, 2);
	lam_layer *l2 = lt_import(lt_path("l2"), l1);
	lam_layer_free(l1);
	return l2;
}

enum opkind {
	OP_PWRITE,
	OP_WRITE_NEW,
	OP_TRUNC_WRITE,
	OP_APPEND,
	OP_TRUNCATE,
	OP_MKDIR,
	OP_RMDIR,
	OP_UNLINK,
	OP_RENAME,
	OP_LINK,
	OP_SYMLINK,
	OP_CHMOD,
	OP_CHOWN,
	OP_SETXATTR,
	OP_REMOVEXATTR,
	OP_MKFIFO,
	OP_COMMIT,
	OP_RESET,
};

typedef struct op {
	enum opkind kind;
	const char *a, *b;
	uint64_t off, len;
	unsigned int flags;
} op;

static const op ops[] = {
	{OP_PWRITE, "big", NULL, 70000, 5000, 0},
	{OP_PWRITE, "big", NULL, 129000, 5000, 0}, /* two chunks */
	{OP_MKDIR, "new", NULL, 0, 0755, 0},
	{OP_WRITE_NEW, "new/file", NULL, 0, 3000, 0},
	{OP_TRUNC_WRITE, "etc/hostname", NULL, 0, 20, 0},
	{OP_APPEND, "etc/passwd", NULL, 0, 100, 0}, /* a hard link */
	{OP_UNLINK, "dir/a", NULL, 0, 0, 0},
	{OP_RENAME, "dir", "moved", 0, 0, 0}, /* a lower folder */
	{OP_RENAME, "etc/hostname", "etc/hn2", 0, 0, 0},
	{OP_RENAME, "sym", "etc/passwd.lnk", 0, 0, 0}, /* over a lower one */
	{OP_RENAME, "moved/b", "new/file", 0, 0, LAM_RENAME_EXCHANGE},
	{OP_MKDIR, "dir", NULL, 0, 0700, 0}, /* over a whiteout */
	{OP_SYMLINK, "dir/link", "../moved", 0, 0, 0},
	{OP_LINK, "etc/passwd", "new/pw", 0, 0, 0},
	{OP_CHMOD, "big2", NULL, 0, 0600, 0},
	{OP_CHOWN, "moved/sub/c", NULL, 1000, 100, 0},
	{OP_SETXATTR, "moved/sub", NULL, 0, 0, 0},
	{OP_TRUNCATE, "big", NULL, 0, 100000, 0},
	{OP_TRUNCATE, "big", NULL, 0, 400000, 0},
	{OP_RMDIR, "empty", NULL, 0, 0, 0},
	{OP_RENAME, "op", "op2", 0, 0, 0},
	{OP_REMOVEXATTR, "moved/sub/c", NULL, 0, 0, 0},
	{OP_MKFIFO, "etc/hostname", NULL, 0, 0600, 0}, /* over a whiteout */
	{OP_UNLINK, "full/a", NULL, 0, 0, 0},
	{OP_UNLINK, "full/b", NULL, 0, 0, 0},
	{OP_MKDIR, "nd", NULL, 0, 0755, 0},
	{OP_WRITE_NEW, "nd/x", NULL, 0, 10, 0},
	{OP_RENAME, "nd", "full", 0, 0, 0}, /* over a folder of whiteouts */
	{OP_COMMIT, NULL, NULL, 0, 0, 0},
	{OP_PWRITE, "big2", NULL, 1000, 70000, 0}, /* from the new base */
	{OP_RENAME, "new", "new2", 0, 0, 0},
	{OP_UNLINK, "moved/b", NULL, 0, 0, 0},
	{OP_RENAME, "etc", "moved/etc", 0, 0, LAM_RENAME_NOREPLACE},
	{OP_COMMIT, NULL, NULL, 0, 0, 0},
	{OP_WRITE_NEW, "scratch", NULL, 0, 500, 0},
	{OP_RESET, NULL, NULL, 0, 0, 0},
	{OP_PWRITE, "big2", NULL, 60000, 10000, 0},
	{OP_COMMIT, NULL, NULL, 0, 0, 0},
};

#define NOPS ((int)(sizeof(ops) / sizeof(ops[0])))

/* Each lamina call of the scenario is a step: the reference notes the
 * tree after it, the child notes in its progress file that it returned. A
 * killed child must show the state after its last finished step or after
 * the step it was in. */
typedef void (*step_fn)(lam_view *v, void *ud);

static step_fn step_hook;
static void *step_ud;

static int step(lam_view *v, int rc)
{
	if (rc == 0 && step_hook != NULL)
		step_hook(v, step_ud);
	return rc;
}

static int write_data(lam_view *v, const char *path, int flags, uint64_t off,
		      uint64_t len, bool positioned)
{
	lam_view_file *f;
	int rc = step(v, lam_view_file_open(&f, v, path, flags, 0644));
	if (rc != 0)
		return rc;
	char *buf = malloc(len);
	for (uint64_t i = 0; i < len; i++)
		buf[i] = (char)('A' + (i + off + len) % 23);
	size_t n;
	rc = positioned ? lam_view_file_pwrite(f, buf, len, off, &n) :
			  lam_view_file_write(f, buf, len, &n);
	free(buf);
	rc = step(v, rc);
	int rc2 = step(v, lam_view_file_close(f));
	return rc ? rc : rc2;
}

static int run_op1(lam_view *v, const op *o);

/* The scenario's operations; each but the writes is one step. */
static int run_op(lam_view *v, const op *o)
{
	switch (o->kind) {
	case OP_PWRITE:
	case OP_WRITE_NEW:
	case OP_TRUNC_WRITE:
	case OP_APPEND:
		return run_op1(v, o);
	default:
		return step(v, run_op1(v, o));
	}
}

static int run_op1(lam_view *v, const op *o)
{
	switch (o->kind) {
	case OP_PWRITE:
		return write_data(v, o->a, O_WRONLY, o->off, o->len, true);
	case OP_WRITE_NEW:
		return write_data(v, o->a, O_WRONLY | O_CREAT | O_EXCL, 0,
				  o->len, false);
	case OP_TRUNC_WRITE:
		return write_data(v, o->a, O_WRONLY | O_TRUNC, 0, o->len,
				  false);
	case OP_APPEND:
		return write_data(v, o->a, O_WRONLY | O_APPEND, 0, o->len,
				  false);
	case OP_TRUNCATE:
		return lam_view_truncate(v, o->a, o->len);
	case OP_MKDIR:
		return lam_view_mkdir(v, o->a, (uint32_t)o->len);
	case OP_RMDIR:
		return lam_view_rmdir(v, o->a);
	case OP_UNLINK:
		return lam_view_unlink(v, o->a);
	case OP_RENAME:
		return lam_view_rename(v, o->a, o->b, o->flags);
	case OP_LINK:
		return lam_view_link(v, o->a, o->b);
	case OP_SYMLINK:
		return lam_view_symlink(v, o->b, o->a);
	case OP_CHMOD:
		return lam_view_chmod(v, o->a, (uint32_t)o->len);
	case OP_CHOWN:
		return lam_view_chown(v, o->a, (uint32_t)o->off,
				      (uint32_t)o->len, 0);
	case OP_SETXATTR:
		return lam_view_setxattr(v, o->a, "user.crash", "yes", 3, 0);
	case OP_REMOVEXATTR:
		return lam_view_removexattr(v, o->a, "user.k", 0);
	case OP_MKFIFO:
		return lam_view_mkfifo(v, o->a, (uint32_t)o->len);
	case OP_COMMIT:
		return lam_view_commit(v, NULL, NULL);
	case OP_RESET:
		return lam_view_reset(v);
	}
	return LAM_EINVAL;
}

/* ---- the reference run ------------------------------------------------- */

#define MAXSTEPS 256

typedef struct reference {
	int nsteps;
	char *state[MAXSTEPS + 1]; /* the dump before step 0, after each */
	unsigned int depth[MAXSTEPS + 1]; /* the view's base depth then */
	bool commit[MAXSTEPS];		  /* is the step a commit? */
	char id[40];			  /* the view */
	char snap[4096];		  /* the store before step 0 */
} reference;

static unsigned int base_depth(lam_view *v)
{
	lam_layer *b = NULL;
	LT_OK(lam_view_base(&b, v));
	unsigned int d = b ? lam_layer_depth(b) : 0;
	lam_layer_free(b);
	return d;
}

/* Copying stores (cp -a, without a process per copy): types, data, modes,
 * owners, times, xattrs and hard links. */
typedef struct linkmap {
	dev_t dev[4096];
	ino_t ino[4096];
	char *path[4096];
	int n;
} linkmap;

static void copy_xattrs(const char *from, const char *to)
{
	char names[8192], val[65536];
	ssize_t nl = llistxattr(from, names, sizeof(names));
	for (ssize_t i = 0; i < nl; i += (ssize_t)strlen(names + i) + 1) {
		ssize_t vl = lgetxattr(from, names + i, val, sizeof(val));
		ck_assert_msg(vl >= 0 && lsetxattr(to, names + i, val,
						   (size_t)vl, 0) == 0,
			      "copying xattr %s of %s: %s", names + i, from,
			      strerror(errno));
	}
}

static void copy_entry(const char *from, const char *to, linkmap *lm)
{
	struct stat st;
	ck_assert_msg(lstat(from, &st) == 0, "lstat %s", from);
	if (!S_ISDIR(st.st_mode) && st.st_nlink > 1) {
		for (int i = 0; i < lm->n; i++)
			if (lm->dev[i] == st.st_dev &&
			    lm->ino[i] == st.st_ino) {
				ck_assert_int_eq(link(lm->path[i], to), 0);
				return;
			}
		ck_assert_int_lt(lm->n, 4096);
		lm->dev[lm->n] = st.st_dev;
		lm->ino[lm->n] = st.st_ino;
		lm->path[lm->n++] = strdup(to);
	}
	if (S_ISDIR(st.st_mode)) {
		ck_assert_int_eq(mkdir(to, 0700), 0);
		DIR *d = opendir(from);
		ck_assert_ptr_nonnull(d);
		struct dirent *de;
		while ((de = readdir(d)) != NULL) {
			if (!strcmp(de->d_name, ".") ||
			    !strcmp(de->d_name, ".."))
				continue;
			char a[4096], b[4096];
			snprintf(a, sizeof(a), "%s/%s", from, de->d_name);
			snprintf(b, sizeof(b), "%s/%s", to, de->d_name);
			copy_entry(a, b, lm);
		}
		closedir(d);
	} else if (S_ISREG(st.st_mode)) {
		int in = open(from, O_RDONLY | O_CLOEXEC);
		int out =
			open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		ck_assert_msg(in >= 0 && out >= 0, "copying %s", from);
		off_t left = st.st_size;
		while (left > 0) {
			ssize_t n = copy_file_range(in, NULL, out, NULL,
						    (size_t)left, 0);
			ck_assert_msg(n > 0, "copying %s: %s", from,
				      strerror(errno));
			left -= n;
		}
		close(in);
		close(out);
	} else if (S_ISLNK(st.st_mode)) {
		char t[PATH_MAX];
		ssize_t n = readlink(from, t, sizeof(t) - 1);
		ck_assert_int_ge(n, 0);
		t[n] = '\0';
		ck_assert_int_eq(symlink(t, to), 0);
	} else {
		ck_assert_int_eq(mknod(to, st.st_mode, st.st_rdev), 0);
	}
	copy_xattrs(from, to);
	ck_assert_int_eq(lchown(to, st.st_uid, st.st_gid), 0);
	if (!S_ISLNK(st.st_mode))
		ck_assert_int_eq(chmod(to, st.st_mode & 07777), 0);
	struct timespec ts[2] = {st.st_atim, st.st_mtim};
	ck_assert_int_eq(utimensat(AT_FDCWD, to, ts, AT_SYMLINK_NOFOLLOW), 0);
}

static int remove_one(const char *path, const struct stat *st, int flag,
		      struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	return flag == FTW_DP ? rmdir(path) : unlink(path);
}

static void copy_tree(const char *from, const char *to)
{
	if (nftw(to, remove_one, 64, FTW_DEPTH | FTW_PHYS) < 0)
		ck_assert_int_eq(errno, ENOENT);
	linkmap *lm = calloc(1, sizeof(*lm));
	copy_entry(from, to, lm);
	for (int i = 0; i < lm->n; i++)
		free(lm->path[i]);
	free(lm);
}

static void note_reference(lam_view *v, void *ud)
{
	reference *ref = ud;
	ck_assert_int_lt(ref->nsteps, MAXSTEPS);
	int k = ++ref->nsteps;
	ref->state[k] = dump_view(v);
	ref->depth[k] = base_depth(v);
	ck_assert_msg(ref->state[k][0] != '!' &&
			      strstr(ref->state[k], "\n!") == NULL,
		      "reference step %d: %s", k, ref->state[k]);
}

static void make_reference(reference *ref)
{
	lam_layer *top = build_image();
	lam_view *v;
	LT_OK(lam_view_create(&v, lt_store, top, NULL));
	snprintf(ref->id, sizeof(ref->id), "%s", lam_view_id(v));
	lam_view_free(v);
	lam_layer_free(top);
	lam_store_free(lt_store);
	lt_store = NULL;
	snprintf(ref->snap, sizeof(ref->snap), "%s", lt_path("snap"));
	copy_tree(lt_store_path, ref->snap);
	LT_OK(lam_store_open(&lt_store, lt_store_path, NULL));
	LT_OK(lam_view_open(&v, lt_store, ref->id, NULL));
	ref->state[0] = dump_view(v);
	ref->depth[0] = base_depth(v);
	step_hook = note_reference;
	step_ud = ref;
	for (int k = 0; k < NOPS; k++) {
		int first = ref->nsteps;
		int rc = run_op(v, &ops[k]);
		ck_assert_msg(rc == 0, "reference op %d: %d %s", k, rc,
			      lam_error_last()->message);
		if (ops[k].kind == OP_COMMIT)
			ref->commit[first] = true;
		/* Every operation but a commit changes what the view shows. */
		if (ops[k].kind != OP_COMMIT)
			ck_assert_msg(strcmp(ref->state[first],
					     ref->state[ref->nsteps]),
				      "op %d changes nothing", k);
	}
	step_hook = NULL;
	lam_view_free(v);
}

static void free_reference(reference *ref)
{
	for (int k = 0; k <= ref->nsteps; k++)
		free(ref->state[k]);
}

/* ---- the child and its killers ----------------------------------------- */

enum killmode {
	KILL_CRASH_POINT, /* lam__test_crash_at(n) */
	KILL_SYSCALL,	  /* SIGKILL before the n-th changing syscall */
};

static void __attribute__((noreturn)) child_fail(const char *what, int rc)
{
	fprintf(stderr, "child: %s: %d %s\n", what, rc,
		lam_error_last()->message);
	_exit(100);
}

/* System calls that change files; a death before one of them is a death
 * after the one before. openat() only counts with O_CREAT or O_TRUNC. */
static const long changing[] = {
	SYS_write,	  SYS_pwrite64,
	SYS_writev,	  SYS_pwritev,
	SYS_renameat,	  SYS_renameat2,
	SYS_unlinkat,	  SYS_mkdirat,
	SYS_linkat,	  SYS_symlinkat,
	SYS_mknodat,	  SYS_truncate,
	SYS_ftruncate,	  SYS_fallocate,
	SYS_fchmod,	  SYS_fchmodat,
	SYS_fchown,	  SYS_fchownat,
	SYS_utimensat,	  SYS_setxattr,
	SYS_lsetxattr,	  SYS_fsetxattr,
	SYS_removexattr,  SYS_lremovexattr,
	SYS_fremovexattr, SYS_copy_file_range,
#ifdef SYS_rename
	SYS_rename,	  SYS_unlink,
	SYS_mkdir,	  SYS_rmdir,
	SYS_link,	  SYS_symlink,
	SYS_mknod,	  SYS_chmod,
	SYS_chown,	  SYS_lchown,
	SYS_creat,	  SYS_utimes,
#endif
#ifdef SYS_pwritev2
	SYS_pwritev2,
#endif
};

#if defined(__x86_64__)
#define AUDIT_ARCH_HERE AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define AUDIT_ARCH_HERE AUDIT_ARCH_AARCH64
#endif

#ifdef AUDIT_ARCH_HERE
#define HAVE_SYSCALL_KILLS 1
static int install_filter(void)
{
	struct sock_filter f[128];
	int n = 0;
	size_t nc = sizeof(changing) / sizeof(changing[0]);
	/* [0] arch, [1] is it ours, [2] syscall number. */
	f[n++] = (struct sock_filter)BPF_STMT(
		BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch));
	f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K,
					      AUDIT_ARCH_HERE, 1, 0);
	f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K,
					      SECCOMP_RET_ALLOW);
	f[n++] = (struct sock_filter)BPF_STMT(
		BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
	/* Each listed call jumps to the last statement, "trace". After the
	 * list: openat, traced only with O_CREAT or O_TRUNC in args[2]. */
	int trace_at = n + (int)nc + 5;
	for (size_t i = 0; i < nc; i++, n++)
		f[n] = (struct sock_filter)BPF_JUMP(
			BPF_JMP | BPF_JEQ | BPF_K, (unsigned int)changing[i],
			(unsigned char)(trace_at - n - 1), 0);
	f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K,
					      SYS_openat, 1, 0);
	f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K,
					      SECCOMP_RET_ALLOW);
	f[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
					      offsetof(struct seccomp_data,
						       args[2]));
	f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K,
					      O_CREAT | O_TRUNC, 1, 0);
	f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K,
					      SECCOMP_RET_ALLOW);
	if (n != trace_at) {
		errno = EINVAL;
		return -1;
	}
	f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K,
					      SECCOMP_RET_TRACE);
	struct sock_fprog prog = {(unsigned short)n, f};
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return -1;
	return (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog);
}
#else
#define HAVE_SYSCALL_KILLS 0
static int install_filter(void)
{
	errno = ENOSYS;
	return -1;
}
#endif

static int progress_fd = -1;
static const char *create_base; /* the child's job: see child() */

static void note_progress(lam_view *v, void *ud)
{
	(void)v;
	(void)ud;
	if (write(progress_fd, "+", 1) != 1)
		child_fail("progress", -errno);
}

/* Run the scenario from the snapshot in store_dir; note each finished op
 * in the progress file. With mode KILL_CRASH_POINT the n-th crash point
 * kills it; with KILL_SYSCALL the parent traces it. */
static void __attribute__((noreturn))
child(const char *store_dir, const char *id, const char *progress,
      enum killmode mode, uint64_t n)
{
	lam_store *s;
	int rc = lam_store_open(&s, store_dir, NULL);
	if (rc != 0)
		child_fail("opening the store", rc);
	/* The job: the scenario on the view id, or with create_base set,
	 * creating a view over that layer. */
	lam_view *v = NULL;
	lam_layer *base = NULL;
	if (create_base != NULL)
		rc = lam_layer_open(&base, s, create_base);
	else
		rc = lam_view_open(&v, s, id, NULL);
	if (rc != 0)
		child_fail("opening the view or its base", rc);
	int pfd =
		open(progress, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (pfd < 0)
		child_fail("progress file", -errno);
	if (mode == KILL_SYSCALL) {
		if (ptrace(PTRACE_TRACEME, 0, 0, 0) < 0)
			child_fail("ptrace", -errno);
		raise(SIGSTOP);
		if (install_filter() < 0)
			child_fail("seccomp", -errno);
	} else {
		lam__test_crash_at(n);
	}
	progress_fd = pfd;
	step_hook = note_progress;
	if (create_base != NULL) {
		rc = step(NULL, lam_view_create(&v, s, base, NULL));
		if (rc != 0)
			child_fail("creating a view", rc);
	}
	for (int k = 0; create_base == NULL && k < NOPS; k++) {
		rc = run_op(v, &ops[k]);
		if (rc != 0)
			child_fail("an operation", rc);
	}
	if (mode == KILL_CRASH_POINT) {
		/* The count of crash points goes to PROGRESS.points. */
		char name[4200];
		snprintf(name, sizeof(name), "%s.points", progress);
		FILE *f = fopen(name, "w");
		if (f == NULL ||
		    fprintf(f, "%" PRIu64 "\n",
			    lam__test_crash_points_passed()) < 0 ||
		    fclose(f) != 0)
			child_fail("writing the crash point count", -errno);
	}
	_exit(0);
}

/* How a killed run ended. */
typedef struct outcome {
	bool killed;
	long syscall;	 /* the call it died before, or -1 */
	uint64_t points; /* crash points (or calls) passed in a full run */
} outcome;

static outcome run_child(const char *store_dir, const char *id,
			 const char *progress, enum killmode mode, uint64_t n)
{
	outcome out = {false, -1, 0};
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0)
		child(store_dir, id, progress, mode, n);
	int status;
	if (mode == KILL_CRASH_POINT) {
		ck_assert_int_eq(waitpid(pid, &status, 0), pid);
		out.killed = WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
		ck_assert_msg(out.killed || (WIFEXITED(status) &&
					     WEXITSTATUS(status) == 0),
			      "child failed (status %#x)", status);
		return out;
	}
	/* Traced: stopped by its own SIGSTOP first. */
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFSTOPPED(status), "child did not stop (%#x)", status);
	ck_assert_int_eq(ptrace(PTRACE_SETOPTIONS, pid, 0,
				PTRACE_O_TRACESECCOMP | PTRACE_O_EXITKILL),
			 0);
	ck_assert_int_eq(ptrace(PTRACE_CONT, pid, 0, 0), 0);
	uint64_t count = 0;
	for (;;) {
		ck_assert_int_eq(waitpid(pid, &status, 0), pid);
		if (WIFEXITED(status) || WIFSIGNALED(status))
			break;
		int sig = 0;
		if (status >> 8 == (SIGTRAP | (PTRACE_EVENT_SECCOMP << 8))) {
			if (++count == n) {
#if defined(__x86_64__)
				struct user_regs_struct regs;
				if (ptrace(PTRACE_GETREGS, pid, 0, &regs) == 0)
					out.syscall = (long)regs.orig_rax;
#endif
				kill(pid, SIGKILL);
				ck_assert_int_eq(waitpid(pid, &status, 0), pid);
				out.killed = true;
				return out;
			}
		} else if (WIFSTOPPED(status) && WSTOPSIG(status) != SIGTRAP) {
			sig = WSTOPSIG(status);
		}
		ck_assert_int_eq(ptrace(PTRACE_CONT, pid, 0, sig), 0);
	}
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "traced child failed (status %#x)", status);
	out.points = count;
	return out;
}

static int count_problem(const char *what, const char *problem, void *ud)
{
	fprintf(stderr, "store check: %s: %s\n", what, problem);
	(*(size_t *)ud)++;
	return 0;
}

static bool diff_empty_cb_seen;

static int any_change(lam_change_kind kind, const char *path, void *ud)
{
	(void)kind;
	(void)path;
	(void)ud;
	diff_empty_cb_seen = true;
	return 0;
}

/* Check the store and view a killed run left: NULL when they are right,
 * else what is wrong (malloc'd). */
#define VFAIL(...)                                   \
	do {                                         \
		if (asprintf(&why, __VA_ARGS__) < 0) \
			why = NULL;                  \
		goto out;                            \
	} while (0)

static char *verify(const reference *ref, const char *store_dir,
		    const char *progress)
{
	char *why = NULL, *now = NULL;
	lam_store *s = NULL;
	lam_view *v = NULL;
	size_t done = 0;
	free(lt_read(progress, &done));
	int k = (int)done; /* steps finished; step k was running */
	int n = ref->nsteps;
	if (done > (size_t)n)
		VFAIL("progress %zu", done);
	int rc = lam_store_open(&s, store_dir, NULL);
	if (rc != 0)
		VFAIL("the store does not open: %d %s", rc,
		      lam_error_last()->message);
	size_t problems = 0;
	rc = lam_store_check(s, 0, count_problem, &problems, NULL);
	if (rc != 0 || problems != 0)
		VFAIL("the store check finds %zu problems (%d)", problems, rc);
	rc = lam_view_open(&v, s, ref->id, NULL);
	if (rc != 0)
		VFAIL("step %d was running: the view does not open: %d %s", k,
		      rc, lam_error_last()->message);
	now = dump_view(v);
	bool old = strcmp(now, ref->state[k]) == 0;
	bool new = k < n &&strcmp(now, ref->state[k + 1]) == 0;
	if (!old && !new) {
		char before[1300];
		snprintf(before, sizeof(before), "%s",
			 first_difference(now, ref->state[k]));
		VFAIL("step %d was running; the view shows neither the state "
		      "before it (%s) nor after it (%s)",
		      k, before,
		      k < n ? first_difference(now, ref->state[k + 1]) : "-");
	}
	/* The base: a commit leaves either the old base with the changes
	 * in the upper, or the new layer with an empty upper. */
	unsigned int depth = base_depth(v);
	diff_empty_cb_seen = false;
	rc = lam_view_diff(v, any_change, NULL);
	if (rc != 0)
		VFAIL("step %d was running: diff fails: %d %s", k, rc,
		      lam_error_last()->message);
	bool empty = !diff_empty_cb_seen;
	if (k < n && ref->commit[k]) {
		if (!((depth == ref->depth[k] && !empty) ||
		      (depth == ref->depth[k] + 1 && empty)))
			VFAIL("commit (step %d) left base depth %u (was %u) with "
			      "%s upper",
			      k, depth, ref->depth[k],
			      empty ? "an empty" : "a non-empty");
	} else if (depth != ref->depth[k]) {
		VFAIL("step %d was running: base depth %u, expected %u", k,
		      depth, ref->depth[k]);
	}
	/* The view goes on working: a change and a commit. */
	lam_view_file *f;
	rc = lam_view_file_open(&f, v, "after-crash",
				O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (rc == 0)
		rc = lam_view_file_close(f);
	if (rc == 0)
		rc = lam_view_commit(v, NULL, NULL);
	if (rc != 0)
		VFAIL("step %d was running: the view does not go on: %d %s", k,
		      rc, lam_error_last()->message);
out:
	free(now);
	lam_view_free(v);
	lam_store_free(s);
	return why;
}

static double now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void kill_everywhere(enum killmode mode)
{
	reference *ref = calloc(1, sizeof(*ref));
	make_reference(ref);
	char sdir[4096], prog[4096];
	snprintf(sdir, sizeof(sdir), "%s", lt_path("run"));
	snprintf(prog, sizeof(prog), "%s", lt_path("progress"));
	/* A run without a kill counts the kill points. */
	copy_tree(ref->snap, sdir);
	unlink(prog);
	uint64_t total;
	if (mode == KILL_SYSCALL) {
		outcome o = run_child(sdir, ref->id, prog, mode, 0);
		total = o.points;
	} else {
		run_child(sdir, ref->id, prog, mode, 0);
		char name[4200];
		snprintf(name, sizeof(name), "%s.points", prog);
		char *p = lt_read(name, NULL);
		ck_assert_ptr_nonnull(p);
		total = strtoull(p, NULL, 10);
		free(p);
	}
	char *why = verify(ref, sdir, prog);
	ck_assert_msg(why == NULL, "a run without a kill: %s", why);
	/* LAMINA_CRASH_KEEP_GOING=1 reports every failing kill point, not
	 * just the first. */
	bool keep_going = getenv("LAMINA_CRASH_KEEP_GOING") != NULL;
	int failures = 0;
	ck_assert_uint_gt(total, 10);
	uint64_t stride = 1;
	const char *env = getenv("LAMINA_CRASH_STRIDE");
	if (env != NULL && atoi(env) > 1)
		stride = (uint64_t)atoi(env);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	uint64_t runs = 0;
	double tc = 0, tr = 0, tv = 0;
	for (uint64_t n = 1; n <= total; n += stride, runs++) {
		double a = now_s();
		copy_tree(ref->snap, sdir);
		unlink(prog);
		double b = now_s();
		outcome o = run_child(sdir, ref->id, prog, mode, n);
		double c = now_s();
		tc += b - a;
		tr += c - b;
		ck_assert_msg(o.killed, "kill point %" PRIu64 " not reached",
			      n);
		char when[200];
		snprintf(when, sizeof(when),
			 "killed at %s %" PRIu64 " of %" PRIu64
			 " (syscall %ld)",
			 mode == KILL_SYSCALL ? "changing syscall" :
						"crash point",
			 n, total, o.syscall);
		double d = now_s();
		why = verify(ref, sdir, prog);
		tv += now_s() - d;
		if (why != NULL && keep_going) {
			fprintf(stderr, "%s: %s\n", when, why);
			failures++;
		} else {
			ck_assert_msg(why == NULL, "%s: %s", when, why);
		}
		free(why);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	fprintf(stderr,
		"view-crash: %" PRIu64 " kills at %s, %.1f s (copying %.1f s, "
		"runs %.1f s, checks %.1f s)\n",
		runs, mode == KILL_SYSCALL ? "syscalls" : "crash points",
		(double)(t1.tv_sec - t0.tv_sec) +
			(double)(t1.tv_nsec - t0.tv_nsec) / 1e9,
		tc, tr, tv);
	ck_assert_msg(failures == 0, "%d kill points failed", failures);
	free_reference(ref);
	free(ref);
}

static bool syscall_kills; /* ptrace and seccomp work here */

static int count_view(const char *id, const char *base_id, void *ud)
{
	(void)id;
	(void)base_id;
	(*(int *)ud)++;
	return 0;
}

/* After a kill during lam_view_create: the store checks clean, and after
 * a gc the views folder holds exactly the views lam_view_foreach lists,
 * which is the new view (showing its base) or nothing. */
static char *verify_create(const char *store_dir, const char *progress,
			   const char *expected)
{
	char *why = NULL, *now = NULL;
	lam_store *s = NULL;
	lam_view *v = NULL;
	size_t done = 0;
	free(lt_read(progress, &done));
	int rc = lam_store_open(&s, store_dir, NULL);
	if (rc != 0)
		VFAIL("the store does not open: %d %s", rc,
		      lam_error_last()->message);
	size_t problems = 0;
	rc = lam_store_check(s, 0, count_problem, &problems, NULL);
	if (rc != 0 || problems != 0)
		VFAIL("the store check finds %zu problems (%d)", problems, rc);
	rc = lam_store_gc(s, NULL);
	if (rc != 0)
		VFAIL("gc: %d %s", rc, lam_error_last()->message);
	int listed = 0;
	rc = lam_view_foreach(s, count_view, &listed);
	char vdir[4200];
	snprintf(vdir, sizeof(vdir), "%s/views", store_dir);
	int present = 0;
	DIR *d = opendir(vdir);
	struct dirent *de;
	while (d != NULL && (de = readdir(d)) != NULL)
		present += strcmp(de->d_name, ".") && strcmp(de->d_name, "..");
	if (d != NULL)
		closedir(d);
	if (rc != 0 || listed > 1 || present != listed)
		VFAIL("%d views listed, %d entries in views/ (%d)", listed,
		      present, rc);
	if (done > 0 && listed != 1)
		VFAIL("lam_view_create returned, but no view is listed");
	if (listed == 1) {
		char id[256] = "";
		d = opendir(vdir);
		while (d != NULL && (de = readdir(d)) != NULL)
			if (de->d_name[0] != '.')
				snprintf(id, sizeof(id), "%s", de->d_name);
		if (d != NULL)
			closedir(d);
		rc = lam_view_open(&v, s, id, NULL);
		if (rc != 0)
			VFAIL("the view does not open: %d %s", rc,
			      lam_error_last()->message);
		now = dump_view(v);
		if (strcmp(now, expected) != 0)
			VFAIL("the new view shows %s",
			      first_difference(now, expected));
	}
out:
	free(now);
	lam_view_free(v);
	lam_store_free(s);
	return why;
}

START_TEST(test_kill_during_view_create_leaves_a_view_or_nothing)
{
	lam_layer *top = build_image();
	char base_id[LAM_DIGEST_HEX_LEN + 1];
	snprintf(base_id, sizeof(base_id), "%s", lam_layer_id(top));
	lam_view_options ro = LAM_VIEW_OPTIONS_INIT;
	ro.flags = LAM_VIEW_READONLY;
	lam_view *v;
	LT_OK(lam_view_create(&v, lt_store, top, &ro));
	char *expected = dump_view(v);
	lam_view_free(v);
	lam_layer_free(top);
	char snap[4096], sdir[4096], prog[4096], name[4200];
	snprintf(snap, sizeof(snap), "%s", lt_path("snap"));
	snprintf(sdir, sizeof(sdir), "%s", lt_path("run"));
	snprintf(prog, sizeof(prog), "%s", lt_path("progress"));
	snprintf(name, sizeof(name), "%s.points", prog);
	lam_store_free(lt_store);
	lt_store = NULL;
	copy_tree(lt_store_path, snap);
	create_base = base_id;
	int kills = 0;
	for (int m = 0; m < 2; m++) {
		enum killmode mode = m ? KILL_SYSCALL : KILL_CRASH_POINT;
		if (mode == KILL_SYSCALL && !syscall_kills)
			continue;
		copy_tree(snap, sdir);
		unlink(prog);
		outcome o = run_child(sdir, NULL, prog, mode, 0);
		uint64_t total = o.points;
		if (mode == KILL_CRASH_POINT) {
			char *p = lt_read(name, NULL);
			ck_assert_ptr_nonnull(p);
			total = strtoull(p, NULL, 10);
			free(p);
		}
		char *why = verify_create(sdir, prog, expected);
		ck_assert_msg(why == NULL, "a run without a kill: %s", why);
		ck_assert_uint_gt(total, 0);
		for (uint64_t n = 1; n <= total; n++, kills++) {
			copy_tree(snap, sdir);
			unlink(prog);
			o = run_child(sdir, NULL, prog, mode, n);
			ck_assert(o.killed);
			why = verify_create(sdir, prog, expected);
			ck_assert_msg(why == NULL,
				      "killed at %s %" PRIu64 " of %" PRIu64
				      " (syscall %ld): %s",
				      m ? "changing syscall" : "crash point", n,
				      total, o.syscall, why);
		}
	}
	create_base = NULL;
	fprintf(stderr, "view-crash: %d kills during lam_view_create\n", kills);
	free(expected);
}
END_TEST

START_TEST(test_kill_at_each_crash_point_leaves_old_or_new_state)
{
	kill_everywhere(KILL_CRASH_POINT);
}
END_TEST

START_TEST(test_kill_before_each_changing_syscall_leaves_old_or_new_state)
{
	kill_everywhere(KILL_SYSCALL);
}
END_TEST

/* Each test works in a tmpfs of its own, in a mount namespace of its own:
 * hundreds of store copies cost no disk I/O, and whatever happens the
 * mount goes away with the test's process. */
static char scratch[4096];

static void setup(void)
{
	ck_assert_msg(unshare(CLONE_NEWNS) == 0 &&
			      mount(NULL, "/", NULL, MS_REC | MS_PRIVATE,
				    NULL) == 0,
		      "private mount namespace: %s", strerror(errno));
	const char *base = getenv("TMPDIR");
	snprintf(scratch, sizeof(scratch), "%s/lamina-crash-XXXXXX",
		 base && base[0] ? base : "/tmp");
	ck_assert_ptr_nonnull(mkdtemp(scratch));
	ck_assert_msg(mount("tmpfs", scratch, "tmpfs", 0, "mode=0700") == 0,
		      "tmpfs: %s", strerror(errno));
	setenv("TMPDIR", scratch, 1);
	lt_setup();
}

static void teardown(void)
{
	lt_teardown();
	umount2(scratch, MNT_DETACH);
	rmdir(scratch);
}

/* Can a child be traced with a seccomp filter here (containers may forbid
 * ptrace or seccomp)? And can this process make mount namespaces? */
static bool probe(bool tracing)
{
	pid_t pid = fork();
	if (pid < 0)
		return false;
	if (pid == 0) {
		if (!tracing)
			_exit(unshare(CLONE_NEWNS) == 0 ? 0 : 1);
		if (ptrace(PTRACE_TRACEME, 0, 0, 0) < 0)
			_exit(1);
		raise(SIGSTOP);
		_exit(install_filter() == 0 ? 0 : 1);
	}
	int status;
	if (waitpid(pid, &status, 0) != pid)
		return false;
	if (tracing) {
		if (!WIFSTOPPED(status) ||
		    ptrace(PTRACE_SETOPTIONS, pid, 0,
			   PTRACE_O_TRACESECCOMP | PTRACE_O_EXITKILL) < 0 ||
		    ptrace(PTRACE_CONT, pid, 0, 0) < 0) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			return false;
		}
		while (waitpid(pid, &status, 0) == pid && WIFSTOPPED(status))
			ptrace(PTRACE_CONT, pid, 0, 0);
	}
	return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

int main(void)
{
	if (!lt_is_root() || !probe(false)) {
		fprintf(stderr, "view-crash: needs root and mount namespaces, "
				"skipped\n");
		return 77;
	}
	Suite *s = suite_create("view-crash");
	TCase *tc = tcase_create("kill");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 280);
	tcase_add_test(tc,
		       test_kill_at_each_crash_point_leaves_old_or_new_state);
	syscall_kills = HAVE_SYSCALL_KILLS && probe(true);
	tcase_add_test(tc,
		       test_kill_during_view_create_leaves_a_view_or_nothing);
	if (syscall_kills)
		tcase_add_test(
			tc,
			test_kill_before_each_changing_syscall_leaves_old_or_new_state);
	else
		fprintf(stderr, "view-crash: no ptrace or seccomp here: the "
				"kills before each syscall are skipped\n");
	suite_add_tcase(s, tc);
	return lt_main(s);
}
