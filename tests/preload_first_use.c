// SPDX-License-Identifier: MIT
/*
 * Under usmc-run the server answers a Proposal at the accepted
 * connection's first use, not in accept() (usmc_listen.c).  An ordinary
 * program, both ends in it (forked), for usmc-run to take over; the
 * script (preload_first_use.sh) reads the counters after each case.
 *
 *   preload_first_use pass
 *       A primary accepts each connection and hands it, unused, to a
 *       worker with SCM_RIGHTS, as Node.js's cluster does.  The worker
 *       reads exactly the request, by the kernel's count of the bytes its
 *       TCP socket received (tcpi_bytes_received), and answers 64 KiB.
 *       Every connection, the first too: plain TCP, 0x03000008 (the
 *       client's later ones propose no more: 0x03010000 at the server).
 *   preload_first_use withdrawn
 *       The server leaves its first connection unused while its client
 *       waits for the reply, past two CLC timeouts (USMC_CLC_TIMEOUT_MS,
 *       set short): the client withdraws, and the server, reading its
 *       channel at its next accept, declines.  The server accepts and
 *       uses further connections of the client's process until the
 *       kernel counts the request on the first one's TCP socket (its
 *       getsockopt is no use), then serves it.
 *   preload_first_use closed
 *       The server closes a connection it never used: answered, then
 *       closed; the client reads the end, in shared memory.
 *
 * Every transfer is checked by length and checksum.
 */
#include <linux/tcp.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "plain.h"

#define CONNS 3
#define REQUEST 100
#define ANSWER (64 * 1024)
#define MORE_MAX 200 /* further connections, 50 ms apart: 10 s */

static uint16_t port;
static atomic_bool settled;

static void fill(uint8_t *buf, size_t len, unsigned seed)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = (uint8_t)(i * 31 + seed + (i >> 9));
}

/* Reads to the end or len bytes; how many. */
static size_t read_upto(int fd, void *buf, size_t len)
{
	size_t got = 0;
	ssize_t n = 1;

	while (got < len && (n = read(fd, (char *)buf + got, len - got)) > 0)
		got += (size_t)n;
	CHECK(n >= 0);
	return got;
}

static int connect_port(void)
{
	struct sockaddr_storage ss;
	socklen_t len = loopback_addr(AF_INET, port, &ss);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	CHECK(fd >= 0 && connect(fd, (struct sockaddr *)&ss, len) == 0);
	return fd;
}

static uint64_t tcp_received(int fd)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);

	CHECK(getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) == 0);
	return ti.tcpi_bytes_received;
}

/* The request and the answer of a client, checked. */
static void client_round(int fd, unsigned seed)
{
	uint8_t req[REQUEST], got[ANSWER], want[ANSWER];

	fill(req, sizeof(req), seed);
	write_all(fd, req, sizeof(req));
	CHECK(read_upto(fd, got, sizeof(got)) == sizeof(got));
	fill(want, sizeof(want), seed + 1);
	CHECK(!memcmp(got, want, sizeof(want)));
}

/* Serves a client's round; with exact, no byte but the request came on TCP, by the kernel's count. */
static void serve_round(int fd, unsigned seed, bool exact)
{
	uint8_t req[REQUEST], want[REQUEST], answer[ANSWER];
	uint64_t on_tcp;

	CHECK(read_upto(fd, req, sizeof(req)) == sizeof(req));
	fill(want, sizeof(want), seed);
	CHECK(!memcmp(req, want, sizeof(want)));
	/* Before the answer: the client's end (a FIN counts one) comes only after it. */
	on_tcp = tcp_received(fd);
	if (exact && on_tcp != REQUEST)
		fprintf(stderr, "connection %u: %llu bytes on TCP\n", seed + 1, (unsigned long long)on_tcp);
	CHECK(!exact || on_tcp == REQUEST);
	fill(answer, sizeof(answer), seed + 1);
	write_all(fd, answer, sizeof(answer));
}

static pid_t fork_run(void (*fn)(int), int arg)
{
	pid_t pid = fork();

	CHECK(pid >= 0);
	if (pid == 0) {
		fn(arg);
		_exit(0);
	}
	return pid;
}

