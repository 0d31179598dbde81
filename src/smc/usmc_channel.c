// SPDX-License-Identifier: MIT
/*
 * A link group's channel: the Unix seqpacket socket its CLC messages go
 * on, with the segments' descriptors beside them, and what is read while
 * we wait to send (smc_clc.c's transport, here a socket of its own).
 */
#include "usmc_channel.h"

#include <errno.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "usmc.h"
#include "usmc_config.h"
#include "usmc_stats.h"
#include "usmc_sys.h"

/*
 * Messages read while waiting to send.  Both ends may send bursts (many
 * Proposals one way, many Accepts the other); if each only waited for
 * room, neither would read and both would stall.
 */
struct lgr_backlog {
	struct clc_msg msg;
	int fd;
	uint32_t reason;
	struct lgr_backlog *next;
};

#define LGR_BACKLOG_MAX 4096

static int chan_recv(struct usmc_lgr *lgr, struct clc_msg *msg, int *fd, uint32_t *reason);
static int chan_take_peeked(struct usmc_lgr *lgr, struct msghdr *mh, const uint8_t *buf, size_t len,
			    struct clc_msg *msg, int *fd, uint32_t *reason);
static int chan_take(struct usmc_lgr *lgr, struct msghdr *mh, uint8_t *buf, struct clc_msg *msg,
		     int *fd, uint32_t *reason);

/*
 * Keeps what arrives while we wait, for lgr_recv to hand out in order.
 * The channel's end is not taken: the link group stays alive until
 * lgr_recv has handed out what came before the end, and then finds the
 * end again (a closed channel reads as closed every time).
 */
static void backlog_fill(struct usmc_lgr *lgr)
{
	bool dead = lgr->dead;

	while (lgr->backlog_len < LGR_BACKLOG_MAX) {
		struct lgr_backlog *b = calloc(1, sizeof(*b));

		if (!b)
			return;
		if (chan_recv(lgr, &b->msg, &b->fd, &b->reason) <= 0) {
			lgr->dead = dead;
			free(b);
			return;
		}
		*lgr->backlog_tail = b;
		lgr->backlog_tail = &b->next;
		lgr->backlog_len++;
	}
}

int lgr_watched_chan(struct usmc_lgr *lgr)
{
	/*
	 * Read without the lock: a stale view costs one look too many or too
	 * few, and the channel itself lives as long as the connection's
	 * reference.  A server's channel brings Proposals, which its accept()
	 * takes when the program wants them.
	 */
	if (!lgr || lgr->role != LGR_CLIENT || lgr->oneshot || lgr->dead || lgr->hung_up ||
	    lgr->owner_pid != usmc_pid() || lgr->backlog_len >= LGR_BACKLOG_MAX)
		return -1;
	return lgr->chan;
}

void lgr_take_in(struct usmc_lgr *lgr, short revents)
{
	usmc_lock();
	if (lgr_watched_chan(lgr) >= 0) {
		backlog_fill(lgr);
		/* The end stays in the channel, after what came before it: no more looks. */
		if (revents & (POLLHUP | POLLERR))
			lgr->hung_up = true;
	}
	usmc_unlock();
}

bool lgr_crowded(struct usmc_lgr *lgr)
{
	int queued = 0;
	socklen_t len = sizeof(lgr->chan_sndbuf);

	/* Asked once: nobody changes the channel's SO_SNDBUF. */
	if (!lgr->chan_sndbuf &&
	    usmc_sys.getsockopt(lgr->chan, SOL_SOCKET, SO_SNDBUF, &lgr->chan_sndbuf, &len))
		lgr->chan_sndbuf = 0;
	/* For a Unix socket SIOCOUTQ counts what the peer has not read, as SO_SNDBUF limits it. */
	if (usmc_sys.ioctl(lgr->chan, SIOCOUTQ, &queued))
		queued = 0;
	lgr->crowded = queued > lgr->chan_sndbuf / 4 * 3;
	return lgr->crowded;
}

/* Waits until the channel takes a message or the deadline (set on first use) passes. */
static bool chan_wait_writable(struct usmc_lgr *lgr, int64_t *deadline)
{
	struct pollfd p = { .fd = lgr->chan, .events = POLLOUT | POLLIN };
	int64_t now = usmc_now_ms();

	if (*deadline == 0)
		*deadline = now + usmc_clc_timeout_ms();
	if (now >= *deadline)
		return false;
	if (usmc_sys.poll(&p, 1, (int)(*deadline - now)) <= 0)
		return false;
	if (p.revents & POLLIN)
		backlog_fill(lgr);
	return !lgr->dead && (p.revents & (POLLOUT | POLLIN));
}

