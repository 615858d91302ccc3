/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for the REST API's request-body decoders: whatever a
 * client sends as a vm.snapshot or vm.restore body must be refused or
 * accepted cleanly, never crash, leak or read past the given length.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "options.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* An exact-size copy, so reading one byte too far is caught by ASan. */
	char *body = malloc(size ? size : 1);
	char err[256], *url = NULL, *path = NULL;
	bool resume;

	if (!body)
		return 0;
	memcpy(body, data, size);
	if (api_parse_snapshot_body(body, size, &url, err, sizeof(err)) == 0) {
		/* Accepted URLs must be ones the snapshot writer can use. */
		if (parse_file_url(url, &path) != 0 || path[0] != '/')
			abort();
		free(path);
		free(url);
	}
	if (api_parse_restore_body(body, size, &url, &resume, err, sizeof(err)) == 0) {
		if (parse_file_url(url, &path) != 0)
			abort();
		free(path);
		free(url);
	}
	free(body);
	return 0;
}
