/* SPDX-License-Identifier: MIT */
/**
 * @file lamina/common.h
 * @brief Definitions every lamina header shares: export macro, hooks, logging.
 *
 * lamina never prints, never exits and never aborts on out-of-memory. A host
 * that wants to see what the library does installs a log handler; a host
 * that manages memory itself installs an allocator. Both hooks are global
 * and must be set once at start-up, before any other lamina call and before
 * any thread uses the library.
 */
#ifndef LAMINA_COMMON_H
#define LAMINA_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include <lamina/version.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) && __GNUC__ >= 4
#define LAM_API __attribute__((visibility("default")))
#else
#define LAM_API
#endif

/**
 * The allocator hook. All four members must be set; lamina calls them
 * instead of the C library's functions for every allocation it makes.
 * @since 0.1
 */
typedef struct lam_allocator {
	void *(*malloc_fn)(size_t size, void *userdata);
	void *(*realloc_fn)(void *ptr, size_t size, void *userdata);
	void (*free_fn)(void *ptr, void *userdata);
	void *userdata; /**< passed to each function, last */
} lam_allocator;

/**
 * Install an allocator, or restore the C library's with NULL.
 *
 * Call it before any other lamina call: memory allocated by one allocator
 * must not be freed by another.
 *
 * @param[in] allocator the functions to use; copied, so it may be a local.
 * @since 0.1
 */
LAM_API void lam_set_allocator(const lam_allocator *allocator);

/**
 * Free memory that lamina handed to the caller (strings documented as "free
 * with lam_free"). Accepts NULL.
 * @param[in] ptr the memory, or NULL.
 * @since 0.1
 */
LAM_API void lam_free(void *ptr);

/** Log levels, most severe first. @since 0.1 */
typedef enum lam_log_level {
	LAM_LOG_ERROR = 0,
	LAM_LOG_WARNING = 1,
	LAM_LOG_INFO = 2,
	LAM_LOG_DEBUG = 3,
} lam_log_level;

/**
 * A log handler: receives one complete message, without trailing newline.
 * It may be called from the worker threads a call such as
 * lam_layer_import_tar() starts for its own length, so it must be safe to
 * call from any thread (the allocator, by contrast, is only ever called
 * from the threads that call lamina).
 * @param[in] level how severe the message is.
 * @param[in] message borrowed, valid during the call only.
 * @param[in] userdata the pointer given to lam_set_log_handler().
 * @since 0.1
 */
typedef void (*lam_log_cb)(lam_log_level level, const char *message,
			   void *userdata);

/**
 * Install a log handler, or remove it with NULL (the default: lamina then
 * says nothing at all).
 * @param[in] cb the handler, or NULL.
 * @param[in] max_level messages less severe than this are not built.
 * @param[in] userdata passed to each call of @p cb.
 * @since 0.1
 */
LAM_API void lam_set_log_handler(lam_log_cb cb, lam_log_level max_level,
				 void *userdata);

/**
 * The version of the library loaded at run time, as "MAJOR.MINOR.PATCH".
 * @return a static string, never NULL.
 * @since 0.1
 */
LAM_API const char *lam_version(void);

/**
 * The version of the library loaded at run time as one number, comparable
 * with LAMINA_VERSION_NUMBER.
 * @since 0.1
 */
LAM_API int lam_version_number(void);

#ifdef __cplusplus
}
#endif

#endif
