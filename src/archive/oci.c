/* SPDX-License-Identifier: MIT */
/*
 * lam_oci_export(): a chain of layers as an image in an OCI image layout.
 *
 * Each layer becomes a blob (written to an O_TMPFILE in blobs/sha256/ and
 * linked under its digest, so that a blob another image already holds is
 * shared and a half-written one is never seen), then the config and the
 * manifest, and last index.json, replaced atomically.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "archive/internal.h"

const char *lam__oci_host_arch(void)
{
#if defined(__x86_64__)
	return "amd64";
#elif defined(__aarch64__)
	return "arm64";
#elif defined(__arm__)
	return "arm";
#elif defined(__i386__)
	return "386";
#elif defined(__powerpc64__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	return "ppc64le";
#elif defined(__s390x__)
	return "s390x";
#elif defined(__riscv) && __riscv_xlen == 64
	return "riscv64";
#else
	return "unknown";
#endif
}

const char *lam__oci_host_variant(void)
{
#if defined(__aarch64__)
	return "v8";
#elif defined(__arm__)
	return "v7";
#else
	return NULL;
#endif
}

static const char *layer_media_type(unsigned int c)
{
	switch (c) {
	case LAM_COMPRESS_GZIP:
		return "application/vnd.oci.image.layer.v1.tar+gzip";
	case LAM_COMPRESS_ZSTD:
		return "application/vnd.oci.image.layer.v1.tar+zstd";
	default:
		return "application/vnd.oci.image.layer.v1.tar";
	}
}

static void rfc3339(char out[32], int64_t t)
{
	time_t tt = (time_t)t;
	struct tm tm;
	gmtime_r(&tt, &tm);
	strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Publish an O_TMPFILE under blobs/sha256/<hex>; an existing blob of that
 * digest is the same bytes. */
static int link_blob(int blobsfd, int fd, const char *digest)
{
	char proc[64];
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	if (linkat(AT_FDCWD, proc, blobsfd, digest + 7, AT_SYMLINK_FOLLOW) ==
		    0 ||
	    errno == EEXIST)
		return 0;
	return lam__error_errno(errno, "writing blob %s", digest);
}

