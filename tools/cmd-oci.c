/* SPDX-License-Identifier: MIT */
/*
 * "lamina layer export|import" (OCI layer tar streams on standard output
 * and input) and "lamina oci export|import" (OCI image layouts). Long
 * operations draw a progress line on standard error when it is a
 * terminal, and stay quiet otherwise.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

struct progress {
	bool on;
	const char *what;
	double last;
};

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int draw(uint64_t done, uint64_t total, void *userdata)
{
	struct progress *p = userdata;
	double t = now();

	if (!p->on || t - p->last < 0.1)
		return 0;
	p->last = t;
	if (total > 0 && done <= total) {
		int width = 30,
		    fill = (int)((double)done / (double)total * width);
		fprintf(stderr, "\r%s [%.*s%*s] %5.1f%% ", p->what, fill,
			"##############################", width - fill, "",
			100.0 * (double)done / (double)total);
	} else {
		fprintf(stderr, "\r%s %8.1f MiB ", p->what,
			(double)done / (1024.0 * 1024.0));
	}
	return 0;
}

static void progress_start(struct progress *p, const char *what)
{
	p->on = isatty(2);
	p->what = what;
	p->last = 0;
}

static void progress_end(struct progress *p)
{
	if (p->on)
		fputs("\r\033[K", stderr);
}

static int parse_compression(const char *name, unsigned int *out)
{
	if (name == NULL || strcmp(name, "gzip") == 0)
		*out = LAM_COMPRESS_GZIP;
	else if (strcmp(name, "none") == 0)
		*out = LAM_COMPRESS_NONE;
	else if (strcmp(name, "zstd") == 0)
		*out = LAM_COMPRESS_ZSTD;
	else
		return -1;
	return 0;
}

static int layer_export(struct cli *cli, int argc, char **argv)
{
	const char *compress = NULL;
	const struct cli_opt opts[] = {
		{.name = "compress", .value = &compress},
		{0},
	};
	lam_tar_options o = LAM_TAR_OPTIONS_INIT;
	struct progress p;
	lam_layer *layer = NULL;
	char diff[LAM_OCI_DIGEST_SIZE], digest[LAM_OCI_DIGEST_SIZE];
	int status;

	if (cli_parse(cli, argc, argv, opts, 1, 1) < 0)
		return cli->status;
	if (compress == NULL)
		compress = "none";
	if (parse_compression(compress, &o.compression) < 0)
		return cli_usage_error(cli, "--compress takes none, gzip or "
					    "zstd");
	if (isatty(1))
		return cli_usage_error(cli, "standard output is a terminal; "
					    "redirect it to a file");
	status = cli_open_layer(cli, &layer, cli->args[0]);
	if (status)
		return status;
	progress_start(&p, "exporting");
	o.progress = draw;
	o.userdata = &p;
	fflush(stdout);
	status = cli_check(lam_layer_export_tar(layer, 1, &o, diff, digest));
	progress_end(&p);
	if (!status && cli->verbose)
		fprintf(stderr, "diff id %s\ndigest %s\n", diff, digest);
	lam_layer_free(layer);
	return status;
}

static int layer_import(struct cli *cli, int argc, char **argv)
{
	const char *parent_name = NULL, *digest = NULL, *diff_id = NULL,
		   *ref = NULL;
	const struct cli_opt opts[] = {
		{.name = "parent", .value = &parent_name},
		{.name = "digest", .value = &digest},
		{.name = "diff-id", .value = &diff_id},
		{.name = "ref", .value = &ref},
		{0},
	};
	lam_tar_import_options o = LAM_TAR_IMPORT_OPTIONS_INIT;
	lam_layer *parent = NULL, *layer = NULL;
	struct progress p;
	int status;

	if (cli_parse(cli, argc, argv, opts, 0, 0) < 0)
		return cli->status;
	if (ref && cli_check(lam_store_ref_check_name(ref)))
		return CLI_EXIT_FAIL;
	if (parent_name)
		status = cli_open_layer(cli, &parent, parent_name);
	else
		status = cli_open_store(cli, 0);
	if (status)
		return status;
	o.digest = digest;
	o.diff_id = diff_id;
	progress_start(&p, "importing");
	o.progress = draw;
	o.userdata = &p;
	status = cli_check(
		lam_layer_import_tar(&layer, cli->store, 0, parent, &o));
	progress_end(&p);
	if (!status) {
		printf("%s\n", lam_layer_id(layer));
		if (ref)
			status = cli_check(lam_store_ref_set(
				cli->store, ref, lam_layer_id(layer), NULL));
	}
	lam_layer_free(layer);
	lam_layer_free(parent);
	return status;
}

/* Split "DIR[:TAG]" at its last colon, unless what follows is a path. */
static void split_layout(char *arg, const char **dir, const char **tag)
{
	char *colon = strrchr(arg, ':');

	*dir = arg;
	*tag = NULL;
	if (colon && colon != arg && !strchr(colon, '/')) {
		*colon = '\0';
		*tag = colon + 1;
	}
}

