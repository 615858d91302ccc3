/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Internals of the RV64 software engine, shared by its files: the hart
 * structure, CSR bit layouts, and the inline fast paths for memory access
 * (a per-hart software TLB holding guest-virtual page -> host pointer).
 */
#ifndef CLOISTER_RV64_HART_H
#define CLOISTER_RV64_HART_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "accel.h"

#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)
#define hot_inline inline __attribute__((always_inline))

#define PAGE_SHIFT 12
#define PAGE_SIZE (1ull << PAGE_SHIFT)
#define PAGE_OFFSET_MASK (PAGE_SIZE - 1)

#define TLB_SIZE 1024

/* What an access is for; indexes the TLB tables and picks exception causes. */
enum access_type { ACC_READ, ACC_WRITE, ACC_FETCH, ACC__MAX };

/*
 * Permissions cached in a TLB entry depend on the privilege and on
 * sstatus.SUM, so each combination gets its own tables: a trap or a SUM
 * toggle (Linux does one per uaccess) switches tables instead of flushing.
 */
enum tlb_mode { TLBM_U, TLBM_S, TLBM_S_SUM, TLBM__MAX };

/* Entries of the TLB: two ways of every mode's and access's table. */
#define TLB_SLOTS (2 * TLBM__MAX * ACC__MAX * TLB_SIZE)

/*
 * The TLB is two-way: an index holds the page used last there (way 0, the
 * one the inline lookups try) and the one before it (way 1), so two hot
 * pages 1 MiB apart do not evict each other at every turn. The slow paths
 * look in way 1 before walking and swap a hit into way 0; translated code
 * reads either.
 */
struct tlb_entry {
	uint64_t vpn;		/* guest virtual page number, or TLB_INVALID */
	uintptr_t addend;	/* host address = addend + guest virtual address */
};

#define TLB_INVALID UINT64_MAX

/*
 * The decode cache: per hart, direct-mapped by guest virtual pc. An entry
 * holds an instruction's bits and its pre-decoded form; decoding depends on
 * the bits alone, so the run loop validates an entry by comparing the bits
 * it just fetched, and nothing (code stores from any hart or device, FENCE.I,
 * remapping) can make it stale. op 0 (DC_SLOW) runs the generic interpreter.
 */
#define DCACHE_SIZE 8192

struct dc_entry {
	uint32_t raw;	/* 32-bit instruction, or a compressed one zero-extended */
	int32_t imm;
	uint8_t op, rd, rs1, rs2;
	uint8_t len;
};

/* Windows of one translated block live at once (struct accel_vcpu's jit_window). */
#define RV64_JIT_WINDOWS 4

/* Exception causes (scause without the interrupt bit). */
enum {
	CAUSE_MISALIGNED_FETCH = 0,
	CAUSE_FETCH_ACCESS = 1,
	CAUSE_ILLEGAL_INSN = 2,
	CAUSE_BREAKPOINT = 3,
	CAUSE_MISALIGNED_LOAD = 4,
	CAUSE_LOAD_ACCESS = 5,
	CAUSE_MISALIGNED_STORE = 6,
	CAUSE_STORE_ACCESS = 7,
	CAUSE_ECALL_U = 8,
	CAUSE_ECALL_S = 9,
	CAUSE_FETCH_PAGE_FAULT = 12,
	CAUSE_LOAD_PAGE_FAULT = 13,
	CAUSE_STORE_PAGE_FAULT = 15,
};

#define CAUSE_INTERRUPT (1ull << 63)

/* sstatus fields. */
#define SSTATUS_SIE (1ull << 1)
#define SSTATUS_SPIE (1ull << 5)
#define SSTATUS_SPP (1ull << 8)
#define SSTATUS_FS (3ull << 13)
#define SSTATUS_SUM (1ull << 18)
#define SSTATUS_MXR (1ull << 19)
#define SSTATUS_UXL (3ull << 32)
#define SSTATUS_UXL_64 (2ull << 32)
#define SSTATUS_SD (1ull << 63)
#define SSTATUS_WRITABLE (SSTATUS_SIE | SSTATUS_SPIE | SSTATUS_SPP | SSTATUS_FS | \
			  SSTATUS_SUM | SSTATUS_MXR)

