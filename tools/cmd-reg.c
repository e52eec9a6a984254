/* SPDX-License-Identifier: MIT */
/*
 * The "reg" group: the registry-style key/value tree of layers and views
 * (query, set, delete, import, export). A layer is read as it is; a view
 * is named by its UUID (or a unique prefix) and opened read-only for
 * reading.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli.h"

/* Open KEY of what @name names: a layer (a ref or a digest prefix) or else
 * a stored view. *view is set for a view (the caller frees it after the
 * key). */
static int open_key(struct cli *cli, const char *name, const char *path,
		    bool writable, lam_view **view, lam_key **key)
{
	lam_view_options options = LAM_VIEW_OPTIONS_INIT;
	lam_layer *layer = NULL;
	int status = cli_open_store(cli, 0);
	int rc;

	*view = NULL;
	*key = NULL;
	if (status)
		return status;
	rc = writable ? LAM_ENOTFOUND :
			lam_layer_open(&layer, cli->store, name);
	if (rc == 0) {
		rc = lam_key_open_layer(key, layer, path);
		lam_layer_free(layer);
		return cli_check(rc);
	}
	if (rc != LAM_ENOTFOUND)
		return cli_check(rc);
	if (!writable)
		options.flags = LAM_VIEW_READONLY;
	rc = lam_view_open(view, cli->store, name, &options);
	if (rc == LAM_ENOTFOUND)
		return cli_error(writable ? "no view named '%s'" :
					    "no layer, ref or view named '%s'",
				 name);
	if (rc == 0 && path)
		rc = lam_key_open(key, *view, path, 0);
	return cli_check(rc);
}

static int open_view(struct cli *cli, const char *id, lam_view **out)
{
	int status = cli_open_store(cli, 0);

	*out = NULL;
	if (status)
		return status;
	return cli_check(lam_view_open(out, cli->store, id, NULL));
}

/* Print a value's data the way `reg query` on Windows does. */
static void print_data(const lam_kv_value *v)
{
	const unsigned char *d = v->data;

	switch (v->type) {
	case LAM_KV_SZ:
	case LAM_KV_EXPAND_SZ:
	case LAM_KV_LINK:
		fputs((const char *)d, stdout);
		break;
	case LAM_KV_DWORD:
		printf("0x%" PRIx32, (uint32_t)d[0] | (uint32_t)d[1] << 8 |
					     (uint32_t)d[2] << 16 |
					     (uint32_t)d[3] << 24);
		break;
	case LAM_KV_DWORD_BIG_ENDIAN:
		printf("0x%" PRIx32, (uint32_t)d[3] | (uint32_t)d[2] << 8 |
					     (uint32_t)d[1] << 16 |
					     (uint32_t)d[0] << 24);
		break;
	case LAM_KV_QWORD: {
		uint64_t q = 0;
		for (int i = 7; i >= 0; i--)
			q = q << 8 | d[i];
		printf("0x%" PRIx64, q);
		break;
	}
	case LAM_KV_MULTI_SZ:
		for (size_t i = 0; i + 1 < v->size;) {
			size_t n = strlen((const char *)d + i);
			if (i)
				fputs("\\0", stdout);
			fwrite(d + i, 1, n, stdout);
			i += n + 1;
		}
		break;
	default:
		for (size_t i = 0; i < v->size; i++)
			printf("%02X", d[i]);
		break;
	}
}

static void print_value(const lam_kv_value *v)
{
	printf("    %s    %s    ", v->name[0] ? v->name : "(Default)",
	       lam_kv_type_name(v->type));
	print_data(v);
	putchar('\n');
}

