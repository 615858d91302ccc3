/* SPDX-License-Identifier: Apache-2.0 */
/*
 * One host thread per hart. A hart thread runs its vCPU until an exit, serves
 * SBI calls, sleeps in WFI until an interrupt or its timer, and parks when
 * the machine pauses or the hart is STOPPED in SBI HSM terms.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "machine.h"
#include "machine_state.h"
#include "mmio.h"
#include "plic.h"
#include "rtc.h"
#include "sbi.h"
#include "serial_output.h"
#include "uart.h"
#include "vmgenid.h"

#define NS_PER_TICK (1000000000ull / LAYOUT_TIMEBASE_HZ)

_Static_assert(LAYOUT_VIRTIO_IRQ_BASE + LAYOUT_VIRTIO_SLOTS <= LAYOUT_UART_IRQ,
	       "virtio interrupt sources run into the UART's");
_Static_assert(LAYOUT_PLIC_NDEV < PLIC_MAX_SOURCES, "the PLIC has too few sources");
_Static_assert(MACHINE_MAX_HARTS <= PLIC_MAX_CONTEXTS, "the PLIC has too few contexts");
_Static_assert(LAYOUT_PLIC_SIZE == PLIC_WINDOW_SIZE, "the PLIC window and the layout disagree");
_Static_assert(LAYOUT_RTC_SIZE == RTC_WINDOW_SIZE, "the RTC window and the layout disagree");
_Static_assert(LAYOUT_VMGENID_SIZE == VMGENID_WINDOW_SIZE,
	       "the VMGenID window and the layout disagree");
_Static_assert(LAYOUT_RTC_IRQ != LAYOUT_UART_IRQ && LAYOUT_VMGENID_IRQ != LAYOUT_UART_IRQ &&
	       LAYOUT_RTC_IRQ != LAYOUT_VMGENID_IRQ && LAYOUT_VMGENID_IRQ <= LAYOUT_PLIC_NDEV &&
	       LAYOUT_RTC_IRQ <= LAYOUT_PLIC_NDEV, "platform interrupt sources collide");

static int64_t monotonic_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

uint64_t machine_guest_time(struct machine *m)
{
	if (atomic_load(&m->time_frozen))
		return atomic_load(&m->frozen_ticks);
	return (uint64_t)(monotonic_ns() - atomic_load(&m->time_base_ns)) / NS_PER_TICK;
}

static uint64_t read_time_cb(void *opaque)
{
	return machine_guest_time(opaque);
}

static void time_freeze(struct machine *m)
{
	if (atomic_load(&m->time_frozen))
		return;
	atomic_store(&m->frozen_ticks, machine_guest_time(m));
	atomic_store(&m->time_frozen, true);
}

static void time_thaw(struct machine *m)
{
	if (!atomic_load(&m->time_frozen))
		return;
	atomic_store(&m->time_base_ns,
		     monotonic_ns() - (int64_t)(atomic_load(&m->frozen_ticks) * NS_PER_TICK));
	atomic_store(&m->time_frozen, false);
}

/* ---- the bus: everything that is not RAM ---- */

static struct virtio_mmio_dev *bus_virtio_slot(struct machine *m, uint64_t gpa, uint64_t *ret_off,
					       bool *ret_in_window)
{
	uint64_t end = LAYOUT_VIRTIO_BASE + LAYOUT_VIRTIO_SLOTS * LAYOUT_VIRTIO_SLOT_SIZE;
	size_t slot;

	*ret_in_window = gpa >= LAYOUT_VIRTIO_BASE && gpa < end;
	if (!*ret_in_window)
		return NULL;
	slot = (gpa - LAYOUT_VIRTIO_BASE) / LAYOUT_VIRTIO_SLOT_SIZE;
	*ret_off = (gpa - LAYOUT_VIRTIO_BASE) % LAYOUT_VIRTIO_SLOT_SIZE;
	return slot < m->n_virtio ? m->virtio[slot] : NULL;
}

static bool bus_in(uint64_t gpa, uint64_t base, uint64_t size)
{
	return gpa >= base && gpa - base < size;
}

