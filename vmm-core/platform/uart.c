/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The 16550A's registers over a transmit FIFO that the sink drains as fast
 * as it takes bytes, and a host-fed receive queue. The receive FIFO's
 * character timeout is taken to be zero: data below the trigger level is
 * reported as a timeout interrupt at once, which a driver serves exactly
 * like a full FIFO.
 */
#include "uart.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct uart {
	pthread_mutex_t lock;
	struct uart_params params;
	uint8_t ier, lcr, mcr, fcr, scr, dll, dlm, msr;
	bool thr_interrupt;
	uint8_t rx[UART_RX_MAX];
	size_t rx_head, rx_count;
	uint8_t tx[UART_TX_FIFO];
	size_t tx_count;
	bool tx_paused;
};

/* Without a modem, the lines a terminal would raise read as raised. */
#define UART_MSR_IDLE (UART_MSR_DCD | UART_MSR_DSR | UART_MSR_CTS)

static unsigned uart_rx_trigger(const struct uart *u)
{
	static const unsigned levels[4] = { 1, 4, 8, 14 };

	if (!(u->fcr & UART_FCR_ENABLE))
		return 1;
	return levels[(u->fcr & UART_FCR_TRIGGER) >> 6];
}

/* The highest-priority interrupt the UART has to report; receiver line status never arises. */
static uint8_t uart_iir_id(const struct uart *u)
{
	if ((u->ier & UART_IER_RDI) && u->rx_count > 0)
		return u->rx_count >= uart_rx_trigger(u) ? UART_IIR_RDI : UART_IIR_RX_TIMEOUT;
	if ((u->ier & UART_IER_THRI) && u->thr_interrupt)
		return UART_IIR_THRI;
	if ((u->ier & UART_IER_MSI) && (u->msr & UART_MSR_DELTAS))
		return UART_IIR_MSI;
	return UART_IIR_NO_INT;
}

/* With the lock held, after anything that may change the interrupt. */
static void uart_update_irq(struct uart *u)
{
	if (u->params.set_irq)
		u->params.set_irq(u->params.opaque, u->params.irq, uart_iir_id(u) != UART_IIR_NO_INT);
}

static void uart_rx_clear(struct uart *u)
{
	u->rx_head = u->rx_count = 0;
}

static bool uart_rx_put(struct uart *u, uint8_t c)
{
	if (u->rx_count == UART_RX_MAX)
		return false;
	u->rx[(u->rx_head + u->rx_count) % UART_RX_MAX] = c;
	u->rx_count++;
	return true;
}

static uint8_t uart_rx_take(struct uart *u)
{
	uint8_t c;

	if (u->rx_count == 0)
		return 0;
	c = u->rx[u->rx_head];
	u->rx_head = (u->rx_head + 1) % UART_RX_MAX;
	u->rx_count--;
	return c;
}

/* In loopback, the modem inputs follow the modem outputs; deltas record each change. */
static void uart_loop_msr(struct uart *u)
{
	uint8_t old = u->msr, now = 0;

	if (u->mcr & UART_MCR_RTS)
		now |= UART_MSR_CTS;
	if (u->mcr & UART_MCR_DTR)
		now |= UART_MSR_DSR;
	if (u->mcr & UART_MCR_OUT1)
		now |= UART_MSR_RI;
	if (u->mcr & UART_MCR_OUT2)
		now |= UART_MSR_DCD;
	now |= old & UART_MSR_DELTAS;
	if ((old ^ now) & UART_MSR_CTS)
		now |= UART_MSR_DCTS;
	if ((old ^ now) & UART_MSR_DSR)
		now |= UART_MSR_DDSR;
	if ((old & UART_MSR_RI) && !(now & UART_MSR_RI))
		now |= UART_MSR_TERI;
	if ((old ^ now) & UART_MSR_DCD)
		now |= UART_MSR_DDCD;
	u->msr = now;
}

static void uart_reset(struct uart *u)
{
	u->ier = u->lcr = u->mcr = u->fcr = u->scr = u->dll = u->dlm = 0;
	u->msr = UART_MSR_IDLE;
	u->thr_interrupt = false;
	u->tx_count = 0;
	uart_rx_clear(u);
}

int uart_create(const struct uart_params *p, struct uart **ret_uart)
{
	struct uart *u = calloc(1, sizeof(*u));

	if (!u)
		return -ENOMEM;
	pthread_mutex_init(&u->lock, NULL);
	u->params = *p;
	uart_reset(u);
	*ret_uart = u;
	return 0;
}

void uart_destroy(struct uart *u)
{
	if (!u)
		return;
	pthread_mutex_destroy(&u->lock);
	free(u);
}

