// SPDX-License-Identifier: MIT
/*
 * epoll over usmc sockets.
 *
 * The kernel's set holds the descriptors; beside it we keep which usmc
 * descriptors were added with which events, to answer for them, as
 * usmc_poll answers for its descriptors: the kernel socket of a
 * shared-memory connection carries only doorbells.  An epoll set inside
 * another is kept too, so that the outer set answers for the usmc sockets
 * of the inner one.
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
#include "usmc_core.h"
#include "usmc_epoll_table.h"
#include "usmc_poll.h"
#include "usmc_sock.h"
#include "usmc_sys.h"

/*
 * A wait looks only at the entries that may have something to report.  An
 * entry found with nothing, once armed under its own key, is quiet: the
 * peer rings for whatever it does next, and its doorbell wakes the kernel's
 * wait, so that the entry is looked at again only then (ep_filter), or
 * after a change of our own (usmc_epoll_fd_changed).  Its registration as
 * a sleeper stays until then, so that no other reader takes that
 * doorbell.  So a wait costs what its ready entries cost, not what all of
 * them do.
 */
static pthread_mutex_t ep_lock = PTHREAD_MUTEX_INITIALIZER;

/*
 * The events to report for an entry now: none, or what is ready.  With
 * consume, the report counts: an edge is used up, a one-shot entry fires.
 */
/* Whether the connection moved between two views, as an edge sees it. */
static bool ep_edge_moved(const struct conn_view *a, const struct conn_view *b)
{
	return a->rx_prod != b->rx_prod || a->tx_cons != b->tx_cons || a->flags != b->flags ||
	       a->tcp_state != b->tcp_state || a->reset != b->reset;
}

static uint32_t ep_entry_events(struct usmc_sock *s, struct ep_entry *e, bool consume)
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

/* The entry is looked at again: its sleeper's registration ends. */
static void ep_unquiet(struct ep_entry *e, struct usmc_sock *s)
{
	if (!e->quiet)
		return;
	e->quiet = false;
	ep_table_set_active(e, true);
	if (s && s->conn) {
		usmc_conn_disarm_as(s, e->key);
		atomic_fetch_sub_explicit(&s->ep_quiet, 1, memory_order_relaxed);
	}
}

static void ep_quiet(struct ep_entry *e, struct usmc_sock *s)
{
	e->quiet = true;
	ep_table_set_active(e, false);
	atomic_fetch_add_explicit(&s->ep_quiet, 1, memory_order_relaxed);
}

/*
 * A quiet entry's registration keeps the doorbells past what it saw from
 * every other reader, for as long as it is quiet: another wait on the
 * same connection (a blocking read, poll, a second set) would find the
 * TCP socket readable with doorbells it may not read, and spin until the
 * set's next wait.  So such a wait first lets the quiet entries of this
 * process go, those of sets no thread waits on now: they are active
 * again, looked at by their set's next wait, and no wait on their set is
 * left asleep on the doorbells they held (a thread counts as waiting from
 * the start of usmc_epoll_wait, before any arming).  Entries of another
 * process (a forked child's copies of its parent's among them, whose
 * registrations are the parent's), or of a set a thread waits on, keep
 * theirs.  Called with ep_lock.
 */
static void ep_release_locked(struct usmc_sock *s)
{
	if (!atomic_load_explicit(&s->ep_quiet, memory_order_relaxed))
		return;
	for (struct ep_entry *e = ep_table_all(); e; e = e->all_next)
		if (e->quiet && e->pid == usmc_pid() && !ep_table_waited(e->epfd) &&
		    usmc_sock_active(e->fd) == s)
			ep_unquiet(e, s);
}

void usmc_epoll_release(struct usmc_sock *s)
{
	if (!atomic_load_explicit(&s->ep_quiet, memory_order_relaxed))
		return;
	usmc_mutex_lock(&ep_lock, LOCK_EPOLL);
	ep_release_locked(s);
	usmc_mutex_unlock(&ep_lock, LOCK_EPOLL);
}

static void ep_track_locked(int epfd, int op, int fd, const struct epoll_event *ev, bool nested,
			    uint32_t kernel)
{
	struct ep_entry *e = ep_table_find(epfd, fd);

	if (e)
		ep_unquiet(e, usmc_sock_active(fd));
	if (op == EPOLL_CTL_DEL && e) {
		ep_table_remove(e);
	} else if (op != EPOLL_CTL_DEL && ev) {
		if (!e)
			e = ep_table_add(epfd, fd);
		if (e) {
			ep_table_set_event(e, ev);
			ep_table_set_active(e, true);
			e->nested = nested;
			e->kernel = kernel;
			e->fresh = true;
			e->disarmed = false;
		}
	}
}

