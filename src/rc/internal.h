/* SPDX-License-Identifier: MIT */
/*
 * Resource-control handles: what the files of src/rc/ share.
 *
 * A handle is one group that exists in one or more hierarchies: at most one
 * cgroup2 hierarchy and the cgroup v1 hierarchies of the controllers it
 * drives there. Each controller is served by exactly one of them, or is
 * unavailable with a reason written down when the handle is set up, so that
 * every later call can say plainly why a setting cannot be honoured.
 */
#ifndef LAM_RC_INTERNAL_H
#define LAM_RC_INTERNAL_H

#include <lamina/rc.h>

#include "util/internal.h"

/* The controllers lamina drives. The first RC_NV2 also exist in cgroup2;
 * cpuacct and freezer are v1 only (cgroup2 has their function built in). */
enum rc_ctrl {
	RC_MEMORY,
	RC_CPU,
	RC_CPUSET,
	RC_PIDS,
	RC_IO,
	RC_CPUACCT,
	RC_FREEZER,
	RC_NCTRL,
};
#define RC_NV2 5

/* One per hierarchy and the cgroup2 one. */
#define RC_MAX_HIER (RC_NCTRL + 1)

/* Room for a reason, and for a path in a message. */
#define RC_WHY_MAX 320

/* The controller names, as cgroup2 and as cgroup v1 call them. */
extern const char *const lam__rc_v2_names[RC_NV2];
extern const char *const lam__rc_v1_names[RC_NCTRL];

/* Where the hierarchies are mounted. */
struct rc_layout {
	char *v2;	    /* the cgroup2 mount point, or NULL */
	char *v1[RC_NCTRL]; /* each v1 controller's mount point, or NULL */
	bool detected;	    /* found in mountinfo, not given */
};

int lam__rc_layout_get(struct rc_layout *out, const lam_rc_options *options);
void lam__rc_layout_free(struct rc_layout *layout);

/* One hierarchy in which the group exists. */
struct rc_hier {
	bool v2;
	char *mount;   /* the mount point, for messages */
	char *dir;     /* the group's folder, for messages */
	int parent_fd; /* the parent group's folder */
	int fd;	       /* the group's folder, or -1 */
	bool removed;
};

struct lam_rc {
	char *path; /* "parent/name", or "name" under the root */
	char *name;
	lam_rc_mode mode; /* V2, V1 or HYBRID */
	struct rc_hier hier[RC_MAX_HIER];
	int nhier;
	int v2;		    /* the index of the cgroup2 hierarchy, or -1 */
	int ctrl[RC_NCTRL]; /* the hierarchy serving each controller, or -1 */
	char why[RC_NCTRL][RC_WHY_MAX]; /* why ctrl[c] is -1 */
	bool removed;
	/* The event descriptor and its sources (usage.c). */
	int ep_fd;
	int ino_fd;
	int ev_fd;
};

/* rc.c: checks and files. */
int lam__rc_live(const lam_rc *rc);
/* lam__rc_live(), and the group's folder is still there. */
int lam__rc_exists(const lam_rc *rc);
/* Read a whole cgroup file (their sizes are not known in advance). */
int lam__rc_read(int dirfd, const char *file, lam__buf *out);
/* Read a file holding one number or "max" (LAM_RC_MAX). */
int lam__rc_read_u64(int dirfd, const char *file, uint64_t *out);
/* Find "key N" in a flat-keyed file's text; false when missing. */
bool lam__rc_key_u64(const char *text, const char *key, uint64_t *out);
/* Write a value; -errno on failure, never touching the error record. */
int lam__rc_write_raw(int dirfd, const char *file, const char *value);
bool lam__rc_has(int dirfd, const char *file);
/* The hierarchy that lists, freezes and kills the group's processes. */
int lam__rc_primary(const lam_rc *rc);
/* The pids in one hierarchy's cgroup.procs, appended to *pids. */
int lam__rc_read_pids(const lam_rc *rc, int hi, pid_t **pids, size_t *n,
		      size_t *cap);
void lam__rc_sleep_ms(int ms);
/* snprintf() for reasons and paths, where cutting a long one short is
 * the intent. */
void lam__rc_fmt(char *buf, size_t size, const char *fmt, ...)
	LAM__PRINTF(3, 4);
/* Milliseconds on the monotonic clock. */
int64_t lam__rc_now_ms(void);

/* settings.c: how a cap is served. */
struct rc_route {
	int hier;	  /* the hierarchy, or -1 when unavailable */
	const char *file; /* the file written there */
	char how[128];
	char why[RC_WHY_MAX];
};
void lam__rc_route(lam_rc *rc, lam_rc_cap cap, struct rc_route *out);

/* procs.c */
int lam__rc_do_freeze(lam_rc *rc, int timeout_ms);
int lam__rc_do_thaw(lam_rc *rc);

/* usage.c */
void lam__rc_events_close(lam_rc *rc);

#endif
