/* SPDX-License-Identifier: MIT */
/*
 * Resource-control handles without the kernel: names, options, bad values,
 * conversions, and the exact files and values lamina writes, checked
 * against temporary folders laid out like a cgroup2 hierarchy and like
 * cgroup v1 hierarchies. These tests check formats, not the kernel; the
 * rc-cgroups suite runs the same calls on the real hierarchies.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "support.h"
#include "util/internal.h"

#define ALL_V2 "cpuset cpu io memory pids\n"

/* The interface files the kernel creates in a new cgroup2 group, with the
 * values a fresh group holds. */
static const char *const v2_files[][2] = {
	{"cgroup.procs", ""},
	{"cgroup.freeze", "0\n"},
	{"cgroup.kill", ""},
	{"cgroup.events", "populated 0\nfrozen 0\n"},
	{"memory.max", "max\n"},
	{"memory.high", "max\n"},
	{"memory.swap.max", "max\n"},
	{"memory.current", "0\n"},
	{"memory.peak", "0\n"},
	{"memory.events", "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n"},
	{"cpu.weight", "100\n"},
	{"cpu.max", "max 100000\n"},
	{"cpu.stat", "usage_usec 0\nuser_usec 0\nsystem_usec 0\n"},
	{"cpuset.cpus", "\n"},
	{"cpuset.mems", "\n"},
	{"pids.max", "max\n"},
	{"pids.current", "0\n"},
	{"pids.events", "max 0\n"},
	{"io.weight", "default 100\n"},
	{"io.max", ""},
	{"io.stat", ""},
};

/* A cgroup2 root at cg2/ whose root and parent group "lamina-test" offer
 * @controllers, all enabled for their children. */
static void fake_v2(const char *controllers)
{
	lt_write(lt_path("cg2/cgroup.controllers"), controllers);
	lt_write(lt_path("cg2/cgroup.subtree_control"), controllers);
	lt_write(lt_path("cg2/lamina-test/cgroup.controllers"), controllers);
	lt_write(lt_path("cg2/lamina-test/cgroup.subtree_control"),
		 controllers);
}

static lam_rc_options v2_options(void)
{
	lam_rc_options o = LAM_RC_OPTIONS_INIT;
	o.mode = LAM_RC_MODE_V2;
	o.v2_root = lt_path("cg2");
	return o;
}

/* Create lamina-test/@name in the fake cgroup2 root, then give it the
 * files the kernel would (all but those named in @skip). */
static lam_rc *fake_v2_group(const char *name, const char *skip)
{
	lam_rc_options o = v2_options();
	lam_rc *rc;

	LT_OK(lam_rc_create(&rc, "lamina-test", name, &o));
	for (size_t i = 0; i < sizeof(v2_files) / sizeof(v2_files[0]); i++) {
		if (skip && strstr(skip, v2_files[i][0]))
			continue;
		lt_write(lt_path("cg2/lamina-test/%s/%s", name, v2_files[i][0]),
			 v2_files[i][1]);
	}
	return rc;
}

static void assert_file(const char *path, const char *want)
{
	char *got = lt_read(path, NULL);

	ck_assert_msg(got != NULL, "%s: missing", path);
	ck_assert_msg(strcmp(got, want) == 0, "%s holds '%s', not '%s'", path,
		      got, want);
	free(got);
}

START_TEST(test_bad_names_are_refused)
{
	static const char *const bad_names[] = {
		"",	  ".",	    "..", "/..",	  "a/b", ".hidden",
		"sp ace", "tab\tx", "é",  "cgroup.procs", "x\n",
	};
	static const char *const bad_parents[] = {
		"a/../b", "/..", "..", "a//b", "a/", "a/./b", "a b", "//",
	};
	lam_rc_options o = v2_options();
	lam_rc *rc = (lam_rc *)1;
	char longname[300];

	fake_v2(ALL_V2);
	for (size_t i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++) {
		LT_FAILS(lam_rc_create(&rc, "lamina-test", bad_names[i], &o),
			 LAM_EBADNAME, "group name");
		ck_assert_ptr_null(rc);
	}
	for (size_t i = 0; i < sizeof(bad_parents) / sizeof(bad_parents[0]);
	     i++)
		LT_FAILS(lam_rc_create(&rc, bad_parents[i], "g", &o),
			 LAM_EBADNAME, "parent group");
	LT_FAILS(lam_rc_create(&rc, "lamina-test/..", "g", &o), LAM_EBADNAME,
		 "'..'");
	LT_FAILS(lam_rc_create(&rc, "lamina-test", NULL, &o), LAM_EBADNAME,
		 NULL);
	memset(longname, 'a', 256);
	longname[256] = '\0';
	LT_FAILS(lam_rc_create(&rc, "lamina-test", longname, &o), LAM_EBADNAME,
		 "255");
	LT_FAILS(lam_rc_open(&rc, "lamina-test", "../x", &o), LAM_EBADNAME,
		 NULL);
	/* Nothing was created anywhere. */
	ck_assert(!lt_exists(lt_path("cg2/g")));
	ck_assert(!lt_exists(lt_path("cg2/lamina-test/g")));
	ck_assert(!lt_exists(lt_path("cg2/x")));
}
END_TEST

