/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

#include <stdint.h>

/*
 * The gateway's progress page for a save (SnapdSave.progress_fd): a sealed
 * memfd whose first 8 bytes count the bytes of guest memory written out.
 * The counter, mapped read-write, or -errno when fd is not such a page.
 */
int save_progress_map(int fd, uint64_t **ret_count);

void save_progress_unmap(uint64_t *count);