static void reap(pid_t pid)
{
	int status;

	CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* ---- pass ---- */

static void worker(int sp)
{
	for (int i = 0; i < CONNS; i++) {
		char byte, cbuf[CMSG_SPACE(sizeof(int))];
		struct iovec iov = { &byte, 1 };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
				     .msg_controllen = sizeof(cbuf) };
		struct cmsghdr *c;
		int fd;

		CHECK(recvmsg(sp, &mh, 0) == 1);
		c = CMSG_FIRSTHDR(&mh);
		CHECK(c && c->cmsg_type == SCM_RIGHTS);
		memcpy(&fd, CMSG_DATA(c), sizeof(fd));
		/* No byte of usmc's came on TCP: the kernel counted the request alone. */
		serve_round(fd, (unsigned)i, true);
		CHECK(close(fd) == 0);
	}
}

static void pass_clients(int lfd)
{
	close(lfd);
	for (int i = 0; i < CONNS; i++) {
		int fd = connect_port();

		client_round(fd, (unsigned)i);
		CHECK(close(fd) == 0);
	}
}

static void case_pass(void)
{
	int sp[2], lfd = loopback_listen(&port);
	pid_t wk, cl;

	CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sp) == 0);
	wk = fork_run(worker, sp[1]);
	close(sp[1]);
	cl = fork_run(pass_clients, lfd);
	for (int i = 0; i < CONNS; i++) {
		char byte = 0, cbuf[CMSG_SPACE(sizeof(int))];
		struct iovec iov = { &byte, 1 };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
				     .msg_controllen = sizeof(cbuf) };
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		int fd = accept(lfd, NULL, NULL);

		CHECK(fd >= 0);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof(fd));
		CHECK(sendmsg(sp[0], &mh, 0) == 1);
		CHECK(close(fd) == 0);
	}
	reap(cl);
	reap(wk);
	close(sp[0]);
	close(lfd);
	printf("pass: %d connections handed on unused, each served whole over TCP\n", CONNS);
}

/* ---- withdrawn ---- */

/* Further connections of the client's process, on the same link group, until the first settled. */
static void *more_connections(void *arg)
{
	(void)arg;
	for (int i = 0; i < MORE_MAX && !atomic_load(&settled); i++) {
		uint8_t byte;
		int fd = connect_port();

		/* The server uses it at once: it writes a byte and closes. */
		CHECK(read_upto(fd, &byte, 1) == 1);
		CHECK(close(fd) == 0);
		usleep(50 * 1000);
	}
	return NULL;
}

static void withdrawn_client(int lfd)
{
	pthread_t more;
	int fd;

	close(lfd);
	fd = connect_port();
	CHECK(pthread_create(&more, NULL, more_connections, NULL) == 0);
	client_round(fd, 7);
	atomic_store(&settled, true);
	CHECK(pthread_join(more, NULL) == 0);
	CHECK(close(fd) == 0);
}

static void case_withdrawn(void)
{
	int lfd = loopback_listen(&port), first, more = 0;
	pid_t cl = fork_run(withdrawn_client, lfd);

	first = accept(lfd, NULL, NULL);
	CHECK(first >= 0);
	/* Left unused: each further connection is used at once, and its accept reads the channel. */
	while (tcp_received(first) < REQUEST) {
		int fd = accept(lfd, NULL, NULL);

		CHECK(fd >= 0 && ++more <= MORE_MAX);
		write_all(fd, "x", 1);
		CHECK(close(fd) == 0);
	}
	serve_round(first, 7, true);
	reap(cl);
	CHECK(close(first) == 0 && close(lfd) == 0);
	printf("withdrawn: the request came over TCP after %d more connections, and the answer went\n",
	       more);
}

/* ---- closed ---- */

static void closed_client(int lfd)
{
	uint8_t byte;
	int fd;

	close(lfd);
	fd = connect_port();
	CHECK(read(fd, &byte, 1) == 0);
	CHECK(close(fd) == 0);
}

static void case_closed(void)
{
	int lfd = loopback_listen(&port), fd;
	pid_t cl = fork_run(closed_client, lfd);

	fd = accept(lfd, NULL, NULL);
	CHECK(fd >= 0 && close(fd) == 0);
	reap(cl);
	close(lfd);
	printf("closed: the client read the end\n");
}

int main(int argc, char **argv)
{
	const char *c = argc > 1 ? argv[1] : "";

	alarm(50); /* safety net only */
	if (!strcmp(c, "pass"))
		case_pass();
	else if (!strcmp(c, "withdrawn"))
		case_withdrawn();
	else if (!strcmp(c, "closed"))
		case_closed();
	else {
		fprintf(stderr, "usage: preload_first_use pass|withdrawn|closed\n");
		return 2;
	}
	return 0;
}
