// SPDX-License-Identifier: MIT
/*
 * The handshake (net/smc's af_smc.c: smc_connect, smc_listen_work).
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
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "usmc.h"
#include "usmc_sock.h"
#include "usmc_stats.h"
#include "usmc_sys.h"

struct usmc_listener {
	uint16_t port;
	pid_t owner;    /* a forked child must leave the channels to its parent */
	int ufd;        /* the Unix listener clients find us by */
	int refs;       /* TCP listeners of this process on the port */
	uint32_t seen;  /* Proposals read for the port */
	struct usmc_listener *next;
};

/* A Proposal waiting for its TCP connection to be accepted. */
struct srv_proposal {
	struct usmc_lgr *lgr;
	uint64_t token;
	uint64_t cookie;
	uint16_t port;
	uint32_t rcvbuf;
	struct usmc_ring ring; /* the client's, mapped read-only */
	struct srv_proposal *next;
};

static struct usmc_listener *listeners;
static struct srv_proposal *proposals;
static struct usmc_conn *cli_pending;
static struct usmc_conn *srv_conns; /* accepted in shared memory, by token */
static uint64_t next_token;
static int diag_fd = -1;

/* ---- connections ---- */

static struct usmc_conn *conn_new(struct usmc_sock *s, struct usmc_lgr *lgr)
{
	struct usmc_conn *conn = calloc(1, sizeof(*conn));

	if (!conn)
		return NULL;
	pthread_mutex_init(&conn->tx_lock, NULL);
	pthread_mutex_init(&conn->rx_lock, NULL);
	conn->sock = s;
	conn->diag = s->diag;
	conn->lgr = lgr;
	return conn;
}

void usmc_conn_free(struct usmc_conn *conn)
{
	if (!conn)
		return;
	pthread_mutex_destroy(&conn->tx_lock);
	pthread_mutex_destroy(&conn->rx_lock);
	free(conn);
}

/* Gives the connection's ring and link group reference back. */
static void conn_release(struct usmc_conn *conn)
{
	lgr_ring_free(conn->lgr, &conn->tx, conn_peer_cdc(conn), conn->peer_gen);
	lgr_put(conn->lgr);
	usmc_conn_free(conn);
}

/*
 * A CLC message without a ring: Confirm, or Decline with its reason.  A
 * Confirm only lets the server forget a token early, so it is dropped
 * rather than waited for when the channel is full.
 */
static void send_clc(struct usmc_lgr *lgr, uint8_t type, uint64_t token, uint32_t reason)
{
	struct clc_msg msg = { .type = type, .version = CLC_VERSION, .token = token };

	if (type == CLC_DECLINE)
		msg.decline.reason = reason;
	if (type == CLC_CONFIRM)
		lgr_send_try(lgr, &msg);
	else
		lgr_send(lgr, &msg, -1);
}

static void send_decline(struct usmc_lgr *lgr, uint64_t token, uint32_t reason)
{
	send_clc(lgr, CLC_DECLINE, token, reason);
}

/* ---- listeners ---- */

static struct usmc_listener *listener_find(uint16_t port)
{
	for (struct usmc_listener *l = listeners; l; l = l->next)
		if (l->port == port && l->owner == usmc_pid())
			return l;
	return NULL;
}

static bool diag_available(void)
{
	if (diag_fd < 0)
		diag_fd = usmc_sys.socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
	return diag_fd >= 0;
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
	struct sockaddr_un sun;
	socklen_t sun_len;
	struct reg_port *reg;
	struct usmc_listener *l;
	uint16_t port = sock_port(s->fd);
	int reuseport = 0;
	socklen_t len = sizeof(reuseport);

	/* With SO_REUSEPORT another process may get the connection we propose for. */
	if (usmc_sys.getsockopt(s->fd, SOL_SOCKET, SO_REUSEPORT, &reuseport, &len) == 0 && reuseport)
		return USMC_DECL_SOCKOPT;
	reg = reg_port(port);
	if (!port || !reg || !diag_available())
		return USMC_DECL_ENV;
	l = listener_find(port);
	if (l) {
		l->refs++;
		s->listener = l;
		return 0;
	}
	l = calloc(1, sizeof(*l));
	if (!l)
		return USMC_DECL_MEM;
	l->ufd = usmc_sys.socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	sun_len = reg_listener_addr(port, &sun);
	if (l->ufd < 0 || usmc_sys.bind(l->ufd, (struct sockaddr *)&sun, sun_len) ||
	    usmc_sys.listen(l->ufd, SOMAXCONN)) {
		if (l->ufd >= 0)
			usmc_sys.close(l->ufd);
		free(l);
		return USMC_DECL_ENV;
	}
	l->port = port;
	l->owner = usmc_pid();
	l->refs = 1;
	l->seen = atomic_load(&reg->proposals);
	l->next = listeners;
	listeners = l;
	atomic_store(&reg->pid, (int32_t)usmc_pid());
	s->listener = l;
	return 0;
}

