/* SPDX-License-Identifier: MIT */
/* .reg import and export: the forms regedit writes, encodings, root names,
 * syntax errors that name their line, and deterministic export. */
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

static int import(lam_view *v, const char *text, const char *root)
{
	lam_reg_options o = LAM_REG_OPTIONS_INIT;
	o.root = root;
	o.source = "test.reg";
	return lam_kv_import_reg(v, text, strlen(text), &o);
}

static char *export(lam_view *v, const char *key, const char *root,
		    unsigned int flags)
{
	lam_reg_options o = LAM_REG_OPTIONS_INIT;
	lam_key *k;
	char *text, *copy;
	o.root = root;
	o.flags = flags;
	LT_OK(lam_key_open(&k, v, key, 0));
	LT_OK(lam_key_export_reg(&text, NULL, k, &o));
	lam_key_free(k);
	copy = strdup(text);
	lam_free(text);
	return copy;
}

static const char *sample =
	"Windows Registry Editor Version 5.00\r\n"
	"\r\n"
	"; a comment\r\n"
	"[HKEY_LOCAL_MACHINE\\SOFTWARE\\Vendor]\r\n"
	"@=\"the default\"\r\n"
	"\"Str\"=\"quote \\\" and backslash \\\\ here\"\r\n"
	"\"Num\"=dword:0000002a\r\n"
	"\"Bin\"=hex:de,ad,be,ef\r\n"
	"\"Exp\"=hex(2):25,00,50,00,41,00,54,00,48,00,25,00,00,00\r\n"
	"\"Multi\"=hex(7):61,00,00,00,62,00,63,00,00,00,00,00\r\n"
	"\"Q\"=hex(b):08,07,06,05,04,03,02,01\r\n"
	"\"Long\"=hex:00,01,02,03,04,05,06,07,08,09,0a,0b,0c,0d,0e,0f,10,11,12,13,14,\\\r\n"
	"  15,16,17\r\n"
	"\"None\"=hex(0):\r\n"
	"\r\n"
	"[HKLM\\SOFTWARE\\Vendor\\Sub]\r\n"
	"\"x\"=dword:1\r\n";

START_TEST(test_import_reads_every_form)
{
	LT_OK(import(view, sample, NULL));
	const char *key = "HKEY_LOCAL_MACHINE\\SOFTWARE\\Vendor";
	kt_assert_sz(view, key, "", "the default");
	kt_assert_sz(view, key, "str", "quote \" and backslash \\ here");
	lam_key *k;
	LT_OK(lam_key_open(&k, view, key, 0));
	uint32_t d;
	uint64_t q;
	char *s, **m;
	size_t n, need;
	unsigned char buf[64];
	uint32_t type;
	LT_OK(lam_key_get_dword(k, "Num", &d));
	ck_assert_uint_eq(d, 42);
	LT_OK(lam_key_get_value(k, "Bin", &type, buf, sizeof(buf), &need));
	ck_assert_uint_eq(type, LAM_KV_BINARY);
	ck_assert(need == 4 && buf[0] == 0xde && buf[3] == 0xef);
	LT_OK(lam_key_get_string(&s, k, "Exp", &type));
	ck_assert_str_eq(s, "%PATH%");
	ck_assert_uint_eq(type, LAM_KV_EXPAND_SZ);
	lam_free(s);
	LT_OK(lam_key_get_multi_sz(&m, &n, k, "Multi"));
	ck_assert_uint_eq(n, 2);
	ck_assert_str_eq(m[1], "bc");
	lam_free(m);
	LT_OK(lam_key_get_qword(k, "Q", &q));
	ck_assert(q == 0x0102030405060708ull);
	LT_OK(lam_key_get_value(k, "Long", &type, buf, sizeof(buf), &need));
	ck_assert_uint_eq(need, 24);
	ck_assert_int_eq(buf[23], 0x17);
	LT_OK(lam_key_get_value(k, "None", &type, NULL, 0, &need));
	ck_assert(type == LAM_KV_NONE && need == 0);
	lam_key_free(k);
	/* HKLM is written out in full. */
	LT_OK(lam_key_open(&k, view,
			   "HKEY_LOCAL_MACHINE\\SOFTWARE\\Vendor\\Sub", 0));
	LT_OK(lam_key_get_dword(k, "x", &d));
	ck_assert_uint_eq(d, 1);
	lam_key_free(k);

	/* Deletions of values and of subtrees. */
	LT_OK(import(view,
		     "REGEDIT4\n\n[HKEY_LOCAL_MACHINE\\SOFTWARE\\Vendor]\n"
		     "\"Num\"=-\n\"Missing\"=-\n\n"
		     "[-HKEY_LOCAL_MACHINE\\SOFTWARE\\Vendor\\Sub]\n"
		     "[-HKEY_LOCAL_MACHINE\\Nothing\\There]\n",
		     NULL));
	ck_assert(!kt_key_exists(view,
				 "HKEY_LOCAL_MACHINE\\SOFTWARE\\Vendor\\Sub"));
	LT_OK(lam_key_open(&k, view, key, 0));
	LT_FAILS(lam_key_get_dword(k, "Num", &d), LAM_ENOTFOUND, "Num");
	lam_key_free(k);
}
END_TEST

