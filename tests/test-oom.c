/* SPDX-License-Identifier: MIT */
/*
 * The allocation-failure sweep: run a scenario that touches every public
 * call, failing the 1st, 2nd, … allocation in turn through the allocator
 * hook. Each failing call must return an error (LAM_ENOMEM where the failure
 * reached it) and leave the store sound; nothing may crash or leak (the
 * sanitizer build checks leaks).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support.h"
#include "util/internal.h"

static int noop_ref(const char *n, const char *id, void *ud)
{
	(void)n;
	(void)id;
	(void)ud;
	return 0;
}

static int noop_layer(lam_layer *l, void *ud)
{
	(void)l;
	(void)ud;
	return 0;
}

/* Returns the number of calls that failed. */
static int scenario(int round)
{
	int failures = 0;
	lam_store *s = NULL;
	lam_layer *base = NULL, *top = NULL, *x = NULL;
	char *str = NULL;
#define TRY(call)                                                             \
	do {                                                                  \
		int rc_ = (call);                                             \
		if (rc_ != 0) {                                               \
			ck_assert_msg(rc_ < 0, "%s returned %d", #call, rc_); \
			ck_assert_int_eq(lam_error_last()->code, rc_);        \
			failures++;                                           \
		}                                                             \
	} while (0)
	lam_store_options o = LAM_STORE_OPTIONS_INIT;
	o.flags = LAM_STORE_CREATE;
	TRY(lam_store_open(&s, lt_path("oom-%d", round), &o));
	if (s == NULL)
		return failures;
	TRY(lam_layer_import_dir(&base, s, lt_path("base"), NULL, NULL));
	if (base != NULL) {
		TRY(lam_layer_import_dir(&top, s, lt_path("top"), base, NULL));
		TRY(lam_store_ref_set(s, "img", lam_layer_id(base), NULL));
	}
	TRY(lam_store_ref_get(&str, s, "img"));
	lam_free(str);
	TRY(lam_store_ref_foreach(s, noop_ref, NULL));
	TRY(lam_layer_foreach(s, noop_layer, NULL));
	if (top != NULL) {
		TRY(lam_layer_open(&x, s, lam_layer_id(top)));
		lam_layer_free(x);
		TRY(lam_layer_ancestors_foreach(top, noop_layer, NULL));
		TRY(lam_layer_refs_foreach(top, noop_ref, NULL));
		TRY(lam_layer_merge_base(&x, top, base));
		lam_layer_free(x);
		TRY(lam_layer_checkout(top, lt_path("co-%d", round), NULL));
	}
	TRY(lam_store_graph_dot(&str, s));
	lam_free(str);
	lam_store_stats st;
	TRY(lam_store_stats_get(s, &st));
	size_t problems = 0;
	TRY(lam_store_check(s, 0, NULL, NULL, &problems));
	lam_gc_stats gs;
	TRY(lam_store_gc(s, &gs));
	if (top != NULL)
		TRY(lam_layer_delete(top, 0));
	lam_layer_free(top);
	lam_layer_free(base);
	lam_store_free(s);
#undef TRY
	return failures;
}

START_TEST(test_every_allocation_failure_is_reported_and_survived)
{
	lt_write(lt_path("base/a"), "alpha");
	lt_write(lt_path("base/dir/b"), "beta");
	lt_symlink("a", lt_path("base/l"));
	lt_write(lt_path("top/c"), "gamma");
	lam__test_fail_alloc_at(0);
	int n;
	int total_failures = 0;
	for (n = 1; n < 100000; n++) {
		lam__test_fail_alloc_at((uint64_t)n);
		total_failures += scenario(n);
		uint64_t made = lam__test_alloc_count();
		lam__test_fail_alloc_at(0);
		/* Whatever failed, the store must still be sound. */
		lam_store *s;
		lam_store_options o = LAM_STORE_OPTIONS_INIT;
		o.flags = LAM_STORE_CREATE;
		LT_OK(lam_store_open(&s, lt_path("oom-%d", n), &o));
		size_t problems = 0;
		LT_OK(lam_store_check(s, 0, NULL, NULL, &problems));
		ck_assert_msg(problems == 0, "round %d left %zu problems", n,
			      problems);
		lam_store_free(s);
		lt_rmtree(lt_path("oom-%d", n));
		lt_rmtree(lt_path("co-%d", n));
		if (made < (uint64_t)n)
			break; /* the scenario ran to the end unhurt */
	}
	fprintf(stderr, "oom sweep: %d rounds, %d failed calls\n", n,
		total_failures);
	ck_assert_int_gt(n, 50);
	ck_assert_int_ge(total_failures, n - 1);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("oom");
	TCase *tc = tcase_create("oom");
	tcase_add_checked_fixture(tc, lt_setup, lt_teardown);
	tcase_set_timeout(tc, 280);
	tcase_add_test(tc,
		       test_every_allocation_failure_is_reported_and_survived);
	suite_add_tcase(s, tc);
	return lt_main(s);
}
