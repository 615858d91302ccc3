/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Decode and execute, the generic way: RV64IMA, Zicsr, Zifencei, Zba, Zbb
 * and Zbs (zb.c), and C (expanded to 32-bit first); F and D live in
 * fpu.c. One switch on the major opcode; each group has its own function.
 * Instructions write x[rd] unconditionally; rv64_step() zeroes x0
 * afterwards. The common integer instructions normally run from the decode
 * cache in run.c instead.
 */
#include "decode.h"
#include "hart.h"

#define RD(i) (((i) >> 7) & 31)
#define RS1(i) (((i) >> 15) & 31)
#define RS2(i) (((i) >> 20) & 31)
#define FUNCT3(i) (((i) >> 12) & 7)
#define FUNCT7(i) ((i) >> 25)

enum {
	OPC_LOAD = 0x03, OPC_LOAD_FP = 0x07, OPC_MISC_MEM = 0x0f, OPC_OP_IMM = 0x13,
	OPC_AUIPC = 0x17, OPC_OP_IMM_32 = 0x1b, OPC_STORE = 0x23, OPC_AMO = 0x2f,
	OPC_OP = 0x33, OPC_LUI = 0x37, OPC_OP_32 = 0x3b, OPC_BRANCH = 0x63,
	OPC_JALR = 0x67, OPC_JAL = 0x6f, OPC_SYSTEM = 0x73,
	OPC_STORE_FP = 0x27, OPC_FMADD = 0x43, OPC_FMSUB = 0x47, OPC_FNMSUB = 0x4b,
	OPC_FNMADD = 0x4f, OPC_OP_FP = 0x53,
};

enum {
	INSN_ECALL = 0x00000073, INSN_EBREAK = 0x00100073,
	INSN_SRET = 0x10200073, INSN_WFI = 0x10500073,
};

static inline int64_t imm_i(uint32_t i)
{
	return (int32_t)i >> 20;
}

static inline int64_t imm_s(uint32_t i)
{
	return (int64_t)((int32_t)i >> 25) * 32 + ((i >> 7) & 31);
}

static inline int64_t imm_b(uint32_t i)
{
	return (int64_t)((int32_t)i >> 31) * 4096 + (((i >> 7) & 1) << 11 |
	       ((i >> 25) & 0x3f) << 5 | ((i >> 8) & 0xf) << 1);
}

static inline int64_t imm_j(uint32_t i)
{
	return (int64_t)((int32_t)i >> 31) * (1 << 20) + ((i & 0xff000) |
	       ((i >> 20) & 1) << 11 | ((i >> 21) & 0x3ff) << 1);
}

static inline uint64_t sext32(uint64_t v)
{
	return (uint64_t)(int64_t)(int32_t)v;
}

static hot_inline int exec_load(struct accel_vcpu *h, uint32_t insn, unsigned len)
{
	static const uint8_t size[8] = { 1, 2, 4, 8, 1, 2, 4, 0 };
	unsigned f3 = FUNCT3(insn);
	uint64_t va = h->x[RS1(insn)] + imm_i(insn), v;

	if (f3 == 7)
		return rv64_illegal(h, insn);
	if (rv64_load(h, va, size[f3], &v))
		return EXEC_TRAP;
	switch (f3) {
	case 0: v = (uint64_t)(int64_t)(int8_t)v; break;
	case 1: v = (uint64_t)(int64_t)(int16_t)v; break;
	case 2: v = sext32(v); break;
	default: break;
	}
	h->x[RD(insn)] = v;
	h->pc += len;
	return EXEC_OK;
}

static hot_inline int exec_store(struct accel_vcpu *h, uint32_t insn, unsigned len)
{
	unsigned f3 = FUNCT3(insn);
	uint64_t va = h->x[RS1(insn)] + imm_s(insn);

	if (f3 > 3)
		return rv64_illegal(h, insn);
	if (rv64_store(h, va, 1u << f3, h->x[RS2(insn)]))
		return EXEC_TRAP;
	h->pc += len;
	return EXEC_OK;
}

static hot_inline int exec_branch(struct accel_vcpu *h, uint32_t insn, unsigned len)
{
	uint64_t a = h->x[RS1(insn)], b = h->x[RS2(insn)];
	bool taken;

	switch (FUNCT3(insn)) {
	case 0: taken = a == b; break;
	case 1: taken = a != b; break;
	case 4: taken = (int64_t)a < (int64_t)b; break;
	case 5: taken = (int64_t)a >= (int64_t)b; break;
	case 6: taken = a < b; break;
	case 7: taken = a >= b; break;
	default: return rv64_illegal(h, insn);
	}
	h->pc += taken ? (uint64_t)imm_b(insn) : len;
	return EXEC_OK;
}

