/* SPDX-License-Identifier: Apache-2.0 */
/* SBI dispatch against a fake machine that records what it was asked to do. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "platform/sbi.h"

#define EXT_BASE 0x10
#define EXT_TIME 0x54494D45
#define EXT_IPI 0x735049
#define EXT_RFENCE 0x52464E43
#define EXT_HSM 0x48534D
#define EXT_SRST 0x53525354
#define EXT_DBCN 0x4442434E

#define FAKE_HARTS 8
#define FAKE_RAM_BASE 0x80000000ull
#define FAKE_RAM_SIZE 0x10000ull

struct fake {
	char out[8192];
	size_t out_len;
	size_t n_writes;
	/* The console takes at most this much of a partial write (0: no limit). */
	size_t console_room;
	bool last_whole;
	const char *in;
	uint8_t ram[FAKE_RAM_SIZE];
	unsigned ipis[FAKE_HARTS];
	unsigned fences[FAKE_HARTS];
	int status[FAKE_HARTS];
	unsigned started_hart;
	uint64_t started_addr, started_arg;
	unsigned stopped;
	unsigned timer_hart;
	uint64_t timer_deadline;
	uint32_t reset_type, reset_reason;
	unsigned n_resets;
};

static struct fake fk;

static size_t fake_console_write(void *opaque, unsigned self, const void *buf, size_t len,
				 bool whole)
{
	struct fake *f = opaque;

	f->last_whole = whole;
	if (!whole && f->console_room && len > f->console_room)
		len = f->console_room;
	cr_assert_leq(f->out_len + len, sizeof(f->out));
	memcpy(f->out + f->out_len, buf, len);
	f->out_len += len;
	f->n_writes++;
	return len;
}

static int fake_console_read(void *opaque)
{
	struct fake *f = opaque;

	if (!f->in || !*f->in)
		return -1;
	return (uint8_t)*f->in++;
}

static uint8_t *fake_ram(struct fake *f, uint64_t gpa, size_t len)
{
	if (gpa < FAKE_RAM_BASE || gpa - FAKE_RAM_BASE > FAKE_RAM_SIZE ||
	    len > FAKE_RAM_SIZE - (gpa - FAKE_RAM_BASE))
		return NULL;
	return f->ram + (gpa - FAKE_RAM_BASE);
}

static int fake_guest_read(void *opaque, uint64_t gpa, void *buf, size_t len)
{
	uint8_t *p = fake_ram(opaque, gpa, len);

	if (!p)
		return -EFAULT;
	memcpy(buf, p, len);
	return 0;
}

static int fake_guest_write(void *opaque, uint64_t gpa, const void *buf, size_t len)
{
	uint8_t *p = fake_ram(opaque, gpa, len);

	if (!p)
		return -EFAULT;
	memcpy(p, buf, len);
	return 0;
}

static int fake_hart_start(void *opaque, unsigned hartid, uint64_t addr, uint64_t arg)
{
	struct fake *f = opaque;

	if (f->status[hartid] != SBI_HSM_STOPPED)
		return SBI_ERR_ALREADY_AVAILABLE;
	f->status[hartid] = SBI_HSM_START_PENDING;
	f->started_hart = hartid;
	f->started_addr = addr;
	f->started_arg = arg;
	return SBI_SUCCESS;
}

static int fake_hart_stop(void *opaque, unsigned self)
{
	struct fake *f = opaque;

	f->stopped = self;
	f->status[self] = SBI_HSM_STOPPED;
	return SBI_SUCCESS;
}

static int fake_hart_status(void *opaque, unsigned hartid)
{
	return ((struct fake *)opaque)->status[hartid];
}

static void fake_send_ipi(void *opaque, unsigned hartid)
{
	cr_assert_lt(hartid, FAKE_HARTS);
	((struct fake *)opaque)->ipis[hartid]++;
}

static void fake_remote_fence(void *opaque, unsigned hartid)
{
	cr_assert_lt(hartid, FAKE_HARTS);
	((struct fake *)opaque)->fences[hartid]++;
}

static void fake_set_timer(void *opaque, unsigned self, uint64_t deadline)
{
	struct fake *f = opaque;

	f->timer_hart = self;
	f->timer_deadline = deadline;
}

