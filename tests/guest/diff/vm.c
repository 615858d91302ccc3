/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Virtual-memory differential program: Sv39 tables with the image mapped
 * 1:1 by a gigapage and test pages of every permission at VA 0x40000000,
 * then loads, stores and fetches from S- and U-mode, with SUM and MXR, a
 * reserved W-only PTE, a misaligned superpage and a non-canonical address.
 * Every PTE has A (and D where writable) set up front: whether hardware
 * sets them (Svadu) or faults (Svade) is the machine's choice, so neither
 * is exercised.
 */
#include "probe.h"

#define PAGE_SIZE 4096ul
#define PTE_V (1ul << 0)
#define PTE_R (1ul << 1)
#define PTE_W (1ul << 2)
#define PTE_X (1ul << 3)
#define PTE_U (1ul << 4)
#define PTE_A (1ul << 6)
#define PTE_D (1ul << 7)
#define PTE_PPN_SHIFT 10
#define SATP_SV39 (8ul << 60)
#define TEST_VA 0x40000000ul
#define MEGAPAGE_VA 0x40200000ul
#define NONCANONICAL_VA 0x4000000000ul

enum test_page {
	PG_UR,
	PG_URW,
	PG_UX,
	PG_SRW,
	PG_INVALID,
	PG_UXONLY,
	PG_UWONLY,
	N_PAGES,
};

static uint64_t root[512] __attribute__((aligned(PAGE_SIZE)));
static uint64_t l1[512] __attribute__((aligned(PAGE_SIZE)));
static uint64_t l0[512] __attribute__((aligned(PAGE_SIZE)));
static uint8_t pages[N_PAGES][PAGE_SIZE] __attribute__((aligned(PAGE_SIZE)));

__asm__(".text\n"
	".option push\n"
	".option norvc\n"
	".balign 4\n"
	/* Copied into the U-executable page: position-independent, ends in ecall. */
	"ucode_start:\n"
	"u_ld: ld a0, 0(a0)\n ecall\n"
	"u_sd: sd a1, 0(a0)\n ld a0, 0(a0)\n ecall\n"
	"u_jr: jr a0\n"
	"ucode_end:\n"
	"s_ld: ld a0, 0(a0)\n ret\n"
	"s_sd: sd a1, 0(a0)\n ld a0, 0(a0)\n ret\n"
	"s_jr: jr a0\n"
	".option pop\n");

extern char ucode_start[], ucode_end[], u_ld[], u_sd[], u_jr[], s_ld[], s_sd[], s_jr[];

static unsigned long page_va(enum test_page p)
{
	return TEST_VA + p * PAGE_SIZE;
}

static uint64_t pte_table(const void *next)
{
	return ((uintptr_t)next >> 12) << PTE_PPN_SHIFT | PTE_V;
}

static uint64_t pte_leaf(uintptr_t pa, uint64_t perms)
{
	return (pa >> 12) << PTE_PPN_SHIFT | perms | PTE_V | PTE_A;
}

static void sfence_all(void)
{
	__asm__ volatile("sfence.vma" ::: "memory");
}

static void build_tables(void)
{
	static const uint64_t perms[N_PAGES] = {
		[PG_UR] = PTE_U | PTE_R,
		[PG_URW] = PTE_U | PTE_R | PTE_W | PTE_D,
		[PG_UX] = PTE_U | PTE_X,
		[PG_SRW] = PTE_R | PTE_W | PTE_D,
		[PG_INVALID] = 0,
		[PG_UXONLY] = PTE_U | PTE_X,
		[PG_UWONLY] = PTE_U | PTE_W | PTE_D,
	};

	root[2] = pte_leaf(0x80000000ul, PTE_R | PTE_W | PTE_X | PTE_D);
	root[1] = pte_table(l1);
	l1[0] = pte_table(l0);
	/* A 2 MiB leaf whose PPN is only 4 KiB aligned: the walk must fault. */
	l1[1] = pte_leaf((uintptr_t)pages[PG_URW], PTE_U | PTE_R | PTE_W | PTE_D);
	for (unsigned p = 0; p < N_PAGES; p++)
		l0[p] = p == PG_INVALID ? 0 : pte_leaf((uintptr_t)pages[p], perms[p]);
}

static void fill_pages(void)
{
	for (unsigned p = 0; p < N_PAGES; p++)
		for (unsigned i = 0; i < PAGE_SIZE; i += 8)
			*(uint64_t *)&pages[p][i] = 0x5a00000000000000ull | page_va(p) | i;
	memcpy(pages[PG_UX], ucode_start, (size_t)(ucode_end - ucode_start));
	memcpy(pages[PG_UXONLY], ucode_start, (size_t)(ucode_end - ucode_start));
	__asm__ volatile("fence.i" ::: "memory");
}

static unsigned long user_entry(const char *seq)
{
	return page_va(PG_UX) + (unsigned long)(seq - ucode_start);
}

static void show(const char *name, unsigned long entry, unsigned long a0, unsigned long a1,
		 int user)
{
	struct probe_result r;

	probe_run(entry, a0, a1, user, &r);
	probe_print(name, entry, &r, PROBE_TVAL_RAW, 0);
}

