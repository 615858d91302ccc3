/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for the RV64 translator (vmm-core/rv64/jit_x86.c): the
 * input becomes a program of the instructions it translates or hands to
 * helpers (integer, M, Zba/Zbb/Zbs, loads and stores, branches and jumps,
 * compressed forms, F and D) plus a few it leaves to the interpreter (CSR
 * reads, FENCE), which runs on a hart with the translator and on one created with
 * CLOISTER_JIT=0. Any difference in x and f registers, fcsr, pc, cycle,
 * instret, trap CSRs, data memory or device writes aborts.
 *
 * Every input is a valid program that ends: jumps go only forward, to the
 * start of an instruction outside any loop; loops run at most 16 times and
 * contain no jumps; the registers holding the data bases, the device base
 * and the loop counter are never written. A trap (the FPU off, a reserved
 * rounding mode, an access fault) ends the program in the trap handler,
 * which is an ECALL too.
 *
 * Input, read as a byte stream (zeros past its end):
 *   byte 0    bit 0: Sv39, code and data in frames out of order (else bare);
 *             bits 1-2: sstatus.FS; bits 3-5: fcsr.frm (5-7 are reserved)
 *   byte 1    where the code starts: 2 * byte bytes before a page boundary
 *   bytes 2-9 seed for the starting registers and data
 *   then      instructions: a kind byte and its operand bytes each
 *
 * Build and run (scripts/fuzz.sh does the same for the other targets):
 *   CC=clang meson setup build-fuzz -Dfuzz=true && ninja -C build-fuzz
 *   mkdir -p /tmp/jit && build-fuzz/tests/fuzz/fuzz_jit /tmp/jit tests/fuzz/corpus/jit
 * Both harts live across inputs, so the translator also meets code it has
 * cached at the same addresses with other bytes; that is on purpose.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "accel.h"
#define RV64_ENCODE_RVC		/* encode.h's compressed encoders too */
#include "encode.h"

#define RAM_BASE 0x80000000ull
#define RAM_SIZE (2u << 20)
#define MMIO_BASE 0x10000000ull
#define MMIO_SIZE 0x100u
#define PAGE 0x1000ull

#define HANDLER (RAM_BASE + 0x1000)	/* stvec: an ECALL */
#define CODE (RAM_BASE + 0x20000)	/* bare: three pages of code */
#define DATA (RAM_BASE + 0x40000)	/* bare: three pages of data; paged: frames 0-5 */
#define CODE_FRAMES (RAM_BASE + 0x60000)	/* paged: frames 0-5 */
#define PT_ROOT (RAM_BASE + 0x100000)
#define PT_L1 (RAM_BASE + 0x101000)
#define PT_L0 (RAM_BASE + 0x102000)
#define DATA_VA 0x40000000ull
#define CODE_VA 0x40010000ull
#define SATP_SV39 (8ull << 60 | PT_ROOT >> 12)
#define N_PAGES 3

/* Virtual page i lives in frame data_frame[i] / code_frame[i]: no two neighbours adjacent. */
static const unsigned data_frame[N_PAGES] = { 4, 0, 2 };
static const unsigned code_frame[N_PAGES] = { 2, 0, 4 };

#define R_BASE0 S0	/* data base, on a page boundary */
#define R_BASE1 S1	/* the next page boundary */
#define R_MMIO S2
#define R_LOOP S3

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

/* ---- the program ---- */

#define MAX_INSNS 400

enum fixup { FIX_NONE, FIX_B, FIX_JAL, FIX_CJ, FIX_CB, FIX_JALR, FIX_ADDI };

struct insn {
	uint32_t bits;
	uint8_t len, fix, skip;	/* skip: which later target, from the input */
	bool targetable;
	int anchor;		/* FIX_JALR / FIX_ADDI: the AUIPC */
};

struct prog {
	bool paged;
	uint64_t fs, fcsr, seed, start;
	unsigned n;
	struct insn insn[MAX_INSNS];
	uint64_t addr[MAX_INSNS + 1];
	/* Starting state, from the seed. */
	uint64_t x[32], f[32], mmio_reg;
	uint8_t data[N_PAGES * PAGE];
};

struct input {
	const uint8_t *p;
	size_t n, i;
};

static uint8_t u8(struct input *in)
{
	return in->i < in->n ? in->p[in->i++] : 0;
}

static int32_t s12(struct input *in)
{
	unsigned v = u8(in) | (unsigned)u8(in) << 8;

	return (int32_t)(v << 20) >> 20;
}

