// SPDX-License-Identifier: MIT
/*
 * Many clients at once to a prefork server: a client opens all its
 * connections before it writes on any (wrk, a load balancer's warm-up),
 * and two workers that share the listener accept them, whichever comes
 * first.  Under usmc every connection's Proposal waits in the backlog the
 * workers share, in the order the clients connected; a worker finds the
 * one of the connection it accepted behind those of the other worker's
 * connections.  Every connection must come through in shared memory: a
 * worker that looked through every Proposal ahead of its own each time,
 * and put each back behind the others, took longer than the clients
 * wait for their answer, and they fell back (nginx as Debian ships it,
 * wrk with 1,000 connections: 750 fallbacks, requests past 2 s).
 */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "diff.h"

enum { GO = 1, DONE };

#define STORM_CONNS   400
#define STORM_WORKERS 2
#define STORM_LEN     100
#define STORM_BACKLOG 64
/* Descriptors each end may need: its connections, and usmc's beside each. */
#define STORM_NOFILE  4096

/* What a worker answers to request req: each byte turned, so that a reply shows its connection. */
static void storm_turn(uint8_t *buf)
{
	for (int i = 0; i < STORM_LEN; i++)
		buf[i] ^= 0x5a;
}

/*
 * Sends each connection's request as soon as it connects, in whatever
 * order they do.  Taken in the order they were opened, a connection whose
 * SYN the full accept queue dropped would wait for its retransmission
 * while both workers wait for the requests of connections accepted after
 * it, and none of them would move: the case would hang on plain TCP too.
 */
static void storm_send_as_connected(const int *fds)
{
	static struct pollfd p[STORM_CONNS];
	static int which[STORM_CONNS];
	int left = STORM_CONNS;

	for (int i = 0; i < STORM_CONNS; i++)
		which[i] = i;
	while (left) {
		int n = 0, kept = 0;

		for (int k = 0; k < left; k++)
			p[k] = (struct pollfd){ .fd = fds[which[k]], .events = POLLOUT };
		n = poll(p, (nfds_t)left, WAIT_MS);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			fatal("%d connections never connected", left);
		for (int k = 0; k < left; k++) {
			int i = which[k], err = 0;
			socklen_t elen = sizeof(err);

			if (!p[k].revents) {
				which[kept++] = i;
				continue;
			}
			if (getsockopt(fds[i], SOL_SOCKET, SO_ERROR, &err, &elen) || err)
				fatal("connection %d: connect failed (%d)", i, err);
			set_nonblock(fds[i], false);
			send_pattern(fds[i], 99, (uint64_t)i * STORM_LEN, STORM_LEN);
		}
		left = kept;
	}
}

static void storm_client(struct end *e)
{
	static int fds[STORM_CONNS];
	struct sockaddr_storage ss;
	socklen_t len = loopback(e->family, e->port, &ss);
	int matched = 0;

	nofile_set(STORM_NOFILE, STORM_NOFILE);
	for (int i = 0; i < STORM_WORKERS; i++)
		expect(e, GO);
	/* All of them at once, as wrk opens its connections. */
	for (int i = 0; i < STORM_CONNS; i++) {
		fds[i] = tcp_socket(e->family, SOCK_NONBLOCK);
		if (connect(fds[i], (struct sockaddr *)&ss, len) && errno != EINPROGRESS)
			fatal("connect %d", i);
	}
	storm_send_as_connected(fds);
	for (int i = 0; i < STORM_CONNS; i++) {
		uint8_t got[STORM_LEN], want[STORM_LEN];

		if (recv(fds[i], got, sizeof(got), MSG_WAITALL) != STORM_LEN)
			fatal("connection %d: no whole reply", i);
		pattern(want, sizeof(want), 99, (uint64_t)i * STORM_LEN);
		storm_turn(want);
		matched += !memcmp(got, want, sizeof(got));
	}
	say("%d of %d replies match their requests", matched, STORM_CONNS);
	tell(e, DONE);
	for (int i = 0; i < STORM_CONNS; i++)
		close(fds[i]);
}

