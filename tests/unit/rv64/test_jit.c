/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The x86-64 translator (jit_x86.c) against the interpreter. Random programs
 * (integer, M, F and D, compressed forms, loads and stores of every width,
 * forward jumps of every kind, short loops; bare, or under Sv39 with code
 * and data in scattered frames) run on a hart with the translator and on
 * one created with CLOISTER_JIT=0 and must end in the same state: x and f
 * registers, fcsr, pc, cycle, instret, trap CSRs, data and device writes.
 * Then the translator's edge cases, each against known values on both
 * engines: a TLB miss, MMIO or an FP trap in mid-block, code across pages,
 * JALR rd == rs1, code rewritten under a cached block, kicks, long loops.
 */
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#define RV64_ENCODE_RVC		/* encode.h's compressed encoders too */
#include "harness.h"
#include "hart.h"

#define CODE (RAM_BASE + 0x20000)	/* programs straddle CODE + 0x1000 */
#define CODE_SIZE 0x3000		/* programs fit in 0x400 + 512 * 4 bytes */
#define DATA (RAM_BASE + 0x40000)
#define DATA_SIZE 0x3000		/* bases at DATA + 0x1000 and + 0x2000 */
#define PAGE 0x1000ull

/*
 * Paged programs see their data at DATA_VA, its three pages in frames out
 * of order (DATA + 4, 0 and 2 pages), so an access crossing a page is only
 * right if it is split by pages; RAM and the device are mapped by gigapages.
 */
#define DATA_VA 0x40000000ull
#define PT_ROOT (RAM_BASE + 0x100000)
#define PT_L1 (RAM_BASE + 0x101000)
#define PT_L0 (RAM_BASE + 0x102000)
#define SATP_SV39 (8ull << 60 | PT_ROOT >> 12)
#define PTE_LEAF 0xcfu			/* V R W X A D */
#define PTE_TABLE 0x01u

static const unsigned data_frame[DATA_SIZE / PAGE] = { 4, 0, 2 };

static uint64_t pte(uint64_t pa, unsigned flags)
{
	return (pa >> 12) << 10 | flags;
}

static void map_data_pages(struct tmachine *tm)
{
	tm_poke64(tm, PT_ROOT + 8 * 0, pte(0, PTE_LEAF));		/* the device */
	tm_poke64(tm, PT_ROOT + 8 * 1, pte(PT_L1, PTE_TABLE));	/* DATA_VA */
	tm_poke64(tm, PT_ROOT + 8 * 2, pte(RAM_BASE, PTE_LEAF));	/* RAM, identity */
	tm_poke64(tm, PT_L1, pte(PT_L0, PTE_TABLE));
	for (unsigned i = 0; i < N_ELEMS(data_frame); i++)
		tm_poke64(tm, PT_L0 + 8 * i, pte(DATA + data_frame[i] * PAGE, PTE_LEAF));
}

/*
 * Code at CODE_VA: its three pages hold what CODE's three pages hold, in
 * frames 2, 0 and 4 of CODE_FRAMES; frames 1, 3 and 5, each right after
 * one of them, hold other code, which only a translator reading past the
 * end of a page would run.
 */
#define CODE_VA (DATA_VA + 0x10000)
#define CODE_FRAMES (RAM_BASE + 0x60000)

static void map_code_pages(struct tmachine *tm)
{
	static const unsigned code_frame[CODE_SIZE / PAGE] = { 2, 0, 4 };

	map_data_pages(tm);
	for (unsigned k = 0; k < N_ELEMS(code_frame); k++) {
		uint64_t frame = CODE_FRAMES + code_frame[k] * PAGE;

		tm_poke64(tm, PT_L0 + 8 * (16 + k), pte(frame, PTE_LEAF));
		memcpy(tm_host(tm, frame), tm_host(tm, CODE + k * PAGE), PAGE);
		for (unsigned off = 0; off < PAGE; off += 4) {
			uint32_t other = ADDI(A0, A0, 1000);

			memcpy(tm_host(tm, frame + PAGE + off), &other, 4);
		}
	}
}

/* Registers random programs never write: two data bases, the MMIO base, a loop counter. */
#define R_BASE0 S0
#define R_BASE1 S1
#define R_MMIO S2
#define R_LOOP S3

/* ---- engine selection ---- */

/*
 * A machine whose hart runs with CLOISTER_JIT=value: "eager", the
 * translator from a pc's first sight; "0", the interpreter only; NULL,
 * the default (code interpreted at its first sight, translated at the
 * second).
 */
static void tm_init_env(struct tmachine *tm, const char *value)
{
	const char *old = getenv("CLOISTER_JIT");
	char *saved = old ? strdup(old) : NULL;

	if (value)
		setenv("CLOISTER_JIT", value, 1);
	else
		unsetenv("CLOISTER_JIT");
	tm_init(tm);
	if (saved)
		setenv("CLOISTER_JIT", saved, 1);
	else
		unsetenv("CLOISTER_JIT");
	free(saved);
}

/* A machine whose hart runs with the translator, eagerly (jit), or the interpreter only. */
static void tm_init_engine(struct tmachine *tm, bool jit)
{
	tm_init_env(tm, jit ? "eager" : "0");
	/* Both engines must really be what the test says they are. */
	if (jit)
		cr_assert_not_null(tm->cpu->jit, "no translator on this hart");
	else
		cr_assert_null(tm->cpu->jit, "CLOISTER_JIT=0 still made a translator");
	tm_trap_to_ecall(tm);
}

static const char *engine_name(bool jit)
{
	return jit ? "translator" : "interpreter";
}

/* Fresh registers, pc, counters and satp; the TLBs are flushed by set_state. */
static void tm_reset_satp(struct tmachine *tm, uint64_t pc, const uint64_t *x, uint64_t satp)
{
	struct vcpu_state s = tm_state(tm);

	if (x)
		memcpy(s.x, x, sizeof(s.x));
	else
		memset(s.x, 0, sizeof(s.x));
	s.pc = pc;
	s.cycle = 0;
	s.instret = 0;
	s.scause = 0;
	s.sepc = 0;
	s.stval = 0;
	s.satp = satp;
	cr_assert_eq(tm->ops->vcpu_set_state(tm->cpu, &s), 0);
}

static void tm_reset(struct tmachine *tm, uint64_t pc, const uint64_t *x)
{
	tm_reset_satp(tm, pc, x, 0);
}

/* ---- random programs ---- */

#define MAX_INSNS 512

enum fixup {
	FIX_NONE,
	FIX_B,		/* conditional branch to target */
	FIX_JAL,
	FIX_CJ,
	FIX_CB,		/* C.BEQZ / C.BNEZ */
	FIX_JALR,	/* jalr rd, off(t) with off from the AUIPC at anchor */
	FIX_ADDI,	/* addi t, t, off: off from the AUIPC at anchor (C.JR/C.JALR groups) */
};

struct insn {
	uint32_t bits;
	uint8_t len;
	uint8_t fix;
	bool targetable;	/* a forward jump may land here */
	bool odd;		/* FIX_JALR: add 1 to the offset (JALR clears it) */
	int anchor, target;
	char text[40];
};

struct prog {
	uint64_t seed;
	bool paged;		/* Sv39, data in scattered frames */
	bool may_trap;		/* FPU off or a reserved frm: an FP instruction may trap */
	uint64_t start;
	unsigned n;
	struct insn insn[MAX_INSNS];
	uint64_t addr[MAX_INSNS + 1];
	uint64_t x[32], f[32];
	uint64_t fcsr, fs;	/* fs: sstatus.FS, 0 (off) to 3 (dirty) */
	uint64_t mmio_init;
	uint8_t data[DATA_SIZE];
};

static uint64_t rng;

static uint64_t rnd(void)
{
	/* xorshift64*: the same sequence on every host and libc */
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	return rng * 0x2545f4914f6cdd1dull;
}

static unsigned below(unsigned n)
{
	return (unsigned)(rnd() % n);
}

static bool chance(unsigned percent)
{
	return below(100) < percent;
}

static uint64_t splitmix(uint64_t v)
{
	v += 0x9e3779b97f4a7c15ull;
	v = (v ^ (v >> 30)) * 0xbf58476d1ce4e5b9ull;
	v = (v ^ (v >> 27)) * 0x94d049bb133111ebull;
	return v ^ (v >> 31);
}

/* A value with a good chance of sitting at an edge: signs, 32-bit limits, powers of two. */
static uint64_t interesting(void)
{
	static const uint64_t edges[] = {
		0, 1, 2, UINT64_MAX, 0x7fffffffffffffffull, 0x8000000000000000ull,
		0x7fffffffull, 0x80000000ull, 0xffffffff80000000ull, 0xffffffffull,
		0x100000000ull, 63, 64, 31, 32, 0xfffull, 0x800ull, 0xfffffffffffff800ull,
	};

	switch (below(4)) {
	case 0: return edges[below(N_ELEMS(edges))];
	case 1: return (uint64_t)(int64_t)(int32_t)rnd();
	case 2: return rnd() & 0xff;
	default: return rnd();
	}
}

static int32_t imm12(void)
{
	static const int32_t edges[] = { 0, 1, -1, 2047, -2048, 31, 32, 63, 64 };

	if (chance(30))
		return edges[below(N_ELEMS(edges))];
	return (int32_t)below(4096) - 2048;
}

static bool reserved(unsigned r)
{
	return r == R_BASE0 || r == R_BASE1 || r == R_MMIO || r == R_LOOP;
}

/* A destination: x0 now and then, never a reserved register. */
static unsigned wreg(void)
{
	unsigned r;

	if (chance(5))
		return 0;
	do
		r = 1 + below(31);
	while (reserved(r));
	return r;
}

static unsigned wreg_nz(void)
{
	unsigned r;

	do
		r = wreg();
	while (!r);
	return r;
}

static unsigned rreg(void)
{
	return below(32);
}

/* Compressed-register destinations: a0-a5 (s0/s1, x8/x9, are the data bases). */
static unsigned cwreg(void)
{
	return A0 + below(6);
}

static unsigned crreg(void)
{
	return 8 + below(8);
}

static struct insn *add(struct prog *p, uint32_t bits, unsigned len, const char *fmt, ...)
{
	struct insn *in = &p->insn[p->n++];
	va_list ap;

	cr_assert(p->n <= MAX_INSNS);
	*in = (struct insn){ .bits = bits, .len = (uint8_t)len, .targetable = true, .anchor = -1,
			     .target = -1 };
	va_start(ap, fmt);
	vsnprintf(in->text, sizeof(in->text), fmt, ap);
	va_end(ap);
	return in;
}

struct rop {
	const char *name;
	unsigned opcode, f3, f7;
};

/* OP and OP-32, M included (MULHSU is the interpreter's in both engines). */
static const struct rop rops[] = {
	{ "add", 0x33, 0, 0 }, { "sub", 0x33, 0, 0x20 }, { "sll", 0x33, 1, 0 },
	{ "slt", 0x33, 2, 0 }, { "sltu", 0x33, 3, 0 }, { "xor", 0x33, 4, 0 },
	{ "srl", 0x33, 5, 0 }, { "sra", 0x33, 5, 0x20 }, { "or", 0x33, 6, 0 },
	{ "and", 0x33, 7, 0 }, { "mul", 0x33, 0, 1 }, { "mulh", 0x33, 1, 1 },
	{ "mulhsu", 0x33, 2, 1 }, { "mulhu", 0x33, 3, 1 }, { "div", 0x33, 4, 1 },
	{ "divu", 0x33, 5, 1 }, { "rem", 0x33, 6, 1 }, { "remu", 0x33, 7, 1 },
	{ "addw", 0x3b, 0, 0 }, { "subw", 0x3b, 0, 0x20 }, { "sllw", 0x3b, 1, 0 },
	{ "srlw", 0x3b, 5, 0 }, { "sraw", 0x3b, 5, 0x20 }, { "mulw", 0x3b, 0, 1 },
	{ "divw", 0x3b, 4, 1 }, { "divuw", 0x3b, 5, 1 }, { "remw", 0x3b, 6, 1 },
	{ "remuw", 0x3b, 7, 1 },
	/* Zba, Zbb, Zbs */
	{ "sh1add", 0x33, 2, 0x10 }, { "sh2add", 0x33, 4, 0x10 }, { "sh3add", 0x33, 6, 0x10 },
	{ "add.uw", 0x3b, 0, 0x04 }, { "sh1add.uw", 0x3b, 2, 0x10 },
	{ "sh2add.uw", 0x3b, 4, 0x10 }, { "sh3add.uw", 0x3b, 6, 0x10 },
	{ "andn", 0x33, 7, 0x20 }, { "orn", 0x33, 6, 0x20 }, { "xnor", 0x33, 4, 0x20 },
	{ "min", 0x33, 4, 0x05 }, { "minu", 0x33, 5, 0x05 }, { "max", 0x33, 6, 0x05 },
	{ "maxu", 0x33, 7, 0x05 }, { "rol", 0x33, 1, 0x30 }, { "ror", 0x33, 5, 0x30 },
	{ "rolw", 0x3b, 1, 0x30 }, { "rorw", 0x3b, 5, 0x30 }, { "bclr", 0x33, 1, 0x24 },
	{ "bext", 0x33, 5, 0x24 }, { "binv", 0x33, 1, 0x34 }, { "bset", 0x33, 1, 0x14 },
};

static void rtype_into(struct prog *p, unsigned rd)
{
	const struct rop *o = &rops[below(N_ELEMS(rops))];
	unsigned rs1 = rreg(), rs2 = chance(15) ? rs1 : rreg();

	add(p, enc_r(o->opcode, rd, o->f3, rs1, rs2, o->f7), 4, "%s x%u, x%u, x%u", o->name, rd,
	    rs1, rs2);
}

static void gen_rtype(struct prog *p)
{
	rtype_into(p, wreg());
}

static void gen_itype(struct prog *p)
{
	static const char *const names[] = { "addi", "slti", "sltiu", "xori", "ori", "andi",
					     "slli", "srli", "srai", "addiw", "slliw", "srliw",
					     "sraiw" };
	unsigned k = below(N_ELEMS(names)), rd = wreg(), rs1 = chance(10) ? 0 : rreg();
	int32_t imm = imm12();
	uint32_t bits;

	switch (k) {
	case 0: bits = ADDI(rd, rs1, imm); break;
	case 1: bits = SLTI(rd, rs1, imm); break;
	case 2: bits = SLTIU(rd, rs1, imm); break;
	case 3: bits = XORI(rd, rs1, imm); break;
	case 4: bits = ORI(rd, rs1, imm); break;
	case 5: bits = ANDI(rd, rs1, imm); break;
	case 6: imm &= 63; bits = SLLI(rd, rs1, imm); break;
	case 7: imm &= 63; bits = SRLI(rd, rs1, imm); break;
	case 8: imm &= 63; bits = SRAI(rd, rs1, imm); break;
	case 9: bits = ADDIW(rd, rs1, imm); break;
	case 10: imm &= 31; bits = SLLIW(rd, rs1, imm); break;
	case 11: imm &= 31; bits = SRLIW(rd, rs1, imm); break;
	default: imm &= 31; bits = SRAIW(rd, rs1, imm); break;
	}
	add(p, bits, 4, "%s x%u, x%u, %d", names[k], rd, rs1, imm);
}

/*
 * A rotation as rv64gc code writes it (two shifts of one register into two
 * others, then their or), now and then with amounts that do not add up to
 * the width, and then maybe a read of a shift's result or a new value for
 * it: the translator turns a real one into a rotate and may skip the
 * shifts' own results where nothing can see them.
 */
static void gen_rotation(struct prog *p)
{
	bool w = chance(40), right_first = chance(50);
	unsigned width = w ? 32 : 64, k = 1 + below(width - 1), left = width - k;
	unsigned rs = rreg(), tl = wreg_nz(), tr = wreg_nz(), rd = wreg();
	const char *sfx = w ? "w" : "";

	if (chance(10))
		left = below(width);
	if (right_first)
		add(p, w ? SRLIW(tr, rs, k) : SRLI(tr, rs, k), 4, "srli%s x%u, x%u, %u", sfx, tr, rs, k);
	add(p, w ? SLLIW(tl, rs, left) : SLLI(tl, rs, left), 4, "slli%s x%u, x%u, %u", sfx, tl, rs,
	    left);
	if (!right_first)
		add(p, w ? SRLIW(tr, rs, k) : SRLI(tr, rs, k), 4, "srli%s x%u, x%u, %u", sfx, tr, rs, k);
	if (chance(50))
		add(p, OR(rd, tl, tr), 4, "or x%u, x%u, x%u", rd, tl, tr);
	else
		add(p, OR(rd, tr, tl), 4, "or x%u, x%u, x%u", rd, tr, tl);
	if (chance(25)) {
		unsigned d = wreg(), t = chance(50) ? tl : tr;

		add(p, XOR(d, t, rd), 4, "xor x%u, x%u, x%u", d, t, rd);
	} else if (chance(25)) {
		unsigned t = chance(50) ? tl : tr;

		add(p, ADDI(t, ZERO, 7), 4, "addi x%u, x0, 7", t);
	}
}

