/* SPDX-License-Identifier: Apache-2.0 */
#include "pager.h"

#include <errno.h>
#include <inttypes.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "frame.h"
#include "io.h"
#include "log.h"

#define PREFETCH_CHUNK (1u << 20)
#define FAULT_BATCH 16
/* A fault fills the aligned block around it: fewer round trips while the guest warms up. */
#define FAULT_AROUND (64u << 10)
#define PROGRESS_EVERY_MS 100
#define COPY_RETRIES 1000
/*
 * The prefetch in file order waits this long after resume, and at most
 * HOLD_MAX_MS after the restore: the guest's first faults are its working set.
 */
#define HOLD_AFTER_RESUME_MS 500
#define HOLD_MAX_MS 2000

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int pager_init(struct pager *p, int *files, const uint64_t *sizes, size_t n)
{
	long page = sysconf(_SC_PAGESIZE);

	*p = (struct pager){ .n_regions = n, .page = page > 0 ? (size_t)page : 4096 };
	for (size_t i = 0; i < LAYOUT_MAX_REGIONS; i++)
		p->file[i] = -1;
	for (size_t i = 0; i < PAGER_MAX_CLIENTS; i++)
		p->uffd[i] = -1;
	if (n == 0 || n > LAYOUT_MAX_REGIONS)
		return -EINVAL;
	p->bulk_at_ms = now_ms() + HOLD_MAX_MS;
	p->buf = malloc(PREFETCH_CHUNK);
	if (!p->buf || ws_record_init(&p->rec, sizes, n) < 0)
		return -ENOMEM;
	/*
	 * The total is what the files hold on disk: walking a fragmented file's
	 * data ranges here would delay the first faults by a whole scan.
	 */
	for (size_t i = 0; i < n; i++) {
		struct stat st;

		p->chunk_in[i] = calloc(sizes[i] / CHUNK_SIZE / 8 + 1, 1);
		if (!p->chunk_in[i])
			return -ENOMEM;
		p->file[i] = TAKE_FD(files[i]);
		p->size[i] = sizes[i];
		if (fstat(p->file[i], &st) == 0)
			p->total += (uint64_t)st.st_blocks * 512 < sizes[i] ?
				    (uint64_t)st.st_blocks * 512 : sizes[i];
	}
	return 0;
}

int pager_set_working_set(struct pager *p, const uint64_t *blocks, size_t n)
{
	if (n == 0)
		return 0;
	if (n > WS_MAX_BLOCKS)
		return -EINVAL;
	free(p->ws);
	p->ws = malloc(n * sizeof(*blocks));
	if (!p->ws)
		return -ENOMEM;
	memcpy(p->ws, blocks, n * sizeof(*blocks));
	p->n_ws = n;
	p->ws_next = 0;
	return 0;
}

int pager_add_client(struct pager *p, int uffd, const uint64_t *host)
{
	if (p->n_clients >= PAGER_MAX_CLIENTS) {
		close(uffd);
		return -ENOSPC;
	}
	for (size_t i = 0; i < p->n_regions; i++)
		p->host[p->n_clients][i] = host[i];
	p->uffd[p->n_clients++] = uffd;
	return 0;
}

static void close_files(struct pager *p)
{
	for (size_t i = 0; i < LAYOUT_MAX_REGIONS; i++)
		cleanup_closep(&p->file[i]);
}

void pager_release(struct pager *p)
{
	close_files(p);
	for (size_t i = 0; i < PAGER_MAX_CLIENTS; i++)
		cleanup_closep(&p->uffd[i]);
	free(p->buf);
	p->buf = NULL;
	free(p->ws);
	p->ws = NULL;
	ws_record_release(&p->rec);
	for (size_t i = 0; i < LAYOUT_MAX_REGIONS; i++) {
		free(p->chunk_in[i]);
		p->chunk_in[i] = NULL;
	}
}

