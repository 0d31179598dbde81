// SPDX-License-Identifier: MIT
/*
 * What an epoll set learns of without a doorbell of its own, its entry
 * off the set's ready list (a look found nothing and asked the peer to
 * ring at its next change).
 *
 * --fork-asleep: a thread sleeps in epoll_wait for room in a full ring
 * when its process forks; the child, which has closed its copy of the
 * set, reads the ring empty from the peer's end (which rings the
 * doorbell) and then reads the socket until the doorbell is drained, on
 * the sleeper's CPU, where the sleeper (SCHED_IDLE) cannot run before it.
 * The sleeper must wake and report the room: the fork made the
 * connection shared, and the sleeper must look again and arm it.
 *
 * --abort: two sets watch one connection; the peer's producer cursor runs
 * out of the ring, with no doorbell, and a read finds it and resets the
 * connection.  The other set, looked at and asleep in another thread,
 * must report what TCP reports after a reset: EPOLLIN, EPOLLERR, EPOLLHUP.
 *
 * --forked-exit: a forked child that held the connection exits without
 * closing it (its count of holders stays 2); once it is gone, waits on
 * the idle connection must not look at its entry again and again.
 *
 * No wait here relies on a timer: each has a timeout far beyond its
 * event, and a wait that times out fails the test.  Every byte is checked
 * by its place in the stream.
 *
 *   epoll_unseen --fork-asleep|--abort|--forked-exit [--rounds N]
 */
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "usmc_conn.h"
#include "usmc_epoll.h"
#include "usmc_fdtab.h"
#include "usmc_holders.h"
#include "usmc_sock.h"

#define WAIT_MS 10000

static int a, c, lfd;
static uint16_t port;
static uint64_t wrote;

static uint8_t pattern(uint64_t off)
{
	return (uint8_t)(off * 131 + 7);
}

static void new_pair(void)
{
	h_smc_pair(lfd, port, &c, &a);
	CHECK(usmc_fcntl(a, F_SETFL, usmc_fcntl(a, F_GETFL) | O_NONBLOCK) == 0);
	wrote = 0;
}

#define SEED 0x5eed

/* Writes on a until its ring is full. */
static void fill(void)
{
	uint8_t buf[4096];
	ssize_t n;

	do {
		h_pattern(buf, sizeof(buf), SEED, wrote);
		n = usmc_write(a, buf, sizeof(buf));
		wrote += n > 0 ? (uint64_t)n : 0;
	} while (n > 0);
	CHECK(errno == EAGAIN);
}

/* Reads all that a wrote, on c, and compares it with what was written. */
static void read_all(void)
{
	uint8_t *got = malloc(wrote), *want = malloc(wrote);

	CHECK(got && want);
	h_read_all(c, got, wrote);
	h_pattern(want, wrote, SEED, 0);
	CHECK(memcmp(got, want, wrote) == 0);
	free(got);
	free(want);
}

/* Waits of no time until one finds nothing: the entry is off the ready list. */
static void settle(int ep)
{
	struct epoll_event got;

	for (int i = 0; usmc_epoll_wait(ep, &got, 1, 0); i++)
		CHECK(i < 8);
}

struct sleeper {
	pthread_t t;
	pid_t tid;
	int ep, n;
	bool idle; /* on CPU 0, SCHED_IDLE */
	struct epoll_event got;
};

static void *sleep_main(void *arg)
{
	struct sleeper *sl = arg;

	if (sl->idle) {
		struct sched_param none = { 0 };
		cpu_set_t one;

		CPU_ZERO(&one);
		CPU_SET(0, &one);
		CHECK(sched_setaffinity(0, sizeof(one), &one) == 0);
		CHECK(sched_setscheduler(0, SCHED_IDLE, &none) == 0);
	}
	__atomic_store_n(&sl->tid, (pid_t)syscall(SYS_gettid), __ATOMIC_RELEASE);
	sl->n = usmc_epoll_wait(sl->ep, &sl->got, 1, WAIT_MS);
	return NULL;
}

/* Starts a thread's wait on ep, and returns once it sleeps in the kernel's epoll_wait. */
static void sleeper_start(struct sleeper *sl, int ep, bool idle)
{
	char path[64], line[64];

	memset(sl, 0, sizeof(*sl));
	sl->ep = ep;
	sl->idle = idle;
	CHECK(pthread_create(&sl->t, NULL, sleep_main, sl) == 0);
	while (!__atomic_load_n(&sl->tid, __ATOMIC_ACQUIRE))
		usleep(100);
	snprintf(path, sizeof(path), "/proc/self/task/%d/syscall", (int)sl->tid);
	for (;;) {
		FILE *f = fopen(path, "r");
		long nr = -1;

		CHECK(f);
		if (fgets(line, sizeof(line), f))
			nr = strtol(line, NULL, 10);
		fclose(f);
		if (nr == SYS_epoll_wait || nr == SYS_epoll_pwait)
			return;
		usleep(200);
	}
}

