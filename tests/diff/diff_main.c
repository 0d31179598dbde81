// SPDX-License-Identifier: MIT
/*
 * usmc_diff: the harness of the differential semantics suite.
 *
 *   usmc_diff --list          every case: NAME CONNS FALLBACKS
 *   usmc_diff --case NAME     runs one case and prints its transcript
 *   usmc_diff --resume STEP FD TELL HEAR LOG
 *                             a case's end going on after an exec
 *
 * The transcript is "case NAME", the client's lines, the server's lines,
 * and how the server process ended.  The client is the parent process and
 * writes its lines as it goes; the server's lines come through a pipe and
 * follow once the client is done, so the order never depends on timing.
 * CONNS and FALLBACKS are what tests/diff/run.sh expects usmc's counters
 * to show after the run under usmc-run.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../plain.h"
#include "diff.h"

static const struct diff_case *const tables[] = {
	io_cases, close_cases, poll_cases, epoll_cases, sig_cases, opt_cases, exec_cases,
	zcopy_cases,
	stdio_cases, async_cases, alias_cases, exec_way_cases, edge_cases, thread_cases, exit_cases,
	limit_cases, refused_cases, storm_cases, fork_shut_cases,
};

/* Where this process's lines go, and their prefix. */
static int log_fd = STDOUT_FILENO;
static const char *role = "cli";

/* ---- the transcript ---- */

static void write_line(const char *text)
{
	char line[600];
	int n = snprintf(line, sizeof(line), "%s: %s\n", role, text);

	if (n > (int)sizeof(line) - 1)
		n = (int)sizeof(line) - 1;
	/* One write per line: a pipe keeps it whole. */
	if (write(log_fd, line, (size_t)n) != n)
		_exit(3);
}

int diff_log_fd(void)
{
	return log_fd;
}

void diff_resume_as(const char *as, int fd)
{
	role = as;
	log_fd = fd;
	signal(SIGPIPE, SIG_IGN);
	alarm(WATCHDOG_S);
}

void say(const char *fmt, ...)
{
	char text[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	write_line(text);
}

void fatal(const char *fmt, ...)
{
	char text[512];
	int err = errno;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	say("FATAL %s (errno %s)", text, errno_name(err));
	fprintf(stderr, "usmc_diff %s: %s (errno %d: %s)\n", role, text, err, strerror(err));
	exit(1);
}

const char *errno_name(int err)
{
	static const struct {
		int err;
		const char *name;
	} names[] = {
		{ 0, "0" },
		{ EAGAIN, "EAGAIN" },
		{ EBADF, "EBADF" },
		{ ECONNREFUSED, "ECONNREFUSED" },
		{ ECONNRESET, "ECONNRESET" },
		{ EFAULT, "EFAULT" },
		{ EINPROGRESS, "EINPROGRESS" },
		{ EINTR, "EINTR" },
		{ EINVAL, "EINVAL" },
		{ EISCONN, "EISCONN" },
		{ ENOTCONN, "ENOTCONN" },
		{ ENOTSOCK, "ENOTSOCK" },
		{ EOPNOTSUPP, "EOPNOTSUPP" },
		{ EPIPE, "EPIPE" },
		{ ETIMEDOUT, "ETIMEDOUT" },
		{ EALREADY, "EALREADY" },
		{ ENOPROTOOPT, "ENOPROTOOPT" },
		{ EEXIST, "EEXIST" },
		{ ENOENT, "ENOENT" },
		{ EMSGSIZE, "EMSGSIZE" },
	};
	static char other[32];

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (names[i].err == err)
			return names[i].name;
	snprintf(other, sizeof(other), "errno%d", err);
	return other;
}

void say_rc(const char *what, long rc)
{
	int err = errno;

	if (rc < 0)
		say("%s = %ld %s", what, rc, errno_name(err));
	else
		say("%s = %ld", what, rc);
	errno = err;
}

const char *mask_str(unsigned mask, char *buf, size_t len)
{
	static const struct {
		unsigned bit;
		const char *name;
	} bits[] = {
		{ POLLIN, "IN" },	  { POLLPRI, "PRI" },	  { POLLOUT, "OUT" },
		{ POLLERR, "ERR" },	  { POLLHUP, "HUP" },	  { POLLNVAL, "NVAL" },
		{ POLLRDNORM, "RDNORM" }, { POLLRDBAND, "RDBAND" }, { POLLWRNORM, "WRNORM" },
		{ POLLWRBAND, "WRBAND" }, { POLLRDHUP, "RDHUP" },
	};
	size_t used = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < sizeof(bits) / sizeof(bits[0]); i++) {
		if (!(mask & bits[i].bit))
			continue;
		used += (size_t)snprintf(buf + used, len - used, "%s%s", used ? "|" : "", bits[i].name);
		mask &= ~bits[i].bit;
		if (used >= len)
			break;
	}
	if (mask && used < len)
		used += (size_t)snprintf(buf + used, len - used, "%s%#x", used ? "|" : "", mask);
	if (!used)
		snprintf(buf, len, "0");
	return buf;
}

