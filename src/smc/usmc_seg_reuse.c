// SPDX-License-Identifier: MIT
/*
 * Segments kept from one-connection link groups for the next connection.
 *
 * A connection to a shared listener (a prefork server's workers) has a
 * link group of its own on each side (usmc_queue.c), and so a segment of
 * its own: a memfd made, its slot's pages allocated and charged, and all
 * of it freed again at close.  Those pages cost more than the rest of the
 * connection.  net/smc keeps a link group's freed buffers for its next
 * connection; here the link group goes, so its segment is kept beside it,
 * for the next connection whose reader could already read it:
 *
 *  - a server's segment, for the same client process (SO_PEERCRED of the
 *    channel the client made), which mapped it before;
 *  - a client's segment, for the same listener, whose holders share the
 *    backlog its Proposals wait in and can each take the segment out of
 *    it (docs/SECURITY.md).
 *
 * A slot is free only once the peer has closed its side: until then it
 * may still read the ring.  So the peer's segment, where its close is
 * published, is kept with ours; and since the peer keeps its segment for
 * us too, the next connection's answer most often brings the same memfd
 * again (its inode tells), whose mapping then serves it, unless ours
 * still waits on it.  A few segments are kept, the oldest dropped first;
 * a forked child drops its parent's.  All of it runs under usmc_lock().
 */
#include <stdlib.h>

#include "usmc_core.h"
#include "usmc_seg.h"
#include "usmc_seg_reuse.h"

/* Segments kept at once: a few MiB of pages at most. */
#define REUSE_MAX 16

struct reuse_entry {
	struct reuse_key key;
	pid_t owner;            /* the process that kept it: a forked child's are not its own */
	struct usmc_seg *lseg;  /* ours */
	struct usmc_seg *rseg;  /* the peer's, whose CDC areas say when ours is free */
};

static struct reuse_entry kept[REUSE_MAX];
static unsigned nkept;

static bool key_equal(const struct reuse_key *a, const struct reuse_key *b)
{
	return a->kind == b->kind && a->uid == b->uid && a->pid == b->pid && a->port == b->port &&
	       a->file == b->file;
}

/* Takes entry i out; the oldest stay first. */
static void reuse_remove(unsigned i)
{
	for (unsigned j = i + 1; j < nkept; j++)
		kept[j - 1] = kept[j];
	nkept--;
}

/* Drops entry i: its segments are unmapped and closed. */
static void reuse_destroy(unsigned i)
{
	seg_destroy(kept[i].lseg);
	seg_destroy(kept[i].rseg);
	reuse_remove(i);
}

/* A forked child has its parent's entries: their segments are the parent's to reuse. */
static void reuse_destroy_foreign(void)
{
	for (unsigned i = 0; i < nkept;)
		if (kept[i].owner != usmc_pid())
			reuse_destroy(i);
		else
			i++;
}

void seg_reuse_keep(struct usmc_lgr *lgr)
{
	struct usmc_seg *rseg = NULL;

	if (lgr->reuse.kind == REUSE_NONE || lgr->owner_pid != usmc_pid() || lgr->nlseg != 1 ||
	    lgr->lseg[0]->fd < 0 || lgr->lseg[0]->own_fd < 0)
		return;
	/* One connection: at most one segment of the peer's, the one its slot waits on. */
	for (uint32_t i = 0; i < lgr->nrseg; i++) {
		if (lgr->rseg[i] && rseg)
			return;
		rseg = rseg ? rseg : lgr->rseg[i];
	}
	reuse_destroy_foreign();
	if (nkept == REUSE_MAX)
		reuse_destroy(0);
	kept[nkept++] = (struct reuse_entry){ lgr->reuse, usmc_pid(), lgr->lseg[0], rseg };
	lgr->lseg[0] = NULL;
	lgr->nlseg = 0;
	for (uint32_t i = 0; i < lgr->nrseg; i++)
		lgr->rseg[i] = NULL;
	lgr->nrseg = 0;
}

struct usmc_seg *seg_reuse_take(struct usmc_lgr *lgr, uint32_t rmb_size)
{
	reuse_destroy_foreign();
	if (lgr->reuse.kind == REUSE_NONE)
		return NULL;
	for (unsigned i = 0; i < nkept; i++) {
		struct reuse_entry *e = &kept[i];
		struct usmc_seg *seg = e->lseg;

		if (!seg || !key_equal(&e->key, &lgr->reuse) || seg->rmb_size != rmb_size ||
		    !seg_all_free(seg))
			continue;
		/* The peer's segment stays, for the answer that may bring it again. */
		e->lseg = NULL;
		if (!e->rseg)
			reuse_remove(i);
		return seg;
	}
	return NULL;
}

struct usmc_seg *seg_reuse_peer(dev_t dev, ino_t ino, uint32_t len)
{
	reuse_destroy_foreign();
	for (unsigned i = 0; i < nkept; i++) {
		struct reuse_entry *e = &kept[i];
		struct usmc_seg *rseg = e->rseg;

		if (!rseg || rseg->dev != dev || rseg->ino != ino || rseg->len != len ||
		    (e->lseg && !seg_all_free(e->lseg)))
			continue;
		e->rseg = NULL;
		if (!e->lseg)
			reuse_remove(i);
		return rseg;
	}
	return NULL;
}

void seg_reuse_destroy_all(void)
{
	reuse_destroy_foreign();
	while (nkept)
		reuse_destroy(nkept - 1);
}