static int write_blob(int blobsfd, const void *data, size_t len,
		      char digest[LAM_OCI_DIGEST_SIZE])
{
	lam__sha256_buf(data, len, digest);
	if (faccessat(blobsfd, digest + 7, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
		return 0;
	int fd = openat(blobsfd, ".", O_TMPFILE | O_WRONLY | O_CLOEXEC, 0644);
	if (fd < 0)
		return lam__error_errno(errno, "writing blob %s", digest);
	int rc = lam__write_all(fd, data, len);
	if (rc < 0)
		rc = lam__error_errno(-rc, "writing blob %s", digest);
	else
		rc = link_blob(blobsfd, fd, digest);
	close(fd);
	return rc;
}

typedef struct exported {
	char diff[LAM_OCI_DIGEST_SIZE];
	char digest[LAM_OCI_DIGEST_SIZE];
	uint64_t size;
	char *kv;
	size_t kv_len;
	int64_t created;
	char id[33];
} exported;

static int export_layer(lam_layer *l, int blobsfd, const lam_oci_options *o,
			exported *x)
{
	int fd = openat(blobsfd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0644);
	if (fd < 0)
		return lam__error_errno(errno, "creating a blob");
	lam_tar_options to = LAM_TAR_OPTIONS_INIT;
	to.compression = o ? o->compression : LAM_COMPRESS_GZIP;
	to.progress = o ? o->progress : NULL;
	to.userdata = o ? o->userdata : NULL;
	int rc = lam_layer_export_tar(l, fd, &to, x->diff, x->digest);
	struct stat st;
	if (rc == 0 && fstat(fd, &st) < 0)
		rc = lam__error_errno(errno, "writing a blob");
	if (rc == 0) {
		x->size = (uint64_t)st.st_size;
		rc = link_blob(blobsfd, fd, x->digest);
	}
	close(fd);
	if (rc != 0)
		return rc;
	char name[48];
	snprintf(name, sizeof(name), "%s/kv", l->rec.id);
	rc = lam__read_file_at(l->store->layersfd, name, &x->kv, &x->kv_len,
			       (size_t)1 << 31);
	if (rc == LAM_ENOTFOUND) {
		lam__error_reset();
		rc = 0;
	}
	x->created = l->rec.created;
	memcpy(x->id, l->rec.id, 33);
	return rc;
}

static int config_json(lam__buf *b, const exported *x, size_t n)
{
	char t[32];
	rfc3339(t, n ? x[n - 1].created : 0);
	int rc = lam__buf_printf(b,
				 "{\"created\":\"%s\",\"architecture\":\"%s\",",
				 t, lam__oci_host_arch());
	const char *variant = lam__oci_host_variant();
	if (rc == 0 && variant)
		rc = lam__buf_printf(b, "\"variant\":\"%s\",", variant);
	if (rc == 0)
		rc = lam__buf_puts(b, "\"os\":\"linux\",\"config\":{},"
				      "\"rootfs\":{\"type\":\"layers\","
				      "\"diff_ids\":[");
	for (size_t i = 0; rc == 0 && i < n; i++)
		rc = lam__buf_printf(b, "%s\"%s\"", i ? "," : "", x[i].diff);
	if (rc == 0)
		rc = lam__buf_puts(b, "]},\"history\":[");
	for (size_t i = 0; rc == 0 && i < n; i++) {
		rfc3339(t, x[i].created);
		rc = lam__buf_printf(b,
				     "%s{\"created\":\"%s\",\"created_by\":"
				     "\"lamina layer %s\"}",
				     i ? "," : "", t, x[i].id);
	}
	if (rc == 0)
		rc = lam__buf_puts(b, "]");
	/* The key/value deltas: see docs/oci.md for why they live here. */
	bool any = false;
	for (size_t i = 0; rc == 0 && i < n; i++) {
		if (x[i].kv == NULL)
			continue;
		char d[LAM_OCI_DIGEST_SIZE];
		lam__sha256_buf(x[i].kv, x[i].kv_len, d);
		rc = lam__buf_printf(b,
				     "%s{\"layer\":%zu,\"digest\":\"%s\","
				     "\"data\":\"",
				     any ? "," : ",\"org.lamina.kv.v1\":[", i,
				     d);
		if (rc == 0)
			rc = lam__base64_encode(b, x[i].kv, x[i].kv_len);
		if (rc == 0)
			rc = lam__buf_puts(b, "\"}");
		any = true;
	}
	if (rc == 0 && any)
		rc = lam__buf_puts(b, "]");
	if (rc == 0)
		rc = lam__buf_puts(b, "}");
	return rc;
}

static int check_tag(const char *tag)
{
	size_t n = strlen(tag);
	if (n == 0 || n > 255)
		return lam__error(LAM_EINVAL, "bad tag \"%.80s\"", tag);
	for (size_t i = 0; i < n; i++) {
		char c = tag[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || strchr("._-:/@+", c)))
			return lam__error(LAM_EINVAL,
					  "bad tag \"%.80s\": only letters, "
					  "digits and ._-:/@+",
					  tag);
	}
	return 0;
}

/* index.json with the new manifest, keeping the other images. The read
 * and the replacement happen under an exclusive flock of the layout
 * folder, so that two lamina processes exporting into one layout at once
 * both land (other tools do not take it: the OCI defines no lock). */
static int write_index(int dirfd, const char *tag, const char *mdigest,
		       size_t msize)
{
	while (flock(dirfd, LOCK_EX) < 0)
		if (errno != EINTR)
			return lam__error_errno(errno, "locking the layout");
	char *old = NULL;
	size_t olen = 0;
	int rc = lam__read_file_at(dirfd, "index.json", &old, &olen, 64u << 20);
	lam__json idx;
	memset(&idx, 0, sizeof(idx));
	if (rc == 0)
		rc = lam__json_parse(&idx, old, olen, "index.json");
	else if (rc == LAM_ENOTFOUND) {
		lam__error_reset();
		rc = 0;
	}
	lam__buf b = {0};
	if (rc == 0)
		rc = lam__buf_puts(&b,
				   "{\"schemaVersion\":2,\"mediaType\":"
				   "\"application/vnd.oci.image.index.v1+json\""
				   ",\"manifests\":[");
	const lam__json *ms = lam__json_get(&idx, "manifests");
	size_t kept = 0;
	for (size_t i = 0;
	     rc == 0 && ms && ms->type == LAM__JSON_ARRAY && i < ms->n; i++) {
		const lam__json *m = &ms->items[i];
		const char *name =
			lam__json_str(lam__json_get(m, "annotations"),
				      "org.opencontainers.image.ref.name");
		if (tag && name && strcmp(name, tag) == 0)
			continue;
		const char *d = lam__json_str(m, "digest");
		if (!tag && name == NULL && d && strcmp(d, mdigest) == 0)
			continue;
		rc = lam__buf_printf(&b, "%s%.*s", kept++ ? "," : "",
				     (int)m->raw_len, m->raw);
	}
	if (rc == 0)
		rc = lam__buf_printf(
			&b,
			"%s{\"mediaType\":\"application/vnd.oci.image."
			"manifest.v1+json\",\"digest\":\"%s\",\"size\":%zu",
			kept ? "," : "", mdigest, msize);
	if (rc == 0 && tag) {
		rc = lam__buf_puts(&b, ",\"annotations\":{\"org.opencontainers."
				       "image.ref.name\":");
		if (rc == 0)
			rc = lam__json_quote(&b, tag, strlen(tag));
		if (rc == 0)
			rc = lam__buf_puts(&b, "}");
	}
	if (rc == 0)
		rc = lam__buf_puts(&b, "}]}\n");
	if (rc == 0)
		rc = lam__write_file_atomic(dirfd, "index.json", b.data, b.len);
	flock(dirfd, LOCK_UN);
	lam__buf_free(&b);
	lam__json_free(&idx);
	lam__free(old);
	return rc;
}

static int export_chain(lam_layer *top, int dirfd, int blobsfd, const char *tag,
			const lam_oci_options *o)
{
	size_t n = top->rec.depth;
	lam_layer **chain = lam__calloc(n ? n : 1, sizeof(*chain));
	exported *x = lam__calloc(n ? n : 1, sizeof(*x));
	int rc = chain && x ? 0 : lam__error(LAM_ENOMEM, "out of memory");
	lam_layer *cur = rc == 0 ? lam_layer_ref(top) : NULL;
	for (size_t i = n; rc == 0 && cur && i > 0; i--) {
		chain[i - 1] = cur;
		rc = lam_layer_parent(&cur, cur);
	}
	if (rc == 0 && cur != NULL) {
		lam_layer_free(cur);
		rc = lam__error(LAM_ECORRUPT, "layer %s: chain deeper than %zu",
				top->rec.id, n);
	}
	for (size_t i = 0; rc == 0 && i < n; i++)
		rc = export_layer(chain[i], blobsfd, o, &x[i]);
	lam__buf cfg = {0}, man = {0};
	char cdig[LAM_OCI_DIGEST_SIZE], mdig[LAM_OCI_DIGEST_SIZE];
	if (rc == 0)
		rc = config_json(&cfg, x, n);
	if (rc == 0)
		rc = write_blob(blobsfd, cfg.data, cfg.len, cdig);
	if (rc == 0)
		rc = lam__buf_printf(
			&man,
			"{\"schemaVersion\":2,\"mediaType\":\"application/"
			"vnd.oci.image.manifest.v1+json\",\"config\":{"
			"\"mediaType\":\"application/vnd.oci.image.config."
			"v1+json\",\"digest\":\"%s\",\"size\":%zu},"
			"\"layers\":[",
			cdig, cfg.len);
	for (size_t i = 0; rc == 0 && i < n; i++)
		rc = lam__buf_printf(
			&man,
			"%s{\"mediaType\":\"%s\",\"digest\":\"%s\","
			"\"size\":%llu}",
			i ? "," : "",
			layer_media_type(o ? o->compression :
					     LAM_COMPRESS_GZIP),
			x[i].digest, (unsigned long long)x[i].size);
	if (rc == 0)
		rc = lam__buf_puts(&man, "]}");
	if (rc == 0)
		rc = write_blob(blobsfd, man.data, man.len, mdig);
	/* Every blob durable before index.json names them. */
	if (rc == 0 && syncfs(dirfd) < 0)
		rc = lam__error_errno(errno, "syncing the layout");
	if (rc == 0)
		rc = write_index(dirfd, tag, mdig, man.len);
	lam__buf_free(&cfg);
	lam__buf_free(&man);
	for (size_t i = 0; chain && i < n; i++)
		lam_layer_free(chain[i]);
	for (size_t i = 0; x && i < n; i++)
		lam__free(x[i].kv);
	lam__free(chain);
	lam__free(x);
	return rc;
}

int lam_oci_export(lam_store *store, const char *name, const char *dir,
		   const char *tag, const lam_oci_options *options)
{
	lam__error_reset();
	if (store == NULL || name == NULL || dir == NULL || dir[0] == '\0')
		return lam__error(LAM_EINVAL, "lam_oci_export: NULL argument");
	if (options != NULL && options->version != LAM_OCI_OPTIONS_VERSION)
		return lam__error(LAM_EINVAL, "unknown OCI options version");
	if (options != NULL && options->compression > LAM_COMPRESS_ZSTD)
		return lam__error(LAM_EINVAL, "unknown compression %u",
				  options->compression);
	if (tag != NULL && check_tag(tag) < 0)
		return LAM_EINVAL;
	lam_layer *top = NULL;
	int rc = lam_layer_open(&top, store, name);
	if (rc < 0)
		return rc;
	rc = lam__mkdir_p_at(AT_FDCWD, dir, 0755);
	int dirfd = -1, blobsfd = -1;
	if (rc == 0) {
		dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dirfd < 0)
			rc = lam__error_errno(errno, "opening %s", dir);
	}
	if (rc == 0)
		rc = lam__mkdir_p_at(dirfd, "blobs/sha256", 0755);
	if (rc == 0) {
		blobsfd =
			openat(dirfd, "blobs/sha256",
			       O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (blobsfd < 0)
			rc = lam__error_errno(errno, "opening %s/blobs/sha256",
					      dir);
	}
	if (rc == 0 && faccessat(dirfd, "oci-layout", F_OK, 0) < 0) {
		static const char layout[] =
			"{\"imageLayoutVersion\":\"1.0.0\"}";
		rc = lam__write_file_atomic(dirfd, "oci-layout", layout,
					    sizeof(layout) - 1);
	}
	if (rc == 0)
		rc = export_chain(top, dirfd, blobsfd, tag, options);
	if (rc < 0)
		lam__error_prefix(rc, "exporting %s to %s", name, dir);
	lam__close(&blobsfd);
	lam__close(&dirfd);
	lam_layer_free(top);
	return rc;
}
