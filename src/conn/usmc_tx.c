// SPDX-License-Identifier: MIT
/*
 * Send path (net/smc's smc_tx): copying into our ring, publishing the
 * producer cursor, ringing the peer when it waits.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
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
#include "usmc_tx.h"
#include "usmc_wait.h"
#include "usmc_wake.h"

int usmc_tx_space(struct usmc_sock *s, uint64_t *space)
{
	struct conn_view v;

	if (usmc_conn_amounts(s, &v) < 0)
		return -1;
	*space = v.space;
	return 0;
}

/* The peer has consumed everything we produced (its cursor validated). */
static bool tx_peer_read_all(struct usmc_sock *s)
{
	struct conn_view v;

	return usmc_conn_amounts(s, &v) == 0 && v.tx_cons == s->conn->sh->tx_prod;
}

/*
 * Our ring grows as TCP's autotuning grows a bulk flow's send buffer,
 * which on loopback soon has its largest size: when its reader lags, the
 * lap we write goes on into all of the slot, if its pages can be had.
 * Only while the reader is in our lap does that give room at once (no
 * byte of the lap lies past its old end); a writer a lap ahead of its
 * reader remembers that it found no room, and the lap grows at its end.
 * So the end of a lap is where a lag of any size counts: past it, the
 * writer would be a lap ahead.  A reader that keeps up, a request and its
 * response at a time, leaves the ring as it is.  (A program that relies
 * on its buffers' room to take a stream's end, stunnel's relay loop for
 * one, finds what it had on TCP.)  All under tx_lock.
 */

/* The reader is in our lap, half a lap or more behind us (by its cursor as last read). */
static bool tx_reader_lags(const struct usmc_conn *conn)
{
	const struct cdc_laps *l = &conn->sh->tx_laps;
	uint64_t cons = atomic_load_explicit(&conn->sh->tx_cons_seen, memory_order_relaxed);

	return cons >= l->base && conn->sh->tx_prod - cons >= cdc_lap_size(l) / 2;
}

/* Our lap is shorter than the slot, and its pages have not been refused. */
static bool tx_may_grow(const struct usmc_conn *conn)
{
	return conn->sh->tx_laps.shift < __builtin_ctz(conn->tx.size) && !conn->sh->tx_grow_refused;
}

/* Charges the pages of all of the slot for a longer lap: whether they could be had. */
static bool tx_grow_pages(struct usmc_conn *conn)
{
	if (!lgr_ring_grow(&conn->tx, conn->tx.size)) {
		conn->sh->tx_grow_refused = true;
		return false;
	}
	usmc_stats_add(USMC_STAT_RINGS_GROWN, 1);
	return true;
}

/* Lengthens our lap into all of the slot, publishing its shift first. */
static bool tx_lengthen(struct usmc_conn *conn)
{
	struct cdc_laps *l = &conn->sh->tx_laps;
	uint8_t most = (uint8_t)__builtin_ctz(conn->tx.size);

	if (!tx_grow_pages(conn))
		return false;
	atomic_store_explicit(&conn->tx.cdc->lap_shift[l->wrap & 1], most, memory_order_release);
	/* Under rx_lock too: the peer's consumer cursor is read by our laps there. */
	conn_lock(&conn->sh->rx_lock, LOCK_CONN_RX);
	cdc_lap_lengthen(l, most);
	usmc_mutex_unlock(&conn->sh->rx_lock, LOCK_CONN_RX);
	return true;
}

/*
 * Whether the reader, by its cursor read again now, has not read what we
 * published before the piece that ended our lap.  A reader that keeps up
 * (a request and its response at a time) has read all but that piece; one
 * that lags, by however little, would leave us a lap ahead of it if we
 * went on, with only the lap's room for as long as it then stalls, and
 * the lap cannot grow while it is behind us by a lap.
 */
