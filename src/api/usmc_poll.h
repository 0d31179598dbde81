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
/* What the kernel socket fd has now of events (and errors, hang-ups); 0 if nothing. */
short usmc_kernel_now(int fd, short events);

#endif /* USMC_POLL_H */
