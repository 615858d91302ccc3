/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The real cloister-net (on a real tap) and cloister-console programs,
 * sandboxed as in production, driven through the virtio-mmio transport: a
 * forbidden syscall would kill them and fail these tests.
 */
#include <criterion/criterion.h>
#include <endian.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <linux/if_tun.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <netpacket/packet.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mmio.h"

#define RAM_BASE 0x80000000ull
#define RAM_SIZE (1ull << 20)
#define QSIZE 16u
#define Q_DESC(q) (0x4000ull * (q))
#define Q_AVAIL(q) (Q_DESC(q) + 0x1000)
#define Q_USED(q) (Q_DESC(q) + 0x2000)
#define BUFS 0x20000ull
#define ETHERTYPE_TEST 0x88b5 /* local experimental: nothing else on the tap uses it */
#define HDR 12u

static uint8_t *ram;
static uint16_t avail_idx[2];

/* Execs prog with sock on fd 3, host on fd 4 and input (if >= 0) on fd 5. */
static pid_t spawn(const char *env, char *const *args, int sock, int host, int input)
{
	const char *prog = getenv(env);
	pid_t pid;

	cr_assert_not_null(prog, "%s must name the program", env);
	pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		int s = fcntl(sock, F_DUPFD, 10), h = fcntl(host, F_DUPFD, 10);
		int i = input >= 0 ? fcntl(input, F_DUPFD, 10) : -1;

		if (s < 0 || h < 0 || dup2(s, 3) < 0 || dup2(h, 4) < 0)
			_exit(127);
		if (i >= 0 && dup2(i, 5) < 0)
			_exit(127);
		execv(prog, args);
		_exit(127);
	}
	return pid;
}

static void wr(struct virtio_mmio_dev *d, uint64_t off, uint32_t v)
{
	cr_assert_eq(virtio_mmio_write(d, off, 4, v), 0);
}

static uint32_t rd(struct virtio_mmio_dev *d, uint64_t off, unsigned size)
{
	uint64_t v;

	cr_assert_eq(virtio_mmio_read(d, off, size, &v), 0);
	return (uint32_t)v;
}

