// SPDX-License-Identifier: MIT
/*
 * Peers of two users.  Shared memory is shared with the own user only,
 * unless both ends' policies name each other ("allow-user"): then it is
 * shared memory, otherwise TCP with the reason recorded and every byte
 * intact.  Runs the peers as two unprivileged uids, so it needs root.
 *
 * Cookies are no secret: an allowed user may propose with the cookie of a
 * socket of another user.  One round does so (its socket is made while the
 * client runs as a third user), and the server must see that the socket it
 * accepted is not the proposer's user's and decline.
 *
 * A prefork server's worker accepts on the listener it inherited: the
 * allowed client of the other user gets shared memory from it as from the
 * listener's maker, without waiting out a CLC timeout.
 *
 * Channel names are anyone's to take: in the last round a third user,
 * allowed by the client too, holds the server's channel name first.  The
 * client must see that the channel is not the server's user's, and the
 * squatter must get no byte of the handshake.
 *
 * A process that changed its user after it opened the registry (a master
 * that runs as the server's user and forks its workers as another: nginx,
 * haproxy) still finds the server's listener there and proposes to it.
 * The server does not allow its user: the client, waiting in epoll_wait
 * for the reply with its request in its ring, must be woken by the
 * connection itself, as TCP wakes it, not by a timer's look (the
 * counters' handshake_timer_wakeups, of both users' files, stay as they
 * were), whether a listener's maker or a prefork worker accepts.  Told so
 * once, it asks the maker no more (serve_one).  So too after a crowd of a
 * third user, each of its processes holding a channel to the listener
 * the same way, more of them than the listener holds such channels for
 * all users: the crowd fills only its own user's share.
 */
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "counters.h"
#include "harness.h"
#include "usmc_core.h"
#include "usmc_registry.h"

#define SERVER_UID 64001
#define CLIENT_UID 64002
#define THIRD_UID 64003
#define BYTES (1 << 20)

struct round {
	const char *server_policy;
	const char *client_policy;
	int mode;           /* expected on both ends */
	uint32_t client_reason; /* the client's fallback reason, exactly */
	enum { PLAIN_ROUND, THIRD_SOCKET, PREFORK, SQUATTER, INHERITED, INHERITED_PREFORK,
	       INHERITED_CROWDED } twist;
	const char *what;
	uint32_t reason;    /* the client's fallback reason */
};

/*
 * A client that names no other user, or knocks where a server that names
 * nobody has no name, cannot tell a usmc server from a plain one
 * (0x03010000); a server that names others refuses the link group with
 * its reason (0x03000002).
 */
static const struct round rounds[] = {
	{ "", "", USMC_MODE_FALLBACK, USMC_DECL_PEERNOSMC, PLAIN_ROUND, "nobody allowed" },
	{ "allow-user 64002", "", USMC_MODE_FALLBACK, USMC_DECL_PEERNOSMC, PLAIN_ROUND,
	  "only the server allows" },
	{ "", "allow-user 64001", USMC_MODE_FALLBACK, USMC_DECL_PEERNOSMC, PLAIN_ROUND,
	  "only the client allows" },
	/* The server's channel takes other users, and declines the one it does not allow. */
	{ "allow-user 64003", "allow-user 64001", USMC_MODE_FALLBACK, USMC_DECL_FOREIGN, PLAIN_ROUND,
	  "the server allows someone else" },
	{ "allow-user 64002", "allow-user 64001", USMC_MODE_SMCD, 0, PLAIN_ROUND,
	  "both allow each other" },
	{ "allow-user 64099, 64002", "allow-user 64001", USMC_MODE_SMCD, 0, PLAIN_ROUND,
	  "one of a list" },
	{ "allow-user 64002", "allow-user 64001", USMC_MODE_FALLBACK, USMC_DECL_FOREIGN,
	  THIRD_SOCKET, "a socket of a third user" },
	{ "allow-user 64002", "allow-user 64001", USMC_MODE_SMCD, 0, PREFORK,
	  "a prefork server's worker" },
	/* The server's user's registry, opened before the client became another user. */
	{ "", "", USMC_MODE_FALLBACK, USMC_DECL_FOREIGN, INHERITED,
	  "the server's registry, inherited" },
	{ "", "", USMC_MODE_FALLBACK, USMC_DECL_FOREIGN, INHERITED_PREFORK,
	  "the same, to a prefork worker" },
	{ "", "", USMC_MODE_FALLBACK, USMC_DECL_FOREIGN, INHERITED_CROWDED,
	  "the same, after a crowd" },
	/* The squatter's channel is refused, and the third user has no listener of its own. */
	{ "allow-user 64002", "allow-user 64001 64003", USMC_MODE_FALLBACK, USMC_DECL_PEERNOSMC,
	  SQUATTER, "a squatter of the channel name" },
};

