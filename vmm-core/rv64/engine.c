/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The RV64 software engine behind struct accel_ops: hart lifetime, the run
 * loop, state transfer, and the entry points other threads call (kick,
 * interrupt lines, timer, remote TLB flush), which only touch atomics.
 */
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <time.h>

#include "hart.h"

/*
 * Instructions between polls of the attention word and the timer. Small
 * enough that a kick or the timer lands within tens of microseconds (at 1
 * to 2 billion instructions a second), large enough that leaving
 * translated code for the polls stays off the profile: 1024 cost 6 to 8%
 * of user-space workloads' time against 4096, and 4096 cost 4 to 6%
 * against 16384 (docs/performance.md, item 41).
 */
#define BLOCK_BUDGET 32768

/*
 * How long vcpu_flush_tlb() waits for a running hart's acknowledgement. A
 * hart acks within BLOCK_BUDGET instructions, unless it is stuck in a slow
 * MMIO callback or descheduled; past this the flush still happens before the
 * hart's next instruction, only the caller no longer waits for it.
 */
#define FLUSH_WAIT_NS 1000000000ll

static void hart_reset(struct accel_vcpu *h)
{
	memset(h->x, 0, sizeof(h->x));
	h->pc = 0;
	h->priv = PRIV_S;
	h->timer_deadline = UINT64_MAX;
	rv64_tlb_flush(h);
	rv64_tlb_select(h);
}

static int rv64_vcpu_create(const struct machine_map *map, unsigned hartid,
			    struct accel_vcpu **ret_vcpu)
{
	struct accel_vcpu *h;

	if (!map || map->n_ram > ACCEL_MAX_RAM)
		return -EINVAL;
	rv64_rvc_init();
	h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->map = map;
	h->hartid = hartid;
	/* Without a translator (another host, or CLOISTER_JIT=0) the interpreter runs everything. */
	if (rv64_jit_create(&h->jit) < 0)
		h->jit = NULL;
	hart_reset(h);
	*ret_vcpu = h;
	return 0;
}

static void rv64_vcpu_destroy(struct accel_vcpu *h)
{
	if (h)
		rv64_jit_destroy(h->jit);
	free(h);
}

/* Serves what other threads asked for; true when the run must stop for a kick. */
static bool handle_attention(struct accel_vcpu *h)
{
	uint32_t attn;

	if (likely(!__atomic_load_n(&h->attention, __ATOMIC_RELAXED)))
		return false;
	attn = __atomic_exchange_n(&h->attention, 0, __ATOMIC_SEQ_CST);
	if (attn & ATTN_FLUSH_TLB) {
		/*
		 * Read after taking the flag: every request whose flag this
		 * exchange saw has already counted itself in flush_req.
		 */
		uint64_t req = __atomic_load_n(&h->flush_req, __ATOMIC_ACQUIRE);

		rv64_tlb_flush(h);
		/* Also what a remote FENCE.I asks for. */
		rv64_code_changed(h);
		__atomic_store_n(&h->flush_done, req, __ATOMIC_RELEASE);
	}
	return attn & ATTN_KICK;
}

/*
 * Each round reads the clock for the timer (rounds of 4096 once read it
 * every second round only, as every round cost 4 to 6% of user-space
 * workloads then; rounds of BLOCK_BUDGET are long enough to read it in
 * each). WFI reads the clock itself.
 */
static int run_loop(struct accel_vcpu *h, struct vcpu_exit *ret_exit)
{
	for (;;) {
		if (handle_attention(h)) {
			ret_exit->reason = VCPU_EXIT_KICK;
			return 0;
		}
		rv64_update_stip(h);
		rv64_take_interrupt(h);
		if ((h->jit ? rv64_jit_run(h, BLOCK_BUDGET) : rv64_run_block(h, BLOCK_BUDGET)) ==
		    EXEC_EXIT)
			return 0;
	}
}

