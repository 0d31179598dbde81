// SPDX-License-Identifier: MIT
/*
 * A client's part in a shared listener's queue (docs/HANDSHAKE.md): a
 * channel of the connection's own, its server end put into the backlog
 * the holders share on a carrier, and the Proposal read back out of it
 * to withdraw (the holders' part: usmc_queue.c).
 */
#include <errno.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "usmc.h"
#include "usmc_chan.h"
#include "usmc_clc.h"
#include "usmc_log.h"
#include "usmc_proc.h"
#include "usmc_queue_post.h"
#include "usmc_queue_side.h"
#include "usmc_reuseport.h"
#include "usmc_seg.h"
#include "usmc_sys.h"

/*
 * A channel of this connection's own toward a shared listener, whose
 * holders share its backlog: a socketpair, whose server
 * end goes into the backlog once the Proposal is in it (af_queue_post).
 * We keep that end too: reading the Proposal back out of it withdraws it
 * for certain, since then no holder ever can.
 */
struct usmc_lgr *af_queue_pair(uint16_t port, uint32_t *reason)
{
	struct usmc_lgr *lgr;
	int sv[2];

	if (usmc_sys.socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv)) {
		*reason = usmc_env_fail("socketpair(AF_UNIX)");
		return NULL;
	}
	/* Ours for the connection's life; the server's end only until the answer. */
	sv[0] = usmc_fd_lift(sv[0]);
	lgr = lgr_new(sv[0], LGR_CLIENT, 0, reg_owner());
	if (!lgr) {
		usmc_sys.close(sv[0]);
		usmc_sys.close(sv[1]);
		*reason = USMC_DECL_MEM;
		return NULL;
	}
	lgr->port = port;
	lgr->oneshot = true;
	lgr->taker = usmc_fd_lift(sv[1]);
	return lgr;
}

/* Puts the server end of a pair's channel, the Proposal in it, into the listener's backlog. */
uint32_t af_queue_post(struct usmc_lgr *lgr, struct reg_port *reg)
{
	int32_t pid = atomic_load(&reg->pid);
	struct sockaddr_un sun;
	socklen_t sun_len;
	struct ucred cred;
	uint32_t reason;

	if (atomic_load(&reg->flags) & REG_REUSEPORT)
		return af_member_post(reg, lgr);
	sun_len = reg_listener_addr(reg_owner(), lgr->port, false, &sun);
	reason = af_carrier_send(&sun, sun_len, reg_owner(), lgr->taker, true, &cred, lgr);
	if (!reason)
		lgr->peer_pid = cred.pid;
	/* The listener died without closing: clear its registry entry. */
	if (reason == USMC_DECL_PEERNOSMC)
		atomic_compare_exchange_strong(&reg->pid, &pid, 0);
	return reason;
}

/* Reads our Proposal back out of the server's end: true if no holder had taken it. */
bool af_queue_take_back(struct usmc_lgr *lgr)
{
	struct reg_port *reg = reg_port(lgr->port);
	uint8_t buf[CLC_MAX_MSG_SIZE];
	ssize_t n;

	/* No room for descriptors: the ring's memfd that came with it is dropped. */
	do
		n = usmc_sys.recv(lgr->taker, buf, sizeof(buf), MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	/* Out of the backlog's count: accepts of plain clients need not look for it. */
	if (n > 0 && reg && !lgr->rdv)
		atomic_fetch_add(&reg->settled, 1);
	return n > 0;
}
