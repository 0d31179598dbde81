// SPDX-License-Identifier: MIT
/*
 * Segments and rings: our memfds and the slots taken from them, and ours
 * handed over through exec (the peer's: usmc_seg_peer.c).
 */
#include "usmc_core.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "usmc.h"
#include "usmc_charge.h"
#include "usmc_log.h"
#include "usmc_proc.h"
#include "usmc_seg.h"
#include "usmc_seg_reuse.h"
#include "usmc_seg_room.h"
#include "usmc_stats.h"
#include "usmc_sys.h"

static void fd_close_if(int fd)
{
	if (fd >= 0)
		usmc_sys.close(fd);
}

/*
 * Slots of our own segments in use, all link groups of the process: the
 * sum of their nused, kept beside it, for the first lap of a new ring
 * (lgr_ring_alloc), which a walk of every link group would cost each
 * handshake of a prefork worker with thousands of them.  Under LOCK_CORE.
 */
static uint32_t rings_used;

static void seg_used(struct usmc_seg *seg, int delta)
{
	seg->nused += (uint32_t)delta;
	rings_used += (uint32_t)delta;
}

struct usmc_seg *seg_alloc(void)
{
	struct usmc_seg *seg = calloc(1, sizeof(*seg));

	if (seg)
		seg->fd = seg->send_fd = seg->own_fd = -1;
	return seg;
}

void seg_destroy(struct usmc_seg *seg)
{
	if (!seg)
		return;
	rings_used -= seg->nused;
	if (seg->base)
		munmap(seg->base, seg->len);
	if (seg->own)
		munmap(seg->own, (size_t)seg->nslots * SEG_OWN_SLOT);
	fd_close_if(seg->fd);
	fd_close_if(seg->send_fd);
	fd_close_if(seg->own_fd);
	free(seg->slot_state);
	free(seg->peer_cdc);
	free(seg->peer_gen);
	free(seg->charged);
	if (seg->given)
		for (uint32_t i = 0; i < seg->nslots; i++)
			free(seg->given[i]);
	free(seg->given);
	free(seg);
}

/* ---- segments and rings ---- */

/* Our segment's per-slot tables: state, and whose close lets a slot go. */
static bool seg_tables_alloc(struct usmc_seg *seg, uint32_t nslots)
{
	seg->nslots = nslots;
	seg->slot_state = calloc(nslots, 1);
	seg->peer_cdc = calloc(nslots, sizeof(*seg->peer_cdc));
	seg->peer_gen = calloc(nslots, sizeof(*seg->peer_gen));
	seg->charged = calloc(nslots, sizeof(*seg->charged));
	seg->given = calloc(nslots, sizeof(*seg->given));
	return seg->slot_state && seg->peer_cdc && seg->peer_gen && seg->charged && seg->given;
}

/*
 * The descriptor the peer gets: read-only, so that it cannot map the
 * segment writable by mistake.  (Nothing we read back lives there, so a
 * peer that writes it anyway only garbles what it reads itself.)
 */
static int seg_peer_fd(int fd)
{
	char path[40];
	int ro;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	ro = usmc_sys.open(path, O_RDONLY | O_CLOEXEC);
	return ro >= 0 ? usmc_fd_lift(ro) : usmc_sys.fcntl(fd, F_DUPFD_CLOEXEC, 0);
}

/* A shared mapping of a new memfd of len bytes; sealed against resizing if seal. */
static uint8_t *memfd_map(const char *name, uint32_t len, bool seal, int *fdp, uint32_t *reason)
{
	int fd = memfd_create(name, MFD_CLOEXEC | (seal ? MFD_ALLOW_SEALING : 0));
	void *p;

	*fdp = -1;
	if (fd < 0) {
		*reason = errno == ENOMEM ? USMC_DECL_MEM : usmc_env_fail("memfd_create");
		return NULL;
	}
	fd = usmc_fd_lift(fd);
	/* Only this user may open it again through /proc, whatever the umask. */
	if (fchmod(fd, 0600) || ftruncate(fd, len) ||
	    /* Sealed, so the peer can neither shrink it under us (SIGBUS) nor grow it. */
	    (seal && usmc_sys.fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL))) {
		*reason = USMC_DECL_MEM;
		usmc_sys.close(fd);
		return NULL;
	}
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		*reason = USMC_DECL_MEM;
		usmc_sys.close(fd);
		return NULL;
	}
	*fdp = fd;
	return p;
}

