/* SPDX-License-Identifier: Apache-2.0 */
/*
 * An ns16550a UART (registers one byte apart, reg-shift 0). Output goes to
 * the sink as soon as it takes it; while the sink is full the bytes wait in
 * the transmit FIFO (16 bytes, 1 with FIFOs off) and LSR shows the
 * transmitter busy, as a real UART held back by flow control would, until
 * uart_tx_ready() says the sink has room. Input waits in a bounded queue
 * that the host fills with uart_push_input(). Every entry point is
 * thread-safe.
 */
#ifndef CLOISTER_UART_H
#define CLOISTER_UART_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cloister.pb-c.h"

/* Input the guest has not read yet, FIFO included: pushing beyond it is refused. */
#define UART_RX_MAX 1024u
/* The 16550A's transmit FIFO. */
#define UART_TX_FIFO 16u

enum {
	UART_RBR_THR_DLL = 0,
	UART_IER_DLM = 1,
	UART_IIR_FCR = 2,
	UART_LCR = 3,
	UART_MCR = 4,
	UART_LSR = 5,
	UART_MSR = 6,
	UART_SCR = 7,
};

#define UART_IER_RDI 0x01u	/* received data available */
#define UART_IER_THRI 0x02u	/* transmitter holding register empty */
#define UART_IER_RLSI 0x04u	/* receiver line status */
#define UART_IER_MSI 0x08u	/* modem status */

#define UART_IIR_NO_INT 0x01u
#define UART_IIR_MSI 0x00u
#define UART_IIR_THRI 0x02u
#define UART_IIR_RDI 0x04u
#define UART_IIR_RX_TIMEOUT 0x0cu
#define UART_IIR_FIFOS 0xc0u

#define UART_FCR_ENABLE 0x01u
#define UART_FCR_CLEAR_RX 0x02u
#define UART_FCR_CLEAR_TX 0x04u
#define UART_FCR_TRIGGER 0xc0u

#define UART_LCR_DLAB 0x80u

#define UART_MCR_DTR 0x01u
#define UART_MCR_RTS 0x02u
#define UART_MCR_OUT1 0x04u
#define UART_MCR_OUT2 0x08u
#define UART_MCR_LOOP 0x10u

#define UART_LSR_DR 0x01u
#define UART_LSR_THRE 0x20u
#define UART_LSR_TEMT 0x40u

#define UART_MSR_DCTS 0x01u
#define UART_MSR_DDSR 0x02u
#define UART_MSR_TERI 0x04u
#define UART_MSR_DDCD 0x08u
#define UART_MSR_DELTAS 0x0fu
#define UART_MSR_CTS 0x10u
#define UART_MSR_DSR 0x20u
#define UART_MSR_RI 0x40u
#define UART_MSR_DCD 0x80u

struct uart_params {
	/*
	 * Where transmitted bytes go; may be NULL (output is dropped). Returns
	 * how many it took; with forced, all of them (a driver that wrote to a
	 * full FIFO: the sink keeps what it can rather than lose it).
	 */
	size_t (*tx)(void *opaque, const void *buf, size_t len, bool forced);
	/*
	 * The interrupt line; may be NULL. Called with the UART's lock held
	 * on every register change: it must not call back into the UART.
	 */
	void (*set_irq)(void *opaque, uint32_t irq, bool level);
	uint32_t irq;
	void *opaque;
};

struct uart;

int uart_create(const struct uart_params *p, struct uart **ret_uart);
void uart_destroy(struct uart *u);

/* Register accesses at offset inside the window: bytes only, anything else faults. */
int uart_read(struct uart *u, uint64_t offset, unsigned size, uint64_t *ret_val);
int uart_write(struct uart *u, uint64_t offset, unsigned size, uint64_t val);

/* Queues input for the guest; returns how many bytes fit (the rest stay with the caller). */
size_t uart_push_input(struct uart *u, const void *buf, size_t len);

/* The sink has room again: the transmit FIFO moves on (unless paused). */
void uart_tx_ready(struct uart *u);
/* While paused the transmitter holds its FIFO, whatever the sink says. */
void uart_pause(struct uart *u);
void uart_resume(struct uart *u);
/* The VM goes away: whatever the FIFO holds goes to the sink (forced), paused or not. */
void uart_tx_drain(struct uart *u);

/*
 * Only while the harts are paused; free with uart_state_free(). Bytes still
 * in the transmit FIFO belong to this VM's sink, not to the state: the
 * state says the transmitter has finished (THR empty, its interrupt due).
 */
int uart_save(struct uart *u, Cloister__UartState **ret_state);
void uart_state_free(Cloister__UartState *s);
/* Validates all of state before taking any of it, then re-drives the interrupt line. */
int uart_restore(struct uart *u, const Cloister__UartState *state);

#endif
