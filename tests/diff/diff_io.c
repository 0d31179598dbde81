// SPDX-License-Identifier: MIT
/*
 * Moving bytes: half close, MSG_PEEK, MSG_WAITALL, MSG_TRUNC, non-blocking
 * reads, readv/writev, sendmsg/recvmsg/sendto/recvfrom, sendfile, dup and
 * F_DUPFD_CLOEXEC, and two threads on one connection.
 */
#include <fcntl.h>
#include <limits.h>
#include <linux/close_range.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/sendfile.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>

#include "diff.h"

enum { GO = 1, MORE, DONE };

/* recv() of up to len bytes; says the result and whether the bytes are off.. of stream seed. */
static ssize_t recv_check(int fd, size_t len, int flags, uint64_t seed, uint64_t off,
			  const char *what)
{
	uint8_t buf[16384];
	ssize_t n;

	if (len > sizeof(buf))
		fatal("recv_check of %zu bytes", len);
	n = recv(fd, buf, len, flags);
	say_rc(what, n);
	if (n > 0)
		say("  bytes %s", pattern_ok(buf, (size_t)n, seed, off) ? "match" : "DIFFER");
	return n;
}

/* ---- half close: SHUT_WR, EOF at the peer, which still answers ---- */

static void half_close_client(struct end *e)
{
	char c = 'x';

	send_pattern(e->fd, 1, 0, 5000);
	say_rc("shutdown(SHUT_WR)", shutdown(e->fd, SHUT_WR));
	say_rc("write after SHUT_WR", write(e->fd, &c, 1));
	recv_pattern(e->fd, 2, 0, 3000, "reply after our SHUT_WR");
	say_rc("read at the end", read(e->fd, &c, 1));
}

static void half_close_server(struct end *e)
{
	char c;

	recv_to_eof(e->fd, "request");
	say_rc("read again after EOF", read(e->fd, &c, 1));
	say_mask("poll after EOF", poll_now(e->fd, ALL_EVENTS));
	send_pattern(e->fd, 2, 0, 3000);
	say("sent the reply");
}

/* ---- MSG_PEEK ---- */

static void peek_client(struct end *e)
{
	tell(e, GO);
	say_mask("ready", wait_for(e->fd, POLLIN));
	recv_check(e->fd, 10, MSG_PEEK, 3, 0, "recv(10, MSG_PEEK)");
	recv_check(e->fd, 200, MSG_PEEK, 3, 0, "recv(200, MSG_PEEK)");
	recv_check(e->fd, 30, 0, 3, 0, "recv(30)");
	recv_check(e->fd, 200, MSG_PEEK, 3, 30, "recv(200, MSG_PEEK) after reading 30");
	recv_check(e->fd, 200, 0, 3, 30, "recv(200)");
	recv_check(e->fd, 200, MSG_PEEK | MSG_DONTWAIT, 3, 100,
		   "recv(MSG_PEEK|MSG_DONTWAIT) on empty");
	tell(e, MORE);
	expect(e, DONE);
	wait_for(e->fd, POLLIN);
	recv_check(e->fd, 200, MSG_PEEK, 3, 100, "recv(MSG_PEEK) at EOF");
	recv_check(e->fd, 200, 0, 3, 100, "recv() at EOF");
}

static void peek_server(struct end *e)
{
	expect(e, GO);
	/* One write of 100 bytes arrives at once. */
	send_pattern(e->fd, 3, 0, 100);
	expect(e, MORE);
	say_rc("close", close(e->fd));
	e->fd = -1;
	tell(e, DONE);
}

/* ---- MSG_WAITALL: gathers pieces; cut short by EOF ---- */

static void waitall_client(struct end *e)
{
	uint8_t buf[8192];
	ssize_t n;

	tell(e, GO);
	n = recv(e->fd, buf, 5000, MSG_WAITALL);
	say_rc("recv(5000, MSG_WAITALL) while the peer writes 5 x 1000", n);
	if (n > 0)
		say("  bytes %s", pattern_ok(buf, (size_t)n, 4, 0) ? "match" : "DIFFER");
	tell(e, MORE);
	n = recv(e->fd, buf, 8000, MSG_WAITALL);
	say_rc("recv(8000, MSG_WAITALL), peer writes 3000 and closes", n);
	if (n > 0)
		say("  bytes %s", pattern_ok(buf, (size_t)n, 4, 5000) ? "match" : "DIFFER");
	say_rc("recv(MSG_WAITALL) at EOF", recv(e->fd, buf, 100, MSG_WAITALL));
}

