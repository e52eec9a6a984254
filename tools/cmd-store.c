/* SPDX-License-Identifier: MIT */
/*
 * Commands about the store as a whole: init, check, gc, stats, graph.
 */
#include <inttypes.h>

#include "cli.h"

int cli_cmd_init(struct cli *cli, int argc, char **argv)
{
	const struct cli_opt opts[] = {{0}};

	if (cli_parse(cli, argc, argv, opts, 0, 0) < 0)
		return cli->status;
	return cli_open_store(cli, LAM_STORE_CREATE);
}

static int print_problem(const char *what, const char *problem, void *userdata)
{
	(void)userdata;
	printf("%s: %s\n", what, problem);
	return cli_out_check();
}

int cli_cmd_check(struct cli *cli, int argc, char **argv)
{
	int quick = 0;
	const struct cli_opt opts[] = {
		{.name = "quick", .flag = &quick},
		{0},
	};
	size_t problems = 0;

	if (cli_start(cli, argc, argv, opts, 0, 0) < 0)
		return cli->status;
	if (cli_check(lam_store_check(cli->store, quick ? LAM_CHECK_QUICK : 0,
				      print_problem, NULL, &problems)))
		return CLI_EXIT_FAIL;
	if (problems)
		return cli_error("%zu problem%s found", problems,
				 problems == 1 ? "" : "s");
	return CLI_EXIT_OK;
}

int cli_cmd_gc(struct cli *cli, int argc, char **argv)
{
	const struct cli_opt opts[] = {{0}};
	lam_gc_stats gc;

	if (cli_start(cli, argc, argv, opts, 0, 0) < 0)
		return cli->status;
	if (cli_check(lam_store_gc(cli->store, &gc)))
		return CLI_EXIT_FAIL;
	printf("removed %" PRIu64 " layers, %" PRIu64 " objects, %" PRIu64
	       " bytes\n",
	       gc.layers_removed, gc.objects_removed, gc.bytes_freed);
	return CLI_EXIT_OK;
}

int cli_cmd_stats(struct cli *cli, int argc, char **argv)
{
	int json = 0;
	const struct cli_opt opts[] = {
		{.name = "json", .flag = &json},
		{0},
	};
	lam_store_stats stats;
	struct cli_rec rec;
	double dedup = 1.0;
	char ratio[32];

	if (cli_start(cli, argc, argv, opts, 0, 0) < 0)
		return cli->status;
	if (cli_check(lam_store_stats_get(cli->store, &stats)))
		return CLI_EXIT_FAIL;

	/* An empty store saves nothing, and must not divide by zero. */
	if (stats.stored_bytes)
		dedup = (double)stats.logical_bytes /
			(double)stats.stored_bytes;
	snprintf(ratio, sizeof(ratio), "%.2f", dedup);
	cli_rec_begin(&rec, json);
	cli_rec_u64(&rec, "layers", stats.layers);
	cli_rec_u64(&rec, "refs", stats.refs);
	cli_rec_u64(&rec, "entries", stats.entries);
	cli_rec_u64(&rec, "files", stats.files);
	cli_rec_u64(&rec, "objects", stats.objects);
	cli_rec_u64(&rec, "logical_bytes", stats.logical_bytes);
	cli_rec_u64(&rec, "stored_bytes", stats.stored_bytes);
	cli_rec_number(&rec, "dedup_ratio", ratio);
	cli_rec_end(&rec);
	if (json)
		putchar('\n');
	return CLI_EXIT_OK;
}

int cli_cmd_graph(struct cli *cli, int argc, char **argv)
{
	/* DOT is the only format so far; the flag leaves room for others. */
	int dot = 0;
	const struct cli_opt opts[] = {
		{.name = "dot", .flag = &dot},
		{0},
	};
	char *text;

	if (cli_start(cli, argc, argv, opts, 0, 0) < 0)
		return cli->status;
	if (cli_check(lam_store_graph_dot(&text, cli->store)))
		return CLI_EXIT_FAIL;
	fputs(text, stdout);
	lam_free(text);
	return CLI_EXIT_OK;
}
