/* SPDX-License-Identifier: MIT */
/*
 * Socket diagnostics (net/smc's smc_diag), read by usmc-stat.
 *
 * Each usmc process keeps a table of its sockets in a memfd named
 * "usmc-diag".  usmc-stat finds it through /proc/PID/fd, so a table lives
 * exactly as long as its process: no file, no registry entry to go stale.
 * Addresses and TCP states are not kept here: usmc-stat takes them from
 * the kernel by socket inode, which costs a connection nothing.
 */
#ifndef USMC_DIAG_H
#define USMC_DIAG_H

#include <stdatomic.h>
#include <stdint.h>

#define USMC_DIAG_MAGIC 0x75646961u /* "udia" */
#define USMC_DIAG_VERSION 2
#define USMC_DIAG_SLOTS 65536
#define USMC_DIAG_NAME "usmc-diag"

enum usmc_diag_state {
	DIAG_FREE = 0,
	DIAG_OPEN,      /* created, not connected */
	DIAG_LISTEN,
	DIAG_HANDSHAKE,
	DIAG_SMCD,
	DIAG_FALLBACK,
};

struct usmc_diag_sock {
	_Atomic uint32_t state;     /* enum usmc_diag_state */
	int32_t fd;
	uint32_t reason;            /* fallback reason, USMC_DECL_* */
	uint32_t by_peer;
	uint32_t lgr_id;
	int32_t peer_pid;
	uint32_t rmb_size;
	uint32_t peer_rmb_size;
	_Atomic uint64_t bytes_sent;     /* through shared memory */
	_Atomic uint64_t bytes_received;
	/* SMC's wire cursors (union cdc_cursor) we last published: our producer's, our consumer's. */
	_Atomic uint64_t tx_cursor;
	_Atomic uint64_t rx_cursor;
};

struct usmc_diag_table {
	uint32_t magic;
	uint32_t version;
	int32_t pid;
	uint32_t nslots;
	_Atomic uint32_t high; /* slots in use lie below this */
	uint32_t pad;
	struct usmc_diag_sock sock[];
};

/* A slot for a new socket: in the table, or private if there is none. */
struct usmc_diag_sock *usmc_diag_alloc(int fd, struct usmc_diag_sock *private_slot);
void usmc_diag_free(struct usmc_diag_sock *d, struct usmc_diag_sock *private_slot);
/* Before fork: d as it is now, into the socket's private slot, which the child gets a copy of. */
void usmc_diag_snapshot(const struct usmc_diag_sock *d, struct usmc_diag_sock *private_slot);
/* A forked child's own slot for the socket whose slot was d: the snapshot, or d if it is ours. */
struct usmc_diag_sock *usmc_diag_adopt(struct usmc_diag_sock *d, struct usmc_diag_sock *private_slot);

#endif /* USMC_DIAG_H */