static int lgr_send_mode(struct usmc_lgr *lgr, const struct clc_msg *msg, int fd, int fd2,
			 bool wait);

int lgr_send(struct usmc_lgr *lgr, const struct clc_msg *msg, int fd)
{
	return lgr_send_mode(lgr, msg, fd, -1, true);
}

int lgr_send2(struct usmc_lgr *lgr, const struct clc_msg *msg, int fd, int fd2)
{
	return lgr_send_mode(lgr, msg, fd, fd2, true);
}

int lgr_send_try(struct usmc_lgr *lgr, const struct clc_msg *msg)
{
	return lgr_send_mode(lgr, msg, -1, -1, false);
}

static int lgr_send_mode(struct usmc_lgr *lgr, const struct clc_msg *msg, int fd, int fd2,
			 bool wait)
{
	int64_t deadline = 0;
	char cbuf[CMSG_SPACE(2 * sizeof(int))] = { 0 };
	int fds[2] = { fd, fd2 }, nfds = fd2 >= 0 ? 2 : 1;
	uint8_t buf[CLC_MAX_MSG_SIZE];
	struct iovec iov = { .iov_base = buf };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	int len = clc_msg_encode(msg, buf, sizeof(buf));

	if (len < 0)
		return -1;
	iov.iov_len = (size_t)len;
	if (fd >= 0) {
		struct cmsghdr *c;

		mh.msg_control = cbuf;
		mh.msg_controllen = CMSG_SPACE((size_t)nfds * sizeof(int));
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN((size_t)nfds * sizeof(int));
		memcpy(CMSG_DATA(c), fds, (size_t)nfds * sizeof(int));
	}
	while (usmc_sys.sendmsg(lgr->chan, &mh, MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN && !wait)
			return -1;
		/* A burst of Proposals may fill the channel: wait, but not forever. */
		if (errno == EAGAIN && chan_wait_writable(lgr, &deadline))
			continue;
		/* Make the peer see the end too, so that nothing waits on us. */
		usmc_sys.shutdown(lgr->chan, SHUT_RDWR);
		lgr->dead = true;
		return -1;
	}
	usmc_stats_add(USMC_STAT_CLC_SENT, 1);
	return 0;
}

/* The first max descriptors passed with a message, in fds; the others closed.  How many. */
static int passed_fds(struct msghdr *mh, int *fds, int max)
{
	int n = 0;

	for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		for (size_t i = 0; i < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int); i++) {
			int fd;

			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
			if (n < max)
				fds[n++] = fd;
			else
				usmc_sys.close(fd);
		}
	}
	return n;
}

/* Takes the first passed descriptor and closes any others. */
static int take_fds(struct msghdr *mh)
{
	int keep = -1;

	passed_fds(mh, &keep, 1);
	return keep;
}

int lgr_recv(struct usmc_lgr *lgr, struct clc_msg *msg, int *fd, uint32_t *reason)
{
	struct lgr_backlog *b = lgr->backlog;

	if (b) {
		lgr->backlog = b->next;
		if (!lgr->backlog)
			lgr->backlog_tail = &lgr->backlog;
		lgr->backlog_len--;
		*msg = b->msg;
		*fd = b->fd;
		*reason = b->reason;
		free(b);
		return 1;
	}
	return chan_recv(lgr, msg, fd, reason);
}

