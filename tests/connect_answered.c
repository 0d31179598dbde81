// SPDX-License-Identifier: MIT
/*
 * A server that answers while its client is still inside connect().
 *
 * On a busy machine, or a single CPU, the three-way handshake wakes the
 * server and it takes the client's CPU before connect() returns: it
 * accepts, and its first use of the connection sends the Accept.  The
 * client then waits for nothing: it looks at the channel before its
 * connect() returns, so the server rings no doorbell for the Accept.
 *
 * The test makes that order certain: it traces the client and holds it
 * at the return of its TCP connect() (a ptrace syscall-exit stop) until
 * the server has accepted and used the connection.  Then the client
 * writes a request and reads the reply in a blocking read.  Its TCP
 * socket must have received two bytes at most, as the kernel counts them
 * (tcpi_bytes_received): the reply's doorbell, unless the client's spin
 * found the reply before it slept, and the server's FIN; no doorbell for
 * the Accept.  Then the same client waits in epoll
 * for a server that speaks first, a while after its Accept: it settled
 * its handshake inside connect(), so no wait of its ends at a timer's
 * look for an answer that came long before (the counters'
 * handshake_timer_wakeups stay 0).  Each with a server of one process,
 * and with a worker forked after listen() accepting (a shared listener,
 * whose client proposes on a channel of its own).  Every transfer is
 * checked by length and checksum.
 */
#include <linux/tcp.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "counters.h"
#include "harness.h"

#define REQ_LEN 64
#define REPLY_LEN 4096
#define CLC_TIMEOUT_MS 1000
#define CLC_TIMEOUT_TEXT "1000"
/* The server that speaks first does so after a timer's look would have come. */
#define SILENCE_US (CLC_TIMEOUT_MS * 1000 / 4 * 3 / 2)

static struct h_chan port_chan, ready_chan, go_chan, used_chan;
static bool shared, speaks_first;

/* Accepts once it is told to, and uses the connection at once (its Proposal answered). */
static void serve(int lfd)
{
	uint8_t req[REQ_LEN], reply[REPLY_LEN];
	struct pollfd p;
	int fd;

	(void)h_chan_recv(&go_chan);
	fd = usmc_accept(lfd, NULL, NULL);
	CHECK(fd >= 0);
	p = (struct pollfd){ .fd = fd, .events = POLLIN };
	CHECK(usmc_poll(&p, 1, 0) >= 0);
	h_check_mode(fd, USMC_MODE_SMCD);
	h_chan_send(&used_chan, 1);
	if (speaks_first) {
		usleep(SILENCE_US);
		h_pattern(req, sizeof(req), 0, 0);
	} else {
		h_read_all(fd, req, sizeof(req));
	}
	h_pattern(reply, sizeof(reply), h_fnv(H_FNV_INIT, req, sizeof(req)), 0);
	h_write_all(fd, reply, sizeof(reply));
	CHECK(usmc_close(fd) == 0);
}

static int worker(void *arg)
{
	int lfd = (int)(intptr_t)arg;
	struct pollfd p = { .fd = lfd, .events = POLLIN };

	/* A worker's first wait on the listener it inherited marks it shared. */
	CHECK(usmc_poll(&p, 1, 0) >= 0);
	h_chan_send(&ready_chan, 0);
	serve(lfd);
	return 0;
}

static int server(void *arg)
{
	uint16_t port;
	int lfd = h_listen(AF_INET, H_USMC, &port);
	pid_t w;

	(void)arg;
	if (!shared) {
		h_chan_send(&port_chan, port);
		serve(lfd);
	} else {
		w = h_fork(worker, (void *)(intptr_t)lfd);
		(void)h_chan_recv(&ready_chan);
		h_chan_send(&port_chan, port);
		CHECK(h_wait_ok(w));
	}
	CHECK(usmc_close(lfd) == 0);
	return 0;
}

