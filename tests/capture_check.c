// SPDX-License-Identifier: MIT
/*
 * capture_check DIR: a client and a server in shared memory, each writing
 * what it sends to DIR/c2s.bin and DIR/s2c.bin, with USMC_CAPTURE set by
 * the caller (tests/capture_check.sh reads the captures back with tcpdump).
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "harness.h"

#define C2S (3u << 20)
#define S2C ((1u << 20) + 12345)

static const char *dir;
static uint16_t port;

static void save(const char *name, const uint8_t *buf, size_t len)
{
	char path[512];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	CHECK(fd >= 0 && write(fd, buf, len) == (ssize_t)len && close(fd) == 0);
}

static int client(void *arg)
{
	uint8_t *out = malloc(C2S), *in = malloc(S2C);
	int fd = h_connect(AF_INET, H_USMC, port);

	(void)arg;
	h_pattern(out, C2S, 11, 0);
	save("c2s.bin", out, C2S);
	/* Odd sizes, so that segments do not line up with the ring. */
	for (size_t off = 0; off < C2S; off += 77777)
		h_write_all(fd, out + off, C2S - off < 77777 ? C2S - off : 77777);
	h_read_all(fd, in, S2C);
	h_check_mode(fd, USMC_MODE_SMCD);
	CHECK(usmc_close(fd) == 0);
	free(out), free(in);
	return 0;
}

int main(int argc, char **argv)
{
	uint8_t *in = malloc(C2S), *out = malloc(S2C);
	int lfd, fd;
	pid_t pid;

	CHECK(argc == 2 && getenv("USMC_CAPTURE"));
	dir = argv[1];
	lfd = h_listen(AF_INET, H_USMC, &port);
	pid = h_fork(client, NULL);
	fd = usmc_accept(lfd, NULL, NULL);
	CHECK(fd >= 0);
	h_read_all(fd, in, C2S);
	h_pattern(out, S2C, 12, 0);
	save("s2c.bin", out, S2C);
	h_write_all(fd, out, S2C);
	CHECK(h_wait_ok(pid));
	h_check_mode(fd, USMC_MODE_SMCD);
	CHECK(usmc_close(fd) == 0 && usmc_close(lfd) == 0);
	free(in), free(out);
	printf("capture_check: %u and %u bytes through shared memory\n", C2S, S2C);
	return 0;
}