static int reg_query(struct cli *cli, int argc, char **argv)
{
	const struct cli_opt opts[] = {{0}};
	lam_view *view;
	lam_key *key;
	int status, nargs = cli_parse(cli, argc, argv, opts, 2, 3);

	if (nargs < 0)
		return cli->status;
	status = open_key(cli, cli->args[0], cli->args[1], false, &view, &key);
	if (status)
		goto out;
	printf("%s\n", lam_key_path(key)[0] ? lam_key_path(key) : "\\");
	if (nargs == 3) {
		/* One value. */
		lam_key_value_iter *it;
		lam_kv_value v;
		int rc = lam_key_value_iter_new(&it, key);
		bool found = false;
		while (rc == 0 && (rc = lam_key_value_iter_next(it, &v)) == 0) {
			if (strcasecmp(v.name, cli->args[2]) == 0 ||
			    (cli->args[2][0] == '\0' && v.name[0] == '\0')) {
				print_value(&v);
				found = true;
			}
		}
		lam_key_value_iter_free(it);
		if (rc != LAM_ITEROVER) {
			status = cli_check(rc);
		} else if (!found) {
			/* Let the library say it, with its words. */
			status = cli_check(lam_key_get_value(
				key, cli->args[2], NULL, NULL, 0, NULL));
			if (!status)
				status = cli_error("no value '%s'",
						   cli->args[2]);
		}
		goto out;
	}
	lam_key_value_iter *vi;
	lam_kv_value v;
	int rc = lam_key_value_iter_new(&vi, key);
	while (rc == 0 && (rc = lam_key_value_iter_next(vi, &v)) == 0)
		print_value(&v);
	lam_key_value_iter_free(vi);
	if (rc != LAM_ITEROVER) {
		status = cli_check(rc);
		goto out;
	}
	lam_key_subkey_iter *si;
	const char *name;
	bool first = true;
	rc = lam_key_subkey_iter_new(&si, key);
	while (rc == 0 && (rc = lam_key_subkey_iter_next(si, &name)) == 0) {
		if (first)
			putchar('\n');
		first = false;
		if (lam_key_path(key)[0])
			printf("%s\\%s\n", lam_key_path(key), name);
		else
			printf("%s\n", name);
	}
	lam_key_subkey_iter_free(si);
	if (rc != LAM_ITEROVER)
		status = cli_check(rc);
	else
		status = cli_out_check();
out:
	lam_key_free(key);
	lam_view_free(view);
	return status;
}

static const struct {
	const char *name;
	uint32_t type;
} type_names[] = {
	{"NONE", LAM_KV_NONE},
	{"SZ", LAM_KV_SZ},
	{"EXPAND_SZ", LAM_KV_EXPAND_SZ},
	{"BINARY", LAM_KV_BINARY},
	{"DWORD", LAM_KV_DWORD},
	{"DWORD_BIG_ENDIAN", LAM_KV_DWORD_BIG_ENDIAN},
	{"LINK", LAM_KV_LINK},
	{"MULTI_SZ", LAM_KV_MULTI_SZ},
	{"RESOURCE_LIST", LAM_KV_RESOURCE_LIST},
	{"FULL_RESOURCE_DESCRIPTOR", LAM_KV_FULL_RESOURCE_DESCRIPTOR},
	{"RESOURCE_REQUIREMENTS_LIST", LAM_KV_RESOURCE_REQUIREMENTS_LIST},
	{"QWORD", LAM_KV_QWORD},
};

static int parse_type(const char *s, uint32_t *out)
{
	if (strncasecmp(s, "REG_", 4) == 0)
		s += 4;
	for (size_t i = 0; i < sizeof(type_names) / sizeof(type_names[0]);
	     i++) {
		if (strcasecmp(s, type_names[i].name) == 0) {
			*out = type_names[i].type;
			return 0;
		}
	}
	return -1;
}

