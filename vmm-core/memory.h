/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Guest RAM: one memfd per region, sealed against shrinking and growing, and
 * a read-only descriptor of each that can be lent to snapshotd. The read-only
 * twins are opened through /proc before the sandbox closes the file system,
 * which is why the memfds are made before their sizes are known.
 */
#ifndef CLOISTER_MEMORY_H
#define CLOISTER_MEMORY_H

#include <stddef.h>
#include <stdint.h>

#include "accel.h"
#include "layout.h"

struct guest_memory {
	size_t n_regions;
	struct guest_ram ram[LAYOUT_MAX_REGIONS];
	int fd[LAYOUT_MAX_REGIONS];	/* read-write */
	int fd_ro[LAYOUT_MAX_REGIONS];	/* the same memory, read-only */
};

/* Creates LAYOUT_MAX_REGIONS empty memfds and their read-only twins. Before the sandbox. */
int memory_prepare(struct guest_memory *mem);
/* Sizes, seals and maps the regions; unused memfds are closed. */
int memory_setup(struct guest_memory *mem, const struct layout_region *regions, size_t n);
/*
 * As memory_setup(), but with memory that already holds the guest (the fd
 * store): region i is rw[i] (read-write) and ro[i] (its read-only twin),
 * each checked (memfd_check()) before it is mapped; the prepared memfds are
 * closed. Takes every fd of rw and ro, used or not. -EINVAL with err set.
 */
int memory_adopt(struct guest_memory *mem, const struct layout_region *regions, size_t n, int *rw,
		 int *ro, char *err, size_t errlen);
void memory_release(struct guest_memory *mem);

/*
 * For an OnDemand restore: a userfaultfd made from dev_fd (an open
 * /dev/userfaultfd), with every region's mapping registered in missing mode.
 * Returns the uffd (non-blocking) or -errno.
 */
int memory_uffd_register(const struct guest_memory *mem, int dev_fd);

/* Host pointer for [gpa, gpa + len) when it lies inside one region, else NULL. */
void *memory_host_ptr(const struct guest_memory *mem, uint64_t gpa, uint64_t len);
int memory_read(const struct guest_memory *mem, uint64_t gpa, void *buf, size_t len);
int memory_write(const struct guest_memory *mem, uint64_t gpa, const void *buf, size_t len);

#endif
