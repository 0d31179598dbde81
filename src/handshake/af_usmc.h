/* SPDX-License-Identifier: MIT */
/*
 * What the handshake's files share: af_usmc.c (connections, listeners, the
 * pump), usmc_listen.c (the server) and usmc_connect.c (the client).
 * Everything here runs under usmc_lock() unless said otherwise.
 */
#ifndef AF_USMC_H
#define AF_USMC_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>

#include "usmc_sock.h"

struct usmc_listener {
	uint16_t port;
	pid_t owner;    /* a forked child must leave the channels to its parent */
	pid_t claimed;  /* a process not the owner that waited on it, marking it shared */
	uid_t uid;      /* whose name the Unix listener has */
	int ufd;        /* the Unix listener clients find us by */
	struct sockaddr_un uaddr; /* its name, where entries go back (usmc_queue.c) */
	socklen_t uaddr_len;
	bool member;    /* of an SO_REUSEPORT group: ufd is this process's own queue */
	int ufd_users;  /* the one clients of other allowed users find, or -1 */
	int rfd;        /* the one in the rendezvous directory (other namespaces), or -1 */
	ino_t rfd_ino;  /* its socket file, removed by the creator's last close */
	int refs;       /* TCP listeners of this process on the port */
	_Atomic uint32_t seen; /* Proposals read for the port */
	struct usmc_listener *next;
};

/* A Proposal waiting for its TCP connection to be accepted. */
struct srv_proposal {
	struct usmc_lgr *lgr;
	uint64_t token;
	uint64_t cookie;
	uint16_t port;
	uint32_t rcvbuf;
	struct usmc_ring ring; /* the client's, mapped read-only */
	struct srv_proposal *next;
};

struct usmc_conn *af_conn_new(struct usmc_sock *s, struct usmc_lgr *lgr);
/* Sets up the connection's state in its ring's slot header, once the ring exists. */
void af_conn_shared_init(struct usmc_conn *conn);
/* Gives the connection's ring and link group reference back, and frees it. */
void af_conn_release(struct usmc_conn *conn);

/* A CLC message without a ring: Confirm, or Decline with its reason. */
void af_send_clc(struct usmc_lgr *lgr, uint8_t type, uint64_t token, uint32_t reason);
void af_send_decline(struct usmc_lgr *lgr, uint64_t token, uint32_t reason);
/* The client's Decline that withdraws its Proposal (usmc_clc.h): the server answers it. */
void af_send_withdraw(struct usmc_lgr *lgr, uint64_t token, uint32_t reason);

/* A listening Unix socket at the port's channel address (usmc_chan.c), or -1. */
int af_channel_listen(uint16_t port, bool other_users);
/* A Unix listener bound to sun, for channels and carriers; -1 if it cannot be. */
int af_channel_listen_at(const struct sockaddr_un *sun, socklen_t sun_len);
/*
 * Why a channel from cred may not become a link group (usmc_chan.c); 0 if
 * it may.  shared: the listener whose shared backlog it came from, or NULL.
 */
uint32_t af_channel_admit(int fd, const struct ucred *cred, const struct usmc_listener *shared);
/* Refuses a channel with a Decline of the whole link group (token 0) or of token; closes it. */
void af_channel_refuse(int fd, uint64_t token, uint32_t reason);
/*
 * usmc_connect_lgr.c: the link group for a Proposal toward port, one we
 * have or a new one; NULL with *reason.  Called and returns with our lock
 * held, which it drops while it connects.
 */
struct usmc_lgr *af_cli_lgr_get(uint16_t port, struct reg_port *reg, bool own_user,
				uint32_t *reason);
/* usmc_listener.c: this process's listener of port, if it may take its Proposals; NULL. */
struct usmc_listener *af_listener_find(uint16_t port);
/* Whether several processes hold the listener (REG_SHARED). */
bool af_listener_shared(const struct usmc_listener *l);
/*
 * usmc_queue.c: the link group of the channel in the shared backlog whose
 * Proposal names cookie, or NULL once it is nowhere to be found.
 */
struct usmc_lgr *af_queue_find(struct usmc_listener *l, struct reg_port *reg, uint64_t cookie);
/*
 * The same in the rendezvous directory's backlog (usmc_rendezvous.c): the
 * channel whose Proposal's TCP socket proves to be the other end of the
 * accepted socket acc, and its cookie; *snat if a Proposal was refused
 * because a source NAT rewrote its address on the way to us.
 */