static void fake_system_reset(void *opaque, uint32_t type, uint32_t reason)
{
	struct fake *f = opaque;

	f->reset_type = type;
	f->reset_reason = reason;
	f->n_resets++;
}

static const struct sbi_host_ops fake_ops = {
	.console_write = fake_console_write,
	.console_read = fake_console_read,
	.guest_read = fake_guest_read,
	.guest_write = fake_guest_write,
	.hart_start = fake_hart_start,
	.hart_stop = fake_hart_stop,
	.hart_status = fake_hart_status,
	.send_ipi = fake_send_ipi,
	.remote_fence = fake_remote_fence,
	.set_timer = fake_set_timer,
	.system_reset = fake_system_reset,
	.n_harts = FAKE_HARTS,
};

static void fake_reset(void)
{
	memset(&fk, 0, sizeof(fk));
	for (unsigned h = 1; h < FAKE_HARTS; h++)
		fk.status[h] = SBI_HSM_STOPPED;
	fk.status[0] = SBI_HSM_STARTED;
}

static struct sbi_result call(unsigned self, uint64_t ext, uint64_t fid,
			      uint64_t a0, uint64_t a1, uint64_t a2)
{
	struct vcpu_exit exit = {
		.reason = VCPU_EXIT_SBI,
		.sbi = { .ext = ext, .fid = fid, .args = { a0, a1, a2, 0, 0, 0 } },
	};
	struct sbi_result r;

	memset(&r, 0x5a, sizeof(r));
	sbi_dispatch(&fake_ops, &fk, self, &exit, &r);
	return r;
}

TestSuite(sbi, .init = fake_reset);

Test(sbi, base_versions_and_ids)
{
	struct sbi_result r = call(0, EXT_BASE, 0, 0, 0, 0);

	cr_assert_eq(r.error, SBI_SUCCESS);
	cr_assert_eq(r.value >> 24, 2);
	cr_assert_eq(r.value & 0xffffff, 0);
	cr_assert_not(r.no_return);
	r = call(0, EXT_BASE, 1, 0, 0, 0);
	cr_assert_eq(r.value, SBI_IMPL_ID_CLOISTER);
	r = call(0, EXT_BASE, 2, 0, 0, 0);
	cr_assert_eq(r.error, SBI_SUCCESS);
	for (uint64_t fid = 4; fid <= 6; fid++) {
		r = call(0, EXT_BASE, fid, 0, 0, 0);
		cr_assert_eq(r.error, SBI_SUCCESS);
		cr_assert_eq(r.value, 0);
	}
	r = call(0, EXT_BASE, 7, 0, 0, 0);
	cr_assert_eq(r.error, SBI_ERR_NOT_SUPPORTED);
}

Test(sbi, probe_extension)
{
	const uint64_t served[] = { 0x01, 0x02, EXT_BASE, EXT_TIME, EXT_IPI, EXT_RFENCE,
				    EXT_HSM, EXT_SRST, EXT_DBCN };
	const uint64_t absent[] = { 0x00, 0x08, 0x504D55 /* PMU */, 0x53555350 /* SUSP */,
				    0xffffffffffffffffull };

	for (size_t i = 0; i < sizeof(served) / sizeof(served[0]); i++) {
		struct sbi_result r = call(0, EXT_BASE, 3, served[i], 0, 0);

		cr_assert_eq(r.error, SBI_SUCCESS);
		cr_assert_eq(r.value, 1, "extension 0x%lx", (unsigned long)served[i]);
	}
	for (size_t i = 0; i < sizeof(absent) / sizeof(absent[0]); i++) {
		struct sbi_result r = call(0, EXT_BASE, 3, absent[i], 0, 0);

		cr_assert_eq(r.error, SBI_SUCCESS);
		cr_assert_eq(r.value, 0, "extension 0x%lx", (unsigned long)absent[i]);
	}
}

Test(sbi, unknown_extension_and_exit)
{
	struct vcpu_exit wfi = { .reason = VCPU_EXIT_WFI };
	struct sbi_result r = call(0, 0x12345678, 0, 0, 0, 0);

	cr_assert_eq(r.error, SBI_ERR_NOT_SUPPORTED);
	cr_assert_not(r.no_return);
	sbi_dispatch(&fake_ops, &fk, 0, &wfi, &r);
	cr_assert_eq(r.error, SBI_ERR_NOT_SUPPORTED);
}

