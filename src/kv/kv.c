/* SPDX-License-Identifier: MIT */
/*
 * A view's key/value namespace: its merged lower chain and its upper, the
 * resolution of a key through both, and the changes.
 *
 * A change outside a transaction is checked, written to the log as one
 * unit, and only then applied in memory, so that a failed write changes
 * nothing. In a transaction, changes apply at once (the view reads its own
 * writes) and queue in kv->pending; commit writes them as one unit, and
 * abort (or a failed commit) reloads the upper from the log, keeping the
 * volatile keys the transaction began with.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "kv/internal.h"

int64_t lam__kv_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

lam__kv *lam__kv_ref(lam__kv *kv)
{
	kv->refcount++;
	return kv;
}

static void kv_destroy(lam__kv *kv)
{
	lam__kv_upper_free(&kv->up);
	lam__kv_chain_unref(kv->lower);
	lam__close(&kv->logfd);
	lam__close(&kv->lockfd);
	lam__close(&kv->dirfd);
	lam__buf_free(&kv->pending);
	lam__buf_free(&kv->vsnap);
	lam__kv_notes_clear(kv);
	lam__free(kv->notes);
	if (kv->store)
		lam__store_unref(kv->store);
	lam__free(kv);
}

void lam__kv_unref(lam__kv *kv)
{
	if (kv && --kv->refcount == 0)
		kv_destroy(kv);
}

void lam__kv_view_free(struct lam__kv_view *kv)
{
	if (kv == NULL)
		return;
	kv->view = NULL;
	lam__kv_unref(kv);
}

int lam__kv_open(lam__kv **out, lam_store *s, const char *top_id, int dirfd,
		 bool readonly)
{
	lam__kv *kv;
	int rc;

	*out = NULL;
	kv = lam__calloc(1, sizeof(*kv));
	if (kv == NULL)
		return lam__error(LAM_ENOMEM, "out of memory");
	kv->refcount = 1;
	kv->store = lam__store_ref(s);
	kv->dirfd = kv->logfd = kv->lockfd = -1;
	kv->readonly = readonly;
	kv->max_value_size = LAM_KV_DEFAULT_MAX_VALUE_SIZE;
	snprintf(kv->base, sizeof(kv->base), "%s", top_id ? top_id : "");
	rc = lam__kv_chain_get(&kv->lower, s, kv->base);
	if (rc == 0 && dirfd >= 0) {
		kv->dirfd = fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
		if (kv->dirfd < 0)
			rc = lam__error_errno(errno, "opening the view folder");
		else
			rc = lam__kv_log_load(kv);
	}
	if (rc < 0) {
		kv_destroy(kv);
		return rc;
	}
	*out = kv;
	return 0;
}

static const char *view_base_id(lam_view *view)
{
	return view->base ? view->base->rec.id : "";
}

/* Reload a namespace from disk after a failure left memory and log apart,
 * keeping its volatile keys. */
static int kv_reload(lam__kv *kv)
{
	lam__kv_chain *lower = NULL;
	const char *base = kv->view ? view_base_id(kv->view) : kv->base;
	lam__buf snap = {0};
	int rc;

	rc = lam__kv_volatile_snapshot(kv, &snap);
	if (rc < 0)
		return rc;
	if (strcmp(base, kv->base) != 0) {
		rc = lam__kv_chain_get(&lower, kv->store, base);
		if (rc < 0) {
			lam__buf_free(&snap);
			return rc;
		}
		lam__kv_chain_unref(kv->lower);
		kv->lower = lower;
		snprintf(kv->base, sizeof(kv->base), "%s", base);
	}
	lam__kv_upper_free(&kv->up);
	kv->version++;
	lam__close(&kv->logfd);
	kv->log_end = 0;
	if (kv->dirfd >= 0)
		rc = lam__kv_log_load(kv);
	if (rc == 0)
		rc = lam__kv_raw_apply(kv, snap.data, snap.len, true);
	lam__buf_free(&snap);
	if (rc == 0)
		kv->stale = false;
	return rc;
}

