/* SPDX-License-Identifier: MIT */
/* Open files of a view. A file opened for reading only, and not in the
 * upper, reads its content object directly; opening for writing copies it
 * up metadata-only, and data chunks come up as they are written. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "view/internal.h"

struct lam_view_file {
	lam_view *view;
	int fd; /* upper file, content object, or -1 (empty) */
	bool upper;
	bool readable;
	bool writable;
	bool append;
	bool dir;
	lam__partial *partial;
	uint64_t pos;
	lam_stat lower_stat; /* for a file read from the lower */
};

#define ALLOWED_FLAGS                                                     \
	(O_ACCMODE | O_CREAT | O_EXCL | O_TRUNC | O_APPEND | O_NOFOLLOW | \
	 O_DIRECTORY | O_CLOEXEC | O_NOCTTY | O_LARGEFILE | O_NONBLOCK)

static int make_file(lam_view *v, lam__vpath *vp, uint32_t mode, int *fd_out)
{
	int flags = O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC;
	int q = lam__quota_inodes(v, 1);
	if (q < 0)
		return q;
	lam__quota_add_inodes(v, 1);
	if (!lam__vlast(vp)->whiteout) {
		*fd_out = openat(v->upperfd, vp->p, flags, mode & 07777);
		if (*fd_out < 0)
			return lam__view_posix(errno, "creating %s", vp->p);
		return 0;
	}
	/* Over a whiteout: make it in work/, then swap it in. */
	int workfd = lam__view_workfd(v);
	if (workfd < 0)
		return workfd;
	char tmp[64];
	lam__view_tmpname(tmp);
	int rc = 0;
	*fd_out = openat(workfd, tmp, flags, mode & 07777);
	if (*fd_out < 0)
		rc = lam__view_posix(errno, "creating %s", vp->p);
	else
		lam__view_inherit_setgid(v, vp, workfd, tmp, false);
	if (rc == 0 && renameat(workfd, tmp, v->upperfd, vp->p) < 0) {
		rc = lam__view_posix(errno, "creating %s", vp->p);
		lam__close(fd_out);
		unlinkat(workfd, tmp, 0);
	}
	close(workfd);
	return rc;
}

static int open_existing(lam_view_file *f, lam__vpath *vp, int flags)
{
	lam_view *v = f->view;
	lam__vlevel *l = lam__vlast(vp);
	if (S_ISDIR(l->mode)) {
		if (f->writable)
			return lam__view_posix(EISDIR, "%s: is a folder",
					       vp->p);
		f->dir = true;
		return 0;
	}
	if (flags & O_DIRECTORY)
		return lam__view_posix(ENOTDIR, "%s: not a folder", vp->p);
	if (S_ISLNK(l->mode))
		return lam__view_posix(ELOOP, "%s: a symlink", vp->p);
	if (!S_ISREG(l->mode))
		return lam__view_posix(ENXIO, "%s: not a regular file", vp->p);
	if (f->writable && !l->upper) {
		int rc = lam__view_copy_up(v, vp, true);
		if (rc < 0)
			return rc;
	}
	if (l->upper) {
		f->upper = true;
		f->fd = openat(v->upperfd, vp->p,
			       (f->writable ? O_RDWR : O_RDONLY) | O_NOFOLLOW |
				       O_CLOEXEC);
		if (f->fd < 0)
			return lam__view_posix(errno, "opening %s", vp->p);
		return lam__partial_load(v, f->fd, &f->partial);
	}
	lam__view_fill_lower(v, (size_t)l->lower, &f->lower_stat);
	lam__entry e;
	lam__chain_entry(v->chain, (size_t)l->lower, &e);
	if (e.flags & LAM__E_OBJECT) {
		f->fd = lam__object_open(v->store, &e.obj);
		if (f->fd < 0)
			return lam__error_prefix(LAM_ECORRUPT, "opening %s",
						 vp->p);
	}
	return 0;
}

