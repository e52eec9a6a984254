/* SPDX-License-Identifier: MIT */
/*
 * Crash safety: a process killed at any moment leaves the store openable,
 * with every previously committed layer intact and no half layer visible.
 *
 * One scenario (imports of a base tree, a diff tree with whiteouts and an
 * opaque folder, a duplicate import, a branch deleted with cascade, gc of
 * unreferenced layers, ref updates with compare-and-swap) runs once to count
 * its crash points (lam__crash_point) and to save the store as it is before
 * each step. Then, for every crash point, the step it lies in runs again in
 * a forked child, on a copy of the store saved before that step, and
 * lam__test_crash_at() kills the child there with SIGKILL. After each kill
 * the test opens the store and checks that it is one of the states the
 * interrupted step may leave: the one before it or the one after it (or,
 * for a delete or gc, one on the way, with children gone before parents).
 *
 * The scenario ends with tar-stream imports (lam_layer_import_tar): a base
 * with a file streamed into its object, a diff with OCI whiteouts and an
 * opaque marker, both written by the import's worker threads, and a small
 * diff imported in the calling thread alone. The workers pass crash points
 * too, so which files and objects exist at the n-th point varies between
 * runs; the states allowed after a kill do not. Those steps are killed at
 * a sample of their points (see tar_point_sampled).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "support.h"
#include "util/internal.h"

/* The layers the scenario builds, each from one source tree. */
enum slot {
	L_A,  /* a base root filesystem, with a 5 MiB file */
	L_B,  /* a diff on A: changes, whiteouts, an opaque folder */
	L_C1, /* a branch on A ... */
	L_C2, /* ... and its child: deleted with cascade */
	L_D1, /* an unreferenced base ... */
	L_D2, /* ... and its child: removed by gc */
	L_E,  /* a diff on B: the new target of ref "top" */
	L_T,  /* a base from a tar stream: 180 files, one of 4 MiB */
	L_U,  /* a diff on T from a tar stream: .wh. whiteouts, opaque */
	L_V,  /* a diff on E from a tar stream, imported in one thread */
	L_F,  /* imported only after a crash, to show the store still works */
	NSLOTS,
};

static const char *const slot_name[NSLOTS] = {"A", "B", "C1", "C2", "D1", "D2",
					      "E", "T", "U",  "V",  "F"};
static const int slot_parent[NSLOTS] = {-1,  L_A, L_A, L_C1, -1, L_D1,
					L_B, -1,  L_T, L_E,  -1};

/* How a slot's layer is imported: lam_layer_import_dir() from its source
 * folder, or lam_layer_import_tar() from the tar GNU tar made of it (with
 * the worker threads, or in the calling thread only). */
enum how {
	BY_DIR,
	BY_TAR,
	BY_TAR_ONE_THREAD,
};
static const enum how slot_how[NSLOTS] = {
	[L_T] = BY_TAR, [L_U] = BY_TAR, [L_V] = BY_TAR_ONE_THREAD};

enum ref_slot {
	R_BASE,
	R_TOP,
	NREFS
};
static const char *const ref_name[NREFS] = {"base", "top"};

enum kind {
	K_IMPORT_BASE,
	K_IMPORT_DIFF,
	K_IMPORT_DUP,
	K_REF,
	K_REF_STALE,
	K_DELETE,
	K_GC,
	K_IMPORT_TAR,
};

typedef struct step {
	enum kind kind;
	int layer; /* imported or deleted; -1 */
	int ref;   /* the ref it sets; -1 */
	int to;	   /* the layer the ref is set to */
	int from;  /* the value expected: a layer, or -1 for "must not exist" */
} step;

static const step steps[] = {
	{K_IMPORT_BASE, L_A, -1, -1, -1},
	{K_REF, -1, R_BASE, L_A, -1},
	{K_IMPORT_DIFF, L_B, -1, -1, -1},
	{K_REF, -1, R_TOP, L_B, -1},
	{K_IMPORT_DUP, L_A, -1, -1, -1},
	{K_IMPORT_DIFF, L_C1, -1, -1, -1},
	{K_IMPORT_DIFF, L_C2, -1, -1, -1},
	{K_DELETE, L_C1, -1, -1, -1},
	{K_IMPORT_BASE, L_D1, -1, -1, -1},
	{K_IMPORT_DIFF, L_D2, -1, -1, -1},
	{K_GC, -1, -1, -1, -1},
	{K_IMPORT_DIFF, L_E, -1, -1, -1},
	{K_REF_STALE, -1, R_TOP, L_E, L_A},
	{K_REF, -1, R_TOP, L_E, L_B},
	/* Last: T's files then weigh on no other step's store copies, and
	 * the counting runs of the other kinds stop before them. */
	{K_IMPORT_TAR, L_T, -1, -1, -1},
	{K_IMPORT_TAR, L_U, -1, -1, -1},
	{K_IMPORT_TAR, L_V, -1, -1, -1},
};

#define NSTEPS ((int)LAM__ARRAY_LEN(steps))

/* What the counting run sends back: the crash points passed at the end of
 * each step, and the id of every layer. */
typedef struct plan {
	uint64_t bounds[NSTEPS];
	char ids[NSLOTS][LAM_DIGEST_HEX_LEN + 1];
} plan;

static bool kind_matches(enum kind want, enum kind have)
{
	if (want == K_REF)
		return have == K_REF || have == K_REF_STALE;
	return want == have;
}

/* The store as the scenario leaves it after some steps. */
typedef struct state {
	bool present[NSLOTS];
	int ref[NREFS]; /* a slot, or -1 */
} state;

/* Paths of the sources (src/<slot>) and of the trees a checkout of each
 * layer must reproduce (the merged chain: exp/<slot>). */
static const char *src_dir(int slot)
{
	return lt_path("src/%s", slot_name[slot]);
}

static const char *exp_dir(int slot)
{
	return slot_parent[slot] < 0 ? src_dir(slot) :
				       lt_path("exp/%s", slot_name[slot]);
}

/* ---- building the source trees ---------------------------------------- */

static void put(const char *rel, const char *content, mode_t mode)
{
	lt_write(rel, content);
	ck_assert_int_eq(chmod(rel, mode), 0);
}

static void put_xattr(const char *path, const char *name, const char *value)
{
	ck_assert_msg(lsetxattr(path, name, value, strlen(value), 0) == 0,
		      "setxattr %s %s: %s", path, name, strerror(errno));
}

static void put_big(const char *path, size_t size, uint64_t seed)
{
	unsigned char *buf = malloc(size);
	ck_assert_ptr_nonnull(buf);
	uint64_t x = seed | 1;
	for (size_t i = 0; i < size; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		buf[i] = (unsigned char)x;
	}
	lt_write_bytes(path, buf, size);
	free(buf);
}

static void put_fifo(const char *path)
{
	ck_assert_msg(mkfifo(path, 0640) == 0, "mkfifo %s: %s", path,
		      strerror(errno));
}

static void put_chr(const char *path, unsigned int maj, unsigned int min)
{
	ck_assert_msg(mknod(path, S_IFCHR | 0666, makedev(maj, min)) == 0,
		      "mknod %s: %s", path, strerror(errno));
}

static void sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void sh(const char *fmt, ...)
{
	char cmd[8192];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	ck_assert_msg(lt_run(cmd) == 0, "command failed: %s", cmd);
}