static bool tx_reader_behind(struct usmc_sock *s, size_t piece)
{
	uint64_t space;

	return usmc_tx_space(s, &space) == 0 &&
	       atomic_load_explicit(&s->conn->sh->tx_cons_seen, memory_order_relaxed) <
		       s->conn->sh->tx_prod - piece;
}

/*
 * Ends our lap after len bytes and begins the next, of 1 << shift bytes:
 * its length and shift published before any cursor of the next.
 */
static void tx_lap_next(struct usmc_conn *conn, uint32_t len, uint8_t shift)
{
	struct cdc_laps *l = &conn->sh->tx_laps;

	atomic_store_explicit(&conn->tx.cdc->lap_len[l->wrap & 1], len, memory_order_relaxed);
	atomic_store_explicit(&conn->tx.cdc->lap_shift[(uint16_t)(l->wrap + 1) & 1], shift,
			      memory_order_release);
	conn_lock(&conn->sh->rx_lock, LOCK_CONN_RX);
	cdc_lap_next(l, len, shift);
	usmc_mutex_unlock(&conn->sh->rx_lock, LOCK_CONN_RX);
}

/* At the end of our lap: it goes on if the reader lagged, else the next begins, as long. */
static void tx_lap_end(struct usmc_sock *s, size_t piece)
{
	struct usmc_conn *conn = s->conn;
	struct cdc_laps *l = &conn->sh->tx_laps;
	bool found_full = conn->sh->tx_full;

	conn->sh->tx_full = false;
	if (tx_may_grow(conn) && (found_full || tx_reader_lags(conn) || tx_reader_behind(s, piece)) &&
	    tx_lengthen(conn))
		return;
	tx_lap_next(conn, cdc_lap_size(l), l->shift);
}

/*
 * Where a reader that keeps up has read all we wrote, our next write
 * begins a lap at the ring's start rather than going on into lines and
 * pages of the lap that nothing has touched lately: a request and its
 * response at a time keep to the first block of the ring (usmc_cdc.h).
 * The reader's cursor, a line it dirties at every read, is read again
 * only when a write would go on into the next block.
 */
#define TX_REWIND_BLOCK 4096u

static void tx_rewind(struct usmc_sock *s, size_t want)
{
	struct usmc_conn *conn = s->conn;
	uint64_t off = conn->sh->tx_prod - conn->sh->tx_laps.base;
	uint8_t shift = conn->sh->tx_laps.shift;

	if (!off || !want || (off - 1) / TX_REWIND_BLOCK == (off + want - 1) / TX_REWIND_BLOCK ||
	    !tx_peer_read_all(s))
		return;
	/* A write that found the ring full in this lap gets a longer one, as at a lap's end. */
	if (conn->sh->tx_full && tx_may_grow(conn) && tx_grow_pages(conn))
		shift = (uint8_t)__builtin_ctz(conn->tx.size);
	conn->sh->tx_full = false;
	tx_lap_next(conn, (uint32_t)off, shift);
	usmc_stats_add(USMC_STAT_RINGS_REWOUND, 1);
}