static void waitall_server(struct end *e)
{
	expect(e, GO);
	for (int i = 0; i < 5; i++)
		send_pattern(e->fd, 4, (uint64_t)i * 1000, 1000);
	expect(e, MORE);
	send_pattern(e->fd, 4, 5000, 3000);
	say("wrote 5 x 1000, then 3000 and closes");
}

/* ---- MSG_TRUNC: on TCP it discards the bytes without copying them ---- */

static void trunc_client(struct end *e)
{
	uint8_t buf[200];
	ssize_t n;
	bool untouched = true;

	tell(e, GO);
	wait_for(e->fd, POLLIN);
	memset(buf, 0xaa, sizeof(buf));
	n = recv(e->fd, buf, 40, MSG_TRUNC);
	say_rc("recv(40, MSG_TRUNC)", n);
	for (size_t i = 0; i < sizeof(buf); i++)
		untouched &= buf[i] == 0xaa;
	say("  buffer untouched: %s", untouched ? "yes" : "no");
	recv_check(e->fd, 200, 0, 5, 40, "recv(200) after it");
}

static void trunc_server(struct end *e)
{
	expect(e, GO);
	send_pattern(e->fd, 5, 0, 100);
}

/* ---- non-blocking reads on an empty socket ---- */

/* Every way of reading an empty socket without waiting. */
static void empty_reads(int fd)
{
	uint8_t buf[100];
	struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

	set_nonblock(fd, true);
	say_rc("read on empty, O_NONBLOCK", read(fd, buf, sizeof(buf)));
	say_rc("readv on empty, O_NONBLOCK", readv(fd, &iov, 1));
	say_rc("recvmsg on empty, O_NONBLOCK", recvmsg(fd, &mh, 0));
	say_rc("recv(MSG_PEEK) on empty, O_NONBLOCK", recv(fd, buf, sizeof(buf), MSG_PEEK));
	set_nonblock(fd, false);
	say_rc("recv(MSG_DONTWAIT) on empty, blocking", recv(fd, buf, sizeof(buf), MSG_DONTWAIT));
	say_rc("read(0 bytes) on empty, blocking", read(fd, buf, 0));
}

static void nonblock_client(struct end *e)
{
	uint8_t buf[100];

	empty_reads(e->fd);
	tell(e, GO);
	say_mask("ready", wait_for(e->fd, POLLIN));
	set_nonblock(e->fd, true);
	recv_check(e->fd, 100, 0, 6, 0, "recv(100), 10 came");
	say_rc("read after draining", read(e->fd, buf, sizeof(buf)));
	memset(buf, 'n', sizeof(buf));
	say_rc("write(100), O_NONBLOCK", write(e->fd, buf, sizeof(buf)));
	tell(e, MORE);
	say_mask("ready", wait_for(e->fd, POLLIN));
	say_rc("read at EOF, O_NONBLOCK", read(e->fd, buf, sizeof(buf)));
}

static void nonblock_server(struct end *e)
{
	uint8_t buf[100];
	ssize_t n;

	empty_reads(e->fd);
	expect(e, GO);
	send_pattern(e->fd, 6, 0, 10);
	expect(e, MORE);
	n = recv(e->fd, buf, sizeof(buf), MSG_WAITALL);
	say_rc("recv(100, MSG_WAITALL)", n);
}

/* ---- readv and writev ---- */

