// SPDX-License-Identifier: MIT
/*
 * A holder of a shared-memory connection killed inside a write, at the
 * one instant that matters: after it counted the bytes it had copied into
 * the ring (the slot's producer position), before it published the
 * producer cursor the peer reads.  The connection's other holder, its
 * parent, must go on from there: the peer reads every byte of the stream
 * once, in order, then end of file, and nobody waits for ever.
 *
 *   killed_mid_write --case lap_end
 *       The killed write ends a lap of the ring.  The peer has read all
 *       the rest, so it waits for those bytes, and the parent's next write
 *       finds the lap's end: it waits for the peer to leave the lap.
 *   killed_mid_write --case mid_lap
 *       The killed write ends in the middle of a lap.
 *
 * The instant is exact: the writer runs under ptrace with a hardware
 * watchpoint on its producer position, and is killed at the trap the
 * count raises.  The parent's write has a send timeout, and the peer's
 * reads a deadline, so that a hang fails with what was waited for.
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "usmc_conn.h"
#include "usmc_fdtab.h"
#include "usmc_sock.h"

#define SEED 0x6b696c6cu
#define TAIL (16u)               /* the killed write's bytes */
#define REST (600u * 1024u)      /* the parent's, after the kill: over laps */
#define WAIT_MS 10000

static _Atomic uint64_t *read_pos; /* shared: what the reader has read */

/* Writes pattern bytes [from, to) of the stream. */
static void write_pattern(int fd, uint64_t from, uint64_t to)
{
	uint8_t buf[16384];

	while (from < to) {
		size_t n = to - from < sizeof(buf) ? (size_t)(to - from) : sizeof(buf);

		h_pattern(buf, n, SEED, from);
		h_write_all(fd, buf, n);
		from += n;
	}
}

/*
 * The reader: reads the stream, checking each byte's place in it, until
 * end of file, telling how far it has read.  No read waits longer than
 * WAIT_MS.
 */
static int reader(void *arg)
{
	int fd = h_connect(AF_INET, H_USMC, (uint16_t)(uintptr_t)arg);
	uint64_t pos = 0;
	uint8_t buf[16384], expect[sizeof(buf)];

	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t n;

		if (usmc_poll(&p, 1, WAIT_MS) != 1) {
			fprintf(stderr, "reader: nothing more after %llu bytes for %d ms\n",
				(unsigned long long)pos, WAIT_MS);
			return 1;
		}
		n = usmc_read(fd, buf, sizeof(buf));
		CHECK(n >= 0);
		if (n == 0)
			break;
		h_pattern(expect, (size_t)n, SEED, pos);
		CHECK(memcmp(buf, expect, (size_t)n) == 0);
		pos += (uint64_t)n;
		atomic_store(read_pos, pos);
	}
	h_check_mode(fd, USMC_MODE_SMCD);
	CHECK(usmc_close(fd) == 0);
	printf("reader: %llu bytes in order, then end of file\n", (unsigned long long)pos);
	return 0;
}

/*
 * The writer, a forked holder traced by its parent: writes up to TAIL
 * bytes before its lap's end (lap_end) or before the middle of its lap,
 * waits until the reader has read it all, stops for its parent to set the
 * watchpoint, then writes TAIL bytes.
 */
static int writer(int fd, bool lap_end)
{
	struct usmc_sock *s = usmc_sock_get(fd);
	struct usmc_conn_shared *sh;
	uint64_t end;

	CHECK(s && s->conn);
	sh = s->conn->sh;
	CHECK(ptrace(PTRACE_TRACEME, 0, NULL, NULL) == 0);
	/* A lap may grow while we write (a reader that lags): aim again each time. */
	for (;;) {
		end = sh->tx_laps.base + cdc_lap_size(&sh->tx_laps);
		if (!lap_end)
			end -= cdc_lap_size(&sh->tx_laps) / 2;
		if (sh->tx_prod + TAIL == end)
			break;
		CHECK(sh->tx_prod + TAIL < end);
		write_pattern(fd, sh->tx_prod, end - TAIL < sh->tx_prod + 65536 ? end - TAIL
										  : sh->tx_prod + 65536);
	}
	while (atomic_load(read_pos) < sh->tx_prod)
		usleep(1000);
	raise(SIGSTOP);
	write_pattern(fd, sh->tx_prod, sh->tx_prod + TAIL);
	fprintf(stderr, "writer: not stopped by the watchpoint\n");
	_exit(1);
}

