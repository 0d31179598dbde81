// SPDX-License-Identifier: MIT
/*
 * Pipelined requests and replies on several connections, both ends on
 * usmc's epoll, as redis-benchmark and redis-server: the client keeps
 * PIPE requests in flight on each of CONNS connections, the server
 * answers each with a 5-byte reply.  Both ends read what one read gives
 * (level-triggered, so that replies and requests stay in the rings from
 * one wait to the next), or with --et read until EAGAIN, as nginx.  Every
 * wait must find work while any is left: a wait that sleeps out its
 * WAIT_MS with a reply or request unread in a ring is a lost doorbell,
 * and the test says which end and connection waited.  Every request is
 * checked byte by byte, every reply by the number it carries.
 *
 *   epoll_pipeline [--et] [--requests N]
 */
#include <fcntl.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "harness.h"

#define CONNS 8
#define PIPE 16
#define REPLY 5
#define REQ_MAX 48
#define OUT_MAX 8192
#define WAIT_MS 10000

static bool et;
static uint32_t requests = 20000; /* per connection */
static struct h_chan port_chan;

struct peer {
	int fd;
	uint8_t seed; /* the connection's number: its requests' pattern */
	uint8_t in[512], out[OUT_MAX];
	size_t in_len, out_len;
	uint32_t sent, done; /* requests sent and answered (client), answered (server) */
	uint64_t offset;     /* in the request stream's pattern */
	bool want_out, closed;
};

static void set_nonblock(int fd)
{
	CHECK(usmc_fcntl(fd, F_SETFL, usmc_fcntl(fd, F_GETFL) | O_NONBLOCK) == 0);
}

static void interest(int ep, struct peer *p, int op)
{
	struct epoll_event ev = { .events = EPOLLIN | (p->want_out ? EPOLLOUT : 0) | (et ? EPOLLET : 0),
				  .data.ptr = p };

	CHECK(usmc_epoll_ctl(ep, op, p->fd, &ev) == 0);
}

/* Writes what is queued; asks for EPOLLOUT while some is left. */
static void flush(int ep, struct peer *p)
{
	bool want;

	while (p->out_len) {
		ssize_t n = usmc_write(p->fd, p->out, p->out_len);

		if (n < 0) {
			CHECK(errno == EAGAIN || errno == EINTR);
			break;
		}
		memmove(p->out, p->out + n, p->out_len - (size_t)n);
		p->out_len -= (size_t)n;
	}
	want = p->out_len != 0;
	if (want != p->want_out) {
		p->want_out = want;
		interest(ep, p, EPOLL_CTL_MOD);
	}
}

/* One read, or with --et reads until EAGAIN; false at EOF. */
static bool fill(struct peer *p, void (*take)(struct peer *))
{
	for (;;) {
		ssize_t n = usmc_read(p->fd, p->in + p->in_len, sizeof(p->in) - p->in_len);

		if (n == 0)
			return false;
		if (n < 0) {
			CHECK(errno == EAGAIN || errno == EINTR);
			return true;
		}
		p->in_len += (size_t)n;
		take(p);
		if (!et)
			return true;
	}
}

static void stalled(const char *end, struct peer *peers, int n)
{
	fprintf(stderr, "%s: a wait of %d ms found nothing with work left:\n", end, WAIT_MS);
	for (int i = 0; i < n; i++)
		fprintf(stderr, "  connection %d: sent %u, done %u, %zu in, %zu out\n", i,
			peers[i].sent, peers[i].done, peers[i].in_len, peers[i].out_len);
	CHECK(!"lost doorbell");
}

/* ---- server: each request (a length byte, then its bytes) gets a 5-byte reply ---- */

static void server_take(struct peer *p)
{
	size_t at = 0;

	while (at < p->in_len && at + 1 + p->in[at] <= p->in_len) {
		uint8_t len = p->in[at], want[REQ_MAX];
		uint8_t *r = p->out + p->out_len;

		CHECK(len >= 1 && len <= REQ_MAX);
		h_pattern(want, len, p->seed, p->offset);
		CHECK(!memcmp(p->in + at + 1, want, len));
		p->offset += len;
		CHECK(p->out_len + REPLY <= OUT_MAX);
		r[0] = '+';
		memcpy(r + 1, &p->done, 4);
		p->out_len += REPLY;
		p->done++;
		at += 1 + (size_t)len;
	}
	memmove(p->in, p->in + at, p->in_len - at);
	p->in_len -= at;
}

