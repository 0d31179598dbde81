// SPDX-License-Identifier: MIT
/*
 * smc_peer: both ends of a connection for the kernel SMC tests, statically
 * linked so that it runs in the test VM whatever its libc, and so that it
 * stands for "an unmodified static binary asking for TCP".
 *
 *   smc_peer server [opts]   accept --connections, check each one's data
 *   smc_peer client [opts]   send --bytes to --addr:--port, check the echo
 *   smc_peer hold [opts]     sockets in known states, kept until SIGTERM
 *                            (or --hold, default 300 s):
 *                            a listener, a connected pair, a connection to
 *                            a plain TCP listener, a connection closed again
 *
 *   --proto tcp|smc   socket(AF_INET[6], SOCK_STREAM, 0) or IPPROTO_SMC (256);
 *                     the default is tcp, protocol 0
 *   --addr A --port P   (default 127.0.0.1, port 0: any)
 *   --bytes N  --connections K  --hold SECONDS  --nonblock  --cloexec
 *
 * Every socket made or accepted prints one line "SO_PROTOCOL=<n>".  The
 * client sends an 8-byte length and N bytes of a fixed pattern; the server
 * checks length and FNV-1a checksum and answers with both, which the client
 * checks in turn.  Both ends then keep the connection open for --hold
 * seconds (or until SIGTERM), so that it can be listed while alive.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef IPPROTO_SMC
#define IPPROTO_SMC 256
#endif

struct opts {
	int proto, type_flags, port, connections, hold;
	uint64_t bytes;
	const char *addr;
};

static volatile sig_atomic_t stop;

static void on_term(int sig)
{
	(void)sig;
	stop = 1;
}

static void die(const char *what)
{
	fprintf(stderr, "smc_peer: %s: %s\n", what, strerror(errno));
	exit(1);
}

static uint8_t pattern(uint64_t i)
{
	return (uint8_t)(i * 131 + (i >> 9));
}

static uint64_t fnv1a(uint64_t h, const uint8_t *p, size_t n)
{
	while (n--) {
		h ^= *p++;
		h *= 0x100000001b3ull;
	}
	return h;
}

#define FNV_INIT 0xcbf29ce484222325ull

/* Waits until fd is ready for events, for non-blocking sockets. */
static void wait_for(int fd, short events)
{
	struct pollfd p = { .fd = fd, .events = events };

	while (poll(&p, 1, -1) < 0)
		if (errno != EINTR)
			die("poll");
}

static void write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
			wait_for(fd, POLLOUT);
			continue;
		}
		if (n <= 0)
			die("write");
		p += n;
		len -= (size_t)n;
	}
}

/* Reads up to len bytes, less only at EOF. */
static size_t read_full(int fd, void *buf, size_t len)
{
	char *p = buf;
	size_t got = 0;

	while (got < len) {
		ssize_t n = read(fd, p + got, len - got);

		if (n < 0 && errno == EINTR && stop)
			break;
		if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
			wait_for(fd, POLLIN);
			continue;
		}
		if (n < 0)
			die("read");
		if (n == 0)
			break;
		got += (size_t)n;
	}
	return got;
}

static int sockaddr_of(const char *addr, int port, struct sockaddr_storage *ss)
{
	struct sockaddr_in *in = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, addr, &in->sin_addr) == 1) {
		in->sin_family = AF_INET;
		in->sin_port = htons((uint16_t)port);
		return sizeof(*in);
	}
	if (inet_pton(AF_INET6, addr, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)port);
		return sizeof(*in6);
	}
	fprintf(stderr, "smc_peer: not an address: %s\n", addr);
	exit(2);
}

static int local_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (getsockname(fd, (struct sockaddr *)&ss, &len))
		die("getsockname");
	return ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
					      : ((struct sockaddr_in *)&ss)->sin_port);
}

static void print_protocol(int fd)
{
	int proto = -1;
	socklen_t len = sizeof(proto);

	if (getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &proto, &len))
		die("getsockopt SO_PROTOCOL");
	printf("SO_PROTOCOL=%d\n", proto);
	fflush(stdout);
}

