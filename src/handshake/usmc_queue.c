// SPDX-License-Identifier: MIT
/*
 * A shared listener's queue: how whichever process accepts a TCP
 * connection finds its Proposal (docs/HANDSHAKE.md).
 *
 * Every process holding the TCP listener (a prefork server's master and
 * workers) holds its Unix listener too, inherited with it, and so shares
 * that listener's backlog.  A client of a shared listener makes a
 * channel of its own for each connection (a socketpair), writes its
 * Proposal there, puts the server's end into the backlog on a carrier
 * (below), and only then connects on TCP: by the time any holder accepts
 * the TCP connection, the channel with its Proposal is in the backlog, or
 * in the hands of a holder that is looking through it.
 *
 * A holder that accepted a connection takes entries from the backlog and
 * peeks at each one's first message without taking it: the one whose
 * Proposal names the cookie of the peer of its TCP socket becomes its
 * link group.  Others go back into the backlog before it returns, each
 * on a carrier: a connection of ours to the same Unix listener carrying
 * the channel (SCM_RIGHTS), which needs nobody else to run.  Holders
 * count themselves in the registry while they hold entries, so that one
 * that finds nothing waits, for microseconds, while another still holds
 * what it looks for.
 *
 * The answer belongs to whoever takes the Proposal out of its channel:
 * the kernel gives a message to one reader only.  The holder that
 * accepted the connection takes it and answers Accept or Decline.  Any
 * holder may instead refuse a channel it cannot put back, and the client
 * then gets that refusal as its answer: both ends stay TCP, since the
 * accepting holder will never find the Proposal.  The client keeps the
 * server's end too, and withdraws by taking its Proposal back out of it
 * (usmc_settle.c): if it can, no holder ever will.
 */
#include <errno.h>
#include <linux/sockios.h>
#include <poll.h>
#include <stddef.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "usmc.h"
#include "usmc_addr.h"
#include "usmc_chan.h"
#include "usmc_config.h"
#include "usmc_listener.h"
#include "usmc_log.h"
#include "usmc_proc.h"
#include "usmc_queue.h"
#include "usmc_queue_match.h"
#include "usmc_registry.h"
#include "usmc_rendezvous.h"
#include "usmc_reuseport.h"
#include "usmc_stats.h"
#include "usmc_sys.h"

/*
 * A carrier's message; the channel it carries comes with it.  PASS: its
 * Proposal was counted in the registry (queued) by its client; PASU: not
 * (a client of another user, or one that proposed before the listener was
 * marked shared, straight to its Unix listener), so not settled either.
 */
static const char carrier_magic[8] = "usmcPASS";
static const char carrier_uncounted[8] = "usmcPASU";

/* Entries looked at per look, and held at once: the backlog is anyone's to fill. */
#define QUEUE_LOOK_MAX 256
#define QUEUE_HOLD_MAX 64
/* Carriers inside carriers: one holder took another's before it was written. */
#define QUEUE_NEST_MAX 4

enum entry_kind { ENTRY_JUNK, ENTRY_EMPTY, ENTRY_CARRIER, ENTRY_PROPOSAL };

/* What an entry's first message is, left where it is; *len its length. */
static enum entry_kind entry_peek(int fd, struct clc_msg *msg, size_t *len, bool *counted)
{
	uint8_t buf[CLC_MAX_MSG_SIZE];
	ssize_t n;

