/* SPDX-License-Identifier: MIT */
/* OCI layer tar streams: export, import, whiteout rules, round trips. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "support.h"
#include "tar-build.h"
#include "store/internal.h"

/* Every kind of entry a layer keeps, with the corners of the tar format:
 * names over 100 bytes, a long symlink target, sub-second times, xattrs,
 * hard links, a file over the in-memory limit of the object store. */
static void make_tree(const char *root)
{
	char p[8300], q[4096];
#define P(rel) (snprintf(p, sizeof(p), "%s/%s", root, rel), p)
	lt_write(P("etc/hostname"), "lamina\n");
	lt_write(P("etc/passwd"), "root:x:0:0::/root:/bin/sh\n");
	lt_write(P("bin/tool"), "#!/bin/sh\necho tool\n");
	chmod(P("bin/tool"), 04755);
	lt_write(P("data/empty"), "");
	size_t big = 5u << 20;
	char *b = malloc(big);
	for (size_t i = 0; i < big; i++)
		b[i] = (char)(i * 7 + i / 251);
	lt_write_bytes(P("data/big"), b, big);
	free(b);
	snprintf(q, sizeof(q), "%s/etc/hostname", root);
	lt_link(q, P("etc/hostname.link"));
	lt_link(q, P("bin/hostname.link2"));
	lt_symlink("/etc/passwd", P("etc/abs-link"));
	lt_symlink("../etc/hostname", P("bin/rel-link"));
	char longname[300];
	memset(longname, 'n', 180);
	longname[180] = '\0';
	snprintf(q, sizeof(q), "deep/%s/%s/file", longname, longname);
	lt_write(P(q), "deep\n");
	memset(longname, 't', 200);
	longname[200] = '\0';
	lt_symlink(longname, P("bin/long-target"));
	lt_mkdir(P("empty-dir"));
	chmod(P("empty-dir"), 0700);
	ck_assert_int_eq(mkfifo(P("fifo"), 0620), 0);
	ck_assert_int_eq(setxattr(P("etc/passwd"), "user.test", "v1", 2, 0), 0);
	ck_assert_int_eq(setxattr(P("data"), "user.dir.attr", "x\0y", 3, 0), 0);
	if (lt_is_root()) {
		lt_mkdir(P("dev"));
		ck_assert_int_eq(
			mknod(P("dev/null"), S_IFCHR | 0666, makedev(1, 3)), 0);
		ck_assert_int_eq(lchown(P("etc/passwd"), 1000, 3000000), 0);
		ck_assert_int_eq(lchown(P("bin/rel-link"), 7, 8), 0);
	}
	struct timespec ts[2] = {{1000000, 5}, {1234567, 891}};
	utimensat(AT_FDCWD, P("etc/passwd"), ts, AT_SYMLINK_NOFOLLOW);
	utimensat(AT_FDCWD, P("bin/rel-link"), ts, AT_SYMLINK_NOFOLLOW);
#undef P
}

static lam_layer *import_file(lam_store *s, const char *path, lam_layer *parent,
			      const lam_tar_import_options *o)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	lam_layer *l = NULL;
	LT_OK(lam_layer_import_tar(&l, s, fd, parent, o));
	close(fd);
	return l;
}

static void export_file(lam_layer *l, const char *path, unsigned int comp,
			char diff[72], char digest[72])
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	ck_assert_int_ge(fd, 0);
	lam_tar_options o = LAM_TAR_OPTIONS_INIT;
	o.compression = comp;
	LT_OK(lam_layer_export_tar(l, fd, &o, diff, digest));
	close(fd);
}

static lam_store *second_store(void)
{
	lam_store *s = NULL;
	lam_store_options o = LAM_STORE_OPTIONS_INIT;
	o.flags = LAM_STORE_CREATE;
	LT_OK(lam_store_open(&s, lt_path("store2"), &o));
	return s;
}

