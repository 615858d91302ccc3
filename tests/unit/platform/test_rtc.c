/* SPDX-License-Identifier: Apache-2.0 */
/* The goldfish RTC against a settable fake host clock. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>
#include <time.h>

#include "platform/rtc.h"

struct fake {
	uint64_t now;
	bool line;
	unsigned changes;
};

static uint64_t fake_now(void *opaque)
{
	return ((struct fake *)opaque)->now;
}

static void fake_irq(void *opaque, uint32_t irq, bool level)
{
	struct fake *f = opaque;

	cr_assert_eq(irq, 11);
	f->line = level;
	f->changes++;
}

static struct rtc *make(struct fake *f, uint64_t now)
{
	struct rtc_params p = { .set_irq = fake_irq, .irq = 11, .opaque = f, .now_ns = fake_now };
	struct rtc *r = NULL;

	memset(f, 0, sizeof(*f));
	f->now = now;
	cr_assert_eq(rtc_create(&p, &r), 0);
	return r;
}

static uint32_t rd(struct rtc *r, uint64_t off)
{
	uint64_t v = ~0ull;

	cr_assert_eq(rtc_read(r, off, 4, &v), 0, "read at 0x%lx", (unsigned long)off);
	return (uint32_t)v;
}

static void wr(struct rtc *r, uint64_t off, uint32_t val)
{
	cr_assert_eq(rtc_write(r, off, 4, val), 0, "write at 0x%lx", (unsigned long)off);
}

static uint64_t read_time(struct rtc *r)
{
	uint64_t lo = rd(r, RTC_TIME_LOW);

	return (uint64_t)rd(r, RTC_TIME_HIGH) << 32 | lo;
}

Test(rtc, time_is_the_host_clock_with_the_high_half_latched)
{
	struct fake f;
	struct rtc *r = make(&f, 0x00000005fffffff0ull);
	uint32_t lo = rd(r, RTC_TIME_LOW);

	/* The host clock crosses a 2^32 boundary between the two reads. */
	f.now = 0x0000000600000010ull;
	cr_assert_eq(rd(r, RTC_TIME_HIGH), 5, "TIME_HIGH belongs to the TIME_LOW read");
	cr_assert_eq(lo, 0xfffffff0u);
	cr_assert_eq(read_time(r), 0x0000000600000010ull);
	rtc_destroy(r);
}

Test(rtc, the_real_host_clock_by_default)
{
	struct rtc_params p = { 0 };
	struct rtc *r = NULL;
	struct timespec ts;
	uint64_t t;

	cr_assert_eq(rtc_create(&p, &r), 0);
	t = read_time(r);
	clock_gettime(CLOCK_REALTIME, &ts);
	cr_assert_leq(t / 1000000000ull, (uint64_t)ts.tv_sec);
	cr_assert_geq(t / 1000000000ull + 2, (uint64_t)ts.tv_sec);
	rtc_destroy(r);
}

Test(rtc, setting_the_time_keeps_an_offset_that_a_restore_drops)
{
	struct fake f;
	struct rtc *r = make(&f, 1000ull * 1000000000ull);
	Cloister__VmState state = CLOISTER__VM_STATE__INIT;
	char err[64];

	wr(r, RTC_TIME_HIGH, 0);
	wr(r, RTC_TIME_LOW, 500);
	f.now += 100;
	cr_assert_eq(read_time(r), 600);
	cr_assert_eq(rtc_component_ops.save(r, &state, err, sizeof(err)), 0);
	f.now = 5000ull * 1000000000ull;
	cr_assert_eq(rtc_component_ops.restore(r, &state, err, sizeof(err)), 0);
	cr_assert_eq(read_time(r), f.now, "a restored guest reads the host's time of now");
	rtc_destroy(r);
}

Test(rtc, an_alarm_fires_when_due_and_is_acknowledged)
{
	struct fake f;
	struct rtc *r = make(&f, 1000);

	wr(r, RTC_ALARM_HIGH, 0);
	wr(r, RTC_ALARM_LOW, 2000);
	wr(r, RTC_IRQ_ENABLED, 1);
	cr_assert_eq(rd(r, RTC_ALARM_STATUS), 1);
	cr_assert_not(f.line);
	f.now = 2500;
	cr_assert_eq(rd(r, RTC_ALARM_STATUS), 0, "fired");
	cr_assert(f.line);
	wr(r, RTC_CLEAR_INTERRUPT, 1);
	cr_assert_not(f.line);
	/* An alarm already due fires as it is armed; a cleared one never. */
	wr(r, RTC_ALARM_LOW, 100);
	cr_assert(f.line);
	wr(r, RTC_CLEAR_INTERRUPT, 1);
	wr(r, RTC_ALARM_LOW, 9000);
	wr(r, RTC_CLEAR_ALARM, 1);
	f.now = 10000;
	cr_assert_eq(rd(r, RTC_ALARM_STATUS), 0);
	cr_assert_not(f.line);
	rtc_destroy(r);
}

Test(rtc, the_interrupt_stays_low_while_disabled)
{
	struct fake f;
	struct rtc *r = make(&f, 1000);

	wr(r, RTC_ALARM_LOW, 10);
	cr_assert_not(f.line);
	wr(r, RTC_IRQ_ENABLED, 1);
	cr_assert(f.line, "the pending alarm shows once enabled");
	rtc_destroy(r);
}

Test(rtc, bad_accesses_fault)
{
	struct fake f;
	struct rtc *r = make(&f, 1000);
	uint64_t v;

	cr_assert_eq(rtc_read(r, RTC_TIME_LOW, 8, &v), -EFAULT);
	cr_assert_eq(rtc_read(r, RTC_TIME_LOW, 1, &v), -EFAULT);
	cr_assert_eq(rtc_read(r, 0x20, 4, &v), -EFAULT);
	cr_assert_eq(rtc_read(r, 0x02, 4, &v), -EFAULT);
	cr_assert_eq(rtc_write(r, 0xffc, 4, 0), -EFAULT);
	rtc_destroy(r);
}
