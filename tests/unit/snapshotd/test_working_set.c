/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The working set as vm.json carries it: checked like any part of the file
 * (in range, each block once, bounded), and kept in its order.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "vmjson.h"
#include "working_set.h"

#define MIB (1ull << 20)

static const uint64_t sizes[2] = { 16 * MIB, 1 * MIB };

Test(working_set, check_takes_blocks_inside_memory_once)
{
	const uint64_t good[] = { ws_block(0, 5 * WS_BLOCK_SIZE), ws_block(1, 0),
				  ws_block(0, 16 * MIB - 1), ws_block(1, MIB - WS_BLOCK_SIZE) };
	const uint64_t outside[] = { ws_block(0, 16 * MIB) };
	const uint64_t region[] = { ws_block(2, 0) };
	const uint64_t twice[] = { ws_block(0, 0), ws_block(1, 0), ws_block(0, 100) };
	char err[256] = "";

	cr_expect_eq(working_set_check(good, 4, sizes, 2, err, sizeof(err)), 0, "%s", err);
	cr_expect_eq(working_set_check(NULL, 0, sizes, 2, err, sizeof(err)), 0);
	cr_expect_eq(working_set_check(outside, 1, sizes, 2, err, sizeof(err)), -EINVAL);
	cr_expect(strstr(err, "outside guest memory"), "%s", err);
	cr_expect_eq(working_set_check(region, 1, sizes, 2, err, sizeof(err)), -EINVAL);
	cr_expect_eq(working_set_check(good, 4, sizes, 1, err, sizeof(err)), -EINVAL,
		     "region 1 does not exist in a 1-region VM");
	cr_expect_eq(working_set_check(twice, 3, sizes, 2, err, sizeof(err)), -EINVAL);
	cr_expect(strstr(err, "blocks[2]: named twice"), "%s", err);
}

Test(working_set, check_bounds_the_length)
{
	uint64_t *many = malloc((WS_MAX_BLOCKS + 1) * sizeof(*many));
	const uint64_t big[2] = { 4ull << 30, 4ull << 30 };
	char err[256] = "";

	cr_assert_not_null(many);
	for (uint64_t k = 0; k <= WS_MAX_BLOCKS; k++)
		many[k] = ws_block(0, k * WS_BLOCK_SIZE);
	cr_expect_eq(working_set_check(many, WS_MAX_BLOCKS, big, 1, err, sizeof(err)), 0, "%s", err);
	cr_expect_eq(working_set_check(many, WS_MAX_BLOCKS + 1, big, 1, err, sizeof(err)), -EINVAL);
	cr_expect(strstr(err, "at most"), "%s", err);
	free(many);
}

