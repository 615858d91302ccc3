/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Whether the stop under way is half of a restart. systemd keeps a unit's
 * fd store while a job of the unit is queued (systemctl restart) and drops
 * it when the unit stops for good; systemd 252 tells the service neither in
 * its environment nor in a directive, so the gateway asks the manager over
 * D-Bus: GetUnitByPID(own pid), the unit's Job, that job's JobType, and the
 * service's FileDescriptorStoreMax.
 */
#ifndef CLOISTER_RESTART_QUERY_H
#define CLOISTER_RESTART_QUERY_H

#include <stddef.h>

/*
 * 1 when a restart job of our unit is queued and its fd store holds at
 * least min_fds fds; 0 when not (why says what was found); -errno when the
 * manager could not be asked (why says why).
 */
int restart_query(unsigned min_fds, char *why, size_t whylen);

/*
 * The decision from what the manager answered, for tests: job_type is the
 * JobType of the unit's job (NULL: none), store_max its
 * FileDescriptorStoreMax.
 */
int restart_query_decide(const char *job_type, unsigned store_max, unsigned min_fds, char *why,
			 size_t whylen);

#endif
