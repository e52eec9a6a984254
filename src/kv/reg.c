/* SPDX-License-Identifier: MIT */
/*
 * .reg files: the text format of regedit ("Windows Registry Editor Version
 * 5.00", and "REGEDIT4"), in and out.
 *
 * Import reads the whole text first and applies it as one transaction, so
 * that a syntax error on line 900 leaves the view as it was; every error
 * names its line. Export is deterministic: depth first, values in the
 * stable order, hex lines wrapped as regedit wraps them.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "kv/internal.h"

/* ---- decoding the text ---- */

/* The text as UTF-8 with LF line ends. */
static int decode_text(lam__buf *out, const char *text, size_t len,
		       const char *src)
{
	const unsigned char *u = (const unsigned char *)text;

	if (len >= 2 && u[0] == 0xff && u[1] == 0xfe) {
		size_t line = 1;
		for (size_t i = 2; i + 1 < len; i += 2) {
			uint32_t c = (uint32_t)u[i] | (uint32_t)u[i + 1] << 8;
			char b[4];
			if (c >= 0xd800 && c <= 0xdbff && i + 3 < len) {
				uint32_t d = (uint32_t)u[i + 2] |
					     (uint32_t)u[i + 3] << 8;
				if (d >= 0xdc00 && d <= 0xdfff) {
					c = 0x10000 + ((c - 0xd800) << 10) +
					    (d - 0xdc00);
					i += 2;
				} else {
					c = 0xfffd + 0x110000;
				}
			} else if (c >= 0xd800 && c <= 0xdfff) {
				c = 0xfffd + 0x110000;
			}
			if (c > 0x10ffff)
				return lam__error(LAM_EINVAL,
						  "%s line %zu: invalid UTF-16",
						  src, line);
			if (c == '\n')
				line++;
			if (c == '\r')
				continue;
			if (lam__buf_add(out, b, lam__kv_utf8_put(b, c)) < 0)
				return LAM_ENOMEM;
		}
		if (len % 2 != 0)
			return lam__error(LAM_EINVAL,
					  "%s line %zu: a UTF-16 text with an "
					  "odd number of bytes",
					  src, line);
		return 0;
	}
	if (len >= 3 && u[0] == 0xef && u[1] == 0xbb && u[2] == 0xbf) {
		text += 3;
		len -= 3;
	}
	/* Text without a BOM is UTF-8, line by line: a line that is not
	 * UTF-8 is read as Latin-1. REGEDIT4 files are 8-bit text in the
	 * writer's code page, and hivexregedit --export prints names whose
	 * characters all fit in Latin-1 as Latin-1 bytes. */
	for (size_t i = 0; i < len;) {
		const char *nl = memchr(text + i, '\n', len - i);
		size_t n = nl ? (size_t)(nl - (text + i)) + 1 : len - i;
		bool utf8 = lam__kv_utf8_check(text + i, n - (nl ? 1 : 0), NULL,
					       NULL) == 0 ||
			    memchr(text + i, '\0', n) != NULL;
		for (size_t j = i; j < i + n; j++) {
			char b[4];
			int rc;
			if (text[j] == '\r')
				continue;
			if (utf8 || u[j] < 0x80)
				rc = lam__buf_add(out, text + j, 1);
			else
				rc = lam__buf_add(out, b,
						  lam__kv_utf8_put(b, u[j]));
			if (rc < 0)
				return LAM_ENOMEM;
		}
		i += n;
	}
	return 0;
}

/* ---- parsing ---- */

enum op_kind {
	OP_KEY,
	OP_DELKEY,
	OP_SET,
	OP_UNSET
};

typedef struct op {
	enum op_kind kind;
	size_t line;
	char *key; /* the view's key path */
	char *name;
	uint32_t type;
	char *data;
	size_t size;
} op;

typedef struct parser {
	const char *src;
	const char *root;
	bool regedit4;
	op *ops;
	size_t nops, cap;
	char *cur; /* the current key, or NULL */
	size_t line;
	uint64_t max_value_size;
} parser;

static int syntax(const parser *p, const char *what)
{
	return lam__error(LAM_EINVAL, "%s line %zu: %s", p->src, p->line, what);
}

static void free_ops(parser *p)
{
	for (size_t i = 0; i < p->nops; i++) {
		lam__free(p->ops[i].key);
		lam__free(p->ops[i].name);
		lam__free(p->ops[i].data);
	}
	lam__free(p->ops);
	p->ops = NULL;
	p->nops = 0;
}

