/* SPDX-License-Identifier: MIT */
/*
 * bench-view: views over layer stacks, against the kernel's overlayfs
 * mounted on the very same stack, in the same run, on the same disk.
 *
 *   lookup   stat of 10,000 paths through stacks of 1, 8, 64, 128 and 500
 *            layers. Targets: lamina's 500-layer cost within 1.3x of its
 *            1-layer cost; at 128 layers lamina >= 3x faster than warm
 *            lstat() through overlayfs, and >= 5x faster than the first
 *            lookups after mounting.
 *   write    4 KiB written into a 1 GiB lower file (open, write, close).
 *            Target: lamina under 1 ms (overlayfs copies the whole file).
 *   commit   commit of a view with one changed file over a 100,000-file
 *            image against the same over a 1,000-file image. Target: the
 *            ratio <= 1.5.
 *   readdir  merged listing of 1,000 folders over 128 layers (each folder
 *            in every layer, its 10 entries spread over 10 of them)
 *            against listing the same flat tree on the host filesystem
 *            (ext4). Target: within 1.5x. overlayfs is timed too.
 *
 * Each stack is built from host folders, one per layer, imported with
 * lam_layer_import_dir(); the kernel mounts those same folders as its
 * lower layers (with an empty upper, as a writable view has), by short
 * relative names so that 500 of them fit in the mount options. The
 * 10,000 files of the lookup stacks are spread over the layers in
 * contiguous blocks, so that folders are shared by neighbouring layers and
 * most lookups go deep. The kernel parts need root and overlayfs; without
 * them they are skipped and their figures are null.
 *
 * Usage: bench-view [--quick] [lookup] [write] [commit] [readdir]
 * --quick shrinks every size, to check that the benchmark runs.
 * Scratch data goes under $BENCH_DIR (default /var/tmp) and is removed,
 * unless $BENCH_KEEP is set. The last line of output is one JSON object.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lamina.h>

#include "bench-common.h"

#define RUNS	    11 /* measured rounds, after one warm-up */
#define KERNEL_RUNS 3  /* fresh mounts, for first lookups and copy-ups */

static char *scratch;
static char *mounted; /* the overlayfs mount point while one is mounted */
static bool quick;

static void cleanup(void)
{
	if (mounted != NULL) {
		umount2(mounted, MNT_DETACH);
		mounted = NULL;
	}
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

static char *xasprintf(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));

static char *xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		bench_die("out of memory");
	va_end(ap);
	return s;
}

static void xmkdir(const char *path)
{
	if (mkdir(path, 0755) < 0 && errno != EEXIST)
		bench_die("mkdir %s: %s", path, strerror(errno));
}

/* A JSON number, or null for a figure that was not measured (< 0). */
static const char *jnum(char buf[32], double v, int decimals)
{
	if (v < 0)
		return "null";
	snprintf(buf, 32, "%.*f", decimals, v);
	return buf;
}

/* ---- The kernel's overlayfs. ---- */

/* Why the kernel parts are skipped, or NULL when they can run. */
static const char *kernel_skip;

static void kernel_probe(void)
{
	FILE *f = fopen("/proc/filesystems", "re");
	char line[128];
	bool have = false;

	if (geteuid() != 0) {
		kernel_skip = "not root";
		return;
	}
	while (f != NULL && fgets(line, sizeof(line), f) != NULL)
		have |= strstr(line, "\toverlay\n") != NULL;
	if (f != NULL)
		fclose(f);
	if (!have)
		kernel_skip = "no overlayfs in this kernel";
}

/*
 * Mount overlayfs on @mnt with the layers @lower (a ':'-separated list, top
 * first, of folders relative to @base) under an upper and work folder
 * (relative to @base too; NULL for a read-only mount). Returns 0, or -1
 * with kernel_skip set when mounting is not possible here.
 */
static int kernel_mount(const char *base, const char *lower, const char *upper,
			const char *work, const char *mnt)
{
	int cwd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	char *data;
	int r;

	if (upper != NULL)
		data = xasprintf("lowerdir=%s,upperdir=%s,workdir=%s", lower,
				 upper, work);
	else
		data = xasprintf("lowerdir=%s", lower);
	/* Relative names keep 500 layers within the one page of options. */
	if (cwd < 0 || chdir(base) < 0)
		bench_die("chdir %s: %s", base, strerror(errno));
	r = mount("overlay", mnt, "overlay", 0, data);
	if (r < 0) {
		static char why[256];
		snprintf(why, sizeof(why), "mounting overlayfs: %s",
			 strerror(errno));
		kernel_skip = why;
		fprintf(stderr, "%s (options: %zu bytes)\n", why, strlen(data));
	}
	if (fchdir(cwd) < 0)
		bench_die("fchdir: %s", strerror(errno));
	close(cwd);
	free(data);
	if (r == 0)
		mounted = (char *)mnt;
	return r;
}

static void kernel_umount(void)
{
	if (mounted != NULL && umount(mounted) < 0)
		bench_die("umount %s: %s", mounted, strerror(errno));
	mounted = NULL;
}

/* "N-1:...:1:0", the layer folders of a stack of @depth, top first. */
static char *lower_list(int depth)
{
	size_t cap = (size_t)depth * 5 + 1, len = 0;
	char *s = malloc(cap);

	if (s == NULL)
		bench_die("out of memory");
	for (int k = depth - 1; k >= 0; k--)
		len += (size_t)snprintf(s + len, cap - len, "%d%s", k,
					k ? ":" : "");
	return s;
}

/* ---- Stacks of layers. ---- */