/* A path below a folder; the result is one of 8 rotating buffers. */
static const char *in(const char *dir, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static const char *in(const char *dir, const char *fmt, ...)
{
	static char bufs[8][4096];
	static unsigned int next;
	char *b = bufs[next++ & 7];
	int n = snprintf(b, 4096, "%s/", dir);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(b + n, 4096 - (size_t)n, fmt, ap);
	va_end(ap);
	return b;
}

/* The base tree: 28 regular files (one of 5 MiB, one empty, two with the
 * same content), a hard-link group of three, symlinks (relative,
 * to a folder, dangling), a fifo, a character device, user.* xattrs, a
 * setuid file, a non-root owner, nested and empty folders. */
static void build_a(const char *d)
{
	char c[64];
	put(in(d, "etc/hostname"), "lamina-test\n", 0644);
	put(in(d, "etc/hosts"), "127.0.0.1 localhost\n", 0644);
	put(in(d, "etc/hosts.bak"), "127.0.0.1 localhost\n", 0644);
	put(in(d, "etc/passwd"), "root:x:0:0::/root:/bin/sh\n", 0644);
	put(in(d, "etc/shadow"), "root:*:19000::::::\n", 0600);
	put(in(d, "etc/empty"), "", 0644);
	put(in(d, "etc/motd"), "welcome\n", 0644);
	put_xattr(in(d, "etc/motd"), "user.comment", "hello");
	put_xattr(in(d, "etc/motd"), "user.origin", "lamina crash test");
	for (int i = 0; i < 4; i++) {
		snprintf(c, sizeof(c), "setting%d = %d\n", i, i * 7);
		put(in(d, "etc/conf.d/c%02d.conf", i), c, 0644);
	}
	put(in(d, "usr/bin/tool"), "#!/bin/sh\necho tool\n", 0755);
	lt_link(in(d, "usr/bin/tool"), in(d, "usr/bin/tool-alias"));
	lt_link(in(d, "usr/bin/tool"), in(d, "sbin/tool"));
	put(in(d, "usr/bin/su"), "#!/bin/sh\necho su\n", 04755);
	for (int i = 0; i < 3; i++) {
		snprintf(c, sizeof(c), "#!/bin/sh\necho bin %d\n", i);
		put(in(d, "usr/bin/b%02d", i), c, 0755);
	}
	put(in(d, "usr/lib/libfoo.so.1"), "ELF foo 1\n", 0644);
	lt_symlink("libfoo.so.1", in(d, "usr/lib/libfoo.so"));
	put(in(d, "usr/lib/libold.so"), "ELF old\n", 0644);
	put_xattr(in(d, "usr/lib/libold.so"), "user.note", "whited out");
	for (int i = 0; i < 2; i++) {
		snprintf(c, sizeof(c), "ELF lib %d\n", i);
		put(in(d, "usr/lib/l%02d.so", i), c, 0644);
	}
	lt_symlink("usr/lib", in(d, "lib"));
	lt_symlink("/nonexistent/target", in(d, "broken"));
	put(in(d, "usr/share/doc/readme"), "read me\n", 0644);
	put(in(d, "usr/share/doc/license"), "MIT\n", 0644);
	put(in(d, "usr/share/doc/deep/a/b/c/notes"), "deep notes\n", 0644);
	put_big(in(d, "usr/share/big.bin"), 5u << 20, 0x1234567);
	put(in(d, "var/cache/app/x1"), "cache 1\n", 0644);
	put(in(d, "var/cache/app/x2"), "cache 2\n", 0644);
	lt_mkdir(in(d, "var/run"));
	put_fifo(in(d, "var/run/ctl.fifo"));
	lt_mkdir(in(d, "dev"));
	put_chr(in(d, "dev/null"), 1, 3);
	put(in(d, "home/user/.profile"), "export PS1='$ '\n", 0600);
	ck_assert_int_eq(lchown(in(d, "home/user/.profile"), 1000, 1000), 0);
	ck_assert_int_eq(lchown(in(d, "home/user"), 1000, 1000), 0);
	put(in(d, "deep/1/2/3/4/5/leaf"), "leaf\n", 0644);
	lt_mkdir(in(d, "empty-dir"));
}

/* A diff on A: a changed file, new files, a whited-out file and folder,
 * and an opaque folder that replaces A's usr/share/doc. */
static void build_b(const char *d)
{
	put(in(d, "etc/hosts"), "127.0.0.1 localhost\n::1 localhost\n", 0644);
	put(in(d, "etc/new.conf"), "new = yes\n", 0644);
	put_xattr(in(d, "etc/new.conf"), "user.comment", "added by B");
	put(in(d, "usr/bin/newtool"), "#!/bin/sh\necho new\n", 0755);
	lt_whiteout(in(d, "usr/lib/libold.so"));
	lt_whiteout(in(d, "var/cache"));
	lt_opaque(in(d, "usr/share/doc"));
	put(in(d, "usr/share/doc/readme"), "read me, version 2\n", 0644);
	put(in(d, "usr/share/doc/changes"), "B changed the docs\n", 0644);
}

static void build_small(const char *d, const char *tag, int files)
{
	for (int i = 0; i < files; i++) {
		char c[128];
		snprintf(c, sizeof(c), "%s file %d\n", tag, i);
		put(in(d, "%s/f%d", tag, i), c, 0644);
	}
}

/* The tar base: 8 folders of 20 small files (one content shared by 8 of
 * them, so that two workers race to store it), a file over the 4 MiB the
 * reading thread hands to the workers in memory (streamed into its object
 * instead) with a hard link, a hard-link group of three across folders, an
 * empty file, symlinks, a folder of mode 0500 with files in it (the
 * workers stage into it before the builder gives it its mode) and a
 * private one of another owner, xattrs on a file and a folder, a setuid
 * file, a fifo and a device. */
static void build_t(const char *d)
{
	char c[128];
	for (int i = 0; i < 8; i++) {
		for (int f = 0; f < 19; f++) {
			snprintf(c, sizeof(c), "app %d file %d\n", i, f);
			put(in(d, "srv/app%02d/f%02d", i, f), c, 0644);
		}
		put(in(d, "srv/app%02d/f19", i), "shared by eight\n", 0644);
	}
	put_big(in(d, "srv/big/blob.bin"), (4u << 20) + 4099, 0x7654321);
	lt_link(in(d, "srv/big/blob.bin"), in(d, "srv/big/blob.link"));
	put(in(d, "srv/big/small-dup"), "app 3 file 3\n", 0644);
	lt_link(in(d, "srv/app00/f00"), in(d, "srv/links/l1"));
	lt_link(in(d, "srv/app00/f00"), in(d, "srv/app05/hard"));
	put(in(d, "srv/empty"), "", 0644);
	lt_symlink("app03", in(d, "srv/current"));
	lt_symlink("../app02/f01", in(d, "srv/app01/cfg"));
	for (int f = 0; f < 5; f++) {
		snprintf(c, sizeof(c), "locked %d\n", f);
		put(in(d, "srv/locked/sub/l%d", f), c, 0444);
	}
	ck_assert_int_eq(chmod(in(d, "srv/locked/sub"), 0500), 0);
	ck_assert_int_eq(chmod(in(d, "srv/locked"), 0555), 0);
	put(in(d, "srv/private/key"), "secret\n", 0600);
	ck_assert_int_eq(lchown(in(d, "srv/private/key"), 1000, 1000), 0);
	ck_assert_int_eq(chmod(in(d, "srv/private"), 0700), 0);
	ck_assert_int_eq(lchown(in(d, "srv/private"), 1000, 1000), 0);
	put_xattr(in(d, "srv/app02/f03"), "user.comment", "from the tar");
	put_xattr(in(d, "srv/app04"), "user.folder", "a folder's xattr");
	put(in(d, "srv/bin/su"), "#!/bin/sh\necho su\n", 04755);
	lt_mkdir(in(d, "srv/run"));
	put_fifo(in(d, "srv/run/ctl"));
	lt_mkdir(in(d, "srv/dev"));
	put_chr(in(d, "srv/dev/zero"), 1, 5);
}

/* The tar diff on T, in OCI form (GNU tar keeps overlayfs whiteouts as
 * devices, so the markers are empty regular files): a changed file, new
 * files with a hard link and content T holds already, whiteouts of a
 * file, of a folder and of a hard-link member, and an opaque folder. */
static void build_u(const char *d)
{
	char c[128];
	put(in(d, "srv/app00/f01"), "changed by U\n", 0644);
	for (int f = 0; f < 10; f++) {
		snprintf(c, sizeof(c), "new %d\n", f);
		put(in(d, "srv/new/n%d", f), c, 0644);
	}
	lt_link(in(d, "srv/new/n0"), in(d, "srv/new/n0-link"));
	put(in(d, "srv/new/same"), "app 3 file 0\n", 0644);
	put(in(d, "srv/app01/.wh.f02"), "", 0644);
	put(in(d, "srv/.wh.app07"), "", 0644);
	put(in(d, "srv/links/.wh.l1"), "", 0644);
	put(in(d, "srv/app02/.wh..wh..opq"), "", 0644);
	put(in(d, "srv/app02/only"), "app02 is U's now\n", 0644);
}

/* The one-thread tar diff on E: a whiteout of E's file, an opaque etc/
 * over the folder imports' one, new files. */
static void build_v(const char *d)
{
	put(in(d, "opt-e/.wh.f0"), "", 0644);
	put(in(d, "etc/.wh..wh..opq"), "", 0644);
	put(in(d, "etc/v.conf"), "v = 1\n", 0644);
	build_small(d, "opt-v", 4);
}

static const char *tar_file(int slot)
{
	return lt_path("tar/%s.tar", slot_name[slot]);
}

/* All sources and the merged trees their checkouts must equal; those of
 * the tar slots (T, U, V and their tars) only when asked for. */
static void build_sources(bool tar)
{
	build_a(src_dir(L_A));
	build_b(src_dir(L_B));
	build_small(src_dir(L_C1), "opt-c1", 4);
	put(in(src_dir(L_C1), "etc/c1.conf"), "c1 = 1\n", 0644);
	build_small(src_dir(L_C2), "opt-c2", 3);
	put(in(src_dir(L_C2), "etc/c1.conf"), "c1 = 2\n", 0644);
	build_small(src_dir(L_D1), "d", 5);
	lt_symlink("f0", in(src_dir(L_D1), "d/link"));
	build_small(src_dir(L_D2), "d2", 2);
	lt_whiteout(in(src_dir(L_D2), "d/f1"));
	build_small(src_dir(L_E), "opt-e", 3);
	put(in(src_dir(L_E), "etc/hosts"), "127.0.0.1 localhost e\n", 0644);
	build_small(src_dir(L_F), "f", 3);
	if (tar) {
		build_t(src_dir(L_T));
		build_u(src_dir(L_U));
		build_v(src_dir(L_V));
		/* PAX headers: xattrs, and mtimes to the nanosecond. */
		lt_mkdir(lt_path("tar"));
		for (int s = 0; s < NSLOTS; s++)
			if (slot_how[s] != BY_DIR)
				sh("tar --numeric-owner --xattrs "
				   "--xattrs-include='user.*' -C '%s' -cf '%s' "
				   ".",
				   src_dir(s), tar_file(s));
	}

	/* A diff applied on its parent's merged tree: copy the parent, drop
	 * what the whiteouts and the opaque folder hide, copy the diff over
	 * it, then drop the copied whiteout devices themselves. */
	lt_mkdir(lt_path("exp"));
	for (int s = 0; s < NSLOTS; s++) {
		if (slot_parent[s] < 0 || (!tar && slot_how[s] != BY_DIR))
			continue;
		char dst[4096], src[4096];
		snprintf(dst, sizeof(dst), "%s", exp_dir(s));
		snprintf(src, sizeof(src), "%s", src_dir(s));
		sh("cp -a '%s' '%s'", exp_dir(slot_parent[s]), dst);
		if (slot_how[s] != BY_DIR) {
			/* The same with OCI markers: each .wh.X hides X,
			 * each .wh..wh..opq its folder's lower content; the
			 * markers themselves are no entries. */
			sh("cd '%s' && find . -name .wh..wh..opq -printf "
			   "'%%h\\0' | (cd '%s' && xargs -0r rm -rf)",
			   src, dst);
			sh("cd '%s' && find . -name '.wh.*' ! -name "
			   "'.wh..wh.*' -print0 | sed -z 's|/\\.wh\\.|/|' | "
			   "(cd '%s' && xargs -0r rm -rf)",
			   src, dst);
			sh("cp -a --remove-destination '%s/.' '%s/'", src, dst);
			sh("find '%s' -name '.wh.*' -delete", dst);
			continue;
		}
		sh("cd '%s' && find . -type c -print0 | (cd '%s' && "
		   "xargs -0r rm -rf)",
		   src, dst);
		if (s == L_B)
			sh("rm -rf '%s/usr/share/doc'", dst);
		sh("cp -a --remove-destination '%s/.' '%s/'", src, dst);
		sh("cd '%s' && find . -type c -print0 | (cd '%s' && "
		   "xargs -0r rm -rf)",
		   src, dst);
	}
}

/* ---- the scenario, run in a child ---------------------------------------- */

static void child_fail(int code, const char *what)
{
	fprintf(stderr, "crash child: %s: %d %s\n", what, code,
		lam_error_last()->message);
	_exit(100);
}

/* Import a slot's layer, the way slot_how says, on parent (or none). */
static int import_slot(lam_layer **out, lam_store *s, int slot,
		       lam_layer *parent)
{
	if (slot_how[slot] == BY_DIR)
		return lam_layer_import_dir(out, s, src_dir(slot), parent,
					    NULL);
	int fd = open(tar_file(slot), O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		*out = NULL;
		return -errno;
	}
	lam_tar_import_options o = LAM_TAR_IMPORT_OPTIONS_INIT;
	if (slot_how[slot] == BY_TAR_ONE_THREAD)
		o.flags |= LAM_TAR_ONE_THREAD;
	int rc = lam_layer_import_tar(out, s, fd, parent, &o);
	close(fd);
	return rc;
}

static state state_after(int k);

/* Paths of the pre-made store states: snap/<k> is the store after the
 * first k steps (snap/0 an empty store). */
static const char *snap_dir(int k)
{
	return lt_path("snap/%d", k);
}

/* Copy a tree entry by entry (types, modes, owners, times, xattrs, hard
 * links within the tree). Content objects (the files of the flat objects/
 * folder) are hard linked instead of copied: the store never writes to an
 * object once it is published, and a 5 MiB copy per kill would dominate
 * the run time. A file that reads as zeros only (a layer folder's file,
 * which has a size and a redirect to its object but no data) is copied as
 * a hole, as the store has it: written out, the big files' 9 MiB of zeros
 * per copy would be most of what every kill's syncfs has to write back. */
typedef struct copier {
	ino_t *ino;
	char **first;
	size_t n, cap;
	size_t root_len;
} copier;

static void copy_xattrs(const char *from, const char *to)
{
	char names[4096], val[4096];
	ssize_t len = llistxattr(from, names, sizeof(names));
	for (ssize_t i = 0; i < len; i += (ssize_t)strlen(names + i) + 1) {
		ssize_t vl = lgetxattr(from, names + i, val, sizeof(val));
		ck_assert_msg(vl >= 0 && lsetxattr(to, names + i, val,
						   (size_t)vl, 0) == 0,
			      "copying xattr %s of %s: %s", names + i, from,
			      strerror(errno));
	}
}

static void copy_meta(const char *from, const char *to, const struct stat *st)
{
	ck_assert_int_eq(lchown(to, st->st_uid, st->st_gid), 0);
	if (!S_ISLNK(st->st_mode))
		ck_assert_int_eq(chmod(to, st->st_mode & 07777), 0);
	copy_xattrs(from, to);
	struct timespec ts[2] = {st->st_atim, st->st_mtim};
	ck_assert_int_eq(utimensat(AT_FDCWD, to, ts, AT_SYMLINK_NOFOLLOW), 0);
}

static bool all_zero(const char *data, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (data[i] != 0)
			return false;
	return true;
}

/* object: from is an entry of the store's objects/ folder. */
static void copy_entry(copier *c, const char *from, const char *to, bool object)
{
	struct stat st;
	ck_assert_msg(lstat(from, &st) == 0, "lstat %s: %s", from,
		      strerror(errno));
	if (object && S_ISREG(st.st_mode)) {
		ck_assert_msg(link(from, to) == 0, "link %s: %s", to,
			      strerror(errno));
		return;
	}
	if (S_ISDIR(st.st_mode)) {
		bool objects = strcmp(from + c->root_len, "/objects") == 0;
		ck_assert_msg(mkdir(to, 0700) == 0, "mkdir %s: %s", to,
			      strerror(errno));
		DIR *d = opendir(from);
		ck_assert_ptr_nonnull(d);
		struct dirent *de;
		while ((de = readdir(d)) != NULL) {
			if (!strcmp(de->d_name, ".") ||
			    !strcmp(de->d_name, ".."))
				continue;
			char f[4096], t[4096];
			snprintf(f, sizeof(f), "%s/%s", from, de->d_name);
			snprintf(t, sizeof(t), "%s/%s", to, de->d_name);
			copy_entry(c, f, t, objects);
		}
		closedir(d);
		copy_meta(from, to, &st);
		return;
	}
	if (st.st_nlink > 1) {
		for (size_t i = 0; i < c->n; i++) {
			if (c->ino[i] != st.st_ino)
				continue;
			ck_assert_msg(link(c->first[i], to) == 0, "link %s: %s",
				      to, strerror(errno));
			return;
		}
		if (c->n == c->cap) {
			c->cap = c->cap ? c->cap * 2 : 16;
			c->ino = realloc(c->ino, c->cap * sizeof(*c->ino));
			c->first = realloc(c->first, c->cap * sizeof(char *));
			ck_assert(c->ino != NULL && c->first != NULL);
		}
		c->ino[c->n] = st.st_ino;
		c->first[c->n++] = strdup(to);
	}
	if (S_ISREG(st.st_mode)) {
		size_t len = 0;
		char *data = lt_read(from, &len);
		ck_assert_ptr_nonnull(data);
		int fd =
			open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		ck_assert_msg(fd >= 0, "create %s: %s", to, strerror(errno));
		if (all_zero(data, len))
			ck_assert_int_eq(ftruncate(fd, (off_t)len), 0);
		else
			ck_assert_int_eq(write(fd, data, len), (ssize_t)len);
		close(fd);
		free(data);
	} else if (S_ISLNK(st.st_mode)) {
		char target[4096];
		ssize_t n = readlink(from, target, sizeof(target) - 1);
		ck_assert_int_ge(n, 0);
		target[n] = '\0';
		ck_assert_int_eq(symlink(target, to), 0);
	} else {
		ck_assert_msg(mknod(to, st.st_mode & S_IFMT, st.st_rdev) == 0,
			      "mknod %s: %s", to, strerror(errno));
	}
	copy_meta(from, to, &st);
}

static int rm_entry(const char *path, const struct stat *st, int flag,
		    struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	return flag == FTW_DP ? rmdir(path) : unlink(path);
}

/* Remove a tree without a shell: a kill run removes one store each. */
static void rm_tree(const char *path)
{
	ck_assert_msg(nftw(path, rm_entry, 32, FTW_DEPTH | FTW_PHYS) == 0,
		      "removing %s: %s", path, strerror(errno));
}

static void copy_store(const char *from, const char *to)
{
	copier c = {NULL, NULL, 0, 0, strlen(from)};
	copy_entry(&c, from, to, false);
	for (size_t i = 0; i < c.n; i++)
		free(c.first[i]);
	free(c.first);
	free(c.ino);
}

/* In a child: run the scenario from step `first` on the store at
 * store_dir, which must hold the state after the steps before it (layers
 * are found by the ids of pl). The n-th crash point from there kills the
 * process (0: none). Each completed step appends the number of crash
 * points passed so far (a uint64_t) to the progress file. The run stops
 * after step `last`. The counting run (plan_fd >= 0) fills the plan (the
 * steps after `last` pass no crash point in it), sends it through plan_fd
 * and leaves a snapshot of the store before each step in snap_mask (bit
 * k: step k). */
static void __attribute__((noreturn))
child_scenario(const char *store_dir, int first, int last, uint64_t n,
	       const char *progress, const plan *pl_in, int plan_fd,
	       unsigned int snap_mask)
{
	lam_store *s;
	int rc = lam_store_open(&s, store_dir, NULL);
	if (rc < 0)
		child_fail(rc, "opening store");
	/* A process death loses nothing written with write(): the file
	 * needs no fsync, the kernel already has the bytes. */
	int pfd =
		open(progress, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (pfd < 0)
		child_fail(-errno, "opening progress file");
	plan pl;
	memset(&pl, 0, sizeof(pl));
	lam_layer *l[NSLOTS] = {0};
	char snaps[NSTEPS + 1][4096];
	for (int k = 0; k <= NSTEPS; k++)
		snprintf(snaps[k], sizeof(snaps[k]), "%s", snap_dir(k));
	state st0 = state_after(first);
	for (int i = 0; i < NSLOTS; i++) {
		if (!st0.present[i])
			continue;
		rc = lam_layer_open(&l[i], s, pl_in->ids[i]);
		if (rc < 0)
			child_fail(rc, "opening a layer of the snapshot");
	}
	lam__test_crash_at(n);
	for (int k = first; k <= last; k++) {
		const step *st = &steps[k];
		lam_layer *got = NULL;
		const char *expected = NULL;
		switch (st->kind) {
		case K_IMPORT_BASE:
		case K_IMPORT_DIFF:
		case K_IMPORT_DUP:
		case K_IMPORT_TAR:
			rc = import_slot(&got, s, st->layer,
					 slot_parent[st->layer] < 0 ?
						 NULL :
						 l[slot_parent[st->layer]]);
			if (rc < 0)
				child_fail(rc, "import");
			if (l[st->layer] != NULL) {
				if (strcmp(lam_layer_id(got),
					   lam_layer_id(l[st->layer])) != 0)
					child_fail(0,
						   "duplicate import: new id");
				lam_layer_free(got);
			} else {
				l[st->layer] = got;
			}
			break;
		case K_REF:
		case K_REF_STALE:
			expected = st->from < 0 ? "" :
						  lam_layer_id(l[st->from]);
			rc = lam_store_ref_set(s, ref_name[st->ref],
					       lam_layer_id(l[st->to]),
					       expected);
			if (st->kind == K_REF_STALE && rc != LAM_ECONFLICT)
				child_fail(rc, "stale compare-and-swap");
			if (st->kind == K_REF && rc < 0)
				child_fail(rc, "ref set");
			break;
		case K_DELETE:
			rc = lam_layer_delete(l[st->layer], LAM_DELETE_CASCADE);
			if (rc < 0)
				child_fail(rc, "delete");
			break;
		case K_GC: {
			lam_gc_stats gs;
			rc = lam_store_gc(s, &gs);
			if (rc < 0)
				child_fail(rc, "gc");
			if (gs.layers_removed != 2)
				child_fail(0, "gc removed other than 2 layers");
			break;
		}
		}
		/* The progress record of a step: the crash points passed at
		 * its end. */
		pl.bounds[k] = lam__test_crash_points_passed();
		if (write(pfd, &pl.bounds[k], sizeof(pl.bounds[k])) !=
		    (ssize_t)sizeof(pl.bounds[k]))
			child_fail(-errno, "writing progress");
		if (plan_fd >= 0 && k + 1 < NSTEPS &&
		    (snap_mask & (1u << (k + 1))))
			copy_store(store_dir, snaps[k + 1]);
	}
	for (int k = last + 1; k < NSTEPS; k++)
		pl.bounds[k] = pl.bounds[last];
	for (int i = 0; i < NSLOTS; i++)
		if (l[i] != NULL)
			snprintf(pl.ids[i], sizeof(pl.ids[i]), "%s",
				 lam_layer_id(l[i]));
	if (plan_fd >= 0 &&
	    write(plan_fd, &pl, sizeof(pl)) != (ssize_t)sizeof(pl))
		child_fail(-errno, "sending the plan");
	_exit(0);
}

/* The last step of a kind (-1: of the whole scenario). */
static int last_step(int kind)
{
	int last = NSTEPS - 1;
	while (kind >= 0 && last > 0 &&
	       !kind_matches((enum kind)kind, steps[last].kind))
		last--;
	return last;
}

static bool imports(enum kind kind)
{
	return kind == K_IMPORT_BASE || kind == K_IMPORT_DIFF ||
	       kind == K_IMPORT_DUP || kind == K_IMPORT_TAR;
}

/* Whether the scenario up to step last imports a tar slot. */
static bool tar_steps_upto(int last)
{
	for (int k = 0; k <= last; k++)
		if (imports(steps[k].kind) &&
		    slot_how[steps[k].layer] != BY_DIR)
			return true;
	return false;
}

/* Run the scenario without a kill, to learn its crash points and ids and
 * to make the snapshots the steps of one kind start from. It stops after
 * the last step of that kind: the kills need nothing after it (and the
 * tar steps at the end would cost every sweep a second). */
static void count_plan(plan *out, int kind)
{
	int last = last_step(kind);
	unsigned int mask = 0;
	for (int k = 0; k < NSTEPS; k++)
		if (kind >= 0 && kind_matches((enum kind)kind, steps[k].kind))
			mask |= 1u << k;
	lt_mkdir(lt_path("snap"));
	lam_store *s;
	lam_store_options o = LAM_STORE_OPTIONS_INIT;
	o.flags = LAM_STORE_CREATE;
	LT_OK(lam_store_open(&s, snap_dir(0), &o));
	lam_store_free(s);
	copy_store(snap_dir(0), lt_path("count-store"));
	int fds[2];
	ck_assert_int_eq(pipe(fds), 0);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		close(fds[0]);
		char sdir[4096];
		snprintf(sdir, sizeof(sdir), "%s", lt_path("count-store"));
		child_scenario(sdir, 0, last, 0, lt_path("count-progress"),
			       NULL, fds[1], mask);
	}
	close(fds[1]);
	size_t got = 0;
	while (got < sizeof(*out)) {
		ssize_t r = read(fds[0], (char *)out + got, sizeof(*out) - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	close(fds[0]);
	int status;
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "the scenario failed without a kill (status %#x)",
		      status);
	ck_assert_uint_eq(got, sizeof(*out));
	for (int k = 0; k <= last; k++)
		if (imports(steps[k].kind))
			ck_assert_uint_eq(strlen(out->ids[steps[k].layer]),
					  LAM_DIGEST_HEX_LEN);
	rm_tree(lt_path("count-store"));
	unlink(lt_path("count-progress"));
}

static uint64_t total_points(const plan *p)
{
	return p->bounds[NSTEPS - 1];
}

/* The step that crash point n interrupts. */
static int step_of(const plan *p, uint64_t n)
{
	int k = 0;
	while (k < NSTEPS && p->bounds[k] < n)
		k++;
	return k;
}

/* ---- the model of valid states ----------------------------------------- */

static void apply_step(state *s, const step *st)
{
	switch (st->kind) {
	case K_IMPORT_BASE:
	case K_IMPORT_DIFF:
	case K_IMPORT_DUP:
	case K_IMPORT_TAR:
		s->present[st->layer] = true;
		break;
	case K_REF:
		s->ref[st->ref] = st->to;
		break;
	case K_REF_STALE:
		break;
	case K_DELETE:
		for (int i = 0; i < NSLOTS; i++)
			for (int a = i; a >= 0; a = slot_parent[a])
				if (a == st->layer)
					s->present[i] = false;
		for (int r = 0; r < NREFS; r++)
			if (s->ref[r] >= 0 && !s->present[s->ref[r]])
				s->ref[r] = -1;
		break;
	case K_GC: {
		bool keep[NSLOTS] = {false};
		for (int r = 0; r < NREFS; r++)
			for (int a = s->ref[r]; a >= 0; a = slot_parent[a])
				keep[a] = true;
		for (int i = 0; i < NSLOTS; i++)
			s->present[i] = s->present[i] && keep[i];
		break;
	}
	}
}

/* The state after the first k steps. */
static state state_after(int k)
{
	state s;
	memset(&s, 0, sizeof(s));
	for (int r = 0; r < NREFS; r++)
		s.ref[r] = -1;
	for (int i = 0; i < k && i < NSTEPS; i++)
		apply_step(&s, &steps[i]);
	return s;
}

/* ---- checking a store after a kill ------------------------------------- */

typedef struct problems {
	char text[4096];
	size_t len;
} problems;

static int on_problem(const char *what, const char *problem, void *ud)
{
	problems *p = ud;
	int n = snprintf(p->text + p->len, sizeof(p->text) - p->len,
			 "\n  %s: %s", what, problem);
	if (n > 0 && p->len + (size_t)n < sizeof(p->text))
		p->len += (size_t)n;
	return 0;
}

static void assert_check_clean(lam_store *s, const char *when)
{
	problems p = {{0}, 0};
	size_t count = 99;
	LT_OK(lam_store_check(s, 0, on_problem, &p, &count));
	ck_assert_msg(count == 0, "%s: check found %zu problems:%s", when,
		      count, p.text);
}

static size_t dir_entries(const char *path)
{
	DIR *d = opendir(path);
	ck_assert_msg(d != NULL, "opendir %s: %s", path, strerror(errno));
	size_t n = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

/* Check out a layer and compare it with the tree it must reproduce. */
static void assert_checkout(lam_store *s, const char *id, const char *tree,
			    const char *when)
{
	lam_layer *l = NULL;
	int rc = lam_layer_open(&l, s, id);
	ck_assert_msg(rc == 0, "%s: opening layer %s: %d %s", when, id, rc,
		      lam_error_last()->message);
	char co[4096];
	snprintf(co, sizeof(co), "%s", lt_path("checkout-%d", (int)getpid()));
	rc = lam_layer_checkout(l, co, NULL);
	ck_assert_msg(rc == 0, "%s: checkout of %s: %d %s", when, id, rc,
		      lam_error_last()->message);
	char *diff = lt_tree_diff(tree, co, true);
	ck_assert_msg(diff == NULL, "%s: checkout of layer %s, against %s: %s",
		      when, id, tree, diff);
	lam_layer_free(l);
	rm_tree(co);
}

typedef struct seen {
	const plan *pl;
	bool present[NSLOTS];
	int ref[NREFS];
	char unknown[200];
} seen;

static int slot_of(const plan *pl, const char *id)
{
	for (int i = 0; i < NSLOTS; i++)
		if (strcmp(pl->ids[i], id) == 0)
			return i;
	return -1;
}

static int on_layer(lam_layer *l, void *ud)
{
	seen *sn = ud;
	int i = slot_of(sn->pl, lam_layer_id(l));
	if (i < 0)
		snprintf(sn->unknown, sizeof(sn->unknown), "layer %s",
			 lam_layer_id(l));
	else
		sn->present[i] = true;
	return 0;
}

static int on_ref(const char *name, const char *id, void *ud)
{
	seen *sn = ud;
	int r = 0;
	while (r < NREFS && strcmp(ref_name[r], name) != 0)
		r++;
	int i = slot_of(sn->pl, id);
	if (r == NREFS || i < 0)
		snprintf(sn->unknown, sizeof(sn->unknown), "ref %s -> %s", name,
			 id);
	else
		sn->ref[r] = i;
	return 0;
}

static bool same_refs(const seen *sn, const state *st)
{
	for (int r = 0; r < NREFS; r++)
		if (sn->ref[r] != st->ref[r])
			return false;
	return true;
}

typedef struct ids {
	char id[NSLOTS + 1][LAM_DIGEST_HEX_LEN + 1];
	int n;
} ids;

static int on_id(lam_layer *l, void *ud)
{
	ids *v = ud;
	if (v->n < (int)LAM__ARRAY_LEN(v->id))
		snprintf(v->id[v->n], sizeof(v->id[0]), "%s", lam_layer_id(l));
	v->n++;
	return 0;
}

/* Every object in the store is one that a layer present uses: with each
 * layer held by a ref, gc finds nothing to remove. Run once the
 * interrupted import has been done again: what the killed run stored is
 * then what that import uses. (It holds for the tar steps, which start
 * from a store without garbage; a store before the gc step has some.) */
static void assert_no_garbage(lam_store *s, const char *when)
{
	ids v;
	memset(&v, 0, sizeof(v));
	LT_OK(lam_layer_foreach(s, on_id, &v));
	ck_assert_int_le(v.n, (int)LAM__ARRAY_LEN(v.id));
	for (int i = 0; i < v.n; i++) {
		char name[64];
		snprintf(name, sizeof(name), "keep-%d", i);
		LT_OK(lam_store_ref_set(s, name, v.id[i], NULL));
	}
	lam_gc_stats gs;
	LT_OK(lam_store_gc(s, &gs));
	ck_assert_msg(gs.layers_removed == 0 && gs.objects_removed == 0,
		      "%s: the killed import left %" PRIu64
		      " objects no layer uses (and gc removed %" PRIu64
		      " layers)",
		      when, gs.objects_removed, gs.layers_removed);
}

/* After a kill at crash point n (in step k): the store opens, tmp/ is
 * empty, check finds nothing, the layers are those of the state before
 * step k plus any of the layers step k adds (minus any it removes), each
 * checks out to its tree, the refs are all as before step k or all as
 * after it, and the store still takes a new import. */
static void verify_after_kill(const plan *pl, const char *store_dir, uint64_t n,
			      int k, bool usable_check)
{
	static const char *const kind_name[] = {
		"import of",  "import of",	  "duplicate import of",
		"ref update", "stale ref update", "cascade delete of",
		"gc",	      "tar import of"};
	char when[128];
	snprintf(when, sizeof(when),
		 "kill at point %" PRIu64 " (step %d: %s %s)", n, k,
		 k < NSTEPS ? kind_name[steps[k].kind] : "none",
		 k < NSTEPS && steps[k].layer >= 0 ? slot_name[steps[k].layer] :
						     "");
	lam_store *s = NULL;
	int rc = lam_store_open(&s, store_dir, NULL);
	ck_assert_msg(rc == 0, "%s: store does not open: %d %s", when, rc,
		      lam_error_last()->message);
	char tmp[4200];
	snprintf(tmp, sizeof(tmp), "%s/tmp", store_dir);
	ck_assert_msg(dir_entries(tmp) == 0, "%s: tmp/ not cleaned on open",
		      when);
	assert_check_clean(s, when);

	state before = state_after(k), after = state_after(k + 1);
	seen sn;
	memset(&sn, 0, sizeof(sn));
	sn.pl = pl;
	for (int r = 0; r < NREFS; r++)
		sn.ref[r] = -1;
	LT_OK(lam_layer_foreach(s, on_layer, &sn));
	LT_OK(lam_store_ref_foreach(s, on_ref, &sn));
	ck_assert_msg(sn.unknown[0] == '\0', "%s: unexpected %s", when,
		      sn.unknown);
	for (int i = 0; i < NSLOTS; i++) {
		if (before.present[i] && after.present[i])
			ck_assert_msg(sn.present[i],
				      "%s: committed layer %s is gone", when,
				      slot_name[i]);
		if (!before.present[i] && !after.present[i])
			ck_assert_msg(!sn.present[i],
				      "%s: layer %s should not exist", when,
				      slot_name[i]);
		if (sn.present[i])
			assert_checkout(s, pl->ids[i], exp_dir(i), when);
	}
	ck_assert_msg(same_refs(&sn, &before) || same_refs(&sn, &after),
		      "%s: refs base=%d top=%d are neither the old nor the "
		      "new value",
		      when, sn.ref[R_BASE], sn.ref[R_TOP]);

	if (usable_check) {
		/* Import the tree the kill interrupted again (or a new one),
		 * on its parent when the parent survived. */
		int slot = L_F;
		if (k < NSTEPS && steps[k].kind != K_DELETE &&
		    steps[k].layer >= 0 &&
		    (slot_parent[steps[k].layer] < 0 ||
		     sn.present[slot_parent[steps[k].layer]]))
			slot = steps[k].layer;
		lam_layer *parent = NULL, *l = NULL;
		if (slot_parent[slot] >= 0)
			LT_OK(lam_layer_open(&parent, s,
					     pl->ids[slot_parent[slot]]));
		rc = import_slot(&l, s, slot, parent);
		ck_assert_msg(rc == 0, "%s: import after the kill: %d %s", when,
			      rc, lam_error_last()->message);
		if (slot != L_F)
			ck_assert_str_eq(lam_layer_id(l), pl->ids[slot]);
		LT_OK(lam_store_ref_set(s, "after-crash", lam_layer_id(l),
					NULL));
		assert_check_clean(s, when);
		assert_checkout(s, lam_layer_id(l), exp_dir(slot), when);
		lam_layer_free(l);
		lam_layer_free(parent);
		if (k < NSTEPS && steps[k].kind == K_IMPORT_TAR)
			assert_no_garbage(s, when);
	}
	lam_store_free(s);
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One kill: run step k of the scenario on a copy of the store as the
 * steps before it left it, killed at its crash point n (counted over the
 * whole scenario), then check the store. */
static bool kill_one(const plan *pl, uint64_t n, int k)
{
	char sdir[4096], progress[4200];
	snprintf(sdir, sizeof(sdir), "%s", lt_path("s%" PRIu64, n));
	snprintf(progress, sizeof(progress), "%s.progress", sdir);
	copy_store(snap_dir(k), sdir);
	uint64_t base = k ? pl->bounds[k - 1] : 0;
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0)
		child_scenario(sdir, k, NSTEPS - 1, n - base, progress, pl, -1,
			       0);
	int status;
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
		      "kill at point %" PRIu64 ": the child was not killed "
		      "(status %#x)",
		      n, status);
	/* The kill must land in the step the plan says: the child finished
	 * no step. */
	size_t done = 0;
	char *prog = lt_read(progress, &done);
	ck_assert_ptr_nonnull(prog);
	free(prog);
	ck_assert_msg(done == 0,
		      "kill at point %" PRIu64 ": the child finished step %d, "
		      "the plan says it dies in it",
		      n, k);
	char tmp[4200];
	snprintf(tmp, sizeof(tmp), "%s/tmp", sdir);
	bool leftovers = dir_entries(tmp) > 0;
	verify_after_kill(pl, sdir, n, k, true);
	rm_tree(sdir);
	unlink(progress);
	return leftovers;
}

/* A tar import has a crash point per file staged and per object stored,
 * passed in whatever order the worker threads reach them, then the
 * builder's (one per folder closed, per link, symlink, device, whiteout,
 * and the last one before the publishing rename). A kill costs half a
 * second or more (the copy, the import up to the kill, checkouts, the
 * import again: file-system time, which ASan does not shorten), so killing
 * at each of the 430 points of the three steps would add minutes to each
 * test pass. The sweep kills a tar step of up to TAR_ALL points at each,
 * and a longer one at its first TAR_FIRST (the workers' first files), its
 * last TAR_LAST (the builder's end, with the kill just before
 * publication), and about TAR_SPREAD points evenly spaced in between:
 * about 60 kills in all. LAMINA_TEST_ALL_KILLS=1 takes every point. */
#define TAR_ALL	   16
#define TAR_FIRST  3
#define TAR_LAST   8
#define TAR_SPREAD 10

static bool tar_point_sampled(const plan *pl, uint64_t n, int k)
{
	uint64_t first = k ? pl->bounds[k - 1] + 1 : 1, last = pl->bounds[k];
	uint64_t points = last - first + 1;
	if (points <= TAR_ALL || n < first + TAR_FIRST || n + TAR_LAST > last)
		return true;
	uint64_t mid = points - TAR_FIRST - TAR_LAST;
	uint64_t stride = (mid + TAR_SPREAD - 1) / TAR_SPREAD;
	return (n - first - TAR_FIRST) % stride == stride / 2;
}

/* Kill the scenario at every crash point of the steps of one kind, and
 * check the store after each kill. The kills are independent, so a few
 * worker processes share them out; a worker that fails an assertion
 * reports it to Check itself and exits non-zero. Each worker sends back
 * how many kills left something in tmp/ for the next open to clear. */
static void kill_sweep(enum kind kind, const char *label)
{
	build_sources(tar_steps_upto(last_step((int)kind)));
	plan pl;
	count_plan(&pl, (int)kind);
	uint64_t total = total_points(&pl);
	uint64_t *todo = calloc(total, sizeof(*todo));
	ck_assert_ptr_nonnull(todo);
	size_t count = 0;
	const char *all = getenv("LAMINA_TEST_ALL_KILLS");
	for (uint64_t n = 1; n <= total; n++) {
		int k = step_of(&pl, n);
		if (!kind_matches(kind, steps[k].kind))
			continue;
		if (kind == K_IMPORT_TAR && (all == NULL || *all == '\0') &&
		    !tar_point_sampled(&pl, n, k))
			continue;
		todo[count++] = n;
	}
	ck_assert_msg(count > 0, "no crash point in the %s steps", label);

	double t0 = now();
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	size_t workers = cpus < 1 ? 1 : cpus > 3 ? 4 : (size_t)cpus + 1;
	if (workers > count)
		workers = count;
	pid_t pids[4];
	int fds[2];
	ck_assert_int_eq(pipe(fds), 0);
	for (size_t w = 0; w < workers; w++) {
		pids[w] = fork();
		ck_assert_int_ge(pids[w], 0);
		if (pids[w] != 0)
			continue;
		close(fds[0]);
		uint64_t leftovers = 0;
		for (size_t i = w; i < count; i += workers)
			leftovers +=
				kill_one(&pl, todo[i], step_of(&pl, todo[i]));
		if (write(fds[1], &leftovers, sizeof(leftovers)) !=
		    (ssize_t)sizeof(leftovers))
			_exit(1);
		_exit(0);
	}
	close(fds[1]);
	free(todo);
	int failed = 0, status = 0;
	for (size_t left = workers; left > 0; left--) {
		int st;
		pid_t pid = wait(&st);
		ck_assert_int_gt(pid, 0);
		if (failed || (WIFEXITED(st) && WEXITSTATUS(st) == 0))
			continue;
		/* The worker's own assertion message is the one Check
		 * reports; stop the others. */
		failed = 1;
		status = st;
		for (size_t w = 0; w < workers; w++)
			if (pids[w] != pid)
				kill(pids[w], SIGKILL);
	}
	ck_assert_msg(!failed, "%s: a kill worker failed (status %#x)", label,
		      status);
	uint64_t leftovers = 0, part;
	for (size_t w = 0; w < workers; w++) {
		ck_assert_int_eq(read(fds[0], &part, sizeof(part)),
				 (ssize_t)sizeof(part));
		leftovers += part;
	}
	close(fds[0]);
	fprintf(stderr,
		"%s: %zu kills of %" PRIu64 " crash points (%" PRIu64
		" left tmp/ to clear), %zu workers, %.1f s\n",
		label, count, total, leftovers, workers, now() - t0);
	/* Imports stage in tmp/, delete and gc move layers there before
	 * removing them: some kills must have left it for open to clear.
	 * (A killed ref write leaves its temp file elsewhere.) */
	if (kind != K_REF)
		ck_assert_uint_gt(leftovers, 0);
}

START_TEST(test_kill_during_base_import_leaves_old_or_new)
{
	kill_sweep(K_IMPORT_BASE, "base imports");
}
END_TEST

START_TEST(test_kill_during_diff_import_leaves_old_or_new)
{
	kill_sweep(K_IMPORT_DIFF, "diff imports");
}
END_TEST

START_TEST(test_kill_during_duplicate_import_keeps_existing_layer)
{
	kill_sweep(K_IMPORT_DUP, "duplicate import");
}
END_TEST

START_TEST(test_kill_during_ref_update_leaves_old_or_new_value)
{
	kill_sweep(K_REF, "ref updates");
}
END_TEST

START_TEST(test_kill_during_cascade_delete_leaves_no_orphan)
{
	kill_sweep(K_DELETE, "cascade delete");
}
END_TEST

START_TEST(test_kill_during_gc_keeps_reachable_layers)
{
	kill_sweep(K_GC, "gc");
}
END_TEST

START_TEST(test_kill_during_tar_import_leaves_old_or_new)
{
	kill_sweep(K_IMPORT_TAR, "tar imports");
}
END_TEST

/* The sweep covers the whole scenario: every step that writes has crash
 * points, each kind of step has at least one, and a crash point past the
 * last one lets the scenario finish with the final state. A second run
 * passes as many crash points in each step as the counting run: the kill
 * runs rely on it (a kill at point n lands in the step the plan says),
 * and the tar imports' worker threads make only the order of their points
 * vary between runs, not their number (one per file staged, one per
 * object stored, and the builder's). */
START_TEST(test_scenario_has_a_kill_point_in_every_durable_step)
{
	build_sources(true);
	plan pl;
	count_plan(&pl, -1);
	uint64_t total = total_points(&pl);
	fprintf(stderr, "scenario: %" PRIu64 " crash points\n", total);
	ck_assert_msg(total >= 200, "only %" PRIu64 " crash points", total);
	for (int k = 0; k < NSTEPS; k++) {
		uint64_t first = k ? pl.bounds[k - 1] : 0;
		if (steps[k].kind == K_REF_STALE)
			ck_assert_uint_eq(pl.bounds[k], first);
		else
			ck_assert_msg(pl.bounds[k] > first,
				      "step %d has no crash point", k);
	}
	/* Refs are written through a temp file, fsync, rename and a folder
	 * fsync: three points each. */
	ck_assert_uint_eq(pl.bounds[1] - pl.bounds[0], 3);

	/* The whole scenario from an empty store, with the kill set one
	 * point too far: it runs to the end. */
	char sdir[4096], prog[4096];
	snprintf(sdir, sizeof(sdir), "%s", lt_path("full"));
	snprintf(prog, sizeof(prog), "%s", lt_path("full.progress"));
	copy_store(snap_dir(0), sdir);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0)
		child_scenario(sdir, 0, NSTEPS - 1, total + 1, prog, &pl, -1,
			       0);
	int status;
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "status %#x", status);
	size_t done = 0;
	uint64_t *passed = (uint64_t *)lt_read(prog, &done);
	ck_assert_ptr_nonnull(passed);
	ck_assert_uint_eq(done, NSTEPS * sizeof(*passed));
	for (int k = 0; k < NSTEPS; k++)
		ck_assert_msg(passed[k] == pl.bounds[k],
			      "step %d ended at crash point %" PRIu64
			      " in one run, %" PRIu64 " in another",
			      k, pl.bounds[k], passed[k]);
	free(passed);
	verify_after_kill(&pl, sdir, total + 1, NSTEPS, false);
}
END_TEST

