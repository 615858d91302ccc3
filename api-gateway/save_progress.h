/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

#include <pthread.h>
#include <stdint.h>

struct json_object;

/*
 * How far a snapshot's save has got, for vm.info while it runs: snapshotd
 * adds the bytes of guest memory it has written out to a counter in one
 * page the gateway shares with it (a sealed memfd). No message is needed,
 * so neither side waits on the other to report.
 */
struct save_progress {
	pthread_mutex_t lock;
	uint64_t *count;	/* the shared page while a save runs, else NULL */
	uint64_t total;		/* bytes of guest memory the save covers */
};

#define SAVE_PROGRESS_INIT { .lock = PTHREAD_MUTEX_INITIALIZER }

/* Bytes of the page; snapshotd's counter is its first 8 bytes. */
#define SAVE_PROGRESS_BYTES 4096

/* Maps a fresh, sealed page with the count at 0: its fd (for snapshotd), or -errno. */
int save_progress_start(struct save_progress *p, uint64_t total);

/* The save ended: the page is unmapped. */
void save_progress_stop(struct save_progress *p);

/*
 * {"bytes_done", "bytes_total"} while a save runs (the count as
 * snapshotd left it, never past the total), else NULL.
 */
struct json_object *save_progress_json(struct save_progress *p);
