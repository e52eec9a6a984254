/* SPDX-License-Identifier: MIT */
/* Layers: import from folders, digests, the graph, checkout. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "support.h"

/* A tree with every kind of entry lamina keeps. */
static void make_rich_tree(const char *root)
{
	char p[4096];
#define P(rel) (snprintf(p, sizeof(p), "%s/%s", root, rel), p)
	lt_write(P("etc/hostname"), "lamina\n");
	lt_write(P("etc/passwd"), "root:x:0:0::/root:/bin/sh\n");
	lt_write(P("bin/tool"), "#!/bin/sh\necho tool\n");
	chmod(P("bin/tool"), 04755);
	lt_write(P("data/empty"), "");
	char big[100000];
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (char)(i * 7 + i / 251);
	lt_write_bytes(P("data/big"), big, sizeof(big));
	lt_write(P("data/same1"), "same content");
	lt_write(P("data/same2"), "same content");
	char a[4096];
	snprintf(a, sizeof(a), "%s/etc/hostname", root);
	lt_link(a, P("etc/hostname.link"));
	lt_link(a, P("bin/hostname.link2"));
	lt_symlink("/etc/passwd", P("etc/abs-link"));
	lt_symlink("../etc/hostname", P("bin/rel-link"));
	lt_symlink("dangling/target", P("bin/dangling"));
	lt_mkdir(P("empty-dir"));
	chmod(P("empty-dir"), 0700);
	ck_assert_int_eq(mkfifo(P("run/fifo"), 0620) == 0 || errno == ENOENT,
			 1);
	lt_mkdir(P("run"));
	ck_assert_int_eq(mkfifo(P("run/fifo"), 0620), 0);
	ck_assert_int_eq(
		setxattr(P("etc/passwd"), "user.lamina.test", "v1", 2, 0), 0);
	ck_assert_int_eq(setxattr(P("data"), "user.dir.attr", "x\0y", 3, 0), 0);
	if (lt_is_root()) {
		lt_mkdir(P("dev"));
		ck_assert_int_eq(
			mknod(P("dev/null"), S_IFCHR | 0666, makedev(1, 3)), 0);
		ck_assert_int_eq(mknod(P("dev/loop9"), S_IFBLK | 0660,
				       makedev(7, 9)),
				 0);
		ck_assert_int_eq(lchown(P("etc/passwd"), 1000, 1001), 0);
		ck_assert_int_eq(lchown(P("bin/rel-link"), 7, 8), 0);
		ck_assert_int_eq(setxattr(P("bin/tool"), "trusted.lamina", "t",
					  1, 0),
				 0);
	}
	struct timespec ts[2] = {{1000000, 5}, {1234567, 891}};
	utimensat(AT_FDCWD, P("etc/passwd"), ts, AT_SYMLINK_NOFOLLOW);
	utimensat(AT_FDCWD, P("bin/rel-link"), ts, AT_SYMLINK_NOFOLLOW);
#undef P
}

static void assert_checkout_equals(lam_layer *l, const char *expect)
{
	static int n;
	const char *dest = lt_path("checkout-%d", n++);
	LT_OK(lam_layer_checkout(l, dest, NULL));
	char *d = lt_tree_diff(expect, dest, true);
	ck_assert_msg(d == NULL, "checkout differs: %s", d);
}

/* Everything in the store except tmp/, as one string, to show a failed
 * call changed nothing. */
static char *store_listing(void)
{
	char cmd[16384];
	snprintf(cmd, sizeof(cmd),
		 "cd '%s' && find . -path ./tmp -prune -o -printf '%%p %%y "
		 "%%s %%m\\n' | LC_ALL=C sort > '%s/listing' && cat refs >> "
		 "'%s/listing'",
		 lt_store_path, lt_dir, lt_dir);
	ck_assert_int_eq(lt_run(cmd), 0);
	char path[4200];
	snprintf(path, sizeof(path), "%s/listing", lt_dir);
	return lt_read(path, NULL);
}

