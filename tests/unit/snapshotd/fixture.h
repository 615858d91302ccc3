/* SPDX-License-Identifier: Apache-2.0 */
/* A valid VmConfig + VmState held in one struct, and helpers shared by the snapshotd tests. */
#ifndef CLOISTER_TEST_SNAPD_FIXTURE_H
#define CLOISTER_TEST_SNAPD_FIXTURE_H

#include <stddef.h>
#include <stdint.h>

#include "cloister.pb-c.h"

#define FIXTURE_MAX_VCPUS 4

struct fixture {
	Cloister__VmConfig config;
	Cloister__MemoryRegion region_store[2];
	Cloister__MemoryRegion *regions[2];
	Cloister__PayloadConfig payload;
	Cloister__SerialConfig serial;
	Cloister__DeviceConfig device;
	Cloister__DeviceConfig *devices[1];
	Cloister__VmState state;
	Cloister__MachineState machine;
	Cloister__VcpuState vcpu_store[FIXTURE_MAX_VCPUS];
	Cloister__VcpuState *vcpus[FIXTURE_MAX_VCPUS];
	uint64_t x[FIXTURE_MAX_VCPUS][32];
	uint64_t f[FIXTURE_MAX_VCPUS][32];
	Cloister__DeviceState dev_state;
	Cloister__DeviceState *dev_states[1];
	Cloister__VirtqueueState queue;
	Cloister__VirtqueueState *queues[1];
	uint8_t blob[5];
};

/* A VM of memory_size bytes and vcpus harts (<= FIXTURE_MAX_VCPUS), one rng device. */
void fixture_init(struct fixture *fx, uint64_t memory_size, uint32_t vcpus);

/* Whether two messages pack to the same bytes. */
int messages_equal(const ProtobufCMessage *a, const ProtobufCMessage *b);

/* An unnamed, empty read-write file in /tmp, and a memfd of size bytes. */
int tmpfile_fd(void);
int memfd_of_size(uint64_t size);

/* Puts the right integrity.document digest into text, a vm.json a test edited. */
void fixture_reseal(char *text);

#endif
