/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for vm.json decoding, the one parser in snapshotd that
 * reads a file an attacker may have written. Whatever decodes must encode and
 * decode again to the same messages.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vmjson.h"

static void check_round_trip(const Cloister__VmConfig *config, const Cloister__VmState *state)
{
	Cloister__VmConfig *c2;
	Cloister__VmState *s2;
	char *text = NULL;
	char err[256];

	if (vmjson_encode(config, state, &text) < 0)
		abort();
	if (vmjson_decode(text, strlen(text), &c2, &s2, err, sizeof(err)) < 0)
		abort();
	if (protobuf_c_message_get_packed_size(&c2->base) !=
	    protobuf_c_message_get_packed_size(&config->base) ||
	    protobuf_c_message_get_packed_size(&s2->base) !=
	    protobuf_c_message_get_packed_size(&state->base))
		abort();
	protobuf_c_message_free_unpacked(&c2->base, NULL);
	protobuf_c_message_free_unpacked(&s2->base, NULL);
	free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	Cloister__VmConfig *config;
	Cloister__VmState *state;
	char err[256];

	if (vmjson_decode((const char *)data, size, &config, &state, err, sizeof(err)) < 0)
		return 0;
	check_round_trip(config, state);
	protobuf_c_message_free_unpacked(&config->base, NULL);
	protobuf_c_message_free_unpacked(&state->base, NULL);
	return 0;
}
