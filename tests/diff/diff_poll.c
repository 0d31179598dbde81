// SPDX-License-Identifier: MIT
/*
 * Readiness, level-triggered, asked three ways (poll, select, epoll): on a
 * fresh connection, with data, after the peer's shutdown or close, after
 * both directions are shut and after a reset; select over many
 * descriptors; a listener with a connection waiting.
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <time.h>

#include "diff.h"

enum { GO = 1, DATA, SHUT, SHUT_BACK, PROBED, CLOSED, DONE };

enum method { M_POLL, M_SELECT, M_EPOLL };

struct probe {
	enum method m;
	int fd;
	int ep;
};

static struct probe probe_open(int fd, enum method m)
{
	struct probe p = { .m = m, .fd = fd, .ep = -1 };
	struct epoll_event ev = { .events = EPOLLIN, .data.fd = fd };

	if (m == M_EPOLL) {
		p.ep = epoll_create1(EPOLL_CLOEXEC);
		if (p.ep < 0 || epoll_ctl(p.ep, EPOLL_CTL_ADD, fd, &ev) < 0)
			fatal("epoll set");
	}
	return p;
}

static void probe_close(struct probe *p)
{
	if (p->ep >= 0)
		close(p->ep);
}

static unsigned probe_select(struct probe *p, unsigned events, int timeout)
{
	struct timeval tv = { timeout / 1000, (timeout % 1000) * 1000 };
	fd_set rd, wr, ex;
	unsigned rev = 0;
	int n;

	FD_ZERO(&rd);
	FD_ZERO(&wr);
	FD_ZERO(&ex);
	if (events & POLLIN)
		FD_SET(p->fd, &rd);
	if (events & POLLOUT)
		FD_SET(p->fd, &wr);
	if (events & POLLPRI)
		FD_SET(p->fd, &ex);
	n = select(p->fd + 1, &rd, &wr, &ex, &tv);
	if (n < 0)
		fatal("select");
	rev |= FD_ISSET(p->fd, &rd) ? POLLIN : 0;
	rev |= FD_ISSET(p->fd, &wr) ? POLLOUT : 0;
	rev |= FD_ISSET(p->fd, &ex) ? POLLPRI : 0;
	return rev;
}

static unsigned probe_epoll(struct probe *p, unsigned events, int timeout)
{
	struct epoll_event ev = { .events = events, .data.fd = p->fd };
	int n;

	/* Level-triggered: the set asks for exactly what this probe waits for. */
	if (epoll_ctl(p->ep, EPOLL_CTL_MOD, p->fd, &ev) < 0)
		fatal("epoll_ctl MOD");
	do
		n = epoll_wait(p->ep, &ev, 1, timeout);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		fatal("epoll_wait");
	return n ? ev.events : 0;
}

/* What is ready of events, waiting up to timeout ms for any of it. */
static unsigned probe(struct probe *p, unsigned events, int timeout)
{
	switch (p->m) {
	case M_SELECT:
		return probe_select(p, events, timeout);
	case M_EPOLL:
		return probe_epoll(p, events, timeout);
	default:
		return (unsigned)(timeout ? wait_for(p->fd, (short)events)
					  : poll_now(p->fd, (short)events));
	}
}

static void say_probe(const char *what, struct probe *p, unsigned events, int timeout)
{
	say_mask(what, probe(p, events, timeout));
}

/* ---- the masks through a connection's life ---- */

static void masks_client(struct end *e, enum method m)
{
	struct probe p = probe_open(e->fd, m);
	char c;

	say_probe("fresh", &p, ALL_EVENTS, 0);
	expect(e, GO);
	send_pattern(e->fd, 50, 0, 10);
	expect(e, SHUT);
	say_rc("shutdown(SHUT_WR)", shutdown(e->fd, SHUT_WR));
	say_probe("after our SHUT_WR", &p, ALL_EVENTS, 0);
	tell(e, SHUT);
	expect(e, SHUT_BACK);
	say_probe("the peer shut too, wait", &p, POLLIN | POLLRDHUP, WAIT_MS);
	say_probe("both directions shut", &p, ALL_EVENTS, 0);
	say_rc("read", read(e->fd, &c, 1));
	tell(e, PROBED);
	probe_close(&p);
}

