/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The SBI firmware played by the VMM (SBI spec v2.0). Every argument comes
 * from guest registers, so each one is checked before it reaches the host.
 */
#include "sbi.h"

#include "cleanup.h"

#define SBI_EXT_LEGACY_PUTCHAR 0x01
#define SBI_EXT_LEGACY_GETCHAR 0x02
#define SBI_EXT_BASE 0x10
#define SBI_EXT_TIME 0x54494D45
#define SBI_EXT_IPI 0x735049
#define SBI_EXT_RFENCE 0x52464E43
#define SBI_EXT_HSM 0x48534D
#define SBI_EXT_SRST 0x53525354
#define SBI_EXT_DBCN 0x4442434E

enum {
	SBI_BASE_GET_SPEC_VERSION = 0,
	SBI_BASE_GET_IMPL_ID = 1,
	SBI_BASE_GET_IMPL_VERSION = 2,
	SBI_BASE_PROBE_EXTENSION = 3,
	SBI_BASE_GET_MVENDORID = 4,
	SBI_BASE_GET_MARCHID = 5,
	SBI_BASE_GET_MIMPID = 6,
};

enum {
	SBI_RFENCE_FENCE_I = 0,
	SBI_RFENCE_SFENCE_VMA = 1,
	SBI_RFENCE_SFENCE_VMA_ASID = 2,
};

enum {
	SBI_HSM_HART_START = 0,
	SBI_HSM_HART_STOP = 1,
	SBI_HSM_HART_GET_STATUS = 2,
	SBI_HSM_HART_SUSPEND = 3,
};

enum {
	SBI_DBCN_WRITE = 0,
	SBI_DBCN_READ = 1,
	SBI_DBCN_WRITE_BYTE = 2,
};

/* Our implementation version, reported by BASE get_impl_version. */
#define SBI_IMPL_VERSION 1

/* One console_write/read moves at most this much; the spec allows partial transfers. */
#define SBI_DBCN_MAX_CHUNK 4096u

/* hart_mask_base meaning "every hart, ignore the mask". */
#define SBI_HART_MASK_BASE_ALL UINT64_MAX

struct sbi_call {
	const struct sbi_host_ops *ops;
	void *opaque;
	unsigned self;
	uint64_t fid;
	const uint64_t *args;
};

typedef void (*sbi_handler)(const struct sbi_call *c, struct sbi_result *ret);

static void sbi_set(struct sbi_result *ret, int64_t error, int64_t value)
{
	ret->error = error;
	ret->value = value;
}

/*
 * Legacy v0.1 calls return their result in a0 alone. Linux still probes for
 * them, so they stay; there is no legacy set_timer/IPI because any kernel
 * that needs those predates SBI 0.2.
 */
static void sbi_legacy_putchar(const struct sbi_call *c, struct sbi_result *ret)
{
	uint8_t byte = (uint8_t)c->args[0];

	c->ops->console_write(c->opaque, c->self, &byte, 1, true);
	sbi_set(ret, 0, 0);
}

static void sbi_legacy_getchar(const struct sbi_call *c, struct sbi_result *ret)
{
	int byte = c->ops->console_read(c->opaque);

	sbi_set(ret, byte < 0 ? -1 : byte, 0);
}

static bool sbi_extension_served(uint64_t ext);

static void sbi_base(const struct sbi_call *c, struct sbi_result *ret)
{
	switch (c->fid) {
	case SBI_BASE_GET_SPEC_VERSION:
		sbi_set(ret, SBI_SUCCESS, SBI_SPEC_VERSION);
		break;
	case SBI_BASE_GET_IMPL_ID:
		sbi_set(ret, SBI_SUCCESS, SBI_IMPL_ID_CLOISTER);
		break;
	case SBI_BASE_GET_IMPL_VERSION:
		sbi_set(ret, SBI_SUCCESS, SBI_IMPL_VERSION);
		break;
	case SBI_BASE_PROBE_EXTENSION:
		sbi_set(ret, SBI_SUCCESS, sbi_extension_served(c->args[0]) ? 1 : 0);
		break;
	case SBI_BASE_GET_MVENDORID:
	case SBI_BASE_GET_MARCHID:
	case SBI_BASE_GET_MIMPID:
		sbi_set(ret, SBI_SUCCESS, 0);
		break;
	default:
		sbi_set(ret, SBI_ERR_NOT_SUPPORTED, 0);
		break;
	}
}

