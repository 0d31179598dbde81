// SPDX-License-Identifier: MIT
/*
 * Neither end of a link group waits on the other's reading of the
 * channel.  Proposals and Accepts fill a channel after a few hundred
 * unread; whoever then sends waits a CLC timeout and gives the link
 * group up, and the connections fall back.  Every connection must end in
 * shared memory, its payload checked by length and checksum.
 *
 *   --read, --poll  A client that proposed many connections, then waits on
 *                   the first one, in a blocking read or in poll(), while
 *                   the server accepts the others: its wait takes in their
 *                   Accepts.  The server reads the Proposals batch by
 *                   batch (one accept each), and accepts the rest only
 *                   once the client waits.
 *   --burst         A server that accepts nothing until all are proposed:
 *                   the client's Proposals go on more link groups.
 *
 *   answers_unread --read | --poll | --burst [connections]
 */
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"

static int nconns = 500;
static enum { BY_READ, BY_POLL, BURST } mode;
#define BATCH 100
static struct h_chan to_client, to_server;

static uint64_t reply_of(int i)
{
	return 0x5eed0000u + (uint64_t)i;
}

static int server(void *arg)
{
	int *fds = calloc((size_t)nconns, sizeof(int));
	uint16_t port;
	int lfd = h_listen(AF_INET, H_USMC, &port);

	(void)arg;
	CHECK(fds);
	h_chan_send(&to_client, port);
	for (int i = 0; i < nconns; i++) {
		/*
		 * A batch proposed: one accept reads all of its Proposals.  The
		 * rest are accepted once the client waits (or, in a burst, has
		 * proposed them all).
		 */
		if (i == 0 || (mode != BURST && i < nconns / BATCH))
			CHECK(h_chan_recv(&to_server) == 1);
		if (i == (mode == BURST ? 0 : nconns / BATCH))
			usleep(100 * 1000);
		fds[i] = usmc_accept(lfd, NULL, NULL);
		CHECK(fds[i] >= 0);
		h_check_mode(fds[i], USMC_MODE_SMCD);
		if (mode != BURST && i < nconns / BATCH)
			h_chan_send(&to_client, 1);
	}
	for (int i = 0; i < nconns; i++) {
		uint64_t v = reply_of(i), got, sum;
		uint8_t expect[64];

		h_read_all(fds[i], &got, sizeof(got));
		CHECK(got == (uint64_t)i);
		h_write_all(fds[i], &v, sizeof(v));
		CHECK(h_read_to_eof(fds[i], &sum, 64, NULL) == sizeof(expect));
		h_pattern(expect, sizeof(expect), (uint64_t)i, 0);
		CHECK(sum == h_fnv(H_FNV_INIT, expect, sizeof(expect)));
		CHECK(usmc_close(fds[i]) == 0);
	}
	CHECK(usmc_close(lfd) == 0);
	free(fds);
	return 0;
}

int main(int argc, char **argv)
{
	int *fds;
	uint16_t port;
	pid_t pid;

	if (argc < 2 || (strcmp(argv[1], "--read") && strcmp(argv[1], "--poll") &&
			 strcmp(argv[1], "--burst"))) {
		fprintf(stderr, "usage: %s --read|--poll|--burst [connections]\n", argv[0]);
		return 2;
	}
	mode = !strcmp(argv[1], "--read") ? BY_READ : !strcmp(argv[1], "--poll") ? BY_POLL : BURST;
	if (argc > 2)
		nconns = atoi(argv[2]);
	h_raise_nofile(nconns + 64);
	fds = calloc((size_t)nconns, sizeof(int));
	CHECK(fds);
	h_chan_open(&to_client);
	h_chan_open(&to_server);
	pid = h_fork(server, NULL);
	port = (uint16_t)h_chan_recv(&to_client);
	for (int i = 0; i < nconns; i++) {
		uint64_t v = (uint64_t)i;

		fds[i] = h_connect(AF_INET, H_USMC, port);
		/* Into our own ring, before any answer: the server reads it once it accepts. */
		h_write_all(fds[i], &v, sizeof(v));
		if (mode != BURST && (i + 1) % BATCH == 0 && i + 1 < nconns) {
			h_chan_send(&to_server, 1);
			CHECK(h_chan_recv(&to_client) == 1);
		}
	}
	h_chan_send(&to_server, 1);
	for (int i = 0; i < nconns; i++) {
		uint8_t buf[64];
		uint64_t got;

		if (mode == BY_POLL) {
			struct pollfd p = { .fd = fds[i], .events = POLLIN };

			CHECK(usmc_poll(&p, 1, -1) == 1);
		}
		h_read_all(fds[i], &got, sizeof(got));
		CHECK(got == reply_of(i));
		h_pattern(buf, sizeof(buf), (uint64_t)i, 0);
		h_write_all(fds[i], buf, sizeof(buf));
		CHECK(usmc_shutdown(fds[i], SHUT_WR) == 0);
		h_check_mode(fds[i], USMC_MODE_SMCD);
	}
	for (int i = 0; i < nconns; i++)
		CHECK(usmc_close(fds[i]) == 0);
	CHECK(h_wait_ok(pid));
	printf("%d connections, %s: ok\n", nconns, argv[1]);
	free(fds);
	return 0;
}
