// SPDX-License-Identifier: MIT
/*
 * A server that hands each connection it accepts to a worker with
 * SCM_RIGHTS, as Node.js's cluster primary does (its default on Linux):
 * the worker knows nothing of usmc (its reads and writes are the
 * kernel's), so a connection in shared memory would give it doorbell
 * bytes, and its answer would go where the client does not read.
 *
 *   - The first connection is in shared memory when it is passed: it is
 *     reset.  The client reads ECONNRESET at once, never an answer; the
 *     worker reads no byte, only the end (end of file, or ECONNRESET)
 *     once the client closes, as a client that read a reset does: the
 *     doorbells the client rang are drained before the descriptor goes.
 *   - From then on the primary's connections are plain TCP
 *     (USMC_DECL_PASSED at both ends), and the worker serves them: a
 *     request of 100 bytes, an answer of 64 KiB, checked by length and
 *     checksum.
 *
 * Every wait is bounded (WAIT_MS): a hang fails with what was waited for.
 */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#define CONNS 3
#define REQUEST 100
#define ANSWER (64 * 1024)
#define WAIT_MS 10000

static struct h_chan port_chan, wrote, served, done;

/* The next descriptor handed over on sp; -1 at the end. */
static int receive_fd(int sp)
{
	char byte, cbuf[CMSG_SPACE(sizeof(int))];
	struct iovec iov = { &byte, 1 };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			     .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *c;
	int fd;

	if (recvmsg(sp, &mh, 0) <= 0)
		return -1;
	c = CMSG_FIRSTHDR(&mh);
	CHECK(c && c->cmsg_type == SCM_RIGHTS);
	memcpy(&fd, CMSG_DATA(c), sizeof(fd));
	return fd;
}

/* Reads up to len bytes, waiting at most WAIT_MS for each: bytes read, or -errno. */
static ssize_t read_bounded(int fd, uint8_t *buf, size_t len)
{
	size_t got = 0;

	while (got < len) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t n;

		if (poll(&p, 1, WAIT_MS) != 1) {
			fprintf(stderr, "no byte for %d ms after %zu of %zu\n", WAIT_MS, got, len);
			exit(1);
		}
		n = read(fd, buf + got, len - got);
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		got += (size_t)n;
	}
	return (ssize_t)got;
}

/* The worker: plain calls only, as a program that knows nothing of usmc. */
static int worker(void *arg)
{
	int sp = (int)(intptr_t)arg, fd;
	static uint8_t answer[ANSWER];

	h_pattern(answer, sizeof(answer), 2, 0);
	for (int i = 0; i < CONNS && (fd = receive_fd(sp)) >= 0; i++) {
		uint8_t req[REQUEST];
		ssize_t n = read_bounded(fd, req, sizeof(req));

		if (i == 0) {
			/* The connection reset: no byte, the end. */
			printf("worker: connection 1: %s\n",
			       n <= 0 ? (n == 0 ? "end of file" : strerror((int)-n)) : "bytes");
			fflush(stdout);
			CHECK(n <= 0);
		} else {
			uint8_t want[REQUEST];

			h_pattern(want, sizeof(want), 1, (uint64_t)i);
			CHECK(n == REQUEST && !memcmp(req, want, sizeof(want)));
			h_write_all(fd, answer, sizeof(answer));
		}
		CHECK(close(fd) == 0);
		h_chan_send(&served, (uint64_t)i);
	}
	return 0;
}