void say_mask(const char *what, unsigned mask)
{
	char buf[MASK_LEN];

	say("%s: %s", what, mask_str(mask, buf, sizeof(buf)));
}

/* ---- the other end ---- */

void tell(struct end *e, uint64_t v)
{
	if (write(e->tell, &v, sizeof(v)) != (ssize_t)sizeof(v))
		fatal("tell %llu", (unsigned long long)v);
}

uint64_t hear(struct end *e)
{
	uint64_t v;
	size_t got = 0;

	while (got < sizeof(v)) {
		ssize_t n = read(e->hear, (char *)&v + got, sizeof(v) - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			fatal("the other end is gone");
		got += (size_t)n;
	}
	return v;
}

bool hear_within(struct end *e, int ms, uint64_t *v)
{
	struct pollfd p = { .fd = e->hear, .events = POLLIN };
	int n;

	do
		n = poll(&p, 1, ms);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		fatal("poll on the pipe");
	if (n == 0)
		return false;
	*v = hear(e);
	return true;
}

void expect(struct end *e, uint64_t v)
{
	uint64_t got = hear(e);

	if (got != v)
		fatal("heard %llu, expected %llu", (unsigned long long)got, (unsigned long long)v);
}

/* ---- sockets ---- */

socklen_t loopback(int family, uint16_t port, struct sockaddr_storage *ss)
{
	return loopback_addr(family, port, ss);
}

int tcp_socket(int family, int type)
{
	int fd = socket(family, SOCK_STREAM | type, 0);

	if (fd < 0)
		fatal("socket");
	return fd;
}

int connect_to(struct end *e)
{
	struct sockaddr_storage ss;
	socklen_t len = loopback(e->family, e->port, &ss);
	int fd = tcp_socket(e->family, 0);

	if (connect(fd, (struct sockaddr *)&ss, len) < 0)
		fatal("connect");
	return fd;
}

int accept_one(struct end *e)
{
	int fd;

	do
		fd = accept(e->lfd, NULL, NULL);
	while (fd < 0 && errno == EINTR);
	if (fd < 0)
		fatal("accept");
	return fd;
}

int listen_any(int family, uint16_t *port)
{
	struct sockaddr_storage ss;
	socklen_t len = loopback(family, 0, &ss);
	int fd = tcp_socket(family, 0);

	if (bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, 64) < 0)
		fatal("listen");
	len = sizeof(ss);
	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
		fatal("getsockname");
	*port = ntohs(family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
					 : ((struct sockaddr_in *)&ss)->sin_port);
	return fd;
}

bool reap_within_wait(pid_t pid, int *status)
{
	for (int i = 0; i < WAIT_MS; i++) {
		if (waitpid(pid, status, WNOHANG) == pid)
			return true;
		usleep(1000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, status, 0);
	return false;
}

void set_nonblock(int fd, bool on)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || fcntl(fd, F_SETFL, on ? fl | O_NONBLOCK : fl & ~O_NONBLOCK) < 0)
		fatal("fcntl O_NONBLOCK");
}

static short poll_one(int fd, short events, int timeout)
{
	struct pollfd p = { .fd = fd, .events = events };
	int n;

	do
		n = poll(&p, 1, timeout);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		fatal("poll");
	return n ? p.revents : 0;
}