static int chan_recv(struct usmc_lgr *lgr, struct clc_msg *msg, int *fd, uint32_t *reason)
{
	char cbuf[CMSG_SPACE(4 * sizeof(int))];
	uint8_t buf[CLC_MAX_MSG_SIZE];
	struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	ssize_t n;

	if (lgr->dead)
		return -1;
	mh.msg_control = cbuf;
	mh.msg_controllen = sizeof(cbuf);
	/*
	 * A peek with room for the descriptors a message brings (the peer's
	 * segment) installs copies of them, which serve once the message is
	 * taken without room: the kernel drops its own then.  At
	 * RLIMIT_NOFILE the peek installs none (MSG_CTRUNC), and only then is
	 * the spare given up for the take, and made again.
	 */
	do
		n = usmc_sys.recvmsg(lgr->chan, &mh, MSG_DONTWAIT | MSG_PEEK | MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return 0;
	if (n > 0 && !(mh.msg_flags & MSG_CTRUNC))
		return chan_take_peeked(lgr, &mh, buf, (size_t)n, msg, fd, reason);
	if (n > 0 && (*fd = take_fds(&mh)) >= 0)
		usmc_sys.close(*fd);
	/*
	 * A peer that closed its end with our messages unread leaves us a
	 * reset, which the kernel reports before the messages it sent us
	 * first (an Accept, say): take those, then the end of file.
	 */
	mh.msg_control = cbuf;
	mh.msg_controllen = sizeof(cbuf);
	lgr_spare_close(lgr);
	n = chan_take(lgr, &mh, buf, msg, fd, reason);
	lgr_spare_take(lgr);
	return n;
}

/* What a message taken says: its parse, or why it is none, and its descriptor. */
static int chan_taken(const uint8_t *buf, size_t n, int flags, struct clc_msg *msg, int *fd,
		      uint32_t *reason)
{
	*reason = (flags & (MSG_TRUNC | MSG_CTRUNC)) ? USMC_DECL_SYNCERR : clc_msg_parse(buf, n, msg);
	if (*reason) {
		msg->type = 0;
		if (*fd >= 0)
			usmc_sys.close(*fd);
		*fd = -1;
	}
	usmc_stats_add(USMC_STAT_CLC_RECEIVED, 1);
	return 1;
}

/*
 * Takes the message peeked at (len bytes in buf, its descriptors installed
 * by the peek in mh), without room for its own.  Another reader of the
 * channel (a client taking its Proposal back out of the server's end it
 * kept) may have taken it meanwhile: then there is nothing, or what came
 * after it, whose descriptors are lost, and which says so (SYNCERR).
 */
static int chan_take_peeked(struct usmc_lgr *lgr, struct msghdr *mh, const uint8_t *buf, size_t len,
			    struct clc_msg *msg, int *fd, uint32_t *reason)
{
	uint8_t again[CLC_MAX_MSG_SIZE];
	int flags = mh->msg_flags;
	ssize_t n;

	*fd = take_fds(mh);
	do
		n = usmc_sys.recv(lgr->chan, again, sizeof(again), MSG_DONTWAIT);
	while (n < 0 && (errno == EINTR || errno == ECONNRESET));
	if (n <= 0 && *fd >= 0)
		usmc_sys.close(*fd);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return 0;
	if (n <= 0) {
		lgr->dead = true;
		return -1;
	}
	if ((size_t)n != len || memcmp(again, buf, len))
		flags |= MSG_CTRUNC;
	return chan_taken(buf, len, flags, msg, fd, reason);
}

/* Receives the next message (1), none (0), or finds the channel gone (-1). */
static int chan_take(struct usmc_lgr *lgr, struct msghdr *mh, uint8_t *buf, struct clc_msg *msg,
		     int *fd, uint32_t *reason)
{
	ssize_t n;

	do
		n = usmc_sys.recvmsg(lgr->chan, mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	while (n < 0 && (errno == EINTR || errno == ECONNRESET));
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return 0;
	if (n <= 0) {
		lgr->dead = true;
		return -1;
	}
	*fd = take_fds(mh);
	return chan_taken(buf, (size_t)n, mh->msg_flags, msg, fd, reason);
}

int chan_peek_fds(int ch, int *fds, int max)
{
	char cbuf[CMSG_SPACE(4 * sizeof(int))];
	uint8_t buf[CLC_MAX_MSG_SIZE];
	struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			     .msg_controllen = sizeof(cbuf) };
	ssize_t got;

	do
		got = usmc_sys.recvmsg(ch, &mh, MSG_PEEK | MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	while (got < 0 && errno == EINTR);
	return got > 0 ? passed_fds(&mh, fds, max) : 0;
}

void lgr_backlog_free(struct usmc_lgr *lgr)
{
	while (lgr->backlog) {
		struct lgr_backlog *b = lgr->backlog;

		lgr->backlog = b->next;
		if (b->fd >= 0)
			usmc_sys.close(b->fd);
		free(b);
	}
}
