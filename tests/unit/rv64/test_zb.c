/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Zba, Zbb and Zbs: every instruction on operands that tell its edges apart
 * (32-bit halves, sign bits, zero, shift amounts past the width), with the
 * expected values written out by hand. meson runs this file on the
 * translator and on the interpreter.
 */
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

TestSuite(rv64_zb, .init = setup, .fini = teardown);

/*
 * Runs insn with a1 = a, a2 = b and returns a0. A NOP goes first, so on
 * the translator the instruction sits inside a translated block rather
 * than being the first one fetched from a cold page.
 */
static uint64_t op2(uint32_t insn, uint64_t a, uint64_t b)
{
	tm.cursor = RAM_BASE;
	emit(&tm, NOP);
	emit(&tm, insn);
	emit(&tm, ECALL);
	tm_set_pc(&tm, RAM_BASE);
	set_reg(&tm, A1, a);
	set_reg(&tm, A2, b);
	set_reg(&tm, A0, SENTINEL);
	tm_run_to_ecall(&tm);
	return reg(&tm, A0);
}

#define HI 0x8000000000000000ull

Test(rv64_zb, zba_shift_and_add)
{
	cr_expect_eq(op2(SH1ADD(A0, A1, A2), 0x100, 7), 0x207);
	cr_expect_eq(op2(SH2ADD(A0, A1, A2), 0x100, 7), 0x407);
	cr_expect_eq(op2(SH3ADD(A0, A1, A2), 0x100, 7), 0x807);
	cr_expect_eq(op2(SH3ADD(A0, A1, A2), HI | 1, 0), 8, "bits shifted out are lost");
	/* The .uw forms take only the low word of rs1, zero-extended. */
	cr_expect_eq(op2(ADD_UW(A0, A1, A2), 0xffffffff80000000ull, 1), 0x80000001ull);
	cr_expect_eq(op2(ADD_UW(A0, A1, ZERO), 0xdeadbeefcafef00dull, 0), 0xcafef00dull,
		     "zext.w");
	cr_expect_eq(op2(SH1ADD_UW(A0, A1, A2), 0x1ffffffffull, 1), 0x1ffffffffull);
	cr_expect_eq(op2(SH2ADD_UW(A0, A1, A2), 0xf0000000c0000000ull, 0), 0x300000000ull);
	cr_expect_eq(op2(SH3ADD_UW(A0, A1, A2), 0xffffffffffffffffull, 8), 0x800000000ull);
	cr_expect_eq(op2(SLLI_UW(A0, A1, 0), 0xffffffff80000000ull, 0), 0x80000000ull);
	cr_expect_eq(op2(SLLI_UW(A0, A1, 4), 0xffffffff80000001ull, 0), 0x800000010ull);
	cr_expect_eq(op2(SLLI_UW(A0, A1, 63), 0x3, 0), HI, "a 6-bit shift amount");
}

Test(rv64_zb, zbb_logic_with_negate)
{
	uint64_t a = 0xff00ff00f0f0f0f0ull, b = 0x0ff00ff00ff00ff0ull;

	cr_expect_eq(op2(ANDN(A0, A1, A2), a, b), 0xf000f000f000f000ull);
	cr_expect_eq(op2(ORN(A0, A1, A2), a, b), 0xff0fff0ff0fff0ffull);
	cr_expect_eq(op2(XNOR(A0, A1, A2), a, b), 0x0f0f0f0f00ff00ffull);
	cr_expect_eq(op2(XNOR(A0, A1, A1), a, 0), UINT64_MAX, "rs1 = rs2");
}

Test(rv64_zb, zbb_min_max)
{
	uint64_t neg = (uint64_t)-5;

	cr_expect_eq(op2(MIN(A0, A1, A2), neg, 3), neg);
	cr_expect_eq(op2(MAX(A0, A1, A2), neg, 3), 3);
	cr_expect_eq(op2(MINU(A0, A1, A2), neg, 3), 3);
	cr_expect_eq(op2(MAXU(A0, A1, A2), neg, 3), neg);
	cr_expect_eq(op2(MIN(A0, A1, A2), HI, HI - 1), HI);
	cr_expect_eq(op2(MAXU(A0, A1, A2), 7, 7), 7);
}

