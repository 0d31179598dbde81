// SPDX-License-Identifier: MIT
/*
 * An ordinary TCP echo program, for usmc-run to take over.  It knows
 * nothing of usmc: plain socket, accept, read, write, poll and epoll, the
 * way any program uses them, built with _FORTIFY_SOURCE so that the
 * checked variants of read, recv, recvfrom and poll are in play too.
 *
 *   preload_echo server --port-file F --size N [--loop L] [--family 4|6] [--seed S]
 *                       [--chunk C] [--addr A] [--port P]
 *   preload_echo client --port-file F --size N [--family 4|6] [--seed S] [--chunk C]
 *                       [--addr A] [--port P]
 *   preload_echo env
 *
 * The client sends N pattern bytes while reading them back; the server
 * echoes.  The server checks every byte against the pattern, the client
 * the length and checksum of the echo.  The server loop L is blocking,
 * poll, epoll (level-triggered), epoll-et (edge-triggered, reading and
 * writing until EAGAIN) or select.  "env" prints LD_PRELOAD.
 *
 * With --addr the server listens on every address and the client dials A
 * (another network namespace's, a container's); with --port they use P,
 * and need no port file.  Each end prints what its connection's TCP
 * carried: the whole stream, or next to nothing in shared memory.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/tcp.h>
#include <stddef.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "plain.h"

#define CHUNK 65536
/* Safety net only: a healthy run takes a few seconds at most. */
#define WAIT_MS 20000
#define ALARM_S 25

enum loop { LOOP_BLOCKING, LOOP_POLL, LOOP_EPOLL, LOOP_EPOLL_ET, LOOP_SELECT };

static const char *port_file;
static const char *addr;
static uint16_t fixed_port;
static uint64_t size = 1 << 20;
static uint64_t seed = 1;
static int family = AF_INET;
static enum loop loop_kind = LOOP_BLOCKING;
/* Bytes per call; not a constant, so the fortified calls check it at run time. */
static size_t io_len = CHUNK;
/*
 * Always 1, but read at run time: a fortified poll() checks, through
 * __poll_chk, only a count the compiler cannot see, as a server's count of
 * descriptors usually is.
 */
static volatile nfds_t poll_count = 1;

/* Fixed-size buffers, so that the fortified calls know their size. */
static uint8_t io_buf[CHUNK];
static uint8_t expect_buf[CHUNK];

/* Byte i of the stream, as tests/harness.c makes it. */
static void pattern(uint8_t *buf, size_t len, uint64_t offset)
{
	for (size_t i = 0; i < len; i++) {
		uint64_t x = (offset + i) * 0x9e3779b97f4a7c15ull ^ seed;

		buf[i] = (uint8_t)(x >> 29 ^ x >> 7);
	}
}

static void set_nonblock(int fd)
{
	int flags = fcntl(fd, F_GETFL);

	CHECK(flags >= 0 && fcntl(fd, F_SETFL, flags | O_NONBLOCK) == 0);
}

/* The loopback address, or with --addr the one a client dials and every address to listen on. */
static socklen_t endpoint(uint16_t port, bool listening, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (family == AF_INET) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)ss;

		s4->sin_family = AF_INET;
		s4->sin_port = htons(port);
		s4->sin_addr.s_addr = htonl(addr ? INADDR_ANY : INADDR_LOOPBACK);
		if (addr && !listening)
			CHECK(inet_pton(AF_INET, addr, &s4->sin_addr) == 1);
		return sizeof(*s4);
	}
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

	s6->sin6_family = AF_INET6;
	s6->sin6_port = htons(port);
	s6->sin6_addr = addr ? in6addr_any : in6addr_loopback;
	if (addr && !listening)
		CHECK(inet_pton(AF_INET6, addr, &s6->sin6_addr) == 1);
	return sizeof(*s6);
}

/* ---- server ---- */

/* Written whole under another name first: the client never reads half a port. */
static void publish_port(uint16_t port)
{
	char tmp[4096];
	FILE *f;

	snprintf(tmp, sizeof(tmp), "%s.tmp", port_file);
	f = fopen(tmp, "w");
	CHECK(f);
	fprintf(f, "%u\n", (unsigned)port);
	CHECK(fclose(f) == 0);
	CHECK(rename(tmp, port_file) == 0);
}

static int listen_loopback(void)
{
	struct sockaddr_storage ss;
	socklen_t len = endpoint(fixed_port, true, &ss);
	int fd = socket(family, SOCK_STREAM, 0), one = 1;

	CHECK(fd >= 0);
	CHECK(setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == 0);
	CHECK(bind(fd, (struct sockaddr *)&ss, len) == 0);
	CHECK(listen(fd, 16) == 0);
	CHECK(getsockname(fd, (struct sockaddr *)&ss, &len) == 0);
	if (port_file)
		publish_port(ntohs(family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
					     : ((struct sockaddr_in6 *)&ss)->sin6_port));
	return fd;
}

