/* SPDX-License-Identifier: MIT */
/* Stacking: random changes over many commits checked against a model, and
 * a chain of 500 layers read through views and through a fresh merge. */
#include "kv/kvtest.h"

#define NK 10
#define NS 3
#define NV 4

/* What the key tree should hold. */
typedef struct model {
	bool kex[NK];
	bool sex[NK][NS];
	int kval[NK][NV];
	int sval[NK][NS][NV];
} model;

static uint64_t rng = 0x9e3779b97f4a7c15u;

static unsigned int rnd(unsigned int n)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (unsigned int)(rng % n);
}

static void clear_key(model *m, int k)
{
	m->kex[k] = false;
	for (int v = 0; v < NV; v++)
		m->kval[k][v] = -1;
	for (int s = 0; s < NS; s++) {
		m->sex[k][s] = false;
		for (int v = 0; v < NV; v++)
			m->sval[k][s][v] = -1;
	}
}

/* A path in a random spelling: names fold. */
static const char *key_path(int k, int s)
{
	static char buf[64];
	if (s < 0)
		snprintf(buf, sizeof(buf), "%s%d", rnd(2) ? "Key" : "KEY", k);
	else
		snprintf(buf, sizeof(buf), "%s%d\\%s%d", rnd(2) ? "key" : "Key",
			 k, rnd(2) ? "Sub" : "sUB", s);
	return buf;
}

static int get_dword(lam_view *v, const char *path, const char *name)
{
	uint32_t d;
	size_t need;
	int rc = lam_kv_get_value(v, path, name, NULL, &d, 4, &need);
	if (rc == LAM_ENOTFOUND)
		return -1;
	ck_assert_msg(rc == 0, "%s: %s", path, lam_error_last()->message);
	return (int)d;
}

static void check_key(lam_key *k, const int *vals, const char *what)
{
	char want[64] = "";
	for (int v = 0; v < NV; v++) {
		if (vals[v] < 0)
			continue;
		size_t n = strlen(want);
		snprintf(want + n, sizeof(want) - n, "%sv%d", n ? "," : "", v);
		uint32_t d;
		char name[8];
		snprintf(name, sizeof(name), "V%d", v);
		LT_OK(lam_key_get_dword(k, name, &d));
		ck_assert_msg((int)d == vals[v], "%s:v%d is %u, expected %d",
			      what, v, d, vals[v]);
	}
	char *got = kt_values(k);
	ck_assert_msg(strcmp(got, want) == 0,
		      "%s values \"%s\", expected \"%s\"", what, got, want);
	free(got);
}

/* Compare the tree a root key shows with the model. */
static void check_tree(lam_key *root, const model *m, const char *when)
{
	char want[256] = "";
	for (int k = 0; k < NK; k++) {
		char name[32], what[64];
		lam_key *kk;
		snprintf(name, sizeof(name), "key%d", k);
		snprintf(what, sizeof(what), "%s: Key%d", when, k);
		int rc = lam_key_open_at(&kk, root, name, 0);
		if (!m->kex[k]) {
			ck_assert_msg(rc == LAM_ENOTFOUND, "%s exists", what);
			continue;
		}
		ck_assert_msg(rc == 0, "%s: %s", what,
			      lam_error_last()->message);
		size_t n = strlen(want);
		snprintf(want + n, sizeof(want) - n, "%s%s", n ? "," : "",
			 lam_key_name(kk));
		check_key(kk, m->kval[k], what);
		char subs[64] = "";
		for (int s = 0; s < NS; s++) {
			lam_key *sk;
			snprintf(name, sizeof(name), "SUB%d", s);
			rc = lam_key_open_at(&sk, kk, name, 0);
			if (!m->sex[k][s]) {
				ck_assert_msg(rc == LAM_ENOTFOUND,
					      "%s\\Sub%d exists", what, s);
				continue;
			}
			ck_assert_msg(rc == 0, "%s\\Sub%d: %s", what, s,
				      lam_error_last()->message);
			size_t sn = strlen(subs);
			snprintf(subs + sn, sizeof(subs) - sn, "%s%s",
				 sn ? "," : "", lam_key_name(sk));
			check_key(sk, m->sval[k][s], what);
			lam_key_free(sk);
		}
		char *got = kt_subkeys(kk);
		ck_assert_msg(strcmp(got, subs) == 0,
			      "%s subkeys \"%s\", expected \"%s\"", what, got,
			      subs);
		free(got);
		lam_key_free(kk);
	}
	/* Root names sort by fold: key0 < key1 < ... (NK <= 10). */
	char *got = kt_subkeys(root);
	ck_assert_msg(strcmp(got, want) == 0,
		      "%s: root \"%s\", expected \"%s\"", when, got, want);
	free(got);
}

static void check_view(lam_view *v, const model *m, const char *when)
{
	lam_key *root;
	LT_OK(lam_key_open(&root, v, "", 0));
	check_tree(root, m, when);
	lam_key_free(root);
}

