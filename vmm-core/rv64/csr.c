/* SPDX-License-Identifier: Apache-2.0 */
/* Supervisor CSRs, trap entry and return, interrupt delivery. */
#include "hart.h"

enum {
	CSR_FFLAGS = 0x001,
	CSR_FRM = 0x002,
	CSR_FCSR = 0x003,
	CSR_SSTATUS = 0x100,
	CSR_SIE = 0x104,
	CSR_STVEC = 0x105,
	CSR_SCOUNTEREN = 0x106,
	CSR_SENVCFG = 0x10a,
	CSR_SSCRATCH = 0x140,
	CSR_SEPC = 0x141,
	CSR_SCAUSE = 0x142,
	CSR_STVAL = 0x143,
	CSR_SIP = 0x144,
	CSR_SATP = 0x180,
	CSR_CYCLE = 0xc00,
	CSR_TIME = 0xc01,
	CSR_INSTRET = 0xc02,
	CSR_HPMCOUNTER31 = 0xc1f,
};

uint64_t rv64_read_time(const struct accel_vcpu *h)
{
	return h->map->read_time ? h->map->read_time(h->map->time_opaque) : 0;
}

void rv64_update_stip(struct accel_vcpu *h)
{
	uint64_t deadline = __atomic_load_n(&h->timer_deadline, __ATOMIC_ACQUIRE);

	h->stip = deadline != UINT64_MAX && rv64_read_time(h) >= deadline;
}

uint64_t rv64_sip(const struct accel_vcpu *h)
{
	return __atomic_load_n(&h->irq_lines, __ATOMIC_ACQUIRE) | (h->stip ? SIP_STIP : 0);
}

/* The single way into the trap handler, for exceptions and interrupts alike. */
static void enter_trap(struct accel_vcpu *h, uint64_t cause, uint64_t tval)
{
	uint64_t base = h->stvec & ~3ull;
	uint64_t st = h->sstatus;

	h->scause = cause;
	h->sepc = h->pc;
	h->stval = tval;
	st = (st & ~SSTATUS_SPIE) | ((st & SSTATUS_SIE) ? SSTATUS_SPIE : 0);
	st = (st & ~SSTATUS_SPP) | (h->priv == PRIV_S ? SSTATUS_SPP : 0);
	h->sstatus = st & ~SSTATUS_SIE;
	h->priv = PRIV_S;
	h->resv_valid = false;
	rv64_tlb_select(h);
	if ((cause & CAUSE_INTERRUPT) && (h->stvec & 3) == 1)
		base += 4 * (cause & ~CAUSE_INTERRUPT);
	h->pc = base;
}

int rv64_exception(struct accel_vcpu *h, uint64_t cause, uint64_t tval)
{
	enter_trap(h, cause, tval);
	return EXEC_TRAP;
}

int rv64_illegal(struct accel_vcpu *h, uint32_t insn)
{
	return rv64_exception(h, CAUSE_ILLEGAL_INSN, insn);
}

/* Takes the highest-priority pending and enabled interrupt, if any. */
bool rv64_take_interrupt(struct accel_vcpu *h)
{
	static const unsigned priority[] = { IRQ_S_EXT, IRQ_S_SOFT, IRQ_S_TIMER };
	uint64_t pending = rv64_sip(h) & h->sie;

	if (!pending)
		return false;
	if (h->priv == PRIV_S && !(h->sstatus & SSTATUS_SIE))
		return false;
	for (unsigned i = 0; i < sizeof(priority) / sizeof(priority[0]); i++) {
		if (pending & (1ull << priority[i])) {
			enter_trap(h, CAUSE_INTERRUPT | priority[i], 0);
			return true;
		}
	}
	return false;
}

int rv64_sret(struct accel_vcpu *h)
{
	uint64_t st = h->sstatus;

	h->priv = (st & SSTATUS_SPP) ? PRIV_S : PRIV_U;
	st = (st & ~SSTATUS_SIE) | ((st & SSTATUS_SPIE) ? SSTATUS_SIE : 0);
	h->sstatus = (st | SSTATUS_SPIE) & ~SSTATUS_SPP;
	h->pc = h->sepc;
	rv64_tlb_select(h);
	return EXEC_BREAK;
}

static uint64_t sstatus_read(const struct accel_vcpu *h)
{
	uint64_t v = h->sstatus | SSTATUS_UXL_64;

	if ((v & SSTATUS_FS) == SSTATUS_FS)
		v |= SSTATUS_SD;
	return v;
}

static bool is_fp_csr(unsigned csr)
{
	return csr >= CSR_FFLAGS && csr <= CSR_FCSR;
}

/* Reads a CSR the current privilege may access; false if it may not. */
static bool csr_read(struct accel_vcpu *h, unsigned csr, uint64_t *ret_val)
{
	uint64_t v;

	if (is_fp_csr(csr)) {
		/* With FS=Off the FP CSRs do not exist for the guest. */
		if (!(h->sstatus & SSTATUS_FS))
			return false;
		v = csr == CSR_FFLAGS ? h->fcsr & 0x1f : csr == CSR_FRM ? h->fcsr >> 5 : h->fcsr;
		*ret_val = v;
		return true;
	}
	if (csr >= CSR_CYCLE && csr <= CSR_HPMCOUNTER31) {
		if (h->priv == PRIV_U && !(h->scounteren & (1u << (csr - CSR_CYCLE))))
			return false;
		v = csr == CSR_CYCLE ? h->cycle :
		    csr == CSR_TIME ? rv64_read_time(h) :
		    csr == CSR_INSTRET ? h->instret : 0;
		*ret_val = v;
		return true;
	}
	switch (csr) {
	case CSR_SSTATUS: v = sstatus_read(h); break;
	case CSR_SIE: v = h->sie; break;
	case CSR_STVEC: v = h->stvec; break;
	case CSR_SCOUNTEREN: v = h->scounteren; break;
	case CSR_SENVCFG: v = h->senvcfg; break;
	case CSR_SSCRATCH: v = h->sscratch; break;
	case CSR_SEPC: v = h->sepc; break;
	case CSR_SCAUSE: v = h->scause; break;
	case CSR_STVAL: v = h->stval; break;
	case CSR_SIP: v = rv64_sip(h); break;
	case CSR_SATP: v = h->satp; break;
	default: return false;
	}
	*ret_val = v;
	return true;
}

