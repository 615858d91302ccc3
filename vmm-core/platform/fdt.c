/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Builds the guest's device tree with libfdt's sequential-write API: nodes
 * go out in order, so a full buffer shows up as FDT_ERR_NOSPACE from
 * whichever call ran out, and is reported as -ENOSPC.
 */
#include "fdt.h"

#include <errno.h>
#include <inttypes.h>
#include <libfdt.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* Returns from the calling builder with libfdt's error code. */
#define FDT_TRY(expr)				\
	do {					\
		int _err = (expr);		\
		if (_err < 0)			\
			return _err;		\
	} while (0)

/* Each cpu's interrupt controller gets phandle hartid + this; the PLIC the next free one. */
#define FDT_PHANDLE_CPU_INTC_BASE 1
#define FDT_PHANDLE_PLIC (FDT_PHANDLE_CPU_INTC_BASE + FDT_MAX_HARTS)
/* The cpu-intc interrupt a PLIC context drives: the S-mode external interrupt. */
#define FDT_IRQ_S_EXT 9

static bool fdt_range_ok(uint64_t base, uint64_t size)
{
	return size != 0 && base + size > base;
}

/* Without a PLIC, irqs are not described at all (see fdt_property_irq()). */
static bool fdt_irq_ok(const struct fdt_params *p, uint32_t irq)
{
	return !p->plic_size || irq <= p->plic_ndev;
}

static int fdt_irq_params_check(const struct fdt_params *p)
{
	if (p->plic_size && (!fdt_range_ok(p->plic_base, p->plic_size) ||
			     p->plic_ndev == 0 || p->plic_ndev > FDT_MAX_PLIC_NDEV))
		return -EINVAL;
	if (p->uart_size && !fdt_range_ok(p->uart_base, p->uart_size))
		return -EINVAL;
	if (p->uart_size && !fdt_irq_ok(p, p->uart_irq))
		return -EINVAL;
	for (size_t i = 0; i < p->n_virtio; i++)
		if (!fdt_irq_ok(p, p->virtio[i].irq))
			return -EINVAL;
	if (p->rtc_size && (!fdt_range_ok(p->rtc_base, p->rtc_size) || !fdt_irq_ok(p, p->rtc_irq)))
		return -EINVAL;
	if (p->vmgenid_size && (!fdt_range_ok(p->vmgenid_base, p->vmgenid_size) ||
				!fdt_irq_ok(p, p->vmgenid_irq)))
		return -EINVAL;
	return 0;
}

static int fdt_params_check(const struct fdt_params *p)
{
	if (p->n_harts == 0 || p->n_harts > FDT_MAX_HARTS)
		return -EINVAL;
	if (p->timebase_hz == 0 || p->timebase_hz > UINT32_MAX || !p->isa)
		return -EINVAL;
	if (p->n_ram == 0 || p->n_ram > FDT_MAX_REGIONS || p->n_virtio > FDT_MAX_VIRTIO)
		return -EINVAL;
	for (size_t i = 0; i < p->n_ram; i++)
		if (!fdt_range_ok(p->ram[i].gpa, p->ram[i].size))
			return -EINVAL;
	for (size_t i = 0; i < p->n_virtio; i++)
		if (!fdt_range_ok(p->virtio[i].base, p->virtio[i].size))
			return -EINVAL;
	if ((p->initrd_start || p->initrd_end) && p->initrd_end <= p->initrd_start)
		return -EINVAL;
	return fdt_irq_params_check(p);
}

/* A reg property of (address, size) pairs, two cells each. */
static int fdt_property_reg(void *fdt, const uint64_t *pairs, size_t n_pairs)
{
	fdt64_t cells[2 * FDT_MAX_REGIONS];

	if (n_pairs > FDT_MAX_REGIONS)
		return -FDT_ERR_BADVALUE;
	for (size_t i = 0; i < 2 * n_pairs; i++)
		cells[i] = cpu_to_fdt64(pairs[i]);
	return fdt_property(fdt, "reg", cells, (int)(2 * n_pairs * sizeof(cells[0])));
}

/* Extensions the rv64 engine offers on top of those the ISA string names. */
static const char *const fdt_engine_isa_exts[] = { "zba", "zbb", "zbs" };

