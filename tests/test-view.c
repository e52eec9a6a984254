/* SPDX-License-Identifier: MIT */
/* Copy-on-write views: the file API, overlay semantics, commit, diff. */
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "support.h"

static lam_layer *base;
static lam_view *view;

/* A base image: a few files, a hard-link pair, a symlink, nested dirs. */
static void setup_view(void)
{
	lt_setup();
	lt_write(lt_path("base/etc/hostname"), "base-host\n");
	lt_write(lt_path("base/etc/passwd"), "root:x:0:0\n");
	lt_write(lt_path("base/usr/bin/tool"), "#!/bin/sh\n");
	lt_write(lt_path("base/usr/lib/a/one"), "1");
	lt_write(lt_path("base/usr/lib/a/two"), "2");
	lt_write(lt_path("base/usr/lib/a/sub/three"), "3");
	lt_link(lt_path("base/etc/passwd"), lt_path("base/etc/passwd.lnk"));
	lt_symlink("/etc/hostname", lt_path("base/hostlink"));
	lt_mkdir(lt_path("base/empty"));
	base = lt_import(lt_path("base"), NULL);
	LT_OK(lam_view_create(&view, lt_store, base, NULL));
}

static void teardown_view(void)
{
	lam_view_free(view);
	lam_layer_free(base);
	lt_teardown();
}

static char *view_read(lam_view *v, const char *path)
{
	lam_view_file *f;
	LT_OK(lam_view_file_open(&f, v, path, O_RDONLY, 0));
	static char buf[1 << 16];
	size_t got;
	LT_OK(lam_view_file_read(f, buf, sizeof(buf) - 1, &got));
	buf[got] = '\0';
	LT_OK(lam_view_file_close(f));
	return buf;
}

static void view_write(lam_view *v, const char *path, const char *text,
		       int flags)
{
	lam_view_file *f;
	LT_OK(lam_view_file_open(&f, v, path, O_WRONLY | flags, 0644));
	size_t n;
	LT_OK(lam_view_file_write(f, text, strlen(text), &n));
	ck_assert_uint_eq(n, strlen(text));
	LT_OK(lam_view_file_close(f));
}

static char listing[8192];

static const char *list(lam_view *v, const char *path)
{
	lam_view_dir_iter *it;
	LT_OK(lam_view_dir_iter_new(&it, v, path));
	listing[0] = '\0';
	lam_dirent d;
	int rc;
	while ((rc = lam_view_dir_iter_next(it, &d)) == 0) {
		strcat(listing, d.name);
		strcat(listing, S_ISDIR(d.mode) ? "/ " : " ");
	}
	ck_assert_int_eq(rc, LAM_ITEROVER);
	lam_view_dir_iter_free(it);
	return listing;
}

static void expect_errno(int rc, int err)
{
	ck_assert_int_eq(rc, LAM_EPOSIX);
	ck_assert_int_eq(lam_error_last()->os_errno, err);
}

START_TEST(test_reads_come_from_the_layers)
{
	ck_assert_str_eq(view_read(view, "etc/hostname"), "base-host\n");
	ck_assert_str_eq(view_read(view, "/usr/lib/a/sub/three"), "3");
	ck_assert_str_eq(view_read(view, "hostlink"), "base-host\n");
	lam_stat st;
	LT_OK(lam_view_stat(view, "etc/passwd", &st));
	ck_assert(S_ISREG(st.mode));
	ck_assert_uint_eq(st.size, 11);
	ck_assert_uint_eq(st.nlink, 2);
	lam_stat st2;
	LT_OK(lam_view_stat(view, "etc/passwd.lnk", &st2));
	ck_assert_uint_eq(st.ino, st2.ino);
	LT_OK(lam_view_lstat(view, "hostlink", &st));
	ck_assert(S_ISLNK(st.mode));
	ck_assert_str_eq(list(view, "/"), "empty/ etc/ hostlink usr/ ");
	ck_assert_str_eq(list(view, "usr/lib/a"), "one sub/ two ");
	char *t;
	LT_OK(lam_view_readlink(&t, view, "hostlink"));
	ck_assert_str_eq(t, "/etc/hostname");
	lam_free(t);
}
END_TEST

