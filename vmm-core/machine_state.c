/* SPDX-License-Identifier: Apache-2.0 */
#include "machine_state.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mmio.h"
#include "plic.h"
#include "sbi.h"
#include "uart.h"

Cloister__MachineState *machine_state_get(Cloister__VmState *state)
{
	if (!state->machine) {
		state->machine = calloc(1, sizeof(*state->machine));
		if (state->machine)
			cloister__machine_state__init(state->machine);
	}
	return state->machine;
}

void machine_state_free(Cloister__VmState *state)
{
	for (size_t i = 0; i < state->n_vcpus; i++) {
		if (!state->vcpus[i])
			continue;
		free(state->vcpus[i]->x);
		free(state->vcpus[i]->f);
		free(state->vcpus[i]);
	}
	free(state->vcpus);
	state->vcpus = NULL;
	state->n_vcpus = 0;
	if (state->machine) {
		plic_state_free(state->machine->plic);
		uart_state_free(state->machine->uart);
	}
	free(state->machine);
	state->machine = NULL;
	for (size_t i = 0; i < state->n_devices; i++)
		virtio_mmio_state_free(state->devices[i]);
	free(state->devices);
	state->devices = NULL;
	state->n_devices = 0;
}

/* ---- harts ---- */

static int vcpu_state_to_proto(const struct vcpu_state *st, const struct hart *h,
			       Cloister__VcpuState *out)
{
	cloister__vcpu_state__init(out);
	out->x = calloc(32, sizeof(uint64_t));
	out->f = calloc(32, sizeof(uint64_t));
	if (!out->x || !out->f)
		return -ENOMEM;
	out->n_x = out->n_f = 32;
	memcpy(out->x, st->x, sizeof(st->x));
	memcpy(out->f, st->f, sizeof(st->f));
	out->hartid = h->id;
	out->hsm_state = (uint32_t)h->hsm;
	out->hsm_start_addr = h->start_addr;
	out->hsm_start_opaque = h->start_arg;
	out->priv = st->priv;
	out->pc = st->pc;
	out->fcsr = st->fcsr;
	out->sstatus = st->sstatus;
	out->sie = st->sie;
	out->sip = st->sip;
	out->stvec = st->stvec;
	out->sepc = st->sepc;
	out->scause = st->scause;
	out->stval = st->stval;
	out->sscratch = st->sscratch;
	out->satp = st->satp;
	out->scounteren = st->scounteren;
	out->senvcfg = st->senvcfg;
	out->timer_deadline = st->timer_deadline;
	out->cycle = st->cycle;
	out->instret = st->instret;
	return 0;
}

static void vcpu_state_from_proto(const Cloister__VcpuState *in, struct vcpu_state *st)
{
	*st = (struct vcpu_state){
		.pc = in->pc, .priv = in->priv, .fcsr = in->fcsr,
		.sstatus = in->sstatus, .sie = in->sie, .sip = in->sip, .stvec = in->stvec,
		.sepc = in->sepc, .scause = in->scause, .stval = in->stval,
		.sscratch = in->sscratch, .satp = in->satp, .scounteren = in->scounteren,
		.senvcfg = in->senvcfg, .cycle = in->cycle, .instret = in->instret,
		.timer_deadline = in->timer_deadline,
	};
	memcpy(st->x, in->x, sizeof(st->x));
	if (in->n_f == 32)
		memcpy(st->f, in->f, sizeof(st->f));
	st->x[0] = 0;
}