static int add_op(parser *p, op *o)
{
	if (p->nops == p->cap) {
		size_t cap = p->cap ? p->cap * 2 : 64;
		op *v = lam__realloc(p->ops, cap * sizeof(*v));
		if (v == NULL)
			return lam__error(LAM_ENOMEM, "out of memory");
		p->ops = v;
		p->cap = cap;
	}
	o->line = p->line;
	p->ops[p->nops++] = *o;
	return 0;
}

static const struct {
	const char *abbr;
	const char *full;
} roots[] = {
	{"HKLM", "HKEY_LOCAL_MACHINE"},	 {"HKCU", "HKEY_CURRENT_USER"},
	{"HKCR", "HKEY_CLASSES_ROOT"},	 {"HKU", "HKEY_USERS"},
	{"HKCC", "HKEY_CURRENT_CONFIG"},
};

/* Map a .reg key name onto the view's key tree. */
static int map_key(parser *p, const char *name, size_t len, char **out)
{
	lam__buf b = {0};
	int rc = 0;

	*out = NULL;
	if (len > 0 && name[len - 1] == '\\' && len > 1)
		len--;
	if (len > 0 && name[0] == '\\') {
		/* hivex's root-relative form: below the hive root. */
		if (p->root && p->root[0])
			rc = lam__buf_puts(&b, p->root);
		if (rc == 0 && len > 1) {
			if (b.len > 0)
				rc = lam__buf_add(&b, "\\", 1);
			if (rc == 0)
				rc = lam__buf_add(&b, name + 1, len - 1);
		}
	} else {
		size_t first = 0;
		while (first < len && name[first] != '\\')
			first++;
		const char *full = NULL;
		for (size_t i = 0; i < LAM__ARRAY_LEN(roots); i++)
			if (strlen(roots[i].abbr) == first &&
			    strncasecmp(name, roots[i].abbr, first) == 0)
				full = roots[i].full;
		if (full) {
			rc = lam__buf_puts(&b, full);
			if (rc == 0)
				rc = lam__buf_add(&b, name + first,
						  len - first);
		} else {
			rc = lam__buf_add(&b, name, len);
		}
	}
	if (rc == 0 && b.data == NULL)
		rc = lam__buf_add(&b, "", 0);
	if (rc < 0) {
		lam__buf_free(&b);
		return rc;
	}
	/* Check the path now, so that the error names the line. */
	lam__kv_path kp;
	rc = lam__kv_path_parse(&kp, NULL, 0, b.data, b.len);
	if (rc < 0) {
		lam__buf_free(&b);
		return lam__error_prefix(rc, "%s line %zu", p->src, p->line);
	}
	lam__kv_path_free(&kp);
	*out = b.data;
	return 0;
}

/* Parse a quoted string at s (s[0] == '"'); *end gets the position after
 * the closing quote. */
static int quoted(parser *p, const char *s, lam__buf *out, const char **end)
{
	size_t i = 1;
	for (;; i++) {
		if (s[i] == '\0' || s[i] == '\n')
			return syntax(p, "a string without its closing quote");
		if (s[i] == '"')
			break;
		if (s[i] == '\\' && s[i + 1] != '\0' && s[i + 1] != '\n')
			i++;
		if (lam__buf_add(out, s + i, 1) < 0)
			return LAM_ENOMEM;
	}
	if (out->data == NULL && lam__buf_add(out, "", 0) < 0)
		return LAM_ENOMEM;
	*end = s + i + 1;
	return 0;
}

