/* SPDX-License-Identifier: MIT */
/*
 * The state handed across exec (usmc_exec_state.c): link groups,
 * segments, slots, connections and listeners, the holders' bell, as bytes
 * in the memfd that USMC_EXEC_FD names, and read back through a bounded
 * reader.
 */
#ifndef USMC_EXEC_STATE_H
#define USMC_EXEC_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "usmc_core.h"
#include "usmc_queue_side.h"

#define USMC_EXEC_ENV "USMC_EXEC_FD"
#define EXEC_MAX_LGRS 1024
#define EXEC_MAX_SOCKS 65536
#define EXEC_NO_SEG UINT32_MAX

struct exec_slot {
	uint8_t state;     /* enum slot_state */
	uint32_t peer_seg; /* the peer's segment whose close lets it go, or EXEC_NO_SEG */
	uint32_t peer_off;
	uint32_t peer_gen;
};

struct exec_lseg {
	int fd;
	int own_fd;
	uint32_t len;
	uint32_t rmb_size;
	uint32_t nslots;
	bool sent;
	struct exec_slot slot[SEG_MAX_SLOTS];
};

struct exec_rseg {
	uint32_t id;
	int fd;
	uint32_t len;
};

struct exec_lgr {
	int chan; /* -1: the channel stays with the process that owns it */
	uint32_t role;
	pid_t peer_pid;
	uid_t peer_uid;
	pid_t owner_pid;
	uint16_t port;
	uint32_t nlseg; /* segment ids are their indexes */
	uint32_t nrseg;
	struct exec_lseg *lseg;
	struct exec_rseg *rseg;
};

#define EXEC_LINGER_RESET 0x1u
#define EXEC_SHUT_WR 0x2u
#define EXEC_SHUT_RD 0x4u
#define EXEC_HELD 0x8u /* the new image is one of the holders (usmc_holders.c) */
#define EXEC_CORK 0x10u

struct exec_sock {
	uint64_t inode; /* the TCP socket, whatever descriptor it ends up on */
	uint32_t lgr;
	int domain;
	int sndbuf, rcvbuf, nodelay, busy_poll_us, rcvtimeo_ms, sndtimeo_ms, rcvlowat;
	uint32_t flags; /* EXEC_* */
	uint32_t tx_seg, tx_slot;
	uint32_t rx_seg, rx_off, rx_size;
	uint32_t peer_gen;
	uint64_t token;
};

/* A usmc listener the new image inherits, with its Unix listener (usmc_exec_listen.c). */
struct exec_listen {
	uint64_t inode; /* the TCP listener */
	int ufd;        /* its Unix listener, kept open across the exec */
	int side[SIDE_QUEUES]; /* its side queues (usmc_queue_side.c), kept open too, or -1 */
	uint16_t port;
	pid_t owner;    /* the process that made it */
	uid_t uid;
	bool member;    /* of an SO_REUSEPORT group: ufd is the owner's own queue */
};

#define EXEC_MAX_LISTENS 1024

struct exec_state {
	pid_t writer;
	int bell; /* the holders' bell (usmc_bell.h), kept open across the exec, or -1 */
	uint32_t nlgr;
	uint32_t nsock;
	uint32_t nlisten;
	struct exec_lgr *lgr;
	struct exec_sock *sock;
	struct exec_listen *listen;
};

/*
 * Parsing checks every count,
 * range and reference (a slot inside its segment, a connection's rings
 * inside theirs) but not the descriptors, which adoption checks.
 */
int exec_state_parse(const void *buf, size_t len, struct exec_state *st);
size_t exec_state_size(const struct exec_state *st);
/* Writes the state into buf; its size, or 0 if it did not fit in cap. */
size_t exec_state_encode(const struct exec_state *st, void *buf, size_t cap);
void exec_state_free(struct exec_state *st);

#endif /* USMC_EXEC_STATE_H */
