// SPDX-License-Identifier: MIT
/*
 * Endings and beginnings: SO_LINGER {1, 0} and close with unread data
 * (resets), writing toward a closed peer (EPIPE, SIGPIPE), shutdown
 * (SHUT_RD), refused and non-blocking connects, and a connection shared
 * by a parent and its forked child.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <linux/sched.h>
#include <sched.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <sys/sendfile.h>

#include "diff.h"

enum { GO = 1, CLOSED, DONE };

static void say_so_error(int fd)
{
	int err = -1;
	socklen_t len = sizeof(err);

	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		say_rc("getsockopt(SO_ERROR)", -1);
	else
		say("SO_ERROR: %s", errno_name(err));
}

/* ---- SO_LINGER {1, 0}: close resets, the peer reads ECONNRESET ---- */

static void linger_reset_client(struct end *e)
{
	char c = 'x';

	greet(e);
	tell(e, GO);
	/*
	 * Only the state after the wait is said: a poll that runs while the
	 * reset is being taken in could see part of it.
	 */
	wait_for(e->fd, POLLIN);
	say_mask("after the reset", poll_now(e->fd, ALL_EVENTS));
	say_rc("read", read(e->fd, &c, 1));
	say_mask("after reading the error", poll_now(e->fd, ALL_EVENTS));
	say_rc("read again", read(e->fd, &c, 1));
	say_rc("write", write(e->fd, &c, 1));
}

static void linger_reset_server(struct end *e)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };
	socklen_t len = sizeof(lg);

	say_rc("setsockopt(SO_LINGER {1, 0})", setsockopt(e->fd, SOL_SOCKET, SO_LINGER, &lg, len));
	memset(&lg, 0xff, sizeof(lg));
	say_rc("getsockopt(SO_LINGER)", getsockopt(e->fd, SOL_SOCKET, SO_LINGER, &lg, &len));
	say("  {%d, %d}", lg.l_onoff, lg.l_linger);
	greet(e);
	expect(e, GO);
	say_rc("close", close(e->fd));
	e->fd = -1;
}

/* ---- SO_ERROR once the read has reported the reset ---- */

static void so_error_reset_client(struct end *e)
{
	char c;

	greet(e);
	tell(e, GO);
	expect(e, CLOSED);
	/* No poll first: the read alone takes in the reset, and reports it once. */
	say_rc("read", read(e->fd, &c, 1));
	say_so_error(e->fd);
	say_rc("read again", read(e->fd, &c, 1));
}

static void so_error_reset_server(struct end *e)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };

	if (setsockopt(e->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)) < 0)
		fatal("SO_LINGER");
	greet(e);
	expect(e, GO);
	say_rc("close with SO_LINGER {1, 0}", close(e->fd));
	e->fd = -1;
	tell(e, CLOSED);
}

/* ---- a connection reset before its server accepts it ---- */

static void reset_unaccepted_client(struct end *e)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };

	e->fd = connect_to(e);
	say_rc("setsockopt(SO_LINGER {1, 0})",
	       setsockopt(e->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)));
	say_rc("close before the server accepts", close(e->fd));
	e->fd = -1;
	tell(e, GO);
}

static void reset_unaccepted_server(struct end *e)
{
	char c;

	expect(e, GO);
	e->fd = accept_one(e);
	say_mask("accepted", poll_now(e->fd, ALL_EVENTS));
	say_so_error(e->fd);
	say_rc("read", read(e->fd, &c, 1));
	say_rc("read again", read(e->fd, &c, 1));
}

/* ---- close with unread data resets too ---- */

static void close_unread_client(struct end *e)
{
	char c = 'x';

	send_pattern(e->fd, 22, 0, 100);
	tell(e, GO);
	expect(e, CLOSED);
	wait_for(e->fd, POLLIN);
	say_mask("after the reset", poll_now(e->fd, ALL_EVENTS));
	say_rc("read", read(e->fd, &c, 1));
	say_rc("read again", read(e->fd, &c, 1));
	say_rc("write", write(e->fd, &c, 1));
}

static void close_unread_server(struct end *e)
{
	expect(e, GO);
	say_mask("ready", wait_for(e->fd, POLLIN));
	say_rc("close with 100 bytes unread", close(e->fd));
	e->fd = -1;
	tell(e, CLOSED);
}

/* ---- writing toward a closed peer: the first write goes, then EPIPE ---- */

static void epipe_client(struct end *e)
{
	char c;

	greet(e);
	tell(e, GO);
	expect(e, CLOSED);
	say_mask("ready", wait_for(e->fd, POLLIN));
	say_mask("after the peer's close", poll_now(e->fd, ALL_EVENTS));
	say_rc("read", read(e->fd, &c, 1));
	write_until_epipe(e->fd, 0);
	say_rc("write again", write(e->fd, "x", 1));
	say_so_error(e->fd);
}

