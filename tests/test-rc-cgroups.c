/* SPDX-License-Identifier: MIT */
/*
 * Resource-control handles on the real cgroup hierarchies of this host:
 * OOM kills, pids and cpu limits, freezing, killing, removing, spawning,
 * and cgroup2 on its own. Needs root and cgroups; exits 77 (skip) when the
 * host lacks them.
 *
 * Every group lives under a parent named lamina-test-<pid> that the runner
 * creates before each test case and removes, with everything below it,
 * after the case and again before it exits, whatever the tests did.
 *
 * The test binary doubles as the programs the tests start in groups: run
 * with --lt-<what> as its first argument it allocates, spins, pauses or
 * forks instead of running the suite.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "support.h"

/* Room for a mount point, and for a group's folder. */
#define MOUNT_MAX 512
#define DIR_MAX	  1024

static char parent[64];
static char self_exe[PATH_MAX];
static bool have_v1;

/* The modes the looped tests run in. */
static const unsigned int modes[] = {LAM_RC_MODE_AUTO, LAM_RC_MODE_V1};

/* The helper programs. */

static int helper(int argc, char **argv)
{
	const char *what = argv[1];
	int n = argc > 2 ? atoi(argv[2]) : 0;

	if (strcmp(what, "--lt-alloc") == 0) {
		/* Touch far more memory than the limit allows. */
		size_t size = (size_t)1 << 30;
		char *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED)
			_exit(2);
		for (size_t i = 0; i < size; i += 4096)
			p[i] = 1;
		_exit(0);
	}
	if (strcmp(what, "--lt-spin") == 0) {
		volatile unsigned long spin = 0;
		for (;;)
			spin++;
	}
	if (strcmp(what, "--lt-pause") == 0) {
		for (;;)
			pause();
	}
	if (strcmp(what, "--lt-forklimit") == 0 ||
	    strcmp(what, "--lt-forkpause") == 0) {
		bool limit = strcmp(what, "--lt-forklimit") == 0;
		for (int i = 0; i < n; i++) {
			pid_t pid = fork();
			if (pid == 0) {
				for (;;)
					pause();
			}
			if (pid < 0 && limit)
				_exit(errno == EAGAIN ? 100 + i : 99);
		}
		if (limit)
			_exit(98);
		for (;;)
			pause();
	}
	return 2;
}

/* The cgroup mounts of this host, from mountinfo. */
static int cgroup_mounts(char mounts[][MOUNT_MAX], int max)
{
	FILE *f = fopen("/proc/self/mountinfo", "r");
	char line[4096];
	int n = 0;

	if (!f)
		return 0;
	while (n < max && fgets(line, sizeof(line), f)) {
		char *sep = strstr(line, " - ");
		char mount[MOUNT_MAX];

		if (!sep || (strncmp(sep, " - cgroup ", 10) != 0 &&
			     strncmp(sep, " - cgroup2 ", 11) != 0))
			continue;
		if (sscanf(line, "%*s %*s %*s %*s %511s", mount) == 1)
			snprintf(mounts[n++], MOUNT_MAX, "%.*s", MOUNT_MAX - 1,
				 mount);
	}
	fclose(f);
	return n;
}

static void put(const char *dir, const char *file, const char *value)
{
	char path[PATH_MAX + 64];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	if (write(fd, value, strlen(value)) < 0) {
		/* Best effort: the clean-up goes on regardless. */
	}
	close(fd);
}

/* Remove a group folder and everything below it, killing what runs there;
 * the test's own safety net, independent of the library. */
