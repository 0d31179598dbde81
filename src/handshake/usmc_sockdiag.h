/* SPDX-License-Identifier: MIT */
/*
 * The sock_diag client (usmc_sockdiag.c): the kernel socket at the other
 * end of a loopback connection, by its 4-tuple.  One netlink socket per
 * process, made again in a forked child.
 */
#ifndef USMC_SOCKDIAG_H
#define USMC_SOCKDIAG_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

/* Whether this process has its sock_diag socket (made at the first call). */
bool af_diag_available(void);
/*
 * The socket at the other end of a loopback connection, as sock_diag sees
 * it: its cookie (0 if the kernel does not say), its inode (0 while it
 * waits to be accepted) and its owner.
 */
uint64_t af_peer_socket_diag(int fd, const struct sockaddr *peer, uint32_t *inode,
			     uint32_t *uid);
/*
 * The same, as the TCP state of that socket (TCP_ESTABLISHED and *inode
 * 0 while it waits to be accepted; TCP_SYN_RECV while the kernel's
 * handshake is not done on its side), 0 if there is none, -1 if sock_diag
 * does not answer.
 */
int af_peer_socket_state(int fd, const struct sockaddr *peer, uint32_t *inode);
/* The same for the socket of our namespace whose address is local and whose peer is remote. */
uint64_t af_socket_diag(const struct sockaddr *local, const struct sockaddr *remote,
			uint32_t *inode, uint32_t *uid);
/*
 * Whether the other end of our connection from local is a socket of our
 * own namespace: sock_diag lists a connection (not a listener) whose peer
 * is local.  A client that dialled another namespace's address and finds
 * its other end here went through a redirect of its own namespace (a
 * mesh's outbound capture, to the pod's own proxy): the listener it
 * proposed to never gets the connection.
 */
bool af_peer_end_here(const struct sockaddr *local);
/*
 * Lets the segments ask whether a ring given to other processes of a fork
 * is held still (seg_holder_gone, usmc_seg.h): a listener's process, whose
 * children may take its connections, sets it.
 */
void af_diag_watch_holders(void);

#endif /* USMC_SOCKDIAG_H */
