/* SPDX-License-Identifier: MIT */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "support.h"

char lt_dir[4096];
char lt_store_path[4200];
lam_store *lt_store;

void lt_setup(void)
{
	const char *base = getenv("TMPDIR");
	snprintf(lt_dir, sizeof(lt_dir), "%s/lamina-test-XXXXXX",
		 base && base[0] ? base : "/tmp");
	ck_assert_ptr_nonnull(mkdtemp(lt_dir));
	snprintf(lt_store_path, sizeof(lt_store_path), "%s/store", lt_dir);
	lam_store_options o = LAM_STORE_OPTIONS_INIT;
	o.flags = LAM_STORE_CREATE;
	LT_OK(lam_store_open(&lt_store, lt_store_path, &o));
}

void lt_teardown(void)
{
	lam_store_free(lt_store);
	lt_store = NULL;
	if (lt_dir[0] != '\0')
		lt_rmtree(lt_dir);
}

void lt_check_failure(int rc, int want, const char *text, const char *expr,
		      const char *file, int line)
{
	const lam_error *e = lam_error_last();
	ck_assert_msg(rc == want, "%s:%d: %s: expected %d, got %d (%s)", file,
		      line, expr, want, rc, e->message);
	ck_assert_msg(e->code == want, "%s:%d: %s: record holds %d", file, line,
		      expr, e->code);
	ck_assert_msg(e->message[0] != '\0', "%s:%d: %s: empty message", file,
		      line, expr);
	ck_assert_msg(text == NULL || strstr(e->message, text) != NULL,
		      "%s:%d: %s: message '%s' lacks '%s'", file, line, expr,
		      e->message, text ? text : "");
}

const char *lt_path(const char *fmt, ...)
{
	static char bufs[8][4096];
	static int next;
	char *b = bufs[next++ & 7];
	int n = snprintf(b, 4096, "%s/", lt_dir);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(b + n, 4096 - (size_t)n, fmt, ap);
	va_end(ap);
	return b;
}

static void make_parents(const char *path)
{
	char buf[4096];
	snprintf(buf, sizeof(buf), "%s", path);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0755) < 0 && errno != EEXIST)
			ck_abort_msg("mkdir %s: %s", buf, strerror(errno));
		*p = '/';
	}
}

void lt_write_bytes(const char *path, const void *data, size_t len)
{
	make_parents(path);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	ck_assert_msg(fd >= 0, "open %s: %s", path, strerror(errno));
	ck_assert_int_eq(write(fd, data, len), (ssize_t)len);
	close(fd);
}

void lt_write(const char *path, const char *content)
{
	lt_write_bytes(path, content, strlen(content));
}

void lt_mkdir(const char *path)
{
	make_parents(path);
	if (mkdir(path, 0755) < 0 && errno != EEXIST)
		ck_abort_msg("mkdir %s: %s", path, strerror(errno));
}

void lt_symlink(const char *target, const char *path)
{
	make_parents(path);
	ck_assert_msg(symlink(target, path) == 0, "symlink %s: %s", path,
		      strerror(errno));
}

void lt_link(const char *existing, const char *path)
{
	make_parents(path);
	ck_assert_msg(link(existing, path) == 0, "link %s: %s", path,
		      strerror(errno));
}

void lt_whiteout(const char *path)
{
	make_parents(path);
	ck_assert_msg(mknod(path, S_IFCHR | 0000, makedev(0, 0)) == 0,
		      "mknod %s: %s", path, strerror(errno));
}

void lt_opaque(const char *dir)
{
	lt_mkdir(dir);
	ck_assert_msg(setxattr(dir, "trusted.overlay.opaque", "y", 1, 0) == 0,
		      "setxattr %s: %s", dir, strerror(errno));
}

