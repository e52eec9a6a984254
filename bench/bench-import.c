/* SPDX-License-Identifier: MIT */
/*
 * bench-import: how long lam_layer_import_dir() takes on a tree of 10,000
 * files (about 200 MB) next to `cp -a` of the same tree on the same
 * filesystem, and how much a second import of that tree on another parent
 * stores (it should store no new content at all).
 *
 * The source tree is written, synced and read once before any timing, so
 * both contenders read it from the page cache and neither pays for flushing
 * the other's writes. lamina publishes with syncfs(), so its figure includes
 * getting the data onto the disk; `cp -a` does not sync, so a "cp -a; sync"
 * figure is printed as well for reference.
 *
 * Usage: bench-import [FILES [MEGABYTES [RUNS]]]
 *        bench-import --tree-only DIR [FILES [MEGABYTES]]
 * The second form only writes the tree into DIR (which must not exist), for
 * profiling an import by hand.
 * Scratch data goes under $BENCH_DIR (default /var/tmp) and is removed,
 * unless $BENCH_KEEP is set (to profile by hand).
 * The last line of output is one JSON object with the figures.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lamina.h>

#include "bench-common.h"

#define DEFAULT_FILES 10000
#define DEFAULT_MB    200
#define DEFAULT_RUNS  3
#define MAX_RUNS      9
#define TARGET_RATIO  1.5

/* The generated tree: folders first (parents before children), then files
 * spread over them. */
typedef struct tree {
	size_t ndirs;
	char **dirs; /* relative paths; dirs[0] is "" (the root) */
	size_t nfiles;
	uint64_t *sizes;
	size_t *file_dir;
	uint64_t bytes;
	uint64_t max_size;
} tree;

static char *scratch;

static void cleanup(void)
{
	if (scratch != NULL) {
		if (getenv("BENCH_KEEP") != NULL)
			fprintf(stderr, "kept %s\n", scratch);
		else
			bench_rm_rf(scratch);
		free(scratch);
		scratch = NULL;
	}
}

static void lam_die(const char *what, int code)
{
	const lam_error *e = lam_error_last();
	bench_die("%s: %s (%d): %s", what, lam_strerror(code), code,
		  e->message);
}

static char *join(const char *a, const char *b)
{
	char *p;

	if (b[0] == '\0')
		b = ".";
	if (asprintf(&p, "%s/%s", a, b) < 0)
		bench_die("out of memory");
	return p;
}

/* A log-uniform size in [lo, hi): many small, few large, as in real trees. */
static uint64_t log_uniform(bench_rng *r, double lo, double hi)
{
	return (uint64_t)exp(log(lo) + bench_rng_unit(r) * (log(hi) - log(lo)));
}

/*
 * Plan a tree of @nfiles files totalling @bytes: about 94 % small files
 * (32 B to 16 KiB), 5.5 % medium ones (16 KiB to 512 KiB) and 0.5 % large
 * ones (1 to 4 MiB), whose sizes are then scaled so the total comes out
 * exactly; one folder per 33 files, nested at random.
 */
