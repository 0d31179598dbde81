// SPDX-License-Identifier: MIT
/*
 * TCP semantics, each behaviour once, run three ways:
 *
 *     semantics --case NAME --way tcp|fallback|fallback-server|smc [--family 4|6]
 *
 * The parent is the client, a forked child the server.  Both check the
 * mode usmc_info reports, run their half of the case, meet at a barrier
 * and close.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <string.h>

#include "sem.h"

/* The whole run, a safety net against a hang: a case takes well under a second. */
#define SEM_ALARM_S 25

enum { MSG_PORT_BASE = 1u << 20, MSG_ACCEPTED = 0xacce, MSG_CONNECTED = 0xc0e, MSG_DONE = 0xd0e };

static const struct sem_case *const tables[] = {
	sem_io_cases, sem_close_cases, sem_poll_cases, sem_opt_cases,
};

/* ---- helpers shared by the case files ---- */

void sem_tell(struct sem_end *e, uint64_t v)
{
	CHECK(write(e->tell_fd, &v, sizeof(v)) == sizeof(v));
}

uint64_t sem_hear(struct sem_end *e)
{
	struct pollfd p = { .fd = e->hear_fd, .events = POLLIN };
	uint64_t v;

	ssize_t n;

	CHECK(poll(&p, 1, SEM_WAIT_MS) == 1);
	n = read(e->hear_fd, &v, sizeof(v));
	if (n == 0)
		fprintf(stderr, "[%d] the other end is gone\n", (int)getpid());
	CHECK(n == sizeof(v));
	return v;
}

void sem_expect(struct sem_end *e, uint64_t v)
{
	uint64_t got = sem_hear(e);

	if (got != v)
		fprintf(stderr, "[%d] out of step: heard %#llx, expected %#llx\n", (int)getpid(),
			(unsigned long long)got, (unsigned long long)v);
	CHECK(got == v);
}

void sem_set_nonblock(int fd, bool on)
{
	int fl = usmc_fcntl(fd, F_GETFL);

	CHECK(fl >= 0);
	CHECK(usmc_fcntl(fd, F_SETFL, on ? fl | O_NONBLOCK : fl & ~O_NONBLOCK) == 0);
}

short sem_poll1(int fd, short events, int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = events };
	int rc = usmc_poll(&p, 1, timeout_ms);

	CHECK(rc >= 0);
	return rc ? p.revents : 0;
}

short sem_wait_for(int fd, short events)
{
	short rev = sem_poll1(fd, events, SEM_WAIT_MS);

	if (!rev)
		fprintf(stderr, "[%d] fd %d: no event %#x in %d ms\n", (int)getpid(), fd,
			(unsigned)events, SEM_WAIT_MS);
	CHECK(rev != 0);
	return rev;
}

void sem_check_pattern(const uint8_t *buf, size_t len, uint64_t seed, uint64_t off)
{
	uint8_t *want = malloc(len ? len : 1);

	CHECK(want);
	h_pattern(want, len, seed, off);
	for (size_t i = 0; i < len; i++) {
		if (buf[i] != want[i])
			fprintf(stderr, "[%d] byte %llu: %#x, expected %#x\n", (int)getpid(),
				(unsigned long long)(off + i), buf[i], want[i]);
		CHECK(buf[i] == want[i]);
	}
	free(want);
}

void sem_send_pattern(int fd, uint64_t seed, uint64_t off, size_t len)
{
	uint8_t *buf = malloc(len ? len : 1);

	CHECK(buf);
	h_pattern(buf, len, seed, off);
	h_write_all(fd, buf, len);
	free(buf);
}

void sem_recv_pattern(int fd, uint64_t seed, uint64_t off, size_t len)
{
	uint8_t *buf = malloc(len ? len : 1);

	CHECK(buf);
	h_read_all(fd, buf, len);
	sem_check_pattern(buf, len, seed, off);
	free(buf);
}

