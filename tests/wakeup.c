// SPDX-License-Identifier: MIT
/*
 * Wake-ups are exact: a blocked reader or writer wakes within WAKE_MAX_MS
 * of what it waits for, with the spin off (USMC_SPIN_US=0), so that the
 * doorbell is all that can wake it.
 *
 *   wakeup --case data|shutdown|space --drainer none|thread|fork [--corked]
 *       data:     the server blocks in read(); the client writes a byte.
 *       shutdown: the server blocks in read(); the client shuts down.
 *       space:    the server fills its ring and blocks in write(); the
 *                 client reads, freeing room.
 *       With a drainer, another thread of the server, or a process it
 *       forked, polls the same socket without pause meanwhile, reading
 *       the doorbells as fast as they come.  With --corked the client
 *       sets TCP_CORK on its socket first, as nginx's tcp_nopush does:
 *       its doorbells must not wait for the cork's 200 ms.
 *   wakeup --case foreign
 *       A byte the client writes to the TCP socket past usmc (a raw
 *       syscall), whether or not it looks like a doorbell, resets the
 *       connection: the server's read says ECONNRESET, and usmc_info
 *       gives the reason.
 *   wakeup --case plain_poll
 *       A program's own poll() on a fresh accepted descriptor wakes for
 *       the peer's first bytes, and again for more after a read that
 *       found the ring empty (EAGAIN).
 *   wakeup --case poll_then_plain
 *       usmc_poll() sleeps and wakes for the peer's write, the reads that
 *       follow take its bytes and end in EAGAIN, and then the program's
 *       own poll() sleeps: the peer's next write must wake it (the EAGAIN
 *       asked for that doorbell; the poll's request was answered already).
 *       The writer writes each time only once the reader sleeps, and the
 *       reader must wake within 2 s, where a lost doorbell never wakes it.
 *
 * Each case runs ROUNDS connections; the worst wake-up is reported and
 * must stay under WAKE_MAX_MS.  A lost doorbell shows as a wait of
 * seconds.  Every byte moved is checked.
 */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#define ROUNDS 20
#define WAKE_MAX_MS 50
#define ACT_DELAY_MS 10 /* the client acts this long after the server blocks */

static const char *wake_case = "data", *drainer = "none";
static bool corked;

static int64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ---- the drainer: polls the socket as fast as it can ---- */

static _Atomic bool drain_stop;

static void drain_loop(int fd)
{
	while (!atomic_load(&drain_stop)) {
		struct pollfd p = { .fd = fd, .events = POLLIN | POLLOUT };

		CHECK(usmc_poll(&p, 1, 0) >= 0);
		/* Without pause, but the CPU goes to the waiter as soon as it is woken. */
		sched_yield();
	}
}

static void *drain_thread(void *arg)
{
	drain_loop(*(int *)arg);
	return NULL;
}

struct drainer {
	pthread_t thread;
	pid_t pid;
};

static void drainer_start(struct drainer *d, int *fd)
{
	atomic_store(&drain_stop, false);
	d->pid = 0;
	if (!strcmp(drainer, "thread")) {
		CHECK(pthread_create(&d->thread, NULL, drain_thread, fd) == 0);
	} else if (!strcmp(drainer, "fork")) {
		d->pid = fork();
		CHECK(d->pid >= 0);
		if (d->pid == 0) {
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			drain_loop(*fd);
			_exit(0);
		}
	}
}

static void drainer_stop(struct drainer *d)
{
	atomic_store(&drain_stop, true);
	if (!strcmp(drainer, "thread"))
		CHECK(pthread_join(d->thread, NULL) == 0);
	if (d->pid > 0) {
		kill(d->pid, SIGKILL);
		CHECK(waitpid(d->pid, NULL, 0) == d->pid);
	}
}

/* ---- one round ---- */

struct link {
	struct h_chan to_client, to_server;
};

