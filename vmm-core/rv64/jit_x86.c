/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The translator: guest code into x86-64 host code, one block at a time.
 *
 * A block is a run of the instructions decode.h knows (integer ALU, Zba,
 * Zbb, Zbs, loads and stores, branches and jumps) and of floating-point
 * instructions inside one guest page, ending at the first jump or
 * backward conditional branch it does not follow or the first
 * conditional branch after SIDE_MAX, at the first instruction it does not
 * know, at the page's end, at BLOCK_MAX_INSNS or where its code would span
 * more than SPAN_MAX bytes. It follows up to FOLLOW_MAX jumps and
 * backward conditional branches to code of its page it has not taken yet
 * (follows()), its full check then covering all it took; a branch
 * followed leaves by its other way. It goes on past forward conditional
 * branches (their fall-through), each taken way leaving the block out of
 * line as a block's end does (emit_side_exits()), or, over a few register
 * operations, going on inside it (skip_of()). So a loop whose body
 * branches forward runs as one block, and so does a loop that a block
 * entered in its middle: its way back is followed, and its branches to
 * the block's start go back inside the block. Division and the common floating-point
 * operations run in place where they cannot trap or raise a new flag; the
 * rest of floating point, AMOs, LR and SC, MULHSU (and CPOP and CPOPW on
 * a host without POPCNT) call the interpreter's own C functions from the
 * block. Anything else (CSRs, FENCE.I, SFENCE.VMA, ECALL, SRET,
 * WFI) ends the block and is interpreted one instruction at a time, so
 * the two always agree on semantics.
 *
 * The dispatcher interprets code the first time it meets it and translates
 * it the second (first_sight()): code that runs once, as much of a boot
 * and of every exec's start-up does, costs less interpreted than
 * translated. CLOISTER_JIT=eager translates at the first sight (the tests
 * of the translator run so).
 *
 * Blocks are looked up by guest virtual pc in a direct-mapped table. A
 * block's full check compares the guest's code bytes, as mapped now, with
 * the bytes it was translated from; a block that fails it is retired and
 * translated again. The full check runs when the block's stamp, written at
 * its translation and at its last full check, differs from now: the fetch
 * addend (the host page its pc maps to) and the hart's code epoch, one
 * 64-bit key (the epoch in the addend's low bits; key_epoch()). The
 * epoch moves on FENCE.I, a remote fence, every start of a run but one
 * after an SBI call (a pause, a WFI: a device or the VMM may have written
 * memory meanwhile), and the hart's first store to a host page it took
 * code from since: the hart keeps no write TLB entry for such a page, so
 * that store goes through tlb_fill() and rv64_jit_code_written(). So
 * remapping and the hart's own stores are seen at once, as before; other
 * harts' and devices' writes after a FENCE.I (which RISC-V requires), a
 * pause or a WFI. A block whose full check matches stamps itself and goes
 * on when its page is still the one of its last stamp and still watched
 * (emit_stamp()); else the dispatcher stamps it and watches the page. An
 * instruction the translator leaves to the interpreter, at a block's
 * start, gets a block of none that hands it over.
 *
 * Host registers inside translated code:
 *   rbx  the hart (struct accel_vcpu; x[] sits at offset 0)
 *   r14  the TLB of the current mode: read, write and fetch tables one
 *        after the other (fixed while translated code runs: the privilege
 *        and SUM only change in instructions it does not run)
 *   rbp  the instructions left in the budget (counting down; back to C
 *        at <= 0; h->jit_left when translated code returns)
 *   rsi, rdi, r8-r13, r15  the guest registers most compiled code uses
 *        most (cached[]): loaded at entry, written back to x[] at every
 *        return to C, so C always sees the exact registers; around a
 *        helper call, written back before and loaded again after. A
 *        block may lend the host register of one it never names to an
 *        uncached one it names often (plan_borrow()), and gives it back
 *        on every way out.
 *   rax, rcx, rdx  scratch
 * Instructions work on those host registers in place where they can
 * (add r8, r9), else through rax. The fetch addend of the current code
 * page (host = addend + guest pc), with the code epoch in its low bits,
 * sits in h->jit_key (see key_epoch()).
 *
 * A block ends by charging its instructions to the budget (back to C,
 * with the next pc in rax, when it is spent) and jumping on: to the target
 * block itself when the target is a known pc and has been translated (the
 * dispatcher links such a jump the first time it is taken; one to another
 * page first takes that page's fetch addend from its slot of the fetch
 * TLB), else through the lookup stub's path, emitted in place, which finds
 * the next page in the fetch TLB and the next block in the table and goes
 * on there, or returns to C. A block that jumps to its own start goes on
 * past its entry check. A load or store tries way 0 of the TLB inline and
 * way 1 out of line, where a hit swaps the two ways' entries; a page in neither is filled by rv64_jit_tlb_fill()
 * and the access runs again; what that cannot fill (a fault, a device, a
 * page crossing, a store into a page code was taken from) returns to C,
 * which runs that one instruction in the interpreter. Loads (or stores)
 * in a row from one base register share one check of all their bytes
 * (emit_mem_group()); a group whose span the fill cannot take (across a
 * page end) goes to the interpreter from inside the block (jit_group()),
 * and the block is translated again with each of its groups' accesses
 * also checked one by one, out of line (emit_ungrouped()). A load (or
 * store) followed further on in the block by more from its base register
 * (which may move by addi meanwhile) checks all their bytes at once and
 * keeps the host address in one of h->jit_window[]'s slots, from which
 * they take theirs unchecked (plan_windows()); when the fill cannot take
 * that span, the slot is emptied and each checks its own. A rotation
 * written as two shifts and an or runs as one rotate (emit_rotation()),
 * a word zero-extended by two shifts as one mov and one shift
 * (emit_zext_word()). A helper whose instruction trapped returns to C
 * with pc at the handler.
 *
 * The code buffers are one memfd mapped twice, writable at one address and
 * executable at another, so no page is ever both. rv64_jit_prepare() makes
 * them for every hart the process may run before it confines itself: after
 * that its seccomp policy refuses any executable mapping. A hart's buffer,
 * when full, is emptied and translation starts again.
 */
#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "decode.h"
#include "hart.h"

#define CODE_SIZE (64u << 20)		/* per hart */
#define MAX_POOL 256			/* harts rv64_jit_prepare() may map for */
#define TABLE_SIZE 32768u		/* entries; a power of two */
#define MAP_BITS 17			/* every block of the buffer, by pc: 2^MAP_BITS entries */
#define MAP_SIZE (1u << MAP_BITS)
#define MAP_FULL (MAP_SIZE / 4 * 3)	/* entries used before the buffer is emptied */
#define PAGES_BITS 14			/* the set of pages code was taken from */
#define PAGES_SIZE (1u << PAGES_BITS)
#define PAGES_FULL (PAGES_SIZE / 4 * 3)	/* slots used (with removed ones) before emptying */
#define PAGE_GONE 1			/* a removed page's slot */
#define STAMPS MAP_SIZE			/* blocks translated before the buffer is emptied */
#define STAMP_BYTES (STAMPS * 16)	/* at the start of the code buffer */
#define BLOCK_MAX_INSNS 64
#define SIGHT_SETS 32768u		/* sets of the pcs met once, two ways each; a power of two */
#define SIGHT_RUN 32			/* instructions interpreted in a row at a first sight */
#define SIDE_MAX 4			/* conditional branches a block goes on past */
#define SKIP_MAX 4			/* instructions a forward branch may skip inside its block */
#define FOLLOW_MAX 2			/* jumps inside its page a block follows */
/* Bytes a block's code may span, jumps followed or not (its full check's size) */
#define SPAN_MAX (BLOCK_MAX_INSNS * 4)
#define APART_SIZE 1024u		/* block pcs whose groups crossed a page; a power of two */
#define APART_FULL (APART_SIZE / 4 * 3)
/* Room one block may need at most: checked before translating. */
#define BLOCK_MAX_BYTES (BLOCK_MAX_INSNS * 768 + 1024 + (BLOCK_MAX_COLD + 8) * GIVE_BACK_BYTES)
/*
 * Slow paths of one block: an FP load or store has two (FPU off, TLB
 * miss), as has a group (its check, and the helper that takes a span the
 * fill cannot).
 */
#define BLOCK_MAX_COLD (2 * BLOCK_MAX_INSNS)
/* give_back() at most: two 7-byte moves for each register of cached[]. */
#define GIVE_BACK_BYTES (16 * 14)

enum jit_exit {
	JIT_EXIT_NORMAL = 0,	/* h->pc is where to go on */
	JIT_EXIT_INTERP,	/* run the instruction at h->pc in the interpreter */
	JIT_EXIT_STALE,		/* the block at h->pc no longer matches memory */
	JIT_EXIT_HELPER,	/* a C helper returned h->jit_helper_r (a trap, say) */
	JIT_EXIT_CHAIN,		/* go on at h->pc, and link the jump at h->jit_site to it */
	JIT_EXIT_VERIFIED,	/* the block at h->jit_site still matches memory: stamp it */
};

/* Pseudo-op for scan(): a floating-point instruction, run by jit_fp(). */
#define JIT_OP_FP DC__MAX
/* Pseudo-op for scan(): an AMO, LR or SC, run by jit_amo(). */
#define JIT_OP_AMO (DC__MAX + 1)

struct jit_entry {
	uint64_t pc;		/* guest virtual pc; odd (never a pc) when empty */
	const uint8_t *code;	/* entry in the executable view */
};

typedef int (*jit_enter_fn)(struct accel_vcpu *h, const void *code, uintptr_t fetch_addend,
			    int64_t budget);

struct rv64_jit {
	int slot;		/* in the prepared pool, or -1: mapped for this hart alone */
	uint8_t *rw;		/* writable view of the code buffer */
	const uint8_t *rx;	/* executable view */
	size_t used;		/* bytes used, from the start of either view */
	uint64_t generation;	/* counts flushes: a site from before one is gone */
	size_t fixed;		/* bytes of the stubs that survive a flush */
	jit_enter_fn enter;
	size_t epilogue, lookup, exit_pc;	/* stub offsets */
	size_t fill[2];		/* the fill stubs' offsets: a read's, a write's */
	struct jit_entry table[TABLE_SIZE];	/* what the lookup stub sees */
	/*
	 * Behind the table, every block translated since the last flush, so
	 * two hot blocks that share a table entry are not translated again
	 * each time they take turns. Open addressing; code is NULL once a
	 * block is retired.
	 */
	struct jit_entry map[MAP_SIZE];
	unsigned map_used;
	/*
	 * Host pages blocks were translated or checked from since: the hart
	 * has no write TLB entry for any of them, so its first store to one
	 * goes through tlb_fill() and rv64_jit_code_written(). Open
	 * addressing; 0 empty, PAGE_GONE removed.
	 */
	uintptr_t pages[PAGES_SIZE];
	unsigned pages_used;
	uint32_t last_epoch;	/* h->code_epoch as the dispatcher last saw it */
	/*
	 * Each block's stamps: the fetch addend and the epoch of its last
	 * full check. The first STAMP_BYTES of the code buffer, written
	 * through the writable view and read by the block's entry from the
	 * executable one, RIP-relative. Data on pages never run, so stamping
	 * a block does not rewrite code the host CPU may be running.
	 */
	struct jit_stamp {
		uint64_t key;		/* addend | key_epoch(epoch), or 0: check */
		uint64_t unwatched;	/* h->jit_unwatched when key was written */
	} *stamps;
	unsigned n_stamps;
	uint64_t insns;		/* retired in translated code */
	/*
	 * Pcs the dispatcher met with no block and interpreted instead
	 * (first_sight()): two ways a set, the newer first. 0 is empty, so a
	 * block at pc 0 is translated at its first sight.
	 */
	uint64_t sight[SIGHT_SETS][2];
	bool eager;		/* every block translated at its first sight (CLOISTER_JIT=eager) */
	/*
	 * Block pcs translated with a check of each access behind each group's
	 * (emit_ungrouped()): one of their groups crossed a page. Open
	 * addressing, 0 empty; emptied with the buffer.
	 */
	uint64_t apart[APART_SIZE];
	unsigned n_apart;
};

_Static_assert(offsetof(struct accel_vcpu, x) == 0, "translated code finds x[] at rbx");
_Static_assert(sizeof(struct tlb_entry) == 16, "translated code indexes the TLB by 16");
_Static_assert(TLB_SIZE >= 256 && TLB_SIZE <= 4096 && (TLB_SIZE & (TLB_SIZE - 1)) == 0,
	       "translated code indexes the TLB with (va >> 8) & TLB_INDEX16");
/* The index of va's page in a TLB table, times the entry's 16 bytes. */
#define TLB_INDEX16 ((uint32_t)(TLB_SIZE - 1) << 4)
_Static_assert(sizeof(struct jit_entry) == 16, "translated code indexes the table by 16");
_Static_assert(sizeof(((struct rv64_jit *)0)->stamps[0]) * STAMPS == STAMP_BYTES,
	       "stamps fill STAMP_BYTES");

/*
 * The code epoch as a key's low 12 bits: bit 11 set (a cleared stamp, 0,
 * never matches) and the epoch's low 11 bits. Within one window of 2048
 * epochs these tell epochs apart; epoch_moved() clears every stamp when
 * the epoch leaves its window, so a stamp's bits always name an epoch of
 * the current window.
 */
static uint64_t key_epoch(uint32_t epoch)
{
	return 0x800u | (epoch & 0x7ffu);
}

#define OFF_PC ((int32_t)offsetof(struct accel_vcpu, pc))
#define OFF_F ((int32_t)offsetof(struct accel_vcpu, f))
#define OFF_SSTATUS ((int32_t)offsetof(struct accel_vcpu, sstatus))
#define OFF_FCSR ((int32_t)offsetof(struct accel_vcpu, fcsr))
#define OFF_TLB ((int32_t)offsetof(struct accel_vcpu, tlb))
#define OFF_LEFT ((int32_t)offsetof(struct accel_vcpu, jit_left))
#define OFF_SITE ((int32_t)offsetof(struct accel_vcpu, jit_site))
#define TLB_BYTES ((int32_t)(TLB_SIZE * sizeof(struct tlb_entry)))
/* From an entry of way 0 to the same entry of way 1. */
#define TLB_WAY1 ((int32_t)(offsetof(struct accel_vcpu, tlb_way1) - offsetof(struct accel_vcpu, tlb_all)))
#define OFF_KEY ((int32_t)offsetof(struct accel_vcpu, jit_key))
#define OFF_EPOCH_BITS ((int32_t)offsetof(struct accel_vcpu, jit_epoch_bits))
#define OFF_UNWATCHED ((int32_t)offsetof(struct accel_vcpu, jit_unwatched))
#define OFF_WINDOW ((int32_t)offsetof(struct accel_vcpu, jit_window))
/*
 * A block starts with movabs rax, pc (10 bytes); a stale one gets a jmp
 * right after. Then mov rcx, [rbx + disp32] (GUARD_BYTE first) and
 * cmp rcx, [rip + rel32], that rel32 (to its stamp) at ENTRY_STAMP_AT.
 */
#define GUARD_PATCH_AT 10
#define GUARD_BYTE 0x48
#define ENTRY_STAMP_AT 20

/*
 * Called from translated code (System V ABI, rsp 16-aligned there) for a
 * floating-point instruction at h->pc (insn in its 32-bit form, parcel as
 * the guest wrote it): EXEC_OK, or what the interpreter
 * returned (a trap, with pc at the handler), kept for the dispatcher.
 */
static int jit_fp(struct accel_vcpu *h, uint32_t insn, uint32_t parcel)
{
	unsigned len = (parcel & 3) == 3 ? 4 : 2;
	int r = rv64_fp_insn(h, insn, len);

	/* As rv64_step(): an illegal compressed instruction reports its own 16 bits. */
	if (r == EXEC_TRAP && h->scause == CAUSE_ILLEGAL_INSN && h->stval == insn)
		h->stval = parcel;
	h->x[0] = 0;
	h->jit_helper_r = r;
	return r;
}
/*
 * The n loads or stores from pc on, one at a time in the interpreter, for
 * a group whose span the block at code offset site could not check at
 * once (across a page, or a device). When all ran, the block is left
 * (EXEC_BREAK) to be translated again with each access of its groups
 * also checked on its own (h->jit_split), while apart[] has room to
 * remember it; else it goes on (0), unless a store moved the code epoch.
 * What stopped them, if anything did (a trap, a device's exit), is
 * returned for the block's helper exit, which counts one instruction:
 * those before are counted here.
 */
static int jit_group(struct accel_vcpu *h, uint64_t pc, unsigned n, uint64_t site)
{
	uint32_t epoch = h->code_epoch;
	unsigned k;
	int r = EXEC_OK;

	h->pc = pc;
	for (k = 0; k < n; k++) {
		r = rv64_step(h);
		if (r != EXEC_OK)
			break;
	}
	if (k == n) {
		bool split = h->jit->n_apart < APART_FULL;

		if (!split && h->code_epoch == epoch) {
			h->jit_helper_r = EXEC_OK;
			return EXEC_OK;
		}
		if (split)
			h->jit_split = site + 1;
		r = EXEC_BREAK;
		k = n - 1;
	}
	h->cycle += k;
	h->instret += k;
	h->jit_helper_r = r;
	return r;
}

/*
 * Called from translated code for an AMO, LR or SC at h->pc (parcel is
 * insn: AMOs have no compressed form): EXEC_OK;
 * what the interpreter returned (a trap, with pc at the handler); or
 * EXEC_BREAK, pc past it, when it wrote to a page code was taken from,
 * so that the block ends there, as after any store of the hart's own to
 * its code.
 */
static int jit_amo(struct accel_vcpu *h, uint32_t insn, uint32_t parcel)
{
	uint32_t epoch = h->code_epoch;
	int r = rv64_amo_insn(h, insn);

	h->x[0] = 0;
	if (r == EXEC_OK && h->code_epoch != epoch)
		r = EXEC_BREAK;
	h->jit_helper_r = r;
	return r;
}

/* ---- the emitter ---- */

enum { RAX = 0, RCX = 1, RDX = 2, RBX = 3, RBP = 5, RSI = 6, RDI = 7, R8 = 8, R9 = 9, R10 = 10,
       R11 = 11, R12 = 12, R13 = 13, R15 = 15 };

/*
 * The guest registers kept in host registers, and where: GCC's first
 * choices for temporaries (a5, a4, a3, ..., a0, a6, a7), sp and s0.
 */
static const struct {
	uint8_t guest, host;
} cached[] = {
	{ 15, R8 }, { 14, R9 }, { 13, R10 }, { 12, R11 }, { 10, RSI }, { 11, RDI },
	{ 2, R13 }, { 8, R15 }, { 16, R12 },
};

#define N_CACHED (sizeof(cached) / sizeof(cached[0]))
#define NOT_CACHED 0xff

/* Callee-saved host registers keep their value across a call into C. */
static bool host_preserved(unsigned host)
{
	return host == RBP || host == R12 || host == R13 || host == R15;
}

struct emit {
	uint8_t *buf;		/* writable view */
	size_t pos, end;	/* offsets into it */
	/*
	 * Non-zero: rax holds x[rax_is], stored from rax by the last bytes
	 * emitted (one instruction's result), so the next instruction need
	 * not load it again. Any byte emitted after clears it.
	 */
	unsigned rax_is;
	/*
	 * Where each guest register is while this code runs: host[i] holds
	 * x[i] (NOT_CACHED: x[i] is in memory), guest_in[h] is the guest
	 * register in host register h. cached[] outside a block; a block
	 * may lend some of those host registers to others (plan_borrow()).
	 */
	uint8_t host[32];
	uint8_t guest_in[16];
};

/* The cached[] layout. */
static void map_standard(struct emit *e)
{
	memset(e->host, NOT_CACHED, sizeof(e->host));
	memset(e->guest_in, 0, sizeof(e->guest_in));
	for (size_t k = 0; k < N_CACHED; k++) {
		e->host[cached[k].guest] = cached[k].host;
		e->guest_in[cached[k].host] = cached[k].guest;
	}
}

/* The host register holding x[i] here, or NOT_CACHED. */
static unsigned host_of(const struct emit *e, unsigned i)
{
	return e->host[i & 31];
}

/* n bytes at the end: the caller checked BLOCK_MAX_BYTES of room; this only guards it. */
static inline void bytes(struct emit *e, const void *p, size_t n)
{
	if (e->pos + n <= e->end)
		memcpy(e->buf + e->pos, p, n);
	e->pos += n;
	e->rax_is = 0;
}

static inline void b1(struct emit *e, uint8_t v)
{
	bytes(e, &v, 1);
}

#define EMIT(e, ...) bytes((e), (const uint8_t[]){ __VA_ARGS__ }, \
			   sizeof((const uint8_t[]){ __VA_ARGS__ }))

/* Little-endian, as x86 wants its immediates: so is the host. */
static inline void b4(struct emit *e, uint32_t v)
{
	bytes(e, &v, 4);
}

static inline void b8(struct emit *e, uint64_t v)
{
	bytes(e, &v, 8);
}

static bool fits_i32(int64_t v)
{
	return v >= INT32_MIN && v <= INT32_MAX;
}

/* A ModRM for [rbx + disp] with reg in the middle field, and its displacement. */
static void modrm_rbx(struct emit *e, unsigned reg, int32_t disp)
{
	if (disp >= -128 && disp < 128) {
		b1(e, (uint8_t)(0x40 | (reg & 7) << 3 | RBX));
		b1(e, (uint8_t)disp);
	} else {
		b1(e, (uint8_t)(0x80 | (reg & 7) << 3 | RBX));
		b4(e, (uint32_t)disp);
	}
}

/* mov reg, [rbx + disp] (load) or mov [rbx + disp], reg, 64 bits, any reg. */
static void mov_rbx(struct emit *e, bool load, unsigned reg, int32_t disp)
{
	b1(e, (uint8_t)(0x48 | (reg >= 8 ? 0x04 : 0)));
	b1(e, load ? 0x8b : 0x89);
	modrm_rbx(e, reg, disp);
}

