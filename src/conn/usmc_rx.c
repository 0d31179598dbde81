// SPDX-License-Identifier: MIT
/*
 * Receive path (net/smc's smc_rx): copying out of the peer's ring, and
 * reading what the peer publishes in its CDC area.
 */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>

#include "usmc.h"
#include "usmc_capture.h"
#include "usmc_close.h"
#include "usmc_conn.h"
#include "usmc_rx.h"
#include "usmc_seg.h"
#include "usmc_sock.h"
#include "usmc_stats.h"
#include "usmc_sys.h"
#include "usmc_wait.h"
#include "usmc_wake.h"

/*
 * The peer's urgent mark, read after its producer cursor: it publishes
 * the mark first, so a cursor that covers an urgent byte comes with its
 * mark (net/smc's smc_cdc_handle_urg_data_arrival).
 */
static void rx_urg_refresh(struct usmc_conn *conn)
{
	struct usmc_conn_shared *sh = conn->sh;
	struct cdc_urg *u = &sh->rx_urg;
	uint64_t urg = atomic_load_explicit(&conn->rx.cdc->urg, memory_order_acquire);
	uint32_t room, off;

	/* At every refresh: most connections never see a mark. */
	if (urg == u->seen && u->state != CDC_URG_NOTYET)
		return;
	if (!cdc_urg_update(u, urg, sh->rx_cons, sh->rx_prod_seen))
		return;
	off = cdc_lap_off(&sh->rx_laps, u->mark, &room);
	u->byte = room ? conn->rx.data[off] : 0;
}

int usmc_conn_refresh(struct usmc_conn *conn)
{
	uint64_t pos;
	uint32_t flags;

	if (conn->sh->aborted)
		return -1;
	if (!conn->rx_mapped)
		return 0;
	/*
	 * What the peer produced before its reset stays readable: the cursors
	 * are read once more after the abort flag, and never again, as TCP
	 * delivers nothing after a reset.
	 */
	if (atomic_load_explicit(&conn->sh->peer_flags, memory_order_relaxed) & CDC_PEER_CONN_ABORT)
		return 0;
	flags = conn_peer_flags_new(conn);
	if (flags) {
		atomic_fetch_or(&conn->sh->peer_flags, flags);
		if (flags & CDC_PEER_CONN_ABORT)
			usmc_conn_set_reset(conn, ECONNRESET);
	}
	/* The peer's first lap, once: published before it handed the ring over. */
	if (!conn->sh->rx_laps.shift &&
	    cdc_laps_first(&conn->sh->rx_laps, conn->rx.cdc, (uint8_t)__builtin_ctz(conn->rx.size)))
		return -1;
	/* The peer reuses its ring only after we closed too: it stays readable. */
	if (cdc_prod_advance(&conn->sh->rx_laps, conn->sh->rx_prod_seen, conn->sh->rx_cons,
			     atomic_load_explicit(&conn->rx.cdc->prod, memory_order_acquire),
			     conn->rx.cdc, (uint8_t)__builtin_ctz(conn->rx.size), &pos))
		return -1;
	conn->sh->rx_prod_seen = pos;
	rx_urg_refresh(conn);
	/* Our own laps: the consumer is in this one or the one before. */
	if (cdc_cons_advance(&conn->sh->tx_laps, conn->sh->tx_cons_seen,
			     atomic_load_explicit(&conn->rx.cdc->cons, memory_order_acquire),
			     conn->sh->tx_prod, &pos))
		return -1;
	atomic_store_explicit(&conn->sh->tx_cons_seen, pos, memory_order_relaxed);
	return 0;
}

/*
 * Takes the receive lock and the peer's latest cursors and mark.  A peer
 * that spoiled them aborts the connection: false then.
 */
static bool rx_lock_fresh(struct usmc_sock *s)
{
	conn_lock(&s->conn->sh->rx_lock, LOCK_CONN_RX);
	if (usmc_conn_refresh(s->conn) == 0)
		return true;
	usmc_conn_abort(s);
	return false;
}

/* Lets the receive lock go; an abort under it is for the waits to see. */
static void rx_unlock(struct usmc_sock *s, bool fresh)
{
	usmc_mutex_unlock(&s->conn->sh->rx_lock, LOCK_CONN_RX);
	if (!fresh)
		usmc_wake_look_again(s);
}

