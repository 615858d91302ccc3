/* SPDX-License-Identifier: Apache-2.0 */
/* What options.c shares with options_values.c: "k1=v1,k2=v2" specs, paths, serial modes. */
#ifndef CLOISTER_OPTIONS_VALUES_H
#define CLOISTER_OPTIONS_VALUES_H

#include <stdbool.h>
#include <stddef.h>

#include "cloister.pb-c.h"

/* One key of a "k1=v1,k2=v2" spec; value stays NULL when the key is absent. */
struct kv {
	const char *key;
	char *value;
};

/*
 * Splits spec in place over the keys in kvs. Unknown keys, repeated keys,
 * a missing '=' and empty values are refused; on error *ret_bad names the
 * offending item and *ret_problem what is wrong with it.
 */
int options_kv_split(char *spec, struct kv *kvs, size_t n, const char **ret_bad,
		     const char **ret_problem);

/* An absolute path shorter than max, without control characters. */
bool options_abs_path_ok(const char *path, size_t max);

/* A serial or console mode without a path: off, null, tty or pty. -EINVAL for any other. */
int options_serial_mode(const char *name, Cloister__SerialMode *ret);

/* *dst = strdup(src): 0 or -ENOMEM. */
int options_dup(char **dst, const char *src);

#endif
