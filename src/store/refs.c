/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdio.h>
#include <unistd.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>

#include "store/internal.h"

#define REFS_MAX (64u << 20)

int lam_store_ref_check_name(const char *name)
{
	lam__error_reset();
	if (name == NULL || name[0] == '\0')
		return lam__error(LAM_EBADNAME, "ref name is empty");
	size_t len = strlen(name);
	if (len > 255)
		return lam__error(LAM_EBADNAME,
				  "ref name is longer than 255 bytes");
	if (name[0] == '/' || name[0] == '.' || name[len - 1] == '/')
		return lam__error(LAM_EBADNAME,
				  "ref name '%s' starts with '/' or '.', or "
				  "ends with '/'",
				  name);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			  (c >= '0' && c <= '9') || strchr("._-+:@/", c);
		if (!ok)
			return lam__error(LAM_EBADNAME,
					  "ref name has a forbidden character "
					  "(byte 0x%02x at %zu)",
					  c, i);
	}
	/* Components: none empty, none "." or "..". */
	for (const char *p = name; *p;) {
		size_t n = strcspn(p, "/");
		if (n == 0 || (n == 1 && p[0] == '.') ||
		    (n == 2 && p[0] == '.' && p[1] == '.'))
			return lam__error(LAM_EBADNAME,
					  "ref name '%s' has an empty, '.' or "
					  "'..' component",
					  name);
		p += n;
		if (*p == '/')
			p++;
	}
	return 0;
}

void lam__refs_free(lam__ref *refs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		lam__free(refs[i].name);
	lam__free(refs);
}

static int ref_cmp(const void *a, const void *b)
{
	return strcmp(((const lam__ref *)a)->name, ((const lam__ref *)b)->name);
}

int lam__refs_load(lam_store *s, lam__ref **out, size_t *n)
{
	*out = NULL;
	*n = 0;
	char *text;
	size_t len;
	int rc = lam__read_file_at(s->rootfd, "refs", &text, &len, REFS_MAX);
	if (rc == LAM_ENOTFOUND) {
		lam__error_reset();
		return 0;
	}
	if (rc < 0)
		return lam__error_prefix(rc, "reading refs of %s", s->path);
	lam__ref *refs = NULL;
	size_t cnt = 0, cap = 0, line = 0;
	for (char *p = text; *p;) {
		char *nl = strchr(p, '\n');
		line++;
		if (nl == NULL) {
			rc = lam__error(LAM_ECORRUPT,
					"%s/refs: line %zu is not terminated",
					s->path, line);
			break;
		}
		*nl = '\0';
		char *sp = strrchr(p, ' ');
		if (sp == NULL || strlen(sp + 1) != 32 ||
		    !lam__is_hex(sp + 1, 32) || sp == p) {
			rc = lam__error(LAM_ECORRUPT,
					"%s/refs: line %zu is malformed",
					s->path, line);
			break;
		}
		if (cnt == cap) {
			cap = cap ? cap * 2 : 16;
			lam__ref *r = lam__realloc(refs, cap * sizeof(*refs));
			if (r == NULL) {
				rc = lam__error(LAM_ENOMEM, "out of memory");
				break;
			}
			refs = r;
		}
		refs[cnt].name = lam__strndup(p, (size_t)(sp - p));
		if (refs[cnt].name == NULL) {
			rc = lam__error(LAM_ENOMEM, "out of memory");
			break;
		}
		memcpy(refs[cnt].id, sp + 1, 33);
		cnt++;
		p = nl + 1;
	}
	lam__free(text);
	if (rc < 0) {
		lam__refs_free(refs, cnt);
		return rc;
	}
	if (cnt > 1)
		qsort(refs, cnt, sizeof(*refs), ref_cmp);
	*out = refs;
	*n = cnt;
	return 0;
}

