/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The generation ID page. Linux maps it with ioremap and copies the 16
 * bytes out with ordinary loads, so any aligned or unaligned access of up
 * to 8 bytes is served, little-endian, from the ID.
 */
#include "vmgenid.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

struct vmgenid {
	pthread_mutex_t lock;
	struct vmgenid_params params;
	uint8_t id[VMGENID_ID_SIZE];
};

static int vmgenid_fill(uint8_t buf[VMGENID_ID_SIZE])
{
	ssize_t n = getrandom(buf, VMGENID_ID_SIZE, 0);

	if (n < 0)
		return -errno;
	return n == VMGENID_ID_SIZE ? 0 : -EIO;
}

int vmgenid_create(const struct vmgenid_params *p, struct vmgenid **ret_gen)
{
	struct vmgenid *g = calloc(1, sizeof(*g));
	int r;

	if (!g)
		return -ENOMEM;
	r = vmgenid_fill(g->id);
	if (r < 0) {
		free(g);
		return r;
	}
	pthread_mutex_init(&g->lock, NULL);
	g->params = *p;
	*ret_gen = g;
	return 0;
}

void vmgenid_destroy(struct vmgenid *g)
{
	if (!g)
		return;
	pthread_mutex_destroy(&g->lock);
	free(g);
}

static bool vmgenid_access_ok(uint64_t offset, unsigned size)
{
	if (size != 1 && size != 2 && size != 4 && size != 8)
		return false;
	return offset < VMGENID_WINDOW_SIZE && size <= VMGENID_WINDOW_SIZE - offset;
}

int vmgenid_read(struct vmgenid *g, uint64_t offset, unsigned size, uint64_t *ret_val)
{
	uint64_t val = 0;

	if (!vmgenid_access_ok(offset, size))
		return -EFAULT;
	pthread_mutex_lock(&g->lock);
	for (unsigned i = 0; i < size; i++)
		if (offset + i < VMGENID_ID_SIZE)
			val |= (uint64_t)g->id[offset + i] << (8 * i);
	pthread_mutex_unlock(&g->lock);
	*ret_val = val;
	return 0;
}

int vmgenid_write(struct vmgenid *g, uint64_t offset, unsigned size, uint64_t val)
{
	return vmgenid_access_ok(offset, size) ? 0 : -EFAULT;
}

int vmgenid_renew(struct vmgenid *g)
{
	uint8_t id[VMGENID_ID_SIZE];
	int r = vmgenid_fill(id);

	if (r < 0)
		return r;
	pthread_mutex_lock(&g->lock);
	memcpy(g->id, id, sizeof(id));
	pthread_mutex_unlock(&g->lock);
	/* The guest reads the new ID in its handler: the ID goes first, then the edge. */
	if (g->params.raise)
		g->params.raise(g->params.opaque, g->params.irq);
	return 0;
}

void vmgenid_get(struct vmgenid *g, uint8_t ret_id[VMGENID_ID_SIZE])
{
	pthread_mutex_lock(&g->lock);
	memcpy(ret_id, g->id, VMGENID_ID_SIZE);
	pthread_mutex_unlock(&g->lock);
}

static int vmgenid_component_save(void *obj, Cloister__VmState *state, char *err, size_t errlen)
{
	/* Deliberately nothing: the ID of the saved machine must not come back. */
	return 0;
}

static int vmgenid_component_restore(void *obj, const Cloister__VmState *state, char *err,
				     size_t errlen)
{
	int r = vmgenid_renew(obj);

	if (r < 0)
		snprintf(err, errlen, "no fresh generation ID from getrandom(): %s", strerror(-r));
	return r;
}

const struct component_ops vmgenid_component_ops = {
	.save = vmgenid_component_save,
	.restore = vmgenid_component_restore,
};