char *lt_read(const char *path, size_t *len)
{
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return NULL;
	struct stat st;
	fstat(fd, &st);
	char *buf = malloc((size_t)st.st_size + 1);
	ssize_t n = read(fd, buf, (size_t)st.st_size);
	close(fd);
	if (n < 0) {
		free(buf);
		return NULL;
	}
	buf[n] = '\0';
	if (len)
		*len = (size_t)n;
	return buf;
}

bool lt_exists(const char *path)
{
	struct stat st;
	return lstat(path, &st) == 0;
}

void lt_rmtree(const char *path)
{
	char cmd[8192];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);
	if (system(cmd) != 0)
		fprintf(stderr, "warning: could not remove %s\n", path);
}

int lt_run(const char *cmd)
{
	int st = system(cmd);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

/* One entry of a tree listing, for the comparison. */
typedef struct tent {
	char *path;
	struct stat st;
	char *target;
	char *xattrs;
	char *data;
	size_t data_len;
} tent;

typedef struct tlist {
	tent *v;
	size_t n, cap;
} tlist;

static char *xattr_text(const char *path)
{
	char names[8192];
	ssize_t len = llistxattr(path, names, sizeof(names));
	if (len <= 0)
		return strdup("");
	/* Sort the names so the text does not depend on listing order. */
	char *sorted[256];
	int cnt = 0;
	for (ssize_t i = 0; i < len && cnt < 256;
	     i += (ssize_t)strlen(names + i) + 1)
		sorted[cnt++] = names + i;
	for (int i = 1; i < cnt; i++)
		for (int j = i; j > 0 && strcmp(sorted[j - 1], sorted[j]) > 0;
		     j--) {
			char *t = sorted[j];
			sorted[j] = sorted[j - 1];
			sorted[j - 1] = t;
		}
	char *out = NULL;
	size_t outlen = 0;
	FILE *f = open_memstream(&out, &outlen);
	for (int i = 0; i < cnt; i++) {
		if (strncmp(sorted[i], "trusted.overlay.", 16) == 0 ||
		    strncmp(sorted[i], "security.selinux", 16) == 0)
			continue;
		char val[65536];
		ssize_t vl = lgetxattr(path, sorted[i], val, sizeof(val));
		fprintf(f, "%s=", sorted[i]);
		for (ssize_t k = 0; k < vl; k++)
			fprintf(f, "%02x", (unsigned char)val[k]);
		fprintf(f, ";");
	}
	fclose(f);
	return out;
}

static void list_tree(tlist *l, const char *root, const char *rel)
{
	char full[8192];
	snprintf(full, sizeof(full), "%s%s%s", root, rel[0] ? "/" : "", rel);
	DIR *d = opendir(full);
	if (d == NULL)
		return;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (l->n == l->cap) {
			l->cap = l->cap ? l->cap * 2 : 64;
			l->v = realloc(l->v, l->cap * sizeof(*l->v));
		}
		tent *t = &l->v[l->n++];
		memset(t, 0, sizeof(*t));
		char r[4096];
		snprintf(r, sizeof(r), "%s%s%s", rel, rel[0] ? "/" : "",
			 de->d_name);
		t->path = strdup(r);
		char p[8192];
		snprintf(p, sizeof(p), "%s/%s", root, r);
		lstat(p, &t->st);
		t->xattrs = xattr_text(p);
		if (S_ISLNK(t->st.st_mode)) {
			char buf[4096];
			ssize_t n = readlink(p, buf, sizeof(buf) - 1);
			buf[n < 0 ? 0 : n] = '\0';
			t->target = strdup(buf);
		} else if (S_ISREG(t->st.st_mode)) {
			t->data = lt_read(p, &t->data_len);
		} else if (S_ISDIR(t->st.st_mode)) {
			list_tree(l, root, r);
		}
	}
	closedir(d);
}

static int tent_cmp(const void *a, const void *b)
{
	return strcmp(((const tent *)a)->path, ((const tent *)b)->path);
}

static void tlist_free(tlist *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free(l->v[i].path);
		free(l->v[i].target);
		free(l->v[i].xattrs);
		free(l->v[i].data);
	}
	free(l->v);
}

