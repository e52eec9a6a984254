/* SPDX-License-Identifier: MIT */
/*
 * What a group uses, and the descriptor that wakes a host on memory
 * trouble and limit hits.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "rc/internal.h"

/* Set when a read ran out of memory, which lam_rc_usage_get() reports
 * rather than leaving fields unknown. One thread uses a handle at a time,
 * and the flag lives only during one call. */
static _Thread_local bool usage_nomem;

/* Read a flat-keyed file ("key value" lines); false when unreadable. */
static bool read_keyed(int fd, const char *file, lam__buf *buf)
{
	int r = fd >= 0 ? lam__rc_read(fd, file, buf) : -EBADF;

	if (r == -ENOMEM)
		usage_nomem = true;
	return r == 0;
}

static int hier_fd(const lam_rc *rc, int c, bool *v2)
{
	int hi = rc->ctrl[c];

	if (hi < 0)
		return -1;
	*v2 = rc->hier[hi].v2;
	return rc->hier[hi].fd;
}

static void memory_usage(lam_rc *rc, lam_rc_usage *u, lam__buf *buf)
{
	bool v2 = false;
	int fd = hier_fd(rc, RC_MEMORY, &v2);
	uint64_t v;

	if (fd < 0)
		return;
	if (lam__rc_read_u64(fd,
			     v2 ? "memory.current" : "memory.usage_in_bytes",
			     &v) == 0) {
		u->memory_current = v;
		u->known |= LAM_RC_USAGE_MEMORY;
	}
	if (lam__rc_read_u64(fd,
			     v2 ? "memory.peak" : "memory.max_usage_in_bytes",
			     &v) == 0) {
		u->memory_peak = v;
		u->known |= LAM_RC_USAGE_MEMORY_PEAK;
	}
	if (v2) {
		if (read_keyed(fd, "memory.events", buf)) {
			if (lam__rc_key_u64(buf->data, "max", &v)) {
				u->memory_max_hits = v;
				u->known |= LAM_RC_USAGE_MEMORY_MAX_HITS;
			}
			if (lam__rc_key_u64(buf->data, "oom", &v)) {
				u->oom = v;
				u->known |= LAM_RC_USAGE_OOM;
			}
			if (lam__rc_key_u64(buf->data, "oom_kill", &v)) {
				u->oom_kill = v;
				u->known |= LAM_RC_USAGE_OOM_KILL;
			}
		}
		return;
	}
	/* With swap limited, the memory+swap counter is the one that hits
	 * its limit; count both. */
	if (lam__rc_read_u64(fd, "memory.failcnt", &v) == 0) {
		uint64_t sw = 0;
		if (lam__rc_read_u64(fd, "memory.memsw.failcnt", &sw) < 0)
			sw = 0;
		u->memory_max_hits = v + sw;
		u->known |= LAM_RC_USAGE_MEMORY_MAX_HITS;
	}
	/* v1 counts OOM kills (Linux 4.13+), but not OOM events. */
	if (read_keyed(fd, "memory.oom_control", buf) &&
	    lam__rc_key_u64(buf->data, "oom_kill", &v)) {
		u->oom_kill = v;
		u->known |= LAM_RC_USAGE_OOM_KILL;
	}
}

static void cpu_usage(lam_rc *rc, lam_rc_usage *u, lam__buf *buf)
{
	uint64_t v, user, sys;
	bool v2 = false;

	/* cgroup2 keeps cpu.stat's times in every group, controller or
	 * not; v1 keeps them in cpuacct. */
	if (rc->v2 >= 0 && read_keyed(rc->hier[rc->v2].fd, "cpu.stat", buf) &&
	    lam__rc_key_u64(buf->data, "usage_usec", &v) &&
	    lam__rc_key_u64(buf->data, "user_usec", &user) &&
	    lam__rc_key_u64(buf->data, "system_usec", &sys)) {
		u->cpu_usage_usec = v;
		u->cpu_user_usec = user;
		u->cpu_system_usec = sys;
		u->known |= LAM_RC_USAGE_CPU;
	} else {
		int fd = hier_fd(rc, RC_CPUACCT, &v2);
		if (fd >= 0 && lam__rc_read_u64(fd, "cpuacct.usage", &v) == 0 &&
		    lam__rc_read_u64(fd, "cpuacct.usage_user", &user) == 0 &&
		    lam__rc_read_u64(fd, "cpuacct.usage_sys", &sys) == 0) {
			u->cpu_usage_usec = v / 1000;
			u->cpu_user_usec = user / 1000;
			u->cpu_system_usec = sys / 1000;
			u->known |= LAM_RC_USAGE_CPU;
		}
	}
	int fd = hier_fd(rc, RC_CPU, &v2);
	if (fd >= 0 && read_keyed(fd, "cpu.stat", buf)) {
		if (v2 && lam__rc_key_u64(buf->data, "throttled_usec", &v)) {
			u->cpu_throttled_usec = v;
			u->known |= LAM_RC_USAGE_CPU_THROTTLED;
		} else if (!v2 &&
			   lam__rc_key_u64(buf->data, "throttled_time", &v)) {
			u->cpu_throttled_usec = v / 1000;
			u->known |= LAM_RC_USAGE_CPU_THROTTLED;
		}
	}
}

