// SPDX-License-Identifier: MIT
/*
 * Doorbells that nobody waits for, as the kernel counts them.  The client
 * sends its requests the way wrk and ae's event loops do: it adds
 * EPOLLOUT to its entry, waits, writes the request once the wait says it
 * may, and goes back to EPOLLIN for the response.  The server reads each
 * request and answers it.  Each response may ring the client once (it
 * waits for it); the server's read of a request must not, since the
 * client never waited for room: its ring had room the moment it asked.
 * The oracle is the kernel's own: the bytes the client's TCP socket
 * received (tcp_info), which in shared memory are the doorbells alone.
 *
 *   epoll_out_bells
 */
#include <netinet/in.h>
#include <linux/tcp.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "harness.h"

#define ROUNDS 200
#define REQ 43
#define RESP 1264

static void wait_for(int ep, int fd, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.fd = fd };

	CHECK(usmc_epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev) == 0);
	CHECK(usmc_epoll_wait(ep, &ev, 1, 10000) == 1 && (ev.events & events));
}

static int server(void *arg)
{
	int lfd = *(int *)arg, fd = usmc_accept(lfd, NULL, NULL);
	uint8_t req[REQ], resp[RESP];

	CHECK(fd >= 0);
	for (int i = 0; i < ROUNDS; i++) {
		uint8_t want[REQ];

		h_read_all(fd, req, REQ);
		h_pattern(want, REQ, 1, (uint64_t)i * REQ);
		CHECK(memcmp(req, want, REQ) == 0);
		h_pattern(resp, RESP, 2, (uint64_t)i * RESP);
		h_write_all(fd, resp, RESP);
	}
	CHECK(usmc_close(fd) == 0);
	return 0;
}

int main(void)
{
	uint16_t port;
	int lfd = h_listen(AF_INET, H_USMC, &port), fd, ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = { .events = EPOLLIN };
	struct tcp_info ti;
	socklen_t len = sizeof(ti);
	pid_t srv = h_fork(server, &lfd);

	fd = h_connect(AF_INET, H_USMC, port);
	ev.data.fd = fd;
	CHECK(ep >= 0 && usmc_epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) == 0);
	for (int i = 0; i < ROUNDS; i++) {
		uint8_t req[REQ], resp[RESP], want[RESP];

		wait_for(ep, fd, EPOLLIN | EPOLLOUT);
		h_pattern(req, REQ, 1, (uint64_t)i * REQ);
		CHECK(usmc_write(fd, req, REQ) == REQ);
		wait_for(ep, fd, EPOLLIN);
		h_read_all(fd, resp, RESP);
		h_pattern(want, RESP, 2, (uint64_t)i * RESP);
		CHECK(memcmp(resp, want, RESP) == 0);
	}
	CHECK(h_wait_ok(srv));
	h_check_mode(fd, USMC_MODE_SMCD);
	CHECK(usmc_getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) == 0);
	printf("%d requests and responses: the client's TCP socket received %llu bytes\n", ROUNDS,
	       (unsigned long long)ti.tcpi_bytes_received);
	/* A doorbell per response at most, and the server's end: never one per request read. */
	CHECK(ti.tcpi_bytes_received <= ROUNDS + ROUNDS / 4);
	CHECK(usmc_close(fd) == 0 && close(ep) == 0 && usmc_close(lfd) == 0);
	return 0;
}