static void vectored_client(struct end *e)
{
	uint8_t out[5020], in[6000];
	struct iovec wv[4] = {
		{ out, 7 }, { out + 7, 0 }, { out + 7, 5000 }, { out + 5007, 13 },
	};
	struct iovec rv[4] = {
		{ in, 100 }, { in + 100, 0 }, { in + 100, 4000 }, { in + 4100, 1900 },
	};
	struct msghdr mh = { .msg_iov = rv, .msg_iovlen = 4 };
	ssize_t n;

	pattern(out, sizeof(out), 7, 0);
	say_rc("writev(7, 0, 5000, 13)", writev(e->fd, wv, 4));
	say_rc("writev of no iovec", writev(e->fd, wv, 0));
	say_rc("readv of no iovec", readv(e->fd, rv, 0));
	tell(e, GO);
	memset(in, 0, sizeof(in));
	n = recvmsg(e->fd, &mh, MSG_WAITALL);
	say_rc("recvmsg(100, 0, 4000, 1900, MSG_WAITALL)", n);
	say("  iov[0] %s, iov[2] %s, iov[3] %s",
	    pattern_ok(in, 100, 8, 0) ? "match" : "DIFFER",
	    pattern_ok(in + 100, 4000, 8, 100) ? "match" : "DIFFER",
	    pattern_ok(in + 4100, 1900, 8, 4100) ? "match" : "DIFFER");
	say_rc("readv at EOF", readv(e->fd, rv, 4));
}

static void vectored_server(struct end *e)
{
	recv_pattern(e->fd, 7, 0, 5020, "writev's bytes");
	expect(e, GO);
	/* Three writes: the reader's MSG_WAITALL gathers them into four buffers. */
	send_pattern(e->fd, 8, 0, 1000);
	send_pattern(e->fd, 8, 1000, 3000);
	send_pattern(e->fd, 8, 4000, 2000);
}

/* ---- iovec counts the kernel refuses ---- */

static void iov_invalid_client(struct end *e)
{
	static struct iovec iov[IOV_MAX + 1];
	static uint8_t buf[IOV_MAX + 1];
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = IOV_MAX + 1 };
	/* Read at run time: the compiler would refuse a negative count it can see. */
	volatile int minus_one = -1;

	for (size_t i = 0; i < IOV_MAX + 1; i++)
		iov[i] = (struct iovec){ buf + i, 1 };
	say_rc("writev with iovcnt -1", writev(e->fd, iov, minus_one));
	say_rc("writev with iovcnt IOV_MAX+1", writev(e->fd, iov, IOV_MAX + 1));
	say_rc("sendmsg with msg_iovlen IOV_MAX+1", sendmsg(e->fd, &mh, 0));
	send_pattern(e->fd, 15, 0, 100);
	tell(e, GO);
	expect(e, DONE);
	wait_for(e->fd, POLLIN);
	/* Non-blocking: a call that took the counts for good must not hang the case. */
	set_nonblock(e->fd, true);
	say_rc("readv with iovcnt -1", readv(e->fd, iov, minus_one));
	say_rc("readv with iovcnt IOV_MAX+1", readv(e->fd, iov, IOV_MAX + 1));
	say_rc("recvmsg with msg_iovlen IOV_MAX+1", recvmsg(e->fd, &mh, 0));
	set_nonblock(e->fd, false);
	/* The refused calls took nothing. */
	recv_pattern(e->fd, 16, 0, 100, "reply");
}

static void iov_invalid_server(struct end *e)
{
	expect(e, GO);
	recv_pattern(e->fd, 15, 0, 100, "request, the only bytes sent");
	send_pattern(e->fd, 16, 0, 100);
	say_rc("close", close(e->fd));
	e->fd = -1;
	tell(e, DONE);
}

/* ---- sendmsg, recvmsg, sendto, recvfrom ---- */

