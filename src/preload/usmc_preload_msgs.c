// SPDX-License-Identifier: MIT
/*
 * The calls a stream socket answers as a sequence of simpler ones, made
 * of usmc's: recvmmsg, sendmmsg, preadv2, pwritev2 and splice.
 *
 * On a stream socket the kernel's recvmmsg and sendmmsg are loops of
 * recvmsg and sendmsg, and so are ours.  splice moves bytes between a
 * pipe and a socket without a copy through user space; a shared-memory
 * connection has no kernel buffer to splice from, so its bytes go through
 * a small buffer here.  Neither side may lose a byte: from the socket we
 * read no more than the pipe has room for, and into the socket we take
 * from the pipe only what the socket accepted (peeking first with tee).
 */

/* The fortified inline wrappers of the libc headers would clash with our definitions. */
#undef _FORTIFY_SOURCE

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "usmc.h"
#include "usmc_fd.h"
#include "usmc_fdtab.h"
#include "usmc_listen.h"
#include "usmc_preload.h"
#include "usmc_sock.h"
#include "usmc_sys.h"

#define SPLICE_CHUNK 65536

/* ---- recvmmsg, sendmmsg ---- */

EXPORT int sendmmsg(int fd, struct mmsghdr *vec, unsigned int vlen, int flags)
{
	unsigned int sent = 0;

	preload_bound();
	if (!usmc_sock_active(fd)) {
		for (unsigned int i = 0; i < vlen; i++)
			if (vec[i].msg_hdr.msg_controllen)
				usmc_fd_passing(&vec[i].msg_hdr);
		return usmc_sys.sendmmsg(fd, vec, vlen, flags);
	}
	while (sent < vlen) {
		size_t want = 0;
		ssize_t n;

		for (size_t i = 0; i < vec[sent].msg_hdr.msg_iovlen; i++)
			want += vec[sent].msg_hdr.msg_iov[i].iov_len;
		n = usmc_sendmsg(fd, &vec[sent].msg_hdr, flags);
		if (n < 0)
			break;
		vec[sent++].msg_len = (unsigned int)n;
		/* A message only partly sent ends the batch, as in the kernel. */
		if ((size_t)n < want)
			break;
	}
	return sent ? (int)sent : -1;
}

static bool past(const struct timespec *deadline)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return now.tv_sec > deadline->tv_sec ||
	       (now.tv_sec == deadline->tv_sec && now.tv_nsec >= deadline->tv_nsec);
}

EXPORT int recvmmsg(int fd, struct mmsghdr *vec, unsigned int vlen, int flags,
		    struct timespec *timeout)
{
	struct timespec deadline;
	unsigned int got = 0;

	preload_bound();
	if (!usmc_sock_active(fd))
		return usmc_sys.recvmmsg(fd, vec, vlen, flags, timeout);
	if (timeout) {
		clock_gettime(CLOCK_MONOTONIC, &deadline);
		deadline.tv_sec += timeout->tv_sec + (deadline.tv_nsec + timeout->tv_nsec) / 1000000000;
		deadline.tv_nsec = (deadline.tv_nsec + timeout->tv_nsec) % 1000000000;
	}
	/* Like the kernel, the timeout is looked at between messages only. */
	while (got < vlen) {
		ssize_t n = usmc_recvmsg(fd, &vec[got].msg_hdr, flags & ~MSG_WAITFORONE);

		if (n < 0)
			break;
		vec[got++].msg_len = (unsigned int)n;
		if (flags & MSG_WAITFORONE)
			flags |= MSG_DONTWAIT;
		if (timeout && past(&deadline))
			break;
	}
	return got ? (int)got : -1;
}

/* ---- preadv2, pwritev2 ---- */

/*
 * At offset -1 these are readv and writev with flags, also on a socket,
 * where RWF_NOWAIT means MSG_DONTWAIT and the rest mean nothing; any other
 * offset is the kernel's error on a socket (ESPIPE, or EINVAL).
 */
#define RWF_KNOWN (RWF_HIPRI | RWF_DSYNC | RWF_SYNC | RWF_NOWAIT | RWF_APPEND)

static ssize_t rw_v2(int fd, const struct iovec *iov, int iovcnt, off_t offset, int flags,
		     bool out)
{
	struct msghdr mh = { .msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)iovcnt };
	int msg_flags = (flags & RWF_NOWAIT) ? MSG_DONTWAIT : 0;

	preload_bound();
	if (!usmc_sock_active(fd) || offset != -1)
		return out ? usmc_sys.pwritev2(fd, iov, iovcnt, offset, flags)
			   : usmc_sys.preadv2(fd, iov, iovcnt, offset, flags);
	if (flags & ~RWF_KNOWN) {
		errno = EOPNOTSUPP;
		return -1;
	}
	if (iovcnt < 0) {
		errno = EINVAL;
		return -1;
	}
	return out ? usmc_sendmsg(fd, &mh, msg_flags) : usmc_recvmsg(fd, &mh, msg_flags);
}

