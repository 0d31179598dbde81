/* SPDX-License-Identifier: MIT */
/*
 * The shared backlog of a listener (usmc_queue.c): the channels of
 * Proposals toward a port that several processes take from, put there
 * by the client on a carrier and taken by the server that accepted the
 * TCP connection.
 */
#ifndef USMC_QUEUE_H
#define USMC_QUEUE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "usmc_listener.h"
#include "usmc_registry.h"

/*
 * The link group of the channel in the shared backlog whose Proposal
 * names cookie, or NULL once it is nowhere to be found (*reason set to
 * USMC_DECL_TIMEOUT_CLC if the look waited a CLC timeout for it).
 */
struct usmc_lgr *af_queue_find(struct usmc_listener *l, struct reg_port *reg, uint64_t cookie,
			       uint32_t *reason);
/*
 * The same for a connection whose client closed before any answer and
 * whose socket is gone (usmc_listen.c): the channel of our own user whose
 * ring the client left names peer as its end (af_orphan), and its cookie.
 */
struct usmc_lgr *af_queue_find_orphan(struct usmc_listener *l, struct reg_port *reg,
				      const struct sockaddr *peer, uint64_t *cookie);
/*
 * The same in the rendezvous directory's backlog (usmc_rendezvous.c): the
 * channel whose Proposal's TCP socket proves to be the other end of the
 * accepted socket acc, and its cookie; *snat if a Proposal was refused
 * because a source NAT rewrote its address on the way to us.
 */
struct usmc_lgr *af_queue_find_rdv(struct usmc_listener *l, struct reg_port *reg, int acc,
				   uint64_t *cookie, bool *snat);
/* Something may wait in that backlog; needs no lock. */
bool af_queue_rdv_pending(struct usmc_listener *l, struct reg_port *reg);
/* No Proposal is in the shared backlog, nor held by a process looking; needs no lock. */
bool af_queue_none_pending(struct reg_port *reg);

#endif /* USMC_QUEUE_H */
