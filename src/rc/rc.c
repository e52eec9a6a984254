/* SPDX-License-Identifier: MIT */
/*
 * Resource-control handles: names, setting a handle up over the
 * hierarchies, creating, opening and removing groups, and the file helpers
 * the other parts share.
 */
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "rc/internal.h"

/* Cgroup files are small; a listing of pids is the largest one read. */
#define RC_READ_MAX (64u << 20)

int lam__rc_read(int dirfd, const char *file, lam__buf *out)
{
	int fd = openat(dirfd, file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

	out->len = 0;
	if (fd < 0)
		return -errno;
	for (;;) {
		if (out->cap - out->len < 4097) {
			lam__error_saved saved;

			lam__error_save(&saved);
			int rc = lam__buf_grow(out, 4096);
			lam__error_restore(&saved);
			if (rc < 0) {
				close(fd);
				return -ENOMEM;
			}
		}
		ssize_t n =
			read(fd, out->data + out->len, out->cap - out->len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int e = errno;
			close(fd);
			return -e;
		}
		if (n == 0)
			break;
		out->len += (size_t)n;
		if (out->len > RC_READ_MAX) {
			close(fd);
			return -EFBIG;
		}
	}
	close(fd);
	out->data[out->len] = '\0';
	return 0;
}

/* Parse a decimal number or "max" at the start of @s. */
static bool parse_u64(const char *s, uint64_t *out, const char **end)
{
	if (strncmp(s, "max", 3) == 0) {
		*out = LAM_RC_MAX;
		*end = s + 3;
		return true;
	}
	if (*s < '0' || *s > '9')
		return false;
	uint64_t v = 0;
	for (; *s >= '0' && *s <= '9'; s++) {
		unsigned d = (unsigned)(*s - '0');
		if (v > (UINT64_MAX - d) / 10)
			return false;
		v = v * 10 + d;
	}
	*out = v;
	*end = s;
	return true;
}

int lam__rc_read_u64(int dirfd, const char *file, uint64_t *out)
{
	char buf[64];
	int fd = openat(dirfd, file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	ssize_t n;
	const char *end;

	if (fd < 0)
		return -errno;
	do
		n = read(fd, buf, sizeof(buf) - 1);
	while (n < 0 && errno == EINTR);
	int e = errno;
	close(fd);
	if (n < 0)
		return -e;
	buf[n] = '\0';
	/* v1 reports "no limit" as -1 in some files. */
	if (strncmp(buf, "-1", 2) == 0) {
		*out = LAM_RC_MAX;
		return 0;
	}
	if (!parse_u64(buf, out, &end) ||
	    (*end != '\0' && *end != '\n' && *end != ' '))
		return -EBADMSG;
	return 0;
}

bool lam__rc_key_u64(const char *text, const char *key, uint64_t *out)
{
	size_t len = strlen(key);

	for (const char *p = text; p && *p; p = strchr(p, '\n')) {
		const char *end;

		if (*p == '\n')
			p++;
		if (strncmp(p, key, len) == 0 && p[len] == ' ' &&
		    parse_u64(p + len + 1, out, &end))
			return true;
	}
	return false;
}

int lam__rc_write_raw(int dirfd, const char *file, const char *value)
{
	int fd = openat(dirfd, file,
			O_WRONLY | O_TRUNC | O_CLOEXEC | O_NOFOLLOW);

	if (fd < 0)
		return -errno;
	/* A cgroup file takes one value per write(2); never split it. */
	ssize_t n;
	size_t len = strlen(value);
	do
		n = write(fd, value, len);
	while (n < 0 && errno == EINTR);
	int e = errno;
	close(fd);
	if (n < 0)
		return -e;
	if ((size_t)n != len)
		return -EIO;
	return 0;
}

bool lam__rc_has(int dirfd, const char *file)
{
	return faccessat(dirfd, file, F_OK, AT_SYMLINK_NOFOLLOW) == 0;
}

int lam__rc_live(const lam_rc *rc)
{
	if (!rc)
		return lam__error(LAM_EINVAL, "no resource-control handle");
	if (rc->removed)
		return lam__error(LAM_ENOTFOUND, "group %s was removed",
				  rc->path);
	return 0;
}

int lam__rc_exists(const lam_rc *rc)
{
	int e = lam__rc_live(rc);
	const struct rc_hier *h;

	if (e < 0)
		return e;
	h = &rc->hier[lam__rc_primary(rc)];
	if (!lam__rc_has(h->parent_fd, rc->name))
		return lam__error(LAM_ENOTFOUND, "group %s no longer exists",
				  h->dir);
	return 0;
}

int lam__rc_primary(const lam_rc *rc)
{
	if (rc->v2 >= 0)
		return rc->v2;
	if (rc->ctrl[RC_FREEZER] >= 0)
		return rc->ctrl[RC_FREEZER];
	return 0;
}

int lam__rc_read_pids(const lam_rc *rc, int hi, pid_t **pids, size_t *n,
		      size_t *cap)
{
	lam__buf buf = {0};
	int r = lam__rc_read(rc->hier[hi].fd, "cgroup.procs", &buf);

	if (r < 0) {
		lam__buf_free(&buf);
		return lam__error_errno(-r, "reading %s/cgroup.procs",
					rc->hier[hi].dir);
	}
	for (char *p = buf.data; *p;) {
		char *end;
		long v = strtol(p, &end, 10);

		if (end == p || v <= 0) {
			p = strchr(p, '\n');
			if (!p)
				break;
			p++;
			continue;
		}
		bool seen = false;
		for (size_t i = 0; i < *n && !seen; i++)
			seen = (*pids)[i] == (pid_t)v;
		if (!seen) {
			if (*n == *cap) {
				size_t nc = *cap ? *cap * 2 : 16;
				pid_t *np = lam__realloc(*pids,
							 nc * sizeof(**pids));
				if (!np) {
					lam__buf_free(&buf);
					return lam__error(LAM_ENOMEM,
							  "out of memory");
				}
				*pids = np;
				*cap = nc;
			}
			(*pids)[(*n)++] = (pid_t)v;
		}
		p = end;
		while (*p == '\n')
			p++;
	}
	lam__buf_free(&buf);
	return 0;
}

void lam__rc_fmt(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, size, fmt, ap);
	va_end(ap);
}

void lam__rc_sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

int64_t lam__rc_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Names. */

static bool name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || strchr("._-+:@", c) != NULL;
}