int af_listen(struct usmc_sock *s, int backlog)
{
	uint32_t reason;

	if (usmc_sys.listen(s->fd, backlog) < 0)
		return -1;
	if (s->state == SOCK_LISTEN)
		return 0;
	usmc_lock();
	reason = listener_register(s);
	usmc_unlock();
	if (reason) {
		s->reason = reason;
		usmc_sock_set_state(s, SOCK_PLAIN);
	} else {
		usmc_sock_set_state(s, SOCK_LISTEN);
	}
	return 0;
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
		if (reg)
			atomic_compare_exchange_strong(&reg->pid, &me, 0);
		usmc_sys.close(l->ufd);
		/* Proposals for the port stay until their link group goes. */
		free(l);
	}
	usmc_unlock();
}

/* ---- the pump: everything the channels hold ---- */

static void accept_channels(struct usmc_listener *l)
{
	for (;;) {
		struct ucred cred;
		socklen_t len = sizeof(cred);
		int fd = usmc_sys.accept4(l->ufd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0)
			return;
		if (usmc_sys.getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) || cred.uid != getuid() ||
		    !lgr_new(fd, LGR_SERVER, cred.pid, cred.uid))
			usmc_sys.close(fd);
	}
}

static void on_proposal(struct usmc_lgr *lgr, const struct clc_msg *msg, int fd)
{
	struct usmc_listener *l = listener_find(msg->proposal.dst.port);
	struct srv_proposal *p;
	uint32_t reason;

	if (!l) {
		if (fd >= 0)
			usmc_sys.close(fd);
		send_decline(lgr, msg->token, USMC_DECL_PEERNOSMC);
		return;
	}
	l->seen++;
	p = calloc(1, sizeof(*p));
	reason = p ? lgr_ring_map_peer(lgr, &msg->proposal.rmb, fd, &p->ring) : USMC_DECL_MEM;
	if (!p && fd >= 0)
		usmc_sys.close(fd);
	if (reason) {
		free(p);
		send_decline(lgr, msg->token, reason);
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
}

static struct srv_proposal *srv_take(uint16_t port, struct usmc_lgr *lgr, uint64_t token,
				     uint64_t cookie)
{
	for (struct srv_proposal **pp = &proposals, *p; (p = *pp); pp = &p->next) {
		if (lgr ? (p->lgr == lgr && p->token == token)
			: (p->port == port && p->cookie == cookie)) {
			*pp = p->next;
			return p;
		}
	}
	return NULL;
}

static bool srv_has(uint16_t port)
{
	for (struct srv_proposal *p = proposals; p; p = p->next)
		if (p->port == port)
			return true;
	return false;
}

static struct usmc_conn *cli_find(struct usmc_lgr *lgr, uint64_t token, bool unlink)
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
	cli_find(conn->lgr, conn->token, true);
	conn_release(conn);
}

