/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "util/internal.h"

/* The record's message lives in a fixed thread-local buffer so that
 * reporting never allocates. */
#define MSG_MAX 1024

static _Thread_local char msg_buf[MSG_MAX];
static _Thread_local lam_error record = {0, 0, ""};

static lam_log_cb log_cb;
static lam_log_level log_max = LAM_LOG_WARNING;
static void *log_userdata;

const lam_error *lam_error_last(void)
{
	if (record.message == NULL)
		record.message = "";
	return &record;
}

void lam_error_clear(void)
{
	lam__error_reset();
}

void lam__error_reset(void)
{
	record.code = 0;
	record.os_errno = 0;
	msg_buf[0] = '\0';
	record.message = msg_buf;
}

static int set_v(int code, int os_errno, const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));

static int set_v(int code, int os_errno, const char *fmt, va_list ap)
{
	record.code = code;
	record.os_errno = os_errno;
	int n = vsnprintf(msg_buf, sizeof(msg_buf), fmt, ap);
	if (n >= 0 && os_errno != 0 && (size_t)n < sizeof(msg_buf))
		snprintf(msg_buf + n, sizeof(msg_buf) - (size_t)n, ": %s",
			 strerror(os_errno));
	record.message = msg_buf;
	return code;
}

int lam__error(int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	set_v(code, 0, fmt, ap);
	va_end(ap);
	return code;
}

int lam__error_os(int code, int os_errno, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	set_v(code, os_errno, fmt, ap);
	va_end(ap);
	return code;
}

int lam__errno_to_code(int e)
{
	switch (e) {
	case ENOENT:
		return LAM_ENOTFOUND;
	case EEXIST:
	case ENOTEMPTY:
		return LAM_EEXISTS;
	case EACCES:
	case EPERM:
		return LAM_EACCES;
	case ENOMEM:
		return LAM_ENOMEM;
	case ENAMETOOLONG:
		return LAM_ENAMETOOLONG;
	case EDQUOT:
		return LAM_EQUOTA;
	case ENOTSUP:
		return LAM_ENOTSUP;
	case EINVAL:
		return LAM_EINVAL;
	default:
		return LAM_EIO;
	}
}

int lam__error_errno(int os_errno, const char *fmt, ...)
{
	int code = lam__errno_to_code(os_errno);
	va_list ap;
	va_start(ap, fmt);
	set_v(code, os_errno, fmt, ap);
	va_end(ap);
	return code;
}

int lam__error_prefix(int code, const char *fmt, ...)
{
	char old[MSG_MAX];
	snprintf(old, sizeof(old), "%s", msg_buf);
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(msg_buf, sizeof(msg_buf), fmt, ap);
	va_end(ap);
	if (n >= 0 && (size_t)n + 2 < sizeof(msg_buf) && old[0] != '\0') {
		size_t room = sizeof(msg_buf) - (size_t)n;
		memcpy(msg_buf + n, ": ", 2);
		/* Cut the older detail rather than the new context. */
		size_t len = strnlen(old, room - 3);
		memcpy(msg_buf + n + 2, old, len);
		msg_buf[(size_t)n + 2 + len] = '\0';
	}
	record.code = code;
	record.message = msg_buf;
	return code;
}

void lam__error_save(lam__error_saved *out)
{
	out->code = record.code;
	out->os_errno = record.os_errno;
	snprintf(out->message, sizeof(out->message), "%s", msg_buf);
}

void lam__error_restore(const lam__error_saved *in)
{
	record.code = in->code;
	record.os_errno = in->os_errno;
	snprintf(msg_buf, sizeof(msg_buf), "%s", in->message);
	record.message = msg_buf;
}

const char *lam_strerror(int code)
{
	switch (code) {
	case LAM_OK:
		return "success";
	case LAM_ERROR:
		return "error";
	case LAM_ENOMEM:
		return "out of memory";
	case LAM_EINVAL:
		return "invalid argument";
	case LAM_EIO:
		return "input/output error";
	case LAM_ENOTFOUND:
		return "not found";
	case LAM_EEXISTS:
		return "already exists";
	case LAM_EAMBIGUOUS:
		return "ambiguous name";
	case LAM_ECORRUPT:
		return "corrupted data";
	case LAM_EVERSION:
		return "unsupported format version";
	case LAM_EBUSY:
		return "in use";
	case LAM_ECONFLICT:
		return "changed concurrently";
	case LAM_ENAMETOOLONG:
		return "name too long";
	case LAM_EACCES:
		return "permission denied";
	case LAM_EBADNAME:
		return "invalid name";
	case LAM_EUNSAFE:
		return "unsafe input";
	case LAM_ENOTSUP:
		return "not supported";
	case LAM_EQUOTA:
		return "quota exceeded";
	case LAM_EPOSIX:
		return "file operation failed";
	case LAM_EUNAVAILABLE:
		return "resource control unavailable";
	case LAM_ITEROVER:
		return "iteration over";
	default:
		return "unknown error";
	}
}

void lam_set_log_handler(lam_log_cb cb, lam_log_level max_level, void *userdata)
{
	log_cb = cb;
	log_max = max_level;
	log_userdata = userdata;
}

void lam__log(lam_log_level level, const char *fmt, ...)
{
	if (log_cb == NULL || level > log_max)
		return;
	char buf[MSG_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	log_cb(level, buf, log_userdata);
}

const char *lam_version(void)
{
	return LAMINA_VERSION_STRING;
}

int lam_version_number(void)
{
	return LAMINA_VERSION_NUMBER;
}
