// SPDX-License-Identifier: MIT
/*
 * The client's side of the handshake (net/smc's smc_connect).
 *
 * If the registry shows a usmc listener on the destination port of a
 * local address, find or make the link group to its process, send a
 * Proposal naming our TCP socket by its cookie, then connect().  The
 * connection is usable at once: what we write waits in our ring until the
 * server reads it, or is replayed into the TCP stream if it declines.
 * The answer is read inside our later calls (af_settle).  Once the
 * server may have taken the Proposal, the outcome is the server's word:
 * a client that waited too long withdraws the Proposal and takes the
 * answer, or resets the connection (usmc_clc.h, withdrawal).
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "usmc.h"
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
#include "usmc_rendezvous_list.h"
#include "usmc_rendezvous_taken.h"
#include "usmc_rx.h"
#include "usmc_seg.h"
#include "usmc_settle.h"
#include "usmc_sock.h"
#include "usmc_sockdiag.h"
#include "usmc_stats.h"
#include "usmc_sys.h"
#include "usmc_tx.h"
#include "af_usmc.h"

static uint64_t next_token;

static uint32_t cli_precheck(struct usmc_sock *s, const struct sockaddr *addr, socklen_t len,
			     uint16_t *port, bool *remote)
{
	if (!addr || addr->sa_family != s->domain ||
	    len < (addr->sa_family == AF_INET ? sizeof(struct sockaddr_in)
					      : sizeof(struct sockaddr_in6)))
		return USMC_DECL_CNFERR;
	if (!usmc_policy_allows(addr))
		return USMC_DECL_POLICY;
	/* Not ours: perhaps another network namespace's, through the rendezvous directory. */
	*remote = !usmc_addr_is_local(addr);
	if (*remote && !rdv_enabled())
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

static uint32_t cli_propose(struct usmc_sock *s, const struct sockaddr *addr, uint16_t port,
			    bool remote)
{
	struct clc_msg msg;
	struct reg_port *reg = reg_port(port);
	socklen_t len = sizeof(msg.proposal.cookie);
	struct usmc_conn *conn;
	struct usmc_lgr *lgr;
	uint32_t reason = 0;
	const uid_t *other_users;
	struct rdv_targets targets;
	bool own_user, oneshot, retried = false;
	int new_fd;

	if (!reg)
		return usmc_env_fail("registry");
	/*
	 * Toward another namespace, as toward a shared listener: a channel of
	 * our own in the backlog of each listener that may have the connection.
	 */
	if (remote) {
		reason = rdv_targets_find(addr, port, &targets);
		/*
		 * Toward a namespace of this host, whose proxy may take the
		 * connection (usmc_rendezvous_taken.c), whether or not a listener
		 * of ours is there: the proxy learns its redirect from us.
		 */
		if (targets.here)
			rdv_taken_active();
		if (reason)
			return reason;
	}
	own_user = !remote && atomic_load(&reg->pid) != 0;
	if (!remote && !own_user && !usmc_policy_other_users(&other_users))
		return USMC_DECL_PEERNOSMC;
	oneshot = remote || (own_user && (atomic_load(&reg->flags) & REG_SHARED));
	/* Only now: clearing the message costs a plain peer's connection for nothing. */
	msg = (struct clc_msg){ .type = CLC_PROPOSAL, .version = CLC_VERSION };
	if (usmc_sys.getsockopt(s->fd, SOL_SOCKET, SO_COOKIE, &msg.proposal.cookie, &len))
		return usmc_env_fail("getsockopt(SO_COOKIE)");
	clc_addr_from(&msg.proposal.dst, addr);
	msg.proposal.rcvbuf = s->rcvbuf > 0 ? usmc_ring_size(s->rcvbuf) : 0;
	usmc_lock();
	lgr = oneshot ? af_queue_pair(port, &reason) : af_cli_lgr_get(port, reg, own_user, &reason);
	/* Its segment may serve another connection to the same listener's holders. */
	if (lgr && remote) {
		lgr->rdv = true;
		rdv_reuse_key(&targets, port, &lgr->reuse);
	} else if (lgr && oneshot) {
		lgr->reuse = (struct reuse_key){ REUSE_LISTENER, reg_owner(), atomic_load(&reg->pid),
						 port, 0 };
	}
	/*
	 * A burst of connections leaves Accepts unread: read them now and then,
	 * or the server, whose channel toward us is full, waits on us.  A
	 * server that does not accept as fast leaves our Proposals unread: the
	 * next go on another link group (lgr_crowded).  The Accepts of the
	 * link groups the burst left still come: read them too.
	 */
	if (lgr && !oneshot && ++lgr->unread_answers >= 32) {
		lgr->unread_answers = 0;
		af_pump_answers(lgr);
		if (!af_pump_lgr(lgr) || lgr_crowded(lgr))
			lgr = af_cli_lgr_get(port, reg, own_user, &reason);
	}
	/* Its reader declined us for good (af_usmc.c, on_decline), proven: ask no more. */
	if (lgr && !oneshot && lgr->refused) {
		reason = lgr->refused;
		lgr = NULL;
	}
again:
	conn = lgr ? af_conn_new(s, lgr) : NULL;
	if (lgr && !conn)
		reason = USMC_DECL_MEM;
	if (conn) {
		uint32_t size, first;

		usmc_ring_sizes(s->sndbuf, &size, &first);
		reason = lgr_ring_alloc(lgr, size, first, &conn->tx, &msg.proposal.rmb, &new_fd);
	}
	if (conn && !reason) {
		af_conn_shared_init(conn);
		msg.token = conn->token = ++next_token;
		/* Across namespaces our TCP socket goes with it: the proof that it is ours. */
		if ((remote ? lgr_send2(lgr, &msg, new_fd, s->fd) : lgr_send(lgr, &msg, new_fd)) < 0) {
			lgr_ring_free(lgr, &conn->tx, NULL, 0);
			af_lgr_fail(lgr); /* and gone, if it was this connection's */
			lgr = NULL;
			reason = USMC_DECL_PEERNOSMC;
			/*
			 * A link group kept idle learns that its peer went only
			 * here: the listener may still be there, on a new one.
			 */
			if (!oneshot && !retried) {
				retried = true;
				usmc_conn_free(conn);
				reason = 0;
				lgr = af_cli_lgr_get(port, reg, own_user, &reason);
				goto again;
			}
		} else if (oneshot &&
			   (reason = remote ? rdv_post(lgr, &targets) : af_queue_post(lgr, reg))) {
			/* Nobody but us holds the Proposal: it ends here. */
			lgr_ring_free(lgr, &conn->tx, NULL, 0);
		}
	}
	if (reason) {
		usmc_conn_free(conn);
		/* A channel made for this connection goes with it. */
		if (lgr && oneshot) {
			lgr->refs++;
			lgr_put(lgr);
		}
		usmc_unlock();
		return reason;
	}
	lgr_ring_handed_over(&conn->tx);
	lgr->refs++;
	af_cli_pending_add(conn);
	/* After the message: a server that sees the count finds the Proposal. */
	if (own_user)
		atomic_fetch_add(oneshot ? &reg->queued : &reg->proposals, 1);
	/*
	 * Before the connect: whichever holder accepts it may have to refuse
	 * it; in an SO_REUSEPORT group, a member that found no slot, which we
	 * did not propose to.
	 */
	if (own_user && (!oneshot || (atomic_load(&reg->flags) & REG_REUSEPORT)))
		conn->hs_slot = reg_slot_take(port, msg.proposal.cookie, &conn->hs_slot_tag);
	conn->hs_cookie = msg.proposal.cookie;
	usmc_unlock();
	s->conn = conn;
	usmc_sock_set_state(s, SOCK_PROPOSED);
	return 0;
}