/* ---- kills at random moments ------------------------------------------- */

static uint64_t rng_state;

static uint64_t rng_next(void)
{
	uint64_t x = rng_state;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	rng_state = x;
	return x;
}

static void child_fail_loop(int code, const char *what, int iter)
{
	fprintf(stderr, "loop child, iteration %d: %s: %d %s\n", iter, what,
		code, lam_error_last()->message);
	_exit(100);
}

/* Import (or find) a slot's layer with its chain, into l[]. */
static void loop_import(lam_store *s, lam_layer **l, int slot,
			char srcs[][4096], int iter)
{
	if (l[slot] != NULL)
		return;
	int p = slot_parent[slot];
	if (p >= 0)
		loop_import(s, l, p, srcs, iter);
	int rc = lam_layer_import_dir(&l[slot], s, srcs[slot],
				      p >= 0 ? l[p] : NULL, NULL);
	if (rc < 0)
		child_fail_loop(rc, "import", iter);
}

/* Work on the store until killed: imports (most of them new, since each
 * round deletes or collects what the last one made), ref moves with
 * compare-and-swap, cascade deletes and gc. */
static void __attribute__((noreturn))
child_loop(const char *store_dir, int first_iter)
{
	char srcs[NSLOTS][4096];
	for (int i = 0; i < NSLOTS; i++)
		snprintf(srcs[i], sizeof(srcs[i]), "%s", src_dir(i));
	lam_store *s;
	int rc = lam_store_open(&s, store_dir, NULL);
	if (rc < 0)
		child_fail_loop(rc, "open", -1);
	for (int iter = first_iter;; iter++) {
		lam_layer *l[NSLOTS] = {0};
		loop_import(s, l, L_A, srcs, iter);
		rc = lam_store_ref_set(s, "base", lam_layer_id(l[L_A]), NULL);
		if (rc < 0)
			child_fail_loop(rc, "ref base", iter);
		loop_import(s, l, L_E, srcs, iter);
		char *cur = NULL;
		rc = lam_store_ref_get(&cur, s, "top");
		if (rc < 0 && rc != LAM_ENOTFOUND)
			child_fail_loop(rc, "ref get", iter);
		int target = iter % 2 ? L_E : L_B;
		rc = lam_store_ref_set(s, "top", lam_layer_id(l[target]),
				       cur ? cur : "");
		lam_free(cur);
		if (rc < 0)
			child_fail_loop(rc, "ref top", iter);
		loop_import(s, l, L_C2, srcs, iter);
		rc = lam_layer_delete(l[L_C1], LAM_DELETE_CASCADE);
		if (rc < 0)
			child_fail_loop(rc, "delete", iter);
		loop_import(s, l, L_D2, srcs, iter);
		if (iter % 2)
			rc = lam_store_ref_set(s, "d", lam_layer_id(l[L_D2]),
					       NULL);
		else
			rc = lam_store_ref_delete(s, "d", NULL);
		if (rc < 0 && rc != LAM_ENOTFOUND)
			child_fail_loop(rc, "ref d", iter);
		loop_import(s, l, L_F, srcs, iter);
		rc = lam_store_ref_set(s, "f", lam_layer_id(l[L_F]), NULL);
		if (rc < 0)
			child_fail_loop(rc, "ref f", iter);
		if (iter % 3 == 2) {
			/* Drop everything A carries, so that the next round
			 * imports the big file again. */
			rc = lam_layer_delete(l[L_A], LAM_DELETE_CASCADE);
			if (rc < 0)
				child_fail_loop(rc, "delete A", iter);
		}
		rc = lam_store_gc(s, NULL);
		if (rc < 0)
			child_fail_loop(rc, "gc", iter);
		for (int i = 0; i < NSLOTS; i++)
			lam_layer_free(l[i]);
	}
}