/*
 * A word zero-extended as rv64gc code writes it (slli rd, rs, 32, then
 * srli rd, rd, m, either compressed where it can be), now and then with a
 * first shift other than 32 or a second one of another register: the
 * translator turns a real one into a mov of the word and one shift.
 */
static void gen_zext_word(struct prog *p)
{
	unsigned rd = chance(50) ? cwreg() : wreg_nz(), rs = chance(30) ? rd : rreg();
	unsigned first = chance(10) ? 1 + below(63) : 32, m = chance(10) ? 0 : below(64);
	unsigned src = chance(10) ? rreg() : rd;

	if (rd == rs && chance(50))
		add(p, C_SLLI(rd, (int)first), 2, "c.slli x%u, %u", rd, first);
	else
		add(p, SLLI(rd, rs, first), 4, "slli x%u, x%u, %u", rd, rs, first);
	if (src == rd && rd >= 8 && rd < 16 && m && chance(50))
		add(p, c_cb_alu(0, rd, (int)m), 2, "c.srli x%u, %u", rd, m);
	else
		add(p, SRLI(rd, src, m), 4, "srli x%u, x%u, %u", rd, src, m);
}

/* The one-operand and immediate Zbb/Zba/Zbs instructions. */
static void gen_zb_imm(struct prog *p)
{
	static const char *const names[] = { "clz", "ctz", "cpop", "clzw", "ctzw", "cpopw",
					     "sext.b", "sext.h", "zext.h", "orc.b", "rev8",
					     "slli.uw", "rori", "roriw", "bclri", "bexti",
					     "binvi", "bseti" };
	unsigned k = below(N_ELEMS(names)), rd = wreg(), rs1 = chance(10) ? 0 : rreg();
	unsigned sh = below(64);
	uint32_t bits;

	switch (k) {
	case 0: bits = CLZ(rd, rs1); break;
	case 1: bits = CTZ(rd, rs1); break;
	case 2: bits = CPOP(rd, rs1); break;
	case 3: bits = CLZW(rd, rs1); break;
	case 4: bits = CTZW(rd, rs1); break;
	case 5: bits = CPOPW(rd, rs1); break;
	case 6: bits = SEXT_B(rd, rs1); break;
	case 7: bits = SEXT_H(rd, rs1); break;
	case 8: bits = ZEXT_H(rd, rs1); break;
	case 9: bits = ORC_B(rd, rs1); break;
	case 10: bits = REV8(rd, rs1); break;
	case 11: bits = SLLI_UW(rd, rs1, sh); break;
	case 12: bits = RORI(rd, rs1, sh); break;
	case 13: sh &= 31; bits = RORIW(rd, rs1, sh); break;
	case 14: bits = BCLRI(rd, rs1, sh); break;
	case 15: bits = BEXTI(rd, rs1, sh); break;
	case 16: bits = BINVI(rd, rs1, sh); break;
	default: bits = BSETI(rd, rs1, sh); break;
	}
	add(p, bits, 4, "%s x%u, x%u, %u", names[k], rd, rs1, sh);
}

static void gen_upper(struct prog *p)
{
	unsigned rd = wreg();
	uint32_t imm = (uint32_t)rnd() & 0xfffff000u;

	if (chance(50))
		add(p, LUI(rd, imm), 4, "lui x%u, %#x", rd, imm >> 12);
	else
		add(p, AUIPC(rd, imm), 4, "auipc x%u, %#x", rd, imm >> 12);
}

/* Base register and offset for a size-byte access: RAM (often across a page) or MMIO. */
static void pick_address(unsigned size, unsigned *base, int32_t *off)
{
	if (chance(10)) {
		/* device registers are only emulated naturally aligned */
		*base = R_MMIO;
		*off = (int32_t)(below((unsigned)MMIO_SIZE / size) * size);
		return;
	}
	*base = chance(50) ? R_BASE0 : R_BASE1;
	/* Both bases sit on a page boundary: small offsets misalign and cross it. */
	*off = chance(50) ? (int32_t)below(24) - 12 : (int32_t)below(4096) - 2048;
}

static const struct { const char *name; unsigned f3, size; } loads[] = {
	{ "lb", 0, 1 }, { "lh", 1, 2 }, { "lw", 2, 4 }, { "ld", 3, 8 },
	{ "lbu", 4, 1 }, { "lhu", 5, 2 }, { "lwu", 6, 4 },
};

static void load_at(struct prog *p, unsigned k, unsigned rd, unsigned base, int32_t off)
{
	add(p, enc_i(0x03, rd, loads[k].f3, base, off), 4, "%s x%u, %d(x%u)", loads[k].name, rd,
	    off, base);
}

static void store_at(struct prog *p, unsigned k, unsigned rs2, unsigned base, int32_t off)
{
	static const char *const names[] = { "sb", "sh", "sw", "sd" };

	add(p, enc_s(k, base, rs2, off), 4, "%s x%u, %d(x%u)", names[k], rs2, off, base);
}

static void gen_load(struct prog *p)
{
	unsigned k = below(N_ELEMS(loads)), base;
	int32_t off;

	pick_address(loads[k].size, &base, &off);
	load_at(p, k, wreg(), base, off);
}

static void gen_store(struct prog *p)
{
	unsigned k = below(4), base;
	int32_t off;

	pick_address(1u << k, &base, &off);
	store_at(p, k, rreg(), base, off);
}

/*
 * Loads or stores from one base register that moves (addi base, base, k)
 * with other instructions between, now and then a load into the base
 * itself: one check of all their bytes at the first, in the translator (a
 * window), whose span often crosses a page. (Accesses from the device's
 * base, which never moves, make windows there among the others.)
 */
static void gen_window(struct prog *p)
{
	unsigned t = wreg_nz(), base = chance(50) ? R_BASE0 : R_BASE1, steps = 2 + below(5), first;
	bool load = chance(60);
	/* RAM only: it drifts by up to 120 bytes, and devices take aligned accesses alone */
	int32_t off = chance(50) ? (int32_t)below(24) - 12 : (int32_t)below(3800) - 1900;

	add(p, ADDI(t, base, off), 4, "addi x%u, x%u, %d", t, base, off);
	first = p->n;
	for (unsigned s = 0; s < steps; s++) {
		unsigned k = load ? below(N_ELEMS(loads)) : below(4);
		int32_t at = (int32_t)below(48) - 24;
		unsigned rd;

		if (load && chance(8)) {
			load_at(p, k, t, t, at);	/* the base is data now: the last */
			break;
		}
		if (load)
			load_at(p, k, t == (rd = wreg()) ? 0 : rd, t, at);
		else
			store_at(p, k, rreg(), t, at);
		if (chance(40)) {
			at = (int32_t)below(33) - 16;
			add(p, ADDI(t, t, at), 4, "addi x%u, x%u, %d", t, t, at);
		} else if (chance(70)) {
			unsigned rd = wreg();

			rtype_into(p, rd == t ? 0 : rd);	/* reading the base, never writing it */
		}
	}
	for (unsigned i = first; i < p->n; i++)
		p->insn[i].targetable = false;	/* no jump skips the base's first value */
}

static int32_t nz6(void)
{
	int32_t v;

	do
		v = (int32_t)below(64) - 32;
	while (!v);
	return v;
}

static void gen_c_alu(struct prog *p)
{
	unsigned rd, rs;
	int32_t imm;

	switch (below(12)) {
	case 0: rd = wreg_nz(); imm = nz6();
		add(p, C_ADDI(rd, imm), 2, "c.addi x%u, %d", rd, imm); break;
	case 1: rd = wreg_nz(); imm = (int32_t)below(64) - 32;
		add(p, C_LI(rd, imm), 2, "c.li x%u, %d", rd, imm); break;
	case 2: rd = wreg_nz(); imm = (int32_t)below(64) - 32;
		add(p, C_ADDIW(rd, imm), 2, "c.addiw x%u, %d", rd, imm); break;
	case 3:
		do
			rd = wreg_nz();
		while (rd == SP);	/* that encoding is C.ADDI16SP */
		imm = nz6();
		add(p, C_LUI(rd, imm), 2, "c.lui x%u, %d", rd, imm);
		break;
	case 4: rd = wreg_nz(); imm = 1 + (int32_t)below(63);
		add(p, C_SLLI(rd, imm), 2, "c.slli x%u, %d", rd, imm); break;
	case 5: rd = cwreg(); imm = 1 + (int32_t)below(63);
		add(p, c_cb_alu(0, rd, imm), 2, "c.srli x%u, %d", rd, imm); break;
	case 6: rd = cwreg(); imm = 1 + (int32_t)below(63);
		add(p, c_cb_alu(1, rd, imm), 2, "c.srai x%u, %d", rd, imm); break;
	case 7: rd = cwreg(); imm = (int32_t)below(64) - 32;
		add(p, c_cb_alu(2, rd, imm), 2, "c.andi x%u, %d", rd, imm); break;
	case 8: {
		static const char *const names[] = { "c.sub", "c.xor", "c.or", "c.and" };
		unsigned f2 = below(4);

		rd = cwreg();
		rs = crreg();
		add(p, c_ca(0, f2, rd, rs), 2, "%s x%u, x%u", names[f2], rd, rs);
		break;
	}
	case 9: {
		unsigned f2 = below(2);

		rd = cwreg();
		rs = crreg();
		add(p, c_ca(1, f2, rd, rs), 2, "%s x%u, x%u", f2 ? "c.addw" : "c.subw", rd, rs);
		break;
	}
	case 10: rd = wreg_nz(); rs = 1 + below(31);
		add(p, C_MV(rd, rs), 2, "c.mv x%u, x%u", rd, rs); break;
	default: rd = wreg_nz(); rs = 1 + below(31);
		add(p, C_ADD(rd, rs), 2, "c.add x%u, x%u", rd, rs); break;
	}
}

static void gen_c_mem(struct prog *p)
{
	unsigned base = chance(50) ? R_BASE0 : R_BASE1, k = below(4);
	unsigned uw = below(32) * 4, ud = below(32) * 8;

	switch (k) {
	case 0: { unsigned rd = cwreg();
		add(p, c_mem_w(2, base, rd, uw), 2, "c.lw x%u, %u(x%u)", rd, uw, base); break; }
	case 1: { unsigned rd = cwreg();
		add(p, c_mem_d(3, base, rd, ud), 2, "c.ld x%u, %u(x%u)", rd, ud, base); break; }
	case 2: { unsigned rs = crreg();
		add(p, c_mem_w(6, base, rs, uw), 2, "c.sw x%u, %u(x%u)", rs, uw, base); break; }
	default: { unsigned rs = crreg();
		add(p, c_mem_d(7, base, rs, ud), 2, "c.sd x%u, %u(x%u)", rs, ud, base); break; }
	}
}

static void gen_misc(struct prog *p)
{
	unsigned rd = wreg();

	switch (below(4)) {
	case 0: add(p, CSRR(rd, CSR_INSTRET), 4, "csrr x%u, instret", rd); break;
	case 1: add(p, CSRR(rd, CSR_CYCLE), 4, "csrr x%u, cycle", rd); break;
	case 2: add(p, FENCE_RW, 4, "fence"); break;
	default: add(p, C_NOP, 2, "c.nop"); break;
	}
}

/* An FP register value: boxed singles, doubles at the edges, or any bits. */
static uint64_t fp_value(void)
{
	static const uint64_t edges[] = {
		0x3ff0000000000000ull, 0x8000000000000000ull, 0x7ff0000000000000ull,
		0x7ff8000000000000ull, 0x7ff4000000000000ull, 0x0000000000000001ull,
		0xffffffff3f800000ull, 0xffffffff80000000ull, 0xffffffff7f800000ull,
		0xffffffff7fc00000ull, 0xffffffff7fa00000ull, 0xffffffff00000001ull,
		0x43e0000000000000ull, 0xc3e0000000000000ull, 0xffffffff4f000000ull,
	};

	switch (below(4)) {
	case 0: return edges[below(N_ELEMS(edges))];
	case 1: return 0xffffffff00000000ull | (uint32_t)rnd();
	case 2: return (uint64_t)(int64_t)(int32_t)rnd() << 20;
	default: return rnd();
	}
}

/* A rounding-mode field: static modes and DYN (7, fcsr.frm). */
static unsigned rm(void)
{
	static const unsigned modes[] = { 0, 1, 2, 3, 4, 7, 7 };

	return modes[below(N_ELEMS(modes))];
}

/* F and D: all run by the interpreter's FPU code, called from the translated block. */
static void gen_fp(struct prog *p)
{
	static const char *const sd = "sd";
	unsigned k = below(100), fmt = below(2), rd = below(32), rs1 = below(32), rs2 = below(32);
	unsigned m = rm(), base, x;
	int32_t off;

	if (k < 12) {
		pick_address(4u << fmt, &base, &off);
		add(p, enc_i(0x07, rd, 2 + fmt, base, off), 4, "fl%c f%u, %d(x%u)",
		    fmt ? 'd' : 'w', rd, off, base);
	} else if (k < 22) {
		pick_address(4u << fmt, &base, &off);
		add(p, (enc_s(2 + fmt, base, rs2, off) & ~0x7fu) | 0x27, 4, "fs%c f%u, %d(x%u)",
		    fmt ? 'd' : 'w', rs2, off, base);
	} else if (k < 30) {
		/* C.FLD / C.FSD: the C.LD / C.SD layout with f3 1 and 5. */
		unsigned ud = below(32) * 8, r = 8 + below(8);

		base = chance(50) ? R_BASE0 : R_BASE1;
		if (chance(50))
			add(p, c_mem_d(1, base, r, ud), 2, "c.fld f%u, %u(x%u)", r, ud, base);
		else
			add(p, c_mem_d(5, base, r, ud), 2, "c.fsd f%u, %u(x%u)", r, ud, base);
	} else if (k < 55) {
		static const struct { const char *name; unsigned f5; } ar[] = {
			{ "fadd", 0x00 }, { "fsub", 0x01 }, { "fmul", 0x02 }, { "fdiv", 0x03 },
		};
		unsigned i = below(N_ELEMS(ar) + 1);

		if (i == N_ELEMS(ar))
			add(p, enc_r(0x53, rd, m, rs1, 0, 0x2c | fmt), 4, "fsqrt.%c f%u, f%u, rm%u",
			    sd[fmt], rd, rs1, m);
		else
			add(p, enc_r(0x53, rd, m, rs1, rs2, ar[i].f5 << 2 | fmt), 4,
			    "%s.%c f%u, f%u, f%u, rm%u", ar[i].name, sd[fmt], rd, rs1, rs2, m);
	} else if (k < 65) {
		/* fsgnj/fsgnjn/fsgnjx (f3 0-2), fmin/fmax (f3 0-1) */
		bool minmax = chance(40);
		unsigned f3 = below(minmax ? 2 : 3);

		add(p, enc_r(0x53, rd, f3, rs1, rs2, (minmax ? 0x14 : 0x10) | fmt), 4,
		    "%s%u.%c f%u, f%u, f%u", minmax ? "fminmax" : "fsgnj", f3, sd[fmt], rd, rs1,
		    rs2);
	} else if (k < 75) {
		/* fle/flt/feq, fclass, fmv.x.w/d, fcvt.{w,wu,l,lu}: into an x register */
		x = wreg();
		switch (below(4)) {
		case 0: {
			unsigned f3 = below(3);

			add(p, enc_r(0x53, x, f3, rs1, rs2, 0x50 | fmt), 4,
			    "fcmp%u.%c x%u, f%u, f%u", f3, sd[fmt], x, rs1, rs2);
			break;
		}
		case 1: add(p, enc_r(0x53, x, 1, rs1, 0, 0x70 | fmt), 4, "fclass.%c x%u, f%u",
			    sd[fmt], x, rs1); break;
		case 2: add(p, enc_r(0x53, x, 0, rs1, 0, 0x70 | fmt), 4, "fmv.x.%c x%u, f%u",
			    fmt ? 'd' : 'w', x, rs1); break;
		default: {
			unsigned t = below(4);

			add(p, enc_r(0x53, x, m, rs1, t, 0x60 | fmt), 4,
			    "fcvt.%u.%c x%u, f%u, rm%u", t, sd[fmt], x, rs1, m);
			break;
		}
		}
	} else if (k < 85) {
		/* fmv.w/d.x, fcvt.s/d.{w,wu,l,lu}, fcvt.s.d / fcvt.d.s */
		x = rreg();
		switch (below(3)) {
		case 0: add(p, enc_r(0x53, rd, 0, x, 0, 0x78 | fmt), 4, "fmv.%c.x f%u, x%u",
			    fmt ? 'd' : 'w', rd, x); break;
		case 1: {
			unsigned t = below(4);

			add(p, enc_r(0x53, rd, m, x, t, 0x68 | fmt), 4, "fcvt.%c.%u f%u, x%u, rm%u",
			    sd[fmt], t, rd, x, m);
			break;
		}
		default: add(p, enc_r(0x53, rd, m, rs1, !fmt, 0x20 | fmt), 4,
			     "fcvt.%c.%c f%u, f%u, rm%u", sd[fmt], sd[!fmt], rd, rs1, m); break;
		}
	} else {
		static const unsigned ops[] = { 0x43, 0x47, 0x4b, 0x4f };
		static const char *const names[] = { "fmadd", "fmsub", "fnmsub", "fnmadd" };
		unsigned i = below(4), rs3 = below(32);

		add(p, rs3 << 27 | fmt << 25 | rs2 << 20 | rs1 << 15 | m << 12 | rd << 7 | ops[i],
		    4,
		    "%s.%c f%u, f%u, f%u, f%u, rm%u", names[i], sd[fmt], rd, rs1, rs2, rs3, m);
	}
}