#define SIP_SSIP (1ull << IRQ_S_SOFT)
#define SIP_STIP (1ull << IRQ_S_TIMER)
#define SIP_SEIP (1ull << IRQ_S_EXT)
#define SIE_WRITABLE (SIP_SSIP | SIP_STIP | SIP_SEIP)

#define SATP_MODE_SHIFT 60
#define SATP_MODE_BARE 0
#define SATP_MODE_SV39 8
#define SATP_MODE_SV48 9
#define SATP_PPN_MASK ((1ull << 44) - 1)

#define SENVCFG_FIOM 1ull

/* Bits of the attention word other threads set. */
enum {
	ATTN_KICK = 1u << 0,
	ATTN_FLUSH_TLB = 1u << 1,
	ATTN_IRQ = 1u << 2,	/* an interrupt line or the timer changed */
};

/* How an instruction ended, as seen by the run loop. */
enum exec_result {
	EXEC_OK = 0,
	EXEC_TRAP,	/* an exception was taken; pc is at the handler */
	EXEC_BREAK,	/* state that gates interrupts changed: leave the block */
	EXEC_EXIT,	/* leave vcpu_run(); *hart->exit is filled */
};

struct accel_vcpu {
	uint64_t x[32];
	uint64_t pc;
	unsigned priv;
	struct tlb_entry (*tlb)[TLB_SIZE];	/* tlb_all[tlb mode of priv/SUM] */
	struct tlb_entry (*tlb1)[TLB_SIZE];	/* tlb_way1[the same mode] */

	const struct machine_map *map;
	struct vcpu_exit *exit;
	unsigned hartid;

	uint64_t cycle, instret;
	uint64_t sstatus;	/* writable bits only; UXL and SD are synthesised */
	uint64_t sie;		/* atomic: vcpu_irq_pending() reads it from other threads */
	uint64_t stvec, sepc, scause, stval, sscratch;
	uint64_t satp, scounteren, senvcfg;
	uint64_t f[32];
	uint64_t fcsr;

	/* Set from other threads. */
	uint32_t attention;
	/*
	 * Synchronous remote flush: requesters count up flush_req; the hart
	 * publishes in flush_done the count it has applied. in_run is set
	 * while the hart is inside vcpu_run(), the only place it translates.
	 */
	uint32_t in_run;
	uint64_t flush_req;
	uint64_t flush_done;
	uint64_t irq_lines;	/* SSIP and SEIP */
	uint64_t timer_deadline;
	bool stip;		/* time >= deadline, as of the last check */

	/* LR/SC reservation: SC succeeds if memory still holds resv_value. */
	bool resv_valid;
	unsigned resv_size;
	uint64_t resv_addr;
	uint64_t resv_value;

	/* The translator's cache, or NULL: the interpreter runs everything. */
	struct rv64_jit *jit;
	/*
	 * Counts the events after which translated blocks compare their code
	 * bytes with memory again (FENCE.I, a remote fence, a run's start but
	 * after an SBI call, a store to a page the translator took code from):
	 * a block runs without comparing while it was last checked in this
	 * epoch.
	 */
	uint32_t code_epoch;
	bool sbi_exit;		/* the last run ended in an SBI call */
	int64_t jit_left;	/* budget left when translated code returned */
	int jit_helper_r;	/* what a helper called from translated code returned */
	uint64_t jit_site;	/* code offset translated code hands the dispatcher */
	uint64_t jit_split;	/* code offset + 1 of a block to split (apart[] in jit_x86.c), or 0 */
	/*
	 * Translated code's fetch addend (host = it + guest pc; a multiple of
	 * the page size) with jit_epoch_bits in its low 12 bits: what a
	 * block's entry compares with its stamp.
	 */
	uint64_t jit_key;
	uint64_t jit_epoch_bits;	/* bit 11, and code_epoch's low 11 bits */
	/*
	 * Counts the pages the translator stopped watching (the hart's own
	 * store into one): a block whose full check passes may stamp itself
	 * while this still holds the value of its last stamp.
	 */
	uint64_t jit_unwatched;
	/*
	 * Host addresses a block's load (or store) checked for more accesses
	 * from its base register further on in the block (jit_x86.c's
	 * windows), which then take theirs unchecked.
	 */
	uint64_t jit_window[RV64_JIT_WINDOWS];

