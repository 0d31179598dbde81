// SPDX-License-Identifier: MIT
/*
 * Writing at the edges of a stream: splice toward a peer that closed
 * (EPIPE and SIGPIPE, as diff_close.c's sigpipe case has them for send,
 * write and sendfile), and urgent data (send and recv with MSG_OOB): the
 * mark that stops a read, SIOCATMARK, POLLPRI in poll, select and epoll,
 * SIGURG, SO_OOBINLINE, and an urgent byte read past or overtaken.
 */
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/select.h>
#include <time.h>

#include "diff.h"

enum { GO = 1, CLOSED, DONE };

/* ---- splice toward a closed peer: the first goes, then EPIPE and SIGPIPE ---- */

#define SPLICE_SEED 130
#define SPLICE_LEN 5000
#define SPLICE_TRY 1000

static int pipe_holds(int rd)
{
	int n = -1;

	if (ioctl(rd, FIONREAD, &n) < 0)
		fatal("FIONREAD on the pipe");
	return n;
}

/* Tops the pipe up to SPLICE_TRY bytes, then splices them toward the socket. */
static ssize_t splice_try(int p[2], int sock, unsigned flags)
{
	int held = pipe_holds(p[0]);

	if (held < SPLICE_TRY)
		send_pattern(p[1], SPLICE_SEED, 0, (size_t)(SPLICE_TRY - held));
	return splice(p[0], NULL, sock, NULL, SPLICE_TRY, flags);
}

static void splice_epipe_client(struct end *e)
{
	struct timespec pause = { 0, 1000 * 1000 };
	sigset_t pipe_set, pending;
	size_t done = 0;
	ssize_t n;
	int p[2];
	char c;

	count_sigpipes();
	if (pipe(p) < 0)
		fatal("pipe");
	greet(e);
	/* The live connection first: what is spliced arrives. */
	send_pattern(p[1], SPLICE_SEED, 0, SPLICE_LEN);
	while (done < SPLICE_LEN && (n = splice(p[0], NULL, e->fd, NULL, SPLICE_LEN - done, 0)) > 0)
		done += (size_t)n;
	say("spliced %zu bytes to the live connection", done);
	tell(e, GO);
	expect(e, CLOSED);
	say_mask("ready", wait_for(e->fd, POLLIN));
	say_rc("read", read(e->fd, &c, 1));

	/*
	 * As write_until_epipe: the first splice goes (the peer's kernel
	 * answers it with a reset); how many more go depends on when that
	 * reset arrives, so only the failure is said.  The pause paces the loop.
	 */
	n = splice_try(p, e->fd, 0);
	say_rc("first splice(1000) toward the closed peer", n);
	for (int i = 0; n >= 0 && i < WAIT_MS; i++) {
		nanosleep(&pause, NULL);
		n = splice_try(p, e->fd, 0);
	}
	say_rc("a later splice(1000), once the peer's reset came", n);
	say("SIGPIPE caught %d times", (int)sigpipes);
	say("  bytes left in the pipe: %d", pipe_holds(p[0]));
	say_rc("splice again", splice_try(p, e->fd, 0));
	say("SIGPIPE caught %d times", (int)sigpipes);
	say_rc("splice(SPLICE_F_NONBLOCK)", splice_try(p, e->fd, SPLICE_F_NONBLOCK));
	say("SIGPIPE caught %d times", (int)sigpipes);
	say_rc("splice(SPLICE_F_MORE)", splice_try(p, e->fd, SPLICE_F_MORE));
	say("SIGPIPE caught %d times", (int)sigpipes);

	/* With SIGPIPE blocked it waits, pending, for the unblock. */
	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	sigprocmask(SIG_BLOCK, &pipe_set, NULL);
	say_rc("splice with SIGPIPE blocked", splice_try(p, e->fd, 0));
	sigpending(&pending);
	say("  SIGPIPE pending: %s, caught %d times", sigismember(&pending, SIGPIPE) ? "yes" : "no",
	    (int)sigpipes);
	sigprocmask(SIG_UNBLOCK, &pipe_set, NULL);
	say("  unblocked: caught %d times", (int)sigpipes);
	say("  bytes left in the pipe: %d", pipe_holds(p[0]));
	say_rc("send(MSG_NOSIGNAL)", send(e->fd, "x", 1, MSG_NOSIGNAL));
	say("SIGPIPE caught %d times", (int)sigpipes);
	close(p[0]), close(p[1]);
}

