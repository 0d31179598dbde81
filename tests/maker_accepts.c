// SPDX-License-Identifier: MIT
/*
 * A listener's maker that accepts too, with a worker forked beside it.
 * A client proposed on its link group to the maker while nobody else
 * waited on the listener; then the worker starts and accepts that very
 * connection.  The worker can never find the Proposal: it refuses it
 * through the registry's list and wakes the client through the
 * connection, and both ends fall back at once (0x03000006), every byte
 * intact, without the client waiting for a CLC timeout (set far beyond
 * the test's own time limit, so that such a wait fails it).
 *
 * Two rounds, one listener each:
 * - the maker has not read the Proposal when the worker accepts; its
 *   client waits in a blocking read;
 * - the maker read it first, accepting a plain connection queued before
 *   the client's, so that the registry's counts of Proposals sent and
 *   read agree; its client waits in epoll_wait.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "counters.h"
#include "harness.h"

#define LEN 50000

static int lfd[2];
static uint16_t ports[2];
static struct h_chan to_client, from_client, to_worker[2];

/* Reads a connection to its end and echoes its length and checksum. */
static void echo(int fd)
{
	uint64_t reply[2];

	reply[0] = h_read_to_eof(fd, &reply[1], 8192, NULL);
	h_write_all(fd, reply, sizeof(reply));
}

static void check_info(int fd, int mode, uint32_t reason, const char *who)
{
	struct usmc_info info;

	CHECK(usmc_info(fd, &info, sizeof(info)) == 0);
	if (info.mode != mode || (reason && info.fallback_reason != reason))
		fprintf(stderr, "%s: mode %d, reason %s\n", who, info.mode,
			usmc_reason_str(info.fallback_reason));
	CHECK(info.mode == mode && (!reason || info.fallback_reason == reason));
}

static int worker(void *arg)
{
	int i = (int)(uintptr_t)arg, fd;

	h_chan_recv(&to_worker[i]);
	fd = usmc_accept(lfd[i], NULL, NULL);
	CHECK(fd >= 0);
	check_info(fd, USMC_MODE_FALLBACK, USMC_DECL_LISTENSHARED, "worker");
	echo(fd);
	CHECK(usmc_close(fd) == 0);
	return 0;
}

static void check_echo(int fd, size_t len, uint64_t sum)
{
	uint64_t reply[2];

	h_read_all(fd, reply, sizeof(reply));
	CHECK(reply[0] == len && reply[1] == sum);
}

static int client(void *arg)
{
	uint64_t sum;
	int fd;

	(void)arg;
	/* A link group to the maker for each port, which it accepts alone. */
	for (int r = 0; r < 2; r++) {
		fd = h_send_half(ports[r], 1000, 10 + (uint64_t)r, &sum);
		check_echo(fd, 1000, sum);
		check_info(fd, USMC_MODE_SMCD, 0, "client, first connection");
		CHECK(usmc_close(fd) == 0);
	}
	h_chan_send(&from_client, 1);
	for (int r = 0; r < 2; r++) {
		h_chan_recv(&to_client);
		/* Nobody but the maker waited on the listener: it goes on that link group. */
		fd = h_send_half(ports[r], LEN, (uint64_t)r, &sum);
		h_chan_send(&from_client, 2);
		if (r == 1) {
			int ep = epoll_create1(EPOLL_CLOEXEC);
			struct epoll_event ev = { .events = EPOLLIN };

			CHECK(ep >= 0 && usmc_epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) == 0);
			CHECK(usmc_epoll_wait(ep, &ev, 1, -1) == 1);
			CHECK(close(ep) == 0);
		}
		check_echo(fd, LEN, sum);
		check_info(fd, USMC_MODE_FALLBACK, USMC_DECL_LISTENSHARED, "client");
		CHECK(usmc_close(fd) == 0);
	}
	return 0;
}

int main(void)
{
	char dir[] = "/tmp/usmc-maker-accepts-XXXXXX";
	uint64_t smc, fallbacks, clc_timeouts;
	pid_t workers[2], cli;
	int fd, plain;

	CHECK(mkdtemp(dir));
	setenv("USMC_REGISTRY_DIR", dir, 1);
	/* Far beyond the time limit: a client that waits for one fails the test. */
	setenv("USMC_CLC_TIMEOUT_MS", "60000", 1);
	alarm(30);
	h_chan_open(&to_client);
	h_chan_open(&from_client);
	for (int i = 0; i < 2; i++) {
		lfd[i] = h_listen(AF_INET, H_USMC, &ports[i]);
		h_chan_open(&to_worker[i]);
	}
	for (int i = 0; i < 2; i++)
		workers[i] = h_fork(worker, (void *)(uintptr_t)i);
	cli = h_fork(client, NULL);
	for (int r = 0; r < 2; r++) {
		fd = usmc_accept(lfd[r], NULL, NULL);
		CHECK(fd >= 0);
		echo(fd);
		check_info(fd, USMC_MODE_SMCD, 0, "maker");
		CHECK(usmc_close(fd) == 0);
	}
	CHECK(h_chan_recv(&from_client) == 1);

	/* The maker never reads the Proposal: the worker accepts first. */
	h_chan_send(&to_client, 1);
	CHECK(h_chan_recv(&from_client) == 2);
	h_chan_send(&to_worker[0], 1);
	CHECK(h_wait_ok(workers[0]));

	/* The maker reads it, accepting a plain connection queued before it. */
	plain = h_connect(AF_INET, H_PLAIN, ports[1]);
	h_chan_send(&to_client, 1);
	CHECK(h_chan_recv(&from_client) == 2);
	fd = usmc_accept(lfd[1], NULL, NULL);
	CHECK(fd >= 0);
	check_info(fd, USMC_MODE_FALLBACK, USMC_DECL_PEERNOSMC, "maker, plain client");
	CHECK(usmc_close(fd) == 0 && close(plain) == 0);
	h_chan_send(&to_worker[1], 1);
	CHECK(h_wait_ok(workers[1]));
	CHECK(h_wait_ok(cli));

	counters(&smc, &fallbacks, &clc_timeouts);
	CHECK(clc_timeouts == 0);
	printf("a worker accepted connections proposed to the listener's maker: refused and "
	       "woken through the connection, both ends TCP at once, bytes intact: ok\n");
	return 0;
}