START_TEST(test_import_keeps_every_entry_kind)
{
	make_rich_tree(lt_path("src"));
	lam_layer *l = lt_import(lt_path("src"), NULL);
	ck_assert_uint_eq(lam_layer_depth(l), 1);
	ck_assert_ptr_null(lam_layer_parent_id(l));
	ck_assert_uint_eq(strlen(lam_layer_id(l)), LAM_DIGEST_HEX_LEN);
	ck_assert_uint_eq(strlen(lam_layer_diff_digest(l)), 32);
	ck_assert_uint_eq(strlen(lam_layer_uuid(l)), 36);
	ck_assert_uint_gt(lam_layer_entry_count(l), 15);
	ck_assert_int_gt(lam_layer_created(l), 1700000000);
	/* hostname (7 bytes) counts once for its three links. */
	ck_assert_uint_eq(lam_layer_size(l),
			  7 + 26 + 20 + 100000 + 12 + 12 + 0);
	assert_checkout_equals(l, lt_path("src"));
	lam_layer_free(l);
}
END_TEST

START_TEST(test_same_content_same_parent_is_the_same_layer)
{
	make_rich_tree(lt_path("a"));
	make_rich_tree(lt_path("b"));
	/* Same names, bytes and metadata: copy the times too. */
	ck_assert_int_eq(lt_run("true"), 0);
	char cmd[9000];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s' && cp -a '%s' '%s'",
		 lt_path("b"), lt_path("a"), lt_path("b"));
	ck_assert_int_eq(lt_run(cmd), 0);
	lam_layer *a = lt_import(lt_path("a"), NULL);
	lam_store_stats before;
	LT_OK(lam_store_stats_get(lt_store, &before));
	lam_layer *b = lt_import(lt_path("b"), NULL);
	ck_assert_str_eq(lam_layer_id(a), lam_layer_id(b));
	ck_assert_str_eq(lam_layer_diff_digest(a), lam_layer_diff_digest(b));
	/* The existing layer (and its UUID) is returned. */
	ck_assert_str_eq(lam_layer_uuid(a), lam_layer_uuid(b));
	lam_store_stats after;
	LT_OK(lam_store_stats_get(lt_store, &after));
	ck_assert_uint_eq(after.layers, 1);
	ck_assert_uint_eq(after.objects, before.objects);
	ck_assert_uint_eq(after.stored_bytes, before.stored_bytes);
	lam_layer_free(a);
	lam_layer_free(b);
}
END_TEST

START_TEST(test_different_content_or_parent_gives_different_digests)
{
	lt_write(lt_path("a/f"), "one");
	lt_write(lt_path("b/f"), "two");
	lam_layer *a = lt_import(lt_path("a"), NULL);
	lam_layer *b = lt_import(lt_path("b"), NULL);
	ck_assert_str_ne(lam_layer_id(a), lam_layer_id(b));
	/* The same diff on two parents: same diff digest, other chain. */
	lt_write(lt_path("d/g"), "diff");
	lam_layer *da = lt_import(lt_path("d"), a);
	lam_layer *db = lt_import(lt_path("d"), b);
	ck_assert_str_eq(lam_layer_diff_digest(da), lam_layer_diff_digest(db));
	ck_assert_str_ne(lam_layer_id(da), lam_layer_id(db));
	/* A metadata-only change changes the digest. */
	chmod(lt_path("a/f"), 0600);
	lam_layer *a2 = lt_import(lt_path("a"), NULL);
	ck_assert_str_ne(lam_layer_id(a), lam_layer_id(a2));
	lam_layer_free(a);
	lam_layer_free(b);
	lam_layer_free(da);
	lam_layer_free(db);
	lam_layer_free(a2);
}
END_TEST