START_TEST(test_writes_land_in_the_upper_and_commit_as_a_child)
{
	view_write(view, "etc/hostname", "changed\n", O_TRUNC);
	LT_OK(lam_view_mkdir(view, "new", 0755));
	view_write(view, "new/file", "x", O_CREAT);
	LT_FAILS(lam_view_file_open(NULL, view, "x", 0, 0), LAM_EINVAL, NULL);
	expect_errno(lam_view_mkdir(view, "new", 0755), EEXIST);
	LT_OK(lam_view_mkdir(view, "newdir", 0750));
	LT_OK(lam_view_unlink(view, "usr/bin/tool"));
	ck_assert_str_eq(view_read(view, "etc/hostname"), "changed\n");
	/* The layer itself is unchanged. */
	const char *co = lt_path("co-base");
	LT_OK(lam_layer_checkout(base, co, NULL));
	char *d = lt_tree_diff(lt_path("base"), co, true);
	ck_assert_msg(d == NULL, "%s", d);
	lam_layer *child;
	LT_OK(lam_view_commit(view, &child, NULL));
	ck_assert_str_eq(lam_layer_parent_id(child), lam_layer_id(base));
	lam_layer *vb;
	LT_OK(lam_view_base(&vb, view));
	ck_assert_str_eq(lam_layer_id(vb), lam_layer_id(child));
	lam_layer_free(vb);
	/* The view goes on over the new layer with an empty upper. */
	ck_assert_str_eq(view_read(view, "etc/hostname"), "changed\n");
	lam_stat st;
	expect_errno(lam_view_stat(view, "usr/bin/tool", &st), ENOENT);
	LT_OK(lam_layer_checkout(child, lt_path("co"), NULL));
	char *c = lt_read(lt_path("co/etc/hostname"), NULL);
	ck_assert_str_eq(c, "changed\n");
	free(c);
	ck_assert(!lt_exists(lt_path("co/usr/bin/tool")));
	ck_assert(lt_exists(lt_path("co/usr/bin")));
	ck_assert(lt_exists(lt_path("co/newdir")));
	ck_assert(lt_exists(lt_path("co/new/file")));
	struct stat hs;
	ck_assert_int_eq(stat(lt_path("co/etc/passwd"), &hs), 0);
	ck_assert_uint_eq(hs.st_nlink, 2);
	lam_layer_free(child);
}
END_TEST

START_TEST(test_view_persists_across_handles)
{
	view_write(view, "etc/hostname", "persisted", O_TRUNC);
	LT_OK(lam_view_unlink(view, "etc/passwd"));
	char id[64];
	snprintf(id, sizeof(id), "%s", lam_view_id(view));
	ck_assert_uint_eq(strlen(id), 36);
	lam_view_free(view);
	/* A fresh store handle, as after a restart. */
	lam_store_free(lt_store);
	LT_OK(lam_store_open(&lt_store, lt_store_path, NULL));
	LT_OK(lam_view_open(&view, lt_store, id, NULL));
	ck_assert_str_eq(view_read(view, "etc/hostname"), "persisted");
	lam_stat st;
	expect_errno(lam_view_stat(view, "etc/passwd", &st), ENOENT);
	lam_view *v2;
	char prefix[9];
	memcpy(prefix, id, 8);
	prefix[8] = '\0';
	LT_OK(lam_view_open(&v2, lt_store, prefix, NULL));
	lam_view_free(v2);
	LT_FAILS(lam_view_open(&v2, lt_store, "ffffffff-none", NULL),
		 LAM_ENOTFOUND, "ffffffff-none");
}
END_TEST

START_TEST(test_whiteouts_hide_and_opaque_dirs_replace)
{
	LT_OK(lam_view_unlink(view, "usr/lib/a/one"));
	ck_assert_str_eq(list(view, "usr/lib/a"), "sub/ two ");
	expect_errno(lam_view_rmdir(view, "usr/lib/a"), ENOTEMPTY);
	LT_OK(lam_view_unlink(view, "usr/lib/a/two"));
	expect_errno(lam_view_rmdir(view, "usr/lib/a/sub/three"), ENOTDIR);
	LT_OK(lam_view_unlink(view, "usr/lib/a/sub/three"));
	LT_OK(lam_view_rmdir(view, "usr/lib/a/sub"));
	LT_OK(lam_view_rmdir(view, "usr/lib/a"));
	lam_stat st;
	expect_errno(lam_view_stat(view, "usr/lib/a", &st), ENOENT);
	/* A new folder at the same path shows nothing of the old one. */
	LT_OK(lam_view_mkdir(view, "usr/lib/a", 0700));
	ck_assert_str_eq(list(view, "usr/lib/a"), "");
	view_write(view, "usr/lib/a/fresh", "f", O_CREAT);
	ck_assert_str_eq(list(view, "usr/lib/a"), "fresh ");
	/* A file at a deleted name comes back. */
	LT_OK(lam_view_unlink(view, "etc/hostname"));
	view_write(view, "etc/hostname", "again", O_CREAT | O_EXCL);
	ck_assert_str_eq(view_read(view, "etc/hostname"), "again");
	lam_layer *l;
	LT_OK(lam_view_commit(view, &l, NULL));
	LT_OK(lam_layer_checkout(l, lt_path("co"), NULL));
	ck_assert(lt_exists(lt_path("co/usr/lib/a/fresh")));
	ck_assert(!lt_exists(lt_path("co/usr/lib/a/one")));
	ck_assert(!lt_exists(lt_path("co/usr/lib/a/sub")));
	lam_layer_free(l);
}
END_TEST

