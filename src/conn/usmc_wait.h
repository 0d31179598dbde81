/* SPDX-License-Identifier: MIT */
/*
 * Waiting on a connection (usmc_wait.c): what it is ready for, taken
 * from one view of its state, the spin before a sleep, and a blocking
 * call's timeout (the sleep itself: usmc_wake.h).
 */
#ifndef USMC_WAIT_H
#define USMC_WAIT_H

#include <stdbool.h>
#include <stdint.h>

#include "usmc_sock.h"

/* How long a waiter on s (NULL: any) spins, in µs (the settings: usmc_config.h). */
int usmc_spin_us(const struct usmc_sock *s);
/* A short spin before sleeping: check() returns how many are ready; the spin ends with it. */
int usmc_spin_ready(int (*check)(void *), void *arg);

/* Spins a little while for POLLIN or POLLOUT; true if it came. */
bool usmc_spin_until_ready(struct usmc_sock *s, short events);
short usmc_conn_revents(struct usmc_sock *s, short events);

/* A connection's state at one moment, taken once, for readiness and edges. */
struct conn_view {
	uint64_t avail;    /* bytes to read */
	uint64_t space;    /* room to write */
	uint64_t rx_prod;  /* the peer's cursors as last validated */
	uint64_t tx_cons;
	uint32_t flags;    /* CDC_PEER_* */
	int tcp_state;
	int tcp_err;
	bool reset;
	int err;
	bool end_shows;    /* the peer ended, and its end fits (usmc_conn_end_fits) */
	uint32_t shut;     /* CONN_SHUT_*: shut down by this process or another holder */
	bool urg_valid;    /* an urgent byte not read yet: POLLPRI */
	bool urg_hidden;   /* the next byte is an out-of-band urgent byte, no data to read */
	uint64_t inq;      /* SIOCINQ, as tcp_inq: avail, or the bytes before an out-of-band urgent byte */
};

/*
 * Whether the peer's end may show with avail bytes unread, as TCP's FIN
 * would: TCP's peer sends it only once what is unread fits the receive
 * buffer (SO_RCVBUF as the program set it, else tcp_rmem's default, and
 * at least twice SO_RCVLOWAT, as TCP grows it).
 */
bool usmc_conn_end_fits(const struct usmc_sock *s, uint64_t avail);
/* Refreshes the cursors and takes the view; -1 if the peer broke the protocol. */
int usmc_conn_view(struct usmc_sock *s, struct conn_view *v);
/* usmc_conn_revents of a view taken before. */
short usmc_conn_view_revents(const struct usmc_sock *s, const struct conn_view *v, short events);
/*
 * A blocking send or receive with the socket's timeout (0: none): the
 * milliseconds left until deadline, 0 once it passed (errno EAGAIN, as
 * TCP), -1 for no limit.  *deadline is set on the first call.
 */
int usmc_wait_left(int timeo_ms, int64_t *deadline);

#endif /* USMC_WAIT_H */