static int client(void *arg)
{
	uint16_t port = (uint16_t)(uintptr_t)arg;
	uint8_t req[REQ_LEN], reply[REPLY_LEN], want[REPLY_LEN];
	struct pollfd fin;
	struct tcp_info ti;
	socklen_t len = sizeof(ti);
	int fd;

	CHECK(ptrace(PTRACE_TRACEME, 0, NULL, NULL) == 0);
	CHECK(raise(SIGSTOP) == 0);
	fd = h_connect(AF_INET, H_USMC, port);
	if (speaks_first) {
		int ep = epoll_create1(EPOLL_CLOEXEC);
		struct epoll_event ev = { .events = EPOLLIN }, got;

		h_pattern(req, sizeof(req), 0, 0);
		CHECK(ep >= 0 && usmc_epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) == 0);
		CHECK(usmc_epoll_wait(ep, &got, 1, -1) == 1);
		close(ep);
	} else {
		h_pattern(req, sizeof(req), port, 0);
		h_write_all(fd, req, sizeof(req));
	}
	h_read_all(fd, reply, sizeof(reply));
	h_pattern(want, sizeof(want), h_fnv(H_FNV_INIT, req, sizeof(req)), 0);
	CHECK(h_fnv(H_FNV_INIT, reply, sizeof(reply)) == h_fnv(H_FNV_INIT, want, sizeof(want)));
	h_check_mode(fd, USMC_MODE_SMCD);
	CHECK(usmc_read(fd, reply, 1) == 0);
	/* The kernel's own poll: its FIN is in, which usmc's end of file may precede. */
	fin = (struct pollfd){ .fd = fd, .events = POLLRDHUP };
	CHECK(poll(&fin, 1, 10000) == 1 && (fin.revents & POLLRDHUP));
	CHECK(usmc_getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) == 0);
	if (ti.tcpi_bytes_received < 1 || ti.tcpi_bytes_received > 2)
		fprintf(stderr, "%llu bytes on TCP, where the reply's doorbell and the FIN are 2\n",
			(unsigned long long)ti.tcpi_bytes_received);
	CHECK(ti.tcpi_bytes_received >= 1 && ti.tcpi_bytes_received <= 2);
	CHECK(usmc_close(fd) == 0);
	return 0;
}

/* The family of the address a connect() the tracee entered names. */
static int connect_family(pid_t pid, uint64_t addr)
{
	long word;

	errno = 0;
	word = ptrace(PTRACE_PEEKDATA, pid, (void *)(uintptr_t)addr, NULL);
	CHECK(errno == 0);
	return (int)(sa_family_t)word;
}

/*
 * The exit of the client's connect() of an AF_INET address: its TCP
 * connect() returned, in the kernel, and the client has yet to run on.
 */
static bool tcp_connect_returned(const struct __ptrace_syscall_info *info, pid_t pid)
{
	static bool entered;

	if (info->op == PTRACE_SYSCALL_INFO_ENTRY) {
		entered = info->entry.nr == SYS_connect &&
			  connect_family(pid, info->entry.args[1]) == AF_INET;
		return false;
	}
	if (info->op != PTRACE_SYSCALL_INFO_EXIT || !entered)
		return false;
	CHECK(info->exit.rval == 0);
	return true;
}

static void run(bool shared_listener, bool server_first)
{
	pid_t srv, cli;
	uint16_t port;
	int status;

	shared = shared_listener;
	speaks_first = server_first;
	h_chan_open(&port_chan);
	h_chan_open(&ready_chan);
	h_chan_open(&go_chan);
	h_chan_open(&used_chan);
	srv = h_fork(server, NULL);
	port = (uint16_t)h_chan_recv(&port_chan);
	cli = h_fork(client, (void *)(uintptr_t)port);
	h_trace_until(cli, tcp_connect_returned);
	h_chan_send(&go_chan, 1);
	(void)h_chan_recv(&used_chan);
	CHECK(ptrace(PTRACE_DETACH, cli, NULL, NULL) == 0);
	CHECK(waitpid(cli, &status, 0) == cli && WIFEXITED(status) && WEXITSTATUS(status) == 0);
	CHECK(h_wait_ok(srv));
	CHECK(counter(USMC_STAT_HS_TIMER_WAKEUPS) == 0);
	printf("%s, %s: answered inside connect(), no doorbell for the Accept, no timer's look\n",
	       shared ? "shared listener" : "one process",
	       speaks_first ? "server speaks first" : "request and reply");
}

int main(void)
{
	char dir[] = "/tmp/usmc-connect-answered-XXXXXX";

	CHECK(mkdtemp(dir));
	setenv("USMC_REGISTRY_DIR", dir, 1);
	/* A timer's look comes a quarter of it after the wait began. */
	setenv("USMC_CLC_TIMEOUT_MS", CLC_TIMEOUT_TEXT, 1);
	for (int first = 0; first < 2; first++) {
		run(false, first);
		run(true, first);
	}
	return 0;
}
