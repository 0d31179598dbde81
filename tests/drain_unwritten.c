// SPDX-License-Identifier: MIT
/*
 * A doorbell counted but not yet written never holds up its reader.
 *
 * A writer counts each doorbell in its CDC area before it writes the
 * byte (usmc_wake.c), so a reader may find a bell owed whose byte is not
 * in its TCP socket yet: the writer lost its CPU between the two, or was
 * stopped there.  The reader's drain must take what is there and go on,
 * never wait in the TCP socket for that byte.
 *
 * The test makes that moment last: it traces the client and holds it at
 * the entry of the send() of the doorbell its first data rings (a ptrace
 * syscall-entry stop), with the data in its ring and the bell counted.
 * The server then reads, and must get the data at once (within 10 s, a
 * bound no healthy read comes near); then the client goes on, and the
 * server's reply and the end of the connection follow.  Every transfer
 * is checked by length and checksum.
 */
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#define LEN 64

static struct h_chan port_chan, ready_chan, go_chan, read_chan;

static int server(void *arg)
{
	uint8_t buf[LEN], want[LEN];
	uint16_t port;
	int lfd = h_listen(AF_INET, H_USMC, &port), fd;
	uint64_t sum;

	(void)arg;
	h_chan_send(&port_chan, port);
	fd = usmc_accept(lfd, NULL, NULL);
	CHECK(fd >= 0);
	/* Its first use answers the Proposal; a byte settles the client's side. */
	h_write_all(fd, "h", 1);
	h_check_mode(fd, USMC_MODE_SMCD);
	(void)h_chan_recv(&go_chan);
	h_read_all(fd, buf, sizeof(buf));
	h_pattern(want, sizeof(want), port, 0);
	CHECK(h_fnv(H_FNV_INIT, buf, sizeof(buf)) == h_fnv(H_FNV_INIT, want, sizeof(want)));
	h_chan_send(&read_chan, 1);
	sum = h_fnv(H_FNV_INIT, buf, sizeof(buf));
	h_write_all(fd, &sum, sizeof(sum));
	CHECK(usmc_read(fd, buf, 1) == 0);
	CHECK(usmc_close(fd) == 0);
	CHECK(usmc_close(lfd) == 0);
	return 0;
}

static int client(void *arg)
{
	uint16_t port = (uint16_t)(uintptr_t)arg;
	uint8_t buf[LEN];
	uint64_t sum;
	int fd = h_connect(AF_INET, H_USMC, port);

	/* Settled in shared memory before the tracer looks for the doorbell. */
	h_read_all(fd, buf, 1);
	CHECK(buf[0] == 'h');
	h_check_mode(fd, USMC_MODE_SMCD);
	h_chan_send(&ready_chan, (uint64_t)fd);
	CHECK(ptrace(PTRACE_TRACEME, 0, NULL, NULL) == 0);
	CHECK(raise(SIGSTOP) == 0);
	h_pattern(buf, sizeof(buf), port, 0);
	h_write_all(fd, buf, sizeof(buf));
	h_read_all(fd, &sum, sizeof(sum));
	CHECK(sum == h_fnv(H_FNV_INIT, buf, sizeof(buf)));
	CHECK(usmc_close(fd) == 0);
	return 0;
}

static int doorbell_fd;

/*
 * The entry of the client's send() (or, under a seccomp filter, write())
 * of one byte to its socket: a doorbell.
 */
static bool at_doorbell(const struct __ptrace_syscall_info *info, pid_t pid)
{
	(void)pid;
	return info->op == PTRACE_SYSCALL_INFO_ENTRY &&
	       (info->entry.nr == SYS_write || info->entry.nr == SYS_sendto) &&
	       info->entry.args[0] == (uint64_t)doorbell_fd && info->entry.args[2] == 1;
}

int main(void)
{
	char dir[] = "/tmp/usmc-drain-unwritten-XXXXXX";
	struct pollfd p;
	pid_t srv, cli;
	uint16_t port;
	int status;

	CHECK(mkdtemp(dir));
	setenv("USMC_REGISTRY_DIR", dir, 1);
	h_chan_open(&port_chan);
	h_chan_open(&ready_chan);
	h_chan_open(&go_chan);
	h_chan_open(&read_chan);
	srv = h_fork(server, NULL);
	port = (uint16_t)h_chan_recv(&port_chan);
	cli = h_fork(client, (void *)(uintptr_t)port);
	doorbell_fd = (int)h_chan_recv(&ready_chan);
	h_trace_until(cli, at_doorbell);
	h_chan_send(&go_chan, 1);
	p = (struct pollfd){ .fd = read_chan.rd, .events = POLLIN };
	if (poll(&p, 1, 10000) != 1) {
		fprintf(stderr, "the server's read waited for a doorbell its writer had not written\n");
		kill(srv, SIGKILL);
		kill(cli, SIGKILL);
		return 1;
	}
	(void)h_chan_recv(&read_chan);
	CHECK(ptrace(PTRACE_DETACH, cli, NULL, NULL) == 0);
	CHECK(waitpid(cli, &status, 0) == cli && WIFEXITED(status) && WEXITSTATUS(status) == 0);
	CHECK(h_wait_ok(srv));
	printf("the server read its data while the client's doorbell was counted, not written\n");
	return 0;
}
