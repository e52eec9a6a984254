/* SPDX-License-Identifier: MIT */
/*
 * quickstart: the tour of lamina's layer store, using only the public API.
 *
 *   quickstart STORE_DIR
 *
 * Builds a small root filesystem (busybox when /bin/busybox exists), imports
 * it as a base layer, imports two images on top of the shared base (one
 * deleting a file with an overlayfs whiteout), tags them, checks them out,
 * then opens a copy-on-write view over one image, changes files and a
 * registry-style value in it, commits the view as a new layer and prints
 * what changed, the graph and the store's statistics.
 */
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <lamina.h>

static int fail(const char *what)
{
	fprintf(stderr, "quickstart: %s: %s\n", what,
		lam_error_last()->message);
	return 1;
}

static void write_file(const char *dir, const char *name, const char *text)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	if (f != NULL) {
		fputs(text, f);
		fclose(f);
	}
}

static void make_dirs(const char *root, const char *const *dirs)
{
	char path[4096];
	for (; *dirs; dirs++) {
		snprintf(path, sizeof(path), "%s/%s", root, *dirs);
		mkdir(path, 0755);
	}
}

/* A tiny root filesystem: busybox with a few applet links if the host has
 * it, plus /etc files. */
static void make_rootfs(const char root[1024])
{
	static const char *const dirs[] = {"",	  "bin",       "etc", "tmp",
					   "usr", "usr/share", NULL};
	make_dirs(root, dirs);
	write_file(root, "etc/hostname", "lamina-demo\n");
	write_file(root, "etc/os-release", "NAME=\"lamina demo\"\n");
	write_file(root, "etc/motd", "Welcome to a lamina layer.\n");
	char path[4096];
	snprintf(path, sizeof(path), "%s/bin/busybox", root);
	int in = open("/bin/busybox", O_RDONLY | O_CLOEXEC);
	int out = in >= 0 ? open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0755) :
			    -1;
	char buf[65536];
	ssize_t n;
	while (out >= 0 && (n = read(in, buf, sizeof(buf))) > 0)
		if (write(out, buf, (size_t)n) != n)
			break;
	if (in >= 0)
		close(in);
	if (out >= 0) {
		close(out);
		static const char *const applets[] = {"sh", "ls", "cat", "echo",
						      NULL};
		for (const char *const *a = applets; *a; a++) {
			snprintf(path, sizeof(path), "%s/bin/%s", root, *a);
			if (symlink("busybox", path) < 0 && errno != EEXIST)
				perror(path);
		}
	}
}

static int print_change(lam_change_kind kind, const char *path, void *ud)
{
	(void)ud;
	printf("  %c %s\n", (char)kind, path);
	return 0;
}

static int print_kv_change(lam_change_kind kind, const char *key,
			   const char *value, void *ud)
{
	(void)ud;
	printf("  %c reg:%s%s%s\n", (char)kind, key, value ? ":" : "",
	       value ? value : "");
	return 0;
}

/* A view over an image: change files and a key, commit a child layer. */
static int change_in_a_view(lam_store *store, lam_layer *image)
{
	lam_view *view;
	if (lam_view_create(&view, store, image, NULL) < 0)
		return fail("creating a view");
	lam_view_file *f;
	size_t n;
	static const char conf[] = "listen = 9090\n";
	if (lam_view_file_open(&f, view, "opt/app.conf", O_WRONLY | O_TRUNC,
			       0) < 0 ||
	    lam_view_file_write(f, conf, sizeof(conf) - 1, &n) < 0 ||
	    lam_view_file_close(f) < 0)
		return fail("writing in the view");
	if (lam_view_unlink(view, "etc/motd") < 0 ||
	    lam_view_mkdir(view, "var", 0755) < 0)
		return fail("changing the view");
	uint32_t port = 9090;
	if (lam_kv_set_value(view, "HKLM\\Software\\Demo", "Port", LAM_KV_DWORD,
			     &port, sizeof(port)) < 0)
		return fail("setting a value");
	printf("\nview %s over demo/app changes:\n", lam_view_id(view));
	if (lam_view_diff(view, print_change, NULL) < 0 ||
	    lam_kv_view_diff(view, print_kv_change, NULL) < 0)
		return fail("diff");
	lam_layer *child;
	if (lam_view_commit(view, &child, NULL) < 0)
		return fail("commit");
	printf("committed as layer %.12s (parent %.12s)\n", lam_layer_id(child),
	       lam_layer_parent_id(child));
	if (lam_store_ref_set(store, "demo/app-v2", lam_layer_id(child), NULL) <
	    0)
		return fail("tagging");
	lam_layer_free(child);
	char id[64];
	snprintf(id, sizeof(id), "%s", lam_view_id(view));
	lam_view_free(view);
	if (lam_view_remove(store, id) < 0)
		return fail("removing the view");
	return 0;
}

