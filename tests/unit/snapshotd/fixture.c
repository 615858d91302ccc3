/* SPDX-License-Identifier: Apache-2.0 */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "chunk_json.h"
#include "fixture.h"
#include "layout.h"

static void fixture_config(struct fixture *fx, uint64_t memory_size, uint32_t vcpus)
{
	struct layout_region lr[LAYOUT_MAX_REGIONS];
	size_t n = layout_memory(memory_size, lr);

	cloister__vm_config__init(&fx->config);
	for (size_t i = 0; i < n; i++) {
		cloister__memory_region__init(&fx->region_store[i]);
		fx->region_store[i].guest_addr = lr[i].gpa;
		fx->region_store[i].size = lr[i].size;
		fx->regions[i] = &fx->region_store[i];
	}
	cloister__payload_config__init(&fx->payload);
	fx->payload.kernel = "/boot/Image";
	fx->payload.cmdline = "console=hvc0 \"quoted\" \\ back/slash";
	cloister__serial_config__init(&fx->serial);
	fx->serial.mode = CLOISTER__SERIAL_MODE__SERIAL_TTY;
	cloister__device_config__init(&fx->device);
	fx->device.kind = "rng";
	fx->device.id = "_rng0";
	fx->devices[0] = &fx->device;
	fx->config.boot_vcpus = vcpus;
	fx->config.memory_size = memory_size;
	fx->config.n_regions = n;
	fx->config.regions = fx->regions;
	fx->config.payload = &fx->payload;
	fx->config.serial = &fx->serial;
	fx->config.n_devices = 1;
	fx->config.devices = fx->devices;
}

static void fixture_vcpu(struct fixture *fx, uint32_t i, uint32_t n)
{
	Cloister__VcpuState *v = &fx->vcpu_store[i];

	cloister__vcpu_state__init(v);
	/* Harts listed in reverse, so order is not what makes them valid. */
	v->hartid = n - 1 - i;
	v->priv = 1;
	v->pc = 0x80200000ull + i;
	for (size_t k = 1; k < 32; k++)
		fx->x[i][k] = (k << 56) | (0xdeadbeefull * k) | i;
	for (size_t k = 0; k < 32; k++)
		fx->f[i][k] = ~0ull - k;
	v->n_x = 32;
	v->x = fx->x[i];
	v->n_f = i % 2 ? 0 : 32;
	v->f = fx->f[i];
	v->timer_deadline = UINT64_MAX;
	v->satp = 1ull << 63 | 0x8badf;
	v->wfi = i % 2;
	fx->vcpus[i] = v;
}

static void fixture_state(struct fixture *fx, uint32_t vcpus)
{
	cloister__vm_state__init(&fx->state);
	cloister__machine_state__init(&fx->machine);
	fx->machine.timebase_hz = LAYOUT_TIMEBASE_HZ;
	fx->machine.guest_time = 123456789012345ull;
	fx->state.machine = &fx->machine;
	for (uint32_t i = 0; i < vcpus; i++)
		fixture_vcpu(fx, i, vcpus);
	fx->state.n_vcpus = vcpus;
	fx->state.vcpus = fx->vcpus;
	cloister__virtqueue_state__init(&fx->queue);
	fx->queue.size = 256;
	fx->queue.ready = 1;
	fx->queue.desc_addr = 0x80400000;
	fx->queues[0] = &fx->queue;
	cloister__device_state__init(&fx->dev_state);
	fx->dev_state.kind = "rng";
	fx->dev_state.id = "_rng0";
	fx->dev_state.status = 15;
	fx->dev_state.n_queues = 1;
	fx->dev_state.queues = fx->queues;
	memcpy(fx->blob, "\x00\xff\x10\x20\x7f", sizeof(fx->blob));
	fx->dev_state.blob.data = fx->blob;
	fx->dev_state.blob.len = sizeof(fx->blob);
	fx->dev_states[0] = &fx->dev_state;
	fx->state.n_devices = 1;
	fx->state.devices = fx->dev_states;
}

void fixture_init(struct fixture *fx, uint64_t memory_size, uint32_t vcpus)
{
	memset(fx, 0, sizeof(*fx));
	fixture_config(fx, memory_size, vcpus);
	fixture_state(fx, vcpus);
}

int messages_equal(const ProtobufCMessage *a, const ProtobufCMessage *b)
{
	size_t la = protobuf_c_message_get_packed_size(a);
	size_t lb = protobuf_c_message_get_packed_size(b);
	uint8_t *pa, *pb;
	int same;

	if (la != lb)
		return 0;
	pa = malloc(la + 1);
	pb = malloc(lb + 1);
	protobuf_c_message_pack(a, pa);
	protobuf_c_message_pack(b, pb);
	same = memcmp(pa, pb, la) == 0;
	free(pa);
	free(pb);
	return same;
}

int tmpfile_fd(void)
{
	return open("/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
}

int memfd_of_size(uint64_t size)
{
	int fd = memfd_create("test-region", MFD_CLOEXEC);

	if (fd >= 0 && ftruncate(fd, (off_t)size) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

void fixture_reseal(char *text)
{
	char *p = strstr(text, "\"document\"");

	cr_assert_not_null(p, "no integrity.document in the text");
	p = strchr(p + strlen("\"document\""), '"');
	cr_assert_not_null(p);
	memset(p + 1, '0', 2 * CHUNK_DIGEST_BYTES);
	cr_assert_eq(chunk_document_seal_digest(text), 0);
}