START_TEST(test_identical_contents_are_stored_once_across_layers)
{
	char buf[50000];
	memset(buf, 'x', sizeof(buf));
	lt_write_bytes(lt_path("a/one"), buf, sizeof(buf));
	lt_write_bytes(lt_path("a/two"), buf, sizeof(buf));
	lt_write_bytes(lt_path("b/deep/three"), buf, sizeof(buf));
	lam_layer *a = lt_import(lt_path("a"), NULL);
	lam_layer *b = lt_import(lt_path("b"), a);
	lam_store_stats st;
	LT_OK(lam_store_stats_get(lt_store, &st));
	ck_assert_uint_eq(st.objects, 1);
	ck_assert_uint_eq(st.stored_bytes, sizeof(buf));
	ck_assert_uint_eq(st.logical_bytes, 3 * sizeof(buf));
	ck_assert_uint_eq(st.files, 3);
	/* Sharing is invisible: each file keeps its own link count. */
	const char *dest = lt_path("co");
	LT_OK(lam_layer_checkout(b, dest, NULL));
	struct stat s1, s2;
	ck_assert_int_eq(stat(lt_path("co/one"), &s1), 0);
	ck_assert_int_eq(stat(lt_path("co/deep/three"), &s2), 0);
	ck_assert_uint_eq(s1.st_nlink, 1);
	ck_assert_uint_ne(s1.st_ino, s2.st_ino);
	/* The layer folders hold separate metadata-only inodes too. */
	char p[8192];
	snprintf(p, sizeof(p), "%s/layers/%s/fs/one", lt_store_path,
		 lam_layer_id(a));
	ck_assert_int_eq(stat(p, &s1), 0);
	ck_assert_uint_eq(s1.st_nlink, 1);
	ck_assert_int_eq(s1.st_size, (off_t)sizeof(buf));
	ck_assert_int_le(s1.st_blocks, 8); /* sparse: no data of its own */
	lam_layer_free(a);
	lam_layer_free(b);
}
END_TEST

START_TEST(test_whiteouts_and_opaque_dirs_apply_through_the_chain)
{
	if (!lt_is_root())
		return; /* whiteouts need mknod; covered as root in CI */
	lt_write(lt_path("base/keep"), "keep");
	lt_write(lt_path("base/gone"), "gone");
	lt_write(lt_path("base/dir/old1"), "1");
	lt_write(lt_path("base/dir/sub/old2"), "2");
	lt_write(lt_path("base/wdir/x"), "x");
	lt_write(lt_path("base/replace"), "file");
	lam_layer *base = lt_import(lt_path("base"), NULL);
	lt_whiteout(lt_path("d1/gone"));
	lt_whiteout(lt_path("d1/wdir"));
	lt_opaque(lt_path("d1/dir"));
	lt_write(lt_path("d1/dir/new"), "new");
	lt_mkdir(lt_path("d1/replace"));
	lt_write(lt_path("d1/replace/inner"), "inner");
	lam_layer *d1 = lt_import(lt_path("d1"), base);
	ck_assert_uint_eq(lam_layer_depth(d1), 2);
	ck_assert_str_eq(lam_layer_parent_id(d1), lam_layer_id(base));
	/* A third layer brings back a whited-out name. */
	lt_write(lt_path("d2/gone"), "back");
	lam_layer *d2 = lt_import(lt_path("d2"), d1);

	lt_write(lt_path("expect1/keep"), "keep");
	lt_write(lt_path("expect1/dir/new"), "new");
	lt_write(lt_path("expect1/replace/inner"), "inner");
	char cmd[9000];
	snprintf(cmd, sizeof(cmd),
		 "touch -r '%s' '%s' && touch -r '%s' '%s' && touch -r '%s' "
		 "'%s'",
		 lt_path("base/keep"), lt_path("expect1/keep"),
		 lt_path("d1/dir/new"), lt_path("expect1/dir/new"),
		 lt_path("d1/replace/inner"), lt_path("expect1/replace/inner"));
	ck_assert_int_eq(lt_run(cmd), 0);
	const char *co = lt_path("co1");
	LT_OK(lam_layer_checkout(d1, co, NULL));
	char *d = lt_tree_diff(lt_path("expect1"), co, true);
	ck_assert_msg(d == NULL, "%s", d);
	const char *co2 = lt_path("co2");
	LT_OK(lam_layer_checkout(d2, co2, NULL));
	char *back = lt_read(lt_path("co2/gone"), NULL);
	ck_assert_str_eq(back, "back");
	free(back);
	ck_assert(!lt_exists(lt_path("co2/dir/old1")));
	ck_assert(!lt_exists(lt_path("co2/wdir")));
	ck_assert(lt_exists(lt_path("co2/keep")));
	lam_layer_free(base);
	lam_layer_free(d1);
	lam_layer_free(d2);
}
END_TEST

