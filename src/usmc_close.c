// SPDX-License-Identifier: MIT
/*
 * Closing (net/smc's smc_close): shutdown and close of a shared-memory
 * connection, with TCP's outcomes.  An orderly close tells the peer
 * through the CDC flags (peer_done_writing, peer_conn_closed); a close
 * with unread data, or with SO_LINGER {1, 0}, aborts (peer_conn_abort)
 * and resets the TCP connection, so the peer reads ECONNRESET as it
 * would from TCP.
 */
#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

#include "usmc.h"
#include "usmc_sock.h"
#include "usmc_sys.h"

static void publish_flags(struct usmc_sock *s, uint32_t flags)
{
	atomic_fetch_or_explicit(&s->conn->tx.cdc->flags, flags, memory_order_release);
	atomic_thread_fence(memory_order_seq_cst);
	cdc_ring(s->fd);
}

int usmc_shutdown_conn(struct usmc_sock *s, int how)
{
	if (how != SHUT_RD && how != SHUT_WR && how != SHUT_RDWR) {
		errno = EINVAL;
		return -1;
	}
	if (how != SHUT_WR)
		s->shut_rd = true;
	if (how != SHUT_RD && !s->shut_wr) {
		s->shut_wr = true;
		publish_flags(s, CDC_PEER_DONE_WRITING);
	}
	return 0;
}

int usmc_close_conn(struct usmc_sock *s)
{
	struct usmc_conn *conn = s->conn;
	struct usmc_lgr *lgr = conn->lgr;
	uint64_t unread = 0;
	bool reset;

	usmc_rx_avail(s, &unread);
	reset = conn->aborted || unread || s->linger_reset;
	if (reset) {
		usmc_conn_abort(s);
	} else {
		publish_flags(s, CDC_PEER_DONE_WRITING | CDC_PEER_CONN_CLOSED);
		/* Unread doorbells would turn the kernel's FIN into a reset. */
		usmc_conn_drain(s);
	}
	usmc_lock();
	af_conn_forget(conn);
	lgr_ring_free(lgr, &conn->tx, conn_peer_cdc(conn), conn->peer_gen);
	lgr_put(lgr);
	usmc_unlock();
	s->conn = NULL;
	usmc_conn_free(conn);
	return 0;
}

int usmc_shutdown(int fd, int how)
{
	struct usmc_sock *s = usmc_sock_active(fd);

	if (s && s->state == SOCK_PROPOSED) {
		if (how == SHUT_RD || how == SHUT_RDWR)
			s->shut_rd = true;
		if (how == SHUT_WR || how == SHUT_RDWR) {
			s->shut_wr = true;
			atomic_fetch_or(&s->conn->tx.cdc->flags, CDC_PEER_DONE_WRITING);
		}
		af_resolve(s, false);
		return 0;
	}
	if (!s)
		return usmc_sys.shutdown(fd, how);
	return usmc_shutdown_conn(s, how);
}

void usmc_release_fd(int fd)
{
	struct usmc_sock *s = usmc_sock_get(fd);

	if (!s)
		return;
	/* Another descriptor still names the socket: the connection goes on. */
	if (atomic_load(&s->refs) > 1) {
		usmc_sock_forget(fd);
		return;
	}
	/* The parent of a fork holds the connection: only our copy of it goes. */
	if (s->conn && s->conn->lgr->owner_pid != usmc_pid()) {
		usmc_conn_free(s->conn);
		s->conn = NULL;
		usmc_sock_forget(fd);
		return;
	}
	if (s->state == SOCK_PROPOSED)
		af_resolve_before_close(s);
	if (s->state == SOCK_LISTEN)
		af_listener_close(s);
	else if (s->state == SOCK_SMC)
		usmc_close_conn(s);
	usmc_sock_forget(fd);
}

int usmc_close(int fd)
{
	usmc_release_fd(fd);
	return usmc_sys.close(fd);
}
