// SPDX-License-Identifier: MIT
/*
 * The waits usmc has no call of its own for: select, pselect, ppoll,
 * epoll_pwait and epoll_pwait2.
 *
 * The data of a shared-memory connection never makes its kernel socket
 * readable by itself: only usmc_poll and usmc_epoll_wait ask the peer for
 * a doorbell, so a plain select() on it would sleep through the data.
 * Sets that hold such a socket are therefore waited on through usmc_poll;
 * every other set goes to libc untouched.
 *
 * A signal mask that comes with the wait is put in place around it, not
 * atomically as the kernel does: a signal that arrives just before the
 * wait runs its handler but does not cut the wait short.  Sets without a
 * usmc socket keep the kernel's atomic behaviour (epoll_pwait excepted:
 * an epoll set does not show what it holds).
 */

/* The fortified inline wrappers of the libc headers would clash with our definitions. */
#undef _FORTIFY_SOURCE

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <time.h>

#include "usmc.h"
#include "usmc_listener.h"
#include "usmc_preload.h"
#include "usmc_sys.h"

/* glibc's report of a fortify check that failed; it does not return. */
extern void __chk_fail(void) __attribute__((noreturn));

static bool in_set(const fd_set *set, int fd)
{
	return set && FD_ISSET(fd, set);
}

bool sets_hold_usmc(int nfds, const fd_set *rd, const fd_set *wr, const fd_set *ex)
{
	for (int fd = 0; fd < nfds; fd++)
		if ((in_set(rd, fd) || in_set(wr, fd) || in_set(ex, fd)) && usmc_sock_waited(fd))
			return true;
	return false;
}

bool pollset_holds_usmc(const struct pollfd *fds, nfds_t nfds)
{
	for (nfds_t i = 0; i < nfds; i++)
		if (fds[i].fd >= 0 && usmc_sock_waited(fds[i].fd))
			return true;
	return false;
}

/* Milliseconds for poll, rounded up as the kernel rounds; -1 for no limit. */
static int timeout_ms(const struct timespec *ts)
{
	if (!ts)
		return -1;
	if (ts->tv_sec >= INT_MAX / 1000 - 1)
		return INT_MAX;
	return (int)(ts->tv_sec * 1000 + (ts->tv_nsec + 999999) / 1000000);
}

static void mask_set(const sigset_t *mask, sigset_t *old)
{
	if (mask)
		pthread_sigmask(SIG_SETMASK, mask, old);
}

static void mask_restore(const sigset_t *mask, const sigset_t *old)
{
	int saved = errno;

	if (mask)
		pthread_sigmask(SIG_SETMASK, old, NULL);
	errno = saved;
}

/* Writes poll's answer back into select's sets, with select's meaning of each. */
static int sets_from_poll(const struct pollfd *fds, nfds_t n, int nfds, fd_set *rd, fd_set *wr,
			  fd_set *ex)
{
	int ready = 0;

	for (nfds_t i = 0; i < n; i++)
		if (fds[i].revents & POLLNVAL) {
			errno = EBADF;
			return -1;
		}
	for (int fd = 0; fd < nfds; fd++) {
		if (rd)
			FD_CLR(fd, rd);
		if (wr)
			FD_CLR(fd, wr);
		if (ex)
			FD_CLR(fd, ex);
	}
	for (nfds_t i = 0; i < n; i++) {
		short want = fds[i].events, got = fds[i].revents;

		if ((want & POLLIN) && (got & (POLLIN | POLLHUP | POLLERR)))
			FD_SET(fds[i].fd, rd), ready++;
		if ((want & POLLOUT) && (got & (POLLOUT | POLLERR)))
			FD_SET(fds[i].fd, wr), ready++;
		if ((want & POLLPRI) && (got & POLLPRI))
			FD_SET(fds[i].fd, ex), ready++;
	}
	return ready;
}

