/* SPDX-License-Identifier: MIT */
/*
 * What the rendezvous directory lists: the listeners of other network
 * namespaces a client's Proposal goes to (usmc_rendezvous_list.c).
 */
#ifndef USMC_RENDEZVOUS_LIST_H
#define USMC_RENDEZVOUS_LIST_H

#include <stdint.h>
#include <sys/socket.h>

#include "usmc_rendezvous.h"

/*
 * The client: listeners of other namespaces that may hold the other end
 * of a connection to dst, port (0), or why there are none.
 */
uint32_t rdv_targets_find(const struct sockaddr *dst, uint16_t port, struct rdv_targets *t);

#endif /* USMC_RENDEZVOUS_LIST_H */
