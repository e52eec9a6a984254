/* SPDX-License-Identifier: MIT */
/*
 * The allocation-failure sweep of the key/value namespace: a scenario that
 * touches every key/value call runs again and again, failing the 1st, 2nd,
 * … allocation in turn. Each failing call must return an error with its
 * record set, and the view must open again afterwards with a log that
 * replays; nothing may crash or leak (the sanitizer build checks leaks).
 */
#include "kv/kvtest.h"

static int noop_change(lam_change_kind kind, const char *key, const char *value,
		       void *userdata)
{
	(void)kind;
	(void)key;
	(void)value;
	(*(int *)userdata)++;
	return 0;
}

#define TRY(call)                                                             \
	do {                                                                  \
		int rc_ = (call);                                             \
		if (rc_ != 0) {                                               \
			ck_assert_msg(rc_ < 0, "%s returned %d", #call, rc_); \
			ck_assert_int_eq(lam_error_last()->code, rc_);        \
			failures++;                                           \
		}                                                             \
	} while (0)

/* Returns the number of calls that failed; *id gets the view's id. */
static int scenario(lam_layer *base, char id[37], uint64_t fail_at,
		    lam_layer **made_layer)
{
	int failures = 0, seen = 0;
	lam_view *v = NULL;
	lam_key *k = NULL, *k2 = NULL, *lk = NULL;
	lam_layer *l = NULL;
	lam_kv_watch *w = NULL;
	char *text = NULL;
	size_t len;
	uint32_t d;

	/* The view's own calls have their sweep in test-oom; this one
	 * fails allocations in the key/value calls only. */
	lam__test_fail_alloc_at(0);
	LT_OK(lam_view_create(&v, lt_store, base, NULL));
	snprintf(id, 37, "%s", lam_view_id(v));
	lam__test_fail_alloc_at(fail_at);
	lam_kv_options o = LAM_KV_OPTIONS_INIT;
	o.flags = LAM_KV_NOSYNC;
	TRY(lam_kv_configure(v, &o));
	TRY(lam_key_create(&k, v, "Soft\\Vendor\\App", 0, NULL));
	if (k != NULL) {
		TRY(lam_key_watch(&w, k, LAM_KV_WATCH_SUBTREE, noop_change,
				  &seen));
		TRY(lam_key_set_dword(k, "n", 7));
		TRY(lam_key_set_string(k, "s", LAM_KV_SZ, "text"));
		const char *list[] = {"a", "b"};
		TRY(lam_key_set_multi_sz(k, "m", list, 2));
		TRY(lam_key_get_dword(k, "n", &d));
		char *s = NULL;
		TRY(lam_key_get_string(&s, k, "s", NULL));
		lam_free(s);
		char **m = NULL;
		TRY(lam_key_get_multi_sz(&m, NULL, k, "m"));
		lam_free(m);
		lam_key_info info;
		TRY(lam_key_info_get(k, &info));
		lam_key_value_iter *vi = NULL;
		TRY(lam_key_value_iter_new(&vi, k));
		lam_kv_value val;
		int rc;
		while (vi && (rc = lam_key_value_iter_next(vi, &val)) == 0)
			;
		if (vi && rc != LAM_ITEROVER)
			TRY(rc);
		lam_key_value_iter_free(vi);
	}
	if (lam_kv_txn_begin(v) == 0) {
		TRY(lam_kv_set_value(v, "Soft\\Other", "x", LAM_KV_SZ, "y", 2));
		TRY(lam_key_delete(v, "Base\\Gone", LAM_KEY_TREE));
		TRY(lam_kv_txn_commit(v));
	} else {
		failures++;
	}
	TRY(lam_key_create(&k2, v, "Vol", LAM_KEY_VOLATILE, NULL));
	lam_key_subkey_iter *si = NULL;
	if (k2 != NULL) {
		TRY(lam_key_subkey_iter_new(&si, k2));
		const char *name;
		int rc;
		while (si && (rc = lam_key_subkey_iter_next(si, &name)) == 0)
			;
		if (si && rc != LAM_ITEROVER)
			TRY(rc);
		lam_key_subkey_iter_free(si);
	}
	const char *reg = "Windows Registry Editor Version 5.00\n\n"
			  "[HKCU\\Imp]\n\"a\"=dword:00000001\n"
			  "\"b\"=hex(2):25,00,00,00\n";
	TRY(lam_kv_import_reg(v, reg, strlen(reg), NULL));
	lam_key *root = NULL;
	TRY(lam_key_open(&root, v, "", 0));
	if (root != NULL) {
		TRY(lam_key_export_reg(&text, &len, root, NULL));
		lam_free(text);
		lam_key_free(root);
	}
	TRY(lam_kv_view_diff(v, noop_change, &seen));
	/* Committing stages the key/values: that allocates too. */
	TRY(lam_view_commit(v, &l, NULL));
	if (l != NULL) {
		TRY(lam_key_open_layer(&lk, l, "Soft\\Vendor\\App"));
		TRY(lam_kv_diff(base, l, noop_change, &seen));
	}
	TRY(lam_key_delete(v, "Soft", LAM_KEY_TREE));
	lam_kv_watch_free(w);
	lam_key_free(lk);
	lam_key_free(k2);
	lam_key_free(k);
	*made_layer = l;
	lam_view_free(v);
	return failures;
}

typedef struct ids {
	char v[64][33];
	int n;
	const char *keep;
} ids;

static int collect(lam_layer *l, void *userdata)
{
	ids *x = userdata;
	if (strcmp(lam_layer_id(l), x->keep) != 0 && x->n < 64)
		snprintf(x->v[x->n++], 33, "%s", lam_layer_id(l));
	return 0;
}

/* Delete every layer but base: a commit whose last step failed still
 * published its layer, and each round must start from the same store. */
static void drop_layers(lam_layer *base)
{
	ids x = {.keep = lam_layer_id(base)};
	LT_OK(lam_layer_foreach(lt_store, collect, &x));
	for (int i = 0; i < x.n; i++) {
		lam_layer *l;
		if (lam_layer_open(&l, lt_store, x.v[i]) != 0)
			continue;
		LT_OK(lam_layer_delete(l, LAM_DELETE_CASCADE));
		lam_layer_free(l);
	}
}

START_TEST(test_every_allocation_failure_is_reported_and_survived)
{
	lam_view *v = kt_view(NULL);
	kt_set_sz(v, "Base\\Gone", "g", "1");
	kt_set_sz(v, "Base", "b", "2");
	lam_layer *base = kt_commit(v);
	kt_view_free(v);

	int n, total = 0;
	{
		char id0[37];
		lam_layer *l0 = NULL;
		scenario(base, id0, 1000000000, &l0);
		fprintf(stderr,
			"kv oom sweep: the scenario makes %lu "
			"allocations\n",
			(unsigned long)lam__test_alloc_count());
		lam__test_fail_alloc_at(0);
		LT_OK(lam_view_remove(lt_store, id0));
		lam_layer_free(l0);
		drop_layers(base);
	}
	for (n = 1; n < 100000; n++) {
		char id[37];
		lam_layer *l = NULL;
		int failed = scenario(base, id, (uint64_t)n, &l);
		if (failed == 0 && getenv("KV_OOM_TRACE"))
			fprintf(stderr, "round %d: no call failed\n", n);
		total += failed;
		uint64_t made = lam__test_alloc_count();
		lam__test_fail_alloc_at(0);

		if (id[0] != '\0') {
			/* The view opens again, and its log replays. */
			lam_view *r;
			lam_key *k;
			LT_OK(lam_view_open(&r, lt_store, id, NULL));
			LT_OK(lam_key_open(&k, r, "Base", 0));
			lam_key_free(k);
			lam_view_free(r);
			LT_OK(lam_view_remove(lt_store, id));
		}
		lam_layer_free(l);
		drop_layers(base);
		if (made < (uint64_t)n)
			break; /* the scenario ran to the end unhurt */
	}
	size_t problems = 0;
	LT_OK(lam_store_check(lt_store, 0, NULL, NULL, &problems));
	ck_assert_uint_eq(problems, 0);
	fprintf(stderr, "kv oom sweep: %d rounds, %d failed calls\n", n, total);
	ck_assert_int_gt(n, 100);
	ck_assert_int_ge(total, n - 1);
	lam_layer_free(base);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("kv-oom");
	TCase *tc = tcase_create("kv-oom");
	tcase_add_checked_fixture(tc, lt_setup, lt_teardown);
	tcase_set_timeout(tc, 290);
	tcase_add_test(tc,
		       test_every_allocation_failure_is_reported_and_survived);
	suite_add_tcase(s, tc);
	return lt_main(s);
}
