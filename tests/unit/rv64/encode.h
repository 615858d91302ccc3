/* SPDX-License-Identifier: Apache-2.0 */
/*
 * RISC-V instruction encoders for the engine's tests and fuzz targets, so
 * programs can be written without an assembler. No test framework here:
 * the fuzz targets include this file too.
 *
 * The compressed encoders are only defined where RV64_ENCODE_RVC is defined
 * before the first include: test_rvc.c spells some of the same names its
 * own way, to check the expansions independently of these.
 */
#ifndef CLOISTER_TEST_RV64_ENCODE_H
#define CLOISTER_TEST_RV64_ENCODE_H

#include <stdbool.h>
#include <stdint.h>

/* Register numbers by ABI name, for readable programs. */
enum {
	ZERO, RA, SP, GP, TP, T0, T1, T2, S0, S1, A0, A1, A2, A3, A4, A5, A6, A7,
	S2, S3, S4, S5, S6, S7, S8, S9, S10, S11, T3, T4, T5, T6,
};

/* ---- base formats (RISC-V unprivileged spec) ---- */

static inline uint32_t enc_r(unsigned op, unsigned rd, unsigned f3, unsigned rs1, unsigned rs2,
			     unsigned f7)
{
	return f7 << 25 | rs2 << 20 | rs1 << 15 | f3 << 12 | rd << 7 | op;
}

static inline uint32_t enc_i(unsigned op, unsigned rd, unsigned f3, unsigned rs1, int32_t imm)
{
	return ((uint32_t)imm & 0xfff) << 20 | rs1 << 15 | f3 << 12 | rd << 7 | op;
}

/* Integer stores (opcode 0x23); FSW/FSD replace the low seven bits with 0x27. */
static inline uint32_t enc_s(unsigned f3, unsigned rs1, unsigned rs2, int32_t imm)
{
	uint32_t u = (uint32_t)imm;

	return ((u >> 5) & 0x7f) << 25 | rs2 << 20 | rs1 << 15 | f3 << 12 | (u & 31) << 7 | 0x23;
}

static inline uint32_t enc_b(unsigned f3, unsigned rs1, unsigned rs2, int32_t imm)
{
	uint32_t u = (uint32_t)imm;

	return ((u >> 12) & 1) << 31 | ((u >> 5) & 0x3f) << 25 | rs2 << 20 | rs1 << 15 |
	       f3 << 12 | ((u >> 1) & 0xf) << 8 | ((u >> 11) & 1) << 7 | 0x63;
}

static inline uint32_t enc_u(unsigned op, unsigned rd, uint32_t imm)
{
	return (imm & 0xfffff000u) | rd << 7 | op;
}

static inline uint32_t enc_j(unsigned rd, int32_t imm)
{
	uint32_t u = (uint32_t)imm;

	return ((u >> 20) & 1) << 31 | ((u >> 1) & 0x3ff) << 21 | ((u >> 11) & 1) << 20 |
	       ((u >> 12) & 0xff) << 12 | rd << 7 | 0x6f;
}

#define ADD(d, a, b) enc_r(0x33, d, 0, a, b, 0)
#define SUB(d, a, b) enc_r(0x33, d, 0, a, b, 0x20)
#define SLL(d, a, b) enc_r(0x33, d, 1, a, b, 0)
#define SLT(d, a, b) enc_r(0x33, d, 2, a, b, 0)
#define SLTU(d, a, b) enc_r(0x33, d, 3, a, b, 0)
#define XOR(d, a, b) enc_r(0x33, d, 4, a, b, 0)
#define SRL(d, a, b) enc_r(0x33, d, 5, a, b, 0)
#define SRA(d, a, b) enc_r(0x33, d, 5, a, b, 0x20)
#define OR(d, a, b) enc_r(0x33, d, 6, a, b, 0)
#define AND(d, a, b) enc_r(0x33, d, 7, a, b, 0)
#define ADDW(d, a, b) enc_r(0x3b, d, 0, a, b, 0)
#define SUBW(d, a, b) enc_r(0x3b, d, 0, a, b, 0x20)
#define SLLW(d, a, b) enc_r(0x3b, d, 1, a, b, 0)
#define SRLW(d, a, b) enc_r(0x3b, d, 5, a, b, 0)
#define SRAW(d, a, b) enc_r(0x3b, d, 5, a, b, 0x20)
#define MUL(d, a, b) enc_r(0x33, d, 0, a, b, 1)
#define MULH(d, a, b) enc_r(0x33, d, 1, a, b, 1)
#define MULHSU(d, a, b) enc_r(0x33, d, 2, a, b, 1)
#define MULHU(d, a, b) enc_r(0x33, d, 3, a, b, 1)
#define DIV(d, a, b) enc_r(0x33, d, 4, a, b, 1)
#define DIVU(d, a, b) enc_r(0x33, d, 5, a, b, 1)
#define REM(d, a, b) enc_r(0x33, d, 6, a, b, 1)
#define REMU(d, a, b) enc_r(0x33, d, 7, a, b, 1)
#define MULW(d, a, b) enc_r(0x3b, d, 0, a, b, 1)
#define DIVW(d, a, b) enc_r(0x3b, d, 4, a, b, 1)
#define DIVUW(d, a, b) enc_r(0x3b, d, 5, a, b, 1)
#define REMW(d, a, b) enc_r(0x3b, d, 6, a, b, 1)
#define REMUW(d, a, b) enc_r(0x3b, d, 7, a, b, 1)

