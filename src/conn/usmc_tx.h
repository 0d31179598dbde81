/* SPDX-License-Identifier: MIT */
/*
 * The send path (usmc_tx.c, net/smc's smc_tx): writing into our ring,
 * one pass at a time, and what our ring holds going to TCP after a
 * Decline.
 */
#ifndef USMC_TX_H
#define USMC_TX_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "usmc_sock.h"

/*
 * A send's steps, which the socket's send call (usmc_io.c) loops over,
 * settling the handshake between them.  usmc_tx_refused: the answer of a
 * send the connection takes no more (shut down, reset), or 0.
 * usmc_tx_pass: one pass over what is left of iov (total bytes, *sent of
 * them written): TX_DONE with the call's answer in *result (the rest went
 * to TCP, or it ends here), TX_WROTE when *sent grew, TX_FULL when the
 * ring had no room, TX_AGAIN when a reset came meanwhile (start over).
 * usmc_tx_wait: sleeps until the ring has room (0), or -1 with errno.
 */
enum tx_pass { TX_DONE, TX_WROTE, TX_FULL, TX_AGAIN };
/*
 * Takes the connection's send lock (every holder's), publishing first
 * what a holder that died inside a write left counted; released with
 * usmc_mutex_unlock(&conn->sh->tx_lock, LOCK_CONN_TX).
 */
void usmc_tx_lock(struct usmc_sock *s);
ssize_t usmc_tx_refused(struct usmc_sock *s, int flags);
enum tx_pass usmc_tx_pass(struct usmc_sock *s, const struct iovec *iov, int iovcnt, size_t total,
			  size_t *sent, int flags, ssize_t *result);
int usmc_tx_wait(struct usmc_sock *s, int64_t *deadline);
int usmc_tx_space(struct usmc_sock *s, uint64_t *space);
/* After producing while the handshake was open: ring if the peer waits. */
void usmc_tx_notify(struct usmc_sock *s);
/* Replays what our ring holds into the TCP socket after a Decline. */
int usmc_tx_replay(struct usmc_sock *s);

#endif /* USMC_TX_H */
