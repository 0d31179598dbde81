// SPDX-License-Identifier: MIT
/*
 * A doorbell read by someone else than the epoll set that waits for it.
 * The set waits (level-triggered EPOLLOUT) for room in a full ring; the
 * peer reads the ring empty a moment later and rings.  Meanwhile another
 * thread (or, with --fork, a forked process holding the socket too) reads
 * the socket again and again, finding nothing: each such read drains the
 * doorbells it finds.  The wait must report the room all the same, every
 * round: a connection off its set's ready list whose doorbell a reader
 * drained, before the kernel's epoll saw it, was never looked at again.
 * With --exclusive the set's entry is EPOLLEXCLUSIVE, which the kernel
 * lets no one modify; with --dup the set holds a dup of the descriptor
 * that the reads use; with --et it is edge-triggered, and a wait that
 * finds no new edge after each report takes it off the ready list, so
 * that the fork (made after the first round) finds it there.  Every
 * byte is checked by its place in the stream.
 *
 *   epoll_drained [--fork] [--exclusive] [--dup] [--et] [--rounds N]
 */
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#define WAIT_MS 5000

static int a, c, go[2];
static _Atomic bool stop;
static uint64_t wrote, read_total, earlier; /* earlier: bytes of connections replaced */

static uint8_t pattern(uint64_t off)
{
	return (uint8_t)(off * 131 + 7);
}

/* Reads a again and again: nothing is ever there, but each read drains the doorbells. */
static void drain_loop(bool (*done)(void))
{
	char b;

	while (!done()) {
		ssize_t n = usmc_read(a, &b, 1);

		CHECK(n < 0 && (errno == EAGAIN || errno == EINTR));
	}
}

static bool thread_done(void)
{
	return atomic_load(&stop);
}

static void *drainer(void *arg)
{
	(void)arg;
	drain_loop(thread_done);
	return NULL;
}

static int stop_pipe[2];

static bool child_done(void)
{
	char b;

	return read(stop_pipe[0], &b, 1) != -1 || errno != EAGAIN;
}

/* Busy for us microseconds: the doorbell lands anywhere in the wait, its look as its sleep. */
static void pause_us(unsigned us)
{
	struct timespec t0, t;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	do
		clock_gettime(CLOCK_MONOTONIC, &t);
	while ((t.tv_sec - t0.tv_sec) * 1000000 + (t.tv_nsec - t0.tv_nsec) / 1000 < us);
}

/* Edges of the rest of the peer's reading, then none: the entry is off the ready list. */
static void no_edge_left(int ep)
{
	struct epoll_event got;

	for (int i = 0; usmc_epoll_wait(ep, &got, 1, 0); i++)
		CHECK(i < 8);
}

/* The connection is replaced by a new one, in the set (the consumer waits for its go). */
static void new_conn(int ep, int lfd, uint16_t port, struct epoll_event *ev)
{
	CHECK(read_total == wrote);
	CHECK(usmc_epoll_ctl(ep, EPOLL_CTL_DEL, a, NULL) == 0);
	CHECK(usmc_close(a) == 0 && usmc_close(c) == 0);
	h_smc_pair(lfd, port, &c, &a);
	CHECK(usmc_fcntl(a, F_SETFL, usmc_fcntl(a, F_GETFL) | O_NONBLOCK) == 0);
	earlier += wrote;
	wrote = read_total = 0;
	CHECK(usmc_epoll_ctl(ep, EPOLL_CTL_ADD, a, ev) == 0);
	no_edge_left(ep);
}