/* An OP, OP-32, OP-IMM or OP-IMM-32 encoding the base ISA leaves out: Zba, Zbb, Zbs. */
static __attribute__((noinline)) int exec_zb(struct accel_vcpu *h, uint32_t insn, unsigned len)
{
	int32_t imm;
	enum dc_op op = rv64_decode_zb(insn, &imm);
	uint64_t b;

	if (op == DC_SLOW)
		return rv64_illegal(h, insn);
	b = op >= DC_ZB_FIRST_IMM ? (uint64_t)(int64_t)imm : h->x[RS2(insn)];
	h->x[RD(insn)] = rv64_bitmanip(op, h->x[RS1(insn)], b);
	h->pc += len;
	return EXEC_OK;
}

static hot_inline int exec_op_imm(struct accel_vcpu *h, uint32_t insn, unsigned len)
{
	uint64_t a = h->x[RS1(insn)], imm = imm_i(insn), v;
	unsigned shamt = imm & 63, hi6 = insn >> 26;

	switch (FUNCT3(insn)) {
	case 0: v = a + imm; break;
	case 1:
		if (hi6)
			return exec_zb(h, insn, len);
		v = a << shamt;
		break;
	case 2: v = (int64_t)a < (int64_t)imm; break;
	case 3: v = a < imm; break;
	case 4: v = a ^ imm; break;
	case 5:
		if (hi6 == 0)
			v = a >> shamt;
		else if (hi6 == 0x10)
			v = (uint64_t)((int64_t)a >> shamt);
		else
			return exec_zb(h, insn, len);
		break;
	case 6: v = a | imm; break;
	default: v = a & imm; break;
	}
	h->x[RD(insn)] = v;
	h->pc += len;
	return EXEC_OK;
}

static hot_inline int exec_op_imm_32(struct accel_vcpu *h, uint32_t insn, unsigned len)
{
	uint32_t a = h->x[RS1(insn)], shamt = RS2(insn), f7 = FUNCT7(insn);
	uint64_t v;

	switch (FUNCT3(insn)) {
	case 0:
		v = sext32(a + (uint32_t)imm_i(insn));
		break;
	case 1:
		if (f7)
			return exec_zb(h, insn, len);
		v = sext32(a << shamt);
		break;
	case 5:
		if (f7 == 0)
			v = sext32(a >> shamt);
		else if (f7 == 0x20)
			v = sext32((uint32_t)((int32_t)a >> shamt));
		else
			return exec_zb(h, insn, len);
		break;
	default:
		return exec_zb(h, insn, len);
	}
	h->x[RD(insn)] = v;
	h->pc += len;
	return EXEC_OK;
}

static uint64_t mulh(int64_t a, int64_t b)
{
	return (uint64_t)(((__int128)a * b) >> 64);
}

static uint64_t mulhsu(int64_t a, uint64_t b)
{
	return (uint64_t)(((__int128)a * (unsigned __int128)b) >> 64);
}

static uint64_t mulhu(uint64_t a, uint64_t b)
{
	return (uint64_t)(((unsigned __int128)a * b) >> 64);
}

/* Division as the M extension defines it: no traps, fixed results. */
static uint64_t div_s(int64_t a, int64_t b)
{
	if (b == 0)
		return UINT64_MAX;
	if (a == INT64_MIN && b == -1)
		return (uint64_t)a;
	return (uint64_t)(a / b);
}

static uint64_t rem_s(int64_t a, int64_t b)
{
	if (b == 0)
		return (uint64_t)a;
	if (a == INT64_MIN && b == -1)
		return 0;
	return (uint64_t)(a % b);
}

static __attribute__((noinline)) int exec_muldiv(struct accel_vcpu *h, uint32_t insn, unsigned len)
{
	uint64_t a = h->x[RS1(insn)], b = h->x[RS2(insn)], v;

	switch (FUNCT3(insn)) {
	case 0: v = a * b; break;
	case 1: v = mulh(a, b); break;
	case 2: v = mulhsu(a, b); break;
	case 3: v = mulhu(a, b); break;
	case 4: v = div_s(a, b); break;
	case 5: v = b ? a / b : UINT64_MAX; break;
	case 6: v = rem_s(a, b); break;
	default: v = b ? a % b : a; break;
	}
	h->x[RD(insn)] = v;
	h->pc += len;
	return EXEC_OK;
}

