// SPDX-License-Identifier: MIT
/*
 * poll over usmc sockets (a connection's own readiness, and the spin
 * before a sleep: usmc_wait.c).
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
#include "usmc_bell.h"
#include "usmc_channel.h"
#include "usmc_close.h"
#include "usmc_config.h"
#include "usmc_epoll.h"
#include "usmc_fdtab.h"
#include "usmc_holders.h"
#include "usmc_kick.h"
#include "usmc_listen.h"
#include "usmc_listener.h"
#include "usmc_poll.h"
#include "usmc_settle.h"
#include "usmc_sock.h"
#include "usmc_sys.h"
#include "usmc_wait.h"
#include "usmc_wake.h"

/*
 * Before the server's answer, what we write waits in our ring: once it is
 * full, the socket is not writable, whatever the kernel socket says, until
 * the answer comes (on the link group's channel, which poll watches).
 */
bool usmc_proposed_ring_full(const struct usmc_sock *s)
{
	return s->state == SOCK_PROPOSED &&
	       s->conn->sh->tx_prod >= cdc_lap_capacity(&s->conn->sh->tx_laps, 0);
}

short usmc_kernel_now(int fd, short events)
{
	struct pollfd p = { .fd = fd, .events = events };

	return usmc_sys.poll(&p, 1, 0) == 1 ? p.revents : 0;
}

