/* SPDX-License-Identifier: MIT */
/*
 * The server's handshake (usmc_listen.c): accept() of a connection whose
 * Proposal came, listeners usmc did not make, and what sock_diag says of
 * the peer socket of a loopback connection.
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
bool af_diag_available(void);
/*
 * The socket at the other end of a loopback connection, as sock_diag sees
 * it: its cookie (0 if the kernel does not say), its inode (0 while it
 * waits to be accepted) and its owner.
 */
uint64_t af_peer_socket_diag(int fd, const struct sockaddr *peer, uint32_t *inode,
			     uint32_t *uid);
/* The same for the socket of our namespace whose address is local and whose peer is remote. */
uint64_t af_socket_diag(const struct sockaddr *local, const struct sockaddr *remote,
			uint32_t *inode, uint32_t *uid);
/*
 * Takes TCP_DEFER_ACCEPT off a usmc listener's kernel socket and keeps it
 * in s->defer_accept, as the kernel reported it (see usmc_listen.c).
 */
void af_listener_defer_take(struct usmc_sock *s);
/* Doorbells are single bytes: Nagle would hold them back. */
void af_set_nodelay(int fd);

#endif /* USMC_LISTEN_H */
