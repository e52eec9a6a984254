/* SPDX-License-Identifier: MIT */
/*
 * lam_oci_import(): an image from an OCI image layout.
 *
 * index.json (and a nested image index) give the manifest, for a tag or
 * the host's platform; every JSON blob is checked against its digest and
 * size before it is read; each layer is imported with its blob digest and
 * its diff id checked before it is published. A layer already imported on
 * the same parent from the same diff id is found again through the
 * store's oci-cache/ folder: one small file per (parent, diff id,
 * key/value digest) naming the layer, so that a second image on the same
 * base reads only its own layers. The cache is only a shortcut: an entry
 * naming a layer that is gone is ignored.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "archive/internal.h"

#define MAX_JSON (64u << 20)

static const char *const manifest_types[] = {
	"application/vnd.oci.image.manifest.v1+json",
	"application/vnd.docker.distribution.manifest.v2+json",
};
static const char *const index_types[] = {
	"application/vnd.oci.image.index.v1+json",
	"application/vnd.docker.distribution.manifest.list.v2+json",
};
static const char *const layer_types[] = {
	"application/vnd.oci.image.layer.v1.tar",
	"application/vnd.oci.image.layer.v1.tar+gzip",
	"application/vnd.oci.image.layer.v1.tar+zstd",
	"application/vnd.oci.image.layer.nondistributable.v1.tar",
	"application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
	"application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
	"application/vnd.docker.image.rootfs.diff.tar.gzip",
};

static bool one_of(const char *s, const char *const *list, size_t n)
{
	for (size_t i = 0; s && i < n; i++)
		if (strcmp(s, list[i]) == 0)
			return true;
	return false;
}

/* Open the blob a descriptor names, checking its size. */
static int open_blob(int dirfd, const lam__json *desc, uint64_t *size)
{
	const char *d = lam__json_str(desc, "digest");
	if (d == NULL)
		return lam__error(LAM_ECORRUPT, "a descriptor without digest");
	if (lam__oci_digest_check(d, "descriptor") < 0)
		return lam__error(LAM_ENOTSUP,
				  "blob %.80s: only sha256 digests are read",
				  d);
	int rc = lam__json_u64(desc, "size", size, d);
	if (rc < 0)
		return rc;
	char path[96];
	snprintf(path, sizeof(path), "blobs/sha256/%s", d + 7);
	int fd = openat(dirfd, path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return lam__error_errno(errno, "blob %s", d);
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
	    (uint64_t)st.st_size != *size) {
		close(fd);
		return lam__error(
			LAM_ECORRUPT,
			"blob %s: size %llu, the descriptor says %llu", d,
			(unsigned long long)st.st_size,
			(unsigned long long)*size);
	}
	return fd;
}

/* Read and parse a JSON blob, checking its digest. */
static int read_json(int dirfd, const lam__json *desc, lam__json *out,
		     const char *what)
{
	uint64_t size;
	int fd = open_blob(dirfd, desc, &size);
	if (fd < 0)
		return fd;
	if (size > MAX_JSON) {
		close(fd);
		return lam__error(LAM_ECORRUPT, "%s of %llu bytes is too large",
				  what, (unsigned long long)size);
	}
	char *data = lam__malloc(size ? (size_t)size : 1);
	size_t got = 0;
	int rc = data ? lam__read_all(fd, data, (size_t)size, &got) :
			lam__error(LAM_ENOMEM, "out of memory");
	close(fd);
	if (rc < 0 && data)
		rc = lam__error_errno(-rc, "reading %s", what);
	if (rc == 0 && got != size)
		rc = lam__error(LAM_ECORRUPT, "%s: short read", what);
	if (rc == 0) {
		char d[LAM_OCI_DIGEST_SIZE];
		lam__sha256_buf(data, got, d);
		const char *want = lam__json_str(desc, "digest");
		if (strcmp(d, want) != 0)
			rc = lam__error(LAM_ECORRUPT,
					"%s: digest mismatch: expected %s, got "
					"%s",
					what, want, d);
	}
	if (rc == 0)
		rc = lam__json_parse(out, data, got, what);
	lam__free(data);
	return rc;
}

typedef struct platform {
	char os[32], arch[32], variant[32];
} platform;

static int parse_platform(platform *p, const char *s)
{
	memset(p, 0, sizeof(*p));
	if (s == NULL) {
		snprintf(p->os, sizeof(p->os), "linux");
		snprintf(p->arch, sizeof(p->arch), "%s", lam__oci_host_arch());
		return 0;
	}
	if (sscanf(s, "%31[^/]/%31[^/]/%31s", p->os, p->arch, p->variant) < 2)
		return lam__error(LAM_EINVAL,
				  "bad platform \"%.80s\": OS/ARCH[/VARIANT]",
				  s);
	return 0;
}