typedef struct rseen {
	const plan *pl;
	char unknown[200];
	bool present[NSLOTS];
} rseen;

static int on_rlayer(lam_layer *l, void *ud)
{
	rseen *r = ud;
	int i = slot_of(r->pl, lam_layer_id(l));
	if (i < 0)
		snprintf(r->unknown, sizeof(r->unknown), "layer %s",
			 lam_layer_id(l));
	else
		r->present[i] = true;
	return 0;
}

static int on_rref(const char *name, const char *id, void *ud)
{
	rseen *r = ud;
	if (slot_of(r->pl, id) < 0)
		snprintf(r->unknown, sizeof(r->unknown), "ref %s -> %s", name,
			 id);
	return 0;
}

START_TEST(test_kill_at_random_moments_keeps_store_valid)
{
	build_sources(false);
	/* Every layer the loop can make, by id: import them all into the
	 * fixture's store. (It makes none of the tar slots.) */
	plan pl;
	memset(&pl, 0, sizeof(pl));
	lam_layer *l[NSLOTS] = {0};
	for (int i = 0; i < NSLOTS; i++) {
		if (slot_how[i] != BY_DIR)
			continue;
		l[i] = lt_import(src_dir(i),
				 slot_parent[i] < 0 ? NULL : l[slot_parent[i]]);
		snprintf(pl.ids[i], sizeof(pl.ids[i]), "%s",
			 lam_layer_id(l[i]));
	}
	for (int i = 0; i < NSLOTS; i++)
		lam_layer_free(l[i]);

	const char *env = getenv("LAMINA_TEST_SEED");
	uint64_t seed = env ? strtoull(env, NULL, 0) :
			      (uint64_t)time(NULL) ^ (uint64_t)getpid() << 20;
	fprintf(stderr,
		"random kills: seed %" PRIu64
		" (set LAMINA_TEST_SEED to repeat)\n",
		seed);
	rng_state = seed * 2654435761u + 1;

	char sdir[4096];
	snprintf(sdir, sizeof(sdir), "%s", lt_path("rstore"));
	lam_store_options o = LAM_STORE_OPTIONS_INIT;
	o.flags = LAM_STORE_CREATE;
	lam_store *s;
	LT_OK(lam_store_open(&s, sdir, &o));
	lam_store_free(s);

	double t0 = now();
	const int runs = 36;
	for (int run = 0; run < runs; run++) {
		/* Up to 250 ms: a round of the loop takes 80 ms or more,
		 * so kills land all over the first few. */
		unsigned int delay_us = (unsigned int)(rng_next() % 250000);
		pid_t pid = fork();
		ck_assert_int_ge(pid, 0);
		if (pid == 0)
			child_loop(sdir, run);
		usleep(delay_us);
		kill(pid, SIGKILL);
		int status;
		ck_assert_int_eq(waitpid(pid, &status, 0), pid);
		ck_assert_msg(WIFSIGNALED(status) &&
				      WTERMSIG(status) == SIGKILL,
			      "run %d (seed %" PRIu64 "): the loop child "
			      "exited by itself (status %#x)",
			      run, seed, status);

		char when[128];
		snprintf(when, sizeof(when),
			 "run %d, kill after %u us (seed %" PRIu64 ")", run,
			 delay_us, seed);
		int rc = lam_store_open(&s, sdir, NULL);
		ck_assert_msg(rc == 0, "%s: store does not open: %d %s", when,
			      rc, lam_error_last()->message);
		char tmp[4200];
		snprintf(tmp, sizeof(tmp), "%s/tmp", sdir);
		ck_assert_msg(dir_entries(tmp) == 0,
			      "%s: tmp/ not cleaned on open", when);
		assert_check_clean(s, when);
		rseen r;
		memset(&r, 0, sizeof(r));
		r.pl = &pl;
		LT_OK(lam_layer_foreach(s, on_rlayer, &r));
		LT_OK(lam_store_ref_foreach(s, on_rref, &r));
		ck_assert_msg(r.unknown[0] == '\0', "%s: unexpected %s", when,
			      r.unknown);
		for (int i = 0; i < NSLOTS; i++)
			if (r.present[i])
				assert_checkout(s, pl.ids[i], exp_dir(i), when);
		lam_store_free(s);
	}
	fprintf(stderr, "random kills: %d runs, %.1f s\n", runs, now() - t0);
}
END_TEST

