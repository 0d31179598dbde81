// SPDX-License-Identifier: MIT
/*
 * epoll over usmc sockets.
 *
 * The kernel's set holds the descriptors; beside it we keep which usmc
 * descriptors were added with which events (usmc_epoll_table.c), to
 * answer for them, as usmc_poll answers for its descriptors: the kernel
 * socket of a shared-memory connection carries only doorbells.  An epoll set inside
 * another is kept too, so that the outer set answers for the usmc sockets
 * of the inner one.  A wait looks only at the entries on its set's ready
 * list (usmc_epoll_ready.c): its work grows with the connections that may
 * be ready, not with all of them.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "usmc.h"
#include "usmc_bell.h"
#include "usmc_epoll.h"
#include "usmc_epoll_ready.h"
#include "usmc_epoll_table.h"
#include "usmc_fdtab.h"
#include "usmc_listen.h"
#include "usmc_listener.h"
#include "usmc_poll.h"
#include "usmc_proc.h"
#include "usmc_settle.h"
#include "usmc_sock.h"
#include "usmc_stats.h"
#include "usmc_sys.h"
#include "usmc_wait.h"
#include "usmc_wake.h"

static void ep_track(int epfd, int op, int fd, const struct epoll_event *ev, bool nested,
		     uint32_t kernel)
{
	ep_lock();
	ep_track_locked(epfd, op, fd, ev, nested, kernel);
	ep_unlock();
}

static bool is_epoll_set(int fd)
{
	return proc_fd_is(0, fd, "anon_inode:[eventpoll]");
}

/*
 * What the kernel's entry of a usmc socket asks for.  Doorbells arrive as
 * EPOLLIN, whatever the program asked for.  In shared memory the room to
 * write is the ring's, not the kernel socket's, which always has room: a
 * doorbell tells when the ring's grows, and a kernel EPOLLOUT would wake
 * every wait for nothing.  After the peer's FIN the kernel socket stays
 * readable: then only errors and hang-ups, which the kernel always reports.
 */
static uint32_t ep_kernel_events(struct usmc_sock *s, const struct epoll_event *ev)
{
	uint32_t k = ev->events | EPOLLIN;

	if (s->state == SOCK_SMC) {
		k &= ~(uint32_t)(EPOLLOUT | EPOLLWRNORM);
		/* TCP's urgent byte (usmc_conn_urgent_taken). */
		if ((k & EPOLLPRI) && !usmc_conn_urgent_watched())
			k &= ~(uint32_t)EPOLLPRI;
		if (atomic_load(&s->conn->sh->tcp_state) != CDC_TCP_OPEN)
			k &= ~(uint32_t)EPOLLIN;
	}
	return k;
}

/*
 * An entry added or changed while another thread sleeps in epoll_wait on
 * the set was not armed by that sleep, and the kernel reports it only on
 * a doorbell: a connection that is ready now (a ring with room, data read
 * from the ring but not by the program) would wait for a change that may
 * never come (apache2's event MPM hands a connection whose write found a
 * full ring to its listener thread's wait).  So an entry ready now asks
 * the kernel for EPOLLOUT once, which the kernel socket always has: the
 * sleeper wakes and looks, and ep_kernel_sync takes the EPOLLOUT off
 * again.  Only an entry not ready asks the peer to ring at its next
 * change, and looks once more after asking.  One ready now is looked at
 * by a wait, whose look asks for the ring before the entry leaves the
 * list (ep_look): asked here, each EPOLLOUT a program adds to write a
 * request (wrk, ae's loops) would have its peer ring it for the room that
 * reading the request gives, a doorbell nobody waits for.
 */
static bool ep_ctl_ready(struct usmc_sock *s, const struct epoll_event *event)
{
	short events = (short)(event->events & (EPOLLIN | EPOLLOUT | EPOLLRDHUP));

	if (s->state != SOCK_SMC)
		return false;
	if (usmc_conn_revents(s, events))
		return true;
	usmc_conn_want(s, events);
	return usmc_conn_revents(s, events) != 0;
}

