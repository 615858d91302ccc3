/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The gateway drives vmm-core through one request at a time. Which request
 * is accepted depends on the core's state, after OpenSSH's monitor table:
 * anything else is refused with an error reply and changes nothing.
 */
#include "control.h"
#include "counters.h"

#include <errno.h>
#include <sys/random.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "fdt.h"
#include "frame.h"
#include "loader.h"
#include "log.h"
#include "machine.h"
#include "mmio.h"
#include "serial_input.h"

/* Generous: writing several GiB of guest memory to a slow disk takes time. */
#define SNAPSHOT_TIMEOUT_MS (10 * 60 * 1000)
#define HELLO_TIMEOUT_MS 5000
#define FDT_MAX_SIZE (64 * 1024)
#define MAX_DEVICES LAYOUT_VIRTIO_SLOTS
/* Configure's four, and the two of each region of given memory. */
#define FDS_VARIABLE_MAX (4 + 2 * LAYOUT_MAX_REGIONS)

enum core_state { CORE_INIT, CORE_READY, CORE_RUNNING, CORE_PAUSED, CORE_HALTED, CORE_NSTATES };

static const char *const core_state_names[CORE_NSTATES] = {
	"init", "ready", "running", "paused", "halted",
};

struct core {
	int gw;
	pthread_mutex_t send_lock;
	enum core_state state;
	bool restore_mode;
	bool memory_kept;	/* configured with given memory (the fd store) that holds the guest */
	bool quit;
	Cloister__VmConfig *config;
	struct guest_memory *mem;
	struct machine m;
	bool machine_up;
	int kernel_fd;
	int initramfs_fd;
	struct serial_input *serial_in;
	int uffd;	/* OnDemand restore: guest memory's userfaultfd, kept for the VM's life */
	char err[256];
};

struct core_handler {
	Cloister__Envelope__MsgCase msg;
	unsigned states;	/* bit per enum core_state in which it is accepted */
	size_t n_fds;		/* exact number of fds it takes, or SIZE_MAX for 0..FDS_VARIABLE_MAX */
	int (*handle)(struct core *c, const Cloister__Envelope *env, int *fds, size_t n_fds);
};

#define IN(s) (1u << (s))

static void core_event(void *opaque, Cloister__EventKind kind, const char *message)
{
	struct core *c = opaque;
	Cloister__Envelope env = CLOISTER__ENVELOPE__INIT;
	Cloister__Event ev = CLOISTER__EVENT__INIT;

	ev.kind = kind;
	ev.message = (char *)message;
	frame_wrap(&env, CLOISTER__ENVELOPE__MSG_EVENT, &ev.base);
	pthread_mutex_lock(&c->send_lock);
	frame_send(c->gw, &env, NULL, 0);
	pthread_mutex_unlock(&c->send_lock);
}

/* Every reply echoes its request's id, so the gateway can tell a late one. */
static int core_reply(struct core *c, const Cloister__Envelope *request, int error,
		      const char *message)
{
	int r;

	pthread_mutex_lock(&c->send_lock);
	r = frame_reply_to(c->gw, request, error, message);
	pthread_mutex_unlock(&c->send_lock);
	return r;
}

static int config_check(struct core *c, const Cloister__VmConfig *cfg,
			struct layout_region *regions, size_t *ret_n)
{
	size_t n;

	if (cfg->boot_vcpus == 0 || cfg->boot_vcpus > MACHINE_MAX_HARTS) {
		snprintf(c->err, sizeof(c->err), "boot_vcpus must be 1..%d", MACHINE_MAX_HARTS);
		return -EINVAL;
	}
	if (cfg->memory_size < (16u << 20) || cfg->memory_size % 4096 ||
	    cfg->memory_size > (256ull << 30)) {
		snprintf(c->err, sizeof(c->err), "memory size %" PRIu64 " is not usable", cfg->memory_size);
		return -EINVAL;
	}
	n = layout_memory(cfg->memory_size, regions);
	if (cfg->n_regions != n) {
		snprintf(c->err, sizeof(c->err), "config has %zu memory regions, the layout %zu",
			 cfg->n_regions, n);
		return -EINVAL;
	}
	for (size_t i = 0; i < n; i++) {
		if (cfg->regions[i]->guest_addr != regions[i].gpa || cfg->regions[i]->size != regions[i].size) {
			snprintf(c->err, sizeof(c->err), "memory region %zu does not match the layout", i);
			return -EINVAL;
		}
	}
	*ret_n = n;
	return 0;
}

