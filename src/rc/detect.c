/* SPDX-License-Identifier: MIT */
/*
 * Finding the cgroup hierarchies: the cgroup2 mount and the mount of each
 * cgroup v1 controller, from /proc/self/mountinfo or from the roots the
 * host gave.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

#include "rc/internal.h"

const char *const lam__rc_v2_names[RC_NV2] = {
	"memory", "cpu", "cpuset", "pids", "io",
};

const char *const lam__rc_v1_names[RC_NCTRL] = {
	"memory", "cpu", "cpuset", "pids", "blkio", "cpuacct", "freezer",
};

/* mountinfo escapes space, tab, newline and backslash as \ooo. */
static void unescape(char *s)
{
	char *out = s;

	for (char *p = s; *p; p++) {
		if (p[0] == '\\' && p[1] >= '0' && p[1] <= '3' && p[2] >= '0' &&
		    p[2] <= '7' && p[3] >= '0' && p[3] <= '7') {
			*out++ = (char)((p[1] - '0') << 6 | (p[2] - '0') << 3 |
					(p[3] - '0'));
			p += 3;
		} else {
			*out++ = *p;
		}
	}
	*out = '\0';
}

/* Whether the comma-separated @list holds @word. */
static bool has_option(const char *list, const char *word)
{
	size_t len = strlen(word);

	while (*list) {
		size_t n = strcspn(list, ",");

		if (n == len && strncmp(list, word, len) == 0)
			return true;
		list += n;
		if (*list == ',')
			list++;
	}
	return false;
}

/*
 * The usual places of a cgroup2 mount, best first: when a host has several
 * (a container runtime's bind mounts), one of these is the host's own.
 */
static int v2_rank(const char *mount)
{
	if (strcmp(mount, "/sys/fs/cgroup") == 0)
		return 0;
	if (strcmp(mount, "/sys/fs/cgroup/unified") == 0)
		return 1;
	return 2;
}

/* Take in one line of mountinfo. */
static int parse_line(struct rc_layout *l, char *line)
{
	/* id parent maj:min root mount options [optional...] - type src
	 * super-options */
	char *field[6] = {0};
	char *sep = strstr(line, " - ");
	char *save = NULL, *type, *super;
	int n = 0;

	if (!sep)
		return 0;
	*sep = '\0';
	for (char *t = strtok_r(line, " ", &save); t && n < 6;
	     t = strtok_r(NULL, " ", &save))
		field[n++] = t;
	if (n < 5)
		return 0;
	save = NULL;
	type = strtok_r(sep + 3, " ", &save);
	(void)strtok_r(NULL, " ", &save);
	super = strtok_r(NULL, " ", &save);
	if (!type)
		return 0;
	unescape(field[4]);
	if (strcmp(type, "cgroup2") == 0) {
		if (l->v2 && v2_rank(l->v2) <= v2_rank(field[4]))
			return 0;
		char *copy = lam__strdup(field[4]);
		if (!copy)
			return lam__error(LAM_ENOMEM, "out of memory");
		lam__free(l->v2);
		l->v2 = copy;
		return 0;
	}
	if (strcmp(type, "cgroup") != 0 || !super)
		return 0;
	for (int c = 0; c < RC_NCTRL; c++) {
		if (l->v1[c] || !has_option(super, lam__rc_v1_names[c]))
			continue;
		l->v1[c] = lam__strdup(field[4]);
		if (!l->v1[c])
			return lam__error(LAM_ENOMEM, "out of memory");
	}
	return 0;
}

static int detect(struct rc_layout *l)
{
	lam__buf buf = {0};
	int rc = lam__rc_read(AT_FDCWD, "/proc/self/mountinfo", &buf);
	char *line, *save = NULL;

	if (rc < 0) {
		lam__buf_free(&buf);
		return lam__error_errno(-rc, "finding the cgroup hierarchies: "
					     "reading /proc/self/mountinfo");
	}
	l->detected = true;
	for (line = strtok_r(buf.data, "\n", &save); line && rc == 0;
	     line = strtok_r(NULL, "\n", &save))
		rc = parse_line(l, line);
	lam__buf_free(&buf);
	return rc;
}

/* Use @root/<controller> for each v1 controller folder found there. */
static int v1_from_root(struct rc_layout *l, const char *root)
{
	struct stat st;

	if (stat(root, &st) < 0)
		return lam__error_errno(errno, "cgroup v1 root %s", root);
	for (int c = 0; c < RC_NCTRL; c++) {
		char *dir = lam__sprintf("%s/%s", root, lam__rc_v1_names[c]);

		if (!dir)
			return lam__error(LAM_ENOMEM, "out of memory");
		if (stat(dir, &st) == 0 && S_ISDIR(st.st_mode))
			l->v1[c] = dir;
		else
			lam__free(dir);
	}
	return 0;
}

int lam__rc_layout_get(struct rc_layout *out, const lam_rc_options *o)
{
	int rc = 0;

	memset(out, 0, sizeof(*out));
	if (!o->v2_root && !o->v1_root) {
		rc = detect(out);
	} else {
		if (o->v2_root) {
			struct stat st;

			if (stat(o->v2_root, &st) < 0) {
				rc = lam__error_errno(errno, "cgroup2 root %s",
						      o->v2_root);
			} else {
				out->v2 = lam__strdup(o->v2_root);
				if (!out->v2)
					rc = lam__error(LAM_ENOMEM,
							"out of memory");
			}
		}
		if (rc == 0 && o->v1_root)
			rc = v1_from_root(out, o->v1_root);
	}
	if (rc < 0)
		lam__rc_layout_free(out);
	return rc;
}

void lam__rc_layout_free(struct rc_layout *l)
{
	lam__free(l->v2);
	for (int c = 0; c < RC_NCTRL; c++)
		lam__free(l->v1[c]);
	memset(l, 0, sizeof(*l));
}