/* The hard-link group of entry i: the path of the first entry (in sorted
 * order) with the same inode, or "" when it has no other link. */
static const char *link_leader(const tlist *l, size_t i)
{
	if (S_ISDIR(l->v[i].st.st_mode) || l->v[i].st.st_nlink < 2)
		return "";
	for (size_t k = 0; k < l->n; k++)
		if (l->v[k].st.st_ino == l->v[i].st.st_ino &&
		    l->v[k].st.st_dev == l->v[i].st.st_dev)
			return l->v[k].path;
	return "";
}

char *lt_tree_diff(const char *a, const char *b, bool with_times)
{
	tlist la = {0}, lb = {0};
	list_tree(&la, a, "");
	list_tree(&lb, b, "");
	qsort(la.v, la.n, sizeof(tent), tent_cmp);
	qsort(lb.v, lb.n, sizeof(tent), tent_cmp);
	char *diff = NULL;
	size_t i = 0, k = 0;
	while (diff == NULL && (i < la.n || k < lb.n)) {
		int c = i == la.n ? 1 :
			k == lb.n ? -1 :
				    strcmp(la.v[i].path, lb.v[k].path);
		if (c < 0) {
			if (asprintf(&diff, "only in %s: %s", a, la.v[i].path) <
			    0)
				diff = NULL;
			break;
		}
		if (c > 0) {
			if (asprintf(&diff, "only in %s: %s", b, lb.v[k].path) <
			    0)
				diff = NULL;
			break;
		}
		tent *x = &la.v[i], *y = &lb.v[k];
		const char *what = NULL;
		if (x->st.st_mode != y->st.st_mode)
			what = "mode";
		else if (x->st.st_uid != y->st.st_uid ||
			 x->st.st_gid != y->st.st_gid)
			what = "owner";
		else if (!S_ISDIR(x->st.st_mode) &&
			 x->st.st_size != y->st.st_size)
			what = "size";
		else if (S_ISREG(x->st.st_mode) &&
			 (x->data_len != y->data_len ||
			  memcmp(x->data, y->data, x->data_len) != 0))
			what = "content";
		else if (S_ISLNK(x->st.st_mode) && strcmp(x->target, y->target))
			what = "symlink target";
		else if ((S_ISCHR(x->st.st_mode) || S_ISBLK(x->st.st_mode)) &&
			 x->st.st_rdev != y->st.st_rdev)
			what = "device number";
		else if (strcmp(x->xattrs, y->xattrs) != 0)
			what = "xattrs";
		else if (!S_ISDIR(x->st.st_mode) &&
			 x->st.st_nlink != y->st.st_nlink)
			what = "link count";
		else if (strcmp(link_leader(&la, i), link_leader(&lb, k)) != 0)
			what = "hard-link group";
		else if (with_times && !S_ISDIR(x->st.st_mode) &&
			 !S_ISLNK(x->st.st_mode) &&
			 (x->st.st_mtim.tv_sec != y->st.st_mtim.tv_sec ||
			  x->st.st_mtim.tv_nsec != y->st.st_mtim.tv_nsec))
			what = "mtime";
		if (what != NULL &&
		    asprintf(&diff, "%s differs: %s", x->path, what) < 0)
			diff = NULL;
		i++;
		k++;
	}
	tlist_free(&la);
	tlist_free(&lb);
	return diff;
}

lam_layer *lt_import(const char *src, lam_layer *parent)
{
	lam_layer *l = NULL;
	LT_OK(lam_layer_import_dir(&l, lt_store, src, parent, NULL));
	ck_assert_ptr_nonnull(l);
	return l;
}

bool lt_is_root(void)
{
	return geteuid() == 0;
}

int lt_main(Suite *s)
{
	SRunner *sr = srunner_create(s);
	srunner_set_fork_status(sr, CK_FORK);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
