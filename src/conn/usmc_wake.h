/* SPDX-License-Identifier: MIT */
/*
 * Wake-ups (usmc_wake.c): the doorbells a peer rings when it sees us
 * wait, armed, rung, read and slept on.
 */
#ifndef USMC_WAKE_H
#define USMC_WAKE_H

#include <stdbool.h>

#include "usmc_sock.h"

/* Drains doorbells, recording a closed or reset TCP connection. */
int usmc_conn_drain(struct usmc_sock *s);
/* Before a close: drains the doorbells the peer counted, if any, and looks at nothing else. */
void usmc_conn_drain_owed(struct usmc_sock *s);
/*
 * Sleeps until a blocking read (POLLIN) or write (POLLOUT) may go on: a
 * doorbell, timeout_ms (-1: none) or a signal; it may return early.
 * 0, or -1 with errno.
 */
int usmc_conn_sleep(struct usmc_sock *s, short events, int timeout_ms);
/*
 * After a read: if it emptied the ring while doorbells wait in the TCP
 * socket, arms and reads them, so that the descriptor is readable again
 * exactly when new data comes (a program may poll() it, or exit, and
 * unread doorbells would turn its close into a reset).
 */
void usmc_conn_drain_seen(struct usmc_sock *s);
/*
 * Set by epoll (usmc_epoll.c): called after a drain that read doorbells
 * or found the TCP connection's end, so that an epoll set whose kernel
 * entry would have reported the doorbell looks at the connection.
 * Called with no lock of usmc's held, or with LOCK_EPOLL.
 */
extern void (*usmc_wake_drained)(struct usmc_sock *s);
/*
 * A read changed what a wait finds with no doorbell to say so: it found
 * the peer's cursors broken and aborted the connection (readable and hung
 * up now), or it made the peer's end fit (usmc_conn_end_fits), as TCP's
 * FIN would come now.  usmc_wake_drained tells the epoll sets.  After the
 * receive lock is let go.
 */
void usmc_wake_look_again(struct usmc_sock *s);
/* Rings the peer's doorbell, unless the peer or the TCP connection is gone. */
void usmc_conn_ring(struct usmc_sock *s);
/*
 * After an urgent write's mark is published, TCP's urgent byte, which
 * gives the peer's process SIGURG and POLLPRI (cdc_ring_urgent).
 */
void usmc_conn_ring_urgent(struct usmc_sock *s);
/*
 * TCP's urgent byte of a mark that is read or passed now, or that a wait
 * found stale: taken, so that the kernel socket's POLLPRI ends with the
 * mark's.  Not under a seccomp filter, which may kill for the recv();
 * there waits do not ask the kernel for POLLPRI (usmc_conn_urgent_watched)
 * and see urgent data by the rings alone.
 */
void usmc_conn_urgent_taken(struct usmc_sock *s);
bool usmc_conn_urgent_watched(void);

/*
 * Tells the peer we will sleep, so that its next cursor update rings, and
 * keeps the doorbells we have not seen for us; then reads those we have.
 * Look at the rings after, and disarm once awake.
 */
void usmc_conn_arm(struct usmc_sock *s, short events);
/* Step 1 of the arm alone: the peer's next change of what events ask for rings once. */
void usmc_conn_want(struct usmc_sock *s, short events);
void usmc_conn_disarm(struct usmc_sock *s);
/* Whether an arm since the last call found no sleeper slot: then sleep 1 ms at most. */
bool usmc_wake_inexact(void);

#endif /* USMC_WAKE_H */
