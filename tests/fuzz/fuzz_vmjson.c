/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for vm.json decoding, the one parser in snapshotd that
 * reads a file an attacker may have written. Whatever decodes must encode and
 * decode again to the same messages and chunk tables, and its chunk tables
 * go through the checks a restore makes against its region files.
 *
 * The first byte picks how the rest is fed:
 *   'R'   as is (its integrity.document digest must already be right);
 *   'S'   sealed in an envelope under a fixed key, and opened with it, so the
 *         text behind an encryption envelope is reached;
 *   else  the whole input as is, after its integrity.document digest (if one
 *         is where it should be) is made right, so the checks behind the
 *         digest are reached.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "chunk_json.h"
#include "vmjson.h"

static const uint8_t fuzz_key[CHUNK_KEY_BYTES] = { 0x5e, 0xa1 };

static void check_tables(struct chunk_set *s, const Cloister__VmConfig *config)
{
	char err[256];

	for (size_t i = 0; i < s->n_regions; i++) {
		uint64_t size = config->regions[i]->size;

		chunk_check_table(s, i, size, err, sizeof(err));
		chunk_check_table(s, i, size / 3, err, sizeof(err));
		chunk_check_table(s, i, UINT64_MAX, err, sizeof(err));
	}
}

static void check_round_trip(const Cloister__VmConfig *config, const Cloister__VmState *state,
			     const struct chunk_set *chunks, const uint8_t *key)
{
	Cloister__VmConfig *c2;
	Cloister__VmState *s2;
	struct chunk_set back;
	char *text = NULL;
	char err[256];
	int r = vmjson_encode_chunks(config, state, chunks, &text);

	/* Pretty-printed, a document just under the limit can come out over it. */
	if (r == -EFBIG)
		return;
	if (r < 0)
		abort();
	if (vmjson_decode_chunks(text, strlen(text), key, &back, &c2, &s2, err, sizeof(err)) < 0)
		abort();
	if (protobuf_c_message_get_packed_size(&c2->base) !=
	    protobuf_c_message_get_packed_size(&config->base) ||
	    protobuf_c_message_get_packed_size(&s2->base) !=
	    protobuf_c_message_get_packed_size(&state->base) ||
	    back.n_regions != chunks->n_regions || back.fmt.zstd != chunks->fmt.zstd ||
	    back.fmt.sealed != chunks->fmt.sealed)
		abort();
	for (size_t i = 0; i < back.n_regions; i++)
		if (back.t[i].n != chunks->t[i].n ||
		    memcmp(back.t[i].e, chunks->t[i].e, back.t[i].n * sizeof(struct chunk_entry)))
			abort();
	protobuf_c_message_free_unpacked(&c2->base, NULL);
	protobuf_c_message_free_unpacked(&s2->base, NULL);
	chunk_set_release(&back);
	free(text);
}

/* The input as the decoder gets it, by the mode its first byte picks. */
static char *prepare(const uint8_t *data, size_t size, const uint8_t **ret_key, size_t *ret_len)
{
	char *text = malloc(size + 1), *sealed = NULL;
	bool raw = size > 0 && data[0] == 'R', seal = size > 0 && data[0] == 'S';
	size_t skip = raw || seal ? 1 : 0;

	if (!text)
		return NULL;
	memcpy(text, data + skip, size - skip);
	text[size - skip] = '\0';
	*ret_len = size - skip;
	*ret_key = NULL;
	if (!raw && strlen(text) == *ret_len) {
		char *p = strstr(text, "\"document\"");

		p = p ? strchr(p + 10, '"') : NULL;
		if (p && strspn(p + 1, "0123456789abcdef") == 2 * CHUNK_DIGEST_BYTES) {
			memset(p + 1, '0', 2 * CHUNK_DIGEST_BYTES);
			chunk_document_seal_digest(text);
		}
	}
	if (!seal || strlen(text) != *ret_len)
		return text;
	if (chunk_envelope_seal(text, fuzz_key, &sealed) < 0)
		abort();
	free(text);
	*ret_key = fuzz_key;
	*ret_len = strlen(sealed);
	return sealed;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	Cloister__VmConfig *config;
	Cloister__VmState *state;
	struct chunk_set chunks;
	const uint8_t *key;
	char err[256], *text;
	size_t len;

	text = prepare(data, size, &key, &len);
	if (!text)
		return 0;
	if (vmjson_decode_chunks(text, len, key, &chunks, &config, &state, err, sizeof(err)) == 0) {
		check_tables(&chunks, config);
		check_round_trip(config, state, &chunks, key);
		protobuf_c_message_free_unpacked(&config->base, NULL);
		protobuf_c_message_free_unpacked(&state->base, NULL);
	}
	chunk_set_release(&chunks);
	free(text);
	return 0;
}