static void sbi_time(const struct sbi_call *c, struct sbi_result *ret)
{
	if (c->fid != 0) {
		sbi_set(ret, SBI_ERR_NOT_SUPPORTED, 0);
		return;
	}
	c->ops->set_timer(c->opaque, c->self, c->args[0]);
	sbi_set(ret, SBI_SUCCESS, 0);
}

/*
 * Checks a (hart_mask, hart_mask_base) pair before anything is done, so a
 * call naming one bad hart has no effect at all.
 */
static int sbi_hart_mask_check(unsigned n_harts, uint64_t mask, uint64_t base)
{
	if (base == SBI_HART_MASK_BASE_ALL || mask == 0)
		return SBI_SUCCESS;
	if (base >= n_harts)
		return SBI_ERR_INVALID_PARAM;
	/* The highest bit set must still name a hart below n_harts. */
	if ((uint64_t)(63 - __builtin_clzll(mask)) >= n_harts - base)
		return SBI_ERR_INVALID_PARAM;
	return SBI_SUCCESS;
}

/* Calls fn on every hart of a mask that sbi_hart_mask_check() accepted. */
static void sbi_hart_mask_apply(const struct sbi_call *c, uint64_t mask, uint64_t base,
				void (*fn)(void *opaque, unsigned hartid))
{
	if (base == SBI_HART_MASK_BASE_ALL) {
		for (unsigned h = 0; h < c->ops->n_harts; h++)
			fn(c->opaque, h);
		return;
	}
	while (mask) {
		unsigned bit = __builtin_ctzll(mask);

		fn(c->opaque, (unsigned)(base + bit));
		mask &= mask - 1;
	}
}

static void sbi_for_hart_mask(const struct sbi_call *c, struct sbi_result *ret,
			      void (*fn)(void *opaque, unsigned hartid))
{
	uint64_t mask = c->args[0], base = c->args[1];
	int err = sbi_hart_mask_check(c->ops->n_harts, mask, base);

	if (err == SBI_SUCCESS)
		sbi_hart_mask_apply(c, mask, base, fn);
	sbi_set(ret, err, 0);
}

static void sbi_ipi(const struct sbi_call *c, struct sbi_result *ret)
{
	if (c->fid != 0) {
		sbi_set(ret, SBI_ERR_NOT_SUPPORTED, 0);
		return;
	}
	sbi_for_hart_mask(c, ret, c->ops->send_ipi);
}

/*
 * All three guest-visible fences become one full flush per hart: the engine
 * drops its translation cache and decoded code together, which covers
 * fence.i and any address or ASID range.
 */
static void sbi_rfence(const struct sbi_call *c, struct sbi_result *ret)
{
	switch (c->fid) {
	case SBI_RFENCE_FENCE_I:
	case SBI_RFENCE_SFENCE_VMA:
	case SBI_RFENCE_SFENCE_VMA_ASID:
		sbi_for_hart_mask(c, ret, c->ops->remote_fence);
		break;
	default:
		/* The hfence.* calls need the H extension, which we do not offer. */
		sbi_set(ret, SBI_ERR_NOT_SUPPORTED, 0);
		break;
	}
}

static bool sbi_guest_has_ram(const struct sbi_call *c, uint64_t gpa)
{
	uint16_t probe;

	return c->ops->guest_read(c->opaque, gpa, &probe, sizeof(probe)) == 0;
}