static void pids_usage(lam_rc *rc, lam_rc_usage *u, lam__buf *buf)
{
	bool v2 = false;
	int fd = hier_fd(rc, RC_PIDS, &v2);
	uint64_t v;

	if (fd < 0)
		return;
	if (lam__rc_read_u64(fd, "pids.current", &v) == 0) {
		u->pids_current = v;
		u->known |= LAM_RC_USAGE_PIDS;
	}
	if (read_keyed(fd, "pids.events", buf) &&
	    lam__rc_key_u64(buf->data, "max", &v)) {
		u->pids_max_hits = v;
		u->known |= LAM_RC_USAGE_PIDS_MAX_HITS;
	}
}

/* Sum the "MAJ:MIN key=value…" lines of cgroup2's io.stat. */
static void io_v2(const char *text, lam_rc_usage *u)
{
	static const char *const keys[4] = {
		"rbytes=", "wbytes=", "rios=", "wios="};
	uint64_t *fields[4] = {&u->io_read_bytes, &u->io_write_bytes,
			       &u->io_read_ops, &u->io_write_ops};

	for (const char *p = text; *p;) {
		size_t len = strcspn(p, "\n");
		for (int k = 0; k < 4; k++) {
			size_t kl = strlen(keys[k]);
			for (const char *q = p; q < p + len; q++) {
				if ((q == p || q[-1] == ' ') &&
				    strncmp(q, keys[k], kl) == 0) {
					*fields[k] +=
						strtoull(q + kl, NULL, 10);
					break;
				}
			}
		}
		p += len;
		if (*p)
			p++;
	}
	u->known |= LAM_RC_USAGE_IO;
}

/* Sum the "MAJ:MIN Read N" and "MAJ:MIN Write N" lines of a v1 blkio
 * file. */
static void io_v1(const char *text, uint64_t *reads, uint64_t *writes)
{
	for (const char *p = text; *p;) {
		size_t len = strcspn(p, "\n");
		const char *sp = memchr(p, ' ', len);

		if (sp && memchr(p, ':', (size_t)(sp - p))) {
			if (strncmp(sp + 1, "Read ", 5) == 0)
				*reads += strtoull(sp + 6, NULL, 10);
			else if (strncmp(sp + 1, "Write ", 6) == 0)
				*writes += strtoull(sp + 7, NULL, 10);
		}
		p += len;
		if (*p)
			p++;
	}
}

static void io_usage(lam_rc *rc, lam_rc_usage *u, lam__buf *buf)
{
	bool v2 = false;
	int fd = hier_fd(rc, RC_IO, &v2);

	if (fd < 0)
		return;
	if (v2) {
		if (read_keyed(fd, "io.stat", buf))
			io_v2(buf->data, u);
		return;
	}
	if (read_keyed(fd, "blkio.throttle.io_service_bytes_recursive", buf)) {
		io_v1(buf->data, &u->io_read_bytes, &u->io_write_bytes);
		if (read_keyed(fd, "blkio.throttle.io_serviced_recursive",
			       buf)) {
			io_v1(buf->data, &u->io_read_ops, &u->io_write_ops);
			u->known |= LAM_RC_USAGE_IO;
		}
	}
}

int lam_rc_usage_get(lam_rc *rc, lam_rc_usage *out)
{
	lam__buf buf = {0};

	lam__error_reset();
	if (!out)
		return lam__error(LAM_EINVAL, "no place for the usage");
	if (out->version != LAM_RC_USAGE_VERSION)
		return lam__error(LAM_EINVAL,
				  "lam_rc_usage version %u is not %d",
				  out->version, LAM_RC_USAGE_VERSION);
	int e = lam__rc_live(rc);
	if (e < 0)
		return e;
	memset(out, 0, sizeof(*out));
	out->version = LAM_RC_USAGE_VERSION;
	usage_nomem = false;
	memory_usage(rc, out, &buf);
	cpu_usage(rc, out, &buf);
	pids_usage(rc, out, &buf);
	io_usage(rc, out, &buf);
	lam__buf_free(&buf);
	if (usage_nomem) {
		memset(out, 0, sizeof(*out));
		out->version = LAM_RC_USAGE_VERSION;
		return lam__error(LAM_ENOMEM, "out of memory reading usage");
	}
	/* A group that vanished reads as nothing: say so rather than
	 * report zeros. */
	int pfd = rc->hier[lam__rc_primary(rc)].fd;
	if (!lam__rc_has(pfd, "cgroup.procs"))
		return lam__error(LAM_ENOTFOUND, "group %s no longer exists",
				  rc->hier[lam__rc_primary(rc)].dir);
	return 0;
}