START_TEST(test_bad_options_are_refused)
{
	lam_rc_options o = v2_options();
	lam_rc *rc;

	fake_v2(ALL_V2);
	o.version = 99;
	LT_FAILS(lam_rc_create(&rc, "lamina-test", "g", &o), LAM_EINVAL,
		 "version");
	o = v2_options();
	o.mode = LAM_RC_MODE_HYBRID;
	LT_FAILS(lam_rc_create(&rc, "lamina-test", "g", &o), LAM_EINVAL,
		 "mode");
	o = v2_options();
	o.flags = 0x80;
	LT_FAILS(lam_rc_create(&rc, "lamina-test", "g", &o), LAM_EINVAL,
		 "flags");
	LT_FAILS(lam_rc_create(NULL, "lamina-test", "g", &o), LAM_EINVAL, NULL);
	o = v2_options();
	o.mode = LAM_RC_MODE_V1;
	LT_FAILS(lam_rc_create(&rc, "lamina-test", "g", &o), LAM_EUNAVAILABLE,
		 "no cgroup v1");
	o = v2_options();
	o.v2_root = lt_path("absent");
	LT_FAILS(lam_rc_create(&rc, "lamina-test", "g", &o), LAM_ENOTFOUND,
		 "absent");
	ck_assert(!lt_exists(lt_path("cg2/lamina-test/g")));
}
END_TEST

START_TEST(test_create_open_and_remove_in_a_fake_v2_root)
{
	lam_rc_options o = v2_options();
	lam_rc *rc, *again;

	fake_v2(ALL_V2);
	LT_FAILS(lam_rc_create(&rc, "missing", "g", &o), LAM_ENOTFOUND,
		 "parent group 'missing' does not exist");
	LT_FAILS(lam_rc_open(&rc, "lamina-test", "g", &o), LAM_ENOTFOUND,
		 "does not exist");
	LT_OK(lam_rc_create(&rc, "/lamina-test", "g", &o));
	ck_assert_str_eq(lam_rc_path(rc), "lamina-test/g");
	ck_assert_int_eq(lam_rc_get_mode(rc), LAM_RC_MODE_V2);
	ck_assert(lt_exists(lt_path("cg2/lamina-test/g")));
	LT_FAILS(lam_rc_create(&again, "lamina-test", "g", &o), LAM_EEXISTS,
		 "already exists");
	ck_assert_ptr_null(again);
	LT_OK(lam_rc_open(&again, "lamina-test", "g", &o));
	ck_assert_str_eq(lam_rc_path(again), "lamina-test/g");

	/* A group with a process in it stays. */
	lt_write(lt_path("cg2/lamina-test/g/cgroup.procs"), "4242\n");
	LT_FAILS(lam_rc_remove(rc, 30), LAM_EBUSY, "1 process still in");
	ck_assert(lt_exists(lt_path("cg2/lamina-test/g")));
	unlink(lt_path("cg2/lamina-test/g/cgroup.procs"));
	LT_OK(lam_rc_remove(rc, 0));
	ck_assert(!lt_exists(lt_path("cg2/lamina-test/g")));
	LT_FAILS(lam_rc_set_pids_max(rc, 5), LAM_ENOTFOUND, "was removed");
	LT_FAILS(lam_rc_remove(rc, 0), LAM_ENOTFOUND, "was removed");
	lam_rc_free(rc);
	/* The other handle sees the group gone. */
	LT_FAILS(lam_rc_set_pids_max(again, 5), LAM_ENOTFOUND,
		 "no longer exists");
	LT_OK(lam_rc_remove(again, 0));
	lam_rc_free(again);
	lam_rc_free(NULL);
	ck_assert_ptr_null(lam_rc_path(NULL));
}
END_TEST