static void assert_checkout(lam_layer *l, const char *expect, bool times)
{
	static int n;
	const char *dest = lt_path("co-%d", n++);
	LT_OK(lam_layer_checkout(l, dest, NULL));
	char *d = lt_tree_diff(expect, dest, times);
	ck_assert_msg(d == NULL, "checkout differs: %s", d);
}

static void assert_store_clean(lam_store *s)
{
	size_t problems = 99;
	LT_OK(lam_store_check(s, 0, NULL, NULL, &problems));
	ck_assert_uint_eq(problems, 0);
}

START_TEST(test_roundtrip_keeps_chain_digests)
{
	make_tree(lt_path("base"));
	lam_layer *base = lt_import(lt_path("base"), NULL);
	/* A diff: a change, an addition, a whiteout, an opaque folder. */
	lt_write(lt_path("diff/etc/hostname"), "changed\n");
	lt_write(lt_path("diff/new/file"), "new\n");
	lt_whiteout(lt_path("diff/etc/passwd"));
	lt_mkdir(lt_path("diff/data"));
	lt_opaque(lt_path("diff/data"));
	lt_write(lt_path("diff/data/only"), "only this\n");
	lam_layer *top = lt_import(lt_path("diff"), base);
	static const unsigned int comps[] = {
		LAM_COMPRESS_NONE, LAM_COMPRESS_GZIP, LAM_COMPRESS_ZSTD};
	for (size_t c = 0; c < 3; c++) {
		lam_store *s2 = second_store();
		char d1[72], g1[72], d2[72], g2[72];
		export_file(base, lt_path("base.tar"), comps[c], d1, g1);
		export_file(top, lt_path("top.tar"), comps[c], d2, g2);
		ck_assert_int_eq(strncmp(d1, "sha256:", 7), 0);
		if (comps[c] == LAM_COMPRESS_NONE)
			ck_assert_str_eq(d1, g1);
		else
			ck_assert_str_ne(d1, g1);
		lam_tar_import_options o = LAM_TAR_IMPORT_OPTIONS_INIT;
		o.diff_id = d1;
		o.digest = g1;
		lam_layer *b2 = import_file(s2, lt_path("base.tar"), NULL, &o);
		o.diff_id = d2;
		o.digest = g2;
		lam_layer *t2 = import_file(s2, lt_path("top.tar"), b2, &o);
		ck_assert_str_eq(lam_layer_id(b2), lam_layer_id(base));
		ck_assert_str_eq(lam_layer_id(t2), lam_layer_id(top));
		ck_assert_uint_eq(lam_layer_size(b2), lam_layer_size(base));
		if (c == 0)
			assert_checkout(b2, lt_path("base"), true);
		assert_store_clean(s2);
		lam_layer_free(b2);
		lam_layer_free(t2);
		lam_store_free(s2);
		lt_rmtree(lt_path("store2"));
	}
	lam_layer_free(base);
	lam_layer_free(top);
}
END_TEST

START_TEST(test_export_is_deterministic)
{
	make_tree(lt_path("base"));
	lam_layer *base = lt_import(lt_path("base"), NULL);
	for (unsigned int c = 0; c < 3; c++) {
		char d1[72], g1[72], d2[72], g2[72];
		export_file(base, lt_path("a.tar"), c, d1, g1);
		export_file(base, lt_path("b.tar"), c, d2, g2);
		ck_assert_str_eq(d1, d2);
		ck_assert_str_eq(g1, g2);
		char cmd[9000];
		snprintf(cmd, sizeof(cmd), "cmp -s '%s' '%s'", lt_path("a.tar"),
			 lt_path("b.tar"));
		ck_assert_int_eq(lt_run(cmd), 0);
		/* The digest is the sha256 of the bytes written. */
		snprintf(cmd, sizeof(cmd),
			 "test \"sha256:$(sha256sum < '%s' | cut -d' ' -f1)\" "
			 "= '%s'",
			 lt_path("a.tar"), g1);
		ck_assert_int_eq(lt_run(cmd), 0);
	}
	lam_layer_free(base);
}
END_TEST

