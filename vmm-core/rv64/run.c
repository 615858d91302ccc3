/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The run loop: instructions come pre-decoded from the per-hart decode cache
 * (struct dc_entry) and the common ones (integer ALU, branches, jumps, loads
 * and stores hitting the TLB) execute here with pc, the fetch page and the
 * data TLBs in locals. Everything else goes through rv64_step().
 *
 * Dispatch is a computed goto replicated at the end of every handler, so the
 * host predicts each guest instruction's successor from where it is.
 */
#include "decode.h"
#include "hart.h"


#define RD(i) (((i) >> 7) & 31)
#define RS1(i) (((i) >> 15) & 31)
#define RS2(i) (((i) >> 20) & 31)
#define FUNCT3(i) (((i) >> 12) & 7)
#define FUNCT7(i) ((i) >> 25)

static int32_t imm_i(uint32_t i)
{
	return (int32_t)i >> 20;
}

static int32_t imm_s(uint32_t i)
{
	return ((int32_t)i >> 25) * 32 + (int32_t)((i >> 7) & 31);
}

static int32_t imm_b(uint32_t i)
{
	return ((int32_t)i >> 31) * 4096 + (int32_t)(((i >> 7) & 1) << 11 |
	       ((i >> 25) & 0x3f) << 5 | ((i >> 8) & 0xf) << 1);
}

static int32_t imm_j(uint32_t i)
{
	return ((int32_t)i >> 31) * (1 << 20) + (int32_t)((i & 0xff000) |
	       ((i >> 20) & 1) << 11 | ((i >> 21) & 0x3ff) << 1);
}

static enum dc_op decode_op_imm(uint32_t i)
{
	static const enum dc_op ops[8] = { DC_ADDI, DC_SLLI, DC_SLTI, DC_SLTIU, DC_XORI, DC_SRLI,
					   DC_ORI, DC_ANDI };
	unsigned f3 = FUNCT3(i), hi6 = i >> 26;

	if (f3 == 1 && hi6)
		return DC_SLOW;
	if (f3 == 5 && hi6 == 0x10)
		return DC_SRAI;
	if (f3 == 5 && hi6)
		return DC_SLOW;
	return ops[f3];
}

static enum dc_op decode_op_imm_32(uint32_t i)
{
	unsigned f3 = FUNCT3(i), f7 = FUNCT7(i);

	if (f3 == 0)
		return DC_ADDIW;
	if (f3 == 1 && f7 == 0)
		return DC_SLLIW;
	if (f3 == 5 && f7 == 0)
		return DC_SRLIW;
	if (f3 == 5 && f7 == 0x20)
		return DC_SRAIW;
	return DC_SLOW;
}

static enum dc_op decode_op(uint32_t i)
{
	static const enum dc_op ops[8] = { DC_ADD, DC_SLL, DC_SLT, DC_SLTU, DC_XOR, DC_SRL,
					   DC_OR, DC_AND };
	static const enum dc_op muldiv[8] = { DC_MUL, DC_MULH, DC_MULHSU, DC_MULHU, DC_DIV,
					      DC_DIVU, DC_REM, DC_REMU };
	unsigned f3 = FUNCT3(i), f7 = FUNCT7(i);

	if (f7 == 0)
		return ops[f3];
	if (f7 == 0x20 && f3 == 0)
		return DC_SUB;
	if (f7 == 0x20 && f3 == 5)
		return DC_SRA;
	if (f7 == 1)
		return muldiv[f3];
	return DC_SLOW;
}

static enum dc_op decode_op_32(uint32_t i)
{
	static const enum dc_op divs[4] = { DC_DIVW, DC_DIVUW, DC_REMW, DC_REMUW };
	unsigned f3 = FUNCT3(i), f7 = FUNCT7(i);

	if (f7 == 0 && f3 == 0)
		return DC_ADDW;
	if (f7 == 0x20 && f3 == 0)
		return DC_SUBW;
	if (f7 == 0 && f3 == 1)
		return DC_SLLW;
	if (f7 == 0 && f3 == 5)
		return DC_SRLW;
	if (f7 == 0x20 && f3 == 5)
		return DC_SRAW;
	if (f7 == 1 && f3 == 0)
		return DC_MULW;
	if (f7 == 1 && f3 >= 4)
		return divs[f3 - 4];
	return DC_SLOW;
}

/*
 * An ALU instruction's operation (base, else Zb with its immediate), or
 * DC_NOP when it only writes x0: it has no other effect.
 */