static uint8_t uart_read_locked(struct uart *u, uint64_t off)
{
	bool dlab = u->lcr & UART_LCR_DLAB;
	uint8_t v;

	switch (off) {
	case UART_RBR_THR_DLL:
		return dlab ? u->dll : uart_rx_take(u);
	case UART_IER_DLM:
		return dlab ? u->dlm : u->ier;
	case UART_IIR_FCR:
		v = uart_iir_id(u);
		/* Reading IIR is how the THR-empty interrupt is acknowledged. */
		if (v == UART_IIR_THRI)
			u->thr_interrupt = false;
		return v | ((u->fcr & UART_FCR_ENABLE) ? UART_IIR_FIFOS : 0);
	case UART_LCR:
		return u->lcr;
	case UART_MCR:
		return u->mcr;
	case UART_LSR:
		return (u->tx_count ? 0 : UART_LSR_THRE | UART_LSR_TEMT) |
		       (u->rx_count ? UART_LSR_DR : 0);
	case UART_MSR:
		v = u->msr;
		u->msr &= ~UART_MSR_DELTAS;
		return v;
	case UART_SCR:
		return u->scr;
	default:
		return 0;
	}
}

/* Hands the FIFO to the sink; once it is empty, THR-empty is due. */
static void uart_tx_flush(struct uart *u, bool forced)
{
	size_t n;

	if (!u->tx_count || (u->tx_paused && !forced))
		return;
	n = u->params.tx ? u->params.tx(u->params.opaque, u->tx, u->tx_count, forced) : u->tx_count;
	if (n > u->tx_count)
		n = u->tx_count;
	memmove(u->tx, u->tx + n, u->tx_count - n);
	u->tx_count -= n;
	if (!u->tx_count)
		u->thr_interrupt = true;
}

static size_t uart_tx_capacity(const struct uart *u)
{
	return (u->fcr & UART_FCR_ENABLE) ? UART_TX_FIFO : 1;
}

static void uart_transmit(struct uart *u, uint8_t c)
{
	if (u->mcr & UART_MCR_LOOP) {
		uart_rx_put(u, c);	/* a full queue drops it, as an overrun would */
		u->thr_interrupt = true;
		return;
	}
	/* Writing THR acknowledges THR-empty. */
	u->thr_interrupt = false;
	/*
	 * A driver that writes to a full FIFO (a console giving up on THRE
	 * after a timeout) would overrun real hardware; the sink keeps those
	 * bytes rather than lose them, in order.
	 */
	if (u->tx_count == uart_tx_capacity(u))
		uart_tx_flush(u, true);
	u->tx[u->tx_count++] = c;
	uart_tx_flush(u, false);
}

static void uart_write_fcr(struct uart *u, uint8_t val)
{
	/*
	 * Turning the FIFOs on or off empties them, as do the clear bits; what
	 * was waiting to go out goes to the sink first, never lost.
	 */
	if (((val ^ u->fcr) & UART_FCR_ENABLE) || (val & UART_FCR_CLEAR_RX))
		uart_rx_clear(u);
	if (((val ^ u->fcr) & UART_FCR_ENABLE) || (val & UART_FCR_CLEAR_TX))
		uart_tx_flush(u, true);
	u->fcr = (val & UART_FCR_ENABLE) ? val & (UART_FCR_ENABLE | UART_FCR_TRIGGER) : 0;
}

static void uart_write_locked(struct uart *u, uint64_t off, uint8_t val)
{
	bool dlab = u->lcr & UART_LCR_DLAB;

	switch (off) {
	case UART_RBR_THR_DLL:
		if (dlab)
			u->dll = val;
		else
			uart_transmit(u, val);
		break;
	case UART_IER_DLM:
		if (dlab) {
			u->dlm = val;
			break;
		}
		/* Enabling the THR-empty interrupt while THR is empty raises it at once. */
		if ((val & UART_IER_THRI) && !(u->ier & UART_IER_THRI) && !u->tx_count)
			u->thr_interrupt = true;
		u->ier = val & 0x0f;
		break;
	case UART_IIR_FCR:
		uart_write_fcr(u, val);
		break;
	case UART_LCR:
		u->lcr = val;
		break;
	case UART_MCR:
		u->mcr = val & 0x1f;
		if (u->mcr & UART_MCR_LOOP)
			uart_loop_msr(u);
		else
			u->msr = UART_MSR_IDLE | (u->msr & UART_MSR_DELTAS);
		break;
	case UART_SCR:
		u->scr = val;
		break;
	default:
		break;	/* LSR and MSR are read-only; the rest of the window is empty */
	}
}

