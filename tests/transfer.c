// SPDX-License-Identifier: MIT
/*
 * One connection, one stream of --size bytes in random write and read
 * sizes, checked by length and checksum; the server answers with what it
 * counted.  Runs --way tcp, fallback, fallback-server or smc, IPv4 or 6,
 * blocking or --nonblock.  With --exact every write is --chunk bytes, for
 * the boundaries of a ring (USMC_BUFSIZE) and of its producer limit.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"

static struct h_opts opts;
static uint64_t size = 1 << 20;
static uint64_t seed = 1;
static size_t chunk_max = 65536;
static bool nonblock, exact;
static struct h_chan chan;

static void set_nonblock(int fd)
{
	int fl = usmc_fcntl(fd, F_GETFL);

	CHECK(usmc_fcntl(fd, F_SETFL, fl | O_NONBLOCK) == 0);
}

static int server(void *arg)
{
	uint64_t rng = seed * 77 + 1, sum, len, reply[2];
	uint16_t port;
	int lfd = h_listen(opts.family, opts.server, &port), fd;
	struct usmc_info info;

	(void)arg;
	h_chan_send(&chan, port);
	fd = usmc_accept(lfd, NULL, NULL);
	CHECK(fd >= 0);
	if (nonblock)
		set_nonblock(fd);
	len = h_read_to_eof(fd, &sum, chunk_max, exact ? NULL : &rng);
	h_check_mode(fd, h_expected_mode(opts.server, opts.client));
	CHECK(usmc_info(fd, &info, sizeof(info)) == 0);
	if (info.mode == USMC_MODE_SMCD)
		CHECK(info.bytes_received == len);
	reply[0] = len;
	reply[1] = sum;
	h_write_all(fd, reply, sizeof(reply));
	CHECK(usmc_close(fd) == 0);
	CHECK(usmc_close(lfd) == 0);
	return 0;
}

int main(int argc, char **argv)
{
	uint64_t rng, sum, reply[2];
	struct usmc_info info;
	pid_t pid;
	int fd;

	h_parse_way(argc, argv, &opts);
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--size") && i + 1 < argc)
			size = strtoull(argv[++i], NULL, 0);
		else if (!strcmp(argv[i], "--seed") && i + 1 < argc)
			seed = strtoull(argv[++i], NULL, 0);
		else if (!strcmp(argv[i], "--chunk") && i + 1 < argc)
			chunk_max = strtoull(argv[++i], NULL, 0);
		else if (!strcmp(argv[i], "--nonblock"))
			nonblock = true;
		else if (!strcmp(argv[i], "--exact"))
			exact = true;
	}
	rng = seed;
	h_chan_open(&chan);
	pid = h_fork(server, NULL);
	fd = h_connect(opts.family, opts.client, (uint16_t)h_chan_recv(&chan));
	if (nonblock)
		set_nonblock(fd);
	sum = h_write_stream(fd, size, seed, chunk_max, exact ? NULL : &rng);
	CHECK(usmc_shutdown(fd, SHUT_WR) == 0);
	h_read_all(fd, reply, sizeof(reply));
	h_check_mode(fd, h_expected_mode(opts.client, opts.server));
	CHECK(usmc_info(fd, &info, sizeof(info)) == 0);
	if (info.mode == USMC_MODE_SMCD)
		CHECK(info.bytes_sent == size);
	if (reply[0] != size || reply[1] != sum)
		fprintf(stderr, "server counted %llu bytes sum %016llx; sent %llu sum %016llx\n",
			(unsigned long long)reply[0], (unsigned long long)reply[1],
			(unsigned long long)size, (unsigned long long)sum);
	CHECK(reply[0] == size && reply[1] == sum);
	CHECK(usmc_close(fd) == 0);
	CHECK(h_wait_ok(pid));
	printf("transfer %s ipv%d %llu bytes%s: ok\n", h_way_name(&opts),
	       opts.family == AF_INET ? 4 : 6, (unsigned long long)size, nonblock ? " nonblock" : "");
	return 0;
}
