// SPDX-License-Identifier: MIT
/*
 * Differential cases: sendfile and splice in every state of a connection
 * (its handshake, shared memory, plain TCP; a peer gone is in diff_close's
 * sigpipe case) and on
 * descriptors that are not TCP at all; fcntl64's copies of a socket, and
 * the calls glibc exports under a second name (preadv2, __read...) and
 * libc's syscall() for the calls of the data path.
 */
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/sendfile.h>
#include <sys/syscall.h>
#include <sys/uio.h>

#include "diff.h"

/* libc's public aliases; its headers do not declare them. */
extern ssize_t __read(int fd, void *buf, size_t len);
extern ssize_t __write(int fd, const void *buf, size_t len);

enum { GO = 1, DONE };

#define FILE_SEED 31
#define BIG (16u << 20)

/* sendfile until count bytes went, waiting for room; says how it went. */
static void sendfile_all(int out, int file, off_t *off, size_t count, const char *what)
{
	size_t done = 0;
	int calls = 0;

	while (done < count) {
		ssize_t n = sendfile(out, file, off, count - done);

		if (n < 0 && errno == EAGAIN) {
			wait_for(out, POLLOUT);
			continue;
		}
		if (n <= 0) {
			say_rc(what, n);
			return;
		}
		done += (size_t)n;
		calls++;
	}
	say("%s: all sent, in %s", what, calls ? "one or more calls" : "no call");
}

/* ---- sendfile in shared memory: from the handshake on, big, offsets, EAGAIN ---- */

static void sendfile_big_client(struct end *e)
{
	int file = pattern_file(FILE_SEED, BIG);
	off_t off = 0;
	ssize_t n;

	/* The first call of the connection: under usmc-run its handshake is still open. */
	say_rc("sendfile(&off=0, 10) first", sendfile(e->fd, file, &off, 10));
	say("  offset now %lld, file position %lld", (long long)off,
	    (long long)lseek(file, 0, SEEK_CUR));
	sendfile_all(e->fd, file, &off, BIG / 2 - 10, "sendfile by offset to the middle");
	say("  offset now %lld", (long long)off);
	/* Toward a peer that does not read: the socket fills, then EAGAIN. */
	set_nonblock(e->fd, true);
	lseek(file, BIG / 2, SEEK_SET);
	wait_for(e->fd, POLLOUT);
	n = sendfile(e->fd, file, NULL, BIG / 2);
	say("non-blocking sendfile(NULL, half the file): %s", n > 0 ? "some bytes" : "nothing");
	while (n > 0)
		n = sendfile(e->fd, file, NULL, BIG);
	say_rc("until", n);
	say("  the file position is where the socket stopped: %s",
	    lseek(file, 0, SEEK_CUR) > BIG / 2 ? "yes" : "no");
	tell(e, GO);
	sendfile_all(e->fd, file, NULL, (size_t)(BIG - lseek(file, 0, SEEK_CUR)), "the rest");
	say_rc("sendfile at the end of the file", sendfile(e->fd, file, NULL, 100));
	close(file);
	say_rc("shutdown(SHUT_WR)", shutdown(e->fd, SHUT_WR));
	expect(e, DONE);
}

static void sendfile_big_server(struct end *e)
{
	recv_pattern(e->fd, FILE_SEED, 0, BIG / 2, "the first half");
	expect(e, GO);
	recv_pattern(e->fd, FILE_SEED, BIG / 2, BIG / 2, "the second half");
	recv_to_eof(e->fd, "after it");
	tell(e, DONE);
}

/* ---- splice, socket to pipe and pipe to socket ---- */

/* Splices len bytes of stream seed through a pipe into the socket. */
static void splice_in(int sock, uint64_t seed, size_t len)
{
	int p[2];
	size_t done = 0;

	if (pipe(p) < 0)
		fatal("pipe");
	while (done < len) {
		size_t n = len - done < 32768 ? len - done : 32768;
		ssize_t s;

		send_pattern(p[1], seed, done, n);
		for (size_t left = n; left; left -= (size_t)s)
			if ((s = splice(p[0], NULL, sock, NULL, left, 0)) <= 0)
				fatal("splice into the socket");
		done += n;
	}
	close(p[0]), close(p[1]);
	say("spliced %zu bytes into the socket", done);
}