Test(sbi, legacy_console)
{
	struct sbi_result r = call(0, 0x01, 0, 'Q', 0, 0);

	cr_assert_eq(r.error, 0);
	cr_assert_eq(fk.out_len, 1);
	cr_assert_eq(fk.out[0], 'Q');
	fk.in = "\xfe";
	r = call(0, 0x02, 0, 0, 0, 0);
	cr_assert_eq(r.error, 0xfe);
	r = call(0, 0x02, 0, 0, 0, 0);
	cr_assert_eq(r.error, -1);
}

Test(sbi, set_timer)
{
	struct sbi_result r = call(3, EXT_TIME, 0, 0x123456789ull, 0, 0);

	cr_assert_eq(r.error, SBI_SUCCESS);
	cr_assert_eq(fk.timer_hart, 3);
	cr_assert_eq(fk.timer_deadline, 0x123456789ull);
	r = call(3, EXT_TIME, 1, 5, 0, 0);
	cr_assert_eq(r.error, SBI_ERR_NOT_SUPPORTED);
	cr_assert_eq(fk.timer_deadline, 0x123456789ull);
}

Test(sbi, ipi_mask_and_base)
{
	struct sbi_result r = call(0, EXT_IPI, 0, 0x5, 2, 0);

	cr_assert_eq(r.error, SBI_SUCCESS);
	cr_assert_eq(fk.ipis[2], 1);
	cr_assert_eq(fk.ipis[4], 1);
	cr_assert_eq(fk.ipis[0] + fk.ipis[1] + fk.ipis[3] + fk.ipis[5], 0);
	r = call(0, EXT_IPI, 0, 0, UINT64_MAX, 0);
	cr_assert_eq(r.error, SBI_SUCCESS);
	for (unsigned h = 0; h < FAKE_HARTS; h++)
		cr_assert_eq(fk.ipis[h], (h == 2 || h == 4) ? 2 : 1);
}

Test(sbi, ipi_invalid_harts_do_nothing)
{
	/* Bit 8 names hart 8 of 8: the whole call is refused, hart 0 untouched. */
	struct sbi_result r = call(0, EXT_IPI, 0, 0x101, 0, 0);

	cr_assert_eq(r.error, SBI_ERR_INVALID_PARAM);
	cr_assert_eq(fk.ipis[0], 0);
	r = call(0, EXT_IPI, 0, 0x1, 8, 0);
	cr_assert_eq(r.error, SBI_ERR_INVALID_PARAM);
	r = call(0, EXT_IPI, 0, 0x8000000000000000ull, 1, 0);
	cr_assert_eq(r.error, SBI_ERR_INVALID_PARAM);
	r = call(0, EXT_IPI, 0, 0x2, UINT64_MAX - 1, 0);
	cr_assert_eq(r.error, SBI_ERR_INVALID_PARAM);
	r = call(0, EXT_IPI, 0, 0x80, 0, 0);
	cr_assert_eq(r.error, SBI_SUCCESS);
	cr_assert_eq(fk.ipis[7], 1);
	for (unsigned h = 0; h < 7; h++)
		cr_assert_eq(fk.ipis[h], 0);
}

Test(sbi, rfence)
{
	for (uint64_t fid = 0; fid <= 2; fid++) {
		struct sbi_result r = call(0, EXT_RFENCE, fid, 0x3, 1, 0x1000);

		cr_assert_eq(r.error, SBI_SUCCESS);
	}
	cr_assert_eq(fk.fences[1], 3);
	cr_assert_eq(fk.fences[2], 3);
	cr_assert_eq(fk.fences[0], 0);
	cr_assert_eq(call(0, EXT_RFENCE, 0, 0, UINT64_MAX, 0).error, SBI_SUCCESS);
	cr_assert_eq(fk.fences[0], 1);
	cr_assert_eq(fk.fences[7], 1);
	cr_assert_eq(call(0, EXT_RFENCE, 1, 0x1, 9, 0).error, SBI_ERR_INVALID_PARAM);
	for (uint64_t fid = 3; fid <= 6; fid++)
		cr_assert_eq(call(0, EXT_RFENCE, fid, 1, 0, 0).error, SBI_ERR_NOT_SUPPORTED);
	cr_assert_eq(fk.fences[0], 1);
}

