/* SPDX-License-Identifier: Apache-2.0 */
/* A fake guest: one memfd-backed RAM region and helpers to lay out a split queue in it. */
#ifndef TEST_GUEST_MEM_H
#define TEST_GUEST_MEM_H

#include <criterion/criterion.h>
#include <endian.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "virtqueue.h"

#define GM_BASE 0x80000000ull
#define GM_SIZE (1ull << 20)
#define GM_DESC (GM_BASE + 0x0000)
#define GM_AVAIL (GM_BASE + 0x1000)
#define GM_USED (GM_BASE + 0x2000)
#define GM_BUFS (GM_BASE + 0x10000)

struct test_guest {
	int memfd;
	uint8_t *host;
	struct guest_memory mem;
	uint16_t avail_idx;
};

static inline void guest_open(struct test_guest *g)
{
	g->memfd = memfd_create("guest", MFD_CLOEXEC);
	cr_assert(g->memfd >= 0);
	cr_assert(ftruncate(g->memfd, GM_SIZE) == 0);
	g->host = mmap(NULL, GM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, g->memfd, 0);
	cr_assert(g->host != MAP_FAILED);
	g->mem = (struct guest_memory){
		.regions = { { .gpa = GM_BASE, .size = GM_SIZE, .host = g->host } },
		.n_regions = 1,
	};
	g->avail_idx = 0;
}

static inline uint8_t *guest_ptr(struct test_guest *g, uint64_t gpa)
{
	return g->host + (gpa - GM_BASE);
}

/* Writes descriptor i of the table at table_gpa. */
static inline void guest_desc(struct test_guest *g, uint64_t table_gpa, uint16_t i, uint64_t addr,
			      uint32_t len, uint16_t flags, uint16_t next)
{
	uint8_t *d = guest_ptr(g, table_gpa) + 16u * i;
	uint64_t a = htole64(addr);
	uint32_t l = htole32(len);
	uint16_t f = htole16(flags), n = htole16(next);

	memcpy(d, &a, 8);
	memcpy(d + 8, &l, 4);
	memcpy(d + 12, &f, 2);
	memcpy(d + 14, &n, 2);
}

/* Makes head available in a queue of size entries. */
static inline void guest_avail(struct test_guest *g, uint32_t size, uint16_t head)
{
	uint16_t *ring = (uint16_t *)guest_ptr(g, GM_AVAIL);

	ring[2 + g->avail_idx % size] = htole16(head);
	g->avail_idx++;
	__atomic_store_n(&ring[1], htole16(g->avail_idx), __ATOMIC_RELEASE);
}

static inline uint16_t guest_used_idx(struct test_guest *g)
{
	return le16toh(__atomic_load_n((uint16_t *)(guest_ptr(g, GM_USED) + 2), __ATOMIC_ACQUIRE));
}

static inline void guest_used_elem(struct test_guest *g, uint32_t i, uint32_t *id, uint32_t *len)
{
	uint8_t *e = guest_ptr(g, GM_USED) + 4 + 8 * i;

	memcpy(id, e, 4);
	memcpy(len, e + 4, 4);
	*id = le32toh(*id);
	*len = le32toh(*len);
}

#endif