static hot_inline int exec_op(struct accel_vcpu *h, uint32_t insn, unsigned len)
{
	uint64_t a = h->x[RS1(insn)], b = h->x[RS2(insn)], v;
	unsigned f7 = FUNCT7(insn), f3 = FUNCT3(insn);

	if (f7 == 1)
		return exec_muldiv(h, insn, len);
	if (f7 == 0x20 && f3 == 0)
		v = a - b;
	else if (f7 == 0x20 && f3 == 5)
		v = (uint64_t)((int64_t)a >> (b & 63));
	else if (f7 != 0)
		return exec_zb(h, insn, len);
	else switch (f3) {
	case 0: v = a + b; break;
	case 1: v = a << (b & 63); break;
	case 2: v = (int64_t)a < (int64_t)b; break;
	case 3: v = a < b; break;
	case 4: v = a ^ b; break;
	case 5: v = a >> (b & 63); break;
	case 6: v = a | b; break;
	default: v = a & b; break;
	}
	h->x[RD(insn)] = v;
	h->pc += len;
	return EXEC_OK;
}

static uint64_t muldiv_32(unsigned f3, uint32_t a, uint32_t b, bool *ret_ok)
{
	int32_t sa = a, sb = b;

	*ret_ok = true;
	switch (f3) {
	case 0: return sext32(a * b);
	case 4:
		if (b == 0)
			return UINT64_MAX;
		return sext32(sa == INT32_MIN && sb == -1 ? a : (uint32_t)(sa / sb));
	case 5: return sext32(b ? a / b : UINT32_MAX);
	case 6:
		if (b == 0)
			return sext32(a);
		return sext32(sa == INT32_MIN && sb == -1 ? 0 : (uint32_t)(sa % sb));
	case 7: return sext32(b ? a % b : a);
	default:
		*ret_ok = false;
		return 0;
	}
}

static hot_inline int exec_op_32(struct accel_vcpu *h, uint32_t insn, unsigned len)
{
	uint32_t a = h->x[RS1(insn)], b = h->x[RS2(insn)];
	unsigned f7 = FUNCT7(insn), f3 = FUNCT3(insn);
	bool ok = true;
	uint64_t v;

	if (f7 == 1)
		v = muldiv_32(f3, a, b, &ok);
	else if (f7 == 0 && f3 == 0)
		v = sext32(a + b);
	else if (f7 == 0x20 && f3 == 0)
		v = sext32(a - b);
	else if (f7 == 0 && f3 == 1)
		v = sext32(a << (b & 31));
	else if (f7 == 0 && f3 == 5)
		v = sext32(a >> (b & 31));
	else if (f7 == 0x20 && f3 == 5)
		v = sext32((uint32_t)((int32_t)a >> (b & 31)));
	else
		ok = false;
	if (!ok)
		return exec_zb(h, insn, len);
	h->x[RD(insn)] = v;
	h->pc += len;
	return EXEC_OK;
}

static int exec_lr(struct accel_vcpu *h, uint32_t insn, unsigned size, uint64_t va)
{
	void *p;
	uint64_t v;

	if (RS2(insn))
		return rv64_illegal(h, insn);
	if (rv64_amo_ptr(h, va, size, true, &p))
		return EXEC_TRAP;
	if (size == 4)
		v = __atomic_load_n((uint32_t *)p, __ATOMIC_SEQ_CST);
	else
		v = __atomic_load_n((uint64_t *)p, __ATOMIC_SEQ_CST);
	h->resv_valid = true;
	h->resv_addr = va;
	h->resv_size = size;
	h->resv_value = v;
	h->x[RD(insn)] = size == 4 ? sext32(v) : v;
	return EXEC_OK;
}

