// SPDX-License-Identifier: MIT
/*
 * The server answers a Proposal at the accepted connection's first use
 * (usmc_listen.c), not in accept().  Two connections the server leaves
 * unused for a while, each checked by length and checksum:
 *
 *   - "client gone": the client writes, closes and exits before the
 *     server even accepts.  Its close waits a CLC timeout for an answer,
 *     then leaves its ring to the server; its channel is gone by the
 *     server's first use, so the Accept cannot be sent, and the server
 *     reads the ring it mapped at accept(): every byte, then the end, in
 *     shared memory.
 *   - "withdrawn": the client writes and waits for the reply, and the
 *     server leaves the connection alone past two CLC timeouts.  The
 *     client withdraws its Proposal; the server, reading its channel at
 *     its next accept, declines the connection it holds, and the client
 *     replays its request into TCP.  Both ends are plain TCP with the
 *     reason of a withdrawal (USMC_DECL_TIMEOUT_CLC), and the reply comes.
 *     The server accepts the client's further connections until it has
 *     declined, never on a timer of its own.
 *   - "closed unused": the server closes a connection it never used.  It
 *     is answered as at accept, then closed: the client reads the end, in
 *     shared memory as the server was, not a handshake it had to give up.
 *
 *   accept_first_use
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "counters.h"
#include "harness.h"

#define CLC_TIMEOUT_TEXT "100"
#define GONE_LEN 3000
#define REQUEST 1000
#define REPLY 500
#define MORE_MAX 200 /* further connections, 50 ms apart: 10 s */

static struct h_chan port_chan, done;
static atomic_bool settled;
static uint16_t port;

static int gone_client(void *arg)
{
	uint8_t buf[GONE_LEN];
	int fd = h_connect(AF_INET, H_USMC, port);

	(void)arg;
	h_pattern(buf, sizeof(buf), 61, 0);
	h_write_all(fd, buf, sizeof(buf));
	CHECK(usmc_close(fd) == 0);
	return 0;
}

static void client_gone(void)
{
	uint16_t p;
	int lfd = h_listen(AF_INET, H_USMC, &p), fd;
	uint8_t want[GONE_LEN];
	uint64_t sum = H_FNV_INIT, len;

	port = p;
	CHECK(h_wait_ok(h_fork(gone_client, NULL)));
	fd = usmc_accept(lfd, NULL, NULL);
	CHECK(fd >= 0);
	h_check_mode(fd, USMC_MODE_SMCD);
	len = h_read_to_eof(fd, &sum, 4096, NULL);
	h_pattern(want, sizeof(want), 61, 0);
	if (len != GONE_LEN)
		fprintf(stderr, "client gone: %llu bytes of %d\n", (unsigned long long)len, GONE_LEN);
	CHECK(len == GONE_LEN && sum == h_fnv(H_FNV_INIT, want, sizeof(want)));
	h_check_mode(fd, USMC_MODE_SMCD);
	CHECK(usmc_close(fd) == 0 && usmc_close(lfd) == 0);
	printf("client gone: %d bytes, then the end, in shared memory\n", GONE_LEN);
}

static void check_withdrawn(int fd, const char *who)
{
	struct usmc_info info;

	CHECK(usmc_info(fd, &info, sizeof(info)) == 0);
	if (info.mode != USMC_MODE_FALLBACK || info.fallback_reason != USMC_DECL_TIMEOUT_CLC)
		fprintf(stderr, "%s: mode %s, reason %s\n", who, usmc_mode_str(info.mode),
			usmc_reason_str(info.fallback_reason));
	CHECK(info.mode == USMC_MODE_FALLBACK && info.fallback_reason == USMC_DECL_TIMEOUT_CLC);
}