static void closing_server(struct end *e)
{
	greet(e);
	expect(e, GO);
	say_rc("close", close(e->fd));
	e->fd = -1;
	tell(e, CLOSED);
}

/* SIGPIPE comes with each EPIPE, unless MSG_NOSIGNAL; sendfile's too. */
static void sigpipe_client(struct end *e)
{
	off_t off = 0;
	int file;
	char c;

	count_sigpipes();
	greet(e);
	tell(e, GO);
	expect(e, CLOSED);
	wait_for(e->fd, POLLIN);
	say_rc("read", read(e->fd, &c, 1));
	write_until_epipe(e->fd, 0);
	say("SIGPIPE caught %d times", (int)sigpipes);
	say_rc("send(MSG_NOSIGNAL)", send(e->fd, "x", 1, MSG_NOSIGNAL));
	say("SIGPIPE caught %d times", (int)sigpipes);
	say_rc("write", write(e->fd, "x", 1));
	say("SIGPIPE caught %d times", (int)sigpipes);
	file = pattern_file(25, 1000);
	say_rc("sendfile", sendfile(e->fd, file, &off, 1000));
	say("  offset %lld, SIGPIPE caught %d times", (long long)off, (int)sigpipes);
	close(file);
}

/* After our own shutdown(SHUT_WR), with the peer still there. */
static void sigpipe_shut_client(struct end *e)
{
	count_sigpipes();
	send_pattern(e->fd, 23, 0, 100);
	say_rc("shutdown(SHUT_WR)", shutdown(e->fd, SHUT_WR));
	say_rc("write", write(e->fd, "x", 1));
	say("SIGPIPE caught %d times", (int)sigpipes);
	say_rc("send(MSG_NOSIGNAL)", send(e->fd, "x", 1, MSG_NOSIGNAL));
	say("SIGPIPE caught %d times", (int)sigpipes);
	recv_to_eof(e->fd, "reply");
}

static void sigpipe_shut_server(struct end *e)
{
	recv_to_eof(e->fd, "request");
	send_pattern(e->fd, 24, 0, 10);
}

/* ---- shutdown(SHUT_RD) ---- */

static void shut_rd_client(struct end *e)
{
	char c;

	greet(e);
	say_rc("shutdown(SHUT_RD)", shutdown(e->fd, SHUT_RD));
	say_mask("poll", poll_now(e->fd, ALL_EVENTS));
	say_rc("read", read(e->fd, &c, 1));
	send_pattern(e->fd, 25, 0, 100);
	say("wrote 100 after SHUT_RD");
	tell(e, GO);
	expect(e, DONE);
}

static void shut_rd_server(struct end *e)
{
	greet(e);
	expect(e, GO);
	recv_pattern(e->fd, 25, 0, 100, "request");
	say_mask("poll", poll_now(e->fd, ALL_EVENTS));
	tell(e, DONE);
}

/* ---- connection refused, blocking and not ---- */

static void refused_client(struct end *e)
{
	struct sockaddr_storage ss;
	socklen_t len = loopback(e->family, 0, &ss);
	int bound = tcp_socket(e->family, 0), fd, nb;

	/* A bound socket that does not listen: its port refuses, and stays ours. */
	if (bind(bound, (struct sockaddr *)&ss, len) < 0 ||
	    getsockname(bound, (struct sockaddr *)&ss, &len) < 0)
		fatal("bind");
	fd = tcp_socket(e->family, 0);
	say_rc("connect to a port without listener", connect(fd, (struct sockaddr *)&ss, len));
	say_so_error(fd);
	nb = tcp_socket(e->family, SOCK_NONBLOCK);
	say_rc("non-blocking connect", connect(nb, (struct sockaddr *)&ss, len));
	wait_for(nb, POLLOUT);
	say_mask("refused", poll_now(nb, ALL_EVENTS));
	say_so_error(nb);
	say_so_error(nb);
	close(nb);
	close(fd);
	close(bound);
}

/* ---- non-blocking connect: EINPROGRESS, then writable and SO_ERROR 0 ---- */

static void nb_connect_client(struct end *e)
{
	struct sockaddr_storage ss, peer;
	socklen_t len = loopback(e->family, e->port, &ss), plen = sizeof(peer);

	e->fd = tcp_socket(e->family, SOCK_NONBLOCK);
	say_rc("connect", connect(e->fd, (struct sockaddr *)&ss, len));
	say_mask("ready", wait_for(e->fd, POLLOUT | POLLWRNORM));
	say_so_error(e->fd);
	say_rc("connect again", connect(e->fd, (struct sockaddr *)&ss, len));
	say_rc("getpeername", getpeername(e->fd, (struct sockaddr *)&peer, &plen));
	say("  peer is the listener: %s", plen == len && !memcmp(&peer, &ss, len) ? "yes" : "no");
	set_nonblock(e->fd, false);
	send_pattern(e->fd, 26, 0, 100000);
	recv_pattern(e->fd, 27, 0, 100000, "reply");
}

