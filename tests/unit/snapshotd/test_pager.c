/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The page server against a fake client: this process maps one memfd twice
 * (as vmm-core and a device process would), registers each mapping with its
 * own userfaultfd made through /dev/userfaultfd, and touches the pages from
 * threads while pager_run() serves them in another.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <linux/userfaultfd.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "chunk.h"
#include "digest.h"
#include "fixture.h"
#include "frame.h"
#include "pager.h"

#define PAGE 4096u
#define NPAGES 256u
#define SIZE ((uint64_t)NPAGES * PAGE)
#define HOLE_FIRST 100u	/* pages [HOLE_FIRST, HOLE_END) are a hole of the file */
#define HOLE_END 164u
#define ZERO_PAGE 7u	/* written as zeros: data, but skipped by the prefetch */

struct rig {
	int file;
	int memfd;
	uint8_t *map[2];
	int uffd[2];
	struct pager p;
	int gw[2];	/* [0]: the pager's end; [1]: the gateway's */
	pthread_t thread;
	bool prefetch;
	int result;
};

static uint8_t page_byte(unsigned k)
{
	return (uint8_t)(k * 7 + 1);
}

static void fill_file(int fd)
{
	static uint8_t buf[PAGE];

	for (unsigned k = 0; k < NPAGES; k++) {
		if (k >= HOLE_FIRST && k < HOLE_END)
			continue;
		memset(buf, k == ZERO_PAGE ? 0 : page_byte(k), sizeof(buf));
		cr_assert_eq(pwrite(fd, buf, PAGE, (off_t)k * PAGE), PAGE);
	}
	cr_assert_eq(ftruncate(fd, (off_t)SIZE), 0);
}

static uint8_t expected(unsigned k)
{
	return (k >= HOLE_FIRST && k < HOLE_END) || k == ZERO_PAGE ? 0 : page_byte(k);
}

static int make_uffd(void *addr)
{
	struct uffdio_api api = { .api = UFFD_API, .features = UFFD_FEATURE_MISSING_SHMEM };
	struct uffdio_register reg = {
		.range = { .start = (uint64_t)(uintptr_t)addr, .len = SIZE },
		.mode = UFFDIO_REGISTER_MODE_MISSING,
	};
	int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
	int uffd;

	if (dev < 0)
		cr_skip_test("/dev/userfaultfd cannot be opened here: %s", strerror(errno));
	uffd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
	close(dev);
	cr_assert_geq(uffd, 0, "USERFAULTFD_IOC_NEW: %s", strerror(errno));
	cr_assert_eq(ioctl(uffd, UFFDIO_API, &api), 0);
	cr_assert_eq(ioctl(uffd, UFFDIO_REGISTER, &reg), 0, "register: %s", strerror(errno));
	return uffd;
}

static void rig_init(struct rig *r)
{
	int files[1];
	uint64_t sizes[1] = { SIZE };

	*r = (struct rig){ .gw = { -1, -1 } };
	r->file = tmpfile_fd();
	cr_assert_geq(r->file, 0);
	fill_file(r->file);
	r->memfd = memfd_of_size(SIZE);
	cr_assert_geq(r->memfd, 0);
	for (int i = 0; i < 2; i++) {
		r->map[i] = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, r->memfd, 0);
		cr_assert_neq(r->map[i], MAP_FAILED);
		r->uffd[i] = make_uffd(r->map[i]);
	}
	files[0] = dup(r->file);
	cr_assert_eq(pager_init(&r->p, files, sizes, 1), 0);
	cr_expect_eq(r->p.total, SIZE - (HOLE_END - HOLE_FIRST) * PAGE, "data of the file: %lu",
		     r->p.total);
	for (int i = 0; i < 2; i++) {
		uint64_t host = (uint64_t)(uintptr_t)r->map[i];

		cr_assert_eq(pager_add_client(&r->p, r->uffd[i], &host), 0);
	}
}

static void *pager_thread(void *opaque)
{
	struct rig *r = opaque;

	r->result = pager_run(&r->p, r->gw[0], r->prefetch);
	return NULL;
}

static void rig_start(struct rig *r, bool prefetch)
{
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, r->gw), 0);
	r->prefetch = prefetch;
	cr_assert_eq(pthread_create(&r->thread, NULL, pager_thread, r), 0);
}

/* Hangs up as the gateway would; the pager's answer. */
static int rig_stop(struct rig *r)
{
	close(r->gw[1]);
	pthread_join(r->thread, NULL);
	close(r->gw[0]);
	r->gw[0] = r->gw[1] = -1;
	return r->result;
}

