/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The transport driving the real cloister-blk program, sandboxed as in
 * production, with forbidden syscalls reported (CLOISTER_SECCOMP_TRAP=1) so
 * a missing policy entry fails here with its name.
 */
#include <criterion/criterion.h>
#include <endian.h>
#include <fcntl.h>
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
#define IMAGE_BYTES (1u << 20)
#define HDR 0x10000u
#define DATA 0x11000u
#define STATUS 0x20000u

/* Feature bits 2 (SEG_MAX), 6 (BLK_SIZE), 9 (FLUSH), 13 (DISCARD), 14 (WRITE_ZEROES). */
#define DRIVER_FEATURES_LO ((1u << 2) | (1u << 6) | (1u << 9) | (1u << 13) | (1u << 14))

static uint8_t *ram;
static uint16_t avail_idx;
static struct virtio_mmio_dev *dev;

static pid_t spawn_blk(int image_fd, int *ret_sock)
{
	const char *prog = getenv("CLOISTER_BLK");
	int sv[2];
	pid_t pid;

	cr_assert_not_null(prog, "CLOISTER_BLK must name the cloister-blk binary");
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		if (dup2(sv[1], 3) < 0 || dup2(image_fd, 4) < 0)
			_exit(127);
		setenv("CLOISTER_SECCOMP_TRAP", "1", 1);
		execl(prog, prog, "disk0", "--uid", "65534", "--gid", "65534", (char *)NULL);
		_exit(127);
	}
	close(sv[1]);
	*ret_sock = sv[0];
	return pid;
}

static void wr(uint64_t off, uint32_t v)
{
	cr_assert_eq(virtio_mmio_write(dev, off, 4, v), 0);
}

static uint32_t rd(uint64_t off)
{
	uint64_t v;

	cr_assert_eq(virtio_mmio_read(dev, off, 4, &v), 0);
	return (uint32_t)v;
}

