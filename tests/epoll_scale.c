// SPDX-License-Identifier: MIT
/*
 * The work of a wait grows with the ready connections, not with all of
 * them.  IDLE connections in shared memory sit in an epoll set beside one
 * busy one; each round the busy one's peer writes a byte, the wait
 * reports it and it is read.  usmc_epoll_looks counts the entries the
 * waits looked at: per wait a bound that does not grow with IDLE (a look
 * at every connection counted IDLE per wait).  Then a byte on each of a
 * few idle connections, written while they were off the ready list, must
 * still be reported: a look that skipped them without a doorbell to bring
 * them back would lose it, as would our own shutdown of one (level-
 * triggered: it is readable then, with no doorbell).  No time is measured.
 *
 * With --never-sleeps no wait of the rounds ever sleeps, so no look arms:
 * the idle entries, new on the list, must still leave it, at the second
 * wait that finds them idle (the first asks their peers to ring).
 *
 *   epoll_scale [--et] [--idle N] [--never-sleeps]
 */
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "harness.h"
#include "usmc_epoll.h"

#define ROUNDS 200
/* Looks per wait, whatever IDLE: the busy entry, a leave's second look, a spare. */
#define LOOKS_PER_WAIT 4
#define LATE 8

static int idle = 2000;
static bool et, never_sleeps;

/* One wait that must report exactly the entry with data want, readable; its byte is read. */
static void wait_for(int ep, int fd, uint64_t want)
{
	struct epoll_event got[4];
	char b;
	int n;

	n = usmc_epoll_wait(ep, got, 4, 10000);
	if (n != 1 || got[0].data.u64 != want)
		fprintf(stderr, "wait: %d events, first %llu, wanted %llu\n", n,
			n > 0 ? (unsigned long long)got[0].data.u64 : 0ull,
			(unsigned long long)want);
	CHECK(n == 1 && got[0].data.u64 == want && (got[0].events & EPOLLIN));
	CHECK(usmc_read(fd, &b, 1) == 1 && b == (char)want);
}

int main(int argc, char **argv)
{
	int ep, lfd, *c, *a;
	uint64_t before, looks;
	uint16_t port;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--et"))
			et = true;
		else if (!strcmp(argv[i], "--never-sleeps"))
			never_sleeps = true;
		else if (!strcmp(argv[i], "--idle") && i + 1 < argc)
			idle = atoi(argv[++i]);
	}
	h_raise_nofile(2 * idle + 64);
	c = calloc((size_t)idle + 1, sizeof(*c));
	a = calloc((size_t)idle + 1, sizeof(*a));
	CHECK(c && a && (ep = epoll_create1(EPOLL_CLOEXEC)) >= 0);
	lfd = h_listen(AF_INET, H_USMC, &port);
	/* Entry idle is the busy one. */
	for (int i = 0; i <= idle; i++) {
		struct epoll_event ev = { .events = EPOLLIN | (et ? EPOLLET : 0),
					  .data.u64 = (uint64_t)i };

		h_smc_pair(lfd, port, &c[i], &a[i]);
		CHECK(usmc_epoll_ctl(ep, EPOLL_CTL_ADD, a[i], &ev) == 0);
	}
	if (never_sleeps) {
		/* Two waits that find the busy one ready: every entry looked at twice. */
		for (int r = 0; r < 2; r++) {
			char b = (char)idle;

			CHECK(usmc_write(c[idle], &b, 1) == 1);
			wait_for(ep, a[idle], (uint64_t)idle);
		}
	} else {
		/* The first wait looks at every entry, new as they are, and finds none ready. */
		CHECK(usmc_epoll_wait(ep, &(struct epoll_event){ 0 }, 1, 0) == 0);
	}
	before = usmc_epoll_looks();
	for (int r = 0; r < ROUNDS; r++) {
		char b = (char)idle;

		CHECK(usmc_write(c[idle], &b, 1) == 1);
		wait_for(ep, a[idle], (uint64_t)idle);
	}
	looks = usmc_epoll_looks() - before;
	printf("%d idle connections, 1 busy: %llu looks in %d rounds\n", idle,
	       (unsigned long long)looks, ROUNDS);
	CHECK(looks <= (uint64_t)ROUNDS * LOOKS_PER_WAIT);
	/* Doorbells of connections off the list are not lost. */
	for (int k = 0; k < LATE; k++) {
		int i = (int)((uint64_t)k * (uint64_t)idle / LATE);
		char b = (char)i;

		CHECK(usmc_write(c[i], &b, 1) == 1);
		wait_for(ep, a[i], (uint64_t)i);
	}
	/* So is our own shutdown of one: no doorbell, and the end of file to read. */
	if (!et) {
		struct epoll_event got;

		CHECK(usmc_shutdown(a[idle / 2], SHUT_RD) == 0);
		CHECK(usmc_epoll_wait(ep, &got, 1, 10000) == 1 && got.data.u64 == (uint64_t)idle / 2);
	}
	for (int i = 0; i <= idle; i++)
		CHECK(usmc_close(a[i]) == 0 && usmc_close(c[i]) == 0);
	CHECK(usmc_close(lfd) == 0 && close(ep) == 0);
	free(a);
	free(c);
	printf("%s: a wait looks at the ready connections only, and loses none: ok\n",
	       et ? "edge-triggered" : "level-triggered");
	return 0;
}
