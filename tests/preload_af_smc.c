// SPDX-License-Identifier: MIT
/*
 * A program written for Linux's SMC: its client socket is
 * socket(AF_SMC, SOCK_STREAM, SMCPROTO_SMC) toward 127.0.0.1 and
 * SMCPROTO_SMC6 toward ::1; its server is an ordinary TCP one.  It knows
 * nothing of usmc.
 *
 *   preload_af_smc --expect shm     under usmc-run: both connections move
 *                                   their bytes in shared memory
 *   preload_af_smc --expect kernel  without it: AF_SMC is the kernel's, a
 *                                   working SMC socket or EAFNOSUPPORT
 *
 * Each connection carries 4 MiB from the client, checked by the server's
 * checksum, which comes back.  Shared memory is proven as in
 * preload_calls: the client's TCP connection (TCP_INFO) carried less than
 * an eighth of the bytes.
 */
#include <arpa/inet.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "plain.h"

#ifndef AF_SMC
#define AF_SMC 43
#endif
#define SMCPROTO_SMC 0
#define SMCPROTO_SMC6 1
#define BYTES (4 << 20)

static void fill(uint8_t *buf, size_t len, size_t off)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = (uint8_t)((off + i) * 7 + ((off + i) >> 10));
}

/* Reads the stream to EOF, answers its checksum. */
static void serve(int lfd)
{
	uint8_t buf[65536];
	uint64_t h = FNV_INIT;
	size_t total = 0;
	ssize_t n;
	int fd = accept(lfd, NULL, NULL);

	CHECK(fd >= 0);
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		h = fnv(h, buf, (size_t)n);
		total += (size_t)n;
	}
	CHECK(n == 0 && total == BYTES);
	CHECK(write(fd, &h, sizeof(h)) == sizeof(h));
	close(fd);
}

static void client(int proto, int family, uint16_t port)
{
	static uint8_t buf[65536];
	struct sockaddr_storage ss;
	socklen_t len = loopback_addr(family, port, &ss);
	struct tcp_info ti;
	socklen_t tlen = sizeof(ti);
	uint64_t h = FNV_INIT, answer, on_tcp;
	int fd = socket(AF_SMC, SOCK_STREAM, proto);

	CHECK(fd >= 0);
	CHECK(connect(fd, (struct sockaddr *)&ss, len) == 0);
	for (size_t off = 0; off < BYTES; off += sizeof(buf)) {
		fill(buf, sizeof(buf), off);
		h = fnv(h, buf, sizeof(buf));
		for (size_t done = 0; done < sizeof(buf);) {
			ssize_t w = write(fd, buf + done, sizeof(buf) - done);

			CHECK(w > 0);
			done += (size_t)w;
		}
	}
	CHECK(shutdown(fd, SHUT_WR) == 0);
	CHECK(read(fd, &answer, sizeof(answer)) == sizeof(answer));
	CHECK(answer == h);
	CHECK(getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &tlen) == 0);
	on_tcp = ti.tcpi_bytes_acked + ti.tcpi_bytes_received;
	printf("AF_SMC %s: %d bytes, checksum ok, %llu bytes over TCP\n",
	       proto == SMCPROTO_SMC6 ? "SMCPROTO_SMC6" : "SMCPROTO_SMC", BYTES,
	       (unsigned long long)on_tcp);
	CHECK(on_tcp < BYTES / 8);
	close(fd);
}

/* One connection of an AF_SMC client to a TCP server of the family. */
static void one(int proto, int family)
{
	struct sockaddr_storage ss;
	socklen_t len = loopback_addr(family, 0, &ss);
	int lfd = socket(family, SOCK_STREAM, 0), status;
	uint16_t port;
	pid_t pid;

	CHECK(lfd >= 0 && bind(lfd, (struct sockaddr *)&ss, len) == 0 && listen(lfd, 8) == 0);
	len = sizeof(ss);
	CHECK(getsockname(lfd, (struct sockaddr *)&ss, &len) == 0);
	port = ntohs(family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
					: ((struct sockaddr_in *)&ss)->sin_port);
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		close(lfd);
		client(proto, family, port);
		exit(0);
	}
	serve(lfd);
	close(lfd);
	CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

int main(int argc, char **argv)
{
	int fd;

	if (argc != 3 || strcmp(argv[1], "--expect") ||
	    (strcmp(argv[2], "shm") && strcmp(argv[2], "kernel"))) {
		fprintf(stderr, "usage: preload_af_smc --expect shm|kernel\n");
		return 2;
	}
	alarm(60); /* safety net only */
	if (!strcmp(argv[2], "kernel")) {
		fd = socket(AF_SMC, SOCK_STREAM, SMCPROTO_SMC);
		printf("the kernel's AF_SMC: %s\n", fd >= 0 ? "a socket" : strerror(errno));
		CHECK(fd >= 0 || errno == EAFNOSUPPORT);
		return 0;
	}
	/* What is not an SMC stream socket stays the kernel's business. */
	fd = socket(AF_SMC, SOCK_STREAM, 7);
	CHECK(fd < 0);
	one(SMCPROTO_SMC, AF_INET);
	one(SMCPROTO_SMC6, AF_INET6);
	return 0;
}
