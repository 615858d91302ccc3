/* SPDX-License-Identifier: Apache-2.0 */
/* The vm.json document: its keys, its regions, and the checks on its text. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "chunk_json.h"
#include "cleanup.h"
#include "errmsg.h"
#include "layout.h"
#include "vmjson.h"
#include "vmjson_codec.h"
#include "working_set.h"

/* ---- the document ---- */

void vmjson_region_file_name(size_t index, char *buf, size_t len)
{
	snprintf(buf, len, "memory-region-%zu", index);
}

void vmjson_region_fd_name(size_t index, char *buf, size_t len)
{
	snprintf(buf, len, "region-%zu", index);
}

/* The key of a region entry in this form, and the name it must hold. */
static const char *region_key(enum vmjson_memory form, size_t i, char *name, size_t len)
{
	if (form == VMJSON_MEMORY_FDSTORE) {
		vmjson_region_fd_name(i, name, len);
		return "fd";
	}
	vmjson_region_file_name(i, name, len);
	return "file";
}

/* A region in the fd store has no chunks: its memory is in no file. */
static struct json_object *region_entry(size_t i, const Cloister__MemoryRegion *r,
					const struct chunk_set *chunks, enum vmjson_memory form)
{
	struct json_object *o = json_object_new_object();
	char name[32];
	const char *key = region_key(form, i, name, sizeof(name));

	if (!o)
		return NULL;
	json_object_object_add(o, key, json_object_new_string(name));
	json_object_object_add(o, "guest_addr", json_object_new_uint64(r->guest_addr));
	json_object_object_add(o, "size", json_object_new_uint64(r->size));
	if (form == VMJSON_MEMORY_FILES)
		json_object_object_add(o, "chunks", chunk_table_json(chunks, i));
	return o;
}

static int build_document(const Cloister__VmConfig *config, const Cloister__VmState *state,
			  const struct chunk_set *chunks, enum vmjson_memory form,
			  struct json_object *doc)
{
	struct json_object *c, *s, *regions;
	int r;

	r = vmjson_from_message(&config->base, &c);
	if (r < 0)
		return r;
	json_object_object_add(doc, "version", json_object_new_int(VMJSON_VERSION));
	/* First after the version: the first "document" key of the text is this one. */
	json_object_object_add(doc, "integrity", chunk_integrity_json(chunks));
	json_object_object_add(doc, "config", c);
	r = vmjson_from_message(&state->base, &s);
	if (r < 0)
		return r;
	json_object_object_add(doc, "state", s);
	regions = json_object_new_array();
	if (!regions)
		return -ENOMEM;
	json_object_object_add(doc, "memory_regions", regions);
	for (size_t i = 0; i < config->n_regions; i++) {
		struct json_object *e = region_entry(i, config->regions[i], chunks, form);

		if (!e)
			return -ENOMEM;
		json_object_array_add(regions, e);
	}
	return 0;
}

/* The optional "working_set" key: only when there is one. */
static int add_working_set(struct json_object *doc, const uint64_t *ws, size_t n_ws)
{
	struct json_object *o;

	if (n_ws == 0)
		return 0;
	o = working_set_to_json(ws, n_ws);
	if (!o)
		return -ENOMEM;
	json_object_object_add(doc, "working_set", o);
	return 0;
}

static int encode_form(const Cloister__VmConfig *config, const Cloister__VmState *state,
		       const struct chunk_set *chunks, enum vmjson_memory form, const uint64_t *ws,
		       size_t n_ws, char **ret_text)
{
	struct json_object *doc = json_object_new_object();
	const char *text;
	char *copy = NULL;
	int r;

	if (!doc)
		return -ENOMEM;
	if (chunks->n_regions != config->n_regions) {
		json_object_put(doc);
		return -EINVAL;
	}
	r = build_document(config, state, chunks, form, doc);
	if (r == 0)
		r = add_working_set(doc, ws, n_ws);
	if (r == 0) {
		text = json_object_to_json_string_ext(doc, JSON_C_TO_STRING_PRETTY |
						      JSON_C_TO_STRING_NOSLASHESCAPE);
		copy = text ? strdup(text) : NULL;
		r = copy ? 0 : -ENOMEM;
	}
	json_object_put(doc);
	if (r == 0)
		r = chunk_document_seal_digest(copy);
	if (r == 0 && chunks->fmt.sealed) {
		char *sealed = NULL;

		r = chunk_envelope_seal(copy, chunks->fmt.key, &sealed);
		sodium_memzero(copy, strlen(copy));
		free(copy);
		copy = sealed;
	}
	/* A snapshot no restore would read must not be written. */
	if (r == 0 && strlen(copy) > VMJSON_MAX_TEXT)
		r = -EFBIG;
	if (r < 0) {
		free(copy);
		return r;
	}
	*ret_text = copy;
	return 0;
}

