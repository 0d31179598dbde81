/* SPDX-License-Identifier: MIT */
/*
 * The usmc socket: what the library keeps beside a kernel TCP socket, and
 * the table that finds it by descriptor.
 */
#ifndef USMC_SOCK_H
#define USMC_SOCK_H

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "usmc_config.h"
#include "usmc_core.h"
#include "usmc_diag.h"
#include "usmc_lock.h"

enum sock_state {
	SOCK_PLAIN = 0, /* every call is the system call (fallback) */
	SOCK_INIT,      /* may still try SMC at connect() or listen() */
	SOCK_LISTEN,    /* a usmc listener */
	SOCK_PROPOSED,  /* client: Proposal sent, Accept or Decline to come */
	SOCK_SMC,       /* data through shared memory */
};

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
	uint32_t rung_data;    /* the peer's want_data we last rang for */
	uint32_t rung_space;   /* the peer's want_space we last rang for */
	_Atomic uint32_t peer_flags; /* CDC_PEER_* latched from the peer */
	_Atomic int tcp_state;       /* enum cdc_tcp_state */
	_Atomic int tcp_err;
	_Atomic int err;       /* pending error, reported once, as TCP's sk_err */
	_Atomic bool reset;    /* reset by either side: reads end, writes get EPIPE */
	bool aborted;          /* we reset the connection */
	bool rung_first;       /* the first data has been rung for */
	_Atomic uint32_t drainer; /* the thread reading doorbells now, or 0 */
	/* Threads asleep on the TCP socket, and the peer's bells each had seen: usmc_wake.c. */
	_Atomic uint64_t sleepers[USMC_SLEEPERS];
	/* The processes that hold the connection, counted, and the slot's gen: usmc_holders.c. */
	_Atomic uint64_t holders;
};

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
	struct usmc_conn *hs_next;
	struct usmc_sock *sock;
	struct usmc_diag_sock *diag; /* the socket's counters, which usmc-stat reads */
};

/* How a socket's recent spins before sleeping went: see usmc_poll.c. */
struct usmc_spin_hist {
	_Atomic uint8_t misses; /* running average of full spins that missed, of 256 */
	_Atomic uint8_t waits;  /* counts waits, for an occasional full spin */
};

struct usmc_sock {
	int fd;                  /* one open descriptor of the socket */
	_Atomic int refs;        /* descriptors naming it (dup) */
	int domain;
	_Atomic int state;       /* enum sock_state */
	uint32_t reason;         /* why it fell back */
	bool reason_by_peer;
	int sndbuf;              /* SO_SNDBUF / SO_RCVBUF as the program set them */
	int rcvbuf;
	int nodelay;             /* TCP_NODELAY as the program set it */
	bool cork;               /* TCP_CORK as the program set it (kept from the kernel in SMC) */
	int defer_accept;        /* a usmc listener's TCP_DEFER_ACCEPT, kept from the kernel */
	bool linger_reset;       /* SO_LINGER {1, 0}: close resets */
	int busy_poll_us;        /* SO_BUSY_POLL as the program set it */
	int rcvtimeo_ms;         /* SO_RCVTIMEO, SO_SNDTIMEO: 0 waits for ever */
	int sndtimeo_ms;
	int rcvlowat;            /* SO_RCVLOWAT: 0 or 1 means any byte */
	bool shut_wr;
	bool shut_rd;
	_Atomic bool hs_settling; /* a thread settles the handshake's answer */
	struct usmc_spin_hist spin[2]; /* of waits to receive [0] and to send [1] */
	struct usmc_listener *listener;
	struct usmc_conn *conn;
	struct usmc_diag_sock *diag;
	struct usmc_diag_sock diag_private; /* when there is no shared table */
};

#define FDTAB_CHUNK_BITS 10
#define FDTAB_CHUNK (1 << FDTAB_CHUNK_BITS)
#define FDTAB_CHUNKS 1024

extern _Atomic(struct usmc_sock *) *_Atomic usmc_fdtab[FDTAB_CHUNKS];

