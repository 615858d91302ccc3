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
#include "component.h"
#include "cloister.pb-c.h"
#include "layout.h"
#include "memory.h"

#define MACHINE_MAX_HARTS 64

struct machine;
struct plic;
struct serial_output;
struct uart;
struct rtc;
struct vmgenid;
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
	bool pause_req;			/* park at the next instruction boundary */
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
	bool locks_ready;
	bool quit;
	bool halted;			/* the guest shut down or failed: harts park, never resume */

	/* Guest time: ticks = (now - time_base_ns) / ns_per_tick, frozen while paused. */
	_Atomic int64_t time_base_ns;
	_Atomic uint64_t frozen_ticks;
	atomic_bool time_frozen;

	int serial_fd;
	struct serial_output *serial_out;	/* NULL without a serial fd */

	struct plic *plic;
	struct uart *uart;
	struct rtc *rtc;
	struct vmgenid *vmgenid;

	struct virtio_mmio_dev *virtio[LAYOUT_VIRTIO_SLOTS];
	size_t n_virtio;

	/* Everything pause, resume, save and restore walk, in order. */
	struct component_list components;

	machine_event_fn event;
	void *event_opaque;
	uint64_t fdt_addr;
};

/*
 * Sets up the harts (all STOPPED and parked) over already set-up memory, and
 * the component list: each hart, guest time, the PLIC, the UART, the RTC
 * and the VMGenID page, all paused.
 * m must be zeroed first; on failure machine_destroy() takes back what was made.
 */
int machine_init(struct machine *m, unsigned n_harts, int serial_fd,
		 machine_event_fn event, void *event_opaque);
/* Stops and joins the hart threads for good (before the devices they reach go). */
void machine_stop_harts(struct machine *m);
void machine_destroy(struct machine *m);

/* Hart 0 enters at entry with a0 = 0, a1 = fdt. */
void machine_set_boot_hart(struct machine *m, uint64_t entry, uint64_t fdt);

/* Appends a component after the machine's own (serial input, virtio transports). */
int machine_add_component(struct machine *m, const char *id, const struct component_ops *ops,
			  void *obj, bool paused);

/*
 * Walk the component list (see component.h): on failure nothing is left
 * half done and err names the component.
 */
int machine_pause(struct machine *m, char *err, size_t errlen);
int machine_resume(struct machine *m, char *err, size_t errlen);
/* Only while paused. Free what save added with machine_state_free(), even on failure. */
int machine_save(struct machine *m, Cloister__VmState *state, char *err, size_t errlen);
int machine_restore(struct machine *m, const Cloister__VmState *state, char *err, size_t errlen);
void machine_state_free(Cloister__VmState *state);

uint64_t machine_guest_time(struct machine *m);

/*
 * Sets PLIC source irq (opaque is the machine), for devices' set_irq
 * callbacks: takes only the PLIC's and the machine's locks.
 */
void machine_set_irq(void *opaque, uint32_t irq, bool level);

#endif