/*
 * What the kernel's TCP connection itself carried, both ways: the whole
 * stream over TCP, next to nothing when the data went through shared
 * memory.  Unlike the loopback counters, no other traffic shows in it.
 */
static void report_tcp_bytes(const char *who, int fd)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);

	memset(&ti, 0, sizeof(ti));
	CHECK(getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) == 0);
	if (len < offsetof(struct tcp_info, tcpi_bytes_received) + sizeof(ti.tcpi_bytes_received))
		return; /* a kernel older than 4.1 does not count them */
	printf("%s: connection's TCP carried %llu bytes\n", who,
	       (unsigned long long)(ti.tcpi_bytes_acked + ti.tcpi_bytes_received));
}

/* What the server holds of one connection. */
struct echo {
	int fd;
	size_t have;      /* bytes in io_buf */
	size_t sent;      /* of them, echoed back */
	uint64_t total;   /* bytes received so far */
	bool eof;
};

/* Every byte must be the pattern's byte at its offset in the stream. */
static void take(struct echo *e, size_t n)
{
	pattern(expect_buf, n, e->total);
	if (memcmp(io_buf, expect_buf, n) != 0) {
		fprintf(stderr, "server: data differ within bytes %llu..%llu\n",
			(unsigned long long)e->total, (unsigned long long)(e->total + n));
		exit(1);
	}
	e->total += n;
	e->have = n;
	e->sent = 0;
}

/* Each loop reads with a different call, so that all of them carry data. */
static ssize_t echo_recv(int fd)
{
	struct sockaddr_storage from;
	socklen_t from_len = sizeof(from);
	struct iovec iov[2] = { { io_buf, io_len / 2 }, { io_buf + io_len / 2, io_len - io_len / 2 } };

	switch (loop_kind) {
	case LOOP_BLOCKING:
		return read(fd, io_buf, io_len);
	case LOOP_POLL:
		return recv(fd, io_buf, io_len, 0);
	case LOOP_EPOLL:
		return readv(fd, iov, 2);
	default:
		return recvfrom(fd, io_buf, io_len, 0, (struct sockaddr *)&from, &from_len);
	}
}

static ssize_t echo_send(int fd, const uint8_t *buf, size_t len)
{
	struct iovec iov = { (void *)buf, len };

	switch (loop_kind) {
	case LOOP_BLOCKING:
		return write(fd, buf, len);
	case LOOP_POLL:
		return send(fd, buf, len, 0);
	case LOOP_EPOLL:
		return writev(fd, &iov, 1);
	default:
		return sendto(fd, buf, len, 0, NULL, 0);
	}
}

/*
 * Moves the connection on as far as it goes without blocking: echoes what
 * is held, then reads more.  Returns when the call it needs would block,
 * or when the client is done and everything is echoed (e->eof).
 */
static void echo_progress(struct echo *e)
{
	while (!(e->eof && e->sent == e->have)) {
		ssize_t n;

		if (e->sent < e->have) {
			n = echo_send(e->fd, io_buf + e->sent, e->have - e->sent);
			if (n < 0 && (errno == EAGAIN || errno == EINTR))
				return;
			CHECK(n > 0);
			e->sent += (size_t)n;
			continue;
		}
		n = echo_recv(e->fd);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		CHECK(n >= 0);
		if (n == 0)
			e->eof = true;
		else
			take(e, (size_t)n);
	}
}

static bool echo_done(const struct echo *e)
{
	return e->eof && e->sent == e->have;
}

/* The events the connection waits for: room to echo, or more to read. */
static short echo_wants(const struct echo *e)
{
	return e->sent < e->have ? POLLOUT : POLLIN;
}

static void serve_blocking(int lfd, struct echo *e)
{
	e->fd = accept(lfd, NULL, NULL);
	CHECK(e->fd >= 0);
	echo_progress(e);
}

static void serve_poll(int lfd, struct echo *e)
{
	struct pollfd fds[1] = { { .fd = lfd, .events = POLLIN } };
	struct sockaddr_storage peer;
	socklen_t peer_len = sizeof(peer);

	set_nonblock(lfd);
	CHECK(poll(fds, poll_count, WAIT_MS) == 1);
	e->fd = accept4(lfd, (struct sockaddr *)&peer, &peer_len, SOCK_NONBLOCK);
	CHECK(e->fd >= 0);
	CHECK(peer_len > 0 && peer.ss_family == family);
	for (echo_progress(e); !echo_done(e); echo_progress(e)) {
		fds[0] = (struct pollfd){ .fd = e->fd, .events = echo_wants(e) };
		CHECK(poll(fds, poll_count, WAIT_MS) == 1);
		CHECK(!(fds[0].revents & (POLLERR | POLLNVAL)));
	}
}

