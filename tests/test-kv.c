/* SPDX-License-Identifier: MIT */
/* The key/value namespace: keys, typed values, stacking, transactions,
 * watches, volatile keys, diffs, and every kind of bad input. */
#include <endian.h>
#include <errno.h>
#include <poll.h>
#include <sys/stat.h>

#include "kv/kvtest.h"

static lam_view *view;

static void setup(void)
{
	lt_setup();
	view = kt_view(NULL);
}

static void teardown(void)
{
	kt_view_free(view);
	view = NULL;
	lt_teardown();
}

START_TEST(test_create_open_and_names_fold_case)
{
	lam_key *k, *k2;
	int created = -1;

	LT_OK(lam_key_create(&k, view, "Software\\Vendor\\App", 0, &created));
	ck_assert_int_eq(created, 1);
	ck_assert_str_eq(lam_key_path(k), "Software\\Vendor\\App");
	ck_assert_str_eq(lam_key_name(k), "App");
	lam_key_free(k);

	/* Another spelling reaches the same key, which keeps its own. */
	LT_OK(lam_key_create(&k, view, "SOFTWARE\\vendor\\aPP", 0, &created));
	ck_assert_int_eq(created, 0);
	ck_assert_str_eq(lam_key_path(k), "Software\\Vendor\\App");
	LT_OK(lam_key_open(&k2, view, "\\software\\VENDOR", 0));
	ck_assert_str_eq(lam_key_path(k2), "Software\\Vendor");
	lam_key_free(k2);
	LT_OK(lam_key_open_at(&k2, k, "", 0));
	ck_assert_str_eq(lam_key_path(k2), "Software\\Vendor\\App");
	lam_key_free(k2);
	LT_OK(lam_key_create_at(&k2, k, "Sub\\Deeper", 0, &created));
	ck_assert_int_eq(created, 1);
	ck_assert_str_eq(lam_key_path(k2),
			 "Software\\Vendor\\App\\Sub\\Deeper");
	lam_key_free(k2);
	lam_key_free(k);

	/* Latin-1, Greek and Cyrillic fold too; ß and the Turkish İ do
	 * not. */
	kt_set_sz(view, "\xc3\x84rger\\\xce\xa3\xce\xb9\\\xd0\x96", "v", "x");
	kt_assert_sz(view, "\xc3\xa4RGER\\\xcf\x83\xce\x99\\\xd0\xb6", "V",
		     "x");
	kt_set_sz(view,
		  "Stra\xc3\x9f"
		  "e",
		  "v", "1");
	ck_assert(!kt_key_exists(view, "STRASSE"));
	ck_assert(kt_key_exists(view, "STRA\xc3\x9f"
				      "E"));

	LT_FAILS(lam_key_open(&k, view, "Software\\Missing", 0), LAM_ENOTFOUND,
		 "Software\\Missing");
	ck_assert_ptr_null(k);
	/* The root always exists and cannot go. */
	LT_OK(lam_key_open(&k, view, "", 0));
	ck_assert_str_eq(lam_key_path(k), "");
	lam_key_free(k);
	LT_FAILS(lam_key_delete(view, "", LAM_KEY_TREE), LAM_EINVAL, "root");
}
END_TEST

START_TEST(test_typed_values_round_trip)
{
	lam_key *k = kt_create(view, "Types");
	uint32_t d, type;
	uint64_t q;
	char *s, **multi;
	size_t n, need;
	unsigned char buf[64];

	LT_OK(lam_key_set_dword(k, "dw", 0x12345678));
	LT_OK(lam_key_get_dword(k, "DW", &d));
	ck_assert_uint_eq(d, 0x12345678);
	LT_OK(lam_key_get_value(k, "dw", &type, buf, sizeof(buf), &need));
	ck_assert_uint_eq(type, LAM_KV_DWORD);
	ck_assert_uint_eq(need, 4);
	ck_assert_int_eq(buf[0], 0x78); /* little-endian, as the registry */

	uint32_t be = htobe32(0xa1b2c3d4);
	LT_OK(lam_key_set_value(k, "be", LAM_KV_DWORD_BIG_ENDIAN, &be, 4));
	LT_OK(lam_key_get_dword(k, "be", &d));
	ck_assert_uint_eq(d, 0xa1b2c3d4);

	LT_OK(lam_key_set_qword(k, "qw", 0x1122334455667788ull));
	LT_OK(lam_key_get_qword(k, "qw", &q));
	ck_assert(q == 0x1122334455667788ull);
	LT_OK(lam_key_get_qword(k, "dw", &q));
	ck_assert(q == 0x12345678);

	LT_OK(lam_key_set_string(k, "sz", LAM_KV_SZ, "h\xc3\xa9llo"));
	LT_OK(lam_key_set_string(k, "path", LAM_KV_EXPAND_SZ,
				 "%SystemRoot%\\x"));
	LT_OK(lam_key_get_string(&s, k, "path", &type));
	ck_assert_str_eq(s, "%SystemRoot%\\x");
	ck_assert_uint_eq(type, LAM_KV_EXPAND_SZ);
	lam_free(s);

	const char *list[] = {"one", "two", "three"};
	LT_OK(lam_key_set_multi_sz(k, "list", list, 3));
	LT_OK(lam_key_get_multi_sz(&multi, &n, k, "list"));
	ck_assert_uint_eq(n, 3);
	ck_assert_str_eq(multi[0], "one");
	ck_assert_str_eq(multi[2], "three");
	ck_assert_ptr_null(multi[3]);
	lam_free(multi);
	LT_OK(lam_key_set_multi_sz(k, "empty", NULL, 0));
	LT_OK(lam_key_get_multi_sz(&multi, &n, k, "empty"));
	ck_assert_uint_eq(n, 0);
	lam_free(multi);

	LT_OK(lam_key_set_value(k, "bin", LAM_KV_BINARY, "\0\1\2\3", 4));
	LT_OK(lam_key_set_value(k, "none", LAM_KV_NONE, NULL, 0));
	LT_OK(lam_key_set_value(k, NULL, LAM_KV_SZ, "default", 8));

	/* Sizes: NULL asks, too small fails with ERANGE and the size. */
	LT_OK(lam_key_get_value(k, "bin", &type, NULL, 0, &need));
	ck_assert_uint_eq(need, 4);
	LT_FAILS(lam_key_get_value(k, "sz", &type, buf, 3, &need), LAM_EPOSIX,
		 "needs 7 bytes");
	ck_assert_int_eq(lam_error_last()->os_errno, ERANGE);
	ck_assert_uint_eq(need, 7);
	LT_OK(lam_key_get_value(k, "", &type, buf, sizeof(buf), &need));
	ck_assert_str_eq((char *)buf, "default");

	/* Typed getters check the type. */
	LT_FAILS(lam_key_get_dword(k, "sz", &d), LAM_EINVAL, "REG_SZ");
	LT_FAILS(lam_key_get_string(&s, k, "dw", NULL), LAM_EINVAL,
		 "REG_DWORD");
	ck_assert_ptr_null(s);
	LT_FAILS(lam_key_get_multi_sz(&multi, &n, k, "sz"), LAM_EINVAL,
		 "REG_MULTI_SZ");
	LT_FAILS(lam_key_get_dword(k, "nope", &d), LAM_ENOTFOUND, "nope");
	LT_FAILS(lam_key_set_string(k, "x", LAM_KV_BINARY, "a"), LAM_EINVAL,
		 "REG_BINARY");

	/* Values, the default one first, in folded order. */
	kt_assert_str(kt_values(k), ",be,bin,dw,empty,list,none,path,qw,sz");
	ck_assert_str_eq(lam_kv_type_name(LAM_KV_MULTI_SZ), "REG_MULTI_SZ");
	ck_assert_str_eq(lam_kv_type_name(99), "REG_UNKNOWN");
	lam_key_free(k);
}
END_TEST