static void sbi_hsm_start(const struct sbi_call *c, struct sbi_result *ret)
{
	uint64_t hartid = c->args[0], start = c->args[1];

	if (hartid >= c->ops->n_harts) {
		sbi_set(ret, SBI_ERR_INVALID_PARAM, 0);
		return;
	}
	/* A start address outside RAM would only fault on the new hart's first fetch. */
	if (!sbi_guest_has_ram(c, start)) {
		sbi_set(ret, SBI_ERR_INVALID_ADDRESS, 0);
		return;
	}
	sbi_set(ret, c->ops->hart_start(c->opaque, (unsigned)hartid, start, c->args[2]), 0);
}

static void sbi_hsm_stop(const struct sbi_call *c, struct sbi_result *ret)
{
	int err = c->ops->hart_stop(c->opaque, c->self);

	sbi_set(ret, err, 0);
	ret->no_return = err == SBI_SUCCESS;
}

static void sbi_hsm_status(const struct sbi_call *c, struct sbi_result *ret)
{
	uint64_t hartid = c->args[0];
	int status;

	if (hartid >= c->ops->n_harts) {
		sbi_set(ret, SBI_ERR_INVALID_PARAM, 0);
		return;
	}
	status = c->ops->hart_status(c->opaque, (unsigned)hartid);
	if (status < 0)
		sbi_set(ret, status, 0);
	else
		sbi_set(ret, SBI_SUCCESS, status);
}

static void sbi_hsm(const struct sbi_call *c, struct sbi_result *ret)
{
	switch (c->fid) {
	case SBI_HSM_HART_START:
		sbi_hsm_start(c, ret);
		break;
	case SBI_HSM_HART_STOP:
		sbi_hsm_stop(c, ret);
		break;
	case SBI_HSM_HART_GET_STATUS:
		sbi_hsm_status(c, ret);
		break;
	default:
		/* hart_suspend would need a resume path through the vCPU loop. */
		sbi_set(ret, SBI_ERR_NOT_SUPPORTED, 0);
		break;
	}
}

/*
 * Reset type and reason are uint32_t in the spec; the RV64 calling
 * convention sign-extends them in the register, so only the low half counts.
 */
static int sbi_srst_check(uint32_t type, uint32_t reason)
{
	const uint32_t vendor_first = 0xF0000000u;

	if (reason > 1 && reason < vendor_first)
		return SBI_ERR_INVALID_PARAM;
	if (type <= 2)
		return SBI_SUCCESS;
	/* Vendor reset types are well formed; we just implement none. */
	return type >= vendor_first ? SBI_ERR_NOT_SUPPORTED : SBI_ERR_INVALID_PARAM;
}

static void sbi_srst(const struct sbi_call *c, struct sbi_result *ret)
{
	uint32_t type = (uint32_t)c->args[0], reason = (uint32_t)c->args[1];
	int err;

	if (c->fid != 0) {
		sbi_set(ret, SBI_ERR_NOT_SUPPORTED, 0);
		return;
	}
	err = sbi_srst_check(type, reason);
	sbi_set(ret, err, 0);
	if (err != SBI_SUCCESS)
		return;
	c->ops->system_reset(c->opaque, type, reason);
	ret->no_return = true;
}

/*
 * Resolves a DBCN buffer to a guest physical address and a length clamped
 * to one chunk. On RV64 base_addr_hi holds bits 64 and up, which no guest
 * address has.
 */
static int sbi_dbcn_buffer(const struct sbi_call *c, uint64_t *ret_gpa, size_t *ret_len)
{
	uint64_t len = c->args[0], lo = c->args[1], hi = c->args[2];

	if (hi != 0)
		return SBI_ERR_INVALID_PARAM;
	if (len > SBI_DBCN_MAX_CHUNK)
		len = SBI_DBCN_MAX_CHUNK;
	if (lo + len < lo)
		return SBI_ERR_INVALID_PARAM;
	*ret_gpa = lo;
	*ret_len = len;
	return SBI_SUCCESS;
}

