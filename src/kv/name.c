/* SPDX-License-Identifier: MIT */
/*
 * Key and value names: UTF-8 validation, the case fold, the registry's
 * limits, and key paths with '\' between names.
 *
 * The fold is simple (one code point to one code point) and keeps the byte
 * length of every character, so a folded name is exactly as long as the
 * name: the two can share offsets and lengths. docs/kv.md lists what it
 * folds.
 */
#include <string.h>
#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

#include "kv/internal.h"

/* Decode one UTF-8 character at s[i]; returns its length (1 to 4) and the
 * code point, or 0 when the bytes are not well-formed UTF-8 (overlong
 * forms, surrogates and code points past U+10FFFF are refused). */
static size_t utf8_decode(const unsigned char *s, size_t len, size_t i,
			  uint32_t *cp)
{
	unsigned char c = s[i];
	uint32_t v;
	size_t n;
	uint32_t min;

	if (c < 0x80) {
		*cp = c;
		return 1;
	}
	if (c >= 0xc2 && c <= 0xdf) {
		n = 2;
		v = c & 0x1f;
		min = 0x80;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		v = c & 0x0f;
		min = 0x800;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		v = c & 0x07;
		min = 0x10000;
	} else {
		return 0;
	}
	if (len - i < n)
		return 0;
	for (size_t k = 1; k < n; k++) {
		if ((s[i + k] & 0xc0) != 0x80)
			return 0;
		v = (v << 6) | (s[i + k] & 0x3f);
	}
	if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
		return 0;
	*cp = v;
	return n;
}

int lam__kv_utf8_check(const char *s, size_t len, size_t *bad_at,
		       size_t *units16)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t units = 0;

	for (size_t i = 0; i < len;) {
		uint32_t cp;
		size_t n;

		if (u[i] < 0x80) {
			if (u[i] == 0) {
				if (bad_at)
					*bad_at = i;
				return -1;
			}
			i++;
			units++;
			continue;
		}
		n = utf8_decode(u, len, i, &cp);
		if (n == 0) {
			if (bad_at)
				*bad_at = i;
			return -1;
		}
		units += cp >= 0x10000 ? 2 : 1;
		i += n;
	}
	if (units16)
		*units16 = units;
	return 0;
}

