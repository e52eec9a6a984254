/* SPDX-License-Identifier: MIT */
/*
 * bench-layers: how long a fresh process takes to open a store of 1,000
 * layers and list every layer with its id, parent, depth, size and refs
 * (what `lamina layers` prints), against a target of 50 ms.
 *
 * The store holds several chains of layers, each layer a tiny tree of one
 * to three files imported on top of the one before, and refs on each
 * chain's tip and on every tenth layer. Each measurement forks and execs
 * this program again, so nothing is cached in the process; the page cache
 * is warm, as it is for a user who lists layers twice. Two ways of finding
 * the refs are timed: one lam_store_ref_foreach() into a table, and
 * lam_layer_refs_foreach() per layer. `lamina --store DIR layers` is timed
 * too, for reference. Then refs are added until there are as many as
 * layers, and all three are timed again, to show how listing scales with
 * the number of refs.
 *
 * Usage: bench-layers [CLI [LAYERS [CHAINS]]]
 * CLI defaults to $LAMINA_CLI, else build/bench/tools/lamina.
 * Scratch data goes under $BENCH_DIR (default /var/tmp) and is removed,
 * unless $BENCH_KEEP is set (to profile by hand).
 * The last line of output is one JSON object with the figures.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <lamina.h>

#include "bench-common.h"

#define DEFAULT_LAYERS 1000
#define DEFAULT_CHAINS 10
#define RUNS	       5
#define TARGET_MS      50.0

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

/* A growing text buffer: the listing the child builds, and the output the
 * parent reads back. */
typedef struct text {
	char *p;
	size_t len, cap;
} text;

static void text_add(text *t, const char *s, size_t n)
{
	if (t->len + n + 1 > t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 4096;
		while (cap < t->len + n + 1)
			cap *= 2;
		t->p = realloc(t->p, cap);
		if (t->p == NULL)
			bench_die("out of memory");
		t->cap = cap;
	}
	memcpy(t->p + t->len, s, n);
	t->len += n;
	t->p[t->len] = '\0';
}

static void text_adds(text *t, const char *s)
{
	text_add(t, s, strlen(s));
}

/* ---- The child: open, list, report. ---- */

typedef struct ref_ent {
	char *name;
	char *id;
} ref_ent;

typedef struct listing {
	text out;
	ref_ent *refs;
	size_t nrefs, cap;
	size_t layers;
	size_t refs_shown;
	size_t line_refs; /* refs shown on the current line */
	bool per_layer;	  /* use lam_layer_refs_foreach() for each layer */
} listing;

static int collect_ref(const char *name, const char *layer_id, void *ud)
{
	listing *l = ud;

	if (l->nrefs == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 64;
		l->refs = realloc(l->refs, l->cap * sizeof(*l->refs));
		if (l->refs == NULL)
			bench_die("out of memory");
	}
	l->refs[l->nrefs].name = strdup(name);
	l->refs[l->nrefs].id = strdup(layer_id);
	l->nrefs++;
	return 0;
}

static int ref_cmp(const void *a, const void *b)
{
	const ref_ent *x = a, *y = b;
	int c = strcmp(x->id, y->id);
	return c ? c : strcmp(x->name, y->name);
}

static int show_ref(const char *name, const char *layer_id, void *ud)
{
	listing *l = ud;

	(void)layer_id;
	text_adds(&l->out, l->line_refs++ ? "," : "");
	text_adds(&l->out, name);
	l->refs_shown++;
	return 0;
}

static int show_layer(lam_layer *layer, void *ud)
{
	listing *l = ud;
	const char *parent = lam_layer_parent_id(layer);
	const char *id = lam_layer_id(layer);
	char line[256];

	snprintf(line, sizeof(line), "%s %s %u %" PRIu64 " ", id,
		 parent ? parent : "-", lam_layer_depth(layer),
		 lam_layer_size(layer));
	text_adds(&l->out, line);
	l->line_refs = 0;
	if (l->per_layer) {
		int r = lam_layer_refs_foreach(layer, show_ref, l);
		if (r < 0)
			lam_die("lam_layer_refs_foreach", r);
	} else {
		/* The table is sorted by layer id: find the first match. */
		size_t lo = 0, hi = l->nrefs;
		while (lo < hi) {
			size_t mid = (lo + hi) / 2;
			if (strcmp(l->refs[mid].id, id) < 0)
				lo = mid + 1;
			else
				hi = mid;
		}
		for (; lo < l->nrefs && strcmp(l->refs[lo].id, id) == 0; lo++)
			show_ref(l->refs[lo].name, id, l);
	}
	if (l->line_refs == 0)
		text_adds(&l->out, "-");
	text_adds(&l->out, "\n");
	l->layers++;
	return 0;
}

