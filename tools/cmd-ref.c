/* SPDX-License-Identifier: MIT */
/*
 * The "ref" group: set, get, ls and rm, which name layers. Every change is a
 * compare-and-swap in the library, which --expect and --new expose.
 */
#include "cli.h"

static int ref_set(struct cli *cli, int argc, char **argv)
{
	const char *expect = NULL;
	int must_be_new = 0;
	const struct cli_opt opts[] = {
		{.name = "expect", .value = &expect},
		{.name = "new", .flag = &must_be_new},
		{0},
	};
	lam_layer *layer;
	int status;

	if (cli_parse(cli, argc, argv, opts, 2, 2) < 0)
		return cli->status;
	if (must_be_new && expect)
		return cli_usage_error(cli, "give --expect or --new, not both");
	/* The library reads an expected value of "" as "must not exist". */
	if (must_be_new)
		expect = "";
	status = cli_open_layer(cli, &layer, cli->args[1]);
	if (!status)
		status = cli_check(lam_store_ref_set(
			cli->store, cli->args[0], lam_layer_id(layer), expect));
	lam_layer_free(layer);
	return status;
}

static int ref_get(struct cli *cli, int argc, char **argv)
{
	const struct cli_opt opts[] = {{0}};
	char *id;

	if (cli_start(cli, argc, argv, opts, 1, 1) < 0)
		return cli->status;
	if (cli_check(lam_store_ref_get(&id, cli->store, cli->args[0])))
		return CLI_EXIT_FAIL;
	puts(id);
	lam_free(id);
	return CLI_EXIT_OK;
}

static int print_ref(const char *name, const char *layer_id, void *userdata)
{
	(void)userdata;
	printf("%s %s\n", name, layer_id);
	return cli_out_check();
}

static int ref_ls(struct cli *cli, int argc, char **argv)
{
	const struct cli_opt opts[] = {{0}};

	if (cli_start(cli, argc, argv, opts, 0, 0) < 0)
		return cli->status;
	return cli_check(lam_store_ref_foreach(cli->store, print_ref, NULL));
}

static int ref_rm(struct cli *cli, int argc, char **argv)
{
	const char *expect = NULL;
	const struct cli_opt opts[] = {
		{.name = "expect", .value = &expect},
		{0},
	};

	if (cli_start(cli, argc, argv, opts, 1, 1) < 0)
		return cli->status;
	return cli_check(
		lam_store_ref_delete(cli->store, cli->args[0], expect));
}

const struct cli_cmd cli_ref_commands[] = {
	{
		.name = "set",
		.run = ref_set,
		.synopsis = "NAME LAYER [--expect OLD | --new]",
		.summary = "point the ref NAME at LAYER",
		.details = "With --expect OLD, NAME changes only if it still "
			   "holds OLD, a full layer id; with --new (or "
			   "--expect \"\"), only if it does not exist yet.",
	},
	{
		.name = "get",
		.run = ref_get,
		.synopsis = "NAME",
		.summary = "print the id of the layer NAME points at",
	},
	{
		.name = "ls",
		.run = ref_ls,
		.synopsis = "",
		.summary = "list the refs as NAME ID lines, by name",
	},
	{
		.name = "rm",
		.run = ref_rm,
		.synopsis = "NAME [--expect OLD]",
		.summary = "delete the ref NAME",
		.details = "With --expect OLD, NAME goes only if it still "
			   "holds OLD, a full layer id.",
	},
	{0},
};
