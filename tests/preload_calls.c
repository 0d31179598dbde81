// SPDX-License-Identifier: MIT
/*
 * An ordinary TCP program that moves its bytes with the less common calls:
 * sendmmsg and recvmmsg, splice from a socket into a pipe and from a pipe
 * into a socket, and waits with epoll_pwait2.  It knows nothing of usmc.
 *
 *   preload_calls --expect shm|tcp
 *
 * A client and a server (two processes over 127.0.0.1) exchange three
 * blocks, each checked by length and checksum:
 *   client -> server   sendmmsg of three messages, read with recvmmsg
 *   server -> client   pattern written into a pipe, spliced into the socket
 *   client -> server   written, waited for with epoll_pwait2, spliced from
 *                      the socket into a pipe and read from there
 * With --expect shm, the client's TCP connection must have carried less
 * than an eighth of the bytes (TCP_INFO), so shared memory carried them.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "plain.h"

static const size_t msg_sizes[3] = { 1000, 20000, 300000 };
#define BLOCK2 (3 << 20)
#define BLOCK3 (2 << 20)

/* Byte i of stream seed. */
static void pattern(uint8_t *buf, size_t len, unsigned seed, size_t offset)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = (uint8_t)((offset + i) * 31 + seed + ((offset + i) >> 12));
}

static uint64_t pattern_sum(unsigned seed, size_t len)
{
	uint8_t buf[65536];
	uint64_t h = FNV_INIT;

	for (size_t off = 0; off < len; off += sizeof(buf)) {
		size_t n = len - off < sizeof(buf) ? len - off : sizeof(buf);

		pattern(buf, n, seed, off);
		h = fnv(h, buf, n);
	}
	return h;
}

/* ---- client ---- */

static void client_sendmmsg(int fd)
{
	static uint8_t bufs[3][300000];
	struct iovec iov[3];
	struct mmsghdr vec[3];
	size_t total = 0;
	int sent = 0;

	memset(vec, 0, sizeof(vec));
	for (int i = 0; i < 3; i++) {
		pattern(bufs[i], msg_sizes[i], 1, total);
		total += msg_sizes[i];
		iov[i] = (struct iovec){ bufs[i], msg_sizes[i] };
		vec[i].msg_hdr.msg_iov = &iov[i];
		vec[i].msg_hdr.msg_iovlen = 1;
	}
	/* A blocking socket sends all three whole. */
	sent = sendmmsg(fd, vec, 3, 0);
	CHECK(sent == 3);
	for (int i = 0; i < 3; i++)
		CHECK(vec[i].msg_len == msg_sizes[i]);
}

static void client_read_block(int fd, size_t len, unsigned seed)
{
	uint8_t buf[65536];
	uint64_t h = FNV_INIT;
	size_t got = 0;

	while (got < len) {
		ssize_t n = read(fd, buf, len - got < sizeof(buf) ? len - got : sizeof(buf));

		CHECK(n > 0);
		h = fnv(h, buf, (size_t)n);
		got += (size_t)n;
	}
	CHECK(h == pattern_sum(seed, len));
}

static void client_write_block(int fd, size_t len, unsigned seed)
{
	uint8_t buf[65536];

	for (size_t off = 0; off < len; off += sizeof(buf)) {
		size_t n = len - off < sizeof(buf) ? len - off : sizeof(buf);

		pattern(buf, n, seed, off);
		write_all(fd, buf, n);
	}
}

static int client(uint16_t port, bool expect_shm)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct tcp_info ti;
	socklen_t len = sizeof(ti);
	uint64_t moved = 0, on_tcp;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	char ack;

	CHECK(fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	client_sendmmsg(fd);
	for (int i = 0; i < 3; i++)
		moved += msg_sizes[i];
	client_read_block(fd, BLOCK2, 2);
	client_write_block(fd, BLOCK3, 3);
	CHECK(read(fd, &ack, 1) == 1 && ack == 'k');
	moved += BLOCK2 + BLOCK3;
	CHECK(getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) == 0);
	on_tcp = ti.tcpi_bytes_acked + ti.tcpi_bytes_received;
	printf("client: %llu bytes checked, %llu went over TCP\n", (unsigned long long)moved,
	       (unsigned long long)on_tcp);
	CHECK(expect_shm ? on_tcp < moved / 8 : on_tcp >= moved);
	CHECK(close(fd) == 0);
	return 0;
}

/* ---- server ---- */