/* GNU tar reads what lamina writes, and lamina reads GNU tar's formats. */
START_TEST(test_gnu_tar_agrees)
{
	make_tree(lt_path("base"));
	lam_layer *base = lt_import(lt_path("base"), NULL);
	export_file(base, lt_path("base.tar"), LAM_COMPRESS_NONE, NULL, NULL);
	lt_mkdir(lt_path("x"));
	char cmd[9000];
	snprintf(cmd, sizeof(cmd),
		 "tar --xattrs --xattrs-include='*' --numeric-owner -xpf '%s' "
		 "-C '%s'",
		 lt_path("base.tar"), lt_path("x"));
	ck_assert_int_eq(lt_run(cmd), 0);
	char *d = lt_tree_diff(lt_path("base"), lt_path("x"), true);
	ck_assert_msg(d == NULL, "tar -x differs: %s", d);
	static const char *const formats[] = {"gnu", "pax", "ustar"};
	for (int f = 0; f < 3; f++) {
		const char *t = lt_path("gnu-%s.tar", formats[f]);
		/* ustar cannot hold the long names: a smaller tree. */
		snprintf(cmd, sizeof(cmd),
			 "tar --format=%s --xattrs --xattrs-include='user.*' "
			 "--numeric-owner -cf '%s' -C '%s' %s",
			 formats[f], t, lt_path("base"),
			 f == 2 ? "etc bin/tool data" : ".");
		ck_assert_int_eq(lt_run(cmd), 0);
		lam_layer *l = import_file(lt_store, t, NULL, NULL);
		if (f < 2) {
			assert_checkout(l, lt_path("base"), f == 1);
		}
		lam_layer_free(l);
	}
	assert_store_clean(lt_store);
	lam_layer_free(base);
}
END_TEST

/* The whiteout rules of image-spec layer.md, with the markers placed
 * where they are least convenient. */
START_TEST(test_whiteout_rules)
{
	lt_write(lt_path("base/a/x"), "x");
	lt_write(lt_path("base/a/y"), "y");
	lt_write(lt_path("base/b/z"), "z");
	lt_write(lt_path("base/c"), "c");
	lt_write(lt_path("base/d/old1"), "1");
	lt_write(lt_path("base/d/old2"), "2");
	lam_layer *base = lt_import(lt_path("base"), NULL);
	tb t;
	tb_init(&t);
	tb_dir(&t, "a/", 0755);
	tb_file(&t, "a/.wh.x", 0644, "", 0);
	/* A whiteout never hides its own layer's entry, before or after. */
	tb_file(&t, "b/new", 0644, "new", 3);
	tb_file(&t, ".wh.b", 0644, "", 0);
	tb_file(&t, "d/keep", 0644, "keep", 4);
	/* The opaque marker after a sibling still applies first. */
	tb_file(&t, "d/.wh..wh..opq", 0644, "", 0);
	tb_file(&t, "./.wh.c", 0644, "", 0);
	tb_end(&t);
	lam_layer *top = tb_import_ok(&t, lt_store, base, NULL);
	lt_write(lt_path("want/a/y"), "y");
	lt_write(lt_path("want/b/new"), "new");
	lt_write(lt_path("want/d/keep"), "keep");
	const char *co = lt_path("co-wh");
	LT_OK(lam_layer_checkout(top, co, NULL));
	char cmd[9000];
	snprintf(cmd, sizeof(cmd),
		 "cd '%s' && test \"$(find . | LC_ALL=C sort | tr '\\n' ' ')\" "
		 "= '. ./a ./a/y ./b ./b/new ./d ./d/keep '",
		 co);
	ck_assert_int_eq(lt_run(cmd), 0);
	/* A whiteout in a base layer has nothing to hide: dropped. */
	tb_init(&t);
	tb_file(&t, ".wh.ghost", 0644, "", 0);
	tb_file(&t, "f", 0644, "f", 1);
	tb_end(&t);
	lam_layer *b2 = tb_import_ok(&t, lt_store, NULL, NULL);
	ck_assert_uint_eq(lam_layer_entry_count(b2), 2);
	assert_store_clean(lt_store);
	lam_layer_free(b2);
	lam_layer_free(top);
	lam_layer_free(base);
}
END_TEST