START_TEST(test_layer_folders_mount_as_overlayfs_lowerdirs)
{
	if (!lt_is_root())
		return;
	make_rich_tree(lt_path("base"));
	lam_layer *base = lt_import(lt_path("base"), NULL);
	lt_whiteout(lt_path("d/etc/passwd"));
	lt_opaque(lt_path("d/data"));
	lt_write(lt_path("d/data/fresh"), "fresh");
	lt_write(lt_path("d/bin/tool"), "changed");
	lam_layer *top = lt_import(lt_path("d"), base);
	const char *co = lt_path("co");
	LT_OK(lam_layer_checkout(top, co, NULL));
	const char *mnt = lt_path("mnt");
	lt_mkdir(mnt);
	char opts[16384];
	snprintf(opts, sizeof(opts),
		 "lowerdir=%s/layers/%s/fs:%s/layers/%s/fs::%s/objects,"
		 "metacopy=on,redirect_dir=follow",
		 lt_store_path, lam_layer_id(top), lt_store_path,
		 lam_layer_id(base), lt_store_path);
	if (mount("overlay", mnt, "overlay", MS_RDONLY, opts) < 0) {
		fprintf(stderr, "overlay mount unavailable: %s\n",
			strerror(errno));
		lam_layer_free(base);
		lam_layer_free(top);
		return;
	}
	char *d = lt_tree_diff(co, mnt, true);
	umount(mnt);
	ck_assert_msg(d == NULL, "kernel view differs from checkout: %s", d);
	lam_layer_free(base);
	lam_layer_free(top);
}
END_TEST

START_TEST(test_import_never_follows_symlinks_out_of_the_source)
{
	lt_write(lt_path("outside/secret"), "secret");
	lt_mkdir(lt_path("src"));
	lt_symlink(lt_path("outside"), lt_path("src/escape-dir"));
	lt_symlink("../outside/secret", lt_path("src/escape-file"));
	lam_layer *l = lt_import(lt_path("src"), NULL);
	ck_assert_uint_eq(lam_layer_entry_count(l), 3);
	ck_assert_uint_eq(lam_layer_size(l), 0);
	const char *co = lt_path("co");
	LT_OK(lam_layer_checkout(l, co, NULL));
	struct stat st;
	ck_assert_int_eq(lstat(lt_path("co/escape-dir"), &st), 0);
	ck_assert(S_ISLNK(st.st_mode));
	lam_layer_free(l);
}
END_TEST

START_TEST(test_open_by_ref_or_unique_prefix)
{
	lt_write(lt_path("a/f"), "a");
	lam_layer *a = lt_import(lt_path("a"), NULL);
	LT_OK(lam_store_ref_set(lt_store, "images/a:latest", lam_layer_id(a),
				NULL));
	lam_layer *x;
	LT_OK(lam_layer_open(&x, lt_store, "images/a:latest"));
	ck_assert_str_eq(lam_layer_id(x), lam_layer_id(a));
	lam_layer_free(x);
	char prefix[9];
	memcpy(prefix, lam_layer_id(a), 8);
	prefix[8] = '\0';
	LT_OK(lam_layer_open(&x, lt_store, prefix));
	ck_assert_str_eq(lam_layer_id(x), lam_layer_id(a));
	lam_layer_free(x);
	LT_OK(lam_layer_open(&x, lt_store, lam_layer_id(a)));
	lam_layer_free(x);
	LT_FAILS(lam_layer_open(&x, lt_store, "abc"), LAM_ENOTFOUND, "abc");
	ck_assert_ptr_null(x);
	LT_FAILS(lam_layer_open(&x, lt_store, "nosuchref"), LAM_ENOTFOUND,
		 "nosuchref");
	/* Make an ambiguous prefix: import until two ids share a digit. */
	char first[LAM_DIGEST_HEX_LEN + 1];
	snprintf(first, sizeof(first), "%s", lam_layer_id(a));
	lam_layer *other = NULL;
	for (int i = 0; i < 200; i++) {
		char content[32];
		snprintf(content, sizeof(content), "%d", i);
		lt_write(lt_path("v%d/f", i), content);
		other = lt_import(lt_path("v%d", i), NULL);
		if (lam_layer_id(other)[0] == first[0] &&
		    lam_layer_id(other)[1] == first[1] &&
		    lam_layer_id(other)[2] == first[2] &&
		    lam_layer_id(other)[3] == first[3])
			break;
		if (lam_layer_id(other)[0] == first[0])
			break;
		lam_layer_free(other);
		other = NULL;
	}
	ck_assert_ptr_nonnull(other);
	char amb[5];
	size_t common = 0;
	while (lam_layer_id(other)[common] == first[common])
		common++;
	if (common >= 4) {
		memcpy(amb, first, 4);
		amb[4] = '\0';
		LT_FAILS(lam_layer_open(&x, lt_store, amb), LAM_EAMBIGUOUS,
			 amb);
	}
	lam_layer_free(other);
	lam_layer_free(a);
}
END_TEST

