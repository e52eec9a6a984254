/* SPDX-License-Identifier: MIT */
/*
 * The public key/value API (lamina/kv.h) over the namespace of kv.c.
 */
#include <endian.h>
#include <errno.h>
#include <string.h>

#include "kv/internal.h"

#define CHECK_OUT(out, fn)                                                 \
	do {                                                               \
		if ((out) == NULL)                                         \
			return lam__error(LAM_EINVAL, fn ": out is NULL"); \
		*(out) = NULL;                                             \
	} while (0)

static int key_new(lam_key **out, lam__kv *kv, lam__kv_path *p)
{
	lam__kv_res res;
	lam_key *k;

	lam__kv_resolve(kv, p->fold, p->len, p->hash, &res);
	if (!res.exists) {
		int rc = lam__error(LAM_ENOTFOUND, "no key \"%s\"", p->disp);
		lam__kv_path_free(p);
		return rc;
	}
	/* Spell the path as stored: a name that folds the same has the same
	 * length. */
	memcpy(p->disp, res.disp, p->len);
	k = lam__calloc(1, sizeof(*k));
	if (k == NULL) {
		lam__kv_path_free(p);
		return lam__error(LAM_ENOMEM, "out of memory");
	}
	k->kv = lam__kv_ref(kv);
	k->path = *p;
	const char *slash = strrchr(k->path.disp, '\\');
	k->name = slash ? slash + 1 : k->path.disp;
	*out = k;
	return 0;
}

static int parse(lam__kv_path *p, const lam_key *base, const char *path)
{
	if (path == NULL)
		return lam__error(LAM_EINVAL, "no key path");
	return lam__kv_path_parse(p, base ? base->path.disp : NULL,
				  base ? base->path.len : 0, path,
				  strlen(path));
}

int lam_key_open(lam_key **out, lam_view *view, const char *path,
		 unsigned int flags)
{
	lam__kv *kv;
	lam__kv_path p;
	int rc;

	lam__error_reset();
	CHECK_OUT(out, "lam_key_open");
	if (flags != 0)
		return lam__error(LAM_EINVAL, "lam_key_open: unknown flags");
	rc = lam__kv_of_view(&kv, view);
	if (rc == 0)
		rc = parse(&p, NULL, path);
	if (rc < 0)
		return rc;
	return key_new(out, kv, &p);
}

int lam_key_open_at(lam_key **out, lam_key *parent, const char *path,
		    unsigned int flags)
{
	lam__kv_path p;
	int rc;

	lam__error_reset();
	CHECK_OUT(out, "lam_key_open_at");
	if (parent == NULL || flags != 0)
		return lam__error(LAM_EINVAL, "lam_key_open_at: bad argument");
	rc = lam__kv_ready(parent->kv);
	if (rc == 0)
		rc = parse(&p, parent, path);
	if (rc < 0)
		return rc;
	return key_new(out, parent->kv, &p);
}

int lam_key_open_layer(lam_key **out, lam_layer *layer, const char *path)
{
	lam__kv *kv;
	lam__kv_path p;
	int rc;

	lam__error_reset();
	CHECK_OUT(out, "lam_key_open_layer");
	if (layer == NULL)
		return lam__error(LAM_EINVAL, "lam_key_open_layer: no layer");
	rc = parse(&p, NULL, path);
	if (rc < 0)
		return rc;
	rc = lam__kv_open(&kv, layer->store, layer->rec.id, -1, true);
	if (rc < 0) {
		lam__kv_path_free(&p);
		return rc;
	}
	rc = key_new(out, kv, &p);
	lam__kv_unref(kv);
	return rc;
}

static int create(lam_key **out, lam__kv *kv, lam__kv_path *p,
		  unsigned int flags, int *created)
{
	int rc;

	if (created)
		*created = 0;
	if (flags & ~(unsigned int)LAM_KEY_VOLATILE) {
		lam__kv_path_free(p);
		return lam__error(LAM_EINVAL, "lam_key_create: unknown flags");
	}
	rc = lam__kv_create_key(kv, p, flags & LAM_KEY_VOLATILE, created,
				lam__kv_now());
	if (rc < 0) {
		lam__kv_path_free(p);
		return rc;
	}
	return key_new(out, kv, p);
}

