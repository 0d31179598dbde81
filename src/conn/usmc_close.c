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
#include <pthread.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "usmc.h"
#include "usmc_bell.h"
#include "usmc_close.h"
#include "usmc_conn.h"
#include "usmc_fdtab.h"
#include "usmc_fork.h"
#include "usmc_holders.h"
#include "usmc_kick.h"
#include "usmc_rx.h"
#include "usmc_seg.h"
#include "usmc_sock.h"
#include "usmc_sys.h"
#include "usmc_tx.h"
#include "usmc_wake.h"

static void publish_flags(struct usmc_sock *s, uint32_t flags)
{
	conn_publish_flags(s->conn, flags);
	atomic_thread_fence(memory_order_seq_cst);
	usmc_conn_ring(s);
}

/*
 * Marks the socket shut down, for this process and for every other holder
 * of the connection.  The end of writing is published under the send lock,
 * which a write holds while it fills the ring: a holder's write either
 * comes before the peer's end of file, or finds the shutdown and fails
 * with EPIPE, as the kernel's sendmsg and shutdown exclude each other
 * under the socket's lock.
 */
void usmc_shut_mark(struct usmc_sock *s, int how, bool ring)
{
	struct usmc_conn *conn = s->conn;

	if (how != SHUT_WR) {
		s->shut_rd = true;
		atomic_fetch_or(&conn->sh->shut, CONN_SHUT_RD);
	}
	if (how == SHUT_RD || sock_shut(s, CONN_SHUT_WR)) {
		s->shut_wr = s->shut_wr || how != SHUT_RD;
		return;
	}
	s->shut_wr = true;
	usmc_tx_lock(s);
	atomic_fetch_or(&conn->sh->shut, CONN_SHUT_WR);
	if (ring)
		publish_flags(s, CDC_PEER_DONE_WRITING);
	else
		conn_publish_flags(conn, CDC_PEER_DONE_WRITING);
	usmc_mutex_unlock(&conn->sh->tx_lock, LOCK_CONN_TX);
}

void usmc_shut_wake(struct usmc_sock *s)
{
	usmc_kick();
	if (usmc_holders_shared(s->conn))
		usmc_bell_ring();
}

int usmc_shutdown_conn(struct usmc_sock *s, int how)
{
	if (how != SHUT_RD && how != SHUT_WR && how != SHUT_RDWR) {
		errno = EINVAL;
		return -1;
	}
	usmc_shut_mark(s, how, true);
	return 0;
}

/*
 * An orderly close: the flags go to the peer at once, and into our own
 * copy of them, which lets the link group's owner give the slot to a new
 * connection, only after our last touch of the connection's state.  The
 * last holder may be a forked child, still draining when its parent
 * accepts the next connection.
 */
static void close_orderly(struct usmc_sock *s)
{
	const uint32_t flags = CDC_PEER_DONE_WRITING | CDC_PEER_CONN_CLOSED;
	struct usmc_conn *conn = s->conn;

	/*
	 * No doorbell: the kernel's close follows at once, and its FIN wakes
	 * any sleeper of the peer's (it polls the TCP socket for input), whose
	 * drain finds the end and, before it, these flags.
	 */
	atomic_fetch_or_explicit(&conn->tx.cdc->flags, flags, memory_order_release);
	atomic_thread_fence(memory_order_seq_cst);
	/* Unread doorbells would turn the kernel's FIN into a reset. */
	usmc_conn_drain_owed(s);
	atomic_fetch_or(&conn->sh->flags_out, flags);
}

void usmc_close_at_exit(struct usmc_sock *s)
{
	/* Said before the drain: the peer rings no more once it sees it. */
	atomic_fetch_or_explicit(&s->conn->tx.cdc->flags, CDC_PEER_EXITING, memory_order_seq_cst);
	usmc_conn_drain_owed(s);
}

/* Tells the peer how the connection ends: an orderly close, or a reset. */
static void close_publish(struct usmc_sock *s)
{
	struct usmc_conn *conn = s->conn;
	uint64_t unread = 0;

	usmc_rx_avail(s, &unread);
	if (conn->sh->aborted || unread || s->linger_reset)
		usmc_conn_abort(s);
	else
		close_orderly(s);
}

void usmc_conn_free(struct usmc_conn *conn)
{
	free(conn);
}

