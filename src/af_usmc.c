// SPDX-License-Identifier: MIT
/*
 * The handshake (net/smc's af_smc.c): connections, listeners, and the pump
 * that reads what the link groups' channels hold.  The client's side is in
 * usmc_connect.c, the server's in usmc_listen.c, the listener's channels
 * and what they may cost in usmc_chan.c.
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
#include "usmc_log.h"
#include "usmc_rendezvous.h"
#include "usmc_sock.h"
#include "usmc_stats.h"
#include "usmc_sys.h"
#include "af_usmc.h"

static struct usmc_listener *listeners;
static struct srv_proposal *proposals;
/* Entries of proposals, for af_srv_none_pending without the lock. */
static _Atomic unsigned proposals_pending;
static struct usmc_conn *cli_pending;
static struct usmc_conn *srv_conns; /* accepted in shared memory, by token */

/* ---- connections ---- */

struct usmc_conn *af_conn_new(struct usmc_sock *s, struct usmc_lgr *lgr)
{
	struct usmc_conn *conn = calloc(1, sizeof(*conn));

	if (!conn)
		return NULL;
	conn->sock = s;
	conn->diag = s->diag;
	conn->lgr = lgr;
	return conn;
}

void usmc_conn_free(struct usmc_conn *conn)
{
	free(conn);
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
	conn->sh = sh;
	usmc_holders_init(conn);
}

/* Gives the connection's ring and link group reference back. */
void af_conn_release(struct usmc_conn *conn)
{
	lgr_ring_free(conn->lgr, &conn->tx, conn_peer_cdc(conn), conn->peer_gen);
	lgr_put(conn->lgr);
	usmc_conn_free(conn);
}

static void send_decline(struct usmc_lgr *lgr, uint64_t token, uint32_t reason, uint8_t flags)
{
	struct clc_msg msg = { .type = CLC_DECLINE, .version = CLC_VERSION, .token = token };

	msg.decline.reason = reason;
	msg.decline.flags = flags;
	lgr_send(lgr, &msg, -1);
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

/* ---- listeners ---- */

bool af_listener_shared(const struct usmc_listener *l)
{
	struct reg_port *reg = reg_port(l->port);

	return reg && (atomic_load_explicit(&reg->flags, memory_order_relaxed) & REG_SHARED);
}

/* Ours, or inherited and shared with the process that made it. */
static struct usmc_listener *listener_find(uint16_t port)
{
	for (struct usmc_listener *l = listeners; l; l = l->next)
		if (l->port == port && (l->owner == usmc_pid() || af_listener_shared(l)))
			return l;
	return NULL;
}

/*
 * A process that did not make the listener is about to accept from it:
 * a prefork worker waiting on the listener it inherited from its master.
 * From now on each Proposal toward the port comes on a channel of its
 * own, which whichever holder accepts the connection can find
 * (usmc_queue.c).  Marked when a worker first waits or accepts, not at
 * the fork: a server that forks after accept (postgresql, dnsmasq, sshd)
 * has children that never accept, and its connections keep the link
 * groups they share with the listener's creator.  A connection proposed
 * before the mark went to the creator, and falls back after one CLC
 * timeout if a worker accepts it (docs/HANDSHAKE.md).
 */
void af_listener_claim(struct usmc_sock *ls)
{
	struct usmc_listener *l = ls->listener;
	struct reg_port *reg;

	if (!l || l->owner == usmc_pid() || l->claimed == usmc_pid())
		return;
	l->claimed = usmc_pid();
	reg = reg_port(l->port);
	if (reg && atomic_load(&reg->pid) == l->owner)
		atomic_fetch_or(&reg->flags, REG_SHARED);
}

static uint16_t sock_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (usmc_sys.getsockname(fd, (struct sockaddr *)&ss, &len))
		return 0;
	if (ss.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&ss)->sin_port);
	return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