int usmc_conn_amounts(struct usmc_sock *s, struct conn_view *v)
{
	struct usmc_conn *conn = s->conn;
	bool fresh = rx_lock_fresh(s);

	if (fresh) {
		v->rx_prod = conn->sh->rx_prod_seen;
		v->tx_cons = conn->sh->tx_cons_seen;
		v->avail = v->rx_prod - conn->sh->rx_cons;
		v->space = cdc_lap_capacity(&conn->sh->tx_laps, v->tx_cons) -
			   (conn->sh->tx_prod - v->tx_cons);
		/*
		 * The peer's flags with any this refresh latched: it read them
		 * before the cursors, so their data is in the amounts.
		 */
		v->flags = atomic_load(&conn->sh->peer_flags);
		const struct cdc_urg *u = &conn->sh->rx_urg;
		bool oob = u->state != CDC_URG_NONE && !u->inline_;

		v->urg_valid = u->state == CDC_URG_VALID;
		/* A read that begins at an out-of-band urgent byte passes it: TCP's tcp_poll. */
		v->urg_hidden = v->avail && oob && u->mark == conn->sh->rx_cons;
		v->inq = oob && u->mark < v->rx_prod ? u->mark - conn->sh->rx_cons : v->avail;
	}
	rx_unlock(s, fresh);
	return fresh ? 0 : -1;
}

int usmc_rx_inq(struct usmc_sock *s, uint64_t *inq)
{
	struct conn_view v;

	if (usmc_conn_amounts(s, &v) < 0)
		return -1;
	*inq = v.inq;
	return 0;
}

int usmc_rx_avail(struct usmc_sock *s, uint64_t *avail)
{
	struct conn_view v;

	if (usmc_conn_amounts(s, &v) < 0)
		return -1;
	*avail = v.avail;
	return 0;
}

/* Publishes our consumer cursor and rings the peer if it waits for room. */
static void rx_consumed(struct usmc_sock *s, size_t n)
{
	struct usmc_conn *conn = s->conn;
	uint64_t wire;
	uint32_t want;

	conn->sh->rx_cons += n;
	wire = cdc_cursor_from_pos(&conn->sh->rx_laps, conn->sh->rx_cons);
	atomic_store_explicit(&conn->tx.cdc->cons, wire, memory_order_release);
	atomic_fetch_add_explicit(&conn->diag->bytes_received, n, memory_order_relaxed);
	atomic_store_explicit(&conn->diag->rx_cursor, wire, memory_order_relaxed);
	usmc_stats_add(USMC_STAT_BYTES_RECEIVED, n);
	atomic_thread_fence(memory_order_seq_cst);
	want = atomic_load_explicit(&conn->rx.cdc->want_space, memory_order_relaxed);
	if (want != conn->sh->rung_space) {
		conn->sh->rung_space = want;
		usmc_conn_ring(s);
	}
}

static size_t iov_total(const struct iovec *iov, int iovcnt)
{
	size_t total = 0;

	for (int i = 0; i < iovcnt; i++)
		total += iov[i].iov_len;
	return total;
}

/* What a read returns once the ring is empty: EOF, an error, or wait (1). */
static int rx_empty_verdict(struct usmc_sock *s)
{
	struct usmc_conn *conn = s->conn;
	uint32_t pf = atomic_load(&conn->sh->peer_flags);

	/* As TCP after a reset: the error once, then end of file. */
	if (atomic_load(&conn->sh->reset)) {
		int err = atomic_exchange(&conn->sh->err, 0);

		if (!err)
			return 0;
		errno = err;
		return -1;
	}
	if (pf & (CDC_PEER_DONE_WRITING | CDC_PEER_CONN_CLOSED) || sock_shut(s, CONN_SHUT_RD))
		return 0;
	if (atomic_load(&conn->sh->tcp_state) != CDC_TCP_OPEN)
		return 0;
	return 1;
}

/* Sleeps until the peer produces, spinning first. 0, or -1 with errno. */
static int rx_wait(struct usmc_sock *s, int64_t *deadline)
{
	int left = usmc_wait_left(s->rcvtimeo_ms, deadline);

	if (left == 0)
		return -1;
	if (usmc_spin_until_ready(s, POLLIN))
		return 0;
	usmc_call_hold(s);
	return usmc_conn_sleep(s, POLLIN, left);
}

