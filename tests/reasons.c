// SPDX-License-Identifier: MIT
/*
 * Each end's fallback reason, exactly, in each case decided before or
 * during the handshake: a swapped code fails here.  Every process sets its
 * environment before its first usmc call, as a program started so would.
 * Other cases are pinned where they are made: the policy (policy), another
 * user (cross_user), a refused memfd (exhaust_memfd_*), a shared listener
 * (fork_listener).
 */
#include <arpa/inet.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "harness.h"

struct side {
	enum h_kind kind;
	const char *env;   /* NAME=VALUE set before the first usmc call, or NULL */
	uint32_t reason;   /* the fallback reason this end must record (0: not checked) */
	bool raw_accept;   /* a usmc listener whose accept() is the kernel's: no answer comes */
	bool closes;       /* (server) closes the connection at once, unread */
};

struct round {
	const char *what;
	struct side server, client;
};

static const struct round rounds[] = {
	{ "usmc client, plain server", { H_PLAIN }, { H_USMC, NULL, USMC_DECL_PEERNOSMC } },
	{ "plain client, usmc server", { H_USMC, NULL, USMC_DECL_PEERNOSMC }, { H_PLAIN } },
	{ "client with USMC_DISABLE=1", { H_USMC, NULL, USMC_DECL_PEERNOSMC },
	  { H_USMC, "USMC_DISABLE=1", USMC_DECL_DISABLED } },
	{ "server with USMC_DISABLE=1", { H_USMC, "USMC_DISABLE=1", USMC_DECL_DISABLED },
	  { H_USMC, NULL, USMC_DECL_PEERNOSMC } },
	{ "client policy tcp", { H_USMC, NULL, USMC_DECL_PEERNOSMC },
	  { H_USMC, "USMC_POLICY=tcp *", USMC_DECL_POLICY } },
	/*
	 * A server that holds the connection and never answers: the client
	 * withdraws its Proposal and, with no word, resets the connection
	 * rather than guess the server's mode (hs_stall_long).
	 */
	/* Nor will it, once its end of TCP is closed: the client need not wait for that. */
	{ "server that closes unanswered", { H_USMC, NULL, 0, true, true },
	  { H_USMC, "USMC_CLC_TIMEOUT_MS=60000", USMC_DECL_PEERNOSMC } },
};

static const struct round *cur;
static struct h_chan port_chan, client_done;

static void set_env(const char *env)
{
	char buf[128], *eq;

	if (!env)
		return;
	snprintf(buf, sizeof(buf), "%s", env);
	eq = strchr(buf, '=');
	CHECK(eq);
	*eq = 0;
	CHECK(setenv(buf, eq + 1, 1) == 0);
}

static void check_reason(int fd, const struct side *side, const char *end)
{
	struct usmc_info info;

	CHECK(usmc_info(fd, &info, sizeof(info)) == 0);
	if (side->kind == H_PLAIN || !side->reason)
		return;
	if (info.mode != USMC_MODE_FALLBACK || info.fallback_reason != side->reason)
		fprintf(stderr, "%s: %s: %s 0x%08x, want fallback 0x%08x\n", cur->what, end,
			usmc_mode_str(info.mode), info.fallback_reason, side->reason);
	CHECK(info.mode == USMC_MODE_FALLBACK && info.fallback_reason == side->reason);
}

static int server(void *arg)
{
	uint16_t port;
	uint8_t b;
	int lfd, fd;

	(void)arg;
	set_env(cur->server.env);
	lfd = h_listen(AF_INET, cur->server.kind, &port);
	h_chan_send(&port_chan, port);
	fd = cur->server.raw_accept ? accept(lfd, NULL, NULL) : usmc_accept(lfd, NULL, NULL);
	CHECK(fd >= 0);
	if (cur->server.closes) {
		/* The listener, and with it the channel, stays until the client has seen it. */
		CHECK(close(fd) == 0);
		h_chan_recv(&client_done);
		CHECK(usmc_close(lfd) == 0);
		return 0;
	}
	h_read_all(fd, &b, 1);
	CHECK(b == 'x');
	h_write_all(fd, "y", 1);
	check_reason(fd, &cur->server, "server");
	CHECK(usmc_close(fd) == 0 && usmc_close(lfd) == 0);
	return 0;
}

