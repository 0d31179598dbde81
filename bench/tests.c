// SPDX-License-Identifier: MIT
/*
 * The measurements, client and server side.  Each body runs in its own
 * process and fills a side_result for the main process.
 *
 *   connrate   connect, a request and a response of msg_size bytes, close
 *   connrate0  connect, then wait for the server's close: no payload.  The
 *              client waits so that it cannot outrun accept(): a full
 *              accept queue drops SYNs, and a dropped SYN costs a second.
 *   connrate-prefork  connrate against a prefork server: PREFORK_WORKERS
 *              processes forked after listen() accept on the listener
 *              they inherited, as nginx's and apache2's workers do
 *   pingpong   msg_size bytes there and back, one at a time, timed each
 *   stream     writes of msg_size bytes for the duration; the server
 *              counts (and with verify checksums) and answers with that
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

#define FNV_INIT 0xcbf29ce484222325ull
#define WARMUP_ROUNDS 100

static uint64_t fnv(uint64_t h, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	for (size_t i = 0; i < len; i++)
		h = (h ^ p[i]) * 0x100000001b3ull;
	return h;
}

/* ---- connrate ---- */

static void connrate_client(const struct job *j, uint16_t port, struct side_result *r)
{
	char msg[64] = "request", reply[64];
	bool payload = j->test != T_CONNRATE0;
	double start = now_sec(), end = start + j->duration, t = start;
	uint64_t n = 0;

	while (t < end) {
		int fd = bench_connect(j, port);

		if (fd < 0) {
			fail(r, "connect");
			break;
		}
		set_nodelay(j, fd);
		if (payload && (write_all(fd, msg, sizeof(msg)) < 0 || read_all(fd, reply, sizeof(reply)) < 0))
			fail(r, "request");
		/*
		 * The server closes first, as HTTP/1.0's does: TIME_WAIT always
		 * falls on its side.  Were it left to a race, whichever end lost
		 * it would pay for the TIME_WAITs, and the rate would follow who
		 * tends to close first rather than what a connection costs.
		 */
		if (r->ok && usmc_read(fd, reply, 1) != 0)
			fail(r, "waiting for the server's close");
		check_mode(fd, j, false, r);
		usmc_close(fd);
		if (!r->ok)
			break;
		n++;
		t = now_sec();
	}
	r->count = n;
	r->value[0] = (double)n / (t - start);
}

static void connrate_server(const struct job *j, int lfd, int stop_fd, struct side_result *r)
{
	char buf[64];

	for (;;) {
		struct pollfd p[2] = { { .fd = lfd, .events = POLLIN }, { .fd = stop_fd, .events = POLLIN } };
		int fd;

		if (usmc_poll(p, 2, -1) < 0 && errno != EINTR) {
			fail(r, "poll");
			return;
		}
		if (!(p[0].revents & POLLIN)) {
			if (p[1].revents)
				return;
			continue;
		}
		fd = usmc_accept(lfd, NULL, NULL);
		/* Another worker took it (the prefork server's listener does not block). */
		if (fd < 0 && errno == EAGAIN)
			continue;
		if (fd < 0) {
			fail(r, "accept");
			return;
		}
		set_nodelay(j, fd);
		if (j->test != T_CONNRATE0 &&
		    (read_all(fd, buf, sizeof(buf)) < 0 || write_all(fd, buf, sizeof(buf)) < 0))
			fail(r, "response");
		check_mode(fd, j, true, r);
		usmc_close(fd);
		r->count++;
	}
}

#define PREFORK_WORKERS 2

/* The prefork server's workers, and the connections they served, counted in shared memory. */
static pid_t prefork_pid[PREFORK_WORKERS];
static _Atomic uint64_t *prefork_served;

/*
 * Forks the workers, which wait on the listener they inherited (as a
 * prefork server's do as they start) before the client learns the port.
 */
