/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Benchmark guest for the RV64 engine, run bare (satp = 0) from RAM_BASE by
 * bench_rv64.c. a0 picks the workload; the result comes back in a0 at the
 * closing ECALL, so the host can check the work was really done.
 */
#include <stdint.h>

__asm__(".section .text.start, \"ax\"\n"
	".globl _start\n"
	"_start:\n"
	"	lla sp, bench_stack + 16384\n"
	"	call bench_main\n"
	"	ecall\n"
	"1:	j 1b\n"
	/* The trap handler skips the faulting 4-byte load. */
	".balign 4\n"
	"bench_trap:\n"
	"	csrrw t6, sscratch, t6\n"
	"	csrr t6, sepc\n"
	"	addi t6, t6, 4\n"
	"	csrw sepc, t6\n"
	"	csrrw t6, sscratch, t6\n"
	"	sret\n"
	".text\n");

uint8_t bench_stack[16384] __attribute__((aligned(16)));

#define SIEVE_N 32768
static uint8_t composite[SIEVE_N];
static uint32_t crc_table[256];

static uint32_t sieve(void)
{
	uint32_t primes = 0;

	for (uint32_t i = 0; i < SIEVE_N; i++)
		composite[i] = 0;
	for (uint32_t i = 2; i < SIEVE_N; i++) {
		if (composite[i])
			continue;
		primes++;
		for (uint32_t j = i * 2; j < SIEVE_N; j += i)
			composite[j] = 1;
	}
	return primes;
}

static uint32_t crc32(const uint8_t *p, uint32_t n)
{
	uint32_t c = 0xffffffffu;

	for (uint32_t i = 0; i < n; i++)
		c = crc_table[(c ^ p[i]) & 0xff] ^ (c >> 8);
	return ~c;
}

static uint64_t int_work(uint64_t rounds)
{
	uint64_t acc = 0;

	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;

		for (int k = 0; k < 8; k++)
			c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
		crc_table[i] = c;
	}
	for (uint64_t r = 0; r < rounds; r++) {
		acc += sieve();
		acc = acc * 31 + crc32(composite, SIEVE_N);
	}
	return acc;
}

/* Loads from an unmapped address: each one is an access fault and an SRET. */
static uint64_t trap_work(uint64_t rounds)
{
	uint64_t handler, sum = 0;

	__asm__ volatile("lla %0, bench_trap\n csrw stvec, %0" : "=r"(handler));
	for (uint64_t r = 0; r < rounds; r++) {
		uint64_t v = r;

		__asm__ volatile(".option push\n.option norvc\n"
				 "lw %0, 0(zero)\n"
				 ".option pop\n" : "+r"(v) : : "memory");
		sum += v;
	}
	return sum;
}

static double fp_work(uint64_t rounds)
{
	double x = 1.0, y = 0.5;

	for (uint64_t r = 0; r < rounds; r++) {
		x = x * 1.0000001 + y;
		y = y / 1.5 + 0.25;
		if (x > 1e6)
			x = x / 3.0;
	}
	return x + y;
}

uint64_t bench_main(uint64_t mode, uint64_t rounds)
{
	union { double d; uint64_t u; } v;

	switch (mode) {
	case 0:
		return int_work(rounds);
	case 1:
		return trap_work(rounds);
	default:
		/* FS starts Off: turn the FPU on first. */
		__asm__ volatile("li t0, 0x2000\n csrs sstatus, t0" ::: "t0");
		v.d = fp_work(rounds);
		return v.u;
	}
}
