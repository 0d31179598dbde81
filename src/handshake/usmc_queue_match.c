// SPDX-License-Identifier: MIT
/*
 * Whether a Proposal in a shared backlog is the one a holder looks for:
 * by the cookie of the client's socket, which sock_diag gave; by the TCP
 * socket that came with it, across network namespaces; or by the end of
 * the connection that a client gone since published with its ring.
 */
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "usmc_channel.h"
#include "usmc_queue_match.h"
#include "usmc_rendezvous.h"
#include "usmc_rendezvous_proof.h"
#include "usmc_seg_peer.h"
#include "usmc_sys.h"

/*
 * Whether channel ch, of our own user, brings the ring of the orphan w
 * looks for: its client closed, or is gone (killed), the channel's other
 * end closed with it.
 */
static bool match_orphan(const struct wanted *w, int ch, const struct clc_msg *msg)
{
	struct pollfd p = { .fd = ch, .events = POLLRDHUP };
	struct ucred cred;
	socklen_t len = sizeof(cred);
	int fds[2], n;
	bool is = false, gone;

	if (usmc_sys.getsockopt(ch, SOL_SOCKET, SO_PEERCRED, &cred, &len) || cred.uid != geteuid())
		return false;
	gone = usmc_sys.poll(&p, 1, 0) == 1 && (p.revents & (POLLHUP | POLLRDHUP));
	n = chan_peek_fds(ch, fds, 2);
	if (n >= 1)
		is = seg_peer_orphan_is(fds[0], &msg->proposal.rmb, w->orphan_addr, w->orphan_port,
					gone);
	for (int i = 0; i < n; i++)
		usmc_sys.close(fds[i]);
	return is;
}

bool queue_match(struct wanted *w, const struct usmc_listener *l, int ch, const struct clc_msg *msg)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);
	enum rdv_proof proof;

	if (w->orphan && msg->proposal.dst.port == l->port && match_orphan(w, ch, msg))
		w->cookie = msg->proposal.cookie;
	if (w->acc < 0)
		return msg->proposal.dst.port == l->port && msg->proposal.cookie == w->cookie;
	/* By proof: the port it names is the one it dialled, which a destination NAT may change. */
	if (usmc_sys.getsockopt(ch, SOL_SOCKET, SO_PEERCRED, &cred, &len))
		return false;
	proof = rdv_prove(ch, msg, cred.uid, w->acc);
	if (proof == PROOF_YES)
		w->cookie = msg->proposal.cookie;
	if (proof == PROOF_SNAT)
		w->snat = true;
	return proof == PROOF_YES;
}
