/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The page server of an OnDemand restore. Every process that maps guest
 * memory (a client) registered its mapping of the region memfds with a
 * userfaultfd in missing mode and handed that uffd over; the pager answers
 * each fault with the page from the region file (UFFDIO_COPY), and between
 * faults copies the rest of the snapshot's data in, in file order.
 *
 * The memfds are shmem: a page filled through any one uffd is in the page
 * cache for every mapping. So a fault whose page is already there (filled
 * for another client, or by the prefetch) gets EEXIST from UFFDIO_COPY and
 * is answered with UFFDIO_WAKE on its own uffd instead. The same EEXIST is
 * what keeps the prefetch from overwriting a page the guest wrote: a page
 * can only be written once it is present, and a present page is never
 * copied over.
 *
 * A working set from vm.json (working_set.h) is prefetched first, in its
 * order; the rest waits until a moment after the gateway says the VM was
 * resumed (SnapdControl), so that the faults of the guest's first moments
 * are recorded as the next working set, sent with the last SnapdProgress.
 *
 * When the prefetch has passed the end, every registration is dropped
 * (UFFDIO_UNREGISTER through the client's uffd: pages still missing are
 * holes of the snapshot and read as zero), the uffds and region files are
 * closed, and the pager idles until the gateway hangs up.
 */
#ifndef CLOISTER_PAGER_H
#define CLOISTER_PAGER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chunk.h"
#include "layout.h"
#include "working_set.h"

#define PAGER_MAX_CLIENTS 16
#define PAGER_ERR_LEN 256

struct pager {
	size_t n_regions;
	int file[LAYOUT_MAX_REGIONS];		/* region files, read-only */
	/*
	 * How the files hold memory: every chunk is decoded and checked before
	 * its pages are served. NULL (tests only): plain files, read unchecked.
	 */
	struct chunk_set *chunks;
	uint64_t size[LAYOUT_MAX_REGIONS];
	size_t n_clients;
	int uffd[PAGER_MAX_CLIENTS];
	uint64_t host[PAGER_MAX_CLIENTS][LAYOUT_MAX_REGIONS];	/* region i in client c */
	/* prefetch: next offset in region cur_region */
	size_t cur_region;
	uint64_t cur_off;
	uint64_t present, total;	/* bytes of file data passed by the prefetch, of all */
	uint64_t faults, fault_wakes;	/* faults served; of them, answered by a wake */
	bool done;
	bool prefetch;		/* off: faults only, until the gateway asks to finish */
	/*
	 * The working set vm.json named, prefetched first in its order; then the
	 * rest in file order, from bulk_at_ms on (held back a little after
	 * resume, so that the guest's own faults show its working set).
	 */
	uint64_t *ws;
	size_t n_ws, ws_next;
	int64_t bulk_at_ms;
	/* Blocks in the order they were made present for the guest: the next working set. */
	struct ws_record rec;
	/*
	 * With chunks: one bit per chunk whose data pages are all present, so it
	 * is decoded and checked once; a fault there later is one of its zero pages.
	 */
	uint8_t *chunk_in[LAYOUT_MAX_REGIONS];
	size_t page;
	uint8_t *buf;
	char err[PAGER_ERR_LEN];
};

/*
 * Takes over files[0..n) (region files of sizes[i] bytes each, checked
 * before). total is the data the files hold (SEEK_DATA), for progress.
 */
int pager_init(struct pager *p, int *files, const uint64_t *sizes, size_t n);

/* The blocks to prefetch first, in order (copied; checked by vmjson). */
int pager_set_working_set(struct pager *p, const uint64_t *blocks, size_t n);

/* Takes over uffd (a client's, API done, regions registered at host[i]). */
int pager_add_client(struct pager *p, int uffd, const uint64_t *host);

/*
 * Serves faults and prefetches until gw (the gateway's socket) hangs up:
 * 0 then. Sends SnapdProgress on gw as it goes (and once done). On a
 * failure (a region file unreadable or cut short, a client's uffd broken)
 * sends SnapdProgress{error, message} and returns -errno with p->err set.
 * prefetch false: faults only (the tests use it to see faults served alone)
 * until the gateway sends SnapdControl{finish}.
 */
int pager_run(struct pager *p, int gw, bool prefetch);

void pager_release(struct pager *p);

#endif
