/* SPDX-License-Identifier: MIT */
/* The error model, version, allocator and log hooks. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support.h"

START_TEST(test_version_matches_headers)
{
	ck_assert_str_eq(lam_version(), LAMINA_VERSION_STRING);
	ck_assert_int_eq(lam_version_number(), LAMINA_VERSION_NUMBER);
}
END_TEST

START_TEST(test_strerror_names_every_code)
{
	static const int codes[] = {
		LAM_OK,		  LAM_ERROR,	 LAM_ENOMEM,   LAM_EINVAL,
		LAM_EIO,	  LAM_ENOTFOUND, LAM_EEXISTS,  LAM_EAMBIGUOUS,
		LAM_ECORRUPT,	  LAM_EVERSION,	 LAM_EBUSY,    LAM_ECONFLICT,
		LAM_ENAMETOOLONG, LAM_EACCES,	 LAM_EBADNAME, LAM_EUNSAFE,
		LAM_ENOTSUP,	  LAM_EQUOTA,	 LAM_EPOSIX,   LAM_EUNAVAILABLE,
		LAM_ITEROVER,
	};
	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
		const char *s = lam_strerror(codes[i]);
		ck_assert_ptr_nonnull(s);
		ck_assert_str_ne(s, "unknown error");
		for (size_t k = 0; k < i; k++)
			ck_assert_str_ne(s, lam_strerror(codes[k]));
	}
	ck_assert_str_eq(lam_strerror(-999), "unknown error");
}
END_TEST

START_TEST(test_error_record_is_reset_by_each_call)
{
	lam_store *s = NULL;
	LT_FAILS(lam_store_open(&s, "/nonexistent/lamina/store", NULL),
		 LAM_ENOTFOUND, "/nonexistent/lamina/store");
	ck_assert_ptr_null(s);
	ck_assert_int_ne(lam_error_last()->os_errno, 0);
	LT_OK(lam_store_ref_check_name("fine"));
	ck_assert_int_eq(lam_error_last()->code, 0);
	ck_assert_str_eq(lam_error_last()->message, "");
	lam_error_clear();
	ck_assert_int_eq(lam_error_last()->code, 0);
}
END_TEST

static _Thread_local int thread_code;

static void *other_thread(void *arg)
{
	(void)arg;
	thread_code = lam_error_last()->code;
	return NULL;
}

START_TEST(test_error_record_is_per_thread)
{
	LT_FAILS(lam_store_ref_check_name("a/../b"), LAM_EBADNAME, "..");
	pthread_t t;
	pthread_create(&t, NULL, other_thread, NULL);
	pthread_join(t, NULL);
	ck_assert_int_eq(thread_code, 0);
	ck_assert_int_eq(lam_error_last()->code, LAM_EBADNAME);
}
END_TEST

static size_t allocs, frees;

static void *count_malloc(size_t n, void *ud)
{
	ck_assert_ptr_eq(ud, &allocs);
	allocs++;
	return malloc(n);
}

static void *count_realloc(void *p, size_t n, void *ud)
{
	(void)ud;
	if (p == NULL)
		allocs++;
	return realloc(p, n);
}

static void count_free(void *p, void *ud)
{
	(void)ud;
	if (p != NULL)
		frees++;
	free(p);
}

START_TEST(test_allocator_hook_sees_every_allocation)
{
	lam_allocator a = {count_malloc, count_realloc, count_free, &allocs};
	lam_set_allocator(&a);
	lt_write(lt_path("src/f"), "data");
	lam_store *s;
	lam_store_options o = LAM_STORE_OPTIONS_INIT;
	o.flags = LAM_STORE_CREATE;
	LT_OK(lam_store_open(&s, lt_path("hooked"), &o));
	lam_layer *l;
	LT_OK(lam_layer_import_dir(&l, s, lt_path("src"), NULL, NULL));
	char *dot;
	LT_OK(lam_store_graph_dot(&dot, s));
	lam_free(dot);
	lam_layer_free(l);
	lam_store_free(s);
	lam_set_allocator(NULL);
	ck_assert_uint_gt(allocs, 0);
	ck_assert_uint_eq(allocs, frees);
}
END_TEST

static int log_calls;

static void on_log(lam_log_level level, const char *msg, void *ud)
{
	ck_assert_int_le(level, LAM_LOG_DEBUG);
	ck_assert_ptr_nonnull(msg);
	ck_assert_ptr_eq(ud, &log_calls);
	log_calls++;
}

START_TEST(test_log_handler_receives_messages_and_can_be_removed)
{
	lam_set_log_handler(on_log, LAM_LOG_DEBUG, &log_calls);
	lt_mkdir(lt_path("src"));
	/* A socket is skipped with an info message. */
	char cmd[9000];
	snprintf(cmd, sizeof(cmd),
		 "python3 -c \"import socket;s=socket.socket(socket.AF_UNIX);"
		 "s.bind('%s')\"",
		 lt_path("src/sock"));
	ck_assert_int_eq(lt_run(cmd), 0);
	lam_layer *l = lt_import(lt_path("src"), NULL);
	lam_layer_free(l);
	ck_assert_int_gt(log_calls, 0);
	lam_set_log_handler(NULL, LAM_LOG_DEBUG, NULL);
	int before = log_calls;
	l = lt_import(lt_path("src"), NULL);
	lam_layer_free(l);
	ck_assert_int_eq(log_calls, before);
}
END_TEST

START_TEST(test_null_arguments_are_rejected_not_crashed)
{
	LT_FAILS(lam_store_open(NULL, "x", NULL), LAM_EINVAL, NULL);
	lam_store *s = (lam_store *)1;
	LT_FAILS(lam_store_open(&s, "", NULL), LAM_EINVAL, NULL);
	ck_assert_ptr_null(s);
	lam_store_options bad = {99, 0};
	LT_FAILS(lam_store_open(&s, lt_store_path, &bad), LAM_EINVAL,
		 "version");
	lam_layer *l = (lam_layer *)1;
	LT_FAILS(lam_layer_open(&l, lt_store, NULL), LAM_EINVAL, NULL);
	ck_assert_ptr_null(l);
	LT_FAILS(lam_layer_import_dir(&l, lt_store, NULL, NULL, NULL),
		 LAM_EINVAL, NULL);
	char *str = (char *)1;
	LT_FAILS(lam_store_ref_get(&str, lt_store, ""), LAM_EBADNAME, NULL);
	ck_assert_ptr_null(str);
	lam_store_free(NULL);
	lam_layer_free(NULL);
	lam_free(NULL);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("core");
	TCase *tc = tcase_create("core");
	tcase_add_checked_fixture(tc, lt_setup, lt_teardown);
	tcase_add_test(tc, test_version_matches_headers);
	tcase_add_test(tc, test_strerror_names_every_code);
	tcase_add_test(tc, test_error_record_is_reset_by_each_call);
	tcase_add_test(tc, test_error_record_is_per_thread);
	tcase_add_test(tc, test_allocator_hook_sees_every_allocation);
	tcase_add_test(tc,
		       test_log_handler_receives_messages_and_can_be_removed);
	tcase_add_test(tc, test_null_arguments_are_rejected_not_crashed);
	suite_add_tcase(s, tc);
	return lt_main(s);
}
