// SPDX-License-Identifier: MIT
/*
 * The ready lists of usmc's epoll sets, looked at by each wait
 * (usmc_epoll.c): what a look at an entry finds, when the entry stays on
 * its list and when it may leave, and how a doorbell read outside the set
 * brings it back.
 *
 * A wait looks only at its set's ready list.  An entry leaves the list
 * only after a look that found nothing to report, made once the peer was
 * asked to ring at its next change (usmc_conn_want): that change then
 * comes as a doorbell on the connection's TCP socket, and whoever reads
 * the doorbell puts the entry back.  The kernel's epoll reports it to the
 * set's wait (ep_filter); a read, a blocking wait or another set that
 * drains it first tells us through usmc_wake_drained (ep_drained), which
 * also wakes a thread asleep in the kernel's wait on the set.  What we
 * cannot hear of stays on the list for every wait to look at: a drain in
 * another process that holds the connection too, a set inside the set, a
 * handshake on its way to shared memory.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include "usmc.h"
#include "usmc_epoll.h"
#include "usmc_epoll_ready.h"
#include "usmc_epoll_table.h"
#include "usmc_fdtab.h"
#include "usmc_holders.h"
#include "usmc_listen.h"
#include "usmc_sock.h"
#include "usmc_sys.h"
#include "usmc_wait.h"
#include "usmc_wake.h"

/* Whether the connection moved between two views, as an edge sees it. */
static bool ep_edge_moved(const struct conn_view *a, const struct conn_view *b)
{
	return a->rx_prod != b->rx_prod || a->tx_cons != b->tx_cons || a->flags != b->flags ||
	       a->tcp_state != b->tcp_state || a->reset != b->reset || a->end_shows != b->end_shows ||
	       a->shut != b->shut;
}

uint32_t ep_entry_events(struct usmc_sock *s, struct ep_entry *e, bool consume)
{
	struct conn_view now = { 0 };
	short rev;

	if (e->disarmed)
		return 0;
	/* Readiness and the edge come from one view: an edge is neither lost nor doubled. */
	if (usmc_conn_view(s, &now) < 0)
		rev = POLLIN | POLLOUT | POLLERR | POLLHUP;
	else
		rev = usmc_conn_view_revents(s, &now, (short)e->ev.events);
	if (!rev)
		return 0;
	if ((e->ev.events & EPOLLET) && !e->fresh && !ep_edge_moved(&now, &e->last))
		return 0;
	if (consume) {
		e->last = now;
		e->fresh = false;
		e->disarmed = (e->ev.events & EPOLLONESHOT) != 0;
	}
	return (uint32_t)rev;
}

/*
 * Entries looked at by waits, for ever: a test counts them (usmc_epoll_looks).
 * Relaxed: a count, not a guard.
 */
static _Atomic uint64_t ep_looks;

uint64_t usmc_epoll_looks(void)
{
	return atomic_load_explicit(&ep_looks, memory_order_relaxed);
}

/*
 * The sockets this thread armed for its sleep (a nested set as -fd - 1),
 * to disarm after it: the ready list they were on changes meanwhile.
 */
static __thread struct {
	int *fds; /* local, or from the heap while more are armed */
	int local[16];
	unsigned n, room;
	bool all; /* no memory to note one: disarm the whole set */
} ep_armed;

static void ep_armed_note(int fd)
{
	if (!ep_armed.fds) {
		ep_armed.fds = ep_armed.local;
		ep_armed.room = sizeof(ep_armed.local) / sizeof(ep_armed.local[0]);
	}
	if (ep_armed.n == ep_armed.room) {
		unsigned room = 2 * ep_armed.room;
		bool heap = ep_armed.fds != ep_armed.local;
		int *more = realloc(heap ? ep_armed.fds : NULL, room * sizeof(*more));

		if (!more) {
			ep_armed.all = true;
			return;
		}
		if (!heap)
			memcpy(more, ep_armed.local, sizeof(ep_armed.local));
		ep_armed.fds = more;
		ep_armed.room = room;
	}
	ep_armed.fds[ep_armed.n++] = fd;
}