/* Fills our ring without blocking; the bytes written, a pattern from offset 0. */
static size_t fill_ring(int fd)
{
	uint8_t buf[4096];
	size_t off = 0;

	for (;;) {
		ssize_t n;

		h_pattern(buf, sizeof(buf), 7, off);
		n = usmc_send(fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n < 0) {
			CHECK(errno == EAGAIN);
			return off;
		}
		off += (size_t)n;
	}
}

/* The server's side of a round: blocks, and returns how long it waited past the act (µs). */
static int64_t server_round(int fd, struct link *l)
{
	struct drainer d;
	uint8_t buf[4096], want[4096];
	size_t filled = 0;
	int64_t woke, acted;
	ssize_t n;

	/* A lost doorbell fails the round in seconds, not at the suite's timeout. */
	struct timeval limit = { .tv_sec = 2 };

	CHECK(usmc_setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof(limit)) == 0);
	CHECK(usmc_setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof(limit)) == 0);
	if (!strcmp(wake_case, "space"))
		filled = fill_ring(fd);
	drainer_start(&d, &fd);
	h_chan_send(&l->to_client, filled);
	if (!strcmp(wake_case, "space")) {
		/* Blocks until the client has read: then this byte fits. */
		h_pattern(buf, 1, 7, filled);
		n = usmc_send(fd, buf, 1, 0);
		woke = now_us();
		CHECK(n == 1);
	} else {
		n = usmc_read(fd, buf, sizeof(buf));
		woke = now_us();
		CHECK(n == (!strcmp(wake_case, "data") ? 1 : 0));
		if (n == 1) {
			h_pattern(want, 1, 9, 0);
			CHECK(buf[0] == want[0]);
		}
	}
	drainer_stop(&d);
	acted = (int64_t)h_chan_recv(&l->to_server);
	return woke - acted;
}

/*
 * Waits for this side to learn of the server's Accept.  What a client
 * writes or shuts down before that rings the server at its next call
 * that learns it (usmc_tx.c); the cases here are of the settled
 * connection.
 */
static void settle(int fd)
{
	struct usmc_info info;

	do {
		struct pollfd p = { .fd = fd, .events = POLLOUT };

		CHECK(usmc_poll(&p, 1, 10) >= 0);
		CHECK(usmc_info(fd, &info, sizeof(info)) == 0);
	} while (info.mode == USMC_MODE_HANDSHAKE);
	CHECK(info.mode == USMC_MODE_SMCD);
}

static void client_round(int fd, struct link *l)
{
	size_t filled;
	uint8_t buf[4096], want[4096];
	int64_t acted;

	settle(fd);
	if (corked)
		CHECK(usmc_setsockopt(fd, IPPROTO_TCP, TCP_CORK, &(int){ 1 }, sizeof(int)) == 0);
	filled = (size_t)h_chan_recv(&l->to_client);
	usleep(ACT_DELAY_MS * 1000);
	if (!strcmp(wake_case, "data")) {
		h_pattern(buf, 1, 9, 0);
		acted = now_us();
		CHECK(usmc_write(fd, buf, 1) == 1);
	} else if (!strcmp(wake_case, "shutdown")) {
		acted = now_us();
		CHECK(usmc_shutdown(fd, SHUT_WR) == 0);
	} else {
		/* Everything the server wrote, and the byte it blocked to write. */
		acted = now_us();
		for (size_t off = 0; off < filled + 1;) {
			size_t want_len = filled + 1 - off < sizeof(buf) ? filled + 1 - off : sizeof(buf);
			ssize_t n = usmc_read(fd, buf, want_len);

			CHECK(n > 0);
			h_pattern(want, (size_t)n, 7, off);
			CHECK(!memcmp(buf, want, (size_t)n));
			off += (size_t)n;
		}
	}
	h_chan_send(&l->to_server, (uint64_t)acted);
}

