/* SPDX-License-Identifier: Apache-2.0 */
/*
 * How a snapshot's memory is stored, as a vm.snapshot or vm.restore asks
 * (Cloister's own keys): "compression": "zstd", and the key that seals it,
 * "encryption_key_file": "/ABS/PATH" or "encryption_key_credential": "NAME"
 * (a file of $CREDENTIALS_DIRECTORY, as systemd's LoadCredential= makes).
 *
 * A key file holds the 32 bytes of the key, raw, or as 64 hex digits (one
 * trailing newline allowed); it is opened as any host file a request names
 * (host_open.h) and must not be readable by others. The key goes to
 * snapshotd in its SnapdSave/SnapdLoad message and nowhere else, and is
 * wiped from memory after use.
 */
#ifndef CLOISTER_SNAPSHOT_SEAL_H
#define CLOISTER_SNAPSHOT_SEAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#define SNAPSHOT_KEY_BYTES 32

struct snapshot_seal {
	bool zstd;
	bool keyed;
	uint8_t key[SNAPSHOT_KEY_BYTES];
};

/*
 * The seal a request body asks for (saving: "compression" allowed too).
 * Keys it does not know are left to the caller. -EBADMSG with err set for
 * a value or a key file that will not do.
 */
int snapshot_seal_from_json(struct json_object *body, bool saving, struct snapshot_seal *ret,
			    char *err, size_t errlen);

/* The key in the file at path (absolute), or in credential name. -EBADMSG with err set. */
int snapshot_seal_key_file(const char *path, uint8_t key[SNAPSHOT_KEY_BYTES], char *err,
			   size_t errlen);
int snapshot_seal_key_credential(const char *name, uint8_t key[SNAPSHOT_KEY_BYTES], char *err,
				 size_t errlen);

/* Forgets the key. */
void snapshot_seal_wipe(struct snapshot_seal *s);

#endif