START_TEST(test_random_changes_over_commits_match_a_model)
{
	model m;
	lam_view *v = kt_view(NULL);
	lam_layer *last = NULL;
	int commits = 0;

	for (int k = 0; k < NK; k++)
		clear_key(&m, k);
	for (int step = 0; step < 700; step++) {
		int k = (int)rnd(NK), s = (int)rnd(NS), val = (int)rnd(NV);
		int x = (int)rnd(1000);
		char name[8];
		snprintf(name, sizeof(name), "v%d", val);
		switch (rnd(10)) {
		case 0:
		case 1:
		case 2:
			kt_set_dword(v, key_path(k, -1), name, (uint32_t)x);
			m.kex[k] = true;
			m.kval[k][val] = x;
			break;
		case 3:
		case 4:
			kt_set_dword(v, key_path(k, s), name, (uint32_t)x);
			m.kex[k] = m.sex[k][s] = true;
			m.sval[k][s][val] = x;
			break;
		case 5: {
			lam_key *kk;
			int rc = lam_key_open(&kk, v, key_path(k, -1), 0);
			if (!m.kex[k]) {
				ck_assert_int_eq(rc, LAM_ENOTFOUND);
				break;
			}
			LT_OK(rc);
			rc = lam_key_delete_value(kk, name);
			ck_assert_int_eq(
				rc, m.kval[k][val] >= 0 ? 0 : LAM_ENOTFOUND);
			m.kval[k][val] = -1;
			lam_key_free(kk);
			break;
		}
		case 6: {
			int rc = lam_key_delete(v, key_path(k, -1),
						LAM_KEY_TREE);
			ck_assert_int_eq(rc, m.kex[k] ? 0 : LAM_ENOTFOUND);
			clear_key(&m, k);
			break;
		}
		case 7: {
			int rc =
				lam_key_delete(v, key_path(k, s), LAM_KEY_TREE);
			ck_assert_int_eq(rc, m.sex[k][s] ? 0 : LAM_ENOTFOUND);
			m.sex[k][s] = false;
			for (int i = 0; i < NV; i++)
				m.sval[k][s][i] = -1;
			break;
		}
		case 8: {
			lam_key *kk;
			int created;
			LT_OK(lam_key_create(&kk, v, key_path(k, s), 0,
					     &created));
			ck_assert_int_eq(created, !m.sex[k][s]);
			m.kex[k] = m.sex[k][s] = true;
			lam_key_free(kk);
			break;
		}
		case 9:
			if (rnd(3) == 0) {
				lam_layer_free(last);
				last = kt_commit(v);
				commits++;
				check_view(v, &m, "after a commit");
			}
			break;
		}
		if (step % 25 == 0) {
			char when[32];
			snprintf(when, sizeof(when), "step %d", step);
			check_view(v, &m, when);
		}
	}
	lam_layer_free(last);
	last = kt_commit(v);
	commits++;
	check_view(v, &m, "at the end");
	/* The view's chain grew one layer at a time; a fresh merge of the
	 * whole chain must agree. */
	lam_key *root;
	LT_OK(lam_key_open_layer(&root, last, ""));
	check_tree(root, &m, "top layer");
	lam_key_free(root);
	kt_view_free(v);
	v = kt_view(last);
	check_view(v, &m, "new view");
	kt_view_free(v);
	lam_layer_free(last);
	ck_assert_int_gt(commits, 10);
}
END_TEST

START_TEST(test_five_hundred_layers_stack)
{
	lam_view *v = kt_view(NULL);
	lam_layer *last = NULL;
	int want[100];

	for (int i = 0; i < 100; i++)
		want[i] = -1;
	for (int i = 0; i < 500; i++) {
		char path[32];
		snprintf(path, sizeof(path), "Stack\\k%03d", i % 100);
		kt_set_dword(v, path, "v", (uint32_t)i);
		want[i % 100] = i;
		/* Every 7th layer deletes a key of an earlier layer. */
		if (i % 7 == 6) {
			int d = (i * 13) % 100;
			snprintf(path, sizeof(path), "Stack\\k%03d", d);
			if (want[d] >= 0) {
				LT_OK(lam_key_delete(v, path, LAM_KEY_TREE));
				want[d] = -1;
			}
		}
		lam_layer_free(last);
		last = kt_commit(v);
	}
	ck_assert_uint_eq(lam_layer_depth(last), 500);
	kt_view_free(v);

	/* A fresh view merges the 500 layers anew. */
	v = kt_view(last);
	lam_key *k;
	LT_OK(lam_key_open(&k, v, "Stack", 0));
	char expect[1024] = "";
	for (int i = 0; i < 100; i++) {
		char path[32];
		snprintf(path, sizeof(path), "Stack\\k%03d", i);
		ck_assert_int_eq(get_dword(v, path, "v"), want[i]);
		if (want[i] < 0)
			continue;
		size_t n = strlen(expect);
		snprintf(expect + n, sizeof(expect) - n, "%sk%03d",
			 n ? "," : "", i);
	}
	kt_assert_str(kt_subkeys(k), expect);
	lam_key_info info;
	LT_OK(lam_key_info_get(k, &info));
	ck_assert_uint_gt(info.subkeys, 50);
	lam_key_free(k);
	kt_view_free(v);
	lam_layer_free(last);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("kv-stack");
	TCase *tc = tcase_create("kv-stack");
	tcase_add_checked_fixture(tc, lt_setup, lt_teardown);
	tcase_set_timeout(tc, 280);
	tcase_add_test(tc, test_random_changes_over_commits_match_a_model);
	tcase_add_test(tc, test_five_hundred_layers_stack);
	suite_add_tcase(s, tc);
	return lt_main(s);
}