static void nb_connect_server(struct end *e)
{
	e->fd = accept_one(e);
	recv_pattern(e->fd, 26, 0, 100000, "request");
	send_pattern(e->fd, 27, 0, 100000);
}

/* ---- fork: parent and child write on the inherited connection ---- */

/*
 * The ways to fork a process.  Only fork() runs the fork handlers
 * (pthread_atfork); _Fork, clone without CLONE_VM and the raw system
 * calls run none, and the child goes on with the connection all the same.
 */
enum fork_way { FORK_LIBC, FORK_UNDERSCORE, FORK_SYS_FORK, FORK_SYS_CLONE, FORK_SYS_CLONE3,
		FORK_CLONE_FN };

static enum fork_way fork_way;
static struct end *clone_end;
static int fork_child_steps(struct end *e);

static int clone_fn(void *arg)
{
	(void)arg;
	return fork_child_steps(clone_end);
}

/* Forks the way asked: 0 in the child, as fork(); clone()'s child runs fork_child_steps and exits. */
static pid_t fork_by_way(struct end *e)
{
	static uint64_t clone_stack[16384];
	struct clone_args ca = { .exit_signal = SIGCHLD };

	switch (fork_way) {
	case FORK_LIBC:
		return fork();
	case FORK_UNDERSCORE:
		return _Fork();
	case FORK_SYS_FORK:
		return (pid_t)syscall(SYS_fork);
	case FORK_SYS_CLONE:
		return (pid_t)syscall(SYS_clone, SIGCHLD, 0, NULL, NULL, 0);
	case FORK_SYS_CLONE3:
		return (pid_t)syscall(SYS_clone3, &ca, sizeof(ca));
	case FORK_CLONE_FN:
		clone_end = e;
		return clone(clone_fn, clone_stack + 16384, SIGCHLD, NULL);
	}
	return -1;
}

/* The pipe on which the parent tells its child that it closed its copy. */
static int parent_closed[2];

/*
 * The child writes its message once the parent has closed its copy, and
 * leaves: the connection is the child's alone by then.
 */
static int fork_child_steps(struct end *e)
{
	char c;

	if (read(parent_closed[0], &c, 1) != 1)
		fatal("the parent's word");
	send_pattern(e->fd, 29, 0, 3000);
	close(e->fd);
	return 0;
}

/* The parent closes its copy first, then the child writes on the connection and closes. */
static void fork_handoff_steps(struct end *e)
{
	int status;
	pid_t pid;

	send_pattern(e->fd, 28, 0, 500);
	if (pipe(parent_closed))
		fatal("pipe");
	pid = fork_by_way(e);
	if (pid < 0)
		fatal("fork");
	if (pid == 0)
		_exit(fork_child_steps(e));
	say_rc("parent's close", close(e->fd));
	e->fd = -1;
	if (write(parent_closed[1], "", 1) != 1 || waitpid(pid, &status, 0) != pid ||
	    !WIFEXITED(status))
		fatal("the child did not end well");
	say("child exit %d", WEXITSTATUS(status));
	close(parent_closed[0]), close(parent_closed[1]);
}

static void fork_handoff_server(struct end *e)
{
	char c;

	recv_pattern(e->fd, 28, 0, 500, "before the fork");
	recv_pattern(e->fd, 29, 0, 3000, "the child's message, after the parent's close");
	say_rc("read at EOF", read(e->fd, &c, 1));
}

static void fork_write_steps(struct end *e)
{
	int status;
	pid_t pid;

	send_pattern(e->fd, 28, 0, 500);
	pid = fork();
	if (pid < 0)
		fatal("fork");
	if (pid == 0) {
		/* The child writes its message and leaves; only its copy closes. */
		send_pattern(e->fd, 29, 0, 3000);
		say("child wrote 3000 and closes its copy");
		close(e->fd);
		_exit(0);
	}
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
		fatal("the child did not end well");
	say("child exit %d", WEXITSTATUS(status));
	send_pattern(e->fd, 30, 0, 2000);
	say("parent wrote 2000");
	say_rc("shutdown(SHUT_WR)", shutdown(e->fd, SHUT_WR));
	recv_pattern(e->fd, 31, 0, 100, "reply");
}

static void fork_write_client(struct end *e)
{
	greet(e);
	fork_write_steps(e);
}

#define FORK_WAY_CLIENT(way, name)             \
	static void fork_##name##_client(struct end *e) \
	{                                          \
		fork_way = way;                    \
		fork_handoff_steps(e);             \
	}
