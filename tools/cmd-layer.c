/* SPDX-License-Identifier: MIT */
/*
 * Commands about layers: import-dir, layers, show, ancestors, children,
 * merge-base, checkout, rm.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* A ref, as the listings show it next to the layer it points at. */
struct ref_entry {
	char *name; /* one allocation holds both strings */
	const char *id;
};

/* Every ref of the store, sorted by the layer it points at, then by name. */
struct ref_table {
	struct ref_entry *v;
	size_t n, cap;
};

static int add_ref(const char *name, const char *layer_id, void *userdata)
{
	struct ref_table *refs = userdata;
	size_t name_len = strlen(name) + 1;
	size_t id_len = strlen(layer_id) + 1;
	char *text;

	if (refs->n == refs->cap) {
		size_t cap = refs->cap ? refs->cap * 2 : 16;
		struct ref_entry *v = realloc(refs->v, cap * sizeof(*v));

		if (!v)
			return cli_oom();
		refs->v = v;
		refs->cap = cap;
	}
	text = malloc(name_len + id_len);
	if (!text)
		return cli_oom();
	memcpy(text, name, name_len);
	memcpy(text + name_len, layer_id, id_len);
	refs->v[refs->n].name = text;
	refs->v[refs->n].id = text + name_len;
	refs->n++;
	return 0;
}

static int compare_refs(const void *a, const void *b)
{
	const struct ref_entry *x = a, *y = b;
	int cmp = strcmp(x->id, y->id);

	return cmp ? cmp : strcmp(x->name, y->name);
}

static void free_refs(struct ref_table *refs)
{
	for (size_t i = 0; i < refs->n; i++)
		free(refs->v[i].name);
	free(refs->v);
}

/*
 * Read every ref once, up front. Looking refs up per layer from inside a
 * lam_layer_foreach() callback would cost one pass over the refs per layer,
 * and would call into the store while it is iterating.
 */
static int load_refs(struct cli *cli, struct ref_table *refs)
{
	if (cli_check(lam_store_ref_foreach(cli->store, add_ref, refs)))
		return CLI_EXIT_FAIL;
	if (refs->n)
		qsort(refs->v, refs->n, sizeof(*refs->v), compare_refs);
	return CLI_EXIT_OK;
}

