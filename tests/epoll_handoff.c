// SPDX-License-Identifier: MIT
/*
 * A connection handed to a thread already asleep in epoll_wait, as
 * apache2's event MPM hands a connection whose write found no room to its
 * listener thread: the entry is added while the other thread sleeps, so
 * that sleep did not arm it.
 *
 *   epoll_handoff --case space_later|space_now|data_now [--busy-set]
 *       space_later: the server fills its ring, adds the connection for
 *                    EPOLLOUT, and only then does the client read
 *                    everything: the waiter must wake for the room.
 *       space_now:   the client has read everything before the add: the
 *                    waiter must wake for the room there already is.
 *       data_now:    the client's bytes are in the ring and their
 *                    doorbell already read (by a poll of the server's)
 *                    before the add for EPOLLIN: the waiter must wake.
 *       --busy-set:  the set holds another shared-memory connection,
 *                    idle, from the start (without it the set holds only
 *                    a pipe when the wait begins).
 *
 * The waiter's timeout is WAIT_MS; it must report the connection well
 * before it: a lost wake-up waits the whole timeout, so the test fails
 * without timing anything finer.  Every byte is checked.
 */
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#define WAIT_MS 10000
#define ROUNDS 10
#define CHUNK 65536

static const char *wcase = "space_later";
static bool busy_set;

struct waiter {
	int ep;
	struct epoll_event got;
	int n;
};

static void *wait_thread(void *arg)
{
	struct waiter *w = arg;

	w->n = usmc_epoll_wait(w->ep, &w->got, 1, WAIT_MS);
	return NULL;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Writes pattern bytes until the ring is full; returns how many. */
static size_t fill(int fd, uint64_t *sum)
{
	static uint8_t buf[CHUNK];
	size_t total = 0;
	ssize_t w;

	CHECK(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) == 0);
	for (;;) {
		h_pattern(buf, sizeof(buf), 7, total);
		w = usmc_write(fd, buf, sizeof(buf));
		if (w < 0 && errno == EAGAIN)
			break;
		CHECK(w > 0);
		*sum = h_fnv(*sum, buf, (size_t)w);
		total += (size_t)w;
	}
	return total;
}

/* The client: reads a count and checksum's worth on a byte from the server. */
static int client(void *arg)
{
	struct h_chan *ch = arg;
	uint16_t port = (uint16_t)h_chan_recv(&ch[0]);

	for (int r = 0; r < ROUNDS; r++) {
		int fd = h_connect(AF_INET, H_USMC, port);
		static uint8_t buf[CHUNK];
		uint64_t want, sum = H_FNV_INIT, got = 0;

		if (!strcmp(wcase, "data_now")) {
			h_pattern(buf, 1000, (uint64_t)r, 0);
			h_write_all(fd, buf, 1000);
		}
		/* The server says how much it wrote, and when to read it. */
		want = h_chan_recv(&ch[1]);
		while (got < want) {
			size_t n = want - got < sizeof(buf) ? want - got : sizeof(buf);

			h_read_all(fd, buf, n);
			sum = h_fnv(sum, buf, n);
			got += n;
		}
		h_check_mode(fd, USMC_MODE_SMCD);
		h_chan_send(&ch[2], sum);
		/* The server's close. */
		CHECK(usmc_read(fd, buf, 1) == 0);
		CHECK(usmc_close(fd) == 0);
	}
	return 0;
}

