/* SPDX-License-Identifier: Apache-2.0 */
/* The C extension: each compressed form must act as its 32-bit expansion. */
#include "harness.h"

static struct tmachine tm;

static void setup(void)
{
	tm_init(&tm);
	tm_trap_to_ecall(&tm);
}

static void teardown(void)
{
	tm_fini(&tm);
}

TestSuite(rv64_rvc, .init = setup, .fini = teardown);

/* Bit b of v, placed at bit 'to'. */
#define B(v, b, to) ((((uint32_t)(v) >> (b)) & 1) << (to))

static uint16_t c_li(unsigned rd, int imm)
{
	return 0x4001 | B(imm, 5, 12) | rd << 7 | (imm & 31) << 2;
}

static uint16_t c_addi(unsigned rd, int imm)
{
	return 0x0001 | B(imm, 5, 12) | rd << 7 | (imm & 31) << 2;
}

static uint16_t c_addiw(unsigned rd, int imm)
{
	return 0x2001 | B(imm, 5, 12) | rd << 7 | (imm & 31) << 2;
}

static uint16_t c_lui(unsigned rd, int imm)	/* imm is bits 17:12 */
{
	return 0x6001 | B(imm, 17, 12) | rd << 7 | ((imm >> 12) & 31) << 2;
}

static uint16_t c_addi16sp(int imm)
{
	return 0x6101 | B(imm, 9, 12) | B(imm, 4, 6) | B(imm, 6, 5) | B(imm, 7, 3) |
	       B(imm, 8, 4) | B(imm, 5, 2);
}

static uint16_t c_addi4spn(unsigned rdp, unsigned imm)
{
	return 0x0000 | B(imm, 5, 12) | B(imm, 4, 11) | B(imm, 9, 10) | B(imm, 8, 9) |
	       B(imm, 7, 8) | B(imm, 6, 7) | B(imm, 2, 6) | B(imm, 3, 5) | (rdp - 8) << 2;
}

static uint16_t c_cl(unsigned f3, unsigned rdp, unsigned rs1p, unsigned imm, bool dword)
{
	uint16_t c = f3 << 13 | (rs1p - 8) << 7 | (rdp - 8) << 2 | ((imm >> 3) & 7) << 10;

	if (dword)
		return c | B(imm, 6, 5) | B(imm, 7, 6);
	return c | B(imm, 2, 6) | B(imm, 6, 5);
}

static uint16_t c_ldsp(unsigned rd, unsigned imm)
{
	return 0x6002 | B(imm, 5, 12) | rd << 7 | ((imm >> 3) & 3) << 5 | ((imm >> 6) & 7) << 2;
}

static uint16_t c_sdsp(unsigned rs2, unsigned imm)
{
	return 0xe002 | ((imm >> 3) & 7) << 10 | ((imm >> 6) & 7) << 7 | rs2 << 2;
}

static uint16_t c_lwsp(unsigned rd, unsigned imm)
{
	return 0x4002 | B(imm, 5, 12) | rd << 7 | ((imm >> 2) & 7) << 4 | ((imm >> 6) & 3) << 2;
}

static uint16_t c_swsp(unsigned rs2, unsigned imm)
{
	return 0xc002 | ((imm >> 2) & 15) << 9 | ((imm >> 6) & 3) << 7 | rs2 << 2;
}

static uint16_t c_j(int imm)
{
	return 0xa001 | B(imm, 11, 12) | B(imm, 4, 11) | B(imm, 9, 10) | B(imm, 8, 9) |
	       B(imm, 10, 8) | B(imm, 6, 7) | B(imm, 7, 6) | ((imm >> 1) & 7) << 3 | B(imm, 5, 2);
}

static uint16_t c_bz(bool ne, unsigned rs1p, int imm)
{
	return (ne ? 0xe001 : 0xc001) | B(imm, 8, 12) | ((imm >> 3) & 3) << 10 |
	       (rs1p - 8) << 7 | ((imm >> 6) & 3) << 5 | ((imm >> 1) & 3) << 3 | B(imm, 5, 2);
}

static uint16_t c_cr(unsigned f4, unsigned rd, unsigned rs2)
{
	return f4 << 12 | rd << 7 | rs2 << 2 | 2;
}

#define C_MV(d, s) c_cr(8, d, s)
#define C_ADD(d, s) c_cr(9, d, s)
#define C_JR(s) c_cr(8, s, 0)
#define C_JALR(s) c_cr(9, s, 0)
#define C_EBREAK 0x9002

static uint16_t c_ca(unsigned bit12, unsigned op2, unsigned rdp, unsigned rs2p)
{
	return 0x8c01 | bit12 << 12 | (rdp - 8) << 7 | op2 << 5 | (rs2p - 8) << 2;
}

