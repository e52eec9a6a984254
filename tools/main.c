/* SPDX-License-Identifier: MIT */
/*
 * lamina: the command-line tool over liblamina.
 *
 * This file holds the command table, the global options, the dispatch from a
 * command's name to its handler and the help. A new command is one entry in
 * cli_commands (or in a group's table) and one handler; a new group of
 * subcommands is one entry here pointing at the group's own table.
 */
#include <ctype.h>
#include <string.h>

#include "cli.h"

static int cmd_help(struct cli *cli, int argc, char **argv);

/*
 * Where the summaries start in the list of commands, and the width of
 * paragraphs in the help.
 */
#define HELP_COLUMN 32
#define HELP_WIDTH  78

const struct cli_cmd cli_commands[] = {
	{
		.name = "init",
		.run = cli_cmd_init,
		.synopsis = "",
		.summary = "create the store, or keep the one that exists",
	},
	{
		.name = "import-dir",
		.run = cli_cmd_import_dir,
		.synopsis = "SRC [--parent LAYER] [--ref NAME]",
		.summary = "commit a host folder as a layer; print its id",
		.details = "Without --parent, SRC is a whole root file system "
			   "and becomes a base layer. With --parent, SRC is a "
			   "diff in overlayfs form: a 0/0 character device is "
			   "a whiteout, and a directory whose "
			   "trusted.overlay.opaque xattr is \"y\" is opaque. "
			   "--ref NAME points the ref NAME at the new layer; "
			   "the name is checked before anything is imported.",
	},
	{
		.name = "layers",
		.run = cli_cmd_layers,
		.synopsis = "[--json]",
		.summary = "list the layers: id, parent, depth, size, refs",
		.details = "Each line reads ID PARENT DEPTH SIZE REFS, with "
			   "\"-\" for no parent and for no refs, and refs "
			   "separated by commas. --json prints an array of "
			   "objects holding every attribute of each layer.",
	},
	{
		.name = "show",
		.run = cli_cmd_show,
		.synopsis = "LAYER [--json]",
		.summary = "print every attribute of a layer",
	},
	{
		.name = "ancestors",
		.run = cli_cmd_ancestors,
		.synopsis = "LAYER",
		.summary = "print the chain from LAYER down to its base",
	},
	{
		.name = "children",
		.run = cli_cmd_children,
		.synopsis = "LAYER",
		.summary = "print the layers whose parent is LAYER",
	},
	{
		.name = "merge-base",
		.run = cli_cmd_merge_base,
		.synopsis = "A B",
		.summary = "print the nearest layer in both chains",
		.details = "Exits with status 1 when the chains share no "
			   "layer.",
	},
	{
		.name = "checkout",
		.run = cli_cmd_checkout,
		.synopsis = "LAYER DEST [--no-chown]",
		.summary = "write the merged tree of LAYER's chain to DEST",
		.details = "DEST must be missing or empty. --no-chown leaves "
			   "owners as they fall, which is what a user other "
			   "than root needs.",
	},
	{
		.name = "rm",
		.run = cli_cmd_rm,
		.synopsis = "LAYER [--cascade]",
		.summary = "delete a layer",
		.details = "A layer that a ref points at or that has children "
			   "is kept, unless --cascade asks to delete its "
			   "descendants and their refs too. Run gc afterwards "
			   "to free the content that no layer uses any more.",
	},
	{
		.name = "ref",
		.sub = cli_ref_commands,
		.synopsis = "SUBCOMMAND [ARGS]",
		.summary = "name layers with refs",
	},
	{
		.name = "rc",
		.sub = cli_rc_commands,
		.synopsis = "SUBCOMMAND [ARGS]",
		.summary = "run commands under cgroup limits (no store needed)",
	},
	{
		.name = "view",
		.sub = cli_view_commands,
		.synopsis = "SUBCOMMAND [ARGS]",
		.summary = "change files in copy-on-write views over layers",
	},
	{
		.name = "reg",
		.sub = cli_reg_commands,
		.synopsis = "SUBCOMMAND [ARGS]",
		.summary = "read and change the registry-style key/value tree",
	},
	{
		.name = "layer",
		.sub = cli_layer_commands,
		.synopsis = "SUBCOMMAND [ARGS]",
		.summary = "move single layers as OCI layer tar streams",
	},
	{
		.name = "oci",
		.sub = cli_oci_commands,
		.synopsis = "SUBCOMMAND [ARGS]",
		.summary = "export and import images in OCI image layouts",
	},
	{
		.name = "ls",
		.run = cli_cmd_ls,
		.synopsis = "LAYER|VIEW [PATH] [-R]",
		.summary = "list a folder of a layer's merged tree or a view",
		.details = "Each line reads MODE UID:GID SIZE NAME, MODE as "
			   "ls -l writes it, MAJOR,MINOR in place of SIZE for "
			   "a device, and \"-> TARGET\" after a symlink's "
			   "name. PATH (the root by default) may name a "
			   "non-folder, which gets its one line; a symlink is "
			   "shown, not followed. -R, --recursive lists the "
			   "folders below too, each entry by its path below "
			   "PATH, a folder right before its contents.",
	},
	{
		.name = "cat",
		.run = cli_cmd_cat,
		.synopsis = "LAYER|VIEW PATH",
		.summary = "print a file of a layer's merged tree or a view",
	},
	{
		.name = "diff",
		.run = cli_cmd_diff,
		.synopsis = "A [B] [--metadata]",
		.summary = "print what changed from layer A to layer B",
		.details = "One line per changed path, in path order: \"A "
			   "PATH\" added, \"M PATH\" modified, \"D PATH\" "
			   "deleted (a deleted folder is one line), the root "
			   "being \".\". A change of metadata only (mode, "
			   "owner, times, xattrs) prints as M, or as m with "
			   "--metadata. With one argument, a layer is "
			   "compared with its parent and a view with its "
			   "base (the changes it holds). Key/value changes "
			   "follow, in the stable order: \"A|D "
			   "reg:KEY\\SUB\" for a key, \"A|M|D "
			   "reg:KEY\\SUB:NAME\" for a value (NAME empty for "
			   "the default value); an added or deleted key is "
			   "listed, then its values and subkeys.",
	},
	{
		.name = "squash",
		.run = cli_cmd_squash,
		.synopsis = "TOP [--onto BASE] [--ref NAME]",
		.summary = "merge a chain of layers into one; print its id",
		.details = "The new layer holds the merged content of TOP's "
			   "chain above BASE (an ancestor of TOP) and has BASE "
			   "as its parent; without --onto it is a base layer "
			   "holding TOP's whole tree. --ref NAME points the "
			   "ref NAME at the new layer; the name is checked "
			   "first.",
	},
	{
		.name = "graph",
		.run = cli_cmd_graph,
		.synopsis = "[--dot]",
		.summary = "print the layer graph as Graphviz DOT",
	},
	{
		.name = "check",
		.run = cli_cmd_check,
		.synopsis = "[--quick]",
		.summary = "verify the store; exit 1 if anything is wrong",
		.details = "Prints one line per problem, WHAT: PROBLEM. "
			   "--quick skips re-hashing content, checking only "
			   "that it is present and of the right size.",
	},
	{
		.name = "gc",
		.run = cli_cmd_gc,
		.synopsis = "",
		.summary = "delete unreachable layers and unused content",
	},
	{
		.name = "stats",
		.run = cli_cmd_stats,
		.synopsis = "[--json]",
		.summary = "print the store's counts and sizes",
	},
	{
		.name = "help",
		.run = cmd_help,
		.synopsis = "[COMMAND]",
		.summary = "show this help, or a command's",
	},
	{0},
};

