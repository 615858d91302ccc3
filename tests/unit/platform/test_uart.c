/* SPDX-License-Identifier: Apache-2.0 */
/* The ns16550a through its registers, with a fake sink and a fake PLIC line. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "platform/uart.h"

#define TEST_IRQ 10u

struct fake_host {
	uint8_t out[4096];
	size_t n_out;
	/* A sink that is full takes nothing unless forced. */
	bool full;
	unsigned forced_calls;
	bool line;
	unsigned line_calls;
	uint32_t last_irq;
};

static struct fake_host host;
static struct uart *uart;

static size_t fake_tx(void *opaque, const void *buf, size_t len, bool forced)
{
	struct fake_host *h = opaque;

	if (forced)
		h->forced_calls++;
	if (h->full && !forced)
		return 0;
	cr_assert_leq(h->n_out + len, sizeof(h->out));
	memcpy(h->out + h->n_out, buf, len);
	h->n_out += len;
	return len;
}

static void fake_irq(void *opaque, uint32_t irq, bool level)
{
	struct fake_host *h = opaque;

	h->line = level;
	h->line_calls++;
	h->last_irq = irq;
}

static const struct uart_params params = {
	.tx = fake_tx,
	.set_irq = fake_irq,
	.irq = TEST_IRQ,
	.opaque = &host,
};

static void setup(void)
{
	memset(&host, 0, sizeof(host));
	cr_assert_eq(uart_create(&params, &uart), 0);
}

static void teardown(void)
{
	uart_destroy(uart);
	uart = NULL;
}

static uint8_t rd(uint64_t off)
{
	uint64_t v = ~0ull;

	cr_assert_eq(uart_read(uart, off, 1, &v), 0);
	cr_assert_leq(v, 0xff);
	return (uint8_t)v;
}

static void wr(uint64_t off, uint8_t val)
{
	cr_assert_eq(uart_write(uart, off, 1, val), 0);
}

static void push(const char *s)
{
	cr_assert_eq(uart_push_input(uart, s, strlen(s)), strlen(s));
}

TestSuite(uart, .init = setup, .fini = teardown);

Test(uart, reset_values)
{
	cr_assert_eq(rd(UART_IER_DLM), 0);
	cr_assert_eq(rd(UART_IIR_FCR), UART_IIR_NO_INT);
	cr_assert_eq(rd(UART_LCR), 0);
	cr_assert_eq(rd(UART_MCR), 0);
	cr_assert_eq(rd(UART_LSR), UART_LSR_THRE | UART_LSR_TEMT);
	cr_assert_eq(rd(UART_MSR), UART_MSR_DCD | UART_MSR_DSR | UART_MSR_CTS);
	cr_assert_eq(rd(UART_RBR_THR_DLL), 0, "no input reads as 0");
	cr_assert_not(host.line);
}

Test(uart, transmit_goes_to_the_sink_at_once)
{
	const char *msg = "hello\n";

	for (const char *p = msg; *p; p++) {
		wr(UART_RBR_THR_DLL, (uint8_t)*p);
		cr_assert_eq(rd(UART_LSR) & (UART_LSR_THRE | UART_LSR_TEMT),
			     UART_LSR_THRE | UART_LSR_TEMT);
	}
	cr_assert_eq(host.n_out, strlen(msg));
	cr_assert_eq(memcmp(host.out, msg, host.n_out), 0);
}

Test(uart, dlab_switches_to_the_divisor_latches)
{
	wr(UART_IER_DLM, UART_IER_RDI);
	wr(UART_LCR, UART_LCR_DLAB | 0x03);
	wr(UART_RBR_THR_DLL, 0x0c);
	wr(UART_IER_DLM, 0x01);
	cr_assert_eq(host.n_out, 0, "a DLL write is not output");
	cr_assert_eq(rd(UART_RBR_THR_DLL), 0x0c);
	cr_assert_eq(rd(UART_IER_DLM), 0x01);
	cr_assert_eq(rd(UART_LCR), UART_LCR_DLAB | 0x03);
	wr(UART_LCR, 0x03);
	cr_assert_eq(rd(UART_IER_DLM), UART_IER_RDI, "IER kept its value");
	push("x");
	cr_assert_eq(rd(UART_RBR_THR_DLL), 'x');
}