static uint16_t c_shift_andi(unsigned f2, unsigned rdp, int imm)
{
	return 0x8001 | B(imm, 5, 12) | f2 << 10 | (rdp - 8) << 7 | (imm & 31) << 2;
}

static uint16_t c_slli(unsigned rd, unsigned sh)
{
	return 0x0002 | B(sh, 5, 12) | rd << 7 | (sh & 31) << 2;
}

static void run_from(uint64_t pc)
{
	tm_set_pc(&tm, pc);
	tm_run_to_ecall(&tm);
}

Test(rv64_rvc, immediates_and_alu)
{
	tm.cursor = RAM_BASE;
	emit16(&tm, c_li(A0, -5));
	emit16(&tm, c_addi(A0, 31));			/* 26 */
	emit16(&tm, c_lui(A1, -4096 * 3));		/* 0xffff...d000 */
	emit16(&tm, c_li(A2, 7));
	emit16(&tm, c_addiw(A2, -8));			/* -1 */
	emit16(&tm, c_li(S0, 12));
	emit16(&tm, c_li(S1, 10));
	emit16(&tm, c_ca(0, 0, S0, S1));		/* c.sub s0 = 2 */
	emit16(&tm, c_li(A3, 12));
	emit16(&tm, c_li(A4, 10));
	emit16(&tm, c_ca(0, 1, A3, A4));		/* c.xor a3 = 6 */
	emit16(&tm, c_li(A5, -1));
	emit16(&tm, c_shift_andi(0, A5, 60));		/* c.srli a5 = 15 */
	emit16(&tm, c_li(S1, -32));
	emit16(&tm, c_shift_andi(1, S1, 3));		/* c.srai s1 = -4 */
	emit16(&tm, c_shift_andi(2, A4, -3));		/* c.andi a4 = 10 & ~2 = 8 */
	emit16(&tm, c_slli(T0, 40));			/* t0 = t0 << 40 */
	emit16(&tm, C_MV(T1, A0));
	emit16(&tm, C_ADD(T1, A0));			/* 52 */
	emit16(&tm, c_ca(1, 1, S0, S1));		/* c.addw s0 = 2 + -4 = -2 */
	emit(&tm, ECALL);
	set_reg(&tm, T0, 3);
	run_from(RAM_BASE);
	cr_expect_eq(reg(&tm, A0), 26);
	cr_expect_eq(reg(&tm, A1), (uint64_t)(-4096 * 3));
	cr_expect_eq(reg(&tm, A2), UINT64_MAX);
	cr_expect_eq(reg(&tm, A3), 6);
	cr_expect_eq(reg(&tm, A5), 15);
	cr_expect_eq(reg(&tm, A4), 8);
	cr_expect_eq(reg(&tm, S1), (uint64_t)-4);
	cr_expect_eq(reg(&tm, S0), (uint64_t)-2);
	cr_expect_eq(reg(&tm, T0), 3ull << 40);
	cr_expect_eq(reg(&tm, T1), 52);
}

Test(rv64_rvc, stack_pointer_forms_and_loads_stores)
{
	uint64_t stack = RAM_BASE + 0x9000;

	tm.cursor = RAM_BASE;
	emit16(&tm, c_addi16sp(-64));
	emit16(&tm, c_sdsp(A1, 8));
	emit16(&tm, c_swsp(A1, 20));
	emit16(&tm, c_ldsp(A2, 8));
	emit16(&tm, c_lwsp(A3, 20));
	emit16(&tm, c_addi4spn(S0, 16));
	emit16(&tm, c_cl(3, S1, S0, 0, true));			/* c.ld s1, 0(s0): sp+16 */
	emit16(&tm, c_cl(7, A4, S0, 8, true));			/* c.sd a4, 8(s0) */
	emit16(&tm, c_cl(2, A5, S0, 4, false));			/* c.lw a5, 4(s0) = high half at sp+20 */
	emit16(&tm, c_cl(6, A4, S0, 12, false));		/* c.sw a4, 12(s0) */
	emit(&tm, ECALL);
	set_reg(&tm, SP, stack);
	set_reg(&tm, A1, 0x8765432112345678ull);
	set_reg(&tm, A4, 0xabcdef01ull);
	run_from(RAM_BASE);
	cr_expect_eq(reg(&tm, SP), stack - 64);
	cr_expect_eq(tm_peek64(&tm, stack - 64 + 8), 0x8765432112345678ull);
	cr_expect_eq(reg(&tm, A2), 0x8765432112345678ull);
	cr_expect_eq(reg(&tm, A3), 0x12345678ull);
	cr_expect_eq(reg(&tm, S0), stack - 64 + 16);
	cr_expect_eq(reg(&tm, S1), 0x12345678ull << 32, "c.ld sees the c.swsp word at sp+20");
	cr_expect_eq(reg(&tm, A5), 0x12345678ull, "word at sp+20");
	cr_expect_eq(tm_peek64(&tm, stack - 64 + 24), 0xabcdef01abcdef01ull, "c.sd then c.sw");
}

