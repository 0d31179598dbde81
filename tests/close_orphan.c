// SPDX-License-Identifier: MIT
/*
 * A client writes, closes and exits before the server even accepts.  Its
 * close waits a CLC timeout for an answer that cannot come before the
 * accept, then leaves its ring to the server (af_orphan), with its end.
 * Its channel is gone by the server's answer, so the Accept cannot be
 * sent, and the Proposal must have outlived the link group: the server
 * reads the ring it mapped at accept(), every byte, then the end, in
 * shared memory.  Checked by length and checksum.
 *
 *   close_orphan
 */
#include <stdlib.h>
#include <sys/socket.h>

#include "harness.h"

#define LEN 3000

static uint16_t port;

static int client(void *arg)
{
	uint8_t buf[LEN];
	int fd = h_connect(AF_INET, H_USMC, port);

	(void)arg;
	h_pattern(buf, sizeof(buf), 61, 0);
	h_write_all(fd, buf, sizeof(buf));
	CHECK(usmc_close(fd) == 0);
	return 0;
}

int main(void)
{
	uint8_t want[LEN];
	uint64_t sum = H_FNV_INIT, len;
	int lfd, fd;

	h_registry_own("close_orphan");
	CHECK(setenv("USMC_CLC_TIMEOUT_MS", "100", 1) == 0);
	lfd = h_listen(AF_INET, H_USMC, &port);
	CHECK(h_wait_ok(h_fork(client, NULL)));
	fd = usmc_accept(lfd, NULL, NULL);
	CHECK(fd >= 0);
	h_check_mode(fd, USMC_MODE_SMCD);
	len = h_read_to_eof(fd, &sum, 4096, NULL);
	h_pattern(want, sizeof(want), 61, 0);
	if (len != LEN)
		fprintf(stderr, "%llu bytes of %d\n", (unsigned long long)len, LEN);
	CHECK(len == LEN && sum == h_fnv(H_FNV_INIT, want, sizeof(want)));
	CHECK(usmc_close(fd) == 0 && usmc_close(lfd) == 0);
	printf("close_orphan: %d bytes, then the end, in shared memory: ok\n", LEN);
	return 0;
}
