/* SPDX-License-Identifier: MIT */
/*
 * The server's handshake (usmc_listen.c): accept() of a connection whose
 * Proposal came, and listeners usmc did not make.
 */
#ifndef USMC_LISTEN_H
#define USMC_LISTEN_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "usmc_sock.h"

/*
 * A TCP listener this process did not make with usmc (systemd socket
 * activation, inetd, SCM_RIGHTS, exec): made a usmc listener at its
 * first accept.  The socket, or NULL for anything else.
 */
struct usmc_sock *af_listener_adopt(int fd);
int af_accept(struct usmc_sock *ls, int fd, const struct sockaddr *peer, socklen_t peer_len);
/*
 * Takes TCP_DEFER_ACCEPT off a usmc listener's kernel socket and keeps it
 * in s->defer_accept, as the kernel reported it (see usmc_listen.c).
 */
void af_listener_defer_take(struct usmc_sock *s);
/* Doorbells are single bytes: Nagle would hold them back. */
void af_set_nodelay(int fd);

#endif /* USMC_LISTEN_H */
