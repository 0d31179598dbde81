// SPDX-License-Identifier: MIT
/*
 * Readiness and waiting.
 *
 * The kernel socket of a shared-memory connection carries only doorbells,
 * so its own readiness is a hint: readable means "look at the rings".
 * These functions turn the hint into TCP's exact answer: POLLIN when the
 * peer's ring has data or the peer is done, POLLOUT when ours has room.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>

#include "usmc.h"
#include "usmc_sock.h"
#include "usmc_sys.h"

int usmc_conn_drain(struct usmc_sock *s)
{
	struct usmc_conn *conn = s->conn;
	int err = 0, state;

	if (atomic_load(&conn->sh->tcp_state) != CDC_TCP_OPEN)
		return atomic_load(&conn->sh->tcp_state);
	state = cdc_drain_bells(s->fd, &err);
	if (state == CDC_TCP_OPEN)
		return state;
	if (state == CDC_TCP_ALIEN) {
		/* Data the peer sent past the rings is lost: say so, loudly. */
		usmc_conn_abort(s);
		return CDC_TCP_OPEN;
	}
	atomic_store(&conn->sh->tcp_err, err);
	atomic_store(&conn->sh->tcp_state, state);
	/*
	 * An orderly close may still end in a TCP reset (doorbells left
	 * unread): the peer's flags, set before its close, tell the two apart.
	 */
	if (usmc_conn_refresh(conn) == 0 &&
	    !(atomic_load(&conn->sh->peer_flags) & (CDC_PEER_DONE_WRITING | CDC_PEER_CONN_CLOSED)) &&
	    (state == CDC_TCP_RESET || conn->sh->tx_cons_seen < conn->sh->tx_prod))
		/* Gone without closing, leaving our data unread: TCP would reset. */
		usmc_conn_set_reset(conn, state == CDC_TCP_RESET && err ? err : ECONNRESET);
	return state;
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
}

static long elapsed_us(const struct timespec *start)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (now.tv_sec - start->tv_sec) * 1000000 + (now.tv_nsec - start->tv_nsec) / 1000;
}

bool usmc_spin_until_ready(struct usmc_sock *s, short events)
{
	int spin_us = usmc_spin_us(s);
	struct timespec start;
	long next_drain = 1000;

	if (spin_us <= 0)
		return false;
	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		long us;

		for (int i = 0; i < 64; i++) {
			if (usmc_conn_revents(s, events) & (events | POLLERR | POLLHUP))
				return true;
			cpu_relax();
		}
		us = elapsed_us(&start);
		if (us >= spin_us)
			return false;
		/* A long busy poll still notices a peer that went away. */
		if (us >= next_drain) {
			usmc_conn_drain(s);
			next_drain = us + 1000;
		}
	}
}

int usmc_wait_bell(struct usmc_sock *s, int timeout_ms)
{
	struct pollfd p = { .fd = s->fd, .events = POLLIN };
	/* A doorbell another thread drained costs at most this long. */
	int slice = timeout_ms < 0 || timeout_ms > 200 ? 200 : timeout_ms;
	int rc = usmc_sys.poll(&p, 1, slice);

	if (rc < 0)
		return -1;
	if (rc > 0)
		usmc_conn_drain(s);
	return 0;
}

short usmc_conn_revents(struct usmc_sock *s, short events)
{
	struct usmc_conn *conn = s->conn;
	uint64_t avail = 0, space = 0;
	uint32_t pf;
	short rev = 0;

	if (usmc_rx_avail(s, &avail) < 0 || usmc_tx_space(s, &space) < 0)
		return POLLIN | POLLOUT | POLLERR | POLLHUP;
	pf = atomic_load(&conn->sh->peer_flags);
	if (avail)
		rev |= POLLIN | POLLRDNORM;
	if (pf & (CDC_PEER_DONE_WRITING | CDC_PEER_CONN_CLOSED))
		rev |= POLLIN | POLLRDNORM | POLLRDHUP;
	if (space || (pf & (CDC_PEER_CONN_CLOSED | CDC_PEER_CONN_ABORT)) || s->shut_wr)
		rev |= POLLOUT | POLLWRNORM;
	if (atomic_load(&conn->sh->tcp_state) != CDC_TCP_OPEN)
		rev |= POLLIN | POLLRDNORM | POLLRDHUP | POLLOUT;
	if (atomic_load(&conn->sh->reset)) {
		rev |= POLLIN | POLLRDNORM | POLLRDHUP | POLLOUT | POLLHUP;
		if (atomic_load(&conn->sh->err))
			rev |= POLLERR;
	}
	if ((pf & (CDC_PEER_DONE_WRITING | CDC_PEER_CONN_CLOSED)) && s->shut_wr)
		rev |= POLLHUP;
	return rev & (events | POLLERR | POLLHUP);
}

