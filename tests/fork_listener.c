// SPDX-License-Identifier: MIT
/*
 * A listener made before fork() and accepted on by several children at
 * once, as prefork servers do.  Whichever child accepts a connection
 * finds its Proposal in the backlog the children share with the parent
 * (usmc_queue.c): every connection is in shared memory on both ends (its
 * client's TCP socket, by the kernel's count, carried almost none of it),
 * every byte arrives, and no handshake waits for a CLC timeout, which the
 * counters of the test's own registry directory show.
 *
 * --early-clients: the clients connect before the workers start, as the
 * first clients of a prefork server whose workers are still starting: their
 * Proposals go straight to the listener's maker, which never accepts, and
 * a worker must find them in the backlog it shares with the maker all the
 * same.
 *
 * --early-pair: the listener's maker connects twice before its one worker
 * starts, so both Proposals go on one link group to itself; the worker
 * takes that link group's channel out of the backlog for the first
 * connection, and so reads the second's Proposal too: it must find it
 * there when it accepts the second.
 *
 * --maker-closes: the maker closes its listener as soon as it has forked
 * its workers, before any of them waits (haproxy's master does so before
 * it execs itself again): the workers hold the listener, and every
 * connection is in shared memory all the same.  --maker-closes-reuseport:
 * the same with SO_REUSEPORT on the listener, as haproxy sets it (a group
 * of one member, whose queue the workers hold).  Before the clients, the
 * maker also connects a carrier to that queue and writes it only once
 * they are done, as a client preempted between its connect and its write
 * would: the workers take it at every look and hand it back, inside a
 * carrier of their own, and must not drop it as an emptied channel (its
 * write would fail with EPIPE, and such a client fall back).  --maker-closes-chroot
 * (root): the workers also chroot to an empty directory before they
 * accept, as Debian's haproxy.cfg has them do, where there is no /proc and
 * no counters file: their connections are in shared memory all the same
 * (both ends' modes), and counted, in the file the maker mapped as it
 * opened the registry.
 *
 * --plain-first: a plain client's connection waits in the backlog ahead of
 * a usmc client's when the one worker starts to accept.  The worker finds
 * no Proposal for the first, though the second's is in the backlog it
 * looks through: it must take the first as plain at once, not look again
 * and again until a CLC timeout (the usmc client would take its Proposal
 * back by then, and fall back).  Both connections' bytes arrive, the usmc
 * one in shared memory.  --dead-holder: the same, and a process that
 * died while it held entries of the backlog still shows as holding them
 * in the registry: it holds nothing, and must not make the worker look
 * again until a CLC timeout either.
 *
 * --late-orphan: three clients, one after the other, each propose
 * straight to the maker (no worker has waited on the listener yet),
 * write, close and exit; each close waits a CLC timeout for an answer,
 * then leaves the client's ring to whoever accepts (af_orphan).  The one
 * worker accepts only once the clients' sockets are gone (their FIN_WAIT2
 * cut to a second, TCP_LINGER2), so no socket is left to prove a Proposal
 * by.  TCP hands such a connection's bytes over however late it is
 * accepted; the worker must find each client's channel in the backlog by
 * the end of the connection the client published, and read every byte
 * of its own client, then the end, in shared memory.  --dead-orphan: the
 * same, accepted while the clients' sockets are still in their FIN_WAIT2,
 * where sock_diag proves the Proposals: each client's channel has ended
 * behind its Proposal, which must be taken all the same.  --killed-orphan:
 * as --late-orphan, but each client is killed (SIGKILL) after writing,
 * never closing through usmc: the worker must find its channel by the end
 * it published before writing, its channel ended with it.
 *
 * --plain-worker: the one child accepts with the kernel's accept(), as a
 * process that holds the listener without usmc would.  Nobody takes the
 * Proposals: each client takes its own back out of the channel after a
 * CLC timeout and falls back (0x02030000), both ends TCP, bytes intact,
 * never a reset.
 */
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "counters.h"
#include "harness.h"
#include "usmc_registry.h"