/* Takes back the registrations of this thread's last arming look. */
void ep_armed_disarm(int epfd)
{
	ep_lock();
	if (ep_armed.all) {
		ep_set_disarm(epfd, 0);
	} else {
		for (unsigned i = 0; i < ep_armed.n; i++) {
			int fd = ep_armed.fds[i];
			struct usmc_sock *s;

			if (fd < 0)
				ep_set_disarm(-fd - 1, 1);
			else if ((s = usmc_sock_active(fd)) && s->state == SOCK_SMC)
				usmc_conn_disarm(s);
		}
	}
	ep_armed.n = 0;
	ep_armed.all = false;
	/* The heap's room goes back at once: a thread that exits keeps nothing. */
	if (ep_armed.fds != ep_armed.local)
		free(ep_armed.fds);
	ep_armed.fds = NULL;
	ep_unlock();
}

/*
 * Whether an entry stays on its set's ready list whatever a look finds:
 * a doorbell may be read without ep_drained hearing of it, or without a
 * way to wake the set's sleeper.  A set inside this one (its own entries
 * are not on our list); a handshake on its way to shared memory
 * (ep_settle_proposed, af_settle); a connection another process holds
 * too (after a fork or a spawn), whose drains we do not see, until no
 * other process is seen holding it (usmc_holders_shared_now); an entry of
 * a dup of the socket's descriptor, which ep_drained does not find by the
 * socket's; an EPOLLEXCLUSIVE entry, which the kernel lets no one modify
 * (ep_kick).  These are armed for a sleep, as every entry once was.
 */
static bool ep_sticky(struct ep_entry *e, struct usmc_sock *s)
{
	return e->nested || e->fd != s->fd || s->state != SOCK_SMC ||
	       (e->ev.events & EPOLLEXCLUSIVE) || usmc_holders_shared_now(s->conn, s->fd);
}

/* A look of this thread met a connection another process holds (ep_looked_shared). */
static __thread bool ep_shared_seen;

bool ep_looked_shared(void)
{
	return ep_shared_seen;
}

void ep_looked_reset(void)
{
	ep_shared_seen = false;
}

/*
 * One entry of the ready list looked at: its events, consumed.  It stays
 * on the list while it has something to report, and leaves it only after
 * a look made once the peer was asked to ring at its next change
 * (usmc_conn_want): a change after that look rings a doorbell, which
 * either the kernel reports to ep_filter or a drain tells ep_drained,
 * and both put the entry back.  The peer is asked only by an arming look
 * or by a wait's first look at an entry the wait before found idle too
 * (enum ep_look_kind): asked at every look, a peer that answers within
 * our spin would ring for every message, a TCP segment each.  An arming
 * look arms an entry that stays (sleeper registration too): its
 * doorbells stay for our sleep.
 */
static uint32_t ep_look(struct ep_entry *e, enum ep_look_kind kind)
{
	bool arm = kind == EP_LOOK_ARM, asked = false;
	struct usmc_sock *s;
	uint32_t rev = 0;
	bool sticky;

	atomic_fetch_add_explicit(&ep_looks, 1, memory_order_relaxed);
	if (e->nested) {
		if (arm)
			ep_armed_note(-e->fd - 1);
		rev = ep_nested_events(e, arm);
		ep_ready_requeue(e);
		return rev;
	}
	s = usmc_sock_active(e->fd);
	/* Plain TCP, a listener: the kernel's entry tells all. */
	if (!s || s->state == SOCK_PLAIN || s->state == SOCK_LISTEN) {
		ep_ready_drop(e);
		return 0;
	}
	sticky = ep_sticky(e, s);
	if (s->state == SOCK_SMC && sticky && usmc_holders_shared(s->conn))
		ep_shared_seen = true;
	if (s->state == SOCK_SMC) {
		if (arm && sticky) {
			usmc_conn_arm(s, (short)e->ev.events);
			ep_armed_note(e->fd);
		}
		rev = ep_entry_events(s, e, true);
		if (!rev && !sticky && !e->disarmed &&
		    (arm || (kind == EP_LOOK_FIRST && e->missed))) {
			usmc_conn_want(s, (short)(e->ev.events & (EPOLLIN | EPOLLOUT | EPOLLRDHUP)));
			asked = true;
			rev = ep_entry_events(s, e, true);
		} else if (!rev && kind == EP_LOOK_FIRST) {
			e->missed = true;
		}
	}
	if (rev || sticky || (!asked && !e->disarmed)) {
		if (rev)
			e->missed = false;
		ep_ready_requeue(e);
	} else {
		e->missed = false;
		ep_ready_drop(e);
	}
	return rev;
}