static void sbi_dbcn_write(const struct sbi_call *c, struct sbi_result *ret)
{
	uint8_t buf[SBI_DBCN_MAX_CHUNK];
	uint64_t gpa;
	size_t len;
	int err = sbi_dbcn_buffer(c, &gpa, &len);

	if (err == SBI_SUCCESS && len && c->ops->guest_read(c->opaque, gpa, buf, len) < 0)
		err = SBI_ERR_INVALID_PARAM;
	if (err != SBI_SUCCESS) {
		sbi_set(ret, err, 0);
		return;
	}
	/* A partial write is the DBCN's way of saying "busy": the guest writes the rest again. */
	if (len)
		len = c->ops->console_write(c->opaque, c->self, buf, len, false);
	sbi_set(ret, SBI_SUCCESS, (int64_t)len);
}

static void sbi_dbcn_read(const struct sbi_call *c, struct sbi_result *ret)
{
	uint8_t buf[SBI_DBCN_MAX_CHUNK];
	uint64_t gpa;
	size_t len, n = 0;
	int err = sbi_dbcn_buffer(c, &gpa, &len);

	/* Check the buffer before consuming input that would otherwise be lost. */
	if (err == SBI_SUCCESS && len && c->ops->guest_read(c->opaque, gpa, buf, len) < 0)
		err = SBI_ERR_INVALID_PARAM;
	if (err != SBI_SUCCESS) {
		sbi_set(ret, err, 0);
		return;
	}
	while (n < len) {
		int byte = c->ops->console_read(c->opaque);

		if (byte < 0)
			break;
		buf[n++] = (uint8_t)byte;
	}
	if (n && c->ops->guest_write(c->opaque, gpa, buf, n) < 0) {
		sbi_set(ret, SBI_ERR_FAILED, 0);
		return;
	}
	sbi_set(ret, SBI_SUCCESS, (int64_t)n);
}

static void sbi_dbcn(const struct sbi_call *c, struct sbi_result *ret)
{
	uint8_t byte;

	switch (c->fid) {
	case SBI_DBCN_WRITE:
		sbi_dbcn_write(c, ret);
		break;
	case SBI_DBCN_READ:
		sbi_dbcn_read(c, ret);
		break;
	case SBI_DBCN_WRITE_BYTE:
		byte = (uint8_t)c->args[0];
		c->ops->console_write(c->opaque, c->self, &byte, 1, true);
		sbi_set(ret, SBI_SUCCESS, 0);
		break;
	default:
		sbi_set(ret, SBI_ERR_NOT_SUPPORTED, 0);
		break;
	}
}

static const struct {
	uint64_t ext;
	sbi_handler handler;
} sbi_extensions[] = {
	{ SBI_EXT_LEGACY_PUTCHAR, sbi_legacy_putchar },
	{ SBI_EXT_LEGACY_GETCHAR, sbi_legacy_getchar },
	{ SBI_EXT_BASE, sbi_base },
	{ SBI_EXT_TIME, sbi_time },
	{ SBI_EXT_IPI, sbi_ipi },
	{ SBI_EXT_RFENCE, sbi_rfence },
	{ SBI_EXT_HSM, sbi_hsm },
	{ SBI_EXT_SRST, sbi_srst },
	{ SBI_EXT_DBCN, sbi_dbcn },
};

static sbi_handler sbi_find_handler(uint64_t ext)
{
	for (size_t i = 0; i < ARRAY_SIZE(sbi_extensions); i++)
		if (sbi_extensions[i].ext == ext)
			return sbi_extensions[i].handler;
	return NULL;
}

static bool sbi_extension_served(uint64_t ext)
{
	return sbi_find_handler(ext) != NULL;
}

void sbi_dispatch(const struct sbi_host_ops *ops, void *opaque, unsigned self,
		  const struct vcpu_exit *exit, struct sbi_result *ret)
{
	sbi_handler handler = NULL;

	*ret = (struct sbi_result){ .error = SBI_ERR_NOT_SUPPORTED };
	if (exit->reason == VCPU_EXIT_SBI)
		handler = sbi_find_handler(exit->sbi.ext);
	if (!handler)
		return;
	handler(&(const struct sbi_call){
			.ops = ops,
			.opaque = opaque,
			.self = self,
			.fid = exit->sbi.fid,
			.args = exit->sbi.args,
		}, ret);
}