static int run_client(uint16_t port, struct link *l)
{
	for (int i = 0; i < ROUNDS; i++) {
		int fd = h_connect(AF_INET, H_USMC, port);

		client_round(fd, l);
		h_check_mode(fd, USMC_MODE_SMCD);
		CHECK(h_chan_recv(&l->to_client) == 1); /* the server is done with it */
		CHECK(usmc_close(fd) == 0);
	}
	return 0;
}

/* The client side in a child that dies with us: a failed check must not leave it waiting. */
static pid_t fork_client(int (*fn)(uint16_t, struct link *), uint16_t port, struct link *l)
{
	pid_t pid = fork();

	CHECK(pid >= 0);
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		_exit(fn(port, l));
	}
	return pid;
}

static void wake_rounds(void)
{
	struct link l;
	uint16_t port;
	int lfd = h_listen(AF_INET, H_USMC, &port);
	int64_t worst = 0;
	pid_t pid;

	h_chan_open(&l.to_client);
	h_chan_open(&l.to_server);
	pid = fork_client(run_client, port, &l);
	for (int i = 0; i < ROUNDS; i++) {
		int fd = usmc_accept(lfd, NULL, NULL);
		int64_t waited;

		CHECK(fd >= 0);
		h_check_mode(fd, USMC_MODE_SMCD);
		waited = server_round(fd, &l);
		if (waited > worst)
			worst = waited;
		if (waited >= WAKE_MAX_MS * 1000)
			fprintf(stderr, "round %d: woke %.3f ms after the client acted\n", i,
				(double)waited / 1000);
		CHECK(waited < WAKE_MAX_MS * 1000);
		h_chan_send(&l.to_client, 1);
		CHECK(usmc_close(fd) == 0);
	}
	CHECK(h_wait_ok(pid));
	printf("%s, drainer %s: worst wake-up of %d: %.3f ms (limit %d ms)\n", wake_case, drainer,
	       ROUNDS, (double)worst / 1000, WAKE_MAX_MS);
	CHECK(worst < WAKE_MAX_MS * 1000);
}

/* ---- a program's own poll() ---- */

static int plain_poll_client(uint16_t port, struct link *l)
{
	int fd = h_connect(AF_INET, H_USMC, port);
	uint8_t buf[2];

	settle(fd);
	h_pattern(buf, 2, 11, 0);
	CHECK(usmc_write(fd, buf, 2) == 2);
	CHECK(h_chan_recv(&l->to_client) == 1);
	h_pattern(buf, 2, 11, 2);
	CHECK(usmc_write(fd, buf, 2) == 2);
	CHECK(h_chan_recv(&l->to_client) == 2);
	h_check_mode(fd, USMC_MODE_SMCD);
	CHECK(usmc_close(fd) == 0);
	return 0;
}

/* poll() itself, not usmc_poll: what a program linked with usmc calls on its descriptor. */
static void plain_poll_in(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	CHECK(poll(&p, 1, 5000) == 1 && (p.revents & POLLIN));
}

/* A listener, a client child running fn, and its connection in shared memory. */
static int accept_client(int (*fn)(uint16_t, struct link *), struct link *l, int *lfd, pid_t *pid)
{
	uint16_t port;
	int fd;

	*lfd = h_listen(AF_INET, H_USMC, &port);
	h_chan_open(&l->to_client);
	*pid = fork_client(fn, port, l);
	fd = usmc_accept(*lfd, NULL, NULL);
	CHECK(fd >= 0);
	h_check_mode(fd, USMC_MODE_SMCD);
	return fd;
}