START_TEST(test_bad_names_fail_precisely)
{
	char name[20000];
	lam_key *k;
	int created;

	/* 255 characters fit; 256 do not. Characters are UTF-16 units. */
	memset(name, 'k', 255);
	name[255] = '\0';
	LT_OK(lam_key_create(&k, view, name, 0, NULL));
	lam_key_free(k);
	name[255] = 'k';
	name[256] = '\0';
	LT_FAILS(lam_key_create(&k, view, name, 0, &created), LAM_ENAMETOOLONG,
		 "256 characters");
	ck_assert_ptr_null(k);
	/* 128 two-byte characters are 128 characters, not 256. */
	for (int i = 0; i < 128; i++)
		memcpy(name + 2 * i, "\xc3\xa9", 2);
	name[256] = '\0';
	LT_OK(lam_key_create(&k, view, name, 0, NULL));
	lam_key_free(k);
	/* A supplementary character counts twice, as in UTF-16. */
	for (int i = 0; i < 128; i++)
		memcpy(name + 4 * i, "\xf0\x9f\x98\x80", 4);
	name[512] = '\0';
	LT_FAILS(lam_key_create(&k, view, name, 0, NULL), LAM_ENAMETOOLONG,
		 "256 characters");

	LT_FAILS(lam_key_create(&k, view, "bad\xff", 0, NULL), LAM_EBADNAME,
		 "invalid UTF-8");
	LT_FAILS(lam_key_create(&k, view, "over\xc0\xaflong", 0, NULL),
		 LAM_EBADNAME, "UTF-8");
	LT_FAILS(lam_key_create(&k, view, "sur\xed\xa0\x80", 0, NULL),
		 LAM_EBADNAME, "UTF-8");
	LT_FAILS(lam_key_create(&k, view, "a\\\\b", 0, NULL), LAM_EBADNAME,
		 "empty name");
	LT_FAILS(lam_key_create(&k, view, "a\\", 0, NULL), LAM_EBADNAME,
		 "empty name");

	/* Depth: 512 levels fit, 513 do not. */
	char *deep = malloc(3 * 520);
	size_t len = 0;
	for (int i = 0; i < 512; i++) {
		if (i)
			deep[len++] = '\\';
		deep[len++] = 'd';
	}
	deep[len] = '\0';
	LT_OK(lam_key_create(&k, view, deep, 0, NULL));
	lam_key_free(k);
	memcpy(deep + len, "\\e", 3);
	LT_FAILS(lam_key_create(&k, view, deep, 0, NULL), LAM_ENAMETOOLONG,
		 "512 levels");
	free(deep);

	/* Value names: 16,383 characters fit, 16,384 do not. */
	k = kt_create(view, "Names");
	memset(name, 'v', 16383);
	name[16383] = '\0';
	LT_OK(lam_key_set_dword(k, name, 1));
	name[16383] = 'v';
	name[16384] = '\0';
	LT_FAILS(lam_key_set_dword(k, name, 1), LAM_ENAMETOOLONG,
		 "16384 characters");
	LT_FAILS(lam_key_set_dword(k, "v\xfe", 1), LAM_EBADNAME, "UTF-8");
	/* A value name may hold a backslash; a key name may not. */
	LT_OK(lam_key_set_dword(k, "a\\b", 7));
	uint32_t d;
	LT_OK(lam_key_get_dword(k, "A\\B", &d));
	ck_assert_uint_eq(d, 7);
	lam_key_free(k);

	/* Nothing of the failures was stored. */
	k = kt_create(view, "");
	char *subs = kt_subkeys(k);
	ck_assert(strstr(subs, "bad") == NULL && strstr(subs, "over") == NULL);
	free(subs);
	lam_key_free(k);
}
END_TEST