static struct insn *add(struct prog *p, uint32_t bits, unsigned len)
{
	struct insn *in = &p->insn[p->n++];

	*in = (struct insn){ .bits = bits, .len = (uint8_t)len, .targetable = true, .anchor = -1 };
	return in;
}

/* A destination register: any but the reserved four (x0 is fine). */
static unsigned dst(uint8_t b)
{
	unsigned r = b & 31;

	return r == R_BASE0 || r == R_BASE1 || r == R_MMIO || r == R_LOOP ? r ^ 16 : r;
}

static unsigned dst_nz(uint8_t b)
{
	unsigned r = dst(b);

	return r ? r : 5;
}

/* a0-a5 for compressed destinations: s0/s1 are the data bases. */
static unsigned cdst(uint8_t b)
{
	return A0 + b % 6;
}

static unsigned csrc(uint8_t b)
{
	return 8 + (b & 7);
}

/* Base and offset of a size-byte access: at times the device, else data, often across a page. */
static void address(struct input *in, unsigned size, unsigned *base, int32_t *off)
{
	uint8_t b = u8(in);

	if (b % 10 == 0) {
		*base = R_MMIO;
		*off = (int32_t)((u8(in) % (MMIO_SIZE / size)) * size);
		return;
	}
	*base = b & 1 ? R_BASE1 : R_BASE0;
	*off = b & 0x80 ? (int32_t)(u8(in) % 24) - 12 : s12(in);
}

static const struct { unsigned opcode, f3, f7; } rops[] = {
	{ 0x33, 0, 0 }, { 0x33, 0, 0x20 }, { 0x33, 1, 0 }, { 0x33, 2, 0 }, { 0x33, 3, 0 },
	{ 0x33, 4, 0 }, { 0x33, 5, 0 }, { 0x33, 5, 0x20 }, { 0x33, 6, 0 }, { 0x33, 7, 0 },
	{ 0x33, 0, 1 }, { 0x33, 1, 1 }, { 0x33, 2, 1 }, { 0x33, 3, 1 }, { 0x33, 4, 1 },
	{ 0x33, 5, 1 }, { 0x33, 6, 1 }, { 0x33, 7, 1 }, { 0x3b, 0, 0 }, { 0x3b, 0, 0x20 },
	{ 0x3b, 1, 0 }, { 0x3b, 5, 0 }, { 0x3b, 5, 0x20 }, { 0x3b, 0, 1 }, { 0x3b, 4, 1 },
	{ 0x3b, 5, 1 }, { 0x3b, 6, 1 }, { 0x3b, 7, 1 },
	/* Zba, Zbb, Zbs */
	{ 0x33, 2, 0x10 }, { 0x33, 4, 0x10 }, { 0x33, 6, 0x10 }, { 0x3b, 0, 0x04 },
	{ 0x3b, 2, 0x10 }, { 0x3b, 4, 0x10 }, { 0x3b, 6, 0x10 }, { 0x33, 7, 0x20 },
	{ 0x33, 6, 0x20 }, { 0x33, 4, 0x20 }, { 0x33, 4, 0x05 }, { 0x33, 5, 0x05 },
	{ 0x33, 6, 0x05 }, { 0x33, 7, 0x05 }, { 0x33, 1, 0x30 }, { 0x33, 5, 0x30 },
	{ 0x3b, 1, 0x30 }, { 0x3b, 5, 0x30 }, { 0x33, 1, 0x24 }, { 0x33, 5, 0x24 },
	{ 0x33, 1, 0x34 }, { 0x33, 1, 0x14 },
};

/* Zbb/Zbs one-operand and immediate forms: opcode, funct3, imm[11:0] (| shamt). */
static const struct { unsigned opcode, f3, imm12, shamt_mask; } zb_iops[] = {
	{ 0x13, 1, 0x600, 0 }, { 0x13, 1, 0x601, 0 }, { 0x13, 1, 0x602, 0 },
	{ 0x13, 1, 0x604, 0 }, { 0x13, 1, 0x605, 0 }, { 0x13, 5, 0x287, 0 },
	{ 0x13, 5, 0x6b8, 0 }, { 0x1b, 1, 0x600, 0 }, { 0x1b, 1, 0x601, 0 },
	{ 0x1b, 1, 0x602, 0 }, { 0x3b, 4, 0x080, 0 },	/* zext.h: funct7 4, rs2 0 */
	{ 0x1b, 1, 0x080, 63 }, { 0x13, 5, 0x600, 63 }, { 0x1b, 5, 0x600, 31 },
	{ 0x13, 1, 0x480, 63 }, { 0x13, 5, 0x480, 63 }, { 0x13, 1, 0x680, 63 },
	{ 0x13, 1, 0x280, 63 },
};