/* mov dst, src between any two 64-bit registers. */
static void mov_rr(struct emit *e, unsigned dst, unsigned src)
{
	if (dst == src)
		return;
	b1(e, (uint8_t)(0x48 | (src >= 8 ? 0x04 : 0) | (dst >= 8 ? 0x01 : 0)));
	b1(e, 0x89);
	b1(e, (uint8_t)(0xc0 | (src & 7) << 3 | (dst & 7)));
}

/* reg = x[i] (reg is rax, rcx or rdx, or an argument register before a call). */
static void load_x(struct emit *e, unsigned reg, unsigned i)
{
	if (i == 0) {
		EMIT(e, 0x31, (uint8_t)(0xc0 | reg << 3 | reg));	/* xor reg32, reg32 */
		return;
	}
	if (reg == RAX && e->rax_is == i)
		return;		/* the previous instruction's result, still in rax */
	if (host_of(e, i) != NOT_CACHED) {
		mov_rr(e, reg, host_of(e, i));
		return;
	}
	mov_rbx(e, true, reg, (int32_t)(8 * i));
}

/* x[i] = reg; writes to x0 vanish. */
static void store_x(struct emit *e, unsigned i, unsigned reg)
{
	if (i == 0)
		return;
	if (host_of(e, i) != NOT_CACHED)
		mov_rr(e, host_of(e, i), reg);
	else
		mov_rbx(e, false, reg, (int32_t)(8 * i));
	if (reg == RAX)
		e->rax_is = i;
}

/*
 * The guest registers in host registers to x[] (store) or back from it
 * (load): all of them, or only those a call into C does not preserve.
 */
static void sync_cached(struct emit *e, bool load, bool volatile_only)
{
	for (size_t i = 0; i < N_CACHED; i++) {
		unsigned h = cached[i].host;

		if (volatile_only && host_preserved(h))
			continue;
		mov_rbx(e, load, h, (int32_t)(8 * e->guest_in[h]));
	}
}

static void mov_rax_imm(struct emit *e, uint64_t v)
{
	if (fits_i32((int64_t)v)) {
		EMIT(e, 0x48, 0xc7, 0xc0);	/* mov rax, simm32 */
		b4(e, (uint32_t)v);
	} else {
		EMIT(e, 0x48, 0xb8);		/* movabs rax, imm64 */
		b8(e, v);
	}
}

/* x[i] = constant; uses rcx, never rax. */
static void store_x_imm(struct emit *e, unsigned i, uint64_t v)
{
	unsigned h = host_of(e, i);

	if (i == 0)
		return;
	if (h != NOT_CACHED && fits_i32((int64_t)v)) {
		/* mov h, simm32 */
		EMIT(e, (uint8_t)(0x48 | (h >= 8 ? 0x01 : 0)), 0xc7, (uint8_t)(0xc0 | (h & 7)));
		b4(e, (uint32_t)v);
	} else if (h != NOT_CACHED) {
		/* movabs h, imm64 */
		EMIT(e, (uint8_t)(0x48 | (h >= 8 ? 0x01 : 0)), (uint8_t)(0xb8 | (h & 7)));
		b8(e, v);
	} else if (fits_i32((int64_t)v)) {
		EMIT(e, 0x48, 0xc7);		/* mov qword [rbx + disp], simm32 */
		modrm_rbx(e, 0, (int32_t)(8 * i));
		b4(e, (uint32_t)v);
	} else {
		EMIT(e, 0x48, 0xb9);		/* movabs rcx, imm64 */
		b8(e, v);
		store_x(e, i, RCX);
	}
}

/*
 * An instruction with a ModRM byte: REX (W when wide; R and B as the
 * registers need), the opcode, reg in the middle field, and as r/m the
 * host register rm or, for rm == NOT_CACHED, x[i] in memory.
 */
static void op_modrm(struct emit *e, bool wide, const uint8_t *opcode, size_t n, unsigned reg,
		     unsigned rm, unsigned i)
{
	uint8_t rex = (uint8_t)((wide ? 0x48 : 0x40) | (reg >= 8 ? 0x04 : 0) |
				(rm != NOT_CACHED && rm >= 8 ? 0x01 : 0));

	if (rex != 0x40)
		b1(e, rex);
	bytes(e, opcode, n);
	if (rm != NOT_CACHED)
		b1(e, (uint8_t)(0xc0 | (reg & 7) << 3 | (rm & 7)));
	else
		modrm_rbx(e, reg, (int32_t)(8 * i));
}

#define OP_MODRM(e, wide, reg, rm, i, ...) \
	op_modrm((e), (wide), (const uint8_t[]){ __VA_ARGS__ }, \
		 sizeof((const uint8_t[]){ __VA_ARGS__ }), (reg), (rm), (i))

/* Host register h = x[i], i not x0. */
static void host_from_x(struct emit *e, unsigned h, unsigned i)
{
	OP_MODRM(e, true, h, host_of(e, i), i, 0x8b);	/* mov h, r/m64 */
	e->rax_is = 0;
}

/* movsxd h, h32: a W instruction's result, sign-extended. */
static void sign_extend_host(struct emit *e, unsigned h)
{
	OP_MODRM(e, true, h, h, 0, 0x63);
}

/* mov rax, fn; call rax */
static void call_abs(struct emit *e, const void *fn)
{
	EMIT(e, 0x48, 0xb8);
	b8(e, (uint64_t)(uintptr_t)fn);
	EMIT(e, 0xff, 0xd0);
}

/* A rel32 jump or jcc to a known offset; returns where its rel32 sits. */
static size_t jump_to(struct emit *e, const uint8_t *opcode, size_t n, size_t target)
{
	size_t at;

	bytes(e, opcode, n);
	at = e->pos;
	b4(e, (uint32_t)(int32_t)((int64_t)target - (int64_t)(at + 4)));
	return at;
}

static size_t jmp(struct emit *e, size_t target)
{
	return jump_to(e, (const uint8_t[]){ 0xe9 }, 1, target);
}

static size_t jcc(struct emit *e, uint8_t cc, size_t target)
{
	return jump_to(e, (const uint8_t[]){ 0x0f, cc }, 2, target);
}

/* Points the rel32 at `at` (from jump_to) at target. */
static void patch(struct emit *e, size_t at, size_t target)
{
	int32_t rel = (int32_t)((int64_t)target - (int64_t)(at + 4));

	if (at + 4 <= e->end)
		memcpy(e->buf + at, &rel, 4);
}

enum { CC_B = 0x82, CC_AE = 0x83, CC_E = 0x84, CC_NE = 0x85, CC_L = 0x8c, CC_GE = 0x8d,
       CC_LE = 0x8e, CC_G = 0x8f };

/* mov [rbx + OFF_PC], rax */
static void store_pc_rax(struct emit *e)
{
	EMIT(e, 0x48, 0x89);
	modrm_rbx(e, RAX, OFF_PC);
}

/* sub rbp, n: the budget, in a register so that a loop's count is no chain through memory */
static void charge(struct emit *e, unsigned n)
{
	if (!n)
		return;
	if (n < 128) {
		EMIT(e, 0x48, 0x83, 0xed, (uint8_t)n);
		return;
	}
	EMIT(e, 0x48, 0x81, 0xed);
	b4(e, n);
}

/* Returns to the dispatcher with why: mov eax, why; jmp epilogue. */
static void leave(struct emit *e, size_t epilogue, enum jit_exit why)
{
	EMIT(e, 0xb8);
	b4(e, why);
	jmp(e, epilogue);
}

/* Leaves translated code: h->pc = pc, n more instructions done, and why. */
static void exit_at(struct emit *e, const struct rv64_jit *j, uint64_t pc, unsigned n,
		    enum jit_exit why)
{
	mov_rax_imm(e, pc);
	charge(e, n);
	store_pc_rax(e);
	leave(e, j->epilogue, why);
}

/* h->jit_site = off, a code offset for the dispatcher. */
static void set_site(struct emit *e, size_t off)
{
	EMIT(e, 0x48, 0xb9);			/* movabs rcx, off */
	b8(e, off);
	EMIT(e, 0x48, 0x89);			/* mov [rbx + OFF_SITE], rcx */
	modrm_rbx(e, RCX, OFF_SITE);
}

/* h->jit_key = rcx (a fetch addend) | h->jit_epoch_bits */
static void set_key_rcx(struct emit *e)
{
	EMIT(e, 0x48, 0x0b);			/* or rcx, [rbx + OFF_EPOCH_BITS] */
	modrm_rbx(e, RCX, OFF_EPOCH_BITS);
	mov_rbx(e, false, RCX, OFF_KEY);	/* mov [rbx + OFF_KEY], rcx */
}

/* edx = the TLB index of the page of rax, times 16 */
static void tlb_index16(struct emit *e)
{
	EMIT(e, 0x89, 0xc2);			/* mov edx, eax */
	EMIT(e, 0xc1, 0xea, 0x08);		/* shr edx, 8 */
	EMIT(e, 0x81, 0xe2);			/* and edx, TLB_INDEX16 */
	b4(e, TLB_INDEX16);
}

/* ---- the fixed stubs at the start of the buffer ---- */

/*
 * A fill stub, called from a TLB site's cold path: eax = rv64_jit_tlb_fill(h,
 * rax, acc, ecx), the host registers C may change kept on the stack (the
 * fill reads no guest register), so a site's cold path is a call and not
 * a write-back and reload of them. Returns its offset.
 */
static size_t emit_fill_stub(struct emit *e, enum access_type acc)
{
	size_t at = e->pos;

	/* push rsi, rdi, r8-r11; sub rsp, 8: aligned as at the call into the block */
	EMIT(e, 0x56, 0x57, 0x41, 0x50, 0x41, 0x51, 0x41, 0x52, 0x41, 0x53);
	EMIT(e, 0x48, 0x83, 0xec, 0x08);
	EMIT(e, 0x48, 0x89, 0xc6);		/* mov rsi, rax */
	EMIT(e, 0x48, 0x89, 0xdf);		/* mov rdi, rbx */
	EMIT(e, 0xba);				/* mov edx, acc */
	b4(e, acc);
	call_abs(e, (const void *)rv64_jit_tlb_fill);
	EMIT(e, 0x48, 0x83, 0xc4, 0x08);	/* add rsp, 8 */
	EMIT(e, 0x41, 0x5b, 0x41, 0x5a, 0x41, 0x59, 0x41, 0x58, 0x5f, 0x5e);	/* pop r11..rsi */
	EMIT(e, 0xc3);				/* ret */
	return at;
}

static void emit_stubs(struct rv64_jit *j)
{
	struct emit e = { .buf = j->rw, .pos = STAMP_BYTES, .end = CODE_SIZE };
	size_t way1, found, miss1, miss2;

	map_standard(&e);

	/* int enter(h = rdi, code = rsi, fetch_addend = rdx, budget = rcx) */
	EMIT(&e, 0x53, 0x55, 0x41, 0x54, 0x41, 0x55, 0x41, 0x56, 0x41, 0x57);	/* push rbx..r15 */
	EMIT(&e, 0x48, 0x83, 0xec, 0x08);	/* sub rsp, 8: 16-byte alignment */
	EMIT(&e, 0x48, 0x89, 0xfb);		/* mov rbx, rdi */
	EMIT(&e, 0x48, 0x89, 0xcd);		/* mov rbp, rcx: the budget */
	mov_rbx(&e, false, RDX, OFF_KEY);	/* mov [rbx + OFF_KEY], rdx */
	EMIT(&e, 0x4c, 0x8b, 0xb3);		/* mov r14, [rbx + OFF_TLB] */
	b4(&e, (uint32_t)OFF_TLB);
	EMIT(&e, 0x48, 0x89, 0xf0);		/* mov rax, rsi */
	sync_cached(&e, true, false);
	EMIT(&e, 0xff, 0xe0);			/* jmp rax */

	j->epilogue = e.pos;
	mov_rbx(&e, false, RBP, OFF_LEFT);	/* mov [rbx + OFF_LEFT], rbp */
	sync_cached(&e, false, false);
	EMIT(&e, 0x48, 0x83, 0xc4, 0x08);	/* add rsp, 8 */
	EMIT(&e, 0x41, 0x5f, 0x41, 0x5e, 0x41, 0x5d, 0x41, 0x5c, 0x5d, 0x5b);	/* pop r15..rbx */
	EMIT(&e, 0xc3);				/* ret */

	/* rax = next pc; its instructions are charged and the budget is > 0. */
	j->lookup = e.pos;
	store_pc_rax(&e);
	EMIT(&e, 0x48, 0x89, 0xc1);		/* mov rcx, rax */
	EMIT(&e, 0x48, 0xc1, 0xe9, 0x0c);	/* shr rcx, 12 */
	tlb_index16(&e);
	EMIT(&e, 0x49, 0x3b, 0x8c, 0x16);	/* cmp rcx, [r14 + rdx + fetch TLB] */
	b4(&e, (uint32_t)(ACC_FETCH * TLB_BYTES));
	way1 = jcc(&e, CC_NE, 0);
	EMIT(&e, 0x49, 0x8b, 0x8c, 0x16);	/* mov rcx, [r14 + rdx + fetch TLB + 8] */
	b4(&e, (uint32_t)(ACC_FETCH * TLB_BYTES + 8));
	found = e.pos;
	set_key_rcx(&e);
	EMIT(&e, 0x48, 0x89, 0xc1);		/* mov rcx, rax */
	EMIT(&e, 0x48, 0xd1, 0xe9);		/* shr rcx, 1 */
	EMIT(&e, 0x81, 0xe1);			/* and ecx, TABLE_SIZE - 1 */
	b4(&e, TABLE_SIZE - 1);
	EMIT(&e, 0x48, 0xc1, 0xe1, 0x04);	/* shl rcx, 4 */
	EMIT(&e, 0x48, 0xba);			/* movabs rdx, table */
	b8(&e, (uint64_t)(uintptr_t)j->table);
	EMIT(&e, 0x48, 0x3b, 0x04, 0x0a);	/* cmp rax, [rdx + rcx] */
	miss2 = jcc(&e, CC_NE, 0);
	EMIT(&e, 0xff, 0x64, 0x0a, 0x08);	/* jmp [rdx + rcx + 8] */

	/* Not in way 0 of the fetch TLB: way 1. */
	patch(&e, way1, e.pos);
	EMIT(&e, 0x49, 0x3b, 0x8c, 0x16);	/* cmp rcx, [r14 + rdx + fetch TLB way 1] */
	b4(&e, (uint32_t)(ACC_FETCH * TLB_BYTES + TLB_WAY1));
	miss1 = jcc(&e, CC_NE, 0);
	EMIT(&e, 0x49, 0x8b, 0x8c, 0x16);	/* mov rcx, [r14 + rdx + fetch TLB way 1 + 8] */
	b4(&e, (uint32_t)(ACC_FETCH * TLB_BYTES + TLB_WAY1 + 8));
	jmp(&e, found);

	/* rax = next pc, not in the TLB or table (or the budget ran out): back to C. */
	j->exit_pc = e.pos;
	patch(&e, miss1, e.pos);
	patch(&e, miss2, e.pos);
	store_pc_rax(&e);
	leave(&e, j->epilogue, JIT_EXIT_NORMAL);

	j->fill[0] = emit_fill_stub(&e, ACC_READ);
	j->fill[1] = emit_fill_stub(&e, ACC_WRITE);

	j->fixed = (e.pos + 63) & ~(size_t)63;
	j->used = j->fixed;
}

/* ---- translation ---- */

/* A load or store's slow path, emitted after the block. */
struct cold_site {
	size_t jcc_at;
	uint64_t pc;
	unsigned done;		/* instructions of the block done when it is taken */
	bool helper;		/* a helper's non-zero return: pc is set, exit HELPER */
	bool tlb;		/* way 0 of the TLB missed: try way 1, back at resume */
	/*
	 * ... for a group of n_group accesses (the first at group): when the
	 * fill cannot take their span, the interpreter takes them or, in a
	 * block translated again for that, each is checked on its own; then
	 * on at group_end with rax holding x[rax_is_end] if that is not 0,
	 * as after the group
	 */
	const struct dc_entry *group;
	unsigned n_group, rax_is_end;
	size_t group_end;
	/*
	 * ... that anchors a window: when the fill cannot take its span, the
	 * slot is emptied and the row's accesses are checked one by one
	 */
	bool window;
	uint8_t slot;
	/*
	 * A window's member (at group) found its slot empty: its access
	 * checked on its own, then on at group_end as above
	 */
	bool member;
	bool write;		/* ... of the write TLB, else the read TLB */
	int32_t last;		/* ... for the bytes [address, address + last] */
	size_t retry;		/* where the address is computed, to run again after a fill */
	size_t resume;
};

struct block {
	struct emit e;
	const struct rv64_jit *j;
	uint64_t start_pc;
	uint64_t pc;		/* of the instruction being translated */
	uint64_t followed;	/* bit i: the block goes on at instruction i's target (scan()) */
	unsigned n;		/* instructions translated so far */
	struct cold_site cold[BLOCK_MAX_COLD];
	unsigned n_cold;
	struct {
		size_t at;	/* a jmp (E9 rel32) to the target's block, to link */
		uint64_t target;
	} chain[SIDE_MAX + 2];
	unsigned n_chain;
	/* Conditional branches the block goes on past: their taken ways, emitted after the body. */
	struct side_exit {
		size_t jcc_at;	/* the jcc to patch */
		unsigned n;	/* instructions done when it is taken */
		uint64_t target;
	} side[SIDE_MAX];
	unsigned n_side;
	/* Forward branches over a few of the block's instructions (skip_of()): their taken ways. */
	struct skip {
		struct side_exit way;	/* its taken way, were it to leave the block */
		size_t merge;	/* where the instruction it goes to starts, or 0 */
		unsigned k;	/* instructions it skips */
	} skip[SIDE_MAX];
	unsigned n_skip;
	unsigned merge_at;	/* the instruction the last skip goes to, until there; else 0 */
	/*
	 * Host registers of cached[] lent, for this block, to guest
	 * registers it uses more: on entry the lender (which the block never
	 * names) goes to x[] and the borrower comes from it, and every way
	 * out gives them back (give_back()), so outside the block the
	 * layout is always cached[].
	 */
	struct borrow {
		uint8_t guest, lender, host;
		bool written;	/* the block may write the borrower: store it back */
	} borrow[N_CACHED];
	unsigned n_borrow;
	size_t checked;		/* where the entry goes on once its stamp matched */
	size_t body;		/* where the block's own instructions start, after the loans */
	size_t start;		/* the block's offset in the buffer */
	bool apart;		/* a group crossed a page before: check each access of one too */
	/* Each instruction's part in a row of accesses and a window (plan_windows()). */
	struct window_plan {
		uint8_t role;		/* WIN_NONE, WIN_ANCHOR or WIN_MEMBER */
		uint8_t slot;		/* its h->jit_window[] */
		uint8_t g;		/* a row's first: its accesses (mem_group()) */
		int32_t disp;		/* a member: its address from the slot's */
		/* a row's first: the bytes [x[rs1] + lo, + span_last], an anchor's its window's */
		int32_t lo, span_last;
	} plan[BLOCK_MAX_INSNS];
	unsigned rcx_window;	/* slot + 1 whose host address rcx holds after the last instruction */
};

enum { WIN_NONE, WIN_ANCHOR, WIN_MEMBER };

/* Each loan's host register back to its lender, the borrower to x[]; flags and rax kept. */
static void give_back(struct block *b)
{
	for (unsigned i = 0; i < b->n_borrow; i++) {
		const struct borrow *l = &b->borrow[i];

		if (l->written)
			mov_rbx(&b->e, false, l->host, (int32_t)(8 * l->guest));
		mov_rbx(&b->e, true, l->host, (int32_t)(8 * l->lender));
	}
}

/*
 * rax = x[rs1] + imm, then the TLB check against the read or the write
 * table (r14, r14 + TLB_BYTES) of the bytes [rax, rax + last]: on a hit
 * rcx + rax is the host address, else a cold exit.
 */
static void address_span(struct block *b, unsigned rs1, int32_t imm, int32_t last, bool write)
{
	struct emit *e = &b->e;
	unsigned h = rs1 ? host_of(e, rs1) : NOT_CACHED;
	size_t retry = e->pos;
	struct cold_site *c;

	e->rax_is = 0;		/* run again after a fill, when rax holds no register */
	if (h != NOT_CACHED && imm) {
		/* lea rax, [h + simm32]; r12 as a base takes a SIB byte */
		EMIT(e, (uint8_t)(0x48 | (h >= 8 ? 0x01 : 0)), 0x8d, (uint8_t)(0x80 | (h & 7)));
		if ((h & 7) == 4)
			b1(e, 0x24);
		b4(e, (uint32_t)imm);
	} else {
		load_x(e, RAX, rs1);
		if (imm) {
			EMIT(e, 0x48, 0x05);	/* add rax, simm32 */
			b4(e, (uint32_t)imm);
		}
	}
	/*
	 * The page of the last byte must be the entry's: an entry at va's
	 * index never holds the next page, so a crossing misses.
	 */
	if (last == 0) {
		EMIT(e, 0x48, 0x89, 0xc1);			/* mov rcx, rax */
	} else if (last < 128) {
		EMIT(e, 0x48, 0x8d, 0x48, (uint8_t)last);	/* lea rcx, [rax + last] */
	} else {
		EMIT(e, 0x48, 0x8d, 0x88);			/* lea rcx, [rax + disp32] */
		b4(e, (uint32_t)last);
	}
	EMIT(e, 0x48, 0xc1, 0xe9, 0x0c);	/* shr rcx, 12 */
	tlb_index16(e);
	EMIT(e, 0x49, 0x3b, 0x8c, 0x16);	/* cmp rcx, [r14 + rdx + table] */
	b4(e, write ? (uint32_t)TLB_BYTES : 0);
	c = &b->cold[b->n_cold++];
	*c = (struct cold_site){
		.jcc_at = jcc(e, CC_NE, 0), .pc = b->pc, .done = b->n, .tlb = true, .write = write,
		.last = last, .retry = retry,
	};
	EMIT(e, 0x49, 0x8b, 0x8c, 0x16);	/* mov rcx, [r14 + rdx + table + 8] */
	b4(e, (write ? (uint32_t)TLB_BYTES : 0) + 8);
	c->resume = e->pos;
}