START_TEST(test_rename_of_a_lower_dir_keeps_its_children)
{
	LT_OK(lam_view_rename(view, "usr/lib/a", "moved", 0));
	lam_stat st;
	expect_errno(lam_view_stat(view, "usr/lib/a", &st), ENOENT);
	ck_assert_str_eq(list(view, "moved"), "one sub/ two ");
	ck_assert_str_eq(view_read(view, "moved/sub/three"), "3");
	ck_assert_str_eq(list(view, "usr/lib"), "");
	lam_layer *l;
	LT_OK(lam_view_commit(view, &l, NULL));
	LT_OK(lam_layer_checkout(l, lt_path("co"), NULL));
	ck_assert(lt_exists(lt_path("co/moved/sub/three")));
	ck_assert(!lt_exists(lt_path("co/usr/lib/a")));
	lam_layer_free(l);
}
END_TEST

START_TEST(test_rename_over_a_lower_entry_leaves_no_ghost)
{
	LT_OK(lam_view_rename(view, "etc/hostname", "etc/passwd", 0));
	ck_assert_str_eq(view_read(view, "etc/passwd"), "base-host\n");
	ck_assert_str_eq(list(view, "etc"), "passwd passwd.lnk ");
	/* The other link keeps the old content. */
	ck_assert_str_eq(view_read(view, "etc/passwd.lnk"), "root:x:0:0\n");
	expect_errno(lam_view_rename(view, "empty", "usr/lib/a", 0), ENOTEMPTY);
}
END_TEST

START_TEST(test_rename_rules_and_flags)
{
	expect_errno(lam_view_rename(view, "usr", "etc/passwd", 0), ENOTDIR);
	expect_errno(lam_view_rename(view, "etc/passwd", "usr", 0), EISDIR);
	expect_errno(lam_view_rename(view, "usr", "usr/lib/x", 0), EINVAL);
	expect_errno(lam_view_rename(view, "etc", "usr", 0), ENOTEMPTY);
	expect_errno(lam_view_rename(view, "nothing", "x", 0), ENOENT);
	expect_errno(lam_view_rename(view, "etc/passwd", "etc/hostname",
				     LAM_RENAME_NOREPLACE),
		     EEXIST);
	expect_errno(lam_view_rename(view, "empty", "usr/lib/a", 0), ENOTEMPTY);
	LT_OK(lam_view_rename(view, "etc/passwd", "etc/hostname",
			      LAM_RENAME_EXCHANGE));
	ck_assert_str_eq(view_read(view, "etc/hostname"), "root:x:0:0\n");
	ck_assert_str_eq(view_read(view, "etc/passwd"), "base-host\n");
	LT_OK(lam_view_rename(view, "usr/lib", "lib", 0));
	LT_OK(lam_view_rename(view, "empty", "lib2", LAM_RENAME_NOREPLACE));
	ck_assert_str_eq(list(view, "/"), "etc/ hostlink lib/ lib2/ usr/ ");
}
END_TEST

START_TEST(test_hard_links_stay_linked_after_a_write)
{
	view_write(view, "etc/passwd", "rewritten", O_TRUNC);
	ck_assert_str_eq(view_read(view, "etc/passwd.lnk"), "rewritten");
	lam_stat a, b;
	LT_OK(lam_view_stat(view, "etc/passwd", &a));
	LT_OK(lam_view_stat(view, "etc/passwd.lnk", &b));
	ck_assert_uint_eq(a.ino, b.ino);
	ck_assert_uint_eq(a.nlink, 2);
	LT_OK(lam_view_link(view, "etc/passwd", "third"));
	LT_OK(lam_view_stat(view, "third", &a));
	ck_assert_uint_eq(a.nlink, 3);
	lam_layer *l;
	LT_OK(lam_view_commit(view, &l, NULL));
	LT_OK(lam_layer_checkout(l, lt_path("co"), NULL));
	struct stat s1, s2;
	ck_assert_int_eq(stat(lt_path("co/third"), &s1), 0);
	ck_assert_int_eq(stat(lt_path("co/etc/passwd.lnk"), &s2), 0);
	ck_assert_uint_eq(s1.st_ino, s2.st_ino);
	ck_assert_uint_eq(s1.st_nlink, 3);
	lam_layer_free(l);
}
END_TEST

