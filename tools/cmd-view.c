/* SPDX-License-Identifier: MIT */
/*
 * Commands about views and about the merged trees of layers: the "view"
 * group (new, ls, rm, put, apply, commit), and ls, cat, diff and squash.
 *
 * Trees are read through views only: a layer is shown through a read-only
 * view over it, and a stored view is opened read-only, so that ls and cat
 * see exactly what a program working in a view would see.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "cli.h"

/* The size of the buffer that file contents go through. */
#define COPY_CHUNK (1u << 20)

/* The message of the lamina error that @rc reports. */
static const char *lam_message(int rc)
{
	const lam_error *err = lam_error_last();

	return err->message[0] ? err->message : lam_strerror(rc);
}

/* "@dir/@name", or @name alone when @dir is the root (""); NULL on ENOMEM. */
static char *path_join(const char *dir, const char *name)
{
	size_t dlen = strlen(dir), nlen = strlen(name);
	char *p = malloc(dlen + 1 + nlen + 1);

	if (!p)
		return NULL;
	memcpy(p, dir, dlen);
	if (dlen && dir[dlen - 1] != '/')
		p[dlen++] = '/';
	memcpy(p + dlen, name, nlen + 1);
	return p;
}

/* --- Naming layers and views. --- */

/*
 * Open what @name names: a layer (a ref or a digest prefix) into *layer, or
 * else a stored view (its UUID or a unique prefix) into *view, opened
 * read-only unless @writable. Exactly one of the two is set on success. A
 * name that names both a layer and a view means the layer; a view's full
 * UUID, with its dashes, never names a layer.
 */
static int open_named(struct cli *cli, const char *name, bool writable,
		      lam_layer **layer, lam_view **view)
{
	lam_view_options options = LAM_VIEW_OPTIONS_INIT;
	int status = cli_open_store(cli, 0);
	int rc;

	*layer = NULL;
	*view = NULL;
	if (status)
		return status;
	rc = lam_layer_open(layer, cli->store, name);
	if (rc != LAM_ENOTFOUND)
		return cli_check(rc);
	if (!writable)
		options.flags = LAM_VIEW_READONLY;
	rc = lam_view_open(view, cli->store, name, &options);
	if (rc == LAM_ENOTFOUND)
		return cli_error("no layer, ref or view named '%s'", name);
	return cli_check(rc);
}

/*
 * Open the merged tree that @name names, for reading: a layer through a
 * read-only view over it, or a stored view opened read-only.
 */
static int open_tree(struct cli *cli, const char *name, lam_view **out)
{
	lam_view_options options = LAM_VIEW_OPTIONS_INIT;
	lam_layer *layer;
	int status = open_named(cli, name, false, &layer, out);

	if (status || !layer)
		return status;
	options.flags = LAM_VIEW_READONLY;
	status = cli_check(lam_view_create(out, cli->store, layer, &options));
	lam_layer_free(layer);
	return status;
}

/* Open a stored view by its UUID or a unique prefix, for changes. */
static int open_view(struct cli *cli, const char *id, lam_view **out)
{
	int status = cli_open_store(cli, 0);

	*out = NULL;
	if (status)
		return status;
	return cli_check(lam_view_open(out, cli->store, id, NULL));
}

/* Refuse a bad ref name before anything is committed. */
static int check_ref_name(const char *ref)
{
	return ref ? cli_check(lam_store_ref_check_name(ref)) : CLI_EXIT_OK;
}

/*
 * Print the id of a layer just committed, then point @ref at it. The id
 * goes out even if the ref cannot be set: the layer exists by then, and the
 * caller needs its id to deal with it.
 */
static int print_committed(struct cli *cli, lam_layer *layer, const char *ref)
{
	printf("%s\n", lam_layer_id(layer));
	if (!ref)
		return CLI_EXIT_OK;
	return cli_check(
		lam_store_ref_set(cli->store, ref, lam_layer_id(layer), NULL));
}

/* --- view new, ls, rm, commit. --- */

static int view_new(struct cli *cli, int argc, char **argv)
{
	const struct cli_opt opts[] = {{0}};
	lam_layer *base = NULL;
	lam_view *view = NULL;
	int status, nargs = cli_parse(cli, argc, argv, opts, 0, 1);

	if (nargs < 0)
		return cli->status;
	if (nargs == 1)
		status = cli_open_layer(cli, &base, cli->args[0]);
	else
		status = cli_open_store(cli, 0);
	if (!status)
		status = cli_check(
			lam_view_create(&view, cli->store, base, NULL));
	if (!status)
		printf("%s\n", lam_view_id(view));
	lam_view_free(view);
	lam_layer_free(base);
	return status;
}

