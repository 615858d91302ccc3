/* SPDX-License-Identifier: Apache-2.0 */
/* SBI calls from S-mode, and the console and timer built on them. */
#include "rt.h"

#define SBI_EXT_LEGACY_PUTCHAR 0x01
#define SBI_EXT_BASE 0x10
#define SBI_EXT_TIME 0x54494D45
#define SBI_EXT_HSM 0x48534D
#define SBI_EXT_SRST 0x53525354
#define SBI_EXT_DBCN 0x4442434E

#define SIE_STIE (1ul << 5)

struct sbiret sbi_call(unsigned long ext, unsigned long fid, unsigned long a0,
		       unsigned long a1, unsigned long a2)
{
	register unsigned long r0 __asm__("a0") = a0;
	register unsigned long r1 __asm__("a1") = a1;
	register unsigned long r2 __asm__("a2") = a2;
	register unsigned long r6 __asm__("a6") = fid;
	register unsigned long r7 __asm__("a7") = ext;

	__asm__ volatile("ecall"
			 : "+r"(r0), "+r"(r1)
			 : "r"(r2), "r"(r6), "r"(r7)
			 : "memory");
	return (struct sbiret){ .error = (long)r0, .value = (long)r1 };
}

long sbi_probe_extension(unsigned long ext)
{
	struct sbiret r = sbi_call(SBI_EXT_BASE, 3, ext, 0, 0);

	return r.error ? 0 : r.value;
}

long sbi_hart_start(unsigned long hartid, unsigned long start, unsigned long opaque)
{
	return sbi_call(SBI_EXT_HSM, 0, hartid, start, opaque).error;
}

void sbi_set_timer(uint64_t deadline)
{
	sbi_call(SBI_EXT_TIME, 0, deadline, 0, 0);
}

void sbi_shutdown(void)
{
	sbi_call(SBI_EXT_SRST, 0, 0, 0, 0);
	for (;;)
		__asm__ volatile("wfi");
}

/* 0: not probed yet, 1: DBCN, 2: legacy putchar only. */
static int console_kind;
static int console_lock;

static int console_probe(void)
{
	int kind = __atomic_load_n(&console_kind, __ATOMIC_ACQUIRE);

	if (!kind) {
		kind = sbi_probe_extension(SBI_EXT_DBCN) ? 1 : 2;
		__atomic_store_n(&console_kind, kind, __ATOMIC_RELEASE);
	}
	return kind;
}

static void console_write_dbcn(const char *buf, size_t len)
{
	while (len) {
		/* satp is 0: the buffer's virtual address is its physical one. */
		struct sbiret r = sbi_call(SBI_EXT_DBCN, 0, len, (unsigned long)buf, 0);

		if (r.error || r.value <= 0 || (size_t)r.value > len)
			return;
		buf += r.value;
		len -= (size_t)r.value;
	}
}

/* One byte per call: a lock keeps other harts' lines out of the middle of ours. */
static void console_write_legacy(const char *buf, size_t len)
{
	while (__atomic_exchange_n(&console_lock, 1, __ATOMIC_ACQUIRE))
		;
	for (size_t i = 0; i < len; i++)
		sbi_call(SBI_EXT_LEGACY_PUTCHAR, 0, (unsigned char)buf[i], 0, 0);
	__atomic_store_n(&console_lock, 0, __ATOMIC_RELEASE);
}

void console_write(const char *buf, size_t len)
{
	if (console_probe() == 1)
		console_write_dbcn(buf, len);
	else
		console_write_legacy(buf, len);
}

void sleep_until(uint64_t deadline)
{
	/*
	 * sstatus.SIE stays 0, so the timer interrupt is never taken: wfi just
	 * returns once STIP is pending and enabled in sie.
	 */
	__asm__ volatile("csrs sie, %0" : : "r"(SIE_STIE));
	sbi_set_timer(deadline);
	while (rdtime() < deadline)
		__asm__ volatile("wfi");
	sbi_set_timer(UINT64_MAX);
}

void start_other_harts(unsigned long self, unsigned n_harts)
{
	/* Everything the boot hart wrote must be visible to the new harts. */
	__asm__ volatile("fence rw, rw" ::: "memory");
	for (unsigned long h = 0; h < n_harts && h < GUEST_MAX_HARTS; h++) {
		long err;

		if (h == self)
			continue;
		err = sbi_hart_start(h, (unsigned long)_secondary_start, 0);
		if (err)
			gprintf("hsm: hart_start %lu failed: %ld\n", h, err);
	}
}

void trap_report(unsigned long scause, unsigned long sepc, unsigned long stval);
void trap_report(unsigned long scause, unsigned long sepc, unsigned long stval)
{
	unsigned long hartid;

	__asm__ volatile("mv %0, tp" : "=r"(hartid));
	gprintf("trap on hart %lu: scause=0x%lx sepc=0x%lx stval=0x%lx\n",
		hartid, scause, sepc, stval);
	sbi_shutdown();
}
