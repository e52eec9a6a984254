/* SPDX-License-Identifier: MIT */
#include <string.h>
#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

#include "util/internal.h"

void lam__hash128(lam__digest *out, const void *data, size_t len)
{
	XXH128_hash_t h = XXH3_128bits(data, len);
	XXH128_canonical_t c;
	XXH128_canonicalFromHash(&c, h);
	memcpy(out->b, c.digest, 16);
}

uint64_t lam__hash64(const void *data, size_t len)
{
	return XXH3_64bits(data, len);
}

void lam__digest_hex(char out[33], const lam__digest *d)
{
	static const char hex[] = "0123456789abcdef";
	for (int i = 0; i < 16; i++) {
		out[2 * i] = hex[d->b[i] >> 4];
		out[2 * i + 1] = hex[d->b[i] & 15];
	}
	out[32] = '\0';
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

bool lam__is_hex(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (hexval(s[i]) < 0)
			return false;
	return true;
}

int lam__digest_parse(lam__digest *out, const char *hex)
{
	if (strlen(hex) != 32 || !lam__is_hex(hex, 32))
		return LAM_EINVAL;
	for (int i = 0; i < 16; i++)
		out->b[i] = (uint8_t)(hexval(hex[2 * i]) << 4 |
				      hexval(hex[2 * i + 1]));
	return 0;
}

_Static_assert(sizeof(XXH3_state_t) <= sizeof(((lam__hasher *)0)->state),
	       "lam__hasher too small for XXH3_state_t");

void lam__hasher_init(lam__hasher *h)
{
	XXH3_INITSTATE((XXH3_state_t *)h->state);
	XXH3_128bits_reset((XXH3_state_t *)h->state);
}

void lam__hasher_update(lam__hasher *h, const void *data, size_t len)
{
	XXH3_128bits_update((XXH3_state_t *)h->state, data, len);
}

void lam__hasher_digest(lam__hasher *h, lam__digest *out)
{
	XXH128_canonical_t c;
	XXH128_canonicalFromHash(&c,
				 XXH3_128bits_digest((XXH3_state_t *)h->state));
	memcpy(out->b, c.digest, 16);
}

const char lam__b64[65] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

void lam__digest_b64(char out[23], const lam__digest *d)
{
	/* 128 bits as 22 six-bit digits, most significant first; the last
	 * digit holds the final 2 bits shifted up. */
	uint32_t acc = 0;
	int bits = 0, k = 0;
	for (int i = 0; i < 16; i++) {
		acc = acc << 8 | d->b[i];
		bits += 8;
		while (bits >= 6) {
			out[k++] = lam__b64[(acc >> (bits - 6)) & 63];
			bits -= 6;
		}
	}
	out[k++] = lam__b64[(acc << (6 - bits)) & 63];
	out[k] = '\0';
}

int lam__digest_from_b64(lam__digest *out, const char *s)
{
	uint32_t acc = 0;
	int bits = 0, k = 0;
	for (int i = 0; i < 22; i++) {
		const char *p = s[i] ? strchr(lam__b64, s[i]) : NULL;
		if (p == NULL)
			return LAM_EINVAL;
		acc = acc << 6 | (uint32_t)(p - lam__b64);
		bits += 6;
		if (bits >= 8) {
			if (k < 16)
				out->b[k++] = (uint8_t)(acc >> (bits - 8));
			bits -= 8;
		}
	}
	/* The 4 spare bits of the last digit must be zero: one spelling per
	 * digest. */
	if (k != 16 || (acc & ((1u << bits) - 1)) != 0)
		return LAM_EINVAL;
	return 0;
}