START_TEST(test_bad_values_fail_precisely)
{
	lam_key *k = kt_create(view, "Vals");
	uint32_t d = 1;

	LT_FAILS(lam_key_set_value(k, "t", 12, "x", 1), LAM_EINVAL,
		 "unknown value type 12");
	LT_FAILS(lam_key_set_value(k, "t", 0x7fffffff, "x", 1), LAM_EINVAL,
		 "unknown value type");
	LT_FAILS(lam_key_set_value(k, "d", LAM_KV_DWORD, &d, 3), LAM_EINVAL,
		 "4 bytes, not 3");
	LT_FAILS(lam_key_set_value(k, "q", LAM_KV_QWORD, &d, 4), LAM_EINVAL,
		 "8 bytes, not 4");
	LT_FAILS(lam_key_set_value(k, "s", LAM_KV_SZ, "abc", 3), LAM_EINVAL,
		 "end with a NUL");
	LT_FAILS(lam_key_set_value(k, "s", LAM_KV_SZ, "a\0bc", 5), LAM_EINVAL,
		 "NUL at byte 1");
	LT_FAILS(lam_key_set_value(k, "s", LAM_KV_EXPAND_SZ, "\xff", 2),
		 LAM_EINVAL, "UTF-8");
	LT_FAILS(lam_key_set_value(k, "m", LAM_KV_MULTI_SZ, "a\0b\0", 4),
		 LAM_EINVAL, "two NULs");
	LT_FAILS(lam_key_set_value(k, "m", LAM_KV_MULTI_SZ, "a\0\0b\0\0", 6),
		 LAM_EINVAL, "empty string at byte 2");
	LT_FAILS(lam_key_set_value(k, "m", LAM_KV_MULTI_SZ, "a", 1), LAM_EINVAL,
		 "end with a NUL");
	LT_FAILS(lam_key_set_value(k, "m", LAM_KV_MULTI_SZ, "", 0), LAM_EINVAL,
		 "end with a NUL");
	const char *bad[] = {"x", ""};
	LT_FAILS(lam_key_set_multi_sz(k, "m", bad, 2), LAM_EINVAL, "empty");
	LT_FAILS(lam_key_set_value(k, "n", LAM_KV_BINARY, NULL, 2), LAM_EINVAL,
		 "no data");

	/* The cap: 1 MiB by default, configurable. */
	char *big = calloc(1, LAM_KV_DEFAULT_MAX_VALUE_SIZE + 1);
	LT_OK(lam_key_set_value(k, "big", LAM_KV_BINARY, big,
				LAM_KV_DEFAULT_MAX_VALUE_SIZE));
	LT_FAILS(lam_key_set_value(k, "big2", LAM_KV_BINARY, big,
				   LAM_KV_DEFAULT_MAX_VALUE_SIZE + 1),
		 LAM_EINVAL, "over the cap of 1048576 bytes");
	lam_kv_options o = LAM_KV_OPTIONS_INIT;
	o.max_value_size = 100;
	LT_OK(lam_kv_configure(view, &o));
	LT_OK(lam_key_set_value(k, "small", LAM_KV_BINARY, big, 100));
	LT_FAILS(lam_key_set_value(k, "small2", LAM_KV_BINARY, big, 101),
		 LAM_EINVAL, "cap of 100 bytes");
	LT_FAILS(lam_kv_set_value(view, "New\\Key", "v", LAM_KV_BINARY, big,
				  101),
		 LAM_EINVAL, "cap");
	ck_assert(!kt_key_exists(view, "New"));
	o.max_value_size = 0;
	LT_FAILS(lam_kv_configure(view, &o), LAM_EINVAL, "max_value_size");
	o.version = 99;
	LT_FAILS(lam_kv_configure(view, &o), LAM_EINVAL, "version");
	free(big);

	/* Nothing of the failures was stored. */
	kt_assert_str(kt_values(k), "big,small");
	lam_key_free(k);
}
END_TEST

START_TEST(test_quotas_refuse_what_goes_over)
{
	lam_kv_options o = LAM_KV_OPTIONS_INIT;
	o.max_keys = 3;
	o.max_value_bytes = 10;
	LT_OK(lam_kv_configure(view, &o));
	kt_set_sz(view, "A", "v", "1234");
	kt_set_sz(view, "A\\B", "v", "1234");
	LT_FAILS(lam_kv_set_value(view, "A\\B", "w", LAM_KV_SZ, "12345", 6),
		 LAM_EQUOTA, "value quota (10 bytes)");
	LT_OK(lam_kv_set_value(view, "A\\B", "v", LAM_KV_SZ, "12", 3));
	lam_key *k;
	LT_OK(lam_key_create(&k, view, "C", 0, NULL));
	lam_key_free(k);
	LT_FAILS(lam_key_create(&k, view, "D", 0, NULL), LAM_EQUOTA,
		 "key quota (3 keys)");
	ck_assert(!kt_key_exists(view, "D"));
	/* Volatile keys are not the view's durable changes. */
	LT_OK(lam_key_create(&k, view, "Vol", LAM_KEY_VOLATILE, NULL));
	lam_key_free(k);
}
END_TEST