/* The rest of a value line may hold blanks and a comment only. */
static int tail(parser *p, const char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	if (*s != '\0' && *s != ';')
		return syntax(p, "unexpected text after the value");
	return 0;
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

static int hex_bytes(parser *p, const char *s, lam__buf *out)
{
	bool need_comma = false;
	if (out->data == NULL && lam__buf_add(out, "", 0) < 0)
		return LAM_ENOMEM;
	for (;;) {
		while (*s == ' ' || *s == '\t')
			s++;
		if (*s == '\0' || *s == ';')
			return 0;
		if (need_comma) {
			if (*s != ',')
				return syntax(p, "expected ',' between hex "
						 "bytes");
			s++;
			need_comma = false;
			continue;
		}
		int h = hexval((unsigned char)s[0]);
		int l = h >= 0 ? hexval((unsigned char)s[1]) : -1;
		if (h < 0 || l < 0)
			return syntax(p, "a hex byte must be two hex digits");
		unsigned char c = (unsigned char)(h * 16 + l);
		if (lam__buf_add(out, &c, 1) < 0)
			return LAM_ENOMEM;
		s += 2;
		need_comma = true;
	}
}

/* Turn the bytes of hex(N) data of a string type into lamina's UTF-8. */
static int string_data(parser *p, uint32_t type, lam__buf *raw, lam__buf *out)
{
	lam__buf text = {0};
	int rc = 0;

	if (p->regedit4) {
		if (lam__kv_utf8_check(raw->data, raw->len, NULL, NULL) == 0 ||
		    memchr(raw->data, 0, raw->len)) {
			/* UTF-8 (or with NULs inside, judged below) */
			rc = lam__buf_add(&text, raw->data, raw->len);
		} else {
			for (size_t i = 0; rc == 0 && i < raw->len; i++) {
				char b[4];
				rc = lam__buf_add(
					&text, b,
					lam__kv_utf8_put(
						b,
						(unsigned char)raw->data[i]));
			}
		}
	} else {
		if (raw->len % 2 != 0) {
			rc = syntax(p, "UTF-16 string data with an odd number "
				       "of bytes");
			goto out;
		}
		/* Decode allowing NULs (they separate MULTI_SZ strings). */
		const unsigned char *u = (const unsigned char *)raw->data;
		for (size_t i = 0; rc == 0 && i < raw->len; i += 2) {
			uint32_t c = (uint32_t)u[i] | (uint32_t)u[i + 1] << 8;
			char b[4];
			if (c >= 0xd800 && c <= 0xdbff && i + 3 < raw->len) {
				uint32_t d = (uint32_t)u[i + 2] |
					     (uint32_t)u[i + 3] << 8;
				if (d < 0xdc00 || d > 0xdfff) {
					rc = syntax(p, "invalid UTF-16 in "
						       "string data");
					break;
				}
				c = 0x10000 + ((c - 0xd800) << 10) +
				    (d - 0xdc00);
				i += 2;
			} else if (c >= 0xd800 && c <= 0xdfff) {
				rc = syntax(p, "invalid UTF-16 in string data");
				break;
			}
			rc = lam__buf_add(&text, b, lam__kv_utf8_put(b, c));
		}
	}
	if (rc < 0)
		goto out;
	if (lam__buf_add(&text, "", 0) < 0) {
		rc = LAM_ENOMEM;
		goto out;
	}
	if (type == LAM_KV_MULTI_SZ) {
		/* Keep the non-empty strings; regedit writes a final empty
		 * one as the list's end. */
		for (size_t i = 0; i < text.len;) {
			size_t n = strnlen(text.data + i, text.len - i);
			if (n > 0)
				rc = lam__buf_add(out, text.data + i, n + 1);
			if (rc < 0)
				goto out;
			i += n + 1;
		}
		rc = lam__buf_add(out, "", 1);
	} else {
		/* A string ends at its first NUL. */
		size_t n = strnlen(text.data, text.len);
		rc = lam__buf_add(out, text.data, n);
		if (rc == 0)
			rc = lam__buf_add(out, "", 1);
	}
out:
	lam__buf_free(&text);
	return rc;
}

static int parse_value(parser *p, const char *s)
{
	lam__buf name = {0}, data = {0}, raw = {0};
	op o = {.kind = OP_SET};
	int rc = 0;

	if (*s == '@') {
		rc = lam__buf_add(&name, "", 0);
		s++;
	} else {
		rc = quoted(p, s, &name, &s);
	}
	if (rc < 0)
		goto out;
	if (lam__kv_name_check(name.data, name.len, true) < 0) {
		rc = lam__error_prefix(lam_error_last()->code, "%s line %zu",
				       p->src, p->line);
		goto out;
	}
	while (*s == ' ' || *s == '\t')
		s++;
	if (*s != '=') {
		rc = syntax(p, "expected '=' after the value name");
		goto out;
	}
	s++;
	while (*s == ' ' || *s == '\t')
		s++;
	if (*s == '-') {
		o.kind = OP_UNSET;
		rc = tail(p, s + 1);
	} else if (*s == '"') {
		o.type = LAM_KV_SZ;
		rc = quoted(p, s, &data, &s);
		if (rc == 0)
			rc = tail(p, s);
		if (rc == 0 && memchr(data.data, 0, data.len))
			rc = syntax(p, "a NUL character in a string");
		if (rc == 0)
			rc = lam__buf_add(&data, "", 1);
	} else if (strncasecmp(s, "dword:", 6) == 0) {
		uint32_t v = 0;
		size_t n = 0;
		s += 6;
		while (hexval((unsigned char)s[n]) >= 0) {
			v = v * 16 + (uint32_t)hexval((unsigned char)s[n]);
			n++;
		}
		if (n == 0 || n > 8) {
			rc = syntax(p, "a dword needs 1 to 8 hex digits");
		} else {
			unsigned char le[4] = {(unsigned char)v,
					       (unsigned char)(v >> 8),
					       (unsigned char)(v >> 16),
					       (unsigned char)(v >> 24)};
			o.type = LAM_KV_DWORD;
			rc = tail(p, s + n);
			if (rc == 0)
				rc = lam__buf_add(&data, le, 4);
		}
	} else if (strncasecmp(s, "hex", 3) == 0) {
		s += 3;
		o.type = LAM_KV_BINARY;
		if (*s == '(') {
			uint64_t t = 0;
			size_t n = 0;
			s++;
			while (hexval((unsigned char)s[n]) >= 0 && n < 9) {
				t = t * 16 +
				    (uint64_t)hexval((unsigned char)s[n]);
				n++;
			}
			if (n == 0 || s[n] != ')') {
				rc = syntax(p, "expected hex(N): with N a hex "
					       "number");
				goto out;
			}
			if (t > LAM_KV_QWORD) {
				char m[64];
				snprintf(m, sizeof(m),
					 "unknown value type 0x%lx",
					 (unsigned long)t);
				rc = syntax(p, m);
				goto out;
			}
			o.type = (uint32_t)t;
			s += n + 1;
		}
		if (*s != ':') {
			rc = syntax(p, "expected ':' after hex");
			goto out;
		}
		rc = hex_bytes(p, s + 1, &raw);
		if (rc == 0 &&
		    (o.type == LAM_KV_SZ || o.type == LAM_KV_EXPAND_SZ ||
		     o.type == LAM_KV_LINK || o.type == LAM_KV_MULTI_SZ))
			rc = string_data(p, o.type, &raw, &data);
		else if (rc == 0)
			rc = lam__buf_add(&data, raw.data, raw.len);
	} else if (strncasecmp(s, "str", 3) == 0) {
		/* str(N):"…", as hivex and Wine write strings. */
		uint32_t t = LAM_KV_SZ;
		s += 3;
		if (*s == '(') {
			int h = hexval((unsigned char)s[1]);
			if (h < 0 || s[2] != ')') {
				rc = syntax(p, "expected str(N):");
				goto out;
			}
			t = (uint32_t)h;
			s += 3;
		}
		if (t != LAM_KV_SZ && t != LAM_KV_EXPAND_SZ &&
		    t != LAM_KV_LINK) {
			rc = syntax(p, "str(N): takes a string type");
			goto out;
		}
		if (*s != ':' || s[1] != '"') {
			rc = syntax(p, "expected str(N):\"string\"");
			goto out;
		}
		o.type = t;
		rc = quoted(p, s + 1, &data, &s);
		if (rc == 0)
			rc = tail(p, s);
		if (rc == 0)
			rc = lam__buf_add(&data, "", 1);
	} else {
		rc = syntax(p,
			    "expected a string, dword:, hex: or - after '='");
	}
	if (rc < 0)
		goto out;
	if (o.kind == OP_SET) {
		char what[64];
		snprintf(what, sizeof(what), "%s line %zu", p->src, p->line);
		rc = lam__kv_value_check(o.type, data.data, data.len, what);
		if (rc == 0 && data.len > p->max_value_size)
			rc = lam__error(LAM_EINVAL,
					"%s: %zu bytes is over the cap of %lu "
					"bytes",
					what, data.len,
					(unsigned long)p->max_value_size);
		if (rc < 0)
			goto out;
	}
	o.key = lam__strdup(p->cur);
	o.name = name.data;
	name.data = NULL;
	o.data = data.data;
	o.size = data.len;
	data.data = NULL;
	if (o.key == NULL) {
		rc = lam__error(LAM_ENOMEM, "out of memory");
		lam__free(o.name);
		lam__free(o.data);
		goto out;
	}
	rc = add_op(p, &o);
	if (rc < 0) {
		lam__free(o.key);
		lam__free(o.name);
		lam__free(o.data);
	}
out:
	lam__buf_free(&name);
	lam__buf_free(&data);
	lam__buf_free(&raw);
	return rc;
}

static int parse_line(parser *p, char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	if (*s == '\0' || *s == ';')
		return 0;
	if (*s == '[') {
		size_t n = strlen(s);
		while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
			n--;
		if (n < 2 || s[n - 1] != ']')
			return syntax(p, "a key line must end with ']'");
		bool del = s[1] == '-';
		const char *name = s + (del ? 2 : 1);
		size_t len = n - 1 - (size_t)(name - s);
		char *path;
		int rc = map_key(p, name, len, &path);
		if (rc < 0)
			return rc;
		lam__free(p->cur);
		p->cur = NULL;
		op o = {.kind = del ? OP_DELKEY : OP_KEY, .key = path};
		if (!del) {
			p->cur = lam__strdup(path);
			if (p->cur == NULL) {
				lam__free(path);
				return lam__error(LAM_ENOMEM, "out of memory");
			}
		}
		rc = add_op(p, &o);
		if (rc < 0)
			lam__free(path);
		return rc;
	}
	if (*s == '"' || *s == '@') {
		if (p->cur == NULL)
			return syntax(p, "a value outside of any key");
		return parse_value(p, s);
	}
	return syntax(p, "expected [key], a value or a comment");
}

static int parse(parser *p, char *text)
{
	char *line = text;
	size_t lineno = 1;
	bool header = false;
	int rc = 0;

	while (line && rc == 0) {
		/* Join continuation lines: a line whose last non-blank is a
		 * backslash goes on in the next. */
		char *nl = strchr(line, '\n');
		size_t start = lineno;
		if (nl)
			*nl = '\0';
		for (;;) {
			size_t n = strlen(line);
			while (n > 0 &&
			       (line[n - 1] == ' ' || line[n - 1] == '\t'))
				n--;
			if (n == 0 || line[n - 1] != '\\' || nl == NULL)
				break;
			/* "[Key\]" or a value ending in an escaped backslash
			 * are not continuations; they end in ']' or '"'. */
			char *next = nl + 1;
			char *nl2 = strchr(next, '\n');
			if (nl2)
				*nl2 = '\0';
			while (*next == ' ' || *next == '\t')
				next++;
			memmove(line + n - 1, next, strlen(next) + 1);
			lineno++;
			nl = nl2;
		}
		p->line = start;
		if (!header) {
			char *s = line;
			while (*s == ' ' || *s == '\t')
				s++;
			if (*s == '\0') {
				/* blank lines before the header */
			} else if (strncmp(s,
					   "Windows Registry Editor Version "
					   "5.00",
					   36) == 0) {
				header = true;
			} else if (strncmp(s, "REGEDIT4", 8) == 0) {
				header = true;
				p->regedit4 = true;
			} else {
				rc = syntax(p,
					    "not a .reg file: expected "
					    "\"Windows Registry Editor "
					    "Version 5.00\" or \"REGEDIT4\"");
			}
		} else {
			rc = parse_line(p, line);
		}
		line = nl ? nl + 1 : NULL;
		lineno++;
	}
	if (rc == 0 && !header) {
		p->line = 1;
		rc = syntax(p, "not a .reg file: no header");
	}
	return rc;
}

static int apply_ops(lam__kv *kv, parser *p)
{
	int64_t now = lam__kv_now();
	int rc = 0;

	for (size_t i = 0; i < p->nops && rc == 0; i++) {
		op *o = &p->ops[i];
		lam__kv_path kp;
		p->line = o->line;
		rc = lam__kv_path_parse(&kp, NULL, 0, o->key, strlen(o->key));
		if (rc < 0)
			break;
		switch (o->kind) {
		case OP_KEY:
			rc = lam__kv_create_key(kv, &kp, false, NULL, now);
			break;
		case OP_DELKEY:
			if (kp.len == 0) {
				rc = lam__error(LAM_EINVAL,
						"the root key cannot be "
						"deleted");
				break;
			}
			rc = lam__kv_delete_key(kv, &kp, true, now);
			if (rc == LAM_ENOTFOUND)
				rc = 0; /* deleting what is not there */
			break;
		case OP_SET:
			rc = lam__kv_set(kv, &kp, o->name, strlen(o->name),
					 o->type, o->data, o->size, now);
			break;
		case OP_UNSET:
			rc = lam__kv_unset(kv, &kp, o->name, strlen(o->name),
					   now);
			if (rc == LAM_ENOTFOUND)
				rc = 0;
			break;
		}
		lam__kv_path_free(&kp);
		if (rc < 0)
			rc = lam__error_prefix(rc, "%s line %zu", p->src,
					       o->line);
	}
	if (rc == LAM_ENOTFOUND)
		lam__error_reset();
	return rc;
}

int lam_kv_import_reg(lam_view *view, const char *text, size_t len,
		      const lam_reg_options *options)
{
	lam_reg_options def = LAM_REG_OPTIONS_INIT;
	parser p = {0};
	lam__buf t = {0};
	lam__kv *kv;
	int rc;

	lam__error_reset();
	if (options == NULL)
		options = &def;
	if (options->version != LAM_REG_OPTIONS_VERSION)
		return lam__error(LAM_EINVAL,
				  "lam_kv_import_reg: options "
				  "version %u",
				  options->version);
	if (text == NULL && len > 0)
		return lam__error(LAM_EINVAL, "lam_kv_import_reg: no text");
	rc = lam__kv_of_view(&kv, view);
	if (rc < 0)
		return rc;
	if (kv->readonly)
		return lam__error_os(LAM_EPOSIX, 30 /* EROFS */,
				     "importing .reg: read-only view");
	if (kv->in_txn)
		return lam__error(LAM_EBUSY,
				  "importing .reg: a key/value transaction is "
				  "open");
	p.src = options->source ? options->source : ".reg";
	p.root = options->root;
	p.max_value_size = kv->max_value_size;
	if (p.root && p.root[0]) {
		lam__kv_path rp;
		rc = lam__kv_path_parse(&rp, NULL, 0, p.root, strlen(p.root));
		if (rc < 0)
			return lam__error_prefix(rc, "the hive root");
		lam__kv_path_free(&rp);
	}
	rc = decode_text(&t, text ? text : "", len, p.src);
	if (rc == 0 && t.data == NULL)
		rc = lam__buf_add(&t, "", 0);
	if (rc == 0 && memchr(t.data, '\0', t.len)) {
		size_t line = 1;
		for (const char *c = t.data; *c; c++)
			line += *c == '\n';
		rc = lam__error(LAM_EINVAL,
				"%s line %zu: a NUL character in the text",
				p.src, line);
	}
	if (rc == 0)
		rc = parse(&p, t.data);
	if (rc == 0) {
		rc = lam__kv_begin(kv);
		if (rc == 0) {
			rc = apply_ops(kv, &p);
			if (rc == 0) {
				rc = lam__kv_commit(kv);
			} else {
				lam__error_saved saved;
				lam__error_save(&saved);
				lam__kv_abort(kv);
				lam__error_restore(&saved);
			}
		}
	}
	free_ops(&p);
	lam__free(p.cur);
	lam__buf_free(&t);
	return rc;
}

/* ---- export ---- */

typedef struct exporter {
	lam__buf out;
	lam__kv *kv;
	const char *root; /* folded hive root, or NULL */
	size_t root_len;
	bool subkeys;
	bool hex_strings;
} exporter;

static int put_escaped(lam__buf *b, const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if ((s[i] == '\\' || s[i] == '"') &&
		    lam__buf_add(b, "\\", 1) < 0)
			return LAM_ENOMEM;
		if (lam__buf_add(b, s + i, 1) < 0)
			return LAM_ENOMEM;
	}
	return 0;
}