static void ep_track(int epfd, int op, int fd, const struct epoll_event *ev, bool nested,
		     uint32_t kernel)
{
	usmc_mutex_lock(&ep_lock, LOCK_EPOLL);
	ep_track_locked(epfd, op, fd, ev, nested, kernel);
	usmc_mutex_unlock(&ep_lock, LOCK_EPOLL);
}

void usmc_epoll_fd_closed(int fd, int other_fd)
{
	struct ep_entry *e, *next;

	/* Every close of the program passes here: most find no entry at all. */
	if (ep_table_empty())
		return;
	usmc_mutex_lock(&ep_lock, LOCK_EPOLL);
	/* The kernel drops an entry with its file's last descriptor, a set with its own. */
	for (e = ep_table_of_fd(fd); e; e = next) {
		next = e->fd_next;
		if (e->fd != fd)
			continue;
		if (other_fd < 0) {
			ep_unquiet(e, usmc_sock_active(fd));
			ep_table_remove(e);
		} else {
			ep_table_move_fd(e, other_fd);
		}
	}
	if (ep_table_has_set(fd)) {
		for (e = ep_table_all(); e; e = next) {
			next = e->all_next;
			if (e->epfd != fd)
				continue;
			ep_unquiet(e, usmc_sock_active(e->fd));
			ep_table_remove(e);
		}
	}
	usmc_mutex_unlock(&ep_lock, LOCK_EPOLL);
}

void usmc_epoll_fd_changed(int fd)
{
	struct usmc_sock *s;

	if (ep_table_empty() || !(s = usmc_sock_active(fd)))
		return;
	usmc_mutex_lock(&ep_lock, LOCK_EPOLL);
	/* Under any of the socket's descriptors: rare, a walk of all will do. */
	for (struct ep_entry *e = ep_table_all(); e; e = e->all_next)
		if (e->quiet && usmc_sock_active(e->fd) == s)
			ep_unquiet(e, s);
	usmc_mutex_unlock(&ep_lock, LOCK_EPOLL);
}