/* ---- leftovers of killed writers --------------------------------------- */

/* What the killed child does. */
enum victim {
	KILL_IMPORT_DIR, /* imports the folder src */
	KILL_REF_WRITE,	 /* imports the folder src, then sets a ref */
	KILL_IMPORT_TAR, /* imports the tar file src, with worker threads */
};

/* In a child: open the store at lt_store_path, optionally import src, then
 * (kill counting from there) import src or set a ref, until crash point n
 * kills the process. */
static void __attribute__((noreturn))
child_killed_in(const char *src, enum victim what, uint64_t n)
{
	lam_store *s;
	int rc = lam_store_open(&s, lt_store_path, NULL);
	if (rc < 0)
		child_fail(rc, "open");
	lam_layer *l = NULL;
	if (what == KILL_IMPORT_TAR) {
		int fd = open(src, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			child_fail(-errno, "opening the tar");
		lam__test_crash_at(n);
		rc = lam_layer_import_tar(&l, s, fd, NULL, NULL);
	} else if (what == KILL_REF_WRITE) {
		rc = lam_layer_import_dir(&l, s, src, NULL, NULL);
		if (rc < 0)
			child_fail(rc, "import");
		lam__test_crash_at(n);
		rc = lam_store_ref_set(s, "victim", lam_layer_id(l), NULL);
	} else {
		lam__test_crash_at(n);
		rc = lam_layer_import_dir(&l, s, src, NULL, NULL);
	}
	child_fail(rc, "the crash point was not reached");
	_exit(1);
}

static void run_killed_child(const char *src, enum victim what, uint64_t n)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s", src);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0)
		child_killed_in(path, what, n);
	int status;
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
		      "status %#x", status);
}

