// SPDX-License-Identifier: MIT
/*
 * Another thread's call on the socket: a shutdown wakes a thread asleep in
 * read(), write(), poll(), epoll_wait() or accept() on it, and a close
 * leaves the connection, or the listener, to such a call, which goes on as
 * the kernel's does with the file it holds.  Each sleeping call is a
 * thread of the client; the main thread waits until it sleeps (its state
 * in /proc), then acts.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "diff.h"

enum { GO_SHUT = 1 };

/* The call another thread sleeps in, and what the main thread does to the socket. */
enum call { CALL_READ, CALL_POLL, CALL_EPOLL, CALL_WRITE, CALL_EPOLL_ET };
enum act { ACT_SHUTDOWN, ACT_CLOSE, ACT_DUP2 };

static const char *const call_name[] = { "read", "poll", "epoll_wait", "write", "epoll_wait" };

/* The sleeping call, and what it returned. */
struct blocked_call {
	int fd;
	enum call call;
	bool closed; /* its descriptor is closed under it: an epoll wait ends by its time */
	pid_t tid;
	_Atomic int started;
	ssize_t n;
	int err; /* the thread's errno after its call */
	unsigned events;
};

static void *blocked_caller(void *arg)
{
	struct blocked_call *b = arg;
	struct pollfd p = { .fd = b->fd, .events = POLLIN | POLLRDHUP };
	/* Edge-triggered, the room to write is reported first: the wait that sleeps needs an edge. */
	struct epoll_event ev = { .events = b->call == CALL_EPOLL_ET
						    ? EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET
						    : EPOLLIN | EPOLLRDHUP };
	static char buf[65536];
	int ep = -1;

	if ((b->call == CALL_EPOLL || b->call == CALL_EPOLL_ET) &&
	    ((ep = epoll_create1(0)) < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, b->fd, &ev)))
		fatal("epoll");
	if (b->call == CALL_EPOLL_ET && epoll_wait(ep, &ev, 1, 0) != 1)
		fatal("epoll_wait: no room to write reported");
	if (b->call == CALL_EPOLL_ET)
		b->call = CALL_EPOLL;
	b->tid = (pid_t)syscall(SYS_gettid);
	atomic_store(&b->started, 1);
	switch (b->call) {
	case CALL_READ:
		b->n = read(b->fd, buf, 100);
		break;
	case CALL_POLL:
		b->n = poll(&p, 1, -1);
		b->events = (unsigned)p.revents;
		break;
	case CALL_EPOLL:
	case CALL_EPOLL_ET:
		/* A closed descriptor leaves the set: that wait would not end by itself. */
		b->n = epoll_wait(ep, &ev, 1, b->closed ? 2000 : -1);
		b->events = ev.events;
		close(ep);
		break;
	case CALL_WRITE:
		b->n = write(b->fd, buf, sizeof(buf));
		break;
	}
	b->err = errno;
	return NULL;
}

/* Waits until the task whose stat is at path sleeps (state S), bounded by WAIT_MS. */
static void wait_asleep_at(const char *path)
{
	char st[256];

	for (int i = 0; i < WAIT_MS; i++) {
		FILE *f = fopen(path, "r");
		char *p = NULL;

		if (f) {
			if (fgets(st, sizeof(st), f))
				p = strrchr(st, ')');
			fclose(f);
		}
		if (p && p[1] == ' ' && p[2] == 'S')
			return;
		usleep(1000);
	}
}

/* Waits until thread tid of this process sleeps. */
static void wait_asleep(pid_t tid)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/self/task/%d/stat", (int)tid);
	wait_asleep_at(path);
}

/*
 * A thread sleeps in call on the connection; the main thread shuts the
 * socket down (a write's side only, for a write) or closes it.  early:
 * before any byte moved (under usmc, the client's answer not yet taken
 * in).
 */
