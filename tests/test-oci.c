/* SPDX-License-Identifier: MIT */
/* OCI image layouts: export, import, sharing, platforms, bad layouts. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "support.h"
#include "tar-build.h"

static lam_store *other_store(const char *name)
{
	lam_store *s = NULL;
	lam_store_options o = LAM_STORE_OPTIONS_INIT;
	o.flags = LAM_STORE_CREATE;
	LT_OK(lam_store_open(&s, lt_path("%s", name), &o));
	return s;
}

/* base <- mid (with a key/value delta) <- top */
static lam_layer *make_chain(lam_layer **base_out)
{
	lt_write(lt_path("b/etc/os-release"), "ID=test\n");
	lt_write(lt_path("b/bin/sh"), "#!shell\n");
	lt_write(lt_path("b/var/lib/data"), "data\n");
	lam_layer *base = lt_import(lt_path("b"), NULL);
	lam_view *v = NULL;
	LT_OK(lam_view_create(&v, lt_store, base, NULL));
	LT_OK(lam_kv_set_value(v, "HKLM\\Software\\Test", "Name", LAM_KV_SZ,
			       "value", 6));
	LT_OK(lam_view_unlink(v, "var/lib/data"));
	LT_OK(lam_view_mkdir(v, "opt", 0755));
	lam_layer *mid = NULL;
	LT_OK(lam_view_commit(v, &mid, NULL));
	lam_view_free(v);
	lt_write(lt_path("t/opt/app"), "app\n");
	lam_layer *top = lt_import(lt_path("t"), mid);
	lam_layer_free(mid);
	*base_out = base;
	return top;
}

static void assert_same_tree(lam_layer *a, lam_layer *b)
{
	static int n;
	const char *x = lt_path("tree-a-%d", n), *y = lt_path("tree-b-%d", n);
	n++;
	LT_OK(lam_layer_checkout(a, x, NULL));
	LT_OK(lam_layer_checkout(b, y, NULL));
	char *d = lt_tree_diff(x, y, true);
	ck_assert_msg(d == NULL, "trees differ: %s", d);
}

START_TEST(test_layout_roundtrip_keeps_chain_digests)
{
	lam_layer *base;
	lam_layer *top = make_chain(&base);
	lam_oci_options o = LAM_OCI_OPTIONS_INIT;
	for (unsigned int c = 0; c < 3; c++) {
		o.compression = c;
		const char *dir = lt_path("layout-%u", c);
		LT_OK(lam_oci_export(lt_store, lam_layer_id(top), dir, "v1",
				     &o));
		ck_assert(lt_exists(lt_path("layout-%u/oci-layout", c)));
		lam_store *s2 = other_store("s2");
		lam_layer *got = NULL;
		LT_OK(lam_oci_import(&got, s2, dir, "v1", NULL));
		ck_assert_str_eq(lam_layer_id(got), lam_layer_id(top));
		ck_assert_uint_eq(lam_layer_depth(got), 3);
		assert_same_tree(got, top);
		/* The key/value delta came along. */
		lam_view *v = NULL;
		LT_OK(lam_view_create(&v, s2, got, NULL));
		char buf[16];
		size_t need = 0;
		uint32_t type = 0;
		LT_OK(lam_kv_get_value(v, "HKLM\\Software\\Test", "Name", &type,
				       buf, sizeof(buf), &need));
		ck_assert_str_eq(buf, "value");
		lam_view_free(v);
		size_t problems = 9;
		LT_OK(lam_store_check(s2, 0, NULL, NULL, &problems));
		ck_assert_uint_eq(problems, 0);
		lam_layer_free(got);
		lam_store_free(s2);
		lt_rmtree(lt_path("s2"));
	}
	lam_layer_free(top);
	lam_layer_free(base);
}
END_TEST

static int count_blobs(const char *dir)
{
	char cmd[9000];
	snprintf(cmd, sizeof(cmd), "exit $(ls '%s/blobs/sha256' | wc -l)", dir);
	return lt_run(cmd);
}