/* Arms debug register 0 of the stopped tracee to trap writes of the 8 bytes at addr. */
static void watch_writes(pid_t pid, const void *addr)
{
	const unsigned long dr7 = 1ul /* L0 */ | 1ul << 16 /* RW0: writes */ | 2ul << 18 /* LEN0: 8 */;

	CHECK(ptrace(PTRACE_POKEUSER, pid, offsetof(struct user, u_debugreg[0]), addr) == 0);
	CHECK(ptrace(PTRACE_POKEUSER, pid, offsetof(struct user, u_debugreg[7]), (void *)dr7) == 0);
}

static void run(bool lap_end)
{
	struct timeval sndtimeo = { .tv_sec = WAIT_MS / 1000 };
	struct usmc_conn_shared *sh;
	uint16_t port;
	int lfd = h_listen(AF_INET, H_USMC, &port), fd, status;
	pid_t rd, wr;
	uint64_t counted, published;

	read_pos = mmap(NULL, sizeof(*read_pos), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	CHECK(read_pos != MAP_FAILED);
	atomic_store(read_pos, 0);
	rd = h_fork(reader, (void *)(uintptr_t)port);
	fd = usmc_accept(lfd, NULL, NULL);
	CHECK(fd >= 0);
	h_check_mode(fd, USMC_MODE_SMCD);
	sh = usmc_sock_get(fd)->conn->sh;
	fflush(NULL);
	wr = fork();
	CHECK(wr >= 0);
	if (wr == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		_exit(writer(fd, lap_end));
	}
	CHECK(waitpid(wr, &status, 0) == wr);
	CHECK(WIFSTOPPED(status) && WSTOPSIG(status) == SIGSTOP);
	watch_writes(wr, &sh->tx_prod);
	CHECK(ptrace(PTRACE_CONT, wr, NULL, NULL) == 0);
	CHECK(waitpid(wr, &status, 0) == wr);
	if (!WIFSTOPPED(status) || WSTOPSIG(status) != SIGTRAP) {
		fprintf(stderr, "writer: status %#x, not stopped at the count\n", status);
		exit(1);
	}
	/* Counted, not published: the instant this test is about. */
	counted = sh->tx_prod;
	published = usmc_sock_get(fd)->conn->tx.cdc->prod;
	CHECK(kill(wr, SIGKILL) == 0 && waitpid(wr, &status, 0) == wr && WIFSIGNALED(status));
	printf("%s: writer killed with %llu bytes counted, the published cursor %#llx\n",
	       lap_end ? "lap_end" : "mid_lap", (unsigned long long)counted,
	       (unsigned long long)published);

	CHECK(usmc_setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &sndtimeo, sizeof(sndtimeo)) == 0);
	write_pattern(fd, counted, counted + REST);
	CHECK(usmc_close(fd) == 0);
	CHECK(h_wait_ok(rd));
	CHECK(usmc_close(lfd) == 0);
	printf("%s: ok\n", lap_end ? "lap_end" : "mid_lap");
}

int main(int argc, char **argv)
{
	const char *which = NULL;
	int c;

	while ((c = getopt_long(argc, argv, "", (const struct option[]){
		{ "case", required_argument, NULL, 'c' }, { 0 } }, NULL)) != -1)
		if (c == 'c')
			which = optarg;
#if !defined(__x86_64__)
	printf("killed_mid_write: needs x86-64 debug registers\n");
	return 77;
#endif
	if (which && !strcmp(which, "lap_end"))
		run(true);
	else if (which && !strcmp(which, "mid_lap"))
		run(false);
	else
		return 2;
	return 0;
}
