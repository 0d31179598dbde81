/* SPDX-License-Identifier: MIT */
/*
 * The library's fork handlers, in one list.
 *
 * fork() runs them through pthread_atfork.  _Fork() and a fork made with
 * syscall(2) (SYS_fork, or SYS_clone and SYS_clone3 without CLONE_VM) run
 * no handler at all, and a child made so that goes on with a shared-memory
 * connection would hold it uncounted: the parent's close would end it
 * under the child's writes.  The preload runs the same list around those
 * (usmc_fork_before and usmc_fork_after).
 *
 * A module adds its three handlers once (usmc_fork_watch, from its own
 * pthread_once); prepare handlers run in the reverse of the order they
 * were added, parent and child handlers in that order, as pthread_atfork
 * runs them.
 */
#ifndef USMC_FORK_H
#define USMC_FORK_H

#include <sys/types.h>

void usmc_fork_watch(void (*prepare)(void), void (*parent)(void), void (*child)(void));
/* The prepare handlers, before a fork that runs none. */
void usmc_fork_before(void);
/* The child's handlers (pid 0), or the parent's (any other pid, -1 too), after it. */
void usmc_fork_after(pid_t pid);

#endif /* USMC_FORK_H */