#define WORKERS 3
#define CLIENTS 4
#define ROUNDS 25

static int lfd;
static bool plain_worker, plain_first, dead_holder, early_clients, early_pair, maker_closes;
static bool reuseport, late_orphan, dead_orphan, killed_orphan;
static char *jail;
static struct h_chan closed, go, ready;
/* --maker-closes-reuseport: a carrier to the member's queue, written late. */
static int late_carrier = -1;
static uint16_t port_of_test;

/* Echoes length and checksum of each connection; an empty one ends the worker. */
static int worker(void *arg)
{
	(void)arg;
	if (maker_closes)
		h_chan_recv(&closed);
	if (jail)
		CHECK(chroot(jail) == 0 && chdir("/") == 0);
	if (plain_first)
		h_chan_recv(&go);
	for (int served = 0;; served++) {
		uint64_t sum, len, reply[2];
		int fd = plain_worker ? accept(lfd, NULL, NULL) : usmc_accept(lfd, NULL, NULL);

		CHECK(fd >= 0);
		len = h_read_to_eof(fd, &sum, 8192, NULL);
		if (!plain_worker)
			h_check_mode(fd, plain_first && !served ? USMC_MODE_FALLBACK : USMC_MODE_SMCD);
		reply[0] = len;
		reply[1] = sum;
		h_write_all(fd, reply, sizeof(reply));
		CHECK(usmc_close(fd) == 0);
		if (!len) {
			printf("worker %d: %d connections\n", (int)getpid(), served);
			fflush(stdout);
			return 0;
		}
	}
}

/* Checks a connection's echo and its mode, and closes it. */
static void check_echo(int fd, size_t len, uint64_t sum)
{
	uint64_t reply[2];
	struct usmc_info info;

	h_read_all(fd, reply, sizeof(reply));
	CHECK(reply[0] == len && reply[1] == sum);
	CHECK(usmc_info(fd, &info, sizeof(info)) == 0);
	if (info.mode != (plain_worker ? USMC_MODE_FALLBACK : USMC_MODE_SMCD) ||
	    (plain_worker && info.fallback_reason != USMC_DECL_TIMEOUT_CLC))
		fprintf(stderr, "client: mode %d, reason %s\n", info.mode,
			usmc_reason_str(info.fallback_reason));
	if (plain_worker)
		CHECK(info.mode == USMC_MODE_FALLBACK &&
		      info.fallback_reason == USMC_DECL_TIMEOUT_CLC);
	else
		CHECK(info.mode == USMC_MODE_SMCD);
	if (!plain_worker)
		h_check_shm_carried(fd, len + sizeof(reply));
	CHECK(usmc_close(fd) == 0);
}

/* One connection of len bytes; checks the echo and the mode. */
static void round_trip(uint16_t port, size_t len, uint64_t seed)
{
	uint64_t sum;
	int fd = h_send_half(port, len, seed, &sum);

	check_echo(fd, len, sum);
}

/*
 * A nonblocking client that fills its ring before any answer, then waits
 * in poll for room: nobody takes its Proposal, so no answer and no
 * doorbell ever wakes it, and its poll (or epoll_wait, level- or
 * edge-triggered) must look at the handshake by itself (a CLC timeout,
 * then TCP), or it sleeps as long as its timeout; nor may a level-triggered
 * wait report the full ring writable meanwhile.
 */
enum waiter { WAIT_POLL, WAIT_EPOLL, WAIT_EPOLL_ET };

