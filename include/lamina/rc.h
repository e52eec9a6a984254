/* SPDX-License-Identifier: MIT */
/**
 * @file lamina/rc.h
 * @brief lam_rc: a resource-control handle over one cgroup.
 *
 * A lam_rc is one control group that lamina creates (or opens) under a
 * parent group the host names. It speaks cgroup v2, the cgroup v1
 * controllers, and the hybrid layout that mixes them: on a hybrid host each
 * controller is driven where the kernel has bound it, and the group also
 * exists in the cgroup2 hierarchy for freezing, killing and spawning. The
 * host may force v2 or v1 instead (lam_rc_options.mode).
 *
 * Settings take cgroup v2 units (cpu.weight 1–10000, io.weight 1–10000,
 * bytes, microseconds); on v1 they are converted the way runc and crun
 * convert them (see docs/rc.md for each formula). A setting the host cannot
 * honour — the controller is missing, not enabled in the parent's
 * cgroup.subtree_control, not delegated, or not permitted — fails with
 * LAM_EUNAVAILABLE and a message naming the setting and the reason; lamina
 * never drops a setting silently. lam_rc_cap_check() and
 * lam_rc_caps_foreach() tell in advance what is available.
 *
 * Groups are named relative to the root of each hierarchy as this process
 * sees it (the mount point of the hierarchy), for example "lamina/build-42".
 *
 * Lifetime: lam_rc_create() and lam_rc_open() return a handle that the
 * caller frees with lam_rc_free(). Freeing never removes the group;
 * lam_rc_remove() does, once the group is empty.
 *
 * Threading: a handle is used by one thread at a time but may move between
 * threads. Handles are not usable in a child after fork().
 */
#ifndef LAMINA_RC_H
#define LAMINA_RC_H

#include <sys/types.h>

#include <lamina/common.h>
#include <lamina/error.h>