void sem_recv_pattern_to_eof(int fd, uint64_t seed, size_t len)
{
	uint8_t want_buf[4096];
	uint64_t want = H_FNV_INIT, got, total;

	for (size_t off = 0; off < len; off += sizeof(want_buf)) {
		size_t n = len - off < sizeof(want_buf) ? len - off : sizeof(want_buf);

		h_pattern(want_buf, n, seed, off);
		want = h_fnv(want, want_buf, n);
	}
	total = h_read_to_eof(fd, &got, 65536, NULL);
	if (total != len || got != want)
		fprintf(stderr, "[%d] read %llu bytes sum %016llx; expected %zu sum %016llx\n",
			(int)getpid(), (unsigned long long)total, (unsigned long long)got, len,
			(unsigned long long)want);
	CHECK(total == len && got == want);
}

void sem_expect_eof(int fd)
{
	char c;
	ssize_t n;

	/* The socket may be non-blocking: the end of file may still be on its way. */
	CHECK(sem_wait_for(fd, POLLIN) & POLLIN);
	n = usmc_read(fd, &c, 1);

	if (n != 0)
		fprintf(stderr, "[%d] read after end of file: %zd (errno %d)\n", (int)getpid(), n,
			n < 0 ? errno : 0);
	CHECK(n == 0);
}

/* ---- connection set-up ---- */

static int listen_prepared(struct sem_end *e, sem_prep_fn prep)
{
	struct sockaddr_storage ss;
	socklen_t len = h_loopback(e->opts->family, 0, &ss);
	int fd = h_socket(e->opts->family, e->self, 0), one = 1;

	CHECK(usmc_setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == 0);
	if (prep)
		prep(fd, true);
	CHECK(usmc_bind(fd, (struct sockaddr *)&ss, len) == 0);
	CHECK(usmc_listen(fd, 16) == 0);
	CHECK(getsockname(fd, (struct sockaddr *)&ss, &len) == 0);
	e->port = ntohs(e->opts->family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
						   : ((struct sockaddr_in6 *)&ss)->sin6_port);
	return fd;
}

static int connect_prepared(struct sem_end *e, sem_prep_fn prep)
{
	struct sockaddr_storage ss;
	socklen_t len = h_loopback(e->opts->family, e->port, &ss);
	int fd = h_socket(e->opts->family, e->self, 0);

	if (prep)
		prep(fd, false);
	CHECK(usmc_connect(fd, (struct sockaddr *)&ss, len) == 0);
	return fd;
}

/*
 * The client learns the outcome of the handshake from the server's answer,
 * which the server sent before it told us it accepted: it is there to read.
 */
static void check_client_mode(struct sem_end *e)
{
	struct usmc_info info;

	for (int i = 0; i < SEM_WAIT_MS; i++) {
		CHECK(usmc_info(e->fd, &info, sizeof(info)) == 0);
		if (info.mode != USMC_MODE_HANDSHAKE)
			break;
		poll(NULL, 0, 1);
	}
	h_check_mode(e->fd, h_expected_mode(e->self, e->peer));
}

static void finish(struct sem_end *e)
{
	/* Neither end closes while the other may still use the connection. */
	sem_tell(e, MSG_DONE);
	sem_expect(e, MSG_DONE);
	if (e->fd >= 0)
		CHECK(usmc_close(e->fd) == 0);
}

