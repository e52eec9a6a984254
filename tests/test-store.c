/* SPDX-License-Identifier: MIT */
/* The store: opening, format versions, refs, gc and stats. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "support.h"

START_TEST(test_create_then_reopen)
{
	lam_store *s;
	LT_OK(lam_store_open(&s, lt_store_path, NULL));
	ck_assert_str_eq(lam_store_path(s), lt_store_path);
	lam_store_free(s);
	char *fmt = lt_read(lt_path("store/format"), NULL);
	ck_assert_ptr_nonnull(strstr(fmt, "lamina-store 1\n"));
	free(fmt);
	/* Creating over an existing store opens it. */
	lam_store_options o = LAM_STORE_OPTIONS_INIT;
	o.flags = LAM_STORE_CREATE;
	LT_OK(lam_store_open(&s, lt_store_path, &o));
	lam_store_free(s);
}
END_TEST

START_TEST(test_missing_store_is_not_created_without_the_flag)
{
	lam_store *s = (lam_store *)1;
	LT_FAILS(lam_store_open(&s, lt_path("absent"), NULL), LAM_ENOTFOUND,
		 "absent");
	ck_assert_ptr_null(s);
	ck_assert(!lt_exists(lt_path("absent")));
	lt_mkdir(lt_path("plain"));
	LT_FAILS(lam_store_open(&s, lt_path("plain"), NULL), LAM_ENOTFOUND,
		 "not a lamina store");
}
END_TEST

START_TEST(test_newer_format_is_refused_clearly)
{
	lt_write(lt_path("store/format"), "lamina-store 7\n");
	lam_store *s;
	LT_FAILS(lam_store_open(&s, lt_store_path, NULL), LAM_EVERSION,
		 "format 7 is newer");
}
END_TEST

START_TEST(test_damaged_store_files_are_reported)
{
	lam_store *s;
	lt_write(lt_path("store/format"), "garbage\n");
	LT_FAILS(lam_store_open(&s, lt_store_path, NULL), LAM_ECORRUPT,
		 "format");
	lt_write(lt_path("store/format"), "lamina-store x\n");
	LT_FAILS(lam_store_open(&s, lt_store_path, NULL), LAM_ECORRUPT,
		 "format version");
	lt_write(lt_path("store/format"), "lamina-store 1\n");
	ck_assert_int_eq(rmdir(lt_path("store/tmp")), 0);
	LT_FAILS(lam_store_open(&s, lt_store_path, NULL), LAM_ECORRUPT, "tmp");
	lt_write(lt_path("afile"), "x");
	LT_FAILS(lam_store_open(&s, lt_path("afile"), NULL), LAM_ECORRUPT,
		 "afile");
}
END_TEST