static inline struct usmc_sock *usmc_sock_get(int fd)
{
	_Atomic(struct usmc_sock *) *chunk;

	if ((unsigned)fd >= FDTAB_CHUNK * FDTAB_CHUNKS)
		return NULL;
	chunk = atomic_load_explicit(&usmc_fdtab[fd >> FDTAB_CHUNK_BITS], memory_order_acquire);
	if (!chunk)
		return NULL;
	return atomic_load_explicit(&chunk[fd & (FDTAB_CHUNK - 1)], memory_order_acquire);
}

/* The socket, if it needs more than the system call: the one fast-path branch. */
static inline struct usmc_sock *usmc_sock_active(int fd)
{
	struct usmc_sock *s = usmc_sock_get(fd);

	return s && atomic_load_explicit(&s->state, memory_order_acquire) >= SOCK_PROPOSED ? s
												: NULL;
}

void af_listener_claim(struct usmc_sock *ls);

/*
 * usmc_sock_active for a descriptor the program waits on or accepts
 * from: a listener it waits on in a process that did not make it (a
 * prefork worker) is claimed first (af_listener_claim).
 */
static inline struct usmc_sock *usmc_sock_waited(int fd)
{
	struct usmc_sock *s = usmc_sock_get(fd);
	int state = s ? atomic_load_explicit(&s->state, memory_order_acquire) : SOCK_PLAIN;

	if (state == SOCK_LISTEN)
		af_listener_claim(s);
	return state >= SOCK_PROPOSED ? s : NULL;
}

struct usmc_sock *usmc_sock_new(int fd, int domain);
/* Whether accept() found fd to be no TCP listener (af_listener_adopt); on/off. */
void usmc_fd_mark_not_listener(int fd, bool on);
bool usmc_fd_not_listener(int fd);
/* Names s by one more descriptor, as dup does; false if the table has no room. */
bool usmc_sock_alias(struct usmc_sock *s, int fd);
/* Drops fd's entry; true if it was the socket's last descriptor (freed). */
bool usmc_sock_forget(int fd);
/* Everything close() does to a usmc socket but the kernel's close. */
void usmc_release_fd(int fd);
int usmc_fcntl_dupfd(int fd, int cmd, int min);

/* usmc_sock.c: moves a socket to a new state, for the program and for usmc-stat. */
void usmc_sock_set_state(struct usmc_sock *s, enum sock_state state);
/*
 * How many sockets are in SOCK_PROPOSED, waiting for their answer: 0 lets
 * a wait skip looking for them (usmc_epoll.c).  A socket freed in that
 * state stays counted, which costs such a wait a look, nothing more.
 */
extern _Atomic int usmc_socks_proposed;

/* Records why a socket is plain TCP, and counts it. */
void usmc_sock_fallback(struct usmc_sock *s, uint32_t reason, bool by_peer);
/*
 * From now on every new socket is plain TCP from its start, and a listener
 * declines every Proposal, for this reason; usmc_plain_reason: 0 or it.
 */
void usmc_plain_from_now(uint32_t reason);
uint32_t usmc_plain_reason(void);

/* usmc_wait.c: how long a waiter on s (NULL: any) spins, in µs (the settings: usmc_config.h). */
int usmc_spin_us(const struct usmc_sock *s);
/* A short spin before sleeping: check() returns how many are ready; the spin ends with it. */
int usmc_spin_ready(int (*check)(void *), void *arg);

/* af_usmc.c: the handshake */
int af_connect(struct usmc_sock *s, const struct sockaddr *addr, socklen_t len);
int af_listen(struct usmc_sock *s, int backlog);
/*
 * A listener handed over across exec (usmc_exec_listen.c): fd, the TCP
 * listener, with ufd, its Unix listener, made by owner.  false if not.
 * ufd_held: whether a listener of this process has ufd.
 */
bool af_listener_inherit(int fd, int ufd, uint16_t port, pid_t owner, uid_t uid, bool member);
bool af_listener_ufd_held(int ufd);
/* Makes a listening socket a usmc listener, or TCP with the reason why. */
void af_listener_open(struct usmc_sock *s);
/*
 * A TCP listener this process did not make with usmc (systemd socket
 * activation, inetd, SCM_RIGHTS, exec): made a usmc listener at its
 * first accept.  The socket, or NULL for anything else.
 */