Test(sbi, hsm_start_status_stop)
{
	struct sbi_result r = call(0, EXT_HSM, 2, 3, 0, 0);

	cr_assert_eq(r.error, SBI_SUCCESS);
	cr_assert_eq(r.value, SBI_HSM_STOPPED);
	r = call(0, EXT_HSM, 0, 3, FAKE_RAM_BASE + 0x100, 0xabcd);
	cr_assert_eq(r.error, SBI_SUCCESS);
	cr_assert_eq(fk.started_hart, 3);
	cr_assert_eq(fk.started_addr, FAKE_RAM_BASE + 0x100);
	cr_assert_eq(fk.started_arg, 0xabcd);
	r = call(0, EXT_HSM, 2, 3, 0, 0);
	cr_assert_eq(r.value, SBI_HSM_START_PENDING);
	/* The host's refusal goes back to the guest unchanged. */
	r = call(0, EXT_HSM, 0, 3, FAKE_RAM_BASE, 0);
	cr_assert_eq(r.error, SBI_ERR_ALREADY_AVAILABLE);

	r = call(5, EXT_HSM, 1, 0, 0, 0);
	cr_assert_eq(r.error, SBI_SUCCESS);
	cr_assert(r.no_return);
	cr_assert_eq(fk.stopped, 5);
}

Test(sbi, hsm_bad_params)
{
	cr_assert_eq(call(0, EXT_HSM, 0, FAKE_HARTS, FAKE_RAM_BASE, 0).error,
		     SBI_ERR_INVALID_PARAM);
	cr_assert_eq(call(0, EXT_HSM, 0, UINT64_MAX, FAKE_RAM_BASE, 0).error,
		     SBI_ERR_INVALID_PARAM);
	cr_assert_eq(call(0, EXT_HSM, 0, 1, 0x1000, 0).error, SBI_ERR_INVALID_ADDRESS);
	cr_assert_eq(call(0, EXT_HSM, 0, 1, FAKE_RAM_BASE + FAKE_RAM_SIZE, 0).error,
		     SBI_ERR_INVALID_ADDRESS);
	cr_assert_eq(fk.status[1], SBI_HSM_STOPPED);
	cr_assert_eq(call(0, EXT_HSM, 2, FAKE_HARTS, 0, 0).error, SBI_ERR_INVALID_PARAM);
	cr_assert_eq(call(0, EXT_HSM, 3, 0, 0, 0).error, SBI_ERR_NOT_SUPPORTED);
}

Test(sbi, srst)
{
	struct sbi_result r;

	for (uint64_t type = 0; type <= 2; type++) {
		r = call(1, EXT_SRST, 0, type, 1, 0);
		cr_assert_eq(r.error, SBI_SUCCESS);
		cr_assert(r.no_return);
		cr_assert_eq(fk.reset_type, type);
		cr_assert_eq(fk.reset_reason, 1);
	}
	cr_assert_eq(fk.n_resets, 3);
	r = call(1, EXT_SRST, 0, 3, 0, 0);
	cr_assert_eq(r.error, SBI_ERR_INVALID_PARAM);
	cr_assert_not(r.no_return);
	cr_assert_eq(call(1, EXT_SRST, 0, 0, 2, 0).error, SBI_ERR_INVALID_PARAM);
	/* Sign-extended like a uint32_t in an RV64 register: vendor-specific type. */
	cr_assert_eq(call(1, EXT_SRST, 0, 0xfffffffff0000000ull, 0, 0).error,
		     SBI_ERR_NOT_SUPPORTED);
	cr_assert_eq(call(1, EXT_SRST, 1, 0, 0, 0).error, SBI_ERR_NOT_SUPPORTED);
	cr_assert_eq(fk.n_resets, 3);
}