int lam_key_create(lam_key **out, lam_view *view, const char *path,
		   unsigned int flags, int *created)
{
	lam__kv *kv;
	lam__kv_path p;
	int rc;

	lam__error_reset();
	CHECK_OUT(out, "lam_key_create");
	rc = lam__kv_of_view(&kv, view);
	if (rc == 0)
		rc = parse(&p, NULL, path);
	if (rc < 0)
		return rc;
	return create(out, kv, &p, flags, created);
}

int lam_key_create_at(lam_key **out, lam_key *parent, const char *path,
		      unsigned int flags, int *created)
{
	lam__kv_path p;
	int rc;

	lam__error_reset();
	CHECK_OUT(out, "lam_key_create_at");
	if (parent == NULL)
		return lam__error(LAM_EINVAL, "lam_key_create_at: no parent");
	rc = lam__kv_ready(parent->kv);
	if (rc == 0)
		rc = parse(&p, parent, path);
	if (rc < 0)
		return rc;
	return create(out, parent->kv, &p, flags, created);
}

int lam_key_delete(lam_view *view, const char *path, unsigned int flags)
{
	lam__kv *kv;
	lam__kv_path p;
	int rc;

	lam__error_reset();
	if (flags & ~(unsigned int)LAM_KEY_TREE)
		return lam__error(LAM_EINVAL, "lam_key_delete: unknown flags");
	rc = lam__kv_of_view(&kv, view);
	if (rc == 0)
		rc = parse(&p, NULL, path);
	if (rc < 0)
		return rc;
	rc = lam__kv_delete_key(kv, &p, flags & LAM_KEY_TREE, lam__kv_now());
	lam__kv_path_free(&p);
	return rc;
}

void lam_key_free(lam_key *key)
{
	if (key == NULL)
		return;
	lam__kv_path_free(&key->path);
	lam__kv_unref(key->kv);
	lam__free(key);
}

const char *lam_key_path(const lam_key *key)
{
	return key ? key->path.disp : "";
}

const char *lam_key_name(const lam_key *key)
{
	return key ? key->name : "";
}

/* Resolve a handle's key, failing when it no longer exists. The result
 * is kept until the namespace changes, so that reading many values of one
 * key looks the key up once. */
static int resolve_key(lam_key *key, lam__kv_res *res)
{
	lam__kv *kv = key->kv;
	int rc = lam__kv_ready(kv);
	if (rc < 0)
		return rc;
	if (key->cached && key->cached_version == kv->version &&
	    key->cached_chain == kv->lower) {
		*res = key->cache;
	} else {
		lam__kv_resolve(kv, key->path.fold, key->path.len,
				key->path.hash, res);
		key->cache = *res;
		key->cached = true;
		key->cached_version = kv->version;
		key->cached_chain = kv->lower;
	}
	if (!res->exists)
		return lam__error(LAM_ENOTFOUND, "key \"%s\" was deleted",
				  key->path.disp);
	return 0;
}

/* The last-write time of a key of the lower chain: the nearest layer from
 * the winner down whose record of the key changed it. */
