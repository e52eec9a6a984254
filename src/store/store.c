/* SPDX-License-Identifier: MIT */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "store/internal.h"

#define FORMAT_MAGIC "lamina-store "

lam_store *lam__store_ref(lam_store *s)
{
	__atomic_add_fetch(&s->refcount, 1, __ATOMIC_RELAXED);
	return s;
}

void lam__store_unref(lam_store *s)
{
	if (s == NULL || __atomic_sub_fetch(&s->refcount, 1, __ATOMIC_ACQ_REL))
		return;
	lam__close(&s->rootfd);
	lam__close(&s->layersfd);
	lam__close(&s->objectsfd);
	lam__close(&s->tmpfd);
	pthread_mutex_destroy(&s->mutex);
	lam__free(s->recs);
	lam__refs_free(s->refs_cache, s->nrefs_cache);
	lam__free(s->path);
	lam__free(s);
}

void lam_store_free(lam_store *store)
{
	lam__store_unref(store);
}

const char *lam_store_path(const lam_store *store)
{
	return store ? store->path : NULL;
}

static int open_lockfile(lam_store *s, const char *name, int op)
{
	int fd = openat(s->rootfd, name, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		return lam__error_errno(errno, "opening %s/%s", s->path, name);
	while (flock(fd, op) < 0) {
		if (errno == EINTR)
			continue;
		int e = errno;
		close(fd);
		if (e == EWOULDBLOCK)
			return LAM_EBUSY;
		return lam__error_errno(e, "locking %s/%s", s->path, name);
	}
	return fd;
}

int lam__store_lock(lam_store *s)
{
	/* A fresh open file description per acquisition makes the lock
	 * exclude other threads of this process as well as other processes. */
	return open_lockfile(s, "lock", LOCK_EX);
}

int lam__store_gc_lock(lam_store *s, bool exclusive, bool wait)
{
	return open_lockfile(s, "gc.lock",
			     (exclusive ? LOCK_EX : LOCK_SH) |
				     (wait ? 0 : LOCK_NB));
}

void lam__unlock(int fd)
{
	if (fd >= 0)
		close(fd);
}

int lam__store_staging(lam_store *s, char name_out[37], int *fd_out)
{
	lam__uuid_new(name_out);
	if (mkdirat(s->tmpfd, name_out, 0700) < 0)
		return lam__error_errno(errno, "creating staging folder in %s",
					s->path);
	int fd = openat(s->tmpfd, name_out,
			O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		lam__rmtree_at(s->tmpfd, name_out);
		return lam__error_errno(e, "opening staging folder");
	}
	*fd_out = fd;
	return 0;
}

/* Remove what killed writers left in tmp/. Only safe while no writer
 * stages, which the exclusive gc lock guarantees; when another process
 * holds it shared we simply leave the clean-up to a later open or gc. */
void lam__store_clear_tmp(lam_store *s)
{
	DIR *d = lam__opendir_dup(s->tmpfd);
	if (d == NULL)
		return;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.' &&
		    (de->d_name[1] == '\0' ||
		     (de->d_name[1] == '.' && de->d_name[2] == '\0')))
			continue;
		lam__rmtree_quiet(s->tmpfd, de->d_name);
	}
	closedir(d);
}

/* Temporary files of atomic writes killed half way (.tmp-<uuid>, next to
 * what they were replacing); only removed while no writer can be making
 * one, that is under the store lock. */
void lam__clear_tmp_files(int dirfd)
{
	DIR *d = lam__opendir_dup(dirfd);
	if (d == NULL)
		return;
	struct dirent *de;
	while ((de = readdir(d)) != NULL)
		if (strncmp(de->d_name, ".tmp-", 5) == 0)
			unlinkat(dirfd, de->d_name, 0);
	closedir(d);
}

static void clear_leftovers(lam_store *s)
{
	int lk = lam__store_gc_lock(s, true, false);
	if (lk < 0) {
		lam__error_reset();
		return;
	}
	lam__store_clear_tmp(s);
	lam__unlock(lk);
	lk = open_lockfile(s, "lock", LOCK_EX | LOCK_NB);
	if (lk < 0) {
		lam__error_reset();
		return;
	}
	lam__clear_tmp_files(s->rootfd);
	lam__unlock(lk);
}

