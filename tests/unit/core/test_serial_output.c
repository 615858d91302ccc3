/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Console output to a host fd that is full (a non-blocking pipe nobody reads
 * yet): the writer is told to wait, the UART keeps its transmitter busy, and
 * once the reader drains the pipe every byte arrives, in order.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "serial_output.h"
#include "uart.h"

/* Only a bound for a test that would otherwise hang, never a measurement. */
#define WAIT_BOUND_MS 20000

static int pipefd[2];
static size_t filler;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static unsigned rooms;

static void on_room(void *opaque)
{
	pthread_mutex_lock(&lock);
	rooms++;
	pthread_cond_broadcast(&cond);
	pthread_mutex_unlock(&lock);
	if (opaque)
		uart_tx_ready(opaque);
}

/* A pipe whose write end would block right now. */
static void setup(void)
{
	char junk[4096];

	memset(junk, '.', sizeof(junk));
	cr_assert_eq(pipe2(pipefd, O_CLOEXEC), 0);
	cr_assert_eq(fcntl(pipefd[1], F_SETFL, O_NONBLOCK), 0);
	filler = 0;
	for (;;) {
		ssize_t n = write(pipefd[1], junk, sizeof(junk));

		if (n < 0) {
			cr_assert_eq(errno, EAGAIN);
			break;
		}
		filler += (size_t)n;
	}
	rooms = 0;
}

static void teardown(void)
{
	close(pipefd[0]);
	close(pipefd[1]);
}

TestSuite(serial_output, .init = setup, .fini = teardown, .timeout = 60);

/* Reads up to len bytes of what went through, skipping the filler first. */
static size_t read_some(uint8_t *buf, size_t len)
{
	struct pollfd p = { .fd = pipefd[0], .events = POLLIN };
	uint8_t junk[4096];
	ssize_t n;

	cr_assert_gt(poll(&p, 1, WAIT_BOUND_MS), 0, "output stopped coming");
	if (filler) {
		n = read(pipefd[0], junk, filler < sizeof(junk) ? filler : sizeof(junk));
		cr_assert_gt(n, 0);
		filler -= (size_t)n;
		return 0;
	}
	n = read(pipefd[0], buf, len);
	cr_assert_gt(n, 0);
	return (size_t)n;
}

Test(serial_output, full_fd_refuses_then_delivers_in_order)
{
	struct serial_output *so;
	static uint8_t data[SERIAL_OUTPUT_SOFT + 1000], got[sizeof(data)];
	size_t taken, n = 0;

	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 7 + 1);
	cr_assert_eq(serial_output_create(pipefd[1], on_room, NULL, &so), 0);
	taken = serial_output_write(so, data, sizeof(data), false);
	cr_assert_eq(taken, SERIAL_OUTPUT_SOFT, "a full buffer takes no more from a normal writer");
	cr_assert_not(serial_output_has_room(so));
	/* A writer that cannot wait is still taken, beyond the soft limit. */
	cr_assert_eq(serial_output_write(so, data + taken, 10, true), 10);
	taken += 10;
	while (n < taken)
		n += read_some(got + n, taken - n);
	cr_assert_eq(n, taken);
	cr_assert_arr_eq(got, data, taken, "every byte, in order");
	pthread_mutex_lock(&lock);
	while (!rooms)
		pthread_cond_wait(&cond, &lock);
	pthread_mutex_unlock(&lock);
	cr_assert(serial_output_has_room(so));
	cr_assert_eq(serial_output_dropped(so), 0);
	serial_output_destroy(so);
}

static struct serial_output *uart_sink;

static size_t uart_to_output(void *opaque, const void *buf, size_t len, bool forced)
{
	return serial_output_write(uart_sink, buf, len, forced);
}

/*
 * A driver that writes only while THRE is set (as Linux's does with
 * interrupts) pushes 64 KiB through a UART whose host pipe starts full and
 * is read slowly: nothing is lost, and the transmitter showed busy.
 */
Test(serial_output, uart_backpressure_loses_nothing)
{
	static uint8_t data[64 * 1024], got[sizeof(data)];
	const struct uart_params up = { .tx = uart_to_output };
	struct uart *u;
	size_t sent = 0, n = 0;
	unsigned busy = 0;

	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i ^ (i >> 8));
	cr_assert_eq(uart_create(&up, &u), 0);
	cr_assert_eq(serial_output_create(pipefd[1], on_room, u, &uart_sink), 0);
	cr_assert_eq(uart_write(u, UART_IIR_FCR, 1, UART_FCR_ENABLE), 0);
	while (sent < sizeof(data)) {
		uint64_t lsr;

		cr_assert_eq(uart_read(u, UART_LSR, 1, &lsr), 0);
		if (!(lsr & UART_LSR_THRE)) {
			busy++;
			n += read_some(got + n, sizeof(got) - n);
			continue;
		}
		for (unsigned i = 0; i < UART_TX_FIFO && sent < sizeof(data); i++)
			cr_assert_eq(uart_write(u, UART_RBR_THR_DLL, 1, data[sent++]), 0);
	}
	while (n < sizeof(data))
		n += read_some(got + n, sizeof(got) - n);
	cr_assert_gt(busy, 0, "the transmitter was busy while the pipe was full");
	cr_assert_arr_eq(got, data, sizeof(data));
	cr_assert_eq(serial_output_dropped(uart_sink), 0);
	serial_output_destroy(uart_sink);
	uart_destroy(u);
}
