/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target over the split-virtqueue walker: the input is the guest's
 * RAM (descriptor table, avail ring, buffers), the walker must never touch a
 * byte outside it. Guest RAM is an exactly sized heap block so AddressSanitizer
 * sees any overrun.
 *
 * Input: byte 0 picks the queue size (1 << (b % 9)), byte 1 bit 0 turns on
 * indirect descriptors, the rest is copied to guest RAM at GPA 0x10000
 * (descriptors at +0, avail ring at +0x1000, used ring at +0x2000).
 *
 * Build (from the repository root, after `meson setup build-x`):
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE \
 *     -Idevice-procs -Icommon tests/fuzz/fuzz_virtqueue.c \
 *     device-procs/virtqueue.c common/log.c -o fuzz_virtqueue
 *   CLOISTER_LOG=error ./fuzz_virtqueue tests/fuzz/corpus/virtqueue
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "virtqueue.h"

#define RAM_GPA 0x10000ull
#define RAM_SIZE 0x8000u

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *ram;
	struct guest_memory mem;
	struct virtqueue vq;
	struct virtqueue_config cfg;
	struct vq_chain chain;

	if (size < 2)
		return 0;
	ram = calloc(1, RAM_SIZE);
	if (!ram)
		return 0;
	memcpy(ram, data + 2, size - 2 < RAM_SIZE ? size - 2 : RAM_SIZE);
	mem = (struct guest_memory){
		.regions = { { .gpa = RAM_GPA, .size = RAM_SIZE, .host = ram } },
		.n_regions = 1,
	};
	cfg = (struct virtqueue_config){
		.size = 1u << (data[0] % 9),
		.desc_addr = RAM_GPA,
		.avail_addr = RAM_GPA + 0x1000,
		.used_addr = RAM_GPA + 0x2000,
		.indirect = data[1] & 1,
		.kick_fd = -1,
		.call_fd = -1,
	};
	virtqueue_init(&vq);
	if (virtqueue_setup(&vq, &mem, &cfg) < 0) {
		free(ram);
		return 0;
	}
	for (uint32_t n = 0; n < 2 * cfg.size && virtqueue_pop(&vq, &mem, &chain) == 0; n++) {
		uint32_t written = 0;

		/* Touch every byte the walker handed out, as a device would. */
		for (uint32_t i = 0; i < chain.n_bufs; i++) {
			if (chain.bufs[i].writable) {
				memset(chain.bufs[i].host, 0xa5, chain.bufs[i].len);
				written += chain.bufs[i].len;
			} else if (chain.bufs[i].len) {
				volatile uint8_t sink = chain.bufs[i].host[chain.bufs[i].len - 1];
				(void)sink;
			}
		}
		virtqueue_push(&vq, &chain, written);
	}
	virtqueue_teardown(&vq);
	free(ram);
	return 0;
}