int usmc_epoll_ctl(int epfd, int op, int fd, struct epoll_event *event)
{
	struct usmc_sock *s = usmc_sock_get(fd);
	struct epoll_event kev;
	int rc;

	if (!s) {
		if (usmc_sys.epoll_ctl(epfd, op, fd, event) < 0)
			return -1;
		if (op == EPOLL_CTL_DEL || is_epoll_set(fd))
			ep_track(epfd, op, fd, event, true, 0);
		return 0;
	}
	if (op != EPOLL_CTL_DEL && atomic_load(&s->state) == SOCK_LISTEN)
		af_listener_claim(s);
	else if (op != EPOLL_CTL_DEL)
		af_sock_used(s);
	if (event) {
		kev = *event;
		kev.events = ep_kernel_events(s, event);
		if (op != EPOLL_CTL_DEL && ep_ctl_ready(s, event))
			kev.events |= EPOLLOUT;
	}
	ep_watch_drains();
	/* A waiter the kernel wakes for this entry finds it tracked (ep_filter). */
	ep_lock();
	rc = usmc_sys.epoll_ctl(epfd, op, fd, event ? &kev : event);
	if (rc == 0)
		ep_track_locked(epfd, op, fd, event, false, event ? kev.events : 0);
	ep_unlock();
	return rc;
}

/* The kernel lets epoll sets nest this deep. */
#define EP_MAX_NESTING 5

static bool ep_has_smc_locked(int epfd, int depth);

/*
 * Whether a set holds a usmc socket with something to report, looking
 * into the sets inside it; nothing is consumed.  Called with LOCK_EPOLL.
 */
static bool ep_set_ready(int epfd, bool arm, int depth)
{
	bool ready = false;

	for (struct ep_entry *e = depth < EP_MAX_NESTING ? ep_first(epfd) : NULL; e; e = e->next) {
		struct usmc_sock *s;

		if (e->nested) {
			ready |= ep_set_ready(e->fd, arm, depth + 1);
			continue;
		}
		if (!(s = usmc_sock_active(e->fd)) || s->state != SOCK_SMC)
			continue;
		if (arm)
			usmc_conn_arm(s, (short)e->ev.events);
		ready |= ep_entry_events(s, e, false) != 0;
	}
	return ready;
}

/* The sleep on a set is over: its sockets, and those of sets inside, keep no doorbell for us. */
void ep_set_disarm(int epfd, int depth)
{
	for (struct ep_entry *e = depth < EP_MAX_NESTING ? ep_first(epfd) : NULL; e; e = e->next) {
		struct usmc_sock *s;

		if (e->nested)
			ep_set_disarm(e->fd, depth + 1);
		else if ((s = usmc_sock_active(e->fd)) && s->state == SOCK_SMC)
			usmc_conn_disarm(s);
	}
}

void usmc_epoll_set_disarm(int fd)
{
	ep_lock();
	ep_set_disarm(fd, 0);
	ep_unlock();
}

/* An entry that is a set inside this one: readable when the inner set has something. */
uint32_t ep_nested_events(struct ep_entry *e, bool arm)
{
	return ep_set_ready(e->fd, arm, 1) ? e->ev.events & (EPOLLIN | EPOLLRDNORM) : 0;
}

bool usmc_epoll_tracking(void)
{
	return ep_any();
}

int usmc_epoll_set_poll(int fd)
{
	int ready = -1;

	if (!ep_any())
		return -1;
	ep_lock();
	if (ep_has_smc_locked(fd, 0))
		ready = ep_set_ready(fd, true, 1);
	ep_unlock();
	return ready;
}

/*
 * The kernel's entry asks again for what ep_kernel_events says now: the
 * connection moved into shared memory or past the peer's FIN since it was
 * set.  A one-shot entry that fired for nothing is armed again, or the
 * next doorbell would wake no one.
 */
static void ep_kernel_sync(int epfd, struct usmc_sock *s, struct ep_entry *e, bool fired_for_nothing)
{
	struct epoll_event kev = e->ev;
	bool rearm = fired_for_nothing && (e->ev.events & EPOLLONESHOT) && !e->disarmed;

	kev.events = ep_kernel_events(s, &e->ev);
	if (kev.events == e->kernel && !rearm)
		return;
	if (usmc_sys.epoll_ctl(epfd, EPOLL_CTL_MOD, e->fd, &kev) == 0)
		e->kernel = kev.events;
}

/*
 * Replaces the kernel's word on usmc descriptors by theirs.  A connection
 * whose doorbell is read here goes on the ready list (ep_drained): the
 * next look asks its peer to ring again before it may leave.
 */
