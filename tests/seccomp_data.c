// SPDX-License-Identifier: MIT
/*
 * The data path under a seccomp filter like OpenSSH's pre-auth sandbox
 * (sandbox-seccomp-filter.c, 9.2): read, write, poll-style calls, futex,
 * memory and clocks are allowed, open and stat are refused with EACCES,
 * and any other call (send, recv, fcntl, getsockopt...) kills the process
 * (here: SIGSYS, after the call's number is written to stderr).
 *
 * The server forks a child that inherits the accepted socket, non-blocking,
 * installs the filter and echoes what the client sends, waiting with
 * usmc_poll before each read and write, as sshd's child does with ppoll.
 * Its first read finds nothing: EAGAIN, asked without fcntl.
 * The client checks every byte; the child must exit 0, not die of SIGSYS.
 * The client's first byte is urgent (MSG_OOB): the child's read passes
 * it, which must not take TCP's urgent byte (recv) there.
 * Then the client lets the echo lag: a ring whose reader lags grows,
 * which needs a call (fallocate) such a filter kills for, and must not
 * grow there.  At the end it stops reading until the child's ring is
 * full: a write that finds it full asks whether the socket blocks, and
 * must not ask the kernel (fcntl) there.  Last, a byte written to the
 * kernel socket behind usmc's back makes the child abort the connection,
 * which must not set SO_LINGER (setsockopt) there.
 *
 * With --no-fork, as a program linked with usmc may do: the process that
 * accepted and read (usmc looked, and found no filter) installs the
 * filter itself and tells usmc (usmc_seccomp_installed), then echoes.
 */
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "sandbox.h"
#include "usmc_config.h"

#define TOTAL (1u << 20)
#define CHUNK 3000
/*
 * Then the client lets the child's echo lag: a first part echoed whole,
 * half of it read, then the second part echoed whole.  The child's ring,
 * of FIRST_RING, does not fill, but its reader lags by more than half of
 * it, and a ring whose reader lags grows.  Last, FULL bytes, more than
 * the ring holds, echoed while the client reads nothing until it is full.
 */
#define FIRST_RING USMC_BUFSIZE_DEFAULT
#define BURST1 (FIRST_RING / 2)
#define BURST2 (FIRST_RING / 8 * 5)
#define BURST (BURST1 + BURST2)
_Static_assert(BURST - BURST1 / 2 < FIRST_RING, "the child's ring does not fill");
#define FULL (FIRST_RING + FIRST_RING / 2)
#define ALL (TOTAL + BURST + FULL)

/* The child tells the client to begin. */
static struct h_chan go;

static void wait_for(int fd, short events)
{
	struct pollfd p = { .fd = fd, .events = events };

	CHECK(usmc_poll(&p, 1, 10000) == 1 && (p.revents & events));
}

/*
 * The sandboxed child, its socket non-blocking as sshd's: finds nothing to
 * read yet, tells the client to begin, echoes ALL bytes, and exits.
 */
static void echo(int fd, bool tell)
{
	static uint8_t buf[CHUNK];

	ssh_sandbox();
	if (tell)
		usmc_seccomp_installed();
	CHECK(usmc_read(fd, buf, sizeof(buf)) == -1 && errno == EAGAIN);
	h_chan_send(&go, 1);
	for (size_t done = 0; done < ALL;) {
		ssize_t n, w;

		wait_for(fd, POLLIN);
		n = usmc_read(fd, buf, sizeof(buf));
		if (n < 0 && errno == EAGAIN)
			continue;
		CHECK(n > 0);
		for (ssize_t off = 0; off < n; off += w) {
			wait_for(fd, POLLOUT);
			w = usmc_write(fd, buf + off, (size_t)(n - off));
			if (w < 0 && errno == EAGAIN)
				w = 0;
			CHECK(w >= 0);
		}
		done += (size_t)n;
	}
	/* A byte that reached the TCP socket outside usmc: the connection aborts, as a reset. */
	wait_for(fd, POLLIN);
	CHECK(usmc_read(fd, buf, sizeof(buf)) == -1 && errno == ECONNRESET);
	_exit(0);
}

