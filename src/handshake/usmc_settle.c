// SPDX-License-Identifier: MIT
/*
 * The client's answer (net/smc's smc_connect_clc and what follows it):
 * waiting for the server's Accept or Decline, inside the program's own
 * calls, and settling the connection by it: shared memory, or TCP with
 * what was written meanwhile replayed into the stream.  A Proposal that
 * nobody can answer any more (its connection went to a holder that never
 * read it, or to a plain program) is withdrawn, or refused by the holder
 * that has its connection (usmc_registry.h), so that no wait outlasts a
 * CLC timeout and both ends always agree.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "usmc.h"
#include "usmc_addr.h"
#include "usmc_channel.h"
#include "usmc_cli_pending.h"
#include "usmc_close.h"
#include "usmc_config.h"
#include "usmc_conn.h"
#include "usmc_connect.h"
#include "usmc_connect_lgr.h"
#include "usmc_listen.h"
#include "usmc_log.h"
#include "usmc_policy.h"
#include "usmc_proc.h"
#include "usmc_queue.h"
#include "usmc_queue_post.h"
#include "usmc_registry.h"
#include "usmc_rendezvous.h"
#include "usmc_rendezvous_taken.h"
#include "usmc_rx.h"
#include "usmc_seg.h"
#include "usmc_settle.h"
#include "usmc_sock.h"
#include "usmc_stats.h"
#include "usmc_sys.h"
#include "usmc_tx.h"
#include "usmc_withdraw.h"
#include "af_usmc.h"

static void cli_finish_accept(struct usmc_sock *s)
{
	struct usmc_conn *conn = s->conn;

	usmc_lock();
	af_cli_find(conn->lgr, conn->token, true);
	/* Answered: the Proposal can no longer be taken back, and the server's end is the server's. */
	if (conn->lgr->oneshot && conn->lgr->taker >= 0) {
		usmc_sys.close(conn->lgr->taker);
		conn->lgr->taker = -1;
	}
	/*
	 * A ring we cannot map: the server must reset it (a Decline after its
	 * Accept resets the connection there).  No Confirm follows a good
	 * Accept: the server reads its channel only when it accepts, and
	 * Confirms piling up there would block the next Proposal.
	 */
	if (!conn->rx_mapped)
		af_send_clc(conn->lgr, CLC_DECLINE, conn->token, conn->hs_reason);
	usmc_unlock();
	/* Set by the program before the Accept, the option reached the kernel already. */
	if (!s->nodelay)
		af_set_nodelay(s->fd);
	/* SO_OOBINLINE set before the Accept is the rings' now (usmc_rx.c). */
	if (s->oobinline)
		usmc_rx_set_oobinline(s, true);
	/* A cork set while we proposed would hold the doorbells back (usmc_setsockopt). */
	if (s->cork)
		usmc_sys.setsockopt(s->fd, IPPROTO_TCP, TCP_CORK, &(int){ 0 }, sizeof(int));
	usmc_sock_set_state(s, SOCK_SMC);
	usmc_stats_add(USMC_STAT_SMC_CONNS, 1);
	if (!conn->rx_mapped) {
		usmc_conn_abort(s);
		return;
	}
	/* What we wrote before the Accept rang nobody: the server may be asleep. */
	usmc_tx_notify(s);
}

static void cli_finish_decline(struct usmc_sock *s)
{
	struct usmc_conn *conn = s->conn;
	uint32_t reason = conn->hs_reason;
	bool by_peer = !conn->hs_local;

	conn_lock(&conn->sh->tx_lock, LOCK_CONN_TX);
	usmc_tx_replay(s);
	if (sock_shut(s, CONN_SHUT_WR))
		usmc_sys.shutdown(s->fd, SHUT_WR);
	usmc_lock();
	af_cli_find(conn->lgr, conn->token, true);
	conn->rx_mapped = false;
	s->conn = NULL;
	usmc_sock_fallback(s, reason, by_peer);
	usmc_mutex_unlock(&conn->sh->tx_lock, LOCK_CONN_TX);
	af_conn_destroy(conn);
	usmc_unlock();
}

/* Reads the channels; the answer to our Proposal, or 0 if none came yet. */
static int hs_answer(struct usmc_conn *conn)
{
	int result;

	usmc_lock();
	/*
	 * A channel of its own holds the answer: the others need not be read
	 * for it.  Else every client link group's answers: a server whose
	 * channel toward us is full waits on us.  Never our listeners'
	 * channels: a Proposal we read there as a listener's maker is ours to
	 * answer, and once the listener is shared, a worker accepts its
	 * connection and would never find it (a client that is also the maker
	 * of the listener it connects to, as prefork servers' masters may be).
	 */
	af_pump_answer(conn);
	/* The holder that has our connection refused it: no other answer can come. */
	if (!conn->hs_result && (reg_slot_refused(conn->hs_slot, conn->hs_slot_tag) ||
				 rdv_taken_refused(conn->hs_taken_slot, conn->hs_taken_tag)))
		conn->hs_result = CLC_DECLINE;
	result = conn->hs_result;
	usmc_unlock();
	return result;
}

