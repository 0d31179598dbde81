// SPDX-License-Identifier: MIT
/*
 * Many concurrent connections between the same two processes share one
 * link group, and a second round of as many connections maps nothing
 * new: the rings of the first round are reused.  Every connection carries
 * its own payload, checked by length and checksum.  The client proposes
 * in batches the server accepts before the next: a server behind by most
 * of a channel's worth of Proposals gets the next on another link group
 * (lgr_crowded), which a loaded machine would make of this test's one.
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"

static int nconns = 1000;
/* Proposals the server accepts before the client makes more: a third of a channel's room. */
#define BATCH 100
static struct h_chan to_client, to_server;

/* Mappings of usmc segments in this process: ours and the peer's. */
static int segment_mappings(void)
{
	char line[512];
	int n = 0;
	FILE *f = fopen("/proc/self/maps", "re");

	CHECK(f);
	while (fgets(line, sizeof(line), f))
		n += strstr(line, "memfd:usmc-seg") != NULL;
	fclose(f);
	return n;
}

static size_t payload_len(uint32_t i)
{
	return 1 + (i * 7919u) % 5000;
}

/* Reads "index, payload" from each connection and checks it. */
static void server_round(int lfd, int *fds)
{
	uint32_t lgr = 0;

	for (int i = 0; i < nconns; i++) {
		struct usmc_info info;

		fds[i] = usmc_accept(lfd, NULL, NULL);
		CHECK(fds[i] >= 0);
		h_check_mode(fds[i], USMC_MODE_SMCD);
		CHECK(usmc_info(fds[i], &info, sizeof(info)) == 0);
		if (i == 0)
			lgr = info.lgr_id;
		CHECK(info.lgr_id == lgr);
		if ((i + 1) % BATCH == 0)
			h_chan_send(&to_client, 2);
	}
	for (int i = 0; i < nconns; i++) {
		uint8_t expect[5000];
		uint32_t index;
		uint64_t sum, len, want_sum;

		h_read_all(fds[i], &index, sizeof(index));
		CHECK(index < (uint32_t)nconns);
		len = h_read_to_eof(fds[i], &sum, 4096, NULL);
		h_pattern(expect, payload_len(index), index, 0);
		want_sum = h_fnv(H_FNV_INIT, expect, payload_len(index));
		CHECK(len == payload_len(index) && sum == want_sum);
		h_write_all(fds[i], &sum, sizeof(sum));
	}
}

static int server(void *arg)
{
	int *fds = calloc((size_t)nconns, sizeof(int)), maps_first = 0;
	uint16_t port;
	int lfd = h_listen(AF_INET, H_USMC, &port);

	(void)arg;
	CHECK(fds);
	h_chan_send(&to_client, port);
	for (int round = 0; round < 2; round++) {
		server_round(lfd, fds);
		/* Both sides close all before the next round starts. */
		for (int i = 0; i < nconns; i++)
			CHECK(usmc_close(fds[i]) == 0);
		h_chan_send(&to_client, 1);
		CHECK(h_chan_recv(&to_server) == 1);
		if (round == 0)
			maps_first = segment_mappings();
	}
	fprintf(stderr, "server: %d segment mappings after each round of %d connections\n",
		maps_first, nconns);
	CHECK(segment_mappings() == maps_first);
	CHECK(usmc_close(lfd) == 0);
	free(fds);
	return 0;
}

static void client_round(uint16_t port, int *fds)
{
	uint8_t buf[5000];

	for (int i = 0; i < nconns; i++) {
		fds[i] = h_connect(AF_INET, H_USMC, port);
		if ((i + 1) % BATCH == 0)
			CHECK(h_chan_recv(&to_client) == 2);
	}
	for (int i = 0; i < nconns; i++) {
		uint32_t index = (uint32_t)i;

		h_write_all(fds[i], &index, sizeof(index));
		h_pattern(buf, payload_len(index), index, 0);
		h_write_all(fds[i], buf, payload_len(index));
		CHECK(usmc_shutdown(fds[i], SHUT_WR) == 0);
	}
	for (int i = 0; i < nconns; i++) {
		uint64_t sum;

		h_read_all(fds[i], &sum, sizeof(sum));
		h_pattern(buf, payload_len((uint32_t)i), (uint64_t)i, 0);
		CHECK(sum == h_fnv(H_FNV_INIT, buf, payload_len((uint32_t)i)));
		h_check_mode(fds[i], USMC_MODE_SMCD);
	}
}

int main(int argc, char **argv)
{
	int *fds, maps_first = 0;
	uint16_t port;
	pid_t pid;

	if (argc > 1)
		nconns = atoi(argv[1]);
	/*
	 * As far as the hard limit allows: the connections, and what usmc
	 * itself holds beside them, which is not what this test is about (a
	 * user's default soft limit of 1024 is: see exhaust_nofile_*).
	 */
	h_raise_nofile(nconns + 64);
	fds = calloc((size_t)nconns, sizeof(int));
	CHECK(fds);
	h_chan_open(&to_client);
	h_chan_open(&to_server);
	pid = h_fork(server, NULL);
	port = (uint16_t)h_chan_recv(&to_client);
	for (int round = 0; round < 2; round++) {
		client_round(port, fds);
		for (int i = 0; i < nconns; i++)
			CHECK(usmc_close(fds[i]) == 0);
		CHECK(h_chan_recv(&to_client) == 1);
		h_chan_send(&to_server, 1);
		if (round == 0)
			maps_first = segment_mappings();
	}
	fprintf(stderr, "client: %d segment mappings after each round of %d connections\n",
		maps_first, nconns);
	CHECK(segment_mappings() == maps_first);
	CHECK(h_wait_ok(pid));
	printf("%d connections in one link group, twice, rings reused: ok\n", nconns);
	free(fds);
	return 0;
}