static int new_socket(const struct opts *o, int family, int proto)
{
	int fd = socket(family, SOCK_STREAM | o->type_flags, proto);

	if (fd < 0)
		die("socket");
	print_protocol(fd);
	return fd;
}

static int listen_on(const struct opts *o, int proto, int port)
{
	struct sockaddr_storage ss;
	socklen_t len = (socklen_t)sockaddr_of(o->addr, port, &ss);
	int fd = new_socket(o, ss.ss_family, proto), one = 1;

	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, len) || listen(fd, 64))
		die("bind/listen");
	return fd;
}

static int accept_one(int lfd)
{
	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

		if (fd >= 0) {
			print_protocol(fd);
			return fd;
		}
		if (errno != EAGAIN && errno != EINTR)
			die("accept");
		wait_for(lfd, POLLIN);
	}
}

static int connect_to(const struct opts *o, int proto, int port)
{
	struct sockaddr_storage ss;
	socklen_t len = (socklen_t)sockaddr_of(o->addr, port, &ss);
	int fd = new_socket(o, ss.ss_family, proto), err = 0;
	socklen_t elen = sizeof(err);

	if (connect(fd, (struct sockaddr *)&ss, len) == 0)
		return fd;
	if (errno != EINPROGRESS)
		die("connect");
	wait_for(fd, POLLOUT);
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) || err) {
		errno = err;
		die("connect");
	}
	return fd;
}

/* Keeps a connection open for the listing, until --hold ends or SIGTERM. */
static void hold(int seconds)
{
	for (int i = 0; i < seconds * 10 && !stop; i++)
		usleep(100000);
}

/* One connection on the server: length, data, then the verdict back. */
static int serve(int fd)
{
	uint8_t buf[65536], pat[sizeof(buf)];
	uint64_t want = 0, got = 0, sum = FNV_INIT, expect = FNV_INIT;
	char reply[64];

	if (read_full(fd, &want, sizeof(want)) != sizeof(want)) {
		fprintf(stderr, "smc_peer: server: no length\n");
		return 1;
	}
	while (got < want) {
		size_t chunk = want - got < sizeof(buf) ? (size_t)(want - got) : sizeof(buf);
		size_t n = read_full(fd, buf, chunk);

		for (size_t i = 0; i < n; i++)
			pat[i] = pattern(got + i);
		sum = fnv1a(sum, buf, n);
		expect = fnv1a(expect, pat, n);
		got += n;
		if (n < chunk)
			break;
	}
	snprintf(reply, sizeof(reply), "%" PRIu64 " %016" PRIx64 "\n", got, sum);
	write_all(fd, reply, strlen(reply));
	printf("server: bytes=%" PRIu64 " fnv=%016" PRIx64 " %s\n", got, sum,
	       got == want && sum == expect ? "ok" : "MISMATCH");
	fflush(stdout);
	/* Open until the client closes: it decides how long both are listed. */
	while (read_full(fd, buf, sizeof(buf)) > 0)
		;
	close(fd);
	return got == want && sum == expect ? 0 : 1;
}

static int run_server(const struct opts *o)
{
	int lfd = listen_on(o, o->proto, o->port), rc = 0;

	printf("listening port=%d\n", local_port(lfd));
	fflush(stdout);
	for (int i = 0; i < o->connections; i++)
		rc |= serve(accept_one(lfd));
	close(lfd);
	return rc;
}

static int run_client(const struct opts *o)
{
	int fd = connect_to(o, o->proto, o->port);
	uint8_t buf[65536];
	uint64_t sent = 0, sum = FNV_INIT, peer_len = 0, peer_sum = 0;
	char reply[64] = "";
	size_t n;

	write_all(fd, &o->bytes, sizeof(o->bytes));
	while (sent < o->bytes) {
		size_t chunk = o->bytes - sent < sizeof(buf) ? (size_t)(o->bytes - sent) : sizeof(buf);

		for (size_t i = 0; i < chunk; i++)
			buf[i] = pattern(sent + i);
		sum = fnv1a(sum, buf, chunk);
		write_all(fd, buf, chunk);
		sent += chunk;
	}
	/* The reply ends with a newline, and nothing follows it. */
	for (n = 0; n < sizeof(reply) - 1 && read_full(fd, reply + n, 1) == 1; n++)
		if (reply[n] == '\n')
			break;
	if (sscanf(reply, "%" SCNu64 " %" SCNx64, &peer_len, &peer_sum) != 2)
		peer_len = 0;
	printf("client: port=%d bytes=%" PRIu64 " fnv=%016" PRIx64 " %s\n", local_port(fd), sent, sum,
	       peer_len == sent && peer_sum == sum ? "ok" : "MISMATCH");
	fflush(stdout);
	hold(o->hold);
	close(fd);
	return peer_len == sent && peer_sum == sum ? 0 : 1;
}