static enum dc_op nop_if_x0(bool writes_x0, enum dc_op base, uint32_t i, int32_t *imm)
{
	enum dc_op op = base != DC_SLOW ? base : rv64_decode_zb(i, imm);

	return writes_x0 && op != DC_SLOW ? DC_NOP : op;
}

/* What the fast loop does for a 32-bit instruction, with its immediate. */
static enum dc_op decode(uint32_t i, int32_t *imm)
{
	static const enum dc_op loads[8] = { DC_LB, DC_LH, DC_LW, DC_LD, DC_LBU, DC_LHU, DC_LWU,
					     DC_SLOW };
	static const enum dc_op stores[8] = { DC_SB, DC_SH, DC_SW, DC_SD, DC_SLOW, DC_SLOW,
					      DC_SLOW, DC_SLOW };
	static const enum dc_op branches[8] = { DC_BEQ, DC_BNE, DC_SLOW, DC_SLOW, DC_BLT, DC_BGE,
						DC_BLTU, DC_BGEU };
	bool writes_x0 = RD(i) == 0;

	*imm = imm_i(i);
	switch (i & 0x7f) {
	case 0x37: *imm = (int32_t)(i & 0xfffff000u); return writes_x0 ? DC_NOP : DC_LUI;
	case 0x17: *imm = (int32_t)(i & 0xfffff000u); return writes_x0 ? DC_NOP : DC_AUIPC;
	case 0x6f: *imm = imm_j(i); return writes_x0 ? DC_J : DC_JAL;
	case 0x67:
		if (FUNCT3(i))
			return DC_SLOW;
		return writes_x0 ? DC_JR : DC_JALR;
	case 0x63: *imm = imm_b(i); return branches[FUNCT3(i)];
	/* A load into x0 still accesses memory (and may fault): leave it to the slow path. */
	case 0x03: return writes_x0 ? DC_SLOW : loads[FUNCT3(i)];
	case 0x23: *imm = imm_s(i); return stores[FUNCT3(i)];
	case 0x13: return nop_if_x0(writes_x0, decode_op_imm(i), i, imm);
	case 0x1b: return nop_if_x0(writes_x0, decode_op_imm_32(i), i, imm);
	case 0x33: return nop_if_x0(writes_x0, decode_op(i), i, imm);
	case 0x3b: return nop_if_x0(writes_x0, decode_op_32(i), i, imm);
	/* FENCE, and PAUSE which spin loops run; FENCE.I takes the slow path. */
	case 0x0f: return FUNCT3(i) == 0 ? DC_FENCE : DC_SLOW;
	default: return DC_SLOW;
	}
}

void rv64_decode(struct dc_entry *e, uint32_t w)
{
	uint32_t insn = w;
	int32_t imm = 0;

	/*
	 * raw keeps all 32 fetched bits even for a compressed instruction, so
	 * the run loop compares without masking; a change in the other half
	 * (the next instruction) only costs a refill.
	 */
	e->len = 4;
	e->raw = w;
	if ((w & 3) != 3) {
		e->len = 2;
		insn = rv64_rvc_table[w & 0xffff];
	}
	/* 0 is no instruction: an illegal compressed encoding traps on the slow path. */
	e->op = insn ? decode(insn, &imm) : DC_SLOW;
	e->imm = imm;
	e->rd = RD(insn);
	e->rs1 = RS1(insn);
	e->rs2 = RS2(insn);
}

/* Division as the M extension defines it: no traps, fixed results. */
static inline uint64_t div_s(uint64_t a, uint64_t b)
{
	if (b == 0)
		return UINT64_MAX;
	if ((int64_t)a == INT64_MIN && (int64_t)b == -1)
		return a;
	return (uint64_t)((int64_t)a / (int64_t)b);
}

static inline uint64_t rem_s(uint64_t a, uint64_t b)
{
	if (b == 0)
		return a;
	if ((int64_t)a == INT64_MIN && (int64_t)b == -1)
		return 0;
	return (uint64_t)((int64_t)a % (int64_t)b);
}

static inline uint64_t sext32(uint64_t v)
{
	return (uint64_t)(int64_t)(int32_t)v;
}