START_TEST(test_images_share_blobs_and_layers)
{
	lam_layer *base;
	lam_layer *top = make_chain(&base);
	lt_write(lt_path("o/other"), "other\n");
	lam_layer *other = lt_import(lt_path("o"), base);
	const char *dir = lt_path("layout");
	LT_OK(lam_oci_export(lt_store, lam_layer_id(top), dir, "one", NULL));
	int first = count_blobs(dir);
	ck_assert_int_eq(first, 3 + 2); /* layers, config, manifest */
	LT_OK(lam_oci_export(lt_store, lam_layer_id(other), dir, "two", NULL));
	/* Only the new layer, config and manifest. */
	ck_assert_int_eq(count_blobs(dir), first + 3);
	/* Re-exporting a tag replaces it rather than adding one. */
	LT_OK(lam_oci_export(lt_store, lam_layer_id(other), dir, "two", NULL));
	char cmd[9000];
	snprintf(cmd, sizeof(cmd),
		 "test $(grep -o 'ref.name' '%s/index.json' | wc -l) = 2", dir);
	ck_assert_int_eq(lt_run(cmd), 0);
	lam_store *s2 = other_store("s2");
	lam_layer *a = NULL, *b = NULL;
	LT_OK(lam_oci_import(&a, s2, dir, "one", NULL));
	lam_store_stats st1, st2;
	LT_OK(lam_store_stats_get(s2, &st1));
	LT_OK(lam_oci_import(&b, s2, dir, "two", NULL));
	LT_OK(lam_store_stats_get(s2, &st2));
	ck_assert_str_eq(lam_layer_id(b), lam_layer_id(other));
	/* The base was not extracted again: one new layer, one new file. */
	ck_assert_uint_eq(st2.layers, st1.layers + 1);
	ck_assert_uint_eq(st2.objects, st1.objects + 1);
	/* No tag and two images: which one? */
	lam_layer *c = NULL;
	LT_FAILS(lam_oci_import(&c, s2, dir, NULL, NULL), LAM_EAMBIGUOUS,
		 "name one by its tag");
	LT_FAILS(lam_oci_import(&c, s2, dir, "three", NULL), LAM_ENOTFOUND,
		 "no image tagged three");
	lam_layer_free(a);
	lam_layer_free(b);
	lam_store_free(s2);
	lam_layer_free(other);
	lam_layer_free(top);
	lam_layer_free(base);
}
END_TEST

static char *manifest_desc(const char *dir, const char *tag)
{
	/* The descriptor exported for a tag, as index.json holds it. */
	char cmd[9000];
	snprintf(cmd, sizeof(cmd),
		 "python3 -c 'import json,sys; i=json.load(open(\"%s/index."
		 "json\")); print(json.dumps([m for m in i[\"manifests\"] if "
		 "m[\"annotations\"][\"org.opencontainers.image.ref.name\"]=="
		 "\"%s\"][0]))' > '%s/desc-%s'",
		 dir, tag, lt_dir, tag);
	ck_assert_int_eq(lt_run(cmd), 0);
	return lt_read(lt_path("desc-%s", tag), NULL);
}

