// SPDX-License-Identifier: MIT
/*
 * A binary upgrade in nginx's manner, by an ordinary program for usmc-run
 * to take over (listen_exec.sh drives it):
 *
 *   listen_exec master PORT_FILE PID_FILE
 *       Listens on 127.0.0.1 (port written to PORT_FILE) and forks a
 *       worker that accepts on the listener.  On SIGUSR2 it forks a child
 *       that execs `listen_exec new FD PID_FILE` with the listener on FD,
 *       as nginx's master execs its new binary; on SIGQUIT it ends its
 *       worker, closes the listener and exits, as the old master does.
 *   listen_exec new FD PID_FILE
 *       The new master: forks a worker of its own accepting on FD, writes
 *       its pid to PID_FILE, and waits for SIGTERM to end it; then closes
 *       the listener and writes its pid to PID_FILE.closed if its standard
 *       input is still open.
 *
 * A worker answers each connection with its length and checksum once the
 * client shut down its side (listen_adopt's client checks them).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "plain.h"

static volatile sig_atomic_t got_usr2, got_quit;

static void on_signal(int sig)
{
	if (sig == SIGUSR2)
		got_usr2 = 1;
	else
		got_quit = 1;
}

static void serve(int lfd)
{
	static uint8_t buf[65536];

	signal(SIGTERM, SIG_DFL);
	for (;;) {
		uint64_t reply[2] = { 0, FNV_INIT };
		int fd = accept(lfd, NULL, NULL);
		ssize_t r;

		if (fd < 0 && errno == EINTR)
			continue;
		CHECK(fd >= 0);
		while ((r = read(fd, buf, sizeof(buf))) != 0) {
			if (r < 0 && errno == EINTR)
				continue;
			CHECK(r > 0);
			reply[0] += (uint64_t)r;
			reply[1] = fnv(reply[1], buf, (size_t)r);
		}
		CHECK(write(fd, reply, sizeof(reply)) == (ssize_t)sizeof(reply));
		CHECK(close(fd) == 0);
	}
}

static pid_t worker(int lfd)
{
	pid_t pid = fork();

	CHECK(pid >= 0);
	if (pid == 0) {
		serve(lfd);
		_exit(0);
	}
	return pid;
}

static void write_pid(const char *path)
{
	FILE *f = fopen(path, "w");

	CHECK(f);
	fprintf(f, "%d\n", (int)getpid());
	CHECK(fclose(f) == 0);
}

static int master(const char *port_file, const char *pid_file)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sin);
	int lfd = socket(AF_INET, SOCK_STREAM, 0);
	pid_t w;
	FILE *f;

	CHECK(lfd >= 0);
	CHECK(bind(lfd, (struct sockaddr *)&sin, sizeof(sin)) == 0 && listen(lfd, 64) == 0);
	CHECK(getsockname(lfd, (struct sockaddr *)&sin, &len) == 0);
	signal(SIGUSR2, on_signal);
	signal(SIGQUIT, on_signal);
	w = worker(lfd);
	f = fopen(port_file, "w");
	CHECK(f);
	fprintf(f, "%u\n", (unsigned)ntohs(sin.sin_port));
	CHECK(fclose(f) == 0);
	while (!got_quit) {
		pause();
		if (got_usr2) {
			char fd_arg[16];
			pid_t c = fork();

			got_usr2 = 0;
			CHECK(c >= 0);
			if (c == 0) {
				snprintf(fd_arg, sizeof(fd_arg), "%d", lfd);
				execl("/proc/self/exe", "listen_exec", "new", fd_arg, pid_file, (char *)NULL);
				_exit(127);
			}
		}
	}
	kill(w, SIGTERM);
	CHECK(waitpid(w, NULL, 0) == w);
	CHECK(close(lfd) == 0);
	return 0;
}

/*
 * The new master also closes the listener it was given before it exits,
 * and its standard input, a file of its own, must stay open: nothing of
 * usmc's may close a descriptor it does not own.
 */
static int new_master(int lfd, const char *pid_file)
{
	pid_t w = worker(lfd);
	char done[4096];

	close(0);
	CHECK(open("/dev/null", O_RDONLY) == 0);
	signal(SIGTERM, on_signal);
	write_pid(pid_file);
	while (!got_quit)
		pause();
	kill(w, SIGTERM);
	CHECK(waitpid(w, NULL, 0) == w);
	CHECK(close(lfd) == 0);
	CHECK(fcntl(0, F_GETFD) >= 0);
	snprintf(done, sizeof(done), "%s.closed", pid_file);
	write_pid(done);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 4 && !strcmp(argv[1], "master"))
		return master(argv[2], argv[3]);
	if (argc == 4 && !strcmp(argv[1], "new"))
		return new_master(atoi(argv[2]), argv[3]);
	fprintf(stderr, "usage: listen_exec master PORT_FILE PID_FILE | new FD PID_FILE\n");
	return 2;
}
