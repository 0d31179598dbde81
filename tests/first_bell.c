// SPDX-License-Identifier: MIT
/*
 * The doorbell of a connection's first data (usmc_tx.c): the server rings
 * for the first bytes it writes, since a program may wait for them in the
 * kernel's own poll(), unless its client said it waits for the Accept in a
 * call that reads the ring once it has it (CDC_PEER_READS_AFTER_ACCEPT: a
 * blocking read, usmc_poll for POLLIN).  A short connection's response
 * then costs no TCP segment.
 *
 * - blocking read: the client sleeps in a blocking read before the server
 *   accepts, and the server writes its reply before the client runs again
 *   (it stops the client meanwhile, SIGSTOP: a client that woke for the
 *   Accept and found no data yet would wait for a doorbell, rightly).
 *   The read returns the reply, and the client's TCP socket received
 *   nothing but the server's FIN (tcpi_bytes_received, the kernel's
 *   count: 1).
 * - usmc_poll: the same, the client asleep in usmc_poll for POLLIN.
 * - read gave up: the blocking read ends at its SO_RCVTIMEO (EAGAIN)
 *   before the server accepts; then the client waits in the kernel's
 *   poll(), as a program linked with usmc may: the server's first data
 *   must ring it.
 * - usmc_poll gave up: the same after a usmc_poll that timed out.
 * - usmc_poll for POLLOUT: a client whose ring filled before the Accept
 *   waits in usmc_poll for room alone, which does not read; then in the
 *   kernel's poll() for the reply, which must wake it.
 *
 * The server waits until its client sleeps (its wchan) before it accepts,
 * or until the client says it gave up.  A client that dies ends the
 * server's wait for its word (end of file).  A lost doorbell shows as a
 * poll() that times out.  Every transfer is checked by length and
 * checksum.
 */
#include <fcntl.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

enum kind { K_READ, K_POLL, K_READ_GAVE_UP, K_POLL_GAVE_UP, K_POLLOUT, K_KINDS };
static const char *const kind_name[K_KINDS] = {
	"blocking read", "usmc_poll for POLLIN", "read gave up, then poll()",
	"usmc_poll gave up, then poll()", "usmc_poll for POLLOUT, then poll()"
};
#define ROUNDS 10
#define REPLY 4096
/* More than the client's first ring: the POLLOUT case fills it before the Accept. */
#define FILL (8u << 20)

static struct h_chan to_server, to_client;

/* The kernel's own poll() for the first data: a lost doorbell never wakes it. */
static void kernel_poll_in(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	CHECK(poll(&p, 1, 10000) == 1 && (p.revents & POLLIN));
}

static void read_reply(int fd, uint32_t round)
{
	uint8_t got[REPLY], want[REPLY];

	h_read_all(fd, got, sizeof(got));
	h_pattern(want, sizeof(want), round, 0);
	CHECK(h_fnv(H_FNV_INIT, got, sizeof(got)) == h_fnv(H_FNV_INIT, want, sizeof(want)));
}

/* Fills the ring before the Accept: how much it took. */
static size_t fill_ring(int fd)
{
	static uint8_t buf[FILL];
	size_t off = 0;

	h_pattern(buf, FILL, 7, 0);
	while (off < FILL) {
		ssize_t n = usmc_write(fd, buf + off, FILL - off);

		if (n < 0 && errno == EAGAIN)
			return off;
		CHECK(n > 0);
		off += (size_t)n;
	}
	CHECK(!"the ring held all of it");
	return 0;
}