static void scrub(const char *dir)
{
	char path[DIR_MAX];
	DIR *d = opendir(dir);
	struct dirent *e;

	if (!d)
		return;
	while ((e = readdir(d))) {
		if (e->d_type != DT_DIR || e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		scrub(path);
	}
	closedir(d);
	put(dir, "cgroup.freeze", "0");
	put(dir, "freezer.state", "THAWED");
	put(dir, "cgroup.kill", "1");
	for (int tries = 0; tries < 300; tries++) {
		FILE *f;
		int pid;

		snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
		f = fopen(path, "r");
		while (f && fscanf(f, "%d", &pid) == 1)
			kill(pid, SIGKILL);
		if (f)
			fclose(f);
		if (rmdir(dir) == 0 || errno == ENOENT)
			return;
		usleep(10000);
	}
	fprintf(stderr, "warning: could not remove %s: %s\n", dir,
		strerror(errno));
}

/* Let everything below @dir run again and kill it, before any folder is
 * removed: a process frozen in one hierarchy would keep the others busy. */
static void release(const char *dir)
{
	char path[DIR_MAX];
	DIR *d = opendir(dir);
	struct dirent *e;
	FILE *f;
	int pid;

	if (!d)
		return;
	put(dir, "cgroup.freeze", "0");
	put(dir, "freezer.state", "THAWED");
	put(dir, "cgroup.kill", "1");
	snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
	f = fopen(path, "r");
	while (f && fscanf(f, "%d", &pid) == 1)
		kill(pid, SIGKILL);
	if (f)
		fclose(f);
	while ((e = readdir(d))) {
		if (e->d_type != DT_DIR || e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		release(path);
	}
	closedir(d);
}

static void scrub_all(void)
{
	char mounts[32][MOUNT_MAX], dir[DIR_MAX];
	int n = cgroup_mounts(mounts, 32);

	for (int i = 0; i < n; i++) {
		if (snprintf(dir, sizeof(dir), "%s/%s", mounts[i], parent) <
		    (int)sizeof(dir))
			release(dir);
	}
	for (int i = 0; i < n; i++) {
		if (snprintf(dir, sizeof(dir), "%s/%s", mounts[i], parent) <
		    (int)sizeof(dir))
			scrub(dir);
	}
}

/* Unchecked fixture: runs in the runner, around each test case. */
static void make_parent(void)
{
	lam_rc *rc;

	scrub_all();
	LT_OK(lam_rc_create(&rc, NULL, parent, NULL));
	lam_rc_free(rc);
}

static void drop_parent(void)
{
	scrub_all();
}

/* Helpers for the tests. */

/* The text of a /proc or cgroup file (their sizes read as 0 or 4096);
 * the caller frees it. */
static char *read_text(const char *path)
{
	char *buf = calloc(1, 65536);
	size_t len = 0;
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	ck_assert_ptr_nonnull(buf);
	ck_assert_msg(fd >= 0, "%s: %s", path, strerror(errno));
	while ((n = read(fd, buf + len, 65535 - len)) > 0)
		len += (size_t)n;
	close(fd);
	return buf;
}

/* A new group under the parent; in V1 mode its name gets "-v1", so that
 * a looped test that failed in one mode leaves the other a clean slate. */
static lam_rc *group(unsigned int mode, const char *name)
{
	lam_rc_options o = LAM_RC_OPTIONS_INIT;
	char full[64];
	lam_rc *rc;

	o.mode = mode;
	snprintf(full, sizeof(full), "%s%s", name,
		 mode == LAM_RC_MODE_V1 ? "-v1" : "");
	LT_OK(lam_rc_create(&rc, parent, full, &o));
	return rc;
}

static pid_t spawn_helper(lam_rc *rc, const char *what, const char *arg)
{
	char *argv[] = {"lamina-test-helper", (char *)what, (char *)arg, NULL};
	pid_t pid;

	LT_OK(lam_rc_spawn(&pid, rc, self_exe, argv, NULL));
	ck_assert_int_gt(pid, 0);
	return pid;
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static size_t npids(lam_rc *rc)
{
	pid_t *pids;
	size_t n;

	LT_OK(lam_rc_pids(&pids, &n, rc));
	lam_free(pids);
	return n;
}

/* Wait until the group holds @want processes (or, with @at_least, that
 * many or more); fail after 5 s. */
static void wait_pids(lam_rc *rc, size_t want, bool at_least)
{
	int64_t end = now_ms() + 5000;
	size_t n;

	while ((n = npids(rc)) != want && !(at_least && n >= want)) {
		ck_assert_msg(now_ms() < end, "%zu processes, waited for %zu",
			      n, want);
		usleep(5000);
	}
}

static void assert_killed(pid_t pid)
{
	int st;

	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert_msg(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL,
		      "pid %d ended with status %#x", (int)pid, st);
}

static void finish(lam_rc *rc)
{
	LT_OK(lam_rc_kill(rc));
	LT_OK(lam_rc_remove(rc, 5000));
	lam_rc_free(rc);
}

static uint64_t *shared_counter(void)
{
	void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ck_assert(p != MAP_FAILED);
	return p;
}

/* A child of the test that counts as fast as it can. */
static pid_t counting_child(volatile uint64_t *counter)
{
	pid_t pid = fork();

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		for (;;)
			(*counter)++;
	}
	return pid;
}

static void assert_frozen_then_thawed(lam_rc *rc, volatile uint64_t *counter)
{
	int64_t end = now_ms() + 5000;
	uint64_t c1, c2, c3;

	while (*counter == 0)
		ck_assert(now_ms() < end);
	LT_OK(lam_rc_freeze(rc, 5000));
	/* Nothing can start in a frozen group. */
	char *argv[] = {"true", NULL};
	pid_t pid;
	LT_FAILS(lam_rc_spawn(&pid, rc, "true", argv, NULL), LAM_EBUSY,
		 "is frozen");
	c1 = *counter;
	usleep(300000);
	c2 = *counter;
	ck_assert_msg(c1 == c2, "a frozen child counted from %llu to %llu",
		      (unsigned long long)c1, (unsigned long long)c2);
	LT_OK(lam_rc_thaw(rc));
	while ((c3 = *counter) == c2)
		ck_assert_msg(now_ms() < end,
			      "a thawed child made no progress");
}

/* What /proc/PID/cgroup says, for a spawned `cat /proc/self/cgroup`. */
static char *cgroup_of_spawned(lam_rc *rc)
{
	static char out[8192];
	char *argv[] = {"cat", "/proc/self/cgroup", NULL};
	int fds[2], saved, st;
	size_t len = 0;
	ssize_t n;
	pid_t pid;

	ck_assert_int_eq(pipe(fds), 0);
	fflush(stdout);
	saved = dup(1);
	dup2(fds[1], 1);
	close(fds[1]);
	int r = lam_rc_spawn(&pid, rc, "cat", argv, NULL);
	dup2(saved, 1);
	close(saved);
	LT_OK(r);
	while ((n = read(fds[0], out + len, sizeof(out) - 1 - len)) > 0)
		len += (size_t)n;
	out[len] = '\0';
	close(fds[0]);
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	return out;
}

/* Whether /proc/self/cgroup text puts the controller (v1 name, or "" for
 * cgroup2) in the group. */
static bool in_group(const char *text, const char *ctrl, const char *path)
{
	char want[256];

	snprintf(want, sizeof(want), ":%s:/%s\n", ctrl, path);
	return strstr(text, want) != NULL;
}

/* The tests. */

START_TEST(test_oom_kill_is_reported_through_the_handle)
{
	lam_rc *rc = group(modes[_i], "oom");
	lam_rc_usage u = LAM_RC_USAGE_INIT;
	struct pollfd p = {.events = POLLIN};
	pid_t pid;
	int st;

	LT_OK(lam_rc_set_memory_max(rc, 64 << 20));
	if (lam_rc_cap_check(rc, LAM_RC_CAP_MEMORY_SWAP_MAX) == 0)
		LT_OK(lam_rc_set_memory_swap_max(rc, 0));
	LT_OK(lam_rc_event_fd(&p.fd, rc));
	ck_assert_int_eq(poll(&p, 1, 0), 0);
	pid = spawn_helper(rc, "--lt-alloc", NULL);
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert_msg(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL,
		      "the child ended with status %#x, not an OOM kill", st);
	ck_assert_int_eq(poll(&p, 1, 5000), 1);
	LT_OK(lam_rc_usage_get(rc, &u));
	ck_assert(u.known & LAM_RC_USAGE_OOM_KILL);
	ck_assert_uint_ge(u.oom_kill, 1);
	if (u.known & LAM_RC_USAGE_OOM)
		ck_assert_uint_ge(u.oom, 1);
	/* cgroup2 counts limit hits in memory.events; v1's memory.failcnt
	 * stays 0 on some kernels, so it is only reported there. */
	if (lam_rc_get_mode(rc) == LAM_RC_MODE_V2)
		ck_assert_uint_ge(u.memory_max_hits, 1);
	/* memory.peak needs Linux 5.19 on cgroup2. */
	if (u.known & LAM_RC_USAGE_MEMORY_PEAK) {
		ck_assert_uint_le(u.memory_peak, 64 << 20);
		ck_assert_uint_ge(u.memory_peak, 32 << 20);
	}
	LT_OK(lam_rc_event_clear(rc));
	finish(rc);
}
END_TEST

START_TEST(test_fork_past_pids_limit_fails_and_others_run_on)
{
	lam_rc *rc = group(LAM_RC_MODE_AUTO, "pids");
	lam_rc_usage u = LAM_RC_USAGE_INIT;
	pid_t keeper, forker;
	int st;

	LT_OK(lam_rc_set_pids_max(rc, 8));
	keeper = spawn_helper(rc, "--lt-pause", NULL);
	forker = spawn_helper(rc, "--lt-forklimit", "50");
	ck_assert_int_eq(waitpid(forker, &st, 0), forker);
	ck_assert_msg(WIFEXITED(st), "the forker ended with status %#x", st);
	/* 100 + the forks that worked: fork failed with EAGAIN. */
	ck_assert_int_ge(WEXITSTATUS(st), 101);
	ck_assert_int_le(WEXITSTATUS(st), 106);
	/* The keeper was not touched. */
	ck_assert_int_eq(waitpid(keeper, &st, WNOHANG), 0);
	ck_assert_int_eq(kill(keeper, 0), 0);
	LT_OK(lam_rc_usage_get(rc, &u));
	ck_assert(u.known & LAM_RC_USAGE_PIDS);
	ck_assert_uint_le(u.pids_current, 8);
	ck_assert_uint_ge(u.pids_current, 2);
	if (u.known & LAM_RC_USAGE_PIDS_MAX_HITS)
		ck_assert_uint_ge(u.pids_max_hits, 1);
	finish(rc);
	assert_killed(keeper);
}
END_TEST

START_TEST(test_cpu_quota_of_20_percent_holds_a_busy_loop)
{
	lam_rc *rc = group(LAM_RC_MODE_AUTO, "cpu");
	lam_rc_usage u0 = LAM_RC_USAGE_INIT, u1 = LAM_RC_USAGE_INIT;
	int64_t t0, t1;
	pid_t spin;

	LT_OK(lam_rc_set_cpu_max(rc, 20000, 100000));
	spin = spawn_helper(rc, "--lt-spin", NULL);
	usleep(300000);
	LT_OK(lam_rc_usage_get(rc, &u0));
	t0 = now_ms();
	usleep(1000000);
	LT_OK(lam_rc_usage_get(rc, &u1));
	t1 = now_ms();
	ck_assert(u1.known & LAM_RC_USAGE_CPU);
	double share = (double)(u1.cpu_usage_usec - u0.cpu_usage_usec) /
		       (double)((t1 - t0) * 1000);
	printf("cpu: a busy loop under a 20%% quota used %.1f%% of a cpu "
	       "over %lld ms\n",
	       share * 100, (long long)(t1 - t0));
	ck_assert_msg(share <= 0.30, "the busy loop used %.1f%% of a cpu",
		      share * 100);
	ck_assert_msg(share >= 0.02, "the busy loop did not run (%.1f%%)",
		      share * 100);
	ck_assert_uint_ge(u1.cpu_user_usec, u0.cpu_user_usec);
	if (u1.known & LAM_RC_USAGE_CPU_THROTTLED)
		ck_assert_uint_gt(u1.cpu_throttled_usec, u0.cpu_throttled_usec);
	finish(rc);
	assert_killed(spin);
}
END_TEST

START_TEST(test_frozen_child_makes_no_progress_until_thawed)
{
	lam_rc *rc = group(modes[_i], "freeze");
	volatile uint64_t *counter = shared_counter();
	char want[128];
	pid_t pid = counting_child(counter);

	LT_OK(lam_rc_attach(rc, pid));
	/* The attached child is listed, and /proc agrees. */
	pid_t *pids;
	size_t n;
	LT_OK(lam_rc_pids(&pids, &n, rc));
	ck_assert_uint_eq(n, 1);
	ck_assert_int_eq(pids[0], pid);
	lam_free(pids);
	snprintf(want, sizeof(want), "/proc/%d/cgroup", (int)pid);
	char *text = read_text(want);
	snprintf(want, sizeof(want), "%s", lam_rc_path(rc));
	if (have_v1)
		ck_assert_msg(in_group(text, "freezer", want), "%s", text);
	free(text);
	assert_frozen_then_thawed(rc, counter);
	finish(rc);
	assert_killed(pid);
}
END_TEST

START_TEST(test_kill_empties_the_group)
{
	lam_rc *rc = group(modes[_i], "kill");
	pid_t a = spawn_helper(rc, "--lt-pause", NULL);
	pid_t b = spawn_helper(rc, "--lt-forkpause", "5");

	wait_pids(rc, 7, false);
	LT_OK(lam_rc_kill(rc));
	wait_pids(rc, 0, false);
	assert_killed(a);
	assert_killed(b);
	LT_OK(lam_rc_remove(rc, 5000));
	lam_rc_free(rc);
}
END_TEST

START_TEST(test_remove_waits_and_leaves_nothing_behind)
{
	lam_rc *rc = group(modes[_i], "rm");
	char mounts[32][MOUNT_MAX], dir[DIR_MAX];
	int nm = cgroup_mounts(mounts, 32), present = 0;
	pid_t pid = spawn_helper(rc, "--lt-pause", NULL);

	LT_FAILS(lam_rc_remove(rc, 100), LAM_EBUSY, "1 process still in");
	for (int i = 0; i < nm; i++) {
		if (snprintf(dir, sizeof(dir), "%s/%s", mounts[i],
			     lam_rc_path(rc)) >= (int)sizeof(dir))
			continue;
		present += lt_exists(dir);
	}
	ck_assert_int_ge(present, 1);
	LT_OK(lam_rc_kill(rc));
	LT_OK(lam_rc_remove(rc, 5000));
	assert_killed(pid);
	for (int i = 0; i < nm; i++) {
		if (snprintf(dir, sizeof(dir), "%s/%s", mounts[i],
			     lam_rc_path(rc)) >= (int)sizeof(dir))
			continue;
		ck_assert_msg(!lt_exists(dir), "%s is left behind", dir);
	}
	LT_FAILS(lam_rc_set_pids_max(rc, 3), LAM_ENOTFOUND, "was removed");
	LT_FAILS(lam_rc_kill(rc), LAM_ENOTFOUND, "was removed");
	lam_rc_free(rc);
}
END_TEST

START_TEST(test_spawned_program_starts_inside_the_group)
{
	lam_rc *rc = group(modes[_i], "spawn");
	char path[128];
	const char *text = cgroup_of_spawned(rc);

	snprintf(path, sizeof(path), "%s", lam_rc_path(rc));
	if (have_v1) {
		ck_assert_msg(in_group(text, "memory", path), "%s", text);
		ck_assert_msg(in_group(text, "pids", path), "%s", text);
	}
	ck_assert_msg(in_group(text, "", path) ==
			      (lam_rc_get_mode(rc) != LAM_RC_MODE_V1),
		      "%s", text);
	LT_OK(lam_rc_remove(rc, 5000));
	lam_rc_free(rc);
}
END_TEST

START_TEST(test_open_attach_and_bad_pids)
{
	lam_rc *rc = group(LAM_RC_MODE_AUTO, "open"), *other;
	char value[DIR_MAX];

	LT_FAILS(lam_rc_create(&other, parent, "open", NULL), LAM_EEXISTS,
		 "already exists");
	LT_FAILS(lam_rc_open(&other, parent, "absent", NULL), LAM_ENOTFOUND,
		 "does not exist");
	LT_OK(lam_rc_open(&other, parent, "open", NULL));
	ck_assert_int_eq(lam_rc_get_mode(other), lam_rc_get_mode(rc));
	LT_OK(lam_rc_set_pids_max(other, 33));
	lam_rc_free(other);

	pid_t gone = fork();
	if (gone == 0)
		_exit(0);
	ck_assert_int_eq(waitpid(gone, NULL, 0), gone);
	LT_FAILS(lam_rc_attach(rc, gone), LAM_ENOTFOUND, "no such process");
	LT_FAILS(lam_rc_attach(rc, 0), LAM_EINVAL, NULL);
	ck_assert_uint_eq(npids(rc), 0);

	/* cpuset and weights reach the kernel's files. */
	LT_OK(lam_rc_set_cpuset_cpus(rc, "0"));
	LT_OK(lam_rc_set_cpuset_mems(rc, "0"));
	LT_FAILS(lam_rc_set_cpuset_cpus(rc, "4000"), LAM_EINVAL,
		 "the kernel refused '4000'");
	LT_OK(lam_rc_set_cpu_weight(rc, 100));
	if (lam_rc_cap_check(rc, LAM_RC_CAP_IO_WEIGHT) == 0)
		LT_OK(lam_rc_set_io_weight(rc, 100));
	else
		ck_assert_int_eq(lam_error_last()->code, LAM_EUNAVAILABLE);
	snprintf(value, sizeof(value), "/sys/fs/cgroup/pids/%s/pids.max",
		 lam_rc_path(rc));
	if (have_v1 && lt_exists(value)) {
		char *text = read_text(value);
		ck_assert_str_eq(text, "33\n");
		free(text);
	}
	LT_OK(lam_rc_remove(rc, 5000));
	lam_rc_free(rc);
}
END_TEST

/* The first block device of the host, as major:minor, or false. */
static bool block_device(unsigned int *major, unsigned int *minor)
{
	DIR *d = opendir("/sys/block");
	struct dirent *e;
	bool found = false;

	while (d && !found && (e = readdir(d))) {
		char path[512];
		FILE *f;

		if (e->d_name[0] == '.' || strncmp(e->d_name, "loop", 4) == 0)
			continue;
		snprintf(path, sizeof(path), "/sys/block/%s/dev", e->d_name);
		f = fopen(path, "r");
		if (f) {
			found = fscanf(f, "%u:%u", major, minor) == 2;
			fclose(f);
		}
	}
	if (d)
		closedir(d);
	return found;
}

START_TEST(test_io_max_on_a_real_device)
{
	lam_rc *rc = group(LAM_RC_MODE_AUTO, "io");
	unsigned int major, minor;

	if (lam_rc_cap_check(rc, LAM_RC_CAP_IO_MAX) < 0) {
		LT_FAILS(lam_rc_set_io_max(rc, 8, 0, 1, 1, 1, 1),
			 LAM_EUNAVAILABLE, "io.max: unavailable");
	} else {
		LT_FAILS(lam_rc_set_io_max(rc, 4095, 4095, 1, 1, 1, 1),
			 LAM_ENOTFOUND, "no such block device");
		if (block_device(&major, &minor))
			LT_OK(lam_rc_set_io_max(rc, major, minor, 1 << 20,
						LAM_RC_MAX, LAM_RC_MAX, 500));
	}
	LT_OK(lam_rc_remove(rc, 5000));
	lam_rc_free(rc);
}
END_TEST

/* cgroup2 on its own. */

static void v2_controllers(char *out, size_t size)
{
	char mounts[32][MOUNT_MAX], path[DIR_MAX];
	int n = cgroup_mounts(mounts, 32);
	FILE *f = NULL;

	out[0] = '\0';
	for (int i = 0; i < n && !f; i++) {
		snprintf(path, sizeof(path), "%s/cgroup.controllers",
			 mounts[i]);
		f = fopen(path, "r");
	}
	if (f) {
		if (!fgets(out, (int)size, f))
			out[0] = '\0';
		fclose(f);
	}
}

START_TEST(test_v2_create_attach_freeze_kill)
{
	lam_rc *rc = group(LAM_RC_MODE_V2, "v2");
	volatile uint64_t *counter = shared_counter();
	char path[128], proc[64];
	lam_rc_usage u = LAM_RC_USAGE_INIT;

	ck_assert_int_eq(lam_rc_get_mode(rc), LAM_RC_MODE_V2);
	pid_t pid = counting_child(counter);
	LT_OK(lam_rc_attach(rc, pid));
	snprintf(proc, sizeof(proc), "/proc/%d/cgroup", (int)pid);
	snprintf(path, sizeof(path), "%s/v2", parent);
	char *text = read_text(proc);
	ck_assert_msg(in_group(text, "", path), "%s", text);
	free(text);
	assert_frozen_then_thawed(rc, counter);
	LT_OK(lam_rc_usage_get(rc, &u));
	ck_assert(u.known & LAM_RC_USAGE_CPU);
	ck_assert_uint_gt(u.cpu_usage_usec, 0);
	LT_OK(lam_rc_kill(rc));
	wait_pids(rc, 0, false);
	assert_killed(pid);
	LT_OK(lam_rc_remove(rc, 5000));
	lam_rc_free(rc);
}
END_TEST

START_TEST(test_v2_spawn_goes_straight_into_the_group)
{
	lam_rc *rc = group(LAM_RC_MODE_V2, "v2spawn");
	char path[128];
	const char *text = cgroup_of_spawned(rc);

	snprintf(path, sizeof(path), "%s/v2spawn", parent);
	ck_assert_msg(in_group(text, "", path), "%s", text);
	if (have_v1)
		ck_assert_msg(!in_group(text, "memory", path), "%s", text);
	LT_OK(lam_rc_remove(rc, 5000));
	lam_rc_free(rc);
}
END_TEST

static bool listed_has(const char *listed, const char *word)
{
	size_t len = strlen(word);

	for (const char *p = listed; *p;) {
		p += strspn(p, " \n");
		size_t n = strcspn(p, " \n");
		if (n == len && strncmp(p, word, len) == 0)
			return true;
		p += n;
	}
	return false;
}

/* Check one setting's result: fine where cgroup2 has the controller, and
 * a clear refusal naming the setting and the reason where it has not. */
static void check_setting(const char *listed, const char *ctrl,
			  const char *setting, int rc)
{
	const char *msg = lam_error_last()->message;
	char want[64];

	if (listed_has(listed, ctrl)) {
		ck_assert_msg(rc == 0, "%s: %s", setting, msg);
		return;
	}
	snprintf(want, sizeof(want), "%s: unavailable", setting);
	ck_assert_msg(rc == LAM_EUNAVAILABLE,
		      "%s gave %d without the %s "
		      "controller",
		      setting, rc, ctrl);
	ck_assert_msg(strstr(msg, want) && strstr(msg, ctrl) &&
			      strstr(msg, "not available in the cgroup2 "
					  "hierarchy"),
		      "%s", msg);
}

START_TEST(test_v2_missing_controllers_give_a_clear_error)
{
	lam_rc *rc = group(LAM_RC_MODE_V2, "v2caps");
	char listed[512];
	int fd;

	v2_controllers(listed, sizeof(listed));
	check_setting(listed, "memory", "memory.max",
		      lam_rc_set_memory_max(rc, 1 << 30));
	check_setting(listed, "memory", "memory.high",
		      lam_rc_set_memory_high(rc, 1 << 30));
	check_setting(listed, "cpu", "cpu.weight",
		      lam_rc_set_cpu_weight(rc, 100));
	check_setting(listed, "cpu", "cpu.max",
		      lam_rc_set_cpu_max(rc, 50000, 100000));
	check_setting(listed, "pids", "pids.max", lam_rc_set_pids_max(rc, 100));
	check_setting(listed, "cpuset", "cpuset.cpus",
		      lam_rc_set_cpuset_cpus(rc, "0"));
	if (!listed_has(listed, "memory"))
		LT_FAILS(lam_rc_event_fd(&fd, rc), LAM_EUNAVAILABLE,
			 "events: unavailable");
	if (!listed_has(listed, "io"))
		LT_FAILS(lam_rc_cap_check(rc, LAM_RC_CAP_IO_MAX),
			 LAM_EUNAVAILABLE, "io.max: unavailable");
	LT_OK(lam_rc_cap_check(rc, LAM_RC_CAP_FREEZE));
	LT_OK(lam_rc_cap_check(rc, LAM_RC_CAP_KILL));
	LT_OK(lam_rc_remove(rc, 5000));
	lam_rc_free(rc);
}
END_TEST

/* Whether this host can run the tests: a group with the limits they need
 * can be made under the parent in @mode. */
static bool usable(unsigned int mode, const char **why)
{
	static char reason[1100];
	static const lam_rc_cap needed[] = {
		LAM_RC_CAP_MEMORY_MAX, LAM_RC_CAP_PIDS_MAX, LAM_RC_CAP_CPU_MAX,
		LAM_RC_CAP_FREEZE,     LAM_RC_CAP_EVENTS,
	};
	lam_rc_options o = LAM_RC_OPTIONS_INIT;
	lam_rc *rc;
	bool ok = true;

	o.mode = mode;
	if (lam_rc_create(&rc, parent, "probe", &o) < 0) {
		snprintf(reason, sizeof(reason), "%s",
			 lam_error_last()->message);
		*why = reason;
		return false;
	}
	for (size_t i = 0; ok && mode != LAM_RC_MODE_V2 &&
			   i < sizeof(needed) / sizeof(needed[0]);
	     i++) {
		if (lam_rc_cap_check(rc, needed[i]) < 0) {
			snprintf(reason, sizeof(reason), "%s",
				 lam_error_last()->message);
			*why = reason;
			ok = false;
		}
	}
	lam_rc_remove(rc, 1000);
	lam_rc_free(rc);
	return ok;
}

int main(int argc, char **argv)
{
	const char *why = NULL;
	bool have_v2;
	int status;

	if (argc > 1 && strncmp(argv[1], "--lt-", 5) == 0)
		return helper(argc, argv);
	if (geteuid() != 0) {
		printf("skipped: the cgroup tests need root\n");
		return 77;
	}
	ssize_t len =
		readlink("/proc/self/exe", self_exe, sizeof(self_exe) - 1);
	if (len < 0)
		return 1;
	self_exe[len] = '\0';
	snprintf(parent, sizeof(parent), "lamina-test-%d", (int)getpid());

	lam_rc *rc;
	scrub_all();
	if (lam_rc_create(&rc, NULL, parent, NULL) < 0) {
		printf("skipped: cannot create a cgroup here: %s\n",
		       lam_error_last()->message);
		return 77;
	}
	lam_rc_free(rc);
	bool auto_ok = usable(LAM_RC_MODE_AUTO, &why);
	if (!auto_ok)
		printf("skipped: %s\n", why);
	have_v1 = auto_ok && usable(LAM_RC_MODE_V1, &why);
	if (auto_ok && !have_v1)
		printf("note: no cgroup v1 runs: %s\n", why);
	have_v2 = usable(LAM_RC_MODE_V2, &why);
	if (!have_v2)
		printf("note: no cgroup2 runs: %s\n", why);
	scrub_all();
	if (!auto_ok)
		return 77;

	Suite *s = suite_create("rc-cgroups");
	TCase *host = tcase_create("host");
	int nmodes = have_v1 ? 2 : 1;
	tcase_add_unchecked_fixture(host, make_parent, drop_parent);
	tcase_set_timeout(host, 60);
	tcase_add_loop_test(host, test_oom_kill_is_reported_through_the_handle,
			    0, nmodes);
	tcase_add_test(host, test_fork_past_pids_limit_fails_and_others_run_on);
	tcase_add_test(host, test_cpu_quota_of_20_percent_holds_a_busy_loop);
	tcase_add_loop_test(host,
			    test_frozen_child_makes_no_progress_until_thawed, 0,
			    nmodes);
	tcase_add_loop_test(host, test_kill_empties_the_group, 0, nmodes);
	tcase_add_loop_test(host, test_remove_waits_and_leaves_nothing_behind,
			    0, nmodes);
	tcase_add_loop_test(host, test_spawned_program_starts_inside_the_group,
			    0, nmodes);
	tcase_add_test(host, test_open_attach_and_bad_pids);
	tcase_add_test(host, test_io_max_on_a_real_device);
	suite_add_tcase(s, host);
	if (have_v2) {
		TCase *v2 = tcase_create("cgroup2");
		tcase_add_unchecked_fixture(v2, make_parent, drop_parent);
		tcase_set_timeout(v2, 60);
		tcase_add_test(v2, test_v2_create_attach_freeze_kill);
		tcase_add_test(v2, test_v2_spawn_goes_straight_into_the_group);
		tcase_add_test(v2,
			       test_v2_missing_controllers_give_a_clear_error);
		suite_add_tcase(s, v2);
	}
	status = lt_main(s);
	scrub_all();
	return status;
}
