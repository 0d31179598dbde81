// SPDX-License-Identifier: MIT
/*
 * The data calls of a usmc socket: send, recv, read, write, their vector
 * forms and sendfile.  A socket that needs nothing of usmc (plain TCP, a
 * fallback) costs one branch and is the system call; one in shared memory
 * or still proposing goes to the connection's rings (usmc_tx.c,
 * usmc_rx.c), settling its handshake first when the answer is in.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>

#include "usmc.h"
#include "usmc_close.h"
#include "usmc_fd.h"
#include "usmc_fdtab.h"
#include "usmc_listen.h"
#include "usmc_rx.h"
#include "usmc_settle.h"
#include "usmc_sock.h"
#include "usmc_sys.h"
#include "usmc_tx.h"
#include "usmc_wait.h"

/* The kernel's limits on a vector: readv and writev say EINVAL, the msg calls EMSGSIZE. */
static bool iov_count_ok(size_t iovcnt, int err)
{
	if (iovcnt <= IOV_MAX)
		return true;
	errno = err;
	return false;
}

/*
 * Into the ring, a pass at a time (usmc_tx.c); between passes the
 * handshake is settled when its answer is in, or waited for when the ring
 * is full before it came.
 */
static ssize_t sock_send_ring(struct usmc_sock *s, const struct iovec *iov, int iovcnt, int flags)
{
	size_t total = 0, sent = 0;
	int64_t deadline = 0;
	ssize_t result;

	for (int i = 0; i < iovcnt; i++)
		total += iov[i].iov_len;
	if ((result = usmc_tx_refused(s, flags)))
		return result;
	/* Before the bytes: a client killed before the answer leaves them to be matched by it. */
	if (s->state == SOCK_PROPOSED)
		af_publish_end(s);
	for (;;) {
		enum tx_pass pass = usmc_tx_pass(s, iov, iovcnt, total, &sent, flags, &result);
		bool nonblock;

		if (pass == TX_DONE)
			return result;
		if (pass == TX_AGAIN)
			return sock_send_ring(s, iov, iovcnt, flags);
		/*
		 * Written before we knew of an Accept, so rung for nobody: the
		 * server looks at the ring only after sending its Accept, so
		 * either it sees these bytes, or we see the Accept now and ring.
		 */
		if (pass == TX_WROTE && s->state == SOCK_PROPOSED)
			af_settle_if_answered(s);
		if (sent == total)
			return (ssize_t)sent;
		if (pass == TX_WROTE)
			continue;
		nonblock = usmc_sock_nonblocking(s, flags);
		if (s->state == SOCK_PROPOSED) {
			/* Our ring is full before the server answered: wait for the answer. */
			if (af_settle(s, nonblock ? 0 : usmc_wait_left(s->sndtimeo_ms, &deadline)) == 0)
				continue;
		} else if (!nonblock) {
			/* Shut down meanwhile (kick, bell): the next pass gives what was written, or EPIPE. */
			if (usmc_tx_wait(s, &deadline) < 0)
				return sent ? (ssize_t)sent : -1;
			continue;
		} else {
			errno = EAGAIN;
		}
		return sent ? (ssize_t)sent : -1;
	}
}

static ssize_t sock_sendmsg_held(struct usmc_sock *s, const struct msghdr *mh, int flags)
{
	if (s->state == SOCK_PROPOSED && s->conn->hs_result)
		af_settle(s, 0);
	if (s->state != SOCK_SMC && s->state != SOCK_PROPOSED)
		return usmc_sys.sendmsg(s->fd, mh, flags);
	if (!iov_count_ok(mh->msg_iovlen, EMSGSIZE))
		return -1;
	/*
	 * Urgent data is marked in shared memory, and replayed as plain bytes
	 * after a Decline: it waits for the answer, as a write into a full
	 * ring does.
	 */
	if ((flags & MSG_OOB) && s->state == SOCK_PROPOSED) {
		int64_t deadline = 0;

		if (af_settle(s, usmc_sock_nonblocking(s, flags)
					 ? 0
					 : usmc_wait_left(s->sndtimeo_ms, &deadline)) < 0 &&
		    s->state == SOCK_PROPOSED)
			return -1;
		if (s->state != SOCK_SMC)
			return usmc_sys.sendmsg(s->fd, mh, flags);
	}
	return sock_send_ring(s, mh->msg_iov, (int)mh->msg_iovlen, flags);
}

/*
 * A write that waits for the answer, or sleeps for room, holds the socket
 * until it returns: another thread's close leaves it the connection
 * (usmc_close.h).  Its release is its last touch of the socket.
 */
static ssize_t sock_sendmsg(struct usmc_sock *s, const struct msghdr *mh, int flags)
{
	ssize_t n;

	if (s->state == SOCK_PROPOSED)
		usmc_call_hold(s);
	n = sock_sendmsg_held(s, mh, flags);
	usmc_call_release(s);
	return n;
}