/* address_span() of one access of size bytes. */
static void address(struct block *b, const struct dc_entry *d, unsigned size, bool write)
{
	address_span(b, d->rs1, d->imm, (int32_t)size - 1, write);
}

/*
 * ModRM (with SIB or displacement) for [rcx + rax + disp], or in a group
 * (emit_mem_group()) for [rcx + disp].
 */
static void mem_operand(struct emit *e, unsigned reg, bool grouped, int32_t disp)
{
	if (!grouped) {
		uint8_t mod = disp == 0 ? 0x00 : disp >= -128 && disp < 128 ? 0x40 : 0x80;

		b1(e, (uint8_t)(mod | 0x04 | (reg & 7) << 3));
		b1(e, 0x01);		/* SIB: rcx + rax */
		if (mod == 0x40)
			b1(e, (uint8_t)disp);
		else if (mod == 0x80)
			b4(e, (uint32_t)disp);
	} else if (disp >= -128 && disp < 128) {
		b1(e, (uint8_t)(0x41 | (reg & 7) << 3));
		b1(e, (uint8_t)disp);
	} else {
		b1(e, (uint8_t)(0x81 | (reg & 7) << 3));
		b4(e, (uint32_t)disp);
	}
}

/* movups xmm, [r14 + rdx + disp] (a TLB entry), or the store the other way. */
static void movups_tlb(struct emit *e, bool store, unsigned xmm, uint32_t disp)
{
	EMIT(e, 0x41, 0x0f, store ? 0x11 : 0x10, (uint8_t)(0x84 | xmm << 3), 0x16);
	b4(e, disp);
}

/*
 * A TLB site's cold path: way 1 (rax, rcx, rdx as address() left them),
 * whose entry a hit swaps with way 0's, so that the page is found inline
 * the next time (as rv64_tlb_promote() does; both slots were filled, so
 * logged, since the last flush); else the interpreter.
 */
static void emit_tlb_way1(struct block *b, const struct cold_site *c)
{
	struct emit *e = &b->e;
	uint32_t way0 = c->write ? (uint32_t)TLB_BYTES : 0, way1 = way0 + (uint32_t)TLB_WAY1;
	size_t miss;

	EMIT(e, 0x49, 0x3b, 0x8c, 0x16);	/* cmp rcx, [r14 + rdx + way 1] */
	b4(e, way1);
	miss = jcc(e, CC_NE, 0);
	movups_tlb(e, false, 0, way1);
	movups_tlb(e, false, 1, way0);
	movups_tlb(e, true, 0, way0);
	movups_tlb(e, true, 1, way1);
	EMIT(e, 0x49, 0x8b, 0x8c, 0x16);	/* mov rcx, [r14 + rdx + way 0 + 8] */
	b4(e, way0 + 8);
	jmp(e, c->resume);
	patch(e, miss, e->pos);
}

/*
 * A TLB site's cold path, after way 1: rv64_jit_tlb_fill() through the
 * fill stub (rax the address, ecx the last byte's offset), and on a fill
 * the access again from its address; else on to the interpreter.
 */
static void emit_tlb_fill(struct block *b, const struct cold_site *c)
{
	struct emit *e = &b->e;

	EMIT(e, 0xb9);				/* mov ecx, last */
	b4(e, (uint32_t)c->last);
	jump_to(e, (const uint8_t[]){ 0xe8 }, 1, b->j->fill[c->write]);	/* call fill stub */
	EMIT(e, 0x85, 0xc0);			/* test eax, eax */
	jcc(e, CC_NE, c->retry);
}

/* A load's size and x86 form: movsx, movsxd, movzx or mov. */
static const struct {
	uint8_t size, wide, n, opcode[2];
} load_form[] = {
	[DC_LB - DC_LB] = { 1, 1, 2, { 0x0f, 0xbe } },	/* movsx */
	[DC_LH - DC_LB] = { 2, 1, 2, { 0x0f, 0xbf } },
	[DC_LW - DC_LB] = { 4, 1, 1, { 0x63 } },	/* movsxd */
	[DC_LD - DC_LB] = { 8, 1, 1, { 0x8b } },
	[DC_LBU - DC_LB] = { 1, 0, 2, { 0x0f, 0xb6 } },	/* movzx */
	[DC_LHU - DC_LB] = { 2, 0, 2, { 0x0f, 0xb7 } },
	[DC_LWU - DC_LB] = { 4, 0, 1, { 0x8b } },	/* a 32-bit mov zero-extends */
};

/* The load's access, its address checked: into rd's host register, or through rax. */
static void load_access(struct emit *e, const struct dc_entry *d, bool grouped, int32_t disp)
{
	unsigned h = d->rd ? host_of(e, d->rd) : NOT_CACHED, k = d->op - DC_LB;
	unsigned reg = h != NOT_CACHED ? h : RAX;
	uint8_t rex = (uint8_t)((load_form[k].wide ? 0x48 : 0x40) | (reg >= 8 ? 0x04 : 0));

	if (rex != 0x40)
		b1(e, rex);
	bytes(e, load_form[k].opcode, load_form[k].n);
	mem_operand(e, reg, grouped, disp);
	if (h == NOT_CACHED)
		store_x(e, d->rd, RAX);
}

static void emit_load(struct block *b, const struct dc_entry *d)
{
	address(b, d, load_form[d->op - DC_LB].size, false);
	load_access(&b->e, d, false, 0);
}

static const unsigned store_size[] = { [DC_SB - DC_SB] = 1, [DC_SH - DC_SB] = 2,
				       [DC_SW - DC_SB] = 4, [DC_SD - DC_SB] = 8 };

/* The store's access, its address checked, from rs2's host register or rdx. */
static void store_access(struct emit *e, const struct dc_entry *d, bool grouped, int32_t disp)
{
	unsigned src = d->rs2 ? host_of(e, d->rs2) : NOT_CACHED;

	if (src == NOT_CACHED) {
		load_x(e, RDX, d->rs2);		/* rdx is free once the TLB hit */
		src = RDX;
	}
	/* mov [rcx + rax], src: a byte store names sil, dil and bpl only with a REX */
	if (d->op == DC_SH)
		b1(e, 0x66);
	b1(e, (uint8_t)((d->op == DC_SD ? 0x48 : 0x40) | (src >= 8 ? 0x04 : 0)));
	b1(e, d->op == DC_SB ? 0x88 : 0x89);
	mem_operand(e, src, grouped, disp);
}

static void emit_store(struct block *b, const struct dc_entry *d)
{
	address(b, d, store_size[d->op - DC_SB], true);
	store_access(&b->e, d, false, 0);
}

static bool is_load(unsigned op)
{
	return op >= DC_LB && op <= DC_LWU;
}

static bool is_store(unsigned op)
{
	return op >= DC_SB && op <= DC_SD;
}

/* A load's or a store's access, its address checked: [rcx + rax + disp], or [rcx + disp]. */
static void mem_access(struct emit *e, const struct dc_entry *d, bool grouped, int32_t disp)
{
	if (is_load(d->op))
		load_access(e, d, grouped, disp);
	else
		store_access(e, d, grouped, disp);
}

static unsigned access_size(unsigned op)
{
	return is_load(op) ? load_form[op - DC_LB].size : store_size[op - DC_SB];
}

/* Accesses one group may take, and how far apart (all within one page). */
#define GROUP_MAX 16
#define GROUP_SPAN 2048

/*
 * How many loads (or stores) from insns[0] on share one address check:
 * the same base register, not written by any but the last of them, all
 * their bytes within GROUP_SPAN of each other. Their lowest offset in
 * *ret_lo, the last byte's distance from it in *ret_last.
 */
static unsigned mem_group(const struct dc_entry *insns, unsigned n, int32_t *ret_lo,
			  int32_t *ret_last)
{
	bool load = is_load(insns[0].op);
	unsigned rs1 = insns[0].rs1, g = 0;
	int32_t lo = insns[0].imm, end = insns[0].imm + (int32_t)access_size(insns[0].op);

	while (g < n && g < GROUP_MAX) {
		const struct dc_entry *d = &insns[g];
		int32_t l = d->imm < lo ? d->imm : lo, x;

		if ((load ? !is_load(d->op) : !is_store(d->op)) || d->rs1 != rs1)
			break;
		x = d->imm + (int32_t)access_size(d->op);
		x = x > end ? x : end;
		if (x - l > GROUP_SPAN)
			break;
		lo = l;
		end = x;
		g++;
		if (load && d->rd == rs1 && rs1)
			break;		/* the base changes after this one */
	}
	*ret_lo = lo;
	*ret_last = end - lo - 1;
	return g;
}

/*
 * The row of loads or stores at insns (mem_group(), as plan_windows()
 * found it): one address check of all their bytes (the TLB miss hands the
 * first one to the interpreter), then each at its offset from rcx = the
 * host address of the lowest. Returns how many instructions it took.
 */
static unsigned emit_mem_group(struct block *b, const struct dc_entry *insns)
{
	struct emit *e = &b->e;
	const struct window_plan *w = &b->plan[b->n];
	bool anchor = w->role == WIN_ANCHOR;
	int32_t lo = w->lo, last = w->span_last;
	unsigned g = w->g;
	bool load = is_load(insns[0].op), alone = anchor && g == 1;
	struct cold_site *c;

	if (!anchor && g < 2) {
		if (load)
			emit_load(b, insns);
		else
			emit_store(b, insns);
		b->pc += insns[0].len;
		return 1;
	}
	address_span(b, insns[0].rs1, lo, last, !load);
	c = &b->cold[b->n_cold - 1];
	c->group = insns;
	c->n_group = g;
	c->window = anchor;
	c->slot = w->slot;
	if (alone) {
		/* The host address kept off the access's way: [rcx + rax + offset] */
		EMIT(e, 0x48, 0x8d, 0x14, 0x01);	/* lea rdx, [rcx + rax] */
		mov_rbx(e, false, RDX, OFF_WINDOW + 8 * (int32_t)w->slot);
	} else {
		EMIT(e, 0x48, 0x01, 0xc1);	/* add rcx, rax */
		if (anchor) {
			mov_rbx(e, false, RCX, OFF_WINDOW + 8 * (int32_t)w->slot);
			b->rcx_window = w->slot + 1u;
		}
	}
	for (unsigned k = 0; k < g; k++) {
		mem_access(e, &insns[k], !alone, insns[k].imm - lo);
		b->pc += insns[k].len;
	}
	c->group_end = e->pos;
	c->rax_is_end = e->rax_is;
	return g;
}

/*
 * A window's member (plan_windows()): its access at its offset from the
 * host address its anchor checked and kept (still in rcx when the
 * instruction before was of the window too), or, when the anchor left
 * the slot empty, checked on its own out of line (emit_window_alone()).
 */
static void emit_window_member(struct block *b, const struct dc_entry *d, bool rcx_holds)
{
	struct emit *e = &b->e;
	const struct window_plan *w = &b->plan[b->n];
	struct cold_site *c = &b->cold[b->n_cold++];

	if (!rcx_holds)
		mov_rbx(e, true, RCX, OFF_WINDOW + 8 * (int32_t)w->slot);
	EMIT(e, 0x48, 0x85, 0xc9);		/* test rcx, rcx */
	*c = (struct cold_site){ .jcc_at = jcc(e, CC_E, 0), .pc = b->pc, .done = b->n,
				 .member = true, .group = d, .n_group = 1 };
	mem_access(e, d, true, w->disp);
	c->group_end = e->pos;
	c->rax_is_end = e->rax_is;
	b->rcx_window = w->slot + 1u;
}

/* From a group's cold path back after the group, rax as the code there expects. */
static void back_after_group(struct emit *e, const struct cold_site *c)
{
	e->rax_is = 0;
	if (c->rax_is_end)
		load_x(e, RAX, c->rax_is_end);
	jmp(e, c->group_end);
}

/*
 * Out of line, after a group's span missed and the fill could not take it
 * (the span crosses into another page: a stack frame over a page
 * boundary, say): the interpreter takes the group's accesses from inside
 * the block (jit_group()), which then goes on after the group; a trap or
 * a moved code epoch leaves it as a helper's return does.
 */
static void emit_group_helper(struct block *b, const struct cold_site *c)
{
	struct emit *e = &b->e;

	sync_cached(e, false, false);		/* it reads and writes x[] */
	EMIT(e, 0x48, 0x89, 0xdf);		/* mov rdi, rbx */
	EMIT(e, 0x48, 0xbe);			/* movabs rsi, the group's pc */
	b8(e, c->pc);
	EMIT(e, 0xba);				/* mov edx, its instructions */
	b4(e, c->n_group);
	EMIT(e, 0x48, 0xb9);			/* movabs rcx, the block's offset */
	b8(e, b->start);
	call_abs(e, (const void *)jit_group);
	sync_cached(e, true, false);
	EMIT(e, 0x85, 0xc0);			/* test eax, eax */
	b->cold[b->n_cold++] = (struct cold_site){
		.jcc_at = jcc(e, CC_NE, 0), .pc = c->pc, .done = c->done + 1, .helper = true,
	};
	back_after_group(e, c);
}

/*
 * A group's accesses one by one, each with its own check and its own cold
 * path (later in the block's list), so a frame or an object that lies
 * across a page end stays in translated code.
 */
static void one_by_one(struct block *b, const struct cold_site *c)
{
	b->pc = c->pc;
	for (unsigned k = 0; k < c->n_group; k++) {
		const struct dc_entry *d = &c->group[k];

		b->n = c->done + k;
		if (is_load(d->op))
			emit_load(b, d);
		else
			emit_store(b, d);
		b->pc += d->len;
	}
}

/*
 * The same, then on after the group, in a block translated again after
 * one of its groups crossed a page (struct block's apart).
 */
static void emit_ungrouped(struct block *b, const struct cold_site *c)
{
	one_by_one(b, c);
	back_after_group(&b->e, c);
}

/*
 * A window's accesses without its host address: an anchor whose span the
 * fill could not take (across a page, a device), which empties its slot
 * for its members, or a member that found it empty. Each access checked
 * on its own, then rcx emptied too (a member right after takes it for the
 * slot), and on after them.
 */
static void emit_window_alone(struct block *b, const struct cold_site *c)
{
	struct emit *e = &b->e;

	if (c->window) {
		EMIT(e, 0x48, 0xc7, 0x83);	/* mov qword [rbx + slot], 0 */
		b4(e, (uint32_t)(OFF_WINDOW + 8 * (int32_t)c->slot));
		b4(e, 0);
	}
	one_by_one(b, c);
	EMIT(e, 0x31, 0xc9);			/* xor ecx, ecx */
	back_after_group(e, c);
}

/* rax op= simm32, for the ops with a short rax form (add 05, or 0d, and 25, xor 35, cmp 3d). */
static void rax_imm(struct emit *e, uint8_t opcode, int32_t imm)
{
	EMIT(e, 0x48, opcode);
	b4(e, (uint32_t)imm);
}

static void movsxd_rax(struct emit *e)
{
	EMIT(e, 0x48, 0x63, 0xc0);
}

/* rax = (flags say cc) ? 1 : 0 */
static void setcc_rax(struct emit *e, uint8_t setcc)
{
	EMIT(e, 0x0f, setcc, 0xc0, 0x0f, 0xb6, 0xc0);
}

/* x[rd] = rv64_muldiv(op, x[rs1], x[rs2]) */
static void emit_muldiv(struct block *b, const struct dc_entry *d)
{
	struct emit *e = &b->e;

	sync_cached(e, false, true);
	/* rdx, rsi, then edi: each read before the argument that could clobber it is set. */
	load_x(e, RDX, d->rs2);
	load_x(e, RSI, d->rs1);
	EMIT(e, 0xbf);				/* mov edi, op */
	b4(e, d->op);
	call_abs(e, (const void *)rv64_muldiv);
	sync_cached(e, true, true);
	store_x(e, d->rd, RAX);
}

/*
 * The divisions in place on the host's div and idiv: a zero divisor, and
 * for the signed ones a divisor of -1 (INT_MIN / -1 faults on x86), go to
 * rv64_muldiv() with what RISC-V defines for them.
 */
static void emit_div(struct block *b, const struct dc_entry *d)
{
	bool w = d->op >= DC_DIVW, sign = d->op == DC_DIV || d->op == DC_REM ||
					  d->op == DC_DIVW || d->op == DC_REMW;
	bool rem = d->op == DC_REM || d->op == DC_REMU || d->op == DC_REMW || d->op == DC_REMUW;
	struct emit *e = &b->e;
	size_t slow[2], done;
	unsigned n_slow = 0;

	load_x(e, RAX, d->rs1);
	load_x(e, RCX, d->rs2);
	if (w)
		EMIT(e, 0x85, 0xc9);			/* test ecx, ecx */
	else
		EMIT(e, 0x48, 0x85, 0xc9);		/* test rcx, rcx */
	slow[n_slow++] = jcc(e, CC_E, 0);
	if (sign) {
		if (w)
			EMIT(e, 0x83, 0xf9, 0xff);	/* cmp ecx, -1 */
		else
			EMIT(e, 0x48, 0x83, 0xf9, 0xff);	/* cmp rcx, -1 */
		slow[n_slow++] = jcc(e, CC_E, 0);
	}
	switch ((w ? 2 : 0) + sign) {
	case 0: EMIT(e, 0x31, 0xd2, 0x48, 0xf7, 0xf1); break;	/* xor edx, edx; div rcx */
	case 1: EMIT(e, 0x48, 0x99, 0x48, 0xf7, 0xf9); break;	/* cqo; idiv rcx */
	case 2: EMIT(e, 0x31, 0xd2, 0xf7, 0xf1); break;		/* xor edx, edx; div ecx */
	default: EMIT(e, 0x99, 0xf7, 0xf9); break;		/* cdq; idiv ecx */
	}
	if (rem)
		EMIT(e, 0x48, 0x89, 0xd0);		/* mov rax, rdx */
	if (w)
		movsxd_rax(e);
	store_x(e, d->rd, RAX);
	done = jmp(e, 0);
	for (unsigned i = 0; i < n_slow; i++)
		patch(e, slow[i], e->pos);
	emit_muldiv(b, d);
	patch(e, done, e->pos);
}

/*
 * fn(h, insn, parcel), one of the helpers that run an instruction as the
 * interpreter does (jit_fp(), jit_amo()), with h->pc at it; a non-zero
 * return (a trap, say) leaves the block.
 */
static void emit_insn_helper(struct block *b, const struct dc_entry *d, const void *fn,
			     uint32_t parcel)
{
	struct emit *e = &b->e;

	mov_rax_imm(e, b->pc);
	store_pc_rax(e);
	sync_cached(e, false, false);		/* it reads and writes x[] */
	EMIT(e, 0x48, 0x89, 0xdf);		/* mov rdi, rbx */
	EMIT(e, 0xbe);				/* mov esi, insn */
	b4(e, d->raw);
	EMIT(e, 0xba);				/* mov edx, parcel */
	b4(e, parcel);
	call_abs(e, fn);
	sync_cached(e, true, false);
	EMIT(e, 0x85, 0xc0);			/* test eax, eax */
	b->cold[b->n_cold++] = (struct cold_site){
		.jcc_at = jcc(e, CC_NE, 0), .pc = b->pc, .done = b->n + 1, .helper = true,
	};
}

/* jit_fp(h, insn, the bits as written) */
static void emit_fp(struct block *b, const struct dc_entry *d)
{
	emit_insn_helper(b, d, (const void *)jit_fp, (uint32_t)d->imm);
}

static void emit_amo(struct block *b, const struct dc_entry *d)
{
	emit_insn_helper(b, d, (const void *)jit_amo, d->raw);
}

/* Jumps to slow unless reg (rax or rcx) holds a zero or normal double; uses rdx. */
static void check_plain(struct emit *e, unsigned reg, bool zero_ok, size_t *slow, unsigned *n_slow)
{
	size_t zero_at;

	EMIT(e, 0x48, 0x8d, 0x14, (uint8_t)(reg << 3 | reg));	/* lea rdx, [reg + reg]: no sign */
	EMIT(e, 0x48, 0x85, 0xd2);				/* test rdx, rdx */
	if (zero_ok) {
		zero_at = jcc(e, CC_E, 0);
	} else {
		slow[(*n_slow)++] = jcc(e, CC_E, 0);
		zero_at = 0;
	}
	EMIT(e, 0x48, 0xc1, 0xea, 53);				/* shr rdx, 53: the exponent */
	EMIT(e, 0x83, 0xea, 0x01);				/* sub edx, 1 */
	EMIT(e, 0x81, 0xfa, 0xfe, 0x07, 0, 0);			/* cmp edx, 0x7fe */
	slow[(*n_slow)++] = jcc(e, CC_AE, 0);			/* exponent 0 or all ones */
	if (zero_ok)
		patch(e, zero_at, e->pos);
}

/* The slow exits of one inline FP instruction, all to jit_fp(). */
struct fp_slow {
	size_t at[16];		/* a single FMA has 10 */
	unsigned n;
};

static void to_slow(struct emit *e, struct fp_slow *sl, uint8_t cc)
{
	size_t at = jcc(e, cc, 0);

	if (sl->n < sizeof(sl->at) / sizeof(sl->at[0]))
		sl->at[sl->n++] = at;
}

/* mov reg, f[i] (reg rax or rcx) */
static void load_f(struct emit *e, unsigned reg, unsigned i)
{
	mov_rbx(e, true, reg, OFF_F + 8 * (int32_t)i);
}

/* f[i] = rax, and sstatus.FS dirty, as fpu.c's f64_set() */
static void set_f_rax(struct emit *e, unsigned i)
{
	mov_rbx(e, false, RAX, OFF_F + 8 * (int32_t)i);
	EMIT(e, 0x81, 0x8b);				/* or dword [rbx + OFF_SSTATUS], FS */
	b4(e, (uint32_t)OFF_SSTATUS);
	b4(e, (uint32_t)SSTATUS_FS);
}

/*
 * What every inline FP instruction checks first: the FPU on (else the
 * interpreter traps). rounds: one that may round, done only in round to
 * nearest (static, or DYN with frm 0: the host's mode in translated code)
 * with NX already in fcsr, so it cannot raise anything new; else a DYN
 * one (an exact conversion) still needs a legal frm.
 */
