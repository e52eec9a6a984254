/* SPDX-License-Identifier: MIT */
/* sha256 through libcrypto's EVP interface, OCI digest strings, base64. */
#include <string.h>

#include <openssl/evp.h>

#include "archive/internal.h"

int lam__sha256_init(lam__sha256 *h)
{
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	if (c == NULL)
		return lam__error(LAM_ENOMEM, "out of memory (sha256)");
	if (EVP_DigestInit_ex(c, EVP_sha256(), NULL) != 1) {
		EVP_MD_CTX_free(c);
		return lam__error(LAM_ERROR, "libcrypto: sha256 unavailable");
	}
	h->ctx = c;
	return 0;
}

void lam__sha256_update(lam__sha256 *h, const void *data, size_t len)
{
	if (len > 0)
		EVP_DigestUpdate(h->ctx, data, len);
}

static void hex_digest(const unsigned char *md, char out[LAM_OCI_DIGEST_SIZE])
{
	static const char hex[] = "0123456789abcdef";
	memcpy(out, "sha256:", 7);
	for (int i = 0; i < 32; i++) {
		out[7 + 2 * i] = hex[md[i] >> 4];
		out[8 + 2 * i] = hex[md[i] & 15];
	}
	out[71] = '\0';
}

void lam__sha256_final(lam__sha256 *h, char out[LAM_OCI_DIGEST_SIZE])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	EVP_DigestFinal_ex(h->ctx, md, &n);
	hex_digest(md, out);
	EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL);
}

void lam__sha256_free(lam__sha256 *h)
{
	if (h->ctx != NULL)
		EVP_MD_CTX_free(h->ctx);
	h->ctx = NULL;
}

void lam__sha256_buf(const void *data, size_t len,
		     char out[LAM_OCI_DIGEST_SIZE])
{
	unsigned char md[32];
	unsigned int n = 0;
	EVP_Digest(data, len, md, &n, EVP_sha256(), NULL);
	hex_digest(md, out);
}

int lam__oci_digest_check(const char *d, const char *what)
{
	if (d == NULL || strncmp(d, "sha256:", 7) != 0 || strlen(d) != 71)
		return lam__error(LAM_EINVAL,
				  "%s: not a sha256 digest (\"sha256:\" and "
				  "64 hex digits): %.80s",
				  what, d ? d : "(null)");
	for (int i = 7; i < 71; i++) {
		char c = d[i];
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
			return lam__error(LAM_EINVAL,
					  "%s: not a sha256 digest: %.80s",
					  what, d);
	}
	return 0;
}

static const char b64[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int lam__base64_encode(lam__buf *out, const void *data, size_t len)
{
	const unsigned char *p = data;
	int rc = lam__buf_grow(out, (len + 2) / 3 * 4 + 1);
	if (rc < 0)
		return rc;
	char *o = out->data + out->len;
	size_t i = 0;
	for (; i + 3 <= len; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 |
			     p[i + 2];
		*o++ = b64[v >> 18];
		*o++ = b64[(v >> 12) & 63];
		*o++ = b64[(v >> 6) & 63];
		*o++ = b64[v & 63];
	}
	if (i < len) {
		uint32_t v = (uint32_t)p[i] << 16;
		if (i + 1 < len)
			v |= (uint32_t)p[i + 1] << 8;
		*o++ = b64[v >> 18];
		*o++ = b64[(v >> 12) & 63];
		*o++ = i + 1 < len ? b64[(v >> 6) & 63] : '=';
		*o++ = '=';
	}
	out->len = (size_t)(o - out->data);
	out->data[out->len] = '\0';
	return 0;
}

int lam__base64_decode(lam__buf *out, const char *s, size_t len)
{
	int rc = lam__buf_grow(out, len / 4 * 3 + 3);
	if (rc < 0)
		return rc;
	uint32_t v = 0;
	int bits = 0;
	size_t pad = 0;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		const char *q = c ? strchr(b64, c) : NULL;
		if (c == '=') {
			pad++;
			continue;
		}
		if (q == NULL || pad > 0)
			return lam__error(LAM_ECORRUPT, "bad base64 data");
		v = v << 6 | (uint32_t)(q - b64);
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out->data[out->len++] = (char)(v >> bits);
		}
	}
	if (pad > 2 || (len + 0) % 4 != 0)
		return lam__error(LAM_ECORRUPT, "bad base64 length");
	return 0;
}