/* Folders that members imply take the parent chain's metadata. */
START_TEST(test_implied_folders)
{
	lt_write(lt_path("base/etc/conf"), "c");
	chmod(lt_path("base/etc"), 0711);
	lam_layer *base = lt_import(lt_path("base"), NULL);
	tb t;
	tb_init(&t);
	tb_file(&t, "etc/new", 0600, "n", 1);
	tb_file(&t, "var/lib/x", 0600, "x", 1);
	tb_end(&t);
	lam_layer *top = tb_import_ok(&t, lt_store, base, NULL);
	const char *co = lt_path("co-impl");
	LT_OK(lam_layer_checkout(top, co, NULL));
	struct stat st;
	ck_assert_int_eq(stat(lt_path("co-impl/etc"), &st), 0);
	ck_assert_uint_eq(st.st_mode & 07777, 0711);
	ck_assert_int_eq(stat(lt_path("co-impl/var/lib"), &st), 0);
	ck_assert_uint_eq(st.st_mode & 07777, 0755);
	ck_assert(lt_exists(lt_path("co-impl/etc/conf")));
	lam_layer_free(top);
	lam_layer_free(base);
}
END_TEST

START_TEST(test_digests_are_checked_before_publishing)
{
	lt_write(lt_path("src/f"), "content");
	lam_layer *l = lt_import(lt_path("src"), NULL);
	char diff[72], dig[72];
	export_file(l, lt_path("l.tar.gz"), LAM_COMPRESS_GZIP, diff, dig);
	lam_store *s2 = second_store();
	static const char wrong[] = "sha256:"
				    "00000000000000000000000000000000"
				    "00000000000000000000000000000000";
	lam_tar_import_options o = LAM_TAR_IMPORT_OPTIONS_INIT;
	int fd = open(lt_path("l.tar.gz"), O_RDONLY | O_CLOEXEC);
	lam_layer *out = (lam_layer *)1;
	o.diff_id = wrong;
	LT_FAILS(lam_layer_import_tar(&out, s2, fd, NULL, &o), LAM_ECORRUPT,
		 "diff id mismatch");
	ck_assert_ptr_null(out);
	lseek(fd, 0, SEEK_SET);
	o.diff_id = diff;
	o.digest = wrong;
	LT_FAILS(lam_layer_import_tar(&out, s2, fd, NULL, &o), LAM_ECORRUPT,
		 "digest mismatch");
	lseek(fd, 0, SEEK_SET);
	o.digest = "sha256:xyz";
	LT_FAILS(lam_layer_import_tar(&out, s2, fd, NULL, &o), LAM_EINVAL,
		 "not a sha256 digest");
	lam_store_stats st;
	LT_OK(lam_store_stats_get(s2, &st));
	ck_assert_uint_eq(st.layers, 0);
	ck_assert_uint_eq(st.objects, 0);
	lseek(fd, 0, SEEK_SET);
	o.digest = dig;
	LT_OK(lam_layer_import_tar(&out, s2, fd, NULL, &o));
	ck_assert_str_eq(lam_layer_id(out), lam_layer_id(l));
	close(fd);
	lam_layer_free(out);
	lam_store_free(s2);
	lam_layer_free(l);
}
END_TEST

/* What the writer threads do is the calling thread's work done earlier:
 * the same stream gives the same layer either way, and a layer folder the
 * store check accepts. The stream puts the corners where threads meet
 * them: many files across folders, a folder whose member comes after its
 * files (its metadata must win), a folder given twice, a hard link whose
 * path sorts before its file's, a file over the in-memory limit, empty
 * files, a set-user-ID file. */
