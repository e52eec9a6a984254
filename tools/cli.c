/* SPDX-License-Identifier: MIT */
/*
 * The lamina tool's shared helpers: option parsing, error reporting, opening
 * the store and layers, and output (records, JSON strings, write errors).
 */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

/* The errno of the first failed write to stdout, or 0. */
static int out_errno;

static const struct cli_opt *find_long(const struct cli_opt *opts,
				       const char *name, size_t len)
{
	for (; opts->name; opts++) {
		if (strlen(opts->name) == len &&
		    strncmp(opts->name, name, len) == 0)
			return opts;
	}
	return NULL;
}

static const struct cli_opt *find_letter(const struct cli_opt *opts,
					 char letter)
{
	for (; opts->name; opts++) {
		if (opts->letter == letter)
			return opts;
	}
	return NULL;
}

/*
 * Parse a cluster of one-letter flags ("-v", "-vv"). Letters never take a
 * value, which keeps clusters unambiguous.
 */
static int parse_letters(struct cli *cli, const struct cli_opt *opts,
			 const char *arg)
{
	for (const char *p = arg + 1; *p; p++) {
		const struct cli_opt *opt = find_letter(opts, *p);

		if (!opt)
			return cli_usage_error(cli, "unknown option '-%c'", *p);
		assert(opt->flag);
		(*opt->flag)++;
	}
	return 0;
}

/*
 * Parse the option at argv[*i], which starts with '-', and move *i past its
 * value when the value is the next argument. Return 0 or the exit status of
 * a usage error.
 */
static int parse_option(struct cli *cli, const struct cli_opt *opts, int argc,
			char **argv, int *i)
{
	const char *name, *eq;
	const struct cli_opt *opt;
	size_t len;

	if (argv[*i][1] != '-')
		return parse_letters(cli, opts, argv[*i]);
	name = argv[*i] + 2;
	eq = strchr(name, '=');
	len = eq ? (size_t)(eq - name) : strlen(name);
	opt = find_long(opts, name, len);
	if (!opt)
		return cli_usage_error(cli, "unknown option '--%.*s'", (int)len,
				       name);
	if (opt->flag) {
		if (eq)
			return cli_usage_error(
				cli, "option '--%s' takes no value", opt->name);
		(*opt->flag)++;
	} else if (eq) {
		*opt->value = eq + 1;
	} else if (*i + 1 < argc) {
		*opt->value = argv[++*i];
	} else {
		return cli_usage_error(cli, "option '--%s' needs a value",
				       opt->name);
	}
	return 0;
}

/* Whether @arg is an option rather than an argument ("-" alone is one). */
static bool is_option(const char *arg)
{
	return arg[0] == '-' && arg[1] != '\0';
}

/*
 * Parse the options that come before the first argument, as the global
 * options do before the command's name. *next receives the index of the
 * first argument (argc when there is none). Return 0 or the exit status of a
 * usage error.
 */
int cli_parse_leading(struct cli *cli, int argc, char **argv,
		      const struct cli_opt *opts, int *next)
{
	int i;

	for (i = 1; i < argc && is_option(argv[i]); i++) {
		int status;

		if (strcmp(argv[i], "--") == 0) {
			i++;
			break;
		}
		status = parse_option(cli, opts, argc, argv, &i);
		if (status)
			return status;
	}
	*next = i;
	return 0;
}

/*
 * The options every command accepts besides its own: "--store" may follow
 * the command as well as precede it, and "--help" shows the command's help.
 */
#define CLI_COMMON_OPTS 2

/*
 * Parse a command's arguments: its options (anywhere, so that they may follow
 * the arguments, until "--") and between @min_args and @max_args positional
 * arguments, which land in cli->args. Return the number of arguments, or -1
 * with cli->status set when the command must stop here: after a usage error,
 * or after printing the help that "--help" asked for.
 */
int cli_parse(struct cli *cli, int argc, char **argv,
	      const struct cli_opt *opts, int min_args, int max_args)
{
	struct cli_opt all[CLI_MAX_OPTS + CLI_COMMON_OPTS + 1];
	size_t n = 0;
	bool only_args = false;
	int help = 0;

	assert(max_args <= CLI_MAX_ARGS);
	for (; opts[n].name; n++) {
		assert(n < CLI_MAX_OPTS);
		all[n] = opts[n];
	}
	all[n++] = (struct cli_opt){.name = "store", .value = &cli->store_path};
	all[n++] =
		(struct cli_opt){.name = "help", .letter = 'h', .flag = &help};
	all[n] = (struct cli_opt){0};

	cli->nargs = 0;
	cli->status = CLI_EXIT_OK;
	for (int i = 1; i < argc && !cli->status; i++) {
		if (!only_args && strcmp(argv[i], "--") == 0)
			only_args = true;
		else if (!only_args && is_option(argv[i]))
			cli->status = parse_option(cli, all, argc, argv, &i);
		else if (cli->nargs < max_args)
			cli->args[cli->nargs++] = argv[i];
		else
			cli->status = cli_usage_error(
				cli, "unexpected argument '%s'", argv[i]);
	}
	if (cli->status)
		return -1;
	if (help) {
		cli_print_command_help(cli);
		return -1;
	}
	if (cli->nargs < min_args) {
		cli->status = cli_usage_error(cli, "missing arguments");
		return -1;
	}
	return cli->nargs;
}

