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
 * Where the server's end of a client's connection fd is: not connected
 * yet, or in the kernel's accept queue (END_WAITING); accepted by process
 * peer_pid, or by another; or nowhere the server can accept it from
 * (END_NONE): the last ACK of the kernel's handshake was dropped (its
 * accept queue was full), and on its side the connection is still a
 * request, or gone.  TCP's client completes it with its first data; ours
 * writes none on TCP while it waits for its answer, so it must not wait
 * for an accept that cannot come.  Nor where sock_diag cannot tell.
 * Takes usmc_lock.
 */
enum af_server_end { END_WAITING, END_WITH_PEER, END_ELSEWHERE, END_NONE };
enum af_server_end af_server_end(int fd, int32_t peer_pid);
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
