/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The one digest of a snapshot, for its memory chunks and for vm.json
 * itself: SHA-256 through OpenSSL's EVP interface, which uses the CPU's SHA
 * instructions where there are any.
 *
 * OpenSSL is started without reading its configuration file and the
 * algorithm is fetched once, by digest_init(), which a sandboxed process
 * must call before it is confined: afterwards, digest_bytes() only computes
 * (no file is opened, no provider loaded). A program that is not confined
 * may leave the first digest_bytes() to do it.
 */
#ifndef CLOISTER_DIGEST_H
#define CLOISTER_DIGEST_H

#include <stddef.h>
#include <stdint.h>

#define DIGEST_NAME "sha256"
#define DIGEST_BYTES 32

/* Starts OpenSSL and fetches SHA-256, once per process; -EIO if it cannot. */
int digest_init(void);

/* The digest of len bytes at buf into out; -EIO if OpenSSL fails. Thread-safe. */
int digest_bytes(const void *buf, size_t len, uint8_t out[DIGEST_BYTES]);

#endif
