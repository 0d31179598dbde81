// SPDX-License-Identifier: MIT
/*
 * A server that accepts a connection and then declines its Proposal (a
 * process that took to io_uring after it listened: its sockets are plain
 * from then on, 0x03000003) writes the client's socket cookie into the
 * connection after its Decline, a marker.  The client's request still
 * sits in its ring:
 * - a client waiting in epoll_wait for the reply wakes on the marker at
 *   once, reads it out of the stream, replays its request into TCP and
 *   gets the reply;
 * - a client waiting in a blocking read, which watches its channel, reads
 *   the marker out of the stream all the same;
 * - a client that connects and closes without writing gets no marker:
 *   the server reads end of file, and its first write after it goes
 *   through, as on TCP (bytes to a closed socket would have drawn a reset
 *   already, and the write an EPIPE).
 * Every reply is checked by length and checksum, so a marker byte that
 * reached a program fails it, and no handshake is settled by a timer's
 * look (the counters' handshake_timer_wakeups).
 */
#include <signal.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "counters.h"
#include "harness.h"
#include "usmc_sock.h"

#define LEN 30000

static struct h_chan port_chan, closed;

static void check_info(int fd, const char *who)
{
	struct usmc_info info;

	CHECK(usmc_info(fd, &info, sizeof(info)) == 0);
	if (info.mode != USMC_MODE_FALLBACK || info.fallback_reason != USMC_DECL_ENV)
		fprintf(stderr, "%s: mode %d, reason %s\n", who, info.mode,
			usmc_reason_str(info.fallback_reason));
	CHECK(info.mode == USMC_MODE_FALLBACK && info.fallback_reason == USMC_DECL_ENV);
}

static int server(void *arg)
{
	uint16_t port;
	int lfd = h_listen(AF_INET, H_USMC, &port), fd;
	uint64_t reply[2];
	char c;

	(void)arg;
	signal(SIGPIPE, SIG_IGN);
	/* From now on this process's sockets are plain, as once it uses io_uring. */
	usmc_plain_from_now(USMC_DECL_ENV);
	h_chan_send(&port_chan, port);
	for (int i = 0; i < 2; i++) {
		fd = usmc_accept(lfd, NULL, NULL);
		CHECK(fd >= 0);
		check_info(fd, "server");
		reply[0] = h_read_to_eof(fd, &reply[1], 8192, NULL);
		h_write_all(fd, reply, sizeof(reply));
		CHECK(usmc_close(fd) == 0);
	}
	/* Accepted once its client closed: end of file, no reset. */
	h_chan_recv(&closed);
	fd = usmc_accept(lfd, NULL, NULL);
	CHECK(fd >= 0);
	CHECK(usmc_read(fd, &c, 1) == 0);
	CHECK(usmc_write(fd, "x", 1) == 1);
	CHECK(usmc_close(fd) == 0 && usmc_close(lfd) == 0);
	return 0;
}

static void reply_check(int fd, uint64_t sum)
{
	uint64_t reply[2];

	h_read_all(fd, reply, sizeof(reply));
	CHECK(reply[0] == LEN && reply[1] == sum);
	check_info(fd, "client");
	CHECK(usmc_close(fd) == 0);
}

static int client(void *arg)
{
	uint16_t port = (uint16_t)(uintptr_t)arg;
	struct epoll_event ev = { .events = EPOLLIN };
	int ep = epoll_create1(EPOLL_CLOEXEC), fd;
	uint64_t sum;

	fd = h_send_half(port, LEN, 1, &sum);
	CHECK(ep >= 0 && usmc_epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) == 0);
	CHECK(usmc_epoll_wait(ep, &ev, 1, -1) == 1);
	CHECK(close(ep) == 0);
	reply_check(fd, sum);

	fd = h_send_half(port, LEN, 2, &sum);
	reply_check(fd, sum);

	fd = h_connect(AF_INET, H_USMC, port);
	CHECK(usmc_close(fd) == 0);
	h_chan_send(&closed, 1);
	return 0;
}

int main(void)
{
	char dir[] = "/tmp/usmc-decline-marker-XXXXXX";

	CHECK(mkdtemp(dir));
	/* Counters of its own; no answer may wait for a CLC timeout either. */
	setenv("USMC_REGISTRY_DIR", dir, 1);
	setenv("USMC_CLC_TIMEOUT_MS", "60000", 1);
	alarm(30);
	h_chan_open(&closed);
	h_run_pair(server, client, &port_chan);
	if (counter(USMC_STAT_HS_TIMER_WAKEUPS))
		fprintf(stderr, "%llu handshakes settled by a timer's look\n",
			(unsigned long long)counter(USMC_STAT_HS_TIMER_WAKEUPS));
	CHECK(counter(USMC_STAT_HS_TIMER_WAKEUPS) == 0);
	printf("declined after accept: the marker woke the waiting client, was read out of "
	       "its stream, and every request was replayed whole: ok\n");
	return 0;
}