static int sstatus_write(struct accel_vcpu *h, uint64_t v)
{
	uint64_t old = h->sstatus;

	h->sstatus = v & SSTATUS_WRITABLE;
	if ((old ^ h->sstatus) & SSTATUS_MXR)
		rv64_tlb_flush(h);
	rv64_tlb_select(h);
	/*
	 * Only enabling interrupts can make one deliverable; Linux toggles
	 * SIE off and SUM on and off constantly, and leaving the block for
	 * those costs a timer read each.
	 */
	return (h->sstatus & ~old & SSTATUS_SIE) ? EXEC_BREAK : EXEC_OK;
}

static int sip_write(struct accel_vcpu *h, uint64_t v)
{
	/* Only SSIP is guest-writable; STIP and SEIP follow the VMM's lines. */
	if (v & SIP_SSIP) {
		__atomic_fetch_or(&h->irq_lines, SIP_SSIP, __ATOMIC_ACQ_REL);
		return EXEC_BREAK;
	}
	__atomic_fetch_and(&h->irq_lines, ~SIP_SSIP, __ATOMIC_ACQ_REL);
	return EXEC_OK;
}

static int satp_write(struct accel_vcpu *h, uint64_t v)
{
	unsigned mode = v >> SATP_MODE_SHIFT;

	/* Unsupported modes leave satp alone; ASIDs are not implemented (ASIDLEN 0). */
	if (mode != SATP_MODE_BARE && mode != SATP_MODE_SV39 && mode != SATP_MODE_SV48)
		return EXEC_OK;
	h->satp = (uint64_t)mode << SATP_MODE_SHIFT | (v & SATP_PPN_MASK);
	rv64_tlb_flush(h);
	return EXEC_OK;
}

static int fp_csr_write(struct accel_vcpu *h, unsigned csr, uint64_t v)
{
	if (csr == CSR_FFLAGS)
		h->fcsr = (h->fcsr & ~0x1full) | (v & 0x1f);
	else if (csr == CSR_FRM)
		h->fcsr = (h->fcsr & 0x1f) | (v & 7) << 5;
	else
		h->fcsr = v & 0xff;
	h->sstatus |= SSTATUS_FS;	/* Dirty */
	return EXEC_OK;
}

static int csr_write(struct accel_vcpu *h, unsigned csr, uint64_t v)
{
	if (is_fp_csr(csr))
		return fp_csr_write(h, csr, v);
	switch (csr) {
	case CSR_SSTATUS:
		return sstatus_write(h, v);
	case CSR_SIE: {
		uint64_t old = __atomic_exchange_n(&h->sie, v & SIE_WRITABLE, __ATOMIC_ACQ_REL);

		/* As for sstatus: only newly enabled sources can be deliverable now. */
		return (v & SIE_WRITABLE & ~old) ? EXEC_BREAK : EXEC_OK;
	}
	case CSR_STVEC:
		/* Modes 2 and 3 are reserved: keep the base, use direct mode. */
		h->stvec = (v & 3) >= 2 ? v & ~3ull : v;
		return EXEC_OK;
	case CSR_SCOUNTEREN:
		h->scounteren = v & 0xffffffff;
		return EXEC_OK;
	case CSR_SENVCFG:
		h->senvcfg = v & SENVCFG_FIOM;
		return EXEC_OK;
	case CSR_SSCRATCH:
		h->sscratch = v;
		return EXEC_OK;
	case CSR_SEPC:
		h->sepc = v & ~1ull;
		return EXEC_OK;
	case CSR_SCAUSE:
		h->scause = v;
		return EXEC_OK;
	case CSR_STVAL:
		h->stval = v;
		return EXEC_OK;
	case CSR_SIP:
		return sip_write(h, v);
	case CSR_SATP:
		return satp_write(h, v);
	default:
		return EXEC_OK;
	}
}

/* CSRRW, CSRRS, CSRRC and their immediate forms. */
int rv64_csr_insn(struct accel_vcpu *h, uint32_t insn, unsigned len)
{
	unsigned csr = insn >> 20, rd = (insn >> 7) & 31, rs1 = (insn >> 15) & 31;
	unsigned funct3 = (insn >> 12) & 7;
	uint64_t src = (funct3 & 4) ? rs1 : h->x[rs1];
	bool writes = (funct3 & 3) == 1 || rs1 != 0;
	uint64_t old, val;
	int r;

	if (((csr >> 8) & 3) > h->priv || !csr_read(h, csr, &old))
		return rv64_illegal(h, insn);
	if (writes && (csr >> 10) == 3)
		return rv64_illegal(h, insn);
	switch (funct3 & 3) {
	case 1: val = src; break;
	case 2: val = old | src; break;
	default: val = old & ~src; break;
	}
	r = writes ? csr_write(h, csr, val) : EXEC_OK;
	h->x[rd] = old;
	h->pc += len;
	return r;
}
