/* SPDX-License-Identifier: MIT */
/*
 * The client's handshake (usmc_connect.c): connect() that sends a
 * Proposal beside the TCP handshake.  Its answer is settled in
 * usmc_settle.c.
 */
#ifndef USMC_CONNECT_H
#define USMC_CONNECT_H

#include <stdbool.h>
#include <sys/socket.h>

#include "usmc_sock.h"

int af_connect(struct usmc_sock *s, const struct sockaddr *addr, socklen_t len);

#endif /* USMC_CONNECT_H */