static int oci_export(struct cli *cli, int argc, char **argv)
{
	const char *compress = NULL;
	const struct cli_opt opts[] = {
		{.name = "compress", .value = &compress},
		{0},
	};
	lam_oci_options o = LAM_OCI_OPTIONS_INIT;
	struct progress p;
	const char *dir, *tag;
	char arg[4096];
	int status;

	if (cli_start(cli, argc, argv, opts, 2, 2) < 0)
		return cli->status;
	if (parse_compression(compress, &o.compression) < 0)
		return cli_usage_error(cli, "--compress takes none, gzip or "
					    "zstd");
	snprintf(arg, sizeof(arg), "%s", cli->args[1]);
	split_layout(arg, &dir, &tag);
	if (tag == NULL)
		tag = "latest";
	progress_start(&p, "exporting");
	o.progress = draw;
	o.userdata = &p;
	status = cli_check(
		lam_oci_export(cli->store, cli->args[0], dir, tag, &o));
	progress_end(&p);
	return status;
}

static int oci_import(struct cli *cli, int argc, char **argv)
{
	const char *ref = NULL, *platform = NULL;
	const struct cli_opt opts[] = {
		{.name = "ref", .value = &ref},
		{.name = "platform", .value = &platform},
		{0},
	};
	lam_oci_options o = LAM_OCI_OPTIONS_INIT;
	lam_layer *layer = NULL;
	struct progress p;
	const char *dir, *tag;
	char arg[4096];
	int status;

	if (cli_start(cli, argc, argv, opts, 1, 1) < 0)
		return cli->status;
	if (ref && cli_check(lam_store_ref_check_name(ref)))
		return CLI_EXIT_FAIL;
	snprintf(arg, sizeof(arg), "%s", cli->args[0]);
	split_layout(arg, &dir, &tag);
	o.platform = platform;
	progress_start(&p, "importing");
	o.progress = draw;
	o.userdata = &p;
	status = cli_check(lam_oci_import(&layer, cli->store, dir, tag, &o));
	progress_end(&p);
	if (!status) {
		printf("%s\n", lam_layer_id(layer));
		if (ref)
			status = cli_check(lam_store_ref_set(
				cli->store, ref, lam_layer_id(layer), NULL));
	}
	lam_layer_free(layer);
	return status;
}

const struct cli_cmd cli_layer_commands[] = {
	{
		.name = "export",
		.run = layer_export,
		.synopsis = "LAYER [--compress none|gzip|zstd]",
		.summary = "write LAYER's delta as an OCI layer tar to stdout",
		.details =
			"The stream holds the layer's own changes: whiteouts "
			"as .wh.NAME entries, opaque folders with "
			".wh..wh..opq. The same layer always gives the same "
			"bytes. -v prints its diff id and digest on "
			"standard error.",
	},
	{
		.name = "import",
		.run = layer_import,
		.synopsis = "[--parent LAYER] [--digest sha256:HEX] "
			    "[--diff-id sha256:HEX] [--ref NAME]",
		.summary = "commit an OCI layer tar from stdin; print its id",
		.details = "The stream may be plain, gzip or zstd. --digest "
			   "and --diff-id are checked (against the stream as "
			   "read, and decompressed) before anything is "
			   "stored. Paths leaving the layer, writes through "
			   "symlinks and malformed headers are refused.",
	},
	{0},
};

const struct cli_cmd cli_oci_commands[] = {
	{
		.name = "export",
		.run = oci_export,
		.synopsis = "LAYER DIR[:TAG] [--compress none|gzip|zstd]",
		.summary = "write LAYER's chain as an image in a layout folder",
		.details = "TAG defaults to \"latest\"; layers default to "
			   "gzip. Blobs already in DIR are shared.",
	},
	{
		.name = "import",
		.run = oci_import,
		.synopsis = "DIR[:TAG] [--ref NAME] [--platform OS/ARCH]",
		.summary = "import an image from a layout folder; print its id",
		.details = "Without TAG the layout must hold one image. "
			   "Layers the store holds already are not read "
			   "again. A multi-platform image gives the host's "
			   "platform unless --platform names another.",
	},
	{0},
};
