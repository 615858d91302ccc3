/* SPDX-License-Identifier: Apache-2.0 */
/* The device tree the guest finds in a1 at boot, generated with libfdt. */
#ifndef CLOISTER_FDT_H
#define CLOISTER_FDT_H

#include <stddef.h>
#include <stdint.h>

#define FDT_MAX_REGIONS 4
#define FDT_MAX_VIRTIO 16

struct fdt_virtio_slot {
	uint64_t base;
	uint64_t size;
	uint32_t irq;	/* 0: no interrupt line wired */
};

struct fdt_params {
	unsigned n_harts;
	uint64_t timebase_hz;
	struct { uint64_t gpa, size; } ram[FDT_MAX_REGIONS];
	size_t n_ram;
	const char *cmdline;		/* may be NULL */
	uint64_t initrd_start, initrd_end;	/* both 0: none */
	/* /chosen/rng-seed: entropy the kernel credits at boot; len 0: none. */
	const uint8_t *rng_seed;
	size_t rng_seed_len;
	struct fdt_virtio_slot virtio[FDT_MAX_VIRTIO];
	size_t n_virtio;
	/* ISA string for each cpu node, e.g. "rv64ima_zicsr_zifencei". */
	const char *isa;
	/* mmu-type of each cpu node, e.g. "riscv,sv39"; NULL: no property. */
	const char *mmu_type;
	/*
	 * The PLIC, one S-mode context per hart; plic_size 0: none, and no node
	 * gets an interrupts property. Device irqs are its sources, 1..plic_ndev.
	 */
	uint64_t plic_base, plic_size;
	uint32_t plic_ndev;
	/* An ns16550a, the console; uart_size 0: none. */
	uint64_t uart_base, uart_size;
	uint32_t uart_irq;		/* 0: not wired */
	uint32_t uart_clock_hz;
	/* A goldfish RTC; rtc_size 0: none. */
	uint64_t rtc_base, rtc_size;
	uint32_t rtc_irq;
	/* The VMGenID page (kept out of /memory); vmgenid_size 0: none. */
	uint64_t vmgenid_base, vmgenid_size;
	uint32_t vmgenid_irq;
};

/* Most harts a device tree describes (hart IDs fit the cpu node's one reg cell). */
#define FDT_MAX_HARTS 1024
/* Most sources a PLIC has, as the specification allows. */
#define FDT_MAX_PLIC_NDEV 1023

/*
 * Writes a flattened device tree into buf. Returns its total size, or
 * -ENOSPC when buf is too small, -EINVAL for bad parameters.
 * Nodes: /cpus (cpu@N, each with an interrupt-controller), /memory@...
 * (one reg entry per region), /chosen (bootargs, linux,initrd-*,
 * stdout-path when a UART exists), /soc with plic@..., serial@...,
 * rtc@... (google,goldfish-rtc), vmgenid@... (microsoft,vmgenid) and
 * virtio_mmio@... nodes.
 */
int fdt_build(const struct fdt_params *p, void *buf, size_t bufsize);

#endif