static void gen_alu(struct prog *p, struct input *in, unsigned kind)
{
	unsigned rd, rs1, k;
	int32_t imm;

	switch (kind) {
	case 0: {	/* OP, OP-32, M */
		unsigned o = u8(in) % N_ELEMS(rops);

		rd = dst(u8(in));
		rs1 = u8(in) & 31;
		add(p, enc_r(rops[o].opcode, rd, rops[o].f3, rs1, u8(in) & 31, rops[o].f7), 4);
		return;
	}
	case 1:		/* OP-IMM, OP-IMM-32, and Zb's forms of them */
		k = u8(in) % 14;
		rd = dst(u8(in));
		rs1 = u8(in) & 31;
		imm = s12(in);
		if (k < 6) {
			static const unsigned f3[] = { 0, 2, 3, 4, 6, 7 };

			add(p, enc_i(0x13, rd, f3[k], rs1, imm), 4);
		} else if (k < 9) {
			static const unsigned f3[] = { 1, 5, 5 }, hi[] = { 0, 0, 0x400 };

			add(p, enc_i(0x13, rd, f3[k - 6], rs1, (imm & 63) | (int32_t)hi[k - 6]), 4);
		} else if (k == 9) {
			add(p, enc_i(0x1b, rd, 0, rs1, imm), 4);
		} else if (k == 13) {
			unsigned z = (unsigned)imm % N_ELEMS(zb_iops);
			unsigned sh = ((unsigned)imm >> 5) & zb_iops[z].shamt_mask;

			add(p, enc_i(zb_iops[z].opcode, rd, zb_iops[z].f3, rs1,
				     (int32_t)(zb_iops[z].imm12 | sh)), 4);
		} else {
			static const unsigned f3[] = { 1, 5, 5 }, hi[] = { 0, 0, 0x400 };

			imm = (imm & 31) | (int32_t)hi[k - 10];
			add(p, enc_i(0x1b, rd, f3[k - 10], rs1, imm), 4);
		}
		return;
	case 2: {	/* LUI, AUIPC */
		uint8_t b = u8(in);
		uint32_t hi = (uint32_t)u8(in) << 12;

		hi |= (uint32_t)u8(in) << 20;
		hi |= (uint32_t)u8(in) << 28;

		add(p, hi | dst(b) << 7 | (b & 0x80 ? 0x17 : 0x37), 4);
		return;
	}
	case 3:		/* li */
		rd = dst(u8(in));
		add(p, enc_i(0x13, rd, 0, 0, s12(in)), 4);
		return;
	default: {	/* compressed ALU */
		uint8_t b = u8(in), c = u8(in);
		int v = (int)(c & 63) - 32;

		switch (b % 12) {
		case 0: add(p, C_ADDI(dst_nz(u8(in)), v ? v : 1), 2); break;
		case 1: add(p, C_LI(dst_nz(u8(in)), v), 2); break;
		case 2: add(p, C_ADDIW(dst_nz(u8(in)), v), 2); break;
		case 3:
			rd = dst_nz(u8(in));
			add(p, C_LUI(rd == SP ? 3 : rd, v ? v : 1), 2);	/* not c.addi16sp */
			break;
		case 4: add(p, C_SLLI(dst_nz(u8(in)), 1 + c % 63), 2); break;
		case 5: add(p, c_cb_alu(0, cdst(u8(in)), 1 + c % 63), 2); break;	/* c.srli */
		case 6: add(p, c_cb_alu(1, cdst(u8(in)), 1 + c % 63), 2); break;	/* c.srai */
		case 7: add(p, c_cb_alu(2, cdst(u8(in)), v), 2); break;		/* c.andi */
		case 8: add(p, c_ca(0, c & 3, cdst(u8(in)), csrc(c >> 2)), 2); break;
		case 9: add(p, c_ca(1, c & 1, cdst(u8(in)), csrc(c >> 2)), 2); break;
		case 10: add(p, C_MV(dst_nz(u8(in)), 1 + c % 31), 2); break;
		default: add(p, C_ADD(dst_nz(u8(in)), 1 + c % 31), 2); break;
		}
		return;
	}
	}
}