static void masks_server(struct end *e, enum method m)
{
	struct probe p = probe_open(e->fd, m);
	char c;

	say_probe("fresh", &p, ALL_EVENTS, 0);
	tell(e, GO);
	say_probe("data, wait", &p, POLLIN, WAIT_MS);
	say_probe("with data", &p, ALL_EVENTS, 0);
	recv_pattern(e->fd, 50, 0, 10, "data");
	say_probe("after reading it", &p, ALL_EVENTS, 0);
	tell(e, SHUT);
	expect(e, SHUT);
	say_probe("peer's SHUT_WR, wait", &p, POLLIN | POLLRDHUP, WAIT_MS);
	say_probe("after the peer's SHUT_WR", &p, ALL_EVENTS, 0);
	say_rc("read", read(e->fd, &c, 1));
	say_probe("after reading EOF", &p, ALL_EVENTS, 0);
	say_rc("shutdown(SHUT_WR)", shutdown(e->fd, SHUT_WR));
	say_probe("both directions shut", &p, ALL_EVENTS, 0);
	tell(e, SHUT_BACK);
	expect(e, PROBED);
	probe_close(&p);
}

/* ---- the peer closes (no shutdown first); our write then meets its reset ---- */

static void peer_close_client(struct end *e)
{
	send_pattern(e->fd, 51, 0, 100);
	expect(e, GO);
	say_rc("close", close(e->fd));
	e->fd = -1;
	tell(e, CLOSED);
}

static void peer_close_server(struct end *e, enum method m)
{
	struct probe p = probe_open(e->fd, m);
	char c;

	recv_pattern(e->fd, 51, 0, 100, "greeting");
	say_probe("before", &p, ALL_EVENTS, 0);
	tell(e, GO);
	expect(e, CLOSED);
	say_probe("the peer closed, wait", &p, POLLIN | POLLRDHUP, WAIT_MS);
	say_probe("after the peer's close", &p, ALL_EVENTS, 0);
	say_rc("read", read(e->fd, &c, 1));
	if (m == M_SELECT) {
		/* select has no view of a reset: the socket was readable and writable before it. */
		write_until_epipe(e->fd, 0);
	} else {
		say_rc("write", write(e->fd, "x", 1));
		/* Events 0: only POLLERR or POLLHUP end the wait, the peer's reset. */
		say_probe("reset, wait", &p, 0, WAIT_MS);
		say_probe("after the reset", &p, ALL_EVENTS, 0);
		say_rc("read", read(e->fd, &c, 1));
		say_rc("write", write(e->fd, "x", 1));
	}
	say_probe("after EPIPE", &p, ALL_EVENTS, 0);
	probe_close(&p);
}

#define BY_METHOD(name, m)                                   \
	static void name##_client(struct end *e)             \
	{                                                    \
		masks_client(e, m);                          \
	}                                                    \
	static void name##_server(struct end *e)             \
	{                                                    \
		masks_server(e, m);                          \
	}                                                    \
	static void name##_close_server(struct end *e)       \
	{                                                    \
		peer_close_server(e, m);                     \
	}

BY_METHOD(poll, M_POLL)
BY_METHOD(select, M_SELECT)
BY_METHOD(epoll, M_EPOLL)

/* ---- select over many descriptors ---- */

#define MANY 8

/* The connections the server writes to, and those it closes. */
static const int data_on[] = { 1, 4, 6 };

/* Indices of the set in fds, as "1 4 6", or "none". */
static const char *set_str(const fd_set *set, const int *fds, int n, char *buf, size_t len)
{
	size_t used = 0;

	buf[0] = '\0';
	for (int i = 0; i < n; i++)
		if (FD_ISSET(fds[i], set))
			used += (size_t)snprintf(buf + used, len - used, "%s%d", used ? " " : "", i);
	return used ? buf : "none";
}

static int select_many(const int *fds, int n, fd_set *rd, fd_set *wr, int timeout_ms)
{
	struct timeval tv = { timeout_ms / 1000, (timeout_ms % 1000) * 1000 };
	int top = 0, rc;

	FD_ZERO(rd);
	if (wr)
		FD_ZERO(wr);
	for (int i = 0; i < n; i++) {
		FD_SET(fds[i], rd);
		if (wr)
			FD_SET(fds[i], wr);
		top = fds[i] > top ? fds[i] : top;
	}
	rc = select(top + 1, rd, wr, NULL, &tv);
	if (rc < 0)
		fatal("select");
	return rc;
}