static uint32_t listener_register(struct usmc_sock *s)
{
	const uid_t *other_users;
	struct reg_port *reg;
	struct usmc_listener *l;
	uint16_t port = sock_port(s->fd);
	int reuseport = 0;
	socklen_t len = sizeof(reuseport);

	reg = reg_port(port);
	if (!port || !reg)
		return usmc_env_fail("registry");
	/*
	 * With SO_REUSEPORT other processes may get the connections: a member
	 * of the group (usmc_reuseport.c), unless a usmc listener without it
	 * has the port, on another address.
	 */
	if (usmc_sys.getsockopt(s->fd, SOL_SOCKET, SO_REUSEPORT, &reuseport, &len) == 0 && reuseport) {
		int32_t pid = atomic_load(&reg->pid);

		if (pid && !(atomic_load(&reg->flags) & REG_REUSEPORT) &&
		    (kill(pid, 0) == 0 || errno != ESRCH))
			return USMC_DECL_SOCKOPT;
	}
	if (!af_diag_available())
		return usmc_env_fail("sock_diag");
	l = listener_find(port);
	if (l) {
		l->refs++;
		s->listener = l;
		return 0;
	}
	l = calloc(1, sizeof(*l));
	if (!l)
		return USMC_DECL_MEM;
	l->port = port;
	if (reuseport) {
		l->ufd = af_member_join(l, reg);
	} else {
		l->uaddr_len = reg_listener_addr(getuid(), port, false, &l->uaddr);
		l->ufd = af_channel_listen_at(&l->uaddr, l->uaddr_len);
	}
	if (l->ufd < 0) {
		uint32_t reason = reuseport ? USMC_DECL_SOCKOPT : usmc_env_fail("channel listen");

		free(l);
		return reason;
	}
	/*
	 * Clients of other users knock only where this name exists, so one
	 * that allows nobody never leaves them waiting for an answer.
	 */
	l->ufd_users = !reuseport && usmc_policy_other_users(&other_users)
			       ? af_channel_listen(port, true)
			       : -1;
	/*
	 * Clients of other network namespaces find it in the rendezvous
	 * directory, if there is one; not a member of an SO_REUSEPORT group,
	 * whose other members could not find what is put there.
	 */
	l->rfd = reuseport ? -1 : rdv_listen(port, &l->rfd_ino);
	l->owner = usmc_pid();
	l->uid = getuid();
	l->refs = 1;
	l->seen = atomic_load(&reg->proposals);
	l->next = listeners;
	listeners = l;
	if (!reuseport) {
		/* What earlier listeners of the port left unread is nobody's now. */
		atomic_store(&reg->read, l->seen);
		atomic_store(&reg->flags, 0);
		atomic_store(&reg->pid, (int32_t)usmc_pid());
	}
	s->listener = l;
	return 0;
}

int af_listen(struct usmc_sock *s, int backlog)
{
	if (usmc_sys.listen(s->fd, backlog) < 0)
		return -1;
	if (s->state != SOCK_LISTEN)
		af_listener_open(s);
	return 0;
}

void af_listener_open(struct usmc_sock *s)
{
	uint32_t reason;

	/* The policy names users, and NSS must not run under our lock: read it now. */
	usmc_peer_user_allowed(getuid());
	usmc_lock();
	reason = listener_register(s);
	usmc_unlock();
	if (reason) {
		s->reason = reason;
		usmc_sock_set_state(s, SOCK_PLAIN);
	} else {
		af_listener_defer_take(s);
		usmc_sock_set_state(s, SOCK_LISTEN);
	}
}

bool af_listener_inherit(int fd, int ufd, uint16_t port, pid_t owner, uid_t uid, bool member)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	struct usmc_listener *l;
	struct reg_port *reg = reg_port(port);
	struct usmc_sock *s;

	if (!reg || usmc_sys.getsockname(fd, (struct sockaddr *)&ss, &len) ||
	    (ss.ss_family != AF_INET && ss.ss_family != AF_INET6) || sock_port(fd) != port)
		return false;
	for (l = listeners; l && !(l->port == port && l->ufd == ufd); l = l->next)
		;
	if (!l) {
		l = calloc(1, sizeof(*l));
		if (!l)
			return false;
		l->port = port;
		l->owner = owner;
		l->uid = uid;
		l->ufd = ufd;
		l->ufd_users = -1;
		l->member = member;
		l->uaddr_len = member ? reg_member_addr(uid, port, owner, &l->uaddr)
				      : reg_listener_addr(uid, port, false, &l->uaddr);
		l->seen = atomic_load(&reg->proposals);
		l->next = listeners;
		listeners = l;
	}
	s = usmc_sock_new(fd, ss.ss_family);
	if (!s) {
		if (!l->refs) {
			listeners = l->next;
			free(l);
		}
		return false;
	}
	l->refs++;
	s->listener = l;
	usmc_sock_set_state(s, SOCK_LISTEN);
	return true;
}

bool af_listener_ufd_held(int ufd)
{
	for (struct usmc_listener *l = listeners; l; l = l->next)
		if (l->ufd == ufd)
			return true;
	return false;
}