static int server(void *arg)
{
	struct peer *peers = calloc(CONNS, sizeof(*peers));
	int ep = epoll_create1(EPOLL_CLOEXEC), lfd, open_conns = CONNS;
	uint16_t port;

	(void)arg;
	CHECK(peers && ep >= 0);
	lfd = h_listen(AF_INET, H_USMC, &port);
	h_chan_send(&port_chan, port);
	for (int i = 0; i < CONNS; i++) {
		peers[i].fd = usmc_accept(lfd, NULL, NULL);
		CHECK(peers[i].fd >= 0);
		/* The client numbers its connections by the byte it sends first. */
		h_read_all(peers[i].fd, &peers[i].seed, 1);
		set_nonblock(peers[i].fd);
		interest(ep, &peers[i], EPOLL_CTL_ADD);
	}
	while (open_conns) {
		struct epoll_event ev[CONNS];
		int n = usmc_epoll_wait(ep, ev, CONNS, WAIT_MS);

		CHECK(n >= 0 || errno == EINTR);
		if (n == 0)
			stalled("server", peers, CONNS);
		for (int i = 0; i < n; i++) {
			struct peer *p = ev[i].data.ptr;

			CHECK(!p->closed);
			if (!fill(p, server_take)) {
				CHECK(p->in_len == 0 && p->done == requests);
				CHECK(usmc_epoll_ctl(ep, EPOLL_CTL_DEL, p->fd, NULL) == 0);
				CHECK(usmc_close(p->fd) == 0);
				p->closed = true;
				open_conns--;
				continue;
			}
			flush(ep, p);
		}
	}
	CHECK(usmc_close(ep) == 0 && usmc_close(lfd) == 0);
	free(peers);
	return 0;
}

/* ---- client: PIPE requests in flight on each connection, replies checked in order ---- */

static uint64_t rng = 1;

static void client_top_up(int ep, struct peer *p)
{
	while (p->sent < requests && p->sent - p->done < PIPE && p->out_len + 1 + REQ_MAX <= OUT_MAX) {
		uint8_t len = (uint8_t)(1 + h_rand(&rng) % REQ_MAX);

		p->out[p->out_len] = len;
		h_pattern(p->out + p->out_len + 1, len, p->seed, p->offset);
		p->offset += len;
		p->out_len += 1 + (size_t)len;
		p->sent++;
	}
	flush(ep, p);
}

static void client_take(struct peer *p)
{
	size_t at = 0;

	for (; at + REPLY <= p->in_len; at += REPLY) {
		uint32_t seq;

		memcpy(&seq, p->in + at + 1, 4);
		CHECK(p->in[at] == '+' && seq == p->done && p->done < p->sent);
		p->done++;
	}
	memmove(p->in, p->in + at, p->in_len - at);
	p->in_len -= at;
}

static int client(void *arg)
{
	uint16_t port = (uint16_t)(uintptr_t)arg;
	struct peer *peers = calloc(CONNS, sizeof(*peers));
	int ep = epoll_create1(EPOLL_CLOEXEC), busy = CONNS;

	CHECK(peers && ep >= 0);
	for (int i = 0; i < CONNS; i++) {
		peers[i].fd = h_connect(AF_INET, H_USMC, port);
		peers[i].seed = (uint8_t)i;
		h_write_all(peers[i].fd, &peers[i].seed, 1);
		set_nonblock(peers[i].fd);
		interest(ep, &peers[i], EPOLL_CTL_ADD);
		client_top_up(ep, &peers[i]);
	}
	while (busy) {
		struct epoll_event ev[CONNS];
		int n = usmc_epoll_wait(ep, ev, CONNS, WAIT_MS);

		CHECK(n >= 0 || errno == EINTR);
		if (n == 0)
			stalled("client", peers, CONNS);
		for (int i = 0; i < n; i++) {
			struct peer *p = ev[i].data.ptr;

			CHECK(!p->closed);
			CHECK(fill(p, client_take));
			client_top_up(ep, p);
			if (p->done == requests) {
				CHECK(p->in_len == 0 && p->out_len == 0);
				h_check_mode(p->fd, USMC_MODE_SMCD);
				CHECK(usmc_epoll_ctl(ep, EPOLL_CTL_DEL, p->fd, NULL) == 0);
				CHECK(usmc_close(p->fd) == 0);
				p->closed = true;
				busy--;
			}
		}
	}
	CHECK(usmc_close(ep) == 0);
	free(peers);
	return 0;
}

int main(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--et"))
			et = true;
		else if (!strcmp(argv[i], "--requests") && i + 1 < argc)
			requests = (uint32_t)strtoul(argv[++i], NULL, 0);
	}
	h_run_pair(server, client, &port_chan);
	printf("%d connections, %u pipelined requests each, %s: every reply came: ok\n", CONNS,
	       requests, et ? "edge-triggered" : "level-triggered");
	return 0;
}