#define ADDI(d, a, i) enc_i(0x13, d, 0, a, i)
#define SLTI(d, a, i) enc_i(0x13, d, 2, a, i)
#define SLTIU(d, a, i) enc_i(0x13, d, 3, a, i)
#define XORI(d, a, i) enc_i(0x13, d, 4, a, i)
#define ORI(d, a, i) enc_i(0x13, d, 6, a, i)
#define ANDI(d, a, i) enc_i(0x13, d, 7, a, i)
#define SLLI(d, a, sh) enc_i(0x13, d, 1, a, sh)
#define SRLI(d, a, sh) enc_i(0x13, d, 5, a, sh)
#define SRAI(d, a, sh) enc_i(0x13, d, 5, a, 0x400 | (sh))
#define ADDIW(d, a, i) enc_i(0x1b, d, 0, a, i)
#define SLLIW(d, a, sh) enc_i(0x1b, d, 1, a, sh)
#define SRLIW(d, a, sh) enc_i(0x1b, d, 5, a, sh)
#define SRAIW(d, a, sh) enc_i(0x1b, d, 5, a, 0x400 | (sh))
#define LUI(d, imm) enc_u(0x37, d, imm)
#define AUIPC(d, imm) enc_u(0x17, d, imm)

#define LB(d, a, i) enc_i(0x03, d, 0, a, i)
#define LH(d, a, i) enc_i(0x03, d, 1, a, i)
#define LW(d, a, i) enc_i(0x03, d, 2, a, i)
#define LD(d, a, i) enc_i(0x03, d, 3, a, i)
#define LBU(d, a, i) enc_i(0x03, d, 4, a, i)
#define LHU(d, a, i) enc_i(0x03, d, 5, a, i)
#define LWU(d, a, i) enc_i(0x03, d, 6, a, i)
#define SB(a, s, i) enc_s(0, a, s, i)
#define SH(a, s, i) enc_s(1, a, s, i)
#define SW(a, s, i) enc_s(2, a, s, i)
#define SD(a, s, i) enc_s(3, a, s, i)

#define BEQ(a, b, off) enc_b(0, a, b, off)
#define BNE(a, b, off) enc_b(1, a, b, off)
#define BLT(a, b, off) enc_b(4, a, b, off)
#define BGE(a, b, off) enc_b(5, a, b, off)
#define BLTU(a, b, off) enc_b(6, a, b, off)
#define BGEU(a, b, off) enc_b(7, a, b, off)
#define JAL(d, off) enc_j(d, off)
#define JALR(d, a, i) enc_i(0x67, d, 0, a, i)

