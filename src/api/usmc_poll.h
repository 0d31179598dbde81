/* SPDX-License-Identifier: MIT */
/* What usmc_poll.c lends to usmc_epoll.c: arming, timeouts (the spin: usmc_wait.c). */
#ifndef USMC_POLL_H
#define USMC_POLL_H

#include <stdbool.h>
#include <time.h>

#include "usmc_sock.h"

/*
 * Tells the peer we will sleep, so that its next cursor update rings, and
 * keeps the doorbells we have not seen for us (usmc_wake.c); then reads
 * those we have.  Look at the rings after, and disarm once awake.
 */
void usmc_conn_arm(struct usmc_sock *s, short events);
/* Step 1 of the arm alone: the peer's next change of what events ask for rings once. */
void usmc_conn_want(struct usmc_sock *s, short events);
void usmc_conn_disarm(struct usmc_sock *s);
/* Whether an arm since the last call found no sleeper slot: then sleep 1 ms at most. */
bool usmc_wake_inexact(void);
/* usmc_conn_disarm for the sockets of an epoll set, and of sets inside it. */
void usmc_epoll_set_disarm(int fd);
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
 * looks whether anyone can still answer (af_resolve) and falls back after
 * a CLC timeout.  How long such a wait of left ms (-1: none) may sleep.
 */
int usmc_proposed_wait_ms(int left);

/*
 * poll on an epoll set that holds usmc sockets (in it or in a set inside):
 * 1 if one has something to report (its socket armed otherwise, so that a
 * doorbell makes the set readable to the kernel), 0, or -1 for any other
 * descriptor.
 */
int usmc_epoll_set_poll(int fd);
/* Whether any epoll entry is tracked at all: a load, for the hot paths. */
bool usmc_epoll_tracking(void);

#endif