/* One instruction that neither jumps nor writes a reserved register. */
static void gen_straight(struct prog *p)
{
	unsigned k = below(100);

	if (k < 12) {
		gen_fp(p);
		return;
	}
	k = below(100);

	if (k < 28)
		gen_rtype(p);
	else if (k < 43)
		gen_itype(p);
	else if (k < 47)
		gen_zb_imm(p);
	else if (k < 50)
		gen_rotation(p);
	else if (k < 52)
		gen_zext_word(p);
	else if (k < 55)
		gen_upper(p);
	else if (k < 58)
		gen_window(p);
	else if (k < 68)
		gen_load(p);
	else if (k < 79)
		gen_store(p);
	else if (k < 91)
		gen_c_alu(p);
	else if (k < 97)
		gen_c_mem(p);
	else
		gen_misc(p);
}

static void gen_control(struct prog *p)
{
	static const char *const bnames[] = { "beq", "bne", "", "", "blt", "bge", "bltu", "bgeu" };
	static const unsigned bf3[] = { 0, 1, 4, 5, 6, 7 };
	struct insn *in;
	unsigned k = below(100), t, rd;

	if (k < 45) {
		unsigned f3 = bf3[below(6)], rs1 = rreg(), rs2 = chance(20) ? rs1 : rreg();

		in = add(p, enc_b(f3, rs1, rs2, 0), 4, "%s x%u, x%u", bnames[f3], rs1, rs2);
		in->fix = FIX_B;
	} else if (k < 57) {
		rd = wreg();
		in = add(p, 0, 4, "jal x%u", rd);
		in->bits = JAL(rd, 0);
		in->fix = FIX_JAL;
	} else if (k < 67) {
		in = add(p, 0, 2, "c.j");
		in->fix = FIX_CJ;
	} else if (k < 80) {
		bool ne = chance(50);
		unsigned rs = crreg();

		in = add(p, c_bz(ne, rs, 0), 2, "%s x%u", ne ? "c.bnez" : "c.beqz", rs);
		in->fix = FIX_CB;
	} else if (k < 92) {
		/* auipc t, 0; jalr rd, off(t): often rd == t, the write after the read. */
		t = wreg_nz();
		rd = chance(35) ? t : wreg();
		add(p, AUIPC(t, 0), 4, "auipc x%u, 0", t);
		in = add(p, JALR(rd, t, 0), 4, "jalr x%u, x%u", rd, t);
		in->targetable = false;
		in->fix = FIX_JALR;
		in->anchor = (int)p->n - 2;
		in->odd = chance(25);
	} else {
		/* auipc t, 0; addi t, t, off; c.jr t / c.jalr t (t == ra: rd == rs1). */
		bool link = chance(50);

		t = chance(30) ? RA : wreg_nz();
		add(p, AUIPC(t, 0), 4, "auipc x%u, 0", t);
		in = add(p, ADDI(t, t, 0), 4, "addi x%u, x%u", t, t);
		in->targetable = false;
		in->fix = FIX_ADDI;
		in->anchor = (int)p->n - 2;
		in = add(p, link ? C_JALR(t) : C_JR(t), 2, "%s x%u", link ? "c.jalr" : "c.jr", t);
		in->targetable = false;
	}
}

/* li s3, k; body; addi s3, s3, -1; bne s3, x0, body: nothing may jump into it. */
static void gen_loop(struct prog *p)
{
	unsigned iters = chance(10) ? 100 + below(300) : 1 + below(20), body = 1 + below(10);
	unsigned first;
	int32_t back = 0;

	add(p, ADDI(R_LOOP, 0, (int32_t)iters), 4, "li x%u, %u  # loop", R_LOOP, iters);
	first = p->n;
	for (unsigned i = 0; i < body; i++)
		gen_straight(p);
	add(p, ADDI(R_LOOP, R_LOOP, -1), 4, "addi x%u, x%u, -1", R_LOOP, R_LOOP);
	for (unsigned i = first; i < p->n; i++) {
		p->insn[i].targetable = false;
		back -= p->insn[i].len;
	}
	add(p, BNE(R_LOOP, 0, back), 4, "bne x%u, x0, %d", R_LOOP, back)->targetable = false;
}

/* A forward target for the jump at index i whose offset counts from from_addr. */
static int pick_target(struct prog *p, unsigned i, uint64_t from_addr, uint64_t max_dist)
{
	int cand[24];
	unsigned n = 0;

	for (unsigned j = i + 1; j < p->n && n < N_ELEMS(cand); j++) {
		if (p->addr[j] - from_addr > max_dist)
			break;
		if (p->insn[j].targetable)
			cand[n++] = (int)j;
	}
	cr_assert(n > 0, "no target after insn %u", i);
	/* Mostly near, to keep most of the program running. */
	return cand[chance(60) ? below(n < 4 ? n : 4) : below(n)];
}

static void fix_jumps(struct prog *p)
{
	for (unsigned i = 0; i < p->n; i++) {
		struct insn *in = &p->insn[i];
		int32_t off;

		switch (in->fix) {
		case FIX_B:
			in->target = pick_target(p, i, p->addr[i], 4094);
			off = (int32_t)(p->addr[in->target] - p->addr[i]);
			in->bits = enc_b((in->bits >> 12) & 7, (in->bits >> 15) & 31,
					 (in->bits >> 20) & 31, off);
			break;
		case FIX_JAL:
			in->target = pick_target(p, i, p->addr[i], 4094);
			off = (int32_t)(p->addr[in->target] - p->addr[i]);
			in->bits = JAL((in->bits >> 7) & 31, off);
			break;
		case FIX_CJ:
			in->target = pick_target(p, i, p->addr[i], 2046);
			in->bits = c_j((int32_t)(p->addr[in->target] - p->addr[i]));
			break;
		case FIX_CB:
			in->target = pick_target(p, i, p->addr[i], 254);
			off = (int32_t)(p->addr[in->target] - p->addr[i]);
			in->bits = c_bz(((in->bits >> 13) & 7) == 7, 8 + ((in->bits >> 7) & 7),
					off);
			break;
		case FIX_JALR:
		case FIX_ADDI:
			in->target = pick_target(p, i + (in->fix == FIX_ADDI), p->addr[in->anchor],
						 2046);
			off = (int32_t)(p->addr[in->target] - p->addr[in->anchor]) + in->odd;
			in->bits = (in->bits & 0xfffff) | ((uint32_t)off & 0xfff) << 20;
			break;
		default:
			break;
		}
	}
}

static void gen_program(struct prog *p, uint64_t seed)
{
	unsigned want;

	memset(p, 0, sizeof(*p));
	p->seed = seed;
	rng = splitmix(seed) | 1;
	p->paged = chance(50);
	/* Somewhere in the 0x400 bytes before a page boundary: many programs cross it. */
	p->start = (p->paged ? CODE_VA : CODE) + PAGE - 2 * (uint64_t)below(0x200);
	for (unsigned r = 1; r < 32; r++)
		p->x[r] = interesting();
	p->x[R_BASE0] = (p->paged ? DATA_VA : DATA) + PAGE;
	p->x[R_BASE1] = (p->paged ? DATA_VA : DATA) + 2 * PAGE;
	p->x[R_MMIO] = MMIO_BASE;
	p->x[R_LOOP] = 0;
	for (unsigned r = 0; r < 32; r++)
		p->f[r] = fp_value();
	/* Mostly a usable FPU; now and then off, or a reserved fcsr.frm (DYN traps). */
	p->fs = chance(5) ? 0 : 1 + below(3);
	p->fcsr = (chance(5) ? 5 + below(3) : below(5)) << 5 | below(32);
	p->may_trap = p->fs == 0 || (p->fcsr >> 5) > 4;
	p->mmio_init = interesting();
	for (unsigned i = 0; i < DATA_SIZE; i += 8) {
		uint64_t v = interesting();

		memcpy(&p->data[i], &v, 8);
	}

	want = 8 + below(250);
	while (p->n < want) {
		unsigned k = below(100);

		if (k < 72)
			gen_straight(p);
		else if (k < 96)
			gen_control(p);
		else
			gen_loop(p);
	}
	add(p, ECALL, 4, "ecall");
	p->addr[0] = p->start;
	for (unsigned i = 0; i < p->n; i++)
		p->addr[i + 1] = p->addr[i] + p->insn[i].len;
	fix_jumps(p);
}

static void print_program(const struct prog *p)
{
	fprintf(stderr, "program of seed %#llx, %u instructions, %s:\n",
		(unsigned long long)p->seed, p->n,
		p->paged ? "Sv39, code and data in scattered frames" : "bare");
	for (unsigned i = 0; i < p->n; i++) {
		const struct insn *in = &p->insn[i];

		fprintf(stderr, "  %3u %#llx: %0*x  %s", i, (unsigned long long)p->addr[i],
			in->len * 2, in->bits, in->text);
		if (in->target >= 0)
			fprintf(stderr, " -> %d (%#llx)%s", in->target,
				(unsigned long long)p->addr[in->target], in->odd ? " +1" : "");
		fprintf(stderr, "\n");
	}
}

static void load_program(struct tmachine *tm, const struct prog *p)
{
	uint64_t code_base = p->paged ? CODE_VA : CODE;
	struct vcpu_state s;

	memset(tm_host(tm, CODE), 0, CODE_SIZE);
	for (unsigned i = 0; i < p->n; i++)
		memcpy(tm_host(tm, CODE + (p->addr[i] - code_base)), &p->insn[i].bits,
		       p->insn[i].len);
	if (p->paged) {
		map_code_pages(tm);
		for (unsigned i = 0; i < N_ELEMS(data_frame); i++)
			memcpy(tm_host(tm, DATA + data_frame[i] * PAGE), p->data + i * PAGE, PAGE);
	} else {
		memcpy(tm_host(tm, DATA), p->data, DATA_SIZE);
	}
	tm->mmio_reg = p->mmio_init;
	tm->mmio_writes = 0;
	tm_reset_satp(tm, p->start, p->x, p->paged ? SATP_SV39 : 0);
	s = tm_state(tm);
	memcpy(s.f, p->f, sizeof(s.f));
	s.fcsr = p->fcsr;
	s.sstatus = p->fs << 13;
	cr_assert_eq(tm->ops->vcpu_set_state(tm->cpu, &s), 0);
}

struct outcome {
	enum vcpu_exit_reason reason;
	struct vcpu_state s;
	uint64_t mmio_reg;
	unsigned mmio_writes;
	uint8_t data[DATA_SIZE];
};

static void run_program(struct tmachine *tm, const struct prog *p, struct outcome *o)
{
	struct vcpu_exit e = { 0 };

	load_program(tm, p);
	cr_assert_eq(tm->ops->vcpu_run(tm->cpu, &e), 0);
	o->reason = e.reason;
	o->s = tm_state(tm);
	o->mmio_reg = tm->mmio_reg;
	o->mmio_writes = tm->mmio_writes;
	/* In the program's (virtual) order. */
	for (unsigned i = 0; i < N_ELEMS(data_frame); i++)
		memcpy(o->data + i * PAGE,
		       tm_host(tm, DATA + (p->paged ? data_frame[i] : i) * PAGE), PAGE);
}

/* Prints every difference; true if there is none. */
static bool same_outcome(const char *what, const struct outcome *a, const struct outcome *b)
{
	bool same = true;

#define DIFF(fmt, name, va, vb) do { \
	if ((va) != (vb)) { \
		fprintf(stderr, "%s: %s differs: translator " fmt ", interpreter " fmt "\n", \
			what, name, va, vb); \
		same = false; \
	} \
} while (0)

	DIFF("%d", "exit reason", (int)a->reason, (int)b->reason);
	for (unsigned r = 0; r < 32; r++) {
		char name[8];

		snprintf(name, sizeof(name), "x%u", r);
		DIFF("%#llx", name, (unsigned long long)a->s.x[r], (unsigned long long)b->s.x[r]);
	}
	for (unsigned r = 0; r < 32; r++) {
		char name[8];

		snprintf(name, sizeof(name), "f%u", r);
		DIFF("%#llx", name, (unsigned long long)a->s.f[r], (unsigned long long)b->s.f[r]);
	}
	DIFF("%#llx", "fcsr", (unsigned long long)a->s.fcsr, (unsigned long long)b->s.fcsr);
	DIFF("%#llx", "sstatus", (unsigned long long)a->s.sstatus,
	     (unsigned long long)b->s.sstatus);
	DIFF("%#llx", "pc", (unsigned long long)a->s.pc, (unsigned long long)b->s.pc);
	DIFF("%llu", "instret", (unsigned long long)a->s.instret,
	     (unsigned long long)b->s.instret);
	DIFF("%llu", "cycle", (unsigned long long)a->s.cycle, (unsigned long long)b->s.cycle);
	DIFF("%llu", "scause", (unsigned long long)a->s.scause, (unsigned long long)b->s.scause);
	DIFF("%#llx", "sepc", (unsigned long long)a->s.sepc, (unsigned long long)b->s.sepc);
	DIFF("%#llx", "stval", (unsigned long long)a->s.stval, (unsigned long long)b->s.stval);
	DIFF("%#llx", "mmio register", (unsigned long long)a->mmio_reg,
	     (unsigned long long)b->mmio_reg);
	DIFF("%u", "mmio writes", a->mmio_writes, b->mmio_writes);
	for (unsigned i = 0; i < DATA_SIZE; i++) {
		if (a->data[i] != b->data[i]) {
			fprintf(stderr,
				"%s: data byte %#x differs: translator %#x, interpreter %#x\n",
				what, i, a->data[i], b->data[i]);
			same = false;
			break;
		}
	}
#undef DIFF
	return same;
}

/* A program that never ends (an engine bug) still names its seed. */
static volatile uint64_t current_seed;

static void on_alarm(int sig)
{
	char msg[80];
	int n = snprintf(msg, sizeof(msg), "\nprogram of seed %#llx did not finish\n",
			 (unsigned long long)current_seed);

	(void)sig;
	if (write(STDERR_FILENO, msg, (size_t)n) < 0)
		_exit(3);
	abort();
}

static unsigned env_unsigned(const char *name, unsigned dflt)
{
	const char *v = getenv(name);

	return v && *v ? (unsigned)strtoul(v, NULL, 0) : dflt;
}

static struct tmachine tm_jit, tm_int, tm_sight;
static struct prog prog;
static struct outcome out_jit, out_jit2, out_int, out_sight, out_sight2;

/* A hang (an engine looping where it should not) is caught by meson's timeout for the program. */
TestSuite(rv64_jit);

/*
 * RV64_JIT_SEED and RV64_JIT_PROGRAMS reproduce or widen a run (RV64_JIT_LIST
 * prints every program); on a mismatch the seed of the failing program is
 * printed with its listing.
 * Both harts live through all programs, so the translator also meets code
 * it has cached at the same addresses with other bytes.
 */
Test(rv64_jit, random_programs_match_interpreter)
{
	uint64_t base = env_unsigned("RV64_JIT_SEED", 0x5eed);
	unsigned count = env_unsigned("RV64_JIT_PROGRAMS", 4000), bad = 0, ran;
	bool list = getenv("RV64_JIT_LIST");
	uint64_t executed = 0, traps = 0;

	tm_init_engine(&tm_jit, true);
	tm_init_engine(&tm_int, false);
	tm_init_env(&tm_sight, NULL);
	cr_assert_not_null(tm_sight.cpu->jit, "no translator on this hart");
	tm_trap_to_ecall(&tm_sight);
	signal(SIGALRM, on_alarm);
	for (ran = 0; ran < count && bad < 3; ran++) {
		bool ok;

		gen_program(&prog, base + ran);
		if (list)
			print_program(&prog);
		current_seed = prog.seed;
		alarm(20);
		run_program(&tm_int, &prog, &out_int);
		run_program(&tm_jit, &prog, &out_jit);
		/* Again with its blocks cached (and the TLBs flushed by the reset). */
		run_program(&tm_jit, &prog, &out_jit2);
		/* As by default: at first sight interpreted, loops translated; then translated. */
		run_program(&tm_sight, &prog, &out_sight);
		run_program(&tm_sight, &prog, &out_sight2);
		alarm(0);
		/*
		 * The generator makes legal programs that end at their ECALL, or
		 * with the FPU off or a reserved frm, in an FP instruction's trap.
		 */
		cr_assert_eq(out_int.reason, VCPU_EXIT_SBI, "seed %#llx",
			     (unsigned long long)prog.seed);
		if (!prog.may_trap) {
			cr_assert_eq(out_int.s.scause, 0, "seed %#llx trapped",
				     (unsigned long long)prog.seed);
			cr_assert_eq(out_int.s.pc, prog.addr[prog.n], "seed %#llx",
				     (unsigned long long)prog.seed);
		} else {
			cr_assert(out_int.s.scause == 0 || out_int.s.scause == CAUSE_ILLEGAL_INSN,
				  "seed %#llx: scause %llu", (unsigned long long)prog.seed,
				  (unsigned long long)out_int.s.scause);
			traps += out_int.s.scause != 0;
		}
		ok = same_outcome("cold", &out_jit, &out_int);
		ok = same_outcome("cached", &out_jit2, &out_int) && ok;
		ok = same_outcome("first sight", &out_sight, &out_int) && ok;
		ok = same_outcome("second sight", &out_sight2, &out_int) && ok;
		if (!ok) {
			print_program(&prog);
			bad++;
		}
		executed += out_int.s.instret;
	}
	cr_expect_eq(bad, 0, "%u of the programs differ (seeds printed above)", bad);
	/* The generator must not degenerate into programs that skip everything. */
	cr_expect(ran < 100 || executed > ran * 40ull, "only %llu instructions run",
		  (unsigned long long)executed);
	cr_expect(ran < 1000 || traps > 0, "no program ran an FP instruction with the FPU off");
	tm_fini(&tm_jit);
	tm_fini(&tm_int);
	tm_fini(&tm_sight);
}

