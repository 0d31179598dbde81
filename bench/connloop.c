// SPDX-License-Identifier: MIT
/*
 * usmc-connloop: a fixed number of short connections, as usmc-bench's
 * connrate makes them, for counting what one connection costs under
 * strace -c or callgrind (usmc-bench runs for a time, not a count).
 *
 *   usmc-connloop TRANSPORT N [PAYLOAD [rusage] [prefork]]
 *
 * TRANSPORT: tcp, fallback (usmc client), fallback-server (usmc server)
 * or smc; PAYLOAD: 64 (default, a request and a response) or 0 (connect
 * and close).  The server is a forked child; with prefork it forks two
 * workers after listen(), which accept on the listener they share, as
 * connrate-prefork's do.  Both ends go through the usmc_ calls as in
 * usmc-bench.  Exit status 0 if every connection went through in the
 * expected mode.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

static bool want_rusage, want_prefork;

#define PREFORK_WORKERS 2

/* The client's end of this pipe closes when it is done: the prefork workers stop. */
static int stop_pipe[2] = { -1, -1 };

static void print_rusage(const char *side)
{
	struct rusage ru;

	if (!want_rusage || getrusage(RUSAGE_SELF, &ru))
		return;
	fprintf(stderr, "%s: voluntary %ld involuntary %ld user_us %ld sys_us %ld\n", side,
		ru.ru_nvcsw, ru.ru_nivcsw, ru.ru_utime.tv_sec * 1000000L + ru.ru_utime.tv_usec,
		ru.ru_stime.tv_sec * 1000000L + ru.ru_stime.tv_usec);
}

static int serve(const struct job *j, int lfd, long n)
{
	struct side_result r = { .ok = 1 };
	char buf[64];

	for (long i = 0; i < n && r.ok; i++) {
		struct pollfd p[2] = { { .fd = lfd, .events = POLLIN },
				       { .fd = stop_pipe[0], .events = POLLIN } };
		int fd;

		if (usmc_poll(p, want_prefork ? 2 : 1, -1) < 0)
			return 1;
		if (!(p[0].revents & POLLIN)) {
			if (p[1].revents)
				break;
			continue;
		}
		fd = usmc_accept(lfd, NULL, NULL);
		/* Another worker took it: the shared listener does not block. */
		if (fd < 0 && errno == EAGAIN && want_prefork)
			continue;
		if (fd < 0)
			return 1;
		set_nodelay(j, fd);
		if (j->msg_size && (read_all(fd, buf, sizeof(buf)) < 0 || write_all(fd, buf, sizeof(buf)) < 0))
			fail(&r, "response");
		check_mode(fd, j, true, &r);
		usmc_close(fd);
	}
	print_rusage("server");
	return r.ok && !r.mode_wrong ? 0 : 1;
}

/* Workers forked after listen(), accepting on the listener they share, until the client is done. */
static int serve_prefork(const struct job *j, int lfd, long n)
{
	pid_t pid[PREFORK_WORKERS];
	int rc = 0, status;

	if (usmc_fcntl(lfd, F_SETFL, usmc_fcntl(lfd, F_GETFL) | O_NONBLOCK) < 0)
		return 1;
	for (int i = 0; i < PREFORK_WORKERS; i++) {
		pid[i] = fork();
		if (pid[i] == 0)
			_exit(serve(j, lfd, n));
		if (pid[i] < 0)
			return 1;
	}
	for (int i = 0; i < PREFORK_WORKERS; i++)
		if (waitpid(pid[i], &status, 0) != pid[i] || !WIFEXITED(status) || WEXITSTATUS(status))
			rc = 1;
	return rc;
}

static int run_client(const struct job *j, uint16_t port, long n)
{
	struct side_result r = { .ok = 1 };
	char msg[64] = "request", reply[64];

	for (long i = 0; i < n && r.ok; i++) {
		int fd = bench_connect(j, port);

		if (fd < 0)
			return 1;
		set_nodelay(j, fd);
		if (j->msg_size && (write_all(fd, msg, sizeof(msg)) < 0 || read_all(fd, reply, sizeof(reply)) < 0))
			fail(&r, "request");
		if (r.ok && usmc_read(fd, reply, 1) != 0)
			fail(&r, "waiting for the server's close");
		check_mode(fd, j, false, &r);
		usmc_close(fd);
	}
	print_rusage("client");
	return r.ok && !r.mode_wrong ? 0 : 1;
}

/* The server makes its own listener, as usmc-bench's does: a listener made before fork() is shared. */
static pid_t spawn_server(const struct job *j, long n, uint16_t *port)
{
	int p[2];
	pid_t pid;

	if (pipe(p))
		return -1;
	pid = fork();
	if (pid == 0) {
		int lfd = bench_listen(j, port);

		if (stop_pipe[1] >= 0)
			close(stop_pipe[1]);
		close(p[0]);
		if (lfd < 0 || write(p[1], port, sizeof(*port)) != (ssize_t)sizeof(*port))
			_exit(1);
		close(p[1]);
		_exit(want_prefork ? serve_prefork(j, lfd, n) : serve(j, lfd, n));
	}
	close(p[1]);
	if (pid > 0 && read(p[0], port, sizeof(*port)) != (ssize_t)sizeof(*port)) {
		waitpid(pid, NULL, 0);
		pid = -1;
	}
	close(p[0]);
	return pid;
}

int main(int argc, char **argv)
{
	struct job j = { .test = T_CONNRATE, .msg_size = 64, .conns = 1 };
	int tr = argc >= 3 ? transport_by_name(argv[1]) : -1, status = 0, rc;
	long n = argc >= 3 ? atol(argv[2]) : 0;
	uint16_t port;
	pid_t pid;

	if (argc >= 4)
		j.msg_size = (size_t)atol(argv[3]) ? 64 : 0;
	for (int i = 4; i < argc; i++) {
		want_rusage |= !strcmp(argv[i], "rusage");
		want_prefork |= !strcmp(argv[i], "prefork");
	}
	if (tr < 0 || tr == TR_UNIX || n <= 0) {
		fprintf(stderr, "usage: usmc-connloop tcp|fallback|fallback-server|smc N [64|0 [rusage] [prefork]]\n");
		return 2;
	}
	j.tr = (enum transport)tr;
	if (want_prefork && pipe(stop_pipe))
		return 1;
	pid = spawn_server(&j, n, &port);
	if (stop_pipe[0] >= 0)
		close(stop_pipe[0]);
	rc = pid > 0 ? run_client(&j, port, n) : 1;
	if (stop_pipe[1] >= 0)
		close(stop_pipe[1]);
	if (pid > 0 && (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status)))
		rc = 1;
	if (rc)
		fprintf(stderr, "usmc-connloop: %s: a connection failed or had the wrong mode\n", argv[1]);
	return rc;
}