Test(rv64_rvc, jumps_and_branches)
{
	tm.cursor = RAM_BASE;
	emit16(&tm, c_li(A0, 0));
	emit16(&tm, c_li(S0, 3));
	emit16(&tm, c_addi(A0, 2));		/* loop: */
	emit16(&tm, c_addi(S0, -1));
	emit16(&tm, c_bz(true, S0, -4));	/* c.bnez s0, loop */
	emit16(&tm, c_bz(false, S0, 6));	/* c.beqz s0, +6: skips both c.li */
	emit16(&tm, c_li(A0, 31));
	emit16(&tm, c_li(A0, 31));
	emit16(&tm, C_JALR(T0));		/* RAM_BASE+0x10: call t0 */
	emit(&tm, ECALL);			/* RAM_BASE+0x12 */
	tm.cursor = RAM_BASE + 0x40;
	emit16(&tm, c_j(8));			/* t0 target: jump over 6 bytes */
	emit(&tm, 0xffffffffu);
	emit16(&tm, 0);
	emit16(&tm, C_MV(A1, RA));		/* RAM_BASE+0x48 */
	emit16(&tm, C_JR(RA));
	set_reg(&tm, T0, RAM_BASE + 0x40);
	run_from(RAM_BASE);
	cr_expect_eq(reg(&tm, A0), 6);
	cr_expect_eq(reg(&tm, A1), RAM_BASE + 0x12, "c.jalr links pc + 2");
	cr_expect_eq(tm_state(&tm).pc, RAM_BASE + 0x16);
}

Test(rv64_rvc, illegal_compressed_reports_16_bits)
{
	uint16_t bad[] = { 0x0000, c_addi4spn(S0, 0) | 1u << 2, c_addiw(ZERO, 1), C_JR(ZERO),
			   c_lwsp(ZERO, 4), 0x2000 /* c.fld, FS off */ };

	for (size_t i = 0; i < N_ELEMS(bad); i++) {
		tm.cursor = RAM_BASE;
		emit16(&tm, bad[i]);
		emit16(&tm, 0);
		run_from(RAM_BASE);
		cr_expect_eq(tm_state(&tm).scause, 2, "case %zu", i);
		cr_expect_eq(tm_state(&tm).stval, bad[i], "case %zu", i);
	}
}

Test(rv64_rvc, ebreak_and_32bit_insn_across_page)
{
	uint64_t pc = RAM_BASE + 0x1000 - 2;

	tm.cursor = pc;
	emit(&tm, ADDI(A0, ZERO, 77));		/* straddles the page boundary */
	emit16(&tm, C_EBREAK);
	run_from(pc);
	cr_expect_eq(reg(&tm, A0), 77);
	cr_expect_eq(tm_state(&tm).scause, 3);
	cr_expect_eq(tm_state(&tm).sepc, pc + 4);
}

/*
 * The decode cache keeps 32 fetched bits for a compressed instruction too:
 * rewriting only the next instruction must leave the first one working and
 * run the new second one.
 */
Test(rv64_rvc, neighbour_of_compressed_rewritten)
{
	tm.cursor = RAM_BASE;
	emit(&tm, ADDI(T1, ZERO, 2));		/* 0x00: two passes */
	emit16(&tm, c_addi(A0, 1));		/* 0x04: loop */
	emit16(&tm, c_addi(A1, 1));		/* 0x06: patched to c.addi a1, 5 */
	emit(&tm, SH(S1, S2, 0));		/* 0x08 */
	emit(&tm, FENCE_I);			/* 0x0c */
	emit(&tm, 0x0100000fu);			/* 0x10: PAUSE, a FENCE with pred W */
	emit(&tm, ADDI(T1, T1, -1));		/* 0x14 */
	emit(&tm, BNE(T1, ZERO, -0x14));	/* 0x18: back to 0x04 */
	emit(&tm, ECALL);			/* 0x1c */
	set_reg(&tm, S1, RAM_BASE + 6);
	set_reg(&tm, S2, c_addi(A1, 5));
	run_from(RAM_BASE);
	cr_expect_eq(reg(&tm, A0), 2);
	cr_expect_eq(reg(&tm, A1), 1 + 5);
}