/* lam_store_gc() promises to remove "leftovers of killed writers": a
 * long-running process (a daemon holding its store open) has no other way
 * to get rid of them, since lam_store_open() is the other place that
 * clears them. */
START_TEST(test_gc_removes_staging_folder_of_killed_writer)
{
	build_small(lt_path("t"), "x", 6);
	/* Killed at its third staged entry, well inside the import. */
	run_killed_child(lt_path("t"), KILL_IMPORT_DIR, 3);
	ck_assert_msg(dir_entries(lt_path("store/tmp")) > 0,
		      "the killed import left no staging folder: nothing to "
		      "test");
	LT_OK(lam_store_gc(lt_store, NULL));
	ck_assert_msg(dir_entries(lt_path("store/tmp")) == 0,
		      "lam_store_gc left %zu entries of a killed writer in "
		      "tmp/",
		      dir_entries(lt_path("store/tmp")));
	assert_check_clean(lt_store, "after gc");
}
END_TEST

/* The same for a tar import killed while its worker threads write: its
 * staging folder (the files the workers staged) goes, and so do the
 * objects they stored, which no layer uses. Each worker stores a file's
 * object before it stages the file, each with a crash point, so at least
 * half of the first 12 points are objects stored. */
START_TEST(test_gc_removes_leftovers_of_killed_tar_import)
{
	build_small(lt_path("t"), "x", 40);
	sh("tar --numeric-owner -C '%s' -cf '%s' .", lt_path("t"),
	   lt_path("t.tar"));
	run_killed_child(lt_path("t.tar"), KILL_IMPORT_TAR, 12);
	ck_assert_msg(dir_entries(lt_path("store/tmp")) > 0,
		      "the killed import left no staging folder: nothing to "
		      "test");
	size_t objects = dir_entries(lt_path("store/objects"));
	ck_assert_uint_ge(objects, 6);
	lam_gc_stats gs;
	LT_OK(lam_store_gc(lt_store, &gs));
	ck_assert_msg(dir_entries(lt_path("store/tmp")) == 0,
		      "lam_store_gc left %zu entries of a killed tar import "
		      "in tmp/",
		      dir_entries(lt_path("store/tmp")));
	ck_assert_uint_eq(gs.objects_removed, objects);
	ck_assert_uint_eq(dir_entries(lt_path("store/objects")), 0);
	assert_check_clean(lt_store, "after gc");
}
END_TEST

