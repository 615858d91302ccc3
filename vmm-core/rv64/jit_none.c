/* SPDX-License-Identifier: Apache-2.0 */
/* Hosts without a translator: rv64_jit_create() says so and the interpreter runs everything. */
#include <errno.h>

#include "hart.h"

int rv64_jit_prepare(unsigned max_harts)
{
	(void)max_harts;
	return 0;
}

int rv64_jit_create(struct rv64_jit **ret_jit)
{
	*ret_jit = NULL;
	return -ENOTSUP;
}

void rv64_jit_destroy(struct rv64_jit *jit)
{
	(void)jit;
}

int rv64_jit_run(struct accel_vcpu *h, unsigned budget)
{
	return rv64_run_block(h, budget);
}

void rv64_jit_code_written(struct accel_vcpu *h, const uint8_t *page)
{
	(void)h;
	(void)page;
}

uint64_t rv64_jit_insns(const struct rv64_jit *jit)
{
	(void)jit;
	return 0;
}
