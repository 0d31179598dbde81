// SPDX-License-Identifier: MIT
/*
 * What a program asks of its socket: options (SO_TYPE, SO_DOMAIN,
 * SO_PROTOCOL, TCP_NODELAY, buffer sizes, ...), names (getsockname,
 * getpeername, accept4's address and flags), FIONREAD and SO_RCVLOWAT,
 * and a connection over IPv6.
 *
 * SO_PROTOCOL: these programs ask socket(AF_INET, SOCK_STREAM, 0), for
 * which the kernel answers IPPROTO_TCP; usmc makes the same kernel socket
 * and answers the same.  A program that asked IPPROTO_SMC explicitly
 * would see a difference by design (the kernel's SMC module or
 * EPROTONOSUPPORT against usmc's TCP socket), so no case asks for it.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>

#include "diff.h"

enum { GO = 1, MORE, DONE };

/* getsockopt of an int option; says "name = value" or the error. */
static void say_int_opt(int fd, int level, int name, const char *what)
{
	int v = -1;
	socklen_t len = sizeof(v);

	if (getsockopt(fd, level, name, &v, &len) < 0)
		say_rc(what, -1);
	else
		say("%s = %d (length %u)", what, v, (unsigned)len);
}

static void set_int_opt(int fd, int level, int name, int v, const char *what)
{
	char line[128];

	snprintf(line, sizeof(line), "setsockopt(%s, %d)", what, v);
	say_rc(line, setsockopt(fd, level, name, &v, sizeof(v)));
}

/* ---- socket options ---- */

static void say_identity(int fd, const char *which)
{
	say("%s:", which);
	say_int_opt(fd, SOL_SOCKET, SO_TYPE, "  SO_TYPE");
	say_int_opt(fd, SOL_SOCKET, SO_DOMAIN, "  SO_DOMAIN");
	say_int_opt(fd, SOL_SOCKET, SO_PROTOCOL, "  SO_PROTOCOL");
	say_int_opt(fd, SOL_SOCKET, SO_ACCEPTCONN, "  SO_ACCEPTCONN");
	say_int_opt(fd, SOL_SOCKET, SO_ERROR, "  SO_ERROR");
	say_int_opt(fd, IPPROTO_TCP, TCP_NODELAY, "  TCP_NODELAY");
}

static void nodelay_round(int fd)
{
	set_int_opt(fd, IPPROTO_TCP, TCP_NODELAY, 1, "TCP_NODELAY");
	say_int_opt(fd, IPPROTO_TCP, TCP_NODELAY, "TCP_NODELAY");
	set_int_opt(fd, IPPROTO_TCP, TCP_NODELAY, 0, "TCP_NODELAY");
	say_int_opt(fd, IPPROTO_TCP, TCP_NODELAY, "TCP_NODELAY");
	set_int_opt(fd, IPPROTO_TCP, TCP_NODELAY, 7, "TCP_NODELAY");
	say_int_opt(fd, IPPROTO_TCP, TCP_NODELAY, "TCP_NODELAY");
}

static void general_opts(int fd)
{
	struct linger lg = { 1, 5 };
	socklen_t len = sizeof(lg);
	struct tcp_info ti;
	socklen_t tlen = sizeof(ti);

	set_int_opt(fd, SOL_SOCKET, SO_KEEPALIVE, 1, "SO_KEEPALIVE");
	say_int_opt(fd, SOL_SOCKET, SO_KEEPALIVE, "SO_KEEPALIVE");
	say_int_opt(fd, SOL_SOCKET, SO_REUSEADDR, "SO_REUSEADDR");
	set_int_opt(fd, SOL_SOCKET, SO_SNDBUF, 65536, "SO_SNDBUF");
	say_int_opt(fd, SOL_SOCKET, SO_SNDBUF, "SO_SNDBUF");
	set_int_opt(fd, SOL_SOCKET, SO_RCVBUF, 65536, "SO_RCVBUF");
	say_int_opt(fd, SOL_SOCKET, SO_RCVBUF, "SO_RCVBUF");
	say_rc("setsockopt(SO_LINGER {1, 5})", setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, len));
	memset(&lg, 0xff, sizeof(lg));
	say_rc("getsockopt(SO_LINGER)", getsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, &len));
	say("  {%d, %d}", lg.l_onoff, lg.l_linger);
	lg = (struct linger){ 0, 0 };
	say_rc("setsockopt(SO_LINGER {0, 0})", setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, len));
	say_rc("getsockopt(TCP_INFO)", getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &tlen));
	say("  tcpi_state %u", ti.tcpi_state);
	say_rc("setsockopt(TCP_NODELAY) with a 2-byte value",
	       setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, "\1\0", 2));
	tlen = sizeof(ti);
	say_rc("getsockopt(SOL_SOCKET, 12345)", getsockopt(fd, SOL_SOCKET, 12345, &ti, &tlen));
}

