/* SPDX-License-Identifier: MIT */
/*
 * exec from a vfork child (usmc_exec_child.c), which runs in its
 * parent's memory with a descriptor table of its own: usmc's tables are
 * the parent's, and what the child holds is found by inode.
 */
#ifndef USMC_EXEC_CHILD_H
#define USMC_EXEC_CHILD_H

#include <stdbool.h>
#include <stdint.h>

#include "usmc_exec_state.h"

/* Whether this process is a vfork child: usmc's tables are its parent's. */
bool usmc_vfork_child(void);
/*
 * The preload sees every vfork and CLONE_VM child a program starts through
 * libc: until usmc_vfork_coming says one starts, none runs.
 */
void usmc_vfork_watched(void);
void usmc_vfork_coming(void);
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
/* The holders' bell a vfork child's exec hands over, kept open in its table, or -1. */
int exec_child_bell(void);
/* Opens every descriptor of the state anew from the parent's, for the new image. */
bool exec_child_reopen(struct exec_state *st);
/*
 * Before an exec whose program cannot take over (static, set-uid): ends
 * every shared-memory connection it would inherit, with a reset.
 */
void usmc_exec_break_inherited(void);

#endif /* USMC_EXEC_CHILD_H */