/* Runs in the fresh process: prints "MS LAYERS REFS BYTES". */
static int child_list(const char *store_path, const char *mode)
{
	double t0 = bench_now();
	listing l = {.per_layer = strcmp(mode, "per-layer") == 0};
	lam_store *store;
	int r;

	r = lam_store_open(&store, store_path, NULL);
	if (r < 0)
		lam_die("lam_store_open", r);
	if (!l.per_layer) {
		r = lam_store_ref_foreach(store, collect_ref, &l);
		if (r < 0)
			lam_die("lam_store_ref_foreach", r);
		qsort(l.refs, l.nrefs, sizeof(*l.refs), ref_cmp);
	}
	r = lam_layer_foreach(store, show_layer, &l);
	if (r < 0)
		lam_die("lam_layer_foreach", r);
	lam_store_free(store);
	double ms = (bench_now() - t0) * 1e3;

	printf("%.3f %zu %zu %zu\n", ms, l.layers, l.refs_shown, l.out.len);
	for (size_t i = 0; i < l.nrefs; i++) {
		free(l.refs[i].name);
		free(l.refs[i].id);
	}
	free(l.refs);
	free(l.out.p);
	return 0;
}

/* ---- The parent: build the store, time fresh processes. ---- */

/* Run @argv with its stdout captured into @out; returns its wall time in
 * seconds, or dies if it fails. */