static const struct cli_cmd *find_command(const struct cli_cmd *table,
					  const char *name)
{
	for (; table->name; table++) {
		if (strcmp(table->name, name) == 0)
			return table;
	}
	return NULL;
}

/* Make @cmd the command being run, appending its name to the full name. */
static void enter_command(struct cli *cli, const struct cli_cmd *cmd)
{
	size_t len = strlen(cli->cmd_name);

	snprintf(cli->cmd_name + len, sizeof(cli->cmd_name) - len, "%s%s",
		 len ? " " : "", cmd->name);
	cli->cmd = cmd;
}

/* Print @summary as a sentence. */
static void print_sentence(const char *summary)
{
	printf("%c%s.\n", toupper((unsigned char)summary[0]), summary + 1);
}

/*
 * List the commands of @table, each group's subcommands under their full
 * names, with the summaries lined up where the names leave room.
 */
static void print_commands(const char *prefix, const struct cli_cmd *table)
{
	for (; table->name; table++) {
		char name[64];
		int width;

		if (table->sub) {
			snprintf(name, sizeof(name), "%s%s ", prefix,
				 table->name);
			print_commands(name, table->sub);
			continue;
		}
		width = printf("  %s%s%s%s", prefix, table->name,
			       table->synopsis[0] ? " " : "", table->synopsis);
		if (width >= HELP_COLUMN - 1) {
			putchar('\n');
			width = 0;
		}
		printf("%*s%s\n", HELP_COLUMN - width, "", table->summary);
	}
}