/* Turn DATA into a value's bytes; returns a malloc'd buffer. */
static int parse_data(struct cli *cli, uint32_t type, const char *s,
		      unsigned char **out, size_t *len)
{
	size_t n = strlen(s);
	unsigned char *b = malloc(n + 16);
	char *end;

	*out = NULL;
	if (b == NULL)
		return cli_oom();
	switch (type) {
	case LAM_KV_SZ:
	case LAM_KV_EXPAND_SZ:
	case LAM_KV_LINK:
		memcpy(b, s, n + 1);
		*len = n + 1;
		break;
	case LAM_KV_DWORD:
	case LAM_KV_DWORD_BIG_ENDIAN:
	case LAM_KV_QWORD: {
		errno = 0;
		unsigned long long v = strtoull(s, &end, 0);
		size_t size = type == LAM_KV_QWORD ? 8 : 4;
		if (errno || *s == '\0' || *end != '\0' ||
		    (size == 4 && v > UINT32_MAX)) {
			free(b);
			return cli_usage_error(cli, "bad number '%s'", s);
		}
		for (size_t i = 0; i < size; i++) {
			size_t shift = type == LAM_KV_DWORD_BIG_ENDIAN ?
					       8 * (size - 1 - i) :
					       8 * i;
			b[i] = (unsigned char)(v >> shift);
		}
		*len = size;
		break;
	}
	case LAM_KV_MULTI_SZ: {
		/* Strings separated by "\0", as `reg add` takes them. */
		size_t o = 0;
		for (const char *p = s; *p;) {
			const char *sep = strstr(p, "\\0");
			size_t m = sep ? (size_t)(sep - p) : strlen(p);
			memcpy(b + o, p, m);
			o += m;
			b[o++] = '\0';
			p += m + (sep ? 2 : 0);
		}
		b[o++] = '\0';
		*len = o;
		break;
	}
	default:
		/* Hex digits. */
		if (n % 2 != 0) {
			free(b);
			return cli_usage_error(cli, "hex data needs an even "
						    "number of digits");
		}
		for (size_t i = 0; i < n; i += 2) {
			char x[3] = {s[i], s[i + 1], 0};
			if (!isxdigit((unsigned char)x[0]) ||
			    !isxdigit((unsigned char)x[1])) {
				free(b);
				return cli_usage_error(cli, "bad hex data '%s'",
						       s);
			}
			b[i / 2] = (unsigned char)strtoul(x, NULL, 16);
		}
		*len = n / 2;
		break;
	}
	*out = b;
	return 0;
}

static int reg_set(struct cli *cli, int argc, char **argv)
{
	const struct cli_opt opts[] = {{0}};
	lam_view *view;
	unsigned char *data;
	size_t len = 0;
	uint32_t type;
	int status;

	if (cli_parse(cli, argc, argv, opts, 5, 5) < 0)
		return cli->status;
	if (parse_type(cli->args[3], &type) < 0)
		return cli_usage_error(cli, "unknown type '%s'", cli->args[3]);
	status = parse_data(cli, type, cli->args[4], &data, &len);
	if (status)
		return status;
	status = open_view(cli, cli->args[0], &view);
	if (!status)
		status = cli_check(lam_kv_set_value(
			view, cli->args[1], cli->args[2], type, data, len));
	free(data);
	lam_view_free(view);
	return status;
}

static int reg_delete(struct cli *cli, int argc, char **argv)
{
	const struct cli_opt opts[] = {{0}};
	lam_view *view;
	lam_key *key = NULL;
	int status, nargs = cli_parse(cli, argc, argv, opts, 2, 3);

	if (nargs < 0)
		return cli->status;
	status = open_view(cli, cli->args[0], &view);
	if (status)
		return status;
	if (nargs == 2) {
		status = cli_check(
			lam_key_delete(view, cli->args[1], LAM_KEY_TREE));
	} else {
		status = cli_check(lam_key_open(&key, view, cli->args[1], 0));
		if (!status)
			status = cli_check(
				lam_key_delete_value(key, cli->args[2]));
	}
	lam_key_free(key);
	lam_view_free(view);
	return status;
}

/* Read a whole file, or standard input for "-". */
static int read_all(const char *path, char **out, size_t *len)
{
	FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
	size_t cap = 1 << 16, n = 0;
	char *b;

	*out = NULL;
	if (f == NULL)
		return cli_error("%s: %s", path, strerror(errno));
	b = malloc(cap);
	while (b) {
		n += fread(b + n, 1, cap - n, f);
		if (n < cap)
			break;
		cap *= 2;
		char *nb = realloc(b, cap);
		if (nb == NULL)
			free(b);
		b = nb;
	}
	int failed = ferror(f);
	if (f != stdin)
		fclose(f);
	if (b == NULL)
		return cli_oom();
	if (failed) {
		free(b);
		return cli_error("%s: read error", path);
	}
	*out = b;
	*len = n;
	return 0;
}