static int fd_at(int *fds, size_t n_fds, int32_t index)
{
	if (index < 0 || (size_t)index >= n_fds)
		return -1;
	return TAKE_FD(fds[index]);
}

/* The console input, when the gateway handed one over. */
static int configure_serial_input(struct core *c, const Cloister__CoreConfigure *req, int *fds,
				  size_t n_fds)
{
	bool tty = req->config->serial &&
		   req->config->serial->mode == CLOISTER__SERIAL_MODE__SERIAL_TTY;
	int in_fd, r;

	if (req->serial_in_fd < 0)
		return 0;
	in_fd = fd_at(fds, n_fds, req->serial_in_fd);
	r = in_fd < 0 ? -EBADF : serial_input_start(&c->m, in_fd, tty, &c->serial_in);
	if (r < 0)
		snprintf(c->err, sizeof(c->err), "cannot read the console input: %s", strerror(-r));
	return r;
}

/* Given memory (a restore from the fd store): one read-write and one read-only fd per region. */
static int configure_given_memory(struct core *c, const Cloister__CoreConfigure *req, int *fds,
				  size_t n_fds, const struct layout_region *regions, size_t n)
{
	int rw[LAYOUT_MAX_REGIONS], ro[LAYOUT_MAX_REGIONS];

	if (!req->restore || req->n_memory_fds != n || req->n_memory_ro_fds != n) {
		snprintf(c->err, sizeof(c->err), "given memory needs a restore and 2 x %zu fds, not %zu"
			 " and %zu", n, req->n_memory_fds, req->n_memory_ro_fds);
		return -EINVAL;
	}
	for (size_t i = 0; i < n; i++) {
		rw[i] = fd_at(fds, n_fds, req->memory_fds[i]);
		ro[i] = fd_at(fds, n_fds, req->memory_ro_fds[i]);
	}
	return memory_adopt(c->mem, regions, n, rw, ro, c->err, sizeof(c->err));
}

static int configure_memory(struct core *c, const Cloister__CoreConfigure *req, int *fds,
			    size_t n_fds, const struct layout_region *regions, size_t n)
{
	int r;

	if (req->n_memory_fds || req->n_memory_ro_fds) {
		r = configure_given_memory(c, req, fds, n_fds, regions, n);
		c->memory_kept = r == 0;
		return r;
	}
	r = memory_setup(c->mem, regions, n);
	if (r < 0)
		snprintf(c->err, sizeof(c->err), "cannot set up guest memory: %s", strerror(-r));
	return r;
}

static int configure_build(struct core *c, const Cloister__CoreConfigure *req, int *fds,
			   size_t n_fds, const struct layout_region *regions, size_t n)
{
	int r;

	c->config = (Cloister__VmConfig *)proto_message_dup(&req->config->base);
	if (!c->config)
		return -ENOMEM;
	r = configure_memory(c, req, fds, n_fds, regions, n);
	if (r < 0)
		return r;
	c->m.mem = *c->mem;
	/* The machine owns the serial fd from here, even if it fails to start. */
	c->m.serial_fd = fd_at(fds, n_fds, req->serial_fd);
	c->kernel_fd = fd_at(fds, n_fds, req->kernel_fd);
	c->initramfs_fd = fd_at(fds, n_fds, req->initramfs_fd);
	r = machine_init(&c->m, req->config->boot_vcpus, c->m.serial_fd, core_event, c);
	if (r < 0) {
		snprintf(c->err, sizeof(c->err), "cannot create the vCPUs: %s", strerror(-r));
		return r;
	}
	return configure_serial_input(c, req, fds, n_fds);
}

/*
 * Takes back everything a failed configure made. Guest memory is sealed at
 * its size once set up, so this core cannot be configured again: it only
 * waits to be shut down.
 */
static void configure_undo(struct core *c)
{
	serial_input_stop(c->serial_in);
	c->serial_in = NULL;
	machine_destroy(&c->m);
	if (c->m.serial_fd >= 0)
		close(c->m.serial_fd);
	c->m = (struct machine){ .serial_fd = -1 };
	cleanup_closep(&c->kernel_fd);
	cleanup_closep(&c->initramfs_fd);
	c->kernel_fd = c->initramfs_fd = -1;
	if (c->config)
		cloister__vm_config__free_unpacked(c->config, NULL);
	c->config = NULL;
	memory_release(c->mem);
	c->state = CORE_HALTED;
}