/*
 * The server's stream starts with our socket's cookie (CLC_DECL_MARKER):
 * it accepted the connection and declined it, or a holder refused the
 * Proposal we had listed (usmc_registry.h), and wrote it to wake us
 * before anything of its program's.  Read out of the stream before the
 * program reads.  False if it does not come within a CLC timeout, or
 * something else does.
 */
static bool hs_marker_take(struct usmc_sock *s)
{
	int64_t deadline = usmc_now_ms() + usmc_clc_timeout_ms();
	uint64_t cookie = 0, wake = 0;
	socklen_t len = sizeof(cookie);
	size_t got = 0;

	if (usmc_sys.getsockopt(s->fd, SOL_SOCKET, SO_COOKIE, &cookie, &len))
		return false;
	while (got < sizeof(wake)) {
		struct pollfd p = { .fd = s->fd, .events = POLLIN };
		ssize_t n = usmc_sys.recv(s->fd, (char *)&wake + got, sizeof(wake) - got,
					  MSG_DONTWAIT);
		int64_t left = deadline - usmc_now_ms();

		if (n > 0) {
			got += (size_t)n;
			continue;
		}
		if (n == 0 || (errno != EAGAIN && errno != EINTR) || left <= 0)
			return false;
		usmc_sys.poll(&p, 1, (int)left);
	}
	return wake == cookie;
}

/*
 * A holder refused the Proposal we had listed (or, across namespaces, a
 * proxy the connection was redirected to: reason), and that is the
 * answer, whatever else came (an Accept cannot have: only the process
 * that accepted the connection gives one, and one that did is loud),
 * and a marker comes with it.  The Proposal's reader is told to drop it.
 */
static void hs_take_refusal(struct usmc_sock *s, uint32_t reason)
{
	struct usmc_conn *conn = s->conn;

	conn->hs_reset = conn->hs_result == CLC_ACCEPT;
	conn->hs_result = CLC_DECLINE;
	conn->hs_reason = reason;
	conn->hs_local = true;
	conn->hs_marker = true;
	usmc_lock();
	/* A channel of our own is read back: no holder took the Proposal, as none had the connection. */
	if (conn->lgr->oneshot)
		af_queue_take_back(conn->lgr);
	else
		af_send_withdraw(conn->lgr, conn->token, USMC_DECL_LISTENSHARED);
	usmc_unlock();
}

/*
 * The Proposal leaves the registry's list, or the rendezvous directory's,
 * as its handshake settles: true if it was refused there.
 */
static bool hs_unlist(struct usmc_sock *s)
{
	struct usmc_conn *conn = s->conn;
	bool shared = reg_slot_put(&conn->hs_slot, conn->hs_slot_tag);
	bool redirected = rdv_taken_put(&conn->hs_taken_slot, conn->hs_taken_tag);

	if (shared || redirected)
		hs_take_refusal(s, redirected ? USMC_DECL_REDIRECTED : USMC_DECL_LISTENSHARED);
	return shared || redirected;
}

/*
 * No answer to our withdrawal: the server may still take the Proposal
 * and read our ring.  The ring says reset, and so does TCP (a connect to
 * AF_UNSPEC sends the reset and leaves ECONNRESET for our next call); the
 * ring waits for the server's answer as a closed connection's does.
 */
static void cli_finish_reset(struct usmc_sock *s)
{
	struct sockaddr sa = { .sa_family = AF_UNSPEC };
	struct usmc_conn *conn = s->conn;

	conn_publish_flags(conn, CDC_PEER_CONN_ABORT);
	usmc_sys.connect(s->fd, &sa, sizeof(sa));
	usmc_lock();
	conn->hs_result = 0;
	conn->sock = NULL;
	conn->diag = NULL;
	s->conn = NULL;
	usmc_unlock();
	usmc_sock_fallback(s, USMC_DECL_TIMEOUT_CLC, false);
}

