/* SPDX-License-Identifier: MIT */
/*
 * OCI layer exchange against the tools a user would otherwise pick, on one
 * layer of 10,000 files and about 200 MB (BENCH_OCI_MB scales it):
 *
 *   import (plain, gzip, zstd) vs `tar -x` of the same blob and `umoci
 *   unpack` of the same image; gzip import vs `gunzip` alone;
 *   export vs `tar -c` of the checked-out tree piped to sha256sum;
 *   import of an image whose base layer the store holds already.
 *
 * The last line printed is one JSON object with every figure.
 */
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lamina.h>

#include "bench-common.h"

#define FILES 10000
#define REPS  3

static char *dir;

static void check(int rc, const char *what)
{
	if (rc != 0)
		bench_die("%s: %s", what, lam_error_last()->message);
}

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int sh(const char *fmt, ...)
{
	char cmd[8192];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	return system(cmd);
}

static double timed_sh(const char *cmd)
{
	double best = 1e9;
	for (int r = 0; r < REPS; r++) {
		sh("rm -rf '%s/x' && mkdir '%s/x' && sync", dir, dir);
		double t0 = bench_now();
		if (sh("cd '%s' && %s", dir, cmd) != 0)
			return -1;
		sh("sync -f '%s/x' 2>/dev/null || sync", dir);
		double t = bench_now() - t0;
		if (t < best)
			best = t;
	}
	return best;
}

static lam_store *fresh_store(const char *name)
{
	sh("rm -rf '%s/%s'", dir, name);
	char p[4096];
	snprintf(p, sizeof(p), "%s/%s", dir, name);
	lam_store *s = NULL;
	lam_store_options o = LAM_STORE_OPTIONS_INIT;
	o.flags = LAM_STORE_CREATE;
	check(lam_store_open(&s, p, &o), "store");
	return s;
}

static double time_import(const char *file, unsigned int flags)
{
	double best = 1e9;
	for (int r = 0; r < REPS; r++) {
		lam_store *s = fresh_store("imp");
		char p[4096];
		snprintf(p, sizeof(p), "%s/%s", dir, file);
		int fd = open(p, O_RDONLY | O_CLOEXEC);
		lam_layer *l = NULL;
		lam_tar_import_options o = LAM_TAR_IMPORT_OPTIONS_INIT;
		o.flags = flags;
		double t0 = bench_now();
		check(lam_layer_import_tar(&l, s, fd, NULL, &o), "import");
		double t = bench_now() - t0;
		close(fd);
		lam_layer_free(l);
		lam_store_free(s);
		if (t < best)
			best = t;
	}
	return best;
}

static void make_tree(const char *root, size_t total)
{
	bench_rng rng = {42};
	size_t avg = total / FILES;
	char *buf = malloc(avg * 4);
	for (int i = 0; i < FILES; i++) {
		char p[4096];
		snprintf(p, sizeof(p), "%s/d%02d/s%d", root, i % 100,
			 (i / 100) % 10);
		sh("mkdir -p '%s'", p);
		size_t n = (size_t)(bench_rng_unit(&rng) * (double)avg * 2);
		/* Half random, half text: compressible like real files. */
		bench_rng_fill(&rng, buf, n / 2);
		for (size_t k = n / 2; k < n; k++)
			buf[k] = "lamina layer benchmark text\n"[k % 28];
		snprintf(p + strlen(p), sizeof(p) - strlen(p), "/f%05d", i);
		bench_write_file(p, buf, n);
	}
	free(buf);
}