/* Zba, Zbb, Zbs (RV64 forms). */
#define SH1ADD(d, a, b) enc_r(0x33, d, 2, a, b, 0x10)
#define SH2ADD(d, a, b) enc_r(0x33, d, 4, a, b, 0x10)
#define SH3ADD(d, a, b) enc_r(0x33, d, 6, a, b, 0x10)
#define ADD_UW(d, a, b) enc_r(0x3b, d, 0, a, b, 0x04)
#define SH1ADD_UW(d, a, b) enc_r(0x3b, d, 2, a, b, 0x10)
#define SH2ADD_UW(d, a, b) enc_r(0x3b, d, 4, a, b, 0x10)
#define SH3ADD_UW(d, a, b) enc_r(0x3b, d, 6, a, b, 0x10)
#define SLLI_UW(d, a, sh) enc_i(0x1b, d, 1, a, 0x080 | (sh))
#define ANDN(d, a, b) enc_r(0x33, d, 7, a, b, 0x20)
#define ORN(d, a, b) enc_r(0x33, d, 6, a, b, 0x20)
#define XNOR(d, a, b) enc_r(0x33, d, 4, a, b, 0x20)
#define MIN(d, a, b) enc_r(0x33, d, 4, a, b, 0x05)
#define MINU(d, a, b) enc_r(0x33, d, 5, a, b, 0x05)
#define MAX(d, a, b) enc_r(0x33, d, 6, a, b, 0x05)
#define MAXU(d, a, b) enc_r(0x33, d, 7, a, b, 0x05)
#define ROL(d, a, b) enc_r(0x33, d, 1, a, b, 0x30)
#define ROR(d, a, b) enc_r(0x33, d, 5, a, b, 0x30)
#define ROLW(d, a, b) enc_r(0x3b, d, 1, a, b, 0x30)
#define RORW(d, a, b) enc_r(0x3b, d, 5, a, b, 0x30)
#define RORI(d, a, sh) enc_i(0x13, d, 5, a, 0x600 | (sh))
#define RORIW(d, a, sh) enc_i(0x1b, d, 5, a, 0x600 | (sh))
#define CLZ(d, a) enc_i(0x13, d, 1, a, 0x600)
#define CTZ(d, a) enc_i(0x13, d, 1, a, 0x601)
#define CPOP(d, a) enc_i(0x13, d, 1, a, 0x602)
#define CLZW(d, a) enc_i(0x1b, d, 1, a, 0x600)
#define CTZW(d, a) enc_i(0x1b, d, 1, a, 0x601)
#define CPOPW(d, a) enc_i(0x1b, d, 1, a, 0x602)
#define SEXT_B(d, a) enc_i(0x13, d, 1, a, 0x604)
#define SEXT_H(d, a) enc_i(0x13, d, 1, a, 0x605)
#define ZEXT_H(d, a) enc_r(0x3b, d, 4, a, 0, 0x04)
#define ORC_B(d, a) enc_i(0x13, d, 5, a, 0x287)
#define REV8(d, a) enc_i(0x13, d, 5, a, 0x6b8)
#define BCLR(d, a, b) enc_r(0x33, d, 1, a, b, 0x24)
#define BEXT(d, a, b) enc_r(0x33, d, 5, a, b, 0x24)
#define BINV(d, a, b) enc_r(0x33, d, 1, a, b, 0x34)
#define BSET(d, a, b) enc_r(0x33, d, 1, a, b, 0x14)
#define BCLRI(d, a, sh) enc_i(0x13, d, 1, a, 0x480 | (sh))
#define BEXTI(d, a, sh) enc_i(0x13, d, 5, a, 0x480 | (sh))
#define BINVI(d, a, sh) enc_i(0x13, d, 1, a, 0x680 | (sh))
#define BSETI(d, a, sh) enc_i(0x13, d, 1, a, 0x280 | (sh))

/* A extension: funct5, aq=rl=0. */
#define AMO(f5, f3, d, a, s) enc_r(0x2f, d, f3, a, s, (f5) << 2)
#define LR_W(d, a) AMO(0x02, 2, d, a, 0)
#define LR_D(d, a) AMO(0x02, 3, d, a, 0)
#define SC_W(d, a, s) AMO(0x03, 2, d, a, s)
#define SC_D(d, a, s) AMO(0x03, 3, d, a, s)
#define AMOADD_W(d, a, s) AMO(0x00, 2, d, a, s)
#define AMOADD_D(d, a, s) AMO(0x00, 3, d, a, s)

#define CSRRW(d, csr, a) enc_i(0x73, d, 1, a, csr)
#define CSRRS(d, csr, a) enc_i(0x73, d, 2, a, csr)
#define CSRRC(d, csr, a) enc_i(0x73, d, 3, a, csr)
#define CSRRWI(d, csr, u) enc_i(0x73, d, 5, u, csr)
#define CSRRSI(d, csr, u) enc_i(0x73, d, 6, u, csr)
#define CSRR(rd, csr) CSRRS(rd, csr, 0)
#define ECALL 0x00000073u
#define EBREAK 0x00100073u
#define SRET 0x10200073u
#define WFI 0x10500073u
#define SFENCE_VMA 0x12000073u
#define SFENCE_VMA_ADDR(a) (0x12000073u | (uint32_t)(a) << 15)
#define FENCE_I 0x0000100fu
#define FENCE_RW 0x0ff0000fu
#define NOP ADDI(0, 0, 0)

#endif /* CLOISTER_TEST_RV64_ENCODE_H */

#if defined(RV64_ENCODE_RVC) && !defined(CLOISTER_TEST_RV64_ENCODE_RVC)
#define CLOISTER_TEST_RV64_ENCODE_RVC