START_TEST(test_small_write_into_a_large_file_copies_little)
{
	size_t size = 8u << 20;
	char *big = malloc(size);
	for (size_t i = 0; i < size; i++)
		big[i] = (char)(i % 251);
	lt_write_bytes(lt_path("d/big"), big, size);
	lam_layer *l = lt_import(lt_path("d"), base);
	lam_view *v;
	LT_OK(lam_view_create(&v, lt_store, l, NULL));
	lam_view_file *f;
	LT_OK(lam_view_file_open(&f, v, "big", O_RDWR, 0));
	size_t n;
	LT_OK(lam_view_file_pwrite(f, "HELLO", 5, 3000000, &n));
	memcpy(big + 3000000, "HELLO", 5);
	char *back = malloc(size);
	size_t got;
	LT_OK(lam_view_file_pread(f, back, size, 0, &got));
	ck_assert_uint_eq(got, size);
	ck_assert(memcmp(back, big, size) == 0);
	LT_OK(lam_view_file_close(f));
	/* The upper holds one chunk, not the file. */
	char p[8192];
	snprintf(p, sizeof(p), "%s/views/%s/upper-1/big", lt_store_path,
		 lam_view_id(v));
	struct stat st;
	ck_assert_int_eq(stat(p, &st), 0);
	ck_assert_int_eq(st.st_size, (off_t)size);
	ck_assert_int_le(st.st_blocks * 512, 256 * 1024);
	lam_layer *c;
	LT_OK(lam_view_commit(v, &c, NULL));
	LT_OK(lam_layer_checkout(c, lt_path("co"), NULL));
	size_t len;
	char *co = lt_read(lt_path("co/big"), &len);
	ck_assert_uint_eq(len, size);
	ck_assert(memcmp(co, big, size) == 0);
	free(co);
	free(back);
	free(big);
	lam_layer_free(c);
	lam_layer_free(l);
	lam_view_free(v);
}
END_TEST

START_TEST(test_metadata_change_does_not_copy_data)
{
	lam_store_stats before, after;
	LT_OK(lam_store_stats_get(lt_store, &before));
	LT_OK(lam_view_chmod(view, "usr/bin/tool", 0700));
	LT_OK(lam_view_chown(view, "etc/hostname", 1234, 5678, 0));
	lam_stat st;
	LT_OK(lam_view_stat(view, "usr/bin/tool", &st));
	ck_assert_uint_eq(st.mode & 07777, 0700);
	ck_assert_str_eq(view_read(view, "usr/bin/tool"), "#!/bin/sh\n");
	lam_layer *l;
	LT_OK(lam_view_commit(view, &l, NULL));
	LT_OK(lam_store_stats_get(lt_store, &after));
	ck_assert_uint_eq(after.objects, before.objects);
	ck_assert_uint_eq(after.stored_bytes, before.stored_bytes);
	LT_OK(lam_layer_checkout(l, lt_path("co"), NULL));
	struct stat hs;
	ck_assert_int_eq(stat(lt_path("co/usr/bin/tool"), &hs), 0);
	ck_assert_uint_eq(hs.st_mode & 07777, 0700);
	if (lt_is_root()) {
		ck_assert_int_eq(stat(lt_path("co/etc/hostname"), &hs), 0);
		ck_assert_uint_eq(hs.st_uid, 1234);
	}
	lam_layer_free(l);
}
END_TEST