static ssize_t sock_recvmsg_held(struct usmc_sock *s, struct msghdr *mh, int flags)
{
	int64_t deadline = 0;

	/* Urgent data never waits: before the answer, none can have come. */
	if (s->state == SOCK_PROPOSED && (flags & MSG_OOB) && af_settle(s, 0) < 0 &&
	    s->state == SOCK_PROPOSED) {
		errno = EINVAL;
		return -1;
	}
	/* SO_RCVTIMEO bounds the wait for the answer and the one for bytes together, as one read's. */
	if (s->state == SOCK_PROPOSED &&
	    af_settle_read(s, usmc_sock_nonblocking(s, flags) ? 0
							      : usmc_wait_left(s->rcvtimeo_ms, &deadline)) < 0)
		return -1;
	if (s->state != SOCK_SMC)
		return usmc_sys.recvmsg(s->fd, mh, flags);
	if (!iov_count_ok(mh->msg_iovlen, EMSGSIZE))
		return -1;
	mh->msg_namelen = 0;
	mh->msg_controllen = 0;
	mh->msg_flags = 0;
	if (flags & MSG_OOB)
		return usmc_rx_recv_urgent(s, mh->msg_iov, (int)mh->msg_iovlen, flags, &mh->msg_flags);
	return usmc_rx_recvmsg(s, mh->msg_iov, (int)mh->msg_iovlen, flags, &deadline);
}

/*
 * A read that waits for the answer, or sleeps for data, holds the socket
 * until it returns: another thread's close leaves it the connection
 * (usmc_close.h).
 */
static ssize_t sock_recvmsg(struct usmc_sock *s, struct msghdr *mh, int flags)
{
	ssize_t n;

	if (s->state == SOCK_PROPOSED)
		usmc_call_hold(s);
	n = sock_recvmsg_held(s, mh, flags);
	usmc_call_release(s);
	return n;
}

ssize_t usmc_sendmsg(int fd, const struct msghdr *msg, int flags)
{
	struct usmc_sock *s = usmc_sock_active(fd);

	if (msg && msg->msg_controllen)
		usmc_fd_passing(msg);
	return s ? sock_sendmsg(s, msg, flags) : usmc_sys.sendmsg(fd, msg, flags);
}

ssize_t usmc_recvmsg(int fd, struct msghdr *msg, int flags)
{
	struct usmc_sock *s = usmc_sock_active(fd);

	return s ? sock_recvmsg(s, msg, flags) : usmc_sys.recvmsg(fd, msg, flags);
}

ssize_t usmc_send(int fd, const void *buf, size_t len, int flags)
{
	struct usmc_sock *s = usmc_sock_active(fd);
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

	return s ? sock_sendmsg(s, &mh, flags) : usmc_sys.send(fd, buf, len, flags);
}

ssize_t usmc_recv(int fd, void *buf, size_t len, int flags)
{
	struct usmc_sock *s = usmc_sock_active(fd);
	struct iovec iov = { .iov_base = buf, .iov_len = len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

	return s ? sock_recvmsg(s, &mh, flags) : usmc_sys.recv(fd, buf, len, flags);
}

ssize_t usmc_write(int fd, const void *buf, size_t len)
{
	struct usmc_sock *s = usmc_sock_active(fd);
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

	return s ? sock_sendmsg(s, &mh, 0) : usmc_sys.write(fd, buf, len);
}

ssize_t usmc_read(int fd, void *buf, size_t len)
{
	struct usmc_sock *s = usmc_sock_active(fd);
	struct iovec iov = { .iov_base = buf, .iov_len = len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

	return s ? sock_recvmsg(s, &mh, 0) : usmc_sys.read(fd, buf, len);
}

ssize_t usmc_writev(int fd, const struct iovec *iov, int iovcnt)
{
	struct usmc_sock *s = usmc_sock_active(fd);
	struct msghdr mh = { .msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)iovcnt };

	if (!s)
		return usmc_sys.writev(fd, iov, iovcnt);
	if (iovcnt < 0 || !iov_count_ok((size_t)iovcnt, EINVAL)) {
		errno = EINVAL;
		return -1;
	}
	return sock_sendmsg(s, &mh, 0);
}

ssize_t usmc_readv(int fd, const struct iovec *iov, int iovcnt)
{
	struct usmc_sock *s = usmc_sock_active(fd);
	struct msghdr mh = { .msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)iovcnt };

	if (!s)
		return usmc_sys.readv(fd, iov, iovcnt);
	if (iovcnt < 0 || !iov_count_ok((size_t)iovcnt, EINVAL)) {
		errno = EINVAL;
		return -1;
	}
	return sock_recvmsg(s, &mh, 0);
}

/* Reads the next part of the file, at *offset or at its own position. */
static ssize_t file_chunk(int in_fd, off_t *offset, void *buf, size_t len)
{
	return offset ? pread(in_fd, buf, len, *offset) : usmc_sys.read(in_fd, buf, len);
}

ssize_t usmc_sendfile(int out_fd, int in_fd, off_t *offset, size_t count)
{
	struct usmc_sock *s = usmc_sock_active(out_fd);
	char buf[65536];
	size_t done = 0;

	if (!s)
		return usmc_sys.sendfile(out_fd, in_fd, offset, count);
	while (done < count) {
		size_t want = count - done < sizeof(buf) ? count - done : sizeof(buf);
		ssize_t n = file_chunk(in_fd, offset, buf, want), w;

		if (n <= 0) {
			if (n < 0 && !done)
				return -1;
			break;
		}
		w = usmc_write(out_fd, buf, (size_t)n);
		if (w > 0) {
			done += (size_t)w;
			if (offset)
				*offset += w;
		}
		if (w < n) {
			/* What the socket did not take stays unread, as with sendfile. */
			if (!offset)
				lseek(in_fd, -(off_t)(n - (w > 0 ? w : 0)), SEEK_CUR);
			if (w < 0 && !done)
				return -1;
			break;
		}
	}
	return (ssize_t)done;
}
