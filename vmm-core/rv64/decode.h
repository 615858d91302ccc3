/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The pre-decoded form of the instructions the fast paths handle themselves,
 * shared by the interpreter's run loop (run.c) and the translator (jit_x86.c).
 * Everything else is DC_SLOW and goes through rv64_step().
 */
#ifndef CLOISTER_RV64_DECODE_H
#define CLOISTER_RV64_DECODE_H

#include <stdint.h>

#include "hart.h"

enum dc_op {
	DC_SLOW = 0,	/* must stay 0: a zeroed cache runs everything the generic way */
	DC_NOP, DC_LUI, DC_AUIPC, DC_JAL, DC_J, DC_JALR, DC_JR,
	DC_BEQ, DC_BNE, DC_BLT, DC_BGE, DC_BLTU, DC_BGEU,
	DC_LB, DC_LH, DC_LW, DC_LD, DC_LBU, DC_LHU, DC_LWU,
	DC_SB, DC_SH, DC_SW, DC_SD,
	DC_ADDI, DC_SLTI, DC_SLTIU, DC_XORI, DC_ORI, DC_ANDI, DC_SLLI, DC_SRLI, DC_SRAI,
	DC_ADDIW, DC_SLLIW, DC_SRLIW, DC_SRAIW,
	DC_ADD, DC_SUB, DC_SLL, DC_SLT, DC_SLTU, DC_XOR, DC_SRL, DC_SRA, DC_OR, DC_AND,
	DC_ADDW, DC_SUBW, DC_SLLW, DC_SRLW, DC_SRAW, DC_MUL, DC_MULW,
	DC_MULH, DC_MULHSU, DC_MULHU, DC_DIV, DC_DIVU, DC_REM, DC_REMU,
	DC_DIVW, DC_DIVUW, DC_REMW, DC_REMUW, DC_FENCE,
	/* Zba, Zbb, Zbs (zb.c): rd = rv64_bitmanip(op, x[rs1], b) */
	DC_SH1ADD, DC_SH2ADD, DC_SH3ADD, DC_ADDUW, DC_SH1ADDUW, DC_SH2ADDUW, DC_SH3ADDUW,
	DC_ANDN, DC_ORN, DC_XNOR, DC_MIN, DC_MINU, DC_MAX, DC_MAXU,
	DC_ROL, DC_ROR, DC_ROLW, DC_RORW, DC_BCLR, DC_BEXT, DC_BINV, DC_BSET,
	/* from here on b is the immediate (0 for the one-operand ones), not x[rs2] */
	DC_CLZ, DC_CTZ, DC_CPOP, DC_CLZW, DC_CTZW, DC_CPOPW,
	DC_SEXTB, DC_SEXTH, DC_ZEXTH, DC_ORCB, DC_REV8,
	DC_SLLIUW, DC_RORI, DC_RORIW, DC_BCLRI, DC_BEXTI, DC_BINVI, DC_BSETI,
	DC__MAX
};

#define DC_ZB_FIRST DC_SH1ADD
#define DC_ZB_FIRST_IMM DC_CLZ

/*
 * Fills e for the instruction whose first fetched bits are w (a compressed
 * one in the low half): op, operands, immediate, length, and raw = w.
 */
void rv64_decode(struct dc_entry *e, uint32_t w);

/* MULHSU and the divisions (DC_DIV..DC_REMUW), as the M extension defines them. */
uint64_t rv64_muldiv(unsigned op, uint64_t a, uint64_t b);

/*
 * The Zba/Zbb/Zbs operation of a 32-bit OP, OP-32, OP-IMM or OP-IMM-32
 * instruction, with its shift amount in *ret_imm (0 when it has none), or
 * DC_SLOW when insn is none of them.
 */
enum dc_op rv64_decode_zb(uint32_t insn, int32_t *ret_imm);

/* The result of a Zb operation (DC_ZB_FIRST..): b is x[rs2] or the immediate. */
uint64_t rv64_bitmanip(unsigned op, uint64_t a, uint64_t b);

#endif
