/* SPDX-License-Identifier: MIT */
/*
 * Proof against the container world's own tools: images that umoci builds
 * import into lamina with the same tree umoci unpacks; images lamina
 * exports unpack with umoci to lamina's tree; skopeo copies them and the
 * copy imports with the same chain digests; images that buildah builds
 * import with the same tree umoci unpacks. Skips (77) without umoci,
 * skopeo, buildah, busybox or root.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "support.h"
#include "tar-build.h"

/* Runs a shell command in lt_dir, its output appended to lt_dir/log;
 * returns its exit status. */
static int vsh(const char *fmt, va_list ap)
{
	char cmd[16384];
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	char full[24800];
	snprintf(full, sizeof(full), "cd '%s' && (%s) >> '%s/log' 2>&1", lt_dir,
		 cmd, lt_dir);
	return lt_run(full);
}

static int sh_rc(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int sh_rc(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int rc = vsh(fmt, ap);
	va_end(ap);
	return rc;
}

static void sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void sh(const char *fmt, ...)
{
	char cmd[16384];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	int rc = sh_rc("%s", cmd);
	if (rc != 0) {
		char *log = lt_read(lt_path("log"), NULL);
		ck_abort_msg("command failed (%d): %s\n%s", rc, cmd,
			     log ? log : "");
	}
}

static void assert_trees_equal(const char *a, const char *b)
{
	char *d = lt_tree_diff(a, b, true);
	ck_assert_msg(d == NULL, "%s and %s differ: %s", a, b, d);
}

/* An image of three layers built by umoci: a busybox root file system;
 * a layer that adds, changes and deletes files; a layer (added raw) with
 * an opaque folder. */
static void build_umoci_image(void)
{
	sh("umoci init --layout img && umoci new --image img:base && "
	   "umoci unpack --image img:base b1");
	sh("r=b1/rootfs && mkdir -p $r/bin $r/etc $r/data/sub $r/tmp && "
	   "cp /bin/busybox $r/bin/busybox && "
	   "for c in sh ls cat echo; do ln $r/bin/busybox $r/bin/$c; done && "
	   "ln -s busybox $r/bin/true && "
	   "echo 'root:x:0:0:root:/root:/bin/sh' > $r/etc/passwd && "
	   "echo one > $r/data/one && echo two > $r/data/sub/two && "
	   "chmod 1777 $r/tmp && chown 1000:1000 $r/data/one && "
	   "setfattr -n user.note -v hello $r/data/one && "
	   "mkfifo $r/data/fifo && "
	   "umoci repack --image img:base b1");
	sh("umoci unpack --image img:base b2 && r=b2/rootfs && "
	   "echo changed > $r/etc/passwd && echo new > $r/etc/new && "
	   "rm $r/data/sub/two && rm $r/bin/cat && "
	   "umoci repack --image img:v2 b2");
	sh("mkdir -p l3/data && touch l3/data/.wh..wh..opq && "
	   "echo only > l3/data/only && "
	   "tar --numeric-owner --owner=0 --group=0 -C l3 -cf l3.tar data && "
	   "umoci raw add-layer --image img:v2 --tag v3 l3.tar && "
	   "umoci unpack --image img:v3 ref");
}

/* buildah with storage of its own below lt_dir (the commands run there),
 * reading no user or system configuration. The overlay driver, because
 * only it turns a folder removed and made again into an opaque folder. */
#define BUILDAH                                                     \
	"env CONTAINERS_STORAGE_CONF=\"$PWD/bs/storage.conf\" "     \
	"CONTAINERS_CONF=\"$PWD/bs/containers.conf\" "              \
	"CONTAINERS_REGISTRIES_CONF=\"$PWD/bs/registries.conf\" "   \
	"BUILDAH_ISOLATION=chroot buildah --root \"$PWD/bs/root\" " \
	"--runroot \"$PWD/bs/run\" --storage-driver overlay"
#define POLICY "--signature-policy \"$PWD/bs/policy.json\""

/* The same image built by buildah 1.28 from mounted working containers
 * (no `buildah run`), committed to the layout bimg: base, a busybox root
 * file system with hard links, a symlink, a fifo, a sticky folder, an
 * owner and a user xattr (the overlay upper folder keeps it, and buildah
 * writes it as a SCHILY.xattr record); v2, which adds, changes (content,
 * mode; a new hard link to a copied-up member of the busybox group) and
 * deletes files (one a hard-link member); v3, which removes data and makes
 * it again: an opaque folder. buildah writes the base layer uncompressed
 * (its default for oci:) and v2's and v3's gzip (--disable-compression=
 * false), so the import reads both. The layout is named by a relative
 * path: buildah names what it pulls from oci:PATH after PATH, and
 * mkdtemp's capitals would make that an invalid name. Returns NULL, or
 * the step that failed. Whatever happened, removes buildah's containers,
 * images and mounts before returning: they live in the host's mount
 * namespace, and a failed assertion would leak them. */
static const char *build_buildah_image(void)
{
	static const char *const steps[] = {
		BUILDAH " from -q --name l1 scratch",
		"r=$(" BUILDAH " mount l1) && "
		"mkdir -p \"$r/bin\" \"$r/etc\" \"$r/data/sub\" \"$r/tmp\" && "
		"cp /bin/busybox \"$r/bin/busybox\" && "
		"for c in sh ls cat echo; do "
		"ln \"$r/bin/busybox\" \"$r/bin/$c\"; done && "
		"ln -s busybox \"$r/bin/true\" && "
		"echo 'root:x:0:0:root:/root:/bin/sh' > \"$r/etc/passwd\" && "
		"echo one > \"$r/data/one\" && "
		"echo two > \"$r/data/sub/two\" && "
		"echo keep > \"$r/data/sub/keep\" && "
		"chmod 1777 \"$r/tmp\" && chown 1000:1000 \"$r/data/one\" && "
		"setfattr -n user.note -v hello \"$r/data/one\" && "
		"mkfifo \"$r/data/fifo\"",
		BUILDAH " commit " POLICY " -q --format oci l1 "
			"oci:bimg:base",
		BUILDAH " from " POLICY " -q --name l2 oci:bimg:base",
		"r=$(" BUILDAH " mount l2) && "
		"echo changed > \"$r/etc/passwd\" && echo new > \"$r/etc/new\" && "
		"rm \"$r/data/sub/two\" \"$r/bin/cat\" && "
		"chmod 0600 \"$r/data/one\" && "
		"ln \"$r/bin/busybox\" \"$r/bin/yes\"",
		BUILDAH " commit " POLICY " -q --format oci "
			"--disable-compression=false l2 oci:bimg:v2",
		BUILDAH " from " POLICY " -q --name l3 oci:bimg:v2",
		"r=$(" BUILDAH " mount l3) && rm -rf \"$r/data\" && "
		"mkdir -p \"$r/data/sub\" && echo only > \"$r/data/only\" && "
		"echo again > \"$r/data/sub/again\"",
		BUILDAH " commit " POLICY " -q --format oci "
			"--disable-compression=false l3 oci:bimg:v3",
	};
	lt_write(lt_path("bs/storage.conf"),
		 "[storage]\ndriver = \"overlay\"\n");
	lt_write(lt_path("bs/containers.conf"), "");
	lt_write(lt_path("bs/registries.conf"), "");
	lt_write(lt_path("bs/policy.json"),
		 "{\"default\": [{\"type\": \"insecureAcceptAnything\"}]}\n");
	const char *failed = NULL;
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++)
		if (sh_rc("%s", steps[i]) != 0) {
			failed = steps[i];
			break;
		}
	/* The cleanup: containers (unmounting them), images, then any mount
	 * left below lt_dir (the overlay mounts, the bind mount buildah
	 * makes of its overlay folder), deepest first; then buildah's
	 * storage, when nothing is mounted there any more (Check skips
	 * lt_teardown when a test fails, so lt_dir would keep it). */
	sh_rc(BUILDAH " umount --all");
	sh_rc(BUILDAH " rm --all");
	sh_rc(BUILDAH " rmi --all --force");
	sh_rc("awk -v d=\"$PWD/\" 'index($5, d) == 1 { print $5 }' "
	      "/proc/self/mountinfo | sort -r | "
	      "while read -r m; do umount -l \"$m\"; done");
	sh_rc("grep -qF \" $PWD/\" /proc/self/mountinfo || rm -rf bs");
	return failed;
}