static void bring_up(struct virtio_mmio_dev *d, uint32_t features_lo)
{
	const uint32_t up = VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
			    VIRTIO_STATUS_FEATURES_OK;

	wr(d, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	wr(d, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
	wr(d, VIRTIO_MMIO_DRIVER_FEATURES, features_lo);
	wr(d, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
	wr(d, VIRTIO_MMIO_DRIVER_FEATURES, 1); /* VERSION_1 */
	wr(d, VIRTIO_MMIO_STATUS, up);
	cr_assert_eq(rd(d, VIRTIO_MMIO_STATUS, 4), up);
	for (uint32_t q = 0; q < 2; q++) {
		wr(d, VIRTIO_MMIO_QUEUE_SEL, q);
		wr(d, VIRTIO_MMIO_QUEUE_NUM, QSIZE);
		wr(d, VIRTIO_MMIO_QUEUE_DESC_LOW, (uint32_t)(RAM_BASE + Q_DESC(q)));
		wr(d, VIRTIO_MMIO_QUEUE_DRIVER_LOW, (uint32_t)(RAM_BASE + Q_AVAIL(q)));
		wr(d, VIRTIO_MMIO_QUEUE_DEVICE_LOW, (uint32_t)(RAM_BASE + Q_USED(q)));
		wr(d, VIRTIO_MMIO_QUEUE_READY, 1);
	}
	wr(d, VIRTIO_MMIO_STATUS, up | VIRTIO_STATUS_DRIVER_OK);
	cr_assert_eq(rd(d, VIRTIO_MMIO_STATUS, 4), up | VIRTIO_STATUS_DRIVER_OK);
}

/* One buffer as a whole chain, made available on queue q. */
static void post(uint32_t q, uint16_t head, uint64_t off, uint32_t len, bool writable)
{
	uint8_t *desc = ram + Q_DESC(q) + 16u * head;
	uint16_t *ring = (uint16_t *)(ram + Q_AVAIL(q));
	uint64_t addr = htole64(RAM_BASE + off);
	uint32_t l = htole32(len);
	uint16_t flags = htole16(writable ? 2 : 0);

	memcpy(desc, &addr, 8);
	memcpy(desc + 8, &l, 4);
	memcpy(desc + 12, &flags, 2);
	ring[2 + avail_idx[q] % QSIZE] = htole16(head);
	avail_idx[q]++;
	__atomic_store_n(&ring[1], htole16(avail_idx[q]), __ATOMIC_RELEASE);
}

static uint16_t used_idx(uint32_t q)
{
	return le16toh(__atomic_load_n((uint16_t *)(ram + Q_USED(q) + 2), __ATOMIC_ACQUIRE));
}

static void used_elem(uint32_t q, uint32_t i, uint32_t *id, uint32_t *len)
{
	memcpy(id, ram + Q_USED(q) + 4 + 8 * (i % QSIZE), 4);
	memcpy(len, ram + Q_USED(q) + 8 + 8 * (i % QSIZE), 4);
	*id = le32toh(*id);
	*len = le32toh(*len);
}

static bool wait_used(uint32_t q, uint16_t n)
{
	for (int i = 0; i < 300 && used_idx(q) < n; i++)
		usleep(10000);
	return used_idx(q) >= n;
}

static struct virtio_mmio_dev *attach(int sock, const char *id, int memfd)
{
	static struct virtio_mem_region region;
	struct virtio_mmio_params p = { .sock = sock, .id = id, .mem = &region, .n_mem = 1 };
	struct virtio_mmio_dev *d = NULL;

	region = (struct virtio_mem_region){ .gpa = RAM_BASE, .size = RAM_SIZE, .fd = memfd };
	cr_assert_eq(virtio_mmio_attach(&p, &d), 0);
	return d;
}

static int guest_ram(void)
{
	int memfd = memfd_create("ram", MFD_CLOEXEC);

	cr_assert_eq(ftruncate(memfd, RAM_SIZE), 0);
	ram = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
	cr_assert(ram != MAP_FAILED);
	avail_idx[0] = avail_idx[1] = 0;
	return memfd;
}

static void finish(struct virtio_mmio_dev *d, pid_t pid)
{
	int status;

	cr_assert_eq(virtio_mmio_pause(d), 0);
	virtio_mmio_destroy(d);
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		  "device must exit 0 on EOF (status %#x)", status);
}

/* A tap as the gateway makes it; -1 when this host cannot (no root, no tun). */
static int open_tap(char *ret_name)
{
	struct ifreq ifr = { .ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR };
	int hdr = HDR, fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC | O_NONBLOCK);

	if (fd < 0)
		return -1;
	strcpy(ifr.ifr_name, "clstnet%d");
	if (ioctl(fd, TUNSETIFF, &ifr) < 0 || ioctl(fd, TUNSETVNETHDRSZ, &hdr) < 0) {
		close(fd);
		return -1;
	}
	strcpy(ret_name, ifr.ifr_name);
	return fd;
}

static void link_up(const char *name)
{
	struct ifreq ifr = { 0 };
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	strcpy(ifr.ifr_name, name);
	cr_assert_eq(ioctl(s, SIOCGIFFLAGS, &ifr), 0);
	ifr.ifr_flags |= IFF_UP;
	cr_assert_eq(ioctl(s, SIOCSIFFLAGS, &ifr), 0);
	close(s);
}

/* A packet socket on the tap's host side, for our test ethertype only. */
static int host_socket(const char *name, struct sockaddr_ll *ret_addr)
{
	int s = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETHERTYPE_TEST));

	cr_assert(s >= 0);
	*ret_addr = (struct sockaddr_ll){
		.sll_family = AF_PACKET,
		.sll_protocol = htons(ETHERTYPE_TEST),
		.sll_ifindex = (int)if_nametoindex(name),
		.sll_halen = 6,
	};
	cr_assert_eq(bind(s, (struct sockaddr *)ret_addr, sizeof(*ret_addr)), 0);
	return s;
}

static const uint8_t guest_mac[6] = { 0x52, 0x54, 0x00, 0xab, 0xcd, 0x01 };

static void make_frame(uint8_t *f, const uint8_t *dst, const uint8_t *src, const char *text)
{
	memset(f, 0, 60);
	memcpy(f, dst, 6);
	memcpy(f + 6, src, 6);
	f[12] = ETHERTYPE_TEST >> 8;
	f[13] = ETHERTYPE_TEST & 0xff;
	memcpy(f + 14, text, strlen(text));
}

/* The guest receive chains, scanned for text (other traffic may come first). */
static bool guest_received(const char *text, uint16_t n_posted)
{
	for (int t = 0; t < 200; t++) {
		for (uint16_t i = 0; i < used_idx(0) && i < n_posted; i++) {
			uint32_t id, len;

			used_elem(0, i, &id, &len);
			if (len >= HDR + 14 + strlen(text) &&
			    memcmp(ram + BUFS + 0x1000 * id + HDR + 14, text, strlen(text)) == 0)
				return ram[BUFS + 0x1000 * id + 10] == 1;
		}
		usleep(10000);
	}
	return false;
}