static void on_accept(struct usmc_lgr *lgr, const struct clc_msg *msg, int fd)
{
	struct usmc_conn *conn = cli_find(lgr, msg->token, false);
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
		send_clc(lgr, reason ? CLC_DECLINE : CLC_CONFIRM, conn->token, reason);
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

/* The client is in shared memory for good: no Decline can follow. */
static void on_confirm(struct usmc_lgr *lgr, const struct clc_msg *msg)
{
	struct usmc_conn *conn = srv_conn_find(lgr, msg->token);

	if (conn)
		af_conn_forget(conn);
}

static void on_decline(struct usmc_lgr *lgr, const struct clc_msg *msg)
{
	struct usmc_conn *conn;
	struct srv_proposal *p;

	if (lgr->role == LGR_SERVER) {
		p = srv_take(0, lgr, msg->token, 0);
		if (p) {
			lgr_put(lgr);
			free(p);
			return;
		}
		/*
		 * The client gave up after we accepted (we were stalled for a CLC
		 * timeout): it went to TCP, so this connection can only fail, loudly.
		 */
		conn = srv_conn_find(lgr, msg->token);
		if (conn && conn->sock)
			usmc_conn_abort(conn->sock);
		return;
	}
	conn = cli_find(lgr, msg->token, false);
	if (!conn || conn->hs_result)
		return;
	conn->hs_result = CLC_DECLINE;
	conn->hs_reason = msg->decline.reason;
	if (!conn->sock)
		orphan_settle(conn);
}

/* The peer process is gone, or broke the protocol. */
static void lgr_fail(struct usmc_lgr *lgr)
{
	struct srv_proposal *p;
	struct usmc_conn *c, *next;

	lgr->refs++;
	for (struct srv_proposal **pp = &proposals; (p = *pp);) {
		if (p->lgr == lgr) {
			*pp = p->next;
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
		c->hs_reason = USMC_DECL_PEERDECL;
		if (!c->sock)
			orphan_settle(c);
	}
	lgr->refs--;
	lgr_mark_dead(lgr);
}

static void dispatch(struct usmc_lgr *lgr, const struct clc_msg *msg, int fd)
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
		lgr_fail(lgr);
	}
}

static void pump(void)
{
	struct usmc_lgr *lgr, *next;

	for (struct usmc_listener *l = listeners; l; l = l->next)
		if (l->owner == usmc_pid())
			accept_channels(l);
	for (lgr = lgr_first(); lgr; lgr = next) {
		struct clc_msg msg;
		uint32_t reason;
		int fd, rc;

		next = lgr->next;
		if (!lgr_usable(lgr))
			continue;
		while ((rc = lgr_recv(lgr, &msg, &fd, &reason)) > 0) {
			if (reason) {
				lgr_fail(lgr);
				rc = 0;
				break;
			}
			dispatch(lgr, &msg, fd);
			if (lgr->dead)
				break;
		}
		if (rc < 0)
			lgr_fail(lgr);
	}
}

/* ---- server ---- */

/* sock_diag names a socket by its 4-tuple; v4-mapped peers are IPv4 sockets. */
static bool diag_fill_id(uint8_t *family, struct inet_diag_sockid *id, const struct sockaddr *peer,
			 const struct sockaddr *local)
{
	const struct sockaddr_in6 *p6 = (const void *)peer, *l6 = (const void *)local;
	const struct sockaddr_in *p4 = (const void *)peer, *l4 = (const void *)local;

	if (peer->sa_family == AF_INET && local->sa_family == AF_INET) {
		*family = AF_INET;
		id->idiag_sport = p4->sin_port;
		id->idiag_dport = l4->sin_port;
		memcpy(id->idiag_src, &p4->sin_addr, 4);
		memcpy(id->idiag_dst, &l4->sin_addr, 4);
		return true;
	}
	if (peer->sa_family != AF_INET6 || local->sa_family != AF_INET6)
		return false;
	id->idiag_sport = p6->sin6_port;
	id->idiag_dport = l6->sin6_port;
	if (IN6_IS_ADDR_V4MAPPED(&p6->sin6_addr)) {
		*family = AF_INET;
		memcpy(id->idiag_src, &p6->sin6_addr.s6_addr[12], 4);
		memcpy(id->idiag_dst, &l6->sin6_addr.s6_addr[12], 4);
	} else {
		*family = AF_INET6;
		memcpy(id->idiag_src, &p6->sin6_addr, 16);
		memcpy(id->idiag_dst, &l6->sin6_addr, 16);
	}
	return true;
}

/*
 * The socket at the other end of a loopback connection, as sock_diag
 * sees it: its cookie, and its inode (0 while it waits to be accepted).
 * Returns the cookie, 0 if the kernel does not say.
 */
