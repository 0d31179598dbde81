/* SPDX-License-Identifier: MIT */
/* usmc-kernel policy, and the policy's part of usmc-kernel status. */
#ifndef USMC_KERNEL_POLICY_H
#define USMC_KERNEL_POLICY_H

#include <stdbool.h>

/* usmc-kernel policy add|del|set|show|clear ...: the exit status. */
int kernel_policy_cmd(int argc, char **argv, bool json);

/* status: the policy's rules and what it decided, when it is loaded. */
void kernel_policy_print(bool available, bool root, bool json);

#endif