static void server_recvmmsg(int fd)
{
	static uint8_t bufs[3][300000];
	size_t want = msg_sizes[0] + msg_sizes[1] + msg_sizes[2], got = 0;
	uint64_t h = FNV_INIT;

	while (got < want) {
		struct iovec iov[3];
		struct mmsghdr vec[3];
		unsigned vlen = 0;
		int n;

		memset(vec, 0, sizeof(vec));
		/* Ask for no more than is left, so that no call waits for bytes never sent. */
		for (size_t left = want - got; vlen < 3 && left; vlen++) {
			size_t take = left < sizeof(bufs[0]) ? left : sizeof(bufs[0]);

			iov[vlen] = (struct iovec){ bufs[vlen], take };
			vec[vlen].msg_hdr.msg_iov = &iov[vlen];
			vec[vlen].msg_hdr.msg_iovlen = 1;
			left -= take;
		}
		n = recvmmsg(fd, vec, vlen, MSG_WAITFORONE, NULL);
		CHECK(n >= 1);
		for (int i = 0; i < n; i++) {
			CHECK(vec[i].msg_len > 0);
			h = fnv(h, bufs[i], vec[i].msg_len);
			got += vec[i].msg_len;
		}
	}
	CHECK(got == want && h == pattern_sum(1, want));
}

static void server_splice_out(int fd)
{
	uint8_t buf[65536];
	int p[2];

	CHECK(pipe(p) == 0);
	for (size_t off = 0; off < BLOCK2; off += sizeof(buf)) {
		size_t n = BLOCK2 - off < sizeof(buf) ? BLOCK2 - off : sizeof(buf), left = n;

		pattern(buf, n, 2, off);
		write_all(p[1], buf, n);
		while (left) {
			ssize_t s = splice(p[0], NULL, fd, NULL, left, 0);

			CHECK(s > 0);
			left -= (size_t)s;
		}
	}
	close(p[0]);
	close(p[1]);
}

static void server_splice_in(int fd)
{
	struct epoll_event ev = { .events = EPOLLIN }, got;
	struct timespec limit = { 20, 0 };
	uint8_t buf[65536];
	uint64_t h = FNV_INIT;
	size_t total = 0;
	int p[2], ep = epoll_create1(EPOLL_CLOEXEC);

	CHECK(pipe(p) == 0 && ep >= 0 && epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) == 0);
	while (total < BLOCK3) {
		ssize_t s, r;

		CHECK(epoll_pwait2(ep, &got, 1, &limit, NULL) == 1 && (got.events & EPOLLIN));
		s = splice(fd, NULL, p[1], NULL, BLOCK3 - total, SPLICE_F_NONBLOCK);
		if (s < 0 && errno == EAGAIN)
			continue;
		CHECK(s > 0);
		for (ssize_t left = s; left > 0; left -= r) {
			r = read(p[0], buf, (size_t)left < sizeof(buf) ? (size_t)left : sizeof(buf));
			CHECK(r > 0);
			h = fnv(h, buf, (size_t)r);
		}
		total += (size_t)s;
	}
	CHECK(total == BLOCK3 && h == pattern_sum(3, BLOCK3));
	close(p[0]);
	close(p[1]);
	close(ep);
}

static int server(int lfd)
{
	int fd = accept(lfd, NULL, NULL);

	CHECK(fd >= 0);
	server_recvmmsg(fd);
	server_splice_out(fd);
	server_splice_in(fd);
	CHECK(write(fd, "k", 1) == 1);
	CHECK(close(fd) == 0);
	printf("server: sendmmsg/recvmmsg, splice both ways, epoll_pwait2: bytes intact\n");
	return 0;
}

int main(int argc, char **argv)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);
	int lfd, sync[2], status;
	bool expect_shm;
	uint16_t port;
	pid_t pid;

	if (argc != 3 || strcmp(argv[1], "--expect") ||
	    (strcmp(argv[2], "shm") && strcmp(argv[2], "tcp"))) {
		fprintf(stderr, "usage: preload_calls --expect shm|tcp\n");
		return 2;
	}
	expect_shm = !strcmp(argv[2], "shm");
	alarm(60); /* safety net only */
	CHECK(pipe(sync) == 0);
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		close(sync[1]);
		CHECK(read(sync[0], &port, sizeof(port)) == sizeof(port));
		return client(port, expect_shm);
	}
	close(sync[0]);
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	CHECK(lfd >= 0 && bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) == 0 && listen(lfd, 8) == 0);
	CHECK(getsockname(lfd, (struct sockaddr *)&sa, &len) == 0);
	port = ntohs(sa.sin_port);
	CHECK(write(sync[1], &port, sizeof(port)) == sizeof(port));
	CHECK(server(lfd) == 0);
	CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0);
	return 0;
}
