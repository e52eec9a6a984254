/* SPDX-License-Identifier: MIT */
/*
 * The "rc" group: run a command in a fresh cgroup with limits, and list
 * what this host's cgroups can honour. Neither needs a store.
 *
 * Both create their group under a parent ("lamina" by default). A parent
 * that does not exist is created for the run and removed after it when
 * nothing else uses it, so that the tool never leaves behind anything it
 * made.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

/* Exit statuses of "rc run" for its own failures, as env(1) and
 * timeout(1) use them: the command's status is passed on otherwise. */
#define RC_EXIT_FAILED	   125
#define RC_EXIT_CANNOT_RUN 126
#define RC_EXIT_NOT_FOUND  127

#define RC_DEFAULT_PARENT "lamina"

/* The parent group of a run, and whether this run created it. */
struct rc_parent {
	lam_rc *created;
};

/*
 * Make sure the group @name exists, creating it (its last level only) when
 * it is missing. Returns 0 or a lamina error code, reported.
 */
static int parent_get(struct rc_parent *p, const char *name)
{
	const char *slash = strrchr(name, '/');
	const char *last = slash ? slash + 1 : name;
	char *up = NULL;
	lam_rc *rc;
	int r;

	p->created = NULL;
	if (name[strspn(name, "/")] == '\0')
		return 0; /* the root of the hierarchies */
	if (slash) {
		up = strndup(name, (size_t)(slash - name));
		if (!up) {
			cli_oom();
			return LAM_ENOMEM;
		}
	}
	r = lam_rc_open(&rc, up, last, NULL);
	if (r == 0)
		lam_rc_free(rc);
	else if (r == LAM_ENOTFOUND)
		r = lam_rc_create(&p->created, up, last, NULL);
	free(up);
	/* Another run may have made it meanwhile. */
	if (r == LAM_EEXISTS)
		r = 0;
	if (r < 0)
		cli_check(r);
	return r;
}

/* Remove the parent if this run created it and nothing else uses it. */
static void parent_put(struct rc_parent *p)
{
	if (!p->created)
		return;
	/* Busy means another run is inside it: that run removes it. */
	lam_rc_remove(p->created, 0);
	lam_rc_free(p->created);
	p->created = NULL;
}

/* Create a group named @prefix-PID under @parent, creating a missing
 * parent as parent_get() does. */
static int group_new(lam_rc **out, struct rc_parent *p, const char *parent,
		     const char *prefix)
{
	char name[64];
	int r;

	*out = NULL;
	snprintf(name, sizeof(name), "%s-%d", prefix, (int)getpid());
	/* A concurrent run may remove a parent it created just after we
	 * found it: try once more. */
	for (int attempt = 0;; attempt++) {
		r = parent_get(p, parent);
		if (r < 0)
			return r;
		r = lam_rc_create(out, parent, name, NULL);
		if (r == 0)
			return 0;
		if (r != LAM_ENOTFOUND || attempt == 1) {
			cli_check(r);
			parent_put(p);
			return r;
		}
		parent_put(p);
	}
}

/* "64M", "1G", "4096", "max": bytes with binary suffixes. */
static bool parse_bytes(const char *s, uint64_t *out)
{
	char *end;
	uint64_t v, mult = 1;

	if (strcmp(s, "max") == 0) {
		*out = LAM_RC_MAX;
		return true;
	}
	if (*s < '0' || *s > '9')
		return false;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return false;
	switch (*end) {
	case 'K':
	case 'k':
		mult = 1ull << 10;
		end++;
		break;
	case 'M':
	case 'm':
		mult = 1ull << 20;
		end++;
		break;
	case 'G':
	case 'g':
		mult = 1ull << 30;
		end++;
		break;
	case 'T':
	case 't':
		mult = 1ull << 40;
		end++;
		break;
	default:
		break;
	}
	if (*end == 'i' && end[1] == 'B' && mult > 1)
		end += 2;
	else if (*end == 'B' && mult > 1)
		end++;
	if (*end != '\0' || (v && mult > UINT64_MAX / v))
		return false;
	*out = v * mult;
	return true;
}

static bool parse_number(const char *s, uint64_t *out)
{
	char *end;

	if (strcmp(s, "max") == 0) {
		*out = LAM_RC_MAX;
		return true;
	}
	if (*s < '0' || *s > '9')
		return false;
	errno = 0;
	*out = strtoull(s, &end, 10);
	return errno == 0 && *end == '\0';
}

