/* SPDX-License-Identifier: MIT */
/*
 * Processes in a group: attach, spawn, list, freeze, thaw and kill.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "rc/internal.h"

extern char **environ;

int lam_rc_attach(lam_rc *rc, pid_t pid)
{
	char value[32];

	lam__error_reset();
	int e = lam__rc_live(rc);
	if (e < 0)
		return e;
	if (pid <= 0)
		return lam__error(LAM_EINVAL, "attaching pid %d: not a process",
				  (int)pid);
	if (kill(pid, 0) < 0 && errno == ESRCH)
		return lam__error(LAM_ENOTFOUND,
				  "attaching pid %d: no such process",
				  (int)pid);
	snprintf(value, sizeof(value), "%d", (int)pid);
	/* The v1 hierarchies first and cgroup2 last, so that a refusal by
	 * one of the limits' hierarchies leaves cgroup2 untouched. */
	for (int k = 0; k < rc->nhier; k++) {
		int i = (k + 1 + rc->v2) % rc->nhier;
		if (rc->v2 < 0)
			i = k;
		int w = lam__rc_write_raw(rc->hier[i].fd, "cgroup.procs",
					  value);
		if (w == -ESRCH)
			return lam__error(LAM_ENOTFOUND,
					  "attaching pid %d: no such process",
					  (int)pid);
		if (w < 0)
			return lam__error_errno(-w, "attaching pid %d to %s%s",
						(int)pid, rc->hier[i].dir,
						w == -ENOSPC ?
							" (its cpuset has no "
							"cpus or mems)" :
							"");
	}
	return 0;
}

int lam_rc_pids(pid_t **out, size_t *count, lam_rc *rc)
{
	pid_t *pids = NULL;
	size_t n = 0, cap = 0;

	lam__error_reset();
	if (!out || !count)
		return lam__error(LAM_EINVAL, "no place for the pids");
	*out = NULL;
	*count = 0;
	int e = lam__rc_live(rc);
	if (e < 0)
		return e;
	e = lam__rc_read_pids(rc, lam__rc_primary(rc), &pids, &n, &cap);
	if (e < 0) {
		lam__free(pids);
		return e;
	}
	if (n == 0) {
		lam__free(pids);
		pids = NULL;
	}
	*out = pids;
	*count = n;
	return 0;
}

/* Spawning. */

/* The kernel's struct clone_args up to the cgroup field (its third
 * published size), spelled out so that no kernel header is needed. */
struct rc_clone_args {
	uint64_t flags;
	uint64_t pidfd;
	uint64_t child_tid;
	uint64_t parent_tid;
	uint64_t exit_signal;
	uint64_t stack;
	uint64_t stack_size;
	uint64_t tls;
	uint64_t set_tid;
	uint64_t set_tid_size;
	uint64_t cgroup;
};

#define RC_CLONE_INTO_CGROUP 0x200000000ULL

/* What a child reports through the pipe when it cannot start. */
struct rc_child_error {
	int stage; /* 1: joining hierarchy @hier, 2: execve() */
	int hier;
	int err;
};

/* Find @file on $PATH, as execvp() would, before forking. */
static int resolve(const char *file, char **out)
{
	struct stat st;

	*out = NULL;
	if (strchr(file, '/')) {
		if (stat(file, &st) < 0)
			return lam__error_errno(errno, "spawning %s", file);
		if (!S_ISREG(st.st_mode) || access(file, X_OK) < 0)
			return lam__error(LAM_EACCES,
					  "spawning %s: not an executable file",
					  file);
		*out = lam__strdup(file);
		return *out ? 0 : lam__error(LAM_ENOMEM, "out of memory");
	}
	const char *path = getenv("PATH");
	if (!path || !*path)
		path = "/usr/local/bin:/usr/bin:/bin";
	bool denied = false;
	while (*path) {
		size_t len = strcspn(path, ":");
		char *cand =
			len ? lam__sprintf("%.*s/%s", (int)len, path, file) :
			      lam__sprintf("./%s", file);

		if (!cand)
			return lam__error(LAM_ENOMEM, "out of memory");
		if (stat(cand, &st) == 0 && S_ISREG(st.st_mode)) {
			if (access(cand, X_OK) == 0) {
				*out = cand;
				return 0;
			}
			denied = true;
		}
		lam__free(cand);
		path += len;
		if (*path == ':')
			path++;
	}
	if (denied)
		return lam__error(LAM_EACCES,
				  "spawning %s: found in $PATH but not "
				  "executable",
				  file);
	return lam__error(LAM_ENOTFOUND, "spawning %s: not found in $PATH",
			  file);
}