Test(uart, scratch_and_ier_masks)
{
	wr(UART_SCR, 0xa5);
	cr_assert_eq(rd(UART_SCR), 0xa5);
	wr(UART_IER_DLM, 0xff);
	cr_assert_eq(rd(UART_IER_DLM), 0x0f);
	wr(UART_MCR, 0xff);
	cr_assert_eq(rd(UART_MCR), 0x1f);
	wr(UART_LSR, 0);
	cr_assert_eq(rd(UART_LSR) & UART_LSR_THRE, UART_LSR_THRE, "LSR is read-only");
}

Test(uart, receive_sets_dr_and_reads_in_order)
{
	push("abc");
	cr_assert_eq(rd(UART_LSR) & UART_LSR_DR, UART_LSR_DR);
	cr_assert_eq(rd(UART_RBR_THR_DLL), 'a');
	cr_assert_eq(rd(UART_RBR_THR_DLL), 'b');
	cr_assert_eq(rd(UART_RBR_THR_DLL), 'c');
	cr_assert_eq(rd(UART_LSR) & UART_LSR_DR, 0);
	cr_assert_not(host.line, "RX interrupt not enabled");
}

Test(uart, rx_interrupt_follows_ier_and_data)
{
	push("q");
	cr_assert_not(host.line);
	wr(UART_IER_DLM, UART_IER_RDI);
	cr_assert(host.line);
	cr_assert_eq(host.last_irq, TEST_IRQ);
	cr_assert_eq(rd(UART_IIR_FCR), UART_IIR_RDI);
	cr_assert_eq(rd(UART_RBR_THR_DLL), 'q');
	cr_assert_not(host.line, "reading the data lowers the line");
	cr_assert_eq(rd(UART_IIR_FCR), UART_IIR_NO_INT);
}

Test(uart, fifo_trigger_level_and_timeout)
{
	/* FIFO on, trigger at 4 bytes. */
	wr(UART_IIR_FCR, UART_FCR_ENABLE | 0x40);
	wr(UART_IER_DLM, UART_IER_RDI);
	push("12");
	cr_assert(host.line);
	cr_assert_eq(rd(UART_IIR_FCR), UART_IIR_FIFOS | UART_IIR_RX_TIMEOUT);
	push("34");
	cr_assert_eq(rd(UART_IIR_FCR), UART_IIR_FIFOS | UART_IIR_RDI);
	/* Trigger at 14. */
	wr(UART_IIR_FCR, UART_FCR_ENABLE | 0xc0);
	cr_assert_eq(rd(UART_LSR) & UART_LSR_DR, UART_LSR_DR, "same enable bit keeps the data");
	cr_assert_eq(rd(UART_IIR_FCR), UART_IIR_FIFOS | UART_IIR_RX_TIMEOUT);
	wr(UART_IIR_FCR, UART_FCR_ENABLE | UART_FCR_CLEAR_RX);
	cr_assert_eq(rd(UART_LSR) & UART_LSR_DR, 0);
	cr_assert_not(host.line);
	push("z");
	wr(UART_IIR_FCR, 0);
	cr_assert_eq(rd(UART_LSR) & UART_LSR_DR, 0, "turning the FIFO off empties it");
	cr_assert_eq(rd(UART_IIR_FCR) & UART_IIR_FIFOS, 0);
}