struct usmc_sock *af_listener_adopt(int fd);
int af_accept(struct usmc_sock *ls, int fd, const struct sockaddr *peer, socklen_t peer_len);
/* Waits (or not) for the Accept or Decline of a proposed connection. */
int af_resolve(struct usmc_sock *s, bool wait);
/* Settles the handshake if its answer is in already: one look at the channel. */
void af_resolve_if_answered(struct usmc_sock *s);
/* Closing a socket whose handshake is pending: settles it or leaves it to the server. */
void af_resolve_before_close(struct usmc_sock *s);
void af_listener_close(struct usmc_sock *s);
/*
 * usmc_conn.c: the connections this process accepted in shared memory,
 * which a late Confirm or Decline of their client may still reach (lock
 * held): added at accept, found by link group and token, and forgotten
 * when one closes (no late Decline may reach it any more).
 */
void af_srv_conn_add(struct usmc_conn *conn);
struct usmc_conn *af_srv_conn_find(struct usmc_lgr *lgr, uint64_t token);
void af_conn_forget(struct usmc_conn *conn);
/* Closing before the answer came: the ring stays for the server to read. */
void af_orphan(struct usmc_sock *s);

/* usmc_tx.c, usmc_rx.c */
/*
 * A send's steps, which the socket's send call (usmc_io.c) loops over,
 * settling the handshake between them.  usmc_tx_refused: the answer of a
 * send the connection takes no more (shut down, reset), or 0.
 * usmc_tx_pass: one pass over what is left of iov (total bytes, *sent of
 * them written): TX_DONE with the call's answer in *result (the rest went
 * to TCP, or it ends here), TX_WROTE when *sent grew, TX_FULL when the
 * ring had no room, TX_AGAIN when a reset came meanwhile (start over).
 * usmc_tx_wait: sleeps until the ring has room (0), or -1 with errno.
 */
enum tx_pass { TX_DONE, TX_WROTE, TX_FULL, TX_AGAIN };
ssize_t usmc_tx_refused(struct usmc_sock *s, int flags);
enum tx_pass usmc_tx_pass(struct usmc_sock *s, const struct iovec *iov, int iovcnt, size_t total,
			  size_t *sent, int flags, ssize_t *result);
int usmc_tx_wait(struct usmc_sock *s, int64_t *deadline);
ssize_t usmc_rx_recvmsg(struct usmc_sock *s, const struct iovec *iov, int iovcnt, int flags);
int usmc_rx_avail(struct usmc_sock *s, uint64_t *avail);
int usmc_tx_space(struct usmc_sock *s, uint64_t *space);
/* Re-reads the peer's cursors and flags; 0, or -1 after aborting. */
int usmc_conn_refresh(struct usmc_conn *conn);
void usmc_conn_abort(struct usmc_sock *s);
/* Marks the connection reset, with err to report once. */
void usmc_conn_set_reset(struct usmc_conn *conn, int err);
/* After producing while the handshake was open: ring if the peer waits. */
void usmc_tx_notify(struct usmc_sock *s);
/* Replays what our ring holds into the TCP socket after a Decline. */
int usmc_tx_replay(struct usmc_sock *s);

/* usmc_close.c */
int usmc_close_conn(struct usmc_sock *s);
/*
 * The last close of an SMC connection in this process (descriptor fd):
 * the end of its hold, and of the connection if it was the last holder.
 */
void usmc_close_conn_last(struct usmc_sock *s, int fd);
/* usmc_fd.c: before the process exits: ends its holds, drains the doorbells where it was the last holder. */
void usmc_exit_drain(void);
int usmc_shutdown_conn(struct usmc_sock *s, int how);
void usmc_conn_free(struct usmc_conn *conn);

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

	flags &= CDC_PEER_DONE_WRITING | CDC_PEER_CONN_CLOSED | CDC_PEER_CONN_ABORT;
	return flags & ~atomic_load_explicit(&conn->sh->peer_flags, memory_order_relaxed);
}

/*
 * usmc_holders.c: the processes holding a connection, counted in its
 * shared state.  A new connection has this process as its one holder.
 */
void usmc_holders_init(struct usmc_conn *conn);
/* A connection an exec handed over: held by this image or not. */
void usmc_holders_adopt(struct usmc_conn *conn, bool holds);
/*
 * Ends this process's hold of the connection (once; the socket's inode,
 * or 0 for fd's, for the look in /proc): true if it was the last holder,
 * which ends the connection for the peer.
 */