/*
 * The child's side: join each group in @fds (writing "0" moves the writer),
 * then execve(). Only async-signal-safe calls: the parent may have threads.
 */
static __attribute__((noreturn)) void
child(int err_fd, const int *fds, const int *fd_hier, int nfds,
      const char *path, char *const argv[], char *const envp[])
{
	struct rc_child_error ce = {0, 0, 0};

	for (int i = 0; i < nfds; i++) {
		if (write(fds[i], "0", 1) != 1) {
			ce = (struct rc_child_error){1, fd_hier[i], errno};
			goto fail;
		}
	}
	execve(path, argv, envp);
	ce = (struct rc_child_error){2, 0, errno};
fail:
	if (write(err_fd, &ce, sizeof(ce)) < 0) {
		/* Nothing else to do: the exit status tells the parent. */
	}
	_exit(127);
}

/*
 * Whether a freezer holds the group (frozen, freezing, or below a frozen
 * group): a program spawned there could not even reach execve(), and the
 * parent would wait for it forever.
 */
static bool held_frozen(lam_rc *rc)
{
	lam__buf buf = {0};
	uint64_t v = 0;
	bool held = false;
	int fz = rc->ctrl[RC_FREEZER];

	if (rc->v2 >= 0) {
		int fd = rc->hier[rc->v2].fd;
		if (lam__rc_read(fd, "cgroup.events", &buf) == 0 &&
		    lam__rc_key_u64(buf.data, "frozen", &v) && v == 1)
			held = true;
		if (lam__rc_read_u64(fd, "cgroup.freeze", &v) == 0 && v == 1)
			held = true;
	}
	if (fz >= 0 && !rc->hier[fz].v2 &&
	    lam__rc_read(rc->hier[fz].fd, "freezer.state", &buf) == 0 &&
	    strncmp(buf.data, "THAWED", 6) != 0)
		held = true;
	lam__buf_free(&buf);
	return held;
}

