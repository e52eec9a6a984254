/* SPDX-License-Identifier: MIT */
/*
 * Hostile layer archives: each must be refused with a precise error, leave
 * the sentinel tree outside the store byte for byte as it was, and leave
 * the store passing its check with no partial layer.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "support.h"
#include "tar-build.h"

static lam_layer *lower;

/* The sentinel (outside the store), a copy to compare it with, and a
 * lower layer holding legitimate symlinks that lead out of the layer. */
static void setup(void)
{
	lt_setup();
	lt_write(lt_path("sentinel/file"), "precious\n");
	lt_write(lt_path("sentinel/dir/inner"), "inner\n");
	char cmd[9000];
	snprintf(cmd, sizeof(cmd), "cp -a '%s' '%s'", lt_path("sentinel"),
		 lt_path("sentinel.copy"));
	ck_assert_int_eq(lt_run(cmd), 0);
	lt_symlink(lt_path("sentinel"), lt_path("lower/escape"));
	lt_symlink("../../../../../../../..", lt_path("lower/up"));
	lt_write(lt_path("lower/etc/conf"), "conf");
	lower = lt_import(lt_path("lower"), NULL);
}

static void teardown(void)
{
	lam_layer_free(lower);
	lower = NULL;
	lt_teardown();
}

static void assert_nothing_happened(void)
{
	char *d = lt_tree_diff(lt_path("sentinel.copy"), lt_path("sentinel"),
			       true);
	ck_assert_msg(d == NULL, "the sentinel changed: %s", d);
	size_t problems = 99;
	LT_OK(lam_store_check(lt_store, 0, NULL, NULL, &problems));
	ck_assert_uint_eq(problems, 0);
	lam_store_stats st;
	LT_OK(lam_store_stats_get(lt_store, &st));
	ck_assert_uint_eq(st.layers, 1);
	/* The lower layer's two files: "conf"; no object of the refused
	 * archive stays behind. */
	ck_assert_uint_eq(st.objects, 1);
	tb_assert_tmp_empty(lt_store_path);
}

static void refused(tb *t, bool on_lower, unsigned int flags, int code,
		    const char *text)
{
	lam_tar_import_options o = LAM_TAR_IMPORT_OPTIONS_INIT;
	o.flags = flags;
	lam_layer *out = (lam_layer *)1;
	LT_FAILS(tb_import(t, lt_store, on_lower ? lower : NULL, &o, &out),
		 code, text);
	ck_assert_ptr_null(out);
	free(t->d);
	t->d = NULL;
	assert_nothing_happened();
}

#define CASE(name) START_TEST(name)

CASE(test_dotdot_paths_are_refused)
{
	tb t;
	tb_init(&t);
	tb_file(&t, "../sentinel/file", 0644, "evil", 4);
	tb_end(&t);
	refused(&t, false, 0, LAM_EUNSAFE, "leads out of the layer");
	tb_init(&t);
	tb_dir(&t, "a/", 0755);
	tb_file(&t, "a/../../sentinel/evil", 0644, "evil", 4);
	tb_end(&t);
	refused(&t, true, 0, LAM_EUNSAFE, "\"..\" leads out");
	/* The same through a PAX path and a GNU long name. */
	tb_init(&t);
	const char *pax[] = {"path=x/../../sentinel/file"};
	tb_pax(&t, pax, 1);
	tb_file(&t, "harmless", 0644, "evil", 4);
	tb_end(&t);
	refused(&t, false, 0, LAM_EUNSAFE, "leads out");
	tb_init(&t);
	static const char ln[] = "../sentinel/file";
	tb_header(&t, "././@LongLink", 'L', 0644, sizeof(ln), NULL, NULL);
	tb_data(&t, ln, sizeof(ln));
	tb_file(&t, "harmless", 0644, "evil", 4);
	tb_end(&t);
	refused(&t, false, 0, LAM_EUNSAFE, "leads out");
}
END_TEST

