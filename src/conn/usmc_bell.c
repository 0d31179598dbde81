// SPDX-License-Identifier: MIT
/*
 * The holders' bell: waking the sleepers of the other processes that
 * hold a connection.
 *
 * A shutdown is the socket's.  TCP's wakes every call asleep on the
 * socket, in every process that holds it: a fork-based relay stops its
 * reading child that way once the other direction is done.  A kick
 * (usmc_kick.c) wakes only the process's own threads, and nothing reaches
 * the TCP socket.  So a process that forks while it has connections makes
 * a bell first, an eventfd its children inherit; a shutdown of a
 * connection that other processes may hold rings it after its store, and
 * a sleep on such a connection watches it: a blocking read's or write's,
 * poll's and select's, and an epoll wait's while its set holds one (an
 * edge-triggered entry sees the shutdown as an edge).
 *
 * The bell is never read empty: with sleepers in several processes, none
 * could tell whether the others had seen a ring.  Each thread watches it
 * instead through an epoll instance of its own, edge-triggered (every
 * write to an eventfd is an edge), and takes the edge (epoll_wait with no
 * timeout) before its last look at what it waits for.  A ring after the
 * take leaves the thread's instance readable until its next take; a ring
 * before it followed the change, which the look sees.  Every ring wakes
 * every sleeper of the fork tree on a shared connection; each looks again
 * and sleeps on if it was not for it.  Rings are rare: a shutdown of a
 * connection another process holds.  The count the writes add up to would
 * take centuries of rings to fill.
 *
 * A forked child inherits the instances of its parent's threads as
 * descriptors; it closes them (a take there would take the parent's
 * edge), and its threads make their own.  Beyond BELL_THREADS threads at
 * once a thread sleeps without the bell, as a process under a seccomp
 * filter does (the filter may answer epoll calls with death), and as an
 * image started by exec whose old image had no bell.  An exec hands the
 * bell over with the connections (usmc_exec.c): a holder that came by
 * fork, then exec (inetd's services, git daemon's) still hears it.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "usmc_bell.h"
#include "usmc_fork.h"
#include "usmc_proc.h"
#include "usmc_sys.h"

#define BELL_THREADS 128

static _Atomic int bell_fd = -1;
/* Every thread's epoll instance watching the bell, for a forked child to close. */
static _Atomic int bell_eps[BELL_THREADS] = { [0 ... BELL_THREADS - 1] = -1 };
static __thread int bell_ep = -1, bell_slot = -1;
static pthread_key_t bell_key;
static pthread_once_t bell_once = PTHREAD_ONCE_INIT;

/* A thread that ends gives its instance back. */
static void bell_thread_end(void *unused)
{
	(void)unused;
	if (bell_slot >= 0) {
		atomic_store(&bell_eps[bell_slot], -1);
		usmc_sys.close(bell_ep);
	}
	bell_ep = -1;
	bell_slot = -1;
}

/* The child: one thread, the parent's instances as descriptors, and the parent's bell. */
static void bell_fork_child(void)
{
	for (int i = 0; i < BELL_THREADS; i++) {
		int fd = atomic_exchange(&bell_eps[i], -1);

		if (fd >= 0)
			usmc_sys.close(fd);
	}
	bell_ep = -1;
	bell_slot = -1;
}

static void bell_watch_fork(void)
{
	pthread_key_create(&bell_key, bell_thread_end);
	usmc_fork_watch(NULL, NULL, bell_fork_child);
}

void usmc_bell_prepare(void)
{
	int fd;

	if (atomic_load(&bell_fd) >= 0 || proc_seccomp_filtered(false))
		return;
	pthread_once(&bell_once, bell_watch_fork);
	fd = usmc_fd_lift(usmc_sys.eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
	if (fd >= 0)
		atomic_store(&bell_fd, fd);
}

int usmc_bell_fd(void)
{
	return proc_seccomp_filtered(false) ? -1 : atomic_load(&bell_fd);
}

void usmc_bell_adopt(int fd)
{
	if (!proc_fd_is(0, fd, "anon_inode:[eventfd]") || atomic_load(&bell_fd) >= 0)
		return;
	usmc_sys.fcntl(fd, F_SETFD, FD_CLOEXEC);
	pthread_once(&bell_once, bell_watch_fork);
	atomic_store(&bell_fd, fd);
}

void usmc_bell_ring(void)
{
	uint64_t one = 1;
	int fd, saved = errno;

	/* After the caller's store: a sleeper that takes the edge later looks at it. */
	atomic_thread_fence(memory_order_seq_cst);
	fd = atomic_load(&bell_fd);
	if (fd >= 0)
		usmc_sys.write(fd, &one, sizeof(one));
	errno = saved;
}

/* This thread's instance watching the bell: made at its first sleep on a shared connection. */
static int bell_thread_ep(int bell)
{
	struct epoll_event ev = { .events = EPOLLIN | EPOLLET };
	int ep, none = -1;

	if (bell_ep >= 0)
		return bell_ep;
	ep = usmc_fd_lift(epoll_create1(EPOLL_CLOEXEC));
	if (ep < 0)
		return -1;
	if (usmc_sys.epoll_ctl(ep, EPOLL_CTL_ADD, bell, &ev) < 0) {
		usmc_sys.close(ep);
		return -1;
	}
	for (int i = 0; i < BELL_THREADS; i++) {
		if (atomic_compare_exchange_strong(&bell_eps[i], &none, ep)) {
			bell_slot = i;
			bell_ep = ep;
			pthread_setspecific(bell_key, &bell_ep);
			return ep;
		}
		none = -1;
	}
	usmc_sys.close(ep);
	return -1;
}

int usmc_bell_enter(bool shared)
{
	struct epoll_event ev;
	int bell = atomic_load(&bell_fd), ep, saved = errno;

	if (!shared || bell < 0 || proc_seccomp_filtered(false))
		return -1;
	ep = bell_thread_ep(bell);
	/* The edge of a ring before now: the look that follows sees its change. */
	if (ep >= 0)
		usmc_sys.epoll_wait(ep, &ev, 1, 0);
	errno = saved;
	return ep;
}
