/* SPDX-License-Identifier: MIT */
/**
 * @file lamina/error.h
 * @brief Error codes and the thread-local error record.
 *
 * Every fallible lamina function returns an `int`: 0 on success or one of
 * the negative `LAM_E*` codes below. lamina owns these numbers and never
 * changes them; an operating-system errno, when there is one, travels in the
 * error record instead of the return value.
 *
 * Each fallible call resets the calling thread's error record on entry and
 * fills it on failure with the code, the errno (or 0) and a message that
 * names the thing that failed ("opening layer 3f2a…: index: checksum
 * mismatch"). Building the record never allocates, so out-of-memory is
 * reported like any other error.
 *
 * Threading: the record is per thread; reading it never blocks.
 */
#ifndef LAMINA_ERROR_H
#define LAMINA_ERROR_H

#include <lamina/common.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * lamina's error codes. The numbers are part of the ABI and never change.
 * @since 0.1
 */
typedef enum lam_err {
	LAM_OK = 0,	     /**< success */
	LAM_ERROR = -1,	     /**< an error with no better code */
	LAM_ENOMEM = -2,     /**< an allocation failed */
	LAM_EINVAL = -3,     /**< an argument is invalid */
	LAM_EIO = -4,	     /**< an operating-system call failed (see errno) */
	LAM_ENOTFOUND = -5,  /**< the named thing does not exist */
	LAM_EEXISTS = -6,    /**< the named thing already exists */
	LAM_EAMBIGUOUS = -7, /**< a digest prefix matches several layers */
	LAM_ECORRUPT = -8,   /**< stored data fails its checks */
	LAM_EVERSION = -9, /**< the store's format is newer than this library */
	LAM_EBUSY = -10,   /**< refused: something still depends on it */
	LAM_ECONFLICT = -11,	/**< compare-and-swap lost: the value changed */
	LAM_ENAMETOOLONG = -12, /**< a path or name is over its limit */
	LAM_EACCES = -13,	/**< permission denied reading or writing */
	LAM_EBADNAME = -14,	/**< a name has a forbidden form or character */
	LAM_EUNSAFE = -15, /**< input would reach outside where it belongs */
	LAM_ENOTSUP = -16, /**< not supported here (feature, filesystem) */
	LAM_EQUOTA = -17,  /**< a quota would be exceeded */
	LAM_EPOSIX = -18,  /**< a file-API error; its errno is in the record */
	LAM_EUNAVAILABLE =
		-19,	    /**< a resource control the host cannot honour */
	LAM_ITEROVER = -31, /**< an iterator has no more items (not an error) */
} lam_err;

/**
 * The thread-local error record.
 * @since 0.1
 */
typedef struct lam_error {
	int code;     /**< a lam_err value; 0 when the last call succeeded */
	int os_errno; /**< the operating system's errno, or 0 */
	const char *message; /**< never NULL; "" when there is no error */
} lam_error;

/**
 * The calling thread's error record, as the last fallible call left it.
 *
 * @return a borrowed pointer, never NULL, valid until the next lamina call on
 *         this thread.
 * @since 0.1
 */
LAM_API const lam_error *lam_error_last(void);

/**
 * Reset the calling thread's error record to "no error".
 * @since 0.1
 */
LAM_API void lam_error_clear(void);

/**
 * A short, static description of an error code ("not found").
 * @param[in] code a lam_err value; unknown values give "unknown error".
 * @return a static string, never NULL.
 * @since 0.1
 */
LAM_API const char *lam_strerror(int code);

#ifdef __cplusplus
}
#endif

#endif
