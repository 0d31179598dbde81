// SPDX-License-Identifier: MIT
/*
 * A program that moves its socket's bytes with io_uring (liburing), as
 * such servers do: it sets up its ring, then makes its connection with
 * plain socket calls and sends and receives through the ring.  It knows
 * nothing of usmc.
 *
 * Under usmc-run the connection must be plain TCP from its start: the
 * ring's receives read the kernel socket, where a shared-memory
 * connection's bytes never are.  Both ends check each other's bytes by
 * length and checksum, and the client's TCP connection (TCP_INFO) must
 * have carried them all.
 *
 *   preload_io_uring                      both ends set up their rings first
 *   preload_io_uring --ring-after-accept  the client uses plain read and
 *       write (a usmc client, which proposes); the server sets up its ring
 *       only after its accept, and receives through it: the connection,
 *       not used yet, is declined then, and the client's request, in its
 *       ring until then, comes over TCP.  The client's TCP socket received
 *       the Decline's marker ahead of the reply: it did propose.
 *   preload_io_uring --ring-after-use     the server sets up its ring once
 *       the connection moved bytes through shared memory, and goes on
 *       with plain calls on it (the ring's operations would not see its
 *       bytes): the connection stays in shared memory, every byte checked,
 *       and usmc says why such a ring would hang (the test reads usmc's
 *       log on stderr for the warning).
 */
#include <arpa/inet.h>
#include <liburing.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "plain.h"

#define REQUEST (1 << 20)
#define REPLY (300 << 10)

static struct io_uring ring;
/* The client's calls are plain ones, and the server's ring comes after its accept. */
static bool after_accept;
/* The same, and the server's ring comes after the connection moved bytes. */
static bool after_use;

/* One send or receive through the ring: its result, as the call's. */
static int ring_io(int fd, void *buf, size_t len, bool send)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
	struct io_uring_cqe *cqe;
	int res;

	CHECK(sqe);
	if (send)
		io_uring_prep_send(sqe, fd, buf, len, 0);
	else
		io_uring_prep_recv(sqe, fd, buf, len, 0);
	CHECK(io_uring_submit(&ring) == 1);
	CHECK(io_uring_wait_cqe(&ring, &cqe) == 0);
	res = cqe->res;
	io_uring_cqe_seen(&ring, cqe);
	return res;
}

static void fill(uint8_t *buf, size_t len, size_t off, unsigned seed)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = (uint8_t)((off + i) * 13 + seed + ((off + i) >> 11));
}

/* Sends len bytes of stream seed, through the ring or with write(); their checksum. */
static uint64_t send_all(int fd, size_t len, unsigned seed, bool ring_calls)
{
	static uint8_t buf[65536];
	uint64_t h = FNV_INIT;

	for (size_t off = 0; off < len;) {
		size_t n = len - off < sizeof(buf) ? len - off : sizeof(buf);
		ssize_t w;

		fill(buf, n, off, seed);
		w = ring_calls ? ring_io(fd, buf, n, true) : write(fd, buf, n);
		CHECK(w > 0);
		h = fnv(h, buf, (size_t)w);
		off += (size_t)w;
	}
	return h;
}

/* Receives to EOF with read(), the checksum going on from h; the byte count and checksum. */
static uint64_t recv_all_from(int fd, size_t *total, uint64_t h)
{
	static uint8_t buf[65536];
	ssize_t n;

	*total = 0;
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		h = fnv(h, buf, (size_t)n);
		*total += (size_t)n;
	}
	CHECK(n == 0);
	return h;
}

/* Receives to EOF, through the ring or with read(); the byte count and checksum. */
static uint64_t recv_all(int fd, size_t *total, bool ring_calls)
{
	static uint8_t buf[65536];
	uint64_t h = FNV_INIT;
	ssize_t n;

	*total = 0;
	while ((n = ring_calls ? ring_io(fd, buf, sizeof(buf), false) : read(fd, buf, sizeof(buf))) > 0) {
		h = fnv(h, buf, (size_t)n);
		*total += (size_t)n;
	}
	CHECK(n == 0);
	return h;
}

