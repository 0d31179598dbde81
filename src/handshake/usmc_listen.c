// SPDX-License-Identifier: MIT
/*
 * The server's side of the handshake (net/smc's smc_listen_work).
 *
 * accept() is the kernel's.  If Proposals are waiting for the port, the
 * cookie of the peer socket, from sock_diag, finds the one that belongs
 * to this connection: it gets an Accept and the connection moves to
 * shared memory.  Any other peer is a plain TCP client and never sees a
 * byte of ours; when no Proposal was sent toward the port since we last
 * looked, finding that out costs a counter comparison.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "usmc.h"
#include "usmc_chan.h"
#include "usmc_channel.h"
#include "usmc_close.h"
#include "usmc_config.h"
#include "usmc_conn.h"
#include "usmc_fdtab.h"
#include "usmc_fork.h"
#include "usmc_listen.h"
#include "usmc_listener.h"
#include "usmc_lookup.h"
#include "usmc_policy.h"
#include "usmc_proc.h"
#include "usmc_queue.h"
#include "usmc_registry.h"
#include "usmc_rendezvous_taken.h"
#include "usmc_reuseport.h"
#include "usmc_seg.h"
#include "usmc_sock.h"
#include "usmc_sockdiag.h"
#include "usmc_stats.h"
#include "usmc_sys.h"
#include "af_usmc.h"

void af_set_nodelay(int fd)
{
	int one = 1;

	/* Doorbells are single bytes: Nagle would hold them back. */
	usmc_sys.setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/*
 * TCP_DEFER_ACCEPT holds a connection back from accept() until data comes
 * on TCP, and a usmc client's data goes to its ring, while it waits for
 * the Accept that only accept() sends: every such connection would wait
 * for the option's timeout.  A usmc listener keeps the option for
 * getsockopt and leaves the kernel's off, so plain clients are accepted
 * at connect, as without the option: the server's first read waits for
 * their data instead of its accept.  (A byte a usmc client sent on TCP to
 * wake the listener would reach a server that ends up plain, its Proposal
 * missed or withdrawn, as data: no byte of ours may.)  The kernel rounds
 * the value to its retransmissions: it is read back from there.
 */
void af_listener_defer_take(struct usmc_sock *s)
{
	int v = 0, off = 0;
	socklen_t len = sizeof(v);

	if (usmc_sys.getsockopt(s->fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &v, &len) || v <= 0)
		return;
	s->defer_accept = v;
	usmc_sys.setsockopt(s->fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &off, sizeof(off));
}

/* The marker: the client's socket cookie, ahead of anything of the program's. */
static void srv_mark(struct usmc_sock *ns, uint64_t cookie)
{
	usmc_sys.send(ns->fd, &cookie, sizeof(cookie), MSG_NOSIGNAL | MSG_DONTWAIT);
}

/*
 * Whether p's client left its ring to us with all it will write there: it
 * closed before the answer, or its channel ended behind the Proposal (it
 * was killed) and its connection ended with nothing on TCP.  Not one that
 * gave the link group up and goes on over TCP, replaying what it wrote.
 */
static bool srv_ring_left(struct usmc_sock *ns, const struct srv_proposal *p)
{
	return af_proposal_closed(p) || (p->peer_gone && af_conn_ended_quiet(ns->fd));
}

/*
 * Declines the Proposal of the connection ns, proven its client's or
 * not, and gives it back.  A proven client gets the marker, which wakes
 * it if it waits on TCP for its answer, with what it wrote in its ring
 * to be replayed (CLC_DECL_MARKER); not one that closed without writing,
 * whose closed socket would answer those bytes with a reset.  One that
 * wrote and closed before any answer (af_orphan), or was killed, replays
 * nothing: our end is reset, so that the bytes lost show as an error.
 */
static void srv_decline(struct usmc_sock *ns, struct srv_proposal *p, uint32_t reason, bool proven)
{
	struct pollfd pfd = { .fd = ns->fd, .events = POLLRDHUP };
	/* Written, then closed before the answer, or killed: nobody replays it. */
	bool lost = proven && atomic_load(&p->ring.cdc->prod) && srv_ring_left(ns, p);
	bool marker = proven && !lost &&
		      (atomic_load(&p->ring.cdc->prod) || usmc_sys.poll(&pfd, 1, 0) <= 0 ||
		       !(pfd.revents & (POLLRDHUP | POLLHUP)));

	if (marker && af_send_decline_marked(p->lgr, p->token, reason))
		srv_mark(ns, p->cookie);
	else if (!marker)
		af_send_decline(p->lgr, p->token, reason);
	/* So the connection fails, loudly: TCP's reset, ECONNRESET for our program's next call. */
	if (lost)
		usmc_sys.connect(ns->fd, &(struct sockaddr){ .sa_family = AF_UNSPEC },
				 sizeof(struct sockaddr));
	lgr_put(p->lgr);
	free(p);
}

