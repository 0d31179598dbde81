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
 * the channel (SCM_RIGHTS), which needs nobody else to run (or, once the
 * listener has them, into its side queues: usmc_queue_side.c).  Holders
 * show in the registry which queue's entries they have in hand, and
 * count what they hand back into each, so that one that finds nothing
 * waits, for microseconds, while another still holds what it looks for,
 * and only then.
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
#include <fcntl.h>
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
#include "usmc_queue_side.h"
#include "usmc_registry.h"
#include "usmc_rendezvous.h"
#include "usmc_seg.h"
#include "usmc_reuseport.h"
#include "usmc_stats.h"
#include "usmc_sys.h"

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
	if (n > 0 && af_entry_tagged(buf, (size_t)n, counted))
		return ENTRY_CARRIER;
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
	bool counted;
	int ch = af_entry_recv(fd, &counted);

	usmc_sys.close(fd);
	return ch;
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
	bool is_side;            /* fd is a side queue of the listener (usmc_queue_side.c) */
	const int *side;         /* where Proposals not ours go, by cookie; NULL: straight back */
	int q;                   /* which queue it is (REG_Q_*, or a side queue's number) */
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
 * Returns a held entry: into side queue side (if not -1 and not full),
 * back into the backlog, or refused (the client falls back, and so does
 * whoever accepted its connection, which will not find the Proposal any
 * more).
 */
static void entry_return(const struct backlog *b, struct usmc_listener *l, struct reg_port *reg,
			 int ch, bool counted, int side, uint32_t *returned)
{
	struct ucred cred;
	/* A carrier goes into the backlog b's address names: a side queue's is its listener's. */
	int q = b->is_side ? REG_Q_BACKLOG : b->q;

	/* Into side queue side, unless it is full. */
	if (side >= 0 && af_entry_send(b->side[side], ch, counted)) {
		usmc_sys.close(ch);
		q = side;
	} else if (!af_carrier_send(&b->addr, b->len, l->uid, ch, counted, &cred, NULL)) {
		usmc_sys.close(ch);
	} else {
		entry_refuse(counted, reg, ch, USMC_DECL_CHAN_BUSY);
	}
	/*
	 * Counted once it is in: a look that missed it looks again.  Not an
	 * entry that went round its side queue in a pass (reg_pass_begin):
	 * no other pass missed it meanwhile.
	 */
	if (b->is_side && q == b->q)
		return;
	reg_handed_add(reg, q);
	returned[q]++;
}

/*
 * Whether n more descriptors can be had now, usmc's own given back if
 * need be: an entry taken without room for the channel it brings would
 * be lost, since the kernel drops what it cannot install (MSG_CTRUNC).
 */
static bool entry_room(int fd, int n)
{
	int probe[2] = { -1, -1 };
	bool room = true;

	for (int i = 0; i < n && room; i++) {
		probe[i] = usmc_sys.fcntl(fd, F_DUPFD_CLOEXEC, 0);
		if (probe[i] < 0 && errno == EMFILE && lgr_give_back_fds_locked())
			probe[i] = usmc_sys.fcntl(fd, F_DUPFD_CLOEXEC, 0);
		room = probe[i] >= 0;
	}
	for (int i = 0; i < n; i++)
		if (probe[i] >= 0)
			usmc_sys.close(probe[i]);
	return room;
}

/*
 * The next entry of the backlog, carriers opened: a channel, or -1 once
 * it is empty (errno EAGAIN) or cannot be taken (EMFILE: the process is
 * at its descriptor limit).  *counted if its client counted its Proposal
 * (it came on a PASS carrier into the listener's own backlog).
 */
