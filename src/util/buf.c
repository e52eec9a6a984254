/* SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <string.h>
#include <uuid/uuid.h>

#include "util/internal.h"

int lam__buf_grow(lam__buf *b, size_t extra)
{
	if (extra > SIZE_MAX - b->len - 1)
		return lam__error(LAM_ENOMEM, "buffer too large");
	size_t need = b->len + extra + 1;
	if (need <= b->cap)
		return 0;
	size_t cap = b->cap ? b->cap : 64;
	while (cap < need)
		cap = cap > SIZE_MAX / 2 ? need : cap * 2;
	char *p = lam__realloc(b->data, cap);
	if (p == NULL)
		return lam__error(LAM_ENOMEM, "out of memory");
	b->data = p;
	b->cap = cap;
	return 0;
}

int lam__buf_add(lam__buf *b, const void *data, size_t len)
{
	int rc = lam__buf_grow(b, len);
	if (rc < 0)
		return rc;
	if (len != 0)
		memcpy(b->data + b->len, data, len);
	b->len += len;
	b->data[b->len] = '\0';
	return 0;
}

int lam__buf_puts(lam__buf *b, const char *s)
{
	return lam__buf_add(b, s, strlen(s));
}

int lam__buf_printf(lam__buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return lam__error(LAM_EINVAL, "bad format");
	int rc = lam__buf_grow(b, (size_t)n);
	if (rc < 0)
		return rc;
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
	return 0;
}

void lam__buf_free(lam__buf *b)
{
	lam__free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

int lam__path_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
	size_t n = alen < blen ? alen : blen;
	for (size_t i = 0; i < n; i++) {
		unsigned char ca = (unsigned char)a[i];
		unsigned char cb = (unsigned char)b[i];
		if (ca == cb)
			continue;
		/* '/' ranks below every byte so that "a/b" comes right after
		 * "a" and before "a.b". */
		unsigned int ka = ca == '/' ? 0 : ca;
		unsigned int kb = cb == '/' ? 0 : cb;
		return ka < kb ? -1 : 1;
	}
	return alen < blen ? -1 : alen > blen ? 1 : 0;
}

void lam__uuid_new(char out[37])
{
	uuid_t u;
	uuid_generate_random(u);
	uuid_unparse_lower(u, out);
}
