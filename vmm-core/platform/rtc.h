/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A goldfish RTC ("google,goldfish-rtc"): 32-bit registers giving the
 * host's wall clock (CLOCK_REALTIME) in nanoseconds since the epoch, plus
 * whatever offset the guest set by writing the time. A guest that reads it
 * after a restore gets the host's time of now, not of the snapshot.
 *
 * The alarm is kept and reported (ALARM_STATUS), and its interrupt is
 * raised when the guest arms an alarm that is already due, or touches the
 * device after it fell due; there is no host timer behind it.
 */
#ifndef CLOISTER_RTC_H
#define CLOISTER_RTC_H

#include <stdbool.h>
#include <stdint.h>

#include "component.h"

enum {
	RTC_TIME_LOW = 0x00,
	RTC_TIME_HIGH = 0x04,
	RTC_ALARM_LOW = 0x08,
	RTC_ALARM_HIGH = 0x0c,
	RTC_IRQ_ENABLED = 0x10,
	RTC_CLEAR_ALARM = 0x14,
	RTC_ALARM_STATUS = 0x18,
	RTC_CLEAR_INTERRUPT = 0x1c,
};

#define RTC_WINDOW_SIZE 0x1000u

struct rtc_params {
	/* The interrupt line; may be NULL. Called with the RTC's lock held. */
	void (*set_irq)(void *opaque, uint32_t irq, bool level);
	uint32_t irq;
	void *opaque;
	/* Nanoseconds since the epoch; NULL: CLOCK_REALTIME. */
	uint64_t (*now_ns)(void *opaque);
};

struct rtc;

int rtc_create(const struct rtc_params *p, struct rtc **ret_rtc);
void rtc_destroy(struct rtc *r);

/* 32-bit accesses at the register offsets; anything else in the window faults. */
int rtc_read(struct rtc *r, uint64_t offset, unsigned size, uint64_t *ret_val);
int rtc_write(struct rtc *r, uint64_t offset, unsigned size, uint64_t val);

/*
 * The component: passive. Nothing of the RTC is carried in a snapshot on
 * purpose: a restored guest reads the host's clock again, with no offset,
 * no alarm and its interrupt low. obj is the struct rtc.
 */
extern const struct component_ops rtc_component_ops;

#endif
