// SPDX-License-Identifier: MIT
/*
 * The listener's Unix channels: the names clients find it by, and who may
 * knock there and how much.  Anyone may connect to an abstract name, so
 * what a channel costs the listener is bounded: batches of channels per
 * look, a limit per peer process and one in all, descriptors kept for
 * TCP clients, and idle channels closed.
 */
#include <errno.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "usmc.h"
#include "usmc_chan.h"
#include "usmc_config.h"
#include "usmc_listener.h"
#include "usmc_policy.h"
#include "usmc_proc.h"
#include "usmc_registry.h"
#include "usmc_sys.h"
#include "af_usmc.h"

/* A listening Unix socket at the port's channel address. */
int af_channel_listen(uint16_t port, bool other_users)
{
	struct sockaddr_un sun;

	return af_channel_listen_at(&sun, reg_listener_addr(getuid(), port, other_users, &sun));
}

int af_channel_listen_at(const struct sockaddr_un *sun, socklen_t sun_len)
{
	int fd = usmc_fd_lift(usmc_sys.socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));

	if (fd >= 0 && (usmc_sys.bind(fd, (const struct sockaddr *)sun, sun_len) ||
			usmc_sys.listen(fd, SOMAXCONN))) {
		usmc_sys.close(fd);
		fd = -1;
	}
	return fd;
}

bool af_channel_listened(const struct sockaddr_un *sun, socklen_t sun_len)
{
	int fd = usmc_sys.socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	bool on;

	/* Without a socket to ask with, nobody is declared gone. */
	if (fd < 0)
		return true;
	/* Refused only where no socket is bound; a full backlog (EAGAIN) is a live one. */
	on = usmc_sys.connect(fd, (const struct sockaddr *)sun, sun_len) == 0 || errno != ECONNREFUSED;
	usmc_sys.close(fd);
	return on;
}

/*
 * Out of descriptors, we can take no channel, nor so read the Proposals
 * queued behind it: each of their clients would wait for an answer until
 * its CLC timeouts ran out.  Closing the Unix listener resets the channels
 * queued on it, and their clients fall back at once; a fresh listener, on
 * the descriptor just freed, takes the next ones (or, if it could not be
 * made, is tried again at the next look).
 */
static void channel_renew(struct usmc_listener *l, int *ufd, bool other_users)
{
	struct reg_port *reg = reg_port(l->port);
	int32_t me = (int32_t)usmc_pid();

	if (*ufd >= 0)
		usmc_sys.close(*ufd);
	if (l->member) {
		*ufd = af_channel_listen_at(&l->uaddr, l->uaddr_len);
		return;
	}
	*ufd = af_channel_listen(l->port, other_users);
	if (other_users || !reg)
		return;
	/* A client that found no name meanwhile cleared the entry: ours again, or nobody's. */
	if (*ufd >= 0)
		atomic_store(&reg->pid, me);
	else
		atomic_compare_exchange_strong(&reg->pid, &me, 0);
}

/*
 * What channels may take: anyone can connect to the Unix names, so a few
 * a peer process, a bounded number in all, never the descriptors the
 * last eighth of the table holds for TCP clients, and a bounded number
 * taken per look, so that a queue others fill costs an accept() little.
 * Of them, a few held only to refuse their Proposals (af_channel_admit),
 * a few of each user: one user's channels cannot take the others' place.
 */
#define CHAN_PER_PEER            64 /* a client has one per port it reaches */
#define CHAN_MAX                 1024
#define CHAN_REFUSING_MAX        64
#define CHAN_REFUSING_PER_USER   16
#define CHAN_ACCEPT_BATCH        16

/*
 * Why the channel fd, from cred, may not become a link group; 0 if it may.
 * A shared listener's channels serve one connection each: they count
 * toward the limit in all only.  Their clients may also be of the user
 * who made the listener, which handed it to us (a master that runs as
 * root, its workers as another user): only a privileged process can.
 *
 * A client of a user we do not admit proposes to us only when it holds
 * our user's registry (a master of ours forked it, and it changed its
 * user after): it cannot know that we refuse it.  Refused now, on its
 * channel alone, it would learn it only at its next look there, and a
 * client that waits on its TCP socket for our reply looks there at a
 * timer's pace.  So a few such channels become link groups all the same,
 * with *refuse set: each Proposal on them is declined once its TCP
 * connection is accepted and proven the proposer's, with the marker that
 * wakes the client on that socket (usmc_listen.c).  Only past them is the
 * channel refused at once: past a few of its user's, so that another user
 * who fills its own share (any process can connect to our names) leaves
 * the rest to the others.
 */
