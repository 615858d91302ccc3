/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The machine's own components (each hart, guest time, the PLIC, the UART)
 * over the real engine: a save/restore round trip, and for each of them a
 * state it must refuse, with its name in the error and nothing running.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "machine.h"
#include "plic.h"
#include "sbi.h"
#include "uart.h"

#define RAM_BASE 0x80000000ull
#define RAM_SIZE (1ull << 20)
#define HARTS 2

static struct machine m;
static void *ram;

static void setup(void)
{
	memset(&m, 0, sizeof(m));
	ram = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	cr_assert_neq(ram, MAP_FAILED);
	m.mem.n_regions = 1;
	m.mem.ram[0] = (struct guest_ram){ .gpa = RAM_BASE, .size = RAM_SIZE, .host = ram };
	cr_assert_eq(machine_init(&m, HARTS, -1, NULL, NULL), 0);
}

static void teardown(void)
{
	machine_destroy(&m);
	munmap(ram, RAM_SIZE);
}

TestSuite(machine_state, .init = setup, .fini = teardown, .timeout = 30);

static void save(Cloister__VmState *st)
{
	char err[COMPONENT_ERR_MAX] = "";

	*st = (Cloister__VmState)CLOISTER__VM_STATE__INIT;
	cr_assert_eq(machine_save(&m, st, err, sizeof(err)), 0, "%s", err);
}

static size_t pack(const Cloister__VmState *st, uint8_t **ret)
{
	size_t len = cloister__vm_state__get_packed_size(st);

	*ret = malloc(len + 1);
	cr_assert_not_null(*ret);
	cloister__vm_state__pack(st, *ret);
	return len;
}

/* A state no fresh machine has: every component's part changed. */
static void make_interesting(Cloister__VmState *st)
{
	for (unsigned i = 0; i < HARTS; i++) {
		Cloister__VcpuState *v = st->vcpus[i];

		v->pc = RAM_BASE + 0x1000 + i * 4;
		for (unsigned r = 1; r < 32; r++)
			v->x[r] = 0x1111ull * r + i;
		v->stvec = RAM_BASE + 0x2001;		/* vectored */
		v->satp = (8ull << 60) | 0x80123;	/* Sv39 */
		v->sscratch = 0xabcdef;
		v->sepc = RAM_BASE + 0x3000;
		v->priv = PRIV_U;
		v->hsm_state = SBI_HSM_STARTED;
		v->hsm_start_addr = RAM_BASE;
		v->hsm_start_opaque = 42 + i;
		v->timer_deadline = 2000000000ull;
	}
	st->machine->guest_time = 987654321;
	st->machine->fdt_addr = RAM_BASE + 0xe0000;
	st->machine->plic->priority[3] = 5;
	st->machine->plic->threshold[1] = 2;
	st->machine->plic->enable[0] = 1u << 3;
	st->machine->uart->ier = UART_IER_MSI;	/* no interrupt due: the PLIC stays as set */
	st->machine->uart->lcr = 0x03;
	st->machine->uart->scr = 0x5a;
	st->machine->uart->rx.len = 3;
	memcpy(st->machine->uart->rx.data, "abc", 3);
}

static bool everything_paused(void)
{
	for (size_t i = 0; i < m.components.n; i++)
		if (!m.components.c[i].paused)
			return false;
	for (unsigned i = 0; i < HARTS; i++)
		if (!m.harts[i].pause_req)
			return false;
	return atomic_load(&m.time_frozen);
}

Test(machine_state, list_order)
{
	const char *want[] = { "hart 0", "hart 1", "guest time", "plic", "uart", "rtc", "vmgenid" };

	cr_assert_eq(m.components.n, 7);
	for (size_t i = 0; i < 7; i++)
		cr_assert_str_eq(m.components.c[i].id, want[i]);
}