/* Tells the peer we will sleep, so that its next cursor update rings. */
static void conn_arm(struct usmc_sock *s, short events)
{
	struct usmc_conn *conn = s->conn;

	usmc_conn_drain(s);
	if (events & POLLIN)
		atomic_fetch_add_explicit(&conn->tx.cdc->want_data, 1, memory_order_relaxed);
	if (events & POLLOUT)
		atomic_fetch_add_explicit(&conn->tx.cdc->want_space, 1, memory_order_relaxed);
	atomic_thread_fence(memory_order_seq_cst);
}

/* Readiness of one usmc descriptor that needs more than the kernel's word. */
static short sock_revents(struct usmc_sock *s, short events, short kernel)
{
	if (s->state == SOCK_PROPOSED)
		af_resolve(s, false);
	switch ((int)s->state) {
	case SOCK_SMC:
		return usmc_conn_revents(s, events);
	case SOCK_PROPOSED:
		/* Writable once connected: the data waits in our ring. */
		return kernel & (POLLOUT | POLLWRNORM | POLLERR | POLLHUP) & (events | POLLERR | POLLHUP);
	default:
		return kernel;
	}
}

static int remaining_ms(int timeout, const struct timespec *start)
{
	struct timespec now;
	long ms;

	if (timeout < 0)
		return -1;
	clock_gettime(CLOCK_MONOTONIC, &now);
	ms = (now.tv_sec - start->tv_sec) * 1000 + (now.tv_nsec - start->tv_nsec) / 1000000;
	return ms >= timeout ? 0 : (int)(timeout - ms);
}

/* One pass over the usmc descriptors: how many are ready without waiting. */
static int poll_usmc_pass(struct pollfd *fds, nfds_t nfds, struct usmc_sock **socks, bool arm)
{
	int ready = 0;

	for (nfds_t i = 0; i < nfds; i++) {
		if (!socks[i])
			continue;
		if (arm && socks[i]->state == SOCK_SMC)
			conn_arm(socks[i], fds[i].events);
		fds[i].revents = socks[i]->state == SOCK_SMC || socks[i]->state == SOCK_PROPOSED
					 ? sock_revents(socks[i], fds[i].events, 0)
					 : 0;
		ready += fds[i].revents != 0;
	}
	return ready;
}

/*
 * A short spin before sleeping: a busy peer answers within microseconds.
 * check() returns how many descriptors are ready; the spin ends with it.
 */
static int spin_ready(int (*check)(void *), void *arg)
{
	int spin_us = usmc_spin_us(NULL), n;
	struct timespec start;

	if (spin_us <= 0)
		return 0;
	clock_gettime(CLOCK_MONOTONIC, &start);
	do {
		n = check(arg);
		if (n)
			return n;
		cpu_relax();
	} while (elapsed_us(&start) < spin_us);
	return 0;
}

struct poll_set {
	struct pollfd *fds;
	nfds_t nfds;
	struct usmc_sock **socks;
};

static int poll_check(void *arg)
{
	struct poll_set *set = arg;

	return poll_usmc_pass(set->fds, set->nfds, set->socks, false);
}

static int poll_kernel(struct pollfd *fds, nfds_t nfds, struct usmc_sock **socks, int timeout)
{
	struct pollfd *k = calloc(nfds * 2 + 1, sizeof(*k));
	nfds_t nk = nfds;
	int rc, ready = 0;

	if (!k)
		return usmc_sys.poll(fds, nfds, timeout);
	for (nfds_t i = 0; i < nfds; i++) {
		k[i] = fds[i];
		k[i].revents = 0;
		if (socks[i] && socks[i]->state == SOCK_SMC)
			k[i].events = POLLIN;
		else if (socks[i] && socks[i]->state == SOCK_PROPOSED && socks[i]->conn->lgr)
			k[nk++] = (struct pollfd){ .fd = socks[i]->conn->lgr->chan, .events = POLLIN };
	}
	rc = usmc_sys.poll(k, nk, timeout);
	if (rc < 0) {
		free(k);
		return -1;
	}
	for (nfds_t i = 0; i < nfds; i++) {
		if (!socks[i]) {
			fds[i].revents = k[i].revents;
		} else {
			if (socks[i]->state == SOCK_SMC && k[i].revents)
				usmc_conn_drain(socks[i]);
			fds[i].revents = sock_revents(socks[i], fds[i].events, k[i].revents);
		}
		ready += fds[i].revents != 0;
	}
	free(k);
	return ready;
}

