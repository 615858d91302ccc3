/* SPDX-License-Identifier: Apache-2.0 */
/* Integer ALU, M extension, LUI/AUIPC, branches and jumps. */
#include "harness.h"

static struct tmachine tm;

#define SENTINEL 0x5e5e5e5e5e5e5e5eull

static void setup(void)
{
	tm_init(&tm);
}

static void teardown(void)
{
	tm_fini(&tm);
}

TestSuite(rv64_alu, .init = setup, .fini = teardown);

/* Runs one instruction with a1 = a, a2 = b and returns a0. */
static uint64_t op2(uint32_t insn, uint64_t a, uint64_t b)
{
	tm.cursor = RAM_BASE;
	emit(&tm, insn);
	emit(&tm, ECALL);
	tm_set_pc(&tm, RAM_BASE);
	set_reg(&tm, A1, a);
	set_reg(&tm, A2, b);
	set_reg(&tm, A0, SENTINEL);
	tm_run_to_ecall(&tm);
	return reg(&tm, A0);
}

static int64_t sx32(uint64_t v)
{
	return (int32_t)v;
}

Test(rv64_alu, add_sub_and_w_forms_sign_extend)
{
	uint64_t a = 0x7fffffffull, b = 1;

	cr_expect_eq(op2(ADD(A0, A1, A2), a, b), a + b);
	cr_expect_eq(op2(SUB(A0, A1, A2), 5, 7), (uint64_t)-2);
	/* 0x7fffffff + 1 overflows 32 bits: ADDW sign-extends bit 31. */
	cr_expect_eq(op2(ADDW(A0, A1, A2), a, b), (uint64_t)sx32(a + b));
	cr_expect_eq(op2(ADDW(A0, A1, A2), a, b), 0xffffffff80000000ull);
	cr_expect_eq(op2(SUBW(A0, A1, A2), 0x100000000ull, 1), UINT64_MAX);
	cr_expect_eq(op2(ADDIW(A0, A1, -1), 0x100000000ull, 0), UINT64_MAX);
	cr_expect_eq(op2(ADDI(A0, A1, -2048), 0, 0), (uint64_t)-2048);
	cr_expect_eq(op2(ADD(ZERO, A1, A2), 3, 4), SENTINEL, "a0 untouched");
}

Test(rv64_alu, x0_stays_zero)
{
	op2(ADDI(ZERO, A1, 5), 1, 0);
	cr_expect_eq(reg(&tm, ZERO), 0);
}

Test(rv64_alu, logic_and_compare)
{
	uint64_t a = 0xf0f0f0f0f0f0f0f0ull, b = 0x0ff00ff00ff00ff0ull;

	cr_expect_eq(op2(XOR(A0, A1, A2), a, b), a ^ b);
	cr_expect_eq(op2(OR(A0, A1, A2), a, b), a | b);
	cr_expect_eq(op2(AND(A0, A1, A2), a, b), a & b);
	cr_expect_eq(op2(SLT(A0, A1, A2), (uint64_t)-1, 1), 1);
	cr_expect_eq(op2(SLTU(A0, A1, A2), (uint64_t)-1, 1), 0);
	cr_expect_eq(op2(SLTI(A0, A1, -1), (uint64_t)-2, 0), 1);
	/* SLTIU sign-extends its immediate and then compares unsigned. */
	cr_expect_eq(op2(SLTIU(A0, A1, -1), 5, 0), 1);
	cr_expect_eq(op2(XORI(A0, A1, -1), a, 0), ~a);
	cr_expect_eq(op2(ORI(A0, A1, 0x0f), 0x30, 0), 0x3f);
	cr_expect_eq(op2(ANDI(A0, A1, -16), 0x1234, 0), 0x1230);
}