int64_t lam__kv_lower_mtime(const lam__kv_chain *c, int64_t i)
{
	const lam__kv_ment *e = &c->ents[i];
	lam__kv_rec r;

	lam__kv_chain_rec(c, (size_t)i, &r);
	if (r.mtime != 0 || (r.flags & LAM__KV_OPAQUE))
		return r.mtime;
	char *fold = lam__strndup(r.fold, r.len);
	int64_t t = 0;
	if (fold == NULL)
		return 0;
	for (size_t l = e->layer + 1; l < c->nlayers; l++) {
		const lam__kv_file *f = &c->files[l];
		uint64_t lo = 0, hi = f->count;
		lam__kv_rec probe = {.kind = LAM__KV_KEY};
		/* Binary search for the key record. */
		while (lo < hi) {
			uint64_t mid = lo + (hi - lo) / 2;
			lam__kv_rec m, key;
			const char *mp;
			uint32_t ml;
			lam__kv_file_get(f, mid, &m);
			if (m.kind == LAM__KV_KEY) {
				mp = m.fold;
				ml = m.len;
			} else {
				lam__kv_file_get(f, m.key, &key);
				mp = key.fold;
				ml = key.len;
			}
			if (lam__kv_rec_cmp(mp, ml, &m, fold,
					    (uint32_t)strlen(fold), &probe) < 0)
				lo = mid + 1;
			else
				hi = mid;
		}
		if (lo >= f->count)
			continue;
		lam__kv_rec m;
		lam__kv_file_get(f, lo, &m);
		if (m.kind != LAM__KV_KEY || m.len != strlen(fold) ||
		    memcmp(m.fold, fold, m.len) != 0)
			continue;
		if (m.flags & LAM__KV_DELETED)
			break;
		if (m.mtime != 0 || (m.flags & LAM__KV_OPAQUE)) {
			t = m.mtime;
			break;
		}
	}
	lam__free(fold);
	return t;
}

static uint32_t units16(const char *s, size_t len)
{
	size_t u = 0;
	lam__kv_utf8_check(s, len, NULL, &u);
	return (uint32_t)u;
}

int lam_key_info_get(lam_key *key, lam_key_info *out)
{
	lam__kv_res res;
	lam__kv_walk w;
	lam__kv_item it;
	int rc;

	lam__error_reset();
	if (key == NULL || out == NULL)
		return lam__error(LAM_EINVAL,
				  "lam_key_info_get: NULL argument");
	memset(out, 0, sizeof(*out));
	rc = resolve_key(key, &res);
	if (rc < 0)
		return rc;
	for (int pass = 0; pass < 2; pass++) {
		rc = lam__kv_walk_start(&w, key->kv, &key->path, pass == 1);
		if (rc < 0)
			return rc;
		while ((rc = lam__kv_walk_next(&w, &it)) > 0) {
			if (pass == 0) {
				uint32_t u = units16(it.disp + it.name_off,
						     it.len - it.name_off);
				out->subkeys++;
				if (u > out->max_subkey_name)
					out->max_subkey_name = u;
			} else {
				uint32_t u = units16(it.disp, it.len);
				out->values++;
				if (u > out->max_value_name)
					out->max_value_name = u;
				if (it.size > out->max_value_size)
					out->max_value_size = it.size;
			}
		}
		lam__kv_walk_free(&w);
		if (rc < 0)
			return rc;
	}
	int64_t t = 0;
	if (res.up && (res.up->flags & (LAM__U_CHANGED | LAM__U_OPAQUE)))
		t = res.up->mtime;
	else if (res.low >= 0)
		t = lam__kv_lower_mtime(key->kv->lower, res.low);
	if (res.up && (res.up->flags & LAM__U_VOLATILE))
		out->flags |= LAM_KEY_INFO_VOLATILE;
	out->last_write_sec = t / 1000000000;
	out->last_write_nsec = t % 1000000000;
	return 0;
}

struct lam_key_subkey_iter {
	lam__kv_walk w;
	lam__buf name;
};

struct lam_key_value_iter {
	lam__kv_walk w;
	lam__buf name;
};

int lam_key_subkey_iter_new(lam_key_subkey_iter **out, lam_key *key)
{
	lam_key_subkey_iter *it;
	int rc;

	lam__error_reset();
	CHECK_OUT(out, "lam_key_subkey_iter_new");
	if (key == NULL)
		return lam__error(LAM_EINVAL, "no key");
	rc = lam__kv_ready(key->kv);
	if (rc < 0)
		return rc;
	it = lam__calloc(1, sizeof(*it));
	if (it == NULL)
		return lam__error(LAM_ENOMEM, "out of memory");
	rc = lam__kv_walk_start(&it->w, key->kv, &key->path, false);
	if (rc < 0) {
		lam__free(it);
		return rc;
	}
	*out = it;
	return 0;
}