typedef struct stack {
	int depth;
	char *dir; /* holds the layer folders "0", "1", ... and u/, w/ */
	lam_layer *top;
} stack;

/*
 * Import the layer folders dir/0 .. dir/depth-1 as a chain, each on the
 * one before. Returns the build time in seconds.
 */
static double import_chain(lam_store *store, stack *s)
{
	double t0 = bench_now();
	lam_layer *top = NULL;

	for (int k = 0; k < s->depth; k++) {
		char *src = xasprintf("%s/%d", s->dir, k);
		lam_layer *next;
		int r = lam_layer_import_dir(&next, store, src, top, NULL);

		if (r < 0)
			lam_die("lam_layer_import_dir", r);
		lam_layer_free(top);
		top = next;
		free(src);
	}
	s->top = top;
	return bench_now() - t0;
}

/* Write a small file whose content is unique to @tag and @i. */
static void small_file(const char *path, const char *tag, long i)
{
	char body[96];
	int len = snprintf(body, sizeof(body), "%s file %ld\n", tag, i);

	if (bench_write_file(path, body, (size_t)len) < 0)
		exit(1);
}

/* A permutation of 0..n-1, the same on every run. */
static size_t *shuffled(size_t n, uint64_t seed)
{
	size_t *v = malloc(n * sizeof(*v));
	bench_rng rng = {seed};

	if (v == NULL)
		bench_die("out of memory");
	for (size_t i = 0; i < n; i++)
		v[i] = i;
	for (size_t i = n; i > 1; i--) {
		size_t j = bench_rng_next(&rng) % i;
		size_t t = v[i - 1];
		v[i - 1] = v[j];
		v[j] = t;
	}
	return v;
}

/* ---- lookup ---- */

#define LOOKUP_DIRS_PER 100 /* files per folder */

/* The path of lookup file @i: "dDDD/fNNNNN". */
static void lookup_path(char *out, size_t size, size_t i)
{
	snprintf(out, size, "d%03zu/f%05zu", i / LOOKUP_DIRS_PER, i);
}

/* Build the host folders of a lookup stack: file i goes to layer
 * i * depth / nfiles. */
static void lookup_sources(stack *s, size_t nfiles)
{
	char path[4096];

	xmkdir(s->dir);
	for (int k = 0; k < s->depth; k++) {
		snprintf(path, sizeof(path), "%s/%d", s->dir, k);
		xmkdir(path);
	}
	for (size_t i = 0; i < nfiles; i++) {
		int k = (int)(i * (size_t)s->depth / nfiles);
		char rel[64];

		snprintf(path, sizeof(path), "%s/%d/d%03zu", s->dir, k,
			 i / LOOKUP_DIRS_PER);
		xmkdir(path);
		lookup_path(rel, sizeof(rel), i);
		snprintf(path, sizeof(path), "%s/%d/%s", s->dir, k, rel);
		small_file(path, "lookup", (long)i);
	}
}

/* Seconds for lam_view_stat() of every path, in order. */
static double lam_stat_round(lam_view *v, char **paths, size_t n)
{
	double t0 = bench_now();

	for (size_t i = 0; i < n; i++) {
		lam_stat st;
		int r = lam_view_stat(v, paths[i], &st);

		if (r < 0)
			lam_die(paths[i], r);
	}
	return bench_now() - t0;
}

/* Seconds for fstatat(dirfd, path, AT_SYMLINK_NOFOLLOW), as lstat(). */
static double host_stat_round(int dirfd, char **paths, size_t n)
{
	double t0 = bench_now();

	for (size_t i = 0; i < n; i++) {
		struct stat st;

		if (fstatat(dirfd, paths[i], &st, AT_SYMLINK_NOFOLLOW) < 0)
			bench_die("lstat %s: %s", paths[i], strerror(errno));
	}
	return bench_now() - t0;
}

/* The median of RUNS rounds after a warm-up, in nanoseconds per path. */
static double host_stat_median(int dirfd, char **paths, size_t n)
{
	double t[RUNS];

	host_stat_round(dirfd, paths, n);
	for (int r = 0; r < RUNS; r++)
		t[r] = host_stat_round(dirfd, paths, n);
	return bench_median(t, RUNS) * 1e9 / (double)n;
}

typedef struct lookup_row {
	stack s;
	lam_view *view, *ro; /* a writable and a read-only view over it */
	double build_s;
	double lam_ns;		/* warm, writable view */
	double lam_ro_ns;	/* warm, read-only view */
	double lam_first_ns;	/* store open + view open + first round */
	double lam_ro_first_ns; /* the same with a read-only view */
	double chain_ms;	/* of which: opening the view (merged index) */
	double kern_ns;		/* warm lstat() through overlayfs */
	double kern_first_ns;	/* mount + first round */
	double kern_mount_ms;	/* of which: the mount */
} lookup_row;

/*
 * Warm lookups through every stack's views, RUNS rounds after a warm-up,
 * the stacks taking turns within each round so that a change in the
 * machine's load falls on all of them alike.
 */
static void lam_lookup_warm(lookup_row *rows, size_t nrows, char **paths,
			    size_t n)
{
	double t[5][RUNS], tro[5][RUNS];

	for (int r = -1; r < RUNS; r++) {
		for (size_t d = 0; d < nrows; d++) {
			double a = lam_stat_round(rows[d].view, paths, n);
			double b = lam_stat_round(rows[d].ro, paths, n);

			if (r >= 0) {
				t[d][r] = a;
				tro[d][r] = b;
			}
		}
	}
	for (size_t d = 0; d < nrows; d++) {
		rows[d].lam_ns = bench_median(t[d], RUNS) * 1e9 / (double)n;
		rows[d].lam_ro_ns =
			bench_median(tro[d], RUNS) * 1e9 / (double)n;
	}
}