/* Counts the store root's entries named like a temp file. */
static size_t temp_files_in(const char *dir)
{
	DIR *d = opendir(dir);
	ck_assert_ptr_nonnull(d);
	size_t n = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL)
		n += strncmp(de->d_name, ".tmp-", 5) == 0;
	closedir(d);
	return n;
}

/* A ref write killed between writing its temp file and renaming it over
 * refs must leave the refs as they were (it does) and no litter behind
 * once the store is opened again and collected.

 * The temp file sits next to refs, in the store root; lam_store_open()
 * and lam_store_gc() remove such leftovers under the store lock. */
START_TEST(test_killed_ref_write_leaves_no_temp_file)
{
	build_small(lt_path("t"), "y", 2);
	/* Crash point 1 of the ref write: temp file written, not renamed. */
	run_killed_child(lt_path("t"), KILL_REF_WRITE, 1);
	lam_store *s;
	LT_OK(lam_store_open(&s, lt_store_path, NULL));
	char *id = NULL;
	LT_FAILS(lam_store_ref_get(&id, s, "victim"), LAM_ENOTFOUND, NULL);
	LT_OK(lam_store_gc(s, NULL));
	assert_check_clean(s, "after the killed ref write");
	lam_store_free(s);
	size_t left = temp_files_in(lt_store_path);
	ck_assert_msg(left == 0,
		      "%zu temp file(s) of a killed ref write remain in the "
		      "store root after open and gc",
		      left);
}
END_TEST