/* ---- targeted cases, each on both engines ---- */

static struct tmachine tm;

static void start_at(struct tmachine *t, uint64_t pc)
{
	t->cursor = pc;
}

static struct vcpu_state run_to_ecall(struct tmachine *t, bool jit)
{
	struct vcpu_exit e = { 0 };
	struct vcpu_state s;

	cr_assert_eq(t->ops->vcpu_run(t->cpu, &e), 0);
	s = tm_state(t);
	cr_assert_eq(e.reason, VCPU_EXIT_SBI, "%s: exit %d at pc %#llx", engine_name(jit), e.reason,
		     (unsigned long long)s.pc);
	cr_assert_eq(s.scause, 0, "%s: trapped, scause %llu", engine_name(jit),
		     (unsigned long long)s.scause);
	return s;
}

/*
 * A loop whose load and store land in a new page every time round: each
 * misses the TLB in the middle of a translated block, which hands that one
 * instruction to the interpreter. instret, read mid-program and at the end,
 * must count every instruction once.
 */
static void tlb_miss_mid_block(bool jit)
{
	const unsigned iters = 10;
	struct vcpu_state s;
	uint64_t sum = 0;

	tm_init_engine(&tm, jit);
	for (unsigned i = 0; i < iters; i++) {
		tm_poke64(&tm, DATA + i * PAGE, 1000 + i);
		sum += 1000 + i;
	}
	start_at(&tm, CODE);
	emit(&tm, ADDI(A1, ZERO, (int32_t)iters));	/* 1 */
	emit(&tm, LUI(S1, PAGE));			/* 2 */
	emit(&tm, ADDI(A2, A2, 1));			/* loop: 9 a time */
	emit(&tm, ADDI(A3, A3, 2));
	emit(&tm, LD(A4, S0, 0));			/* misses */
	emit(&tm, ADD(A5, A5, A4));
	emit(&tm, SD(S0, A2, 8));			/* misses */
	emit(&tm, ADD(S0, S0, S1));
	emit(&tm, CSRR(A6, CSR_INSTRET));
	emit(&tm, ADDI(A1, A1, -1));
	emit(&tm, BNE(A1, ZERO, -32));
	emit(&tm, CSRR(A7, CSR_INSTRET));
	emit(&tm, ECALL);
	tm_reset(&tm, CODE, NULL);
	set_reg(&tm, S0, DATA);
	s = run_to_ecall(&tm, jit);
	cr_expect_eq(s.x[A5], sum, "%s: loads", engine_name(jit));
	cr_expect_eq(s.x[A2], iters, "%s", engine_name(jit));
	cr_expect_eq(tm_peek64(&tm, DATA + (iters - 1) * PAGE + 8), iters, "%s: stores",
		     engine_name(jit));
	/* Before the last time round's csrr: 2 + 9 * 9 + 6. */
	cr_expect_eq(s.x[A6], 2 + 9 * (iters - 1) + 6, "%s: instret mid-loop %llu",
		     engine_name(jit), (unsigned long long)s.x[A6]);
	cr_expect_eq(s.x[A7], 2 + 9 * iters, "%s: instret after the loop", engine_name(jit));
	cr_expect_eq(s.instret, 2 + 9 * iters + 2, "%s: instret at the end", engine_name(jit));
	cr_expect_eq(s.cycle, s.instret, "%s: no traps, so cycle == instret", engine_name(jit));
	tm_fini(&tm);
}

Test(rv64_jit, tlb_miss_in_mid_block_counts_exactly)
{
	tlb_miss_mid_block(true);
	tlb_miss_mid_block(false);
}

/*
 * Under Sv39, loads and stores crossing from one virtual page to the next,
 * whose frames are not adjacent: each byte must come from its own frame.
 * A loop, so the second time round the block is translated and the TLBs
 * hold both pages.
 */
static void scattered_frames(bool jit)
{
	const uint64_t f4 = DATA + 4 * PAGE, f0 = DATA, f2 = DATA + 2 * PAGE;
	const uint64_t v = 0x1122334455667788ull;
	struct vcpu_state s;
	uint64_t want_ld = 0;

	tm_init_engine(&tm, jit);
	map_data_pages(&tm);
	for (unsigned i = 0; i < 8; i++) {
		((uint8_t *)tm_host(&tm, f4 + PAGE - 8))[i] = (uint8_t)(0xa0 + i);
		((uint8_t *)tm_host(&tm, f0))[i] = (uint8_t)(0xb0 + i);
	}
	/* ld at DATA_VA + PAGE - 3: three bytes at the end of frame 4, five from frame 0. */
	for (unsigned i = 0; i < 8; i++)
		want_ld |= (uint64_t)(i < 3 ? 0xa5 + i : 0xb0 + i - 3) << (8 * i);
	start_at(&tm, CODE);
	emit(&tm, ADDI(A3, ZERO, 3));
	emit(&tm, ADDI(A4, A4, 1));		/* L */
	emit(&tm, LD(A0, S0, -3));
	emit(&tm, LHU(A5, S0, -1));
	emit(&tm, SD(S1, A1, -6));		/* frame 0's last 6 bytes, frame 2's first 2 */
	emit(&tm, LW(A6, S1, -2));
	emit(&tm, ADDI(A3, A3, -1));
	emit(&tm, BNE(A3, ZERO, -24));
	emit(&tm, ECALL);
	tm_reset_satp(&tm, CODE, NULL, SATP_SV39);
	set_reg(&tm, S0, DATA_VA + PAGE);
	set_reg(&tm, S1, DATA_VA + 2 * PAGE);
	set_reg(&tm, A1, v);
	s = run_to_ecall(&tm, jit);
	cr_expect_eq(s.x[A0], want_ld, "%s: ld %#llx", engine_name(jit),
		     (unsigned long long)s.x[A0]);
	cr_expect_eq(s.x[A5], 0xb0a7, "%s: lhu %#llx", engine_name(jit),
		     (unsigned long long)s.x[A5]);
	cr_expect_eq(tm_peek64(&tm, f0 + PAGE - 8) >> 16, v & 0xffffffffffffull,
		     "%s: sd, first page", engine_name(jit));
	cr_expect_eq(tm_peek64(&tm, f2) & 0xffff, v >> 48, "%s: sd, second page", engine_name(jit));
	cr_expect_eq(s.x[A6], (uint64_t)(int64_t)(int32_t)(v >> 32), "%s: lw %#llx",
		     engine_name(jit), (unsigned long long)s.x[A6]);
	cr_expect_eq(s.instret, 1 + 7 * 3 + 1, "%s", engine_name(jit));
	tm_fini(&tm);
}

Test(rv64_jit, access_crossing_into_a_scattered_frame)
{
	scattered_frames(true);
	scattered_frames(false);
}

/*
 * Two pages 4 MiB apart share a set of the TLB: a loop reading both finds
 * one in way 0 and the other in way 1, which translated code swaps into
 * way 0 on a hit. Every read must see its own page, and after the second
 * is remapped and flushed (a one-page SFENCE.VMA of a page of a
 * superpage), the new frame.
 */
#define MEGA_VA (DATA_VA + (4ull << 20))	/* L1 entry 2: a 2 MiB page */
#define MEGA_PA (RAM_BASE + (2ull << 20))
#define PT_L0B (RAM_BASE + 0x103000)
#define REMAPPED (RAM_BASE + 0x300000)

static void tlb_ways(bool jit)
{
	const unsigned iters = 50;
	const uint64_t va = 0x1111, vb = 0x2222000, vb2 = 0x33330000000ull;
	struct vcpu_state s;

	tm_init_engine(&tm, jit);
	map_data_pages(&tm);
	tm_poke64(&tm, PT_L1 + 8 * 2, pte(MEGA_PA, PTE_LEAF));
	tm_poke64(&tm, PT_L0B + 8 * 1, pte(REMAPPED, PTE_LEAF));
	tm_poke64(&tm, DATA + data_frame[1] * PAGE, va);	/* DATA_VA + PAGE */
	tm_poke64(&tm, MEGA_PA + PAGE, vb);			/* MEGA_VA + PAGE */
	tm_poke64(&tm, REMAPPED, vb2);				/* MEGA_VA + PAGE, remapped */
	start_at(&tm, CODE);
	emit(&tm, ADDI(A3, ZERO, (int32_t)iters));
	emit(&tm, LD(A0, S0, 0));		/* L: same set, either way */
	emit(&tm, ADD(A4, A4, A0));
	emit(&tm, LD(A1, S1, 0));
	emit(&tm, ADD(A5, A5, A1));
	emit(&tm, ADDI(A3, A3, -1));
	emit(&tm, BNE(A3, ZERO, -20));
	emit(&tm, SD(T1, T0, 0));		/* L1 entry 2: a table now */
	emit(&tm, SFENCE_VMA_ADDR(S1));
	emit(&tm, LD(A2, S1, 0));
	emit(&tm, ECALL);
	tm_reset_satp(&tm, CODE, NULL, SATP_SV39);
	set_reg(&tm, S0, DATA_VA + PAGE);
	set_reg(&tm, S1, MEGA_VA + PAGE);
	set_reg(&tm, T1, PT_L1 + 8 * 2);
	set_reg(&tm, T0, pte(PT_L0B, PTE_TABLE));
	s = run_to_ecall(&tm, jit);
	cr_expect_eq(s.x[A4], iters * va, "%s: %#llx", engine_name(jit), (unsigned long long)s.x[A4]);
	cr_expect_eq(s.x[A5], iters * vb, "%s: %#llx", engine_name(jit), (unsigned long long)s.x[A5]);
	cr_expect_eq(s.x[A2], vb2, "%s: after the remap %#llx", engine_name(jit),
		     (unsigned long long)s.x[A2]);
	tm_fini(&tm);
}

Test(rv64_jit, pages_sharing_a_tlb_set)
{
	tlb_ways(true);
	tlb_ways(false);
}

/*
 * Loads and stores in a row from one base register, which the translator
 * checks as one group: a group whose bytes run into the next page (in a
 * frame out of order), one whose base register one of its loads writes,
 * and one at the device. Under Sv39, in a loop, so the second time round
 * the blocks are translated and the TLBs hold the pages.
 */
static void grouped_accesses(bool jit)
{
	const uint64_t f4 = DATA + 4 * PAGE, f0 = DATA;	/* DATA_VA's first two pages */
	const uint64_t second = DATA_VA + PAGE;
	struct vcpu_state s;

	tm_init_engine(&tm, jit);
	map_data_pages(&tm);
	tm_poke64(&tm, f4 + PAGE - 16, 11);
	tm_poke64(&tm, f4 + PAGE - 8, 12);
	tm_poke64(&tm, f0, 13);
	tm_poke64(&tm, f0 + 8, 14);
	tm_poke64(&tm, f0 + 0x100, second + 0x200);	/* a pointer, then 55 */
	tm_poke64(&tm, f0 + 0x108, 55);
	tm_poke64(&tm, f0 + 0x208, 99);
	start_at(&tm, CODE);
	emit(&tm, ADDI(A7, ZERO, 3));
	emit(&tm, LD(A0, S0, -16));	/* L: four loads across the page end */
	emit(&tm, LD(A1, S0, -8));
	emit(&tm, LD(A2, S0, 0));
	emit(&tm, LD(A3, S0, 8));
	emit(&tm, SD(S0, A3, -16));	/* stored back turned by one */
	emit(&tm, SD(S0, A0, -8));
	emit(&tm, SD(S0, A1, 0));
	emit(&tm, SD(S0, A2, 8));
	emit(&tm, ADDI(A5, S0, 0x100));
	emit(&tm, LD(A6, A5, 8));	/* 55, from the old base */
	emit(&tm, LD(A5, A5, 0));	/* the base moves on */
	emit(&tm, LD(A4, A5, 8));	/* 99, from the new one */
	emit(&tm, SW(S2, A7, 8));	/* two device writes in a row */
	emit(&tm, SW(S2, A6, 8));
	emit(&tm, ADDI(A7, A7, -1));
	emit(&tm, BNE(A7, ZERO, -60));
	emit(&tm, ECALL);
	tm_reset_satp(&tm, CODE, NULL, SATP_SV39);
	set_reg(&tm, S0, second);
	set_reg(&tm, S2, MMIO_BASE);
	s = run_to_ecall(&tm, jit);
	/* Three turns of 11 12 13 14: loaded 13 14 11 12 the last time, stored 12 13 14 11. */
	cr_expect_eq(s.x[A0], 13, "%s: %llu", engine_name(jit), (unsigned long long)s.x[A0]);
	cr_expect_eq(s.x[A1], 14, "%s", engine_name(jit));
	cr_expect_eq(s.x[A2], 11, "%s", engine_name(jit));
	cr_expect_eq(s.x[A3], 12, "%s", engine_name(jit));
	cr_expect_eq(tm_peek64(&tm, f4 + PAGE - 16), 12, "%s", engine_name(jit));
	cr_expect_eq(tm_peek64(&tm, f4 + PAGE - 8), 13, "%s", engine_name(jit));
	cr_expect_eq(tm_peek64(&tm, f0), 14, "%s", engine_name(jit));
	cr_expect_eq(tm_peek64(&tm, f0 + 8), 11, "%s", engine_name(jit));
	cr_expect_eq(s.x[A6], 55, "%s", engine_name(jit));
	cr_expect_eq(s.x[A4], 99, "%s: %llu", engine_name(jit), (unsigned long long)s.x[A4]);
	cr_expect_eq(tm.mmio_writes, 2 * 3, "%s", engine_name(jit));
	cr_expect_eq(tm.mmio_reg, 55, "%s", engine_name(jit));
	cr_expect_eq(s.instret, 1 + 16 * 3 + 1, "%s", engine_name(jit));
	tm_fini(&tm);
}

/*
 * Two loads either side of a page end, round a loop, share one check that
 * always misses (no TLB entry spans two pages): the block then has the
 * interpreter take the two from inside it and goes on, instead of
 * returning to the dispatcher at every turn. rv64_jit_insns() counts what
 * translated code retired, helpers' instructions included.
 */
Test(rv64_jit, group_across_a_page_stays_translated)
{
	const unsigned rounds = 200;
	uint64_t second = DATA + PAGE;
	struct vcpu_state s;

	tm_init_engine(&tm, true);
	tm_poke64(&tm, second - 8, 5);
	tm_poke64(&tm, second, 7);
	start_at(&tm, CODE);
	emit(&tm, ADDI(A7, ZERO, (int32_t)rounds));
	emit(&tm, LD(A0, S0, -8));	/* loop */
	emit(&tm, LD(A1, S0, 0));
	emit(&tm, ADD(A2, A2, A0));
	emit(&tm, ADD(A2, A2, A1));
	emit(&tm, ADDI(A7, A7, -1));
	emit(&tm, BNE(A7, ZERO, -20));
	emit(&tm, ECALL);
	tm_reset(&tm, CODE, NULL);
	set_reg(&tm, S0, second);
	s = run_to_ecall(&tm, true);
	cr_expect_eq(s.x[A2], rounds * 12ull);
	cr_expect_eq(s.instret, 1 + 6 * rounds + 1);
	cr_expect_geq(rv64_jit_insns(tm.cpu->jit), 6 * (rounds - 2), "%llu in translated code",
		      (unsigned long long)rv64_jit_insns(tm.cpu->jit));
	tm_fini(&tm);
}

Test(rv64_jit, grouped_accesses_across_a_page_a_moved_base_and_a_device)
{
	grouped_accesses(true);
	grouped_accesses(false);
}

/*
 * Windows: a load, and a store, each followed two instructions on by one
 * more from its base, which has moved by 8 meanwhile (one check of both
 * in translated code). Walking 8 bytes a turn, one turn's pair lies
 * across a page end, where the fill cannot take the span: the anchor's
 * slot is emptied and both accesses of each window are checked on their
 * own. DATA_VA's pages sit in frames out of order, so a pair read or
 * written from one host address across the end would go wrong.
 */