START_TEST(test_import_encodings)
{
	/* UTF-16LE with a BOM and CRLF, as regedit writes. */
	const char *text = "Windows Registry Editor Version 5.00\r\n\r\n"
			   "[HKEY_CURRENT_USER\\\xc3\x9cml\xc3\xa4ut]\r\n"
			   "\"\xce\xa9\"=\"\xe2\x98\x83 snow\"\r\n";
	lam__buf u = {0};
	lam__buf_add(&u, "\xff\xfe", 2);
	lam__kv_utf8_to_utf16(&u, text, strlen(text));
	LT_OK(lam_kv_import_reg(view, u.data, u.len, NULL));
	lam__buf_free(&u);
	kt_assert_sz(view, "HKEY_CURRENT_USER\\\xc3\xbcML\xc3\x84UT",
		     "\xcf\x89", "\xe2\x98\x83 snow");

	/* UTF-8 with a BOM. */
	LT_OK(import(view,
		     "\xef\xbb\xbfWindows Registry Editor Version 5.00\n\n"
		     "[HKCU\\Bom]\n\"a\"=\"b\"\n",
		     NULL));
	kt_assert_sz(view, "HKEY_CURRENT_USER\\Bom", "a", "b");

	/* REGEDIT4: 8-bit text, and string data in hex(2) as bytes. */
	LT_OK(import(view,
		     "REGEDIT4\n\n[HKCU\\Old\xe9]\n\"caf\xe9\"=\"cr\xe8me\"\n"
		     "\"e\"=hex(2):25,41,25,00\n",
		     NULL));
	kt_assert_sz(view, "HKEY_CURRENT_USER\\Old\xc3\xa9", "caf\xc3\xa9",
		     "cr\xc3\xa8me");
	lam_key *k;
	char *s;
	LT_OK(lam_key_open(&k, view, "HKEY_CURRENT_USER\\OLD\xc3\x89", 0));
	LT_OK(lam_key_get_string(&s, k, "e", NULL));
	ck_assert_str_eq(s, "%A%");
	lam_free(s);
	lam_key_free(k);
}
END_TEST