static bool is_epoll_set(int fd)
{
	char path[64], link[32];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = readlink(path, link, sizeof(link) - 1);
	if (n <= 0)
		return false;
	link[n] = 0;
	return !strcmp(link, "anon_inode:[eventpoll]");
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
 * full ring to its listener thread's wait).  So the peer is asked to ring
 * at its next change, and an entry ready now asks the kernel for EPOLLOUT
 * once, which the kernel socket always has: the sleeper wakes and looks,
 * and ep_kernel_sync takes the EPOLLOUT off again.
 */
static bool ep_ctl_ready(struct usmc_sock *s, const struct epoll_event *event)
{
	short events = (short)(event->events & (EPOLLIN | EPOLLOUT | EPOLLRDHUP));

	if (s->state != SOCK_SMC)
		return false;
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
	if (event) {
		kev = *event;
		kev.events = ep_kernel_events(s, event);
		if (op != EPOLL_CTL_DEL && ep_ctl_ready(s, event))
			kev.events |= EPOLLOUT;
	}
	/* A waiter the kernel wakes for this entry finds it tracked (ep_filter). */
	usmc_mutex_lock(&ep_lock, LOCK_EPOLL);
	rc = usmc_sys.epoll_ctl(epfd, op, fd, event ? &kev : event);
	if (rc == 0)
		ep_track_locked(epfd, op, fd, event, false, event ? kev.events : 0);
	usmc_mutex_unlock(&ep_lock, LOCK_EPOLL);
	return rc;
}

/* The kernel lets epoll sets nest this deep. */
#define EP_MAX_NESTING 5

static bool ep_has_smc_locked(int epfd, int depth);

/*
 * Whether a set holds a usmc socket with something to report, looking
 * into the sets inside it; nothing is consumed.  Called with ep_lock.
 */
static bool ep_set_ready(int epfd, bool arm, int depth)
{
	bool ready = false;

	for (struct ep_entry *e = ep_table_all(); e && depth < EP_MAX_NESTING; e = e->all_next) {
		struct usmc_sock *s;

		if (e->epfd != epfd)
			continue;
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
static void ep_set_disarm(int epfd, int depth)
{
	for (struct ep_entry *e = ep_table_all(); e && depth < EP_MAX_NESTING; e = e->all_next) {
		struct usmc_sock *s;

		if (e->epfd != epfd)
			continue;
		if (e->nested)
			ep_set_disarm(e->fd, depth + 1);
		else if ((s = usmc_sock_active(e->fd)) && s->state == SOCK_SMC)
			usmc_conn_disarm(s);
	}
}

void usmc_epoll_set_disarm(int fd)
{
	usmc_mutex_lock(&ep_lock, LOCK_EPOLL);
	ep_set_disarm(fd, 0);
	usmc_mutex_unlock(&ep_lock, LOCK_EPOLL);
}

/* An entry that is a set inside this one: readable when the inner set has something. */
static uint32_t ep_nested_events(struct ep_entry *e, bool arm)
{
	return ep_set_ready(e->fd, arm, 1) ? e->ev.events & (EPOLLIN | EPOLLRDNORM) : 0;
}

bool usmc_epoll_tracking(void)
{
	return !ep_table_empty();
}

int usmc_epoll_set_poll(int fd)
{
	int ready = -1;

	if (ep_table_empty())
		return -1;
	usmc_mutex_lock(&ep_lock, LOCK_EPOLL);
	if (ep_has_smc_locked(fd, 0))
		ready = ep_set_ready(fd, true, 1);
	usmc_mutex_unlock(&ep_lock, LOCK_EPOLL);
	return ready;
}

/*
 * usmc descriptors with something to report now; armed first if asked.
 * Only the active entries are looked at: those found quiet wait for their
 * doorbell, and those of sockets usmc no longer answers for (plain TCP, a
 * listener) leave the list for good.  Entries the round reported already
 * (from the kernel's events) are passed over; those it reports now go to
 * the end of the list.
 */
static int ep_ready_now(int epfd, struct epoll_event *events, int maxevents, bool arm,
			uint32_t round)
{
	struct ep_entry *e, *next;
	int n = 0;

	usmc_mutex_lock(&ep_lock, LOCK_EPOLL);
	for (e = ep_table_active(); e && n < maxevents; e = next) {
		struct usmc_sock *s;
		bool registered;
		uint32_t rev;

		next = e->act_next;
		if (e->epfd != epfd || e->round == round)
			continue;
		if (e->nested) {
			rev = ep_nested_events(e, arm);
		} else {
			s = usmc_sock_active(e->fd);
			/* A fired one-shot entry waits for its EPOLL_CTL_MOD, which puts it back. */
			if (!s || s->state == SOCK_PLAIN || s->state == SOCK_LISTEN || e->disarmed) {
				ep_table_set_active(e, false);
				continue;
			}
			if (s->state != SOCK_SMC)
				continue;
			if (arm)
				ep_release_locked(s);
			registered = arm && usmc_conn_arm_as(s, (short)e->ev.events, e->key);
			rev = ep_entry_events(s, e, true);
			/* Armed and nothing to report: quiet until its doorbell. */
			if (registered && !rev)
				ep_quiet(e, s);
			else if (arm)
				usmc_conn_disarm_as(s, e->key);
		}
		if (!rev)
			continue;
		events[n].events = rev;
		events[n].data = e->ev.data;
		n++;
		e->round = round;
		ep_table_requeue(e);
	}
	usmc_mutex_unlock(&ep_lock, LOCK_EPOLL);
	return n;
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
 * Replaces the kernel's word on usmc descriptors by theirs.  An entry the
 * round reported already is not reported twice; its doorbell is read all
 * the same.
 */
static int ep_filter(int epfd, struct epoll_event *events, int n, uint32_t round)
{
	int out = 0;

	usmc_mutex_lock(&ep_lock, LOCK_EPOLL);
	for (int i = 0; i < n; i++) {
		struct ep_entry *e = ep_table_by_data(epfd, &events[i]);
		struct usmc_sock *s = e && !e->nested ? usmc_sock_active(e->fd) : NULL;

		/* The Accept's doorbell is no data: settle the handshake, then look. */
		if (s && s->state == SOCK_PROPOSED && (events[i].events & EPOLLIN))
			af_resolve(s, false);
		if (s && s->state == SOCK_SMC) {
			ep_unquiet(e, s);
			usmc_conn_drain(s);
			if (e->round == round)
				continue;
			events[i].events = ep_entry_events(s, e, true);
			ep_kernel_sync(epfd, s, e, !events[i].events);
			if (!events[i].events)
				continue;
		} else if (e && e->nested && e->round == round) {
			continue;
		}
		if (e)
			e->round = round;
		events[out++] = events[i];
	}
	usmc_mutex_unlock(&ep_lock, LOCK_EPOLL);
	return out;
}

/*
 * What the kernel has ready now, without waiting, filtered.  A wait that
 * finds usmc descriptors ready looks at the kernel's too, as the kernel's
 * epoll_wait would report both: a quiet entry is looked at again only
 * through the doorbell the kernel reports, and a set with a connection
 * that is always ready (writable, say) would otherwise never call the
 * kernel, and never see that doorbell, nor any other descriptor's event.
 */
static int ep_kernel_now(int epfd, struct epoll_event *events, int maxevents, uint32_t round)
{
	int n = usmc_sys.epoll_wait(epfd, events, maxevents, 0);

	return n > 0 ? ep_filter(epfd, events, n, round) : 0;
}

/* A round of a wait: what it reports, each entry once. */
static uint32_t ep_new_round(void)
{
	static uint32_t rounds;
	uint32_t r;

	usmc_mutex_lock(&ep_lock, LOCK_EPOLL);
	if (!(r = ++rounds))
		r = ++rounds;
	usmc_mutex_unlock(&ep_lock, LOCK_EPOLL);
	return r;
}

struct ep_set {
	int epfd;
	struct epoll_event *events;
	int maxevents;
	uint32_t round;
};

static int ep_check(void *arg)
{
	struct ep_set *set = arg;

	return ep_ready_now(set->epfd, set->events, set->maxevents, false, set->round);
}

/* Whether the set holds a connection in or toward shared memory, in it or in a set inside. */
static bool ep_has_smc_locked(int epfd, int depth)
{
	for (struct ep_entry *e = ep_table_all(); e && depth < EP_MAX_NESTING; e = e->all_next) {
		if (e->epfd != epfd)
			continue;
		if (e->nested ? ep_has_smc_locked(e->fd, depth + 1) : usmc_sock_active(e->fd) != NULL)
			return true;
	}
	return false;
}

/*
 * If the set has no entry of ours, epoll is the kernel's alone.  surely:
 * look under the lock even if the table looked empty without it.
 */
static bool ep_has_smc(int epfd, bool surely)
{
	bool found;

	if (!surely && ep_table_empty())
		return false;
	usmc_mutex_lock(&ep_lock, LOCK_EPOLL);
	found = ep_table_has_set(epfd);
	usmc_mutex_unlock(&ep_lock, LOCK_EPOLL);
	return found;
}

/*
 * Set when a wait's usmc descriptors filled its events and left the
 * kernel's unread: the thread's next wait reads the kernel's first, so
 * that neither side waits for the other for more than one call.
 */
static __thread bool kernel_owed;

static int ep_wait(int epfd, struct epoll_event *events, int maxevents, int timeout)
{
	struct timespec start;
	int n;

	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		int left = usmc_remaining_ms(timeout, &start);
		uint32_t round = ep_new_round();
		bool kernel_first = kernel_owed && maxevents > 0;

		n = 0;
		if (kernel_first) {
			kernel_owed = false;
			n = ep_kernel_now(epfd, events, maxevents, round);
		}
		n += ep_ready_now(epfd, events + n, maxevents - n, false, round);
		if (!n && timeout != 0)
			n = usmc_spin_ready(ep_check, &(struct ep_set){ epfd, events, maxevents, round });
		if (!n)
			n = ep_ready_now(epfd, events, maxevents, true, round);
		if (n) {
			if (!kernel_first && n < maxevents)
				n += ep_kernel_now(epfd, events + n, maxevents - n, round);
			else if (!kernel_first)
				kernel_owed = true;
			usmc_wake_inexact();
			return n;
		}
		if (usmc_wake_inexact() && (left < 0 || left > 1))
			left = 1;
		/* Armed: a doorbell wakes us, whoever reads it (usmc_wake.c). */
		n = usmc_sys.epoll_wait(epfd, events, maxevents, left);
		if (n < 0)
			return n;
		n = ep_filter(epfd, events, n, round);
		if (n || usmc_remaining_ms(timeout, &start) == 0)
			return n;
	}
}

/* The set counts as waited on for the whole call, before any arming: ep_release_locked. */
static void ep_waiting(int epfd, bool in)
{
	usmc_mutex_lock(&ep_lock, LOCK_EPOLL);
	ep_table_waiting(epfd, in);
	usmc_mutex_unlock(&ep_lock, LOCK_EPOLL);
}

int usmc_epoll_wait(int epfd, struct epoll_event *events, int maxevents, int timeout)
{
	struct timespec start;
	int n, err;

	clock_gettime(CLOCK_MONOTONIC, &start);
	if (!ep_has_smc(epfd, false)) {
		n = usmc_sys.epoll_wait(epfd, events, maxevents, timeout);
		/*
		 * Another thread may have added a connection in shared memory
		 * meanwhile (ep_ctl_ready): the kernel's word on it is a doorbell
		 * or a kick, and it has to be replaced by the connection's own.
		 * Under the lock, which the adding thread holds until the entry
		 * is tracked.  A wait the filter leaves empty goes on with what
		 * is left of its timeout.
		 */
		if (n <= 0 || !ep_has_smc(epfd, true))
			return n;
		n = ep_filter(epfd, events, n, ep_new_round());
		if (n || (timeout = usmc_remaining_ms(timeout, &start)) == 0)
			return n;
	}
	ep_waiting(epfd, true);
	n = ep_wait(epfd, events, maxevents, timeout);
	err = errno;
	ep_waiting(epfd, false);
	errno = err;
	return n;
}