static int handle_configure(struct core *c, const Cloister__Envelope *env, int *fds, size_t n_fds)
{
	const Cloister__CoreConfigure *req = env->core_configure;
	struct layout_region regions[LAYOUT_MAX_REGIONS];
	size_t n;
	int r;

	if (!req->config) {
		snprintf(c->err, sizeof(c->err), "configure without a config");
		return -EINVAL;
	}
	r = config_check(c, req->config, regions, &n);
	if (r < 0)
		return r;
	if (!req->restore && req->kernel_fd < 0) {
		snprintf(c->err, sizeof(c->err), "boot needs a kernel");
		return -EINVAL;
	}
	r = configure_build(c, req, fds, n_fds, regions, n);
	if (r < 0) {
		configure_undo(c);
		return r;
	}
	c->machine_up = true;
	c->restore_mode = req->restore;
	c->state = CORE_READY;
	log_info("configured: %u vCPUs, %" PRIu64 " MiB in %zu regions%s%s", req->config->boot_vcpus,
		 req->config->memory_size >> 20, n, req->restore ? ", for restore" : "",
		 c->memory_kept ? " into the memory it was given" : "");
	return 0;
}

static int handle_attach_device(struct core *c, const Cloister__Envelope *env, int *fds, size_t n_fds)
{
	const Cloister__DeviceConfig *dev = env->core_attach_device->device;
	struct virtio_mem_region mem[LAYOUT_MAX_REGIONS];
	size_t slot = c->m.n_virtio;
	struct virtio_mmio_params p;
	char cid[COMPONENT_ID_MAX];
	int r;

	if (!dev || !dev->id || !dev->id[0]) {
		snprintf(c->err, sizeof(c->err), "device without an id");
		return -EINVAL;
	}
	if (slot >= MAX_DEVICES) {
		snprintf(c->err, sizeof(c->err), "no free virtio-mmio slot for %s", dev->id);
		return -ENOSPC;
	}
	for (size_t i = 0; i < slot; i++) {
		if (strcmp(virtio_mmio_id(c->m.virtio[i]), dev->id) == 0) {
			snprintf(c->err, sizeof(c->err), "device id %s is already attached", dev->id);
			return -EEXIST;
		}
	}
	for (size_t i = 0; i < c->mem->n_regions; i++)
		mem[i] = (struct virtio_mem_region){ .gpa = c->mem->ram[i].gpa,
						     .size = c->mem->ram[i].size, .fd = c->mem->fd[i] };
	p = (struct virtio_mmio_params){
		.sock = fds[0], .id = dev->id, .mem = mem, .n_mem = c->mem->n_regions,
		.irq = LAYOUT_VIRTIO_IRQ_BASE + (uint32_t)slot,
		.set_irq = machine_set_irq, .irq_opaque = &c->m,
	};
	r = virtio_mmio_attach(&p, &c->m.virtio[slot]);
	fds[0] = -1;	/* the transport owns it now, even on failure */
	if (r < 0) {
		snprintf(c->err, sizeof(c->err), "device %s did not attach: %s", dev->id, strerror(-r));
		return r;
	}
	snprintf(cid, sizeof(cid), "device %s", dev->id);
	/* A device process runs from its start: the transport joins as running. */
	r = machine_add_component(&c->m, cid, &virtio_mmio_component_ops, c->m.virtio[slot], false);
	if (r < 0) {
		snprintf(c->err, sizeof(c->err), "device %s cannot join the machine: %s", dev->id,
			 strerror(-r));
		virtio_mmio_destroy(c->m.virtio[slot]);
		c->m.virtio[slot] = NULL;
		return r;
	}
	c->m.n_virtio++;
	log_info("device %s (%s) in virtio-mmio slot %zu", dev->id, dev->kind, slot);
	return 0;
}

/* The initramfs goes just below the device tree, on a 2 MiB boundary, clear of the kernel. */
static int boot_load_initramfs(struct core *c, uint64_t kernel_end, uint64_t fdt_addr,
			       struct fdt_params *fp)
{
	struct stat st;
	uint64_t size, start;
	int64_t n;