/* Ends the handshake with its answer. */
static int hs_settle(struct usmc_sock *s, int result)
{
	struct usmc_conn *conn = s->conn;

	/* Threads of ours may hold the same answer: one settles it, the others wait. */
	if (atomic_exchange(&s->hs_settling, true)) {
		while (atomic_load(&s->state) == SOCK_PROPOSED)
			sched_yield();
		return 0;
	}
	hs_unlist(s);
	usmc_lock();
	lgr_carriers_close(conn->lgr);
	usmc_unlock();
	/* Our call reads the ring next, as it said: later data rings as usual. */
	af_settle_wait_end(s);
	result = conn->hs_result ? conn->hs_result : result;
	/* Without its marker the stream's start is unknown: the connection fails, loudly. */
	if (result == CLC_DECLINE && conn->hs_marker && !conn->hs_reset)
		conn->hs_reset = !hs_marker_take(s);
	if (result == CLC_ACCEPT)
		cli_finish_accept(s);
	else if (conn->hs_reset)
		cli_finish_reset(s);
	else
		cli_finish_decline(s);
	return 0;
}

/*
 * A wait that told the server it reads the ring once settled
 * (CDC_PEER_READS_AFTER_ACCEPT) and ends without the answer takes that
 * back, then looks at the channel once more: a server that saw the flag
 * before it went had sent its Accept already, and its first data then
 * rang nobody.  The answer, if one came; the caller settles by it, so
 * that the ring is looked at (and its data not left to a wait on TCP).
 */
static int settle_give_up(struct usmc_sock *s, bool reads)
{
	if (!reads)
		return 0;
	af_settle_wait_end(s);
	return hs_answer(s->conn);
}

void af_settle_wait_begin(struct usmc_sock *s, bool reads)
{
	atomic_fetch_or(&s->conn->tx.cdc->flags,
			CDC_PEER_WATCHES_CHANNEL | (reads ? CDC_PEER_READS_AFTER_ACCEPT : 0));
}

void af_settle_wait_end(struct usmc_sock *s)
{
	atomic_fetch_and(&s->conn->tx.cdc->flags, ~CDC_PEER_READS_AFTER_ACCEPT);
	atomic_thread_fence(memory_order_seq_cst);
}

void af_settle_connect_begin(struct usmc_sock *s)
{
	atomic_fetch_or(&s->conn->tx.cdc->flags, CDC_PEER_WATCHES_CHANNEL);
}

/*
 * The server looks at the flag after it sent its Accept (a fence between),
 * we at the channel after we took the flag back: a server that saw it set
 * had sent its Accept before that look, which finds it.
 */
void af_settle_connect_end(struct usmc_sock *s)
{
	atomic_fetch_and(&s->conn->tx.cdc->flags, ~CDC_PEER_WATCHES_CHANNEL);
	atomic_thread_fence(memory_order_seq_cst);
	af_settle_if_answered(s);
}

int usmc_proposed_wait_ms(int left)
{
	int slice = usmc_clc_timeout_ms() / 4 + 1;

	if (slice > 200)
		slice = 200;
	return left < 0 || left > slice ? slice : left;
}

/*
 * Settles the handshake, waiting for the answer until deadline (ms, 0:
 * not at all, INT64_MAX: as long as it takes).  The wait of a program's
 * socket call (as_call) ends on a signal as the kernel's would: EINTR,
 * unless SA_RESTART restarts a call without a time limit; usmc's own
 * waits (an exec, a close) go on.  A call that reads the ring once
 * settled (reads) tells the server it need not ring for its first data.
 */
static int settle_until(struct usmc_sock *s, int64_t deadline, bool as_call, bool reads)
{
	struct usmc_conn *conn = s->conn;
	/* Wakes for the checks of af_withdraw_if_unanswered, even with short timeouts. */
	int slice = usmc_proposed_wait_ms(-1);
	/* A call that waits learns of an end of TCP from its poll, which wakes for it. */
	bool look_tcp = deadline == 0;
	/*
	 * And reads the channels once its poll says something came, unless a
	 * read before took the answer in already: right after the Proposal a
	 * read most often finds nothing, and the poll returns at once for an
	 * answer that is there.
	 */
	bool look = deadline == 0 || conn->hs_result || conn->lgr->backlog;
	int result, n;

	/*
	 * A forked child shares the connection but not the channel: only the
	 * process that proposed may settle the handshake.
	 */
	if (conn->lgr->owner_pid != usmc_pid()) {
		errno = EAGAIN;
		return -1;
	}

	/*
	 * A wait watches the channel: the server need not ring after its
	 * Accept (usmc_listen.c).  Said before the look that precedes it.
	 */
	/* A call that does not wait says nothing, and has nothing to take back. */
	reads &= deadline != 0;
	if (deadline)
		af_settle_wait_begin(s, reads);
	for (;;) {
		struct pollfd p[2] = { { .fd = s->fd, .events = POLLIN },
				       { .fd = conn->lgr->chan, .events = POLLIN } };
		int64_t now;

		result = look ? hs_answer(conn) : 0;
		look = true;
		if (result)
			break;
		if (look_tcp && usmc_fd_hung_up(s->fd)) {
			/* An answer comes before anything the server does on TCP: look once more. */
			result = hs_answer(conn);
			if (result)
				break;
			/* No answer will come: let the kernel tell what happened. */
			conn->hs_result = result = CLC_DECLINE;
			conn->hs_reason = USMC_DECL_PEERNOSMC;
			conn->hs_local = true;
			break;
		}
		if (af_withdraw_if_unanswered(s)) {
			usmc_stats_add(USMC_STAT_HS_TIMER_WAKEUPS, 1);
			result = conn->hs_result;
			break;
		}
		if ((now = usmc_now_ms()) >= deadline) {
			/* An Accept that came as we gave up is read now: see settle_give_up. */
			if ((result = settle_give_up(s, reads)))
				break;
			errno = EAGAIN;
			return -1;
		}
		/* The channel is watched too: an answer always wakes this wait. */
		n = usmc_sys.poll(p, 2, deadline - now < slice ? (int)(deadline - now) : slice);
		if (n < 0 && errno == EINTR &&
		    (!as_call || (deadline == INT64_MAX && usmc_signals_restart())))
			continue;
		if (n < 0) {
			int err = errno;

			if ((result = settle_give_up(s, reads)))
				hs_settle(s, result);
			errno = err;
			return -1;
		}
		look_tcp = p[0].revents != 0;
	}
	return hs_settle(s, result);
}