/* Appends name and its NUL to the string list in buf, unless it is there already. */
static int fdt_isa_ext_add(char *buf, size_t size, size_t *len, const char *name, size_t n)
{
	for (size_t at = 0; at < *len; at += strlen(buf + at) + 1)
		if (strlen(buf + at) == n && memcmp(buf + at, name, n) == 0)
			return 0;
	if (n == 0 || *len + n + 1 > size)
		return n == 0 ? 0 : -FDT_ERR_NOSPACE;
	memcpy(buf + *len, name, n);
	buf[*len + n] = '\0';
	*len += n + 1;
	return 0;
}

/*
 * riscv,isa-extensions, which Linux prefers to riscv,isa: the ISA string's
 * single-letter extensions and its underscore-separated ones, then the
 * engine's own.
 */
static int fdt_property_isa_extensions(void *fdt, const char *isa)
{
	char buf[512];
	size_t len = 0, i = 0;

	if (strncmp(isa, "rv64", 4) == 0 || strncmp(isa, "rv32", 4) == 0)
		i = 4;
	for (; isa[i] && isa[i] != '_'; i++)
		FDT_TRY(fdt_isa_ext_add(buf, sizeof(buf), &len, isa + i, 1));
	while (isa[i] == '_') {
		size_t n = strcspn(isa + i + 1, "_");

		FDT_TRY(fdt_isa_ext_add(buf, sizeof(buf), &len, isa + i + 1, n));
		i += n + 1;
	}
	for (size_t k = 0; k < sizeof(fdt_engine_isa_exts) / sizeof(fdt_engine_isa_exts[0]); k++)
		FDT_TRY(fdt_isa_ext_add(buf, sizeof(buf), &len, fdt_engine_isa_exts[k],
					strlen(fdt_engine_isa_exts[k])));
	return fdt_property(fdt, "riscv,isa-extensions", buf, (int)len);
}

static int fdt_add_cpu(void *fdt, const struct fdt_params *p, unsigned hartid)
{
	char name[32];

	snprintf(name, sizeof(name), "cpu@%u", hartid);
	FDT_TRY(fdt_begin_node(fdt, name));
	FDT_TRY(fdt_property_string(fdt, "device_type", "cpu"));
	FDT_TRY(fdt_property_u32(fdt, "reg", hartid));
	FDT_TRY(fdt_property_string(fdt, "status", "okay"));
	FDT_TRY(fdt_property_string(fdt, "compatible", "riscv"));
	FDT_TRY(fdt_property_string(fdt, "riscv,isa", p->isa));
	FDT_TRY(fdt_property_isa_extensions(fdt, p->isa));
	if (p->mmu_type)
		FDT_TRY(fdt_property_string(fdt, "mmu-type", p->mmu_type));

	FDT_TRY(fdt_begin_node(fdt, "interrupt-controller"));
	FDT_TRY(fdt_property_string(fdt, "compatible", "riscv,cpu-intc"));
	FDT_TRY(fdt_property_u32(fdt, "#interrupt-cells", 1));
	FDT_TRY(fdt_property(fdt, "interrupt-controller", NULL, 0));
	FDT_TRY(fdt_property_u32(fdt, "phandle", hartid + FDT_PHANDLE_CPU_INTC_BASE));
	FDT_TRY(fdt_end_node(fdt));

	return fdt_end_node(fdt);
}

static int fdt_add_cpus(void *fdt, const struct fdt_params *p)
{
	FDT_TRY(fdt_begin_node(fdt, "cpus"));
	FDT_TRY(fdt_property_u32(fdt, "#address-cells", 1));
	FDT_TRY(fdt_property_u32(fdt, "#size-cells", 0));
	FDT_TRY(fdt_property_u32(fdt, "timebase-frequency", (uint32_t)p->timebase_hz));
	for (unsigned h = 0; h < p->n_harts; h++)
		FDT_TRY(fdt_add_cpu(fdt, p, h));
	return fdt_end_node(fdt);
}

static int fdt_add_memory(void *fdt, const struct fdt_params *p)
{
	uint64_t pairs[2 * FDT_MAX_REGIONS];
	char name[40];

	for (size_t i = 0; i < p->n_ram; i++) {
		pairs[2 * i] = p->ram[i].gpa;
		pairs[2 * i + 1] = p->ram[i].size;
	}
	snprintf(name, sizeof(name), "memory@%" PRIx64, p->ram[0].gpa);
	FDT_TRY(fdt_begin_node(fdt, name));
	FDT_TRY(fdt_property_string(fdt, "device_type", "memory"));
	FDT_TRY(fdt_property_reg(fdt, pairs, p->n_ram));
	return fdt_end_node(fdt);
}