	if (fstat(c->initramfs_fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		snprintf(c->err, sizeof(c->err), "the initramfs is not a regular file");
		return -EINVAL;
	}
	size = (uint64_t)st.st_size;
	if (size == 0 || size > fdt_addr - kernel_end) {
		snprintf(c->err, sizeof(c->err), "the initramfs (%" PRIu64 " bytes) does not fit in RAM", size);
		return -E2BIG;
	}
	start = (fdt_addr - size) & ~((2ull << 20) - 1);
	if (start < kernel_end) {
		snprintf(c->err, sizeof(c->err), "the initramfs does not fit between kernel and device tree");
		return -E2BIG;
	}
	n = loader_load_blob(c->initramfs_fd, c->mem->ram, c->mem->n_regions, start);
	if (n < 0) {
		snprintf(c->err, sizeof(c->err), "cannot load the initramfs: %s", strerror((int)-n));
		return (int)n;
	}
	fp->initrd_start = start;
	fp->initrd_end = start + (uint64_t)n;
	return 0;
}

static int boot_load(struct core *c, uint64_t *ret_entry, uint64_t *ret_fdt)
{
	uint8_t seed[64];
	struct guest_memory *mem = c->mem;
	uint64_t region0_end = mem->ram[0].gpa + mem->ram[0].size;
	uint64_t fdt_addr = (region0_end - (2u << 20)) & ~0xfffull;
	struct loaded_payload payload;
	struct fdt_params fp = {
		.n_harts = c->config->boot_vcpus,
		.timebase_hz = LAYOUT_TIMEBASE_HZ,
		.n_ram = mem->n_regions,
		.isa = "rv64imafdc_zicsr_zifencei_zihintpause",
		.mmu_type = "riscv,sv48",
		.plic_base = LAYOUT_PLIC_BASE,
		.plic_size = LAYOUT_PLIC_SIZE,
		.plic_ndev = LAYOUT_PLIC_NDEV,
		.uart_base = LAYOUT_UART_BASE,
		.uart_size = LAYOUT_UART_SIZE,
		.uart_irq = LAYOUT_UART_IRQ,
		.uart_clock_hz = LAYOUT_UART_CLOCK_HZ,
		.rtc_base = LAYOUT_RTC_BASE, .rtc_size = LAYOUT_RTC_SIZE, .rtc_irq = LAYOUT_RTC_IRQ,
		.vmgenid_base = LAYOUT_VMGENID_BASE, .vmgenid_size = LAYOUT_VMGENID_SIZE,
		.vmgenid_irq = LAYOUT_VMGENID_IRQ,
	};
	void *fdt_host;
	int r;

	r = loader_load_kernel(c->kernel_fd, mem->ram, mem->n_regions, &payload);
	if (r < 0) {
		snprintf(c->err, sizeof(c->err), "cannot load the kernel: %s", strerror(-r));
		return r;
	}
	if (payload.load_end > fdt_addr) {
		snprintf(c->err, sizeof(c->err), "the kernel does not leave room for the device tree");
		return -E2BIG;
	}
	if (c->initramfs_fd >= 0) {
		r = boot_load_initramfs(c, payload.load_end, fdt_addr, &fp);
		if (r < 0)
			return r;
	}
	for (size_t i = 0; i < mem->n_regions; i++) {
		fp.ram[i].gpa = mem->ram[i].gpa;
		fp.ram[i].size = mem->ram[i].size;
	}
	fp.cmdline = c->config->payload ? c->config->payload->cmdline : NULL;
	/* As QEMU does: the guest's random pool starts full instead of blocking its first reader. */
	if (getrandom(seed, sizeof(seed), 0) == (ssize_t)sizeof(seed)) {
		fp.rng_seed = seed;
		fp.rng_seed_len = sizeof(seed);
	}
	for (size_t i = 0; i < c->m.n_virtio; i++)
		fp.virtio[i] = (struct fdt_virtio_slot){
			.base = LAYOUT_VIRTIO_BASE + i * LAYOUT_VIRTIO_SLOT_SIZE,
			.size = LAYOUT_VIRTIO_SLOT_SIZE,
			.irq = LAYOUT_VIRTIO_IRQ_BASE + (uint32_t)i,
		};
	fp.n_virtio = c->m.n_virtio;
	fdt_host = memory_host_ptr(mem, fdt_addr, FDT_MAX_SIZE);
	if (!fdt_host)
		return -EFAULT;
	r = fdt_build(&fp, fdt_host, FDT_MAX_SIZE);
	if (r < 0) {
		snprintf(c->err, sizeof(c->err), "cannot build the device tree: %s", strerror(-r));
		return r;
	}
	*ret_entry = payload.entry;
	*ret_fdt = fdt_addr;
	return 0;
}

static int handle_start(struct core *c, const Cloister__Envelope *env, int *fds, size_t n_fds)
{
	uint64_t entry, fdt;
	int r;

	if (c->restore_mode) {
		snprintf(c->err, sizeof(c->err), "a VM being restored starts by resume, not boot");
		return -EINVAL;
	}
	r = boot_load(c, &entry, &fdt);
	if (r < 0)
		return r;
	cleanup_closep(&c->kernel_fd);
	cleanup_closep(&c->initramfs_fd);
	c->kernel_fd = c->initramfs_fd = -1;
	machine_set_boot_hart(&c->m, entry, fdt);
	r = machine_resume(&c->m, c->err, sizeof(c->err));
	if (r < 0)
		return r;
	c->state = CORE_RUNNING;
	log_info("booted at 0x%" PRIx64 ", device tree at 0x%" PRIx64, entry, fdt);
	return 0;
}

static double elapsed_ms(const struct timespec *from)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (now.tv_sec - from->tv_sec) * 1e3 + (now.tv_nsec - from->tv_nsec) / 1e6;
}