Test(machine_state, round_trip)
{
	Cloister__VmState st, again;
	char err[COMPONENT_ERR_MAX] = "";
	uint8_t *a, *b;
	size_t la, lb;

	save(&st);
	/* rx.data holds one byte on a fresh UART: room for the three we put. */
	free(st.machine->uart->rx.data);
	st.machine->uart->rx.data = malloc(3);
	make_interesting(&st);
	cr_assert_eq(machine_restore(&m, &st, err, sizeof(err)), 0, "%s", err);
	cr_assert(everything_paused());
	save(&again);
	for (unsigned i = 0; i < HARTS; i++) {
		cr_expect_eq(again.vcpus[i]->pc, st.vcpus[i]->pc);
		cr_expect_eq(again.vcpus[i]->stvec, st.vcpus[i]->stvec);
		cr_expect_eq(again.vcpus[i]->satp, st.vcpus[i]->satp);
		cr_expect_eq(again.vcpus[i]->sip, st.vcpus[i]->sip);
		cr_expect_eq(again.vcpus[i]->sstatus, st.vcpus[i]->sstatus);
		cr_expect_eq(again.vcpus[i]->priv, st.vcpus[i]->priv);
		cr_expect_eq(again.vcpus[i]->hsm_state, st.vcpus[i]->hsm_state);
		cr_expect_eq(again.vcpus[i]->timer_deadline, st.vcpus[i]->timer_deadline);
		cr_expect_eq(again.vcpus[i]->cycle, st.vcpus[i]->cycle);
	}
	cr_expect_eq(again.machine->guest_time, st.machine->guest_time);
	cr_expect_eq(again.machine->uart->rx.len, st.machine->uart->rx.len);
	cr_expect_eq(again.machine->plic->n_pending, st.machine->plic->n_pending);
	/* The one change a restore makes: the VMGenID's edge, pending in the PLIC. */
	cr_assert(!(st.machine->plic->pending[LAYOUT_VMGENID_IRQ / 32] &
		    (1u << (LAYOUT_VMGENID_IRQ % 32))));
	cr_assert(again.machine->plic->pending[LAYOUT_VMGENID_IRQ / 32] &
		  (1u << (LAYOUT_VMGENID_IRQ % 32)), "restore raised no VMGenID edge");
	again.machine->plic->pending[LAYOUT_VMGENID_IRQ / 32] &= ~(1u << (LAYOUT_VMGENID_IRQ % 32));
	for (unsigned i = 0; i < HARTS; i++)
		cr_expect_eq(cloister__vcpu_state__get_packed_size(again.vcpus[i]),
			     cloister__vcpu_state__get_packed_size(st.vcpus[i]), "hart %u", i);
	cr_expect_eq(cloister__plic_state__get_packed_size(again.machine->plic),
		     cloister__plic_state__get_packed_size(st.machine->plic));
	cr_expect_eq(cloister__uart_state__get_packed_size(again.machine->uart),
		     cloister__uart_state__get_packed_size(st.machine->uart));
	la = pack(&st, &a);
	lb = pack(&again, &b);
	cr_assert_eq(la, lb);
	cr_assert_arr_eq(a, b, la, "every component gives back what it took");
	free(a);
	free(b);
	machine_state_free(&st);
	machine_state_free(&again);
}

/* Restores a fresh save broken by edit; checks the error names who refused and nothing runs. */
static void refused(void (*edit)(Cloister__VmState *), const char *prefix)
{
	Cloister__VmState st, after;
	char err[COMPONENT_ERR_MAX] = "";
	size_t n_vcpus;

	save(&st);
	n_vcpus = st.n_vcpus;
	edit(&st);
	cr_assert_eq(machine_restore(&m, &st, err, sizeof(err)), -EINVAL);
	st.n_vcpus = n_vcpus;	/* what the edit hid is still to be freed */
	cr_assert(strncmp(err, prefix, strlen(prefix)) == 0, "error \"%s\" names \"%s\"", err, prefix);
	cr_assert(everything_paused(), "a refused restore leaves nothing running");
	for (unsigned i = 0; i < HARTS; i++)
		cr_assert(m.harts[i].parked || m.harts[i].pause_req);
	save(&after);
	cr_assert_eq(after.vcpus[1]->pc, 0, "the refusing hart keeps its reset state");
	machine_state_free(&st);
	machine_state_free(&after);
}

static void stvec_mode_2(Cloister__VmState *st)
{
	st->vcpus[1]->stvec = RAM_BASE | 2;
	st->vcpus[1]->pc = RAM_BASE;
}

static void satp_sv57(Cloister__VmState *st)
{
	st->vcpus[1]->satp = 10ull << 60;
	st->vcpus[1]->pc = RAM_BASE;
}