static void round_trip_poll(uint16_t port, size_t len, uint64_t seed, enum waiter how)
{
	static uint8_t buf[1 << 20];
	uint64_t reply[2], sum;
	struct usmc_info info;
	int fd = h_connect(AF_INET, H_USMC, port), ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = { .events = EPOLLOUT | (how == WAIT_EPOLL_ET ? EPOLLET : 0) };
	int waits = 0;

	CHECK(len <= sizeof(buf));
	CHECK(ep >= 0 && usmc_epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) == 0);
	h_pattern(buf, len, seed, 0);
	sum = h_fnv(H_FNV_INIT, buf, len);
	CHECK(usmc_fcntl(fd, F_SETFL, O_NONBLOCK) == 0);
	for (size_t off = 0; off < len;) {
		struct pollfd p = { .fd = fd, .events = POLLOUT };
		ssize_t n = usmc_write(fd, buf + off, len - off);

		if (n > 0) {
			off += (size_t)n;
			continue;
		}
		CHECK(n < 0 && errno == EAGAIN);
		/* No timeout: a poll that never looks hangs, and the test's time limit fails it. */
		if (how != WAIT_POLL)
			CHECK(usmc_epoll_wait(ep, &ev, 1, -1) == 1);
		else
			CHECK(usmc_poll(&p, 1, -1) == 1);
		CHECK(usmc_info(fd, &info, sizeof(info)) == 0);
		waits += info.mode == USMC_MODE_HANDSHAKE;
	}
	/*
	 * Woken during the handshake a few times (a wait wakes every quarter
	 * CLC timeout to look), not at every turn of a spin through it.
	 */
	if (waits > 64)
		fprintf(stderr, "client: woken %d times for room during the handshake\n", waits);
	CHECK(waits <= 64);
	CHECK(close(ep) == 0);
	CHECK(usmc_fcntl(fd, F_SETFL, 0) == 0);
	CHECK(usmc_shutdown(fd, SHUT_WR) == 0);
	h_read_all(fd, reply, sizeof(reply));
	CHECK(reply[0] == len && reply[1] == sum);
	CHECK(usmc_info(fd, &info, sizeof(info)) == 0);
	CHECK(info.mode == USMC_MODE_FALLBACK && info.fallback_reason == USMC_DECL_TIMEOUT_CLC);
	CHECK(usmc_close(fd) == 0);
}

static int client(void *arg)
{
	uint16_t port = (uint16_t)(uintptr_t)arg;

	for (int i = 0; i < ROUNDS; i++)
		round_trip(port, 1 + (size_t)(getpid() * 7919u + i * 104729u) % 100000, (uint64_t)i);
	return 0;
}

/* A plain worker and one client at a time: each Proposal waits out its CLC timeout. */
static void main_plain_worker(uint16_t port)
{
	uint64_t smc, fallbacks, clc_timeouts;
	pid_t w = h_fork(worker, NULL);

	for (int i = 0; i < 3; i++)
		round_trip(port, 1 + (size_t)i * 40000, (uint64_t)i);
	round_trip_poll(port, 1 << 20, 3, WAIT_POLL);
	round_trip_poll(port, 1 << 20, 4, WAIT_EPOLL);
	round_trip_poll(port, 1 << 20, 5, WAIT_EPOLL_ET);
	round_trip(port, 0, 0);
	CHECK(h_wait_ok(w));
	counters(&smc, &fallbacks, &clc_timeouts);
	CHECK(smc == 0 && clc_timeouts == 7);
	printf("listener accepted on by a plain child: each client took its Proposal back "
	       "after a CLC timeout, both ends TCP, bytes intact: ok\n");
}

/* Two connections of the maker's own, proposed before its worker starts. */
static void main_early_pair(uint16_t port)
{
	uint64_t smc, fallbacks, clc_timeouts, sum_a, sum_b;
	int a = h_send_half(port, 30000, 1, &sum_a), b = h_send_half(port, 40000, 2, &sum_b);
	pid_t w = h_fork(worker, NULL);

	check_echo(b, 40000, sum_b);
	check_echo(a, 30000, sum_a);
	round_trip(port, 0, 0);
	CHECK(h_wait_ok(w));
	counters(&smc, &fallbacks, &clc_timeouts);
	CHECK(smc == 6 && fallbacks == 0);
	printf("two Proposals on one link group before the worker started: both found by the "
	       "worker, in shared memory: ok\n");
}

