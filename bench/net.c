// SPDX-License-Identifier: MIT
/*
 * The transports: how each end of a benchmark connection is made.  All
 * I/O goes through the usmc_ calls, which are the system calls themselves
 * on plain descriptors, so every transport runs the same code.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

static const char *const names[TR_COUNT] = {
	[TR_TCP] = "tcp",
	[TR_UNIX] = "unix",
	[TR_FALLBACK] = "fallback",
	[TR_FALLBACK_SERVER] = "fallback-server",
	[TR_SMC] = "smc",
};

const char *transport_name(enum transport tr)
{
	return names[tr];
}

int transport_by_name(const char *name)
{
	for (int i = 0; i < TR_COUNT; i++)
		if (!strcmp(names[i], name))
			return i;
	return -1;
}

static bool usmc_end(enum transport tr, bool server)
{
	if (tr == TR_SMC)
		return true;
	return server ? tr == TR_FALLBACK_SERVER : tr == TR_FALLBACK;
}

int expected_mode(enum transport tr, bool server)
{
	if (!usmc_end(tr, server))
		return USMC_MODE_NONE;
	return tr == TR_SMC ? USMC_MODE_SMCD : USMC_MODE_FALLBACK;
}

void check_mode(int fd, const struct job *j, bool server, struct side_result *r)
{
	int want = expected_mode(j->tr, server);
	struct usmc_info info;

	if (want == USMC_MODE_NONE)
		return;
	if (usmc_info(fd, &info, sizeof(info)) < 0) {
		info.mode = USMC_MODE_NONE;
		info.fallback_reason = 0;
	}
	if (info.mode == want)
		return;
	if (!r->mode_wrong++) {
		r->mode_seen = info.mode;
		r->reason = info.fallback_reason;
	}
}

static socklen_t unix_addr(const struct job *j, struct sockaddr_un *sun)
{
	size_t n = strlen(j->unix_path);

	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	/* Abstract: nothing to unlink, and it vanishes with the server. */
	memcpy(sun->sun_path + 1, j->unix_path, n);
	return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n);
}

static int make_socket(const struct job *j, bool server)
{
	if (j->tr == TR_UNIX)
		return socket(AF_UNIX, SOCK_STREAM, 0);
	if (usmc_end(j->tr, server))
		return usmc_socket(AF_INET, SOCK_STREAM, IPPROTO_SMC);
	return socket(AF_INET, SOCK_STREAM, 0);
}

/*
 * Loopback, or between two namespaces the address the side's namespace
 * gives (netns.c), which the side enters first: a socket is made in the
 * namespace of its maker.
 */
static void loopback(struct sockaddr_in *sin, uint16_t port, bool server)
{
	memset(sin, 0, sizeof(*sin));
	sin->sin_family = AF_INET;
	sin->sin_port = htons(port);
	if (!netns_cross_enter(server, &sin->sin_addr))
		sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
}

/* Port 0: a fresh port per run, so no TIME_WAIT of an earlier run is in the way. */
int bench_listen(const struct job *j, uint16_t *port)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fd;

	if (j->tr == TR_UNIX) {
		len = unix_addr(j, (struct sockaddr_un *)&ss);
		*port = 0;
	} else {
		loopback((struct sockaddr_in *)&ss, 0, true);
		len = sizeof(struct sockaddr_in);
	}
	fd = make_socket(j, true);
	if (fd < 0)
		return -1;
	if (usmc_bind(fd, (struct sockaddr *)&ss, len) < 0 || usmc_listen(fd, 1024) < 0)
		goto fail;
	if (j->tr != TR_UNIX) {
		len = sizeof(ss);
		if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
			goto fail;
		*port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
	}
	return fd;
fail:
	usmc_close(fd);
	return -1;
}

int bench_connect(const struct job *j, uint16_t port)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fd;

	if (j->tr == TR_UNIX) {
		len = unix_addr(j, (struct sockaddr_un *)&ss);
	} else {
		loopback((struct sockaddr_in *)&ss, port, false);
		len = sizeof(struct sockaddr_in);
	}
	fd = make_socket(j, false);
	if (fd < 0)
		return -1;
	if (usmc_connect(fd, (struct sockaddr *)&ss, len) < 0) {
		usmc_close(fd);
		return -1;
	}
	return fd;
}

/* Small messages: what a latency-minded program sets on TCP. */
void set_nodelay(const struct job *j, int fd)
{
	int one = 1;

	if (j->tr != TR_UNIX)
		usmc_setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

void set_nonblock(int fd)
{
	usmc_fcntl(fd, F_SETFL, usmc_fcntl(fd, F_GETFL) | O_NONBLOCK);
}

int write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len) {
		ssize_t n = usmc_write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int read_all(int fd, void *buf, size_t len)
{
	char *p = buf;

	while (len) {
		ssize_t n = usmc_read(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

double now_sec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void fail(struct side_result *r, const char *what)
{
	if (!r->ok)
		return; /* keep the first failure */
	r->ok = 0;
	snprintf(r->err, sizeof(r->err), "%s: %s", what, strerror(errno));
}
