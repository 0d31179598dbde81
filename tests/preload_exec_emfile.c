// SPDX-License-Identifier: MIT
/*
 * An ordinary TCP program that runs out of descriptors with a connection
 * in shared memory, and then tries to exec with it.  It knows nothing of
 * usmc; run it under usmc-run.
 *
 * At EMFILE, socket() gets the descriptors usmc's segments kept only for
 * later, so it succeeds.  Without them the link group cannot be handed
 * over: an exec that would carry the connection fails with EMFILE (as
 * execve may), and the connection goes on as before, rather than reach
 * the new image broken.  Every block is checked by length and checksum,
 * and TCP carried less than an eighth of the bytes.
 */
#include <linux/tcp.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include "plain.h"

#define BLOCK (256 << 10)

static uint8_t buf[BLOCK];

static void fill(uint8_t *p, size_t len, uint64_t seed)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)((i * 0x9e3779b97f4a7c15ull + seed * 0x100000001b3ull) >> 29);
}

static void read_all(int fd, void *p, size_t len)
{
	for (size_t off = 0; off < len;) {
		ssize_t n = read(fd, (uint8_t *)p + off, len - off);

		CHECK(n > 0);
		off += (size_t)n;
	}
}

/* The server answers each block with its checksum, until end of file. */
static void serve(int lfd)
{
	int fd = accept(lfd, NULL, NULL);
	uint64_t sum;

	CHECK(fd >= 0);
	for (;;) {
		ssize_t n = read(fd, buf, 1);

		if (n == 0)
			break;
		CHECK(n == 1);
		read_all(fd, buf + 1, BLOCK - 1);
		sum = fnv(FNV_INIT, buf, BLOCK);
		write_all(fd, &sum, sizeof(sum));
	}
	CHECK(close(fd) == 0);
}

static void round_trip(int fd, uint64_t seed)
{
	uint64_t sum;

	fill(buf, BLOCK, seed);
	write_all(fd, buf, BLOCK);
	read_all(fd, &sum, sizeof(sum));
	CHECK(sum == fnv(FNV_INIT, buf, BLOCK));
}

int main(void)
{
	struct sockaddr_storage ss;
	socklen_t len = loopback_addr(AF_INET, 0, &ss);
	int fd, extra, dups = 0, status, port[2];
	struct tcp_info ti;
	struct rlimit rl;
	pid_t srv, child;

	CHECK(pipe(port) == 0);
	srv = fork();
	CHECK(srv >= 0);
	/* The listener the server's alone: one shared with a fork stays TCP. */
	if (srv == 0) {
		int lfd = socket(AF_INET, SOCK_STREAM, 0);

		CHECK(lfd >= 0 && bind(lfd, (struct sockaddr *)&ss, len) == 0);
		CHECK(listen(lfd, 4) == 0 && getsockname(lfd, (struct sockaddr *)&ss, &len) == 0);
		CHECK(write(port[1], &ss, sizeof(ss)) == (ssize_t)sizeof(ss));
		serve(lfd);
		_exit(0);
	}
	CHECK(read(port[0], &ss, sizeof(ss)) == (ssize_t)sizeof(ss));
	CHECK(close(port[0]) == 0 && close(port[1]) == 0);
	/*
	 * A limit of 64 from the start, as a program sets it: usmc's own
	 * descriptors are among the program's numbers then (they go above
	 * half the limit only where that leaves 64 or more below).
	 */
	CHECK(getrlimit(RLIMIT_NOFILE, &rl) == 0);
	rl.rlim_cur = 64;
	CHECK(setrlimit(RLIMIT_NOFILE, &rl) == 0);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	CHECK(fd >= 0 && connect(fd, (struct sockaddr *)&ss, len) == 0);
	round_trip(fd, 1);

	/* The table full, then one socket() more: usmc's segments give theirs. */
	while ((extra = dup(0)) >= 0)
		dups++;
	CHECK(errno == EMFILE);
	extra = socket(AF_INET, SOCK_STREAM, 0);
	printf("table full after %d dups: socket() = %d%s\n", dups, extra,
	       extra < 0 ? " (EMFILE)" : "");
	CHECK(extra >= 0 && close(extra) == 0);

	child = fork();
	CHECK(child >= 0);
	if (child == 0) {
		execl("/bin/false", "false", (char *)NULL);
		_exit(errno == EMFILE ? 0 : 2);
	}
	CHECK(waitpid(child, &status, 0) == child && WIFEXITED(status));
	printf("exec with the connection: %s\n",
	       WEXITSTATUS(status) == 0 ? "EMFILE" : "ran, or failed otherwise");
	CHECK(WEXITSTATUS(status) == 0);

	round_trip(fd, 2);
	len = sizeof(ti);
	CHECK(getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) == 0);
	printf("%d bytes checked, %llu went over TCP\n", 2 * BLOCK,
	       (unsigned long long)(ti.tcpi_bytes_acked + ti.tcpi_bytes_received));
	CHECK(ti.tcpi_bytes_acked + ti.tcpi_bytes_received < 2 * BLOCK / 8);
	CHECK(close(fd) == 0);
	CHECK(waitpid(srv, &status, 0) == srv && WIFEXITED(status) && WEXITSTATUS(status) == 0);
	return 0;
}
