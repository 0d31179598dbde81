/* SPDX-License-Identifier: MIT */
/*
 * The channel (usmc_chan.c): the Unix socket a link group's CLC messages
 * travel on, listened for at the port's address, admitted or refused,
 * and taken from a listener's backlog.  Under usmc_lock().
 */
#ifndef USMC_CHAN_H
#define USMC_CHAN_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "usmc_listener.h"

/* A listening Unix socket at the port's channel address, or -1. */
int af_channel_listen(uint16_t port, bool other_users);
/* A Unix listener bound to sun, for channels and carriers; -1 if it cannot be. */
int af_channel_listen_at(const struct sockaddr_un *sun, socklen_t sun_len);
/*
 * Whether a socket listens at sun, asked by connecting and closing at
 * once: a process's names go with its last descriptor, when it exits,
 * before anyone reaps it and whatever pid namespace it is in.  The
 * listener drops the empty channel as it drops any.
 */
bool af_channel_listened(const struct sockaddr_un *sun, socklen_t sun_len);
/*
 * Why a channel from cred may not become a link group; 0 if it may.
 * shared: the listener whose shared backlog it came from, or NULL.
 */
uint32_t af_channel_admit(int fd, const struct ucred *cred, const struct usmc_listener *shared,
			  uint32_t *refuse);
/* Refuses a channel with a Decline of the whole link group (token 0) or of token; closes it. */
void af_channel_refuse(int fd, uint64_t token, uint32_t reason);
/*
 * Takes a bounded number of new channels of l; returns how many became
 * link groups, and *more if our own user's queue may hold others.
 */
int af_accept_channels(struct usmc_listener *l, bool *more);

#endif /* USMC_CHAN_H */