static double run_capture(char *const argv[], text *out)
{
	int fds[2];
	char buf[65536];
	int status;

	out->len = 0;
	if (pipe2(fds, O_CLOEXEC) < 0)
		bench_die("pipe: %s", strerror(errno));
	double t0 = bench_now();
	pid_t pid = fork();
	if (pid < 0)
		bench_die("fork: %s", strerror(errno));
	if (pid == 0) {
		dup2(fds[1], STDOUT_FILENO);
		execv(argv[0], argv);
		_exit(127);
	}
	close(fds[1]);
	for (;;) {
		ssize_t n = read(fds[0], buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		text_add(out, buf, (size_t)n);
	}
	close(fds[0]);
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			bench_die("waitpid: %s", strerror(errno));
	double s = bench_now() - t0;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		bench_die("%s failed (status %d)", argv[0], status);
	if (out->len == 0)
		text_add(out, "", 0);
	return s;
}

/* Make @dir with @n small files whose content is unique to (chain, k). A
 * fresh folder per layer, removed only at the end: deleting files while
 * creating others is slow on ext4 without a journal. */
static void fill_layer_src(const char *dir, int chain, int k, int n)
{
	char path[8192], body[128];

	if (mkdir(dir, 0755) < 0)
		bench_die("mkdir %s: %s", dir, strerror(errno));
	for (int j = 0; j < n; j++) {
		int len = snprintf(body, sizeof(body),
				   "chain %d layer %d file %d\n", chain, k, j);
		snprintf(path, sizeof(path), "%s/c%02d-l%04d-%d.txt", dir,
			 chain, k, j);
		if (bench_write_file(path, body, (size_t)len) < 0)
			exit(1);
	}
}

static size_t build_store(const char *store_path, const char *src, int layers,
			  int chains)
{
	lam_store_options so = LAM_STORE_OPTIONS_INIT;
	lam_store *store;
	size_t nrefs = 0;
	int r;

	so.flags = LAM_STORE_CREATE;
	r = lam_store_open(&store, store_path, &so);
	if (r < 0)
		lam_die("lam_store_open", r);
	if (mkdir(src, 0755) < 0)
		bench_die("mkdir %s: %s", src, strerror(errno));
	int per_chain = (layers + chains - 1) / chains;
	int made = 0;
	for (int c = 0; c < chains && made < layers; c++) {
		lam_layer *top = NULL;
		char ref[64];

		for (int k = 0; k < per_chain && made < layers; k++, made++) {
			lam_layer *next;

			char dir[4096];
			snprintf(dir, sizeof(dir), "%s/%04d", src, made);
			fill_layer_src(dir, c, k, 1 + (made % 3));
			r = lam_layer_import_dir(&next, store, dir, top, NULL);
			if (r < 0)
				lam_die("lam_layer_import_dir", r);
			lam_layer_free(top);
			top = next;
			if (k % 10 == 9) {
				snprintf(ref, sizeof(ref), "tag/c%02d-%04d", c,
					 k);
				r = lam_store_ref_set(store, ref,
						      lam_layer_id(top), NULL);
				if (r < 0)
					lam_die("lam_store_ref_set", r);
				nrefs++;
			}
		}
		snprintf(ref, sizeof(ref), "chain-%02d", c);
		r = lam_store_ref_set(store, ref, lam_layer_id(top), NULL);
		if (r < 0)
			lam_die("lam_store_ref_set", r);
		nrefs++;
		lam_layer_free(top);
	}
	lam_store_free(store);
	return nrefs;
}

static int collect_id(lam_layer *layer, void *ud)
{
	text *ids = ud;
	text_add(ids, lam_layer_id(layer), LAM_DIGEST_HEX_LEN + 1);
	return 0;
}

/* Add refs "all/NNNN" until the store holds @want refs, one more on each
 * layer in id order. Returns the number of refs then held. */
static size_t add_refs(const char *store_path, size_t have, size_t want)
{
	lam_store *store;
	text ids = {0};
	int r;

	r = lam_store_open(&store, store_path, NULL);
	if (r < 0)
		lam_die("lam_store_open", r);
	r = lam_layer_foreach(store, collect_id, &ids);
	if (r < 0)
		lam_die("lam_layer_foreach", r);
	size_t nids = ids.len / (LAM_DIGEST_HEX_LEN + 1);
	for (size_t i = 0; have < want && i < nids; i++, have++) {
		char ref[32];
		snprintf(ref, sizeof(ref), "all/%04zu", i);
		r = lam_store_ref_set(
			store, ref, ids.p + i * (LAM_DIGEST_HEX_LEN + 1), NULL);
		if (r < 0)
			lam_die("lam_store_ref_set", r);
	}
	lam_store_free(store);
	free(ids.p);
	return have;
}

/* Median wall time of `CLI --store DIR layers`, or -1 when there is no
 * CLI; @lines_out gets the lines it printed. */
static double time_cli(const char *cli, const char *store_path,
		       size_t *lines_out)
{
	char *argv[] = {(char *)cli, "--store", (char *)store_path, "layers",
			NULL};
	double v[RUNS];
	text out = {0};

	*lines_out = 0;
	if (access(cli, X_OK) != 0)
		return -1.0;
	run_capture(argv, &out);
	for (int i = 0; i < RUNS; i++)
		v[i] = run_capture(argv, &out) * 1e3;
	for (size_t i = 0; i < out.len; i++)
		*lines_out += out.p[i] == '\n';
	free(out.p);
	return bench_median(v, RUNS);
}

typedef struct figures {
	double proc_ms;	  /* fork to exit, median */
	double inproc_ms; /* open + list as the child saw it, median */
	size_t layers, refs;
} figures;

static figures time_child(const char *store_path, const char *mode)
{
	char *argv[] = {"/proc/self/exe", "--list", (char *)store_path,
			(char *)mode, NULL};
	double proc[RUNS], inproc[RUNS];
	figures f = {0};
	text out = {0};

	run_capture(argv, &out); /* a warm-up, not counted */
	for (int i = 0; i < RUNS; i++) {
		proc[i] = run_capture(argv, &out) * 1e3;
		if (sscanf(out.p, "%lf %zu %zu", &inproc[i], &f.layers,
			   &f.refs) != 3)
			bench_die("unexpected child output: %s", out.p);
	}
	f.proc_ms = bench_median(proc, RUNS);
	f.inproc_ms = bench_median(inproc, RUNS);
	free(out.p);
	return f;
}

int main(int argc, char **argv)
{
	if (argc == 4 && strcmp(argv[1], "--list") == 0)
		return child_list(argv[2], argv[3]);

	const char *cli = argc > 1 ? argv[1] : getenv("LAMINA_CLI");
	int layers = argc > 2 ? atoi(argv[2]) : DEFAULT_LAYERS;
	int chains = argc > 3 ? atoi(argv[3]) : DEFAULT_CHAINS;
	if (cli == NULL || cli[0] == '\0')
		cli = "build/bench/tools/lamina";
	if (layers < 1 || chains < 1 || chains > layers)
		bench_die("usage: %s [CLI [LAYERS [CHAINS]]]", argv[0]);
	setvbuf(stdout, NULL, _IOLBF, 0);

	scratch = bench_scratch_dir("lamina-bench");
	if (scratch == NULL)
		return 1;
	atexit(cleanup);
	printf("bench-layers: lamina %s, scratch %s\n", lam_version(), scratch);

	char *store_path, *src;
	if (asprintf(&store_path, "%s/store", scratch) < 0 ||
	    asprintf(&src, "%s/layer-src", scratch) < 0)
		bench_die("out of memory");

	double t0 = bench_now();
	size_t nrefs = build_store(store_path, src, layers, chains);
	double build_s = bench_now() - t0;
	printf("store: %d layers in %d chains, %zu refs; built in %.2f s "
	       "(%.1f ms per import)\n",
	       layers, chains, nrefs, build_s, build_s * 1e3 / layers);

	figures tab = time_child(store_path, "table");
	printf("fresh process, refs via one lam_store_ref_foreach: "
	       "open+list %.2f ms, whole process %.2f ms "
	       "(%zu layers, %zu ref names)\n",
	       tab.inproc_ms, tab.proc_ms, tab.layers, tab.refs);
	figures per = time_child(store_path, "per-layer");
	printf("fresh process, refs via lam_layer_refs_foreach per layer: "
	       "open+list %.2f ms, whole process %.2f ms "
	       "(%zu layers, %zu ref names)\n",
	       per.inproc_ms, per.proc_ms, per.layers, per.refs);
	if (tab.layers != (size_t)layers || per.layers != (size_t)layers ||
	    tab.refs != nrefs || per.refs != nrefs)
		printf("WARNING: listed %zu/%zu layers and %zu/%zu refs, "
		       "expected %d and %zu\n",
		       tab.layers, per.layers, tab.refs, per.refs, layers,
		       nrefs);

	/* The command-line tool, when it is there. */
	size_t cli_lines;
	double cli_ms = time_cli(cli, store_path, &cli_lines);
	if (cli_ms >= 0)
		printf("%s --store DIR layers: %.2f ms (%zu lines)\n", cli,
		       cli_ms, cli_lines);
	else
		printf("%s: not found, CLI not timed (pass its path or set "
		       "LAMINA_CLI)\n",
		       cli);

	/* Again with as many refs as layers: how listing scales with refs. */
	size_t many = add_refs(store_path, nrefs, (size_t)layers);
	figures tab2 = time_child(store_path, "table");
	figures per2 = time_child(store_path, "per-layer");
	size_t cli2_lines;
	double cli2_ms = time_cli(cli, store_path, &cli2_lines);
	printf("with %zu refs: open+list %.2f ms (one ref walk), %.2f ms "
	       "(refs per layer), CLI %.2f ms\n",
	       many, tab2.inproc_ms, per2.inproc_ms, cli2_ms);
	if (tab2.refs != many || per2.refs != many)
		printf("WARNING: listed %zu/%zu refs, expected %zu\n",
		       tab2.refs, per2.refs, many);

	bool met = tab.inproc_ms <= TARGET_MS;
	printf("\nopen + list %d layers with refs: %.2f ms, median of %d "
	       "fresh processes (target <= %.0f ms: %s)\n",
	       layers, tab.inproc_ms, RUNS, TARGET_MS, met ? "met" : "MISSED");

	printf("{\"bench\":\"layers\",\"layers\":%d,\"chains\":%d,"
	       "\"refs\":%zu,\"runs\":%d,\"build_s\":%.3f,"
	       "\"open_list_ms\":%.3f,\"process_ms\":%.3f,"
	       "\"open_list_per_layer_refs_ms\":%.3f,"
	       "\"process_per_layer_refs_ms\":%.3f,\"cli_ms\":%.3f,"
	       "\"cli_lines\":%zu,\"target_ms\":%.0f,\"ratio\":%.3f,"
	       "\"target_met\":%s,\"many_refs\":%zu,"
	       "\"open_list_many_refs_ms\":%.3f,"
	       "\"open_list_per_layer_many_refs_ms\":%.3f,"
	       "\"cli_many_refs_ms\":%.3f}\n",
	       layers, chains, nrefs, RUNS, build_s, tab.inproc_ms, tab.proc_ms,
	       per.inproc_ms, per.proc_ms, cli_ms, cli_lines, TARGET_MS,
	       tab.inproc_ms / TARGET_MS, met ? "true" : "false", many,
	       tab2.inproc_ms, per2.inproc_ms, cli2_ms);

	free(store_path);
	free(src);
	return 0;
}