Test(uart, thre_interrupt_on_enable_and_after_each_byte)
{
	wr(UART_IER_DLM, UART_IER_THRI);
	cr_assert(host.line, "THR is empty when the interrupt is enabled");
	cr_assert_eq(rd(UART_IIR_FCR), UART_IIR_THRI);
	cr_assert_not(host.line, "reading IIR acknowledges THRE");
	cr_assert_eq(rd(UART_IIR_FCR), UART_IIR_NO_INT);
	wr(UART_RBR_THR_DLL, 'a');
	cr_assert(host.line);
	/* The way Linux's 8250 probes for a working THRE interrupt. */
	wr(UART_IER_DLM, 0);
	cr_assert_not(host.line);
	wr(UART_IER_DLM, UART_IER_THRI);
	cr_assert_eq(rd(UART_IIR_FCR), UART_IIR_THRI);
}

Test(uart, rx_data_outranks_thre)
{
	wr(UART_IER_DLM, UART_IER_THRI | UART_IER_RDI);
	push("k");
	cr_assert_eq(rd(UART_IIR_FCR), UART_IIR_RDI);
	cr_assert_eq(rd(UART_RBR_THR_DLL), 'k');
	cr_assert_eq(rd(UART_IIR_FCR), UART_IIR_THRI, "THRE was still waiting");
}

Test(uart, rx_queue_is_bounded)
{
	static uint8_t big[UART_RX_MAX + 100];

	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)i;
	cr_assert_eq(uart_push_input(uart, big, sizeof(big)), UART_RX_MAX);
	cr_assert_eq(uart_push_input(uart, big, 1), 0, "a full queue takes nothing");
	for (size_t i = 0; i < UART_RX_MAX; i++)
		cr_assert_eq(rd(UART_RBR_THR_DLL), (uint8_t)i);
	cr_assert_eq(rd(UART_LSR) & UART_LSR_DR, 0);
	cr_assert_eq(uart_push_input(uart, big, 0), 0);
}

Test(uart, loopback_turns_output_into_input)
{
	wr(UART_MCR, UART_MCR_LOOP);
	wr(UART_RBR_THR_DLL, 'L');
	cr_assert_eq(host.n_out, 0);
	cr_assert_eq(rd(UART_LSR) & UART_LSR_DR, UART_LSR_DR);
	cr_assert_eq(rd(UART_RBR_THR_DLL), 'L');
	/* Modem outputs loop to the inputs, with their deltas and an interrupt. */
	wr(UART_IER_DLM, UART_IER_MSI);
	cr_assert(host.line, "entering loopback dropped CTS, DSR and DCD");
	cr_assert_eq(rd(UART_MSR), UART_MSR_DCTS | UART_MSR_DDSR | UART_MSR_DDCD);
	cr_assert_not(host.line);
	cr_assert_eq(rd(UART_MSR), 0, "deltas clear on read; all outputs are off");
	wr(UART_MCR, UART_MCR_LOOP | UART_MCR_RTS | UART_MCR_OUT1);
	cr_assert(host.line);
	cr_assert_eq(rd(UART_IIR_FCR), UART_IIR_MSI);
	cr_assert_eq(rd(UART_MSR), UART_MSR_CTS | UART_MSR_RI | UART_MSR_DCTS);
	cr_assert_not(host.line);
	wr(UART_MCR, UART_MCR_LOOP | UART_MCR_RTS);
	cr_assert_eq(rd(UART_MSR), UART_MSR_CTS | UART_MSR_TERI);
	wr(UART_MCR, 0);
	wr(UART_RBR_THR_DLL, 'o');
	cr_assert_eq(host.n_out, 1);
}

Test(uart, hostile_sizes_and_offsets)
{
	uint64_t v = 0x77;

	cr_assert_eq(uart_read(uart, 0, 2, &v), -EFAULT);
	cr_assert_eq(uart_read(uart, 0, 4, &v), -EFAULT);
	cr_assert_eq(uart_read(uart, 0, 8, &v), -EFAULT);
	cr_assert_eq(v, 0x77);
	cr_assert_eq(uart_write(uart, 0, 4, 'x'), -EFAULT);
	cr_assert_eq(host.n_out, 0);
	for (uint64_t off = 8; off < 0x100; off++) {
		wr(off, 0xff);
		cr_assert_eq(rd(off), 0);
	}
	cr_assert_eq(rd(UINT64_MAX), 0);
	cr_assert_eq(host.n_out, 0);
	/* Only the low byte of a wide value counts. */
	wr(UART_SCR, 0);
	cr_assert_eq(uart_write(uart, UART_SCR, 1, 0x1234), 0);
	cr_assert_eq(rd(UART_SCR), 0x34);
}