static struct usmc_seg *seg_create(struct usmc_lgr *lgr, uint32_t rmb_size, uint32_t *reason)
{
	uint32_t slot_size = CDC_SLOT_HDR + rmb_size;
	uint32_t nslots = CLC_SEG_MAX / slot_size;
	struct usmc_seg *seg;

	if (lgr->nlseg >= LGR_MAX_SEGS) {
		*reason = USMC_DECL_MAX_DMB;
		return NULL;
	}
	nslots = nslots < 1 ? 1 : nslots > SEG_MAX_SLOTS ? SEG_MAX_SLOTS : nslots;
	*reason = USMC_DECL_MEM;
	if (!seg_fd_room())
		return NULL;
	seg = seg_alloc();
	if (!seg)
		return NULL;
	if (!seg_tables_alloc(seg, nslots))
		goto fail;
	seg->len = slot_size * nslots;
	seg->base = memfd_map("usmc-seg", seg->len, true, &seg->fd, reason);
	if (!seg->base)
		goto fail;
	seg->own = memfd_map("usmc-own", nslots * SEG_OWN_SLOT, false, &seg->own_fd, reason);
	if (!seg->own || (*reason = usmc_charge(seg->own_fd, 0, nslots * SEG_OWN_SLOT)))
		goto fail;
	seg->send_fd = seg_peer_fd(seg->fd);
	if (seg->send_fd < 0) {
		*reason = usmc_env_fail("open(read-only segment)");
		goto fail;
	}
	seg->local = true;
	seg->keep_send = lgr->reuse.kind != REUSE_NONE;
	seg->id = lgr->nlseg;
	seg->rmb_size = rmb_size;
	seg->slot_size = slot_size;
	lgr->lseg[lgr->nlseg++] = seg;
	usmc_stats_add(USMC_STAT_SEGMENTS, 1);
	return seg;
fail:
	seg_destroy(seg);
	return NULL;
}

/*
 * A segment a one-connection link group left, made ours: the peer of
 * this one gets it again, as a new segment, with a read-only descriptor.
 */
static struct usmc_seg *seg_reused(struct usmc_lgr *lgr, uint32_t rmb_size)
{
	struct usmc_seg *seg;

	if (lgr->nlseg >= LGR_MAX_SEGS || !(seg = seg_reuse_take(lgr, rmb_size)))
		return NULL;
	if (seg->send_fd < 0)
		seg->send_fd = seg_peer_fd(seg->fd);
	if (seg->send_fd < 0) {
		seg_destroy(seg);
		return NULL;
	}
	seg->sent = false;
	seg->id = lgr->nlseg;
	lgr->lseg[lgr->nlseg++] = seg;
	usmc_stats_add(USMC_STAT_SEGMENTS_REUSED, 1);
	return seg;
}

bool (*_Atomic seg_holder_gone)(const struct slot_holder *h);

/* The peer's side of slot i's connection closed, or its slot moved on to another generation. */
static bool peer_done(const struct usmc_seg *seg, uint32_t i)
{
	const uint32_t closed = CDC_PEER_CONN_CLOSED | CDC_PEER_CONN_ABORT;
	const struct cdc_area *peer = seg->peer_cdc[i];

	return (atomic_load_explicit(&peer->flags, memory_order_acquire) & closed) ||
	       atomic_load_explicit(&peer->gen, memory_order_relaxed) != seg->peer_gen[i];
}

/*
 * A SLOT_GIVEN slot whose holders exited without closing: its peer is
 * done (asked first: one look at shared memory, where sock_diag is a
 * round trip), and no process holds its TCP socket any more.
 */
static bool given_gone(struct usmc_seg *seg, uint32_t i)
{
	bool (*gone)(const struct slot_holder *h) = atomic_load(&seg_holder_gone);

	if (!seg->given[i] || !gone || !seg->peer_cdc[i] || !peer_done(seg, i))
		return false;
	return gone(seg->given[i]);
}

/*
 * A closing slot is free once the peer's side has closed too; a slot
 * in SLOT_GIVEN once the connection's last holder has closed it, or
 * exited without closing (given_gone).
 */