static void fdt_uart_name(const struct fdt_params *p, char *buf, size_t len)
{
	snprintf(buf, len, "serial@%" PRIx64, p->uart_base);
}

static int fdt_add_chosen(void *fdt, const struct fdt_params *p)
{
	char name[40], path[48];

	FDT_TRY(fdt_begin_node(fdt, "chosen"));
	if (p->uart_size) {
		fdt_uart_name(p, name, sizeof(name));
		snprintf(path, sizeof(path), "/soc/%s", name);
		FDT_TRY(fdt_property_string(fdt, "stdout-path", path));
	}
	if (p->cmdline)
		FDT_TRY(fdt_property_string(fdt, "bootargs", p->cmdline));
	if (p->initrd_end) {
		FDT_TRY(fdt_property_u64(fdt, "linux,initrd-start", p->initrd_start));
		FDT_TRY(fdt_property_u64(fdt, "linux,initrd-end", p->initrd_end));
	}
	if (p->rng_seed_len)
		FDT_TRY(fdt_property(fdt, "rng-seed", p->rng_seed, (int)p->rng_seed_len));
	return fdt_end_node(fdt);
}

/* Without a PLIC a wired irq has nowhere to go: the node gets none and its driver polls. */
static int fdt_property_irq(void *fdt, const struct fdt_params *p, uint32_t irq)
{
	if (!p->plic_size || irq == 0)
		return 0;
	FDT_TRY(fdt_property_u32(fdt, "interrupts", irq));
	return fdt_property_u32(fdt, "interrupt-parent", FDT_PHANDLE_PLIC);
}

/* Context N is hart N's S-mode external interrupt: <&cpuN_intc 9> each. */
static int fdt_property_plic_contexts(void *fdt, const struct fdt_params *p)
{
	fdt32_t *cells;

	FDT_TRY(fdt_property_placeholder(fdt, "interrupts-extended",
					 (int)(2 * p->n_harts * sizeof(*cells)), (void **)&cells));
	for (unsigned h = 0; h < p->n_harts; h++) {
		cells[2 * h] = cpu_to_fdt32(h + FDT_PHANDLE_CPU_INTC_BASE);
		cells[2 * h + 1] = cpu_to_fdt32(FDT_IRQ_S_EXT);
	}
	return 0;
}

static int fdt_add_plic(void *fdt, const struct fdt_params *p)
{
	static const char compatible[] = "sifive,plic-1.0.0\0riscv,plic0";
	uint64_t pair[2] = { p->plic_base, p->plic_size };
	char name[40];

	snprintf(name, sizeof(name), "plic@%" PRIx64, p->plic_base);
	FDT_TRY(fdt_begin_node(fdt, name));
	FDT_TRY(fdt_property(fdt, "compatible", compatible, sizeof(compatible)));
	FDT_TRY(fdt_property_reg(fdt, pair, 1));
	FDT_TRY(fdt_property_plic_contexts(fdt, p));
	FDT_TRY(fdt_property_u32(fdt, "riscv,ndev", p->plic_ndev));
	FDT_TRY(fdt_property_u32(fdt, "#interrupt-cells", 1));
	FDT_TRY(fdt_property_u32(fdt, "#address-cells", 0));
	FDT_TRY(fdt_property(fdt, "interrupt-controller", NULL, 0));
	FDT_TRY(fdt_property_u32(fdt, "phandle", FDT_PHANDLE_PLIC));
	return fdt_end_node(fdt);
}

static int fdt_add_uart(void *fdt, const struct fdt_params *p)
{
	uint64_t pair[2] = { p->uart_base, p->uart_size };
	char name[40];

	fdt_uart_name(p, name, sizeof(name));
	FDT_TRY(fdt_begin_node(fdt, name));
	FDT_TRY(fdt_property_string(fdt, "compatible", "ns16550a"));
	FDT_TRY(fdt_property_reg(fdt, pair, 1));
	FDT_TRY(fdt_property_u32(fdt, "clock-frequency", p->uart_clock_hz));
	FDT_TRY(fdt_property_irq(fdt, p, p->uart_irq));
	return fdt_end_node(fdt);
}