static int bus_read(void *opaque, uint64_t gpa, unsigned size, uint64_t *ret_val)
{
	struct machine *m = opaque;
	uint64_t off = 0;
	bool in_window;
	struct virtio_mmio_dev *d;

	if (bus_in(gpa, LAYOUT_PLIC_BASE, LAYOUT_PLIC_SIZE))
		return plic_read(m->plic, gpa - LAYOUT_PLIC_BASE, size, ret_val);
	if (bus_in(gpa, LAYOUT_UART_BASE, LAYOUT_UART_SIZE))
		return uart_read(m->uart, gpa - LAYOUT_UART_BASE, size, ret_val);
	if (bus_in(gpa, LAYOUT_RTC_BASE, LAYOUT_RTC_SIZE))
		return rtc_read(m->rtc, gpa - LAYOUT_RTC_BASE, size, ret_val);
	if (bus_in(gpa, LAYOUT_VMGENID_BASE, LAYOUT_VMGENID_SIZE))
		return vmgenid_read(m->vmgenid, gpa - LAYOUT_VMGENID_BASE, size, ret_val);
	d = bus_virtio_slot(m, gpa, &off, &in_window);
	if (d)
		return virtio_mmio_read(d, off, size, ret_val);
	if (in_window)
		return virtio_mmio_empty_read(off, size, ret_val);
	return -EFAULT;
}

static int bus_write(void *opaque, uint64_t gpa, unsigned size, uint64_t val)
{
	struct machine *m = opaque;
	uint64_t off = 0;
	bool in_window;
	struct virtio_mmio_dev *d;

	if (bus_in(gpa, LAYOUT_PLIC_BASE, LAYOUT_PLIC_SIZE))
		return plic_write(m->plic, gpa - LAYOUT_PLIC_BASE, size, val);
	if (bus_in(gpa, LAYOUT_UART_BASE, LAYOUT_UART_SIZE))
		return uart_write(m->uart, gpa - LAYOUT_UART_BASE, size, val);
	if (bus_in(gpa, LAYOUT_RTC_BASE, LAYOUT_RTC_SIZE))
		return rtc_write(m->rtc, gpa - LAYOUT_RTC_BASE, size, val);
	if (bus_in(gpa, LAYOUT_VMGENID_BASE, LAYOUT_VMGENID_SIZE))
		return vmgenid_write(m->vmgenid, gpa - LAYOUT_VMGENID_BASE, size, val);
	d = bus_virtio_slot(m, gpa, &off, &in_window);
	if (d)
		return virtio_mmio_write(d, off, size, val);
	/* Writes to an empty slot are ignored, as on a bus with nothing behind it. */
	return in_window ? 0 : -EFAULT;
}

static const struct mmio_ops bus_ops = {
	.read = bus_read,
	.write = bus_write,
};

/* ---- SBI host callbacks ---- */

/* The UART's sink: takes what the host side has room for. */
static size_t uart_tx(void *opaque, const void *buf, size_t len, bool forced)
{
	struct machine *m = opaque;

	return m->serial_out ? serial_output_write(m->serial_out, buf, len, forced) : len;
}

/* The console has room again: the UART's FIFO moves on, harts waiting in SBI wake. */
static void console_room(void *opaque)
{
	struct machine *m = opaque;

	uart_tx_ready(m->uart);
	pthread_mutex_lock(&m->lock);
	for (unsigned i = 0; i < m->n_harts; i++)
		pthread_cond_signal(&m->harts[i].cond);
	pthread_mutex_unlock(&m->lock);
}

static bool hart_may_run(struct machine *m, struct hart *h);

/* Sleeps until the console has room or the hart must stop; true when it has room. */
static bool console_wait_room(struct machine *m, struct hart *h)
{
	struct timespec abs;
	int64_t ns;
	bool room;

	pthread_mutex_lock(&m->lock);
	for (;;) {
		room = serial_output_has_room(m->serial_out);
		if (room || !hart_may_run(m, h))
			break;
		/* The console's thread signals; the timeout only guards against a lost wake-up. */
		ns = monotonic_ns() + 100000000;
		abs.tv_sec = ns / 1000000000;
		abs.tv_nsec = ns % 1000000000;
		pthread_cond_timedwait(&h->cond, &m->lock, &abs);
	}
	pthread_mutex_unlock(&m->lock);
	return room;
}