START_TEST(test_delete_values_and_keys)
{
	lam_key *k, *sub;
	kt_set_sz(view, "K", "a", "1");
	kt_set_sz(view, "K", "b", "2");
	kt_set_sz(view, "K\\Sub", "c", "3");
	LT_OK(lam_key_open(&k, view, "K", 0));
	LT_OK(lam_key_delete_value(k, "A"));
	LT_FAILS(lam_key_delete_value(k, "a"), LAM_ENOTFOUND, "no value");
	kt_assert_str(kt_values(k), "b");

	LT_FAILS(lam_key_delete(view, "K", 0), LAM_EBUSY, "has subkeys");
	LT_OK(lam_key_open(&sub, view, "K\\Sub", 0));
	LT_OK(lam_key_delete(view, "k\\sub", 0));
	/* The handle outlives its key, and finds it again when it comes
	 * back. */
	LT_FAILS(lam_key_set_dword(sub, "x", 1), LAM_ENOTFOUND, "K\\Sub");
	lam_key_info info;
	LT_FAILS(lam_key_info_get(sub, &info), LAM_ENOTFOUND, "deleted");
	kt_set_sz(view, "K\\SUB", "new", "n");
	LT_OK(lam_key_set_dword(sub, "x", 1));
	kt_assert_str(kt_values(sub), "new,x");
	lam_key_free(sub);

	LT_OK(lam_key_delete(view, "K", LAM_KEY_TREE));
	ck_assert(!kt_key_exists(view, "K"));
	ck_assert(!kt_key_exists(view, "K\\SUB"));
	LT_FAILS(lam_key_delete(view, "K", 0), LAM_ENOTFOUND, "no key");
	LT_FAILS(lam_key_get_value(k, "b", NULL, NULL, 0, NULL), LAM_ENOTFOUND,
		 "deleted");
	lam_key_free(k);
	LT_FAILS(lam_key_delete(view, "K", 99), LAM_EINVAL, "flags");
}
END_TEST

/* Build base (two keys) and a child layer that changes them. */
static lam_layer *two_layers(lam_layer **base_out)
{
	lam_view *v = kt_view(NULL);
	kt_set_sz(v, "App", "keep", "base");
	kt_set_sz(v, "App", "over", "base");
	kt_set_sz(v, "App", "gone", "base");
	kt_set_sz(v, "App\\Child", "c", "base");
	kt_set_sz(v, "App\\Child\\Deep", "d", "base");
	kt_set_sz(v, "Old", "o", "base");
	kt_set_sz(v, "Recreated\\Inner", "i", "base");
	kt_set_sz(v, "Recreated", "r", "base");
	lam_layer *base = kt_commit(v);

	kt_set_sz(v, "App", "over", "child");
	kt_set_sz(v, "App", "new", "child");
	lam_key *k;
	LT_OK(lam_key_open(&k, v, "App", 0));
	LT_OK(lam_key_delete_value(k, "gone"));
	lam_key_free(k);
	LT_OK(lam_key_delete(v, "Old", LAM_KEY_TREE));
	LT_OK(lam_key_delete(v, "Recreated", LAM_KEY_TREE));
	kt_set_sz(v, "RECREATED", "fresh", "child");
	lam_layer *child = kt_commit(v);
	kt_view_free(v);
	*base_out = base;
	return child;
}

START_TEST(test_layers_stack_upper_wins_and_tombstones_hide)
{
	lam_layer *base, *child = two_layers(&base);
	lam_view *v = kt_view(child);
	lam_key *k;

	kt_assert_sz(v, "App", "keep", "base");
	kt_assert_sz(v, "App", "over", "child");
	kt_assert_sz(v, "App", "new", "child");
	kt_assert_sz(v, "App", "gone", NULL);
	kt_assert_sz(v, "App\\Child\\Deep", "d", "base");
	ck_assert(!kt_key_exists(v, "Old"));
	/* Deleted then created again: the lower subtree stays hidden. */
	ck_assert(kt_key_exists(v, "Recreated"));
	ck_assert(!kt_key_exists(v, "Recreated\\Inner"));
	kt_assert_sz(v, "Recreated", "r", NULL);
	kt_assert_sz(v, "Recreated", "fresh", "child");
	LT_OK(lam_key_open(&k, v, "recreated", 0));
	ck_assert_str_eq(lam_key_path(k), "RECREATED");
	kt_assert_str(kt_subkeys(k), "");
	lam_key_free(k);
	LT_OK(lam_key_open(&k, v, "", 0));
	kt_assert_str(kt_subkeys(k), "App,RECREATED");
	lam_key_free(k);

	/* The view over the base still sees the base. */
	lam_view *vb = kt_view(base);
	kt_assert_sz(vb, "App", "over", "base");
	kt_assert_sz(vb, "App", "gone", "base");
	ck_assert(kt_key_exists(vb, "Recreated\\Inner"));
	kt_view_free(vb);

	/* Changes over lower keys: tombstones in the upper, merged
	 * enumeration. */
	kt_set_sz(v, "App\\Added", "x", "1");
	LT_OK(lam_key_delete(v, "App\\Child", LAM_KEY_TREE));
	LT_OK(lam_key_open(&k, v, "App", 0));
	kt_assert_str(kt_subkeys(k), "Added");
	kt_assert_str(kt_values(k), "keep,new,over");
	LT_OK(lam_key_delete_value(k, "keep"));
	kt_assert_str(kt_values(k), "new,over");
	lam_key_free(k);

	/* Read-only keys on a committed layer. */
	LT_OK(lam_key_open_layer(&k, base, "App\\Child"));
	char *s;
	LT_OK(lam_key_get_string(&s, k, "c", NULL));
	ck_assert_str_eq(s, "base");
	lam_free(s);
	LT_FAILS(lam_key_set_dword(k, "x", 1), LAM_EPOSIX, "read-only");
	ck_assert_int_eq(lam_error_last()->os_errno, EROFS);
	lam_kv_watch *w;
	LT_FAILS(lam_key_watch(&w, k, 0, NULL, NULL), LAM_EINVAL, "read-only");
	lam_key_free(k);
	LT_FAILS(lam_key_open_layer(&k, child, "Old"), LAM_ENOTFOUND, "Old");

	kt_view_free(v);
	lam_layer_free(base);
	lam_layer_free(child);
}
END_TEST

