// SPDX-License-Identifier: MIT
/*
 * Waiting on a connection: what it is ready for, taken from one view of
 * its state, and the spin before a sleep (the sleep itself: usmc_wake.c).
 */
#include <errno.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "usmc_config.h"
#include "usmc_conn.h"
#include "usmc_proc.h"
#include "usmc_rx.h"
#include "usmc_sock.h"
#include "usmc_stats.h"
#include "usmc_wait.h"
#include "usmc_wake.h"

int usmc_spin_us(const struct usmc_sock *s)
{
	const struct usmc_config *c = usmc_config();
	int us = c->spin_us > c->busy_poll_us ? c->spin_us : c->busy_poll_us;

	return s && s->busy_poll_us > us ? s->busy_poll_us : us;
}

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
 * A full spin while every CPU has work takes a CPU that another task
 * waits for, as the kernel's busy polling would were it not to stop at
 * need_resched(): often the peer, or a thread of our own that has the
 * answer to deliver.  The spin then stays short, and the wait sleeps.
 * Measured spins cannot tell this: the spinner holds its CPU until its
 * slice ends, its spin succeeds, and the task it kept waiting pays a
 * scheduler tick (BENCHMARKS.md, "Spinning on a busy machine").  Every
 * CPU having work is not enough: a nice 19 batch job on each leaves us
 * the CPU whenever we want it, and spinning costs it nothing that
 * matters.  So the spin also stays short only while this thread is
 * itself preempted, by tasks that weigh as much as it does.
 */
static bool spin_takes_cpu(void)
{
	if (!proc_cpus_busy() || !proc_thread_preempted())
		return false;
	usmc_stats_add(USMC_STAT_SPINS_SHORTENED, 1);
	return true;
}

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
	*full = spin_us > usmc_config()->spin_us ||
		((misses < SPIN_MISS_LIMIT || waits % SPIN_PROBE == 0) && !spin_takes_cpu());
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

/*
 * What spins taught across one-connection link groups (a shared
 * listener's, usmc_queue.c), which live too short to teach their own
 * connection's first wait anything: the process's connections to and
 * from shared listeners answer alike.
 */
static _Atomic uint8_t oneshot_spin_misses[2];
/*
 * And across the connections a forked child took from its parent, whose
 * link group is the parent's: the child's copy of what it taught would
 * teach nobody, and the parent, which never waits on what it hands on, no
 * child.  A server that forks a child per connection (dnsmasq, inetd)
 * waits once per child, mostly for a client that has yet to write: such a
 * wait starts short, and a child that waits often learns its own
 * connection's peer by its probes.
 */
static _Atomic uint8_t forked_spin_misses[2] = { SPIN_MISS_LIMIT, SPIN_MISS_LIMIT };

bool usmc_spin_until_ready(struct usmc_sock *s, short events)
{
	int dir = (events & POLLOUT) ? 1 : 0;
	struct usmc_spin_hist *h = &s->spin[dir];
	struct usmc_lgr *lgr = s->conn->lgr;
	_Atomic uint8_t *prior = !lgr                            ? NULL
				 : lgr->owner_pid != usmc_pid() ? &forked_spin_misses[dir]
				 : lgr->oneshot                 ? &oneshot_spin_misses[dir]
								: &lgr->spin_misses[dir];
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
	 * before its TCP socket ends.  The peer's flags come with the
	 * cursors, as the refresh latched them (usmc_conn_amounts): a flag
	 * the peer published before we armed our wait, and rang for no one,
	 * must be in the view that decides the sleep.
	 */
	v->tcp_state = atomic_load(&sh->tcp_state);
	v->tcp_err = atomic_load(&sh->tcp_err);
	v->reset = atomic_load(&sh->reset);
	v->err = atomic_load(&sh->err);
	v->shut = (s->shut_rd ? CONN_SHUT_RD : 0) | (s->shut_wr ? CONN_SHUT_WR : 0) |
		  atomic_load(&sh->shut);
	/* One refresh: both amounts and their cursors from the same moment. */
	if (usmc_conn_amounts(s, v) < 0)
		return -1;
	v->end_shows = ((v->flags & (CDC_PEER_DONE_WRITING | CDC_PEER_CONN_CLOSED)) ||
			v->tcp_state != CDC_TCP_OPEN) &&
		       usmc_conn_end_fits(s, v->avail);
	return 0;
}

/* tcp_rmem's default, what a TCP socket's receive buffer starts with. */
#define TCP_RCVBUF_DEFAULT (128u << 10)

/*
 * Whether the peer's end may show yet, as TCP's FIN would: it follows the
 * data, and TCP's peer sends it only once what is still unread fits the
 * receive buffer.  A ring may hold more unread than that (it grows to
 * megabytes while its reader lags), and a program that takes POLLHUP or
 * POLLRDHUP for the end of what it will read would then lose more than
 * it could over TCP (stunnel drops what it has not read on POLLHUP).
 */
bool usmc_conn_end_fits(const struct usmc_sock *s, uint64_t avail)
{
	uint64_t rcvbuf = s->rcvbuf > 0 ? 2 * (uint64_t)s->rcvbuf : TCP_RCVBUF_DEFAULT;

	/* TCP grows the buffer to twice SO_RCVLOWAT: a wait for that much can end. */
	if (s->rcvlowat > 0 && 2 * (uint64_t)s->rcvlowat > rcvbuf)
		rcvbuf = 2 * (uint64_t)s->rcvlowat;
	return avail <= rcvbuf;
}

short usmc_conn_view_revents(const struct usmc_sock *s, const struct conn_view *v, short events)
{
	bool done = v->end_shows && (v->flags & (CDC_PEER_DONE_WRITING | CDC_PEER_CONN_CLOSED));
	uint64_t readable = v->avail - v->urg_hidden;
	short rev = v->urg_valid ? POLLPRI : 0;
	bool shut_rd = sock_shut(s, CONN_SHUT_RD), shut_wr = sock_shut(s, CONN_SHUT_WR);

	if (readable && readable >= (uint64_t)s->rcvlowat)
		rev |= POLLIN | POLLRDNORM;
	if (done)
		rev |= POLLIN | POLLRDNORM | POLLRDHUP;
	if (v->space || (v->flags & (CDC_PEER_CONN_CLOSED | CDC_PEER_CONN_ABORT)) || shut_wr)
		rev |= POLLOUT | POLLWRNORM;
	if (shut_rd)
		rev |= POLLIN | POLLRDNORM | POLLRDHUP;
	if (v->tcp_state != CDC_TCP_OPEN)
		rev |= POLLIN | POLLRDNORM | POLLOUT | POLLWRNORM | (v->end_shows ? POLLRDHUP : 0);
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
	/* Both directions shut, by the peer's end or our own shutdown: TCP's SHUTDOWN_MASK. */
	if ((done || shut_rd) && shut_wr)
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
