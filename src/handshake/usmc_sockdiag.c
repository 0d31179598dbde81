// SPDX-License-Identifier: MIT
/*
 * The sock_diag client (net/smc's smc_diag, asked the other way): which
 * kernel socket is at the other end of a loopback connection, by its
 * 4-tuple.  Its cookie finds a client's Proposal at accept (usmc_listen.c),
 * its inode tells a client whether the server has accepted
 * (usmc_connect.c), and the rendezvous directory proves with it that a
 * channel's Proposal comes from the accepted connection's peer.
 */
#include <errno.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#include "usmc_addr.h"
#include "usmc_proc.h"
#include "usmc_seg.h"
#include "usmc_sockdiag.h"
#include "usmc_sys.h"

static int diag_fd = -1;
static pid_t diag_pid;
static uint32_t diag_seq;

/*
 * One sock_diag socket per process.  A forked child that used its
 * parent's would share one receive queue with it, and each could read the
 * other's answer: a server would take the cookie of the wrong socket, a
 * client the inode of the wrong one.  The child opens its own and leaves
 * the inherited descriptor alone, as it does the parent's usmc-stat table.
 */
bool af_diag_available(void)
{
	if (diag_fd >= 0 && diag_pid != usmc_pid())
		diag_fd = -1;
	if (diag_fd < 0) {
		diag_fd = usmc_fd_lift(
			usmc_sys.socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG));
		diag_pid = usmc_pid();
	}
	return diag_fd >= 0;
}

/* sock_diag names a socket by its 4-tuple; v4-mapped peers are IPv4 sockets. */
static bool diag_fill_id(uint8_t *family, struct inet_diag_sockid *id, const struct sockaddr *peer,
			 const struct sockaddr *local)
{
	uint8_t src[16], dst[16];
	int pf, lf;

	if (peer->sa_family != local->sa_family)
		return false;
	pf = usmc_addr_plain(peer, src, &id->idiag_sport);
	lf = usmc_addr_plain(local, dst, &id->idiag_dport);
	if (!pf || pf != lf)
		return false;
	*family = (uint8_t)pf;
	memcpy(id->idiag_src, src, 16);
	memcpy(id->idiag_dst, dst, 16);
	return true;
}

/*
 * The answer to request seq.  The kernel answers before sendto returns,
 * so it is queued already: anything before it is the answer to a request
 * whose reader never came back (a signal that jumped away), and is dropped.
 */
static ssize_t diag_recv_answer(struct nlmsghdr *h, size_t size, uint32_t seq)
{
	for (int stale = 0; stale < 64; stale++) {
		ssize_t n;

		do
			n = usmc_sys.recv(diag_fd, h, size, MSG_DONTWAIT);
		while (n < 0 && errno == EINTR);
		if (n < (ssize_t)sizeof(*h) || h->nlmsg_seq == seq)
			return n;
	}
	return -1;
}

/*
 * The socket at the other end of a loopback connection, as sock_diag
 * sees it: its cookie, and its inode (0 while it waits to be accepted).
 * Returns the cookie, 0 if the kernel does not say.
 */
static int socket_diag(const struct sockaddr *local, const struct sockaddr *remote,
		       struct inet_diag_msg *out);

/* The socket at the other end of fd's connection to peer: as socket_diag. */
static int peer_diag(int fd, const struct sockaddr *peer, struct inet_diag_msg *m)
{
	struct sockaddr_storage local;
	socklen_t llen = sizeof(local);

	if (usmc_sys.getsockname(fd, (struct sockaddr *)&local, &llen))
		return -1;
	return socket_diag(peer, (struct sockaddr *)&local, m);
}

/* What a caller asked of a socket sock_diag found: its inode and owner; its cookie. */
static uint64_t diag_said(const struct inet_diag_msg *m, uint32_t *inode, uint32_t *uid)
{
	if (inode)
		*inode = m->idiag_inode;
	if (uid)
		*uid = m->idiag_uid;
	return (uint64_t)m->id.idiag_cookie[1] << 32 | m->id.idiag_cookie[0];
}

uint64_t af_peer_socket_diag(int fd, const struct sockaddr *peer, uint32_t *inode,
				 uint32_t *uid)
{
	struct inet_diag_msg m;

	return peer_diag(fd, peer, &m) == 1 ? diag_said(&m, inode, uid) : 0;
}

enum af_server_end af_server_end(int fd, int32_t peer_pid)
{
	struct sockaddr_storage peer;
	socklen_t len = sizeof(peer);
	struct inet_diag_msg m;
	uint32_t inode = 0;
	int state = 0;

	if (getpeername(fd, (struct sockaddr *)&peer, &len))
		return END_WAITING;
	/* In the accept queue: ESTABLISHED (or CLOSE_WAIT), inode 0; a request is SYN_RECV. */
	usmc_lock();
	if (peer_diag(fd, (struct sockaddr *)&peer, &m) == 1) {
		state = m.idiag_state;
		inode = m.idiag_inode;
	}
	usmc_unlock();
	if (state != TCP_ESTABLISHED && state != TCP_CLOSE_WAIT && !inode)
		return END_NONE;
	if (!inode)
		return END_WAITING; /* still in the accept queue */
	return proc_holds_socket(peer_pid, inode) ? END_WITH_PEER : END_ELSEWHERE;
}

