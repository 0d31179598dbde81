// SPDX-License-Identifier: MIT
/*
 * A shutdown is the socket's, not the process's: after fork() parent and
 * child hold one socket, and a shutdown by either is what the other finds
 * next.  A child's write after its parent's SHUT_WR fails with EPIPE and
 * puts nothing behind the FIN; a child's read after its parent's SHUT_RD
 * ends at once; poll() in the child shows both.  The shutdown comes while
 * the child waits for word of it on a pipe, so it is not in a call on the
 * socket then (a child asleep in one: diff_threads.c).
 */
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "diff.h"

enum { GO = 1, DONE };

enum shut_side { PARENT_SHUTS, CHILD_SHUTS };

/* What the process that did not shut down finds of the socket. */
static void shut_look(int fd, int how)
{
	char buf[100] = { 0 };

	say_mask("poll", poll_now(fd, ALL_EVENTS));
	if (how != SHUT_WR)
		say_rc("read", recv(fd, buf, sizeof(buf), MSG_DONTWAIT));
	if (how != SHUT_RD)
		say_rc("write", send(fd, buf, sizeof(buf), MSG_NOSIGNAL | MSG_DONTWAIT));
}

/*
 * One process shuts the socket down (how), the other looks, then the
 * parent writes 100 bytes more where the shutdown leaves writing open,
 * so that the peer sees what came before its end of file.
 */
static void fork_shut_steps(struct end *e, int how, enum shut_side who)
{
	int go[2], done[2], status;
	char c;
	pid_t pid;

	greet(e);
	if (pipe(go) || pipe(done))
		fatal("pipe");
	pid = fork();
	if (pid < 0)
		fatal("fork");
	if (pid == 0) {
		if (who == CHILD_SHUTS) {
			say_rc("the child's shutdown", shutdown(e->fd, how));
		} else {
			if (read(go[0], &c, 1) != 1)
				fatal("the parent's word");
			shut_look(e->fd, how);
		}
		if (write(done[1], "d", 1) != 1)
			fatal("pipe");
		_exit(0);
	}
	if (who == PARENT_SHUTS) {
		say_rc("the parent's shutdown", shutdown(e->fd, how));
		if (write(go[1], "g", 1) != 1)
			fatal("pipe");
	}
	if (read(done[0], &c, 1) != 1)
		fatal("the child's word");
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status))
		fatal("the child did not end well");
	if (who == CHILD_SHUTS)
		shut_look(e->fd, how);
	if (how == SHUT_RD)
		send_pattern(e->fd, 41, 0, 100);
	tell(e, GO);
	expect(e, DONE);
	close(go[0]);
	close(go[1]);
	close(done[0]);
	close(done[1]);
}

/* The peer: what came after the greeting, up to the end or, if there is none, its pause. */
static void fork_shut_server(struct end *e)
{
	uint8_t buf[4096];
	uint32_t sum = SUM_INIT;
	size_t got = 0;
	ssize_t n;

	greet(e);
	expect(e, GO);
	while (wait_for(e->fd, POLLIN) & POLLIN) {
		n = recv(e->fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n <= 0)
			break;
		sum = sum32(sum, buf, (size_t)n);
		got += (size_t)n;
		if (got >= 100)
			break;
	}
	say("after the greeting: %zu bytes, sum %08x", got, sum);
	say_mask("poll", poll_now(e->fd, ALL_EVENTS));
	tell(e, DONE);
}

#define FORK_SHUT(name, how, who)                       \
	static void name##_client(struct end *e)        \
	{                                               \
		fork_shut_steps(e, how, who);           \
	}
FORK_SHUT(fork_shut_wr, SHUT_WR, PARENT_SHUTS)
FORK_SHUT(fork_shut_rd, SHUT_RD, PARENT_SHUTS)
FORK_SHUT(fork_shut_rdwr, SHUT_RDWR, PARENT_SHUTS)
FORK_SHUT(fork_child_shut_wr, SHUT_WR, CHILD_SHUTS)
FORK_SHUT(fork_child_shut_rd, SHUT_RD, CHILD_SHUTS)

const struct diff_case fork_shut_cases[] = {
	{ "fork_shut_wr", fork_shut_wr_client, fork_shut_server, .conns = 1 },
	{ "fork_shut_rd", fork_shut_rd_client, fork_shut_server, .conns = 1 },
	{ "fork_shut_rdwr", fork_shut_rdwr_client, fork_shut_server, .conns = 1 },
	{ "fork_child_shut_wr", fork_child_shut_wr_client, fork_shut_server, .conns = 1 },
	{ "fork_child_shut_rd", fork_child_shut_rd_client, fork_shut_server, .conns = 1 },
	{ NULL },
};
