/* SPDX-License-Identifier: Apache-2.0 */
/* Builds device trees and reads them back with libfdt's read-only API. */
#include <criterion/criterion.h>
#include <errno.h>
#include <libfdt.h>
#include <stdio.h>
#include <string.h>

#include "platform/fdt.h"

#define TREE_SIZE (64 * 1024)

static uint8_t tree[TREE_SIZE];

static struct fdt_params base_params(void)
{
	return (struct fdt_params){
		.n_harts = 2,
		.timebase_hz = 10000000,
		.ram = { { 0x80000000ull, 3ull << 30 }, { 0x180000000ull, 1ull << 30 } },
		.n_ram = 2,
		.cmdline = "console=hvc0 earlycon=sbi",
		.initrd_start = 0x88000000ull,
		.initrd_end = 0x88100000ull,
		.virtio = { { 0x140000000ull, 0x1000, 0 }, { 0x140001000ull, 0x1000, 5 } },
		.n_virtio = 2,
		.isa = "rv64imac_zicsr_zifencei",
	};
}

static int node(const char *path)
{
	int off = fdt_path_offset(tree, path);

	cr_assert_geq(off, 0, "node %s missing: %d", path, off);
	return off;
}

static const void *prop(int off, const char *name, int *ret_len)
{
	const void *p = fdt_getprop(tree, off, name, ret_len);

	cr_assert_not_null(p, "property %s missing", name);
	return p;
}

static void assert_str(int off, const char *name, const char *want)
{
	int len;
	const char *s = prop(off, name, &len);

	cr_assert_eq(len, (int)strlen(want) + 1, "%s", name);
	cr_assert_str_eq(s, want);
}

static uint32_t get_u32(int off, const char *name)
{
	int len;
	const fdt32_t *p = prop(off, name, &len);

	cr_assert_eq(len, 4, "%s is not one cell", name);
	return fdt32_ld(p);
}

static uint64_t get_u64(int off, const char *name)
{
	int len;
	const fdt64_t *p = prop(off, name, &len);

	cr_assert_eq(len, 8, "%s is not two cells", name);
	return fdt64_ld(p);
}

static void build(const struct fdt_params *p)
{
	int size = fdt_build(p, tree, sizeof(tree));

	cr_assert_gt(size, 0, "fdt_build: %d", size);
	cr_assert_eq(fdt_check_header(tree), 0);
	cr_assert_eq((int)fdt_totalsize(tree), size);
}

Test(fdt, root_and_chosen)
{
	struct fdt_params p = base_params();
	int root, chosen;

	build(&p);
	root = node("/");
	assert_str(root, "compatible", "cloister,virt");
	prop(root, "model", NULL);
	cr_assert_eq(get_u32(root, "#address-cells"), 2);
	cr_assert_eq(get_u32(root, "#size-cells"), 2);

	chosen = node("/chosen");
	assert_str(chosen, "bootargs", p.cmdline);
	cr_assert_eq(get_u64(chosen, "linux,initrd-start"), p.initrd_start);
	cr_assert_eq(get_u64(chosen, "linux,initrd-end"), p.initrd_end);
}

Test(fdt, chosen_without_cmdline_or_initrd)
{
	struct fdt_params p = base_params();
	int chosen;

	p.cmdline = NULL;
	p.initrd_start = p.initrd_end = 0;
	build(&p);
	chosen = node("/chosen");
	cr_assert_null(fdt_getprop(tree, chosen, "bootargs", NULL));
	cr_assert_null(fdt_getprop(tree, chosen, "linux,initrd-start", NULL));
	cr_assert_null(fdt_getprop(tree, chosen, "linux,initrd-end", NULL));
}

Test(fdt, rng_seed_in_chosen)
{
	struct fdt_params p = base_params();
	uint8_t seed[64];
	const void *got;
	int chosen, len = 0;

	for (size_t i = 0; i < sizeof(seed); i++)
		seed[i] = (uint8_t)(i * 7 + 1);
	build(&p);
	cr_assert_null(fdt_getprop(tree, node("/chosen"), "rng-seed", NULL));
	p.rng_seed = seed;
	p.rng_seed_len = sizeof(seed);
	build(&p);
	chosen = node("/chosen");
	got = fdt_getprop(tree, chosen, "rng-seed", &len);
	cr_assert_not_null(got);
	cr_assert_eq(len, (int)sizeof(seed));
	cr_assert_arr_eq(got, seed, sizeof(seed));
}