static int handle_pause(struct core *c, const Cloister__Envelope *env, int *fds, size_t n_fds)
{
	struct timespec start;
	int r;

	clock_gettime(CLOCK_MONOTONIC, &start);
	r = machine_pause(&c->m, c->err, sizeof(c->err));
	if (r < 0)
		return r;
	c->state = CORE_PAUSED;
	/* The figure pause benchmarks read: from the request to everything stopped. */
	log_info("paused in %.2f ms (%u harts, %zu devices)", elapsed_ms(&start), c->m.n_harts,
		 c->m.n_virtio);
	return 0;
}

/* Answered here with its own reply type: control_dispatch() sends no Reply after it. */
#define CORE_REPLIED 1

static int handle_counters(struct core *c, const Cloister__Envelope *env, int *fds, size_t n_fds)
{
	int r = counters_answer(c->gw, &c->send_lock, env, &c->m);

	return r < 0 ? r : CORE_REPLIED;
}

static int handle_resume(struct core *c, const Cloister__Envelope *env, int *fds, size_t n_fds)
{
	int r = machine_resume(&c->m, c->err, sizeof(c->err));

	if (r < 0)
		return r;
	c->state = CORE_RUNNING;
	return 0;
}

static Cloister__MemoryRegion **regions_proto(struct core *c, Cloister__MemoryRegion *storage)
{
	static Cloister__MemoryRegion *ptrs[LAYOUT_MAX_REGIONS];

	for (size_t i = 0; i < c->mem->n_regions; i++) {
		cloister__memory_region__init(&storage[i]);
		storage[i].guest_addr = c->mem->ram[i].gpa;
		storage[i].size = c->mem->ram[i].size;
		ptrs[i] = &storage[i];
	}
	return ptrs;
}

static int snapd_handshake(struct core *c, int sock)
{
	int r = frame_hello_send(sock, CLOISTER__ROLE__ROLE_VMM);

	if (r == 0)
		r = frame_hello_expect(sock, CLOISTER__ROLE__ROLE_SNAPSHOTD, HELLO_TIMEOUT_MS);
	if (r < 0)
		snprintf(c->err, sizeof(c->err), "no handshake with snapshotd: %s", strerror(-r));
	return r;
}

/* Waits for the one answer snapshotd owes us; anything else is a protocol error. */
static int snapd_wait(struct core *c, int sock, Cloister__Envelope__MsgCase want,
		      Cloister__Envelope **ret_env)
{
	Cloister__Envelope *env = NULL;
	int fds[CL_FRAME_MAX_FDS];
	size_t n_fds = 0;
	int r = frame_recv_timeout(sock, SNAPSHOT_TIMEOUT_MS, &env, fds, 0, &n_fds);

	if (r < 0) {
		snprintf(c->err, sizeof(c->err), "snapshotd did not answer: %s", strerror(-r));
		return r;
	}
	if (env->msg_case != want) {
		snprintf(c->err, sizeof(c->err), "snapshotd sent %s", frame_msg_name(env));
		frame_free(env);
		return -EPROTO;
	}
	*ret_env = env;
	return 0;
}

