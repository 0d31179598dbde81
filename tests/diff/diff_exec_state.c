// SPDX-License-Identifier: MIT
/*
 * exec with an inherited connection (diff_exec.c holds the case table
 * and starts the new images): what was set on the socket before the exec
 * holds in the new image.  A shutdown in either direction, SO_RCVTIMEO,
 * SO_LINGER and SO_RCVLOWAT act there as they would have before; and a
 * new image that closes a connection with bytes still unread, then
 * connects to the same peer again, keeps the two streams apart.
 */
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "diff.h"
#include "diff_exec.h"
#include "diff_exec_state.h"

/* ---- shutdown(SHUT_WR), then exec: the new image still may not write ---- */

void exec_shut_wr_client(struct end *e)
{
	recv_to_eof(e->fd, "before and after the exec");
	send_pattern(e->fd, 50, 0, 40000);
	expect(e, 1);
	say_rc("shutdown(SHUT_WR)", shutdown(e->fd, SHUT_WR));
}

void exec_shut_wr_server(struct end *e)
{
	send_pattern(e->fd, 51, 0, 30000);
	say_rc("shutdown(SHUT_WR)", shutdown(e->fd, SHUT_WR));
	exec_step(e, "after_shut_wr", e->fd);
}

void after_shut_wr(struct end *e)
{
	char c = 'x';

	say_rc("send after SHUT_WR and exec", send(e->fd, &c, 1, MSG_NOSIGNAL));
	recv_pattern(e->fd, 50, 0, 40000, "the peer's data");
	tell(e, 1);
	recv_to_eof(e->fd, "then");
}

/* ---- socket state set before an exec holds in the new image ---- */

/*
 * The new image reads with nothing coming: end of file after SHUT_RD, the
 * timeout's EAGAIN after SO_RCVTIMEO.  A backstop, not a clock: a read
 * that never ends by itself is ended by a byte, and the transcripts differ.
 */
void exec_read_ends_client(struct end *e)
{
	uint64_t v;

	greet(e);
	if (!hear_within(e, WAIT_MS, &v)) {
		say("the read did not end by itself: sending a byte to end it");
		send_pattern(e->fd, 53, 0, 1);
		v = hear(e);
	}
	say("the new image read: %llu", (unsigned long long)v);
	recv_to_eof(e->fd, "then");
}

void exec_shut_rd_server(struct end *e)
{
	greet(e);
	say_rc("shutdown(SHUT_RD)", shutdown(e->fd, SHUT_RD));
	exec_step(e, "after_shut_rd", e->fd);
}

/* Sets a socket option, then runs step in a new image. */
static void opt_then_exec(struct end *e, const char *what, int opt, const void *val,
			  socklen_t len, const char *step)
{
	greet(e);
	say_rc(what, setsockopt(e->fd, SOL_SOCKET, opt, val, len));
	exec_step(e, step, e->fd);
}

void exec_rcvtimeo_server(struct end *e)
{
	struct timeval tv = { 0, 200000 };

	opt_then_exec(e, "setsockopt(SO_RCVTIMEO 0.2 s)", SO_RCVTIMEO, &tv, sizeof(tv),
		      "after_rcvtimeo");
}

void read_after_exec(struct end *e)
{
	char c;

	say_rc("read after the exec", read(e->fd, &c, 1));
	tell(e, 1);
}

/* SO_LINGER {1, 0} before the exec: the new image's close resets. */
void exec_linger_client(struct end *e)
{
	char c;

	greet(e);
	tell(e, 1);
	wait_for(e->fd, POLLIN);
	say_rc("read", read(e->fd, &c, 1));
}

void exec_linger_server(struct end *e)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };

	opt_then_exec(e, "setsockopt(SO_LINGER {1, 0})", SO_LINGER, &lg, sizeof(lg),
		      "after_linger");
}

void after_linger(struct end *e)
{
	expect(e, 1);
	say_rc("close", close(e->fd));
	e->fd = -1;
}

/* SO_RCVLOWAT before the exec: the new image's poll waits for that many bytes. */
void exec_rcvlowat_client(struct end *e)
{
	greet(e);
	expect(e, 1);
	send_pattern(e->fd, 54, 0, 5);
	tell(e, 2);
	expect(e, 3);
	send_pattern(e->fd, 54, 5, 5);
	recv_to_eof(e->fd, "then");
}

void exec_rcvlowat_server(struct end *e)
{
	int lowat = 10;

	opt_then_exec(e, "setsockopt(SO_RCVLOWAT 10)", SO_RCVLOWAT, &lowat, sizeof(lowat),
		      "after_rcvlowat");
}

void after_rcvlowat(struct end *e)
{
	tell(e, 1);
	expect(e, 2);
	say_mask("poll with 5 bytes of 10", poll_now(e->fd, POLLIN));
	tell(e, 3);
	wait_for(e->fd, POLLIN);
	recv_pattern(e->fd, 54, 0, 10, "10 bytes");
}