static uint64_t peer_socket_diag(int fd, const struct sockaddr *peer, uint32_t *inode,
				 uint32_t *uid)
{
	struct {
		struct nlmsghdr nlh;
		struct inet_diag_req_v2 req;
	} rq = { 0 };
	struct sockaddr_storage local;
	socklen_t llen = sizeof(local);
	struct sockaddr_nl nl = { .nl_family = AF_NETLINK };
	union {
		struct nlmsghdr h;
		char buf[1024];
	} rsp;
	struct inet_diag_msg *m;
	ssize_t n;

	if (usmc_sys.getsockname(fd, (struct sockaddr *)&local, &llen) || !diag_available())
		return 0;
	rq.nlh.nlmsg_len = sizeof(rq);
	rq.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
	rq.nlh.nlmsg_flags = NLM_F_REQUEST;
	rq.nlh.nlmsg_seq = (uint32_t)fd;
	rq.req.sdiag_protocol = IPPROTO_TCP;
	rq.req.idiag_states = ~0u;
	rq.req.id.idiag_cookie[0] = INET_DIAG_NOCOOKIE;
	rq.req.id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;
	if (!diag_fill_id(&rq.req.sdiag_family, &rq.req.id, peer, (struct sockaddr *)&local))
		return 0;
	if (usmc_sys.sendto(diag_fd, &rq, sizeof(rq), 0, (struct sockaddr *)&nl, sizeof(nl)) < 0)
		return 0;
	do
		n = usmc_sys.recv(diag_fd, &rsp, sizeof(rsp), 0);
	while (n < 0 && errno == EINTR);
	if (n < (ssize_t)NLMSG_LENGTH(sizeof(*m)) || rsp.h.nlmsg_type != SOCK_DIAG_BY_FAMILY)
		return 0;
	m = NLMSG_DATA(&rsp.h);
	if (inode)
		*inode = m->idiag_inode;
	if (uid)
		*uid = m->idiag_uid;
	return (uint64_t)m->id.idiag_cookie[1] << 32 | m->id.idiag_cookie[0];
}