/* The manifest of a list for the platform: an exact variant first, then
 * any variant. */
static const lam__json *pick_platform(const lam__json *const *c, size_t n,
				      const platform *p)
{
	const lam__json *any = NULL;
	for (size_t i = 0; i < n; i++) {
		const lam__json *pl = lam__json_get(c[i], "platform");
		const char *os = lam__json_str(pl, "os");
		const char *arch = lam__json_str(pl, "architecture");
		const char *var = lam__json_str(pl, "variant");
		if (!os || !arch || strcmp(os, p->os) || strcmp(arch, p->arch))
			continue;
		if (p->variant[0] && var && strcmp(var, p->variant) == 0)
			return c[i];
		if (p->variant[0] && var)
			continue;
		if (any == NULL)
			any = c[i];
	}
	return any;
}

/* Choose a descriptor of an index: by tag, the only one, or the one for
 * the platform. */
static int choose(const lam__json *index, const char *tag, const platform *p,
		  const lam__json **out, const char *what)
{
	const lam__json *ms = lam__json_get(index, "manifests");
	if (ms == NULL || ms->type != LAM__JSON_ARRAY)
		return lam__error(LAM_ECORRUPT, "%s: no manifests", what);
	const lam__json **c = lam__calloc(ms->n ? ms->n : 1, sizeof(*c));
	if (c == NULL)
		return lam__error(LAM_ENOMEM, "out of memory");
	size_t n = 0;
	bool all_platforms = true;
	for (size_t i = 0; i < ms->n; i++) {
		const lam__json *m = &ms->items[i];
		const char *name =
			lam__json_str(lam__json_get(m, "annotations"),
				      "org.opencontainers.image.ref.name");
		if (tag && (name == NULL || strcmp(name, tag) != 0))
			continue;
		c[n++] = m;
		if (lam__json_get(m, "platform") == NULL)
			all_platforms = false;
	}
	int rc = 0;
	*out = NULL;
	if (n == 0)
		rc = tag ? lam__error(LAM_ENOTFOUND, "%s: no image tagged %s",
				      what, tag) :
			   lam__error(LAM_ENOTFOUND, "%s: no image", what);
	else if (n == 1)
		*out = c[0];
	else if (all_platforms) {
		*out = pick_platform(c, n, p);
		if (*out == NULL)
			rc = lam__error(LAM_ENOTFOUND,
					"%s: no image for platform %s/%s%s%s",
					what, p->os, p->arch,
					p->variant[0] ? "/" : "", p->variant);
	} else
		rc = lam__error(LAM_EAMBIGUOUS,
				"%s holds %zu images: name one by its tag",
				what, n);
	lam__free(c);
	return rc;
}

static void cache_key(char out[65], const char *parent, const char *diff_id,
		      const char *kv_digest)
{
	lam__buf b = {0};
	char d[LAM_OCI_DIGEST_SIZE];
	if (lam__buf_printf(&b, "lamina-oci-1\n%s\n%s\n%s\n", parent, diff_id,
			    kv_digest) == 0)
		lam__sha256_buf(b.data, b.len, d);
	else
		memset(d, '0', sizeof(d));
	memcpy(out, d + 7, 64);
	out[64] = '\0';
	lam__buf_free(&b);
}

static lam_layer *cache_find(lam_store *s, const char *key)
{
	char name[80], *id = NULL;
	size_t len = 0;
	snprintf(name, sizeof(name), "oci-cache/%s", key);
	lam__error_saved saved;
	lam__error_save(&saved);
	lam_layer *l = NULL;
	if (lam__read_file_at(s->rootfd, name, &id, &len, 64) == 0 &&
	    len == 32 && lam__is_hex(id, 32)) {
		char hex[33];
		memcpy(hex, id, 32);
		hex[32] = '\0';
		if (lam__layer_open_id(&l, s, hex) < 0)
			l = NULL;
	}
	lam__free(id);
	lam__error_restore(&saved);
	return l;
}

static void cache_put(lam_store *s, const char *key, const char *id)
{
	lam__error_saved saved;
	lam__error_save(&saved);
	if (mkdirat(s->rootfd, "oci-cache", 0755) == 0 || errno == EEXIST) {
		int fd = openat(s->rootfd, "oci-cache",
				O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd >= 0) {
			lam__write_file_atomic(fd, key, id, 32);
			close(fd);
		}
	}
	lam__error_restore(&saved);
}