static void hart_missing(Cloister__VmState *st)
{
	st->vcpus[1]->hartid = 0;
}

static void hart_short(Cloister__VmState *st)
{
	st->vcpus[1]->n_x = 31;
}

static void hart_priv_m(Cloister__VmState *st)
{
	st->vcpus[1]->priv = 3;
}

static void extra_hart(Cloister__VmState *st)
{
	st->n_vcpus = 1;
}

static void other_timebase(Cloister__VmState *st)
{
	st->machine->timebase_hz *= 2;
}

static void no_plic(Cloister__VmState *st)
{
	plic_state_free(st->machine->plic);
	st->machine->plic = NULL;
}

static void plic_priority(Cloister__VmState *st)
{
	st->machine->plic->priority[2] = 99;
}

static void no_uart(Cloister__VmState *st)
{
	uart_state_free(st->machine->uart);
	st->machine->uart = NULL;
}

static void uart_ier(Cloister__VmState *st)
{
	st->machine->uart->ier = 0xff;
}

Test(machine_state, hart_refuses_stvec_mode_2) { refused(stvec_mode_2, "hart 1: the engine"); }
Test(machine_state, hart_refuses_unsupported_satp) { refused(satp_sv57, "hart 1: the engine"); }
Test(machine_state, hart_refuses_missing_state) { refused(hart_missing, "hart 1: no state"); }
Test(machine_state, hart_refuses_short_registers) { refused(hart_short, "hart 1: "); }
Test(machine_state, hart_refuses_m_mode) { refused(hart_priv_m, "hart 1: "); }
Test(machine_state, machine_refuses_vcpu_count) { refused(extra_hart, "snapshot has 1 vCPUs"); }
Test(machine_state, time_refuses_other_timebase) { refused(other_timebase, "guest time: "); }
Test(machine_state, plic_refuses_missing_state) { refused(no_plic, "plic: no PLIC state"); }
Test(machine_state, plic_refuses_priority) { refused(plic_priority, "plic: "); }
Test(machine_state, uart_refuses_missing_state) { refused(no_uart, "uart: no UART state"); }
Test(machine_state, uart_refuses_ier) { refused(uart_ier, "uart: "); }

Test(machine_state, time_refuses_missing_machine)
{
	Cloister__VmState st;
	Cloister__MachineState *ms;
	char err[COMPONENT_ERR_MAX] = "";

	save(&st);
	ms = st.machine;
	st.machine = NULL;
	cr_assert_eq(machine_restore(&m, &st, err, sizeof(err)), -EINVAL);
	cr_assert(strncmp(err, "guest time: no machine state", 28) == 0, "%s", err);
	st.machine = ms;
	machine_state_free(&st);
}

/* ---- pause and resume over the real harts ---- */

static int failing_pause(void *obj, char *err, size_t errlen)
{
	snprintf(err, errlen, "did not answer");
	return -ETIMEDOUT;
}

static int ok_resume(void *obj, char *err, size_t errlen)
{
	return 0;
}

static const struct component_ops stuck_ops = {
	.pause = failing_pause,
	.resume = ok_resume,
	.stateless = true,
};

Test(machine_state, pause_failing_midway_leaves_the_machine_running)
{
	char err[COMPONENT_ERR_MAX] = "";

	cr_assert_eq(machine_resume(&m, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(machine_add_component(&m, "device stuck", &stuck_ops, NULL, false), 0);
	cr_assert_eq(machine_pause(&m, err, sizeof(err)), -ETIMEDOUT);
	cr_assert_str_eq(err, "device stuck: did not answer");
	for (unsigned i = 0; i < HARTS; i++)
		cr_assert_not(m.harts[i].pause_req, "hart %u runs again", i);
	cr_assert_not(atomic_load(&m.time_frozen), "guest time runs again");
	for (size_t i = 0; i < m.components.n; i++)
		cr_assert_not(m.components.c[i].paused, "%s", m.components.c[i].id);
}

Test(machine_state, resume_of_a_halted_guest_stays_paused)
{
	char err[COMPONENT_ERR_MAX] = "";

	m.halted = true;
	cr_assert_eq(machine_resume(&m, err, sizeof(err)), -ESHUTDOWN);
	cr_assert(strncmp(err, "hart ", 5) == 0, "%s", err);
	cr_assert(everything_paused());
}