int lam_key_subkey_iter_next(lam_key_subkey_iter *iter, const char **name)
{
	lam__kv_item it;
	int rc;

	lam__error_reset();
	if (iter == NULL || name == NULL)
		return lam__error(LAM_EINVAL, "NULL argument");
	*name = NULL;
	rc = lam__kv_walk_next(&iter->w, &it);
	if (rc < 0)
		return rc;
	if (rc == 0)
		return LAM_ITEROVER;
	*name = it.disp + it.name_off;
	return 0;
}

void lam_key_subkey_iter_free(lam_key_subkey_iter *iter)
{
	if (iter == NULL)
		return;
	lam__kv_walk_free(&iter->w);
	lam__buf_free(&iter->name);
	lam__free(iter);
}

int lam_key_value_iter_new(lam_key_value_iter **out, lam_key *key)
{
	lam_key_value_iter *it;
	int rc;

	lam__error_reset();
	CHECK_OUT(out, "lam_key_value_iter_new");
	if (key == NULL)
		return lam__error(LAM_EINVAL, "no key");
	rc = lam__kv_ready(key->kv);
	if (rc < 0)
		return rc;
	it = lam__calloc(1, sizeof(*it));
	if (it == NULL)
		return lam__error(LAM_ENOMEM, "out of memory");
	rc = lam__kv_walk_start(&it->w, key->kv, &key->path, true);
	if (rc < 0) {
		lam__free(it);
		return rc;
	}
	*out = it;
	return 0;
}

int lam_key_value_iter_next(lam_key_value_iter *iter, lam_kv_value *out)
{
	lam__kv_item it;
	int rc;

	lam__error_reset();
	if (iter == NULL || out == NULL)
		return lam__error(LAM_EINVAL, "NULL argument");
	memset(out, 0, sizeof(*out));
	rc = lam__kv_walk_next(&iter->w, &it);
	if (rc < 0)
		return rc;
	if (rc == 0)
		return LAM_ITEROVER;
	out->name = it.disp;
	out->type = it.type;
	out->data = it.data;
	out->size = it.size;
	return 0;
}

void lam_key_value_iter_free(lam_key_value_iter *iter)
{
	if (iter == NULL)
		return;
	lam__kv_walk_free(&iter->w);
	lam__buf_free(&iter->name);
	lam__free(iter);
}

int lam_key_set_value(lam_key *key, const char *name, uint32_t type,
		      const void *data, size_t size)
{
	int rc;

	lam__error_reset();
	if (key == NULL)
		return lam__error(LAM_EINVAL, "no key");
	rc = lam__kv_ready(key->kv);
	if (rc < 0)
		return rc;
	if (name == NULL)
		name = "";
	return lam__kv_set(key->kv, &key->path, name, strlen(name), type, data,
			   size, lam__kv_now());
}

/* Find a value of a resolved key. */
static int find_value(lam__kv *kv, const lam__kv_path *p,
		      const lam__kv_res *res, const char *name,
		      lam__kv_item *it)
{
	char small[256], *fold = small;
	size_t len = name ? strlen(name) : 0;
	int rc = lam__kv_name_check(name ? name : "", len, true);
	if (rc < 0)
		return rc;
	if (len >= sizeof(small)) {
		fold = lam__malloc(len + 1);
		if (fold == NULL)
			return lam__error(LAM_ENOMEM, "out of memory");
	}
	lam__kv_fold(fold, name ? name : "", len);
	bool found = lam__kv_lookup_value(
		kv, res, fold, len, lam__kv_value_hash(p->hash, fold, len), it);
	if (fold != small)
		lam__free(fold);
	if (!found)
		return lam__error(LAM_ENOTFOUND,
				  "key \"%s\" has no value \"%s\"", p->disp,
				  name ? name : "");
	return 0;
}

