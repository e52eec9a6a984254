/* SPDX-License-Identifier: MIT */
/* A view's own quotas on what its file upper may hold. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "support.h"

static lam_layer *base;
static lam_view *view;

static void setup_quota(void)
{
	lt_setup();
	char *big = malloc(1 << 20);
	memset(big, 'b', 1 << 20);
	lt_write_bytes(lt_path("base/big"), big, 1 << 20);
	free(big);
	lt_write(lt_path("base/small"), "small");
	lt_mkdir(lt_path("base/dir"));
	base = lt_import(lt_path("base"), NULL);
	LT_OK(lam_view_create(&view, lt_store, base, NULL));
}

static void teardown_quota(void)
{
	lam_view_free(view);
	lam_layer_free(base);
	lt_teardown();
}

static int last_errno;
static char last_msg[1024];

static int call(int rc)
{
	last_errno = lam_error_last()->os_errno;
	snprintf(last_msg, sizeof(last_msg), "%s", lam_error_last()->message);
	return rc;
}

static int write_at(const char *path, size_t size, uint64_t off, int flags)
{
	lam_view_file *f;
	int rc = lam_view_file_open(&f, view, path, O_WRONLY | flags, 0644);
	if (rc < 0)
		return call(rc);
	char *buf = malloc(size);
	memset(buf, 'w', size);
	size_t n;
	rc = lam_view_file_pwrite(f, buf, size, off, &n);
	free(buf);
	/* Keep the write's error: closing resets the record. */
	last_errno = lam_error_last()->os_errno;
	snprintf(last_msg, sizeof(last_msg), "%s", lam_error_last()->message);
	lam_view_file_close(f);
	return rc;
}

static void expect_edquot(int rc)
{
	ck_assert_int_eq(rc, LAM_EPOSIX);
	ck_assert_int_eq(last_errno, EDQUOT);
	ck_assert_ptr_nonnull(strstr(last_msg, "quota"));
}

START_TEST(test_byte_quota_refuses_the_write_past_it_and_keeps_the_rest)
{
	lam_view_quota q = LAM_VIEW_QUOTA_INIT;
	q.max_bytes = 280 * 1024;
	LT_OK(lam_view_set_quota(view, &q));
	LT_OK(write_at("a", 100 * 1024, 0, O_CREAT));
	LT_OK(write_at("b", 100 * 1024, 0, O_CREAT));
	lam_view_usage u;
	LT_OK(lam_view_get_usage(view, &u));
	ck_assert_uint_ge(u.bytes, 200 * 1024);
	ck_assert_uint_le(u.bytes, 280 * 1024);
	expect_edquot(write_at("c", 100 * 1024, 0, O_CREAT));
	/* The refused write changed nothing: c exists (the create was
	 * allowed) but holds no data, a and b are intact. */
	lam_stat st;
	LT_OK(lam_view_stat(view, "c", &st));
	ck_assert_uint_eq(st.size, 0);
	LT_OK(lam_view_stat(view, "a", &st));
	ck_assert_uint_eq(st.size, 100 * 1024);
	/* Overwriting allocated bytes needs no new space. */
	LT_OK(write_at("a", 50 * 1024, 0, 0));
	/* Writing into a big lower file copies up chunks: counted too. */
	LT_OK(write_at("big", 10, 0, 0));
	expect_edquot(write_at("big", 200 * 1024, 300 * 1024, 0));
	lam_view_file *f;
	LT_OK(lam_view_file_open(&f, view, "big", O_RDONLY, 0));
	char buf[16];
	size_t got;
	LT_OK(lam_view_file_pread(f, buf, 16, 300 * 1024, &got));
	ck_assert(memcmp(buf, "bbbbbbbbbbbbbbbb", 16) == 0);
	LT_OK(lam_view_file_close(f));
	/* Freeing space lets writes through again. */
	LT_OK(lam_view_unlink(view, "b"));
	LT_OK(write_at("c", 100 * 1024, 0, 0));
}
END_TEST

START_TEST(test_inode_quota_counts_every_new_entry)
{
	lam_view_quota q = LAM_VIEW_QUOTA_INIT;
	q.max_inodes = 4;
	LT_OK(lam_view_set_quota(view, &q));
	LT_OK(lam_view_mkdir(view, "d1", 0755));
	LT_OK(write_at("d1/f", 1, 0, O_CREAT));
	LT_OK(lam_view_symlink(view, "f", "d1/l"));
	LT_OK(lam_view_link(view, "d1/f", "d1/hard")); /* no new inode */
	LT_OK(lam_view_mkfifo(view, "p", 0600));
	expect_edquot(call(lam_view_mkdir(view, "d2", 0755)));
	expect_edquot(write_at("g", 1, 0, O_CREAT));
	/* Copy-up of a lower entry needs an inode too. */
	expect_edquot(call(lam_view_chmod(view, "small", 0600)));
	lam_stat st;
	LT_OK(lam_view_stat(view, "small", &st));
	ck_assert_uint_eq(st.mode & 0777, 0644);
	lam_view_usage u;
	LT_OK(lam_view_get_usage(view, &u));
	ck_assert_uint_eq(u.inodes, 4);
	LT_OK(lam_view_unlink(view, "p"));
	LT_OK(lam_view_chmod(view, "small", 0600));
}
END_TEST

