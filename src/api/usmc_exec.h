/* SPDX-License-Identifier: MIT */
/*
 * Connections across exec.
 *
 * exec replaces the process image but keeps its descriptors: a program
 * that inherits a shared-memory connection (inetd style, a re-exec, a
 * child of posix_spawn) holds a TCP socket whose data moves through
 * segments the new image knows nothing of.  Before the exec, usmc writes
 * the state of those connections (link groups, segments, slots, the
 * connections themselves) into a memfd, keeps the descriptors it needs
 * open across the exec, and names the memfd in the environment
 * (USMC_EXEC_FD).  The new image maps the segments again and goes on.
 *
 * The connections' own state (cursors, locks, errors) is in the segments'
 * own memfds, so nothing of it needs copying.  What is written here is
 * read back by the new image of the same program, but through a bounded
 * reader all the same, since the environment can name any descriptor.
 */
#ifndef USMC_EXEC_H
#define USMC_EXEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "usmc_core.h"

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
	uint16_t port;
	pid_t owner;    /* the process that made it */
	uid_t uid;
	bool member;    /* of an SO_REUSEPORT group: ufd is the owner's own queue */
};

#define EXEC_MAX_LISTENS 1024

struct exec_state {
	pid_t writer;
	uint32_t nlgr;
	uint32_t nsock;
	uint32_t nlisten;
	struct exec_lgr *lgr;
	struct exec_sock *sock;
	struct exec_listen *listen;
};

/*
 * usmc_exec_state.c: the state as bytes.  Parsing checks every count,
 * range and reference (a slot inside its segment, a connection's rings
 * inside theirs) but not the descriptors, which adoption checks.
 */
int exec_state_parse(const void *buf, size_t len, struct exec_state *st);
size_t exec_state_size(const struct exec_state *st);
/* Writes the state into buf; its size, or 0 if it did not fit in cap. */
size_t exec_state_encode(const struct exec_state *st, void *buf, size_t cap);
void exec_state_free(struct exec_state *st);

/* usmc_exec.c */
struct usmc_conn;

/* Whether fd stays open across an exec. */
bool exec_fd_inherited(int fd);

/*
 * usmc_exec_listen.c, under usmc_lock.  describe: the listeners whose TCP
 * socket the new image inherits, into st->listen; false if out of memory.
 * adopt: makes them usmc listeners again in the new image, the TCP socket
 * found by its inode among the descriptors (fd, inode) it has.
 */
bool exec_listen_describe(struct exec_state *st);
struct fd_inode {
	int fd;
	uint64_t inode;
};
void exec_listen_adopt(const struct exec_state *st, const struct fd_inode *v, uint32_t n);

/* Connections a spawn counts a holder of that it can take back if it fails. */
#define EXEC_COUNTED_MAX 64

struct usmc_exec_prep {
	int fd;        /* the memfd with the state, -1 if there is nothing to hand over */
	int nkept;     /* descriptors made to survive the exec */
	int *kept;
	pid_t spawned; /* 0: exec of this process; else posix_spawn */
	/*
	 * A spawn's: connections counted for the program (in the prep itself,
	 * which a vfork child keeps on its stack; past the limit a failed
	 * spawn leaves the count one too high, which is safe).
	 */
	uint32_t ncounted;
	struct usmc_conn *counted[EXEC_COUNTED_MAX];
};

/*
 * Before an exec (spawn false) or a posix_spawn (spawn true): writes the
 * state of the connections the new image inherits.  -1 with errno if it
 * cannot; the call must then fail as the exec would have.
 */
int usmc_exec_prepare(struct usmc_exec_prep *p, bool spawn);
/* The exec or the spawn failed: the program it counted as a holder is none. */
void usmc_exec_uncount(struct usmc_exec_prep *p);
/* The exec failed, or the spawn is done: everything back as it was. */
void usmc_exec_undo(struct usmc_exec_prep *p);
/* In the new image: takes over what USMC_EXEC_FD names, if anything. */
void usmc_exec_adopt(void);

/*
 * usmc_exec_child.c: exec from a vfork child, which runs in its parent's
 * memory with a descriptor table of its own.
 */
/* Whether this process is a vfork child: usmc's tables are its parent's. */
bool usmc_vfork_child(void);
/* The inode of a socket descriptor: this process's, or (vforked) the parent's. */
uint64_t exec_sock_inode(int fd, bool vforked);
/* The sockets a vfork child holds open across exec, by inode. */
struct exec_child_fd {
	int fd;
	uint64_t inode;
};
struct exec_child {
	struct exec_child_fd *v;
	uint32_t n, cap;
	bool failed;
};
bool exec_child_scan(struct exec_child *c);
/* Whether the child holds the socket of the parent's descriptor. */
bool exec_child_holds(const struct exec_child *c, int parent_fd);
void exec_child_free(struct exec_child *c);
/* Opens every descriptor of the state anew from the parent's, for the new image. */
bool exec_child_reopen(struct exec_state *st);
/*
 * Before an exec whose program cannot take over (static, set-uid): ends
 * every shared-memory connection it would inherit, with a reset.
 */
void usmc_exec_break_inherited(void);

#endif /* USMC_EXEC_H */
