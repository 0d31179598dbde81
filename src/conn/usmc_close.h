/* SPDX-License-Identifier: MIT */
/*
 * Closing (usmc_close.c, net/smc's smc_close): shutdown and close of a
 * shared-memory connection, with TCP's outcomes.
 */
#ifndef USMC_CLOSE_H
#define USMC_CLOSE_H

#include "usmc_conn.h"
#include "usmc_sock.h"

int usmc_close_conn(struct usmc_sock *s);
/*
 * The last close of an SMC connection in this process (descriptor fd):
 * the end of its hold, and of the connection if it was the last holder.
 */
void usmc_close_conn_last(struct usmc_sock *s, int fd);
int usmc_shutdown_conn(struct usmc_sock *s, int how);
/*
 * Marks the socket shut down (how: SHUT_RD, SHUT_WR or SHUT_RDWR) for
 * every holder, and publishes the end of writing to the peer; ring: with
 * a doorbell, which a connection still in its handshake goes without.
 */
void usmc_shut_mark(struct usmc_sock *s, int how, bool ring);
/*
 * After a shutdown: wakes the threads asleep on the socket, this
 * process's (usmc_kick.c) and those of the other processes that hold it
 * (usmc_bell.c), as the kernel's shutdown wakes every caller.
 */
void usmc_shut_wake(struct usmc_sock *s);
/*
 * The process exits, the connection's last holder, and the kernel closes
 * its socket next: tells the peer (CDC_PEER_EXITING), then reads the
 * doorbells it counted.  Nothing else: other threads may still write.
 */
void usmc_close_at_exit(struct usmc_sock *s);
void usmc_conn_free(struct usmc_conn *conn);

/*
 * A close while another thread sleeps in a read or write of the socket.
 * The kernel leaves a file to the calls inside it: the TCP connection
 * ends only when the last of them returns, and such a read still gets
 * what the peer writes.  So a call about to sleep holds its socket until
 * it returns (usmc_call_hold, at most one socket per call; then
 * usmc_call_release, at the call's end, its last touch of the socket),
 * and the close of its last descriptor meanwhile leaves the socket to the
 * call, on a descriptor of its own (usmc_fd.c), with USMC_CALLS_CLOSED:
 * the last call to return closes it, as close() would, through
 * usmc_close_held_finish.  A listener is held so by an accept().  A call
 * is held from its first sleep (or its wait for the answer) on: a close in
 * the microseconds between its look at the table and then is not held
 * off.
 */
#define USMC_CALLS_CLOSED 0x80000000u
void usmc_call_hold(struct usmc_sock *s);
void usmc_call_release(struct usmc_sock *s);
/* The same for a call that sleeps on several sockets (poll): each held once, then released. */
void usmc_sock_hold(struct usmc_sock *s);
void usmc_sock_release(struct usmc_sock *s);
/* The close that the last call to return does (the API's: set before any is taken over). */
extern void (*usmc_close_held_finish)(struct usmc_sock *s);
/* Lists s as taken over (on), or no longer: a forked child closes their descriptors. */
void usmc_closes_held_note(struct usmc_sock *s, bool on);

#endif /* USMC_CLOSE_H */