/* Check one component of a group path: @what names it in messages. */
static int check_component(const char *s, size_t len, const char *what,
			   const char *full)
{
	if (len == 0)
		return lam__error(LAM_EBADNAME,
				  "bad %s '%s': empty name or component", what,
				  full);
	if (len > 255)
		return lam__error(LAM_EBADNAME,
				  "bad %s '%.64s…': a name is at most 255 "
				  "bytes",
				  what, full);
	if ((len == 1 && s[0] == '.') ||
	    (len == 2 && s[0] == '.' && s[1] == '.'))
		return lam__error(LAM_EBADNAME,
				  "bad %s '%s': '.' and '..' are not allowed",
				  what, full);
	if (s[0] == '.')
		return lam__error(LAM_EBADNAME,
				  "bad %s '%s': a name may not start with '.'",
				  what, full);
	if (len >= 7 && strncmp(s, "cgroup.", 7) == 0)
		return lam__error(LAM_EBADNAME,
				  "bad %s '%s': names starting with 'cgroup.' "
				  "are the kernel's",
				  what, full);
	for (size_t i = 0; i < len; i++) {
		if (!name_char(s[i]))
			return lam__error(LAM_EBADNAME,
					  "bad %s '%s': only letters, digits "
					  "and . _ - + : @ are allowed",
					  what, full);
	}
	return 0;
}

