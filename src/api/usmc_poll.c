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
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>

#include "usmc.h"
#include "usmc_poll.h"
#include "usmc_sock.h"
#include "usmc_sys.h"

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
}

static long elapsed_ns(const struct timespec *start)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (now.tv_sec - start->tv_sec) * 1000000000 + (now.tv_nsec - start->tv_nsec);
}

/* What the peer last published, as words to compare: not validated, never trusted. */
struct peer_words {
	uint64_t prod, cons;
	uint32_t flags;
};

/* True if the peer published something since *w (which gets the new words). */
static bool peer_moved(const struct usmc_conn *conn, struct peer_words *w)
{
	struct peer_words now;

	if (!conn->rx_mapped)
		return true;
	now.prod = atomic_load_explicit(&conn->rx.cdc->prod, memory_order_relaxed);
	now.cons = atomic_load_explicit(&conn->rx.cdc->cons, memory_order_relaxed);
	now.flags = atomic_load_explicit(&conn->rx.cdc->flags, memory_order_relaxed);
	if (now.prod == w->prod && now.cons == w->cons && now.flags == w->flags)
		return false;
	*w = now;
	return true;
}

static bool spin_ready(struct usmc_sock *s, short events)
{
	return usmc_conn_revents(s, events) & (events | POLLERR | POLLHUP);
}

/*
 * Spinning pays while the peer runs on another CPU and answers within
 * the spin; with more busy threads than CPUs it takes the CPU the peer
 * needs.  So a waiter spins in full while most of its full spins found
 * the answer (a running average of their misses), and otherwise spins
 * only a few hundred nanoseconds, with one full spin in SPIN_PROBE to
 * see whether the peer answers again.  Short spins teach nothing: a
 * peer that sleeps too cannot answer within one, so they would keep
 * both ends short.  Busy polling (SO_BUSY_POLL, USMC_BUSY_POLL) spins as
 * long as asked.
 */
#define SPIN_MISS_LIMIT 128 /* of 256: spin in full while under half the spins miss */
#define SPIN_SHORT_SHIFT 6  /* a short spin: 1/64 of the full one */
#define SPIN_PROBE 64

/*
 * This wait's spin in ns; *full if it spins in full and teaches the
 * average.  A connection's first wait starts from what the spins of the
 * link group's earlier connections taught: short connections wait two or
 * three times each, too few to learn anything of their own, and the
 * same pair of processes on the same CPUs answers alike.
 */
static long spin_limit(struct usmc_spin_hist *h, _Atomic uint8_t *prior, int spin_us, bool *full)
{
	uint8_t waits = (uint8_t)(atomic_load_explicit(&h->waits, memory_order_relaxed) + 1);
	uint8_t misses;

	if (waits == 1 && prior)
		atomic_store_explicit(&h->misses, atomic_load_explicit(prior, memory_order_relaxed),
				      memory_order_relaxed);
	misses = atomic_load_explicit(&h->misses, memory_order_relaxed);
	atomic_store_explicit(&h->waits, waits, memory_order_relaxed);
	*full = spin_us > usmc_config()->spin_us || misses < SPIN_MISS_LIMIT ||
		waits % SPIN_PROBE == 0;
	return (long)spin_us * 1000 >> (*full ? 0 : SPIN_SHORT_SHIFT);
}

/* A running average: each full spin weighs 1/8, a miss as 256. */
static void spin_average(_Atomic uint8_t *avg, bool ready)
{
	int misses = atomic_load_explicit(avg, memory_order_relaxed);

	misses += ((ready ? 0 : 256) - misses) / 8;
	atomic_store_explicit(avg, (uint8_t)(misses > 255 ? 255 : misses), memory_order_relaxed);
}

static void spin_outcome(struct usmc_spin_hist *h, _Atomic uint8_t *prior, bool full, bool ready)
{
	if (!full)
		return;
	spin_average(&h->misses, ready);
	if (prior)
		spin_average(prior, ready);
}

/*
 * Between full looks (locks, cursor validation) the spin only compares
 * the peer's published words; a full look every 64 rounds catches what
 * changes on our side.  *in_time: the answer came within the limit.  One
 * that came later came while we were off the CPU, most often because the
 * peer needed this CPU to answer: that spin cost the peer its CPU, and
 * teaches a miss.
 */