CASE(test_absolute_paths_are_refused)
{
	tb t;
	tb_init(&t);
	char abs[4200];
	snprintf(abs, sizeof(abs), "%s/evil", lt_path("sentinel"));
	tb_file(&t, abs, 0644, "evil", 4);
	tb_end(&t);
	refused(&t, false, 0, LAM_EUNSAFE, "absolute paths are refused");
}
END_TEST

CASE(test_writes_through_symlinks_are_refused)
{
	tb t;
	/* A symlink of the archive, then a write through it. */
	tb_init(&t);
	tb_symlink(&t, "ln", lt_path("sentinel"));
	tb_file(&t, "ln/file", 0644, "evil", 4);
	tb_end(&t);
	refused(&t, false, 0, LAM_EUNSAFE, "writing through symlinks");
	/* The write first, the symlink after. */
	tb_init(&t);
	tb_file(&t, "ln/file", 0644, "evil", 4);
	tb_symlink(&t, "ln", lt_path("sentinel"));
	tb_end(&t);
	refused(&t, false, 0, LAM_EUNSAFE, "symlink");
	/* A legitimate absolute symlink of a lower layer, written through
	 * by a later layer. */
	tb_init(&t);
	tb_file(&t, "escape/file", 0644, "evil", 4);
	tb_end(&t);
	refused(&t, true, 0, LAM_EUNSAFE, "a symlink in a lower layer");
	tb_init(&t);
	tb_file(&t, "up/tmp/evil", 0644, "evil", 4);
	tb_end(&t);
	refused(&t, true, 0, LAM_EUNSAFE, "a symlink in a lower layer");
	/* A whiteout below the lower symlink. */
	tb_init(&t);
	tb_file(&t, "escape/.wh.file", 0644, "", 0);
	tb_end(&t);
	refused(&t, true, 0, LAM_EUNSAFE, "a symlink in a lower layer");
	/* A chain of symlinks that leads out. */
	tb_init(&t);
	tb_symlink(&t, "a", "b");
	tb_symlink(&t, "b", "c");
	tb_symlink(&t, "c", "../../../../../..");
	tb_file(&t, "a/sentinel/file", 0644, "evil", 4);
	tb_end(&t);
	refused(&t, false, 0, LAM_EUNSAFE, "symlink");
}
END_TEST

CASE(test_replacing_a_lower_symlink_explicitly_is_allowed)
{
	/* A folder member replaces the lower symlink (overlayfs: the upper
	 * wins); nothing is written through it. */
	tb t;
	tb_init(&t);
	tb_dir(&t, "escape/", 0755);
	tb_file(&t, "escape/file", 0644, "mine", 4);
	tb_end(&t);
	lam_layer *l = tb_import_ok(&t, lt_store, lower, NULL);
	char *d = lt_tree_diff(lt_path("sentinel.copy"), lt_path("sentinel"),
			       true);
	ck_assert_msg(d == NULL, "the sentinel changed: %s", d);
	LT_OK(lam_layer_checkout(l, lt_path("co"), NULL));
	char *c = lt_read(lt_path("co/escape/file"), NULL);
	ck_assert_str_eq(c, "mine");
	free(c);
	lam_layer_free(l);
}
END_TEST

CASE(test_bad_hard_links_are_refused)
{
	tb t;
	tb_init(&t);
	tb_hardlink(&t, "evil", "../sentinel/file");
	tb_end(&t);
	refused(&t, false, 0, LAM_EUNSAFE, "leads out");
	tb_init(&t);
	char abs[4200];
	snprintf(abs, sizeof(abs), "%s/file", lt_path("sentinel"));
	tb_hardlink(&t, "evil", abs);
	tb_end(&t);
	refused(&t, false, 0, LAM_EUNSAFE, "absolute");
	tb_init(&t);
	tb_hardlink(&t, "evil", "etc/conf"); /* in the lower layer only */
	tb_end(&t);
	refused(&t, true, 0, LAM_EUNSAFE, "not an earlier file");
	/* A link to a symlink that the archive then replaces. */
	tb_init(&t);
	tb_symlink(&t, "s", abs);
	tb_hardlink(&t, "h", "s");
	tb_file(&t, "s", 0644, "evil", 4);
	tb_end(&t);
	refused(&t, false, 0, LAM_EUNSAFE, "appears twice");
	/* A link through a symlink of the archive. */
	tb_init(&t);
	tb_symlink(&t, "s", lt_path("sentinel"));
	tb_hardlink(&t, "h", "s/file");
	tb_end(&t);
	refused(&t, false, 0, LAM_EUNSAFE, "not an earlier file");
}
END_TEST

