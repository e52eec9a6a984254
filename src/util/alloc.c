/* SPDX-License-Identifier: MIT */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/internal.h"

static void *std_malloc(size_t size, void *userdata)
{
	(void)userdata;
	return malloc(size);
}

static void *std_realloc(void *ptr, size_t size, void *userdata)
{
	(void)userdata;
	return realloc(ptr, size);
}

static void std_free(void *ptr, void *userdata)
{
	(void)userdata;
	free(ptr);
}

static lam_allocator allocator = {std_malloc, std_realloc, std_free, NULL};

/* Failure injection for the out-of-memory sweep. Tests run it in one
 * thread, so plain globals are enough. */
static uint64_t fail_at;
static uint64_t alloc_count;

void lam__test_fail_alloc_at(uint64_t n)
{
	fail_at = n;
	alloc_count = 0;
}

uint64_t lam__test_alloc_count(void)
{
	return alloc_count;
}

static bool injected_failure(void)
{
	if (fail_at == 0)
		return false;
	alloc_count++;
	return alloc_count == fail_at;
}

void lam_set_allocator(const lam_allocator *a)
{
	if (a == NULL || a->malloc_fn == NULL || a->realloc_fn == NULL ||
	    a->free_fn == NULL) {
		allocator = (lam_allocator){std_malloc, std_realloc, std_free,
					    NULL};
		return;
	}
	allocator = *a;
}

void *lam__malloc(size_t size)
{
	if (injected_failure())
		return NULL;
	return allocator.malloc_fn(size ? size : 1, allocator.userdata);
}

void *lam__calloc(size_t n, size_t size)
{
	if (size != 0 && n > SIZE_MAX / size)
		return NULL;
	void *p = lam__malloc(n * size);
	if (p != NULL)
		memset(p, 0, n * size);
	return p;
}

void *lam__realloc(void *ptr, size_t size)
{
	if (injected_failure())
		return NULL;
	return allocator.realloc_fn(ptr, size ? size : 1, allocator.userdata);
}

void lam__free(void *ptr)
{
	if (ptr != NULL)
		allocator.free_fn(ptr, allocator.userdata);
}

void lam_free(void *ptr)
{
	lam__free(ptr);
}

char *lam__strndup(const char *s, size_t n)
{
	char *p = lam__malloc(n + 1);
	if (p == NULL)
		return NULL;
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

char *lam__strdup(const char *s)
{
	return lam__strndup(s, strlen(s));
}

char *lam__sprintf(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return NULL;
	char *p = lam__malloc((size_t)n + 1);
	if (p == NULL)
		return NULL;
	va_start(ap, fmt);
	vsnprintf(p, (size_t)n + 1, fmt, ap);
	va_end(ap);
	return p;
}

static uint64_t crash_at;
static uint64_t crash_passed;

void lam__test_crash_at(uint64_t n)
{
	crash_at = n;
	crash_passed = 0;
}

uint64_t lam__test_crash_points_passed(void)
{
	return __atomic_load_n(&crash_passed, __ATOMIC_RELAXED);
}

void lam__crash_point(void)
{
	/* Atomic: the tar import's workers pass crash points too. */
	uint64_t n = __atomic_add_fetch(&crash_passed, 1, __ATOMIC_RELAXED);
	if (crash_at != 0 && n == crash_at)
		kill(getpid(), SIGKILL);
}
