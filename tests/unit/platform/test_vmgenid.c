/* SPDX-License-Identifier: Apache-2.0 */
/* The VMGenID page: what the guest reads, and a fresh ID then an edge on every restore. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "platform/vmgenid.h"

struct edges {
	unsigned count;
	uint32_t irq;
	uint8_t id_at_edge[VMGENID_ID_SIZE];
	struct vmgenid *g;
};

static void raise_edge(void *opaque, uint32_t irq)
{
	struct edges *e = opaque;

	e->count++;
	e->irq = irq;
	/* What a guest handler would read when the edge arrives. */
	for (unsigned i = 0; i < VMGENID_ID_SIZE; i++) {
		uint64_t v = 0;

		vmgenid_read(e->g, i, 1, &v);
		e->id_at_edge[i] = (uint8_t)v;
	}
}

static struct vmgenid *make(struct edges *e)
{
	struct vmgenid_params p = { .raise = raise_edge, .irq = 12, .opaque = e };
	struct vmgenid *g = NULL;

	memset(e, 0, sizeof(*e));
	cr_assert_eq(vmgenid_create(&p, &g), 0);
	e->g = g;
	return g;
}

Test(vmgenid, reads_are_the_id_little_endian_then_zeros)
{
	struct edges e;
	struct vmgenid *g = make(&e);
	uint8_t id[VMGENID_ID_SIZE];
	uint64_t lo = 0, hi = 0, mid = 0, past = 1;

	vmgenid_get(g, id);
	cr_assert_eq(vmgenid_read(g, 0, 8, &lo), 0);
	cr_assert_eq(vmgenid_read(g, 8, 8, &hi), 0);
	cr_assert_eq(vmgenid_read(g, 3, 4, &mid), 0);
	for (unsigned i = 0; i < 8; i++) {
		cr_assert_eq((uint8_t)(lo >> (8 * i)), id[i]);
		cr_assert_eq((uint8_t)(hi >> (8 * i)), id[8 + i]);
	}
	cr_assert_eq(mid, (uint64_t)id[3] | (uint64_t)id[4] << 8 | (uint64_t)id[5] << 16 |
		     (uint64_t)id[6] << 24);
	cr_assert_eq(vmgenid_read(g, 12, 8, &past), 0);
	cr_assert_eq(past, (uint64_t)id[12] | (uint64_t)id[13] << 8 | (uint64_t)id[14] << 16 |
		     (uint64_t)id[15] << 24);
	cr_assert_eq(vmgenid_read(g, 16, 8, &past), 0);
	cr_assert_eq(past, 0);
	cr_assert_eq(e.count, 0, "creation raises nothing");
	vmgenid_destroy(g);
}

Test(vmgenid, accesses_outside_the_window_or_of_odd_sizes_fault)
{
	struct edges e;
	struct vmgenid *g = make(&e);
	uint64_t v;

	cr_assert_eq(vmgenid_read(g, VMGENID_WINDOW_SIZE - 4, 8, &v), -EFAULT);
	cr_assert_eq(vmgenid_read(g, VMGENID_WINDOW_SIZE, 1, &v), -EFAULT);
	cr_assert_eq(vmgenid_read(g, 0, 3, &v), -EFAULT);
	cr_assert_eq(vmgenid_read(g, UINT64_MAX - 1, 8, &v), -EFAULT);
	cr_assert_eq(vmgenid_write(g, 0, 8, 0), 0, "writes are ignored");
	cr_assert_eq(vmgenid_write(g, VMGENID_WINDOW_SIZE, 4, 0), -EFAULT);
	vmgenid_destroy(g);
}

Test(vmgenid, writes_do_not_change_the_id)
{
	struct edges e;
	struct vmgenid *g = make(&e);
	uint8_t a[VMGENID_ID_SIZE], b[VMGENID_ID_SIZE];

	vmgenid_get(g, a);
	vmgenid_write(g, 0, 8, 0);
	vmgenid_get(g, b);
	cr_assert_eq(memcmp(a, b, sizeof(a)), 0);
	vmgenid_destroy(g);
}

Test(vmgenid, every_restore_writes_a_fresh_id_before_its_edge)
{
	struct edges e;
	struct vmgenid *g = make(&e);
	Cloister__VmState state = CLOISTER__VM_STATE__INIT;
	uint8_t before[VMGENID_ID_SIZE], after[VMGENID_ID_SIZE], again[VMGENID_ID_SIZE];
	char err[128] = "";

	vmgenid_get(g, before);
	cr_assert_eq(vmgenid_component_ops.save(g, &state, err, sizeof(err)), 0);
	cr_assert_eq(vmgenid_component_ops.restore(g, &state, err, sizeof(err)), 0, "%s", err);
	vmgenid_get(g, after);
	cr_assert_neq(memcmp(before, after, sizeof(before)), 0);
	cr_assert_eq(e.count, 1);
	cr_assert_eq(e.irq, 12);
	cr_assert_eq(memcmp(e.id_at_edge, after, sizeof(after)), 0, "the edge came before the ID");
	cr_assert_eq(vmgenid_component_ops.restore(g, &state, err, sizeof(err)), 0);
	vmgenid_get(g, again);
	cr_assert_neq(memcmp(after, again, sizeof(after)), 0);
	cr_assert_eq(e.count, 2);
	cr_assert_null(vmgenid_component_ops.pause, "passive: only restore moves it");
	vmgenid_destroy(g);
}

Test(vmgenid, two_devices_start_with_different_ids)
{
	struct edges e1, e2;
	struct vmgenid *a = make(&e1), *b = make(&e2);
	uint8_t ia[VMGENID_ID_SIZE], ib[VMGENID_ID_SIZE];

	vmgenid_get(a, ia);
	vmgenid_get(b, ib);
	cr_assert_neq(memcmp(ia, ib, sizeof(ia)), 0);
	vmgenid_destroy(a);
	vmgenid_destroy(b);
}
