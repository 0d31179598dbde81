// SPDX-License-Identifier: MIT
/*
 * What a client learns of a port's server from the registry, and how
 * that ends with the server.  (The server's own reasons for TCP, a
 * Decline of another user's link group: tests/cross_user.c.)
 *
 *   - a listener with SO_REUSEPORT, an SO_REUSEPORT group of one: shared
 *     memory on both ends (usmc_reuseport.c);
 *   - once that process is gone without closing it, a plain server on the
 *     same port: the client finds the member's queue gone and says
 *     0x03010000 at once.
 */
#include <netinet/in.h>
#include <string.h>
#include <sys/wait.h>

#include "harness.h"

static struct h_chan chan;

static uint32_t reason_of(int fd)
{
	struct usmc_info info;

	CHECK(usmc_info(fd, &info, sizeof(info)) == 0);
	return info.mode == USMC_MODE_FALLBACK ? info.fallback_reason : 0;
}

/* Serves one connection on a listener with SO_REUSEPORT (or a plain one), port 0 = new. */
static int server(void *arg)
{
	uint16_t port = (uint16_t)(uintptr_t)arg;
	struct sockaddr_storage ss;
	socklen_t len = h_loopback(AF_INET, port, &ss);
	int one = 1, lfd = h_socket(AF_INET, port ? H_PLAIN : H_USMC, 0), fd;
	uint64_t sum, reply[2];

	CHECK(usmc_setsockopt(lfd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) == 0);
	CHECK(usmc_setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == 0);
	CHECK(usmc_bind(lfd, (struct sockaddr *)&ss, len) == 0 && usmc_listen(lfd, 16) == 0);
	len = sizeof(ss);
	CHECK(getsockname(lfd, (struct sockaddr *)&ss, &len) == 0);
	h_chan_send(&chan, ntohs(((struct sockaddr_in *)&ss)->sin_port));
	fd = usmc_accept(lfd, NULL, NULL);
	CHECK(fd >= 0);
	CHECK(reason_of(fd) == 0);
	if (!port)
		h_check_mode(fd, USMC_MODE_SMCD);
	reply[0] = h_read_to_eof(fd, &sum, 65536, NULL);
	reply[1] = sum;
	h_write_all(fd, reply, sizeof(reply));
	usmc_close(fd);
	return 0;
}

static uint32_t client(uint16_t port)
{
	static uint8_t buf[100000];
	uint64_t reply[2];
	int fd = h_connect(AF_INET, H_USMC, port);
	uint32_t reason;

	CHECK(fd >= 0);
	h_pattern(buf, sizeof(buf), port, 0);
	h_write_all(fd, buf, sizeof(buf));
	CHECK(usmc_shutdown(fd, SHUT_WR) == 0);
	h_read_all(fd, reply, sizeof(reply));
	CHECK(reply[0] == sizeof(buf) && reply[1] == h_fnv(H_FNV_INIT, buf, sizeof(buf)));
	reason = reason_of(fd);
	if (!reason)
		h_check_mode(fd, USMC_MODE_SMCD);
	usmc_close(fd);
	return reason;
}

int main(void)
{
	pid_t pid;
	uint16_t port;
	uint32_t r;

	h_chan_open(&chan);
	pid = h_fork(server, NULL);
	port = (uint16_t)h_chan_recv(&chan);
	r = client(port);
	printf("SO_REUSEPORT listener: client's reason 0x%08x (%s)\n", r, usmc_reason_str(r));
	CHECK(r == 0);
	CHECK(h_wait_ok(pid));
	pid = h_fork(server, (void *)(uintptr_t)port);
	CHECK(h_chan_recv(&chan) == port);
	r = client(port);
	printf("then a plain server on the port: 0x%08x (%s)\n", r, usmc_reason_str(r));
	CHECK(r == USMC_DECL_PEERNOSMC);
	CHECK(h_wait_ok(pid));
	return 0;
}