static void assert_cpu(const struct fdt_params *p, unsigned h)
{
	char path[64];
	int cpu, intc, len;
	uint32_t phandle;

	snprintf(path, sizeof(path), "/cpus/cpu@%u", h);
	cpu = node(path);
	assert_str(cpu, "device_type", "cpu");
	cr_assert_eq(get_u32(cpu, "reg"), h);
	assert_str(cpu, "status", "okay");
	assert_str(cpu, "compatible", "riscv");
	assert_str(cpu, "riscv,isa", p->isa);
	if (p->mmu_type)
		assert_str(cpu, "mmu-type", p->mmu_type);
	else
		cr_assert_null(fdt_getprop(tree, cpu, "mmu-type", NULL));

	snprintf(path, sizeof(path), "/cpus/cpu@%u/interrupt-controller", h);
	intc = node(path);
	assert_str(intc, "compatible", "riscv,cpu-intc");
	cr_assert_eq(get_u32(intc, "#interrupt-cells"), 1);
	prop(intc, "interrupt-controller", &len);
	cr_assert_eq(len, 0);
	phandle = fdt_get_phandle(tree, intc);
	cr_assert_neq(phandle, 0);
	cr_assert_eq(fdt_node_offset_by_phandle(tree, phandle), intc);
}

static unsigned count_cpus(void)
{
	unsigned n = 0;
	int child;

	fdt_for_each_subnode(child, tree, node("/cpus"))
		n++;
	return n;
}

Test(fdt, one_hart)
{
	struct fdt_params p = base_params();

	p.n_harts = 1;
	build(&p);
	cr_assert_eq(get_u32(node("/cpus"), "timebase-frequency"), 10000000);
	cr_assert_eq(get_u32(node("/cpus"), "#address-cells"), 1);
	cr_assert_eq(get_u32(node("/cpus"), "#size-cells"), 0);
	cr_assert_eq(count_cpus(), 1);
	assert_cpu(&p, 0);
}

Test(fdt, sixty_four_harts_with_mmu_type)
{
	struct fdt_params p = base_params();

	p.n_harts = 64;
	p.mmu_type = "riscv,sv39";
	build(&p);
	cr_assert_eq(count_cpus(), 64);
	for (unsigned h = 0; h < 64; h++)
		assert_cpu(&p, h);
	/* Every interrupt controller has its own phandle. */
	cr_assert_neq(fdt_get_phandle(tree, node("/cpus/cpu@0/interrupt-controller")),
		      fdt_get_phandle(tree, node("/cpus/cpu@63/interrupt-controller")));
}

Test(fdt, memory_regions)
{
	struct fdt_params p = base_params();
	const fdt64_t *reg;
	int mem, len;

	build(&p);
	mem = node("/memory@80000000");
	assert_str(mem, "device_type", "memory");
	reg = prop(mem, "reg", &len);
	cr_assert_eq(len, 4 * 8);
	for (size_t i = 0; i < 2; i++) {
		cr_assert_eq(fdt64_ld(&reg[2 * i]), p.ram[i].gpa);
		cr_assert_eq(fdt64_ld(&reg[2 * i + 1]), p.ram[i].size);
	}
}

Test(fdt, virtio_slots)
{
	struct fdt_params p = base_params();
	const fdt64_t *reg;
	int soc, dev, len;

	build(&p);
	soc = node("/soc");
	assert_str(soc, "compatible", "simple-bus");
	prop(soc, "ranges", &len);
	cr_assert_eq(len, 0);
	cr_assert_eq(get_u32(soc, "#address-cells"), 2);
	dev = node("/soc/virtio_mmio@140001000");
	assert_str(dev, "compatible", "virtio,mmio");
	reg = prop(dev, "reg", &len);
	cr_assert_eq(len, 16);
	cr_assert_eq(fdt64_ld(&reg[0]), 0x140001000ull);
	cr_assert_eq(fdt64_ld(&reg[1]), 0x1000);
	/* No interrupt controller for devices exists yet to route irq 5 to. */
	cr_assert_null(fdt_getprop(tree, dev, "interrupts", NULL));
	node("/soc/virtio_mmio@140000000");
}

Test(fdt, tiny_buffers_give_enospc)
{
	struct fdt_params p = base_params();
	int full = fdt_build(&p, tree, sizeof(tree));

	cr_assert_gt(full, 0);
	cr_assert_eq(fdt_build(&p, tree, 0), -ENOSPC);
	cr_assert_eq(fdt_build(&p, tree, 64), -ENOSPC);
	cr_assert_eq(fdt_build(&p, tree, (size_t)full - 1), -ENOSPC);
	cr_assert_eq(fdt_build(&p, tree, (size_t)full), full);
}