int usmc_poll(struct pollfd *fds, nfds_t nfds, int timeout)
{
	struct usmc_sock *stack[16], **socks = stack;
	struct timespec start;
	bool any = false;
	int rc;

	if (nfds > 16 && !(socks = calloc(nfds, sizeof(*socks))))
		return usmc_sys.poll(fds, nfds, timeout);
	for (nfds_t i = 0; i < nfds; i++) {
		socks[i] = fds[i].fd >= 0 ? usmc_sock_active(fds[i].fd) : NULL;
		any |= socks[i] != NULL;
	}
	if (!any) {
		rc = usmc_sys.poll(fds, nfds, timeout);
		goto out;
	}
	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		int left = remaining_ms(timeout, &start);

		rc = poll_usmc_pass(fds, nfds, socks, false);
		if (!rc && timeout != 0)
			rc = spin_ready(poll_check, &(struct poll_set){ fds, nfds, socks });
		if (!rc)
			rc = poll_usmc_pass(fds, nfds, socks, true);
		if (rc) {
			/* Merge what the other descriptors have, without waiting. */
			rc = poll_kernel(fds, nfds, socks, 0);
			break;
		}
		rc = poll_kernel(fds, nfds, socks, left < 0 || left > 200 ? 200 : left);
		if (rc != 0 || left == 0)
			break;
		if (remaining_ms(timeout, &start) == 0) {
			rc = 0;
			break;
		}
	}
out:
	if (socks != stack)
		free(socks);
	return rc;
}

/*
 * epoll: the kernel's set holds the descriptors; we keep beside it which
 * usmc descriptors were added with which events, to answer for them.
 * An edge-triggered entry reports when the connection's state moved since
 * its last report: the doorbell that made the kernel's edge may have been
 * drained already.
 */
struct ep_edge {
	uint64_t rx_prod;
	uint64_t tx_cons;
	uint32_t flags;
	int tcp_state;
	bool reset;
};

static bool ep_edge_moved(const struct usmc_conn *conn, struct ep_edge *last)
{
	struct ep_edge now = {
		.rx_prod = conn->sh->rx_prod_seen,
		.tx_cons = conn->sh->tx_cons_seen,
		.flags = atomic_load(&conn->sh->peer_flags),
		.tcp_state = atomic_load(&conn->sh->tcp_state),
		.reset = atomic_load(&conn->sh->reset),
	};
	bool moved = memcmp(&now, last, sizeof(now)) != 0;

	*last = now;
	return moved;
}

struct ep_entry {
	int epfd;
	int fd;
	struct epoll_event ev;
	struct ep_edge last; /* edge-triggered: the state last reported */
	struct ep_entry *next;
};

static struct ep_entry *ep_entries;
static pthread_mutex_t ep_lock = PTHREAD_MUTEX_INITIALIZER;

/* The events to report for an entry now: none, or what is ready. */
static uint32_t ep_entry_events(struct usmc_sock *s, struct ep_entry *e)
{
	short rev = usmc_conn_revents(s, (short)e->ev.events);

	if (!rev)
		return 0;
	if ((e->ev.events & EPOLLET) && !ep_edge_moved(s->conn, &e->last))
		return 0;
	return (uint32_t)rev;
}

static void ep_track(int epfd, int op, int fd, const struct epoll_event *ev)
{
	struct ep_entry **pp, *e;

	pthread_mutex_lock(&ep_lock);
	for (pp = &ep_entries; (e = *pp); pp = &e->next)
		if (e->epfd == epfd && e->fd == fd)
			break;
	if (op == EPOLL_CTL_DEL && e) {
		*pp = e->next;
		free(e);
	} else if (op != EPOLL_CTL_DEL && ev) {
		if (!e && (e = calloc(1, sizeof(*e)))) {
			e->epfd = epfd;
			e->fd = fd;
			e->next = ep_entries;
			ep_entries = e;
		}
		if (e)
			e->ev = *ev;
	}
	pthread_mutex_unlock(&ep_lock);
}

