/* SPDX-License-Identifier: MIT */
/*
 * Shared by the files of the preload library.
 */
#ifndef USMC_PRELOAD_H
#define USMC_PRELOAD_H

/* The interposed names: the only ones the library exports. */
#define EXPORT __attribute__((visibility("default")))

/* Points usmc's system calls past this library; every wrapper calls it first. */
void preload_bound(void);

#include <poll.h>
#include <signal.h>
#include <sys/select.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <time.h>

/* usmc_preload_stdio.c: standard streams on descriptors 0..2 that are usmc sockets. */
void preload_stdio_init(void);
/* After a dup2 or dup3 made fd (its result, or -1) what it is now; returns fd. */
int preload_stdio_fd_changed(int fd);

/*
 * usmc_preload_target.c: whether the program at path (searched in PATH
 * if search and it has no slash) loads this library; true if unknown.
 */
#include <stdbool.h>
bool preload_target_adopts(const char *path, bool search);

/* libc's definitions of the calls usmc's table has no entry for. */
struct preload_libc {
	ssize_t (*recvfrom)(int, void *, size_t, int, struct sockaddr *, socklen_t *);
	int (*select)(int, fd_set *, fd_set *, fd_set *, struct timeval *);
	int (*pselect)(int, fd_set *, fd_set *, fd_set *, const struct timespec *,
		       const sigset_t *);
	int (*ppoll)(struct pollfd *, nfds_t, const struct timespec *, const sigset_t *);
	int (*recvmmsg)(int, struct mmsghdr *, unsigned int, int, struct timespec *);
	int (*sendmmsg)(int, struct mmsghdr *, unsigned int, int);
	ssize_t (*splice)(int, loff_t *, int, loff_t *, size_t, unsigned int);
};

/* Filled by preload_bound(). */
extern struct preload_libc preload_libc;

#endif
