// SPDX-License-Identifier: MIT
/*
 * Proposals and accepts in different orders.  Two threads of the client
 * connect at once over one link group: each sends its Proposal, then
 * connects, so the channel's order and the accept queue's differ
 * whenever a thread is overtaken between the two.  An accept that reads
 * only the first Proposal of the channel must read on when that one is
 * another connection's: every connection is in shared memory on both
 * ends, with its bytes.
 *
 *   accept_order [ROUNDS]   connections per thread (default 300)
 */
#include <pthread.h>

#include "harness.h"

#define THREADS 4

static int rounds = 300;
static uint16_t port;

static void *connector(void *arg)
{
	uint64_t seed = (uint64_t)(uintptr_t)arg;

	for (int i = 0; i < rounds; i++) {
		int fd = h_connect(AF_INET, H_USMC, port);
		uint64_t v = seed * 1000000 + (uint64_t)i, back;

		h_write_all(fd, &v, sizeof(v));
		h_read_all(fd, &back, sizeof(back));
		CHECK(back == ~v);
		h_check_mode(fd, USMC_MODE_SMCD);
		CHECK(usmc_close(fd) == 0);
	}
	return NULL;
}

static int client(void *arg)
{
	pthread_t t[THREADS];

	port = (uint16_t)(uintptr_t)arg;
	for (uintptr_t i = 0; i < THREADS; i++)
		CHECK(pthread_create(&t[i], NULL, connector, (void *)(i + 1)) == 0);
	for (int i = 0; i < THREADS; i++)
		CHECK(pthread_join(t[i], NULL) == 0);
	printf("accept_order: %d connections from %d threads, all in shared memory: ok\n",
	       THREADS * rounds, THREADS);
	fflush(stdout);
	return 0;
}

static struct h_chan port_chan;

static int server(void *arg)
{
	uint16_t p;
	int lfd = h_listen(AF_INET, H_USMC, &p);

	(void)arg;
	h_chan_send(&port_chan, p);
	for (int i = 0; i < THREADS * rounds; i++) {
		int fd = usmc_accept(lfd, NULL, NULL);
		uint64_t v;

		CHECK(fd >= 0);
		h_check_mode(fd, USMC_MODE_SMCD);
		h_read_all(fd, &v, sizeof(v));
		v = ~v;
		h_write_all(fd, &v, sizeof(v));
		CHECK(usmc_close(fd) == 0);
	}
	CHECK(usmc_close(lfd) == 0);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc > 1)
		rounds = atoi(argv[1]);
	h_run_pair(server, client, &port_chan);
	return 0;
}
