// SPDX-License-Identifier: MIT
/*
 * More of the calls glibc exports under a second name or as a variant of
 * another (diff_zcopy.c's aliases case has __read, __write, preadv2 and
 * pwritev2): the waits ppoll, __ppoll_chk, pselect, epoll_pwait,
 * __select, __poll and __poll_chk on a connection whose bytes come
 * through shared memory, which a wait that reaches the kernel would sleep
 * through; and dup3, __dup2, __fcntl, __close, __send, __connect,
 * preadv64v2 and pwritev64v2, whose copies and closes usmc must know of.
 * A program calls the second names when it was built against an old libc,
 * with _FORTIFY_SOURCE (the _chk ones), or by way of a library that does.
 */
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/uio.h>

#include "diff.h"

/* libc's public aliases and fortified entry points; its headers do not declare them. */
extern int __select(int nfds, fd_set *rd, fd_set *wr, fd_set *ex, struct timeval *timeout);
extern int __poll(struct pollfd *fds, nfds_t nfds, int timeout);
extern int __poll_chk(struct pollfd *fds, nfds_t nfds, int timeout, size_t fds_len);
extern int __ppoll_chk(struct pollfd *fds, nfds_t nfds, const struct timespec *timeout,
		       const sigset_t *mask, size_t fds_len);
extern int __dup2(int fd, int to);
extern int __fcntl(int fd, int cmd, ...);
extern int __close(int fd);
extern ssize_t __send(int fd, const void *buf, size_t len, int flags);
extern int __connect(int fd, const struct sockaddr *addr, socklen_t len);

enum { GO = 1, CLOSED, CONNECTED, DONE };

/* ---- the waits: each round the server sends once the client waits ---- */

#define WAIT_SEED 120
#define CHUNK 3000

/*
 * Each round the client asks for CHUNK bytes, then waits with the call
 * under test.  The bytes may come before the wait begins or during it:
 * either way the answer is "readable", and only a wait that never asked
 * usmc (the kernel's, on a socket whose bytes are in shared memory)
 * misses them, and says 0 once its time is up.
 */
struct round {
	struct end *e;
	int n;
};

static void ask(struct round *r)
{
	tell(r->e, GO);
}

/* Says what the wait answered, then reads the round's bytes. */
static void waited(struct round *r, const char *what, long rc, bool readable)
{
	say_rc(what, rc);
	say("  readable: %s", readable ? "yes" : "no");
	recv_pattern(r->e->fd, WAIT_SEED, (uint64_t)r->n * CHUNK, CHUNK, "  the bytes");
	r->n++;
}

static const struct timespec wait_ts = { .tv_sec = WAIT_MS / 1000 };

