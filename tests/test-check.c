/* SPDX-License-Identifier: MIT */
/* lam_store_check finds each kind of damage and names it precisely. */
#include <fcntl.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "support.h"

typedef struct found {
	char text[8192];
	size_t n;
} found;

static int collect(const char *what, const char *problem, void *ud)
{
	found *f = ud;
	f->n++;
	size_t len = strlen(f->text);
	snprintf(f->text + len, sizeof(f->text) - len, "%s: %s\n", what,
		 problem);
	return 0;
}

static lam_layer *layer;
static char layer_dir[4300];

static void setup_layer(void)
{
	lt_setup();
	lt_write(lt_path("src/a"), "alpha content");
	lt_write(lt_path("src/dir/b"), "beta content");
	lt_symlink("a", lt_path("src/link"));
	layer = lt_import(lt_path("src"), NULL);
	LT_OK(lam_store_ref_set(lt_store, "img", lam_layer_id(layer), NULL));
	snprintf(layer_dir, sizeof(layer_dir), "%s/layers/%s", lt_store_path,
		 lam_layer_id(layer));
}

static void teardown_layer(void)
{
	lam_layer_free(layer);
	lt_teardown();
}

/* Run the check and expect exactly the problems containing each text. */
static void expect_problem(const char *what, const char *text)
{
	found f = {{0}, 0};
	size_t n = 99;
	LT_OK(lam_store_check(lt_store, 0, collect, &f, &n));
	ck_assert_uint_eq(n, f.n);
	ck_assert_msg(n > 0, "no problem found, expected %s", text);
	ck_assert_msg(strstr(f.text, what) != NULL, "'%s' not named in:\n%s",
		      what, f.text);
	ck_assert_msg(strstr(f.text, text) != NULL, "'%s' not in:\n%s", text,
		      f.text);
}

static void flip_byte(const char *path, off_t off)
{
	int fd = open(path, O_RDWR);
	ck_assert_int_ge(fd, 0);
	unsigned char c;
	ck_assert_int_eq(pread(fd, &c, 1, off), 1);
	c ^= 0x5a;
	ck_assert_int_eq(pwrite(fd, &c, 1, off), 1);
	close(fd);
}

static char *object_path(const char *content)
{
	/* Find the object file with this content. */
	char cmd[9000];
	snprintf(cmd, sizeof(cmd),
		 "grep -rlx -- '%s' '%s/objects' > '%s/obj.txt'", content,
		 lt_store_path, lt_dir);
	ck_assert_int_eq(lt_run(cmd), 0);
	char *p = lt_read(lt_path("obj.txt"), NULL);
	p[strcspn(p, "\n")] = '\0';
	return p;
}

START_TEST(test_a_sound_store_has_no_problems)
{
	found f = {{0}, 0};
	size_t n = 99;
	LT_OK(lam_store_check(lt_store, 0, collect, &f, &n));
	ck_assert_msg(n == 0, "%s", f.text);
	LT_OK(lam_store_check(lt_store, LAM_CHECK_QUICK, collect, &f, &n));
	ck_assert_uint_eq(n, 0);
}
END_TEST

START_TEST(test_index_bit_flip_is_a_checksum_mismatch)
{
	char p[4400];
	snprintf(p, sizeof(p), "%s/index", layer_dir);
	chmod(p, 0644);
	flip_byte(p, 100);
	expect_problem(lam_layer_id(layer), "index: checksum mismatch");
	/* Opening the layer's content reports it as well. */
	LT_FAILS(lam_layer_checkout(layer, lt_path("co"), NULL), LAM_ECORRUPT,
		 "checksum mismatch");
}
END_TEST

START_TEST(test_meta_edit_is_a_checksum_mismatch)
{
	char p[4400];
	snprintf(p, sizeof(p), "%s/meta", layer_dir);
	char *m = lt_read(p, NULL);
	char *size = strstr(m, "size ");
	size[5] = size[5] == '9' ? '8' : '9';
	lt_write(p, m);
	free(m);
	expect_problem(lam_layer_id(layer), "meta: checksum mismatch");
}
END_TEST