/* A worker: answers each connection it accepts until stop ends; says whether every request was whole. */
static void storm_worker(struct end *e, int stop)
{
	struct pollfd p[2] = { { .fd = e->lfd, .events = POLLIN }, { .fd = stop, .events = POLLIN } };
	bool whole = true;

	nofile_set(STORM_NOFILE, STORM_NOFILE);
	poll(p, 1, 0); /* a worker's first look at the listener it shares */
	tell(e, GO);
	while (!p[1].revents) {
		uint8_t buf[STORM_LEN];
		int fd;

		if (poll(p, 2, WAIT_MS) <= 0)
			fatal("worker: nothing to accept, and no end");
		if (!(p[0].revents & POLLIN))
			continue;
		fd = accept(e->lfd, NULL, NULL);
		if (fd < 0 && errno == EAGAIN)
			continue; /* the other worker took it */
		if (fd < 0)
			fatal("accept");
		set_nonblock(fd, false);
		if (recv(fd, buf, sizeof(buf), MSG_WAITALL) != STORM_LEN)
			whole = false;
		storm_turn(buf);
		if (send(fd, buf, sizeof(buf), MSG_NOSIGNAL) != STORM_LEN)
			whole = false;
		close(fd);
	}
	if (!whole)
		say("worker: a request or its reply was cut short");
}

static void storm_server(struct end *e)
{
	pid_t pids[STORM_WORKERS];
	int stop[2], status;

	if (listen(e->lfd, STORM_BACKLOG) || pipe(stop))
		fatal("listen, pipe");
	set_nonblock(e->lfd, true);
	for (int i = 0; i < STORM_WORKERS; i++) {
		pids[i] = fork();
		if (pids[i] < 0)
			fatal("fork");
		if (pids[i] == 0) {
			close(stop[1]);
			storm_worker(e, stop[0]);
			_exit(0);
		}
	}
	close(stop[0]);
	expect(e, DONE);
	close(stop[1]);
	for (int i = 0; i < STORM_WORKERS; i++)
		if (waitpid(pids[i], &status, 0) != pids[i] || !WIFEXITED(status) ||
		    WEXITSTATUS(status))
			fatal("a worker did not end well");
}

/*
 * A prefork worker that accepts late: its client's connection waits in
 * the kernel's accept queue longer than usmc's CLC timeout (2 s), as the
 * connections of a storm wait behind the others.  TCP's client just
 * waits for its reply.  Under usmc it must wait too, and its Proposal
 * still be there for the worker that accepts at last: the connection in
 * shared memory, not given up as unanswered while nobody could answer.
 */
#define LATE_ACCEPT_MS 2600

static void late_accept_client(struct end *e)
{
	int fd;

	expect(e, GO);
	fd = connect_to(e);
	say("connected; the worker accepts %d ms later", LATE_ACCEPT_MS);
	tell(e, GO);
	say("reply %s", request_reply(fd, 61, 0) ? "matches" : "does NOT match");
	close(fd);
	tell(e, DONE);
}

static void late_accept_server(struct end *e)
{
	int status;
	pid_t pid = fork();

	if (pid < 0)
		fatal("fork");
	if (pid == 0) {
		struct pollfd p = { .fd = e->lfd, .events = POLLIN };
		int fd;

		poll(&p, 1, 0); /* a worker's first look at the listener it shares */
		tell(e, GO);
		expect(e, GO);
		usleep(LATE_ACCEPT_MS * 1000);
		fd = accept(e->lfd, NULL, NULL);
		if (fd < 0)
			fatal("accept");
		reply_request(fd, 61, 0);
		close(fd);
		_exit(0);
	}
	/* The worker hears the client until it ends: only then is the pipe ours. */
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status))
		fatal("the worker did not end well");
	expect(e, DONE);
}

const struct diff_case storm_cases[] = {
	{ "prefork_storm", storm_client, storm_server, .conns = 1 + STORM_CONNS },
	{ "prefork_late_accept", late_accept_client, late_accept_server, .conns = 1, .raw = true },
	{ NULL },
};