static void splice_epipe_server(struct end *e)
{
	greet(e);
	expect(e, GO);
	recv_pattern(e->fd, SPLICE_SEED, 0, SPLICE_LEN, "spliced");
	say_rc("close", close(e->fd));
	e->fd = -1;
	tell(e, CLOSED);
}

/* ---- urgent data ---- */

#define OOB_SEED 131

/*
 * 100 bytes, the urgent byte '!', 100 bytes.  The peer reads the first
 * 100, then the urgent byte by recv(MSG_OOB) (reading past the mark first
 * would drop it), then the rest, from which the urgent byte is missing.
 */
static void oob_client(struct end *e)
{
	ssize_t n;
	char c;

	greet(e);
	send_pattern(e->fd, OOB_SEED, 0, 100);
	n = send(e->fd, "!", 1, MSG_OOB);
	say_rc("send(\"!\", MSG_OOB)", n);
	send_pattern(e->fd, OOB_SEED, 100, 100);
	/* Whether an urgent byte went: the peer waits for it only then. */
	tell(e, n == 1);
	expect(e, DONE);
	say_rc("recv(MSG_OOB), none sent this way", recv(e->fd, &c, 1, MSG_OOB));
	say_rc("shutdown(SHUT_WR)", shutdown(e->fd, SHUT_WR));
	recv_to_eof(e->fd, "then");
}

static void oob_server(struct end *e)
{
	uint64_t sent;
	short ready;
	ssize_t n;
	char c = 0;

	greet(e);
	sent = hear(e);
	recv_pattern(e->fd, OOB_SEED, 0, 100, "before the urgent byte");
	ready = sent ? wait_for(e->fd, POLLPRI) : poll_now(e->fd, POLLPRI);
	say("urgent data pending: %s", ready & POLLPRI ? "yes" : "no");
	n = recv(e->fd, &c, 1, MSG_OOB);
	say_rc("recv(MSG_OOB)", n);
	if (n == 1)
		say("  the byte: '%c'", c);
	say_rc("recv(MSG_OOB) again", recv(e->fd, &c, 1, MSG_OOB));
	recv_pattern(e->fd, OOB_SEED, 100, 100, "after the urgent byte");
	tell(e, DONE);
	recv_to_eof(e->fd, "then");
}


/*
 * The urgent cases' stream: 100 bytes, "ab!" sent with MSG_OOB (its last
 * byte urgent), 100 bytes; the client tells when all went.
 */
#define URG_SEED 132

static void urgent_client(struct end *e)
{
	greet(e);
	expect(e, GO);
	send_pattern(e->fd, URG_SEED, 0, 100);
	say_rc("send(\"ab!\", MSG_OOB)", send(e->fd, "ab!", 3, MSG_OOB));
	send_pattern(e->fd, URG_SEED, 100, 100);
	tell(e, 1);
	expect(e, DONE);
	say_rc("shutdown(SHUT_WR)", shutdown(e->fd, SHUT_WR));
	recv_to_eof(e->fd, "then");
}

/*
 * One read of up to 1000 bytes: its count, and whether it holds lead, then
 * bytes off.. of the stream, then trail.
 */
static void read_part(int fd, const char *lead, uint64_t off, const char *trail, const char *what)
{
	uint8_t buf[1000];
	size_t nl = strlen(lead), nt = strlen(trail);
	ssize_t n = read(fd, buf, sizeof(buf));

	say_rc(what, n);
	if (n >= (ssize_t)(nl + nt))
		say("  %s", !memcmp(buf, lead, nl) && !memcmp(buf + n - nt, trail, nt) &&
				    pattern_ok(buf + nl, (size_t)n - nl - nt, URG_SEED, off)
			    ? "as sent"
			    : "NOT as sent");
}