static bool slot_reclaim(struct usmc_seg *seg, uint32_t i)
{
	const uint32_t closed = CDC_PEER_CONN_CLOSED | CDC_PEER_CONN_ABORT;

	if (seg->slot_state[i] == SLOT_GIVEN) {
		if (!(seg_own_flags(seg, i) & closed) && !given_gone(seg, i))
			return false;
		free(seg->given[i]);
		seg->given[i] = NULL;
		seg->slot_state[i] = SLOT_CLOSING;
		if (!seg->peer_cdc[i]) {
			seg->slot_state[i] = SLOT_FREE;
			seg_used(seg, -1);
			return true;
		}
	}
	if (seg->slot_state[i] != SLOT_CLOSING)
		return false;
	/* (A new generation: the peer closed and reused its slot already.) */
	if (!peer_done(seg, i))
		return false;
	seg->slot_state[i] = SLOT_FREE;
	seg->peer_cdc[i] = NULL;
	seg_used(seg, -1);
	return true;
}

bool seg_all_free(struct usmc_seg *seg)
{
	for (uint32_t i = 0; i < seg->nslots; i++)
		if (seg->slot_state[i] != SLOT_FREE && !slot_reclaim(seg, i))
			return false;
	return true;
}

/*
 * A free slot; of a segment whose descriptor was given back, only one
 * charged already for a first lap of first bytes.
 */
static int seg_find_slot(struct usmc_seg *seg, uint32_t first)
{
	for (uint32_t i = 0; i < seg->nslots; i++)
		if ((seg->fd >= 0 || seg->charged[i] >= first) &&
		    (seg->slot_state[i] == SLOT_FREE || slot_reclaim(seg, i)))
			return (int)i;
	return -1;
}

/*
 * The program's socket() or accept() met EMFILE: it gets the descriptors
 * that segments both sides have mapped keep only for later (ours serve
 * the charge of a slot not used yet; all of them an exec's handover).
 * Their mappings stay, and so do the connections on them; what the
 * program does with the descriptors is what TCP would do with them.
 * Without its descriptor a segment lends only slots charged already
 * (new connections stay TCP, as so near the limit they would), and an
 * exec cannot hand its link group over: it fails with EMFILE.  Each link
 * group keeps its channel and its spare, which a handshake under way may
 * need.  True if any descriptor was closed.
 */
bool lgr_give_back_fds_locked(void)
{
	bool freed = false;

	/* Room again, perhaps: the next segment counts. */
	seg_fd_room_again();
	seg_reuse_destroy_all();
	lgr_spare_kept_close();
	for (struct usmc_lgr *lgr = lgr_first(); lgr; lgr = lgr->next) {
		for (uint32_t i = 0; i < lgr->nlseg || i < lgr->nrseg; i++) {
			struct usmc_seg *l = i < lgr->nlseg ? lgr->lseg[i] : NULL;
			struct usmc_seg *r = i < lgr->nrseg ? lgr->rseg[i] : NULL;

			if (l && l->sent && l->fd >= 0) {
				fd_close_if(l->own_fd);
				fd_close_if(l->send_fd);
				usmc_sys.close(l->fd);
				l->fd = l->own_fd = l->send_fd = -1;
				freed = true;
			}
			if (r && r->fd >= 0) {
				usmc_sys.close(r->fd);
				r->fd = -1;
				freed = true;
			}
		}
		/* The spare first: the peer's next segment must find a number. */
		lgr_spare_take(lgr);
	}
	return freed;
}

bool lgr_give_back_fds(void)
{
	bool freed;

	usmc_lock();
	freed = lgr_give_back_fds_locked();
	usmc_unlock();
	return freed;
}

void seg_ring(struct usmc_ring *ring, struct usmc_seg *seg, uint32_t slot)
{
	uint8_t *base = seg->base + (size_t)slot * seg->slot_size;

	ring->seg = seg;
	ring->slot = slot;
	ring->cdc = (struct cdc_area *)base;
	ring->data = base + CDC_SLOT_HDR;
	ring->size = seg->slot_size - CDC_SLOT_HDR;
}

/*
 * Charges a slot's header and the first bytes of its ring, or more: 0 or
 * a USMC_DECL_* reason.  For a new connection (fresh), a slot that a lap
 * of an earlier one grew gives the pages past them back, as TCP's buffers
 * start small again with a new connection.
 */