static int handle_snapshot(struct core *c, const Cloister__Envelope *env, int *fds, size_t n_fds)
{
	_cleanup_close_ int sock = TAKE_FD(fds[0]);
	Cloister__VmState state = CLOISTER__VM_STATE__INIT;
	Cloister__SnapSaveState save = CLOISTER__SNAP_SAVE_STATE__INIT;
	Cloister__MemoryRegion regions[LAYOUT_MAX_REGIONS];
	Cloister__Envelope out = CLOISTER__ENVELOPE__INIT;
	Cloister__Envelope *reply = NULL;
	int r;

	r = snapd_handshake(c, sock);
	if (r < 0)
		return r;
	r = machine_save(&c->m, &state, c->err, sizeof(c->err));
	if (r < 0)
		goto out;
	save.state = &state;
	save.regions = regions_proto(c, regions);
	save.n_regions = c->mem->n_regions;
	frame_wrap(&out, CLOISTER__ENVELOPE__MSG_SNAP_SAVE_STATE, &save.base);
	r = frame_send(sock, &out, c->mem->fd_ro, c->mem->n_regions);
	if (r < 0) {
		snprintf(c->err, sizeof(c->err), "cannot reach snapshotd: %s", strerror(-r));
		goto out;
	}
	r = snapd_wait(c, sock, CLOISTER__ENVELOPE__MSG_REPLY, &reply);
	if (r < 0)
		goto out;
	r = reply->reply->error > 0 ? -EPROTO : reply->reply->error;
	if (r < 0)
		snprintf(c->err, sizeof(c->err), "%s", reply->reply->message ? reply->reply->message : "snapshot failed");
	frame_free(reply);
out:
	machine_state_free(&state);
	return r;
}

/*
 * OnDemand: guest memory registered with a uffd made from the gateway's
 * /dev/userfaultfd, which goes to snapshotd with the memfds. vmm-core keeps
 * its own reference, so a page server that dies leaves faults waiting (and
 * the gateway ends the VM) rather than turning missing pages into zeros.
 */
/* Registers vmm-core's own memory, then has every device process register its mapping. */
static int restore_register(struct core *c, int dev_uffd, int *fds, uint64_t *host_addrs,
			    size_t *ret_clients)
{
	size_t n = c->mem->n_regions, k = 0;

	if (c->uffd < 0)
		c->uffd = memory_uffd_register(c->mem, dev_uffd);
	if (c->uffd < 0) {
		snprintf(c->err, sizeof(c->err), "cannot register guest memory for OnDemand restore:"
			 " %s", strerror(-c->uffd));
		return c->uffd;
	}
	for (size_t i = 0; i < n; i++)
		host_addrs[i] = (uint64_t)(uintptr_t)c->mem->ram[i].host;
	fds[k++] = dup(c->uffd);
	if (fds[0] < 0)
		return -errno;
	for (size_t d = 0; d < c->m.n_virtio; d++) {
		int r = virtio_mmio_uffd(c->m.virtio[d], dev_uffd, &host_addrs[(1 + d) * n], n);

		if (r < 0) {
			snprintf(c->err, sizeof(c->err), "device %s cannot register guest memory for"
				 " OnDemand restore: %s", virtio_mmio_id(c->m.virtio[d]), strerror(-r));
			*ret_clients = k;
			return r;
		}
		fds[k++] = r;
	}
	*ret_clients = k;
	return 0;
}

/*
 * OnDemand: guest memory registered with uffds made from the gateway's
 * /dev/userfaultfd, vmm-core's and each device process's, which go to
 * snapshotd with the memfds. Each process keeps its own reference, so a page
 * server that dies leaves faults waiting (and the gateway ends the VM)
 * rather than turning missing pages into zeros.
 */
static int restore_send_fill(struct core *c, int sock, int dev_uffd)
{
	Cloister__SnapFill fill = CLOISTER__SNAP_FILL__INIT;
	Cloister__MemoryRegion regions[LAYOUT_MAX_REGIONS];
	Cloister__Envelope out = CLOISTER__ENVELOPE__INIT;
	uint64_t host_addrs[(1 + MAX_DEVICES) * LAYOUT_MAX_REGIONS];
	int fds[LAYOUT_MAX_REGIONS + 1 + MAX_DEVICES];
	size_t n = c->mem->n_regions, clients = 0;
	int r = 0;

	memcpy(fds, c->mem->fd, n * sizeof(fds[0]));
	fill.regions = regions_proto(c, regions);
	fill.n_regions = n;
	fill.memory_kept = c->memory_kept;
	if (dev_uffd >= 0) {
		r = restore_register(c, dev_uffd, &fds[n], host_addrs, &clients);
		fill.on_demand = true;
		fill.host_addrs = host_addrs;
		fill.n_host_addrs = clients * n;
	}
	frame_wrap(&out, CLOISTER__ENVELOPE__MSG_SNAP_FILL, &fill.base);
	if (r == 0) {
		r = frame_send(sock, &out, fds, n + clients);
		if (r < 0)
			snprintf(c->err, sizeof(c->err), "cannot reach snapshotd: %s", strerror(-r));
	}
	for (size_t i = 0; i < clients; i++)
		close(fds[n + i]);
	return r;
}

