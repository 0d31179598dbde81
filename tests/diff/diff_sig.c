// SPDX-License-Identifier: MIT
/*
 * Signals and time limits: a blocking read (and poll, epoll_wait, select)
 * interrupted by a handler without SA_RESTART gives EINTR; with
 * SA_RESTART the read goes on and returns the data, while poll still
 * gives EINTR, as the kernel never restarts it; SO_RCVTIMEO ends a read
 * with EAGAIN.  All of it holds as well while the server has not yet
 * accepted the connection, when usmc waits for the handshake's answer.
 *
 * A helper thread sends SIGUSR1 to the blocked thread again and again
 * until it is done, so a signal that comes before the call starts only
 * delays the outcome: the transcript never depends on when they come.
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <time.h>

#include "diff.h"

enum { GO = 1, READ_DONE, DONE };

static atomic_int handled;

static void on_usr1(int sig)
{
	(void)sig;
	atomic_fetch_add(&handled, 1);
}

static void handle_usr1(int flags)
{
	struct sigaction sa = { .sa_handler = on_usr1, .sa_flags = flags };

	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGUSR1, &sa, NULL) < 0)
		fatal("sigaction");
}

/*
 * The helper thread: signals target every few ms, and tells the peer GO
 * once go_at signals were handled.
 */
struct kicker {
	pthread_t target;
	pthread_t thread;
	struct end *e;
	atomic_bool stop;
	atomic_int go_at; /* 0: never */
	bool told;
};

static void *kick(void *arg)
{
	struct kicker *k = arg;
	struct timespec pause = { 0, 5 * 1000 * 1000 };

	while (!atomic_load(&k->stop)) {
		int go_at = atomic_load(&k->go_at);

		pthread_kill(k->target, SIGUSR1);
		if (go_at && !k->told && atomic_load(&handled) >= go_at) {
			tell(k->e, GO);
			k->told = true;
		}
		nanosleep(&pause, NULL);
	}
	return NULL;
}

static void kicker_start(struct kicker *k, struct end *e)
{
	k->target = pthread_self();
	k->e = e;
	atomic_store(&k->stop, false);
	atomic_store(&k->go_at, 0);
	k->told = false;
	if (pthread_create(&k->thread, NULL, kick, k))
		fatal("pthread_create");
}

static void kicker_stop(struct kicker *k)
{
	atomic_store(&k->stop, true);
	pthread_join(k->thread, NULL);
}

static int select_read(int fd)
{
	fd_set rd;

	FD_ZERO(&rd);
	FD_SET(fd, &rd);
	return select(fd + 1, &rd, NULL, NULL, NULL);
}

static int epoll_read(int fd)
{
	int ep = epoll_create1(EPOLL_CLOEXEC), n;
	struct epoll_event ev = { .events = EPOLLIN, .data.fd = fd };

	if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0)
		fatal("epoll set");
	n = epoll_wait(ep, &ev, 1, -1);
	if (n < 0) {
		int err = errno;

		close(ep);
		errno = err;
		return n;
	}
	close(ep);
	return n;
}

/* ---- without SA_RESTART: EINTR ---- */

static void eintr_client(struct end *e)
{
	struct pollfd p = { .fd = e->fd, .events = POLLIN };
	struct kicker k;
	char buf[100];

	handle_usr1(0);
	send_pattern(e->fd, 70, 0, 100);
	kicker_start(&k, e);
	say_rc("blocking read, signal without SA_RESTART", read(e->fd, buf, sizeof(buf)));
	say_rc("blocking recv(MSG_WAITALL)", recv(e->fd, buf, sizeof(buf), MSG_WAITALL));
	say_rc("poll(-1)", poll(&p, 1, -1));
	say_rc("epoll_wait(-1)", epoll_read(e->fd));
	say_rc("select(no timeout)", select_read(e->fd));
	kicker_stop(&k);
	tell(e, GO);
	recv_pattern(e->fd, 71, 0, 10, "then the data");
}

static void eintr_server(struct end *e)
{
	recv_pattern(e->fd, 70, 0, 100, "request");
	expect(e, GO);
	send_pattern(e->fd, 71, 0, 10);
}

/* ---- with SA_RESTART: the read goes on; poll does not ---- */

/*
 * A blocking read with the kicker started: the peer writes (seed's
 * pattern) once a few more signals were handled, then says DONE.
 */
static void read_restarted(struct kicker *k, struct end *e, const char *what, uint8_t seed)
{
	uint8_t buf[100];
	ssize_t n;

	atomic_store(&k->go_at, atomic_load(&handled) + 5);
	n = read(e->fd, buf, sizeof(buf));
	say_rc(what, n);
	if (n > 0)
		say("  bytes %s", pattern_ok(buf, (size_t)n, seed, 0) ? "match" : "DIFFER");
	kicker_stop(k);
	if (!k->told)
		tell(e, GO);
	expect(e, DONE);
}

static void restart_client(struct end *e)
{
	struct pollfd p = { .fd = e->fd, .events = POLLIN };
	struct kicker k;

	handle_usr1(SA_RESTART);
	send_pattern(e->fd, 72, 0, 100);
	kicker_start(&k, e);
	say_rc("poll(-1), signal with SA_RESTART", poll(&p, 1, -1));
	read_restarted(&k, e, "blocking read, signal with SA_RESTART", 73);
}

static void restart_server(struct end *e)
{
	recv_pattern(e->fd, 72, 0, 100, "request");
	expect(e, GO);
	send_pattern(e->fd, 73, 0, 10);
	tell(e, DONE);
}

/*
 * The same before the server accepted: poll() ends with EINTR as TCP's
 * does; the read waits for the end of the handshake as long as for the
 * bytes, and SA_RESTART goes on with both.
 */
