/* SPDX-License-Identifier: MIT */
/*
 * lamina's .reg files against a real registry implementation: hivex
 * (Debian's libwin-hivex-perl) merges lamina's export into a Windows hive
 * (regf) file, exports it again, and lamina reads that back: the two trees
 * must agree key by key and value by value. Exits 77 (skip) when
 * hivexregedit is not installed.
 */
#include <endian.h>
#include <errno.h>

#include "kv/kvtest.h"

#define ROOT "HKEY_LOCAL_MACHINE\\SOFTWARE"

static void put16(unsigned char *p, uint16_t v)
{
	v = htole16(v);
	memcpy(p, &v, 2);
}

static void put32(unsigned char *p, uint32_t v)
{
	v = htole32(v);
	memcpy(p, &v, 4);
}

/*
 * An empty hive, from the documented regf layout: the 4 KiB base block
 * ("regf", sequence numbers, version 1.3, the root cell's offset, the size
 * of the hive bins, and the XOR checksum of its first 508 bytes), then one
 * 4 KiB hive bin ("hbin") holding the root key's nk cell, its sk
 * (security) cell, and one free cell for the rest. Cell offsets count
 * from the first hive bin; a used cell's size is negative.
 */
static void write_empty_hive(const char *path)
{
	unsigned char h[8192];
	memset(h, 0, sizeof(h));
	unsigned char *b = h, *bin = h + 4096;
	const uint32_t nk = 0x20, nk_size = 88, sk = nk + nk_size, sk_size = 48;

	memcpy(b, "regf", 4);
	put32(b + 0x04, 1);    /* primary sequence number */
	put32(b + 0x08, 1);    /* secondary: equal, so the hive is clean */
	put32(b + 0x14, 1);    /* major version */
	put32(b + 0x18, 3);    /* minor version */
	put32(b + 0x1c, 0);    /* a primary file */
	put32(b + 0x20, 1);    /* format: direct memory load */
	put32(b + 0x24, nk);   /* root cell */
	put32(b + 0x28, 4096); /* hive bins data size */
	put32(b + 0x2c, 1);    /* clustering factor */
	uint32_t sum = 0;
	for (int i = 0; i < 0x1fc; i += 4) {
		uint32_t w;
		memcpy(&w, b + i, 4);
		sum ^= le32toh(w);
	}
	put32(b + 0x1fc, sum);

	memcpy(bin, "hbin", 4);
	put32(bin + 4, 0);    /* offset from the first bin */
	put32(bin + 8, 4096); /* size of this bin */

	unsigned char *c = bin + nk;
	put32(c, (uint32_t) - (int32_t)nk_size);
	memcpy(c + 4, "nk", 2);
	put16(c + 6, 0x2c);	   /* hive entry, no delete, ASCII name */
	put32(c + 20, 0xffffffff); /* parent: none */
	put32(c + 32, 0xffffffff); /* subkey list: none */
	put32(c + 36, 0xffffffff); /* volatile subkey list */
	put32(c + 44, 0xffffffff); /* value list: none */
	put32(c + 48, sk);	   /* security cell */
	put32(c + 52, 0xffffffff); /* class name: none */
	put16(c + 76, 4);	   /* name length */
	memcpy(c + 80, "ROOT", 4);

	c = bin + sk;
	put32(c, (uint32_t) - (int32_t)sk_size);
	memcpy(c + 4, "sk", 2);
	put32(c + 8, sk);  /* previous sk: itself */
	put32(c + 12, sk); /* next sk: itself */
	put32(c + 16, 1);  /* reference count */
	put32(c + 20, 20); /* descriptor size */
	/* A self-relative security descriptor with nothing in it. */
	c[24] = 1;
	put16(c + 26, 0x8000);

	put32(bin + sk + sk_size, 4096 - sk - sk_size); /* free cell */
	lt_write_bytes(path, h, sizeof(h));
}

