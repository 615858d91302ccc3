/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The bit-manipulation extensions QEMU's rv64 CPU offers too: Zba (address
 * generation), Zbb (basic bit manipulation) and Zbs (single bits), RV64
 * forms. One decoder and one evaluator, used by the generic path (exec.c),
 * the decode-cache loop (run.c) and the translator's helper calls, so every
 * engine agrees on what each instruction does.
 */
#include "decode.h"

#define RS2(i) (((i) >> 20) & 31)
#define FUNCT3(i) (((i) >> 12) & 7)
#define FUNCT7(i) ((i) >> 25)

/* OP (0x33): funct7 and funct3 pick the operation. */
static enum dc_op decode_op(uint32_t i)
{
	unsigned f3 = FUNCT3(i);

	switch (FUNCT7(i)) {
	case 0x05: {
		static const enum dc_op ops[8] = { DC_SLOW, DC_SLOW, DC_SLOW, DC_SLOW, DC_MIN,
						   DC_MINU, DC_MAX, DC_MAXU };
		return ops[f3];
	}
	case 0x10:
		return f3 == 2 ? DC_SH1ADD : f3 == 4 ? DC_SH2ADD : f3 == 6 ? DC_SH3ADD : DC_SLOW;
	case 0x20:
		return f3 == 4 ? DC_XNOR : f3 == 6 ? DC_ORN : f3 == 7 ? DC_ANDN : DC_SLOW;
	case 0x30:
		return f3 == 1 ? DC_ROL : f3 == 5 ? DC_ROR : DC_SLOW;
	case 0x24:
		return f3 == 1 ? DC_BCLR : f3 == 5 ? DC_BEXT : DC_SLOW;
	case 0x34:
		return f3 == 1 ? DC_BINV : DC_SLOW;
	case 0x14:
		return f3 == 1 ? DC_BSET : DC_SLOW;
	default:
		return DC_SLOW;
	}
}

/* OP-32 (0x3b). */
static enum dc_op decode_op_32(uint32_t i)
{
	unsigned f3 = FUNCT3(i);

	switch (FUNCT7(i)) {
	case 0x04:
		if (f3 == 0)
			return DC_ADDUW;
		return f3 == 4 && RS2(i) == 0 ? DC_ZEXTH : DC_SLOW;
	case 0x10:
		return f3 == 2 ? DC_SH1ADDUW : f3 == 4 ? DC_SH2ADDUW : f3 == 6 ? DC_SH3ADDUW
									       : DC_SLOW;
	case 0x30:
		return f3 == 1 ? DC_ROLW : f3 == 5 ? DC_RORW : DC_SLOW;
	default:
		return DC_SLOW;
	}
}

/* OP-IMM (0x13), funct3 1 and 5: imm[11:0] or imm[11:6] with a 6-bit shift amount. */
static enum dc_op decode_op_imm(uint32_t i, int32_t *ret_imm)
{
	unsigned imm12 = i >> 20, hi6 = i >> 26, f3 = FUNCT3(i);

	*ret_imm = (int32_t)(imm12 & 63);
	if (f3 == 1) {
		switch (imm12) {
		case 0x600: *ret_imm = 0; return DC_CLZ;
		case 0x601: *ret_imm = 0; return DC_CTZ;
		case 0x602: *ret_imm = 0; return DC_CPOP;
		case 0x604: *ret_imm = 0; return DC_SEXTB;
		case 0x605: *ret_imm = 0; return DC_SEXTH;
		default: break;
		}
		return hi6 == 0x12 ? DC_BCLRI : hi6 == 0x1a ? DC_BINVI : hi6 == 0x0a ? DC_BSETI
										  : DC_SLOW;
	}
	if (f3 == 5) {
		if (imm12 == 0x287 || imm12 == 0x6b8) {
			*ret_imm = 0;
			return imm12 == 0x287 ? DC_ORCB : DC_REV8;
		}
		return hi6 == 0x18 ? DC_RORI : hi6 == 0x12 ? DC_BEXTI : DC_SLOW;
	}
	return DC_SLOW;
}

/* OP-IMM-32 (0x1b). */
static enum dc_op decode_op_imm_32(uint32_t i, int32_t *ret_imm)
{
	unsigned imm12 = i >> 20, f3 = FUNCT3(i);

	*ret_imm = 0;
	if (f3 == 1) {
		switch (imm12) {
		case 0x600: return DC_CLZW;
		case 0x601: return DC_CTZW;
		case 0x602: return DC_CPOPW;
		default: break;
		}
		*ret_imm = (int32_t)(imm12 & 63);
		return i >> 26 == 0x02 ? DC_SLLIUW : DC_SLOW;
	}
	if (f3 == 5 && FUNCT7(i) == 0x30) {
		*ret_imm = (int32_t)(imm12 & 31);
		return DC_RORIW;
	}
	return DC_SLOW;
}

