// SPDX-License-Identifier: MIT
/*
 * The handshake (net/smc's af_smc.c): connections and the pump that reads
 * what the link groups' channels hold.  The client's side is in
 * usmc_connect.c and usmc_settle.c, the server's in usmc_listen.c,
 * listeners and who holds them in usmc_listener.c, the listener's
 * channels and what they may cost in usmc_chan.c.
 *
 * Client: if the registry shows a usmc listener on the destination port
 * of a local address, find or make the link group to its process, send a
 * Proposal naming our TCP socket by its cookie, then connect().  The
 * connection is usable at once: what we write waits in our ring until the
 * server reads it, or is replayed into the TCP stream if it declines.
 *
 * Server: accept() as usual; if Proposals are waiting for this port, ask
 * sock_diag for the cookie of the peer socket.  A Proposal with that
 * cookie gets an Accept and the connection moves to shared memory; any
 * other peer is a plain TCP client, and never sees a byte of ours.
 *
 * All CLC processing happens inside the calls of the program (there is no
 * thread of ours): pump() reads whatever the channels hold.
 */
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
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
#include "usmc_conn.h"
#include "usmc_holders.h"
#include "usmc_listener.h"
#include "usmc_log.h"
#include "usmc_registry.h"
#include "usmc_rendezvous.h"
#include "usmc_rx.h"
#include "usmc_seg.h"
#include "usmc_seg_peer.h"
#include "usmc_sock.h"
#include "usmc_stats.h"
#include "usmc_sys.h"
#include "af_usmc.h"

static struct srv_proposal *proposals;
/* Entries of proposals, for af_srv_none_pending without the lock. */
static _Atomic unsigned proposals_pending;
/* ---- connections ---- */

struct usmc_conn *af_conn_new(struct usmc_sock *s, struct usmc_lgr *lgr)
{
	struct usmc_conn *conn = calloc(1, sizeof(*conn));

	if (!conn)
		return NULL;
	conn->sock = s;
	conn->diag = s->diag;
	conn->lgr = lgr;
	conn->hs_slot = -1;
	conn->hs_taken_slot = -1;
	return conn;
}

/* The ring exists: its slot's own state takes the connection's. */
void af_conn_shared_init(struct usmc_conn *conn)
{
	struct usmc_conn_shared *sh = seg_own(conn->tx.seg, conn->tx.slot);
	pthread_mutexattr_t attr;

	pthread_mutexattr_init(&attr);
	pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
	pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
	pthread_mutex_init(&sh->tx_lock, &attr);
	pthread_mutex_init(&sh->rx_lock, &attr);
	pthread_mutexattr_destroy(&attr);
	cdc_laps_init(&sh->tx_laps, atomic_load(&conn->tx.cdc->lap_shift[0]));
	conn->sh = sh;
	usmc_holders_init(conn);
}

/* Gives the connection's ring and link group reference back. */
void af_conn_destroy(struct usmc_conn *conn)
{
	lgr_ring_free(conn->lgr, &conn->tx, conn_peer_cdc(conn), conn->peer_gen);
	lgr_put(conn->lgr);
	usmc_conn_free(conn);
}

static int send_decline(struct usmc_lgr *lgr, uint64_t token, uint32_t reason, uint8_t flags)
{
	struct clc_msg msg = { .type = CLC_DECLINE, .version = CLC_VERSION, .token = token };

	msg.decline.reason = reason;
	msg.decline.flags = flags;
	return lgr_send(lgr, &msg, -1);
}

/*
 * A CLC message without a ring: Confirm, or Decline with its reason.  A
 * Confirm only lets the server forget a token early, so it is dropped
 * rather than waited for when the channel is full.
 */
void af_send_clc(struct usmc_lgr *lgr, uint8_t type, uint64_t token, uint32_t reason)
{
	struct clc_msg msg = { .type = CLC_CONFIRM, .version = CLC_VERSION, .token = token };

	if (type == CLC_CONFIRM)
		lgr_send_try(lgr, &msg);
	else
		send_decline(lgr, token, reason, 0);
}