static void windows_across_a_page(bool jit)
{
	const uint64_t f4 = DATA + 4 * PAGE, f0 = DATA, f2 = DATA + 2 * PAGE;
	const uint64_t second = DATA_VA + PAGE, third = DATA_VA + 2 * PAGE;
	struct vcpu_state s;

	tm_init_engine(&tm, jit);
	map_data_pages(&tm);
	for (unsigned k = 0; k < 4; k++) {
		tm_poke64(&tm, f4 + PAGE - 32 + 8 * k, 1 + k);	/* 1 2 3 4 | 5 6 7 8 */
		tm_poke64(&tm, f0 + 8 * k, 5 + k);
	}
	start_at(&tm, CODE);
	emit(&tm, ADDI(A7, ZERO, 6));
	emit(&tm, LD(A0, S0, 0));	/* L: the load window's anchor */
	emit(&tm, SD(S1, A0, 0));	/* the store window's */
	emit(&tm, ADDI(S0, S0, 8));
	emit(&tm, ADDI(S1, S1, 8));
	emit(&tm, LD(A1, S0, 0));	/* their members, 8 bytes on */
	emit(&tm, SD(S1, A1, 0));
	emit(&tm, ADD(A2, A2, A0));
	emit(&tm, ADD(A2, A2, A1));
	emit(&tm, ADDI(A7, A7, -1));
	emit(&tm, BNE(A7, ZERO, -36));
	emit(&tm, ECALL);
	tm_reset_satp(&tm, CODE, NULL, SATP_SV39);
	set_reg(&tm, S0, second - 32);
	set_reg(&tm, S1, third - 24);
	set_reg(&tm, A2, 0);
	s = run_to_ecall(&tm, jit);
	/* Pairs 1+2, 2+3, ... 6+7; the fourth read across the page end. */
	cr_expect_eq(s.x[A2], 48, "%s: %llu", engine_name(jit), (unsigned long long)s.x[A2]);
	/* 1 to 7 stored 8 bytes apart from third - 24; the fourth turn's pair across the end. */
	for (unsigned k = 0; k < 3; k++)
		cr_expect_eq(tm_peek64(&tm, f0 + PAGE - 24 + 8 * k), 1 + k, "%s: slot %u",
			     engine_name(jit), k);
	for (unsigned k = 0; k < 4; k++)
		cr_expect_eq(tm_peek64(&tm, f2 + 8 * k), 4 + k, "%s: slot %u", engine_name(jit),
			     3 + k);
	cr_expect_eq(s.instret, 1 + 10 * 6 + 1, "%s", engine_name(jit));
	tm_fini(&tm);
}

Test(rv64_jit, windows_across_a_page)
{
	windows_across_a_page(true);
	windows_across_a_page(false);
}

/*
 * A block that names t0, t1 and t2 again and again and none of a0-a6 or
 * sp: the translator lends their host registers to the t registers for
 * the block. Its load misses the TLB every time round (a new page), which
 * leaves the block in its middle. The lent registers must come back
 * unchanged, and the t registers must be right, on every way out.
 */
static void lent_registers(bool jit)
{
	static const unsigned keep[] = { SP, A0, A1, A2, A3, A4, A5, A6 };
	const unsigned iters = 3;
	struct vcpu_state s;
	uint64_t t0 = 0, t1 = 0;

	tm_init_engine(&tm, jit);
	for (unsigned i = 0; i < iters; i++)
		tm_poke64(&tm, DATA + i * PAGE, 100 * (i + 1));
	start_at(&tm, CODE);
	emit(&tm, ADDI(A7, ZERO, (int32_t)iters));
	emit(&tm, LUI(T2, PAGE));
	emit(&tm, ADDI(T0, T0, 3));		/* L */
	emit(&tm, ADD(T1, T1, T0));
	emit(&tm, XOR(T0, T0, T1));
	emit(&tm, LD(T1, S1, 0));		/* a new page: a TLB miss */
	emit(&tm, ADD(T1, T1, T0));
	emit(&tm, ADD(S1, S1, T2));
	emit(&tm, SLLI(T0, T0, 1));
	emit(&tm, ADDI(A7, A7, -1));
	emit(&tm, BNE(A7, ZERO, -32));
	emit(&tm, ECALL);
	tm_reset(&tm, CODE, NULL);
	for (unsigned k = 0; k < N_ELEMS(keep); k++)
		set_reg(&tm, keep[k], 0x1000 + k);
	set_reg(&tm, S1, DATA);
	s = run_to_ecall(&tm, jit);
	for (unsigned i = 0; i < iters; i++) {
		t0 += 3;
		t1 += t0;
		t0 ^= t1;
		t1 = 100 * (i + 1) + t0;
		t0 <<= 1;
	}
	cr_expect_eq(s.x[T0], t0, "%s: t0 %llu", engine_name(jit), (unsigned long long)s.x[T0]);
	cr_expect_eq(s.x[T1], t1, "%s: t1 %llu", engine_name(jit), (unsigned long long)s.x[T1]);
	for (unsigned k = 0; k < N_ELEMS(keep); k++)
		cr_expect_eq(s.x[keep[k]], 0x1000 + k, "%s: x%u", engine_name(jit), keep[k]);
	cr_expect_eq(s.instret, 2 + 9 * iters + 1, "%s", engine_name(jit));
	tm_fini(&tm);
}

Test(rv64_jit, lent_host_registers_come_back)
{
	lent_registers(true);
	lent_registers(false);
}

/*
 * A rotation written as two shifts and an or: the shifts' own results are
 * still written when the block may be left before it writes those
 * registers again. Here the load after it faults, and the trap sees t1
 * and t2 as the shifts left them, and a1 rotated.
 */
static void rotation_then_fault(bool jit)
{
	uint64_t v = 0x0123456789abcdefull;
	struct vcpu_exit e = { 0 };
	struct vcpu_state s;

	tm_init_engine(&tm, jit);
	start_at(&tm, CODE);
	emit(&tm, ADDI(A4, ZERO, 1));		/* interpreted: it fills the fetch TLB */
	emit(&tm, SLLI(T1, A0, 50));		/* a block from here */
	emit(&tm, SRLI(T2, A0, 14));
	emit(&tm, OR(A1, T1, T2));
	emit(&tm, LD(A2, A3, 0));		/* no memory there */
	emit(&tm, ADDI(T1, ZERO, 1));
	emit(&tm, ADDI(T2, ZERO, 2));
	emit(&tm, ECALL);
	tm_reset(&tm, CODE, NULL);
	set_reg(&tm, A0, v);
	set_reg(&tm, A3, 0x10);
	cr_assert_eq(tm.ops->vcpu_run(tm.cpu, &e), 0);
	s = tm_state(&tm);
	cr_expect_eq(s.scause, CAUSE_LOAD_ACCESS, "%s: scause %llu", engine_name(jit),
		     (unsigned long long)s.scause);
	cr_expect_eq(s.x[A1], v >> 14 | v << 50, "%s", engine_name(jit));
	cr_expect_eq(s.x[T1], v << 50, "%s", engine_name(jit));
	cr_expect_eq(s.x[T2], v >> 14, "%s", engine_name(jit));
	tm_fini(&tm);
}

Test(rv64_jit, rotation_temporaries_seen_by_a_trap)
{
	rotation_then_fault(true);
	rotation_then_fault(false);
}

/*
 * A forward branch over a few instructions of its block goes on at the
 * instruction it names, inside the block, where its two ways meet: no
 * rotation or zero-extension is made of instructions from both sides of
 * that point, and instret counts only what ran.
 */
static void skip_into_pairs(bool jit, uint64_t a2)
{
	const uint64_t a0 = 0x1122334455667788ull;
	struct vcpu_state s;

	tm_init_engine(&tm, jit);
	start_at(&tm, CODE);
	emit(&tm, BEQ(A2, ZERO, 8));		/* over the next one when a2 is 0 */
	emit(&tm, SLLI(A3, A0, 8));
	emit(&tm, SRLI(A4, A0, 56));		/* the ways meet */
	emit(&tm, OR(A5, A3, A4));
	emit(&tm, BEQ(A2, ZERO, 8));
	emit(&tm, SLLI(A6, A0, 32));
	emit(&tm, SRLI(A6, A6, 32));		/* the ways meet */
	emit(&tm, ADDI(A3, ZERO, 0));
	emit(&tm, ADDI(A4, ZERO, 0));
	emit(&tm, ECALL);
	tm_reset(&tm, CODE, NULL);
	set_reg(&tm, A0, a0);
	set_reg(&tm, A2, a2);
	set_reg(&tm, A3, 0xf00);
	set_reg(&tm, A6, 0xabcd00000000ull);
	s = run_to_ecall(&tm, jit);
	cr_expect_eq(s.x[A5], (a2 ? a0 << 8 : 0xf00) | a0 >> 56, "%s, a2 %llu: %#llx",
		     engine_name(jit), (unsigned long long)a2, (unsigned long long)s.x[A5]);
	cr_expect_eq(s.x[A6], a2 ? (uint32_t)a0 : 0xabcd, "%s, a2 %llu: %#llx", engine_name(jit),
		     (unsigned long long)a2, (unsigned long long)s.x[A6]);
	cr_expect_eq(s.instret, a2 ? 10 : 8, "%s, a2 %llu", engine_name(jit), (unsigned long long)a2);
	tm_fini(&tm);
}

Test(rv64_jit, branch_over_instructions_meets_inside_the_block)
{
	for (uint64_t a2 = 0; a2 < 2; a2++) {
		skip_into_pairs(true, a2);
		skip_into_pairs(false, a2);
	}
}

/* Device registers inside a loop's block: every access reaches the device. */
static void mmio_in_block(bool jit)
{
	const unsigned iters = 5;
	struct vcpu_state s;

	tm_init_engine(&tm, jit);
	start_at(&tm, CODE);
	emit(&tm, ADDI(A1, ZERO, (int32_t)iters));
	emit(&tm, ADDI(A2, A2, 1));
	emit(&tm, SW(S2, A2, 8));
	emit(&tm, LW(A3, S2, 4));
	emit(&tm, ADD(A4, A4, A3));
	emit(&tm, LD(A5, S0, 0));	/* RAM next to the device access */
	emit(&tm, ADDI(A1, A1, -1));
	emit(&tm, BNE(A1, ZERO, -24));
	emit(&tm, ECALL);
	tm_poke64(&tm, DATA, 77);
	tm_reset(&tm, CODE, NULL);
	set_reg(&tm, S2, MMIO_BASE);
	set_reg(&tm, S0, DATA);
	s = run_to_ecall(&tm, jit);
	cr_expect_eq(tm.mmio_writes, iters, "%s", engine_name(jit));
	cr_expect_eq(tm.mmio_reg, iters, "%s", engine_name(jit));
	/* The device reads back its register plus the offset: sum of (i + 4). */
	cr_expect_eq(s.x[A4], iters * (iters + 1) / 2 + 4 * iters, "%s: %llu", engine_name(jit),
		     (unsigned long long)s.x[A4]);
	cr_expect_eq(s.x[A5], 77, "%s", engine_name(jit));
	cr_expect_eq(s.instret, 1 + 7 * iters + 1, "%s", engine_name(jit));
	tm_fini(&tm);
}

Test(rv64_jit, mmio_inside_a_block)
{
	mmio_in_block(true);
	mmio_in_block(false);
}

/*
 * A 32-bit instruction in a page's last two bytes, between translatable
 * code on both pages; run twice so the second pass finds the blocks cached.
 */
static void straddle(bool jit, bool paged)
{
	uint64_t at = CODE + PAGE - 0x14, va = (paged ? CODE_VA : CODE) + PAGE - 0x14;
	struct vcpu_state s;

	tm_init_engine(&tm, jit);
	start_at(&tm, at);
	emit(&tm, ADDI(A0, ZERO, 1));
	emit(&tm, ADDI(A0, A0, 2));
	emit(&tm, ADDI(A0, A0, 4));
	emit(&tm, ADDI(A0, A0, 8));
	emit16(&tm, C_ADDI(A0, 16));
	cr_assert_eq(tm.cursor, CODE + PAGE - 2);
	emit(&tm, ADDI(A0, A0, 32));		/* straddles */
	emit(&tm, ADDI(A0, A0, 64));
	emit(&tm, ECALL);
	if (paged)
		map_code_pages(&tm);
	for (int pass = 0; pass < 2; pass++) {
		tm_reset_satp(&tm, va, NULL, paged ? SATP_SV39 : 0);
		s = run_to_ecall(&tm, jit);
		cr_expect_eq(s.x[A0], 127, "%s%s pass %d: a0 %llu", engine_name(jit),
			     paged ? " paged" : "", pass, (unsigned long long)s.x[A0]);
		cr_expect_eq(s.instret, 8, "%s pass %d", engine_name(jit), pass);
		cr_expect_eq(s.pc, va + 0x14 + 10, "%s pass %d", engine_name(jit), pass);
	}
	tm_fini(&tm);
}

/* Also with the two pages in frames apart, so that the halves must be fetched separately. */
Test(rv64_jit, instruction_straddling_a_page)
{
	straddle(true, false);
	straddle(false, false);
	straddle(true, true);
	straddle(false, true);
}

/*
 * Straight-line code running off the end of one page into the next, the
 * first page ending in two compressed instructions, the second time in a
 * 32-bit one; a load after the boundary shows the new page's code ran.
 * Again with the pages in frames apart under Sv39.
 */
static void across_pages(bool jit, bool compressed_end, bool paged)
{
	uint64_t at = CODE + PAGE - 0x80, va = (paged ? CODE_VA : CODE) + PAGE - 0x80;
	struct vcpu_state s;
	unsigned n = 0;

	tm_init_engine(&tm, jit);
	start_at(&tm, at);
	while (tm.cursor < CODE + PAGE - 4) {
		emit(&tm, ADDI(A0, A0, 1));
		n++;
	}
	if (compressed_end) {
		emit16(&tm, C_ADDI(A0, 1));
		emit16(&tm, C_ADDI(A0, 1));
		n += 2;
	} else {
		emit(&tm, ADDI(A0, A0, 1));
		n++;
	}
	for (int i = 0; i < 16; i++, n++)
		emit(&tm, ADDI(A0, A0, 1));
	emit(&tm, LD(A1, S0, 0));
	emit(&tm, ECALL);
	tm_poke64(&tm, DATA, 0xfeed);
	if (paged)
		map_code_pages(&tm);
	for (int pass = 0; pass < 2; pass++) {
		tm_reset_satp(&tm, va, NULL, paged ? SATP_SV39 : 0);
		set_reg(&tm, S0, DATA);
		s = run_to_ecall(&tm, jit);
		cr_expect_eq(s.x[A0], n, "%s%s pass %d: a0 %llu", engine_name(jit),
			     paged ? " paged" : "", pass, (unsigned long long)s.x[A0]);
		cr_expect_eq(s.x[A1], 0xfeed, "%s pass %d", engine_name(jit), pass);
		cr_expect_eq(s.instret, n + 2, "%s pass %d", engine_name(jit), pass);
	}
	tm_fini(&tm);
}

Test(rv64_jit, block_runs_off_a_page_end_into_the_next)
{
	for (int paged = 0; paged < 2; paged++) {
		across_pages(true, true, paged);
		across_pages(true, false, paged);
		across_pages(false, true, paged);
		across_pages(false, false, paged);
	}
}

/* JALR and C.JALR whose destination register is also the base: the base is read first. */
static void jalr_same_reg(bool jit)
{
	struct vcpu_state s;

	tm_init_engine(&tm, jit);
	start_at(&tm, CODE);
	emit(&tm, AUIPC(T0, 0));		/* 0x00 */
	emit(&tm, JALR(T0, T0, 17));		/* 0x04: to 0x10 (bit 0 dropped); t0 = 0x08 */
	emit(&tm, ADDI(A0, ZERO, 1));		/* 0x08: skipped */
	emit(&tm, ECALL);			/* 0x0c: skipped */
	emit(&tm, AUIPC(RA, 0));		/* 0x10 */
	emit(&tm, ADDI(RA, RA, 14));		/* 0x14: ra = 0x1e */
	emit16(&tm, C_JALR(RA));		/* 0x18: ra = 0x1a */
	emit(&tm, ADDI(A1, ZERO, 1));		/* 0x1a: skipped */
	emit16(&tm, C_NOP);			/* 0x1e */
	emit(&tm, ECALL);			/* 0x20 */
	for (int pass = 0; pass < 2; pass++) {
		tm_reset(&tm, CODE, NULL);
		s = run_to_ecall(&tm, jit);
		cr_expect_eq(s.x[T0], CODE + 0x08, "%s pass %d: t0 %#llx", engine_name(jit), pass,
			     (unsigned long long)s.x[T0]);
		cr_expect_eq(s.x[RA], CODE + 0x1a, "%s pass %d: ra %#llx", engine_name(jit), pass,
			     (unsigned long long)s.x[RA]);
		cr_expect_eq(s.x[A0], 0, "%s pass %d", engine_name(jit), pass);
		cr_expect_eq(s.x[A1], 0, "%s pass %d", engine_name(jit), pass);
		cr_expect_eq(s.pc, CODE + 0x24, "%s pass %d", engine_name(jit), pass);
		cr_expect_eq(s.instret, 7, "%s pass %d", engine_name(jit), pass);
	}
	tm_fini(&tm);
}

Test(rv64_jit, jalr_with_rd_equal_to_rs1)
{
	jalr_same_reg(true);
	jalr_same_reg(false);
}