/* More than the channels a listener held to refuse, for all users at once, before. */
#define CROWD 20

static struct h_chan port_chan, squatted, crowd_in, crowd_hold;
static const struct round *cur;


/* A usmc socket owned by THIRD_UID (sock_diag shows its uid), for the client's use. */
static int third_user_socket(void)
{
	int fd;

	CHECK(setresgid(THIRD_UID, THIRD_UID, 0) == 0);
	CHECK(setresuid(THIRD_UID, THIRD_UID, 0) == 0);
	fd = usmc_socket(AF_INET, SOCK_STREAM, IPPROTO_SMC);
	CHECK(fd >= 0);
	CHECK(setresuid(0, 0, 0) == 0);
	CHECK(setresgid(0, 0, 0) == 0);
	return fd;
}

static bool inherited(void)
{
	return cur->twist == INHERITED || cur->twist == INHERITED_PREFORK ||
	       cur->twist == INHERITED_CROWDED;
}

/*
 * Accepts the round's connections (two where the client inherited the
 * registry) and echoes each one's length and checksum.  The first of an
 * inherited round is declined as another user's.  Its client then knows:
 * its second connection toward our own listener comes without a
 * Proposal; one to a prefork worker asks again, on a channel of its own.
 */
static int serve_one(void *arg)
{
	int lfd = (int)(intptr_t)arg;

	/* The crowd's connections came first: each declined, as the client's will be. */
	for (int i = 0; cur->twist == INHERITED_CROWDED && i < CROWD; i++) {
		int fd = usmc_accept(lfd, NULL, NULL);

		CHECK(fd >= 0);
		h_check_mode(fd, USMC_MODE_FALLBACK);
		CHECK(usmc_close(fd) == 0);
	}
	for (int i = 0; i < (inherited() ? 2 : 1); i++) {
		int fd = usmc_accept(lfd, NULL, NULL);
		uint64_t sum, len, reply[2];
		struct usmc_info info;

		CHECK(fd >= 0);
		len = h_read_to_eof(fd, &sum, 65536, NULL);
		reply[0] = len;
		reply[1] = sum;
		h_write_all(fd, reply, sizeof(reply));
		h_check_mode(fd, cur->mode);
		CHECK(usmc_info(fd, &info, sizeof(info)) == 0);
		bool asked_again = !i || cur->twist == INHERITED_PREFORK;

		if (inherited() &&
		    info.fallback_reason != (asked_again ? USMC_DECL_FOREIGN : USMC_DECL_PEERNOSMC)) {
			fprintf(stderr, "%s: server's connection %d: %s\n", cur->what, i,
				usmc_reason_str(info.fallback_reason));
			CHECK(0);
		}
		CHECK(usmc_close(fd) == 0);
	}
	return 0;
}

static int server(void *arg)
{
	uint16_t port;
	int lfd;

	(void)arg;
	h_become(SERVER_UID, cur->server_policy);
	if (cur->twist == SQUATTER) {
		/* The port first, the listen (and its channel) once the squatter holds the name. */
		struct sockaddr_storage ss;
		socklen_t len = h_loopback(AF_INET, 0, &ss);

		lfd = usmc_socket(AF_INET, SOCK_STREAM, IPPROTO_SMC);
		CHECK(lfd >= 0 && usmc_bind(lfd, (struct sockaddr *)&ss, len) == 0);
		CHECK(getsockname(lfd, (struct sockaddr *)&ss, &len) == 0);
		port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
		h_chan_send(&port_chan, port);
		h_chan_recv(&squatted);
		CHECK(usmc_listen(lfd, 16) == 0);
	} else {
		lfd = h_listen(AF_INET, H_USMC, &port);
	}
	if (cur->twist == PREFORK || cur->twist == INHERITED_PREFORK) {
		/* The worker waits in accept before the client may connect. */
		pid_t w = h_fork(serve_one, (void *)(intptr_t)lfd);

		usleep(100 * 1000);
		h_chan_send(&port_chan, port);
		CHECK(h_wait_ok(w));
	} else {
		h_chan_send(&port_chan, port);
		CHECK(serve_one((void *)(intptr_t)lfd) == 0);
	}
	CHECK(usmc_close(lfd) == 0);
	return 0;
}

