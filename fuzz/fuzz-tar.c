/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the tar import (meson -Dfuzz=true, with clang).
 *
 * Each input is imported as a layer twice: as a base layer, and on a
 * parent whose legitimate symlinks lead out of the layer (an absolute one
 * to the sentinel folder, a relative one climbing to /). Whatever the
 * input, the escape oracle must hold: the sentinel tree outside the store
 * is byte for byte what it was, and the store passes lam_store_check.
 * A violation aborts, which libFuzzer reports with the input.
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lamina.h>

static char root[4096];
static char sentinel[4200];
static lam_store *store;
static lam_layer *lower;
static uint64_t sentinel_sum;

/* A digest of the sentinel tree: names, modes, sizes and contents. */
static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
	const unsigned char *b = p;
	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 1099511628211ull;
	return h;
}

static uint64_t tree_sum(const char *dir, uint64_t h)
{
	DIR *d = opendir(dir);
	if (d == NULL)
		return fnv(h, "missing", 7);
	struct dirent *de;
	char names[64][256];
	int n = 0;
	while ((de = readdir(d)) != NULL && n < 64) {
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			snprintf(names[n++], 256, "%s", de->d_name);
	}
	closedir(d);
	qsort(names, (size_t)n, 256,
	      (int (*)(const void *, const void *))strcmp);
	for (int i = 0; i < n; i++) {
		char p[8192];
		snprintf(p, sizeof(p), "%s/%s", dir, names[i]);
		struct stat st;
		if (lstat(p, &st) < 0)
			continue;
		h = fnv(h, names[i], strlen(names[i]));
		h = fnv(h, &st.st_mode, sizeof(st.st_mode));
		h = fnv(h, &st.st_size, sizeof(st.st_size));
		if (S_ISDIR(st.st_mode)) {
			h = tree_sum(p, h);
		} else if (S_ISREG(st.st_mode)) {
			char buf[4096];
			int fd = open(p, O_RDONLY | O_CLOEXEC);
			ssize_t r = fd >= 0 ? read(fd, buf, sizeof(buf)) : -1;
			if (r > 0)
				h = fnv(h, buf, (size_t)r);
			if (fd >= 0)
				close(fd);
		}
	}
	return h;
}

static void must(int ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz-tar: %s: %s\n", what,
			lam_error_last()->message);
		abort();
	}
}

static void init(void)
{
	snprintf(root, sizeof(root), "%s/lamina-fuzz-XXXXXX",
		 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	must(mkdtemp(root) != NULL, "mkdtemp");
	snprintf(sentinel, sizeof(sentinel), "%s/sentinel", root);
	char p[8400];
	must(mkdir(sentinel, 0755) == 0, "mkdir");
	snprintf(p, sizeof(p), "%s/file", sentinel);
	FILE *f = fopen(p, "w");
	must(f != NULL, "sentinel");
	fputs("precious\n", f);
	fclose(f);
	snprintf(p, sizeof(p), "%s/store", root);
	lam_store_options o = LAM_STORE_OPTIONS_INIT;
	o.flags = LAM_STORE_CREATE;
	must(lam_store_open(&store, p, &o) == 0, "store");
	snprintf(p, sizeof(p), "%s/lower", root);
	must(mkdir(p, 0755) == 0, "mkdir lower");
	char l[8500];
	snprintf(l, sizeof(l), "%s/escape", p);
	must(symlink(sentinel, l) == 0, "symlink");
	snprintf(l, sizeof(l), "%s/up", p);
	must(symlink("../../../../../../..", l) == 0, "symlink");
	must(lam_layer_import_dir(&lower, store, p, NULL, NULL) == 0,
	     "lower layer");
	must(lam_store_ref_set(store, "lower", lam_layer_id(lower), NULL) == 0,
	     "ref");
	sentinel_sum = tree_sum(sentinel, 14695981039346656037ull);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static unsigned long runs;
	if (store == NULL)
		init();
	int fd = memfd_create("fuzz-tar", MFD_CLOEXEC);
	must(fd >= 0, "memfd");
	must(write(fd, data, size) == (ssize_t)size, "write");
	for (int on_lower = 0; on_lower < 2; on_lower++) {
		lseek(fd, 0, SEEK_SET);
		lam_tar_import_options o = LAM_TAR_IMPORT_OPTIONS_INIT;
		o.max_size = 64u << 20;
		/* The base import with the writer threads, the other in the
		 * calling thread: both stage files ahead of the checks. */
		if (on_lower)
			o.flags = LAM_TAR_ONE_THREAD;
		lam_layer *l = NULL;
		int rc = lam_layer_import_tar(&l, store, fd,
					      on_lower ? lower : NULL, &o);
		must(rc == 0 ? l != NULL : l == NULL, "out parameter");
		if (l != NULL)
			lam_layer_delete(l, 0);
		lam_layer_free(l);
		must(tree_sum(sentinel, 14695981039346656037ull) ==
			     sentinel_sum,
		     "the sentinel changed");
	}
	close(fd);
	/* The full check is slow; every 64th run keeps the oracle honest
	 * without starving the fuzzer. */
	if (++runs % 64 == 1) {
		size_t problems = 0;
		must(lam_store_check(store, LAM_CHECK_QUICK, NULL, NULL,
				     &problems) == 0 &&
			     problems == 0,
		     "store check");
		lam_store_gc(store, NULL);
	}
	return 0;
}