static size_t sbi_console_write(void *opaque, unsigned self, const void *buf, size_t len,
				bool whole)
{
	struct machine *m = opaque;
	const uint8_t *p = buf;
	size_t done = 0;

	if (!m->serial_out)
		return len;
	for (;;) {
		done += serial_output_write(m->serial_out, p + done, len - done, false);
		if (done == len || (done && !whole))
			return done;
		if (!console_wait_room(m, &m->harts[self]))
			break;
	}
	/*
	 * The hart must park now: the call completes rather than be cut short
	 * (a guest may take 0 bytes written for an error), and loses nothing.
	 */
	done += serial_output_write(m->serial_out, p + done, len - done, true);
	return done;
}

static int sbi_console_read(void *opaque)
{
	return -1;
}

static int sbi_guest_read(void *opaque, uint64_t gpa, void *buf, size_t len)
{
	struct machine *m = opaque;

	return memory_read(&m->mem, gpa, buf, len);
}

static int sbi_guest_write(void *opaque, uint64_t gpa, const void *buf, size_t len)
{
	struct machine *m = opaque;

	return memory_write(&m->mem, gpa, buf, len);
}

static int sbi_hart_start(void *opaque, unsigned hartid, uint64_t addr, uint64_t arg)
{
	struct machine *m = opaque;
	struct hart *h;
	int ret = SBI_SUCCESS;

	if (hartid >= m->n_harts)
		return SBI_ERR_INVALID_PARAM;
	if (!memory_host_ptr(&m->mem, addr, 2))
		return SBI_ERR_INVALID_ADDRESS;
	h = &m->harts[hartid];
	pthread_mutex_lock(&m->lock);
	if (h->hsm != SBI_HSM_STOPPED) {
		ret = SBI_ERR_ALREADY_AVAILABLE;
	} else {
		h->hsm = SBI_HSM_START_PENDING;
		h->start_addr = addr;
		h->start_arg = arg;
		pthread_cond_signal(&h->cond);
	}
	pthread_mutex_unlock(&m->lock);
	return ret;
}

static int sbi_hart_stop(void *opaque, unsigned self)
{
	struct machine *m = opaque;

	pthread_mutex_lock(&m->lock);
	m->harts[self].hsm = SBI_HSM_STOPPED;
	pthread_mutex_unlock(&m->lock);
	return SBI_SUCCESS;
}

static int sbi_hart_status(void *opaque, unsigned hartid)
{
	struct machine *m = opaque;
	int hsm;

	if (hartid >= m->n_harts)
		return SBI_ERR_INVALID_PARAM;
	pthread_mutex_lock(&m->lock);
	hsm = m->harts[hartid].hsm;
	pthread_mutex_unlock(&m->lock);
	return hsm;
}

static void hart_wake(struct machine *m, struct hart *h)
{
	pthread_mutex_lock(&m->lock);
	h->wake = true;
	pthread_cond_signal(&h->cond);
	pthread_mutex_unlock(&m->lock);
}

static void sbi_send_ipi(void *opaque, unsigned hartid)
{
	struct machine *m = opaque;

	if (hartid >= m->n_harts)
		return;
	m->accel->vcpu_set_irq(m->harts[hartid].vcpu, IRQ_S_SOFT, true);
	hart_wake(m, &m->harts[hartid]);
}

static void sbi_remote_fence(void *opaque, unsigned hartid)
{
	struct machine *m = opaque;

	if (hartid < m->n_harts)
		m->accel->vcpu_flush_tlb(m->harts[hartid].vcpu);
}

static void sbi_set_timer(void *opaque, unsigned self, uint64_t deadline)
{
	struct machine *m = opaque;

	m->accel->vcpu_set_timer(m->harts[self].vcpu, deadline);
	pthread_mutex_lock(&m->lock);
	m->harts[self].timer_deadline = deadline;
	pthread_mutex_unlock(&m->lock);
}

static void sbi_system_reset(void *opaque, uint32_t type, uint32_t reason)
{
	struct machine *m = opaque;
	char msg[96];

	pthread_mutex_lock(&m->lock);
	m->halted = true;
	pthread_mutex_unlock(&m->lock);
	snprintf(msg, sizeof(msg), "guest requested system reset (type %u, reason %u)", type, reason);
	log_info("%s", msg);
	if (m->event)
		m->event(m->event_opaque, type == 0 ? CLOISTER__EVENT_KIND__EVENT_GUEST_SHUTDOWN :
			 CLOISTER__EVENT_KIND__EVENT_GUEST_REBOOT, msg);
}