START_TEST(test_root_listing_merges_layers)
{
	lam_layer *base, *child = two_layers(&base);
	lam_view *v = kt_view(child);
	lam_key *k;
	kt_set_sz(v, "aaa", "x", "1");
	kt_set_sz(v, "Zed", "x", "1");
	LT_OK(lam_key_open(&k, v, "", 0));
	kt_assert_str(kt_subkeys(k), "aaa,App,RECREATED,Zed");
	lam_key_free(k);
	kt_view_free(v);
	lam_layer_free(base);
	lam_layer_free(child);
}
END_TEST

START_TEST(test_changes_persist_across_handles)
{
	lam_key *k;
	kt_set_sz(view, "P\\Q", "a", "1");
	kt_set_dword(view, "P", "n", 5);
	LT_OK(lam_key_open(&k, view, "P", 0));
	LT_OK(lam_key_delete_value(k, "n"));
	lam_key_free(k);
	LT_OK(lam_key_create(&k, view, "Vol", LAM_KEY_VOLATILE, NULL));
	lam_key_free(k);
	view = kt_reopen(view);
	kt_assert_sz(view, "P\\Q", "a", "1");
	LT_OK(lam_key_open(&k, view, "P", 0));
	kt_assert_str(kt_values(k), "");
	lam_key_free(k);
	/* Volatile keys do not come back. */
	ck_assert(!kt_key_exists(view, "Vol"));
}
END_TEST

START_TEST(test_volatile_keys_live_in_the_view_only)
{
	lam_key *k, *k2;
	int created;
	lam_key_info info;

	LT_OK(lam_key_create(&k, view, "Vol\\Inner", LAM_KEY_VOLATILE,
			     &created));
	ck_assert_int_eq(created, 1);
	LT_OK(lam_key_set_dword(k, "v", 1));
	LT_OK(lam_key_info_get(k, &info));
	ck_assert(info.flags & LAM_KEY_INFO_VOLATILE);
	LT_FAILS(lam_key_create(&k2, view, "Vol\\Inner\\Durable", 0, NULL),
		 LAM_EINVAL, "volatile key");
	LT_OK(lam_key_create(&k2, view, "Vol\\Inner\\V2", LAM_KEY_VOLATILE,
			     NULL));
	lam_key_free(k2);
	kt_set_sz(view, "Durable", "d", "1");

	lam_layer *l = kt_commit(view);
	/* Not in the layer... */
	LT_FAILS(lam_key_open_layer(&k2, l, "Vol"), LAM_ENOTFOUND, "Vol");
	LT_OK(lam_key_open_layer(&k2, l, "Durable"));
	lam_key_free(k2);
	/* ...but still in the view that made it. */
	uint32_t d;
	LT_OK(lam_key_get_dword(k, "v", &d));
	ck_assert(kt_key_exists(view, "Vol\\Inner\\V2"));
	lam_key_free(k);
	/* A delete of a volatile key leaves no trace. */
	LT_OK(lam_key_delete(view, "Vol", LAM_KEY_TREE));
	ck_assert(!kt_key_exists(view, "Vol"));
	lam_layer_free(l);
}
END_TEST

START_TEST(test_key_info_counts_and_times)
{
	lam_key *k = kt_create(view, "Info");
	lam_key_info info;
	int64_t before = time(NULL);

	LT_OK(lam_key_set_dword(k, "short", 1));
	LT_OK(lam_key_set_value(k, "a-longer-name", LAM_KV_BINARY, "123456",
				6));
	lam_key_free(kt_create(view, "Info\\s1"));
	lam_key_free(kt_create(view, "Info\\sub-\xc3\xa9\xc3\xa9"));
	LT_OK(lam_key_info_get(k, &info));
	ck_assert_uint_eq(info.subkeys, 2);
	ck_assert_uint_eq(info.values, 2);
	ck_assert_uint_eq(info.max_subkey_name, 6);
	ck_assert_uint_eq(info.max_value_name, 13);
	ck_assert_uint_eq(info.max_value_size, 6);
	ck_assert(info.last_write_sec >= before &&
		  info.last_write_sec <= time(NULL) + 1);
	ck_assert_uint_eq(info.flags, 0);

	/* A committed key keeps its time through a pass-through layer. */
	lam_layer *l1 = kt_commit(view);
	lam_key_free(kt_create(view, "Info\\s1\\deeper"));
	lam_layer *l2 = kt_commit(view);
	lam_key *lk;
	LT_OK(lam_key_open_layer(&lk, l2, "Info"));
	lam_key_info li;
	LT_OK(lam_key_info_get(lk, &li));
	ck_assert_int_eq(li.last_write_sec, info.last_write_sec);
	ck_assert_int_eq(li.last_write_nsec, info.last_write_nsec);
	ck_assert_uint_eq(li.subkeys, 2);
	lam_key_free(lk);
	lam_key_free(k);
	lam_layer_free(l1);
	lam_layer_free(l2);
}
END_TEST