static int copy_out(const lam__kv_item *it, const char *name, uint32_t *type,
		    void *buf, size_t size, size_t *needed)
{
	if (type)
		*type = it->type;
	if (needed)
		*needed = it->size;
	if (buf == NULL)
		return 0;
	if (size < it->size)
		return lam__error_os(LAM_EPOSIX, ERANGE,
				     "value \"%s\" needs %u bytes, the buffer "
				     "holds %zu",
				     name ? name : "", it->size, size);
	if (it->size > 0)
		memcpy(buf, it->data, it->size);
	return 0;
}

int lam_key_get_value(lam_key *key, const char *name, uint32_t *type, void *buf,
		      size_t size, size_t *needed)
{
	lam__kv_res res;
	lam__kv_item it;
	int rc;

	lam__error_reset();
	if (key == NULL)
		return lam__error(LAM_EINVAL, "no key");
	rc = resolve_key(key, &res);
	if (rc == 0)
		rc = find_value(key->kv, &key->path, &res, name, &it);
	if (rc < 0)
		return rc;
	return copy_out(&it, name, type, buf, size, needed);
}

int lam_key_delete_value(lam_key *key, const char *name)
{
	int rc;

	lam__error_reset();
	if (key == NULL)
		return lam__error(LAM_EINVAL, "no key");
	rc = lam__kv_ready(key->kv);
	if (rc < 0)
		return rc;
	if (name == NULL)
		name = "";
	return lam__kv_unset(key->kv, &key->path, name, strlen(name),
			     lam__kv_now());
}

/* A value read whole, for the typed getters. */
static int get_item(lam_key *key, const char *name, lam__kv_item *it)
{
	lam__kv_res res;
	int rc;

	lam__error_reset();
	if (key == NULL)
		return lam__error(LAM_EINVAL, "no key");
	rc = resolve_key(key, &res);
	if (rc == 0)
		rc = find_value(key->kv, &key->path, &res, name, it);
	return rc;
}

static int wrong_type(const char *name, uint32_t type, const char *want)
{
	return lam__error(LAM_EINVAL, "value \"%s\" is a %s, not a %s",
			  name ? name : "", lam_kv_type_name(type), want);
}

int lam_key_set_dword(lam_key *key, const char *name, uint32_t value)
{
	uint32_t le = htole32(value);
	return lam_key_set_value(key, name, LAM_KV_DWORD, &le, 4);
}

int lam_key_get_dword(lam_key *key, const char *name, uint32_t *out)
{
	lam__kv_item it;
	uint32_t v;
	int rc = get_item(key, name, &it);

	if (rc < 0)
		return rc;
	if (out == NULL)
		return lam__error(LAM_EINVAL, "no output");
	if (it.type != LAM_KV_DWORD && it.type != LAM_KV_DWORD_BIG_ENDIAN)
		return wrong_type(name, it.type, "REG_DWORD");
	memcpy(&v, it.data, 4);
	*out = it.type == LAM_KV_DWORD ? le32toh(v) : be32toh(v);
	return 0;
}

int lam_key_set_qword(lam_key *key, const char *name, uint64_t value)
{
	uint64_t le = htole64(value);
	return lam_key_set_value(key, name, LAM_KV_QWORD, &le, 8);
}

int lam_key_get_qword(lam_key *key, const char *name, uint64_t *out)
{
	lam__kv_item it;
	int rc = get_item(key, name, &it);

	if (rc < 0)
		return rc;
	if (out == NULL)
		return lam__error(LAM_EINVAL, "no output");
	if (it.type == LAM_KV_QWORD) {
		uint64_t v;
		memcpy(&v, it.data, 8);
		*out = le64toh(v);
		return 0;
	}
	if (it.type == LAM_KV_DWORD || it.type == LAM_KV_DWORD_BIG_ENDIAN) {
		uint32_t v;
		memcpy(&v, it.data, 4);
		*out = it.type == LAM_KV_DWORD ? le32toh(v) : be32toh(v);
		return 0;
	}
	return wrong_type(name, it.type, "REG_QWORD");
}

