/* SPDX-License-Identifier: MIT */
/*
 * A client's Proposal that no answer may come to (usmc_withdraw.c).
 */
#ifndef USMC_WITHDRAW_H
#define USMC_WITHDRAW_H

#include <stdbool.h>

#include "usmc_sock.h"

/*
 * Ends a wait for an answer that cannot come, looking at most every
 * quarter of a CLC timeout once one has passed.  True once the handshake
 * is settled (an answer came, or it ends here).  Called without usmc_lock.
 */
bool af_withdraw_if_unanswered(struct usmc_sock *s);

#endif /* USMC_WITHDRAW_H */
