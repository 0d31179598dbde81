// SPDX-License-Identifier: MIT
/*
 * epoll beyond level-triggered readiness: edge-triggered EPOLLIN and
 * EPOLLOUT, EPOLLONESHOT, one descriptor in two sets, a set inside a set,
 * a descriptor number reused after a close that removed it (also from a
 * copy), a set's number reused after its close, an entry modified with new data,
 * and a set and a pipe in it closed by a vfork child.
 */
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "diff.h"
#include "diff_exec.h"

enum { GO = 1, MORE, SHUT, FILLED, DRAINED, CLOSED, DONE };

static int ep_new(void)
{
	int ep = epoll_create1(EPOLL_CLOEXEC);

	if (ep < 0)
		fatal("epoll_create1");
	return ep;
}

static void ep_ctl(int ep, int op, int fd, uint32_t events, uint64_t data)
{
	struct epoll_event ev = { .events = events, .data.u64 = data };

	if (epoll_ctl(ep, op, fd, &ev) < 0)
		fatal("epoll_ctl");
}

/* epoll_wait for up to 4 events; says "what: N events [data MASK]...". */
static int ep_say(int ep, int timeout, const char *what)
{
	struct epoll_event ev[4];
	char line[256], mask[MASK_LEN];
	size_t used;
	int n;

	do
		n = epoll_wait(ep, ev, 4, timeout);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		fatal("epoll_wait");
	used = (size_t)snprintf(line, sizeof(line), "%s: %d event%s", what, n, n == 1 ? "" : "s");
	for (int i = 0; i < n && used < sizeof(line); i++)
		used += (size_t)snprintf(line + used, sizeof(line) - used, " [%llu %s]",
					 (unsigned long long)ev[i].data.u64,
					 mask_str(ev[i].events, mask, sizeof(mask)));
	say("%s", line);
	return n;
}