/* ---- compressed formats (RVC, quadrants 0-2) ---- */

/* Bit b of v, placed at bit 'to'. */
#define BIT(v, b, to) ((((uint32_t)(v) >> (b)) & 1u) << (to))

static inline uint16_t c_ci(unsigned f3, unsigned op, unsigned rd, int imm)
{
	return (uint16_t)(f3 << 13 | BIT(imm, 5, 12) | rd << 7 | ((unsigned)imm & 31) << 2 | op);
}

#define C_ADDI(rd, imm) c_ci(0, 1, rd, imm)
#define C_ADDIW(rd, imm) c_ci(1, 1, rd, imm)
#define C_LI(rd, imm) c_ci(2, 1, rd, imm)
#define C_LUI(rd, imm6) c_ci(3, 1, rd, imm6)	/* imm6 is nzimm[17:12] */
#define C_SLLI(rd, sh) c_ci(0, 2, rd, sh)
#define C_NOP 0x0001u

/* C.SRLI (f2 0), C.SRAI (1), C.ANDI (2) on rd' */
static inline uint16_t c_cb_alu(unsigned f2, unsigned rdp, int imm)
{
	return (uint16_t)(4u << 13 | BIT(imm, 5, 12) | f2 << 10 | (rdp - 8) << 7 |
			  ((unsigned)imm & 31) << 2 | 1);
}

/* C.SUB/XOR/OR/AND (w 0, f2 0-3), C.SUBW/ADDW (w 1, f2 0-1) */
static inline uint16_t c_ca(unsigned w, unsigned f2, unsigned rdp, unsigned rs2p)
{
	return (uint16_t)(4u << 13 | w << 12 | 3u << 10 | (rdp - 8) << 7 | f2 << 5 |
			  (rs2p - 8) << 2 | 1);
}

/* C.MV (f4 8) and C.ADD (f4 9); with rs2 = 0, C.JR and C.JALR. */
static inline uint16_t c_cr(unsigned f4, unsigned rd, unsigned rs2)
{
	return (uint16_t)(f4 << 12 | rd << 7 | rs2 << 2 | 2);
}

#define C_MV(d, s) c_cr(8, d, s)
#define C_ADD(d, s) c_cr(9, d, s)
#define C_JR(s) c_cr(8, s, 0)
#define C_JALR(s) c_cr(9, s, 0)

/* C.LW (f3 2) / C.SW (f3 6): uimm[5:3] at 12:10, uimm[2] at 6, uimm[6] at 5. */
static inline uint16_t c_mem_w(unsigned f3, unsigned rs1p, unsigned rp, unsigned uimm)
{
	return (uint16_t)(f3 << 13 | ((uimm >> 3) & 7) << 10 | (rs1p - 8) << 7 | BIT(uimm, 2, 6) |
			  BIT(uimm, 6, 5) | (rp - 8) << 2);
}

/*
 * C.LD (f3 3) / C.SD (f3 7), and C.FLD (1) / C.FSD (5) in the same layout:
 * uimm[5:3] at 12:10, uimm[7:6] at 6:5.
 */
static inline uint16_t c_mem_d(unsigned f3, unsigned rs1p, unsigned rp, unsigned uimm)
{
	return (uint16_t)(f3 << 13 | ((uimm >> 3) & 7) << 10 | (rs1p - 8) << 7 |
			  ((uimm >> 6) & 3) << 5 | (rp - 8) << 2);
}

static inline uint16_t c_j(int off)
{
	return (uint16_t)(5u << 13 | BIT(off, 11, 12) | BIT(off, 4, 11) | BIT(off, 9, 10) |
			  BIT(off, 8, 9) | BIT(off, 10, 8) | BIT(off, 6, 7) | BIT(off, 7, 6) |
			  BIT(off, 3, 5) | BIT(off, 2, 4) | BIT(off, 1, 3) | BIT(off, 5, 2) | 1);
}

/* C.BEQZ (ne false) / C.BNEZ */
static inline uint16_t c_bz(bool ne, unsigned rs1p, int off)
{
	return (uint16_t)((ne ? 7u : 6u) << 13 | BIT(off, 8, 12) | BIT(off, 4, 11) |
			  BIT(off, 3, 10) | (rs1p - 8) << 7 | BIT(off, 7, 6) | BIT(off, 6, 5) |
			  BIT(off, 2, 4) | BIT(off, 1, 3) | BIT(off, 5, 2) | 1);
}

#endif /* RV64_ENCODE_RVC */