START_TEST(test_root_relative_names_land_below_the_root)
{
	const char *text = "Windows Registry Editor Version 5.00\n\n"
			   "[\\]\n\"top\"=dword:00000001\n\n"
			   "[\\Microsoft\\Windows]\n\"v\"=\"w\"\n";
	LT_OK(import(view, text, "HKEY_LOCAL_MACHINE\\SOFTWARE"));
	kt_assert_sz(view, "HKEY_LOCAL_MACHINE\\SOFTWARE\\Microsoft\\Windows",
		     "v", "w");
	uint32_t d;
	size_t need;
	LT_OK(lam_kv_get_value(view, "HKEY_LOCAL_MACHINE\\SOFTWARE", "top",
			       NULL, &d, 4, &need));
	/* Without a root, "\Foo" is below the view's root. */
	LT_OK(import(view, "REGEDIT4\n[\\Plain]\n\"p\"=\"q\"\n", NULL));
	kt_assert_sz(view, "Plain", "p", "q");

	/* Export below the root writes root-relative names, and refuses a
	 * key outside it. */
	char *out = export(view, "HKEY_LOCAL_MACHINE\\SOFTWARE\\Microsoft",
			   "HKEY_LOCAL_MACHINE\\SOFTWARE", 0);
	ck_assert_str_eq(out, "Windows Registry Editor Version 5.00\n\n"
			      "[\\Microsoft]\n\n"
			      "[\\Microsoft\\Windows]\n\"v\"=\"w\"\n\n");
	free(out);
	lam_key *k;
	char *text2;
	lam_reg_options o = LAM_REG_OPTIONS_INIT;
	o.root = "HKEY_LOCAL_MACHINE\\SOFTWARE";
	LT_OK(lam_key_open(&k, view, "Plain", 0));
	LT_FAILS(lam_key_export_reg(&text2, NULL, k, &o), LAM_EINVAL,
		 "not below the hive root");
	ck_assert_ptr_null(text2);
	lam_key_free(k);
}
END_TEST

START_TEST(test_syntax_errors_name_the_line_and_change_nothing)
{
	static const struct {
		const char *text;
		const char *msg;
	} bad[] = {
		{"not a reg file\n", "test.reg line 1: not a .reg file"},
		{"REGEDIT4\n\n\"v\"=\"x\"\n",
		 "line 3: a value outside of any key"},
		{"REGEDIT4\n[K]\n\"v\"=\"unterminated\n",
		 "line 3: a string without"},
		{"REGEDIT4\n[K]\n\"v\"=dword:123456789\n",
		 "line 3: a dword needs"},
		{"REGEDIT4\n[K]\n\"v\"=hex:1,2\n",
		 "line 3: a hex byte must be"},
		{"REGEDIT4\n[K]\n\"v\"=hex:01 02\n", "line 3: expected ','"},
		{"REGEDIT4\n[K]\n\"v\"=hex(4):01,02\n",
		 "line 3: a REG_DWORD holds 4"},
		{"REGEDIT4\n[K]\n\"v\"=hex(1c):01\n",
		 "line 3: unknown value type 0x1c"},
		{"Windows Registry Editor Version 5.00\n[K]\n\"v\"=hex(7):61,00,00\n",
		 "line 3: UTF-16 string data with an odd"},
		{"REGEDIT4\n[K\n", "line 2: a key line must end with ']'"},
		{"REGEDIT4\n[K]\n\"v\" \"x\"\n", "line 3: expected '=' after"},
		{"REGEDIT4\n[K]\n\"v\"=\"x\" junk\n",
		 "line 3: unexpected text"},
		{"REGEDIT4\n[K]\nwhat\n", "line 3: expected [key]"},
		{"REGEDIT4\n[K\\\\L]\n", "line 2: key path"},
		{"REGEDIT4\n[K]\n\"v\"=str(4):\"x\"\n",
		 "line 3: str(N): takes"},
		{"REGEDIT4\n\n[K]\n\"a\"=\"ok\"\n\"v\"=hex:01,\\\n  02,zz\n",
		 "line 5: a hex byte"},
	};
	kt_set_sz(view, "K", "keep", "1");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rc = import(view, bad[i].text, NULL);
		ck_assert_msg(rc == LAM_EINVAL || rc == LAM_EBADNAME,
			      "case %zu: %d %s", i, rc,
			      lam_error_last()->message);
		ck_assert_msg(strstr(lam_error_last()->message, bad[i].msg),
			      "case %zu: \"%s\" lacks \"%s\"", i,
			      lam_error_last()->message, bad[i].msg);
	}
	/* A NUL in the text, and a name too long, name their line too. */
	LT_FAILS(lam_kv_import_reg(view, "REGEDIT4\n[K]\n\"v\"=\"a\0b\"\n", 20,
				   NULL),
		 LAM_EINVAL, "line 3");
	char *longname = malloc(400);
	snprintf(longname, 400, "REGEDIT4\n\n[K\\%0300d]\n", 0);
	LT_FAILS(import(view, longname, NULL), LAM_ENAMETOOLONG, "line 3");
	free(longname);
	/* An error late in a file leaves the view as it was. */
	LT_FAILS(import(view,
			"REGEDIT4\n[K]\n\"keep\"=\"changed\"\n[New]\n"
			"\"x\"=dword:1\n[-K]\n\"bad\"=hex:g\n",
			NULL),
		 LAM_EINVAL, "line 7");
	kt_assert_sz(view, "K", "keep", "1");
	ck_assert(!kt_key_exists(view, "New"));
	/* Applying fails after parsing: a durable key under a volatile
	 * one; the whole import is undone. */
	lam_key *v;
	LT_OK(lam_key_create(&v, view, "Vol", LAM_KEY_VOLATILE, NULL));
	lam_key_free(v);
	LT_FAILS(import(view, "REGEDIT4\n[K2]\n\"a\"=\"b\"\n[Vol\\Child]\n",
			NULL),
		 LAM_EINVAL, "line 4");
	ck_assert(!kt_key_exists(view, "K2"));
	ck_assert(kt_key_exists(view, "Vol"));
}
END_TEST