FORK_WAY_CLIENT(FORK_LIBC, libc)
FORK_WAY_CLIENT(FORK_UNDERSCORE, underscore)
FORK_WAY_CLIENT(FORK_SYS_FORK, sys_fork)
FORK_WAY_CLIENT(FORK_SYS_CLONE, sys_clone)
FORK_WAY_CLIENT(FORK_SYS_CLONE3, sys_clone3)
FORK_WAY_CLIENT(FORK_CLONE_FN, clone)

/* The fork right after connect(), before the client's first read. */
static void fork_early_client(struct end *e)
{
	fork_write_steps(e);
}

static void fork_write_receive(struct end *e)
{
	char c;

	recv_pattern(e->fd, 28, 0, 500, "before the fork");
	recv_pattern(e->fd, 29, 0, 3000, "the child's message");
	recv_pattern(e->fd, 30, 0, 2000, "the parent's message");
	say_rc("read at EOF", read(e->fd, &c, 1));
	send_pattern(e->fd, 31, 0, 100);
}

static void fork_write_server(struct end *e)
{
	greet(e);
	fork_write_receive(e);
}

/* Parent and child write at the same time; the peer sorts what came by tag. */
#define FORK_MSGS 50
#define FORK_MSG_LEN 200

static void write_tagged(int fd, char tag)
{
	char msg[FORK_MSG_LEN];

	for (int i = 0; i < FORK_MSGS; i++) {
		memset(msg, tag, sizeof(msg));
		msg[1] = (char)i;
		if (write(fd, msg, sizeof(msg)) != (ssize_t)sizeof(msg))
			fatal("tagged write");
	}
}

static void fork_both_client(struct end *e)
{
	int status;
	pid_t pid;

	greet(e);
	pid = fork();
	if (pid < 0)
		fatal("fork");
	if (pid == 0) {
		write_tagged(e->fd, 'c');
		close(e->fd);
		_exit(0);
	}
	write_tagged(e->fd, 'p');
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
		fatal("the child did not end well");
	say("child exit %d", WEXITSTATUS(status));
	say_rc("shutdown(SHUT_WR)", shutdown(e->fd, SHUT_WR));
	expect(e, DONE);
}

static void fork_both_server(struct end *e)
{
	char msg[FORK_MSG_LEN];
	int next[2] = { 0, 0 }, bad = 0, got = 0;
	ssize_t n;

	greet(e);
	/* Small writes to a blocking TCP socket with room arrive whole. */
	while ((n = recv(e->fd, msg, sizeof(msg), MSG_WAITALL)) == (ssize_t)sizeof(msg)) {
		int who = msg[0] == 'p' ? 0 : msg[0] == 'c' ? 1 : -1;

		got++;
		if (who < 0 || msg[1] != (char)next[who] || memchr(msg + 2, msg[0] == 'p' ? 'c' : 'p',
								sizeof(msg) - 2))
			bad++;
		else
			next[who]++;
	}
	say_rc("last recv", n);
	say("%d messages: parent's %d, child's %d, each in order; %d broken", got, next[0], next[1],
	    bad);
	tell(e, DONE);
}

const struct diff_case close_cases[] = {
	{ "linger_reset", linger_reset_client, linger_reset_server, .conns = 1 },
	{ "so_error_reset", so_error_reset_client, so_error_reset_server, .conns = 1 },
	{ "close_unread", close_unread_client, close_unread_server, .conns = 1 },
	{ "reset_unaccepted", reset_unaccepted_client, reset_unaccepted_server, .raw = true,
	  .fallbacks = 1 },
	{ "epipe", epipe_client, closing_server, .conns = 1 },
	{ "sigpipe", sigpipe_client, closing_server, .conns = 1 },
	{ "sigpipe_shut", sigpipe_shut_client, sigpipe_shut_server, .conns = 1 },
	{ "shut_rd", shut_rd_client, shut_rd_server, .conns = 1 },
	{ "refused", refused_client, NULL, .fallbacks = 2 },
	{ "nb_connect", nb_connect_client, nb_connect_server, .raw = true, .conns = 1 },
	{ "fork_write", fork_write_client, fork_write_server, .conns = 1 },
	{ "fork_both", fork_both_client, fork_both_server, .conns = 1 },
	{ "fork_early", fork_early_client, fork_write_receive, .conns = 1 },
	{ "fork_handoff", fork_libc_client, fork_handoff_server, .conns = 1 },
	{ "fork_underscore", fork_underscore_client, fork_handoff_server, .conns = 1 },
	{ "fork_sys_fork", fork_sys_fork_client, fork_handoff_server, .conns = 1 },
	{ "fork_sys_clone", fork_sys_clone_client, fork_handoff_server, .conns = 1 },
	{ "fork_sys_clone3", fork_sys_clone3_client, fork_handoff_server, .conns = 1 },
	{ "fork_clone", fork_clone_client, fork_handoff_server, .conns = 1 },
	{ NULL },
};