	/* Without room for descriptors, a peek takes none: they stay with the message. */
	do
		n = usmc_sys.recv(fd, buf, sizeof(buf), MSG_PEEK | MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EAGAIN ? ENTRY_EMPTY : ENTRY_JUNK;
	if (n == sizeof(carrier_magic) && (!memcmp(buf, carrier_magic, sizeof(carrier_magic)) ||
					   !memcmp(buf, carrier_uncounted, sizeof(carrier_uncounted)))) {
		*counted = !memcmp(buf, carrier_magic, sizeof(carrier_magic));
		return ENTRY_CARRIER;
	}
	if (n == 0 || clc_msg_parse(buf, (size_t)n, msg) || msg->type != CLC_PROPOSAL)
		return ENTRY_JUNK;
	*len = (size_t)n;
	return ENTRY_PROPOSAL;
}

/* Whether other messages follow an entry's first, of len bytes. */
static bool entry_more(int fd, size_t len)
{
	int inq = 0;

	/* A seqpacket socket's SIOCINQ counts every queued message. */
	return usmc_sys.ioctl(fd, SIOCINQ, &inq) == 0 && (size_t)inq > len;
}

/*
 * Whether an entry is a carrier, accepted from a backlog, whose name it
 * bears; a channel, one end of a socketpair, has none.
 */
static bool entry_named(int fd)
{
	struct sockaddr_un sun;
	socklen_t len = sizeof(sun);

	return !usmc_sys.getsockname(fd, (struct sockaddr *)&sun, &len) &&
	       len > offsetof(struct sockaddr_un, sun_path);
}

/* The channel a carrier brings, or -1; the carrier is closed. */
static int carrier_open(int fd)
{
	char cbuf[CMSG_SPACE(sizeof(int))], tag[sizeof(carrier_magic)];
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
	usmc_sys.close(fd);
	c = n > 0 ? CMSG_FIRSTHDR(&mh) : NULL;
	if (c && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
	    c->cmsg_len == CMSG_LEN(sizeof(int)) && !(mh.msg_flags & MSG_CTRUNC))
		memcpy(&ch, CMSG_DATA(c), sizeof(int));
	if (ch < 0)
		return -1;
	/*
	 * Anyone may send a carrier: what it brings must be a seqpacket
	 * socket, and a connected one, which a listener or a socket never
	 * connected is not: the peek that follows gets ENOTCONN from them
	 * (unix_seqpacket_recvmsg), and they are dropped as junk.
	 */
	if (usmc_sys.getsockopt(ch, SOL_SOCKET, SO_TYPE, &type, &len) || type != SOCK_SEQPACKET) {
		usmc_sys.close(ch);
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
	char cbuf[CMSG_SPACE(sizeof(int))] = { 0 };
	struct iovec iov = { .iov_base = (void *)(counted ? carrier_magic : carrier_uncounted),
			     .iov_len = sizeof(carrier_magic) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			     .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
	socklen_t len = sizeof(*cred);
	int fd = usmc_sys.socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	uint32_t reason = 0;

	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &ch, sizeof(int));
	if (fd < 0)
		return usmc_env_fail("socket(AF_UNIX)");
	/* Done now, or EAGAIN if the backlog is full: a Unix connect never goes on in the background. */
	if (usmc_sys.connect(fd, (const struct sockaddr *)sun, sun_len))
		reason = errno == EAGAIN ? USMC_DECL_CHAN_BUSY : USMC_DECL_PEERNOSMC;
	else if (usmc_sys.getsockopt(fd, SOL_SOCKET, SO_PEERCRED, cred, &len) || cred->uid != uid ||
		 !rdv_uid_mapped(cred->uid))
		reason = USMC_DECL_FOREIGN;
	/* A message may go on a connection not yet accepted: it waits with it. */
	else if (usmc_sys.sendmsg(fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL) != (ssize_t)sizeof(carrier_magic))
		reason = USMC_DECL_CHAN_BUSY;
	/* Kept while the program goes on: above the numbers its own descriptors take. */
	if (!reason && keep && keep->ncarriers < LGR_CARRIERS)
		keep->carriers[keep->ncarriers++] = usmc_fd_lift(fd);
	else
		usmc_sys.close(fd);
	return reason;
}

/* ---- the client's side ---- */

/*
 * A channel of this connection's own toward a shared listener, whose
 * holders share its backlog (usmc_queue.c): a socketpair, whose server
 * end goes into the backlog once the Proposal is in it (af_queue_post).
 * We keep that end too: reading the Proposal back out of it withdraws it
 * for certain, since then no holder ever can.
 */
struct usmc_lgr *af_queue_pair(uint16_t port, uint32_t *reason)
{
	struct usmc_lgr *lgr;
	int sv[2];

	if (usmc_sys.socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv)) {
		*reason = usmc_env_fail("socketpair(AF_UNIX)");
		return NULL;
	}
	/* Ours for the connection's life; the server's end only until the answer. */
	sv[0] = usmc_fd_lift(sv[0]);
	lgr = lgr_new(sv[0], LGR_CLIENT, 0, reg_owner());
	if (!lgr) {
		usmc_sys.close(sv[0]);
		usmc_sys.close(sv[1]);
		*reason = USMC_DECL_MEM;
		return NULL;
	}
	lgr->port = port;
	lgr->oneshot = true;
	lgr->taker = usmc_fd_lift(sv[1]);
	return lgr;
}

/* Puts the server end of a pair's channel, the Proposal in it, into the listener's backlog. */
uint32_t af_queue_post(struct usmc_lgr *lgr, struct reg_port *reg)
{
	int32_t pid = atomic_load(&reg->pid);
	struct sockaddr_un sun;
	socklen_t sun_len;
	struct ucred cred;
	uint32_t reason;

	if (atomic_load(&reg->flags) & REG_REUSEPORT)
		return af_member_post(reg, lgr);
	sun_len = reg_listener_addr(reg_owner(), lgr->port, false, &sun);
	reason = af_carrier_send(&sun, sun_len, reg_owner(), lgr->taker, true, &cred, lgr);
	if (!reason)
		lgr->peer_pid = cred.pid;
	/* The listener died without closing: clear its registry entry. */
	if (reason == USMC_DECL_PEERNOSMC)
		atomic_compare_exchange_strong(&reg->pid, &pid, 0);
	return reason;
}

/* Reads our Proposal back out of the server's end: true if no holder had taken it. */
bool af_queue_take_back(struct usmc_lgr *lgr)
{
	struct reg_port *reg = reg_port(lgr->port);
	uint8_t buf[CLC_MAX_MSG_SIZE];
	ssize_t n;

	/* No room for descriptors: the ring's memfd that came with it is dropped. */
	do
		n = usmc_sys.recv(lgr->taker, buf, sizeof(buf), MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	/* Out of the backlog's count: accepts of plain clients need not look for it. */
	if (n > 0 && reg && !lgr->rdv)
		atomic_fetch_add(&reg->settled, 1);
	return n > 0;
}

/* ---- the holders' side ---- */

/*
 * A backlog a holder looks through: the listener's own, where clients of
 * its user put channels on carriers and count them in the registry; the
 * one clients of other users that policy allows connect to, each channel
 * straight, uncounted (they cannot write our registry); or the one in the
 * rendezvous directory, where clients of other network namespaces put
 * theirs on carriers, uncounted (usmc_rendezvous.c).
 */
struct backlog {
	int fd;
	struct sockaddr_un addr; /* where entries go back */
	socklen_t len;
	bool counted;            /* PASS carriers here bring Proposals counted in the registry */
	bool drop_empty;         /* an empty carried channel was answered elsewhere */
};

/*
 * Refuses a channel: takes its Proposal out, so that no holder can take
 * it any more, answers it with a Decline for reason, and closes it.  The
 * client falls back, and so does whoever accepted its connection, which
 * will not find the Proposal.  Counted as settled if there was one and
 * its client counted it.
 */
static void entry_refuse(bool counted, struct reg_port *reg, int ch, uint32_t reason)
{
	uint8_t buf[CLC_MAX_MSG_SIZE];
	struct clc_msg p;
	ssize_t n;

	/* No room for descriptors: the ring's memfd that came with it is dropped. */
	do
		n = usmc_sys.recv(ch, buf, sizeof(buf), MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	if (n > 0 && !clc_msg_parse(buf, (size_t)n, &p) && p.type == CLC_PROPOSAL) {
		if (counted)
			atomic_fetch_add(&reg->settled, 1);
		af_channel_refuse(ch, p.token, reason);
	} else {
		usmc_sys.close(ch);
	}
}

/*
 * Returns a held entry: back into the backlog, or refused (the client
 * falls back, and so does whoever accepted its connection, which will
 * not find the Proposal any more).
 */
static void entry_return(const struct backlog *b, struct usmc_listener *l, struct reg_port *reg,
			  int ch, bool counted)
{
	struct ucred cred;

	if (!af_carrier_send(&b->addr, b->len, l->uid, ch, counted, &cred, NULL))
		usmc_sys.close(ch);
	else
		entry_refuse(counted, reg, ch, USMC_DECL_CHAN_BUSY);
	atomic_fetch_add(&reg->handed, 1);
}

/*
 * The next entry of the backlog, carriers opened: a channel, or -1 once
 * it is empty.  *counted if its client counted its Proposal (it came on a
 * PASS carrier into the listener's own backlog).
 */
static int entry_next(const struct backlog *b, enum entry_kind *kind, struct clc_msg *msg,
		      size_t *len, bool *counted)
{
	for (;;) {
		int fd = usmc_sys.accept4(b->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0 && errno == EINTR)
			continue;
		if (fd < 0)
			return -1;
		*counted = false;
		for (int depth = 0; fd >= 0; depth++) {
			bool pass = false;

			*kind = entry_peek(fd, msg, len, &pass);
			/* What the carrier says of the channel it brings. */
			if (*kind == ENTRY_CARRIER)
				*counted = b->counted && pass;
			/*
			 * A client puts a channel on a carrier only with its Proposal
			 * in it: without, it was answered or taken back (the other
			 * members' copies of an SO_REUSEPORT group's), and is dropped.
			 * Not a carrier that a holder took before its client wrote it
			 * and handed back inside another: its client writes it next.
			 */
			if (*kind == ENTRY_EMPTY && depth > 0 && b->drop_empty && !entry_named(fd))
				*kind = ENTRY_JUNK;
			if (*kind != ENTRY_CARRIER)
				return fd;
			fd = depth < QUEUE_NEST_MAX ? carrier_open(fd) : (usmc_sys.close(fd), -1);
		}
	}
}

/* A channel whose Proposal is the one we look for becomes a link group: it, or NULL. */
static struct usmc_lgr *entry_adopt(const struct backlog *b, bool counted, struct usmc_listener *l,
				    struct reg_port *reg, int ch, const struct wanted *w)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);
	struct usmc_lgr *lgr;
	uint32_t refused, refuse;

	if (usmc_sys.getsockopt(ch, SOL_SOCKET, SO_PEERCRED, &cred, &len)) {
		entry_refuse(counted, reg, ch, USMC_DECL_INTERR);
		return NULL;
	}
	/* Admitted by the number the kernel gave (how full the table is), then lifted. */
	refused = af_channel_admit(ch, &cred, l, &refuse);
	if (!refused)
		ch = usmc_fd_lift(ch);
	lgr = refused ? NULL : lgr_new(ch, LGR_SERVER, cred.pid, cred.uid);
	if (!lgr) {
		entry_refuse(counted, reg, ch, refused ? refused : USMC_DECL_MEM);
		return NULL;
	}
	lgr->refused = refuse;
	/* Read by the caller's pump: out of the backlog's count, or of the listener's. */
	if (counted)
		atomic_fetch_add(&reg->settled, 1);
	lgr->oneshot = true;
	lgr->direct = !counted && b->counted;
	/* Its segment may serve this client process again (a pid of another pid namespace is 0). */
	if (cred.pid > 0)
		lgr->reuse = (struct reuse_key){ REUSE_PEER, cred.uid, cred.pid, 0, 0 };
	/* Proven for this listener, whatever port it dialled (usmc_rendezvous.c). */
	if (w->acc >= 0) {
		lgr->rdv = true;
		lgr->port = l->port;
	}
	return lgr;
}

/*
 * One pass through the backlog: the link group of the channel whose
 * Proposal w looks for, or NULL; *whole if the pass saw the backlog to
 * its end without holding anything back it could not look at.  A
 * Proposal that is not the one w looks for was looked at: handed back,
 * it is no reason to look again (the backlog of a shared listener holds
 * those of the connections behind ours as they come).  *returned counts
 * the entries the pass handed back.
 */
static struct usmc_lgr *queue_look(const struct backlog *b, struct usmc_listener *l,
				   struct reg_port *reg, struct wanted *w, bool *whole,
				   uint32_t *returned)
{
	int held[QUEUE_HOLD_MAX], nheld = 0, ch = -1;
	bool held_counted[QUEUE_HOLD_MAX], unseen = false;
	int slot;
	struct usmc_lgr *found = NULL;
	struct clc_msg msg;
	enum entry_kind kind;
	bool counted, snat;
	size_t len;

	*whole = false;
	slot = reg_holder_show(reg);
	for (int n = 0; n < QUEUE_LOOK_MAX && !found; n++) {
		ch = entry_next(b, &kind, &msg, &len, &counted);
		if (ch < 0) {
			*whole = true;
			break;
		}
		snat = w->snat;
		if (kind == ENTRY_JUNK) {
			usmc_sys.close(ch);
		} else if (kind == ENTRY_PROPOSAL && queue_match(w, l, ch, &msg)) {
			found = entry_adopt(b, counted, l, reg, ch, w);
		} else if (kind == ENTRY_PROPOSAL && w->snat && !snat) {
			/* Its client waits for an answer nobody can give: it falls back now. */
			entry_refuse(counted, reg, ch, USMC_DECL_SNAT);
		} else if (kind == ENTRY_PROPOSAL && entry_more(ch, len)) {
			/* Not ours, and more behind it, which no client sends: refused. */
			entry_refuse(counted, reg, ch, USMC_DECL_SYNCERR);
		} else if (nheld < QUEUE_HOLD_MAX) {
			held_counted[nheld] = counted;
			held[nheld++] = ch;
			unseen |= kind != ENTRY_PROPOSAL;
		} else {
			entry_return(b, l, reg, ch, counted);
			++*returned;
		}
	}
	if (unseen)
		*whole = false;
	/*
	 * Entries without a message go back too: carriers not written yet,
	 * whose senders are about to, or channels whose client just took its
	 * Proposal back, and closes them soon.
	 */
	for (int i = 0; i < nheld; i++)
		entry_return(b, l, reg, held[i], held_counted[i]);
	*returned += (uint32_t)nheld;
	reg_holder_hide(reg, slot);
	return found;
}

/* Looks through backlogs b (one or two) for the Proposal w looks for (see af_queue_find). */
static struct usmc_lgr *queue_find(struct usmc_listener *l, struct reg_port *reg,
				   const struct backlog *b, int nb, struct wanted *w)
{
	/*
	 * Another holder hands back what it holds within microseconds of
	 * taking it, unless it loses its CPU meanwhile: on a loaded machine
	 * that is tens of milliseconds, and more.  Wait for it as long as the
	 * client waits for our answer before it takes its Proposal back.
	 */
	int64_t deadline = usmc_now_ms() + usmc_clc_timeout_ms();
	struct usmc_lgr *lgr = NULL;
	bool whole;

	if (b[0].fd < 0)
		return NULL;
	for (;;) {
		uint32_t handed = atomic_load(&reg->handed);
		bool holding = reg_holders_any(reg);
		struct pollfd p[2] = { { .fd = b[0].fd, .events = POLLIN },
				       { .fd = nb > 1 ? b[1].fd : -1, .events = POLLIN } };
		bool whole_users = true;
		uint32_t returned = 0;

		lgr = queue_look(&b[0], l, reg, w, &whole, &returned);
		/* Clients of other users, allowed by policy, connect their channels there. */
		if (!lgr && nb > 1 && b[1].fd >= 0)
			lgr = queue_look(&b[1], l, reg, w, &whole_users, &returned);
		whole &= whole_users;
		/*
		 * Not there, and nobody else held an entry while we looked, nor
		 * handed one back since (ours aside): the Proposal is nowhere
		 * (the client is plain, or another holder refused its channel).
		 */
		if (lgr || (whole && !holding && !reg_holders_any(reg) &&
			    handed + returned == atomic_load(&reg->handed)))
			break;
		if (usmc_now_ms() >= deadline) {
			w->waited_out = true;
			break;
		}
		/* What another holder hands back comes into a backlog and wakes us. */
		usmc_sys.poll(p, nb > 1 && b[1].fd >= 0 ? 2 : 1, 1);
	}
	return lgr;
}

struct usmc_lgr *af_queue_find(struct usmc_listener *l, struct reg_port *reg, uint64_t cookie,
			       uint32_t *reason)
{
	struct backlog b[2] = { { .fd = l->ufd, .addr = l->uaddr, .len = l->uaddr_len,
				  .counted = true, .drop_empty = l->member },
				{ .fd = l->ufd_users } };
	struct wanted w = { .cookie = cookie, .acc = -1 };
	struct usmc_lgr *lgr;

	b[1].len = reg_listener_addr(l->uid, l->port, true, &b[1].addr);
	lgr = queue_find(l, reg, b, 2, &w);
	if (!lgr && w.waited_out)
		*reason = USMC_DECL_TIMEOUT_CLC;
	return lgr;
}

struct usmc_lgr *af_queue_find_orphan(struct usmc_listener *l, struct reg_port *reg,
				      const struct sockaddr *peer, uint64_t *cookie)
{
	struct backlog b[2] = { { .fd = l->ufd, .addr = l->uaddr, .len = l->uaddr_len,
				  .counted = true, .drop_empty = l->member },
				{ .fd = -1 } };
	struct wanted w = { .acc = -1, .orphan = true };
	struct usmc_lgr *lgr;

	if (!usmc_addr16(peer, w.orphan_addr, &w.orphan_port))
		return NULL;
	lgr = queue_find(l, reg, b, 1, &w);
	*cookie = w.cookie;
	return lgr;
}

struct usmc_lgr *af_queue_find_rdv(struct usmc_listener *l, struct reg_port *reg, int acc,
				   uint64_t *cookie, bool *snat)
{
	/* An empty carried channel was answered by a listener of another namespace it went to too. */
	struct backlog b = { .fd = l->rfd, .drop_empty = true };
	struct wanted w = { .acc = acc };
	struct usmc_lgr *lgr;

	b.len = rdv_listener_addr(l->port, l->member ? (int32_t)l->owner : 0, &b.addr);
	lgr = queue_find(l, reg, &b, 1, &w);
	*cookie = w.cookie;
	*snat = w.snat;
	return lgr;
}

bool af_queue_rdv_pending(struct usmc_listener *l, struct reg_port *reg)
{
	struct pollfd p = { .fd = l->rfd, .events = POLLIN };

	return l->rfd >= 0 && (usmc_sys.poll(&p, 1, 0) > 0 || reg_holders_any(reg));
}

bool af_queue_none_pending(struct reg_port *reg)
{
	return atomic_load_explicit(&reg->queued, memory_order_acquire) ==
		       atomic_load_explicit(&reg->settled, memory_order_acquire) &&
	       !reg_holders_any(reg);
}
