// SPDX-License-Identifier: MIT
/*
 * When the peer's end shows (POLLRDHUP, and POLLHUP once we shut down
 * writing): as TCP's FIN, which follows the data and which TCP's peer
 * sends only once what is still unread fits the receive buffer (128 KiB,
 * tcp_rmem's default).  A ring holds more unread than that (megabytes once
 * it grows, as it does for a writer that finds it full), and the end must
 * not show before the unread part is down to what TCP could hold: a
 * program that takes POLLHUP for the end of what it will read (stunnel,
 * when it is not asking to read) would lose what TCP delivers.
 *
 * One process, both ends: the client shuts down writing, the server
 * writes 200 KiB and closes.  usmc_poll on the client: POLLIN alone with
 * 200 KiB unread; POLLIN, POLLRDHUP and POLLHUP once 100 KiB are read;
 * then the rest and end of file, checked by length and checksum.  An
 * epoll set sees the same, and one edge-triggered sees the end as a new
 * edge once the read made room for it, as TCP's FIN comes then: a thread
 * asleep in that set's wait (its wchan) while another reads wakes for it.
 *
 * Then with SO_RCVLOWAT 256 KiB on the client, which TCP meets by growing
 * the buffer to twice that: the peer's 200 KiB and its end show at once
 * (POLLIN, POLLRDHUP), or a wait for more than can ever come would hang.
 */
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "harness.h"

#define DATA (200u << 10)
#define FIRST (100u << 10)

static short revents(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN | POLLRDHUP };

	CHECK(usmc_poll(&p, 1, 10000) == 1);
	return p.revents;
}

static uint32_t epoll_events(int ep)
{
	struct epoll_event ev;

	CHECK(usmc_epoll_wait(ep, &ev, 1, 10000) == 1);
	return ev.events;
}

static int epet;
static _Atomic pid_t waiter_tid;

/* The edge-triggered set's wait, in a thread of its own. */
static void *wait_edge(void *arg)
{
	uint32_t *got = arg;

	waiter_tid = (pid_t)syscall(SYS_gettid);
	*got = epoll_events(epet);
	return NULL;
}

int main(void)
{
	static uint8_t out[DATA], in[DATA];
	struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP };
	struct epoll_event evet = { .events = EPOLLIN | EPOLLRDHUP | EPOLLET };
	uint16_t port;
	int lfd = h_listen(AF_INET, H_USMC, &port), cli, srv, ep;
	pthread_t waiter;
	uint32_t edge = 0;
	short rev;
	uint32_t eev;
	char c;

	h_smc_pair(lfd, port, &cli, &srv);
	CHECK((ep = epoll_create1(EPOLL_CLOEXEC)) >= 0);
	CHECK(usmc_epoll_ctl(ep, EPOLL_CTL_ADD, cli, &ev) == 0);
	CHECK((epet = epoll_create1(EPOLL_CLOEXEC)) >= 0);
	CHECK(usmc_epoll_ctl(epet, EPOLL_CTL_ADD, cli, &evet) == 0);
	CHECK(usmc_shutdown(cli, SHUT_WR) == 0);
	h_pattern(out, sizeof(out), 3, 0);
	h_write_all(srv, out, sizeof(out));
	CHECK(usmc_close(srv) == 0);

	rev = revents(cli);
	eev = epoll_events(ep);
	printf("%u bytes unread: revents %#x, epoll %#x\n", DATA, rev, eev);
	CHECK((rev & POLLIN) && !(rev & (POLLRDHUP | POLLHUP | POLLERR)));
	CHECK((eev & EPOLLIN) && !(eev & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)));
	eev = epoll_events(epet);
	CHECK((eev & EPOLLIN) && !(eev & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)));

	/* The edge was taken: the next wait sleeps until one comes. */
	CHECK(pthread_create(&waiter, NULL, wait_edge, &edge) == 0);
	while (!waiter_tid)
		usleep(100);
	h_wait_wchan(waiter_tid, "epoll");
	h_read_all(cli, in, FIRST);
	/* Nothing but the read may wake it: no other wait looks before it is done. */
	CHECK(pthread_join(waiter, NULL) == 0);
	rev = revents(cli);
	eev = epoll_events(ep);
	printf("%u bytes unread: revents %#x, epoll %#x\n", DATA - FIRST, rev, eev);
	CHECK((rev & POLLIN) && (rev & POLLRDHUP) && (rev & POLLHUP) && !(rev & POLLERR));
	CHECK((eev & EPOLLIN) && (eev & EPOLLRDHUP) && (eev & EPOLLHUP) && !(eev & EPOLLERR));
	printf("edge-triggered, asleep: %#x\n", edge);
	CHECK((edge & EPOLLRDHUP) && (edge & EPOLLHUP));

	h_read_all(cli, in + FIRST, DATA - FIRST);
	CHECK(h_fnv(H_FNV_INIT, in, sizeof(in)) == h_fnv(H_FNV_INIT, out, sizeof(out)));
	CHECK(usmc_read(cli, &c, 1) == 0);
	CHECK(usmc_close(cli) == 0);

	h_smc_pair(lfd, port, &cli, &srv);
	CHECK(usmc_setsockopt(cli, SOL_SOCKET, SO_RCVLOWAT, &(int){ 256 << 10 }, sizeof(int)) == 0);
	h_write_all(srv, out, sizeof(out));
	CHECK(usmc_close(srv) == 0);
	rev = revents(cli);
	printf("%u bytes unread, SO_RCVLOWAT 256 KiB: revents %#x\n", DATA, rev);
	CHECK((rev & POLLIN) && (rev & POLLRDHUP));
	h_read_all(cli, in, sizeof(in));
	CHECK(h_fnv(H_FNV_INIT, in, sizeof(in)) == h_fnv(H_FNV_INIT, out, sizeof(out)));
	CHECK(usmc_read(cli, &c, 1) == 0);
	CHECK(usmc_close(cli) == 0);
	close(ep);
	close(epet);
	CHECK(usmc_close(lfd) == 0);
	return 0;
}