/* Events. */

void lam__rc_events_close(lam_rc *rc)
{
	int *fds[3] = {&rc->ep_fd, &rc->ino_fd, &rc->ev_fd};

	for (int i = 0; i < 3; i++) {
		if (*fds[i] >= 0)
			close(*fds[i]);
		*fds[i] = -1;
	}
}

static int add_to_epoll(lam_rc *rc, int fd)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};

	if (epoll_ctl(rc->ep_fd, EPOLL_CTL_ADD, fd, &ev) < 0)
		return lam__error_errno(errno, "events: epoll_ctl");
	return 0;
}

static int events_v2(lam_rc *rc, int hi)
{
	char path[64];

	rc->ino_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (rc->ino_fd < 0)
		return lam__error_errno(errno, "events: inotify_init1");
	/* The kernel signals changes of these files as modifications. */
	static const char *const files[] = {"memory.events", "pids.events"};
	for (size_t i = 0; i < LAM__ARRAY_LEN(files); i++) {
		int fd = rc->hier[hi].fd;
		if (i == 1) {
			if (rc->ctrl[RC_PIDS] < 0 ||
			    !rc->hier[rc->ctrl[RC_PIDS]].v2)
				continue;
			fd = rc->hier[rc->ctrl[RC_PIDS]].fd;
		}
		if (!lam__rc_has(fd, files[i]))
			continue;
		snprintf(path, sizeof(path), "/proc/self/fd/%d/%s", fd,
			 files[i]);
		if (inotify_add_watch(rc->ino_fd, path, IN_MODIFY) < 0)
			return lam__error_errno(errno, "events: watching %s/%s",
						rc->hier[hi].dir, files[i]);
	}
	return add_to_epoll(rc, rc->ino_fd);
}

static int events_v1(lam_rc *rc, int hi)
{
	char line[64];
	int ctl = openat(rc->hier[hi].fd, "memory.oom_control",
			 O_RDONLY | O_CLOEXEC);

	if (ctl < 0)
		return lam__error_errno(errno, "events: opening %s/%s",
					rc->hier[hi].dir, "memory.oom_control");
	rc->ev_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (rc->ev_fd < 0) {
		int e = errno;
		close(ctl);
		return lam__error_errno(e, "events: eventfd");
	}
	snprintf(line, sizeof(line), "%d %d", rc->ev_fd, ctl);
	int w = lam__rc_write_raw(rc->hier[hi].fd, "cgroup.event_control",
				  line);
	/* The kernel holds its own reference to the file now. */
	close(ctl);
	if (w < 0)
		return lam__error_errno(-w, "events: registering with %s/%s",
					rc->hier[hi].dir,
					"cgroup.event_control");
	return add_to_epoll(rc, rc->ev_fd);
}

int lam_rc_event_fd(int *out, lam_rc *rc)
{
	struct rc_route r;

	lam__error_reset();
	if (!out)
		return lam__error(LAM_EINVAL, "no place for the descriptor");
	*out = -1;
	int e = lam__rc_live(rc);
	if (e < 0)
		return e;
	if (rc->ep_fd >= 0) {
		*out = rc->ep_fd;
		return 0;
	}
	lam__rc_route(rc, LAM_RC_CAP_EVENTS, &r);
	if (r.hier < 0)
		return lam__error(LAM_EUNAVAILABLE, "events: unavailable: %s",
				  r.why);
	rc->ep_fd = epoll_create1(EPOLL_CLOEXEC);
	if (rc->ep_fd < 0)
		return lam__error_errno(errno, "events: epoll_create1");
	e = rc->hier[r.hier].v2 ? events_v2(rc, r.hier) : events_v1(rc, r.hier);
	if (e < 0) {
		lam__rc_events_close(rc);
		return e;
	}
	*out = rc->ep_fd;
	return 0;
}

int lam_rc_event_clear(lam_rc *rc)
{
	char buf[4096] __attribute__((aligned(8)));

	lam__error_reset();
	if (!rc || rc->ep_fd < 0)
		return lam__error(LAM_EINVAL, "events: no event descriptor");
	for (int i = 0; i < 2; i++) {
		int fd = i == 0 ? rc->ino_fd : rc->ev_fd;

		/* Both descriptors are non-blocking: read until empty. */
		while (fd >= 0) {
			ssize_t n = read(fd, buf, sizeof(buf));
			if (n > 0 || (n < 0 && errno == EINTR))
				continue;
			if (n < 0 && errno != EAGAIN)
				return lam__error_errno(errno,
							"events: clearing");
			break;
		}
	}
	return 0;
}