/* select() on the listener, then on the connection, as older servers do. */
static void serve_select(int lfd, struct echo *e)
{
	struct timeval limit = { WAIT_MS / 1000, 0 };
	fd_set rd, wr;

	set_nonblock(lfd);
	FD_ZERO(&rd);
	FD_SET(lfd, &rd);
	CHECK(select(lfd + 1, &rd, NULL, NULL, &limit) == 1 && FD_ISSET(lfd, &rd));
	e->fd = accept(lfd, NULL, NULL);
	CHECK(e->fd >= 0);
	set_nonblock(e->fd);
	for (echo_progress(e); !echo_done(e); echo_progress(e)) {
		FD_ZERO(&rd);
		FD_ZERO(&wr);
		FD_SET(e->fd, echo_wants(e) == POLLOUT ? &wr : &rd);
		limit = (struct timeval){ WAIT_MS / 1000, 0 };
		CHECK(select(e->fd + 1, &rd, &wr, NULL, &limit) == 1);
	}
}

static uint32_t epoll_wants(const struct echo *e, bool edge)
{
	if (edge)
		return EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
	return echo_wants(e) == POLLOUT ? EPOLLOUT : EPOLLIN;
}

/* Level-triggered changes its interest as the echo goes; edge-triggered never. */
static void serve_epoll(int lfd, struct echo *e, bool edge)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.fd = lfd }, got[4];
	int epfd = epoll_create1(EPOLL_CLOEXEC);
	uint32_t interest;

	CHECK(epfd >= 0);
	set_nonblock(lfd);
	CHECK(epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &ev) == 0);
	CHECK(epoll_wait(epfd, got, 4, WAIT_MS) == 1 && got[0].data.fd == lfd);
	CHECK(epoll_ctl(epfd, EPOLL_CTL_DEL, lfd, NULL) == 0);
	e->fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	CHECK(e->fd >= 0);
	interest = epoll_wants(e, edge);
	ev = (struct epoll_event){ .events = interest, .data.fd = e->fd };
	CHECK(epoll_ctl(epfd, EPOLL_CTL_ADD, e->fd, &ev) == 0);
	for (echo_progress(e); !echo_done(e); echo_progress(e)) {
		if (epoll_wants(e, edge) != interest) {
			interest = epoll_wants(e, edge);
			ev = (struct epoll_event){ .events = interest, .data.fd = e->fd };
			CHECK(epoll_ctl(epfd, EPOLL_CTL_MOD, e->fd, &ev) == 0);
		}
		CHECK(epoll_wait(epfd, got, 4, WAIT_MS) == 1 && got[0].data.fd == e->fd);
		CHECK(!(got[0].events & EPOLLERR));
	}
	CHECK(close(epfd) == 0);
}

static int server(void)
{
	struct echo e = { .fd = -1 };
	int lfd = listen_loopback();

	switch (loop_kind) {
	case LOOP_BLOCKING:
		serve_blocking(lfd, &e);
		break;
	case LOOP_POLL:
		serve_poll(lfd, &e);
		break;
	case LOOP_SELECT:
		serve_select(lfd, &e);
		break;
	default:
		serve_epoll(lfd, &e, loop_kind == LOOP_EPOLL_ET);
		break;
	}
	if (e.total != size) {
		fprintf(stderr, "server: received %llu bytes, expected %llu\n",
			(unsigned long long)e.total, (unsigned long long)size);
		return 1;
	}
	report_tcp_bytes("server", e.fd);
	CHECK(close(e.fd) == 0);
	CHECK(close(lfd) == 0);
	printf("server: echoed %llu bytes, all as sent\n", (unsigned long long)size);
	return 0;
}

/* ---- client ---- */

static uint16_t wait_port(void)
{
	struct timespec nap = { 0, 20 * 1000 * 1000 };
	unsigned port = 0;

	if (fixed_port)
		return fixed_port;
	for (int waited = 0; waited < WAIT_MS; waited += 20) {
		FILE *f = fopen(port_file, "r");

		if (f) {
			CHECK(fscanf(f, "%u", &port) == 1 && port > 0 && port < 65536);
			fclose(f);
			return (uint16_t)port;
		}
		nanosleep(&nap, NULL);
	}
	fprintf(stderr, "client: no port in %s\n", port_file);
	exit(1);
}

static int connect_loopback(uint16_t port)
{
	struct sockaddr_storage ss;
	socklen_t len = endpoint(port, false, &ss);
	int fd = socket(family, SOCK_STREAM, IPPROTO_TCP);

	CHECK(fd >= 0);
	CHECK(connect(fd, (struct sockaddr *)&ss, len) == 0);
	return fd;
}