static void gen_mem(struct prog *p, struct input *in, bool store)
{
	uint8_t b = u8(in);
	unsigned base, f3;
	int32_t off;

	if (b & 0x80) {
		/* compressed: c.lw c.ld c.sw c.sd off s0 / s1 */
		unsigned r = store ? csrc(u8(in)) : cdst(u8(in)), dw = b & 1, uimm = u8(in) & 31u;

		base = b & 2 ? R_BASE1 : R_BASE0;
		f3 = (store ? 6 : 2) + dw;
		add(p, dw ? c_mem_d(f3, base, r, uimm * 8) : c_mem_w(f3, base, r, uimm * 4), 2);
		return;
	}
	if (store) {
		f3 = b & 3;
		address(in, 1u << f3, &base, &off);
		add(p, enc_s(f3, base, u8(in) & 31, off), 4);
	} else {
		static const unsigned sizes[] = { 1, 2, 4, 8, 1, 2, 4 };

		f3 = b % 7;
		address(in, sizes[f3], &base, &off);
		add(p, enc_i(0x03, dst(u8(in)), f3, base, off), 4);
	}
}

/* F and D, compressed or not; with the FPU off or a reserved frm, some trap. */
static void gen_fp(struct prog *p, struct input *in)
{
	uint8_t k = u8(in), b = u8(in);
	unsigned fmt = b & 1, rm = (b >> 1) & 7, rd = u8(in) & 31, rs1 = u8(in) & 31;
	unsigned rs2 = u8(in) & 31, base;
	int32_t off;

	switch (k % 12) {
	case 0:		/* flw / fld */
		address(in, 4u << fmt, &base, &off);
		add(p, enc_i(0x07, rd, 2 + fmt, base, off), 4);
		break;
	case 1:		/* fsw / fsd */
		address(in, 4u << fmt, &base, &off);
		add(p, (enc_s(2 + fmt, base, rs2, off) & ~0x7fu) | 0x27, 4);
		break;
	case 2:		/* c.fld / c.fsd */
		base = b & 0x20 ? R_BASE1 : R_BASE0;
		add(p, c_mem_d(b & 0x10 ? 5 : 1, base, csrc(rd), (rs2 & 31) * 8), 2);
		break;
	case 3: case 4: {	/* fadd fsub fmul fdiv fsqrt */
		unsigned f5 = (k >> 4) % 5;

		if (f5 == 4)
			add(p, enc_r(0x53, rd, rm, rs1, 0, 0x2c | fmt), 4);
		else
			add(p, enc_r(0x53, rd, rm, rs1, rs2, f5 << 2 | fmt), 4);
		break;
	}
	case 5:		/* fsgnj[nx], fmin, fmax */
		if (k & 0x10)
			add(p, enc_r(0x53, rd, (k >> 5) & 1, rs1, rs2, 0x14 | fmt), 4);
		else
			add(p, enc_r(0x53, rd, (k >> 5) % 3, rs1, rs2, 0x10 | fmt), 4);
		break;
	case 6:		/* feq flt fle, fclass, fmv.x, fcvt to integer: into x[rd] */
		switch ((k >> 4) & 3) {
		case 0: add(p, enc_r(0x53, dst(rd), rm % 3, rs1, rs2, 0x50 | fmt), 4); break;
		case 1: add(p, enc_r(0x53, dst(rd), 1, rs1, 0, 0x70 | fmt), 4); break;
		case 2: add(p, enc_r(0x53, dst(rd), 0, rs1, 0, 0x70 | fmt), 4); break;
		default: add(p, enc_r(0x53, dst(rd), rm, rs1, rs2 & 3, 0x60 | fmt), 4); break;
		}
		break;
	case 7:		/* fmv from x, fcvt from integer, fcvt between formats */
		switch ((k >> 4) % 3) {
		case 0: add(p, enc_r(0x53, rd, 0, rs1, 0, 0x78 | fmt), 4); break;
		case 1: add(p, enc_r(0x53, rd, rm, rs1, rs2 & 3, 0x68 | fmt), 4); break;
		default: add(p, enc_r(0x53, rd, rm, rs1, !fmt, 0x20 | fmt), 4); break;
		}
		break;
	default: {	/* fmadd fmsub fnmsub fnmadd */
		static const unsigned ops[] = { 0x43, 0x47, 0x4b, 0x4f };

		unsigned rs3 = (unsigned)k >> 3;

		add(p, rs3 << 27 | fmt << 25 | rs2 << 20 | rs1 << 15 | rm << 12 | rd << 7 |
		       ops[k % 12 - 8], 4);
		break;
	}
	}
}

