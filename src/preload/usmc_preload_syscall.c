// SPDX-License-Identifier: MIT
/*
 * syscall(2): a program that reaches the kernel through libc's syscall()
 * rather than read() or send() still passes through here.
 *
 * On a shared-memory connection the kernel socket carries only
 * doorbells, so a raw read would return doorbell bytes or wait for ever,
 * and a raw write would put data beside the rings.  Each call of the
 * socket's data path or life (I/O, waits, copies, close) on a descriptor
 * usmc knows goes to the wrapper of its libc name, with the kernel's
 * arguments; every other call, and every call on a descriptor usmc does
 * not know, goes to libc's syscall() unchanged.  A socket the program
 * makes with syscall(SYS_socket) is never usmc's: plain TCP from its
 * start, whatever path its I/O takes.
 *
 * io_uring moves a socket's bytes in the kernel, where the rings of a
 * shared-memory connection are not.  Once a process sets up an io_uring
 * (SYS_io_uring_setup here, or liburing's setup calls below), every socket
 * it makes from then on is plain TCP from its start (reason
 * USMC_DECL_ENV); connections already in shared memory stay so.
 *
 * A seccomp filter may kill the process for a call it does not list
 * (OpenSSH's pre-auth sandbox kills for fcntl): once the process installs
 * one, through prctl() or here, usmc makes only the calls it must
 * (proc_seccomp_filtered).
 *
 * A call made without libc at all (inline assembly, as in Go) is out of
 * reach: see docs/PROGRAMS.md.
 */
#undef _FORTIFY_SOURCE

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/select.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "usmc.h"
#include "usmc_fdtab.h"
#include "usmc_preload.h"
#include "usmc_proc.h"
#include "usmc_sock.h"
#include "usmc_sys.h"

/* Whether the descriptor is one usmc knows. */
static bool known(long fd)
{
	return fd >= 0 && fd <= INT32_MAX && usmc_sock_get((int)fd);
}

/* pselect6's sixth argument: the mask and its size. */
struct pselect_mask {
	const sigset_t *set;
	size_t size;
};

static long pselect6(long a, long b, long c, long d, long e, long f)
{
	const struct pselect_mask *m = (const struct pselect_mask *)f;

	return pselect((int)a, (fd_set *)b, (fd_set *)c, (fd_set *)d, (const struct timespec *)e,
		       m ? m->set : NULL);
}

/* The calls whose first argument is the descriptor. */
static long fd_call(long nr, long a, long b, long c, long d, long e, long f, bool *done)
{
	*done = true;
	switch (nr) {
	case SYS_read:
		return read((int)a, (void *)b, (size_t)c);
	case SYS_write:
		return write((int)a, (const void *)b, (size_t)c);
	case SYS_readv:
		return readv((int)a, (const struct iovec *)b, (int)c);
	case SYS_writev:
		return writev((int)a, (const struct iovec *)b, (int)c);
	case SYS_recvfrom:
		return recvfrom((int)a, (void *)b, (size_t)c, (int)d, (struct sockaddr *)e,
				(socklen_t *)f);
	case SYS_sendto:
		return sendto((int)a, (const void *)b, (size_t)c, (int)d,
			      (const struct sockaddr *)e, (socklen_t)f);
	case SYS_recvmsg:
		return recvmsg((int)a, (struct msghdr *)b, (int)c);
	case SYS_sendmsg:
		return sendmsg((int)a, (const struct msghdr *)b, (int)c);
	case SYS_recvmmsg:
		return recvmmsg((int)a, (struct mmsghdr *)b, (unsigned int)c, (int)d,
				(struct timespec *)e);
	case SYS_sendmmsg:
		return sendmmsg((int)a, (struct mmsghdr *)b, (unsigned int)c, (int)d);
	case SYS_sendfile:
		return sendfile((int)a, (int)b, (off_t *)c, (size_t)d);
	case SYS_close:
		return close((int)a);
	case SYS_dup:
		return dup((int)a);
	case SYS_dup2:
		return dup2((int)a, (int)b);
	case SYS_dup3:
		return dup3((int)a, (int)b, (int)c);
	case SYS_fcntl:
		return fcntl((int)a, (int)b, c);
	case SYS_ioctl:
		return ioctl((int)a, (unsigned long)b, c);
	case SYS_shutdown:
		return shutdown((int)a, (int)b);
	case SYS_connect:
		return connect((int)a, (const struct sockaddr *)b, (socklen_t)c);
	case SYS_listen:
		return listen((int)a, (int)b);
	case SYS_accept:
		return accept((int)a, (struct sockaddr *)b, (socklen_t *)c);
	case SYS_accept4:
		return accept4((int)a, (struct sockaddr *)b, (socklen_t *)c, (int)d);
	case SYS_getsockopt:
		return getsockopt((int)a, (int)b, (int)c, (void *)d, (socklen_t *)e);
	case SYS_setsockopt:
		return setsockopt((int)a, (int)b, (int)c, (const void *)d, (socklen_t)e);
	}
	*done = false;
	return 0;
}

/*
 * The sixth argument lives on the caller's stack, whether or not it
 * passed one; libc's syscall() reads it as well.  AddressSanitizer would
 * take that read for an overflow.
 */