int lam__kv_of_view(lam__kv **out, lam_view *view)
{
	int rc;

	*out = NULL;
	if (view == NULL)
		return lam__error(LAM_EINVAL, "no view");
	if (view->kv == NULL) {
		lam__kv *kv;
		rc = lam__kv_open(&kv, view->store, view_base_id(view),
				  view->viewfd, view->readonly);
		if (rc < 0)
			return rc;
		kv->view = view;
		view->kv = kv;
		/* The view's stored quotas apply from the start. */
		lam_view_quota q;
		if (lam__quota_limits(view, &q) == 0) {
			kv->max_keys = q.max_keys;
			kv->max_value_bytes = q.max_value_bytes;
		}
		lam__error_reset();
	}
	if (view->kv->stale) {
		rc = kv_reload(view->kv);
		if (rc < 0)
			return rc;
	}
	*out = view->kv;
	return 0;
}

/* Make sure a namespace that a key handle reaches is usable. */
int lam__kv_ready(lam__kv *kv)
{
	if (kv->stale)
		return kv_reload(kv);
	return 0;
}

void lam__kv_resolve(lam__kv *kv, const char *fold, size_t len, uint64_t hash,
		     lam__kv_res *out)
{
	lam__kv_ukey *k = lam__kv_upper_find(&kv->up, fold, len, hash);

	out->exists = false;
	out->up = k;
	out->low = -1;
	out->disp = NULL;
	out->disp_len = (uint32_t)len;
	if (k) {
		if (!(k->flags & LAM__U_EXISTS))
			return;
		out->exists = true;
		out->disp = k->path;
		if (!(k->flags & LAM__U_CUT))
			out->low = lam__kv_chain_find_key(kv->lower, fold, len,
							  hash);
		return;
	}
	if (kv->up.ncut > 0) {
		/* The nearest ancestor with an upper node decides whether the
		 * lower layers show below it. */
		for (size_t i = len; i-- > 0;) {
			if (fold[i] != '\\' && i != 0)
				continue;
			size_t plen = fold[i] == '\\' ? i : 0;
			lam__kv_ukey *a = lam__kv_upper_find(
				&kv->up, fold, plen,
				lam__kv_key_hash(fold, plen));
			if (a == NULL)
				continue;
			if (!(a->flags & LAM__U_EXISTS) ||
			    (a->flags & LAM__U_CUT))
				return;
			break;
		}
	}
	out->low = lam__kv_chain_find_key(kv->lower, fold, len, hash);
	if (out->low >= 0) {
		lam__kv_rec r;
		lam__kv_chain_rec(kv->lower, (size_t)out->low, &r);
		out->exists = true;
		out->disp = r.disp;
	} else if (len == 0) {
		/* The root exists in every view. */
		out->exists = true;
		out->disp = "";
	}
}

/* The current value (upper or lower) of a resolved key. */
bool lam__kv_lookup_value(lam__kv *kv, const lam__kv_res *res, const char *fold,
			  size_t len, uint64_t vhash, lam__kv_item *it)
{
	if (res->up) {
		lam__kv_uval *v =
			lam__kv_ukey_find_value(res->up, fold, len, vhash);
		if (v) {
			if (v->deleted)
				return false;
			it->disp = v->name;
			it->len = v->len;
			it->type = v->type;
			it->data = v->data;
			it->size = v->size;
			it->upper = true;
			return true;
		}
	}
	if (res->low >= 0) {
		int64_t i = lam__kv_chain_find_value(kv->lower, res->low, fold,
						     len, vhash);
		if (i >= 0) {
			lam__kv_rec r;
			lam__kv_chain_rec(kv->lower, (size_t)i, &r);
			it->disp = r.disp;
			it->len = r.len;
			it->type = r.type;
			it->data = r.data;
			it->size = r.size;
			it->upper = false;
			return true;
		}
	}
	return false;
}