EXPORT ssize_t preadv2(int fd, const struct iovec *iov, int iovcnt, off_t offset, int flags)
{
	return rw_v2(fd, iov, iovcnt, offset, flags, false);
}

EXPORT ssize_t pwritev2(int fd, const struct iovec *iov, int iovcnt, off_t offset, int flags)
{
	return rw_v2(fd, iov, iovcnt, offset, flags, true);
}

EXPORT ssize_t preadv64v2(int fd, const struct iovec *iov, int iovcnt, off64_t offset, int flags)
	ALIAS_OF(preadv2);
EXPORT ssize_t pwritev64v2(int fd, const struct iovec *iov, int iovcnt, off64_t offset,
			   int flags) ALIAS_OF(pwritev2);

/* ---- splice ---- */

/* A private pipe of this thread, to peek at another pipe with tee. */
static __thread int peek_pipe[2] = { -1, -1 };
static __thread pid_t peek_pipe_pid;

static bool peek_pipe_ready(void)
{
	/* A forked child shares its parent's pipe: it needs its own. */
	if (peek_pipe[0] >= 0 && peek_pipe_pid == getpid())
		return true;
	if (peek_pipe[0] >= 0) {
		usmc_sys.close(peek_pipe[0]);
		usmc_sys.close(peek_pipe[1]);
	}
	if (usmc_sys.pipe2(peek_pipe, O_CLOEXEC | O_NONBLOCK)) {
		peek_pipe[0] = peek_pipe[1] = -1;
		return false;
	}
	peek_pipe_pid = getpid();
	return true;
}

static bool is_pipe(int fd)
{
	struct stat st;

	return fstat(fd, &st) == 0 && S_ISFIFO(st.st_mode);
}

/* The bytes a pipe can take now. */
static size_t pipe_room(int fd)
{
	int size = usmc_sys.fcntl(fd, F_GETPIPE_SZ), used = 0;

	if (size <= 0 || usmc_sys.ioctl(fd, FIONREAD, &used))
		return 0;
	return used < size ? (size_t)(size - used) : 0;
}

/* As in the kernel, a non-blocking socket makes the whole splice non-blocking. */
static bool splice_nonblocking(int sock, unsigned int flags)
{
	return (flags & SPLICE_F_NONBLOCK) || (usmc_sys.fcntl(sock, F_GETFL) & O_NONBLOCK);
}

static ssize_t splice_sock_to_pipe(int sock, int out, size_t len, bool nonblock)
{
	char buf[SPLICE_CHUNK];
	size_t room;
	ssize_t n;

	while (!(room = pipe_room(out))) {
		struct pollfd p = { .fd = out, .events = POLLOUT };

		if (nonblock) {
			errno = EAGAIN;
			return -1;
		}
		if (usmc_sys.poll(&p, 1, -1) < 0)
			return -1;
	}
	if (len > room)
		len = room;
	if (len > sizeof(buf))
		len = sizeof(buf);
	n = usmc_recv(sock, buf, len, nonblock ? MSG_DONTWAIT : 0);
	if (n > 0 && usmc_sys.write(out, buf, (size_t)n) != n)
		return -1; /* another writer took the room: the pipe's owner's race */
	return n;
}

static ssize_t splice_pipe_to_sock(int in, int sock, size_t len, bool nonblock)
{
	char buf[SPLICE_CHUNK];
	ssize_t peeked, sent;

	if (!peek_pipe_ready())
		return -1;
	if (len > sizeof(buf))
		len = sizeof(buf);
	peeked = tee(in, peek_pipe[1], len, nonblock ? SPLICE_F_NONBLOCK : 0);
	if (peeked <= 0)
		return peeked;
	if (usmc_sys.read(peek_pipe[0], buf, (size_t)peeked) != peeked)
		return -1;
	sent = usmc_send(sock, buf, (size_t)peeked, nonblock ? MSG_DONTWAIT : 0);
	/* Take from the pipe what the socket took. */
	if (sent > 0 && usmc_sys.read(in, buf, (size_t)sent) != sent)
		return -1;
	return sent;
}

EXPORT ssize_t splice(int in, loff_t *off_in, int out, loff_t *off_out, size_t len,
		      unsigned int flags)
{
	struct usmc_sock *sin, *sout;

	preload_bound();
	sin = usmc_sock_active(in);
	sout = usmc_sock_active(out);
	if (!sin && !sout)
		return usmc_sys.splice(in, off_in, out, off_out, len, flags);
	/* One end is a pipe and the other a socket: neither has an offset. */
	if (off_in || off_out) {
		errno = ESPIPE;
		return -1;
	}
	if (sin && sout) {
		errno = EINVAL;
		return -1;
	}
	if (sin ? !is_pipe(out) : !is_pipe(in)) {
		errno = EINVAL;
		return -1;
	}
	if (!len)
		return 0;
	if (sin)
		return splice_sock_to_pipe(in, out, len, splice_nonblocking(in, flags));
	return splice_pipe_to_sock(in, out, len, splice_nonblocking(out, flags));
}
