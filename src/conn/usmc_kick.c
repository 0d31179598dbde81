// SPDX-License-Identifier: MIT
/*
 * Kicks: waking this process's own sleepers.
 *
 * A thread asleep in a usmc wait sleeps in poll() on TCP sockets that
 * carry only the peer's doorbells.  Some events that must end its sleep
 * come from this process instead: another thread's shutdown() of the
 * socket it reads or writes, which the kernel answers at once (end of
 * file, EPIPE: the usual way to stop a thread blocked in read()), and
 * nothing reaches the TCP socket for it.  So every sleep of a process of
 * more than one thread also polls the kick, an eventfd of the process,
 * which such a change makes readable.
 *
 * The kick stays readable until the last sleeper that may have seen it
 * takes it back: sleepers are counted from before the look that precedes
 * their sleep to after the sleep, and a kick is counted (kick_gen) and
 * marked pending before its write.  The sleeper whose leaving brings the
 * count to zero reads the eventfd empty if a kick is pending, and writes
 * it again if a kick came since it left: a sleeper counted after it may
 * wait for that one.  Every kick wakes every sleeper of the process, and
 * each looks again and sleeps on if it was not for it: kicks are rare (a
 * shutdown while a thread sleeps), and a sleep without one costs two
 * atomic counts and a descriptor more in its poll; in a process of one
 * thread, nothing.
 *
 * A forked child makes its own: the parent's eventfd is shared with it,
 * and a reset by one would take the other's kick.  A process under a
 * seccomp filter makes none (the filter may refuse eventfd2 with death),
 * and its sleeps, unless it had one before, are not kicked.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <sys/single_threaded.h>
#include <unistd.h>

#include "usmc_fork.h"
#include "usmc_kick.h"
#include "usmc_proc.h"
#include "usmc_sys.h"

static _Atomic int kick_fd = -1;
static _Atomic unsigned kick_sleepers;
static _Atomic unsigned kick_gen;
static _Atomic bool kick_pending;

/* The child has one thread, asleep nowhere, and the parent's eventfd. */
static void kick_fork_child(void)
{
	int fd = atomic_exchange(&kick_fd, -1);

	if (fd >= 0)
		usmc_sys.close(fd);
	atomic_store(&kick_sleepers, 0);
	atomic_store(&kick_pending, false);
}

static void kick_watch_fork(void)
{
	usmc_fork_watch(NULL, NULL, kick_fork_child);
}

static int kick_open(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	int fd = atomic_load(&kick_fd), none = -1, made;

	/* A seccomp filter may answer eventfd2 with death: a sleep goes without there. */
	if (fd >= 0 || proc_seccomp_filtered(false))
		return fd;
	pthread_once(&once, kick_watch_fork);
	made = usmc_fd_lift(usmc_sys.eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
	if (made < 0)
		return -1;
	if (!atomic_compare_exchange_strong(&kick_fd, &none, made)) {
		usmc_sys.close(made);
		return none;
	}
	return made;
}

int usmc_kick_enter(void)
{
	int fd;

	/*
	 * One thread: no other can change the socket while it sleeps (a signal
	 * handler's call ends the sleep with EINTR), and a sleep polls nothing
	 * more.  glibc clears the flag for good at the first pthread_create.
	 */
	if (__libc_single_threaded)
		return -1;
	atomic_fetch_add(&kick_sleepers, 1);
	fd = kick_open();
	if (fd < 0)
		atomic_fetch_sub(&kick_sleepers, 1);
	return fd;
}

void usmc_kick_leave(int kick)
{
	unsigned gen = atomic_load(&kick_gen);
	int fd = kick, saved = errno;
	uint64_t v;

	/* No kick pending, the common case: a load, no write of the shared line. */
	if (kick < 0 || atomic_fetch_sub(&kick_sleepers, 1) != 1 || !atomic_load(&kick_pending) ||
	    !atomic_exchange(&kick_pending, false))
		return;
	usmc_sys.read(fd, &v, sizeof(v));
	/* A kick since this sleeper's last count may be some later sleeper's: it stays. */
	if (atomic_load(&kick_gen) != gen) {
		atomic_store(&kick_pending, true);
		v = 1;
		usmc_sys.write(fd, &v, sizeof(v));
	}
	errno = saved;
}

void usmc_kick(void)
{
	uint64_t v = 1;
	int fd, saved = errno;

	/* After the caller's store: a sleeper counted later looks at it before it sleeps. */
	atomic_thread_fence(memory_order_seq_cst);
	fd = atomic_load(&kick_fd);
	if (fd < 0 || !atomic_load(&kick_sleepers))
		return;
	atomic_fetch_add(&kick_gen, 1);
	atomic_store(&kick_pending, true);
	usmc_sys.write(fd, &v, sizeof(v));
	errno = saved;
}
