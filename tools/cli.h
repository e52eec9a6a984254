/* SPDX-License-Identifier: MIT */
/*
 * The lamina command-line tool: what its source files share.
 *
 * Each subcommand is a handler in a table: main.c holds the top-level table,
 * and a command group such as "ref" brings its own table, which the
 * top-level one points at. A handler receives its own name in argv[0],
 * parses its options with cli_parse(), opens the store and layers it needs
 * through the helpers below, and returns the process exit status.
 *
 * The tool uses only lamina's public API, like any other host program.
 */
#ifndef LAMINA_CLI_H
#define LAMINA_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <lamina.h>

#define CLI_PRINTF(fmt, first) __attribute__((format(printf, fmt, first)))

/* Process exit statuses. */
enum cli_exit {
	CLI_EXIT_OK = 0,
	CLI_EXIT_FAIL = 1,
	CLI_EXIT_USAGE = 2,
};

/*
 * What a lamina callback returns to stop an iteration once the tool has
 * already reported why (a write error, a failed nested call). It is positive
 * so that it never collides with a lam_err code, and it equals
 * CLI_EXIT_FAIL so that it can double as the exit status.
 */
#define CLI_STOP CLI_EXIT_FAIL

/* The most positional arguments, and options, that any command takes. */
#define CLI_MAX_ARGS 8
#define CLI_MAX_OPTS 16

struct cli;

/* A command's handler: argv[0] is the command's own name. */
typedef int (*cli_handler)(struct cli *cli, int argc, char **argv);

/*
 * One entry of a command table; a table ends with a zeroed entry. An entry
 * either runs a handler or, for a group such as "ref", points at the table
 * of its subcommands.
 */
struct cli_cmd {
	const char *name;
	cli_handler run;
	const struct cli_cmd *sub;
	const char *synopsis; /* the arguments, as the help shows them */
	const char *summary;  /* one line, lower case, no full stop */
	const char *details;  /* NULL, or paragraphs for "lamina help CMD" */
};

/*
 * One option a command accepts. An option with an argument names where its
 * value goes; a flag names a counter that each occurrence increments.
 * Options end with a zeroed entry.
 */
struct cli_opt {
	const char *name; /* the long name, without "--" */
	char letter;	  /* a one-letter flag, or 0 */
	const char **value;
	int *flag;
};

/* The state of one run of the tool. */
struct cli {
	const char *store_path; /* --store, or NULL for $LAMINA_STORE */
	lam_store *store;	/* opened on first use */
	int verbose;
	const struct cli_cmd *cmd; /* the command being run */
	char cmd_name[64];	   /* its full name ("ref set"), for messages */
	const char *args[CLI_MAX_ARGS];
	int nargs;
	int status; /* the exit status when cli_parse() returns -1 */
};

/* main.c */
extern const struct cli_cmd cli_commands[];
void cli_print_command_help(const struct cli *cli);

/* cli.c: arguments */
int cli_parse(struct cli *cli, int argc, char **argv,
	      const struct cli_opt *opts, int min_args, int max_args);
int cli_start(struct cli *cli, int argc, char **argv,
	      const struct cli_opt *opts, int min_args, int max_args);
int cli_parse_leading(struct cli *cli, int argc, char **argv,
		      const struct cli_opt *opts, int *next);

/* cli.c: errors */
int cli_error(const char *fmt, ...) CLI_PRINTF(1, 2);
int cli_usage_error(const struct cli *cli, const char *fmt, ...)
	CLI_PRINTF(2, 3);
int cli_check(int rc);
int cli_oom(void);

/* cli.c: the store and its layers */
int cli_open_store(struct cli *cli, unsigned int flags);
int cli_open_layer(struct cli *cli, lam_layer **out, const char *name);

/* cli.c: output */
int cli_out_check(void);
int cli_finish(int status);
void cli_json_str(FILE *out, const char *s);

/*
 * A record: named fields printed either as "key: value" lines or as the
 * members of one JSON object, so that each command describes its data once.
 */
struct cli_rec {
	FILE *out;
	bool json;
	unsigned int fields;
};

void cli_rec_begin(struct cli_rec *rec, bool json);
void cli_rec_end(struct cli_rec *rec);
FILE *cli_rec_key(struct cli_rec *rec, const char *key);
void cli_rec_next(struct cli_rec *rec);
void cli_rec_str(struct cli_rec *rec, const char *key, const char *value);
void cli_rec_u64(struct cli_rec *rec, const char *key, uint64_t value);
void cli_rec_time(struct cli_rec *rec, const char *key, int64_t value);
void cli_rec_number(struct cli_rec *rec, const char *key, const char *text);

/* Command handlers, by file. */
int cli_cmd_init(struct cli *cli, int argc, char **argv);
int cli_cmd_check(struct cli *cli, int argc, char **argv);
int cli_cmd_gc(struct cli *cli, int argc, char **argv);
int cli_cmd_stats(struct cli *cli, int argc, char **argv);
int cli_cmd_graph(struct cli *cli, int argc, char **argv);

int cli_cmd_import_dir(struct cli *cli, int argc, char **argv);
int cli_cmd_layers(struct cli *cli, int argc, char **argv);
int cli_cmd_show(struct cli *cli, int argc, char **argv);
int cli_cmd_ancestors(struct cli *cli, int argc, char **argv);
int cli_cmd_children(struct cli *cli, int argc, char **argv);
int cli_cmd_merge_base(struct cli *cli, int argc, char **argv);
int cli_cmd_checkout(struct cli *cli, int argc, char **argv);
int cli_cmd_rm(struct cli *cli, int argc, char **argv);

extern const struct cli_cmd cli_ref_commands[];

extern const struct cli_cmd cli_rc_commands[];

int cli_cmd_ls(struct cli *cli, int argc, char **argv);
int cli_cmd_cat(struct cli *cli, int argc, char **argv);
int cli_cmd_diff(struct cli *cli, int argc, char **argv);
int cli_cmd_squash(struct cli *cli, int argc, char **argv);

extern const struct cli_cmd cli_view_commands[];

extern const struct cli_cmd cli_reg_commands[];

extern const struct cli_cmd cli_layer_commands[];
extern const struct cli_cmd cli_oci_commands[];

#endif
