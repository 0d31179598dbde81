/* SPDX-License-Identifier: MIT */
/*
 * Shared by the files of the preload library.
 */
#ifndef USMC_PRELOAD_H
#define USMC_PRELOAD_H

#include <poll.h>
#include <stdbool.h>
#include <sys/select.h>

/* The interposed names: the only ones the library exports. */
#define EXPORT __attribute__((visibility("default")))

/* Another name for the function f, with f's attributes (libc declares some nothrow). */
#ifdef __clang__
#define ALIAS_OF(f) __attribute__((alias(#f)))
#else
#define ALIAS_OF(f) __attribute__((alias(#f), copy(f)))
#endif

/* Points usmc's system calls past this library; every wrapper calls it first. */
void preload_bound(void);

/* Whether select's sets, or a poll set, hold a usmc socket (usmc_preload_wait.c). */
bool sets_hold_usmc(int nfds, const fd_set *rd, const fd_set *wr, const fd_set *ex);
bool pollset_holds_usmc(const struct pollfd *fds, nfds_t nfds);

/*
 * What a wrapper passes on when the descriptor is not usmc's goes to the
 * same table as usmc's own calls: usmc_sys (usmc_sys.h), which lists every
 * socket call exported here.
 */

/* usmc_preload_stdio.c: standard streams on descriptors 0..2 that are usmc sockets. */
void preload_stdio_init(void);
/* After a dup2 or dup3 made fd (its result, or -1) what it is now; returns fd. */
int preload_stdio_fd_changed(int fd);

/*
 * usmc_preload_target.c: whether the program at path (searched in PATH
 * if search and it has no slash) loads this library, true if unknown;
 * in *secure whether its exec is secure (AT_SECURE; such a program never
 * loads it), false if unknown: one look at the file for both.  ids_reset:
 * a spawn that sets the effective ids to the real ones
 * (POSIX_SPAWN_RESETIDS).
 */
bool preload_target_adopts(const char *path, bool search, bool ids_reset, bool *secure);

#endif
