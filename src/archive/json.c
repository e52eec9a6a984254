/* SPDX-License-Identifier: MIT */
/*
 * A small JSON reader for image layouts: the whole document becomes a tree
 * of lam__json values. Input comes from strangers, so depth and sizes are
 * bounded and every error names the document.
 */
#include <stdio.h>
#include <string.h>

#include "archive/internal.h"

#define MAX_DEPTH 64

typedef struct parser {
	const char *p, *end, *start;
	const char *what;
} parser;

static int fail(parser *ps, const char *msg)
{
	return lam__error(LAM_ECORRUPT, "%s: malformed JSON at byte %zu: %s",
			  ps->what, (size_t)(ps->p - ps->start), msg);
}

static void ws(parser *ps)
{
	while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' ||
				   *ps->p == '\n' || *ps->p == '\r'))
		ps->p++;
}

static int hex4(parser *ps, uint32_t *out)
{
	if (ps->end - ps->p < 4)
		return fail(ps, "short \\u escape");
	uint32_t v = 0;
	for (int i = 0; i < 4; i++) {
		char c = ps->p[i];
		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= (uint32_t)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v |= (uint32_t)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			v |= (uint32_t)(c - 'A' + 10);
		else
			return fail(ps, "bad \\u escape");
	}
	ps->p += 4;
	*out = v;
	return 0;
}

static int put_utf8(lam__buf *b, uint32_t cp)
{
	char u[4];
	size_t n;
	if (cp < 0x80) {
		u[0] = (char)cp;
		n = 1;
	} else if (cp < 0x800) {
		u[0] = (char)(0xc0 | cp >> 6);
		u[1] = (char)(0x80 | (cp & 63));
		n = 2;
	} else if (cp < 0x10000) {
		u[0] = (char)(0xe0 | cp >> 12);
		u[1] = (char)(0x80 | ((cp >> 6) & 63));
		u[2] = (char)(0x80 | (cp & 63));
		n = 3;
	} else {
		u[0] = (char)(0xf0 | cp >> 18);
		u[1] = (char)(0x80 | ((cp >> 12) & 63));
		u[2] = (char)(0x80 | ((cp >> 6) & 63));
		u[3] = (char)(0x80 | (cp & 63));
		n = 4;
	}
	return lam__buf_add(b, u, n);
}

static int string(parser *ps, char **out, size_t *len)
{
	ps->p++; /* the quote */
	lam__buf b = {0};
	int rc = lam__buf_grow(&b, 16);
	while (rc == 0) {
		if (ps->p >= ps->end) {
			rc = fail(ps, "unterminated string");
			break;
		}
		char c = *ps->p++;
		if (c == '"')
			break;
		if ((unsigned char)c < 0x20) {
			rc = fail(ps, "control character in string");
			break;
		}
		if (c != '\\') {
			rc = lam__buf_add(&b, &c, 1);
			continue;
		}
		if (ps->p >= ps->end) {
			rc = fail(ps, "unterminated string");
			break;
		}
		c = *ps->p++;
		const char *esc = strchr("\"\\/bfnrt", c);
		if (c != 'u' && (esc == NULL || c == '\0')) {
			rc = fail(ps, "bad escape");
			break;
		}
		if (c != 'u') {
			static const char to[] = "\"\\/\b\f\n\r\t";
			rc = lam__buf_add(&b, &to[esc - "\"\\/bfnrt"], 1);
			continue;
		}
		uint32_t cp;
		rc = hex4(ps, &cp);
		if (rc == 0 && cp >= 0xd800 && cp < 0xdc00) {
			uint32_t lo;
			if (ps->end - ps->p < 6 || ps->p[0] != '\\' ||
			    ps->p[1] != 'u') {
				rc = fail(ps, "lone surrogate");
				break;
			}
			ps->p += 2;
			rc = hex4(ps, &lo);
			if (rc == 0 && (lo < 0xdc00 || lo >= 0xe000))
				rc = fail(ps, "bad surrogate pair");
			cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
		}
		if (rc == 0 && cp == 0)
			rc = fail(ps, "NUL in string");
		if (rc == 0)
			rc = put_utf8(&b, cp);
	}
	if (rc < 0) {
		lam__buf_free(&b);
		return rc;
	}
	b.data[b.len] = '\0';
	*out = b.data;
	*len = b.len;
	return 0;
}

static int value(parser *ps, lam__json *v, int depth);

static int push(lam__json *v, size_t *cap, lam__json **slot)
{
	if (v->n == *cap) {
		size_t c = *cap ? *cap * 2 : 8;
		lam__json *it = lam__realloc(v->items, c * sizeof(*it));
		if (it == NULL)
			return lam__error(LAM_ENOMEM, "out of memory");
		v->items = it;
		if (v->type == LAM__JSON_OBJECT) {
			char **k = lam__realloc(v->keys, c * sizeof(*k));
			if (k == NULL)
				return lam__error(LAM_ENOMEM, "out of memory");
			v->keys = k;
		}
		*cap = c;
	}
	*slot = &v->items[v->n];
	memset(*slot, 0, sizeof(**slot));
	return 0;
}