static void set_nodelay(int fd)
{
	int one = 1;

	/* Doorbells are single bytes: Nagle would hold them back. */
	usmc_sys.setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

static uint32_t srv_accept_proposal(struct usmc_sock *ns, struct srv_proposal *p)
{
	struct clc_msg msg = { .type = CLC_ACCEPT, .version = CLC_VERSION, .token = p->token };
	struct usmc_conn *conn = conn_new(ns, p->lgr);
	uint32_t size = usmc_ring_size(ns->sndbuf), reason;
	int new_fd;

	if (p->rcvbuf > size && p->rcvbuf <= CLC_RMB_MAX)
		size = usmc_ring_size((int)p->rcvbuf);
	reason = conn ? lgr_ring_alloc(p->lgr, size, &conn->tx, &msg.accept.rmb, &new_fd)
		      : USMC_DECL_MEM;
	if (!reason && lgr_send(p->lgr, &msg, new_fd) < 0) {
		lgr_ring_free(p->lgr, &conn->tx, NULL, 0);
		reason = USMC_DECL_PEERDECL;
	}
	if (reason) {
		/* The client replays what it wrote into the TCP stream. */
		send_decline(p->lgr, p->token, reason);
		usmc_conn_free(conn);
		lgr_put(p->lgr);
		free(p);
		return reason;
	}
	lgr_ring_handed_over(&conn->tx);
	conn->token = p->token;
	conn->hs_next = srv_conns;
	srv_conns = conn;
	conn->rx = p->ring;
	conn->rx_mapped = true;
	conn->peer_gen = atomic_load(&conn->rx.cdc->gen);
	free(p);
	ns->conn = conn;
	return 0;
}

static uint32_t srv_handshake(struct usmc_sock *ls, struct usmc_sock *ns,
			      const struct sockaddr *peer)
{
	struct usmc_listener *l = ls->listener;
	struct reg_port *reg = reg_port(l->port);
	struct srv_proposal *p;
	uint64_t cookie;
	uint32_t reason, uid = 0;

	if (!usmc_addr_is_local(peer))
		return USMC_DECL_NOSMCDEV;
	if (l->owner != usmc_pid())
		return USMC_DECL_CNFERR; /* the listener's channels are its creator's */
	usmc_lock();
	/* No Proposal was sent toward the port since we last looked: a plain client. */
	if (reg && atomic_load(&reg->proposals) == l->seen && !srv_has(l->port)) {
		usmc_unlock();
		return USMC_DECL_PEERNOSMC;
	}
	pump();
	if (!srv_has(l->port)) {
		usmc_unlock();
		return USMC_DECL_PEERNOSMC;
	}
	cookie = peer_socket_diag(ns->fd, peer, NULL, &uid);
	p = cookie ? srv_take(l->port, NULL, 0, cookie) : NULL;
	/* Cookies are no secret (sock_diag shows them): the socket must be the proposer's user's. */
	if (p && uid != (uint32_t)p->lgr->peer_uid) {
		send_decline(p->lgr, p->token, USMC_DECL_FOREIGN);
		lgr_put(p->lgr);
		free(p);
		p = NULL;
	}
	reason = p ? srv_accept_proposal(ns, p) : USMC_DECL_PEERNOSMC;
	usmc_unlock();
	if (reason)
		return reason;
	set_nodelay(ns->fd);
	usmc_sock_set_state(ns, SOCK_SMC);
	usmc_stats_add(USMC_STAT_SMC_CONNS, 1);
	/* Wakes the client, which may be waiting for our Accept. */
	cdc_ring(ns->fd);
	return 0;
}

int af_accept(struct usmc_sock *ls, int fd, const struct sockaddr *peer, socklen_t peer_len)
{
	struct usmc_sock *ns;
	uint32_t reason;

	(void)peer_len;
	if (ls->state != SOCK_LISTEN) {
		if (ls->reason && (ns = usmc_sock_new(fd, ls->domain)))
			usmc_sock_fallback(ns, ls->reason, false);
		return 0;
	}
	ns = usmc_sock_new(fd, ls->domain);
	if (!ns)
		return 0;
	ns->sndbuf = ls->sndbuf;
	ns->rcvbuf = ls->rcvbuf;
	ns->nodelay = ls->nodelay;
	reason = srv_handshake(ls, ns, peer);
	if (reason)
		usmc_sock_fallback(ns, reason, false);
	return 0;
}

/* ---- client ---- */

static struct usmc_lgr *cli_lgr_get(uint16_t port, struct reg_port *reg, uint32_t *reason)
{
	struct sockaddr_un sun;
	socklen_t sun_len = reg_listener_addr(port, &sun);
	struct ucred cred;
	socklen_t len = sizeof(cred);
	int32_t pid = atomic_load(&reg->pid);
	struct usmc_lgr *lgr;
	int fd;

	for (lgr = lgr_first(); lgr; lgr = lgr->next)
		if (lgr->role == LGR_CLIENT && lgr->port == port && lgr_usable(lgr))
			return lgr;
	fd = usmc_sys.socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		*reason = USMC_DECL_ENV;
		return NULL;
	}
	if (usmc_sys.connect(fd, (struct sockaddr *)&sun, sun_len)) {
		/* The listener died without closing: clear its registry entry. */
		if (errno == ECONNREFUSED || errno == ENOENT)
			atomic_compare_exchange_strong(&reg->pid, &pid, 0);
		usmc_sys.close(fd);
		*reason = USMC_DECL_PEERNOSMC;
		return NULL;
	}
	if (usmc_sys.getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) || cred.uid != getuid()) {
		usmc_sys.close(fd);
		*reason = USMC_DECL_FOREIGN;
		return NULL;
	}
	lgr = lgr_new(fd, LGR_CLIENT, cred.pid, cred.uid);
	if (!lgr) {
		usmc_sys.close(fd);
		*reason = USMC_DECL_MEM;
		return NULL;
	}
	lgr->port = port;
	return lgr;
}

static uint32_t cli_precheck(struct usmc_sock *s, const struct sockaddr *addr, socklen_t len,
			     uint16_t *port)
{
	if (!addr || addr->sa_family != s->domain ||
	    len < (addr->sa_family == AF_INET ? sizeof(struct sockaddr_in)
					      : sizeof(struct sockaddr_in6)))
		return USMC_DECL_CNFERR;
	if (!usmc_policy_allows(addr))
		return USMC_DECL_POLICY;
	if (!usmc_addr_is_local(addr))
		return USMC_DECL_NOSMCDEV;
	*port = ntohs(addr->sa_family == AF_INET ? ((const struct sockaddr_in *)addr)->sin_port
						 : ((const struct sockaddr_in6 *)addr)->sin6_port);
	return 0;
}