short wait_for(int fd, short events)
{
	return poll_one(fd, events, WAIT_MS);
}

short poll_now(int fd, short events)
{
	return poll_one(fd, events, 0);
}

/* ---- data ---- */

void pattern(uint8_t *buf, size_t len, uint64_t seed, uint64_t off)
{
	for (size_t i = 0; i < len; i++) {
		uint64_t x = (off + i) * 0x9e3779b97f4a7c15ull ^ seed;

		buf[i] = (uint8_t)(x >> 29 ^ x >> 7);
	}
}

bool pattern_ok(const uint8_t *buf, size_t len, uint64_t seed, uint64_t off)
{
	uint8_t want[4096];

	for (size_t done = 0; done < len;) {
		size_t n = len - done < sizeof(want) ? len - done : sizeof(want);

		pattern(want, n, seed, off + done);
		if (memcmp(buf + done, want, n))
			return false;
		done += n;
	}
	return true;
}

uint32_t sum32(uint32_t h, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	for (size_t i = 0; i < len; i++)
		h = (h ^ p[i]) * 0x01000193u;
	return h;
}

void send_pattern(int fd, uint64_t seed, uint64_t off, size_t len)
{
	uint8_t buf[65536];

	for (size_t done = 0; done < len;) {
		size_t n = len - done < sizeof(buf) ? len - done : sizeof(buf);
		ssize_t w;

		pattern(buf, n, seed, off + done);
		w = write(fd, buf, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			fatal("write of %zu pattern bytes at %zu", len, done);
		done += (size_t)w;
	}
}

int pattern_file(uint64_t seed, size_t len)
{
	char path[] = "/tmp/usmc-diff-XXXXXX";
	int fd = mkstemp(path);

	if (fd < 0)
		fatal("mkstemp");
	unlink(path);
	send_pattern(fd, seed, 0, len);
	lseek(fd, 0, SEEK_SET);
	return fd;
}

void recv_pattern(int fd, uint64_t seed, uint64_t off, size_t len, const char *what)
{
	uint8_t buf[65536];
	size_t done = 0;
	bool ok = true;

	while (done < len) {
		size_t want = len - done < sizeof(buf) ? len - done : sizeof(buf);
		ssize_t n = read(fd, buf, want);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			say("%s: short, %zu of %zu bytes, then %s", what, done,
			    len, n ? errno_name(errno) : "EOF");
			return;
		}
		ok &= pattern_ok(buf, (size_t)n, seed, off + done);
		done += (size_t)n;
	}
	say("%s: %zu bytes, pattern %s", what, done, ok ? "ok" : "BAD");
}