/* Splices from the socket through a pipe to EOF; says the count and sum. */
static void splice_out(int sock, const char *what)
{
	uint8_t buf[65536];
	uint32_t sum = SUM_INIT;
	size_t total = 0;
	ssize_t n;
	int p[2];

	if (pipe(p) < 0)
		fatal("pipe");
	while ((n = splice(sock, NULL, p[1], NULL, sizeof(buf), 0)) > 0) {
		if (read(p[0], buf, (size_t)n) != n)
			fatal("read from the pipe");
		sum = sum32(sum, buf, (size_t)n);
		total += (size_t)n;
	}
	say("%s: %zu bytes, sum %08x, then %s", what, total, sum, n ? errno_name(errno) : "EOF");
	close(p[0]), close(p[1]);
}

static void splice_client(struct end *e)
{
	int p[2];

	splice_in(e->fd, 41, 1000000);
	if (pipe(p) < 0)
		fatal("pipe");
	say_rc("splice socket to socket", splice(e->fd, NULL, e->fd, NULL, 10, 0));
	{
		loff_t off = 0;

		say_rc("splice with an offset on the pipe", splice(p[0], &off, e->fd, NULL, 10, 0));
	}
	close(p[0]), close(p[1]);
	say_rc("shutdown(SHUT_WR)", shutdown(e->fd, SHUT_WR));
	splice_out(e->fd, "reply spliced out");
}

static void splice_server(struct end *e)
{
	splice_out(e->fd, "request spliced out");
	splice_in(e->fd, 42, 300000);
}

/* ---- sendfile from a socket: into a pipe only ---- */

static void from_sock_client(struct end *e)
{
	send_pattern(e->fd, 91, 0, 200000);
	say_rc("shutdown(SHUT_WR)", shutdown(e->fd, SHUT_WR));
	expect(e, DONE);
}

static void from_sock_server(struct end *e)
{
	int file = pattern_file(FILE_SEED, 10), p[2];
	uint8_t buf[65536];
	uint32_t sum = SUM_INIT;
	size_t total = 0;
	off_t off = 0;
	ssize_t n;

	if (pipe(p) < 0)
		fatal("pipe");
	wait_for(e->fd, POLLIN);
	say_rc("sendfile from the socket with an offset", sendfile(p[1], e->fd, &off, 100));
	say_rc("sendfile from the socket to a file", sendfile(file, e->fd, NULL, 100));
	while ((n = sendfile(p[1], e->fd, NULL, sizeof(buf))) > 0) {
		if (read(p[0], buf, (size_t)n) != n)
			fatal("read from the pipe");
		sum = sum32(sum, buf, (size_t)n);
		total += (size_t)n;
	}
	say_rc("sendfile from the socket into a pipe, at the end", n);
	say("  %zu bytes, sum %08x", total, sum);
	close(p[0]), close(p[1]), close(file);
	tell(e, DONE);
}

/* ---- the same on a connection that is plain TCP under usmc-run ---- */

/* A listener of the kernel's own, which usmc never sees: its clients stay TCP. */
static int kernel_listener(uint16_t *port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	int fd = (int)syscall(SYS_socket, AF_INET, SOCK_STREAM, 0);

	if (fd < 0 || syscall(SYS_bind, fd, &a, sizeof(a)) || syscall(SYS_listen, fd, 8) ||
	    syscall(SYS_getsockname, fd, &a, &len))
		fatal("kernel listener");
	*port = ntohs(a.sin_port);
	return fd;
}

static void plain_client(struct end *e)
{
	int file = pattern_file(FILE_SEED, BIG);
	off_t off = 1000;

	e->port = (uint16_t)hear(e);
	e->fd = connect_to(e);
	say_rc("sendfile(&off=1000, 100000)", sendfile(e->fd, file, &off, 100000));
	say("  offset now %lld", (long long)off);
	sendfile_all(e->fd, file, NULL, BIG, "sendfile(NULL) of the whole file");
	splice_in(e->fd, 43, 200000);
	say_rc("shutdown(SHUT_WR)", shutdown(e->fd, SHUT_WR));
	splice_out(e->fd, "reply spliced out");
	close(file);
}