Test(fdt, bad_params)
{
	struct fdt_params p;

	p = base_params(); p.n_harts = 0;
	cr_assert_eq(fdt_build(&p, tree, sizeof(tree)), -EINVAL);
	p = base_params(); p.n_harts = FDT_MAX_HARTS + 1;
	cr_assert_eq(fdt_build(&p, tree, sizeof(tree)), -EINVAL);
	p = base_params(); p.n_ram = 0;
	cr_assert_eq(fdt_build(&p, tree, sizeof(tree)), -EINVAL);
	p = base_params(); p.n_ram = FDT_MAX_REGIONS + 1;
	cr_assert_eq(fdt_build(&p, tree, sizeof(tree)), -EINVAL);
	p = base_params(); p.n_virtio = FDT_MAX_VIRTIO + 1;
	cr_assert_eq(fdt_build(&p, tree, sizeof(tree)), -EINVAL);
	p = base_params(); p.isa = NULL;
	cr_assert_eq(fdt_build(&p, tree, sizeof(tree)), -EINVAL);
	p = base_params(); p.timebase_hz = 0;
	cr_assert_eq(fdt_build(&p, tree, sizeof(tree)), -EINVAL);
	p = base_params(); p.ram[1].size = UINT64_MAX;
	cr_assert_eq(fdt_build(&p, tree, sizeof(tree)), -EINVAL);
	p = base_params(); p.initrd_end = p.initrd_start;
	cr_assert_eq(fdt_build(&p, tree, sizeof(tree)), -EINVAL);
}

static struct fdt_params irq_params(void)
{
	struct fdt_params p = base_params();

	p.plic_base = 0x0c000000ull;
	p.plic_size = 0x600000ull;
	p.plic_ndev = 63;
	p.uart_base = 0x10000000ull;
	p.uart_size = 0x100;
	p.uart_irq = 10;
	p.uart_clock_hz = 3686400;
	p.virtio[0].irq = 1;
	p.virtio[1].irq = 2;
	return p;
}

static void assert_reg(int off, uint64_t base, uint64_t size)
{
	int len;
	const fdt64_t *reg = prop(off, "reg", &len);

	cr_assert_eq(len, 16);
	cr_assert_eq(fdt64_ld(&reg[0]), base);
	cr_assert_eq(fdt64_ld(&reg[1]), size);
}

/* The interrupts property names source irq of the PLIC at plic_off. */
static void assert_wired(int off, int plic_off, uint32_t irq)
{
	cr_assert_eq(get_u32(off, "interrupts"), irq);
	cr_assert_eq(fdt_node_offset_by_phandle(tree, get_u32(off, "interrupt-parent")), plic_off);
}

Test(fdt, plic_node)
{
	struct fdt_params p = irq_params();
	const fdt32_t *cells;
	int plic, len;

	p.n_harts = 3;
	build(&p);
	plic = node("/soc/plic@c000000");
	cr_assert_eq(fdt_node_check_compatible(tree, plic, "sifive,plic-1.0.0"), 0);
	cr_assert_eq(fdt_node_check_compatible(tree, plic, "riscv,plic0"), 0);
	assert_reg(plic, 0x0c000000ull, 0x600000ull);
	cr_assert_eq(get_u32(plic, "riscv,ndev"), 63);
	cr_assert_eq(get_u32(plic, "#interrupt-cells"), 1);
	cr_assert_eq(get_u32(plic, "#address-cells"), 0);
	prop(plic, "interrupt-controller", &len);
	cr_assert_eq(len, 0);
	cr_assert_neq(fdt_get_phandle(tree, plic), 0);
	/* One context per hart: that hart's cpu-intc and the S-mode external interrupt. */
	cells = prop(plic, "interrupts-extended", &len);
	cr_assert_eq(len, 3 * 8);
	for (unsigned h = 0; h < 3; h++) {
		char path[64];

		snprintf(path, sizeof(path), "/cpus/cpu@%u/interrupt-controller", h);
		cr_assert_eq(fdt_node_offset_by_phandle(tree, fdt32_to_cpu(cells[2 * h])), node(path));
		cr_assert_eq(fdt32_to_cpu(cells[2 * h + 1]), 9);
	}
}

Test(fdt, uart_node_and_stdout_path)
{
	struct fdt_params p = irq_params();
	const char *path;
	int uart, plic;

	build(&p);
	plic = node("/soc/plic@c000000");
	uart = node("/soc/serial@10000000");
	assert_str(uart, "compatible", "ns16550a");
	assert_reg(uart, 0x10000000ull, 0x100);
	cr_assert_eq(get_u32(uart, "clock-frequency"), 3686400);
	assert_wired(uart, plic, 10);
	path = prop(node("/chosen"), "stdout-path", NULL);
	cr_assert_str_eq(path, "/soc/serial@10000000");
	cr_assert_eq(fdt_path_offset(tree, path), uart);
}

Test(fdt, virtio_slots_are_wired_to_the_plic)
{
	struct fdt_params p = irq_params();
	int plic;

	build(&p);
	plic = node("/soc/plic@c000000");
	assert_wired(node("/soc/virtio_mmio@140000000"), plic, 1);
	assert_wired(node("/soc/virtio_mmio@140001000"), plic, 2);
}

