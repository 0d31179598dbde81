/* SPDX-License-Identifier: MIT */
/*
 * The receive path (usmc_rx.c, net/smc's smc_rx): reading out of the
 * peer's ring, and the peer's cursors and flags read from its CDC area,
 * which may reset the connection.
 */
#ifndef USMC_RX_H
#define USMC_RX_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "usmc_conn.h"
#include "usmc_sock.h"
#include "usmc_wait.h"

/*
 * A read of the rings.  *deadline: when SO_RCVTIMEO's wait ends, 0 until
 * a wait of the call set it (the wait for the handshake's answer, if
 * any, came out of the same time).
 */
ssize_t usmc_rx_recvmsg(struct usmc_sock *s, const struct iovec *iov, int iovcnt, int flags,
			int64_t *deadline);
int usmc_rx_avail(struct usmc_sock *s, uint64_t *avail);
/* FIONREAD, as TCP's: what a read can take before an out-of-band urgent byte. */
int usmc_rx_inq(struct usmc_sock *s, uint64_t *inq);
/*
 * recv(MSG_OOB), as TCP's tcp_recv_urg: the urgent byte once, MSG_OOB in
 * *msg_flags; EINVAL when there is none or it was taken, or with
 * SO_OOBINLINE; EAGAIN while it is announced but not there.
 */
ssize_t usmc_rx_recv_urgent(struct usmc_sock *s, const struct iovec *iov, int iovcnt, int flags,
			    int *msg_flags);
/* SIOCATMARK: whether the next byte to read is the urgent mark. */
int usmc_rx_at_mark(struct usmc_sock *s);
/* SO_OOBINLINE in shared memory: kept here, the kernel socket's own left as it is. */
void usmc_rx_set_oobinline(struct usmc_sock *s, bool on);
/* Re-reads the peer's cursors and flags; 0, or -1 after aborting. */
int usmc_conn_refresh(struct usmc_conn *conn);

/*
 * Refreshes the cursors once, under the receive lock, and fills the
 * view's amounts and cursors (avail, space, rx_prod, tx_cons); -1 after
 * aborting a connection whose peer broke the protocol.
 */
int usmc_conn_amounts(struct usmc_sock *s, struct conn_view *v);

#endif /* USMC_RX_H */