/* "QUOTA/PERIOD", "QUOTA" (the default period) or "max[/PERIOD]". */
static bool parse_cpu_max(const char *s, uint64_t *quota, uint64_t *period)
{
	const char *slash = strchr(s, '/');
	char q[32];

	*period = 0;
	if (slash) {
		size_t len = (size_t)(slash - s);
		if (len >= sizeof(q) || !parse_number(slash + 1, period) ||
		    *period == LAM_RC_MAX)
			return false;
		memcpy(q, s, len);
		q[len] = '\0';
		s = q;
	}
	return parse_number(s, quota);
}

/* The pid of the running command, for the signal handler. */
static volatile sig_atomic_t child_pid;

/*
 * While the command runs the tool stays alive to clean up: a terminal's
 * SIGINT and SIGQUIT reach the command through its process group, and a
 * SIGTERM sent to the tool is passed on. A handler (rather than SIG_IGN)
 * is reset by execve(), so the command starts with the default actions.
 */
static void on_signal(int sig)
{
	if (sig == SIGTERM && child_pid > 0)
		kill((pid_t)child_pid, SIGTERM);
}

static void handle_signals(bool on)
{
	struct sigaction sa;
	static const int sigs[] = {SIGINT, SIGQUIT, SIGTERM};

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on ? on_signal : SIG_DFL;
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		sigaction(sigs[i], &sa, NULL);
}

/* The usage record of a finished run, as one line of JSON. */
static void print_usage(FILE *out, lam_rc *rc, int status, int64_t wall_ms,
			const lam_rc_usage *u)
{
	struct {
		const char *key;
		unsigned int bit;
		uint64_t value;
	} fields[] = {
		{"memory_peak", LAM_RC_USAGE_MEMORY_PEAK, u->memory_peak},
		{"memory_max_hits", LAM_RC_USAGE_MEMORY_MAX_HITS,
		 u->memory_max_hits},
		{"oom", LAM_RC_USAGE_OOM, u->oom},
		{"oom_kill", LAM_RC_USAGE_OOM_KILL, u->oom_kill},
		{"cpu_usage_usec", LAM_RC_USAGE_CPU, u->cpu_usage_usec},
		{"cpu_user_usec", LAM_RC_USAGE_CPU, u->cpu_user_usec},
		{"cpu_system_usec", LAM_RC_USAGE_CPU, u->cpu_system_usec},
		{"cpu_throttled_usec", LAM_RC_USAGE_CPU_THROTTLED,
		 u->cpu_throttled_usec},
		{"pids_max_hits", LAM_RC_USAGE_PIDS_MAX_HITS, u->pids_max_hits},
		{"io_read_bytes", LAM_RC_USAGE_IO, u->io_read_bytes},
		{"io_write_bytes", LAM_RC_USAGE_IO, u->io_write_bytes},
		{"io_read_ops", LAM_RC_USAGE_IO, u->io_read_ops},
		{"io_write_ops", LAM_RC_USAGE_IO, u->io_write_ops},
	};

	fputs("{\"group\": ", out);
	cli_json_str(out, lam_rc_path(rc));
	if (WIFEXITED(status))
		fprintf(out, ", \"exit_status\": %d, \"signal\": null",
			WEXITSTATUS(status));
	else
		fprintf(out, ", \"exit_status\": null, \"signal\": %d",
			WTERMSIG(status));
	fprintf(out, ", \"wall_ms\": %" PRId64, wall_ms);
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		if (u->known & fields[i].bit)
			fprintf(out, ", \"%s\": %" PRIu64, fields[i].key,
				fields[i].value);
	}
	fputs("}\n", out);
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Apply the limits given on the command line. */
struct rc_limits {
	const char *memory_max, *pids_max, *cpu_max, *cpu_weight;
};

static int apply_limits(struct cli *cli, lam_rc *rc, const struct rc_limits *l)
{
	uint64_t v, period;

	if (l->memory_max) {
		if (!parse_bytes(l->memory_max, &v))
			return cli_usage_error(cli, "bad --memory-max '%s'",
					       l->memory_max);
		if (cli_check(lam_rc_set_memory_max(rc, v)))
			return CLI_EXIT_FAIL;
	}
	if (l->pids_max) {
		if (!parse_number(l->pids_max, &v))
			return cli_usage_error(cli, "bad --pids-max '%s'",
					       l->pids_max);
		if (cli_check(lam_rc_set_pids_max(rc, v)))
			return CLI_EXIT_FAIL;
	}
	if (l->cpu_max) {
		if (!parse_cpu_max(l->cpu_max, &v, &period))
			return cli_usage_error(cli, "bad --cpu-max '%s'",
					       l->cpu_max);
		if (cli_check(lam_rc_set_cpu_max(rc, v, period)))
			return CLI_EXIT_FAIL;
	}
	if (l->cpu_weight) {
		if (!parse_number(l->cpu_weight, &v))
			return cli_usage_error(cli, "bad --cpu-weight '%s'",
					       l->cpu_weight);
		if (cli_check(lam_rc_set_cpu_weight(rc, v)))
			return CLI_EXIT_FAIL;
	}
	return CLI_EXIT_OK;
}

