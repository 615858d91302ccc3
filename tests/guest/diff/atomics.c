/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Atomics differential program (one hart): every AMO in W and D form on
 * edge-case operands, printing the old value (sign-extended for W) and the
 * memory after, then LR/SC pairs. An SC's failure code is only "nonzero" in
 * the ISA, so only success/failure is printed.
 */
#include "probe.h"

typedef uint64_t (*amo_fn)(uint64_t *mem, uint64_t v);

#define AMO_OP(fn, insn)                                                          \
	static uint64_t fn(uint64_t *mem, uint64_t v)                             \
	{                                                                         \
		uint64_t old;                                                     \
		__asm__ volatile(insn " %0, %2, (%1)" : "=r"(old) : "r"(mem), "r"(v) : "memory"); \
		return old;                                                       \
	}

AMO_OP(amoswap_w, "amoswap.w")
AMO_OP(amoadd_w, "amoadd.w")
AMO_OP(amoand_w, "amoand.w")
AMO_OP(amoor_w, "amoor.w")
AMO_OP(amoxor_w, "amoxor.w")
AMO_OP(amomax_w, "amomax.w")
AMO_OP(amomaxu_w, "amomaxu.w")
AMO_OP(amomin_w, "amomin.w")
AMO_OP(amominu_w, "amominu.w")
AMO_OP(amoswap_d, "amoswap.d.aqrl")
AMO_OP(amoadd_d, "amoadd.d")
AMO_OP(amoand_d, "amoand.d.aq")
AMO_OP(amoor_d, "amoor.d.rl")
AMO_OP(amoxor_d, "amoxor.d")
AMO_OP(amomax_d, "amomax.d")
AMO_OP(amomaxu_d, "amomaxu.d")
AMO_OP(amomin_d, "amomin.d")
AMO_OP(amominu_d, "amominu.d")

static const struct {
	const char *name;
	amo_fn fn;
} amo_ops[] = {
	{ "amoswap.w", amoswap_w }, { "amoadd.w", amoadd_w }, { "amoand.w", amoand_w },
	{ "amoor.w", amoor_w }, { "amoxor.w", amoxor_w }, { "amomax.w", amomax_w },
	{ "amomaxu.w", amomaxu_w }, { "amomin.w", amomin_w }, { "amominu.w", amominu_w },
	{ "amoswap.d", amoswap_d }, { "amoadd.d", amoadd_d }, { "amoand.d", amoand_d },
	{ "amoor.d", amoor_d }, { "amoxor.d", amoxor_d }, { "amomax.d", amomax_d },
	{ "amomaxu.d", amomaxu_d }, { "amomin.d", amomin_d }, { "amominu.d", amominu_d },
};

static const uint64_t values[] = {
	0, 1, 0x7fffffff, 0x80000000, 0xffffffff, 0x7fffffffffffffffull,
	0x8000000000000000ull, 0xffffffffffffffffull, 0xfedcba9876543210ull,
};

#define N_VALUES (sizeof(values) / sizeof(values[0]))
#define N_AMO (sizeof(amo_ops) / sizeof(amo_ops[0]))

/* The W forms touch the low word only: the high word must stay the canary. */
static void amo_run(unsigned op, uint64_t start, uint64_t v)
{
	static uint64_t cell[2] __attribute__((aligned(16)));
	uint64_t old;

	cell[0] = start;
	cell[1] = 0xa5a5a5a5a5a5a5a5ull;
	old = amo_ops[op].fn(&cell[0], v);
	gprintf("%s %lx %lx: old=%lx mem=%lx next=%lx\n", amo_ops[op].name,
		(unsigned long)start, (unsigned long)v, (unsigned long)old,
		(unsigned long)cell[0], (unsigned long)cell[1]);
}

static unsigned long lr_sc_d(uint64_t *mem, uint64_t v, uint64_t *ret_loaded)
{
	uint64_t loaded, fail;

	__asm__ volatile("lr.d %0, (%2)\n\tsc.d %1, %3, (%2)"
			 : "=&r"(loaded), "=&r"(fail) : "r"(mem), "r"(v) : "memory");
	*ret_loaded = loaded;
	return fail;
}

static unsigned long lr_sc_w(uint32_t *mem, uint64_t v, uint64_t *ret_loaded)
{
	uint64_t loaded, fail;

	__asm__ volatile("lr.w.aq %0, (%2)\n\tsc.w.rl %1, %3, (%2)"
			 : "=&r"(loaded), "=&r"(fail) : "r"(mem), "r"(v) : "memory");
	*ret_loaded = loaded;
	return fail;
}

static unsigned long sc_d_alone(uint64_t *mem, uint64_t v)
{
	uint64_t fail;

	__asm__ volatile("sc.d %0, %2, (%1)" : "=&r"(fail) : "r"(mem), "r"(v) : "memory");
	return fail;
}

static void lr_sc_report(void)
{
	static uint64_t cell __attribute__((aligned(8)));
	static uint32_t word __attribute__((aligned(8)));
	uint64_t loaded;
	unsigned long fail;

	cell = 0x8000000000000001ull;
	fail = lr_sc_d(&cell, 0x1122334455667788ull, &loaded);
	gprintf("lr.d/sc.d: loaded=%lx sc_ok=%d mem=%lx\n", (unsigned long)loaded, fail == 0,
		(unsigned long)cell);
	/* The successful SC used up the reservation: a second SC must fail and not store. */
	fail = sc_d_alone(&cell, 0);
	gprintf("sc.d again: sc_ok=%d mem=%lx\n", fail == 0, (unsigned long)cell);
	word = 0x80000000u;
	fail = lr_sc_w(&word, 0xdeadbeef, &loaded);
	gprintf("lr.w/sc.w: loaded=%lx sc_ok=%d mem=%x\n", (unsigned long)loaded, fail == 0, word);
}

/* A counter bumped with AMOs and with an LR/SC loop must agree with plain arithmetic. */
static void counter_report(void)
{
	static uint64_t counter;
	uint64_t expect = 0;

	for (uint64_t i = 0; i < 100000; i++) {
		__atomic_fetch_add(&counter, i, __ATOMIC_SEQ_CST);
		expect += i;
	}
	for (uint64_t i = 0; i < 1000; i++) {
		uint64_t old = __atomic_load_n(&counter, __ATOMIC_RELAXED);

		while (!__atomic_compare_exchange_n(&counter, &old, old ^ (i << 7), false,
						    __ATOMIC_SEQ_CST, __ATOMIC_RELAXED))
			;
		expect ^= i << 7;
	}
	gprintf("counter: %lx expect %lx\n", (unsigned long)counter, (unsigned long)expect);
}

void boot_main(unsigned long hartid, const void *fdt)
{
	diff_begin("atomics");
	for (unsigned op = 0; op < N_AMO; op++)
		for (unsigned i = 0; i < N_VALUES; i += 2)
			for (unsigned j = 0; j < N_VALUES; j++)
				amo_run(op, values[i], values[j]);
	lr_sc_report();
	counter_report();
	diff_end("atomics");
}

void secondary_main(unsigned long hartid, unsigned long opaque)
{
}