static void waits_client(struct end *e)
{
	struct round r = { .e = e };
	struct pollfd p = { .fd = e->fd, .events = POLLIN };
	struct epoll_event ev = { .events = EPOLLIN }, out = { 0 };
	struct timeval tv;
	sigset_t mask;
	fd_set rd;
	int ep = epoll_create1(EPOLL_CLOEXEC);
	long rc;

	if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, e->fd, &ev))
		fatal("epoll");
	/* A mask for the wait alone: SIGUSR1 blocked while it waits. */
	sigemptyset(&mask);
	sigaddset(&mask, SIGUSR1);
	greet(e);

	ask(&r);
	p.revents = 0;
	rc = ppoll(&p, 1, &wait_ts, &mask);
	waited(&r, "ppoll", rc, p.revents & POLLIN);

	ask(&r);
	p.revents = 0;
	rc = __ppoll_chk(&p, 1, &wait_ts, &mask, sizeof(p));
	waited(&r, "__ppoll_chk", rc, p.revents & POLLIN);

	ask(&r);
	FD_ZERO(&rd);
	FD_SET(e->fd, &rd);
	rc = pselect(e->fd + 1, &rd, NULL, NULL, &wait_ts, &mask);
	waited(&r, "pselect", rc, FD_ISSET(e->fd, &rd));

	ask(&r);
	rc = epoll_pwait(ep, &out, 1, WAIT_MS, &mask);
	waited(&r, "epoll_pwait", rc, rc == 1 && (out.events & EPOLLIN));

	ask(&r);
	FD_ZERO(&rd);
	FD_SET(e->fd, &rd);
	tv = (struct timeval){ .tv_sec = WAIT_MS / 1000 };
	rc = __select(e->fd + 1, &rd, NULL, NULL, &tv);
	waited(&r, "__select", rc, FD_ISSET(e->fd, &rd));

	ask(&r);
	p.revents = 0;
	rc = __poll(&p, 1, WAIT_MS);
	waited(&r, "__poll", rc, p.revents & POLLIN);

	ask(&r);
	p.revents = 0;
	rc = __poll_chk(&p, 1, WAIT_MS, sizeof(p));
	waited(&r, "__poll_chk", rc, p.revents & POLLIN);

	/* Nothing more comes: each wait with no time to wait answers "nothing". */
	p.revents = 0;
	say_rc("__poll(0) with nothing there", __poll(&p, 1, 0));
	say_rc("__ppoll_chk(0) with nothing there",
	       __ppoll_chk(&p, 1, &(struct timespec){ 0 }, NULL, sizeof(p)));
	FD_ZERO(&rd);
	FD_SET(e->fd, &rd);
	say_rc("__select(0) with nothing there",
	       __select(e->fd + 1, &rd, NULL, NULL, &(struct timeval){ 0 }));
	say_rc("epoll_pwait(0) with nothing there", epoll_pwait(ep, &out, 1, 0, &mask));
	close(ep);
	say_rc("shutdown(SHUT_WR)", shutdown(e->fd, SHUT_WR));
	expect(e, DONE);
}

static void waits_server(struct end *e)
{
	greet(e);
	for (int i = 0; i < 7; i++) {
		expect(e, GO);
		send_pattern(e->fd, WAIT_SEED, (uint64_t)i * CHUNK, CHUNK);
	}
	recv_to_eof(e->fd, "after the waits");
	tell(e, DONE);
}

/* ---- copies and closes by the second names, a second connection by __connect ---- */

#define FDS_SEED 121
#define REPLY_SEED 122

/* Reads exactly len bytes with preadv64v2 at offset -1 (the socket's own position). */
static void preadv64v2_all(int fd, uint64_t off, size_t len, const char *what)
{
	uint8_t a[100], b[400];
	size_t got = 0;
	ssize_t n = 0;
	bool ok = true;

	while (got < len) {
		size_t want = len - got, first = want < sizeof(a) ? want : sizeof(a);
		struct iovec iov[2] = { { a, first }, { b, want - first } };

		if (want - first > sizeof(b))
			fatal("preadv64v2_all of %zu", len);
		n = preadv64v2(fd, iov, 2, -1, 0);
		if (n <= 0)
			break;
		ok &= pattern_ok(a, (size_t)n < first ? (size_t)n : first, REPLY_SEED, off + got);
		if ((size_t)n > first)
			ok &= pattern_ok(b, (size_t)n - first, REPLY_SEED, off + got + first);
		got += (size_t)n;
	}
	if (got < len)
		say_rc(what, n);
	say("%s: %zu bytes, pattern %s", what, got, ok ? "ok" : "BAD");
}

/* __send of len bytes of the client's stream at off, all in one call. */
static void send_chunk(int fd, uint64_t off, size_t len, const char *what)
{
	uint8_t buf[1000];

	if (len > sizeof(buf))
		fatal("send_chunk of %zu", len);
	pattern(buf, len, FDS_SEED, off);
	say_rc(what, __send(fd, buf, len, 0));
}

