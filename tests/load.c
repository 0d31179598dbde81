// SPDX-License-Identifier: MIT
/*
 * Load for a bounded time: several client processes, each keeping many
 * connections busy at once, against one echo server driven by
 * usmc_epoll.  Each connection sends a stream of random size in random
 * write chunks and checks every echoed byte, read in random chunks, then
 * the EOF after it.  One client in four is plain TCP, so the server's
 * fallback path carries load beside shared memory.  Any error fails.
 *
 *   load [--seconds S] [--clients P] [--conns C] [--seed N]
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/epoll.h>

#include "robust.h"

#define ECHO_BUF 65536
#define CHUNK_MAX 65536

struct totals {
	uint64_t conns, bytes, smc;
};

static struct h_chan results, stop_server, port_chan;

/* ---- the echo server ---- */

struct echo {
	int fd;
	uint8_t buf[ECHO_BUF];
	size_t head, len; /* bytes waiting to go back */
	bool eof;
};

static void echo_interest(int ep, struct echo *e, int op)
{
	struct epoll_event ev = { .data.ptr = e };

	ev.events = (e->len < ECHO_BUF && !e->eof ? EPOLLIN : 0) | (e->len ? EPOLLOUT : 0);
	RCHECK(usmc_epoll_ctl(ep, op, e->fd, &ev) == 0);
}

/* Moves what it can; false once the connection is done. */
static bool echo_step(int ep, struct echo *e, struct totals *t)
{
	size_t room = ECHO_BUF - e->len, at = (e->head + e->len) % ECHO_BUF;
	ssize_t n;

	if (room && !e->eof) {
		n = usmc_read(e->fd, e->buf + at, room < ECHO_BUF - at ? room : ECHO_BUF - at);
		if (n == 0)
			e->eof = true;
		else if (n > 0)
			e->len += (size_t)n, t->bytes += (uint64_t)n;
		else
			RCHECK(errno == EAGAIN || errno == EINTR);
	}
	if (e->len) {
		size_t run = e->len < ECHO_BUF - e->head ? e->len : ECHO_BUF - e->head;

		n = usmc_write(e->fd, e->buf + e->head, run);
		if (n > 0)
			e->head = (e->head + (size_t)n) % ECHO_BUF, e->len -= (size_t)n;
		else
			RCHECK(errno == EAGAIN || errno == EINTR);
	}
	if (e->eof && !e->len) {
		RCHECK(usmc_close(e->fd) == 0);
		return false;
	}
	echo_interest(ep, e, EPOLL_CTL_MOD);
	return true;
}

static void server_accept(int ep, int lfd, struct totals *t)
{
	struct usmc_info info;
	struct echo *e;
	int fd = usmc_accept4(lfd, NULL, NULL, SOCK_NONBLOCK);

	if (fd < 0) {
		RCHECK(errno == EAGAIN || errno == EINTR);
		return;
	}
	RCHECK(usmc_info(fd, &info, sizeof(info)) == 0);
	t->conns++;
	t->smc += info.mode == USMC_MODE_SMCD;
	e = calloc(1, sizeof(*e));
	RCHECK(e);
	e->fd = fd;
	echo_interest(ep, e, EPOLL_CTL_ADD);
}

static int server(void *arg)
{
	int ep = epoll_create1(EPOLL_CLOEXEC), open_conns = 0, lfd;
	struct epoll_event ev = { .events = EPOLLIN }, evs[64];
	struct totals t = { 0 };
	bool stopping = false;
	uint16_t port;

	(void)arg;
	RCHECK(ep >= 0);
	lfd = h_listen(AF_INET, H_USMC, &port);
	h_chan_send(&port_chan, port);
	RCHECK(fcntl(lfd, F_SETFL, O_NONBLOCK) == 0);
	ev.data.ptr = &lfd;
	RCHECK(usmc_epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev) == 0);
	ev.data.ptr = &stop_server;
	RCHECK(usmc_epoll_ctl(ep, EPOLL_CTL_ADD, stop_server.rd, &ev) == 0);
	while (!stopping || open_conns) {
		int n = usmc_epoll_wait(ep, evs, 64, 30000);

		RCHECK(n > 0 || (n < 0 && errno == EINTR));
		for (int i = 0; i < n; i++) {
			if (evs[i].data.ptr == &lfd) {
				uint64_t before = t.conns;

				server_accept(ep, lfd, &t);
				open_conns += (int)(t.conns - before);
			} else if (evs[i].data.ptr == &stop_server) {
				stopping = true;
				RCHECK(usmc_epoll_ctl(ep, EPOLL_CTL_DEL, stop_server.rd, NULL) == 0);
			} else if (!echo_step(ep, evs[i].data.ptr, &t)) {
				free(evs[i].data.ptr);
				open_conns--;
			}
		}
	}
	RCHECK(write(results.wr, &t, sizeof(t)) == sizeof(t));
	return 0;
}

/* ---- clients ---- */

struct stream {
	int fd;
	uint64_t seed, size, sent, got;
	bool shut;
};

struct client_arg {
	uint16_t port;
	enum h_kind kind;
	int conns;
	double seconds;
	uint64_t rng;
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void stream_open(struct stream *s, const struct client_arg *a, uint64_t *rng)
{
	static const int bufs[] = { 0, 0, 16384, 65536, 1 << 20 };
	int buf = bufs[h_rand(rng) % 5];
	uint64_t r = h_rand(rng) % 10;
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(a->port),
				   .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };

