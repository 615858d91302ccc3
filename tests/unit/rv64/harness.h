/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A small machine for engine tests: RAM at RAM_BASE, one device register at
 * MMIO_BASE (everything else outside RAM faults), a clock the test sets, and
 * the instruction encoders of encode.h.
 */
#ifndef CLOISTER_TEST_RV64_HARNESS_H
#define CLOISTER_TEST_RV64_HARNESS_H

#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "accel.h"
#include "encode.h"

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
	uint32_t ecall = ECALL;

	memcpy(tm_host(tm, HANDLER), &ecall, 4);
	s.stvec = HANDLER;
	cr_assert_eq(tm->ops->vcpu_set_state(tm->cpu, &s), 0);
}

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

#endif