static int collect_ids(lam_layer *l, void *ud)
{
	char *buf = ud;
	strcat(buf, lam_layer_id(l));
	strcat(buf, "\n");
	return 0;
}

static int stop_at_first(lam_layer *l, void *ud)
{
	(void)l;
	(*(int *)ud)++;
	return 42;
}

static int collect_refs(const char *name, const char *id, void *ud)
{
	(void)id;
	strcat(ud, name);
	strcat(ud, ";");
	return 0;
}

START_TEST(test_graph_parent_children_ancestors_refs)
{
	lt_write(lt_path("b/f"), "base");
	lam_layer *base = lt_import(lt_path("b"), NULL);
	lt_write(lt_path("c1/f"), "c1");
	lt_write(lt_path("c2/f"), "c2");
	lam_layer *c1 = lt_import(lt_path("c1"), base);
	lam_layer *c2 = lt_import(lt_path("c2"), base);
	lt_write(lt_path("g/f"), "g");
	lam_layer *g = lt_import(lt_path("g"), c1);
	ck_assert_uint_eq(lam_layer_depth(g), 3);

	lam_layer *p;
	LT_OK(lam_layer_parent(&p, g));
	ck_assert_str_eq(lam_layer_id(p), lam_layer_id(c1));
	lam_layer_free(p);
	LT_OK(lam_layer_parent(&p, base));
	ck_assert_ptr_null(p);

	char buf[4096] = "";
	LT_OK(lam_layer_children_foreach(base, collect_ids, buf));
	char expect[4096];
	const char *lo = strcmp(lam_layer_id(c1), lam_layer_id(c2)) < 0 ?
				 lam_layer_id(c1) :
				 lam_layer_id(c2);
	const char *hi = lo == lam_layer_id(c1) ? lam_layer_id(c2) :
						  lam_layer_id(c1);
	snprintf(expect, sizeof(expect), "%s\n%s\n", lo, hi);
	ck_assert_str_eq(buf, expect);

	buf[0] = '\0';
	LT_OK(lam_layer_ancestors_foreach(g, collect_ids, buf));
	snprintf(expect, sizeof(expect), "%s\n%s\n%s\n", lam_layer_id(g),
		 lam_layer_id(c1), lam_layer_id(base));
	ck_assert_str_eq(buf, expect);

	int calls = 0;
	ck_assert_int_eq(lam_layer_ancestors_foreach(g, stop_at_first, &calls),
			 42);
	ck_assert_int_eq(calls, 1);

	buf[0] = '\0';
	LT_OK(lam_layer_foreach(lt_store, collect_ids, buf));
	ck_assert_uint_eq(strlen(buf), 4 * 33);

	LT_OK(lam_store_ref_set(lt_store, "z", lam_layer_id(g), NULL));
	LT_OK(lam_store_ref_set(lt_store, "a", lam_layer_id(g), NULL));
	LT_OK(lam_store_ref_set(lt_store, "m", lam_layer_id(base), NULL));
	buf[0] = '\0';
	LT_OK(lam_layer_refs_foreach(g, collect_refs, buf));
	ck_assert_str_eq(buf, "a;z;");

	lam_layer *mb;
	LT_OK(lam_layer_merge_base(&mb, g, c2));
	ck_assert_str_eq(lam_layer_id(mb), lam_layer_id(base));
	lam_layer_free(mb);
	LT_OK(lam_layer_merge_base(&mb, g, c1));
	ck_assert_str_eq(lam_layer_id(mb), lam_layer_id(c1));
	lam_layer_free(mb);
	lt_write(lt_path("o/f"), "other base");
	lam_layer *o = lt_import(lt_path("o"), NULL);
	LT_OK(lam_layer_merge_base(&mb, g, o));
	ck_assert_ptr_null(mb);

	char *dot;
	LT_OK(lam_store_graph_dot(&dot, lt_store));
	ck_assert_ptr_nonnull(strstr(dot, "digraph"));
	char edge[200];
	snprintf(edge, sizeof(edge), "\"%s\" -> \"%s\"", lam_layer_id(g),
		 lam_layer_id(c1));
	ck_assert_ptr_nonnull(strstr(dot, edge));
	snprintf(edge, sizeof(edge), "%.12s", lam_layer_id(g));
	ck_assert_ptr_nonnull(strstr(dot, edge));
	ck_assert_ptr_nonnull(strstr(dot, "\\na\\nz"));
	lam_free(dot);
	lam_layer_free(o);
	lam_layer_free(base);
	lam_layer_free(c1);
	lam_layer_free(c2);
	lam_layer_free(g);
}
END_TEST