/* Opens the registry as the server's user (a listener of its own, closed), then becomes uid. */
static void registry_of_server(uid_t uid)
{
	uint16_t port;
	int lfd;

	CHECK(setresgid(SERVER_UID, SERVER_UID, 0) == 0);
	CHECK(setresuid(SERVER_UID, SERVER_UID, 0) == 0);
	lfd = h_listen(AF_INET, H_USMC, &port);
	CHECK(usmc_close(lfd) == 0);
	CHECK(setresuid(0, 0, 0) == 0);
	CHECK(setresgid(0, 0, 0) == 0);
	h_become(uid, cur->client_policy);
}

/* Waits in epoll_wait, with nothing else to look at, for the reply. */
static void reply_wait(int fd)
{
	struct epoll_event ev = { .events = EPOLLIN };
	int ep = epoll_create1(EPOLL_CLOEXEC);

	CHECK(ep >= 0 && usmc_epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) == 0);
	CHECK(usmc_epoll_wait(ep, &ev, 1, -1) == 1);
	CHECK(close(ep) == 0);
}

static int client(void *arg)
{
	static uint8_t buf[BYTES];
	uint16_t port = (uint16_t)(uintptr_t)arg;
	/* A request that fits its ring: it waits there, unanswered, when the client waits. */
	size_t len = inherited() ? 3000 : sizeof(buf);
	uint64_t reply[2], sum;
	struct usmc_info info;
	int fd;

	if (cur->twist == THIRD_SOCKET) {
		struct sockaddr_storage ss;
		socklen_t len = h_loopback(AF_INET, port, &ss);

		CHECK(setenv("USMC_POLICY", cur->client_policy, 1) == 0);
		fd = third_user_socket();
		h_become(CLIENT_UID, cur->client_policy);
		CHECK(usmc_connect(fd, (struct sockaddr *)&ss, len) == 0);
	} else if (inherited()) {
		registry_of_server(CLIENT_UID);
		fd = h_connect(AF_INET, H_USMC, port);
	} else {
		h_become(CLIENT_UID, cur->client_policy);
		fd = h_connect(AF_INET, H_USMC, port);
	}
	for (int i = 0; i < (inherited() ? 2 : 1); i++) {
		if (i)
			fd = h_connect(AF_INET, H_USMC, port);
		h_pattern(buf, len, port + i, 0);
		sum = h_fnv(H_FNV_INIT, buf, len);
		h_write_all(fd, buf, len);
		CHECK(usmc_shutdown(fd, SHUT_WR) == 0);
		if (inherited())
			reply_wait(fd);
		h_read_all(fd, reply, sizeof(reply));
		CHECK(reply[0] == len && reply[1] == sum);
		CHECK(usmc_info(fd, &info, sizeof(info)) == 0);
		printf("%-32s %s", i ? "  and again" : cur->what, usmc_mode_str(info.mode));
		if (info.mode == USMC_MODE_FALLBACK)
			printf(" (%s, 0x%08x)", usmc_reason_str(info.fallback_reason),
			       info.fallback_reason);
		printf(", %zu bytes intact\n", len);
		CHECK(info.mode == cur->mode);
		CHECK(info.fallback_reason == cur->client_reason);
		CHECK(usmc_close(fd) == 0);
	}
	return 0;
}

/*
 * Holds the server's channel name as THIRD_UID and takes one connection:
 * fails if a byte of the handshake comes through it.
 */