uint32_t af_channel_admit(int fd, const struct ucred *cred, const struct usmc_listener *shared,
			  uint32_t *refuse)
{
	bool foreign = !(shared && cred->uid == shared->uid) && !usmc_peer_user_allowed(cred->uid);
	unsigned long limit = usmc_fd_limit();
	int total = 0, of_peer = 0, refusing = 0, refusing_of_user = 0;

	*refuse = 0;
	/* Descriptors come lowest first: a number this high means the table is nearly full. */
	if (limit && (unsigned long)fd >= limit - limit / 8)
		return foreign ? USMC_DECL_FOREIGN : USMC_DECL_MEM;
	for (struct usmc_lgr *lgr = lgr_first(); lgr; lgr = lgr->next) {
		if (lgr->role != LGR_SERVER || !lgr_usable(lgr))
			continue;
		total++;
		of_peer += !lgr->oneshot && lgr->peer_pid == cred->pid;
		refusing += lgr->refused != 0;
		refusing_of_user += lgr->refused != 0 && lgr->peer_uid == cred->uid;
	}
	if (total >= CHAN_MAX || (!shared && of_peer >= CHAN_PER_PEER))
		return foreign ? USMC_DECL_FOREIGN : USMC_DECL_CHAN_BUSY;
	if (foreign &&
	    (refusing >= CHAN_REFUSING_MAX || refusing_of_user >= CHAN_REFUSING_PER_USER))
		return USMC_DECL_FOREIGN;
	*refuse = foreign ? USMC_DECL_FOREIGN : 0;
	return 0;
}

/*
 * Refuses a channel with a Decline for the whole link group (token 0), or
 * for the one Proposal token, so that its client falls back with our
 * reason, then closes it.  Never waits: a channel that takes nothing now
 * is closed all the same.
 */
void af_channel_refuse(int fd, uint64_t token, uint32_t reason)
{
	struct clc_msg msg = { .type = CLC_DECLINE, .version = CLC_VERSION, .token = token };
	uint8_t buf[CLC_MAX_MSG_SIZE];
	int len;

	msg.decline.reason = reason;
	len = clc_msg_encode(&msg, buf, sizeof(buf));
	if (len > 0)
		usmc_sys.send(fd, buf, (size_t)len, MSG_DONTWAIT | MSG_NOSIGNAL);
	usmc_sys.close(fd);
}

/*
 * Takes channels while *budget lasts; returns how many became link groups.
 * *budget is left above 0 once the queue is empty.
 */
static int accept_channels_of(struct usmc_listener *l, int *ufd, bool other_users, int *budget)
{
	struct reg_port *reg = other_users ? NULL : reg_port(l->port);
	int made = 0;

	while (*ufd >= 0 && *budget > 0) {
		struct usmc_lgr *lgr;
		uint32_t refused, refuse;
		struct ucred cred;
		socklen_t len = sizeof(cred);
		int fd = usmc_sys.accept4(*ufd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		(*budget)--;
		if (fd < 0 && (errno == EMFILE || errno == ENFILE))
			channel_renew(l, ufd, other_users);
		if (fd < 0) {
			/* Empty: clients that found it full may come again. */
			if (reg && errno == EAGAIN)
				atomic_fetch_and(&reg->flags, ~REG_KNOCK);
			*budget += 1;
			return made;
		}
		if (usmc_sys.getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len)) {
			usmc_sys.close(fd);
			continue;
		}
		/* Admitted by the number the kernel gave (how full the table is), then lifted. */
		refused = af_channel_admit(fd, &cred, NULL, &refuse);
		if (!refused)
			fd = usmc_fd_lift(fd);
		lgr = refused ? NULL : lgr_new(fd, LGR_SERVER, cred.pid, cred.uid);
		if (lgr)
			lgr->refused = refuse;
		else if (!refused)
			refused = USMC_DECL_MEM;
		if (refused)
			af_channel_refuse(fd, 0, refused);
		else
			made++;
	}
	return made;
}

/*
 * Channels that never proposed within a CLC timeout hold a descriptor for
 * nothing (a client proposes as soon as it connects): close them.
 */
static void channels_reap_idle(void)
{
	int64_t now = usmc_now_ms(), timeout = usmc_clc_timeout_ms();
	struct usmc_lgr *lgr, *next;

	for (lgr = lgr_first(); lgr; lgr = next) {
		next = lgr->next;
		if (lgr->role != LGR_SERVER || !lgr_usable(lgr) || lgr->proposed || lgr->refs ||
		    now - lgr->born <= timeout)
			continue;
		/* A Proposal may wait there unread: read first. */
		if (af_pump_lgr(lgr) && !lgr->proposed && !lgr->refs)
			af_lgr_fail(lgr);
	}
}

int af_accept_channels(struct usmc_listener *l, bool *more)
{
	int budget = CHAN_ACCEPT_BATCH, made;

	*more = false;
	/* A shared listener's backlog holds channels for whoever accepts: usmc_queue.c. */
	if (l->owner != usmc_pid() || af_listener_shared(l))
		return 0;
	channels_reap_idle();
	if (l->ufd < 0)
		channel_renew(l, &l->ufd, false);
	made = accept_channels_of(l, &l->ufd, false, &budget);
	*more = budget == 0;
	if (l->ufd_users >= 0) {
		budget = CHAN_ACCEPT_BATCH;
		made += accept_channels_of(l, &l->ufd_users, true, &budget);
	}
	return made;
}

