/* SPDX-License-Identifier: MIT */
/*
 * The connection (net/smc's smc_conn): one shared-memory connection as
 * this process holds it, its state in the segment that every holder
 * maps, the peer's flags read from its CDC area; its reset and abort, and
 * the connections accepted here that a late answer of their client may
 * still reach (usmc_conn.c).
 */
#ifndef USMC_CONN_H
#define USMC_CONN_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "usmc_core.h"
#include "usmc_diag.h"

struct usmc_sock;

/* Threads of all the processes holding a connection that sleep on it at once, exactly. */
#define USMC_SLEEPERS 8

/*
 * A connection's own state: cursors, locks, errors.  It lives in its
 * slot's place of the segment's own memfd (SEG_OWN_SLOT), which the peer
 * never gets, mapped MAP_SHARED: a process forked from ours shares it, as
 * does an exec'd image that maps it again, and all go on using the
 * connection as they would a TCP socket.
 */
struct usmc_conn_shared {
	_Atomic uint32_t flags_out; /* CDC_PEER_* we published to the peer (first: core reads it) */
	pthread_mutex_t tx_lock; /* process-shared and robust */
	pthread_mutex_t rx_lock;
	uint64_t tx_prod;      /* bytes we produced into our ring */
	_Atomic uint64_t tx_cons_seen; /* bytes the peer consumed of it, validated */
	uint64_t rx_cons;      /* bytes we consumed of the peer's ring */
	uint64_t rx_prod_seen; /* bytes the peer produced into it, validated */
	/* The laps of our ring (the writer's: tx_lock, and rx_lock to change) and the peer's. */
	struct cdc_laps tx_laps;
	struct cdc_laps rx_laps; /* rx_lock; shift 0 until the first look at the peer's */
	bool tx_full;          /* a write found our ring full in this lap: it may grow at its end */
	bool tx_grow_refused;  /* the pages of a longer lap could not be had: it stays as it is */
	uint32_t rung_data;    /* the peer's want_data we last rang for */
	uint32_t rung_space;   /* the peer's want_space we last rang for */
	_Atomic uint32_t peer_flags; /* CDC_PEER_* latched from the peer */
	_Atomic int tcp_state;       /* enum cdc_tcp_state */
	_Atomic int tcp_err;
	_Atomic int err;       /* pending error, reported once, as TCP's sk_err */
	_Atomic bool reset;    /* reset by either side: reads end, writes get EPIPE */
	bool aborted;          /* we reset the connection */
	bool rung_first;       /* the first data has been rung for */
	_Atomic bool tcp_data;   /* a write went on the TCP socket once the peer was gone */
	_Atomic uint32_t drainer; /* the thread reading doorbells now, or 0 */
	/* Threads asleep on the TCP socket, and the peer's bells each had seen: usmc_wake.c. */
	_Atomic uint64_t sleepers[USMC_SLEEPERS];
	/* The processes that hold the connection, counted, and the slot's gen: usmc_holders.c. */
	_Atomic uint64_t holders;
	_Atomic int32_t fork_child; /* the last process that took a hold by fork, or 0 */
	struct cdc_urg rx_urg; /* urgent data from the peer (usmc_rx.c; rx_lock) */
	_Atomic uint32_t urg_bells_read; /* the peer's urgent doorbells read in the TCP stream */
	/* The socket's shutdowns (CONN_SHUT_*), by any holder: a shutdown is every holder's. */
	_Atomic uint32_t shut;
};

#define CONN_SHUT_RD 1u
#define CONN_SHUT_WR 2u

_Static_assert(sizeof(struct usmc_conn_shared) <= SEG_OWN_SLOT &&
		       offsetof(struct usmc_conn_shared, flags_out) == 0,
	       "the connection's state fits its slot of own state, flags first");