uint64_t rv64_muldiv(unsigned op, uint64_t a, uint64_t b)
{
	switch (op) {
	case DC_MULHSU: return (uint64_t)(((__int128)(int64_t)a * (unsigned __int128)b) >> 64);
	case DC_DIV: return div_s(a, b);
	case DC_DIVU: return b ? a / b : UINT64_MAX;
	case DC_REM: return rem_s(a, b);
	case DC_REMU: return b ? a % b : a;
	case DC_DIVW: return sext32(div_s(sext32(a), sext32(b)));
	case DC_DIVUW: return (uint32_t)b ? sext32((uint32_t)a / (uint32_t)b) : UINT64_MAX;
	case DC_REMW: return sext32(rem_s(sext32(a), sext32(b)));
	default: return (uint32_t)b ? sext32((uint32_t)a % (uint32_t)b) : sext32(a);	/* REMUW */
	}
}

int rv64_run_block(struct accel_vcpu *h, unsigned budget)
{
	static const void *const handlers[DC__MAX] = {
		[DC_SLOW] = &&op_slow, [DC_NOP] = &&op_nop, [DC_LUI] = &&op_lui,
		[DC_AUIPC] = &&op_auipc, [DC_JAL] = &&op_jal, [DC_J] = &&op_j,
		[DC_JALR] = &&op_jalr, [DC_JR] = &&op_jr,
		[DC_BEQ] = &&op_beq, [DC_BNE] = &&op_bne, [DC_BLT] = &&op_blt, [DC_BGE] = &&op_bge,
		[DC_BLTU] = &&op_bltu, [DC_BGEU] = &&op_bgeu,
		[DC_LB] = &&op_lb, [DC_LH] = &&op_lh, [DC_LW] = &&op_lw, [DC_LD] = &&op_ld,
		[DC_LBU] = &&op_lbu, [DC_LHU] = &&op_lhu, [DC_LWU] = &&op_lwu,
		[DC_SB] = &&op_sb, [DC_SH] = &&op_sh, [DC_SW] = &&op_sw, [DC_SD] = &&op_sd,
		[DC_ADDI] = &&op_addi, [DC_SLTI] = &&op_slti, [DC_SLTIU] = &&op_sltiu,
		[DC_XORI] = &&op_xori, [DC_ORI] = &&op_ori, [DC_ANDI] = &&op_andi,
		[DC_SLLI] = &&op_slli, [DC_SRLI] = &&op_srli, [DC_SRAI] = &&op_srai,
		[DC_ADDIW] = &&op_addiw, [DC_SLLIW] = &&op_slliw, [DC_SRLIW] = &&op_srliw,
		[DC_SRAIW] = &&op_sraiw,
		[DC_ADD] = &&op_add, [DC_SUB] = &&op_sub, [DC_SLL] = &&op_sll, [DC_SLT] = &&op_slt,
		[DC_SLTU] = &&op_sltu, [DC_XOR] = &&op_xor, [DC_SRL] = &&op_srl, [DC_SRA] = &&op_sra,
		[DC_OR] = &&op_or, [DC_AND] = &&op_and,
		[DC_ADDW] = &&op_addw, [DC_SUBW] = &&op_subw, [DC_SLLW] = &&op_sllw,
		[DC_SRLW] = &&op_srlw, [DC_SRAW] = &&op_sraw, [DC_MUL] = &&op_mul, [DC_MULW] = &&op_mulw,
		[DC_MULH] = &&op_mulh, [DC_MULHSU] = &&op_mulhsu, [DC_MULHU] = &&op_mulhu,
		[DC_DIV] = &&op_div, [DC_DIVU] = &&op_divu, [DC_REM] = &&op_rem, [DC_REMU] = &&op_remu,
		[DC_DIVW] = &&op_divw, [DC_DIVUW] = &&op_divuw, [DC_REMW] = &&op_remw,
		[DC_REMUW] = &&op_remuw, [DC_FENCE] = &&op_fence,
		[DC_ZB_FIRST ... DC__MAX - 1] = &&op_zb,
	};
	uint64_t *const x = h->x;
	struct dc_entry *const dcache = h->dcache;
	const uint64_t cycle0 = h->cycle, instret0 = h->instret;
	const struct tlb_entry *tlb_read = h->tlb[ACC_READ], *tlb_write = h->tlb[ACC_WRITE];
	uint64_t pc = h->pc, fetch_vpn = TLB_INVALID, va, v;
	uintptr_t fetch_addend = 0;
	unsigned left = budget, traps = 0;
	const struct dc_entry *d;
	const struct tlb_entry *te;
	uint32_t w;
	int r;

/* The values of x[rs1], x[rs2] and the immediate of the current instruction. */
#define A x[d->rs1]
#define B x[d->rs2]
#define IMM ((int64_t)d->imm)
#define SET_RD(val) (x[d->rd] = (val))

/*
 * Fetch through the page cached in locals, look the bits up in the decode
 * cache and jump to the handler. pc must be set.
 */
#define DISPATCH() do { \
	if (unlikely(!left)) \
		goto out; \
	left--; \
	if (unlikely((pc >> PAGE_SHIFT) != fetch_vpn || (pc & PAGE_OFFSET_MASK) > PAGE_SIZE - 4)) \
		goto fetch_slow; \
	memcpy(&w, (const void *)(fetch_addend + (uintptr_t)pc), 4); \
	d = &dcache[(pc >> 1) & (DCACHE_SIZE - 1)]; \
	if (unlikely(w != d->raw)) \
		goto decode_miss; \
	goto *handlers[d->op]; \
} while (0)