/* A pause: kicked, the hart leaves its next run at once. */
static void pause_hart(struct tmachine *t)
{
	struct vcpu_exit e = { 0 };

	t->ops->vcpu_kick(t->cpu);
	cr_assert_eq(t->ops->vcpu_run(t->cpu, &e), 0);
	cr_assert_eq(e.reason, VCPU_EXIT_KICK);
}

/*
 * A subroutine runs (and is translated) three times; the program then
 * rewrites its second instruction with an ordinary store, no FENCE.I, and
 * calls it again: the new instruction must run. A first store to the code
 * page would warm the write TLB for the rewriting store, if the translator
 * let it keep an entry for a page it took code from. Then the same with
 * compressed code and a halfword
 * store, and with the test thread rewriting code while the hart is paused.
 */
static void rewrite_later_block(bool jit)
{
	uint64_t sub = CODE + 0x100, csub = CODE + 0x180;
	struct vcpu_state s;

	tm_init_engine(&tm, jit);
	start_at(&tm, sub);
	emit(&tm, ADDI(A0, A0, 1));
	emit(&tm, ADDI(A0, A0, 2));		/* rewritten to += 100 */
	emit(&tm, JALR(ZERO, RA, 0));
	start_at(&tm, csub);
	emit16(&tm, C_ADDI(A1, 1));
	emit16(&tm, C_ADDI(A1, 2));		/* rewritten to += 20 */
	emit16(&tm, C_JR(RA));
	start_at(&tm, CODE);
	emit(&tm, ADDI(T1, ZERO, 3));
	emit(&tm, JAL(RA, 0x100 - 4));		/* 0x04: loop calling sub */
	emit(&tm, JAL(RA, 0x180 - 8));		/* 0x08: and csub */
	emit(&tm, ADDI(T1, T1, -1));
	emit(&tm, BNE(T1, ZERO, -12));
	emit(&tm, SD(S3, ZERO, 0x400));		/* 0x14: warms the write TLB for this page */
	emit(&tm, SW(S1, S2, 4));		/* 0x18 */
	emit(&tm, SH(S4, S5, 2));		/* 0x1c */
	emit(&tm, JAL(RA, 0x100 - 0x20));	/* 0x20 */
	emit(&tm, JAL(RA, 0x180 - 0x24));	/* 0x24 */
	emit(&tm, ECALL);			/* 0x28 */
	emit(&tm, JAL(RA, 0x100 - 0x2c));	/* 0x2c: after the host's rewrite */
	emit(&tm, ECALL);
	tm_reset(&tm, CODE, NULL);
	set_reg(&tm, S1, sub);
	set_reg(&tm, S2, ADDI(A0, A0, 100));
	set_reg(&tm, S3, CODE);
	set_reg(&tm, S4, csub);
	set_reg(&tm, S5, C_ADDI(A1, 20));
	s = run_to_ecall(&tm, jit);
	cr_expect_eq(s.x[A0], 3 * 3 + 1 + 100, "%s: a0 %llu", engine_name(jit),
		     (unsigned long long)s.x[A0]);
	cr_expect_eq(s.x[A1], 3 * 3 + 1 + 20, "%s: a1 %llu", engine_name(jit),
		     (unsigned long long)s.x[A1]);
	/*
	 * The test thread, as a device or a debugger would while the hart is
	 * paused, rewrites the first instruction; the hart runs it without a
	 * fence.
	 */
	pause_hart(&tm);
	memcpy(tm_host(&tm, sub), &(uint32_t){ ADDI(A0, A0, 1000) }, 4);
	s = run_to_ecall(&tm, jit);
	cr_expect_eq(s.x[A0], 110 + 1000 + 100, "%s: a0 %llu after the host's rewrite",
		     engine_name(jit), (unsigned long long)s.x[A0]);
	tm_fini(&tm);
}

Test(rv64_jit, store_rewriting_a_later_block_is_seen_without_fence_i)
{
	rewrite_later_block(true);
	rewrite_later_block(false);
}

/*
 * Every time round, the loop stores a new immediate into a subroutine and
 * calls it: each call finds its cached translation stale. Enough rounds
 * translate far more code than the translator's buffer holds, so it also
 * starts over (several times) on the way.
 */
/*
 * Runs the code at start with a1 = rounds, s4 = the addi whose immediate
 * each round rewrites to a1 & 0x7ff, s5 = its address: a0 must come out as
 * the sum of those, instret as per_round a round and the ECALL.
 */
static void expect_rewritten_sum(bool jit, uint64_t start, uint64_t addi_at, unsigned rounds,
				 unsigned per_round)
{
	uint64_t want = 0;
	struct vcpu_state s;

	tm_reset(&tm, start, NULL);
	set_reg(&tm, A1, rounds);
	set_reg(&tm, S4, ADDI(A0, A0, 0));
	set_reg(&tm, S5, addi_at);
	for (uint64_t i = rounds; i; i--)
		want += i & 0x7ff;
	s = run_to_ecall(&tm, jit);
	cr_expect_eq(s.x[A0], want, "%s: a0 %llu, want %llu", engine_name(jit),
		     (unsigned long long)s.x[A0], (unsigned long long)want);
	cr_expect_eq(s.instret, (uint64_t)per_round * rounds + 1, "%s: instret %llu",
		     engine_name(jit), (unsigned long long)s.instret);
	tm_fini(&tm);
}

static void rewrite_every_round(bool jit, unsigned rounds)
{
	uint64_t sub = CODE + 0x200;

	tm_init_engine(&tm, jit);
	start_at(&tm, sub);
	emit(&tm, ADDI(A0, A0, 0));		/* the immediate changes */
	emit(&tm, XOR(A2, A2, A0));
	emit(&tm, JALR(ZERO, RA, 0));
	start_at(&tm, CODE);
	emit(&tm, ANDI(T1, A1, 0x7ff));		/* L */
	emit(&tm, SLLI(T1, T1, 20));
	emit(&tm, OR(T1, T1, S4));
	emit(&tm, SW(S5, T1, 0));
	emit(&tm, JAL(RA, 0x200 - 0x10));
	emit(&tm, ADDI(A1, A1, -1));
	emit(&tm, BNE(A1, ZERO, -24));
	emit(&tm, ECALL);
	expect_rewritten_sum(jit, CODE, sub, rounds, 10);
}

/*
 * A loop laid out as -Os code does: its head, then a jump back to its
 * body before it in the page, whose branch goes forward to the head. The
 * head's block follows the jump, so its code spans both; the head
 * rewrites the body's immediate every round, and the block must see it.
 */
static void rewrite_behind_a_followed_jump(bool jit, unsigned rounds)
{
	uint64_t body = CODE + 0x100, head = CODE + 0x200;

	tm_init_engine(&tm, jit);
	start_at(&tm, body);
	emit(&tm, ADDI(A0, A0, 0));		/* the immediate changes */
	emit(&tm, BNE(A1, ZERO, (int32_t)(head - (body + 4))));
	emit(&tm, ECALL);
	start_at(&tm, head);
	emit(&tm, ANDI(T1, A1, 0x7ff));
	emit(&tm, SLLI(T1, T1, 20));
	emit(&tm, OR(T1, T1, S4));
	emit(&tm, SW(S5, T1, 0));
	emit(&tm, ADDI(A1, A1, -1));
	emit(&tm, JAL(ZERO, (int32_t)(body - (head + 20))));
	expect_rewritten_sum(jit, head, body, rounds, 8);
}

Test(rv64_jit, code_behind_a_followed_jump_rewritten_every_round)
{
	rewrite_behind_a_followed_jump(true, 3000);
	rewrite_behind_a_followed_jump(false, 3000);
}

Test(rv64_jit, code_rewritten_every_round_and_cache_refilled)
{
	/*
	 * A stale block's retranslation takes ~400 bytes and a stamp: 300000
	 * of them use up the 131072 stamps (and 50 MB of the 64 MiB buffer),
	 * so the buffer is emptied and filled again on the way.
	 */
	rewrite_every_round(true, 300000);
	rewrite_every_round(false, 300000);
}

/*
 * Two subroutines 64 KiB apart share an entry of the translator's lookup
 * table and evict each other from it every round; one of them is rewritten
 * every other round. A block brought back from behind the table must still
 * be checked against the code as it is now.
 */
static void table_sharers(bool jit, unsigned rounds)
{
	uint64_t sub_a = CODE + 0x200, sub_b = CODE + 0x10200, want = 0, imm = 0, odd = 0;
	struct vcpu_state s;

	tm_init_engine(&tm, jit);
	start_at(&tm, sub_a);
	emit(&tm, ADDI(A0, A0, 0));		/* the immediate changes */
	emit(&tm, XOR(A2, A2, A0));
	emit(&tm, JALR(ZERO, RA, 0));
	start_at(&tm, sub_b);
	emit(&tm, ADDI(A3, A3, 1));
	emit(&tm, JALR(ZERO, RA, 0));
	start_at(&tm, CODE);
	emit(&tm, ANDI(T2, A1, 1));		/* L */
	emit(&tm, BEQ(T2, ZERO, 20));
	emit(&tm, ANDI(T1, A1, 0x7ff));
	emit(&tm, SLLI(T1, T1, 20));
	emit(&tm, OR(T1, T1, S4));
	emit(&tm, SW(S5, T1, 0));
	emit(&tm, JAL(RA, 0x200 - 24));
	emit(&tm, JAL(RA, 0x10200 - 28));
	emit(&tm, ADDI(A1, A1, -1));
	emit(&tm, BNE(A1, ZERO, -36));
	emit(&tm, ECALL);
	tm_reset(&tm, CODE, NULL);
	set_reg(&tm, A1, rounds);
	set_reg(&tm, S4, ADDI(A0, A0, 0));
	set_reg(&tm, S5, sub_a);
	for (uint64_t i = rounds; i; i--) {
		if (i & 1) {
			imm = i & 0x7ff;
			odd++;
		}
		want += imm;
	}
	s = run_to_ecall(&tm, jit);
	cr_expect_eq(s.x[A0], want, "%s: a0 %llu, want %llu", engine_name(jit),
		     (unsigned long long)s.x[A0], (unsigned long long)want);
	cr_expect_eq(s.x[A3], rounds, "%s: the other one ran %llu times", engine_name(jit),
		     (unsigned long long)s.x[A3]);
	cr_expect_eq(s.instret, 11ull * rounds + 4 * odd + 1, "%s: instret %llu",
		     engine_name(jit), (unsigned long long)s.instret);
	tm_fini(&tm);
}

Test(rv64_jit, blocks_sharing_a_table_entry_and_one_rewritten)
{
	table_sharers(true, 5000);
	table_sharers(false, 5000);
}

struct spinner {
	struct tmachine *tm;
	struct vcpu_exit exit;
	int ret;
	bool done;
};

static void *spin(void *arg)
{
	struct spinner *sp = arg;

	sp->ret = sp->tm->ops->vcpu_run(sp->tm->cpu, &sp->exit);
	__atomic_store_n(&sp->done, true, __ATOMIC_RELEASE);
	return NULL;
}

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

/* An endless loop of chained translated blocks still returns promptly on a kick. */
static void kick_loop(bool jit)
{
	struct spinner sp = { .tm = &tm };
	struct vcpu_state s;
	pthread_t t;
	int64_t kicked;

	tm_init_engine(&tm, jit);
	start_at(&tm, CODE);
	emit(&tm, ADDI(A0, A0, 1));		/* L */
	emit(&tm, SD(S0, A0, 0));
	emit(&tm, JAL(ZERO, -8));
	tm_reset(&tm, CODE, NULL);
	set_reg(&tm, S0, DATA);
	cr_assert_eq(pthread_create(&t, NULL, spin, &sp), 0);
	/* Let it run: wait until the guest has gone round plenty of times. */
	for (int64_t until = now_ns() + 5000000000ll; now_ns() < until;) {
		if (__atomic_load_n((uint64_t *)tm_host(&tm, DATA), __ATOMIC_RELAXED) > 100000)
			break;
		usleep(1000);
	}
	kicked = now_ns();
	tm.ops->vcpu_kick(tm.cpu);
	while (!__atomic_load_n(&sp.done, __ATOMIC_ACQUIRE) && now_ns() - kicked < 2000000000ll)
		usleep(100);
	cr_assert(__atomic_load_n(&sp.done, __ATOMIC_ACQUIRE),
		  "%s: still running 2 s after the kick", engine_name(jit));
	pthread_join(t, NULL);
	cr_expect_lt(now_ns() - kicked, 500000000ll, "%s: slow to stop", engine_name(jit));
	cr_assert_eq(sp.ret, 0);
	cr_expect_eq(sp.exit.reason, VCPU_EXIT_KICK, "%s", engine_name(jit));
	s = tm_state(&tm);
	cr_expect_gt(s.x[A0], 100000, "%s: ran %llu rounds", engine_name(jit),
		     (unsigned long long)s.x[A0]);
	/* It stopped between two instructions: instret says exactly which. */
	if (s.pc == CODE)
		cr_expect_eq(s.instret, 3 * s.x[A0], "%s", engine_name(jit));
	else if (s.pc == CODE + 4)
		cr_expect_eq(s.instret, 3 * s.x[A0] - 2, "%s", engine_name(jit));
	else
		cr_expect_eq(s.instret, 3 * s.x[A0] - 1, "%s: pc %#llx", engine_name(jit),
			     (unsigned long long)s.pc);
	cr_expect_eq(tm_peek64(&tm, DATA), s.x[A0] - (s.pc == CODE + 4), "%s", engine_name(jit));
	tm_fini(&tm);
}

Test(rv64_jit, kick_stops_an_endless_loop_promptly)
{
	kick_loop(true);
	kick_loop(false);
}

/* A long loop of mixed instructions: same state and counters as interpreted, and as counted. */
static struct vcpu_state long_loop(bool jit, unsigned iters)
{
	struct vcpu_state s;

	tm_init_engine(&tm, jit);
	start_at(&tm, CODE);
	emit(&tm, LW(A2, S0, 0));		/* L: 11 instructions */
	emit(&tm, ADD(A3, A3, A2));
	emit(&tm, MUL(A4, A3, A1));
	emit16(&tm, C_ADDI(A0, 3));
	emit16(&tm, c_cb_alu(0, A5, 7));	/* c.srli a5, 7 */
	emit(&tm, SD(S0, A4, 8));
	emit(&tm, XOR(A5, A5, A4));
	emit(&tm, SRLI(A6, A5, 3));
	emit(&tm, SW(S0, A6, 1));		/* misaligned, rewrites what lw reads */
	emit(&tm, ADDI(A1, A1, -1));
	emit(&tm, BNE(A1, ZERO, -36));
	emit(&tm, CSRR(A7, CSR_INSTRET));
	emit(&tm, CSRR(T0, CSR_CYCLE));
	emit(&tm, ECALL);
	tm_reset(&tm, CODE, NULL);
	set_reg(&tm, S0, DATA);
	set_reg(&tm, A1, iters);
	s = run_to_ecall(&tm, jit);
	cr_expect_eq(s.x[A7], 11ull * iters, "%s", engine_name(jit));
	cr_expect_eq(s.x[T0], 11ull * iters + 1, "%s", engine_name(jit));
	cr_expect_eq(s.instret, 11ull * iters + 3, "%s", engine_name(jit));
	cr_expect_eq(s.x[A0], 3ull * iters, "%s", engine_name(jit));
	tm_fini(&tm);
	return s;
}

Test(rv64_jit, long_loop_counts_like_the_interpreter)
{
	struct vcpu_state a = long_loop(true, 300000), b = long_loop(false, 300000);

	for (unsigned r = 0; r < 32; r++)
		cr_expect_eq(a.x[r], b.x[r], "x%u: %#llx vs %#llx", r, (unsigned long long)a.x[r],
			     (unsigned long long)b.x[r]);
	cr_expect_eq(a.instret, b.instret);
	cr_expect_eq(a.cycle, b.cycle);
	cr_expect_eq(a.pc, b.pc);
}

/*
 * By default the dispatcher interprets code the first time it meets it
 * and translates it the second: straight-line code run once is not
 * translated, run again it is, and a loop's body is from the second time
 * the way back reaches it; with CLOISTER_JIT=eager all of it is
 * translated at once. The results are the same every way.
 */
static uint64_t sight_run(const char *env, unsigned runs, uint64_t *ret_a0)
{
	tm_init_env(&tm, env);
	cr_assert_not_null(tm.cpu->jit, "no translator on this hart");
	tm_trap_to_ecall(&tm);
	start_at(&tm, CODE);
	emit(&tm, ADDI(A0, A0, 5));
	emit(&tm, SLLI(A0, A0, 3));
	emit(&tm, XOR(A0, A0, A1));
	emit(&tm, ADDI(A1, A1, -1));		/* L: 3 instructions a round */
	emit(&tm, ADD(A0, A0, A1));
	emit(&tm, BNE(A1, ZERO, -8));
	emit(&tm, ECALL);
	for (unsigned i = 0; i < runs; i++) {
		tm_reset(&tm, CODE, NULL);
		set_reg(&tm, A1, i == 0 ? 1 : 100);
		*ret_a0 = run_to_ecall(&tm, true).x[A0];
	}
	return rv64_jit_insns(tm.cpu->jit);
}