/*
 * Copies up to n bytes out of the peer's ring from position pos on, lap
 * by lap, without taking them: how many (all, as what was published lies
 * in laps we know).
 */
static size_t rx_peek(const struct usmc_conn *conn, uint64_t pos, const struct iovec *iov,
		      int iovcnt, size_t skip, size_t n)
{
	size_t done = 0;

	while (done < n) {
		uint32_t room, off = cdc_lap_off(&conn->sh->rx_laps, pos + done, &room);
		size_t chunk = n - done < room ? n - done : room;

		if (!chunk)
			break;
		ring_copy_iov(&conn->rx, off, iov, iovcnt, skip + done, chunk, false);
		done += chunk;
	}
	return done;
}

/*
 * Copies what the ring holds, up to want bytes, under the receive lock;
 * MSG_PEEK leaves it there, MSG_TRUNC discards it without a copy, as TCP.
 * skip: what the read took already.
 */
static size_t rx_take(struct usmc_sock *s, const struct iovec *iov, int iovcnt, size_t skip,
		      size_t want, int flags, bool *at_mark)
{
	struct usmc_conn *conn = s->conn;
	bool copy = !(flags & MSG_TRUNC);
	uint64_t avail = 0;
	size_t n = 0;
	bool broken, end_came = false, urg_passed = false;

	broken = !rx_lock_fresh(s);
	if (!broken) {
		uint64_t from = conn->sh->rx_cons, may;
		bool pass = false;

		avail = conn->sh->rx_prod_seen - from;
		/* TCP's urgent mark (cdc_urg_limit); an out-of-band urgent byte is passed. */
		may = conn->sh->rx_urg.state == CDC_URG_NONE
			      ? avail
			      : cdc_urg_limit(&conn->sh->rx_urg, &from, avail, skip, at_mark, &pass);
		if (pass && !(flags & MSG_PEEK))
			rx_consumed(s, 1);
		n = may < want ? (size_t)may : want;
		if (flags & MSG_PEEK) {
			if (copy)
				n = rx_peek(conn, from, iov, iovcnt, skip, n);
		} else {
			/* Free room as we go, so that the writer refills while we copy. */
			size_t done = 0;

			while (done < n) {
				uint32_t off;
				size_t chunk = cdc_lap_piece(&conn->sh->rx_laps, conn->sh->rx_cons,
							     n - done, &off);

				if (!chunk)
					break; /* not reached: what was published lies in known laps */
				if (copy)
					ring_copy_iov(&conn->rx, off, iov, iovcnt, skip + done, chunk, false);
				if (usmc_capture_on && copy)
					usmc_capture(s->fd, false, conn->sh->rx_cons, iov, iovcnt,
						     skip + done, chunk);
				rx_consumed(s, chunk);
				done += chunk;
			}
			n = done;
			/* Read past the mark: the urgent byte, unless taken, is gone, as TCP's. */
			if (conn->sh->rx_urg.state != CDC_URG_NONE &&
			    conn->sh->rx_cons > conn->sh->rx_urg.mark) {
				conn->sh->rx_urg.state = CDC_URG_NONE;
				urg_passed = true;
			}
		}
	}
	/* The peer's end, unseen while more than TCP could hold was unread, may show now. */
	if (!broken && !(flags & MSG_PEEK) && n && !usmc_conn_end_fits(s, avail) &&
	    usmc_conn_end_fits(s, avail - n))
		end_came = (atomic_load(&conn->sh->peer_flags) &
			     (CDC_PEER_DONE_WRITING | CDC_PEER_CONN_CLOSED)) ||
			   atomic_load(&conn->sh->tcp_state) != CDC_TCP_OPEN;
	usmc_mutex_unlock(&conn->sh->rx_lock, LOCK_CONN_RX);
	if (urg_passed)
		usmc_conn_urgent_taken(s);
	if (broken || end_came)
		usmc_wake_look_again(s);
	return n;
}