Test(rv64_zb, zbb_counts)
{
	cr_expect_eq(op2(CLZ(A0, A1), 0, 0), 64);
	cr_expect_eq(op2(CLZ(A0, A1), 1, 0), 63);
	cr_expect_eq(op2(CLZ(A0, A1), HI, 0), 0);
	cr_expect_eq(op2(CTZ(A0, A1), 0, 0), 64);
	cr_expect_eq(op2(CTZ(A0, A1), HI, 0), 63);
	cr_expect_eq(op2(CTZ(A0, A1), 0x50, 0), 4);
	cr_expect_eq(op2(CPOP(A0, A1), UINT64_MAX, 0), 64);
	cr_expect_eq(op2(CPOP(A0, A1), 0x8000000100000001ull, 0), 3);
	/* The W forms look at the low word only. */
	cr_expect_eq(op2(CLZW(A0, A1), 0xffffffff00000000ull, 0), 32);
	cr_expect_eq(op2(CLZW(A0, A1), 0x0000ffff00010000ull, 0), 15);
	cr_expect_eq(op2(CLZW(A0, A1), 0x80000000ull, 0), 0);
	cr_expect_eq(op2(CTZW(A0, A1), 0xffffffff00000000ull, 0), 32);
	cr_expect_eq(op2(CTZW(A0, A1), 0x80000000ull, 0), 31);
	cr_expect_eq(op2(CPOPW(A0, A1), 0xffffffff0000000full, 0), 4);
}

Test(rv64_zb, zbb_extend_and_bytes)
{
	cr_expect_eq(op2(SEXT_B(A0, A1), 0x1234567880ull, 0), 0xffffffffffffff80ull);
	cr_expect_eq(op2(SEXT_B(A0, A1), 0x17full, 0), 0x7f);
	cr_expect_eq(op2(SEXT_H(A0, A1), 0x12348000ull, 0), 0xffffffffffff8000ull);
	cr_expect_eq(op2(ZEXT_H(A0, A1), 0xffffffffffff8001ull, 0), 0x8001);
	cr_expect_eq(op2(REV8(A0, A1), 0x0102030405060708ull, 0), 0x0807060504030201ull);
	cr_expect_eq(op2(ORC_B(A0, A1), 0x0001020000ff0010ull, 0), 0x00ffff0000ff00ffull);
	cr_expect_eq(op2(ORC_B(A0, A1), 0, 0), 0);
}

Test(rv64_zb, zbb_rotates)
{
	uint64_t a = 0x8000000000000001ull;

	cr_expect_eq(op2(ROL(A0, A1, A2), a, 1), 3);
	cr_expect_eq(op2(ROL(A0, A1, A2), a, 64 + 4), 0x18, "amount mod 64");
	cr_expect_eq(op2(ROR(A0, A1, A2), a, 1), 0xc000000000000000ull);
	cr_expect_eq(op2(ROR(A0, A1, A2), a, 0), a);
	cr_expect_eq(op2(RORI(A0, A1, 4), 0x12, 0), 0x2000000000000001ull);
	cr_expect_eq(op2(RORI(A0, A1, 63), a, 0), 3);
	/* W forms rotate the low word and sign-extend the result. */
	cr_expect_eq(op2(ROLW(A0, A1, A2), 0xffffffff40000000ull, 1), 0xffffffff80000000ull);
	cr_expect_eq(op2(ROLW(A0, A1, A2), 0x80000001ull, 32 + 1), 3, "amount mod 32");
	cr_expect_eq(op2(RORW(A0, A1, A2), 1, 1), 0xffffffff80000000ull);
	cr_expect_eq(op2(RORIW(A0, A1, 8), 0xaa000000ffull, 0), 0xffffffffff000000ull);
	cr_expect_eq(op2(RORIW(A0, A1, 0), 0x7fffffffull, 0), 0x7fffffff);
}

Test(rv64_zb, zbs_single_bits)
{
	cr_expect_eq(op2(BSET(A0, A1, A2), 0, 63), HI);
	cr_expect_eq(op2(BSET(A0, A1, A2), 0, 64 + 2), 4, "index mod 64");
	cr_expect_eq(op2(BCLR(A0, A1, A2), UINT64_MAX, 32), 0xfffffffeffffffffull);
	cr_expect_eq(op2(BINV(A0, A1, A2), 0x10, 4), 0);
	cr_expect_eq(op2(BINV(A0, A1, A2), 0, 40), 1ull << 40);
	cr_expect_eq(op2(BEXT(A0, A1, A2), HI, 63), 1);
	cr_expect_eq(op2(BEXT(A0, A1, A2), HI, 62), 0);
	cr_expect_eq(op2(BSETI(A0, A1, 37), 1, 0), 1 | 1ull << 37);
	cr_expect_eq(op2(BCLRI(A0, A1, 0), 3, 0), 2);
	cr_expect_eq(op2(BINVI(A0, A1, 63), UINT64_MAX, 0), HI - 1);
	cr_expect_eq(op2(BEXTI(A0, A1, 33), 0x200000000ull, 0), 1);
	cr_expect_eq(op2(BEXTI(A0, A1, 32), 0x200000000ull, 0), 0);
}

