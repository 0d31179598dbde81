// SPDX-License-Identifier: MIT
/*
 * Readiness through usmc_poll and usmc_epoll_wait: POLLOUT on a fresh
 * connection, POLLIN only once data came, POLLRDHUP after the peer's
 * shutdown, POLLHUP when both directions are shut, POLLERR or POLLHUP
 * after a reset; epoll level- and edge-triggered.
 */
#include <string.h>
#include <sys/epoll.h>

#include "sem.h"

enum { GO = 1, SENT, READ, SHUT, SHUT_BACK, CLOSED };

#define HELLO_LEN 10

/* What the server sees, asked through poll or through epoll. */
struct probe {
	int fd;
	int epfd; /* -1: use poll */
};

static short probe(const struct probe *p, short events, int timeout_ms)
{
	struct epoll_event ev = { .events = (uint32_t)events, .data.fd = p->fd };
	int n;

	if (p->epfd < 0)
		return sem_poll1(p->fd, events, timeout_ms);
	CHECK(usmc_epoll_ctl(p->epfd, EPOLL_CTL_MOD, p->fd, &ev) == 0);
	n = usmc_epoll_wait(p->epfd, &ev, 1, timeout_ms);
	CHECK(n == 0 || n == 1);
	CHECK(n == 0 || ev.data.fd == p->fd);
	return n ? (short)ev.events : 0;
}

/* Waits, safely bounded, for all of want to be reported. */
static short probe_until(const struct probe *p, short events, short want)
{
	short rev = 0;

	for (int waited = 0; waited < SEM_WAIT_MS; waited += 10) {
		rev = probe(p, events, 10);
		if ((rev & want) == want)
			return rev;
	}
	fprintf(stderr, "[%d] events %#x, waited for %#x\n", (int)getpid(), (unsigned)rev,
		(unsigned)want);
	CHECK(0);
	return rev;
}

static struct probe probe_open(int fd, bool use_epoll)
{
	struct probe p = { .fd = fd, .epfd = -1 };
	struct epoll_event ev = { .events = EPOLLIN, .data.fd = fd };

	if (use_epoll) {
		p.epfd = epoll_create1(EPOLL_CLOEXEC);
		CHECK(p.epfd >= 0);
		CHECK(usmc_epoll_ctl(p.epfd, EPOLL_CTL_ADD, fd, &ev) == 0);
	}
	return p;
}

static void probe_close(struct probe *p)
{
	if (p->epfd >= 0) {
		CHECK(usmc_epoll_ctl(p->epfd, EPOLL_CTL_DEL, p->fd, NULL) == 0);
		CHECK(close(p->epfd) == 0);
	}
}

static void readiness_client(struct sem_end *e, bool use_epoll)
{
	struct probe p = probe_open(e->fd, use_epoll);
	short rev;

	CHECK(probe_until(&p, POLLOUT, POLLOUT) & POLLOUT);
	CHECK(probe(&p, POLLIN, 0) == 0);
	sem_expect(e, GO);
	sem_send_pattern(e->fd, 101, 0, HELLO_LEN);
	sem_expect(e, READ);
	CHECK(usmc_shutdown(e->fd, SHUT_WR) == 0);
	sem_tell(e, SHUT);
	sem_expect(e, SHUT_BACK);
	/* We shut our direction, the peer its own: both are. */
	rev = probe_until(&p, POLLIN | POLLRDHUP, POLLIN | POLLRDHUP | POLLHUP);
	CHECK(!(rev & POLLERR));
	sem_expect_eof(e->fd);
	probe_close(&p);
}

static void readiness_server(struct sem_end *e, bool use_epoll)
{
	struct probe p = probe_open(e->fd, use_epoll);
	uint8_t buf[HELLO_LEN];
	short rev;

	CHECK(probe(&p, POLLIN, 0) == 0);
	sem_tell(e, GO);
	rev = probe_until(&p, POLLIN | POLLRDHUP, POLLIN);
	CHECK(!(rev & (POLLRDHUP | POLLHUP | POLLERR)));
	/* Level-triggered: still readable while the data stays. */
	CHECK(probe(&p, POLLIN, 0) & POLLIN);
	h_read_all(e->fd, buf, sizeof(buf));
	sem_check_pattern(buf, sizeof(buf), 101, 0);
	CHECK(probe(&p, POLLIN, 0) == 0);
	sem_tell(e, READ);
	sem_expect(e, SHUT);
	rev = probe_until(&p, POLLIN | POLLRDHUP, POLLIN | POLLRDHUP);
	/* Only the peer's direction is shut: no hang-up yet. */
	CHECK(!(rev & (POLLHUP | POLLERR)));
	sem_expect_eof(e->fd);
	CHECK(usmc_shutdown(e->fd, SHUT_WR) == 0);
	rev = probe(&p, POLLIN | POLLRDHUP, 0);
	CHECK((rev & POLLHUP) && !(rev & POLLERR));
	sem_tell(e, SHUT_BACK);
	probe_close(&p);
}