/* A tree with every type and a variety of names. */
static void fill(lam_view *v)
{
	lam_key *k;
	LT_OK(lam_key_create(&k, v, ROOT "\\Vendor\\App", 0, NULL));
	LT_OK(lam_key_set_string(k, NULL, LAM_KV_SZ, "default value"));
	LT_OK(lam_key_set_string(k, "Name", LAM_KV_SZ, "plain"));
	LT_OK(lam_key_set_string(k, "Unicode", LAM_KV_SZ,
				 "caf\xc3\xa9 \xe2\x98\x83 \xf0\x9f\x98\x80"));
	LT_OK(lam_key_set_string(k, "Empty", LAM_KV_SZ, ""));
	LT_OK(lam_key_set_string(k, "Quote \"and\" back\\slash", LAM_KV_SZ,
				 "x\\\"y"));
	LT_OK(lam_key_set_string(k, "Path", LAM_KV_EXPAND_SZ,
				 "%ProgramFiles%\\App"));
	const char *list[] = {"alpha", "b\xc3\xa9ta", "gamma"};
	LT_OK(lam_key_set_multi_sz(k, "List", list, 3));
	LT_OK(lam_key_set_dword(k, "Count", 0xdeadbeef));
	LT_OK(lam_key_set_value(k, "Big", LAM_KV_DWORD_BIG_ENDIAN,
				"\x12\x34\x56\x78", 4));
	LT_OK(lam_key_set_qword(k, "Size", 0x0123456789abcdefull));
	unsigned char bin[300];
	for (int i = 0; i < 300; i++)
		bin[i] = (unsigned char)(i * 7);
	LT_OK(lam_key_set_value(k, "Blob", LAM_KV_BINARY, bin, sizeof(bin)));
	LT_OK(lam_key_set_value(k, "Nothing", LAM_KV_NONE, NULL, 0));
	LT_OK(lam_key_set_value(k, "Raw", LAM_KV_NONE, "\1\2", 2));
	LT_OK(lam_key_set_value(k, "Res", LAM_KV_RESOURCE_LIST, "\0\1\2\3", 4));
	lam_key_free(k);
	kt_set_sz(v, ROOT "\\Vendor\\App\\Settings\\Deep\\Deeper", "d", "4");
	kt_set_dword(v, ROOT "\\Vendor\\\xc3\x9cml\xc3\xa4ut", "n", 1);
	kt_set_dword(v, ROOT "\\Vendor\\\xce\xa9mega", "\xce\xa9", 2);
	kt_set_dword(v, ROOT "\\Vendor\\With Space", "v\xc3\xa4lue", 3);
	lam_key_free(kt_create(v, ROOT "\\Empty Key"));
	kt_set_dword(v, ROOT, "AtTheRoot", 5);
}

/* Compare two keys' trees: names as spelled, types and bytes. */
static void compare(lam_view *a, lam_view *b, const char *path)
{
	lam_key *ka, *kb;
	LT_OK(lam_key_open(&ka, a, path, 0));
	int rc = lam_key_open(&kb, b, path, 0);
	ck_assert_msg(rc == 0, "key %s missing after the round trip", path);
	ck_assert_str_eq(lam_key_path(ka), lam_key_path(kb));

	lam_key_value_iter *ia, *ib;
	lam_kv_value va, vb;
	LT_OK(lam_key_value_iter_new(&ia, ka));
	LT_OK(lam_key_value_iter_new(&ib, kb));
	for (;;) {
		int ra = lam_key_value_iter_next(ia, &va);
		int rb = lam_key_value_iter_next(ib, &vb);
		ck_assert_msg(ra == rb, "%s: value \"%s\" on one side only",
			      path, ra == 0 ? va.name : vb.name);
		if (ra != 0)
			break;
		ck_assert_msg(strcmp(va.name, vb.name) == 0,
			      "%s: value \"%s\" came back as \"%s\"", path,
			      va.name, vb.name);
		ck_assert_msg(va.type == vb.type,
			      "%s:%s: type %u came back as %u", path, va.name,
			      va.type, vb.type);
		ck_assert_msg(va.size == vb.size &&
				      (va.size == 0 ||
				       memcmp(va.data, vb.data, va.size) == 0),
			      "%s:%s: data differs (%zu vs %zu bytes)", path,
			      va.name, va.size, vb.size);
	}
	lam_key_value_iter_free(ia);
	lam_key_value_iter_free(ib);

	char *sa = kt_subkeys(ka), *sb = kt_subkeys(kb);
	ck_assert_msg(strcmp(sa, sb) == 0, "%s: subkeys \"%s\" vs \"%s\"", path,
		      sa, sb);
	char *save = NULL;
	for (char *name = strtok_r(sa, ",", &save); name;
	     name = strtok_r(NULL, ",", &save)) {
		char child[2048];
		snprintf(child, sizeof(child), "%s\\%s", path, name);
		compare(a, b, child);
	}
	free(sa);
	free(sb);
	lam_key_free(ka);
	lam_key_free(kb);
}