EXPORT __attribute__((no_sanitize_address)) long syscall(long nr, ...)
{
	long a, b, c, d, e, f, rc;
	bool done = false;
	va_list ap;

	/* Six arguments, whatever the call takes, as libc's syscall() reads them. */
	va_start(ap, nr);
	a = va_arg(ap, long), b = va_arg(ap, long), c = va_arg(ap, long);
	d = va_arg(ap, long), e = va_arg(ap, long), f = va_arg(ap, long);
	va_end(ap);
	preload_bound();
	/*
	 * A wait without a usmc socket stays the kernel's own, which (unlike
	 * libc's) writes the time left into ppoll's and pselect6's timeout.
	 */
	switch (nr) {
	case SYS_poll:
		if (pollset_holds_usmc((struct pollfd *)a, (nfds_t)b))
			return poll((struct pollfd *)a, (nfds_t)b, (int)c);
		break;
	case SYS_ppoll:
		if (pollset_holds_usmc((struct pollfd *)a, (nfds_t)b))
			return ppoll((struct pollfd *)a, (nfds_t)b, (const struct timespec *)c,
				     (const sigset_t *)d);
		break;
	case SYS_select:
	case SYS_pselect6:
		if (!sets_hold_usmc((int)a, (fd_set *)b, (fd_set *)c, (fd_set *)d))
			break;
		if (nr == SYS_pselect6)
			return pselect6(a, b, c, d, e, f);
		return select((int)a, (fd_set *)b, (fd_set *)c, (fd_set *)d, (struct timeval *)e);
	case SYS_epoll_wait:
		return epoll_wait((int)a, (struct epoll_event *)b, (int)c, (int)d);
	case SYS_epoll_pwait:
		return epoll_pwait((int)a, (struct epoll_event *)b, (int)c, (int)d,
				   (const sigset_t *)e);
	case SYS_splice:
		if (known(a) || known(c))
			return splice((int)a, (loff_t *)b, (int)c, (loff_t *)d, (size_t)e,
				      (unsigned int)f);
		break;
	case SYS_close_range:
		return close_range((unsigned int)a, (unsigned int)b, (int)c);
	case SYS_io_uring_setup:
		rc = usmc_sys.syscall(nr, a, b, c, d, e, f);
		if (rc >= 0)
			usmc_plain_from_now(USMC_DECL_ENV);
		return rc;
	case SYS_seccomp:
	case SYS_prctl:
		rc = usmc_sys.syscall(nr, a, b, c, d, e, f);
		/* A filter's (SECCOMP_SET_MODE_FILTER) may return a listener's descriptor. */
		if (rc >= 0 && (nr == SYS_seccomp ? a == SECCOMP_SET_MODE_STRICT ||
							  a == SECCOMP_SET_MODE_FILTER
						    : a == PR_SET_SECCOMP))
			proc_seccomp_note();
		return rc;
	default:
		/* dup2 and dup3 onto a usmc descriptor close it: usmc must know. */
		if (known(a) || ((nr == SYS_dup2 || nr == SYS_dup3) && known(b))) {
			rc = fd_call(nr, a, b, c, d, e, f, &done);
			if (done)
				return rc;
		}
	}
	return usmc_sys.syscall(nr, a, b, c, d, e, f);
}

EXPORT int prctl(int option, ...)
{
	unsigned long a, b, c, d;
	va_list ap;
	int rc;

	/* Four arguments, whatever the option takes, as libc's prctl() reads them. */
	va_start(ap, option);
	a = va_arg(ap, unsigned long), b = va_arg(ap, unsigned long);
	c = va_arg(ap, unsigned long), d = va_arg(ap, unsigned long);
	va_end(ap);
	preload_bound();
	rc = usmc_sys.prctl(option, a, b, c, d);
	if (rc == 0 && option == PR_SET_SECCOMP)
		proc_seccomp_note();
	return rc;
}

/*
 * liburing makes its system calls itself: its setup calls are the place
 * to see an io_uring coming.  They return -errno.
 */
#define LIBURING_NEXT(name, ...)                                                    \
	do {                                                                        \
		void *f = dlsym(RTLD_NEXT, #name);                                  \
		int rc = f ? ((__typeof__(&name))f)(__VA_ARGS__) : -ENOSYS;         \
		if (rc >= 0)                                                        \
			usmc_plain_from_now(USMC_DECL_ENV);                         \
		return rc;                                                          \
	} while (0)

EXPORT int io_uring_setup(unsigned int entries, void *params);
EXPORT int io_uring_queue_init(unsigned int entries, void *ring, unsigned int flags);
EXPORT int io_uring_queue_init_params(unsigned int entries, void *ring, void *params);
EXPORT int io_uring_queue_init_mem(unsigned int entries, void *ring, void *params, void *buf,
				   size_t buf_size);

EXPORT int io_uring_setup(unsigned int entries, void *params)
{
	LIBURING_NEXT(io_uring_setup, entries, params);
}

EXPORT int io_uring_queue_init(unsigned int entries, void *ring, unsigned int flags)
{
	LIBURING_NEXT(io_uring_queue_init, entries, ring, flags);
}

EXPORT int io_uring_queue_init_params(unsigned int entries, void *ring, void *params)
{
	LIBURING_NEXT(io_uring_queue_init_params, entries, ring, params);
}

EXPORT int io_uring_queue_init_mem(unsigned int entries, void *ring, void *params, void *buf,
				   size_t buf_size)
{
	LIBURING_NEXT(io_uring_queue_init_mem, entries, ring, params, buf, buf_size);
}