static void bring_up(void)
{
	const uint32_t up = VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
			    VIRTIO_STATUS_FEATURES_OK;

	wr(VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	wr(VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
	cr_assert_eq(rd(VIRTIO_MMIO_DEVICE_FEATURES) & DRIVER_FEATURES_LO, DRIVER_FEATURES_LO);
	wr(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
	wr(VIRTIO_MMIO_DRIVER_FEATURES, DRIVER_FEATURES_LO);
	wr(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
	wr(VIRTIO_MMIO_DRIVER_FEATURES, 1); /* VERSION_1 */
	wr(VIRTIO_MMIO_STATUS, up);
	cr_assert_eq(rd(VIRTIO_MMIO_STATUS), up);
	wr(VIRTIO_MMIO_QUEUE_SEL, 0);
	wr(VIRTIO_MMIO_QUEUE_NUM, QSIZE);
	wr(VIRTIO_MMIO_QUEUE_DESC_LOW, (uint32_t)RAM_BASE);
	wr(VIRTIO_MMIO_QUEUE_DRIVER_LOW, (uint32_t)(RAM_BASE + 0x1000));
	wr(VIRTIO_MMIO_QUEUE_DEVICE_LOW, (uint32_t)(RAM_BASE + 0x2000));
	wr(VIRTIO_MMIO_QUEUE_READY, 1);
	wr(VIRTIO_MMIO_STATUS, up | VIRTIO_STATUS_DRIVER_OK);
	cr_assert_eq(rd(VIRTIO_MMIO_STATUS), up | VIRTIO_STATUS_DRIVER_OK);
}

static void desc(uint16_t i, uint32_t off, uint32_t len, uint16_t flags, uint16_t next)
{
	uint64_t addr = htole64(RAM_BASE + off);
	uint32_t l = htole32(len);
	uint16_t f = htole16(flags), n = htole16(next);

	memcpy(ram + 16u * i, &addr, 8);
	memcpy(ram + 16u * i + 8, &l, 4);
	memcpy(ram + 16u * i + 12, &f, 2);
	memcpy(ram + 16u * i + 14, &n, 2);
}

/* Header, optional data (writable for a read), status; waits for completion and returns the status. */
static uint8_t request(uint32_t type, uint64_t sector, uint32_t data_len, bool data_in)
{
	uint32_t t = htole32(type);
	uint64_t s = htole64(sector);
	uint16_t idx;

	memset(ram + HDR, 0, 16);
	memcpy(ram + HDR, &t, 4);
	memcpy(ram + HDR + 8, &s, 8);
	ram[STATUS] = 0xff;
	desc(0, HDR, 16, 1, data_len ? 1 : 2);
	if (data_len)
		desc(1, DATA, data_len, 1 | (data_in ? 2 : 0), 2);
	desc(2, STATUS, 1, 2, 0);
	memcpy(ram + 0x1004 + 2u * (avail_idx % QSIZE), "\0\0", 2);
	avail_idx++;
	idx = htole16(avail_idx);
	__atomic_store_n((uint16_t *)(ram + 0x1002), idx, __ATOMIC_RELEASE);
	wr(VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	for (int i = 0; i < 300 && le16toh(__atomic_load_n((uint16_t *)(ram + 0x2002),
							   __ATOMIC_ACQUIRE)) != avail_idx; i++)
		usleep(10000);
	cr_assert_eq(le16toh(*(uint16_t *)(ram + 0x2002)), avail_idx, "request not completed");
	return ram[STATUS];
}

static int image_create(void)
{
	char path[] = "/tmp/cloister-blk-proc-XXXXXX";
	int fd = mkostemp(path, O_CLOEXEC);

	cr_assert(fd >= 0);
	unlink(path);
	cr_assert_eq(ftruncate(fd, IMAGE_BYTES), 0);
	return fd;
}

Test(blk_process, serves_io_in_its_sandbox, .timeout = 60)
{
	int memfd = memfd_create("ram", MFD_CLOEXEC), image = image_create(), sock, status;
	struct virtio_mem_region region = { .gpa = RAM_BASE, .size = RAM_SIZE, .fd = memfd };
	struct virtio_mmio_params p = { .id = "disk0", .mem = &region, .n_mem = 1 };
	Cloister__DeviceState *state = NULL;
	uint8_t pattern[4096], got[4096];
	uint8_t id[20] = "disk0";
	pid_t pid;

	cr_assert_eq(ftruncate(memfd, RAM_SIZE), 0);
	ram = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
	cr_assert(ram != MAP_FAILED);
	pid = spawn_blk(image, &sock);
	p.sock = sock;
	cr_assert_eq(virtio_mmio_attach(&p, &dev), 0);
	cr_assert_eq(rd(VIRTIO_MMIO_DEVICE_ID), 2);
	cr_assert_eq(rd(VIRTIO_MMIO_CONFIG), IMAGE_BYTES / 512, "capacity, low word");
	cr_assert_eq(rd(VIRTIO_MMIO_CONFIG + 4), 0, "capacity, high word");
	cr_assert_eq(rd(VIRTIO_MMIO_CONFIG + 20), 512, "blk_size");
	bring_up();

	for (size_t i = 0; i < sizeof(pattern); i++)
		pattern[i] = (uint8_t)(i * 13 + 1);
	memcpy(ram + DATA, pattern, sizeof(pattern));
	cr_assert_eq(request(1, 8, sizeof(pattern), false), 0, "write");
	cr_assert_eq(request(4, 0, 0, false), 0, "flush");
	cr_assert_eq(pread(image, got, sizeof(got), 8 * 512), (ssize_t)sizeof(got));
	cr_assert_arr_eq(got, pattern, sizeof(got));
	memset(ram + DATA, 0, sizeof(pattern));
	cr_assert_eq(request(0, 8, sizeof(pattern), true), 0, "read");
	cr_assert_arr_eq(ram + DATA, pattern, sizeof(pattern));
	cr_assert_eq(request(8, 0, 20, true), 0, "get id");
	cr_assert_arr_eq(ram + DATA, id, sizeof(id));

	/* write zeroes with unmap: sector 8, 8 sectors, flags UNMAP */
	memset(ram + DATA, 0, 16);
	ram[DATA] = 8;
	ram[DATA + 8] = 8;
	ram[DATA + 12] = 1;
	cr_assert_eq(request(13, 0, 16, false), 0, "write zeroes");
	ram[DATA + 12] = 0;
	cr_assert_eq(request(11, 0, 16, false), 0, "discard");
	cr_assert_eq(pread(image, got, sizeof(got), 8 * 512), (ssize_t)sizeof(got));
	for (size_t i = 0; i < sizeof(got); i++)
		cr_assert_eq(got[i], 0);
	cr_assert_eq(request(0, IMAGE_BYTES / 512, 512, true), 1, "past the end");

	cr_assert_eq(virtio_mmio_pause(dev), 0);
	cr_assert_eq(virtio_mmio_save(dev, &state), 0);
	cr_assert_eq(state->blob.len, 16, "the disk's shape is saved");
	cr_assert_eq(state->requests_served, 7);
	virtio_mmio_state_free(state);
	virtio_mmio_destroy(dev);
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		  "blk must exit 0 on EOF (status %#x; 159 is a forbidden syscall)", status);
	close(image);
}