static void plan_tree(tree *t, size_t nfiles, uint64_t bytes)
{
	bench_rng r = {0x6c616d696e61ull};
	uint64_t small = 0, large = 0;

	t->nfiles = nfiles;
	t->ndirs = nfiles / 33 + 1;
	t->dirs = calloc(t->ndirs, sizeof(*t->dirs));
	t->sizes = calloc(nfiles, sizeof(*t->sizes));
	t->file_dir = calloc(nfiles, sizeof(*t->file_dir));
	if (!t->dirs || !t->sizes || !t->file_dir)
		bench_die("out of memory");

	t->dirs[0] = strdup("");
	for (size_t i = 1; i < t->ndirs; i++) {
		/* The first dozen hang off the root; the rest under any
		 * earlier folder, which gives depths of up to ten or so. */
		size_t parent = i <= 12 ? 0 : bench_rng_next(&r) % i;
		const char *pp = t->dirs[parent];
		if (asprintf(&t->dirs[i], "%s%sd%03zu", pp, pp[0] ? "/" : "",
			     i) < 0)
			bench_die("out of memory");
	}

	size_t nlarge = nfiles / 200 ? nfiles / 200 : 1;
	size_t nmedium = nfiles * 55 / 1000;
	for (size_t i = 0; i < nfiles; i++) {
		t->file_dir[i] = bench_rng_next(&r) % t->ndirs;
		if (i % 200 == 199 && nlarge > 0) {
			t->sizes[i] = log_uniform(&r, 1 << 20, 4 << 20);
			large += t->sizes[i];
		} else if (i % 18 == 5 && nmedium > 0) {
			t->sizes[i] = log_uniform(&r, 16 << 10, 512 << 10);
			small += t->sizes[i];
			nmedium--;
		} else {
			t->sizes[i] = log_uniform(&r, 32, 16 << 10);
			small += t->sizes[i];
		}
	}
	if (small >= bytes)
		bench_die("too many files for %" PRIu64 " bytes", bytes);

	/* Scale the large files to make up the total exactly. */
	double f = large ? (double)(bytes - small) / (double)large : 0.0;
	uint64_t total = 0, last_large = 0;
	for (size_t i = 0; i < nfiles; i++) {
		if (i % 200 == 199) {
			t->sizes[i] = (uint64_t)((double)t->sizes[i] * f);
			last_large = i;
		}
		total += t->sizes[i];
	}
	if (large && total < bytes)
		t->sizes[last_large] += bytes - total;
	t->bytes = 0;
	t->max_size = 0;
	for (size_t i = 0; i < nfiles; i++) {
		t->bytes += t->sizes[i];
		if (t->sizes[i] > t->max_size)
			t->max_size = t->sizes[i];
	}
}

/* Write the tree under @root; each file's bytes come from its own seed, so
 * no two files share content. */
static void write_tree(const tree *t, const char *root)
{
	char *buf = malloc(t->max_size ? t->max_size : 1);
	char path[4096];

	if (buf == NULL)
		bench_die("out of memory");
	if (mkdir(root, 0755) < 0)
		bench_die("mkdir %s: %s", root, strerror(errno));
	for (size_t i = 1; i < t->ndirs; i++) {
		snprintf(path, sizeof(path), "%s/%s", root, t->dirs[i]);
		if (mkdir(path, 0755) < 0)
			bench_die("mkdir %s: %s", path, strerror(errno));
	}
	for (size_t i = 0; i < t->nfiles; i++) {
		bench_rng r = {0x9e3779b97f4a7c15ull * (i + 1)};
		const char *d = t->dirs[t->file_dir[i]];
		snprintf(path, sizeof(path), "%s/%s%sf%05zu.dat", root, d,
			 d[0] ? "/" : "", i);
		bench_rng_fill(&r, buf, t->sizes[i]);
		if (bench_write_file(path, buf, t->sizes[i]) < 0)
			exit(1);
	}
	free(buf);
}

/* Read every file once so that both contenders find the tree in the page
 * cache (and its inodes in the inode cache). Returns the bytes read. */
static uint64_t warm_tree(const tree *t, const char *root)
{
	static char buf[1 << 16];
	char path[4096];
	uint64_t total = 0;

	for (size_t i = 0; i < t->nfiles; i++) {
		const char *d = t->dirs[t->file_dir[i]];
		snprintf(path, sizeof(path), "%s/%s%sf%05zu.dat", root, d,
			 d[0] ? "/" : "", i);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			bench_die("open %s: %s", path, strerror(errno));
		ssize_t n;
		while ((n = read(fd, buf, sizeof(buf))) > 0)
			total += (uint64_t)n;
		close(fd);
	}
	return total;
}

static void stats_get(lam_store *s, lam_store_stats *st)
{
	int r = lam_store_stats_get(s, st);
	if (r < 0)
		lam_die("lam_store_stats_get", r);
}

static void print_runs(FILE *f, const char *name, const double *v, int n)
{
	fprintf(f, ",\"%s\":[", name);
	for (int i = 0; i < n; i++)
		fprintf(f, "%s%.4f", i ? "," : "", v[i]);
	fputc(']', f);
}