START_TEST(test_v2_settings_write_the_kernel_formats)
{
	lam_rc *rc;

	fake_v2(ALL_V2);
	rc = fake_v2_group("g", NULL);
#define G(f) lt_path("cg2/lamina-test/g/" f)
	LT_OK(lam_rc_set_memory_max(rc, 64 << 20));
	assert_file(G("memory.max"), "67108864");
	LT_OK(lam_rc_set_memory_max(rc, LAM_RC_MAX));
	assert_file(G("memory.max"), "max");
	LT_OK(lam_rc_set_memory_high(rc, 48 << 20));
	assert_file(G("memory.high"), "50331648");
	LT_OK(lam_rc_set_memory_swap_max(rc, 0));
	assert_file(G("memory.swap.max"), "0");
	LT_OK(lam_rc_set_memory_swap_max(rc, LAM_RC_MAX));
	assert_file(G("memory.swap.max"), "max");
	LT_OK(lam_rc_set_cpu_weight(rc, 250));
	assert_file(G("cpu.weight"), "250");
	LT_OK(lam_rc_set_cpu_max(rc, 20000, 100000));
	assert_file(G("cpu.max"), "20000 100000");
	LT_OK(lam_rc_set_cpu_max(rc, 50000, 0));
	assert_file(G("cpu.max"), "50000 100000");
	LT_OK(lam_rc_set_cpu_max(rc, LAM_RC_MAX, 250000));
	assert_file(G("cpu.max"), "max 250000");
	LT_OK(lam_rc_set_cpuset_cpus(rc, "0-3,6"));
	assert_file(G("cpuset.cpus"), "0-3,6");
	LT_OK(lam_rc_set_cpuset_mems(rc, "0"));
	assert_file(G("cpuset.mems"), "0");
	LT_OK(lam_rc_set_pids_max(rc, 64));
	assert_file(G("pids.max"), "64");
	LT_OK(lam_rc_set_pids_max(rc, LAM_RC_MAX));
	assert_file(G("pids.max"), "max");
	LT_OK(lam_rc_set_io_weight(rc, 500));
	assert_file(G("io.weight"), "default 500");
	LT_OK(lam_rc_set_io_max(rc, 8, 16, 1048576, LAM_RC_MAX, LAM_RC_MAX,
				120));
	assert_file(G("io.max"), "8:16 rbps=1048576 wbps=max riops=max "
				 "wiops=120");

	/* Processes and states. */
	LT_OK(lam_rc_attach(rc, getpid()));
	char pid[32];
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	assert_file(G("cgroup.procs"), pid);
	lt_write(G("cgroup.events"), "populated 1\nfrozen 1\n");
	LT_OK(lam_rc_freeze(rc, 1000));
	assert_file(G("cgroup.freeze"), "1");
	char *argv[] = {"true", NULL};
	pid_t child;
	LT_FAILS(lam_rc_spawn(&child, rc, "true", argv, NULL), LAM_EBUSY,
		 "is frozen");
	LT_OK(lam_rc_thaw(rc));
	assert_file(G("cgroup.freeze"), "0");
	/* A freeze that never completes is undone. */
	lt_write(G("cgroup.events"), "populated 1\nfrozen 0\n");
	LT_FAILS(lam_rc_freeze(rc, 50), LAM_EBUSY, "thawed again");
	assert_file(G("cgroup.freeze"), "0");
	LT_OK(lam_rc_kill(rc));
	assert_file(G("cgroup.kill"), "1");
	lam_rc_free(rc);
#undef G
}
END_TEST

START_TEST(test_bad_values_write_nothing)
{
	lam_rc *rc;

	fake_v2(ALL_V2);
	rc = fake_v2_group("g", NULL);
	LT_FAILS(lam_rc_set_memory_max(rc, 0), LAM_EINVAL, "memory.max");
	LT_FAILS(lam_rc_set_memory_high(rc, 0), LAM_EINVAL, "memory.high");
	LT_FAILS(lam_rc_set_cpu_weight(rc, 0), LAM_EINVAL, "cpu.weight");
	LT_FAILS(lam_rc_set_cpu_weight(rc, 10001), LAM_EINVAL, "1 to 10000");
	/* A negative number a caller cast to uint64_t is just as bad. */
	LT_FAILS(lam_rc_set_cpu_weight(rc, (uint64_t)-5), LAM_EINVAL,
		 "cpu.weight");
	LT_FAILS(lam_rc_set_cpu_max(rc, 999, 100000), LAM_EINVAL, "quota");
	LT_FAILS(lam_rc_set_cpu_max(rc, 0, 100000), LAM_EINVAL, "quota");
	LT_FAILS(lam_rc_set_cpu_max(rc, 5000, 999), LAM_EINVAL, "period");
	LT_FAILS(lam_rc_set_cpu_max(rc, 5000, 1000001), LAM_EINVAL, "period");
	static const char *const lists[] = {"",	  "3-1", "a",  "1,,2", "1-",
					    "-1", "0 1", "1,", "0-3x"};
	for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
		LT_FAILS(lam_rc_set_cpuset_cpus(rc, lists[i]), LAM_EINVAL,
			 "cpuset.cpus");
		LT_FAILS(lam_rc_set_cpuset_mems(rc, lists[i]), LAM_EINVAL,
			 "cpuset.mems");
	}
	LT_FAILS(lam_rc_set_cpuset_cpus(rc, NULL), LAM_EINVAL, "empty");
	LT_FAILS(lam_rc_set_pids_max(rc, 0), LAM_EINVAL, "LAM_RC_MAX");
	LT_FAILS(lam_rc_set_io_weight(rc, 0), LAM_EINVAL, "io.weight");
	LT_FAILS(lam_rc_set_io_weight(rc, 10001), LAM_EINVAL, "io.weight");
	LT_FAILS(lam_rc_set_io_max(rc, 8, 0, 0, 1, 1, 1), LAM_EINVAL, "rbps");
	LT_FAILS(lam_rc_set_io_max(rc, 8, 0, 1, 1, 1, 0), LAM_EINVAL, "wiops");
	LT_FAILS(lam_rc_attach(rc, 0), LAM_EINVAL, "pid 0");
	LT_FAILS(lam_rc_attach(rc, -3), LAM_EINVAL, "pid -3");

	/* A pid that no longer exists: a child reaped just now. */
	pid_t gone = fork();
	if (gone == 0)
		_exit(0);
	ck_assert_int_eq(waitpid(gone, NULL, 0), gone);
	LT_FAILS(lam_rc_attach(rc, gone), LAM_ENOTFOUND, "no such process");

	/* Each file still holds what the kernel put there. */
	for (size_t i = 0; i < sizeof(v2_files) / sizeof(v2_files[0]); i++)
		assert_file(lt_path("cg2/lamina-test/g/%s", v2_files[i][0]),
			    v2_files[i][1]);

	LT_FAILS(lam_rc_set_pids_max(NULL, 3), LAM_EINVAL, NULL);
	LT_FAILS(lam_rc_cap_check(rc, LAM_RC_CAP_COUNT), LAM_EINVAL, "unknown");
	ck_assert_str_eq(lam_rc_cap_name(LAM_RC_CAP_COUNT), "unknown");
	lam_rc_usage u = LAM_RC_USAGE_INIT;
	u.version = 7;
	LT_FAILS(lam_rc_usage_get(rc, &u), LAM_EINVAL, "version");
	LT_FAILS(lam_rc_usage_get(rc, NULL), LAM_EINVAL, NULL);
	LT_FAILS(lam_rc_event_clear(rc), LAM_EINVAL, "no event descriptor");
	lam_rc_free(rc);
}
END_TEST