static void plain_server(struct end *e)
{
	uint16_t port;
	int lfd = kernel_listener(&port);

	tell(e, port);
	e->fd = (int)syscall(SYS_accept4, lfd, NULL, NULL, 0);
	close(lfd);
	if (e->fd < 0)
		fatal("accept");
	recv_pattern(e->fd, FILE_SEED, 1000, 100000, "first sendfile");
	recv_pattern(e->fd, FILE_SEED, 0, BIG, "second sendfile");
	recv_to_eof(e->fd, "the splice");
	splice_in(e->fd, 44, 100000);
}

/* ---- descriptors that are not TCP: a socketpair and a pipe ---- */

static void drain(int fd, size_t len, const char *what)
{
	recv_pattern(fd, FILE_SEED, 0, len, what);
}

static void not_tcp_client(struct end *e)
{
	int file = pattern_file(FILE_SEED, 100000), sv[2], p[2];
	off_t off = 0;

	(void)e;
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0 || pipe(p) < 0)
		fatal("socketpair or pipe");
	say_rc("sendfile to a socketpair", sendfile(sv[0], file, &off, 50000));
	drain(sv[1], 50000, "  read from its other end");
	say_rc("sendfile64 to a socketpair", sendfile64(sv[0], file, NULL, 60000));
	drain(sv[1], 60000, "  read from its other end");
	off = 0;
	say_rc("sendfile to a pipe", sendfile(p[1], file, &off, 40000));
	drain(p[0], 40000, "  read from the pipe");
	say_rc("splice the socketpair to the pipe (nothing there, non-blocking)",
	       splice(sv[1], NULL, p[1], NULL, 100, SPLICE_F_NONBLOCK));
	send_pattern(p[1], FILE_SEED, 0, 30000);
	say_rc("splice the pipe to the socketpair", splice(p[0], NULL, sv[0], NULL, 30000, 0));
	drain(sv[1], 30000, "  read from its other end");
	close(sv[0]), close(sv[1]), close(p[0]), close(p[1]), close(file);
}

/* ---- fcntl64: F_DUPFD copies, then I/O through them ---- */

static void fcntl64_client(struct end *e)
{
	int d = fcntl64(e->fd, F_DUPFD, 50), c = fcntl64(e->fd, F_DUPFD_CLOEXEC, 60);

	say("F_DUPFD(50): %s; F_DUPFD_CLOEXEC(60): %s", d >= 50 ? "at or above 50" : "failed",
	    c >= 60 ? "at or above 60" : "failed");
	say("F_GETFD: %d %d; F_GETFL O_NONBLOCK: %d", fcntl64(d, F_GETFD), fcntl64(c, F_GETFD),
	    !!(fcntl64(c, F_GETFL) & O_NONBLOCK));
	say_rc("close the original", close(e->fd));
	e->fd = -1;
	send_pattern(d, 51, 0, 300000);
	recv_pattern(c, 52, 0, 200000, "reply through the F_DUPFD_CLOEXEC copy");
	say_rc("close the F_DUPFD copy", close(d));
	send_pattern(c, 51, 300000, 1000);
	say_rc("shutdown(SHUT_WR) through the last copy", shutdown(c, SHUT_WR));
	recv_to_eof(c, "the rest");
	say_rc("close the last copy", close(c));
}

static void fcntl64_server(struct end *e)
{
	recv_pattern(e->fd, 51, 0, 300000, "request");
	send_pattern(e->fd, 52, 0, 200000);
	recv_to_eof(e->fd, "after the reply");
}

/* ---- the second names: preadv2, pwritev2 at offset -1, __read, __write ---- */