static int entry_next(const struct backlog *b, enum entry_kind *kind, struct clc_msg *msg,
		      size_t *len, bool *counted)
{
	for (;;) {
		int fd, depth = 0;

		*counted = false;
		/* Most looks find their side queue empty: that needs no room. */
		if (b->is_side && af_side_empty(b->fd)) {
			errno = EAGAIN;
			return -1;
		}
		/* Room for it, and for the channel a carrier brings. */
		if (!entry_room(b->fd, b->is_side ? 1 : 2)) {
			errno = EMFILE;
			return -1;
		}
		if (b->is_side) {
			/* Put there by a holder, with what its carrier said (*counted). */
			fd = af_entry_recv(b->fd, counted);
			depth = 1;
		} else {
			fd = usmc_sys.accept4(b->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		}
		if (fd < 0 && (errno == EINTR || errno == EBADMSG))
			continue;
		if (fd < 0)
			return -1;
		for (; fd >= 0; depth++) {
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
 * those of the connections behind ours as they come).  returned counts
 * the entries the pass handed back, by the queue they went into.  The
 * holder's slot says which queue it has entries of in hand, from before
 * it takes one to after it handed the last back.
 */
static struct usmc_lgr *queue_look(const struct backlog *b, struct usmc_listener *l,
				   struct reg_port *reg, struct wanted *w, bool *whole,
				   uint32_t *returned)
{
	int held[QUEUE_HOLD_MAX], held_to[QUEUE_HOLD_MAX], nheld = 0, ch = -1;
	bool held_counted[QUEUE_HOLD_MAX], unseen = false, circled = false;
	uint64_t first = 0;
	int slot;
	struct usmc_lgr *found = NULL;
	struct clc_msg msg;
	enum entry_kind kind;
	bool counted, snat;
	size_t len;

	*whole = false;
	if (b->is_side && !reg_pass_begin(reg, b->q, w->deadline)) {
		w->waited_out = true;
		return NULL;
	}
	slot = reg_holder_show(reg);
	for (int n = 0; n < QUEUE_LOOK_MAX && !found; n++) {
		if (!nheld && !b->is_side)
			reg_holder_holds(reg, slot, b->q);
		ch = entry_next(b, &kind, &msg, &len, &counted);
		if (ch < 0) {
			/* Seen to its end; or not, and looking again would not help. */
			*whole = errno == EAGAIN;
			w->blind = !*whole;
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
		} else {
			/*
			 * Another holder's, or one not written yet.  A Proposal
			 * taken from the backlog goes into its side queue now,
			 * where the holder that accepted its connection looks
			 * first; others go back where they came from once the
			 * pass is over, not to be seen again in it.
			 */
			int to = b->is_side ? b->q
				 : kind == ENTRY_PROPOSAL && b->side ? (int)af_side_of(msg.proposal.cookie)
								     : -1;

			unseen |= kind != ENTRY_PROPOSAL;
			/*
			 * A side queue's Proposals go back to its tail at once:
			 * the pass has seen the whole queue when the first of
			 * them comes round again.  Held instead, a queue longer
			 * than the hold came round without end, and its look
			 * was never whole.
			 */
			if (b->is_side && kind == ENTRY_PROPOSAL) {
				bool again = circled && msg.proposal.cookie == first;

				if (!circled) {
					circled = true;
					first = msg.proposal.cookie;
				}
				entry_return(b, l, reg, ch, counted, to, returned);
				if (again) {
					*whole = true;
					break;
				}
			} else if ((to < 0 || b->is_side) && nheld < QUEUE_HOLD_MAX) {
				held_counted[nheld] = counted;
				held_to[nheld] = to;
				held[nheld++] = ch;
			} else {
				entry_return(b, l, reg, ch, counted, to, returned);
			}
		}
		if (!nheld && !b->is_side)
			reg_holder_holds(reg, slot, -1);
	}
	if (unseen)
		*whole = false;
	/*
	 * Entries without a message go back too: carriers not written yet,
	 * whose senders are about to, or channels whose client just took its
	 * Proposal back, and closes them soon.
	 */
	for (int i = 0; i < nheld; i++)
		entry_return(b, l, reg, held[i], held_counted[i], held_to[i], returned);
	reg_holder_hide(reg, slot);
	if (b->is_side)
		reg_pass_end(reg, b->q);
	return found;
}

#define QUEUE_BACKLOGS (SIDE_QUEUES + 2)

/*
 * The backlogs of listener l a look goes through, in order, into b: its
 * own, where a storm's Proposals wait in the order of their connections,
 * so that the one of the connection accepted now is most often near its
 * head; the side queue of a look for cookie (all of them for a look by
 * what a Proposal brings, cookie NULL), where the entries other holders
 * took first wait, and where a pass goes round all of them; and (users)
 * the one of the clients of other users.  How many.
 */
static int backlogs_of(const struct usmc_listener *l, const uint64_t *cookie, bool users,
		       struct backlog *b)
{
	struct backlog own = { .fd = l->ufd, .addr = l->uaddr, .len = l->uaddr_len, .counted = true,
			       .drop_empty = l->member, .side = l->side[0] >= 0 ? l->side : NULL,
			       .q = REG_Q_BACKLOG };
	int n = 0;

	if (l->ufd < 0)
		return 0;
	b[n++] = own;
	for (int i = 0; i < SIDE_QUEUES && own.side; i++) {
		if (cookie && (unsigned)i != af_side_of(*cookie))
			continue;
		b[n] = own;
		b[n].fd = l->side[i];
		b[n].q = i;
		b[n++].is_side = true;
	}
	if (users && l->ufd_users >= 0) {
		b[n] = (struct backlog){ .fd = l->ufd_users, .q = REG_Q_OTHER };
		b[n].len = reg_listener_addr(l->uid, l->port, true, &b[n].addr);
		n++;
	}
	return n;
}

/* Looks through backlogs b, nb of them, for the Proposal w looks for (see af_queue_find). */
static struct usmc_lgr *queue_find(struct usmc_listener *l, struct reg_port *reg,
				   const struct backlog *b, int nb, struct wanted *w)
{
	/*
	 * Another holder hands back what it holds within microseconds of
	 * taking it, unless it loses its CPU meanwhile: on a loaded machine
	 * that is tens of milliseconds, and more.  Wait for it as long as the
	 * client waits for our answer before it takes its Proposal back.
	 */
	int64_t deadline = w->deadline = usmc_now_ms() + usmc_clc_timeout_ms();
	/*
	 * Where the Proposal may be: its side queue, or on its way there from
	 * a backlog (in a holder's hand: only a backlog's are shown).
	 */
	uint32_t froms = 1u << REG_Q_BACKLOG | 1u << REG_Q_OTHER;
	uint32_t mask = w->orphan || w->acc >= 0 ? REG_Q_ALL : 1u << af_side_of(w->cookie) | froms;
	struct pollfd p[QUEUE_BACKLOGS];
	struct usmc_lgr *lgr = NULL;

	if (!nb)
		return NULL;
	for (int i = 0; i < nb; i++)
		p[i] = (struct pollfd){ .fd = b[i].fd, .events = POLLIN };
	for (;;) {
		uint32_t handed = reg_handed_sum(reg, mask), returned[REG_QUEUES] = { 0 }, ours = 0;
		bool holding = reg_holders_any(reg, froms), whole = true;

		for (int i = 0; i < nb && !lgr; i++) {
			bool seen;

			lgr = queue_look(&b[i], l, reg, w, &seen, returned);
			whole &= seen;
		}
		for (int q = 0; q < REG_QUEUES; q++)
			ours += mask & 1u << q ? returned[q] : 0;
		/*
		 * Not there, and nobody else had an entry in hand from where it
		 * may be while we looked, nor handed one back there since (ours
		 * aside): the Proposal is nowhere (the client is plain, or
		 * another holder refused its channel).  What other holders do
		 * with the other side queues is no reason to look again: two
		 * workers that each looked for a Proposal nowhere kept each
		 * other looking until the CLC timeout, their event loops stopped
		 * for it.
		 */
		if (lgr || w->blind || w->waited_out ||
		    (whole && !holding && !reg_holders_any(reg, froms) &&
			    handed + ours == reg_handed_sum(reg, mask)))
			break;
		if (usmc_now_ms() >= deadline) {
			w->waited_out = true;
			break;
		}
		/* What another holder hands back comes into a backlog and wakes us. */
		usmc_sys.poll(p, (nfds_t)nb, 1);
	}
	return lgr;
}

struct usmc_lgr *af_queue_find(struct usmc_listener *l, struct reg_port *reg, uint64_t cookie,
			       uint32_t *reason)
{
	struct backlog b[QUEUE_BACKLOGS];
	struct wanted w = { .cookie = cookie, .acc = -1 };
	struct usmc_lgr *lgr;

	lgr = queue_find(l, reg, b, backlogs_of(l, &cookie, true, b), &w);
	if (!lgr && w.waited_out)
		*reason = USMC_DECL_TIMEOUT_CLC;
	else if (!lgr && w.blind)
		*reason = USMC_DECL_MEM;
	return lgr;
}

struct usmc_lgr *af_queue_find_orphan(struct usmc_listener *l, struct reg_port *reg,
				      const struct sockaddr *peer, uint64_t *cookie)
{
	struct backlog b[QUEUE_BACKLOGS];
	struct wanted w = { .acc = -1, .orphan = true };
	struct usmc_lgr *lgr;

	if (!usmc_addr16(peer, w.orphan_addr, &w.orphan_port))
		return NULL;
	lgr = queue_find(l, reg, b, backlogs_of(l, NULL, false, b), &w);
	*cookie = w.cookie;
	return lgr;
}

struct usmc_lgr *af_queue_find_rdv(struct usmc_listener *l, struct reg_port *reg, int acc,
				   uint64_t *cookie, bool *snat)
{
	/* An empty carried channel was answered by a listener of another namespace it went to too. */
	struct backlog b = { .fd = l->rfd, .drop_empty = true, .q = REG_Q_OTHER };
	struct wanted w = { .acc = acc };
	struct usmc_lgr *lgr;

	b.len = rdv_listener_addr(l->port, l->member ? (int32_t)l->owner : 0, &b.addr);
	lgr = queue_find(l, reg, &b, l->rfd >= 0, &w);
	*cookie = w.cookie;
	*snat = w.snat;
	return lgr;
}

bool af_queue_rdv_pending(struct usmc_listener *l, struct reg_port *reg)
{
	struct pollfd p = { .fd = l->rfd, .events = POLLIN };

	return l->rfd >= 0 && (usmc_sys.poll(&p, 1, 0) > 0 || reg_holders_any(reg, REG_Q_LOOKING));
}

bool af_queue_none_pending(struct reg_port *reg)
{
	return atomic_load_explicit(&reg->queued, memory_order_acquire) ==
		       atomic_load_explicit(&reg->settled, memory_order_acquire) &&
	       !reg_holders_any(reg, REG_Q_LOOKING);
}