static const struct sbi_host_ops sbi_host = {
	.console_write = sbi_console_write,
	.console_read = sbi_console_read,
	.guest_read = sbi_guest_read,
	.guest_write = sbi_guest_write,
	.hart_start = sbi_hart_start,
	.hart_stop = sbi_hart_stop,
	.hart_status = sbi_hart_status,
	.send_ipi = sbi_send_ipi,
	.remote_fence = sbi_remote_fence,
	.set_timer = sbi_set_timer,
	.system_reset = sbi_system_reset,
};

/* ---- interrupts ---- */

/* The PLIC's context N is hart N's S-mode external interrupt. */
static void plic_notify(void *opaque, unsigned ctx, bool level)
{
	struct machine *m = opaque;

	if (ctx >= m->n_harts || !m->harts[ctx].vcpu)
		return;
	m->accel->vcpu_set_irq(m->harts[ctx].vcpu, IRQ_S_EXT, level);
	if (level)
		hart_wake(m, &m->harts[ctx]);
}

void machine_set_irq(void *opaque, uint32_t irq, bool level)
{
	struct machine *m = opaque;

	plic_set_level(m->plic, irq, level);
}

static void machine_pulse_irq(void *opaque, uint32_t irq)
{
	struct machine *m = opaque;

	plic_pulse(m->plic, irq);
}

/* The RTC and the VMGenID page: passive devices on their own PLIC sources. */
static int machine_clock_devices_init(struct machine *m)
{
	struct rtc_params rp = { .set_irq = machine_set_irq, .irq = LAYOUT_RTC_IRQ, .opaque = m };
	struct vmgenid_params gp = {
		.raise = machine_pulse_irq,
		.irq = LAYOUT_VMGENID_IRQ,
		.opaque = m,
	};
	int r = rtc_create(&rp, &m->rtc);

	if (r < 0) {
		log_error("cannot create the RTC: %s", strerror(-r));
		return r;
	}
	r = vmgenid_create(&gp, &m->vmgenid);
	if (r < 0)
		log_error("cannot create the VMGenID page: %s", strerror(-r));
	return r;
}

static int machine_devices_init(struct machine *m)
{
	struct uart_params up = {
		.tx = uart_tx,
		.set_irq = machine_set_irq,
		.irq = LAYOUT_UART_IRQ,
		.opaque = m,
	};
	int r;

	r = plic_create(LAYOUT_PLIC_NDEV + 1, m->n_harts, plic_notify, m, &m->plic);
	if (r < 0) {
		log_error("cannot create the PLIC: %s", strerror(-r));
		return r;
	}
	r = uart_create(&up, &m->uart);
	if (r < 0) {
		log_error("cannot create the UART: %s", strerror(-r));
		return r;
	}
	r = machine_clock_devices_init(m);
	if (r < 0)
		return r;
	if (m->serial_fd < 0)
		return 0;
	r = serial_output_create(m->serial_fd, console_room, m, &m->serial_out);
	if (r < 0)
		log_error("cannot start the console output: %s", strerror(-r));
	return r;
}

/* ---- the hart thread ---- */

/* HSM start: a fresh S-mode hart at start_addr with a0 = hartid, a1 = opaque. */
static void hart_enter(struct hart *h)
{
	struct machine *m = h->m;
	struct vcpu_state st = {
		.pc = h->start_addr,
		.priv = PRIV_S,
		.timer_deadline = UINT64_MAX,
		/*
		 * cycle, time and instret readable below M-mode, as firmware
		 * leaves them: user programs (busybox, glibc) read time directly.
		 */
		.scounteren = 0x7,
	};

	st.x[10] = h->id;
	st.x[11] = h->start_arg;
	m->accel->vcpu_set_state(h->vcpu, &st);
	h->timer_deadline = UINT64_MAX;
	h->hsm = SBI_HSM_STARTED;
}

static bool hart_may_run(struct machine *m, struct hart *h)
{
	return !h->pause_req && !m->halted && !m->quit &&
	       (h->hsm == SBI_HSM_STARTED || h->hsm == SBI_HSM_START_PENDING);
}

