// SPDX-License-Identifier: MIT
/*
 * usmc_preload.c - the preloaded half of usmc-run.
 *
 * Loaded with LD_PRELOAD, this library defines socket(), read(), poll()
 * and the other calls a TCP program makes, and hands each to the usmc_
 * call of the same name.  usmc_socket() turns the program's TCP stream
 * sockets into usmc sockets and leaves every other descriptor alone; on
 * those the usmc_ calls are exactly the system calls.
 *
 * usmc's own system calls go through the usmc_sys table.  Until that
 * table points past this library (usmc_sys_bind_next), a call from inside
 * usmc would come straight back here, so every entry point binds it first.
 * The constructor usually does it; the check in each wrapper covers calls
 * made by other libraries' constructors that run before ours.
 *
 * The library exports the interposed names and nothing else (see the
 * version script beside this file).  usmc_preload_wait.c adds the waits
 * usmc has no call for: select, pselect, ppoll, epoll_pwait, epoll_pwait2;
 * usmc_preload_msgs.c the calls made of others: recvmmsg, sendmmsg,
 * preadv2, pwritev2, splice; usmc_preload_syscall.c syscall(2);
 * usmc_preload_exec.c exec, posix_spawn, system and popen;
 * usmc_preload_stdio.c stdio streams on usmc sockets; usmc_preload_files.c
 * the other calls that make descriptors, for EMFILE.
 */

/* The fortified inline wrappers of the libc headers would clash with our definitions. */
#undef _FORTIFY_SOURCE

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "usmc.h"
#include "usmc_exec_adopt.h"
#include "usmc_fdtab.h"
#include "usmc_listen.h"
#include "usmc_preload.h"
#include "usmc_sys.h"

/* glibc's report of a fortify check that failed; it does not return. */
extern void __chk_fail(void) __attribute__((noreturn));

static pthread_once_t bind_once = PTHREAD_ONCE_INIT;

static inline void bound(void)
{
	pthread_once(&bind_once, usmc_sys_bind_next);
}

void preload_bound(void)
{
	bound();
}

/* Binds, and takes over the connections an exec handed to this image. */
__attribute__((constructor)) static void preload_init(void)
{
	bound();
	usmc_exec_adopt();
	preload_stdio_init();
}

/* ---- sockets ---- */

EXPORT int socket(int domain, int type, int protocol)
{
	bound();
	return usmc_socket(domain, type, protocol);
}

EXPORT int bind(int fd, const struct sockaddr *addr, socklen_t len)
{
	bound();
	return usmc_bind(fd, addr, len);
}

EXPORT int listen(int fd, int backlog)
{
	bound();
	return usmc_listen(fd, backlog);
}

EXPORT int connect(int fd, const struct sockaddr *addr, socklen_t len)
{
	bound();
	return usmc_connect(fd, addr, len);
}

/*
 * Under usmc-run every TCP listener is meant to be a usmc one, also one
 * the program did not make itself: systemd or inetd gave it at exec,
 * another process passed it.  Its first accept makes it one
 * (af_listener_adopt).  The library's own usmc_accept leaves a plain
 * socket plain.
 */
EXPORT int accept(int fd, struct sockaddr *addr, socklen_t *len)
{
	bound();
	if (!usmc_sock_get(fd))
		af_listener_adopt(fd);
	return usmc_accept(fd, addr, len);
}

EXPORT int accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
	bound();
	if (!usmc_sock_get(fd))
		af_listener_adopt(fd);
	return usmc_accept4(fd, addr, len, flags);
}

/*
 * From a socket the kernel's sendfile is a splice into a pipe (ESPIPE with
 * an offset, EINVAL toward anything but a pipe): so it is from a usmc
 * socket, whose bytes are in the ring.
 */
EXPORT ssize_t sendfile(int out_fd, int in_fd, off_t *offset, size_t count)
{
	bound();
	if (!usmc_sock_active(in_fd))
		return usmc_sendfile(out_fd, in_fd, offset, count);
	if (offset) {
		errno = ESPIPE;
		return -1;
	}
	return splice(in_fd, NULL, out_fd, NULL, count, 0);
}

EXPORT ssize_t sendfile64(int out_fd, int in_fd, off_t *offset, size_t count)
	ALIAS_OF(sendfile);