bool usmc_holder_last(struct usmc_conn *conn, int fd, unsigned long inode);
/* Ends this process's hold, the connection going on or not (a handshake's). */
void usmc_holder_drop(struct usmc_conn *conn);
/*
 * Around a close: no fork counts the connection's holders meanwhile, so
 * a child has both the descriptor and its count, or neither.
 */
void usmc_holders_enter(void);
void usmc_holders_leave(void);
/* A program about to be spawned with the connection: counted; false if it ended. */
bool usmc_holder_add(struct usmc_conn *conn);
/* A spawn that failed: takes back a count usmc_holder_add made. */
void usmc_holder_sub(struct usmc_conn *conn);
/* From the first connection on, fork() counts the child as a holder of each. */
void usmc_holders_watch_fork(void);
/* Sets the fork handlers that give a forked child its own usmc-stat slots (usmc_fdtab.c). */
void usmc_fd_watch_fork(void);

bool usmc_sock_nonblocking(const struct usmc_sock *s, int flags);
/*
 * A descriptor is closed: epoll entries of it go (other_fd -1: it was the
 * socket's last) or follow other_fd, and those of an epoll set it was.
 */
void usmc_epoll_fd_closed(int fd, int other_fd);

/* usmc_wake.c: drains doorbells, recording a closed or reset TCP connection. */
int usmc_conn_drain(struct usmc_sock *s);
/* usmc_wait.c */
/* Spins a little while for POLLIN or POLLOUT; true if it came. */
bool usmc_spin_until_ready(struct usmc_sock *s, short events);
short usmc_conn_revents(struct usmc_sock *s, short events);

/* A connection's state at one moment, taken once, for readiness and edges. */
struct conn_view {
	uint64_t avail;    /* bytes to read */
	uint64_t space;    /* room to write */
	uint64_t rx_prod;  /* the peer's cursors as last validated */
	uint64_t tx_cons;
	uint32_t flags;    /* CDC_PEER_* */
	int tcp_state;
	int tcp_err;
	bool reset;
	int err;
};

/*
 * Refreshes the cursors once, under the receive lock, and fills the
 * view's amounts and cursors (avail, space, rx_prod, tx_cons); -1 after
 * aborting a connection whose peer broke the protocol.
 */
int usmc_conn_amounts(struct usmc_sock *s, struct conn_view *v);
/* Refreshes the cursors and takes the view; -1 if the peer broke the protocol. */
int usmc_conn_view(struct usmc_sock *s, struct conn_view *v);
/* usmc_conn_revents of a view taken before. */
short usmc_conn_view_revents(const struct usmc_sock *s, const struct conn_view *v, short events);
/*
 * Sleeps until a blocking read (POLLIN) or write (POLLOUT) may go on: a
 * doorbell, timeout_ms (-1: none) or a signal; it may return early.
 * 0, or -1 with errno.  usmc_wake.c.
 */
int usmc_conn_sleep(struct usmc_sock *s, short events, int timeout_ms);
/*
 * After a read: if it emptied the ring while doorbells wait in the TCP
 * socket, arms and reads them, so that the descriptor is readable again
 * exactly when new data comes (a program may poll() it, or exit, and
 * unread doorbells would turn its close into a reset).
 */
void usmc_conn_settle(struct usmc_sock *s);
/* Rings the peer's doorbell, unless the peer or the TCP connection is gone. */
void usmc_conn_ring(struct usmc_sock *s);
/*
 * A blocking send or receive with the socket's timeout (0: none): the
 * milliseconds left until deadline, 0 once it passed (errno EAGAIN, as
 * TCP), -1 for no limit.  *deadline is set on the first call.
 */
int usmc_wait_left(int timeo_ms, int64_t *deadline);

/* usmc_policy.c */
bool usmc_policy_allows(const struct sockaddr *addr);
/* Whether shared memory may be shared with a process of this user. */
bool usmc_peer_user_allowed(uid_t uid);
/* The other users named by "allow-user" lines; their count. */
int usmc_policy_other_users(const uid_t **uids);
bool usmc_addr_is_local(const struct sockaddr *addr);

#endif /* USMC_SOCK_H */
