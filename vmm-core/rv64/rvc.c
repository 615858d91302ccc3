/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The C extension, by expansion: each compressed instruction becomes the
 * 32-bit instruction the spec defines it as, so it executes on one path.
 * Reserved encodings expand to 0.
 */
#include <pthread.h>

#include "hart.h"

enum {
	OP_LOAD = 0x03, OP_IMM = 0x13, OP_IMM32 = 0x1b, OP_STORE = 0x23, OP_OP = 0x33,
	OP_LUI = 0x37, OP_OP32 = 0x3b, OP_BRANCH = 0x63, OP_JALR = 0x67, OP_JAL = 0x6f,
	OP_SYSTEM = 0x73, OP_LOAD_FP = 0x07, OP_STORE_FP = 0x27,
};

#define EBREAK 0x00100073u

/* Bits [hi:lo] of c, shifted to start at bit 'to'. */
static inline uint32_t field(uint16_t c, unsigned hi, unsigned lo, unsigned to)
{
	return ((c >> lo) & ((1u << (hi - lo + 1)) - 1)) << to;
}

/* Sign-extends the low 'bits' bits of v. */
static inline int32_t sext(uint32_t v, unsigned bits)
{
	return (int32_t)(v << (32 - bits)) >> (32 - bits);
}

static uint32_t enc_i(unsigned op, unsigned rd, unsigned f3, unsigned rs1, int32_t imm)
{
	return (uint32_t)imm << 20 | rs1 << 15 | f3 << 12 | rd << 7 | op;
}

static uint32_t enc_r(unsigned op, unsigned rd, unsigned f3, unsigned rs1, unsigned rs2,
		      unsigned f7)
{
	return f7 << 25 | rs2 << 20 | rs1 << 15 | f3 << 12 | rd << 7 | op;
}

static uint32_t enc_s_op(unsigned op, unsigned f3, unsigned rs1, unsigned rs2, int32_t imm)
{
	uint32_t u = imm;

	return (u >> 5) << 25 | rs2 << 20 | rs1 << 15 | f3 << 12 | (u & 31) << 7 | op;
}

static uint32_t enc_s(unsigned f3, unsigned rs1, unsigned rs2, int32_t imm)
{
	return enc_s_op(OP_STORE, f3, rs1, rs2, imm);
}

static uint32_t enc_b(unsigned f3, unsigned rs1, unsigned rs2, int32_t imm)
{
	uint32_t u = imm;

	return ((u >> 12) & 1) << 31 | ((u >> 5) & 0x3f) << 25 | rs2 << 20 | rs1 << 15 |
	       f3 << 12 | ((u >> 1) & 0xf) << 8 | ((u >> 11) & 1) << 7 | OP_BRANCH;
}

static uint32_t enc_j(unsigned rd, int32_t imm)
{
	uint32_t u = imm;

	return ((u >> 20) & 1) << 31 | ((u >> 1) & 0x3ff) << 21 | ((u >> 11) & 1) << 20 |
	       ((u >> 12) & 0xff) << 12 | rd << 7 | OP_JAL;
}

/* The 3-bit register fields of CIW/CL/CS/CA/CB name x8..x15. */
static inline unsigned creg(uint16_t c, unsigned lo)
{
	return 8 + ((c >> lo) & 7);
}

static uint32_t expand_q0(uint16_t c)
{
	unsigned rd = creg(c, 2), rs1 = creg(c, 7);
	uint32_t uimm_w = field(c, 12, 10, 3) | field(c, 6, 6, 2) | field(c, 5, 5, 6);
	uint32_t uimm_d = field(c, 12, 10, 3) | field(c, 6, 5, 6);
	uint32_t nzuimm;

	switch (c >> 13) {
	case 0: /* C.ADDI4SPN */
		nzuimm = field(c, 12, 11, 4) | field(c, 10, 7, 6) | field(c, 6, 6, 2) |
			 field(c, 5, 5, 3);
		return nzuimm ? enc_i(OP_IMM, rd, 0, 2, nzuimm) : 0;
	case 1: return enc_i(OP_LOAD_FP, rd, 3, rs1, uimm_d);	/* C.FLD */
	case 2: return enc_i(OP_LOAD, rd, 2, rs1, uimm_w);	/* C.LW */
	case 3: return enc_i(OP_LOAD, rd, 3, rs1, uimm_d);	/* C.LD */
	case 5: return enc_s_op(OP_STORE_FP, 3, rs1, rd, uimm_d);	/* C.FSD */
	case 6: return enc_s(2, rs1, rd, uimm_w);		/* C.SW */
	case 7: return enc_s(3, rs1, rd, uimm_d);		/* C.SD */
	default: return 0;
	}
}

/* C.SRLI, C.SRAI, C.ANDI and the register-register CA group. */
static uint32_t expand_q1_alu(uint16_t c)
{
	static const uint8_t ca_funct3[4] = { 0, 4, 6, 7 };	/* SUB XOR OR AND */
	unsigned rd = creg(c, 7), rs2 = creg(c, 2), op2 = (c >> 5) & 3;
	uint32_t shamt = field(c, 12, 12, 5) | field(c, 6, 2, 0);
	int32_t imm = sext(shamt, 6);

	switch ((c >> 10) & 3) {
	case 0: return enc_i(OP_IMM, rd, 5, rd, shamt);
	case 1: return enc_i(OP_IMM, rd, 5, rd, shamt | 0x400);
	case 2: return enc_i(OP_IMM, rd, 7, rd, imm);
	default: break;
	}
	if (!(c & (1u << 12)))
		return enc_r(OP_OP, rd, ca_funct3[op2], rd, rs2, op2 == 0 ? 0x20 : 0);
	if (op2 >= 2)
		return 0;
	return enc_r(OP_OP32, rd, 0, rd, rs2, op2 == 0 ? 0x20 : 0);	/* SUBW, ADDW */
}

