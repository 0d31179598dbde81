// SPDX-License-Identifier: MIT
/*
 * Several descriptors for one socket: dup, dup2 onto another usmc socket,
 * F_DUPFD_CLOEXEC and close_range.  A dup is the same connection (in
 * shared memory, the same bytes in order); it lasts until its last
 * descriptor is closed; and a socket closed by dup2 or close_range ends
 * as if close() had been called.
 */
#include <fcntl.h>
#include <linux/close_range.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"

static struct h_chan chan;

static void send_block(int fd, uint64_t seed)
{
	uint8_t buf[50000];

	h_pattern(buf, sizeof(buf), seed, 0);
	h_write_all(fd, buf, sizeof(buf));
}

static void recv_block(int fd, uint64_t seed)
{
	uint8_t buf[50000], want[50000];

	h_read_all(fd, buf, sizeof(buf));
	h_pattern(want, sizeof(want), seed, 0);
	CHECK(memcmp(buf, want, sizeof(buf)) == 0);
}

/* Echoes blocks on two connections until their EOF. */
static int server(void *arg)
{
	uint16_t port;
	int lfd = h_listen(AF_INET, H_USMC, &port), a, b;
	uint8_t buf[50000];

	(void)arg;
	h_chan_send(&chan, port);
	a = usmc_accept(lfd, NULL, NULL);
	b = usmc_accept(lfd, NULL, NULL);
	CHECK(a >= 0 && b >= 0);
	for (int i = 0; i < 3; i++) {
		h_read_all(a, buf, sizeof(buf));
		h_write_all(a, buf, sizeof(buf));
	}
	CHECK(usmc_read(a, buf, 1) == 0);
	/* b was dup2'ed over, which closes it: EOF here, nothing lost before. */
	CHECK(usmc_read(b, buf, 1) == 0);
	h_check_mode(a, USMC_MODE_SMCD);
	CHECK(usmc_close(a) == 0 && usmc_close(b) == 0 && usmc_close(lfd) == 0);
	return 0;
}

int main(void)
{
	int a, b, d1, d2, d3;
	uint16_t port;
	pid_t pid;

	h_chan_open(&chan);
	pid = h_fork(server, NULL);
	port = (uint16_t)h_chan_recv(&chan);
	a = h_connect(AF_INET, H_USMC, port);
	b = h_connect(AF_INET, H_USMC, port);

	/* A dup writes into the same connection; the original may go first. */
	d1 = usmc_dup(a);
	CHECK(d1 >= 0);
	send_block(d1, 1);
	recv_block(a, 1);
	CHECK(usmc_close(a) == 0);
	h_check_mode(d1, USMC_MODE_SMCD);
	send_block(d1, 2);
	recv_block(d1, 2);

	/* F_DUPFD_CLOEXEC above 100 is the same connection too. */
	d2 = usmc_fcntl(d1, F_DUPFD_CLOEXEC, 100);
	CHECK(d2 >= 100 && (usmc_fcntl(d2, F_GETFD) & FD_CLOEXEC));
	CHECK(usmc_close(d1) == 0);
	send_block(d2, 3);
	recv_block(d2, 3);

	/* dup2 over b ends b's connection; the server reads its EOF. */
	d3 = usmc_dup2(d2, b);
	CHECK(d3 == b);
	h_check_mode(b, USMC_MODE_SMCD);

	/* close_range closes both remaining descriptors: the connection ends. */
	CHECK(usmc_close_range((unsigned)(b < d2 ? b : d2), (unsigned)(b < d2 ? d2 : b), 0) == 0);
	CHECK(fcntl(b, F_GETFD) < 0 && fcntl(d2, F_GETFD) < 0);
	CHECK(h_wait_ok(pid));
	printf("dup, F_DUPFD_CLOEXEC, dup2 and close_range on usmc sockets: ok\n");
	return 0;
}
