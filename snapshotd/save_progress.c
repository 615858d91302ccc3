/* SPDX-License-Identifier: Apache-2.0 */
#include "save_progress.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <sys/mman.h>
#include <sys/stat.h>

#define PAGE 4096

int save_progress_map(int fd, uint64_t **ret_count)
{
	struct stat st;
	int seals = fcntl(fd, F_GET_SEALS);
	void *p;

	/* Sealed against shrinking, so the mapping cannot turn into SIGBUS under us. */
	if (seals < 0 || !(seals & F_SEAL_SHRINK) || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
	    st.st_size < PAGE)
		return -EINVAL;
	p = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		return -errno;
	*ret_count = p;
	__atomic_store_n(*ret_count, 0, __ATOMIC_RELAXED);
	return 0;
}

void save_progress_unmap(uint64_t *count)
{
	if (count)
		munmap(count, PAGE);
}