static bool has_control(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20)
			return true;
	return false;
}

/* Hex bytes after a prefix already written on the current line, wrapped
 * before column 80 with "\" and a two-space indent, as regedit does. */
static int put_hex(lam__buf *b, size_t line_start, const unsigned char *d,
		   size_t n)
{
	size_t col = b->len - line_start;
	for (size_t i = 0; i < n; i++) {
		char x[4];
		snprintf(x, sizeof(x), "%02x", d[i]);
		if (lam__buf_add(b, x, 2) < 0)
			return LAM_ENOMEM;
		col += 2;
		if (i + 1 < n) {
			if (lam__buf_add(b, ",", 1) < 0)
				return LAM_ENOMEM;
			col++;
			if (col > 76) {
				if (lam__buf_puts(b, "\\\n  ") < 0)
					return LAM_ENOMEM;
				col = 2;
			}
		}
	}
	return lam__buf_add(b, "\n", 1);
}

static int put_value(exporter *e, const lam__kv_item *it)
{
	lam__buf *b = &e->out;
	size_t line_start = b->len;
	lam__buf conv = {0};
	int rc = 0;

	if (has_control(it->disp, it->len))
		return lam__error(LAM_EINVAL,
				  "value \"%.*s\" has a line break or control "
				  "character in its name, which .reg cannot "
				  "hold",
				  (int)(it->len < 40 ? it->len : 40), it->disp);
	if (it->len == 0) {
		rc = lam__buf_add(b, "@=", 2);
	} else {
		rc = lam__buf_add(b, "\"", 1);
		if (rc == 0)
			rc = put_escaped(b, it->disp, it->len);
		if (rc == 0)
			rc = lam__buf_add(b, "\"=", 2);
	}
	if (rc < 0)
		return rc;
	const char *d = it->data;
	switch (it->type) {
	case LAM_KV_SZ:
		if (!e->hex_strings && !has_control(d, it->size - 1)) {
			rc = lam__buf_add(b, "\"", 1);
			if (rc == 0)
				rc = put_escaped(b, d, it->size - 1);
			if (rc == 0)
				rc = lam__buf_add(b, "\"\n", 2);
			return rc;
		}
		/* Otherwise written as hex(1), like the types below. */
		__attribute__((fallthrough));
	case LAM_KV_EXPAND_SZ:
	case LAM_KV_LINK:
	case LAM_KV_MULTI_SZ:
		/* UTF-16LE, each NUL as a UTF-16 NUL. */
		for (size_t i = 0; rc == 0 && i < it->size;) {
			size_t n = strnlen(d + i, it->size - i);
			rc = lam__kv_utf8_to_utf16(&conv, d + i, n);
			if (rc == 0 && i + n < it->size)
				rc = lam__buf_add(&conv, "\0\0", 2);
			i += n + 1;
		}
		if (rc == 0)
			rc = lam__buf_printf(b, "hex(%x):", it->type);
		if (rc == 0)
			rc = put_hex(b, line_start,
				     (const unsigned char *)conv.data,
				     conv.len);
		lam__buf_free(&conv);
		return rc;
	case LAM_KV_DWORD: {
		const unsigned char *u = it->data;
		return lam__buf_printf(b, "dword:%02x%02x%02x%02x\n", u[3],
				       u[2], u[1], u[0]);
	}
	case LAM_KV_BINARY:
		rc = lam__buf_puts(b, "hex:");
		break;
	default:
		rc = lam__buf_printf(b, "hex(%x):", it->type);
		break;
	}
	if (rc == 0)
		rc = put_hex(b, line_start, it->data, it->size);
	return rc;
}

