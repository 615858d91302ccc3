/* SPDX-License-Identifier: Apache-2.0 */
/* Transcript helpers shared by the differential test programs. */
#include "probe.h"

#define CAUSE_USER_ECALL 8
#define EPC_NEAR 0x100

void probe_print(const char *name, unsigned long entry, const struct probe_result *r,
		 enum probe_tval how, unsigned long tval_alt)
{
	if (!r->trapped) {
		gprintf("%s: ok value=0x%lx\n", name, r->value);
		return;
	}
	if (r->cause == CAUSE_USER_ECALL) {
		gprintf("%s: ecall epc=+0x%lx value=0x%lx\n", name, r->epc - entry, r->value);
		return;
	}
	/* A fetch fault's epc is its target: print it whole rather than as an offset. */
	if (r->epc - entry >= EPC_NEAR) {
		gprintf("%s: trap cause=0x%lx tval=0x%lx epc=0x%lx\n", name, r->cause, r->tval,
			r->epc);
		return;
	}
	/* Where the ISA lets stval be 0 or a value, print only that it is one of them. */
	if (how == PROBE_TVAL_ZERO_OR)
		gprintf("%s: trap cause=0x%lx tval_ok=%d epc=+0x%lx\n", name, r->cause,
			r->tval == 0 || r->tval == tval_alt, r->epc - entry);
	else
		gprintf("%s: trap cause=0x%lx tval=0x%lx epc=+0x%lx\n", name, r->cause,
			r->tval, r->epc - entry);
}

void diff_begin(const char *name)
{
	gprintf("=== diff %s start ===\n", name);
}

void diff_end(const char *name)
{
	gprintf("=== diff %s end ===\n", name);
	sbi_shutdown();
}
