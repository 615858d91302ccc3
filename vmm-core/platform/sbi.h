/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The SBI firmware the VMM plays for its guests: decodes one VCPU_EXIT_SBI
 * and serves it through the host callbacks below. Extensions: BASE, legacy
 * console putchar/getchar (0x01/0x02), TIME, IPI, RFENCE, HSM, SRST, DBCN.
 */
#ifndef CLOISTER_SBI_H
#define CLOISTER_SBI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "accel.h"

/* SBI error codes (returned in a0). */
enum {
	SBI_SUCCESS = 0,
	SBI_ERR_FAILED = -1,
	SBI_ERR_NOT_SUPPORTED = -2,
	SBI_ERR_INVALID_PARAM = -3,
	SBI_ERR_DENIED = -4,
	SBI_ERR_INVALID_ADDRESS = -5,
	SBI_ERR_ALREADY_AVAILABLE = -6,
	SBI_ERR_ALREADY_STARTED = -7,
	SBI_ERR_ALREADY_STOPPED = -8,
};

/* HSM hart states. */
enum {
	SBI_HSM_STARTED = 0,
	SBI_HSM_STOPPED = 1,
	SBI_HSM_START_PENDING = 2,
	SBI_HSM_STOP_PENDING = 3,
};

/* What the SBI layer needs from the machine. All may be called from any vCPU thread. */
struct sbi_host_ops {
	/*
	 * Console output for hart self: returns how many bytes of buf it took.
	 * While the host side is full it waits (the hart stalls, as on a
	 * console with flow control) until there is room for at least one
	 * byte. With whole (legacy putchar, DBCN write_byte: calls that cannot
	 * report "busy"), it takes all of buf; without (DBCN write, which
	 * returns a count), it may take less, never nothing.
	 */
	size_t (*console_write)(void *opaque, unsigned self, const void *buf, size_t len,
				bool whole);
	/* One byte of console input, or -1 when there is none. */
	int (*console_read)(void *opaque);
	/* Copies guest physical memory (DBCN); 0 or -EFAULT when not all RAM. */
	int (*guest_read)(void *opaque, uint64_t gpa, void *buf, size_t len);
	int (*guest_write)(void *opaque, uint64_t gpa, const void *buf, size_t len);
	/* HSM. Return an SBI error code. hart_stop is for the calling hart. */
	int (*hart_start)(void *opaque, unsigned hartid, uint64_t start_addr, uint64_t arg);
	int (*hart_stop)(void *opaque, unsigned self);
	int (*hart_status)(void *opaque, unsigned hartid);	/* SBI_HSM_* or SBI_ERR_INVALID_PARAM */
	/* IPI: raise SSIP on hartid and wake it. */
	void (*send_ipi)(void *opaque, unsigned hartid);
	/* RFENCE: make hartid drop its cached translations (and decoded code). */
	void (*remote_fence)(void *opaque, unsigned hartid);
	/* TIME: program the calling hart's timer (and clear its pending STIP). */
	void (*set_timer)(void *opaque, unsigned self, uint64_t deadline);
	/* SRST: type is SBI's reset type (0 shutdown, 1 cold reboot, 2 warm reboot). */
	void (*system_reset)(void *opaque, uint32_t type, uint32_t reason);
	unsigned n_harts;
};

struct sbi_result {
	int64_t error;		/* a0 */
	int64_t value;		/* a1 */
	/* The call does not return to the guest (hart_stop, system_reset succeeded):
	 * leave a0/a1 and the hart alone. */
	bool no_return;
};

/* Serves one SBI call made by hart self. Never fails: unknown calls give SBI_ERR_NOT_SUPPORTED. */
void sbi_dispatch(const struct sbi_host_ops *ops, void *opaque, unsigned self,
		  const struct vcpu_exit *exit, struct sbi_result *ret);

/* SBI spec version reported by BASE (2.0), and the implementation ID we report. */
#define SBI_SPEC_VERSION ((2u << 24) | 0u)
#define SBI_IMPL_ID_CLOISTER 0x434cu /* "CL" */

#endif