static int print_layer(lam_layer *l, void *userdata)
{
	(void)userdata;
	printf("  %.12s  depth %u  %8llu bytes  %s\n", lam_layer_id(l),
	       lam_layer_depth(l), (unsigned long long)lam_layer_size(l),
	       lam_layer_parent_id(l) ? "" : "(base)");
	return 0;
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: quickstart STORE_DIR\n");
		return 2;
	}
	char work[] = "/tmp/lamina-quickstart-XXXXXX";
	if (mkdtemp(work) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	char base_dir[1024], app_dir[1024], web_dir[1024], co_dir[1024];
	snprintf(base_dir, sizeof(base_dir), "%s/base", work);
	snprintf(app_dir, sizeof(app_dir), "%s/app", work);
	snprintf(web_dir, sizeof(web_dir), "%s/web", work);
	snprintf(co_dir, sizeof(co_dir), "%s/checkout", work);
	make_rootfs(base_dir);
	static const char *const app_dirs[] = {"", "etc", "opt", NULL};
	make_dirs(app_dir, app_dirs);
	write_file(app_dir, "opt/app.conf", "listen = 8080\n");
	write_file(app_dir, "etc/hostname", "app\n");
	static const char *const web_dirs[] = {"", "etc", "srv", NULL};
	make_dirs(web_dir, web_dirs);
	write_file(web_dir, "srv/index.html", "<h1>hello</h1>\n");
	/* An overlayfs whiteout (a 0/0 character device) deletes the base's
	 * motd in this image; creating one needs CAP_MKNOD. */
	char wh[4096];
	snprintf(wh, sizeof(wh), "%s/etc/motd", web_dir);
	bool whiteout = mknod(wh, S_IFCHR | 0000, makedev(0, 0)) == 0;

	lam_store *store;
	lam_store_options opts = LAM_STORE_OPTIONS_INIT;
	opts.flags = LAM_STORE_CREATE;
	if (lam_store_open(&store, argv[1], &opts) < 0)
		return fail("opening the store");
	printf("lamina %s: store at %s\n", lam_version(), argv[1]);

	lam_layer *base, *app, *web;
	if (lam_layer_import_dir(&base, store, base_dir, NULL, NULL) < 0)
		return fail("importing the base");
	if (lam_layer_import_dir(&app, store, app_dir, base, NULL) < 0)
		return fail("importing app");
	if (lam_layer_import_dir(&web, store, web_dir, base, NULL) < 0)
		return fail("importing web");
	if (lam_store_ref_set(store, "demo/base", lam_layer_id(base), NULL) <
		    0 ||
	    lam_store_ref_set(store, "demo/app", lam_layer_id(app), NULL) < 0 ||
	    lam_store_ref_set(store, "demo/web", lam_layer_id(web), NULL) < 0)
		return fail("tagging");
	if (change_in_a_view(store, app) != 0)
		return 1;
	printf("\nlayers:\n");
	if (lam_layer_foreach(store, print_layer, NULL) < 0)
		return fail("listing");

	lam_layer *mb;
	if (lam_layer_merge_base(&mb, app, web) < 0)
		return fail("merge base");
	printf("\napp and web share base %.12s\n", lam_layer_id(mb));
	lam_layer_free(mb);

	if (lam_layer_checkout(web, co_dir, NULL) < 0)
		return fail("checkout");
	char motd[4096];
	snprintf(motd, sizeof(motd), "%s/etc/motd", co_dir);
	printf("checked out demo/web (into %s, temporary): etc/motd %s\n",
	       co_dir,
	       access(motd, F_OK) == 0 ? "present" : "deleted by whiteout");
	if (!whiteout)
		printf("(not root: the whiteout part of the demo was skipped)\n");

	lam_store_stats st;
	if (lam_store_stats_get(store, &st) < 0)
		return fail("stats");
	printf("\nstore: %llu layers, %llu refs, %llu files, %llu objects\n",
	       (unsigned long long)st.layers, (unsigned long long)st.refs,
	       (unsigned long long)st.files, (unsigned long long)st.objects);
	printf("file bytes: %llu logical, %llu stored\n",
	       (unsigned long long)st.logical_bytes,
	       (unsigned long long)st.stored_bytes);
	size_t problems;
	if (lam_store_check(store, 0, NULL, NULL, &problems) < 0)
		return fail("check");
	printf("check: %zu problems\n", problems);

	lam_layer_free(base);
	lam_layer_free(app);
	lam_layer_free(web);
	lam_store_free(store);
	char cmd[4200];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", work);
	if (system(cmd) != 0)
		fprintf(stderr, "quickstart: could not remove %s\n", work);
	return problems == 0 ? 0 : 1;
}