static bool spin_for(struct usmc_sock *s, short events, long limit_ns, bool *in_time)
{
	struct peer_words w = { 0 };
	struct timespec start;
	long next_drain = 1000000;

	*in_time = true;
	peer_moved(s->conn, &w);
	if (spin_ready(s, events))
		return true;
	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		long ns;

		for (int i = 0; i < 64; i++) {
			if (peer_moved(s->conn, &w) && spin_ready(s, events))
				goto ready;
			cpu_relax();
		}
		if (spin_ready(s, events))
			goto ready;
		ns = elapsed_ns(&start);
		if (ns >= limit_ns)
			return false;
		/* A long busy poll still notices a peer that went away. */
		if (ns >= next_drain) {
			usmc_conn_drain(s);
			next_drain = ns + 1000000;
		}
	}
ready:
	*in_time = elapsed_ns(&start) <= limit_ns;
	return true;
}

bool usmc_spin_until_ready(struct usmc_sock *s, short events)
{
	int dir = (events & POLLOUT) ? 1 : 0;
	struct usmc_spin_hist *h = &s->spin[dir];
	_Atomic uint8_t *prior = s->conn->lgr ? &s->conn->lgr->spin_misses[dir] : NULL;
	int spin_us = usmc_spin_us(s);
	long limit_ns;
	bool full, ready, in_time;

	if (spin_us <= 0)
		return false;
	limit_ns = spin_limit(h, prior, spin_us, &full);
	ready = spin_for(s, events, limit_ns, &in_time);
	spin_outcome(h, prior, full, ready && in_time);
	return ready;
}

int usmc_wait_left(int timeo_ms, int64_t *deadline)
{
	int64_t now;

	if (timeo_ms <= 0)
		return -1;
	now = usmc_now_ms();
	if (!*deadline)
		*deadline = now + timeo_ms;
	if (now >= *deadline) {
		errno = EAGAIN;
		return 0;
	}
	return (int)(*deadline - now);
}

int usmc_conn_view(struct usmc_sock *s, struct conn_view *v)
{
	struct usmc_conn_shared *sh = s->conn->sh;

	/*
	 * The state first, then the cursors: the peer publishes its data
	 * before its flags, so a view never shows a flag without the data
	 * that came before it.
	 */
	v->flags = atomic_load(&sh->peer_flags);
	v->tcp_state = atomic_load(&sh->tcp_state);
	v->tcp_err = atomic_load(&sh->tcp_err);
	v->reset = atomic_load(&sh->reset);
	v->err = atomic_load(&sh->err);
	/* One refresh: both amounts and their cursors from the same moment. */
	return usmc_conn_amounts(s, v);
}

short usmc_conn_view_revents(const struct usmc_sock *s, const struct conn_view *v, short events)
{
	const uint32_t done = CDC_PEER_DONE_WRITING | CDC_PEER_CONN_CLOSED;
	short rev = 0;

	if (v->avail && v->avail >= (uint64_t)s->rcvlowat)
		rev |= POLLIN | POLLRDNORM;
	if (v->flags & done)
		rev |= POLLIN | POLLRDNORM | POLLRDHUP;
	if (v->space || (v->flags & (CDC_PEER_CONN_CLOSED | CDC_PEER_CONN_ABORT)) || s->shut_wr)
		rev |= POLLOUT | POLLWRNORM;
	if (s->shut_rd)
		rev |= POLLIN | POLLRDNORM | POLLRDHUP;
	if (v->tcp_state != CDC_TCP_OPEN)
		rev |= POLLIN | POLLRDNORM | POLLRDHUP | POLLOUT | POLLWRNORM;
	/* The kernel socket was reset (our data reached a closed peer): TCP_CLOSE. */
	if (v->tcp_state == CDC_TCP_RESET) {
		rev |= POLLHUP;
		if (v->tcp_err && !v->reset)
			rev |= POLLERR;
	}
	if (v->reset) {
		rev |= POLLIN | POLLRDNORM | POLLRDHUP | POLLOUT | POLLHUP;
		if (v->err)
			rev |= POLLERR;
	}
	if ((v->flags & done) && s->shut_wr)
		rev |= POLLHUP;
	return rev & (events | POLLERR | POLLHUP);
}