static void one_round(int lfd, struct h_chan *ch, int round)
{
	struct waiter w = { .ep = epoll_create1(EPOLL_CLOEXEC) };
	struct epoll_event ev = { .data.u64 = 42 };
	int pipefd[2], idle = -1, idle_peer = -1, fd = usmc_accept(lfd, NULL, NULL);
	uint64_t sum = H_FNV_INIT;
	size_t filled = 0;
	pthread_t t;
	int64_t t0;

	CHECK(fd >= 0 && w.ep >= 0 && pipe(pipefd) == 0);
	h_check_mode(fd, USMC_MODE_SMCD);
	ev.events = EPOLLIN;
	CHECK(usmc_epoll_ctl(w.ep, EPOLL_CTL_ADD, pipefd[0], &ev) == 0);
	if (busy_set) {
		uint16_t port;
		int l2 = h_listen(AF_INET, H_USMC, &port);

		idle_peer = h_connect(AF_INET, H_USMC, port);
		idle = usmc_accept(l2, NULL, NULL);
		CHECK(idle >= 0);
		CHECK(usmc_close(l2) == 0);
		ev = (struct epoll_event){ .events = EPOLLIN, .data.u64 = 7 };
		CHECK(usmc_epoll_ctl(w.ep, EPOLL_CTL_ADD, idle, &ev) == 0);
	}
	if (!strcmp(wcase, "data_now")) {
		struct pollfd p = { .fd = fd, .events = POLLIN };

		/* The doorbell of the client's bytes is read here, by this poll. */
		CHECK(usmc_poll(&p, 1, WAIT_MS) == 1 && (p.revents & POLLIN));
	} else {
		filled = fill(fd, &sum);
	}
	CHECK(pthread_create(&t, NULL, wait_thread, &w) == 0);
	usleep(50 * 1000); /* the waiter sleeps */
	if (!strcmp(wcase, "space_now")) {
		h_chan_send(&ch[1], filled);
		CHECK(h_chan_recv(&ch[2]) == sum);
	}
	ev = (struct epoll_event){ .events = !strcmp(wcase, "data_now") ? EPOLLIN : EPOLLOUT,
				   .data.u64 = 1 };
	t0 = now_ms();
	CHECK(usmc_epoll_ctl(w.ep, EPOLL_CTL_ADD, fd, &ev) == 0);
	if (!strcmp(wcase, "space_later")) {
		usleep(50 * 1000);
		h_chan_send(&ch[1], filled);
		CHECK(h_chan_recv(&ch[2]) == sum);
	}
	CHECK(pthread_join(t, NULL) == 0);
	if (w.n != 1 || w.got.data.u64 != 1)
		fprintf(stderr, "round %d: the waiter got %d events (data %llu) after %lld ms\n", round,
			w.n, (unsigned long long)w.got.data.u64, (long long)(now_ms() - t0));
	CHECK(w.n == 1 && w.got.data.u64 == 1);
	if (!strcmp(wcase, "data_now")) {
		uint8_t buf[1000], want[1000];

		if (!(w.got.events & EPOLLIN))
			fprintf(stderr, "round %d: events %#x\n", round, w.got.events);
		CHECK(w.got.events & EPOLLIN);
		h_pattern(want, sizeof(want), (uint64_t)round, 0);
		h_read_all(fd, buf, sizeof(buf));
		CHECK(!memcmp(buf, want, sizeof(buf)));
		h_chan_send(&ch[1], 0);
		CHECK(h_chan_recv(&ch[2]) == H_FNV_INIT);
	} else {
		CHECK(w.got.events & EPOLLOUT);
	}
	if (idle >= 0)
		CHECK(usmc_close(idle) == 0 && usmc_close(idle_peer) == 0);
	CHECK(usmc_close(fd) == 0);
	CHECK(usmc_close(w.ep) == 0);
	close(pipefd[0]);
	close(pipefd[1]);
}

int main(int argc, char **argv)
{
	struct h_chan ch[3];
	uint16_t port;
	int lfd;
	pid_t cli;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--case") && i + 1 < argc)
			wcase = argv[++i];
		else if (!strcmp(argv[i], "--busy-set"))
			busy_set = true;
	}
	/* Only a doorbell may wake the waiter: no spin finds the room first. */
	setenv("USMC_SPIN_US", "0", 1);
	for (int i = 0; i < 3; i++)
		h_chan_open(&ch[i]);
	lfd = h_listen(AF_INET, H_USMC, &port);
	cli = h_fork(client, ch);
	h_chan_send(&ch[0], port);
	for (int r = 0; r < ROUNDS; r++)
		one_round(lfd, ch, r);
	CHECK(h_wait_ok(cli));
	CHECK(usmc_close(lfd) == 0);
	printf("%s%s: %d connections added to a set another thread waited on, each reported "
	       "at once, bytes checked: ok\n", wcase, busy_set ? " (busy set)" : "", ROUNDS);
	return 0;
}
