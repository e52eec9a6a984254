/* SPDX-License-Identifier: MIT */
/* Layer exchange in a library built without libarchive or libcrypto. */
#include "util/internal.h"

static int unsupported(void)
{
	lam__error_reset();
	return lam__error(LAM_ENOTSUP,
			  "lamina was built without OCI support (libarchive "
			  "and libcrypto)");
}

int lam_layer_export_tar(lam_layer *layer, int fd,
			 const lam_tar_options *options,
			 char out_diff_id[LAM_OCI_DIGEST_SIZE],
			 char out_digest[LAM_OCI_DIGEST_SIZE])
{
	(void)layer;
	(void)fd;
	(void)options;
	if (out_diff_id)
		out_diff_id[0] = '\0';
	if (out_digest)
		out_digest[0] = '\0';
	return unsupported();
}

int lam_layer_import_tar(lam_layer **out, lam_store *store, int fd,
			 lam_layer *parent,
			 const lam_tar_import_options *options)
{
	(void)store;
	(void)fd;
	(void)parent;
	(void)options;
	if (out)
		*out = NULL;
	return unsupported();
}

int lam_oci_export(lam_store *store, const char *name, const char *dir,
		   const char *tag, const lam_oci_options *options)
{
	(void)store;
	(void)name;
	(void)dir;
	(void)tag;
	(void)options;
	return unsupported();
}

int lam_oci_import(lam_layer **out, lam_store *store, const char *dir,
		   const char *tag, const lam_oci_options *options)
{
	(void)store;
	(void)dir;
	(void)tag;
	(void)options;
	if (out)
		*out = NULL;
	return unsupported();
}
