/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Address translation (Bare, Sv39, Sv48) and the slow paths of guest memory
 * access: TLB refill, MMIO, accesses that cross a page.
 */
#include <errno.h>
#include <stddef.h>

#include "hart.h"

#define PTE_V (1ull << 0)
#define PTE_R (1ull << 1)
#define PTE_W (1ull << 2)
#define PTE_X (1ull << 3)
#define PTE_U (1ull << 4)
#define PTE_A (1ull << 6)
#define PTE_D (1ull << 7)
#define PTE_PPN_SHIFT 10
#define PTE_PPN_MASK ((1ull << 44) - 1)
/* N (Svnapot), PBMT (Svpbmt) and the reserved bits: none implemented. */
#define PTE_RESERVED (~0ull << 54)

static const uint8_t page_fault_cause[ACC__MAX] = {
	[ACC_READ] = CAUSE_LOAD_PAGE_FAULT,
	[ACC_WRITE] = CAUSE_STORE_PAGE_FAULT,
	[ACC_FETCH] = CAUSE_FETCH_PAGE_FAULT,
};

static const uint8_t access_fault_cause[ACC__MAX] = {
	[ACC_READ] = CAUSE_LOAD_ACCESS,
	[ACC_WRITE] = CAUSE_STORE_ACCESS,
	[ACC_FETCH] = CAUSE_FETCH_ACCESS,
};

_Static_assert(offsetof(struct accel_vcpu, tlb_way1) ==
	       offsetof(struct accel_vcpu, tlb_all) + sizeof(((struct accel_vcpu *)0)->tlb_all),
	       "way 1 of a table sits one tlb_all further on");
_Static_assert(TLB_SLOTS <= UINT16_MAX, "a TLB slot's number fits the log");

/* Slot i of the log's numbering: tlb_all's entries, then tlb_way1's. */
static struct tlb_entry *tlb_slot(struct accel_vcpu *h, unsigned i)
{
	if (i < TLB_SLOTS / 2)
		return &(&h->tlb_all[0][0][0])[i];
	return &(&h->tlb_way1[0][0][0])[i - TLB_SLOTS / 2];
}

/* e (of either way) is about to become valid: remember it for the next flush. */
static void tlb_log(struct accel_vcpu *h, const struct tlb_entry *e)
{
	const struct tlb_entry *way0 = &h->tlb_all[0][0][0], *way1 = &h->tlb_way1[0][0][0];
	size_t i = e >= way1 ? (size_t)(e - way1) + TLB_SLOTS / 2 : (size_t)(e - way0);

	if (e->vpn != TLB_INVALID)
		return;
	/*
	 * A slot dropped between flushes (a one-page flush, a swap of the
	 * ways, a page the translator watches) is logged again when filled
	 * again: with the log full, the next flush clears everything.
	 */
	if (h->tlb_n_log < TLB_SLOTS)
		h->tlb_log[h->tlb_n_log++] = (uint16_t)i;
	else
		h->tlb_logged = false;
}

void rv64_tlb_flush(struct accel_vcpu *h)
{
	if (!h->tlb_logged) {
		memset(h->tlb_all, 0xff, sizeof(h->tlb_all));
		memset(h->tlb_way1, 0xff, sizeof(h->tlb_way1));
		h->tlb_logged = true;
	} else {
		for (unsigned i = 0; i < h->tlb_n_log; i++)
			tlb_slot(h, h->tlb_log[i])->vpn = TLB_INVALID;
	}
	h->tlb_n_log = 0;
	h->tlb_n_super = 0;
	h->tlb_super_over = false;
}

/* The superpage entries were filled from that holds va, or NULL. */
static const struct tlb_super *super_of(const struct accel_vcpu *h, uint64_t va)
{
	for (unsigned i = 0; i < h->tlb_n_super; i++) {
		if (va >> h->tlb_super[i].shift == h->tlb_super[i].number)
			return &h->tlb_super[i];
	}
	return NULL;
}

