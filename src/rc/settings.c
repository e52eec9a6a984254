/* SPDX-License-Identifier: MIT */
/*
 * Settings: which file serves each cap on this handle (or why none does),
 * the v1 conversions, and the setters.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "rc/internal.h"

/* How each cap maps to files: the controller, the v2 file (and a second
 * choice), the v1 file (and a second choice), and why a host may lack the
 * file even where the controller is there. */
struct cap_map {
	const char *name;
	int ctrl;
	const char *v2[2];
	const char *v1[2];
	const char *v1_none; /* v1 has no equivalent at all: why */
	const char *missing; /* the controller is there but not the file */
};

static const struct cap_map caps[LAM_RC_CAP_COUNT] = {
	[LAM_RC_CAP_MEMORY_MAX] = {"memory.max",
				   RC_MEMORY,
				   {"memory.max", NULL},
				   {"memory.limit_in_bytes", NULL},
				   NULL,
				   NULL},
	[LAM_RC_CAP_MEMORY_HIGH] = {"memory.high",
				    RC_MEMORY,
				    {"memory.high", NULL},
				    {NULL, NULL},
				    "cgroup v1 has no equivalent of "
				    "memory.high (memory.soft_limit_in_bytes "
				    "acts only under global memory pressure)",
				    NULL},
	[LAM_RC_CAP_MEMORY_SWAP_MAX] = {"memory.swap.max",
					RC_MEMORY,
					{"memory.swap.max", NULL},
					{"memory.memsw.limit_in_bytes", NULL},
					NULL,
					"swap accounting is off in this kernel "
					"(CONFIG_MEMCG_SWAP, swapaccount=1)"},
	[LAM_RC_CAP_CPU_WEIGHT] = {"cpu.weight",
				   RC_CPU,
				   {"cpu.weight", NULL},
				   {"cpu.shares", NULL},
				   NULL,
				   NULL},
	[LAM_RC_CAP_CPU_MAX] = {"cpu.max",
				RC_CPU,
				{"cpu.max", NULL},
				{"cpu.cfs_quota_us", NULL},
				NULL,
				"the kernel lacks CFS bandwidth control "
				"(CONFIG_CFS_BANDWIDTH)"},
	[LAM_RC_CAP_CPUSET_CPUS] = {"cpuset.cpus",
				    RC_CPUSET,
				    {"cpuset.cpus", NULL},
				    {"cpuset.cpus", NULL},
				    NULL,
				    NULL},
	[LAM_RC_CAP_CPUSET_MEMS] = {"cpuset.mems",
				    RC_CPUSET,
				    {"cpuset.mems", NULL},
				    {"cpuset.mems", NULL},
				    NULL,
				    NULL},
	[LAM_RC_CAP_PIDS_MAX] = {"pids.max",
				 RC_PIDS,
				 {"pids.max", NULL},
				 {"pids.max", NULL},
				 NULL,
				 NULL},
	[LAM_RC_CAP_IO_WEIGHT] = {"io.weight",
				  RC_IO,
				  {"io.weight", "io.bfq.weight"},
				  {"blkio.weight", "blkio.bfq.weight"},
				  NULL,
				  "no I/O scheduler with proportional weights "
				  "serves this group (BFQ, or io.cost on "
				  "cgroup2)"},
	[LAM_RC_CAP_IO_MAX] = {"io.max",
			       RC_IO,
			       {"io.max", NULL},
			       {"blkio.throttle.read_bps_device", NULL},
			       NULL,
			       "the kernel lacks block I/O throttling "
			       "(CONFIG_BLK_DEV_THROTTLING)"},
	[LAM_RC_CAP_FREEZE] = {"freeze", -1, {NULL}, {NULL}, NULL, NULL},
	[LAM_RC_CAP_KILL] = {"kill", -1, {NULL}, {NULL}, NULL, NULL},
	[LAM_RC_CAP_SPAWN] = {"spawn", -1, {NULL}, {NULL}, NULL, NULL},
	[LAM_RC_CAP_EVENTS] = {"events", -1, {NULL}, {NULL}, NULL, NULL},
};