static int ep_filter(int epfd, struct epoll_event *events, int n)
{
	int out = 0;

	ep_lock();
	ep_filtering = epfd;
	for (int i = 0; i < n; i++) {
		struct ep_entry *e = ep_find_by_data(epfd, &events[i]);
		struct usmc_sock *s = e ? usmc_sock_active(e->fd) : NULL;

		/* The Accept's doorbell is no data: settle the handshake, then look. */
		if (s && s->state == SOCK_PROPOSED && (events[i].events & EPOLLIN)) {
			af_settle(s, 0);
			/*
			 * Settled in TCP: a refusal's marker that the settle read
			 * out of the stream is no data either.  A level-triggered
			 * reader takes a report for a promise that read() will not
			 * say EAGAIN (wrk drops the connection): what the socket
			 * has now, and a one-shot entry armed again if nothing.
			 */
			if (s->state == SOCK_PLAIN &&
			    !(events[i].events = (uint32_t)usmc_kernel_now(e->fd, (short)e->ev.events))) {
				ep_kernel_sync(epfd, s, e, true);
				continue;
			}
		}
		/* The kernel socket is writable; a full ring waiting for the answer is not. */
		if (s && usmc_proposed_ring_full(s)) {
			events[i].events &= ~(uint32_t)(EPOLLOUT | EPOLLWRNORM);
			if (!events[i].events)
				continue;
		}
		if (s && s->state == SOCK_SMC) {
			uint32_t kernel = events[i].events;

			/* What it reads puts the entry on the ready list (ep_drained). */
			usmc_conn_drain(s);
			events[i].events = ep_entry_events(s, e, true);
			/* TCP's urgent byte of a mark read already, or passed (usmc_poll.c). */
			if ((kernel & EPOLLPRI) && !(events[i].events & EPOLLPRI))
				usmc_conn_urgent_taken(s);
			ep_kernel_sync(epfd, s, e, !events[i].events);
			if (!events[i].events)
				continue;
		}
		events[out++] = events[i];
	}
	ep_filtering = -1;
	ep_unlock();
	return out;
}

/* Whether the set holds a connection still waiting for its answer (usmc_proposed_wait_ms). */
static bool ep_has_proposed(int epfd)
{
	bool found = false;

	if (!atomic_load_explicit(&usmc_socks_proposed, memory_order_relaxed))
		return false;
	ep_lock();
	/* Such an entry stays on the ready list (ep_sticky). */
	for (struct ep_entry *e = ep_ready_first(epfd); e && !found; e = e->rnext) {
		struct usmc_sock *s = e->epfd == epfd && !e->nested ? usmc_sock_active(e->fd) : NULL;

		found = s && s->state == SOCK_PROPOSED;
	}
	ep_unlock();
	return found;
}

/*
 * Settles the set's handshakes that wait for their answer, and reports
 * those it ended in TCP as the kernel finds them now (writable all along:
 * an edge-triggered entry would see no new edge).  How many events.
 */
static int ep_settle_proposed(int epfd, struct epoll_event *events, int maxevents)
{
	int n = 0;

	ep_lock();
	for (struct ep_entry *e = ep_ready_first(epfd); e && n < maxevents; e = e->rnext) {
		struct usmc_sock *s = e->epfd == epfd && !e->nested ? usmc_sock_active(e->fd) : NULL;
		bool pending;
		short now;

		if (!s || s->state != SOCK_PROPOSED || e->disarmed)
			continue;
		/* Settled with nothing on TCP to wake a wait: the answer came unannounced. */
		pending = usmc_kernel_now(e->fd, POLLIN) != 0;
		af_settle(s, 0);
		if (s->state != SOCK_PROPOSED && !pending)
			usmc_stats_add(USMC_STAT_HS_TIMER_WAKEUPS, 1);
		if (s->state == SOCK_PROPOSED || s->state == SOCK_SMC ||
		    !(now = usmc_kernel_now(e->fd, (short)e->ev.events)))
			continue;
		e->disarmed = (e->ev.events & EPOLLONESHOT) != 0;
		events[n].events = (uint32_t)now;
		events[n++].data = e->ev.data;
	}
	ep_unlock();
	return n;
}

