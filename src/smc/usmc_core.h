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
 * The registry (a small shared file per user and network namespace)
 * tells clients which ports have a usmc listener and counts the Proposals
 * sent to each, so neither a plain server nor a plain client pays for a
 * usmc peer that is not there.
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

/* One registry entry per TCP port. */
/* Processes of one SO_REUSEPORT group that get shared memory: a few. */
#define REG_MEMBERS 4

struct reg_port {
	_Atomic int32_t pid;        /* the usmc process listening, or 0 */
	_Atomic uint32_t proposals; /* Proposals sent toward this port straight to its listener */
	_Atomic uint32_t read;      /* of them, read by the listener or one of its holders */
	_Atomic uint32_t flags;     /* REG_* */
	/* A shared listener's queue (REG_SHARED, usmc_queue.c): */
	_Atomic uint32_t queued;    /* Proposals put into it */
	_Atomic uint32_t settled;   /* Proposals taken out of it and answered */
	_Atomic uint32_t holding;   /* processes holding entries taken from it */
	_Atomic uint32_t handed;    /* entries a holder put back or refused */
	/* The processes of an SO_REUSEPORT group (REG_REUSEPORT), each its own queue: */
	_Atomic int32_t members[REG_MEMBERS];
};

/*
 * Several processes hold the listener (a prefork server's workers, after
 * fork): whichever accepts a connection must find its Proposal, so each
 * Proposal comes on a channel of its own, into the Unix listener's
 * backlog that all of them share (usmc_queue.c).
 */
#define REG_SHARED 1u
/*
 * A client found the listener's channel full (others fill its backlog):
 * the listener looks at it at its next accept, and clears this once it
 * has taken all it holds.
 */
#define REG_KNOCK 2u
/*
 * The port's listeners are an SO_REUSEPORT group: the kernel gives each
 * connection to one member, so each member has a queue of its own
 * (reg_member_addr) and a client puts its channel into every member's
 * (usmc_queue.c).  Set with REG_SHARED.
 */
#define REG_REUSEPORT 4u

/*
 * Allocates len bytes of a memfd from off, charging them to our memory
 * cgroup now, if it has room for them beside the reserve it keeps for the
 * application: 0, or USMC_DECL_MEM with nothing kept.
 */
uint32_t usmc_charge(int fd, uint64_t off, uint64_t len);

/* Our network namespace's inode number, unique on the host: 0 if /proc does not say. */
unsigned long usmc_netns_inode(void);

/* The registry entry of a port, or NULL if there is no registry. */
struct reg_port *reg_port(uint16_t port);

/*
 * The Unix address of the channel of a port's listener run by uid; with
 * other_users, the one for clients of the users its policy allows.
 */
socklen_t reg_listener_addr(uid_t uid, uint16_t port, bool other_users, void *sun);
/*
 * Whose registry this process has: its user's when it first looked, kept
 * by a child that changes its user after a fork (a root master's workers,
 * which inherit the mapping).  Its listeners are that user's, and a
 * client looks for them, and checks their names, as that user's.
 */
uid_t reg_owner(void);
/* The Unix name of the queue of member pid of the port's SO_REUSEPORT group. */
socklen_t reg_member_addr(uid_t uid, uint16_t port, int32_t pid, void *sun);

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
	uint8_t *base;
	uint32_t len;
	int fd;            /* the memfd */
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

/* A slot's own state (struct usmc_conn_shared, usmc_sock.h). */
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