/* Print a paragraph, breaking lines between words before HELP_WIDTH. */
static void print_wrapped(const char *text)
{
	size_t column = 0;

	while (*text) {
		size_t len = strcspn(text, " ");

		if (column && column + 1 + len > HELP_WIDTH) {
			putchar('\n');
			column = 0;
		} else if (column) {
			putchar(' ');
			column++;
		}
		fwrite(text, 1, len, stdout);
		column += len;
		text += len + strspn(text + len, " ");
	}
	putchar('\n');
}

static void print_main_help(void)
{
	fputs("Usage: lamina [--store DIR] COMMAND [ARGS]\n\n", stdout);
	print_wrapped("Manage a lamina store: immutable layers, each a delta "
		      "over its parent, the refs that name them, and "
		      "copy-on-write views over them.");
	fputs("\nCommands:\n", stdout);
	print_commands("", cli_commands);
	fputs("\n"
	      "Options:\n"
	      "  --store DIR    the store's folder; $LAMINA_STORE by default\n"
	      "  -v, --verbose  show the library's log (twice for debugging "
	      "detail)\n"
	      "  -h, --help     show this help\n"
	      "  --version      show the version\n"
	      "\n",
	      stdout);
	print_wrapped("LAYER is a ref, or at least 4 hex digits of a layer's "
		      "id (its chain digest); a ref wins over a digest "
		      "prefix. ID and VIEW name a view by its UUID or a "
		      "unique prefix of at least 4 characters; where a "
		      "LAYER|VIEW name could be either, a layer wins. A "
		      "command's options may follow its arguments, and "
		      "\"--\" ends them. Exit status: 0 on success, 1 on "
		      "failure, 2 on a usage error.");
}

/* The help of the group being run ("lamina ref --help"). */
static void print_group_help(const struct cli *cli)
{
	char prefix[sizeof(cli->cmd_name) + 1];

	printf("Usage: lamina %s %s\n\n", cli->cmd_name, cli->cmd->synopsis);
	print_sentence(cli->cmd->summary);
	fputs("\nSubcommands:\n", stdout);
	snprintf(prefix, sizeof(prefix), "%s ", cli->cmd_name);
	print_commands(prefix, cli->cmd->sub);
}

