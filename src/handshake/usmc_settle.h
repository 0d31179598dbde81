/* SPDX-License-Identifier: MIT */
/*
 * The client's answer (usmc_settle.c): the Accept or Decline of a
 * proposed connection, waited for or not, and what a close does while
 * it is pending.
 */
#ifndef USMC_SETTLE_H
#define USMC_SETTLE_H

#include <stdbool.h>

#include "usmc_sock.h"

/*
 * Waits for the Accept or Decline of a proposed connection, as the
 * program's socket call: up to timeout_ms (-1: as long as it takes, 0:
 * not at all; then -1 EAGAIN), and a signal ends the wait as it ends the
 * kernel's (-1 EINTR, unless SA_RESTART restarts a call without a limit).
 */
int af_settle(struct usmc_sock *s, int timeout_ms);
/*
 * The same for a read, which reads the ring once settled: the server's
 * first data then needs no doorbell (CDC_PEER_READS_AFTER_ACCEPT).
 */
int af_settle_read(struct usmc_sock *s, int timeout_ms);
/*
 * Around a wait of the program's call that watches the channel the answer
 * comes on (CDC_PEER_WATCHES_CHANNEL), and, with reads, looks at the ring
 * once it has the answer (CDC_PEER_READS_AFTER_ACCEPT): end is called
 * before that look, and before the call gives up.
 */
void af_settle_wait_begin(struct usmc_sock *s, bool reads);
void af_settle_wait_end(struct usmc_sock *s);
/*
 * Around the TCP connect() of a proposed connection: a server that runs
 * while we are inside it (it took our CPU as the handshake woke it, on a
 * busy machine or a single one) finds us watching the channel and rings
 * no doorbell for its Accept, since end looks at the channel once before
 * connect() returns.
 */
void af_settle_connect_begin(struct usmc_sock *s);
void af_settle_connect_end(struct usmc_sock *s);
/* The same for usmc's own wait (an exec's): as long as it takes, whatever signals come. */
int af_settle_fully(struct usmc_sock *s);
/* Settles the handshake if its answer is in already: one look at the channel. */
void af_settle_if_answered(struct usmc_sock *s);
/* Closing a socket whose handshake is pending: settles it or leaves it to the server. */
void af_settle_before_close(struct usmc_sock *s);
/* Closing before the answer came: the ring stays for the server to read. */
void af_orphan(struct usmc_sock *s);
/*
 * Publishes our end of the TCP connection (address and port) in our CDC
 * area, once: before the first byte written ahead of the answer, so that
 * the server can match a Proposal whose client is gone, socket and all.
 */
void af_publish_end(struct usmc_sock *s);
/*
 * A Proposal nobody takes (a plain program accepted the connection, a
 * proxy relays it) gets no answer and rings no doorbell, and a full ring
 * hides the kernel socket's POLLOUT: a wait on a socket still proposing
 * wakes as often as a blocking call's wait does, so that its handshake
 * looks whether anyone can still answer (af_settle) and falls back after
 * a CLC timeout.  How long such a wait of left ms (-1: none) may sleep.
 */
int usmc_proposed_wait_ms(int left);

#endif /* USMC_SETTLE_H */