static bool string_type(uint32_t type)
{
	return type == LAM_KV_SZ || type == LAM_KV_EXPAND_SZ ||
	       type == LAM_KV_LINK;
}

int lam_key_set_string(lam_key *key, const char *name, uint32_t type,
		       const char *value)
{
	if (!string_type(type)) {
		lam__error_reset();
		return lam__error(LAM_EINVAL,
				  "lam_key_set_string: %s is not a string type",
				  lam_kv_type_name(type));
	}
	if (value == NULL) {
		lam__error_reset();
		return lam__error(LAM_EINVAL, "lam_key_set_string: no string");
	}
	return lam_key_set_value(key, name, type, value, strlen(value) + 1);
}

int lam_key_get_string(char **out, lam_key *key, const char *name,
		       uint32_t *type)
{
	lam__kv_item it;
	int rc;

	if (out == NULL) {
		lam__error_reset();
		return lam__error(LAM_EINVAL,
				  "lam_key_get_string: out is NULL");
	}
	*out = NULL;
	rc = get_item(key, name, &it);
	if (rc < 0)
		return rc;
	if (!string_type(it.type))
		return wrong_type(name, it.type, "string");
	*out = lam__strndup(it.data, it.size ? it.size - 1 : 0);
	if (*out == NULL)
		return lam__error(LAM_ENOMEM, "out of memory");
	if (type)
		*type = it.type;
	return 0;
}

int lam_key_set_multi_sz(lam_key *key, const char *name,
			 const char *const *strings, size_t count)
{
	lam__buf b = {0};
	int rc = 0;

	lam__error_reset();
	if (strings == NULL && count > 0)
		return lam__error(LAM_EINVAL,
				  "lam_key_set_multi_sz: no strings");
	for (size_t i = 0; rc == 0 && i < count; i++) {
		if (strings[i] == NULL || strings[i][0] == '\0') {
			lam__buf_free(&b);
			return lam__error(LAM_EINVAL,
					  "value \"%s\": string %zu of a "
					  "REG_MULTI_SZ is empty",
					  name ? name : "", i);
		}
		rc = lam__buf_add(&b, strings[i], strlen(strings[i]) + 1);
	}
	if (rc == 0)
		rc = lam__buf_add(&b, "", 1);
	if (rc == 0)
		rc = lam_key_set_value(key, name, LAM_KV_MULTI_SZ, b.data,
				       b.len);
	lam__buf_free(&b);
	return rc;
}

int lam_key_get_multi_sz(char ***out, size_t *count, lam_key *key,
			 const char *name)
{
	lam__kv_item it;
	size_t n = 0;
	int rc;

	if (out == NULL) {
		lam__error_reset();
		return lam__error(LAM_EINVAL,
				  "lam_key_get_multi_sz: out is NULL");
	}
	*out = NULL;
	if (count)
		*count = 0;
	rc = get_item(key, name, &it);
	if (rc < 0)
		return rc;
	if (it.type != LAM_KV_MULTI_SZ)
		return wrong_type(name, it.type, "REG_MULTI_SZ");
	const char *d = it.data;
	for (size_t i = 0; i + 1 < it.size; i += strlen(d + i) + 1)
		n++;
	char **v = lam__malloc((n + 1) * sizeof(char *) + it.size);
	if (v == NULL)
		return lam__error(LAM_ENOMEM, "out of memory");
	char *s = (char *)(v + n + 1);
	memcpy(s, d, it.size);
	size_t j = 0;
	for (size_t i = 0; i + 1 < it.size; i += strlen(s + i) + 1)
		v[j++] = s + i;
	v[n] = NULL;
	*out = v;
	if (count)
		*count = n;
	return 0;
}