START_TEST(test_export_is_deterministic_and_round_trips)
{
	LT_OK(import(view, sample, NULL));
	lam_key *k;
	LT_OK(lam_key_open(&k, view, "HKEY_LOCAL_MACHINE\\SOFTWARE\\Vendor",
			   0));
	LT_OK(lam_key_set_string(k, "Lines", LAM_KV_SZ, "a\nb"));
	LT_OK(lam_key_set_value(k, "Be", LAM_KV_DWORD_BIG_ENDIAN, "\1\2\3\4",
				4));
	LT_OK(lam_key_set_string(k, "Link", LAM_KV_LINK, "\\Registry\\x"));
	LT_OK(lam_key_set_string(k, "Uni", LAM_KV_SZ, "\xe2\x98\x83"));
	lam_key_free(k);
	char *a = export(view, "", NULL, 0);
	const char *want =
		"Windows Registry Editor Version 5.00\n\n"
		"[HKEY_LOCAL_MACHINE]\n\n"
		"[HKEY_LOCAL_MACHINE\\SOFTWARE]\n\n"
		"[HKEY_LOCAL_MACHINE\\SOFTWARE\\Vendor]\n"
		"@=\"the default\"\n"
		"\"Be\"=hex(5):01,02,03,04\n"
		"\"Bin\"=hex:de,ad,be,ef\n"
		"\"Exp\"=hex(2):25,00,50,00,41,00,54,00,48,00,25,00,00,00\n"
		"\"Lines\"=hex(1):61,00,0a,00,62,00,00,00\n"
		"\"Link\"=hex(6):5c,00,52,00,65,00,67,00,69,00,73,00,74,00,72,00,79,00,5c,00,78,\\\n"
		"  00,00,00\n"
		"\"Long\"=hex:00,01,02,03,04,05,06,07,08,09,0a,0b,0c,0d,0e,0f,10,11,12,13,14,15,\\\n"
		"  16,17\n"
		"\"Multi\"=hex(7):61,00,00,00,62,00,63,00,00,00,00,00\n"
		"\"None\"=hex(0):\n"
		"\"Num\"=dword:0000002a\n"
		"\"Q\"=hex(b):08,07,06,05,04,03,02,01\n"
		"\"Str\"=\"quote \\\" and backslash \\\\ here\"\n"
		"\"Uni\"=\"\xe2\x98\x83\"\n"
		"\n"
		"[HKEY_LOCAL_MACHINE\\SOFTWARE\\Vendor\\Sub]\n"
		"\"x\"=dword:00000001\n\n";
	ck_assert_msg(strcmp(a, want) == 0, "export:\n%s", a);

	/* Into a fresh view and out again: the same text. */
	lam_view *v2 = kt_view(NULL);
	LT_OK(import(v2, a, NULL));
	char *b = export(v2, "", NULL, 0);
	ck_assert_str_eq(b, a);
	free(b);
	/* UTF-16 output reads back the same. */
	lam_key *root;
	char *u16;
	size_t len;
	lam_reg_options o = LAM_REG_OPTIONS_INIT;
	o.flags = LAM_REG_UTF16;
	LT_OK(lam_key_open(&root, view, "", 0));
	LT_OK(lam_key_export_reg(&u16, &len, root, &o));
	ck_assert(len > 4 && (unsigned char)u16[0] == 0xff &&
		  (unsigned char)u16[1] == 0xfe && u16[len] == 0 &&
		  u16[len + 1] == 0);
	ck_assert(memcmp(u16 + 2 + 2 * 36, "\r\0\n\0", 4) == 0);
	lam_view *v3 = kt_view(NULL);
	LT_OK(lam_kv_import_reg(v3, u16, len, NULL));
	b = export(v3, "", NULL, 0);
	ck_assert_str_eq(b, a);
	free(b);
	lam_free(u16);
	/* Hex strings, for byte-reading tools. */
	o.flags = LAM_REG_HEX_STRINGS | LAM_REG_NO_SUBKEYS;
	lam_key_free(root);
	LT_OK(lam_key_open(&root, view, "HKEY_LOCAL_MACHINE\\SOFTWARE\\Vendor",
			   0));
	LT_OK(lam_key_export_reg(&u16, &len, root, &o));
	ck_assert(strstr(u16, "\"Uni\"=hex(1):03,26,00,00\n") != NULL);
	ck_assert(strstr(u16, "\\Sub]") == NULL);
	lam_free(u16);
	lam_key_free(root);
	kt_view_free(v2);
	kt_view_free(v3);
	free(a);
}
END_TEST