static int open_subdir(lam_store *s, const char *name, int *out)
{
	*out = openat(s->rootfd, name,
		      O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (*out < 0)
		return lam__error_errno(errno, "opening %s/%s", s->path, name);
	return 0;
}

static int parse_format(lam_store *s, const char *text)
{
	if (strncmp(text, FORMAT_MAGIC, strlen(FORMAT_MAGIC)) != 0)
		return lam__error(LAM_ECORRUPT,
				  "%s/format: not a lamina store format file",
				  s->path);
	char *end;
	errno = 0;
	unsigned long v = strtoul(text + strlen(FORMAT_MAGIC), &end, 10);
	if (errno != 0 || end == text + strlen(FORMAT_MAGIC) ||
	    (*end != '\n' && *end != '\0') || v == 0)
		return lam__error(LAM_ECORRUPT,
				  "%s/format: unreadable format version",
				  s->path);
	if (v > LAM__STORE_FORMAT)
		return lam__error(LAM_EVERSION,
				  "%s: store format %lu is newer than this "
				  "library understands (%d); upgrade lamina",
				  s->path, v, LAM__STORE_FORMAT);
	const char *ns = strstr(text, "\noverlay-xattr ");
	snprintf(s->overlay_xattr, sizeof(s->overlay_xattr), "%s",
		 "trusted.overlay.");
	if (ns != NULL && strncmp(ns + 15, "user", 4) == 0)
		snprintf(s->overlay_xattr, sizeof(s->overlay_xattr), "%s",
			 "user.overlay.");
	return 0;
}

static int create_layout(lam_store *s)
{
	static const char *dirs[] = {"layers", "objects", "tmp"};
	for (size_t i = 0; i < LAM__ARRAY_LEN(dirs); i++)
		if (mkdirat(s->rootfd, dirs[i], 0755) < 0 && errno != EEXIST)
			return lam__error_errno(errno, "creating %s/%s",
						s->path, dirs[i]);
	int fd = openat(s->rootfd, "refs",
			O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd >= 0)
		close(fd);
	else if (errno != EEXIST)
		return lam__error_errno(errno, "creating %s/refs", s->path);
	/* The format file goes last: its presence means the layout is
	 * complete, so a crash during creation leaves a folder that the next
	 * create simply completes. */
	char text[128];
	int n = snprintf(text, sizeof(text),
			 "lamina-store %d\noverlay-xattr %s\n",
			 LAM__STORE_FORMAT,
			 geteuid() == 0 ? "trusted" : "user");
	int rc = lam__write_file_atomic(s->rootfd, "format", text, (size_t)n);
	if (rc < 0)
		return lam__error_prefix(rc, "creating store %s", s->path);
	return 0;
}

int lam_store_open(lam_store **out, const char *path,
		   const lam_store_options *options)
{
	lam__error_reset();
	if (out == NULL)
		return lam__error(LAM_EINVAL, "lam_store_open: out is NULL");
	*out = NULL;
	if (path == NULL || path[0] == '\0')
		return lam__error(LAM_EINVAL, "lam_store_open: empty path");
	if (options != NULL && options->version != LAM_STORE_OPTIONS_VERSION)
		return lam__error(LAM_EINVAL,
				  "lam_store_open: unknown options version %u",
				  options->version);
	unsigned int flags = options ? options->flags : 0;

	lam_store *s = lam__calloc(1, sizeof(*s));
	if (s == NULL)
		return lam__error(LAM_ENOMEM, "out of memory opening %s", path);
	s->refcount = 1;
	s->rootfd = s->layersfd = s->objectsfd = s->tmpfd = -1;
	pthread_mutex_init(&s->mutex, NULL);
	s->path = lam__strdup(path);
	int rc;
	if (s->path == NULL) {
		rc = lam__error(LAM_ENOMEM, "out of memory opening %s", path);
		goto fail;
	}
	if ((flags & LAM_STORE_CREATE) && mkdir(path, 0755) < 0 &&
	    errno != EEXIST) {
		rc = lam__error_errno(errno, "creating store %s", path);
		goto fail;
	}
	s->rootfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (s->rootfd < 0) {
		int e = errno;
		if (e == ENOTDIR)
			rc = lam__error_os(LAM_ECORRUPT, e, "opening store %s",
					   path);
		else
			rc = lam__error_errno(e, "opening store %s", path);
		goto fail;
	}
	char *text = NULL;
	size_t len;
	rc = lam__read_file_at(s->rootfd, "format", &text, &len, 4096);
	if (rc == LAM_ENOTFOUND && (flags & LAM_STORE_CREATE)) {
		lam__error_reset();
		rc = create_layout(s);
		if (rc < 0)
			goto fail;
		rc = lam__read_file_at(s->rootfd, "format", &text, &len, 4096);
	}
	if (rc < 0) {
		if (rc == LAM_ENOTFOUND)
			rc = lam__error(LAM_ENOTFOUND,
					"%s is not a lamina store (no format "
					"file); create it with lamina init",
					path);
		else
			lam__error_prefix(rc, "opening store %s", path);
		goto fail;
	}
	rc = parse_format(s, text);
	lam__free(text);
	if (rc < 0)
		goto fail;
	if ((rc = open_subdir(s, "layers", &s->layersfd)) < 0 ||
	    (rc = open_subdir(s, "objects", &s->objectsfd)) < 0 ||
	    (rc = open_subdir(s, "tmp", &s->tmpfd)) < 0) {
		lam__error_prefix(LAM_ECORRUPT, "store %s is damaged", path);
		rc = LAM_ECORRUPT;
		goto fail;
	}
	clear_leftovers(s);
	*out = s;
	return 0;
fail:
	lam__store_unref(s);
	return rc;
}

/* Meta files: "key value" lines, then a checksum line over all of them. */
int lam__meta_format(lam__buf *out, const lam__layer_rec *r)
{
	int rc = lam__buf_printf(
		out,
		"lamina-layer 1\nid %s\ndiff %s\nuuid %s\nparent %s\n"
		"depth %u\nsize %" PRIu64 "\nentries %" PRIu64
		"\ncreated %" PRId64 "\n",
		r->id, r->diff, r->uuid, r->parent[0] ? r->parent : "-",
		r->depth, r->size, r->entries, r->created);
	if (rc < 0)
		return rc;
	uint64_t sum = lam__hash64(out->data, out->len);
	return lam__buf_printf(out, "checksum %016" PRIx64 "\n", sum);
}

static int field(const char *text, const char *key, char *dst, size_t size)
{
	char pat[32];
	snprintf(pat, sizeof(pat), "\n%s ", key);
	const char *p = strstr(text, pat);
	if (p == NULL)
		return -1;
	p += strlen(pat);
	size_t n = strcspn(p, "\n");
	if (n == 0 || n >= size)
		return -1;
	memcpy(dst, p, n);
	dst[n] = '\0';
	return 0;
}

static int parse_u64(const char *s, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0' || s[0] == '-')
		return -1;
	*out = v;
	return 0;
}

int lam__meta_parse(lam__layer_rec *r, const char *text, size_t len)
{
	memset(r, 0, sizeof(*r));
	if (strlen(text) != len || strncmp(text, "lamina-layer 1\n", 15) != 0)
		return lam__error(LAM_ECORRUPT, "meta: not a layer record");
	const char *ck = strstr(text, "\nchecksum ");
	if (ck == NULL)
		return lam__error(LAM_ECORRUPT, "meta: no checksum");
	char want[17];
	snprintf(want, sizeof(want), "%016" PRIx64,
		 lam__hash64(text, (size_t)(ck + 1 - text)));
	if (strncmp(ck + 10, want, 16) != 0 || ck[26] != '\n' || ck[27] != '\0')
		return lam__error(LAM_ECORRUPT, "meta: checksum mismatch");
	char v[64];
	uint64_t depth = 0, created = 0;
	if (field(text, "id", r->id, sizeof(r->id)) < 0 ||
	    field(text, "diff", r->diff, sizeof(r->diff)) < 0 ||
	    field(text, "uuid", r->uuid, sizeof(r->uuid)) < 0 ||
	    field(text, "parent", v, sizeof(v)) < 0 ||
	    field(text, "depth", v + 40, 20) < 0 ||
	    parse_u64(v + 40, &depth) < 0 || depth == 0 || depth > 1u << 20)
		return lam__error(LAM_ECORRUPT, "meta: missing or bad field");
	r->depth = (unsigned int)depth;
	if (strcmp(v, "-") != 0) {
		if (strlen(v) != 32 || !lam__is_hex(v, 32))
			return lam__error(LAM_ECORRUPT, "meta: bad parent");
		memcpy(r->parent, v, 33);
	}
	if (field(text, "size", v, sizeof(v)) < 0 ||
	    parse_u64(v, &r->size) < 0 ||
	    field(text, "entries", v, sizeof(v)) < 0 ||
	    parse_u64(v, &r->entries) < 0 ||
	    field(text, "created", v, sizeof(v)) < 0 ||
	    parse_u64(v, &created) < 0)
		return lam__error(LAM_ECORRUPT, "meta: missing or bad field");
	r->created = (int64_t)created;
	if (strlen(r->id) != 32 || !lam__is_hex(r->id, 32) ||
	    strlen(r->diff) != 32 || !lam__is_hex(r->diff, 32))
		return lam__error(LAM_ECORRUPT, "meta: bad digest");
	return 0;
}

int lam__meta_read(lam_store *s, const char *id, lam__layer_rec *r)
{
	char name[64];
	snprintf(name, sizeof(name), "%s/meta", id);
	char *text;
	size_t len;
	int rc = lam__read_file_at(s->layersfd, name, &text, &len, 65536);
	if (rc < 0)
		return lam__error_prefix(rc == LAM_ENOTFOUND ? LAM_ECORRUPT :
							       rc,
					 "layer %s", id);
	rc = lam__meta_parse(r, text, len);
	lam__free(text);
	if (rc < 0)
		return lam__error_prefix(rc, "layer %s", id);
	if (strcmp(r->id, id) != 0)
		return lam__error(LAM_ECORRUPT,
				  "layer %s: meta names another layer (%s)", id,
				  r->id);
	return 0;
}

static int rec_cmp(const void *a, const void *b)
{
	return strcmp(((const lam__layer_rec *)a)->id,
		      ((const lam__layer_rec *)b)->id);
}

/* Reload the catalog if the layers folder changed since the last load.
 * Called with the mutex held. */
static int catalog_refresh_locked(lam_store *s)
{
	struct stat st;
	if (fstat(s->layersfd, &st) < 0)
		return lam__error_errno(errno, "reading %s/layers", s->path);
	if (s->catalog_valid && st.st_ino == s->layers_ino &&
	    st.st_mtim.tv_sec == s->layers_mtime.tv_sec &&
	    st.st_mtim.tv_nsec == s->layers_mtime.tv_nsec)
		return 0;
	DIR *d = lam__opendir_dup(s->layersfd);
	if (d == NULL)
		return lam__error_errno(errno, "reading %s/layers", s->path);
	lam__layer_rec *recs = NULL;
	size_t n = 0, cap = 0;
	int rc = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (strlen(de->d_name) != 32 || !lam__is_hex(de->d_name, 32))
			continue;
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 64;
			lam__layer_rec *p =
				lam__realloc(recs, ncap * sizeof(*recs));
			if (p == NULL) {
				rc = lam__error(LAM_ENOMEM, "out of memory");
				break;
			}
			recs = p;
			cap = ncap;
		}
		rc = lam__meta_read(s, de->d_name, &recs[n]);
		if (rc == LAM_ECORRUPT) {
			/* Deleted by another process while we read, or
			 * damaged: either way not a usable layer. A damaged
			 * one is left for lam_store_check() to report rather
			 * than making the whole store unusable. */
			if (lam_error_last()->os_errno != ENOENT)
				lam__log(LAM_LOG_WARNING, "%s",
					 lam_error_last()->message);
			lam__error_reset();
			rc = 0;
			continue;
		}
		if (rc < 0)
			break;
		n++;
	}
	closedir(d);
	if (rc < 0) {
		lam__free(recs);
		return rc;
	}
	if (n > 1)
		qsort(recs, n, sizeof(*recs), rec_cmp);
	lam__free(s->recs);
	s->recs = recs;
	s->nrecs = n;
	s->layers_ino = st.st_ino;
	s->layers_mtime = st.st_mtim;
	s->catalog_valid = true;
	return 0;
}