static void plain_poll(void)
{
	struct link l;
	int lfd, fd;
	uint8_t buf[8], want[4];
	pid_t pid;

	fd = accept_client(plain_poll_client, &l, &lfd, &pid);
	h_pattern(want, 4, 11, 0);
	plain_poll_in(fd);
	CHECK(usmc_recv(fd, buf, sizeof(buf), MSG_DONTWAIT) == 2 && !memcmp(buf, want, 2));
	CHECK(usmc_recv(fd, buf, sizeof(buf), MSG_DONTWAIT) < 0 && errno == EAGAIN);
	h_chan_send(&l.to_client, 1);
	plain_poll_in(fd);
	CHECK(usmc_recv(fd, buf, sizeof(buf), MSG_DONTWAIT) == 2 && !memcmp(buf, want + 2, 2));
	h_chan_send(&l.to_client, 2);
	CHECK(h_wait_ok(pid));
	CHECK(usmc_close(fd) == 0);
	printf("plain poll(): woke for the first bytes and for more\n");
}

/* ---- usmc_poll, then the program's own poll() ---- */

#define REARM_A 3000
#define REARM_B 5000

/* Waits until pid sleeps in poll (state S; the wait channel says poll where it is shown). */
static void wait_asleep_in_poll(pid_t pid)
{
	char path[64], buf[512];
	int asleep = 0;

	for (int i = 0; i < 5000 && asleep < 3; i++) {
		FILE *f;
		char *paren;

		snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
		f = fopen(path, "re");
		CHECK(f && fgets(buf, sizeof(buf), f));
		fclose(f);
		paren = strrchr(buf, ')');
		CHECK(paren);
		if (paren[2] == 'S') {
			snprintf(path, sizeof(path), "/proc/%d/wchan", (int)pid);
			f = fopen(path, "re");
			buf[0] = 0;
			if (f) {
				if (!fgets(buf, sizeof(buf), f))
					buf[0] = 0;
				fclose(f);
			}
			/* Three looks in a row, 2 ms apart: not a passing pause. */
			asleep = !buf[0] || !strcmp(buf, "0") || strstr(buf, "poll") ? asleep + 1 : 0;
		} else {
			asleep = 0;
		}
		usleep(2000);
	}
	CHECK(asleep == 3);
}

static int rearm_writer(uint16_t port, struct link *l)
{
	int fd = h_connect(AF_INET, H_USMC, port);
	uint8_t buf[REARM_B];

	settle(fd);
	CHECK(h_chan_recv(&l->to_client) == 1); /* the reader goes into usmc_poll */
	wait_asleep_in_poll(getppid());
	h_pattern(buf, REARM_A, 13, 0);
	h_write_all(fd, buf, REARM_A);
	CHECK(h_chan_recv(&l->to_client) == 2); /* the reader goes into poll() */
	wait_asleep_in_poll(getppid());
	h_pattern(buf, REARM_B, 13, REARM_A);
	h_write_all(fd, buf, REARM_B);
	CHECK(h_chan_recv(&l->to_client) == 3);
	h_check_mode(fd, USMC_MODE_SMCD);
	CHECK(usmc_close(fd) == 0);
	return 0;
}

