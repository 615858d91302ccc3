/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A VM's working set: the 64 KiB blocks of guest memory in the order an
 * OnDemand-restored guest first needed them. The page server records it
 * (faults, in order), the next snapshot stores it in vm.json, and the next
 * OnDemand restore prefetches those blocks first, in that order.
 *
 * A block is named region << 32 | index of the block in its region. What
 * comes from vm.json or a peer is checked: every block inside its region,
 * none twice, at most WS_MAX_BLOCKS.
 *
 * In vm.json: "working_set": {"block_size": 65536, "blocks": [[region, index], ...]}.
 */
#ifndef CLOISTER_WORKING_SET_H
#define CLOISTER_WORKING_SET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "layout.h"

#define WS_BLOCK_SIZE (64u << 10)
/* 1 GiB of blocks: far more than a guest needs in its first seconds. */
#define WS_MAX_BLOCKS 16384u

static inline uint64_t ws_block(size_t region, uint64_t offset)
{
	return (uint64_t)region << 32 | offset / WS_BLOCK_SIZE;
}

static inline size_t ws_block_region(uint64_t block)
{
	return (size_t)(block >> 32);
}

static inline uint64_t ws_block_offset(uint64_t block)
{
	return (block & 0xffffffffu) * WS_BLOCK_SIZE;
}

/* -EINVAL with a message unless blocks[0..n) is a valid working set for these regions. */
int working_set_check(const uint64_t *blocks, size_t n, const uint64_t *sizes, size_t n_regions,
		      char *err, size_t errlen);

/* The vm.json value for blocks[0..n) (checked before). */
struct json_object *working_set_to_json(const uint64_t *blocks, size_t n);

/*
 * The blocks of a vm.json "working_set" value, checked against the regions;
 * *ret_blocks is free()d by the caller (NULL when n is 0).
 */
int working_set_from_json(struct json_object *o, const uint64_t *sizes, size_t n_regions,
			  uint64_t **ret_blocks, size_t *ret_n, char *err, size_t errlen);

/* The recording side: which blocks were made present, in order. */
struct ws_record {
	uint64_t *blocks;	/* in the order first made present, at most WS_MAX_BLOCKS */
	size_t n;
	uint8_t *seen[LAYOUT_MAX_REGIONS];	/* a bit per block of each region */
	uint64_t n_blocks[LAYOUT_MAX_REGIONS];
	size_t n_regions;
};

int ws_record_init(struct ws_record *rec, const uint64_t *sizes, size_t n_regions);
/* Notes the block holding offset of region (once; out of range or full: ignored). */
void ws_record_add(struct ws_record *rec, size_t region, uint64_t offset);
/* Whether the block holding offset of region was noted. */
bool ws_record_has(const struct ws_record *rec, size_t region, uint64_t offset);
void ws_record_release(struct ws_record *rec);

#endif