EXPORT int dup(int fd)
{
	bound();
	return usmc_dup(fd);
}

EXPORT int dup2(int oldfd, int newfd)
{
	bound();
	return preload_stdio_fd_changed(usmc_dup2(oldfd, newfd));
}

EXPORT int dup3(int oldfd, int newfd, int flags)
{
	bound();
	return preload_stdio_fd_changed(usmc_dup3(oldfd, newfd, flags));
}

EXPORT int close_range(unsigned int first, unsigned int last, int flags)
{
	bound();
	return usmc_close_range(first, last, flags);
}

/* glibc's closefrom calls its own close_range: usmc must put the sockets first. */
EXPORT void closefrom(int lowfd)
{
	bound();
	if (usmc_close_range(lowfd < 0 ? 0 : (unsigned int)lowfd, ~0U, 0) == 0)
		return;
	usmc_sys.closefrom(lowfd); /* a kernel without close_range */
}

EXPORT int shutdown(int fd, int how)
{
	bound();
	return usmc_shutdown(fd, how);
}

EXPORT int close(int fd)
{
	bound();
	return usmc_close(fd);
}

EXPORT int setsockopt(int fd, int level, int name, const void *val, socklen_t len)
{
	bound();
	return usmc_setsockopt(fd, level, name, val, len);
}

EXPORT int getsockopt(int fd, int level, int name, void *val, socklen_t *len)
{
	bound();
	return usmc_getsockopt(fd, level, name, val, len);
}

/*
 * fcntl and ioctl take one optional argument, an integer or a pointer.
 * Reading it as a pointer whatever the command is what libc does itself:
 * on the ABIs Linux runs both travel in the same register or slot.
 */
#define OPTIONAL_ARG(last, arg)                  \
	do {                                     \
		va_list ap;                      \
		va_start(ap, last);              \
		arg = va_arg(ap, void *);        \
		va_end(ap);                      \
	} while (0)

EXPORT int fcntl(int fd, int cmd, ...)
{
	void *arg;

	OPTIONAL_ARG(cmd, arg);
	bound();
	return usmc_fcntl(fd, cmd, arg);
}

/*
 * fcntl64 is what programs built with 64-bit file offsets call (glibc 2.28
 * and later): python, perl, git, node.  On a descriptor usmc does not know
 * it goes to libc's fcntl64, whose record locks are the 64-bit ones.
 */
EXPORT int fcntl64(int fd, int cmd, ...)
{
	void *arg;

	OPTIONAL_ARG(cmd, arg);
	bound();
	if (!usmc_sock_get(fd))
		return usmc_sys.fcntl64(fd, cmd, arg);
	return usmc_fcntl(fd, cmd, arg);
}

EXPORT int ioctl(int fd, unsigned long request, ...)
{
	void *arg;

	OPTIONAL_ARG(request, arg);
	bound();
	return usmc_ioctl(fd, request, arg);
}

/* glibc's sockatmark asks its own ioctl, which no wrapper sees. */
EXPORT int sockatmark(int fd)
{
	int at = 0;

	bound();
	return usmc_ioctl(fd, SIOCATMARK, &at) < 0 ? -1 : at;
}

/* ---- data ---- */

EXPORT ssize_t read(int fd, void *buf, size_t len)
{
	bound();
	return usmc_read(fd, buf, len);
}

EXPORT ssize_t write(int fd, const void *buf, size_t len)
{
	bound();
	return usmc_write(fd, buf, len);
}

EXPORT ssize_t readv(int fd, const struct iovec *iov, int iovcnt)
{
	bound();
	return usmc_readv(fd, iov, iovcnt);
}

EXPORT ssize_t writev(int fd, const struct iovec *iov, int iovcnt)
{
	bound();
	return usmc_writev(fd, iov, iovcnt);
}

EXPORT ssize_t recv(int fd, void *buf, size_t len, int flags)
{
	bound();
	return usmc_recv(fd, buf, len, flags);
}

EXPORT ssize_t send(int fd, const void *buf, size_t len, int flags)
{
	bound();
	return usmc_send(fd, buf, len, flags);
}

EXPORT ssize_t recvmsg(int fd, struct msghdr *msg, int flags)
{
	bound();
	return usmc_recvmsg(fd, msg, flags);
}

EXPORT ssize_t sendmsg(int fd, const struct msghdr *msg, int flags)
{
	bound();
	return usmc_sendmsg(fd, msg, flags);
}

