// SPDX-License-Identifier: MIT
/*
 * A server that refuses a connection's Proposal while its client waits
 * for the answer to a request: the refusal's marker, which usmc reads out
 * of the stream (docs/HANDSHAKE.md), is no data, and epoll_wait, poll()
 * and select() say readable only once the server's answer is there.
 */
#include <errno.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <unistd.h>

#include "diff.h"

enum { GO = 1 };

/*
 * The server (it set up an io_uring, so it refuses every Proposal)
 * refuses while the client waits, and answers 0.2 s later.  A
 * level-triggered reader takes a report for a promise that read() will
 * not say EAGAIN: wrk counts that as an error and drops the connection.
 * Three rounds: the refusal may also be read before the wait.
 */
#define REFUSED_ROUNDS 3

enum refused_wait { REFUSED_EPOLL, REFUSED_POLL, REFUSED_SELECT };

/* Waits for fd to be readable the way w says: what the wait returned. */
static int refused_wait(int fd, enum refused_wait w)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.fd = fd }, got;
	struct pollfd p = { .fd = fd, .events = POLLIN };
	struct timeval tv = { .tv_sec = WAIT_MS / 1000 };
	fd_set rd;
	int ep, rc;

	if (w == REFUSED_POLL)
		return poll(&p, 1, WAIT_MS);
	if (w == REFUSED_SELECT) {
		FD_ZERO(&rd);
		FD_SET(fd, &rd);
		return select(fd + 1, &rd, NULL, NULL, &tv);
	}
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev))
		fatal("epoll");
	rc = epoll_wait(ep, &got, 1, WAIT_MS);
	close(ep);
	return rc;
}

static void refused_reader_run(struct end *e, enum refused_wait w)
{
	uint8_t buf[100];
	ssize_t n;

	expect(e, GO);
	for (int i = 0; i < REFUSED_ROUNDS; i++) {
		int fd = connect_to(e);

		set_nonblock(fd, true);
		send_pattern(fd, 87, 0, sizeof(buf));
		say_rc("wait", refused_wait(fd, w));
		n = read(fd, buf, sizeof(buf));
		say("read after the report: %s", n > 0 ? "data" : n == 0 ? "the end" : errno_name(errno));
		close(fd);
	}
}

static void refused_reader_client(struct end *e)
{
	refused_reader_run(e, REFUSED_EPOLL);
}

static void refused_poller_client(struct end *e)
{
	refused_reader_run(e, REFUSED_POLL);
}

static void refused_selector_client(struct end *e)
{
	refused_reader_run(e, REFUSED_SELECT);
}

static void refused_reader_server(struct end *e)
{
	ring_setup();
	tell(e, GO);
	for (int i = 0; i < REFUSED_ROUNDS; i++) {
		int fd = accept_one(e);

		/* The refusal goes at the first use: while the client waits in epoll_wait. */
		usleep(200000);
		recv_pattern(fd, 87, 0, 100, "request");
		usleep(200000);
		send_pattern(fd, 88, 0, 100);
		close(fd);
	}
}

const struct diff_case refused_cases[] = {
	{ "epoll_refused_reader", refused_reader_client, refused_reader_server, .raw = true,
	  .fallbacks = 2 * REFUSED_ROUNDS },
	{ "poll_refused_reader", refused_poller_client, refused_reader_server, .raw = true,
	  .fallbacks = 2 * REFUSED_ROUNDS },
	{ "select_refused_reader", refused_selector_client, refused_reader_server, .raw = true,
	  .fallbacks = 2 * REFUSED_ROUNDS },
	{ NULL },
};
