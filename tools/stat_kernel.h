// SPDX-License-Identifier: MIT
/*
 * The kernel's own SMC (net/smc) seen from usmc-stat: its sockets through
 * smc_diag and its counters through SMC's generic netlink family.
 */
#ifndef USMC_STAT_KERNEL_H
#define USMC_STAT_KERNEL_H

#include <stdbool.h>
#include <stddef.h>

/* usmc-stat --kernel: lists the kernel's SMC sockets (only_pid 0: all).
 * Returns the exit status; 0 with one line when the kernel has no SMC. */
int kernel_list(bool json, int only_pid);

/* usmc-stat --kernel -s: the kernel's SMC counters, like smcr/smcd stats. */
int kernel_stats(bool json);

/* Adds a user EID (SMC_NETLINK_ADD_UEID); the kernel proposes SMC-Rv2 only
 * with one.  Needs CAP_NET_ADMIN.  Returns 0 or -errno. */
int kernel_ueid_add(const char *eid);

/* The command name of a process, "?" if it is gone. */
void stat_read_comm(int pid, char *comm, size_t len);

#endif