static void gen_misc(struct prog *p, struct input *in)
{
	uint8_t b = u8(in);

	switch (b & 3) {
	case 0: add(p, CSRR(dst(b >> 2), 0xc02), 4); break;	/* instret */
	case 1: add(p, CSRR(dst(b >> 2), 0xc00), 4); break;	/* cycle */
	case 2: add(p, FENCE_RW, 4); break;
	default: add(p, C_NOP, 2); break;
	}
}

/* One instruction that neither jumps nor writes a reserved register. */
static void gen_straight(struct prog *p, struct input *in)
{
	uint8_t k = u8(in) % 16;

	if (k < 6)
		gen_alu(p, in, k < 3 ? 0 : k < 5 ? 1 : k - 3);
	else if (k < 8)
		gen_alu(p, in, k == 6 ? 3 : 4);
	else if (k < 10)
		gen_mem(p, in, k == 9);
	else if (k < 14)
		gen_fp(p, in);
	else
		gen_misc(p, in);
}

static void gen_control(struct prog *p, struct input *in, uint8_t k)
{
	struct insn *j;
	unsigned t, rd;

	switch (k % 6) {
	case 0: case 1: {	/* conditional branches */
		static const unsigned f3[] = { 0, 1, 4, 5, 6, 7 };
		uint8_t b = u8(in);

		j = add(p, enc_b(f3[b % 6], u8(in) & 31, u8(in) & 31, 0), 4);
		j->fix = FIX_B;
		break;
	}
	case 2:
		j = add(p, enc_j(dst(u8(in)), 0), 4);
		j->fix = FIX_JAL;
		break;
	case 3: {	/* c.j, c.beqz, c.bnez */
		uint8_t b = u8(in);

		if (b % 3 == 0) {
			j = add(p, 0, 2);
			j->fix = FIX_CJ;
		} else {
			j = add(p, c_bz(b % 3 == 2, csrc(b >> 2), 0), 2);
			j->fix = FIX_CB;
		}
		break;
	}
	case 4:		/* auipc t, 0; jalr rd, off(t) */
		t = dst_nz(u8(in));
		rd = u8(in);
		rd = rd & 0x80 ? t : dst(rd);
		add(p, AUIPC(t, 0), 4);
		j = add(p, enc_i(0x67, rd, 0, t, 0), 4);
		j->targetable = false;
		j->fix = FIX_JALR;
		j->anchor = (int)p->n - 2;
		break;
	default: {	/* auipc t, 0; addi t, t, off; c.jr t / c.jalr t */
		uint8_t b = u8(in);

		t = b & 0x40 ? RA : dst_nz(b);
		add(p, AUIPC(t, 0), 4);
		j = add(p, enc_i(0x13, t, 0, t, 0), 4);
		j->targetable = false;
		j->fix = FIX_ADDI;
		j->anchor = (int)p->n - 2;
		j->skip = u8(in);
		j = add(p, c_cr(b & 0x80 ? 9 : 8, t, 0), 2);
		j->targetable = false;
		return;
	}
	}
	j->skip = u8(in);
}

/* li s3, count; up to 8 straight instructions; addi s3, s3, -1; bne s3, x0, back */
static void gen_loop(struct prog *p, struct input *in)
{
	unsigned count = 1 + u8(in) % 16, body = 1 + u8(in) % 8, first;
	int32_t back = 0;

	add(p, enc_i(0x13, R_LOOP, 0, 0, (int32_t)count), 4);
	first = p->n;
	for (unsigned i = 0; i < body; i++)
		gen_straight(p, in);
	add(p, enc_i(0x13, R_LOOP, 0, R_LOOP, -1), 4);
	for (unsigned i = first; i < p->n; i++) {
		p->insn[i].targetable = false;
		back -= p->insn[i].len;
	}
	add(p, enc_b(1, R_LOOP, 0, back), 4)->targetable = false;
}

/* The skip-th (mod 8) instruction one may jump to after i, within max_dist of from. */
static unsigned target(const struct prog *p, unsigned i, uint64_t from, uint64_t max_dist,
		       unsigned skip)
{
	unsigned cand[8], n = 0;

	for (unsigned j = i + 1; j < p->n && n < N_ELEMS(cand); j++) {
		if (p->addr[j] - from > max_dist)
			break;
		if (p->insn[j].targetable)
			cand[n++] = j;
	}
	if (n == 0)
		abort();	/* the generator's bug: the next instruction is always one */
	return cand[skip % n];
}