/* Wait for the group to empty after a kill, up to 5 s. */
static void wait_empty(lam_rc *rc)
{
	int64_t end = now_ms() + 5000;

	while (now_ms() < end) {
		pid_t *pids;
		size_t n;

		if (lam_rc_pids(&pids, &n, rc) < 0)
			return;
		lam_free(pids);
		if (n == 0)
			return;
		usleep(5000);
	}
}

/*
 * Where the command's arguments start: after "--", or at the first word
 * that is neither an option nor an option's value. *end_opts receives the
 * end of the options.
 */
static int command_start(int argc, char **argv, int *end_opts)
{
	static const char *const with_value[] = {
		"--memory-max", "--pids-max", "--cpu-max",    "--cpu-weight",
		"--parent",	"--store",    "--usage-file", NULL,
	};

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0) {
			*end_opts = i;
			return i + 1;
		}
		if (argv[i][0] != '-' || argv[i][1] == '\0') {
			*end_opts = i;
			return i;
		}
		for (int k = 0; with_value[k]; k++) {
			if (strcmp(argv[i], with_value[k]) == 0) {
				i++;
				break;
			}
		}
	}
	*end_opts = argc;
	return argc;
}

static int rc_run(struct cli *cli, int argc, char **argv)
{
	struct rc_limits limits = {0};
	const char *parent = RC_DEFAULT_PARENT, *usage_file = NULL;
	const struct cli_opt opts[] = {
		{.name = "memory-max", .value = &limits.memory_max},
		{.name = "pids-max", .value = &limits.pids_max},
		{.name = "cpu-max", .value = &limits.cpu_max},
		{.name = "cpu-weight", .value = &limits.cpu_weight},
		{.name = "parent", .value = &parent},
		{.name = "usage-file", .value = &usage_file},
		{0},
	};
	lam_rc_usage usage = LAM_RC_USAGE_INIT;
	struct rc_parent p;
	lam_rc *rc;
	int end_opts, first, status = 0, r;
	int64_t start;
	pid_t pid;

	first = command_start(argc, argv, &end_opts);
	if (cli_parse(cli, end_opts, argv, opts, 0, 0) < 0)
		return cli->status == CLI_EXIT_OK ? CLI_EXIT_OK :
						    RC_EXIT_FAILED;
	if (first >= argc) {
		cli_usage_error(cli, "no command to run");
		return RC_EXIT_FAILED;
	}
	if (group_new(&rc, &p, parent, "run") < 0)
		return RC_EXIT_FAILED;
	if (apply_limits(cli, rc, &limits) != CLI_EXIT_OK) {
		lam_rc_remove(rc, 1000);
		lam_rc_free(rc);
		parent_put(&p);
		return RC_EXIT_FAILED;
	}

	fflush(NULL);
	handle_signals(true);
	start = now_ms();
	r = lam_rc_spawn(&pid, rc, argv[first], argv + first, NULL);
	if (r < 0) {
		cli_check(r);
		handle_signals(false);
		lam_rc_remove(rc, 1000);
		lam_rc_free(rc);
		parent_put(&p);
		return r == LAM_ENOTFOUND ? RC_EXIT_NOT_FOUND :
		       r == LAM_EACCES	  ? RC_EXIT_CANNOT_RUN :
					    RC_EXIT_FAILED;
	}
	child_pid = pid;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	child_pid = 0;
	int64_t wall = now_ms() - start;
	handle_signals(false);

	/* The group ends with the command: what it left running goes too. */
	r = lam_rc_kill(rc);
	if (r == 0)
		wait_empty(rc);
	else
		cli_check(r);
	if (cli_check(lam_rc_usage_get(rc, &usage)) == CLI_EXIT_OK) {
		FILE *out = stdout;
		if (usage_file) {
			out = fopen(usage_file, "we");
			if (!out)
				cli_error("%s: %s", usage_file,
					  strerror(errno));
		}
		if (out) {
			print_usage(out, rc, status, wall, &usage);
			if (out != stdout && fclose(out) != 0)
				cli_error("%s: %s", usage_file,
					  strerror(errno));
		}
	}
	if (cli_check(lam_rc_remove(rc, 5000)))
		status = -1;
	lam_rc_free(rc);
	parent_put(&p);
	if (status == -1)
		return RC_EXIT_FAILED;
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	return 128 + WTERMSIG(status);
}

