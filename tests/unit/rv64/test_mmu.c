/* SPDX-License-Identifier: Apache-2.0 */
/* Sv39/Sv48 translation: walks, A/D updates, permission and page faults, SUM/MXR, sfence. */
#include "harness.h"

static struct tmachine tm;

#define PTE_V (1u << 0)
#define PTE_R (1u << 1)
#define PTE_W (1u << 2)
#define PTE_X (1u << 3)
#define PTE_U (1u << 4)
#define PTE_A (1u << 6)
#define PTE_D (1u << 7)

#define ROOT (RAM_BASE + 0x100000)	/* Sv39 level 2 */
#define L1 (RAM_BASE + 0x101000)
#define L0 (RAM_BASE + 0x102000)
#define ROOT48 (RAM_BASE + 0x103000)
#define FRAMES (RAM_BASE + 0x200000)	/* backing pages for the test VAs */
#define VA (0x40000000ull)		/* test pages: VA + n * 4096 */
#define USER_CODE_PAGE 7

enum { PG_RW, PG_RO, PG_INVALID, PG_USER, PG_XONLY, PG_NOEXEC, PG_ALT };

static uint64_t pte(uint64_t pa, unsigned flags)
{
	return (pa >> 12) << 10 | flags;
}

static uint64_t frame(unsigned n)
{
	return FRAMES + n * 4096ull;
}

static void map_page(unsigned n, unsigned flags)
{
	tm_poke64(&tm, L0 + 8 * n, flags ? pte(frame(n), flags) : 0);
}

static void setup(void)
{
	tm_init(&tm);
	tm_trap_to_ecall(&tm);
	/* Code, handler and tables: one identity gigapage (global, kernel). */
	tm_poke64(&tm, ROOT + 8 * 2, pte(RAM_BASE, PTE_V | PTE_R | PTE_W | PTE_X | PTE_A | PTE_D));
	tm_poke64(&tm, ROOT + 8 * 1, pte(L1, PTE_V));
	tm_poke64(&tm, L1, pte(L0, PTE_V));
	tm_poke64(&tm, ROOT48, pte(ROOT, PTE_V));
	map_page(PG_RW, PTE_V | PTE_R | PTE_W);
	map_page(PG_RO, PTE_V | PTE_R | PTE_A);
	map_page(PG_USER, PTE_V | PTE_R | PTE_W | PTE_U | PTE_A | PTE_D);
	map_page(PG_XONLY, PTE_V | PTE_X | PTE_A);
	map_page(PG_NOEXEC, PTE_V | PTE_R | PTE_A);
	map_page(USER_CODE_PAGE, PTE_V | PTE_R | PTE_X | PTE_U | PTE_A);
	for (unsigned n = 0; n < 8; n++)
		tm_poke64(&tm, frame(n), 0x1000 + n);
}

static void teardown(void)
{
	tm_fini(&tm);
}

TestSuite(rv64_mmu, .init = setup, .fini = teardown);

/* Turns on translation with csrw satp + sfence.vma, then runs the rest. */
static void start(unsigned mode, uint64_t root)
{
	tm.cursor = RAM_BASE;
	set_reg(&tm, S0, (uint64_t)mode << 60 | root >> 12);
	emit(&tm, CSRRW(ZERO, CSR_SATP, S0));
	emit(&tm, SFENCE_VMA);
}

static void go(void)
{
	tm_set_pc(&tm, RAM_BASE);
	tm_run_to_ecall(&tm);
}

static void expect_fault(uint64_t cause, uint64_t tval)
{
	struct vcpu_state s = tm_state(&tm);

	cr_expect_eq(s.scause, cause, "scause %lu", (unsigned long)s.scause);
	cr_expect_eq(s.stval, tval, "stval %#lx", (unsigned long)s.stval);
}

Test(rv64_mmu, load_store_translate_and_set_a_d)
{
	start(8, ROOT);
	set_reg(&tm, A1, VA + 16);
	emit(&tm, LD(A0, A1, -16));
	emit(&tm, ECALL);
	go();
	cr_expect_eq(reg(&tm, A0), 0x1000 + PG_RW);
	cr_expect(tm_peek64(&tm, L0) & PTE_A, "A set by the load");
	cr_expect_not(tm_peek64(&tm, L0) & PTE_D, "D not set by a load");

	tm.cursor = RAM_BASE + 8;
	emit(&tm, SD(A1, A2, 8));
	emit(&tm, ECALL);
	set_reg(&tm, A2, 0xfeed);
	go();
	cr_expect_eq(tm_peek64(&tm, frame(PG_RW) + 24), 0xfeed);
	cr_expect(tm_peek64(&tm, L0) & PTE_D, "D set by the store");
}