typedef struct kv_blob {
	lam__buf data;
	char digest[LAM_OCI_DIGEST_SIZE];
} kv_blob;

/* The key/value deltas the config carries (docs/oci.md). */
static int config_kv(const lam__json *cfg, kv_blob *kv, size_t n)
{
	const lam__json *a = lam__json_get(cfg, "org.lamina.kv.v1");
	if (a == NULL)
		return 0;
	if (a->type != LAM__JSON_ARRAY)
		return lam__error(LAM_ECORRUPT,
				  "config: org.lamina.kv.v1 is not an array");
	for (size_t i = 0; i < a->n; i++) {
		uint64_t layer;
		const lam__json *e = &a->items[i];
		int rc = lam__json_u64(e, "layer", &layer, "config kv");
		if (rc < 0)
			return rc;
		const char *d = lam__json_str(e, "digest");
		const char *data = lam__json_str(e, "data");
		if (layer >= n || d == NULL || data == NULL ||
		    kv[layer].data.data != NULL)
			return lam__error(LAM_ECORRUPT,
					  "config: bad org.lamina.kv.v1 entry");
		rc = lam__base64_decode(&kv[layer].data, data, strlen(data));
		if (rc < 0)
			return lam__error_prefix(rc, "config kv of layer %llu",
						 (unsigned long long)layer);
		lam__sha256_buf(kv[layer].data.data, kv[layer].data.len,
				kv[layer].digest);
		if (strcmp(kv[layer].digest, d) != 0)
			return lam__error(LAM_ECORRUPT,
					  "config: key/value delta of layer "
					  "%llu: digest mismatch",
					  (unsigned long long)layer);
	}
	return 0;
}

static int import_layers(lam_layer **out, lam_store *s, int dirfd,
			 const lam__json *man, const lam__json *cfg,
			 const lam_oci_options *o)
{
	const lam__json *layers = lam__json_get(man, "layers");
	const lam__json *diffs =
		lam__json_get(lam__json_get(cfg, "rootfs"), "diff_ids");
	if (layers == NULL || layers->type != LAM__JSON_ARRAY ||
	    diffs == NULL || diffs->type != LAM__JSON_ARRAY)
		return lam__error(LAM_ECORRUPT,
				  "manifest or config without layers");
	if (layers->n != diffs->n)
		return lam__error(
			LAM_ECORRUPT,
			"manifest has %zu layers, config %zu diff ids",
			layers->n, diffs->n);
	if (layers->n == 0)
		return lam__error(LAM_ENOTSUP, "an image without layers");
	kv_blob *kv = lam__calloc(layers->n, sizeof(*kv));
	if (kv == NULL)
		return lam__error(LAM_ENOMEM, "out of memory");
	int rc = config_kv(cfg, kv, layers->n);
	lam_layer *parent = NULL;
	for (size_t i = 0; rc == 0 && i < layers->n; i++) {
		const lam__json *desc = &layers->items[i];
		const char *mt = lam__json_str(desc, "mediaType");
		const char *diff = diffs->items[i].type == LAM__JSON_STRING ?
					   diffs->items[i].str :
					   NULL;
		if (!one_of(mt, layer_types, LAM__ARRAY_LEN(layer_types))) {
			rc = lam__error(LAM_ENOTSUP,
					"layer %zu: media type %s is not a "
					"layer lamina reads",
					i, mt ? mt : "(none)");
			break;
		}
		if (diff == NULL ||
		    lam__oci_digest_check(diff, "config diff id") < 0) {
			rc = lam__error(LAM_ECORRUPT, "layer %zu: bad diff id",
					i);
			break;
		}
		char key[65];
		cache_key(key, parent ? parent->rec.id : "", diff,
			  kv[i].data.data ? kv[i].digest : "");
		lam_layer *l = cache_find(s, key);
		if (l == NULL) {
			uint64_t size;
			int fd = open_blob(dirfd, desc, &size);
			if (fd < 0) {
				rc = fd;
				break;
			}
			lam_tar_import_options to = LAM_TAR_IMPORT_OPTIONS_INIT;
			to.flags = o ? o->flags : 0;
			to.max_size = o ? o->max_size : 0;
			to.progress = o ? o->progress : NULL;
			to.userdata = o ? o->userdata : NULL;
			to.diff_id = diff;
			to.digest = lam__json_str(desc, "digest");
			lam__tar_import ti;
			memset(&ti, 0, sizeof(ti));
			ti.opts = &to;
			ti.kv = kv[i].data.data;
			ti.kv_len = kv[i].data.len;
			ti.total = size;
			rc = lam__layer_import_tar(&l, s, fd, parent, &ti);
			close(fd);
			if (rc != 0) {
				if (rc < 0)
					lam__error_prefix(rc, "layer %zu (%s)",
							  i, to.digest);
				break;
			}
			cache_put(s, key, l->rec.id);
		}
		lam_layer_free(parent);
		parent = l;
	}
	for (size_t i = 0; i < layers->n; i++)
		lam__buf_free(&kv[i].data);
	lam__free(kv);
	if (rc != 0) {
		lam_layer_free(parent);
		return rc;
	}
	*out = parent;
	return 0;
}

