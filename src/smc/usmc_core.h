/* SPDX-License-Identifier: MIT */
/*
 * Link groups, segments and rings (net/smc's smc_core).
 *
 * A link group joins two processes: one Unix seqpacket channel for CLC
 * messages, and the shared segments each side allocates its rings from.
 * Connections between the same two processes share it, and a ring freed
 * by a closed connection is reused by the next one, so a second
 * connection maps nothing new.
 *
 * usmc_core.c keeps the link groups and their channel, usmc_seg.c the
 * segments and rings (the charge of their pages: usmc_charge.h).
 */
#ifndef USMC_CORE_H
#define USMC_CORE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "usmc_cdc.h"
#include "usmc_clc.h"
#include "usmc_lock.h"
#include "usmc_proc.h"

#define LGR_MAX_SEGS 4096
/*
 * Slots of a segment: as many as fit CLC_SEG_MAX, up to this.  A slot's
 * pages are allocated when it is first taken, so a large segment costs
 * only address space, and few segments mean few descriptors: three for
 * every 64 connections of a link group and size class.
 */
#define SEG_MAX_SLOTS 64

/*
 * SLOT_GIVEN: we let go of the connection while a forked process still
 * holds it; the slot is free once that one has closed it too.
 */
enum slot_state { SLOT_FREE = 0, SLOT_USED, SLOT_CLOSING, SLOT_GIVEN };

/*
 * Each slot of a local segment has its connection's own state (struct
 * usmc_conn_shared: locks, cursors, errors) in a second memfd the peer
 * never gets: what we read back of a connection is there, not in the
 * segment the peer maps.  Both memfds stay open (close-on-exec), so that
 * forked children share them and an exec'd image can map them again.
 */
#define SEG_OWN_SLOT 256

struct usmc_seg {
	uint32_t id;
	bool local;        /* ours (read-write) or the peer's (read-only) */
	bool sent;         /* local: the peer has it */
	bool keep_send;    /* local: send_fd stays once sent, for the next peer (usmc_seg_reuse.c) */
	uint8_t *base;
	uint32_t len;
	int fd;            /* the memfd */
	dev_t dev;         /* peer's: its memfd's identity, for mapping it once (usmc_seg_reuse.c) */
	ino_t ino;
	int send_fd;       /* local: a read-only descriptor of it for the peer, until sent */
	int own_fd;        /* local: the memfd of the slots' own state */
	uint8_t *own;      /* local: its mapping, SEG_OWN_SLOT bytes a slot */
	uint32_t rmb_size; /* local: size class of the slots */
	uint32_t slot_size;
	uint32_t nslots;
	uint32_t nused;
	uint64_t charged;  /* local: slots whose pages are allocated, a bit each */
	uint8_t *slot_state;                /* local: enum slot_state */
	const struct cdc_area **peer_cdc;   /* local: whose close frees a slot */
	uint32_t *peer_gen;                 /* local: that peer slot's generation */
};

/* A slot's own state (struct usmc_conn_shared, usmc_conn.h). */
static inline void *seg_own(const struct usmc_seg *seg, uint32_t slot)
{
	return seg->own + (size_t)slot * SEG_OWN_SLOT;
}

/* The CDC flags we published for a slot: the first member of its own state. */
static inline uint32_t seg_own_flags(const struct usmc_seg *seg, uint32_t slot)
{
	return atomic_load((_Atomic uint32_t *)seg_own(seg, slot));
}

enum lgr_role { LGR_CLIENT = 1, LGR_SERVER = 2 };

/*
 * Who may read a one-connection link group's segment: its segment is
 * reused, pages and all, only for another connection toward the same
 * (usmc_seg_reuse.c).  A server's peer is the client process that made
 * the channel (SO_PEERCRED); a client's is every holder of the listener,
 * each of which can take the Proposal's segment out of the backlog they
 * share.
 */
enum reuse_kind { REUSE_NONE = 0, REUSE_PEER, REUSE_LISTENER };

struct reuse_key {
	enum reuse_kind kind;
	uid_t uid;
	pid_t pid;      /* PEER: the client; LISTENER: the registry's listening process */
	uint16_t port;  /* LISTENER */
	uint64_t ino;   /* LISTENER of another namespace: its socket file in the rendezvous directory */
};

