/* SPDX-License-Identifier: MIT */
/*
 * The server's handshake (usmc_listen.c): accept() of a connection whose
 * Proposal came, and listeners usmc did not make.
 */
#ifndef USMC_LISTEN_H
#define USMC_LISTEN_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "usmc_fdtab.h"
#include "usmc_sock.h"

/*
 * A TCP listener this process did not make with usmc (systemd socket
 * activation, inetd, SCM_RIGHTS, exec): made a usmc listener at its
 * first accept.  The socket, or NULL for anything else.
 */
struct usmc_sock *af_listener_adopt(int fd);
/*
 * Watches forks from now on (usmc_listen.c): a listener's or an accept's
 * first.  Outside our locks: a fork in another thread holds glibc's while
 * it waits for ours.
 */
void af_listen_watch_fork(void);
int af_accept(struct usmc_sock *ls, int fd, const struct sockaddr *peer, socklen_t peer_len);
/*
 * Takes TCP_DEFER_ACCEPT off a usmc listener's kernel socket and keeps it
 * in s->defer_accept, as the kernel reported it (see usmc_listen.c).
 */
void af_listener_defer_take(struct usmc_sock *s);
/* Doorbells are single bytes: Nagle would hold them back. */
void af_set_nodelay(int fd);
/*
 * Answers the Proposal of an accepted connection (SOCK_ACCEPTING) at its
 * first use: an Accept, or a Decline if the process is plain TCP from now
 * on (usmc_plain_from_now).  The socket's state then, SOCK_SMC or
 * SOCK_PLAIN.  Every such socket, before a fork: af_accept_finish_all.
 */
int af_accept_finish(struct usmc_sock *ns);
/*
 * Answers it with a Decline for reason, if it is still to be answered:
 * the connection is then TCP from its start.  The socket's state then.
 */
int af_accept_decline(struct usmc_sock *ns, uint32_t reason);
void af_accept_finish_all(void);
/*
 * The client withdrew the Proposal of such a socket: declined, the socket
 * plain TCP.  False if no socket of ours waits to answer it.  Under usmc_lock.
 */
struct usmc_lgr;
bool af_accepting_withdrawn(struct usmc_lgr *lgr, uint64_t token, uint32_t reason);

/* s's state once it is used: an accepted connection's first use answers its Proposal. */
static inline int af_sock_used(struct usmc_sock *s)
{
	int state = atomic_load_explicit(&s->state, memory_order_acquire);

	return state == SOCK_ACCEPTING ? af_accept_finish(s) : state;
}

/* The socket, if it needs more than the system call: the one fast-path branch. */
static inline struct usmc_sock *usmc_sock_active(int fd)
{
	struct usmc_sock *s = usmc_sock_get(fd);

	return s && af_sock_used(s) >= SOCK_PROPOSED ? s : NULL;
}

#endif /* USMC_LISTEN_H */