static int server_main(void *arg)
{
	const struct sem_case *c = ((void **)arg)[0];
	struct sem_end *e = ((void **)arg)[1];
	const struct sem_end *cli = ((void **)arg)[2];
	int lfd;

	/* A dead client must show as end of file on our pipe, not as silence. */
	close(cli->tell_fd);
	close(cli->hear_fd);
	alarm(SEM_ALARM_S);
	lfd = listen_prepared(e, c->prep);

	sem_tell(e, MSG_PORT_BASE + e->port);
	e->fd = usmc_accept(lfd, NULL, NULL);
	CHECK(e->fd >= 0);
	CHECK(usmc_close(lfd) == 0);
	h_check_mode(e->fd, h_expected_mode(e->self, e->peer));
	sem_tell(e, MSG_ACCEPTED);
	/*
	 * A case may reset the connection at once (SO_LINGER {1, 0}): not
	 * before the client's connect() returned, which the reset would
	 * otherwise fail with ECONNRESET, over plain TCP too.
	 */
	sem_expect(e, MSG_CONNECTED);
	c->server(e);
	finish(e);
	return 0;
}

static const struct sem_case *find_case(const char *name)
{
	for (size_t t = 0; t < sizeof(tables) / sizeof(tables[0]); t++)
		for (const struct sem_case *c = tables[t]; c->name; c++)
			if (!strcmp(c->name, name))
				return c;
	return NULL;
}

static void list_cases(void)
{
	for (size_t t = 0; t < sizeof(tables) / sizeof(tables[0]); t++)
		for (const struct sem_case *c = tables[t]; c->name; c++)
			printf("%s\n", c->name);
}

/* Two pipes, one each way; each process keeps only its own ends. */
static void open_pipes(struct sem_end *cli, struct sem_end *srv)
{
	int c2s[2], s2c[2];

	CHECK(pipe2(c2s, O_CLOEXEC) == 0 && pipe2(s2c, O_CLOEXEC) == 0);
	cli->tell_fd = c2s[1];
	srv->hear_fd = c2s[0];
	srv->tell_fd = s2c[1];
	cli->hear_fd = s2c[0];
}

static int run_case(const struct sem_case *c, const struct h_opts *o)
{
	struct sem_end cli = { .opts = o, .self = o->client, .peer = o->server, .fd = -1 };
	struct sem_end srv = { .opts = o, .server = true, .self = o->server, .peer = o->client,
			       .fd = -1 };
	void *arg[3] = { (void *)c, &srv, &cli };
	uint64_t port;
	pid_t pid;

	open_pipes(&cli, &srv);
	pid = h_fork(server_main, arg);
	close(srv.tell_fd);
	close(srv.hear_fd);
	port = sem_hear(&cli);
	CHECK(port > MSG_PORT_BASE && port - MSG_PORT_BASE <= 65535);
	cli.port = (uint16_t)(port - MSG_PORT_BASE);
	cli.fd = connect_prepared(&cli, c->prep);
	sem_tell(&cli, MSG_CONNECTED);
	sem_expect(&cli, MSG_ACCEPTED);
	check_client_mode(&cli);
	c->client(&cli);
	finish(&cli);
	return h_wait_ok(pid) ? 0 : 1;
}

int main(int argc, char **argv)
{
	const struct sem_case *c = NULL;
	struct h_opts opts;

	h_parse_way(argc, argv, &opts);
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--list")) {
			list_cases();
			return 0;
		}
		if (!strcmp(argv[i], "--case") && i + 1 < argc && !(c = find_case(argv[i + 1]))) {
			fprintf(stderr, "no case %s\n", argv[i + 1]);
			return 2;
		}
	}
	if (!c) {
		fprintf(stderr, "usage: %s --case NAME [--way tcp|fallback|fallback-server|smc] "
				"[--family 4|6] | --list\n", argv[0]);
		return 2;
	}
	/*
	 * A dead peer shows as EPIPE on a pipe, not as a signal; the cases that
	 * are about SIGPIPE install their own handler.
	 */
	signal(SIGPIPE, SIG_IGN);
	/* A hang fails the test; the server sets its own alarm, fork does not pass it on. */
	alarm(SEM_ALARM_S);
	if (run_case(c, &opts))
		return 1;
	printf("semantics %s %s ipv%d: ok\n", c->name, h_way_name(&opts),
	       opts.family == AF_INET ? 4 : 6);
	return 0;
}