size_t lam__kv_utf8_put(char *out, uint32_t cp)
{
	unsigned char *o = (unsigned char *)out;

	if (cp < 0x80) {
		o[0] = (unsigned char)cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = (unsigned char)(0xc0 | (cp >> 6));
		o[1] = (unsigned char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = (unsigned char)(0xe0 | (cp >> 12));
		o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
		o[2] = (unsigned char)(0x80 | (cp & 0x3f));
		return 3;
	}
	o[0] = (unsigned char)(0xf0 | (cp >> 18));
	o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
	o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
	o[3] = (unsigned char)(0x80 | (cp & 0x3f));
	return 4;
}

size_t lam__kv_utf8_next(const char *s, size_t len, size_t i, uint32_t *cp)
{
	return utf8_decode((const unsigned char *)s, len, i, cp);
}

/*
 * The simple fold, to lower case. Every mapping keeps the UTF-8 length of
 * the character (checked for each range below), which is what lets the
 * folded form share offsets with the name.
 */
static uint32_t fold_cp(uint32_t c)
{
	/* Basic Latin. */
	if (c >= 'A' && c <= 'Z')
		return c + 0x20;
	if (c < 0xc0)
		return c;
	/* Latin-1 Supplement: À..Þ except ×. */
	if (c <= 0xde)
		return c == 0xd7 ? c : c + 0x20;
	if (c < 0x100)
		return c;
	/* Latin Extended-A: upper case at the even code points of
	 * U+0100..U+012F and U+0132..U+0137 and U+014A..U+0177, at the odd
	 * ones of U+0139..U+0148 and U+0179..U+017E; Ÿ folds to ÿ, which
	 * is two bytes as well. İ and ı are left alone (Turkish dotted and
	 * dotless i have no one-to-one fold). */
	if (c < 0x180) {
		if ((c <= 0x12f || (c >= 0x132 && c <= 0x137) ||
		     (c >= 0x14a && c <= 0x177)) &&
		    (c & 1) == 0)
			return c + 1;
		if (((c >= 0x139 && c <= 0x148) ||
		     (c >= 0x179 && c <= 0x17e)) &&
		    (c & 1) == 1)
			return c + 1;
		if (c == 0x178)
			return 0xff;
		return c;
	}
	/* Greek: Ά Έ Ή Ί Ό Ύ Ώ and Α..Ω (no capital final sigma at 0x3a2). */
	if (c >= 0x386 && c <= 0x3ab) {
		if (c == 0x386)
			return 0x3ac;
		if (c >= 0x388 && c <= 0x38a)
			return c + 0x25;
		if (c == 0x38c)
			return 0x3cc;
		if (c == 0x38e || c == 0x38f)
			return c + 0x3f;
		if (c >= 0x391 && c != 0x3a2)
			return c + 0x20;
		return c;
	}
	/* Cyrillic: Ѐ..Џ and А..Я. */
	if (c >= 0x400 && c <= 0x40f)
		return c + 0x50;
	if (c >= 0x410 && c <= 0x42f)
		return c + 0x20;
	/* Armenian: Ա..Ֆ. */
	if (c >= 0x531 && c <= 0x556)
		return c + 0x30;
	/* Fullwidth Latin: Ａ..Ｚ. */
	if (c >= 0xff21 && c <= 0xff3a)
		return c + 0x20;
	return c;
}

void lam__kv_fold(char *out, const char *s, size_t len)
{
	const unsigned char *u = (const unsigned char *)s;

	for (size_t i = 0; i < len;) {
		uint32_t cp;
		size_t n;

		if (u[i] < 0x80) {
			unsigned char c = u[i];
			out[i] = (char)(c >= 'A' && c <= 'Z' ? c + 0x20 : c);
			i++;
			continue;
		}
		n = utf8_decode(u, len, i, &cp);
		if (n == 0) {
			/* Only validated names reach here; copy anything
			 * else as it is. */
			out[i] = s[i];
			i++;
			continue;
		}
		uint32_t f = fold_cp(cp);
		if (f == cp) {
			memcpy(out + i, s + i, n);
		} else {
			size_t m = lam__kv_utf8_put(out + i, f);
			(void)m; /* m == n: every mapping keeps the length */
		}
		i += n;
	}
}

/* Bytes compare with the separator sorting before every other byte, so a
 * key's subtree follows it directly. */
int lam__kv_path_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
	size_t n = alen < blen ? alen : blen;
	const unsigned char *x = (const unsigned char *)a;
	const unsigned char *y = (const unsigned char *)b;

	for (size_t i = 0; i < n; i++) {
		unsigned char c = x[i], d = y[i];
		if (c == d)
			continue;
		if (c == '\\')
			return -1;
		if (d == '\\')
			return 1;
		return c < d ? -1 : 1;
	}
	return alen < blen ? -1 : alen > blen ? 1 : 0;
}

int lam__kv_name_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
	size_t n = alen < blen ? alen : blen;
	int c = memcmp(a, b, n);
	if (c != 0)
		return c;
	return alen < blen ? -1 : alen > blen ? 1 : 0;
}

uint64_t lam__kv_key_hash(const char *fold, size_t len)
{
	return XXH3_64bits(fold, len);
}

uint64_t lam__kv_value_hash(uint64_t key_hash, const char *fold, size_t len)
{
	return XXH3_64bits_withSeed(fold, len, key_hash ^ 0x9e3779b97f4a7c15u);
}

/* Describe a name for a message: its first bytes, cut at a character
 * boundary, with "…" when cut. */
static void name_excerpt(char out[64], const char *s, size_t len)
{
	size_t n = len < 40 ? len : 40;
	while (n > 0 && n < len && ((unsigned char)s[n] & 0xc0) == 0x80)
		n--;
	memcpy(out, s, n);
	if (n < len)
		memcpy(out + n, "\xe2\x80\xa6", 4);
	else
		out[n] = '\0';
	/* Keep the message printable even when the name is not UTF-8. */
	for (size_t i = 0; out[i]; i++)
		if ((unsigned char)out[i] < 0x20)
			out[i] = '?';
	if (lam__kv_utf8_check(out, strlen(out), NULL, NULL) < 0) {
		for (size_t i = 0; out[i]; i++)
			if ((unsigned char)out[i] >= 0x80)
				out[i] = '?';
	}
}

