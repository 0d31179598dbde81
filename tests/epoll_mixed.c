// SPDX-License-Identifier: MIT
/*
 * An epoll set that holds a connection in shared memory which stays ready
 * (wanted for EPOLLOUT, level-triggered, its ring with room) beside
 * descriptors whose readiness only the kernel knows, each with a byte to
 * read: a pipe; a usmc connection still waiting for its server's Accept,
 * edge-triggered, which the Accept's doorbell and the server's first byte
 * make readable; and a usmc connection to a plain server (TCP),
 * edge-triggered.  Each must be reported within a few waits, as the
 * kernel's epoll reports every ready descriptor in turn.  A wait that
 * returned the ready connection without asking the kernel would never
 * report the others; one that asked but kept only the descriptors usmc
 * does not track would lose the two connections' edges for good.  No
 * wait reports a descriptor twice, though both looks may find it.
 *
 *   epoll_mixed --maxevents N
 */
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "harness.h"

#define WAITS 100

enum { CONN = 1, PIPE, PROPOSED, FALLBACK, KINDS };

int main(int argc, char **argv)
{
	int maxevents = argc > 2 && !strcmp(argv[1], "--maxevents") ? atoi(argv[2]) : 16;
	struct epoll_event ev, got[16];
	int ep = epoll_create1(EPOLL_CLOEXEC), pipefd[2], lfd, plfd, c, a, c2, a2, c3, a3;
	int seen[KINDS] = { 0 }, all = 0;
	uint16_t port, plain_port;
	char b;

	CHECK(maxevents >= 1 && maxevents <= 16);
	CHECK(ep >= 0 && pipe(pipefd) == 0);
	lfd = h_listen(AF_INET, H_USMC, &port);
	plfd = h_listen(AF_INET, H_PLAIN, &plain_port);
	h_smc_pair(lfd, port, &c, &a);
	/* Proposed, not accepted yet: the Accept comes while the set is waited on. */
	c2 = h_connect(AF_INET, H_USMC, port);
	c3 = h_connect(AF_INET, H_USMC, plain_port);
	a3 = accept(plfd, NULL, NULL);
	CHECK(a3 >= 0);
	ev = (struct epoll_event){ .events = EPOLLOUT, .data.u64 = CONN };
	CHECK(usmc_epoll_ctl(ep, EPOLL_CTL_ADD, a, &ev) == 0);
	ev = (struct epoll_event){ .events = EPOLLIN, .data.u64 = PIPE };
	CHECK(usmc_epoll_ctl(ep, EPOLL_CTL_ADD, pipefd[0], &ev) == 0);
	ev = (struct epoll_event){ .events = EPOLLIN | EPOLLET, .data.u64 = PROPOSED };
	CHECK(usmc_epoll_ctl(ep, EPOLL_CTL_ADD, c2, &ev) == 0);
	ev = (struct epoll_event){ .events = EPOLLIN | EPOLLET, .data.u64 = FALLBACK };
	CHECK(usmc_epoll_ctl(ep, EPOLL_CTL_ADD, c3, &ev) == 0);
	CHECK(write(pipefd[1], "p", 1) == 1);
	CHECK(write(a3, "z", 1) == 1);
	a2 = usmc_accept(lfd, NULL, NULL);
	CHECK(a2 >= 0);
	h_write_all(a2, "y", 1);
	for (int w = 0; w < WAITS && all < KINDS - 1; w++) {
		int n = usmc_epoll_wait(ep, got, maxevents, 1000);

		CHECK(n > 0);
		for (int i = 0; i < n; i++) {
			CHECK(got[i].data.u64 >= CONN && got[i].data.u64 < KINDS);
			all += !seen[got[i].data.u64]++;
			/* Once per wait, whether one look found it or both. */
			for (int j = 0; j < i; j++)
				CHECK(got[j].data.u64 != got[i].data.u64);
		}
	}
	if (all < KINDS - 1)
		fprintf(stderr, "in %d waits: connection %d, pipe %d, proposed %d, fallback %d times\n",
			WAITS, seen[CONN], seen[PIPE], seen[PROPOSED], seen[FALLBACK]);
	CHECK(all == KINDS - 1);
	h_read_all(c2, &b, 1);
	CHECK(b == 'y');
	h_check_mode(c2, USMC_MODE_SMCD);
	h_read_all(c3, &b, 1);
	CHECK(b == 'z');
	h_check_mode(c3, USMC_MODE_FALLBACK);
	CHECK(usmc_close(a) == 0 && usmc_close(c) == 0 && usmc_close(a2) == 0 &&
	      usmc_close(c2) == 0 && usmc_close(c3) == 0 && close(a3) == 0);
	CHECK(usmc_close(lfd) == 0 && close(plfd) == 0);
	printf("a ready connection, a pipe, a proposed and a fallback connection in one set, "
	       "maxevents %d: all reported: ok\n", maxevents);
	return 0;
}