static int print_view(const char *id, const char *base_id, void *userdata)
{
	(void)userdata;
	printf("%s %s\n", id, base_id ? base_id : "-");
	return cli_out_check();
}

static int view_ls(struct cli *cli, int argc, char **argv)
{
	const struct cli_opt opts[] = {{0}};

	if (cli_start(cli, argc, argv, opts, 0, 0) < 0)
		return cli->status;
	return cli_check(lam_view_foreach(cli->store, print_view, NULL));
}

static int view_rm(struct cli *cli, int argc, char **argv)
{
	const struct cli_opt opts[] = {{0}};

	if (cli_start(cli, argc, argv, opts, 1, 1) < 0)
		return cli->status;
	return cli_check(lam_view_remove(cli->store, cli->args[0]));
}

static int view_commit(struct cli *cli, int argc, char **argv)
{
	const char *ref = NULL;
	const struct cli_opt opts[] = {
		{.name = "ref", .value = &ref},
		{0},
	};
	lam_layer *layer = NULL;
	lam_view *view = NULL;
	int status;

	if (cli_parse(cli, argc, argv, opts, 1, 1) < 0)
		return cli->status;
	status = check_ref_name(ref);
	if (!status)
		status = open_view(cli, cli->args[0], &view);
	if (!status)
		status = cli_check(lam_view_commit(view, &layer, NULL));
	if (!status)
		status = print_committed(cli, layer, ref);
	lam_layer_free(layer);
	lam_view_free(view);
	return status;
}

/* --- view put. --- */

/* Parse an octal permission mode ("644", "0755"). */
static int parse_mode(const char *text, uint32_t *mode)
{
	char *end;
	unsigned long value;

	errno = 0;
	value = strtoul(text, &end, 8);
	if (errno || end == text || *end || value > 07777)
		return -1;
	*mode = (uint32_t)value;
	return 0;
}

/* Write all of @buf to @file; 0 or CLI_EXIT_FAIL, reported. */
static int write_all(lam_view_file *file, const char *path, const char *buf,
		     size_t len)
{
	while (len) {
		size_t written;
		int rc = lam_view_file_write(file, buf, len, &written);

		if (rc < 0)
			return cli_error("writing %s: %s", path,
					 lam_message(rc));
		buf += written;
		len -= written;
	}
	return CLI_EXIT_OK;
}

/*
 * Copy what @fd holds, to its end, into @file; @what names @fd in
 * messages. 0 or CLI_EXIT_FAIL, reported.
 */
static int copy_fd(int fd, const char *what, lam_view_file *file,
		   const char *path)
{
	char *buf = malloc(COPY_CHUNK);
	int status = buf ? CLI_EXIT_OK : cli_oom();

	while (!status) {
		ssize_t n = read(fd, buf, COPY_CHUNK);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			status = cli_error("reading %s: %s", what,
					   strerror(errno));
		else if (n == 0)
			break;
		else
			status = write_all(file, path, buf, (size_t)n);
	}
	free(buf);
	return status;
}

static int view_put(struct cli *cli, int argc, char **argv)
{
	const char *mode_text = NULL;
	const struct cli_opt opts[] = {
		{.name = "mode", .value = &mode_text},
		{0},
	};
	lam_view *view = NULL;
	lam_view_file *file = NULL;
	uint32_t mode = 0644;
	const char *path;
	int status, rc;

	if (cli_parse(cli, argc, argv, opts, 2, 2) < 0)
		return cli->status;
	if (mode_text && parse_mode(mode_text, &mode) < 0)
		return cli_usage_error(cli, "bad mode '%s': give octal bits",
				       mode_text);
	path = cli->args[1];
	status = open_view(cli, cli->args[0], &view);
	if (!status) {
		rc = lam_view_file_open(&file, view, path,
					O_WRONLY | O_CREAT | O_TRUNC, mode);
		if (rc < 0)
			status = cli_error("%s", lam_message(rc));
	}
	/* An existing file keeps its mode unless one is given. */
	if (!status && mode_text) {
		rc = lam_view_chmod(view, path, mode);
		if (rc < 0)
			status = cli_error("%s", lam_message(rc));
	}
	if (!status)
		status = copy_fd(STDIN_FILENO, "standard input", file, path);
	rc = lam_view_file_close(file);
	if (rc < 0 && !status)
		status = cli_error("writing %s: %s", path, lam_message(rc));
	lam_view_free(view);
	return status;
}

