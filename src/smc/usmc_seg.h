/* SPDX-License-Identifier: MIT */
/*
 * Segments and rings (smc_core.c's buffers): our memfds and the slots
 * taken from them, and ours handed over through exec (usmc_seg.c).  The
 * peer's segments are usmc_seg_peer.h's.
 */
#ifndef USMC_SEG_H
#define USMC_SEG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "usmc_cdc.h"
#include "usmc_clc.h"
#include "usmc_core.h"

/*
 * Takes a ring of size bytes from the link group's segments, creating a
 * segment if none has room, with the pages of its first lap, first bytes
 * (a power of two, at most size), charged: its lap_shift[0] says so to
 * the peer.  *new_fd is the memfd to hand over when the segment is new,
 * else -1.  Returns 0, or a USMC_DECL_* reason.
 */
uint32_t lgr_ring_alloc(struct usmc_lgr *lgr, uint32_t size, uint32_t first,
			struct usmc_ring *ring, struct clc_rmb_desc *desc, int *new_fd);

/*
 * Charges the pages of the ring's first bytes (a lap to come): whether
 * they are ours now, and the lap may be that long.
 */
bool lgr_ring_grow(struct usmc_ring *ring, uint32_t bytes);

/*
 * Copies n bytes between the ring, at offset off, which has room for
 * them, and the iovec, from byte skip of it on: into the ring or out of it.
 */
void ring_copy_iov(const struct usmc_ring *ring, uint32_t off, const struct iovec *iov,
		   int iovcnt, size_t skip, size_t n, bool into_ring);

/* The peer has the ring's segment now. */
void lgr_ring_handed_over(struct usmc_ring *ring);

/*
 * Gives a ring back.  It is reused only once the peer's side of the
 * connection is closed too, since the peer may still be reading it: when
 * peer_cdc (the peer's ring of the connection, generation peer_gen) says
 * closed, or has moved on to another generation.  NULL: the peer never
 * had the ring, or has closed already.
 */
void lgr_ring_free(struct usmc_lgr *lgr, struct usmc_ring *ring, const struct cdc_area *peer_cdc,
		   uint32_t peer_gen);
/*
 * The TCP socket of a connection whose ring other processes of a fork
 * still use: its addresses and cookie, which sock_diag looks up.
 */
struct slot_holder {
	struct sockaddr_storage local, peer;
	uint64_t cookie;
};
/*
 * Like lgr_ring_free, while other processes of a fork still use the ring.
 * Their last close marks it free; one that exits without closing (a
 * postgres backend, a child of inetd) marks nothing, and the slot is told
 * free by its socket h instead (seg_holder_gone), once the peer closed.
 */
void lgr_ring_put(struct usmc_lgr *lgr, struct usmc_ring *ring, const struct cdc_area *peer_cdc,
		  uint32_t peer_gen, const struct slot_holder *h);
/*
 * Whether no process holds socket h any more: it is gone, or closed (set
 * by the handshake layer, which has sock_diag; NULL until then).
 */
extern bool (*_Atomic seg_holder_gone)(const struct slot_holder *h);

/* A segment descriptor with no descriptors and no mappings yet, or NULL. */
struct usmc_seg *seg_alloc(void);
/* Unmaps and closes a segment (with its link group). */
void seg_destroy(struct usmc_seg *seg);
/*
 * Our segment id of the link group, handed over through exec: mapped
 * from its descriptors, which they own from now on (closed
 * on failure too).  NULL if a descriptor is not what it should be.
 */
struct usmc_seg *lgr_adopt_seg(struct usmc_lgr *lgr, uint32_t id, int fd, int own_fd,
			       uint32_t rmb_size, uint32_t nslots, bool sent);
/* A slot of a segment adopted through exec takes the state it had there. */
void seg_slot_adopted(struct usmc_seg *seg, uint32_t slot, uint8_t state);
/* The ring of a slot of our segment. */
void seg_ring(struct usmc_ring *ring, struct usmc_seg *seg, uint32_t slot);

/*
 * At EMFILE: the descriptors that segments keep only for later go to the
 * program; true if any was closed.
 */
bool lgr_give_back_fds(void);
/* The same, under usmc_lock (a handshake's look through a backlog). */
bool lgr_give_back_fds_locked(void);

/*
 * Whether every slot of our segment is free, or can be freed now that the
 * peer has closed its side of the connection on it.
 */
bool seg_all_free(struct usmc_seg *seg);

#endif /* USMC_SEG_H */
