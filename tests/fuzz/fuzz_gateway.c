/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The gateway's own decisions on client input: vm.create's VmConfig body
 * (first byte even) and any sequence of lifecycle operations (first byte
 * odd), against invariants the lifecycle table must keep.
 */
#include <errno.h>
#include <json-c/json.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lifecycle.h"
#include "vmconfig.h"

static void fuzz_vmconfig(const uint8_t *data, size_t size)
{
	static const struct vm_options base = { .api_socket = "/run/cloister/api.sock" };
	struct json_tokener *tok = json_tokener_new_ex(8);
	Cloister__VmConfig *cfg = NULL;
	struct json_object *o;
	char err[256];

	if (!tok)
		return;
	o = json_tokener_parse_ex(tok, (const char *)data, (int)size);
	json_tokener_free(tok);
	if (!o)
		return;
	if (vmconfig_from_json(o, &base, &cfg, err, sizeof(err)) == 0) {
		/* What was accepted is within the limits a command line has. */
		if (!cfg || cfg->boot_vcpus < 1 || cfg->boot_vcpus > OPTIONS_CPUS_MAX ||
		    cfg->memory_size < OPTIONS_MEMORY_MIN || cfg->memory_size > OPTIONS_MEMORY_MAX ||
		    !cfg->payload || !cfg->payload->kernel || cfg->payload->kernel[0] != '/')
			abort();
		cloister__vm_config__free_unpacked(cfg, NULL);
	} else if (cfg || !err[0]) {
		abort();
	}
	json_object_put(o);
}

static void fuzz_lifecycle(const uint8_t *data, size_t size)
{
	enum vm_state s = VM_STATE_NOT_CREATED;

	for (size_t i = 0; i < size; i++) {
		enum vm_op op = (enum vm_op)(data[i] % (VM_OP_COUNT + 1));
		const char *why = NULL;
		int r = lifecycle_check(s, op, &why);
		enum vm_state next = lifecycle_next(s, op);

		if (r < 0 && (next != s || !why || !*why))
			abort();
		if (r == 0 && op == VM_OP_DELETE && next != VM_STATE_NOT_CREATED)
			abort();
		if (r == 0 && op == VM_OP_SNAPSHOT && (s != VM_STATE_PAUSED || next != s))
			abort();
		if (s == VM_STATE_NOT_CREATED && r == 0 && op != VM_OP_CREATE && op != VM_OP_RESTORE &&
		    op != VM_OP_DELETE)
			abort();
		if ((unsigned)next >= VM_STATE_COUNT)
			abort();
		s = next;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	if (data[0] & 1)
		fuzz_lifecycle(data + 1, size - 1);
	else
		fuzz_vmconfig(data + 1, size - 1);
	return 0;
}