static void many_files_tar(tb *t)
{
	tb_init(t);
	char name[96], body[256];
	for (int d = 0; d < 40; d++) {
		for (int f = 0; f < 50; f++) {
			snprintf(name, sizeof(name), "d%02d/f%02d", d, f);
			int n = snprintf(body, sizeof(body), "%d/%d %0*d", d, f,
					 (d * 50 + f) % 200, 0);
			tb_file(t, name, 0644, f % 17 == 0 ? "" : body,
				f % 17 == 0 ? 0 : (size_t)n);
		}
		snprintf(name, sizeof(name), "d%02d/", d);
		tb_dir(t, name, 0750 + (unsigned)(d % 2) * 5);
	}
	tb_dir(t, "d03/", 0711);
	tb_file(t, "zz/src", 0640, "linked content", 14);
	tb_hardlink(t, "aa/link", "zz/src");
	tb_hardlink(t, "d07/link", "zz/src");
	size_t big = (5u << 20) + 3;
	char *b = malloc(big);
	for (size_t i = 0; i < big; i++)
		b[i] = (char)(i * 13 + i / 4093);
	tb_file(t, "big/blob", 0600, b, big);
	free(b);
	tb_file(t, "bin/su", 04755, "setuid", 6);
	tb_end(t);
}

START_TEST(test_writer_threads_change_nothing)
{
	tb t;
	many_files_tar(&t);
	lam_tar_import_options one = LAM_TAR_IMPORT_OPTIONS_INIT;
	one.flags = LAM_TAR_ONE_THREAD;
	lam_layer *a = NULL, *b = NULL;
	LT_OK(tb_import(&t, lt_store, NULL, NULL, &a));
	lam_store *s2 = second_store();
	LT_OK(tb_import(&t, s2, NULL, &one, &b));
	ck_assert_str_eq(lam_layer_id(a), lam_layer_id(b));
	ck_assert_uint_eq(lam_layer_size(a), lam_layer_size(b));
	assert_store_clean(lt_store);
	assert_store_clean(s2);
	/* Both checkouts agree with GNU tar's reading of the stream. */
	lt_write_bytes(lt_path("many.tar"), t.d, t.len);
	char cmd[9000];
	lt_mkdir(lt_path("gnu"));
	snprintf(cmd, sizeof(cmd), "tar --numeric-owner -xpf '%s' -C '%s'",
		 lt_path("many.tar"), lt_path("gnu"));
	ck_assert_int_eq(lt_run(cmd), 0);
	assert_checkout(a, lt_path("gnu"), true);
	assert_checkout(b, lt_path("gnu"), true);
	struct stat st;
	ck_assert_int_eq(stat(lt_path("co-0/d03"), &st), 0);
	ck_assert_uint_eq(st.st_mode & 07777, 0711);
	ck_assert_int_eq(stat(lt_path("co-0/aa/link"), &st), 0);
	ck_assert_uint_eq(st.st_nlink, 3);
	lam_layer_free(a);
	lam_layer_free(b);
	lam_store_free(s2);
	free(t.d);
}
END_TEST

static void assert_nothing_left(lam_store *s)
{
	lam_store_stats st;
	LT_OK(lam_store_stats_get(s, &st));
	ck_assert_uint_eq(st.layers, 0);
	ck_assert_uint_eq(st.objects, 0);
	tb_assert_tmp_empty(lam_store_path(s));
	assert_store_clean(s);
}

/* Objects are shared by content, and a hash match is trusted only once
 * the bytes agree, also after a run of new files (when the writers skip
 * the lookup and let the link find an existing object): a file repeating
 * an earlier one's content adds no object, and one whose hash is taken by
 * different bytes gets an object of its own. */