START_TEST(test_ref_names_are_validated)
{
	static const char *bad[] = {
		"",	 "/abs",    ".hidden", "a/../b", "a//b",
		"a/./b", "trail/",  "sp ace",  "tab\tx", "nl\nx",
		"a/..",	 "ctl\x01", "é",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		LT_FAILS(lam_store_ref_check_name(bad[i]), LAM_EBADNAME, NULL);
	char longname[300];
	memset(longname, 'a', 256);
	longname[256] = '\0';
	LT_FAILS(lam_store_ref_check_name(longname), LAM_EBADNAME, "255");
	static const char *good[] = {"base", "library/busybox:1.36",
				     "a.b_c-d+e@sha", "x/y/z"};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		LT_OK(lam_store_ref_check_name(good[i]));
}
END_TEST

static int cat_refs(const char *name, const char *id, void *ud)
{
	(void)id;
	strcat(ud, name);
	strcat(ud, ",");
	return 0;
}

START_TEST(test_refs_set_get_delete_with_compare_and_swap)
{
	lt_write(lt_path("a/f"), "a");
	lt_write(lt_path("b/f"), "b");
	lam_layer *a = lt_import(lt_path("a"), NULL);
	lam_layer *b = lt_import(lt_path("b"), NULL);
	const char *ia = lam_layer_id(a), *ib = lam_layer_id(b);
	LT_OK(lam_store_ref_set(lt_store, "img", ia, ""));
	LT_FAILS(lam_store_ref_set(lt_store, "img", ib, ""), LAM_ECONFLICT,
		 "already exists");
	LT_FAILS(lam_store_ref_set(lt_store, "img", ib, ib), LAM_ECONFLICT,
		 "not the expected");
	char *got;
	LT_OK(lam_store_ref_get(&got, lt_store, "img"));
	ck_assert_str_eq(got, ia);
	lam_free(got);
	LT_OK(lam_store_ref_set(lt_store, "img", ib, ia));
	LT_OK(lam_store_ref_get(&got, lt_store, "img"));
	ck_assert_str_eq(got, ib);
	lam_free(got);
	LT_FAILS(lam_store_ref_set(lt_store, "other",
				   "0123456789abcdef0123"
				   "456789abcdef",
				   NULL),
		 LAM_ENOTFOUND, "0123456789abcdef");
	LT_FAILS(lam_store_ref_set(lt_store, "bad/../name", ia, NULL),
		 LAM_EBADNAME, NULL);
	LT_OK(lam_store_ref_set(lt_store, "c", ia, NULL));
	LT_OK(lam_store_ref_set(lt_store, "a/b", ia, NULL));
	char buf[256] = "";
	LT_OK(lam_store_ref_foreach(lt_store, cat_refs, buf));
	ck_assert_str_eq(buf, "a/b,c,img,");
	LT_FAILS(lam_store_ref_delete(lt_store, "img", ia), LAM_ECONFLICT,
		 NULL);
	LT_OK(lam_store_ref_delete(lt_store, "img", ib));
	LT_FAILS(lam_store_ref_delete(lt_store, "img", NULL), LAM_ENOTFOUND,
		 "img");
	LT_FAILS(lam_store_ref_get(&got, lt_store, "img"), LAM_ENOTFOUND,
		 "img");
	ck_assert_ptr_null(got);
	lam_layer_free(a);
	lam_layer_free(b);
}
END_TEST

START_TEST(test_damaged_refs_file_is_reported_with_its_line)
{
	lt_write(lt_path("a/f"), "a");
	lam_layer *a = lt_import(lt_path("a"), NULL);
	LT_OK(lam_store_ref_set(lt_store, "one", lam_layer_id(a), NULL));
	char text[200];
	snprintf(text, sizeof(text), "one %s\nbroken line\n", lam_layer_id(a));
	lt_write(lt_path("store/refs"), text);
	char *got;
	LT_FAILS(lam_store_ref_get(&got, lt_store, "one"), LAM_ECORRUPT,
		 "line 2");
	lam_layer_free(a);
}
END_TEST

START_TEST(test_gc_removes_only_what_no_ref_reaches)
{
	lt_write(lt_path("base/shared"), "shared bytes");
	lt_write(lt_path("base/only-base"), "base bytes");
	lam_layer *base = lt_import(lt_path("base"), NULL);
	lt_write(lt_path("kept/k"), "kept bytes");
	lam_layer *kept = lt_import(lt_path("kept"), base);
	lt_write(lt_path("dropped/d"), "dropped bytes");
	lt_write(lt_path("dropped/s"), "shared bytes");
	lam_layer *dropped = lt_import(lt_path("dropped"), base);
	lt_write(lt_path("lone/l"), "lone bytes");
	lam_layer *lone = lt_import(lt_path("lone"), NULL);
	LT_OK(lam_store_ref_set(lt_store, "keep", lam_layer_id(kept), NULL));
	/* A leftover of a killed writer. */
	lt_write(lt_path("store/tmp/leftover/junk"), "junk");
	lam_gc_stats gs;
	LT_OK(lam_store_gc(lt_store, &gs));
	ck_assert_uint_eq(gs.layers_removed, 2);
	ck_assert_uint_eq(gs.objects_removed, 2);
	ck_assert_uint_eq(gs.bytes_freed,
			  strlen("dropped bytes") + strlen("lone bytes"));
	ck_assert(!lt_exists(lt_path("store/tmp/leftover")));
	lam_layer *x;
	LT_OK(lam_layer_open(&x, lt_store, lam_layer_id(base)));
	lam_layer_free(x);
	LT_FAILS(lam_layer_open(&x, lt_store, lam_layer_id(dropped)),
		 LAM_ENOTFOUND, NULL);
	const char *co = lt_path("co");
	LT_OK(lam_layer_checkout(kept, co, NULL));
	char *s = lt_read(lt_path("co/shared"), NULL);
	ck_assert_str_eq(s, "shared bytes");
	free(s);
	size_t problems;
	LT_OK(lam_store_check(lt_store, 0, NULL, NULL, &problems));
	ck_assert_uint_eq(problems, 0);
	/* A second gc finds nothing more. */
	LT_OK(lam_store_gc(lt_store, &gs));
	ck_assert_uint_eq(gs.layers_removed + gs.objects_removed, 0);
	lam_layer_free(base);
	lam_layer_free(kept);
	lam_layer_free(dropped);
	lam_layer_free(lone);
}
END_TEST

START_TEST(test_open_clears_leftovers_of_killed_writers)
{
	lt_write(lt_path("store/tmp/abc/layer/index"), "half");
	lam_store *s;
	LT_OK(lam_store_open(&s, lt_store_path, NULL));
	ck_assert(!lt_exists(lt_path("store/tmp/abc")));
	lam_store_free(s);
}
END_TEST

START_TEST(test_stats_count_layers_refs_and_dedup)
{
	lam_store_stats st;
	LT_OK(lam_store_stats_get(lt_store, &st));
	ck_assert_uint_eq(st.layers + st.refs + st.objects + st.files, 0);
	lt_write(lt_path("a/x"), "0123456789");
	lt_write(lt_path("a/y"), "0123456789");
	lt_write(lt_path("a/z"), "other");
	lam_layer *a = lt_import(lt_path("a"), NULL);
	LT_OK(lam_store_ref_set(lt_store, "a", lam_layer_id(a), NULL));
	LT_OK(lam_store_stats_get(lt_store, &st));
	ck_assert_uint_eq(st.layers, 1);
	ck_assert_uint_eq(st.refs, 1);
	ck_assert_uint_eq(st.files, 3);
	ck_assert_uint_eq(st.entries, 4);
	ck_assert_uint_eq(st.objects, 2);
	ck_assert_uint_eq(st.logical_bytes, 25);
	ck_assert_uint_eq(st.stored_bytes, 15);
	lam_layer_free(a);
}
END_TEST

START_TEST(test_two_handles_see_each_others_changes)
{
	lam_store *s2;
	LT_OK(lam_store_open(&s2, lt_store_path, NULL));
	lt_write(lt_path("a/f"), "a");
	lam_layer *a = lt_import(lt_path("a"), NULL);
	lam_layer *x;
	LT_OK(lam_layer_open(&x, s2, lam_layer_id(a)));
	lam_layer_free(x);
	LT_OK(lam_layer_delete(a, 0));
	LT_FAILS(lam_layer_open(&x, s2, lam_layer_id(a)), LAM_ENOTFOUND, NULL);
	/* A layer handle outlives its store handle. */
	lt_write(lt_path("b/f"), "b");
	lam_layer *b;
	LT_OK(lam_layer_import_dir(&b, s2, lt_path("b"), NULL, NULL));
	lam_store_free(s2);
	LT_OK(lam_layer_checkout(b, lt_path("co"), NULL));
	lam_layer_free(b);
	lam_layer_free(a);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("store");
	TCase *tc = tcase_create("store");
	tcase_add_checked_fixture(tc, lt_setup, lt_teardown);
	tcase_add_test(tc, test_create_then_reopen);
	tcase_add_test(tc, test_missing_store_is_not_created_without_the_flag);
	tcase_add_test(tc, test_newer_format_is_refused_clearly);
	tcase_add_test(tc, test_damaged_store_files_are_reported);
	tcase_add_test(tc, test_ref_names_are_validated);
	tcase_add_test(tc, test_refs_set_get_delete_with_compare_and_swap);
	tcase_add_test(tc, test_damaged_refs_file_is_reported_with_its_line);
	tcase_add_test(tc, test_gc_removes_only_what_no_ref_reaches);
	tcase_add_test(tc, test_open_clears_leftovers_of_killed_writers);
	tcase_add_test(tc, test_stats_count_layers_refs_and_dedup);
	tcase_add_test(tc, test_two_handles_see_each_others_changes);
	suite_add_tcase(s, tc);
	return lt_main(s);
}