/*
 * First lookups in a fresh store handle (nothing cached in the process):
 * open the store, reopen the view by its id (which builds the merged index
 * of its chain), stat every path once. The same with a read-only view
 * created over the stack's top layer, which has no upper to consult.
 */
static void lam_first(const char *store_path, const char *view_id,
		      const char *top_id, char **paths, size_t n,
		      lookup_row *row)
{
	double t[KERNEL_RUNS], tro[KERNEL_RUNS], open_ms[KERNEL_RUNS];
	lam_view_options ro = LAM_VIEW_OPTIONS_INIT;

	ro.flags = LAM_VIEW_READONLY;
	for (int r = 0; r < 2 * KERNEL_RUNS; r++) {
		bool readonly = r % 2 == 1;
		double t0 = bench_now();
		lam_store *store;
		lam_layer *top;
		lam_view *v;
		int rc = lam_store_open(&store, store_path, NULL);

		if (rc < 0)
			lam_die("lam_store_open", rc);
		if (readonly) {
			rc = lam_layer_open(&top, store, top_id);
			if (rc < 0)
				lam_die("lam_layer_open", rc);
			rc = lam_view_create(&v, store, top, &ro);
			lam_layer_free(top);
		} else {
			rc = lam_view_open(&v, store, view_id, NULL);
		}
		if (rc < 0)
			lam_die("opening a view", rc);
		double t1 = bench_now();
		lam_stat_round(v, paths, n);
		if (readonly) {
			tro[r / 2] = bench_now() - t0;
		} else {
			t[r / 2] = bench_now() - t0;
			open_ms[r / 2] = (t1 - t0) * 1e3;
		}
		lam_view_free(v);
		lam_store_free(store);
	}
	row->lam_first_ns = bench_median(t, KERNEL_RUNS) * 1e9 / (double)n;
	row->lam_ro_first_ns = bench_median(tro, KERNEL_RUNS) * 1e9 / (double)n;
	row->chain_ms = bench_median(open_ms, KERNEL_RUNS);
}

static void kernel_lookup(stack *s, const char *mnt, char **paths, size_t n,
			  lookup_row *row)
{
	double first[KERNEL_RUNS], mount_ms[KERNEL_RUNS];
	char *lower = lower_list(s->depth);
	char *u = xasprintf("%s/u", s->dir), *w = xasprintf("%s/w", s->dir);

	row->kern_ns = row->kern_first_ns = row->kern_mount_ms = -1;
	xmkdir(u);
	xmkdir(w);
	for (int r = 0; r < KERNEL_RUNS && kernel_skip == NULL; r++) {
		double t0 = bench_now();

		if (kernel_mount(s->dir, lower, "u", "w", mnt) < 0)
			break;
		double t1 = bench_now();
		int fd = open(mnt, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0)
			bench_die("open %s: %s", mnt, strerror(errno));
		host_stat_round(fd, paths, n);
		first[r] = bench_now() - t0;
		mount_ms[r] = (t1 - t0) * 1e3;
		/* The last mount stays for the warm rounds. */
		if (r == KERNEL_RUNS - 1)
			row->kern_ns = host_stat_median(fd, paths, n);
		close(fd);
		kernel_umount();
	}
	if (kernel_skip == NULL) {
		row->kern_first_ns =
			bench_median(first, KERNEL_RUNS) * 1e9 / (double)n;
		row->kern_mount_ms = bench_median(mount_ms, KERNEL_RUNS);
	}
	free(lower);
	free(u);
	free(w);
}

/* b / a, or -1 when either was not measured. */
static double speedup(double a, double b)
{
	return a > 0 && b > 0 ? b / a : -1;
}

static const char *jbool(double v, bool met)
{
	return v < 0 ? "null" : met ? "true" : "false";
}