static void fix_jumps(struct prog *p)
{
	for (unsigned i = 0; i < p->n; i++) {
		struct insn *in = &p->insn[i];
		uint32_t w = in->bits;
		int32_t off;

		switch (in->fix) {
		case FIX_B:
			off = (int32_t)(p->addr[target(p, i, p->addr[i], 4094, in->skip)] -
					p->addr[i]);
			in->bits = enc_b((w >> 12) & 7, (w >> 15) & 31, (w >> 20) & 31, off);
			break;
		case FIX_JAL:
			off = (int32_t)(p->addr[target(p, i, p->addr[i], 4094, in->skip)] -
					p->addr[i]);
			in->bits = enc_j((w >> 7) & 31, off);
			break;
		case FIX_CJ:
			off = (int32_t)(p->addr[target(p, i, p->addr[i], 2046, in->skip)] -
					p->addr[i]);
			in->bits = c_j(off);
			break;
		case FIX_CB:
			off = (int32_t)(p->addr[target(p, i, p->addr[i], 254, in->skip)] -
					p->addr[i]);
			in->bits = c_bz(((w >> 13) & 7) == 7, 8 + ((w >> 7) & 7), off);
			break;
		case FIX_JALR:
		case FIX_ADDI: {
			uint64_t from = p->addr[in->anchor];
			unsigned after = i + (in->fix == FIX_ADDI);

			/* JALR clears bit 0: an odd offset lands at the same place. */
			off = (int32_t)(p->addr[target(p, after, from, 2046, in->skip)] - from) +
			      (in->fix == FIX_JALR && (in->skip & 0x80));
			in->bits = (w & 0xfffff) | ((uint32_t)off & 0xfff) << 20;
			break;
		}
		default:
			break;
		}
	}
}

static uint64_t splitmix(uint64_t *s)
{
	uint64_t v = (*s += 0x9e3779b97f4a7c15ull);

	v = (v ^ (v >> 30)) * 0xbf58476d1ce4e5b9ull;
	v = (v ^ (v >> 27)) * 0x94d049bb133111ebull;
	return v ^ (v >> 31);
}

/* A starting value: at an edge now and then (signs, 32-bit limits, boxed singles). */
static uint64_t start_value(uint64_t *s, bool fp)
{
	static const uint64_t edges[] = {
		0, 1, UINT64_MAX, 0x8000000000000000ull, 0x7fffffffffffffffull, 0x80000000ull,
		0xffffffff80000000ull, 0x7fffffffull, 0xffffffffull, 0x3ff0000000000000ull,
		0x7ff8000000000000ull, 0xffffffff3f800000ull, 0xffffffff7fc00000ull,
	};
	uint64_t v = splitmix(s);

	switch (v & 3) {
	case 0: return edges[(v >> 8) % N_ELEMS(edges)];
	case 1:
		if (fp)
			return 0xffffffff00000000ull | (v >> 32);	/* a boxed single */
		return (uint64_t)(int64_t)(int32_t)(v >> 32);
	default: return splitmix(s);
	}
}

static void parse(struct prog *p, const uint8_t *data, size_t size)
{
	struct input in = { .p = data, .n = size };
	uint8_t flags = u8(&in), at = u8(&in);

	memset(p, 0, sizeof(*p));
	p->paged = flags & 1;
	p->fs = (flags >> 1) & 3;
	p->fcsr = (uint64_t)((flags >> 3) & 7) << 5;
	for (int i = 0; i < 8; i++)
		p->seed = p->seed << 8 | u8(&in);
	p->start = (p->paged ? CODE_VA : CODE) + PAGE - 2 * (uint64_t)at;
	while (in.i < in.n && p->n < MAX_INSNS - 16) {
		uint8_t k = u8(&in);

		if (k < 160)
			gen_straight(p, &in);
		else if (k < 240)
			gen_control(p, &in, k);
		else
			gen_loop(p, &in);
	}
	add(p, ECALL, 4);
	p->addr[0] = p->start;
	for (unsigned i = 0; i < p->n; i++)
		p->addr[i + 1] = p->addr[i] + p->insn[i].len;
	fix_jumps(p);

	for (unsigned r = 1; r < 32; r++)
		p->x[r] = start_value(&p->seed, false);
	for (unsigned r = 0; r < 32; r++)
		p->f[r] = start_value(&p->seed, true);
	p->x[R_BASE0] = (p->paged ? DATA_VA : DATA) + PAGE;
	p->x[R_BASE1] = (p->paged ? DATA_VA : DATA) + 2 * PAGE;
	p->x[R_MMIO] = MMIO_BASE;
	p->x[R_LOOP] = 0;
	p->fcsr |= p->seed & 31;
	p->mmio_reg = start_value(&p->seed, false);
	for (unsigned off = 0; off < sizeof(p->data); off += 8) {
		uint64_t v = start_value(&p->seed, false);

		memcpy(p->data + off, &v, 8);
	}
}