int lam_rc_spawn(pid_t *out, lam_rc *rc, const char *file, char *const argv[],
		 char *const envp[])
{
	int fds[RC_MAX_HIER], fd_hier[RC_MAX_HIER], nfds = 0;
	int pipefd[2] = {-1, -1};
	char *path = NULL;
	pid_t pid = -1;
	int e;

	lam__error_reset();
	if (!out)
		return lam__error(LAM_EINVAL, "no place for the pid");
	*out = 0;
	e = lam__rc_live(rc);
	if (e < 0)
		return e;
	if (!file || !*file || !argv || !argv[0])
		return lam__error(LAM_EINVAL,
				  "spawning: no program or no argv[0]");
	if (held_frozen(rc))
		return lam__error(LAM_EBUSY,
				  "spawning %s: group %s is frozen; thaw it "
				  "first, since a program started there could "
				  "not run",
				  file, rc->path);
	e = resolve(file, &path);
	if (e < 0)
		return e;
	if (!envp)
		envp = environ;

	/* Everything the child needs is opened before it exists. */
	bool into = rc->v2 >= 0;
	for (int i = 0; i < rc->nhier; i++) {
		if (into && i == rc->v2)
			continue;
		fds[nfds] = openat(rc->hier[i].fd, "cgroup.procs",
				   O_WRONLY | O_CLOEXEC);
		if (fds[nfds] < 0) {
			e = lam__error_errno(errno,
					     "spawning %s: opening %s/%s", file,
					     rc->hier[i].dir, "cgroup.procs");
			goto out;
		}
		fd_hier[nfds++] = i;
	}
	if (pipe2(pipefd, O_CLOEXEC) < 0) {
		e = lam__error_errno(errno, "spawning %s: pipe", file);
		goto out;
	}
	if (into) {
		struct rc_clone_args args;
		memset(&args, 0, sizeof(args));
		args.flags = RC_CLONE_INTO_CGROUP;
		args.exit_signal = SIGCHLD;
		args.cgroup = (uint64_t)rc->hier[rc->v2].fd;
		pid = (pid_t)syscall(SYS_clone3, &args, sizeof(args));
		if (pid == 0)
			child(pipefd[1], fds, fd_hier, nfds, path, argv, envp);
		if (pid < 0 && errno != ENOSYS && errno != E2BIG &&
		    errno != EINVAL) {
			e = lam__error_errno(errno,
					     "spawning %s: clone3 into %s",
					     file, rc->hier[rc->v2].dir);
			goto out;
		}
		if (pid < 0) {
			/* A kernel without CLONE_INTO_CGROUP: the child joins
			 * the cgroup2 group itself, like the v1 ones. */
			int v2 = rc->v2;
			fds[nfds] = openat(rc->hier[v2].fd, "cgroup.procs",
					   O_WRONLY | O_CLOEXEC);
			if (fds[nfds] < 0) {
				e = lam__error_errno(errno,
						     "spawning %s: opening "
						     "%s/cgroup.procs",
						     file, rc->hier[v2].dir);
				goto out;
			}
			fd_hier[nfds++] = v2;
		}
	}
	if (pid < 0) {
		pid = fork();
		if (pid == 0)
			child(pipefd[1], fds, fd_hier, nfds, path, argv, envp);
		if (pid < 0) {
			e = lam__error_errno(errno, "spawning %s: fork", file);
			goto out;
		}
	}
	close(pipefd[1]);
	pipefd[1] = -1;

	struct rc_child_error ce;
	ssize_t n;
	do
		n = read(pipefd[0], &ce, sizeof(ce));
	while (n < 0 && errno == EINTR);
	if (n == 0) {
		*out = pid;
		e = 0;
		goto out;
	}
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
	if (n != (ssize_t)sizeof(ce))
		e = lam__error(LAM_EIO, "spawning %s: the child failed", file);
	else if (ce.stage == 1)
		e = lam__error_errno(ce.err, "spawning %s: joining %s", file,
				     rc->hier[ce.hier].dir);
	else
		e = lam__error_errno(ce.err, "spawning %s: execve", path);
out:
	for (int i = 0; i < nfds; i++)
		close(fds[i]);
	if (pipefd[0] >= 0)
		close(pipefd[0]);
	if (pipefd[1] >= 0)
		close(pipefd[1]);
	lam__free(path);
	return e;
}

/* Freezing. */

/* Whether the group reports itself frozen. */
static int frozen(lam_rc *rc, const struct rc_route *r, bool *out)
{
	lam__buf buf = {0};
	const char *file = rc->hier[r->hier].v2 ? "cgroup.events" :
						  "freezer.state";
	int e = lam__rc_read(rc->hier[r->hier].fd, file, &buf);

	if (e < 0) {
		lam__buf_free(&buf);
		return lam__error_errno(-e, "freezing: reading %s/%s",
					rc->hier[r->hier].dir, file);
	}
	if (rc->hier[r->hier].v2) {
		uint64_t v = 0;
		*out = lam__rc_key_u64(buf.data, "frozen", &v) && v == 1;
	} else {
		*out = strncmp(buf.data, "FROZEN", 6) == 0;
	}
	lam__buf_free(&buf);
	return 0;
}

static int write_state(lam_rc *rc, const struct rc_route *r, bool freeze)
{
	bool v2 = rc->hier[r->hier].v2;
	const char *value = v2 ? (freeze ? "1" : "0") :
				 (freeze ? "FROZEN" : "THAWED");
	int w = lam__rc_write_raw(rc->hier[r->hier].fd, r->file, value);

	if (w < 0)
		return lam__error_errno(-w, "%s: writing %s to %s/%s",
					freeze ? "freezing" : "thawing", value,
					rc->hier[r->hier].dir, r->file);
	return 0;
}

int lam__rc_do_freeze(lam_rc *rc, int timeout_ms)
{
	struct rc_route r;
	int64_t deadline = timeout_ms < 0 ? INT64_MAX :
					    lam__rc_now_ms() + timeout_ms;
	int delay = 1;

	lam__rc_route(rc, LAM_RC_CAP_FREEZE, &r);
	if (r.hier < 0)
		return lam__error(LAM_EUNAVAILABLE, "freeze: unavailable: %s",
				  r.why);
	int e = write_state(rc, &r, true);
	while (e == 0) {
		bool done = false;

		e = frozen(rc, &r, &done);
		if (e < 0 || done)
			break;
		if (lam__rc_now_ms() >= deadline) {
			lam__rc_do_thaw(rc);
			return lam__error(LAM_EBUSY,
					  "freezing %s: not frozen after %d ms "
					  "(a process in uninterruptible "
					  "sleep?); thawed again",
					  rc->hier[r.hier].dir, timeout_ms);
		}
		lam__rc_sleep_ms(delay);
		if (delay < 20)
			delay *= 2;
		/* v1 moves from FREEZING to FROZEN on a later write. */
		if (!rc->hier[r.hier].v2)
			e = write_state(rc, &r, true);
	}
	return e;
}

