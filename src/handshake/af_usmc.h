/* SPDX-License-Identifier: MIT */
/*
 * The pump of CLC messages (af_usmc.c): reads whatever the channels and
 * Unix listeners hold and answers it, the Proposals waiting for their
 * TCP connection to be accepted, the client connections waiting for an
 * answer, and the CLC messages without a ring.  Everything here runs
 * under usmc_lock() unless said otherwise.
 */
#ifndef AF_USMC_H
#define AF_USMC_H

#include <stdbool.h>
#include <stdint.h>

#include "usmc_conn.h"
#include "usmc_core.h"
#include "usmc_listener.h"
#include "usmc_registry.h"
#include "usmc_sock.h"

/* A Proposal waiting for its TCP connection to be accepted. */
struct srv_proposal {
	struct usmc_lgr *lgr;
	uint64_t token;
	uint64_t cookie;
	uint16_t port;
	uint32_t rcvbuf;
	struct usmc_ring ring; /* the client's, mapped read-only */
	bool peer_gone;        /* its channel ended behind it, unanswered (af_lgr_fail) */
	struct srv_proposal *next;
};

/* Its client closed its socket before the answer (af_orphan): its ring holds all it sends. */
bool af_proposal_closed(const struct srv_proposal *p);
struct usmc_conn *af_conn_new(struct usmc_sock *s, struct usmc_lgr *lgr);
/* Sets up the connection's state in its ring's slot header, once the ring exists. */
void af_conn_shared_init(struct usmc_conn *conn);
/* Gives the connection's ring and link group reference back, and frees it. */
void af_conn_destroy(struct usmc_conn *conn);

/* A CLC message without a ring: Confirm, or Decline with its reason. */
void af_send_clc(struct usmc_lgr *lgr, uint8_t type, uint64_t token, uint32_t reason);
void af_send_decline(struct usmc_lgr *lgr, uint64_t token, uint32_t reason);
/*
 * A Decline after the server accepted the connection, proven its
 * client's: the server then writes the client's socket cookie into the
 * connection, a marker that wakes a client waiting on TCP for its answer
 * (CLC_DECL_MARKER).  False if the Decline did not go: no marker then.
 */
bool af_send_decline_marked(struct usmc_lgr *lgr, uint64_t token, uint32_t reason);
/* The client's Decline that withdraws its Proposal (usmc_clc.h): the server answers it. */
void af_send_withdraw(struct usmc_lgr *lgr, uint64_t token, uint32_t reason);

/* Only the link groups we have. */
void af_pump_lgrs(void);
/*
 * The same, but a server's link group only up to the first Proposal it
 * brings: true if one was left unread after it (af_pump_lgrs reads on).
 */
bool af_pump_lgrs_first(void);
/* Only the link groups of clients that proposed straight, that a forked holder took (lgr->direct). */
void af_pump_direct(void);
/* Only our client link groups but skip (or NULL): the answers to our Proposals. */
void af_pump_answers(const struct usmc_lgr *skip);
/*
 * The answers that may hold conn's (its own link group's, or all of ours
 * as af_pump_answers), reading its own link group only up to that answer.
 */
void af_pump_answer(const struct usmc_conn *conn);
/* The same for one link group; false once it failed (and may be gone). */
bool af_pump_lgr(struct usmc_lgr *lgr);
/* The peer process is gone, or broke the protocol. */
void af_lgr_fail(struct usmc_lgr *lgr);

/* Takes the Proposal by port and cookie, or (lgr set) by link group and token. */
struct srv_proposal *af_srv_take(uint16_t port, struct usmc_lgr *lgr, uint64_t token,
				 uint64_t cookie);
/*
 * The Proposal toward port of a client of our own user that closed before
 * the answer, or was killed after writing, and published its end as peer
 * (af_publish_end), taken: its socket is gone, and with it the cookie a
 * Proposal is proven by.  A process of our own user could do anything to
 * us anyway: its word is believed.
 */
struct srv_proposal *af_srv_take_orphan(uint16_t port, const struct sockaddr *peer);
/*
 * Our last listener of port closed: the Proposals of clients that closed
 * before the answer can never be matched by us (their connections were
 * reset with the listener, or go to another holder of it), and go.
 */
void af_srv_drop_orphans(uint16_t port);
bool af_srv_has(uint16_t port);
/* True if a client toward l can only be plain; needs no lock. */
bool af_srv_none_pending(struct usmc_listener *l, struct reg_port *reg);
/* True if no Proposal read is waiting for its connection's accept; needs no lock. */
bool af_srv_none_listed(void);

#endif /* AF_USMC_H */