START_TEST(test_multi_platform_index_picks_the_host)
{
	lt_write(lt_path("a/arch"), "host\n");
	lt_write(lt_path("x/arch"), "other\n");
	lam_layer *host = lt_import(lt_path("a"), NULL);
	lam_layer *other = lt_import(lt_path("x"), NULL);
	const char *dir = lt_path("layout");
	LT_OK(lam_oci_export(lt_store, lam_layer_id(host), dir, "h", NULL));
	LT_OK(lam_oci_export(lt_store, lam_layer_id(other), dir, "o", NULL));
	char *dh = manifest_desc(dir, "h"), *dox = manifest_desc(dir, "o");
	/* A nested index with a platform per manifest, tagged "multi". */
	char idx[8192];
	const char *arch = "amd64";
#if defined(__aarch64__)
	arch = "arm64";
#endif
	dh[strcspn(dh, "\n")] = '\0';
	dox[strcspn(dox, "\n")] = '\0';
	dh[strlen(dh) - 1] = '\0';
	dox[strlen(dox) - 1] = '\0';
	snprintf(idx, sizeof(idx),
		 "{\"schemaVersion\":2,\"manifests\":[%s,\"platform\":{"
		 "\"os\":\"linux\",\"architecture\":\"s390x\"}},%s,"
		 "\"platform\":{\"os\":\"linux\",\"architecture\":\"%s\"}}]}",
		 dox, dh, arch);
	char cmd[20000];
	snprintf(
		cmd, sizeof(cmd),
		"cd '%s' && printf '%%s' '%s' > i.json && d=$(sha256sum i.json "
		"| cut -d' ' -f1) && cp i.json blobs/sha256/$d && printf "
		"'{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":"
		"\"application/vnd.oci.image.index.v1+json\",\"digest\":"
		"\"sha256:%%s\",\"size\":%%s,\"annotations\":{\"org."
		"opencontainers.image.ref.name\":\"multi\"}}]}' $d $(stat -c "
		"%%s i.json) > index.json",
		dir, idx);
	ck_assert_int_eq(lt_run(cmd), 0);
	lam_store *s2 = other_store("s2");
	lam_layer *got = NULL;
	LT_OK(lam_oci_import(&got, s2, dir, "multi", NULL));
	ck_assert_str_eq(lam_layer_id(got), lam_layer_id(host));
	lam_layer_free(got);
	lam_oci_options o = LAM_OCI_OPTIONS_INIT;
	o.platform = "linux/s390x";
	LT_OK(lam_oci_import(&got, s2, dir, "multi", &o));
	ck_assert_str_eq(lam_layer_id(got), lam_layer_id(other));
	lam_layer_free(got);
	o.platform = "linux/riscv64";
	LT_FAILS(lam_oci_import(&got, s2, dir, "multi", &o), LAM_ENOTFOUND,
		 "no image for platform linux/riscv64");
	o.platform = "nonsense";
	LT_FAILS(lam_oci_import(&got, s2, dir, "multi", &o), LAM_EINVAL,
		 "bad platform");
	free(dh);
	free(dox);
	lam_store_free(s2);
	lam_layer_free(host);
	lam_layer_free(other);
}
END_TEST

START_TEST(test_damaged_layouts_are_refused)
{
	lam_layer *base;
	lam_layer *top = make_chain(&base);
	const char *dir = lt_path("layout");
	lam_oci_options o = LAM_OCI_OPTIONS_INIT;
	o.compression = LAM_COMPRESS_NONE;
	LT_OK(lam_oci_export(lt_store, lam_layer_id(top), dir, "v", &o));
	lam_store *s2 = other_store("s2");
	lam_layer *got = NULL;
	LT_FAILS(lam_oci_import(&got, s2, lt_path("nothere"), NULL, NULL),
		 LAM_ENOTFOUND, NULL);
	LT_FAILS(lam_oci_import(&got, s2, lt_dir, NULL, NULL), LAM_ECORRUPT,
		 "not an OCI image layout");
	/* Flip one byte of the top layer's blob (same size). */
	char cmd[9000];
	snprintf(cmd, sizeof(cmd),
		 "cd '%s/blobs/sha256' && f=$(ls -S | head -1) && "
		 "chmod u+w $f && printf 'X' | dd of=$f bs=1 seek=600 "
		 "conv=notrunc 2>/dev/null",
		 dir);
	ck_assert_int_eq(lt_run(cmd), 0);
	LT_FAILS(lam_oci_import(&got, s2, dir, "v", NULL), LAM_ECORRUPT,
		 "mismatch");
	ck_assert_ptr_null(got);
	size_t problems = 9;
	LT_OK(lam_store_check(s2, 0, NULL, NULL, &problems));
	ck_assert_uint_eq(problems, 0);
	/* A config that does not match its digest. */
	snprintf(cmd, sizeof(cmd),
		 "cd '%s' && for f in blobs/sha256/*; do grep -q diff_ids $f "
		 "&& sed -i 's/linux/LINUX/' $f; done; true",
		 dir);
	ck_assert_int_eq(lt_run(cmd), 0);
	LT_FAILS(lam_oci_import(&got, s2, dir, "v", NULL), LAM_ECORRUPT,
		 "config: digest mismatch");
	lam_store_free(s2);
	lam_layer_free(top);
	lam_layer_free(base);
}
END_TEST

/* Exports into one layout from several processes at once all land in
 * index.json (lamina locks the layout folder while it rewrites it). */
