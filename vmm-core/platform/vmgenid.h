/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A virtual machine generation ID (the device tree's "microsoft,vmgenid"):
 * a read-only page whose first 16 bytes hold an ID from the host's CSPRNG,
 * and an edge interrupt. Every restore writes a fresh ID before any hart
 * runs and then raises the interrupt, so a guest kernel reseeds its RNG
 * (and tells user space, which may resync its clock) in each clone.
 */
#ifndef CLOISTER_VMGENID_H
#define CLOISTER_VMGENID_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "component.h"

#define VMGENID_ID_SIZE 16u
/* The window the guest maps: one page, the ID at its start, zeros after. */
#define VMGENID_WINDOW_SIZE 0x1000u

struct vmgenid_params {
	/* Raises an edge on the interrupt line; may be NULL. */
	void (*raise)(void *opaque, uint32_t irq);
	uint32_t irq;
	void *opaque;
};

struct vmgenid;

/* The first ID comes from getrandom() too; -errno when it cannot. */
int vmgenid_create(const struct vmgenid_params *p, struct vmgenid **ret_gen);
void vmgenid_destroy(struct vmgenid *g);

/* Accesses of 1, 2, 4 or 8 bytes anywhere inside the window; writes are ignored. */
int vmgenid_read(struct vmgenid *g, uint64_t offset, unsigned size, uint64_t *ret_val);
int vmgenid_write(struct vmgenid *g, uint64_t offset, unsigned size, uint64_t val);

/* A fresh ID from getrandom(), then the interrupt edge. */
int vmgenid_renew(struct vmgenid *g);
void vmgenid_get(struct vmgenid *g, uint8_t ret_id[VMGENID_ID_SIZE]);

/*
 * The component: passive (only restore moves it). Its save carries nothing
 * on purpose, since a restored machine must never see the saved ID again;
 * its restore renews the ID. obj is the struct vmgenid.
 */
extern const struct component_ops vmgenid_component_ops;

#endif
