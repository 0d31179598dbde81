// SPDX-License-Identifier: MIT
/*
 * A ring filled to its last byte while its reader waits: the writer's
 * next byte finds no room (EAGAIN with MSG_DONTWAIT), whatever room it
 * remembers from the last cursor it read, and once the reader has taken
 * everything the stream goes on, every byte checked by length and
 * checksum.  Run with USMC_BUFSIZE=16384.
 *
 *   ring_full
 */
#include <poll.h>
#include <string.h>
#include <sys/socket.h>

#include "harness.h"

#define TAIL 5000

static struct h_chan go, port_chan;

static int reader(void *arg)
{
	uint16_t port;
	int lfd = h_listen(AF_INET, H_USMC, &port), fd;
	uint64_t total = 0, sum = H_FNV_INIT, want_len;
	uint8_t buf[65536];
	ssize_t n;

	(void)arg;
	h_chan_send(&port_chan, port);
	fd = usmc_accept(lfd, NULL, NULL);
	CHECK(fd >= 0);
	want_len = h_chan_recv(&go); /* the writer filled the ring: read now */
	while ((n = usmc_read(fd, buf, sizeof(buf))) > 0) {
		sum = h_fnv(sum, buf, (size_t)n);
		total += (uint64_t)n;
	}
	CHECK(n == 0 && total == want_len);
	h_chan_send(&port_chan, sum);
	CHECK(usmc_close(fd) == 0 && usmc_close(lfd) == 0);
	return 0;
}

int main(void)
{
	struct usmc_info info;
	uint8_t *buf;
	uint64_t sum;
	size_t size;
	ssize_t n;
	pid_t pid;
	int fd;

	h_chan_open(&go);
	h_chan_open(&port_chan);
	pid = h_fork(reader, NULL);
	fd = h_connect(AF_INET, H_USMC, (uint16_t)h_chan_recv(&port_chan));
	/* The Accept, so that the ring and the reader's cursor are known. */
	do {
		struct pollfd p = { .fd = fd, .events = POLLOUT };

		CHECK(usmc_poll(&p, 1, 10) >= 0);
		CHECK(usmc_info(fd, &info, sizeof(info)) == 0);
	} while (info.mode == USMC_MODE_HANDSHAKE);
	CHECK(info.mode == USMC_MODE_SMCD && info.rmb_size == 16384);
	size = info.rmb_size;
	buf = malloc(size + TAIL);
	CHECK(buf);
	h_pattern(buf, size + TAIL, 21, 0);
	CHECK(usmc_send(fd, buf, size, MSG_DONTWAIT) == (ssize_t)size);
	n = usmc_send(fd, buf + size, 1, MSG_DONTWAIT);
	printf("ring of %zu bytes full, one byte more: %zd%s\n", size, n,
	       n < 0 && errno == EAGAIN ? " (EAGAIN)" : "");
	CHECK(n < 0 && errno == EAGAIN);
	h_chan_send(&go, size + TAIL);
	h_write_all(fd, buf + size, TAIL);
	CHECK(usmc_shutdown(fd, SHUT_WR) == 0);
	sum = h_chan_recv(&port_chan);
	CHECK(sum == h_fnv(H_FNV_INIT, buf, size + TAIL));
	CHECK(h_wait_ok(pid));
	h_check_mode(fd, USMC_MODE_SMCD);
	CHECK(usmc_close(fd) == 0);
	free(buf);
	printf("%zu bytes checked after it\n", size + TAIL);
	return 0;
}