/* The TCP connect failed: withdraw the Proposal. */
static void cli_withdraw(struct usmc_sock *s)
{
	struct usmc_conn *conn = s->conn;

	/* No connection: nobody can have refused it. */
	reg_slot_put(&conn->hs_slot, conn->hs_slot_tag);
	rdv_taken_put(&conn->hs_taken_slot, conn->hs_taken_tag);
	usmc_lock();
	af_cli_find(conn->lgr, conn->token, true);
	af_send_decline(conn->lgr, conn->token, USMC_DECL_PEERDECL);
	conn->rx_mapped = false;
	af_conn_destroy(conn);
	usmc_unlock();
	s->conn = NULL;
	usmc_sock_set_state(s, SOCK_PLAIN);
}

/*
 * Our socket has its address and port now: listed, in case a proxy in
 * the server's namespace takes the connection (usmc_rendezvous_taken.c).
 * And if a redirect of our own namespace gave it to a proxy here (a
 * mesh's outbound capture), the Proposal is taken back at once: its
 * other end is a socket of ours (sock_diag), which no listener of
 * another namespace ever accepts.
 */
static void cli_list_taken(struct usmc_sock *s, const struct sockaddr *addr)
{
	struct usmc_conn *conn = s->conn;
	struct sockaddr_storage local;
	socklen_t len = sizeof(local);

	if (usmc_sys.getsockname(s->fd, (struct sockaddr *)&local, &len))
		return;
	conn->hs_taken_slot = rdv_taken_list((struct sockaddr *)&local, addr, conn->hs_cookie,
					     &conn->hs_taken_tag, &conn->hs_redirected);
	if (!conn->hs_redirected)
		conn->hs_redirected = af_peer_end_here((struct sockaddr *)&local);
}

int af_connect(struct usmc_sock *s, const struct sockaddr *addr, socklen_t len)
{
	uint16_t port = 0;
	bool remote = false;
	uint32_t reason = cli_precheck(s, addr, len, &port, &remote);
	int rc, err;

	if (!reason)
		reason = cli_propose(s, addr, port, remote);
	if (reason) {
		usmc_sock_fallback(s, reason, false);
		return usmc_sys.connect(s->fd, addr, len);
	}
	af_settle_connect_begin(s);
	rc = usmc_sys.connect(s->fd, addr, len);
	err = errno;
	if (rc == 0 || err == EINPROGRESS || err == EINTR) {
		if (s->conn->lgr->rdv)
			cli_list_taken(s, addr);
		af_settle_connect_end(s);
		/* A proxy took the connection already: TCP from here on, whatever the program waits in. */
		if (s->state == SOCK_PROPOSED && s->conn->hs_redirected)
			af_settle(s, 0);
		errno = err;
		return rc;
	}
	cli_withdraw(s);
	errno = err;
	return -1;
}