START_TEST(test_transactions_commit_whole_or_not_at_all)
{
	kt_set_sz(view, "T", "before", "1");
	LT_OK(lam_kv_txn_begin(view));
	LT_FAILS(lam_kv_txn_begin(view), LAM_EBUSY, "already open");
	kt_set_sz(view, "T", "in", "2");
	LT_OK(lam_key_delete(view, "T", LAM_KEY_TREE));
	kt_set_sz(view, "T2", "x", "3");
	lam_key *v;
	LT_OK(lam_key_create(&v, view, "VolInTxn", LAM_KEY_VOLATILE, NULL));
	lam_key_free(v);
	/* The view reads its own writes. */
	ck_assert(!kt_key_exists(view, "T"));
	kt_assert_sz(view, "T2", "x", "3");
	LT_OK(lam_kv_txn_abort(view));
	kt_assert_sz(view, "T", "before", "1");
	kt_assert_sz(view, "T", "in", NULL);
	ck_assert(!kt_key_exists(view, "T2"));
	ck_assert(!kt_key_exists(view, "VolInTxn"));
	LT_FAILS(lam_kv_txn_abort(view), LAM_EINVAL, "no key/value");
	LT_FAILS(lam_kv_txn_commit(view), LAM_EINVAL, "no key/value");

	/* Volatile keys from before the transaction survive its abort. */
	LT_OK(lam_key_create(&v, view, "Vol", LAM_KEY_VOLATILE, NULL));
	LT_OK(lam_key_set_dword(v, "x", 9));
	LT_OK(lam_kv_txn_begin(view));
	LT_OK(lam_key_delete(view, "Vol", LAM_KEY_TREE));
	LT_OK(lam_kv_txn_abort(view));
	uint32_t d;
	LT_OK(lam_key_get_dword(v, "x", &d));
	ck_assert_uint_eq(d, 9);
	lam_key_free(v);

	LT_OK(lam_kv_txn_begin(view));
	for (int i = 0; i < 10; i++) {
		char name[16];
		snprintf(name, sizeof(name), "v%d", i);
		kt_set_dword(view, "T\\Many", name, (uint32_t)i);
	}
	LT_OK(lam_kv_txn_commit(view));
	view = kt_reopen(view);
	LT_OK(lam_key_open(&v, view, "T\\Many", 0));
	kt_assert_str(kt_values(v), "v0,v1,v2,v3,v4,v5,v6,v7,v8,v9");
	lam_key_free(v);
}
END_TEST

typedef struct seen {
	char log[4096];
	int calls;
	int stop_after;
} seen;

static int record(lam_change_kind kind, const char *key, const char *value,
		  void *userdata)
{
	seen *s = userdata;
	size_t n = strlen(s->log);
	snprintf(s->log + n, sizeof(s->log) - n, "%c %s%s%s;", (char)kind, key,
		 value ? ":" : "", value ? value : "");
	s->calls++;
	return s->stop_after && s->calls >= s->stop_after;
}

START_TEST(test_watches_report_changes)
{
	lam_key *k = kt_create(view, "W\\Sub");
	lam_key *top;
	LT_OK(lam_key_open(&top, view, "W", 0));
	seen key_only = {0}, tree = {0};
	lam_kv_watch *w1, *w2;
	LT_OK(lam_key_watch(&w1, top, 0, record, &key_only));
	LT_OK(lam_key_watch(&w2, top, LAM_KV_WATCH_SUBTREE, record, &tree));
	int fd = lam_kv_watch_fd(w2);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(lam_kv_watch_fd(w2), fd);

	LT_OK(lam_key_set_dword(top, "a", 1));
	LT_OK(lam_key_set_dword(top, "a", 2));
	LT_OK(lam_key_set_dword(k, "deep", 1));
	lam_key_free(kt_create(view, "W\\New"));
	lam_key_free(kt_create(view, "Elsewhere"));
	ck_assert_str_eq(key_only.log, "A W:a;M W:a;A W\\New;");
	ck_assert_str_eq(tree.log, "A W:a;M W:a;A W\\Sub:deep;A W\\New;");
	struct pollfd p = {.fd = fd, .events = POLLIN};
	ck_assert_int_eq(poll(&p, 1, 0), 1);
	uint64_t count;
	ck_assert_int_eq(read(fd, &count, 8), 8);
	ck_assert(count == 4);
	ck_assert_int_eq(poll(&p, 1, 0), 0);

	/* In a transaction, reports come at commit, and not at abort. */
	tree.log[0] = '\0';
	LT_OK(lam_kv_txn_begin(view));
	LT_OK(lam_key_delete_value(top, "a"));
	ck_assert_str_eq(tree.log, "");
	LT_OK(lam_kv_txn_commit(view));
	ck_assert_str_eq(tree.log, "D W:a;");
	tree.log[0] = '\0';
	LT_OK(lam_kv_txn_begin(view));
	LT_OK(lam_key_set_dword(top, "b", 1));
	LT_OK(lam_kv_txn_abort(view));
	ck_assert_str_eq(tree.log, "");

	/* Deleting the tree reports to the watches below it; a non-zero
	 * return ends a watch's reports. */
	seen sub = {.stop_after = 1};
	lam_kv_watch *w3;
	LT_OK(lam_key_watch(&w3, k, 0, record, &sub));
	LT_OK(lam_key_delete(view, "W", LAM_KEY_TREE));
	ck_assert_str_eq(sub.log, "D W;");
	lam_key_free(kt_create(view, "W\\Sub"));
	ck_assert_str_eq(sub.log, "D W;");
	lam_kv_watch_free(w3);
	lam_kv_watch_free(w1);
	lam_kv_watch_free(w2);
	lam_key_free(k);
	lam_key_free(top);
}
END_TEST

START_TEST(test_diff_reports_key_and_value_changes)
{
	lam_layer *base, *child = two_layers(&base);
	seen s = {0};

	LT_OK(lam_kv_diff(base, child, record, &s));
	ck_assert_str_eq(s.log, "D App:gone;A App:new;M App:over;"
				"D Old;D Old:o;"
				"A RECREATED:fresh;D Recreated:r;"
				"D Recreated\\Inner;D Recreated\\Inner:i;");
	s.log[0] = '\0';
	LT_OK(lam_kv_diff(NULL, base, record, &s));
	const char *want = "A App;A App:gone;A App:keep;A App:over;"
			   "A App\\Child;A App\\Child:c;";
	ck_assert_msg(strncmp(s.log, want, strlen(want)) == 0, "got %s", s.log);
	s.log[0] = '\0';
	LT_OK(lam_kv_diff(child, child, record, &s));
	ck_assert_str_eq(s.log, "");
	s = (seen){.stop_after = 2};
	ck_assert_int_eq(lam_kv_diff(base, child, record, &s), 1);

	lam_view *v = kt_view(child);
	kt_set_dword(v, "App", "over", 1);
	LT_OK(lam_key_delete(v, "App\\Child", LAM_KEY_TREE));
	s = (seen){0};
	LT_OK(lam_kv_view_diff(v, record, &s));
	ck_assert_str_eq(s.log, "M App:over;D App\\Child;D App\\Child:c;"
				"D App\\Child\\Deep;D App\\Child\\Deep:d;");
	kt_view_free(v);
	lam_layer_free(base);
	lam_layer_free(child);
}
END_TEST

