// SPDX-License-Identifier: MIT
/*
 * The kernel's own SMC (net/smc) seen from usmc-stat: its sockets through
 * smc_diag (its counters are stat_kernel_genl.h's).
 */
#ifndef USMC_STAT_KERNEL_H
#define USMC_STAT_KERNEL_H

#include <stdbool.h>
#include <stddef.h>

/* usmc-stat --kernel: lists the kernel's SMC sockets (only_pid 0: all).
 * Returns the exit status; 0 with one line when the kernel has no SMC. */
int kernel_list(bool json, int only_pid);

/* The command name of a process, "?" if it is gone. */
void stat_read_comm(int pid, char *comm, size_t len);

#endif