int lam__kv_name_check(const char *s, size_t len, bool value)
{
	size_t bad, units;
	char ex[64];

	if (lam__kv_utf8_check(s, len, &bad, &units) < 0) {
		name_excerpt(ex, s, len);
		if (s[bad] == '\0')
			return lam__error(
				LAM_EBADNAME,
				"%s name \"%s\" holds a NUL character",
				value ? "value" : "key", ex);
		return lam__error(LAM_EBADNAME,
				  "%s name \"%s\": invalid UTF-8 at byte %zu",
				  value ? "value" : "key", ex, bad);
	}
	if (value) {
		if (units > LAM_KV_MAX_VALUE_NAME) {
			name_excerpt(ex, s, len);
			return lam__error(LAM_ENAMETOOLONG,
					  "value name \"%s\" is %zu characters "
					  "long (at most %d)",
					  ex, units, LAM_KV_MAX_VALUE_NAME);
		}
		return 0;
	}
	if (len == 0)
		return lam__error(LAM_EBADNAME, "empty key name");
	if (units > LAM_KV_MAX_KEY_NAME) {
		name_excerpt(ex, s, len);
		return lam__error(LAM_ENAMETOOLONG,
				  "key name \"%s\" is %zu characters long (at "
				  "most %d)",
				  ex, units, LAM_KV_MAX_KEY_NAME);
	}
	if (memchr(s, '\\', len) != NULL) {
		name_excerpt(ex, s, len);
		return lam__error(LAM_EBADNAME,
				  "key name \"%s\" holds a backslash", ex);
	}
	return 0;
}

void lam__kv_path_free(lam__kv_path *p)
{
	lam__free(p->disp);
	p->disp = NULL;
	p->fold = NULL;
	p->len = 0;
}

int lam__kv_path_parse(lam__kv_path *out, const char *base, size_t base_len,
		       const char *rel, size_t rel_len)
{
	size_t len, depth = 0;
	char *buf;

	out->disp = out->fold = NULL;
	out->len = 0;
	/* One leading separator is allowed ("\Foo" is "Foo"), as hivex
	 * writes root-relative paths. */
	if (rel_len > 0 && rel[0] == '\\') {
		rel++;
		rel_len--;
	}
	len = base_len + (base_len && rel_len ? 1 : 0) + rel_len;
	if (len > (size_t)UINT32_MAX / 2)
		return lam__error(LAM_ENAMETOOLONG, "key path too long");
	buf = lam__malloc(2 * len + 2);
	if (buf == NULL)
		return lam__error(LAM_ENOMEM, "out of memory");
	if (base_len > 0)
		memcpy(buf, base, base_len);
	if (base_len && rel_len)
		buf[base_len] = '\\';
	if (rel_len > 0)
		memcpy(buf + len - rel_len, rel, rel_len);
	buf[len] = '\0';

	/* Check each name of the relative part (the base is a key that
	 * exists, so it passed these checks before). */
	if (base_len > 0) {
		depth = 1;
		for (size_t i = 0; i < base_len; i++)
			depth += base[i] == '\\';
	}
	for (size_t i = len - rel_len; i < len || (rel_len && i == len);) {
		const char *comp = buf + i;
		const char *end = memchr(comp, '\\', len - i);
		size_t clen = end ? (size_t)(end - comp) : len - i;
		int rc;

		if (clen == 0) {
			lam__free(buf);
			return lam__error(LAM_EBADNAME,
					  "key path \"%.*s\" has an empty name",
					  (int)(rel_len < 200 ? rel_len : 200),
					  rel);
		}
		rc = lam__kv_name_check(comp, clen, false);
		if (rc < 0) {
			lam__free(buf);
			return rc;
		}
		if (++depth > LAM_KV_MAX_DEPTH) {
			lam__free(buf);
			return lam__error(LAM_ENAMETOOLONG,
					  "key path is deeper than %d levels",
					  LAM_KV_MAX_DEPTH);
		}
		i += clen + 1;
		if (!end)
			break;
	}
	out->disp = buf;
	out->fold = buf + len + 1;
	lam__kv_fold(out->fold, buf, len);
	out->fold[len] = '\0';
	out->len = len;
	out->depth = (unsigned int)depth;
	out->hash = lam__kv_key_hash(out->fold, len);
	return 0;
}