static int64_t settle_deadline(int timeout_ms)
{
	return timeout_ms < 0 ? INT64_MAX : timeout_ms ? usmc_now_ms() + timeout_ms : 0;
}

int af_settle(struct usmc_sock *s, int timeout_ms)
{
	return settle_until(s, settle_deadline(timeout_ms), true, false);
}

int af_settle_read(struct usmc_sock *s, int timeout_ms)
{
	return settle_until(s, settle_deadline(timeout_ms), true, true);
}

int af_settle_fully(struct usmc_sock *s)
{
	return settle_until(s, INT64_MAX, false, false);
}

void af_settle_if_answered(struct usmc_sock *s)
{
	int result;

	if (s->conn->lgr->owner_pid == usmc_pid() && (result = hs_answer(s->conn)))
		hs_settle(s, result);
}

/*
 * Closing before the answer came: what we wrote is in our ring, and if the
 * server were to decline, nobody would be left to replay it into TCP.  So
 * the close waits for the answer, at most a CLC timeout: a server answers
 * when it first uses the connection it accepted (usmc_listen.c), most
 * often at once.  Past that the ring stays for the server (af_orphan), as
 * TCP keeps the data of a connection nobody reads yet: an Accept reads it,
 * and a server that declines after all resets its end, loudly.
 */
void af_settle_before_close(struct usmc_sock *s)
{
	if (s->conn->sh->tx_prod &&
	    settle_until(s, usmc_now_ms() + usmc_clc_timeout_ms(), false, false) == 0)
		return;
	if (s->state == SOCK_PROPOSED && af_settle(s, 0) < 0)
		af_orphan(s);
}

/*
 * Our end of the TCP connection, published in our CDC area before the
 * first byte we write ahead of the answer (a client that wrote nothing
 * leaves nothing to deliver).
 * The server proves a Proposal by the client's socket (sock_diag gives
 * its cookie and user), and once ours is closed it lives on only until
 * the FIN_WAIT2 timeout (tcp_fin_timeout, 60 s by default): a server that
 * accepts later finds no socket, and matches by this instead.  A client
 * killed before the answer never closes through us: what it wrote is
 * matched by the end it published before writing it.
 */
void af_publish_end(struct usmc_sock *s)
{
	struct cdc_tuple *t = &s->conn->tx.cdc->orphan, mine = { 0 };
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (t->set)
		return;
	if (usmc_sys.getsockname(s->fd, (struct sockaddr *)&ss, &len) ||
	    !usmc_addr16((struct sockaddr *)&ss, mine.addr, &mine.port))
		return;
	memcpy(t->addr, mine.addr, sizeof(t->addr));
	t->port = mine.port;
	/* The end before the mark that says it is there. */
	atomic_thread_fence(memory_order_release);
	t->set = 1;
}

/* Closing while the answer is pending: the ring stays for the server. */
void af_orphan(struct usmc_sock *s)
{
	struct usmc_conn *conn = s->conn;

	/* Refused since we last looked: settled after all, what we wrote replayed. */
	if (conn->lgr->owner_pid == usmc_pid() && hs_unlist(s)) {
		hs_settle(s, CLC_DECLINE);
		return;
	}
	usmc_lock();
	conn->sock = NULL;
	conn->diag = NULL;
	conn_publish_flags(conn, CDC_PEER_DONE_WRITING | CDC_PEER_CONN_CLOSED);
	s->conn = NULL;
	usmc_unlock();
}