static int client(void *arg)
{
	uint8_t b;
	int fd;

	set_env(cur->client.env);
	fd = h_connect(AF_INET, cur->client.kind, (uint16_t)(uintptr_t)arg);
	h_write_all(fd, "x", 1);
	if (cur->server.closes) {
		/* End of file or a reset, as TCP gives it, well within the CLC timeout. */
		CHECK(usmc_read(fd, &b, 1) <= 0);
	} else {
		h_read_all(fd, &b, 1);
		CHECK(b == 'y');
	}
	check_reason(fd, &cur->client, "client");
	CHECK(usmc_close(fd) == 0);
	h_chan_send(&client_done, 1);
	return 0;
}

/* A socket of one family connected to an address of the other: a configuration error. */
static int family_mismatch(void *arg)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(9),
				   .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct usmc_info info;
	int fd = usmc_socket(AF_INET6, SOCK_STREAM, IPPROTO_SMC);

	(void)arg;
	CHECK(fd >= 0);
	CHECK(usmc_connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == -1);
	CHECK(usmc_info(fd, &info, sizeof(info)) == 0);
	CHECK(info.mode == USMC_MODE_FALLBACK && info.fallback_reason == USMC_DECL_CNFERR);
	CHECK(usmc_close(fd) == 0);
	return 0;
}

static struct h_chan ready;

static int early_client(void *arg)
{
	enum h_kind kind = (enum h_kind)(uintptr_t)arg & 1;
	uint16_t port = (uint16_t)((uintptr_t)arg >> 1);
	char mine = kind == H_USMC ? 'a' : 'p', b;
	int fd = h_connect(AF_INET, kind, port);

	h_chan_send(&ready, 1);
	h_write_all(fd, &mine, 1);
	h_read_all(fd, &b, 1);
	CHECK(b == mine - 'a' + 'A');
	if (kind == H_USMC)
		h_check_mode(fd, USMC_MODE_SMCD);
	CHECK(usmc_close(fd) == 0);
	return 0;
}

/*
 * A plain client accepted while a usmc client's Proposal waits for the
 * same port: the cookie tells them apart, and each gets its own mode.
 */
static int plain_before_proposer(void *arg)
{
	struct usmc_info info;
	pid_t plain, smc;
	uint16_t port;
	int lfd = h_listen(AF_INET, H_USMC, &port), fd;
	char b;

	(void)arg;
	h_chan_open(&ready);
	plain = h_fork(early_client, (void *)(uintptr_t)((uintptr_t)port << 1 | H_PLAIN));
	h_chan_recv(&ready);
	smc = h_fork(early_client, (void *)(uintptr_t)((uintptr_t)port << 1 | H_USMC));
	h_chan_recv(&ready);
	/* Both connected, the plain one first: it comes first out of accept(). */
	for (char want = 'p';; want = 'a') {
		fd = usmc_accept(lfd, NULL, NULL);
		CHECK(fd >= 0);
		h_read_all(fd, &b, 1);
		if (b != want)
			fprintf(stderr, "read '%c' where the %s client wrote '%c'\n", b,
				want == 'p' ? "plain" : "usmc", want);
		CHECK(b == want);
		b = (char)(want - 'a' + 'A');
		h_write_all(fd, &b, 1);
		CHECK(usmc_info(fd, &info, sizeof(info)) == 0);
		CHECK(want == 'p' ? info.mode == USMC_MODE_FALLBACK &&
					    info.fallback_reason == USMC_DECL_PEERNOSMC
				  : info.mode == USMC_MODE_SMCD);
		CHECK(usmc_close(fd) == 0);
		if (want == 'a')
			break;
	}
	CHECK(h_wait_ok(plain) && h_wait_ok(smc));
	CHECK(usmc_close(lfd) == 0);
	return 0;
}

int main(void)
{
	/* The parent makes no usmc call: each child reads its own environment. */
	for (size_t i = 0; i < sizeof(rounds) / sizeof(rounds[0]); i++) {
		cur = &rounds[i];
		h_chan_open(&client_done);
		h_run_pair(server, client, &port_chan);
		close(client_done.rd);
		close(client_done.wr);
		printf("%-30s ok\n", cur->what);
	}
	CHECK(h_wait_ok(h_fork(family_mismatch, NULL)));
	printf("%-30s ok\n", "IPv6 socket, IPv4 address");
	CHECK(h_wait_ok(h_fork(plain_before_proposer, NULL)));
	printf("%-30s ok\nreasons: ok\n", "plain client before a proposer");
	return 0;
}