int lam_oci_import(lam_layer **out, lam_store *store, const char *dir,
		   const char *tag, const lam_oci_options *options)
{
	lam__error_reset();
	if (out == NULL)
		return lam__error(LAM_EINVAL, "lam_oci_import: out is NULL");
	*out = NULL;
	if (store == NULL || dir == NULL)
		return lam__error(LAM_EINVAL, "lam_oci_import: NULL argument");
	if (options != NULL && options->version != LAM_OCI_OPTIONS_VERSION)
		return lam__error(LAM_EINVAL, "unknown OCI options version");
	platform p;
	int rc = parse_platform(&p, options ? options->platform : NULL);
	if (rc < 0)
		return rc;
	int dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0)
		return lam__error_errno(errno, "opening image layout %s", dir);
	char *text = NULL;
	size_t len = 0;
	lam__json layout, index, sub, man, cfg;
	memset(&layout, 0, sizeof(layout));
	memset(&index, 0, sizeof(index));
	memset(&sub, 0, sizeof(sub));
	memset(&man, 0, sizeof(man));
	memset(&cfg, 0, sizeof(cfg));
	rc = lam__read_file_at(dirfd, "oci-layout", &text, &len, 1u << 16);
	if (rc == 0)
		rc = lam__json_parse(&layout, text, len, "oci-layout");
	if (rc == 0 && lam__json_str(&layout, "imageLayoutVersion") == NULL)
		rc = lam__error(LAM_ECORRUPT, "oci-layout without version");
	if (rc < 0)
		lam__error_prefix(rc == LAM_ENOTFOUND ? LAM_ECORRUPT : rc,
				  "%s is not an OCI image layout", dir);
	rc = rc < 0 ? lam_error_last()->code : 0;
	lam__free(text);
	text = NULL;
	if (rc == 0)
		rc = lam__read_file_at(dirfd, "index.json", &text, &len,
				       MAX_JSON);
	if (rc == 0)
		rc = lam__json_parse(&index, text, len, "index.json");
	const lam__json *desc = NULL;
	if (rc == 0)
		rc = choose(&index, tag, &p, &desc, "index.json");
	/* Nested indexes, as multi-platform images have. */
	lam__json *cur_index = &index;
	for (int depth = 0; rc == 0; depth++) {
		const char *mt = lam__json_str(desc, "mediaType");
		if (one_of(mt, manifest_types, LAM__ARRAY_LEN(manifest_types)))
			break;
		if (!one_of(mt, index_types, LAM__ARRAY_LEN(index_types))) {
			rc = lam__error(LAM_ENOTSUP,
					"media type %s is not an image lamina "
					"reads",
					mt ? mt : "(none)");
			break;
		}
		if (depth >= 4) {
			rc = lam__error(LAM_ECORRUPT,
					"indexes nested too deep");
			break;
		}
		lam__json next;
		rc = read_json(dirfd, desc, &next, "image index");
		if (rc == 0) {
			if (cur_index == &sub)
				lam__json_free(&sub);
			sub = next;
			cur_index = &sub;
			rc = choose(&sub, NULL, &p, &desc, "image index");
		}
	}
	if (rc == 0)
		rc = read_json(dirfd, desc, &man, "manifest");
	if (rc == 0)
		rc = read_json(dirfd, lam__json_get(&man, "config"), &cfg,
			       "config");
	if (rc == 0)
		rc = import_layers(out, store, dirfd, &man, &cfg, options);
	if (rc < 0)
		lam__error_prefix(rc, "importing %s%s%s", dir, tag ? ":" : "",
				  tag ? tag : "");
	lam__json_free(&layout);
	lam__json_free(&index);
	lam__json_free(&sub);
	lam__json_free(&man);
	lam__json_free(&cfg);
	lam__free(text);
	close(dirfd);
	return rc;
}
