/* SPDX-License-Identifier: MIT */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "util/internal.h"

void lam__close(int *fd)
{
	if (*fd >= 0) {
		close(*fd);
		*fd = -1;
	}
}

int lam__write_all(int fd, const void *data, size_t len)
{
	const char *p = data;
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int lam__read_all(int fd, void *data, size_t len, size_t *got)
{
	char *p = data;
	size_t total = 0;
	while (total < len) {
		ssize_t n = read(fd, p + total, len - total);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			break;
		total += (size_t)n;
	}
	*got = total;
	return 0;
}

int lam__read_file_at(int dirfd, const char *name, char **out, size_t *len,
		      size_t max)
{
	*out = NULL;
	int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return lam__error_errno(errno, "opening %s", name);
	struct stat st;
	if (fstat(fd, &st) < 0) {
		int e = errno;
		close(fd);
		return lam__error_errno(e, "reading %s", name);
	}
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size > max) {
		close(fd);
		return lam__error(LAM_ECORRUPT,
				  "%s: not a regular file or too large", name);
	}
	char *buf = lam__malloc((size_t)st.st_size + 1);
	if (buf == NULL) {
		close(fd);
		return lam__error(LAM_ENOMEM, "out of memory reading %s", name);
	}
	size_t got = 0;
	int r = lam__read_all(fd, buf, (size_t)st.st_size, &got);
	close(fd);
	if (r < 0) {
		lam__free(buf);
		return lam__error_errno(-r, "reading %s", name);
	}
	buf[got] = '\0';
	*out = buf;
	*len = got;
	return 0;
}

int lam__fsync_dir_at(int dirfd, const char *name)
{
	int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return lam__error_errno(errno, "opening folder %s", name);
	int r = fsync(fd);
	int e = errno;
	close(fd);
	if (r < 0)
		return lam__error_errno(e, "syncing folder %s", name);
	return 0;
}

int lam__write_file_atomic(int dirfd, const char *name, const void *data,
			   size_t len)
{
	char tmp[300];
	char uuid[37];
	lam__uuid_new(uuid);
	if ((size_t)snprintf(tmp, sizeof(tmp), ".tmp-%s", uuid) >= sizeof(tmp))
		return lam__error(LAM_ENAMETOOLONG, "name too long: %s", name);
	int fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
			0644);
	if (fd < 0)
		return lam__error_errno(errno, "creating %s", name);
	int r = lam__write_all(fd, data, len);
	lam__crash_point();
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	close(fd);
	if (r < 0) {
		unlinkat(dirfd, tmp, 0);
		return lam__error_errno(-r, "writing %s", name);
	}
	lam__crash_point();
	if (renameat(dirfd, tmp, dirfd, name) < 0) {
		int e = errno;
		unlinkat(dirfd, tmp, 0);
		return lam__error_errno(e, "publishing %s", name);
	}
	lam__crash_point();
	return lam__fsync_dir_at(dirfd, ".");
}

static int rmtree_fd(int fd)
{
	DIR *d = fdopendir(fd);
	if (d == NULL) {
		int e = errno;
		close(fd);
		return -e;
	}
	int rc = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		int r = lam__rmtree_at(dirfd(d), de->d_name);
		if (r < 0 && rc == 0)
			rc = r;
	}
	closedir(d);
	return rc;
}