CASE(test_policy_refuses_devices_and_setid)
{
	tb t;
	tb_init(&t);
	tb_header(&t, "dev/sda", '4', 0660, 0, NULL, NULL);
	tb_end(&t);
	refused(&t, false, LAM_TAR_REFUSE_DEVICES, LAM_EUNSAFE,
		"device nodes are refused");
	tb_init(&t);
	tb_file(&t, "bin/su", 04755, "su", 2);
	tb_end(&t);
	refused(&t, false, LAM_TAR_REFUSE_SETID, LAM_EUNSAFE,
		"setuid and setgid");
	/* Stripping instead of refusing. */
	tb_init(&t);
	tb_file(&t, "bin/su", 06755, "su", 2);
	tb_end(&t);
	lam_tar_import_options o = LAM_TAR_IMPORT_OPTIONS_INIT;
	o.flags = LAM_TAR_STRIP_SETID;
	lam_layer *l = tb_import_ok(&t, lt_store, NULL, &o);
	LT_OK(lam_layer_checkout(l, lt_path("co"), NULL));
	struct stat st;
	ck_assert_int_eq(stat(lt_path("co/bin/su"), &st), 0);
	ck_assert_uint_eq(st.st_mode & 07777, 0755);
	lam_layer_free(l);
}
END_TEST

CASE(test_bad_whiteouts_are_refused)
{
	tb t;
	tb_init(&t);
	tb_file(&t, "a/.wh...", 0644, "", 0);
	tb_end(&t);
	refused(&t, true, 0, LAM_EUNSAFE, "whiteout of \"..\"");
	tb_init(&t);
	tb_file(&t, ".wh..", 0644, "", 0);
	tb_end(&t);
	refused(&t, true, 0, LAM_EBADNAME, "whiteout of \".\"");
	tb_init(&t);
	tb_file(&t, "etc/.wh.", 0644, "", 0);
	tb_end(&t);
	refused(&t, true, 0, LAM_EBADNAME, "bare \".wh.\"");
	tb_init(&t);
	tb_file(&t, "f", 0644, "f", 1);
	tb_file(&t, "f/.wh..wh..opq", 0644, "", 0);
	tb_end(&t);
	refused(&t, true, 0, LAM_EUNSAFE, "non-folder");
}
END_TEST

CASE(test_duplicates_and_reserved_names_are_refused)
{
	tb t;
	tb_init(&t);
	tb_file(&t, "f", 0644, "one", 3);
	tb_file(&t, "./f", 0644, "two", 3);
	tb_end(&t);
	refused(&t, false, 0, LAM_EUNSAFE, "entry f appears twice");
	tb_init(&t);
	tb_file(&t, "./", 0644, "", 0);
	tb_end(&t);
	refused(&t, false, 0, LAM_EUNSAFE, "root must be a folder");
	tb_init(&t);
	const char *pax[] = {"SCHILY.xattr.trusted.overlay.redirect=/x/y"};
	tb_pax(&t, pax, 1);
	tb_file(&t, "f", 0644, "f", 1);
	tb_end(&t);
	refused(&t, false, 0, LAM_EUNSAFE, "reserved");
}
END_TEST

static void size_pax_10(unsigned char *h)
{
	(void)h;
}

