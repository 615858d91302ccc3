/* SPDX-License-Identifier: Apache-2.0 */
/* The README demo: every hart counts once a second. */
#include "rt.h"

static struct fdt_info info;

static void __attribute__((noreturn)) count_forever(unsigned long hartid)
{
	uint64_t next = rdtime();

	for (unsigned long count = 1;; count++) {
		gprintf("[hart %lu] %lu\n", hartid, count);
		next += info.timebase_hz;
		if (next < rdtime())
			next = rdtime() + info.timebase_hz;
		sleep_until(next);
	}
}

void boot_main(unsigned long hartid, const void *fdt)
{
	uint64_t ram = 0;

	if (fdt_read_info(fdt, &info) < 0) {
		gprintf("demo: no usable device tree at %p\n", fdt);
		sbi_shutdown();
	}
	for (unsigned i = 0; i < info.n_mem; i++)
		ram += info.mem[i].size;
	gprintf("Hello from Cloister! %u hart%s, %lu MiB of RAM. Counting...\n",
		info.n_harts, info.n_harts == 1 ? "" : "s", (unsigned long)(ram >> 20));
	start_other_harts(hartid, info.n_harts);
	count_forever(hartid);
}

void secondary_main(unsigned long hartid, unsigned long opaque)
{
	count_forever(hartid);
}
