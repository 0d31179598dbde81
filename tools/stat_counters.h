/* SPDX-License-Identifier: MIT */
/* usmc-stat -s: the counters of a user's usmc processes (smcd stats). */
#ifndef USMC_STAT_COUNTERS_H
#define USMC_STAT_COUNTERS_H

#include <stdbool.h>

/* Prints the counters, and the time since they were created or reset; 1 if there are none. */
int counters_show(bool json);

/* Sets every counter to zero, which starts a new "since"; 1 if it cannot. */
int counters_reset(void);

#endif