static char *run_capture(const char *cmd)
{
	const char *out = lt_path("captured.reg");
	char full[8192];
	snprintf(full, sizeof(full), "%s > '%s' 2>'%s'", cmd, out,
		 lt_path("captured.err"));
	int st = lt_run(full);
	char *err = lt_read(lt_path("captured.err"), NULL);
	ck_assert_msg(st == 0, "%s failed (%d): %s", cmd, st, err);
	free(err);
	return lt_read(out, NULL);
}

START_TEST(test_hivex_round_trip_keeps_every_key_and_value)
{
	lam_view *v = kt_view(NULL);
	fill(v);
	/* Commit, so that the export reads through a layer too. */
	lam_layer *l = kt_commit(v);
	kt_set_sz(v, ROOT "\\Vendor\\Upper", "u", "from the upper");

	lam_reg_options o = LAM_REG_OPTIONS_INIT;
	o.root = ROOT;
	o.flags = LAM_REG_HEX_STRINGS;
	lam_key *k;
	char *text;
	size_t len;
	LT_OK(lam_key_open(&k, v, ROOT, 0));
	LT_OK(lam_key_export_reg(&text, &len, k, &o));
	lam_key_free(k);
	lt_write_bytes(lt_path("lamina.reg"), text, len);
	lam_free(text);

	const char *hive = lt_path("software.hive");
	write_empty_hive(hive);
	char cmd[8192];
	snprintf(cmd, sizeof(cmd), "hivexregedit --merge '%s' '%s'", hive,
		 lt_path("lamina.reg"));
	free(run_capture(cmd));
	snprintf(cmd, sizeof(cmd), "hivexregedit --export '%s' '\\'", hive);
	char *back = run_capture(cmd);
	ck_assert(strstr(back, "[\\Vendor\\App]") != NULL);

	/* Read hivex's export back, root-relative names below the same
	 * root, and compare everything. */
	lam_view *w = kt_view(NULL);
	o.flags = 0;
	o.source = "hivex.reg";
	LT_OK(lam_kv_import_reg(w, back, strlen(back), &o));
	compare(v, w, ROOT);
	free(back);

	/* hivex's --prefix form lands in the same place without a root. */
	snprintf(cmd, sizeof(cmd),
		 "hivexregedit --export --prefix '%s' '%s' '\\Vendor'", ROOT,
		 hive);
	back = run_capture(cmd);
	lam_view *x = kt_view(NULL);
	LT_OK(lam_kv_import_reg(x, back, strlen(back), NULL));
	compare(v, x, ROOT "\\Vendor");
	free(back);

	kt_view_free(x);
	kt_view_free(w);
	kt_view_free(v);
	lam_layer_free(l);
}
END_TEST

START_TEST(test_generated_hive_is_one_hivex_accepts)
{
	const char *hive = lt_path("empty.hive");
	write_empty_hive(hive);
	char cmd[4200];
	snprintf(cmd, sizeof(cmd), "hivexregedit --export '%s' '\\'", hive);
	char *out = run_capture(cmd);
	ck_assert_str_eq(out,
			 "Windows Registry Editor Version 5.00\n\n[\\]\n\n");
	free(out);
}
END_TEST

int main(void)
{
	if (lt_run("command -v hivexregedit >/dev/null 2>&1") != 0) {
		printf("hivexregedit is not installed (libwin-hivex-perl): "
		       "skipping\n");
		return 77;
	}
	Suite *s = suite_create("kv-hivex");
	TCase *tc = tcase_create("kv-hivex");
	tcase_add_checked_fixture(tc, lt_setup, lt_teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_generated_hive_is_one_hivex_accepts);
	tcase_add_test(tc, test_hivex_round_trip_keeps_every_key_and_value);
	suite_add_tcase(s, tc);
	return lt_main(s);
}
