/* SPDX-License-Identifier: MIT */
/*
 * The Proposal of a connection the server accepted (usmc_lookup.c),
 * taken out of wherever it waits; NULL if there is none.  Under
 * usmc_lock, as every answer is made.
 */
#ifndef USMC_LOOKUP_H
#define USMC_LOOKUP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "usmc_listener.h"
#include "usmc_registry.h"
#include "usmc_sock.h"
#include "af_usmc.h"

/*
 * By the cookie of the client's socket (*cookie: asked of sock_diag once,
 * 0 if no socket is left), with its user in *uid; *reason set if the look
 * through a shared backlog waited a CLC timeout for it.
 */
struct srv_proposal *af_lookup(struct usmc_listener *l, struct reg_port *reg, struct usmc_sock *ns,
			       const struct sockaddr *peer, uint64_t *cookie, uint32_t *uid,
			       uint32_t *reason);
/* Once no socket of the client is left: by the end of the connection it published. */
struct srv_proposal *af_lookup_orphan(struct usmc_listener *l, struct reg_port *reg,
				      struct usmc_sock *ns, const struct sockaddr *peer, uint32_t *uid);
/*
 * The client's end came (a FIN) with nothing on TCP before it: a client
 * that wrote before any answer and then closed, or was killed, replayed
 * nothing, and what it wrote is in its ring.  A client declined meanwhile
 * replays its ring into TCP before its FIN.
 */
bool af_conn_ended_quiet(int fd);
/* A client of another network namespace's, proven by its TCP socket (usmc_rendezvous.c). */
struct srv_proposal *af_lookup_rdv(struct usmc_listener *l, struct reg_port *reg,
				   struct usmc_sock *ns, uint32_t *uid, uint32_t *reason);

#endif /* USMC_LOOKUP_H */
