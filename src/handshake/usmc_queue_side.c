// SPDX-License-Identifier: MIT
/*
 * An entry of a shared listener's backlog, and the listener's side queue.
 *
 * An entry travels as one message: a tag that says whether its client
 * counted its Proposal in the registry, and the channel (SCM_RIGHTS).  A
 * client sends it on a carrier, a connection of its own to the Unix
 * listener; so does a holder that puts an entry back into the backlog.
 *
 * A holder that accepted a connection takes entries from the backlog in
 * order until it finds its own.  Put back on a carrier, an entry ahead of
 * ours would go to the tail, behind every Proposal of a storm of clients:
 * the holder that accepted its connection a moment later would look
 * through all of them, and put each back at the tail in turn, and each
 * look of each holder would grow with the backlog (a thousand clients of
 * two nginx workers: 260 entries and 20 ms per accept, CLC timeouts).
 * So it goes into the side queue instead, which every holder looks
 * through first: it holds only the few entries that a holder took before
 * the one that accepted their connection looked, and the backlog keeps
 * the order in which the clients connect.
 *
 * The side queue is a Unix datagram socket connected to itself: a send
 * queues on it without a carrier, and no other socket may send to it
 * (unix_may_send).  The listener's maker makes it before its first fork,
 * so every holder inherits it, and an exec hands it over with the
 * listener (usmc_exec_listen.c).  It holds what its send buffer takes; a
 * holder that finds it full puts the entry back into the backlog.
 */
#include <errno.h>
#include <linux/sockios.h>
#include <stdint.h>
#include <stddef.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "usmc.h"
#include "usmc_core.h"
#include "usmc_log.h"
#include "usmc_proc.h"
#include "usmc_queue_side.h"
#include "usmc_rendezvous.h"
#include "usmc_sys.h"

/* PASS: its client counted its Proposal (queued); PASU: not, so not settled either. */
static const char tag_counted[ENTRY_TAG_LEN] = "usmcPASS";
static const char tag_uncounted[ENTRY_TAG_LEN] = "usmcPASU";

/* A side queue's send buffer: a few hundred entries each (the kernel caps it at wmem_max). */
#define SIDE_SNDBUF (1 << 20)

bool af_entry_tagged(const void *buf, size_t n, bool *counted)
{
	if (n != ENTRY_TAG_LEN)
		return false;
	*counted = !memcmp(buf, tag_counted, ENTRY_TAG_LEN);
	return *counted || !memcmp(buf, tag_uncounted, ENTRY_TAG_LEN);
}

bool af_entry_send(int fd, int ch, bool counted)
{
	char cbuf[CMSG_SPACE(sizeof(int))] = { 0 };
	struct iovec iov = { .iov_base = (void *)(counted ? tag_counted : tag_uncounted),
			     .iov_len = ENTRY_TAG_LEN };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			     .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
	ssize_t n;

	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &ch, sizeof(int));
	do
		n = usmc_sys.sendmsg(fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	return n == ENTRY_TAG_LEN;
}