/* Write the tree to @dir and stop: the tree to profile an import on. */
static int tree_only(int argc, char **argv)
{
	size_t nfiles = argc > 3 ? strtoul(argv[3], NULL, 10) : DEFAULT_FILES;
	uint64_t mb = argc > 4 ? strtoull(argv[4], NULL, 10) : DEFAULT_MB;
	tree t = {0};

	if (nfiles < 1 || mb < 1)
		bench_die("usage: %s --tree-only DIR [FILES [MEGABYTES]]",
			  argv[0]);
	plan_tree(&t, nfiles, mb * 1000 * 1000);
	write_tree(&t, argv[2]);
	printf("%s: %zu files, %zu folders, %" PRIu64 " bytes\n", argv[2],
	       t.nfiles, t.ndirs, t.bytes);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc >= 3 && strcmp(argv[1], "--tree-only") == 0)
		return tree_only(argc, argv);

	size_t nfiles = argc > 1 ? strtoul(argv[1], NULL, 10) : DEFAULT_FILES;
	uint64_t mb = argc > 2 ? strtoull(argv[2], NULL, 10) : DEFAULT_MB;
	int runs = argc > 3 ? atoi(argv[3]) : DEFAULT_RUNS;
	double cp_s[MAX_RUNS], cps_s[MAX_RUNS], lam_s[MAX_RUNS];
	double cp_runs[MAX_RUNS], cps_runs[MAX_RUNS], lam_runs[MAX_RUNS];
	double cp_cpu[MAX_RUNS], lam_cpu[MAX_RUNS];
	lam_store *store = NULL;
	lam_layer *layer = NULL;
	char *src, *store_path = NULL;
	tree t = {0};
	int r;

	if (nfiles < 1 || mb < 1 || runs < 1 || runs > MAX_RUNS)
		bench_die("usage: %s [FILES [MEGABYTES [RUNS<=%d]]]", argv[0],
			  MAX_RUNS);
	setvbuf(stdout, NULL, _IOLBF, 0);

	scratch = bench_scratch_dir("lamina-bench");
	if (scratch == NULL)
		return 1;
	atexit(cleanup);
	printf("bench-import: lamina %s, scratch %s, load %.2f\n",
	       lam_version(), scratch, bench_loadavg());

	/* The tree, on disk and in the page cache. */
	plan_tree(&t, nfiles, mb * 1000 * 1000);
	src = join(scratch, "src");
	double t0 = bench_now();
	write_tree(&t, src);
	bench_syncfs(scratch);
	double gen_s = bench_now() - t0;
	uint64_t warmed = warm_tree(&t, src);
	if (warmed != t.bytes)
		bench_die("read back %" PRIu64 " bytes, wrote %" PRIu64, warmed,
			  t.bytes);
	printf("tree: %zu files, %zu folders, %" PRIu64
	       " bytes (%.1f MB), largest %" PRIu64 " bytes; "
	       "written and synced in %.2f s, then read once\n",
	       t.nfiles, t.ndirs, t.bytes, (double)t.bytes / 1e6, t.max_size,
	       gen_s);

	/* (a) and (b), alternated so that drift hits both alike. Each run
	 * starts with nothing dirty. Outputs are kept until the end: on ext4
	 * without a journal, creating an inode scans past every inode freed
	 * in the last minute or more (recently_deleted()), so removing one
	 * run's 10,000 files would slow the next run's creations severely. */
	for (int i = 0; i < runs; i++) {
		char name[32];

		snprintf(name, sizeof(name), "cp-%d", i);
		char *dst = join(scratch, name);
		char *cp_argv[] = {"/bin/cp", "-a", "--", src, dst, NULL};
		bench_syncfs(scratch);
		t0 = bench_now();
		if (bench_run_usage(cp_argv, 0, &cp_cpu[i]) != 0)
			bench_die("cp -a failed");
		cp_s[i] = bench_now() - t0;
		bench_syncfs(scratch);
		cps_s[i] = bench_now() - t0;
		free(dst);

		snprintf(name, sizeof(name), "store-%d", i);
		free(store_path);
		store_path = join(scratch, name);
		lam_store_options so = LAM_STORE_OPTIONS_INIT;
		so.flags = LAM_STORE_CREATE;
		bench_syncfs(scratch);
		double c0 = bench_self_cpu();
		t0 = bench_now();
		r = lam_store_open(&store, store_path, &so);
		if (r < 0)
			lam_die("lam_store_open", r);
		r = lam_layer_import_dir(&layer, store, src, NULL, NULL);
		if (r < 0)
			lam_die("lam_layer_import_dir", r);
		lam_s[i] = bench_now() - t0;
		lam_cpu[i] = bench_self_cpu() - c0;
		printf("run %d: cp -a %.3f s (with sync %.3f s, cpu %.3f s), "
		       "lamina import %.3f s (cpu %.3f s); load %.2f\n",
		       i + 1, cp_s[i], cps_s[i], cp_cpu[i], lam_s[i],
		       lam_cpu[i], bench_loadavg());
		if (i + 1 < runs) {
			lam_layer_free(layer);
			lam_store_free(store);
			layer = NULL;
			store = NULL;
		}
	}
	memcpy(cp_runs, cp_s, sizeof(cp_s));
	memcpy(cps_runs, cps_s, sizeof(cps_s));
	memcpy(lam_runs, lam_s, sizeof(lam_s));
	double cp_med = bench_median(cp_s, (size_t)runs);
	double cps_med = bench_median(cps_s, (size_t)runs);
	double lam_med = bench_median(lam_s, (size_t)runs);
	double ratio = lam_med / cp_med;
	double cp_cpu_med = bench_median(cp_cpu, (size_t)runs);
	double lam_cpu_med = bench_median(lam_cpu, (size_t)runs);

	uint64_t layer_size = lam_layer_size(layer);
	uint64_t layer_entries = lam_layer_entry_count(layer);
	char first_id[LAM_DIGEST_HEX_LEN + 1];
	snprintf(first_id, sizeof(first_id), "%s", lam_layer_id(layer));
	printf("layer %s: %" PRIu64 " entries, %" PRIu64 " bytes%s\n", first_id,
	       layer_entries, layer_size,
	       layer_size == t.bytes ? "" : " (MISMATCH with the tree)");

	/* (c) The same tree on top of a small, different base layer: a new
	 * layer, but every file's content is already in the store. */
	char *base_src = join(scratch, "base-src");
	char path[4096];
	if (mkdir(base_src, 0755) < 0)
		bench_die("mkdir %s: %s", base_src, strerror(errno));
	for (int i = 0; i < 3; i++) {
		char body[64];
		int n = snprintf(body, sizeof(body), "base layer file %d\n", i);
		snprintf(path, sizeof(path), "%s/base-%d.txt", base_src, i);
		if (bench_write_file(path, body, (size_t)n) < 0)
			return 1;
	}
	lam_layer *base = NULL, *again = NULL, *same = NULL;
	r = lam_layer_import_dir(&base, store, base_src, NULL, NULL);
	if (r < 0)
		lam_die("importing the base layer", r);

	lam_store_stats before, after, after_same;
	stats_get(store, &before);
	bench_syncfs(scratch);
	t0 = bench_now();
	r = lam_layer_import_dir(&again, store, src, base, NULL);
	if (r < 0)
		lam_die("re-importing on the base layer", r);
	double reimport_s = bench_now() - t0;
	stats_get(store, &after);
	int64_t new_bytes = (int64_t)(after.stored_bytes - before.stored_bytes);
	int64_t new_objects = (int64_t)(after.objects - before.objects);
	printf("re-import on another parent: %.3f s, layer %s (depth %u), "
	       "new content %" PRId64 " bytes in %" PRId64 " objects "
	       "(stored %" PRIu64 " -> %" PRIu64 " bytes)\n",
	       reimport_s, lam_layer_id(again), lam_layer_depth(again),
	       new_bytes, new_objects, before.stored_bytes, after.stored_bytes);

	/* (d) The same tree on the same (no) parent: the layer exists, so
	 * this should find it and store nothing. */
	t0 = bench_now();
	r = lam_layer_import_dir(&same, store, src, NULL, NULL);
	if (r < 0)
		lam_die("re-importing as the same layer", r);
	double same_s = bench_now() - t0;
	stats_get(store, &after_same);
	bool same_id = strcmp(lam_layer_id(same), first_id) == 0;
	int64_t same_new_bytes =
		(int64_t)(after_same.stored_bytes - after.stored_bytes);
	printf("re-import as the same layer: %.3f s, %s id, "
	       "new content %" PRId64 " bytes, layers %" PRIu64 " -> %" PRIu64
	       "\n",
	       same_s, same_id ? "same" : "DIFFERENT", same_new_bytes,
	       after.layers, after_same.layers);

	printf("\nmedian of %d: cp -a %.3f s, cp -a + sync %.3f s, "
	       "lamina import %.3f s\n",
	       runs, cp_med, cps_med, lam_med);
	printf("ratio lamina/cp -a = %.2f (target <= %.1f: %s); "
	       "lamina/(cp -a + sync) = %.2f\n",
	       ratio, TARGET_RATIO, ratio <= TARGET_RATIO ? "met" : "MISSED",
	       lam_med / cps_med);
	printf("cpu time (user+sys), median: cp -a %.3f s, lamina %.3f s, "
	       "ratio %.2f\n",
	       cp_cpu_med, lam_cpu_med, lam_cpu_med / cp_cpu_med);
	printf("throughput: cp -a %.0f MB/s, lamina %.0f MB/s, "
	       "%.0f files/s\n",
	       (double)t.bytes / 1e6 / cp_med, (double)t.bytes / 1e6 / lam_med,
	       (double)t.nfiles / lam_med);

	printf("{\"bench\":\"import\",\"files\":%zu,\"dirs\":%zu,"
	       "\"bytes\":%" PRIu64 ",\"runs\":%d,\"cp_a_s\":%.4f,"
	       "\"cp_a_sync_s\":%.4f,\"lamina_s\":%.4f,\"ratio\":%.3f,"
	       "\"ratio_vs_cp_sync\":%.3f,\"target_ratio\":%.1f,"
	       "\"ratio_met\":%s,\"layer_bytes\":%" PRIu64
	       ",\"layer_entries\":%" PRIu64 ",\"reimport_s\":%.4f,"
	       "\"reimport_new_bytes\":%" PRId64
	       ",\"reimport_new_objects\":%" PRId64
	       ",\"reimport_same_s\":%.4f,\"reimport_same_id\":%s,"
	       "\"reimport_same_new_bytes\":%" PRId64
	       ",\"cp_a_cpu_s\":%.4f,\"lamina_cpu_s\":%.4f,"
	       "\"cpu_ratio\":%.3f,\"loadavg\":%.2f",
	       t.nfiles, t.ndirs, t.bytes, runs, cp_med, cps_med, lam_med,
	       ratio, lam_med / cps_med, TARGET_RATIO,
	       ratio <= TARGET_RATIO ? "true" : "false", layer_size,
	       layer_entries, reimport_s, new_bytes, new_objects, same_s,
	       same_id ? "true" : "false", same_new_bytes, cp_cpu_med,
	       lam_cpu_med, lam_cpu_med / cp_cpu_med, bench_loadavg());
	print_runs(stdout, "cp_a_runs_s", cp_runs, runs);
	print_runs(stdout, "cp_a_sync_runs_s", cps_runs, runs);
	print_runs(stdout, "lamina_runs_s", lam_runs, runs);
	printf("}\n");

	lam_layer_free(same);
	lam_layer_free(again);
	lam_layer_free(base);
	lam_layer_free(layer);
	lam_store_free(store);
	free(base_src);
	free(store_path);
	free(src);
	for (size_t i = 0; i < t.ndirs; i++)
		free(t.dirs[i]);
	free(t.dirs);
	free(t.sizes);
	free(t.file_dir);
	return 0;
}