static void rig_release(struct rig *r)
{
	pager_release(&r->p);
	for (int i = 0; i < 2; i++)
		munmap(r->map[i], SIZE);
	close(r->memfd);
	close(r->file);
}

static void expect_page(const uint8_t *map, unsigned k)
{
	const uint8_t *pg = map + (uint64_t)k * PAGE;

	cr_expect_eq(pg[0], expected(k), "page %u starts with %u, expected %u", k, pg[0], expected(k));
	cr_expect_eq(pg[PAGE - 1], expected(k), "page %u ends with %u", k, pg[PAGE - 1]);
}

/* The last SnapdProgress the pager sent (the gateway's end must hold one). */
static Cloister__SnapdProgress *last_progress(int sock, Cloister__Envelope **ret_env)
{
	Cloister__Envelope *env = NULL, *last = NULL;
	int fds[1];
	size_t n_fds;

	while (frame_recv_timeout(sock, 0, &env, fds, 0, &n_fds) == 0) {
		cr_assert_eq(env->msg_case, CLOISTER__ENVELOPE__MSG_SNAPD_PROGRESS);
		frame_free(last);
		last = env;
	}
	cr_assert_not_null(last, "no progress was sent");
	*ret_env = last;
	return last->snapd_progress;
}

Test(pager, faults_are_served_from_the_file, .timeout = 30)
{
	struct rig r;

	rig_init(&r);
	rig_start(&r, false);
	expect_page(r.map[0], 5);
	expect_page(r.map[0], NPAGES - 1);
	expect_page(r.map[0], HOLE_FIRST + 3);
	expect_page(r.map[0], ZERO_PAGE);
	/* The kernel faults too: a write() out of a missing page. */
	{
		int sv[2];
		uint8_t b[PAGE];

		cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
		cr_assert_eq(write(sv[0], r.map[1] + 40 * PAGE, 64), 64);
		cr_assert_eq(read(sv[1], b, sizeof(b)), 64);
		cr_expect_eq(b[0], page_byte(40));
		close(sv[0]);
		close(sv[1]);
	}
	cr_expect_eq(rig_stop(&r), 0);
	/* Pages 5 and 7 share a 64 KiB block: one fault fills both. */
	cr_expect_eq(r.p.faults, 4);
	cr_expect_eq(r.p.fault_wakes, 0);
	rig_release(&r);
}

struct toucher {
	const uint8_t *addr;
	uint8_t seen;
};

static void *touch(void *opaque)
{
	struct toucher *t = opaque;

	t->seen = *(volatile const uint8_t *)t->addr;
	return NULL;
}

/*
 * Once a page is in the shared page cache, no mapping faults on it. The race
 * is two faults on the same missing page queued on both uffds before either
 * is served: the first UFFDIO_COPY fills it, the second gets EEXIST and its
 * waiter must be woken (UFFDIO_WAKE), not left asleep.
 */
Test(pager, a_page_filled_for_one_client_wakes_the_other, .timeout = 30)
{
	struct toucher t[2];
	pthread_t th[2];
	struct rig r;

	rig_init(&r);
	for (int i = 0; i < 2; i++) {
		struct pollfd pfd = { .fd = r.uffd[i], .events = POLLIN };

		t[i] = (struct toucher){ .addr = r.map[i] + 5 * PAGE + 17 };
		cr_assert_eq(pthread_create(&th[i], NULL, touch, &t[i]), 0);
		cr_assert_eq(poll(&pfd, 1, 10000), 1, "client %d's fault never queued", i);
	}
	rig_start(&r, false);
	for (int i = 0; i < 2; i++) {
		pthread_join(th[i], NULL);
		cr_expect_eq(t[i].seen, page_byte(5));
	}
	cr_expect_eq(rig_stop(&r), 0);
	cr_expect_eq(r.p.faults, 2);
	cr_expect_eq(r.p.fault_wakes, 1);
	rig_release(&r);
}

/*
 * Pages written after resume survive the prefetch: it copies only into
 * missing pages. Then every page matches the file, registrations are gone
 * (holes read as zero without a fault), and the files are closed.
 */
