// SPDX-License-Identifier: MIT
/*
 * The Accept's doorbell: the server rings it unless its client said it
 * waits for the answer in a call that watches the channel the answer
 * comes on (CDC_PEER_WATCHES_CHANNEL: a blocking call, usmc_poll).
 *
 * - epoll, silent server: a client sends its request and waits in
 *   epoll_wait for the reply, which the server sends a while after it
 *   accepted.  The client settles its handshake on the Accept's doorbell,
 *   not at a timer's look (the counters' handshake_timer_wakeups stay 0).
 * - epoll, ring full: a client writes more than its ring holds before the
 *   server accepts, and waits for room (level-triggered, edge-triggered,
 *   and in an epoll set inside the one it waits on).
 * - blocking: a client that waits in a blocking read watches the channel
 *   the Accept comes on, and gets no doorbell for it: its TCP socket
 *   receives the doorbell of the reply's first data and the server's FIN
 *   (tcpi_bytes_received, the kernel's count, which counts a FIN as one).
 * Every transfer is checked by length and checksum.
 */
#include <fcntl.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "counters.h"
#include "harness.h"

#define LEN (1u << 20) /* more than the client's first ring */
#define CLC_TIMEOUT_MS 1000
#define CLC_TIMEOUT_TEXT "1000"
/* The silent server's reply comes after a timer's look would have. */
#define SILENCE_US (CLC_TIMEOUT_MS * 1000 / 4 * 3 / 2)

enum wait_kind { W_SILENT, W_LEVEL, W_EDGE, W_NESTED, W_BLOCKING, W_KINDS };
static const char *const kind_name[W_KINDS] = { "epoll, silent server", "epoll, ring full",
						 "epoll EPOLLET, ring full",
						 "nested epoll, ring full", "blocking read" };
static const int rounds[W_KINDS] = { 5, 20, 20, 20, 20 };

static struct h_chan port_chan;

/* Writes LEN bytes of the stream, waiting for room in epoll as the kind says. */
static void write_waiting(int fd, enum wait_kind kind, uint64_t *sum)
{
	static uint8_t buf[LEN];
	int ep = epoll_create1(EPOLL_CLOEXEC), outer = -1;
	struct epoll_event ev = { .events = EPOLLOUT | (kind == W_EDGE ? EPOLLET : 0) };

	CHECK(ep >= 0);
	CHECK(usmc_epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) == 0);
	if (kind == W_NESTED) {
		struct epoll_event in = { .events = EPOLLIN };

		outer = epoll_create1(EPOLL_CLOEXEC);
		CHECK(outer >= 0 && usmc_epoll_ctl(outer, EPOLL_CTL_ADD, ep, &in) == 0);
	}
	h_pattern(buf, LEN, LEN, 0);
	*sum = h_fnv(H_FNV_INIT, buf, LEN);
	for (size_t off = 0; off < LEN;) {
		ssize_t n = usmc_write(fd, buf + off, LEN - off);
		struct epoll_event got;

		if (n > 0) {
			off += (size_t)n;
			continue;
		}
		CHECK(n < 0 && errno == EAGAIN);
		CHECK(usmc_epoll_wait(outer >= 0 ? outer : ep, &got, 1, -1) == 1);
		if (outer >= 0)
			CHECK(usmc_epoll_wait(ep, &got, 1, 0) >= 0);
	}
	if (outer >= 0)
		close(outer);
	close(ep);
}

/* Waits in epoll until the socket is readable. */
static void wait_readable(int fd)
{
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = { .events = EPOLLIN }, got;

	CHECK(ep >= 0 && usmc_epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) == 0);
	CHECK(usmc_epoll_wait(ep, &got, 1, -1) == 1);
	close(ep);
}

