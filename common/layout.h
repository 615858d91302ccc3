/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The guest physical memory map. RAM starts at 2 GiB; up to 3 GiB of it is
 * region 0, the rest is region 1 above a 1 GiB window kept for device MMIO,
 * so a 4 GiB guest has regions of 3 GiB and 1 GiB.
 */
#ifndef CLOISTER_LAYOUT_H
#define CLOISTER_LAYOUT_H

#include <stddef.h>
#include <stdint.h>

#define LAYOUT_RAM_BASE 0x80000000ull
#define LAYOUT_REGION0_MAX (3ull << 30)
#define LAYOUT_MMIO_WINDOW_BASE 0x140000000ull
#define LAYOUT_MMIO_WINDOW_SIZE (1ull << 30)
#define LAYOUT_REGION1_BASE 0x180000000ull
#define LAYOUT_MAX_REGIONS 2

/* virtio-mmio slots at the start of the MMIO window; an empty slot reads as device ID 0. */
#define LAYOUT_VIRTIO_BASE LAYOUT_MMIO_WINDOW_BASE
#define LAYOUT_VIRTIO_SLOT_SIZE 0x1000ull
#define LAYOUT_VIRTIO_SLOTS 8

/* The time CSR counts at this rate (as QEMU's virt machine). */
#define LAYOUT_TIMEBASE_HZ 10000000ull

struct layout_region {
	uint64_t gpa;
	uint64_t size;
};

/* Splits size bytes of RAM into regions; returns how many (1 or 2). */
static inline size_t layout_memory(uint64_t size, struct layout_region ret[LAYOUT_MAX_REGIONS])
{
	if (size <= LAYOUT_REGION0_MAX) {
		ret[0] = (struct layout_region){ .gpa = LAYOUT_RAM_BASE, .size = size };
		return 1;
	}
	ret[0] = (struct layout_region){ .gpa = LAYOUT_RAM_BASE, .size = LAYOUT_REGION0_MAX };
	ret[1] = (struct layout_region){ .gpa = LAYOUT_REGION1_BASE, .size = size - LAYOUT_REGION0_MAX };
	return 2;
}

#endif