void af_send_decline(struct usmc_lgr *lgr, uint64_t token, uint32_t reason)
{
	send_decline(lgr, token, reason, 0);
}

void af_send_withdraw(struct usmc_lgr *lgr, uint64_t token, uint32_t reason)
{
	send_decline(lgr, token, reason, CLC_DECL_WITHDRAW);
}

bool af_send_decline_marked(struct usmc_lgr *lgr, uint64_t token, uint32_t reason)
{
	return send_decline(lgr, token, reason, CLC_DECL_MARKER) >= 0;
}

/* ---- the pump: everything the channels hold ---- */

/* Proposals listed at once, in all: a peer that never connects costs bounded memory. */
#define PROPOSALS_MAX      65536

/*
 * A Proposal its client counted in the registry's proposals (one sent
 * straight to the listener) is read: counted as seen by this process and
 * as read by the listener's holders.  Those that came through a shared
 * listener's queue are counted there (queued, settled).
 */
static void proposal_read(const struct usmc_lgr *lgr, struct usmc_listener *l)
{
	struct reg_port *reg = reg_port(l->port);

	if (lgr->oneshot && !lgr->direct)
		return;
	atomic_fetch_add_explicit(&l->seen, 1, memory_order_release);
	if (reg && lgr->peer_uid == reg_owner())
		atomic_fetch_add_explicit(&reg->read, 1, memory_order_release);
}

static void on_proposal(struct usmc_lgr *lgr, const struct clc_msg *msg, int fd)
{
	/* One from another namespace was proven for its listener: it names the port it dialled. */
	struct usmc_listener *l =
		af_listener_find(lgr->rdv ? lgr->port : msg->proposal.dst.port);
	struct srv_proposal *p;
	uint32_t reason;

	if (!l) {
		if (fd >= 0)
			usmc_sys.close(fd);
		af_send_decline(lgr, msg->token, USMC_DECL_PEERNOSMC);
		return;
	}
	lgr->proposed = true;
	p = atomic_load_explicit(&proposals_pending, memory_order_relaxed) < PROPOSALS_MAX
		    ? calloc(1, sizeof(*p))
		    : NULL;
	reason = p ? lgr_ring_map_peer(lgr, &msg->proposal.rmb, fd, &p->ring) : USMC_DECL_MEM;
	if (!p) {
		struct usmc_ring scratch;

		/* Still learn the segment, which later messages name without its memfd. */
		lgr_ring_map_peer(lgr, &msg->proposal.rmb, fd, &scratch);
	}
	if (reason) {
		free(p);
		af_send_decline(lgr, msg->token, reason);
		proposal_read(lgr, l);
		return;
	}
	p->lgr = lgr;
	p->token = msg->token;
	p->cookie = msg->proposal.cookie;
	p->port = l->port;
	p->rcvbuf = msg->proposal.rcvbuf;
	p->next = proposals;
	proposals = p;
	lgr->refs++;
	/* Listed before counted as seen: see af_srv_none_pending. */
	atomic_fetch_add_explicit(&proposals_pending, 1, memory_order_relaxed);
	proposal_read(lgr, l);
}

struct srv_proposal *af_srv_take(uint16_t port, struct usmc_lgr *lgr, uint64_t token,
				     uint64_t cookie)
{
	for (struct srv_proposal **pp = &proposals, *p; (p = *pp); pp = &p->next) {
		if (lgr ? (p->lgr == lgr && p->token == token)
			: (p->port == port && p->cookie == cookie)) {
			*pp = p->next;
			atomic_fetch_sub_explicit(&proposals_pending, 1, memory_order_relaxed);
			return p;
		}
	}
	return NULL;
}

/*
 * Without the lock: no Proposal toward the listener's port is unread or
 * unmatched.  A Proposal is listed before it counts as seen, so a count
 * that matches the registry's comes with its entry in view.
 */