const char *lam_rc_cap_name(lam_rc_cap cap)
{
	if ((unsigned int)cap >= LAM_RC_CAP_COUNT)
		return "unknown";
	return caps[cap].name;
}

/* The features that no single controller file stands for. */
static void route_feature(lam_rc *rc, lam_rc_cap cap, struct rc_route *r)
{
	int v2 = rc->v2, fz = rc->ctrl[RC_FREEZER], mem = rc->ctrl[RC_MEMORY];
	bool any1 = rc->mode != LAM_RC_MODE_V2;

	switch (cap) {
	case LAM_RC_CAP_FREEZE:
		if (v2 >= 0 && lam__rc_has(rc->hier[v2].fd, "cgroup.freeze")) {
			r->hier = v2;
			r->file = "cgroup.freeze";
			lam__rc_fmt(r->how, sizeof(r->how),
				    "cgroup v2 cgroup.freeze");
		} else if (fz >= 0) {
			r->hier = fz;
			r->file = "freezer.state";
			lam__rc_fmt(r->how, sizeof(r->how),
				    "cgroup v1 freezer.state");
		} else {
			lam__rc_fmt(
				r->why, sizeof(r->why), "%s, and %s",
				v2 >= 0 ? "the kernel has no cgroup.freeze "
					  "(cgroup2 freezing needs Linux 5.2)" :
					  "no cgroup2 hierarchy is in use",
				rc->why[RC_FREEZER]);
		}
		break;
	case LAM_RC_CAP_KILL:
		r->hier = lam__rc_primary(rc);
		if (v2 >= 0 && lam__rc_has(rc->hier[v2].fd, "cgroup.kill")) {
			r->file = "cgroup.kill";
			lam__rc_fmt(r->how, sizeof(r->how),
				    "cgroup v2 cgroup.kill");
		} else {
			struct rc_route fr = {.hier = -1};
			route_feature(rc, LAM_RC_CAP_FREEZE, &fr);
			lam__rc_fmt(r->how, sizeof(r->how),
				    "SIGKILL to each process%s",
				    fr.hier >= 0 ? ", with the group frozen" :
						   ", repeated until none is "
						   "left");
		}
		break;
	case LAM_RC_CAP_SPAWN:
		r->hier = lam__rc_primary(rc);
		lam__rc_fmt(
			r->how, sizeof(r->how), "%s",
			v2 >= 0 && any1 ?
				"clone3() with CLONE_INTO_CGROUP, and the "
				"child joins the v1 groups before execve()" :
			v2 >= 0 ? "clone3() with CLONE_INTO_CGROUP" :
				  "the child joins the v1 groups before "
				  "execve()");
		break;
	case LAM_RC_CAP_EVENTS:
		if (mem < 0) {
			lam__rc_fmt(r->why, sizeof(r->why), "%s",
				    rc->why[RC_MEMORY]);
		} else if (rc->hier[mem].v2) {
			if (lam__rc_has(rc->hier[mem].fd, "memory.events")) {
				r->hier = mem;
				r->file = "memory.events";
				lam__rc_fmt(
					r->how, sizeof(r->how),
					"inotify on cgroup v2 memory.events "
					"and pids.events");
			} else {
				lam__rc_fmt(r->why, sizeof(r->why),
					    "the kernel provides no "
					    "memory.events in %s",
					    rc->hier[mem].dir);
			}
		} else if (lam__rc_has(rc->hier[mem].fd,
				       "cgroup.event_control") &&
			   lam__rc_has(rc->hier[mem].fd,
				       "memory.oom_control")) {
			r->hier = mem;
			r->file = "cgroup.event_control";
			lam__rc_fmt(r->how, sizeof(r->how),
				    "eventfd on cgroup v1 memory.oom_control");
		} else {
			lam__rc_fmt(
				r->why, sizeof(r->why),
				"the kernel provides no cgroup.event_control "
				"and memory.oom_control in %s",
				rc->hier[mem].dir);
		}
		break;
	default:
		break;
	}
}