ssize_t usmc_rx_recv_urgent(struct usmc_sock *s, const struct iovec *iov, int iovcnt, int flags,
			    int *msg_flags)
{
	struct usmc_conn *conn = s->conn;
	size_t total = iov_total(iov, iovcnt);
	int state = CDC_URG_NONE;
	uint8_t byte = 0;
	bool inline_, fresh = rx_lock_fresh(s);

	if (fresh) {
		state = conn->sh->rx_urg.state;
		byte = conn->sh->rx_urg.byte;
		if (state == CDC_URG_VALID && !conn->sh->rx_urg.inline_ && !(flags & MSG_PEEK))
			conn->sh->rx_urg.state = CDC_URG_READ;
	}
	inline_ = conn->sh->rx_urg.inline_;
	rx_unlock(s, fresh);
	/* tcp_recv_urg: nothing to take, or taken already. */
	if (inline_ || state == CDC_URG_NONE || state == CDC_URG_READ) {
		errno = EINVAL;
		return -1;
	}
	if (state == CDC_URG_NOTYET) {
		if (rx_empty_verdict(s) <= 0)
			return 0;
		errno = EAGAIN;
		return -1;
	}
	if (!(flags & MSG_PEEK))
		usmc_conn_urgent_taken(s);
	*msg_flags |= MSG_OOB;
	if (!total) {
		*msg_flags |= MSG_TRUNC;
		return 0;
	}
	for (int i = 0; i < iovcnt && !(flags & MSG_TRUNC); i++) {
		if (iov[i].iov_len) {
			*(uint8_t *)iov[i].iov_base = byte;
			break;
		}
	}
	return 1;
}

int usmc_rx_at_mark(struct usmc_sock *s)
{
	struct usmc_conn *conn = s->conn;
	bool fresh = rx_lock_fresh(s);
	int at = conn->sh->rx_urg.state != CDC_URG_NONE && conn->sh->rx_urg.mark == conn->sh->rx_cons;

	rx_unlock(s, fresh);
	return at;
}

void usmc_rx_set_oobinline(struct usmc_sock *s, bool on)
{
	struct usmc_conn *conn = s->conn;

	conn_lock(&conn->sh->rx_lock, LOCK_CONN_RX);
	conn->sh->rx_urg.inline_ = on;
	usmc_mutex_unlock(&conn->sh->rx_lock, LOCK_CONN_RX);
}

static ssize_t rx_recvmsg(struct usmc_sock *s, const struct iovec *iov, int iovcnt, int flags,
			  int64_t *deadline);

ssize_t usmc_rx_recvmsg(struct usmc_sock *s, const struct iovec *iov, int iovcnt, int flags,
			int64_t *deadline)
{
	ssize_t n = rx_recvmsg(s, iov, iovcnt, flags, deadline);

	if (n > 0 && !(flags & MSG_PEEK))
		usmc_conn_drain_seen(s);
	return n;
}

static ssize_t rx_recvmsg(struct usmc_sock *s, const struct iovec *iov, int iovcnt, int flags,
			  int64_t *deadline)
{
	size_t total = iov_total(iov, iovcnt), copied = 0;
	bool peek = flags & MSG_PEEK;
	bool waitall = (flags & MSG_WAITALL) && !peek;
	/* SO_RCVLOWAT: a blocking read returns once this much has come. */
	size_t target = s->rcvlowat > 1 && (size_t)s->rcvlowat < total ? (size_t)s->rcvlowat : 1;

	if (total == 0)
		return 0;
	for (;;) {
		uint64_t avail;
		bool at_mark = false;
		size_t n = rx_take(s, iov, iovcnt, copied, total - copied, flags, &at_mark);
		int verdict;

		if (peek && n)
			return (ssize_t)n;
		copied += n;
		if (at_mark)
			return (ssize_t)copied;
		if (copied == total || (copied >= target && !waitall))
			return (ssize_t)copied;
		if (n)
			continue;
		verdict = rx_empty_verdict(s);
		if (verdict <= 0)
			return copied ? (ssize_t)copied : verdict;
		if (usmc_sock_nonblocking(s, flags)) {
			/* Arm the doorbell so that poll on the descriptor stays truthful. */
			if (usmc_conn_drain(s) != CDC_TCP_OPEN)
				continue;
			usmc_conn_want(s, POLLIN);
			if (usmc_rx_avail(s, &avail) == 0 && avail)
				continue;
			if (copied)
				return (ssize_t)copied;
			errno = EAGAIN;
			return -1;
		}
		if (rx_wait(s, deadline) < 0)
			return copied ? (ssize_t)copied : -1;
	}
}
