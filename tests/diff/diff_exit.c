// SPDX-License-Identifier: MIT
/*
 * A peer whose process exits without closing its socket (exit(), a return
 * from main): the kernel closes it, and what the survivor reads and what
 * its writes meet are TCP's: the end after the peer's data, or a reset
 * where the peer left data unread, then EPIPE.  A child forked earlier
 * that still holds the connection keeps it going.
 */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "diff.h"

enum { GO = 1 };

/*
 * A peer that exits without closing, having waited for data: the kernel
 * closes its socket (a FIN, nothing being unread there).  A write toward
 * it then meets the closed socket, which answers with a reset; what the
 * peer wrote before is still read in full, then the end TCP gives after
 * a FIN, and the next write fails.
 */
static void tcp_state_wait(int fd, int from, int ms)
{
	for (int i = 0; i < ms; i++) {
		struct tcp_info ti;
		socklen_t len = sizeof(ti);

		if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) < 0 || ti.tcpi_state != from)
			return;
		usleep(1000);
	}
}

static void exit_waiting_client(struct end *e)
{
	char c;

	greet(e);
	expect(e, GO);
	/* The pipe ends with the peer's exit, its socket's close beside it. */
	while (read(e->hear, &c, 1) > 0)
		;
	tcp_state_wait(e->fd, TCP_ESTABLISHED, WAIT_MS);
	say_rc("send after the peer's exit", send(e->fd, "x", 1, MSG_NOSIGNAL));
	/* The reset that write brings, where it goes on TCP. */
	tcp_state_wait(e->fd, TCP_CLOSE_WAIT, 500);
	recv_to_eof(e->fd, "the peer's data");
	say_rc("send again", send(e->fd, "x", 1, MSG_NOSIGNAL));
}

static void exit_waiting_server(struct end *e)
{
	struct pollfd p = { .fd = e->fd, .events = POLLIN };

	greet(e);
	send_pattern(e->fd, 26, 0, 10);
	/* A wait for data that does not come: under usmc, a wish to be rung. */
	say_rc("poll", poll(&p, 1, 100));
	tell(e, GO);
	/* Without closing: exit()'s handlers run, the kernel closes the socket. */
	exit(0);
}

/* The same peer, exiting with what we wrote unread: TCP's close resets. */
static void exit_unread_client(struct end *e)
{
	char c;

	greet(e);
	send_pattern(e->fd, 27, 0, 10);
	tell(e, GO);
	while (read(e->hear, &c, 1) > 0)
		;
	tcp_state_wait(e->fd, TCP_ESTABLISHED, WAIT_MS);
	recv_to_eof(e->fd, "after the peer's exit");
	say_rc("send", send(e->fd, "x", 1, MSG_NOSIGNAL));
}

static void exit_unread_server(struct end *e)
{
	greet(e);
	expect(e, GO);
	exit(0);
}

/* A writer waiting for room when its peer exits with the data unread. */
static void exit_full_client(struct end *e)
{
	char buf[4096] = { 0 };
	ssize_t n;

	greet(e);
	set_nonblock(e->fd, true);
	while ((n = send(e->fd, buf, sizeof(buf), MSG_NOSIGNAL)) > 0)
		;
	say_rc("send until full", n);
	tell(e, GO);
	say_mask("room after the peer's exit", wait_for(e->fd, POLLOUT));
	say_rc("send", send(e->fd, buf, sizeof(buf), MSG_NOSIGNAL));
	say_rc("send again", send(e->fd, buf, sizeof(buf), MSG_NOSIGNAL));
	set_nonblock(e->fd, false);
	recv_to_eof(e->fd, "then");
}

/*
 * A process that exits while its forked child still holds the connection:
 * nothing ends there; the child writes after its parent is gone, then
 * exits too, and only its exit closes the socket.
 */
static void exit_forked_client(struct end *e)
{
	greet(e);
	recv_pattern(e->fd, 32, 0, 1000, "the child's data");
	send_pattern(e->fd, 33, 0, 100);
	recv_to_eof(e->fd, "the child's answer");
	say_rc("send", send(e->fd, "x", 1, MSG_NOSIGNAL));
}

static void exit_forked_server(struct end *e)
{
	pid_t parent = getpid();

	greet(e);
	if (fork() == 0) {
		for (int i = 0; i < WAIT_MS && getppid() == parent; i++)
			usleep(1000);
		send_pattern(e->fd, 32, 0, 1000);
		recv_pattern(e->fd, 33, 0, 100, "child: after the parent's exit");
		send_pattern(e->fd, 34, 0, 100);
		exit(0);
	}
	exit(0);
}

/*
 * A peer killed while it waited for room and for data, its last holder a
 * forked child: the survivor reads what it wrote, then shuts its own side
 * down.  Under usmc both free room and the shutdown ring the dead peer,
 * whose closed socket answers the first with a reset: the second must
 * raise no SIGPIPE, as TCP's shutdown raises none.
 */
static void killed_rung_client(struct end *e)
{
	static char buf[1 << 20];
	ssize_t n;

	count_sigpipes();
	greet(e);
	expect(e, GO);
	say_rc("read of what the killed peer wrote", read(e->fd, buf, sizeof(buf)) > 0);
	say_rc("shutdown(SHUT_WR)", shutdown(e->fd, SHUT_WR));
	say("SIGPIPE caught %d times", (int)sigpipes);
	/* How much the peer's buffers held is not TCP's to match: only how it ends. */
	while ((n = read(e->fd, buf, sizeof(buf))) > 0)
		;
	say_rc("the read after the rest", n);
	say("SIGPIPE caught %d times", (int)sigpipes);
}

static void killed_rung_server(struct end *e)
{
	int status;
	pid_t pid;

	greet(e);
	pid = fork();
	if (pid == 0) {
		struct pollfd p = { .fd = e->fd, .events = POLLIN | POLLOUT };
		char fill[4096] = { 0 };

		set_nonblock(e->fd, true);
		while (send(e->fd, fill, sizeof(fill), MSG_NOSIGNAL) > 0)
			;
		/* Under usmc, wishes to be rung, for data and for room. */
		poll(&p, 1, 100);
		raise(SIGKILL);
	}
	close(e->fd);
	e->fd = -1;
	if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFSIGNALED(status))
		fatal("the child was not killed");
	tell(e, GO);
}

const struct diff_case exit_cases[] = {
	{ "exit_waiting", exit_waiting_client, exit_waiting_server, .conns = 1 },
	{ "exit_unread", exit_unread_client, exit_unread_server, .conns = 1 },
	{ "exit_full", exit_full_client, exit_unread_server, .conns = 1 },
	{ "exit_forked", exit_forked_client, exit_forked_server, .conns = 1 },
	{ "killed_rung", killed_rung_client, killed_rung_server, .conns = 1 },
	{ NULL },
};