/* ---- the two machines ---- */

struct machine {
	const char *name;
	uint8_t *ram;
	struct machine_map map;
	const struct accel_ops *ops;
	struct accel_vcpu *cpu;
	uint64_t mmio_reg;
	unsigned mmio_writes;
};

struct outcome {
	struct vcpu_exit exit;
	struct vcpu_state s;
	uint64_t mmio_reg;
	unsigned mmio_writes;
	uint8_t data[N_PAGES * PAGE];
};

static int mmio_read(void *opaque, uint64_t gpa, unsigned size, uint64_t *ret_val)
{
	struct machine *m = opaque;

	if (gpa < MMIO_BASE || gpa + size > MMIO_BASE + MMIO_SIZE)
		return -14;	/* -EFAULT */
	*ret_val = m->mmio_reg + (gpa - MMIO_BASE);
	return 0;
}

static int mmio_write(void *opaque, uint64_t gpa, unsigned size, uint64_t val)
{
	struct machine *m = opaque;

	if (gpa < MMIO_BASE || gpa + size > MMIO_BASE + MMIO_SIZE)
		return -14;
	m->mmio_reg = val;
	m->mmio_writes++;
	return 0;
}

static const struct mmio_ops mmio_ops = { .read = mmio_read, .write = mmio_write };

static uint64_t read_time(void *opaque)
{
	(void)opaque;
	return 0;
}

static uint8_t *host(struct machine *m, uint64_t gpa)
{
	return m->ram + (gpa - RAM_BASE);
}

static void poke64(struct machine *m, uint64_t gpa, uint64_t v)
{
	memcpy(host(m, gpa), &v, 8);
}

static uint64_t pte(uint64_t pa, unsigned flags)
{
	return (pa >> 12) << 10 | flags;
}

static void machine_init(struct machine *m, const char *name, bool jit)
{
	const uint32_t ecall = ECALL;

	m->name = name;
	m->ram = aligned_alloc(PAGE, RAM_SIZE);
	if (!m->ram)
		abort();
	memset(m->ram, 0, RAM_SIZE);
	m->map = (struct machine_map){
		.ram = { { .gpa = RAM_BASE, .size = RAM_SIZE, .host = m->ram } },
		.n_ram = 1,
		.mmio = &mmio_ops,
		.mmio_opaque = m,
		.read_time = read_time,
	};
	memcpy(host(m, HANDLER), &ecall, 4);
	/* Sv39: the device and RAM by gigapages, DATA_VA and CODE_VA page by page. */
	poke64(m, PT_ROOT, pte(0, 0xcf));
	poke64(m, PT_ROOT + 8, pte(PT_L1, 1));
	poke64(m, PT_ROOT + 16, pte(RAM_BASE, 0xcf));
	poke64(m, PT_L1, pte(PT_L0, 1));
	for (unsigned i = 0; i < N_PAGES; i++) {
		poke64(m, PT_L0 + 8 * i, pte(DATA + data_frame[i] * PAGE, 0xcf));
		poke64(m, PT_L0 + 8 * (16 + i), pte(CODE_FRAMES + code_frame[i] * PAGE, 0xcf));
	}
	/* The engine reads CLOISTER_JIT when the hart is made: each input runs once, so eagerly. */
	setenv("CLOISTER_JIT", jit ? "eager" : "0", 1);
	m->ops = accel_rv64_ops();
	if (m->ops->vcpu_create(&m->map, 0, &m->cpu) < 0)
		abort();
}

/* Host address of a program byte at virtual address va. */
static uint8_t *code_host(struct machine *m, const struct prog *p, uint64_t va)
{
	if (!p->paged)
		return host(m, va);
	return host(m, CODE_FRAMES + code_frame[(va - CODE_VA) / PAGE] * PAGE + (va & (PAGE - 1)));
}

static uint8_t *data_host(struct machine *m, const struct prog *p, unsigned page)
{
	return host(m, p->paged ? DATA + data_frame[page] * PAGE : DATA + page * PAGE);
}