Test(working_set, json_round_trip_keeps_the_order)
{
	const uint64_t blocks[] = { ws_block(0, 9 * WS_BLOCK_SIZE), ws_block(1, 3 * WS_BLOCK_SIZE),
				    ws_block(0, 0) };
	struct json_object *o = working_set_to_json(blocks, 3);
	uint64_t *back = NULL;
	size_t n = 0;
	char err[256] = "";

	cr_assert_not_null(o);
	cr_expect_str_eq(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN),
			 "{\"block_size\":65536,\"blocks\":[[0,9],[1,3],[0,0]]}");
	cr_assert_eq(working_set_from_json(o, sizes, 2, &back, &n, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(n, 3);
	cr_expect_arr_eq(back, blocks, sizeof(blocks));
	free(back);
	json_object_put(o);
}

Test(working_set, json_from_a_hostile_file_is_refused)
{
	static const struct { const char *text, *needle; } bad[] = {
		{ "[]", "expected {" },
		{ "{\"blocks\": []}", "expected {" },
		{ "{\"block_size\": 4096, \"blocks\": []}", "block_size: must be 65536" },
		{ "{\"block_size\": 65536, \"blocks\": [], \"extra\": 1}", "expected {" },
		{ "{\"block_size\": 65536, \"blocks\": {}}", "expected {" },
		{ "{\"block_size\": 65536, \"blocks\": [[0]]}", "blocks[0]: expected [region, index]" },
		{ "{\"block_size\": 65536, \"blocks\": [[0, -1]]}", "expected [region, index]" },
		{ "{\"block_size\": 65536, \"blocks\": [[0, \"1\"]]}", "expected [region, index]" },
		{ "{\"block_size\": 65536, \"blocks\": [[0, 4294967296]]}", "expected [region, index]" },
		{ "{\"block_size\": 65536, \"blocks\": [[0, 1], [0, 256]]}",
		  "blocks[1]: outside guest memory" },
		{ "{\"block_size\": 65536, \"blocks\": [[3, 0]]}", "outside guest memory" },
		{ "{\"block_size\": 65536, \"blocks\": [[1, 2], [1, 2]]}", "named twice" },
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct json_object *o = json_tokener_parse(bad[i].text);
		uint64_t *blocks = NULL;
		size_t n = 0;
		char err[256] = "";

		cr_assert_not_null(o, "%s", bad[i].text);
		cr_expect_eq(working_set_from_json(o, sizes, 2, &blocks, &n, err, sizeof(err)), -EINVAL,
			     "%s", bad[i].text);
		cr_expect(strstr(err, bad[i].needle), "%s: %s", bad[i].text, err);
		cr_expect_null(blocks);
		json_object_put(o);
	}
}

Test(working_set, the_record_notes_each_block_once_in_order)
{
	struct ws_record rec;

	cr_assert_eq(ws_record_init(&rec, sizes, 2), 0);
	ws_record_add(&rec, 1, 5 * WS_BLOCK_SIZE + 100);
	ws_record_add(&rec, 0, 0);
	ws_record_add(&rec, 1, 5 * WS_BLOCK_SIZE);	/* the same block */
	ws_record_add(&rec, 1, MIB);			/* outside region 1 */
	ws_record_add(&rec, 2, 0);			/* no region 2 */
	cr_assert_eq(rec.n, 2);
	cr_expect_eq(rec.blocks[0], ws_block(1, 5 * WS_BLOCK_SIZE));
	cr_expect_eq(rec.blocks[1], ws_block(0, 0));
	cr_expect(ws_record_has(&rec, 1, 5 * WS_BLOCK_SIZE + 4095));
	cr_expect(!ws_record_has(&rec, 0, WS_BLOCK_SIZE));
	ws_record_release(&rec);
}

/* vm.json carries it beside the rest; a document without one still decodes. */
Test(working_set, vm_json_carries_it)
{
	const uint64_t blocks[] = { ws_block(0, 2 * WS_BLOCK_SIZE), ws_block(0, 0) };
	Cloister__VmConfig *config = NULL;
	Cloister__VmState *state = NULL;
	struct fixture fx;
	uint64_t *back = NULL;
	size_t n = 99;
	char *text = NULL, err[512] = "";

	fixture_init(&fx, 16 * MIB, 2);
	cr_assert_eq(vmjson_encode_ws(&fx.config, &fx.state, blocks, 2, &text), 0);
	cr_assert_eq(vmjson_decode_ws(text, strlen(text), &config, &state, &back, &n, err,
				      sizeof(err)), 0, "%s", err);
	cr_assert_eq(n, 2);
	cr_expect_arr_eq(back, blocks, sizeof(blocks));
	free(back);
	protobuf_c_message_free_unpacked(&config->base, NULL);
	protobuf_c_message_free_unpacked(&state->base, NULL);
	free(text);

	cr_assert_eq(vmjson_encode(&fx.config, &fx.state, &text), 0);
	cr_expect_null(strstr(text, "working_set"));
	cr_assert_eq(vmjson_decode_ws(text, strlen(text), &config, &state, &back, &n, err,
				      sizeof(err)), 0, "%s", err);
	cr_expect_eq(n, 0);
	cr_expect_null(back);
	protobuf_c_message_free_unpacked(&config->base, NULL);
	protobuf_c_message_free_unpacked(&state->base, NULL);
	free(text);
}

/* A working set outside the document's memory makes the whole vm.json invalid. */
Test(working_set, vm_json_with_a_bad_working_set_is_refused)
{
	const uint64_t blocks[] = { ws_block(0, 2 * WS_BLOCK_SIZE) };
	Cloister__VmConfig *config = NULL;
	Cloister__VmState *state = NULL;
	struct fixture fx;
	char *text = NULL, *at, err[512] = "";

	fixture_init(&fx, 16 * MIB, 2);
	cr_assert_eq(vmjson_encode_ws(&fx.config, &fx.state, blocks, 1, &text), 0);
	/* Block 2 becomes block 9999, past the 16 MiB region. */
	at = strstr(text, "\"blocks\"");
	cr_assert_not_null(at);
	at = strchr(at, '2');
	cr_assert_not_null(at);
	{
		size_t len = strlen(text) + 8;
		char *edited = malloc(len);

		cr_assert_not_null(edited);
		snprintf(edited, len, "%.*s9999%s", (int)(at - text), text, at + 1);
		fixture_reseal(edited);	/* a digest that matches: the block check is what refuses */
		cr_expect_eq(vmjson_decode(edited, strlen(edited), &config, &state, err, sizeof(err)),
			     -EINVAL);
		cr_expect(strstr(err, "outside guest memory"), "%s", err);
		free(edited);
	}
	free(text);
}