static uint32_t srv_accept_proposal(struct usmc_sock *ns, struct srv_proposal *p)
{
	struct clc_msg msg = { .type = CLC_ACCEPT, .version = CLC_VERSION, .token = p->token };
	struct usmc_conn *conn = af_conn_new(ns, p->lgr);
	uint32_t size, first, reason;
	int new_fd;

	/* Our children may take this connection and exit without closing it: sock_diag tells. */
	af_diag_watch_holders();
	/* A size either end asked for (our SO_SNDBUF, the client's SO_RCVBUF) is kept. */
	usmc_ring_sizes(ns->sndbuf, &size, &first);
	if (p->rcvbuf && p->rcvbuf <= CLC_RMB_MAX && (ns->sndbuf <= 0 || p->rcvbuf > size))
		size = first = usmc_ring_size((int)(p->rcvbuf > first ? p->rcvbuf : first));
	reason = conn ? lgr_ring_alloc(p->lgr, size, first, &conn->tx, &msg.accept.rmb, &new_fd)
		      : USMC_DECL_MEM;
	if (!reason)
		af_conn_shared_init(conn);
	/*
	 * A client that left its ring to us may have exited since: the ring,
	 * mapped already, holds all it wrote and its end.
	 */
	if (!reason && lgr_send(p->lgr, &msg, new_fd) < 0 && !srv_ring_left(ns, p)) {
		lgr_ring_free(p->lgr, &conn->tx, NULL, 0);
		reason = USMC_DECL_PEERDECL;
	}
	if (reason) {
		/* The client replays what it wrote into the TCP stream. */
		usmc_conn_free(conn);
		srv_decline(ns, p, reason, true);
		return reason;
	}
	lgr_ring_handed_over(&conn->tx);
	conn->token = p->token;
	af_srv_conn_add(conn);
	conn->rx = p->ring;
	conn->rx_mapped = true;
	conn->peer_gen = atomic_load(&conn->rx.cdc->gen);
	free(p);
	ns->conn = conn;
	/* SO_OOBINLINE of the listener is the rings' now; nobody else holds them yet. */
	conn->sh->rx_urg.inline_ = ns->oobinline;
	return 0;
}

/* Sockets in SOCK_ACCEPTING: 0 spares a fork the walk of the table. */
static _Atomic int accepting_count;
/* A fork's prepare handler ran, and its parent or child handler not yet. */
static _Atomic bool forking;
static pthread_once_t fork_once = PTHREAD_ONCE_INIT;

/*
 * A connection whose Proposal went on a link group to another holder of
 * the listener, which never gets the connection: if its client listed
 * the Proposal (usmc_registry.h), it is refused there, and the client
 * woken by its own socket's cookie written into the connection, which
 * it reads before its program does (usmc_settle.c).  Only a client of
 * our user that listed that cookie gets those bytes.  The Proposal's
 * reader drops it once the client withdraws it.
 */
static bool srv_refuse_listed(uint16_t port, struct reg_port *reg, struct usmc_sock *ns,
			      const struct sockaddr *peer, uint64_t cookie, uint32_t uid)
{
	if (!reg || reg_slots_none(reg))
		return false;
	if (!cookie)
		cookie = af_peer_socket_diag(ns->fd, peer, NULL, &uid);
	if (!reg_slot_refuse(port, uid == reg_owner() ? cookie : 0))
		return false;
	srv_mark(ns, cookie);
	return true;
}

/*
 * A connection from another namespace that a redirect in ours gave us,
 * whose Proposal went to the listener its client dialled: refused, and
 * its client woken by the marker, if it listed the connection
 * (usmc_rendezvous_taken.c).
 */
static bool srv_refuse_redirected(struct usmc_sock *ns, const struct sockaddr *peer, uint16_t lport)
{
	uint64_t cookie = rdv_taken_refuse(ns->fd, peer, lport);

	if (cookie)
		srv_mark(ns, cookie);
	return cookie != 0;
}