/* --- view apply. --- */

/* A hard-linked host file already applied, and where it went. */
struct applied_link {
	dev_t dev;
	ino_t ino;
	char *path; /* its path in the view */
};

/* The state of one "view apply". */
struct apply {
	lam_view *view;
	bool owners; /* set owners: only root may */
	struct applied_link *links;
	size_t nlinks, cap;
};

/* Report a failed library call while applying the host entry @host. */
static int apply_error(const char *host, int rc)
{
	return cli_error("applying %s: %s", host, lam_message(rc));
}

/*
 * Where the link of @st belongs in the table, which is kept sorted by
 * device and inode; *found tells whether it is there already.
 */
static size_t find_link(const struct apply *a, const struct stat *st,
			bool *found)
{
	size_t lo = 0, hi = a->nlinks;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct applied_link *l = &a->links[mid];

		if (l->dev < st->st_dev ||
		    (l->dev == st->st_dev && l->ino < st->st_ino))
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = lo < a->nlinks && a->links[lo].dev == st->st_dev &&
		 a->links[lo].ino == st->st_ino;
	return lo;
}

static int add_link(struct apply *a, const struct stat *st, const char *vpath)
{
	bool found;
	size_t at = find_link(a, st, &found);
	char *copy;

	if (a->nlinks == a->cap) {
		size_t cap = a->cap ? a->cap * 2 : 16;
		struct applied_link *v =
			realloc(a->links, cap * sizeof(*a->links));

		if (!v)
			return cli_oom();
		a->links = v;
		a->cap = cap;
	}
	copy = strdup(vpath);
	if (!copy)
		return cli_oom();
	memmove(a->links + at + 1, a->links + at,
		(a->nlinks - at) * sizeof(*a->links));
	a->links[at] = (struct applied_link){st->st_dev, st->st_ino, copy};
	a->nlinks++;
	return 0;
}

/* Whether an entry of the view may stand for an overlayfs mark. */
static bool is_overlay_xattr(const char *name)
{
	return strncmp(name, "trusted.overlay.", 16) == 0 ||
	       strncmp(name, "user.overlay.", 13) == 0;
}

/*
 * Whether the host folder @host is opaque: its trusted.overlay.opaque or
 * user.overlay.opaque xattr is "y".
 */
static bool host_opaque(const char *host)
{
	static const char *const names[] = {"trusted.overlay.opaque",
					    "user.overlay.opaque"};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		char value[2];
		ssize_t n = lgetxattr(host, names[i], value, sizeof(value));

		if (n == 1 && value[0] == 'y')
			return true;
	}
	return false;
}

static int remove_tree(struct apply *a, const char *host, const char *vpath);

/* Remove everything inside the view's folder @vpath. */
static int empty_dir(struct apply *a, const char *host, const char *vpath)
{
	lam_view_dir_iter *iter;
	lam_dirent entry;
	int rc, status = 0;

	rc = lam_view_dir_iter_new(&iter, a->view, vpath);
	if (rc < 0)
		return apply_error(host, rc);
	while (!status && (rc = lam_view_dir_iter_next(iter, &entry)) == 0) {
		char *child = path_join(vpath, entry.name);

		if (!child)
			status = cli_oom();
		else if (S_ISDIR(entry.mode))
			status = remove_tree(a, host, child);
		else if ((rc = lam_view_unlink(a->view, child)) < 0)
			status = apply_error(host, rc);
		free(child);
	}
	lam_view_dir_iter_free(iter);
	return status;
}

/* Remove @vpath from the view, whatever it is; nothing there is fine. */
static int remove_tree(struct apply *a, const char *host, const char *vpath)
{
	lam_stat st;
	int rc = lam_view_lstat(a->view, vpath, &st);

	if (rc < 0 && lam_error_last()->os_errno == ENOENT)
		return 0;
	if (rc < 0)
		return apply_error(host, rc);
	if (!S_ISDIR(st.mode)) {
		rc = lam_view_unlink(a->view, vpath);
		return rc < 0 ? apply_error(host, rc) : 0;
	}
	/* A whiteout deletes a read-only folder too, whoever runs this. */
	if ((st.mode & 0700) != 0700 &&
	    (rc = lam_view_chmod(a->view, vpath, (st.mode & 07777) | 0700)) < 0)
		return apply_error(host, rc);
	if (empty_dir(a, host, vpath))
		return CLI_EXIT_FAIL;
	rc = lam_view_rmdir(a->view, vpath);
	return rc < 0 ? apply_error(host, rc) : 0;
}