struct usmc_lgr {
	uint32_t id;
	int chan;          /* Unix seqpacket channel for CLC */
	enum lgr_role role;
	pid_t peer_pid;
	uid_t peer_uid;
	pid_t owner_pid;   /* a forked child must not use its parent's channel */
	uint16_t port;     /* client: the listener port that found the peer; server, rdv: the listener proven for */
	bool own_user;     /* client: that listener is our own user's (its registry entry is ours) */
	bool dead;         /* the channel is gone: the peer exited */
	int refs;          /* connections and handshakes in progress */
	uint32_t unread_answers; /* client: Proposals sent since we last read */
	bool hung_up;      /* a wait saw the channel's end: lgr_recv reports it, waits look no more */
	bool crowded;      /* client: the server has left most of the channel unread (lgr_crowded) */
	int chan_sndbuf;   /* client: the channel's SO_SNDBUF, once asked (lgr_crowded) */
	_Atomic int spare; /* a descriptor kept for the next one the peer sends us, or -1 */
	uint32_t nlseg;
	uint32_t nrseg;     /* one past the highest id in rseg: the walks stop there */
	struct usmc_seg *lseg[LGR_MAX_SEGS];
	struct usmc_seg *rseg[LGR_MAX_SEGS];
	struct lgr_backlog *backlog; /* received while we waited to send */
	struct lgr_backlog **backlog_tail;
	uint32_t backlog_len;
	int64_t born;      /* server: when its channel was taken */
	bool proposed;     /* server: a Proposal came on it */
	bool oneshot;      /* one connection's channel to a shared listener: goes with it */
	bool direct;       /* server, oneshot: its client proposed straight, counted in proposals */
	int taker;         /* client, oneshot: the server's end, kept to take the Proposal back */
	bool rdv;          /* oneshot: with another namespace, through the rendezvous directory */
	uint32_t refused;  /* client: the server's reason for refusing the link group */
	struct reuse_key reuse; /* oneshot: whom its segment may serve next */
	/* What its connections' spins taught, receiving and sending: usmc_poll.c */
	_Atomic uint8_t spin_misses[2];
	struct usmc_lgr *next;
};

/* One direction of a connection: a ring and the CDC area before it. */
struct usmc_ring {
	struct usmc_seg *seg;
	uint32_t slot;
	struct cdc_area *cdc;
	uint8_t *data;
	uint32_t size;
};

/* The process-wide lock of link groups, listeners and handshakes. */
void usmc_lock(void);
void usmc_unlock(void);

struct usmc_lgr *lgr_new(int chan, enum lgr_role role, pid_t peer_pid, uid_t peer_uid);
struct usmc_lgr *lgr_first(void);
/*
 * Our segment id of the link group, and the peer's, handed over through
 * exec: mapped from their descriptors, which they own from now on (closed
 * on failure too).  NULL if a descriptor is not what it should be.
 */
bool lgr_give_back_fds(void);
struct usmc_seg *lgr_adopt_seg(struct usmc_lgr *lgr, uint32_t id, int fd, int own_fd,
			       uint32_t rmb_size, uint32_t nslots, bool sent);
struct usmc_seg *lgr_adopt_peer_seg(struct usmc_lgr *lgr, uint32_t id, int fd, uint32_t len);
/* The ring of a slot of our segment. */
void seg_ring(struct usmc_ring *ring, struct usmc_seg *seg, uint32_t slot);
/* The ring of the peer's segment whose CDC area is at off (checked by the caller). */
void seg_peer_ring(struct usmc_ring *ring, struct usmc_seg *seg, uint32_t off, uint32_t size);
void lgr_put(struct usmc_lgr *lgr);
/* Unmaps and closes a segment (with its link group). */
void seg_destroy(struct usmc_seg *seg);
void lgr_mark_dead(struct usmc_lgr *lgr);
bool lgr_usable(const struct usmc_lgr *lgr);

/*
 * Takes a ring of size bytes from the link group's segments, creating a
 * segment if none has room.  *new_fd is the memfd to hand over when the
 * segment is new, else -1.  Returns 0, or a USMC_DECL_* reason.
 */
