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