/* The reply's doorbell and the server's FIN, as the kernel counted them; no Accept's doorbell. */
static void check_no_accept_bell(int fd)
{
	/* The kernel's own poll: its FIN is in, which usmc's end of file may precede. */
	struct pollfd fin = { .fd = fd, .events = POLLRDHUP };
	struct tcp_info ti;
	socklen_t len = sizeof(ti);

	CHECK(poll(&fin, 1, 10000) == 1 && (fin.revents & POLLRDHUP));
	CHECK(usmc_getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) == 0);
	if (ti.tcpi_bytes_received != 2)
		fprintf(stderr, "%llu bytes on TCP\n", (unsigned long long)ti.tcpi_bytes_received);
	CHECK(ti.tcpi_bytes_received == 2);
}

static int client(void *arg)
{
	uint16_t port = (uint16_t)(uintptr_t)arg;

	for (int kind = 0; kind < W_KINDS; kind++) {
		for (int i = 0; i < rounds[kind]; i++) {
			uint64_t sum = 0, reply[2];
			int fd = h_connect_flags(AF_INET, H_USMC, port, SOCK_NONBLOCK);
			int fl = usmc_fcntl(fd, F_GETFL);

			if (kind == W_SILENT || kind == W_BLOCKING) {
				char req = 'r';

				if (kind == W_BLOCKING)
					CHECK(usmc_fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) == 0);
				CHECK(usmc_write(fd, &req, 1) == 1);
				sum = h_fnv(H_FNV_INIT, &req, 1);
				CHECK(usmc_shutdown(fd, SHUT_WR) == 0);
				if (kind == W_SILENT)
					wait_readable(fd);
			} else {
				write_waiting(fd, (enum wait_kind)kind, &sum);
				CHECK(usmc_shutdown(fd, SHUT_WR) == 0);
			}
			CHECK(usmc_fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) == 0);
			h_read_all(fd, reply, sizeof(reply));
			CHECK(reply[1] == sum);
			h_check_mode(fd, USMC_MODE_SMCD);
			CHECK(usmc_read(fd, reply, 1) == 0);
			if (kind == W_BLOCKING)
				check_no_accept_bell(fd);
			CHECK(usmc_close(fd) == 0);
		}
		printf("%s: %d connections waited for their Accept\n", kind_name[kind], rounds[kind]);
	}
	return 0;
}

/* Accepts a while after each connect, so that its client sleeps for the Accept. */
static int server(void *arg)
{
	uint16_t port;
	int lfd = h_listen(AF_INET, H_USMC, &port);

	(void)arg;
	h_chan_send(&port_chan, port);
	for (int kind = 0; kind < W_KINDS; kind++) {
		for (int i = 0; i < rounds[kind]; i++) {
			uint64_t reply[2];
			int fd;

			usleep(20000);
			fd = usmc_accept(lfd, NULL, NULL);
			CHECK(fd >= 0);
			reply[0] = h_read_to_eof(fd, &reply[1], 65536, NULL);
			/* Its client sleeps by then: the reply rings it, once. */
			usleep(kind == W_SILENT ? SILENCE_US : 20000);
			h_write_all(fd, reply, sizeof(reply));
			CHECK(usmc_close(fd) == 0);
		}
	}
	CHECK(usmc_close(lfd) == 0);
	return 0;
}

int main(void)
{
	char dir[] = "/tmp/usmc-accept-bell-XXXXXX";

	CHECK(mkdtemp(dir));
	setenv("USMC_REGISTRY_DIR", dir, 1);
	/* A timer's look comes a quarter of it after the wait began. */
	setenv("USMC_CLC_TIMEOUT_MS", CLC_TIMEOUT_TEXT, 1);
	h_run_pair(server, client, &port_chan);
	if (counter(USMC_STAT_HS_TIMER_WAKEUPS))
		fprintf(stderr, "%llu handshakes settled by a timer's look\n",
			(unsigned long long)counter(USMC_STAT_HS_TIMER_WAKEUPS));
	CHECK(counter(USMC_STAT_HS_TIMER_WAKEUPS) == 0);
	printf("every client woke on its Accept's doorbell or its channel; no timer's look\n");
	return 0;
}