/* select's sets as a poll set, waited on by usmc_poll. */
static int select_by_poll(int nfds, fd_set *rd, fd_set *wr, fd_set *ex, int timeout)
{
	struct pollfd *fds = calloc((size_t)nfds, sizeof(*fds));
	nfds_t n = 0;
	int rc;

	if (!fds) {
		errno = ENOMEM;
		return -1;
	}
	for (int fd = 0; fd < nfds; fd++) {
		short events = (in_set(rd, fd) ? POLLIN : 0) | (in_set(wr, fd) ? POLLOUT : 0) |
			       (in_set(ex, fd) ? POLLPRI : 0);

		if (events)
			fds[n++] = (struct pollfd){ .fd = fd, .events = events };
	}
	rc = usmc_poll(fds, n, timeout);
	if (rc >= 0)
		rc = sets_from_poll(fds, n, nfds, rd, wr, ex);
	free(fds);
	return rc;
}

static long elapsed_us(const struct timespec *start)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (now.tv_sec - start->tv_sec) * 1000000L + (now.tv_nsec - start->tv_nsec) / 1000;
}

EXPORT int select(int nfds, fd_set *rd, fd_set *wr, fd_set *ex, struct timeval *timeout)
{
	struct timespec start, limit;
	long left_us;
	int rc;

	preload_bound();
	if (!sets_hold_usmc(nfds, rd, wr, ex))
		return usmc_sys.select(nfds, rd, wr, ex, timeout);
	if (timeout) {
		limit = (struct timespec){ timeout->tv_sec, timeout->tv_usec * 1000 };
		clock_gettime(CLOCK_MONOTONIC, &start);
	}
	rc = select_by_poll(nfds, rd, wr, ex, timeout_ms(timeout ? &limit : NULL));
	/* Linux tells the caller how much of the timeout is left. */
	if (timeout) {
		left_us = timeout->tv_sec * 1000000L + timeout->tv_usec - elapsed_us(&start);
		if (left_us < 0)
			left_us = 0;
		timeout->tv_sec = left_us / 1000000;
		timeout->tv_usec = left_us % 1000000;
	}
	return rc;
}

EXPORT int __select(int nfds, fd_set *rd, fd_set *wr, fd_set *ex, struct timeval *timeout)
	ALIAS_OF(select);

EXPORT int pselect(int nfds, fd_set *rd, fd_set *wr, fd_set *ex, const struct timespec *timeout,
		   const sigset_t *mask)
{
	sigset_t old;
	int rc;

	preload_bound();
	if (!sets_hold_usmc(nfds, rd, wr, ex))
		return usmc_sys.pselect(nfds, rd, wr, ex, timeout, mask);
	mask_set(mask, &old);
	rc = select_by_poll(nfds, rd, wr, ex, timeout_ms(timeout));
	mask_restore(mask, &old);
	return rc;
}

static int ppoll_any(struct pollfd *fds, nfds_t nfds, const struct timespec *timeout,
		     const sigset_t *mask)
{
	sigset_t old;
	int rc;

	preload_bound();
	if (!pollset_holds_usmc(fds, nfds))
		return usmc_sys.ppoll(fds, nfds, timeout, mask);
	mask_set(mask, &old);
	rc = usmc_poll(fds, nfds, timeout_ms(timeout));
	mask_restore(mask, &old);
	return rc;
}

EXPORT int ppoll(struct pollfd *fds, nfds_t nfds, const struct timespec *timeout,
		 const sigset_t *mask)
{
	return ppoll_any(fds, nfds, timeout, mask);
}

EXPORT int __ppoll_chk(struct pollfd *fds, nfds_t nfds, const struct timespec *timeout,
		       const sigset_t *mask, size_t fds_size)
{
	if (fds_size / sizeof(*fds) < nfds)
		__chk_fail();
	return ppoll_any(fds, nfds, timeout, mask);
}

EXPORT int epoll_pwait(int epfd, struct epoll_event *events, int maxevents, int timeout,
		       const sigset_t *mask)
{
	sigset_t old;
	int rc;

	preload_bound();
	mask_set(mask, &old);
	rc = usmc_epoll_wait(epfd, events, maxevents, timeout);
	mask_restore(mask, &old);
	return rc;
}

/* epoll_pwait with a timeout to the nanosecond, which poll rounds up to milliseconds. */
EXPORT int epoll_pwait2(int epfd, struct epoll_event *events, int maxevents,
			const struct timespec *timeout, const sigset_t *mask)
{
	sigset_t old;
	int rc;

	preload_bound();
	mask_set(mask, &old);
	rc = usmc_epoll_wait(epfd, events, maxevents, timeout_ms(timeout));
	mask_restore(mask, &old);
	return rc;
}