static Suite *crash_suite(void)
{
	Suite *s = suite_create("crash");
	TCase *tc = tcase_create("kill");
	tcase_add_checked_fixture(tc, lt_setup, lt_teardown);
	tcase_set_timeout(tc, 240);
	tcase_add_test(tc,
		       test_scenario_has_a_kill_point_in_every_durable_step);
	tcase_add_test(tc, test_kill_during_base_import_leaves_old_or_new);
	tcase_add_test(tc, test_kill_during_diff_import_leaves_old_or_new);
	tcase_add_test(tc,
		       test_kill_during_duplicate_import_keeps_existing_layer);
	tcase_add_test(tc, test_kill_during_ref_update_leaves_old_or_new_value);
	tcase_add_test(tc, test_kill_during_cascade_delete_leaves_no_orphan);
	tcase_add_test(tc, test_kill_during_gc_keeps_reachable_layers);
	tcase_add_test(tc, test_kill_during_tar_import_leaves_old_or_new);
	tcase_add_test(tc, test_kill_at_random_moments_keeps_store_valid);
	suite_add_tcase(s, tc);
	tc = tcase_create("leftovers");
	tcase_add_checked_fixture(tc, lt_setup, lt_teardown);
	tcase_set_timeout(tc, 240);
	tcase_add_test(tc, test_gc_removes_staging_folder_of_killed_writer);
	tcase_add_test(tc, test_gc_removes_leftovers_of_killed_tar_import);
	tcase_add_test(tc, test_killed_ref_write_leaves_no_temp_file);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	/* Whiteouts (0/0 devices), opaque folders (trusted.* xattrs), owners
	 * and devices in the trees need root. */
	if (!lt_is_root()) {
		fprintf(stderr, "crash: needs root, skipped\n");
		return 77;
	}
	return lt_main(crash_suite());
}
