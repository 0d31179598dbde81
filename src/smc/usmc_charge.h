/* SPDX-License-Identifier: MIT */
/*
 * Charging a ring's pages (usmc_charge.c): allocated, and so charged to
 * our memory cgroup, when its slot is first taken, before the connection
 * is agreed, so that a cgroup without room means fallback and never the
 * OOM killer in the middle of a transfer.
 */
#ifndef USMC_CHARGE_H
#define USMC_CHARGE_H

#include <stdint.h>

/*
 * Allocates len bytes of a memfd from off, charging them to our memory
 * cgroup now, if it has room for them beside the reserve it keeps for the
 * application: 0, or USMC_DECL_MEM with nothing kept.
 */
uint32_t usmc_charge(int fd, uint64_t off, uint64_t len);

#endif /* USMC_CHARGE_H */