START_TEST(test_objects_dedup_and_collide_after_new_runs)
{
	tb t;
	tb_init(&t);
	char name[64], body[64];
	static const char victim[] = "the real bytes of this file";
	for (int i = 0; i < 60; i++) {
		int n = snprintf(body, sizeof(body), "unique content %d", i);
		snprintf(name, sizeof(name), "new/f%02d", i);
		tb_file(&t, name, 0644, body, (size_t)n);
		/* After a run of new files: a content whose object name a
		 * decoy holds (planted below), and later repeats of earlier
		 * contents. */
		if (i == 30)
			tb_file(&t, "victim", 0644, victim, sizeof(victim) - 1);
	}
	for (int i = 0; i < 5; i++) {
		int n = snprintf(body, sizeof(body), "unique content %d", i);
		snprintf(name, sizeof(name), "again/f%02d", i);
		tb_file(&t, name, 0644, body, (size_t)n);
	}
	tb_end(&t);
	lam__objid id;
	memset(&id, 0, sizeof(id));
	lam__hash128(&id.digest, victim, sizeof(victim) - 1);
	char obj[48];
	lam__object_name(obj, &id);
	const char *decoy = lt_path("store/objects/%s", obj);
	lt_write(decoy, "the fake bytes of this file");
	chmod(decoy, 0444);
	lam_layer *l = tb_import_ok(&t, lt_store, NULL, NULL);
	lam_store_stats st;
	LT_OK(lam_store_stats_get(lt_store, &st));
	/* 60 contents, the victim's own (a variant), and the decoy. */
	ck_assert_uint_eq(st.objects, 62);
	ck_assert(lt_exists(lt_path("store/objects/%s.1", obj)));
	LT_OK(lam_layer_checkout(l, lt_path("co"), NULL));
	size_t len = 0;
	char *got = lt_read(lt_path("co/victim"), &len);
	ck_assert_uint_eq(len, sizeof(victim) - 1);
	ck_assert_int_eq(memcmp(got, victim, len), 0);
	free(got);
	got = lt_read(lt_path("co/again/f03"), NULL);
	ck_assert_str_eq(got, "unique content 3");
	free(got);
	lam_layer_free(l);
}
END_TEST

/* A stream that fails late, with writers busy: nothing stays behind. */
START_TEST(test_late_failure_takes_everything_back)
{
	for (int mode = 0; mode < 2; mode++) {
		lam_store *s2 = second_store();
		lam_tar_import_options o = LAM_TAR_IMPORT_OPTIONS_INIT;
		o.flags = mode ? LAM_TAR_ONE_THREAD : 0;
		tb t;
		many_files_tar(&t);
		/* Cut inside the big file's data. */
		t.len -= 3u << 20;
		lam_layer *out = (lam_layer *)1;
		LT_FAILS(tb_import(&t, s2, NULL, &o, &out), LAM_ECORRUPT,
			 "truncated");
		ck_assert_ptr_null(out);
		assert_nothing_left(s2);
		/* A hostile member after two thousand good ones. */
		free(t.d);
		many_files_tar(&t);
		t.len -= 1024; /* the end marker */
		tb_file(&t, "../escape", 0644, "x", 1);
		tb_end(&t);
		LT_FAILS(tb_import(&t, s2, NULL, &o, &out), LAM_EUNSAFE,
			 "leads out");
		assert_nothing_left(s2);
		free(t.d);
		lam_store_free(s2);
		lt_rmtree(lt_path("store2"));
	}
}
END_TEST

/* A writer's failure (here the disk filling up) is the caller's error,
 * with its reason, and the store is as it was. */