/* A plain client's connection, then a usmc client's, queued before the worker accepts. */
static void main_plain_first(uint16_t port)
{
	static uint8_t buf[20000];
	uint64_t smc, fallbacks, clc_timeouts, sum_plain, sum, reply[2];
	int plain = h_connect(AF_INET, H_PLAIN, port), fd;
	pid_t w;

	h_chan_open(&go);
	w = h_fork(worker, NULL);
	if (dead_holder) {
		/*
		 * A holder killed in its look, entries of the backlog in hand: it
		 * shows in the registry, and is gone.
		 */
		pid_t dead = fork();

		if (!dead) {
			reg_holder_holds(reg_port(port), reg_holder_show(reg_port(port)), REG_Q_BACKLOG);
			_exit(0);
		}
		CHECK(dead > 0 && waitpid(dead, NULL, 0) == dead);
	}
	h_pattern(buf, sizeof(buf), 7, 0);
	sum_plain = h_fnv(H_FNV_INIT, buf, sizeof(buf));
	h_write_all(plain, buf, sizeof(buf));
	CHECK(shutdown(plain, SHUT_WR) == 0);
	fd = h_send_half(port, 30000, 1, &sum);
	h_chan_send(&go, 1);
	h_read_all(plain, reply, sizeof(reply));
	CHECK(reply[0] == sizeof(buf) && reply[1] == sum_plain);
	CHECK(close(plain) == 0);
	check_echo(fd, 30000, sum);
	round_trip(port, 0, 0);
	CHECK(h_wait_ok(w));
	counters(&smc, &fallbacks, &clc_timeouts);
	CHECK(smc == 4 && fallbacks == 1 && clc_timeouts == 0);
	printf("a plain client's connection ahead of a usmc client's: taken as plain at once, "
	       "the usmc one in shared memory: ok\n");
}

#define ORPHAN_LEN 3000

#define ORPHANS 3

/* Client n writes bytes of its own and closes (late: with a FIN_WAIT2 of a second). */
static int orphan_client(void *arg)
{
	h_chan_send(&closed, h_write_close(port_of_test, 77 + (uintptr_t)arg, ORPHAN_LEN, !dead_orphan));
	return 0;
}

/* Client n writes bytes of its own, with a FIN_WAIT2 of a second, says so, and waits to be killed. */
static int orphan_client_killed(void *arg)
{
	uint8_t buf[ORPHAN_LEN];
	struct sockaddr_in a;
	socklen_t alen = sizeof(a);
	int fd = h_connect(AF_INET, H_USMC, port_of_test);

	CHECK(getsockname(fd, (struct sockaddr *)&a, &alen) == 0);
	CHECK(setsockopt(fd, IPPROTO_TCP, TCP_LINGER2, &(int){ 1 }, sizeof(int)) == 0);
	h_pattern(buf, sizeof(buf), 77 + (uintptr_t)arg, 0);
	h_write_all(fd, buf, sizeof(buf));
	h_chan_send(&closed, ntohs(a.sin_port));
	pause();
	return 0;
}

/* The one worker: shares the listener, and once told accepts each client's connection, with its bytes. */
static int orphan_worker(void *arg)
{
	struct pollfd p = { .fd = lfd, .events = POLLIN };
	int fd;

	(void)arg;
	CHECK(usmc_poll(&p, 1, 0) == 1);
	h_chan_send(&ready, 1);
	h_chan_recv(&go);
	for (int n = 0; n < ORPHANS; n++) {
		uint8_t want[ORPHAN_LEN];
		uint64_t sum = H_FNV_INIT;

		fd = usmc_accept(lfd, NULL, NULL);
		CHECK(fd >= 0);
		h_check_mode(fd, USMC_MODE_SMCD);
		h_pattern(want, sizeof(want), 77 + (uint64_t)n, 0);
		CHECK(h_read_to_eof(fd, &sum, 4096, NULL) == ORPHAN_LEN);
		CHECK(sum == h_fnv(H_FNV_INIT, want, sizeof(want)));
		CHECK(usmc_close(fd) == 0);
	}
	return 0;
}