static void fp_guard(struct emit *e, uint32_t insn, bool rounds, struct fp_slow *sl)
{
	bool dyn = ((insn >> 12) & 7) == 7;

	EMIT(e, 0xf7, 0x83);				/* test dword [rbx + OFF_SSTATUS], FS */
	b4(e, (uint32_t)OFF_SSTATUS);
	b4(e, (uint32_t)SSTATUS_FS);
	to_slow(e, sl, CC_E);
	if (!rounds && !dyn)
		return;
	EMIT(e, 0x48, 0x8b);				/* mov rax, fcsr */
	modrm_rbx(e, RAX, OFF_FCSR);
	if (rounds) {
		if (dyn) {
			EMIT(e, 0xa9, 0xe0, 0, 0, 0);	/* test eax, frm */
			to_slow(e, sl, CC_NE);
		}
		EMIT(e, 0xa8, 0x01);			/* test al, NX */
		to_slow(e, sl, CC_E);
	} else {
		EMIT(e, 0x25, 0xe0, 0, 0, 0);		/* and eax, frm */
		EMIT(e, 0x3d, 0x80, 0, 0, 0);		/* cmp eax, RMM << 5 */
		to_slow(e, sl, 0x87);			/* ja: a reserved frm */
	}
}

/*
 * Jumps to slow unless rax is a normal double above the smallest normal
 * (a result that raised neither UF nor OF), or with zero_ok an exact zero.
 * Uses rcx and rdx.
 */
static void check_result(struct emit *e, bool zero_ok, struct fp_slow *sl)
{
	size_t zero_at = 0;

	EMIT(e, 0x48, 0x8d, 0x14, 0x00);		/* lea rdx, [rax + rax] */
	if (zero_ok) {
		EMIT(e, 0x48, 0x85, 0xd2);		/* test rdx, rdx */
		zero_at = jcc(e, CC_E, 0);
	}
	/* 2^53 < rdx < 0x7ff << 53 */
	EMIT(e, 0x48, 0xb9);				/* movabs rcx, 2^53 + 1 */
	b8(e, (1ull << 53) + 1);
	EMIT(e, 0x48, 0x29, 0xca);			/* sub rdx, rcx */
	EMIT(e, 0x48, 0xb9);				/* movabs rcx, (0x7fe << 53) - 1 */
	b8(e, (0x7feull << 53) - 1);
	EMIT(e, 0x48, 0x39, 0xca);			/* cmp rdx, rcx */
	to_slow(e, sl, CC_AE);
	if (zero_ok)
		patch(e, zero_at, e->pos);
}

/* The end of an inline FP instruction: its slow exits call jit_fp(), as before. */
static void fp_finish(struct block *b, const struct dc_entry *d, struct fp_slow *sl)
{
	struct emit *e = &b->e;
	size_t done = jmp(e, 0);

	for (unsigned i = 0; i < sl->n; i++)
		patch(e, sl->at[i], e->pos);
	emit_fp(b, d);
	patch(e, done, e->pos);
}

#define F_RD(i) (((i) >> 7) & 31)
#define F_RS1(i) (((i) >> 15) & 31)
#define F_RS2(i) (((i) >> 20) & 31)
#define F_RM(i) (((i) >> 12) & 7)

/* Jumps to slow unless reg (rax or rcx) holds a NaN-boxed single (upper half all ones); uses rdx. */
static void check_boxed(struct emit *e, unsigned reg, struct fp_slow *sl)
{
	EMIT(e, 0x48, 0x89, (uint8_t)(0xc0 | reg << 3 | RDX));	/* mov rdx, reg */
	EMIT(e, 0x48, 0xc1, 0xea, 32);				/* shr rdx, 32 */
	EMIT(e, 0x83, 0xfa, 0xff);				/* cmp edx, -1 */
	to_slow(e, sl, CC_NE);
}

/* check_plain() for the single in reg's low half; uses rdx. */
static void check_plain_s(struct emit *e, unsigned reg, bool zero_ok, struct fp_slow *sl)
{
	size_t zero_at = 0;

	EMIT(e, 0x8d, 0x14, (uint8_t)(reg << 3 | reg));	/* lea edx, [reg + reg]: no sign */
	EMIT(e, 0x85, 0xd2);					/* test edx, edx */
	if (zero_ok)
		zero_at = jcc(e, CC_E, 0);
	else
		to_slow(e, sl, CC_E);
	EMIT(e, 0xc1, 0xea, 24);				/* shr edx, 24: the exponent */
	EMIT(e, 0x83, 0xea, 0x01);				/* sub edx, 1 */
	EMIT(e, 0x81, 0xfa, 0xfe, 0, 0, 0);			/* cmp edx, 0xfe */
	to_slow(e, sl, CC_AE);					/* exponent 0 or all ones */
	if (zero_ok)
		patch(e, zero_at, e->pos);
}

/* reg (rax or rcx) = f[i], a zero or normal operand (a boxed one if single), else slow. */
static void fp_operand(struct emit *e, unsigned reg, unsigned i, bool dbl, bool zero_ok,
		       struct fp_slow *sl)
{
	load_f(e, reg, i);
	if (dbl) {
		check_plain(e, reg, zero_ok, sl->at, &sl->n);
	} else {
		check_boxed(e, reg, sl);
		check_plain_s(e, reg, zero_ok, sl);
	}
}

/* movq xmm, reg (double) or movd xmm, reg32 (single) */
static void xmm_from(struct emit *e, unsigned xmm, unsigned reg, bool dbl)
{
	b1(e, 0x66);
	if (dbl)
		b1(e, 0x48);
	EMIT(e, 0x0f, 0x6e, (uint8_t)(0xc0 | xmm << 3 | reg));
}

/* movq rax, xmm (double) or movd eax, xmm (single) */
static void rax_from_xmm(struct emit *e, unsigned xmm, bool dbl)
{
	b1(e, 0x66);
	if (dbl)
		b1(e, 0x48);
	EMIT(e, 0x0f, 0x7e, (uint8_t)(0xc0 | xmm << 3 | RAX));
}

/* check_result() for the single in eax. */
static void check_result_s(struct emit *e, bool zero_ok, struct fp_slow *sl)
{
	size_t zero_at = 0;

	EMIT(e, 0x8d, 0x14, 0x00);			/* lea edx, [rax + rax] */
	if (zero_ok) {
		EMIT(e, 0x85, 0xd2);			/* test edx, edx */
		zero_at = jcc(e, CC_E, 0);
	}
	/* 1 << 24 < edx < 0xff << 24 */
	EMIT(e, 0x81, 0xea, 0x01, 0, 0, 0x01);		/* sub edx, (1 << 24) + 1 */
	EMIT(e, 0x81, 0xfa, 0xff, 0xff, 0xff, 0xfd);	/* cmp edx, (0xfe << 24) - 1 */
	to_slow(e, sl, CC_AE);
	if (zero_ok)
		patch(e, zero_at, e->pos);
}

/* check_result() or check_result_s(), as the operation's width says. */
static void check_fp_result(struct emit *e, bool dbl, bool zero_ok, struct fp_slow *sl)
{
	if (dbl)
		check_result(e, zero_ok, sl);
	else
		check_result_s(e, zero_ok, sl);
}

/* f[i] = rax (a double) or the single in eax, NaN-boxed; FS dirty. */
static void set_f_result(struct emit *e, unsigned i, bool dbl)
{
	if (!dbl) {
		EMIT(e, 0x89, 0xc0);			/* mov eax, eax */
		EMIT(e, 0x48, 0xb9);			/* movabs rcx, the NaN box */
		b8(e, 0xffffffff00000000ull);
		EMIT(e, 0x48, 0x09, 0xc8);		/* or rax, rcx */
	}
	set_f_rax(e, i);
}

/*
 * FADD, FSUB, FMUL, FDIV and FSQRT, single or double, fpu.c's quick way
 * in place: zero or normal operands (NaN-boxed singles; a non-zero
 * divisor, a non-negative root), and a normal result above the smallest
 * one (or an exactly zero sum; a root of such a number is always one):
 * then nothing but the result changes.
 */
static void emit_fp_arith(struct block *b, const struct dc_entry *d, uint8_t sse, bool dbl)
{
	uint32_t insn = d->raw;
	bool is_sum = sse == 0x58 || sse == 0x5c, is_sqrt = sse == 0x51;
	uint8_t prefix = dbl ? 0xf2 : 0xf3;		/* sd or ss */
	struct emit *e = &b->e;
	struct fp_slow sl = { .n = 0 };

	fp_guard(e, insn, true, &sl);
	if (is_sqrt) {
		fp_operand(e, RAX, F_RS1(insn), dbl, true, &sl);
		if (dbl)
			EMIT(e, 0x48, 0x85, 0xc0);	/* test rax, rax: no sign */
		else
			EMIT(e, 0x85, 0xc0);		/* test eax, eax */
		to_slow(e, &sl, 0x88);			/* js */
		xmm_from(e, 0, RAX, dbl);
		EMIT(e, prefix, 0x0f, 0x51, 0xc0);	/* sqrt xmm0, xmm0 */
		rax_from_xmm(e, 0, dbl);
	} else {
		fp_operand(e, RAX, F_RS1(insn), dbl, true, &sl);
		fp_operand(e, RCX, F_RS2(insn), dbl, sse != 0x5e, &sl);
		xmm_from(e, 0, RAX, dbl);
		xmm_from(e, 1, RCX, dbl);
		EMIT(e, prefix, 0x0f, sse, 0xc1);	/* op xmm0, xmm1 */
		rax_from_xmm(e, 0, dbl);
		check_fp_result(e, dbl, is_sum, &sl);
	}
	set_f_result(e, F_RD(insn), dbl);
	fp_finish(b, d, &sl);
}

/* What the host CPU has beyond x86-64's baseline, read once for every hart's translator. */
static struct {
	pthread_once_t once;
	bool fma;		/* FMA3, for the fused operations in place */
	bool popcnt;		/* for CPOP and CPOPW in place */
} host_cpu = { .once = PTHREAD_ONCE_INIT };

static void read_host_cpu(void)
{
	__builtin_cpu_init();
	host_cpu.fma = __builtin_cpu_supports("fma");
	host_cpu.popcnt = __builtin_cpu_supports("popcnt");
}

static bool host_fma(void)
{
	pthread_once(&host_cpu.once, read_host_cpu);
	return host_cpu.fma;
}

static bool host_popcnt(void)
{
	pthread_once(&host_cpu.once, read_host_cpu);
	return host_cpu.popcnt;
}

/*
 * FMADD, FMSUB, FNMSUB, FNMADD, single or double: the quick way of
 * f32/f64_arith() for FOP_FMA in place (signs folded into the operands as
 * fpu.c does; three zero or normal operands, a normal result above the
 * smallest one; a zero result goes the full way, its sign depends on the
 * rounding).
 */
static void emit_fp_fma(struct block *b, const struct dc_entry *d, bool dbl)
{
	uint32_t insn = d->raw;
	unsigned which = ((insn & 0x7f) - 0x43) >> 2;
	bool neg_product = which >= 2, neg_addend = which == 1 || which == 3;
	uint8_t sign = dbl ? 63 : 31;
	struct emit *e = &b->e;
	struct fp_slow sl = { .n = 0 };

	fp_guard(e, insn, true, &sl);
	fp_operand(e, RAX, insn >> 27, dbl, true, &sl);
	if (neg_addend)
		EMIT(e, 0x48, 0x0f, 0xba, 0xf8, sign);	/* btc rax, sign */
	xmm_from(e, 2, RAX, dbl);
	fp_operand(e, RAX, F_RS1(insn), dbl, true, &sl);
	fp_operand(e, RCX, F_RS2(insn), dbl, true, &sl);
	if (neg_product)
		EMIT(e, 0x48, 0x0f, 0xba, 0xf8, sign);	/* btc rax, sign */
	xmm_from(e, 0, RAX, dbl);
	xmm_from(e, 1, RCX, dbl);
	/* vfmadd231sd / vfmadd231ss xmm2, xmm0, xmm1 */
	EMIT(e, 0xc4, 0xe2, dbl ? 0xf9 : 0x79, 0xb9, 0xd1);
	rax_from_xmm(e, 2, dbl);
	check_fp_result(e, dbl, false, &sl);
	set_f_result(e, F_RD(insn), dbl);
	fp_finish(b, d, &sl);
}

/* FSGNJ.D, FSGNJN.D, FSGNJX.D (f3 0, 1, 2): bits only, no flags. */
static void emit_fp_sgnj_d(struct block *b, const struct dc_entry *d)
{
	uint32_t insn = d->raw;
	unsigned f3 = F_RM(insn);
	struct emit *e = &b->e;
	struct fp_slow sl = { .n = 0 };

	fp_guard(e, insn, false, &sl);
	load_f(e, RAX, F_RS1(insn));
	load_f(e, RCX, F_RS2(insn));
	if (f3 == 1)
		EMIT(e, 0x48, 0xf7, 0xd1);		/* not rcx */
	EMIT(e, 0x48, 0xc1, 0xe9, 63);			/* shr rcx, 63 */
	EMIT(e, 0x48, 0xc1, 0xe1, 63);			/* shl rcx, 63: the sign alone */
	if (f3 == 2) {
		EMIT(e, 0x48, 0x31, 0xc8);		/* xor rax, rcx */
	} else {
		EMIT(e, 0x48, 0x0f, 0xba, 0xf0, 63);	/* btr rax, 63 */
		EMIT(e, 0x48, 0x09, 0xc8);		/* or rax, rcx */
	}
	set_f_rax(e, F_RD(insn));
	fp_finish(b, d, &sl);
}

/* FMV.X.D, FMV.X.W (into x[rd]) and FMV.D.X, FMV.W.X (into f[rd]). */
static void emit_fp_mv(struct block *b, const struct dc_entry *d, bool to_x, bool dbl)
{
	uint32_t insn = d->raw;
	struct emit *e = &b->e;
	struct fp_slow sl = { .n = 0 };

	fp_guard(e, insn, false, &sl);
	if (to_x) {
		load_f(e, RAX, F_RS1(insn));
		if (!dbl)
			EMIT(e, 0x48, 0x63, 0xc0);	/* movsxd rax, eax */
		store_x(e, F_RD(insn), RAX);
	} else {
		load_x(e, RAX, F_RS1(insn));
		if (!dbl) {
			EMIT(e, 0x89, 0xc0);		/* mov eax, eax */
			EMIT(e, 0x48, 0xb9);		/* movabs rcx, the NaN box */
			b8(e, 0xffffffff00000000ull);
			EMIT(e, 0x48, 0x09, 0xc8);	/* or rax, rcx */
		}
		set_f_rax(e, F_RD(insn));
	}
	fp_finish(b, d, &sl);
}

/* FEQ.D, FLT.D, FLE.D (f3 2, 1, 0) without a NaN: no flags, x[rd] 0 or 1. */
static void emit_fp_cmp_d(struct block *b, const struct dc_entry *d)
{
	static const uint8_t setcc[] = { 0x96, 0x92, 0x94 };	/* setbe, setb, sete */
	uint32_t insn = d->raw;
	struct emit *e = &b->e;
	struct fp_slow sl = { .n = 0 };

	fp_guard(e, insn, false, &sl);
	load_f(e, RAX, F_RS1(insn));
	load_f(e, RCX, F_RS2(insn));
	xmm_from(e, 0, RAX, true);
	xmm_from(e, 1, RCX, true);
	EMIT(e, 0x66, 0x0f, 0x2e, 0xc1);		/* ucomisd xmm0, xmm1 */
	to_slow(e, &sl, 0x8a);				/* jp: unordered, a NaN */
	setcc_rax(e, setcc[F_RM(insn)]);
	store_x(e, F_RD(insn), RAX);
	fp_finish(b, d, &sl);
}

/*
 * FCVT.D.W, FCVT.D.WU (always exact), FCVT.D.L and FCVT.D.LU (exact
 * below 2^53 in magnitude, else the full way): no flags, any legal rm.
 */
static void emit_fp_cvt_d_int(struct block *b, const struct dc_entry *d)
{
	uint32_t insn = d->raw;
	unsigned type = F_RS2(insn);
	struct emit *e = &b->e;
	struct fp_slow sl = { .n = 0 };

	fp_guard(e, insn, false, &sl);
	load_x(e, RAX, F_RS1(insn));
	switch (type) {
	case 0: EMIT(e, 0x48, 0x63, 0xc0); break;	/* movsxd rax, eax */
	case 1: EMIT(e, 0x89, 0xc0); break;		/* mov eax, eax */
	case 2:
		EMIT(e, 0x48, 0xb9);			/* movabs rcx, 2^53 */
		b8(e, 1ull << 53);
		EMIT(e, 0x48, 0x8d, 0x14, 0x08);	/* lea rdx, [rax + rcx] */
		EMIT(e, 0x48, 0x01, 0xc9);		/* add rcx, rcx: 2^54 */
		EMIT(e, 0x48, 0x39, 0xca);		/* cmp rdx, rcx */
		to_slow(e, &sl, CC_AE);
		break;
	default:
		EMIT(e, 0x48, 0xb9);			/* movabs rcx, 2^53 */
		b8(e, 1ull << 53);
		EMIT(e, 0x48, 0x39, 0xc8);		/* cmp rax, rcx */
		to_slow(e, &sl, CC_AE);
		break;
	}
	EMIT(e, 0xf2, 0x48, 0x0f, 0x2a, 0xc0);		/* cvtsi2sd xmm0, rax */
	rax_from_xmm(e, 0, true);
	set_f_rax(e, F_RD(insn));
	fp_finish(b, d, &sl);
}

/*
 * FCVT.W.D and FCVT.L.D toward zero (cvttsd2si) or to nearest (cvtsd2si,
 * the host's mode), with NX already set: a result in range is all that
 * changes, and FS becomes dirty when it is inexact. NaN and out of range (the host's INT64_MIN, or a W result
 * outside 32 bits) go the full way, which saturates and raises NV.
 */
static void emit_fp_cvt_int_d(struct block *b, const struct dc_entry *d)
{
	uint32_t insn = d->raw;
	bool word = F_RS2(insn) == 0;
	struct emit *e = &b->e;
	struct fp_slow sl = { .n = 0 };
	size_t exact;

	fp_guard(e, insn, true, &sl);
	load_f(e, RAX, F_RS1(insn));
	xmm_from(e, 0, RAX, true);
	/* cvttsd2si / cvtsd2si rax, xmm0 */
	EMIT(e, 0xf2, 0x48, 0x0f, F_RM(insn) == 1 ? 0x2c : 0x2d, 0xc0);
	if (word) {
		EMIT(e, 0x48, 0x63, 0xc8);		/* movsxd rcx, eax */
		EMIT(e, 0x48, 0x39, 0xc1);		/* cmp rcx, rax */
		to_slow(e, &sl, CC_NE);
	} else {
		EMIT(e, 0x48, 0xb9);			/* movabs rcx, INT64_MIN */
		b8(e, 1ull << 63);
		EMIT(e, 0x48, 0x39, 0xc8);		/* cmp rax, rcx */
		to_slow(e, &sl, CC_E);
	}
	/* Inexact: NX raised again, which makes FS dirty in fpu.c's raise_flags(). */
	EMIT(e, 0xf2, 0x48, 0x0f, 0x2a, 0xc8);		/* cvtsi2sd xmm1, rax */
	EMIT(e, 0x66, 0x0f, 0x2e, 0xc1);		/* ucomisd xmm0, xmm1 */
	exact = jcc(e, CC_E, 0);
	EMIT(e, 0x81, 0x8b);				/* or dword [rbx + OFF_SSTATUS], FS */
	b4(e, (uint32_t)OFF_SSTATUS);
	b4(e, (uint32_t)SSTATUS_FS);
	patch(e, exact, e->pos);
	store_x(e, F_RD(insn), RAX);
	fp_finish(b, d, &sl);
}

/* An OP-FP or fused instruction in place where it has a quick form; false for the rest. */
static bool emit_fp_inline(struct block *b, const struct dc_entry *d)
{
	uint32_t insn = d->raw;
	unsigned op = insn & 0x7f, f7 = insn >> 25, rm = F_RM(insn);
	bool rne = rm == 0 || rm == 7;

	if (op >= 0x43 && op <= 0x4f) {
		if ((f7 & 3) > 1 || !rne || !host_fma())
			return false;
		emit_fp_fma(b, d, f7 & 1);
		return true;
	}
	if (op != 0x53)
		return false;
	switch (f7) {
	case 0x00: case 0x04: case 0x08: case 0x0c:
	case 0x01: case 0x05: case 0x09: case 0x0d:
		if (!rne)
			return false;
		emit_fp_arith(b, d, (const uint8_t[]){ 0x58, 0x5c, 0x59, 0x5e }[f7 >> 2], f7 & 1);
		return true;
	case 0x2c: case 0x2d:
		if (!rne || F_RS2(insn))
			return false;
		emit_fp_arith(b, d, 0x51, f7 & 1);
		return true;
	case 0x11:
		if (rm > 2)
			return false;
		emit_fp_sgnj_d(b, d);
		return true;
	case 0x51:
		if (rm > 2)
			return false;
		emit_fp_cmp_d(b, d);
		return true;
	case 0x69:
		if (F_RS2(insn) > 3 || rm == 5 || rm == 6)
			return false;
		emit_fp_cvt_d_int(b, d);
		return true;
	case 0x61:
		if ((F_RS2(insn) != 0 && F_RS2(insn) != 2) || (rm > 1 && rm != 7))
			return false;
		emit_fp_cvt_int_d(b, d);
		return true;
	case 0x70: case 0x71: case 0x78: case 0x79:
		if (rm || F_RS2(insn))
			return false;
		emit_fp_mv(b, d, f7 < 0x78, f7 & 1);
		return true;
	default:
		return false;
	}
}

/* FLW, FLD, FSW, FSD (compressed ones expanded): what the translator does itself. */
static bool is_fp_mem(uint32_t insn)
{
	unsigned f3 = (insn >> 12) & 7;

	return ((insn & 0x7f) == 0x07 || (insn & 0x7f) == 0x27) && (f3 == 2 || f3 == 3);
}