int lam__rc_do_thaw(lam_rc *rc)
{
	struct rc_route r;

	lam__rc_route(rc, LAM_RC_CAP_FREEZE, &r);
	if (r.hier < 0)
		return lam__error(LAM_EUNAVAILABLE, "thaw: unavailable: %s",
				  r.why);
	return write_state(rc, &r, false);
}

int lam_rc_freeze(lam_rc *rc, int timeout_ms)
{
	lam__error_reset();
	int e = lam__rc_live(rc);
	return e < 0 ? e : lam__rc_do_freeze(rc, timeout_ms);
}

int lam_rc_thaw(lam_rc *rc)
{
	lam__error_reset();
	int e = lam__rc_live(rc);
	return e < 0 ? e : lam__rc_do_thaw(rc);
}

/* Killing. */

/* Signal every process listed in any of the group's hierarchies that
 * @sent does not hold yet; *fresh counts them. */
static int kill_round(lam_rc *rc, pid_t **sent, size_t *nsent, size_t *cap,
		      size_t *fresh)
{
	pid_t *pids = NULL;
	size_t n = 0, pcap = 0;
	int e = 0;

	*fresh = 0;
	for (int i = 0; i < rc->nhier && e == 0; i++)
		e = lam__rc_read_pids(rc, i, &pids, &n, &pcap);
	for (size_t i = 0; i < n && e == 0; i++) {
		bool seen = false;
		for (size_t j = 0; j < *nsent && !seen; j++)
			seen = (*sent)[j] == pids[i];
		if (seen)
			continue;
		if (kill(pids[i], SIGKILL) < 0 && errno != ESRCH) {
			e = lam__error_errno(errno, "killing pid %d",
					     (int)pids[i]);
			break;
		}
		if (*nsent == *cap) {
			size_t nc = *cap ? *cap * 2 : 16;
			pid_t *np = lam__realloc(*sent, nc * sizeof(**sent));
			if (!np) {
				e = lam__error(LAM_ENOMEM, "out of memory");
				break;
			}
			*sent = np;
			*cap = nc;
		}
		(*sent)[(*nsent)++] = pids[i];
		(*fresh)++;
	}
	lam__free(pids);
	return e;
}

int lam_rc_kill(lam_rc *rc)
{
	struct rc_route r;

	lam__error_reset();
	int e = lam__rc_live(rc);
	if (e < 0)
		return e;
	lam__rc_route(rc, LAM_RC_CAP_KILL, &r);
	if (r.file) {
		int w = lam__rc_write_raw(rc->hier[r.hier].fd, r.file, "1");
		if (w == 0)
			return 0;
		return lam__error_errno(-w, "killing: writing 1 to %s/%s",
					rc->hier[r.hier].dir, r.file);
	}

	/*
	 * No cgroup.kill: signal each process. A frozen group cannot fork
	 * meanwhile, so one round finds them all; without a freezer, rounds
	 * go on until one finds nobody new (SIGKILL stops a process before
	 * it returns to user space, so it cannot fork after it).
	 */
	pid_t *sent = NULL;
	size_t nsent = 0, cap = 0, fresh = 0;
	struct rc_route fr;
	lam__rc_route(rc, LAM_RC_CAP_FREEZE, &fr);
	bool held = fr.hier >= 0 && lam__rc_do_freeze(rc, 1000) == 0;
	lam__error_reset();
	for (int round = 0; round < 1000; round++) {
		e = kill_round(rc, &sent, &nsent, &cap, &fresh);
		if (e < 0 || fresh == 0)
			break;
	}
	if (held) {
		lam__error_saved saved;
		lam__error_save(&saved);
		int t = lam__rc_do_thaw(rc);
		if (e == 0)
			e = t;
		else
			lam__error_restore(&saved);
	}
	lam__free(sent);
	return e;
}