void server_prefork(const struct job *j, int lfd, int stop_fd, struct side_result *r)
{
	int ready[2];
	char c;

	prefork_served = mmap(NULL, sizeof(*prefork_served), PROT_READ | PROT_WRITE,
			      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	/* Every worker wakes for a connection, one gets it: the others must not block in accept. */
	if (prefork_served == MAP_FAILED || pipe(ready) ||
	    usmc_fcntl(lfd, F_SETFL, usmc_fcntl(lfd, F_GETFL) | O_NONBLOCK) < 0) {
		fail(r, "prefork");
		return;
	}
	for (int i = 0; i < PREFORK_WORKERS; i++) {
		prefork_pid[i] = fork();
		if (prefork_pid[i] == 0) {
			struct side_result wr = { .ok = 1 };
			struct pollfd p = { .fd = lfd, .events = POLLIN };

			usmc_poll(&p, 1, 0);
			if (write(ready[1], "", 1) != 1)
				_exit(1);
			connrate_server(j, lfd, stop_fd, &wr);
			atomic_fetch_add(prefork_served, wr.count);
			_exit(wr.ok ? 0 : 1);
		}
		if (prefork_pid[i] < 0 || read(ready[0], &c, 1) != 1)
			fail(r, "fork");
	}
	close(ready[0]);
	close(ready[1]);
}

/* The master: waits for its workers, which end with the stop pipe. */
static void connrate_prefork_server(struct side_result *r)
{
	int status;

	for (int i = 0; i < PREFORK_WORKERS; i++)
		if (prefork_pid[i] > 0 && (waitpid(prefork_pid[i], &status, 0) != prefork_pid[i] ||
					   !WIFEXITED(status) || WEXITSTATUS(status) != 0))
			fail(r, "a worker failed");
	if (prefork_served != MAP_FAILED && prefork_served)
		r->count = atomic_load(prefork_served);
}

/* ---- pingpong ---- */

struct samples {
	uint32_t *ns;
	size_t n, cap;
};

static void samples_add(struct samples *s, double sec)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 65536;
		uint32_t *ns = realloc(s->ns, cap * sizeof(*ns));

		if (!ns)
			return; /* enough samples already */
		s->ns = ns;
		s->cap = cap;
	}
	s->ns[s->n++] = sec * 1e9 > 4e9 ? 4000000000u : (uint32_t)(sec * 1e9);
}

/* Waits for the event on a nonblocking descriptor, through epoll. */
static int ep_wait_for(int ep, int fd, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.fd = fd };

	if (usmc_epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev) < 0)
		return -1;
	while (usmc_epoll_wait(ep, &ev, 1, -1) < 0)
		if (errno != EINTR)
			return -1;
	return 0;
}

/* read_all and write_all for a nonblocking descriptor in an epoll set (-1: blocking). */
static int ep_io(int ep, int fd, void *buf, size_t len, bool rd)
{
	char *p = buf;

	if (ep < 0)
		return rd ? read_all(fd, buf, len) : write_all(fd, buf, len);
	while (len) {
		ssize_t n = rd ? usmc_read(fd, p, len) : usmc_write(fd, p, len);

		if (n > 0) {
			p += n;
			len -= (size_t)n;
		} else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
			if (errno == EAGAIN && ep_wait_for(ep, fd, rd ? EPOLLIN : EPOLLOUT) < 0)
				return -1;
		} else {
			return -1;
		}
	}
	return 0;
}

/* The epoll set of a pingpong end, or -1 for the blocking variant. */
static int pingpong_epoll(const struct job *j, int fd)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.fd = fd };
	int ep;

	if (j->test != T_PINGPONG_EPOLL)
		return -1;
	set_nonblock(fd);
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep >= 0)
		usmc_epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
	return ep;
}

static void pingpong_rounds(const struct job *j, int fd, int ep, char *msg, char *reply,
			    struct side_result *r, struct samples *s)
{
	double end = now_sec() + j->duration;

	for (uint64_t round = 0;; round++) {
		double t0 = now_sec(), t1;

		if (j->verify)
			memcpy(msg, &round, sizeof(round) < j->msg_size ? sizeof(round) : j->msg_size);
		if (ep_io(ep, fd, msg, j->msg_size, false) < 0 || ep_io(ep, fd, reply, j->msg_size, true) < 0) {
			fail(r, "round trip");
			return;
		}
		t1 = now_sec();
		if (j->verify && memcmp(msg, reply, j->msg_size)) {
			errno = EPROTO;
			fail(r, "echo differs from the message");
			return;
		}
		if (round >= WARMUP_ROUNDS)
			samples_add(s, t1 - t0);
		if (t1 >= end && round >= WARMUP_ROUNDS)
			return;
	}
}