static uint64_t stream_sum(size_t len, unsigned seed)
{
	static uint8_t buf[65536];
	uint64_t h = FNV_INIT;

	for (size_t off = 0; off < len; off += sizeof(buf)) {
		size_t n = len - off < sizeof(buf) ? len - off : sizeof(buf);

		fill(buf, n, off, seed);
		h = fnv(h, buf, n);
	}
	return h;
}

static void client(uint16_t port)
{
	struct sockaddr_storage ss;
	socklen_t len = loopback_addr(AF_INET, port, &ss);
	struct tcp_info ti;
	socklen_t tlen = sizeof(ti);
	size_t got;
	int fd;

	if (!after_accept)
		CHECK(io_uring_queue_init(8, &ring, 0) == 0);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	CHECK(fd >= 0 && connect(fd, (struct sockaddr *)&ss, len) == 0);
	send_all(fd, REQUEST, 1, !after_accept);
	CHECK(shutdown(fd, SHUT_WR) == 0);
	CHECK(recv_all(fd, &got, !after_accept) == stream_sum(REPLY, 2) && got == REPLY);
	CHECK(getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &tlen) == 0);
	printf("client: %d bytes sent and %d received, %llu over TCP\n", REQUEST, REPLY,
	       (unsigned long long)(ti.tcpi_bytes_acked + ti.tcpi_bytes_received));
	/* In shared memory all along, or plain TCP from the start. */
	if (after_use)
		CHECK(ti.tcpi_bytes_acked + ti.tcpi_bytes_received < REQUEST);
	else
		CHECK(ti.tcpi_bytes_acked + ti.tcpi_bytes_received >= REQUEST + REPLY);
	/* Proposed, then declined: the marker (our socket's cookie, 8 bytes) came ahead of the reply. */
	if (after_accept && !after_use)
		CHECK(ti.tcpi_bytes_received >= REPLY + 8);
	close(fd);
	if (!after_accept)
		io_uring_queue_exit(&ring);
}

int main(int argc, char **argv)
{
	int lfd, fd, sync[2], status;
	uint16_t port;
	size_t got;
	pid_t pid;

	after_use = argc > 1 && !strcmp(argv[1], "--ring-after-use");
	after_accept = after_use || (argc > 1 && !strcmp(argv[1], "--ring-after-accept"));
	/* A registry of its own: nobody else's listener or link group on the way. */
	{
		static char dir[] = "/tmp/usmc-io_uring-XXXXXX";

		CHECK(mkdtemp(dir) && setenv("USMC_REGISTRY_DIR", dir, 1) == 0);
	}
	alarm(60); /* safety net only */
	CHECK(pipe(sync) == 0);
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		close(sync[1]);
		CHECK(read(sync[0], &port, sizeof(port)) == sizeof(port));
		client(port);
		return 0;
	}
	close(sync[0]);
	if (!after_accept)
		CHECK(io_uring_queue_init(8, &ring, 0) == 0);
	lfd = loopback_listen(&port);
	CHECK(write(sync[1], &port, sizeof(port)) == sizeof(port));
	fd = accept(lfd, NULL, NULL);
	CHECK(fd >= 0);
	if (after_use) {
		/* The first bytes by read(): the connection settles into shared memory. */
		static uint8_t first[4096];
		uint64_t h = FNV_INIT, h_rest;
		size_t n = 0;

		while (n < sizeof(first)) {
			ssize_t r = read(fd, first + n, sizeof(first) - n);

			CHECK(r > 0);
			n += (size_t)r;
		}
		h = fnv(h, first, n);
		CHECK(io_uring_queue_init(8, &ring, 0) == 0);
		/* The rest by read() too: the ring would not see the connection's bytes. */
		h_rest = recv_all_from(fd, &got, h);
		CHECK(h_rest == stream_sum(REQUEST, 1) && got + n == REQUEST);
		send_all(fd, REPLY, 2, false);
	} else {
		if (after_accept)
			CHECK(io_uring_queue_init(8, &ring, 0) == 0);
		CHECK(recv_all(fd, &got, true) == stream_sum(REQUEST, 1) && got == REQUEST);
		send_all(fd, REPLY, 2, true);
	}
	close(fd);
	close(lfd);
	io_uring_queue_exit(&ring);
	CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0);
	printf("server: request checked, reply sent\n");
	return 0;
}