START_TEST(test_writer_failure_reaches_the_caller)
{
	if (!lt_is_root())
		return;
	const char *mnt = lt_path("small");
	lt_mkdir(mnt);
	char cmd[4200];
	snprintf(cmd, sizeof(cmd), "mount -t tmpfs -o size=3m lamina-test '%s'",
		 mnt);
	if (lt_run(cmd) != 0)
		return;
	lam_store *s2 = NULL;
	lam_store_options so = LAM_STORE_OPTIONS_INIT;
	so.flags = LAM_STORE_CREATE;
	int rc = lam_store_open(&s2, lt_path("small/store"), &so);
	tb t;
	tb_init(&t);
	char name[64], *body = malloc(64u << 10);
	for (int i = 0; i < 200; i++) {
		memset(body, 'a' + i % 26, 64u << 10);
		snprintf(body, 32, "%d", i);
		snprintf(name, sizeof(name), "d%d/f%03d", i % 7, i);
		tb_file(&t, name, 0644, body, 64u << 10);
	}
	tb_end(&t);
	free(body);
	lam_layer *out = (lam_layer *)1;
	int irc = rc == 0 ? tb_import(&t, s2, NULL, NULL, &out) : rc;
	int err = lam_error_last()->os_errno;
	char msg[1024];
	snprintf(msg, sizeof(msg), "%s", lam_error_last()->message);
	if (rc == 0) {
		lam_store_stats st;
		LT_OK(lam_store_stats_get(s2, &st));
		ck_assert_uint_eq(st.layers, 0);
		size_t problems = 9;
		LT_OK(lam_store_check(s2, 0, NULL, NULL, &problems));
		ck_assert_uint_eq(problems, 0);
		lam_store_free(s2);
	}
	snprintf(cmd, sizeof(cmd), "umount '%s'", mnt);
	ck_assert_int_eq(lt_run(cmd), 0);
	free(t.d);
	LT_OK(rc);
	ck_assert_int_eq(irc, LAM_EIO);
	ck_assert_int_eq(err, ENOSPC);
	ck_assert_ptr_null(out);
	ck_assert_msg(strstr(msg, "d") != NULL, "message: %s", msg);
}
END_TEST

static int cancel_cb(uint64_t done, uint64_t total, void *ud)
{
	(void)done;
	(void)total;
	int *calls = ud;
	return ++*calls >= 1 ? 42 : 0;
}

START_TEST(test_progress_can_stop_an_import)
{
	char *b = calloc(1, 12u << 20);
	lt_write_bytes(lt_path("src/big"), b, 12u << 20);
	free(b);
	lam_layer *l = lt_import(lt_path("src"), NULL);
	export_file(l, lt_path("l.tar"), LAM_COMPRESS_NONE, NULL, NULL);
	lam_store *s2 = second_store();
	int calls = 0;
	lam_tar_import_options o = LAM_TAR_IMPORT_OPTIONS_INIT;
	o.progress = cancel_cb;
	o.userdata = &calls;
	int fd = open(lt_path("l.tar"), O_RDONLY | O_CLOEXEC);
	lam_layer *out = NULL;
	ck_assert_int_eq(lam_layer_import_tar(&out, s2, fd, NULL, &o), 42);
	ck_assert_ptr_null(out);
	close(fd);
	assert_store_clean(s2);
	lam_store_free(s2);
	lam_layer_free(l);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("tar");
	TCase *tc = tcase_create("tar");
	tcase_add_checked_fixture(tc, lt_setup, lt_teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_roundtrip_keeps_chain_digests);
	tcase_add_test(tc, test_export_is_deterministic);
	tcase_add_test(tc, test_gnu_tar_agrees);
	tcase_add_test(tc, test_whiteout_rules);
	tcase_add_test(tc, test_implied_folders);
	tcase_add_test(tc, test_digests_are_checked_before_publishing);
	tcase_add_test(tc, test_progress_can_stop_an_import);
	tcase_add_test(tc, test_writer_threads_change_nothing);
	tcase_add_test(tc, test_late_failure_takes_everything_back);
	tcase_add_test(tc, test_objects_dedup_and_collide_after_new_runs);
	tcase_add_test(tc, test_writer_failure_reaches_the_caller);
	suite_add_tcase(s, tc);
	if (lt_archive_missing())
		return 77;
	return lt_main(s);
}