static int primary(void *arg)
{
	int sp = (int)(intptr_t)arg;
	uint16_t port;
	int lfd = h_listen(AF_INET, H_USMC, &port);

	int fds[CONNS];

	h_chan_send(&port_chan, port);
	for (int i = 0; i < CONNS; i++) {
		char byte = 0, cbuf[CMSG_SPACE(sizeof(int))];
		struct iovec iov = { &byte, 1 };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
				     .msg_controllen = sizeof(cbuf) };
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		int fd = usmc_accept(lfd, NULL, NULL);

		CHECK(fd >= 0);
		/* The client's request is in: in shared memory, and its doorbell in the socket. */
		CHECK(h_chan_recv(&wrote) == (uint64_t)i);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof(fd));
		CHECK(usmc_sendmsg(sp, &mh, 0) == 1);
		fds[i] = fd;
	}
	/* Its copies kept until the end, as a dispatcher may: nobody waits on them. */
	CHECK(h_chan_recv(&done) == CONNS);
	for (int i = 0; i < CONNS; i++)
		CHECK(usmc_close(fds[i]) == 0);
	CHECK(usmc_close(lfd) == 0);
	return 0;
}

static int settled(int fd)
{
	struct usmc_info info;

	CHECK(usmc_info(fd, &info, sizeof(info)) == 0);
	return info.mode;
}

static void check_reason(int fd, uint32_t reason, const char *who)
{
	struct usmc_info info;

	CHECK(usmc_info(fd, &info, sizeof(info)) == 0);
	if (info.mode != USMC_MODE_FALLBACK || info.fallback_reason != reason)
		fprintf(stderr, "%s: mode %d, reason %s\n", who, info.mode,
			usmc_reason_str(info.fallback_reason));
	CHECK(info.mode == USMC_MODE_FALLBACK && info.fallback_reason == reason);
}

int main(void)
{
	int sp[2];
	pid_t wk, pr;
	uint16_t port;

	h_chan_open(&port_chan);
	h_chan_open(&wrote);
	h_chan_open(&served);
	h_chan_open(&done);
	CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sp) == 0);
	wk = h_fork(worker, (void *)(intptr_t)sp[1]);
	pr = h_fork(primary, (void *)(intptr_t)sp[0]);
	CHECK(close(sp[0]) == 0 && close(sp[1]) == 0);
	port = (uint16_t)h_chan_recv(&port_chan);
	for (int i = 0; i < CONNS; i++) {
		int fd = h_connect(AF_INET, H_USMC, port);
		uint8_t req[REQUEST], got[ANSWER], want[ANSWER];
		ssize_t n = 0;
		size_t have = 0;

		h_pattern(req, sizeof(req), 1, (uint64_t)i);
		/* In shared memory first, so that the request rings the server (its first data). */
		for (int t = 0; i == 0 && settled(fd) == USMC_MODE_HANDSHAKE; t++) {
			struct pollfd p = { .fd = fd, .events = POLLOUT };

			CHECK(t < WAIT_MS && usmc_poll(&p, 1, 1) >= 0);
		}
		CHECK(i > 0 || settled(fd) == USMC_MODE_SMCD);
		h_write_all(fd, req, sizeof(req));
		h_chan_send(&wrote, (uint64_t)i);
		while (have < sizeof(got) && (n = usmc_read(fd, got + have, sizeof(got) - have)) > 0)
			have += (size_t)n;
		if (i == 0) {
			printf("client: connection 1: %zu bytes, then %s\n", have,
			       n < 0 ? strerror(errno) : "end of file");
			CHECK(have == 0 && n < 0 && errno == ECONNRESET);
		} else {
			h_pattern(want, sizeof(want), 2, 0);
			CHECK(have == sizeof(want) && !memcmp(got, want, sizeof(want)));
			check_reason(fd, USMC_DECL_PASSED, "client");
			printf("client: connection %d: %zu bytes, as sent, plain TCP (%s)\n", i + 1,
			       have, usmc_reason_str(USMC_DECL_PASSED));
		}
		/* A client that read a reset closes: the worker reads the end then. */
		CHECK(usmc_close(fd) == 0);
		CHECK(h_chan_recv(&served) == (uint64_t)i);
	}
	h_chan_send(&done, CONNS);
	CHECK(h_wait_ok(pr));
	CHECK(h_wait_ok(wk));
	printf("pass_conn: ok\n");
	return 0;
}
