/* SPDX-License-Identifier: MIT */
/*
 * Helpers the benchmark programs share: a clock, medians, a scratch folder
 * on a real disk, running other programs, and a deterministic random
 * generator. Benchmarks use lamina's public API only.
 */
#ifndef LAMINA_BENCH_COMMON_H
#define LAMINA_BENCH_COMMON_H

#include <stddef.h>
#include <stdint.h>

/* Seconds on the monotonic clock. */
double bench_now(void);

struct timeval;

/* A timeval in seconds. */
double bench_tv(const struct timeval *tv);

/* CPU time (user + system) this process has used so far, in seconds. */
double bench_self_cpu(void);

/* The one-minute load average, or -1: the machine may be shared, and a busy
 * neighbour makes every figure slower. */
double bench_loadavg(void);

/* The median of @n values; sorts @v in place. */
double bench_median(double *v, size_t n);

/*
 * Make a fresh scratch folder: under $BENCH_DIR when it is set, else under
 * /var/tmp. Warns on stderr when the folder lies on tmpfs, where fsync and
 * syncfs cost nothing and the figures would flatter lamina. Returns a
 * malloc'd path, or NULL with a message on stderr.
 */
char *bench_scratch_dir(const char *prefix);

/*
 * Run @argv (argv[0] a full path) with stdout sent to /dev/null when
 * @quiet, and wait for it. Returns its exit status, or -1.
 */
int bench_run(char *const argv[], int quiet);

/* bench_run(), also giving the child's CPU time (user + system) in
 * seconds through @cpu_s (may be NULL). */
int bench_run_usage(char *const argv[], int quiet, double *cpu_s);

/* Remove a tree with /bin/rm -rf. Returns 0 on success. */
int bench_rm_rf(const char *path);

/* Flush the filesystem that holds @path to disk (syncfs). */
int bench_syncfs(const char *path);

/* Write a whole file; returns 0, or -1 with a message on stderr. */
int bench_write_file(const char *path, const void *data, size_t len);

/* A splitmix64 generator: fast, deterministic, good enough for sizes and
 * file contents. */
typedef struct bench_rng {
	uint64_t s;
} bench_rng;

uint64_t bench_rng_next(bench_rng *r);

/* A uniform double in [0, 1). */
double bench_rng_unit(bench_rng *r);

/* Fill @len bytes with the generator's output. */
void bench_rng_fill(bench_rng *r, void *buf, size_t len);

/* Print a message and exit with status 1. */
void bench_die(const char *fmt, ...)
	__attribute__((format(printf, 1, 2), noreturn));

#endif