	memset(s, 0, sizeof(*s));
	s->fd = h_socket(AF_INET, a->kind, SOCK_NONBLOCK);
	/* The buffer sizes decide the ring sizes of this connection. */
	if (buf) {
		RCHECK(usmc_setsockopt(s->fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf)) == 0);
		RCHECK(usmc_setsockopt(s->fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf)) == 0);
	}
	RCHECK(usmc_connect(s->fd, (struct sockaddr *)&sin, sizeof(sin)) == 0 || errno == EINPROGRESS);
	s->seed = h_rand(rng);
	s->size = r < 6 ? robust_between(rng, 0, 4096)
		: r < 9 ? robust_between(rng, 0, 256 << 10) : robust_between(rng, 0, 4 << 20);
}

static void stream_send(struct stream *s, uint64_t *rng)
{
	static uint8_t buf[CHUNK_MAX];
	size_t want = (size_t)robust_between(rng, 1, CHUNK_MAX);
	ssize_t n;

	if (want > s->size - s->sent)
		want = (size_t)(s->size - s->sent);
	h_pattern(buf, want, s->seed, s->sent);
	n = want ? usmc_send(s->fd, buf, want, MSG_NOSIGNAL) : 0;
	if (n < 0)
		RCHECK(errno == EAGAIN || errno == EINTR);
	else
		s->sent += (uint64_t)n;
	if (s->sent == s->size && !s->shut) {
		RCHECK(usmc_shutdown(s->fd, SHUT_WR) == 0);
		s->shut = true;
	}
}

/* True once the echo and its EOF are in. */
static bool stream_recv(struct stream *s, uint64_t *rng)
{
	static uint8_t buf[CHUNK_MAX], want[CHUNK_MAX];
	ssize_t n = usmc_read(s->fd, buf, (size_t)robust_between(rng, 1, CHUNK_MAX));

	if (n < 0) {
		RCHECK(errno == EAGAIN || errno == EINTR);
		return false;
	}
	if (n == 0) {
		RCHECK(s->got == s->size && s->shut);
		return true;
	}
	RCHECK(s->got + (uint64_t)n <= s->sent);
	h_pattern(want, (size_t)n, s->seed, s->got);
	RCHECK(memcmp(buf, want, (size_t)n) == 0);
	s->got += (uint64_t)n;
	return false;
}

static int client(void *arg)
{
	struct client_arg *a = arg;
	struct stream *s = calloc((size_t)a->conns, sizeof(*s));
	struct pollfd *p = calloc((size_t)a->conns, sizeof(*p));
	struct totals t = { 0 };
	double end = now_s() + a->seconds;
	int live = a->conns;

	RCHECK(s && p);
	for (int i = 0; i < a->conns; i++)
		stream_open(&s[i], a, &a->rng);
	while (live) {
		for (int i = 0; i < a->conns; i++) {
			p[i].fd = s[i].fd;
			p[i].events = (short)(POLLIN | (s[i].fd >= 0 && !s[i].shut ? POLLOUT : 0));
		}
		RCHECK(usmc_poll(p, (nfds_t)a->conns, 30000) > 0);
		for (int i = 0; i < a->conns; i++) {
			if (s[i].fd < 0 || !p[i].revents)
				continue;
			if (!s[i].shut && (p[i].revents & POLLOUT))
				stream_send(&s[i], &a->rng);
			if (!stream_recv(&s[i], &a->rng))
				continue;
			t.conns++;
			t.bytes += s[i].size;
			RCHECK(usmc_close(s[i].fd) == 0);
			s[i].fd = -1;
			if (now_s() < end)
				stream_open(&s[i], a, &a->rng);
			else
				live--;
		}
	}
	RCHECK(write(results.wr, &t, sizeof(t)) == sizeof(t));
	free(s);
	free(p);
	return 0;
}

static struct totals collect(void)
{
	struct totals t;

	RCHECK(read(results.rd, &t, sizeof(t)) == sizeof(t));
	return t;
}

int main(int argc, char **argv)
{
	struct client_arg a = { .conns = 16, .seconds = 20 };
	int nclients = 4;
	struct totals sum = { 0 }, srv;
	pid_t spid, cpid[64];

	robust_seed = (uint64_t)time(NULL);
	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--seconds"))
			a.seconds = atof(argv[i + 1]);
		else if (!strcmp(argv[i], "--clients"))
			nclients = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--conns"))
			a.conns = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--seed"))
			robust_seed = strtoull(argv[i + 1], NULL, 0);
	}
	RCHECK(nclients >= 1 && nclients <= 64 && a.conns >= 1);
	/* A safety bound over the whole run; the children inherit it. */
	alarm((unsigned)a.seconds + 120);
	printf("load: seed %llu, %d client processes x %d connections, %.0f s\n",
	       (unsigned long long)robust_seed, nclients, a.conns, a.seconds);
	h_chan_open(&results);
	h_chan_open(&stop_server);
	h_chan_open(&port_chan);
	spid = h_fork(server, NULL);
	a.port = (uint16_t)h_chan_recv(&port_chan);
	for (int i = 0; i < nclients; i++) {
		a.kind = i % 4 == 3 ? H_PLAIN : H_USMC;
		a.rng = (robust_seed + (uint64_t)i) * 0x9e3779b97f4a7c15ull | 1;
		cpid[i] = h_fork(client, &a);
	}
	for (int i = 0; i < nclients; i++) {
		struct totals t = collect();

		sum.conns += t.conns;
		sum.bytes += t.bytes;
	}
	for (int i = 0; i < nclients; i++)
		robust_reap_ok(cpid[i]);
	h_chan_send(&stop_server, 1);
	srv = collect();
	robust_reap_ok(spid);
	RCHECK(srv.conns == sum.conns && srv.bytes == sum.bytes);
	printf("held: %llu connections (%llu in shared memory), %llu bytes each way checked, "
	       "0 errors\n", (unsigned long long)sum.conns, (unsigned long long)srv.smc,
	       (unsigned long long)sum.bytes);
	return 0;
}
