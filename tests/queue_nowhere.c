// SPDX-License-Identifier: MIT
/*
 * Two workers of a shared listener each accept a plain client's
 * connection at the same moment, while the Proposals of 600 usmc clients
 * connected behind them wait in the backlog the workers share.  Neither
 * Proposal is anywhere: each worker must say so after looking once
 * through its backlog and its side queue (0x03010000, peer did not
 * indicate SMC), not look again because the other worker puts entries
 * back meanwhile, into other side queues or round its own.  Minding every
 * hand-back, the two kept each other looking until the CLC timeout
 * (0x02030000), their event loops stopped for it: nginx as Debian ships
 * it answered nothing for seconds at the start of a storm.
 */
#include <poll.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#define WORKERS 2
#define PROPOSED 600

static int lfd;
static struct h_chan ready, go, told;

/* A worker: a look at the listener (it is shared now), then one accept, and what became of it. */
static int worker(void *arg)
{
	struct pollfd p = { .fd = lfd, .events = POLLIN };
	struct usmc_info info;
	int fd;

	(void)arg;
	usmc_poll(&p, 1, 0);
	h_chan_send(&ready, 1);
	h_chan_recv(&go);
	fd = usmc_accept(lfd, NULL, NULL);
	CHECK(fd >= 0);
	CHECK(usmc_info(fd, &info, sizeof(info)) == 0);
	h_chan_send(&told, (uint64_t)info.mode << 32 | info.fallback_reason);
	return 0;
}

int main(void)
{
	int plain[WORKERS], proposed[PROPOSED];
	pid_t pids[WORKERS];
	uint16_t port;

	h_raise_nofile(8 * PROPOSED + 64);
	lfd = h_listen(AF_INET, H_USMC, &port);
	h_chan_open(&ready);
	h_chan_open(&go);
	h_chan_open(&told);
	for (int i = 0; i < WORKERS; i++)
		pids[i] = h_fork(worker, NULL);
	for (int i = 0; i < WORKERS; i++)
		h_chan_recv(&ready);
	/* First in the accept queue: the plain clients, whose Proposals are nowhere. */
	for (int i = 0; i < WORKERS; i++)
		plain[i] = h_connect(AF_INET, H_PLAIN, port);
	for (int i = 0; i < PROPOSED; i++)
		proposed[i] = h_connect(AF_INET, H_USMC, port);
	for (int i = 0; i < WORKERS; i++)
		h_chan_send(&go, 1);
	for (int i = 0; i < WORKERS; i++) {
		uint64_t v = h_chan_recv(&told);
		uint32_t reason = (uint32_t)v;

		printf("worker's plain connection: mode %u, %s\n", (unsigned)(v >> 32),
		       usmc_reason_str(reason));
		CHECK((int)(v >> 32) == USMC_MODE_FALLBACK && reason == USMC_DECL_PEERNOSMC);
	}
	for (int i = 0; i < WORKERS; i++)
		CHECK(h_wait_ok(pids[i]));
	for (int i = 0; i < WORKERS; i++)
		CHECK(close(plain[i]) == 0);
	printf("two workers, each a plain client's connection, 600 Proposals behind: "
	       "each taken as plain after one look: ok\n");
	fflush(stdout);
	/* The usmc clients' connections were never accepted: nothing of them is checked. */
	(void)proposed;
	_exit(0);
}