/*
 * Whether the client may wait for our Accept where only its TCP socket can
 * wake it (a kernel epoll set, the program's own poll): unless it said it
 * waits in a call that watches the channel the Accept comes on
 * (CDC_PEER_WATCHES_CHANNEL, usmc_settle.c).  A client that says so after
 * this look finds the Accept there before it sleeps.
 */
static bool srv_client_waits_on_tcp(struct usmc_sock *ns)
{
	if (!ns->conn->rx_mapped)
		return true;
	atomic_thread_fence(memory_order_seq_cst);
	return !(atomic_load_explicit(&ns->conn->rx.cdc->flags, memory_order_relaxed) &
		 CDC_PEER_WATCHES_CHANNEL);
}

/*
 * Answers ns's Proposal, under usmc_lock, which makes one thread the one
 * that answers: an Accept, or a Decline if the process is plain TCP from
 * now on (a pass, AIO or io_uring since accept(): the client replays its
 * ring into TCP), or for reason if one is given.  The socket's state then.
 */
static int srv_answer_as(struct usmc_sock *ns, uint32_t reason, bool by_peer)
{
	struct srv_proposal *p = ns->accepting;

	ns->accepting = NULL;
	atomic_fetch_sub(&accepting_count, 1);
	if (!reason)
		reason = usmc_plain_reason();
	if (reason)
		srv_decline(ns, p, reason, true);
	else
		reason = srv_accept_proposal(ns, p);
	if (reason) {
		usmc_sock_fallback(ns, reason, by_peer);
		return SOCK_PLAIN;
	}
	af_set_nodelay(ns->fd);
	/* A cork the program set meanwhile would hold the doorbells back (usmc_setsockopt). */
	if (ns->cork)
		usmc_sys.setsockopt(ns->fd, IPPROTO_TCP, TCP_CORK, &(int){ 0 }, sizeof(int));
	usmc_sock_set_state(ns, SOCK_SMC);
	usmc_stats_add(USMC_STAT_SMC_CONNS, 1);
	if (srv_client_waits_on_tcp(ns))
		cdc_ring(ns->fd, ns->conn->tx.cdc, proc_seccomp_filtered(false));
	return SOCK_SMC;
}

/* The reason given is the peer's (a withdrawal); none, the process's own. */
static int srv_answer(struct usmc_sock *ns, uint32_t reason)
{
	return srv_answer_as(ns, reason, reason != 0);
}

static uint32_t srv_handshake(struct usmc_sock *ls, struct usmc_sock *ns,
			      const struct sockaddr *peer)
{
	struct usmc_listener *l = ls->listener;
	struct reg_port *reg = reg_port(l->port);
	struct srv_proposal *p;
	uint64_t cookie = 0;
	uint32_t reason, uid = 0;
	bool proven, shared = af_listener_shared(l), remote = !usmc_addr_is_local(peer);

	if (remote) {
		/* Another namespace's client: only through the rendezvous directory. */
		if (l->rfd < 0 || !reg)
			return USMC_DECL_NOSMCDEV;
		if (!af_queue_rdv_pending(l, reg))
			return srv_refuse_redirected(ns, peer, l->port) ? USMC_DECL_REDIRECTED : USMC_DECL_PEERNOSMC;
	} else if (l->owner != usmc_pid() && (!shared || !reg)) {
		/* Inherited some other way than fork: let clients know. */
		if (reg && atomic_load(&reg->pid) == l->owner)
			atomic_fetch_or(&reg->flags, REG_SHARED);
		srv_refuse_listed(l->port, reg, ns, peer, 0, 0);
		return USMC_DECL_LISTENSHARED;
	}
	/*
	 * No Proposal was sent toward the port since we last looked: a plain
	 * client, told without the lock.  Clients of other users cannot count
	 * theirs in our registry.  A holder that is not the listener's maker
	 * also looks once for those proposed straight to the maker's Unix
	 * listener before the listener was marked shared (the first clients
	 * of a prefork server whose workers were still starting): the maker
	 * does not read them when it does not accept, and they wait in the
	 * backlog the holders share.
	 */
	if (!remote && (shared ? af_queue_none_pending(reg) && l->ufd_users < 0 &&
					 atomic_load(&reg->proposals) == atomic_load(&reg->read) &&
					 reg_slots_none(reg) &&
					 (l->owner != usmc_pid() ? af_srv_none_listed()
								   : af_srv_none_pending(l, reg))
			       : af_srv_none_pending(l, reg)))
		return USMC_DECL_PEERNOSMC;
	usmc_lock();
	reason = USMC_DECL_PEERNOSMC;
	p = remote ? af_lookup_rdv(l, reg, ns, &uid, &reason)
		   : af_lookup(l, reg, ns, peer, &cookie, &uid, &reason);
	if (!p && !remote && !cookie)
		p = af_lookup_orphan(l, reg, ns, peer, &uid);
	if (!p && remote && srv_refuse_redirected(ns, peer, l->port))
		reason = USMC_DECL_REDIRECTED;
	/* Another holder has it, if anyone: a listener shared, or taken over since. */
	if (!p && !remote && (shared || af_listener_shared(l)) &&
	    srv_refuse_listed(l->port, reg, ns, peer, cookie, uid))
		reason = USMC_DECL_LISTENSHARED;
	/* Cookies are no secret (sock_diag shows them): the socket must be the proposer's user's. */
	proven = p && uid == (uint32_t)p->lgr->peer_uid;
	if (p && !proven)
		reason = USMC_DECL_FOREIGN;
	else if (p)
		/* A user we do not admit (af_channel_admit), or this process uses io_uring. */
		reason = p->lgr->refused ? p->lgr->refused : usmc_plain_reason();
	if (p && reason) {
		srv_decline(ns, p, reason, proven);
	} else if (p) {
		/* Answered at the socket's first use (af_accept_finish). */
		ns->accepting = p;
		atomic_fetch_add(&accepting_count, 1);
		usmc_sock_set_state(ns, SOCK_ACCEPTING);
		/*
		 * Now, where no first use of the program's would pass usmc (a
		 * program that calls usmc_accept itself may wait in the kernel's
		 * own poll, usmc.h "Readiness"), or while a fork is under way.
		 */
		if (!usmc_sys_interposed() || atomic_load(&forking))
			srv_answer(ns, 0);
	}
	usmc_unlock();
	return reason;
}

