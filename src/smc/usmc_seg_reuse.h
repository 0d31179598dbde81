/* SPDX-License-Identifier: MIT */
/*
 * Segments kept from one-connection link groups for the next connection
 * toward the same reader (usmc_seg_reuse.c).  Under usmc_lock().
 */
#ifndef USMC_SEG_REUSE_H
#define USMC_SEG_REUSE_H

#include <sys/types.h>

#include "usmc_core.h"

/*
 * A one-connection link group goes with its connection, but its segment,
 * whose slot pages are allocated and charged, is kept for the next
 * connection toward the same reader (lgr->reuse), as a link group reuses
 * a freed ring: called as it goes, it takes the segment, and the peer's
 * segment that says when ours is free.
 */
void seg_reuse_keep(struct usmc_lgr *lgr);
/* A kept segment of rmb_size slots for the link group, all free, or NULL. */
struct usmc_seg *seg_reuse_take(struct usmc_lgr *lgr, uint32_t rmb_size);
/*
 * A kept mapping of the peer's segment dev:ino, of len bytes, whose own
 * segment kept beside it is free (nothing of ours waits on it): the link
 * group it was kept with gives it up.  NULL if there is none.
 */
struct usmc_seg *seg_reuse_peer(dev_t dev, ino_t ino, uint32_t len);
/* Unmaps and closes every kept segment (their descriptors are wanted). */
void seg_reuse_destroy_all(void);

#endif /* USMC_SEG_REUSE_H */