Test(pager, prefetch_fills_the_rest_and_keeps_writes, .timeout = 30)
{
	struct rig r;

	rig_init(&r);
	rig_start(&r, false);
	r.map[0][3 * PAGE] = 0xee;		/* faulted in, then written */
	r.map[1][(NPAGES - 2) * PAGE + 9] = 0xdd;
	r.map[0][(HOLE_FIRST + 1) * PAGE] = 0xcc;	/* a hole page the guest wrote */
	cr_expect_eq(rig_stop(&r), 0);

	rig_start(&r, true);
	while (!r.p.done)
		usleep(1000);
	cr_expect_eq(rig_stop(&r), 0);
	cr_expect(r.p.done);
	cr_expect_eq(r.p.present, r.p.total);
	cr_expect_eq(r.p.uffd[0], -1, "uffds are closed once done");
	cr_expect_eq(r.p.file[0], -1, "region files are closed once done");
	for (unsigned k = 0; k < NPAGES; k++) {
		if (k == 3 || k == NPAGES - 2 || k == HOLE_FIRST + 1)
			continue;
		expect_page(r.map[k % 2], k);
	}
	cr_expect_eq(r.map[0][3 * PAGE], 0xee, "the prefetch overwrote a page written after resume");
	cr_expect_eq(r.map[0][3 * PAGE + 1], expected(3));
	cr_expect_eq(r.map[0][(NPAGES - 2) * PAGE + 9], 0xdd);
	cr_expect_eq(r.map[1][(HOLE_FIRST + 1) * PAGE], 0xcc);
	rig_release(&r);
}

Test(pager, progress_reports_done_with_all_bytes, .timeout = 30)
{
	Cloister__Envelope *env = NULL;
	Cloister__SnapdProgress *pr;
	struct rig r;

	rig_init(&r);
	rig_start(&r, true);
	while (!r.p.done)
		usleep(1000);
	/* done is set before the last message goes out: give the thread a moment by stopping it. */
	shutdown(r.gw[1], SHUT_WR);
	pthread_join(r.thread, NULL);
	pr = last_progress(r.gw[1], &env);
	cr_expect(pr->done);
	cr_expect_eq(pr->error, 0);
	cr_expect_eq(pr->present, r.p.total);
	cr_expect_eq(pr->total, r.p.total);
	frame_free(env);
	close(r.gw[0]);
	close(r.gw[1]);
	rig_release(&r);
}

/*
 * A region file cut short during the restore: the fault cannot be served,
 * the pager says why on the gateway's socket and returns; the waiting
 * thread is released when the uffds close (the gateway ends the VM then).
 */
Test(pager, a_truncated_file_fails_with_the_reason, .timeout = 30)
{
	Cloister__Envelope *env = NULL;
	Cloister__SnapdProgress *pr;
	struct toucher t;
	pthread_t th;
	struct rig r;

	rig_init(&r);
	cr_assert_eq(ftruncate(r.file, (off_t)(SIZE / 2)), 0);
	rig_start(&r, false);
	t = (struct toucher){ .addr = r.map[0] + SIZE - PAGE };
	cr_assert_eq(pthread_create(&th, NULL, touch, &t), 0);
	pthread_join(r.thread, NULL);
	cr_expect_eq(r.result, -EIO);
	cr_expect(strstr(r.p.err, "memory-region-0 ends at") != NULL, "err: %s", r.p.err);
	pr = last_progress(r.gw[1], &env);
	cr_expect_eq(pr->error, -EIO);
	cr_expect(strstr(pr->message, "changed during an OnDemand restore") != NULL, "message: %s",
		  pr->message);
	frame_free(env);
	pager_release(&r.p);	/* the last reference to the uffds: the fault completes */
	pthread_join(th, NULL);
	close(r.gw[0]);
	close(r.gw[1]);
	for (int i = 0; i < 2; i++)
		munmap(r.map[i], SIZE);
	close(r.memfd);
	close(r.file);
}

/* The rig's file as one checked plain chunk (SIZE is one chunk), its digest taken now. */
static void rig_chunks(struct rig *r, struct chunk_set *s)
{
	struct chunk_format f = { .zstd = false };
	uint64_t size = SIZE;
	uint8_t *buf = malloc(SIZE);

	cr_assert_eq(SIZE, CHUNK_SIZE);
	cr_assert_eq(chunk_set_init(s, &f, &size, 1), 0);
	cr_assert_eq(pread(r->file, buf, SIZE, 0), (ssize_t)SIZE);
	s->t[0].e[0] = (struct chunk_entry){ .offset = 0, .length = SIZE };
	cr_assert_eq(digest_bytes(buf, SIZE, s->t[0].e[0].digest), 0);
	free(buf);
	r->p.chunks = s;
}