static int check_parent(const char *parent)
{
	const char *p = parent;

	if (strlen(parent) > 4096)
		return lam__error(LAM_EBADNAME,
				  "bad parent group: longer than 4096 bytes");
	if (*p == '/')
		p++;
	if (*p == '\0')
		return 0;
	for (;;) {
		size_t len = strcspn(p, "/");
		int rc = check_component(p, len, "parent group", parent);

		if (rc < 0)
			return rc;
		if (p[len] == '\0')
			return 0;
		p += len + 1;
	}
}

/* Open a relative group path below @root, one folder at a time so that no
 * symlink is ever followed. */
static int open_rel(int root, const char *rel)
{
	int fd = fcntl(root, F_DUPFD_CLOEXEC, 0);

	while (fd >= 0 && *rel) {
		char comp[256];
		size_t len = strcspn(rel, "/");

		memcpy(comp, rel, len);
		comp[len] = '\0';
		int next =
			openat(fd, comp,
			       O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
		int e = errno;
		close(fd);
		fd = next;
		errno = e;
		rel += len;
		if (*rel == '/')
			rel++;
	}
	return fd;
}

/* Set-up. */

/* The names of the v2 controllers in the text of a cgroup.controllers or
 * cgroup.subtree_control file, as a bit mask. A "+name" counts too, so
 * that a plain file standing in for subtree_control in tests reads as what
 * was written to it. */
static unsigned int v2_mask(const char *text)
{
	unsigned int mask = 0;

	while (*text) {
		size_t len;

		text += strspn(text, " \n+");
		len = strcspn(text, " \n");
		for (int c = 0; c < RC_NV2; c++) {
			if (strlen(lam__rc_v2_names[c]) == len &&
			    strncmp(text, lam__rc_v2_names[c], len) == 0)
				mask |= 1u << c;
		}
		text += len;
	}
	return mask;
}

/* Read a controller list; a missing or unreadable file is an empty list,
 * and only running out of memory sets *nomem. */
static unsigned int read_mask(int dirfd, const char *file, char *text,
			      size_t size, bool *nomem)
{
	lam__buf buf = {0};
	unsigned int mask = 0;
	int r = lam__rc_read(dirfd, file, &buf);

	if (text)
		text[0] = '\0';
	if (r == 0) {
		mask = v2_mask(buf.data);
		if (text) {
			snprintf(text, size, "%s", buf.data);
			text[strcspn(text, "\n")] = '\0';
		}
	} else if (r == -ENOMEM) {
		*nomem = true;
	}
	lam__buf_free(&buf);
	return mask;
}

static const char *ctrl_label(int c)
{
	static const char *const labels[RC_NCTRL] = {
		"memory",
		"cpu",
		"cpuset",
		"pids",
		"io (blkio on cgroup v1)",
		"cpuacct",
		"freezer",
	};
	return labels[c];
}

/* Find or add the v1 hierarchy mounted at @mount. */
static int add_v1(lam_rc *rc, const char *mount)
{
	for (int i = 0; i < rc->nhier; i++) {
		if (!rc->hier[i].v2 && strcmp(rc->hier[i].mount, mount) == 0)
			return i;
	}
	struct rc_hier *h = &rc->hier[rc->nhier];
	h->mount = lam__strdup(mount);
	if (!h->mount)
		return lam__error(LAM_ENOMEM, "out of memory");
	return rc->nhier++;
}

/* Decide which hierarchy serves each controller. */
static int plan(lam_rc *rc, const struct rc_layout *l, unsigned int mode)
{
	bool want2 = mode != LAM_RC_MODE_V1 && l->v2;
	bool want1 = mode != LAM_RC_MODE_V2;
	bool any1 = false;
	unsigned int bound2 = 0;
	char listed[128] = "";

	for (int c = 0; c < RC_NCTRL; c++)
		any1 = any1 || l->v1[c];
	if (mode == LAM_RC_MODE_V2 && !l->v2)
		return lam__error(LAM_EUNAVAILABLE,
				  "no cgroup2 hierarchy is mounted");
	if (mode == LAM_RC_MODE_V1 && !any1)
		return lam__error(LAM_EUNAVAILABLE,
				  "no cgroup v1 controller hierarchy is "
				  "mounted");
	if (!want2 && !(want1 && any1))
		return lam__error(LAM_EUNAVAILABLE,
				  "no cgroup hierarchy is mounted");
	if (l->v2) {
		int fd = open(l->v2, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0)
			return lam__error_errno(errno, "opening %s", l->v2);
		bool nomem = false;
		bound2 = read_mask(fd, "cgroup.controllers", listed,
				   sizeof(listed), &nomem);
		close(fd);
		if (nomem)
			return lam__error(LAM_ENOMEM, "out of memory");
	}
	if (want2) {
		struct rc_hier *h = &rc->hier[rc->nhier];
		h->v2 = true;
		h->mount = lam__strdup(l->v2);
		if (!h->mount)
			return lam__error(LAM_ENOMEM, "out of memory");
		rc->v2 = rc->nhier++;
	}
	for (int c = 0; c < RC_NCTRL; c++) {
		bool on2 = c < RC_NV2 && (bound2 & (1u << c));
		char *why = rc->why[c];

		if (want2 && on2) {
			rc->ctrl[c] = rc->v2;
		} else if (want1 && l->v1[c] && !on2) {
			int i = add_v1(rc, l->v1[c]);
			if (i < 0)
				return i;
			rc->ctrl[c] = i;
		} else if (on2) {
			lam__rc_fmt(why, RC_WHY_MAX,
				    "the %s controller is bound to the cgroup2 "
				    "hierarchy at %s, and this handle uses "
				    "cgroup v1 only",
				    ctrl_label(c), l->v2);
		} else if (c >= RC_NV2) {
			lam__rc_fmt(why, RC_WHY_MAX,
				    "no cgroup v1 %s hierarchy is in use",
				    ctrl_label(c));
		} else if (l->v1[c] && l->v2) {
			lam__rc_fmt(why, RC_WHY_MAX,
				    "the %s controller is not available in the "
				    "cgroup2 hierarchy at %s (its "
				    "cgroup.controllers lists: %s); this host "
				    "binds it to the cgroup v1 hierarchy at %s",
				    ctrl_label(c), l->v2,
				    listed[0] ? listed : "nothing", l->v1[c]);
		} else if (l->v2) {
			lam__rc_fmt(
				why, RC_WHY_MAX,
				"the %s controller is neither available in "
				"the cgroup2 hierarchy at %s (its "
				"cgroup.controllers lists: %s) nor mounted as "
				"a cgroup v1 hierarchy",
				ctrl_label(c), l->v2,
				listed[0] ? listed : "nothing");
		} else {
			lam__rc_fmt(
				why, RC_WHY_MAX,
				"the %s controller is not mounted as a cgroup "
				"v1 hierarchy, and there is no cgroup2 "
				"hierarchy",
				ctrl_label(c));
		}
	}
	if (rc->nhier == 0)
		return lam__error(LAM_EUNAVAILABLE,
				  "no cgroup hierarchy is mounted for the "
				  "controllers lamina drives");
	return 0;
}

/* Two v1 roots may be one hierarchy (cpu and cpuacct mounted together and
 * reached through symlinks); merge hierarchy @i into @j. */
static void merge_hier(lam_rc *rc, int i, int j)
{
	for (int c = 0; c < RC_NCTRL; c++) {
		if (rc->ctrl[c] == i)
			rc->ctrl[c] = j;
		else if (rc->ctrl[c] > i)
			rc->ctrl[c]--;
	}
	if (rc->v2 > i)
		rc->v2--;
	lam__free(rc->hier[i].mount);
	if (rc->hier[i].parent_fd >= 0)
		close(rc->hier[i].parent_fd);
	memmove(&rc->hier[i], &rc->hier[i + 1],
		(size_t)(rc->nhier - i - 1) * sizeof(rc->hier[0]));
	rc->nhier--;
	rc->hier[rc->nhier] = (struct rc_hier){.parent_fd = -1, .fd = -1};
}

/*
 * Enable the v2 controllers lamina drives in the subtree_control of each
 * group from the root down to the parent, as runc and crun do; then note
 * each controller that is not enabled for the new group, and why.
 */
static int enable_v2(lam_rc *rc, int root, const char *parent, bool enable)
{
	bool nomem = false;
	struct rc_hier *h = &rc->hier[rc->v2];
	unsigned int want = 0, failed = 0, on = 0;
	char level[RC_WHY_MAX];
	const char *rel = parent;
	int fd = fcntl(root, F_DUPFD_CLOEXEC, 0);

	for (int c = 0; c < RC_NV2; c++) {
		if (rc->ctrl[c] == rc->v2)
			want |= 1u << c;
	}
	lam__rc_fmt(level, sizeof(level), "%s", h->mount);
	if (!enable) {
		/* Only the parent's own subtree_control matters. */
		on = read_mask(h->parent_fd, "cgroup.subtree_control", NULL, 0,
			       &nomem);
		lam__rc_fmt(level, sizeof(level), "%s%s%s", h->mount,
			    parent[0] ? "/" : "", parent);
		for (int c = 0; c < RC_NV2; c++) {
			if (!(want & (1u << c)) || (on & (1u << c)))
				continue;
			lam__rc_fmt(rc->why[c], RC_WHY_MAX,
				    "the %s controller is not enabled in "
				    "%s/cgroup.subtree_control",
				    ctrl_label(c), level);
			rc->ctrl[c] = -1;
		}
		if (fd >= 0)
			close(fd);
		return nomem ? lam__error(LAM_ENOMEM, "out of memory") : 0;
	}
	while (fd >= 0) {
		unsigned int avail =
			read_mask(fd, "cgroup.controllers", NULL, 0, &nomem);
		on = read_mask(fd, "cgroup.subtree_control", NULL, 0, &nomem);
		for (int c = 0; c < RC_NV2; c++) {
			unsigned int bit = 1u << c;
			char value[16];
			int w;

			if (!(want & bit) || (failed & bit) || (on & bit))
				continue;
			if (!(avail & bit)) {
				lam__rc_fmt(
					rc->why[c], RC_WHY_MAX,
					"the %s controller is not available "
					"in %s (its cgroup.controllers), so "
					"it is not delegated there",
					ctrl_label(c), level);
				failed |= bit;
				continue;
			}
			/* One controller per write, so that one refusal
			 * does not cost the others. */
			snprintf(value, sizeof(value), "+%s",
				 lam__rc_v2_names[c]);
			w = lam__rc_write_raw(fd, "cgroup.subtree_control",
					      value);
			if (w == 0) {
				on |= bit;
				continue;
			}
			lam__rc_fmt(
				rc->why[c], RC_WHY_MAX,
				"the %s controller is not enabled in "
				"%s/cgroup.subtree_control, and enabling it "
				"failed: %s%s",
				ctrl_label(c), level, strerror(-w),
				w == -EBUSY ? " (that group holds processes "
					      "of its own, and cgroup v2 "
					      "enables controllers only "
					      "below groups without any)" :
				(w == -EACCES || w == -EPERM) ?
					      " (not delegated to this user)" :
					      "");
			failed |= bit;
		}
		if (*rel == '\0')
			break;
		size_t len = strcspn(rel, "/");
		char comp[256];
		memcpy(comp, rel, len);
		comp[len] = '\0';
		lam__rc_fmt(level + strlen(level),
			    sizeof(level) - strlen(level), "/%s", comp);
		int next =
			openat(fd, comp,
			       O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
		close(fd);
		fd = next;
		rel += len;
		if (*rel == '/')
			rel++;
	}
	if (fd >= 0)
		close(fd);
	for (int c = 0; c < RC_NV2; c++) {
		if (!(want & (1u << c)) || (on & (1u << c)))
			continue;
		if (!(failed & (1u << c)))
			lam__rc_fmt(rc->why[c], RC_WHY_MAX,
				    "the %s controller is not enabled in "
				    "%s/cgroup.subtree_control",
				    ctrl_label(c), level);
		rc->ctrl[c] = -1;
	}
	return nomem ? lam__error(LAM_ENOMEM, "out of memory") : 0;
}
/* Open each hierarchy's root and the parent group in it. */
static int open_parents(lam_rc *rc, const char *parent, bool enable)
{
	dev_t dev[RC_MAX_HIER];
	ino_t ino[RC_MAX_HIER];

	for (int i = 0; i < rc->nhier; i++) {
		struct rc_hier *h = &rc->hier[i];
		int root = open(h->mount, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		struct stat st;
		int same = -1;

		if (root < 0)
			return lam__error_errno(errno, "opening %s", h->mount);
		if (fstat(root, &st) < 0) {
			int e = errno;
			close(root);
			return lam__error_errno(e, "opening %s", h->mount);
		}
		for (int j = 0; j < i && same < 0; j++) {
			if (!h->v2 && !rc->hier[j].v2 && dev[j] == st.st_dev &&
			    ino[j] == st.st_ino)
				same = j;
		}
		if (same >= 0) {
			close(root);
			merge_hier(rc, i, same);
			i--;
			continue;
		}
		dev[i] = st.st_dev;
		ino[i] = st.st_ino;
		h->parent_fd = open_rel(root, parent);
		if (h->parent_fd < 0) {
			int e = errno;
			close(root);
			if (e == ENOENT || e == ENOTDIR)
				return lam__error(LAM_ENOTFOUND,
						  "parent group '%s' does not "
						  "exist in %s",
						  parent, h->mount);
			return lam__error_errno(
				e, "opening parent group '%s' in %s", parent,
				h->mount);
		}
		int e = h->v2 ? enable_v2(rc, root, parent, enable) : 0;
		close(root);
		if (e < 0)
			return e;
		h->dir = lam__sprintf("%s/%s", h->mount, rc->path);
		if (!h->dir)
			return lam__error(LAM_ENOMEM, "out of memory");
	}
	return 0;
}

/* A v1 cpuset starts empty and could hold no process: give it the
 * parent's cpus and mems. */
static int init_cpuset(lam_rc *rc)
{
	int hi = rc->ctrl[RC_CPUSET];
	static const char *const files[] = {"cpuset.cpus", "cpuset.mems"};

	if (hi < 0 || rc->hier[hi].v2)
		return 0;
	for (size_t i = 0; i < LAM__ARRAY_LEN(files); i++) {
		lam__buf own = {0}, parent = {0};
		int r = lam__rc_read(rc->hier[hi].fd, files[i], &own);

		if (r == 0 && strspn(own.data, " \n") == own.len)
			r = lam__rc_read(rc->hier[hi].parent_fd, files[i],
					 &parent);
		if (r == 0 && parent.len > 0)
			r = lam__rc_write_raw(rc->hier[hi].fd, files[i],
					      parent.data);
		lam__buf_free(&own);
		lam__buf_free(&parent);
		/* A folder without the file is no cpuset to fill. */
		if (r < 0 && r != -ENOENT)
			return lam__error_errno(-r, "initialising %s/%s",
						rc->hier[hi].dir, files[i]);
	}
	return 0;
}

static int make_groups(lam_rc *rc, bool create)
{
	int i, r = 0;

	for (i = 0; i < rc->nhier; i++) {
		struct rc_hier *h = &rc->hier[i];

		if (create && mkdirat(h->parent_fd, rc->name, 0755) < 0) {
			if (errno == EEXIST)
				r = lam__error(LAM_EEXISTS,
					       "it already exists in %s",
					       h->mount);
			else
				r = lam__error_errno(errno, "mkdir %s", h->dir);
			break;
		}
		h->fd = openat(h->parent_fd, rc->name,
			       O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
		if (h->fd < 0) {
			if (!create && (errno == ENOENT || errno == ENOTDIR))
				r = lam__error(LAM_ENOTFOUND,
					       "it does not exist in %s",
					       h->mount);
			else
				r = lam__error_errno(errno, "opening %s",
						     h->dir);
			if (create)
				i++;
			break;
		}
	}
	if (r == 0 && create)
		r = init_cpuset(rc);
	if (r < 0 && create) {
		/* Leave nothing behind: remove what this call created. */
		for (int j = 0; j < (i < rc->nhier ? i : rc->nhier); j++)
			unlinkat(rc->hier[j].parent_fd, rc->name, AT_REMOVEDIR);
	}
	return r;
}

static lam_rc *rc_new(void)
{
	lam_rc *rc = lam__calloc(1, sizeof(*rc));

	if (!rc)
		return NULL;
	rc->v2 = -1;
	rc->ep_fd = rc->ino_fd = rc->ev_fd = -1;
	for (int c = 0; c < RC_NCTRL; c++)
		rc->ctrl[c] = -1;
	for (int i = 0; i < RC_MAX_HIER; i++)
		rc->hier[i].parent_fd = rc->hier[i].fd = -1;
	return rc;
}

static int setup(lam_rc **out, const char *parent, const char *name,
		 const lam_rc_options *options, bool create)
{
	lam_rc_options defaults = LAM_RC_OPTIONS_INIT;
	struct rc_layout layout;
	lam_rc *rc;
	int r;

	lam__error_reset();
	if (!out)
		return lam__error(LAM_EINVAL, "no place for the handle");
	*out = NULL;
	if (!options)
		options = &defaults;
	if (options->version != LAM_RC_OPTIONS_VERSION)
		return lam__error(LAM_EINVAL,
				  "lam_rc_options version %u is not %d",
				  options->version, LAM_RC_OPTIONS_VERSION);
	if (options->mode > LAM_RC_MODE_V1)
		return lam__error(LAM_EINVAL, "unknown lam_rc_options mode %u",
				  options->mode);
	if (options->flags & ~(unsigned int)LAM_RC_NO_ENABLE)
		return lam__error(LAM_EINVAL,
				  "unknown lam_rc_options flags %#x",
				  options->flags);
	if (!name)
		return lam__error(LAM_EBADNAME, "no group name");
	if (!parent)
		parent = "";
	r = check_component(name, strlen(name), "group name", name);
	if (r == 0)
		r = check_parent(parent);
	if (r < 0)
		return r;
	if (*parent == '/')
		parent++;

	rc = rc_new();
	if (!rc)
		return lam__error(LAM_ENOMEM, "out of memory");
	rc->name = lam__strdup(name);
	rc->path = parent[0] ? lam__sprintf("%s/%s", parent, name) :
			       lam__strdup(name);
	if (!rc->name || !rc->path) {
		lam_rc_free(rc);
		return lam__error(LAM_ENOMEM, "out of memory");
	}
	r = lam__rc_layout_get(&layout, options);
	if (r == 0) {
		r = plan(rc, &layout, options->mode);
		lam__rc_layout_free(&layout);
	}
	if (r == 0)
		r = open_parents(rc, parent,
				 create &&
					 !(options->flags & LAM_RC_NO_ENABLE));
	if (r == 0)
		r = make_groups(rc, create);
	if (r < 0) {
		/* The messages name the hierarchy; add the group. */
		char path[4400];
		snprintf(path, sizeof(path), "%s", rc->path);
		lam_rc_free(rc);
		return lam__error_prefix(r, "%s group %s",
					 create ? "creating" : "opening", path);
	}
	rc->mode = rc->v2 < 0	  ? LAM_RC_MODE_V1 :
		   rc->nhier == 1 ? LAM_RC_MODE_V2 :
				    LAM_RC_MODE_HYBRID;
	*out = rc;
	return 0;
}

int lam_rc_create(lam_rc **out, const char *parent, const char *name,
		  const lam_rc_options *options)
{
	return setup(out, parent, name, options, true);
}

int lam_rc_open(lam_rc **out, const char *parent, const char *name,
		const lam_rc_options *options)
{
	return setup(out, parent, name, options, false);
}

void lam_rc_free(lam_rc *rc)
{
	if (!rc)
		return;
	lam__rc_events_close(rc);
	for (int i = 0; i < RC_MAX_HIER; i++) {
		if (rc->hier[i].fd >= 0)
			close(rc->hier[i].fd);
		if (rc->hier[i].parent_fd >= 0)
			close(rc->hier[i].parent_fd);
		lam__free(rc->hier[i].mount);
		lam__free(rc->hier[i].dir);
	}
	lam__free(rc->name);
	lam__free(rc->path);
	lam__free(rc);
}

const char *lam_rc_path(const lam_rc *rc)
{
	return rc ? rc->path : NULL;
}

lam_rc_mode lam_rc_get_mode(const lam_rc *rc)
{
	return rc ? rc->mode : LAM_RC_MODE_AUTO;
}

/* The number of processes left in the hierarchies not removed yet (each
 * counted once), and the folder of one that holds some. */
static int count_procs(lam_rc *rc, size_t *count, const char **where)
{
	pid_t *pids = NULL;
	size_t n = 0, cap = 0;
	int r = 0;

	*where = NULL;
	for (int i = 0; i < rc->nhier && r == 0; i++) {
		size_t before = n;

		if (rc->hier[i].removed)
			continue;
		/* A folder that lost its files was removed by someone else:
		 * it holds nothing. */
		if (!lam__rc_has(rc->hier[i].fd, "cgroup.procs"))
			continue;
		r = lam__rc_read_pids(rc, i, &pids, &n, &cap);
		if (n > before && !*where)
			*where = rc->hier[i].dir;
	}
	lam__free(pids);
	*count = n;
	return r;
}

int lam_rc_remove(lam_rc *rc, int timeout_ms)
{
	int64_t deadline;
	int delay = 1;

	lam__error_reset();
	int r = lam__rc_live(rc);
	if (r < 0)
		return r;
	deadline = timeout_ms < 0 ? INT64_MAX : lam__rc_now_ms() + timeout_ms;
	lam__rc_events_close(rc);
	for (;;) {
		size_t count;
		const char *where, *busy = NULL;

		r = count_procs(rc, &count, &where);
		if (r < 0)
			return lam__error_prefix(r, "removing group %s",
						 rc->path);
		for (int i = 0; count == 0 && i < rc->nhier; i++) {
			struct rc_hier *h = &rc->hier[i];

			if (h->removed)
				continue;
			if (unlinkat(h->parent_fd, rc->name, AT_REMOVEDIR) ==
				    0 ||
			    errno == ENOENT) {
				h->removed = true;
				close(h->fd);
				h->fd = -1;
			} else if (errno == EBUSY || errno == ENOTEMPTY) {
				busy = h->dir;
			} else {
				return lam__error_errno(errno, "removing %s",
							h->dir);
			}
		}
		if (count == 0 && !busy) {
			rc->removed = true;
			return 0;
		}
		if (lam__rc_now_ms() >= deadline) {
			if (count)
				return lam__error(LAM_EBUSY,
						  "removing group %s: %zu "
						  "process%s still in %s after "
						  "%d ms",
						  rc->path, count,
						  count == 1 ? "" : "es", where,
						  timeout_ms);
			return lam__error(LAM_EBUSY,
					  "removing group %s: %s is still busy "
					  "(it holds groups of its own)",
					  rc->path, busy);
		}
		int64_t left = deadline - lam__rc_now_ms();
		lam__rc_sleep_ms(left < delay ? (int)left : delay);
		if (delay < 50)
			delay *= 2;
	}
}