int main(void)
{
	size_t mb = getenv("BENCH_OCI_MB") ?
			    (size_t)atoi(getenv("BENCH_OCI_MB")) :
			    200;
	dir = bench_scratch_dir("bench-oci");
	if (dir == NULL)
		return 1;
	char tree[2048];
	snprintf(tree, sizeof(tree), "%s/tree", dir);
	/* mkdir -p per file is slow; make the folders once. */
	sh("mkdir -p '%s'", tree);
	make_tree(tree, mb << 20);
	lam_store *s = fresh_store("src");
	lam_layer *base = NULL;
	check(lam_layer_import_dir(&base, s, tree, NULL, NULL), "import dir");
	static const char *const ext[] = {"tar", "tar.gz", "tar.zst"};
	double exp_t[3];
	for (int c = 0; c < 3; c++) {
		char p[4096];
		snprintf(p, sizeof(p), "%s/layer.%s", dir, ext[c]);
		exp_t[c] = 1e9;
		for (int r = 0; r < REPS; r++) {
			int fd = open(p,
				      O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
				      0644);
			lam_tar_options o = LAM_TAR_OPTIONS_INIT;
			o.compression = (unsigned int)c;
			double t0 = bench_now();
			check(lam_layer_export_tar(base, fd, &o, NULL, NULL),
			      "export");
			double t = bench_now() - t0;
			close(fd);
			if (t < exp_t[c])
				exp_t[c] = t;
		}
	}
	char co[4096];
	snprintf(co, sizeof(co), "%s/co", dir);
	check(lam_layer_checkout(base, co, NULL), "checkout");
	double tar_c = timed_sh("tar -cf - -C co . | sha256sum > /dev/null");
	double imp[3], tarx[3];
	static const char *const tarflags[] = {"", "-z", "--zstd"};
	for (int c = 0; c < 3; c++) {
		char f[64], cmd[256];
		snprintf(f, sizeof(f), "layer.%s", ext[c]);
		imp[c] = time_import(f, 0);
		snprintf(cmd, sizeof(cmd), "tar %s -xf layer.%s -C x",
			 tarflags[c], ext[c]);
		tarx[c] = timed_sh(cmd);
	}
	double gunzip = timed_sh("gunzip -c layer.tar.gz > /dev/null");
	/* The same imports without the writer threads. */
	double one[2] = {time_import("layer.tar", LAM_TAR_ONE_THREAD),
			 time_import("layer.tar.gz", LAM_TAR_ONE_THREAD)};
	/* umoci unpack of the same layer as an image. */
	lam_oci_options oo = LAM_OCI_OPTIONS_INIT;
	char lay[4096];
	snprintf(lay, sizeof(lay), "%s/layout", dir);
	check(lam_oci_export(s, lam_layer_id(base), lay, "b", &oo), "oci");
	double umoci = -1;
	if (sh("command -v umoci > /dev/null") == 0)
		umoci = timed_sh("rm -rf x && umoci unpack --image layout:b x "
				 "> /dev/null");
	/* An image whose base the store holds: only the top is read. */
	lam_view *v = NULL;
	check(lam_view_create(&v, s, base, NULL), "view");
	check(lam_view_mkdir(v, "new", 0755), "mkdir");
	lam_layer *top = NULL;
	check(lam_view_commit(v, &top, NULL), "commit");
	lam_view_free(v);
	check(lam_oci_export(s, lam_layer_id(top), lay, "t", &oo), "oci");
	lam_store *d = fresh_store("dst");
	lam_layer *got = NULL;
	double t0 = bench_now();
	check(lam_oci_import(&got, d, lay, "b", NULL), "oci import");
	double full = bench_now() - t0;
	lam_layer_free(got);
	lam_store_stats st1, st2;
	check(lam_store_stats_get(d, &st1), "stats");
	t0 = bench_now();
	check(lam_oci_import(&got, d, lay, "t", NULL), "oci import");
	double incr = bench_now() - t0;
	check(lam_store_stats_get(d, &st2), "stats");
	lam_layer_free(got);
	printf("layer: %d files, %zu MB\n", FILES, mb);
	for (int c = 0; c < 3; c++)
		printf("import %-7s %7.3f s   tar -x %7.3f s   (%.2fx)\n",
		       ext[c], imp[c], tarx[c], tarx[c] / imp[c]);
	printf("gunzip alone   %7.3f s   gzip import / gunzip %.2fx\n", gunzip,
	       imp[1] / gunzip);
	printf("one thread: import tar %7.3f s, gzip %7.3f s (writer threads "
	       "%.2fx, %.2fx)\n",
	       one[0], one[1], one[0] / imp[0], one[1] / imp[1]);
	printf("umoci unpack   %7.3f s   (%.2fx lamina gzip import)\n", umoci,
	       umoci / imp[1]);
	printf("export tar %7.3f s gz %7.3f s zst %7.3f s; tar -c | "
	       "sha256sum %7.3f s (%.2fx)\n",
	       exp_t[0], exp_t[1], exp_t[2], tar_c, exp_t[0] / tar_c);
	printf("image with base present: %.3f s (full image %.3f s), "
	       "%llu new bytes stored\n",
	       incr, full,
	       (unsigned long long)(st2.stored_bytes - st1.stored_bytes));
	printf("{\"files\":%d,\"mb\":%zu,\"import_tar_s\":%.4f,"
	       "\"import_gzip_s\":%.4f,\"import_zstd_s\":%.4f,"
	       "\"tar_x_s\":%.4f,\"tar_xz_gzip_s\":%.4f,\"tar_x_zstd_s\":%.4f,"
	       "\"gunzip_s\":%.4f,\"umoci_unpack_s\":%.4f,"
	       "\"import_tar_one_thread_s\":%.4f,"
	       "\"import_gzip_one_thread_s\":%.4f,"
	       "\"export_tar_s\":%.4f,\"export_gzip_s\":%.4f,"
	       "\"export_zstd_s\":%.4f,\"tar_c_sha256_s\":%.4f,"
	       "\"import_base_present_s\":%.4f,\"import_full_s\":%.4f,"
	       "\"base_present_new_bytes\":%llu}\n",
	       FILES, mb, imp[0], imp[1], imp[2], tarx[0], tarx[1], tarx[2],
	       gunzip, umoci, one[0], one[1], exp_t[0], exp_t[1], exp_t[2],
	       tar_c, incr, full,
	       (unsigned long long)(st2.stored_bytes - st1.stored_bytes));
	lam_layer_free(top);
	lam_layer_free(base);
	lam_store_free(d);
	lam_store_free(s);
	bench_rm_rf(dir);
	free(dir);
	return 0;
}