int lam_view_file_open(lam_view_file **out, lam_view *view, const char *path,
		       int flags, uint32_t mode)
{
	lam__error_reset();
	if (out == NULL)
		return lam__error(LAM_EINVAL, "lam_view_file_open: NULL out");
	*out = NULL;
	if (view == NULL || path == NULL)
		return lam__error(LAM_EINVAL,
				  "lam_view_file_open: NULL argument");
	if ((flags & ~ALLOWED_FLAGS) || (flags & O_ACCMODE) == O_ACCMODE)
		return lam__view_posix(EINVAL, "%s: unsupported open flags",
				       path);
	size_t plen = strlen(path);
	if ((flags & O_CREAT) && plen > 0 && path[plen - 1] == '/')
		return lam__view_posix(EISDIR,
				       "%s: cannot create a file "
				       "named as a folder",
				       path);
	lam_view_file *f = lam__calloc(1, sizeof(*f));
	lam__vpath *vp = lam__malloc(sizeof(*vp));
	int rc = f && vp ? 0 : lam__error(LAM_ENOMEM, "out of memory");
	if (rc < 0)
		goto fail;
	f->view = view;
	f->fd = -1;
	int acc = flags & O_ACCMODE;
	f->readable = acc != O_WRONLY;
	f->writable = acc != O_RDONLY;
	f->append = (flags & O_APPEND) != 0;
	bool changes = f->writable || (flags & (O_CREAT | O_TRUNC));
	if (changes && (rc = lam__view_writable(view)) < 0)
		goto fail;
	/* O_EXCL never follows a final symlink; O_NOFOLLOW refuses it. */
	bool follow = !(flags & O_NOFOLLOW) &&
		      !((flags & O_CREAT) && (flags & O_EXCL));
	rc = lam__view_resolve(view, path, follow ? LAM__FOLLOW : 0, vp);
	if (rc < 0)
		goto fail;
	lam__vlevel *l = lam__vlast(vp);
	if (l->mode == 0) {
		if (!(flags & O_CREAT)) {
			rc = lam__view_posix(ENOENT, "%s: no such file", path);
			goto fail;
		}
		if (vp->depth < 2) {
			rc = lam__view_posix(EISDIR, "%s: the root", path);
			goto fail;
		}
		rc = lam__view_copy_up(view, vp, false);
		if (rc == 0)
			rc = make_file(view, vp, mode, &f->fd);
		if (rc < 0)
			goto fail;
		f->upper = true;
	} else {
		if ((flags & O_CREAT) && (flags & O_EXCL)) {
			rc = lam__view_posix(EEXIST, "%s: exists", path);
			goto fail;
		}
		rc = open_existing(f, vp, flags);
		if (rc < 0)
			goto fail;
		if ((flags & O_TRUNC) && f->upper &&
		    (rc = lam_view_file_truncate(f, 0)) < 0)
			goto fail;
	}
	lam__free(vp);
	*out = f;
	return 0;
fail:
	lam__free(vp);
	if (f != NULL) {
		lam__partial_free(f->partial);
		lam__close(&f->fd);
		lam__free(f);
	}
	return rc;
}

