// SPDX-License-Identifier: MIT
/*
 * A server that forks a child per connection, as postgresql does for each
 * backend and inetd for each service: the parent closes its copy at once,
 * and the child exits without closing the connection (the kernel closes
 * it).  No close of usmc's marks the ring's slot free then; the server
 * tells it by the connection's TCP socket, which sock_diag finds gone or
 * closed once the child exited (usmc_seg.c, given_gone).  So the slots of
 * the server's first segment serve connection after connection: ROUNDS
 * connections, more than a segment's 64 slots, make one segment at each
 * end, where a slot left taken by each would make a second at the
 * server.  Every connection is in shared memory on both ends, its bytes
 * checked.
 */
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "counters.h"
#include "harness.h"

#define ROUNDS 80

static struct h_chan port_chan;

static int client(void *arg)
{
	uint16_t port = (uint16_t)h_chan_recv(&port_chan);

	(void)arg;
	for (uint64_t i = 0; i < ROUNDS; i++) {
		int fd = h_connect(AF_INET, H_USMC, port);
		uint64_t reply;

		h_write_all(fd, &i, sizeof(i));
		h_read_all(fd, &reply, sizeof(reply));
		CHECK(reply == ~i);
		h_check_mode(fd, USMC_MODE_SMCD);
		CHECK(usmc_close(fd) == 0);
	}
	return 0;
}

int main(void)
{
	uint64_t segments;
	uint16_t port;
	pid_t cli;
	int lfd;

	h_registry_own("fork-exit");
	h_chan_open(&port_chan);
	lfd = h_listen(AF_INET, H_USMC, &port);
	cli = h_fork(client, NULL);
	h_chan_send(&port_chan, port);
	for (int i = 0; i < ROUNDS; i++) {
		int fd = usmc_accept(lfd, NULL, NULL), status;
		pid_t child;

		CHECK(fd >= 0);
		h_check_mode(fd, USMC_MODE_SMCD);
		child = fork();
		CHECK(child >= 0);
		if (child == 0) {
			uint64_t req;

			h_read_all(fd, &req, sizeof(req));
			req = ~req;
			h_write_all(fd, &req, sizeof(req));
			/* Gone without a close, as a backend's exit. */
			_exit(0);
		}
		CHECK(usmc_close(fd) == 0);
		CHECK(waitpid(child, &status, 0) == child && WIFEXITED(status) &&
		      WEXITSTATUS(status) == 0);
	}
	CHECK(h_wait_ok(cli));
	segments = counter(USMC_STAT_SEGMENTS);
	printf("%d connections, each served by a child that exited without closing it: "
	       "%llu segments made\n", ROUNDS, (unsigned long long)segments);
	CHECK(segments == 2);
	CHECK(usmc_close(lfd) == 0);
	return 0;
}