static int refs_write(lam_store *s, const lam__ref *refs, size_t n)
{
	lam__buf b = {0};
	int rc = 0;
	for (size_t i = 0; i < n && rc == 0; i++)
		rc = lam__buf_printf(&b, "%s %s\n", refs[i].name, refs[i].id);
	if (rc == 0)
		rc = lam__write_file_atomic(s->rootfd, "refs",
					    b.data ? b.data : "", b.len);
	lam__buf_free(&b);
	return rc;
}

static lam__ref *refs_find(lam__ref *refs, size_t n, const char *name)
{
	lam__ref key = {.name = (char *)name};
	return n ? bsearch(&key, refs, n, sizeof(*refs), ref_cmp) : NULL;
}

static int check_expected(const char *name, const lam__ref *cur,
			  const char *expected)
{
	if (expected == NULL)
		return 0;
	if (expected[0] == '\0') {
		if (cur != NULL)
			return lam__error(LAM_ECONFLICT,
					  "ref %s already exists (at %s)", name,
					  cur->id);
		return 0;
	}
	if (cur == NULL)
		return lam__error(LAM_ECONFLICT,
				  "ref %s does not exist (expected %s)", name,
				  expected);
	if (strcmp(cur->id, expected) != 0)
		return lam__error(LAM_ECONFLICT,
				  "ref %s holds %s, not the expected %s", name,
				  cur->id, expected);
	return 0;
}

/* Change one ref under the store lock: the lock makes read-compare-write a
 * single step for every process. */
static int ref_update(lam_store *s, const char *name, const char *id,
		      const char *expected)
{
	int lk = lam__store_lock(s);
	if (lk < 0)
		return lk;
	lam__ref *refs;
	size_t n;
	int rc = lam__refs_load(s, &refs, &n);
	if (rc < 0)
		goto out;
	lam__ref *cur = refs_find(refs, n, name);
	rc = check_expected(name, cur, expected);
	if (rc < 0)
		goto out_free;
	if (id != NULL) {
		/* gc and delete take this lock too: a layer present now stays
		 * until the ref that holds it is written. */
		char meta[64];
		snprintf(meta, sizeof(meta), "%s/meta", id);
		if (faccessat(s->layersfd, meta, F_OK, 0) < 0) {
			rc = lam__error(LAM_ENOTFOUND,
					"setting ref %s: layer %s was deleted",
					name, id);
			goto out_free;
		}
	}
	if (id == NULL) {
		if (cur == NULL) {
			rc = lam__error(LAM_ENOTFOUND, "ref %s not found",
					name);
			goto out_free;
		}
		lam__free(cur->name);
		size_t idx = (size_t)(cur - refs);
		memmove(cur, cur + 1, (n - idx - 1) * sizeof(*refs));
		n--;
	} else if (cur != NULL) {
		memcpy(cur->id, id, 33);
	} else {
		lam__ref *r = lam__realloc(refs, (n + 1) * sizeof(*refs));
		if (r == NULL) {
			rc = lam__error(LAM_ENOMEM, "out of memory");
			goto out_free;
		}
		refs = r;
		refs[n].name = lam__strdup(name);
		if (refs[n].name == NULL) {
			rc = lam__error(LAM_ENOMEM, "out of memory");
			goto out_free;
		}
		memcpy(refs[n].id, id, 33);
		n++;
		if (n > 1)
			qsort(refs, n, sizeof(*refs), ref_cmp);
	}
	rc = refs_write(s, refs, n);
out_free:
	lam__refs_free(refs, n);
out:
	lam__unlock(lk);
	return rc;
}

int lam_store_ref_set(lam_store *store, const char *name, const char *layer_id,
		      const char *expected)
{
	lam__error_reset();
	if (store == NULL || layer_id == NULL)
		return lam__error(LAM_EINVAL,
				  "lam_store_ref_set: NULL argument");
	int rc = lam_store_ref_check_name(name);
	if (rc < 0)
		return rc;
	lam__layer_rec rec;
	rc = lam__catalog_find(store, layer_id, &rec);
	if (rc < 0)
		return rc == LAM_ENOTFOUND ?
			       lam__error(LAM_ENOTFOUND,
					  "setting ref %s: layer '%s' not "
					  "found (give a full chain digest)",
					  name, layer_id) :
			       rc;
	return ref_update(store, name, rec.id, expected);
}

