/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Engine speed: runs the benchmark guest (bench_guest.c, a flat image) bare
 * on one hart and prints guest instructions per second for each workload.
 * Usage: bench-rv64 IMAGE [int|trap|fp] [rounds]
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "accel.h"

#define RAM_BASE 0x80000000ull
#define RAM_SIZE (8ull << 20)

static uint64_t no_time(void *opaque)
{
	return 0;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int load_image(const char *path, uint8_t *ram)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = read(fd, ram, RAM_SIZE);
	close(fd);
	return n > 0 ? 0 : -1;
}

static int run_workload(const struct machine_map *map, unsigned mode, uint64_t rounds,
			const char *name)
{
	const struct accel_ops *ops = accel_rv64_ops();
	struct accel_vcpu *cpu;
	struct vcpu_state s;
	struct vcpu_exit e;
	double t0, dt;

	if (ops->vcpu_create(map, 0, &cpu))
		return -1;
	ops->vcpu_get_state(cpu, &s);
	s.pc = RAM_BASE;
	s.x[10] = mode;
	s.x[11] = rounds;
	ops->vcpu_set_state(cpu, &s);
	t0 = now_s();
	do
		ops->vcpu_run(cpu, &e);
	while (e.reason == VCPU_EXIT_KICK);
	dt = now_s() - t0;
	ops->vcpu_get_state(cpu, &s);
	ops->vcpu_destroy(cpu);
	if (e.reason != VCPU_EXIT_SBI) {
		fprintf(stderr, "%s: unexpected exit %d at pc %#llx\n", name, e.reason,
			(unsigned long long)s.pc);
		return -1;
	}
	printf("%-5s %12llu instructions %7.3f s %8.1f M instr/s  (result %#llx)\n", name,
	       (unsigned long long)s.instret, dt, s.instret / dt / 1e6,
	       (unsigned long long)s.x[10]);
	return 0;
}

int main(int argc, char **argv)
{
	static const char *const names[] = { "int", "trap", "fp" };
	static const uint64_t default_rounds[] = { 40, 4000000, 8000000 };
	struct machine_map map = { .n_ram = 1, .read_time = no_time };
	uint8_t *ram = aligned_alloc(4096, RAM_SIZE);
	int ret = 0;

	if (argc < 2 || !ram || load_image(argv[1], memset(ram, 0, RAM_SIZE)) < 0) {
		fprintf(stderr, "usage: %s IMAGE [int|trap|fp] [rounds]\n", argv[0]);
		return 2;
	}
	map.ram[0] = (struct guest_ram){ .gpa = RAM_BASE, .size = RAM_SIZE, .host = ram };
	for (unsigned m = 0; m < 3; m++) {
		if (argc > 2 && strcmp(argv[2], names[m]))
			continue;
		if (run_workload(&map, m, argc > 3 ? strtoull(argv[3], NULL, 0) : default_rounds[m],
				 names[m]) < 0)
			ret = 1;
	}
	free(ram);
	return ret;
}