int lam__rmtree_at(int dirfd, const char *name)
{
	if (unlinkat(dirfd, name, 0) == 0 || errno == ENOENT)
		return 0;
	if (errno != EISDIR && errno != EPERM)
		return lam__error_errno(errno, "removing %s", name);
	int fd = openat(dirfd, name,
			O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return 0;
		return lam__error_errno(errno, "removing %s", name);
	}
	/* A folder we made read-only still has to go. */
	struct stat st;
	if (fstat(fd, &st) == 0 && (st.st_mode & 0700) != 0700)
		fchmod(fd, st.st_mode | 0700);
	int r = rmtree_fd(fd);
	if (r < 0)
		return r;
	if (unlinkat(dirfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
		return lam__error_errno(errno, "removing %s", name);
	return 0;
}

void lam__rmtree_quiet(int dirfd, const char *name)
{
	lam__error_saved saved;
	lam__error_save(&saved);
	lam__rmtree_at(dirfd, name);
	lam__error_restore(&saved);
}

int lam__mkdir_p_at(int dirfd, const char *path, mode_t mode)
{
	char buf[4096];
	if (strlen(path) >= sizeof(buf))
		return lam__error(LAM_ENAMETOOLONG, "path too long: %s", path);
	strcpy(buf, path);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdirat(dirfd, buf, mode) < 0 && errno != EEXIST)
			return lam__error_errno(errno, "creating %s", buf);
		*p = '/';
	}
	if (mkdirat(dirfd, buf, mode) < 0 && errno != EEXIST)
		return lam__error_errno(errno, "creating %s", buf);
	return 0;
}

int lam__open_dir_beneath(int dirfd, const char *path, size_t len, bool make)
{
	char buf[PATH_MAX];
	if (len >= sizeof(buf)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(buf, path, len);
	buf[len] = '\0';
	if (len == 0)
		return fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
	struct open_how how;
	memset(&how, 0, sizeof(how));
	how.flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC;
	how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
		      RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV;
	int fd = (int)syscall(SYS_openat2, dirfd, buf, &how, sizeof(how));
	if (fd >= 0 ||
	    !((errno == ENOENT && make) || errno == ENOSYS || errno == E2BIG))
		return fd;
	/* One component at a time, following nothing (and before Linux
	 * 5.6, which has no openat2). */
	fd = fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
	for (char *comp = buf, *slash; fd >= 0 && comp != NULL;
	     comp = slash ? slash + 1 : NULL) {
		slash = strchr(comp, '/');
		if (slash != NULL)
			*slash = '\0';
		int flags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
		int next = openat(fd, comp, flags);
		/* Another thread may make it at the same moment. */
		if (next < 0 && errno == ENOENT && make &&
		    (mkdirat(fd, comp, 0700) == 0 || errno == EEXIST))
			next = openat(fd, comp, flags);
		int e = errno;
		close(fd);
		errno = e;
		fd = next;
	}
	return fd;
}

int lam__fd_path(char *out, size_t size, int dirfd, const char *name)
{
	int n = snprintf(out, size, "/proc/self/fd/%d/%s", dirfd, name);
	if (n < 0 || (size_t)n >= size)
		return lam__error(LAM_ENAMETOOLONG, "path too long: %s", name);
	return 0;
}

#if defined(__x86_64__) || defined(__aarch64__)
#define LAM_SYS_GETXATTRAT 464
#endif

struct lam__xattr_args {
	uint64_t value;
	uint32_t size;
	uint32_t flags;
};

ssize_t lam__getxattr_at(int dirfd, const char *name, const char *attr,
			 void *buf, size_t size)
{
#ifdef LAM_SYS_GETXATTRAT
	static int missing;
	if (!__atomic_load_n(&missing, __ATOMIC_RELAXED)) {
		struct lam__xattr_args a = {(uint64_t)(uintptr_t)buf,
					    (uint32_t)size, 0};
		long r = syscall(LAM_SYS_GETXATTRAT, dirfd, name,
				 AT_SYMLINK_NOFOLLOW, attr, &a, sizeof(a));
		if (r >= 0 || errno != ENOSYS)
			return (ssize_t)r;
		__atomic_store_n(&missing, 1, __ATOMIC_RELAXED);
	}
#endif
	char path[PATH_MAX + 64];
	if (lam__fd_path(path, sizeof(path), dirfd, name) < 0) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return lgetxattr(path, attr, buf, size);
}

DIR *lam__opendir_dup(int fd)
{
	int d = dup(fd);
	if (d < 0)
		return NULL;
	DIR *dir = fdopendir(d);
	if (dir == NULL) {
		int e = errno;
		close(d);
		errno = e;
		return NULL;
	}
	rewinddir(dir);
	return dir;
}