static void user_accesses(void)
{
	unsigned long ld = user_entry(u_ld), sd = user_entry(u_sd), jr = user_entry(u_jr);

	show("u ld ur", ld, page_va(PG_UR) + 8, 0, 1);
	show("u sd ur", sd, page_va(PG_UR) + 16, 1, 1);
	show("u sd urw", sd, page_va(PG_URW) + 24, 0x1234, 1);
	show("u ld urw", ld, page_va(PG_URW) + 24, 0, 1);
	show("u ld ux", ld, page_va(PG_UX), 0, 1);
	show("u ld srw", ld, page_va(PG_SRW) + 32, 0, 1);
	show("u ld invalid", ld, page_va(PG_INVALID) + 40, 0, 1);
	show("u sd invalid", sd, page_va(PG_INVALID) + 40, 2, 1);
	show("u ld wonly", ld, page_va(PG_UWONLY), 0, 1);
	show("u sd wonly", sd, page_va(PG_UWONLY), 3, 1);
	show("u ld megapage", ld, MEGAPAGE_VA + 8, 0, 1);
	show("u jr ur", jr, page_va(PG_UR) + 12, 0, 1);
	show("u jr srw", jr, page_va(PG_SRW), 0, 1);
	show("u jr uxonly", jr, page_va(PG_UXONLY), page_va(PG_UR) + 48, 1);
	show("u ld kernel", ld, (unsigned long)pages[PG_URW], 0, 1);
	show("u ld noncanonical", ld, NONCANONICAL_VA, 0, 1);
}

static void mxr_accesses(void)
{
	unsigned long ld = user_entry(u_ld);

	show("u ld uxonly mxr=0", ld, page_va(PG_UXONLY) + 64, 0, 1);
	csr_set_sstatus(SSTATUS_MXR);
	show("u ld uxonly mxr=1", ld, page_va(PG_UXONLY) + 64, 0, 1);
	csr_set_sstatus(SSTATUS_SUM);
	show("s ld uxonly sum=1 mxr=1", (unsigned long)s_ld, page_va(PG_UXONLY) + 72, 0, 0);
	csr_clear_sstatus(SSTATUS_MXR);
	show("s ld uxonly sum=1 mxr=0", (unsigned long)s_ld, page_va(PG_UXONLY) + 72, 0, 0);
	csr_clear_sstatus(SSTATUS_SUM);
}

static void supervisor_accesses(void)
{
	show("s ld srw", (unsigned long)s_ld, page_va(PG_SRW) + 8, 0, 0);
	show("s sd srw", (unsigned long)s_sd, page_va(PG_SRW) + 8, 0x77, 0);
	show("s ld urw sum=0", (unsigned long)s_ld, page_va(PG_URW) + 8, 0, 0);
	show("s sd urw sum=0", (unsigned long)s_sd, page_va(PG_URW) + 8, 5, 0);
	csr_set_sstatus(SSTATUS_SUM);
	show("s ld urw sum=1", (unsigned long)s_ld, page_va(PG_URW) + 8, 0, 0);
	show("s sd urw sum=1", (unsigned long)s_sd, page_va(PG_URW) + 8, 6, 0);
	show("s sd ur sum=1", (unsigned long)s_sd, page_va(PG_UR) + 8, 7, 0);
	/* SUM never allows executing a U page from S-mode. */
	show("s jr ux sum=1", (unsigned long)s_jr, user_entry(u_ld), 0, 0);
	csr_clear_sstatus(SSTATUS_SUM);
	show("s jr srw", (unsigned long)s_jr, page_va(PG_SRW), 0, 0);
	show("s ld invalid", (unsigned long)s_ld, page_va(PG_INVALID), 0, 0);
	show("s ld noncanonical", (unsigned long)s_ld, NONCANONICAL_VA, 0, 0);
	show("s ld noncanonical high", (unsigned long)s_ld, 0xffffff0000000000ul, 0, 0);
}

/* A PTE change takes effect once sfence.vma has run. */
static void remap(void)
{
	l0[PG_UR] |= PTE_W | PTE_D;
	l0[PG_INVALID] = pte_leaf((uintptr_t)pages[PG_INVALID], PTE_U | PTE_R);
	sfence_all();
	show("u sd ur now rw", user_entry(u_sd), page_va(PG_UR) + 16, 0xabcd, 1);
	show("u ld invalid now r", user_entry(u_ld), page_va(PG_INVALID) + 40, 0, 1);
	gprintf("phys ur+16: %lx\n", (unsigned long)*(volatile uint64_t *)&pages[PG_UR][16]);
	gprintf("phys urw+8: %lx\n", (unsigned long)*(volatile uint64_t *)&pages[PG_URW][8]);
	gprintf("phys srw+8: %lx\n", (unsigned long)*(volatile uint64_t *)&pages[PG_SRW][8]);
}

void boot_main(unsigned long hartid, const void *fdt)
{
	diff_begin("vm");
	fill_pages();
	build_tables();
	__asm__ volatile("csrw satp, %0" : : "r"(SATP_SV39 | (uintptr_t)root >> 12) : "memory");
	sfence_all();
	gprintf("sv39 on\n");
	user_accesses();
	mxr_accesses();
	supervisor_accesses();
	remap();
	__asm__ volatile("csrw satp, zero" ::: "memory");
	sfence_all();
	diff_end("vm");
}

void secondary_main(unsigned long hartid, unsigned long opaque)
{
}
