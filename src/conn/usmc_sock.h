/* SPDX-License-Identifier: MIT */
/*
 * The usmc socket (usmc_sock.c): what the library keeps beside a kernel
 * TCP socket, its state as the program and usmc-stat see it, and why it
 * is plain TCP.  The table that finds it by descriptor: usmc_fdtab.h.
 */
#ifndef USMC_SOCK_H
#define USMC_SOCK_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "usmc_conn.h"
#include "usmc_diag.h"

struct srv_proposal;

enum sock_state {
	SOCK_PLAIN = 0, /* every call is the system call (fallback) */
	SOCK_INIT,      /* may still try SMC at connect() or listen() */
	SOCK_LISTEN,    /* a usmc listener */
	SOCK_ACCEPTING, /* server: Proposal proven, Accept or Decline at the socket's first use */
	SOCK_PROPOSED,  /* client: Proposal sent, Accept or Decline to come */
	SOCK_SMC,       /* data through shared memory */
};

/* How a socket's recent spins before sleeping went: see usmc_wait.c. */
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
	uint16_t outside_port;   /* a listener of an SO_REUSEPORT group with no member slot: its port */
	bool linger_reset;       /* SO_LINGER {1, 0}: close resets */
	int busy_poll_us;        /* SO_BUSY_POLL as the program set it */
	int rcvtimeo_ms;         /* SO_RCVTIMEO, SO_SNDTIMEO: 0 waits for ever */
	int sndtimeo_ms;
	int rcvlowat;            /* SO_RCVLOWAT: 0 or 1 means any byte */
	bool oobinline;          /* SO_OOBINLINE set before shared memory (then: usmc_rx_set_oobinline) */
	bool shut_wr;            /* shut down by this process; by any holder: sock_shut() */
	bool shut_rd;
	_Atomic bool nonblock;   /* O_NONBLOCK as last seen or set (usmc_sock_nonblocking) */
	_Atomic bool hs_settling; /* a thread settles the handshake's answer */
	_Atomic unsigned calls;  /* calls asleep on it, not yet returned; USMC_CALLS_CLOSED */
	struct usmc_spin_hist spin[2]; /* of waits to receive [0] and to send [1] */
	struct usmc_listener *listener;
	struct srv_proposal *accepting; /* SOCK_ACCEPTING: the Proposal to answer */
	struct usmc_conn *conn;
	struct usmc_diag_sock *diag;
	struct usmc_diag_sock diag_private; /* when there is no shared table */
};

/*
 * Whether the socket was shut down for reading or writing: by this
 * process (s->shut_*), or by another holder of the connection, which
 * only the connection's own state shows.
 */
static inline bool sock_shut(const struct usmc_sock *s, uint32_t which)
{
	if (which == CONN_SHUT_RD ? s->shut_rd : s->shut_wr)
		return true;
	return s->conn && s->conn->sh && (atomic_load(&s->conn->sh->shut) & which);
}

/* Moves a socket to a new state, for the program and for usmc-stat. */
void usmc_sock_set_state(struct usmc_sock *s, enum sock_state state);
/* The socket's state as usmc_info tells it (enum usmc_mode). */
int usmc_sock_mode(const struct usmc_sock *s);
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

/*
 * Whether a call on s with flags returns rather than waits (MSG_DONTWAIT,
 * O_NONBLOCK).  O_NONBLOCK is the open file description's, which another
 * process sharing it may change: asked of the kernel each time, except
 * under a seccomp filter, where fcntl may be what kills the process
 * (OpenSSH's pre-auth sandbox); there it is the flag as last seen, or as
 * set since through socket(), accept4(), fcntl() or ioctl(FIONBIO), which
 * keep it with usmc_sock_note_nonblock.
 */
bool usmc_sock_nonblocking(struct usmc_sock *s, int flags);
void usmc_sock_note_nonblock(struct usmc_sock *s, bool on);

#endif /* USMC_SOCK_H */