/* Whether the lower layers hold the value (under the upper's cuts). */
static bool lower_has_value(lam__kv *kv, const lam__kv_res *res,
			    const char *fold, size_t len, uint64_t vhash)
{
	return res->low >= 0 && lam__kv_chain_find_value(kv->lower, res->low,
							 fold, len, vhash) >= 0;
}

static int erofs(const char *what)
{
	return lam__error_os(LAM_EPOSIX, EROFS, "%s: read-only", what);
}

int lam__kv_value_name(const char *name, char **fold_out, size_t *len_out)
{
	size_t len = name ? strlen(name) : 0;
	int rc = lam__kv_name_check(name ? name : "", len, true);
	char *fold;

	*fold_out = NULL;
	if (rc < 0)
		return rc;
	fold = lam__malloc(len + 1);
	if (fold == NULL)
		return lam__error(LAM_ENOMEM, "out of memory");
	lam__kv_fold(fold, name ? name : "", len);
	fold[len] = '\0';
	*fold_out = fold;
	*len_out = len;
	return 0;
}

/* Send a finished unit to the log (outside a transaction), or keep it
 * queued (inside one). On failure the unit is dropped. */
static int finish_unit(lam__kv *kv)
{
	int rc;

	if (kv->in_txn || kv->replaying)
		return 0;
	rc = lam__kv_log_flush_unit(kv);
	kv->pending.len = 0;
	return rc;
}

/* Deliver notes after a change that reached the log. */
static void deliver(lam__kv *kv)
{
	if (kv->in_txn || kv->replaying)
		return;
	if (kv->nnotes > 0)
		lam__kv_notify(kv, kv->notes, kv->nnotes);
	lam__kv_notes_clear(kv);
}

/* After a failed in-memory apply: memory no longer matches the log. */
static int apply_failed(lam__kv *kv, int rc)
{
	lam__error_saved saved;
	if (kv->replaying)
		return rc;
	lam__error_save(&saved);
	kv->stale = true;
	lam__error_restore(&saved);
	return rc;
}

static int note(lam__kv *kv, lam_change_kind kind, const char *key,
		size_t key_len, const char *value, size_t value_len)
{
	if (kv->replaying || kv->watches == NULL)
		return 0;
	int rc = lam__kv_note_add(kv, kind, key, key_len, value, value_len);
	return rc < 0 ? rc : 1;
}

/* Take back the note of a change that failed after all. */
static void note_pop(lam__kv *kv, int rc)
{
	if (rc == 1 && kv->nnotes > 0) {
		kv->nnotes--;
		lam__free(kv->notes[kv->nnotes].key);
		lam__free(kv->notes[kv->nnotes].value);
	}
}

static bool is_volatile(const lam__kv_ukey *k)
{
	return k && (k->flags & LAM__U_VOLATILE);
}