Test(rv64_mmu, sv48_walks_one_more_level)
{
	start(9, ROOT48);
	set_reg(&tm, A1, VA + PG_RO * 4096);
	emit(&tm, LD(A0, A1, 0));
	emit(&tm, ECALL);
	go();
	cr_expect_eq(reg(&tm, A0), 0x1000 + PG_RO);
	cr_expect_eq(tm_state(&tm).satp >> 60, 9);
}

Test(rv64_mmu, page_faults_by_access_type)
{
	uint64_t ro = VA + PG_RO * 4096, inval = VA + PG_INVALID * 4096;

	start(8, ROOT);
	emit(&tm, SD(A1, ZERO, 0));
	set_reg(&tm, A1, ro);
	go();
	expect_fault(15, ro);
	cr_expect_eq(tm_peek64(&tm, frame(PG_RO)), 0x1000 + PG_RO, "store not done");

	start(8, ROOT);
	emit(&tm, LW(A0, A1, 4));
	set_reg(&tm, A1, inval);
	go();
	expect_fault(13, inval + 4);

	start(8, ROOT);
	emit(&tm, AMOADD_D(A0, A1, A2));
	go();
	expect_fault(15, inval);

	start(8, ROOT);
	emit(&tm, JALR(ZERO, A1, 0));
	set_reg(&tm, A1, VA + PG_NOEXEC * 4096);
	go();
	expect_fault(12, VA + PG_NOEXEC * 4096);
	cr_expect_eq(tm_state(&tm).sepc, VA + PG_NOEXEC * 4096);
}

Test(rv64_mmu, non_canonical_address_faults)
{
	uint64_t bad = 1ull << 39;

	start(8, ROOT);
	emit(&tm, LD(A0, A1, 0));
	set_reg(&tm, A1, bad);
	go();
	expect_fault(13, bad);
}

Test(rv64_mmu, sum_gates_supervisor_access_to_user_pages)
{
	uint64_t user = VA + PG_USER * 4096;

	start(8, ROOT);
	emit(&tm, LD(A0, A1, 0));
	set_reg(&tm, A1, user);
	go();
	expect_fault(13, user);

	start(8, ROOT);
	set_reg(&tm, T0, SSTATUS_SUM);
	emit(&tm, CSRRS(ZERO, CSR_SSTATUS, T0));
	emit(&tm, LD(A0, A1, 0));
	emit(&tm, CSRRC(ZERO, CSR_SSTATUS, T0));
	emit(&tm, LD(A2, A1, 0));		/* faults again without SUM */
	go();
	cr_expect_eq(reg(&tm, A0), 0x1000 + PG_USER);
	expect_fault(13, user);
	cr_expect_eq(tm_state(&tm).sepc, RAM_BASE + 8 + 12);
}

Test(rv64_mmu, mxr_makes_execute_only_readable)
{
	uint64_t xo = VA + PG_XONLY * 4096;

	start(8, ROOT);
	set_reg(&tm, T0, SSTATUS_MXR);
	set_reg(&tm, A1, xo);
	emit(&tm, CSRRS(ZERO, CSR_SSTATUS, T0));
	emit(&tm, LD(A0, A1, 0));
	emit(&tm, CSRRC(ZERO, CSR_SSTATUS, T0));
	emit(&tm, LD(A2, A1, 0));
	go();
	cr_expect_eq(reg(&tm, A0), 0x1000 + PG_XONLY);
	expect_fault(13, xo);
}

Test(rv64_mmu, user_mode_needs_u_pages)
{
	uint64_t ucode = VA + USER_CODE_PAGE * 4096;

	tm.cursor = frame(USER_CODE_PAGE);
	emit(&tm, LD(A0, A1, 0));		/* U page: fine */
	emit(&tm, LD(A2, A3, 0));		/* S page: fault */
	start(8, ROOT);
	set_reg(&tm, T0, ucode);
	set_reg(&tm, A1, VA + PG_USER * 4096);
	set_reg(&tm, A3, VA + PG_RW * 4096);
	emit(&tm, CSRRW(ZERO, CSR_SEPC, T0));
	emit(&tm, SRET);
	go();
	cr_expect_eq(reg(&tm, A0), 0x1000 + PG_USER);
	expect_fault(13, VA + PG_RW * 4096);
	cr_expect_eq(tm_state(&tm).sepc, ucode + 4);
	cr_expect_not(tm_state(&tm).sstatus & SSTATUS_SPP);
}