Test(rv64_alu, shifts)
{
	uint64_t neg = 0x8000000000000010ull;

	cr_expect_eq(op2(SLL(A0, A1, A2), 1, 63), 1ull << 63);
	cr_expect_eq(op2(SLL(A0, A1, A2), 1, 64 + 3), 8, "shift amount is taken mod 64");
	cr_expect_eq(op2(SRL(A0, A1, A2), neg, 4), neg >> 4);
	cr_expect_eq(op2(SRA(A0, A1, A2), neg, 4), (uint64_t)((int64_t)neg >> 4));
	cr_expect_eq(op2(SLLI(A0, A1, 40), 3, 0), 3ull << 40);
	cr_expect_eq(op2(SRLI(A0, A1, 63), neg, 0), 1);
	cr_expect_eq(op2(SRAI(A0, A1, 63), neg, 0), UINT64_MAX);
	cr_expect_eq(op2(SLLW(A0, A1, A2), 1, 31), 0xffffffff80000000ull);
	cr_expect_eq(op2(SRLW(A0, A1, A2), 0xffffffff80000000ull, 31), 1);
	cr_expect_eq(op2(SRAW(A0, A1, A2), 0x80000000ull, 4), (uint64_t)sx32(0xf8000000u));
	cr_expect_eq(op2(SLLIW(A0, A1, 4), 0x0fffffffull, 0), (uint64_t)sx32(0xfffffff0u));
	cr_expect_eq(op2(SRLIW(A0, A1, 4), 0xffffffff00000010ull, 0), 1);
	cr_expect_eq(op2(SRAIW(A0, A1, 4), 0x80000000ull, 0), (uint64_t)sx32(0xf8000000u));
}

Test(rv64_alu, shift_with_bad_funct_is_illegal)
{
	/* SRAIW with shamt[5] set is reserved in RV64. */
	uint32_t bad = SRAIW(A0, A1, 0) | (1u << 25);

	tm.cursor = RAM_BASE;
	emit(&tm, bad);
	tm_set_pc(&tm, RAM_BASE);
	set_reg(&tm, A0, 0);
	tm.cursor = RAM_BASE + 0x100;
	emit(&tm, ECALL);
	{
		struct vcpu_state s = tm_state(&tm);

		s.stvec = RAM_BASE + 0x100;
		cr_assert_eq(tm.ops->vcpu_set_state(tm.cpu, &s), 0);
	}
	tm_run_to_ecall(&tm);
	cr_expect_eq(tm_state(&tm).scause, 2);
	cr_expect_eq(tm_state(&tm).stval, bad);
}

Test(rv64_alu, multiply)
{
	int64_t a = -3, b = 0x123456789abcdefll;

	cr_expect_eq(op2(MUL(A0, A1, A2), a, b), (uint64_t)a * (uint64_t)b);
	cr_expect_eq(op2(MULH(A0, A1, A2), a, b), (uint64_t)(((__int128)a * b) >> 64));
	cr_expect_eq(op2(MULHU(A0, A1, A2), UINT64_MAX, UINT64_MAX), UINT64_MAX - 1);
	cr_expect_eq(op2(MULHSU(A0, A1, A2), (uint64_t)-1, UINT64_MAX), UINT64_MAX,
		     "-1 * (2^64-1) has all-ones high half");
	cr_expect_eq(op2(MULW(A0, A1, A2), 0x10000, 0x8000), (uint64_t)sx32(0x80000000u));
}

Test(rv64_alu, divide_by_zero_and_overflow)
{
	uint64_t min = 1ull << 63;

	cr_expect_eq(op2(DIV(A0, A1, A2), 42, 0), UINT64_MAX);
	cr_expect_eq(op2(DIVU(A0, A1, A2), 42, 0), UINT64_MAX);
	cr_expect_eq(op2(REM(A0, A1, A2), 42, 0), 42);
	cr_expect_eq(op2(REMU(A0, A1, A2), 42, 0), 42);
	cr_expect_eq(op2(DIV(A0, A1, A2), min, (uint64_t)-1), min);
	cr_expect_eq(op2(REM(A0, A1, A2), min, (uint64_t)-1), 0);
	cr_expect_eq(op2(DIV(A0, A1, A2), (uint64_t)-7, 2), (uint64_t)-3, "rounds toward zero");
	cr_expect_eq(op2(REM(A0, A1, A2), (uint64_t)-7, 2), (uint64_t)-1, "sign of dividend");
	cr_expect_eq(op2(DIVU(A0, A1, A2), (uint64_t)-7, 2), ((uint64_t)-7) / 2);
	cr_expect_eq(op2(DIVW(A0, A1, A2), 0x80000000ull, (uint64_t)-1), (uint64_t)sx32(0x80000000u));
	cr_expect_eq(op2(REMW(A0, A1, A2), 0x80000000ull, (uint64_t)-1), 0);
	cr_expect_eq(op2(DIVW(A0, A1, A2), 5, 0), UINT64_MAX);
	cr_expect_eq(op2(DIVUW(A0, A1, A2), 5, 0), UINT64_MAX, "2^32-1 sign-extended");
	cr_expect_eq(op2(REMW(A0, A1, A2), 0xffffffff80000001ull, 0), (uint64_t)sx32(0x80000001u));
	cr_expect_eq(op2(REMUW(A0, A1, A2), 0x1fffffff0ull, 0x10), 0);
	cr_expect_eq(op2(DIVUW(A0, A1, A2), 0xfffffffeull, 1), (uint64_t)sx32(0xfffffffeu));
}