/* Reads what is there without blocking; says how much and whether it continues the stream. */
static size_t drain_nonblock(int fd, uint64_t seed, uint64_t off)
{
	uint8_t buf[4096];
	size_t total = 0;
	bool ok = true;
	ssize_t n;

	while ((n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0) {
		ok &= pattern_ok(buf, (size_t)n, seed, off + total);
		total += (size_t)n;
	}
	say("read %zu bytes, pattern %s, then %s", total, ok ? "ok" : "BAD",
	    n ? errno_name(errno) : "EOF");
	return total;
}

/* ---- edge-triggered EPOLLIN ---- */

static void et_in_client(struct end *e)
{
	expect(e, GO);
	/* Single writes of 100 bytes: each arrives in one piece, one edge. */
	send_pattern(e->fd, 60, 0, 100);
	expect(e, MORE);
	send_pattern(e->fd, 60, 100, 100);
	expect(e, SHUT);
	say_rc("shutdown(SHUT_WR)", shutdown(e->fd, SHUT_WR));
	expect(e, DONE);
}

static void et_in_server(struct end *e)
{
	int ep = ep_new();
	char buf[40];

	ep_ctl(ep, EPOLL_CTL_ADD, e->fd, EPOLLIN | EPOLLRDHUP | EPOLLET, 7);
	ep_say(ep, 0, "fresh");
	tell(e, GO);
	ep_say(ep, WAIT_MS, "data came");
	ep_say(ep, 0, "again, no new edge");
	say_rc("read(40)", read(e->fd, buf, sizeof(buf)));
	ep_say(ep, 0, "60 bytes left, no new edge");
	tell(e, MORE);
	ep_say(ep, WAIT_MS, "more came");
	drain_nonblock(e->fd, 60, 40);
	ep_say(ep, 0, "drained");
	tell(e, SHUT);
	ep_say(ep, WAIT_MS, "the peer shut");
	say_rc("read", read(e->fd, buf, sizeof(buf)));
	ep_say(ep, 0, "after reading EOF");
	tell(e, DONE);
	close(ep);
}

/* ---- edge-triggered EPOLLOUT: fill until EAGAIN, the peer drains, an edge ---- */

static void et_out_client(struct end *e)
{
	uint8_t buf[65536];
	uint64_t total = 0;
	int ep = ep_new();
	ssize_t n;

	greet(e);
	set_nonblock(e->fd, true);
	ep_ctl(ep, EPOLL_CTL_ADD, e->fd, EPOLLOUT | EPOLLET, 8);
	ep_say(ep, 0, "fresh");
	ep_say(ep, 0, "again, no new edge");
	for (;;) {
		pattern(buf, sizeof(buf), 61, total);
		n = write(e->fd, buf, sizeof(buf));
		if (n <= 0)
			break;
		total += (uint64_t)n;
	}
	say_rc("filled; the last write", n);
	tell(e, total);
	expect(e, DRAINED);
	ep_say(ep, WAIT_MS, "the peer drained it all");
	send_pattern(e->fd, 61, total, 100);
	say("wrote 100 more");
	expect(e, DONE);
	close(ep);
}

/* The amount depends on the buffers: checked, never printed. */
static void et_out_server(struct end *e)
{
	uint64_t total;

	greet(e);
	total = hear(e);
	uint8_t buf[65536];
	uint64_t done = 0;
	bool ok = true;

	while (done < total) {
		size_t want = total - done < sizeof(buf) ? (size_t)(total - done) : sizeof(buf);
		ssize_t n = read(e->fd, buf, want);

		if (n <= 0)
			break;
		ok &= pattern_ok(buf, (size_t)n, 61, done);
		done += (size_t)n;
	}
	say("drained %s, pattern %s", done == total ? "all" : "SHORT", ok ? "ok" : "BAD");
	tell(e, DRAINED);
	recv_pattern(e->fd, 61, total, 100, "the last 100");
	tell(e, DONE);
}

/* ---- edge-triggered on a connection nothing went through yet ---- */

static void et_fresh_client(struct end *e)
{
	expect(e, GO);
	send_pattern(e->fd, 65, 0, 10);
	expect(e, DONE);
}

static void et_fresh_server(struct end *e)
{
	int ep = ep_new();

	ep_ctl(ep, EPOLL_CTL_ADD, e->fd, EPOLLIN | EPOLLOUT | EPOLLET, 6);
	ep_say(ep, 0, "fresh");
	ep_say(ep, 0, "again, no new edge");
	tell(e, GO);
	ep_say(ep, WAIT_MS, "data came");
	recv_pattern(e->fd, 65, 0, 10, "data");
	ep_say(ep, 0, "after reading");
	tell(e, DONE);
	close(ep);
}

/* ---- EPOLLONESHOT ---- */

static void two_writes_client(struct end *e)
{
	expect(e, GO);
	send_pattern(e->fd, 62, 0, 10);
	expect(e, MORE);
	send_pattern(e->fd, 62, 10, 10);
	tell(e, MORE);
	expect(e, DONE);
}

static void oneshot_server(struct end *e)
{
	int ep = ep_new();

	ep_ctl(ep, EPOLL_CTL_ADD, e->fd, EPOLLIN | EPOLLONESHOT, 9);
	tell(e, GO);
	ep_say(ep, WAIT_MS, "data came");
	recv_pattern(e->fd, 62, 0, 10, "first");
	tell(e, MORE);
	expect(e, MORE);
	wait_for(e->fd, POLLIN);
	ep_say(ep, 0, "more came, entry disarmed");
	ep_ctl(ep, EPOLL_CTL_MOD, e->fd, EPOLLIN | EPOLLONESHOT, 9);
	ep_say(ep, 0, "re-armed");
	ep_say(ep, 0, "disarmed again");
	recv_pattern(e->fd, 62, 10, 10, "second");
	ep_ctl(ep, EPOLL_CTL_MOD, e->fd, EPOLLIN | EPOLLONESHOT, 9);
	ep_say(ep, 0, "re-armed, nothing to read");
	tell(e, DONE);
	close(ep);
}

/*
 * ---- a vfork child closes the set and a pipe in it ----
 * The child's descriptors are its own, its memory its parent's: what it
 * closes must leave the parent's set as it was, every wait after it.
 */
static void vfork_close_client(struct end *e)
{
	expect(e, GO);
	send_pattern(e->fd, 66, 0, 10);
	tell(e, MORE);
	expect(e, MORE);
	send_pattern(e->fd, 66, 10, 10);
	tell(e, MORE);
	expect(e, DONE);
}

/* Edge-triggered: the edge of data that comes behind unread data is the ring's own. */
static void vfork_close_server(struct end *e)
{
	int ep = ep_new(), p[2];
	pid_t pid;

	if (pipe(p) < 0)
		fatal("pipe");
	ep_ctl(ep, EPOLL_CTL_ADD, e->fd, EPOLLIN | EPOLLET, 9);
	ep_ctl(ep, EPOLL_CTL_ADD, p[0], EPOLLIN, 10);
	pid = vfork();
	if (pid < 0)
		fatal("vfork");
	if (pid == 0) {
		close(ep);
		close(p[0]);
		_exit(0);
	}
	reap(pid);
	tell(e, GO);
	expect(e, MORE);
	ep_say(ep, WAIT_MS, "data came");
	recv_pattern(e->fd, 66, 0, 4, "part of it");
	ep_say(ep, 0, "6 bytes left, no new edge");
	tell(e, MORE);
	expect(e, MORE);
	ep_say(ep, 0, "more came behind them");
	recv_pattern(e->fd, 66, 4, 16, "the rest");
	say_rc("write(pipe)", write(p[1], "x", 1));
	ep_say(ep, WAIT_MS, "the pipe");
	tell(e, DONE);
	close(p[0]);
	close(p[1]);
	close(ep);
}

/* ---- one descriptor in two sets ---- */

static void two_sets_server(struct end *e)
{
	int ep1 = ep_new(), ep2 = ep_new();

	ep_ctl(ep1, EPOLL_CTL_ADD, e->fd, EPOLLIN, 1);
	ep_ctl(ep2, EPOLL_CTL_ADD, e->fd, EPOLLIN | EPOLLOUT, 2);
	ep_say(ep1, 0, "set 1, fresh");
	ep_say(ep2, 0, "set 2, fresh");
	tell(e, GO);
	ep_say(ep1, WAIT_MS, "set 1, data came");
	ep_say(ep2, 0, "set 2");
	ep_ctl(ep1, EPOLL_CTL_DEL, e->fd, 0, 0);
	ep_say(ep1, 0, "set 1 after EPOLL_CTL_DEL");
	ep_say(ep2, 0, "set 2");
	close(ep1);
	ep_say(ep2, 0, "set 2 after closing set 1");
	recv_pattern(e->fd, 62, 0, 10, "first");
	ep_say(ep2, 0, "set 2 after reading");
	tell(e, MORE);
	expect(e, MORE);
	ep_say(ep2, WAIT_MS, "set 2, more came");
	recv_pattern(e->fd, 62, 10, 10, "second");
	tell(e, DONE);
	close(ep2);
}

/* ---- EPOLLEXCLUSIVE: two sets, each woken when it waits; MOD refused as the kernel does ---- */

static void exclusive_server(struct end *e)
{
	int ep1 = ep_new(), ep2 = ep_new();
	struct epoll_event ev = { .events = EPOLLIN | EPOLLEXCLUSIVE };

	ep_ctl(ep1, EPOLL_CTL_ADD, e->fd, EPOLLIN | EPOLLEXCLUSIVE, 1);
	ep_ctl(ep2, EPOLL_CTL_ADD, e->fd, EPOLLIN | EPOLLEXCLUSIVE, 2);
	say_rc("EPOLL_CTL_MOD with EPOLLEXCLUSIVE", epoll_ctl(ep1, EPOLL_CTL_MOD, e->fd, &ev));
	ev.events = EPOLLIN;
	say_rc("EPOLL_CTL_MOD of an exclusive entry", epoll_ctl(ep1, EPOLL_CTL_MOD, e->fd, &ev));
	ep_say(ep1, 0, "set 1, fresh");
	tell(e, GO);
	/* Whether set 2 also sees this wakeup depends on who waits when: not asked. */
	ep_say(ep1, WAIT_MS, "set 1, data came");
	recv_pattern(e->fd, 62, 0, 10, "first");
	ep_say(ep1, 0, "set 1 after reading");
	tell(e, MORE);
	expect(e, MORE);
	ep_say(ep2, WAIT_MS, "set 2, more came");
	recv_pattern(e->fd, 62, 10, 10, "second");
	tell(e, DONE);
	close(ep1);
	close(ep2);
}

/* ---- an epoll set inside another ---- */

static void nested_server(struct end *e)
{
	int inner = ep_new(), outer = ep_new();

	ep_ctl(inner, EPOLL_CTL_ADD, e->fd, EPOLLIN, 10);
	ep_ctl(outer, EPOLL_CTL_ADD, inner, EPOLLIN, 20);
	ep_say(outer, 0, "outer, fresh");
	say_mask("poll on the inner set", poll_now(inner, POLLIN));
	tell(e, GO);
	ep_say(outer, WAIT_MS, "outer, data came");
	say_mask("poll on the inner set", poll_now(inner, POLLIN));
	ep_say(inner, 0, "inner");
	recv_pattern(e->fd, 62, 0, 10, "first");
	ep_say(outer, 0, "outer after reading");
	tell(e, MORE);
	expect(e, MORE);
	ep_say(outer, WAIT_MS, "outer, more came");
	ep_say(inner, 0, "inner");
	recv_pattern(e->fd, 62, 10, 10, "second");
	tell(e, DONE);
	close(outer);
	close(inner);
}

/*
 * ---- EPOLL_CTL_MOD with new data ----
 * The kernel names an entry by its data.  b's doorbell is still unread
 * when a's data makes the wait report a at once and ask the kernel beside
 * it: b, known under its new data, has nothing to read.
 */

static void mod_data_client(struct end *e)
{
	int a = connect_to(e), b = connect_to(e);

	send_pattern(b, 66, 0, 10);
	tell(e, GO);
	expect(e, MORE);
	send_pattern(a, 65, 0, 10);
	tell(e, MORE);
	expect(e, DONE);
	close(a);
	close(b);
}

static void mod_data_server(struct end *e)
{
	int ep = ep_new(), a = accept_one(e), b = accept_one(e);

	ep_ctl(ep, EPOLL_CTL_ADD, a, EPOLLIN, 11);
	ep_ctl(ep, EPOLL_CTL_ADD, b, EPOLLIN, 21);
	ep_ctl(ep, EPOLL_CTL_MOD, a, EPOLLIN, 12);
	ep_ctl(ep, EPOLL_CTL_MOD, b, EPOLLIN, 22);
	expect(e, GO);
	recv_pattern(b, 66, 0, 10, "b, read without a wait");
	tell(e, MORE);
	expect(e, MORE);
	ep_say(ep, WAIT_MS, "a's data came, b's read already");
	recv_pattern(a, 65, 0, 10, "a");
	ep_say(ep, 0, "both read");
	tell(e, DONE);
	close(a);
	close(b);
	close(ep);
}

/* ---- a set's number reused after its close: the new set holds nothing ---- */

static void one_write_client(struct end *e)
{
	expect(e, GO);
	send_pattern(e->fd, 67, 0, 10);
	expect(e, DONE);
}

static void set_reuse_server(struct end *e)
{
	int ep = ep_new(), again;

	ep_ctl(ep, EPOLL_CTL_ADD, e->fd, EPOLLIN, 31);
	tell(e, GO);
	ep_say(ep, WAIT_MS, "data came");
	say_rc("close the set", close(ep));
	again = ep_new();
	if (again != ep) {
		if (dup2(again, ep) != ep)
			fatal("dup2");
		close(again);
	}
	ep_say(ep, 0, "a new set under its number");
	recv_pattern(e->fd, 67, 0, 10, "data");
	tell(e, DONE);
	close(ep);
}

/* ---- a descriptor number reused after the close that removed it from a set ---- */

static void reuse_client(struct end *e)
{
	char c;

	e->fd = connect_to(e);
	send_pattern(e->fd, 63, 0, 10);
	expect(e, CLOSED);
	say_rc("read on the first connection", read(e->fd, &c, 1));
	close(e->fd);
	e->fd = connect_to(e);
	send_pattern(e->fd, 64, 0, 10);
	tell(e, GO);
	expect(e, DONE);
}

static void reuse_server(struct end *e)
{
	int ep = ep_new(), first = accept_one(e), second;

	ep_ctl(ep, EPOLL_CTL_ADD, first, EPOLLIN, 11);
	ep_say(ep, WAIT_MS, "first connection, data came");
	recv_pattern(first, 63, 0, 10, "first");
	/* Closing the last descriptor of a socket takes it out of every set. */
	say_rc("close without EPOLL_CTL_DEL", close(first));
	tell(e, CLOSED);
	second = accept_one(e);
	/* The second connection under the first one's number, whatever was opened meanwhile. */
	if (second != first) {
		if (dup2(second, first) != first)
			fatal("dup2");
		close(second);
	}
	expect(e, GO);
	wait_for(first, POLLIN);
	ep_say(ep, 0, "the number reused, never added");
	ep_ctl(ep, EPOLL_CTL_ADD, first, EPOLLIN, 12);
	ep_say(ep, 0, "added");
	recv_pattern(first, 64, 0, 10, "second");
	close(first);
	tell(e, DONE);
	close(ep);
}

/* The same, the entry having followed the socket to a copy of its descriptor. */
static void dup_reuse_server(struct end *e)
{
	int ep = ep_new(), first = accept_one(e), copy, second;

	ep_ctl(ep, EPOLL_CTL_ADD, first, EPOLLIN, 41);
	ep_say(ep, WAIT_MS, "first connection, data came");
	recv_pattern(first, 63, 0, 10, "first");
	copy = dup(first);
	if (copy < 0)
		fatal("dup");
	say_rc("close the descriptor added", close(first));
	ep_say(ep, 0, "the socket open under its copy");
	say_rc("close the copy", close(copy));
	tell(e, CLOSED);
	second = accept_one(e);
	if (second != copy) {
		if (dup2(second, copy) != copy)
			fatal("dup2");
		close(second);
	}
	expect(e, GO);
	wait_for(copy, POLLIN);
	ep_say(ep, 0, "the copy's number reused, never added");
	/* Nor does a poll of the set, which looks at its entries otherwise than a wait. */
	say_rc("poll of the set", poll(&(struct pollfd){ .fd = ep, .events = POLLIN }, 1, 0));
	recv_pattern(copy, 64, 0, 10, "second");
	close(copy);
	tell(e, DONE);
	close(ep);
}

const struct diff_case epoll_cases[] = {
	{ "epoll_et_in", et_in_client, et_in_server, .conns = 1 },
	{ "epoll_et_out", et_out_client, et_out_server, .conns = 1 },
	{ "epoll_et_fresh", et_fresh_client, et_fresh_server, .conns = 1 },
	{ "epoll_oneshot", two_writes_client, oneshot_server, .conns = 1 },
	{ "epoll_two_sets", two_writes_client, two_sets_server, .conns = 1 },
	{ "epoll_vfork_close", vfork_close_client, vfork_close_server, .conns = 1 },
	{ "epoll_nested", two_writes_client, nested_server, .conns = 1 },
	{ "epoll_exclusive", two_writes_client, exclusive_server, .conns = 1 },
	{ "epoll_mod_data", mod_data_client, mod_data_server, .raw = true, .conns = 2 },
	{ "epoll_set_reuse", one_write_client, set_reuse_server, .conns = 1 },
	{ "epoll_dup_reuse", reuse_client, dup_reuse_server, .raw = true, .conns = 2 },
	{ "epoll_fd_reuse", reuse_client, reuse_server, .raw = true, .conns = 2 },
	{ NULL },
};
