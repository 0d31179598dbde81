// SPDX-License-Identifier: MIT
/*
 * More connections ready than a wait has room for: each must be reported
 * in turn, as the kernel's epoll takes turns through its ready list.
 * CONNS connections in shared memory stay writable (level-triggered
 * EPOLLOUT, their rings with room); waits with maxevents 1, then 3, must
 * report every one of them within two rounds.  A wait that always began
 * its look at the same place reported the same first ones for ever.
 */
#include <sys/epoll.h>
#include <unistd.h>

#include "harness.h"

#define CONNS 5

int main(void)
{
	int ep = epoll_create1(EPOLL_CLOEXEC), lfd, c[CONNS], a[CONNS];
	uint16_t port;

	CHECK(ep >= 0);
	lfd = h_listen(AF_INET, H_USMC, &port);
	for (int i = 0; i < CONNS; i++) {
		struct epoll_event ev = { .events = EPOLLOUT, .data.u64 = (uint64_t)i };

		h_smc_pair(lfd, port, &c[i], &a[i]);
		CHECK(usmc_epoll_ctl(ep, EPOLL_CTL_ADD, a[i], &ev) == 0);
	}
	for (int maxevents = 1; maxevents <= 3; maxevents += 2) {
		int seen[CONNS] = { 0 }, missing = 0;

		for (int w = 0; w < 2 * CONNS; w++) {
			struct epoll_event got[3];
			int n = usmc_epoll_wait(ep, got, maxevents, 1000);

			CHECK(n == maxevents);
			for (int i = 0; i < n; i++)
				seen[got[i].data.u64]++;
		}
		for (int i = 0; i < CONNS; i++)
			missing += !seen[i];
		if (missing)
			fprintf(stderr, "maxevents %d: %d of %d ready connections never reported\n",
				maxevents, missing, CONNS);
		CHECK(missing == 0);
	}
	for (int i = 0; i < CONNS; i++)
		CHECK(usmc_close(a[i]) == 0 && usmc_close(c[i]) == 0);
	CHECK(usmc_close(lfd) == 0);
	printf("%d ready connections, waits with less room: each reported in turn: ok\n", CONNS);
	return 0;
}