void lam__rc_route(lam_rc *rc, lam_rc_cap cap, struct rc_route *r)
{
	const struct cap_map *m = &caps[cap];
	struct rc_hier *h;
	const char *const *files;

	r->hier = -1;
	r->file = NULL;
	r->how[0] = r->why[0] = '\0';
	if (m->ctrl < 0) {
		route_feature(rc, cap, r);
		return;
	}
	if (rc->ctrl[m->ctrl] < 0) {
		lam__rc_fmt(r->why, sizeof(r->why), "%s", rc->why[m->ctrl]);
		return;
	}
	h = &rc->hier[rc->ctrl[m->ctrl]];
	if (!h->v2 && m->v1_none) {
		lam__rc_fmt(r->why, sizeof(r->why), "%s", m->v1_none);
		return;
	}
	files = h->v2 ? m->v2 : m->v1;
	for (int i = 0; i < 2 && files[i]; i++) {
		if (lam__rc_has(h->fd, files[i])) {
			r->hier = rc->ctrl[m->ctrl];
			r->file = files[i];
			lam__rc_fmt(r->how, sizeof(r->how), "cgroup %s %s",
				    h->v2 ? "v2" : "v1", files[i]);
			return;
		}
	}
	lam__rc_fmt(r->why, sizeof(r->why),
		    "the kernel provides no %s in %s%s%s", files[0], h->dir,
		    m->missing ? ": " : "", m->missing ? m->missing : "");
}

int lam_rc_cap_check(lam_rc *rc, lam_rc_cap cap)
{
	struct rc_route r;

	lam__error_reset();
	int e = lam__rc_exists(rc);
	if (e < 0)
		return e;
	if ((unsigned int)cap >= LAM_RC_CAP_COUNT)
		return lam__error(LAM_EINVAL, "unknown resource control %d",
				  (int)cap);
	lam__rc_route(rc, cap, &r);
	if (r.hier < 0)
		return lam__error(LAM_EUNAVAILABLE, "%s: unavailable: %s",
				  caps[cap].name, r.why);
	return 0;
}

int lam_rc_caps_foreach(lam_rc *rc, lam_rc_caps_cb cb, void *userdata)
{
	lam__error_reset();
	int e = lam__rc_exists(rc);
	if (e < 0)
		return e;
	if (!cb)
		return lam__error(LAM_EINVAL, "no callback");
	for (int cap = 0; cap < LAM_RC_CAP_COUNT; cap++) {
		struct rc_route r;

		lam__rc_route(rc, (lam_rc_cap)cap, &r);
		e = cb((lam_rc_cap)cap, r.hier >= 0 ? r.how : NULL,
		       r.hier >= 0 ? NULL : r.why, userdata);
		if (e != 0)
			return e;
	}
	return 0;
}

/* Conversions, as crun documents them (crun.1.md, "cgroup v2") and runc
 * implements them. */

