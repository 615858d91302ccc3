/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The accelerator interface: what vmm-core asks of whatever runs guest
 * instructions. Today that is the RV64 software engine (rv64/); a KVM backend
 * would implement the same table, turning its exits into struct vcpu_exit.
 *
 * The VMM plays the SBI firmware, as with KVM on RISC-V: the guest starts in
 * S-mode, there is no M-mode, and an ECALL from S-mode leaves vcpu_run() as a
 * VCPU_EXIT_SBI exit for the VMM to serve.
 */
#ifndef CLOISTER_ACCEL_H
#define CLOISTER_ACCEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ACCEL_MAX_RAM 4

/* One guest RAM range and where it is mapped in this process. */
struct guest_ram {
	uint64_t gpa;
	uint64_t size;
	uint8_t *host;
};

/*
 * Everything that is not RAM. Called from vCPU threads, possibly several at
 * once. Return 0, or -EFAULT to make the access fault in the guest
 * (load/store access fault). size is 1, 2, 4 or 8; gpa is naturally aligned.
 */
struct mmio_ops {
	int (*read)(void *opaque, uint64_t gpa, unsigned size, uint64_t *ret_val);
	int (*write)(void *opaque, uint64_t gpa, unsigned size, uint64_t val);
};

struct machine_map {
	struct guest_ram ram[ACCEL_MAX_RAM];
	size_t n_ram;
	const struct mmio_ops *mmio;
	void *mmio_opaque;
	/* The value of the time CSR now (timebase ticks); thread-safe. */
	uint64_t (*read_time)(void *opaque);
	void *time_opaque;
};

enum vcpu_priv { PRIV_U = 0, PRIV_S = 1 };

/* Interrupt numbers as in sip/sie. */
enum { IRQ_S_SOFT = 1, IRQ_S_TIMER = 5, IRQ_S_EXT = 9 };

/* The architectural state of one hart, as saved in a snapshot. */
struct vcpu_state {
	uint64_t pc;
	uint64_t x[32];
	uint64_t f[32];
	uint64_t fcsr;
	uint32_t priv;
	uint64_t sstatus, sie, sip, stvec, sepc, scause, stval, sscratch;
	uint64_t satp, scounteren, senvcfg;
	uint64_t cycle, instret;
	/* SBI set_timer deadline in timebase ticks; UINT64_MAX when none. */
	uint64_t timer_deadline;
};

enum vcpu_exit_reason {
	VCPU_EXIT_SBI = 1,	/* ECALL from S-mode; pc already points past it */
	VCPU_EXIT_WFI,		/* WFI with nothing pending; pc past it */
	VCPU_EXIT_KICK,		/* vcpu_kick() was called */
	VCPU_EXIT_FAULT,	/* the engine cannot go on (bug or unsupported state) */
};

struct vcpu_exit {
	enum vcpu_exit_reason reason;
	union {
		struct {
			uint64_t ext;		/* a7 */
			uint64_t fid;		/* a6 */
			uint64_t args[6];	/* a0..a5 */
		} sbi;
		char fault[128];
	};
};

struct accel_vcpu;

struct accel_ops {
	const char *name;
	/*
	 * Optional, once per process before it confines itself: sets aside what
	 * up to max_vcpus vCPUs will need and the sandbox would refuse later
	 * (the RV64 engine: executable mappings for its translated code). 0 or
	 * -errno; a backend that cannot prepare still works, maybe slower.
	 */
	int (*prepare)(unsigned max_vcpus);
	/* map must stay valid for the vCPU's life. The hart starts with pc 0 in S-mode. */
	int (*vcpu_create)(const struct machine_map *map, unsigned hartid,
			   struct accel_vcpu **ret_vcpu);
	void (*vcpu_destroy)(struct accel_vcpu *vcpu);
	/* Runs guest code on the calling thread until an exit. Returns 0 or -errno. */
	int (*vcpu_run)(struct accel_vcpu *vcpu, struct vcpu_exit *ret_exit);
	/* Thread-safe: makes a vcpu_run() in progress (or the next one) return VCPU_EXIT_KICK promptly. */
	void (*vcpu_kick)(struct accel_vcpu *vcpu);
	/* Only while the vCPU is not running. */
	int (*vcpu_get_state)(struct accel_vcpu *vcpu, struct vcpu_state *ret_state);
	int (*vcpu_set_state)(struct accel_vcpu *vcpu, const struct vcpu_state *state);
	/* Only while not running, e.g. to return SBI results in a0/a1. */
	uint64_t (*vcpu_get_reg)(struct accel_vcpu *vcpu, unsigned reg);
	void (*vcpu_set_reg)(struct accel_vcpu *vcpu, unsigned reg, uint64_t val);
	/* Thread-safe: raise or clear an interrupt line (IRQ_S_*) in sip. */
	void (*vcpu_set_irq)(struct accel_vcpu *vcpu, unsigned irq, bool level);
	/* Thread-safe: STIP is pending while time >= deadline (UINT64_MAX: never). */
	void (*vcpu_set_timer)(struct accel_vcpu *vcpu, uint64_t deadline);
	/* Thread-safe: true when an interrupt is pending and enabled in sie (WFI wakes). */
	bool (*vcpu_irq_pending)(struct accel_vcpu *vcpu);
	/*
	 * Thread-safe (remote sfence.vma / fence.i): returns once the vCPU no
	 * longer uses translations cached before the call; a vCPU inside
	 * vcpu_run() acknowledges within a few hundred instructions and the
	 * caller waits for that (bounded), one outside flushes on its next
	 * vcpu_run(). Call it from outside vcpu_run(), never from MMIO callbacks.
	 */
	void (*vcpu_flush_tlb)(struct accel_vcpu *vcpu);
};

/* The RV64 software engine. */
const struct accel_ops *accel_rv64_ops(void);

#endif
