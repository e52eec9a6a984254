/* SPDX-License-Identifier: MIT */
/*
 * Value types: what each type's data must look like, the registry's type
 * names, and UTF-16LE conversion for .reg files.
 */
#include <string.h>

#include "kv/internal.h"

bool lam__kv_type_known(uint32_t type)
{
	return type <= LAM_KV_QWORD;
}

const char *lam_kv_type_name(uint32_t type)
{
	static const char *const names[] = {
		"REG_NONE",
		"REG_SZ",
		"REG_EXPAND_SZ",
		"REG_BINARY",
		"REG_DWORD",
		"REG_DWORD_BIG_ENDIAN",
		"REG_LINK",
		"REG_MULTI_SZ",
		"REG_RESOURCE_LIST",
		"REG_FULL_RESOURCE_DESCRIPTOR",
		"REG_RESOURCE_REQUIREMENTS_LIST",
		"REG_QWORD",
	};
	if (type < LAM__ARRAY_LEN(names))
		return names[type];
	return "REG_UNKNOWN";
}

int lam__kv_value_check(uint32_t type, const void *data, size_t size,
			const char *what)
{
	const char *s = data;
	size_t bad;

	if (!lam__kv_type_known(type))
		return lam__error(LAM_EINVAL, "%s: unknown value type %u", what,
				  type);
	if (size > UINT32_MAX)
		return lam__error(LAM_EINVAL, "%s: value too large", what);
	if (size > 0 && data == NULL)
		return lam__error(LAM_EINVAL, "%s: no data", what);
	switch (type) {
	case LAM_KV_DWORD:
	case LAM_KV_DWORD_BIG_ENDIAN:
		if (size != 4)
			return lam__error(LAM_EINVAL,
					  "%s: a %s holds 4 bytes, not %zu",
					  what, lam_kv_type_name(type), size);
		return 0;
	case LAM_KV_QWORD:
		if (size != 8)
			return lam__error(LAM_EINVAL,
					  "%s: a REG_QWORD holds 8 bytes, not "
					  "%zu",
					  what, size);
		return 0;
	case LAM_KV_SZ:
	case LAM_KV_EXPAND_SZ:
	case LAM_KV_LINK:
		if (size == 0 || s[size - 1] != '\0')
			return lam__error(LAM_EINVAL,
					  "%s: a %s must end with a NUL", what,
					  lam_kv_type_name(type));
		if (lam__kv_utf8_check(s, size - 1, &bad, NULL) < 0) {
			if (s[bad] == '\0')
				return lam__error(LAM_EINVAL,
						  "%s: a %s holds a NUL at "
						  "byte %zu before its end",
						  what, lam_kv_type_name(type),
						  bad);
			return lam__error(LAM_EINVAL,
					  "%s: invalid UTF-8 at byte %zu", what,
					  bad);
		}
		return 0;
	case LAM_KV_MULTI_SZ: {
		size_t i = 0;
		if (size == 0 || s[size - 1] != '\0')
			return lam__error(LAM_EINVAL,
					  "%s: a REG_MULTI_SZ must end with a "
					  "NUL",
					  what);
		/* Strings, each with its NUL, then the final NUL. */
		while (i < size - 1) {
			const char *z = memchr(s + i, '\0', size - 1 - i);
			size_t n;
			if (z == NULL)
				return lam__error(LAM_EINVAL,
						  "%s: a REG_MULTI_SZ must end "
						  "with two NULs",
						  what);
			n = (size_t)(z - (s + i));
			if (n == 0)
				return lam__error(LAM_EINVAL,
						  "%s: a REG_MULTI_SZ holds an "
						  "empty string at byte %zu",
						  what, i);
			if (lam__kv_utf8_check(s + i, n, &bad, NULL) < 0)
				return lam__error(LAM_EINVAL,
						  "%s: invalid UTF-8 at byte "
						  "%zu",
						  what, i + bad);
			i += n + 1;
		}
		if (i != size - 1)
			return lam__error(LAM_EINVAL,
					  "%s: a REG_MULTI_SZ must end with "
					  "two NULs",
					  what);
		return 0;
	}
	default:
		return 0;
	}
}

int lam__kv_utf16_to_utf8(lam__buf *b, const unsigned char *s, size_t len,
			  size_t *bad_at)
{
	if (len % 2 != 0) {
		*bad_at = len - 1;
		return -1;
	}
	for (size_t i = 0; i < len; i += 2) {
		uint32_t c = (uint32_t)s[i] | (uint32_t)s[i + 1] << 8;
		char u[4];
		size_t n;

		if (c >= 0xd800 && c <= 0xdbff) {
			uint32_t d;
			if (i + 3 >= len) {
				*bad_at = i;
				return -1;
			}
			d = (uint32_t)s[i + 2] | (uint32_t)s[i + 3] << 8;
			if (d < 0xdc00 || d > 0xdfff) {
				*bad_at = i;
				return -1;
			}
			c = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00);
			i += 2;
		} else if ((c >= 0xdc00 && c <= 0xdfff) || c == 0) {
			*bad_at = i;
			return -1;
		}
		n = lam__kv_utf8_put(u, c);
		if (lam__buf_add(b, u, n) < 0)
			return -2;
	}
	return 0;
}

int lam__kv_utf8_to_utf16(lam__buf *b, const char *s, size_t len)
{
	for (size_t i = 0; i < len;) {
		uint32_t c;
		size_t n = lam__kv_utf8_next(s, len, i, &c);
		unsigned char u[4];

		if (n == 0)
			return lam__error(LAM_EINVAL, "invalid UTF-8");
		i += n;
		if (c >= 0x10000) {
			uint32_t hi = 0xd800 + ((c - 0x10000) >> 10);
			uint32_t lo = 0xdc00 + ((c - 0x10000) & 0x3ff);
			u[0] = (unsigned char)hi;
			u[1] = (unsigned char)(hi >> 8);
			u[2] = (unsigned char)lo;
			u[3] = (unsigned char)(lo >> 8);
			if (lam__buf_add(b, u, 4) < 0)
				return LAM_ENOMEM;
		} else {
			u[0] = (unsigned char)c;
			u[1] = (unsigned char)(c >> 8);
			if (lam__buf_add(b, u, 2) < 0)
				return LAM_ENOMEM;
		}
	}
	return 0;
}