short usmc_conn_revents(struct usmc_sock *s, short events)
{
	struct conn_view v;

	if (usmc_conn_view(s, &v) < 0)
		return POLLIN | POLLOUT | POLLERR | POLLHUP;
	return usmc_conn_view_revents(s, &v, events);
}

/*
 * Before the server's answer, what we write waits in our ring: once it is
 * full, the socket is not writable, whatever the kernel socket says, until
 * the answer comes (on the link group's channel, which poll watches).
 */
static bool proposed_ring_full(const struct usmc_sock *s)
{
	return s->state == SOCK_PROPOSED && s->conn->sh->tx_prod >= s->conn->tx.size;
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
		/* Writable once connected and while our ring has room. */
		if (proposed_ring_full(s))
			kernel &= ~(POLLOUT | POLLWRNORM);
		return kernel & (POLLOUT | POLLWRNORM | POLLERR | POLLHUP) & (events | POLLERR | POLLHUP);
	default:
		return kernel;
	}
}

int usmc_remaining_ms(int timeout, const struct timespec *start)
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
			usmc_conn_arm(socks[i], fds[i].events);
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
int usmc_spin_ready(int (*check)(void *), void *arg)
{
	/* One history for the process: poll sets change from call to call. */
	static struct usmc_spin_hist hist;
	int spin_us = usmc_spin_us(NULL), n = 0;
	struct timespec start;
	long limit_ns;
	bool full;

	if (spin_us <= 0)
		return 0;
	limit_ns = spin_limit(&hist, NULL, spin_us, &full);
	clock_gettime(CLOCK_MONOTONIC, &start);
	do {
		n = check(arg);
		if (n)
			break;
		cpu_relax();
	} while (elapsed_ns(&start) < limit_ns);
	/* An answer found late came while we were off the CPU: see spin_for. */
	spin_outcome(&hist, NULL, full, n != 0 && elapsed_ns(&start) <= limit_ns);
	return n;
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

/*
 * What to ask the kernel socket of a shared-memory connection: doorbells
 * while it is open; after the peer's FIN, which stays readable, only the
 * errors and hang-ups the kernel always reports.
 */
static short kernel_events(struct usmc_sock *s)
{
	return atomic_load(&s->conn->sh->tcp_state) == CDC_TCP_OPEN ? POLLIN : 0;
}

/* Adds the channel of lgr to the kernel's set once; its index, or -1. */
static nfds_t watch_chan(struct pollfd *k, nfds_t nfds, nfds_t *nk, int chan)
{
	if (chan < 0)
		return (nfds_t)-1;
	for (nfds_t j = nfds; j < *nk; j++)
		if (k[j].fd == chan)
			return j;
	k[*nk] = (struct pollfd){ .fd = chan, .events = POLLIN };
	return (*nk)++;
}

static int poll_kernel(struct pollfd *fds, nfds_t nfds, struct usmc_sock **socks, int timeout)
{
	/* One allocation: the kernel's set, and per entry past nfds the link group it takes in for. */
	struct pollfd *k = calloc(1, (nfds * 2 + 1) * sizeof(*k) + (nfds + 1) * sizeof(void *));
	struct usmc_lgr **taken = k ? (struct usmc_lgr **)(k + nfds * 2 + 1) : NULL;
	nfds_t nk = nfds, j;
	int rc, ready = 0;

	if (!k)
		return usmc_sys.poll(fds, nfds, timeout);
	for (nfds_t i = 0; i < nfds; i++) {
		k[i] = fds[i];
		k[i].revents = 0;
		if (socks[i] && socks[i]->state == SOCK_SMC) {
			k[i].events = kernel_events(socks[i]);
			/* Answers to the process's other Proposals: usmc_core.h, lgr_watched_chan. */
			j = watch_chan(k, nfds, &nk, lgr_watched_chan(socks[i]->conn->lgr));
			if (j != (nfds_t)-1 && !taken[j - nfds])
				taken[j - nfds] = socks[i]->conn->lgr;
		} else if (socks[i] && socks[i]->state == SOCK_PROPOSED && socks[i]->conn->lgr) {
			watch_chan(k, nfds, &nk, socks[i]->conn->lgr->chan);
		}
		if (socks[i] && proposed_ring_full(socks[i]))
			k[i].events &= ~(POLLOUT | POLLWRNORM);
	}
	rc = usmc_sys.poll(k, nk, timeout);
	/* Awake: no doorbell is kept for us any more, and we read those we see. */
	for (nfds_t i = 0; i < nfds; i++)
		if (socks[i] && socks[i]->state == SOCK_SMC)
			usmc_conn_disarm(socks[i]);
	if (rc < 0) {
		free(k);
		return -1;
	}
	for (j = nfds; j < nk; j++)
		if (taken[j - nfds] && k[j].revents)
			lgr_take_in(taken[j - nfds], k[j].revents);
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

static int poll_sockets(struct pollfd *fds, nfds_t nfds, int timeout);

/*
 * Epoll sets among the descriptors answer for the usmc sockets they hold:
 * those with something to report are readable now, whatever the kernel
 * says of them.
 */
int usmc_poll(struct pollfd *fds, nfds_t nfds, int timeout)
{
	/* Per descriptor: -1 no set of ours, 0 a set armed, 1 a set ready. */
	signed char stack[16], *set_state = stack;
	int sets = 0, rc;

	/* The common case: no epoll set holds a usmc socket, nothing to look at. */
	if (!usmc_epoll_tracking())
		return poll_sockets(fds, nfds, timeout);
	if (nfds > 16 && !(set_state = calloc(nfds, sizeof(*set_state))))
		return poll_sockets(fds, nfds, timeout);
	for (nfds_t i = 0; i < nfds; i++) {
		set_state[i] = fds[i].fd >= 0 && !usmc_sock_active(fds[i].fd) &&
				       (fds[i].events & POLLIN)
			       ? (signed char)usmc_epoll_set_poll(fds[i].fd)
			       : -1;
		sets += set_state[i] == 1;
	}
	rc = poll_sockets(fds, nfds, sets ? 0 : timeout);
	for (nfds_t i = 0; i < nfds; i++) {
		if (set_state[i] >= 0)
			usmc_epoll_set_disarm(fds[i].fd);
		if (rc < 0 || set_state[i] != 1)
			continue;
		rc += !fds[i].revents;
		fds[i].revents |= POLLIN;
	}
	if (set_state != stack)
		free(set_state);
	return rc;
}

static int poll_sockets(struct pollfd *fds, nfds_t nfds, int timeout)
{
	struct usmc_sock *stack[16], **socks = stack;
	struct timespec start;
	bool any = false;
	int rc;

	if (nfds > 16 && !(socks = calloc(nfds, sizeof(*socks))))
		return usmc_sys.poll(fds, nfds, timeout);
	for (nfds_t i = 0; i < nfds; i++) {
		socks[i] = fds[i].fd >= 0 ? usmc_sock_waited(fds[i].fd) : NULL;
		any |= socks[i] != NULL;
	}
	if (!any) {
		rc = usmc_sys.poll(fds, nfds, timeout);
		goto out;
	}
	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		int left = usmc_remaining_ms(timeout, &start);

		rc = poll_usmc_pass(fds, nfds, socks, false);
		if (!rc && timeout != 0)
			rc = usmc_spin_ready(poll_check, &(struct poll_set){ fds, nfds, socks });
		if (!rc)
			rc = poll_usmc_pass(fds, nfds, socks, true);
		if (rc) {
			/* Merge what the other descriptors have, without waiting. */
			usmc_wake_inexact();
			rc = poll_kernel(fds, nfds, socks, 0);
			break;
		}
		/* Armed: a doorbell wakes us, whoever reads it (usmc_wake.c). */
		if (usmc_wake_inexact() && (left < 0 || left > 1))
			left = 1;
		rc = poll_kernel(fds, nfds, socks, left);
		if (rc != 0 || left == 0)
			break;
		if (usmc_remaining_ms(timeout, &start) == 0) {
			rc = 0;
			break;
		}
	}
out:
	if (socks != stack)
		free(socks);
	return rc;
}