int lam__catalog_refresh(lam_store *s)
{
	pthread_mutex_lock(&s->mutex);
	int rc = catalog_refresh_locked(s);
	pthread_mutex_unlock(&s->mutex);
	return rc;
}

int lam__catalog_find(lam_store *s, const char *id, lam__layer_rec *out)
{
	pthread_mutex_lock(&s->mutex);
	int rc = catalog_refresh_locked(s);
	if (rc == 0) {
		lam__layer_rec key;
		snprintf(key.id, sizeof(key.id), "%s", id);
		lam__layer_rec *r = s->nrecs ? bsearch(&key, s->recs, s->nrecs,
						       sizeof(*r), rec_cmp) :
					       NULL;
		if (r == NULL)
			rc = lam__error(LAM_ENOTFOUND, "layer %s not found",
					id);
		else
			*out = *r;
	}
	pthread_mutex_unlock(&s->mutex);
	return rc;
}

int lam__catalog_snapshot(lam_store *s, lam__layer_rec **out, size_t *n)
{
	*out = NULL;
	*n = 0;
	pthread_mutex_lock(&s->mutex);
	int rc = catalog_refresh_locked(s);
	if (rc == 0) {
		*out = lam__malloc((s->nrecs ? s->nrecs : 1) * sizeof(**out));
		if (*out == NULL)
			rc = lam__error(LAM_ENOMEM, "out of memory");
		else {
			if (s->nrecs)
				memcpy(*out, s->recs, s->nrecs * sizeof(**out));
			*n = s->nrecs;
		}
	}
	pthread_mutex_unlock(&s->mutex);
	return rc;
}