/*
 * Parse a command's arguments as cli_parse() does, then open the store.
 * Return the number of arguments, or -1 with cli->status set.
 */
int cli_start(struct cli *cli, int argc, char **argv,
	      const struct cli_opt *opts, int min_args, int max_args)
{
	int nargs = cli_parse(cli, argc, argv, opts, min_args, max_args);

	if (nargs < 0)
		return -1;
	cli->status = cli_open_store(cli, 0);
	return cli->status ? -1 : nargs;
}

static CLI_PRINTF(2, 0) void vreport(const char *context, const char *fmt,
				     va_list ap)
{
	/* Keep what was printed so far in order with the message. */
	fflush(stdout);
	fputs("lamina: ", stderr);
	if (context[0])
		fprintf(stderr, "%s: ", context);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

/* Print "lamina: <message>" on stderr and return CLI_EXIT_FAIL. */
int cli_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vreport("", fmt, ap);
	va_end(ap);
	return CLI_EXIT_FAIL;
}

/*
 * Print a usage error, naming the command it concerns, with a pointer to the
 * help; return CLI_EXIT_USAGE.
 */
int cli_usage_error(const struct cli *cli, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vreport(cli->cmd_name, fmt, ap);
	va_end(ap);
	fputs("Try 'lamina --help'.\n", stderr);
	return CLI_EXIT_USAGE;
}

/* The message of the lamina error that @rc reports. */
static const char *lam_message(int rc)
{
	const lam_error *err = lam_error_last();

	return err->message[0] ? err->message : lam_strerror(rc);
}

/*
 * Turn the result of a lamina call into 0 or CLI_EXIT_FAIL (which is also
 * CLI_STOP), printing the error record when the call failed. A positive
 * @rc is CLI_STOP coming back out of a callback, already reported. Call it
 * straight after the failing call: the next lamina call resets the record.
 */
int cli_check(int rc)
{
	if (rc < 0)
		cli_error("%s", lam_message(rc));
	return rc ? CLI_EXIT_FAIL : CLI_EXIT_OK;
}

/* Report an allocation failure of the tool's own; return CLI_STOP. */
int cli_oom(void)
{
	return cli_error("%s", strerror(ENOMEM));
}

/*
 * Open the store named by --store or $LAMINA_STORE, once; later calls reuse
 * it. Return 0 or an exit status, having reported why.
 */
int cli_open_store(struct cli *cli, unsigned int flags)
{
	lam_store_options options = LAM_STORE_OPTIONS_INIT;
	const char *path = cli->store_path;
	int rc;

	if (cli->store)
		return CLI_EXIT_OK;
	if (!path)
		path = getenv("LAMINA_STORE");
	if (!path || !path[0])
		return cli_usage_error(
			cli,
			"no store given: use --store DIR or set LAMINA_STORE");
	options.flags = flags;
	rc = lam_store_open(&cli->store, path, &options);
	/* The likeliest cause is a mistyped path or a store not made yet. */
	if (rc == LAM_ENOTFOUND && !(flags & LAM_STORE_CREATE))
		return cli_error("%s (create a store with 'lamina init')",
				 lam_message(rc));
	return cli_check(rc);
}

/*
 * Open the store, then a layer by @name (a ref or a digest prefix). Return 0
 * or an exit status, having reported why; *out is NULL on failure.
 */
int cli_open_layer(struct cli *cli, lam_layer **out, const char *name)
{
	int status = cli_open_store(cli, 0);

	*out = NULL;
	if (status)
		return status;
	return cli_check(lam_layer_open(out, cli->store, name));
}

/*
 * Whether stdout still works: 0, or CLI_STOP once a write has failed, so
 * that a long listing into a closed pipe or a full disk stops early.
 */
int cli_out_check(void)
{
	if (!ferror(stdout))
		return 0;
	if (!out_errno)
		out_errno = errno;
	return CLI_STOP;
}