Test(fdt, no_plic_no_uart_means_no_wiring)
{
	struct fdt_params p = base_params();

	build(&p);
	cr_assert_lt(fdt_path_offset(tree, "/soc/plic@c000000"), 0);
	cr_assert_lt(fdt_path_offset(tree, "/soc/serial@10000000"), 0);
	cr_assert_null(fdt_getprop(tree, node("/chosen"), "stdout-path", NULL));
	cr_assert_null(fdt_getprop(tree, node("/soc/virtio_mmio@140001000"), "interrupt-parent", NULL));
}

Test(fdt, bad_irq_params)
{
	struct fdt_params p;

	p = irq_params(); p.plic_ndev = 0;
	cr_assert_eq(fdt_build(&p, tree, sizeof(tree)), -EINVAL);
	p = irq_params(); p.plic_ndev = FDT_MAX_PLIC_NDEV + 1;
	cr_assert_eq(fdt_build(&p, tree, sizeof(tree)), -EINVAL);
	p = irq_params(); p.uart_irq = 64;
	cr_assert_eq(fdt_build(&p, tree, sizeof(tree)), -EINVAL);
	p = irq_params(); p.virtio[1].irq = 64;
	cr_assert_eq(fdt_build(&p, tree, sizeof(tree)), -EINVAL);
	p = irq_params(); p.plic_base = UINT64_MAX;
	cr_assert_eq(fdt_build(&p, tree, sizeof(tree)), -EINVAL);
	p = irq_params(); p.uart_base = UINT64_MAX - 1;
	cr_assert_eq(fdt_build(&p, tree, sizeof(tree)), -EINVAL);
}

Test(fdt, sixty_four_harts_with_plic_fit)
{
	struct fdt_params p = irq_params();
	int len;

	p.n_harts = 64;
	build(&p);
	prop(node("/soc/plic@c000000"), "interrupts-extended", &len);
	cr_assert_eq(len, 64 * 8);
}

static struct fdt_params clock_params(void)
{
	struct fdt_params p = irq_params();

	p.rtc_base = 0x101000ull;
	p.rtc_size = 0x1000;
	p.rtc_irq = 11;
	p.vmgenid_base = 0x10010000ull;
	p.vmgenid_size = 0x1000;
	p.vmgenid_irq = 12;
	return p;
}

Test(fdt, rtc_and_vmgenid_nodes_are_wired_and_outside_memory)
{
	struct fdt_params p = clock_params();
	int plic, rtc, gen, len;
	const fdt64_t *mem;

	build(&p);
	plic = node("/soc/plic@c000000");
	rtc = node("/soc/rtc@101000");
	assert_str(rtc, "compatible", "google,goldfish-rtc");
	assert_reg(rtc, 0x101000ull, 0x1000);
	assert_wired(rtc, plic, 11);
	gen = node("/soc/vmgenid@10010000");
	assert_str(gen, "compatible", "microsoft,vmgenid");
	assert_reg(gen, 0x10010000ull, 0x1000);
	assert_wired(gen, plic, 12);
	/* /memory names RAM only. */
	mem = prop(node("/memory@80000000"), "reg", &len);
	cr_assert_eq(len, 2 * 16);
	for (int i = 0; i < 2; i++) {
		uint64_t base = fdt64_ld(&mem[2 * i]), size = fdt64_ld(&mem[2 * i + 1]);

		cr_assert(p.vmgenid_base + p.vmgenid_size <= base || p.vmgenid_base >= base + size);
	}
}

Test(fdt, no_rtc_or_vmgenid_without_their_windows)
{
	struct fdt_params p = irq_params();

	build(&p);
	cr_assert_lt(fdt_path_offset(tree, "/soc/rtc@101000"), 0);
	cr_assert_lt(fdt_path_offset(tree, "/soc/vmgenid@10010000"), 0);
}

Test(fdt, bad_rtc_or_vmgenid_params)
{
	struct fdt_params p;

	p = clock_params(); p.rtc_irq = 64;
	cr_assert_eq(fdt_build(&p, tree, sizeof(tree)), -EINVAL);
	p = clock_params(); p.vmgenid_irq = 64;
	cr_assert_eq(fdt_build(&p, tree, sizeof(tree)), -EINVAL);
	p = clock_params(); p.vmgenid_base = UINT64_MAX - 1;
	cr_assert_eq(fdt_build(&p, tree, sizeof(tree)), -EINVAL);
	p = clock_params(); p.rtc_base = UINT64_MAX;
	cr_assert_eq(fdt_build(&p, tree, sizeof(tree)), -EINVAL);
}