static void pingpong_client(const struct job *j, uint16_t port, struct side_result *r)
{
	struct samples s = { 0 };
	char *msg = calloc(1, j->msg_size), *reply = malloc(j->msg_size);
	int fd = bench_connect(j, port), ep;

	if (fd < 0 || !msg || !reply) {
		fail(r, "connect");
		return;
	}
	set_nodelay(j, fd);
	ep = pingpong_epoll(j, fd);
	pingpong_rounds(j, fd, ep, msg, reply, r, &s);
	check_mode(fd, j, false, r);
	usmc_close(fd);
	if (ep >= 0)
		close(ep);
	r->count = s.n;
	if (s.n) {
		r->value[0] = percentile(s.ns, s.n, 0.50);
		r->value[1] = percentile(s.ns, s.n, 0.99);
	}
	free(s.ns);
	free(msg);
	free(reply);
}

static void pingpong_server(const struct job *j, int lfd, struct side_result *r)
{
	char *buf = malloc(j->msg_size);
	int fd = usmc_accept(lfd, NULL, NULL), ep;

	if (fd < 0 || !buf) {
		fail(r, "accept");
		return;
	}
	set_nodelay(j, fd);
	ep = pingpong_epoll(j, fd);
	/* The client's close ends the loop with EOF. */
	while (ep_io(ep, fd, buf, j->msg_size, true) == 0) {
		if (ep_io(ep, fd, buf, j->msg_size, false) < 0)
			break;
		r->count++;
	}
	check_mode(fd, j, true, r);
	usmc_close(fd);
	if (ep >= 0)
		close(ep);
	free(buf);
}

/* ---- stream ---- */

struct stream_conn {
	const struct job *j;
	uint16_t port;
	int fd;
	pthread_barrier_t *go;
	uint64_t bytes;
	uint64_t sum;
	double end;
	struct side_result r;
};

/* Checking the clock every write would cost more than a 4 KiB copy. */
static unsigned clock_stride(size_t write_size)
{
	return write_size >= 65536 ? 1 : (unsigned)(65536 / write_size);
}

static void stream_send(struct stream_conn *c, char *buf, double start)
{
	const struct job *j = c->j;
	unsigned stride = clock_stride(j->msg_size);
	double end = start + j->duration;

	c->sum = FNV_INIT;
	for (uint64_t i = 0;; i++) {
		if (i % stride == 0 && now_sec() >= end)
			break;
		if (j->verify) {
			/* Each write differs, so a lost or repeated block shows. */
			memcpy(buf, &i, sizeof(i));
			c->sum = fnv(c->sum, buf, j->msg_size);
		}
		if (write_all(c->fd, buf, j->msg_size) < 0) {
			fail(&c->r, "write");
			return;
		}
		c->bytes += j->msg_size;
	}
}

static void *stream_client_conn(void *arg)
{
	struct stream_conn *c = arg;
	const struct job *j = c->j;
	char *buf = malloc(j->msg_size);
	uint64_t reply[2];

	if (!buf) {
		fail(&c->r, "malloc");
		pthread_barrier_wait(c->go);
		return NULL;
	}
	for (size_t i = 0; i < j->msg_size; i++)
		buf[i] = (char)(i * 7 + 1);
	pthread_barrier_wait(c->go);
	stream_send(c, buf, now_sec());
	if (c->r.ok && (usmc_shutdown(c->fd, SHUT_WR) < 0 || read_all(c->fd, reply, sizeof(reply)) < 0))
		fail(&c->r, "reading the count");
	c->end = now_sec();
	if (c->r.ok && (reply[0] != c->bytes || (j->verify && reply[1] != c->sum))) {
		snprintf(c->r.err, sizeof(c->r.err),
			 "server counted %llu bytes (checksum %016llx), client sent %llu (%016llx)",
			 (unsigned long long)reply[0], (unsigned long long)reply[1],
			 (unsigned long long)c->bytes, (unsigned long long)c->sum);
		c->r.ok = 0;
	}
	check_mode(c->fd, j, false, &c->r);
	free(buf);
	return NULL;
}