static void call_under(struct end *e, enum call call, enum act act, bool early)
{
	struct blocked_call b = { .fd = e->fd, .call = call, .closed = act != ACT_SHUTDOWN };
	struct timespec until;
	pthread_t t;

	if (!early)
		greet(e);
	if (call == CALL_WRITE) {
		char fill[4096] = { 0 };

		set_nonblock(e->fd, true);
		while (send(e->fd, fill, sizeof(fill), MSG_NOSIGNAL) > 0)
			;
		set_nonblock(e->fd, false);
	}
	if (pthread_create(&t, NULL, blocked_caller, &b))
		fatal("pthread_create");
	while (!atomic_load(&b.started))
		usleep(1000);
	wait_asleep(b.tid);
	usleep(20000);
	if (act == ACT_CLOSE) {
		/* The call goes on: the file is its until it returns, and the peer writes now. */
		say_rc("close from another thread", close(e->fd));
		e->fd = -1;
		tell(e, GO_SHUT);
	} else if (act == ACT_DUP2) {
		/* The same through dup2() of another file onto the number. */
		int null = open("/dev/null", O_RDONLY);

		say_rc("dup2 onto it from another thread", dup2(null, e->fd) == e->fd);
		close(null);
		tell(e, GO_SHUT);
	} else {
		say_rc(call == CALL_WRITE ? "shutdown(SHUT_WR) from another thread"
					  : "shutdown(SHUT_RDWR) from another thread",
		       shutdown(e->fd, call == CALL_WRITE ? SHUT_WR : SHUT_RDWR));
	}
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += WAIT_MS / 1000;
	if (pthread_timedjoin_np(t, NULL, &until)) {
		say("the %s is still blocked", call_name[call]);
		tell(e, GO_SHUT);
		return;
	}
	errno = b.err;
	say("the blocked %s:", call_name[call]);
	say_rc("  it returned", b.n);
	if (b.n > 0 && call == CALL_POLL)
		say_mask("  its events", b.events);
	else if (b.n > 0 && (call == CALL_EPOLL || call == CALL_EPOLL_ET))
		say("  its events: %s%s%s%s", b.events & EPOLLIN ? "IN " : "",
		    b.events & EPOLLRDHUP ? "RDHUP " : "", b.events & EPOLLHUP ? "HUP " : "",
		    b.events & EPOLLERR ? "ERR" : "");
	tell(e, GO_SHUT);
}

#define CALL_UNDER_CASE(name, call, act, early)       \
	static void name##_client(struct end *e)       \
	{                                              \
		call_under(e, call, act, early);       \
	}
CALL_UNDER_CASE(shutdown_reader, CALL_READ, ACT_SHUTDOWN, false)
CALL_UNDER_CASE(shutdown_poller, CALL_POLL, ACT_SHUTDOWN, false)
CALL_UNDER_CASE(shutdown_epoller, CALL_EPOLL, ACT_SHUTDOWN, false)
CALL_UNDER_CASE(shutdown_epoller_et, CALL_EPOLL_ET, ACT_SHUTDOWN, false)
CALL_UNDER_CASE(shutdown_writer, CALL_WRITE, ACT_SHUTDOWN, false)
CALL_UNDER_CASE(close_reader, CALL_READ, ACT_CLOSE, false)
CALL_UNDER_CASE(close_poller, CALL_POLL, ACT_CLOSE, false)
CALL_UNDER_CASE(close_epoller, CALL_EPOLL, ACT_CLOSE, false)
CALL_UNDER_CASE(close_reader_early, CALL_READ, ACT_CLOSE, true)
CALL_UNDER_CASE(dup2_reader, CALL_READ, ACT_DUP2, false)

/* A thread blocked in accept() on a listener another thread shuts down: the usual stop. */
struct blocked_accept {
	int lfd;
	pid_t tid;
	_Atomic int started;
	int fd, err;
};

static void *blocked_acceptor(void *arg)
{
	struct blocked_accept *b = arg;

	b->tid = (pid_t)syscall(SYS_gettid);
	atomic_store(&b->started, 1);
	b->fd = accept(b->lfd, NULL, NULL);
	b->err = errno;
	return NULL;
}