Test(uart, save_restore_round_trip)
{
	static uint8_t fill[UART_RX_MAX];
	Cloister__UartState *s = NULL;
	struct fake_host other = { 0 };
	struct uart_params p2 = params;
	struct uart *v;

	wr(UART_IIR_FCR, UART_FCR_ENABLE | 0x80);
	/* Wrap the ring so the saved bytes come from both ends of it. */
	cr_assert_eq(uart_push_input(uart, fill, UART_RX_MAX - 2), UART_RX_MAX - 2);
	for (size_t i = 0; i < UART_RX_MAX - 2; i++)
		rd(UART_RBR_THR_DLL);
	push("wrap!");
	wr(UART_LCR, UART_LCR_DLAB | 0x1b);
	wr(UART_RBR_THR_DLL, 0x30);
	wr(UART_IER_DLM, 0x02);
	wr(UART_LCR, 0x1b);
	wr(UART_IER_DLM, UART_IER_RDI | UART_IER_THRI);
	wr(UART_SCR, 0x42);
	wr(UART_MCR, UART_MCR_DTR | UART_MCR_OUT2);

	cr_assert_eq(uart_save(uart, &s), 0);
	cr_assert_eq(s->rx.len, 5);
	p2.opaque = &other;
	cr_assert_eq(uart_create(&p2, &v), 0);
	cr_assert_eq(uart_restore(v, s), 0);
	cr_assert(other.line, "restore re-drives the line");
	cr_assert_eq(other.last_irq, TEST_IRQ);
	uart_state_free(s);

	for (uint64_t off = 1; off < 8; off++) {
		uint64_t a, b;

		if (off == UART_IIR_FCR)
			continue;
		cr_assert_eq(uart_read(uart, off, 1, &a), 0);
		cr_assert_eq(uart_read(v, off, 1, &b), 0);
		cr_assert_eq(a, b, "register %lu differs", (unsigned long)off);
	}
	for (const char *c = "wrap!"; *c; c++) {
		uint64_t b;

		cr_assert_eq(uart_read(v, UART_RBR_THR_DLL, 1, &b), 0);
		cr_assert_eq(b, (uint8_t)*c);
	}
	cr_assert_eq(uart_write(v, UART_LCR, 1, UART_LCR_DLAB), 0);
	{
		uint64_t dll, dlm;

		cr_assert_eq(uart_read(v, UART_RBR_THR_DLL, 1, &dll), 0);
		cr_assert_eq(uart_read(v, UART_IER_DLM, 1, &dlm), 0);
		cr_assert_eq(dll, 0x30);
		cr_assert_eq(dlm, 0x02);
	}
	uart_destroy(v);
}

Test(uart, restore_refuses_malformed_state)
{
	Cloister__UartState *s = NULL;
	static uint8_t big[UART_RX_MAX + 1];

	wr(UART_SCR, 0x11);
	cr_assert_eq(uart_save(uart, &s), 0);
	s->ier = 0x10;
	cr_assert_eq(uart_restore(uart, s), -EINVAL);
	s->ier = 0;
	s->lcr = 0x100;
	cr_assert_eq(uart_restore(uart, s), -EINVAL);
	s->lcr = 0;
	s->fcr = UART_FCR_CLEAR_RX;
	cr_assert_eq(uart_restore(uart, s), -EINVAL);
	s->fcr = 0;
	s->scr = 0x22;
	free(s->rx.data);	/* the saved queue, replaced by hostile ones below */
	s->rx = (ProtobufCBinaryData){ .len = sizeof(big), .data = big };
	cr_assert_eq(uart_restore(uart, s), -EINVAL);
	cr_assert_eq(rd(UART_SCR), 0x11, "a refused state changes nothing");
	s->rx = (ProtobufCBinaryData){ .len = 3, .data = NULL };
	cr_assert_eq(uart_restore(uart, s), -EINVAL);
	s->rx = (ProtobufCBinaryData){ 0 };
	cr_assert_eq(uart_restore(uart, s), 0);
	cr_assert_eq(rd(UART_SCR), 0x22);
	uart_state_free(s);
}