#define NEXT() do { pc += d->len; DISPATCH(); } while (0)
#define BRANCH(cond) do { pc += (cond) ? IMM : d->len; DISPATCH(); } while (0)

/* A load or store through the TLB in locals; the slow path may fill it or trap. */
#define LOAD(type, ext) do { \
	va = A + IMM; \
	te = &tlb_read[rv64_tlb_index(va)]; \
	if (likely(te->vpn == va >> PAGE_SHIFT && \
		   (va & PAGE_OFFSET_MASK) <= PAGE_SIZE - sizeof(type))) { \
		type t; \
		memcpy(&t, (const void *)(te->addend + (uintptr_t)va), sizeof(type)); \
		SET_RD(ext(t)); \
		NEXT(); \
	} \
	h->pc = pc; \
	if (rv64_load_slow(h, va, sizeof(type), &v)) \
		goto trapped; \
	SET_RD(ext((type)v)); \
	NEXT(); \
} while (0)

#define STORE(type) do { \
	va = A + IMM; \
	te = &tlb_write[rv64_tlb_index(va)]; \
	if (likely(te->vpn == va >> PAGE_SHIFT && \
		   (va & PAGE_OFFSET_MASK) <= PAGE_SIZE - sizeof(type))) { \
		type t = (type)B; \
		memcpy((void *)(te->addend + (uintptr_t)va), &t, sizeof(type)); \
		NEXT(); \
	} \
	h->pc = pc; \
	if (rv64_store_slow(h, va, sizeof(type), B)) \
		goto trapped; \
	NEXT(); \
} while (0)

#define S8(t) ((uint64_t)(int64_t)(int8_t)(t))
#define S16(t) ((uint64_t)(int64_t)(int16_t)(t))
#define S32(t) ((uint64_t)(int64_t)(int32_t)(t))
#define U(t) ((uint64_t)(t))

	DISPATCH();

op_nop: NEXT();
op_lui: SET_RD((uint64_t)IMM); NEXT();
op_auipc: SET_RD(pc + IMM); NEXT();
op_jal: SET_RD(pc + d->len); pc += IMM; DISPATCH();
op_j: pc += IMM; DISPATCH();
op_jalr: v = pc + d->len; pc = (A + IMM) & ~1ull; SET_RD(v); DISPATCH();
op_jr: pc = (A + IMM) & ~1ull; DISPATCH();
op_beq: BRANCH(A == B);
op_bne: BRANCH(A != B);
op_blt: BRANCH((int64_t)A < (int64_t)B);
op_bge: BRANCH((int64_t)A >= (int64_t)B);
op_bltu: BRANCH(A < B);
op_bgeu: BRANCH(A >= B);
op_lb: LOAD(uint8_t, S8);
op_lh: LOAD(uint16_t, S16);
op_lw: LOAD(uint32_t, S32);
op_ld: LOAD(uint64_t, U);
op_lbu: LOAD(uint8_t, U);
op_lhu: LOAD(uint16_t, U);
op_lwu: LOAD(uint32_t, U);
op_sb: STORE(uint8_t);
op_sh: STORE(uint16_t);
op_sw: STORE(uint32_t);
op_sd: STORE(uint64_t);
op_addi: SET_RD(A + IMM); NEXT();
op_slti: SET_RD((int64_t)A < IMM); NEXT();
op_sltiu: SET_RD(A < (uint64_t)IMM); NEXT();
op_xori: SET_RD(A ^ IMM); NEXT();
op_ori: SET_RD(A | IMM); NEXT();
op_andi: SET_RD(A & IMM); NEXT();
op_slli: SET_RD(A << (IMM & 63)); NEXT();
op_srli: SET_RD(A >> (IMM & 63)); NEXT();
op_srai: SET_RD((uint64_t)((int64_t)A >> (IMM & 63))); NEXT();
op_addiw: SET_RD(S32(A + IMM)); NEXT();
op_slliw: SET_RD(S32((uint32_t)A << (IMM & 31))); NEXT();
op_srliw: SET_RD(S32((uint32_t)A >> (IMM & 31))); NEXT();
op_sraiw: SET_RD(S32((int32_t)A >> (IMM & 31))); NEXT();
op_add: SET_RD(A + B); NEXT();
op_sub: SET_RD(A - B); NEXT();
op_sll: SET_RD(A << (B & 63)); NEXT();
op_slt: SET_RD((int64_t)A < (int64_t)B); NEXT();
op_sltu: SET_RD(A < B); NEXT();
op_xor: SET_RD(A ^ B); NEXT();
op_srl: SET_RD(A >> (B & 63)); NEXT();
op_sra: SET_RD((uint64_t)((int64_t)A >> (B & 63))); NEXT();
op_or: SET_RD(A | B); NEXT();
op_and: SET_RD(A & B); NEXT();
op_addw: SET_RD(S32(A + B)); NEXT();
op_subw: SET_RD(S32(A - B)); NEXT();
op_sllw: SET_RD(S32((uint32_t)A << (B & 31))); NEXT();
op_srlw: SET_RD(S32((uint32_t)A >> (B & 31))); NEXT();
op_sraw: SET_RD(S32((int32_t)A >> (B & 31))); NEXT();
op_mul: SET_RD(A * B); NEXT();
op_mulw: SET_RD(S32(A * B)); NEXT();
op_mulh: SET_RD((uint64_t)(((__int128)(int64_t)A * (int64_t)B) >> 64)); NEXT();
op_mulhu: SET_RD((uint64_t)(((unsigned __int128)A * B) >> 64)); NEXT();
op_mulhsu: op_div: op_divu: op_rem: op_remu: op_divw: op_divuw: op_remw: op_remuw:
	SET_RD(rv64_muldiv(d->op, A, B));
	NEXT();
