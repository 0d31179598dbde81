// SPDX-License-Identifier: MIT
/*
 * The peer's segments: each descriptor checked before it is mapped, read
 * only, and a memfd mapped once while a mapping of it is kept
 * (usmc_seg_reuse.c); the peer's rings in them; and those handed over
 * through exec mapped again.
 */
#include <fcntl.h>
#include <linux/magic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "usmc.h"
#include "usmc_proc.h"
#include "usmc_seg.h"
#include "usmc_seg_peer.h"
#include "usmc_seg_reuse.h"
#include "usmc_sys.h"

/*
 * An ordinary file of shmem: not hugetlbfs, whose holes and empty pool are
 * SIGBUS on a read of a mapping, nor a file system whose reads can wait.
 */
static bool on_shmem(int fd, const struct stat *st)
{
	struct statfs sfs;

	return S_ISREG(st->st_mode) && !fstatfs(fd, &sfs) && sfs.f_type == TMPFS_MAGIC;
}

bool seg_peer_orphan_is(int fd, const struct clc_rmb_desc *desc, const uint8_t addr[16],
			uint16_t port, bool gone)
{
	struct cdc_tuple t;
	struct stat st;
	uint32_t flags;
	off_t at = desc->slot_off;

	if (fstat(fd, &st) || !on_shmem(fd, &st))
		return false;
	/* A client gone needs no word of its close. */
	if (!gone && (pread(fd, &flags, sizeof(flags), at + offsetof(struct cdc_area, flags)) !=
			      (ssize_t)sizeof(flags) ||
		      !(flags & CDC_PEER_CONN_CLOSED)))
		return false;
	if (pread(fd, &t, sizeof(t), at + offsetof(struct cdc_area, orphan)) != (ssize_t)sizeof(t))
		return false;
	return cdc_tuple_is(&t, addr, port);
}

void seg_peer_ring(struct usmc_ring *ring, struct usmc_seg *seg, uint32_t off, uint32_t size)
{
	ring->seg = seg;
	ring->slot = off;
	ring->cdc = (struct cdc_area *)(seg->base + off);
	ring->data = seg->base + off + CDC_SLOT_HDR;
	ring->size = size;
}

/*
 * Checks that fd is an ordinary shmem memfd of at least len bytes that
 * nobody can resize, before mapping it: a peer's memory must never be
 * able to fault us.  Shrinking would (SIGBUS past the end), and so would
 * hugetlbfs: a hole the peer punches there, or a page its pool cannot
 * give, is SIGBUS on our read.  On shmem a punched hole reads back as a
 * fresh zero page (docs/SECURITY.md).
 */
static uint8_t *map_peer_segment(int fd, uint32_t len, const struct stat *st)
{
	const int need = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL;
	void *p;
	int seals;

	seals = usmc_sys.fcntl(fd, F_GET_SEALS);
	if (seals < 0 || (seals & need) != need)
		return NULL;
	if (!on_shmem(fd, st) || st->st_size < (off_t)len)
		return NULL;
	p = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
	return p == MAP_FAILED ? NULL : p;
}

/*
 * The peer's segment of descriptor fd, mapped: again, if a one-connection
 * link group left a mapping of the same memfd (usmc_seg_reuse.c), which
 * was checked then and whose seals cannot come off; else checked and
 * mapped now.  NULL with *reason.  fd is consumed either way.
 */
static struct usmc_seg *peer_seg_open(int fd, uint32_t len, uint32_t *reason)
{
	struct usmc_seg *seg;
	struct stat st;

	*reason = USMC_DECL_SYNCERR;
	if (fstat(fd, &st)) {
		usmc_sys.close(fd);
		return NULL;
	}
	seg = seg_reuse_peer(st.st_dev, st.st_ino, len);
	if (seg) {
		/* One descriptor of it is kept, for an exec's handover: this one if it had none. */
		if (seg->fd < 0)
			seg->fd = usmc_fd_lift(fd);
		else
			usmc_sys.close(fd);
		return seg;
	}
	seg = seg_alloc();
	if (!seg) {
		usmc_sys.close(fd);
		*reason = USMC_DECL_MEM;
		return NULL;
	}
	/* Kept for an exec'd image of ours to map again. */
	seg->fd = fd = usmc_fd_lift(fd);
	seg->base = map_peer_segment(fd, len, &st);
	if (!seg->base) {
		seg_destroy(seg);
		return NULL;
	}
	seg->len = len;
	seg->dev = st.st_dev;
	seg->ino = st.st_ino;
	return seg;
}

uint32_t lgr_ring_map_peer(struct usmc_lgr *lgr, const struct clc_rmb_desc *desc, int fd,
			   struct usmc_ring *ring)
{
	struct usmc_seg *seg;

	if (desc->seg_id >= LGR_MAX_SEGS || !clc_rmb_desc_valid(desc) ||
	    (desc->new_seg != (fd >= 0)))
		goto sync_err;
	seg = lgr->rseg[desc->seg_id];
	if (desc->new_seg) {
		uint32_t reason;

		if (seg)
			goto sync_err;
		seg = peer_seg_open(fd, desc->seg_len, &reason);
		fd = -1;
		if (!seg)
			return reason;
		seg->id = desc->seg_id;
		lgr->rseg[desc->seg_id] = seg;
		if (desc->seg_id >= lgr->nrseg)
			lgr->nrseg = desc->seg_id + 1;
	}
	if (!seg || seg->len != desc->seg_len)
		goto sync_err;
	seg_peer_ring(ring, seg, desc->slot_off, desc->rmb_size);
	return 0;
sync_err:
	if (fd >= 0)
		usmc_sys.close(fd);
	return USMC_DECL_SYNCERR;
}

struct usmc_seg *lgr_adopt_peer_seg(struct usmc_lgr *lgr, uint32_t id, int fd, uint32_t len)
{
	struct stat st;
	struct usmc_seg *seg = id < LGR_MAX_SEGS && !lgr->rseg[id] ? seg_alloc() : NULL;

	if (!seg) {
		if (fd >= 0)
			usmc_sys.close(fd);
		return NULL;
	}
	seg->fd = fd;
	seg->base = fstat(fd, &st) ? NULL : map_peer_segment(fd, len, &st);
	if (!seg->base) {
		seg_destroy(seg);
		return NULL;
	}
	seg->dev = st.st_dev;
	seg->ino = st.st_ino;
	seg->id = id;
	seg->len = len;
	lgr->rseg[id] = seg;
	if (id >= lgr->nrseg)
		lgr->nrseg = id + 1;
	return seg;
}