/* "rc caps" */

struct caps_out {
	struct cli_rec rec;
	bool json;
	unsigned int n;
};

static int print_cap(lam_rc_cap cap, const char *how, const char *why_not,
		     void *userdata)
{
	struct caps_out *o = userdata;
	const char *name = lam_rc_cap_name(cap);

	if (!o->json) {
		printf("%-16s %-4s %s\n", name, how ? "yes" : "no",
		       how ? how : why_not);
		return cli_out_check();
	}
	printf("%s{\"name\": ", o->n++ ? ", " : "");
	cli_json_str(stdout, name);
	printf(", \"available\": %s, \"%s\": ", how ? "true" : "false",
	       how ? "how" : "why_not");
	cli_json_str(stdout, how ? how : why_not);
	putchar('}');
	return cli_out_check();
}

static int rc_caps(struct cli *cli, int argc, char **argv)
{
	const char *parent = RC_DEFAULT_PARENT;
	int json = 0;
	const struct cli_opt opts[] = {
		{.name = "parent", .value = &parent},
		{.name = "json", .flag = &json},
		{0},
	};
	static const char *const mode_names[] = {"auto", "v2", "v1", "hybrid"};
	struct caps_out o = {.json = json != 0};
	struct rc_parent p;
	lam_rc *rc;
	int r;

	if (cli_parse(cli, argc, argv, opts, 0, 0) < 0)
		return cli->status;
	o.json = json != 0;
	if (group_new(&rc, &p, parent, "caps") < 0)
		return CLI_EXIT_FAIL;
	const char *mode = mode_names[lam_rc_get_mode(rc) & 3];
	if (o.json)
		printf("{\"mode\": \"%s\", \"caps\": [", mode);
	else
		printf("mode: %s\n", mode);
	r = lam_rc_caps_foreach(rc, print_cap, &o);
	if (o.json && r == 0)
		puts("]}");
	int status = cli_check(r);
	if (cli_check(lam_rc_remove(rc, 1000)))
		status = CLI_EXIT_FAIL;
	lam_rc_free(rc);
	parent_put(&p);
	return status;
}

const struct cli_cmd cli_rc_commands[] = {
	{
		.name = "run",
		.run = rc_run,
		.synopsis = "[--memory-max BYTES] [--pids-max N] "
			    "[--cpu-max QUOTA/PERIOD] [--cpu-weight W] "
			    "[--parent GROUP] [--usage-file FILE] -- CMD "
			    "[ARGS...]",
		.summary = "run a command in a fresh cgroup with limits",
		.details =
			"Creates the group run-PID under GROUP (\"lamina\" by "
			"default, created for the run if missing and removed "
			"after it if nothing else uses it), applies the "
			"limits, runs CMD in it from its first instruction, "
			"and when CMD exits kills whatever it left running, "
			"prints the group's usage as one line of JSON on "
			"stdout (or into FILE with --usage-file), removes the "
			"group and exits with CMD's status (128 + N when a "
			"signal N ended it). The JSON line comes after all of "
			"CMD's output; a CMD whose output does not end with a "
			"newline shares its last line with it, so use "
			"--usage-file when stdout is parsed. BYTES takes K, M, "
			"G and T suffixes (powers of 1024) or \"max\"; "
			"--cpu-max 20000/100000 gives 20% of one cpu (the "
			"period, in microseconds, defaults to 100000); "
			"--cpu-weight is cgroup v2's 1 to 10000. A limit the "
			"host cannot honour fails the run before CMD starts. "
			"Exit status 125 when lamina fails, 126 when CMD "
			"cannot be executed, 127 when it is not found. "
			"Needs permission to create cgroups (root, or a "
			"delegated GROUP).",
	},
	{
		.name = "caps",
		.run = rc_caps,
		.synopsis = "[--parent GROUP] [--json]",
		.summary = "list the cgroup settings this host can honour",
		.details = "Creates an empty probe group under GROUP "
			   "(\"lamina\" by default, handled as for run) and "
			   "prints one line per setting or feature: its name, "
			   "yes or no, then how lamina honours it or why it "
			   "cannot. --json prints one object with the mode "
			   "(v2, v1 or hybrid) and an array of caps.",
	},
	{0},
};