START_TEST(test_delete_is_refused_while_depended_on_unless_cascading)
{
	lt_write(lt_path("b/f"), "base");
	lam_layer *base = lt_import(lt_path("b"), NULL);
	lt_write(lt_path("c/f"), "child");
	lam_layer *c = lt_import(lt_path("c"), base);
	LT_OK(lam_store_ref_set(lt_store, "child", lam_layer_id(c), NULL));
	LT_FAILS(lam_layer_delete(base, 0), LAM_EBUSY, lam_layer_id(c));
	LT_FAILS(lam_layer_delete(c, 0), LAM_EBUSY, "child");
	lam_layer *x;
	LT_OK(lam_layer_open(&x, lt_store, lam_layer_id(base)));
	lam_layer_free(x);
	LT_OK(lam_layer_delete(base, LAM_DELETE_CASCADE));
	LT_FAILS(lam_layer_open(&x, lt_store, lam_layer_id(c)), LAM_ENOTFOUND,
		 NULL);
	char *id;
	LT_FAILS(lam_store_ref_get(&id, lt_store, "child"), LAM_ENOTFOUND,
		 "child");
	LT_FAILS(lam_layer_delete(base, 0), LAM_ENOTFOUND, NULL);
	lam_gc_stats gs;
	LT_OK(lam_store_gc(lt_store, &gs));
	ck_assert_uint_eq(gs.objects_removed, 2);
	size_t problems;
	LT_OK(lam_store_check(lt_store, 0, NULL, NULL, &problems));
	ck_assert_uint_eq(problems, 0);
	lam_layer_free(base);
	lam_layer_free(c);
}
END_TEST

START_TEST(test_import_onto_a_deleted_parent_fails_and_changes_nothing)
{
	lt_write(lt_path("b/f"), "base");
	lam_layer *base = lt_import(lt_path("b"), NULL);
	LT_OK(lam_layer_delete(base, 0));
	char *before = store_listing();
	lt_write(lt_path("c/f"), "child content");
	lam_layer *c = (lam_layer *)1;
	LT_FAILS(lam_layer_import_dir(&c, lt_store, lt_path("c"), base, NULL),
		 LAM_ENOTFOUND, lam_layer_id(base));
	ck_assert_ptr_null(c);
	char *after = store_listing();
	ck_assert_str_eq(before, after);
	free(before);
	free(after);
	lam_layer_free(base);
}
END_TEST

START_TEST(test_missing_source_is_reported)
{
	lam_layer *l;
	LT_FAILS(lam_layer_import_dir(&l, lt_store, lt_path("nope"), NULL,
				      NULL),
		 LAM_ENOTFOUND, "nope");
	lt_write(lt_path("file"), "x");
	LT_FAILS(lam_layer_import_dir(&l, lt_store, lt_path("file"), NULL,
				      NULL),
		 LAM_EIO, "file");
}
END_TEST