static void say_atmark(int fd)
{
	int at = -1;

	say_rc("ioctl(SIOCATMARK)", ioctl(fd, SIOCATMARK, &at));
	say("  at the mark: %d", at);
}

static volatile sig_atomic_t sigurgs;

static void on_sigurg(int sig)
{
	(void)sig;
	sigurgs++;
}

/* The stream up to the mark, then the urgent byte by recv(MSG_OOB), then the rest. */
static void urgent_mark_server(struct end *e)
{
	struct sigaction sa = { .sa_handler = on_sigurg };
	struct timeval tv = { 0, 0 };
	char c = 0;
	struct iovec iov = { &c, 1 };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	fd_set ex;
	int inq = -1;

	greet(e);
	if (sigaction(SIGURG, &sa, NULL) < 0 || fcntl(e->fd, F_SETOWN, getpid()) < 0)
		fatal("SIGURG");
	tell(e, GO);
	hear(e);
	say_mask("urgent data pending", wait_for(e->fd, POLLPRI));
	say("SIGURG: %s", sigurgs ? "yes" : "no");
	say_mask("poll", poll_now(e->fd, ALL_EVENTS));
	say_rc("ioctl(FIONREAD)", ioctl(e->fd, FIONREAD, &inq));
	say("  unread: %d", inq);
	say_atmark(e->fd);
	read_part(e->fd, "", 0, "ab", "read up to the mark");
	say_atmark(e->fd);
	say_rc("sockatmark", sockatmark(e->fd));
	FD_ZERO(&ex);
	FD_SET(e->fd, &ex);
	say_rc("select(exceptfds)", select(e->fd + 1, NULL, NULL, &ex, &tv));
	say_rc("recv(MSG_OOB|MSG_PEEK)", recv(e->fd, &c, 1, MSG_OOB | MSG_PEEK));
	say("  the byte: '%c'", c);
	c = 0;
	say_rc("recvmsg(MSG_OOB)", recvmsg(e->fd, &mh, MSG_OOB));
	say("  the byte: '%c', MSG_OOB %s", c, mh.msg_flags & MSG_OOB ? "set" : "not set");
	say_rc("recv(MSG_OOB) again", recv(e->fd, &c, 1, MSG_OOB));
	say_atmark(e->fd);
	say_mask("poll", poll_now(e->fd, ALL_EVENTS));
	read_part(e->fd, "", 100, "", "read after the mark");
	say_atmark(e->fd);
	tell(e, DONE);
	recv_to_eof(e->fd, "then");
}

/* Read past the mark first: the urgent byte is gone from both the stream and recv(MSG_OOB). */
static void urgent_passed_server(struct end *e)
{
	char c;

	greet(e);
	tell(e, GO);
	hear(e);
	say_mask("urgent data pending", wait_for(e->fd, POLLPRI));
	read_part(e->fd, "", 0, "ab", "read up to the mark");
	read_part(e->fd, "", 100, "", "read past the mark");
	say_rc("recv(MSG_OOB)", recv(e->fd, &c, 1, MSG_OOB));
	say_mask("poll", poll_now(e->fd, ALL_EVENTS));
	say_atmark(e->fd);
	tell(e, DONE);
	recv_to_eof(e->fd, "then");
}

/* SO_OOBINLINE: the urgent byte stays in the stream, and the read still stops at it. */
static void urgent_inline_steps(struct end *e, bool set)
{
	int one = 1, v = 0;
	socklen_t len = sizeof(v);
	char c;

	greet(e);
	if (set)
		say_rc("setsockopt(SO_OOBINLINE)",
		       setsockopt(e->fd, SOL_SOCKET, SO_OOBINLINE, &one, sizeof(one)));
	say_rc("getsockopt(SO_OOBINLINE)", getsockopt(e->fd, SOL_SOCKET, SO_OOBINLINE, &v, &len));
	say("  on: %d", v);
	tell(e, GO);
	hear(e);
	say_mask("urgent data pending", wait_for(e->fd, POLLPRI));
	say_atmark(e->fd);
	read_part(e->fd, "", 0, "ab", "read up to the mark");
	say_atmark(e->fd);
	say_rc("recv(MSG_OOB)", recv(e->fd, &c, 1, MSG_OOB));
	read_part(e->fd, "!", 100, "", "read from the mark");
	say_atmark(e->fd);
	say_mask("poll", poll_now(e->fd, ALL_EVENTS));
	tell(e, DONE);
	recv_to_eof(e->fd, "then");
}

