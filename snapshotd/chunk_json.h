/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The chunk tables and the integrity of vm.json itself, in the document:
 *
 *   "integrity": {"digest": "sha256", "chunk_size": 1048576,
 *                 "compression": "none"|"zstd",
 *                 "encryption": "none"|"xchacha20poly1305-ietf",
 *                 "id": "<32 hex>", "document": "<64 hex>"}
 *   "memory_regions"[i]."chunks": ["zero" | "<64 hex>" (plain)
 *                                  | [offset, length, "<64 hex>"] (stored)]
 *
 * "document" is the SHA-256 of the vm.json text as written with those
 * 64 hex digits replaced by "0"s. An encrypted snapshot's vm.json is an
 * envelope around that text, sealed with the same key as the chunks:
 *
 *   {"version": 1, "encrypted": {"cipher": "xchacha20poly1305-ietf",
 *    "key": "required", "nonce": "<48 hex>", "sealed": "<base64>"}}
 */
#ifndef CLOISTER_CHUNK_JSON_H
#define CLOISTER_CHUNK_JSON_H

#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "chunk.h"

#define CHUNK_CIPHER "xchacha20poly1305-ietf"
#define CHUNK_DIGEST_NAME DIGEST_NAME

/* The "integrity" object of s, with a "document" placeholder of zeros. */
struct json_object *chunk_integrity_json(const struct chunk_set *s);

/* The "chunks" array of region i. */
struct json_object *chunk_table_json(const struct chunk_set *s, size_t i);

/*
 * The format "integrity" names into *fmt (key fields untouched) and its
 * document digest (hex) into doc_hex. -EINVAL with err set.
 */
int chunk_integrity_from_json(struct json_object *o, struct chunk_format *fmt,
			      char doc_hex[2 * CHUNK_DIGEST_BYTES + 1], char *err, size_t errlen);

/* Region i's "chunks" into table i of s (already sized); -EINVAL with err naming the entry. */
int chunk_table_from_json(struct chunk_set *s, size_t i, struct json_object *arr, char *err,
			  size_t errlen);

/* Puts the digest of text into its zero placeholder (in place); -EINVAL without one, -EIO. */
int chunk_document_seal_digest(char *text);

/* Checks text (len bytes) against doc_hex, the digest it records. -EBADMSG on a mismatch. */
int chunk_document_check(const char *text, size_t len, const char *doc_hex, char *err,
			 size_t errlen);

/* The envelope of text under key; *ret_text is free()d by the caller. */
int chunk_envelope_seal(const char *text, const uint8_t key[CHUNK_KEY_BYTES], char **ret_text);

/* Whether doc is an envelope (has "encrypted"). */
bool chunk_envelope_is(struct json_object *doc);

/*
 * The text inside the envelope doc, opened with key (NULL: none given).
 * -EKEYREJECTED for a wrong key, -ENOKEY without one, -EINVAL for a bad
 * envelope; err says which. *ret_text (NUL-terminated) is free()d by the caller.
 */
int chunk_envelope_open(struct json_object *doc, const uint8_t *key, char **ret_text,
			size_t *ret_len, char *err, size_t errlen);

#endif
