// SPDX-License-Identifier: MIT
/*
 * sshd's pre-auth child under usmc-run, as OpenSSH makes it: the child
 * of a fork gets the accepted socket, makes it non-blocking (fcntl), uses
 * it, and only then installs its seccomp filter (prctl, sandbox.h), which
 * kills for fcntl.  From then on it waits with poll and moves bytes with
 * read and write.  It knows nothing of usmc.
 *
 * The child reads once before its filter (a time-out: nothing was sent
 * yet), so usmc has looked at this process and found no filter.  Then
 * the client sends more than the child's ring holds and reads nothing
 * until that ring is full: the child's write finds it full, and must
 * answer at once without asking the kernel whether the socket blocks.  The child
 * must exit 0, every byte comes back checked, and the client's TCP
 * socket (TCP_INFO) carried almost none of them: shared memory.
 */
#include <fcntl.h>
#include <linux/tcp.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/time.h>
#include <sys/wait.h>

#include "plain.h"
#include "sandbox.h"

#define RING (64 << 10) /* USMC_BUFSIZE's default */
#define TOTAL (RING + RING / 2)
#define CHUNK 3000

static uint8_t pattern(size_t i)
{
	return (uint8_t)(i * 7 + (i >> 9));
}

static void wait_for(int fd, short events)
{
	struct pollfd p = { .fd = fd, .events = events };

	CHECK(poll(&p, 1, 10000) == 1 && (p.revents & events));
}

/*
 * sshd's child: uses the socket (a read that times out: usmc looks at the
 * process and finds no filter), makes it non-blocking, installs its
 * filter, then finds nothing to read: EAGAIN at once, neither a wait (the
 * alarm would end it) nor a question to the kernel (fcntl: SIGSYS).
 */
static void child(int fd, int go)
{
	struct timeval tv = { .tv_usec = 20000 };
	static uint8_t buf[CHUNK];
	size_t done = 0;

	CHECK(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) == 0);
	CHECK(read(fd, buf, sizeof(buf)) == -1 && errno == EAGAIN);
	tv.tv_usec = 0;
	CHECK(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) == 0);
	CHECK(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) == 0);
	alarm(10);
	ssh_sandbox();
	CHECK(read(fd, buf, sizeof(buf)) == -1 && errno == EAGAIN);
	CHECK(write(go, "", 1) == 1);
	for (;;) {
		ssize_t n, w;

		wait_for(fd, POLLIN);
		n = read(fd, buf, sizeof(buf));
		if (n < 0 && errno == EAGAIN)
			continue;
		CHECK(n >= 0);
		if (n == 0)
			break;
		for (ssize_t off = 0; off < n; off += w) {
			wait_for(fd, POLLOUT);
			w = write(fd, buf + off, (size_t)(n - off));
			if (w < 0 && errno == EAGAIN)
				w = 0;
			CHECK(w >= 0);
		}
		done += (size_t)n;
	}
	CHECK(done == TOTAL);
	_exit(0);
}

static void client(uint16_t port, int go)
{
	static uint8_t out[TOTAL], in[TOTAL];
	struct sockaddr_storage ss;
	socklen_t len = loopback_addr(AF_INET, port, &ss);
	struct tcp_info ti;
	socklen_t tlen = sizeof(ti);
	int fd = socket(AF_INET, SOCK_STREAM, 0), avail = 0;
	char c;

	CHECK(fd >= 0 && connect(fd, (struct sockaddr *)&ss, len) == 0);
	CHECK(read(go, &c, 1) == 1);
	for (size_t i = 0; i < TOTAL; i++)
		out[i] = pattern(i);
	for (size_t off = 0; off < TOTAL;) {
		ssize_t w = write(fd, out + off, TOTAL - off);

		CHECK(w > 0);
		off += (size_t)w;
	}
	/* The child's ring full, with more to write. */
	for (int i = 0; avail < RING; i++) {
		CHECK(i < 100000 && ioctl(fd, FIONREAD, &avail) == 0);
		usleep(100);
	}
	CHECK(shutdown(fd, SHUT_WR) == 0);
	for (size_t off = 0; off < TOTAL;) {
		ssize_t n = read(fd, in + off, TOTAL - off);

		CHECK(n > 0);
		off += (size_t)n;
	}
	CHECK(read(fd, &c, 1) == 0);
	CHECK(!memcmp(in, out, TOTAL));
	CHECK(getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &tlen) == 0);
	printf("client: %d bytes echoed, %llu of them over TCP\n", TOTAL,
	       (unsigned long long)(ti.tcpi_bytes_acked + ti.tcpi_bytes_received));
	CHECK(ti.tcpi_bytes_acked + ti.tcpi_bytes_received < TOTAL / 16);
	close(fd);
}

int main(void)
{
	int lfd, fd, sync[2], go[2], status;
	pid_t cli, kid;
	uint16_t port;

	alarm(60); /* safety net only */
	CHECK(pipe(sync) == 0 && pipe(go) == 0);
	cli = fork();
	CHECK(cli >= 0);
	if (cli == 0) {
		CHECK(read(sync[0], &port, sizeof(port)) == sizeof(port));
		client(port, go[0]);
		return 0;
	}
	lfd = loopback_listen(&port);
	CHECK(write(sync[1], &port, sizeof(port)) == sizeof(port));
	fd = accept(lfd, NULL, NULL);
	CHECK(fd >= 0);
	kid = fork();
	CHECK(kid >= 0);
	if (kid == 0)
		child(fd, go[1]);
	close(fd);
	CHECK(waitpid(kid, &status, 0) == kid);
	if (WIFSIGNALED(status))
		fprintf(stderr, "the sandboxed child died of signal %d\n", WTERMSIG(status));
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	CHECK(waitpid(cli, &status, 0) == cli && WIFEXITED(status) && WEXITSTATUS(status) == 0);
	close(lfd);
	printf("server: a child under a seccomp filter echoed every byte\n");
	return 0;
}