bool af_srv_none_pending(struct usmc_listener *l, struct reg_port *reg)
{
	return reg && atomic_load_explicit(&reg->proposals, memory_order_acquire) ==
			      atomic_load_explicit(&l->seen, memory_order_acquire) &&
	       !atomic_load_explicit(&proposals_pending, memory_order_relaxed) && l->ufd_users < 0 &&
	       !(atomic_load_explicit(&reg->flags, memory_order_relaxed) & REG_KNOCK);
}

bool af_srv_none_listed(void)
{
	return !atomic_load_explicit(&proposals_pending, memory_order_relaxed);
}

struct srv_proposal *af_srv_take_orphan(uint16_t port, const struct sockaddr *peer)
{
	uid_t me = geteuid();
	uint8_t addr[16];
	uint16_t peer_port;

	if (!usmc_addr16(peer, addr, &peer_port))
		return NULL;
	for (struct srv_proposal **pp = &proposals, *p; (p = *pp); pp = &p->next) {
		struct cdc_tuple t;

		/* Closed before the answer, or gone (killed) after writing. */
		if (p->port != port || !(af_proposal_closed(p) || p->peer_gone) ||
		    p->lgr->peer_uid != me)
			continue;
		/* Read once: the client's memory is its to change. */
		memcpy(&t, (const void *)&p->ring.cdc->orphan, sizeof(t));
		if (cdc_tuple_is(&t, addr, peer_port)) {
			*pp = p->next;
			atomic_fetch_sub_explicit(&proposals_pending, 1, memory_order_relaxed);
			return p;
		}
	}
	return NULL;
}

void af_srv_drop_orphans(uint16_t port)
{
	struct srv_proposal *p;

	for (struct srv_proposal **pp = &proposals; (p = *pp);) {
		if (p->port != port || !(af_proposal_closed(p) || p->peer_gone)) {
			pp = &p->next;
			continue;
		}
		*pp = p->next;
		atomic_fetch_sub_explicit(&proposals_pending, 1, memory_order_relaxed);
		usmc_stats_add(USMC_STAT_ORPHANS_DROPPED, 1);
		lgr_put(p->lgr);
		free(p);
	}
}

bool af_srv_has(uint16_t port)
{
	for (struct srv_proposal *p = proposals; p; p = p->next)
		if (p->port == port)
			return true;
	return false;
}

/* A client that closed while proposing: settle its ring once the answer comes. */
static void orphan_destroy(struct usmc_conn *conn)
{
	af_cli_find(conn->lgr, conn->token, true);
	af_conn_destroy(conn);
}

static void on_accept(struct usmc_lgr *lgr, const struct clc_msg *msg, int fd)
{
	struct usmc_conn *conn = af_cli_find(lgr, msg->token, false);
	struct usmc_ring scratch;
	uint32_t reason;

	if (!conn || conn->hs_result) {
		/* Still learn the segment, which later messages name without its memfd. */
		lgr_ring_map_peer(lgr, &msg->accept.rmb, fd, &scratch);
		return;
	}
	reason = lgr_ring_map_peer(lgr, &msg->accept.rmb, fd, &conn->rx);
	conn->rx_mapped = reason == 0;
	if (conn->rx_mapped)
		conn->peer_gen = atomic_load(&conn->rx.cdc->gen);
	conn->hs_result = CLC_ACCEPT;
	conn->hs_reason = reason;
	if (!conn->sock) {
		/* Closed while proposing: the server reads what we left, then EOF. */
		if (reason)
			af_send_decline(lgr, conn->token, reason);
		orphan_destroy(conn);
	}
}

/*
 * The client is in shared memory for good: no Decline can follow.  usmc's
 * own clients do not send it (see cli_finish_accept); it is understood.
 */
static void on_confirm(struct usmc_lgr *lgr, const struct clc_msg *msg)
{
	struct usmc_conn *conn = af_srv_conn_find(lgr, msg->token);

	if (conn)
		af_srv_conn_del(conn);
}