static int handle_restore(struct core *c, const Cloister__Envelope *env, int *fds, size_t n_fds)
{
	bool on_demand = env->core_restore->on_demand;
	_cleanup_close_ int sock = -1, dev_uffd = -1;
	Cloister__Envelope *reply = NULL;
	const Cloister__SnapFillReply *fr;
	int r;

	if (n_fds != (on_demand ? 2u : 1u)) {
		snprintf(c->err, sizeof(c->err), "restore carries %zu fds", n_fds);
		return -EINVAL;
	}
	sock = TAKE_FD(fds[0]);
	if (on_demand)
		dev_uffd = TAKE_FD(fds[1]);
	if (!c->restore_mode) {
		snprintf(c->err, sizeof(c->err), "this VM was booted, not configured for restore");
		return -EINVAL;
	}
	/* Memory that holds the guest is never filled, and fresh memory always is. */
	if (env->core_restore->memory_kept != c->memory_kept || (c->memory_kept && on_demand)) {
		snprintf(c->err, sizeof(c->err), "a restore %s kept memory, but this core was %s",
			 env->core_restore->memory_kept ? "into" : "without",
			 c->memory_kept ? "given its memory" : "configured with fresh memory");
		return -EINVAL;
	}
	r = snapd_handshake(c, sock);
	if (r == 0)
		r = restore_send_fill(c, sock, dev_uffd);
	if (r == 0)
		r = snapd_wait(c, sock, CLOISTER__ENVELOPE__MSG_SNAP_FILL_REPLY, &reply);
	if (r < 0)
		return r;
	fr = reply->snap_fill_reply;
	if (fr->error < 0 || !fr->state) {
		snprintf(c->err, sizeof(c->err), "%s", fr->message && fr->message[0] ? fr->message :
			 "snapshotd could not fill guest memory");
		r = fr->error < 0 ? fr->error : -EPROTO;
		goto out;
	}
	/* A refusal leaves the core ready and nothing running: the gateway tears it down. */
	r = machine_restore(&c->m, fr->state, c->err, sizeof(c->err));
	if (r < 0)
		goto out;
	c->state = CORE_PAUSED;
	log_info("restored, paused%s", on_demand ? ", memory on demand" :
		 c->memory_kept ? ", memory kept" : "");
out:
	frame_free(reply);
	return r;
}

/*
 * The gateway takes the guest's memfds to keep them in the service
 * manager's fd store over a restart. Paused only: nothing writes them
 * while they travel, and they are sealed at their size since configure.
 */
static int handle_export_memory(struct core *c, const Cloister__Envelope *env, int *fds,
				size_t n_fds)
{
	Cloister__CoreExportMemoryReply rep = CLOISTER__CORE_EXPORT_MEMORY_REPLY__INIT;
	Cloister__MemoryRegion regions[LAYOUT_MAX_REGIONS];
	Cloister__Envelope out = CLOISTER__ENVELOPE__INIT;
	int r;

	rep.regions = regions_proto(c, regions);
	rep.n_regions = c->mem->n_regions;
	frame_wrap(&out, CLOISTER__ENVELOPE__MSG_CORE_EXPORT_MEMORY_REPLY, &rep.base);
	out.request_id = env->request_id;
	pthread_mutex_lock(&c->send_lock);
	r = frame_send(c->gw, &out, c->mem->fd, c->mem->n_regions);
	pthread_mutex_unlock(&c->send_lock);
	if (r < 0)
		return r;
	log_info("guest memory handed to the gateway: %zu regions", c->mem->n_regions);
	return CORE_REPLIED;
}

static int handle_shutdown(struct core *c, const Cloister__Envelope *env, int *fds, size_t n_fds)
{
	c->quit = true;
	return 0;
}

