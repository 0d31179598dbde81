/* SPDX-License-Identifier: MIT */
/*
 * What a holder's look through a shared backlog looks for
 * (usmc_queue_match.c): whether a channel's Proposal is that of the
 * connection it accepted.
 */
#ifndef USMC_QUEUE_MATCH_H
#define USMC_QUEUE_MATCH_H

#include <stdbool.h>
#include <stdint.h>

#include "usmc_clc.h"
#include "usmc_listener.h"

/*
 * What a look looks for: the Proposal naming cookie, or (acc >= 0) the one
 * whose TCP socket proves to be the other end of the accepted socket acc
 * (usmc_rendezvous.c), or (orphan) the one whose ring names the end
 * orphan_addr, orphan_port; either sets its cookie.  snat once it refused
 * a Proposal whose connection came through a source NAT.
 */
struct wanted {
	uint64_t cookie;
	int acc;
	bool orphan;
	uint8_t orphan_addr[16];
	uint16_t orphan_port;
	bool snat;
	bool waited_out; /* the look ran until the CLC timeout */
	bool blind;      /* it could not take an entry (EMFILE): it ended there */
	int64_t deadline; /* when the look gives up (usmc_now_ms) */
};

/* Whether the Proposal msg in channel ch is the one w looks for; a source NAT's is refused. */
bool queue_match(struct wanted *w, const struct usmc_listener *l, int ch, const struct clc_msg *msg);

#endif /* USMC_QUEUE_MATCH_H */