static uint32_t slot_charge(struct usmc_seg *seg, uint32_t slot, uint32_t bytes, bool fresh)
{
	uint64_t off = (uint64_t)slot * seg->slot_size;
	uint32_t reason;

	if (fresh && seg->charged[slot] > bytes && seg->fd >= 0 &&
	    !fallocate(seg->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
		       (off_t)(off + CDC_SLOT_HDR + bytes), seg->charged[slot] - bytes))
		seg->charged[slot] = bytes;
	if (seg->charged[slot] >= bytes)
		return 0;
	if (seg->fd < 0)
		return USMC_DECL_MEM;
	reason = usmc_charge(seg->fd, off, CDC_SLOT_HDR + (uint64_t)bytes);
	if (!reason)
		seg->charged[slot] = bytes;
	return reason;
}

/* Rings in use past which new ones start smaller (lgr_ring_alloc). */
#define RINGS_MANY 1024

uint32_t lgr_ring_alloc(struct usmc_lgr *lgr, uint32_t size, uint32_t first,
			struct usmc_ring *ring, struct clc_rmb_desc *desc, int *new_fd)
{
	struct usmc_seg *seg = NULL;
	uint32_t reason = 0, gen;
	int slot = -1;

	/*
	 * Past RINGS_MANY rings in the process, a new one's first lap is a
	 * quarter of the usual, as TCP's buffers start smaller under memory
	 * pressure: 10,000 connections charged 5 GB for laps that their 1 KiB
	 * requests never filled, zeroed as each handshake ended.  The ring
	 * still grows into its slot as its reader lags.  Not a size the
	 * program set (SO_SNDBUF makes the first lap the ring).
	 */
	if (first < size && first / 4 >= CLC_RMB_MIN && rings_used >= RINGS_MANY)
		first /= 4;

	/*
	 * The answer may bring the peer's new segment: a descriptor for it is
	 * kept, or the connection stays TCP now rather than lose it later.
	 */
	if (!lgr_spare_take(lgr))
		return USMC_DECL_MEM;

	for (uint32_t i = 0; i < lgr->nlseg && slot < 0; i++) {
		seg = lgr->lseg[i];
		if (seg->rmb_size == size)
			slot = seg_find_slot(seg, first);
	}
	if (slot < 0) {
		seg = seg_reused(lgr, size);
		if (!seg)
			seg = seg_create(lgr, size, &reason);
		if (!seg)
			return reason;
		slot = seg_find_slot(seg, first);
	}
	/* Its pages now, or fallback now: not a fault in the middle of a transfer. */
	reason = slot_charge(seg, (uint32_t)slot, first, true);
	if (reason) {
		if (seg->nused == 0 && !seg->sent && seg->id == lgr->nlseg - 1) {
			lgr->lseg[--lgr->nlseg] = NULL;
			seg_destroy(seg);
		}
		return reason;
	}
	seg->slot_state[slot] = SLOT_USED;
	seg_used(seg, 1);
	seg_ring(ring, seg, (uint32_t)slot);
	gen = atomic_load(&ring->cdc->gen) + 1;
	memset(ring->cdc, 0, CDC_SLOT_HDR);
	atomic_store(&ring->cdc->gen, gen);
	atomic_store(&ring->cdc->lap_shift[0], (uint8_t)__builtin_ctz(first));
	memset(seg_own(seg, (uint32_t)slot), 0, SEG_OWN_SLOT);
	desc->seg_id = seg->id;
	desc->seg_len = seg->len;
	desc->slot_off = (uint32_t)slot * seg->slot_size;
	desc->rmb_size = size;
	desc->new_seg = !seg->sent;
	*new_fd = seg->sent ? -1 : seg->send_fd;
	return 0;
}

bool lgr_ring_grow(struct usmc_ring *ring, uint32_t bytes)
{
	struct usmc_seg *seg = ring->seg;

	/*
	 * A ring grows on the data path, in whichever process writes, and
	 * its charge needs fallocate: a sandbox that lists only the calls of
	 * reading and writing (OpenSSH's pre-auth child) would kill the
	 * process for it.  The ring stays as it is there.
	 */
	return bytes <= ring->size && !proc_seccomp_filtered(true) &&
	       slot_charge(seg, ring->slot, bytes, false) == 0;
}

void ring_copy_iov(const struct usmc_ring *ring, uint32_t off, const struct iovec *iov,
		   int iovcnt, size_t skip, size_t n, bool into_ring)
{
	for (int i = 0; i < iovcnt && n; i++) {
		size_t len = iov[i].iov_len;
		uint8_t *user = iov[i].iov_base;

		if (skip >= len) {
			skip -= len;
			continue;
		}
		user += skip;
		len -= skip;
		skip = 0;
		if (len > n)
			len = n;
		n -= len;
		if (into_ring)
			memcpy(ring->data + off, user, len);
		else
			memcpy(user, ring->data + off, len);
		off += (uint32_t)len;
	}
}