#ifdef __cplusplus
extern "C" {
#endif

/** A resource-control handle: one cgroup. @since 0.1 */
typedef struct lam_rc lam_rc;

/** "No limit", for every setting that takes a number. @since 0.1 */
#define LAM_RC_MAX UINT64_MAX

/** Which cgroup hierarchies a handle uses. @since 0.1 */
typedef enum lam_rc_mode {
	/** Detect: cgroup2 where the kernel binds a controller to it, the v1
	 * hierarchy of each other controller (hybrid hosts). */
	LAM_RC_MODE_AUTO = 0,
	/** Only the cgroup2 hierarchy. */
	LAM_RC_MODE_V2 = 1,
	/** Only the cgroup v1 hierarchies. */
	LAM_RC_MODE_V1 = 2,
	/** Reported by lam_rc_get_mode() when a handle uses both kinds. */
	LAM_RC_MODE_HYBRID = 3,
} lam_rc_mode;

/** Flags for lam_rc_options.flags. @since 0.1 */
enum lam_rc_flags {
	/**
	 * Leave cgroup.subtree_control alone. By default lam_rc_create()
	 * enables, on cgroup v2, the controllers lamina drives (cpu, cpuset,
	 * io, memory, pids) in the subtree_control of each group from the
	 * root down to the parent, where they are available and not enabled
	 * yet, as runc and crun do.
	 */
	LAM_RC_NO_ENABLE = 1u << 0,
};

#define LAM_RC_OPTIONS_VERSION 1

/** Options for lam_rc_create() and lam_rc_open(). @since 0.1 */
typedef struct lam_rc_options {
	unsigned int version; /**< LAM_RC_OPTIONS_VERSION */
	unsigned int mode;    /**< a lam_rc_mode other than HYBRID */
	unsigned int flags;   /**< lam_rc_flags */
	/**
	 * The folder where the cgroup2 hierarchy is mounted, or NULL to find
	 * it in /proc/self/mountinfo. Meant for tests and for hosts with
	 * unusual mounts.
	 */
	const char *v2_root;
	/**
	 * A folder holding one folder per cgroup v1 controller hierarchy
	 * ("memory", "cpu", "cpuacct", "cpuset", "pids", "blkio", "freezer";
	 * missing ones are absent controllers), or NULL to find them in
	 * /proc/self/mountinfo. When either root is given, detection is off
	 * and only the given roots are used.
	 */
	const char *v1_root;
} lam_rc_options;

/** Initialise a lam_rc_options. @since 0.1 */
/* clang-format off */
#define LAM_RC_OPTIONS_INIT {LAM_RC_OPTIONS_VERSION, LAM_RC_MODE_AUTO, 0, NULL, NULL}
/* clang-format on */

/**
 * Create a new, empty group @p name under the group @p parent.
 *
 * The group is created in every hierarchy the handle uses (see
 * lam_rc_options.mode). The parent must exist; a host that wants a parent
 * of its own creates it with lam_rc_create() first. On a cgroup v1 cpuset
 * hierarchy the new group starts with its parent's cpus and mems, since an
 * empty cpuset could hold no process.
 *
 * @param[out] out the new handle; the caller frees it with lam_rc_free().
 *             NULL on failure.
 * @param[in] parent a group path relative to the hierarchy root ("a/b"; a
 *            leading "/" is allowed), or NULL or "" for the root.
 * @param[in] name the new group's name: 1 to 255 of `A-Z a-z 0-9 . _ - + :
 *            @`, not starting with "." and not "cgroup.…".
 * @param[in] options NULL for the defaults.
 * @return 0, or LAM_EBADNAME (a bad @p name or @p parent), LAM_ENOTFOUND
 *         (the parent does not exist), LAM_EEXISTS (the group exists),
 *         LAM_EUNAVAILABLE (no cgroup hierarchy of the requested kind is
 *         mounted), LAM_EACCES (not allowed to create it), LAM_EINVAL,
 *         LAM_EIO, LAM_ENOMEM. On failure nothing is left created.
 * @since 0.1
 */
LAM_API int lam_rc_create(lam_rc **out, const char *parent, const char *name,
			  const lam_rc_options *options);

/**
 * Open an existing group, which must exist in every hierarchy the handle
 * uses.
 *
 * @param[out] out the handle; the caller frees it with lam_rc_free(). NULL
 *             on failure.
 * @param[in] parent as for lam_rc_create().
 * @param[in] name as for lam_rc_create().
 * @param[in] options NULL for the defaults; LAM_RC_NO_ENABLE is implied.
 * @return 0, or LAM_EBADNAME, LAM_ENOTFOUND (the group or its parent is
 *         missing in a hierarchy; the message names it), LAM_EUNAVAILABLE,
 *         LAM_EACCES, LAM_EINVAL, LAM_EIO, LAM_ENOMEM.
 * @since 0.1
 */
LAM_API int lam_rc_open(lam_rc **out, const char *parent, const char *name,
			const lam_rc_options *options);

/**
 * Remove the group from every hierarchy, once it holds no process.
 *
 * Waits up to @p timeout_ms for the processes in the group to exit (kill
 * them first with lam_rc_kill() if they should not finish on their own).
 * Afterwards the handle only answers lam_rc_path() and lam_rc_free(); other
 * calls fail with LAM_ENOTFOUND.
 *
 * @param[in] rc the handle.
 * @param[in] timeout_ms how long to wait, in milliseconds; 0 to not wait,
 *            -1 to wait as long as it takes.
 * @return 0, or LAM_EBUSY (processes or child groups remain after the
 *         timeout; the group is left in place), LAM_ENOTFOUND (already
 *         removed), LAM_EACCES, LAM_EIO.
 * @since 0.1
 */
LAM_API int lam_rc_remove(lam_rc *rc, int timeout_ms);

/** Release a handle, leaving the group as it is. Accepts NULL. @since 0.1 */
LAM_API void lam_rc_free(lam_rc *rc);

/**
 * The group's path relative to the hierarchy root ("parent/name").
 * @return borrowed, valid while @p rc lives.
 * @since 0.1
 */
LAM_API const char *lam_rc_path(const lam_rc *rc);

/**
 * Which kinds of hierarchy the handle uses: LAM_RC_MODE_V2, LAM_RC_MODE_V1
 * or LAM_RC_MODE_HYBRID.
 * @since 0.1
 */
LAM_API lam_rc_mode lam_rc_get_mode(const lam_rc *rc);

/**
 * The settings and features a host may or may not be able to honour; the
 * names lam_rc_cap_name() gives are those of the cgroup v2 files.
 * @since 0.1
 */
typedef enum lam_rc_cap {
	LAM_RC_CAP_MEMORY_MAX = 0,	/**< "memory.max" */
	LAM_RC_CAP_MEMORY_HIGH = 1,	/**< "memory.high" */
	LAM_RC_CAP_MEMORY_SWAP_MAX = 2, /**< "memory.swap.max" */
	LAM_RC_CAP_CPU_WEIGHT = 3,	/**< "cpu.weight" */
	LAM_RC_CAP_CPU_MAX = 4,		/**< "cpu.max" */
	LAM_RC_CAP_CPUSET_CPUS = 5,	/**< "cpuset.cpus" */
	LAM_RC_CAP_CPUSET_MEMS = 6,	/**< "cpuset.mems" */
	LAM_RC_CAP_PIDS_MAX = 7,	/**< "pids.max" */
	LAM_RC_CAP_IO_WEIGHT = 8,	/**< "io.weight" */
	LAM_RC_CAP_IO_MAX = 9,		/**< "io.max" */
	LAM_RC_CAP_FREEZE = 10,		/**< "freeze": lam_rc_freeze() */
	LAM_RC_CAP_KILL = 11,		/**< "kill": lam_rc_kill() */
	LAM_RC_CAP_SPAWN = 12,		/**< "spawn": lam_rc_spawn() */
	LAM_RC_CAP_EVENTS = 13,		/**< "events": lam_rc_event_fd() */
	LAM_RC_CAP_COUNT = 14,		/**< the number of caps */
} lam_rc_cap;

/**
 * The name of a cap ("memory.max", "freeze").
 * @return a static string; "unknown" for a value out of range.
 * @since 0.1
 */
LAM_API const char *lam_rc_cap_name(lam_rc_cap cap);

/**
 * Whether this handle can honour a setting or feature.
 * @param[in] rc the handle.
 * @param[in] cap what to ask about.
 * @return 0 when available, LAM_EUNAVAILABLE with the reason in the
 *         message, LAM_EINVAL (an unknown @p cap), LAM_ENOTFOUND (the group
 *         was removed).
 * @since 0.1
 */
LAM_API int lam_rc_cap_check(lam_rc *rc, lam_rc_cap cap);

/**
 * Called once per cap by lam_rc_caps_foreach().
 * @param[in] cap the cap.
 * @param[in] how how lamina honours it ("cgroup v1 memory.limit_in_bytes"),
 *            or NULL when it cannot; borrowed for the call.
 * @param[in] why_not why it cannot, or NULL when it can; borrowed for the
 *            call.
 * @param[in] userdata as given.
 * @return 0 to go on; non-zero stops the iteration and is returned.
 * @since 0.1
 */
typedef int (*lam_rc_caps_cb)(lam_rc_cap cap, const char *how,
			      const char *why_not, void *userdata);

/**
 * Call @p cb for every cap, in lam_rc_cap order.
 * @return 0, a non-zero value from @p cb, LAM_ENOTFOUND (removed).
 * @since 0.1
 */
LAM_API int lam_rc_caps_foreach(lam_rc *rc, lam_rc_caps_cb cb, void *userdata);

/**
 * Limit the memory the group may use (memory.max; v1
 * memory.limit_in_bytes). The kernel reclaims, then OOM-kills, past it.
 *
 * On v1, where swap is limited together with memory
 * (memory.memsw.limit_in_bytes), the swap allowance set with
 * lam_rc_set_memory_swap_max() is kept; LAM_RC_MAX removes both limits.
 *
 * @param[in] rc the handle.
 * @param[in] bytes the limit, more than 0, or LAM_RC_MAX.
 * @return 0, LAM_EINVAL (0), LAM_EUNAVAILABLE, LAM_EBUSY (v1: the group
 *         uses more and nothing could be reclaimed), LAM_ENOTFOUND, LAM_EIO.
 * @since 0.1
 */
LAM_API int lam_rc_set_memory_max(lam_rc *rc, uint64_t bytes);

/**
 * Throttle the group's memory above a level (memory.high). cgroup v1 has
 * no equivalent, so on v1 this fails with LAM_EUNAVAILABLE.
 * @param[in] bytes the level, more than 0, or LAM_RC_MAX.
 * @return 0, LAM_EINVAL, LAM_EUNAVAILABLE, LAM_ENOTFOUND, LAM_EIO.
 * @since 0.1
 */
LAM_API int lam_rc_set_memory_high(lam_rc *rc, uint64_t bytes);

/**
 * Limit the swap the group may use (memory.swap.max). On v1 the limit
 * becomes memory.memsw.limit_in_bytes = memory limit + @p bytes, so a
 * memory limit must be set first.
 * @param[in] bytes the limit (0 for no swap), or LAM_RC_MAX.
 * @return 0, LAM_EINVAL, LAM_EUNAVAILABLE (also: swap accounting off; v1
 *         without a memory limit), LAM_ENOTFOUND, LAM_EIO.
 * @since 0.1
 */
LAM_API int lam_rc_set_memory_swap_max(lam_rc *rc, uint64_t bytes);

/**
 * Set the group's share of cpu time against its siblings (cpu.weight; on
 * v1 cpu.shares = lam_rc_cpu_weight_to_shares(@p weight)).
 * @param[in] weight 1 to 10000; 100 is the kernel's default.
 * @return 0, LAM_EINVAL, LAM_EUNAVAILABLE, LAM_ENOTFOUND, LAM_EIO.
 * @since 0.1
 */
LAM_API int lam_rc_set_cpu_weight(lam_rc *rc, uint64_t weight);

/**
 * Cap the group's cpu time: at most @p quota_us in every @p period_us
 * (cpu.max; v1 cpu.cfs_quota_us and cpu.cfs_period_us). 20000 in 100000
 * is 20% of one cpu; 200000 in 100000 is two cpus.
 * @param[in] quota_us at least 1000, or LAM_RC_MAX for no cap.
 * @param[in] period_us 1000 to 1000000, or 0 for the default 100000.
 * @return 0, LAM_EINVAL, LAM_EUNAVAILABLE, LAM_ENOTFOUND, LAM_EIO.
 * @since 0.1
 */
LAM_API int lam_rc_set_cpu_max(lam_rc *rc, uint64_t quota_us,
			       uint64_t period_us);

/**
 * Restrict the group to some cpus (cpuset.cpus).
 * @param[in] cpus a list such as "0-3,6".
 * @return 0, LAM_EINVAL (a malformed list, or cpus the parent lacks),
 *         LAM_EUNAVAILABLE, LAM_ENOTFOUND, LAM_EIO.
 * @since 0.1
 */
LAM_API int lam_rc_set_cpuset_cpus(lam_rc *rc, const char *cpus);

/**
 * Restrict the group to some memory nodes (cpuset.mems).
 * @param[in] mems a list such as "0" or "0-1".
 * @return as lam_rc_set_cpuset_cpus().
 * @since 0.1
 */
LAM_API int lam_rc_set_cpuset_mems(lam_rc *rc, const char *mems);

/**
 * Limit how many processes and threads the group may hold (pids.max);
 * fork() and clone() fail with EAGAIN past it.
 * @param[in] max at least 1, or LAM_RC_MAX.
 * @return 0, LAM_EINVAL, LAM_EUNAVAILABLE, LAM_ENOTFOUND, LAM_EIO.
 * @since 0.1
 */
LAM_API int lam_rc_set_pids_max(lam_rc *rc, uint64_t max);

/**
 * Set the group's share of block I/O against its siblings (io.weight, or
 * io.bfq.weight; on v1 blkio.weight or blkio.bfq.weight =
 * lam_rc_io_weight_to_blkio_weight(@p weight)).
 * @param[in] weight 1 to 10000; 100 is the kernel's default.
 * @return 0, LAM_EINVAL, LAM_EUNAVAILABLE (also: no I/O scheduler with
 *         weights), LAM_ENOTFOUND, LAM_EIO.
 * @since 0.1
 */
LAM_API int lam_rc_set_io_weight(lam_rc *rc, uint64_t weight);

/**
 * Limit the group's I/O on one block device (io.max; v1 the four
 * blkio.throttle.*_device files).
 * @param[in] major the device's major number.
 * @param[in] minor the device's minor number.
 * @param[in] read_bps bytes read per second, more than 0, or LAM_RC_MAX.
 * @param[in] write_bps bytes written per second, or LAM_RC_MAX.
 * @param[in] read_iops read operations per second, or LAM_RC_MAX.
 * @param[in] write_iops write operations per second, or LAM_RC_MAX.
 * @return 0, LAM_EINVAL, LAM_ENOTFOUND (no such block device, or the
 *         group was removed), LAM_EUNAVAILABLE, LAM_EIO.
 * @since 0.1
 */
LAM_API int lam_rc_set_io_max(lam_rc *rc, unsigned int major,
			      unsigned int minor, uint64_t read_bps,
			      uint64_t write_bps, uint64_t read_iops,
			      uint64_t write_iops);

/**
 * Convert cgroup v1 cpu.shares (2–262144) to cgroup v2 cpu.weight
 * (1–10000) as crun and runc do: 1 + ((shares - 2) * 9999) / 262142, with
 * out-of-range input clamped first.
 * @since 0.1
 */
LAM_API uint64_t lam_rc_cpu_shares_to_weight(uint64_t shares);

/**
 * The inverse of lam_rc_cpu_shares_to_weight():
 * 2 + ((weight - 1) * 262142) / 9999, with @p weight clamped to 1–10000.
 * @since 0.1
 */
LAM_API uint64_t lam_rc_cpu_weight_to_shares(uint64_t weight);

/**
 * Convert cgroup v1 blkio.weight (10–1000) to cgroup v2 io.weight
 * (1–10000) as crun and runc do: 1 + ((blkio - 10) * 9999) / 990, with
 * out-of-range input clamped first.
 * @since 0.1
 */
LAM_API uint64_t lam_rc_blkio_weight_to_io_weight(uint64_t blkio_weight);

/**
 * The inverse of lam_rc_blkio_weight_to_io_weight():
 * 10 + ((weight - 1) * 990) / 9999, with @p weight clamped to 1–10000.
 * @since 0.1
 */
LAM_API uint64_t lam_rc_io_weight_to_blkio_weight(uint64_t io_weight);

/**
 * Move a running process (all its threads) into the group, in every
 * hierarchy the handle uses.
 * @param[in] rc the handle.
 * @param[in] pid the process, more than 0.
 * @return 0, LAM_EINVAL, LAM_ENOTFOUND (no such process, or the group was
 *         removed), LAM_EACCES, LAM_EIO. On failure the process may have
 *         moved in some hierarchies already; the message names where it
 *         failed.
 * @since 0.1
 */
LAM_API int lam_rc_attach(lam_rc *rc, pid_t pid);

/**
 * Start a program inside the group, with no moment at which it runs
 * outside it.
 *
 * On cgroup v2 the child is created inside the group by clone3() with
 * CLONE_INTO_CGROUP. Where that is not enough (v1 hierarchies, kernels
 * before 5.7), the child moves itself into each v1 group before it calls
 * execve(), and the program starts only after every move succeeded. The
 * child inherits the caller's file descriptors (those without
 * close-on-exec), signal mask, working folder and credentials. The caller
 * reaps it with waitpid().
 *
 * @param[out] out the child's pid; 0 on failure.
 * @param[in] rc the handle.
 * @param[in] file the program; without a "/" it is searched for in $PATH.
 * @param[in] argv the arguments, argv[0] first, ending with NULL.
 * @param[in] envp the environment, ending with NULL; NULL for the
 *            caller's.
 * @return 0, or LAM_ENOTFOUND (no such program, or the group was removed),
 *         LAM_EACCES (not executable), LAM_EBUSY (the group is frozen: the
 *         program could not start until thawed), LAM_EINVAL, LAM_EIO (the move or
 *         execve() failed in the child; the message says which and why),
 *         LAM_ENOMEM. On failure no child is left running.
 * @since 0.1
 */
LAM_API int lam_rc_spawn(pid_t *out, lam_rc *rc, const char *file,
			 char *const argv[], char *const envp[]);

/**
 * List the processes in the group (cgroup.procs of the hierarchy that
 * freezes and kills it).
 * @param[out] out an array of pids; the caller frees it with lam_free().
 *             NULL when the group is empty, and on failure.
 * @param[out] count the number of pids.
 * @param[in] rc the handle.
 * @return 0, LAM_ENOTFOUND (removed), LAM_EIO, LAM_ENOMEM.
 * @since 0.1
 */
LAM_API int lam_rc_pids(pid_t **out, size_t *count, lam_rc *rc);

/**
 * Freeze every process in the group (cgroup.freeze; v1 freezer.state) and
 * wait until they are all frozen.
 * @param[in] rc the handle.
 * @param[in] timeout_ms how long to wait; -1 for as long as it takes.
 * @return 0, LAM_EBUSY (not frozen in time; the group is thawed again),
 *         LAM_EUNAVAILABLE, LAM_ENOTFOUND, LAM_EIO.
 * @since 0.1
 */
LAM_API int lam_rc_freeze(lam_rc *rc, int timeout_ms);

/**
 * Let the processes of a frozen group run again.
 * @return 0, LAM_EUNAVAILABLE, LAM_ENOTFOUND, LAM_EIO.
 * @since 0.1
 */
LAM_API int lam_rc_thaw(lam_rc *rc);

/**
 * Send SIGKILL to every process in the group (cgroup.kill where the kernel
 * has it; otherwise each process in turn, with the group frozen meanwhile
 * where a freezer is available, so that no fork escapes). Returns once the
 * signals are sent; lam_rc_remove() waits for the processes to be gone.
 * @return 0, LAM_ENOTFOUND, LAM_EACCES, LAM_EIO.
 * @since 0.1
 */
LAM_API int lam_rc_kill(lam_rc *rc);

/** Bits of lam_rc_usage.known: which fields hold a value. @since 0.1 */
enum lam_rc_usage_fields {
	LAM_RC_USAGE_MEMORY = 1u << 0,		/**< memory_current */
	LAM_RC_USAGE_MEMORY_PEAK = 1u << 1,	/**< memory_peak */
	LAM_RC_USAGE_MEMORY_MAX_HITS = 1u << 2, /**< memory_max_hits */
	LAM_RC_USAGE_OOM = 1u << 3,		/**< oom */
	LAM_RC_USAGE_OOM_KILL = 1u << 4,	/**< oom_kill */
	LAM_RC_USAGE_CPU = 1u << 5,	      /**< cpu_usage/user/system_usec */
	LAM_RC_USAGE_CPU_THROTTLED = 1u << 6, /**< cpu_throttled_usec */
	LAM_RC_USAGE_PIDS = 1u << 7,	      /**< pids_current */
	LAM_RC_USAGE_PIDS_MAX_HITS = 1u << 8, /**< pids_max_hits */
	LAM_RC_USAGE_IO = 1u << 9,	      /**< io_* */
};

#define LAM_RC_USAGE_VERSION 1

/**
 * What a group has used, as lam_rc_usage_get() reads it. Fields whose bit
 * is missing from @c known could not be read on this host and hold 0.
 * @since 0.1
 */
typedef struct lam_rc_usage {
	unsigned int version;	 /**< set by the caller: LAM_RC_USAGE_VERSION */
	unsigned int known;	 /**< lam_rc_usage_fields */
	uint64_t memory_current; /**< bytes in use now */
	uint64_t memory_peak;	 /**< the most bytes in use at once */
	uint64_t memory_max_hits;    /**< times usage hit the memory limit */
	uint64_t oom;		     /**< OOM events in the group */
	uint64_t oom_kill;	     /**< processes the OOM killer killed */
	uint64_t cpu_usage_usec;     /**< cpu time, user plus system */
	uint64_t cpu_user_usec;	     /**< cpu time in user mode */
	uint64_t cpu_system_usec;    /**< cpu time in the kernel */
	uint64_t cpu_throttled_usec; /**< time held back by cpu.max */
	uint64_t pids_current;	     /**< processes and threads now */
	uint64_t pids_max_hits;	     /**< forks refused by pids.max */
	uint64_t io_read_bytes;	     /**< bytes read from block devices */
	uint64_t io_write_bytes;
	uint64_t io_read_ops;
	uint64_t io_write_ops;
} lam_rc_usage;

/** Initialise a lam_rc_usage. @since 0.1 */
/* clang-format off */
#define LAM_RC_USAGE_INIT {LAM_RC_USAGE_VERSION, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
/* clang-format on */

/**
 * Read what the group has used so far. See docs/rc.md for the file each
 * field comes from on v2 and on v1.
 * @param[in] rc the handle.
 * @param[in,out] out its version must be set (LAM_RC_USAGE_INIT); filled
 *                on success.
 * @return 0, LAM_EINVAL (an unknown version), LAM_ENOTFOUND (removed),
 *         LAM_EIO.
 * @since 0.1
 */
LAM_API int lam_rc_usage_get(lam_rc *rc, lam_rc_usage *out);

/**
 * A file descriptor that becomes readable (POLLIN) when the group meets
 * memory trouble: an OOM event or OOM kill, and on cgroup v2 also a hit of
 * memory.max or memory.high, and of pids.max. After it wakes, call
 * lam_rc_event_clear() and read the counters with lam_rc_usage_get().
 *
 * On v2 it watches memory.events and pids.events; on v1 it is registered
 * for memory.oom_control through cgroup.event_control, which reports OOM
 * only (and wakes once more when the group is removed).
 *
 * @param[out] out the descriptor, owned by the handle and valid until
 *             lam_rc_free(); -1 on failure. Do not read from or close it.
 * @param[in] rc the handle.
 * @return 0, LAM_EUNAVAILABLE (no memory controller), LAM_ENOTFOUND, LAM_EIO.
 * @since 0.1
 */
LAM_API int lam_rc_event_fd(int *out, lam_rc *rc);

/**
 * Consume the wake-ups pending on the event descriptor, so that it blocks
 * until the next event.
 * @return 0, LAM_EINVAL (no event descriptor yet), LAM_EIO.
 * @since 0.1
 */
LAM_API int lam_rc_event_clear(lam_rc *rc);

#ifdef __cplusplus
}
#endif

#endif
