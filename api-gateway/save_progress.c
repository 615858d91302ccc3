/* SPDX-License-Identifier: Apache-2.0 */
#include "save_progress.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <json-c/json.h>

#include "cleanup.h"

static int sealed_page(void)
{
	_cleanup_close_ int fd = memfd_create("cloister-save-progress",
					      MFD_CLOEXEC | MFD_ALLOW_SEALING);

	if (fd < 0)
		return -errno;
	/* Fixed at one page: snapshotd cannot cut it short under the gateway's mapping. */
	if (ftruncate(fd, SAVE_PROGRESS_BYTES) < 0 ||
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0)
		return -errno;
	return TAKE_FD(fd);
}

int save_progress_start(struct save_progress *p, uint64_t total)
{
	int fd = sealed_page();
	void *page;

	if (fd < 0)
		return fd;
	page = mmap(NULL, SAVE_PROGRESS_BYTES, PROT_READ, MAP_SHARED, fd, 0);
	if (page == MAP_FAILED) {
		int r = -errno;

		close(fd);
		return r;
	}
	pthread_mutex_lock(&p->lock);
	if (p->count)
		munmap(p->count, SAVE_PROGRESS_BYTES);
	p->count = page;
	p->total = total;
	pthread_mutex_unlock(&p->lock);
	return fd;
}

void save_progress_stop(struct save_progress *p)
{
	pthread_mutex_lock(&p->lock);
	if (p->count)
		munmap(p->count, SAVE_PROGRESS_BYTES);
	p->count = NULL;
	pthread_mutex_unlock(&p->lock);
}

struct json_object *save_progress_json(struct save_progress *p)
{
	struct json_object *o = NULL;
	uint64_t done;

	pthread_mutex_lock(&p->lock);
	if (!p->count)
		goto out;
	/* Whatever snapshotd wrote there, it is only a number to show. */
	done = __atomic_load_n(p->count, __ATOMIC_RELAXED);
	if (done > p->total)
		done = p->total;
	o = json_object_new_object();
	if (o) {
		json_object_object_add(o, "bytes_done", json_object_new_uint64(done));
		json_object_object_add(o, "bytes_total", json_object_new_uint64(p->total));
	}
out:
	pthread_mutex_unlock(&p->lock);
	return o;
}
