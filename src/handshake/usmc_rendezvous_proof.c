/* SPDX-License-Identifier: MIT */
/*
 * The proof across network namespaces: which Proposal is for a connection
 * a holder accepted.
 *
 * Nothing can look up a socket of another namespace (sock_diag, socket
 * cookies), and NAT rewrites addresses, so the holder proves which
 * Proposal is its own with the TCP socket that came with it: the
 * proposer's, owned by the proposer's user, whose local address is the
 * accepted socket's peer, and whose peer is the accepted socket's local
 * address or, through a destination NAT, the address the client dialled.
 * No byte goes into either stream for it.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "usmc_addr.h"
#include "usmc_channel.h"
#include "usmc_rendezvous.h"
#include "usmc_rendezvous_proof.h"
#include "usmc_sockdiag.h"
#include "usmc_sys.h"

static bool same_addr(const struct sockaddr *x, const struct sockaddr *y)
{
	uint8_t a[16], b[16];
	uint16_t pa, pb;

	return usmc_addr16(x, a, &pa) && usmc_addr16(y, b, &pb) && pa == pb && !memcmp(a, b, 16);
}

static uint16_t port_of(const struct sockaddr *sa)
{
	uint8_t a[16];
	uint16_t port = 0;

	usmc_addr16(sa, a, &port);
	return port;
}

static bool same_clc_addr(const struct sockaddr *x, const struct clc_addr *c)
{
	struct sockaddr_storage ss = { .ss_family = c->family };

	if (c->family == AF_INET) {
		((struct sockaddr_in *)&ss)->sin_port = htons(c->port);
		memcpy(&((struct sockaddr_in *)&ss)->sin_addr, c->addr, 4);
	} else {
		((struct sockaddr_in6 *)&ss)->sin6_port = htons(c->port);
		memcpy(&((struct sockaddr_in6 *)&ss)->sin6_addr, c->addr, 16);
	}
	return same_addr(x, (struct sockaddr *)&ss);
}

/*
 * Whether a socket that dialled tp from tl may be the other end of the
 * connection we accepted (al, from ap) with its source rewritten on the
 * way: it dialled our very address (a masquerade); or, through a
 * destination NAT, its source port is our peer's (a masquerade keeps a
 * source port that is free), or our peer is the address it dialled (a
 * proxy there relayed it: docker's userland proxy connects from the
 * bridge's address, which a container dials for a published port).  Not
 * a proof: a refusal only makes the Proposal's connection TCP, whichever
 * holder it went to.
 */
static bool rewritten(const struct sockaddr *tp, const struct sockaddr *tl,
		      const struct sockaddr *al, const struct sockaddr *ap)
{
	uint8_t a[16], b[16];
	uint16_t pa, pb;

	if (same_addr(tp, al) || port_of(tl) == port_of(ap))
		return true;
	return usmc_addr16(tp, a, &pa) && usmc_addr16(ap, b, &pb) && !memcmp(a, b, 16);
}

/*
 * The proof for a passed TCP socket tcp and our accepted socket acc: tcp
 * is a TCP socket of the proposer's user, named by the Proposal's cookie,
 * connected to the destination the Proposal names, and its local address
 * is acc's peer: the two ends of one connection.  Its peer is acc's local
 * address, or under a destination NAT the address the client dialled.
 */
static enum rdv_proof prove(int tcp, const struct clc_msg *msg, uid_t uid, int acc)
{
	struct sockaddr_storage tl, tp, al, ap;
	socklen_t len = sizeof(tl);
	struct tcp_info ti = { 0 };
	uint64_t cookie = 0;
	int proto = 0;
	struct stat st;

	if (fstat(tcp, &st) || !S_ISSOCK(st.st_mode) || st.st_uid != uid || !rdv_uid_mapped(uid))
		return PROOF_NO;
	if (usmc_sys.getsockopt(tcp, SOL_SOCKET, SO_PROTOCOL, &proto, &(socklen_t){ sizeof(proto) }) ||
	    proto != IPPROTO_TCP ||
	    usmc_sys.getsockopt(tcp, SOL_SOCKET, SO_COOKIE, &cookie, &(socklen_t){ sizeof(cookie) }) ||
	    cookie != msg->proposal.cookie)
		return PROOF_NO;
	if (usmc_sys.getsockname(tcp, (struct sockaddr *)&tl, &len) ||
	    getpeername(tcp, (struct sockaddr *)&tp, &(socklen_t){ sizeof(tp) }) ||
	    usmc_sys.getsockname(acc, (struct sockaddr *)&al, &(socklen_t){ sizeof(al) }) ||
	    getpeername(acc, (struct sockaddr *)&ap, &(socklen_t){ sizeof(ap) }) ||
	    !same_clc_addr((struct sockaddr *)&tp, &msg->proposal.dst))
		return PROOF_NO;
	if (same_addr((struct sockaddr *)&tl, (struct sockaddr *)&ap))
		return PROOF_YES;
	/*
	 * Looks like ours, connected, and yet no connection from its address
	 * reached us: its source was rewritten on the way.  (One of ours that
	 * is still to be accepted sock_diag would find.)
	 */
	if (!rewritten((struct sockaddr *)&tp, (struct sockaddr *)&tl, (struct sockaddr *)&al,
		       (struct sockaddr *)&ap) ||
	    usmc_sys.getsockopt(tcp, IPPROTO_TCP, TCP_INFO, &ti, &(socklen_t){ sizeof(ti) }) ||
	    ti.tcpi_state != TCP_ESTABLISHED ||
	    af_socket_diag((struct sockaddr *)&al, (struct sockaddr *)&tl, NULL, NULL))
		return PROOF_NO;
	return PROOF_SNAT;
}

enum rdv_proof rdv_prove(int ch, const struct clc_msg *msg, uid_t uid, int acc)
{
	int fds[2] = { -1, -1 }, n = chan_peek_fds(ch, fds, 2);
	enum rdv_proof r = n == 2 ? prove(fds[1], msg, uid, acc) : PROOF_NO;

	for (int i = 0; i < n; i++)
		usmc_sys.close(fds[i]);
	return r;
}
