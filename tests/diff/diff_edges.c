// SPDX-License-Identifier: MIT
/*
 * Writing at the edges of a stream: splice toward a peer that closed
 * (EPIPE and SIGPIPE, as diff_close.c's sigpipe case has them for send,
 * write and sendfile), and urgent data (send and recv with MSG_OOB),
 * which TCP carries beside the stream and usmc's shared memory does not.
 */
#include <fcntl.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <time.h>

#include "diff.h"

enum { GO = 1, CLOSED, DONE };

/* ---- splice toward a closed peer: the first goes, then EPIPE and SIGPIPE ---- */

#define SPLICE_SEED 130
#define SPLICE_LEN 5000
#define SPLICE_TRY 1000

static volatile sig_atomic_t sigpipes;

static void on_sigpipe(int sig)
{
	(void)sig;
	sigpipes++;
}

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
	struct sigaction sa = { .sa_handler = on_sigpipe };
	struct timespec pause = { 0, 1000 * 1000 };
	sigset_t pipe_set, pending;
	size_t done = 0;
	ssize_t n;
	int p[2];
	char c;

	sigaction(SIGPIPE, &sa, NULL);
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

/* ---- urgent data: TCP sends it, usmc in shared memory cannot ---- */

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

const struct diff_case edge_cases[] = {
	{ "splice_epipe", splice_epipe_client, splice_epipe_server, .conns = 1 },
	{ "oob", oob_client, oob_server, .conns = 1 },
	{ NULL },
};