/* Readiness of one usmc descriptor that needs more than the kernel's word. */
static short sock_revents(struct usmc_sock *s, short events, short kernel)
{
	bool proposed = s->state == SOCK_PROPOSED;

	if (proposed)
		af_settle(s, 0);
	/*
	 * Settled in TCP just now: a refusal's marker that the settle read
	 * out of the stream made the kernel say POLLIN, and is no data
	 * (usmc_epoll.c, ep_filter).
	 */
	if (proposed && s->state == SOCK_PLAIN && (kernel & POLLIN))
		kernel = usmc_kernel_now(s->fd, events);
	switch ((int)s->state) {
	case SOCK_SMC:
		return usmc_conn_revents(s, events);
	case SOCK_PROPOSED:
		/* Writable once connected and while our ring has room. */
		if (usmc_proposed_ring_full(s))
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
 * errors and hang-ups the kernel always reports.  And POLLPRI if asked:
 * TCP's urgent byte of an urgent write (cdc_ring_urgent).
 */
static short kernel_events(struct usmc_sock *s, short events)
{
	return (short)((atomic_load(&s->conn->sh->tcp_state) == CDC_TCP_OPEN ? POLLIN : 0) |
		       ((events & POLLPRI) && usmc_conn_urgent_watched() ? POLLPRI : 0));
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

/* Whether another process may hold one of the connections polled: its shutdown rings. */
static bool poll_shared(struct usmc_sock **socks, nfds_t nfds)
{
	for (nfds_t i = 0; i < nfds; i++)
		if (socks[i] && socks[i]->state == SOCK_SMC && usmc_holders_shared(socks[i]->conn))
			return true;
	return false;
}

static int poll_kernel(struct pollfd *fds, nfds_t nfds, struct usmc_sock **socks, int timeout,
		       int kick, int bell)
{
	/*
	 * One allocation: the kernel's set (the program's entries, a channel
	 * per entry at most, the kick), per entry past nfds the link group it
	 * takes in for, and per entry whether its server was told we wait.
	 */
	struct pollfd *k = calloc(1, (nfds * 2 + 2) * sizeof(*k) + (nfds + 2) * sizeof(void *) + nfds);
	struct usmc_lgr **taken = k ? (struct usmc_lgr **)(k + nfds * 2 + 2) : NULL;
	bool *told = k ? (bool *)(taken + nfds + 2) : NULL;
	nfds_t nk = nfds, j;
	int rc, err, ready = 0;

	if (!k)
		return usmc_sys.poll(fds, nfds, timeout);
	for (nfds_t i = 0; i < nfds; i++) {
		k[i] = fds[i];
		k[i].revents = 0;
		if (socks[i] && socks[i]->state == SOCK_SMC) {
			k[i].events = kernel_events(socks[i], fds[i].events);
			/* Answers to the process's other Proposals: usmc_core.h, lgr_watched_chan. */
			j = watch_chan(k, nfds, &nk, lgr_watched_chan(socks[i]->conn->lgr));
			if (j != (nfds_t)-1 && !taken[j - nfds])
				taken[j - nfds] = socks[i]->conn->lgr;
		} else if (socks[i] && socks[i]->state == SOCK_PROPOSED && socks[i]->conn->lgr) {
			watch_chan(k, nfds, &nk, socks[i]->conn->lgr->chan);
			/*
			 * The channel wakes this wait for the answer: the Accept
			 * needs no doorbell, nor the first data if POLLIN is
			 * asked, which sock_revents looks for once settled.
			 */
			if (timeout != 0) {
				af_settle_wait_begin(socks[i], fds[i].events & POLLIN);
				told[i] = true;
			}
		}
		if (socks[i] && usmc_proposed_ring_full(socks[i]))
			k[i].events &= ~(POLLOUT | POLLWRNORM);
	}
	/* A shutdown by another thread wakes the wait (usmc_kick.c), by another process too (usmc_bell.c). */
	if (kick >= 0)
		k[nk++] = (struct pollfd){ .fd = kick, .events = POLLIN };
	if (bell >= 0)
		k[nk++] = (struct pollfd){ .fd = bell, .events = POLLIN };
	rc = usmc_sys.poll(k, nk, timeout);
	err = errno;
	for (nfds_t i = 0; i < nfds; i++) {
		if (!told[i])
			continue;
		af_settle_wait_end(socks[i]);
		/* An Accept already in is settled: its first data is ours to look at. */
		if (rc < 0 && socks[i]->state == SOCK_PROPOSED)
			af_settle_if_answered(socks[i]);
	}
	/* The poll's own error (EINTR) is what the program gets, not a look's. */
	errno = err;
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
			/* TCP's urgent byte of a mark read already, or passed: no longer news. */
			if (socks[i]->state == SOCK_SMC && (k[i].revents & POLLPRI) &&
			    !(fds[i].revents & POLLPRI))
				usmc_conn_urgent_taken(socks[i]);
		}
		ready += fds[i].revents != 0;
	}
	free(k);
	return ready;
}

static int poll_sockets(struct pollfd *fds, nfds_t nfds, int timeout);

/* How long a wait on socks may sleep: see usmc_proposed_wait_ms. */
static int proposed_slice(struct usmc_sock **socks, nfds_t nfds, int left)
{
	for (nfds_t i = 0; i < nfds; i++)
		if (socks[i] && socks[i]->state == SOCK_PROPOSED)
			return usmc_proposed_wait_ms(left);
	return left;
}

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
	/* Per entry its socket, and past nfds those held in shared memory (usmc_close.h). */
	struct usmc_sock *stack[32], **socks = stack, **held;
	struct timespec start;
	bool any = false;
	int rc;

	if (nfds > 16 && !(socks = calloc(nfds * 2, sizeof(*socks))))
		return usmc_sys.poll(fds, nfds, timeout);
	held = socks + nfds;
	for (nfds_t i = 0; i < nfds; i++) {
		socks[i] = fds[i].fd >= 0 ? usmc_sock_waited(fds[i].fd) : NULL;
		any |= socks[i] != NULL;
	}
	if (!any) {
		rc = usmc_sys.poll(fds, nfds, timeout);
		goto out;
	}
	/* A close by another thread meanwhile leaves each connection to this call. */
	for (nfds_t i = 0; i < nfds; i++) {
		held[i] = timeout != 0 && socks[i] &&
				  (socks[i]->state == SOCK_SMC || socks[i]->state == SOCK_PROPOSED)
			  ? socks[i]
			  : NULL;
		if (held[i])
			usmc_sock_hold(held[i]);
	}
	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		int left = usmc_remaining_ms(timeout, &start), kick = -1, bell = -1;

		rc = poll_usmc_pass(fds, nfds, socks, false);
		if (!rc && timeout != 0)
			rc = usmc_spin_ready(poll_check, &(struct poll_set){ fds, nfds, socks });
		/* Counted before the arming look: a shutdown by another thread kicks the sleep. */
		if (timeout != 0) {
			kick = usmc_kick_enter();
			bell = usmc_bell_enter(poll_shared(socks, nfds));
		}
		if (!rc)
			rc = poll_usmc_pass(fds, nfds, socks, true);
		if (rc) {
			usmc_kick_leave(kick);
			/* Merge what the other descriptors have, without waiting. */
			usmc_wake_inexact();
			rc = poll_kernel(fds, nfds, socks, 0, -1, -1);
			break;
		}
		/* Armed: a doorbell wakes us, whoever reads it (usmc_wake.c). */
		if (usmc_wake_inexact() && (left < 0 || left > 1))
			left = 1;
		rc = poll_kernel(fds, nfds, socks, proposed_slice(socks, nfds, left), kick, bell);
		usmc_kick_leave(kick);
		if (rc != 0 || left == 0)
			break;
		if (usmc_remaining_ms(timeout, &start) == 0) {
			rc = 0;
			break;
		}
	}
	for (nfds_t i = 0; i < nfds; i++) {
		if (!held[i])
			continue;
		/* Closed meanwhile: the kernel's poll finds the number gone when it looks again. */
		if (rc >= 0 && (atomic_load(&held[i]->calls) & USMC_CALLS_CLOSED)) {
			rc += !fds[i].revents;
			fds[i].revents = POLLNVAL;
		}
		usmc_sock_release(held[i]);
	}
out:
	if (socks != stack)
		free(socks);
	return rc;
}
