/* SPDX-License-Identifier: MIT */
/*
 * The peer's segments (usmc_seg_peer.c): memory another process can write
 * and resize, so each descriptor is checked before it is mapped, and
 * mapped read-only.
 */
#ifndef USMC_SEG_PEER_H
#define USMC_SEG_PEER_H

#include <stdbool.h>
#include <stdint.h>

#include "usmc_clc.h"
#include "usmc_core.h"

/*
 * Maps the peer's ring a CLC message describes, taking fd (the segment's
 * memfd) when the message brought one.  Returns 0 or a USMC_DECL_* reason;
 * fd is consumed either way.
 */
uint32_t lgr_ring_map_peer(struct usmc_lgr *lgr, const struct clc_rmb_desc *desc, int fd,
			   struct usmc_ring *ring);
/*
 * The peer's segment id of the link group, handed over through exec:
 * mapped from its descriptor, which it owns from now on (closed on
 * failure too).  NULL if the descriptor is not what it should be.
 */
struct usmc_seg *lgr_adopt_peer_seg(struct usmc_lgr *lgr, uint32_t id, int fd, uint32_t len);
/*
 * Whether the ring that desc places in fd's segment was left by a client
 * that closed before any answer (af_orphan), or is gone (its channel
 * ended: killed), and names addr and port (usmc_addr16's form) as its end
 * of the connection (af_publish_end).  Read with pread() from shmem only,
 * nothing mapped: the descriptor is not checked yet.  The client's word.
 */
bool seg_peer_orphan_is(int fd, const struct clc_rmb_desc *desc, const uint8_t addr[16],
			uint16_t port, bool gone);
/* The ring of the peer's segment whose CDC area is at off (checked by the caller). */
void seg_peer_ring(struct usmc_ring *ring, struct usmc_seg *seg, uint32_t off, uint32_t size);

#endif /* USMC_SEG_PEER_H */