static struct epoll_event sleeper_join(struct sleeper *sl)
{
	CHECK(pthread_join(sl->t, NULL) == 0);
	if (sl->n != 1)
		fprintf(stderr, "the sleeping wait returned %d within %d ms\n", sl->n, WAIT_MS);
	CHECK(sl->n == 1);
	return sl->got;
}

/*
 * The child, on the sleeper's CPU, where the sleeper (SCHED_IDLE) cannot
 * take the CPU from it: reads the ring empty from the peer's end, which
 * rings a's doorbell, then reads a until its TCP socket holds no
 * doorbell (or until an armed sleeper's is all that is left).  The
 * sleeper, woken by the doorbell, runs only once it is gone.
 */
static void fork_asleep_child(int stop, int ep)
{
	cpu_set_t one;
	char b;

	CHECK(prctl(PR_SET_PDEATHSIG, SIGKILL) == 0 && getppid() != 1);
	CPU_ZERO(&one);
	CPU_SET(0, &one);
	CHECK(sched_setaffinity(0, sizeof(one), &one) == 0);
	/* The parent's set is not the child's (an exec would close it too). */
	CHECK(usmc_close(ep) == 0);
	read_all();
	for (int i = 0, queued = 1; i < 1000 && queued; i++) {
		CHECK(usmc_read(a, &b, 1) < 0 && (errno == EAGAIN || errno == EINTR));
		CHECK(ioctl(a, FIONREAD, &queued) == 0);
	}
	CHECK(read(stop, &b, 1) == 1);
	CHECK(usmc_close(a) == 0 && usmc_close(c) == 0 && usmc_close(lfd) == 0);
	_exit(0);
}

static void fork_asleep(int rounds)
{
	for (int r = 0; r < rounds; r++) {
		struct epoll_event ev = { .events = EPOLLOUT, .data.u64 = 7 }, got;
		struct sleeper sl;
		int stop[2], ep, st;
		pid_t child;

		new_pair();
		CHECK((ep = epoll_create1(EPOLL_CLOEXEC)) >= 0 && pipe(stop) == 0);
		fill();
		CHECK(usmc_epoll_ctl(ep, EPOLL_CTL_ADD, a, &ev) == 0);
		settle(ep);
		sleeper_start(&sl, ep, true);
		CHECK((child = fork()) >= 0);
		if (child == 0)
			fork_asleep_child(stop[0], ep);
		got = sleeper_join(&sl);
		CHECK(got.data.u64 == 7 && (got.events & EPOLLOUT));
		CHECK(write(stop[1], "x", 1) == 1);
		CHECK(waitpid(child, &st, 0) == child && WIFEXITED(st) && WEXITSTATUS(st) == 0);
		CHECK(usmc_close(ep) == 0 && close(stop[0]) == 0 && close(stop[1]) == 0);
		CHECK(usmc_close(a) == 0 && usmc_close(c) == 0);
	}
	printf("%d rounds: a wait asleep across a fork saw the room the child's reads drained: ok\n",
	       rounds);
}

/* The peer's producer cursor one past its lap, published with no doorbell. */
static void break_prod(void)
{
	struct usmc_sock *s = usmc_sock_get(c);
	struct usmc_conn *conn;
	union cdc_cursor cur;

	CHECK(s && s->state == SOCK_SMC && s->conn && s->conn->rx_mapped);
	conn = s->conn;
	cur.acurs = cdc_cursor_from_pos(&conn->sh->tx_laps, conn->sh->tx_prod);
	cur.count = cdc_lap_size(&conn->sh->tx_laps);
	atomic_store_explicit(&conn->tx.cdc->prod, cur.acurs, memory_order_release);
}