START_TEST(test_path_over_path_max_fails_and_changes_nothing)
{
	lt_write(lt_path("src/ok"), "fine");
	/* Build a chain of 255-byte names with *at() calls past 4096. */
	int fd = open(lt_path("src"), O_RDONLY | O_DIRECTORY);
	char name[256];
	memset(name, 'n', 255);
	name[255] = '\0';
	for (int i = 0; i < 17; i++) {
		ck_assert_int_eq(mkdirat(fd, name, 0755), 0);
		int sub = openat(fd, name, O_RDONLY | O_DIRECTORY);
		close(fd);
		fd = sub;
	}
	int f = openat(fd, "deep-file", O_WRONLY | O_CREAT, 0644);
	ck_assert_int_eq(write(f, "content", 7), 7);
	close(f);
	close(fd);
	char *before = store_listing();
	lam_layer *l;
	LT_FAILS(lam_layer_import_dir(&l, lt_store, lt_path("src"), NULL, NULL),
		 LAM_ENAMETOOLONG, "PATH_MAX");
	char *after = store_listing();
	ck_assert_str_eq(before, after);
	free(before);
	free(after);
	/* Clean up the deep tree from the inside, as rm -rf may not. */
	ck_assert_int_eq(lt_run("true"), 0);
}
END_TEST

START_TEST(test_unreadable_entry_fails_naming_it_and_changes_nothing)
{
	lt_write(lt_path("src/readable"), "fine");
	lt_write(lt_path("src/sub/locked"), "secret");
	chmod(lt_path("src/sub/locked"), 0000);
	char *before = store_listing();
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		/* Root reads everything; drop to an ordinary user for the
		 * import, in a child, so the rest of the test stays root. */
		if (geteuid() == 0) {
			char cmd[9000];
			snprintf(cmd, sizeof(cmd), "chown -R 65534:65534 '%s'",
				 lt_dir);
			if (lt_run(cmd) != 0 || setgid(65534) < 0 ||
			    setuid(65534) < 0)
				_exit(3);
		}
		lam_store *s;
		if (lam_store_open(&s, lt_store_path, NULL) < 0)
			_exit(4);
		lam_layer *l;
		int rc =
			lam_layer_import_dir(&l, s, lt_path("src"), NULL, NULL);
		const char *msg = lam_error_last()->message;
		if (rc == LAM_EACCES && strstr(msg, "sub/locked"))
			_exit(0);
		fprintf(stderr, "import gave %d: %s\n", rc, msg);
		_exit(5);
	}
	int status;
	waitpid(pid, &status, 0);
	ck_assert(WIFEXITED(status));
	ck_assert_int_eq(WEXITSTATUS(status), 0);
	char *after = store_listing();
	ck_assert_str_eq(before, after);
	free(before);
	free(after);
}
END_TEST

START_TEST(test_checkout_refuses_a_non_empty_destination)
{
	lt_write(lt_path("src/f"), "x");
	lam_layer *l = lt_import(lt_path("src"), NULL);
	lt_write(lt_path("dest/existing"), "keep me");
	LT_FAILS(lam_layer_checkout(l, lt_path("dest"), NULL), LAM_EEXISTS,
		 "not empty");
	char *kept = lt_read(lt_path("dest/existing"), NULL);
	ck_assert_str_eq(kept, "keep me");
	free(kept);
	lt_mkdir(lt_path("empty"));
	LT_OK(lam_layer_checkout(l, lt_path("empty"), NULL));
	ck_assert(lt_exists(lt_path("empty/f")));
	lam_layer_free(l);
}
END_TEST

START_TEST(test_checkout_of_a_deep_chain_matches_the_last_state)
{
	/* Twenty layers, each changing, adding and deleting files; the
	 * expected tree is kept alongside. */
	lam_layer *top = NULL;
	lt_mkdir(lt_path("expect"));
	for (int i = 0; i < 20; i++) {
		lt_mkdir(lt_path("d%d", i));
		lt_write(lt_path("d%d/layer%d", i, i), "added");
		lt_write(lt_path("expect/layer%d", i), "added");
		lt_write(lt_path("d%d/shared", i), i % 2 ? "odd" : "even");
		lt_write(lt_path("expect/shared"), i % 2 ? "odd" : "even");
		if (i > 2 && lt_is_root()) {
			lt_whiteout(lt_path("d%d/layer%d", i, i - 2));
			unlink(lt_path("expect/layer%d", i - 2));
		}
		lam_layer *l = lt_import(lt_path("d%d", i), top);
		lam_layer_free(top);
		top = l;
	}
	ck_assert_uint_eq(lam_layer_depth(top), 20);
	const char *co = lt_path("co");
	LT_OK(lam_layer_checkout(top, co, NULL));
	char *d = lt_tree_diff(lt_path("expect"), co, false);
	ck_assert_msg(d == NULL, "%s", d);
	lam_layer_free(top);
}
END_TEST

