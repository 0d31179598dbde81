// SPDX-License-Identifier: MIT
/*
 * A link group whose peer went while it was idle.  The server answers one
 * connection, waits for the client's close, and execs itself: its pid
 * stays, its channel closes.  The new image listens on the same port.
 * The client's link group toward it was put while the old image still
 * held the channel, so only the Proposal of the next connection finds
 * the end; that connection must go on another link group, in shared
 * memory on both ends with its bytes, rather than fall back.
 *
 *   lgr_peer_exec                 the test
 *   lgr_peer_exec again PORT FD   the server's new image (FD: to the client)
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "harness.h"

#define LEN 4096

static struct h_chan port_chan, to_client;

/* One connection: a request of LEN bytes, its checksum back, then the client's close. */
static void serve_one(int lfd)
{
	static uint8_t buf[LEN], want[LEN];
	uint64_t sum;
	int fd = usmc_accept(lfd, NULL, NULL);

	CHECK(fd >= 0);
	h_check_mode(fd, USMC_MODE_SMCD);
	h_read_all(fd, buf, LEN);
	h_pattern(want, LEN, 7, 0);
	CHECK(memcmp(buf, want, LEN) == 0);
	sum = h_fnv(FNV_INIT, buf, LEN);
	h_write_all(fd, &sum, sizeof(sum));
	CHECK(usmc_read(fd, buf, 1) == 0);
	CHECK(usmc_close(fd) == 0);
}

static int server(void *arg)
{
	char port_s[16], fd_s[16];
	uint16_t port;
	int lfd = h_listen(AF_INET, H_USMC, &port);

	(void)arg;
	h_chan_send(&port_chan, port);
	serve_one(lfd);
	CHECK(usmc_close(lfd) == 0);
	snprintf(port_s, sizeof(port_s), "%u", port);
	snprintf(fd_s, sizeof(fd_s), "%d", to_client.wr);
	execl("/proc/self/exe", "lgr_peer_exec", "again", port_s, fd_s, (char *)NULL);
	perror("execl");
	return 1;
}

/* The new image: the same process, listening on the same port again. */
static int server_again(uint16_t port, int to_client_fd)
{
	struct sockaddr_storage ss;
	socklen_t len = h_loopback(AF_INET, port, &ss);
	int lfd = h_socket(AF_INET, H_USMC, 0), one = 1;
	struct h_chan c = { .rd = -1, .wr = to_client_fd };

	CHECK(usmc_setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == 0);
	CHECK(usmc_bind(lfd, (struct sockaddr *)&ss, len) == 0);
	CHECK(usmc_listen(lfd, 16) == 0);
	h_chan_send(&c, 1);
	serve_one(lfd);
	CHECK(usmc_close(lfd) == 0);
	return 0;
}

static int client(void *arg)
{
	uint16_t port = (uint16_t)(uintptr_t)arg;
	static uint8_t req[LEN];
	uint64_t sum;

	h_pattern(req, LEN, 7, 0);
	for (int round = 0; round < 2; round++) {
		int fd;

		if (round == 1)
			CHECK(h_chan_recv(&to_client) == 1);
		fd = h_connect(AF_INET, H_USMC, port);
		h_write_all(fd, req, LEN);
		h_read_all(fd, &sum, sizeof(sum));
		CHECK(sum == h_fnv(FNV_INIT, req, LEN));
		h_check_mode(fd, USMC_MODE_SMCD);
		CHECK(usmc_close(fd) == 0);
	}
	printf("a link group whose peer exec'd while idle: the next connection in shared memory: ok\n");
	fflush(stdout);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 4 && !strcmp(argv[1], "again"))
		return server_again((uint16_t)atoi(argv[2]), atoi(argv[3]));
	h_chan_open(&to_client);
	h_run_pair(server, client, &port_chan);
	return 0;
}