static void fds_client(struct end *e)
{
	uint8_t a[100], b[200];
	struct iovec iov[2] = { { a, sizeof(a) }, { b, sizeof(b) } };
	struct sockaddr_storage ss;
	socklen_t len;
	int old = e->fd, d3, d2, df, second;

	greet(e);
	d3 = dup3(e->fd, 40, O_CLOEXEC);
	say_rc("dup3(40, O_CLOEXEC)", d3);
	say("  F_GETFD: %d", fcntl(d3, F_GETFD));
	say_rc("dup3 onto itself", dup3(d3, d3, 0));
	d2 = __dup2(e->fd, 41);
	say_rc("__dup2(41)", d2);
	say("  F_GETFD: %d", fcntl(d2, F_GETFD));
	df = __fcntl(e->fd, F_DUPFD, 50);
	say("__fcntl(F_DUPFD, 50): %s", df >= 50 ? "at or above 50" : errno_name(errno));

	send_chunk(d3, 0, 1000, "__send(1000) through the dup3 copy");
	pattern(a, sizeof(a), FDS_SEED, 1000);
	pattern(b, sizeof(b), FDS_SEED, 1100);
	say_rc("pwritev64v2(-1, 0) through the __dup2 copy", pwritev64v2(d2, iov, 2, -1, 0));
	say_rc("pwritev64v2 at offset 0", pwritev64v2(d2, iov, 2, 0, 0));
	send_chunk(df, 1300, 700, "__send(700) through the __fcntl copy");
	tell(e, GO);

	/* The original and two copies go; the last copy holds the connection. */
	expect(e, GO);
	say_rc("__close the original", __close(e->fd));
	e->fd = -1;
	say_rc("write to its number", write(old, "x", 1));
	preadv64v2_all(d3, 0, 300, "preadv64v2(-1) through the dup3 copy");
	preadv64v2_all(d2, 300, 200, "preadv64v2(-1) through the __dup2 copy");
	say_rc("preadv64v2 at offset 0", preadv64v2(d2, iov, 2, 0, 0));
	say_rc("__close the dup3 copy", __close(d3));
	say_rc("__close the __dup2 copy", __close(d2));
	say_rc("__send to a closed copy", __send(d2, "x", 1, 0));
	send_chunk(df, 2000, 100, "__send(100) through the last copy");
	say_rc("__close the last copy", __close(df));
	tell(e, CLOSED);

	/* A second connection, by __connect. */
	len = loopback(e->family, e->port, &ss);
	second = tcp_socket(e->family, 0);
	say_rc("__connect", __connect(second, (struct sockaddr *)&ss, len));
	tell(e, CONNECTED);
	send_chunk(second, 0, 1000, "__send(1000) on it");
	recv_pattern(second, REPLY_SEED, 0, 800, "  the reply");
	/* After the client's first read: shared memory under usmc-run. */
	send_chunk(second, 1000, 1000, "__send(1000) again");
	say_rc("shutdown(SHUT_WR)", shutdown(second, SHUT_WR));
	recv_to_eof(second, "  then");
	say_rc("__close", __close(second));
}

static void fds_server(struct end *e)
{
	char c;
	short ready;
	int second;

	greet(e);
	expect(e, GO);
	recv_pattern(e->fd, FDS_SEED, 0, 2000, "through the three copies");
	send_pattern(e->fd, REPLY_SEED, 0, 500);
	tell(e, GO);
	recv_pattern(e->fd, FDS_SEED, 2000, 100, "through the last copy");
	expect(e, CLOSED);
	ready = wait_for(e->fd, POLLIN);
	say_mask("once the client closed every copy", (unsigned)ready);
	if (ready & POLLIN)
		say_rc("read", read(e->fd, &c, 1));

	expect(e, CONNECTED);
	second = accept_one(e);
	recv_pattern(second, FDS_SEED, 0, 1000, "the second connection");
	send_pattern(second, REPLY_SEED, 0, 800);
	recv_pattern(second, FDS_SEED, 1000, 1000, "  then");
	recv_to_eof(second, "  then");
	say_rc("close", close(second));
}

const struct diff_case alias_cases[] = {
	{ "aliases_waits", waits_client, waits_server, .conns = 1 },
	{ "aliases_fds", fds_client, fds_server, .conns = 2 },
	{ NULL },
};