/* Flip one byte of a layer's kv file. */
static void damage_layer_kv(lam_layer *l, off_t at)
{
	char path[4400];
	snprintf(path, sizeof(path), "%s/layers/%s/kv", lt_store_path,
		 lam_layer_id(l));
	int fd = open(path, O_RDWR);
	ck_assert_int_ge(fd, 0);
	unsigned char c;
	struct stat st;
	fstat(fd, &st);
	if (at < 0)
		at += st.st_size;
	ck_assert_int_eq(pread(fd, &c, 1, at), 1);
	c ^= 0x40;
	ck_assert_int_eq(pwrite(fd, &c, 1, at), 1);
	close(fd);
}

START_TEST(test_corrupted_layer_kv_names_the_layer)
{
	kt_set_sz(view, "Good", "g", "1");
	lam_layer *l = kt_commit(view);
	kt_view_free(view);
	view = NULL;

	lam__digest d;
	bool present;
	LT_OK(lam__kv_layer_digest(lt_store, lam_layer_id(l), &d, &present));
	ck_assert(present);

	damage_layer_kv(l, -3);
	char want[64];
	snprintf(want, sizeof(want), "layer %s: kv: checksum mismatch",
		 lam_layer_id(l));
	lam_view *v;
	lam_key *k;
	LT_OK(lam_view_create(&v, lt_store, l, NULL));
	LT_FAILS(lam_key_open(&k, v, "Good", 0), LAM_ECORRUPT, want);
	kt_view_free(v);
	LT_FAILS(lam_key_open_layer(&k, l, "Good"), LAM_ECORRUPT, want);
	LT_FAILS(lam__kv_layer_digest(lt_store, lam_layer_id(l), &d, &present),
		 LAM_ECORRUPT, want);

	/* A layer without key/values is fine. */
	lt_mkdir(lt_path("empty"));
	lam_layer *empty = lt_import(lt_path("empty"), NULL);
	LT_OK(lam__kv_layer_digest(lt_store, lam_layer_id(empty), &d,
				   &present));
	ck_assert(!present);
	lam_layer_free(empty);
	lam_layer_free(l);
}
END_TEST

START_TEST(test_delta_file_rejects_inconsistent_content)
{
	/* Records that check out but break the rules: out of order, a
	 * value without its key, a child without its parent. */
	lam__kv_rec r[3];
	lam__digest d;
	lam__kv_file f;
	int dfd = open(lt_dir, O_RDONLY | O_DIRECTORY);

	memset(r, 0, sizeof(r));
	r[0] = (lam__kv_rec){.kind = LAM__KV_KEY, .disp = "", .fold = ""};
	r[1] = (lam__kv_rec){.kind = LAM__KV_KEY,
			     .depth = 1,
			     .disp = "b",
			     .fold = "b",
			     .len = 1};
	r[2] = (lam__kv_rec){.kind = LAM__KV_KEY,
			     .depth = 1,
			     .disp = "a",
			     .fold = "a",
			     .len = 1};
	LT_OK(lam__kv_file_write(dfd, "unordered", r, 3, &d));
	LT_FAILS(lam__kv_file_open(&f, dfd, "unordered", "test"), LAM_ECORRUPT,
		 "out of order");
	r[1] = (lam__kv_rec){.kind = LAM__KV_KEY,
			     .depth = 2,
			     .disp = "a\\b",
			     .fold = "a\\b",
			     .len = 3};
	LT_OK(lam__kv_file_write(dfd, "orphan", r, 2, &d));
	LT_FAILS(lam__kv_file_open(&f, dfd, "orphan", "test"), LAM_ECORRUPT,
		 "parent");
	r[1] = (lam__kv_rec){.kind = LAM__KV_KEY,
			     .depth = 1,
			     .disp = "A",
			     .fold = "B",
			     .len = 1};
	LT_OK(lam__kv_file_write(dfd, "badfold", r, 2, &d));
	LT_FAILS(lam__kv_file_open(&f, dfd, "badfold", "test"), LAM_ECORRUPT,
		 "folded");
	r[1] = (lam__kv_rec){.kind = LAM__KV_VALUE,
			     .type = LAM_KV_DWORD,
			     .disp = "v",
			     .fold = "v",
			     .len = 1,
			     .data = "abc",
			     .size = 3};
	LT_OK(lam__kv_file_write(dfd, "badvalue", r, 2, &d));
	LT_FAILS(lam__kv_file_open(&f, dfd, "badvalue", "test"), LAM_ECORRUPT,
		 "4 bytes");
	lt_write(lt_path("short"), "LAMKV");
	LT_FAILS(lam__kv_file_open(&f, dfd, "short", "test"), LAM_ECORRUPT,
		 "truncated");
	r[1].size = 4;
	r[1].data = "abcd";
	LT_OK(lam__kv_file_write(dfd, "good", r, 2, &d));
	LT_OK(lam__kv_file_open(&f, dfd, "good", "test"));
	lam__digest d2;
	lam__kv_file_digest(&f, &d2);
	ck_assert(memcmp(&d, &d2, sizeof(d)) == 0);
	lam__kv_file_close(&f);
	close(dfd);
}
END_TEST