op_zb:
	SET_RD(rv64_bitmanip(d->op, A, d->op >= DC_ZB_FIRST_IMM ? (uint64_t)IMM : B));
	NEXT();
op_fence:
	/* Guest memory is host memory: a host fence orders it for other harts and devices. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	NEXT();

decode_miss:
	rv64_decode(&dcache[(pc >> 1) & (DCACHE_SIZE - 1)], w);
	goto *handlers[d->op];

fetch_slow:
	/* Refill the fetch page from the TLB (walking if needed), or fall back to rv64_step. */
	te = &h->tlb[ACC_FETCH][rv64_tlb_index(pc)];
	if (te->vpn != pc >> PAGE_SHIFT) {
		h->pc = pc;
		if (rv64_fetch_slow(h, &w))
			goto trapped;
	}
	if (te->vpn == pc >> PAGE_SHIFT && (pc & PAGE_OFFSET_MASK) <= PAGE_SIZE - 4) {
		fetch_vpn = te->vpn;
		fetch_addend = te->addend;
		left++;
		DISPATCH();
	}
	/* An instruction in a page's last two bytes. */
	goto op_slow;

op_slow:
	/* Counters as of before this instruction, for CSR reads of cycle/instret. */
	h->pc = pc;
	h->cycle = cycle0 + (budget - left) - 1;
	h->instret = instret0 + (budget - left) - 1 - traps;
	r = rv64_step(h);
	if (r == EXEC_TRAP)
		traps++;
	else if (r != EXEC_OK)
		goto leave;
	/* The step may have changed privilege, SUM, satp or the TLBs: reload. */
	pc = h->pc;
	tlb_read = h->tlb[ACC_READ];
	tlb_write = h->tlb[ACC_WRITE];
	fetch_vpn = TLB_INVALID;
	DISPATCH();

trapped:
	traps++;
	pc = h->pc;
	tlb_read = h->tlb[ACC_READ];
	tlb_write = h->tlb[ACC_WRITE];
	fetch_vpn = TLB_INVALID;
	DISPATCH();

out:
	h->pc = pc;
	h->cycle = cycle0 + budget;
	h->instret = instret0 + budget - traps;
	return EXEC_OK;

leave:
	/* EXEC_BREAK or EXEC_EXIT: the instruction retired; h->pc is already right. */
	h->cycle = cycle0 + (budget - left);
	h->instret = instret0 + (budget - left) - traps;
	return r;

#undef A
#undef B
#undef IMM
#undef SET_RD
#undef DISPATCH
#undef NEXT
#undef BRANCH
#undef LOAD
#undef STORE
}