static uint64_t clamp(uint64_t v, uint64_t lo, uint64_t hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

uint64_t lam_rc_cpu_shares_to_weight(uint64_t shares)
{
	shares = clamp(shares, 2, 262144);
	return 1 + ((shares - 2) * 9999) / 262142;
}

uint64_t lam_rc_cpu_weight_to_shares(uint64_t weight)
{
	weight = clamp(weight, 1, 10000);
	return 2 + ((weight - 1) * 262142) / 9999;
}

uint64_t lam_rc_blkio_weight_to_io_weight(uint64_t blkio_weight)
{
	blkio_weight = clamp(blkio_weight, 10, 1000);
	return 1 + ((blkio_weight - 10) * 9999) / 990;
}

uint64_t lam_rc_io_weight_to_blkio_weight(uint64_t io_weight)
{
	io_weight = clamp(io_weight, 1, 10000);
	return 10 + ((io_weight - 1) * 990) / 9999;
}

/* Setters. */

/* Start a setter: the handle is live and the cap is served. */
static int begin(lam_rc *rc, lam_rc_cap cap, struct rc_route *r)
{
	int e = lam__rc_exists(rc);

	if (e < 0)
		return e;
	lam__rc_route(rc, cap, r);
	if (r->hier < 0)
		return lam__error(LAM_EUNAVAILABLE, "%s: unavailable: %s",
				  caps[cap].name, r->why);
	return 0;
}

/* Write @value to @file for @setting, turning the kernel's refusal into
 * the error a caller can act on. */
static int put(lam_rc *rc, int hi, const char *setting, const char *file,
	       const char *value)
{
	struct rc_hier *h = &rc->hier[hi];
	int w = lam__rc_write_raw(h->fd, file, value);

	switch (-w) {
	case 0:
		return 0;
	case EACCES:
	case EPERM:
		return lam__error_os(LAM_EUNAVAILABLE, -w,
				     "%s: unavailable: not permitted to write "
				     "%s/%s (the group is not delegated to "
				     "this user)",
				     setting, h->dir, file);
	case ENOENT:
		if (!lam__rc_has(h->parent_fd, rc->name))
			return lam__error(LAM_ENOTFOUND,
					  "%s: group %s no longer exists",
					  setting, h->dir);
		return lam__error(LAM_EUNAVAILABLE,
				  "%s: unavailable: the kernel provides no "
				  "%s in %s",
				  setting, file, h->dir);
	case EINVAL:
	case ERANGE:
	case EOVERFLOW:
	case ENOSPC:
		return lam__error_os(LAM_EINVAL, -w,
				     "%s: the kernel refused '%s' in %s/%s",
				     setting, value, h->dir, file);
	case EBUSY:
		return lam__error_os(LAM_EBUSY, -w,
				     "%s: the kernel refused '%s' in %s/%s "
				     "for now",
				     setting, value, h->dir, file);
	case ENODEV:
		return lam__error_os(LAM_ENOTFOUND, -w,
				     "%s: no such block device (writing '%s' "
				     "to %s/%s)",
				     setting, value, h->dir, file);
	default:
		return lam__error_os(LAM_EIO, -w, "%s: writing '%s' to %s/%s",
				     setting, value, h->dir, file);
	}
}

static void fmt_v2(char *buf, size_t size, uint64_t v)
{
	if (v == LAM_RC_MAX)
		snprintf(buf, size, "max");
	else
		snprintf(buf, size, "%" PRIu64, v);
}

static void fmt_v1(char *buf, size_t size, uint64_t v)
{
	if (v == LAM_RC_MAX)
		snprintf(buf, size, "-1");
	else
		snprintf(buf, size, "%" PRIu64, v);
}

/* A v1 byte count at or past this means "no limit": the kernel reports
 * its page counter's maximum, rounded to pages. */
#define V1_UNLIMITED (UINT64_C(1) << 62)

/*
 * cgroup v1 limits memory and memory+swap (memsw), and memsw may never be
 * below the memory limit. Keep the swap allowance (memsw - limit) as it is
 * when the memory limit moves, writing the two in an order the kernel
 * accepts.
 */
static int set_memory_v1(lam_rc *rc, int hi, uint64_t bytes)
{
	int fd = rc->hier[hi].fd;
	uint64_t limit, memsw;
	char value[32];

	if (!lam__rc_has(fd, "memory.memsw.limit_in_bytes") ||
	    lam__rc_read_u64(fd, "memory.memsw.limit_in_bytes", &memsw) < 0 ||
	    memsw >= V1_UNLIMITED ||
	    lam__rc_read_u64(fd, "memory.limit_in_bytes", &limit) < 0) {
		fmt_v1(value, sizeof(value), bytes);
		return put(rc, hi, "memory.max", "memory.limit_in_bytes",
			   value);
	}
	uint64_t swap = memsw > limit ? memsw - limit : 0;
	uint64_t target = bytes == LAM_RC_MAX || bytes > UINT64_MAX - swap ?
				  LAM_RC_MAX :
				  bytes + swap;
	char sw[32];
	int r;

	fmt_v1(value, sizeof(value), bytes);
	fmt_v1(sw, sizeof(sw), target);
	if (target >= memsw) {
		r = put(rc, hi, "memory.swap.max",
			"memory.memsw.limit_in_bytes", sw);
		if (r == 0)
			r = put(rc, hi, "memory.max", "memory.limit_in_bytes",
				value);
	} else {
		r = put(rc, hi, "memory.max", "memory.limit_in_bytes", value);
		if (r == 0)
			r = put(rc, hi, "memory.swap.max",
				"memory.memsw.limit_in_bytes", sw);
	}
	return r;
}

int lam_rc_set_memory_max(lam_rc *rc, uint64_t bytes)
{
	struct rc_route r;
	char value[32];

	lam__error_reset();
	if (bytes == 0)
		return lam__error(LAM_EINVAL,
				  "memory.max: 0 would leave no memory to any "
				  "process; use LAM_RC_MAX for no limit");
	int e = begin(rc, LAM_RC_CAP_MEMORY_MAX, &r);
	if (e < 0)
		return e;
	if (!rc->hier[r.hier].v2)
		return set_memory_v1(rc, r.hier, bytes);
	fmt_v2(value, sizeof(value), bytes);
	return put(rc, r.hier, "memory.max", r.file, value);
}

int lam_rc_set_memory_high(lam_rc *rc, uint64_t bytes)
{
	struct rc_route r;
	char value[32];

	lam__error_reset();
	if (bytes == 0)
		return lam__error(LAM_EINVAL,
				  "memory.high: 0 would throttle every "
				  "allocation; use LAM_RC_MAX for no limit");
	int e = begin(rc, LAM_RC_CAP_MEMORY_HIGH, &r);
	if (e < 0)
		return e;
	fmt_v2(value, sizeof(value), bytes);
	return put(rc, r.hier, "memory.high", r.file, value);
}

int lam_rc_set_memory_swap_max(lam_rc *rc, uint64_t bytes)
{
	struct rc_route r;
	char value[32];
	uint64_t limit;

	lam__error_reset();
	int e = begin(rc, LAM_RC_CAP_MEMORY_SWAP_MAX, &r);
	if (e < 0)
		return e;
	if (rc->hier[r.hier].v2) {
		fmt_v2(value, sizeof(value), bytes);
		return put(rc, r.hier, "memory.swap.max", r.file, value);
	}
	if (bytes == LAM_RC_MAX)
		return put(rc, r.hier, "memory.swap.max", r.file, "-1");
	e = lam__rc_read_u64(rc->hier[r.hier].fd, "memory.limit_in_bytes",
			     &limit);
	if (e < 0)
		return lam__error_errno(-e, "memory.swap.max: reading %s/%s",
					rc->hier[r.hier].dir,
					"memory.limit_in_bytes");
	if (limit >= V1_UNLIMITED)
		return lam__error(LAM_EUNAVAILABLE,
				  "memory.swap.max: unavailable: cgroup v1 "
				  "limits swap only together with memory "
				  "(memory.memsw.limit_in_bytes = memory.max + "
				  "swap), so set memory.max first");
	if (bytes > UINT64_MAX - limit)
		return lam__error(LAM_EINVAL, "memory.swap.max: too large");
	fmt_v1(value, sizeof(value), limit + bytes);
	return put(rc, r.hier, "memory.swap.max", r.file, value);
}

int lam_rc_set_cpu_weight(lam_rc *rc, uint64_t weight)
{
	struct rc_route r;
	char value[32];

	lam__error_reset();
	if (weight < 1 || weight > 10000)
		return lam__error(LAM_EINVAL,
				  "cpu.weight: %" PRIu64 " is not within 1 to "
				  "10000",
				  weight);
	int e = begin(rc, LAM_RC_CAP_CPU_WEIGHT, &r);
	if (e < 0)
		return e;
	if (!rc->hier[r.hier].v2)
		weight = lam_rc_cpu_weight_to_shares(weight);
	snprintf(value, sizeof(value), "%" PRIu64, weight);
	return put(rc, r.hier, "cpu.weight", r.file, value);
}

int lam_rc_set_cpu_max(lam_rc *rc, uint64_t quota_us, uint64_t period_us)
{
	struct rc_route r;
	char value[64], quota[32], period[32];

	lam__error_reset();
	if (period_us == 0)
		period_us = 100000;
	if (period_us < 1000 || period_us > 1000000)
		return lam__error(LAM_EINVAL,
				  "cpu.max: the period %" PRIu64 " us is not "
				  "within 1000 to 1000000",
				  period_us);
	if (quota_us < 1000)
		return lam__error(LAM_EINVAL,
				  "cpu.max: the quota %" PRIu64 " us is below "
				  "the kernel's minimum of 1000 us",
				  quota_us);
	int e = begin(rc, LAM_RC_CAP_CPU_MAX, &r);
	if (e < 0)
		return e;
	snprintf(period, sizeof(period), "%" PRIu64, period_us);
	if (rc->hier[r.hier].v2) {
		fmt_v2(quota, sizeof(quota), quota_us);
		snprintf(value, sizeof(value), "%s %s", quota, period);
		return put(rc, r.hier, "cpu.max", r.file, value);
	}
	/* The kernel checks each v1 write against the other value, so a
	 * change that one order refuses passes in the other. */
	fmt_v1(quota, sizeof(quota), quota_us);
	e = put(rc, r.hier, "cpu.max", "cpu.cfs_period_us", period);
	if (e == LAM_EINVAL) {
		e = put(rc, r.hier, "cpu.max", "cpu.cfs_quota_us", quota);
		if (e == 0)
			e = put(rc, r.hier, "cpu.max", "cpu.cfs_period_us",
				period);
		return e;
	}
	if (e == 0)
		e = put(rc, r.hier, "cpu.max", "cpu.cfs_quota_us", quota);
	return e;
}

/* A cpu or node list: "0-3,6". */
static int check_list(const char *setting, const char *list)
{
	const char *p = list;

	if (!list || !*list)
		return lam__error(LAM_EINVAL, "%s: an empty list", setting);
	if (strlen(list) > 4096)
		return lam__error(LAM_EINVAL, "%s: the list is too long",
				  setting);
	for (;;) {
		unsigned long a = 0, b;
		size_t n = strspn(p, "0123456789");

		if (n == 0 || n > 9)
			goto bad;
		for (size_t i = 0; i < n; i++)
			a = a * 10 + (unsigned long)(p[i] - '0');
		p += n;
		if (*p == '-') {
			p++;
			n = strspn(p, "0123456789");
			if (n == 0 || n > 9)
				goto bad;
			b = 0;
			for (size_t i = 0; i < n; i++)
				b = b * 10 + (unsigned long)(p[i] - '0');
			p += n;
			if (b < a)
				goto bad;
		}
		if (*p == '\0')
			return 0;
		if (*p != ',')
			goto bad;
		p++;
	}
bad:
	return lam__error(LAM_EINVAL,
			  "%s: '%s' is not a list such as \"0-3,6\"", setting,
			  list);
}

static int set_cpuset(lam_rc *rc, lam_rc_cap cap, const char *list)
{
	struct rc_route r;

	lam__error_reset();
	int e = check_list(caps[cap].name, list);
	if (e == 0)
		e = begin(rc, cap, &r);
	if (e < 0)
		return e;
	return put(rc, r.hier, caps[cap].name, r.file, list);
}

int lam_rc_set_cpuset_cpus(lam_rc *rc, const char *cpus)
{
	return set_cpuset(rc, LAM_RC_CAP_CPUSET_CPUS, cpus);
}

int lam_rc_set_cpuset_mems(lam_rc *rc, const char *mems)
{
	return set_cpuset(rc, LAM_RC_CAP_CPUSET_MEMS, mems);
}

int lam_rc_set_pids_max(lam_rc *rc, uint64_t max)
{
	struct rc_route r;
	char value[32];

	lam__error_reset();
	if (max == 0)
		return lam__error(LAM_EINVAL,
				  "pids.max: 0 is ambiguous (some runtimes "
				  "read it as no limit); use LAM_RC_MAX for no "
				  "limit, or at least 1");
	int e = begin(rc, LAM_RC_CAP_PIDS_MAX, &r);
	if (e < 0)
		return e;
	fmt_v2(value, sizeof(value), max);
	return put(rc, r.hier, "pids.max", r.file, value);
}

int lam_rc_set_io_weight(lam_rc *rc, uint64_t weight)
{
	struct rc_route r;
	char value[32];

	lam__error_reset();
	if (weight < 1 || weight > 10000)
		return lam__error(LAM_EINVAL,
				  "io.weight: %" PRIu64 " is not within 1 to "
				  "10000",
				  weight);
	int e = begin(rc, LAM_RC_CAP_IO_WEIGHT, &r);
	if (e < 0)
		return e;
	bool v2 = rc->hier[r.hier].v2;
	bool bfq = strstr(r.file, "bfq") != NULL;
	if (v2 && bfq) {
		/* BFQ takes 1–1000 on cgroup2 as well. */
		weight = lam_rc_io_weight_to_blkio_weight(weight);
		snprintf(value, sizeof(value), "%" PRIu64, weight);
	} else if (v2) {
		snprintf(value, sizeof(value), "default %" PRIu64, weight);
	} else {
		weight = lam_rc_io_weight_to_blkio_weight(weight);
		snprintf(value, sizeof(value), "%" PRIu64, weight);
	}
	return put(rc, r.hier, "io.weight", r.file, value);
}

int lam_rc_set_io_max(lam_rc *rc, unsigned int major, unsigned int minor,
		      uint64_t read_bps, uint64_t write_bps, uint64_t read_iops,
		      uint64_t write_iops)
{
	static const char *const v1_files[4] = {
		"blkio.throttle.read_bps_device",
		"blkio.throttle.write_bps_device",
		"blkio.throttle.read_iops_device",
		"blkio.throttle.write_iops_device",
	};
	static const char *const keys[4] = {"rbps", "wbps", "riops", "wiops"};
	const uint64_t v[4] = {read_bps, write_bps, read_iops, write_iops};
	struct rc_route r;
	char value[160];

	lam__error_reset();
	for (int i = 0; i < 4; i++) {
		if (v[i] == 0)
			return lam__error(LAM_EINVAL,
					  "io.max: %s of 0 would stop all I/O; "
					  "use LAM_RC_MAX for no limit",
					  keys[i]);
	}
	int e = begin(rc, LAM_RC_CAP_IO_MAX, &r);
	if (e < 0)
		return e;
	if (rc->hier[r.hier].v2) {
		char f[4][32];
		for (int i = 0; i < 4; i++)
			fmt_v2(f[i], sizeof(f[i]), v[i]);
		snprintf(value, sizeof(value),
			 "%u:%u rbps=%s wbps=%s riops=%s "
			 "wiops=%s",
			 major, minor, f[0], f[1], f[2], f[3]);
		return put(rc, r.hier, "io.max", r.file, value);
	}
	/* On v1 a limit of 0 removes the device's line. */
	for (int i = 0; i < 4 && e == 0; i++) {
		snprintf(value, sizeof(value), "%u:%u %" PRIu64, major, minor,
			 v[i] == LAM_RC_MAX ? 0 : v[i]);
		e = put(rc, r.hier, "io.max", v1_files[i], value);
	}
	return e;
}
