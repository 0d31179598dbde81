// SPDX-License-Identifier: MIT
/*
 * Which Proposal is an accepted connection's (the heart of net/smc's
 * smc_listen_work, where the CLC Proposal comes on the connection itself):
 * here it comes on a channel, and the accepter finds it by the cookie of
 * the client's socket (sock_diag), in the channels it reads or in the
 * backlog a shared listener's holders share (usmc_queue.c); across
 * network namespaces by the TCP socket that came with it
 * (usmc_rendezvous_proof.c); and, once the client's socket is gone, by
 * the end of the connection its client published with the ring it left
 * behind (af_orphan).
 */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include "usmc.h"
#include "usmc_chan.h"
#include "usmc_fork.h"
#include "usmc_listener.h"
#include "usmc_lookup.h"
#include "usmc_queue.h"
#include "usmc_registry.h"
#include "usmc_sock.h"
#include "usmc_sockdiag.h"
#include "usmc_sys.h"
#include "af_usmc.h"

/* At most the Unix listener's backlog twice over, per accept. */
#define CHAN_BATCHES_MAX 512

bool af_conn_ended_quiet(int fd)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);
	int queued = 0;

	/*
	 * Closed with a FIN, as such a client's close does: a reset (SO_LINGER
	 * {1, 0}) throws the data away with TCP too, and the program reads
	 * ECONNRESET.
	 */
	return !usmc_sys.getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) &&
	       ti.tcpi_state == TCP_CLOSE_WAIT && !usmc_sys.ioctl(fd, FIONREAD, &queued) && !queued;
}

/* The listed Proposal of the connection ns, taken; the cookie is asked for once. */
static struct srv_proposal *srv_find(struct usmc_listener *l, struct usmc_sock *ns,
				     const struct sockaddr *peer, uint64_t *cookie, uint32_t *uid)
{
	if (!af_srv_has(l->port))
		return NULL;
	if (!*cookie)
		*cookie = af_peer_socket_diag(ns->fd, peer, NULL, uid);
	return *cookie ? af_srv_take(l->port, NULL, 0, *cookie) : NULL;
}

/*
 * The Proposal of cookie, read from the channel of lgr, taken out of the
 * backlog.  A client that closed before the answer and is gone since
 * left its channel ended behind its Proposal, and its ring to us
 * (af_orphan): that Proposal is taken all the same.
 */
static struct srv_proposal *srv_pump_take(struct usmc_listener *l, struct usmc_lgr *lgr,
					  uint64_t cookie)
{
	af_pump_lgr(lgr);
	return af_srv_take(l->port, NULL, 0, cookie);
}

/*
 * The Proposal of the connection ns, taken: from the channels we have and
 * take (our own listener), or from the backlog the listener's holders
 * share (usmc_queue.c).  NULL if there is none, *reason set if the
 * look waited a CLC timeout for it.
 */
struct srv_proposal *af_lookup(struct usmc_listener *l, struct reg_port *reg, struct usmc_sock *ns,
			       const struct sockaddr *peer, uint64_t *cookie, uint32_t *uid,
			       uint32_t *reason)
{
	struct srv_proposal *p = NULL;
	bool mine = l->owner == usmc_pid();

	/*
	 * A forked holder reads no channel but those it took: one a
	 * connection's, or a client's link group that it proposed on straight
	 * to the maker before the listener was shared, which may bring the
	 * Proposals of later connections too.
	 */
	if (mine && af_pump_lgrs_first()) {
		/* Proposals come in the order of their connections: the first is most often ours. */
		p = srv_find(l, ns, peer, cookie, uid);
		if (!p)
			af_pump_lgrs();
	} else if (!mine) {
		af_pump_direct();
	}
	if (!p)
		p = srv_find(l, ns, peer, cookie, uid);
	if (!p && af_listener_shared(l)) {
		struct usmc_lgr *lgr;

		if (!*cookie)
			*cookie = af_peer_socket_diag(ns->fd, peer, NULL, uid);
		lgr = *cookie ? af_queue_find(l, reg, *cookie, reason) : NULL;
		return lgr ? srv_pump_take(l, lgr, *cookie) : NULL;
	}
	/*
	 * New channels only if ours is not on one we have, a batch at a time:
	 * anyone may fill the queue.  More only while Proposals of our own
	 * user, which nobody else can count, are still unread: then one of
	 * them may be this connection's, whose client waits for our answer.
	 */
	for (int batch = 0; !p && batch < CHAN_BATCHES_MAX; batch++) {
		bool more;

		if (af_accept_channels(l, &more) > 0) {
			af_pump_lgrs();
			p = srv_find(l, ns, peer, cookie, uid);
		}
		if (!more || !reg ||
		    atomic_load(&reg->proposals) == atomic_load_explicit(&l->seen, memory_order_acquire))
			break;
	}
	return p;
}

/*
 * No socket of the client's is left to prove a Proposal by: the client
 * closed before our answer, and its socket's FIN_WAIT2 ran out before we
 * accepted (tcp_fin_timeout; TCP keeps the data of such a connection for
 * its accept however late).  It published its end of the connection: its
 * Proposal is taken by that, if nothing came on TCP, where such a client
 * writes nothing before the answer, but its FIN.  A shared listener's is
 * still in the backlog the holders share, unless we read it already.
 */
struct srv_proposal *af_lookup_orphan(struct usmc_listener *l, struct reg_port *reg,
				      struct usmc_sock *ns, const struct sockaddr *peer, uint32_t *uid)
{
	struct srv_proposal *p = NULL;
	struct usmc_lgr *lgr;
	uint64_t cookie = 0;

	if ((!af_srv_has(l->port) && !af_listener_shared(l)) || !af_conn_ended_quiet(ns->fd))
		return NULL;
	if (af_srv_has(l->port))
		p = af_srv_take_orphan(l->port, peer);
	if (!p && reg && af_listener_shared(l) &&
	    (lgr = af_queue_find_orphan(l, reg, peer, &cookie)))
		p = srv_pump_take(l, lgr, cookie);
	if (p)
		*uid = (uint32_t)p->lgr->peer_uid;
	return p;
}

/*
 * The Proposal of a client of another network namespace, taken: from the
 * rendezvous directory's backlog, which every holder of the listener
 * shares, proven by the TCP socket that came with it (usmc_rendezvous.c).
 */
struct srv_proposal *af_lookup_rdv(struct usmc_listener *l, struct reg_port *reg,
				   struct usmc_sock *ns, uint32_t *uid, uint32_t *reason)
{
	struct srv_proposal *p = NULL;
	uint64_t cookie = 0;
	bool snat = false;
	struct usmc_lgr *lgr = af_queue_find_rdv(l, reg, ns->fd, &cookie, &snat);

	if (lgr)
		p = srv_pump_take(l, lgr, cookie);
	/* The proof was of the proposer's user's socket. */
	if (p)
		*uid = (uint32_t)p->lgr->peer_uid;
	*reason = snat ? USMC_DECL_SNAT : USMC_DECL_PEERNOSMC;
	return p;
}
