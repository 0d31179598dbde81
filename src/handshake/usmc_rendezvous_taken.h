/* SPDX-License-Identifier: MIT */
/*
 * Proposals across namespaces whose connection another listener took
 * (usmc_rendezvous_taken.c): a proxy in the server's namespace that a
 * redirect gives the connection, as a service mesh's sidecar captures
 * inbound connections.
 */
#ifndef USMC_RENDEZVOUS_TAKEN_H
#define USMC_RENDEZVOUS_TAKEN_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

/*
 * A client dials an address of one of this host's namespaces (the
 * directory lists it), before its connect(): clients of this user cross
 * namespaces now, so the process that accepts a connection from another
 * namespace without a Proposal looks for theirs, and learns a redirect.
 */
void rdv_taken_active(void);
/*
 * The client, once connect() gave its socket its address and port,
 * local: lists the connection to dialled, with its socket's cookie.  Its
 * slot in the list, or -1 if the list is full or not there.  *noted: a
 * listener has taken the connection without the Proposal already, so
 * the client takes it back at once.
 */
int rdv_taken_list(const struct sockaddr *local, const struct sockaddr *dialled, uint64_t cookie,
		   uint64_t *tag, bool *noted);
/* Whether the listed connection was refused by the listener that took it. */
bool rdv_taken_refused(int slot, uint64_t tag);
/* Takes it off the list (*slot becomes -1): true if it was refused, whose marker is on its way. */
bool rdv_taken_put(int *slot, uint64_t tag);
/*
 * The listener of port lport that accepted fd from peer, another
 * namespace's, without its Proposal: notes the connection, and refuses
 * it if its client listed it.  The cookie to write into the connection
 * as the marker (usmc_settle.c), or 0 if nothing was listed.  A redirect
 * that gave it the connection it lists for later clients
 * (rdv_redirect_set).
 */
uint64_t rdv_taken_refuse(int fd, const struct sockaddr *peer, uint16_t lport);

#endif /* USMC_RENDEZVOUS_TAKEN_H */