START_TEST(test_paths_never_leave_the_view)
{
	lt_write(lt_path("outside-secret"), "secret");
	LT_OK(lam_view_symlink(view, "/../../../../", "up"));
	LT_OK(lam_view_symlink(view, "../../../..", "up2"));
	LT_OK(lam_view_symlink(view, "/etc/hostname", "abs"));
	ck_assert_str_eq(view_read(view, "up/etc/hostname"), "base-host\n");
	ck_assert_str_eq(view_read(view, "up2/etc/hostname"), "base-host\n");
	ck_assert_str_eq(view_read(view, "../../../../etc/hostname"),
			 "base-host\n");
	ck_assert_str_eq(view_read(view, "abs"), "base-host\n");
	lam_view_file *f;
	char esc[8192];
	snprintf(esc, sizeof(esc), "../../../../../../%s/outside-secret",
		 lt_dir);
	expect_errno(lam_view_file_open(&f, view, esc, O_RDONLY, 0), ENOENT);
	/* Writing through an absolute symlink stays inside too. */
	LT_OK(lam_view_symlink(view, "/tmp", "tmplink"));
	LT_OK(lam_view_mkdir(view, "tmp", 0755));
	view_write(view, "tmplink/inside", "x", O_CREAT);
	ck_assert_str_eq(view_read(view, "tmp/inside"), "x");
	ck_assert(!lt_exists("/tmp/inside") ||
		  lt_run("test \"$(cat /tmp/inside)\" != x") == 0);
	/* Loops and long chains stop with ELOOP. */
	LT_OK(lam_view_symlink(view, "loop2", "loop1"));
	LT_OK(lam_view_symlink(view, "loop1", "loop2"));
	expect_errno(lam_view_file_open(&f, view, "loop1", O_RDONLY, 0), ELOOP);
	char name[32], target[32];
	for (int i = 0; i < 41; i++) {
		snprintf(name, sizeof(name), "chain%d", i);
		snprintf(target, sizeof(target), "chain%d", i + 1);
		LT_OK(lam_view_symlink(view, target, name));
	}
	view_write(view, "chain41", "end", O_CREAT);
	expect_errno(lam_view_file_open(&f, view, "chain0", O_RDONLY, 0),
		     ELOOP);
	ck_assert_str_eq(view_read(view, "chain2"), "end");
	expect_errno(lam_view_file_open(&f, view, "abs", O_RDONLY | O_NOFOLLOW,
					0),
		     ELOOP);
}
END_TEST

START_TEST(test_posix_errors)
{
	lam_view_file *f;
	lam_stat st;
	expect_errno(lam_view_stat(view, "missing", &st), ENOENT);
	expect_errno(lam_view_stat(view, "etc/passwd/x", &st), ENOTDIR);
	expect_errno(lam_view_mkdir(view, "etc", 0755), EEXIST);
	expect_errno(lam_view_mkdir(view, "no/such/parent", 0755), ENOENT);
	expect_errno(lam_view_unlink(view, "usr"), EISDIR);
	expect_errno(lam_view_rmdir(view, "etc/passwd"), ENOTDIR);
	expect_errno(lam_view_file_open(&f, view, "usr", O_WRONLY, 0), EISDIR);
	expect_errno(lam_view_file_open(&f, view, "etc/passwd",
					O_CREAT | O_EXCL | O_WRONLY, 0644),
		     EEXIST);
	expect_errno(lam_view_file_open(&f, view, "etc/passwd",
					O_RDONLY | O_DIRECTORY, 0),
		     ENOTDIR);
	LT_FAILS(lam_view_readlink(NULL, view, "etc"), LAM_EINVAL, NULL);
	char *t;
	expect_errno(lam_view_readlink(&t, view, "etc/passwd"), EINVAL);
	LT_OK(lam_view_file_open(&f, view, "etc/passwd", O_RDONLY, 0));
	size_t n;
	expect_errno(lam_view_file_write(f, "x", 1, &n), EBADF);
	LT_OK(lam_view_file_close(f));
	char longname[300];
	memset(longname, 'a', 299);
	longname[299] = '\0';
	expect_errno(lam_view_stat(view, longname, &st), ENAMETOOLONG);
	expect_errno(lam_view_link(view, "usr", "usr2"), EPERM);
	expect_errno(lam_view_setxattr(view, "etc", "trusted.overlay.opaque",
				       "y", 1, 0),
		     EPERM);
}
END_TEST

START_TEST(test_read_only_views_refuse_changes)
{
	lam_view *ro;
	lam_view_options o = LAM_VIEW_OPTIONS_INIT;
	o.flags = LAM_VIEW_READONLY;
	LT_OK(lam_view_create(&ro, lt_store, base, &o));
	ck_assert_str_eq(lam_view_id(ro), "");
	ck_assert_str_eq(view_read(ro, "etc/hostname"), "base-host\n");
	expect_errno(lam_view_mkdir(ro, "x", 0755), EROFS);
	lam_view_file *f;
	expect_errno(lam_view_file_open(&f, ro, "etc/hostname", O_WRONLY, 0),
		     EROFS);
	expect_errno(lam_view_unlink(ro, "etc/hostname"), EROFS);
	expect_errno(lam_view_commit(ro, NULL, NULL), EROFS);
	lam_view_free(ro);
	int count = 0;
	LT_FAILS(lam_view_foreach(lt_store, NULL, &count), LAM_EINVAL, NULL);
}
END_TEST