/* The import hands small files to worker threads and gives folders their
 * metadata once every file below them is in place: folders of many files,
 * read-only and sticky ones, keep their modes and times, and the content
 * lands where its name says. */
START_TEST(test_import_with_writers_keeps_folder_metadata)
{
	char p[4300], body[64];
	for (int d = 0; d < 30; d++) {
		for (int f = 0; f < 25; f++) {
			snprintf(p, sizeof(p), "%s/d%02d/sub/f%02d",
				 lt_path("src"), d, f);
			snprintf(body, sizeof(body), "%d/%d", d, f);
			lt_write(p, body);
		}
		snprintf(p, sizeof(p), "%s/d%02d/sub", lt_path("src"), d);
		chmod(p, d % 3 == 0 ? 0555 : d % 3 == 1 ? 01777 : 0750);
		struct timespec ts[2] = {{1000000 + d, 7}, {2000000 + d, 9}};
		utimensat(AT_FDCWD, p, ts, 0);
		snprintf(p, sizeof(p), "%s/d%02d", lt_path("src"), d);
		utimensat(AT_FDCWD, p, ts, 0);
	}
	lam_layer *l = lt_import(lt_path("src"), NULL);
	assert_checkout_equals(l, lt_path("src"));
	/* The layer folder itself (what a kernel mount shows) too. */
	for (int d = 0; d < 30; d++) {
		struct stat a, b;
		snprintf(p, sizeof(p), "%s/d%02d/sub", lt_path("src"), d);
		ck_assert_int_eq(stat(p, &a), 0);
		snprintf(p, sizeof(p), "%s/layers/%s/fs/d%02d/sub",
			 lt_store_path, lam_layer_id(l), d);
		ck_assert_int_eq(stat(p, &b), 0);
		ck_assert_uint_eq(a.st_mode, b.st_mode);
		ck_assert_int_eq(a.st_mtim.tv_sec, b.st_mtim.tv_sec);
		ck_assert_int_eq(a.st_mtim.tv_nsec, b.st_mtim.tv_nsec);
	}
	size_t problems = 9;
	LT_OK(lam_store_check(lt_store, 0, NULL, NULL, &problems));
	ck_assert_uint_eq(problems, 0);
	lam_layer_free(l);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("layer");
	TCase *tc = tcase_create("layer");
	tcase_add_checked_fixture(tc, lt_setup, lt_teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_import_keeps_every_entry_kind);
	tcase_add_test(tc, test_same_content_same_parent_is_the_same_layer);
	tcase_add_test(
		tc, test_different_content_or_parent_gives_different_digests);
	tcase_add_test(tc,
		       test_identical_contents_are_stored_once_across_layers);
	tcase_add_test(tc,
		       test_whiteouts_and_opaque_dirs_apply_through_the_chain);
	tcase_add_test(tc, test_layer_folders_mount_as_overlayfs_lowerdirs);
	tcase_add_test(tc,
		       test_import_never_follows_symlinks_out_of_the_source);
	tcase_add_test(tc, test_open_by_ref_or_unique_prefix);
	tcase_add_test(tc, test_graph_parent_children_ancestors_refs);
	tcase_add_test(
		tc, test_delete_is_refused_while_depended_on_unless_cascading);
	tcase_add_test(
		tc,
		test_import_onto_a_deleted_parent_fails_and_changes_nothing);
	tcase_add_test(tc, test_missing_source_is_reported);
	tcase_add_test(tc, test_path_over_path_max_fails_and_changes_nothing);
	tcase_add_test(
		tc, test_unreadable_entry_fails_naming_it_and_changes_nothing);
	tcase_add_test(tc, test_checkout_refuses_a_non_empty_destination);
	tcase_add_test(tc,
		       test_checkout_of_a_deep_chain_matches_the_last_state);
	tcase_add_test(tc, test_import_with_writers_keeps_folder_metadata);
	suite_add_tcase(s, tc);
	return lt_main(s);
}
