// SPDX-License-Identifier: MIT
/*
 * usmc-demo: a usmc server and a usmc client, two processes, exchange a
 * greeting and a megabyte each way, and say what usmc_info reports.  Then
 * a plain TCP client calls the same server, which falls back for it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

#define BULK (1 << 20)

static void say(const char *who, int fd)
{
	struct usmc_info in;

	if (usmc_info(fd, &in, sizeof(in)) < 0) {
		printf("  [%s, pid %d] usmc_info: %m\n", who, (int)getpid());
		return;
	}
	printf("  [%s, pid %d] mode %s", who, (int)getpid(), usmc_mode_str(in.mode));
	if (in.mode == USMC_MODE_SMCD)
		printf(": link group %u, own buffer %u KiB, peer's %u KiB, %llu bytes sent and "
		       "%llu received through shared memory\n",
		       in.lgr_id, in.rmb_size >> 10, in.peer_rmb_size >> 10,
		       (unsigned long long)in.bytes_sent, (unsigned long long)in.bytes_received);
	else if (in.mode == USMC_MODE_FALLBACK)
		printf(" (reason 0x%08x: %s%s)\n", in.fallback_reason,
		       usmc_reason_str(in.fallback_reason), in.fallback_by_peer ? ", said the peer" : "");
	else
		printf(" (a plain socket)\n");
	fflush(stdout);
}

/* Greeting, then BULK bytes each way; false on any error. */
static bool converse(const char *who, int fd, bool first)
{
	char line[64], *bulk = calloc(1, BULK);
	bool ok;

	snprintf(line, sizeof(line), "hello from the %s, pid %d", who, (int)getpid());
	ok = bulk && (first ? write_all(fd, line, sizeof(line)) : read_all(fd, line, sizeof(line))) == 0;
	if (ok && !first)
		printf("  [%s, pid %d] got \"%s\"\n", who, (int)getpid(), line);
	ok = ok && (first ? read_all(fd, bulk, BULK) : write_all(fd, bulk, BULK)) == 0;
	ok = ok && (first ? write_all(fd, bulk, BULK) : read_all(fd, bulk, BULK)) == 0;
	free(bulk);
	fflush(stdout);
	return ok;
}

/* The server process: listens, tells the port, answers two clients. */
static int serve(int port_wr)
{
	struct job smc = { .tr = TR_SMC };
	uint16_t port = 0;
	int lfd = bench_listen(&smc, &port);

	if (write(port_wr, &port, sizeof(port)) != sizeof(port) || lfd < 0)
		return 1;
	printf("usmc server listening on 127.0.0.1:%u\n", port);
	fflush(stdout);
	for (int i = 0; i < 2; i++) {
		int fd = usmc_accept(lfd, NULL, NULL);

		if (fd < 0 || !converse("server", fd, false))
			return 1;
		say("server", fd);
		usmc_close(fd);
	}
	usmc_close(lfd);
	return 0;
}

static int call(const struct job *j, uint16_t port, const char *who)
{
	int fd = bench_connect(j, port);
	bool ok = fd >= 0 && converse(who, fd, true);
	char eof;

	/* The server's close: its lines are out, ours follow in order. */
	ok = ok && usmc_read(fd, &eof, 1) == 0;
	if (ok)
		say(who, fd);
	usmc_close(fd);
	return ok ? 0 : 1;
}

int main(void)
{
	struct job smc = { .tr = TR_SMC }, plain = { .tr = TR_FALLBACK_SERVER };
	uint16_t port = 0;
	int pipefd[2], status, rc = 0;
	pid_t server;

	if (pipe(pipefd)) {
		perror("usmc-demo: pipe");
		return 1;
	}
	fflush(stdout);
	server = fork();
	if (server == 0)
		_exit(serve(pipefd[1]));
	if (server < 0 || read(pipefd[0], &port, sizeof(port)) != sizeof(port) || !port) {
		printf("usmc-demo: the server did not start\n");
		return 1;
	}
	printf("a usmc client connects (another process):\n");
	fflush(stdout);
	rc |= call(&smc, port, "usmc client");
	printf("a plain TCP client connects to the same server:\n");
	fflush(stdout);
	rc |= call(&plain, port, "plain client");
	waitpid(server, &status, 0);
	if (rc || !WIFEXITED(status) || WEXITSTATUS(status)) {
		printf("usmc-demo: FAILED\n");
		return 1;
	}
	return 0;
}