static void on_decline(struct usmc_lgr *lgr, const struct clc_msg *msg)
{
	bool withdraw = msg->decline.flags & CLC_DECL_WITHDRAW;
	struct usmc_conn *conn;
	struct srv_proposal *p;

	if (lgr->role == LGR_SERVER) {
		p = af_srv_take(0, lgr, msg->token, 0);
		if (p) {
			/* Dropped unread: told so, the client replays what it wrote into TCP. */
			if (withdraw)
				af_send_decline(lgr, p->token, msg->decline.reason);
			lgr_put(lgr);
			free(p);
			return;
		}
		/*
		 * Held for the connection's first use: declined now.  Else we
		 * answered before (usmc_clc.h, withdrawal): the client takes that.
		 */
		if (withdraw) {
			af_accepting_withdrawn(lgr, msg->token, msg->decline.reason);
			return;
		}
		/* The client could not map our ring: this connection can only fail, loudly. */
		conn = af_srv_conn_find(lgr, msg->token);
		if (conn && conn->sock)
			usmc_conn_abort(conn->sock);
		return;
	}
	/* A Decline of the whole link group: its handshakes end with the reason when it closes. */
	if (!msg->token) {
		lgr->refused = msg->decline.reason;
		return;
	}
	conn = af_cli_find(lgr, msg->token, false);
	if (!conn || conn->hs_result)
		return;
	conn->hs_result = CLC_DECLINE;
	conn->hs_reason = msg->decline.reason;
	conn->hs_marker = msg->decline.flags & CLC_DECL_MARKER;
	/*
	 * Marked, so for our own socket, and for good: we are a user the
	 * listener does not admit (af_channel_admit), or the process that
	 * reads this link group hands connections on (usmc_plain_from_now).
	 * Our later connections go as TCP.
	 */
	if (conn->hs_marker && (msg->decline.reason == USMC_DECL_FOREIGN ||
				msg->decline.reason == USMC_DECL_PASSED))
		lgr->refused = msg->decline.reason;
	if (!conn->sock)
		orphan_destroy(conn);
}

bool af_proposal_closed(const struct srv_proposal *p)
{
	return atomic_load(&p->ring.cdc->flags) & CDC_PEER_CONN_CLOSED;
}

/* A client connection of a link group that failed: declined, for the reason it was refused for. */
static void cli_failed(struct usmc_conn *c)
{
	if (c->hs_result)
		return;
	c->hs_result = CLC_DECLINE;
	c->hs_reason = c->lgr->refused ? c->lgr->refused : USMC_DECL_PEERDECL;
	if (!c->sock)
		orphan_destroy(c);
}

/*
 * The peer process is gone, or broke the protocol.  A Proposal whose
 * client closed its socket before the answer (af_orphan) stays: its ring,
 * mapped already, holds all that client sent and its end, for the accept
 * of its connection (usmc_listen.c).  So does one whose channel ended
 * behind it (gone) after its client wrote: the client was killed, or gave
 * the link group up and goes on over TCP; its connection tells which when
 * it is accepted.
 */
static void lgr_fail(struct usmc_lgr *lgr, bool gone)
{
	struct srv_proposal *p;

	lgr->refs++;
	for (struct srv_proposal **pp = &proposals; (p = *pp);) {
		/* One that wrote nothing gives the same end over TCP, and pins no memory. */
		if (p->lgr == lgr && gone && atomic_load(&p->ring.cdc->prod))
			p->peer_gone = true;
		if (p->lgr == lgr && !af_proposal_closed(p) && !p->peer_gone) {
			*pp = p->next;
			atomic_fetch_sub_explicit(&proposals_pending, 1, memory_order_relaxed);
			lgr_put(lgr);
			free(p);
		} else {
			pp = &p->next;
		}
	}
	af_cli_each(lgr, cli_failed);
	lgr->refs--;
	/* The peer must see the end too, or it would keep proposing to us. */
	usmc_sys.shutdown(lgr->chan, SHUT_RDWR);
	lgr_terminate(lgr);
}

void af_lgr_fail(struct usmc_lgr *lgr)
{
	lgr_fail(lgr, false);
}

