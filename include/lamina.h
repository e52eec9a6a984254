/* SPDX-License-Identifier: MIT */
/**
 * @file lamina.h
 * @brief lamina: layered namespace virtualisation, one header for all of it.
 *
 * Include this header to get every public lamina interface; each concept
 * also has its own header under <lamina/…> that compiles alone.
 */
#ifndef LAMINA_H
#define LAMINA_H

#include <lamina/version.h>
#include <lamina/common.h>
#include <lamina/error.h>
#include <lamina/store.h>
#include <lamina/layer.h>
#include <lamina/rc.h>
#include <lamina/view.h>
#include <lamina/kv.h>
#include <lamina/archive.h>

#endif