static int reg_import(struct cli *cli, int argc, char **argv)
{
	const char *root = NULL;
	const struct cli_opt opts[] = {
		{.name = "root", .value = &root},
		{0},
	};
	lam_reg_options o = LAM_REG_OPTIONS_INIT;
	lam_view *view;
	char *text;
	size_t len = 0;
	int status;

	if (cli_parse(cli, argc, argv, opts, 2, 2) < 0)
		return cli->status;
	status = read_all(cli->args[1], &text, &len);
	if (status)
		return status;
	status = open_view(cli, cli->args[0], &view);
	o.root = root;
	o.source = cli->args[1];
	if (!status)
		status = cli_check(lam_kv_import_reg(view, text, len, &o));
	free(text);
	lam_view_free(view);
	return status;
}

static int reg_export(struct cli *cli, int argc, char **argv)
{
	const char *root = NULL;
	int utf16 = 0, hex = 0;
	const struct cli_opt opts[] = {
		{.name = "root", .value = &root},
		{.name = "utf16", .flag = &utf16},
		{.name = "hex-strings", .flag = &hex},
		{0},
	};
	lam_reg_options o = LAM_REG_OPTIONS_INIT;
	lam_view *view;
	lam_key *key;
	char *text = NULL;
	size_t len = 0;
	int status, nargs = cli_parse(cli, argc, argv, opts, 1, 2);

	if (nargs < 0)
		return cli->status;
	status = open_key(cli, cli->args[0], nargs == 2 ? cli->args[1] : "",
			  false, &view, &key);
	o.root = root;
	o.flags = (utf16 ? LAM_REG_UTF16 : 0) | (hex ? LAM_REG_HEX_STRINGS : 0);
	if (!status)
		status = cli_check(lam_key_export_reg(&text, &len, key, &o));
	if (!status) {
		fwrite(text, 1, len, stdout);
		status = cli_out_check();
	}
	lam_free(text);
	lam_key_free(key);
	lam_view_free(view);
	return status;
}

const struct cli_cmd cli_reg_commands[] = {
	{
		.name = "query",
		.run = reg_query,
		.synopsis = "LAYER|VIEW KEY [VALUE]",
		.summary = "print a key's values and subkeys, or one value",
		.details = "Prints the key's path, then one line per value "
			   "(NAME TYPE DATA, the default value as "
			   "(Default)), then the subkeys' paths, as reg "
			   "query does on Windows. KEY uses '\\' between "
			   "names; '' is the root. VIEW is a view's UUID or "
			   "a unique prefix of it, read as it stands.",
	},
	{
		.name = "set",
		.run = reg_set,
		.synopsis = "VIEW KEY NAME TYPE DATA",
		.summary = "set a value, creating the key if needed",
		.details = "TYPE is REG_SZ, REG_EXPAND_SZ, REG_LINK, "
			   "REG_DWORD, REG_DWORD_BIG_ENDIAN, REG_QWORD, "
			   "REG_MULTI_SZ, REG_BINARY, REG_NONE (the REG_ may "
			   "be left out). DATA is the text of a string "
			   "type, a number (decimal or 0x hex) for DWORD "
			   "and QWORD, strings separated by \\0 for "
			   "MULTI_SZ, and hex digits for the others. NAME '' "
			   "is the key's default value.",
	},
	{
		.name = "delete",
		.run = reg_delete,
		.synopsis = "VIEW KEY [NAME]",
		.summary = "delete a key with its subtree, or one value",
	},
	{
		.name = "import",
		.run = reg_import,
		.synopsis = "VIEW FILE.reg [--root KEY]",
		.summary = "apply a .reg file to a view, all of it or nothing",
		.details = "FILE.reg is a \"Windows Registry Editor Version "
			   "5.00\" or REGEDIT4 file, UTF-16 or UTF-8; '-' "
			   "reads standard input. Key names starting with "
			   "'\\' (as hivexregedit writes them) land below "
			   "--root KEY, or below the root.",
	},
	{
		.name = "export",
		.run = reg_export,
		.synopsis = "LAYER|VIEW [KEY] [--root KEY] [--utf16] "
			    "[--hex-strings]",
		.summary = "print a key and its subtree as a .reg file",
		.details = "The output is deterministic. --root KEY writes "
			   "the keys below KEY root-relative ('[\\Name]'), "
			   "as hivexregedit --merge takes them. --utf16 "
			   "writes UTF-16LE with CRLF, as regedit does. "
			   "--hex-strings writes string values as hex bytes "
			   "in UTF-16LE.",
	},
	{0},
};
