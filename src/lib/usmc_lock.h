/* SPDX-License-Identifier: MIT */
/*
 * The library's locks, and the one order they are taken in.
 *
 * A thread takes a lock only while it holds none of the same or a higher
 * rank.  Before all of them comes holders_lock (usmc_holders.c), a
 * read-write lock: fork() takes it to write, so that a child gets each
 * connection with its count of holders; a close, and the end of a hold,
 * read it, around whatever they take next.  (One taker reads it under
 * LOCK_CORE: the new image's adoption of the connections an exec handed
 * over (usmc_exec_adopt.c), which runs as the library loads, before the
 * program can have a thread that forks.)  The ranks, lowest (taken
 * first) to highest:
 *
 *   LOCK_EPOLL         which usmc sockets are in which epoll sets
 *                      (usmc_epoll_table.c).  Held while the set's sockets
 *                      are looked at, which may settle a handshake.
 *   LOCK_CONN_TX       a connection's tx_lock (usmc_conn_shared, process-
 *                      shared and robust): the writes into our ring and
 *                      its laps; a Decline's replay into TCP holds it.  A
 *                      write looks at the peer's consumer cursor, and
 *                      changes our ring's laps, under:
 *   LOCK_CONN_RX       the connection's rx_lock (likewise): the reads of
 *                      the peer's ring, the refresh of both cursors, and
 *                      both rings' laps (the peer's consumer cursor is
 *                      read by ours).
 *   LOCK_CORE          usmc_lock() (usmc_core.c): link groups, their
 *                      channels, the handshakes in progress, the lists of
 *                      Proposals and connections, the segments kept for
 *                      reuse (usmc_seg_reuse.c).
 *   LOCK_DIAG          making this process's usmc-stat table (usmc_diag.c).
 *   LOCK_RDV_NAT       the rendezvous directory's NAT map as last read
 *                      (usmc_rendezvous_nat.c).
 *   LOCK_RDV_LIST      the rendezvous directory's listing as last read
 *                      (usmc_rendezvous_list.c).
 *   LOCK_POLICY_SRC    the policy file's state (usmc_policy.c).
 *   LOCK_POLICY_LOCAL  the cache of local addresses (usmc_policy.c).
 *   LOCK_CAPTURE       the capture file (usmc_capture.c).
 *
 * Beside the ranks, across processes: a side queue's pass word in the
 * registry (reg_pass_begin, usmc_registry.c), taken under LOCK_CORE for
 * one pass through that queue and given back before the pass returns;
 * no lock is taken while it is held, and a process that dies holding it
 * loses it to the next.
 *
 * Two connections' locks are never held at once.  State that no lock
 * guards is either the thread's own, set once (pthread_once, usmc_once),
 * or atomic; the descriptor table (usmc_fdtab.c) is read without a lock and
 * changed by atomic exchange.  HACKING.md, "Process state", names every
 * variable of the process and what guards it.
 *
 * A debug build (CMAKE_BUILD_TYPE Debug, which the sanitizer build is)
 * checks the order at every lock and aborts naming the two ranks.
 */
#ifndef USMC_LOCK_H
#define USMC_LOCK_H

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

enum usmc_lock_rank {
	LOCK_EPOLL = 1,
	LOCK_CONN_TX,
	LOCK_CONN_RX,
	LOCK_CORE,
	LOCK_DIAG,
	LOCK_RDV_NAT,
	LOCK_RDV_LIST,
	LOCK_POLICY_SRC,
	LOCK_POLICY_LOCAL,
	LOCK_CAPTURE,
};

#ifdef USMC_LOCK_ORDER
extern __thread uint32_t usmc_locks_held; /* a bit for each rank this thread holds */
void usmc_lock_order_broken(enum usmc_lock_rank taking);

static inline void lock_rank_take(enum usmc_lock_rank r)
{
	if (usmc_locks_held >> r)
		usmc_lock_order_broken(r);
	usmc_locks_held |= 1u << r;
}

static inline void lock_rank_drop(enum usmc_lock_rank r)
{
	usmc_locks_held &= ~(1u << r);
}
#else
static inline void lock_rank_take(enum usmc_lock_rank r)
{
	(void)r;
}

static inline void lock_rank_drop(enum usmc_lock_rank r)
{
	(void)r;
}
#endif

/*
 * The process's own lock of each rank (a connection's two are in its
 * slot, shared with its peer).  They live together so that a fork can
 * take them all, in order: a lock another thread held at fork() would be
 * held for good in the child, and its first call to take it would never
 * return.  The prepare handler (usmc_lock.c, set as the library loads)
 * takes each, after holders_lock (whose handler, set later, runs first);
 * the parent gives them back and the child, one thread with their state
 * whole, makes them anew.
 */
extern pthread_mutex_t usmc_locks[LOCK_CAPTURE + 1];

/* Sets the fork handlers of the locks, once: before any other of the library's. */
void usmc_locks_watch_fork(void);

static inline void usmc_rank_lock(enum usmc_lock_rank r)
{
	lock_rank_take(r);
	pthread_mutex_lock(&usmc_locks[r]);
}

static inline void usmc_rank_unlock(enum usmc_lock_rank r)
{
	pthread_mutex_unlock(&usmc_locks[r]);
	lock_rank_drop(r);
}

/*
 * pthread_once for the hot paths: once done, a flag spares them the
 * call (a fallback connection goes through several of these).
 */
static inline void usmc_once(pthread_once_t *once, _Atomic bool *done, void (*init)(void))
{
	if (atomic_load_explicit(done, memory_order_acquire))
		return;
	pthread_once(once, init);
	atomic_store_explicit(done, true, memory_order_release);
}

/*
 * A connection's lock.  True if a process died holding it: the state it
 * guards may be half changed (a write's cursor counted, not published),
 * which the caller makes whole (usmc_tx.c).
 */
static inline bool conn_lock(pthread_mutex_t *m, enum usmc_lock_rank r)
{
	lock_rank_take(r);
	if (pthread_mutex_lock(m) != EOWNERDEAD)
		return false;
	pthread_mutex_consistent(m);
	return true;
}

static inline void usmc_mutex_unlock(pthread_mutex_t *m, enum usmc_lock_rank r)
{
	pthread_mutex_unlock(m);
	lock_rank_drop(r);
}

#endif /* USMC_LOCK_H */