/* Waits (bounded) until want descriptors are readable, then says what select sees. */
static void select_until(const int *fds, int n, int want, const char *what)
{
	char rbuf[64], wbuf[64];
	fd_set rd, wr;
	int rc;

	for (int waited = 0; waited < WAIT_MS; waited += 100)
		if (select_many(fds, n, &rd, NULL, 100) >= want)
			break;
	rc = select_many(fds, n, &rd, &wr, 0);
	say("%s: select = %d, readable %s, writable %s", what, rc,
	    set_str(&rd, fds, n, rbuf, sizeof(rbuf)), set_str(&wr, fds, n, wbuf, sizeof(wbuf)));
}

static void select_many_client(struct end *e)
{
	int fill[160], nfill = 0, fds[MANY];
	char c;

	/* Descriptors far past the first word of an fd_set, and past 16. */
	while (nfill < 160 && (fill[nfill] = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0 &&
	       fill[nfill] < 150)
		nfill++;
	for (int i = 0; i < MANY; i++) {
		c = (char)i;
		fds[i] = connect_to(e);
		if (write(fds[i], &c, 1) != 1)
			fatal("write index");
	}
	tell(e, GO);
	expect(e, DATA);
	select_until(fds, MANY, 3, "data on three");
	for (size_t i = 0; i < sizeof(data_on) / sizeof(data_on[0]); i++)
		say_rc("read", read(fds[data_on[i]], &c, 1));
	tell(e, CLOSED);
	expect(e, CLOSED);
	select_until(fds, MANY, 2, "two closed");
	say_rc("read on 2", read(fds[2], &c, 1));
	say_rc("read on 7", read(fds[7], &c, 1));
	for (int i = 0; i < MANY; i++)
		close(fds[i]);
	for (int i = 0; i <= nfill && i < 160; i++)
		if (fill[i] >= 0)
			close(fill[i]);
	tell(e, DONE);
}

static void select_many_server(struct end *e)
{
	int by_index[MANY] = { 0 };
	char c;

	for (int i = 0; i < MANY; i++) {
		int fd = accept_one(e);

		if (read(fd, &c, 1) != 1 || c < 0 || c >= MANY)
			fatal("read index");
		by_index[(int)c] = fd;
	}
	expect(e, GO);
	for (size_t i = 0; i < sizeof(data_on) / sizeof(data_on[0]); i++)
		if (write(by_index[data_on[i]], "d", 1) != 1)
			fatal("write");
	tell(e, DATA);
	expect(e, CLOSED);
	close(by_index[2]);
	close(by_index[7]);
	tell(e, CLOSED);
	expect(e, DONE);
	for (int i = 0; i < MANY; i++)
		if (i != 2 && i != 7)
			close(by_index[i]);
	say("served %d connections", MANY);
}

/* ---- a listener: readable when a connection waits ---- */

static void listen_poll_client(struct end *e)
{
	expect(e, GO);
	e->fd = connect_to(e);
	send_pattern(e->fd, 52, 0, 100);
	recv_pattern(e->fd, 53, 0, 100, "reply");
}

static void listen_poll_server(struct end *e)
{
	say_mask("listener, nobody came", poll_now(e->lfd, ALL_EVENTS));
	tell(e, GO);
	say_mask("a connection waits", wait_for(e->lfd, POLLIN));
	say_mask("listener", poll_now(e->lfd, ALL_EVENTS));
	e->fd = accept_one(e);
	say_mask("listener after accept", poll_now(e->lfd, ALL_EVENTS));
	set_nonblock(e->lfd, true);
	say_rc("accept on the empty listener", accept(e->lfd, NULL, NULL));
	recv_pattern(e->fd, 52, 0, 100, "request");
	send_pattern(e->fd, 53, 0, 100);
}

/* ---- a full send path waits quietly ---- */

#define FULL_TOTAL (8u << 20) /* more than any send path holds: buffers, or a ring */
#define FULL_WAIT_MS 300

/* Writes the stream from *off until EAGAIN (non-blocking); fatal on another error. */
static void fill_until_eagain(int fd, uint64_t seed, size_t *off)
{
	uint8_t buf[16384];

	for (;;) {
		ssize_t n;

		pattern(buf, sizeof(buf), seed, *off);
		n = send(fd, buf, sizeof(buf), MSG_NOSIGNAL);
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0)
			fatal("send while filling");
		*off += (size_t)n;
	}
}