Test(rv64_jit, code_translated_at_its_second_sight)
{
	uint64_t a0_once, a0_again, a0_eager, once, again, eager;

	/* One round of the loop: every pc met once. */
	once = sight_run(NULL, 1, &a0_once);
	cr_expect_eq(once, 0, "%llu instructions translated at first sight", (unsigned long long)once);
	cr_expect_eq(a0_once, (5ull << 3) ^ 1);
	tm_fini(&tm);
	/*
	 * Then 100 rounds: the straight start is met again (the first
	 * round); L, met by the way back, is translated from round 3 on.
	 */
	again = sight_run(NULL, 2, &a0_again);
	cr_expect_geq(again, 3 + 3 * 98, "%llu instructions translated", (unsigned long long)again);
	tm_fini(&tm);
	eager = sight_run("eager", 1, &a0_eager);
	cr_expect_gt(eager, 0, "eager: %llu instructions translated", (unsigned long long)eager);
	tm_fini(&tm);
	cr_expect_eq(a0_again, ((5ull << 3) ^ 100) + 99 * 100 / 2);
}

/*
 * Floating-point instructions trapping in the middle of a block: the FPU
 * off (FS = 0) for a 32-bit and for a compressed one, whose stval must be
 * the 16 bits the guest wrote, as for any illegal compressed instruction;
 * and a load from nowhere. The instructions before retire, the trapping
 * one does not, and the trap reports the instruction's own pc.
 */
static void fp_trap(bool jit, uint32_t insn, unsigned len, uint64_t fs, uint64_t cause,
		    uint64_t tval)
{
	struct vcpu_state s;

	tm_init_engine(&tm, jit);
	start_at(&tm, CODE);
	emit(&tm, ADDI(A0, A0, 1));
	emit(&tm, ADDI(A0, A0, 2));
	if (len == 2)
		emit16(&tm, (uint16_t)insn);
	else
		emit(&tm, insn);
	emit(&tm, ADDI(A0, A0, 4));
	emit(&tm, ECALL);
	tm_reset(&tm, CODE, NULL);
	set_reg(&tm, S0, DATA);
	set_reg(&tm, A1, 0x40000000);
	s = tm_state(&tm);
	s.sstatus = fs << 13;
	cr_assert_eq(tm.ops->vcpu_set_state(tm.cpu, &s), 0);
	tm_run_to_ecall(&tm);
	s = tm_state(&tm);
	cr_expect_eq(s.scause, cause, "%s %#x: scause %llu", engine_name(jit), insn,
		     (unsigned long long)s.scause);
	cr_expect_eq(s.stval, tval, "%s %#x: stval %#llx, want %#llx", engine_name(jit), insn,
		     (unsigned long long)s.stval, (unsigned long long)tval);
	cr_expect_eq(s.sepc, CODE + 8, "%s %#x: sepc %#llx", engine_name(jit), insn,
		     (unsigned long long)s.sepc);
	cr_expect_eq(s.x[A0], 3, "%s %#x", engine_name(jit), insn);
	/* addi, addi, the trap (a cycle, no instret), the handler's ecall */
	cr_expect_eq(s.instret, 3, "%s %#x: instret %llu", engine_name(jit), insn,
		     (unsigned long long)s.instret);
	cr_expect_eq(s.cycle, 4, "%s %#x: cycle %llu", engine_name(jit), insn,
		     (unsigned long long)s.cycle);
	tm_fini(&tm);
}

Test(rv64_jit, fp_trap_in_mid_block)
{
	const uint32_t fld = enc_i(0x07, 8, 3, S0, 0), fld_nowhere = enc_i(0x07, 8, 3, A1, 0);
	const uint16_t c_fld = c_mem_d(1, S0, 8, 0);	/* c.fld f8, 0(s0) */

	for (int jit = 1; jit >= 0; jit--) {
		fp_trap(jit, fld, 4, 0, CAUSE_ILLEGAL_INSN, fld);
		fp_trap(jit, c_fld, 2, 0, CAUSE_ILLEGAL_INSN, c_fld);
		fp_trap(jit, fld_nowhere, 4, 1, CAUSE_LOAD_ACCESS, 0x40000000);
	}
}

/*
 * A store rewriting a later instruction of the block it sits in, with no
 * FENCE.I: RISC-V leaves open whether it is seen, and both engines see it.
 * The interpreter checks the bits at every fetch; the translator's hart
 * keeps no write TLB entry for a page it took code from, so the store
 * leaves the block through the interpreter and what follows is checked
 * again. The instructions after it run translated: the proof that the
 * translator was there at all.
 */
Test(rv64_jit, same_block_rewrite_is_seen_by_both_engines)
{
	for (int jit = 1; jit >= 0; jit--) {
		struct vcpu_state s;

		tm_init_engine(&tm, jit);
		start_at(&tm, CODE);
		emit(&tm, SD(S0, ZERO, 0x400));	/* 0x00: a store to this page */
		emit(&tm, SW(S0, S2, 0x0c));	/* 0x04: rewrites 0x0c */
		emit(&tm, ADDI(A2, A2, 1));	/* 0x08 */
		emit(&tm, ADDI(A0, ZERO, 1));	/* 0x0c: becomes addi a0, zero, 2 */
		emit(&tm, ECALL);
		tm_reset(&tm, CODE, NULL);
		set_reg(&tm, S0, CODE);
		set_reg(&tm, S2, ADDI(A0, ZERO, 2));
		s = run_to_ecall(&tm, jit);
		cr_expect_eq(s.x[A0], 2, "%s: a0 %llu", engine_name(jit),
			     (unsigned long long)s.x[A0]);
		cr_expect_eq(s.instret, 5, "%s", engine_name(jit));
		if (jit)
			cr_expect_geq(rv64_jit_insns(tm.cpu->jit), 2, "nothing ran translated");
		tm_fini(&tm);
	}
}

/*
 * Once rv64_jit_prepare() has run, the process may be confined, so a hart
 * beyond the prepared buffers gets no translator (the interpreter runs it)
 * instead of mapping executable memory of its own; a buffer given back is
 * taken again.
 */
Test(rv64_jit, harts_beyond_the_prepared_buffers_are_interpreted)
{
	struct rv64_jit *a = NULL, *b = NULL, *c = NULL;

	setenv("CLOISTER_JIT", "1", 1);
	cr_assert_eq(rv64_jit_prepare(1), 0);
	cr_assert_eq(rv64_jit_create(&a), 0);
	cr_assert_not_null(a);
	cr_assert_eq(rv64_jit_create(&b), -ENOMEM);
	rv64_jit_destroy(a);
	cr_assert_eq(rv64_jit_create(&c), 0, "a buffer given back is not taken again");
	rv64_jit_destroy(c);
}

/*
 * Registers the translator keeps in host registers (a0-a5, sp, s0) live
 * across a division and a population count (calls into C), FP helpers
 * that read them (fcvt.d.l) and write them (fcvt.l.d, fmv.x.d), a device
 * store (the interpreter runs it), and a load that faults: the device and
 * the trap must see them exact, and the faulting load must leave its
 * destination (a5) as it was.
 */
static void cached_registers(bool jit)
{
	const unsigned iters = 3;
	struct vcpu_state s;
	uint64_t a5 = 100, sp = 0x80001000, a4 = 0, a1 = 0, a2 = 0;

	tm_init_engine(&tm, jit);
	start_at(&tm, CODE);
	emit(&tm, ADDI(A3, ZERO, 3));
	emit(&tm, ADDI(T1, ZERO, (int32_t)iters));
	emit(&tm, ADDI(A5, A5, 7));			/* loop: 12 a time */
	emit(&tm, ADDI(SP, SP, -16));
	emit(&tm, DIV(A4, A5, A3));
	emit(&tm, enc_r(0x53, 1, 0, A4, 2, 0x69));	/* fcvt.d.l f1, a4 */
	emit(&tm, enc_r(0x53, S0, 1, 1, 2, 0x61));	/* fcvt.l.d s0, f1, rtz */
	emit(&tm, enc_r(0x53, A0, 0, 1, 0, 0x71));	/* fmv.x.d a0, f1 */
	emit(&tm, CPOP(A1, A5));
	emit(&tm, ADD(A2, A2, A1));
	emit(&tm, SW(S2, A5, 8));			/* the device */
	emit(&tm, ADDI(T1, T1, -1));
	emit(&tm, ADD(A0, A0, ZERO));
	emit(&tm, BNE(T1, ZERO, -44));
	emit(&tm, LD(A5, S1, 0));			/* nothing there: a load access fault */
	emit(&tm, ECALL);
	tm_reset(&tm, CODE, NULL);
	tm_trap_to_ecall(&tm);
	set_reg(&tm, S2, MMIO_BASE);
	set_reg(&tm, S1, 0x40000000);
	set_reg(&tm, A5, a5);
	set_reg(&tm, SP, sp);
	s = tm_state(&tm);
	s.sstatus = 1ull << 13;				/* FS initial: the FPU on */
	cr_assert_eq(tm.ops->vcpu_set_state(tm.cpu, &s), 0);
	for (unsigned i = 0; i < iters; i++) {
		a5 += 7;
		sp -= 16;
		a4 = a5 / 3;
		a1 = (uint64_t)__builtin_popcountll(a5);
		a2 += a1;
	}
	tm_run_to_ecall(&tm);
	s = tm_state(&tm);
	cr_expect_eq(s.scause, CAUSE_LOAD_ACCESS, "%s: scause %llu", engine_name(jit),
		     (unsigned long long)s.scause);
	cr_expect_eq(s.sepc, CODE + 4 * 14, "%s: sepc %#llx", engine_name(jit),
		     (unsigned long long)s.sepc);
	cr_expect_eq(s.x[A5], a5, "%s: a5 %llu", engine_name(jit), (unsigned long long)s.x[A5]);
	cr_expect_eq(s.x[SP], sp, "%s: sp %#llx", engine_name(jit), (unsigned long long)s.x[SP]);
	cr_expect_eq(s.x[A4], a4, "%s: a4", engine_name(jit));
	cr_expect_eq(s.x[S0], a4, "%s: s0 %llu", engine_name(jit), (unsigned long long)s.x[S0]);
	{
		double d = (double)a4;
		uint64_t bits;

		memcpy(&bits, &d, 8);
		cr_expect_eq(s.x[A0], bits, "%s: a0 %#llx", engine_name(jit),
			     (unsigned long long)s.x[A0]);
	}
	cr_expect_eq(s.x[A1], a1, "%s: a1", engine_name(jit));
	cr_expect_eq(s.x[A2], a2, "%s: a2 %llu", engine_name(jit), (unsigned long long)s.x[A2]);
	cr_expect_eq(s.x[A3], 3, "%s", engine_name(jit));
	cr_expect_eq(tm.mmio_writes, iters, "%s", engine_name(jit));
	cr_expect_eq(tm.mmio_reg, a5, "%s: the device saw %llu", engine_name(jit),
		     (unsigned long long)tm.mmio_reg);
	/* 2 + 12 a time, the faulting load (a cycle, no instret), the handler's ecall */
	cr_expect_eq(s.instret, 2 + 12 * iters + 1, "%s: instret %llu", engine_name(jit),
		     (unsigned long long)s.instret);
	cr_expect_eq(s.cycle, s.instret + 1, "%s: cycle %llu", engine_name(jit),
		     (unsigned long long)s.cycle);
	tm_fini(&tm);
}

Test(rv64_jit, cached_registers_exact_across_calls_devices_and_traps)
{
	cached_registers(true);
	cached_registers(false);
}

/*
 * Each instruction reading the one before's result, from registers kept
 * in memory (t3-t5) and in host registers (a5), then as a load's base:
 * the translator takes such a result from where it left it.
 */
static void result_chain(bool jit)
{
	struct vcpu_state s;

	tm_init_engine(&tm, jit);
	tm_poke64(&tm, DATA + 72, 1000);
	start_at(&tm, CODE);
	emit(&tm, ADDI(T3, ZERO, 5));
	emit(&tm, SLLI(T3, T3, 3));		/* 40 */
	emit(&tm, ADD(A5, T3, T3));		/* 80 */
	emit(&tm, ADDI(A5, A5, -8));		/* 72 */
	emit(&tm, ADD(A5, S0, A5));		/* DATA + 72 */
	emit(&tm, LD(T5, A5, 0));		/* 1000 */
	emit(&tm, ADDI(T5, T5, 1));
	emit(&tm, SUB(T4, T5, T3));		/* 961 */
	emit(&tm, ADDI(T4, T4, 1));
	emit(&tm, ADDI(A6, A5, -8));		/* a6 as a base: r12 in the translator */
	emit(&tm, LD(T6, A6, 8));
	emit(&tm, SD(A6, T6, 16));
	emit(&tm, ADDI(A7, A6, 8));		/* a7 as a base: rbp in the translator */
	emit(&tm, LD(T6, A7, 8));
	emit(&tm, ECALL);
	tm_reset(&tm, CODE, NULL);
	set_reg(&tm, S0, DATA);
	s = run_to_ecall(&tm, jit);
	cr_expect_eq(s.x[T3], 40, "%s", engine_name(jit));
	cr_expect_eq(s.x[A5], DATA + 72, "%s", engine_name(jit));
	cr_expect_eq(s.x[T5], 1001, "%s: %llu", engine_name(jit), (unsigned long long)s.x[T5]);
	cr_expect_eq(s.x[T4], 962, "%s: %llu", engine_name(jit), (unsigned long long)s.x[T4]);
	cr_expect_eq(s.x[T6], 1000, "%s: %llu", engine_name(jit), (unsigned long long)s.x[T6]);
	cr_expect_eq(tm_peek64(&tm, DATA + 80), 1000, "%s", engine_name(jit));
	tm_fini(&tm);
}

Test(rv64_jit, each_instruction_using_the_result_before)
{
	result_chain(true);
	result_chain(false);
}

static uint64_t dbits(double d)
{
	uint64_t v;

	memcpy(&v, &d, 8);
	return v;
}

#define FUSED(op, rd, rs1, rs2, rs3, rm) \
	((uint32_t)(rs3) << 27 | 1u << 25 | (uint32_t)(rs2) << 20 | (uint32_t)(rs1) << 15 | \
	 (uint32_t)(rm) << 12 | (uint32_t)(rd) << 7 | (op))

/*
 * The double operations the translator runs in place when they cannot
 * raise a new flag (fused multiply-add, square root, sign injection,
 * moves, exact conversions from integers, compares without a NaN), with
 * fcsr starting at fcsr_in; each case that can raise one (an underflow, an
 * inexact conversion, a NaN compare) must still raise it.
 */
static struct vcpu_state fp_inline_run(bool jit, uint64_t fcsr_in)
{
	struct vcpu_state s;