/* With m->lock held: sleep until an interrupt is pending, the timer fires, or the hart must stop. */
static void hart_wfi_wait(struct machine *m, struct hart *h)
{
	while (hart_may_run(m, h) && !h->wake && !m->accel->vcpu_irq_pending(h->vcpu)) {
		uint64_t deadline = h->timer_deadline;
		uint64_t now = machine_guest_time(m);
		struct timespec abs;
		int64_t ns;

		if (deadline != UINT64_MAX && now >= deadline)
			break;
		if (deadline == UINT64_MAX || deadline - now > 1000ull * LAYOUT_TIMEBASE_HZ) {
			/* No timer, or one far off: wake at least every second to re-check. */
			ns = monotonic_ns() + 1000000000;
		} else {
			ns = monotonic_ns() + (int64_t)((deadline - now) * NS_PER_TICK);
		}
		abs.tv_sec = ns / 1000000000;
		abs.tv_nsec = ns % 1000000000;
		pthread_cond_timedwait(&h->cond, &m->lock, &abs);
	}
	h->wake = false;
}

static void hart_serve_sbi(struct machine *m, struct hart *h, const struct vcpu_exit *exit)
{
	struct sbi_result res = { 0 };
	struct sbi_host_ops ops = sbi_host;

	ops.n_harts = m->n_harts;
	sbi_dispatch(&ops, m, h->id, exit, &res);
	if (res.no_return)
		return;
	m->accel->vcpu_set_reg(h->vcpu, 10, (uint64_t)res.error);
	m->accel->vcpu_set_reg(h->vcpu, 11, (uint64_t)res.value);
}

static void hart_fail(struct machine *m, struct hart *h, const char *why)
{
	char msg[192];

	snprintf(msg, sizeof(msg), "hart %u stopped: %s", h->id, why);
	log_error("%s", msg);
	pthread_mutex_lock(&m->lock);
	m->halted = true;
	pthread_mutex_unlock(&m->lock);
	if (m->event)
		m->event(m->event_opaque, CLOISTER__EVENT_KIND__EVENT_GUEST_FAILED, msg);
}

static void *hart_thread(void *arg)
{
	struct hart *h = arg;
	struct machine *m = h->m;
	struct vcpu_exit exit;
	int r;

	pthread_mutex_lock(&m->lock);
	for (;;) {
		while (!m->quit && !hart_may_run(m, h)) {
			h->parked = true;
			pthread_cond_broadcast(&m->parked_cond);
			pthread_cond_wait(&h->cond, &m->lock);
		}
		h->parked = false;
		if (m->quit)
			break;
		if (h->hsm == SBI_HSM_START_PENDING)
			hart_enter(h);
		pthread_mutex_unlock(&m->lock);

		r = m->accel->vcpu_run(h->vcpu, &exit);
		if (r < 0) {
			hart_fail(m, h, strerror(-r));
		} else if (exit.reason == VCPU_EXIT_SBI) {
			hart_serve_sbi(m, h, &exit);
		} else if (exit.reason == VCPU_EXIT_FAULT) {
			exit.fault[sizeof(exit.fault) - 1] = '\0';
			hart_fail(m, h, exit.fault);
		}

		pthread_mutex_lock(&m->lock);
		if (r == 0 && exit.reason == VCPU_EXIT_WFI)
			hart_wfi_wait(m, h);
	}
	h->parked = true;
	pthread_cond_broadcast(&m->parked_cond);
	pthread_mutex_unlock(&m->lock);
	return NULL;
}

/* ---- components: each hart and guest time ---- */

/*
 * Asks this hart and every later one to park, so that they all stop at once
 * rather than one after the other, then waits for this one. The harts lead
 * the list and their pause cannot fail: the walk reaches every hart asked.
 */
static int hart_pause(void *obj, char *err, size_t errlen)
{
	struct hart *h = obj;
	struct machine *m = h->m;

	pthread_mutex_lock(&m->lock);
	for (unsigned i = h->id; i < m->n_harts; i++) {
		struct hart *other = &m->harts[i];

		if (other->pause_req && i != h->id)
			continue;
		other->pause_req = true;
		m->accel->vcpu_kick(other->vcpu);
		pthread_cond_signal(&other->cond);
	}
	while (!h->parked)
		pthread_cond_wait(&m->parked_cond, &m->lock);
	pthread_mutex_unlock(&m->lock);
	return 0;
}

static int hart_resume(void *obj, char *err, size_t errlen)
{
	struct hart *h = obj;
	struct machine *m = h->m;
	int r = 0;

	pthread_mutex_lock(&m->lock);
	if (m->halted) {
		snprintf(err, errlen, "the guest has stopped for good");
		r = -ESHUTDOWN;
	} else {
		h->pause_req = false;
		pthread_cond_signal(&h->cond);
	}
	pthread_mutex_unlock(&m->lock);
	return r;
}