static void msg_client(struct end *e)
{
	uint8_t out[120], in[96];
	struct iovec wv[2] = { { out, 10 }, { out + 10, 20 } };
	struct msghdr wm = { .msg_iov = wv, .msg_iovlen = 2 };
	struct sockaddr_storage name, other;
	socklen_t other_len = loopback(e->family, 9, &other);
	char control[64];
	struct iovec rv = { in, 64 };
	struct msghdr rm = { .msg_name = &name, .msg_namelen = sizeof(name), .msg_iov = &rv,
			     .msg_iovlen = 1, .msg_control = control,
			     .msg_controllen = sizeof(control) };
	socklen_t from_len = sizeof(name);

	pattern(out, sizeof(out), 9, 0);
	say_rc("sendmsg(10 + 20)", sendmsg(e->fd, &wm, 0));
	/* A connected stream socket ignores the address sendto names. */
	say_rc("sendto(40) naming another address",
	       sendto(e->fd, out + 30, 40, 0, (struct sockaddr *)&other, other_len));
	say_rc("send(50, MSG_NOSIGNAL|MSG_DONTWAIT)",
	       send(e->fd, out + 70, 50, MSG_NOSIGNAL | MSG_DONTWAIT));
	tell(e, GO);
	say_rc("recvmsg(64, MSG_WAITALL)", recvmsg(e->fd, &rm, MSG_WAITALL));
	say("  bytes %s, msg_namelen %u, msg_controllen %zu, msg_flags %#x",
	    pattern_ok(in, 64, 10, 0) ? "match" : "DIFFER", (unsigned)rm.msg_namelen,
	    (size_t)rm.msg_controllen, (unsigned)rm.msg_flags);
	say_rc("recvfrom(32, MSG_WAITALL) with an address buffer",
	       recvfrom(e->fd, in + 64, 32, MSG_WAITALL, (struct sockaddr *)&name, &from_len));
	say("  bytes %s, address length %u", pattern_ok(in + 64, 32, 10, 64) ? "match" : "DIFFER",
	    (unsigned)from_len);
}

static void msg_server(struct end *e)
{
	recv_pattern(e->fd, 9, 0, 120, "sendmsg + sendto + send");
	expect(e, GO);
	send_pattern(e->fd, 10, 0, 96);
}

/* ---- sendfile from a file, with and without an offset ---- */

static void sendfile_client(struct end *e)
{
	int file = pattern_file(11, 300000);
	off_t off = 1000;

	lseek(file, 0, SEEK_SET);
	say_rc("sendfile(&off=1000, 100000)", sendfile(e->fd, file, &off, 100000));
	say("  offset now %lld, file position %lld", (long long)off,
	    (long long)lseek(file, 0, SEEK_CUR));
	lseek(file, 200000, SEEK_SET);
	say_rc("sendfile(NULL, 200000) from position 200000", sendfile(e->fd, file, NULL, 200000));
	say("  file position %lld", (long long)lseek(file, 0, SEEK_CUR));
	say_rc("sendfile(NULL, 10) at end of file", sendfile(e->fd, file, NULL, 10));
	off = 299990;
	say_rc("sendfile(&off=299990, 100)", sendfile(e->fd, file, &off, 100));
	say("  offset now %lld", (long long)off);
	close(file);
	say_rc("shutdown(SHUT_WR)", shutdown(e->fd, SHUT_WR));
	expect(e, DONE);
}

static void sendfile_server(struct end *e)
{
	char c;

	recv_pattern(e->fd, 11, 1000, 100000, "first sendfile");
	recv_pattern(e->fd, 11, 200000, 100000, "second sendfile");
	recv_pattern(e->fd, 11, 299990, 10, "last sendfile");
	say_rc("read at EOF", read(e->fd, &c, 1));
	tell(e, DONE);
}

/* ---- dup, F_DUPFD_CLOEXEC, dup2, close_range ---- */

static void dup_client(struct end *e)
{
	int d = dup(e->fd), c = fcntl(e->fd, F_DUPFD_CLOEXEC, 100), t;

	say("dup: %s; F_DUPFD_CLOEXEC(100): %s", d >= 0 ? "ok" : "failed",
	    c >= 100 ? "at or above 100" : "below 100 or failed");
	say("F_GETFD: dup %d, F_DUPFD_CLOEXEC copy %d", fcntl(d, F_GETFD), fcntl(c, F_GETFD));
	send_pattern(d, 12, 0, 100);
	send_pattern(c, 12, 100, 100);
	say_rc("close the original", close(e->fd));
	e->fd = -1;
	send_pattern(d, 12, 200, 100);
	tell(e, GO);
	recv_pattern(c, 13, 0, 50, "reply read through the F_DUPFD_CLOEXEC copy");
	t = dup2(c, 200);
	say("dup2(copy, 200): %s", t == 200 ? "200" : "failed");
	say_rc("close the dup", close(d));
	say_rc("close_range over the copy", close_range((unsigned)c, (unsigned)c, 0));
	send_pattern(t, 12, 300, 50);
	say_rc("close the last, dup2's", close(t));
}