void lgr_ring_handed_over(struct usmc_ring *ring)
{
	struct usmc_seg *seg = ring->seg;

	if (seg && seg->local && !seg->sent) {
		seg->sent = true;
		if (!seg->keep_send) {
			usmc_sys.close(seg->send_fd);
			seg->send_fd = -1;
		}
	}
}

/* The ring's slot is no longer ours to write: it waits in state for its reclaim. */
static struct usmc_seg *slot_detach(struct usmc_ring *ring, const struct cdc_area *peer_cdc,
				    uint32_t peer_gen, enum slot_state state)
{
	struct usmc_seg *seg = ring->seg;

	if (!seg || seg->slot_state[ring->slot] != SLOT_USED)
		return NULL;
	seg->slot_state[ring->slot] = state;
	seg->peer_cdc[ring->slot] = peer_cdc;
	seg->peer_gen[ring->slot] = peer_gen;
	ring->seg = NULL;
	return seg;
}

void lgr_ring_free(struct usmc_lgr *lgr, struct usmc_ring *ring, const struct cdc_area *peer_cdc,
		   uint32_t peer_gen)
{
	uint32_t slot = ring->slot;
	struct usmc_seg *seg = slot_detach(ring, peer_cdc, peer_gen, SLOT_CLOSING);

	(void)lgr;
	if (!seg)
		return;
	if (!peer_cdc) {
		/* The peer never saw this ring. */
		seg->slot_state[slot] = SLOT_FREE;
		seg_used(seg, -1);
	} else {
		slot_reclaim(seg, slot);
	}
}

void lgr_ring_put(struct usmc_lgr *lgr, struct usmc_ring *ring, const struct cdc_area *peer_cdc,
		  uint32_t peer_gen, const struct slot_holder *h)
{
	uint32_t slot = ring->slot;
	struct usmc_seg *seg = slot_detach(ring, peer_cdc, peer_gen, SLOT_GIVEN);

	(void)lgr;
	if (!seg || !h || seg->given[slot])
		return;
	seg->given[slot] = malloc(sizeof(*h));
	if (seg->given[slot])
		*seg->given[slot] = *h;
}

/* ---- segments handed over through exec (usmc_exec.c) ---- */

static uint8_t *map_whole(int fd, size_t len, int prot)
{
	struct stat st;
	void *p;

	if (fstat(fd, &st) || !S_ISREG(st.st_mode) || (uint64_t)st.st_size < len)
		return NULL;
	p = mmap(NULL, len, prot, MAP_SHARED, fd, 0);
	return p == MAP_FAILED ? NULL : p;
}

void seg_slot_adopted(struct usmc_seg *seg, uint32_t slot, uint8_t state)
{
	seg->slot_state[slot] = state;
	if (state != SLOT_FREE)
		seg_used(seg, 1);
}

struct usmc_seg *lgr_adopt_seg(struct usmc_lgr *lgr, uint32_t id, int fd, int own_fd,
			       uint32_t rmb_size, uint32_t nslots, bool sent)
{
	struct usmc_seg *seg = id < LGR_MAX_SEGS && !lgr->lseg[id] ? seg_alloc() : NULL;

	if (!seg) {
		fd_close_if(fd);
		fd_close_if(own_fd);
		return NULL;
	}
	seg->fd = fd;
	seg->own_fd = own_fd;
	seg->rmb_size = rmb_size;
	seg->slot_size = CDC_SLOT_HDR + rmb_size;
	seg->len = seg->slot_size * nslots;
	seg->base = map_whole(fd, seg->len, PROT_READ | PROT_WRITE);
	seg->own = map_whole(own_fd, (size_t)nslots * SEG_OWN_SLOT, PROT_READ | PROT_WRITE);
	seg->local = true;
	seg->sent = sent;
	seg->id = id;
	if (!sent)
		seg->send_fd = seg_peer_fd(fd);
	if (!seg_tables_alloc(seg, nslots) || !seg->base || !seg->own ||
	    (!sent && seg->send_fd < 0)) {
		seg_destroy(seg);
		return NULL;
	}
	lgr->lseg[id] = seg;
	if (id >= lgr->nlseg)
		lgr->nlseg = id + 1;
	return seg;
}