static void acceptor_steps(struct end *e, bool by_close)
{
	struct blocked_accept b = { .lfd = listen_any(e->family, &e->port) };
	struct timespec until;
	pthread_t t;

	if (pthread_create(&t, NULL, blocked_acceptor, &b))
		fatal("pthread_create");
	while (!atomic_load(&b.started))
		usleep(1000);
	wait_asleep(b.tid);
	usleep(20000);
	if (by_close) {
		/* The accept goes on with the listener it holds, and takes the next client. */
		say_rc("close of the listener from another thread", close(b.lfd));
		b.lfd = -1;
		e->fd = connect_to(e);
	} else {
		say_rc("shutdown(SHUT_RDWR) of the listener from another thread",
		       shutdown(b.lfd, SHUT_RDWR));
	}
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += WAIT_MS / 1000;
	if (pthread_timedjoin_np(t, NULL, &until)) {
		say("the acceptor is still blocked");
		return;
	}
	errno = b.err;
	say("the blocked accept: %s", b.fd >= 0 ? "a connection" : errno_name(errno));
	if (b.fd >= 0) {
		send_pattern(b.fd, 36, 0, 100);
		recv_pattern(e->fd, 36, 0, 100, "through it");
		close(b.fd);
	}
	if (b.lfd >= 0)
		say_rc("close", close(b.lfd));
}

static void shutdown_acceptor_client(struct end *e)
{
	acceptor_steps(e, false);
}

static void close_acceptor_client(struct end *e)
{
	acceptor_steps(e, true);
}

static void close_reader_early_server(struct end *e)
{
	char c;

	expect(e, GO_SHUT);
	send_pattern(e->fd, 35, 0, 10);
	say_rc("read once the reader returned", read(e->fd, &c, 1));
	expect(e, GO_SHUT);
}

static void close_reader_server(struct end *e)
{
	char c;

	greet(e);
	expect(e, GO_SHUT);
	send_pattern(e->fd, 35, 0, 10);
	say_rc("read once the reader returned", read(e->fd, &c, 1));
	expect(e, GO_SHUT);
}

static void shutdown_reader_server(struct end *e)
{
	char c;

	greet(e);
	expect(e, GO_SHUT);
	say_rc("read after the peer's shutdown", read(e->fd, &c, 1));
}

/*
 * A child's epoll_wait on a set of its own, its events as an exit status:
 * 0x40 | EPOLLIN 1, RDHUP 2, HUP 4, ERR 8, OUT 16.  Edge-triggered, the
 * room to write is reported first, so that the wait that sleeps needs an
 * edge.
 */
static int child_epoll_status(int fd, uint32_t want)
{
	struct epoll_event ev = { .events = want };
	int ep = epoll_create1(0);

	if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev))
		return 1;
	if ((want & EPOLLET) && (epoll_wait(ep, &ev, 1, 0) != 1 || ev.events != EPOLLOUT))
		return 2;
	if (epoll_wait(ep, &ev, 1, -1) != 1)
		return 1;
	return 0x40 | (ev.events & EPOLLIN ? 1 : 0) | (ev.events & EPOLLRDHUP ? 2 : 0) |
	       (ev.events & EPOLLHUP ? 4 : 0) | (ev.events & EPOLLERR ? 8 : 0) |
	       (ev.events & EPOLLOUT ? 16 : 0);
}

/* Fills the connection's send side, so that a wait for room sleeps. */
static void fill_send_side(int fd)
{
	char fill[4096] = { 0 };

	set_nonblock(fd, true);
	while (send(fd, fill, sizeof(fill), MSG_NOSIGNAL) > 0)
		;
	set_nonblock(fd, false);
}

/*
 * The same from a forked child: a shutdown is the socket's, and wakes
 * every holder's call (a fork-based relay stops its reading child so),
 * an epoll set's wait too, edge-triggered or not.  The child tells what
 * its call returned by its exit status, so that the transcript's order is
 * the parent's.  how: the parent's shutdown; before a SHUT_WR the send
 * side is filled, so that a wait for room (EPOLLOUT) sleeps until then.
 */
