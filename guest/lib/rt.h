/* SPDX-License-Identifier: Apache-2.0 */
/* The bare-metal guest runtime: entry, SBI calls, console, FDT facts, virtio-rng. */
#ifndef GUEST_RT_H
#define GUEST_RT_H

#define GUEST_MAX_HARTS 64
#define GUEST_STACK_SIZE 8192

#ifndef __ASSEMBLER__

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Provided by each guest program. */
void boot_main(unsigned long hartid, const void *fdt);
void secondary_main(unsigned long hartid, unsigned long opaque);

/* start.S */
void _secondary_start(void);

/* SBI calls (sbi.c). Each returns the SBI error code; values through pointers. */
struct sbiret {
	long error;
	long value;
};
struct sbiret sbi_call(unsigned long ext, unsigned long fid, unsigned long a0,
		       unsigned long a1, unsigned long a2);
long sbi_probe_extension(unsigned long ext);
long sbi_hart_start(unsigned long hartid, unsigned long start, unsigned long opaque);
void sbi_set_timer(uint64_t deadline);
void sbi_shutdown(void) __attribute__((noreturn));

/* The console: a whole line per call, never interleaved with another hart's. */
void console_write(const char *buf, size_t len);
int gprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int gsnprintf(char *buf, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int gvsnprintf(char *buf, size_t size, const char *fmt, va_list ap);

/* Time. */
static inline uint64_t rdtime(void)
{
	uint64_t t;

	__asm__ volatile("rdtime %0" : "=r"(t));
	return t;
}
/* Sleeps until the time CSR reaches deadline, in wfi with only STIE enabled. */
void sleep_until(uint64_t deadline);

/* What the device tree tells us (fdt.c). */
#define FDT_INFO_MAX_MEM 8
#define FDT_INFO_MAX_VIRTIO 16
struct fdt_info {
	unsigned n_harts;
	uint64_t timebase_hz;
	unsigned n_mem;
	struct { uint64_t base, size; } mem[FDT_INFO_MAX_MEM];
	unsigned n_virtio;
	uint64_t virtio[FDT_INFO_MAX_VIRTIO];
	uint64_t fdt_base, fdt_size;
};
/* Returns 0, or -1 when fdt is not a device tree we can read. */
int fdt_read_info(const void *fdt, struct fdt_info *info);

/* Starts every hart of 0..n_harts-1 but self at _secondary_start. */
void start_other_harts(unsigned long self, unsigned n_harts);

/* virtio-rng over virtio-mmio v2, polled (virtio_rng.c). */
struct virtio_rng;
/* Returns the device at base if it is an entropy device we could set up, else NULL. */
struct virtio_rng *virtio_rng_init(uint64_t base);
/* Fills len bytes; 0, or -1 after timeout_ticks of time without an answer. */
int virtio_rng_read(struct virtio_rng *rng, uint8_t *buf, size_t len, uint64_t timeout_ticks);

/* The compiler may call these even in freestanding code. */
void *memset(void *s, int c, size_t n);
void *memcpy(void *dst, const void *src, size_t n);
void *memmove(void *dst, const void *src, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
int strncmp(const char *a, const char *b, size_t n);

#endif
#endif