START_TEST(test_xattrs_copy_up_and_list)
{
	LT_OK(lam_view_setxattr(view, "etc/hostname", "user.a", "1", 1, 0));
	LT_OK(lam_view_setxattr(view, "etc/hostname", "user.b", "22", 2, 0));
	expect_errno(lam_view_setxattr(view, "etc/hostname", "user.a", "x", 1,
				       LAM_XATTR_CREATE),
		     EEXIST);
	char buf[8];
	size_t needed;
	LT_OK(lam_view_getxattr(view, "etc/hostname", "user.b", buf,
				sizeof(buf), &needed, 0));
	ck_assert_uint_eq(needed, 2);
	ck_assert(memcmp(buf, "22", 2) == 0);
	expect_errno(lam_view_getxattr(view, "etc/hostname", "user.b", buf, 1,
				       &needed, 0),
		     ERANGE);
	ck_assert_uint_eq(needed, 2);
	char *names;
	size_t len;
	LT_OK(lam_view_listxattr(&names, &len, view, "etc/hostname", 0));
	ck_assert_uint_eq(len, 14);
	ck_assert_str_eq(names, "user.a");
	ck_assert_str_eq(names + 7, "user.b");
	lam_free(names);
	LT_OK(lam_view_removexattr(view, "etc/hostname", "user.a", 0));
	expect_errno(lam_view_getxattr(view, "etc/hostname", "user.a", NULL, 0,
				       &needed, 0),
		     ENODATA);
	expect_errno(lam_view_removexattr(view, "etc/passwd", "user.zz", 0),
		     ENODATA);
}
END_TEST

static int collect_changes(lam_change_kind kind, const char *path, void *ud)
{
	char *buf = ud;
	size_t n = strlen(buf);
	snprintf(buf + n, 4096 - n, "%c %s\n", (char)kind, path);
	return 0;
}

START_TEST(test_diff_of_views_and_layers)
{
	view_write(view, "etc/hostname", "changed\n", O_TRUNC);
	LT_OK(lam_view_chmod(view, "usr/bin/tool", 0700));
	LT_OK(lam_view_unlink(view, "usr/lib/a/one"));
	view_write(view, "added", "new", O_CREAT);
	char vd[4096] = "";
	LT_OK(lam_view_diff(view, collect_changes, vd));
	ck_assert_ptr_nonnull(strstr(vd, "A added\n"));
	ck_assert_ptr_nonnull(strstr(vd, "M etc/hostname\n"));
	ck_assert_ptr_nonnull(strstr(vd, "m usr/bin/tool\n"));
	ck_assert_ptr_nonnull(strstr(vd, "D usr/lib/a/one\n"));
	ck_assert_ptr_null(strstr(vd, "etc/passwd"));
	lam_layer *l;
	LT_OK(lam_view_commit(view, &l, NULL));
	char ld[4096] = "";
	LT_OK(lam_layer_diff(base, l, collect_changes, ld));
	ck_assert_ptr_nonnull(strstr(ld, "A added\n"));
	ck_assert_ptr_nonnull(strstr(ld, "M etc/hostname\n"));
	ck_assert_ptr_nonnull(strstr(ld, "m usr/bin/tool\n"));
	ck_assert_ptr_nonnull(strstr(ld, "D usr/lib/a/one\n"));
	ck_assert_ptr_null(strstr(ld, "etc/passwd"));
	/* Stable order: '/' sorts first, so a folder precedes its files. */
	ck_assert(strstr(ld, "A added") < strstr(ld, "M etc/hostname"));
	char rev[4096] = "";
	LT_OK(lam_layer_diff(l, base, collect_changes, rev));
	ck_assert_ptr_nonnull(strstr(rev, "D added\n"));
	ck_assert_ptr_nonnull(strstr(rev, "A usr/lib/a/one\n"));
	lam_layer_free(l);
}
END_TEST