/*
 * Flush and close stdout, and fail the run if any output was lost: a tool
 * whose output went missing must not claim success. A reader that went away
 * (EPIPE, when SIGPIPE is ignored) is not worth a message.
 */
int cli_finish(int status)
{
	bool failed = cli_out_check() != 0;
	int err = out_errno;

	if (fclose(stdout) != 0) {
		failed = true;
		err = errno;
	}
	if (!failed)
		return status;
	/* Not through cli_error(), which would flush the closed stream. */
	if (err != EPIPE)
		fprintf(stderr, "lamina: write error%s%s\n", err ? ": " : "",
			err ? strerror(err) : "");
	return CLI_EXIT_FAIL;
}

/*
 * The length of the valid UTF-8 sequence at @p, or 0 when it is not one
 * (overlong forms, surrogates and code points past U+10FFFF included).
 */
static size_t utf8_len(const unsigned char *p)
{
	static const uint32_t min_cp[] = {0, 0, 0x80, 0x800, 0x10000};
	size_t len;
	uint32_t cp;

	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf) {
		len = 2;
		cp = p[0] & 0x1f;
	} else if (p[0] >= 0xe0 && p[0] <= 0xef) {
		len = 3;
		cp = p[0] & 0x0f;
	} else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
		len = 4;
		cp = p[0] & 0x07;
	} else {
		return 0;
	}
	/* A NUL fails this test too, so the walk never passes the end. */
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3f);
	}
	if (cp < min_cp[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

/*
 * Write @s as a JSON string. Bytes that are not UTF-8 become U+FFFD, since
 * JSON text must be Unicode and names from a file system need not be.
 */
void cli_json_str(FILE *out, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	fputc('"', out);
	while (*p) {
		size_t len = utf8_len(p);

		if (len == 0) {
			fputs("\\ufffd", out);
			len = 1;
		} else if (*p == '"' || *p == '\\') {
			fputc('\\', out);
			fputc(*p, out);
		} else if (*p == '\n') {
			fputs("\\n", out);
		} else if (*p == '\t') {
			fputs("\\t", out);
		} else if (*p < 0x20) {
			fprintf(out, "\\u%04x", *p);
		} else {
			fwrite(p, 1, len, out);
		}
		p += len;
	}
	fputc('"', out);
}

/* Start a record on stdout: a JSON object, or a block of lines. */
void cli_rec_begin(struct cli_rec *rec, bool json)
{
	rec->out = stdout;
	rec->json = json;
	rec->fields = 0;
	if (json)
		fputc('{', rec->out);
}

/* End a record; a JSON object is left without a newline after it. */
void cli_rec_end(struct cli_rec *rec)
{
	if (rec->json)
		fputc('}', rec->out);
}

/*
 * Start a field and return the stream its value goes to; the caller writes
 * the value in the record's form and ends the field with cli_rec_next().
 */
FILE *cli_rec_key(struct cli_rec *rec, const char *key)
{
	if (!rec->json) {
		fprintf(rec->out, "%s: ", key);
		return rec->out;
	}
	if (rec->fields++)
		fputs(", ", rec->out);
	cli_json_str(rec->out, key);
	fputs(": ", rec->out);
	return rec->out;
}

/* End the field that cli_rec_key() started. */
void cli_rec_next(struct cli_rec *rec)
{
	if (!rec->json)
		fputc('\n', rec->out);
}

/* A string field; NULL prints as null in JSON and as "-" in text. */
void cli_rec_str(struct cli_rec *rec, const char *key, const char *value)
{
	FILE *out = cli_rec_key(rec, key);

	if (!value)
		fputs(rec->json ? "null" : "-", out);
	else if (rec->json)
		cli_json_str(out, value);
	else
		fputs(value, out);
	cli_rec_next(rec);
}

void cli_rec_u64(struct cli_rec *rec, const char *key, uint64_t value)
{
	fprintf(cli_rec_key(rec, key), "%" PRIu64, value);
	cli_rec_next(rec);
}

/* A number already formatted as text (for example "1.25"). */
void cli_rec_number(struct cli_rec *rec, const char *key, const char *text)
{
	fputs(text, cli_rec_key(rec, key));
	cli_rec_next(rec);
}

/*
 * A time in seconds since the epoch: a number in JSON, which programs read
 * most easily, and ISO 8601 in UTC in text, which people do.
 */
void cli_rec_time(struct cli_rec *rec, const char *key, int64_t value)
{
	FILE *out = cli_rec_key(rec, key);
	time_t t = (time_t)value;
	char text[64];
	struct tm tm;

	if (!rec->json && gmtime_r(&t, &tm) &&
	    strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%SZ", &tm))
		fputs(text, out);
	else
		fprintf(out, "%" PRId64, value);
	cli_rec_next(rec);
}