/* Handles one message; false if it has no place in the protocol. */
static bool dispatch(struct usmc_lgr *lgr, const struct clc_msg *msg, int fd)
{
	bool server = lgr->role == LGR_SERVER;

	if (msg->type == CLC_PROPOSAL && server) {
		on_proposal(lgr, msg, fd);
	} else if (msg->type == CLC_ACCEPT && !server) {
		on_accept(lgr, msg, fd);
	} else if (msg->type == CLC_CONFIRM && server && fd < 0) {
		on_confirm(lgr, msg);
	} else if (msg->type == CLC_DECLINE) {
		if (fd >= 0)
			usmc_sys.close(fd);
		on_decline(lgr, msg);
	} else {
		if (fd >= 0)
			usmc_sys.close(fd);
		return false;
	}
	return true;
}

/*
 * Reads the link group's messages.  With until, its own link group's only
 * up to the answer to its Proposal; with cut, only up to the first
 * Proposal it keeps, and then *cut is set.  A look past it would most
 * often find nothing, and whatever follows keeps the channel readable for
 * the next.
 */
static bool pump_lgr(struct usmc_lgr *lgr, const struct usmc_conn *until, bool *cut)
{
	unsigned kept = atomic_load_explicit(&proposals_pending, memory_order_relaxed);
	struct clc_msg msg;
	uint32_t reason;
	int fd, rc = 0;
	bool ok = true;

	/* A message may drop the group's last reference: keep it until we are done. */
	lgr->refs++;
	while (!(until && until->lgr == lgr && until->hs_result) &&
	       (rc = lgr_recv(lgr, &msg, &fd, &reason)) > 0) {
		if (reason || !dispatch(lgr, &msg, fd)) {
			rc = -2;
			break;
		}
		if (cut && atomic_load_explicit(&proposals_pending, memory_order_relaxed) != kept) {
			*cut = true;
			break;
		}
	}
	if (rc < 0) {
		/* The channel ended (-1), or the peer broke the protocol on it (-2). */
		lgr_fail(lgr, rc == -1 && lgr->role == LGR_SERVER);
		ok = false;
	}
	lgr_put(lgr);
	return ok;
}

bool af_pump_lgr(struct usmc_lgr *lgr)
{
	return pump_lgr(lgr, NULL, NULL);
}

void af_pump_lgrs(void)
{
	struct usmc_lgr *lgr, *next;

	for (lgr = lgr_first(); lgr; lgr = next) {
		next = lgr->next;
		if (lgr_usable(lgr))
			af_pump_lgr(lgr);
	}
}

bool af_pump_lgrs_first(void)
{
	struct usmc_lgr *lgr, *next;
	bool cut = false;

	for (lgr = lgr_first(); lgr; lgr = next) {
		next = lgr->next;
		if (lgr_usable(lgr))
			pump_lgr(lgr, NULL, lgr->role == LGR_SERVER ? &cut : NULL);
	}
	return cut;
}

/*
 * The usable link groups of a role but skip, only those adopted from a
 * direct client if direct.
 */
static void pump_some(enum lgr_role role, bool direct, const struct usmc_lgr *skip,
		      const struct usmc_conn *until)
{
	struct usmc_lgr *lgr, *next;

	for (lgr = lgr_first(); lgr; lgr = next) {
		next = lgr->next;
		if (lgr != skip && lgr->role == role && (!direct || lgr->direct) && lgr_usable(lgr))
			pump_lgr(lgr, until, NULL);
	}
}

void af_pump_direct(void)
{
	pump_some(LGR_SERVER, true, NULL, NULL);
}

void af_pump_answers(const struct usmc_lgr *skip)
{
	pump_some(LGR_CLIENT, false, skip, NULL);
}

void af_pump_answer(const struct usmc_conn *conn)
{
	if (conn->lgr->oneshot)
		pump_lgr(conn->lgr, conn, NULL);
	else
		pump_some(LGR_CLIENT, false, NULL, conn);
}
