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

/*
 * Below RAM, where QEMU's virt machine has them: the PLIC (sifive,plic-1.0.0
 * layout, one S-mode context per hart) and one ns16550a UART. PLIC source 0
 * does not exist; virtio slot i raises source LAYOUT_VIRTIO_IRQ_BASE + i.
 */
#define LAYOUT_PLIC_BASE 0x0c000000ull
#define LAYOUT_PLIC_SIZE 0x600000ull
#define LAYOUT_PLIC_NDEV 63u
#define LAYOUT_UART_BASE 0x10000000ull
#define LAYOUT_UART_SIZE 0x100ull
#define LAYOUT_UART_IRQ 10u
#define LAYOUT_UART_CLOCK_HZ 3686400u
#define LAYOUT_VIRTIO_IRQ_BASE 1u
/*
 * A goldfish RTC (where QEMU's virt machine has it) and the VMGenID page,
 * one 4 KiB window each, on PLIC sources after the UART's.
 */
#define LAYOUT_RTC_BASE 0x00101000ull
#define LAYOUT_RTC_SIZE 0x1000ull
#define LAYOUT_RTC_IRQ 11u
#define LAYOUT_VMGENID_BASE 0x10010000ull
#define LAYOUT_VMGENID_SIZE 0x1000ull
#define LAYOUT_VMGENID_IRQ 12u

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