/* Publishes the producer cursor and rings the peer if it waits for data. */
static void tx_produced(struct usmc_sock *s, size_t n)
{
	struct usmc_conn *conn = s->conn;
	uint64_t wire;
	uint32_t want;

	conn->sh->tx_prod += n;
	if (conn->sh->tx_prod == conn->sh->tx_laps.base + cdc_lap_size(&conn->sh->tx_laps))
		tx_lap_end(s, n);
	wire = cdc_cursor_from_pos(&conn->sh->tx_laps, conn->sh->tx_prod);
	atomic_store_explicit(&conn->tx.cdc->prod, wire, memory_order_release);
	atomic_fetch_add_explicit(&conn->diag->bytes_sent, n, memory_order_relaxed);
	atomic_store_explicit(&conn->diag->tx_cursor, wire, memory_order_relaxed);
	usmc_stats_add(USMC_STAT_BYTES_SENT, n);
	if (!conn->rx_mapped)
		return; /* the Accept's doorbell will wake the server */
	atomic_thread_fence(memory_order_seq_cst);
	want = atomic_load_explicit(&conn->rx.cdc->want_data, memory_order_relaxed);
	/*
	 * The first data rings whether or not the peer waits: a program may
	 * poll() a new connection's descriptor before any read of usmc's has
	 * armed it.  Unless the peer read it all already (what a client wrote
	 * before it learnt of the Accept, which the server read at once):
	 * then nobody is left to wake for it, and a read of the peer's that
	 * finds nothing more arms it as any later one does.  Nor while the
	 * client waits for our Accept in a call that reads the ring once it
	 * has it (CDC_PEER_READS_AFTER_ACCEPT, usmc_settle.c): a blocking
	 * read, usmc_poll for POLLIN.  The fence above orders our cursor
	 * before that look, as the client's clearing of the flag comes before
	 * its look at the ring.
	 */
	if (!conn->sh->rung_first && conn->sh->tx_prod &&
	    ((atomic_load_explicit(&conn->rx.cdc->flags, memory_order_relaxed) &
	      CDC_PEER_READS_AFTER_ACCEPT) ||
	     tx_peer_read_all(s)))
		conn->sh->rung_first = true;
	if (want != conn->sh->rung_data || (!conn->sh->rung_first && conn->sh->tx_prod)) {
		conn->sh->rung_data = want;
		conn->sh->rung_first = true;
		usmc_conn_ring(s);
	}
}

/* EPIPE and SIGPIPE, as the kernel gives them after shutdown(SHUT_WR). */
static ssize_t tx_epipe(int flags)
{
	if (!(flags & MSG_NOSIGNAL))
		raise(SIGPIPE);
	errno = EPIPE;
	return -1;
}

/*
 * Once the peer is gone, or its process exits and the kernel closes its
 * socket next, the kernel socket gives TCP's own answer.
 */
static bool tx_peer_gone(struct usmc_conn *conn)
{
	return conn->sh->aborted || atomic_load(&conn->sh->reset) ||
	       (atomic_load(&conn->sh->peer_flags) &
		(CDC_PEER_CONN_CLOSED | CDC_PEER_CONN_ABORT | CDC_PEER_EXITING)) ||
	       atomic_load(&conn->sh->tcp_state) != CDC_TCP_OPEN;
}

int usmc_tx_wait(struct usmc_sock *s, int64_t *deadline)
{
	int left = usmc_wait_left(s->sndtimeo_ms, deadline);

	if (left == 0)
		return -1;
	if (usmc_spin_until_ready(s, POLLOUT))
		return 0;
	usmc_call_hold(s);
	return usmc_conn_sleep(s, POLLOUT, left);
}

/* Sends the part of the iovec after skip through the kernel socket. */
static ssize_t tx_kernel_rest(int fd, const struct iovec *iov, int iovcnt, size_t skip, int flags)
{
	struct iovec rest[64];
	struct msghdr mh = { .msg_iov = rest };
	int n = 0;

	for (int i = 0; i < iovcnt && n < 64; i++) {
		if (skip >= iov[i].iov_len) {
			skip -= iov[i].iov_len;
			continue;
		}
		rest[n].iov_base = (uint8_t *)iov[i].iov_base + skip;
		rest[n++].iov_len = iov[i].iov_len - skip;
		skip = 0;
	}
	mh.msg_iovlen = (size_t)n;
	return usmc_sys.sendmsg(fd, &mh, flags);
}

/*
 * Room in our ring by the peer's consumer cursor as last read: never more
 * than there is.  While it suffices, the peer's flags stand and the ring
 * need not grow, a write leaves the peer's cursor line alone, which the
 * reader dirties at every read: reading it each time cost a cache miss
 * per write.
 */