int vmjson_encode_chunks(const Cloister__VmConfig *config, const Cloister__VmState *state,
			 const struct chunk_set *chunks, char **ret_text)
{
	return encode_form(config, state, chunks, VMJSON_MEMORY_FILES, NULL, 0, ret_text);
}

int vmjson_encode_chunks_ws(const Cloister__VmConfig *config, const Cloister__VmState *state,
			    const struct chunk_set *chunks, const uint64_t *ws, size_t n_ws,
			    char **ret_text)
{
	return encode_form(config, state, chunks, VMJSON_MEMORY_FILES, ws, n_ws, ret_text);
}

/* A document whose every chunk is recorded as zero. */
static int encode_zero(const Cloister__VmConfig *config, const Cloister__VmState *state,
		       enum vmjson_memory form, const uint64_t *ws, size_t n_ws, char **ret_text)
{
	struct chunk_set chunks;
	uint64_t sizes[LAYOUT_MAX_REGIONS];
	int r;

	for (size_t i = 0; i < config->n_regions && i < LAYOUT_MAX_REGIONS; i++)
		sizes[i] = config->regions[i]->size;
	r = chunk_set_init(&chunks, &(struct chunk_format){ .zstd = false }, sizes,
			   config->n_regions);
	for (size_t i = 0; r == 0 && i < chunks.n_regions; i++)
		for (size_t k = 0; k < chunks.t[i].n; k++)
			chunks.t[i].e[k] = (struct chunk_entry){ .offset = (uint64_t)k * CHUNK_SIZE,
				.length = (uint32_t)chunk_len(sizes[i], k), .zero = true };
	if (r == 0)
		r = encode_form(config, state, &chunks, form, ws, n_ws, ret_text);
	chunk_set_release(&chunks);
	return r;
}

int vmjson_encode(const Cloister__VmConfig *config, const Cloister__VmState *state,
		  char **ret_text)
{
	return encode_zero(config, state, VMJSON_MEMORY_FILES, NULL, 0, ret_text);
}

int vmjson_encode_ws(const Cloister__VmConfig *config, const Cloister__VmState *state,
		     const uint64_t *ws, size_t n_ws, char **ret_text)
{
	return encode_zero(config, state, VMJSON_MEMORY_FILES, ws, n_ws, ret_text);
}

int vmjson_encode_memory(const Cloister__VmConfig *config, const Cloister__VmState *state,
			 enum vmjson_memory form, char **ret_text)
{
	return encode_zero(config, state, form, NULL, 0, ret_text);
}

/* The index of the '"' that closes the string opening at text[open] (len if none). */
static size_t string_end(const char *text, size_t len, size_t open)
{
	for (size_t i = open + 1; i < len; i++) {
		if (text[i] == '\\')
			i++;
		else if (text[i] == '"')
			return i;
	}
	return len;
}

/*
 * json-c saturates integers that do not fit 64 bits instead of failing, so
 * every integer literal is range-checked on the text before parsing.
 */
static int check_number_literals(const char *text, size_t len, char *err, size_t errlen)
{
	for (size_t i = 0; i < len; i++) {
		char ch = text[i];

		if (ch == '"') {
			i = string_end(text, len, i);
			continue;
		}
		if (ch != '-' && (ch < '0' || ch > '9'))
			continue;
		size_t start = i + (ch == '-');
		size_t end = start;
		uint64_t v = 0;
		bool overflow = false;

		while (end < len && text[end] >= '0' && text[end] <= '9') {
			unsigned d = (unsigned)(text[end] - '0');

			overflow |= v > (UINT64_MAX - d) / 10;
			v = v * 10 + d;
			end++;
		}
		if (overflow || (ch == '-' && v > (uint64_t)INT64_MAX + 1)) {
			err_set(err, errlen, "number at byte %zu does not fit in 64 bits", i);
			return -EINVAL;
		}
		i = end > i ? end - 1 : i;
	}
	return 0;
}