	struct tlb_entry tlb_all[TLBM__MAX][ACC__MAX][TLB_SIZE];
	struct tlb_entry tlb_way1[TLBM__MAX][ACC__MAX][TLB_SIZE];	/* right after tlb_all */
	/*
	 * Every TLB slot made valid since the last flush (as its index in
	 * tlb_all seen as one array with tlb_way1 behind it), so a flush
	 * clears those alone; tlb_logged is false until a first full clear.
	 */
	uint16_t tlb_log[TLB_SLOTS];
	unsigned tlb_n_log;
	bool tlb_logged;
	/*
	 * The superpages entries were filled from since the last flush, each
	 * as its number (va >> shift) and its page shift, unless there were
	 * more than fit (tlb_super_over); walk_shift: the page shift of the
	 * last walk's leaf, PAGE_SHIFT for a 4 KiB page.
	 */
	struct tlb_super {
		uint64_t number;
		unsigned shift;
	} tlb_super[32];
	unsigned tlb_n_super;
	bool tlb_super_over;
	unsigned walk_shift;
	struct dc_entry dcache[DCACHE_SIZE];
};

/* mmu.c */
void rv64_tlb_flush(struct accel_vcpu *h);
/* SFENCE.VMA for one address: its page's entries, and those filled from superpages. */
void rv64_tlb_flush_page(struct accel_vcpu *h, uint64_t va);
void rv64_tlb_select(struct accel_vcpu *h);
/* Moves va's page from way 1 to way 0 if way 1 holds it: the host address of va, else NULL. */
uint8_t *rv64_tlb_promote(struct accel_vcpu *h, enum access_type acc, uint64_t va);
uint8_t *rv64_ram_ptr(const struct machine_map *map, uint64_t gpa, uint64_t len);
/*
 * For translated code whose access of acc (ACC_READ or ACC_WRITE) at
 * [va, va + last] missed both ways of the TLB: fills the current mode's
 * TLB for va's page and returns 1 when way 0 now holds it; 0 when the
 * interpreter must take the access instead (a fault, a device, a page
 * crossing, or a store into a page code was taken from). Nothing but the
 * walk's and the fill's own effects happen.
 */
int rv64_jit_tlb_fill(struct accel_vcpu *h, uint64_t va, unsigned acc, unsigned last);
int rv64_load_slow(struct accel_vcpu *h, uint64_t va, unsigned size, uint64_t *ret_val);
int rv64_store_slow(struct accel_vcpu *h, uint64_t va, unsigned size, uint64_t val);
int rv64_fetch_slow(struct accel_vcpu *h, uint32_t *ret_insn);
int rv64_amo_ptr(struct accel_vcpu *h, uint64_t va, unsigned size, bool is_lr, void **ret_ptr);

/* csr.c */
int rv64_exception(struct accel_vcpu *h, uint64_t cause, uint64_t tval);
int rv64_illegal(struct accel_vcpu *h, uint32_t insn);
int rv64_csr_insn(struct accel_vcpu *h, uint32_t insn, unsigned len);
int rv64_sret(struct accel_vcpu *h);
uint64_t rv64_read_time(const struct accel_vcpu *h);
void rv64_update_stip(struct accel_vcpu *h);
uint64_t rv64_sip(const struct accel_vcpu *h);
bool rv64_take_interrupt(struct accel_vcpu *h);

/* rvc.c: the 32-bit equivalent of each compressed instruction, 0 if illegal. */
extern uint32_t rv64_rvc_table[1u << 16];
void rv64_rvc_init(void);

/* fpu.c: LOAD-FP, STORE-FP, FMADD..FNMADD and OP-FP. */
int rv64_fp_insn(struct accel_vcpu *h, uint32_t insn, unsigned len);

