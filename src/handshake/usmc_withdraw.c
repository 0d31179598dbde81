// SPDX-License-Identifier: MIT
/*
 * A client's Proposal that no answer may come to: taken back (withdrawn,
 * net/smc has no such message: usmc_clc.h), or the handshake settled
 * here, once a CLC timeout has passed and the server's end of the
 * connection, as sock_diag tells it (usmc_sockdiag.c), says that nobody
 * will answer.  Both ends then agree: TCP.
 */
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "usmc.h"
#include "usmc_config.h"
#include "usmc_conn.h"
#include "usmc_lock.h"
#include "usmc_proc.h"
#include "usmc_queue_post.h"
#include "usmc_registry.h"
#include "usmc_sock.h"
#include "usmc_sockdiag.h"
#include "usmc_withdraw.h"
#include "af_usmc.h"

/* The handshake ends here, with no answer from the server. */
static bool hs_settle_locally(struct usmc_conn *conn, uint32_t reason, bool reset)
{
	conn->hs_result = CLC_DECLINE;
	conn->hs_reason = reason;
	conn->hs_local = true;
	conn->hs_reset = reset;
	return true;
}

/*
 * Withdraws the Proposal (usmc_clc.h) once, and reads the channel: true if
 * an answer is in, or the Proposal was taken back (a shared listener's).
 */
static bool hs_withdraw(struct usmc_conn *conn, uint32_t reason, int64_t now)
{
	bool answered;

	usmc_lock();
	if (!conn->hs_withdrawn_at && conn->lgr->oneshot && af_queue_take_back(conn->lgr)) {
		/* No holder took it, and none ever can: TCP on both ends, for certain. */
		usmc_unlock();
		return hs_settle_locally(conn, reason, false);
	}
	if (!conn->hs_withdrawn_at) {
		/* A holder of a shared listener took it: its answer is on the way. */
		if (!conn->lgr->oneshot)
			af_send_withdraw(conn->lgr, conn->token, reason);
		conn->hs_withdrawn_at = now;
	}
	af_pump_answers(NULL);
	answered = conn->hs_result != 0;
	usmc_unlock();
	return answered;
}

/*
 * Ends a wait for an answer that cannot come, looking at most every
 * quarter of a CLC timeout once one has passed.  True once the handshake
 * is settled (an answer came, or it ends here).
 */
bool af_withdraw_if_unanswered(struct usmc_sock *s)
{
	struct usmc_conn *conn = s->conn;
	int64_t now = usmc_now_ms(), timeout = usmc_clc_timeout_ms();
	struct reg_port *reg = conn->lgr->own_user ? reg_port(conn->lgr->port) : NULL;
	/*
	 * Proposed straight to a listener that workers then marked shared: a
	 * worker that got the connection finds the Proposal in the backlog
	 * they share (usmc_listen.c), within a CLC timeout as any answer.
	 */
	bool shared = reg && !conn->lgr->oneshot && (atomic_load(&reg->flags) & REG_SHARED);
	uint32_t reason = shared ? USMC_DECL_LISTENSHARED : USMC_DECL_TIMEOUT_CLC;
	enum af_server_end end;

	/* A proxy took the connection without it (usmc_rendezvous_taken.c): no answer comes. */
	if (conn->hs_redirected && !conn->hs_withdrawn_at)
		return hs_withdraw(conn, USMC_DECL_REDIRECTED, now);
	if (!conn->hs_check_at)
		conn->hs_check_at = now + timeout;
	if (now < conn->hs_check_at)
		return false;
	conn->hs_check_at = now + timeout / 4 + 1;
	/*
	 * Not connected yet, or still in the kernel's accept queue: nobody
	 * has the connection to answer for, however long the kernel's
	 * handshake took (a SYN the full accept queue dropped comes again a
	 * second later, and again two after) or the server takes to accept.
	 * The client waits as TCP's does.  Taken back meanwhile, its Proposal
	 * would be nowhere for the holder that accepts the connection at
	 * last: both ends TCP, for a wait that was the kernel's (a thousand
	 * clients of two nginx workers beside two CPU hogs: a third of them).
	 * Another namespace's listener is not in our sock_diag's view.
	 */
	if (!conn->hs_withdrawn_at && conn->lgr->oneshot && !conn->lgr->rdv &&
	    af_server_end(s->fd, s->conn->lgr->peer_pid) == END_WAITING)
		return false;
	/*
	 * Withdrawn and still no answer: the server is stopped inside its
	 * answer.  A shared listener's Proposal is withdrawn at once: whoever
	 * took it has the connection, or refuses it.
	 */
	if (conn->hs_withdrawn_at || conn->lgr->oneshot)
		return hs_withdraw(conn, reason, now) ||
		       (now - conn->hs_withdrawn_at >= 8 * timeout &&
			hs_settle_locally(conn, USMC_DECL_TIMEOUT_CLC, true));
	end = af_server_end(s->fd, s->conn->lgr->peer_pid);
	if (end == END_WAITING) {
		conn->hs_accepted_at = 0;
		return false;
	}
	if (!conn->hs_accepted_at) {
		conn->hs_accepted_at = now;
		/*
		 * The kernel gives an accepted socket its inode before it installs
		 * the descriptor in the server's table: "elsewhere" may only mean
		 * that the server is inside accept().  Believe it at the next look.
		 */
		return false;
	}
	/*
	 * Accepted by the process that has our Proposal, which answers within
	 * microseconds unless it cannot read it (out of descriptors) or is
	 * stopped: wait longer, then withdraw.
	 */
	if (end == END_WITH_PEER && now - conn->hs_accepted_at < 2 * timeout)
		return false;
	if (hs_withdraw(conn, reason, now))
		return true;
	/*
	 * Accepted elsewhere: the server never had the connection, so it never
	 * takes the Proposal, and any answer it gave is in already.
	 */
	return (end == END_ELSEWHERE || end == END_NONE) && hs_settle_locally(conn, reason, false);
}
