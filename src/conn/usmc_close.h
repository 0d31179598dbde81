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
 * The process exits, the connection's last holder, and the kernel closes
 * its socket next: tells the peer (CDC_PEER_EXITING), then reads the
 * doorbells it counted.  Nothing else: other threads may still write.
 */
void usmc_close_at_exit(struct usmc_sock *s);
void usmc_conn_free(struct usmc_conn *conn);

#endif /* USMC_CLOSE_H */