START_TEST(test_spawn_bad_programs_are_refused)
{
	lam_rc *rc;
	pid_t pid = 1;
	char *argv[] = {"x", NULL};

	fake_v2(ALL_V2);
	rc = fake_v2_group("g", NULL);
	LT_FAILS(lam_rc_spawn(&pid, rc, "lamina-no-such-program", argv, NULL),
		 LAM_ENOTFOUND, "not found in $PATH");
	ck_assert_int_eq(pid, 0);
	LT_FAILS(lam_rc_spawn(&pid, rc, lt_path("absent"), argv, NULL),
		 LAM_ENOTFOUND, "absent");
	lt_write(lt_path("plain"), "not a program");
	LT_FAILS(lam_rc_spawn(&pid, rc, lt_path("plain"), argv, NULL),
		 LAM_EACCES, "not an executable");
	LT_FAILS(lam_rc_spawn(&pid, rc, "/bin/true", NULL, NULL), LAM_EINVAL,
		 "argv");
	LT_FAILS(lam_rc_spawn(NULL, rc, "/bin/true", argv, NULL), LAM_EINVAL,
		 NULL);
	lam_rc_free(rc);
}
END_TEST

START_TEST(test_v2_missing_controllers_are_unavailable_with_reasons)
{
	lam_rc_options o = v2_options();
	lam_rc *rc;

	/* The root offers no io at all; the parent's children may have cpu
	 * and memory, and not pids, which lamina may not enable. */
	lt_write(lt_path("cg2/cgroup.controllers"), "cpu memory pids\n");
	lt_write(lt_path("cg2/cgroup.subtree_control"), "cpu memory pids\n");
	lt_write(lt_path("cg2/lamina-test/cgroup.controllers"),
		 "cpu memory pids\n");
	lt_write(lt_path("cg2/lamina-test/cgroup.subtree_control"),
		 "cpu memory\n");
	o.flags = LAM_RC_NO_ENABLE;
	LT_OK(lam_rc_create(&rc, "lamina-test", "g", &o));
	lt_write(lt_path("cg2/lamina-test/g/memory.max"), "max\n");
	lt_write(lt_path("cg2/lamina-test/g/cpu.max"), "max 100000\n");
	LT_OK(lam_rc_set_memory_max(rc, 1 << 20));
	LT_FAILS(lam_rc_set_io_weight(rc, 100), LAM_EUNAVAILABLE,
		 "io.weight: unavailable: the io (blkio on cgroup v1) "
		 "controller is neither available in the cgroup2 hierarchy");
	LT_FAILS(lam_rc_set_io_max(rc, 8, 0, 1, 1, 1, 1), LAM_EUNAVAILABLE,
		 "io.max: unavailable");
	LT_FAILS(lam_rc_set_pids_max(rc, 10), LAM_EUNAVAILABLE,
		 "pids.max: unavailable: the pids controller is not enabled "
		 "in ");
	LT_FAILS(lam_rc_cap_check(rc, LAM_RC_CAP_PIDS_MAX), LAM_EUNAVAILABLE,
		 "lamina-test/cgroup.subtree_control");
	LT_FAILS(lam_rc_set_cpuset_cpus(rc, "0"), LAM_EUNAVAILABLE, "cpuset");
	/* The controller is there, the kernel's file is not. */
	LT_FAILS(lam_rc_set_memory_swap_max(rc, 0), LAM_EUNAVAILABLE,
		 "swap accounting");
	LT_FAILS(lam_rc_set_cpu_weight(rc, 10), LAM_EUNAVAILABLE,
		 "provides no cpu.weight");
	LT_OK(lam_rc_cap_check(rc, LAM_RC_CAP_CPU_MAX));
	LT_OK(lam_rc_cap_check(rc, LAM_RC_CAP_KILL));
	/* Nothing was written for the refused settings. */
	ck_assert(!lt_exists(lt_path("cg2/lamina-test/g/pids.max")));
	ck_assert(!lt_exists(lt_path("cg2/lamina-test/g/io.weight")));
	assert_file(lt_path("cg2/lamina-test/cgroup.subtree_control"),
		    "cpu memory\n");
	lam_rc_free(rc);
}
END_TEST