/* Whether the set holds a connection in or toward shared memory, in it or in a set inside. */
static bool ep_has_smc_locked(int epfd, int depth)
{
	for (struct ep_entry *e = depth < EP_MAX_NESTING ? ep_first(epfd) : NULL; e; e = e->next) {
		if (e->nested ? ep_has_smc_locked(e->fd, depth + 1) : usmc_sock_active(e->fd) != NULL)
			return true;
	}
	return false;
}

/* If not, epoll is the kernel's alone.  surely: even if no entry was seen without the lock. */
static bool ep_has_smc(int epfd, bool surely)
{
	bool found;

	if (!surely && !ep_any())
		return false;
	ep_lock();
	found = ep_has_smc_locked(epfd, 0);
	ep_unlock();
	return found;
}

/* Room on the stack for the index of events ep_merge_kernel merges into. */
#define EP_INDEX_STACK 256

/*
 * What the kernel has ready now, beside the n events found in shared
 * memory: a wait that found connections ready would otherwise return them
 * without asking the kernel, and a connection that stays ready (a ring
 * with room, wanted level-triggered) would keep every other descriptor of
 * the set (pipes, timers, plain and fallback sockets) from ever being
 * reported.  The kernel's word goes through ep_filter as at any wait; a
 * connection or nested set reported already is reported once, with both
 * looks' events: found by its data in an index of the n, not by a walk
 * of them for each of the kernel's events.
 * Returns the events now in events[0..).
 */
static size_t ep_slot(uint64_t data, size_t size)
{
	return (size_t)((data * 0x9e3779b97f4a7c15ull) >> 32) & (size - 1);
}

/*
 * The index among events[0..n) of the event with data, or -1.  With
 * slots (events by data, open addressing, size a power of two over
 * 2 n), one look; without (no memory), a walk.
 */
static int ep_index_find(const int *slots, size_t size, const struct epoll_event *events, int n,
			 uint64_t data)
{
	if (!slots) {
		for (int j = 0; j < n; j++)
			if (events[j].data.u64 == data)
				return j;
		return -1;
	}
	for (size_t i = ep_slot(data, size);; i = (i + 1) & (size - 1))
		if (slots[i] < 0 || events[slots[i]].data.u64 == data)
			return slots[i];
}

static int *ep_index(int *stack, size_t *size, const struct epoll_event *events, int n)
{
	int *slots = stack;

	while (*size < 2 * (size_t)n)
		*size *= 2;
	if (*size > EP_INDEX_STACK && !(slots = malloc(*size * sizeof(*slots))))
		return NULL;
	memset(slots, 0xff, *size * sizeof(*slots));
	for (int j = 0; j < n; j++) {
		size_t i = ep_slot(events[j].data.u64, *size);

		while (slots[i] >= 0 && events[slots[i]].data.u64 != events[j].data.u64)
			i = (i + 1) & (*size - 1);
		if (slots[i] < 0)
			slots[i] = j;
	}
	return slots;
}

static int ep_merge_kernel(int epfd, struct epoll_event *events, int n, int maxevents)
{
	int k = usmc_sys.epoll_wait(epfd, events + n, maxevents - n, 0), kept = n;
	int stack[EP_INDEX_STACK], *slots = NULL;
	size_t size = 16;

	if (k <= 0)
		return n;
	k = ep_filter(epfd, events + n, k);
	if (k && n)
		slots = ep_index(stack, &size, events, n);
	for (int i = n; i < n + k; i++) {
		int j = n ? ep_index_find(slots, size, events, n, events[i].data.u64) : -1;

		/*
		 * Reported already: what the filter found now joins that report.
		 * An edge it used up (the ring moved since the first look) must
		 * be reported, or an edge-triggered waiter would never hear of it.
		 */
		if (j >= 0)
			events[j].events |= events[i].events;
		else
			events[kept++] = events[i];
	}
	if (slots != stack)
		free(slots);
	return kept;
}

struct ep_set {
	int epfd;
	struct epoll_event *events;
	int maxevents;
};

/*
 * A spin's look: the ready list, and the kernel's set, where the doorbells
 * of connections off the list come in.
 */