/* Print the names of the refs to layer @id: "a,b" or "-", or a JSON array. */
static void print_refs(FILE *out, const struct ref_table *refs, const char *id,
		       bool json)
{
	size_t lo = 0, hi = refs->n, count = 0;

	/* Find the first ref to @id. */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (strcmp(refs->v[mid].id, id) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (json)
		fputc('[', out);
	for (; lo < refs->n && strcmp(refs->v[lo].id, id) == 0; lo++) {
		if (count++)
			fputs(json ? ", " : ",", out);
		if (json)
			cli_json_str(out, refs->v[lo].name);
		else
			fputs(refs->v[lo].name, out);
	}
	if (json)
		fputc(']', out);
	else if (!count)
		fputc('-', out);
}

/* Every attribute of a layer, as "key: value" lines or one JSON object. */
static void print_layer_record(lam_layer *layer, const struct ref_table *refs,
			       bool json)
{
	struct cli_rec rec;

	cli_rec_begin(&rec, json);
	cli_rec_str(&rec, "id", lam_layer_id(layer));
	cli_rec_str(&rec, "diff", lam_layer_diff_digest(layer));
	cli_rec_str(&rec, "uuid", lam_layer_uuid(layer));
	cli_rec_str(&rec, "parent", lam_layer_parent_id(layer));
	cli_rec_u64(&rec, "depth", lam_layer_depth(layer));
	cli_rec_u64(&rec, "size", lam_layer_size(layer));
	cli_rec_u64(&rec, "entries", lam_layer_entry_count(layer));
	cli_rec_time(&rec, "created", lam_layer_created(layer));
	print_refs(cli_rec_key(&rec, "refs"), refs, lam_layer_id(layer), json);
	cli_rec_next(&rec);
	cli_rec_end(&rec);
}

/*
 * Parse a command whose first argument is a layer, then open the store and
 * that layer. Return the number of arguments, or -1 with cli->status set.
 */
static int start_with_layer(struct cli *cli, int argc, char **argv,
			    const struct cli_opt *opts, int max_args,
			    lam_layer **layer)
{
	int nargs = cli_parse(cli, argc, argv, opts, max_args, max_args);

	*layer = NULL;
	if (nargs < 0)
		return -1;
	cli->status = cli_open_layer(cli, layer, cli->args[0]);
	return cli->status ? -1 : nargs;
}

int cli_cmd_import_dir(struct cli *cli, int argc, char **argv)
{
	const char *parent_name = NULL, *ref = NULL;
	const struct cli_opt opts[] = {
		{.name = "parent", .value = &parent_name},
		{.name = "ref", .value = &ref},
		{0},
	};
	lam_layer *parent = NULL, *layer = NULL;
	int status;

	if (cli_parse(cli, argc, argv, opts, 1, 1) < 0)
		return cli->status;
	/*
	 * Refuse a bad name before importing, so that a typo leaves no layer
	 * behind that no ref reaches.
	 */
	if (ref && cli_check(lam_store_ref_check_name(ref)))
		return CLI_EXIT_FAIL;
	if (parent_name)
		status = cli_open_layer(cli, &parent, parent_name);
	else
		status = cli_open_store(cli, 0);
	if (!status)
		status = cli_check(lam_layer_import_dir(
			&layer, cli->store, cli->args[0], parent, NULL));
	if (!status) {
		/*
		 * The id goes out even if the ref cannot be set: the layer is
		 * committed by now, and the caller needs its id to deal with
		 * it.
		 */
		printf("%s\n", lam_layer_id(layer));
		if (ref)
			status = cli_check(lam_store_ref_set(
				cli->store, ref, lam_layer_id(layer), NULL));
	}
	lam_layer_free(layer);
	lam_layer_free(parent);
	return status;
}

/* The state of "lamina layers" across lam_layer_foreach() callbacks. */
struct layers_walk {
	const struct ref_table *refs;
	bool json;
	size_t count;
};

static int print_layer_line(lam_layer *layer, void *userdata)
{
	struct layers_walk *walk = userdata;
	const char *parent = lam_layer_parent_id(layer);

	if (walk->json) {
		fputs(walk->count++ ? ",\n" : "[\n", stdout);
		print_layer_record(layer, walk->refs, true);
	} else {
		printf("%s %s %u %" PRIu64 " ", lam_layer_id(layer),
		       parent ? parent : "-", lam_layer_depth(layer),
		       lam_layer_size(layer));
		print_refs(stdout, walk->refs, lam_layer_id(layer), false);
		putchar('\n');
	}
	return cli_out_check();
}

int cli_cmd_layers(struct cli *cli, int argc, char **argv)
{
	int json = 0;
	const struct cli_opt opts[] = {
		{.name = "json", .flag = &json},
		{0},
	};
	struct ref_table refs = {0};
	struct layers_walk walk = {.refs = &refs};
	int status;

	if (cli_start(cli, argc, argv, opts, 0, 0) < 0)
		return cli->status;
	walk.json = json;
	status = load_refs(cli, &refs);
	if (!status)
		status = cli_check(
			lam_layer_foreach(cli->store, print_layer_line, &walk));
	if (!status && json)
		fputs(walk.count ? "\n]\n" : "[]\n", stdout);
	free_refs(&refs);
	return status;
}

int cli_cmd_show(struct cli *cli, int argc, char **argv)
{
	int json = 0;
	const struct cli_opt opts[] = {
		{.name = "json", .flag = &json},
		{0},
	};
	struct ref_table refs = {0};
	lam_layer *layer;
	int status;

	if (start_with_layer(cli, argc, argv, opts, 1, &layer) < 0)
		return cli->status;
	status = load_refs(cli, &refs);
	if (!status) {
		print_layer_record(layer, &refs, json);
		if (json)
			putchar('\n');
	}
	free_refs(&refs);
	lam_layer_free(layer);
	return status;
}

static int print_id(lam_layer *layer, void *userdata)
{
	(void)userdata;
	puts(lam_layer_id(layer));
	return cli_out_check();
}

/* Print the ids of the layers that @walk visits from the layer named. */
static int print_walk(struct cli *cli, int argc, char **argv,
		      int (*walk)(lam_layer *, lam_layer_cb, void *))
{
	const struct cli_opt opts[] = {{0}};
	lam_layer *layer;
	int status;

	if (start_with_layer(cli, argc, argv, opts, 1, &layer) < 0)
		return cli->status;
	status = cli_check(walk(layer, print_id, NULL));
	lam_layer_free(layer);
	return status;
}

int cli_cmd_ancestors(struct cli *cli, int argc, char **argv)
{
	return print_walk(cli, argc, argv, lam_layer_ancestors_foreach);
}

int cli_cmd_children(struct cli *cli, int argc, char **argv)
{
	return print_walk(cli, argc, argv, lam_layer_children_foreach);
}

int cli_cmd_merge_base(struct cli *cli, int argc, char **argv)
{
	const struct cli_opt opts[] = {{0}};
	lam_layer *a, *b = NULL, *base = NULL;
	int status;

	if (start_with_layer(cli, argc, argv, opts, 2, &a) < 0)
		return cli->status;
	status = cli_open_layer(cli, &b, cli->args[1]);
	if (!status)
		status = cli_check(lam_layer_merge_base(&base, a, b));
	if (!status && !base)
		status = cli_error("no common layer");
	if (!status)
		puts(lam_layer_id(base));
	lam_layer_free(base);
	lam_layer_free(b);
	lam_layer_free(a);
	return status;
}

int cli_cmd_checkout(struct cli *cli, int argc, char **argv)
{
	int no_chown = 0;
	const struct cli_opt opts[] = {
		{.name = "no-chown", .flag = &no_chown},
		{0},
	};
	lam_checkout_options options = LAM_CHECKOUT_OPTIONS_INIT;
	lam_layer *layer;
	int status;

	if (start_with_layer(cli, argc, argv, opts, 2, &layer) < 0)
		return cli->status;
	if (no_chown)
		options.flags |= LAM_CHECKOUT_NO_CHOWN;
	status = cli_check(lam_layer_checkout(layer, cli->args[1], &options));
	lam_layer_free(layer);
	return status;
}

int cli_cmd_rm(struct cli *cli, int argc, char **argv)
{
	int cascade = 0;
	const struct cli_opt opts[] = {
		{.name = "cascade", .flag = &cascade},
		{0},
	};
	lam_layer *layer;
	int status;

	if (start_with_layer(cli, argc, argv, opts, 1, &layer) < 0)
		return cli->status;
	status = cli_check(
		lam_layer_delete(layer, cascade ? LAM_DELETE_CASCADE : 0));
	lam_layer_free(layer);
	return status;
}