static int rv64_vcpu_run(struct accel_vcpu *h, struct vcpu_exit *ret_exit)
{
	int r;

	h->exit = ret_exit;
	/*
	 * Memory may have been written while the hart was out (a device
	 * while it slept, a restore or a debugger while paused). Not after an
	 * SBI call, the common exit (the timer, every tick): serving one
	 * writes no code.
	 */
	if (!h->sbi_exit)
		rv64_code_changed(h);
	/* Pairs with the requester's flag-then-in_run order in rv64_vcpu_flush_tlb(). */
	__atomic_store_n(&h->in_run, 1, __ATOMIC_SEQ_CST);
	r = run_loop(h, ret_exit);
	h->sbi_exit = r == 0 && ret_exit->reason == VCPU_EXIT_SBI;
	__atomic_store_n(&h->in_run, 0, __ATOMIC_RELEASE);
	return r;
}

static void rv64_vcpu_kick(struct accel_vcpu *h)
{
	__atomic_fetch_or(&h->attention, ATTN_KICK, __ATOMIC_RELEASE);
}

static int rv64_vcpu_get_state(struct accel_vcpu *h, struct vcpu_state *ret_state)
{
	struct vcpu_state s = {
		.pc = h->pc,
		.fcsr = h->fcsr,
		.priv = h->priv,
		.sstatus = h->sstatus | SSTATUS_UXL_64 |
			   ((h->sstatus & SSTATUS_FS) == SSTATUS_FS ? SSTATUS_SD : 0),
		.sie = __atomic_load_n(&h->sie, __ATOMIC_RELAXED),
		.sip = __atomic_load_n(&h->irq_lines, __ATOMIC_ACQUIRE),
		.stvec = h->stvec,
		.sepc = h->sepc,
		.scause = h->scause,
		.stval = h->stval,
		.sscratch = h->sscratch,
		.satp = h->satp,
		.scounteren = h->scounteren,
		.senvcfg = h->senvcfg,
		.cycle = h->cycle,
		.instret = h->instret,
		.timer_deadline = __atomic_load_n(&h->timer_deadline, __ATOMIC_ACQUIRE),
	};

	/* STIP is not state of its own: it follows the deadline on restore. */
	memcpy(s.x, h->x, sizeof(s.x));
	memcpy(s.f, h->f, sizeof(s.f));
	*ret_state = s;
	return 0;
}

static bool satp_mode_supported(uint64_t satp)
{
	unsigned mode = satp >> SATP_MODE_SHIFT;

	return mode == SATP_MODE_BARE || mode == SATP_MODE_SV39 || mode == SATP_MODE_SV48;
}

/* A snapshot is input from outside: refuse what the hart could never hold. */
static int rv64_vcpu_set_state(struct accel_vcpu *h, const struct vcpu_state *s)
{
	if (s->priv != PRIV_U && s->priv != PRIV_S)
		return -EINVAL;
	if (!satp_mode_supported(s->satp) || (s->satp & ~(SATP_PPN_MASK | 0xfull << SATP_MODE_SHIFT)))
		return -EINVAL;
	if ((s->stvec & 3) >= 2 || (s->sepc & 1))
		return -EINVAL;

	memcpy(h->x, s->x, sizeof(h->x));
	h->x[0] = 0;
	memcpy(h->f, s->f, sizeof(h->f));
	h->pc = s->pc & ~1ull;
	h->fcsr = s->fcsr & 0xff;
	h->priv = s->priv;
	h->sstatus = s->sstatus & SSTATUS_WRITABLE;
	__atomic_store_n(&h->sie, s->sie & SIE_WRITABLE, __ATOMIC_RELAXED);
	__atomic_store_n(&h->irq_lines, s->sip & (SIP_SSIP | SIP_SEIP), __ATOMIC_RELEASE);
	h->stvec = s->stvec;
	h->sepc = s->sepc;
	h->scause = s->scause;
	h->stval = s->stval;
	h->sscratch = s->sscratch;
	h->satp = s->satp;
	h->scounteren = s->scounteren & 0xffffffff;
	h->senvcfg = s->senvcfg & SENVCFG_FIOM;
	h->cycle = s->cycle;
	h->instret = s->instret;
	__atomic_store_n(&h->timer_deadline, s->timer_deadline, __ATOMIC_RELEASE);
	h->resv_valid = false;
	h->sbi_exit = false;	/* a restore may have brought other memory */
	rv64_tlb_flush(h);
	rv64_tlb_select(h);
	return 0;
}