uint32_t lgr_ring_alloc(struct usmc_lgr *lgr, uint32_t size, struct usmc_ring *ring,
			struct clc_rmb_desc *desc, int *new_fd);

/*
 * Copies n bytes between the ring, at position pos, and the iovec, from
 * byte skip of it on: into the ring or out of it.
 */
void ring_copy_iov(const struct usmc_ring *ring, uint64_t pos, const struct iovec *iov, int iovcnt,
		   size_t skip, size_t n, bool into_ring);

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
/* Like lgr_ring_free, while other processes of a fork still use the ring. */
void lgr_ring_give_away(struct usmc_lgr *lgr, struct usmc_ring *ring,
			const struct cdc_area *peer_cdc, uint32_t peer_gen);

/*
 * Maps the peer's ring a CLC message describes, taking fd (the segment's
 * memfd) when the message brought one.  Returns 0 or a USMC_DECL_* reason;
 * fd is consumed either way.
 */
uint32_t lgr_ring_map_peer(struct usmc_lgr *lgr, const struct clc_rmb_desc *desc, int fd,
			   struct usmc_ring *ring);

/*
 * The link group's spare descriptor: given up just before a message that
 * may carry the peer's segment is received, so that the kernel has a slot
 * to put it in at RLIMIT_NOFILE, and taken again after.  Without one no
 * new connection is offered a ring (lgr_ring_alloc).
 */
void lgr_spare_release(struct usmc_lgr *lgr);
bool lgr_spare_take(struct usmc_lgr *lgr);
/* A link group goes: its spare is kept for the next one's lgr_spare_take. */
void lgr_spare_return(struct usmc_lgr *lgr);
/* At EMFILE: the spare kept is one descriptor more for the program. */
void lgr_spare_kept_close(void);

/*
 * Whether every slot of our segment is free, or can be freed now that the
 * peer has closed its side of the connection on it.
 */
bool seg_all_free(struct usmc_seg *seg);

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
void seg_reuse_drop_all(void);

/* Sends one CLC message, with fd attached unless it is -1. */
int lgr_send(struct usmc_lgr *lgr, const struct clc_msg *msg, int fd);
/* The same with a second descriptor: a Proposal across namespaces carries our TCP socket. */
int lgr_send2(struct usmc_lgr *lgr, const struct clc_msg *msg, int fd, int fd2);

/* Sends a message that may be dropped (Confirm) if the channel is full now. */
int lgr_send_try(struct usmc_lgr *lgr, const struct clc_msg *msg);

/*
 * Receives one CLC message without blocking.  Returns 1 with *msg (and
 * *fd, or -1), 0 if none is waiting, -1 if the channel is gone.  A
 * malformed message sets *reason and returns 1 with msg->type 0.
 */
int lgr_recv(struct usmc_lgr *lgr, struct clc_msg *msg, int *fd, uint32_t *reason);

/*
 * The channel a wait of ours reads beside its connection, or -1.  A
 * client's channel brings the answers to its Proposals, and a server
 * whose channel toward us is full waits on us, in accept(), for a CLC
 * timeout, then gives the link group up: any wait of ours keeps taking
 * them in, as the kernel takes CLC messages in whatever its process does.
 */
int lgr_watched_chan(struct usmc_lgr *lgr);
/* Takes in what came on a watched channel (poll said so), for lgr_recv to hand out. */
void lgr_take_in(struct usmc_lgr *lgr, short revents);

/*
 * Whether the peer has left more than three quarters of what our channel
 * toward it can hold unread (lgr->crowded, looked at again).  A server
 * reads Proposals only as it accepts, and a burst of connections to a busy
 * one would fill the channel, a smaller backlog than its listener's (some
 * 270 messages): the client's next Proposals go on another link group, as
 * net/smc opens one when a link group is full.  Looked at every 32
 * Proposals, which the quarter left has room for.
 */
bool lgr_crowded(struct usmc_lgr *lgr);

/* Milliseconds on the monotonic clock. */
int64_t usmc_now_ms(void);

#endif /* USMC_CORE_H */
