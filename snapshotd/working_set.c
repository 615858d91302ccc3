/* SPDX-License-Identifier: Apache-2.0 */
#include "working_set.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "errmsg.h"

int ws_record_init(struct ws_record *rec, const uint64_t *sizes, size_t n_regions)
{
	*rec = (struct ws_record){ .n_regions = n_regions };
	if (n_regions > LAYOUT_MAX_REGIONS)
		return -EINVAL;
	rec->blocks = malloc(WS_MAX_BLOCKS * sizeof(rec->blocks[0]));
	if (!rec->blocks)
		return -ENOMEM;
	for (size_t i = 0; i < n_regions; i++) {
		rec->n_blocks[i] = (sizes[i] + WS_BLOCK_SIZE - 1) / WS_BLOCK_SIZE;
		rec->seen[i] = calloc(rec->n_blocks[i] / 8 + 1, 1);
		if (!rec->seen[i]) {
			ws_record_release(rec);
			return -ENOMEM;
		}
	}
	return 0;
}

void ws_record_release(struct ws_record *rec)
{
	free(rec->blocks);
	for (size_t i = 0; i < LAYOUT_MAX_REGIONS; i++)
		free(rec->seen[i]);
	*rec = (struct ws_record){ 0 };
}

bool ws_record_has(const struct ws_record *rec, size_t region, uint64_t offset)
{
	uint64_t b = offset / WS_BLOCK_SIZE;

	if (region >= rec->n_regions || b >= rec->n_blocks[region])
		return false;
	return rec->seen[region][b / 8] & (1u << (b % 8));
}

void ws_record_add(struct ws_record *rec, size_t region, uint64_t offset)
{
	uint64_t b = offset / WS_BLOCK_SIZE;

	if (region >= rec->n_regions || b >= rec->n_blocks[region] || rec->n >= WS_MAX_BLOCKS ||
	    ws_record_has(rec, region, offset))
		return;
	rec->seen[region][b / 8] |= (uint8_t)(1u << (b % 8));
	rec->blocks[rec->n++] = ws_block(region, offset);
}

int working_set_check(const uint64_t *blocks, size_t n, const uint64_t *sizes, size_t n_regions,
		      char *err, size_t errlen)
{
	struct ws_record rec;
	int r = 0;

	if (n > WS_MAX_BLOCKS) {
		err_set(err, errlen, "working_set: %zu blocks, at most %u", n, WS_MAX_BLOCKS);
		return -EINVAL;
	}
	if (n == 0)
		return 0;
	r = ws_record_init(&rec, sizes, n_regions);
	if (r < 0) {
		err_set(err, errlen, "working_set: %s", strerror(-r));
		return r;
	}
	for (size_t k = 0; r == 0 && k < n; k++) {
		size_t i = ws_block_region(blocks[k]);
		uint64_t off = ws_block_offset(blocks[k]);

		if (i >= n_regions || off >= sizes[i]) {
			err_set(err, errlen, "working_set.blocks[%zu]: outside guest memory", k);
			r = -EINVAL;
		} else if (ws_record_has(&rec, i, off)) {
			err_set(err, errlen, "working_set.blocks[%zu]: named twice", k);
			r = -EINVAL;
		} else {
			ws_record_add(&rec, i, off);
		}
	}
	ws_record_release(&rec);
	return r;
}

struct json_object *working_set_to_json(const uint64_t *blocks, size_t n)
{
	struct json_object *o = json_object_new_object(), *list = json_object_new_array_ext((int)n);

	if (!o || !list) {
		json_object_put(o);
		json_object_put(list);
		return NULL;
	}
	json_object_object_add(o, "block_size", json_object_new_int(WS_BLOCK_SIZE));
	json_object_object_add(o, "blocks", list);
	for (size_t k = 0; k < n; k++) {
		struct json_object *pair = json_object_new_array_ext(2);

		if (!pair) {
			json_object_put(o);
			return NULL;
		}
		json_object_array_add(pair, json_object_new_uint64(ws_block_region(blocks[k])));
		json_object_array_add(pair, json_object_new_uint64(blocks[k] & 0xffffffffu));
		json_object_array_add(list, pair);
	}
	return o;
}

/* One [region, index] pair; its range is checked with the whole list. */
static int block_from_json(struct json_object *pair, size_t k, uint64_t *ret, char *err,
			   size_t errlen)
{
	struct json_object *v[2];
	uint64_t x[2];

	if (!json_object_is_type(pair, json_type_array) || json_object_array_length(pair) != 2) {
		err_set(err, errlen, "working_set.blocks[%zu]: expected [region, index]", k);
		return -EINVAL;
	}
	for (size_t j = 0; j < 2; j++) {
		v[j] = json_object_array_get_idx(pair, j);
		if (!json_object_is_type(v[j], json_type_int) || json_object_get_int64(v[j]) < 0 ||
		    json_object_get_uint64(v[j]) > UINT32_MAX) {
			err_set(err, errlen, "working_set.blocks[%zu]: expected [region, index]", k);
			return -EINVAL;
		}
		x[j] = json_object_get_uint64(v[j]);
	}
	*ret = x[0] << 32 | x[1];
	return 0;
}

static int blocks_from_json(struct json_object *list, uint64_t *blocks, size_t n, char *err,
			    size_t errlen)
{
	for (size_t k = 0; k < n; k++) {
		int r = block_from_json(json_object_array_get_idx(list, k), k, &blocks[k], err, errlen);

		if (r < 0)
			return r;
	}
	return 0;
}

int working_set_from_json(struct json_object *o, const uint64_t *sizes, size_t n_regions,
			  uint64_t **ret_blocks, size_t *ret_n, char *err, size_t errlen)
{
	struct json_object *bs = NULL, *list = NULL;
	uint64_t *blocks = NULL;
	size_t n;
	int r;

	if (!json_object_is_type(o, json_type_object) || json_object_object_length(o) != 2 ||
	    !json_object_object_get_ex(o, "block_size", &bs) ||
	    !json_object_object_get_ex(o, "blocks", &list) ||
	    !json_object_is_type(list, json_type_array)) {
		err_set(err, errlen, "working_set: expected {\"block_size\": N, \"blocks\": [...]}");
		return -EINVAL;
	}
	if (!json_object_is_type(bs, json_type_int) || json_object_get_int64(bs) != WS_BLOCK_SIZE) {
		err_set(err, errlen, "working_set.block_size: must be %u", WS_BLOCK_SIZE);
		return -EINVAL;
	}
	n = json_object_array_length(list);
	if (n > WS_MAX_BLOCKS) {
		err_set(err, errlen, "working_set: %zu blocks, at most %u", n, WS_MAX_BLOCKS);
		return -EINVAL;
	}
	if (n > 0 && !(blocks = malloc(n * sizeof(*blocks))))
		return -ENOMEM;
	r = blocks_from_json(list, blocks, n, err, errlen);
	if (r == 0)
		r = working_set_check(blocks, n, sizes, n_regions, err, errlen);
	if (r < 0) {
		free(blocks);
		return r;
	}
	*ret_blocks = blocks;
	*ret_n = n;
	return 0;
}