static int hart_save(void *obj, Cloister__VmState *state, char *err, size_t errlen)
{
	struct hart *h = obj;
	struct machine *m = h->m;
	int r;

	pthread_mutex_lock(&m->lock);
	r = machine_hart_save(m, h, state, err, errlen);
	pthread_mutex_unlock(&m->lock);
	return r;
}

static int hart_restore(void *obj, const Cloister__VmState *state, char *err, size_t errlen)
{
	struct hart *h = obj;
	struct machine *m = h->m;
	int r;

	pthread_mutex_lock(&m->lock);
	r = machine_hart_restore(m, h, state, err, errlen);
	pthread_mutex_unlock(&m->lock);
	return r;
}

static const struct component_ops hart_ops = {
	.pause = hart_pause,
	.resume = hart_resume,
	.save = hart_save,
	.restore = hart_restore,
};

static int time_pause(void *obj, char *err, size_t errlen)
{
	struct machine *m = obj;

	pthread_mutex_lock(&m->lock);
	time_freeze(m);
	pthread_mutex_unlock(&m->lock);
	return 0;
}

static int time_resume(void *obj, char *err, size_t errlen)
{
	struct machine *m = obj;

	pthread_mutex_lock(&m->lock);
	time_thaw(m);
	pthread_mutex_unlock(&m->lock);
	return 0;
}

static int time_save(void *obj, Cloister__VmState *state, char *err, size_t errlen)
{
	struct machine *m = obj;
	Cloister__MachineState *ms = machine_state_get(state);

	if (!ms)
		return -ENOMEM;
	ms->timebase_hz = LAYOUT_TIMEBASE_HZ;
	ms->guest_time = machine_guest_time(m);
	ms->fdt_addr = m->fdt_addr;
	return 0;
}

static int time_restore(void *obj, const Cloister__VmState *state, char *err, size_t errlen)
{
	struct machine *m = obj;
	const Cloister__MachineState *ms = state->machine;

	if (!ms) {
		snprintf(err, errlen, "no machine state in the snapshot");
		return -EINVAL;
	}
	if (ms->timebase_hz != LAYOUT_TIMEBASE_HZ) {
		snprintf(err, errlen, "timebase %llu Hz, this machine's is %u Hz",
			 (unsigned long long)ms->timebase_hz, (unsigned)LAYOUT_TIMEBASE_HZ);
		return -EINVAL;
	}
	pthread_mutex_lock(&m->lock);
	atomic_store(&m->frozen_ticks, ms->guest_time);
	atomic_store(&m->time_frozen, true);
	m->fdt_addr = ms->fdt_addr;
	pthread_mutex_unlock(&m->lock);
	return 0;
}

static const struct component_ops time_ops = {
	.pause = time_pause,
	.resume = time_resume,
	.save = time_save,
	.restore = time_restore,
};

/* In walking order: the harts stop first (they drive everything else), then time. */
static int machine_components_init(struct machine *m)
{
	char id[COMPONENT_ID_MAX];
	int r = 0;

	for (unsigned i = 0; i < m->n_harts && r >= 0; i++) {
		snprintf(id, sizeof(id), "hart %u", i);
		r = component_add(&m->components, id, &hart_ops, &m->harts[i], true);
	}
	if (r >= 0)
		r = component_add(&m->components, "guest time", &time_ops, m, true);
	if (r >= 0)
		r = machine_platform_components_add(m);
	/* After the PLIC: a restored VMGenID raises its edge into the restored PLIC. */
	if (r >= 0)
		r = component_add(&m->components, "rtc", &rtc_component_ops, m->rtc, true);
	if (r >= 0)
		r = component_add(&m->components, "vmgenid", &vmgenid_component_ops, m->vmgenid,
				  true);
	return r;
}

/* ---- machine life ---- */

