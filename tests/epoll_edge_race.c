// SPDX-License-Identifier: MIT
/*
 * A wait that finds a connection ready asks the kernel too for the rest
 * of the set; when the kernel's look finds the same connection moved on
 * since the first look, what it found must be reported with the first.
 *
 * The connection is added edge-triggered for EPOLLIN and EPOLLOUT, with
 * its read side asking for a doorbell (a read ended in EAGAIN): the first
 * look reports it writable, a fresh entry.  Between the two looks (this
 * program's epoll_wait, which the library's call resolves to, writes a
 * byte from the peer first) a byte arrives and rings the doorbell: the
 * kernel's look finds the connection readable too, and uses up that
 * edge.  The wait must report EPOLLIN, then or at the next wait: a wait
 * that dropped the second look's events as reported already would never
 * report the byte.
 */
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "harness.h"

static int hook_writer = -1; /* >= 0: the next kernel look without waiting writes a byte first */

int epoll_wait(int epfd, struct epoll_event *events, int maxevents, int timeout)
{
	int w = hook_writer;

	if (w >= 0 && timeout == 0) {
		hook_writer = -1;
		h_write_all(w, "z", 1);
	}
	return (int)syscall(SYS_epoll_wait, epfd, events, maxevents, timeout);
}

int main(void)
{
	struct epoll_event ev, got[8];
	int ep = epoll_create1(EPOLL_CLOEXEC), lfd, r, w;
	uint32_t seen = 0;
	uint16_t port;
	char b;

	CHECK(ep >= 0);
	lfd = h_listen(AF_INET, H_USMC, &port);
	h_smc_pair(lfd, port, &w, &r);
	CHECK(usmc_fcntl(r, F_SETFL, usmc_fcntl(r, F_GETFL) | O_NONBLOCK) == 0);
	/* Nothing to read: the read asks for the peer's next doorbell. */
	CHECK(usmc_read(r, &b, 1) < 0 && errno == EAGAIN);
	ev = (struct epoll_event){ .events = EPOLLIN | EPOLLOUT | EPOLLET, .data.u64 = 7 };
	CHECK(usmc_epoll_ctl(ep, EPOLL_CTL_ADD, r, &ev) == 0);
	hook_writer = w;
	for (int wait = 0; wait < 2 && !(seen & EPOLLIN); wait++) {
		int n = usmc_epoll_wait(ep, got, 8, wait ? 500 : 1000);

		CHECK(n >= 0);
		for (int i = 0; i < n; i++) {
			CHECK(got[i].data.u64 == 7);
			seen |= got[i].events;
		}
	}
	CHECK(hook_writer < 0);
	if (!(seen & EPOLLIN))
		fprintf(stderr, "the byte that came between the two looks was never reported (events 0x%x)\n",
			seen);
	CHECK(seen & EPOLLOUT);
	CHECK(seen & EPOLLIN);
	h_read_all(r, &b, 1);
	CHECK(b == 'z');
	CHECK(usmc_close(r) == 0 && usmc_close(w) == 0 && usmc_close(lfd) == 0);
	printf("a byte between a wait's two looks: reported: ok\n");
	return 0;
}
