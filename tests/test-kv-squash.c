/* SPDX-License-Identifier: MIT */
/* Squash keeps key/value deltas: the squashed layer's merged key tree is
 * the top's, onto a base and onto nothing, and its files still match. */
#include "kv/kvtest.h"

/* Append a dump of key's subtree: keys with their spelling, values with
 * type and bytes (hex), depth first in the stable order. */
static void dump_key(lam_key *k, lam__buf *out)
{
	lam_key_value_iter *vi;
	lam_key_subkey_iter *si;
	lam_kv_value v;
	const char *name;
	int rc;

	ck_assert_int_eq(lam__buf_puts(out, "["), 0);
	ck_assert_int_eq(lam__buf_puts(out, lam_key_path(k)), 0);
	ck_assert_int_eq(lam__buf_puts(out, "]\n"), 0);
	LT_OK(lam_key_value_iter_new(&vi, k));
	while ((rc = lam_key_value_iter_next(vi, &v)) == 0) {
		char hdr[64];
		snprintf(hdr, sizeof(hdr), "=%u:", v.type);
		ck_assert_int_eq(lam__buf_puts(out, v.name), 0);
		ck_assert_int_eq(lam__buf_puts(out, hdr), 0);
		for (size_t i = 0; i < v.size; i++) {
			char h[3];
			snprintf(h, sizeof(h), "%02x",
				 ((const unsigned char *)v.data)[i]);
			ck_assert_int_eq(lam__buf_puts(out, h), 0);
		}
		ck_assert_int_eq(lam__buf_puts(out, "\n"), 0);
	}
	ck_assert_int_eq(rc, LAM_ITEROVER);
	lam_key_value_iter_free(vi);
	LT_OK(lam_key_subkey_iter_new(&si, k));
	while ((rc = lam_key_subkey_iter_next(si, &name)) == 0) {
		lam_key *c;
		LT_OK(lam_key_open_at(&c, k, name, 0));
		dump_key(c, out);
		lam_key_free(c);
	}
	ck_assert_int_eq(rc, LAM_ITEROVER);
	lam_key_subkey_iter_free(si);
}

/* The dump of a layer's merged key tree (malloc'd). */
static char *dump_layer(lam_layer *l)
{
	lam__buf b = {0};
	lam_key *root;
	LT_OK(lam_key_open_layer(&root, l, ""));
	dump_key(root, &b);
	lam_key_free(root);
	ck_assert_int_eq(lam__buf_puts(&b, ""), 0);
	char *s = strdup(b.data);
	lam__buf_free(&b);
	return s;
}

static int count_cb(lam_change_kind kind, const char *path, void *userdata)
{
	(void)kind;
	(void)path;
	(*(int *)userdata)++;
	return 0;
}

static int kv_count_cb(lam_change_kind kind, const char *key, const char *value,
		       void *userdata)
{
	(void)kind;
	(void)key;
	(void)value;
	(*(int *)userdata)++;
	return 0;
}

static void check_squash(lam_layer *top, lam_layer *onto, const char *want)
{
	lam_layer *sq;
	LT_OK(lam_layer_squash(&sq, top, onto));
	char *a = dump_layer(top), *b = dump_layer(sq);
	ck_assert_str_eq(b, a);
	if (want)
		ck_assert_str_eq(a, want);
	/* Nothing differs, files or keys. */
	int n = 0;
	LT_OK(lam_layer_diff(top, sq, count_cb, &n));
	ck_assert_int_eq(n, 0);
	LT_OK(lam_kv_diff(top, sq, kv_count_cb, &n));
	ck_assert_int_eq(n, 0);
	/* And the checked-out trees match. */
	static int seq;
	char da[64], db[64];
	snprintf(da, sizeof(da), "co-top-%d", seq);
	snprintf(db, sizeof(db), "co-sq-%d", seq++);
	LT_OK(lam_layer_checkout(top, lt_path("%s", da), NULL));
	LT_OK(lam_layer_checkout(sq, lt_path("%s", db), NULL));
	char *d = lt_tree_diff(lt_path("%s", da), lt_path("%s", db), true);
	ck_assert_msg(d == NULL, "trees differ: %s", d);
	/* A view over the squashed layer reads the same values. */
	lam_view *v = kt_view(sq);
	kt_assert_sz(v, "Soft\\App", "Name", "two");
	kt_view_free(v);
	free(a);
	free(b);
	lam_layer_free(sq);
}

