// SPDX-License-Identifier: MIT
/*
 * usmc-stat's command line, as ss users expect it: one line per socket,
 * listeners with -l, filters by mode, port, state and user, details with
 * the rings' cursors, valid JSON, counters reset with their "since", a
 * watch, wrong values refused with status 2, and a socket in another
 * network namespace shown with its own addresses.
 *
 *   stat_cli PATH-TO-usmc-stat
 */
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#define SMC_BYTES 300001u /* wraps and more of a 64 KiB ring */

static const char *stat_tool;
static uint16_t port;
static struct h_chan done, ns_up, ns_done;

/* The command's output and exit status. */
static char *run(const char *args, int *status)
{
	char cmd[512], *out = NULL;
	size_t cap = 0, len = 0, n;
	FILE *p;

	snprintf(cmd, sizeof(cmd), "%s %s 2>&1", stat_tool, args);
	p = popen(cmd, "r");
	CHECK(p);
	do {
		if (len + 4096 > cap)
			CHECK((out = realloc(out, cap = cap * 2 + 8192)));
		n = fread(out + len, 1, cap - len - 1, p);
		len += n;
	} while (n > 0);
	out[len] = 0;
	*status = WEXITSTATUS(pclose(p));
	return out;
}

static int lines(const char *s)
{
	int n = 0;

	for (; *s; s++)
		n += *s == '\n';
	return n;
}

static int smc_client(void *arg)
{
	uint8_t *buf = calloc(1, SMC_BYTES);
	int fd = h_connect(AF_INET, H_USMC, port);

	(void)arg;
	h_write_all(fd, buf, SMC_BYTES);
	h_chan_recv(&done);
	CHECK(usmc_close(fd) == 0);
	free(buf);
	return 0;
}

static int plain_client(void *arg)
{
	int fd = h_connect(AF_INET, H_PLAIN, port);

	(void)arg;
	h_write_all(fd, "x", 1);
	h_chan_recv(&done);
	close(fd);
	return 0;
}

/* In a network namespace of its own: a connected pair, held until told. */
static int netns_pair(void *arg)
{
	int lfd, c, s;
	uint16_t p;

	(void)arg;
	CHECK(unshare(CLONE_NEWNET) == 0);
	CHECK(system("ip link set lo up") == 0);
	lfd = h_listen(AF_INET, H_USMC, &p);
	c = h_connect(AF_INET, H_USMC, p);
	s = usmc_accept(lfd, NULL, NULL);
	CHECK(s >= 0);
	h_write_all(c, "ns", 2);
	h_chan_send(&ns_up, p);
	h_chan_recv(&ns_done);
	return 0;
}

static void check_netns(void)
{
	char args[64], *out;
	uint64_t p;
	int st;
	pid_t pid;

	if (geteuid() != 0) {
		printf("another network namespace: skipped, it needs root to make one\n");
		return;
	}
	h_chan_open(&ns_up);
	h_chan_open(&ns_done);
	pid = h_fork(netns_pair, NULL);
	p = h_chan_recv(&ns_up);
	snprintf(args, sizeof(args), "-p %d --state ESTAB", (int)pid);
	out = run(args, &st);
	printf("%s", out);
	/* Both ends, with the namespace's own addresses, states and mark. */
	CHECK(st == 0 && lines(out) == 3 && strstr(out, "ESTAB") && strstr(out, "netns:"));
	snprintf(args, sizeof(args), "127.0.0.1:%u", (unsigned)p);
	CHECK(strstr(out, args));
	free(out);
	h_chan_send(&ns_done, 1);
	CHECK(h_wait_ok(pid));
}

static void expect_usage(const char *args, const char *says)
{
	int st;
	char *out = run(args, &st);

	if (st != 2 || !strstr(out, says))
		fprintf(stderr, "usmc-stat %s: status %d, said: %s", args, st, out);
	CHECK(st == 2 && strstr(out, says));
	free(out);
}

static char registry[] = "/tmp/usmc-stat-cli-XXXXXX";