int af_entry_recv(int fd, bool *counted)
{
	char cbuf[CMSG_SPACE(sizeof(int))], tag[ENTRY_TAG_LEN];
	struct iovec iov = { .iov_base = tag, .iov_len = sizeof(tag) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			     .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *c;
	int ch = -1, type = 0;
	socklen_t len = sizeof(type);
	ssize_t n;

	do
		n = usmc_sys.recvmsg(fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0 && errno == EAGAIN)
		return -1;
	c = n > 0 ? CMSG_FIRSTHDR(&mh) : NULL;
	if (c && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
	    c->cmsg_len == CMSG_LEN(sizeof(int)) && !(mh.msg_flags & MSG_CTRUNC))
		memcpy(&ch, CMSG_DATA(c), sizeof(int));
	errno = EBADMSG;
	if (ch < 0)
		return -1;
	/*
	 * What it brings must be a seqpacket socket, and a connected one,
	 * which a listener or a socket never connected is not: the peek that
	 * follows gets ENOTCONN from them (unix_seqpacket_recvmsg), and they
	 * are dropped as junk.
	 */
	if (!af_entry_tagged(tag, (size_t)n, counted) ||
	    usmc_sys.getsockopt(ch, SOL_SOCKET, SO_TYPE, &type, &len) || type != SOCK_SEQPACKET) {
		usmc_sys.close(ch);
		errno = EBADMSG;
		return -1;
	}
	return ch;
}

/*
 * Linux (6.18 and before) queues its Unix garbage collector on a worker
 * whenever a Unix socket is closed while any Unix socket is in flight
 * (unix_release_sock, unix_tot_inflight): closed right after its send,
 * its channel still in flight in it, a carrier cost every connection a
 * worker's wake-up, and on a busy machine a preemption of the client in
 * that close().  A client keeps its carriers until its Proposal is
 * answered; by then the holder that answered has taken the channel out.
 */
uint32_t af_carrier_send(const struct sockaddr_un *sun, socklen_t sun_len, uid_t uid, int ch,
			 bool counted, struct ucred *cred, struct usmc_lgr *keep)
{
	socklen_t len = sizeof(*cred);
	int fd = usmc_sys.socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	uint32_t reason = 0;

	if (fd < 0)
		return usmc_env_fail("socket(AF_UNIX)");
	/* Done now, or EAGAIN if the backlog is full: a Unix connect never goes on in the background. */
	if (usmc_sys.connect(fd, (const struct sockaddr *)sun, sun_len))
		reason = errno == EAGAIN ? USMC_DECL_CHAN_BUSY : USMC_DECL_PEERNOSMC;
	else if (usmc_sys.getsockopt(fd, SOL_SOCKET, SO_PEERCRED, cred, &len) || cred->uid != uid ||
		 !rdv_uid_mapped(cred->uid))
		reason = USMC_DECL_FOREIGN;
	/* A message may go on a connection not yet accepted: it waits with it. */
	else if (!af_entry_send(fd, ch, counted))
		reason = USMC_DECL_CHAN_BUSY;
	/* Kept while the program goes on: above the numbers its own descriptors take. */
	if (!reason && keep && keep->ncarriers < LGR_CARRIERS)
		keep->carriers[keep->ncarriers++] = usmc_fd_lift(fd);
	else
		usmc_sys.close(fd);
	return reason;
}

static int side_open(void)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	socklen_t len = offsetof(struct sockaddr_un, sun_path);
	int fd = usmc_sys.socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int size = SIDE_SNDBUF;
	bool ok;

	if (fd < 0)
		return -1;
	/* A name of the kernel's choosing (autobind), then connected to itself: nobody else sends. */
	ok = !usmc_sys.bind(fd, (struct sockaddr *)&sun, len);
	len = sizeof(sun);
	if (!ok || usmc_sys.getsockname(fd, (struct sockaddr *)&sun, &len) ||
	    usmc_sys.connect(fd, (struct sockaddr *)&sun, len)) {
		usmc_sys.close(fd);
		return -1;
	}
	usmc_sys.setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
	return usmc_fd_lift(fd);
}

bool af_side_open(int side[SIDE_QUEUES])
{
	for (int i = 0; i < SIDE_QUEUES; i++) {
		side[i] = side_open();
		if (side[i] < 0) {
			while (i-- > 0) {
				usmc_sys.close(side[i]);
				side[i] = -1;
			}
			return false;
		}
	}
	return true;
}

bool af_side_empty(int side)
{
	int next = 0;

	/* SIOCINQ of a datagram socket: the length of its first message, 0 if none. */
	return usmc_sys.ioctl(side, SIOCINQ, &next) == 0 && next == 0;
}

bool af_side_is(int fd)
{
	struct sockaddr_un name, peer;
	socklen_t name_len = sizeof(name), peer_len = sizeof(peer), len = sizeof(int);
	int type = 0;

	/* A Unix datagram socket whose peer is itself: a side queue, and nothing else. */
	return !usmc_sys.getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) && type == SOCK_DGRAM &&
	       !usmc_sys.getsockname(fd, (struct sockaddr *)&name, &name_len) &&
	       name.sun_family == AF_UNIX && name_len > offsetof(struct sockaddr_un, sun_path) &&
	       !getpeername(fd, (struct sockaddr *)&peer, &peer_len) &&
	       peer_len == name_len && !memcmp(&name, &peer, name_len);
}