START_TEST(test_export_of_a_layer_and_of_names_reg_cannot_hold)
{
	kt_set_sz(view, "A", "v", "1");
	lam_layer *l = kt_commit(view);
	lam_key *k;
	char *text;
	LT_OK(lam_key_open_layer(&k, l, "A"));
	LT_OK(lam_key_export_reg(&text, NULL, k, NULL));
	ck_assert_str_eq(text, "Windows Registry Editor Version 5.00\n\n"
			       "[A]\n\"v\"=\"1\"\n\n");
	lam_free(text);
	lam_key_free(k);
	kt_set_sz(view, "A", "bad\nname", "1");
	LT_OK(lam_key_open(&k, view, "A", 0));
	LT_FAILS(lam_key_export_reg(&text, NULL, k, NULL), LAM_EINVAL,
		 "line break");
	lam_key_free(k);
	/* Values on the view's root go under [\]. */
	kt_set_sz(view, "", "rootval", "r");
	char *out = export(view, "", NULL, LAM_REG_NO_SUBKEYS);
	ck_assert_str_eq(out, "Windows Registry Editor Version 5.00\n\n"
			      "[\\]\n\"rootval\"=\"r\"\n\n");
	free(out);
	lam_layer_free(l);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("kv-reg");
	TCase *tc = tcase_create("kv-reg");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_import_reads_every_form);
	tcase_add_test(tc, test_import_encodings);
	tcase_add_test(tc, test_root_relative_names_land_below_the_root);
	tcase_add_test(tc, test_syntax_errors_name_the_line_and_change_nothing);
	tcase_add_test(tc, test_export_is_deterministic_and_round_trips);
	tcase_add_test(tc, test_export_of_a_layer_and_of_names_reg_cannot_hold);
	suite_add_tcase(s, tc);
	return lt_main(s);
}