int main(int argc, char **argv)
{
	char args[128], want[128], *out;
	pid_t smc_pid, plain_pid;
	int lfd, smc_fd, plain_fd, st;
	uint8_t b;

	CHECK(argc == 2);
	stat_tool = argv[1];
	/* Counters of our own, which --reset below may zero without touching anyone's. */
	CHECK(mkdtemp(registry));
	setenv("USMC_REGISTRY_DIR", registry, 1);
	h_chan_open(&done);
	lfd = h_listen(AF_INET, H_USMC, &port);
	smc_pid = h_fork(smc_client, NULL);
	smc_fd = usmc_accept(lfd, NULL, NULL);
	CHECK(smc_fd >= 0);
	for (size_t got = 0; got < SMC_BYTES; got++)
		h_read_all(smc_fd, &b, 1);
	plain_pid = h_fork(plain_client, NULL);
	plain_fd = usmc_accept(lfd, NULL, NULL);
	h_read_all(plain_fd, &b, 1);

	/* One line per socket: a header, the listener, two connections. */
	snprintf(args, sizeof(args), "-p %d", (int)getpid());
	out = run(args, &st);
	printf("%s", out);
	CHECK(st == 0 && lines(out) == 4);
	CHECK(strstr(out, "0x03010000 peer did not indicate SMC"));
	free(out);
	snprintf(args, sizeof(args), "-p %d -l", (int)getpid());
	out = run(args, &st);
	CHECK(st == 0 && lines(out) == 2 && strstr(out, "LISTEN"));
	free(out);
	snprintf(args, sizeof(args), "-p %d --mode tcp --state established", (int)getpid());
	out = run(args, &st);
	CHECK(st == 0 && lines(out) == 2 && strstr(out, "0x03010000"));
	free(out);
	snprintf(args, sizeof(args), "-p %d --port %u -m smcd --uid %u", (int)getpid(), port,
		 (unsigned)getuid());
	out = run(args, &st);
	CHECK(st == 0 && lines(out) == 2);
	free(out);
	snprintf(args, sizeof(args), "-p %d --uid %u", (int)getpid(), (unsigned)getuid() + 1);
	out = run(args, &st);
	CHECK(st == 0 && lines(out) == 1);
	free(out);
	/* Details: the receive ring's cursor is SMC's wrap:count of the bytes received. */
	snprintf(args, sizeof(args), "-p %d -m smcd -d -W", (int)getpid());
	out = run(args, &st);
	printf("%s", out);
	snprintf(want, sizeof(want), " %u:%u ", SMC_BYTES / (256u << 10), SMC_BYTES % (256u << 10));
	CHECK(st == 0 && strstr(out, "RX CURSOR") && strstr(out, want));
	free(out);
	/* JSON that a JSON reader accepts, with the same sockets. */
	snprintf(args, sizeof(args), "-p %d --json | python3 -c 'import json,sys; "
		 "print(len(json.load(sys.stdin)[\"sockets\"]))'", (int)getpid());
	out = run(args, &st);
	CHECK(st == 0 && atoi(out) == 3);
	free(out);
	/* A watch: two rounds, two headers. */
	snprintf(args, sizeof(args), "-p %d -i 0.05 -c 2 | grep -c '^PID'", (int)getpid());
	out = run(args, &st);
	CHECK(st == 0 && atoi(out) == 2);
	free(out);
	/* Counters: reset, then zero, since now. */
	out = run("-s --reset", &st);
	CHECK(st == 0);
	free(out);
	out = run("-s --json", &st);
	CHECK(st == 0 && strstr(out, "\"smcd_connections\": 0") && strstr(out, "\"seconds\": "));
	free(out);
	expect_usage("--port 70000", "--port: '70000' is out of range (1..65535)");
	expect_usage("--mode rdma", "--mode: 'rdma' is not smcd, tcp, clc or listen");
	expect_usage("--state waiting", "--state: 'waiting' is not a TCP state");
	expect_usage("--reset", "--reset goes with -s");
	expect_usage("--bogus", "unknown option --bogus");
	out = run("--version", &st);
	CHECK(st == 0 && !strncmp(out, "usmc-stat (usmc) ", 17));
	free(out);
	check_netns();

	h_chan_send(&done, 1);
	h_chan_send(&done, 1);
	CHECK(h_wait_ok(smc_pid) && h_wait_ok(plain_pid));
	CHECK(usmc_close(smc_fd) == 0 && close(plain_fd) == 0 && usmc_close(lfd) == 0);
	snprintf(args, sizeof(args), "rm -rf %s", registry);
	CHECK(system(args) == 0);
	printf("usmc-stat command line: ok\n");
	return 0;
}
