/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Shared by the differential test programs: run a short code sequence in S- or
 * U-mode and catch whatever trap it takes, then print a transcript line that
 * holds only what the ISA fixes (offsets rather than addresses, so the two
 * machines' load addresses never matter).
 */
#ifndef DIFF_PROBE_H
#define DIFF_PROBE_H

#include "rt.h"

#define SSTATUS_SUM (1ul << 18)
#define SSTATUS_MXR (1ul << 19)
#define SSTATUS_FS_INITIAL (1ul << 13)
#define SSTATUS_FS_MASK (3ul << 13)

struct probe_result {
	unsigned long trapped;
	unsigned long cause;
	unsigned long tval;
	unsigned long epc;
	unsigned long value;
};

/*
 * Enters entry by sret with a0, a1 set, in U-mode when user is nonzero. An
 * S-mode sequence ends with ret; a U-mode one with ecall (which shows as a
 * trap with cause 8). Any trap ends the probe. Returns 1 if it trapped.
 */
int probe_run(unsigned long entry, unsigned long a0, unsigned long a1, int user,
	      struct probe_result *r);

/* How probe_print shows stval: raw, or only whether it is 0 or the given value. */
enum probe_tval {
	PROBE_TVAL_RAW,
	PROBE_TVAL_ZERO_OR,
};

void probe_print(const char *name, unsigned long entry, const struct probe_result *r,
		 enum probe_tval how, unsigned long tval_alt);

void diff_begin(const char *name);
void diff_end(const char *name) __attribute__((noreturn));

static inline unsigned long csr_read_sstatus(void)
{
	unsigned long v;

	__asm__ volatile("csrr %0, sstatus" : "=r"(v));
	return v;
}

static inline void csr_set_sstatus(unsigned long bits)
{
	__asm__ volatile("csrs sstatus, %0" : : "r"(bits) : "memory");
}

static inline void csr_clear_sstatus(unsigned long bits)
{
	__asm__ volatile("csrc sstatus, %0" : : "r"(bits) : "memory");
}

#endif
