/* SPDX-License-Identifier: Apache-2.0 */
/* vm.info's snapshot_progress: the page snapshotd counts in, as the gateway shows it. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <json-c/json.h>

#include "save_progress.h"

static uint64_t field(struct json_object *o, const char *key)
{
	struct json_object *v;

	cr_assert(json_object_object_get_ex(o, key, &v), "no %s", key);
	return json_object_get_uint64(v);
}

Test(save_progress, shown_while_a_save_runs_never_past_the_total)
{
	struct save_progress p = SAVE_PROGRESS_INIT;
	struct json_object *o;
	uint64_t *snapd;
	int fd;

	cr_expect_null(save_progress_json(&p), "no save, nothing shown");
	fd = save_progress_start(&p, 1 << 20);
	cr_assert_geq(fd, 0);
	/* Sealed: snapshotd can neither shrink nor grow what the gateway maps. */
	cr_expect_eq(fcntl(fd, F_GET_SEALS) & (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL),
		     F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
	cr_expect_neq(ftruncate(fd, 0), 0);
	snapd = mmap(NULL, SAVE_PROGRESS_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	cr_assert_neq(snapd, MAP_FAILED);

	o = save_progress_json(&p);
	cr_assert_not_null(o);
	cr_expect_eq(field(o, "bytes_done"), 0);
	cr_expect_eq(field(o, "bytes_total"), 1 << 20);
	json_object_put(o);
	*snapd = 4096;
	o = save_progress_json(&p);
	cr_expect_eq(field(o, "bytes_done"), 4096);
	json_object_put(o);
	/* A peer that writes nonsense shows at most the total. */
	*snapd = UINT64_MAX;
	o = save_progress_json(&p);
	cr_expect_eq(field(o, "bytes_done"), 1 << 20);
	json_object_put(o);

	save_progress_stop(&p);
	cr_expect_null(save_progress_json(&p), "the save ended");
	munmap(snapd, SAVE_PROGRESS_BYTES);
	close(fd);
}