Test(rv64_mmu, supervisor_cannot_execute_user_pages)
{
	uint64_t ucode = VA + USER_CODE_PAGE * 4096;

	start(8, ROOT);
	set_reg(&tm, T0, SSTATUS_SUM);
	emit(&tm, CSRRS(ZERO, CSR_SSTATUS, T0));
	emit(&tm, JALR(ZERO, A1, 0));
	set_reg(&tm, A1, ucode);
	go();
	expect_fault(12, ucode);
}

Test(rv64_mmu, sfence_vma_drops_stale_translations)
{
	start(8, ROOT);
	set_reg(&tm, A1, VA);
	set_reg(&tm, A2, L0);
	set_reg(&tm, A3, pte(frame(PG_ALT), PTE_V | PTE_R | PTE_W | PTE_A | PTE_D));
	tm_poke64(&tm, frame(PG_ALT), 0xa17);
	emit(&tm, LD(A0, A1, 0));		/* fills the TLB */
	emit(&tm, SD(A2, A3, 0));		/* remap VA to the alternate frame */
	emit(&tm, SFENCE_VMA);
	emit(&tm, LD(A4, A1, 0));
	emit(&tm, ECALL);
	go();
	cr_expect_eq(reg(&tm, A0), 0x1000 + PG_RW);
	cr_expect_eq(reg(&tm, A4), 0xa17);
}

/*
 * Two pages one TLB index apart (1 MiB) are used in turn: both stay cached
 * (the TLB's two ways) and read and write their own frames. Then both are
 * remapped and one SFENCE.VMA must drop both ways.
 */
Test(rv64_mmu, pages_sharing_a_tlb_index_and_a_flush_of_both_ways)
{
	uint64_t far = VA + (256ull << 12);
	unsigned rounds = 100;

	tm_poke64(&tm, L0 + 8 * 256, pte(frame(PG_ALT), PTE_V | PTE_R | PTE_W | PTE_A | PTE_D));
	tm_poke64(&tm, frame(PG_ALT), 0xa17);
	start(8, ROOT);
	set_reg(&tm, A1, VA);
	set_reg(&tm, A3, far);
	set_reg(&tm, A2, L0);
	set_reg(&tm, A5, L0 + 8 * 256);
	set_reg(&tm, T1, rounds);
	set_reg(&tm, S1, pte(frame(PG_RO), PTE_V | PTE_R | PTE_A));
	set_reg(&tm, S2, pte(frame(PG_NOEXEC), PTE_V | PTE_R | PTE_A));
	emit(&tm, LD(A0, A1, 0));		/* loop */
	emit(&tm, ADD(S3, S3, A0));
	emit(&tm, LD(A4, A3, 0));
	emit(&tm, ADD(S3, S3, A4));
	emit(&tm, SD(A3, S3, 8));
	emit(&tm, ADDI(T1, T1, -1));
	emit(&tm, BNE(T1, ZERO, -24));
	emit(&tm, SD(A2, S1, 0));		/* VA to another frame */
	emit(&tm, SD(A5, S2, 0));		/* and the far page */
	emit(&tm, SFENCE_VMA);
	emit(&tm, LD(A0, A1, 0));
	emit(&tm, LD(A4, A3, 0));
	emit(&tm, ECALL);
	go();
	cr_expect_eq(reg(&tm, S3), rounds * (0x1000ull + PG_RW + 0xa17));
	cr_expect_eq(tm_peek64(&tm, frame(PG_ALT) + 8), reg(&tm, S3), "the far page's store");
	cr_expect_eq(reg(&tm, A0), 0x1000 + PG_RO, "way 0 or 1 kept the old VA mapping");
	cr_expect_eq(reg(&tm, A4), 0x1000 + PG_NOEXEC, "way 0 or 1 kept the old far mapping");
}