/*
 * An FP load or store in place, as an integer one: with the FPU off
 * (sstatus.FS 0) or a TLB miss, the interpreter runs it (and traps).
 * FLW NaN-boxes what it loads; a load makes FS dirty, as fpu.c does.
 */
static void emit_fp_mem(struct block *b, const struct dc_entry *d)
{
	uint32_t insn = d->raw;
	bool store = (insn & 0x7f) == 0x27, dbl = ((insn >> 12) & 7) == 3;
	unsigned reg = store ? (insn >> 20) & 31 : (insn >> 7) & 31;
	struct dc_entry m = { .rs1 = (uint8_t)((insn >> 15) & 31) };
	struct emit *e = &b->e;

	m.imm = store ? ((int32_t)insn >> 25) * 32 + (int32_t)((insn >> 7) & 31)
		      : (int32_t)insn >> 20;
	EMIT(e, 0xf7, 0x83);			/* test dword [rbx + OFF_SSTATUS], FS */
	b4(e, (uint32_t)OFF_SSTATUS);
	b4(e, (uint32_t)SSTATUS_FS);
	b->cold[b->n_cold++] = (struct cold_site){
		.jcc_at = jcc(e, CC_E, 0), .pc = b->pc, .done = b->n,
	};
	address(b, &m, dbl ? 8 : 4, store);
	if (store) {
		EMIT(e, 0x48, 0x8b);		/* mov rdx, f[reg] */
		modrm_rbx(e, RDX, OFF_F + 8 * (int32_t)reg);
		if (dbl)
			EMIT(e, 0x48, 0x89, 0x14, 0x01);	/* mov [rcx + rax], rdx */
		else
			EMIT(e, 0x89, 0x14, 0x01);		/* mov [rcx + rax], edx */
		return;
	}
	if (dbl) {
		EMIT(e, 0x48, 0x8b, 0x04, 0x01);	/* mov rax, [rcx + rax] */
	} else {
		EMIT(e, 0x8b, 0x04, 0x01);		/* mov eax, [rcx + rax] */
		EMIT(e, 0x48, 0xba);			/* movabs rdx, box */
		b8(e, 0xffffffff00000000ull);
		EMIT(e, 0x48, 0x09, 0xd0);		/* or rax, rdx */
	}
	EMIT(e, 0x48, 0x89);				/* mov f[reg], rax */
	modrm_rbx(e, RAX, OFF_F + 8 * (int32_t)reg);
	EMIT(e, 0x81, 0x8b);			/* or dword [rbx + OFF_SSTATUS], FS */
	b4(e, (uint32_t)OFF_SSTATUS);
	b4(e, (uint32_t)SSTATUS_FS);
}

/*
 * OP-IMM straight into rd's host register h: h = x[rs1], then the
 * operation on h. False for the forms it leaves to emit_alu().
 */
static bool alu_imm_in_place(struct emit *e, const struct dc_entry *d, unsigned h)
{
	bool w = d->op >= DC_ADDIW && d->op <= DC_SRAIW;
	uint8_t sub, shift = (uint8_t)(d->imm & (w ? 31 : 63));

	switch (d->op) {
	case DC_ADDI: case DC_ADDIW: sub = 0; break;
	case DC_ORI: sub = 1; break;
	case DC_ANDI: sub = 4; break;
	case DC_XORI: sub = 6; break;
	case DC_SLLI: case DC_SLLIW: sub = 4 | 0x80; break;
	case DC_SRLI: case DC_SRLIW: sub = 5 | 0x80; break;
	case DC_SRAI: case DC_SRAIW: sub = 7 | 0x80; break;
	default: return false;
	}
	if (d->rs1 == 0)
		return false;		/* li, and the like: emit_alu() */
	if (host_of(e, d->rs1) != h)
		host_from_x(e, h, d->rs1);
	if (sub & 0x80) {
		OP_MODRM(e, !w, sub & 7, h, 0, 0xc1);	/* shl/shr/sar h, imm8 */
		b1(e, shift);
	} else if (d->imm >= -128 && d->imm < 128) {
		OP_MODRM(e, !w, sub, h, 0, 0x83);	/* op h, simm8 */
		b1(e, (uint8_t)d->imm);
	} else {
		OP_MODRM(e, !w, sub, h, 0, 0x81);	/* op h, simm32 */
		b4(e, (uint32_t)d->imm);
	}
	if (w)
		sign_extend_host(e, h);
	return true;
}

/*
 * OP and OP-32 straight into rd's host register h: h = x[rs1], then h op=
 * x[rs2] from its host register or memory (a shift's count through cl).
 * False for the forms it leaves to emit_alu(): x0 operands, compares,
 * the high multiplies, and rd = rs2 in a subtraction.
 */
static bool alu_reg_in_place(struct emit *e, const struct dc_entry *d, unsigned h)
{
	bool w = (d->op >= DC_ADDW && d->op <= DC_SRAW) || d->op == DC_MULW, swap = false;
	uint8_t opc[2] = { 0 }, shift = 0;
	unsigned a = d->rs1, c = d->rs2;

	switch (d->op) {
	case DC_ADD: case DC_ADDW: opc[0] = 0x03; break;
	case DC_SUB: case DC_SUBW: opc[0] = 0x2b; break;
	case DC_XOR: opc[0] = 0x33; break;
	case DC_OR: opc[0] = 0x0b; break;
	case DC_AND: opc[0] = 0x23; break;
	case DC_MUL: case DC_MULW: opc[0] = 0x0f; opc[1] = 0xaf; break;
	case DC_SLL: case DC_SLLW: shift = 4; break;
	case DC_SRL: case DC_SRLW: shift = 5; break;
	case DC_SRA: case DC_SRAW: shift = 7; break;
	default: return false;
	}
	if (a == 0 || c == 0)
		return false;
	if (shift) {
		load_x(e, RCX, c);		/* before h changes: rs2 may be rd */
		if (host_of(e, a) != h)
			host_from_x(e, h, a);
		OP_MODRM(e, !w, shift, h, 0, 0xd3);	/* shl/shr/sar h, cl */
	} else {
		if (host_of(e, c) == h && host_of(e, a) != h) {
			if (opc[0] == 0x2b)
				return false;	/* rd = rs2 in a subtraction */
			swap = true;		/* the rest commute: h op= x[rs1] */
		}
		if (swap) {
			c = a;
		} else if (host_of(e, a) != h) {
			host_from_x(e, h, a);
		}
		op_modrm(e, !w, opc, opc[0] == 0x0f ? 2 : 1, h, host_of(e, c), c);
	}
	if (w)
		sign_extend_host(e, h);
	return true;
}

/*
 * A register copy (mv, as C.MV writes it: add rd, x0, rs2; or rd = rs1
 * plus, or, xor or minus x0): x[rd] = x[src] without rax where either
 * has a host register. False for anything else.
 */
static bool alu_copy(struct emit *e, const struct dc_entry *d)
{
	bool plain = d->op == DC_ADD || d->op == DC_OR || d->op == DC_XOR;
	unsigned src, hd, hs;

	if (plain && d->rs1 == 0)
		src = d->rs2;
	else if ((plain || d->op == DC_SUB) && d->rs2 == 0)
		src = d->rs1;
	else
		return false;
	if (src == 0 || d->rd == 0)
		return false;		/* li 0 and nops: emit_alu() */
	hd = host_of(e, d->rd);
	hs = host_of(e, src);
	if (hd != NOT_CACHED)
		host_from_x(e, hd, src);
	else if (hs != NOT_CACHED)
		mov_rbx(e, false, hs, (int32_t)(8 * d->rd));
	else
		return false;
	return true;
}

/*
 * rax = rax op x[rs2], x[rs2] taken where it is (a host register or x[]),
 * for the operations with such a form; false for the others (shifts, whose
 * count goes in cl, and the high multiplies) and for x0.
 */
static bool alu_rax_rm(struct emit *e, unsigned op, unsigned rs2)
{
	unsigned h = host_of(e, rs2);

	if (rs2 == 0)
		return false;
	switch (op) {
	case DC_ADD: OP_MODRM(e, true, RAX, h, rs2, 0x03); break;
	case DC_SUB: OP_MODRM(e, true, RAX, h, rs2, 0x2b); break;
	case DC_XOR: OP_MODRM(e, true, RAX, h, rs2, 0x33); break;
	case DC_OR: OP_MODRM(e, true, RAX, h, rs2, 0x0b); break;
	case DC_AND: OP_MODRM(e, true, RAX, h, rs2, 0x23); break;
	case DC_SLT: OP_MODRM(e, true, RAX, h, rs2, 0x3b); setcc_rax(e, 0x9c); break;
	case DC_SLTU: OP_MODRM(e, true, RAX, h, rs2, 0x3b); setcc_rax(e, 0x92); break;
	case DC_ADDW: OP_MODRM(e, false, RAX, h, rs2, 0x03); movsxd_rax(e); break;
	case DC_SUBW: OP_MODRM(e, false, RAX, h, rs2, 0x2b); movsxd_rax(e); break;
	case DC_MUL: OP_MODRM(e, true, RAX, h, rs2, 0x0f, 0xaf); break;
	case DC_MULW: OP_MODRM(e, false, RAX, h, rs2, 0x0f, 0xaf); movsxd_rax(e); break;
	default: return false;
	}
	return true;
}

/* Straight-line ALU instructions; false for one it does not translate. */
static bool emit_alu(struct block *b, const struct dc_entry *d)
{
	struct emit *e = &b->e;
	unsigned h = d->rd ? host_of(e, d->rd) : NOT_CACHED;
	unsigned sh64 = (unsigned)d->imm & 63, sh32 = (unsigned)d->imm & 31;

	if (alu_copy(e, d))
		return true;
	if (h != NOT_CACHED && (alu_imm_in_place(e, d, h) || alu_reg_in_place(e, d, h)))
		return true;

	switch (d->op) {
	case DC_NOP:
		return true;
	case DC_LUI:
		store_x_imm(e, d->rd, (uint64_t)(int64_t)d->imm);
		return true;
	case DC_AUIPC:
		store_x_imm(e, d->rd, b->pc + (uint64_t)(int64_t)d->imm);
		return true;
	case DC_FENCE:
		EMIT(e, 0x0f, 0xae, 0xf0);	/* mfence */
		return true;
	case DC_ADDI: case DC_SLTI: case DC_SLTIU: case DC_XORI: case DC_ORI: case DC_ANDI:
	case DC_SLLI: case DC_SRLI: case DC_SRAI:
	case DC_ADDIW: case DC_SLLIW: case DC_SRLIW: case DC_SRAIW:
		if (d->rs1 == 0 && (d->op == DC_ADDI || d->op == DC_ORI || d->op == DC_XORI)) {
			store_x_imm(e, d->rd, (uint64_t)(int64_t)d->imm);	/* li */
			return true;
		}
		load_x(e, RAX, d->rs1);
		switch (d->op) {
		case DC_ADDI: if (d->imm) rax_imm(e, 0x05, d->imm); break;
		case DC_SLTI: rax_imm(e, 0x3d, d->imm); setcc_rax(e, 0x9c); break;
		case DC_SLTIU: rax_imm(e, 0x3d, d->imm); setcc_rax(e, 0x92); break;
		case DC_XORI: rax_imm(e, 0x35, d->imm); break;
		case DC_ORI: rax_imm(e, 0x0d, d->imm); break;
		case DC_ANDI: rax_imm(e, 0x25, d->imm); break;
		case DC_SLLI: EMIT(e, 0x48, 0xc1, 0xe0, (uint8_t)sh64); break;
		case DC_SRLI: EMIT(e, 0x48, 0xc1, 0xe8, (uint8_t)sh64); break;
		case DC_SRAI: EMIT(e, 0x48, 0xc1, 0xf8, (uint8_t)sh64); break;
		case DC_ADDIW: EMIT(e, 0x05); b4(e, (uint32_t)d->imm); movsxd_rax(e); break;
		case DC_SLLIW: EMIT(e, 0xc1, 0xe0, (uint8_t)sh32); movsxd_rax(e); break;
		case DC_SRLIW: EMIT(e, 0xc1, 0xe8, (uint8_t)sh32); movsxd_rax(e); break;
		default: EMIT(e, 0xc1, 0xf8, (uint8_t)sh32); movsxd_rax(e); break;	/* SRAIW */
		}
		store_x(e, d->rd, RAX);
		return true;
	case DC_ADD: case DC_SUB: case DC_SLL: case DC_SLT: case DC_SLTU: case DC_XOR:
	case DC_SRL: case DC_SRA: case DC_OR: case DC_AND:
	case DC_ADDW: case DC_SUBW: case DC_SLLW: case DC_SRLW: case DC_SRAW:
	case DC_MUL: case DC_MULW: case DC_MULH: case DC_MULHU:
		load_x(e, RAX, d->rs1);
		if (alu_rax_rm(e, d->op, d->rs2)) {
			store_x(e, d->rd, RAX);
			return true;
		}
		load_x(e, RCX, d->rs2);
		switch (d->op) {
		case DC_ADD: EMIT(e, 0x48, 0x01, 0xc8); break;
		case DC_SUB: EMIT(e, 0x48, 0x29, 0xc8); break;
		case DC_XOR: EMIT(e, 0x48, 0x31, 0xc8); break;
		case DC_OR: EMIT(e, 0x48, 0x09, 0xc8); break;
		case DC_AND: EMIT(e, 0x48, 0x21, 0xc8); break;
		case DC_SLT: EMIT(e, 0x48, 0x39, 0xc8); setcc_rax(e, 0x9c); break;
		case DC_SLTU: EMIT(e, 0x48, 0x39, 0xc8); setcc_rax(e, 0x92); break;
		/* x86 masks a 64-bit shift count to 6 bits and a 32-bit one to 5, as RISC-V does. */
		case DC_SLL: EMIT(e, 0x48, 0xd3, 0xe0); break;
		case DC_SRL: EMIT(e, 0x48, 0xd3, 0xe8); break;
		case DC_SRA: EMIT(e, 0x48, 0xd3, 0xf8); break;
		case DC_ADDW: EMIT(e, 0x01, 0xc8); movsxd_rax(e); break;
		case DC_SUBW: EMIT(e, 0x29, 0xc8); movsxd_rax(e); break;
		case DC_SLLW: EMIT(e, 0xd3, 0xe0); movsxd_rax(e); break;
		case DC_SRLW: EMIT(e, 0xd3, 0xe8); movsxd_rax(e); break;
		case DC_SRAW: EMIT(e, 0xd3, 0xf8); movsxd_rax(e); break;
		case DC_MUL: EMIT(e, 0x48, 0x0f, 0xaf, 0xc1); break;
		case DC_MULW: EMIT(e, 0x0f, 0xaf, 0xc1); movsxd_rax(e); break;
		/* one-operand imul / mul: rdx:rax = rax * rcx */
		case DC_MULH: EMIT(e, 0x48, 0xf7, 0xe9, 0x48, 0x89, 0xd0); break;
		default: EMIT(e, 0x48, 0xf7, 0xe1, 0x48, 0x89, 0xd0); break;	/* MULHU */
		}
		store_x(e, d->rd, RAX);
		return true;
	default:
		return false;
	}
}

/* x[rd] = rv64_bitmanip(op, x[rs1], b) through a call, for the rarer Zb operations. */
static void emit_zb_call(struct block *b, const struct dc_entry *d)
{
	struct emit *e = &b->e;

	sync_cached(e, false, true);
	/* rdx, rsi, then edi: each read before the argument that could clobber it is set. */
	if (d->op >= DC_ZB_FIRST_IMM) {
		EMIT(e, 0x48, 0xc7, 0xc2);	/* mov rdx, simm32 */
		b4(e, (uint32_t)d->imm);
	} else {
		load_x(e, RDX, d->rs2);
	}
	load_x(e, RSI, d->rs1);
	EMIT(e, 0xbf);				/* mov edi, op */
	b4(e, d->op);
	call_abs(e, (const void *)rv64_bitmanip);
	sync_cached(e, true, true);
	store_x(e, d->rd, RAX);
}

/* Zb operations on rax = x[rs1] and rcx = x[rs2]; false for those left to a call. */
static bool emit_zb_rr(struct emit *e, unsigned op)
{
	switch (op) {
	case DC_SH1ADD: EMIT(e, 0x48, 0x8d, 0x04, 0x41); break;	/* lea rax, [rcx + rax*2] */
	case DC_SH2ADD: EMIT(e, 0x48, 0x8d, 0x04, 0x81); break;	/* lea rax, [rcx + rax*4] */
	case DC_SH3ADD: EMIT(e, 0x48, 0x8d, 0x04, 0xc1); break;	/* lea rax, [rcx + rax*8] */
	case DC_ADDUW: EMIT(e, 0x89, 0xc0, 0x48, 0x01, 0xc8); break;	/* mov eax, eax; add */
	case DC_SH1ADDUW: EMIT(e, 0x89, 0xc0, 0x48, 0x8d, 0x04, 0x41); break;
	case DC_SH2ADDUW: EMIT(e, 0x89, 0xc0, 0x48, 0x8d, 0x04, 0x81); break;
	case DC_SH3ADDUW: EMIT(e, 0x89, 0xc0, 0x48, 0x8d, 0x04, 0xc1); break;
	/* not rcx; and / or rax, rcx */
	case DC_ANDN: EMIT(e, 0x48, 0xf7, 0xd1, 0x48, 0x21, 0xc8); break;
	case DC_ORN: EMIT(e, 0x48, 0xf7, 0xd1, 0x48, 0x09, 0xc8); break;
	case DC_XNOR: EMIT(e, 0x48, 0x31, 0xc8, 0x48, 0xf7, 0xd0); break;	/* xor; not rax */
	/* cmp rax, rcx; cmovcc rax, rcx */
	case DC_MIN: EMIT(e, 0x48, 0x39, 0xc8, 0x48, 0x0f, 0x4f, 0xc1); break;	/* cmovg */
	case DC_MINU: EMIT(e, 0x48, 0x39, 0xc8, 0x48, 0x0f, 0x47, 0xc1); break;	/* cmova */
	case DC_MAX: EMIT(e, 0x48, 0x39, 0xc8, 0x48, 0x0f, 0x4c, 0xc1); break;	/* cmovl */
	case DC_MAXU: EMIT(e, 0x48, 0x39, 0xc8, 0x48, 0x0f, 0x42, 0xc1); break;	/* cmovb */
	/* x86 takes a rotate count mod 64 (32 for the 32-bit forms), as RISC-V does. */
	case DC_ROL: EMIT(e, 0x48, 0xd3, 0xc0); break;
	case DC_ROR: EMIT(e, 0x48, 0xd3, 0xc8); break;
	case DC_ROLW: EMIT(e, 0xd3, 0xc0); movsxd_rax(e); break;
	case DC_RORW: EMIT(e, 0xd3, 0xc8); movsxd_rax(e); break;
	/* bt* with a register bit offset takes it mod 64 too. */
	case DC_BCLR: EMIT(e, 0x48, 0x0f, 0xb3, 0xc8); break;	/* btr rax, rcx */
	case DC_BINV: EMIT(e, 0x48, 0x0f, 0xbb, 0xc8); break;	/* btc rax, rcx */
	case DC_BSET: EMIT(e, 0x48, 0x0f, 0xab, 0xc8); break;	/* bts rax, rcx */
	case DC_BEXT: EMIT(e, 0x48, 0x0f, 0xa3, 0xc8); setcc_rax(e, 0x92); break;	/* bt; setc */
	default: return false;
	}
	return true;
}

/* ORC.B on rax: each byte 0xff if it is not zero, through SSE2's byte compare. */
static void emit_orc_b(struct emit *e)
{
	EMIT(e, 0x66, 0x48, 0x0f, 0x6e, 0xc0);	/* movq xmm0, rax */
	EMIT(e, 0x66, 0x0f, 0xef, 0xc9);	/* pxor xmm1, xmm1 */
	EMIT(e, 0x66, 0x0f, 0x74, 0xc1);	/* pcmpeqb xmm0, xmm1: 0xff for a zero byte */
	EMIT(e, 0x66, 0x0f, 0x74, 0xc9);	/* pcmpeqb xmm1, xmm1: all ones */
	EMIT(e, 0x66, 0x0f, 0xef, 0xc1);	/* pxor xmm0, xmm1 */
	EMIT(e, 0x66, 0x48, 0x0f, 0x7e, 0xc0);	/* movq rax, xmm0 */
}