static bool tools_missing(void)
{
	return !lt_is_root() ||
	       lt_run("command -v umoci && command -v skopeo && "
		      "command -v buildah && command -v setfattr && "
		      "test -x /bin/busybox") != 0;
}

START_TEST(test_umoci_image_imports_to_the_same_tree)
{
	build_umoci_image();
	lam_layer *top = NULL;
	LT_OK(lam_oci_import(&top, lt_store, lt_path("img"), "v3", NULL));
	ck_assert_uint_eq(lam_layer_depth(top), 3);
	LT_OK(lam_layer_checkout(top, lt_path("co"), NULL));
	assert_trees_equal(lt_path("ref/rootfs"), lt_path("co"));
	/* The intermediate image too. */
	lam_layer *v2 = NULL;
	LT_OK(lam_oci_import(&v2, lt_store, lt_path("img"), "v2", NULL));
	sh("umoci unpack --image img:v2 ref2");
	LT_OK(lam_layer_checkout(v2, lt_path("co2"), NULL));
	assert_trees_equal(lt_path("ref2/rootfs"), lt_path("co2"));
	size_t problems = 9;
	LT_OK(lam_store_check(lt_store, 0, NULL, NULL, &problems));
	ck_assert_uint_eq(problems, 0);
	lam_layer_free(v2);
	lam_layer_free(top);
}
END_TEST

