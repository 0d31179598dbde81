/* SPDX-License-Identifier: MIT */
/*
 * Client connections waiting for their answer (usmc_cli_pending.c).
 * Under LOCK_CORE.
 */
#ifndef USMC_CLI_PENDING_H
#define USMC_CLI_PENDING_H

#include <stdbool.h>
#include <stdint.h>

#include "usmc_core.h"

struct usmc_conn;

/* The client connection waiting for token's answer, unlinked if asked. */
struct usmc_conn *af_cli_find(struct usmc_lgr *lgr, uint64_t token, bool unlink);
/* Lists conn, its link group and token set, until its answer comes. */
void af_cli_pending_add(struct usmc_conn *conn);

/* Calls fn for each connection of lgr waiting for its answer; fn may unlink the one it gets. */
void af_cli_each(struct usmc_lgr *lgr, void (*fn)(struct usmc_conn *conn));

#endif /* USMC_CLI_PENDING_H */
