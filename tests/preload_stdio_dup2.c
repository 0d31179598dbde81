// SPDX-License-Identifier: MIT
/*
 * A stream glibc made on a descriptor before dup2 put a connection under
 * its number: glibc reads and writes it with its own internal calls.
 *
 *   preload_stdio_dup2 --expect shm   under usmc-run
 *   preload_stdio_dup2 --expect tcp   without it
 *
 * Connection A is put under the stream before its first use: under
 * usmc-run it is declined, TCP from its start, and the stream reads the
 * client's line and writes the reply as on TCP.  Connection B is used
 * first (a read), so it is in shared memory: the stream refuses to read
 * (NULL, EBADF, its error flag set) where TCP gives the line, and every
 * byte is still read, in order, through the descriptor (on TCP, through
 * the stream, which read ahead).  fclose of each
 * stream closes its connection as close() does: the client reads EOF, and
 * the next file opened under the number is a file.
 *
 * The kernel says which way the bytes went: TCP_INFO's bytes received on
 * the server's socket (A: the whole line; B under usmc-run: less than an
 * eighth of the bulk).  Each transfer is checked by length and checksum.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "plain.h"

#define BULK (1 << 20)

static bool shm;

static void fill(uint8_t *buf, size_t len, size_t off)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = (uint8_t)((off + i) * 13 + ((off + i) >> 9));
}

static uint64_t bytes_received(int fd)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);

	CHECK(getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) == 0);
	return ti.tcpi_bytes_received;
}

static size_t read_full(int fd, void *buf, size_t len)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = read(fd, (char *)buf + done, len - done);

		CHECK(n >= 0);
		if (!n)
			break;
		done += (size_t)n;
	}
	return done;
}

/* A stream on a file, under a descriptor above 2, for a socket to go under. */
static FILE *stream_first(int *fd)
{
	FILE *f;

	*fd = open("/dev/null", O_RDWR);
	CHECK(*fd > 2);
	f = fdopen(*fd, "r+");
	CHECK(f != NULL);
	return f;
}

static void client(uint16_t port)
{
	static uint8_t bulk[BULK];
	struct sockaddr_storage ss;
	socklen_t len = loopback_addr(AF_INET, port, &ss);
	char reply[64];
	uint64_t h = FNV_INIT, answer;
	int a = socket(AF_INET, SOCK_STREAM, 0), b = socket(AF_INET, SOCK_STREAM, 0);

	CHECK(a >= 0 && b >= 0);
	CHECK(connect(a, (struct sockaddr *)&ss, len) == 0);
	write_all(a, "line A\n", 7);
	CHECK(read_full(a, reply, sizeof(reply)) == 8 && !memcmp(reply, "reply A\n", 8));
	close(a);

	CHECK(connect(b, (struct sockaddr *)&ss, len) == 0);
	fill(bulk, sizeof(bulk), 0);
	h = fnv(fnv(h, "line B\n", 7), bulk, sizeof(bulk));
	write_all(b, "hello\nline B\n", 13);
	write_all(b, bulk, sizeof(bulk));
	CHECK(read_full(b, &answer, sizeof(answer)) == sizeof(answer));
	CHECK(answer == h);
	CHECK(read_full(b, reply, sizeof(reply)) == 0);
	close(b);
}

static void server(int lfd)
{
	static uint8_t buf[BULK + 64];
	char line[64];
	uint64_t h = FNV_INIT, got;
	size_t n, skip = 0;
	int a, b, fd;
	FILE *f;
	char *r;

	/* A: under the stream before its first use. */
	a = accept(lfd, NULL, NULL);
	CHECK(a >= 0);
	f = stream_first(&fd);
	CHECK(dup2(a, fd) == fd);
	close(a);
	CHECK(fgets(line, sizeof(line), f) && !strcmp(line, "line A\n"));
	CHECK(fputs("reply A\n", f) >= 0 && fflush(f) == 0);
	got = bytes_received(fd);
	printf("A: the stream read the line and wrote the reply; %llu bytes over TCP\n",
	       (unsigned long long)got);
	CHECK(got >= 7);
	CHECK(fclose(f) == 0);

	/* B: used first, then under the stream (made first: the lower number). */
	f = stream_first(&fd);
	b = accept(lfd, NULL, NULL);
	CHECK(b > fd);
	CHECK(read_full(b, line, 6) == 6 && !memcmp(line, "hello\n", 6));
	CHECK(dup2(b, fd) == fd);
	close(b);
	/* A stream that read the kernel socket would find nothing there: fail, not hang. */
	CHECK(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &(struct timeval){ .tv_sec = 2 },
			 sizeof(struct timeval)) == 0);
	errno = 0;
	r = fgets(line, sizeof(line), f);
	if (shm) {
		printf("B: the stream refused: %s, error flag %d\n", strerror(errno), ferror(f));
		CHECK(!r && errno == EBADF && ferror(f));
	} else {
		CHECK(r && !strcmp(line, "line B\n"));
		printf("B: the stream read the line\n");
		h = fnv(h, line, 7);
		skip = 7;
	}
	/*
	 * Every byte, in order: through the descriptor where the stream
	 * refused, through the stream (which holds what it read ahead) on TCP.
	 */
	n = shm ? read_full(fd, buf, BULK + 7) : fread(buf, 1, BULK, f);
	CHECK(n == BULK + 7 - skip);
	h = fnv(h, buf, n);
	got = bytes_received(fd);
	printf("B: %zu bytes through the %s, checksum sent; %s over TCP\n", n,
	       shm ? "descriptor" : "stream", got < BULK / 8 ? "less than an eighth" : "all");
	CHECK(shm ? got < BULK / 8 : got >= BULK);
	write_all(fd, &h, sizeof(h));
	CHECK(fclose(f) == 0 || shm);
	/* The number is free, and a file under it is a file: nothing of the socket stayed. */
	n = (size_t)open("/dev/zero", O_RDONLY);
	CHECK((int)n == fd);
	memset(buf, 1, 4);
	CHECK(read(fd, buf, 4) == 4 && !memcmp(buf, "\0\0\0\0", 4));
	close(fd);
	printf("B: fclose closed the connection; the number is a file's again\n");
}

int main(int argc, char **argv)
{
	struct sockaddr_storage ss;
	socklen_t len = loopback_addr(AF_INET, 0, &ss);
	int lfd, status;
	pid_t pid;

	if (argc != 3 || strcmp(argv[1], "--expect") ||
	    (strcmp(argv[2], "shm") && strcmp(argv[2], "tcp"))) {
		fprintf(stderr, "usage: preload_stdio_dup2 --expect shm|tcp\n");
		return 2;
	}
	shm = !strcmp(argv[2], "shm");
	alarm(60); /* safety net only */
	setvbuf(stdout, NULL, _IOLBF, 0);
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	CHECK(lfd >= 0 && bind(lfd, (struct sockaddr *)&ss, len) == 0 && listen(lfd, 8) == 0);
	len = sizeof(ss);
	CHECK(getsockname(lfd, (struct sockaddr *)&ss, &len) == 0);
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		close(lfd);
		client(ntohs(((struct sockaddr_in *)&ss)->sin_port));
		exit(0);
	}
	server(lfd);
	close(lfd);
	CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0);
	return 0;
}