/* Sends a TCP request of len bytes, nlh and then req, with the next sequence number. */
static bool diag_send(struct nlmsghdr *nlh, size_t len, struct inet_diag_req_v2 *req,
		      uint16_t flags)
{
	struct sockaddr_nl nl = { .nl_family = AF_NETLINK };

	nlh->nlmsg_len = (uint32_t)len;
	nlh->nlmsg_type = SOCK_DIAG_BY_FAMILY;
	nlh->nlmsg_flags = NLM_F_REQUEST | flags;
	nlh->nlmsg_seq = ++diag_seq;
	req->sdiag_protocol = IPPROTO_TCP;
	return usmc_sys.sendto(diag_fd, nlh, len, 0, (struct sockaddr *)&nl, sizeof(nl)) >= 0;
}

/*
 * The socket of local and remote: 1 and its message in *m, 0 if there is
 * none (the kernel says so, or names the port's listener instead), -1 if
 * sock_diag did not answer.
 */
static int socket_diag(const struct sockaddr *local, const struct sockaddr *remote,
		       struct inet_diag_msg *out)
{
	struct {
		struct nlmsghdr nlh;
		struct inet_diag_req_v2 req;
	} rq = { 0 };
	union {
		struct nlmsghdr h;
		char buf[1024];
	} rsp;
	struct inet_diag_msg *m;
	ssize_t n;

	if (!af_diag_available())
		return -1;
	rq.req.idiag_states = ~0u;
	rq.req.id.idiag_cookie[0] = INET_DIAG_NOCOOKIE;
	rq.req.id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;
	if (!diag_fill_id(&rq.req.sdiag_family, &rq.req.id, local, remote) ||
	    !diag_send(&rq.nlh, sizeof(rq), &rq.req, 0))
		return -1;
	n = diag_recv_answer(&rsp.h, sizeof(rsp), rq.nlh.nlmsg_seq);
	if (n >= (ssize_t)NLMSG_LENGTH(sizeof(struct nlmsgerr)) && rsp.h.nlmsg_type == NLMSG_ERROR &&
	    ((struct nlmsgerr *)NLMSG_DATA(&rsp.h))->error == -ENOENT)
		return 0;
	if (n < (ssize_t)NLMSG_LENGTH(sizeof(*m)) || rsp.h.nlmsg_type != SOCK_DIAG_BY_FAMILY)
		return -1;
	m = NLMSG_DATA(&rsp.h);
	/* Without a connection of that 4-tuple the kernel answers with the listener of its port. */
	if (m->idiag_state == TCP_LISTEN)
		return 0;
	*out = *m;
	return 1;
}

uint64_t af_socket_diag(const struct sockaddr *local, const struct sockaddr *remote,
			uint32_t *inode, uint32_t *uid)
{
	struct inet_diag_msg m;

	return socket_diag(local, remote, &m) == 1 ? diag_said(&m, inode, uid) : 0;
}

bool af_peer_end_here(const struct sockaddr *local)
{
	struct {
		struct nlmsghdr nlh;
		struct inet_diag_req_v2 req;
		struct nlattr attr;
		struct inet_diag_bc_op bc[2];
	} rq = { 0 };
	union {
		struct nlmsghdr h;
		char buf[8192];
	} rsp;
	uint8_t addr[16];
	uint16_t port;
	bool here = false, done = false;
	int family = usmc_addr_plain(local, addr, &port);

	if (!family || !af_diag_available())
		return false;
	rq.req.sdiag_family = (uint8_t)family;
	rq.req.idiag_states = 1u << TCP_ESTABLISHED | 1u << TCP_SYN_RECV;
	/* The kernel's filter: a peer port of ours (ss's "dport = :PORT"). */
	rq.attr.nla_len = sizeof(rq.attr) + sizeof(rq.bc);
	rq.attr.nla_type = INET_DIAG_REQ_BYTECODE;
	rq.bc[0] = (struct inet_diag_bc_op){ INET_DIAG_BC_D_EQ, sizeof(rq.bc), sizeof(rq.bc) + 4 };
	rq.bc[1] = (struct inet_diag_bc_op){ 0, 0, ntohs(port) };
	if (!diag_send(&rq.nlh, sizeof(rq), &rq.req, NLM_F_DUMP))
		return false;
	/* The whole answer is read, so that the next request finds none of it. */
	while (!done) {
		ssize_t n = diag_recv_answer(&rsp.h, sizeof(rsp), rq.nlh.nlmsg_seq);

		if (n <= 0)
			break;
		for (struct nlmsghdr *h = &rsp.h; NLMSG_OK(h, n); h = NLMSG_NEXT(h, n)) {
			const struct inet_diag_msg *m = NLMSG_DATA(h);

			if (h->nlmsg_type == NLMSG_DONE || h->nlmsg_type == NLMSG_ERROR) {
				done = true;
				break;
			}
			if (h->nlmsg_len >= NLMSG_LENGTH(sizeof(*m)) && m->id.idiag_dport == port &&
			    !memcmp(m->id.idiag_dst, addr, family == AF_INET ? 4 : 16))
				here = true;
		}
	}
	return here;
}

/*
 * No process holds the socket any more: sock_diag knows no socket of its
 * addresses with its cookie, or that socket was closed (an orphan, whose
 * inode is 0, while it finishes with its peer).
 */
static bool diag_holder_gone(const struct slot_holder *h)
{
	struct inet_diag_msg m;
	int found = socket_diag((const struct sockaddr *)&h->local, (const struct sockaddr *)&h->peer, &m);

	/* No answer is no word: the slot waits. */
	if (found < 0)
		return false;
	return !found || ((uint64_t)m.id.idiag_cookie[1] << 32 | m.id.idiag_cookie[0]) != h->cookie ||
	       !m.idiag_inode;
}

void af_diag_watch_holders(void)
{
	atomic_store(&seg_holder_gone, diag_holder_gone);
}
