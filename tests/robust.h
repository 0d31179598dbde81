/* SPDX-License-Identifier: MIT */
/*
 * Small helpers shared by the robustness tests: what a process holds
 * (descriptors, segment mappings, Unix names), bounded pattern streams,
 * and a seed that every failure prints.
 */
#ifndef USMC_TEST_ROBUST_H
#define USMC_TEST_ROBUST_H

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

/* Printed by every failing check, so a failure can be replayed. */
static uint64_t robust_seed;
/* What the test was doing (a round and its kind), for the same report. */
static char robust_where[96];

#define RCHECK(cond)                                                                      \
	do {                                                                              \
		if (!(cond)) {                                                            \
			fprintf(stderr, "%s:%d: [%d] seed %llu%s: check failed: %s (errno %d: %m)\n", \
				__FILE__, __LINE__, (int)getpid(),                        \
				(unsigned long long)robust_seed, robust_where, #cond, errno); \
			exit(1);                                                          \
		}                                                                         \
	} while (0)

/* The line of a socket inode ("123]") in a /proc/net table, or NULL. */
static inline const char *robust_sock_line(const char *table, const char *inode)
{
	static char line[512];
	char needle[32];
	int len = (int)strcspn(inode, "]");
	FILE *f = fopen(table, "re");

	snprintf(needle, sizeof(needle), " %.*s", len, inode);
	while (f && fgets(line, sizeof(line), f)) {
		char *at = strstr(line, needle);

		if (at && (at[len + 1] == ' ' || at[len + 1] == '\n')) {
			fclose(f);
			return line;
		}
	}
	if (f)
		fclose(f);
	return NULL;
}

static inline const char *robust_unix_line(const char *inode)
{
	static const char *const tables[] = { "/proc/net/unix", "/proc/net/tcp", "/proc/net/tcp6",
					      "/proc/net/netlink" };

	for (int i = 0; i < 4; i++) {
		const char *line = robust_sock_line(tables[i], inode);

		if (line) {
			fprintf(stderr, "    %s: ", tables[i]);
			return line;
		}
	}
	return "";
}

/* What each descriptor is, for a failure report. */
static inline void robust_list_fds(void)
{
	char path[64], target[256];

	for (int fd = 0; fd < 8192; fd++) {
		ssize_t n;

		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		n = readlink(path, target, sizeof(target) - 1);
		if (n <= 0)
			continue;
		target[n] = 0;
		fprintf(stderr, "  fd %d: %s%s\n", fd, target,
			strncmp(target, "socket:[", 8) ? "" : robust_unix_line(target + 8));
	}
}

static inline int robust_segment_maps(void)
{
	return h_count_lines("/proc/self/maps", "memfd:usmc-seg");
}

/* Whether the listener channel of a port still has a name in /proc/net/unix. */
static inline bool robust_unix_name_exists(uint16_t port)
{
	char name[64];

	snprintf(name, sizeof(name), "@usmc/%u/%u\n", (unsigned)getuid(), (unsigned)port);
	return h_count_lines("/proc/net/unix", name) > 0;
}

static inline uint64_t robust_between(uint64_t *rng, uint64_t lo, uint64_t hi)
{
	return lo + h_rand(rng) % (hi - lo + 1);
}

static inline void robust_sleep_us(uint64_t us)
{
	struct timespec ts = { .tv_sec = (time_t)(us / 1000000), .tv_nsec = (long)(us % 1000000) * 1000 };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Waits for fd (usmc_poll) at most ms; the bound only catches hangs. */
static inline void robust_wait(int fd, short events, int ms)
{
	struct pollfd p = { .fd = fd, .events = events };
	int rc;

	do
		rc = usmc_poll(&p, 1, ms);
	while (rc < 0 && errno == EINTR);
	RCHECK(rc == 1);
}

/*
 * Writes len bytes of the pattern of seed from offset off, in random
 * chunks.  Returns 0, or the errno that ended the stream.
 */
static inline int robust_send_pattern(int fd, uint64_t seed, uint64_t off, uint64_t len,
				      uint64_t *rng, size_t chunk_max)
{
	static uint8_t buf[1 << 17];

	if (chunk_max > sizeof(buf))
		chunk_max = sizeof(buf);
	while (len) {
		size_t want = (size_t)robust_between(rng, 1, chunk_max);
		ssize_t n;

		if (want > len)
			want = (size_t)len;
		h_pattern(buf, want, seed, off);
		n = usmc_send(fd, buf, want, MSG_NOSIGNAL);
		if (n < 0 && errno == EAGAIN) {
			robust_wait(fd, POLLOUT, 30000);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno;
		RCHECK(n > 0);
		off += (uint64_t)n;
		len -= (uint64_t)n;
	}
	return 0;
}

/*
 * Reads the pattern of seed from offset *off until EOF, an error or max
 * bytes, checking every byte.  Returns 0 at EOF, -1 after max bytes, or
 * the errno that ended the stream.
 */
static inline int robust_recv_pattern(int fd, uint64_t seed, uint64_t *off, uint64_t max,
				      uint64_t *rng, size_t chunk_max)
{
	static uint8_t buf[1 << 17], want[1 << 17];
	uint64_t end = *off + max;

	if (chunk_max > sizeof(buf))
		chunk_max = sizeof(buf);
	while (*off < end) {
		size_t ask = (size_t)robust_between(rng, 1, chunk_max);
		ssize_t n;

		if (ask > end - *off)
			ask = (size_t)(end - *off);
		robust_wait(fd, POLLIN, 30000);
		n = usmc_read(fd, buf, ask);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n < 0)
			return errno;
		if (n == 0)
			return 0;
		h_pattern(want, (size_t)n, seed, *off);
		RCHECK(memcmp(buf, want, (size_t)n) == 0);
		*off += (uint64_t)n;
	}
	return -1;
}

/* Kills and reaps a child; true if the signal, not an exit, ended it. */
static inline bool robust_kill_reap(pid_t pid)
{
	int status;

	RCHECK(kill(pid, SIGKILL) == 0);
	RCHECK(waitpid(pid, &status, 0) == pid);
	return WIFSIGNALED(status);
}

/* Reaps a child that must exit 0 by itself. */
static inline void robust_reap_ok(pid_t pid)
{
	int status;

	RCHECK(waitpid(pid, &status, 0) == pid);
	if (!WIFEXITED(status) || WEXITSTATUS(status))
		fprintf(stderr, "child %d: status 0x%x\n", (int)pid, status);
	RCHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

#endif