static void client_round(uint16_t port, enum kind kind, uint32_t round)
{
	int fd = h_connect_flags(AF_INET, H_USMC, port, SOCK_NONBLOCK);
	int fl = usmc_fcntl(fd, F_GETFL);
	struct pollfd p = { .fd = fd, .events = POLLIN };
	struct timeval tv = { .tv_usec = 30000 };
	size_t filled;
	struct tcp_info ti;
	socklen_t len = sizeof(ti);
	char c;

	switch (kind) {
	case K_READ:
		CHECK(usmc_fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) == 0);
		h_chan_send(&to_server, 1);
		read_reply(fd, round);
		break;
	case K_POLL:
		h_chan_send(&to_server, 1);
		CHECK(usmc_poll(&p, 1, -1) == 1 && (p.revents & POLLIN));
		read_reply(fd, round);
		break;
	case K_READ_GAVE_UP:
		CHECK(usmc_fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) == 0);
		CHECK(usmc_setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) == 0);
		CHECK(usmc_read(fd, &c, 1) < 0 && errno == EAGAIN);
		h_chan_send(&to_server, 0);
		kernel_poll_in(fd);
		read_reply(fd, round);
		break;
	case K_POLL_GAVE_UP:
		CHECK(usmc_poll(&p, 1, 30) == 0);
		h_chan_send(&to_server, 0);
		kernel_poll_in(fd);
		read_reply(fd, round);
		break;
	case K_POLLOUT:
		filled = fill_ring(fd);
		h_chan_send(&to_server, 1);
		h_chan_send(&to_server, filled);
		p.events = POLLOUT;
		CHECK(usmc_poll(&p, 1, -1) == 1 && (p.revents & POLLOUT));
		kernel_poll_in(fd);
		read_reply(fd, round);
		break;
	default:
		break;
	}
	h_check_mode(fd, USMC_MODE_SMCD);
	h_chan_send(&to_server, 2);
	CHECK(usmc_fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) == 0);
	CHECK(usmc_read(fd, &c, 1) == 0);
	if (kind == K_READ || kind == K_POLL) {
		/* The kernel's poll: the FIN is in, which usmc's end of file may precede. */
		struct pollfd fin = { .fd = fd, .events = POLLRDHUP };

		CHECK(poll(&fin, 1, 10000) == 1 && (fin.revents & POLLRDHUP));
		CHECK(usmc_getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) == 0);
		if (ti.tcpi_bytes_received != 1)
			fprintf(stderr, "%s: %llu bytes on TCP\n", kind_name[kind],
				(unsigned long long)ti.tcpi_bytes_received);
		CHECK(ti.tcpi_bytes_received == 1);
	}
	CHECK(usmc_close(fd) == 0);
}

static int client(void *arg)
{
	uint16_t port;

	(void)arg;
	close(to_server.rd);
	close(to_client.wr);
	port = (uint16_t)h_chan_recv(&to_client);
	for (int kind = 0; kind < K_KINDS; kind++)
		for (uint32_t i = 0; i < ROUNDS; i++)
			client_round(port, (enum kind)kind, i);
	return 0;
}

/* Waits until the process sleeps in poll(), as usmc's waits for the answer do. */
static void wait_asleep(pid_t pid)
{
	h_wait_wchan(pid, "poll_schedule_timeout");
}

/* What the client's ring held, checked. */
static void read_filled(int fd, size_t filled)
{
	static uint8_t got[FILL], want[FILL];

	CHECK(filled <= FILL);
	h_read_all(fd, got, filled);
	h_pattern(want, filled, 7, 0);
	CHECK(h_fnv(H_FNV_INIT, got, filled) == h_fnv(H_FNV_INIT, want, filled));
}

int main(void)
{
	uint8_t reply[REPLY];
	uint16_t port;
	pid_t pid;
	int lfd;

	h_registry_own("first-bell");
	h_chan_open(&to_server);
	h_chan_open(&to_client);
	lfd = h_listen(AF_INET, H_USMC, &port);
	pid = h_fork(client, NULL);
	close(to_server.wr);
	close(to_client.rd);
	h_chan_send(&to_client, port);
	for (int kind = 0; kind < K_KINDS; kind++) {
		for (uint32_t i = 0; i < ROUNDS; i++) {
			/* 1: about to wait for the answer; 0: gave up waiting. */
			bool asleep = h_chan_recv(&to_server) == 1;
			size_t filled = kind == K_POLLOUT ? (size_t)h_chan_recv(&to_server) : 0;
			int fd;

			if (asleep) {
				wait_asleep(pid);
				CHECK(kill(pid, SIGSTOP) == 0);
			}
			fd = usmc_accept(lfd, NULL, NULL);
			CHECK(fd >= 0);
			h_pattern(reply, sizeof(reply), i, 0);
			h_write_all(fd, reply, sizeof(reply));
			/* Room for the client, which waits for it. */
			if (filled)
				read_filled(fd, filled);
			if (asleep)
				CHECK(kill(pid, SIGCONT) == 0);
			/* Closed once the client has its reply: no doorbell of the close's. */
			CHECK(h_chan_recv(&to_server) == 2);
			CHECK(usmc_close(fd) == 0);
		}
		printf("%s: %d replies\n", kind_name[kind], ROUNDS);
	}
	CHECK(h_wait_ok(pid));
	CHECK(usmc_close(lfd) == 0);
	return 0;
}