START_TEST(test_v2_create_enables_controllers_in_subtree_control)
{
	lam_rc_options o = v2_options();
	lam_rc *rc;

	lt_write(lt_path("cg2/cgroup.controllers"), "cpu memory pids\n");
	lt_write(lt_path("cg2/cgroup.subtree_control"), "cpu memory pids\n");
	lt_write(lt_path("cg2/lamina-test/cgroup.controllers"),
		 "cpu memory pids\n");
	lt_write(lt_path("cg2/lamina-test/cgroup.subtree_control"),
		 "cpu memory\n");
	LT_OK(lam_rc_create(&rc, "lamina-test", "g", &o));
	/* One "+name" write per missing controller, as the kernel takes
	 * them; the root, which had everything, was left alone. */
	assert_file(lt_path("cg2/lamina-test/cgroup.subtree_control"), "+pids");
	assert_file(lt_path("cg2/cgroup.subtree_control"), "cpu memory pids\n");
	lt_write(lt_path("cg2/lamina-test/g/pids.max"), "max\n");
	LT_OK(lam_rc_set_pids_max(rc, 10));
	assert_file(lt_path("cg2/lamina-test/g/pids.max"), "10");
	lam_rc_free(rc);
}
END_TEST

START_TEST(test_v2_usage_reads_each_file)
{
	lam_rc *rc;
	lam_rc_usage u = LAM_RC_USAGE_INIT;

	fake_v2(ALL_V2);
	rc = fake_v2_group("g", "memory.peak");
#define G(f) lt_path("cg2/lamina-test/g/" f)
	lt_write(G("memory.current"), "1048576\n");
	lt_write(G("memory.events"), "low 0\nhigh 4\nmax 7\noom 2\noom_kill 1\n"
				     "oom_group_kill 0\n");
	lt_write(G("cpu.stat"), "usage_usec 3000\nuser_usec 2000\n"
				"system_usec 1000\nnr_periods 10\n"
				"nr_throttled 3\nthrottled_usec 450\n");
	lt_write(G("pids.current"), "3\n");
	lt_write(G("pids.events"), "max 9\n");
	lt_write(G("io.stat"), "8:0 rbytes=100 wbytes=200 rios=1 wios=2 "
			       "dbytes=0 dios=0\n"
			       "8:16 rbytes=1000 wbytes=2000 rios=10 wios=20 "
			       "dbytes=0 dios=0\n");
#undef G
	LT_OK(lam_rc_usage_get(rc, &u));
	ck_assert_uint_eq(u.memory_current, 1048576);
	ck_assert(!(u.known & LAM_RC_USAGE_MEMORY_PEAK));
	ck_assert_uint_eq(u.memory_peak, 0);
	ck_assert_uint_eq(u.memory_max_hits, 7);
	ck_assert_uint_eq(u.oom, 2);
	ck_assert_uint_eq(u.oom_kill, 1);
	ck_assert_uint_eq(u.cpu_usage_usec, 3000);
	ck_assert_uint_eq(u.cpu_user_usec, 2000);
	ck_assert_uint_eq(u.cpu_system_usec, 1000);
	ck_assert_uint_eq(u.cpu_throttled_usec, 450);
	ck_assert_uint_eq(u.pids_current, 3);
	ck_assert_uint_eq(u.pids_max_hits, 9);
	ck_assert_uint_eq(u.io_read_bytes, 1100);
	ck_assert_uint_eq(u.io_write_bytes, 2200);
	ck_assert_uint_eq(u.io_read_ops, 11);
	ck_assert_uint_eq(u.io_write_ops, 22);
	ck_assert_uint_eq(
		u.known, LAM_RC_USAGE_MEMORY | LAM_RC_USAGE_MEMORY_MAX_HITS |
				 LAM_RC_USAGE_OOM | LAM_RC_USAGE_OOM_KILL |
				 LAM_RC_USAGE_CPU | LAM_RC_USAGE_CPU_THROTTLED |
				 LAM_RC_USAGE_PIDS |
				 LAM_RC_USAGE_PIDS_MAX_HITS | LAM_RC_USAGE_IO);
	lam_rc_free(rc);
}
END_TEST

START_TEST(test_v2_event_fd_wakes_on_memory_events)
{
	lam_rc *rc;
	int fd, again;

	fake_v2(ALL_V2);
	rc = fake_v2_group("g", NULL);
	LT_OK(lam_rc_event_fd(&fd, rc));
	ck_assert_int_ge(fd, 0);
	LT_OK(lam_rc_event_fd(&again, rc));
	ck_assert_int_eq(again, fd);
	struct pollfd p = {.fd = fd, .events = POLLIN};
	ck_assert_int_eq(poll(&p, 1, 0), 0);
	/* The kernel reports a change of memory.events as a modification. */
	lt_write(lt_path("cg2/lamina-test/g/memory.events"),
		 "low 0\nhigh 0\nmax 1\noom 1\noom_kill 1\n");
	ck_assert_int_eq(poll(&p, 1, 2000), 1);
	LT_OK(lam_rc_event_clear(rc));
	ck_assert_int_eq(poll(&p, 1, 0), 0);
	lt_write(lt_path("cg2/lamina-test/g/pids.events"), "max 1\n");
	ck_assert_int_eq(poll(&p, 1, 2000), 1);
	lam_rc_free(rc);
}
END_TEST

