/* SPDX-License-Identifier: MIT */
/*
 * The usmc listener (usmc_listener.c): what a TCP listener that takes
 * Proposals has beside it, its Unix listeners by port, shared by the
 * processes that hold it, and handed over across exec.
 */
#ifndef USMC_LISTENER_H
#define USMC_LISTENER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/un.h>

#include "usmc_fdtab.h"
#include "usmc_listen.h"
#include "usmc_queue_side.h"
#include "usmc_registry.h"

struct usmc_listener {
	uint16_t port;
	pid_t owner;    /* a forked child must leave the channels to its parent */
	pid_t claimed;  /* a process not the owner that waited on it, marking it shared */
	uid_t uid;      /* whose name the Unix listener has */
	int ufd;        /* the Unix listener clients find us by */
	struct sockaddr_un uaddr; /* its name, where entries go back (usmc_queue.c) */
	socklen_t uaddr_len;
	bool member;    /* of an SO_REUSEPORT group: ufd is this process's own queue */
	int side[SIDE_QUEUES]; /* the holders' side queues, made before the first fork, or -1 */
	int ufd_users;  /* the one clients of other allowed users find, or -1 */
	int rfd;        /* the one in the rendezvous directory (other namespaces), or -1 */
	ino_t rfd_ino;  /* its socket file, removed by the creator's last close */
	int refs;       /* TCP listeners of this process on the port */
	uint32_t forks; /* the image's forks when it made it: a child since may hold it */
	_Atomic uint32_t seen; /* Proposals read for the port */
	struct usmc_listener *next;
};

/* This process's listener of port, if it may take its Proposals; NULL. */
struct usmc_listener *af_listener_find(uint16_t port);
/* Whether several processes hold the listener (REG_SHARED). */
bool af_listener_shared(const struct usmc_listener *l);
int af_listen(struct usmc_sock *s, int backlog);
/*
 * A listener handed over across exec (usmc_exec_listen.c): fd, the TCP
 * listener, with ufd, its Unix listener, made by owner.  false if not.
 * side: its side queues, or NULL.  ufd_held: whether a listener of this
 * process has ufd, or has it as a side queue.
 */
bool af_listener_inherit(int fd, int ufd, const int *side, uint16_t port, pid_t owner, uid_t uid,
			 bool member);
bool af_listener_ufd_held(int ufd);
/*
 * Before a fork: each listener this process made gets its side queues, so
 * that every process that may hold it from now on has the same.
 */
void af_listener_fork_prepare(void);
/* Makes a listening socket a usmc listener, or TCP with the reason why. */
void af_listener_open(struct usmc_sock *s);
/* Ends this process's hold of a usmc listener, at the close of its socket. */
void af_listener_close(struct usmc_sock *s);
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
	return state > SOCK_LISTEN && af_sock_used(s) >= SOCK_PROPOSED ? s : NULL;
}

#endif /* USMC_LISTENER_H */
