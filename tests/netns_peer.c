// SPDX-License-Identifier: MIT
/*
 * One end of a transfer between network namespaces, for tests/netns.sh,
 * which builds the topology and runs each end in its own namespace.
 *
 *   netns_peer server PORT COUNT READYFILE [WORKERS]
 *     listens on every address, writes READYFILE once it does, and serves
 *     COUNT connections one after the other: reads the length the client
 *     announces and that many bytes, answers the length and checksum it
 *     counted, and closes after the client.  With WORKERS, that many
 *     forked workers accept on the listener, as a prefork server's do,
 *     until they are killed; with rWORKERS, that many processes each with
 *     a listener of its own on the port (SO_REUSEPORT), as haproxy's or
 *     Go servers' do; with f, a child forked for each connection, which
 *     closes its copy of the listener first, as socat's fork mode and
 *     dnsmasq's do.
 *   netns_peer client ADDR PORT SIZE SEED [COUNT]
 *     sends SIZE, then SIZE bytes of stream SEED, reads the answer and
 *     checks it.  With COUNT, that many connections one after the other
 *     from this one process, a stream of its own each, each closed only
 *     after the server's end; then the segments this process reused
 *     ("client segments_reused=N", from the counters of a
 *     USMC_REGISTRY_DIR of its own, made for it).
 *
 * Each end prints one line per connection: its mode, fallback reason,
 * length and checksum, which the script compares; the client also its
 * mode and reason as connect() returns, on standard error.  With NETNS_HOLD=FILE
 * the client creates FILE.held once it has the answer and closes only
 * when FILE exists, so that usmc-stat sees both ends open.  With
 * NETNS_KILLED=FILE the client reports once it has written, creates
 * FILE.sent and waits to be killed; the server accepts only once FILE.go
 * exists (FILE.go.N before its N-th connection, from 0), reads what the
 * client wrote, answers nothing, and must then
 * read the end, as TCP gives a killed peer's data and then its FIN.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/wait.h>

#include "counters.h"
#include "harness.h"

static void report(const char *who, int fd, uint64_t len, uint64_t sum)
{
	struct usmc_info info;

	CHECK(usmc_info(fd, &info, sizeof(info)) == 0);
	printf("%s mode=%s reason=0x%08x len=%llu sum=%016llx shm_bytes=%llu\n", who,
	       usmc_mode_str(info.mode), info.fallback_reason, (unsigned long long)len,
	       (unsigned long long)sum,
	       (unsigned long long)(info.bytes_sent + info.bytes_received));
	fflush(stdout);
}

/* Waits for FILE (NETNS_KILLED's) with suffix to exist. */
static void wait_file(const char *file, const char *suffix)
{
	char name[256];

	snprintf(name, sizeof(name), "%s%s", file, suffix);
	for (int t = 0; t < 3000 && access(name, F_OK); t++)
		usleep(10000);
	CHECK(access(name, F_OK) == 0);
}

static void serve(int lfd, int count, bool forking)
{
	const char *killed = getenv("NETNS_KILLED");

	for (int i = 0; i < count; i++) {
		uint64_t reply[2], size;
		uint8_t buf[65536];
		pid_t child;
		int fd, status;

		if (killed && *killed) {
			char go[16];

			snprintf(go, sizeof(go), ".go.%d", i);
			wait_file(killed, go);
		}
		fd = usmc_accept(lfd, NULL, NULL);

		CHECK(fd >= 0);
		if (forking) {
			child = fork();
			CHECK(child >= 0);
			if (child) {
				/* One after the other: the reports stay in order. */
				CHECK(usmc_close(fd) == 0);
				CHECK(waitpid(child, &status, 0) == child && status == 0);
				continue;
			}
			CHECK(usmc_close(lfd) == 0);
		}
		h_read_all(fd, &size, sizeof(size));
		reply[1] = H_FNV_INIT;
		for (reply[0] = 0; reply[0] < size;) {
			size_t n = size - reply[0] < sizeof(buf) ? (size_t)(size - reply[0]) : sizeof(buf);

			h_read_all(fd, buf, n);
			reply[1] = h_fnv(reply[1], buf, n);
			reply[0] += n;
		}
		if (!killed || !*killed)
			h_write_all(fd, reply, sizeof(reply));
		report("server", fd, reply[0], reply[1]);
		/* Open until the client closes: both ends stay for usmc-stat. */
		CHECK(h_read_to_eof(fd, &size, 16, NULL) == 0);
		CHECK(usmc_close(fd) == 0);
		if (forking)
			_exit(0);
	}
}

/* A listener on every address of the port, of an SO_REUSEPORT group or not. */
static int listener(uint16_t port, bool reuseport)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(port) };
	int lfd = usmc_socket(AF_INET, SOCK_STREAM, IPPROTO_SMC), one = 1;

	CHECK(lfd >= 0);
	CHECK(usmc_setsockopt(lfd, SOL_SOCKET, reuseport ? SO_REUSEPORT : SO_REUSEADDR, &one,
			      sizeof(one)) == 0);
	CHECK(usmc_bind(lfd, (struct sockaddr *)&sin, sizeof(sin)) == 0);
	CHECK(usmc_listen(lfd, 16) == 0);
	return lfd;
}

