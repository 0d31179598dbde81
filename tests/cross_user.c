// SPDX-License-Identifier: MIT
/*
 * Peers of two users.  Shared memory is shared with the own user only,
 * unless both ends' policies name each other ("allow-user"): then it is
 * shared memory, otherwise TCP with the reason recorded and every byte
 * intact.  Runs the peers as two unprivileged uids, so it needs root.
 *
 * Cookies are no secret: an allowed user may propose with the cookie of a
 * socket of another user.  The last round does so (its socket is made
 * while the client runs as a third user), and the server must see that
 * the socket it accepted is not the proposer's user's and decline.
 */
#include <grp.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"

#define SERVER_UID 64001
#define CLIENT_UID 64002
#define THIRD_UID 64003
#define BYTES (1 << 20)

struct round {
	const char *server_policy;
	const char *client_policy;
	int mode;           /* expected on both ends */
	uint32_t client_reason; /* the client's fallback reason, exactly */
	bool third_socket;  /* the client's socket is made by THIRD_UID */
	const char *what;
};

static const struct round rounds[] = {
	{ "", "", USMC_MODE_FALLBACK, USMC_DECL_PEERNOSMC, false, "nobody allowed" },
	{ "allow-user 64002", "", USMC_MODE_FALLBACK, USMC_DECL_PEERNOSMC, false,
	  "only the server allows" },
	{ "", "allow-user 64001", USMC_MODE_FALLBACK, USMC_DECL_PEERNOSMC, false,
	  "only the client allows" },
	/* The server's channel takes other users, and closes the one it does not allow. */
	{ "allow-user 64003", "allow-user 64001", USMC_MODE_FALLBACK, USMC_DECL_PEERDECL, false,
	  "the server allows someone else" },
	{ "allow-user 64002", "allow-user 64001", USMC_MODE_SMCD, 0, false,
	  "both allow each other" },
	{ "allow-user 64099, 64002", "allow-user 64001", USMC_MODE_SMCD, 0, false,
	  "one of a list" },
	{ "allow-user 64002", "allow-user 64001", USMC_MODE_FALLBACK, USMC_DECL_FOREIGN, true,
	  "a socket of a third user" },
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

	if (cur->third_socket) {
		struct sockaddr_storage ss;
		socklen_t len = h_loopback(AF_INET, port, &ss);

		CHECK(setenv("USMC_POLICY", cur->client_policy, 1) == 0);
		fd = third_user_socket();
		become(CLIENT_UID, cur->client_policy);
		CHECK(usmc_connect(fd, (struct sockaddr *)&ss, len) == 0);
	} else {
		become(CLIENT_UID, cur->client_policy);
		fd = h_connect(AF_INET, H_USMC, port);
	}
	h_pattern(buf, sizeof(buf), port, 0);
	sum = h_fnv(H_FNV_INIT, buf, sizeof(buf));
	h_write_all(fd, buf, sizeof(buf));
	CHECK(usmc_shutdown(fd, SHUT_WR) == 0);
	h_read_all(fd, reply, sizeof(reply));
	CHECK(reply[0] == sizeof(buf) && reply[1] == sum);
	CHECK(usmc_info(fd, &info, sizeof(info)) == 0);
	printf("%-32s %s", cur->what, usmc_mode_str(info.mode));
	if (info.mode == USMC_MODE_FALLBACK)
		printf(" (%s, 0x%08x)", usmc_reason_str(info.fallback_reason), info.fallback_reason);
	printf(", %d bytes intact\n", BYTES);
	CHECK(info.mode == cur->mode);
	CHECK(info.fallback_reason == cur->client_reason);
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
		cur = &rounds[i];
		h_run_pair(server, client, &port_chan);
	}
	printf("cross_user: ok\n");
	return 0;
}