START_TEST(test_quota_and_usage_persist_across_reopen)
{
	lam_view_quota q = LAM_VIEW_QUOTA_INIT;
	q.max_bytes = 64 * 1024;
	q.max_inodes = 10;
	LT_OK(lam_view_set_quota(view, &q));
	LT_OK(write_at("x", 40 * 1024, 0, O_CREAT));
	char id[64];
	snprintf(id, sizeof(id), "%s", lam_view_id(view));
	lam_view_free(view);
	LT_OK(lam_view_open(&view, lt_store, id, NULL));
	lam_view_quota got;
	LT_OK(lam_view_get_quota(view, &got));
	ck_assert_uint_eq(got.max_bytes, 64 * 1024);
	ck_assert_uint_eq(got.max_inodes, 10);
	lam_view_usage u;
	LT_OK(lam_view_get_usage(view, &u));
	ck_assert_uint_ge(u.bytes, 40 * 1024);
	ck_assert_uint_eq(u.inodes, 1);
	expect_edquot(write_at("y", 40 * 1024, 0, O_CREAT));
	/* A commit empties the upper: the whole quota is free again. */
	LT_OK(lam_view_commit(view, NULL, NULL));
	LT_OK(lam_view_get_usage(view, &u));
	ck_assert_uint_eq(u.bytes, 0);
	ck_assert_uint_eq(u.inodes, 0);
	LT_OK(write_at("y", 40 * 1024, 0, O_CREAT));
}
END_TEST

START_TEST(test_key_quotas_come_from_the_view_and_persist)
{
	lam_view_quota q = LAM_VIEW_QUOTA_INIT;
	q.max_keys = 3;
	q.max_value_bytes = 64;
	LT_OK(lam_view_set_quota(view, &q));
	LT_OK(lam_kv_set_value(view, "HKLM\\Soft\\A", "v", LAM_KV_BINARY,
			       "0123456789", 10));
	LT_OK(lam_kv_set_value(view, "HKLM\\Soft\\A", "w", LAM_KV_BINARY,
			       "0123456789", 10));
	/* Three keys are used (HKLM, Soft, A): a fourth is refused. */
	LT_FAILS(lam_kv_set_value(view, "HKLM\\Soft\\B", "v", LAM_KV_BINARY,
				  "x", 1),
		 LAM_EQUOTA, "quota");
	char big[100];
	memset(big, 'v', sizeof(big));
	LT_FAILS(lam_kv_set_value(view, "HKLM\\Soft\\A", "big", LAM_KV_BINARY,
				  big, sizeof(big)),
		 LAM_EQUOTA, "quota");
	lam_view_usage u;
	LT_OK(lam_view_get_usage(view, &u));
	ck_assert_uint_eq(u.keys, 3);
	ck_assert_uint_eq(u.value_bytes, 20);
	/* After a restart the same limits hold and nothing was lost. */
	char id[64];
	snprintf(id, sizeof(id), "%s", lam_view_id(view));
	lam_view_free(view);
	LT_OK(lam_view_open(&view, lt_store, id, NULL));
	LT_FAILS(lam_kv_set_value(view, "HKLM\\Soft\\C", "v", LAM_KV_BINARY,
				  "x", 1),
		 LAM_EQUOTA, "quota");
	LT_OK(lam_view_get_usage(view, &u));
	ck_assert_uint_eq(u.keys, 3);
	ck_assert_uint_eq(u.value_bytes, 20);
}
END_TEST

START_TEST(test_bad_quota_arguments)
{
	lam_view_quota q = {99, 0, 0, 0, 0};
	LT_FAILS(lam_view_set_quota(view, &q), LAM_EINVAL, "version");
	LT_FAILS(lam_view_set_quota(view, NULL), LAM_EINVAL, NULL);
	lam_view *ro;
	lam_view_options o = LAM_VIEW_OPTIONS_INIT;
	o.flags = LAM_VIEW_READONLY;
	LT_OK(lam_view_create(&ro, lt_store, base, &o));
	lam_view_quota ok = LAM_VIEW_QUOTA_INIT;
	ck_assert_int_eq(lam_view_set_quota(ro, &ok), LAM_EPOSIX);
	ck_assert_int_eq(lam_error_last()->os_errno, EROFS);
	lam_view_free(ro);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("quota");
	TCase *tc = tcase_create("quota");
	tcase_add_checked_fixture(tc, setup_quota, teardown_quota);
	tcase_add_test(
		tc,
		test_byte_quota_refuses_the_write_past_it_and_keeps_the_rest);
	tcase_add_test(tc, test_inode_quota_counts_every_new_entry);
	tcase_add_test(tc, test_quota_and_usage_persist_across_reopen);
	tcase_add_test(tc, test_key_quotas_come_from_the_view_and_persist);
	tcase_add_test(tc, test_bad_quota_arguments);
	suite_add_tcase(s, tc);
	return lt_main(s);
}