static void urgent_inline_server(struct end *e)
{
	urgent_inline_steps(e, true);
}

/* The option set on the listener, which its connections inherit. */
static void urgent_inline_listener_server(struct end *e)
{
	int one = 1;

	say_rc("setsockopt(listener, SO_OOBINLINE)",
	       setsockopt(e->lfd, SOL_SOCKET, SO_OOBINLINE, &one, sizeof(one)));
	tell(e, GO);
	e->fd = accept_one(e);
	urgent_inline_steps(e, false);
}

static void urgent_raw_client(struct end *e)
{
	expect(e, GO);
	e->fd = connect_to(e);
	urgent_client(e);
}

/*
 * Toward the client, waiting in epoll: two urgent writes before it reads,
 * so the second mark takes the first's place and the first urgent byte
 * is read in the stream, as TCP's.
 */
static void urgent_twice_client(struct end *e)
{
	struct epoll_event ev = { .events = EPOLLIN | EPOLLPRI }, out[2];
	int ep = epoll_create1(0);
	uint8_t buf[1000];
	ssize_t n;
	char c = 0;

	greet(e);
	if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, e->fd, &ev) < 0)
		fatal("epoll");
	tell(e, GO);
	expect(e, 1);
	say_rc("epoll_wait", epoll_wait(ep, out, 2, WAIT_MS));
	say_mask("  events", out[0].events);
	n = read(e->fd, buf, sizeof(buf));
	say_rc("read up to the second mark", n);
	say("  %s", n == 101 && pattern_ok(buf, 50, URG_SEED, 0) && buf[50] == '1' &&
			    pattern_ok(buf + 51, 50, URG_SEED, 50)
		    ? "as sent, the first urgent byte in the stream"
		    : "NOT as sent");
	say_rc("recv(MSG_OOB)", recv(e->fd, &c, 1, MSG_OOB));
	say("  the byte: '%c'", c);
	say_rc("epoll_wait", epoll_wait(ep, out, 2, 0));
	say_mask("  events", out[0].events);
	read_part(e->fd, "", 100, "", "read after the mark");
	say_rc("epoll_wait", epoll_wait(ep, out, 2, 0));
	close(ep);
	tell(e, DONE);
	say_rc("shutdown(SHUT_WR)", shutdown(e->fd, SHUT_WR));
	recv_to_eof(e->fd, "then");
}

static void urgent_twice_server(struct end *e)
{
	greet(e);
	expect(e, GO);
	send_pattern(e->fd, URG_SEED, 0, 50);
	say_rc("send(\"1\", MSG_OOB)", send(e->fd, "1", 1, MSG_OOB));
	send_pattern(e->fd, URG_SEED, 50, 50);
	say_rc("send(\"2\", MSG_OOB)", send(e->fd, "2", 1, MSG_OOB));
	send_pattern(e->fd, URG_SEED, 100, 100);
	tell(e, 1);
	expect(e, DONE);
	recv_to_eof(e->fd, "then");
}

const struct diff_case edge_cases[] = {
	{ "splice_epipe", splice_epipe_client, splice_epipe_server, .conns = 1 },
	{ "oob", oob_client, oob_server, .conns = 1 },
	{ "urgent_mark", urgent_client, urgent_mark_server, .conns = 1 },
	{ "urgent_passed", urgent_client, urgent_passed_server, .conns = 1 },
	{ "urgent_inline", urgent_client, urgent_inline_server, .conns = 1 },
	{ "urgent_inline_listener", urgent_raw_client, urgent_inline_listener_server, .raw = true,
	  .conns = 1 },
	{ "urgent_twice", urgent_twice_client, urgent_twice_server, .conns = 1 },
	{ NULL },
};