int lam__catalog_resolve(lam_store *s, const char *name, lam__layer_rec *out)
{
	if (name == NULL || name[0] == '\0')
		return lam__error(LAM_EINVAL, "empty layer name");
	lam__ref *refs;
	size_t nrefs;
	int rc = lam__refs_load(s, &refs, &nrefs);
	if (rc < 0)
		return rc;
	for (size_t i = 0; i < nrefs; i++) {
		if (strcmp(refs[i].name, name) != 0)
			continue;
		char id[33];
		memcpy(id, refs[i].id, 33);
		lam__refs_free(refs, nrefs);
		rc = lam__catalog_find(s, id, out);
		if (rc == LAM_ENOTFOUND)
			return lam__error(LAM_ECORRUPT,
					  "ref %s points at missing layer %s",
					  name, id);
		return rc;
	}
	lam__refs_free(refs, nrefs);
	size_t len = strlen(name);
	if (len < 4 || len > 32 || !lam__is_hex(name, len))
		return lam__error(LAM_ENOTFOUND, "no ref or layer named '%s'",
				  name);
	pthread_mutex_lock(&s->mutex);
	rc = catalog_refresh_locked(s);
	size_t matches = 0;
	for (size_t i = 0; rc == 0 && i < s->nrecs; i++) {
		if (strncmp(s->recs[i].id, name, len) != 0)
			continue;
		if (matches++ == 0)
			*out = s->recs[i];
	}
	pthread_mutex_unlock(&s->mutex);
	if (rc < 0)
		return rc;
	if (matches == 0)
		return lam__error(LAM_ENOTFOUND, "no ref or layer named '%s'",
				  name);
	if (matches > 1)
		return lam__error(LAM_EAMBIGUOUS,
				  "digest prefix %s matches %zu layers; give "
				  "more digits",
				  name, matches);
	return 0;
}