static void aliases_client(struct end *e)
{
	uint8_t a[100], b[200];
	struct iovec iov[2] = { { a, sizeof(a) }, { b, sizeof(b) } };

	pattern(a, sizeof(a), 61, 0);
	pattern(b, sizeof(b), 61, sizeof(a));
	say_rc("pwritev2(-1, 0)", pwritev2(e->fd, iov, 2, -1, 0));
	say_rc("pwritev2 at offset 0", pwritev2(e->fd, iov, 2, 0, 0));
	say_rc("__write", __write(e->fd, a, 50));
	expect(e, GO);
	say_rc("preadv2(-1, 0)", preadv2(e->fd, iov, 2, -1, 0));
	say("  bytes %s", pattern_ok(a, sizeof(a), 62, 0) && pattern_ok(b, sizeof(b), 62, 100)
				  ? "match" : "DIFFER");
	say_rc("preadv2(-1, RWF_NOWAIT) with nothing there", preadv2(e->fd, iov, 2, -1, RWF_NOWAIT));
	say_rc("preadv2 at offset 0", preadv2(e->fd, iov, 2, 0, 0));
	tell(e, GO);
	say_rc("__read", __read(e->fd, a, sizeof(a)));
	say("  bytes %s", pattern_ok(a, 40, 62, 300) ? "match" : "DIFFER");
}

static void aliases_server(struct end *e)
{
	recv_pattern(e->fd, 61, 0, 300, "pwritev2");
	recv_pattern(e->fd, 61, 0, 50, "__write");
	send_pattern(e->fd, 62, 0, 300);
	tell(e, GO);
	expect(e, GO);
	send_pattern(e->fd, 62, 300, 40);
}

/* ---- closefrom: the number of a closed socket taken by a file ---- */

/* The socket moves above the harness's pipes, which closefrom must spare. */
static void closefrom_client(struct end *e)
{
	int high = fcntl(e->fd, F_DUPFD, 500), file, copy;
	uint8_t buf[1000];

	greet(e);
	say("F_DUPFD(500): %s", high == 500 ? "500" : "failed");
	close(e->fd);
	e->fd = -1;
	closefrom(500);
	say_rc("write after closefrom", write(high, "x", 1));
	file = pattern_file(FILE_SEED, 1000);
	copy = fcntl(file, F_DUPFD, 500);
	say("a copy of a file takes the socket's number: %s", copy == high ? "yes" : "no");
	say_rc("read from it", read(copy, buf, sizeof(buf)));
	say("  bytes %s", pattern_ok(buf, sizeof(buf), FILE_SEED, 0) ? "match" : "DIFFER");
	close(copy), close(file);
	tell(e, DONE);
}

static void closefrom_server(struct end *e)
{
	char c;

	greet(e);
	expect(e, DONE);
	say_rc("read after the peer's closefrom", read(e->fd, &c, 1));
}

/* ---- libc's syscall(): every call of the data path, raw ---- */

static void raw_send(int fd, long nr, uint64_t seed, uint64_t off, size_t len, const char *what)
{
	uint8_t buf[20000];
	struct iovec iov = { buf, len };

	if (len > sizeof(buf))
		fatal("raw_send of %zu", len);
	pattern(buf, len, seed, off);
	if (nr == SYS_writev)
		say_rc(what, syscall(nr, fd, &iov, 1));
	else if (nr == SYS_sendto)
		say_rc(what, syscall(nr, fd, buf, len, 0, NULL, 0));
	else
		say_rc(what, syscall(nr, fd, buf, len));
}

/* Reads exactly len bytes with raw recvfrom(MSG_WAITALL), then says how they look. */
static void raw_recv(int fd, uint64_t seed, uint64_t off, size_t len, const char *what)
{
	uint8_t buf[20000];
	long n = syscall(SYS_recvfrom, fd, buf, len, MSG_WAITALL, NULL, NULL);

	say_rc(what, n);
	if (n > 0)
		say("  bytes %s", pattern_ok(buf, (size_t)n, seed, off) ? "match" : "DIFFER");
}