/* Key counts of every object in the text, in the order their '{' appear. */
struct key_counts {
	uint32_t *n;
	size_t len, cap;
};

static int key_counts_push(struct key_counts *kc)
{
	if (kc->len == kc->cap) {
		size_t cap = kc->cap ? 2 * kc->cap : 64;
		uint32_t *n = realloc(kc->n, cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		kc->n = n;
		kc->cap = cap;
	}
	kc->n[kc->len] = 0;
	return (int)(kc->len++ & INT32_MAX);
}

/*
 * Counts the keys of each object as written. Runs on text json-c has
 * accepted, so strings are closed and nesting is within its depth limit.
 */
static int count_keys(const char *text, size_t len, struct key_counts *kc)
{
	size_t stack[2 * VMJSON_MAX_DEPTH + 8];
	bool is_object[ARRAY_SIZE(stack)];
	size_t depth = 0;

	for (size_t i = 0; i < len; i++) {
		char ch = text[i];

		if (ch == '"') {
			i = string_end(text, len, i);
		} else if (ch == '{' || ch == '[') {
			if (depth == ARRAY_SIZE(stack))
				return -E2BIG;
			is_object[depth] = ch == '{';
			if (ch == '{') {
				int k = key_counts_push(kc);

				if (k < 0)
					return k;
				stack[depth] = (size_t)k;
			}
			depth++;
		} else if ((ch == '}' || ch == ']') && depth) {
			depth--;
		} else if (ch == ':' && depth && is_object[depth - 1]) {
			kc->n[stack[depth - 1]]++;
		}
	}
	return 0;
}

/* Walks doc in the text's order; false when an object lost keys to a repeated one. */
static bool keys_all_kept(struct json_object *o, const struct key_counts *kc, size_t *next)
{
	if (json_object_is_type(o, json_type_array)) {
		size_t n = json_object_array_length(o);

		for (size_t i = 0; i < n; i++)
			if (!keys_all_kept(json_object_array_get_idx(o, i), kc, next))
				return false;
		return true;
	}
	if (!json_object_is_type(o, json_type_object))
		return true;
	if (*next >= kc->len || kc->n[*next] != (uint32_t)json_object_object_length(o))
		return false;
	(*next)++;
	json_object_object_foreach(o, key, val) {
		(void)key;
		if (!keys_all_kept(val, kc, next))
			return false;
	}
	return true;
}

/* json-c keeps the last of repeated keys; a document that repeats one is refused instead. */
static int check_duplicate_keys(const char *text, size_t len, struct json_object *doc, char *err,
				size_t errlen)
{
	struct key_counts kc = { 0 };
	size_t next = 0;
	int r = count_keys(text, len, &kc);

	if (r == 0 && (!keys_all_kept(doc, &kc, &next) || next != kc.len)) {
		err_set(err, errlen, "vm.json repeats a key in an object");
		r = -EINVAL;
	}
	free(kc.n);
	return r;
}

static int parse_text(const char *text, size_t len, struct json_object **ret_doc,
		      char *err, size_t errlen)
{
	struct json_tokener *tok;
	struct json_object *doc;
	enum json_tokener_error jerr;
	size_t end;

	if (len > VMJSON_MAX_TEXT) {
		err_set(err, errlen, "vm.json is %zu bytes, more than the %u allowed", len,
			VMJSON_MAX_TEXT);
		return -EFBIG;
	}
	if (memchr(text, '\0', len)) {
		err_set(err, errlen, "vm.json contains a NUL byte");
		return -EINVAL;
	}
	if (check_number_literals(text, len, err, errlen) < 0)
		return -EINVAL;
	tok = json_tokener_new_ex(2 * VMJSON_MAX_DEPTH + 4);
	if (!tok)
		return -ENOMEM;
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	doc = json_tokener_parse_ex(tok, text, (int)len);
	jerr = json_tokener_get_error(tok);
	end = json_tokener_get_parse_end(tok);
	json_tokener_free(tok);
	if (!doc || jerr != json_tokener_success) {
		json_object_put(doc);
		err_set(err, errlen, "vm.json is not valid JSON: %s",
			jerr == json_tokener_continue ? "unexpected end" :
			json_tokener_error_desc(jerr));
		return -EINVAL;
	}
	for (; end < len; end++) {
		if (!strchr(" \t\r\n", text[end])) {
			json_object_put(doc);
			err_set(err, errlen, "vm.json has trailing data at byte %zu", end);
			return -EINVAL;
		}
	}
	if (check_duplicate_keys(text, len, doc, err, errlen) < 0) {
		json_object_put(doc);
		return -EINVAL;
	}
	*ret_doc = doc;
	return 0;
}

static int decode_region_entry(struct json_object *e, size_t i, const Cloister__VmConfig *c,
			       struct chunk_set *chunks, enum vmjson_memory form, char *err,
			       size_t errlen)
{
	struct conv cv = { .err = err, .errlen = errlen };
	struct json_object *file = NULL, *gpa = NULL, *size = NULL, *table = NULL;
	char expect[32];
	const char *where = region_key(form, i, expect, sizeof(expect));
	bool files = form == VMJSON_MEMORY_FILES;
	uint64_t g, s;
	size_t mark;

	path_push(&cv, "memory_regions[%zu]", i);
	if (!json_object_is_type(e, json_type_object))
		return conv_fail(&cv, "expected an object");
	json_object_object_foreach(e, key, val) {
		if (strcmp(key, where) && strcmp(key, "guest_addr") && strcmp(key, "size") &&
		    (!files || strcmp(key, "chunks"))) {
			path_push_key(&cv, key);
			return conv_fail(&cv, "unknown key");
		}
	}
	if (!json_object_object_get_ex(e, where, &file) ||
	    !json_object_object_get_ex(e, "guest_addr", &gpa) ||
	    !json_object_object_get_ex(e, "size", &size) ||
	    (files && !json_object_object_get_ex(e, "chunks", &table)))
		return conv_fail(&cv, files ? "needs file, guest_addr, size and chunks" :
				 "needs fd, guest_addr and size");
	if (!json_object_is_type(file, json_type_string) ||
	    strcmp(json_object_get_string(file), expect) != 0) {
		char what[64];

		path_push_key(&cv, where);
		snprintf(what, sizeof(what), "must be \"%s\"", expect);
		return conv_fail(&cv, what);
	}
	mark = path_push_key(&cv, "guest_addr");
	if (json_unsigned(&cv, gpa, UINT64_MAX, &g) < 0)
		return -EINVAL;
	path_pop(&cv, mark);
	path_push_key(&cv, "size");
	if (json_unsigned(&cv, size, UINT64_MAX, &s) < 0)
		return -EINVAL;
	path_pop(&cv, mark);
	if (g != c->regions[i]->guest_addr || s != c->regions[i]->size)
		return conv_fail(&cv, "does not match config.regions");
	return files ? chunk_table_from_json(chunks, i, table, err, errlen) : 0;
}

static int decode_regions(struct json_object *list, const Cloister__VmConfig *c,
			  struct chunk_set *chunks, enum vmjson_memory form, char *err,
			  size_t errlen)
{
	size_t n;

	if (!json_object_is_type(list, json_type_array)) {
		err_set(err, errlen, "memory_regions: expected an array");
		return -EINVAL;
	}
	n = json_object_array_length(list);
	if (n != c->n_regions) {
		err_set(err, errlen, "memory_regions: %zu entries, config.regions has %zu",
			n, c->n_regions);
		return -EINVAL;
	}
	for (size_t i = 0; i < n; i++) {
		int r = decode_region_entry(json_object_array_get_idx(list, i), i, c, chunks, form,
					    err, errlen);

		if (r < 0)
			return r;
	}
	return 0;
}

#define TOP_KEYS 6
/* The first five are required; "working_set" is optional. */

static int decode_top_keys(struct json_object *doc, struct json_object *parts[TOP_KEYS],
			   char *err, size_t errlen)
{
	static const char *const keys[TOP_KEYS] = { "version", "config", "state", "memory_regions",
						    "integrity", "working_set" };

	if (!json_object_is_type(doc, json_type_object)) {
		err_set(err, errlen, "vm.json: expected an object");
		return -EINVAL;
	}
	json_object_object_foreach(doc, key, val) {
		size_t k = 0;

		while (k < TOP_KEYS && strcmp(key, keys[k]) != 0)
			k++;
		if (k == TOP_KEYS) {
			struct conv cv = { .err = err, .errlen = errlen };

			path_push(&cv, "%s", key);
			return conv_fail(&cv, "unknown key");
		}
		parts[k] = val;
	}
	for (size_t k = 0; k < TOP_KEYS - 1; k++) {
		if (!parts[k]) {
			err_set(err, errlen, "%s: missing", keys[k]);
			return -EINVAL;
		}
	}
	if (!json_object_is_type(parts[0], json_type_int) ||
	    json_object_get_int64(parts[0]) != VMJSON_VERSION) {
		err_set(err, errlen, "version: unsupported (this build reads version %d)",
			VMJSON_VERSION);
		return -EINVAL;
	}
	return 0;
}

/* The chunk format "integrity" names, checked against how the text came (sealed or not). */
static int decode_integrity(struct json_object *o, const char *text, size_t len,
			    const uint8_t *key, struct chunk_format *fmt, char *err, size_t errlen)
{
	char doc_hex[2 * CHUNK_DIGEST_BYTES + 1];
	int r;

	*fmt = (struct chunk_format){ .zstd = false };
	r = chunk_integrity_from_json(o, fmt, doc_hex, err, errlen);
	if (r == 0 && fmt->sealed != (key != NULL)) {
		err_set(err, errlen, fmt->sealed ? "integrity: encrypted chunks, but vm.json is not"
			" sealed" : "integrity: vm.json was sealed but its chunks are not");
		r = -EINVAL;
	}
	if (r == 0)
		r = chunk_document_check(text, len, doc_hex, err, errlen);
	if (r == 0 && key)
		memcpy(fmt->key, key, CHUNK_KEY_BYTES);
	return r;
}

/* The working set's blocks, checked against the (checked) configuration's regions. */
static int decode_working_set(struct json_object *o, const Cloister__VmConfig *c,
			      uint64_t **ret_ws, size_t *ret_n_ws, char *err, size_t errlen)
{
	uint64_t sizes[LAYOUT_MAX_REGIONS];

	*ret_ws = NULL;
	*ret_n_ws = 0;
	if (!o)
		return 0;
	for (size_t i = 0; i < c->n_regions && i < LAYOUT_MAX_REGIONS; i++)
		sizes[i] = c->regions[i]->size;
	return working_set_from_json(o, sizes, c->n_regions, ret_ws, ret_n_ws, err, errlen);
}

/* Where a decode puts the working set: ws NULL to check it and drop it. */
struct ws_out {
	uint64_t **ws;
	size_t *n_ws;
};

static int decode_document(struct json_object *doc, const char *text, size_t len,
			   const uint8_t *key, struct chunk_set *chunks, enum vmjson_memory form,
			   Cloister__VmConfig **ret_config, Cloister__VmState **ret_state,
			   struct ws_out out, char *err, size_t errlen)
{
	uint64_t *ws = NULL;
	size_t n_ws = 0;
	struct json_object *parts[TOP_KEYS] = { NULL };
	ProtobufCMessage *c = NULL, *s = NULL;
	uint64_t sizes[LAYOUT_MAX_REGIONS];
	struct chunk_format fmt;
	int r;

	r = decode_top_keys(doc, parts, err, errlen);
	if (r == 0)
		r = decode_integrity(parts[4], text, len, key, &fmt, err, errlen);
	if (r < 0)
		return r;
	r = vmjson_to_message(parts[1], &cloister__vm_config__descriptor, "config", &c,
			      err, errlen);
	if (r < 0)
		return r;
	r = vmjson_check_config((Cloister__VmConfig *)c, err, errlen);
	for (size_t i = 0; r == 0 && i < ((Cloister__VmConfig *)c)->n_regions; i++)
		sizes[i] = ((Cloister__VmConfig *)c)->regions[i]->size;
	if (r == 0)
		r = chunk_set_init(chunks, &fmt, sizes, ((Cloister__VmConfig *)c)->n_regions);
	sodium_memzero(fmt.key, sizeof(fmt.key));
	if (r == 0)
		r = decode_regions(parts[3], (Cloister__VmConfig *)c, chunks, form, err, errlen);
	if (r == 0)
		r = vmjson_to_message(parts[2], &cloister__vm_state__descriptor, "state", &s,
				      err, errlen);
	if (r == 0)
		r = vmjson_check_state((Cloister__VmConfig *)c, (Cloister__VmState *)s,
				       err, errlen);
	if (r == 0)
		r = decode_working_set(parts[5], (Cloister__VmConfig *)c, &ws, &n_ws, err, errlen);
	if (r < 0) {
		protobuf_c_message_free_unpacked(c, NULL);
		if (s)
			protobuf_c_message_free_unpacked(s, NULL);
		return r;
	}
	*ret_config = (Cloister__VmConfig *)c;
	*ret_state = (Cloister__VmState *)s;
	if (out.ws) {
		*out.ws = ws;
		*out.n_ws = n_ws;
	} else {
		free(ws);
	}
	return 0;
}

/* The text inside an envelope, parsed; a plain document when no key was given. */
static int open_document(const char *text, size_t len, const uint8_t *key,
			 struct json_object **ret_doc, char **ret_inner, size_t *ret_len,
			 char *err, size_t errlen)
{
	struct json_object *doc;
	int r;

	r = parse_text(text, len, &doc, err, errlen);
	if (r < 0)
		return r;
	if (!chunk_envelope_is(doc)) {
		*ret_doc = doc;
		if (!key)
			return 0;
		json_object_put(doc);
		err_set(err, errlen, "a key was given but the snapshot is not encrypted");
		return -EINVAL;
	}
	r = chunk_envelope_open(doc, key, ret_inner, ret_len, err, errlen);
	json_object_put(doc);
	if (r == 0)
		r = parse_text(*ret_inner, *ret_len, ret_doc, err, errlen);
	return r;
}

static int decode_form(const char *text, size_t len, const uint8_t *key,
		       struct chunk_set *chunks, enum vmjson_memory form,
		       Cloister__VmConfig **ret_config, Cloister__VmState **ret_state,
		       struct ws_out out, char *err, size_t errlen)
{
	struct json_object *doc = NULL;
	char *inner = NULL;
	size_t inner_len = 0;
	int r;

	*chunks = (struct chunk_set){ .n_regions = 0 };
	r = open_document(text, len, key, &doc, &inner, &inner_len, err, errlen);
	if (r == 0)
		r = decode_document(doc, inner ? inner : text, inner ? inner_len : len, key, chunks,
				    form, ret_config, ret_state, out, err, errlen);
	json_object_put(doc);
	if (inner) {
		sodium_memzero(inner, inner_len);
		free(inner);
	}
	return r;
}

int vmjson_decode_chunks(const char *text, size_t len, const uint8_t *key,
			 struct chunk_set *chunks, Cloister__VmConfig **ret_config,
			 Cloister__VmState **ret_state, char *err, size_t errlen)
{
	return decode_form(text, len, key, chunks, VMJSON_MEMORY_FILES, ret_config, ret_state,
			   (struct ws_out){ NULL, NULL }, err, errlen);
}

int vmjson_decode_chunks_ws(const char *text, size_t len, const uint8_t *key,
			    struct chunk_set *chunks, Cloister__VmConfig **ret_config,
			    Cloister__VmState **ret_state, uint64_t **ret_ws, size_t *ret_n_ws,
			    char *err, size_t errlen)
{
	return decode_form(text, len, key, chunks, VMJSON_MEMORY_FILES, ret_config, ret_state,
			   (struct ws_out){ ret_ws, ret_n_ws }, err, errlen);
}

int vmjson_decode(const char *text, size_t len, Cloister__VmConfig **ret_config,
		  Cloister__VmState **ret_state, char *err, size_t errlen)
{
	return vmjson_decode_memory(text, len, VMJSON_MEMORY_FILES, ret_config, ret_state, err,
				    errlen);
}

/* The fd store's form is plain: its memory is in no file to seal. */
int vmjson_decode_memory(const char *text, size_t len, enum vmjson_memory form,
			 Cloister__VmConfig **ret_config, Cloister__VmState **ret_state, char *err,
			 size_t errlen)
{
	struct chunk_set chunks;
	int r = decode_form(text, len, NULL, &chunks, form, ret_config, ret_state,
			    (struct ws_out){ NULL, NULL }, err, errlen);

	chunk_set_release(&chunks);
	return r;
}

int vmjson_decode_ws(const char *text, size_t len, Cloister__VmConfig **ret_config,
		     Cloister__VmState **ret_state, uint64_t **ret_ws, size_t *ret_n_ws, char *err,
		     size_t errlen)
{
	struct chunk_set chunks;
	int r = decode_form(text, len, NULL, &chunks, VMJSON_MEMORY_FILES, ret_config, ret_state,
			    (struct ws_out){ ret_ws, ret_n_ws }, err, errlen);

	chunk_set_release(&chunks);
	return r;
}