static bool tx_known_space_suffices(struct usmc_conn *conn, size_t want)
{
	uint64_t cons = atomic_load_explicit(&conn->sh->tx_cons_seen, memory_order_relaxed);

	return cdc_lap_capacity(&conn->sh->tx_laps, cons) - (conn->sh->tx_prod - cons) >= want &&
	       !conn_peer_flags_new(conn) && !(tx_may_grow(conn) && tx_reader_lags(conn));
}

/*
 * Copies what fits into our ring: bytes taken, or -1 if the peer is gone.
 * With MSG_OOB the last byte of the write is urgent, as TCP's: its mark
 * goes out before the cursor that covers it, and TCP's urgent byte after
 * (net/smc's urg_data_present).  A write that finds no room for all of
 * it marks nothing until its last byte goes.
 */
static ssize_t tx_fill(struct usmc_sock *s, const struct iovec *iov, int iovcnt, size_t skip,
		       size_t want, int flags)
{
	struct usmc_conn *conn = s->conn;
	uint64_t space;
	size_t n, done = 0;

	if (conn->rx_mapped)
		tx_rewind(s, want);
	if (conn->rx_mapped && tx_known_space_suffices(conn, want))
		space = want;
	else if (usmc_tx_space(s, &space) < 0)
		return -1;
	/* The reader lags, in our lap (its cursor read again just now): room at once. */
	if (conn->rx_mapped && tx_may_grow(conn) && tx_reader_lags(conn) && tx_lengthen(conn) &&
	    usmc_tx_space(s, &space) < 0)
		return -1;
	if (tx_peer_gone(conn))
		return -1;
	n = space < want ? (size_t)space : want;
	if (n < want)
		conn->sh->tx_full = true;
	/* Publish as we go, so that the reader copies while we still write. */
	while (done < n) {
		uint32_t off;
		size_t chunk = cdc_lap_piece(&conn->sh->tx_laps, conn->sh->tx_prod, n - done, &off);

		if (!chunk)
			break; /* not reached: the next lap begins as this one ends */
		ring_copy_iov(&conn->tx, off, iov, iovcnt, skip + done, chunk, true);
		if (usmc_capture_on)
			usmc_capture(s->fd, true, conn->sh->tx_prod, iov, iovcnt, skip + done, chunk);
		done += chunk;
		if ((flags & MSG_OOB) && done == want)
			atomic_store_explicit(&conn->tx.cdc->urg, conn->sh->tx_prod + chunk,
					      memory_order_relaxed);
		tx_produced(s, chunk);
	}
	if ((flags & MSG_OOB) && done && done == want)
		usmc_conn_ring_urgent(s);
	return (ssize_t)done;
}

/*
 * Takes the send lock.  A holder of the connection that died inside a
 * write (kill -9 of a forked child) may have counted bytes it had copied
 * into the ring without publishing them: they are published now, and the
 * peer rung, as its write would have.  Else the peer waits for them, and
 * a writer at the end of a lap waits for the peer to leave it: neither
 * moves again.  If its count ended the lap, the next lap is begun first,
 * as it would have been: a cursor at a lap's end is not one the peer
 * takes (killed_mid_write).  (The change of lap itself is a few stores
 * under rx_lock: a death among them is not mended here.)
 */
void usmc_tx_lock(struct usmc_sock *s)
{
	struct usmc_conn *conn = s->conn;

	if (!conn_lock(&conn->sh->tx_lock, LOCK_CONN_TX))
		return;
	if (conn->sh->tx_prod == conn->sh->tx_laps.base + cdc_lap_size(&conn->sh->tx_laps))
		tx_lap_end(s, 0);
	atomic_store_explicit(&conn->tx.cdc->prod,
			      cdc_cursor_from_pos(&conn->sh->tx_laps, conn->sh->tx_prod),
			      memory_order_release);
	atomic_thread_fence(memory_order_seq_cst);
	if (conn->rx_mapped)
		usmc_conn_ring(s);
}