Test(sbi, dbcn_write)
{
	const char msg[] = "hart 1 count 7\n";
	struct sbi_result r;

	memcpy(fk.ram + 0x200, msg, sizeof(msg) - 1);
	r = call(1, EXT_DBCN, 0, sizeof(msg) - 1, FAKE_RAM_BASE + 0x200, 0);
	cr_assert_eq(r.error, SBI_SUCCESS);
	cr_assert_eq(r.value, sizeof(msg) - 1);
	cr_assert_eq(fk.n_writes, 1, "one line must be one console write");
	cr_assert_arr_eq(fk.out, msg, sizeof(msg) - 1);

	r = call(1, EXT_DBCN, 2, 'z', 0, 0);
	cr_assert_eq(r.error, SBI_SUCCESS);
	cr_assert_eq(fk.out[fk.out_len - 1], 'z');

	r = call(1, EXT_DBCN, 0, 0, 0, 0);
	cr_assert_eq(r.error, SBI_SUCCESS);
	cr_assert_eq(r.value, 0);
}

/* A console with little room: DBCN write says how much went, byte calls take it all. */
Test(sbi, dbcn_write_partial_when_console_busy)
{
	const char msg[] = "0123456789";
	struct sbi_result r;

	fk.console_room = 4;
	memcpy(fk.ram + 0x300, msg, sizeof(msg) - 1);
	r = call(0, EXT_DBCN, 0, sizeof(msg) - 1, FAKE_RAM_BASE + 0x300, 0);
	cr_assert_eq(r.error, SBI_SUCCESS);
	cr_assert_eq(r.value, 4);
	cr_assert_not(fk.last_whole);
	cr_assert_arr_eq(fk.out, "0123", 4);
	r = call(0, EXT_DBCN, 2, 'q', 0, 0);
	cr_assert_eq(r.error, SBI_SUCCESS);
	cr_assert(fk.last_whole, "write_byte cannot report busy: the byte must be taken");
	cr_assert_eq(fk.out[fk.out_len - 1], 'q');
}

Test(sbi, dbcn_write_is_bounded)
{
	struct sbi_result r = call(0, EXT_DBCN, 0, FAKE_RAM_SIZE, FAKE_RAM_BASE, 0);

	cr_assert_eq(r.error, SBI_SUCCESS);
	cr_assert_gt(r.value, 0);
	cr_assert_lt((uint64_t)r.value, FAKE_RAM_SIZE);
	cr_assert_eq(fk.out_len, (size_t)r.value);
}

Test(sbi, dbcn_write_bad_buffers)
{
	size_t before = fk.out_len;

	cr_assert_eq(call(0, EXT_DBCN, 0, 16, 0x1000, 0).error, SBI_ERR_INVALID_PARAM);
	cr_assert_eq(call(0, EXT_DBCN, 0, 16, FAKE_RAM_BASE + FAKE_RAM_SIZE - 8, 0).error,
		     SBI_ERR_INVALID_PARAM);
	cr_assert_eq(call(0, EXT_DBCN, 0, 16, UINT64_MAX - 4, 0).error, SBI_ERR_INVALID_PARAM);
	cr_assert_eq(call(0, EXT_DBCN, 0, 16, FAKE_RAM_BASE, 1).error, SBI_ERR_INVALID_PARAM);
	cr_assert_eq(call(0, EXT_DBCN, 3, 0, 0, 0).error, SBI_ERR_NOT_SUPPORTED);
	cr_assert_eq(fk.out_len, before);
}

Test(sbi, dbcn_read)
{
	struct sbi_result r;

	fk.in = "abc";
	r = call(0, EXT_DBCN, 1, 16, FAKE_RAM_BASE + 0x40, 0);
	cr_assert_eq(r.error, SBI_SUCCESS);
	cr_assert_eq(r.value, 3);
	cr_assert_arr_eq(fk.ram + 0x40, "abc", 3);
	r = call(0, EXT_DBCN, 1, 16, FAKE_RAM_BASE + 0x40, 0);
	cr_assert_eq(r.error, SBI_SUCCESS);
	cr_assert_eq(r.value, 0);

	/* A bad buffer must not swallow pending input. */
	fk.in = "xy";
	r = call(0, EXT_DBCN, 1, 16, 0x10, 0);
	cr_assert_eq(r.error, SBI_ERR_INVALID_PARAM);
	cr_assert_str_eq(fk.in, "xy");
	r = call(0, EXT_DBCN, 1, 1, FAKE_RAM_BASE, 0);
	cr_assert_eq(r.value, 1);
	cr_assert_eq(fk.ram[0], 'x');
}
