/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The machine vmm-core runs: guest memory, one thread per hart on the
 * accelerator, the SBI firmware, guest time, the PLIC, the UART, and the
 * virtio-mmio slots.
 */
#ifndef CLOISTER_MACHINE_H
#define CLOISTER_MACHINE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "accel.h"
#include "cloister.pb-c.h"
#include "layout.h"
#include "memory.h"

#define MACHINE_MAX_HARTS 64

struct machine;
struct plic;
struct uart;
struct virtio_mmio_dev;

struct hart {
	struct machine *m;
	unsigned id;
	struct accel_vcpu *vcpu;
	pthread_t thread;
	bool thread_started;
	pthread_cond_t cond;		/* wakes the hart's thread; with m->lock */
	/* Protected by m->lock. */
	int hsm;			/* SBI_HSM_* */
	uint64_t start_addr, start_arg;
	uint64_t timer_deadline;
	bool parked;
	bool wake;
};

/* Unsolicited news for the gateway; called from any thread. */
typedef void (*machine_event_fn)(void *opaque, Cloister__EventKind kind, const char *message);

struct machine {
	const struct accel_ops *accel;
	struct guest_memory mem;
	struct machine_map map;
	unsigned n_harts;
	struct hart harts[MACHINE_MAX_HARTS];

	pthread_mutex_t lock;
	pthread_cond_t parked_cond;
	bool pause_req;			/* harts park at the next instruction boundary */
	bool quit;
	bool halted;			/* the guest shut down or failed: never resume */

	/* Guest time: ticks = (now - time_base_ns) / ns_per_tick, frozen while paused. */
	_Atomic int64_t time_base_ns;
	_Atomic uint64_t frozen_ticks;
	atomic_bool time_frozen;

	int serial_fd;
	pthread_mutex_t serial_lock;

	struct plic *plic;
	struct uart *uart;

	struct virtio_mmio_dev *virtio[LAYOUT_VIRTIO_SLOTS];
	size_t n_virtio;

	machine_event_fn event;
	void *event_opaque;
	uint64_t fdt_addr;
};

/* Sets up the harts (all STOPPED and parked) over already set-up memory. */
int machine_init(struct machine *m, unsigned n_harts, int serial_fd,
		 machine_event_fn event, void *event_opaque);
void machine_destroy(struct machine *m);

/* Hart 0 enters at entry with a0 = 0, a1 = fdt. */
void machine_set_boot_hart(struct machine *m, uint64_t entry, uint64_t fdt);
/* Lets the harts run; resumes guest time. */
int machine_run(struct machine *m);
/* Stops every hart at an instruction boundary and freezes guest time. */
int machine_pause(struct machine *m);

uint64_t machine_guest_time(struct machine *m);

/*
 * Sets PLIC source irq (opaque is the machine), for devices' set_irq
 * callbacks: takes only the PLIC's and the machine's locks.
 */
void machine_set_irq(void *opaque, uint32_t irq, bool level);

/* Only while paused. The machine state includes the PLIC and the UART. */
int machine_save_vcpus(struct machine *m, Cloister__VmState *state);
int machine_restore_vcpus(struct machine *m, const Cloister__VmState *state, char *err, size_t errlen);
void machine_free_saved_vcpus(Cloister__VmState *state);

#endif