int usmc_close_conn(struct usmc_sock *s)
{
	struct usmc_conn *conn = s->conn;
	struct usmc_lgr *lgr = conn->lgr;

	close_publish(s);
	usmc_lock();
	af_srv_conn_del(conn);
	lgr_ring_free(lgr, &conn->tx, conn_peer_cdc(conn), conn->peer_gen);
	lgr_put(lgr);
	usmc_unlock();
	s->conn = NULL;
	usmc_conn_free(conn);
	return 0;
}

/*
 * Another process of the fork tree still holds the socket: the connection
 * goes on there, and only our hold of it ends.  The link group's owner
 * keeps the ring's slot until the last holder has closed.
 */
static void close_conn_held_elsewhere(struct usmc_sock *s)
{
	struct usmc_conn *conn = s->conn;

	if (conn->lgr->owner_pid == usmc_pid()) {
		struct slot_holder h = { 0 };
		socklen_t ll = sizeof(h.local), pl = sizeof(h.peer), cl = sizeof(h.cookie);
		/* The socket the others hold, told apart from a later one of the same addresses. */
		bool known = !usmc_sys.getsockname(s->fd, (struct sockaddr *)&h.local, &ll) &&
			     !getpeername(s->fd, (struct sockaddr *)&h.peer, &pl) &&
			     !usmc_sys.getsockopt(s->fd, SOL_SOCKET, SO_COOKIE, &h.cookie, &cl);

		usmc_lock();
		af_srv_conn_del(conn);
		lgr_ring_put(conn->lgr, &conn->tx, conn_peer_cdc(conn), conn->peer_gen,
			     known ? &h : NULL);
		lgr_put(conn->lgr);
		usmc_unlock();
	}
	s->conn = NULL;
	usmc_conn_free(conn);
}

/*
 * The last close of an SMC connection in this process: the end of its
 * hold, and of the connection if it was the last holder (usmc_holders.c).
 */
void usmc_close_conn_last(struct usmc_sock *s, int fd)
{
	struct usmc_conn *conn = s->conn;

	if (!usmc_holder_last(conn, fd, 0)) {
		close_conn_held_elsewhere(s);
	} else if (conn->lgr->owner_pid != usmc_pid()) {
		/* The last holder, forked: the link group's bookkeeping is the owner's. */
		close_publish(s);
		s->conn = NULL;
		usmc_conn_free(conn);
	} else {
		usmc_close_conn(s);
	}
}

/* ---- a close while a call sleeps on the socket ---- */

/* The socket the calling thread's call holds, if any. */
static __thread struct usmc_sock *call_held;

/*
 * Sockets whose close a sleeping call took over, on descriptors of their
 * own: a forked child closes its copies, which would keep the TCP
 * connection open after the call ended it.  More at once than this are
 * not tracked: their child holds them until it exits or execs.
 */
#define CLOSES_HELD_MAX 16
static _Atomic(struct usmc_sock *) closes_held[CLOSES_HELD_MAX];

void usmc_closes_held_note(struct usmc_sock *s, bool on)
{
	for (int i = 0; i < CLOSES_HELD_MAX; i++) {
		struct usmc_sock *want = on ? NULL : s;

		if (atomic_compare_exchange_strong(&closes_held[i], &want, on ? s : NULL))
			return;
	}
}

/*
 * The child is one thread, inside no call: no socket it names is held,
 * and the descriptors of closes taken over are its parent's calls' only.
 */
static void calls_fork_child(void)
{
	struct usmc_sock *s;

	call_held = NULL;
	for (int fd = 0; (s = usmc_fdtab_next(&fd)); fd++)
		atomic_store(&s->calls, 0);
	for (int i = 0; i < CLOSES_HELD_MAX; i++) {
		s = atomic_exchange(&closes_held[i], NULL);
		if (s)
			usmc_sys.close(s->fd);
	}
}

static void calls_watch_fork(void)
{
	usmc_fork_watch(NULL, NULL, calls_fork_child);
}

void usmc_sock_hold(struct usmc_sock *s)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	pthread_once(&once, calls_watch_fork);
	atomic_fetch_add(&s->calls, 1);
}

void usmc_call_hold(struct usmc_sock *s)
{
	if (call_held)
		return;
	call_held = s;
	usmc_sock_hold(s);
}

void (*usmc_close_held_finish)(struct usmc_sock *s);

void usmc_sock_release(struct usmc_sock *s)
{
	if (atomic_fetch_sub(&s->calls, 1) == (USMC_CALLS_CLOSED | 1))
		usmc_close_held_finish(s);
}

void usmc_call_release(struct usmc_sock *s)
{
	if (call_held != s)
		return;
	call_held = NULL;
	usmc_sock_release(s);
}
