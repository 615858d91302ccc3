/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A small machine for engine tests: RAM at RAM_BASE, one device register at
 * MMIO_BASE (everything else outside RAM faults), a clock the test sets, and
 * instruction encoders so programs can be written without an assembler.
 */
#ifndef CLOISTER_TEST_RV64_HARNESS_H
#define CLOISTER_TEST_RV64_HARNESS_H

#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "accel.h"

#define RAM_BASE 0x80000000ull
#define RAM_SIZE (4ull << 20)
#define MMIO_BASE 0x10000000ull
#define MMIO_SIZE 0x100ull

struct tmachine {
	struct machine_map map;
	uint8_t *ram;
	const struct accel_ops *ops;
	struct accel_vcpu *cpu;
	uint64_t now;
	uint64_t mmio_reg;
	unsigned mmio_writes;
	uint64_t cursor;	/* where emit() puts the next instruction (guest physical) */
};

static inline int tm_mmio_read(void *opaque, uint64_t gpa, unsigned size, uint64_t *ret_val)
{
	struct tmachine *tm = opaque;

	if (gpa < MMIO_BASE || gpa + size > MMIO_BASE + MMIO_SIZE)
		return -EFAULT;
	*ret_val = tm->mmio_reg + (gpa - MMIO_BASE);
	return 0;
}

static inline int tm_mmio_write(void *opaque, uint64_t gpa, unsigned size, uint64_t val)
{
	struct tmachine *tm = opaque;

	if (gpa < MMIO_BASE || gpa + size > MMIO_BASE + MMIO_SIZE)
		return -EFAULT;
	tm->mmio_reg = val;
	tm->mmio_writes++;
	return 0;
}

static const struct mmio_ops tm_mmio_ops = {
	.read = tm_mmio_read,
	.write = tm_mmio_write,
};

static inline uint64_t tm_read_time(void *opaque)
{
	return __atomic_load_n(&((struct tmachine *)opaque)->now, __ATOMIC_ACQUIRE);
}

static inline void tm_init(struct tmachine *tm)
{
	memset(tm, 0, sizeof(*tm));
	tm->ram = aligned_alloc(4096, RAM_SIZE);
	cr_assert_not_null(tm->ram);
	memset(tm->ram, 0, RAM_SIZE);
	tm->map = (struct machine_map){
		.ram = { { .gpa = RAM_BASE, .size = RAM_SIZE, .host = tm->ram } },
		.n_ram = 1,
		.mmio = &tm_mmio_ops,
		.mmio_opaque = tm,
		.read_time = tm_read_time,
		.time_opaque = tm,
	};
	tm->ops = accel_rv64_ops();
	cr_assert_eq(tm->ops->vcpu_create(&tm->map, 0, &tm->cpu), 0);
	tm->cursor = RAM_BASE;
	tm->ops->vcpu_set_reg(tm->cpu, 0, 0);
}

static inline void tm_fini(struct tmachine *tm)
{
	tm->ops->vcpu_destroy(tm->cpu);
	free(tm->ram);
}

static inline void *tm_host(struct tmachine *tm, uint64_t gpa)
{
	cr_assert(gpa >= RAM_BASE && gpa < RAM_BASE + RAM_SIZE);
	return tm->ram + (gpa - RAM_BASE);
}

static inline uint64_t tm_peek64(struct tmachine *tm, uint64_t gpa)
{
	uint64_t v;

	memcpy(&v, tm_host(tm, gpa), 8);
	return v;
}

static inline void tm_poke64(struct tmachine *tm, uint64_t gpa, uint64_t v)
{
	memcpy(tm_host(tm, gpa), &v, 8);
}

static inline void emit(struct tmachine *tm, uint32_t insn)
{
	memcpy(tm_host(tm, tm->cursor), &insn, 4);
	tm->cursor += 4;
}

static inline void emit16(struct tmachine *tm, uint16_t insn)
{
	memcpy(tm_host(tm, tm->cursor), &insn, 2);
	tm->cursor += 2;
}

static inline struct vcpu_state tm_state(struct tmachine *tm)
{
	struct vcpu_state s;

	cr_assert_eq(tm->ops->vcpu_get_state(tm->cpu, &s), 0);
	return s;
}

static inline void tm_set_pc(struct tmachine *tm, uint64_t pc)
{
	struct vcpu_state s = tm_state(tm);

	s.pc = pc;
	cr_assert_eq(tm->ops->vcpu_set_state(tm->cpu, &s), 0);
}