/* A node of one compatible string, one reg window and one interrupt. */
static int fdt_add_simple(void *fdt, const struct fdt_params *p, const char *prefix,
			  const char *compatible, uint64_t base, uint64_t size, uint32_t irq)
{
	uint64_t pair[2] = { base, size };
	char name[40];

	snprintf(name, sizeof(name), "%s@%" PRIx64, prefix, base);
	FDT_TRY(fdt_begin_node(fdt, name));
	FDT_TRY(fdt_property_string(fdt, "compatible", compatible));
	FDT_TRY(fdt_property_reg(fdt, pair, 1));
	FDT_TRY(fdt_property_irq(fdt, p, irq));
	return fdt_end_node(fdt);
}

static int fdt_add_virtio(void *fdt, const struct fdt_params *p, const struct fdt_virtio_slot *slot)
{
	uint64_t pair[2] = { slot->base, slot->size };
	char name[40];

	snprintf(name, sizeof(name), "virtio_mmio@%" PRIx64, slot->base);
	FDT_TRY(fdt_begin_node(fdt, name));
	FDT_TRY(fdt_property_string(fdt, "compatible", "virtio,mmio"));
	FDT_TRY(fdt_property_reg(fdt, pair, 1));
	FDT_TRY(fdt_property_irq(fdt, p, slot->irq));
	return fdt_end_node(fdt);
}

static int fdt_add_soc(void *fdt, const struct fdt_params *p)
{
	FDT_TRY(fdt_begin_node(fdt, "soc"));
	FDT_TRY(fdt_property_string(fdt, "compatible", "simple-bus"));
	FDT_TRY(fdt_property_u32(fdt, "#address-cells", 2));
	FDT_TRY(fdt_property_u32(fdt, "#size-cells", 2));
	/* Empty ranges: bus addresses are CPU physical addresses. */
	FDT_TRY(fdt_property(fdt, "ranges", NULL, 0));
	if (p->plic_size)
		FDT_TRY(fdt_add_plic(fdt, p));
	if (p->uart_size)
		FDT_TRY(fdt_add_uart(fdt, p));
	if (p->rtc_size)
		FDT_TRY(fdt_add_simple(fdt, p, "rtc", "google,goldfish-rtc", p->rtc_base,
				       p->rtc_size, p->rtc_irq));
	if (p->vmgenid_size)
		FDT_TRY(fdt_add_simple(fdt, p, "vmgenid", "microsoft,vmgenid", p->vmgenid_base,
				       p->vmgenid_size, p->vmgenid_irq));
	for (size_t i = 0; i < p->n_virtio; i++)
		FDT_TRY(fdt_add_virtio(fdt, p, &p->virtio[i]));
	return fdt_end_node(fdt);
}

static int fdt_write_tree(void *fdt, size_t bufsize, const struct fdt_params *p)
{
	FDT_TRY(fdt_create(fdt, (int)bufsize));
	FDT_TRY(fdt_finish_reservemap(fdt));
	FDT_TRY(fdt_begin_node(fdt, ""));
	FDT_TRY(fdt_property_u32(fdt, "#address-cells", 2));
	FDT_TRY(fdt_property_u32(fdt, "#size-cells", 2));
	FDT_TRY(fdt_property_string(fdt, "compatible", "cloister,virt"));
	FDT_TRY(fdt_property_string(fdt, "model", "Cloister RISC-V virtual machine"));
	FDT_TRY(fdt_add_cpus(fdt, p));
	FDT_TRY(fdt_add_memory(fdt, p));
	FDT_TRY(fdt_add_chosen(fdt, p));
	FDT_TRY(fdt_add_soc(fdt, p));
	FDT_TRY(fdt_end_node(fdt));
	return fdt_finish(fdt);
}

int fdt_build(const struct fdt_params *p, void *buf, size_t bufsize)
{
	int err = fdt_params_check(p);

	if (err < 0)
		return err;
	/* libfdt sizes are int; a tree is far smaller than that anyway. */
	if (bufsize > INT32_MAX)
		bufsize = INT32_MAX;
	err = fdt_write_tree(buf, bufsize, p);
	if (err == -FDT_ERR_NOSPACE)
		return -ENOSPC;
	if (err < 0)
		return -EINVAL;
	return (int)fdt_totalsize(buf);
}
