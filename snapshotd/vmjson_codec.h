/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What vmjson_codec.c shares with the document's own decoder: where a decode
 * is in the document, for error messages that name the key path.
 */
#ifndef CLOISTER_VMJSON_CODEC_H
#define CLOISTER_VMJSON_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

/* Where a decode is in the document, for error messages. */
struct conv {
	char path[256];
	size_t path_len;
	char *err;
	size_t errlen;
};

/* Writes "<path>: what" into the error; returns -EINVAL. */
int conv_fail(struct conv *cv, const char *what);

/* Appends to the path; returns the old length to restore with path_pop(). */
size_t path_push(struct conv *cv, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
size_t path_push_key(struct conv *cv, const char *key);
void path_pop(struct conv *cv, size_t mark);

/* An unsigned JSON integer no larger than max. */
int json_unsigned(struct conv *cv, struct json_object *o, uint64_t max, uint64_t *ret);

#endif