static int fail(struct pager *p, int r, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(struct pager *p, int r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(p->err, sizeof(p->err), fmt, ap);
	va_end(ap);
	return r;
}

/*
 * Reads [off, off + len) of region i's memory; a short read means the file was cut.
 * With a chunk set, from chunks decoded and checked whole before any byte is used.
 */
static int read_region(struct pager *p, size_t i, uint64_t off, size_t len, uint8_t *buf)
{
	ssize_t n;

	if (p->chunks)
		return chunk_read(p->chunks, i, p->file[i], off, len, buf, p->err, sizeof(p->err));
	n = io_pread_full(p->file[i], buf, len, (off_t)off);
	if (n < 0)
		return fail(p, (int)n, "memory-region-%zu cannot be read at %" PRIu64 ": %s", i, off,
			    strerror((int)-n));
	if ((size_t)n < len)
		return fail(p, -EIO, "memory-region-%zu ends at %" PRIu64 ", before its %" PRIu64
			    " bytes: the snapshot was changed during an OnDemand restore", i,
			    off + (uint64_t)n, p->size[i]);
	return 0;
}

/*
 * UFFDIO_COPY of len bytes at dst, skipping pages already present (EEXIST).
 * *ret_copied gets the bytes actually copied.
 */
static int copy_range(struct pager *p, int uffd, uint64_t dst, const uint8_t *src, uint64_t len,
		      uint64_t *ret_copied)
{
	uint64_t done = 0;
	int tries = 0;

	*ret_copied = 0;
	while (done < len) {
		struct uffdio_copy c = { .dst = dst + done, .src = (uint64_t)(uintptr_t)(src + done),
					 .len = len - done };

		if (ioctl(uffd, UFFDIO_COPY, &c) == 0) {
			*ret_copied += c.len;
			return 0;
		}
		if (c.copy > 0) {
			done += (uint64_t)c.copy;
			*ret_copied += (uint64_t)c.copy;
			continue;
		}
		if (errno == EEXIST) {
			done += p->page;
			continue;
		}
		/* The mapping is changing (EAGAIN) or a signal came: try again. */
		if ((errno == EAGAIN || errno == EINTR) && ++tries < COPY_RETRIES)
			continue;
		return -errno;
	}
	return 0;
}

static int client_region(const struct pager *p, size_t c, uint64_t addr, uint64_t *ret_off)
{
	for (size_t i = 0; i < p->n_regions; i++) {
		if (addr >= p->host[c][i] && addr - p->host[c][i] < p->size[i]) {
			*ret_off = addr - p->host[c][i];
			return (int)i;
		}
	}
	return -1;
}

static int prefetch_copy(struct pager *p, size_t i, uint64_t off, size_t len);

static bool chunk_is_in(const struct pager *p, size_t i, uint64_t k)
{
	return p->chunk_in[i][k / 8] & (1u << (k % 8));
}

/*
 * Brings every data page of the chunk holding off in (decoded and checked
 * whole by read_region), so no chunk is checked twice for the guest.
 */
static int fill_chunk(struct pager *p, size_t i, uint64_t off)
{
	uint64_t k = off / CHUNK_SIZE, start = k * CHUNK_SIZE;
	size_t len = chunk_len(p->size[i], (size_t)k);
	int r;

	if (chunk_is_in(p, i, k))
		return 0;
	r = read_region(p, i, start, len, p->buf);
	if (r == 0)
		r = prefetch_copy(p, i, start, len);
	if (r == 0)
		p->chunk_in[i][k / 8] |= (uint8_t)(1u << (k % 8));
	return r;
}

/*
 * What a fault at off of region i is answered with: its aligned block read
 * now (plain files), or, with chunks, the faulting page alone once its whole
 * chunk's data is in; a page of a chunk that was in before is a zero page.
 */
static int fault_source(struct pager *p, size_t i, uint64_t off, uint64_t *ret_off,
			uint64_t *ret_len, const uint8_t **ret_src)
{
	static const uint8_t zero_page[1u << 16];
	bool was_in;
	int r;

	if (!p->chunks) {
		*ret_off = off & ~(uint64_t)(FAULT_AROUND - 1);
		*ret_len = p->size[i] - *ret_off < FAULT_AROUND ? p->size[i] - *ret_off : FAULT_AROUND;
		*ret_src = p->buf;
		return read_region(p, i, *ret_off, (size_t)*ret_len, p->buf);
	}
	if (p->page > sizeof(zero_page))
		return fail(p, -EINVAL, "pages of %zu bytes are larger than this pager serves", p->page);
	was_in = chunk_is_in(p, i, off / CHUNK_SIZE);
	r = fill_chunk(p, i, off);
	*ret_off = off;
	*ret_len = p->page;
	*ret_src = was_in ? zero_page : p->buf + off % CHUNK_SIZE;
	return r;
}

static int serve_fault(struct pager *p, size_t c, uint64_t addr)
{
	uint64_t page_addr = addr & ~(uint64_t)(p->page - 1), off, copied, block_off = 0, len = 0;
	int i = client_region(p, c, page_addr, &off);
	const uint8_t *src = NULL;
	int r;

	if (i < 0)
		return fail(p, -EFAULT, "client %zu faulted at %#" PRIx64 ", outside guest memory", c,
			    addr);
	r = fault_source(p, (size_t)i, off, &block_off, &len, &src);
	if (r < 0)
		return r;
	r = copy_range(p, p->uffd[c], page_addr - (off - block_off), src, len, &copied);
	if (r < 0)
		return fail(p, r, "filling a page for client %zu failed: %s", c, strerror(-r));
	p->faults++;
	ws_record_add(&p->rec, (size_t)i, off);
	if (copied < len) {
		/*
		 * Some page of the block was present already: filled for another
		 * client or by the prefetch. If it is the faulting one, its waiter
		 * was not woken by a copy: wake it (harmless if it was).
		 */
		struct uffdio_range w = { .start = page_addr, .len = p->page };

		if (copied == 0)
			p->fault_wakes++;
		if (ioctl(p->uffd[c], UFFDIO_WAKE, &w) < 0)
			return fail(p, -errno, "waking client %zu failed: %m", c);
	}
	return 0;
}

/* Faults queued on client c's uffd (non-blocking), at most a batch. */
static int serve_client(struct pager *p, size_t c)
{
	struct uffd_msg msg[FAULT_BATCH];
	ssize_t n = read(p->uffd[c], msg, sizeof(msg));

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	if (n < 0)
		return fail(p, -errno, "reading client %zu's faults failed: %m", c);
	for (size_t k = 0; k < (size_t)n / sizeof(msg[0]); k++) {
		int r;

		if (msg[k].event != UFFD_EVENT_PAGEFAULT)
			continue;
		r = serve_fault(p, c, msg[k].arg.pagefault.address);
		if (r < 0)
			return r;
	}
	return 0;
}

/* Copies the non-zero pages of buf (len bytes at offset off of region i). */
static int prefetch_copy(struct pager *p, size_t i, uint64_t off, size_t len)
{
	size_t run = 0, pos = 0;

	while (pos <= len) {
		bool zero = pos < len && p->buf[pos] == 0 &&
			    memcmp(p->buf + pos, p->buf + pos + 1, p->page - 1) == 0;

		if (pos == len || zero) {
			if (pos > run) {
				uint64_t copied;
				int r = copy_range(p, p->uffd[0], p->host[0][i] + off + run, p->buf + run,
						   pos - run, &copied);

				if (r < 0)
					return fail(p, r, "prefetching memory-region-%zu failed: %s", i,
						    strerror(-r));
			}
			run = pos + p->page;
		}
		pos += p->page;
	}
	return 0;
}

/* The next block of the working set (one vm.json named; a block outside memory is skipped). */
static int prefetch_ws_step(struct pager *p)
{
	uint64_t b = p->ws[p->ws_next++], off = ws_block_offset(b), len;
	size_t i = ws_block_region(b);
	int r;

	if (i >= p->n_regions || off >= p->size[i])
		return 0;
	len = p->size[i] - off < WS_BLOCK_SIZE ? p->size[i] - off : WS_BLOCK_SIZE;
	if (p->chunks) {
		r = fill_chunk(p, i, off);
	} else {
		r = read_region(p, i, off, (size_t)len, p->buf);
		if (r == 0)
			r = prefetch_copy(p, i, off, (size_t)len);
	}
	if (r == 0)
		ws_record_add(&p->rec, i, off);
	return r;
}

/* How long the prefetch waits now: 0 when it has work, -1 when it has none left. */
static int prefetch_wait_ms(const struct pager *p)
{
	int64_t left;

	if (!p->prefetch || p->done)
		return -1;
	if (p->ws_next < p->n_ws)
		return 0;
	left = p->bulk_at_ms - now_ms();
	/* A long hold is waited for in steps: a resume or a finish may cut it short. */
	return left <= 0 ? 0 : left > 1000 ? 1000 : (int)left;
}

/* One chunk of the prefetch: the next data of the current region, or a step past a hole. */
static int prefetch_step(struct pager *p)
{
	size_t i = p->cur_region;
	off_t s, e;
	size_t len;
	int r;

	if (p->ws_next < p->n_ws)
		return prefetch_ws_step(p);

	if (i >= p->n_regions) {
		p->done = true;
		return 0;
	}
	if (p->chunks) {
		uint64_t cs, ce;

		chunk_next_data(p->chunks, i, p->file[i], p->cur_off, &cs, &ce);
		s = (off_t)cs;
		e = (off_t)ce;
	} else {
		s = lseek(p->file[i], (off_t)p->cur_off, SEEK_DATA);
		if (s < 0 && errno != ENXIO)
			s = (off_t)p->cur_off;
		e = s < 0 ? s : lseek(p->file[i], s, SEEK_HOLE);
	}
	if (s < 0 || (uint64_t)s >= p->size[i]) {
		p->cur_region++;
		p->cur_off = 0;
		return 0;
	}
	if (e < 0 || (uint64_t)e > p->size[i])
		e = (off_t)p->size[i];
	len = (uint64_t)(e - s) < PREFETCH_CHUNK ? (size_t)(e - s) : PREFETCH_CHUNK;
	/* Data ranges start on a block boundary, so on a page boundary too; be sure. */
	s &= ~(off_t)(p->page - 1);
	len = (len + p->page - 1) & ~(p->page - 1);
	if ((uint64_t)s + len > p->size[i])
		len = (size_t)(p->size[i] - (uint64_t)s);
	r = read_region(p, i, (uint64_t)s, len, p->buf);
	if (r == 0)
		r = prefetch_copy(p, i, (uint64_t)s, len);
	if (r < 0)
		return r;
	p->present += len;
	p->cur_off = (uint64_t)s + len;
	return 0;
}

/* Drops every registration: what is still missing is a hole and reads as zero. */
static int finish(struct pager *p)
{
	for (size_t c = 0; c < p->n_clients; c++) {
		for (size_t i = 0; i < p->n_regions; i++) {
			struct uffdio_range rg = { .start = p->host[c][i], .len = p->size[i] };

			/* ENOENT/ESRCH: that client is gone; nothing is left to release. */
			if (ioctl(p->uffd[c], UFFDIO_UNREGISTER, &rg) < 0 && errno != ENOENT &&
			    errno != ESRCH)
				return fail(p, -errno, "releasing client %zu's memory failed: %m", c);
		}
		cleanup_closep(&p->uffd[c]);
	}
	close_files(p);
	if (p->chunks)
		chunk_forget_key(p->chunks);
	/* Everything is in: the total (allocated blocks) is what now counts as present. */
	p->present = p->total;
	log_info("pager: all %" PRIu64 " bytes present (%" PRIu64 " faults served, %" PRIu64
		 " by a wake); snapshot files closed", p->total, p->faults, p->fault_wakes);
	return 0;
}

static int send_progress(struct pager *p, int gw, int error)
{
	Cloister__SnapdProgress pr = CLOISTER__SNAPD_PROGRESS__INIT;
	Cloister__Envelope env = CLOISTER__ENVELOPE__INIT;

	pr.present = p->present < p->total ? p->present : p->total;
	pr.total = p->total;
	pr.done = p->done;
	pr.error = error;
	pr.message = error < 0 ? p->err : (char *)"";
	/* The record is final once every page is present: no fault comes after. */
	if (p->done && error == 0) {
		pr.working_set = p->rec.blocks;
		pr.n_working_set = p->rec.n;
	}
	frame_wrap(&env, CLOISTER__ENVELOPE__MSG_SNAPD_PROGRESS, &pr.base);
	return frame_send(gw, &env, NULL, 0);
}

/*
 * What the gateway sends: SnapdControl (resumed, finish), or a hang-up
 * (true). Anything else is ignored.
 */
static bool gateway_read(struct pager *p, int gw)
{
	Cloister__Envelope *env = NULL;
	const Cloister__SnapdControl *ctl;

	if (frame_recv_timeout(gw, PROGRESS_EVERY_MS, &env, NULL, 0, NULL) < 0)
		return true;
	ctl = env->msg_case == CLOISTER__ENVELOPE__MSG_SNAPD_CONTROL ? env->snapd_control : NULL;
	if (ctl && ctl->resumed && p->bulk_at_ms > now_ms() + HOLD_AFTER_RESUME_MS)
		p->bulk_at_ms = now_ms() + HOLD_AFTER_RESUME_MS;
	if (ctl && ctl->finish) {
		p->prefetch = true;
		p->bulk_at_ms = 0;
	}
	frame_free(env);
	return false;
}

static int poll_all(struct pager *p, int gw, int timeout_ms, bool *ret_gw_gone)
{
	struct pollfd pfd[PAGER_MAX_CLIENTS + 1];
	size_t n = 0;
	int r;

	pfd[n++] = (struct pollfd){ .fd = gw, .events = POLLIN };
	for (size_t c = 0; c < p->n_clients && !p->done; c++)
		pfd[n++] = (struct pollfd){ .fd = p->uffd[c], .events = POLLIN };
	r = poll(pfd, n, timeout_ms);
	if (r < 0)
		return errno == EINTR ? 0 : -errno;
	if (pfd[0].revents)
		*ret_gw_gone = gateway_read(p, gw);
	for (size_t c = 0; c + 1 < n; c++) {
		if (pfd[c + 1].revents & (POLLERR | POLLNVAL))
			return fail(p, -EIO, "client %zu's userfaultfd broke", c);
		if (pfd[c + 1].revents & POLLIN) {
			r = serve_client(p, c);
			if (r < 0)
				return r;
		}
	}
	return 0;
}

int pager_run(struct pager *p, int gw, bool prefetch)
{
	int64_t last = now_ms();
	bool gone = false;
	int r = 0;

	if (p->n_clients == 0)
		return fail(p, -EINVAL, "no client to page for");
	p->prefetch = prefetch;
	/* The gateway learns the total at once, before any fault. */
	if (send_progress(p, gw, 0) < 0)
		gone = true;
	while (!gone) {
		bool working = p->prefetch && !p->done;

		r = poll_all(p, gw, prefetch_wait_ms(p), &gone);
		if (r == 0 && working && prefetch_wait_ms(p) == 0)
			r = prefetch_step(p);
		if (r == 0 && working && p->done)
			r = finish(p);
		if (r < 0)
			break;
		if ((working && p->done) || (working && now_ms() - last >= PROGRESS_EVERY_MS)) {
			last = now_ms();
			if (send_progress(p, gw, 0) < 0)
				gone = true;
		}
	}
	if (r < 0) {
		log_error("pager: %s", p->err);
		send_progress(p, gw, r);
		return r;
	}
	log_info("pager: stopping, %" PRIu64 " faults served (%" PRIu64 " by a wake), %" PRIu64
		 " of %" PRIu64 " bytes present", p->faults, p->fault_wakes, p->present, p->total);
	return 0;
}