static void bench_lookup(FILE *json, const char *store_path, lam_store *store)
{
	static const int full_depths[] = {1, 8, 64, 128, 500};
	static const int quick_depths[] = {1, 8, 64};
	const int *depths = quick ? quick_depths : full_depths;
	size_t ndepths = quick ? 3 : 5;
	size_t nfiles = quick ? 2000 : 10000;
	lookup_row rows[5];
	size_t *order = shuffled(nfiles, 42);
	char **paths = malloc(nfiles * sizeof(*paths));
	char *mnt = xasprintf("%s/mnt", scratch);
	double ext4_ns = -1;
	int r;

	printf("\n-- lookup: stat of %zu paths (%d per folder), median of "
	       "%d rounds --\n",
	       nfiles, LOOKUP_DIRS_PER, RUNS);
	if (paths == NULL)
		bench_die("out of memory");
	for (size_t i = 0; i < nfiles; i++) {
		char rel[64];
		lookup_path(rel, sizeof(rel), order[i]);
		paths[i] = strdup(rel);
	}
	xmkdir(mnt);
	memset(rows, 0, sizeof(rows));
	for (size_t d = 0; d < ndepths; d++) {
		lookup_row *row = &rows[d];
		lam_view_options ro = LAM_VIEW_OPTIONS_INIT;

		row->s.depth = depths[d];
		row->s.dir = xasprintf("%s/lookup-%d", scratch, row->s.depth);
		lookup_sources(&row->s, nfiles);
		row->build_s = import_chain(store, &row->s);
		printf("built %d layers in %.1f s\n", row->s.depth,
		       row->build_s);
		r = lam_view_create(&row->view, store, row->s.top, NULL);
		if (r < 0)
			lam_die("lam_view_create", r);
		ro.flags = LAM_VIEW_READONLY;
		r = lam_view_create(&row->ro, store, row->s.top, &ro);
		if (r < 0)
			lam_die("lam_view_create (read-only)", r);
	}
	lam_lookup_warm(rows, ndepths, paths, nfiles);
	for (size_t d = 0; d < ndepths; d++) {
		lookup_row *row = &rows[d];

		lam_first(store_path, lam_view_id(row->view),
			  lam_layer_id(row->s.top), paths, nfiles, row);
		kernel_lookup(&row->s, mnt, paths, nfiles, row);
		printf("%3d layers: lamina %5.0f ns/stat (read-only view %4.0f)"
		       ", first after open %5.0f (read-only %4.0f; open %.1f "
		       "ms); overlayfs warm %5.0f, first after mount %5.0f "
		       "(mount %.1f ms)\n",
		       row->s.depth, row->lam_ns, row->lam_ro_ns,
		       row->lam_first_ns, row->lam_ro_first_ns, row->chain_ms,
		       row->kern_ns, row->kern_first_ns, row->kern_mount_ms);
	}

	/* The same tree, flat on the host filesystem. */
	char *flat = xasprintf("%s/lookup-flat", scratch);
	lam_checkout_options co = LAM_CHECKOUT_OPTIONS_INIT;
	r = lam_layer_checkout(rows[0].s.top, flat, &co);
	if (r < 0)
		lam_die("lam_layer_checkout", r);
	int fd = open(flat, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		bench_die("open %s: %s", flat, strerror(errno));
	ext4_ns = host_stat_median(fd, paths, nfiles);
	close(fd);
	free(flat);
	printf("host filesystem, the same tree flat: %.0f ns/lstat\n", ext4_ns);
	if (kernel_skip != NULL)
		printf("overlayfs skipped: %s\n", kernel_skip);

	/* The targets. */
	lookup_row *one = &rows[0], *deep = &rows[ndepths - 1], *mid = NULL;
	for (size_t d = 0; d < ndepths; d++)
		if (rows[d].s.depth == 128)
			mid = &rows[d];
	double depth_ratio = deep->lam_ns / one->lam_ns;
	double depth_ratio_ro = deep->lam_ro_ns / one->lam_ro_ns;
	double warm_x = mid ? speedup(mid->lam_ns, mid->kern_ns) : -1;
	double warm_ro_x = mid ? speedup(mid->lam_ro_ns, mid->kern_ns) : -1;
	double first_x = mid ? speedup(mid->lam_first_ns, mid->kern_first_ns) :
			       -1;
	double first_ro_x =
		mid ? speedup(mid->lam_ro_first_ns, mid->kern_first_ns) : -1;
	double first_warm_x = mid ? speedup(mid->lam_ns, mid->kern_first_ns) :
				    -1;
	printf("%d vs 1 layer: %.2fx (target <= 1.3: %s); read-only views "
	       "%.2fx\n",
	       deep->s.depth, depth_ratio,
	       depth_ratio <= 1.3 ? "met" : "MISSED", depth_ratio_ro);
	if (warm_x > 0) {
		printf("128 layers, lamina vs warm overlayfs lstat: %.2fx "
		       "faster (target >= 3: %s); read-only view %.2fx\n",
		       warm_x, warm_x >= 3 ? "met" : "MISSED", warm_ro_x);
		printf("128 layers, lamina first lookups (view open included) "
		       "vs overlayfs first lookups (mount included): %.2fx "
		       "faster (target >= 5: %s); read-only view %.2fx; warm "
		       "lamina vs them: %.2fx\n",
		       first_x, first_x >= 5 ? "met" : "MISSED", first_ro_x,
		       first_warm_x);
	}

	char b1[32], b2[32], b3[32], b4[32], b5[32], b6[32];
	fprintf(json, "\"lookup\":{\"paths\":%zu,\"rows\":[", nfiles);
	for (size_t d = 0; d < ndepths; d++) {
		lookup_row *row = &rows[d];
		fprintf(json,
			"%s{\"layers\":%d,\"lamina_ns\":%.1f,"
			"\"lamina_readonly_ns\":%.1f,\"lamina_first_ns\":%.1f,"
			"\"lamina_readonly_first_ns\":%.1f,"
			"\"lamina_open_ms\":%.3f,\"overlayfs_warm_ns\":%s,"
			"\"overlayfs_first_ns\":%s,\"overlayfs_mount_ms\":%s,"
			"\"build_s\":%.2f}",
			d ? "," : "", row->s.depth, row->lam_ns, row->lam_ro_ns,
			row->lam_first_ns, row->lam_ro_first_ns, row->chain_ms,
			jnum(b1, row->kern_ns, 1),
			jnum(b2, row->kern_first_ns, 1),
			jnum(b3, row->kern_mount_ms, 3), row->build_s);
	}
	fprintf(json,
		"],\"host_flat_ns\":%.1f,\"depth_ratio\":%.3f,"
		"\"depth_ratio_readonly\":%.3f,\"depth_target_met\":%s,"
		"\"warm_speedup_128\":%s,\"warm_speedup_128_readonly\":%s,"
		"\"warm_target_met\":%s,\"first_speedup_128\":%s,"
		"\"first_target_met\":%s,\"first_speedup_128_readonly\":%s,"
		"\"warm_vs_first_speedup_128\":%s}",
		ext4_ns, depth_ratio, depth_ratio_ro,
		depth_ratio <= 1.3 ? "true" : "false", jnum(b4, warm_x, 2),
		jnum(b5, warm_ro_x, 2), jbool(warm_x, warm_x >= 3),
		jnum(b6, first_x, 2), jbool(first_x, first_x >= 5),
		jnum(b2, first_ro_x, 2), jnum(b1, first_warm_x, 2));
	for (size_t d = 0; d < ndepths; d++) {
		r = lam_view_remove(store, lam_view_id(rows[d].view));
		if (r < 0)
			lam_die("lam_view_remove", r);
		lam_view_free(rows[d].ro);
		lam_view_free(rows[d].view);
		lam_layer_free(rows[d].s.top);
		free(rows[d].s.dir);
	}
	for (size_t i = 0; i < nfiles; i++)
		free(paths[i]);
	free(paths);
	free(order);
	free(mnt);
}

/* ---- write ---- */

#define WRITE_SIZE 4096

/* Make @path a file of @size bytes of a pattern that differs per MiB. */
static void big_file(const char *path, uint64_t size)
{
	size_t chunk = 1u << 20;
	char *buf = malloc(chunk);
	bench_rng rng = {7};
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	if (buf == NULL || fd < 0)
		bench_die("creating %s: %s", path, strerror(errno));
	bench_rng_fill(&rng, buf, chunk);
	for (uint64_t off = 0; off < size; off += chunk) {
		memcpy(buf, &off, sizeof(off));
		if (write(fd, buf, chunk) != (ssize_t)chunk)
			bench_die("writing %s: %s", path, strerror(errno));
	}
	if (close(fd) < 0)
		bench_die("closing %s: %s", path, strerror(errno));
	free(buf);
}

static void bench_write(FILE *json, lam_store *store)
{
	uint64_t size = quick ? (64ull << 20) : (1ull << 30);
	uint64_t off = size / 2 + 123;
	char *dir = xasprintf("%s/write", scratch);
	char *src = xasprintf("%s/write/0", scratch);
	char *file = xasprintf("%s/write/0/big", scratch);
	char *mnt = xasprintf("%s/mnt", scratch);
	char data[WRITE_SIZE], back[WRITE_SIZE];
	double lam_t[RUNS], kern_t[KERNEL_RUNS], kern_ms = -1;
	lam_layer *layer;
	int r;

	printf("\n-- write: %d bytes at offset %" PRIu64 " of a %" PRIu64
	       " MiB lower file (open, write, close) --\n",
	       WRITE_SIZE, off, size >> 20);
	xmkdir(dir);
	xmkdir(src);
	xmkdir(mnt);
	double t0 = bench_now();
	big_file(file, size);
	double gen_s = bench_now() - t0;
	t0 = bench_now();
	r = lam_layer_import_dir(&layer, store, src, NULL, NULL);
	if (r < 0)
		lam_die("lam_layer_import_dir", r);
	printf("made the file in %.2f s, imported it in %.2f s\n", gen_s,
	       bench_now() - t0);
	memset(data, 'w', sizeof(data));

	for (int i = 0; i < RUNS + 1; i++) {
		lam_view *v;
		lam_view_file *f;
		size_t n;

		r = lam_view_create(&v, store, layer, NULL);
		if (r < 0)
			lam_die("lam_view_create", r);
		/* Touch the path once, so that the first round pays for
		 * nothing the others do not. */
		lam_stat st;
		if ((r = lam_view_stat(v, "big", &st)) < 0)
			lam_die("lam_view_stat", r);
		t0 = bench_now();
		r = lam_view_file_open(&f, v, "big", O_WRONLY, 0);
		if (r == 0)
			r = lam_view_file_pwrite(f, data, sizeof(data), off,
						 &n);
		if (r == 0)
			r = lam_view_file_close(f);
		double t = bench_now() - t0;
		if (r < 0)
			lam_die("writing into the view", r);
		if (i > 0)
			lam_t[i - 1] = t;
		/* Check what a reader sees: the new bytes, the old around. */
		r = lam_view_file_open(&f, v, "big", O_RDONLY, 0);
		if (r == 0)
			r = lam_view_file_pread(f, back, sizeof(back), off, &n);
		if (r < 0 || n != sizeof(back) ||
		    memcmp(back, data, sizeof(back)) != 0)
			bench_die("the view does not read back the write");
		r = lam_view_file_pread(f, back, 16, off - 16, &n);
		lam_view_file_close(f);
		if (r < 0 || n != 16 || back[15] == 'w')
			bench_die("the view lost the bytes before the write");
		r = lam_view_remove(store, lam_view_id(v));
		if (r < 0)
			lam_die("lam_view_remove", r);
		lam_view_free(v);
	}
	double lam_ms = bench_median(lam_t, RUNS) * 1e3;
	printf("lamina: %.3f ms (median of %d fresh views; target < 1 ms: "
	       "%s)\n",
	       lam_ms, RUNS, lam_ms < 1.0 ? "met" : "MISSED");

	for (int i = 0; i < KERNEL_RUNS && kernel_skip == NULL; i++) {
		char *u = xasprintf("u%d", i), *w = xasprintf("w%d", i);
		char *path;

		bench_syncfs(dir);
		char *up = xasprintf("%s/%s", dir, u);
		char *wp = xasprintf("%s/%s", dir, w);
		xmkdir(up);
		xmkdir(wp);
		if (kernel_mount(dir, "0", u, w, mnt) < 0)
			break;
		path = xasprintf("%s/big", mnt);
		struct stat st;
		if (lstat(path, &st) < 0)
			bench_die("lstat %s: %s", path, strerror(errno));
		t0 = bench_now();
		int fd = open(path, O_WRONLY | O_CLOEXEC);
		if (fd < 0 || pwrite(fd, data, sizeof(data), (off_t)off) !=
				      (ssize_t)sizeof(data))
			bench_die("writing %s: %s", path, strerror(errno));
		if (close(fd) < 0)
			bench_die("closing %s: %s", path, strerror(errno));
		kern_t[i] = bench_now() - t0;
		kernel_umount();
		bench_rm_rf(up);
		bench_rm_rf(wp);
		free(path);
		free(up);
		free(wp);
		free(u);
		free(w);
	}
	if (kernel_skip == NULL) {
		kern_ms = bench_median(kern_t, KERNEL_RUNS) * 1e3;
		printf("overlayfs: %.1f ms (median of %d fresh mounts; it "
		       "copies the whole file up on open)\n",
		       kern_ms, KERNEL_RUNS);
		printf("lamina is %.0fx faster\n", kern_ms / lam_ms);
	} else {
		printf("overlayfs skipped: %s\n", kernel_skip);
	}

	char b1[32], b2[32];
	fprintf(json,
		"\"write\":{\"file_bytes\":%" PRIu64 ",\"write_bytes\":%d,"
		"\"lamina_ms\":%.4f,\"target_ms\":1,\"target_met\":%s,"
		"\"overlayfs_ms\":%s,\"speedup\":%s}",
		size, WRITE_SIZE, lam_ms, lam_ms < 1.0 ? "true" : "false",
		jnum(b1, kern_ms, 2),
		jnum(b2, kern_ms > 0 ? kern_ms / lam_ms : -1, 1));
	lam_layer_free(layer);
	bench_rm_rf(dir);
	free(dir);
	free(src);
	free(file);
	free(mnt);
}

/* ---- commit ---- */

/* Import a base layer of @nfiles small files, 100 per folder. */
static lam_layer *image(lam_store *store, size_t nfiles, double *build_s)
{
	char *src = xasprintf("%s/image-%zu", scratch, nfiles);
	char path[4096];
	lam_layer *layer;

	xmkdir(src);
	for (size_t i = 0; i < nfiles; i++) {
		if (i % 100 == 0) {
			snprintf(path, sizeof(path), "%s/d%04zu", src, i / 100);
			xmkdir(path);
		}
		snprintf(path, sizeof(path), "%s/d%04zu/f%06zu", src, i / 100,
			 i);
		small_file(path, "image", (long)i);
	}
	double t0 = bench_now();
	int r = lam_layer_import_dir(&layer, store, src, NULL, NULL);
	if (r < 0)
		lam_die("lam_layer_import_dir", r);
	*build_s = bench_now() - t0;
	bench_rm_rf(src);
	free(src);
	return layer;
}

/* Change one file of @v, then commit; the seconds each took. */
static void change_and_commit(lam_view *v, int i, double *change_s,
			      double *commit_s)
{
	char body[64];
	lam_view_file *f;
	lam_layer *layer;
	size_t n;
	int len = snprintf(body, sizeof(body), "changed %d\n", i);

	double t0 = bench_now();
	int r = lam_view_file_open(&f, v, "d0000/f000000", O_WRONLY | O_TRUNC,
				   0);
	if (r == 0)
		r = lam_view_file_write(f, body, (size_t)len, &n);
	if (r == 0)
		r = lam_view_file_close(f);
	if (r < 0)
		lam_die("changing a file", r);
	double t1 = bench_now();
	r = lam_view_commit(v, &layer, NULL);
	if (r < 0)
		lam_die("lam_view_commit", r);
	*commit_s = bench_now() - t1;
	*change_s = t1 - t0;
	lam_layer_free(layer);
}

static void bench_commit(FILE *json, lam_store *store)
{
	size_t sizes[2] = {1000, quick ? 10000 : 100000};
	double build[2], commit[2][RUNS], change[2][RUNS], med[2], chg[2];
	lam_layer *base[2];
	lam_view *view[2];

	printf("\n-- commit: one changed file, over a %zu-file and a "
	       "%zu-file image; median of %d commits each --\n",
	       sizes[0], sizes[1], RUNS);
	for (int k = 0; k < 2; k++) {
		base[k] = image(store, sizes[k], &build[k]);
		int r = lam_view_create(&view[k], store, base[k], NULL);
		if (r < 0)
			lam_die("lam_view_create", r);
	}
	printf("imported the images in %.2f s and %.2f s\n", build[0],
	       build[1]);
	/* The two views take turns, after one commit each to warm up. */
	for (int i = -1; i < RUNS; i++) {
		for (int k = 0; k < 2; k++) {
			double a, b;
			change_and_commit(view[k], i + 1, &a, &b);
			if (i >= 0) {
				change[k][i] = a;
				commit[k][i] = b;
			}
		}
	}
	for (int k = 0; k < 2; k++) {
		med[k] = bench_median(commit[k], RUNS);
		chg[k] = bench_median(change[k], RUNS);
		printf("commit over %6zu files: %.2f ms (changing the file "
		       "before: %.3f ms)\n",
		       sizes[k], med[k] * 1e3, chg[k] * 1e3);
		int r = lam_view_remove(store, lam_view_id(view[k]));
		if (r < 0)
			lam_die("lam_view_remove", r);
		lam_view_free(view[k]);
		lam_layer_free(base[k]);
	}
	double ratio = med[1] / med[0];
	printf("ratio %.2f (target <= 1.5: %s)\n", ratio,
	       ratio <= 1.5 ? "met" : "MISSED");
	fprintf(json,
		"\"commit\":{\"small_files\":%zu,\"large_files\":%zu,"
		"\"small_ms\":%.3f,\"large_ms\":%.3f,\"small_change_ms\":%.3f,"
		"\"large_change_ms\":%.3f,\"ratio\":%.3f,\"target_met\":%s}",
		sizes[0], sizes[1], med[0] * 1e3, med[1] * 1e3, chg[0] * 1e3,
		chg[1] * 1e3, ratio, ratio <= 1.5 ? "true" : "false");
}

/* ---- readdir ---- */

#define LIST_FILES_PER_DIR 10

/* List every folder of @names through the view; returns seconds. */
static double lam_list_round(lam_view *v, char **names, size_t n,
			     size_t *entries)
{
	double t0 = bench_now();

	*entries = 0;
	for (size_t i = 0; i < n; i++) {
		lam_view_dir_iter *it;
		lam_dirent d;
		int r = lam_view_dir_iter_new(&it, v, names[i]);

		if (r < 0)
			lam_die(names[i], r);
		while ((r = lam_view_dir_iter_next(it, &d)) == 0)
			(*entries)++;
		if (r != LAM_ITEROVER)
			lam_die("lam_view_dir_iter_next", r);
		lam_view_dir_iter_free(it);
	}
	return bench_now() - t0;
}

/* The same with opendir()/readdir() below @dirfd. */
static double host_list_round(int dirfd, char **names, size_t n,
			      size_t *entries)
{
	double t0 = bench_now();

	*entries = 0;
	for (size_t i = 0; i < n; i++) {
		int fd = openat(dirfd, names[i],
				O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
		struct dirent *de;

		if (d == NULL)
			bench_die("opendir %s: %s", names[i], strerror(errno));
		while ((de = readdir(d)) != NULL)
			if (de->d_name[0] != '.')
				(*entries)++;
		closedir(d);
	}
	return bench_now() - t0;
}

static double host_list_median(int dirfd, char **names, size_t n,
			       size_t *entries)
{
	double t[RUNS];

	host_list_round(dirfd, names, n, entries);
	for (int r = 0; r < RUNS; r++)
		t[r] = host_list_round(dirfd, names, n, entries);
	return bench_median(t, RUNS);
}

static void bench_readdir(FILE *json, lam_store *store)
{
	size_t ndirs = 1000;
	stack s = {.depth = quick ? 16 : 128};
	char **names = malloc(ndirs * sizeof(*names));
	char path[4096];
	size_t lam_n, host_n, kern_n = 0;
	double kern_s = -1;
	int r;

	printf("\n-- readdir: %zu folders of %d entries each, spread over "
	       "%d layers; median of %d rounds --\n",
	       ndirs, LIST_FILES_PER_DIR, s.depth, RUNS);
	if (names == NULL)
		bench_die("out of memory");
	s.dir = xasprintf("%s/readdir", scratch);
	xmkdir(s.dir);
	for (int k = 0; k < s.depth; k++) {
		snprintf(path, sizeof(path), "%s/%d", s.dir, k);
		xmkdir(path);
	}
	/*
	 * Every folder exists in every layer, as /usr/lib does in an image
	 * whose layers each install something; entry j of folder i lies in
	 * layer (i + 13 j) mod depth, so each folder is merged from several
	 * layers and most of its layers hold nothing in it.
	 */
	for (size_t i = 0; i < ndirs; i++) {
		names[i] = xasprintf("d%04zu", i);
		for (int k = 0; k < s.depth; k++) {
			snprintf(path, sizeof(path), "%s/%d/%s", s.dir, k,
				 names[i]);
			xmkdir(path);
		}
		for (int j = 0; j < LIST_FILES_PER_DIR; j++) {
			int k = (int)((i + 13 * (size_t)j) % (size_t)s.depth);
			snprintf(path, sizeof(path), "%s/%d/%s/e%02d", s.dir, k,
				 names[i], j);
			small_file(path, names[i], j);
		}
	}
	double build_s = import_chain(store, &s);
	printf("built in %.1f s\n", build_s);

	lam_view *v;
	r = lam_view_create(&v, store, s.top, NULL);
	if (r < 0)
		lam_die("lam_view_create", r);
	char *flat = xasprintf("%s/readdir-flat", scratch);
	lam_checkout_options co = LAM_CHECKOUT_OPTIONS_INIT;
	r = lam_layer_checkout(s.top, flat, &co);
	if (r < 0)
		lam_die("lam_layer_checkout", r);
	int fd = open(flat, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		bench_die("open %s: %s", flat, strerror(errno));
	/* lamina and the flat tree take turns, after a warm-up each. */
	double lam_t[RUNS], host_t[RUNS];
	for (int i = -1; i < RUNS; i++) {
		double a = lam_list_round(v, names, ndirs, &lam_n);
		double b = host_list_round(fd, names, ndirs, &host_n);
		if (i >= 0) {
			lam_t[i] = a;
			host_t[i] = b;
		}
	}
	double lam_s = bench_median(lam_t, RUNS);
	double host_s = bench_median(host_t, RUNS);
	close(fd);

	char *mnt = xasprintf("%s/mnt", scratch);
	char *lower = lower_list(s.depth);
	snprintf(path, sizeof(path), "%s/u", s.dir);
	xmkdir(path);
	snprintf(path, sizeof(path), "%s/w", s.dir);
	xmkdir(path);
	xmkdir(mnt);
	if (kernel_skip == NULL &&
	    kernel_mount(s.dir, lower, "u", "w", mnt) == 0) {
		fd = open(mnt, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0)
			bench_die("open %s: %s", mnt, strerror(errno));
		kern_s = host_list_median(fd, names, ndirs, &kern_n);
		close(fd);
		kernel_umount();
	}
	if (lam_n != host_n || (kern_s >= 0 && kern_n != host_n) ||
	    host_n != ndirs * LIST_FILES_PER_DIR)
		printf("WARNING: listed %zu (lamina), %zu (host), %zu "
		       "(overlayfs) entries, expected %zu\n",
		       lam_n, host_n, kern_n, ndirs * LIST_FILES_PER_DIR);

	double ratio = lam_s / host_s;
	printf("lamina:    %.2f ms (%.1f us per folder)\n", lam_s * 1e3,
	       lam_s * 1e6 / (double)ndirs);
	printf("host flat: %.2f ms (%.1f us per folder)\n", host_s * 1e3,
	       host_s * 1e6 / (double)ndirs);
	if (kern_s >= 0)
		printf("overlayfs: %.2f ms (%.1f us per folder), %.1fx the host "
		       "filesystem\n",
		       kern_s * 1e3, kern_s * 1e6 / (double)ndirs,
		       kern_s / host_s);
	else
		printf("overlayfs skipped: %s\n", kernel_skip);
	printf("lamina / host filesystem: %.2f (target <= 1.5: %s)\n", ratio,
	       ratio <= 1.5 ? "met" : "MISSED");

	char b1[32], b2[32];
	fprintf(json,
		"\"readdir\":{\"folders\":%zu,\"entries\":%zu,\"layers\":%d,"
		"\"lamina_ms\":%.3f,\"host_flat_ms\":%.3f,"
		"\"overlayfs_ms\":%s,\"ratio\":%.3f,\"target_met\":%s,"
		"\"overlayfs_ratio\":%s,\"build_s\":%.2f}",
		ndirs, host_n, s.depth, lam_s * 1e3, host_s * 1e3,
		jnum(b1, kern_s * 1e3, 3), ratio,
		ratio <= 1.5 ? "true" : "false",
		jnum(b2, kern_s >= 0 ? kern_s / host_s : -1, 2), build_s);

	r = lam_view_remove(store, lam_view_id(v));
	if (r < 0)
		lam_die("lam_view_remove", r);
	lam_view_free(v);
	lam_layer_free(s.top);
	for (size_t i = 0; i < ndirs; i++)
		free(names[i]);
	free(names);
	free(lower);
	free(mnt);
	free(flat);
	free(s.dir);
}

/* ---- main ---- */

int main(int argc, char **argv)
{
	static const char *const all[] = {"lookup", "write", "commit",
					  "readdir"};
	bool want[4] = {false};
	bool any = false;

	for (int i = 1; i < argc; i++) {
		bool found = false;

		if (strcmp(argv[i], "--quick") == 0) {
			quick = true;
			continue;
		}
		for (int k = 0; k < 4; k++) {
			if (strcmp(argv[i], all[k]) == 0)
				want[k] = found = any = true;
		}
		if (!found)
			bench_die("usage: %s [--quick] [lookup] [write] "
				  "[commit] [readdir]",
				  argv[0]);
	}
	if (!any)
		for (int k = 0; k < 4; k++)
			want[k] = true;
	setvbuf(stdout, NULL, _IOLBF, 0);

	scratch = bench_scratch_dir("lamina-bench-view");
	if (scratch == NULL)
		return 1;
	atexit(cleanup);
	kernel_probe();
	printf("bench-view: lamina %s, scratch %s, load %.2f%s\n",
	       lam_version(), scratch, bench_loadavg(),
	       quick ? ", QUICK sizes" : "");
	if (kernel_skip != NULL)
		printf("overlayfs comparisons skipped: %s\n", kernel_skip);

	char *store_path = xasprintf("%s/store", scratch);
	lam_store_options so = LAM_STORE_OPTIONS_INIT;
	lam_store *store;
	so.flags = LAM_STORE_CREATE;
	int r = lam_store_open(&store, store_path, &so);
	if (r < 0)
		lam_die("lam_store_open", r);

	/* The sections write their JSON members here, then it goes out last. */
	char *json_text = NULL;
	size_t json_len = 0;
	FILE *json = open_memstream(&json_text, &json_len);
	if (json == NULL)
		bench_die("open_memstream: %s", strerror(errno));
	fprintf(json, "{\"bench\":\"view\",\"quick\":%s",
		quick ? "true" : "false");
	void (*run[4])(FILE *, lam_store *) = {NULL, bench_write, bench_commit,
					       bench_readdir};
	for (int k = 0; k < 4; k++) {
		if (!want[k])
			continue;
		fputc(',', json);
		if (k == 0)
			bench_lookup(json, store_path, store);
		else
			run[k](json, store);
	}
	fprintf(json, ",\"overlayfs\":%s", kernel_skip ? "false" : "true");
	if (kernel_skip != NULL) {
		fputs(",\"overlayfs_skipped\":", json);
		fprintf(json, "\"%s\"", kernel_skip);
	}
	fprintf(json, ",\"load\":%.2f}", bench_loadavg());
	fclose(json);
	lam_store_free(store);
	free(store_path);
	printf("%s\n", json_text);
	free(json_text);
	return 0;
}