static void main_orphan(uint16_t port)
{
	unsigned lport[ORPHANS];
	pid_t w;

	h_chan_open(&go);
	h_chan_open(&ready);
	h_chan_open(&closed);
	port_of_test = port;
	for (int n = 0; n < ORPHANS; n++) {
		pid_t c = h_fork(killed_orphan ? orphan_client_killed : orphan_client,
				 (void *)(uintptr_t)n);

		lport[n] = (unsigned)h_chan_recv(&closed);
		if (killed_orphan)
			CHECK(kill(c, SIGKILL) == 0);
		CHECK(h_wait_ok(c) == !killed_orphan);
	}
	w = h_fork(orphan_worker, NULL);
	h_chan_recv(&ready);
	/* The FIN_WAIT2 of a second, and the timer's slack; or still in it. */
	for (int n = 0; n < ORPHANS; n++) {
		for (int i = 0; !dead_orphan && i < 200 && h_tcp_listed(lport[n], port); i++)
			usleep(50 * 1000);
		CHECK(dead_orphan == h_tcp_listed(lport[n], port));
	}
	h_chan_send(&go, 1);
	CHECK(h_wait_ok(w));
	printf("a worker accepted %d connections whose clients %s%s: "
	       "%d bytes each, then the end, in shared memory: ok\n",
	       ORPHANS, killed_orphan ? "were killed" : "closed and exited",
	       dead_orphan ? "" : ", their sockets gone", ORPHAN_LEN);
}