Test(pager, checked_chunks_are_served, .timeout = 30)
{
	struct chunk_set s;
	struct rig r;

	rig_init(&r);
	rig_chunks(&r, &s);
	rig_start(&r, false);
	expect_page(r.map[0], 5);
	expect_page(r.map[1], NPAGES - 1);
	expect_page(r.map[0], HOLE_FIRST + 3);
	cr_expect_eq(rig_stop(&r), 0);
	rig_release(&r);
	chunk_set_release(&s);
}

/* A chunk that does not match its digest: no page of it reaches the client. */
Test(pager, a_damaged_chunk_fails_before_any_page_is_served, .timeout = 30)
{
	Cloister__Envelope *env = NULL;
	Cloister__SnapdProgress *pr;
	struct chunk_set s;
	struct toucher t;
	pthread_t th;
	struct rig r;
	uint8_t b = 0x55;

	rig_init(&r);
	rig_chunks(&r, &s);
	cr_assert_eq(pwrite(r.file, &b, 1, 200 * PAGE + 9), 1);
	rig_start(&r, true);
	t = (struct toucher){ .addr = r.map[0] + 5 * PAGE };
	cr_assert_eq(pthread_create(&th, NULL, touch, &t), 0);
	pthread_join(r.thread, NULL);
	cr_expect_eq(r.result, -EBADMSG);
	pr = last_progress(r.gw[1], &env);
	cr_expect_eq(pr->error, -EBADMSG);
	cr_expect(strstr(pr->message, "memory-region-0 chunk 0 (memory offset 0) does not match its"
			 " digest") != NULL, "message: %s", pr->message);
	frame_free(env);
	pager_release(&r.p);	/* the last reference to the uffds: the fault completes */
	pthread_join(th, NULL);
	/* Completed without the pager: a fresh zero page, never the snapshot's byte. */
	cr_expect_eq(t.seen, 0);
	cr_expect_eq(r.map[1][5 * PAGE], 0);
	close(r.gw[0]);
	close(r.gw[1]);
	for (int i = 0; i < 2; i++)
		munmap(r.map[i], SIZE);
	close(r.memfd);
	close(r.file);
	chunk_set_release(&s);
}

/* The gateway's SnapdControl, sent on its end of the socket. */
static void send_control(struct rig *r, bool resumed, bool finish)
{
	Cloister__SnapdControl ctl = CLOISTER__SNAPD_CONTROL__INIT;
	Cloister__Envelope env = CLOISTER__ENVELOPE__INIT;

	ctl.resumed = resumed;
	ctl.finish = finish;
	frame_wrap(&env, CLOISTER__ENVELOPE__MSG_SNAPD_CONTROL, &ctl.base);
	cr_assert_eq(frame_send(r->gw[1], &env, NULL, 0), 0);
}

/* Whether page k of the memfd is in memory, seen without faulting it in. */
static bool resident(const struct rig *r, unsigned k)
{
	unsigned char v = 0;

	cr_assert_eq(mincore(r->map[0] + (uint64_t)k * PAGE, PAGE, &v), 0);
	return v & 1;
}

static void wait_done(struct rig *r)
{
	while (!__atomic_load_n(&r->p.done, __ATOMIC_ACQUIRE))
		usleep(1000);
}

#define BLOCK_PAGES (WS_BLOCK_SIZE / PAGE)

/* The blocks the last progress names as the working set, in order. */
static size_t progress_working_set(struct rig *r, uint64_t *ret, size_t max)
{
	Cloister__Envelope *env = NULL;
	Cloister__SnapdProgress *pr;
	size_t n;

	shutdown(r->gw[1], SHUT_WR);
	pthread_join(r->thread, NULL);
	pr = last_progress(r->gw[1], &env);
	cr_expect(pr->done);
	n = pr->n_working_set < max ? pr->n_working_set : max;
	memcpy(ret, pr->working_set, n * sizeof(*ret));
	n = pr->n_working_set;
	frame_free(env);
	close(r->gw[0]);
	close(r->gw[1]);
	return n;
}

/*
 * Faults are recorded in the order they come, each block once; the record
 * goes to the gateway with the last progress, once a finish brought every
 * page in (the prefetch in file order adds nothing to it).
 */