/* Sends the next piece of the stream; true once all of it is sent. */
static bool client_send(int fd, uint64_t *sent, uint64_t *sum)
{
	size_t n = size - *sent < io_len ? (size_t)(size - *sent) : io_len;
	ssize_t w;

	pattern(expect_buf, n, *sent);
	w = write(fd, expect_buf, n);
	if (w < 0 && (errno == EAGAIN || errno == EINTR))
		return false;
	CHECK(w > 0);
	*sum = fnv(*sum, expect_buf, (size_t)w);
	*sent += (uint64_t)w;
	if (*sent < size)
		return false;
	CHECK(shutdown(fd, SHUT_WR) == 0);
	return true;
}

/* Reads what the echo has; true at its end. */
static bool client_recv(int fd, uint64_t *received, uint64_t *sum)
{
	ssize_t r = read(fd, io_buf, io_len);

	if (r < 0 && (errno == EAGAIN || errno == EINTR))
		return false;
	CHECK(r >= 0);
	*sum = fnv(*sum, io_buf, (size_t)r);
	*received += (uint64_t)r;
	return r == 0;
}

static int client(void)
{
	uint64_t sent = 0, received = 0, sent_sum = FNV_INIT, echo_sum = FNV_INIT;
	int fd = connect_loopback(wait_port());
	bool all_sent = size == 0, eof = false;
	struct pollfd fds[1];

	if (all_sent)
		CHECK(shutdown(fd, SHUT_WR) == 0);
	set_nonblock(fd);
	while (!eof) {
		fds[0] = (struct pollfd){ .fd = fd, .events = POLLIN | (all_sent ? 0 : POLLOUT) };
		CHECK(poll(fds, poll_count, WAIT_MS) == 1);
		if (!all_sent && (fds[0].revents & POLLOUT))
			all_sent = client_send(fd, &sent, &sent_sum);
		if (fds[0].revents & (POLLIN | POLLHUP | POLLERR))
			eof = client_recv(fd, &received, &echo_sum);
	}
	report_tcp_bytes("client", fd);
	CHECK(close(fd) == 0);
	if (received != size || echo_sum != sent_sum) {
		fprintf(stderr, "client: echo of %llu bytes sum %016llx; sent %llu sum %016llx\n",
			(unsigned long long)received, (unsigned long long)echo_sum,
			(unsigned long long)sent, (unsigned long long)sent_sum);
		return 1;
	}
	printf("client: %llu bytes echoed, checksum %016llx\n", (unsigned long long)size,
	       (unsigned long long)echo_sum);
	return 0;
}

/* ---- command line ---- */

static enum loop parse_loop(const char *name)
{
	static const char *const names[] = { "blocking", "poll", "epoll", "epoll-et", "select" };

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (!strcmp(name, names[i]))
			return (enum loop)i;
	fprintf(stderr, "unknown loop %s\n", name);
	exit(2);
}

static void parse_options(int argc, char **argv)
{
	for (int i = 2; i + 1 < argc; i += 2) {
		const char *opt = argv[i], *val = argv[i + 1];

		if (!strcmp(opt, "--port-file"))
			port_file = val;
		else if (!strcmp(opt, "--size"))
			size = strtoull(val, NULL, 0);
		else if (!strcmp(opt, "--seed"))
			seed = strtoull(val, NULL, 0);
		else if (!strcmp(opt, "--family"))
			family = !strcmp(val, "6") ? AF_INET6 : AF_INET;
		else if (!strcmp(opt, "--loop"))
			loop_kind = parse_loop(val);
		else if (!strcmp(opt, "--chunk"))
			io_len = strtoull(val, NULL, 0);
		else if (!strcmp(opt, "--addr"))
			addr = val;
		else if (!strcmp(opt, "--port"))
			fixed_port = (uint16_t)strtoul(val, NULL, 0);
		else {
			fprintf(stderr, "unknown option %s\n", opt);
			exit(2);
		}
	}
	if ((!port_file && !fixed_port) || io_len < 2 || io_len > CHUNK) {
		fprintf(stderr, "--port-file or --port is required, --chunk between 2 and %d\n", CHUNK);
		exit(2);
	}
}

int main(int argc, char **argv)
{
	if (argc >= 2 && !strcmp(argv[1], "env")) {
		const char *preload = getenv("LD_PRELOAD");

		printf("%s\n", preload ? preload : "");
		return 0;
	}
	if (argc < 2 || (strcmp(argv[1], "server") && strcmp(argv[1], "client"))) {
		fprintf(stderr, "usage: preload_echo server|client --port-file F --size N "
				"[--loop blocking|poll|epoll|epoll-et|select] [--family 4|6] [--seed S]\n");
		return 2;
	}
	parse_options(argc, argv);
	alarm(ALARM_S);
	return !strcmp(argv[1], "server") ? server() : client();
}