static uint64_t rv64_vcpu_get_reg(struct accel_vcpu *h, unsigned reg)
{
	return reg < 32 ? h->x[reg] : 0;
}

static void rv64_vcpu_set_reg(struct accel_vcpu *h, unsigned reg, uint64_t val)
{
	if (reg > 0 && reg < 32)
		h->x[reg] = val;
}

static void rv64_vcpu_set_irq(struct accel_vcpu *h, unsigned irq, bool level)
{
	uint64_t bit;

	if (irq != IRQ_S_SOFT && irq != IRQ_S_EXT)
		return;
	bit = 1ull << irq;
	if (level)
		__atomic_fetch_or(&h->irq_lines, bit, __ATOMIC_ACQ_REL);
	else
		__atomic_fetch_and(&h->irq_lines, ~bit, __ATOMIC_ACQ_REL);
	__atomic_fetch_or(&h->attention, ATTN_IRQ, __ATOMIC_RELEASE);
}

static void rv64_vcpu_set_timer(struct accel_vcpu *h, uint64_t deadline)
{
	__atomic_store_n(&h->timer_deadline, deadline, __ATOMIC_RELEASE);
	__atomic_fetch_or(&h->attention, ATTN_IRQ, __ATOMIC_RELEASE);
}

static bool rv64_vcpu_irq_pending(struct accel_vcpu *h)
{
	uint64_t pending = __atomic_load_n(&h->irq_lines, __ATOMIC_ACQUIRE);
	uint64_t deadline = __atomic_load_n(&h->timer_deadline, __ATOMIC_ACQUIRE);

	if (deadline != UINT64_MAX && rv64_read_time(h) >= deadline)
		pending |= SIP_STIP;
	return pending & __atomic_load_n(&h->sie, __ATOMIC_ACQUIRE);
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
}

static int64_t monotonic_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

/*
 * Returns once h no longer uses translations cached before the call. A hart
 * outside vcpu_run() translates nothing and flushes first thing on entry; a
 * running one acks at its next poll. The caller is outside vcpu_run() itself
 * (serving an SBI call), so two harts fencing each other cannot deadlock.
 */
static void rv64_vcpu_flush_tlb(struct accel_vcpu *h)
{
	uint64_t seq = __atomic_add_fetch(&h->flush_req, 1, __ATOMIC_SEQ_CST);
	int64_t deadline = 0;

	__atomic_fetch_or(&h->attention, ATTN_FLUSH_TLB, __ATOMIC_SEQ_CST);
	for (unsigned spins = 0;; spins++) {
		if (__atomic_load_n(&h->flush_done, __ATOMIC_ACQUIRE) >= seq ||
		    !__atomic_load_n(&h->in_run, __ATOMIC_SEQ_CST))
			return;
		if (spins < 64) {
			cpu_relax();
			continue;
		}
		if (!deadline)
			deadline = monotonic_ns() + FLUSH_WAIT_NS;
		else if (monotonic_ns() > deadline)
			return;
		sched_yield();
	}
}

static const struct accel_ops rv64_ops = {
	.name = "rv64",
	.prepare = rv64_jit_prepare,
	.vcpu_create = rv64_vcpu_create,
	.vcpu_destroy = rv64_vcpu_destroy,
	.vcpu_run = rv64_vcpu_run,
	.vcpu_kick = rv64_vcpu_kick,
	.vcpu_get_state = rv64_vcpu_get_state,
	.vcpu_set_state = rv64_vcpu_set_state,
	.vcpu_get_reg = rv64_vcpu_get_reg,
	.vcpu_set_reg = rv64_vcpu_set_reg,
	.vcpu_set_irq = rv64_vcpu_set_irq,
	.vcpu_set_timer = rv64_vcpu_set_timer,
	.vcpu_irq_pending = rv64_vcpu_irq_pending,
	.vcpu_flush_tlb = rv64_vcpu_flush_tlb,
};

const struct accel_ops *accel_rv64_ops(void)
{
	return &rv64_ops;
}
