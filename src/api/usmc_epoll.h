/* SPDX-License-Identifier: MIT */
/*
 * epoll over usmc sockets (usmc_epoll.c): the entries kept beside the
 * kernel's set, which follow the descriptors they name.
 */
#ifndef USMC_EPOLL_H
#define USMC_EPOLL_H

#include <stdbool.h>
#include <stdint.h>

/*
 * A descriptor is closed: epoll entries of it go (other_fd -1: it was the
 * socket's last) or follow other_fd, and those of an epoll set it was.
 */
void usmc_epoll_fd_closed(int fd, int other_fd);
/* usmc_conn_disarm for the sockets of an epoll set, and of sets inside it. */
void usmc_epoll_set_disarm(int fd);
/*
 * poll on an epoll set that holds usmc sockets (in it or in a set inside):
 * 1 if one has something to report (its socket armed otherwise, so that a
 * doorbell makes the set readable to the kernel), 0, or -1 for any other
 * descriptor.
 */
int usmc_epoll_set_poll(int fd);
struct usmc_sock;
/*
 * The socket's state changed here without a doorbell (a shutdown): its
 * entries go on their sets' ready lists, and a sleeper of a set wakes.
 */
void usmc_epoll_sock_changed(struct usmc_sock *s);
/* Entries of ready lists that waits have looked at, in this process, ever. */
uint64_t usmc_epoll_looks(void);
/* Whether any epoll entry is tracked at all: a load, for the hot paths. */
bool usmc_epoll_tracking(void);

#endif /* USMC_EPOLL_H */