int lam_store_ref_delete(lam_store *store, const char *name,
			 const char *expected)
{
	lam__error_reset();
	if (store == NULL)
		return lam__error(LAM_EINVAL,
				  "lam_store_ref_delete: NULL store");
	int rc = lam_store_ref_check_name(name);
	if (rc < 0)
		return rc;
	return ref_update(store, name, NULL, expected);
}

int lam_store_ref_get(char **out, lam_store *store, const char *name)
{
	lam__error_reset();
	if (out == NULL)
		return lam__error(LAM_EINVAL, "lam_store_ref_get: out is NULL");
	*out = NULL;
	if (store == NULL)
		return lam__error(LAM_EINVAL, "lam_store_ref_get: NULL store");
	int rc = lam_store_ref_check_name(name);
	if (rc < 0)
		return rc;
	lam__ref *refs;
	size_t n;
	rc = lam__refs_load(store, &refs, &n);
	if (rc < 0)
		return rc;
	lam__ref *cur = refs_find(refs, n, name);
	if (cur == NULL)
		rc = lam__error(LAM_ENOTFOUND, "ref %s not found", name);
	else if ((*out = lam__strdup(cur->id)) == NULL)
		rc = lam__error(LAM_ENOMEM, "out of memory");
	lam__refs_free(refs, n);
	return rc;
}

int lam_store_ref_foreach(lam_store *store, lam_ref_cb cb, void *userdata)
{
	lam__error_reset();
	if (store == NULL || cb == NULL)
		return lam__error(LAM_EINVAL,
				  "lam_store_ref_foreach: NULL argument");
	lam__ref *refs;
	size_t n;
	int rc = lam__refs_load(store, &refs, &n);
	if (rc < 0)
		return rc;
	for (size_t i = 0; i < n && rc == 0; i++)
		rc = cb(refs[i].name, refs[i].id, userdata);
	lam__refs_free(refs, n);
	return rc;
}

static bool same_file(const struct stat *a, const struct stat *b)
{
	return a->st_ino == b->st_ino && a->st_size == b->st_size &&
	       a->st_mtim.tv_sec == b->st_mtim.tv_sec &&
	       a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
	       a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

int lam__refs_naming(lam_store *s, const char *id, char ***out, size_t *n)
{
	*out = NULL;
	*n = 0;
	struct stat st;
	if (fstatat(s->rootfd, "refs", &st, 0) < 0)
		memset(&st, 0, sizeof(st));
	pthread_mutex_lock(&s->mutex);
	int rc = 0;
	if (s->refs_cache == NULL || !same_file(&st, &s->refs_st)) {
		lam__ref *refs;
		size_t cnt;
		rc = lam__refs_load(s, &refs, &cnt);
		if (rc == 0) {
			lam__refs_free(s->refs_cache, s->nrefs_cache);
			s->refs_cache = refs;
			s->nrefs_cache = cnt;
			s->refs_st = st;
		}
	}
	for (size_t i = 0; rc == 0 && i < s->nrefs_cache; i++) {
		if (strcmp(s->refs_cache[i].id, id) != 0)
			continue;
		char **p = lam__realloc(*out, (*n + 1) * sizeof(*p));
		if (p == NULL ||
		    (p[*n] = lam__strdup(s->refs_cache[i].name)) == NULL) {
			if (p != NULL)
				*out = p;
			rc = lam__error(LAM_ENOMEM, "out of memory");
			break;
		}
		*out = p;
		(*n)++;
	}
	pthread_mutex_unlock(&s->mutex);
	if (rc < 0) {
		for (size_t i = 0; i < *n; i++)
			lam__free((*out)[i]);
		lam__free(*out);
		*out = NULL;
		*n = 0;
	}
	return rc;
}
