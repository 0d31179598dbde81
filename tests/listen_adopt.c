// SPDX-License-Identifier: MIT
/*
 * A listener the server did not make: given at exec, as systemd socket
 * activation and inetd `wait` services give it.  An ordinary program,
 * for usmc-run to take over.
 *
 *   listen_adopt activate PORT_FILE CMD [ARG...]
 *       Listens on 127.0.0.1 (an ephemeral port, written to PORT_FILE),
 *       puts the listener on descriptor 3, sets LISTEN_FDS=1 and
 *       LISTEN_PID, and execs CMD, as systemd-socket-activate does.
 *   listen_adopt pass SOCK_PATH PORT_FILE
 *       Listens as activate does, and hands the listener to the first
 *       process that connects to the Unix socket SOCK_PATH (SCM_RIGHTS).
 *   listen_adopt receive SOCK_PATH N blocking|poll
 *       Takes the listener pass hands over, then serves as server does.
 *   listen_adopt server N blocking|poll
 *       Accepts N connections on descriptor 3, one after the other
 *       (poll: waits for each with poll, then accept4; blocking: accept);
 *       reads each to its end and
 *       answers its length and checksum.
 *   listen_adopt client PORT_FILE N SIZE
 *       N connections of SIZE pattern bytes each, checked by the answer.
 *       Prints what each connection's own TCP socket carried (TCP_INFO);
 *       with --shm-after 1 every connection but the first must have
 *       carried less than an eighth of its bytes: the first accept made
 *       the listener a usmc listener, and only a client that connected
 *       before it may be TCP.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <linux/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "plain.h"

#define CHUNK 65536

static void pattern(uint8_t *buf, size_t n, uint64_t seed, uint64_t off)
{
	for (size_t i = 0; i < n; i++)
		buf[i] = (uint8_t)((off + i) * 131 + seed * 7 + ((off + i) >> 9));
}

static uint64_t tcp_carried(int fd)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);

	memset(&ti, 0, sizeof(ti));
	CHECK(getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) == 0);
	return ti.tcpi_bytes_acked + ti.tcpi_bytes_received;
}

/* A TCP listener on 127.0.0.1, on descriptor 3, its port written to port_file. */
static void make_listener(const char *port_file)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	FILE *f;

	CHECK(fd >= 0);
	CHECK(bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0);
	CHECK(listen(fd, 16) == 0);
	CHECK(getsockname(fd, (struct sockaddr *)&sin, &len) == 0);
	if (fd != 3) {
		CHECK(dup2(fd, 3) == 3);
		CHECK(close(fd) == 0);
	}
	f = fopen(port_file, "w");
	CHECK(f);
	fprintf(f, "%u\n", (unsigned)ntohs(sin.sin_port));
	CHECK(fclose(f) == 0);
}

static int activate(const char *port_file, char **cmd)
{
	char pid[32];

	make_listener(port_file);
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	setenv("LISTEN_FDS", "1", 1);
	setenv("LISTEN_PID", pid, 1);
	execvp(cmd[0], cmd);
	perror("execvp");
	return 127;
}

/* Hands the listener to the first process that connects to sock_path (SCM_RIGHTS). */
static int pass(const char *sock_path, const char *port_file)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	char cbuf[CMSG_SPACE(sizeof(int))] = { 0 };
	struct iovec iov = { .iov_base = "L", .iov_len = 1 };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			     .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
	int u = socket(AF_UNIX, SOCK_STREAM, 0), fd, lfd = 3;

	make_listener(port_file);
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", sock_path);
	CHECK(u >= 0 && bind(u, (struct sockaddr *)&sun, sizeof(sun)) == 0 && listen(u, 1) == 0);
	fd = accept(u, NULL, NULL);
	CHECK(fd >= 0);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &lfd, sizeof(int));
	CHECK(sendmsg(fd, &mh, 0) == 1);
	CHECK(close(fd) == 0 && close(u) == 0 && close(lfd) == 0);
	return 0;
}