static const struct core_handler core_handlers[] = {
	{ CLOISTER__ENVELOPE__MSG_CORE_CONFIGURE, IN(CORE_INIT), SIZE_MAX, handle_configure },
	{ CLOISTER__ENVELOPE__MSG_CORE_ATTACH_DEVICE, IN(CORE_READY), 1, handle_attach_device },
	{ CLOISTER__ENVELOPE__MSG_CORE_START, IN(CORE_READY), 0, handle_start },
	{ CLOISTER__ENVELOPE__MSG_CORE_PAUSE, IN(CORE_RUNNING), 0, handle_pause },
	{ CLOISTER__ENVELOPE__MSG_CORE_RESUME, IN(CORE_PAUSED), 0, handle_resume },
	{ CLOISTER__ENVELOPE__MSG_CORE_SNAPSHOT, IN(CORE_PAUSED), 1, handle_snapshot },
	{ CLOISTER__ENVELOPE__MSG_CORE_RESTORE, IN(CORE_READY), SIZE_MAX, handle_restore },
	{ CLOISTER__ENVELOPE__MSG_CORE_SHUTDOWN, ~0u, 0, handle_shutdown },
	{ CLOISTER__ENVELOPE__MSG_CORE_COUNTERS, IN(CORE_RUNNING) | IN(CORE_PAUSED), 0, handle_counters },
	{ CLOISTER__ENVELOPE__MSG_CORE_EXPORT_MEMORY, IN(CORE_PAUSED), 0, handle_export_memory },
};

static const struct core_handler *handler_for(Cloister__Envelope__MsgCase msg)
{
	for (size_t i = 0; i < ARRAY_SIZE(core_handlers); i++)
		if (core_handlers[i].msg == msg)
			return &core_handlers[i];
	return NULL;
}

static void close_fds(int *fds, size_t n)
{
	for (size_t i = 0; i < n; i++)
		cleanup_closep(&fds[i]);
}

static int control_dispatch(struct core *c, const Cloister__Envelope *env, int *fds, size_t n_fds)
{
	const struct core_handler *h = handler_for(env->msg_case);
	int r;

	c->err[0] = '\0';
	if (!h) {
		log_error("the gateway sent %s, which vmm-core never accepts", frame_msg_name(env));
		return -EPROTO;
	}
	if (!(h->states & IN(c->state))) {
		snprintf(c->err, sizeof(c->err), "%s is not allowed while the VM is %s",
			 frame_msg_name(env), core_state_names[c->state]);
		return core_reply(c, env, -EPERM, c->err);
	}
	if ((h->n_fds == SIZE_MAX && n_fds > FDS_VARIABLE_MAX) || (h->n_fds != SIZE_MAX && n_fds != h->n_fds)) {
		snprintf(c->err, sizeof(c->err), "%s came with %zu fds", frame_msg_name(env), n_fds);
		return core_reply(c, env, -EPROTO, c->err);
	}
	r = h->handle(c, env, fds, n_fds);
	if (r == CORE_REPLIED)
		return 0;
	if (r < 0) {
		if (!c->err[0])
			snprintf(c->err, sizeof(c->err), "%s", strerror(-r));
		log_error("%s failed: %s", frame_msg_name(env), c->err);
	}
	return core_reply(c, env, r, r < 0 ? c->err : NULL);
}

int control_serve(int sock, struct guest_memory *mem)
{
	struct core c = {
		.gw = sock,
		.send_lock = PTHREAD_MUTEX_INITIALIZER,
		.state = CORE_INIT,
		.mem = mem,
		.kernel_fd = -1,
		.initramfs_fd = -1,
		.uffd = -1,
		.m = { .serial_fd = -1 },
	};
	int r = 0;

	while (!c.quit) {
		Cloister__Envelope *env = NULL;
		int fds[CL_FRAME_MAX_FDS];
		size_t n_fds = 0;

		r = frame_recv(sock, &env, fds, CL_FRAME_MAX_FDS, &n_fds);
		if (r == -EPIPE) {
			log_info("the gateway went away");
			r = 0;
			break;
		}
		if (r < 0)
			break;
		r = control_dispatch(&c, env, fds, n_fds);
		close_fds(fds, n_fds);
		frame_free(env);
		if (r < 0)
			break;
	}
	if (c.machine_up) {
		/* The harts reach the devices and the serial input the UART: they go first. */
		machine_stop_harts(&c.m);
		serial_input_stop(c.serial_in);
		for (size_t i = 0; i < c.m.n_virtio; i++)
			virtio_mmio_destroy(c.m.virtio[i]);
		machine_destroy(&c.m);
	}
	if (c.config)
		cloister__vm_config__free_unpacked(c.config, NULL);
	cleanup_closep(&c.kernel_fd);
	cleanup_closep(&c.initramfs_fd);
	cleanup_closep(&c.uffd);
	return r;
}
