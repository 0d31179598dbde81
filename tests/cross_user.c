// SPDX-License-Identifier: MIT
/*
 * Peers of two users.  Shared memory is shared with the own user only,
 * unless both ends' policies name each other ("allow-user"): then it is
 * shared memory, otherwise TCP with the reason recorded and every byte
 * intact.  Runs the peers as two unprivileged uids, so it needs root.
 */
#include <grp.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"

#define SERVER_UID 64001
#define CLIENT_UID 64002
#define BYTES (1 << 20)

struct round {
	const char *server_policy;
	const char *client_policy;
	int mode;           /* expected on both ends */
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
	{ "", "", USMC_MODE_FALLBACK, "nobody allowed", USMC_DECL_PEERNOSMC },
	{ "allow-user 64002", "", USMC_MODE_FALLBACK, "only the server allows", USMC_DECL_PEERNOSMC },
	{ "", "allow-user 64001", USMC_MODE_FALLBACK, "only the client allows", USMC_DECL_PEERNOSMC },
	{ "allow-user 64003", "allow-user 64001", USMC_MODE_FALLBACK,
	  "the server allows someone else", USMC_DECL_FOREIGN },
	{ "allow-user 64002", "allow-user 64001", USMC_MODE_SMCD, "both allow each other", 0 },
	{ "allow-user 64099, 64002", "allow-user 64001", USMC_MODE_SMCD, "one of a list", 0 },
};

static struct h_chan port_chan;
static const struct round *cur;

static void become(uid_t uid, const char *policy)
{
	CHECK(setgroups(0, NULL) == 0);
	CHECK(setresgid(uid, uid, uid) == 0);
	CHECK(setresuid(uid, uid, uid) == 0);
	CHECK(setenv("USMC_POLICY", policy, 1) == 0);
}

static int server(void *arg)
{
	uint64_t sum, len, reply[2];
	uint16_t port;
	int lfd, fd;

	(void)arg;
	become(SERVER_UID, cur->server_policy);
	lfd = h_listen(AF_INET, H_USMC, &port);
	h_chan_send(&port_chan, port);
	fd = usmc_accept(lfd, NULL, NULL);
	CHECK(fd >= 0);
	len = h_read_to_eof(fd, &sum, 65536, NULL);
	reply[0] = len;
	reply[1] = sum;
	h_write_all(fd, reply, sizeof(reply));
	h_check_mode(fd, cur->mode);
	CHECK(usmc_close(fd) == 0 && usmc_close(lfd) == 0);
	return 0;
}

static int client(void *arg)
{
	static uint8_t buf[BYTES];
	uint16_t port = (uint16_t)(uintptr_t)arg;
	uint64_t reply[2], sum;
	struct usmc_info info;
	int fd;

	become(CLIENT_UID, cur->client_policy);
	fd = h_connect(AF_INET, H_USMC, port);
	h_pattern(buf, sizeof(buf), port, 0);
	sum = h_fnv(H_FNV_INIT, buf, sizeof(buf));
	h_write_all(fd, buf, sizeof(buf));
	CHECK(usmc_shutdown(fd, SHUT_WR) == 0);
	h_read_all(fd, reply, sizeof(reply));
	CHECK(reply[0] == sizeof(buf) && reply[1] == sum);
	CHECK(usmc_info(fd, &info, sizeof(info)) == 0);
	CHECK(info.mode == cur->mode);
	CHECK(info.fallback_reason == cur->reason);
	printf("%-32s %s", cur->what, usmc_mode_str(info.mode));
	if (info.mode == USMC_MODE_FALLBACK)
		printf(" (%s)", usmc_reason_str(info.fallback_reason));
	printf(", %d bytes intact\n", BYTES);
	CHECK(usmc_close(fd) == 0);
	return 0;
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
		pid_t srv, cli;
		uint16_t port;

		cur = &rounds[i];
		h_chan_open(&port_chan);
		srv = h_fork(server, NULL);
		port = (uint16_t)h_chan_recv(&port_chan);
		cli = h_fork(client, (void *)(uintptr_t)port);
		CHECK(h_wait_ok(cli));
		CHECK(h_wait_ok(srv));
		close(port_chan.rd);
		close(port_chan.wr);
	}
	printf("cross_user: ok\n");
	return 0;
}