static void raw_client(struct end *e)
{
	struct pollfd p = { .fd = e->fd, .events = POLLIN };
	uint8_t buf[100];
	int avail = -1;
	long d;

	raw_send(e->fd, SYS_write, 71, 0, 1000, "syscall(SYS_write, 1000)");
	raw_send(e->fd, SYS_sendto, 71, 1000, 2000, "syscall(SYS_sendto, 2000)");
	raw_send(e->fd, SYS_writev, 71, 3000, 3000, "syscall(SYS_writev, 3000)");
	say_rc("syscall(SYS_poll) for the reply", syscall(SYS_poll, &p, 1, WAIT_MS));
	say_mask("  revents", (unsigned)p.revents);
	expect(e, GO);
	say_rc("syscall(SYS_ioctl, FIONREAD)", syscall(SYS_ioctl, e->fd, FIONREAD, &avail));
	say("  %d bytes waiting", avail);
	d = syscall(SYS_fcntl, e->fd, F_DUPFD_CLOEXEC, 30);
	say("syscall(SYS_fcntl, F_DUPFD_CLOEXEC, 30): %s", d >= 30 ? "at or above 30" : "failed");
	say_rc("syscall(SYS_read, 100) through the copy", syscall(SYS_read, d, buf, sizeof(buf)));
	say("  bytes %s", pattern_ok(buf, sizeof(buf), 72, 0) ? "match" : "DIFFER");
	raw_recv(e->fd, 72, 100, 400, "syscall(SYS_recvfrom, 400, MSG_WAITALL)");
	say_rc("syscall(SYS_close) of the copy", syscall(SYS_close, d));
	say_rc("syscall(SYS_shutdown, SHUT_WR)", syscall(SYS_shutdown, e->fd, SHUT_WR));
	say_rc("syscall(SYS_read) at EOF", syscall(SYS_read, e->fd, buf, sizeof(buf)));
	say_rc("syscall(SYS_close)", syscall(SYS_close, e->fd));
	e->fd = -1;
}

static void raw_server(struct end *e)
{
	uint8_t buf[100];

	raw_recv(e->fd, 71, 0, 6000, "syscall(SYS_recvfrom, 6000, MSG_WAITALL)");
	send_pattern(e->fd, 72, 0, 500);
	tell(e, GO);
	say_rc("syscall(SYS_read) at EOF", syscall(SYS_read, e->fd, buf, sizeof(buf)));
}

/*
 * The calls of the newer ABI through syscall(2): preadv2 and pwritev2 at
 * offset -1 (the socket's own position: a read and a write), epoll_pwait2.
 */
static long raw_v2(long nr, int fd, uint8_t *buf, size_t len)
{
	struct iovec iov = { buf, len };

	return syscall(nr, fd, &iov, 1, -1L, 0L, 0L);
}

static void raw_v2_client(struct end *e)
{
	uint8_t buf[4000];
	size_t got = 0;
	long n = 0;

	pattern(buf, sizeof(buf), 73, 0);
	say_rc("syscall(SYS_pwritev2, 4000, offset -1)", raw_v2(SYS_pwritev2, e->fd, buf, sizeof(buf)));
	while (got < 500 && (n = raw_v2(SYS_preadv2, e->fd, buf + got, 500 - got)) > 0)
		got += (size_t)n;
	say("syscall(SYS_preadv2, offset -1): %zu bytes, the last call %ld", got, n);
	say("  bytes %s", pattern_ok(buf, got, 74, 0) ? "match" : "DIFFER");
	say_rc("shutdown(SHUT_WR)", shutdown(e->fd, SHUT_WR));
	expect(e, DONE);
}