/* Takes the listener pass() hands over, onto descriptor 3. */
static void receive(const char *sock_path)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	char cbuf[CMSG_SPACE(sizeof(int))], b;
	struct iovec iov = { .iov_base = &b, .iov_len = 1 };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			     .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *c;
	int u = socket(AF_UNIX, SOCK_STREAM, 0), lfd = -1;

	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", sock_path);
	CHECK(u >= 0);
	for (int i = 0; connect(u, (struct sockaddr *)&sun, sizeof(sun)); i++) {
		CHECK(i < 200);
		usleep(50 * 1000);
	}
	CHECK(recvmsg(u, &mh, 0) == 1);
	c = CMSG_FIRSTHDR(&mh);
	CHECK(c && c->cmsg_type == SCM_RIGHTS);
	memcpy(&lfd, CMSG_DATA(c), sizeof(int));
	CHECK(close(u) == 0);
	if (lfd != 3) {
		CHECK(dup2(lfd, 3) == 3);
		CHECK(close(lfd) == 0);
	}
}

static int server(int conns, bool use_poll)
{
	static uint8_t buf[CHUNK];

	for (int i = 0; i < conns; i++) {
		uint64_t reply[2] = { 0, FNV_INIT };
		struct pollfd p = { .fd = 3, .events = POLLIN };
		int fd;
		ssize_t r;

		if (use_poll)
			CHECK(poll(&p, 1, 30000) == 1);
		/* Both entries: accept4 after a poll, as event loops do. */
		fd = use_poll ? accept4(3, NULL, NULL, SOCK_CLOEXEC) : accept(3, NULL, NULL);
		CHECK(fd >= 0);
		while ((r = read(fd, buf, sizeof(buf))) != 0) {
			if (r < 0 && errno == EINTR)
				continue;
			CHECK(r > 0);
			reply[0] += (uint64_t)r;
			reply[1] = fnv(reply[1], buf, (size_t)r);
		}
		write_all(fd, reply, sizeof(reply));
		printf("server: connection %d: %llu bytes\n", i, (unsigned long long)reply[0]);
		CHECK(close(fd) == 0);
	}
	return 0;
}

static int client(const char *port_file, int conns, size_t size, int shm_after)
{
	static uint8_t buf[CHUNK];
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	unsigned port = 0;
	FILE *f = fopen(port_file, "r");
	int failed = 0;

	CHECK(f && fscanf(f, "%u", &port) == 1);
	fclose(f);
	sin.sin_port = htons((uint16_t)port);
	for (int i = 0; i < conns; i++) {
		uint64_t sum = FNV_INIT, reply[2], carried;
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		size_t off = 0;
		ssize_t r;

		CHECK(fd >= 0);
		CHECK(connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0);
		while (off < size) {
			size_t n = size - off < CHUNK ? size - off : CHUNK;

			pattern(buf, n, (uint64_t)i, off);
			sum = fnv(sum, buf, n);
			write_all(fd, buf, n);
			off += n;
		}
		CHECK(shutdown(fd, SHUT_WR) == 0);
		for (off = 0; off < sizeof(reply); off += (size_t)r) {
			r = read(fd, (uint8_t *)reply + off, sizeof(reply) - off);
			CHECK(r > 0);
		}
		CHECK(reply[0] == size && reply[1] == sum);
		carried = tcp_carried(fd);
		printf("client: connection %d: %zu bytes echoed as length and checksum, "
		       "its TCP carried %llu bytes\n", i, size, (unsigned long long)carried);
		if (shm_after >= 0 && i >= shm_after && carried * 8 >= size) {
			fprintf(stderr, "client: connection %d went over TCP\n", i);
			failed = 1;
		}
		CHECK(close(fd) == 0);
	}
	return failed;
}

int main(int argc, char **argv)
{
	if (argc >= 4 && !strcmp(argv[1], "activate"))
		return activate(argv[2], argv + 3);
	if (argc == 4 && !strcmp(argv[1], "server"))
		return server(atoi(argv[2]), !strcmp(argv[3], "poll"));
	if (argc == 4 && !strcmp(argv[1], "pass"))
		return pass(argv[2], argv[3]);
	if (argc == 5 && !strcmp(argv[1], "receive")) {
		receive(argv[2]);
		return server(atoi(argv[3]), !strcmp(argv[4], "poll"));
	}
	if (argc >= 5 && !strcmp(argv[1], "client"))
		return client(argv[2], atoi(argv[3]), strtoull(argv[4], NULL, 0),
			      argc == 7 && !strcmp(argv[5], "--shm-after") ? atoi(argv[6]) : -1);
	fprintf(stderr, "usage: listen_adopt activate PORT_FILE CMD...|server N blocking|poll|"
			"pass SOCK_PATH PORT_FILE|receive SOCK_PATH N blocking|poll|"
			"client PORT_FILE N SIZE [--shm-after K]\n");
	return 2;
}