static void sockopts_client(struct end *e)
{
	int fresh = tcp_socket(e->family, 0);

	say_identity(fresh, "unconnected socket");
	close(fresh);
	say_identity(e->fd, "connected socket");
	nodelay_round(e->fd);
	general_opts(e->fd);
	send_pattern(e->fd, 80, 0, 100000);
	recv_pattern(e->fd, 81, 0, 100000, "reply");
	/* Again once bytes went through: the connection is past its start. */
	say_identity(e->fd, "connected socket, after the exchange");
	nodelay_round(e->fd);
	tell(e, DONE);
}

static void sockopts_server(struct end *e)
{
	say_identity(e->lfd, "listener");
	say_identity(e->fd, "accepted socket");
	nodelay_round(e->fd);
	recv_pattern(e->fd, 80, 0, 100000, "request");
	send_pattern(e->fd, 81, 0, 100000);
	expect(e, DONE);
}

/* ---- option values shorter than an int ---- */

static void say_short_opt(int fd, int level, int name, const char *what)
{
	unsigned char v[4] = { 0xee, 0xee, 0xee, 0xee };
	socklen_t len = 2;

	if (getsockopt(fd, level, name, v, &len) < 0)
		say_rc(what, -1);
	else
		say("%s = length %u, bytes %02x %02x %02x", what, (unsigned)len, v[0], v[1], v[2]);
}

static void short_optlen_client(struct end *e)
{
	greet(e);
	set_int_opt(e->fd, IPPROTO_TCP, TCP_NODELAY, 1, "TCP_NODELAY");
	say_short_opt(e->fd, IPPROTO_TCP, TCP_NODELAY, "getsockopt(TCP_NODELAY) into 2 bytes");
	say_short_opt(e->fd, SOL_SOCKET, SO_TYPE, "getsockopt(SO_TYPE) into 2 bytes");
	say_short_opt(e->fd, SOL_SOCKET, SO_ERROR, "getsockopt(SO_ERROR) into 2 bytes");
	send_pattern(e->fd, 82, 0, 100);
	recv_pattern(e->fd, 83, 0, 100, "reply");
}

static void short_optlen_server(struct end *e)
{
	greet(e);
	say_short_opt(e->fd, IPPROTO_TCP, TCP_NODELAY, "getsockopt(TCP_NODELAY) into 2 bytes");
	recv_pattern(e->fd, 82, 0, 100, "request");
	send_pattern(e->fd, 83, 0, 100);
}

/* ---- names ---- */

static uint16_t port_of(const struct sockaddr_storage *ss)
{
	return ntohs(ss->ss_family == AF_INET6 ? ((const struct sockaddr_in6 *)ss)->sin6_port
					       : ((const struct sockaddr_in *)ss)->sin_port);
}

static bool is_loopback(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET6)
		return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)ss)->sin6_addr);
	return ((const struct sockaddr_in *)ss)->sin_addr.s_addr == htonl(INADDR_LOOPBACK);
}

/* getsockname or getpeername; says family, length, loopback; gives the port. */
static uint16_t say_name(int fd, bool peer, const char *what)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	int rc = peer ? getpeername(fd, (struct sockaddr *)&ss, &len)
		      : getsockname(fd, (struct sockaddr *)&ss, &len);

	if (rc < 0) {
		say_rc(what, rc);
		return 0;
	}
	say("%s: family %s, length %u, loopback %s", what,
	    ss.ss_family == AF_INET6 ? "AF_INET6" : ss.ss_family == AF_INET ? "AF_INET" : "other",
	    (unsigned)len, is_loopback(&ss) ? "yes" : "no");
	return port_of(&ss);
}

static void names_client(struct end *e)
{
	struct sockaddr_storage ss;
	socklen_t short_len = 4;
	int fresh = tcp_socket(e->family, 0);

	say_rc("getpeername, unconnected", getpeername(fresh, (struct sockaddr *)&ss, &short_len));
	short_len = sizeof(ss);
	say_rc("getsockname, unbound", getsockname(fresh, (struct sockaddr *)&ss, &short_len));
	say("  port %u", port_of(&ss));
	close(fresh);
	e->fd = connect_to(e);
	tell(e, say_name(e->fd, false, "getsockname"));
	say("  peer port is the listener's: %s",
	    say_name(e->fd, true, "getpeername") == e->port ? "yes" : "no");
	short_len = 4;
	say_rc("getpeername into 4 bytes", getpeername(e->fd, (struct sockaddr *)&ss, &short_len));
	say("  length %u", (unsigned)short_len);
	send_pattern(e->fd, 84, 0, 100);
	recv_pattern(e->fd, 85, 0, 100, "reply");
}

