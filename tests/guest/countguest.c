/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The integration test guest. Every hart counts and prints one line per
 * 100 ms; the boot hart also keeps a pattern in every RAM region and checks
 * it every 10 counts (so a snapshot/restore that loses memory shows up as
 * "pattern: BAD"), and reads the virtio-rng in slot 0 when there is one.
 * Built with COUNTGUEST_FILL (countguest-fill.elf, for benchmarks), it first
 * writes every word of RAM it does not run from, so a snapshot is not sparse.
 */
#include "rt.h"

#define PATTERN_XOR 0x5a5aa5a5c3c33c3cull
#define MIB (1ull << 20)
#define KIB (1ull << 10)
/* Region 0 holds the image and stacks low and the FDT in its last 2 MiB. */
#define REGION0_LOW_SKIP (16 * MIB)
#define REGION0_HIGH_SKIP (2 * MIB)
#define PATTERN_HEAD (1 * MIB)
#define PATTERN_TAIL (64 * KIB)
#define MAX_RANGES (2 * FDT_INFO_MAX_MEM)
#define VERIFY_EVERY 10
#define RNG_EVERY 50
/* Overridable to try the driver on another machine's layout (QEMU virt: 0x10008000). */
#ifndef RNG_SLOT0
#define RNG_SLOT0 0x140000000ull
#endif
#define RNG_BYTES 16

struct range {
	uint64_t start, end;
};

static struct fdt_info info;
static struct range ranges[MAX_RANGES];
static unsigned n_ranges;
static struct virtio_rng *rng;

static bool overlaps(uint64_t start, uint64_t end, uint64_t base, uint64_t size)
{
	return start < base + size && base < end;
}

static void add_range(uint64_t start, uint64_t size, uint64_t lo, uint64_t hi)
{
	uint64_t end = start + size;

	/* A region too small for this range, or one the FDT sits in, is left alone. */
	if (start < lo || end > hi || end < start || n_ranges == MAX_RANGES)
		return;
	if (overlaps(start, end, info.fdt_base, info.fdt_size))
		return;
	ranges[n_ranges++] = (struct range){ start, end };
}

static void plan_ranges(void)
{
	for (unsigned i = 0; i < info.n_mem; i++) {
		uint64_t lo = info.mem[i].base, hi = lo + info.mem[i].size;

		if (i == 0) {
			lo += REGION0_LOW_SKIP;
			hi -= REGION0_HIGH_SKIP;
		}
		add_range(lo, PATTERN_HEAD, lo, hi);
		if (hi - lo >= PATTERN_HEAD + PATTERN_TAIL)
			add_range(hi - PATTERN_TAIL, PATTERN_TAIL, lo, hi);
	}
}

static void pattern_write(void)
{
	for (unsigned i = 0; i < n_ranges; i++)
		for (uint64_t a = ranges[i].start; a < ranges[i].end; a += 8)
			*(volatile uint64_t *)(uintptr_t)a = a ^ PATTERN_XOR;
}

/* Returns 0, or the first address whose word is wrong. */
static uint64_t pattern_check(void)
{
	for (unsigned i = 0; i < n_ranges; i++)
		for (uint64_t a = ranges[i].start; a < ranges[i].end; a += 8)
			if (*(volatile uint64_t *)(uintptr_t)a != (a ^ PATTERN_XOR))
				return a;
	return 0;
}

#ifdef COUNTGUEST_FILL
/* Every word between the low and high skips of each region, before the pattern goes in. */
static void fill_ram(void)
{
	for (unsigned i = 0; i < info.n_mem; i++) {
		uint64_t lo = info.mem[i].base, hi = lo + info.mem[i].size;

		if (i == 0) {
			lo += REGION0_LOW_SKIP;
			hi -= REGION0_HIGH_SKIP;
		}
		for (uint64_t a = lo; a < hi; a += 8)
			*(volatile uint64_t *)(uintptr_t)a = ~a;
	}
	gprintf("ram: filled\n");
}
#else
static void fill_ram(void)
{
}
#endif

static void rng_report(void)
{
	uint8_t bytes[RNG_BYTES];
	char hex[2 * RNG_BYTES + 1];

	if (!rng)
		return;
	if (virtio_rng_read(rng, bytes, sizeof(bytes), info.timebase_hz) < 0) {
		gprintf("rng: timeout\n");
		return;
	}
	for (unsigned i = 0; i < RNG_BYTES; i++)
		gsnprintf(hex + 2 * i, 3, "%02x", bytes[i]);
	gprintf("rng: %s\n", hex);
}

static bool has_virtio_slot(uint64_t base)
{
	for (unsigned i = 0; i < info.n_virtio; i++)
		if (info.virtio[i] == base)
			return true;
	return false;
}

static void boot_hart_duties(uint64_t count)
{
	uint64_t bad;

	if (count % VERIFY_EVERY == 0) {
		bad = pattern_check();
		if (bad)
			gprintf("pattern: BAD at 0x%lx\n", (unsigned long)bad);
		else
			gprintf("pattern: ok %lu\n", (unsigned long)count);
	}
	if (count % RNG_EVERY == 0)
		rng_report();
}

static void __attribute__((noreturn)) count_forever(unsigned long hartid, bool boot)
{
	uint64_t period = info.timebase_hz / 10;
	uint64_t next = rdtime();

	for (uint64_t count = 1;; count++) {
		gprintf("hart %lu count %lu\n", hartid, (unsigned long)count);
		if (boot)
			boot_hart_duties(count);
		next += period;
		if (next < rdtime())
			next = rdtime() + period;
		sleep_until(next);
	}
}

void boot_main(unsigned long hartid, const void *fdt)
{
	if (fdt_read_info(fdt, &info) < 0) {
		gprintf("countguest: no usable device tree at %p\n", fdt);
		sbi_shutdown();
	}
	gprintf("countguest: harts=%u regions=%u\n", info.n_harts, info.n_mem);
	plan_ranges();
	fill_ram();
	pattern_write();
	gprintf("pattern: written\n");
	/* Probe only a slot the device tree lists: elsewhere the address may be RAM or nothing. */
	if (has_virtio_slot(RNG_SLOT0))
		rng = virtio_rng_init(RNG_SLOT0);
	rng_report();
	start_other_harts(hartid, info.n_harts);
	count_forever(hartid, true);
}

void secondary_main(unsigned long hartid, unsigned long opaque)
{
	count_forever(hartid, false);
}
