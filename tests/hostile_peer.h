/* SPDX-License-Identifier: MIT */
/*
 * The hostile peer test (hostile_peer.c): its roles, the steps its
 * processes tell each other, and the tools its families of attacks
 * (hostile_cdc.c, hostile_segment.c) share.
 */
#ifndef USMC_TEST_HOSTILE_PEER_H
#define USMC_TEST_HOSTILE_PEER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "harness.h"
#include "usmc_conn.h"

enum role { ROLE_ATTACKED, ROLE_HEALTHY1, ROLE_HEALTHY2, ROLE_OTHER, NROLES };

#define HOSTILE_CONNS 3
#define HEALTHY_BYTES (1u << 20)
#define BOUND_MS 10000
#define CHUNK 65536

/* What the processes tell each other over pipes, outside the connections. */
enum step {
	STEP_GO = 1,
	STEP_SENT,
	STEP_READ,
	STEP_SEEN,
	STEP_ATTACKED,
	STEP_RESET_SEEN,
	STEP_WROTE_MORE,
};

extern struct h_chan to_hostile, from_hostile, to_other;

int64_t now_ms(void);
/* Tells the other process one step. */
void say(struct h_chan *c, enum step step);
/* Waits for one step; a peer that died or hangs fails the test. */
void expect(struct h_chan *c, enum step step);
/* Whether a step has come, without waiting. */
bool heard(struct h_chan *c);

/* Called between chunks of a transfer, to disturb it. */
extern void (*between_chunks)(int fd);
void send_pattern(int fd, uint64_t seed, uint64_t off, size_t len);
/* Reads exactly len bytes in random pieces; length and checksum must match. */
void recv_pattern(int fd, uint64_t seed, uint64_t off, size_t len);
/* The end of an orderly close: EOF and not one byte more. */
void expect_eof(int fd);

/* The hostile process's view of its own end: the connection, its cursors. */
struct usmc_conn *own_conn(int fd);
void publish_prod(int fd, uint64_t wire);
void publish_cons(int fd, uint64_t wire);
/* Our producer cursor as the library last published it. */
union cdc_cursor current_prod(int fd);

/*
 * Reads until ECONNRESET: whatever arrives before must be the attacker's
 * pattern, at most max_bytes of it (what it produced legitimately).
 */
uint64_t expect_reset(int fd, uint64_t max_bytes);
/* After the reset was reported: writes fail, reads end, nothing more arrives. */
void expect_dead(int fd);

#endif