int machine_init(struct machine *m, unsigned n_harts, int serial_fd,
		 machine_event_fn event, void *event_opaque)
{
	pthread_condattr_t ca;
	int r;

	if (n_harts == 0 || n_harts > MACHINE_MAX_HARTS)
		return -EINVAL;
	m->accel = accel_rv64_ops();
	m->n_harts = n_harts;
	m->serial_fd = serial_fd;
	m->event = event;
	m->event_opaque = event_opaque;
	atomic_store(&m->time_base_ns, monotonic_ns());
	atomic_store(&m->frozen_ticks, 0);
	atomic_store(&m->time_frozen, true);
	pthread_mutex_init(&m->lock, NULL);
	pthread_cond_init(&m->parked_cond, NULL);
	m->locks_ready = true;
	r = machine_devices_init(m);
	if (r < 0)
		return r;

	m->map = (struct machine_map){
		.n_ram = m->mem.n_regions,
		.mmio = &bus_ops,
		.mmio_opaque = m,
		.read_time = read_time_cb,
		.time_opaque = m,
	};
	memcpy(m->map.ram, m->mem.ram, sizeof(m->mem.ram[0]) * m->mem.n_regions);

	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	for (unsigned i = 0; i < n_harts; i++) {
		struct hart *h = &m->harts[i];

		*h = (struct hart){ .m = m, .id = i, .hsm = SBI_HSM_STOPPED,
				    .timer_deadline = UINT64_MAX, .pause_req = true };
		pthread_cond_init(&h->cond, &ca);
		r = m->accel->vcpu_create(&m->map, i, &h->vcpu);
		if (r < 0) {
			log_error("cannot create vCPU %u: %s", i, strerror(-r));
			pthread_condattr_destroy(&ca);
			return r;
		}
	}
	pthread_condattr_destroy(&ca);

	for (unsigned i = 0; i < n_harts; i++) {
		r = -pthread_create(&m->harts[i].thread, NULL, hart_thread, &m->harts[i]);
		if (r < 0) {
			log_error("cannot start the thread of hart %u: %s", i, strerror(-r));
			return r;
		}
		m->harts[i].thread_started = true;
	}
	return machine_components_init(m);
}

void machine_stop_harts(struct machine *m)
{
	if (!m->locks_ready)
		return;
	pthread_mutex_lock(&m->lock);
	m->quit = true;
	for (unsigned i = 0; i < m->n_harts; i++) {
		pthread_cond_signal(&m->harts[i].cond);
		if (m->harts[i].vcpu)
			m->accel->vcpu_kick(m->harts[i].vcpu);
	}
	pthread_mutex_unlock(&m->lock);
	for (unsigned i = 0; i < m->n_harts; i++) {
		if (m->harts[i].thread_started)
			pthread_join(m->harts[i].thread, NULL);
		if (m->harts[i].vcpu)
			m->accel->vcpu_destroy(m->harts[i].vcpu);
		m->harts[i].thread_started = false;
		m->harts[i].vcpu = NULL;
	}
}

void machine_destroy(struct machine *m)
{
	machine_stop_harts(m);
	/*
	 * What the guest handed the UART still goes out; then the output goes,
	 * whose thread calls into the UART.
	 */
	if (m->uart && m->serial_out)
		uart_tx_drain(m->uart);
	serial_output_destroy(m->serial_out);
	m->serial_out = NULL;
	uart_destroy(m->uart);
	vmgenid_destroy(m->vmgenid);
	rtc_destroy(m->rtc);
	plic_destroy(m->plic);
	m->vmgenid = NULL;
	m->rtc = NULL;
	m->uart = NULL;
	m->plic = NULL;
	m->components.n = 0;
}

void machine_set_boot_hart(struct machine *m, uint64_t entry, uint64_t fdt)
{
	pthread_mutex_lock(&m->lock);
	m->harts[0].hsm = SBI_HSM_START_PENDING;
	m->harts[0].start_addr = entry;
	m->harts[0].start_arg = fdt;
	m->fdt_addr = fdt;
	pthread_mutex_unlock(&m->lock);
}

int machine_add_component(struct machine *m, const char *id, const struct component_ops *ops,
			  void *obj, bool paused)
{
	return component_add(&m->components, id, ops, obj, paused);
}

int machine_resume(struct machine *m, char *err, size_t errlen)
{
	return component_resume_all(&m->components, err, errlen);
}

int machine_pause(struct machine *m, char *err, size_t errlen)
{
	return component_pause_all(&m->components, err, errlen);
}

int machine_save(struct machine *m, Cloister__VmState *state, char *err, size_t errlen)
{
	return component_save_all(&m->components, state, err, errlen);
}

int machine_restore(struct machine *m, const Cloister__VmState *state, char *err, size_t errlen)
{
	int r = machine_state_claimed(m, state, err, errlen);

	return r < 0 ? r : component_restore_all(&m->components, state, err, errlen);
}