/* SC succeeds when memory still holds what LR saw (compare-exchange). */
static int exec_sc(struct accel_vcpu *h, uint32_t insn, unsigned size, uint64_t va)
{
	uint64_t src = h->x[RS2(insn)];
	bool ok = false;
	void *p;

	if (rv64_amo_ptr(h, va, size, false, &p))
		return EXEC_TRAP;
	if (h->resv_valid && h->resv_addr == va && h->resv_size == size) {
		if (size == 4) {
			uint32_t expected = h->resv_value;

			ok = __atomic_compare_exchange_n((uint32_t *)p, &expected, (uint32_t)src,
							 false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
		} else {
			uint64_t expected = h->resv_value;

			ok = __atomic_compare_exchange_n((uint64_t *)p, &expected, src, false,
							 __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
		}
	}
	h->resv_valid = false;
	h->x[RD(insn)] = !ok;
	return EXEC_OK;
}

/* The new memory value of an AMO, given the old one; width-agnostic on int64. */
static uint64_t amo_combine(unsigned funct5, uint64_t old, uint64_t src, bool word)
{
	int64_t so = word ? (int32_t)old : (int64_t)old, ss = word ? (int32_t)src : (int64_t)src;
	uint64_t uo = word ? (uint32_t)old : old, us = word ? (uint32_t)src : src;

	switch (funct5) {
	case 0x00: return old + src;
	case 0x01: return src;
	case 0x04: return old ^ src;
	case 0x08: return old | src;
	case 0x0c: return old & src;
	case 0x10: return so < ss ? old : src;
	case 0x14: return so > ss ? old : src;
	case 0x18: return uo < us ? old : src;
	default: return uo > us ? old : src;
	}
}

static bool amo_funct5_valid(unsigned funct5)
{
	switch (funct5) {
	case 0x00: case 0x01: case 0x04: case 0x08: case 0x0c:
	case 0x10: case 0x14: case 0x18: case 0x1c:
		return true;
	default:
		return false;
	}
}

static int exec_amo_rmw(struct accel_vcpu *h, uint32_t insn, unsigned size, uint64_t va)
{
	unsigned funct5 = insn >> 27;
	uint64_t src = h->x[RS2(insn)], old;
	void *p;

	if (!amo_funct5_valid(funct5))
		return rv64_illegal(h, insn);
	if (rv64_amo_ptr(h, va, size, false, &p))
		return EXEC_TRAP;
	if (size == 4) {
		uint32_t *p32 = p, o = __atomic_load_n(p32, __ATOMIC_RELAXED);

		while (!__atomic_compare_exchange_n(p32, &o, (uint32_t)amo_combine(funct5, o, src, true),
						    true, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED))
			;
		old = sext32(o);
	} else {
		uint64_t *p64 = p, o = __atomic_load_n(p64, __ATOMIC_RELAXED);

		while (!__atomic_compare_exchange_n(p64, &o, amo_combine(funct5, o, src, false),
						    true, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED))
			;
		old = o;
	}
	h->x[RD(insn)] = old;
	return EXEC_OK;
}

static int exec_amo(struct accel_vcpu *h, uint32_t insn, unsigned len)
{
	unsigned f3 = FUNCT3(insn), funct5 = insn >> 27, size;
	uint64_t va = h->x[RS1(insn)];
	int r;

	if (f3 != 2 && f3 != 3)
		return rv64_illegal(h, insn);
	size = f3 == 2 ? 4 : 8;
	if (funct5 == 0x02)
		r = exec_lr(h, insn, size, va);
	else if (funct5 == 0x03)
		r = exec_sc(h, insn, size, va);
	else
		r = exec_amo_rmw(h, insn, size, va);
	if (r == EXEC_OK)
		h->pc += len;
	return r;
}

int rv64_amo_insn(struct accel_vcpu *h, uint32_t insn)
{
	return exec_amo(h, insn, 4);
}

static int exec_misc_mem(struct accel_vcpu *h, uint32_t insn, unsigned len)
{
	switch (FUNCT3(insn)) {
	case 0:	/* FENCE: guest memory is host memory, so a host fence orders it. */
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
		break;
	case 1:
		/*
		 * FENCE.I: decode cache entries check their bits at every
		 * fetch; translated blocks check theirs at their next entry.
		 */
		rv64_code_changed(h);
		break;
	default:
		return rv64_illegal(h, insn);
	}
	h->pc += len;
	return EXEC_OK;
}

static int exec_ecall(struct accel_vcpu *h, unsigned len)
{
	struct vcpu_exit *e = h->exit;

	if (h->priv == PRIV_U)
		return rv64_exception(h, CAUSE_ECALL_U, 0);
	e->reason = VCPU_EXIT_SBI;
	e->sbi.ext = h->x[17];
	e->sbi.fid = h->x[16];
	for (unsigned i = 0; i < 6; i++)
		e->sbi.args[i] = h->x[10 + i];
	h->pc += len;
	return EXEC_EXIT;
}

static int exec_wfi(struct accel_vcpu *h, uint32_t insn, unsigned len)
{
	if (h->priv == PRIV_U)
		return rv64_illegal(h, insn);
	h->pc += len;
	rv64_update_stip(h);
	if (rv64_sip(h) & __atomic_load_n(&h->sie, __ATOMIC_RELAXED))
		return EXEC_BREAK;
	h->exit->reason = VCPU_EXIT_WFI;
	return EXEC_EXIT;
}

static int exec_system(struct accel_vcpu *h, uint32_t insn, unsigned len)
{
	if (FUNCT3(insn) != 0) {
		if (FUNCT3(insn) == 4)
			return rv64_illegal(h, insn);
		return rv64_csr_insn(h, insn, len);
	}
	if (FUNCT7(insn) == 0x09 && RD(insn) == 0) {	/* SFENCE.VMA */
		if (h->priv == PRIV_U)
			return rv64_illegal(h, insn);
		if (RS1(insn))
			rv64_tlb_flush_page(h, h->x[RS1(insn)]);
		else
			rv64_tlb_flush(h);
		h->pc += len;
		return EXEC_OK;
	}
	switch (insn) {
	case INSN_ECALL:
		return exec_ecall(h, len);
	case INSN_EBREAK:
		return rv64_exception(h, CAUSE_BREAKPOINT, h->pc);
	case INSN_SRET:
		if (h->priv == PRIV_U)
			return rv64_illegal(h, insn);
		return rv64_sret(h);
	case INSN_WFI:
		return exec_wfi(h, insn, len);
	default:
		return rv64_illegal(h, insn);
	}
}

static int exec_insn(struct accel_vcpu *h, uint32_t insn, unsigned len)
{
	uint64_t pc = h->pc;

	switch (insn & 0x7f) {
	case OPC_LUI:
		h->x[RD(insn)] = sext32(insn & 0xfffff000u);
		h->pc += len;
		return EXEC_OK;
	case OPC_AUIPC:
		h->x[RD(insn)] = pc + sext32(insn & 0xfffff000u);
		h->pc += len;
		return EXEC_OK;
	case OPC_JAL:
		h->x[RD(insn)] = pc + len;
		h->pc = pc + imm_j(insn);
		return EXEC_OK;
	case OPC_JALR:
		if (FUNCT3(insn))
			return rv64_illegal(h, insn);
		h->pc = (h->x[RS1(insn)] + imm_i(insn)) & ~1ull;
		h->x[RD(insn)] = pc + len;
		return EXEC_OK;
	case OPC_BRANCH: return exec_branch(h, insn, len);
	case OPC_LOAD: return exec_load(h, insn, len);
	case OPC_STORE: return exec_store(h, insn, len);
	case OPC_OP_IMM: return exec_op_imm(h, insn, len);
	case OPC_OP_IMM_32: return exec_op_imm_32(h, insn, len);
	case OPC_OP: return exec_op(h, insn, len);
	case OPC_OP_32: return exec_op_32(h, insn, len);
	case OPC_AMO: return exec_amo(h, insn, len);
	case OPC_MISC_MEM: return exec_misc_mem(h, insn, len);
	case OPC_SYSTEM: return exec_system(h, insn, len);
	case OPC_LOAD_FP: case OPC_STORE_FP: case OPC_FMADD: case OPC_FMSUB:
	case OPC_FNMSUB: case OPC_FNMADD: case OPC_OP_FP:
		return rv64_fp_insn(h, insn, len);
	default:
		return rv64_illegal(h, insn);
	}
}

/*
 * Fetches and executes one instruction: the path for everything the decode
 * cache does not handle itself (system, CSR, atomics, F/D, M, faults).
 */
int rv64_step(struct accel_vcpu *h)
{
	uint32_t insn, full;
	int r;

	if (unlikely(rv64_fetch(h, &insn)))
		return EXEC_TRAP;
	if ((insn & 3) == 3) {
		r = exec_insn(h, insn, 4);
	} else {
		full = rv64_rvc_table[insn];
		r = full ? exec_insn(h, full, 2) : rv64_illegal(h, insn);
		/* An illegal expansion reports the 16 bits the guest wrote. */
		if (r == EXEC_TRAP && h->scause == CAUSE_ILLEGAL_INSN && h->stval == full)
			h->stval = insn;
	}
	h->x[0] = 0;
	return r;
}
