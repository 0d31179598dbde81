/* SPDX-License-Identifier: MIT */
/* The names usmc-kernel status shows for the entries of the scope maps. */
#ifndef USMC_KERNEL_NAMES_H
#define USMC_KERNEL_NAMES_H

#include <stddef.h>
#include <stdint.h>

struct usmc_kentry;

/* The directory of a cgroup v2 id: its inode number on 64-bit kernels. */
const char *cgroup_path(uint64_t id);
/* The ip netns name of a namespace inode, if it has one. */
const char *netns_name(uint64_t ino);
/* The command name of the entry's process, NULL if it is gone or another one. */
const char *pid_comm(const struct usmc_kentry *e, char *comm, size_t size);

#endif