/*
 * Under the preload, the Accept goes at the accepted socket's first use,
 * not in accept(): the process may hand the connection on before it
 * reads or writes (Node.js's cluster primary passes each one to a worker
 * with SCM_RIGHTS), and a receiver that knows nothing of rings can have
 * the connection only as TCP.  Decided before any byte moved, a Decline
 * does that: the client replays what it wrote into the stream.  So the
 * answer waits for a call that reads, writes or waits on the socket (SIGIO
 * too), usmc_info, a fork, a vfork, an exec, a close or the exit; a pass, POSIX
 * AIO or an io_uring declines (usmc_plain_from_now set first).  A program
 * that calls usmc_accept itself is answered in it (af_accept).  net/smc
 * answers before accept() returns: the kernel's SMC socket goes wherever
 * its descriptor goes, and needs no such choice.
 */
int af_accept_finish(struct usmc_sock *ns)
{
	return af_accept_decline(ns, 0);
}

/*
 * The client withdrew a Proposal we hold for a connection not used yet
 * (it waited two CLC timeouts): declined now, it goes on over TCP.  Under
 * usmc_lock, as every answer is.
 */
bool af_accepting_withdrawn(struct usmc_lgr *lgr, uint64_t token, uint32_t reason)
{
	struct usmc_sock *s;
	struct srv_proposal *p;

	if (!atomic_load(&accepting_count))
		return false;
	for (int fd = 0; (s = usmc_fdtab_next(&fd)); fd++) {
		p = s->accepting;
		if (atomic_load(&s->state) != SOCK_ACCEPTING || !p || p->lgr != lgr ||
		    p->token != token)
			continue;
		srv_answer(s, reason);
		return true;
	}
	return false;
}

/* Reason 0: an Accept, unless the process is plain TCP from now on. */
int af_accept_decline(struct usmc_sock *ns, uint32_t reason)
{
	int state;

	usmc_lock();
	state = atomic_load(&ns->state);
	if (state == SOCK_ACCEPTING)
		state = srv_answer_as(ns, reason, false);
	usmc_unlock();
	return state;
}

void af_accept_finish_all(void)
{
	struct usmc_sock *s;

	if (!atomic_load(&accepting_count))
		return;
	for (int fd = 0; (s = usmc_fdtab_next(&fd)); fd++)
		if (atomic_load(&s->state) == SOCK_ACCEPTING)
			af_accept_finish(s);
}