/*
 * The new image of a connecting end closes a connection whose last bytes
 * the peer has not read yet, then connects to the same peer process
 * again: the new connection must not take the place of the first one's
 * bytes, which the peer reads after the second connection's.
 */
void exec_reconnect_client(struct end *e)
{
	int first, second;

	e->lfd = listen_any(AF_INET, &e->port);
	/* Once for the connect, once for the new image's. */
	tell(e, e->port);
	tell(e, e->port);
	first = accept_one(e);
	e->fd = first;
	greet(e);
	expect(e, 1);
	second = accept_one(e);
	expect(e, 2);
	recv_to_eof(first, "the first connection");
	recv_to_eof(second, "the second connection");
	close(second);
	close(e->lfd);
	e->lfd = -1;
}

void exec_reconnect_server(struct end *e)
{
	e->port = (uint16_t)hear(e);
	e->fd = connect_to(e);
	greet(e);
	exec_step(e, "reconnect_after", e->fd);
}

void reconnect_after(struct end *e)
{
	e->family = AF_INET;
	send_pattern(e->fd, 55, 0, 30000);
	say_rc("close with the bytes unread", close(e->fd));
	tell(e, 1);
	e->port = (uint16_t)hear(e);
	e->fd = connect_to(e);
	/* The same stream's next bytes: a checksum tells the two apart. */
	send_pattern(e->fd, 55, 30000, 30000);
	say_rc("close the second", close(e->fd));
	e->fd = -1;
	tell(e, 2);
}

/* ---- a shutdown by one holder wakes another that came by fork, then exec ---- */

/* Holds its end open until the server has seen its child's read end: no close of ours wakes it. */
void exec_child_shut_client(struct end *e)
{
	greet(e);
	recv_to_eof(e->fd, "after the server's shutdown");
	expect(e, 1);
}

/* Whether pid runs a new image (--resume in its arguments) and sleeps (state S). */
static bool new_image_asleep(pid_t pid)
{
	char path[64], buf[256], *p;
	size_t n;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
	if (!(f = fopen(path, "r")))
		return false;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	if (!memmem(buf, n, "--resume", 8))
		return false;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if (!(f = fopen(path, "r")))
		return false;
	p = fgets(buf, sizeof(buf), f) ? strrchr(buf, ')') : NULL;
	fclose(f);
	return p && p[1] == ' ' && p[2] == 'S';
}

/*
 * A forked child runs a new image that sleeps in read() on the socket
 * (or posix_spawn or a vfork child's exec starts it);
 * the parent shuts it down.  On TCP the read ends at once (0): a shutdown
 * is the socket's, whichever process holds it and however it came to.
 * The new image tells what its read returned by its exit status.
 */
enum child_start { START_FORK, START_SPAWN, START_VFORK };

static void child_shut_steps(struct end *e, enum child_start start)
{
	struct step_argv a;
	int status;
	pid_t pid;

	greet(e);
	step_argv(&a, e, "read_exit", e->fd);
	if (start == START_SPAWN)
		pid = spawn_step(e, "read_exit", e->fd, posix_spawn, "/proc/self/exe");
	else
		pid = start == START_VFORK ? vfork() : fork();
	if (pid < 0)
		fatal("fork");
	if (pid == 0 && start == START_VFORK) {
		execv("/proc/self/exe", a.argv);
		_exit(127);
	}
	if (pid == 0)
		exec_step(e, "read_exit", e->fd);
	for (int i = 0; i < WAIT_MS && !new_image_asleep(pid); i++)
		usleep(1000);
	usleep(20000);
	say_rc("shutdown(SHUT_RDWR) in the parent", shutdown(e->fd, SHUT_RDWR));
	if (!reap_within_wait(pid, &status)) {
		say("the new image is still blocked");
	} else {
		say("the new image's read ended: %s",
		    WIFEXITED(status) && WEXITSTATUS(status) == 0 ? "0, end of file" : "otherwise");
	}
	tell(e, 1);
}

void exec_child_shut_server(struct end *e)
{
	child_shut_steps(e, START_FORK);
}

/* The same with a child that posix_spawn started, the socket on its 0 and 1. */
void exec_spawn_shut_server(struct end *e)
{
	child_shut_steps(e, START_SPAWN);
}

/* The same with a vfork child's exec (Python's subprocess). */
void exec_vfork_shut_server(struct end *e)
{
	child_shut_steps(e, START_VFORK);
}

void read_exit(struct end *e)
{
	char buf[100];
	ssize_t n = read(e->fd, buf, sizeof(buf));

	_exit(n == 0 ? 0 : n < 0 ? 2 : 3);
}