static void names_server(struct end *e)
{
	struct sockaddr_storage from;
	socklen_t len = sizeof(from);
	uint16_t client_port = (uint16_t)hear(e);

	do
		e->fd = accept4(e->lfd, (struct sockaddr *)&from, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
	while (e->fd < 0 && errno == EINTR);
	if (e->fd < 0)
		fatal("accept4");
	say("accept4's address: length %u, loopback %s, the client's port: %s", (unsigned)len,
	    is_loopback(&from) ? "yes" : "no", port_of(&from) == client_port ? "yes" : "no");
	say("O_NONBLOCK %s, FD_CLOEXEC %s", fcntl(e->fd, F_GETFL) & O_NONBLOCK ? "set" : "clear",
	    fcntl(e->fd, F_GETFD) & FD_CLOEXEC ? "set" : "clear");
	say("  our port is the listener's: %s",
	    say_name(e->fd, false, "getsockname") == e->port ? "yes" : "no");
	say("  peer port is the client's: %s",
	    say_name(e->fd, true, "getpeername") == client_port ? "yes" : "no");
	set_nonblock(e->fd, false);
	recv_pattern(e->fd, 84, 0, 100, "request");
	send_pattern(e->fd, 85, 0, 100);
}

/* ---- IPv6 ---- */

static void ipv6_client(struct end *e)
{
	say_name(e->fd, false, "getsockname");
	say_name(e->fd, true, "getpeername");
	say_int_opt(e->fd, SOL_SOCKET, SO_DOMAIN, "SO_DOMAIN");
	send_pattern(e->fd, 86, 0, 1000000);
	say_rc("shutdown(SHUT_WR)", shutdown(e->fd, SHUT_WR));
	recv_to_eof(e->fd, "reply");
}

static void ipv6_server(struct end *e)
{
	say_name(e->fd, false, "getsockname");
	recv_pattern(e->fd, 86, 0, 1000000, "request");
	send_pattern(e->fd, 87, 0, 700000);
}

/* ---- FIONREAD and SO_RCVLOWAT ---- */

/* Waits, bounded, until FIONREAD shows want bytes; says what it shows. */
static void fionread_until(int fd, int want, const char *what)
{
	struct timespec pause = { 0, 1000 * 1000 };
	int n = -1;

	for (int waited = 0; waited < WAIT_MS; waited++) {
		if (ioctl(fd, FIONREAD, &n) < 0)
			fatal("ioctl(FIONREAD)");
		if (n >= want)
			break;
		nanosleep(&pause, NULL);
	}
	say("%s: FIONREAD = %d", what, n);
}

static void fionread_steps(struct end *e)
{
	char buf[2000];

	fionread_until(e->fd, 0, "empty");
	tell(e, GO);
	fionread_until(e->fd, 1234, "1234 sent");
	say_rc("read(1000)", read(e->fd, buf, 1000));
	fionread_until(e->fd, 0, "after reading 1000");
	say_rc("read(1000)", read(e->fd, buf, 1000));
	fionread_until(e->fd, 0, "after reading the rest");
	tell(e, MORE);
	wait_for(e->fd, POLLIN);
	fionread_until(e->fd, 0, "at EOF");
}

/* FIONREAD before the connection's first read. */
static void fionread_fresh_client(struct end *e)
{
	fionread_steps(e);
}

static void fionread_client(struct end *e)
{
	greet(e);
	fionread_steps(e);
}

static void fionread_server(struct end *e)
{
	greet(e);
	expect(e, GO);
	send_pattern(e->fd, 88, 0, 1234);
	expect(e, MORE);
}

static void fionread_fresh_server(struct end *e)
{
	expect(e, GO);
	send_pattern(e->fd, 88, 0, 1234);
	expect(e, MORE);
}

static void rcvlowat_client(struct end *e)
{
	char buf[200];
	ssize_t n;

	greet(e);
	set_int_opt(e->fd, SOL_SOCKET, SO_RCVLOWAT, 100, "SO_RCVLOWAT");
	say_int_opt(e->fd, SOL_SOCKET, SO_RCVLOWAT, "SO_RCVLOWAT");
	tell(e, GO);
	fionread_until(e->fd, 50, "50 sent");
	say_mask("poll below the mark", poll_now(e->fd, ALL_EVENTS));
	tell(e, MORE);
	say_mask("wait for the mark", wait_for(e->fd, POLLIN));
	n = read(e->fd, buf, sizeof(buf));
	say_rc("read(200)", n);
	if (n > 0)
		say("  bytes %s", pattern_ok((uint8_t *)buf, (size_t)n, 89, 0) ? "match" : "DIFFER");
	tell(e, DONE);
}

static void rcvlowat_server(struct end *e)
{
	greet(e);
	expect(e, GO);
	send_pattern(e->fd, 89, 0, 50);
	expect(e, MORE);
	send_pattern(e->fd, 89, 50, 60);
	expect(e, DONE);
}

const struct diff_case opt_cases[] = {
	{ "sockopts", sockopts_client, sockopts_server, .conns = 1 },
	{ "short_optlen", short_optlen_client, short_optlen_server, .conns = 1 },
	{ "names", names_client, names_server, .raw = true, .conns = 1 },
	{ "ipv6", ipv6_client, ipv6_server, .family = AF_INET6, .conns = 1 },
	{ "fionread", fionread_client, fionread_server, .conns = 1 },
	{ "fionread_fresh", fionread_fresh_client, fionread_fresh_server, .conns = 1 },
	{ "rcvlowat", rcvlowat_client, rcvlowat_server, .conns = 1 },
	{ NULL },
};