int machine_hart_save(struct machine *m, struct hart *h, Cloister__VmState *state, char *err,
		      size_t errlen)
{
	Cloister__VcpuState **grown, *v;
	struct vcpu_state st;
	int r;

	grown = realloc(state->vcpus, (state->n_vcpus + 1) * sizeof(*grown));
	if (!grown)
		return -ENOMEM;
	state->vcpus = grown;
	v = calloc(1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	state->vcpus[state->n_vcpus++] = v;
	r = m->accel->vcpu_get_state(h->vcpu, &st);
	if (r < 0) {
		snprintf(err, errlen, "the engine cannot give its state: %s", strerror(-r));
		cloister__vcpu_state__init(v);
		return r;
	}
	return vcpu_state_to_proto(&st, h, v);
}

static const Cloister__VcpuState *hart_find_state(const struct hart *h,
						   const Cloister__VmState *state)
{
	for (size_t i = 0; i < state->n_vcpus; i++)
		if (state->vcpus[i] && state->vcpus[i]->hartid == h->id)
			return state->vcpus[i];
	return NULL;
}

static int hart_state_check(const Cloister__VcpuState *v, char *err, size_t errlen)
{
	if (v->n_x != 32 || (v->n_f != 0 && v->n_f != 32)) {
		snprintf(err, errlen, "%zu integer and %zu float registers, not 32", v->n_x, v->n_f);
		return -EINVAL;
	}
	if (v->priv > PRIV_S) {
		snprintf(err, errlen, "privilege level %u is not U or S", v->priv);
		return -EINVAL;
	}
	if (v->hsm_state > SBI_HSM_STOP_PENDING) {
		snprintf(err, errlen, "HSM state %u does not exist", v->hsm_state);
		return -EINVAL;
	}
	return 0;
}

int machine_hart_restore(struct machine *m, struct hart *h, const Cloister__VmState *state,
			 char *err, size_t errlen)
{
	const Cloister__VcpuState *v = hart_find_state(h, state);
	struct vcpu_state st;
	int r;

	if (!v) {
		snprintf(err, errlen, "no state for this hart in the snapshot");
		return -EINVAL;
	}
	r = hart_state_check(v, err, errlen);
	if (r < 0)
		return r;
	vcpu_state_from_proto(v, &st);
	/* The engine checks before it takes anything: a refusal leaves the hart as it was. */
	r = m->accel->vcpu_set_state(h->vcpu, &st);
	if (r < 0) {
		snprintf(err, errlen, "the engine cannot hold this state (stvec mode %llu, satp mode "
			 "%llu, sepc %#llx): %s", (unsigned long long)(st.stvec & 3),
			 (unsigned long long)(st.satp >> 60), (unsigned long long)st.sepc,
			 strerror(-r));
		return r;
	}
	m->accel->vcpu_set_timer(h->vcpu, st.timer_deadline);
	h->timer_deadline = st.timer_deadline;
	/* A hart caught mid stop or start settles on the side it was heading to. */
	h->hsm = v->hsm_state == SBI_HSM_STOP_PENDING ? SBI_HSM_STOPPED : (int)v->hsm_state;
	h->start_addr = v->hsm_start_addr;
	h->start_arg = v->hsm_start_opaque;
	return 0;
}

int machine_state_claimed(const struct machine *m, const Cloister__VmState *state, char *err,
			  size_t errlen)
{
	if (state->n_vcpus != m->n_harts) {
		snprintf(err, errlen, "snapshot has %zu vCPUs, the VM %u", state->n_vcpus, m->n_harts);
		return -EINVAL;
	}
	if (state->n_devices != m->n_virtio) {
		snprintf(err, errlen, "snapshot has %zu devices, the VM %zu", state->n_devices,
			 m->n_virtio);
		return -EINVAL;
	}
	return 0;
}

/* ---- the PLIC and the UART: passive, only harts and devices move them ---- */

static int plic_component_save(void *obj, Cloister__VmState *state, char *err, size_t errlen)
{
	struct machine *m = obj;
	Cloister__MachineState *ms = machine_state_get(state);

	return ms ? plic_save(m->plic, &ms->plic) : -ENOMEM;
}

static int plic_component_restore(void *obj, const Cloister__VmState *state, char *err,
				  size_t errlen)
{
	struct machine *m = obj;

	if (!state->machine || !state->machine->plic) {
		snprintf(err, errlen, "no PLIC state in the snapshot");
		return -EINVAL;
	}
	/* After the harts: the PLIC re-drives every hart's external interrupt line. */
	if (plic_restore(m->plic, state->machine->plic) < 0) {
		snprintf(err, errlen, "sources, contexts, priorities or bitmaps out of range");
		return -EINVAL;
	}
	return 0;
}

static const struct component_ops plic_component_ops = {
	.save = plic_component_save,
	.restore = plic_component_restore,
};

static int uart_component_save(void *obj, Cloister__VmState *state, char *err, size_t errlen)
{
	struct machine *m = obj;
	Cloister__MachineState *ms = machine_state_get(state);

	return ms ? uart_save(m->uart, &ms->uart) : -ENOMEM;
}

static int uart_component_restore(void *obj, const Cloister__VmState *state, char *err,
				  size_t errlen)
{
	struct machine *m = obj;

	if (!state->machine || !state->machine->uart) {
		snprintf(err, errlen, "no UART state in the snapshot");
		return -EINVAL;
	}
	if (uart_restore(m->uart, state->machine->uart) < 0) {
		snprintf(err, errlen, "registers or receive queue out of range");
		return -EINVAL;
	}
	return 0;
}

/* The UART is driven by the harts, and by the console when its sink has room again. */
static int uart_component_pause(void *obj, char *err, size_t errlen)
{
	struct machine *m = obj;

	uart_pause(m->uart);
	return 0;
}

static int uart_component_resume(void *obj, char *err, size_t errlen)
{
	struct machine *m = obj;

	uart_resume(m->uart);
	return 0;
}

static const struct component_ops uart_component_ops = {
	.pause = uart_component_pause,
	.resume = uart_component_resume,
	.save = uart_component_save,
	.restore = uart_component_restore,
};

int machine_platform_components_add(struct machine *m)
{
	int r = machine_add_component(m, "plic", &plic_component_ops, m, true);

	return r < 0 ? r : machine_add_component(m, "uart", &uart_component_ops, m, true);
}
