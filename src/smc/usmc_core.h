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
 * The structures of all three are here; their functions are declared
 * beside their files: usmc_core.c keeps the link groups (this header),
 * usmc_channel.h their channel, usmc_seg.h the segments and rings (the
 * peer's: usmc_seg_peer.c; the charge of their pages: usmc_charge.h;
 * those kept between one-connection link groups: usmc_seg_reuse.h).
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
 * SLOT_GIVEN: we put the connection while a forked process still
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
#define SEG_OWN_SLOT 512

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
	uint32_t *charged; /* local: a slot's ring bytes whose pages are allocated (its header too, if any) */
	uint8_t *slot_state;                /* local: enum slot_state */
	const struct cdc_area **peer_cdc;   /* local: whose close frees a slot */
	uint32_t *peer_gen;                 /* local: that peer slot's generation */
	struct slot_holder **given;         /* local: a SLOT_GIVEN slot's TCP socket, if known */
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
	/*
	 * PEER: the client.  LISTENER: the process that made the listener, as
	 * the registry names it; 0 for one of another namespace, which file
	 * names instead (its socket file in the rendezvous directory, by
	 * inode and change time: usmc_rendezvous_list.c).
	 */
	pid_t pid;
	uint16_t port;  /* LISTENER */
	uint64_t file;  /* LISTENER of another namespace */
};

/*
 * The carriers a client keeps until its Proposal is answered: one per
 * listener it posted to (an SO_REUSEPORT group's members, the rendezvous
 * directory's listeners of the port), the rest closed at once.
 */
#define LGR_CARRIERS 4

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
	int carriers[LGR_CARRIERS]; /* client, oneshot: what took the server's end there, until settled */
	uint8_t ncarriers;
	bool rdv;          /* oneshot: with another namespace, through the rendezvous directory */
	/*
	 * Client: the server's reason for refusing the link group, or us, its
	 * user (a marked Decline 0x03000002): no Proposal goes on it.  Server:
	 * the reason each of its Proposals is declined with, once its
	 * connection is proven (a user we do not admit: af_channel_admit).
	 */
	uint32_t refused;
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
void lgr_put(struct usmc_lgr *lgr);
/* Its peer is gone (net/smc's smc_lgr_terminate): destroyed with its last put. */
void lgr_terminate(struct usmc_lgr *lgr);
bool lgr_usable(const struct usmc_lgr *lgr);
/*
 * Closes the carriers kept (af_carrier_send): once the Proposal is
 * answered, the holder that answered has taken the channel out of its
 * carrier.
 */
void lgr_carriers_close(struct usmc_lgr *lgr);

/*
 * The link group's spare descriptor: given up just before a message that
 * may carry the peer's segment is received, so that the kernel has a slot
 * to put it in at RLIMIT_NOFILE, and taken again after.  Without one no
 * new connection is offered a ring (lgr_ring_alloc).
 */
void lgr_spare_close(struct usmc_lgr *lgr);
bool lgr_spare_take(struct usmc_lgr *lgr);
/* A link group goes: its spare is kept for the next one's lgr_spare_take. */
void lgr_spare_keep(struct usmc_lgr *lgr);
/* At EMFILE: the spare kept is one descriptor more for the program. */
void lgr_spare_kept_close(void);

/* Milliseconds on the monotonic clock. */
int64_t usmc_now_ms(void);

#endif /* USMC_CORE_H */