static void abort_read(int rounds)
{
	const uint32_t reset = EPOLLIN | EPOLLERR | EPOLLHUP;

	for (int r = 0; r < rounds; r++) {
		struct epoll_event ev = { .events = EPOLLIN, .data.u64 = 9 }, got;
		uint8_t buf[1000];
		struct sleeper sl;
		int ep1, ep2, ep3;

		new_pair();
		CHECK((ep1 = epoll_create1(0)) >= 0 && (ep2 = epoll_create1(0)) >= 0 &&
		      (ep3 = epoll_create1(0)) >= 0);
		CHECK(usmc_epoll_ctl(ep1, EPOLL_CTL_ADD, a, &ev) == 0 &&
		      usmc_epoll_ctl(ep2, EPOLL_CTL_ADD, a, &ev) == 0 &&
		      usmc_epoll_ctl(ep3, EPOLL_CTL_ADD, a, &ev) == 0);
		/* Honest bytes first, read in full. */
		for (size_t i = 0; i < sizeof(buf); i++)
			buf[i] = pattern(i);
		h_write_all(c, buf, sizeof(buf));
		CHECK(usmc_epoll_wait(ep1, &got, 1, WAIT_MS) == 1 && (got.events & EPOLLIN));
		memset(buf, 0, sizeof(buf));
		h_read_all(a, buf, sizeof(buf));
		for (size_t i = 0; i < sizeof(buf); i++)
			CHECK(buf[i] == pattern(i));
		settle(ep1);
		settle(ep2);
		settle(ep3);
		sleeper_start(&sl, ep3, false);
		break_prod();
		CHECK(usmc_read(a, buf, 1) < 0 && errno == ECONNRESET);
		CHECK(usmc_epoll_wait(ep2, &got, 1, 0) == 1 && got.data.u64 == 9 &&
		      (got.events & reset) == reset);
		got = sleeper_join(&sl);
		CHECK(got.data.u64 == 9 && (got.events & reset) == reset);
		CHECK(usmc_close(ep1) == 0 && usmc_close(ep2) == 0 && usmc_close(ep3) == 0);
		CHECK(usmc_close(a) == 0 && usmc_close(c) == 0);
	}
	printf("%d rounds: a reset a read found is reported by the other sets: ok\n", rounds);
}

/*
 * A child holds the connection and exits without ending its hold: its
 * count stays 2.  Waits of no time on the idle connection, after it is
 * gone, look at it a few times at most (usmc_epoll_looks), and it still
 * reports the bytes its peer sends then.
 */
static void forked_exit(int rounds)
{
	for (int r = 0; r < rounds; r++) {
		struct epoll_event ev = { .events = EPOLLIN, .data.u64 = 5 }, got;
		struct usmc_sock *s;
		uint8_t buf[1000];
		uint64_t looks;
		pid_t child;
		int ep, st;

		new_pair();
		CHECK((ep = epoll_create1(0)) >= 0);
		CHECK(usmc_epoll_ctl(ep, EPOLL_CTL_ADD, a, &ev) == 0);
		settle(ep);
		CHECK((child = fork()) >= 0);
		if (child == 0)
			_exit(0);
		CHECK(waitpid(child, &st, 0) == child && WIFEXITED(st) && WEXITSTATUS(st) == 0);
		CHECK((s = usmc_sock_get(a)) && s->conn && usmc_holders_shared(s->conn));
		looks = usmc_epoll_looks();
		for (int i = 0; i < 200; i++)
			CHECK(usmc_epoll_wait(ep, &got, 1, 0) == 0);
		looks = usmc_epoll_looks() - looks;
		if (looks > 8)
			fprintf(stderr, "200 waits looked at the idle connection %llu times\n",
				(unsigned long long)looks);
		CHECK(looks <= 8);
		for (size_t i = 0; i < sizeof(buf); i++)
			buf[i] = pattern(i + (uint64_t)r);
		h_write_all(c, buf, sizeof(buf));
		CHECK(usmc_epoll_wait(ep, &got, 1, WAIT_MS) == 1 && got.data.u64 == 5 &&
		      (got.events & EPOLLIN));
		memset(buf, 0, sizeof(buf));
		h_read_all(a, buf, sizeof(buf));
		for (size_t i = 0; i < sizeof(buf); i++)
			CHECK(buf[i] == pattern(i + (uint64_t)r));
		CHECK(usmc_close(ep) == 0 && usmc_close(a) == 0 && usmc_close(c) == 0);
	}
	printf("%d rounds: a connection whose other holder is gone leaves the ready list: ok\n",
	       rounds);
}

int main(int argc, char **argv)
{
	int rounds = 20;
	const char *mode = argc > 1 ? argv[1] : "";

	for (int i = 2; i < argc; i++)
		if (!strcmp(argv[i], "--rounds") && i + 1 < argc)
			rounds = atoi(argv[++i]);
	signal(SIGPIPE, SIG_IGN);
	lfd = h_listen(AF_INET, H_USMC, &port);
	if (!strcmp(mode, "--fork-asleep"))
		fork_asleep(rounds);
	else if (!strcmp(mode, "--abort"))
		abort_read(rounds);
	else if (!strcmp(mode, "--forked-exit"))
		forked_exit(rounds);
	else
		CHECK(!"epoll_unseen --fork-asleep|--abort|--forked-exit [--rounds N]");
	CHECK(usmc_close(lfd) == 0);
	return 0;
}