/* A fork or a spawn since the last wait: connections may be shared now. */
static uint32_t ep_holders_epoch;

/*
 * usmc descriptors with something to report now, from the set's ready
 * list: each of its entries looked at once at most, in turn, so that a
 * wait with less room than ready entries leaves the rest to the next.
 * Armed first if asked; an arming look that finds nothing counts the
 * thread among the set's sleepers before it lets the lock go, so that a
 * drain elsewhere from then on wakes it (ep_mark): ep_sleep_end after.
 */
int ep_ready_now(int epfd, struct epoll_event *events, int maxevents, enum ep_look_kind kind)
{
	uint32_t epoch;
	unsigned todo;
	int n = 0;

	ep_lock();
	/*
	 * Read under the lock: a fork bumps it before its prepare handler
	 * takes the lock to kick the sets' sleepers (ep_forking), so a look
	 * either sees the fork or counted its thread asleep before the kick.
	 */
	epoch = atomic_load(&usmc_holders_epoch);
	if (epoch != ep_holders_epoch) {
		ep_ready_push_every();
		ep_holders_epoch = epoch;
	}
	for (todo = ep_ready_count(epfd); todo && n < maxevents; todo--) {
		struct ep_entry *e = ep_ready_first(epfd);
		uint32_t rev = ep_look(e, kind);

		if (!rev)
			continue;
		events[n].events = rev;
		events[n++].data = e->ev.data;
	}
	if (kind == EP_LOOK_ARM && !n)
		ep_set_sleeping(epfd, 1);
	ep_unlock();
	return n;
}

/*
 * The kernel's entry reports a doorbell at once: it asks for EPOLLOUT,
 * which the kernel socket has (ep_kernel_sync takes it off again).
 */
static void ep_kick(struct ep_entry *e)
{
	struct epoll_event kev = e->ev;

	kev.events = e->kernel | EPOLLOUT;
	if (usmc_sys.epoll_ctl(e->epfd, EPOLL_CTL_MOD, e->fd, &kev) == 0)
		e->kernel = kev.events;
}

/*
 * An entry whose doorbell was read outside its set's look goes on the
 * ready list; a thread asleep in the kernel's wait on its set would not
 * see that, and is woken.  Not the set whose ep_filter reads it: that
 * wait looks at the entry itself.
 */
__thread int ep_filtering = -1;

static void ep_mark(struct ep_entry *e, void *arg)
{
	(void)arg;
	if (ep_ready_push(e) && e->epfd != ep_filtering && ep_set_sleeping(e->epfd, 0))
		ep_kick(e);
}

static void ep_drained(struct usmc_sock *s)
{
	bool locked = ep_locked;

	if (!ep_any())
		return;
	if (!locked)
		ep_lock();
	ep_for_fd(s->fd, ep_mark, NULL);
	if (!locked)
		ep_unlock();
}

void usmc_epoll_sock_changed(struct usmc_sock *s)
{
	ep_drained(s);
}

/*
 * A thread asleep on the set armed only the entries that stayed on its
 * ready list; the child about to be forked may read the doorbells of the
 * others.  Kicked awake, the thread looks again, after the fork's epoch
 * changed (ep_ready_now): at every entry, and arms those now shared.
 */
static void ep_kick_set(int epfd)
{
	struct ep_entry *smc = ep_first(epfd);

	/* A connection's TCP socket has EPOLLOUT; a listener's, or a set's, may not. */
	for (; smc; smc = smc->next) {
		struct usmc_sock *s = smc->nested ? NULL : usmc_sock_active(smc->fd);

		if (s && s->state == SOCK_SMC)
			break;
	}
	if (smc)
		ep_kick(smc);
}

static void ep_forking(void)
{
	ep_lock();
	ep_for_sleeping(ep_kick_set);
	ep_unlock();
}

static pthread_once_t ep_drains_once = PTHREAD_ONCE_INIT;

static void ep_drains_init(void)
{
	usmc_wake_drained = ep_drained;
	usmc_holders_forking = ep_forking;
}

void ep_watch_drains(void)
{
	pthread_once(&ep_drains_once, ep_drains_init);
}

void ep_sleep_end(int epfd)
{
	ep_lock();
	ep_set_sleeping(epfd, -1);
	ep_unlock();
}