START_TEST(test_changed_object_bytes_are_found)
{
	char *p = object_path("alpha content");
	chmod(p, 0644);
	flip_byte(p, 3);
	expect_problem("object", "content does not match its digest");
	/* The quick check skips content but still sees sizes. */
	size_t n = 99;
	LT_OK(lam_store_check(lt_store, LAM_CHECK_QUICK, NULL, NULL, &n));
	ck_assert_uint_eq(n, 0);
	lt_write(p, "short");
	LT_OK(lam_store_check(lt_store, LAM_CHECK_QUICK, NULL, NULL, &n));
	ck_assert_uint_eq(n, 1);
	free(p);
}
END_TEST

START_TEST(test_missing_object_is_found)
{
	char *p = object_path("beta content");
	ck_assert_int_eq(unlink(p), 0);
	expect_problem(lam_layer_id(layer), "dir/b: object");
	free(p);
}
END_TEST

START_TEST(test_missing_parent_is_found)
{
	lt_write(lt_path("child/c"), "child");
	lam_layer *c = lt_import(lt_path("child"), layer);
	LT_OK(lam_store_ref_set(lt_store, "child", lam_layer_id(c), NULL));
	lt_rmtree(layer_dir);
	expect_problem(lam_layer_id(c), "parent");
	lam_layer_free(c);
}
END_TEST

START_TEST(test_layer_folder_tampering_is_found)
{
	char p[4400];
	snprintf(p, sizeof(p), "%s/fs/dir/b", layer_dir);
	ck_assert_int_eq(unlink(p), 0);
	expect_problem(lam_layer_id(layer), "fs/dir/b: missing");
	lt_write(p, "");
	snprintf(p, sizeof(p), "%s/fs/extra", layer_dir);
	lt_write(p, "x");
	expect_problem(lam_layer_id(layer), "holds 5 entries, the index 4");
	unlink(p);
	snprintf(p, sizeof(p), "%s/fs/link", layer_dir);
	unlink(p);
	lt_write(p, "x");
	expect_problem(lam_layer_id(layer), "fs/link: type differs");
}
END_TEST

START_TEST(test_ref_to_a_missing_layer_is_found)
{
	char text[200];
	snprintf(text, sizeof(text), "img %s\nghost %032x\n",
		 lam_layer_id(layer), 0);
	lt_write(lt_path("store/refs"), text);
	expect_problem("ref ghost", "missing layer");
}
END_TEST

START_TEST(test_stray_entry_in_layers_is_found)
{
	lt_mkdir(lt_path("store/layers/not-a-layer"));
	expect_problem("layers", "not-a-layer");
}
END_TEST

static int stop_now(const char *what, const char *problem, void *ud)
{
	(void)what;
	(void)problem;
	(*(int *)ud)++;
	return 7;
}

START_TEST(test_callback_can_stop_the_check)
{
	lt_mkdir(lt_path("store/layers/stray1"));
	lt_mkdir(lt_path("store/layers/stray2"));
	int calls = 0;
	ck_assert_int_eq(lam_store_check(lt_store, 0, stop_now, &calls, NULL),
			 7);
	ck_assert_int_eq(calls, 1);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("check");
	TCase *tc = tcase_create("check");
	tcase_add_checked_fixture(tc, setup_layer, teardown_layer);
	tcase_add_test(tc, test_a_sound_store_has_no_problems);
	tcase_add_test(tc, test_index_bit_flip_is_a_checksum_mismatch);
	tcase_add_test(tc, test_meta_edit_is_a_checksum_mismatch);
	tcase_add_test(tc, test_changed_object_bytes_are_found);
	tcase_add_test(tc, test_missing_object_is_found);
	tcase_add_test(tc, test_missing_parent_is_found);
	tcase_add_test(tc, test_layer_folder_tampering_is_found);
	tcase_add_test(tc, test_ref_to_a_missing_layer_is_found);
	tcase_add_test(tc, test_stray_entry_in_layers_is_found);
	tcase_add_test(tc, test_callback_can_stop_the_check);
	suite_add_tcase(s, tc);
	return lt_main(s);
}