Test(pager, faults_are_recorded_as_the_working_set_in_order, .timeout = 30)
{
	uint64_t ws[8];
	struct rig r;

	rig_init(&r);
	rig_start(&r, false);
	expect_page(r.map[0], 200);		/* block 12 */
	expect_page(r.map[1], 5);		/* block 0 */
	expect_page(r.map[0], 210);		/* block 13 */
	expect_page(r.map[1], 201);		/* block 12 again: present, no fault */
	send_control(&r, false, true);
	wait_done(&r);
	cr_assert_eq(progress_working_set(&r, ws, 8), 3);
	cr_expect_eq(ws[0], ws_block(0, 200 * PAGE));
	cr_expect_eq(ws[1], ws_block(0, 5 * PAGE));
	cr_expect_eq(ws[2], ws_block(0, 210 * PAGE));
	for (unsigned k = 0; k < NPAGES; k++)
		expect_page(r.map[k % 2], k);
	rig_release(&r);
}

/*
 * A working set from vm.json is prefetched first, in its order, and only
 * it while the rest is held back; the guest's faults outside it come after
 * it in the next record.
 */
Test(pager, the_working_set_is_prefetched_first_in_its_order, .timeout = 30)
{
	const uint64_t given[3] = { ws_block(0, 12 * WS_BLOCK_SIZE), ws_block(0, 3 * WS_BLOCK_SIZE),
				    ws_block(0, 1 * WS_BLOCK_SIZE) };
	uint64_t ws[8];
	struct rig r;

	rig_init(&r);
	cr_assert_eq(pager_set_working_set(&r.p, given, 3), 0);
	r.p.bulk_at_ms = INT64_MAX;	/* the rest waits for the finish below */
	rig_start(&r, true);
	while (__atomic_load_n(&r.p.ws_next, __ATOMIC_ACQUIRE) < 3 ||
	       __atomic_load_n(&r.p.rec.n, __ATOMIC_ACQUIRE) < 3)
		usleep(1000);
	for (unsigned k = 0; k < NPAGES; k++) {
		unsigned b = k / BLOCK_PAGES;
		bool in_ws = b == 12 || b == 3 || b == 1;

		cr_expect_eq(resident(&r, k), in_ws, "page %u (block %u) %s", k, b,
			     in_ws ? "missing" : "present before its turn");
	}
	cr_expect_eq(__atomic_load_n(&r.p.faults, __ATOMIC_ACQUIRE), 0);
	expect_page(r.map[0], 13 * BLOCK_PAGES + 2);	/* a fault outside the working set */
	send_control(&r, false, true);
	wait_done(&r);
	cr_assert_eq(progress_working_set(&r, ws, 8), 4);
	for (size_t k = 0; k < 3; k++)
		cr_expect_eq(ws[k], given[k], "block %zu of the record", k);
	cr_expect_eq(ws[3], ws_block(0, 13 * WS_BLOCK_SIZE));
	for (unsigned k = 0; k < NPAGES; k++)
		expect_page(r.map[k % 2], k);
	rig_release(&r);
}

/* After resume, the rest follows the working set by itself. */
Test(pager, resumed_lets_the_rest_follow, .timeout = 30)
{
	struct rig r;

	rig_init(&r);
	r.p.bulk_at_ms = INT64_MAX;
	rig_start(&r, true);
	send_control(&r, true, false);
	wait_done(&r);
	cr_expect_eq(rig_stop(&r), 0);
	for (unsigned k = 0; k < NPAGES; k++)
		expect_page(r.map[k % 2], k);
	rig_release(&r);
}

/*
 * With chunks, the first fault brings in every data page of its chunk, which
 * is then checked only once; a later fault there is one of its zero pages.
 */
Test(pager, a_fault_fills_its_whole_checked_chunk, .timeout = 30)
{
	struct chunk_set s;
	struct rig r;

	rig_init(&r);
	rig_chunks(&r, &s);
	rig_start(&r, false);
	expect_page(r.map[0], 5);
	/* The faulting page may be woken before the rest of its chunk is copied: wait for it. */
	for (int t = 0; t < 10000 && !resident(&r, NPAGES - 1); t++)
		usleep(1000);
	cr_expect(resident(&r, NPAGES - 1), "a data page of the faulting chunk is not in");
	cr_expect(!resident(&r, HOLE_FIRST + 3), "a zero page of the chunk was filled too");
	expect_page(r.map[1], NPAGES - 1);	/* in already: no fault */
	expect_page(r.map[0], HOLE_FIRST + 3);	/* a zero page of a chunk that is in */
	expect_page(r.map[1], ZERO_PAGE);
	cr_expect_eq(rig_stop(&r), 0);
	/* Counted once the pager has stopped: a copy wakes the guest before the count. */
	cr_expect_eq(r.p.faults, 3);
	rig_release(&r);
	chunk_set_release(&s);
}