START_TEST(test_squash_keeps_the_merged_content)
{
	view_write(view, "etc/hostname", "one", O_TRUNC);
	lam_layer *l1, *l2, *sq, *sq2;
	LT_OK(lam_view_commit(view, &l1, NULL));
	LT_OK(lam_view_unlink(view, "usr/lib/a/two"));
	view_write(view, "later", "two", O_CREAT);
	LT_OK(lam_view_commit(view, &l2, NULL));
	LT_OK(lam_layer_squash(&sq, l2, base));
	ck_assert_str_eq(lam_layer_parent_id(sq), lam_layer_id(base));
	LT_OK(lam_layer_squash(&sq2, l2, NULL));
	ck_assert_ptr_null(lam_layer_parent_id(sq2));
	LT_OK(lam_layer_checkout(l2, lt_path("a"), NULL));
	LT_OK(lam_layer_checkout(sq, lt_path("b"), NULL));
	LT_OK(lam_layer_checkout(sq2, lt_path("c"), NULL));
	char *d = lt_tree_diff(lt_path("a"), lt_path("b"), true);
	ck_assert_msg(d == NULL, "%s", d);
	d = lt_tree_diff(lt_path("a"), lt_path("c"), true);
	ck_assert_msg(d == NULL, "%s", d);
	lam_layer *bad;
	LT_FAILS(lam_layer_squash(&bad, base, l2), LAM_EINVAL, "ancestor");
	ck_assert_ptr_null(bad);
	lam_layer_free(l1);
	lam_layer_free(l2);
	lam_layer_free(sq);
	lam_layer_free(sq2);
}
END_TEST

START_TEST(test_reset_and_remove)
{
	view_write(view, "etc/hostname", "dropped", O_TRUNC);
	LT_OK(lam_view_reset(view));
	ck_assert_str_eq(view_read(view, "etc/hostname"), "base-host\n");
	/* The view keeps its base from gc and from delete. */
	lam_gc_stats gs;
	LT_OK(lam_store_gc(lt_store, &gs));
	ck_assert_uint_eq(gs.layers_removed, 0);
	LT_FAILS(lam_layer_delete(base, 0), LAM_EBUSY, "view");
	char id[64];
	snprintf(id, sizeof(id), "%s", lam_view_id(view));
	LT_OK(lam_view_remove(lt_store, id));
	LT_FAILS(lam_view_remove(lt_store, id), LAM_ENOTFOUND, NULL);
	LT_OK(lam_store_gc(lt_store, &gs));
	ck_assert_uint_eq(gs.layers_removed, 1);
}
END_TEST

START_TEST(test_view_over_nothing_commits_a_base)
{
	lam_view *v;
	LT_OK(lam_view_create(&v, lt_store, NULL, NULL));
	ck_assert_str_eq(list(v, ""), "");
	LT_OK(lam_view_mkdir(v, "bin", 0755));
	view_write(v, "bin/sh", "shell", O_CREAT);
	LT_OK(lam_view_symlink(v, "sh", "bin/bash"));
	LT_OK(lam_view_mkfifo(v, "fifo", 0600));
	lam_layer *l;
	LT_OK(lam_view_commit(v, &l, NULL));
	ck_assert_ptr_null(lam_layer_parent_id(l));
	ck_assert_uint_eq(lam_layer_depth(l), 1);
	LT_OK(lam_layer_checkout(l, lt_path("co"), NULL));
	char *s = lt_read(lt_path("co/bin/bash"), NULL);
	ck_assert_str_eq(s, "shell");
	free(s);
	lam_layer_free(l);
	lam_view_free(v);
}
END_TEST

START_TEST(test_truncate_and_append)
{
	LT_OK(lam_view_truncate(view, "etc/passwd", 4));
	ck_assert_str_eq(view_read(view, "etc/passwd"), "root");
	view_write(view, "etc/passwd", "+more", O_APPEND);
	ck_assert_str_eq(view_read(view, "etc/passwd"), "root+more");
	LT_OK(lam_view_truncate(view, "etc/passwd", 12));
	lam_view_file *f;
	LT_OK(lam_view_file_open(&f, view, "etc/passwd", O_RDONLY, 0));
	char buf[32];
	size_t got;
	LT_OK(lam_view_file_read(f, buf, sizeof(buf), &got));
	ck_assert_uint_eq(got, 12);
	ck_assert(memcmp(buf, "root+more\0\0\0", 12) == 0);
	lam_stat st;
	LT_OK(lam_view_file_stat(f, &st));
	ck_assert_uint_eq(st.size, 12);
	LT_OK(lam_view_file_close(f));
}
END_TEST