static inline uint64_t reg(struct tmachine *tm, unsigned r)
{
	return tm->ops->vcpu_get_reg(tm->cpu, r);
}

static inline void set_reg(struct tmachine *tm, unsigned r, uint64_t v)
{
	tm->ops->vcpu_set_reg(tm->cpu, r, v);
}

static inline struct vcpu_exit tm_run(struct tmachine *tm)
{
	struct vcpu_exit e;

	memset(&e, 0, sizeof(e));
	cr_assert_eq(tm->ops->vcpu_run(tm->cpu, &e), 0);
	return e;
}

/* Runs until the program's closing ECALL (an SBI exit). */
static inline void tm_run_to_ecall(struct tmachine *tm)
{
	struct vcpu_exit e = tm_run(tm);

	cr_assert_eq(e.reason, VCPU_EXIT_SBI, "exit reason %d, pc %#lx", e.reason,
		     (unsigned long)tm_state(tm).pc);
}

#define HANDLER (RAM_BASE + 0x10000)

/* Points stvec at HANDLER, where an ECALL hands control back to the test. */
static inline void tm_trap_to_ecall(struct tmachine *tm)
{
	struct vcpu_state s = tm_state(tm);
	uint32_t ecall = 0x00000073u;

	memcpy(tm_host(tm, HANDLER), &ecall, 4);
	s.stvec = HANDLER;
	cr_assert_eq(tm->ops->vcpu_set_state(tm->cpu, &s), 0);
}

/* Instruction encoders (RISC-V unprivileged spec, base formats). */
static inline uint32_t enc_r(unsigned op, unsigned rd, unsigned f3, unsigned rs1, unsigned rs2,
			     unsigned f7)
{
	return f7 << 25 | rs2 << 20 | rs1 << 15 | f3 << 12 | rd << 7 | op;
}

static inline uint32_t enc_i(unsigned op, unsigned rd, unsigned f3, unsigned rs1, int32_t imm)
{
	return ((uint32_t)imm & 0xfff) << 20 | rs1 << 15 | f3 << 12 | rd << 7 | op;
}

static inline uint32_t enc_s(unsigned f3, unsigned rs1, unsigned rs2, int32_t imm)
{
	uint32_t u = imm;

	return ((u >> 5) & 0x7f) << 25 | rs2 << 20 | rs1 << 15 | f3 << 12 | (u & 31) << 7 | 0x23;
}

static inline uint32_t enc_b(unsigned f3, unsigned rs1, unsigned rs2, int32_t imm)
{
	uint32_t u = imm;

	return ((u >> 12) & 1) << 31 | ((u >> 5) & 0x3f) << 25 | rs2 << 20 | rs1 << 15 |
	       f3 << 12 | ((u >> 1) & 0xf) << 8 | ((u >> 11) & 1) << 7 | 0x63;
}

static inline uint32_t enc_u(unsigned op, unsigned rd, uint32_t imm)
{
	return (imm & 0xfffff000u) | rd << 7 | op;
}

static inline uint32_t enc_j(unsigned rd, int32_t imm)
{
	uint32_t u = imm;

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
#define ECALL 0x00000073u
#define EBREAK 0x00100073u
#define SRET 0x10200073u
#define WFI 0x10500073u
#define SFENCE_VMA 0x12000073u
#define FENCE_I 0x0000100fu
#define NOP ADDI(0, 0, 0)

enum {
	CSR_SSTATUS = 0x100, CSR_SIE = 0x104, CSR_STVEC = 0x105, CSR_SCOUNTEREN = 0x106,
	CSR_SENVCFG = 0x10a, CSR_SSCRATCH = 0x140, CSR_SEPC = 0x141, CSR_SCAUSE = 0x142,
	CSR_STVAL = 0x143, CSR_SIP = 0x144, CSR_SATP = 0x180,
	CSR_CYCLE = 0xc00, CSR_TIME = 0xc01, CSR_INSTRET = 0xc02,
};

#define SSTATUS_SIE (1ull << 1)
#define SSTATUS_SPIE (1ull << 5)
#define SSTATUS_SPP (1ull << 8)
#define SSTATUS_SUM (1ull << 18)
#define SSTATUS_MXR (1ull << 19)
#define CAUSE_INTR (1ull << 63)

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

/* Register numbers by ABI name, for readable programs. */
enum {
	ZERO, RA, SP, GP, TP, T0, T1, T2, S0, S1, A0, A1, A2, A3, A4, A5, A6, A7,
	S2, S3, S4, S5, S6, S7, S8, S9, S10, S11, T3, T4, T5, T6,
};

#endif
