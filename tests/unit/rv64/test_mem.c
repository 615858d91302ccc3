/* SPDX-License-Identifier: Apache-2.0 */
/* Loads and stores: widths, extension, misaligned and page-crossing, MMIO, access faults. */
#include "harness.h"

static struct tmachine tm;

#define DATA (RAM_BASE + 0x8000)

static void setup(void)
{
	tm_init(&tm);
	tm_trap_to_ecall(&tm);
}

static void teardown(void)
{
	tm_fini(&tm);
}

TestSuite(rv64_mem, .init = setup, .fini = teardown);

/* Runs one instruction with a1 = address, a2 = value; returns a0. */
static uint64_t mem1(uint32_t insn, uint64_t addr, uint64_t val)
{
	tm.cursor = RAM_BASE;
	emit(&tm, insn);
	emit(&tm, ECALL);
	tm_set_pc(&tm, RAM_BASE);
	set_reg(&tm, A1, addr);
	set_reg(&tm, A2, val);
	tm_run_to_ecall(&tm);
	return reg(&tm, A0);
}

Test(rv64_mem, load_widths_and_extension)
{
	uint64_t v = 0x8182838485868788ull;

	tm_poke64(&tm, DATA, v);
	cr_expect_eq(mem1(LB(A0, A1, 0), DATA, 0), (uint64_t)(int64_t)(int8_t)v);
	cr_expect_eq(mem1(LBU(A0, A1, 0), DATA, 0), v & 0xff);
	cr_expect_eq(mem1(LH(A0, A1, 0), DATA, 0), (uint64_t)(int64_t)(int16_t)v);
	cr_expect_eq(mem1(LHU(A0, A1, 0), DATA, 0), v & 0xffff);
	cr_expect_eq(mem1(LW(A0, A1, 0), DATA, 0), (uint64_t)(int64_t)(int32_t)v);
	cr_expect_eq(mem1(LWU(A0, A1, 0), DATA, 0), v & 0xffffffff);
	cr_expect_eq(mem1(LD(A0, A1, 0), DATA, 0), v);
	cr_expect_eq(mem1(LBU(A0, A1, 7), DATA, 0), v >> 56, "positive offset");
	cr_expect_eq(mem1(LBU(A0, A1, -1), DATA + 8, 0), v >> 56, "negative offset");
}

Test(rv64_mem, store_widths)
{
	uint64_t v = 0x1122334455667788ull;

	tm_poke64(&tm, DATA, UINT64_MAX);
	mem1(SB(A1, A2, 0), DATA, v);
	cr_expect_eq(tm_peek64(&tm, DATA), 0xffffffffffffff88ull);
	mem1(SH(A1, A2, 2), DATA, v);
	cr_expect_eq(tm_peek64(&tm, DATA), 0xffffffff7788ff88ull);
	mem1(SW(A1, A2, 4), DATA, v);
	cr_expect_eq(tm_peek64(&tm, DATA), 0x556677887788ff88ull);
	mem1(SD(A1, A2, 0), DATA, v);
	cr_expect_eq(tm_peek64(&tm, DATA), v);
}

Test(rv64_mem, misaligned_and_page_crossing)
{
	uint64_t edge = RAM_BASE + 0x9000 - 3;	/* 3 bytes before a page boundary */
	uint64_t v = 0x0102030405060708ull;

	mem1(SD(A1, A2, 0), edge, v);
	cr_expect_eq(mem1(LD(A0, A1, 0), edge, 0), v);
	cr_expect_eq(mem1(LWU(A0, A1, 1), edge, 0), (v >> 8) & 0xffffffff);
	tm_poke64(&tm, DATA, 0x0000000000f00d00ull);
	cr_expect_eq(mem1(LH(A0, A1, 0), DATA + 1, 0), (uint64_t)(int64_t)(int16_t)0xf00d,
		     "misaligned in-page, sign-extended");
	mem1(SW(A1, A2, 0), DATA + 1, 0xdeadbeef);
	cr_expect_eq(mem1(LWU(A0, A1, 0), DATA + 1, 0), 0xdeadbeef);
	cr_expect_eq(tm_state(&tm).scause, 0, "no trap taken");
}

Test(rv64_mem, mmio_read_write)
{
	tm.mmio_reg = 0x1234;
	cr_expect_eq(mem1(LW(A0, A1, 0), MMIO_BASE, 0), 0x1234);
	cr_expect_eq(mem1(LBU(A0, A1, 0), MMIO_BASE + 4, 0), (0x1234 + 4) & 0xff,
		     "offset seen by the device, value truncated to the width");
	mem1(SD(A1, A2, 0), MMIO_BASE + 8, 0xabcdef);
	cr_expect_eq(tm.mmio_reg, 0xabcdef);
	cr_expect_eq(tm.mmio_writes, 1);
}

static void expect_trap(uint64_t cause, uint64_t tval)
{
	struct vcpu_state s = tm_state(&tm);

	cr_expect_eq(s.scause, cause, "scause %lu", (unsigned long)s.scause);
	cr_expect_eq(s.stval, tval, "stval %#lx", (unsigned long)s.stval);
	cr_expect_eq(s.sepc, RAM_BASE);
	cr_expect_eq(s.pc, HANDLER + 4);
}

Test(rv64_mem, unmapped_load_is_access_fault)
{
	uint64_t a0 = mem1(LD(A0, A1, 0), 0x40000000, 0);

	expect_trap(5, 0x40000000);
	cr_expect_eq(a0, 0, "rd not written");
}

Test(rv64_mem, unmapped_store_is_access_fault)
{
	mem1(SW(A1, A2, 0), 0x40000008, 1);
	expect_trap(7, 0x40000008);
}

Test(rv64_mem, device_refusal_is_access_fault)
{
	mem1(LW(A0, A1, 0), MMIO_BASE + MMIO_SIZE, 0);
	expect_trap(5, MMIO_BASE + MMIO_SIZE);
}

Test(rv64_mem, misaligned_mmio_is_access_fault)
{
	mem1(SW(A1, A2, 0), MMIO_BASE + 2, 0);
	expect_trap(7, MMIO_BASE + 2);
	cr_expect_eq(tm.mmio_writes, 0);
}

Test(rv64_mem, fetch_outside_ram_faults)
{
	tm_set_pc(&tm, 0x1000);
	tm_run_to_ecall(&tm);
	cr_expect_eq(tm_state(&tm).scause, 1);
	cr_expect_eq(tm_state(&tm).sepc, 0x1000);
}

Test(rv64_mem, store_then_load_sees_self_modified_code)
{
	/* Overwrites the instruction after the FENCE.I with "addi a0, zero, 7". */
	tm.cursor = RAM_BASE;
	emit(&tm, SW(A1, A2, 0));
	emit(&tm, FENCE_I);
	emit(&tm, ADDI(A0, ZERO, 1));
	emit(&tm, ECALL);
	tm_set_pc(&tm, RAM_BASE);
	set_reg(&tm, A1, RAM_BASE + 8);
	set_reg(&tm, A2, ADDI(A0, ZERO, 7));
	tm_run_to_ecall(&tm);
	cr_expect_eq(reg(&tm, A0), 7);
}