/* The help of the command being run ("lamina ref set --help"). */
void cli_print_command_help(const struct cli *cli)
{
	const struct cli_cmd *cmd = cli->cmd;

	printf("Usage: lamina %s%s%s\n\n", cli->cmd_name,
	       cmd->synopsis[0] ? " " : "", cmd->synopsis);
	print_sentence(cmd->summary);
	if (cmd->details) {
		putchar('\n');
		print_wrapped(cmd->details);
	}
}

/*
 * Run the command that argv[0] names in @table, descending into groups.
 * Return the exit status.
 */
static int dispatch(struct cli *cli, const struct cli_cmd *table, int argc,
		    char **argv)
{
	const char *kind = cli->cmd ? "subcommand" : "command";
	const struct cli_cmd *cmd;

	if (argc < 1)
		return cli_usage_error(cli, "missing %s", kind);
	if (cli->cmd &&
	    (strcmp(argv[0], "--help") == 0 || strcmp(argv[0], "-h") == 0)) {
		print_group_help(cli);
		return CLI_EXIT_OK;
	}
	cmd = find_command(table, argv[0]);
	if (!cmd)
		return cli_usage_error(cli, "unknown %s '%s'", kind, argv[0]);
	enter_command(cli, cmd);
	if (cmd->sub)
		return dispatch(cli, cmd->sub, argc - 1, argv + 1);
	return cmd->run(cli, argc, argv);
}

/* "lamina help [COMMAND [SUBCOMMAND]]": the help of what the words name. */
static int cmd_help(struct cli *cli, int argc, char **argv)
{
	const struct cli_cmd *table = cli_commands;

	cli->cmd = NULL;
	cli->cmd_name[0] = '\0';
	for (int i = 1; i < argc; i++) {
		const struct cli_cmd *cmd =
			table ? find_command(table, argv[i]) : NULL;

		if (!cmd)
			return cli_usage_error(cli, "no such command '%s'",
					       argv[i]);
		enter_command(cli, cmd);
		table = cmd->sub;
	}
	if (!cli->cmd)
		print_main_help();
	else if (cli->cmd->sub)
		print_group_help(cli);
	else
		cli_print_command_help(cli);
	return CLI_EXIT_OK;
}

static void print_version(void)
{
	const char *loaded = lam_version();

	/* Name the loaded library too when it is not the one built against. */
	if (strcmp(loaded, LAMINA_VERSION_STRING) == 0)
		printf("lamina %s\n", LAMINA_VERSION_STRING);
	else
		printf("lamina %s (library %s)\n", LAMINA_VERSION_STRING,
		       loaded);
}

static void log_message(lam_log_level level, const char *message,
			void *userdata)
{
	static const char *const names[] = {"error", "warning", "info",
					    "debug"};

	(void)userdata;
	if ((unsigned int)level >= sizeof(names) / sizeof(names[0]))
		level = LAM_LOG_DEBUG;
	fprintf(stderr, "lamina: %s: %s\n", names[level], message);
}

int main(int argc, char **argv)
{
	struct cli cli = {0};
	int help = 0, version = 0, next, status;
	const struct cli_opt globals[] = {
		{.name = "store", .value = &cli.store_path},
		{.name = "verbose", .letter = 'v', .flag = &cli.verbose},
		{.name = "help", .letter = 'h', .flag = &help},
		{.name = "version", .flag = &version},
		{0},
	};

	status = cli_parse_leading(&cli, argc, argv, globals, &next);
	if (status)
		return cli_finish(status);

	/*
	 * The library's log stays quiet unless asked for: what it warns about
	 * also reaches the user as an error or as a command's output (check
	 * logs each problem it reports, for one). The library wants its hooks
	 * set before any other call.
	 */
	if (cli.verbose)
		lam_set_log_handler(
			log_message,
			cli.verbose == 1 ? LAM_LOG_INFO : LAM_LOG_DEBUG, NULL);

	if (help)
		print_main_help();
	else if (version)
		print_version();
	else
		status = dispatch(&cli, cli_commands, argc - next, argv + next);
	lam_store_free(cli.store);
	return cli_finish(status);
}