/*
 * Copy the xattrs of the host entry @host onto @vpath (overlayfs marks
 * excepted). With @prune, also remove the xattrs @vpath holds that @host
 * does not: a folder that already exists takes the host's set. The host
 * side uses paths, since Linux has no *at() form of the xattr calls before
 * 6.13.
 */
static int apply_xattrs(struct apply *a, const char *host, const char *vpath,
			bool prune)
{
	char *names = NULL, *value = NULL, *have = NULL;
	ssize_t len = llistxattr(host, NULL, 0);
	size_t have_len = 0;
	int rc, status = 0;

	if (len < 0 && errno != ENOTSUP)
		return cli_error("reading xattrs of %s: %s", host,
				 strerror(errno));
	if (len > 0) {
		names = malloc((size_t)len);
		if (!names)
			return cli_oom();
		len = llistxattr(host, names, (size_t)len);
		if (len < 0)
			status = cli_error("reading xattrs of %s: %s", host,
					   strerror(errno));
	}
	for (ssize_t off = 0; !status && off < len;
	     off += (ssize_t)strlen(names + off) + 1) {
		const char *name = names + off;
		ssize_t vlen;

		if (is_overlay_xattr(name))
			continue;
		vlen = lgetxattr(host, name, NULL, 0);
		free(value);
		value = vlen >= 0 ? malloc((size_t)vlen + 1) : NULL;
		if (vlen >= 0 && !value) {
			status = cli_oom();
			break;
		}
		if (vlen >= 0)
			vlen = lgetxattr(host, name, value, (size_t)vlen);
		if (vlen < 0) {
			status = cli_error("reading xattr %s of %s: %s", name,
					   host, strerror(errno));
			break;
		}
		rc = lam_view_setxattr(a->view, vpath, name, value,
				       (size_t)vlen, 0);
		if (rc < 0)
			status = apply_error(host, rc);
	}
	if (!status && prune) {
		rc = lam_view_listxattr(&have, &have_len, a->view, vpath,
					LAM_NOFOLLOW);
		if (rc < 0)
			status = apply_error(host, rc);
	}
	for (size_t off = 0; !status && off < have_len;
	     off += strlen(have + off) + 1) {
		const char *name = have + off;
		bool keep = is_overlay_xattr(name);

		for (ssize_t o = 0; !keep && o < len;
		     o += (ssize_t)strlen(names + o) + 1)
			keep = strcmp(names + o, name) == 0;
		if (keep)
			continue;
		rc = lam_view_removexattr(a->view, vpath, name, LAM_NOFOLLOW);
		if (rc < 0)
			status = apply_error(host, rc);
	}
	lam_free(have);
	free(value);
	free(names);
	return status;
}

/*
 * Give @vpath the metadata of the host entry: owner (as root), mode (a
 * symlink has none of its own), xattrs and, last, since the others change
 * it, the times.
 */
static int apply_meta(struct apply *a, const char *host, const char *vpath,
		      const struct stat *st)
{
	lam_time times[2] = {
		{st->st_atim.tv_sec, st->st_atim.tv_nsec},
		{st->st_mtim.tv_sec, st->st_mtim.tv_nsec},
	};
	int rc = 0;

	if (a->owners)
		rc = lam_view_chown(a->view, vpath, st->st_uid, st->st_gid,
				    LAM_NOFOLLOW);
	if (rc == 0 && !S_ISLNK(st->st_mode))
		rc = lam_view_chmod(a->view, vpath, st->st_mode & 07777);
	if (rc < 0)
		return apply_error(host, rc);
	if (apply_xattrs(a, host, vpath, S_ISDIR(st->st_mode)))
		return CLI_EXIT_FAIL;
	rc = lam_view_utimens(a->view, vpath, times, LAM_NOFOLLOW);
	return rc < 0 ? apply_error(host, rc) : 0;
}

/* Create @vpath as a copy of the host's regular file @name in @dirfd. */
static int apply_file(struct apply *a, int dirfd, const char *name,
		      const char *host, const char *vpath)
{
	lam_view_file *file;
	int fd, rc, status;

	fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return cli_error("opening %s: %s", host, strerror(errno));
	rc = lam_view_file_open(&file, a->view, vpath,
				O_WRONLY | O_CREAT | O_EXCL, 0600);
	if (rc < 0) {
		close(fd);
		return apply_error(host, rc);
	}
	status = copy_fd(fd, host, file, vpath);
	rc = lam_view_file_close(file);
	close(fd);
	if (rc < 0 && !status)
		status = apply_error(host, rc);
	return status;
}