Test(rv64_alu, lui_auipc)
{
	cr_expect_eq(op2(LUI(A0, 0x80000000u), 0, 0), 0xffffffff80000000ull);
	cr_expect_eq(op2(LUI(A0, 0x12345000u), 0, 0), 0x12345000ull);
	cr_expect_eq(op2(AUIPC(A0, 0xfffff000u), 0, 0), RAM_BASE - 0x1000);
}

Test(rv64_alu, branches_loop_and_links)
{
	/* a0 = sum of 1..10 by a counted loop, then a JAL/JALR call. */
	tm.cursor = RAM_BASE;
	emit(&tm, ADDI(A0, ZERO, 0));
	emit(&tm, ADDI(T0, ZERO, 10));
	emit(&tm, ADD(A0, A0, T0));		/* loop: */
	emit(&tm, ADDI(T0, T0, -1));
	emit(&tm, BNE(T0, ZERO, -8));
	emit(&tm, JAL(RA, 12));			/* call f, at +12 */
	emit(&tm, ECALL);			/* RAM_BASE + 0x18 */
	emit(&tm, NOP);
	emit(&tm, ADDI(A1, RA, 0));		/* f: a1 = return address */
	emit(&tm, JALR(T1, RA, 0));		/* return, t1 = link */
	tm_set_pc(&tm, RAM_BASE);
	tm_run_to_ecall(&tm);
	cr_expect_eq(reg(&tm, A0), 55);
	cr_expect_eq(reg(&tm, A1), RAM_BASE + 0x18);
	cr_expect_eq(reg(&tm, T1), RAM_BASE + 0x28);
	cr_expect_eq(tm_state(&tm).pc, RAM_BASE + 0x1c, "pc past the ecall");
}

Test(rv64_alu, branch_conditions)
{
	struct { uint32_t insn; uint64_t a, b; bool taken; } cases[] = {
		{ BEQ(A1, A2, 8), 3, 3, true }, { BEQ(A1, A2, 8), 3, 4, false },
		{ BNE(A1, A2, 8), 3, 4, true }, { BLT(A1, A2, 8), (uint64_t)-1, 0, true },
		{ BLTU(A1, A2, 8), (uint64_t)-1, 0, false }, { BGE(A1, A2, 8), 0, (uint64_t)-1, true },
		{ BGEU(A1, A2, 8), 0, (uint64_t)-1, false }, { BGE(A1, A2, 8), 5, 5, true },
	};

	for (size_t i = 0; i < N_ELEMS(cases); i++) {
		tm.cursor = RAM_BASE;
		emit(&tm, ADDI(A0, ZERO, 1));
		emit(&tm, cases[i].insn);
		emit(&tm, ADDI(A0, ZERO, 0));	/* skipped when taken */
		emit(&tm, ECALL);
		tm_set_pc(&tm, RAM_BASE);
		set_reg(&tm, A1, cases[i].a);
		set_reg(&tm, A2, cases[i].b);
		tm_run_to_ecall(&tm);
		cr_expect_eq(reg(&tm, A0), cases[i].taken, "case %zu", i);
	}
}