enum dc_op rv64_decode_zb(uint32_t insn, int32_t *ret_imm)
{
	*ret_imm = 0;
	switch (insn & 0x7f) {
	case 0x33: return decode_op(insn);
	case 0x3b: return decode_op_32(insn);
	case 0x13: return decode_op_imm(insn, ret_imm);
	case 0x1b: return decode_op_imm_32(insn, ret_imm);
	default: return DC_SLOW;
	}
}

static uint64_t sext32(uint64_t v)
{
	return (uint64_t)(int64_t)(int32_t)v;
}

static uint64_t rol64(uint64_t a, unsigned n)
{
	n &= 63;
	return n ? a << n | a >> (64 - n) : a;
}

static uint32_t rol32(uint32_t a, unsigned n)
{
	n &= 31;
	return n ? a << n | a >> (32 - n) : a;
}

/* Each byte: all ones if it is not zero. */
static uint64_t orc_b(uint64_t a)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < 64; i += 8)
		if ((a >> i) & 0xff)
			v |= 0xffull << i;
	return v;
}

static uint64_t zb_logic(unsigned op, uint64_t a, uint64_t b)
{
	switch (op) {
	case DC_ANDN: return a & ~b;
	case DC_ORN: return a | ~b;
	case DC_XNOR: return ~(a ^ b);
	case DC_MIN: return (int64_t)a < (int64_t)b ? a : b;
	case DC_MINU: return a < b ? a : b;
	case DC_MAX: return (int64_t)a > (int64_t)b ? a : b;
	default: return a > b ? a : b;		/* MAXU */
	}
}

static uint64_t zb_count(unsigned op, uint64_t a)
{
	uint32_t w = (uint32_t)a;

	switch (op) {
	case DC_CLZ: return a ? (uint64_t)__builtin_clzll(a) : 64;
	case DC_CTZ: return a ? (uint64_t)__builtin_ctzll(a) : 64;
	case DC_CPOP: return (uint64_t)__builtin_popcountll(a);
	case DC_CLZW: return w ? (uint64_t)__builtin_clz(w) : 32;
	case DC_CTZW: return w ? (uint64_t)__builtin_ctz(w) : 32;
	default: return (uint64_t)__builtin_popcount(w);	/* CPOPW */
	}
}

uint64_t rv64_bitmanip(unsigned op, uint64_t a, uint64_t b)
{
	uint64_t bit = 1ull << (b & 63);

	switch (op) {
	case DC_SH1ADD: return (a << 1) + b;
	case DC_SH2ADD: return (a << 2) + b;
	case DC_SH3ADD: return (a << 3) + b;
	case DC_ADDUW: return (uint64_t)(uint32_t)a + b;
	case DC_SH1ADDUW: return ((uint64_t)(uint32_t)a << 1) + b;
	case DC_SH2ADDUW: return ((uint64_t)(uint32_t)a << 2) + b;
	case DC_SH3ADDUW: return ((uint64_t)(uint32_t)a << 3) + b;
	case DC_SLLIUW: return (uint64_t)(uint32_t)a << (b & 63);
	case DC_ANDN: case DC_ORN: case DC_XNOR:
	case DC_MIN: case DC_MINU: case DC_MAX: case DC_MAXU:
		return zb_logic(op, a, b);
	case DC_CLZ: case DC_CTZ: case DC_CPOP: case DC_CLZW: case DC_CTZW: case DC_CPOPW:
		return zb_count(op, a);
	case DC_ROL: return rol64(a, (unsigned)b);
	case DC_ROR: case DC_RORI: return rol64(a, (unsigned)(64 - (b & 63)));
	case DC_ROLW: return sext32(rol32((uint32_t)a, (unsigned)b));
	case DC_RORW: case DC_RORIW: return sext32(rol32((uint32_t)a, (unsigned)(32 - (b & 31))));
	case DC_SEXTB: return (uint64_t)(int64_t)(int8_t)a;
	case DC_SEXTH: return (uint64_t)(int64_t)(int16_t)a;
	case DC_ZEXTH: return (uint16_t)a;
	case DC_ORCB: return orc_b(a);
	case DC_REV8: return __builtin_bswap64(a);
	case DC_BCLR: case DC_BCLRI: return a & ~bit;
	case DC_BEXT: case DC_BEXTI: return (a >> (b & 63)) & 1;
	case DC_BINV: case DC_BINVI: return a ^ bit;
	default: return a | bit;		/* BSET, BSETI */
	}
}
