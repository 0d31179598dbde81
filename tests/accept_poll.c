// SPDX-License-Identifier: MIT
/*
 * A program of the library waits for a new connection's first data in
 * the kernel's own poll(), as usmc.h says it may ("Readiness"): the
 * connection usmc_accept returns is answered there, so the client's
 * request, written before it learnt of the Accept, rings the server.
 * The poll must return readable (a bound of 10 s only ends a hang), the
 * request come whole, in shared memory.
 *
 *   accept_poll
 */
#include <poll.h>
#include <sys/socket.h>

#include "harness.h"

#define REQUEST 100
#define WAIT_MS 10000

static struct h_chan port_chan;

static int client(void *arg)
{
	uint8_t req[REQUEST], reply[1];
	int fd = h_connect(AF_INET, H_USMC, (uint16_t)h_chan_recv(&port_chan));

	(void)arg;
	h_pattern(req, sizeof(req), 5, 0);
	h_write_all(fd, req, sizeof(req));
	h_read_all(fd, reply, sizeof(reply));
	CHECK(usmc_close(fd) == 0);
	return 0;
}

int main(void)
{
	uint8_t req[REQUEST], want[REQUEST];
	struct pollfd p;
	uint16_t port;
	int lfd, fd, n;
	pid_t pid;

	h_chan_open(&port_chan);
	lfd = h_listen(AF_INET, H_USMC, &port);
	pid = h_fork(client, NULL);
	h_chan_send(&port_chan, port);
	fd = usmc_accept(lfd, NULL, NULL);
	CHECK(fd >= 0);
	p = (struct pollfd){ .fd = fd, .events = POLLIN };
	n = poll(&p, 1, WAIT_MS);
	if (n != 1)
		fprintf(stderr, "the kernel's poll: %d after %d ms\n", n, WAIT_MS);
	CHECK(n == 1 && (p.revents & POLLIN));
	h_read_all(fd, req, sizeof(req));
	h_pattern(want, sizeof(want), 5, 0);
	CHECK(!memcmp(req, want, sizeof(want)));
	h_check_mode(fd, USMC_MODE_SMCD);
	h_write_all(fd, "k", 1);
	CHECK(h_wait_ok(pid));
	CHECK(usmc_close(fd) == 0 && usmc_close(lfd) == 0);
	printf("accept_poll: the kernel's poll woke for the first data, in shared memory: ok\n");
	return 0;
}