static int container(parser *ps, lam__json *v, int depth, bool obj)
{
	v->type = obj ? LAM__JSON_OBJECT : LAM__JSON_ARRAY;
	ps->p++;
	size_t cap = 0;
	ws(ps);
	if (ps->p < ps->end && *ps->p == (obj ? '}' : ']')) {
		ps->p++;
		return 0;
	}
	for (;;) {
		ws(ps);
		char *key = NULL;
		size_t kl;
		if (obj) {
			if (ps->p >= ps->end || *ps->p != '"')
				return fail(ps, "expected a key");
			int rc = string(ps, &key, &kl);
			if (rc < 0)
				return rc;
			ws(ps);
			if (ps->p >= ps->end || *ps->p != ':') {
				lam__free(key);
				return fail(ps, "expected ':'");
			}
			ps->p++;
		}
		lam__json *slot = NULL;
		int rc = push(v, &cap, &slot);
		if (rc < 0) {
			lam__free(key);
			return rc;
		}
		if (obj)
			v->keys[v->n] = key;
		v->n++;
		rc = value(ps, slot, depth + 1);
		if (rc < 0)
			return rc;
		ws(ps);
		if (ps->p < ps->end && *ps->p == ',') {
			ps->p++;
			continue;
		}
		if (ps->p < ps->end && *ps->p == (obj ? '}' : ']')) {
			ps->p++;
			return 0;
		}
		return fail(ps, obj ? "expected ',' or '}'" :
				      "expected ',' or ']'");
	}
}

static int value(parser *ps, lam__json *v, int depth)
{
	if (depth > MAX_DEPTH)
		return fail(ps, "nested too deeply");
	ws(ps);
	if (ps->p >= ps->end)
		return fail(ps, "unexpected end");
	v->raw = ps->p;
	int rc = 0;
	char c = *ps->p;
	if (c == '{' || c == '[') {
		rc = container(ps, v, depth, c == '{');
	} else if (c == '"') {
		v->type = LAM__JSON_STRING;
		rc = string(ps, &v->str, &v->len);
	} else if (c == '-' || (c >= '0' && c <= '9')) {
		const char *s = ps->p;
		if (*ps->p == '-')
			ps->p++;
		while (ps->p < ps->end &&
		       ((*ps->p >= '0' && *ps->p <= '9') || *ps->p == '.' ||
			*ps->p == 'e' || *ps->p == 'E' || *ps->p == '+' ||
			*ps->p == '-'))
			ps->p++;
		v->type = LAM__JSON_NUMBER;
		v->str = lam__strndup(s, (size_t)(ps->p - s));
		v->len = (size_t)(ps->p - s);
		if (v->str == NULL)
			rc = lam__error(LAM_ENOMEM, "out of memory");
	} else if (ps->end - ps->p >= 4 && memcmp(ps->p, "true", 4) == 0) {
		v->type = LAM__JSON_BOOL;
		v->b = true;
		ps->p += 4;
	} else if (ps->end - ps->p >= 5 && memcmp(ps->p, "false", 5) == 0) {
		v->type = LAM__JSON_BOOL;
		ps->p += 5;
	} else if (ps->end - ps->p >= 4 && memcmp(ps->p, "null", 4) == 0) {
		v->type = LAM__JSON_NULL;
		ps->p += 4;
	} else {
		rc = fail(ps, "unexpected character");
	}
	v->raw_len = (size_t)(ps->p - v->raw);
	return rc;
}

void lam__json_free(lam__json *j)
{
	if (j == NULL)
		return;
	for (size_t i = 0; i < j->n; i++) {
		lam__json_free(&j->items[i]);
		if (j->keys)
			lam__free(j->keys[i]);
	}
	lam__free(j->items);
	lam__free(j->keys);
	lam__free(j->str);
	memset(j, 0, sizeof(*j));
}

int lam__json_parse(lam__json *out, const char *text, size_t len,
		    const char *what)
{
	memset(out, 0, sizeof(*out));
	parser ps = {text, text + len, text, what};
	int rc = value(&ps, out, 0);
	if (rc == 0) {
		ws(&ps);
		if (ps.p != ps.end)
			rc = fail(&ps, "trailing data");
	}
	if (rc < 0)
		lam__json_free(out);
	return rc;
}

const lam__json *lam__json_get(const lam__json *obj, const char *key)
{
	if (obj == NULL || obj->type != LAM__JSON_OBJECT)
		return NULL;
	/* The last of duplicate keys wins, as in most readers. */
	for (size_t i = obj->n; i > 0; i--)
		if (strcmp(obj->keys[i - 1], key) == 0)
			return &obj->items[i - 1];
	return NULL;
}

const char *lam__json_str(const lam__json *obj, const char *key)
{
	const lam__json *v = lam__json_get(obj, key);
	return v && v->type == LAM__JSON_STRING ? v->str : NULL;
}

int lam__json_u64(const lam__json *obj, const char *key, uint64_t *out,
		  const char *what)
{
	const lam__json *v = lam__json_get(obj, key);
	if (v == NULL || v->type != LAM__JSON_NUMBER || v->len == 0 ||
	    v->len > 19)
		return lam__error(LAM_ECORRUPT, "%s: \"%s\" is not a size",
				  what, key);
	uint64_t x = 0;
	for (size_t i = 0; i < v->len; i++) {
		if (v->str[i] < '0' || v->str[i] > '9')
			return lam__error(LAM_ECORRUPT,
					  "%s: \"%s\" is not a size", what,
					  key);
		x = x * 10 + (uint64_t)(v->str[i] - '0');
	}
	*out = x;
	return 0;
}

int lam__json_quote(lam__buf *b, const char *s, size_t len)
{
	int rc = lam__buf_add(b, "\"", 1);
	for (size_t i = 0; rc == 0 && i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\')
			rc = lam__buf_printf(b, "\\%c", c);
		else if (c < 0x20)
			rc = lam__buf_printf(b, "\\u%04x", c);
		else
			rc = lam__buf_add(b, &s[i], 1);
	}
	if (rc == 0)
		rc = lam__buf_add(b, "\"", 1);
	return rc;
}
