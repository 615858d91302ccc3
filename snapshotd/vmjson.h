/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vm.json: the readable half of a snapshot. A generic converter between
 * protobuf-c messages and json-c objects (field names are the keys), and the
 * document built from it:
 *
 *   {"version": 1, "integrity": {...}, "config": <VmConfig>, "state": <VmState>,
 *    "memory_regions": [{"file": "memory-region-0", "guest_addr": N, "size": N,
 *                        "chunks": [...]}, ...],
 *    "working_set": {...}}		(optional, working_set.h)
 *
 * (chunk_json.h has the integrity section and the chunk tables.)
 *
 * Everything that comes out of a decode has been bounded and checked against
 * the rest of the document, because the file is as hostile as any peer.
 */
#ifndef CLOISTER_VMJSON_H
#define CLOISTER_VMJSON_H

#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "chunk.h"
#include "cloister.pb-c.h"

#define VMJSON_VERSION 1
/* Limits on what the generic converter builds from JSON. */
#define VMJSON_MAX_REPEATED 1024u
#define VMJSON_MAX_DEPTH 8
#define VMJSON_MAX_STRING 4096u
#define VMJSON_MAX_BYTES 65536u
/* Largest vm.json accepted; a 64-vCPU state is a few hundred KiB. */
#define VMJSON_MAX_TEXT (16u << 20)
/* Semantic limits on the VM described. */
#define VMJSON_MAX_VCPUS 64u
#define VMJSON_MAX_MEMORY (1ull << 40)
#define VMJSON_MAX_DEVICES 8u
#define VMJSON_MAX_ID 64u
#define VMJSON_MAX_QUEUES 64u
#define VMJSON_PAGE_SIZE 4096ull

/*
 * Builds a JSON object from msg: every field, enums by name, bytes as base64,
 * 64-bit integers as JSON integers. -EINVAL for an enum value without a name
 * or a field type the format does not carry (float, double).
 */
int vmjson_from_message(const ProtobufCMessage *msg, struct json_object **ret_obj);

/*
 * Builds a message of type desc from obj. Missing keys keep their defaults;
 * unknown keys, wrong types, out-of-range numbers, more than
 * VMJSON_MAX_REPEATED elements, strings or bytes over their limits and nesting
 * deeper than VMJSON_MAX_DEPTH are refused with -EINVAL and a message naming
 * the key path below path ("state.vcpus[1].pc: expected an unsigned integer").
 * The result is freed with protobuf_c_message_free_unpacked(msg, NULL).
 */
int vmjson_to_message(struct json_object *obj, const ProtobufCMessageDescriptor *desc,
		      const char *path, ProtobufCMessage **ret_msg, char *err, size_t errlen);

/* Semantic checks, shared by save and load. -EINVAL with a message. */
int vmjson_check_config(const Cloister__VmConfig *config, char *err, size_t errlen);
int vmjson_check_state(const Cloister__VmConfig *config, const Cloister__VmState *state,
		       char *err, size_t errlen);

/* Writes "memory-region-<index>" into buf. */
void vmjson_region_file_name(size_t index, char *buf, size_t len);

/*
 * Where memory_regions says guest memory is: in region files beside vm.json
 * ({"file": "memory-region-N", ...}), or in the service manager's fd store
 * ({"fd": "region-N", ...}), which only the systemd restart path reads.
 */
enum vmjson_memory { VMJSON_MEMORY_FILES, VMJSON_MEMORY_FDSTORE };

/* Writes "region-<index>", the fd store name of region index, into buf. */
void vmjson_region_fd_name(size_t index, char *buf, size_t len);

/*
 * The vm.json text for a checked config and state whose memory chunks are
 * chunks (chunk_json.h: the integrity section, the chunk tables, the
 * digest of the text, and the envelope when chunks are sealed).
 */
int vmjson_encode_chunks(const Cloister__VmConfig *config, const Cloister__VmState *state,
			 const struct chunk_set *chunks, char **ret_text);

/*
 * Parses, opens (key: the snapshot's, or NULL when none was given) and
 * checks a vm.json, filling chunks (released by the caller, also on
 * failure) with its format and tables. A wrong key -EKEYREJECTED, a missing
 * one -ENOKEY, a key for a plain snapshot -EINVAL; all with err set.
 */
int vmjson_decode_chunks(const char *text, size_t len, const uint8_t *key,
			 struct chunk_set *chunks, Cloister__VmConfig **ret_config,
			 Cloister__VmState **ret_state, char *err, size_t errlen);

/*
 * The vm.json text for a checked config and state, every chunk recorded as
 * zero (for tests); *ret_text is free()d by the caller.
 */
int vmjson_encode(const Cloister__VmConfig *config, const Cloister__VmState *state,
		  char **ret_text);
/* The same with a working set (ws[0..n_ws), checked before; n_ws 0: none). */
int vmjson_encode_ws(const Cloister__VmConfig *config, const Cloister__VmState *state,
		     const uint64_t *ws, size_t n_ws, char **ret_text);
/* vmjson_encode_chunks() with a working set, as vmjson_encode_ws(). */
int vmjson_encode_chunks_ws(const Cloister__VmConfig *config, const Cloister__VmState *state,
			    const struct chunk_set *chunks, const uint64_t *ws, size_t n_ws,
			    char **ret_text);
/* As vmjson_encode(), with memory_regions in the given form. */
int vmjson_encode_memory(const Cloister__VmConfig *config, const Cloister__VmState *state,
			 enum vmjson_memory form, char **ret_text);

/*
 * Parses and checks a plain vm.json of len bytes (text need not be NUL-terminated).
 * On success both messages are freed with protobuf_c_message_free_unpacked(.., NULL).
 * -EINVAL (bad content) or -EFBIG (over VMJSON_MAX_TEXT) with a message in err.
 */
int vmjson_decode(const char *text, size_t len, Cloister__VmConfig **ret_config,
		  Cloister__VmState **ret_state, char *err, size_t errlen);
/* As vmjson_decode(), for a vm.json whose memory_regions must be in the given form. */
int vmjson_decode_memory(const char *text, size_t len, enum vmjson_memory form,
			 Cloister__VmConfig **ret_config, Cloister__VmState **ret_state, char *err,
			 size_t errlen);
/*
 * The same, also giving the working set (checked against the regions;
 * *ret_ws free()d by the caller, NULL with *ret_n_ws 0 when there is none).
 * ret_ws NULL: the working set is checked and dropped.
 */
int vmjson_decode_ws(const char *text, size_t len, Cloister__VmConfig **ret_config,
		     Cloister__VmState **ret_state, uint64_t **ret_ws, size_t *ret_n_ws, char *err,
		     size_t errlen);
/* vmjson_decode_chunks() that also gives the working set, as vmjson_decode_ws(). */
int vmjson_decode_chunks_ws(const char *text, size_t len, const uint8_t *key,
			    struct chunk_set *chunks, Cloister__VmConfig **ret_config,
			    Cloister__VmState **ret_state, uint64_t **ret_ws, size_t *ret_n_ws,
			    char *err, size_t errlen);

#endif
