/* SPDX-License-Identifier: MIT */
/*
 * Watches: changes made through a view are noted while they are made and
 * delivered once they reached the log (at once, or when the transaction
 * commits): each watch whose key they touch gets its callback called and
 * its eventfd bumped.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "kv/internal.h"

struct lam_kv_watch {
	lam__kv *kv;
	char *fold; /* the watched key's folded path */
	size_t len;
	bool subtree;
	bool stopped;
	lam_kv_change_cb cb;
	void *userdata;
	int efd;
	struct lam_kv_watch *next;
};

void lam__kv_notes_clear(lam__kv *kv)
{
	for (size_t i = 0; i < kv->nnotes; i++) {
		lam__free(kv->notes[i].key);
		lam__free(kv->notes[i].value);
	}
	kv->nnotes = 0;
}

int lam__kv_note_add(lam__kv *kv, lam_change_kind kind, const char *key,
		     size_t key_len, const char *value, size_t value_len)
{
	lam__kv_note n = {.kind = kind};

	if (kv->nnotes == kv->capnotes) {
		size_t cap = kv->capnotes ? kv->capnotes * 2 : 8;
		lam__kv_note *v = lam__realloc(kv->notes, cap * sizeof(*v));
		if (v == NULL)
			return lam__error(LAM_ENOMEM, "out of memory");
		kv->notes = v;
		kv->capnotes = cap;
	}
	n.key = lam__malloc(2 * key_len + 2);
	if (n.key) {
		memcpy(n.key, key, key_len);
		n.key[key_len] = '\0';
		n.fold = n.key + key_len + 1;
		lam__kv_fold(n.fold, key, key_len);
		n.fold[key_len] = '\0';
		n.len = key_len;
	}
	if (value)
		n.value = lam__strndup(value, value_len);
	if (n.key == NULL || (value && n.value == NULL)) {
		lam__free(n.key);
		lam__free(n.value);
		return lam__error(LAM_ENOMEM, "out of memory");
	}
	kv->notes[kv->nnotes++] = n;
	return 0;
}

/* Whether a change to key (folded, klen) touches the watch. A change to
 * a key itself (no value) also touches the watch of its parent, and the
 * deletion of a key touches every watch below it. */
static bool touches(const lam_kv_watch *w, const char *key, size_t klen,
		    const lam__kv_note *n)
{
	bool under = w->len == 0 ? klen > 0 :
				   klen > w->len && key[w->len] == '\\' &&
					   memcmp(key, w->fold, w->len) == 0;
	if (klen == w->len && memcmp(key, w->fold, klen) == 0)
		return true;
	if (w->subtree && under)
		return true;
	if (under && n->value == NULL &&
	    memchr(key + w->len + (w->len ? 1 : 0), '\\',
		   klen - w->len - (w->len ? 1 : 0)) == NULL)
		return true;
	if (n->value == NULL && n->kind == LAM_CHANGE_DELETED &&
	    w->len > klen && (klen == 0 || w->fold[klen] == '\\') &&
	    memcmp(w->fold, key, klen) == 0)
		return true;
	return false;
}

void lam__kv_notify(lam__kv *kv, const lam__kv_note *notes, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		for (lam_kv_watch *w = kv->watches; w; w = w->next) {
			if (w->stopped ||
			    !touches(w, notes[i].fold, notes[i].len, &notes[i]))
				continue;
			if (w->efd >= 0) {
				uint64_t one = 1;
				ssize_t r = write(w->efd, &one, sizeof(one));
				(void)r; /* a full counter already signals */
			}
			if (w->cb && w->cb(notes[i].kind, notes[i].key,
					   notes[i].value, w->userdata) != 0)
				w->stopped = true;
		}
	}
}

int lam_key_watch(lam_kv_watch **out, lam_key *key, unsigned int flags,
		  lam_kv_change_cb cb, void *userdata)
{
	lam_kv_watch *w;

	lam__error_reset();
	if (out == NULL || key == NULL)
		return lam__error(LAM_EINVAL, "lam_key_watch: NULL argument");
	*out = NULL;
	if (flags & ~(unsigned int)LAM_KV_WATCH_SUBTREE)
		return lam__error(LAM_EINVAL, "lam_key_watch: unknown flags");
	if (key->kv->readonly)
		return lam__error(LAM_EINVAL,
				  "key \"%s\" is read-only (a committed "
				  "layer's, or a read-only view's): it never "
				  "changes",
				  key->path.disp);
	w = lam__calloc(1, sizeof(*w));
	if (w == NULL)
		return lam__error(LAM_ENOMEM, "out of memory");
	w->fold = lam__strndup(key->path.fold, key->path.len);
	if (w->fold == NULL) {
		lam__free(w);
		return lam__error(LAM_ENOMEM, "out of memory");
	}
	w->len = key->path.len;
	w->subtree = flags & LAM_KV_WATCH_SUBTREE;
	w->cb = cb;
	w->userdata = userdata;
	w->efd = -1;
	w->kv = lam__kv_ref(key->kv);
	w->next = w->kv->watches;
	w->kv->watches = w;
	*out = w;
	return 0;
}

int lam_kv_watch_fd(lam_kv_watch *watch)
{
	lam__error_reset();
	if (watch == NULL)
		return lam__error(LAM_EINVAL, "lam_kv_watch_fd: NULL watch");
	if (watch->efd < 0) {
		watch->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (watch->efd < 0)
			return lam__error_os(LAM_EIO, errno,
					     "making the watch's eventfd");
	}
	return watch->efd;
}

void lam_kv_watch_free(lam_kv_watch *watch)
{
	if (watch == NULL)
		return;
	for (lam_kv_watch **pp = &watch->kv->watches; *pp; pp = &(*pp)->next) {
		if (*pp == watch) {
			*pp = watch->next;
			break;
		}
	}
	if (watch->efd >= 0)
		close(watch->efd);
	lam__kv_unref(watch->kv);
	lam__free(watch->fold);
	lam__free(watch);
}