static void dup_server(struct end *e)
{
	char c;

	recv_pattern(e->fd, 12, 0, 300, "through dup, copy, dup");
	expect(e, GO);
	send_pattern(e->fd, 13, 0, 50);
	recv_pattern(e->fd, 12, 300, 50, "through dup2's");
	say_rc("read at EOF", read(e->fd, &c, 1));
}

/* ---- one thread sends, another receives ---- */

#define THREAD_BYTES (2u << 20)

static void *sender(void *arg)
{
	int fd = *(int *)arg;
	uint8_t buf[7001];

	for (size_t done = 0, i = 0; done < THREAD_BYTES; i++) {
		size_t n = 1 + (i * 2654435761u) % sizeof(buf);
		ssize_t w;

		if (n > THREAD_BYTES - done)
			n = THREAD_BYTES - done;
		pattern(buf, n, 14, done);
		w = send(fd, buf, n, 0);
		if (w <= 0)
			fatal("send from the sending thread");
		done += (size_t)w;
	}
	return NULL;
}

static void threads_client(struct end *e)
{
	pthread_t t;
	char c;

	if (pthread_create(&t, NULL, sender, &e->fd))
		fatal("pthread_create");
	recv_pattern(e->fd, 14, 0, THREAD_BYTES, "echo read on the main thread");
	pthread_join(t, NULL);
	say_rc("shutdown(SHUT_WR)", shutdown(e->fd, SHUT_WR));
	say_rc("read at EOF", read(e->fd, &c, 1));
}

static void threads_server(struct end *e)
{
	uint8_t buf[65536];
	uint32_t sum = SUM_INIT;
	size_t total = 0;
	ssize_t n;

	while ((n = read(e->fd, buf, sizeof(buf))) > 0) {
		sum = sum32(sum, buf, (size_t)n);
		total += (size_t)n;
		for (ssize_t off = 0, w; off < n; off += w)
			if ((w = write(e->fd, buf + off, (size_t)(n - off))) <= 0)
				fatal("echo write");
	}
	say_rc("echo ended with", n);
	say("echoed %zu bytes, sum %08x", total, sum);
}

/*
 * Descriptor numbers: a program's sockets are numbered as without usmc,
 * lowest free first, whatever usmc keeps for each connection (a
 * prefork server's connections each have a channel and segments of their
 * own).  Programs size tables by them: wrk's event loop, select().  The
 * server's listener is accepted on by a forked child, as a prefork
 * worker does.
 */
#define FD_CONNS 3

bool request_reply(int fd, uint64_t seed, uint64_t off)
{
	uint8_t buf[100];

	send_pattern(fd, seed, off, sizeof(buf));
	if (recv(fd, buf, sizeof(buf), MSG_WAITALL) != (ssize_t)sizeof(buf))
		fatal("reply at %llu", (unsigned long long)off);
	return pattern_ok(buf, sizeof(buf), seed + 1, off);
}

void reply_request(int fd, uint64_t seed, uint64_t off)
{
	uint8_t buf[100];

	if (recv(fd, buf, sizeof(buf), MSG_WAITALL) != (ssize_t)sizeof(buf) ||
	    !pattern_ok(buf, sizeof(buf), seed, off))
		fatal("request at %llu", (unsigned long long)off);
	send_pattern(fd, seed + 1, off, sizeof(buf));
}

static void fd_numbers_run(struct end *e)
{
	int fds[FD_CONNS];

	expect(e, GO); /* the worker waits on the listener */
	for (int i = 0; i < FD_CONNS; i++) {
		fds[i] = connect_to(e);
		say("connection %d: descriptor %+d from the first", i + 2, fds[i] - e->fd);
		say("  reply %s", request_reply(fds[i], 95, (uint64_t)i * 100) ? "matches" : "DIFFERS");
	}
	say("dup: descriptor %+d from the first", dup(e->fd) - e->fd);
	for (int i = 0; i < FD_CONNS; i++)
		close(fds[i]);
	expect(e, DONE);
}