/* ---- a slow sink: backpressure, never a lost byte ---- */

#define LSR_TX_IDLE (UART_LSR_THRE | UART_LSR_TEMT)

Test(uart, full_sink_keeps_the_transmitter_busy)
{
	host.full = true;
	wr(UART_IER_DLM, UART_IER_THRI);
	cr_assert_eq(rd(UART_IIR_FCR) & 0x0f, UART_IIR_THRI);
	wr(UART_RBR_THR_DLL, 'a');
	cr_assert_eq(rd(UART_LSR) & LSR_TX_IDLE, 0, "THRE and TEMT clear while the sink is full");
	cr_assert_eq(rd(UART_IIR_FCR) & 0x0f, UART_IIR_NO_INT);
	cr_assert_not(host.line);
	cr_assert_eq(host.n_out, 0);

	host.full = false;
	uart_tx_ready(uart);
	cr_assert_eq(host.n_out, 1);
	cr_assert_eq(host.out[0], 'a');
	cr_assert_eq(rd(UART_LSR) & LSR_TX_IDLE, LSR_TX_IDLE);
	cr_assert(host.line, "the THR-empty interrupt comes when the byte has gone");
	cr_assert_eq(rd(UART_IIR_FCR) & 0x0f, UART_IIR_THRI);
}

/* A driver that writes past a full FIFO loses nothing and keeps its order. */
Test(uart, writes_past_a_full_fifo_keep_order)
{
	char want[24];

	host.full = true;
	wr(UART_IIR_FCR, UART_FCR_ENABLE);
	for (unsigned i = 0; i < sizeof(want); i++) {
		want[i] = (char)('a' + i);
		wr(UART_RBR_THR_DLL, (uint8_t)want[i]);
	}
	cr_assert_gt(host.forced_calls, 0);
	cr_assert_eq(rd(UART_LSR) & LSR_TX_IDLE, 0);
	host.full = false;
	uart_tx_ready(uart);
	cr_assert_eq(host.n_out, sizeof(want));
	cr_assert_arr_eq(host.out, want, sizeof(want));
}

Test(uart, paused_transmitter_holds_its_fifo)
{
	Cloister__UartState *s = NULL;

	host.full = true;
	wr(UART_RBR_THR_DLL, 'p');
	uart_pause(uart);
	host.full = false;
	uart_tx_ready(uart);
	cr_assert_eq(host.n_out, 0, "nothing moves while paused");
	/* A snapshot taken now finds the transmitter done, its interrupt due. */
	cr_assert_eq(uart_save(uart, &s), 0);
	cr_assert(s->thr_interrupt);
	uart_state_free(s);
	uart_resume(uart);
	cr_assert_eq(host.n_out, 1);
	cr_assert_eq(host.out[0], 'p');
}

Test(uart, teardown_drains_a_paused_fifo)
{
	host.full = true;
	wr(UART_RBR_THR_DLL, 'z');
	uart_pause(uart);
	uart_tx_drain(uart);
	cr_assert_eq(host.n_out, 1, "the VM going away still hands its last byte over");
	cr_assert_eq(host.out[0], 'z');
	cr_assert_eq(rd(UART_LSR) & LSR_TX_IDLE, LSR_TX_IDLE);
}