static void merge(struct side_result *into, const struct side_result *from)
{
	if (!from->ok && into->ok) {
		into->ok = 0;
		memcpy(into->err, from->err, sizeof(into->err));
	}
	if (from->mode_wrong && !into->mode_wrong) {
		into->mode_seen = from->mode_seen;
		into->reason = from->reason;
	}
	into->mode_wrong += from->mode_wrong;
}

static void stream_client(const struct job *j, uint16_t port, struct side_result *r)
{
	struct stream_conn c[8];
	pthread_t th[8];
	pthread_barrier_t go;
	int n = j->conns > 8 ? 8 : j->conns, i;
	double start, end = 0;
	uint64_t bytes = 0;

	pthread_barrier_init(&go, NULL, (unsigned)n + 1);
	for (i = 0; i < n; i++) {
		c[i] = (struct stream_conn){ .j = j, .port = port, .go = &go, .r.ok = 1 };
		c[i].fd = bench_connect(j, port);
		if (c[i].fd < 0 || pthread_create(&th[i], NULL, stream_client_conn, &c[i])) {
			fail(r, "connect");
			exit(1); /* the threads already started wait on the barrier */
		}
	}
	start = now_sec();
	pthread_barrier_wait(&go);
	for (i = 0; i < n; i++) {
		pthread_join(th[i], NULL);
		usmc_close(c[i].fd);
		merge(r, &c[i].r);
		bytes += c[i].bytes;
		end = c[i].end > end ? c[i].end : end;
	}
	pthread_barrier_destroy(&go);
	r->count = bytes;
	r->value[0] = (double)bytes / (end - start) / 1e9;
}

static void *stream_server_conn(void *arg)
{
	struct stream_conn *c = arg;
	const struct job *j = c->j;
	char *buf = malloc(j->msg_size);
	uint64_t reply[2] = { 0, FNV_INIT };

	for (;;) {
		ssize_t n = buf ? usmc_read(c->fd, buf, j->msg_size) : -1;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			fail(&c->r, "read");
		if (n <= 0)
			break;
		reply[0] += (uint64_t)n;
		if (j->verify)
			reply[1] = fnv(reply[1], buf, (size_t)n);
	}
	c->bytes = reply[0];
	if (c->r.ok && write_all(c->fd, reply, sizeof(reply)) < 0)
		fail(&c->r, "writing the count");
	check_mode(c->fd, j, true, &c->r);
	free(buf);
	return NULL;
}

static void stream_server(const struct job *j, int lfd, struct side_result *r)
{
	struct stream_conn c[8];
	pthread_t th[8];
	int n = j->conns > 8 ? 8 : j->conns, started = 0;

	for (int i = 0; i < n; i++) {
		c[i] = (struct stream_conn){ .j = j, .r.ok = 1 };
		c[i].fd = usmc_accept(lfd, NULL, NULL);
		if (c[i].fd < 0 || pthread_create(&th[i], NULL, stream_server_conn, &c[i])) {
			fail(r, "accept");
			break;
		}
		started++;
	}
	for (int i = 0; i < started; i++) {
		pthread_join(th[i], NULL);
		usmc_close(c[i].fd);
		merge(r, &c[i].r);
		r->count += c[i].bytes;
	}
}

/* ---- entry points ---- */

void client_run(const struct job *j, uint16_t port, struct side_result *r)
{
	switch (j->test) {
	case T_CONNRATE:
	case T_CONNRATE0:
	case T_CONNRATE_PREFORK:
		connrate_client(j, port, r);
		break;
	case T_PINGPONG:
	case T_PINGPONG_EPOLL:
		pingpong_client(j, port, r);
		break;
	default:
		stream_client(j, port, r);
		break;
	}
}

void server_run(const struct job *j, int lfd, int stop_fd, struct side_result *r)
{
	switch (j->test) {
	case T_CONNRATE:
	case T_CONNRATE0:
		connrate_server(j, lfd, stop_fd, r);
		break;
	case T_CONNRATE_PREFORK:
		connrate_prefork_server(r);
		break;
	case T_PINGPONG:
	case T_PINGPONG_EPOLL:
		pingpong_server(j, lfd, r);
		break;
	default:
		stream_server(j, lfd, r);
		break;
	}
}