/* The name a key gets in the file. */
static int put_key_name(exporter *e, const char *disp, size_t len)
{
	lam__buf *b = &e->out;
	if (has_control(disp, len))
		return lam__error(LAM_EINVAL,
				  "key \"%.*s\" has a control character in its "
				  "name, which .reg cannot hold",
				  (int)(len < 60 ? len : 60), disp);
	if (e->root) {
		if (lam__buf_add(b, "\\", 1) < 0)
			return LAM_ENOMEM;
		size_t skip = e->root_len + (e->root_len ? 1 : 0);
		if (len <= e->root_len)
			return 0;
		return lam__buf_add(b, disp + skip, len - skip);
	}
	return lam__buf_add(b, disp, len);
}

static int export_key(exporter *e, const lam__kv_path *p)
{
	lam__kv_walk w;
	lam__kv_item it;
	size_t mark = e->out.len;
	int rc, nvals = 0;

	rc = lam__buf_add(&e->out, "[", 1);
	if (rc == 0) {
		if (p->len == 0 && e->root == NULL)
			rc = lam__buf_add(&e->out, "\\", 1);
		else
			rc = put_key_name(e, p->disp, p->len);
	}
	if (rc == 0)
		rc = lam__buf_add(&e->out, "]\n", 2);
	if (rc < 0)
		return rc;
	rc = lam__kv_walk_start(&w, e->kv, p, true);
	if (rc < 0)
		return rc;
	while ((rc = lam__kv_walk_next(&w, &it)) > 0) {
		rc = put_value(e, &it);
		if (rc < 0)
			break;
		nvals++;
	}
	lam__kv_walk_free(&w);
	if (rc < 0)
		return rc;
	/* The view's root has no name of its own: write its section only
	 * when it holds values. */
	if (p->len == 0 && e->root == NULL && nvals == 0)
		e->out.len = mark;
	else if (lam__buf_add(&e->out, "\n", 1) < 0)
		return LAM_ENOMEM;
	if (!e->subkeys)
		return 0;
	rc = lam__kv_walk_start(&w, e->kv, p, false);
	if (rc < 0)
		return rc;
	while ((rc = lam__kv_walk_next(&w, &it)) > 0) {
		lam__kv_path c;
		rc = lam__kv_path_parse(&c, NULL, 0, it.disp, it.len);
		if (rc == 0) {
			rc = export_key(e, &c);
			lam__kv_path_free(&c);
		}
		if (rc < 0)
			break;
	}
	lam__kv_walk_free(&w);
	return rc;
}