/*
 * Before a fork: the child's copy of a link group must not answer what
 * the parent's does.  Every connection waiting is answered, and one
 * accepted until the fork has taken usmc_lock (the locks' handler, which
 * runs after this one) is answered as it is accepted.  A listener this
 * process made gets its side queue, which the child inherits.
 */
static void fork_prepare(void)
{
	atomic_store(&forking, true);
	af_accept_finish_all();
	af_listener_fork_prepare();
}

static void fork_done(void)
{
	atomic_store(&forking, false);
}

static void watch_fork(void)
{
	/* Added after the locks' handlers, it runs before them, with no lock of ours held. */
	usmc_fork_watch(fork_prepare, fork_done, fork_done);
}

void af_listen_watch_fork(void)
{
	pthread_once(&fork_once, watch_fork);
}

/*
 * Listeners that reach a process some other way than its own listen():
 * systemd socket activation and inetd `wait` services (given at exec),
 * SCM_RIGHTS, a binary upgrade's new master.  The first accept makes
 * such a TCP listener a usmc listener, as listen() would have: clients
 * that connect after it propose, those before it were TCP.
 */
struct usmc_sock *af_listener_adopt(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(int);
	int acc = 0, proto = 0;
	struct usmc_sock *s;
	bool mine = false;

	if (usmc_fd_not_listener(fd))
		return NULL;
	if (usmc_sys.getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &len) || !acc)
		return NULL; /* accept() says why */
	len = sizeof(ss);
	if (usmc_sys.getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &proto, &(socklen_t){ sizeof(int) }) ||
	    proto != IPPROTO_TCP || usmc_sys.getsockname(fd, (struct sockaddr *)&ss, &len) ||
	    (ss.ss_family != AF_INET && ss.ss_family != AF_INET6)) {
		usmc_fd_mark_not_listener(fd, true);
		return NULL;
	}
	/* Two threads may accept on it at once: one makes the socket. */
	usmc_lock();
	s = usmc_sock_get(fd);
	if (!s && (s = usmc_sock_new(fd, ss.ss_family)))
		mine = true;
	usmc_unlock();
	if (!mine)
		return s;
	if (usmc_config()->disabled)
		usmc_sock_fallback(s, USMC_DECL_DISABLED, false);
	else if (usmc_plain_reason())
		usmc_sock_fallback(s, usmc_plain_reason(), false);
	else
		af_listener_open(s);
	return s;
}

/*
 * A member of an SO_REUSEPORT group without a slot joins once one is free
 * (a member that left), from its next connection on: one thread does.
 */
static void srv_outside_rejoin(struct usmc_sock *ls)
{
	struct reg_port *reg = reg_port(ls->outside_port);
	int state = SOCK_PLAIN;

	if (!reg || !af_member_slot_free(reg) ||
	    !atomic_compare_exchange_strong(&ls->state, &state, SOCK_INIT))
		return;
	/* Meanwhile another thread's accepts refuse as before: both stay until it joined. */
	af_listener_open(ls);
	if (atomic_load(&ls->state) == SOCK_LISTEN) {
		ls->outside_port = 0;
		ls->reason = 0;
	}
}

int af_accept(struct usmc_sock *ls, int fd, const struct sockaddr *peer, socklen_t peer_len)
{
	struct usmc_sock *ns = NULL;
	uint32_t reason;

	(void)peer_len;
	if (ls->state != SOCK_LISTEN) {
		if (ls->reason && (ns = usmc_sock_new(fd, ls->domain)))
			usmc_sock_fallback(ns, ls->reason, false);
		/*
		 * A member of an SO_REUSEPORT group that found no slot: its
		 * clients proposed to the members that have one, and listed
		 * their Proposals; none of those will ever see this connection.
		 */
		if (ns && ls->outside_port && usmc_addr_is_local(peer)) {
			usmc_lock();
			srv_refuse_listed(ls->outside_port, reg_port(ls->outside_port), ns, peer, 0, 0);
			usmc_unlock();
		}
		if (ls->outside_port)
			srv_outside_rejoin(ls);
		return 0;
	}
	ns = usmc_sock_new(fd, ls->domain);
	if (!ns)
		return 0;
	ns->sndbuf = ls->sndbuf;
	ns->rcvbuf = ls->rcvbuf;
	ns->nodelay = ls->nodelay;
	ns->oobinline = ls->oobinline;
	af_listen_watch_fork();
	reason = srv_handshake(ls, ns, peer);
	if (reason)
		usmc_sock_fallback(ns, reason, false);
	return 0;
}