/* A fill from the superpage of va, of page shift shift: remember it for one-page flushes. */
static void note_super(struct accel_vcpu *h, uint64_t va, unsigned shift)
{
	const struct tlb_super *s = super_of(h, va);

	if (s && s->shift == shift)
		return;
	if (h->tlb_n_super == sizeof(h->tlb_super) / sizeof(h->tlb_super[0])) {
		h->tlb_super_over = true;
		return;
	}
	h->tlb_super[h->tlb_n_super++] = (struct tlb_super){ .number = va >> shift, .shift = shift };
}

/* Drops every entry (either way, any mode) for a 4 KiB page of superpage s. */
static void drop_super(struct accel_vcpu *h, const struct tlb_super *s)
{
	unsigned bits = s->shift - PAGE_SHIFT;

	for (unsigned i = 0; i < h->tlb_n_log; i++) {
		struct tlb_entry *e = tlb_slot(h, h->tlb_log[i]);

		if (e->vpn != TLB_INVALID && e->vpn >> bits == s->number)
			e->vpn = TLB_INVALID;
	}
}

void rv64_tlb_flush_page(struct accel_vcpu *h, uint64_t va)
{
	unsigned idx = rv64_tlb_index(va);
	const struct tlb_super *s = super_of(h, va);

	/*
	 * A superpage is one translation cached per 4 KiB page: flushing va
	 * drops every page of the superpage holding it, found through the
	 * log of filled slots.
	 */
	if (h->tlb_super_over || (s && !h->tlb_logged)) {
		rv64_tlb_flush(h);
		return;
	}
	if (s)
		drop_super(h, s);
	for (unsigned m = 0; m < TLBM__MAX; m++) {
		for (unsigned a = 0; a < ACC__MAX; a++) {
			if (h->tlb_all[m][a][idx].vpn == va >> PAGE_SHIFT)
				h->tlb_all[m][a][idx].vpn = TLB_INVALID;
			if (h->tlb_way1[m][a][idx].vpn == va >> PAGE_SHIFT)
				h->tlb_way1[m][a][idx].vpn = TLB_INVALID;
		}
	}
}

void rv64_tlb_select(struct accel_vcpu *h)
{
	enum tlb_mode mode = TLBM_U;

	if (h->priv == PRIV_S)
		mode = (h->sstatus & SSTATUS_SUM) ? TLBM_S_SUM : TLBM_S;
	h->tlb = h->tlb_all[mode];
	h->tlb1 = h->tlb_way1[mode];
}

uint8_t *rv64_tlb_promote(struct accel_vcpu *h, enum access_type acc, uint64_t va)
{
	unsigned i = rv64_tlb_index(va);
	struct tlb_entry *e0 = &h->tlb[acc][i], *e1 = &h->tlb1[acc][i], t;

	if (e1->vpn != va >> PAGE_SHIFT)
		return NULL;
	tlb_log(h, e0);
	t = *e0;
	*e0 = *e1;
	*e1 = t;
	return (uint8_t *)(e0->addend + (uintptr_t)va);
}

/* Host address of guest-physical [gpa, gpa + len) if it lies in one RAM range. */
uint8_t *rv64_ram_ptr(const struct machine_map *map, uint64_t gpa, uint64_t len)
{
	for (size_t i = 0; i < map->n_ram; i++) {
		const struct guest_ram *r = &map->ram[i];
		uint64_t off = gpa - r->gpa;

		if (gpa >= r->gpa && off < r->size && len <= r->size - off)
			return r->host + off;
	}
	return NULL;
}

static bool pte_permits(const struct accel_vcpu *h, uint64_t pte, enum access_type acc)
{
	if (pte & PTE_U) {
		if (h->priv == PRIV_S && (acc == ACC_FETCH || !(h->sstatus & SSTATUS_SUM)))
			return false;
	} else if (h->priv == PRIV_U) {
		return false;
	}
	switch (acc) {
	case ACC_READ:
		return (pte & PTE_R) || ((pte & PTE_X) && (h->sstatus & SSTATUS_MXR));
	case ACC_WRITE:
		return pte & PTE_W;
	case ACC_FETCH:
		return pte & PTE_X;
	default:
		return false;
	}
}