static void negative_size(unsigned char *h)
{
	memset(h + 124, 0xff, 12);
}

static void huge_b256_size(unsigned char *h)
{
	h[124] = 0x80;
	memset(h + 125, 0xff, 11);
}

static void small_b256_size(unsigned char *h)
{
	/* 1 GiB claimed in base-256, with 4 bytes of data behind it. */
	memset(h + 124, 0, 12);
	h[124] = 0x80;
	h[132] = 0x40;
}

static void bad_mode(unsigned char *h)
{
	memcpy(h + 100, "07x5\0", 5);
}

CASE(test_malformed_headers_are_refused)
{
	tb t;
	tb_init(&t);
	const char *pax[] = {"size=10"};
	tb_pax(&t, pax, 1);
	tb_header(&t, "f", '0', 0644, 5, NULL, size_pax_10);
	tb_data(&t, "0123456789", 10);
	tb_end(&t);
	refused(&t, false, 0, LAM_ECORRUPT,
		"PAX size 10 disagrees with the header's size 5");
	tb_init(&t);
	tb_header(&t, "f", '0', 0644, 0, NULL, negative_size);
	tb_data(&t, "abcd", 4);
	tb_end(&t);
	refused(&t, false, 0, LAM_ECORRUPT, "negative base-256");
	tb_init(&t);
	tb_header(&t, "f", '0', 0644, 0, NULL, huge_b256_size);
	tb_end(&t);
	refused(&t, false, 0, LAM_ECORRUPT, "out of range");
	tb_init(&t);
	tb_header(&t, "f", '0', 0644, 0, NULL, small_b256_size);
	tb_data(&t, "abcd", 4);
	tb_end(&t);
	refused(&t, false, 0, LAM_ECORRUPT, "truncated");
	tb_init(&t);
	tb_header(&t, "f", '0', 0644, 077777777777ull, NULL, NULL);
	tb_data(&t, "abcd", 4);
	tb_end(&t);
	refused(&t, false, 0, LAM_ECORRUPT, "truncated");
	tb_init(&t);
	tb_header(&t, "f", '0', 0644, 0, NULL, bad_mode);
	tb_end(&t);
	refused(&t, false, 0, LAM_ECORRUPT, "bad number in mode");
	/* A corrupted header: its checksum no longer matches. */
	tb_init(&t);
	tb_file(&t, "ok", 0644, "ok", 2);
	tb_file(&t, "f", 0644, "f", 1);
	tb_end(&t);
	t.d[1024 + 1] ^= 1;
	refused(&t, false, 0, LAM_ECORRUPT, "bad checksum");
	tb_init(&t);
	tb_header(&t, "f", 'S', 0644, 0, NULL, NULL);
	tb_end(&t);
	refused(&t, false, 0, LAM_ENOTSUP, "sparse");
	(void)size_pax_10;
}
END_TEST

CASE(test_truncated_streams_are_refused)
{
	tb t;
	tb_init(&t);
	tb_file(&t, "a", 0644, "aaaa", 4);
	tb_header(&t, "b", '0', 0644, 4096, NULL, NULL);
	tb_put(&t, "half", 4);
	refused(&t, false, 0, LAM_ECORRUPT, "truncated");
	tb_init(&t);
	tb_file(&t, "a", 0644, "aaaa", 4);
	refused(&t, false, 0, LAM_ECORRUPT, "no end-of-archive marker");
	tb_init(&t);
	tb_file(&t, "a", 0644, "aaaa", 4);
	tb_put(&t, "x", 1);
	refused(&t, false, 0, LAM_ECORRUPT, "truncated");
	/* A gzip stream cut short. */
	char cmd[9000];
	snprintf(cmd, sizeof(cmd),
		 "cd '%s' && head -c 300000 /dev/urandom > r && tar cf - r | "
		 "gzip -1 | head -c 20000 > cut.tar.gz",
		 lt_dir);
	ck_assert_int_eq(lt_run(cmd), 0);
	int fd = open(lt_path("cut.tar.gz"), O_RDONLY | O_CLOEXEC);
	lam_layer *out = NULL;
	LT_FAILS(lam_layer_import_tar(&out, lt_store, fd, NULL, NULL),
		 LAM_ECORRUPT, NULL);
	close(fd);
	assert_nothing_happened();
}
END_TEST

