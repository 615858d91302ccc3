/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The platform-level interrupt controller, with the register layout of the
 * RISC-V PLIC specification 1.0.0 ("sifive,plic-1.0.0", "riscv,plic0").
 * Sources are level-triggered; context N is the S-mode external interrupt
 * of hart N. Every entry point is thread-safe: vCPU threads access the
 * registers while device threads move source lines.
 */
#ifndef CLOISTER_PLIC_H
#define CLOISTER_PLIC_H

#include <stdbool.h>
#include <stdint.h>

#include "cloister.pb-c.h"

/* Sources 0..63 (0 never exists), so riscv,ndev is at most 63. */
#define PLIC_MAX_SOURCES 64u
#define PLIC_MAX_CONTEXTS 64u
/* Priorities and thresholds are WARL fields of three bits, as on SiFive parts. */
#define PLIC_MAX_PRIORITY 7u

#define PLIC_PRIORITY_BASE 0x000000u
#define PLIC_PENDING_BASE 0x001000u
#define PLIC_ENABLE_BASE 0x002000u
#define PLIC_ENABLE_STRIDE 0x80u
#define PLIC_CONTEXT_BASE 0x200000u
#define PLIC_CONTEXT_STRIDE 0x1000u
#define PLIC_CONTEXT_THRESHOLD 0x0u
#define PLIC_CONTEXT_CLAIM 0x4u
/* The register window; everything in it past the contexts reads as zero. */
#define PLIC_WINDOW_SIZE 0x600000u

struct plic;

/*
 * Sets the external interrupt line of context ctx. Called with the PLIC's
 * lock held, whenever the line changes: it must not call back into the PLIC.
 */
typedef void (*plic_notify_fn)(void *opaque, unsigned ctx, bool level);

/* n_sources counts source 0: 2..PLIC_MAX_SOURCES. All sources start at priority 0 (never). */
int plic_create(unsigned n_sources, unsigned n_contexts, plic_notify_fn notify, void *opaque,
		struct plic **ret_plic);
void plic_destroy(struct plic *p);

/* Register accesses at offset inside the window: 32-bit only, anything else faults. */
int plic_read(struct plic *p, uint64_t offset, unsigned size, uint64_t *ret_val);
int plic_write(struct plic *p, uint64_t offset, unsigned size, uint64_t val);

/* A device's interrupt line; sources that do not exist are ignored. */
void plic_set_level(struct plic *p, uint32_t source, bool level);
/*
 * An edge on a source whose line stays low: pending until claimed, and not
 * pending again on completion. An edge while the source is claimed is lost.
 */
void plic_pulse(struct plic *p, uint32_t source);

/* Only while the harts are paused; free with plic_state_free(). */
int plic_save(struct plic *p, Cloister__PlicState **ret_state);
void plic_state_free(Cloister__PlicState *s);
/* Validates all of state before taking any of it, then re-drives every context's line. */
int plic_restore(struct plic *p, const Cloister__PlicState *state);

#endif