int main(int argc, char **argv)
{
	char dir[] = "/tmp/usmc-fork-listener-XXXXXX";
	pid_t workers[WORKERS], clients[CLIENTS];
	uint64_t smc, fallbacks, clc_timeouts;
	struct reg_port *reg;
	uint16_t port;

	plain_worker = argc > 1 && !strcmp(argv[1], "--plain-worker");
	dead_holder = argc > 1 && !strcmp(argv[1], "--dead-holder");
	plain_first = dead_holder || (argc > 1 && !strcmp(argv[1], "--plain-first"));
	early_clients = argc > 1 && !strcmp(argv[1], "--early-clients");
	early_pair = argc > 1 && !strcmp(argv[1], "--early-pair");
	reuseport = argc > 1 && !strcmp(argv[1], "--maker-closes-reuseport");
	if (argc > 1 && !strcmp(argv[1], "--maker-closes-chroot")) {
		static char empty[] = "/tmp/usmc-fork-jail-XXXXXX";

		if (geteuid() != 0) {
			fprintf(stderr, "fork_listener: --maker-closes-chroot needs root\n");
			return 77;
		}
		CHECK(mkdtemp(empty));
		jail = empty;
	}
	maker_closes = reuseport || jail || (argc > 1 && !strcmp(argv[1], "--maker-closes"));
	dead_orphan = argc > 1 && !strcmp(argv[1], "--dead-orphan");
	killed_orphan = argc > 1 && !strcmp(argv[1], "--killed-orphan");
	late_orphan = dead_orphan || killed_orphan || (argc > 1 && !strcmp(argv[1], "--late-orphan"));
	/* Counters of its own, which no other test counts in. */
	CHECK(mkdtemp(dir));
	setenv("USMC_REGISTRY_DIR", dir, 1);
	/* Long: a connection whose Proposal nobody finds would show, and fail. */
	setenv("USMC_CLC_TIMEOUT_MS", plain_worker || late_orphan ? "100" : "5000", 1);
	if (reuseport) {
		struct sockaddr_storage ss;
		socklen_t len = h_loopback(AF_INET, 0, &ss);
		int one = 1;

		lfd = usmc_socket(AF_INET, SOCK_STREAM, IPPROTO_SMC);
		CHECK(lfd >= 0 && usmc_setsockopt(lfd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) == 0);
		CHECK(usmc_bind(lfd, (struct sockaddr *)&ss, len) == 0 && usmc_listen(lfd, 64) == 0);
		CHECK(getsockname(lfd, (struct sockaddr *)&ss, &len) == 0);
		port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
	} else {
		lfd = h_listen(AF_INET, H_USMC, &port);
	}
	if (late_orphan) {
		main_orphan(port);
		return 0;
	}
	if (plain_worker || early_pair || plain_first) {
		(plain_worker ? main_plain_worker : early_pair ? main_early_pair : main_plain_first)(port);
		return 0;
	}
	h_chan_open(&closed);
	if (!early_clients)
		for (int i = 0; i < WORKERS; i++)
			workers[i] = h_fork(worker, NULL);
	if (maker_closes) {
		CHECK(usmc_close(lfd) == 0);
		for (int i = 0; i < WORKERS; i++)
			h_chan_send(&closed, 1);
	}
	if (reuseport) {
		struct sockaddr_un sun;
		socklen_t sun_len = reg_member_addr(getuid(), port, getpid(), &sun);

		late_carrier = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
		CHECK(late_carrier >= 0 && connect(late_carrier, (struct sockaddr *)&sun, sun_len) == 0);
	}
	/* Clients at once, each connecting again and again: the workers accept side by side. */
	for (int i = 0; i < CLIENTS; i++)
		clients[i] = h_fork(client, (void *)(uintptr_t)port);
	if (early_clients) {
		/* Every client's first Proposal is out, to the maker, before a worker waits. */
		usleep(300 * 1000);
		for (int i = 0; i < WORKERS; i++)
			workers[i] = h_fork(worker, NULL);
	}
	for (int i = 0; i < CLIENTS; i++)
		CHECK(h_wait_ok(clients[i]));
	if (reuseport) {
		ssize_t n = send(late_carrier, "late", 4, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n != 4)
			fprintf(stderr, "the late carrier's write: %s\n", strerror(errno));
		CHECK(n == 4 && close(late_carrier) == 0);
	}
	/* One empty connection ends each worker. */
	for (int i = 0; i < WORKERS; i++)
		round_trip(port, 0, 0);
	for (int i = 0; i < WORKERS; i++)
		CHECK(h_wait_ok(workers[i]));
	counters(&smc, &fallbacks, &clc_timeouts);
	printf("counters: %llu SMC connection ends, %llu fallbacks, %llu CLC timeouts\n",
	       (unsigned long long)smc, (unsigned long long)fallbacks,
	       (unsigned long long)clc_timeouts);
	CHECK(smc == 2 * (CLIENTS * ROUNDS + WORKERS));
	CHECK(fallbacks == 0 && clc_timeouts == 0);
	/*
	 * Each Proposal its client counted was settled by the worker that took
	 * it: an accept of a plain client then compares the two counts and
	 * looks no further (docs/HANDSHAKE.md, "What a plain client costs").
	 */
	reg = reg_port(port);
	CHECK(reg);
	if (atomic_load(&reg->queued) != atomic_load(&reg->settled))
		fprintf(stderr, "registry: %u Proposals counted, %u settled\n",
			(unsigned)atomic_load(&reg->queued), (unsigned)atomic_load(&reg->settled));
	CHECK(atomic_load(&reg->queued) == atomic_load(&reg->settled));
	CHECK(maker_closes || usmc_close(lfd) == 0);
	printf("listener accepted on by %d forked workers: %d connections in shared memory "
	       "on both ends, bytes intact, no CLC timeout: ok\n",
	       WORKERS, CLIENTS * ROUNDS + WORKERS);
	return 0;
}
