/* SPDX-License-Identifier: MIT */
/* Shared helpers for lamina's Check suites. */
#ifndef LAMINA_TEST_SUPPORT_H
#define LAMINA_TEST_SUPPORT_H

#include <check.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <lamina.h>

/* The checked fixture: a fresh temporary folder (lt_dir) holding a fresh
 * store (lt_store, at lt_store_path) for every test. */
extern char lt_dir[4096];
extern char lt_store_path[4200];
extern lam_store *lt_store;
void lt_setup(void);
void lt_teardown(void);

/* Assert a lamina call succeeded, printing the error record if not. */
#define LT_OK(expr)                                                           \
	do {                                                                  \
		int lt_rc_ = (expr);                                          \
		ck_assert_msg(lt_rc_ == 0, "%s failed: %d %s", #expr, lt_rc_, \
			      lam_error_last()->message);                     \
	} while (0)

/* Assert a lamina call failed with a code, and its message contains a
 * piece of text (NULL: any message, but not empty). */
#define LT_FAILS(expr, want, text) \
	lt_check_failure((expr), (want), (text), #expr, __FILE__, __LINE__)
void lt_check_failure(int rc, int want, const char *text, const char *expr,
		      const char *file, int line);

/* Paths below lt_dir; the result is a static buffer (one of 8 rotating). */
const char *lt_path(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Building host trees; each creates missing parent folders and aborts the
 * test on failure. */
void lt_write(const char *path, const char *content);
void lt_write_bytes(const char *path, const void *data, size_t len);
void lt_mkdir(const char *path);
void lt_symlink(const char *target, const char *path);
void lt_link(const char *existing, const char *path);
void lt_whiteout(const char *path);
void lt_opaque(const char *dir);
char *lt_read(const char *path, size_t *len); /* malloc'd, or NULL */
bool lt_exists(const char *path);
void lt_rmtree(const char *path);
int lt_run(const char *cmd); /* system(), exit status */

/* Compare two host trees entry by entry: names, types, modes, owners,
 * sizes, contents, symlink targets, hard-link groups, xattrs (and mtimes
 * of non-directories when with_times). Returns NULL when equal, else a
 * malloc'd description of the first difference. */
char *lt_tree_diff(const char *a, const char *b, bool with_times);

/* Import a folder; returns the layer (caller frees). */
lam_layer *lt_import(const char *src, lam_layer *parent);

/* Run the suite: fork mode, and the exit code meson expects. */
int lt_main(Suite *s);

/* True when running as root with the capability to mount. */
bool lt_is_root(void);

#endif