int lam__kv_create_key(lam__kv *kv, const lam__kv_path *p, bool vol,
		       int *created, int64_t mtime)
{
	lam__kv_res res;
	lam__kv_path q = {0};
	int rc;

	if (created)
		*created = 0;
	if (kv->readonly && !kv->replaying)
		return erofs(p->disp);
	lam__kv_resolve(kv, p->fold, p->len, p->hash, &res);
	if (res.exists)
		return 0;

	/* The deepest ancestor that exists gives the spelling of the
	 * path's start and decides whether the new key may be durable. */
	size_t alen = 0;
	lam__kv_res ares = {0};
	unsigned int adepth = 0;
	for (size_t i = p->len; i-- > 0;) {
		if (p->fold[i] != '\\')
			continue;
		lam__kv_resolve(kv, p->fold, i, lam__kv_key_hash(p->fold, i),
				&ares);
		if (ares.exists) {
			alen = i;
			break;
		}
	}
	if (alen == 0)
		lam__kv_resolve(kv, "", 0, lam__kv_key_hash("", 0), &ares);
	for (size_t i = 0; i < alen; i++)
		adepth += p->fold[i] == '\\';
	if (alen > 0)
		adepth++;
	if (is_volatile(ares.up) && !vol)
		return lam__error(LAM_EINVAL,
				  "cannot create durable key \"%s\" under "
				  "volatile key \"%.*s\"",
				  p->disp, (int)alen, ares.disp);
	if (!vol && !kv->replaying && kv->max_keys > 0 &&
	    kv->up.nchanged + (p->depth - adepth) > kv->max_keys)
		return lam__error(LAM_EQUOTA,
				  "creating \"%s\": the view's key quota (%lu "
				  "keys) is reached",
				  p->disp, (unsigned long)kv->max_keys);

	q.disp = lam__malloc(2 * p->len + 2);
	if (q.disp == NULL)
		return lam__error(LAM_ENOMEM, "out of memory");
	memcpy(q.disp, p->disp, p->len + 1);
	memcpy(q.disp, ares.disp, alen);
	q.fold = q.disp + p->len + 1;
	memcpy(q.fold, p->fold, p->len + 1);
	q.len = p->len;
	q.depth = p->depth;
	q.hash = p->hash;

	/* The note is made first: once the change is in the log, only the
	 * change in memory is left to fail. */
	int nrc = note(kv, LAM_CHANGE_ADDED, q.disp, q.len, NULL, 0);
	if (nrc < 0) {
		lam__kv_path_free(&q);
		return nrc;
	}
	if (!vol) {
		rc = lam__kv_log_op(kv, LAM__KV_OP_CREATE, p, NULL, 0, 0, NULL,
				    0, mtime);
		if (rc == 0)
			rc = finish_unit(kv);
		if (rc < 0) {
			note_pop(kv, nrc);
			lam__kv_path_free(&q);
			return rc;
		}
	}

	/* Apply: make the nodes, then mark each new one created. */
	lam__kv_ukey *k = NULL;
	rc = lam__kv_upper_node(&kv->up, &q, &k);
	if (rc < 0) {
		note_pop(kv, nrc);
		lam__kv_path_free(&q);
		return apply_failed(kv, rc);
	}
	for (lam__kv_ukey *n = k; n && n->len > alen; n = n->parent) {
		uint32_t f = n->flags;
		/* A key made again over its tombstone takes the new
		 * spelling. */
		memcpy(n->path, q.disp, n->len);
		if (!(f & LAM__U_EXISTS))
			f = LAM__U_OPAQUE | LAM__U_CUT;
		f |= LAM__U_EXISTS | LAM__U_CHANGED;
		if (vol)
			f |= LAM__U_VOLATILE;
		lam__kv_upper_set_flags(&kv->up, n, f);
		n->mtime = mtime;
	}
	kv->version++;
	if (created)
		*created = 1;
	lam__kv_path_free(&q);
	deliver(kv);
	return 0;
}

/* Whether a resolved key has any subkey. */
static int has_subkeys(lam__kv *kv, const lam__kv_path *p, bool *out)
{
	lam__kv_walk w;
	lam__kv_item it;
	int rc = lam__kv_walk_start(&w, kv, p, false);
	if (rc < 0)
		return rc;
	rc = lam__kv_walk_next(&w, &it);
	lam__kv_walk_free(&w);
	if (rc < 0)
		return rc;
	*out = rc > 0;
	return 0;
}