int usmc_epoll_ctl(int epfd, int op, int fd, struct epoll_event *event)
{
	struct usmc_sock *s = usmc_sock_get(fd);
	struct epoll_event kev;

	if (!s)
		return usmc_sys.epoll_ctl(epfd, op, fd, event);
	if (event) {
		/* Doorbells arrive as POLLIN, whatever the program asked for. */
		kev = *event;
		kev.events |= EPOLLIN;
		if (usmc_sys.epoll_ctl(epfd, op, fd, &kev) < 0)
			return -1;
	} else if (usmc_sys.epoll_ctl(epfd, op, fd, event) < 0) {
		return -1;
	}
	ep_track(epfd, op, fd, event);
	return 0;
}

/* usmc descriptors with something to report now; armed first if asked. */
static int ep_ready_now(int epfd, struct epoll_event *events, int maxevents, bool arm)
{
	int n = 0;

	pthread_mutex_lock(&ep_lock);
	for (struct ep_entry *e = ep_entries; e && n < maxevents; e = e->next) {
		struct usmc_sock *s;
		uint32_t rev;

		if (e->epfd != epfd || !(s = usmc_sock_active(e->fd)) || s->state != SOCK_SMC)
			continue;
		if (arm)
			conn_arm(s, (short)e->ev.events);
		rev = ep_entry_events(s, e);
		if (!rev)
			continue;
		events[n].events = rev;
		events[n].data = e->ev.data;
		n++;
	}
	pthread_mutex_unlock(&ep_lock);
	return n;
}

static struct ep_entry *ep_find_by_data(int epfd, const struct epoll_event *ev)
{
	for (struct ep_entry *e = ep_entries; e; e = e->next)
		if (e->epfd == epfd && !memcmp(&e->ev.data, &ev->data, sizeof(ev->data)))
			return e;
	return NULL;
}

/* Replaces the kernel's word on usmc descriptors by theirs. */
static int ep_filter(int epfd, struct epoll_event *events, int n)
{
	int out = 0;

	pthread_mutex_lock(&ep_lock);
	for (int i = 0; i < n; i++) {
		struct ep_entry *e = ep_find_by_data(epfd, &events[i]);
		struct usmc_sock *s = e ? usmc_sock_active(e->fd) : NULL;

		/* The Accept's doorbell is no data: settle the handshake, then look. */
		if (s && s->state == SOCK_PROPOSED && (events[i].events & EPOLLIN))
			af_resolve(s, false);
		if (s && s->state == SOCK_SMC) {
			usmc_conn_drain(s);
			events[i].events = ep_entry_events(s, e);
			if (!events[i].events)
				continue;
		}
		events[out++] = events[i];
	}
	pthread_mutex_unlock(&ep_lock);
	return out;
}

struct ep_set {
	int epfd;
	struct epoll_event *events;
	int maxevents;
};

static int ep_check(void *arg)
{
	struct ep_set *set = arg;

	return ep_ready_now(set->epfd, set->events, set->maxevents, false);
}

/* Whether the set holds a connection in or toward shared memory; if not, epoll is the kernel's. */
static bool ep_has_smc(int epfd)
{
	bool found = false;

	pthread_mutex_lock(&ep_lock);
	for (struct ep_entry *e = ep_entries; e && !found; e = e->next) {
		struct usmc_sock *s;

		found = e->epfd == epfd && (s = usmc_sock_active(e->fd));
	}
	pthread_mutex_unlock(&ep_lock);
	return found;
}

int usmc_epoll_wait(int epfd, struct epoll_event *events, int maxevents, int timeout)
{
	struct timespec start;
	int n;

	if (!ep_has_smc(epfd))
		return usmc_sys.epoll_wait(epfd, events, maxevents, timeout);
	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		int left = remaining_ms(timeout, &start);

		n = ep_ready_now(epfd, events, maxevents, false);
		if (!n && timeout != 0)
			n = spin_ready(ep_check, &(struct ep_set){ epfd, events, maxevents });
		if (!n)
			n = ep_ready_now(epfd, events, maxevents, true);
		if (n)
			return n;
		n = usmc_sys.epoll_wait(epfd, events, maxevents, left < 0 || left > 200 ? 200 : left);
		if (n < 0)
			return n;
		n = ep_filter(epfd, events, n);
		if (n || left == 0 || remaining_ms(timeout, &start) == 0)
			return n;
	}
}