CASE(test_decompression_bomb_hits_the_size_cap)
{
	char cmd[9000];
	snprintf(cmd, sizeof(cmd),
		 "cd '%s' && head -c 200000000 /dev/zero > z && tar cf - z | "
		 "gzip -1 > bomb.tar.gz && rm z",
		 lt_dir);
	ck_assert_int_eq(lt_run(cmd), 0);
	struct stat st;
	ck_assert_int_eq(stat(lt_path("bomb.tar.gz"), &st), 0);
	ck_assert_int_lt(st.st_size, 1000000);
	lam_tar_import_options o = LAM_TAR_IMPORT_OPTIONS_INIT;
	o.max_size = 16u << 20;
	int fd = open(lt_path("bomb.tar.gz"), O_RDONLY | O_CLOEXEC);
	lam_layer *out = NULL;
	LT_FAILS(lam_layer_import_tar(&out, lt_store, fd, NULL, &o), LAM_EQUOTA,
		 "size cap");
	close(fd);
	assert_nothing_happened();
	/* A zstd bomb too, whose member claims less than it holds. */
	snprintf(cmd, sizeof(cmd),
		 "cd '%s' && head -c 1000 /dev/zero > s && tar cf - s | "
		 "head -c 1536 > s.tar && head -c 100000000 /dev/zero >> s.tar "
		 "&& zstd -q -1 s.tar -o s.tar.zst",
		 lt_dir);
	ck_assert_int_eq(lt_run(cmd), 0);
	fd = open(lt_path("s.tar.zst"), O_RDONLY | O_CLOEXEC);
	LT_FAILS(lam_layer_import_tar(&out, lt_store, fd, NULL, &o), LAM_EQUOTA,
		 "size cap");
	close(fd);
	assert_nothing_happened();
}
END_TEST

CASE(test_wrong_digest_is_refused)
{
	tb t;
	tb_init(&t);
	tb_file(&t, "a", 0644, "aaaa", 4);
	tb_end(&t);
	lam_tar_import_options o = LAM_TAR_IMPORT_OPTIONS_INIT;
	o.diff_id = "sha256:"
		    "1111111111111111111111111111111111111111111111111111111111"
		    "111111";
	lam_layer *out = NULL;
	LT_FAILS(tb_import(&t, lt_store, NULL, &o, &out), LAM_ECORRUPT,
		 "diff id mismatch: expected sha256:1111");
	free(t.d);
	assert_nothing_happened();
}
END_TEST

int main(void)
{
	if (lt_archive_missing())
		return 77;
	Suite *s = suite_create("tar-hostile");
	TCase *tc = tcase_create("hostile");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_dotdot_paths_are_refused);
	tcase_add_test(tc, test_absolute_paths_are_refused);
	tcase_add_test(tc, test_writes_through_symlinks_are_refused);
	tcase_add_test(tc,
		       test_replacing_a_lower_symlink_explicitly_is_allowed);
	tcase_add_test(tc, test_bad_hard_links_are_refused);
	tcase_add_test(tc, test_policy_refuses_devices_and_setid);
	tcase_add_test(tc, test_bad_whiteouts_are_refused);
	tcase_add_test(tc, test_duplicates_and_reserved_names_are_refused);
	tcase_add_test(tc, test_malformed_headers_are_refused);
	tcase_add_test(tc, test_truncated_streams_are_refused);
	tcase_add_test(tc, test_decompression_bomb_hits_the_size_cap);
	tcase_add_test(tc, test_wrong_digest_is_refused);
	suite_add_tcase(s, tc);
	return lt_main(s);
}