int lam__kv_delete_key(lam__kv *kv, const lam__kv_path *p, bool tree,
		       int64_t mtime)
{
	lam__kv_res res;
	int rc;

	if (kv->readonly && !kv->replaying)
		return erofs(p->disp);
	if (p->len == 0)
		return lam__error(LAM_EINVAL, "the root key cannot be deleted");
	lam__kv_resolve(kv, p->fold, p->len, p->hash, &res);
	if (!res.exists)
		return lam__error(LAM_ENOTFOUND, "no key \"%s\"", p->disp);
	if (!tree) {
		bool sub;
		rc = has_subkeys(kv, p, &sub);
		if (rc < 0)
			return rc;
		if (sub)
			return lam__error(LAM_EBUSY,
					  "key \"%s\" has subkeys; delete the "
					  "tree",
					  p->disp);
	}
	bool opaque = res.up && (res.up->flags & LAM__U_OPAQUE);
	bool tomb = opaque || res.low >= 0;
	/* A volatile key that hides nothing below vanishes without a trace
	 * in the log. */
	bool logged = tomb || !is_volatile(res.up);
	char *spelled = lam__strndup(res.disp, res.disp_len);
	if (spelled == NULL)
		return lam__error(LAM_ENOMEM, "out of memory");
	int nrc = note(kv, LAM_CHANGE_DELETED, spelled, p->len, NULL, 0);
	if (nrc < 0) {
		lam__free(spelled);
		return nrc;
	}
	if (logged) {
		rc = lam__kv_log_op(kv, LAM__KV_OP_DELETE, p, NULL, 0,
				    tree ? 1 : 0, NULL, 0, mtime);
		if (rc == 0)
			rc = finish_unit(kv);
		if (rc < 0) {
			note_pop(kv, nrc);
			lam__free(spelled);
			return rc;
		}
	}
	if (tomb) {
		lam__kv_ukey *k = res.up;
		if (k == NULL) {
			lam__kv_path q = *p;
			q.disp = spelled;
			rc = lam__kv_upper_node(&kv->up, &q, &k);
			if (rc < 0) {
				note_pop(kv, nrc);
				lam__free(spelled);
				return apply_failed(kv, rc);
			}
		}
		lam__kv_upper_clear(&kv->up, k);
		lam__kv_upper_set_flags(&kv->up, k, LAM__U_CUT);
		k->mtime = 0;
	} else {
		lam__kv_upper_remove(&kv->up, res.up);
	}
	kv->version++;
	lam__free(spelled);
	deliver(kv);
	return 0;
}

/* The upper node of an existing key, spelled as the key is. */
static int node_of(lam__kv *kv, const lam__kv_path *p, const lam__kv_res *res,
		   lam__kv_ukey **out)
{
	lam__kv_path q = *p;
	int rc;

	if (res->up) {
		*out = res->up;
		return 0;
	}
	q.disp = lam__strndup(res->disp, res->disp_len);
	if (q.disp == NULL)
		return lam__error(LAM_ENOMEM, "out of memory");
	rc = lam__kv_upper_node(&kv->up, &q, out);
	lam__free(q.disp);
	return rc;
}

/* The end of a change to one of key k's values: the change note taken
 * back when it failed, else the key marked changed and stamped, and the
 * watchers told. */
static int value_changed(lam__kv *kv, lam__kv_ukey *k, int rc, int nrc,
			 int64_t mtime)
{
	if (rc < 0) {
		note_pop(kv, nrc);
		return apply_failed(kv, rc);
	}
	lam__kv_upper_set_flags(&kv->up, k, k->flags | LAM__U_CHANGED);
	k->mtime = mtime;
	kv->version++;
	deliver(kv);
	return 0;
}