START_TEST(test_concurrent_exports_keep_every_tag)
{
	lam_layer *base;
	lam_layer *top = make_chain(&base);
	enum {
		WRITERS = 4,
		ROUNDS = 5
	};
	pid_t pids[WRITERS];
	for (int w = 0; w < WRITERS; w++) {
		pids[w] = fork();
		ck_assert_int_ge(pids[w], 0);
		if (pids[w] == 0) {
			for (int r = 0; r < ROUNDS; r++) {
				char tag[32];
				snprintf(tag, sizeof(tag), "w%d-r%d", w, r);
				if (lam_oci_export(
					    lt_store,
					    lam_layer_id(r % 2 ? top : base),
					    lt_path("shared"), tag, NULL) != 0)
					_exit(1);
			}
			_exit(0);
		}
	}
	for (int w = 0; w < WRITERS; w++) {
		int st = 0;
		ck_assert_int_eq(waitpid(pids[w], &st, 0), pids[w]);
		ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0,
			      "writer %d failed", w);
	}
	lam_store *s2 = other_store("s2");
	for (int w = 0; w < WRITERS; w++)
		for (int r = 0; r < ROUNDS; r++) {
			char tag[32];
			snprintf(tag, sizeof(tag), "w%d-r%d", w, r);
			lam_layer *got = NULL;
			LT_OK(lam_oci_import(&got, s2, lt_path("shared"), tag,
					     NULL));
			ck_assert_str_eq(lam_layer_id(got),
					 lam_layer_id(r % 2 ? top : base));
			lam_layer_free(got);
		}
	lam_store_free(s2);
	lam_layer_free(top);
	lam_layer_free(base);
}
END_TEST

/* The import's cache of OCI layers goes with the layers it names. */
START_TEST(test_gc_drops_cache_entries_of_removed_layers)
{
	lam_layer *base;
	lam_layer *top = make_chain(&base);
	LT_OK(lam_oci_export(lt_store, lam_layer_id(top), lt_path("lay"), "t",
			     NULL));
	lam_store *s2 = other_store("s2");
	lam_layer *got = NULL;
	LT_OK(lam_oci_import(&got, s2, lt_path("lay"), "t", NULL));
	char cmd[9000];
	snprintf(cmd, sizeof(cmd), "test $(ls '%s' | wc -l) = 3",
		 lt_path("s2/oci-cache"));
	ck_assert_int_eq(lt_run(cmd), 0);
	/* Referenced (through a ref): kept. */
	LT_OK(lam_store_ref_set(s2, "img", lam_layer_id(got), NULL));
	lam_gc_stats gs;
	LT_OK(lam_store_gc(s2, &gs));
	ck_assert_int_eq(lt_run(cmd), 0);
	/* Unreferenced: the layers go, and their entries. */
	LT_OK(lam_store_ref_delete(s2, "img", NULL));
	lam_layer_free(got);
	LT_OK(lam_store_gc(s2, &gs));
	ck_assert_uint_eq(gs.layers_removed, 3);
	snprintf(cmd, sizeof(cmd), "test -z \"$(ls -A '%s')\"",
		 lt_path("s2/oci-cache"));
	ck_assert_int_eq(lt_run(cmd), 0);
	/* And the image imports again, whole. */
	LT_OK(lam_oci_import(&got, s2, lt_path("lay"), "t", NULL));
	ck_assert_str_eq(lam_layer_id(got), lam_layer_id(top));
	lam_layer_free(got);
	lam_store_free(s2);
	lam_layer_free(top);
	lam_layer_free(base);
}
END_TEST

int main(void)
{
	if (lt_archive_missing())
		return 77;
	Suite *s = suite_create("oci");
	TCase *tc = tcase_create("oci");
	tcase_add_checked_fixture(tc, lt_setup, lt_teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_layout_roundtrip_keeps_chain_digests);
	tcase_add_test(tc, test_images_share_blobs_and_layers);
	tcase_add_test(tc, test_multi_platform_index_picks_the_host);
	tcase_add_test(tc, test_damaged_layouts_are_refused);
	tcase_add_test(tc, test_concurrent_exports_keep_every_tag);
	tcase_add_test(tc, test_gc_drops_cache_entries_of_removed_layers);
	suite_add_tcase(s, tc);
	return lt_main(s);
}