/*
 * Sets A (and D for a write) in a leaf PTE, as Svadu allows. Returns 0,
 * -EAGAIN when another hart changed the PTE first (walk again).
 */
static int pte_update_ad(uint64_t *host_pte, uint64_t pte, enum access_type acc)
{
	uint64_t want = PTE_A | (acc == ACC_WRITE ? PTE_D : 0);

	if ((pte & want) == want)
		return 0;
	if (!__atomic_compare_exchange_n(host_pte, &pte, pte | want, false,
					 __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
		return -EAGAIN;
	return 0;
}

/* One walk attempt: 0 with *ret_pa, a cause, or -EAGAIN. */
static int page_walk(struct accel_vcpu *h, uint64_t va, enum access_type acc, unsigned levels,
		     uint64_t *ret_pa)
{
	unsigned va_bits = PAGE_SHIFT + 9 * levels;
	uint64_t table = (h->satp & SATP_PPN_MASK) << PAGE_SHIFT;

	if ((uint64_t)((int64_t)(va << (64 - va_bits)) >> (64 - va_bits)) != va)
		return page_fault_cause[acc];

	for (int level = levels - 1; level >= 0; level--) {
		unsigned shift = PAGE_SHIFT + 9 * level;
		uint64_t pte_gpa = table + ((va >> shift) & 0x1ff) * 8;
		uint64_t *host_pte = (uint64_t *)rv64_ram_ptr(h->map, pte_gpa, 8);
		uint64_t pte, ppn;
		int r;

		if (!host_pte)
			return access_fault_cause[acc];
		pte = __atomic_load_n(host_pte, __ATOMIC_ACQUIRE);
		if (!(pte & PTE_V) || (!(pte & PTE_R) && (pte & PTE_W)) || (pte & PTE_RESERVED))
			return page_fault_cause[acc];
		ppn = (pte >> PTE_PPN_SHIFT) & PTE_PPN_MASK;
		if (!(pte & (PTE_R | PTE_X))) {
			table = ppn << PAGE_SHIFT;
			continue;
		}
		/* A superpage's PPN must be aligned to its size. */
		if (ppn & ((1ull << (9 * level)) - 1))
			return page_fault_cause[acc];
		if (!pte_permits(h, pte, acc))
			return page_fault_cause[acc];
		r = pte_update_ad(host_pte, pte, acc);
		if (r < 0)
			return r;
		h->walk_shift = shift;
		*ret_pa = (ppn << PAGE_SHIFT) | (va & ((1ull << shift) - 1));
		return 0;
	}
	return page_fault_cause[acc];
}

/* Guest-virtual to guest-physical. Returns 0 with *ret_pa, or the exception cause. */
static int translate(struct accel_vcpu *h, uint64_t va, enum access_type acc, uint64_t *ret_pa)
{
	unsigned mode = h->satp >> SATP_MODE_SHIFT;
	int r;

	if (mode == SATP_MODE_BARE) {
		h->walk_shift = PAGE_SHIFT;
		*ret_pa = va;
		return 0;
	}
	do
		r = page_walk(h, va, acc, mode == SATP_MODE_SV39 ? 3 : 4, ret_pa);
	while (r == -EAGAIN);
	return r;
}

/* Caches va's page when it is all RAM; returns the host address of va or NULL. */
static uint8_t *tlb_fill(struct accel_vcpu *h, enum access_type acc, uint64_t va, uint64_t pa)
{
	uint64_t page_off = va & PAGE_OFFSET_MASK;
	uint8_t *page = rv64_ram_ptr(h->map, pa - page_off, PAGE_SIZE);
	struct tlb_entry *e;

	if (!page)
		return NULL;
	if (acc == ACC_WRITE && h->jit)
		rv64_jit_code_written(h, page);
	e = &h->tlb[acc][rv64_tlb_index(va)];
	if (e->vpn != TLB_INVALID && e->vpn != va >> PAGE_SHIFT) {
		struct tlb_entry *e1 = &h->tlb1[acc][rv64_tlb_index(va)];

		tlb_log(h, e1);
		*e1 = *e;
	}
	tlb_log(h, e);
	if (h->walk_shift > PAGE_SHIFT)
		note_super(h, va, h->walk_shift);
	e->vpn = va >> PAGE_SHIFT;
	e->addend = (uintptr_t)page - (uintptr_t)(va - page_off);
	return page + page_off;
}

static uint64_t size_mask(unsigned size)
{
	return size == 8 ? UINT64_MAX : (1ull << (8 * size)) - 1;
}

/* Physical access outside the TLB: RAM not covering a whole page, or MMIO. */
static int phys_read(struct accel_vcpu *h, uint64_t pa, unsigned size, uint64_t *ret_val)
{
	const struct machine_map *map = h->map;
	uint8_t *p = rv64_ram_ptr(map, pa, size);
	uint64_t v = 0;
	int r;

	if (p) {
		memcpy(&v, p, size);
		*ret_val = v;
		return 0;
	}
	/* Device registers are not emulated misaligned: that is an access fault. */
	if (!map->mmio || !map->mmio->read || (pa & (size - 1)))
		return -EFAULT;
	r = map->mmio->read(map->mmio_opaque, pa, size, &v);
	if (r < 0)
		return -EFAULT;
	*ret_val = v & size_mask(size);
	return 0;
}

static int phys_write(struct accel_vcpu *h, uint64_t pa, unsigned size, uint64_t val)
{
	const struct machine_map *map = h->map;
	uint8_t *p = rv64_ram_ptr(map, pa, size);

	if (p) {
		if (h->jit)
			rv64_jit_code_written(h, (const uint8_t *)((uintptr_t)p & ~(uintptr_t)PAGE_OFFSET_MASK));
		memcpy(p, &val, size);
		return 0;
	}
	if (!map->mmio || !map->mmio->write || (pa & (size - 1)))
		return -EFAULT;
	if (map->mmio->write(map->mmio_opaque, pa, size, val & size_mask(size)) < 0)
		return -EFAULT;
	return 0;
}

/*
 * A misaligned access crossing a page: translate every byte before touching
 * memory, so a fault on the second page leaves nothing half done.
 */
static int access_split(struct accel_vcpu *h, uint64_t va, unsigned size,
			enum access_type acc, uint64_t *val)
{
	uint64_t pa[8], v = 0;
	int cause;

	for (unsigned i = 0; i < size; i++) {
		cause = translate(h, va + i, acc, &pa[i]);
		if (cause)
			return rv64_exception(h, cause, va + i);
	}
	for (unsigned i = 0; i < size; i++) {
		uint64_t byte = (*val >> (8 * i)) & 0xff;

		if (acc == ACC_WRITE ? phys_write(h, pa[i], 1, byte) : phys_read(h, pa[i], 1, &byte))
			return rv64_exception(h, access_fault_cause[acc], va + i);
		v |= byte << (8 * i);
	}
	if (acc == ACC_READ)
		*val = v;
	return 0;
}

int rv64_jit_tlb_fill(struct accel_vcpu *h, uint64_t va, unsigned acc, unsigned last)
{
	uint32_t epoch = h->code_epoch;
	uint64_t pa;

	if (acc >= ACC_FETCH || (va & PAGE_OFFSET_MASK) + last > PAGE_OFFSET_MASK)
		return 0;
	if (translate(h, va, (enum access_type)acc, &pa))
		return 0;
	return tlb_fill(h, (enum access_type)acc, va, pa) && h->code_epoch == epoch;
}

int rv64_load_slow(struct accel_vcpu *h, uint64_t va, unsigned size, uint64_t *ret_val)
{
	uint64_t pa, v = 0;
	uint8_t *p;
	int cause;

	if ((va & PAGE_OFFSET_MASK) + size > PAGE_SIZE) {
		int r = access_split(h, va, size, ACC_READ, &v);

		if (!r)
			*ret_val = v;
		return r;
	}
	p = rv64_tlb_promote(h, ACC_READ, va);
	if (p) {
		memcpy(&v, p, size);
		*ret_val = v;
		return 0;
	}
	cause = translate(h, va, ACC_READ, &pa);
	if (cause)
		return rv64_exception(h, cause, va);
	p = tlb_fill(h, ACC_READ, va, pa);
	if (p) {
		memcpy(&v, p, size);
	} else if (phys_read(h, pa, size, &v) < 0) {
		return rv64_exception(h, CAUSE_LOAD_ACCESS, va);
	}
	*ret_val = v;
	return 0;
}

int rv64_store_slow(struct accel_vcpu *h, uint64_t va, unsigned size, uint64_t val)
{
	uint64_t pa;
	uint8_t *p;
	int cause;

	if ((va & PAGE_OFFSET_MASK) + size > PAGE_SIZE)
		return access_split(h, va, size, ACC_WRITE, &val);
	p = rv64_tlb_promote(h, ACC_WRITE, va);
	if (p) {
		memcpy(p, &val, size);
		return 0;
	}
	cause = translate(h, va, ACC_WRITE, &pa);
	if (cause)
		return rv64_exception(h, cause, va);
	p = tlb_fill(h, ACC_WRITE, va, pa);
	if (p) {
		memcpy(p, &val, size);
	} else if (phys_write(h, pa, size, val) < 0) {
		return rv64_exception(h, CAUSE_STORE_ACCESS, va);
	}
	return 0;
}

/* One 16-bit instruction parcel; only RAM is executable. */
static int fetch_parcel(struct accel_vcpu *h, uint64_t va, uint16_t *ret_parcel)
{
	uint8_t *p = rv64_tlb_lookup(h, ACC_FETCH, va, 2);
	uint64_t pa;
	int cause;

	if (!p)
		p = rv64_tlb_promote(h, ACC_FETCH, va);
	if (!p) {
		cause = translate(h, va, ACC_FETCH, &pa);
		if (cause)
			return rv64_exception(h, cause, va);
		p = tlb_fill(h, ACC_FETCH, va, pa);
		if (!p)
			return rv64_exception(h, CAUSE_FETCH_ACCESS, va);
	}
	memcpy(ret_parcel, p, 2);
	return 0;
}

int rv64_fetch_slow(struct accel_vcpu *h, uint32_t *ret_insn)
{
	uint16_t lo, hi;
	int r;

	r = fetch_parcel(h, h->pc, &lo);
	if (r)
		return r;
	if ((lo & 3) != 3) {
		*ret_insn = lo;
		return 0;
	}
	r = fetch_parcel(h, h->pc + 2, &hi);
	if (r)
		return r;
	*ret_insn = lo | (uint32_t)hi << 16;
	return 0;
}

/*
 * Host pointer for an atomic access, which must be naturally aligned and in
 * RAM (device registers do not support AMOs here). LR checks read
 * permission, SC and AMOs write permission.
 */
int rv64_amo_ptr(struct accel_vcpu *h, uint64_t va, unsigned size, bool is_lr, void **ret_ptr)
{
	enum access_type acc = is_lr ? ACC_READ : ACC_WRITE;
	uint64_t pa;
	void *p;
	int cause;

	if (va & (size - 1))
		return rv64_exception(h, is_lr ? CAUSE_MISALIGNED_LOAD : CAUSE_MISALIGNED_STORE, va);
	p = rv64_tlb_lookup(h, acc, va, size);
	if (!p)
		p = rv64_tlb_promote(h, acc, va);
	if (!p) {
		cause = translate(h, va, acc, &pa);
		if (cause)
			return rv64_exception(h, cause, va);
		p = tlb_fill(h, acc, va, pa);
		if (!p)
			p = rv64_ram_ptr(h->map, pa, size);
		if (!p)
			return rv64_exception(h, access_fault_cause[acc], va);
	}
	*ret_ptr = p;
	return 0;
}
