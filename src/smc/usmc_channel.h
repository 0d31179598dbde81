/* SPDX-License-Identifier: MIT */
/*
 * A link group's channel (usmc_channel.c): CLC messages sent and received
 * on its Unix seqpacket socket, descriptors beside them, and what a wait
 * of ours takes in meanwhile.
 */
#ifndef USMC_CHANNEL_H
#define USMC_CHANNEL_H

#include <stdbool.h>
#include <stdint.h>

#include "usmc_clc.h"
#include "usmc_core.h"

/* Sends one CLC message, with fd attached unless it is -1. */
int lgr_send(struct usmc_lgr *lgr, const struct clc_msg *msg, int fd);
/* The same with a second descriptor: a Proposal across namespaces carries our TCP socket. */
int lgr_send2(struct usmc_lgr *lgr, const struct clc_msg *msg, int fd, int fd2);

/* Sends a message that may be dropped (Confirm) if the channel is full now. */
int lgr_send_try(struct usmc_lgr *lgr, const struct clc_msg *msg);

/*
 * Receives one CLC message without blocking.  Returns 1 with *msg (and
 * *fd, or -1), 0 if none is waiting, -1 if the channel is gone.  A
 * malformed message sets *reason and returns 1 with msg->type 0.
 */
int lgr_recv(struct usmc_lgr *lgr, struct clc_msg *msg, int *fd, uint32_t *reason);

/*
 * The channel a wait of ours reads beside its connection, or -1.  A
 * client's channel brings the answers to its Proposals, and a server
 * whose channel toward us is full waits on us, in accept(), for a CLC
 * timeout, then gives the link group up: any wait of ours keeps taking
 * them in, as the kernel takes CLC messages in whatever its process does.
 */
int lgr_watched_chan(struct usmc_lgr *lgr);
/* Takes in what came on a watched channel (poll said so), for lgr_recv to hand out. */
void lgr_take_in(struct usmc_lgr *lgr, short revents);

/*
 * Whether the peer has left more than three quarters of what our channel
 * toward it can hold unread (lgr->crowded, looked at again).  A server
 * reads Proposals only as it accepts, and a burst of connections to a busy
 * one would fill the channel, a smaller backlog than its listener's (some
 * 270 messages): the client's next Proposals go on another link group, as
 * net/smc opens one when a link group is full.  Looked at every 32
 * Proposals, which the quarter left has room for.
 */
bool lgr_crowded(struct usmc_lgr *lgr);

/*
 * Copies of the descriptors that came with the first message waiting on
 * channel ch, which keeps its own (a peek with room for them): at most
 * max of them in fds, how many (the rest closed).
 */
int chan_peek_fds(int ch, int *fds, int max);

/* Frees what was read while we waited to send, with its descriptors (the link group goes). */
void lgr_backlog_free(struct usmc_lgr *lgr);

#endif /* USMC_CHANNEL_H */