static int apply_dir(struct apply *a, int dirfd, const char *host,
		     const char *vpath);

/*
 * Apply the host folder @name of @dirfd as @vpath: make it a folder in the
 * view (emptied first when the host folder is opaque), apply its contents,
 * then its metadata.
 */
static int apply_subdir(struct apply *a, int dirfd, const char *name,
			const char *host, const char *vpath,
			const struct stat *st)
{
	lam_stat vst;
	int fd, rc, status = 0;
	bool exists;

	rc = lam_view_lstat(a->view, vpath, &vst);
	if (rc < 0 && lam_error_last()->os_errno != ENOENT)
		return apply_error(host, rc);
	exists = rc == 0 && S_ISDIR(vst.mode);
	if (rc == 0 && !exists)
		status = remove_tree(a, host, vpath);
	/*
	 * Writable by its owner until its contents are in, whatever its final
	 * mode, so that a user other than root can fill a read-only folder
	 * as tar does; apply_meta() sets the host's mode afterwards.
	 */
	rc = 0;
	if (!status && !exists)
		rc = lam_view_mkdir(a->view, vpath, 0700);
	else if (!status && (vst.mode & 0700) != 0700)
		rc = lam_view_chmod(a->view, vpath, (vst.mode & 07777) | 0700);
	if (!status && rc < 0)
		status = apply_error(host, rc);
	if (!status && exists && host_opaque(host))
		status = empty_dir(a, host, vpath);
	if (status)
		return status;
	fd = openat(dirfd, name,
		    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return cli_error("opening %s: %s", host, strerror(errno));
	status = apply_dir(a, fd, host, vpath);
	close(fd);
	if (!status)
		status = apply_meta(a, host, vpath, st);
	return status;
}

/* Apply one entry @name of the host folder @dirfd at @vpath. */
static int apply_entry(struct apply *a, int dirfd, const char *name,
		       const char *host, const char *vpath)
{
	struct applied_link *link = NULL;
	struct stat st;
	int rc = 0, status;

	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return cli_error("reading %s: %s", host, strerror(errno));
	if (S_ISDIR(st.st_mode))
		return apply_subdir(a, dirfd, name, host, vpath, &st);
	/* Sockets cannot be stored, as import-dir skips them. */
	if (S_ISSOCK(st.st_mode))
		return 0;
	/* Whatever stood there goes: a whiteout, or a new entry. */
	status = remove_tree(a, host, vpath);
	if (status || (S_ISCHR(st.st_mode) && st.st_rdev == 0))
		return status;
	if (st.st_nlink > 1) {
		bool found;
		size_t at = find_link(a, &st, &found);

		link = found ? &a->links[at] : NULL;
	}
	if (link) {
		rc = lam_view_link(a->view, link->path, vpath);
		return rc < 0 ? apply_error(host, rc) : 0;
	}
	if (S_ISREG(st.st_mode)) {
		status = apply_file(a, dirfd, name, host, vpath);
	} else if (S_ISLNK(st.st_mode)) {
		char target[PATH_MAX + 1];
		ssize_t n = readlinkat(dirfd, name, target, sizeof(target));

		if (n < 0 || (size_t)n >= sizeof(target))
			return cli_error("reading %s: %s", host,
					 n < 0 ? strerror(errno) :
						 strerror(ENAMETOOLONG));
		target[n] = '\0';
		rc = lam_view_symlink(a->view, target, vpath);
	} else {
		rc = lam_view_mknod(a->view, vpath,
				    st.st_mode & (S_IFMT | 07777), st.st_rdev);
	}
	if (rc < 0)
		return apply_error(host, rc);
	if (!status)
		status = apply_meta(a, host, vpath, &st);
	if (!status && st.st_nlink > 1)
		status = add_link(a, &st, vpath);
	return status;
}

static int compare_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * Read the names in the host folder @dirfd, sorted, so that a folder is
 * applied the same way on every machine. *out is a NULL-ended array.
 */
static int read_names(int dirfd, const char *host, char ***out)
{
	int fd = dup(dirfd);
	DIR *dir = fd >= 0 ? fdopendir(fd) : NULL;
	char **names = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	int status = 0;

	*out = NULL;
	if (!dir) {
		if (fd >= 0)
			close(fd);
		return cli_error("reading %s: %s", host, strerror(errno));
	}
	for (;;) {
		errno = 0;
		de = readdir(dir);
		if (!de) {
			if (errno)
				status = cli_error("reading %s: %s", host,
						   strerror(errno));
			break;
		}
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		if (n + 1 >= cap) {
			size_t ncap = cap ? cap * 2 : 32;
			char **v = realloc(names, ncap * sizeof(*names));

			if (!v) {
				status = cli_oom();
				break;
			}
			names = v;
			cap = ncap;
		}
		names[n] = strdup(de->d_name);
		if (!names[n]) {
			status = cli_oom();
			break;
		}
		names[++n] = NULL;
	}
	closedir(dir);
	if (n > 1)
		qsort(names, n, sizeof(*names), compare_names);
	if (status) {
		for (size_t i = 0; i < n; i++)
			free(names[i]);
		free(names);
		return status;
	}
	*out = names;
	return 0;
}

/* Apply the contents of the host folder @dirfd (@host) to @vpath. */
static int apply_dir(struct apply *a, int dirfd, const char *host,
		     const char *vpath)
{
	char **names;
	int status = read_names(dirfd, host, &names);

	for (size_t i = 0; names && names[i]; i++) {
		char *child_host = NULL, *child_view = NULL;

		if (!status) {
			child_host = path_join(host, names[i]);
			child_view = path_join(vpath, names[i]);
			if (!child_host || !child_view)
				status = cli_oom();
		}
		if (!status)
			status = apply_entry(a, dirfd, names[i], child_host,
					     child_view);
		free(child_host);
		free(child_view);
		free(names[i]);
	}
	free(names);
	return status;
}

static int view_apply(struct cli *cli, int argc, char **argv)
{
	const struct cli_opt opts[] = {{0}};
	struct apply a = {.owners = geteuid() == 0};
	const char *host;
	int fd, status;

	if (cli_parse(cli, argc, argv, opts, 2, 2) < 0)
		return cli->status;
	host = cli->args[1];
	fd = open(host, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return cli_error("opening %s: %s", host, strerror(errno));
	status = open_view(cli, cli->args[0], &a.view);
	if (!status && host_opaque(host))
		status = empty_dir(&a, host, "");
	if (!status)
		status = apply_dir(&a, fd, host, "");
	close(fd);
	for (size_t i = 0; i < a.nlinks; i++)
		free(a.links[i].path);
	free(a.links);
	lam_view_free(a.view);
	return status;
}

/* --- ls, cat. --- */

/* The ls -l form of a mode: type letter and permissions, 10 characters. */
static void mode_string(uint32_t mode, char out[11])
{
	static const char rwx[] = "rwxrwxrwx";
	char type = '?';

	switch (mode & S_IFMT) {
	case S_IFREG:
		type = '-';
		break;
	case S_IFDIR:
		type = 'd';
		break;
	case S_IFLNK:
		type = 'l';
		break;
	case S_IFCHR:
		type = 'c';
		break;
	case S_IFBLK:
		type = 'b';
		break;
	case S_IFIFO:
		type = 'p';
		break;
	case S_IFSOCK:
		type = 's';
		break;
	}
	out[0] = type;
	for (int i = 0; i < 9; i++)
		out[1 + i] = mode & (0400u >> i) ? rwx[i] : '-';
	if (mode & S_ISUID)
		out[3] = out[3] == 'x' ? 's' : 'S';
	if (mode & S_ISGID)
		out[6] = out[6] == 'x' ? 's' : 'S';
	if (mode & S_ISVTX)
		out[9] = out[9] == 'x' ? 't' : 'T';
	out[10] = '\0';
}

/*
 * Print the line of @vpath, shown as @shown: MODE UID:GID SIZE NAME, with
 * MAJOR,MINOR for SIZE on a device and "-> TARGET" after a symlink.
 */
static int print_entry(lam_view *view, const char *vpath, const char *shown,
		       lam_stat *st)
{
	char mode[11];
	int rc;

	rc = lam_view_lstat(view, vpath, st);
	if (rc < 0)
		return cli_check(rc);
	mode_string(st->mode, mode);
	printf("%s %" PRIu32 ":%" PRIu32 " ", mode, st->uid, st->gid);
	if (S_ISCHR(st->mode) || S_ISBLK(st->mode))
		printf("%u,%u ", major(st->rdev), minor(st->rdev));
	else
		printf("%" PRIu64 " ", st->size);
	fputs(shown, stdout);
	if (S_ISLNK(st->mode)) {
		char *target;

		rc = lam_view_readlink(&target, view, vpath);
		if (rc < 0)
			return cli_check(rc);
		printf(" -> %s", target);
		lam_free(target);
	}
	putchar('\n');
	return cli_out_check();
}

/*
 * List the folder @vpath; entries show as their names, or with
 * @recursive as their paths below @top (which is @vpath's own prefix).
 */
static int list_dir(lam_view *view, const char *vpath, size_t top,
		    bool recursive)
{
	lam_view_dir_iter *iter;
	lam_dirent entry;
	int rc, status = 0;

	if (cli_check(lam_view_dir_iter_new(&iter, view, vpath)))
		return CLI_EXIT_FAIL;
	while (!status && (rc = lam_view_dir_iter_next(iter, &entry)) == 0) {
		char *child = path_join(vpath, entry.name);
		const char *shown;
		lam_stat st;

		if (!child) {
			status = cli_oom();
			break;
		}
		shown = recursive ? child + top : entry.name;
		status = print_entry(view, child, shown, &st);
		if (!status && recursive && S_ISDIR(st.mode))
			status = list_dir(view, child, top, true);
		free(child);
	}
	lam_view_dir_iter_free(iter);
	return status;
}

int cli_cmd_ls(struct cli *cli, int argc, char **argv)
{
	int recursive = 0;
	const struct cli_opt opts[] = {
		{.name = "recursive", .letter = 'R', .flag = &recursive},
		{0},
	};
	const char *path;
	lam_view *view = NULL;
	lam_stat st;
	size_t top;
	int nargs, status;

	nargs = cli_parse(cli, argc, argv, opts, 1, 2);
	if (nargs < 0)
		return cli->status;
	path = nargs > 1 ? cli->args[1] : "";
	status = open_tree(cli, cli->args[0], &view);
	if (!status)
		status = cli_check(lam_view_lstat(view, path, &st));
	if (!status && !S_ISDIR(st.mode)) {
		status = print_entry(view, path, path, &st);
	} else if (!status) {
		/* Recursive listings name entries below PATH, without a '/'. */
		top = strlen(path);
		while (top && path[top - 1] == '/')
			top--;
		if (top)
			top++;
		status = list_dir(view, path, top, recursive);
	}
	lam_view_free(view);
	return status;
}

int cli_cmd_cat(struct cli *cli, int argc, char **argv)
{
	const struct cli_opt opts[] = {{0}};
	lam_view *view = NULL;
	lam_view_file *file = NULL;
	char *buf = NULL;
	int status;

	if (cli_parse(cli, argc, argv, opts, 2, 2) < 0)
		return cli->status;
	status = open_tree(cli, cli->args[0], &view);
	if (!status)
		status = cli_check(lam_view_file_open(&file, view, cli->args[1],
						      O_RDONLY, 0));
	if (!status && !(buf = malloc(COPY_CHUNK)))
		status = cli_oom();
	while (!status) {
		size_t got;

		status = cli_check(
			lam_view_file_read(file, buf, COPY_CHUNK, &got));
		if (status || got == 0)
			break;
		fwrite(buf, 1, got, stdout);
		status = cli_out_check();
	}
	free(buf);
	lam_view_file_close(file);
	lam_view_free(view);
	return status;
}

/* --- diff, squash. --- */

static int print_change(lam_change_kind kind, const char *path, void *userdata)
{
	const bool *metadata = userdata;

	if (kind == LAM_CHANGE_METADATA && !*metadata)
		kind = LAM_CHANGE_MODIFIED;
	/* The library names the root "", which would print as nothing. */
	printf("%c %s\n", (char)kind, path[0] ? path : ".");
	return cli_out_check();
}

/* A key/value change: "K reg:Key\Sub" for a key, "K reg:Key\Sub:Name"
 * for a value (the default value's name is empty). */
static int print_kv_change(lam_change_kind kind, const char *key,
			   const char *value, void *userdata)
{
	(void)userdata;
	if (value)
		printf("%c reg:%s:%s\n", (char)kind, key, value);
	else
		printf("%c reg:%s\n", (char)kind, key);
	return cli_out_check();
}

int cli_cmd_diff(struct cli *cli, int argc, char **argv)
{
	int metadata_flag = 0;
	const struct cli_opt opts[] = {
		{.name = "metadata", .flag = &metadata_flag},
		{0},
	};
	lam_layer *from = NULL, *to = NULL;
	lam_view *view = NULL, *other = NULL;
	bool metadata;
	int nargs, status;

	nargs = cli_parse(cli, argc, argv, opts, 1, 2);
	if (nargs < 0)
		return cli->status;
	metadata = metadata_flag != 0;
	status = open_named(cli, cli->args[0], false, nargs == 2 ? &from : &to,
			    &view);
	if (!status && nargs == 2)
		status = open_named(cli, cli->args[1], false, &to, &other);
	if (!status && nargs == 2 && (view || other))
		status = cli_error("'%s' is a view: compare a view with its "
				   "base with 'lamina diff VIEW'",
				   cli->args[view ? 0 : 1]);
	if (!status && view) {
		status =
			cli_check(lam_view_diff(view, print_change, &metadata));
		if (!status)
			status = cli_check(
				lam_kv_view_diff(view, print_kv_change, NULL));
	} else if (!status) {
		/* One layer alone is compared with its parent. */
		if (nargs == 1)
			status = cli_check(lam_layer_parent(&from, to));
		if (!status)
			status = cli_check(lam_layer_diff(
				from, to, print_change, &metadata));
		if (!status)
			status = cli_check(
				lam_kv_diff(from, to, print_kv_change, NULL));
	}
	lam_view_free(other);
	lam_view_free(view);
	lam_layer_free(to);
	lam_layer_free(from);
	return status;
}

int cli_cmd_squash(struct cli *cli, int argc, char **argv)
{
	const char *onto_name = NULL, *ref = NULL;
	const struct cli_opt opts[] = {
		{.name = "onto", .value = &onto_name},
		{.name = "ref", .value = &ref},
		{0},
	};
	lam_layer *top = NULL, *onto = NULL, *layer = NULL;
	int status;

	if (cli_parse(cli, argc, argv, opts, 1, 1) < 0)
		return cli->status;
	status = check_ref_name(ref);
	if (!status)
		status = cli_open_layer(cli, &top, cli->args[0]);
	if (!status && onto_name)
		status = cli_open_layer(cli, &onto, onto_name);
	if (!status)
		status = cli_check(lam_layer_squash(&layer, top, onto));
	if (!status)
		status = print_committed(cli, layer, ref);
	lam_layer_free(layer);
	lam_layer_free(onto);
	lam_layer_free(top);
	return status;
}

/* --- The tables. --- */

const struct cli_cmd cli_view_commands[] = {
	{
		.name = "new",
		.run = view_new,
		.synopsis = "[LAYER]",
		.summary = "create a view over LAYER; print its id",
		.details = "The view is stored under a new UUID until 'view "
			   "rm' and keeps LAYER from garbage collection. "
			   "Without LAYER the view starts empty, for a new "
			   "base layer. (\"-\" is a valid ref name, so it "
			   "does not stand for \"no layer\".)",
	},
	{
		.name = "ls",
		.run = view_ls,
		.synopsis = "",
		.summary = "list the stored views: id and base",
		.details = "Each line reads ID BASE, with \"-\" for a view "
			   "over nothing, in id order.",
	},
	{
		.name = "rm",
		.run = view_rm,
		.synopsis = "ID",
		.summary = "remove a view and all its changes",
	},
	{
		.name = "put",
		.run = view_put,
		.synopsis = "ID PATH [--mode MODE]",
		.summary = "write standard input to PATH in the view",
		.details = "Creates the file, or replaces the contents of the "
			   "one there (a final symlink is followed, inside "
			   "the view, as the shell's '>' does). Nothing else "
			   "is created: PATH's folder must exist. A new file "
			   "gets mode 0644, an existing one keeps its mode; "
			   "--mode MODE (octal) sets it in both cases.",
	},
	{
		.name = "apply",
		.run = view_apply,
		.synopsis = "ID DIR",
		.summary = "apply a host folder to the view as changes",
		.details = "DIR holds changes in overlayfs form, as a layer "
			   "diff does: each entry replaces what the view has "
			   "at its path (a folder is merged with the view's "
			   "folder); a 0/0 character device is a whiteout "
			   "that deletes the path; a folder whose "
			   "trusted.overlay.opaque or user.overlay.opaque "
			   "xattr is \"y\" first deletes everything the view "
			   "has below it. Files, folders, symlinks, fifos and "
			   "devices keep their modes, times, xattrs and, when "
			   "run as root, owners; hard links in DIR become hard "
			   "links; sockets are skipped. DIR's own metadata is "
			   "not applied. The changes go through the view's "
			   "file API; on failure the view holds those applied "
			   "so far.",
	},
	{
		.name = "commit",
		.run = view_commit,
		.synopsis = "ID [--ref NAME]",
		.summary = "commit the view as a layer; print the layer id",
		.details = "The view goes on over the new layer, with no "
			   "changes. --ref NAME points the ref NAME at the new "
			   "layer; the name is checked before committing.",
	},
	{0},
};