static int ep_check(void *arg)
{
	struct ep_set *set = arg;
	int n = ep_ready_now(set->epfd, set->events, set->maxevents, EP_LOOK_SPIN);

	return n < set->maxevents ? ep_merge_kernel(set->epfd, set->events, n, set->maxevents) : n;
}

/*
 * The kernel's wait on the set, and on this thread's watch of the holders'
 * bell if bell is one (usmc_bell.h): another holder's shutdown changes
 * what a connection of the set reports, and no doorbell says so.  A ring
 * ends the sleep with nothing, and the wait's next look finds the change.
 */
static int ep_sleep(int epfd, struct epoll_event *events, int maxevents, int ms, int bell)
{
	struct pollfd p[2] = { { .fd = epfd, .events = POLLIN }, { .fd = bell, .events = POLLIN } };
	int r;

	if (bell < 0)
		return usmc_sys.epoll_wait(epfd, events, maxevents, ms);
	r = usmc_sys.poll(p, 2, ms);
	if (r <= 0 || !(p[0].revents & POLLIN))
		return r < 0 ? -1 : 0;
	return usmc_sys.epoll_wait(epfd, events, maxevents, 0);
}

/*
 * Set when a wait's connections filled its events, so that the kernel was
 * not asked: the thread's next wait asks it first.
 */
static __thread bool kernel_owed;

int usmc_epoll_wait(int epfd, struct epoll_event *events, int maxevents, int timeout)
{
	struct timespec start;
	int n;

	clock_gettime(CLOCK_MONOTONIC, &start);
	if (!ep_has_smc(epfd, false)) {
		n = usmc_sys.epoll_wait(epfd, events, maxevents, timeout);
		/*
		 * Another thread may have added a connection in shared memory
		 * meanwhile (ep_ctl_ready): the kernel's word on it is a doorbell
		 * or a kick, and it has to be replaced by the connection's own.
		 * Under the lock, which the adding thread holds until the entry
		 * is tracked.
		 */
		if (n <= 0 || !ep_has_smc(epfd, true))
			return n;
		n = ep_filter(epfd, events, n);
		if (n || usmc_remaining_ms(timeout, &start) == 0)
			return n;
	}
	if (kernel_owed) {
		kernel_owed = false;
		n = ep_merge_kernel(epfd, events, 0, maxevents);
		if (n)
			return n;
	}
	for (;;) {
		int left = usmc_remaining_ms(timeout, &start), bell = -1;
		bool proposed, shared;

		ep_looked_reset();
		n = ep_ready_now(epfd, events, maxevents, EP_LOOK_FIRST);
		if (!n && timeout != 0)
			n = usmc_spin_ready(ep_check, &(struct ep_set){ epfd, events, maxevents });
		/* Before the last look: a shutdown by another holder after it rings the bell. */
		shared = ep_looked_shared();
		if (!n && timeout != 0)
			bell = usmc_bell_enter(shared);
		/*
		 * Only a look that armed registered this thread on the entries
		 * that stay on the ready list (ep_sticky), which it takes back.
		 * One that found nothing counted it among the set's sleepers.
		 */
		if (!n && (n = ep_ready_now(epfd, events, maxevents, EP_LOOK_ARM)))
			ep_armed_disarm(epfd);
		/* Shared since the first look (a fork meanwhile): looked at again, the bell watched. */
		if (!n && timeout != 0 && !shared && ep_looked_shared()) {
			ep_sleep_end(epfd);
			ep_armed_disarm(epfd);
			continue;
		}
		if (n) {
			usmc_wake_inexact();
			if (n < maxevents)
				n = ep_merge_kernel(epfd, events, n, maxevents);
			else
				kernel_owed = true;
			return n;
		}
		if (usmc_wake_inexact() && (left < 0 || left > 1))
			left = 1;
		proposed = ep_has_proposed(epfd);
		/* Armed: a doorbell wakes us, whoever reads it (usmc_wake.c, ep_drained). */
		n = ep_sleep(epfd, events, maxevents, proposed ? usmc_proposed_wait_ms(left) : left,
			     bell);
		ep_sleep_end(epfd);
		ep_armed_disarm(epfd);
		if (n < 0)
			return n;
		n = ep_filter(epfd, events, n);
		if (!n && proposed)
			n = ep_settle_proposed(epfd, events, maxevents);
		if (n || usmc_remaining_ms(timeout, &start) == 0)
			return n;
	}
}