static void net_tx(struct virtio_mmio_dev *d, int host)
{
	const uint8_t bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
	uint8_t got[128];
	struct pollfd p = { .fd = host, .events = POLLIN };

	memset(ram + BUFS + 0x10000, 0, HDR);
	make_frame(ram + BUFS + 0x10000 + HDR, bcast, guest_mac, "cloister-tx");
	post(1, 0, BUFS + 0x10000, HDR + 60, false);
	wr(d, VIRTIO_MMIO_QUEUE_NOTIFY, 1);
	cr_assert(wait_used(1, 1));
	cr_assert_eq(poll(&p, 1, 2000), 1, "the frame did not reach the host");
	cr_assert_geq(recv(host, got, sizeof(got), 0), 60);
	cr_assert_arr_eq(got + 14, "cloister-tx", 11);
}

static void net_rx(struct virtio_mmio_dev *d, int host, struct sockaddr_ll *addr)
{
	const uint8_t src[6] = { 0x02, 0, 0, 0, 0, 0x99 };
	uint8_t f[60];

	for (uint16_t i = 0; i < 8; i++)
		post(0, i, BUFS + 0x1000u * i, 2048, true);
	wr(d, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	make_frame(f, guest_mac, src, "cloister-rx");
	memcpy(addr->sll_addr, guest_mac, 6);
	cr_assert_eq(sendto(host, f, sizeof(f), 0, (struct sockaddr *)addr, sizeof(*addr)),
		     (ssize_t)sizeof(f));
	cr_assert(guest_received("cloister-rx", 8), "the frame did not reach the guest");
}

Test(process, net_moves_frames_through_a_real_tap, .timeout = 30)
{
	char name[IFNAMSIZ], *args[] = { "cloister-net", "net0", "--mac", "52:54:00:ab:cd:01",
					 "--uid", "65534", "--gid", "65534", NULL };
	struct sockaddr_ll addr;
	struct virtio_mmio_dev *d;
	int sv[2], memfd, tap, host;
	pid_t pid;

	tap = open_tap(name);
	if (tap < 0)
		cr_skip_test("cannot create a tap here (needs root and /dev/net/tun)");
	link_up(name);
	host = host_socket(name, &addr);
	memfd = guest_ram();
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	pid = spawn("CLOISTER_NET", args, sv[1], tap, -1);
	close(sv[1]);
	close(tap);
	d = attach(sv[0], "net0", memfd);
	cr_assert_eq(rd(d, VIRTIO_MMIO_DEVICE_ID, 4), 1);
	for (unsigned i = 0; i < 6; i++)
		cr_assert_eq(rd(d, VIRTIO_MMIO_CONFIG + i, 1), guest_mac[i]);
	bring_up(d, 1u << 5 | 1u << 16);
	net_tx(d, host);
	net_rx(d, host, &addr);
	finish(d, pid);
	close(host);
}

Test(process, console_echoes_through_pipes, .timeout = 30)
{
	char *args[] = { "cloister-console", "con0", "--uid", "65534", "--gid", "65534", NULL };
	struct virtio_mmio_dev *d;
	int sv[2], out[2], in[2], memfd;
	char got[16] = { 0 };
	uint32_t id, len;
	pid_t pid;

	memfd = guest_ram();
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	cr_assert_eq(pipe2(out, O_CLOEXEC), 0);
	cr_assert_eq(pipe2(in, O_CLOEXEC), 0);
	pid = spawn("CLOISTER_CONSOLE", args, sv[1], out[1], in[0]);
	close(sv[1]);
	close(out[1]);
	close(in[0]);
	d = attach(sv[0], "con0", memfd);
	cr_assert_eq(rd(d, VIRTIO_MMIO_DEVICE_ID, 4), 3);
	bring_up(d, 0);
	memcpy(ram + BUFS + 0x8000, "login: ", 7);
	post(1, 0, BUFS + 0x8000, 7, false);
	wr(d, VIRTIO_MMIO_QUEUE_NOTIFY, 1);
	cr_assert_eq(read(out[0], got, 7), 7);
	cr_assert_str_eq(got, "login: ");
	post(0, 0, BUFS, 64, true);
	wr(d, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	cr_assert_eq(write(in[1], "root\n", 5), 5);
	cr_assert(wait_used(0, 1));
	used_elem(0, 0, &id, &len);
	cr_assert_eq(len, 5);
	cr_assert_arr_eq(ram + BUFS, "root\n", 5);
	finish(d, pid);
	close(out[0]);
	close(in[1]);
}

Test(process, net_refuses_a_bad_mac, .timeout = 10)
{
	char *args[] = { "cloister-net", "net0", "--mac", "zz", NULL };
	int sv[2], status, null = open("/dev/null", O_RDWR | O_CLOEXEC);
	pid_t pid;

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	pid = spawn("CLOISTER_NET", args, sv[1], null, -1);
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) != 0, "status %#x", status);
	close(sv[0]);
	close(sv[1]);
	close(null);
}