static void raw_v2_server(struct end *e)
{
	struct timespec ts = { .tv_sec = WAIT_MS / 1000 };
	struct epoll_event ev = { .events = EPOLLIN }, out;
	int ep = epoll_create1(EPOLL_CLOEXEC);
	uint8_t buf[4000];
	size_t got = 0;
	long n = 0;

	if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, e->fd, &ev))
		fatal("epoll");
	say_rc("syscall(SYS_epoll_pwait2)", syscall(SYS_epoll_pwait2, ep, &out, 1, &ts, NULL, 8));
	say_mask("  events", out.events);
	while (got < sizeof(buf) && (n = raw_v2(SYS_preadv2, e->fd, buf + got, sizeof(buf) - got)) > 0)
		got += (size_t)n;
	say("syscall(SYS_preadv2, offset -1): %zu bytes, the last call %ld", got, n);
	say("  bytes %s", pattern_ok(buf, got, 73, 0) ? "match" : "DIFFER");
	pattern(buf, 500, 74, 0);
	say_rc("syscall(SYS_pwritev2, 500, offset -1)", raw_v2(SYS_pwritev2, e->fd, buf, 500));
	say_rc("syscall(SYS_preadv2) at EOF", raw_v2(SYS_preadv2, e->fd, buf, 1));
	close(ep);
	tell(e, DONE);
}

/* ---- io_uring: from its setup on, new sockets are plain TCP ---- */

void ring_setup(void)
{
	uint8_t params[120] = { 0 }; /* struct io_uring_params, all zero */
	long ring = syscall(SYS_io_uring_setup, 4, params);

	say("io_uring_setup: %s", ring >= 0 ? "a ring" : errno_name(errno));
	if (ring >= 0)
		close((int)ring);
}

static void ring_client(struct end *e)
{
	ring_setup();
	e->port = (uint16_t)hear(e);
	e->fd = connect_to(e);
	send_pattern(e->fd, 81, 0, 1 << 20);
	say_rc("shutdown(SHUT_WR)", shutdown(e->fd, SHUT_WR));
	recv_to_eof(e->fd, "reply");
}

static void ring_server(struct end *e)
{
	uint16_t port;
	int lfd;

	ring_setup();
	close(e->lfd);
	e->lfd = -1;
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	{
		struct sockaddr_storage ss;
		socklen_t len = loopback(AF_INET, 0, &ss);

		if (lfd < 0 || bind(lfd, (struct sockaddr *)&ss, len) || listen(lfd, 8) ||
		    getsockname(lfd, (struct sockaddr *)&ss, &len))
			fatal("listener");
		port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
	}
	tell(e, port);
	e->fd = accept(lfd, NULL, NULL);
	close(lfd);
	recv_to_eof(e->fd, "request");
	send_pattern(e->fd, 82, 0, 300000);
}

/* A listener made before the ring declines the Proposals that come after it. */
static void ring_listener_client(struct end *e)
{
	expect(e, GO);
	e->fd = connect_to(e);
	send_pattern(e->fd, 83, 0, 1 << 20);
	say_rc("shutdown(SHUT_WR)", shutdown(e->fd, SHUT_WR));
	recv_to_eof(e->fd, "reply");
}

static void ring_listener_server(struct end *e)
{
	ring_setup();
	tell(e, GO);
	e->fd = accept_one(e);
	recv_to_eof(e->fd, "request");
	send_pattern(e->fd, 84, 0, 300000);
}

const struct diff_case zcopy_cases[] = {
	{ "sendfile_big", sendfile_big_client, sendfile_big_server, .conns = 1 },
	{ "splice", splice_client, splice_server, .conns = 1 },
	{ "sendfile_from_socket", from_sock_client, from_sock_server, .conns = 1 },
	{ "zcopy_plain", plain_client, plain_server, .raw = true, .fallbacks = 1 },
	{ "zcopy_not_tcp", not_tcp_client, NULL },
	{ "fcntl64", fcntl64_client, fcntl64_server, .conns = 1 },
	{ "aliases", aliases_client, aliases_server, .conns = 1 },
	{ "closefrom", closefrom_client, closefrom_server, .conns = 1 },
	{ "raw_syscall", raw_client, raw_server, .conns = 1 },
	{ "raw_syscall_v2", raw_v2_client, raw_v2_server, .conns = 1 },
	{ "io_uring_plain", ring_client, ring_server, .raw = true, .fallbacks = 3 },
	{ "io_uring_listener", ring_listener_client, ring_listener_server, .raw = true,
	  .fallbacks = 2 },
	{ NULL },
};