static void fd_numbers_client(struct end *e)
{
	fd_numbers_run(e);
}

/*
 * The same while the connections wait for their answers: the worker
 * accepts each only once the client has made them all (wrk opens all its
 * connections before it reads from any).
 */
static void fd_numbers_pending_client(struct end *e)
{
	int fds[FD_CONNS];

	expect(e, GO);
	for (int i = 0; i < FD_CONNS; i++) {
		fds[i] = connect_to(e);
		say("connection %d: descriptor %+d from the first", i + 2, fds[i] - e->fd);
	}
	for (int i = 0; i < FD_CONNS; i++) {
		say("  reply %s", request_reply(fds[i], 95, (uint64_t)i * 100) ? "matches" : "DIFFERS");
		close(fds[i]);
	}
	expect(e, DONE);
}

/*
 * The same, from a program that has 1,100 descriptors open already and
 * the limit to have more (wrk with a thousand connections): its next
 * ones still follow its own.
 */
#define FD_MANY 1100

static void fd_numbers_many_client(struct end *e)
{
	int first = -1, last = -1;

	/* Where the hard limit leaves no room for them, the case cannot show anything: it fails. */
	nofile_set(2 * FD_MANY, 8192);
	while (last < FD_MANY) {
		last = open("/dev/null", O_RDONLY);
		if (last < 0)
			fatal("open");
		first = first < 0 ? last : first;
	}
	fd_numbers_run(e);
	for (int fd = first; fd >= 0 && fd <= last; fd++)
		close(fd);
}

void nofile_set(unsigned long need, unsigned long want)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl))
		fatal("getrlimit");
	if (rl.rlim_max < need)
		fatal("needs a hard RLIMIT_NOFILE of %lu, has %llu", need,
		      (unsigned long long)rl.rlim_max);
	rl.rlim_cur = rl.rlim_max < want ? rl.rlim_max : want;
	if (setrlimit(RLIMIT_NOFILE, &rl))
		fatal("setrlimit");
}

void prefork_serve(struct end *e, uint64_t seed, int conns, bool numbers)
{
	struct pollfd p = { .fd = e->lfd, .events = POLLIN };
	int first = -1;

	poll(&p, 1, 0); /* a worker's first look at the listener it shares */
	tell(e, GO);
	for (int i = 0; i < conns; i++) {
		int fd = accept_one(e);

		first = first < 0 ? fd : first;
		if (numbers)
			say("worker: connection %d: descriptor %+d from its first", i + 2, fd - first);
		reply_request(fd, seed, (uint64_t)i * 100);
	}
}

static void fd_numbers_server(struct end *e)
{
	int status;
	pid_t pid = fork();

	if (pid < 0)
		fatal("fork");
	if (pid == 0) {
		prefork_serve(e, 95, FD_CONNS, true);
		_exit(0);
	}
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status))
		fatal("the worker did not end well");
	tell(e, DONE);
}

const struct diff_case io_cases[] = {
	{ "half_close", half_close_client, half_close_server, .conns = 1 },
	{ "peek", peek_client, peek_server, .conns = 1 },
	{ "waitall", waitall_client, waitall_server, .conns = 1 },
	{ "msg_trunc", trunc_client, trunc_server, .conns = 1 },
	{ "nonblock", nonblock_client, nonblock_server, .conns = 1 },
	{ "vectored", vectored_client, vectored_server, .conns = 1 },
	{ "iov_invalid", iov_invalid_client, iov_invalid_server, .conns = 1 },
	{ "msg", msg_client, msg_server, .conns = 1 },
	{ "sendfile", sendfile_client, sendfile_server, .conns = 1 },
	{ "dup", dup_client, dup_server, .conns = 1 },
	{ "threads", threads_client, threads_server, .conns = 1 },
	{ "fd_numbers", fd_numbers_client, fd_numbers_server, .conns = 1 + FD_CONNS },
	{ "fd_numbers_many", fd_numbers_many_client, fd_numbers_server, .conns = 1 + FD_CONNS },
	{ "fd_numbers_pending", fd_numbers_pending_client, fd_numbers_server,
	  .conns = 1 + FD_CONNS },
	{ NULL },
};
