/* SPDX-License-Identifier: MIT */
/*
 * CLC: the connection layer control handshake (RFC 7609, 3.5).
 *
 * usmc's CLC messages travel over the link group's Unix channel, never over
 * the TCP stream, so a peer that does not speak usmc never sees one.
 *
 *   client                                        server
 *   Proposal (client ring, socket cookie) --->
 *   connect()  ............ TCP handshake ............ accept()
 *                            <--- Accept (server ring)  or  Decline
 *   Confirm --->
 *
 * Withdrawal.  A client that waited a CLC timeout for its answer never
 * falls back on its own while the server may have taken its Proposal,
 * since a server that answers late would then write into a ring nobody
 * reads.  It sends a Decline with CLC_DECL_WITHDRAW and waits for the
 * answer to its token.  The server reads its channel in order, and takes
 * and answers a Proposal under one lock, so the first answer the client
 * gets settles both ends:
 *   - the server still listed the Proposal: it drops it, unread, and
 *     answers Decline; both ends are TCP and the client replays what it
 *     wrote (the server never read a byte of the ring);
 *   - the server had answered already (Accept or Decline): that answer is
 *     ahead of anything on the channel, the client takes it, and the
 *     server ignores the withdrawal;
 *   - no answer within a second bound (the server is stopped): the client
 *     resets the TCP connection and marks its ring aborted, so a server
 *     that takes the Proposal later sees a reset on both paths.  Loud on
 *     both ends, never split.
 * A server that never had the TCP connection (another process accepted
 * it) never takes the Proposal: the client looks for an answer once more
 * after seeing that, then falls back at once.
 *
 * The marker.  A client may wait for its answer where only its TCP socket
 * can wake it (a program's epoll_wait), with what it wrote still in its
 * ring: a Decline on the channel would not wake it.  So a server that
 * declines a connection it accepted, proven its client's, sends the
 * Decline with CLC_DECL_MARKER and then writes the client's socket cookie
 * into the connection, 8 bytes, before anything of its program's.  The
 * client reads them out of the stream as it settles, before its program
 * reads, and replays its ring; a marker that does not come, or does not
 * match, resets the connection.  The holder that refuses a Proposal
 * listed in the registry (usmc_registry.h) writes the same marker.  A
 * client that closed without writing gets none: its closed socket would
 * answer the bytes with a reset.
 *
 * The Proposal goes out before the TCP connect, so by the time the server
 * accepts the connection it has the Proposal and decides at once: it asks
 * the kernel (sock_diag) for the cookie of the peer socket and looks for a
 * Proposal that carries it.  A plain TCP client finds no Proposal and costs
 * the server nothing.
 *
 * Rings are the sender's: like SMC-D over Linux's loopback-ism, where the
 * sender's sndbuf is the receiver's DMB.  A segment's memfd travels with
 * the first message that names it (SCM_RIGHTS); the peer maps it read-only.
 *
 * Each message is framed like SMC's: eyecatcher, type, length, version,
 * body, trailing eyecatcher.  Multi-byte fields are big-endian.
 */
#ifndef USMC_CLC_H
#define USMC_CLC_H

#include <stddef.h>
#include <stdint.h>

#define CLC_PROPOSAL 0x01
#define CLC_ACCEPT   0x02
#define CLC_CONFIRM  0x03
#define CLC_DECLINE  0x04

/*
 * 2: CDC cursors on lines of their own; 3: withdrawal, counted doorbells;
 * 4: the marker; 5: urgent data (cdc_area.urg); 6: laps that end early
 * (cdc_area.lap_len)
 */
#define CLC_VERSION      6
#define CLC_MAX_MSG_SIZE 128
#define CLC_HDR_LEN      8
#define CLC_TRL_LEN      4

/* RMB sizes the handshake accepts: powers of two in this range. */
#define CLC_RMB_MIN (16u << 10)
#define CLC_RMB_MAX (8u << 20)
/* Largest segment a peer may hand over. */
#define CLC_SEG_MAX (1u << 30)

/* Where a ring lies in its owner's segment. */
struct clc_rmb_desc {
	uint32_t seg_id;   /* the owner's segment number in this link group */
	uint32_t seg_len;  /* the segment's length */
	uint32_t slot_off; /* where the slot starts (CDC area first) */
	uint32_t rmb_size; /* data bytes of the ring */
	uint8_t new_seg;   /* the segment's memfd comes with this message */
};

/* Decline flags */
#define CLC_DECL_MARKER   0x1 /* the client's socket cookie leads the server's TCP stream */
#define CLC_DECL_WITHDRAW 0x2 /* the client withdraws its Proposal (see above) */

struct clc_addr {
	uint16_t family; /* AF_INET or AF_INET6 */
	uint16_t port;
	uint8_t addr[16]; /* IPv4 in the first 4 bytes */
};

struct clc_msg {
	uint8_t type;
	uint8_t version;
	uint64_t token; /* the client's name for the connection */
	union {
		struct {
			struct clc_addr dst; /* the listener the client connects to */
			uint64_t cookie;     /* SO_COOKIE of the client's TCP socket */
			uint32_t rcvbuf;     /* the client's receive size wish, or 0 */
			struct clc_rmb_desc rmb;
		} proposal;
		struct {
			struct clc_rmb_desc rmb;
		} accept;
		struct {
			uint32_t reason;
			uint8_t flags; /* CLC_DECL_* */
		} decline;
	};
};

/* Encodes msg into buf; returns its length, or -1 if it does not fit. */
int clc_msg_encode(const struct clc_msg *msg, void *buf, size_t cap);

/*
 * Parses a message a peer sent.  Returns 0, or a USMC_DECL_* reason
 * (USMC_DECL_SYNCERR for a malformed message, USMC_DECL_VERSMISMAT for an
 * unknown version) with *msg unusable.
 */
uint32_t clc_msg_parse(const void *buf, size_t len, struct clc_msg *msg);

/* Whether an RMB description is consistent (size, bounds). */
int clc_rmb_desc_valid(const struct clc_rmb_desc *rmb);

#endif /* USMC_CLC_H */
