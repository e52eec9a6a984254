/* SPDX-License-Identifier: MIT */
/*
 * Helpers the benchmark programs share. See bench-common.h.
 */
#include "bench-common.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef TMPFS_MAGIC
#define TMPFS_MAGIC 0x01021994
#endif

void bench_die(const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

double bench_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

double bench_tv(const struct timeval *tv)
{
	return (double)tv->tv_sec + (double)tv->tv_usec / 1e6;
}

double bench_self_cpu(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return bench_tv(&ru.ru_utime) + bench_tv(&ru.ru_stime);
}

double bench_loadavg(void)
{
	double l = -1.0;
	FILE *f = fopen("/proc/loadavg", "re");

	if (f != NULL) {
		if (fscanf(f, "%lf", &l) != 1)
			l = -1.0;
		fclose(f);
	}
	return l;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

double bench_median(double *v, size_t n)
{
	if (n == 0)
		return 0.0;
	qsort(v, n, sizeof(*v), cmp_double);
	if (n % 2)
		return v[n / 2];
	return (v[n / 2 - 1] + v[n / 2]) / 2.0;
}

char *bench_scratch_dir(const char *prefix)
{
	const char *base = getenv("BENCH_DIR");
	struct statfs sf;
	char *path;

	if (base == NULL || base[0] == '\0')
		base = "/var/tmp";
	if (asprintf(&path, "%s/%s-XXXXXX", base, prefix) < 0)
		return NULL;
	if (mkdtemp(path) == NULL) {
		fprintf(stderr, "cannot make a scratch folder in %s: %s\n",
			base, strerror(errno));
		free(path);
		return NULL;
	}
	if (statfs(path, &sf) == 0 && sf.f_type == TMPFS_MAGIC)
		fprintf(stderr,
			"warning: %s is on tmpfs; sync costs are not real "
			"there (set BENCH_DIR to a folder on a disk)\n",
			path);
	return path;
}

int bench_run(char *const argv[], int quiet)
{
	return bench_run_usage(argv, quiet, NULL);
}

int bench_run_usage(char *const argv[], int quiet, double *cpu_s)
{
	struct rusage ru;
	pid_t pid = fork();
	int status;

	if (pid < 0)
		return -1;
	if (pid == 0) {
		if (quiet) {
			int fd = open("/dev/null", O_WRONLY);
			if (fd >= 0) {
				dup2(fd, STDOUT_FILENO);
				close(fd);
			}
		}
		execv(argv[0], argv);
		_exit(127);
	}
	while (wait4(pid, &status, 0, &ru) < 0)
		if (errno != EINTR)
			return -1;
	if (cpu_s != NULL)
		*cpu_s = bench_tv(&ru.ru_utime) + bench_tv(&ru.ru_stime);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int bench_rm_rf(const char *path)
{
	char *argv[] = {"/bin/rm", "-rf", "--", (char *)path, NULL};
	return bench_run(argv, 0) == 0 ? 0 : -1;
}

int bench_syncfs(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int r;

	if (fd < 0)
		return -1;
	r = syncfs(fd);
	close(fd);
	return r;
}

int bench_write_file(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	const char *p = data;

	if (fd < 0) {
		fprintf(stderr, "cannot create %s: %s\n", path,
			strerror(errno));
		return -1;
	}
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			fprintf(stderr, "cannot write %s: %s\n", path,
				strerror(errno));
			close(fd);
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return close(fd);
}

uint64_t bench_rng_next(bench_rng *r)
{
	uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

double bench_rng_unit(bench_rng *r)
{
	return (double)(bench_rng_next(r) >> 11) / 9007199254740992.0;
}

void bench_rng_fill(bench_rng *r, void *buf, size_t len)
{
	unsigned char *p = buf;

	while (len >= 8) {
		uint64_t v = bench_rng_next(r);
		memcpy(p, &v, 8);
		p += 8;
		len -= 8;
	}
	if (len > 0) {
		uint64_t v = bench_rng_next(r);
		memcpy(p, &v, len);
	}
}