/* Waits until n bytes wait to be read: the child has echoed them. */
static void wait_echoed(int fd, int n)
{
	for (int i = 0, avail = 0; avail < n; i++) {
		CHECK(i < 100000 && usmc_ioctl(fd, FIONREAD, &avail) == 0);
		usleep(100);
	}
}

static int client(void *arg)
{
	uint16_t port = *(uint16_t *)arg;
	int fd = h_connect(AF_INET, H_USMC, port);
	static uint8_t out[ALL], in[ALL];

	h_pattern(out, ALL, 5, 0);
	h_chan_recv(&go);
	/* Out of band, so never echoed. */
	CHECK(usmc_send(fd, "!", 1, MSG_OOB) == 1);
	/* Writes and reads in turn, a chunk ahead, so that neither side's ring fills. */
	for (size_t sent = 0, got = 0; got < TOTAL;) {
		if (sent < TOTAL && sent - got < 4 * CHUNK) {
			size_t n = TOTAL - sent < CHUNK ? TOTAL - sent : CHUNK;

			h_write_all(fd, out + sent, n);
			sent += n;
			continue;
		}
		ssize_t n = usmc_read(fd, in + got, TOTAL - got);

		CHECK(n > 0);
		got += (size_t)n;
	}
	/* The burst: a lag that would grow the ring (a charge, fallocate) in the child. */
	h_write_all(fd, out + TOTAL, BURST1);
	wait_echoed(fd, BURST1);
	h_read_all(fd, in + TOTAL, BURST1 / 2);
	h_write_all(fd, out + TOTAL + BURST1, BURST2);
	wait_echoed(fd, BURST - BURST1 / 2);
	h_read_all(fd, in + TOTAL + BURST1 / 2, BURST - BURST1 / 2);
	/* The child's ring full, with more to write: a write there found it full. */
	h_write_all(fd, out + TOTAL + BURST, FULL);
	wait_echoed(fd, FIRST_RING);
	h_read_all(fd, in + TOTAL + BURST, FULL);
	CHECK(!memcmp(in, out, ALL));
	h_check_mode(fd, USMC_MODE_SMCD);
	/* Written to the kernel socket, not through usmc: the child must abort, and not die of it. */
	CHECK(write(fd, "x", 1) == 1);
	CHECK(usmc_close(fd) == 0);
	return 0;
}

/* Accepts the client's connection, and reads once: usmc looks at the process. */
static int accept_looked(int lfd)
{
	int fd = usmc_accept(lfd, NULL, NULL);

	CHECK(fd >= 0);
	h_check_mode(fd, USMC_MODE_SMCD);
	CHECK(usmc_fcntl(fd, F_SETFL, O_NONBLOCK) == 0);
	CHECK(usmc_read(fd, &(char){ 0 }, 1) == -1 && errno == EAGAIN);
	return fd;
}

int main(int argc, char **argv)
{
	bool no_fork = argc > 1 && !strcmp(argv[1], "--no-fork");
	uint16_t port;
	int lfd = h_listen(AF_INET, H_USMC, &port), fd = -1, status;
	pid_t cli, child;

	h_chan_open(&go);
	cli = h_fork(client, &port);
	/*
	 * A read that finds nothing before the fork: usmc has looked at this
	 * process and found no filter, which its child, filtered after the
	 * fork, must not take for its own.  Without the fork, the server is
	 * a child of the test that looks, then installs the filter itself.
	 */
	if (!no_fork)
		fd = accept_looked(lfd);
	child = fork();
	CHECK(child >= 0);
	if (child == 0 && no_fork)
		echo(accept_looked(lfd), true);
	if (child == 0)
		echo(fd, false);
	CHECK(waitpid(child, &status, 0) == child);
	if (WIFSIGNALED(status))
		fprintf(stderr, "the sandboxed child died of signal %d\n", WTERMSIG(status));
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	CHECK(h_wait_ok(cli));
	CHECK(no_fork || usmc_close(fd) == 0);
	printf("%u bytes echoed both ways under a seccomp filter, by a %s, its ring full once, "
	       "then an abort\n",
	       ALL, no_fork ? "process that installed it after usmc looked" : "forked child");
	return 0;
}