static void run(struct machine *m, const struct prog *p, struct outcome *o)
{
	struct vcpu_state st;

	/* Code: zeros around it (an illegal instruction), the program's bytes. */
	memset(host(m, CODE), 0, N_PAGES * PAGE);
	memset(host(m, CODE_FRAMES), 0, 2 * N_PAGES * PAGE);
	for (unsigned i = 0; i < p->n; i++)
		for (unsigned b = 0; b < p->insn[i].len; b++)
			*code_host(m, p, p->addr[i] + b) = (uint8_t)(p->insn[i].bits >> (8 * b));
	for (unsigned pg = 0; pg < N_PAGES; pg++)
		memcpy(data_host(m, p, pg), p->data + pg * PAGE, PAGE);
	m->mmio_reg = p->mmio_reg;
	m->mmio_writes = 0;

	m->ops->vcpu_get_state(m->cpu, &st);
	memcpy(st.x, p->x, sizeof(st.x));
	memcpy(st.f, p->f, sizeof(st.f));
	st.pc = p->start;
	st.priv = PRIV_S;
	st.sstatus = p->fs << 13;
	st.fcsr = p->fcsr;
	st.satp = p->paged ? SATP_SV39 : 0;
	st.stvec = HANDLER;
	st.sepc = st.scause = st.stval = 0;
	st.cycle = st.instret = 0;
	if (m->ops->vcpu_set_state(m->cpu, &st) < 0)
		abort();

	memset(&o->exit, 0, sizeof(o->exit));
	if (m->ops->vcpu_run(m->cpu, &o->exit) < 0)
		abort();
	m->ops->vcpu_get_state(m->cpu, &o->s);
	o->mmio_reg = m->mmio_reg;
	o->mmio_writes = m->mmio_writes;
	for (unsigned pg = 0; pg < N_PAGES; pg++)
		memcpy(o->data + pg * PAGE, data_host(m, p, pg), PAGE);
}

static bool differ;

static void report(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	differ = true;
}

static void compare(const char *what, const struct outcome *a, const struct outcome *b)
{
#define CMP(name, va, vb) do { \
	if ((va) != (vb)) \
		report("%s: %s: translator %#llx, interpreter %#llx\n", what, name, \
		       (unsigned long long)(va), (unsigned long long)(vb)); \
} while (0)
	char name[8];

	CMP("exit reason", a->exit.reason, b->exit.reason);
	for (unsigned r = 0; r < 32; r++) {
		snprintf(name, sizeof(name), "x%u", r);
		CMP(name, a->s.x[r], b->s.x[r]);
		snprintf(name, sizeof(name), "f%u", r);
		CMP(name, a->s.f[r], b->s.f[r]);
	}
	CMP("pc", a->s.pc, b->s.pc);
	CMP("fcsr", a->s.fcsr, b->s.fcsr);
	CMP("sstatus", a->s.sstatus, b->s.sstatus);
	CMP("cycle", a->s.cycle, b->s.cycle);
	CMP("instret", a->s.instret, b->s.instret);
	CMP("scause", a->s.scause, b->s.scause);
	CMP("sepc", a->s.sepc, b->s.sepc);
	CMP("stval", a->s.stval, b->s.stval);
	CMP("mmio register", a->mmio_reg, b->mmio_reg);
	CMP("mmio writes", a->mmio_writes, b->mmio_writes);
	if (!memcmp(a->data, b->data, sizeof(a->data)))
		return;
	for (unsigned i = 0; i < sizeof(a->data); i++) {
		if (a->data[i] != b->data[i]) {
			report("%s: data byte %#x: translator %#x, interpreter %#x\n", what, i,
			       a->data[i], b->data[i]);
			break;
		}
	}
#undef CMP
}

static struct machine jit_m, int_m;
static struct prog prog;
static struct outcome out_jit, out_int;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!jit_m.cpu) {
		machine_init(&jit_m, "translator", true);
		machine_init(&int_m, "interpreter", false);
	}
	parse(&prog, data, size);
	differ = false;
	run(&int_m, &prog, &out_int);
	if (out_int.exit.reason != VCPU_EXIT_SBI)
		report("interpreter: exit %d, not at an ECALL\n", out_int.exit.reason);
	/* Twice: translating, then with the blocks cached (the TLBs flushed by set_state). */
	run(&jit_m, &prog, &out_jit);
	compare("cold", &out_jit, &out_int);
	run(&jit_m, &prog, &out_jit);
	compare("cached", &out_jit, &out_int);
	if (differ) {
		fprintf(stderr, "%s program, FS %llu, fcsr %#llx, %u instructions:\n",
			prog.paged ? "Sv39" : "bare", (unsigned long long)prog.fs,
			(unsigned long long)prog.fcsr, prog.n);
		for (unsigned i = 0; i < prog.n; i++)
			fprintf(stderr, "  %#llx: %0*x\n", (unsigned long long)prog.addr[i],
				prog.insn[i].len * 2, prog.insn[i].bits);
		abort();
	}
	return 0;
}
