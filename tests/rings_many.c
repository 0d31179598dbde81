// SPDX-License-Identifier: MIT
/*
 * Many connections in one process.  Past 1,024 rings of its own, a new
 * ring's first lap is a quarter of the usual (USMC_BUFSIZE, 64 KiB), as
 * TCP's buffers start smaller under memory pressure: 10,000 connections
 * charged 5 GB of shared memory for laps that their 1 KiB requests never
 * filled.  The kernel's count of the segments' pages (st_blocks of their
 * memfds) shows what is charged: the rings past the 1,024th must hold
 * well under what as many whole first laps would.  The last connection
 * then carries a stream of 1 MiB, more than its first lap: its ring grows
 * as its reader lags, every byte arrives, checked by checksum.
 *
 *   rings_many [PAIRS]   both ends of each pair in this process (default 700)
 */
#include <dirent.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "usmc_config.h"

#define RINGS_MANY 1024
#define FIRST_LAP ((uint32_t)USMC_BUFSIZE_DEFAULT)
#define STREAM (1u << 20)

/*
 * Bytes charged to the segments' memfds of this process: the rings and
 * their headers.  Each memfd once, by its inode: a segment has several
 * descriptors here (ours, the read-only one for the peer, the peer's).
 */
static uint64_t charged(void)
{
	DIR *d = opendir("/proc/self/fd");
	static ino_t seen[4096];
	int nseen = 0;
	uint64_t bytes = 0;
	struct dirent *de;

	CHECK(d != NULL);
	while ((de = readdir(d))) {
		char path[300], link[128];
		struct stat st;
		ssize_t n;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/self/fd/%s", de->d_name);
		n = readlink(path, link, sizeof(link) - 1);
		if (n <= 0)
			continue;
		link[n] = 0;
		if (strncmp(link, "/memfd:usmc-seg", 15) || fstat(atoi(de->d_name), &st))
			continue;
		for (int i = 0; i < nseen && st.st_ino; i++)
			if (seen[i] == st.st_ino)
				st.st_ino = 0;
		if (!st.st_ino)
			continue;
		CHECK(nseen < 4096);
		seen[nseen++] = st.st_ino;
		bytes += (uint64_t)st.st_blocks * 512;
	}
	closedir(d);
	return bytes;
}

static int stream_server;
static uint64_t stream_sum;

/* The server's end reads the stream in a thread of its own, lagging as it may. */
static void *stream_reader(void *arg)
{
	(void)arg;
	CHECK(h_read_to_eof(stream_server, &stream_sum, 4096, NULL) == STREAM);
	return NULL;
}

/* STREAM bytes from client to server, the writer ahead of the reader. */
static void stream_through(int client, int server)
{
	static uint8_t buf[STREAM];
	pthread_t t;

	stream_server = server;
	stream_sum = H_FNV_INIT;
	h_pattern(buf, sizeof(buf), 5, 0);
	CHECK(pthread_create(&t, NULL, stream_reader, NULL) == 0);
	h_write_all(client, buf, sizeof(buf));
	CHECK(usmc_shutdown(client, SHUT_WR) == 0);
	CHECK(pthread_join(t, NULL) == 0);
	CHECK(stream_sum == h_fnv(H_FNV_INIT, buf, sizeof(buf)));
}

int main(int argc, char **argv)
{
	int pairs = argc > 1 ? atoi(argv[1]) : 700, rings = 2 * pairs, past = rings - RINGS_MANY;
	int *fds = calloc((size_t)rings, sizeof(int)), lfd;
	uint64_t bytes, whole, bound;
	uint16_t port;

	CHECK(fds && past > 0);
	h_raise_nofile(rings + 1024);
	h_registry_own("rings_many");
	lfd = h_listen(AF_INET, H_USMC, &port);
	for (int i = 0; i < pairs; i++)
		h_smc_pair(lfd, port, &fds[2 * i], &fds[2 * i + 1]);
	bytes = charged();
	/* Each ring is charged its first lap and a header of a page or two. */
	whole = (uint64_t)rings * (FIRST_LAP + (8u << 10));
	bound = (uint64_t)RINGS_MANY * (FIRST_LAP + (8u << 10)) + (uint64_t)past * (FIRST_LAP / 2);
	printf("%d rings: %llu KiB charged, %llu KiB as whole first laps, at most %llu KiB "
	       "with the rings past %d at a quarter\n",
	       rings, (unsigned long long)(bytes >> 10), (unsigned long long)(whole >> 10),
	       (unsigned long long)(bound >> 10), RINGS_MANY);
	CHECK(bytes > 0 && bytes <= bound);
	stream_through(fds[rings - 2], fds[rings - 1]);
	for (int i = 0; i < rings; i++)
		CHECK(usmc_close(fds[i]) == 0);
	CHECK(usmc_close(lfd) == 0);
	printf("rings past %d started at a quarter lap; a 1 MiB stream grew one: ok\n", RINGS_MANY);
	return 0;
}