/* exec.c: fetches and executes one instruction the generic way. */
int rv64_step(struct accel_vcpu *h);
/* An AMO, LR or SC (opcode 0x2f) at h->pc, as rv64_step() runs it; pc moves on. */
int rv64_amo_insn(struct accel_vcpu *h, uint32_t insn);

/*
 * run.c: interprets up to budget instructions. EXEC_EXIT when vcpu_run()
 * must return, EXEC_BREAK when it stopped early for interrupts to be looked
 * at, else EXEC_OK.
 */
int rv64_run_block(struct accel_vcpu *h, unsigned budget);

/*
 * jit_x86.c (jit_none.c on other hosts): translation of the fast-path
 * instructions into host code, run by rv64_jit_run() with the same contract
 * as rv64_run_block(). rv64_jit_prepare() maps code buffers for up to
 * max_harts harts before the process is confined; rv64_jit_create() takes
 * one (or maps its own if none was prepared), and fails with -ENOTSUP where
 * there is no translator or CLOISTER_JIT=0 asks for the interpreter.
 */
struct rv64_jit;
int rv64_jit_prepare(unsigned max_harts);
int rv64_jit_create(struct rv64_jit **ret_jit);
void rv64_jit_destroy(struct rv64_jit *jit);
int rv64_jit_run(struct accel_vcpu *h, unsigned budget);
/*
 * The hart is about to write the host page at page, through a TLB fill for
 * writing or outside the TLB: if its translator took code from that page,
 * the page stops being watched and every block checks its code again.
 */
void rv64_jit_code_written(struct accel_vcpu *h, const uint8_t *page);
/* Instructions retired in translated code so far (for tests). */
uint64_t rv64_jit_insns(const struct rv64_jit *jit);

/* Code may have changed in ways no store of this hart showed: check every block again. */
static inline void rv64_code_changed(struct accel_vcpu *h)
{
	h->code_epoch++;
}

static inline unsigned rv64_tlb_index(uint64_t va)
{
	return (va >> PAGE_SHIFT) & (TLB_SIZE - 1);
}

/* The host address of [va, va + size) when it sits in one cached page, else NULL. */
static inline void *rv64_tlb_lookup(struct accel_vcpu *h, enum access_type acc,
				    uint64_t va, unsigned size)
{
	const struct tlb_entry *e = &h->tlb[acc][rv64_tlb_index(va)];

	if (likely(e->vpn == va >> PAGE_SHIFT && (va & PAGE_OFFSET_MASK) + size <= PAGE_SIZE))
		return (void *)(e->addend + (uintptr_t)va);
	return NULL;
}

/* Loads size bytes zero-extended. 0, or EXEC_TRAP with the exception taken. */
static inline int rv64_load(struct accel_vcpu *h, uint64_t va, unsigned size, uint64_t *ret_val)
{
	void *p = rv64_tlb_lookup(h, ACC_READ, va, size);

	if (likely(p)) {
		uint64_t v = 0;

		memcpy(&v, p, size);
		*ret_val = v;
		return 0;
	}
	return rv64_load_slow(h, va, size, ret_val);
}

static inline int rv64_store(struct accel_vcpu *h, uint64_t va, unsigned size, uint64_t val)
{
	void *p = rv64_tlb_lookup(h, ACC_WRITE, va, size);

	if (likely(p)) {
		memcpy(p, &val, size);
		return 0;
	}
	return rv64_store_slow(h, va, size, val);
}

/* Fetches the instruction at pc: 16 bits for a compressed one, else 32. */
static inline int rv64_fetch(struct accel_vcpu *h, uint32_t *ret_insn)
{
	const uint8_t *p = rv64_tlb_lookup(h, ACC_FETCH, h->pc, 4);
	uint32_t insn;

	if (unlikely(!p))
		return rv64_fetch_slow(h, ret_insn);
	memcpy(&insn, p, 4);
	*ret_insn = (insn & 3) == 3 ? insn : (insn & 0xffff);
	return 0;
}

#endif