/*
 * Sockets in known states for the listing test.  Each connect completes
 * its SMC handshake in the kernel (the listener's worker), so one thread
 * can connect and then accept.
 */
static int run_hold(const struct opts *o)
{
	int lfd = listen_on(o, o->proto, 0), tcp_lfd = listen_on(o, 0, 0), port = local_port(lfd);
	int c1 = connect_to(o, o->proto, port), s1 = accept_one(lfd);
	int c2 = connect_to(o, o->proto, local_port(tcp_lfd)), s2 = accept_one(tcp_lfd);
	int c3 = connect_to(o, o->proto, port), s3 = accept_one(lfd), c3_port = local_port(c3);

	close(c3);
	close(s3);
	printf("listen port=%d\n", port);
	printf("connected client_port=%d server_port=%d\n", local_port(c1), port);
	printf("fallback client_port=%d server_port=%d\n", local_port(c2), local_port(tcp_lfd));
	printf("closed client_port=%d server_port=%d\n", c3_port, port);
	printf("ready\n");
	fflush(stdout);
	hold(o->hold ? o->hold : 300);
	close(c1);
	close(s1);
	close(c2);
	close(s2);
	close(lfd);
	close(tcp_lfd);
	return 0;
}

static void usage(void)
{
	fprintf(stderr, "usage: smc_peer server|client|hold [--proto tcp|smc] [--addr A] [--port P]\n"
			"       [--bytes N] [--connections K] [--hold SECONDS] [--nonblock] [--cloexec]\n");
	exit(2);
}

static void parse(int argc, char **argv, struct opts *o)
{
	static const struct option longopts[] = {
		{ "proto", required_argument, NULL, 'P' },
		{ "addr", required_argument, NULL, 'a' },
		{ "port", required_argument, NULL, 'p' },
		{ "bytes", required_argument, NULL, 'b' },
		{ "connections", required_argument, NULL, 'n' },
		{ "hold", required_argument, NULL, 'H' },
		{ "nonblock", no_argument, NULL, 'N' },
		{ "cloexec", no_argument, NULL, 'C' },
		{ 0 },
	};
	int c;

	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'P':
			if (strcmp(optarg, "tcp") && strcmp(optarg, "smc"))
				usage();
			o->proto = strcmp(optarg, "smc") ? 0 : IPPROTO_SMC;
			break;
		case 'a': o->addr = optarg; break;
		case 'p': o->port = atoi(optarg); break;
		case 'b': o->bytes = strtoull(optarg, NULL, 0); break;
		case 'n': o->connections = atoi(optarg); break;
		case 'H': o->hold = atoi(optarg); break;
		case 'N': o->type_flags |= SOCK_NONBLOCK; break;
		case 'C': o->type_flags |= SOCK_CLOEXEC; break;
		default: usage();
		}
	}
}

int main(int argc, char **argv)
{
	struct opts o = { .addr = "127.0.0.1", .bytes = 1 << 20, .connections = 1 };
	struct sigaction sa = { .sa_handler = on_term };
	const char *role;

	if (argc < 2)
		usage();
	role = argv[1];
	parse(argc - 1, argv + 1, &o);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (!strcmp(role, "server"))
		return run_server(&o);
	if (!strcmp(role, "client"))
		return o.port ? run_client(&o) : (usage(), 2);
	if (!strcmp(role, "hold"))
		return run_hold(&o);
	usage();
	return 2;
}