static void clc_addr_from(struct clc_addr *a, const struct sockaddr *sa)
{
	a->family = sa->sa_family;
	if (sa->sa_family == AF_INET) {
		a->port = ntohs(((const struct sockaddr_in *)sa)->sin_port);
		memcpy(a->addr, &((const struct sockaddr_in *)sa)->sin_addr, 4);
	} else {
		a->port = ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
		memcpy(a->addr, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
	}
}

static uint32_t cli_propose(struct usmc_sock *s, const struct sockaddr *addr, uint16_t port)
{
	struct clc_msg msg = { .type = CLC_PROPOSAL, .version = CLC_VERSION };
	struct reg_port *reg = reg_port(port);
	socklen_t len = sizeof(msg.proposal.cookie);
	struct usmc_conn *conn;
	struct usmc_lgr *lgr;
	uint32_t reason = 0;
	int new_fd;

	if (!reg)
		return USMC_DECL_ENV;
	if (!atomic_load(&reg->pid))
		return USMC_DECL_PEERNOSMC;
	if (usmc_sys.getsockopt(s->fd, SOL_SOCKET, SO_COOKIE, &msg.proposal.cookie, &len))
		return USMC_DECL_ENV;
	clc_addr_from(&msg.proposal.dst, addr);
	msg.proposal.rcvbuf = s->rcvbuf > 0 ? usmc_ring_size(s->rcvbuf) : 0;
	usmc_lock();
	lgr = cli_lgr_get(port, reg, &reason);
	conn = lgr ? conn_new(s, lgr) : NULL;
	if (lgr && !conn)
		reason = USMC_DECL_MEM;
	if (conn)
		reason = lgr_ring_alloc(lgr, usmc_ring_size(s->sndbuf), &conn->tx, &msg.proposal.rmb,
					&new_fd);
	if (conn && !reason) {
		msg.token = conn->token = ++next_token;
		if (lgr_send(lgr, &msg, new_fd) < 0) {
			lgr_ring_free(lgr, &conn->tx, NULL, 0);
			lgr_fail(lgr);
			reason = USMC_DECL_PEERNOSMC;
		}
	}
	if (reason) {
		usmc_conn_free(conn);
		usmc_unlock();
		return reason;
	}
	lgr_ring_handed_over(&conn->tx);
	lgr->refs++;
	conn->hs_next = cli_pending;
	cli_pending = conn;
	/* After the message: a server that sees the count finds the Proposal. */
	atomic_fetch_add(&reg->proposals, 1);
	usmc_unlock();
	s->conn = conn;
	usmc_sock_set_state(s, SOCK_PROPOSED);
	return 0;
}

/* The TCP connect failed: withdraw the Proposal. */
static void cli_abandon(struct usmc_sock *s)
{
	struct usmc_conn *conn = s->conn;

	usmc_lock();
	cli_find(conn->lgr, conn->token, true);
	send_decline(conn->lgr, conn->token, USMC_DECL_PEERDECL);
	conn->rx_mapped = false;
	conn_release(conn);
	usmc_unlock();
	s->conn = NULL;
	usmc_sock_set_state(s, SOCK_PLAIN);
}

int af_connect(struct usmc_sock *s, const struct sockaddr *addr, socklen_t len)
{
	uint16_t port = 0;
	uint32_t reason = cli_precheck(s, addr, len, &port);
	int rc, err;

	if (!reason)
		reason = cli_propose(s, addr, port);
	if (reason) {
		usmc_sock_fallback(s, reason, false);
		return usmc_sys.connect(s->fd, addr, len);
	}
	rc = usmc_sys.connect(s->fd, addr, len);
	if (rc == 0 || errno == EINPROGRESS || errno == EINTR)
		return rc;
	err = errno;
	cli_abandon(s);
	errno = err;
	return -1;
}

static void cli_finish_accept(struct usmc_sock *s)
{
	struct usmc_conn *conn = s->conn;

	usmc_lock();
	cli_find(conn->lgr, conn->token, true);
	/* Confirm: we are in shared memory now; a Decline: the server must let go. */
	if (conn->rx_mapped)
		send_clc(conn->lgr, CLC_CONFIRM, conn->token, 0);
	else
		send_clc(conn->lgr, CLC_DECLINE, conn->token, conn->hs_reason);
	usmc_unlock();
	set_nodelay(s->fd);
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

	pthread_mutex_lock(&conn->tx_lock);
	usmc_tx_replay(s);
	if (s->shut_wr)
		usmc_sys.shutdown(s->fd, SHUT_WR);
	usmc_lock();
	cli_find(conn->lgr, conn->token, true);
	conn->rx_mapped = false;
	s->conn = NULL;
	usmc_sock_fallback(s, reason, by_peer);
	pthread_mutex_unlock(&conn->tx_lock);
	conn_release(conn);
	usmc_unlock();
}

/*
 * True when no answer can come any more: the server's end of our TCP
 * connection was accepted, a CLC timeout ago, by a process that did not
 * answer (one that shares the listener without holding our Proposal).
 */
static bool server_end_orphaned(struct usmc_sock *s)
{
	struct sockaddr_storage peer;
	socklen_t len = sizeof(peer);
	uint32_t inode = 0;

	if (getpeername(s->fd, (struct sockaddr *)&peer, &len))
		return false;
	usmc_lock();
	peer_socket_diag(s->fd, (struct sockaddr *)&peer, &inode, NULL);
	usmc_unlock();
	return inode != 0;
}

/* True once the server can no longer answer on this connection. */
static bool tcp_gone(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLRDHUP };

	return usmc_sys.poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

/* Reads the channels; the answer to our Proposal, or 0 if none came yet. */
static int hs_answer(struct usmc_conn *conn)
{
	int result;

	usmc_lock();
	pump();
	result = conn->hs_result;
	usmc_unlock();
	return result;
}

/*
 * Gives up on an answer that cannot come: our connection was accepted, a
 * CLC timeout ago or more, by a process that did not answer (one sharing
 * the listener without holding our Proposal).  True if it gave up.
 */
static bool hs_give_up_if_orphaned(struct usmc_sock *s)
{
	struct usmc_conn *conn = s->conn;
	int64_t now = usmc_now_ms();

	if (!conn->hs_check_at)
		conn->hs_check_at = now + usmc_clc_timeout_ms();
	if (now < conn->hs_check_at)
		return false;
	conn->hs_check_at = now + usmc_clc_timeout_ms() / 4 + 1;
	if (!server_end_orphaned(s))
		return false;
	usmc_lock();
	send_decline(conn->lgr, conn->token, USMC_DECL_TIMEOUT_CLC);
	usmc_unlock();
	conn->hs_result = CLC_DECLINE;
	conn->hs_reason = USMC_DECL_TIMEOUT_CLC;
	conn->hs_local = true;
	return true;
}

int af_resolve(struct usmc_sock *s, bool wait)
{
	struct usmc_conn *conn = s->conn;
	int result;

	for (;;) {
		struct pollfd p[2] = { { .fd = s->fd, .events = POLLIN },
				       { .fd = conn->lgr->chan, .events = POLLIN } };

		result = hs_answer(conn);
		if (result)
			break;
		if (tcp_gone(s->fd)) {
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
		if (hs_give_up_if_orphaned(s)) {
			result = CLC_DECLINE;
			break;
		}
		if (!wait) {
			errno = EAGAIN;
			return -1;
		}
		if (usmc_sys.poll(p, 2, 200) < 0)
			return -1;
	}
	if (result == CLC_ACCEPT)
		cli_finish_accept(s);
	else
		cli_finish_decline(s);
	return 0;
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

/* Closing while the answer is pending: the ring stays for the server. */
void af_orphan(struct usmc_sock *s)
{
	struct usmc_conn *conn = s->conn;

	usmc_lock();
	conn->sock = NULL;
	conn->diag = NULL;
	atomic_fetch_or(&conn->tx.cdc->flags, CDC_PEER_DONE_WRITING | CDC_PEER_CONN_CLOSED);
	s->conn = NULL;
	usmc_unlock();
}