START_TEST(test_synced_upper_mounts_as_an_overlayfs_upperdir)
{
	if (!lt_is_root())
		return;
	char *big = malloc(300000);
	for (int i = 0; i < 300000; i++)
		big[i] = (char)(i % 13);
	lt_write_bytes(lt_path("d/big"), big, 300000);
	lam_layer *top = lt_import(lt_path("d"), base);
	lam_view *v;
	LT_OK(lam_view_create(&v, lt_store, top, NULL));
	lam_view_file *f;
	LT_OK(lam_view_file_open(&f, v, "big", O_RDWR, 0));
	size_t n;
	LT_OK(lam_view_file_pwrite(f, "XYZ", 3, 100000, &n));
	LT_OK(lam_view_file_close(f));
	LT_OK(lam_view_unlink(v, "etc/passwd"));
	LT_OK(lam_view_rename(v, "usr/lib/a", "moved", 0));
	LT_OK(lam_view_chmod(v, "etc/hostname", 0600));
	LT_OK(lam_view_sync_upper(v));
	static char opts[65536], cmd[80000];
	char mnt[4200];
	snprintf(mnt, sizeof(mnt), "%s", lt_path("mnt"));
	lt_mkdir(mnt);
	snprintf(opts, sizeof(opts),
		 "lowerdir=%s/layers/%s/fs:%s/layers/%s/fs::%s/objects,"
		 "upperdir=%s/views/%s/upper-1,workdir=%s/views/%s/work,"
		 "metacopy=on,redirect_dir=on",
		 lt_store_path, lam_layer_id(top), lt_store_path,
		 lam_layer_id(base), lt_store_path, lt_store_path,
		 lam_view_id(v), lt_store_path, lam_view_id(v));

	snprintf(cmd, sizeof(cmd), "mount -t overlay overlay -o '%s' '%s'",
		 opts, mnt);
	if (lt_run(cmd) != 0) {
		fprintf(stderr, "overlay mount with upper unavailable\n");
		lam_view_free(v);
		lam_layer_free(top);
		free(big);
		return;
	}
	char *k = lt_read(lt_path("mnt/big"), NULL);
	memcpy(big + 100000, "XYZ", 3);
	bool same = k && memcmp(k, big, 300000) == 0;
	free(k);
	bool passwd_gone = !lt_exists(lt_path("mnt/etc/passwd"));
	bool moved = lt_exists(lt_path("mnt/moved/sub/three")) &&
		     !lt_exists(lt_path("mnt/usr/lib/a"));
	struct stat st;
	bool mode = stat(lt_path("mnt/etc/hostname"), &st) == 0 &&
		    (st.st_mode & 07777) == 0600;
	snprintf(cmd, sizeof(cmd), "umount '%s'", mnt);
	ck_assert_int_eq(lt_run(cmd), 0);
	ck_assert(same);
	ck_assert(passwd_gone);
	ck_assert(moved);
	ck_assert(mode);
	lam_view_free(v);
	lam_layer_free(top);
	free(big);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("view");
	TCase *tc = tcase_create("view");
	tcase_add_checked_fixture(tc, setup_view, teardown_view);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_reads_come_from_the_layers);
	tcase_add_test(tc, test_writes_land_in_the_upper_and_commit_as_a_child);
	tcase_add_test(tc, test_view_persists_across_handles);
	tcase_add_test(tc, test_whiteouts_hide_and_opaque_dirs_replace);
	tcase_add_test(tc, test_rename_of_a_lower_dir_keeps_its_children);
	tcase_add_test(tc, test_rename_over_a_lower_entry_leaves_no_ghost);
	tcase_add_test(tc, test_rename_rules_and_flags);
	tcase_add_test(tc, test_hard_links_stay_linked_after_a_write);
	tcase_add_test(tc, test_small_write_into_a_large_file_copies_little);
	tcase_add_test(tc, test_metadata_change_does_not_copy_data);
	tcase_add_test(tc, test_paths_never_leave_the_view);
	tcase_add_test(tc, test_posix_errors);
	tcase_add_test(tc, test_read_only_views_refuse_changes);
	tcase_add_test(tc, test_xattrs_copy_up_and_list);
	tcase_add_test(tc, test_diff_of_views_and_layers);
	tcase_add_test(tc, test_squash_keeps_the_merged_content);
	tcase_add_test(tc, test_reset_and_remove);
	tcase_add_test(tc, test_view_over_nothing_commits_a_base);
	tcase_add_test(tc, test_truncate_and_append);
	tcase_add_test(tc, test_synced_upper_mounts_as_an_overlayfs_upperdir);
	suite_add_tcase(s, tc);
	return lt_main(s);
}
