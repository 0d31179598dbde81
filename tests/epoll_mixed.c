// SPDX-License-Identifier: MIT
/*
 * An epoll set that holds a connection in shared memory which stays ready
 * (wanted for EPOLLOUT, level-triggered, its ring with room) beside a
 * pipe with a byte in it: the pipe must be reported too, within a few
 * waits, as the kernel's epoll reports every ready descriptor in turn.
 * A wait that returned the ready connection without asking the kernel
 * would never report the pipe.
 *
 *   epoll_mixed --maxevents N
 */
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "harness.h"

#define WAITS 100

int main(int argc, char **argv)
{
	int maxevents = argc > 2 && !strcmp(argv[1], "--maxevents") ? atoi(argv[2]) : 16;
	struct epoll_event ev, got[16];
	int ep = epoll_create1(EPOLL_CLOEXEC), pipefd[2], lfd, c, a, pipe_seen = 0, conn_seen = 0;
	uint16_t port;
	char b;

	CHECK(maxevents >= 1 && maxevents <= 16);
	CHECK(ep >= 0 && pipe(pipefd) == 0);
	lfd = h_listen(AF_INET, H_USMC, &port);
	c = h_connect(AF_INET, H_USMC, port);
	a = usmc_accept(lfd, NULL, NULL);
	CHECK(a >= 0);
	/* The handshake settles on the client's first read of the server's byte. */
	h_write_all(a, "x", 1);
	h_read_all(c, &b, 1);
	h_check_mode(a, USMC_MODE_SMCD);
	h_check_mode(c, USMC_MODE_SMCD);
	ev = (struct epoll_event){ .events = EPOLLOUT, .data.u64 = 1 };
	CHECK(usmc_epoll_ctl(ep, EPOLL_CTL_ADD, a, &ev) == 0);
	ev = (struct epoll_event){ .events = EPOLLIN, .data.u64 = 2 };
	CHECK(usmc_epoll_ctl(ep, EPOLL_CTL_ADD, pipefd[0], &ev) == 0);
	CHECK(write(pipefd[1], "p", 1) == 1);
	for (int w = 0; w < WAITS && !pipe_seen; w++) {
		int n = usmc_epoll_wait(ep, got, maxevents, 1000);

		CHECK(n > 0);
		for (int i = 0; i < n; i++) {
			conn_seen += got[i].data.u64 == 1;
			pipe_seen += got[i].data.u64 == 2;
		}
	}
	if (!pipe_seen)
		fprintf(stderr, "the pipe was never reported in %d waits (the connection %d times)\n",
			WAITS, conn_seen);
	CHECK(pipe_seen && conn_seen);
	CHECK(usmc_close(a) == 0 && usmc_close(c) == 0 && usmc_close(lfd) == 0);
	printf("a ready connection and a pipe in one set, maxevents %d: both reported: ok\n",
	       maxevents);
	return 0;
}
