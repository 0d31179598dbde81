/* SPDX-License-Identifier: MIT */
/*
 * The client's link group (usmc_connect_lgr.c): one toward the port that
 * we have, or a new one, over a channel to the server's listener.
 */
#ifndef USMC_CONNECT_LGR_H
#define USMC_CONNECT_LGR_H

#include <stdbool.h>
#include <stdint.h>

#include "usmc_core.h"
#include "usmc_registry.h"

/*
 * The link group for a Proposal toward port, one we have or a new one;
 * NULL with *reason.  Called and returns with our lock held, which it
 * drops while it connects.
 */
struct usmc_lgr *af_cli_lgr_get(uint16_t port, struct reg_port *reg, bool own_user,
				uint32_t *reason);

#endif /* USMC_CONNECT_LGR_H */