START_TEST(test_lamina_image_unpacks_and_survives_skopeo)
{
	build_umoci_image();
	lam_layer *img = NULL;
	LT_OK(lam_oci_import(&img, lt_store, lt_path("img"), "v3", NULL));
	/* A lamina layer on top, with a key/value delta. */
	lam_view *v = NULL;
	LT_OK(lam_view_create(&v, lt_store, img, NULL));
	LT_OK(lam_kv_set_value(v, "HKLM\\Software\\Lamina", "Version",
			       LAM_KV_SZ, "1", 2));
	LT_OK(lam_view_mkdir(v, "srv", 0750));
	LT_OK(lam_view_unlink(v, "etc/new"));
	lam_layer *top = NULL;
	LT_OK(lam_view_commit(v, &top, NULL));
	lam_view_free(v);
	for (unsigned int c = 0; c < 3; c++) {
		lam_oci_options o = LAM_OCI_OPTIONS_INIT;
		o.compression = c;
		const char *out = lt_path("out%u", c);
		LT_OK(lam_oci_export(lt_store, lam_layer_id(top), out, "x",
				     &o));
		/* umoci 0.4.7 cannot read zstd layers. */
		if (c != LAM_COMPRESS_ZSTD) {
			sh("umoci unpack --image out%u:x u%u", c, c);
			LT_OK(lam_layer_checkout(top, lt_path("co%u", c),
						 NULL));
			assert_trees_equal(lt_path("u%u/rootfs", c),
					   lt_path("co%u", c));
		}
		sh("skopeo copy -q oci:out%u:x oci:copy%u:y", c, c);
		lam_store *s2 = NULL;
		lam_store_options so = LAM_STORE_OPTIONS_INIT;
		so.flags = LAM_STORE_CREATE;
		LT_OK(lam_store_open(&s2, lt_path("s2-%u", c), &so));
		lam_layer *again = NULL;
		LT_OK(lam_oci_import(&again, s2, lt_path("copy%u", c), "y",
				     NULL));
		ck_assert_str_eq(lam_layer_id(again), lam_layer_id(top));
		lam_layer_free(again);
		lam_store_free(s2);
	}
	lam_layer_free(top);
	lam_layer_free(img);
}
END_TEST

START_TEST(test_buildah_image_imports_to_the_same_tree)
{
	const char *failed = build_buildah_image();
	char *log = lt_read(lt_path("log"), NULL);
	ck_assert_msg(failed == NULL, "buildah step failed: %s\n%s", failed,
		      log ? log : "");
	free(log);
	/* Nothing of buildah's is still mounted. */
	sh("! grep -F \" $PWD/\" /proc/self/mountinfo");
	/* The image holds what the test claims: v2's layer deletes the
	 * hard-link member bin/cat with a whiteout, v3's marks data opaque. */
	sh("set -- $(skopeo inspect --format "
	   "'{{range .Layers}}{{.}} {{end}}' oci:bimg:v3) && test $# = 3 && "
	   "tar -tf bimg/blobs/$(echo $2 | tr : /) | grep -qxF bin/.wh.cat && "
	   "tar -tf bimg/blobs/$(echo $3 | tr : /) | "
	   "grep -qxF data/.wh..wh..opq");
	lam_layer *top = NULL;
	LT_OK(lam_oci_import(&top, lt_store, lt_path("bimg"), "v3", NULL));
	ck_assert_uint_eq(lam_layer_depth(top), 3);
	LT_OK(lam_layer_checkout(top, lt_path("bco"), NULL));
	sh("umoci unpack --image bimg:v3 bref");
	assert_trees_equal(lt_path("bref/rootfs"), lt_path("bco"));
	lam_layer *v2 = NULL;
	LT_OK(lam_oci_import(&v2, lt_store, lt_path("bimg"), "v2", NULL));
	ck_assert_uint_eq(lam_layer_depth(v2), 2);
	ck_assert_str_eq(lam_layer_parent_id(top), lam_layer_id(v2));
	LT_OK(lam_layer_checkout(v2, lt_path("bco2"), NULL));
	sh("umoci unpack --image bimg:v2 bref2");
	/* buildah kept the user xattr, so the comparison covers it. */
	sh("test \"$(getfattr --only-values -n user.note "
	   "bref2/rootfs/data/one)\" = hello");
	assert_trees_equal(lt_path("bref2/rootfs"), lt_path("bco2"));
	size_t problems = 9;
	LT_OK(lam_store_check(lt_store, 0, NULL, NULL, &problems));
	ck_assert_uint_eq(problems, 0);
	lam_layer_free(v2);
	lam_layer_free(top);
}
END_TEST

int main(void)
{
	if (lt_archive_missing() || tools_missing())
		return 77;
	Suite *s = suite_create("oci-tools");
	TCase *tc = tcase_create("oci-tools");
	tcase_add_checked_fixture(tc, lt_setup, lt_teardown);
	tcase_set_timeout(tc, 240);
	tcase_add_test(tc, test_umoci_image_imports_to_the_same_tree);
	tcase_add_test(tc, test_lamina_image_unpacks_and_survives_skopeo);
	tcase_add_test(tc, test_buildah_image_imports_to_the_same_tree);
	suite_add_tcase(s, tc);
	return lt_main(s);
}