static int count_cap(lam_rc_cap cap, const char *how, const char *why_not,
		     void *userdata)
{
	int *n = userdata;

	ck_assert((how == NULL) != (why_not == NULL));
	ck_assert_str_ne(lam_rc_cap_name(cap), "unknown");
	(*n)++;
	return cap == LAM_RC_CAP_KILL ? 42 : 0;
}

START_TEST(test_caps_foreach_reports_every_cap)
{
	lam_rc *rc;
	int n = 0;

	fake_v2(ALL_V2);
	rc = fake_v2_group("g", "memory.swap.max");
	ck_assert_int_eq(lam_rc_caps_foreach(rc, count_cap, &n), 42);
	ck_assert_int_eq(n, LAM_RC_CAP_KILL + 1);
	for (int cap = 0; cap < LAM_RC_CAP_COUNT; cap++) {
		if (cap == LAM_RC_CAP_MEMORY_SWAP_MAX)
			LT_FAILS(lam_rc_cap_check(rc, (lam_rc_cap)cap),
				 LAM_EUNAVAILABLE, "memory.swap.max");
		else
			LT_OK(lam_rc_cap_check(rc, (lam_rc_cap)cap));
	}
	LT_FAILS(lam_rc_caps_foreach(rc, NULL, NULL), LAM_EINVAL, NULL);
	lam_rc_free(rc);
}
END_TEST

START_TEST(test_conversions_follow_crun)
{
	ck_assert_uint_eq(lam_rc_cpu_shares_to_weight(2), 1);
	ck_assert_uint_eq(lam_rc_cpu_shares_to_weight(1024), 39);
	ck_assert_uint_eq(lam_rc_cpu_shares_to_weight(262144), 10000);
	ck_assert_uint_eq(lam_rc_cpu_shares_to_weight(0), 1);
	ck_assert_uint_eq(lam_rc_cpu_shares_to_weight(1u << 30), 10000);
	ck_assert_uint_eq(lam_rc_cpu_weight_to_shares(1), 2);
	ck_assert_uint_eq(lam_rc_cpu_weight_to_shares(100), 2597);
	ck_assert_uint_eq(lam_rc_cpu_weight_to_shares(10000), 262144);
	ck_assert_uint_eq(lam_rc_blkio_weight_to_io_weight(10), 1);
	ck_assert_uint_eq(lam_rc_blkio_weight_to_io_weight(500), 4950);
	ck_assert_uint_eq(lam_rc_blkio_weight_to_io_weight(1000), 10000);
	ck_assert_uint_eq(lam_rc_io_weight_to_blkio_weight(1), 10);
	ck_assert_uint_eq(lam_rc_io_weight_to_blkio_weight(100), 19);
	ck_assert_uint_eq(lam_rc_io_weight_to_blkio_weight(10000), 1000);
	/* Each direction undoes the other within rounding. */
	for (uint64_t w = 1; w <= 10000; w += 37) {
		uint64_t back = lam_rc_cpu_shares_to_weight(
			lam_rc_cpu_weight_to_shares(w));
		ck_assert(back == w || back + 1 == w);
	}
}
END_TEST

/* cgroup v1 roots in v1/: cpu and cpuacct mounted together (reached
 * through symlinks, as hosts lay them out), each with "lamina-test". */
static void fake_v1(void)
{
	static const char *const dirs[] = {"memory", "cpu,cpuacct", "pids",
					   "blkio", "freezer"};
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++)
		lt_mkdir(lt_path("v1/%s/lamina-test", dirs[i]));
	lt_symlink("cpu,cpuacct", lt_path("v1/cpu"));
	lt_symlink("cpu,cpuacct", lt_path("v1/cpuacct"));
}

