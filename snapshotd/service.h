/* SPDX-License-Identifier: Apache-2.0 */
/*
 * snapshotd's one operation per run, spoken over two sockets: gw to the
 * gateway (which opened every file and passes fds), core to vmm-core (which
 * passes the guest memory memfds). Every wait has a timeout so a dead peer
 * never leaves snapshotd hanging; anything unexpected is refused with an
 * error reply and the operation fails.
 */
#ifndef CLOISTER_SNAPD_SERVICE_H
#define CLOISTER_SNAPD_SERVICE_H

#include <stdbool.h>

#define SNAPD_TIMEOUT_MS 60000

/* Greets both peers and waits for the gateway; vmm-core is awaited when it is needed. */
int snapd_handshake(int gw, int core, int timeout_ms);

/*
 * gw: SnapdSave{config} + fds [vm.json, region0, ...];
 * core: SnapSaveState{state, regions} + one read-only memfd per region.
 * Writes the regions, then vm.json; Reply{0} or Reply{-errno, message} to both.
 */
int snapd_serve_save(int gw, int core, int timeout_ms);

/*
 * gw: SnapdLoad{region_files} + fds [vm.json, memory-region-0, ...], answered
 * with SnapdLoadReply{error, message, config}; then core: SnapFill{regions} +
 * one writable memfd per region, answered with SnapFillReply{error, message, state}.
 * With SnapdLoad{on_demand}, SnapFill{on_demand, host_addrs} carries vmm-core's
 * userfaultfd as well: the answer comes at once and snapshotd goes on as the
 * VM's page server (pager.h) until the gateway hangs up. The faults_only
 * variant does no prefetch (for tests: the fault path, and files cut meanwhile).
 */
int snapd_serve_load(int gw, int core, int timeout_ms);
int snapd_serve_load_faults_only(int gw, int core, int timeout_ms);

#endif