/* Reads what is there until EAGAIN; returns how many bytes, adding them to *sum. */
static size_t read_until_eagain(int fd, uint64_t *sum)
{
	uint8_t buf[8192];
	size_t got = 0;
	ssize_t n;

	while ((n = usmc_recv(fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0) {
		*sum = h_fnv(*sum, buf, (size_t)n);
		got += (size_t)n;
	}
	CHECK(n < 0 && errno == EAGAIN);
	return got;
}

static void poll_then_plain(void)
{
	struct link l;
	int lfd, fd;
	struct pollfd p;
	uint8_t want[REARM_A + REARM_B];
	uint64_t sum = H_FNV_INIT;
	size_t got;
	int64_t t0;
	pid_t pid;

	fd = accept_client(rearm_writer, &l, &lfd, &pid);
	h_pattern(want, sizeof(want), 13, 0);
	h_chan_send(&l.to_client, 1);
	p = (struct pollfd){ .fd = fd, .events = POLLIN };
	CHECK(usmc_poll(&p, 1, 5000) == 1 && (p.revents & POLLIN));
	got = read_until_eagain(fd, &sum);
	/* All of the first write, or the rest of it wakes the poll() below. */
	while (got < REARM_A) {
		CHECK(usmc_poll(&p, 1, 5000) == 1);
		got += read_until_eagain(fd, &sum);
	}
	CHECK(got == REARM_A && sum == h_fnv(H_FNV_INIT, want, REARM_A));
	h_chan_send(&l.to_client, 2);
	t0 = now_us();
	if (poll(&p, 1, 2000) != 1)
		fprintf(stderr, "poll() did not wake for the write in %.0f ms\n",
			(double)(now_us() - t0) / 1000);
	CHECK(p.revents & POLLIN);
	while (got < sizeof(want)) {
		got += read_until_eagain(fd, &sum);
		if (got < sizeof(want))
			CHECK(poll(&p, 1, 2000) == 1);
	}
	CHECK(got == sizeof(want) && sum == h_fnv(H_FNV_INIT, want, sizeof(want)));
	h_chan_send(&l.to_client, 3);
	CHECK(h_wait_ok(pid));
	CHECK(usmc_close(fd) == 0 && usmc_close(lfd) == 0);
	printf("poll() after usmc_poll and EAGAIN: woke for the next write, %zu bytes checked\n",
	       got);
}

/* ---- a byte that reaches the TCP socket outside usmc ---- */

static int foreign_client(uint16_t port, struct link *l)
{
	int fd = h_connect(AF_INET, H_USMC, port);
	uint8_t byte = (uint8_t)h_chan_recv(&l->to_client);

	settle(fd);
	/* As a static child or a raw syscall would: past usmc, onto the TCP stream. */
	CHECK(syscall(SYS_write, fd, &byte, 1) == 1);
	CHECK(h_chan_recv(&l->to_client) == 1);
	CHECK(usmc_close(fd) == 0);
	return 0;
}

/* The connection must fail loudly: neither a hang nor the byte dropped as a doorbell. */
static void foreign(void)
{
	static const uint8_t bytes[] = { 'x', 1 }; /* 1: what a doorbell looks like */

	for (size_t i = 0; i < sizeof(bytes); i++) {
		struct timeval limit = { .tv_sec = 5 };
		struct usmc_info info;
		struct link l;
		uint16_t port;
		int lfd = h_listen(AF_INET, H_USMC, &port), fd;
		uint8_t buf[8];
		pid_t pid;

		h_chan_open(&l.to_client);
		pid = fork_client(foreign_client, port, &l);
		fd = usmc_accept(lfd, NULL, NULL);
		CHECK(fd >= 0);
		CHECK(usmc_setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof(limit)) == 0);
		h_chan_send(&l.to_client, bytes[i]);
		CHECK(usmc_read(fd, buf, sizeof(buf)) < 0 && errno == ECONNRESET);
		CHECK(usmc_info(fd, &info, sizeof(info)) == 0);
		CHECK(info.fallback_reason == USMC_DECL_FOREIGN_BYTES);
		h_chan_send(&l.to_client, 1);
		CHECK(h_wait_ok(pid));
		CHECK(usmc_close(fd) == 0);
		CHECK(usmc_close(lfd) == 0);
		printf("foreign byte 0x%02x: ECONNRESET, reason %s\n", bytes[i],
		       usmc_reason_str(info.fallback_reason));
	}
}

int main(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--case") && i + 1 < argc)
			wake_case = argv[++i];
		else if (!strcmp(argv[i], "--drainer") && i + 1 < argc)
			drainer = argv[++i];
		else if (!strcmp(argv[i], "--corked"))
			corked = true;
	}
	/* The doorbell alone must wake a waiter: no spin may find the answer first. */
	setenv("USMC_SPIN_US", "0", 1);
	if (!strcmp(wake_case, "plain_poll"))
		plain_poll();
	else if (!strcmp(wake_case, "poll_then_plain"))
		poll_then_plain();
	else if (!strcmp(wake_case, "foreign"))
		foreign();
	else
		wake_rounds();
	return 0;
}
