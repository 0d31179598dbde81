// SPDX-License-Identifier: MIT
/*
 * The process's locks of each rank, and what a fork does with them
 * (usmc_lock.h); and the debug build's check of the lock order: which
 * ranks this thread holds, and the abort that names the two ranks out of
 * order.
 */
#include "usmc_fork.h"
#include "usmc_lock.h"

#include <stdio.h>
#include <stdlib.h>

#include "usmc_sys.h"

pthread_mutex_t usmc_locks[LOCK_CAPTURE + 1] = { [0 ... LOCK_CAPTURE] =
							 PTHREAD_MUTEX_INITIALIZER };

/* The ranks whose lock is the process's own: a connection's are in its slot. */
static bool rank_is_process(enum usmc_lock_rank r)
{
	return r != LOCK_CONN_TX && r != LOCK_CONN_RX;
}

static void locks_fork_prepare(void)
{
	for (enum usmc_lock_rank r = LOCK_EPOLL; r <= LOCK_CAPTURE; r++)
		if (rank_is_process(r))
			usmc_rank_lock(r);
}

static void locks_fork_parent(void)
{
	for (enum usmc_lock_rank r = LOCK_CAPTURE; r >= LOCK_EPOLL; r--)
		if (rank_is_process(r))
			usmc_rank_unlock(r);
}

/* The child is one thread, and the state the locks guard is whole. */
static void locks_fork_child(void)
{
	for (enum usmc_lock_rank r = LOCK_EPOLL; r <= LOCK_CAPTURE; r++) {
		if (rank_is_process(r)) {
			pthread_mutex_init(&usmc_locks[r], NULL);
			lock_rank_drop(r);
		}
	}
}

static void locks_watch_fork(void)
{
	usmc_fork_watch(locks_fork_prepare, locks_fork_parent, locks_fork_child);
}

void usmc_locks_watch_fork(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	pthread_once(&once, locks_watch_fork);
}

/* As the library loads; usmc_fdtab.c sets the other handlers after these. */
__attribute__((constructor)) static void locks_watch_fork_at_load(void)
{
	usmc_locks_watch_fork();
}

#ifdef USMC_LOCK_ORDER
__thread uint32_t usmc_locks_held;

void usmc_lock_order_broken(enum usmc_lock_rank taking)
{
	char msg[96];
	int held = 31 - __builtin_clz(usmc_locks_held);
	int n = snprintf(msg, sizeof(msg), "usmc: lock order broken: rank %d taken holding rank %d\n",
			 (int)taking, held);

	usmc_sys.write(2, msg, (size_t)n);
	abort();
}
#endif