int lam_kv_get_value(lam_view *view, const char *path, const char *name,
		     uint32_t *type, void *buf, size_t size, size_t *needed)
{
	lam__kv *kv;
	lam__kv_path p;
	lam__kv_res res;
	lam__kv_item it;
	int rc;

	lam__error_reset();
	rc = lam__kv_of_view(&kv, view);
	if (rc == 0)
		rc = parse(&p, NULL, path);
	if (rc < 0)
		return rc;
	lam__kv_resolve(kv, p.fold, p.len, p.hash, &res);
	if (!res.exists)
		rc = lam__error(LAM_ENOTFOUND, "no key \"%s\"", p.disp);
	else
		rc = find_value(kv, &p, &res, name, &it);
	if (rc == 0)
		rc = copy_out(&it, name, type, buf, size, needed);
	lam__kv_path_free(&p);
	return rc;
}

int lam_kv_set_value(lam_view *view, const char *path, const char *name,
		     uint32_t type, const void *data, size_t size)
{
	lam__kv *kv;
	lam__kv_path p;
	int rc;

	lam__error_reset();
	rc = lam__kv_of_view(&kv, view);
	if (rc == 0)
		rc = parse(&p, NULL, path);
	if (rc < 0)
		return rc;
	if (name == NULL)
		name = "";
	/* Check the value before the key is made, so that a bad value
	 * leaves nothing behind. */
	rc = lam__kv_name_check(name, strlen(name), true);
	if (rc == 0)
		rc = lam__kv_value_check(type, data, size, name);
	if (rc == 0 && size > kv->max_value_size)
		rc = lam__error(LAM_EINVAL,
				"value \"%s\": %zu bytes is over the cap of "
				"%lu bytes",
				name, size, (unsigned long)kv->max_value_size);
	int64_t now = lam__kv_now();
	if (rc == 0)
		rc = lam__kv_create_key(kv, &p, false, NULL, now);
	if (rc == 0)
		rc = lam__kv_set(kv, &p, name, strlen(name), type, data, size,
				 now);
	lam__kv_path_free(&p);
	return rc;
}

int lam_kv_configure(lam_view *view, const lam_kv_options *options)
{
	lam_kv_options def = LAM_KV_OPTIONS_INIT;
	lam__kv *kv;
	int rc;

	lam__error_reset();
	if (options == NULL)
		options = &def;
	if (options->version != LAM_KV_OPTIONS_VERSION)
		return lam__error(LAM_EINVAL,
				  "lam_kv_configure: options version %u",
				  options->version);
	if (options->max_value_size == 0 ||
	    options->max_value_size > UINT32_MAX)
		return lam__error(LAM_EINVAL,
				  "lam_kv_configure: max_value_size must be 1 "
				  "to 4 GiB - 1");
	if (options->flags & ~(unsigned int)LAM_KV_NOSYNC)
		return lam__error(LAM_EINVAL,
				  "lam_kv_configure: unknown flags");
	rc = lam__kv_of_view(&kv, view);
	if (rc < 0)
		return rc;
	kv->nosync = options->flags & LAM_KV_NOSYNC;
	kv->max_value_size = options->max_value_size;
	kv->max_keys = options->max_keys;
	kv->max_value_bytes = options->max_value_bytes;
	return 0;
}

/* The calls that only find the view's key/value state and act on it. */
static int on_view_kv(lam_view *view, int (*fn)(lam__kv *kv))
{
	lam__error_reset();
	lam__kv *kv;
	int rc = lam__kv_of_view(&kv, view);
	return rc < 0 ? rc : fn(kv);
}

int lam_kv_txn_begin(lam_view *view)
{
	return on_view_kv(view, lam__kv_begin);
}

int lam_kv_txn_commit(lam_view *view)
{
	return on_view_kv(view, lam__kv_commit);
}

int lam_kv_txn_abort(lam_view *view)
{
	return on_view_kv(view, lam__kv_abort);
}

int lam_kv_flush(lam_view *view)
{
	return on_view_kv(view, lam__kv_log_sync);
}