int lam__kv_set(lam__kv *kv, const lam__kv_path *p, const char *name,
		size_t name_len, uint32_t type, const void *data, size_t size,
		int64_t mtime)
{
	lam__kv_res res;
	lam__kv_item cur;
	char what[96];
	char *fold;
	int rc;

	if (kv->readonly && !kv->replaying)
		return erofs(p->disp);
	rc = lam__kv_name_check(name, name_len, true);
	if (rc < 0)
		return rc;
	snprintf(what, sizeof(what), "value \"%.*s\" of key \"%.*s\"",
		 (int)(name_len < 40 ? name_len : 40), name,
		 (int)(p->len < 40 ? p->len : 40), p->disp);
	rc = lam__kv_value_check(type, data, size, what);
	if (rc < 0)
		return rc;
	if (!kv->replaying && size > kv->max_value_size)
		return lam__error(LAM_EINVAL,
				  "%s: %zu bytes is over the cap of %lu bytes",
				  what, size,
				  (unsigned long)kv->max_value_size);
	lam__kv_resolve(kv, p->fold, p->len, p->hash, &res);
	if (!res.exists)
		return lam__error(LAM_ENOTFOUND, "no key \"%s\"", p->disp);
	fold = lam__malloc(name_len + 1);
	if (fold == NULL)
		return lam__error(LAM_ENOMEM, "out of memory");
	lam__kv_fold(fold, name, name_len);
	fold[name_len] = '\0';
	uint64_t vh = lam__kv_value_hash(p->hash, fold, name_len);
	bool existed = lam__kv_lookup_value(kv, &res, fold, name_len, vh, &cur);
	bool vol = is_volatile(res.up);

	if (!vol && !kv->replaying && kv->max_value_bytes > 0) {
		uint64_t old = 0;
		lam__kv_uval *v = res.up ? lam__kv_ukey_find_value(
						   res.up, fold, name_len, vh) :
					   NULL;
		if (v)
			old = v->size;
		if (kv->up.value_bytes - old + size > kv->max_value_bytes) {
			lam__free(fold);
			return lam__error(LAM_EQUOTA,
					  "%s: the view's value quota (%lu "
					  "bytes) would be exceeded",
					  what,
					  (unsigned long)kv->max_value_bytes);
		}
	}
	if (!vol && !kv->replaying && kv->max_keys > 0 &&
	    (res.up == NULL || !(res.up->flags & LAM__U_CHANGED)) &&
	    kv->up.nchanged + 1 > kv->max_keys) {
		lam__free(fold);
		return lam__error(LAM_EQUOTA,
				  "%s: the view's key quota (%lu keys) is "
				  "reached",
				  what, (unsigned long)kv->max_keys);
	}
	int nrc = note(kv, existed ? LAM_CHANGE_MODIFIED : LAM_CHANGE_ADDED,
		       res.disp, p->len, name, name_len);
	if (nrc < 0) {
		lam__free(fold);
		return nrc;
	}
	if (!vol) {
		rc = lam__kv_log_op(kv, LAM__KV_OP_SET, p, name, name_len, type,
				    data, size, mtime);
		if (rc == 0)
			rc = finish_unit(kv);
		if (rc < 0) {
			note_pop(kv, nrc);
			lam__free(fold);
			return rc;
		}
	}
	lam__kv_ukey *k = NULL;
	rc = node_of(kv, p, &res, &k);
	if (rc == 0)
		rc = lam__kv_ukey_set_value(&kv->up, k, name, fold,
					    (uint32_t)name_len, vh, type, data,
					    (uint32_t)size, false);
	lam__free(fold);
	return value_changed(kv, k, rc, nrc, mtime);
}