static int server(uint16_t port, int count, const char *ready, int workers, bool reuseport,
		  bool forking)
{
	int lfd = reuseport ? -1 : listener(port, false), fd;
	int started[2];

	CHECK(pipe(started) == 0);
	for (int w = 0; w < workers; w++) {
		if (fork() == 0) {
			if (reuseport)
				lfd = listener(port, true);
			CHECK(write(started[1], "", 1) == 1);
			serve(lfd, INT32_MAX, false);
			_exit(0);
		}
	}
	/* Every member listens before a client connects. */
	for (int w = 0; reuseport && w < workers; w++)
		CHECK(read(started[0], &(char){ 0 }, 1) == 1);
	fd = open(ready, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	CHECK(fd >= 0);
	close(fd);
	if (workers) {
		/* The workers hold the listener; they serve until they are killed. */
		while (wait(NULL) > 0)
			;
		return 0;
	}
	serve(lfd, count, forking);
	CHECK(usmc_close(lfd) == 0);
	return 0;
}

static void client_conn(const char *addr, uint16_t port, uint64_t size, uint64_t seed,
			bool server_first)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(port) };
	uint64_t sum, reply[2];
	const char *hold = getenv("NETNS_HOLD"), *killed = getenv("NETNS_KILLED");
	int fd = usmc_socket(AF_INET, SOCK_STREAM, IPPROTO_SMC);
	struct usmc_info info;

	CHECK(fd >= 0);
	CHECK(inet_pton(AF_INET, addr, &sin.sin_addr) == 1);
	CHECK(usmc_connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0);
	/* What the socket is as connect() returns, before any call settles it. */
	CHECK(usmc_info(fd, &info, sizeof(info)) == 0);
	fprintf(stderr, "connected mode=%s reason=0x%08x\n", usmc_mode_str(info.mode),
		info.fallback_reason);
	h_write_all(fd, &size, sizeof(size));
	sum = h_write_stream(fd, size, seed, 65536, NULL);
	if (killed && *killed) {
		char sent[256];

		report("client", fd, size, sum);
		snprintf(sent, sizeof(sent), "%s.sent", killed);
		CHECK(close(open(sent, O_WRONLY | O_CREAT, 0644)) == 0);
		for (;;)
			pause();
	}
	h_read_all(fd, reply, sizeof(reply));
	report("client", fd, size, sum);
	CHECK(reply[0] == size);
	CHECK(reply[1] == sum);
	if (hold && *hold) {
		char held[256];

		snprintf(held, sizeof(held), "%s.held", hold);
		CHECK(close(open(held, O_WRONLY | O_CREAT, 0644)) == 0);
		for (int i = 0; i < 2000 && access(hold, F_OK); i++)
			usleep(10000);
	}
	if (server_first) {
		/* The server closes at our EOF: its end is closed once we read its. */
		CHECK(usmc_shutdown(fd, SHUT_WR) == 0);
		CHECK(h_read_to_eof(fd, reply, sizeof(reply), NULL) == 0);
	}
	CHECK(usmc_close(fd) == 0);
}

/*
 * NETNS_BETWEEN=PATH: after each connection but the last, PATH.<i> says it
 * ended, and the next waits for PATH.go.<i> (the server is replaced meanwhile).
 */
static void between(int i)
{
	const char *path = getenv("NETNS_BETWEEN");
	char name[256];

	if (!path || !*path)
		return;
	snprintf(name, sizeof(name), "%s.%d", path, i);
	CHECK(close(open(name, O_WRONLY | O_CREAT, 0644)) == 0);
	snprintf(name, sizeof(name), "%s.go.%d", path, i);
	for (int t = 0; t < 3000 && access(name, F_OK); t++)
		usleep(10000);
	CHECK(access(name, F_OK) == 0);
}

static int client(const char *addr, uint16_t port, uint64_t size, uint64_t seed, int count)
{
	for (int i = 0; i < count; i++) {
		if (i)
			between(i);
		client_conn(addr, port, size, seed + (uint64_t)i * (2654435761ull << 12), count > 1);
	}
	if (count > 1)
		printf("client segments_reused=%llu\n",
		       (unsigned long long)counter(USMC_STAT_SEGMENTS_REUSED));
	return 0;
}

int main(int argc, char **argv)
{
	if ((argc == 5 || argc == 6) && !strcmp(argv[1], "server"))
		return server((uint16_t)atoi(argv[2]), atoi(argv[3]), argv[4],
			      argc == 6 ? atoi(argv[5] + (argv[5][0] == 'r')) : 0,
			      argc == 6 && argv[5][0] == 'r', argc == 6 && !strcmp(argv[5], "f"));
	if ((argc == 6 || argc == 7) && !strcmp(argv[1], "client"))
		return client(argv[2], (uint16_t)atoi(argv[3]), strtoull(argv[4], NULL, 0),
			      strtoull(argv[5], NULL, 0), argc == 7 ? atoi(argv[6]) : 1);
	fprintf(stderr, "usage: netns_peer server PORT COUNT READYFILE [[r]WORKERS]\n"
			"       netns_peer client ADDR PORT SIZE SEED\n");
	return 2;
}