/*
 * SFENCE.VMA with an address: the page's own entry goes, and so does every
 * entry filled from a superpage, even for another 4 KiB page of it than
 * the one named.
 */
Test(rv64_mmu, sfence_vma_of_one_address)
{
	uint64_t super = VA + (2ull << 20);

	tm_poke64(&tm, L1 + 8, pte(FRAMES, PTE_V | PTE_R | PTE_W | PTE_A | PTE_D));
	tm_poke64(&tm, frame(PG_ALT), 0xa17);
	start(8, ROOT);
	set_reg(&tm, A1, VA);
	set_reg(&tm, A3, super);
	set_reg(&tm, A2, L0);
	set_reg(&tm, A5, L1 + 8);
	set_reg(&tm, T2, super + 5 * 4096);
	set_reg(&tm, S1, pte(frame(PG_ALT), PTE_V | PTE_R | PTE_A));
	emit(&tm, LD(A0, A1, 0));		/* caches VA */
	emit(&tm, LD(A4, A3, 0));		/* caches the superpage's first page */
	emit(&tm, SD(A2, S1, 0));		/* VA to another frame */
	emit(&tm, SD(A5, ZERO, 0));		/* the superpage gone */
	emit(&tm, SFENCE_VMA_ADDR(A1));
	emit(&tm, SFENCE_VMA_ADDR(T2));		/* another page of the superpage */
	emit(&tm, LD(S3, A1, 0));
	emit(&tm, LD(S4, A3, 0));		/* faults */
	go();
	cr_expect_eq(reg(&tm, A0), 0x1000 + PG_RW);
	cr_expect_eq(reg(&tm, A4), 0x1000);
	cr_expect_eq(reg(&tm, S3), 0xa17, "VA's old entry survived SFENCE.VMA of VA");
	expect_fault(13, super);
}

/* A word at the same offset in the two 2 MiB superpages of RAM, each with its own value. */
#define SUPER_OFF 0x1f0000ull
#define IN_FRAMES 0x5a5aull
#define IN_RAM_BASE 0xa5a5ull

/*
 * SFENCE.VMA of a 4 KiB page outside a superpage leaves the superpage's
 * entries cached (the kernel flushes such pages all the time); one of a
 * page inside it drops them all. The first reload sees the old mapping,
 * which only a kept entry can give: the page tables already say otherwise.
 */
Test(rv64_mmu, one_page_flush_elsewhere_keeps_a_superpage_cached)
{
	uint64_t super = VA + (2ull << 20);

	tm_poke64(&tm, L1 + 8, pte(FRAMES, PTE_V | PTE_R | PTE_W | PTE_A | PTE_D));
	tm_poke64(&tm, FRAMES + SUPER_OFF, IN_FRAMES);
	tm_poke64(&tm, RAM_BASE + SUPER_OFF, IN_RAM_BASE);
	start(8, ROOT);
	set_reg(&tm, A1, VA);
	set_reg(&tm, A3, super + SUPER_OFF);
	set_reg(&tm, A5, L1 + 8);
	set_reg(&tm, A2, pte(RAM_BASE, PTE_V | PTE_R | PTE_A));
	set_reg(&tm, T2, super + 5 * 4096);
	emit(&tm, LD(A4, A3, 0));		/* caches a page of the superpage */
	emit(&tm, SD(A5, A2, 0));		/* the superpage onto other frames */
	emit(&tm, SFENCE_VMA_ADDR(A1));		/* a page elsewhere */
	emit(&tm, LD(S3, A3, 0));
	emit(&tm, SFENCE_VMA_ADDR(T2));		/* another page of the superpage */
	emit(&tm, LD(S4, A3, 0));
	emit(&tm, ECALL);
	go();
	cr_expect_eq(reg(&tm, A4), IN_FRAMES);
	cr_expect_eq(reg(&tm, S3), IN_FRAMES, "a flush of another page dropped the superpage");
	cr_expect_eq(reg(&tm, S4), IN_RAM_BASE, "the superpage outlived a flush of one of its pages");
}

/*
 * More superpages cached than the TLB keeps track of (40, all onto the
 * same frames): a one-page flush inside the last one must still drop it.
 */