void af_listener_close(struct usmc_sock *s)
{
	struct usmc_listener *l = s->listener, **pp;
	struct reg_port *reg;
	int32_t me = (int32_t)usmc_pid();

	if (!l)
		return;
	usmc_lock();
	s->listener = NULL;
	if (--l->refs == 0) {
		for (pp = &listeners; *pp; pp = &(*pp)->next) {
			if (*pp == l) {
				*pp = l->next;
				break;
			}
		}
		reg = reg_port(l->port);
		/*
		 * A shared listener's other holders (its workers, a new image
		 * after exec) may go on with the name: its clients clear the
		 * entry when they find the name gone (usmc_queue.c).
		 */
		if (reg && l->member)
			af_member_leave(reg);
		else if (reg && !(atomic_load(&reg->flags) & REG_SHARED))
			atomic_compare_exchange_strong(&reg->pid, &me, 0);
		if (l->ufd >= 0)
			usmc_sys.close(l->ufd);
		if (l->ufd_users >= 0)
			usmc_sys.close(l->ufd_users);
		if (l->rfd >= 0) {
			usmc_sys.close(l->rfd);
			/* A path outlives its process: the creator removes it; forked holders leave it. */
			if (l->owner == me)
				rdv_unlisten(l->port, l->rfd_ino);
		}
		/* Proposals for the port stay until their link group goes. */
		free(l);
	}
	usmc_unlock();
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
	struct usmc_listener *l = listener_find(msg->proposal.dst.port);
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

bool af_srv_has(uint16_t port)
{
	for (struct srv_proposal *p = proposals; p; p = p->next)
		if (p->port == port)
			return true;
	return false;
}

struct usmc_conn *af_cli_find(struct usmc_lgr *lgr, uint64_t token, bool unlink)
{
	for (struct usmc_conn **pp = &cli_pending, *c; (c = *pp); pp = &c->hs_next) {
		if (c->lgr == lgr && c->token == token) {
			if (unlink)
				*pp = c->hs_next;
			return c;
		}
	}
	return NULL;
}

/* A client that closed while proposing: settle its ring once the answer comes. */
static void orphan_settle(struct usmc_conn *conn)
{
	af_cli_find(conn->lgr, conn->token, true);
	af_conn_release(conn);
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
		orphan_settle(conn);
	}
}

static struct usmc_conn *srv_conn_find(struct usmc_lgr *lgr, uint64_t token)
{
	for (struct usmc_conn *c = srv_conns; c; c = c->hs_next)
		if (c->lgr == lgr && c->token == token)
			return c;
	return NULL;
}

/*
 * The client is in shared memory for good: no Decline can follow.  usmc's
 * own clients do not send it (see cli_finish_accept); it is understood.
 */
static void on_confirm(struct usmc_lgr *lgr, const struct clc_msg *msg)
{
	struct usmc_conn *conn = srv_conn_find(lgr, msg->token);

	if (conn)
		af_conn_forget(conn);
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
		/* We answered before (usmc_clc.h, withdrawal): the client takes that answer. */
		if (withdraw)
			return;
		/* The client could not map our ring: this connection can only fail, loudly. */
		conn = srv_conn_find(lgr, msg->token);
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
	if (!conn->sock)
		orphan_settle(conn);
}

/* The peer process is gone, or broke the protocol. */
void af_lgr_fail(struct usmc_lgr *lgr)
{
	struct srv_proposal *p;
	struct usmc_conn *c, *next;

	lgr->refs++;
	for (struct srv_proposal **pp = &proposals; (p = *pp);) {
		if (p->lgr == lgr) {
			*pp = p->next;
			atomic_fetch_sub_explicit(&proposals_pending, 1, memory_order_relaxed);
			lgr_put(lgr);
			free(p);
		} else {
			pp = &p->next;
		}
	}
	for (c = cli_pending; c; c = next) {
		next = c->hs_next;
		if (c->lgr != lgr || c->hs_result)
			continue;
		c->hs_result = CLC_DECLINE;
		c->hs_reason = lgr->refused ? lgr->refused : USMC_DECL_PEERDECL;
		if (!c->sock)
			orphan_settle(c);
	}
	lgr->refs--;
	/* The peer must see the end too, or it would keep proposing to us. */
	usmc_sys.shutdown(lgr->chan, SHUT_RDWR);
	lgr_mark_dead(lgr);
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

bool af_pump_lgr(struct usmc_lgr *lgr)
{
	struct clc_msg msg;
	uint32_t reason;
	int fd, rc;
	bool ok = true;

	/* A message may drop the group's last reference: keep it until we are done. */
	lgr->refs++;
	while ((rc = lgr_recv(lgr, &msg, &fd, &reason)) > 0) {
		if (reason || !dispatch(lgr, &msg, fd)) {
			rc = -1;
			break;
		}
	}
	if (rc < 0) {
		af_lgr_fail(lgr);
		ok = false;
	}
	lgr_put(lgr);
	return ok;
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

void af_pump(void)
{
	bool more;

	for (struct usmc_listener *l = listeners; l; l = l->next)
		af_accept_channels(l, &more);
	af_pump_lgrs();
}

void af_cli_pending_add(struct usmc_conn *conn)
{
	conn->hs_next = cli_pending;
	cli_pending = conn;
}

void af_srv_conn_add(struct usmc_conn *conn)
{
	conn->hs_next = srv_conns;
	srv_conns = conn;
}

void af_conn_forget(struct usmc_conn *conn)
{
	for (struct usmc_conn **pp = &srv_conns, *c; (c = *pp); pp = &c->hs_next) {
		if (c == conn) {
			*pp = c->hs_next;
			return;
		}
	}
}
