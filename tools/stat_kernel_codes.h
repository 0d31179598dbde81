// SPDX-License-Identifier: MIT
/* SMC's codes in words, for usmc-stat --kernel's sockets and counters. */
#ifndef USMC_STAT_KERNEL_CODES_H
#define USMC_STAT_KERNEL_CODES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A decline or fallback reason (SMC_CLC_DECL_*), "-" for none. */
const char *decline_text(uint32_t code);
/* An SMC socket's state (enum smc_state), "?" for one it does not know. */
const char *smc_state_name(unsigned state);
/* Why this kernel cannot do SMC, in words, or NULL if it can. */
const char *smc_missing(char *why, size_t len);
/* Says, as text or JSON, that the kernel has no SMC, and why; returns 0. */
int not_available(bool json, const char *why);

#endif
