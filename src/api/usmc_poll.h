/* SPDX-License-Identifier: MIT */
/*
 * poll over usmc sockets (usmc_poll.c): a connection's readiness turned
 * into TCP's answer, and the timeouts that usmc_epoll.c shares.
 */
#ifndef USMC_POLL_H
#define USMC_POLL_H

#include <time.h>

/* What is left of a poll-style timeout (ms, -1 for none) started at start. */
int usmc_remaining_ms(int timeout, const struct timespec *start);
/*
 * Before the server's answer, what we write waits in our ring: once it is
 * full, the socket is not writable, whatever the kernel socket says.
 */
bool usmc_proposed_ring_full(const struct usmc_sock *s);
/*
 * A Proposal nobody takes (a plain program accepted the connection, a
 * proxy relays it) gets no answer and rings no doorbell, and a full ring
 * hides the kernel socket's POLLOUT: a wait on a socket still proposing
 * wakes as often as a blocking call's wait does, so that its handshake
 * looks whether anyone can still answer (af_settle) and falls back after
 * a CLC timeout.  How long such a wait of left ms (-1: none) may sleep.
 */
int usmc_proposed_wait_ms(int left);

#endif /* USMC_POLL_H */
