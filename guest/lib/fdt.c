/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Just enough of a flattened device tree reader for the test guests: the
 * hart count and timebase from /cpus, RAM from the /memory nodes and the
 * virtio-mmio slots. Walks the structure block once, bounds-checked.
 */
#include "rt.h"

#define FDT_MAGIC 0xd00dfeedu
#define FDT_BEGIN_NODE 1
#define FDT_END_NODE 2
#define FDT_PROP 3
#define FDT_NOP 4
#define FDT_END 9
#define FDT_MAX_DEPTH 8

static uint32_t be32(const void *p)
{
	const uint8_t *b = p;

	return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

/* Reads a value of cells 32-bit cells (1 or 2). */
static uint64_t cells_value(const uint8_t *p, unsigned cells)
{
	return cells == 2 ? (uint64_t)be32(p) << 32 | be32(p + 4) : be32(p);
}

struct fdt_walk {
	const uint8_t *fdt;
	uint32_t off, end;		/* cursor and end of the structure block */
	const char *strings;
	uint32_t strings_size;
	unsigned depth;
	const char *names[FDT_MAX_DEPTH];
	unsigned root_addr_cells, root_size_cells;
};

static bool name_is(const char *name, const char *base)
{
	size_t n = strlen(base);

	return strncmp(name, base, n) == 0 && (name[n] == '\0' || name[n] == '@');
}

static bool prop_is(const char *name, const char *want)
{
	return strncmp(name, want, strlen(want) + 1) == 0;
}

static void fdt_prop_reg(struct fdt_info *info, const uint8_t *val, uint32_t len,
			 unsigned ac, unsigned sc)
{
	uint32_t entry = 4 * (ac + sc);

	for (uint32_t o = 0; o + entry <= len && info->n_mem < FDT_INFO_MAX_MEM; o += entry) {
		info->mem[info->n_mem].base = cells_value(val + o, ac);
		info->mem[info->n_mem].size = cells_value(val + o + 4 * ac, sc);
		info->n_mem++;
	}
}

/* A property of the node at the walk's current depth. */
static void fdt_prop(struct fdt_walk *w, struct fdt_info *info, const char *name,
		     const uint8_t *val, uint32_t len)
{
	const char *node = w->names[w->depth - 1];

	if (w->depth == 1 && len == 4 && prop_is(name, "#address-cells"))
		w->root_addr_cells = be32(val);
	else if (w->depth == 1 && len == 4 && prop_is(name, "#size-cells"))
		w->root_size_cells = be32(val);
	else if (w->depth == 2 && name_is(node, "cpus") && prop_is(name, "timebase-frequency"))
		info->timebase_hz = cells_value(val, len == 8 ? 2 : 1);
	else if (w->depth == 2 && name_is(node, "memory") && prop_is(name, "reg"))
		fdt_prop_reg(info, val, len, w->root_addr_cells, w->root_size_cells);
	/* Our /soc and QEMU's both use two address and two size cells. */
	else if (w->depth == 3 && name_is(node, "virtio_mmio") && prop_is(name, "reg") &&
		 len >= 8 && info->n_virtio < FDT_INFO_MAX_VIRTIO)
		info->virtio[info->n_virtio++] = cells_value(val, 2);
}

static void fdt_begin(struct fdt_walk *w, struct fdt_info *info, const char *name)
{
	if (w->depth < FDT_MAX_DEPTH)
		w->names[w->depth] = name;
	w->depth++;
	if (w->depth == 3 && name_is(w->names[1], "cpus") && name_is(name, "cpu"))
		info->n_harts++;
}

static uint32_t align4(uint32_t v)
{
	return (v + 3) & ~3u;
}

/* One token; returns false at FDT_END or on anything malformed. */
static bool fdt_step(struct fdt_walk *w, struct fdt_info *info)
{
	uint32_t token, len, nameoff;
	const char *name;

	if (w->off + 4 > w->end)
		return false;
	token = be32(w->fdt + w->off);
	w->off += 4;
	switch (token) {
	case FDT_BEGIN_NODE:
		name = (const char *)w->fdt + w->off;
		w->off = align4(w->off + (uint32_t)strlen(name) + 1);
		fdt_begin(w, info, name);
		return w->off <= w->end;
	case FDT_END_NODE:
		if (w->depth == 0)
			return false;
		w->depth--;
		return true;
	case FDT_PROP:
		if (w->off + 8 > w->end || w->depth == 0 || w->depth > FDT_MAX_DEPTH)
			return false;
		len = be32(w->fdt + w->off);
		nameoff = be32(w->fdt + w->off + 4);
		if (len > w->end - w->off - 8 || nameoff >= w->strings_size)
			return false;
		fdt_prop(w, info, w->strings + nameoff, w->fdt + w->off + 8, len);
		w->off = align4(w->off + 8 + len);
		return true;
	case FDT_NOP:
		return true;
	default:
		return false;
	}
}

int fdt_read_info(const void *fdt, struct fdt_info *info)
{
	const uint8_t *b = fdt;
	struct fdt_walk w = { .fdt = b, .root_addr_cells = 2, .root_size_cells = 2 };
	uint32_t total;

	if (!fdt || be32(b) != FDT_MAGIC)
		return -1;
	total = be32(b + 4);
	w.off = be32(b + 8);
	w.end = w.off + be32(b + 36);
	w.strings = (const char *)b + be32(b + 12);
	w.strings_size = be32(b + 32);
	if (w.end > total || w.end < w.off)
		return -1;
	memset(info, 0, sizeof(*info));
	info->fdt_base = (uintptr_t)fdt;
	info->fdt_size = total;
	while (fdt_step(&w, info))
		;
	if (info->n_harts == 0 || info->timebase_hz == 0 || info->n_mem == 0)
		return -1;
	return 0;
}
