/* SPDX-License-Identifier: MIT */
/*
 * Small shared pieces: allocation through the host's hook, the error record,
 * buffers, hashing and file helpers. Every other concept folder includes
 * this header.
 */
#ifndef LAM_UTIL_INTERNAL_H
#define LAM_UTIL_INTERNAL_H

#include <dirent.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <lamina.h>

#define LAM__UNUSED	  __attribute__((unused))
#define LAM__PRINTF(a, b) __attribute__((format(printf, a, b)))
#define LAM__ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Allocation through the host's hook. */
void *lam__malloc(size_t size);
void *lam__calloc(size_t n, size_t size);
void *lam__realloc(void *ptr, size_t size);
void lam__free(void *ptr);
char *lam__strdup(const char *s);
char *lam__strndup(const char *s, size_t n);
char *lam__sprintf(const char *fmt, ...) LAM__PRINTF(1, 2);

/* The error record. Each setter returns the code, so that callers write
 * `return lam__error(LAM_EINVAL, "…")`. */
void lam__error_reset(void);
int lam__error(int code, const char *fmt, ...) LAM__PRINTF(2, 3);
int lam__error_os(int code, int os_errno, const char *fmt, ...)
	LAM__PRINTF(3, 4);
/* Map errno to a lam_err code (ENOENT → LAM_ENOTFOUND…) and record it. */
int lam__error_errno(int os_errno, const char *fmt, ...) LAM__PRINTF(2, 3);
/* Put "context: " before the message already recorded, with a code. */
int lam__error_prefix(int code, const char *fmt, ...) LAM__PRINTF(2, 3);
int lam__errno_to_code(int os_errno);
/* Save and restore the record around clean-up code that may touch it. */
typedef struct lam__error_saved {
	int code;
	int os_errno;
	char message[1024];
} lam__error_saved;
void lam__error_save(lam__error_saved *out);
void lam__error_restore(const lam__error_saved *in);

void lam__log(lam_log_level level, const char *fmt, ...) LAM__PRINTF(2, 3);

/* Test hooks, reachable only by programs linked with the static library. */
/* Allocation failure injection: fail the n-th allocation from now (1-based),
 * or never with 0. Returns the count of allocations made since set. */
void lam__test_fail_alloc_at(uint64_t n);
uint64_t lam__test_alloc_count(void);
/* Crash points: each durable step of a commit calls lam__crash_point(); the
 * n-th one (1-based) kills the process with SIGKILL. */
void lam__test_crash_at(uint64_t n);
uint64_t lam__test_crash_points_passed(void);
void lam__crash_point(void);

/* Little-endian integers in on-disk formats (index, kv delta, kv log). */
static inline void lam__put_le16(unsigned char *p, uint16_t v)
{
	p[0] = (unsigned char)v;
	p[1] = (unsigned char)(v >> 8);
}

static inline void lam__put_le32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static inline void lam__put_le64(unsigned char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static inline uint16_t lam__get_le16(const unsigned char *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static inline uint32_t lam__get_le32(const unsigned char *p)
{
	uint32_t v = 0;
	for (int i = 3; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static inline uint64_t lam__get_le64(const unsigned char *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

/* A growable byte buffer. */
typedef struct lam__buf {
	char *data;
	size_t len;
	size_t cap;
} lam__buf;

int lam__buf_grow(lam__buf *b, size_t extra);
int lam__buf_add(lam__buf *b, const void *data, size_t len);
int lam__buf_puts(lam__buf *b, const char *s);
int lam__buf_printf(lam__buf *b, const char *fmt, ...) LAM__PRINTF(2, 3);
void lam__buf_free(lam__buf *b);

/* Hashing. */
typedef struct lam__digest {
	uint8_t b[16];
} lam__digest;

void lam__hash128(lam__digest *out, const void *data, size_t len);
uint64_t lam__hash64(const void *data, size_t len);
void lam__digest_hex(char out[33], const lam__digest *d);
int lam__digest_parse(lam__digest *out, const char *hex);
bool lam__is_hex(const char *s, size_t len);
/* A digest as 22 characters of base64url (no padding), and back. */
extern const char lam__b64[65];
void lam__digest_b64(char out[23], const lam__digest *d);
int lam__digest_from_b64(lam__digest *out, const char *s);

/* A streaming 128-bit hash state: storage for an XXH3 state, so that it can
 * live on the stack and hashing never allocates. */
typedef struct lam__hasher {
	_Alignas(64) unsigned char state[640];
} lam__hasher;
void lam__hasher_init(lam__hasher *h);
void lam__hasher_update(lam__hasher *h, const void *data, size_t len);
void lam__hasher_digest(lam__hasher *h, lam__digest *out);

/* Files. All descriptors are opened O_CLOEXEC. */
int lam__read_file_at(int dirfd, const char *name, char **out, size_t *len,
		      size_t max);
/* Write a file atomically: temp file, fsync, rename, fsync of the folder. */
int lam__write_file_atomic(int dirfd, const char *name, const void *data,
			   size_t len);
int lam__write_all(int fd, const void *data, size_t len);
int lam__read_all(int fd, void *data, size_t len, size_t *got);
/* Remove a tree below dirfd (name itself included), never following
 * symlinks. ENOENT is success. */
int lam__rmtree_at(int dirfd, const char *name);
/* The same, leaving the error record as it was: for clean-up paths. */
void lam__rmtree_quiet(int dirfd, const char *name);
int lam__fsync_dir_at(int dirfd, const char *name);
int lam__mkdir_p_at(int dirfd, const char *path, mode_t mode);
/* Open the folder path (len bytes; "" is dirfd itself) below dirfd,
 * following no symlink and never leaving dirfd (openat2 RESOLVE_BENEATH |
 * RESOLVE_NO_SYMLINKS, or one component at a time with O_NOFOLLOW); with
 * make, missing folders are made, mode 0700. -1 with errno on failure
 * (ENOTDIR, ELOOP or EXDEV: something else stands in the way). */
int lam__open_dir_beneath(int dirfd, const char *path, size_t len, bool make);
void lam__close(int *fd);
/* A DIR stream over a duplicate of fd, rewound (a duplicate shares the
 * original's position); NULL with errno on failure. Close with closedir. */
DIR *lam__opendir_dup(int fd);
/* "/proc/self/fd/N/name" for path-only calls (l*xattr) that have no *at()
 * form; never follows the last component when used with l* calls. */
int lam__fd_path(char *out, size_t size, int dirfd, const char *name);
/* getxattr of dirfd/name without following a final symlink: the
 * getxattrat() system call where the kernel has it (6.13), else the
 * /proc/self/fd path, which costs a magic-link walk. Returns the value's
 * length or -1 with errno. */
ssize_t lam__getxattr_at(int dirfd, const char *name, const char *attr,
			 void *buf, size_t size);

/* Compare two relative paths so that a directory's descendants sort right
 * after it: '/' sorts before every other byte. */
int lam__path_cmp(const char *a, size_t alen, const char *b, size_t blen);

/* A new random UUID in its 36-character form. */
void lam__uuid_new(char out[37]);

#endif