void recv_to_eof(int fd, const char *what)
{
	uint8_t buf[65536];
	uint32_t sum = SUM_INIT;
	size_t total = 0;
	ssize_t n;

	for (;;) {
		n = read(fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		sum = sum32(sum, buf, (size_t)n);
		total += (size_t)n;
	}
	say("%s: %zu bytes, sum %08x, then %s", what, total, sum, n ? errno_name(errno) : "EOF");
}

void greet(struct end *e)
{
	if (e->server) {
		recv_pattern(e->fd, 98, 0, 100, "greeting");
		send_pattern(e->fd, 99, 0, 100);
	} else {
		send_pattern(e->fd, 98, 0, 100);
		recv_pattern(e->fd, 99, 0, 100, "greeting");
	}
}

/*
 * Writes until the peer's reset makes a write fail, and says how it
 * failed.  The first write goes (the peer's kernel answers it with a
 * reset); how many more go depends on when that reset arrives, so the
 * transcript names only the failure.  The pause paces the loop, it
 * decides nothing.
 */
volatile sig_atomic_t sigpipes;

static void on_sigpipe(int sig)
{
	(void)sig;
	sigpipes++;
}

void count_sigpipes(void)
{
	struct sigaction sa = { .sa_handler = on_sigpipe };

	sigaction(SIGPIPE, &sa, NULL);
}

void write_until_epipe(int fd, int flags)
{
	struct timespec pause = { 0, 1000 * 1000 };
	char buf[1000];
	ssize_t n;

	memset(buf, 'w', sizeof(buf));
	n = send(fd, buf, sizeof(buf), flags);
	say_rc("first send(1000) toward the closed peer", n);
	for (int i = 0; n >= 0 && i < WAIT_MS; i++) {
		nanosleep(&pause, NULL);
		n = send(fd, buf, sizeof(buf), flags);
	}
	say_rc("a later send(1000), once the peer's reset came", n);
}

/* ---- running a case ---- */

static const struct diff_case *find_case(const char *name)
{
	for (size_t t = 0; t < sizeof(tables) / sizeof(tables[0]); t++)
		for (const struct diff_case *c = tables[t]; c->name; c++)
			if (!strcmp(c->name, name))
				return c;
	return NULL;
}

static void list_cases(void)
{
	for (size_t t = 0; t < sizeof(tables) / sizeof(tables[0]); t++)
		for (const struct diff_case *c = tables[t]; c->name; c++)
			printf("%s %d %d\n", c->name, c->conns, c->fallbacks);
}

static void close_if_open(int *fd)
{
	if (*fd >= 0 && close(*fd) < 0)
		fatal("close");
	*fd = -1;
}

static void server_main(const struct diff_case *c, struct end *e)
{
	e->lfd = listen_any(e->family, &e->port);
	tell(e, e->port);
	if (!c->raw)
		e->fd = accept_one(e);
	c->server(e);
	close_if_open(&e->fd);
	close_if_open(&e->lfd);
}

static void client_main(const struct diff_case *c, struct end *e)
{
	e->port = (uint16_t)hear(e);
	if (!c->raw)
		e->fd = connect_to(e);
	c->client(e);
	close_if_open(&e->fd);
}

/* Copies the server's lines to stdout, then tells how it ended. */
static int collect_server(pid_t pid, int report)
{
	char buf[4096];
	ssize_t n;
	int status;

	while ((n = read(report, buf, sizeof(buf))) > 0 || (n < 0 && errno == EINTR))
		if (n > 0 && write(STDOUT_FILENO, buf, (size_t)n) != n)
			return 1;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			fatal("waitpid");
	if (WIFEXITED(status))
		printf("server: exit %d\n", WEXITSTATUS(status));
	else
		printf("server: killed by signal %d\n", WTERMSIG(status));
	fflush(stdout);
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}

static void make_pipe(int p[2])
{
	if (pipe(p) < 0)
		fatal("pipe");
}

static int run_case(const struct diff_case *c)
{
	struct end e = { .fd = -1, .lfd = -1, .family = c->family ? c->family : AF_INET };
	int to_srv[2], to_cli[2], report[2];
	pid_t pid;

	printf("case %s\n", c->name);
	fflush(stdout);
	signal(SIGPIPE, SIG_IGN);
	alarm(WATCHDOG_S);
	if (!c->server) {
		c->client(&e);
		return 0;
	}
	make_pipe(to_srv);
	make_pipe(to_cli);
	make_pipe(report);
	pid = fork();
	if (pid < 0)
		fatal("fork");
	if (pid == 0) {
		/* A child inherits no alarm: the server sets its own. */
		alarm(WATCHDOG_S);
		role = "srv";
		log_fd = report[1];
		close(report[0]), close(to_srv[1]), close(to_cli[0]);
		e.server = true;
		e.tell = to_cli[1];
		e.hear = to_srv[0];
		server_main(c, &e);
		exit(0);
	}
	close(report[1]), close(to_srv[0]), close(to_cli[1]);
	e.tell = to_srv[1];
	e.hear = to_cli[0];
	client_main(c, &e);
	close(e.tell), close(e.hear);
	return collect_server(pid, report[0]);
}

int main(int argc, char **argv)
{
	const struct diff_case *c;

	if (argc == 2 && !strcmp(argv[1], "--list")) {
		list_cases();
		return 0;
	}
	if (argc > 2 && !strcmp(argv[1], "--resume"))
		return resume_step(argc, argv);
	if (argc != 3 || strcmp(argv[1], "--case")) {
		fprintf(stderr, "usage: usmc_diff --list | --case NAME\n");
		return 2;
	}
	c = find_case(argv[2]);
	if (!c) {
		fprintf(stderr, "usmc_diff: no case %s\n", argv[2]);
		return 2;
	}
	return run_case(c);
}
