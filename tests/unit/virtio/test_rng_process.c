/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The transport driving the real cloister-rng program (sandboxed as it would
 * be in production) through a guest-style bring-up and one request.
 */
#include <criterion/criterion.h>
#include <endian.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mmio.h"

#define RAM_BASE 0x80000000ull
#define RAM_SIZE (1ull << 20)
#define QSIZE 16u

static pid_t spawn_rng(int *ret_sock)
{
	const char *prog = getenv("CLOISTER_RNG");
	int sv[2];
	pid_t pid;

	cr_assert_not_null(prog, "CLOISTER_RNG must name the cloister-rng binary");
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		if (dup2(sv[1], 3) < 0)
			_exit(127);
		execl(prog, prog, "rng0", "--uid", "65534", "--gid", "65534", (char *)NULL);
		_exit(127);
	}
	close(sv[1]);
	*ret_sock = sv[0];
	return pid;
}

static void wr(struct virtio_mmio_dev *d, uint64_t off, uint32_t v)
{
	cr_assert_eq(virtio_mmio_write(d, off, 4, v), 0);
}

static uint32_t rd(struct virtio_mmio_dev *d, uint64_t off)
{
	uint64_t v;

	cr_assert_eq(virtio_mmio_read(d, off, 4, &v), 0);
	return (uint32_t)v;
}

static void bring_up(struct virtio_mmio_dev *d)
{
	const uint32_t up = VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
			    VIRTIO_STATUS_FEATURES_OK;

	wr(d, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	wr(d, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
	wr(d, VIRTIO_MMIO_DRIVER_FEATURES, 1); /* VERSION_1 */
	wr(d, VIRTIO_MMIO_STATUS, up);
	cr_assert_eq(rd(d, VIRTIO_MMIO_STATUS), up);
	wr(d, VIRTIO_MMIO_QUEUE_SEL, 0);
	wr(d, VIRTIO_MMIO_QUEUE_NUM, QSIZE);
	wr(d, VIRTIO_MMIO_QUEUE_DESC_LOW, (uint32_t)RAM_BASE);
	wr(d, VIRTIO_MMIO_QUEUE_DRIVER_LOW, (uint32_t)(RAM_BASE + 0x1000));
	wr(d, VIRTIO_MMIO_QUEUE_DEVICE_LOW, (uint32_t)(RAM_BASE + 0x2000));
	wr(d, VIRTIO_MMIO_QUEUE_READY, 1);
	wr(d, VIRTIO_MMIO_STATUS, up | VIRTIO_STATUS_DRIVER_OK);
	cr_assert_eq(rd(d, VIRTIO_MMIO_STATUS), up | VIRTIO_STATUS_DRIVER_OK);
}

/* One 32-byte writable buffer at RAM + 0x10000, made available as head 0. */
static void post_buffer(uint8_t *ram)
{
	uint64_t addr = htole64(RAM_BASE + 0x10000);
	uint32_t len = htole32(32);
	uint16_t flags = htole16(2), idx = htole16(1);

	memcpy(ram, &addr, 8);
	memcpy(ram + 8, &len, 4);
	memcpy(ram + 12, &flags, 2);
	memcpy(ram + 0x1004, "\0\0", 2);
	__atomic_store_n((uint16_t *)(ram + 0x1002), idx, __ATOMIC_RELEASE);
}

Test(rng_process, serves_a_request_in_its_sandbox, .timeout = 30)
{
	int memfd = memfd_create("ram", MFD_CLOEXEC), sock, status;
	struct virtio_mem_region ram = { .gpa = RAM_BASE, .size = RAM_SIZE, .fd = memfd };
	struct virtio_mmio_params p = { .id = "rng0", .mem = &ram, .n_mem = 1 };
	struct virtio_mmio_dev *d = NULL;
	uint8_t *host, zero[32] = { 0 };
	uint32_t used_len;
	pid_t pid;

	cr_assert_eq(ftruncate(memfd, RAM_SIZE), 0);
	host = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
	cr_assert(host != MAP_FAILED);
	pid = spawn_rng(&sock);
	p.sock = sock;
	cr_assert_eq(virtio_mmio_attach(&p, &d), 0);
	cr_assert_eq(rd(d, VIRTIO_MMIO_DEVICE_ID), 4);
	bring_up(d);
	post_buffer(host);
	wr(d, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	for (int i = 0; i < 200 && !(rd(d, VIRTIO_MMIO_INTERRUPT_STATUS) & 1); i++)
		usleep(10000);
	cr_assert(rd(d, VIRTIO_MMIO_INTERRUPT_STATUS) & 1, "no used-buffer interrupt");
	cr_assert_eq(le16toh(*(uint16_t *)(host + 0x2002)), 1);
	memcpy(&used_len, host + 0x2008, 4);
	cr_assert_eq(le32toh(used_len), 32);
	cr_assert_neq(memcmp(host + 0x10000, zero, 32), 0);
	cr_assert_eq(virtio_mmio_pause(d), 0);
	virtio_mmio_destroy(d);
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "rng must exit 0 on EOF (status %#x)",
		  status);
}