struct usmc_lgr *af_queue_find_rdv(struct usmc_listener *l, struct reg_port *reg, int acc,
				   uint64_t *cookie, bool *snat);
/* Something may wait in that backlog; needs no lock. */
bool af_queue_rdv_pending(struct usmc_listener *l, struct reg_port *reg);
/*
 * The client's side of a shared listener's backlog (usmc_queue.c): a link
 * group of the connection's own, a socketpair whose server end we keep;
 * putting that end, the Proposal in it, into the backlog (0, or why not);
 * and reading the Proposal back out of it (true if no holder had taken it).
 */
struct usmc_lgr *af_queue_pair(uint16_t port, uint32_t *reason);
uint32_t af_queue_post(struct usmc_lgr *lgr, struct reg_port *reg);
/*
 * Puts channel ch into the backlog of the Unix listener at sun, on a
 * carrier: 0, or why not.  counted: its client counted its Proposal in
 * the registry (queued).  The listener must be uid's, which *cred, from
 * SO_PEERCRED, then names: abstract names are anyone's to take, and in a
 * user namespace an unmapped user shows as the overflow uid.
 */
uint32_t af_carrier_send(const struct sockaddr_un *sun, socklen_t sun_len, uid_t uid, int ch,
			 bool counted, struct ucred *cred);
/*
 * SO_REUSEPORT groups (usmc_reuseport.c).  join: takes a member slot of
 * the port and binds this process's own queue as l->ufd; -1 if it cannot.
 * leave: gives them back.  post: puts channel ch into every member's
 * queue; 0 if one took it.
 */
int af_member_join(struct usmc_listener *l, struct reg_port *reg);
void af_member_leave(struct reg_port *reg);
uint32_t af_member_post(struct reg_port *reg, uint16_t port, int ch, int32_t *peer_pid);
bool af_queue_take_back(struct usmc_lgr *lgr);
/* No Proposal is in the shared backlog, nor held by a process looking; needs no lock. */
bool af_queue_none_pending(struct reg_port *reg);
/* Only the link groups we have. */
void af_pump_lgrs(void);
/* Only the link groups of clients that proposed straight, that a forked holder took (lgr->direct). */
void af_pump_direct(void);
/* Only our client link groups but skip (or NULL): the answers to our Proposals. */
void af_pump_answers(const struct usmc_lgr *skip);
/*
 * Takes a bounded number of new channels of l; returns how many became
 * link groups, and *more if our own user's queue may hold others.
 */
int af_accept_channels(struct usmc_listener *l, bool *more);
/* The same for one link group; false once it failed (and may be gone). */
bool af_pump_lgr(struct usmc_lgr *lgr);
/* The peer process is gone, or broke the protocol. */
void af_lgr_fail(struct usmc_lgr *lgr);

/* Takes the Proposal by port and cookie, or (lgr set) by link group and token. */
struct srv_proposal *af_srv_take(uint16_t port, struct usmc_lgr *lgr, uint64_t token,
				 uint64_t cookie);
bool af_srv_has(uint16_t port);
/* True if a client toward l can only be plain; needs no lock. */
bool af_srv_none_pending(struct usmc_listener *l, struct reg_port *reg);
/* True if no Proposal read is waiting for its connection's accept; needs no lock. */
bool af_srv_none_listed(void);

struct usmc_conn *af_cli_find(struct usmc_lgr *lgr, uint64_t token, bool unlink);
void af_cli_pending_add(struct usmc_conn *conn);

bool af_diag_available(void);
/*
 * The socket at the other end of a loopback connection, as sock_diag sees
 * it: its cookie (0 if the kernel does not say), its inode (0 while it
 * waits to be accepted) and its owner.
 */
uint64_t af_peer_socket_diag(int fd, const struct sockaddr *peer, uint32_t *inode,
			     uint32_t *uid);
/* The same for the socket of our namespace whose address is local and whose peer is remote. */
uint64_t af_socket_diag(const struct sockaddr *local, const struct sockaddr *remote,
			uint32_t *inode, uint32_t *uid);
/*
 * Takes TCP_DEFER_ACCEPT off a usmc listener's kernel socket and keeps it
 * in s->defer_accept, as the kernel reported it (see usmc_listen.c).
 */
void af_listener_defer_take(struct usmc_sock *s);
/* Doorbells are single bytes: Nagle would hold them back. */
void af_set_nodelay(int fd);

#endif /* AF_USMC_H */
