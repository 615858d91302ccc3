/* SPDX-License-Identifier: Apache-2.0 */
#include "memory.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cleanup.h"
#include "errmsg.h"
#include "log.h"
#include "memfd_check.h"

int memory_prepare(struct guest_memory *mem)
{
	*mem = (struct guest_memory){ 0 };
	for (size_t i = 0; i < LAYOUT_MAX_REGIONS; i++)
		mem->fd[i] = mem->fd_ro[i] = -1;

	for (size_t i = 0; i < LAYOUT_MAX_REGIONS; i++) {
		char name[32], path[64];

		snprintf(name, sizeof(name), "guest-ram-%zu", i);
		mem->fd[i] = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
		if (mem->fd[i] < 0)
			goto fail;
		snprintf(path, sizeof(path), "/proc/self/fd/%d", mem->fd[i]);
		mem->fd_ro[i] = open(path, O_RDONLY | O_CLOEXEC);
		if (mem->fd_ro[i] < 0)
			goto fail;
	}
	return 0;
fail:
	log_error("cannot create guest memory: %m");
	int err = -errno;
	memory_release(mem);
	return err;
}

int memory_setup(struct guest_memory *mem, const struct layout_region *regions, size_t n)
{
	if (n == 0 || n > LAYOUT_MAX_REGIONS)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		void *host;

		if (ftruncate(mem->fd[i], (off_t)regions[i].size) < 0 ||
		    fcntl(mem->fd[i], F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) {
			log_error("cannot size guest memory region %zu: %m", i);
			return -errno;
		}
		host = mmap(NULL, regions[i].size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE,
			    mem->fd[i], 0);
		if (host == MAP_FAILED) {
			log_error("cannot map guest memory region %zu: %m", i);
			return -errno;
		}
		mem->ram[i] = (struct guest_ram){ .gpa = regions[i].gpa, .size = regions[i].size,
						  .host = host };
	}
	for (size_t i = n; i < LAYOUT_MAX_REGIONS; i++) {
		cleanup_closep(&mem->fd[i]);
		cleanup_closep(&mem->fd_ro[i]);
		mem->fd[i] = mem->fd_ro[i] = -1;
	}
	mem->n_regions = n;
	return 0;
}

static int adopt_check(const struct layout_region *r, size_t i, int rw, int ro, char *err,
		       size_t errlen)
{
	char what[64];
	int e;

	snprintf(what, sizeof(what), "the memfd of region %zu", i);
	e = memfd_check(rw, r->size, O_RDWR, what, err, errlen);
	snprintf(what, sizeof(what), "the read-only memfd of region %zu", i);
	if (e == 0)
		e = memfd_check(ro, r->size, O_RDONLY, what, err, errlen);
	if (e == 0 && (e = memfd_same_file(rw, ro)) < 0)
		err_set(err, errlen, "the two memfds of region %zu are different files", i);
	/* Sealed for good; an fd that already has F_SEAL_SEAL refuses more seals, which is fine. */
	if (e == 0 && !(fcntl(rw, F_GET_SEALS) & F_SEAL_SEAL) && fcntl(rw, F_ADD_SEALS, F_SEAL_SEAL) < 0) {
		err_set(err, errlen, "cannot seal the memfd of region %zu: %m", i);
		e = -errno;
	}
	return e;
}

int memory_adopt(struct guest_memory *mem, const struct layout_region *regions, size_t n, int *rw,
		 int *ro, char *err, size_t errlen)
{
	int r = n == 0 || n > LAYOUT_MAX_REGIONS ? -EINVAL : 0;

	if (r < 0)
		err_set(err, errlen, "%zu memory regions", n);
	for (size_t i = 0; r == 0 && i < n; i++)
		r = adopt_check(&regions[i], i, rw[i], ro[i], err, errlen);
	for (size_t i = 0; i < LAYOUT_MAX_REGIONS; i++) {
		cleanup_closep(&mem->fd[i]);
		cleanup_closep(&mem->fd_ro[i]);
		mem->fd[i] = mem->fd_ro[i] = -1;
		if (r == 0 && i < n) {
			mem->fd[i] = TAKE_FD(rw[i]);
			mem->fd_ro[i] = TAKE_FD(ro[i]);
		}
	}
	for (size_t i = 0; i < n && i < LAYOUT_MAX_REGIONS; i++) {
		cleanup_closep(&rw[i]);
		cleanup_closep(&ro[i]);
	}
	if (r < 0)
		return r;
	for (size_t i = 0; i < n; i++) {
		void *host = mmap(NULL, regions[i].size, PROT_READ | PROT_WRITE,
				  MAP_SHARED | MAP_NORESERVE, mem->fd[i], 0);

		if (host == MAP_FAILED) {
			err_set(err, errlen, "cannot map guest memory region %zu: %m", i);
			return -errno;
		}
		mem->ram[i] = (struct guest_ram){ .gpa = regions[i].gpa, .size = regions[i].size,
						  .host = host };
		mem->n_regions = i + 1;
	}
	return 0;
}

void memory_release(struct guest_memory *mem)
{
	for (size_t i = 0; i < mem->n_regions; i++)
		if (mem->ram[i].host)
			munmap(mem->ram[i].host, mem->ram[i].size);
	for (size_t i = 0; i < LAYOUT_MAX_REGIONS; i++) {
		cleanup_closep(&mem->fd[i]);
		cleanup_closep(&mem->fd_ro[i]);
		mem->fd[i] = mem->fd_ro[i] = -1;
	}
	mem->n_regions = 0;
}

void *memory_host_ptr(const struct guest_memory *mem, uint64_t gpa, uint64_t len)
{
	for (size_t i = 0; i < mem->n_regions; i++) {
		const struct guest_ram *r = &mem->ram[i];

		if (gpa >= r->gpa && gpa - r->gpa <= r->size && len <= r->size - (gpa - r->gpa))
			return r->host + (gpa - r->gpa);
	}
	return NULL;
}

int memory_read(const struct guest_memory *mem, uint64_t gpa, void *buf, size_t len)
{
	const void *src = memory_host_ptr(mem, gpa, len);

	if (!src)
		return -EFAULT;
	memcpy(buf, src, len);
	return 0;
}

int memory_write(const struct guest_memory *mem, uint64_t gpa, const void *buf, size_t len)
{
	void *dst = memory_host_ptr(mem, gpa, len);

	if (!dst)
		return -EFAULT;
	memcpy(dst, buf, len);
	return 0;
}

int memory_uffd_register(const struct guest_memory *mem, int dev_fd)
{
	struct uffdio_api api = { .api = UFFD_API, .features = UFFD_FEATURE_MISSING_SHMEM };
	_cleanup_close_ int uffd = ioctl(dev_fd, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);

	if (uffd < 0 || ioctl(uffd, UFFDIO_API, &api) < 0) {
		log_error("cannot make a userfaultfd for guest memory: %m");
		return -errno;
	}
	for (size_t i = 0; i < mem->n_regions; i++) {
		struct uffdio_register reg = {
			.range = { .start = (uint64_t)(uintptr_t)mem->ram[i].host, .len = mem->ram[i].size },
			.mode = UFFDIO_REGISTER_MODE_MISSING,
		};

		if (ioctl(uffd, UFFDIO_REGISTER, &reg) < 0) {
			log_error("cannot register guest memory region %zu for faults: %m", i);
			return -errno;
		}
		if (!(reg.ioctls & (1ull << _UFFDIO_COPY))) {
			log_error("guest memory region %zu cannot be filled through its userfaultfd", i);
			return -EOPNOTSUPP;
		}
	}
	return TAKE_FD(uffd);
}
