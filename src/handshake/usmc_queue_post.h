/* SPDX-License-Identifier: MIT */
/*
 * A client's part in a shared listener's queue (usmc_queue_post.c).
 */
#ifndef USMC_QUEUE_POST_H
#define USMC_QUEUE_POST_H

#include <stdbool.h>
#include <stdint.h>

#include "usmc_core.h"
#include "usmc_registry.h"

/*
 * A link group of the connection's own, a socketpair whose server end we
 * keep; putting that end, the Proposal in it, into the backlog (0, or why
 * not); and reading the Proposal back out of it (true if no holder had
 * taken it).
 */
struct usmc_lgr *af_queue_pair(uint16_t port, uint32_t *reason);
uint32_t af_queue_post(struct usmc_lgr *lgr, struct reg_port *reg);
bool af_queue_take_back(struct usmc_lgr *lgr);

#endif /* USMC_QUEUE_POST_H */