void usmc_tx_notify(struct usmc_sock *s)
{
	struct usmc_conn *conn = s->conn;

	usmc_tx_lock(s);
	/* Data, or a shutdown, that nobody was rung for. */
	if (conn->sh->tx_prod || atomic_load(&conn->sh->flags_out))
		tx_produced(s, 0);
	usmc_mutex_unlock(&conn->sh->tx_lock, LOCK_CONN_TX);
}

ssize_t usmc_tx_refused(struct usmc_sock *s, int flags)
{
	int err;

	if (sock_shut(s, CONN_SHUT_WR))
		return tx_epipe(flags);
	if (!atomic_load(&s->conn->sh->reset))
		return 0;
	/* As TCP after a reset: the error once, then EPIPE. */
	err = atomic_exchange(&s->conn->sh->err, 0);
	if (!err)
		return tx_epipe(flags);
	errno = err;
	return -1;
}

enum tx_pass usmc_tx_pass(struct usmc_sock *s, const struct iovec *iov, int iovcnt, size_t total,
			  size_t *sent, int flags, ssize_t *result)
{
	struct usmc_conn *conn = s->conn;
	ssize_t n;

	if (s->state != SOCK_SMC && s->state != SOCK_PROPOSED) {
		/* Declined: what we wrote was replayed, the rest goes the same way. */
		n = tx_kernel_rest(s->fd, iov, iovcnt, *sent, flags);
		*result = n < 0 ? (*sent ? (ssize_t)*sent : -1) : (ssize_t)(*sent + (size_t)n);
		return TX_DONE;
	}
	usmc_tx_lock(s);
	if (atomic_load(&conn->sh->shut) & CONN_SHUT_WR) {
		/* Another holder shut the socket down for writing: nothing goes behind its end. */
		usmc_mutex_unlock(&conn->sh->tx_lock, LOCK_CONN_TX);
		*result = *sent ? (ssize_t)*sent : usmc_tx_refused(s, flags);
		return TX_DONE;
	}
	n = tx_fill(s, iov, iovcnt, *sent, total - *sent, flags);
	usmc_mutex_unlock(&conn->sh->tx_lock, LOCK_CONN_TX);
	if (n < 0) {
		if (*sent) {
			*result = (ssize_t)*sent;
			return TX_DONE;
		}
		if (atomic_load(&conn->sh->reset))
			return TX_AGAIN;
		/* The peer is gone: the kernel socket gives TCP's own answer. */
		atomic_store(&conn->sh->tcp_data, true);
		*result = tx_kernel_rest(s->fd, iov, iovcnt, 0, flags);
		/* Its EPIPE reports the error a reset left, as TCP's does. */
		if (*result < 0 && errno == EPIPE)
			atomic_store(&conn->sh->tcp_err, 0);
		return TX_DONE;
	}
	*sent += (size_t)n;
	return n ? TX_WROTE : TX_FULL;
}

int usmc_tx_replay(struct usmc_sock *s)
{
	struct usmc_conn *conn = s->conn;
	uint64_t pos = 0;

	/* The peer declined before reading a byte: all of the ring is unsent. */
	while (pos < conn->sh->tx_prod) {
		uint32_t room, off = cdc_lap_off(&conn->sh->tx_laps, pos, &room);
		size_t len = room;
		ssize_t n;

		if (len > conn->sh->tx_prod - pos)
			len = (size_t)(conn->sh->tx_prod - pos);
		n = usmc_sys.send(s->fd, conn->tx.data + off, len, MSG_NOSIGNAL);
		if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
			struct pollfd p = { .fd = s->fd, .events = POLLOUT };

			usmc_sys.poll(&p, 1, 1000);
			continue;
		}
		if (n < 0)
			return -1;
		pos += (uint64_t)n;
	}
	/* Those bytes went through TCP after all: shared memory's counts drop them. */
	atomic_fetch_sub_explicit(&conn->diag->bytes_sent, pos, memory_order_relaxed);
	usmc_stats_add(USMC_STAT_BYTES_SENT, -pos);
	return 0;
}