static void restart_unaccepted_client(struct end *e)
{
	struct pollfd p;
	struct kicker k;

	handle_usr1(SA_RESTART);
	e->fd = connect_to(e);
	p = (struct pollfd){ .fd = e->fd, .events = POLLIN };
	kicker_start(&k, e);
	/* poll() is never restarted: EINTR, whatever a look at the handshake found meanwhile. */
	say_rc("poll(-1) before accept, signal with SA_RESTART", poll(&p, 1, -1));
	/* The server accepts once a few signals came into the read. */
	read_restarted(&k, e, "blocking read before accept, signal with SA_RESTART", 76);
}

static void restart_unaccepted_server(struct end *e)
{
	expect(e, GO);
	e->fd = accept_one(e);
	send_pattern(e->fd, 76, 0, 10);
	tell(e, DONE);
}

/* ---- SO_RCVTIMEO: the read ends with EAGAIN ---- */

static void rcvtimeo_client(struct end *e)
{
	struct timeval tv = { 0, 200000 };
	socklen_t len = sizeof(tv);
	char buf[100];

	send_pattern(e->fd, 74, 0, 100);
	say_rc("setsockopt(SO_RCVTIMEO 0.2 s)",
	       setsockopt(e->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)));
	memset(&tv, 0, sizeof(tv));
	say_rc("getsockopt(SO_RCVTIMEO)", getsockopt(e->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, &len));
	say("  %ld.%06ld s", (long)tv.tv_sec, (long)tv.tv_usec);
	say_rc("read on empty", read(e->fd, buf, sizeof(buf)));
	tell(e, READ_DONE);
	recv_pattern(e->fd, 75, 0, 10, "then the data");
}

static void rcvtimeo_server(struct end *e)
{
	uint64_t v;

	recv_pattern(e->fd, 74, 0, 100, "request");
	/*
	 * A backstop, not a clock: if the read never ends by itself, the
	 * bytes end it, and the transcripts differ.
	 */
	if (!hear_within(e, WAIT_MS, &v)) {
		say("the read did not end by itself: sending the data to end it");
		send_pattern(e->fd, 75, 0, 10);
		v = hear(e);
	}
	if (v != READ_DONE)
		fatal("heard %llu", (unsigned long long)v);
	send_pattern(e->fd, 75, 0, 10);
}

/* The same before the server accepted: SO_RCVTIMEO bounds the wait for the handshake too. */
static void rcvtimeo_unaccepted_client(struct end *e)
{
	struct timeval tv = { 0, 200000 };
	char buf[100];

	e->fd = connect_to(e);
	say_rc("setsockopt(SO_RCVTIMEO 0.2 s)",
	       setsockopt(e->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)));
	say_rc("read before accept", read(e->fd, buf, sizeof(buf)));
	tell(e, READ_DONE);
	recv_pattern(e->fd, 75, 0, 10, "then the data");
}

static void rcvtimeo_unaccepted_server(struct end *e)
{
	uint64_t v;

	/* The backstop again: accepting and sending end a read that does not end by itself. */
	if (!hear_within(e, WAIT_MS, &v)) {
		say("the read did not end by itself: accepting and sending the data to end it");
		e->fd = accept_one(e);
		send_pattern(e->fd, 75, 0, 10);
		v = hear(e);
	}
	if (v != READ_DONE)
		fatal("heard %llu", (unsigned long long)v);
	if (e->fd < 0) {
		e->fd = accept_one(e);
		send_pattern(e->fd, 75, 0, 10);
	}
}

/*
 * ---- SO_RCVTIMEO bounds the wait for the answer and for bytes together ----
 *
 * The server accepts 0.6 s into the client's read of 1 s, and sends 0.7 s
 * after that unless the read ended first: it ends at 1 s with EAGAIN, as
 * TCP's, not 1 s after the answer came, when the data would be there.
 */
static void rcvtimeo_answer_late_client(struct end *e)
{
	struct timeval tv = { 1, 0 };
	char buf[100];

	e->fd = connect_to(e);
	say_rc("setsockopt(SO_RCVTIMEO 1 s)",
	       setsockopt(e->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)));
	tell(e, GO);
	say_rc("read, accepted 0.6 s into it", read(e->fd, buf, sizeof(buf)));
	tell(e, READ_DONE);
	recv_pattern(e->fd, 77, 0, 10, "then the data");
}

static void rcvtimeo_answer_late_server(struct end *e)
{
	uint64_t v;

	expect(e, GO);
	usleep(600000);
	e->fd = accept_one(e);
	/* Its first use, a look: under usmc-run the Accept goes now, 0.6 s into the read. */
	(void)poll_now(e->fd, POLLIN);
	if (!hear_within(e, 700, &v)) {
		send_pattern(e->fd, 77, 0, 10);
		v = hear(e);
	} else {
		send_pattern(e->fd, 77, 0, 10);
	}
	if (v != READ_DONE)
		fatal("heard %llu", (unsigned long long)v);
}

const struct diff_case sig_cases[] = {
	{ "eintr", eintr_client, eintr_server, .conns = 1 },
	{ "sa_restart", restart_client, restart_server, .conns = 1 },
	{ "sa_restart_unaccepted", restart_unaccepted_client, restart_unaccepted_server,
	  .raw = true, .conns = 1 },
	{ "rcvtimeo", rcvtimeo_client, rcvtimeo_server, .conns = 1 },
	{ "rcvtimeo_unaccepted", rcvtimeo_unaccepted_client, rcvtimeo_unaccepted_server,
	  .raw = true, .conns = 1 },
	{ "rcvtimeo_answer_late", rcvtimeo_answer_late_client, rcvtimeo_answer_late_server,
	  .raw = true, .conns = 1 },
	{ NULL },
};