static void child_stop(pid_t child)
{
	int st;

	CHECK(write(stop_pipe[1], "x", 1) == 1);
	CHECK(waitpid(child, &st, 0) == child && WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

/*
 * The peer: told how much is in the ring, lets the wait go on for a
 * while, a different while each round, then reads it all.
 */
static void *consumer(void *arg)
{
	uint64_t upto;
	uint8_t buf[4096];
	unsigned round = 0;

	(void)arg;
	while (read(go[0], &upto, sizeof(upto)) == sizeof(upto) && upto) {
		pause_us(round++ * 7 % 120);
		while (read_total < upto) {
			size_t want = upto - read_total < sizeof(buf) ? upto - read_total : sizeof(buf);
			ssize_t n = usmc_read(c, buf, want);

			CHECK(n > 0);
			for (ssize_t i = 0; i < n; i++)
				CHECK(buf[i] == pattern(read_total + (uint64_t)i));
			read_total += (uint64_t)n;
		}
	}
	return NULL;
}

/* Writes until the ring is full; how many bytes went. */
static void fill(void)
{
	uint8_t buf[4096];

	for (;;) {
		ssize_t n;

		for (size_t i = 0; i < sizeof(buf); i++)
			buf[i] = pattern(wrote + i);
		n = usmc_write(a, buf, sizeof(buf));
		if (n < 0) {
			CHECK(errno == EAGAIN);
			return;
		}
		wrote += (uint64_t)n;
	}
}

int main(int argc, char **argv)
{
	struct epoll_event ev = { .events = EPOLLOUT, .data.u64 = 7 };
	int rounds = 400, ep, lfd;
	bool forked = false, dup_fd = false;
	pthread_t drain_t, cons_t;
	pid_t child = -1;
	uint16_t port;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--fork"))
			forked = true;
		else if (!strcmp(argv[i], "--dup"))
			dup_fd = true;
		else if (!strcmp(argv[i], "--et"))
			ev.events |= EPOLLET;
		else if (!strcmp(argv[i], "--exclusive"))
			ev.events |= EPOLLEXCLUSIVE;
		else if (!strcmp(argv[i], "--rounds") && i + 1 < argc)
			rounds = atoi(argv[++i]);
	}
	signal(SIGPIPE, SIG_IGN);
	lfd = h_listen(AF_INET, H_USMC, &port);
	h_smc_pair(lfd, port, &c, &a);
	CHECK(usmc_fcntl(a, F_SETFL, usmc_fcntl(a, F_GETFL) | O_NONBLOCK) == 0);
	CHECK((ep = epoll_create1(EPOLL_CLOEXEC)) >= 0 && pipe(go) == 0 && pipe(stop_pipe) == 0);
	CHECK(fcntl(stop_pipe[0], F_SETFL, O_NONBLOCK) == 0);
	CHECK(pthread_create(&cons_t, NULL, consumer, NULL) == 0);
	for (int r = 0; r < rounds; r++) {
		struct epoll_event got;
		int n;

		/*
		 * With --et, a new connection each round, its entry off the
		 * ready list when the fork comes: a connection once shared is
		 * looked at by every wait after (its count of holders may stay
		 * high), and only its first fork tells.  A new child each round.
		 */
		if (r >= 1 && forked && (ev.events & EPOLLET))
			new_conn(ep, lfd, port, &ev);
		if (r >= 1 && forked) {
			CHECK((child = fork()) >= 0);
			if (child == 0) {
				/* A parent whose check failed leaves no child reading for ever. */
				CHECK(prctl(PR_SET_PDEATHSIG, SIGKILL) == 0 && getppid() != 1);
				drain_loop(child_done);
				CHECK(usmc_close(a) == 0 && usmc_close(c) == 0 && usmc_close(lfd) == 0);
				_exit(0);
			}
		} else if (r == 1) {
			CHECK(pthread_create(&drain_t, NULL, drainer, NULL) == 0);
		}
		fill();
		/*
		 * Added full: an entry ready when added asks its kernel entry for
		 * EPOLLOUT once (usmc_epoll_ctl), which an EPOLLEXCLUSIVE one
		 * would keep for good, and every wait would wake at once.
		 */
		if (r == 0)
			CHECK(usmc_epoll_ctl(ep, EPOLL_CTL_ADD, dup_fd ? usmc_dup(a) : a, &ev) == 0);
		CHECK(write(go[1], &wrote, sizeof(wrote)) == sizeof(wrote));
		n = usmc_epoll_wait(ep, &got, 1, WAIT_MS);
		if (n != 1)
			fprintf(stderr, "round %d: no EPOLLOUT within %d ms, %llu of %llu bytes read\n",
				r, WAIT_MS, (unsigned long long)read_total,
				(unsigned long long)wrote);
		CHECK(n == 1 && got.data.u64 == 7 && (got.events & EPOLLOUT));
		/* The room reported is the peer's reading: wait for all of it before the next fill. */
		while (read_total < wrote)
			usleep(100);
		if (ev.events & EPOLLET)
			no_edge_left(ep);
		if (r >= 1 && forked)
			child_stop(child);
	}
	CHECK(write(go[1], &(uint64_t){ 0 }, sizeof(uint64_t)) == sizeof(uint64_t));
	CHECK(pthread_join(cons_t, NULL) == 0);
	atomic_store(&stop, true);
	if (!forked && rounds > 1)
		CHECK(pthread_join(drain_t, NULL) == 0);
	CHECK(read_total == wrote);
	CHECK(usmc_close(a) == 0 && usmc_close(c) == 0 && usmc_close(lfd) == 0);
	printf("%d rounds, %llu bytes: room read while %s drained the doorbells is reported: ok\n",
	       rounds, (unsigned long long)(earlier + wrote),
	       forked ? "another process" : "another thread");
	return 0;
}
