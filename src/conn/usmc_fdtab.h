/* SPDX-License-Identifier: MIT */
/*
 * The descriptor table (usmc_fdtab.c): which descriptors are usmc
 * sockets, found by one load on the fast path, and descriptors known to
 * be no TCP listener.
 */
#ifndef USMC_FDTAB_H
#define USMC_FDTAB_H

#include <stdatomic.h>
#include <stdbool.h>

#include "usmc_sock.h"

#define FDTAB_CHUNK_BITS 10
#define FDTAB_CHUNK (1 << FDTAB_CHUNK_BITS)
#define FDTAB_CHUNKS 1024

extern _Atomic(struct usmc_sock *) *_Atomic usmc_fdtab[FDTAB_CHUNKS];

static inline struct usmc_sock *usmc_sock_get(int fd)
{
	_Atomic(struct usmc_sock *) *chunk;

	if ((unsigned)fd >= FDTAB_CHUNK * FDTAB_CHUNKS)
		return NULL;
	chunk = atomic_load_explicit(&usmc_fdtab[fd >> FDTAB_CHUNK_BITS], memory_order_acquire);
	if (!chunk)
		return NULL;
	return atomic_load_explicit(&chunk[fd & (FDTAB_CHUNK - 1)], memory_order_acquire);
}

/* A new socket (SOCK_INIT) in fd's entry; NULL if there is no memory for it. */
struct usmc_sock *usmc_sock_new(int fd, int domain);
/* Whether accept() found fd to be no TCP listener (af_listener_adopt); on/off. */
void usmc_fd_mark_not_listener(int fd, bool on);
bool usmc_fd_not_listener(int fd);
/* Names s by one more descriptor, as dup does; false if the table has no room. */
bool usmc_sock_alias(struct usmc_sock *s, int fd);
/*
 * Drops fd's entry, the socket's reference from fd: true if it was its
 * last descriptor (the socket destroyed).
 */
bool usmc_sock_put(int fd);
/* Frees a socket no descriptor names any more (a close a sleeping call took over). */
void usmc_sock_drop(struct usmc_sock *s);
/*
 * The table's one walk: the first socket at a descriptor from *fd on,
 * with *fd set to that descriptor, or NULL past the last.  Every socket:
 *	for (int fd = 0; (s = usmc_fdtab_next(&fd)); fd++)
 * (a socket of several descriptors comes once for each).
 */
struct usmc_sock *usmc_fdtab_next(int *fd);
/* Sets the fork handlers that give a forked child its own usmc-stat slots. */
void usmc_fd_watch_fork(void);

#endif /* USMC_FDTAB_H */
