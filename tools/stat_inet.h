/* SPDX-License-Identifier: MIT */
/*
 * The kernel's TCP sockets of each network namespace, by inode, for
 * usmc-stat: their addresses and TCP states, as the namespace sees them.
 */
#ifndef USMC_STAT_INET_H
#define USMC_STAT_INET_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct inet_entry {
	unsigned long inode;
	int state;           /* TCP_ESTABLISHED ... as in the kernel */
	uint16_t lport, pport;
	char local[64];      /* "127.0.0.1:8080", "[::1]:8080" */
	char peer[64];
};

/* The namespace of process pid (its /proc/PID/ns/net inode), 0 if it cannot be seen. */
unsigned long inet_netns_of(int pid);

/*
 * The socket with inode in the network namespace netns, which process pid
 * is in; NULL if it is not a TCP socket there.  Each namespace is read
 * once, through sock_diag: entered with setns() when it is not ours
 * (root), else through /proc/PID/net/tcp{,6}, the namespace's own view.
 */
const struct inet_entry *inet_find(unsigned long netns, int pid, unsigned long inode);

/* Frees what was read, for the next round of a watch. */
void inet_table_free(void);

const char *inet_state_name(int state);

/*
 * The TCP states a sock_diag dump asks for: those a socket with a
 * descriptor can be in.  Not TIME-WAIT or request sockets (3 SYN_RECV,
 * 12 TCP_NEW_SYN_RECV): a busy host has tens of thousands of the first,
 * which every look would copy out of the kernel, and no usmc or SMC
 * socket sits on them.
 */
#define INET_DIAG_STATES_WITH_FD (~(1u << 6 | 1u << 3 | 1u << 12))

#endif