	tm_init_engine(&tm, jit);
	start_at(&tm, CODE);
	emit(&tm, FUSED(0x43, 10, 1, 2, 3, 7));		/* fmadd.d f10, f1, f2, f3, dyn */
	emit(&tm, FUSED(0x47, 11, 1, 2, 3, 0));		/* fmsub.d */
	emit(&tm, FUSED(0x4b, 12, 1, 2, 3, 0));		/* fnmsub.d */
	emit(&tm, FUSED(0x4f, 13, 1, 2, 3, 0));		/* fnmadd.d */
	emit(&tm, FUSED(0x43, 14, 7, 7, 0, 0));		/* 1e-200 squared: underflow */
	emit(&tm, enc_r(0x53, 15, 0, 2, 0, 0x2d));	/* fsqrt.d f15, f2 */
	emit(&tm, enc_r(0x53, 16, 0, 1, 4, 0x11));	/* fsgnj.d f16, f1, f4 */
	emit(&tm, enc_r(0x53, 17, 1, 1, 4, 0x11));	/* fsgnjn.d */
	emit(&tm, enc_r(0x53, 18, 2, 4, 4, 0x11));	/* fsgnjx.d */
	emit(&tm, enc_r(0x53, A5, 0, 1, 0, 0x71));	/* fmv.x.d a5, f1 */
	emit(&tm, enc_r(0x53, 19, 0, A4, 0, 0x79));	/* fmv.d.x f19, a4 */
	emit(&tm, enc_r(0x53, A7, 0, 2, 0, 0x70));	/* fmv.x.w a7, f2 */
	emit(&tm, enc_r(0x53, 20, 0, A4, 0, 0x78));	/* fmv.w.x f20, a4 */
	emit(&tm, enc_r(0x53, 21, 7, A4, 2, 0x69));	/* fcvt.d.l f21, a4 */
	emit(&tm, enc_r(0x53, 22, 1, A2, 0, 0x69));	/* fcvt.d.w f22, a2 */
	emit(&tm, enc_r(0x53, 23, 0, A1, 3, 0x69));	/* fcvt.d.lu f23, a1: inexact */
	emit(&tm, enc_r(0x53, A0, 1, 1, 2, 0x51));	/* flt.d a0, f1, f2 */
	emit(&tm, enc_r(0x53, A3, 0, 2, 2, 0x51));	/* fle.d a3, f2, f2 */
	emit(&tm, enc_r(0x53, T3, 2, 5, 5, 0x51));	/* feq.d t3, f5, f5: a NaN, quiet */
	emit(&tm, enc_r(0x53, A6, 1, 5, 1, 0x51));	/* flt.d a6, f5, f1: NV */
	emit(&tm, enc_r(0x53, T4, 1, 1, 2, 0x61));	/* fcvt.l.d t4, f1, rtz */
	emit(&tm, enc_r(0x53, T5, 0, 4, 0, 0x61));	/* fcvt.w.d t5, f4 */
	emit(&tm, enc_r(0x53, T6, 1, 8, 0, 0x61));	/* fcvt.w.d t6, f8 (3e9), rtz: NV */
	emit(&tm, enc_r(0x53, S1, 7, 9, 2, 0x61));	/* fcvt.l.d s1, f9 (-2.5), dyn */
	emit(&tm, enc_r(0x53, 27, 0, 26, 24, 0x00));	/* fadd.s f27, f26 (not boxed), f24 */
	emit(&tm, enc_r(0x53, 28, 0, 24, 25, 0x08));	/* fmul.s f28, f24, f25 */
	emit(&tm, enc_r(0x53, 29, 7, 25, 24, 0x0c));	/* fdiv.s f29, f25, f24 */
	emit(&tm, enc_r(0x53, 30, 0, 25, 0, 0x2c));	/* fsqrt.s f30, f25 */
	emit(&tm, (FUSED(0x43, 31, 24, 25, 24, 0) & ~(3u << 25)));	/* fmadd.s */
	emit(&tm, enc_r(0x53, 6, 0, 24, 25, 0x04));	/* fsub.s f6, f24, f25 */
	emit(&tm, ECALL);
	tm_reset(&tm, CODE, NULL);
	s = tm_state(&tm);
	s.f[0] = 0;
	s.f[1] = dbits(1.1);
	s.f[2] = dbits(2.5);
	s.f[3] = dbits(-0.3);
	s.f[4] = dbits(-7.0);
	s.f[5] = 0x7ff8000000000000ull;
	s.f[7] = dbits(1e-200);
	s.f[8] = dbits(3e9);
	s.f[9] = dbits(-2.5);
	s.f[24] = 0xffffffff3fc00000ull;		/* 1.5f */
	s.f[25] = 0xffffffff40100000ull;		/* 2.25f */
	s.f[26] = 0x000000003fc00000ull;		/* 1.5f, not NaN-boxed */
	s.x[A4] = (uint64_t)-123456789;
	s.x[A2] = (uint64_t)-5;
	s.x[A1] = (1ull << 60) + 1;
	s.fcsr = fcsr_in;
	s.sstatus = 1ull << 13;
	cr_assert_eq(tm.ops->vcpu_set_state(tm.cpu, &s), 0);
	s = run_to_ecall(&tm, jit);
	tm_fini(&tm);
	return s;
}

static void fp_inline_expect(const struct vcpu_state *s, const char *what)
{
	volatile double a = 1.1, b = 2.5, c = -0.3;

	cr_expect_eq(s->f[10], dbits(fma(a, b, c)), "%s: fmadd", what);
	cr_expect_eq(s->f[11], dbits(fma(a, b, -c)), "%s: fmsub", what);
	cr_expect_eq(s->f[12], dbits(fma(-a, b, c)), "%s: fnmsub", what);
	cr_expect_eq(s->f[13], dbits(fma(-a, b, -c)), "%s: fnmadd", what);
	cr_expect_eq(s->f[15], dbits(sqrt(b)), "%s: fsqrt", what);
	cr_expect_eq(s->f[16], dbits(-1.1), "%s: fsgnj", what);
	cr_expect_eq(s->f[17], dbits(1.1), "%s: fsgnjn", what);
	cr_expect_eq(s->f[18], dbits(7.0), "%s: fsgnjx", what);
	cr_expect_eq(s->x[A5], dbits(1.1), "%s: fmv.x.d", what);
	cr_expect_eq(s->f[19], (uint64_t)-123456789, "%s: fmv.d.x", what);
	cr_expect_eq(s->x[A7], 0, "%s: fmv.x.w of 2.5's low word", what);
	cr_expect_eq(s->f[20], 0xffffffff00000000ull | (uint32_t)-123456789, "%s: fmv.w.x", what);
	cr_expect_eq(s->f[21], dbits(-123456789.0), "%s: fcvt.d.l", what);
	cr_expect_eq(s->f[22], dbits(-5.0), "%s: fcvt.d.w", what);
	cr_expect_eq(s->f[23], dbits(0x1p60), "%s: fcvt.d.lu", what);
	cr_expect_eq(s->x[A0], 1, "%s: flt", what);
	cr_expect_eq(s->x[A3], 1, "%s: fle", what);
	cr_expect_eq(s->x[T3], 0, "%s: feq NaN", what);
	cr_expect_eq(s->x[A6], 0, "%s: flt NaN", what);
	cr_expect_eq(s->x[T4], 1, "%s: fcvt.l.d", what);
	cr_expect_eq(s->x[T5], (uint64_t)-7, "%s: fcvt.w.d", what);
	cr_expect_eq(s->x[T6], 0x7fffffff, "%s: fcvt.w.d saturated", what);
	cr_expect_eq(s->x[S1], (uint64_t)-2, "%s: fcvt.l.d of -2.5, to even", what);
	cr_expect_eq(s->f[27], 0xffffffff7fc00000ull, "%s: fadd.s of an unboxed one", what);
	cr_expect_eq(s->f[28], 0xffffffff40580000ull, "%s: fmul.s %#llx", what,
		     (unsigned long long)s->f[28]);		/* 3.375f */
	cr_expect_eq(s->f[29], 0xffffffff3fc00000ull, "%s: fdiv.s", what);	/* 1.5f */
	cr_expect_eq(s->f[30], 0xffffffff3fc00000ull, "%s: fsqrt.s", what);
	cr_expect_eq(s->f[31], 0xffffffff409c0000ull, "%s: fmadd.s %#llx", what,
		     (unsigned long long)s->f[31]);		/* 4.875f */
	cr_expect_eq(s->f[6], 0xffffffffbf400000ull, "%s: fsub.s %#llx", what,
		     (unsigned long long)s->f[6]);		/* -0.75f */
	/* NX (fmadd, fsqrt, fcvt.d.lu), UF (the tiny product), NV (flt with a NaN) */
	cr_expect_eq(s->fcsr, 0x13, "%s: fcsr %#llx", what, (unsigned long long)s->fcsr);
}

Test(rv64_jit, fp_in_place_matches_the_interpreter_and_raises_flags)
{
	for (unsigned nx = 0; nx < 2; nx++) {
		struct vcpu_state t = fp_inline_run(true, nx), i = fp_inline_run(false, nx);

		fp_inline_expect(&t, nx ? "translator, NX set" : "translator, NX clear");
		fp_inline_expect(&i, nx ? "interpreter, NX set" : "interpreter, NX clear");
		cr_expect_eq(memcmp(t.f, i.f, sizeof(t.f)), 0, "f registers differ");
		cr_expect_eq(memcmp(t.x, i.x, sizeof(t.x)), 0, "x registers differ");
		cr_expect_eq(t.f[14], i.f[14], "the underflow");
		cr_expect_eq(t.instret, i.instret, "instret");
	}
}

/*
 * A load and a store in each of 600 pages, twice round: more pages than
 * a 256-entry TLB indexes apart, each slot's page must be its own.
 */
static void many_pages(bool jit)
{
	const unsigned pages = 600;
	const uint64_t base = RAM_BASE + 0x160000;	/* to 0x3b8000 */
	struct vcpu_state s;
	uint64_t sum = 0;

	tm_init_engine(&tm, jit);
	for (unsigned i = 0; i < pages; i++) {
		tm_poke64(&tm, base + i * PAGE + 8 * (i % 64), i * 3 + 1);
		sum += i * 3 + 1;
	}
	start_at(&tm, CODE);
	emit(&tm, ADDI(T1, ZERO, 2));			/* rounds */
	emit(&tm, ADD(A0, S0, ZERO));			/* round: */
	emit(&tm, ADDI(A1, ZERO, (int32_t)pages));
	emit(&tm, ADDI(A2, ZERO, 0));			/* i % 64, times 8 */
	emit(&tm, ADD(A3, A0, A2));			/* page: */
	emit(&tm, LD(A4, A3, 0));
	emit(&tm, ADD(A5, A5, A4));
	emit(&tm, SD(A3, A4, 0));			/* stores what it loaded */
	emit(&tm, ADDI(A2, A2, 8));
	emit(&tm, ANDI(A2, A2, 0x1ff));
	emit(&tm, LUI(T0, PAGE));
	emit(&tm, ADD(A0, A0, T0));
	emit(&tm, ADDI(A1, A1, -1));
	emit(&tm, BNE(A1, ZERO, -36));
	emit(&tm, ADDI(T1, T1, -1));
	emit(&tm, BNE(T1, ZERO, -56));
	emit(&tm, ECALL);
	tm_reset(&tm, CODE, NULL);
	set_reg(&tm, S0, base);
	s = run_to_ecall(&tm, jit);
	cr_expect_eq(s.x[A5], 2 * sum, "%s: %llu, want %llu", engine_name(jit),
		     (unsigned long long)s.x[A5], (unsigned long long)(2 * sum));
	cr_expect_eq(s.instret, 1 + 2 * (3 + 10 * pages + 2) + 1, "%s: instret %llu",
		     engine_name(jit), (unsigned long long)s.instret);
	tm_fini(&tm);
}

Test(rv64_jit, loads_and_stores_over_600_pages)
{
	many_pages(true);
	many_pages(false);
}

/*
 * Under Sv39, a loop calling a function on the next page: the call and
 * the return are linked jumps across pages. After the first round the
 * guest maps that page to another frame holding other code, as an exec
 * would, and drops it with SFENCE.VMA (no FENCE.I): the same linked call
 * must now reach the new code, through the new fetch addend.
 */
static void call_across_pages_then_remap(bool jit)
{
	const uint64_t other = CODE_FRAMES + 6 * PAGE;
	uint32_t code[2] = { ADDI(A0, A0, 100), JALR(ZERO, RA, 0) };
	struct vcpu_state s;

	tm_init_engine(&tm, jit);
	start_at(&tm, CODE);
	emit(&tm, ADDI(T2, ZERO, 2));
	emit(&tm, ADDI(T1, ZERO, 10));
	emit(&tm, JAL(RA, (int32_t)PAGE - 8));		/* loop: the call linked in round 1 */
	emit(&tm, ADDI(T1, T1, -1));
	emit(&tm, BNE(T1, ZERO, -8));
	emit(&tm, SD(A1, A2, 0));			/* the new mapping */
	emit(&tm, SFENCE_VMA_ADDR(A3));
	emit(&tm, ADDI(T1, ZERO, 10));
	emit(&tm, ADDI(T2, T2, -1));
	emit(&tm, BNE(T2, ZERO, -28));			/* to the loop */
	emit(&tm, ECALL);
	start_at(&tm, CODE + PAGE);
	emit(&tm, ADDI(A0, A0, 1));
	emit(&tm, JALR(ZERO, RA, 0));
	map_code_pages(&tm);
	memcpy(tm_host(&tm, other), code, sizeof(code));
	tm_reset_satp(&tm, CODE_VA, NULL, SATP_SV39);
	set_reg(&tm, A1, PT_L0 + 8 * 17);		/* RAM is mapped at its own address */
	set_reg(&tm, A2, pte(other, PTE_LEAF));
	set_reg(&tm, A3, CODE_VA + PAGE);
	s = run_to_ecall(&tm, jit);
	cr_expect_eq(s.x[A0], 10 + 1000, "%s: a0 %llu", engine_name(jit),
		     (unsigned long long)s.x[A0]);
	cr_expect_eq(s.instret, 2 + 2 * (10 * 5 + 5) + 1, "%s: instret %llu",
		     engine_name(jit), (unsigned long long)s.instret);
	tm_fini(&tm);
}

Test(rv64_jit, linked_call_across_pages_follows_a_remap)
{
	call_across_pages_then_remap(true);
	call_across_pages_then_remap(false);
}

/* RISC-V's divisions, by the book: division by zero and INT_MIN / -1 included. */
static uint64_t ref_div(unsigned k, uint64_t a, uint64_t b)
{
	int64_t sa = (int64_t)a, sb = (int64_t)b;
	int32_t wa = (int32_t)a, wb = (int32_t)b;
	uint32_t ua = (uint32_t)a, ub = (uint32_t)b;

	switch (k) {
	case 0: return !b ? UINT64_MAX : (sa == INT64_MIN && sb == -1) ? a : (uint64_t)(sa / sb);
	case 1: return !b ? UINT64_MAX : a / b;
	case 2: return !b ? a : (sa == INT64_MIN && sb == -1) ? 0 : (uint64_t)(sa % sb);
	case 3: return !b ? a : a % b;
	case 4: return !wb ? UINT64_MAX : (wa == INT32_MIN && wb == -1) ? (uint64_t)(int64_t)wa
					 : (uint64_t)(int64_t)(wa / wb);
	case 5: return !ub ? UINT64_MAX : (uint64_t)(int64_t)(int32_t)(ua / ub);
	case 6: return !wb ? (uint64_t)(int64_t)wa : (wa == INT32_MIN && wb == -1) ? 0
					: (uint64_t)(int64_t)(wa % wb);
	default: return !ub ? (uint64_t)(int64_t)wa : (uint64_t)(int64_t)(int32_t)(ua % ub);
	}
}

/* The eight divisions of a0 by a1, into t0-t2, a2-a5 and t3, each pair on both engines. */
static void divisions(bool jit, uint64_t a, uint64_t b)
{
	static const unsigned rd[8] = { T0, T1, T2, A2, A3, A4, A5, T3 };
	const uint32_t insn[8] = {
		DIV(T0, A0, A1), DIVU(T1, A0, A1), REM(T2, A0, A1), REMU(A2, A0, A1),
		DIVW(A3, A0, A1), DIVUW(A4, A0, A1), REMW(A5, A0, A1), REMUW(T3, A0, A1),
	};
	struct vcpu_state s;

	tm_init_engine(&tm, jit);
	start_at(&tm, CODE);
	for (unsigned k = 0; k < 8; k++)
		emit(&tm, insn[k]);
	emit(&tm, ECALL);
	tm_reset(&tm, CODE, NULL);
	set_reg(&tm, A0, a);
	set_reg(&tm, A1, b);
	s = run_to_ecall(&tm, jit);
	for (unsigned k = 0; k < 8; k++)
		cr_expect_eq(s.x[rd[k]], ref_div(k, a, b), "%s: op %u of %#llx, %#llx: %#llx",
			     engine_name(jit), k, (unsigned long long)a, (unsigned long long)b,
			     (unsigned long long)s.x[rd[k]]);
	tm_fini(&tm);
}

Test(rv64_jit, divisions_by_the_book)
{
	static const uint64_t v[] = {
		0, 1, 2, 7, UINT64_MAX, 0x8000000000000000ull, 0x7fffffffffffffffull,
		0x80000000ull, 0xffffffff80000000ull, 0xffffffffull, 0x100000000ull,
		0x123456789abcdefull, (uint64_t)-7,
	};

	for (size_t i = 0; i < N_ELEMS(v); i++) {
		for (size_t j = 0; j < N_ELEMS(v); j++) {
			divisions(true, v[i], v[j]);
			divisions(false, v[i], v[j]);
		}
	}
}

/*
 * A function run once (translated, checked at the code epoch of then),
 * rewritten behind the hart's back (as a device would), then exactly 2048
 * FENCE.I before it runs again: the epoch has moved by a multiple of the
 * translator's window, and the rewritten code must still be seen.
 */
static void fence_i_window(bool jit)
{
	const uint32_t newer = ADDI(A0, A0, 100);
	struct vcpu_state s;

	tm_init_engine(&tm, jit);
	start_at(&tm, CODE);
	emit(&tm, JAL(RA, (int32_t)PAGE));		/* CODE + PAGE, */
	emit(&tm, JAL(RA, (int32_t)PAGE - 4));		/* translated this time */
	emit(&tm, ECALL);
	emit(&tm, ADDI(T0, ZERO, 2047));
	emit(&tm, ADDI(T0, T0, 1));			/* 2048 */
	emit(&tm, FENCE_I);				/* loop: */
	emit(&tm, ADDI(T0, T0, -1));
	emit(&tm, BNE(T0, ZERO, -8));
	emit(&tm, JAL(RA, (int32_t)PAGE - 32));
	emit(&tm, ECALL);
	start_at(&tm, CODE + PAGE);
	emit(&tm, ADDI(A0, A0, 1));
	emit(&tm, JALR(ZERO, RA, 0));
	tm_reset(&tm, CODE, NULL);
	s = run_to_ecall(&tm, jit);
	cr_expect_eq(s.x[A0], 2, "%s", engine_name(jit));
	memcpy(tm_host(&tm, CODE + PAGE), &newer, 4);
	s = run_to_ecall(&tm, jit);
	cr_expect_eq(s.x[A0], 102, "%s: a0 %llu after 2048 FENCE.I", engine_name(jit),
		     (unsigned long long)s.x[A0]);
	tm_fini(&tm);
}

Test(rv64_jit, rewritten_code_seen_after_a_window_of_fence_i)
{
	fence_i_window(true);
	fence_i_window(false);
}
