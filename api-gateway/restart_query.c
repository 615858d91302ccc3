/* SPDX-License-Identifier: Apache-2.0 */
#include "restart_query.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-bus.h>
#include <unistd.h>

#include "errmsg.h"

#define SD_DEST "org.freedesktop.systemd1"
#define SD_PATH "/org/freedesktop/systemd1"
/* systemd's own bus for root: answers without a dbus-daemon running. */
#define SD_PRIVATE "unix:path=/run/systemd/private"

int restart_query_decide(const char *job_type, unsigned store_max, unsigned min_fds, char *why,
			 size_t whylen)
{
	if (!job_type || strcmp(job_type, "restart") != 0) {
		err_set(why, whylen, "no restart is queued (job: %s)", job_type ? job_type : "none");
		return 0;
	}
	if (store_max < min_fds) {
		err_set(why, whylen, "FileDescriptorStoreMax=%u is below the %u fds guest memory needs",
			store_max, min_fds);
		return 0;
	}
	err_set(why, whylen, "a restart is queued and the fd store takes %u fds", store_max);
	return 1;
}

static int bus_open(sd_bus **ret)
{
	sd_bus *bus = NULL;
	int r = sd_bus_new(&bus);

	if (r >= 0)
		r = sd_bus_set_address(bus, SD_PRIVATE);
	if (r >= 0)
		r = sd_bus_start(bus);
	if (r >= 0) {
		*ret = bus;
		return 0;
	}
	sd_bus_unref(bus);
	return sd_bus_open_system(ret);
}

/* The path of our unit's job, or NULL when it has none. */
static int unit_job(sd_bus *bus, const char *unit, char **ret_job, sd_bus_error *e)
{
	sd_bus_message *m = NULL;
	const char *path = NULL;
	uint32_t id = 0;
	int r = sd_bus_get_property(bus, SD_DEST, unit, "org.freedesktop.systemd1.Unit", "Job", e, &m,
				    "(uo)");

	if (r >= 0)
		r = sd_bus_message_read(m, "(uo)", &id, &path);
	*ret_job = NULL;
	if (r >= 0 && id != 0 && path && !(*ret_job = strdup(path)))
		r = -ENOMEM;
	sd_bus_message_unref(m);
	return r < 0 ? r : 0;
}

static int ask(sd_bus *bus, char **ret_type, unsigned *ret_max, sd_bus_error *e)
{
	sd_bus_message *m = NULL;
	const char *unit = NULL;
	char *unit_copy = NULL, *job = NULL;
	uint32_t max = 0;
	int r = sd_bus_call_method(bus, SD_DEST, SD_PATH, "org.freedesktop.systemd1.Manager",
				   "GetUnitByPID", e, &m, "u", (uint32_t)getpid());

	if (r >= 0)
		r = sd_bus_message_read(m, "o", &unit);
	if (r >= 0 && !(unit_copy = strdup(unit)))
		r = -ENOMEM;
	sd_bus_message_unref(m);
	if (r >= 0)
		r = sd_bus_get_property_trivial(bus, SD_DEST, unit_copy, "org.freedesktop.systemd1.Service",
						"FileDescriptorStoreMax", e, 'u', &max);
	if (r >= 0)
		r = unit_job(bus, unit_copy, &job, e);
	*ret_type = NULL;
	if (r >= 0 && job)
		r = sd_bus_get_property_string(bus, SD_DEST, job, "org.freedesktop.systemd1.Job",
					       "JobType", e, ret_type);
	*ret_max = max;
	free(unit_copy);
	free(job);
	return r;
}

int restart_query(unsigned min_fds, char *why, size_t whylen)
{
	sd_bus_error e = SD_BUS_ERROR_NULL;
	sd_bus *bus = NULL;
	char *type = NULL;
	unsigned max = 0;
	int r = bus_open(&bus);

	if (r < 0) {
		err_set(why, whylen, "cannot reach the service manager over D-Bus: %s", strerror(-r));
		return r;
	}
	r = ask(bus, &type, &max, &e);
	if (r < 0)
		err_set(why, whylen, "the service manager did not say whether a restart is queued: %s",
			e.message ? e.message : strerror(-r));
	else
		r = restart_query_decide(type, max, min_fds, why, whylen);
	free(type);
	sd_bus_error_free(&e);
	sd_bus_flush_close_unref(bus);
	return r;
}
