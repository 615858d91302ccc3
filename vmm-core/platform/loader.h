/* SPDX-License-Identifier: Apache-2.0 */
/* Loads a boot payload into guest RAM: an ELF, or a RISC-V Linux Image. */
#ifndef CLOISTER_LOADER_H
#define CLOISTER_LOADER_H

#include <stddef.h>
#include <stdint.h>

#include "accel.h"

struct loaded_payload {
	uint64_t entry;		/* where hart 0 starts */
	uint64_t load_start;	/* lowest guest address written */
	uint64_t load_end;	/* one past the highest */
};

/*
 * Loads the kernel read from fd (read with pread, never through a path).
 * ELF64 RISC-V: each PT_LOAD at its p_paddr, bss zeroed, entry e_entry.
 * RISC-V Image ("RSC\x05" at 0x38): at the first RAM base + text_offset
 * (2 MiB when the header says 0), entry at its start.
 * Everything must land inside ram[]; otherwise -EINVAL, as for a truncated
 * or malformed file. Returns 0 or -errno.
 */
int loader_load_kernel(int fd, const struct guest_ram *ram, size_t n_ram,
		       struct loaded_payload *ret);

/* Copies the whole file read from fd to gpa (initramfs). Returns its size or -errno. */
int64_t loader_load_blob(int fd, const struct guest_ram *ram, size_t n_ram, uint64_t gpa);

#endif
