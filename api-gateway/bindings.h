/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A snapshot's host bindings: the host resources its config names (disk
 * images, taps, serial and console files and sockets). They are sealed at
 * snapshot time with a key only this host's gateway holds (a keyed BLAKE2b
 * over their canonical form, in the snapshot's host-bindings file), so that
 * a restore reuses them only when this host's Cloister wrote them from what
 * a person named. A snapshot whose bindings do not verify (copied from
 * elsewhere, edited) restores only with bindings the restorer gives.
 * docs/trust.md has the whole model.
 */
#ifndef CLOISTER_BINDINGS_H
#define CLOISTER_BINDINGS_H

#include <stdbool.h>
#include <stddef.h>

#include <json-c/json.h>

#include "cloister.pb-c.h"
#include "options.h"
#include "tap_fd.h"

#define BINDINGS_KEY_BYTES 32
#define BINDINGS_MAC_BYTES 32

/*
 * The host key at path, or where it lives by default when path is NULL:
 * /var/lib/cloister/host.key for root, $XDG_STATE_HOME/cloister/host.key
 * (~/.local/state/...) otherwise. Made (0600, random) on first use; refused
 * unless it is a regular file of ours, without links, that nobody else may read.
 */
int bindings_host_key(const char *path, uint8_t key[BINDINGS_KEY_BYTES], char *err, size_t errlen);

/* Where the host key is, from --host-key; NULL (the default) for its usual place. */
void bindings_set_key_path(const char *path);

/* The seal of config's host bindings under key. */
int bindings_mac(const Cloister__VmConfig *config, const uint8_t key[BINDINGS_KEY_BYTES],
		 uint8_t mac[BINDINGS_MAC_BYTES]);

/* Writes host-bindings.partial for config into a snapshot being written. */
int bindings_seal(int dirfd, const Cloister__VmConfig *config, char *err, size_t errlen);

/* Whether the snapshot in dirfd carries a valid seal of config's bindings. */
bool bindings_verify(int dirfd, const Cloister__VmConfig *config);

/*
 * vm.restore's "devices": [{"id": "disk0", "path": "/img"}, {"id": "net0",
 * "tap": "tap1"}, {"id": "serial", "file": "/log"}, {"id": "console0", "mode": "pty"}] into ret (the same keys as
 * --restore-bind). -EINVAL with err set; ret is freed with restore_binds_free().
 */
int bindings_from_json(struct json_object *devices, struct restore_binds *ret, char *err,
		       size_t errlen);

/*
 * Adds vm.restore's "net_fds" to binds: each NIC named there is bound to its
 * tap descriptor (borrowed: it must outlive binds). A device bound both
 * here and in "devices", or more bindings than fit: -EINVAL with err set.
 */
int bindings_add_net_fds(struct restore_binds *binds, const struct tap_fd *net_fds, size_t n,
			 char *err, size_t errlen);

/*
 * Puts binds into config (a snapshot's, just loaded). Without verified, every
 * disk and NIC must be bound (-EBADMSG naming the first that is not), and
 * serial or console output to a file or socket goes to /dev/null instead.
 * A file a binding names is created here if missing (never truncated). A
 * binding for a device the snapshot does not have is refused.
 */
int bindings_apply(Cloister__VmConfig *config, const struct restore_binds *binds, bool verified,
		   char *err, size_t errlen);

#endif