/* Zb operations on rax = x[rs1] and an immediate (or none); false for those left to a call. */
static bool emit_zb_ri(struct emit *e, unsigned op, uint8_t imm)
{
	switch (op) {
	case DC_ORCB: emit_orc_b(e); break;
	case DC_CPOP:
		if (!host_popcnt())
			return false;
		EMIT(e, 0xf3, 0x48, 0x0f, 0xb8, 0xc0);	/* popcnt rax, rax */
		break;
	case DC_CPOPW:
		if (!host_popcnt())
			return false;
		EMIT(e, 0xf3, 0x0f, 0xb8, 0xc0);	/* popcnt eax, eax */
		break;
	case DC_SEXTB: EMIT(e, 0x48, 0x0f, 0xbe, 0xc0); break;	/* movsx rax, al */
	case DC_SEXTH: EMIT(e, 0x48, 0x0f, 0xbf, 0xc0); break;	/* movsx rax, ax */
	case DC_ZEXTH: EMIT(e, 0x0f, 0xb7, 0xc0); break;	/* movzx eax, ax */
	case DC_REV8: EMIT(e, 0x48, 0x0f, 0xc8); break;		/* bswap rax */
	case DC_SLLIUW: EMIT(e, 0x89, 0xc0, 0x48, 0xc1, 0xe0, imm); break;	/* mov eax, eax; shl */
	case DC_RORI: EMIT(e, 0x48, 0xc1, 0xc8, imm); break;
	case DC_RORIW: EMIT(e, 0xc1, 0xc8, imm); movsxd_rax(e); break;
	case DC_BCLRI: EMIT(e, 0x48, 0x0f, 0xba, 0xf0, imm); break;	/* btr rax, imm8 */
	case DC_BINVI: EMIT(e, 0x48, 0x0f, 0xba, 0xf8, imm); break;	/* btc rax, imm8 */
	case DC_BSETI: EMIT(e, 0x48, 0x0f, 0xba, 0xe8, imm); break;	/* bts rax, imm8 */
	case DC_BEXTI: EMIT(e, 0x48, 0x0f, 0xba, 0xe0, imm); setcc_rax(e, 0x92); break;
	case DC_CTZ:
		/* bsf leaves its result undefined for 0: 64 then, through cmovz. */
		EMIT(e, 0xba, 64, 0, 0, 0);		/* mov edx, 64 */
		EMIT(e, 0x48, 0x0f, 0xbc, 0xc0);	/* bsf rax, rax */
		EMIT(e, 0x48, 0x0f, 0x44, 0xc2);	/* cmovz rax, rdx */
		break;
	case DC_CTZW:
		EMIT(e, 0x48, 0x0f, 0xba, 0xe8, 32);	/* bts rax, 32: never 0, at most 32 */
		EMIT(e, 0x48, 0x0f, 0xbc, 0xc0);	/* bsf rax, rax */
		break;
	case DC_CLZ:
		/* 63 - bsr, with bsr of 0 taken as -1. */
		EMIT(e, 0x48, 0xc7, 0xc2, 0xff, 0xff, 0xff, 0xff);	/* mov rdx, -1 */
		EMIT(e, 0x48, 0x0f, 0xbd, 0xc0);	/* bsr rax, rax */
		EMIT(e, 0x48, 0x0f, 0x44, 0xc2);	/* cmovz rax, rdx */
		EMIT(e, 0x48, 0xf7, 0xd8, 0x48, 0x83, 0xc0, 63);	/* neg rax; add rax, 63 */
		break;
	case DC_CLZW:
		/* The word in the high half, bit 31 set under it: bsr is 31 for a 0 word. */
		EMIT(e, 0x48, 0xc1, 0xe0, 32);		/* shl rax, 32 */
		EMIT(e, 0x48, 0x0f, 0xba, 0xe8, 31);	/* bts rax, 31 */
		EMIT(e, 0x48, 0x0f, 0xbd, 0xc0);	/* bsr rax, rax */
		EMIT(e, 0x48, 0xf7, 0xd8, 0x48, 0x83, 0xc0, 63);	/* neg rax; add rax, 63 */
		break;
	default:
		return false;
	}
	return true;
}

/*
 * A Zba/Zbb/Zbs instruction: inline x86, but for the population counts on
 * a host without POPCNT, which call the interpreter's own function.
 */
static void emit_zb(struct block *b, const struct dc_entry *d)
{
	struct emit *e = &b->e;
	size_t mark = e->pos;
	bool done;

	load_x(e, RAX, d->rs1);
	if (d->op < DC_ZB_FIRST_IMM) {
		load_x(e, RCX, d->rs2);
		done = emit_zb_rr(e, d->op);
	} else {
		done = emit_zb_ri(e, d->op, (uint8_t)d->imm);
	}
	if (!done) {
		e->pos = mark;
		emit_zb_call(b, d);
		return;
	}
	store_x(e, d->rd, RAX);
}

/* Charges the block; back to C with rax as pc when the budget is spent. */
static void charge_block(struct block *b)
{
	charge(&b->e, b->n);
	jcc(&b->e, CC_LE, b->j->exit_pc);
}

/*
 * The block's end, loans given back: rax = next pc, charge the block, and the lookup stub's
 * way-0 path in place: the fetch TLB, then the table. So each jump the
 * guest makes through a register (a return, an interpreter's dispatch)
 * has its own host indirect jump, predicted on its own, rather than all
 * of them sharing the stub's one. A miss in either goes to the stub.
 */
static void emit_lookup(struct block *b)
{
	struct emit *e = &b->e;
	size_t lookup = b->j->lookup;

	charge_block(b);
	EMIT(e, 0x48, 0x89, 0xc1);		/* mov rcx, rax */
	EMIT(e, 0x48, 0xc1, 0xe9, 0x0c);	/* shr rcx, 12 */
	tlb_index16(e);
	EMIT(e, 0x49, 0x3b, 0x8c, 0x16);	/* cmp rcx, [r14 + rdx + fetch TLB] */
	b4(e, (uint32_t)(ACC_FETCH * TLB_BYTES));
	jcc(e, CC_NE, lookup);
	EMIT(e, 0x49, 0x8b, 0x8c, 0x16);	/* mov rcx, [r14 + rdx + fetch TLB + 8] */
	b4(e, (uint32_t)(ACC_FETCH * TLB_BYTES + 8));
	set_key_rcx(e);
	EMIT(e, 0x48, 0x89, 0xc1);		/* mov rcx, rax */
	EMIT(e, 0x48, 0xd1, 0xe9);		/* shr rcx, 1 */
	EMIT(e, 0x81, 0xe1);			/* and ecx, TABLE_SIZE - 1 */
	b4(e, TABLE_SIZE - 1);
	EMIT(e, 0x48, 0xc1, 0xe1, 0x04);	/* shl rcx, 4 */
	EMIT(e, 0x48, 0xba);			/* movabs rdx, table */
	b8(e, (uint64_t)(uintptr_t)b->j->table);
	EMIT(e, 0x48, 0x3b, 0x04, 0x0a);	/* cmp rax, [rdx + rcx] */
	jcc(e, CC_NE, lookup);
	EMIT(e, 0xff, 0x64, 0x0a, 0x08);	/* jmp [rdx + rcx + 8] */
}

/*
 * A jump to the block's own start: it goes on past the entry check and
 * the loans, as only C moves the code epoch or the fetch addend and the
 * block has not left translated code since its entry checked them.
 */
static void emit_loop_back(struct block *b)
{
	struct emit *e = &b->e;

	charge(e, b->n);
	jcc(e, CC_G, b->body);
	mov_rax_imm(e, b->start_pc);
	give_back(b);
	jmp(e, b->j->exit_pc);
}

/*
 * A jump to target's block, linked once the dispatcher has seen it taken.
 * The target block sets rax to its pc itself: only the ways back to C
 * (the budget spent) and to the lookup stub (the other page not in the
 * fetch TLB), out of the straight path, put it there.
 */
static void emit_linked(struct block *b, uint64_t target)
{
	struct emit *e = &b->e;
	uint64_t vpn = target >> PAGE_SHIFT;
	uint32_t slot = ACC_FETCH * (uint32_t)TLB_BYTES + 16 * (uint32_t)rv64_tlb_index(target);
	size_t spent, other_page = 0;

	charge(e, b->n);
	spent = jcc(e, CC_LE, 0);
	if (vpn != b->start_pc >> PAGE_SHIFT) {
		EMIT(e, 0x48, 0xb9);		/* movabs rcx, vpn */
		b8(e, vpn);
		EMIT(e, 0x49, 0x3b, 0x8e);	/* cmp rcx, [r14 + slot] */
		b4(e, slot);
		other_page = jcc(e, CC_NE, 0);
		EMIT(e, 0x49, 0x8b, 0x8e);	/* mov rcx, [r14 + slot + 8] */
		b4(e, slot + 8);
		set_key_rcx(e);
	}
	b->chain[b->n_chain].at = e->pos;
	b->chain[b->n_chain++].target = target;
	jmp(e, 0);
	patch(e, spent, e->pos);
	mov_rax_imm(e, target);
	jmp(e, b->j->exit_pc);
	if (other_page) {
		patch(e, other_page, e->pos);
		mov_rax_imm(e, target);
		jmp(e, b->j->lookup);
	}
}

/*
 * The block's end towards a known pc: it can go straight to the target
 * block once that is translated (until then it goes to a stub that asks
 * the dispatcher to link it). On the same page the fetch addend stays
 * right; on another, the target page's entry of the fetch TLB (its slot
 * known now) gives it, else the lookup stub takes over. The target's own
 * entry check then compares that addend with its stamp, as after a lookup.
 */
static void emit_goto(struct block *b, uint64_t target)
{
	if (target == b->start_pc) {
		emit_loop_back(b);
		return;
	}
	give_back(b);
	if (b->n_chain == sizeof(b->chain) / sizeof(b->chain[0])) {
		mov_rax_imm(&b->e, target);
		emit_lookup(b);
		return;
	}
	emit_linked(b, target);
}

/* Flags as cmp x[a], x[c] sets them, from host registers where it can. */
static void compare(struct emit *e, unsigned a, unsigned c)
{
	unsigned ha = a ? host_of(e, a) : NOT_CACHED;

	if (ha == NOT_CACHED) {
		load_x(e, RAX, a);
		ha = RAX;
	}
	if (c == 0) {
		OP_MODRM(e, true, 7, ha, 0, 0x83);	/* cmp ha, 0 */
		b1(e, 0);
		return;
	}
	OP_MODRM(e, true, ha, host_of(e, c), c, 0x3b);	/* cmp ha, r/m64 */
}

/*
 * A conditional branch's compare, and its jcc (to patch) taken when the
 * branch is, or when it is not (x86 negates a condition in its low bit).
 */
static size_t branch_jcc_if(struct block *b, const struct dc_entry *d, bool taken)
{
	static const uint8_t cc[] = { [DC_BEQ - DC_BEQ] = CC_E, [DC_BNE - DC_BEQ] = CC_NE,
				      [DC_BLT - DC_BEQ] = CC_L, [DC_BGE - DC_BEQ] = CC_GE,
				      [DC_BLTU - DC_BEQ] = CC_B, [DC_BGEU - DC_BEQ] = CC_AE };

	compare(&b->e, d->rs1, d->rs2);
	return jcc(&b->e, (uint8_t)(cc[d->op - DC_BEQ] ^ !taken), 0);
}

static size_t branch_jcc(struct block *b, const struct dc_entry *d)
{
	return branch_jcc_if(b, d, true);
}

/*
 * A conditional branch's compare and one of its ways as a way out of the
 * block (b->n already counts it): the way taken, or the way not taken
 * (the fall-through) of a branch the block followed.
 */
static struct side_exit branch_way(struct block *b, const struct dc_entry *d, bool taken)
{
	uint64_t target = b->pc + (taken ? (uint64_t)(int64_t)d->imm : d->len);

	return (struct side_exit){ .jcc_at = branch_jcc_if(b, d, taken), .n = b->n,
				   .target = target };
}

/*
 * A conditional branch the block goes on past (b->n already counts it):
 * the block's own code falls through, the taken way waits, out of line,
 * for emit_side_exits().
 */
static void emit_side_branch(struct block *b, const struct dc_entry *d)
{
	b->side[b->n_side++] = branch_way(b, d, true);
}

/*
 * A backward conditional branch the block followed (b->n already counts
 * it): the block's own code goes on at its target, the way not taken
 * waits, out of line, for emit_side_exits().
 */
static void emit_followed_branch(struct block *b, const struct dc_entry *d)
{
	b->side[b->n_side++] = branch_way(b, d, false);
}

/* The block's last instruction, a branch or jump (b->n already counts it). */
static void emit_control(struct block *b, const struct dc_entry *d)
{
	struct emit *e = &b->e;
	uint64_t next = b->pc + d->len, target = b->pc + (uint64_t)(int64_t)d->imm;
	size_t taken;

	switch (d->op) {
	case DC_JAL:
		store_x_imm(e, d->rd, next);
		/* fall through */
	case DC_J:
		emit_goto(b, target);
		return;
	case DC_JALR:
	case DC_JR:
		load_x(e, RAX, d->rs1);
		if (d->imm) {
			EMIT(e, 0x48, 0x05);	/* add rax, simm32 */
			b4(e, (uint32_t)d->imm);
		}
		EMIT(e, 0x48, 0x83, 0xe0, 0xfe);	/* and rax, ~1 */
		store_x_imm(e, d->op == DC_JALR ? d->rd : 0, next);	/* after reading rs1 */
		give_back(b);
		break;
	default:	/* conditional branches */
		taken = branch_jcc(b, d);
		emit_goto(b, next);
		patch(e, taken, e->pos);
		emit_goto(b, target);
		return;
	}
	emit_lookup(b);
}

static bool is_branch(unsigned op)
{
	return op >= DC_BEQ && op <= DC_BGEU;
}

static bool is_control(unsigned op)
{
	return (op >= DC_JAL && op <= DC_JR) || is_branch(op);
}

/*
 * Whether a block goes on past d: a forward conditional branch. Past a
 * backward one (a loop's way back) comes the loop's end, which runs once
 * per loop and has a block of its own anyway.
 */
static bool goes_on_past(const struct dc_entry *d)
{
	return is_branch(d->op) && d->imm > 0;
}

/* The taken ways of the branches the block went on past, after its body. */
static void emit_side_exit(struct block *b, const struct side_exit *s)
{
	patch(&b->e, s->jcc_at, b->e.pos);
	b->n = s->n;
	emit_goto(b, s->target);
}

static void emit_side_exits(struct block *b)
{
	for (unsigned i = 0; i < b->n_side; i++)
		emit_side_exit(b, &b->side[i]);
}

/*
 * The taken ways of the branches over a few instructions: the k skipped
 * are given back to the budget (the block charges all it holds at each
 * way out), then on at the instruction branched to. Should that never
 * have been reached (a guard: merge_here() sees every instruction), out
 * of the block as a side exit.
 */
static void emit_skips(struct block *b)
{
	for (unsigned i = 0; i < b->n_skip; i++) {
		const struct skip *s = &b->skip[i];

		if (!s->merge) {
			emit_side_exit(b, &s->way);
			continue;
		}
		patch(&b->e, s->way.jcc_at, b->e.pos);
		EMIT(&b->e, 0x48, 0x8d, 0x6d, (uint8_t)s->k);	/* lea rbp, [rbp + k] */
		jmp(&b->e, s->merge);
	}
}

/* The rel32 from an instruction ending in it (to come at e->pos) to stamp slot's field at off. */
static uint32_t stamp_rel(const struct emit *e, unsigned slot, unsigned off)
{
	int64_t at = (int64_t)slot * (int64_t)sizeof(struct jit_stamp) + off;

	return (uint32_t)(int32_t)(at - (int64_t)(e->pos + 4));
}

/*
 * The check at a block's start: it runs as translated while the fetch
 * addend and the hart's code epoch (h->jit_key) are those of its last
 * check (its stamp); else to the full check at *ret_verify_jcc.
 */
static void emit_entry(struct block *b, uint64_t pc, unsigned slot, size_t *ret_verify_jcc)
{
	struct emit *e = &b->e;

	EMIT(e, 0x48, 0xb8);			/* movabs rax, pc: GUARD_PATCH_AT bytes */
	b8(e, pc);
	EMIT(e, GUARD_BYTE, 0x8b, 0x8b);	/* mov rcx, [rbx + OFF_KEY] */
	b4(e, (uint32_t)OFF_KEY);
	EMIT(e, 0x48, 0x3b, 0x0d);		/* cmp rcx, [rip + rel32]: the stamp */
	b4(e, stamp_rel(e, slot, 0));
	*ret_verify_jcc = jcc(e, CC_NE, 0);
	b->checked = e->pos;
}

/*
 * After a full check that matched: the block stamps itself and goes on
 * when its page is the host page of its last stamp and the hart has
 * stopped watching no page since (so this one is still watched: the
 * hart's next store there still moves the epoch). Else the dispatcher
 * stamps it and watches the page again (JIT_EXIT_VERIFIED).
 */
static void emit_stamp(struct block *b, size_t start, uint64_t pc, unsigned slot)
{
	struct emit *e = &b->e;
	uintptr_t rw_stamp = (uintptr_t)&b->j->stamps[slot];
	size_t other_page, watch_lost;

	mov_rbx(e, true, RCX, OFF_KEY);		/* mov rcx, [rbx + OFF_KEY] */
	EMIT(e, 0x48, 0x33, 0x0d);		/* xor rcx, [rip + the stamp's key] */
	b4(e, stamp_rel(e, slot, 0));
	EMIT(e, 0x48, 0xc1, 0xe9, 0x0c);	/* shr rcx, 12: the addends differ? */
	other_page = jcc(e, CC_NE, 0);
	mov_rbx(e, true, RCX, OFF_UNWATCHED);	/* mov rcx, [rbx + OFF_UNWATCHED] */
	EMIT(e, 0x48, 0x3b, 0x0d);		/* cmp rcx, [rip + the stamp's unwatched] */
	b4(e, stamp_rel(e, slot, 8));
	watch_lost = jcc(e, CC_NE, 0);
	mov_rbx(e, true, RCX, OFF_KEY);		/* mov rcx, [rbx + OFF_KEY] */
	EMIT(e, 0x48, 0xba);			/* movabs rdx, the stamp's key, writable */
	b8(e, rw_stamp);
	EMIT(e, 0x48, 0x89, 0x0a);		/* mov [rdx], rcx */
	mov_rax_imm(e, pc);
	jmp(e, b->checked);
	patch(e, other_page, e->pos);
	patch(e, watch_lost, e->pos);
	set_site(e, start);
	exit_at(e, b->j, pc, 0, JIT_EXIT_VERIFIED);
}

/*
 * The full check, out of line, with rax = pc: compare the code bytes
 * [pc - back, pc - back + len) as mapped now (addend + pc - back) with
 * those translated (code is pc's, as translated); a mismatch jumps to the
 * stale exit, a match stamps the block (emit_stamp()).
 */
static void emit_verify(struct block *b, size_t start, uint64_t pc, const uint8_t *code,
			size_t back, size_t len, unsigned slot, size_t *ret_stale_jcc,
			size_t *n_stale)
{
	struct emit *e = &b->e;
	size_t off = 0;

	code -= back;

	mov_rbx(e, true, RCX, OFF_KEY);		/* mov rcx, [rbx + OFF_KEY] */
	EMIT(e, 0x48, 0x81, 0xe1);		/* and rcx, ~(PAGE_SIZE - 1): the addend */
	b4(e, (uint32_t)~(uint32_t)PAGE_OFFSET_MASK);
	EMIT(e, 0x48, 0x01, 0xc8);		/* add rax, rcx */
	if (back) {
		EMIT(e, 0x48, 0x2d);		/* sub rax, back: the code's lowest byte */
		b4(e, (uint32_t)back);
	}
	while (off < len) {
		uint64_t v = 0;

		if (len - off >= 8) {
			memcpy(&v, code + off, 8);
			EMIT(e, 0x48, 0xb9);	/* movabs rcx, imm64 */
			b8(e, v);
			EMIT(e, 0x48, 0x39, 0x88);	/* cmp [rax + disp32], rcx */
			b4(e, (uint32_t)off);
			off += 8;
		} else if (len - off >= 4) {
			memcpy(&v, code + off, 4);
			EMIT(e, 0x81, 0xb8);	/* cmp dword [rax + disp32], imm32 */
			b4(e, (uint32_t)off);
			b4(e, (uint32_t)v);
			off += 4;
		} else {
			memcpy(&v, code + off, 2);
			EMIT(e, 0x66, 0x81, 0xb8);	/* cmp word [rax + disp32], imm16 */
			b4(e, (uint32_t)off);
			b1(e, (uint8_t)v);
			b1(e, (uint8_t)(v >> 8));
			off += 2;
		}
		ret_stale_jcc[(*n_stale)++] = jcc(e, CC_NE, 0);
	}
	emit_stamp(b, start, pc, slot);
}

/* Which of rd, rs1 and rs2 an instruction names as integer registers. */
enum { USES_RD = 1, USES_RS1 = 2, USES_RS2 = 4 };

static unsigned operands(const struct dc_entry *d)
{
	unsigned op = d->op;

	if (op == JIT_OP_AMO)
		return USES_RD | USES_RS1 | USES_RS2;
	if (op == JIT_OP_FP)	/* FP registers counted too: harmless */
		return (d->raw & 0x7f) == 0x27 ? USES_RS1 : USES_RD | USES_RS1;
	if (op == DC_NOP || op == DC_FENCE)
		return 0;
	if (op == DC_LUI || op == DC_AUIPC || op == DC_JAL || op == DC_J)
		return USES_RD;
	if ((op >= DC_BEQ && op <= DC_BGEU) || is_store(op))
		return USES_RS1 | USES_RS2;
	if (op == DC_JALR || op == DC_JR || is_load(op) ||
	    (op >= DC_ADDI && op <= DC_SRAIW) || op >= DC_ZB_FIRST_IMM)
		return USES_RD | USES_RS1;
	return USES_RD | USES_RS1 | USES_RS2;
}

/* No register: what survey() records for an instruction that writes none. */
#define NO_REG 0xff

/*
 * The integer registers d names, counted in uses[] and, as a destination,
 * in written[]; the one it writes, or NO_REG. Over-counting is harmless;
 * missing one is not (it could be lent while the block uses it).
 */
static uint8_t count_uses(const struct dc_entry *d, unsigned *uses, bool *written)
{
	unsigned which = operands(d), rd = d->rd, rs1 = d->rs1;

	if (d->op == JIT_OP_FP) {
		rd = F_RD(d->raw);
		rs1 = F_RS1(d->raw);
	}
	if (which & USES_RS1)
		uses[rs1 & 31]++;
	if (which & USES_RS2)
		uses[d->rs2 & 31]++;
	if (!(which & USES_RD))
		return NO_REG;
	uses[rd & 31]++;
	written[rd & 31] = true;
	return (uint8_t)(rd & 31);
}

/* What plan_borrow() and plan_windows() read of a block, found in one pass (survey()). */
struct survey {
	unsigned uses[32];		/* count_uses() */
	bool written[32];
	uint8_t dst[BLOCK_MAX_INSNS];	/* the register each instruction writes, or NO_REG */
	uint8_t accesses[2][32];	/* loads, then stores, from each base register */
};

static void survey(struct survey *sv, const struct dc_entry *insns, unsigned n)
{
	memset(sv, 0, sizeof(*sv));
	for (unsigned i = 0; i < n; i++) {
		const struct dc_entry *d = &insns[i];

		sv->dst[i] = count_uses(d, sv->uses, sv->written);
		if (is_load(d->op) || is_store(d->op))
			sv->accesses[is_store(d->op)][d->rs1]++;
	}
}

/* ---- rotations written as two shifts and an or ---- */

