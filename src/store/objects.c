/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "store/internal.h"

/* Contents up to this size are hashed and compared in memory; larger ones
 * stream through a temporary file. */
#define SMALL_MAX    (4u << 20)
#define CHUNK	     LAM__OBJECT_SCRATCH
#define MAX_VARIANTS 64

void lam__object_name(char out[48], const lam__objid *id)
{
	/* One flat folder, names ".<22 base64url>": a layer file's redirect
	 * "/.<name>" is then 24 bytes, which an ext4 inode holds in line
	 * with the metacopy mark (longer cost every layer file a 4 KiB
	 * xattr block), and the kernel, which looks a redirect up in every
	 * lower layer before the data-only one, can never meet a real entry
	 * of that name in an image (a short name like "/x/…" could, and
	 * a file "x" at an image's root then hid the data). */
	char b[23];
	lam__digest_b64(b, &id->digest);
	if (id->variant == 0)
		snprintf(out, 48, ".%s", b);
	else
		snprintf(out, 48, ".%s.%u", b, id->variant);
}

int lam__object_open(lam_store *s, const lam__objid *id)
{
	char name[48];
	lam__object_name(name, id);
	int fd = openat(s->objectsfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return lam__error_errno(errno, "opening object %s", name);
	return fd;
}

/* Compare a file's whole content with a buffer, or with another file. */
static int same_as_buf(int fd, const void *data, size_t len, char *scratch)
{
	size_t off = 0;
	while (off < len) {
		size_t want = len - off < CHUNK ? len - off : CHUNK;
		ssize_t n = pread(fd, scratch, want, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : 0;
		if (memcmp(scratch, (const char *)data + off, (size_t)n) != 0)
			return 0;
		off += (size_t)n;
	}
	char c;
	return pread(fd, &c, 1, (off_t)len) == 0 ? 1 : 0;
}

static int same_as_fd(int a, int b, uint64_t len, char *scratch)
{
	uint64_t off = 0;
	char *sb = scratch + CHUNK;
	while (off < len) {
		size_t want = len - off < CHUNK ? (size_t)(len - off) : CHUNK;
		size_t ga, gb;
		ssize_t na = pread(a, scratch, want, (off_t)off);
		ssize_t nb = pread(b, sb, want, (off_t)off);
		if (na < 0 || nb < 0)
			return -errno;
		ga = (size_t)na;
		gb = (size_t)nb;
		if (ga != gb || ga == 0 || memcmp(scratch, sb, ga) != 0)
			return 0;
		off += ga;
	}
	char c;
	return pread(a, &c, 1, (off_t)len) == 0 ? 1 : 0;
}

static int tmpfile_in_objects(lam_store *s)
{
	int fd =
		openat(s->objectsfd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0444);
	if (fd < 0)
		return lam__error_errno(errno, "creating object in %s",
					s->path);
	return fd;
}

static int link_tmpfile(lam_store *s, int fd, const char *name)
{
	/* AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH; /proc works for anyone
	 * but costs a path walk. */
	if (linkat(fd, "", s->objectsfd, name, AT_EMPTY_PATH) == 0)
		return 0;
	if (errno != ENOENT && errno != EPERM && errno != EACCES)
		return -errno;
	char proc[64];
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	if (linkat(AT_FDCWD, proc, s->objectsfd, name, AT_SYMLINK_FOLLOW) == 0)
		return 0;
	return -errno;
}

/* Find or create the object for content already hashed into id->digest.
 * The content is either in memory (data) or in an unlinked file (tmpfd).
 * link_first (content in memory only): skip the first lookup and let the
 * link say whether the object exists (EEXIST: then look and compare, as
 * for a writer that published it meanwhile). */
static int publish(lam_store *s, lam__objid *id, const void *data, uint64_t len,
		   int tmpfd, char *scratch, bool link_first, bool *stored)
{
	*stored = false;
	bool look = !link_first || data == NULL;
	for (id->variant = 0; id->variant < MAX_VARIANTS; id->variant++) {
		char name[48];
		lam__object_name(name, id);
		int ofd = -1;
		errno = ENOENT;
		if (look)
			ofd = openat(s->objectsfd, name,
				     O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		look = true;
		if (ofd >= 0) {
			/* A hash hit is trusted only once the bytes agree:
			 * XXH3 is not collision resistant. */
			struct stat st;
			int same = 0;
			if (fstat(ofd, &st) == 0 && S_ISREG(st.st_mode) &&
			    (uint64_t)st.st_size == len)
				same = data ? same_as_buf(ofd, data,
							  (size_t)len,
							  scratch) :
					      same_as_fd(ofd, tmpfd, len,
							 scratch);
			close(ofd);
			if (same < 0)
				return lam__error_errno(
					-same, "reading object %s", name);
			if (same)
				return 0;
			lam__log(LAM_LOG_WARNING,
				 "object %s: same hash, different bytes", name);
			continue;
		}
		if (errno != ENOENT)
			return lam__error_errno(errno, "opening object %s",
						name);
		int fd = tmpfd;
		if (data != NULL) {
			fd = tmpfile_in_objects(s);
			if (fd < 0)
				return fd;
			int r = lam__write_all(fd, data, (size_t)len);
			if (r < 0) {
				close(fd);
				return lam__error_errno(-r, "writing object %s",
							name);
			}
		}
		int r = link_tmpfile(s, fd, name);
		if (data != NULL)
			close(fd);
		if (r == -EEXIST) {
			/* Another writer published it meanwhile: compare
			 * against theirs. */
			id->variant--;
			continue;
		}
		if (r < 0)
			return lam__error_errno(-r, "publishing object %s",
						name);
		*stored = true;
		lam__crash_point();
		return 0;
	}
	return lam__error(LAM_ECORRUPT, "too many objects share one hash");
}

int lam__object_put_buf(lam_store *s, const void *data, size_t len,
			char *scratch, bool link_first, lam__objid *out,
			bool *stored_out)
{
	memset(out, 0, sizeof(*out));
	lam__hash128(&out->digest, data, len);
	return publish(s, out, data, len, -1, scratch, link_first, stored_out);
}

static int read_fd(void *ctx, void *buf, size_t len, size_t *got)
{
	int r = lam__read_all(*(int *)ctx, buf, len, got);
	if (r < 0)
		return lam__error_errno(-r, "reading file");
	return 0;
}

int lam__object_put_fd(lam_store *s, int fd, uint64_t size, lam__buf *work,
		       bool link_first, lam__objid *out, bool *stored_out)
{
	int rc = lam__object_put_stream(s, size, read_fd, &fd, work, link_first,
					out, stored_out);
	if (rc == LAM_ECORRUPT)
		return lam__error(LAM_EIO, "file changed size while read");
	if (rc < 0)
		return rc;
	/* A file that grew while read: what was stored is a prefix. */
	char extra;
	size_t more = 0;
	if (lam__read_all(fd, &extra, 1, &more) == 0 && more != 0)
		return lam__error(LAM_EIO, "file changed size while read");
	return 0;
}

int lam__object_put_stream(lam_store *s, uint64_t size,
			   lam__object_read_fn read, void *ctx, lam__buf *work,
			   bool link_first, lam__objid *out, bool *stored_out)
{
	memset(out, 0, sizeof(*out));
	*stored_out = false;
	size_t datalen = size <= SMALL_MAX ? (size_t)size : 0;
	size_t need = datalen + 2 * CHUNK;
	if (work->cap < need) {
		work->len = 0;
		int r = lam__buf_grow(work, need);
		if (r < 0)
			return r;
	}
	char *data = work->data;
	char *scratch = work->data + datalen;
	if (size <= SMALL_MAX) {
		size_t got = 0;
		int r = read(ctx, data, datalen, &got);
		if (r != 0)
			return r;
		if (got != datalen)
			return lam__error(LAM_ECORRUPT, "content ends early");
		lam__hash128(&out->digest, data, got);
		return publish(s, out, data, got, -1, scratch, link_first,
			       stored_out);
	}
	int tfd = tmpfile_in_objects(s);
	if (tfd < 0)
		return tfd;
	lam__hasher hs, *h = &hs;
	lam__hasher_init(h);
	uint64_t total = 0;
	int rc = 0;
	while (total < size) {
		size_t want = size - total < CHUNK ? (size_t)(size - total) :
						     CHUNK;
		size_t got = 0;
		rc = read(ctx, scratch, want, &got);
		if (rc != 0)
			break;
		if (got == 0) {
			rc = lam__error(LAM_ECORRUPT, "content ends early");
			break;
		}
		lam__hasher_update(h, scratch, got);
		int r = lam__write_all(tfd, scratch, got);
		if (r < 0) {
			rc = lam__error_errno(-r, "writing object");
			break;
		}
		total += got;
	}
	if (rc == 0) {
		lam__hasher_digest(h, &out->digest);
		rc = publish(s, out, NULL, total, tfd, scratch, false,
			     stored_out);
	}
	close(tfd);
	return rc;
}
