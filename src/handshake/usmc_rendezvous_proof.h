/* SPDX-License-Identifier: MIT */
/*
 * The holder's proof that a Proposal from another namespace is for the
 * connection it accepted (usmc_rendezvous_proof.c, docs/SECURITY.md).
 */
#ifndef USMC_RENDEZVOUS_PROOF_H
#define USMC_RENDEZVOUS_PROOF_H

#include <sys/types.h>

#include "usmc_clc.h"

/*
 * The holder: whether the Proposal msg waiting in channel ch, from user
 * uid, is for the accepted TCP socket acc (PROOF_SNAT: likely the same
 * connection, its source rewritten, so refused with 0x03000007).  The
 * descriptors that came with it (its ring's and the proposer's TCP
 * socket) are looked at without taking the message.
 */
enum rdv_proof { PROOF_NO, PROOF_YES, PROOF_SNAT };
enum rdv_proof rdv_prove(int ch, const struct clc_msg *msg, uid_t uid, int acc);

#endif /* USMC_RENDEZVOUS_PROOF_H */
