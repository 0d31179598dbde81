/* SPDX-License-Identifier: MIT */
/*
 * The holders of a connection (usmc_holders.c): the processes of a fork
 * tree that share it, counted in its shared state, so that the last one
 * to close it ends it for the peer.
 */
#ifndef USMC_HOLDERS_H
#define USMC_HOLDERS_H

#include <stdbool.h>

#include "usmc_conn.h"

/* A new connection has this process as its one holder. */
void usmc_holders_init(struct usmc_conn *conn);
/* A connection an exec handed over: held by this image or not. */
void usmc_holders_adopt(struct usmc_conn *conn, bool holds);
/*
 * Ends this process's hold of the connection (once; the socket's inode,
 * or 0 for fd's, for the look in /proc): true if it was the last holder,
 * which ends the connection for the peer.
 */
bool usmc_holder_last(struct usmc_conn *conn, int fd, unsigned long inode);
/* Ends this process's hold, the connection going on or not (a handshake's). */
void usmc_holder_put(struct usmc_conn *conn);
/*
 * Around a close: no fork counts the connection's holders meanwhile, so
 * a child has both the descriptor and its count, or neither.
 */
void usmc_holders_enter(void);
void usmc_holders_leave(void);
/* A program about to be spawned with the connection: counted; false if it ended. */
bool usmc_holder_add(struct usmc_conn *conn);
/* A spawn that failed: takes back a count usmc_holder_add made. */
void usmc_holder_sub(struct usmc_conn *conn);
/*
 * Whether another process may hold the connection too (a count too high
 * says yes): its drains of doorbells are not this process's to see.
 */
bool usmc_holders_shared(const struct usmc_conn *conn);
/*
 * As usmc_holders_shared, for a caller that asks again and again while
 * the connection is idle (epoll's look, under LOCK_EPOLL): a count above
 * one is checked in /proc at the 1st, 2nd, 4th, 8th... ask since it last
 * changed, and says not shared, until it changes, once no other process
 * holds the socket fd names (a holder that exited without ending its
 * hold).  The count is left as it is.
 */
bool usmc_holders_shared_now(struct usmc_conn *conn, int fd);
/* Bumped before each fork and spawn that may share connections: a hint, read without a lock. */
/*
 * The forks this image has made, each counted as it begins (its prepare
 * handler): a listener made before one may be the child's too.
 */
uint32_t usmc_holders_forks(void);

extern _Atomic uint32_t usmc_holders_epoch;
/*
 * Set by epoll (usmc_epoll_ready.c): called in a fork's prepare handler,
 * once the child's counts are taken, so that a thread already asleep on
 * an epoll set looks again at entries whose doorbells the child may read.
 */
extern void (*usmc_holders_forking)(void);
/* From the first connection on, fork() counts the child as a holder of each. */
void usmc_holders_watch_fork(void);

/*
 * Before a vfork or a CLONE_VM child is started, in the parent: the bell
 * its exec may hand over (usmc_bell.h), made if the process has had
 * connections.
 */
void usmc_holders_vforking(void);

#endif /* USMC_HOLDERS_H */