int lam_view_file_pread(lam_view_file *f, void *buf, size_t size,
			uint64_t offset, size_t *got)
{
	lam__error_reset();
	if (got)
		*got = 0;
	if (f == NULL || got == NULL || (buf == NULL && size))
		return lam__error(LAM_EINVAL, "lam_view_file_pread: NULL");
	if (!f->readable)
		return lam__view_posix(EBADF, "file not open for reading");
	if (f->dir)
		return lam__view_posix(EISDIR, "reading a folder");
	if (f->partial)
		return lam__partial_read(f->view, f->partial, f->fd, buf, size,
					 offset, got);
	if (f->fd < 0)
		return 0; /* an empty lower file */
	size_t done = 0;
	while (done < size) {
		ssize_t n = pread(f->fd, (char *)buf + done, size - done,
				  (off_t)(offset + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return lam__view_posix(errno, "reading");
		if (n == 0)
			break;
		done += (size_t)n;
	}
	*got = done;
	return 0;
}

int lam_view_file_read(lam_view_file *f, void *buf, size_t size, size_t *got)
{
	int rc = lam_view_file_pread(f, buf, size, f ? f->pos : 0, got);
	if (rc == 0)
		f->pos += *got;
	return rc;
}

int lam_view_file_pwrite(lam_view_file *f, const void *buf, size_t size,
			 uint64_t offset, size_t *written)
{
	lam__error_reset();
	if (written)
		*written = 0;
	if (f == NULL || written == NULL || (buf == NULL && size))
		return lam__error(LAM_EINVAL, "lam_view_file_pwrite: NULL");
	if (!f->writable)
		return lam__view_posix(EBADF, "file not open for writing");
	if (offset > (uint64_t)INT64_MAX - size)
		return lam__view_posix(EFBIG, "write past the largest size");
	int rc = lam__quota_write(f->view, f->fd, offset, size,
				  f->partial != NULL);
	if (rc < 0)
		return rc;
	uint64_t before = lam__quota_alloc(f->fd);
	if (f->partial) {
		rc = lam__partial_prepare_write(f->view, f->partial, f->fd,
						offset, size);
		if (rc < 0)
			return rc;
	}
	size_t done = 0;
	while (done < size) {
		ssize_t n = pwrite(f->fd, (const char *)buf + done, size - done,
				   (off_t)(offset + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = lam__view_posix(errno, "writing");
			break;
		}
		done += (size_t)n;
	}
	lam__quota_blocks(f->view, before, lam__quota_alloc(f->fd));
	*written = done;
	return rc;
}

int lam_view_file_write(lam_view_file *f, const void *buf, size_t size,
			size_t *written)
{
	if (f != NULL && f->append && f->fd >= 0) {
		struct stat st;
		if (fstat(f->fd, &st) == 0)
			f->pos = (uint64_t)st.st_size;
	}
	int rc = lam_view_file_pwrite(f, buf, size, f ? f->pos : 0, written);
	if (rc == 0)
		f->pos += *written;
	return rc;
}

int lam_view_file_truncate(lam_view_file *f, uint64_t size)
{
	lam__error_reset();
	if (f == NULL)
		return lam__error(LAM_EINVAL, "lam_view_file_truncate: NULL");
	if (!f->writable && !f->upper)
		return lam__view_posix(EBADF, "file not open for writing");
	if (size > (uint64_t)INT64_MAX)
		return lam__view_posix(EFBIG, "size too large");
	/* Growth makes a hole: nothing is allocated, nothing to check. The
	 * size changes first: killed before the chunk map follows, the map
	 * is clamped to the size when loaded again. */
	uint64_t before = lam__quota_alloc(f->fd);
	if (ftruncate(f->fd, (off_t)size) < 0)
		return lam__view_posix(errno, "truncating");
	lam__quota_blocks(f->view, before, lam__quota_alloc(f->fd));
	if (f->partial)
		return lam__partial_truncate(f->view, f->partial, size);
	return 0;
}

int lam_view_file_fsync(lam_view_file *f)
{
	lam__error_reset();
	if (f == NULL)
		return lam__error(LAM_EINVAL, "lam_view_file_fsync: NULL");
	if (!f->upper)
		return 0;
	if (fsync(f->fd) < 0)
		return lam__view_posix(errno, "fsync");
	if (f->partial && fsync(f->partial->mapfd) < 0)
		return lam__view_posix(errno, "fsync");
	return 0;
}

int lam_view_file_stat(lam_view_file *f, lam_stat *out)
{
	lam__error_reset();
	if (f == NULL || out == NULL)
		return lam__error(LAM_EINVAL, "lam_view_file_stat: NULL");
	if (!f->upper) {
		*out = f->lower_stat;
		return 0;
	}
	struct stat st;
	if (fstat(f->fd, &st) < 0)
		return lam__view_posix(errno, "fstat");
	memset(out, 0, sizeof(*out));
	out->ino = (uint64_t)st.st_ino | (1ull << 63);
	out->mode = st.st_mode;
	out->nlink = (uint32_t)st.st_nlink;
	out->uid = st.st_uid;
	out->gid = st.st_gid;
	out->size = (uint64_t)st.st_size;
	out->mtime_sec = st.st_mtim.tv_sec;
	out->mtime_nsec = st.st_mtim.tv_nsec;
	out->atime_sec = st.st_atim.tv_sec;
	out->atime_nsec = st.st_atim.tv_nsec;
	out->ctime_sec = st.st_ctim.tv_sec;
	out->ctime_nsec = st.st_ctim.tv_nsec;
	return 0;
}

int lam_view_file_close(lam_view_file *f)
{
	lam__error_reset();
	if (f == NULL)
		return 0;
	int rc = 0;
	if (f->fd >= 0 && close(f->fd) < 0 && f->upper)
		rc = lam__view_posix(errno, "close");
	lam__partial_free(f->partial);
	lam__free(f);
	return rc;
}

int lam_view_truncate(lam_view *view, const char *path, uint64_t size)
{
	/* truncate(2) answers EISDIR for a folder and EINVAL for anything
	 * else that is not a regular file. */
	lam_stat st;
	int src = lam_view_stat(view, path, &st);
	if (src < 0)
		return src;
	if (S_ISDIR(st.mode))
		return lam__view_posix(EISDIR, "%s: is a folder", path);
	if (!S_ISREG(st.mode))
		return lam__view_posix(EINVAL, "%s: not a regular file", path);
	lam_view_file *f;
	int rc = lam_view_file_open(&f, view, path, O_WRONLY, 0);
	if (rc < 0)
		return rc;
	rc = lam_view_file_truncate(f, size);
	int rc2 = lam_view_file_close(f);
	return rc < 0 ? rc : rc2;
}