static int squatter(void *arg)
{
	struct sockaddr_un sun;
	socklen_t len = reg_listener_addr(SERVER_UID, (uint16_t)(uintptr_t)arg, true, &sun);
	struct pollfd p;
	char buf[256];
	ssize_t n;
	int lfd, fd;

	h_become(THIRD_UID, "allow-user 64002");
	lfd = socket(AF_UNIX, SOCK_SEQPACKET, 0);
	CHECK(lfd >= 0 && bind(lfd, (struct sockaddr *)&sun, len) == 0 && listen(lfd, 4) == 0);
	h_chan_send(&squatted, 1);
	p = (struct pollfd){ .fd = lfd, .events = POLLIN };
	if (poll(&p, 1, 10000) != 1)
		return 0; /* nobody came: nothing leaked */
	fd = accept(lfd, NULL, NULL);
	CHECK(fd >= 0);
	p = (struct pollfd){ .fd = fd, .events = POLLIN };
	n = poll(&p, 1, 10000) == 1 ? recv(fd, buf, sizeof(buf), MSG_DONTWAIT) : 0;
	if (n > 0)
		fprintf(stderr, "squatter: %zd bytes of a handshake reached the wrong user\n", n);
	CHECK(n <= 0);
	return 0;
}

/* The server waits for the squatter to hold its channel name, then listens. */
static void squatted_round(void)
{
	pid_t srv, cli, sq;
	uint16_t port;

	h_chan_open(&port_chan);
	h_chan_open(&squatted);
	srv = h_fork(server, NULL);
	port = (uint16_t)h_chan_recv(&port_chan);
	sq = h_fork(squatter, (void *)(uintptr_t)port);
	CHECK(h_chan_recv(&port_chan) == port);
	cli = h_fork(client, (void *)(uintptr_t)port);
	CHECK(h_wait_ok(cli));
	CHECK(h_wait_ok(srv));
	CHECK(h_wait_ok(sq));
}

/*
 * One of the crowd: as the client, but THIRD_UID; its link group, and so
 * its channel, lives as long as the process, which waits for the round's end.
 */
static int crowd_member(void *arg)
{
	char b;
	int fd;

	CHECK(close(crowd_hold.wr) == 0);
	registry_of_server(THIRD_UID);
	fd = h_connect(AF_INET, H_USMC, (uint16_t)(uintptr_t)arg);
	h_chan_send(&crowd_in, 1);
	CHECK(read(crowd_hold.rd, &b, 1) == 0);
	CHECK(usmc_close(fd) == 0);
	return 0;
}

/* The crowd connects, and its channels wait, before the client comes. */
static void crowded_round(void)
{
	pid_t srv, cli, crowd[CROWD];
	uint16_t port;

	h_chan_open(&port_chan);
	h_chan_open(&crowd_in);
	h_chan_open(&crowd_hold);
	srv = h_fork(server, NULL);
	port = (uint16_t)h_chan_recv(&port_chan);
	for (int i = 0; i < CROWD; i++)
		crowd[i] = h_fork(crowd_member, (void *)(uintptr_t)port);
	for (int i = 0; i < CROWD; i++)
		h_chan_recv(&crowd_in);
	cli = h_fork(client, (void *)(uintptr_t)port);
	CHECK(h_wait_ok(cli));
	CHECK(h_wait_ok(srv));
	CHECK(close(crowd_hold.wr) == 0);
	for (int i = 0; i < CROWD; i++)
		CHECK(h_wait_ok(crowd[i]));
	close(crowd_hold.rd);
	close(crowd_in.rd);
	close(crowd_in.wr);
	close(port_chan.rd);
	close(port_chan.wr);
}

/* The handshakes that a timer's look settled, in both users' counters. */
static uint64_t timer_settled(void)
{
	return counter_of(SERVER_UID, USMC_STAT_HS_TIMER_WAKEUPS) +
	       counter_of(CLIENT_UID, USMC_STAT_HS_TIMER_WAKEUPS);
}

int main(void)
{
	if (geteuid() != 0) {
		fprintf(stderr, "cross_user: needs root, to run its peers as two users\n");
		return 1;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	/* The parent makes no usmc call: each child opens its own user's registry. */
	for (size_t i = 0; i < sizeof(rounds) / sizeof(rounds[0]); i++) {
		uint64_t settled = timer_settled();

		cur = &rounds[i];
		if (cur->twist == SQUATTER)
			squatted_round();
		else if (cur->twist == INHERITED_CROWDED)
			crowded_round();
		else
			h_run_pair(server, client, &port_chan);
		if (inherited() && timer_settled() != settled) {
			fprintf(stderr, "%s: %llu handshakes settled by a timer's look\n", cur->what,
				(unsigned long long)(timer_settled() - settled));
			CHECK(0);
		}
	}
	printf("cross_user: ok\n");
	return 0;
}