static void shutdown_child_steps(struct end *e, enum call call, uint32_t epoll_want, int how)
{
	char path[64];
	int status;
	pid_t pid;

	greet(e);
	if (how == SHUT_WR)
		fill_send_side(e->fd);
	pid = fork();
	if (pid == 0) {
		char buf[100];
		struct pollfd p = { .fd = e->fd, .events = POLLIN };
		long n;

		if (call == CALL_EPOLL)
			_exit(child_epoll_status(e->fd, epoll_want));
		n = call == CALL_POLL ? poll(&p, 1, -1) : read(e->fd, buf, sizeof(buf));
		if (call == CALL_POLL)
			_exit(n == 1 && (p.revents & POLLIN) ? 0 : 1);
		_exit(n == 0 ? 0 : n < 0 ? 2 : 3);
	}
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	wait_asleep_at(path);
	say_rc(how == SHUT_WR ? "shutdown(SHUT_WR) in the parent" : "shutdown(SHUT_RDWR) in the parent",
	       shutdown(e->fd, how));
	/* Bounded: a child asleep for good is killed, and said to be. */
	if (!reap_within_wait(pid, &status)) {
		say("the child is still blocked");
	} else if (call == CALL_EPOLL) {
		int st = WIFEXITED(status) ? WEXITSTATUS(status) : 0;

		say("the child's epoll_wait ended: %s%s%s%s%s%s", st & 0x40 ? "" : "otherwise",
		    st & 0x40 && st & 1 ? "IN " : "", st & 0x40 && st & 2 ? "RDHUP " : "",
		    st & 0x40 && st & 4 ? "HUP " : "", st & 0x40 && st & 8 ? "ERR " : "",
		    st & 0x40 && st & 16 ? "OUT" : "");
	} else {
		say("the child's %s ended: %s", call == CALL_POLL ? "poll" : "read",
		    WIFEXITED(status) && WEXITSTATUS(status) == 0 ? (call == CALL_POLL ? "POLLIN" : "0, end of file")
								  : "otherwise");
	}
	tell(e, GO_SHUT);
}

static void shutdown_child_reader_client(struct end *e)
{
	shutdown_child_steps(e, CALL_READ, 0, SHUT_RDWR);
}

static void shutdown_child_poller_client(struct end *e)
{
	shutdown_child_steps(e, CALL_POLL, 0, SHUT_RDWR);
}

static void shutdown_child_epoller_client(struct end *e)
{
	shutdown_child_steps(e, CALL_EPOLL, EPOLLIN | EPOLLRDHUP, SHUT_RDWR);
}

static void shutdown_child_epoller_et_client(struct end *e)
{
	shutdown_child_steps(e, CALL_EPOLL, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, SHUT_RDWR);
}

static void shutdown_child_epoll_writer_client(struct end *e)
{
	shutdown_child_steps(e, CALL_EPOLL, EPOLLOUT, SHUT_WR);
}

const struct diff_case thread_cases[] = {
	{ "shutdown_child_reader", shutdown_child_reader_client, shutdown_reader_server, .conns = 1 },
	{ "shutdown_child_poller", shutdown_child_poller_client, shutdown_reader_server, .conns = 1 },
	{ "shutdown_child_epoller", shutdown_child_epoller_client, shutdown_reader_server, .conns = 1 },
	{ "shutdown_child_epoller_et", shutdown_child_epoller_et_client, shutdown_reader_server, .conns = 1 },
	{ "shutdown_child_epoll_writer", shutdown_child_epoll_writer_client, shutdown_reader_server, .conns = 1 },
	{ "shutdown_reader", shutdown_reader_client, shutdown_reader_server, .conns = 1 },
	{ "shutdown_poller", shutdown_poller_client, shutdown_reader_server, .conns = 1 },
	{ "shutdown_epoller", shutdown_epoller_client, shutdown_reader_server, .conns = 1 },
	{ "shutdown_epoller_et", shutdown_epoller_et_client, shutdown_reader_server, .conns = 1 },
	{ "shutdown_writer", shutdown_writer_client, shutdown_reader_server, .conns = 1 },
	{ "close_reader", close_reader_client, close_reader_server, .conns = 1 },
	{ "close_poller", close_poller_client, close_reader_server, .conns = 1 },
	{ "close_reader_early", close_reader_early_client, close_reader_early_server, .conns = 1 },
	{ "dup2_reader", dup2_reader_client, close_reader_server, .conns = 1 },
	{ "close_epoller", close_epoller_client, close_reader_server, .conns = 1 },
	{ "shutdown_acceptor", shutdown_acceptor_client, NULL, .raw = true },
	{ "close_acceptor", close_acceptor_client, NULL, .raw = true, .conns = 1 },
	{ NULL },
};
