/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The goldfish RTC's registers. Reading TIME_LOW latches the high half for
 * the TIME_HIGH read that follows, so the two halves are of one instant;
 * writing TIME_HIGH then TIME_LOW sets the guest's clock, kept as an offset
 * from the host's.
 */
#include "rtc.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

struct rtc {
	pthread_mutex_t lock;
	struct rtc_params params;
	int64_t offset_ns;
	uint32_t time_high_latch, time_high_set, alarm_high;
	uint64_t alarm_ns;
	bool alarm_armed, irq_enabled, irq_pending;
};

static uint64_t rtc_host_ns(void *opaque)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int rtc_create(const struct rtc_params *p, struct rtc **ret_rtc)
{
	struct rtc *r = calloc(1, sizeof(*r));

	if (!r)
		return -ENOMEM;
	pthread_mutex_init(&r->lock, NULL);
	r->params = *p;
	if (!r->params.now_ns)
		r->params.now_ns = rtc_host_ns;
	*ret_rtc = r;
	return 0;
}

void rtc_destroy(struct rtc *r)
{
	if (!r)
		return;
	pthread_mutex_destroy(&r->lock);
	free(r);
}

/* With the lock held. */
static uint64_t rtc_now(struct rtc *r)
{
	return r->params.now_ns(r->params.opaque) + (uint64_t)r->offset_ns;
}

/* With the lock held: a due alarm fires once, then the line follows the pending bit. */
static void rtc_update(struct rtc *r)
{
	if (r->alarm_armed && rtc_now(r) >= r->alarm_ns) {
		r->alarm_armed = false;
		r->irq_pending = true;
	}
	if (r->params.set_irq)
		r->params.set_irq(r->params.opaque, r->params.irq, r->irq_pending && r->irq_enabled);
}

static int rtc_read_locked(struct rtc *r, uint64_t offset, uint32_t *ret_val)
{
	uint64_t now;

	switch (offset) {
	case RTC_TIME_LOW:
		now = rtc_now(r);
		r->time_high_latch = (uint32_t)(now >> 32);
		*ret_val = (uint32_t)now;
		return 0;
	case RTC_TIME_HIGH:
		*ret_val = r->time_high_latch;
		return 0;
	case RTC_ALARM_STATUS:
		*ret_val = r->alarm_armed;
		return 0;
	case RTC_ALARM_LOW:
	case RTC_ALARM_HIGH:
	case RTC_IRQ_ENABLED:
	case RTC_CLEAR_ALARM:
	case RTC_CLEAR_INTERRUPT:
		*ret_val = 0;
		return 0;
	}
	return -EFAULT;
}

static int rtc_write_locked(struct rtc *r, uint64_t offset, uint32_t val)
{
	uint64_t t;

	switch (offset) {
	case RTC_TIME_LOW:
		t = (uint64_t)r->time_high_set << 32 | val;
		r->offset_ns = (int64_t)(t - r->params.now_ns(r->params.opaque));
		return 0;
	case RTC_TIME_HIGH:
		r->time_high_set = val;
		return 0;
	case RTC_ALARM_LOW:
		r->alarm_ns = (uint64_t)r->alarm_high << 32 | val;
		r->alarm_armed = true;
		return 0;
	case RTC_ALARM_HIGH:
		r->alarm_high = val;
		return 0;
	case RTC_IRQ_ENABLED:
		r->irq_enabled = val & 1;
		return 0;
	case RTC_CLEAR_ALARM:
		r->alarm_armed = false;
		return 0;
	case RTC_CLEAR_INTERRUPT:
		r->irq_pending = false;
		return 0;
	case RTC_ALARM_STATUS:
		return 0;
	}
	return -EFAULT;
}

int rtc_read(struct rtc *r, uint64_t offset, unsigned size, uint64_t *ret_val)
{
	uint32_t val = 0;
	int err;

	if (size != 4)
		return -EFAULT;
	pthread_mutex_lock(&r->lock);
	/* A due alarm fires first, so ALARM_STATUS reads as fired. */
	rtc_update(r);
	err = rtc_read_locked(r, offset, &val);
	pthread_mutex_unlock(&r->lock);
	if (err == 0)
		*ret_val = val;
	return err;
}

int rtc_write(struct rtc *r, uint64_t offset, unsigned size, uint64_t val)
{
	int err;

	if (size != 4)
		return -EFAULT;
	pthread_mutex_lock(&r->lock);
	err = rtc_write_locked(r, offset, (uint32_t)val);
	rtc_update(r);
	pthread_mutex_unlock(&r->lock);
	return err;
}

static int rtc_component_save(void *obj, Cloister__VmState *state, char *err, size_t errlen)
{
	/* Deliberately nothing: see rtc.h. */
	return 0;
}

static int rtc_component_restore(void *obj, const Cloister__VmState *state, char *err,
				 size_t errlen)
{
	struct rtc *r = obj;

	pthread_mutex_lock(&r->lock);
	r->offset_ns = 0;
	r->alarm_armed = false;
	r->irq_enabled = false;
	r->irq_pending = false;
	rtc_update(r);
	pthread_mutex_unlock(&r->lock);
	return 0;
}

const struct component_ops rtc_component_ops = {
	.save = rtc_component_save,
	.restore = rtc_component_restore,
};
