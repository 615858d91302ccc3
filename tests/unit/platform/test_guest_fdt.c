/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The test guests' own FDT reader (guest/lib/fdt.c, built here for the host)
 * must understand the tree fdt_build() writes: both sides are ours.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "platform/fdt.h"
#include "rt.h"

static uint8_t tree[16384];

Test(guest_fdt, reads_what_fdt_build_writes)
{
	struct fdt_params p = {
		.n_harts = 5,
		.timebase_hz = 10000000,
		.ram = { { 0x80000000ull, 3ull << 30 }, { 0x180000000ull, 1ull << 30 } },
		.n_ram = 2,
		.cmdline = "quiet",
		.virtio = { { 0x140000000ull, 0x1000, 0 }, { 0x140001000ull, 0x1000, 0 } },
		.n_virtio = 2,
		.isa = "rv64imac_zicsr_zifencei",
	};
	struct fdt_info info;
	int size = fdt_build(&p, tree, sizeof(tree));

	cr_assert_gt(size, 0);
	cr_assert_eq(fdt_read_info(tree, &info), 0);
	cr_assert_eq(info.n_harts, p.n_harts);
	cr_assert_eq(info.timebase_hz, p.timebase_hz);
	cr_assert_eq(info.n_mem, p.n_ram);
	for (size_t i = 0; i < p.n_ram; i++) {
		cr_assert_eq(info.mem[i].base, p.ram[i].gpa);
		cr_assert_eq(info.mem[i].size, p.ram[i].size);
	}
	cr_assert_eq(info.n_virtio, 2);
	cr_assert_eq(info.virtio[0], 0x140000000ull);
	cr_assert_eq(info.virtio[1], 0x140001000ull);
	cr_assert_eq(info.fdt_size, (uint64_t)size);
}

Test(guest_fdt, refuses_garbage)
{
	struct fdt_info info;

	memset(tree, 0xff, sizeof(tree));
	cr_assert_eq(fdt_read_info(tree, &info), -1);
	cr_assert_eq(fdt_read_info(NULL, &info), -1);
}