/* The thread's CPU time, in ms. */
static long thread_cpu_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * A wait for POLLOUT on a send path that is full and stays full: nothing
 * to report for FULL_WAIT_MS, and no CPU spent on it (a wait that the
 * kernel socket's room woke again and again would spend the whole time).
 */
static void say_full_wait(const char *what, int fd, int ep)
{
	struct epoll_event ev;
	long cpu = thread_cpu_ms();
	int n;

	if (ep >= 0) {
		n = epoll_wait(ep, &ev, 1, FULL_WAIT_MS);
	} else {
		struct pollfd p = { .fd = fd, .events = POLLOUT };

		n = poll(&p, 1, FULL_WAIT_MS);
	}
	cpu = thread_cpu_ms() - cpu;
	say("%s: %d ready, %s", what, n, cpu < FULL_WAIT_MS / 10 ? "quiet" : "busy");
	if (cpu >= FULL_WAIT_MS / 10)
		say("  (%ld ms of CPU in a wait of %d ms)", cpu, FULL_WAIT_MS);
}

/* Then the rest of the stream, blocking, and the end of it. */
static void full_finish(struct end *e, size_t off)
{
	set_nonblock(e->fd, false);
	tell(e, GO);
	send_pattern(e->fd, 54, off, FULL_TOTAL - off);
	say_rc("shutdown(SHUT_WR)", shutdown(e->fd, SHUT_WR));
	recv_pattern(e->fd, 55, 0, 100, "reply");
}

/*
 * Before the server accepts: what the client writes waits (in TCP's
 * buffers, or in its ring before the server's answer) until it is full,
 * and then poll and select do not call the socket writable.
 */
static void full_before_accept_client(struct end *e)
{
	struct timeval tv = { 0, FULL_WAIT_MS * 1000 };
	size_t off = 0;
	fd_set wr;

	e->fd = connect_to(e);
	set_nonblock(e->fd, true);
	fill_until_eagain(e->fd, 54, &off);
	say("filled until EAGAIN");
	say_full_wait("poll(POLLOUT), nobody accepted", e->fd, -1);
	FD_ZERO(&wr);
	FD_SET(e->fd, &wr);
	say_rc("select(write), nobody accepted", select(e->fd + 1, NULL, &wr, NULL, &tv));
	full_finish(e, off);
}

static void full_server(struct end *e)
{
	expect(e, GO);
	if (e->fd < 0)
		e->fd = accept_one(e);
	recv_pattern(e->fd, 54, 0, FULL_TOTAL, "stream");
	send_pattern(e->fd, 55, 0, 100);
}

/* In the connection: epoll, level-triggered, asked for EPOLLOUT while the peer reads nothing. */
static void full_epoll_client(struct end *e)
{
	struct epoll_event ev = { .events = EPOLLOUT };
	size_t off = 0;
	int ep = epoll_create1(EPOLL_CLOEXEC);

	if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, e->fd, &ev) < 0)
		fatal("epoll");
	greet(e);
	set_nonblock(e->fd, true);
	fill_until_eagain(e->fd, 54, &off);
	say("filled until EAGAIN");
	say_full_wait("epoll_wait(EPOLLOUT), the peer reads nothing", e->fd, ep);
	say_full_wait("poll(POLLOUT), the peer reads nothing", e->fd, -1);
	close(ep);
	full_finish(e, off);
}

static void full_epoll_server(struct end *e)
{
	greet(e);
	full_server(e);
}

const struct diff_case poll_cases[] = {
	{ "poll_masks", poll_client, poll_server, .conns = 1 },
	{ "select_masks", select_client, select_server, .conns = 1 },
	{ "epoll_masks", epoll_client, epoll_server, .conns = 1 },
	{ "poll_peer_close", peer_close_client, poll_close_server, .conns = 1 },
	{ "select_peer_close", peer_close_client, select_close_server, .conns = 1 },
	{ "epoll_peer_close", peer_close_client, epoll_close_server, .conns = 1 },
	{ "select_many", select_many_client, select_many_server, .raw = true, .conns = MANY },
	{ "listen_poll", listen_poll_client, listen_poll_server, .raw = true, .conns = 1 },
	{ "poll_full_before_accept", full_before_accept_client, full_server, .raw = true,
	  .conns = 1 },
	{ "epoll_out_full", full_epoll_client, full_epoll_server, .conns = 1 },
	{ NULL },
};