START_TEST(test_v1_settings_convert_and_write_the_v1_files)
{
	lam_rc_options o = LAM_RC_OPTIONS_INIT;
	lam_rc *rc;

	fake_v1();
	o.v1_root = lt_path("v1");
	LT_OK(lam_rc_create(&rc, "lamina-test", "g", &o));
	ck_assert_int_eq(lam_rc_get_mode(rc), LAM_RC_MODE_V1);
#define M(f) lt_path("v1/memory/lamina-test/g/" f)
#define C(f) lt_path("v1/cpu,cpuacct/lamina-test/g/" f)
#define B(f) lt_path("v1/blkio/lamina-test/g/" f)
	/* One group in the shared cpu,cpuacct hierarchy. */
	ck_assert(lt_exists(C("")));
	lt_write(M("cgroup.procs"), "");
	lt_write(M("memory.limit_in_bytes"), "9223372036854771712\n");
	lt_write(M("memory.memsw.limit_in_bytes"), "9223372036854771712\n");
	lt_write(C("cpu.shares"), "1024\n");
	lt_write(C("cpu.cfs_quota_us"), "-1\n");
	lt_write(C("cpu.cfs_period_us"), "100000\n");
	lt_write(lt_path("v1/pids/lamina-test/g/pids.max"), "max\n");
	lt_write(B("blkio.weight"), "500\n");
	static const char *const throttle[] = {"read_bps_device",
					       "write_bps_device",
					       "read_iops_device",
					       "write_iops_device"};
	for (int i = 0; i < 4; i++)
		lt_write(lt_path("v1/blkio/lamina-test/g/blkio.throttle.%s",
				 throttle[i]),
			 "");
	lt_write(lt_path("v1/freezer/lamina-test/g/freezer.state"), "THAWED\n");
	lt_write(lt_path("v1/freezer/lamina-test/g/cgroup.procs"), "");

	/* Swap needs a memory limit first: v1 limits them together. */
	LT_FAILS(lam_rc_set_memory_swap_max(rc, 16 << 20), LAM_EUNAVAILABLE,
		 "set memory.max first");
	LT_OK(lam_rc_set_memory_max(rc, 64 << 20));
	assert_file(M("memory.limit_in_bytes"), "67108864");
	LT_OK(lam_rc_set_memory_swap_max(rc, 16 << 20));
	assert_file(M("memory.memsw.limit_in_bytes"), "83886080");
	/* Moving the memory limit keeps the swap allowance. */
	lt_write(M("memory.memsw.limit_in_bytes"), "83886080\n");
	LT_OK(lam_rc_set_memory_max(rc, 32 << 20));
	assert_file(M("memory.limit_in_bytes"), "33554432");
	assert_file(M("memory.memsw.limit_in_bytes"), "50331648");
	lt_write(M("memory.memsw.limit_in_bytes"), "50331648\n");
	LT_OK(lam_rc_set_memory_max(rc, LAM_RC_MAX));
	assert_file(M("memory.limit_in_bytes"), "-1");
	assert_file(M("memory.memsw.limit_in_bytes"), "-1");
	LT_FAILS(lam_rc_set_memory_high(rc, 1 << 20), LAM_EUNAVAILABLE,
		 "cgroup v1 has no equivalent of memory.high");

	LT_OK(lam_rc_set_cpu_weight(rc, 100));
	assert_file(C("cpu.shares"), "2597");
	LT_OK(lam_rc_set_cpu_max(rc, 20000, 50000));
	assert_file(C("cpu.cfs_period_us"), "50000");
	assert_file(C("cpu.cfs_quota_us"), "20000");
	LT_OK(lam_rc_set_cpu_max(rc, LAM_RC_MAX, 0));
	assert_file(C("cpu.cfs_quota_us"), "-1");
	assert_file(C("cpu.cfs_period_us"), "100000");
	LT_OK(lam_rc_set_pids_max(rc, 12));
	assert_file(lt_path("v1/pids/lamina-test/g/pids.max"), "12");
	LT_OK(lam_rc_set_io_weight(rc, 100));
	assert_file(B("blkio.weight"), "19");
	/* Each throttle file takes one device line; 0 removes a limit. */
	LT_OK(lam_rc_set_io_max(rc, 8, 0, 4096, LAM_RC_MAX, 30, LAM_RC_MAX));
	assert_file(B("blkio.throttle.read_bps_device"), "8:0 4096");
	assert_file(B("blkio.throttle.write_bps_device"), "8:0 0");
	assert_file(B("blkio.throttle.read_iops_device"), "8:0 30");
	assert_file(B("blkio.throttle.write_iops_device"), "8:0 0");
	/* cpuset is not mounted here. */
	LT_FAILS(lam_rc_set_cpuset_cpus(rc, "0"), LAM_EUNAVAILABLE,
		 "cpuset controller is not mounted");

	lt_write(lt_path("v1/freezer/lamina-test/g/freezer.state"), "FROZEN\n");
	LT_OK(lam_rc_freeze(rc, 1000));
	assert_file(lt_path("v1/freezer/lamina-test/g/freezer.state"),
		    "FROZEN");
	LT_OK(lam_rc_thaw(rc));
	assert_file(lt_path("v1/freezer/lamina-test/g/freezer.state"),
		    "THAWED");

	lam_rc_usage u = LAM_RC_USAGE_INIT;
	lt_write(M("memory.usage_in_bytes"), "4096\n");
	lt_write(M("memory.max_usage_in_bytes"), "8192\n");
	lt_write(M("memory.failcnt"), "3\n");
	lt_write(M("memory.oom_control"),
		 "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n");
	lt_write(C("cpuacct.usage"), "5000000\n");
	lt_write(C("cpuacct.usage_user"), "3000000\n");
	lt_write(C("cpuacct.usage_sys"), "2000000\n");
	lt_write(C("cpu.stat"), "nr_periods 5\nnr_throttled 2\n"
				"throttled_time 7000\n");
	lt_write(B("blkio.throttle.io_service_bytes_recursive"),
		 "8:0 Read 4096\n8:0 Write 512\n8:0 Sync 0\n8:0 Total 4608\n"
		 "Total 4608\n");
	lt_write(B("blkio.throttle.io_serviced_recursive"),
		 "8:0 Read 2\n8:0 Write 1\nTotal 3\n");
	LT_OK(lam_rc_usage_get(rc, &u));
	ck_assert_uint_eq(u.memory_current, 4096);
	ck_assert_uint_eq(u.memory_peak, 8192);
	ck_assert_uint_eq(u.memory_max_hits, 3);
	ck_assert_uint_eq(u.oom_kill, 2);
	ck_assert(!(u.known & LAM_RC_USAGE_OOM));
	ck_assert_uint_eq(u.cpu_usage_usec, 5000);
	ck_assert_uint_eq(u.cpu_user_usec, 3000);
	ck_assert_uint_eq(u.cpu_system_usec, 2000);
	ck_assert_uint_eq(u.cpu_throttled_usec, 7);
	ck_assert_uint_eq(u.io_read_bytes, 4096);
	ck_assert_uint_eq(u.io_write_bytes, 512);
	ck_assert_uint_eq(u.io_read_ops, 2);
	ck_assert_uint_eq(u.io_write_ops, 1);
	lam_rc_free(rc);
#undef M
#undef C
#undef B
}
END_TEST