START_TEST(test_stage_reports_no_changes_for_an_unused_view)
{
	lam__digest d;
	bool has = true;
	int dfd = open(lt_dir, O_RDONLY | O_DIRECTORY);
	LT_OK(lam__kv_stage(view, dfd, &d, &has));
	ck_assert(!has);
	ck_assert(!lt_exists(lt_path("kv")));
	/* Changes undone leave no delta either. */
	kt_set_sz(view, "A\\B", "x", "1");
	LT_OK(lam_key_delete(view, "A", LAM_KEY_TREE));
	LT_OK(lam__kv_stage(view, dfd, &d, &has));
	ck_assert(!has);
	kt_set_sz(view, "A\\B", "x", "1");
	LT_OK(lam__kv_stage(view, dfd, &d, &has));
	ck_assert(has);
	ck_assert(lt_exists(lt_path("kv")));
	/* Reset drops every change. */
	LT_OK(lam__kv_reset(view));
	ck_assert(!kt_key_exists(view, "A"));
	view = kt_reopen(view);
	ck_assert(!kt_key_exists(view, "A"));
	close(dfd);
}
END_TEST

START_TEST(test_key_handles_outlive_the_view)
{
	lam_key *k = kt_create(view, "Keep");
	LT_OK(lam_key_set_dword(k, "v", 3));
	char id[37];
	snprintf(id, sizeof(id), "%s", lam_view_id(view));
	kt_view_free(view);
	view = NULL;
	uint32_t d;
	LT_OK(lam_key_get_dword(k, "v", &d));
	ck_assert_uint_eq(d, 3);
	/* Another handle of the same view waits for the writer to go. */
	lam_view *v;
	lam_key *k2;
	LT_OK(lam_view_open(&v, lt_store, id, NULL));
	LT_FAILS(lam_key_open(&k2, v, "Keep", 0), LAM_EBUSY, "another handle");
	LT_OK(lam_key_set_dword(k, "v", 4));
	lam_key_free(k);
	LT_OK(lam_key_open(&k2, v, "Keep", 0));
	LT_OK(lam_key_get_dword(k2, "v", &d));
	ck_assert_uint_eq(d, 4);
	lam_key_free(k2);
	kt_view_free(v);

	/* A read-only handle of a stored view reads while the writer
	 * writes. */
	lam_view_options ro = LAM_VIEW_OPTIONS_INIT;
	ro.flags = LAM_VIEW_READONLY;
	lam_view *w, *r;
	LT_OK(lam_view_open(&w, lt_store, id, NULL));
	LT_OK(lam_view_open(&r, lt_store, id, &ro));
	kt_set_dword(w, "Keep", "v", 5);
	LT_OK(lam_key_open(&k2, r, "Keep", 0));
	LT_OK(lam_key_get_dword(k2, "v", &d));
	ck_assert_uint_eq(d, 5);
	LT_FAILS(lam_key_set_dword(k2, "v", 6), LAM_EPOSIX, "read-only");
	LT_FAILS(lam_kv_txn_begin(r), LAM_EPOSIX, "read-only");
	lam_key_free(k2);
	kt_view_free(r);
	kt_view_free(w);
}
END_TEST

START_TEST(test_path_get_and_set_without_handles)
{
	size_t need;
	uint32_t type;
	char buf[16];
	LT_OK(lam_kv_set_value(view, "A\\B\\C", "v", LAM_KV_SZ, "abc", 4));
	LT_OK(lam_kv_get_value(view, "a\\b\\c", "V", &type, buf, sizeof(buf),
			       &need));
	ck_assert_str_eq(buf, "abc");
	LT_FAILS(lam_kv_get_value(view, "A\\X", "v", &type, buf, sizeof(buf),
				  &need),
		 LAM_ENOTFOUND, "A\\X");
	LT_FAILS(lam_kv_get_value(view, "A\\B\\C", "w", &type, buf, sizeof(buf),
				  &need),
		 LAM_ENOTFOUND, "no value \"w\"");
	LT_FAILS(lam_kv_set_value(view, "A\\\xff", "v", LAM_KV_SZ, "abc", 4),
		 LAM_EBADNAME, "UTF-8");
}
END_TEST

int main(void)
{
	Suite *s = suite_create("kv");
	TCase *tc = tcase_create("kv");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_create_open_and_names_fold_case);
	tcase_add_test(tc, test_typed_values_round_trip);
	tcase_add_test(tc, test_bad_names_fail_precisely);
	tcase_add_test(tc, test_bad_values_fail_precisely);
	tcase_add_test(tc, test_quotas_refuse_what_goes_over);
	tcase_add_test(tc, test_delete_values_and_keys);
	tcase_add_test(tc, test_layers_stack_upper_wins_and_tombstones_hide);
	tcase_add_test(tc, test_root_listing_merges_layers);
	tcase_add_test(tc, test_changes_persist_across_handles);
	tcase_add_test(tc, test_volatile_keys_live_in_the_view_only);
	tcase_add_test(tc, test_key_info_counts_and_times);
	tcase_add_test(tc, test_transactions_commit_whole_or_not_at_all);
	tcase_add_test(tc, test_watches_report_changes);
	tcase_add_test(tc, test_diff_reports_key_and_value_changes);
	tcase_add_test(tc, test_corrupted_layer_kv_names_the_layer);
	tcase_add_test(tc, test_delta_file_rejects_inconsistent_content);
	tcase_add_test(tc, test_stage_reports_no_changes_for_an_unused_view);
	tcase_add_test(tc, test_key_handles_outlive_the_view);
	tcase_add_test(tc, test_path_get_and_set_without_handles);
	suite_add_tcase(s, tc);
	return lt_main(s);
}