/*
 * On a connected TCP socket recvfrom is recv that names no sender: the
 * kernel reports an address length of 0, and so do we.
 */
static ssize_t recvfrom_any(int fd, void *buf, size_t len, int flags, struct sockaddr *addr,
			    socklen_t *addr_len)
{
	ssize_t n;

	if (!usmc_sock_active(fd))
		return usmc_sys.recvfrom(fd, buf, len, flags, addr, addr_len);
	n = usmc_recv(fd, buf, len, flags);
	if (n >= 0 && addr && addr_len)
		*addr_len = 0;
	return n;
}

EXPORT ssize_t recvfrom(int fd, void *buf, size_t len, int flags, struct sockaddr *addr,
			socklen_t *addr_len)
{
	bound();
	return recvfrom_any(fd, buf, len, flags, addr, addr_len);
}

/* A connected TCP socket ignores the address sendto names. */
EXPORT ssize_t sendto(int fd, const void *buf, size_t len, int flags,
		      const struct sockaddr *addr, socklen_t addr_len)
{
	bound();
	if (!usmc_sock_active(fd))
		return usmc_sys.sendto(fd, buf, len, flags, addr, addr_len);
	return usmc_send(fd, buf, len, flags);
}

/* ---- readiness ---- */

EXPORT int poll(struct pollfd *fds, nfds_t nfds, int timeout)
{
	bound();
	return usmc_poll(fds, nfds, timeout);
}

EXPORT int epoll_ctl(int epfd, int op, int fd, struct epoll_event *event)
{
	bound();
	return usmc_epoll_ctl(epfd, op, fd, event);
}

EXPORT int epoll_wait(int epfd, struct epoll_event *events, int maxevents, int timeout)
{
	bound();
	return usmc_epoll_wait(epfd, events, maxevents, timeout);
}

/*
 * ---- the fortified entry points ----
 *
 * A program built with _FORTIFY_SOURCE calls these instead of read(),
 * recv(), recvfrom() and poll() when it knows the size of the buffer.
 * libc's own versions would reach the kernel without passing through
 * usmc, so they get the same check and then the same path as the calls
 * they stand for.
 */

EXPORT ssize_t __read_chk(int fd, void *buf, size_t len, size_t buf_size)
{
	if (len > buf_size)
		__chk_fail();
	bound();
	return usmc_read(fd, buf, len);
}

EXPORT ssize_t __recv_chk(int fd, void *buf, size_t len, size_t buf_size, int flags)
{
	if (len > buf_size)
		__chk_fail();
	bound();
	return usmc_recv(fd, buf, len, flags);
}

EXPORT ssize_t __recvfrom_chk(int fd, void *buf, size_t len, size_t buf_size, int flags,
			      struct sockaddr *addr, socklen_t *addr_len)
{
	if (len > buf_size)
		__chk_fail();
	bound();
	return recvfrom_any(fd, buf, len, flags, addr, addr_len);
}

EXPORT int __poll_chk(struct pollfd *fds, nfds_t nfds, int timeout, size_t fds_size)
{
	if (fds_size / sizeof(*fds) < nfds)
		__chk_fail();
	bound();
	return usmc_poll(fds, nfds, timeout);
}

/*
 * ---- libc's public aliases ----
 *
 * glibc exports these __ names for the calls above, at the same address
 * as the plain names; a program linked to one would otherwise reach the
 * kernel past usmc.  (__select is beside select.)
 */
EXPORT int __close(int fd) ALIAS_OF(close);
EXPORT int __connect(int fd, const struct sockaddr *addr, socklen_t len)
	ALIAS_OF(connect);
EXPORT int __dup2(int oldfd, int newfd) ALIAS_OF(dup2);
EXPORT int __fcntl(int fd, int cmd, ...) ALIAS_OF(fcntl);
EXPORT int __poll(struct pollfd *fds, nfds_t nfds, int timeout) ALIAS_OF(poll);
EXPORT ssize_t __read(int fd, void *buf, size_t len) ALIAS_OF(read);
EXPORT ssize_t __send(int fd, const void *buf, size_t len, int flags)
	ALIAS_OF(send);
EXPORT ssize_t __write(int fd, const void *buf, size_t len) ALIAS_OF(write);