/* Integer operations that run in place and can neither leave the block nor read memory. */
static bool stays_in_block(unsigned op)
{
	return op == DC_NOP || op == DC_LUI || op == DC_AUIPC ||
	       (op >= DC_ADDI && op <= DC_SRAIW) || (op >= DC_ADD && op <= DC_MULW);
}

/*
 * Whether the value x[r] holds before insns[from] is never seen: the block
 * writes r again before it reads it, and before anything that could leave
 * the block (where C would see every register) or the block's end.
 */
static bool dead_from(const struct dc_entry *insns, unsigned n, unsigned from, unsigned r)
{
	for (unsigned k = from; k < n; k++) {
		const struct dc_entry *d = &insns[k];
		unsigned which = operands(d);

		if (!stays_in_block(d->op))
			return false;
		if (((which & USES_RS1) && d->rs1 == r) || ((which & USES_RS2) && d->rs2 == r))
			return false;
		if ((which & USES_RD) && d->rd == r)
			return true;
	}
	return false;
}

/*
 * How many instructions the forward branch insns[i] skips, when it goes to
 * a later instruction of the block at most SKIP_MAX on and those between
 * are register operations (stays_in_block()) that write no base register
 * of the block's loads and stores (windows are planned along its straight
 * line); else 0, and its taken way leaves the block.
 */
static unsigned skip_of(const struct dc_entry *insns, unsigned n, unsigned i,
			const struct survey *sv)
{
	int64_t off = insns[i].len;

	for (unsigned t = i + 1; t < n && t <= i + 1 + SKIP_MAX; t++) {
		unsigned rd = insns[t].rd & 31;

		if (off == insns[i].imm)
			return t - i - 1;
		if (!stays_in_block(insns[t].op) || sv->accesses[0][rd] || sv->accesses[1][rd])
			return 0;
		off += insns[t].len;
	}
	return 0;
}

/*
 * t[0..2] as a rotation right of x[*ret_rs] by *ret_k: a left and a right
 * shift of one register by amounts adding up to the width (either first,
 * into two other registers, so that x[rs] stays as it was), then the or
 * of the two. RV64GC code has no rotate instruction (Zbb's is an
 * extension), so compilers write it so, three times per round in SHA-2.
 */
static bool is_rotation(const struct dc_entry *t, unsigned *ret_rs, unsigned *ret_k, bool *ret_w)
{
	bool w = t[0].op == DC_SLLIW || t[0].op == DC_SRLIW;
	unsigned left = w ? DC_SLLIW : DC_SLLI, right = w ? DC_SRLIW : DC_SRLI, width = w ? 32 : 64;
	const struct dc_entry *l = t[0].op == left ? &t[0] : &t[1];
	const struct dc_entry *r = t[0].op == left ? &t[1] : &t[0];
	unsigned rs = t[0].rs1;

	if (l->op != left || r->op != right || l->rs1 != rs || r->rs1 != rs || rs == 0)
		return false;
	if (l->rd == rs || r->rd == rs || l->rd == r->rd || l->rd == 0 || r->rd == 0)
		return false;
	if (r->imm <= 0 || r->imm >= (int32_t)width || l->imm + r->imm != (int32_t)width)
		return false;
	if (t[2].op != DC_OR || t[2].rd == 0 ||
	    !((t[2].rs1 == l->rd && t[2].rs2 == r->rd) || (t[2].rs1 == r->rd && t[2].rs2 == l->rd)))
		return false;
	*ret_rs = rs;
	*ret_k = (unsigned)r->imm;
	*ret_w = w;
	return true;
}

/* x[rd] = x[rs] rotated right by k (W: the low word's, sign-extended), in place where it can. */
static void emit_rotate(struct emit *e, unsigned rd, unsigned rs, unsigned k, bool w)
{
	unsigned h = host_of(e, rd);

	if (h != NOT_CACHED) {
		if (host_of(e, rs) != h)
			host_from_x(e, h, rs);
		OP_MODRM(e, !w, 1, h, 0, 0xc1);	/* ror h, imm8 */
		b1(e, (uint8_t)k);
		if (w)
			sign_extend_host(e, h);
		return;
	}
	load_x(e, RAX, rs);
	if (w) {
		EMIT(e, 0xc1, 0xc8, (uint8_t)k);	/* ror eax, imm8 */
		movsxd_rax(e);
	} else {
		EMIT(e, 0x48, 0xc1, 0xc8, (uint8_t)k);	/* ror rax, imm8 */
	}
	store_x(e, rd, RAX);
}

/*
 * insns[i..i+2] as one rotation when they are one: the shifts' own
 * results are still written where the block may see them later.
 * Returns the instructions done (3), or 0.
 */
static unsigned emit_rotation(struct block *b, const struct dc_entry *insns, unsigned n,
			      unsigned i)
{
	unsigned rs, k;
	bool w;

	if (i + 3 > n || !is_rotation(&insns[i], &rs, &k, &w))
		return 0;
	for (unsigned s = i; s < i + 2; s++) {
		if (insns[s].rd != insns[i + 2].rd && !dead_from(insns, n, i + 3, insns[s].rd))
			emit_alu(b, &insns[s]);
	}
	emit_rotate(&b->e, insns[i + 2].rd, rs, k, w);
	return 3;
}

/* ---- words zero-extended: slli rd, rs, 32; srli rd, rd, m ---- */

/*
 * t[0..1] as x[rd] = the low word of x[rs] zero-extended, shifted left by
 * 32 - m (right by m - 32): RV64GC has no zext.w (Zba's add.uw is an
 * extension), so compilers write it as two shifts of rd, an unsigned int
 * index most often. rd's value between the two is never seen.
 */
static bool is_zext_word(const struct dc_entry *t)
{
	return t[0].op == DC_SLLI && t[0].imm == 32 && t[0].rd != 0 && t[0].rs1 != 0 &&
	       t[1].op == DC_SRLI && t[1].rd == t[0].rd && t[1].rs1 == t[0].rd &&
	       t[1].imm > 0 && t[1].imm < 64;
}

/* insns[i..i + 1] as a mov of the word and a shift, if is_zext_word(); how many it took. */
static unsigned emit_zext_word(struct block *b, const struct dc_entry *insns, unsigned n,
			       unsigned i)
{
	struct emit *e = &b->e;
	const struct dc_entry *t = &insns[i];
	unsigned rd, h;
	int sh;

	if (i + 2 > n || !is_zext_word(t))
		return 0;
	rd = t[0].rd;
	sh = 32 - t[1].imm;
	h = host_of(e, rd) == NOT_CACHED ? RAX : host_of(e, rd);
	OP_MODRM(e, false, h, host_of(e, t[0].rs1), t[0].rs1, 0x8b);	/* mov h32, r/m32 */
	if (sh) {
		OP_MODRM(e, true, sh > 0 ? 4 : 5, h, 0, 0xc1);	/* shl / shr h, imm8 */
		b1(e, (uint8_t)(sh > 0 ? sh : -sh));
	}
	if (h == RAX)
		store_x(e, rd, RAX);
	return 2;
}

/* ---- windows: one check for a base register's accesses further on ---- */

/* Instructions a window may span, from its anchor to its last member. */
#define WINDOW_RANGE 48

/*
 * The window anchored at insns[i] (with the g of the row mem_group() takes
 * from it) in slot, if one is worth it: the loads (or stores) of the same
 * base register that follow in the block (past the branches it goes on
 * past; more of them in all), before anything that writes the base other
 * than addi rs1, rs1, k (whose k moves their offsets), all their bytes
 * within GROUP_SPAN; at least one before the first branch. dst[] holds
 * the register each instruction writes. Its last member's index, or 0.
 */
static unsigned plan_window(struct block *b, const struct dc_entry *insns, const uint8_t *dst,
			    unsigned n, unsigned i, unsigned g, int32_t lo, int32_t span_last,
			    unsigned more, unsigned slot)
{
	const struct dc_entry *a = &insns[i];
	bool load = is_load(a->op), sure = false;
	unsigned rs1 = a->rs1, last = 0, n_members = 0, at[GROUP_MAX];
	int64_t from, to, delta = 0, off[GROUP_MAX];

	if (rs1 == 0 || (load && insns[i + g - 1].rd == rs1))
		return 0;	/* the base changes after the row */
	from = lo;
	to = (int64_t)lo + span_last + 1;
	for (unsigned j = i + g; j < n && j - i < WINDOW_RANGE && n_members < more &&
				 g + n_members < GROUP_MAX; j++) {
		const struct dc_entry *d = &insns[j];

		if (is_control(d->op) && !sure)
			return 0;	/* its members may never run: not worth the anchor's cost */
		if ((load ? is_load(d->op) : is_store(d->op)) && d->rs1 == rs1) {
			int64_t x = d->imm + delta, y = x + access_size(d->op);

			if ((y > to ? y : to) - (x < from ? x : from) > GROUP_SPAN)
				break;
			from = x < from ? x : from;
			to = y > to ? y : to;
			at[n_members] = j;
			off[n_members++] = x;
			last = j;
			sure = true;
			if (load && d->rd == rs1)
				break;
		} else if (dst[j] == rs1) {
			if (d->op != DC_ADDI || d->rs1 != rs1)
				break;
			delta += d->imm;
		}
	}
	if (!sure)
		return 0;
	b->plan[i].role = WIN_ANCHOR;
	b->plan[i].slot = (uint8_t)slot;
	b->plan[i].lo = (int32_t)from;
	b->plan[i].span_last = (int32_t)(to - from - 1);
	for (unsigned k = 0; k < n_members; k++)
		b->plan[at[k]] = (struct window_plan){ .role = WIN_MEMBER, .slot = (uint8_t)slot,
							.disp = (int32_t)(off[k] - from) };
	return last;
}

/*
 * The block's windows, anchored where translate() takes a row of
 * accesses, each in a slot no other one holds meanwhile. When the fill
 * cannot take an anchor's span, its slot is emptied and each access of
 * the window is checked on its own (emit_window_alone()).
 */
static void plan_windows(struct block *b, const struct dc_entry *insns, unsigned n,
			 struct survey *sv)
{
	unsigned open_to[RV64_JIT_WINDOWS] = { 0 };	/* each slot's last member + 1 */

	memset(b->plan, 0, n * sizeof(b->plan[0]));
	for (unsigned i = 0, g; i < n; i += g) {
		const struct dc_entry *d = &insns[i];
		unsigned slot = 0, last;
		uint8_t *more;		/* accesses of its kind from its base still to come */
		int32_t lo, span_last;

		g = 1;
		if (!(is_load(d->op) || is_store(d->op)))
			continue;
		more = &sv->accesses[is_store(d->op)][d->rs1];
		if (b->plan[i].role != WIN_NONE) {
			(*more)--;
			continue;
		}
		g = mem_group(d, n - i, &lo, &span_last);
		b->plan[i].g = (uint8_t)g;
		b->plan[i].lo = lo;
		b->plan[i].span_last = span_last;
		*more = (uint8_t)(*more - g);
		while (slot < RV64_JIT_WINDOWS && open_to[slot] > i)
			slot++;
		if (*more == 0 || slot == RV64_JIT_WINDOWS)
			continue;	/* none of its kind from its base further on */
		last = plan_window(b, insns, sv->dst, n, i, g, lo, span_last, *more, slot);
		if (last)
			open_to[slot] = last + 1;
	}
}

/*
 * A loan pays for itself from this many uses in the block (two moves in,
 * two out); in a block that loops on itself, which takes its loans once
 * for all its rounds, from one.
 */
#define LOAN_MIN_USES 3

/* The pc after insns[i], at pc: a jump or branch the block followed goes on at its target. */
static uint64_t pc_after(const struct dc_entry *insns, uint64_t followed, unsigned i, uint64_t pc)
{
	if (followed >> i & 1)
		return pc + (uint64_t)(int64_t)insns[i].imm;
	return pc + insns[i].len;
}

/* A branch or jump of the block goes back to its own start. */
static bool loops_on_itself(const struct block *b, const struct dc_entry *insns, unsigned n)
{
	uint64_t pc = b->start_pc;

	for (unsigned i = 0; i < n; pc = pc_after(insns, b->followed, i++, pc)) {
		const struct dc_entry *d = &insns[i];

		if ((is_branch(d->op) || d->op == DC_JAL || d->op == DC_J) &&
		    pc + (uint64_t)(int64_t)d->imm == b->start_pc)
			return true;
	}
	return false;
}

/* The register of cached[] not lent yet that the block names least. */
static size_t least_named(const unsigned *uses, const bool *lent)
{
	size_t k = N_CACHED;

	for (size_t c = 0; c < N_CACHED; c++) {
		if (!lent[c] && (k == N_CACHED || uses[cached[c].guest] < uses[cached[k].guest]))
			k = c;
	}
	return k;
}

/*
 * Which registers of cached[] the block lends, and to whom: the one it
 * names least goes to the uncached register it names most, while that one
 * is named at least LOAN_MIN_USES times more than twice as often as the
 * lender. A lender the block names stays in x[] meanwhile, as any
 * uncached register does.
 */
static void plan_borrow(struct block *b, const struct dc_entry *insns, unsigned n,
			struct survey *sv)
{
	unsigned *uses = sv->uses, min_uses = loops_on_itself(b, insns, n) ? 1 : LOAN_MIN_USES;
	bool lent[N_CACHED] = { false };

	for (unsigned round = 0; round < N_CACHED; round++) {
		size_t k = least_named(uses, lent);
		unsigned best = 0, need = min_uses + 2 * uses[cached[k].guest];

		for (unsigned g = 1; g < 32; g++) {
			if (host_of(&b->e, g) == NOT_CACHED && uses[g] >= need &&
			    uses[g] > uses[best])
				best = g;
		}
		if (!best)
			return;
		lent[k] = true;
		b->borrow[b->n_borrow++] = (struct borrow){
			.guest = (uint8_t)best, .lender = cached[k].guest, .host = cached[k].host,
			.written = sv->written[best],
		};
		uses[best] = 0;
	}
}

/* The loans, at the block's entry: the lender to x[], the borrower from it. */
static void take_loans(struct block *b)
{
	struct emit *e = &b->e;

	for (unsigned i = 0; i < b->n_borrow; i++) {
		const struct borrow *l = &b->borrow[i];

		mov_rbx(e, false, l->host, (int32_t)(8 * l->lender));
		mov_rbx(e, true, l->host, (int32_t)(8 * l->guest));
		e->host[l->lender] = NOT_CACHED;
		e->host[l->guest] = l->host;
		e->guest_in[l->host] = l->guest;
	}
}

/* The map's entry for pc, or the empty one where it would go. */
static struct jit_entry *map_slot(struct rv64_jit *j, uint64_t pc)
{
	size_t i = (size_t)((pc * 0x9e3779b97f4a7c15ull) >> (64 - MAP_BITS));

	while (j->map[i].pc != pc && j->map[i].pc != 1)
		i = (i + 1) & (MAP_SIZE - 1);
	return &j->map[i];
}

/* The slot of pc in apart[], or the empty one where it would go. */
static uint64_t *apart_slot(struct rv64_jit *j, uint64_t pc)
{
	size_t i = (size_t)((pc >> 1) * 0x9e3779b97f4a7c15ull >> 54) & (APART_SIZE - 1);

	while (j->apart[i] != pc && j->apart[i] != 0)
		i = (i + 1) & (APART_SIZE - 1);
	return &j->apart[i];
}

static void flush_all(struct rv64_jit *j)
{
	j->generation++;
	memset(j->apart, 0, sizeof(j->apart));
	j->n_apart = 0;
	for (size_t i = 0; i < TABLE_SIZE; i++)
		j->table[i] = (struct jit_entry){ .pc = 1, .code = NULL };
	for (size_t i = 0; i < MAP_SIZE; i++)
		j->map[i] = (struct jit_entry){ .pc = 1, .code = NULL };
	j->map_used = 0;
	memset(j->pages, 0, sizeof(j->pages));
	j->pages_used = 0;
	j->n_stamps = 0;
	j->used = j->fixed;
}

/*
 * A floating-point instruction (loads, stores, fused and OP-FP, compressed
 * or not): d->raw becomes its 32-bit form for jit_fp().
 */
static bool is_fp(uint32_t w, struct dc_entry *d)
{
	uint32_t insn = (w & 3) == 3 ? w : rv64_rvc_table[w & 0xffff];

	switch (insn & 0x7f) {
	case 0x07: case 0x27: case 0x43: case 0x47: case 0x4b: case 0x4f: case 0x53:
		d->raw = insn;
		d->imm = (int32_t)((w & 3) == 3 ? w : w & 0xffff);
		return insn != 0;
	default:
		return false;
	}
}

/* An AMO, LR or SC of a word or a doubleword (anything else there is illegal: the interpreter's). */
static bool is_amo(uint32_t w)
{
	return (w & 0x7f) == 0x2f && (((w >> 12) & 7) == 2 || ((w >> 12) & 7) == 3);
}

/*
 * Whether a block follows d, a jump at page offset off, to its target:
 * inside the page, outside what the block took so far ([lo, hi)), near
 * enough that the block's code spans at most SPAN_MAX bytes, and not more
 * than FOLLOW_MAX times.
 */
static bool follows(const struct dc_entry *d, size_t off, size_t lo, size_t hi, unsigned *jumps)
{
	int64_t t = (int64_t)off + d->imm, from = (int64_t)lo, to = (int64_t)hi;

	if ((d->op != DC_J && !(is_branch(d->op) && d->imm < 0)) || t < 0 ||
	    t + 4 > (int64_t)PAGE_SIZE || (t >= from && t < to))
		return false;
	from = t < from ? t : from;
	to = t + 4 > to ? t + 4 : to;
	return to - from <= SPAN_MAX && (*jumps)++ < FOLLOW_MAX;
}

/*
 * The block's instructions, from page offset pc's on, following jumps
 * (and backward conditional branches: a loop is likely to go round again)
 * inside the page, which it marks in *ret_followed; how many bytes its
 * code spans, from *ret_lo.
 */
static size_t scan(const uint8_t *page, uint64_t pc, struct dc_entry *insns, unsigned *ret_n,
		   uint64_t *ret_followed, bool *ret_unknown_next, size_t *ret_lo)
{
	size_t off = pc & PAGE_OFFSET_MASK, lo = off, hi = off;
	unsigned n = 0, branches = 0, jumps = 0;

	*ret_unknown_next = false;
	*ret_followed = 0;
	while (n < BLOCK_MAX_INSNS && off + 2 <= PAGE_SIZE) {
		uint32_t w = 0;
		struct dc_entry d;

		memcpy(&w, page + off, 2);
		if ((w & 3) == 3) {
			if (off + 4 > PAGE_SIZE)
				break;
			memcpy(&w, page + off, 4);
		}
		rv64_decode(&d, w);
		if ((off + d.len > hi ? off + d.len : hi) - lo > SPAN_MAX)
			break;		/* past a followed jump, as far as the full check goes */
		if (d.op == DC_SLOW && is_fp(w, &d)) {
			d.op = JIT_OP_FP;
		} else if (d.op == DC_SLOW && is_amo(w)) {
			d.op = JIT_OP_AMO;
			d.raw = w;
			d.rd = (uint8_t)F_RD(w);
			d.rs1 = (uint8_t)F_RS1(w);
			d.rs2 = (uint8_t)F_RS2(w);
		} else if (d.op == DC_SLOW) {
			*ret_unknown_next = true;
			break;
		}
		insns[n++] = d;
		hi = off + d.len > hi ? off + d.len : hi;
		/* A conditional branch followed leaves by its other way, as one gone past does. */
		if ((d.op == DC_J || branches < SIDE_MAX) && follows(&d, off, lo, hi, &jumps)) {
			branches += d.op != DC_J;
			*ret_followed |= 1ull << (n - 1);
			off = (size_t)((int64_t)off + d.imm);
			lo = off < lo ? off : lo;
			continue;
		}
		off += d.len;
		if (is_control(d.op) && !(goes_on_past(&d) && branches++ < SIDE_MAX))
			break;
	}
	/* The last instruction ends the block: both its ways leave it. */
	if (n > 0)
		*ret_followed &= ~(1ull << (n - 1));
	*ret_n = n;
	*ret_lo = lo;
	return hi - lo;
}

/*
 * b, empty, for the block at pc starting at code offset start. Field by
 * field: its arrays (some 13 KiB, cold paths mostly) are written as they
 * are used, and zeroing them took a few percent of a compile-like
 * workload, which translates half a million blocks.
 */
static void start_block(struct block *b, struct rv64_jit *j, uint64_t pc, size_t start)
{
	b->e = (struct emit){ .buf = j->rw, .pos = start, .end = CODE_SIZE };
	map_standard(&b->e);
	b->j = j;
	b->start_pc = pc;
	b->pc = pc;
	b->n = 0;
	b->n_cold = 0;
	b->n_chain = 0;
	b->n_side = 0;
	b->n_skip = 0;
	b->merge_at = 0;
	b->n_borrow = 0;
	b->checked = 0;
	b->body = 0;
	b->start = start;
	b->apart = pc && *apart_slot(j, pc) == pc;
	b->rcx_window = 0;
}

/*
 * Whether instruction i is where the last skip goes to: there the two ways
 * meet, and neither rax nor rcx holds anything known any more.
 */
static bool merge_here(struct block *b, unsigned i)
{
	if (!b->merge_at || b->merge_at != i)
		return false;
	b->skip[b->n_skip - 1].merge = b->e.pos;
	b->merge_at = 0;
	b->e.rax_is = 0;
	return true;
}

/* A conditional branch the block goes on past: over k of its instructions, or out of it. */
static void emit_side_or_skip(struct block *b, const struct dc_entry *d, unsigned k)
{
	if (k == 0 || b->merge_at) {
		emit_side_branch(b, d);
		return;
	}
	b->skip[b->n_skip++] = (struct skip){ .way = branch_way(b, d, true), .k = k };
	b->merge_at = b->n + k;		/* b->n already counts the branch */
}