static const char *want_tree = "[]\n"
			       "[Gone]\n"
			       "[Soft]\n"
			       "[Soft\\App]\n"
			       "Name=1:74776f00\n"
			       "[Soft\\RE]\n"
			       "Fresh=1:6e657700\n"
			       "[Soft\\RE\\Kid]\n";

START_TEST(test_squash_keeps_kv)
{
	lam_view *v = kt_view(NULL);
	kt_set_sz(v, "Soft\\App", "Name", "one");
	kt_set_sz(v, "Soft\\App", "Drop", "x");
	kt_set_sz(v, "Soft\\Re", "Old", "old");
	kt_set_sz(v, "Soft\\Re\\Sub", "Deep", "deep");
	kt_set_sz(v, "Gone\\Away", "V", "v");
	lam_layer *base = kt_commit(v);

	/* Commit 2: a changed value, a deleted value, a volatile key. */
	kt_set_sz(v, "Soft\\App", "Name", "two");
	lam_key *k;
	LT_OK(lam_key_open(&k, v, "Soft\\App", 0));
	LT_OK(lam_key_delete_value(k, "Drop"));
	lam_key_free(k);
	LT_OK(lam_key_create(&k, v, "Vol\\Tmp", LAM_KEY_VOLATILE, NULL));
	LT_OK(lam_key_set_dword(k, "X", 7));
	lam_key_free(k);
	lam_layer *l2 = kt_commit(v);

	/* Commit 3: a subtree deleted, a key deleted. */
	LT_OK(lam_key_delete(v, "Soft\\Re", LAM_KEY_TREE));
	LT_OK(lam_key_delete(v, "Gone\\Away", 0));
	lam_layer *l3 = kt_commit(v);

	/* Commit 4: the deleted key made again, in another spelling. */
	kt_set_sz(v, "Soft\\RE", "Fresh", "new");
	lam_key_free(kt_create(v, "Soft\\RE\\Kid"));
	lam_layer *l4 = kt_commit(v);

	/* Commit 5: files only. */
	lam_layer *top = kt_commit(v);
	kt_view_free(v);

	char *t = dump_layer(top);
	ck_assert_msg(strstr(t, "Vol") == NULL, "volatile key committed: %s",
		      t);
	free(t);

	check_squash(top, base, want_tree);
	check_squash(top, NULL, want_tree);
	check_squash(top, l2, want_tree);
	check_squash(top, l3, want_tree);
	check_squash(l2, base, NULL);
	check_squash(l3, l2, NULL);

	lam_layer_free(base);
	lam_layer_free(l2);
	lam_layer_free(l3);
	lam_layer_free(l4);
	lam_layer_free(top);
}
END_TEST

START_TEST(test_squash_no_kv)
{
	/* Squashing layers with the same key tree adds no kv file. */
	lam_view *v = kt_view(NULL);
	kt_set_sz(v, "A", "B", "c");
	lam_layer *base = kt_commit(v);
	lam_layer *top = kt_commit(v);
	kt_view_free(v);
	lam_layer *sq;
	LT_OK(lam_layer_squash(&sq, top, base));
	ck_assert(!lt_exists(lt_path("store/layers/%s/kv", lam_layer_id(sq))));
	ck_assert(lt_exists(lt_path("store/layers/%s/kv", lam_layer_id(base))));
	lam_layer_free(sq);
	LT_OK(lam_layer_squash(&sq, top, NULL));
	ck_assert(lt_exists(lt_path("store/layers/%s/kv", lam_layer_id(sq))));
	char *a = dump_layer(top), *b = dump_layer(sq);
	ck_assert_str_eq(a, b);
	free(a);
	free(b);
	lam_layer_free(sq);
	lam_layer_free(base);
	lam_layer_free(top);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("kv-squash");
	TCase *tc = tcase_create("squash");
	tcase_add_checked_fixture(tc, lt_setup, lt_teardown);
	tcase_add_test(tc, test_squash_keeps_kv);
	tcase_add_test(tc, test_squash_no_kv);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return lt_main(suite());
}
