// SPDX-License-Identifier: MIT
/*
 * The kernel's own SMC (net/smc) through its generic netlink family: its
 * counters for usmc-stat, and the user EID.
 */
#ifndef USMC_STAT_KERNEL_GENL_H
#define USMC_STAT_KERNEL_GENL_H

#include <stdbool.h>

/* usmc-stat --kernel -s: the kernel's SMC counters, like smcr/smcd stats. */
int kernel_stats(bool json);

/* Adds a user EID (SMC_NETLINK_ADD_UEID); the kernel proposes SMC-Rv2 only
 * with one.  Needs CAP_NET_ADMIN.  Returns 0 or -errno. */
int kernel_ueid_add(const char *eid);

#endif