Test(rv64_mmu, one_page_flush_after_more_superpages_than_tracked)
{
	unsigned n = 40;
	uint64_t last = VA + (uint64_t)n * (2ull << 20);

	for (unsigned k = 1; k <= n; k++)
		tm_poke64(&tm, L1 + 8 * k, pte(FRAMES, PTE_V | PTE_R | PTE_W | PTE_A | PTE_D));
	tm_poke64(&tm, FRAMES + SUPER_OFF, IN_FRAMES);
	tm_poke64(&tm, RAM_BASE + SUPER_OFF, IN_RAM_BASE);
	start(8, ROOT);
	set_reg(&tm, A3, VA + (2ull << 20) + SUPER_OFF);
	set_reg(&tm, T3, 2ull << 20);
	set_reg(&tm, T1, n);
	set_reg(&tm, A5, L1 + 8 * n);
	set_reg(&tm, A2, pte(RAM_BASE, PTE_V | PTE_R | PTE_A));
	set_reg(&tm, T2, last + 5 * 4096);
	emit(&tm, LD(A4, A3, 0));		/* loop: one page of each superpage */
	emit(&tm, ADD(S3, S3, A4));
	emit(&tm, ADD(A3, A3, T3));
	emit(&tm, ADDI(T1, T1, -1));
	emit(&tm, BNE(T1, ZERO, -16));
	emit(&tm, SUB(A3, A3, T3));		/* back into the last one */
	emit(&tm, SD(A5, A2, 0));		/* the last one onto other frames */
	emit(&tm, SFENCE_VMA_ADDR(T2));		/* another page of it */
	emit(&tm, LD(S4, A3, 0));
	emit(&tm, ECALL);
	go();
	cr_expect_eq(reg(&tm, S3), n * IN_FRAMES);
	cr_expect_eq(reg(&tm, S4), IN_RAM_BASE, "the last superpage outlived a flush of one of its pages");
}

/*
 * A page flushed alone and refilled more times than the TLB has slots,
 * then remapped: a full SFENCE.VMA must still drop its entry.
 */
Test(rv64_mmu, full_flush_after_many_one_page_flushes)
{
	tm_poke64(&tm, frame(PG_ALT), 0xa17);
	start(8, ROOT);
	set_reg(&tm, A1, VA);
	set_reg(&tm, A3, VA + PG_RO * 4096);
	set_reg(&tm, A2, L0 + PG_RO * 8);
	set_reg(&tm, T1, 6000);
	set_reg(&tm, S1, pte(frame(PG_ALT), PTE_V | PTE_R | PTE_A));
	emit(&tm, LD(A0, A1, 0));		/* loop */
	emit(&tm, SFENCE_VMA_ADDR(A1));
	emit(&tm, ADDI(T1, T1, -1));
	emit(&tm, BNE(T1, ZERO, -12));
	emit(&tm, LD(A0, A3, 0));		/* a slot not filled before */
	emit(&tm, SD(A2, S1, 0));		/* its page to another frame */
	emit(&tm, SFENCE_VMA);
	emit(&tm, LD(A4, A3, 0));
	emit(&tm, ECALL);
	go();
	cr_expect_eq(reg(&tm, A0), 0x1000 + PG_RO);
	cr_expect_eq(reg(&tm, A4), 0xa17, "a stale entry outlived SFENCE.VMA");
}

Test(rv64_mmu, remote_flush_takes_effect_on_next_run)
{
	start(8, ROOT);
	set_reg(&tm, A1, VA);
	emit(&tm, LD(A0, A1, 0));
	emit(&tm, ECALL);
	emit(&tm, LD(A4, A1, 0));
	emit(&tm, ECALL);
	go();
	tm_poke64(&tm, L0, pte(frame(PG_ALT), PTE_V | PTE_R | PTE_A));
	tm_poke64(&tm, frame(PG_ALT), 0xa17);
	tm.ops->vcpu_flush_tlb(tm.cpu);
	tm_run_to_ecall(&tm);
	cr_expect_eq(reg(&tm, A4), 0xa17);
}

Test(rv64_mmu, superpage_with_misaligned_ppn_faults)
{
	/* A 2 MiB leaf at L1 index 1 whose PPN is not 2 MiB-aligned. */
	uint64_t va = VA + (2ull << 20);

	tm_poke64(&tm, L1 + 8, pte(RAM_BASE + 0x1000, PTE_V | PTE_R | PTE_A));
	start(8, ROOT);
	emit(&tm, LD(A0, A1, 0));
	set_reg(&tm, A1, va);
	go();
	expect_fault(13, va);
}