int uart_read(struct uart *u, uint64_t offset, unsigned size, uint64_t *ret_val)
{
	uint8_t v;

	if (size != 1)
		return -EFAULT;
	pthread_mutex_lock(&u->lock);
	v = uart_read_locked(u, offset);
	uart_update_irq(u);
	pthread_mutex_unlock(&u->lock);
	*ret_val = v;
	return 0;
}

int uart_write(struct uart *u, uint64_t offset, unsigned size, uint64_t val)
{
	if (size != 1)
		return -EFAULT;
	pthread_mutex_lock(&u->lock);
	uart_write_locked(u, offset, (uint8_t)val);
	uart_update_irq(u);
	pthread_mutex_unlock(&u->lock);
	return 0;
}

size_t uart_push_input(struct uart *u, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	size_t n = 0;

	pthread_mutex_lock(&u->lock);
	while (n < len && uart_rx_put(u, p[n]))
		n++;
	if (n)
		uart_update_irq(u);
	pthread_mutex_unlock(&u->lock);
	return n;
}

void uart_tx_ready(struct uart *u)
{
	pthread_mutex_lock(&u->lock);
	uart_tx_flush(u, false);
	uart_update_irq(u);
	pthread_mutex_unlock(&u->lock);
}

void uart_pause(struct uart *u)
{
	pthread_mutex_lock(&u->lock);
	u->tx_paused = true;
	pthread_mutex_unlock(&u->lock);
}

void uart_resume(struct uart *u)
{
	pthread_mutex_lock(&u->lock);
	u->tx_paused = false;
	uart_tx_flush(u, false);
	uart_update_irq(u);
	pthread_mutex_unlock(&u->lock);
}

void uart_tx_drain(struct uart *u)
{
	pthread_mutex_lock(&u->lock);
	uart_tx_flush(u, true);
	pthread_mutex_unlock(&u->lock);
}

/* ---- state ---- */

void uart_state_free(Cloister__UartState *s)
{
	if (!s)
		return;
	free(s->rx.data);
	free(s);
}

int uart_save(struct uart *u, Cloister__UartState **ret_state)
{
	Cloister__UartState *s = calloc(1, sizeof(*s));

	if (!s)
		return -ENOMEM;
	cloister__uart_state__init(s);
	pthread_mutex_lock(&u->lock);
	s->rx.data = malloc(u->rx_count ? u->rx_count : 1);
	if (!s->rx.data) {
		pthread_mutex_unlock(&u->lock);
		free(s);
		return -ENOMEM;
	}
	for (size_t i = 0; i < u->rx_count; i++)
		s->rx.data[i] = u->rx[(u->rx_head + i) % UART_RX_MAX];
	s->rx.len = u->rx_count;
	s->ier = u->ier;
	s->lcr = u->lcr;
	s->mcr = u->mcr;
	s->fcr = u->fcr;
	s->scr = u->scr;
	s->dll = u->dll;
	s->dlm = u->dlm;
	s->msr = u->msr;
	/* The FIFO's bytes go to this VM's sink; a restored VM finds the transmitter done. */
	s->thr_interrupt = u->thr_interrupt || u->tx_count;
	pthread_mutex_unlock(&u->lock);
	*ret_state = s;
	return 0;
}

static bool uart_state_ok(const Cloister__UartState *s)
{
	return s->ier <= 0x0f && s->lcr <= 0xff && s->mcr <= 0x1f &&
	       (s->fcr & ~(UART_FCR_ENABLE | UART_FCR_TRIGGER)) == 0 &&
	       s->scr <= 0xff && s->dll <= 0xff && s->dlm <= 0xff && s->msr <= 0xff &&
	       s->rx.len <= UART_RX_MAX && (s->rx.len == 0 || s->rx.data);
}

int uart_restore(struct uart *u, const Cloister__UartState *s)
{
	if (!uart_state_ok(s))
		return -EINVAL;
	pthread_mutex_lock(&u->lock);
	u->ier = (uint8_t)s->ier;
	u->lcr = (uint8_t)s->lcr;
	u->mcr = (uint8_t)s->mcr;
	u->fcr = (uint8_t)s->fcr;
	u->scr = (uint8_t)s->scr;
	u->dll = (uint8_t)s->dll;
	u->dlm = (uint8_t)s->dlm;
	u->msr = (uint8_t)s->msr;
	u->thr_interrupt = s->thr_interrupt;
	u->tx_count = 0;
	uart_rx_clear(u);
	if (s->rx.len)
		memcpy(u->rx, s->rx.data, s->rx.len);
	u->rx_count = s->rx.len;
	uart_update_irq(u);
	pthread_mutex_unlock(&u->lock);
	return 0;
}