int lam_key_export_reg(char **out, size_t *len, lam_key *key,
		       const lam_reg_options *options)
{
	lam_reg_options def = LAM_REG_OPTIONS_INIT;
	exporter e = {0};
	lam__kv_path root = {0};
	lam__kv_res res;
	int rc;

	lam__error_reset();
	if (out == NULL)
		return lam__error(LAM_EINVAL,
				  "lam_key_export_reg: out is NULL");
	*out = NULL;
	if (len)
		*len = 0;
	if (key == NULL)
		return lam__error(LAM_EINVAL, "lam_key_export_reg: no key");
	if (options == NULL)
		options = &def;
	if (options->version != LAM_REG_OPTIONS_VERSION)
		return lam__error(LAM_EINVAL,
				  "lam_key_export_reg: options version %u",
				  options->version);
	rc = lam__kv_ready(key->kv);
	if (rc < 0)
		return rc;
	lam__kv_resolve(key->kv, key->path.fold, key->path.len, key->path.hash,
			&res);
	if (!res.exists)
		return lam__error(LAM_ENOTFOUND, "key \"%s\" was deleted",
				  key->path.disp);
	if (options->root) {
		rc = lam__kv_path_parse(&root, NULL, 0, options->root,
					strlen(options->root));
		if (rc < 0)
			return lam__error_prefix(rc, "the hive root");
		bool under =
			root.len == 0 ||
			(key->path.len >= root.len &&
			 memcmp(key->path.fold, root.fold, root.len) == 0 &&
			 (key->path.len == root.len ||
			  key->path.fold[root.len] == '\\'));
		if (!under) {
			rc = lam__error(LAM_EINVAL,
					"key \"%s\" is not below the hive root "
					"\"%s\"",
					key->path.disp, root.disp);
			lam__kv_path_free(&root);
			return rc;
		}
		e.root = root.fold;
		e.root_len = root.len;
	}
	e.kv = key->kv;
	e.subkeys = !(options->flags & LAM_REG_NO_SUBKEYS);
	e.hex_strings = options->flags & LAM_REG_HEX_STRINGS;
	rc = lam__buf_puts(&e.out, "Windows Registry Editor Version 5.00\n\n");
	if (rc == 0)
		rc = export_key(&e, &key->path);
	lam__kv_path_free(&root);
	if (rc < 0) {
		lam__buf_free(&e.out);
		return rc;
	}
	if (options->flags & LAM_REG_UTF16) {
		lam__buf u = {0};
		rc = lam__buf_add(&u, "\xff\xfe", 2);
		for (size_t i = 0; rc == 0 && i < e.out.len;) {
			size_t n = strcspn(e.out.data + i, "\n");
			rc = lam__kv_utf8_to_utf16(&u, e.out.data + i, n);
			if (rc == 0 && i + n < e.out.len)
				rc = lam__buf_add(&u, "\r\0\n\0", 4);
			i += n + 1;
		}
		if (rc == 0)
			rc = lam__buf_add(&u, "\0", 1); /* a UTF-16 NUL */
		lam__buf_free(&e.out);
		if (rc < 0) {
			lam__buf_free(&u);
			return rc;
		}
		u.len--; /* the terminator is not counted */
		e.out = u;
	}
	*out = e.out.data;
	if (len)
		*len = e.out.len;
	return 0;
}