/* One shared-memory connection, as this process holds it. */
struct usmc_conn {
	struct usmc_lgr *lgr;
	struct usmc_ring tx; /* ours: our data and our CDC area */
	struct usmc_ring rx; /* the peer's, mapped read-only */
	struct usmc_conn_shared *sh; /* in tx's slot header, once tx exists */
	bool rx_mapped;      /* the client learns it from the Accept */
	_Atomic bool holds;  /* this process is one of sh->holders (usmc_holders.c) */
	uint32_t holders_gen; /* the slot's generation, in sh->holders */
	uint32_t fork_seen;  /* the fork whose prepare handler counted it */
	/*
	 * usmc_holders_shared_now, under LOCK_EPOLL: the count it last saw,
	 * its asks since, and whether /proc showed no other holder then
	 */
	uint64_t recount_word;
	uint32_t recount_asks, recount_next;
	bool recount_alone;
	uint32_t peer_gen;   /* generation of the peer's slot when we met it */
	/* client handshake */
	uint64_t token;
	int hs_result;         /* 0 pending, CLC_ACCEPT or CLC_DECLINE */
	uint32_t hs_reason;
	bool hs_local;         /* we gave up, the peer did not decline */
	int64_t hs_check_at;   /* when to look whether anyone can still answer */
	int64_t hs_accepted_at; /* when we first saw our connection accepted */
	int64_t hs_withdrawn_at; /* when we withdrew the Proposal (usmc_clc.h) */
	bool hs_reset;          /* no answer to the withdrawal: reset the connection */
	bool hs_marker;         /* our socket's cookie leads the server's stream (CLC_DECL_MARKER) */
	int hs_slot;            /* its Proposal's place in the registry's list, or -1 */
	uint64_t hs_slot_tag;
	uint64_t hs_cookie;     /* client: our TCP socket's, as the Proposal names it */
	/* Across namespaces: its place in the rendezvous directory's list (usmc_rendezvous_taken.h). */
	int hs_taken_slot;
	uint64_t hs_taken_tag;
	bool hs_redirected;     /* a listener without the Proposal took the connection: take it back */
	struct usmc_conn *hs_next;
	struct usmc_conn **hs_pprev; /* server: where srv_conns points at us, or NULL (usmc_conn.c) */
	struct usmc_sock *sock;
	struct usmc_diag_sock *diag; /* the socket's counters, which usmc-stat reads */
};

/*
 * Publishes connection state flags in our CDC area, for the peer, and
 * keeps them in our own state, where we read them back.
 */
static inline void conn_publish_flags(struct usmc_conn *conn, uint32_t flags)
{
	atomic_fetch_or(&conn->sh->flags_out, flags);
	atomic_fetch_or_explicit(&conn->tx.cdc->flags, flags, memory_order_release);
}

/* The peer's CDC area whose close lets our ring go, or NULL if none is needed. */
static inline const struct cdc_area *conn_peer_cdc(const struct usmc_conn *conn)
{
	if (!conn->rx_mapped || !conn->sh ||
	    (atomic_load(&conn->sh->peer_flags) & (CDC_PEER_CONN_CLOSED | CDC_PEER_CONN_ABORT)))
		return NULL;
	return conn->rx.cdc;
}

/* The peer's CDC_PEER_* flags we have not latched yet (any garbage bits dropped). */
static inline uint32_t conn_peer_flags_new(const struct usmc_conn *conn)
{
	uint32_t flags = atomic_load_explicit(&conn->rx.cdc->flags, memory_order_acquire);

	flags &= CDC_PEER_DONE_WRITING | CDC_PEER_CONN_CLOSED | CDC_PEER_CONN_ABORT | CDC_PEER_EXITING;
	return flags & ~atomic_load_explicit(&conn->sh->peer_flags, memory_order_relaxed);
}

/*
 * Aborts the connection (we reset it): the peer reads ECONNRESET, from the
 * CDC flag and from the TCP reset at close.
 */
void usmc_conn_abort(struct usmc_sock *s);
/* Marks the connection reset, by either side, with err to report once. */
void usmc_conn_set_reset(struct usmc_conn *conn, int err);

/*
 * The connections this process accepted in shared memory, which a late
 * Confirm or Decline of their client may still reach (lock held): added
 * at accept, found by link group and token, and forgotten when one
 * closes (no late Decline may reach it any more).
 */
void af_srv_conn_add(struct usmc_conn *conn);
struct usmc_conn *af_srv_conn_find(struct usmc_lgr *lgr, uint64_t token);
void af_srv_conn_del(struct usmc_conn *conn);

#endif /* USMC_CONN_H */