static int withdrawn_server(void *arg)
{
	uint16_t p;
	int lfd = h_listen(AF_INET, H_USMC, &p), first, more = 0;
	uint64_t before = counter(USMC_STAT_FALLBACKS);
	uint8_t req[REQUEST], want[REQUEST], reply[REPLY];

	(void)arg;
	h_chan_send(&port_chan, p);
	first = usmc_accept(lfd, NULL, NULL);
	CHECK(first >= 0);
	/* Left unused; each further connection is used at once, and its accept reads the channel. */
	while (counter(USMC_STAT_FALLBACKS) == before) {
		int fd = usmc_accept(lfd, NULL, NULL);

		CHECK(fd >= 0 && ++more <= MORE_MAX);
		h_check_mode(fd, USMC_MODE_SMCD);
		CHECK(usmc_close(fd) == 0);
	}
	h_read_all(first, req, sizeof(req));
	h_pattern(want, sizeof(want), 62, 0);
	CHECK(!memcmp(req, want, sizeof(want)));
	h_pattern(reply, sizeof(reply), 63, 0);
	h_write_all(first, reply, sizeof(reply));
	check_withdrawn(first, "server");
	CHECK(h_chan_recv(&done) == 1);
	CHECK(usmc_close(first) == 0 && usmc_close(lfd) == 0);
	return 0;
}

/* Further connections of the client's process, on the same link group, until the first settled. */
static void *more_connections(void *arg)
{
	(void)arg;
	for (int i = 0; i < MORE_MAX && !atomic_load(&settled); i++) {
		int fd = h_connect(AF_INET, H_USMC, port);

		CHECK(usmc_close(fd) == 0);
		usleep(50 * 1000);
	}
	return NULL;
}

static void withdrawn(void)
{
	pid_t srv = h_fork(withdrawn_server, NULL);
	uint8_t req[REQUEST], got[REPLY], want[REPLY];
	pthread_t more;
	int fd;

	port = (uint16_t)h_chan_recv(&port_chan);
	fd = h_connect(AF_INET, H_USMC, port);
	h_pattern(req, sizeof(req), 62, 0);
	h_write_all(fd, req, sizeof(req));
	CHECK(pthread_create(&more, NULL, more_connections, NULL) == 0);
	h_read_all(fd, got, sizeof(got));
	atomic_store(&settled, true);
	CHECK(pthread_join(more, NULL) == 0);
	h_pattern(want, sizeof(want), 63, 0);
	CHECK(!memcmp(got, want, sizeof(want)));
	check_withdrawn(fd, "client");
	h_chan_send(&done, 1);
	CHECK(h_wait_ok(srv));
	CHECK(usmc_close(fd) == 0);
	printf("withdrawn: the request and the reply over TCP (%s)\n",
	       usmc_reason_str(USMC_DECL_TIMEOUT_CLC));
}

static int closed_unused_client(void *arg)
{
	int fd = h_connect(AF_INET, H_USMC, port);
	uint8_t byte;

	(void)arg;
	CHECK(usmc_read(fd, &byte, 1) == 0);
	h_check_mode(fd, USMC_MODE_SMCD);
	CHECK(usmc_close(fd) == 0);
	return 0;
}

static void closed_unused(void)
{
	uint16_t p;
	int lfd = h_listen(AF_INET, H_USMC, &p), fd;
	pid_t pid;

	port = p;
	pid = h_fork(closed_unused_client, NULL);
	fd = usmc_accept(lfd, NULL, NULL);
	CHECK(fd >= 0);
	CHECK(usmc_close(fd) == 0);
	CHECK(h_wait_ok(pid));
	CHECK(usmc_close(lfd) == 0);
	printf("closed unused: the client read the end, in shared memory\n");
}

int main(void)
{
	h_registry_own("accept_first_use");
	CHECK(setenv("USMC_CLC_TIMEOUT_MS", CLC_TIMEOUT_TEXT, 1) == 0);
	h_chan_open(&port_chan);
	h_chan_open(&done);
	client_gone();
	withdrawn();
	closed_unused();
	printf("accept_first_use: ok\n");
	return 0;
}