int lam__kv_unset(lam__kv *kv, const lam__kv_path *p, const char *name,
		  size_t name_len, int64_t mtime)
{
	lam__kv_res res;
	lam__kv_item cur;
	char *fold;
	int rc;

	if (kv->readonly && !kv->replaying)
		return erofs(p->disp);
	rc = lam__kv_name_check(name, name_len, true);
	if (rc < 0)
		return rc;
	lam__kv_resolve(kv, p->fold, p->len, p->hash, &res);
	if (!res.exists)
		return lam__error(LAM_ENOTFOUND, "no key \"%s\"", p->disp);
	fold = lam__malloc(name_len + 1);
	if (fold == NULL)
		return lam__error(LAM_ENOMEM, "out of memory");
	lam__kv_fold(fold, name, name_len);
	fold[name_len] = '\0';
	uint64_t vh = lam__kv_value_hash(p->hash, fold, name_len);
	if (!lam__kv_lookup_value(kv, &res, fold, name_len, vh, &cur)) {
		lam__free(fold);
		return lam__error(LAM_ENOTFOUND,
				  "key \"%s\" has no value \"%.*s\"", p->disp,
				  (int)name_len, name);
	}
	bool vol = is_volatile(res.up);
	int nrc =
		note(kv, LAM_CHANGE_DELETED, res.disp, p->len, name, name_len);
	if (nrc < 0) {
		lam__free(fold);
		return nrc;
	}
	if (!vol) {
		rc = lam__kv_log_op(kv, LAM__KV_OP_UNSET, p, name, name_len, 0,
				    NULL, 0, mtime);
		if (rc == 0)
			rc = finish_unit(kv);
		if (rc < 0) {
			note_pop(kv, nrc);
			lam__free(fold);
			return rc;
		}
	}
	bool lower = lower_has_value(kv, &res, fold, name_len, vh);
	lam__kv_ukey *k = NULL;
	rc = node_of(kv, p, &res, &k);
	if (rc == 0) {
		if (lower) {
			rc = lam__kv_ukey_set_value(&kv->up, k, name, fold,
						    (uint32_t)name_len, vh, 0,
						    NULL, 0, true);
		} else {
			lam__kv_uval *v =
				lam__kv_ukey_find_value(k, fold, name_len, vh);
			if (v)
				lam__kv_ukey_drop_value(&kv->up, k, v);
		}
	}
	lam__free(fold);
	return value_changed(kv, k, rc, nrc, mtime);
}

int lam__kv_begin(lam__kv *kv)
{
	int rc;

	if (kv->readonly)
		return erofs("key/value transaction");
	if (kv->in_txn)
		return lam__error(LAM_EBUSY,
				  "a key/value transaction is already open");
	kv->vsnap.len = 0;
	rc = lam__kv_volatile_snapshot(kv, &kv->vsnap);
	if (rc < 0)
		return rc;
	kv->pending.len = 0;
	kv->in_txn = true;
	return 0;
}

/* Undo the transaction's changes: reload the durable state, then put back
 * the volatile keys the transaction began with. */
static int rollback(lam__kv *kv)
{
	int rc;

	kv->in_txn = false;
	kv->pending.len = 0;
	lam__kv_notes_clear(kv);
	lam__kv_upper_free(&kv->up);
	kv->version++;
	lam__close(&kv->logfd);
	kv->log_end = 0;
	rc = kv->dirfd >= 0 ? lam__kv_log_load(kv) : 0;
	if (rc == 0)
		rc = lam__kv_raw_apply(kv, kv->vsnap.data, kv->vsnap.len, true);
	kv->vsnap.len = 0;
	if (rc < 0)
		kv->stale = true;
	return rc;
}

int lam__kv_commit(lam__kv *kv)
{
	int rc;

	if (!kv->in_txn)
		return lam__error(LAM_EINVAL,
				  "no key/value transaction is open");
	if (kv->pending.len == 0) {
		kv->in_txn = false;
		kv->vsnap.len = 0;
		deliver(kv);
		return 0;
	}
	rc = lam__kv_log_flush_unit(kv);
	if (rc < 0) {
		lam__error_saved saved;
		lam__error_save(&saved);
		rollback(kv);
		lam__error_restore(&saved);
		return rc;
	}
	kv->pending.len = 0;
	kv->in_txn = false;
	kv->vsnap.len = 0;
	deliver(kv);
	return 0;
}

int lam__kv_abort(lam__kv *kv)
{
	if (!kv->in_txn)
		return lam__error(LAM_EINVAL,
				  "no key/value transaction is open");
	return rollback(kv);
}