static int noop_cap(lam_rc_cap cap, const char *how, const char *why_not,
		    void *userdata)
{
	(void)cap;
	(void)how;
	(void)why_not;
	(void)userdata;
	return 0;
}

/* Every call of a scenario over a fake cgroup2 root, with the n-th
 * allocation failing; returns the number of calls that failed, each of
 * which must say LAM_ENOMEM. */
static int oom_scenario(int round)
{
	lam_rc_options o = v2_options();
	lam_rc_usage u = LAM_RC_USAGE_INIT;
	char name[32];
	lam_rc *rc = NULL;
	pid_t *pids = NULL;
	size_t n;
	int failures = 0, fd;
#define TRY(call)                                                             \
	do {                                                                  \
		int rc_ = (call);                                             \
		if (rc_ != 0) {                                               \
			ck_assert_msg(rc_ == LAM_ENOMEM, "%s gave %d: %s",    \
				      #call, rc_, lam_error_last()->message); \
			failures++;                                           \
		}                                                             \
	} while (0)

	snprintf(name, sizeof(name), "g%d", round);
	TRY(lam_rc_create(&rc, "lamina-test", name, &o));
	if (!rc) {
		ck_assert(!lt_exists(lt_path("cg2/lamina-test/%s", name)));
		return failures;
	}
	lam__test_fail_alloc_at(0);
	for (size_t i = 0; i < sizeof(v2_files) / sizeof(v2_files[0]); i++)
		lt_write(lt_path("cg2/lamina-test/%s/%s", name, v2_files[i][0]),
			 v2_files[i][1]);
	lt_write(lt_path("cg2/lamina-test/%s/cgroup.procs", name), "1\n2\n");
	lam__test_fail_alloc_at((uint64_t)round);
	TRY(lam_rc_set_memory_max(rc, 1 << 30));
	TRY(lam_rc_set_cpu_max(rc, 20000, 0));
	TRY(lam_rc_set_io_max(rc, 8, 0, 1, 2, 3, 4));
	TRY(lam_rc_usage_get(rc, &u));
	TRY(lam_rc_caps_foreach(rc, noop_cap, NULL));
	TRY(lam_rc_pids(&pids, &n, rc));
	lam_free(pids);
	TRY(lam_rc_event_fd(&fd, rc));
	TRY(lam_rc_kill(rc));
	lam_rc_free(rc);
#undef TRY
	return failures;
}

START_TEST(test_allocation_failures_are_reported_and_leak_nothing)
{
	int round;

	fake_v2(ALL_V2);
	for (round = 1; round < 1000; round++) {
		lam__test_fail_alloc_at((uint64_t)round);
		int failures = oom_scenario(round);
		lam__test_fail_alloc_at(0);
		if (failures == 0)
			break;
	}
	ck_assert_int_lt(round, 1000);
	ck_assert_int_gt(round, 5);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("rc");
	TCase *tc = tcase_create("formats");

	tcase_add_checked_fixture(tc, lt_setup, lt_teardown);
	tcase_add_test(tc, test_bad_names_are_refused);
	tcase_add_test(tc, test_bad_options_are_refused);
	tcase_add_test(tc, test_create_open_and_remove_in_a_fake_v2_root);
	tcase_add_test(tc, test_v2_settings_write_the_kernel_formats);
	tcase_add_test(tc, test_bad_values_write_nothing);
	tcase_add_test(tc, test_spawn_bad_programs_are_refused);
	tcase_add_test(
		tc, test_v2_missing_controllers_are_unavailable_with_reasons);
	tcase_add_test(tc,
		       test_v2_create_enables_controllers_in_subtree_control);
	tcase_add_test(tc, test_v2_usage_reads_each_file);
	tcase_add_test(tc, test_v2_event_fd_wakes_on_memory_events);
	tcase_add_test(tc, test_caps_foreach_reports_every_cap);
	tcase_add_test(tc, test_conversions_follow_crun);
	tcase_add_test(tc, test_v1_settings_convert_and_write_the_v1_files);
	tcase_add_test(tc,
		       test_allocation_failures_are_reported_and_leak_nothing);
	suite_add_tcase(s, tc);
	return lt_main(s);
}