Test(rv64_zb, writes_to_x0_vanish)
{
	op2(SH1ADD(ZERO, A1, A2), 5, 6);
	cr_expect_eq(reg(&tm, ZERO), 0);
	cr_expect_eq(op2(CLZ(ZERO, A1), 0, 0), SENTINEL, "a0 untouched");
}

/* Encodings next to the Zb ones that stay reserved: each must trap as illegal. */
static void expect_illegal(uint32_t bad)
{
	struct vcpu_state s;

	tm.cursor = RAM_BASE;
	emit(&tm, bad);
	tm.cursor = RAM_BASE + 0x100;
	emit(&tm, ECALL);
	tm_set_pc(&tm, RAM_BASE);
	s = tm_state(&tm);
	s.stvec = RAM_BASE + 0x100;
	cr_assert_eq(tm.ops->vcpu_set_state(tm.cpu, &s), 0);
	tm_run_to_ecall(&tm);
	cr_expect_eq(tm_state(&tm).scause, 2, "%08x", bad);
	cr_expect_eq(tm_state(&tm).stval, bad, "%08x", bad);
}

Test(rv64_zb, neighbouring_encodings_are_illegal)
{
	expect_illegal(enc_i(0x13, A0, 1, A1, 0x603));		/* between cpop and sext.b */
	expect_illegal(enc_i(0x13, A0, 5, A1, 0x288));		/* orc.b with other low bits */
	expect_illegal(enc_i(0x13, A0, 5, A1, 0x6b0));		/* rev8 of RV32 */
	expect_illegal(enc_r(0x3b, A0, 4, A1, A2, 0x04));	/* zext.h with rs2 != 0 */
	expect_illegal(RORIW(A0, A1, 0) | 1u << 25);		/* roriw with shamt[5] set */
	expect_illegal(enc_r(0x33, A0, 3, A1, A2, 0x05));	/* funct7 5, funct3 3 */
	expect_illegal(enc_r(0x3b, A0, 1, A1, A2, 0x24));	/* no 32-bit bclr */
	expect_illegal(enc_i(0x1b, A0, 1, A1, 0x480));		/* no bclri in OP-IMM-32 */
}

/*
 * The same instruction straddling a page boundary: both engines hand it to
 * the generic decoder (exec.c) rather than to their fast paths.
 */
static uint64_t op2_straddling(uint32_t insn, uint64_t a, uint64_t b)
{
	uint64_t at = RAM_BASE + 0x2000 - 2;

	tm.cursor = at;
	emit(&tm, insn);
	emit(&tm, ECALL);
	tm_set_pc(&tm, at);
	set_reg(&tm, A1, a);
	set_reg(&tm, A2, b);
	set_reg(&tm, A0, SENTINEL);
	tm_run_to_ecall(&tm);
	return reg(&tm, A0);
}

Test(rv64_zb, generic_path_straddling_a_page)
{
	cr_expect_eq(op2_straddling(SH2ADD_UW(A0, A1, A2), 0xf0000000c0000000ull, 1),
		     0x300000001ull);
	cr_expect_eq(op2_straddling(ANDN(A0, A1, A2), 0xff, 0x0f), 0xf0);
	cr_expect_eq(op2_straddling(MINU(A0, A1, A2), (uint64_t)-1, 2), 2);
	cr_expect_eq(op2_straddling(CLZW(A0, A1), 0x0000ffff00010000ull, 0), 15);
	cr_expect_eq(op2_straddling(ZEXT_H(A0, A1), 0xffffffffffff8001ull, 0), 0x8001);
	cr_expect_eq(op2_straddling(RORIW(A0, A1, 8), 0xaa000000ffull, 0),
		     0xffffffffff000000ull);
	cr_expect_eq(op2_straddling(SLLI_UW(A0, A1, 4), 0xffffffff80000001ull, 0),
		     0x800000010ull);
	cr_expect_eq(op2_straddling(BEXTI(A0, A1, 33), 0x200000000ull, 0), 1);
	cr_expect_eq(op2_straddling(BINV(A0, A1, A2), 0, 40), 1ull << 40);
	cr_expect_eq(op2_straddling(ORC_B(A0, A1), 0x0001020000ff0010ull, 0),
		     0x00ffff0000ff00ffull);
	cr_expect_eq(op2_straddling(REV8(ZERO, A1), 1, 0), SENTINEL, "x0 stays 0");
	cr_expect_eq(reg(&tm, ZERO), 0);
}