static uint32_t expand_q1(uint16_t c)
{
	unsigned rd = (c >> 7) & 31;
	int32_t imm6 = sext(field(c, 12, 12, 5) | field(c, 6, 2, 0), 6);
	int32_t imm;

	switch (c >> 13) {
	case 0: return enc_i(OP_IMM, rd, 0, rd, imm6);		/* C.ADDI, C.NOP */
	case 1: return rd ? enc_i(OP_IMM32, rd, 0, rd, imm6) : 0;	/* C.ADDIW */
	case 2: return enc_i(OP_IMM, rd, 0, 0, imm6);		/* C.LI */
	case 3:
		if (rd == 2) {	/* C.ADDI16SP */
			imm = sext(field(c, 12, 12, 9) | field(c, 6, 6, 4) | field(c, 5, 5, 6) |
				   field(c, 4, 3, 7) | field(c, 2, 2, 5), 10);
			return imm ? enc_i(OP_IMM, 2, 0, 2, imm) : 0;
		}
		/* C.LUI */
		imm = sext(field(c, 12, 12, 17) | field(c, 6, 2, 12), 18);
		return imm ? ((uint32_t)imm & 0xfffff000u) | rd << 7 | OP_LUI : 0;
	case 4: return expand_q1_alu(c);
	case 5: /* C.J */
		imm = sext(field(c, 12, 12, 11) | field(c, 11, 11, 4) | field(c, 10, 9, 8) |
			   field(c, 8, 8, 10) | field(c, 7, 7, 6) | field(c, 6, 6, 7) |
			   field(c, 5, 3, 1) | field(c, 2, 2, 5), 12);
		return enc_j(0, imm);
	default: /* C.BEQZ, C.BNEZ */
		imm = sext(field(c, 12, 12, 8) | field(c, 11, 10, 3) | field(c, 6, 5, 6) |
			   field(c, 4, 3, 1) | field(c, 2, 2, 5), 9);
		return enc_b((c >> 13) == 6 ? 0 : 1, creg(c, 7), 0, imm);
	}
}

/* C.JR, C.MV, C.EBREAK, C.JALR, C.ADD */
static uint32_t expand_q2_cr(uint16_t c)
{
	unsigned rd = (c >> 7) & 31, rs2 = (c >> 2) & 31;

	if (!(c & (1u << 12))) {
		if (rs2)
			return enc_r(OP_OP, rd, 0, 0, rs2, 0);
		return rd ? enc_i(OP_JALR, 0, 0, rd, 0) : 0;
	}
	if (rs2)
		return enc_r(OP_OP, rd, 0, rd, rs2, 0);
	return rd ? enc_i(OP_JALR, 1, 0, rd, 0) : EBREAK;
}

static uint32_t expand_q2(uint16_t c)
{
	unsigned rd = (c >> 7) & 31, rs2 = (c >> 2) & 31;
	uint32_t shamt = field(c, 12, 12, 5) | field(c, 6, 2, 0);

	switch (c >> 13) {
	case 0: return enc_i(OP_IMM, rd, 1, rd, shamt);	/* C.SLLI */
	case 1: /* C.FLDSP */
		return enc_i(OP_LOAD_FP, rd, 3, 2, field(c, 12, 12, 5) | field(c, 6, 5, 3) |
			     field(c, 4, 2, 6));
	case 2: /* C.LWSP */
		return rd ? enc_i(OP_LOAD, rd, 2, 2, field(c, 12, 12, 5) | field(c, 6, 4, 2) |
				  field(c, 3, 2, 6)) : 0;
	case 3: /* C.LDSP */
		return rd ? enc_i(OP_LOAD, rd, 3, 2, field(c, 12, 12, 5) | field(c, 6, 5, 3) |
				  field(c, 4, 2, 6)) : 0;
	case 4: return expand_q2_cr(c);
	case 5: /* C.FSDSP */
		return enc_s_op(OP_STORE_FP, 3, 2, rs2, field(c, 12, 10, 3) | field(c, 9, 7, 6));
	case 6: return enc_s(2, 2, rs2, field(c, 12, 9, 2) | field(c, 8, 7, 6));	/* C.SWSP */
	case 7: return enc_s(3, 2, rs2, field(c, 12, 10, 3) | field(c, 9, 7, 6));	/* C.SDSP */
	default: return 0;
	}
}

static uint32_t expand(uint16_t c)
{
	switch (c & 3) {
	case 0: return expand_q0(c);
	case 1: return expand_q1(c);
	case 2: return expand_q2(c);
	default: return 0;
	}
}

/*
 * Expanding is a few dozen branches; the run loop instead indexes a table
 * filled once per process (256 KiB, read-only after init, shared by harts).
 */
uint32_t rv64_rvc_table[1u << 16];
static pthread_once_t rvc_table_once = PTHREAD_ONCE_INIT;

static void rvc_table_fill(void)
{
	for (uint32_t c = 0; c < (1u << 16); c++)
		rv64_rvc_table[c] = (c & 3) == 3 ? 0 : expand(c);
}

void rv64_rvc_init(void)
{
	pthread_once(&rvc_table_once, rvc_table_fill);
}