static void poll_client(struct sem_end *e)
{
	readiness_client(e, false);
}

static void poll_server(struct sem_end *e)
{
	readiness_server(e, false);
}

static void epoll_client(struct sem_end *e)
{
	readiness_client(e, true);
}

static void epoll_server(struct sem_end *e)
{
	readiness_server(e, true);
}

static void reset_client(struct sem_end *e, bool use_epoll)
{
	struct probe p = probe_open(e->fd, use_epoll);
	short rev;
	char c;

	sem_expect(e, CLOSED);
	rev = probe_until(&p, POLLIN, POLLIN);
	if (!(rev & (POLLERR | POLLHUP)))
		fprintf(stderr, "[%d] events after reset: %#x\n", (int)getpid(), (unsigned)rev);
	CHECK(rev & (POLLERR | POLLHUP));
	CHECK(usmc_read(e->fd, &c, 1) < 0 && errno == ECONNRESET);
	probe_close(&p);
}

static void reset_server(struct sem_end *e)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };

	CHECK(usmc_setsockopt(e->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)) == 0);
	CHECK(usmc_close(e->fd) == 0);
	e->fd = -1;
	sem_tell(e, CLOSED);
}

static void poll_reset_client(struct sem_end *e)
{
	reset_client(e, false);
}

static void epoll_reset_client(struct sem_end *e)
{
	reset_client(e, true);
}

#define ET_ROUNDS 4
#define ET_LEN 100

static void epoll_et_client(struct sem_end *e)
{
	for (int round = 0; round < ET_ROUNDS; round++) {
		sem_expect(e, GO);
		sem_send_pattern(e->fd, 111, (uint64_t)round * ET_LEN, ET_LEN);
		sem_tell(e, SENT);
	}
}

/* Reads until EAGAIN: everything that came, which must be one whole piece. */
static void drain_piece(int fd, int round)
{
	uint8_t buf[2 * ET_LEN];
	size_t got = 0;

	for (;;) {
		ssize_t n = usmc_read(fd, buf + got, sizeof(buf) - got);

		if (n < 0) {
			CHECK(errno == EAGAIN || errno == EWOULDBLOCK);
			break;
		}
		CHECK(n > 0);
		got += (size_t)n;
	}
	CHECK(got == ET_LEN);
	sem_check_pattern(buf, got, 111, (uint64_t)round * ET_LEN);
}

static void epoll_et_server(struct sem_end *e)
{
	struct epoll_event ev = { .events = EPOLLIN | EPOLLET, .data.fd = e->fd };
	int epfd = epoll_create1(EPOLL_CLOEXEC), n;

	CHECK(epfd >= 0);
	sem_set_nonblock(e->fd, true);
	CHECK(usmc_epoll_ctl(epfd, EPOLL_CTL_ADD, e->fd, &ev) == 0);
	CHECK(usmc_epoll_wait(epfd, &ev, 1, 0) == 0);
	for (int round = 0; round < ET_ROUNDS; round++) {
		/* Odd rounds: the data came before the wait; even ones: most likely during it. */
		bool arrived_first = round % 2;

		sem_tell(e, GO);
		if (arrived_first)
			sem_expect(e, SENT);
		/* One arrival, one event; the whole piece was written at once. */
		n = usmc_epoll_wait(epfd, &ev, 1, SEM_WAIT_MS);
		if (n != 1)
			fprintf(stderr, "[%d] round %d (data came %s the wait): %d events\n",
				(int)getpid(), round, arrived_first ? "before" : "during", n);
		CHECK(n == 1);
		CHECK((ev.events & EPOLLIN) && ev.data.fd == e->fd);
		if (!arrived_first)
			sem_expect(e, SENT);
		drain_piece(e->fd, round);
		/* Drained, and nothing new: no event until the next arrival. */
		CHECK(usmc_epoll_wait(epfd, &ev, 1, 0) == 0);
	}
	CHECK(usmc_epoll_ctl(epfd, EPOLL_CTL_DEL, e->fd, NULL) == 0);
	CHECK(close(epfd) == 0);
}

const struct sem_case sem_poll_cases[] = {
	{ "poll", poll_client, poll_server, NULL },
	{ "poll_reset", poll_reset_client, reset_server, NULL },
	{ "epoll", epoll_client, epoll_server, NULL },
	{ "epoll_reset", epoll_reset_client, reset_server, NULL },
	{ "epoll_et", epoll_et_client, epoll_et_server, NULL },
	{ NULL, NULL, NULL, NULL },
};