/* Translates the block at pc, whose code the host sees at code; NULL if none starts there. */
static const uint8_t *translate(struct rv64_jit *j, uint64_t pc, const uint8_t *code,
				const struct accel_vcpu *h)
{
	struct dc_entry insns[BLOCK_MAX_INSNS];
	size_t stale[SPAN_MAX / 8 + 2], n_stale = 0, len, lo, start, verify;
	struct block blk, *b = &blk;
	struct survey sv;
	unsigned n, slot;
	uint64_t followed;
	bool unknown_next;
	struct jit_entry *te, *me;

	len = scan(code - (pc & PAGE_OFFSET_MASK), pc, insns, &n, &followed, &unknown_next, &lo);
	/*
	 * An instruction the translator does not know, first: a block of
	 * none that hands it to the interpreter, checked like any other, so
	 * that coming back here costs no new translation.
	 */
	if (n == 0 && !unknown_next)
		return NULL;
	if (n == 0)
		len = (code[0] & 3) == 3 ? 4 : 2;
	if (j->used + BLOCK_MAX_BYTES > CODE_SIZE || j->map_used >= MAP_FULL ||
	    j->n_stamps >= STAMPS)
		flush_all(j);
	start = j->used;
	start_block(b, j, pc, start);
	b->followed = followed;
	slot = j->n_stamps++;
	j->stamps[slot] = (struct jit_stamp){
		.key = (uint64_t)((uintptr_t)code - (uintptr_t)pc) | key_epoch(h->code_epoch),
		.unwatched = h->jit_unwatched,
	};
	emit_entry(b, pc, slot, &verify);
	survey(&sv, insns, n);
	plan_borrow(b, insns, n, &sv);
	plan_windows(b, insns, n, &sv);
	take_loans(b);
	b->body = b->e.pos;

	b->pc = pc;
	for (unsigned i = 0; i < n; i++) {
		const struct dc_entry *d = &insns[i];
		unsigned rcx_window = merge_here(b, i) ? 0 : b->rcx_window;
		unsigned end = b->merge_at ? b->merge_at : n;	/* no pair or triple across a merge */

		b->n = i;
		b->rcx_window = 0;
		if (b->plan[i].role == WIN_MEMBER) {
			emit_window_member(b, d, rcx_window == b->plan[i].slot + 1u);
			b->pc += d->len;
			continue;
		}
		if (is_load(d->op) || is_store(d->op)) {
			i += emit_mem_group(b, d) - 1;
			continue;	/* b->pc moved on */
		}
		if (emit_rotation(b, insns, end, i)) {
			b->pc += insns[i].len + insns[i + 1].len + insns[i + 2].len;
			i += 2;
			continue;
		}
		if (emit_zext_word(b, insns, end, i)) {
			b->pc += insns[i].len + insns[i + 1].len;
			i += 1;
			continue;
		}
		if (is_control(d->op)) {
			b->n = i + 1;
			if (followed >> i & 1) {
				if (d->op != DC_J)
					emit_followed_branch(b, d);
				b->pc = pc_after(insns, followed, i, b->pc);
				b->rcx_window = rcx_window;
				continue;
			}
			if (i + 1 < n) {
				emit_side_or_skip(b, d, skip_of(insns, n, i, &sv));
				b->rcx_window = rcx_window;	/* it leaves rcx as it was */
			} else {
				emit_control(b, d);
			}
		} else if (d->op == JIT_OP_FP && is_fp_mem(d->raw))
			emit_fp_mem(b, d);
		else if (d->op == JIT_OP_FP) {
			if (!emit_fp_inline(b, d))
				emit_fp(b, d);
		}
		else if (d->op == JIT_OP_AMO)
			emit_amo(b, d);
		else if (d->op >= DC_ZB_FIRST)	/* the pseudo-ops are above them: tested first */
			emit_zb(b, d);
		else if (d->op >= DC_DIV && d->op <= DC_REMUW)
			emit_div(b, d);
		else if (!emit_alu(b, d))
			emit_muldiv(b, d);
		b->pc += d->len;
	}
	if (n == 0 || !is_control(insns[n - 1].op)) {
		b->n = n;
		if (unknown_next) {
			/* Straight to the interpreter for the instruction after. */
			give_back(b);
			exit_at(&b->e, j, b->pc, n, JIT_EXIT_INTERP);
		} else {
			emit_goto(b, b->pc);
		}
	}
	emit_side_exits(b);
	emit_skips(b);

	/*
	 * Cold paths: a TLB miss hands its instruction to the interpreter; a
	 * helper that trapped has set pc itself.
	 */
	for (unsigned i = 0; i < b->n_cold; i++) {
		const struct cold_site *c = &b->cold[i];

		patch(&b->e, c->jcc_at, b->e.pos);
		if (c->member) {
			emit_window_alone(b, c);
			continue;
		}
		if (c->tlb) {
			emit_tlb_way1(b, c);
			emit_tlb_fill(b, c);
			if (c->window)
				emit_window_alone(b, c);
			else if (c->n_group && b->apart)
				emit_ungrouped(b, c);
			else if (c->n_group)
				emit_group_helper(b, c);
			if (c->n_group)
				continue;	/* a window's anchor has one too */
		}
		give_back(b);
		if (c->helper) {
			charge(&b->e, c->done);
			leave(&b->e, j->epilogue, JIT_EXIT_HELPER);
		} else {
			exit_at(&b->e, j, c->pc, c->done, JIT_EXIT_INTERP);
		}
	}
	/* Unlinked jumps: rax = target; ask the dispatcher to link this one. */
	for (unsigned i = 0; i < b->n_chain; i++) {
		patch(&b->e, b->chain[i].at + 1, b->e.pos);
		mov_rax_imm(&b->e, b->chain[i].target);
		store_pc_rax(&b->e);
		set_site(&b->e, b->chain[i].at);
		leave(&b->e, j->epilogue, JIT_EXIT_CHAIN);
	}
	/* The full check, when the entry's stamps do not match. */
	patch(&b->e, verify, b->e.pos);
	emit_verify(b, start, pc, code, (pc & PAGE_OFFSET_MASK) - lo, len, slot, stale, &n_stale);
	/* Stale: say which block, so the dispatcher can retire it. */
	for (size_t i = 0; i < n_stale; i++)
		patch(&b->e, stale[i], b->e.pos);
	set_site(&b->e, start);
	exit_at(&b->e, j, pc, 0, JIT_EXIT_STALE);

	if (b->e.pos > CODE_SIZE)
		return NULL;	/* cannot happen with BLOCK_MAX_BYTES of room */
	j->used = (b->e.pos + 15) & ~(size_t)15;

	te = &j->table[(pc >> 1) & (TABLE_SIZE - 1)];
	te->pc = pc;
	te->code = j->rx + start;
	me = map_slot(j, pc);
	j->map_used += me->pc == 1;
	*me = *te;
	return te->code;
}

/* ---- the dispatcher ---- */

/*
 * The block at offset off (for pc) no longer matches the guest's code: out
 * of the table, and jumps linked to it now go through the lookup stub (to
 * its retranslation, once there is one). The jump lands where the block's
 * first instruction has put pc in rax, as the stub wants.
 */
static void retire(struct rv64_jit *j, uint64_t pc, size_t off)
{
	struct jit_entry *te = &j->table[(pc >> 1) & (TABLE_SIZE - 1)], *me = map_slot(j, pc);
	int32_t rel = (int32_t)((int64_t)j->lookup - (int64_t)(off + GUARD_PATCH_AT + 5));

	if (te->pc == pc && te->code == j->rx + off)
		te->pc = 1;
	if (me->pc == pc && me->code == j->rx + off)
		me->code = NULL;
	j->rw[off + GUARD_PATCH_AT] = 0xe9;
	memcpy(j->rw + off + GUARD_PATCH_AT + 1, &rel, 4);
}

/* The block at offset off was retired: its entry jumps to the lookup stub. */
static bool retired(const struct rv64_jit *j, size_t off)
{
	return j->rw[off + GUARD_PATCH_AT] != GUARD_BYTE;
}

/*
 * The block at offset off had a group of accesses whose span crossed a
 * page: out of the table, to be translated again with each group's
 * accesses also checked one by one. Its pc is in the movabs its entry
 * starts with.
 */
static void split(struct rv64_jit *j, size_t off)
{
	uint64_t pc, *slot;

	if (off + GUARD_PATCH_AT > CODE_SIZE || retired(j, off) || j->n_apart >= APART_FULL)
		return;
	memcpy(&pc, j->rw + off + 2, 8);
	slot = apart_slot(j, pc);
	if (pc && *slot != pc) {
		*slot = pc;
		j->n_apart++;
	}
	retire(j, pc, off);
}

/* The slot of page in the set of code pages, or the free one where it would go. */
static uintptr_t *page_slot(struct rv64_jit *j, uintptr_t page, bool for_insert)
{
	size_t i = (size_t)(((uint64_t)page >> PAGE_SHIFT) * 0x9e3779b97f4a7c15ull >> (64 - PAGES_BITS));
	uintptr_t *gone = NULL;

	while (j->pages[i] != page && j->pages[i] != 0) {
		if (j->pages[i] == PAGE_GONE && !gone)
			gone = &j->pages[i];
		i = (i + 1) & (PAGES_SIZE - 1);
	}
	if (j->pages[i] == 0 && for_insert && gone)
		return gone;
	return &j->pages[i];
}

/*
 * Code from the host page at page is translated or checked: watch the
 * page, and drop the hart's write TLB entries for it so that its next
 * store there comes through rv64_jit_code_written().
 */
static void watch_page(struct accel_vcpu *h, uintptr_t page)
{
	struct rv64_jit *j = h->jit;
	uintptr_t *slot = page_slot(j, page, true);

	if (*slot == page)
		return;
	j->pages_used += *slot == 0;
	*slot = page;
	for (unsigned m = 0; m < TLBM__MAX; m++) {
		for (unsigned i = 0; i < TLB_SIZE; i++) {
			struct tlb_entry *e0 = &h->tlb_all[m][ACC_WRITE][i];
			struct tlb_entry *e1 = &h->tlb_way1[m][ACC_WRITE][i];

			if (e0->vpn != TLB_INVALID && e0->addend + (e0->vpn << PAGE_SHIFT) == page)
				e0->vpn = TLB_INVALID;
			if (e1->vpn != TLB_INVALID && e1->addend + (e1->vpn << PAGE_SHIFT) == page)
				e1->vpn = TLB_INVALID;
		}
	}
}

void rv64_jit_code_written(struct accel_vcpu *h, const uint8_t *page)
{
	struct rv64_jit *j = h->jit;
	uintptr_t *slot;

	if (!j || j->pages_used == 0)
		return;
	slot = page_slot(j, (uintptr_t)page, false);
	if (*slot != (uintptr_t)page)
		return;
	*slot = PAGE_GONE;
	h->jit_unwatched++;
	rv64_code_changed(h);
}

/*
 * Whether the dispatcher meets pc, with no block, for the first time
 * (remembering it if so): code that runs once (much of a boot, every
 * exec's start-up) is cheaper interpreted than translated, and code that
 * runs again is translated the second time. Two ways a set, so that two
 * pcs of a loop that share a set still get their blocks.
 */
static bool first_sight(struct rv64_jit *j, uint64_t pc)
{
	uint64_t *set = j->sight[(pc * 0x9e3779b97f4a7c15ull) >> 49 & (SIGHT_SETS - 1)];

	if (j->eager || set[0] == pc || set[1] == pc)
		return false;
	set[1] = set[0];
	set[0] = pc;
	return true;
}

/*
 * The block at pc: from the map into the table, else translated now; NULL
 * at pc's first sight (*ret_first true) or when nothing there can be
 * translated (the dispatcher interprets).
 */
static const uint8_t *find(struct accel_vcpu *h, uint64_t pc, const uint8_t *code, bool *ret_first)
{
	struct rv64_jit *j = h->jit;
	const struct jit_entry *me = map_slot(j, pc);
	const uint8_t *block;

	if (me->pc == pc && me->code) {
		j->table[(pc >> 1) & (TABLE_SIZE - 1)] = *me;
		return me->code;
	}
	*ret_first = first_sight(j, pc);
	if (*ret_first)
		return NULL;
	if (j->pages_used >= PAGES_FULL)
		flush_all(j);
	block = translate(j, pc, code, h);
	if (block)
		watch_page(h, (uintptr_t)code - (pc & PAGE_OFFSET_MASK));
	return block;
}

/* A new window of 2048 epochs: no stamp of the last one may match. */
static void epoch_moved(struct rv64_jit *j, uint32_t epoch)
{
	if ((epoch ^ j->last_epoch) >> 11)
		memset(j->stamps, 0, (size_t)j->n_stamps * sizeof(j->stamps[0]));
	j->last_epoch = epoch;
}

/*
 * The block at offset off (for pc) matched memory in its full check: stamp
 * it with the fetch addend and the epoch it was checked in, and watch its
 * page again.
 */
static void stamp(struct accel_vcpu *h, uint64_t pc, size_t off)
{
	struct rv64_jit *j = h->jit;
	const struct tlb_entry *fe = &h->tlb[ACC_FETCH][rv64_tlb_index(pc)];
	int64_t at;
	int32_t rel;

	/* A fetch entry gone, the next entry checks again. */
	if (retired(j, off) || fe->vpn != pc >> PAGE_SHIFT)
		return;
	memcpy(&rel, j->rw + off + ENTRY_STAMP_AT, 4);
	at = (int64_t)(off + ENTRY_STAMP_AT + 4) + rel;	/* the stamp, from the buffer's start */
	if (at < 0 || at >= STAMP_BYTES || at % (int64_t)sizeof(struct jit_stamp))
		return;
	j->stamps[at / (int64_t)sizeof(struct jit_stamp)] = (struct jit_stamp){
		.key = fe->addend | key_epoch(h->code_epoch),
		.unwatched = h->jit_unwatched,
	};
	watch_page(h, fe->addend + (uintptr_t)(pc & ~PAGE_OFFSET_MASK));
}

/*
 * Not translated, a TLB miss, no fetch mapping yet, or what translated
 * code hands over: one instruction interpreted, with the counters as of
 * before it for CSR reads.
 */
static int interpret(struct accel_vcpu *h, int64_t *left)
{
	int r = rv64_step(h);

	h->cycle++;
	h->instret += r != EXEC_TRAP;
	--*left;
	return r;
}

/*
 * Code at its first sight: instructions from h->pc on as long as each
 * falls through to the next, up to SIGHT_RUN of them, without going back
 * to the dispatcher between them. Only there: after an instruction that
 * cannot be translated (one across a page end), the blocks after it run.
 */
static int interpret_run(struct accel_vcpu *h, int64_t *left)
{
	int r = EXEC_OK;

	for (unsigned k = 0; k < SIGHT_RUN && *left > 0; k++) {
		uint64_t pc = h->pc;

		r = interpret(h, left);
		if (r != EXEC_OK || (h->pc != pc + 2 && h->pc != pc + 4))
			break;
	}
	return r;
}

int rv64_jit_run(struct accel_vcpu *h, unsigned budget)
{
	struct rv64_jit *j = h->jit;
	int64_t left = budget;
	size_t link_at = 0;	/* a jmp to point at the next block entered, or 0 */
	uint64_t link_gen = 0;
	int r;

	while (left > 0) {
		uint64_t pc = h->pc;
		const struct tlb_entry *fe = &h->tlb[ACC_FETCH][rv64_tlb_index(pc)];
		const uint8_t *code = NULL;
		bool first = false;	/* no block, and the first sight of pc */

		if (unlikely(h->code_epoch != j->last_epoch))
			epoch_moved(j, h->code_epoch);
		if (unlikely(fe->vpn != pc >> PAGE_SHIFT))
			rv64_tlb_promote(h, ACC_FETCH, pc);	/* way 1 into fe, if there */
		if (likely(fe->vpn == pc >> PAGE_SHIFT)) {
			const struct jit_entry *te = &j->table[(pc >> 1) & (TABLE_SIZE - 1)];

			code = te->pc == pc ? te->code
					    : find(h, pc, (const uint8_t *)(fe->addend + pc), &first);
		}
		if (code && link_at && link_gen == j->generation) {
			/* emit_goto() set the addend of this page before the jump. */
			int32_t rel = (int32_t)((int64_t)(code - j->rx) - (int64_t)(link_at + 5));

			memcpy(j->rw + link_at + 1, &rel, 4);
		}
		link_at = 0;
		if (code) {
			uint64_t done;

			h->jit_epoch_bits = key_epoch(h->code_epoch);
			r = j->enter(h, code, fe->addend | h->jit_epoch_bits, left);
			done = (uint64_t)(left - h->jit_left);
			h->cycle += done;
			h->instret += done;
			j->insns += done;
			left = h->jit_left;
			if (r == JIT_EXIT_NORMAL)
				continue;
			if (r == JIT_EXIT_CHAIN) {
				link_at = h->jit_site;
				link_gen = j->generation;
				continue;
			}
			if (r == JIT_EXIT_STALE) {
				retire(j, h->pc, h->jit_site);
				continue;
			}
			if (r == JIT_EXIT_VERIFIED) {
				stamp(h, h->pc, h->jit_site);
				continue;
			}
			if (r == JIT_EXIT_HELPER) {
				/* A trapped instruction took a cycle but did not retire. */
				h->instret -= h->jit_helper_r == EXEC_TRAP;
				if (h->jit_split) {
					split(j, h->jit_split - 1);
					h->jit_split = 0;
				}
				if (h->jit_helper_r == EXEC_EXIT || h->jit_helper_r == EXEC_BREAK)
					return h->jit_helper_r;
				continue;
			}
			if (left <= 0)
				break;
		}
		r = first ? interpret_run(h, &left) : interpret(h, &left);
		if (r == EXEC_EXIT || r == EXEC_BREAK)
			return r;
	}
	return EXEC_OK;
}

uint64_t rv64_jit_insns(const struct rv64_jit *j)
{
	return j->insns;
}

/* ---- lifetime ---- */

/* The buffers rv64_jit_prepare() mapped: CODE_SIZE bytes per hart. */
static struct {
	pthread_mutex_t lock;
	uint8_t *rw;
	const uint8_t *rx;
	unsigned n;
	bool prepared;		/* prepare() ran: the process may be confined now */
	uint64_t taken[(MAX_POOL + 63) / 64];
} pool = { .lock = PTHREAD_MUTEX_INITIALIZER };

/* CLOISTER_JIT is value: 0, the interpreter alone; eager, every block translated at first sight. */
static bool jit_env_is(const char *value)
{
	const char *env = getenv("CLOISTER_JIT");

	return env && strcmp(env, value) == 0;
}

static bool jit_wanted(void)
{
	return !jit_env_is("0");
}

/* A memfd of size bytes, mapped writable and, elsewhere, executable. */
static int map_code(size_t size, uint8_t **ret_rw, const uint8_t **ret_rx)
{
	void *rw = MAP_FAILED, *rx = MAP_FAILED;
	int fd, r = 0;

	fd = memfd_create("cloister-jit", MFD_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)size) < 0)
		r = -errno;
	if (r == 0) {
		rw = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd, 0);
		rx = mmap(NULL, size, PROT_READ | PROT_EXEC, MAP_SHARED | MAP_NORESERVE, fd, 0);
		if (rw == MAP_FAILED || rx == MAP_FAILED)
			r = -errno;
	}
	close(fd);
	if (r < 0) {
		if (rw != MAP_FAILED)
			munmap(rw, size);
		if (rx != MAP_FAILED)
			munmap(rx, size);
		return r;
	}
	*ret_rw = rw;
	*ret_rx = rx;
	return 0;
}

int rv64_jit_prepare(unsigned max_harts)
{
	int r;

	if (!jit_wanted() || max_harts == 0)
		return 0;
	if (max_harts > MAX_POOL)
		return -EINVAL;
	pthread_mutex_lock(&pool.lock);
	pool.prepared = true;
	r = pool.n ? -EALREADY : map_code((size_t)max_harts * CODE_SIZE, &pool.rw, &pool.rx);
	if (r == 0)
		pool.n = max_harts;
	pthread_mutex_unlock(&pool.lock);
	return r;
}

/* A free slot of the pool, or -1. */
static int pool_take(void)
{
	int slot = -1;

	pthread_mutex_lock(&pool.lock);
	for (unsigned i = 0; i < pool.n && slot < 0; i++) {
		if (!(pool.taken[i / 64] & 1ull << (i % 64))) {
			pool.taken[i / 64] |= 1ull << (i % 64);
			slot = (int)i;
		}
	}
	pthread_mutex_unlock(&pool.lock);
	return slot;
}

static void pool_give_back(int slot)
{
	pthread_mutex_lock(&pool.lock);
	pool.taken[slot / 64] &= ~(1ull << (slot % 64));
	pthread_mutex_unlock(&pool.lock);
}

int rv64_jit_create(struct rv64_jit **ret_jit)
{
	struct rv64_jit *j;
	int r;

	if (!jit_wanted())
		return -ENOTSUP;
	j = calloc(1, sizeof(*j));
	if (!j)
		return -ENOMEM;
	j->slot = pool_take();
	if (j->slot >= 0) {
		j->rw = pool.rw + (size_t)j->slot * CODE_SIZE;
		j->rx = pool.rx + (size_t)j->slot * CODE_SIZE;
	} else if (pool.prepared) {
		/*
		 * prepare() failed or every slot is taken, and the process may
		 * be confined now: an executable mapping would be fatal.
		 */
		free(j);
		return -ENOMEM;
	} else {
		/* Nothing prepared (an unconfined user such as a test): map one now. */
		r = map_code(CODE_SIZE, &j->rw, &j->rx);
		if (r < 0) {
			free(j);
			return r;
		}
	}
	emit_stubs(j);
	j->eager = jit_env_is("eager");
	j->stamps = (struct jit_stamp *)(void *)j->rw;
	j->enter = (jit_enter_fn)(uintptr_t)(j->rx + STAMP_BYTES);
	flush_all(j);
	*ret_jit = j;
	return 0;
}

void rv64_jit_destroy(struct rv64_jit *j)
{
	if (!j)
		return;
	if (j->slot >= 0) {
		/* Give the pages back; the next hart in this slot writes its own stubs. */
		madvise(j->rw, CODE_SIZE, MADV_REMOVE);
		pool_give_back(j->slot);
	} else {
		munmap(j->rw, CODE_SIZE);
		munmap((void *)(uintptr_t)j->rx, CODE_SIZE);
	}
	free(j);
}
