// SPDX-License-Identifier: MIT
/*
 * A shared-memory connection inherited through fork(), used as TCP allows.
 *
 *   fork_conn --case handoff [--rounds N]
 *       The server accepts, forks a child per connection and closes its
 *       own copy at once, as forking servers do; the child serves.  Over
 *       N rounds the server's segment mappings must not grow: the slots
 *       given to children come back.  Its children never accept, so
 *       every connection stays in the one link group the two processes
 *       share (forking marks no listener shared).
 *   fork_conn --case both_write
 *       Parent and child both write records on one connection, then both
 *       close; the peer reads every record intact and EOF only after the
 *       last close.
 *   fork_conn --case client_handoff
 *       The client forks, closes its copy, and its child finishes the
 *       exchange.
 *   fork_conn --case holder_killed
 *       A child writing records on the connection is killed (-9) in the
 *       middle of it; the parent writes its own and closes.  The peer reads
 *       every record intact: the child's up to some point, then all of the
 *       parent's.
 *   fork_conn --case killed_holders [--rounds N]
 *       A forking server's child, holding the connection, is killed (-9)
 *       before the parent closes its copy, 80 times: the parent ends each
 *       connection (the client reads EOF) and its ring is reused, more
 *       rounds than a segment has slots without a new segment.
 *   fork_conn --case close_race [--rounds N]
 *       The server forks a child per connection and both close their copy
 *       at the same moment, with the client's shutdown doorbell unread in
 *       the TCP socket.  One of them is the last holder and must drain it:
 *       the client reads EOF every round, never ECONNRESET, and its TCP
 *       connection ends in a FIN, never a reset.  A guess at the
 *       last holder from /proc (each looking whether the other still holds
 *       the socket) fails about one round in a hundred: 1000 rounds.
 * Every byte is checked; every connection stays in shared memory.
 */
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#define REQUEST (200 * 1000)
#define RECORDS 2000

struct record {
	uint32_t tag; /* 'P' or 'C' */
	uint32_t seq;
	uint64_t sum; /* of tag and seq, so a torn record shows */
};

static uint64_t record_sum(const struct record *r)
{
	return h_fnv(H_FNV_INIT, r, offsetof(struct record, sum));
}

/* Reads a request of REQUEST pattern bytes and answers its checksum. */
static void serve(int fd)
{
	uint8_t buf[REQUEST];
	uint64_t sum;

	h_read_all(fd, buf, sizeof(buf));
	sum = h_fnv(H_FNV_INIT, buf, sizeof(buf));
	h_write_all(fd, &sum, sizeof(sum));
	h_check_mode(fd, USMC_MODE_SMCD);
}

static void request(int fd, uint64_t seed)
{
	uint8_t buf[REQUEST];
	uint64_t sum, want;

	h_pattern(buf, sizeof(buf), seed, 0);
	want = h_fnv(H_FNV_INIT, buf, sizeof(buf));
	h_write_all(fd, buf, sizeof(buf));
	h_read_all(fd, &sum, sizeof(sum));
	CHECK(sum == want);
	h_check_mode(fd, USMC_MODE_SMCD);
}

static void expect_eof(int fd)
{
	uint8_t b;

	CHECK(usmc_read(fd, &b, 1) == 0);
}

/* ---- handoff: a forking server ---- */

static int handoff_rounds;

static int handoff_client(void *arg)
{
	uint16_t port = (uint16_t)(uintptr_t)arg;

	for (int i = 0; i < handoff_rounds; i++) {
		int fd = h_connect(AF_INET, H_USMC, port);

		request(fd, (uint64_t)i);
		expect_eof(fd);
		CHECK(usmc_close(fd) == 0);
	}
	return 0;
}

static int serve_and_exit(void *arg)
{
	int fd = (int)(intptr_t)arg;

	serve(fd);
	CHECK(usmc_close(fd) == 0);
	return 0;
}

/* ---- killed_holders: a forking server whose children die without a word ---- */

static int one_byte_client(void *arg)
{
	uint16_t port = (uint16_t)(uintptr_t)arg;

	for (int i = 0; i < handoff_rounds; i++) {
		int fd = h_connect(AF_INET, H_USMC, port);
		uint8_t b = (uint8_t)i;

		h_write_all(fd, &b, 1);
		expect_eof(fd);
		h_check_mode(fd, USMC_MODE_SMCD);
		CHECK(usmc_close(fd) == 0);
	}
	return 0;
}

static int hold_until_killed(void *arg)
{
	(void)arg;
	for (;;)
		pause();
	return 0;
}

/*
 * A forking server: each connection goes to a child and the parent closes
 * its copy.  The child serves the request and exits, or (killed) is
 * killed (-9) holding the connection before the parent's close: then the
 * parent, whose close leaves the dead child counted, must find that no
 * child holds the socket, end the connection and free its ring.  Either
 * way the rings are reused: the segment mappings do not grow, over more
 * rounds than a segment has slots for the killed case.
 */
static void forking_server(int rounds, bool killed, int *maps_first, int *maps_last,
			   uint32_t *lgr_first)
{
	uint16_t port;
	int lfd = h_listen(AF_INET, H_USMC, &port), status;
	pid_t client;

	handoff_rounds = rounds;
	client = h_fork(killed ? one_byte_client : handoff_client, (void *)(uintptr_t)port);
	for (int i = 0; i < rounds; i++) {
		int fd = usmc_accept(lfd, NULL, NULL);
		struct usmc_info info;
		pid_t child;
		uint8_t b;

		CHECK(fd >= 0);
		h_check_mode(fd, USMC_MODE_SMCD);
		/* Its children never accept: one link group with the client, whatever it forks. */
		CHECK(usmc_info(fd, &info, sizeof(info)) == 0 && info.lgr_id);
		if (i == 0)
			*lgr_first = info.lgr_id;
		CHECK(info.lgr_id == *lgr_first);
		if (killed) {
			h_read_all(fd, &b, 1);
			CHECK(b == (uint8_t)i);
			child = h_fork(hold_until_killed, NULL);
			CHECK(kill(child, SIGKILL) == 0 && waitpid(child, &status, 0) == child);
			CHECK(usmc_close(fd) == 0);
		} else {
			child = h_fork(serve_and_exit, (void *)(intptr_t)fd);
			CHECK(usmc_close(fd) == 0);
			CHECK(h_wait_ok(child));
		}
		if (i == 0)
			*maps_first = h_count_lines("/proc/self/maps", "usmc-seg");
		*maps_last = h_count_lines("/proc/self/maps", "usmc-seg");
	}
	CHECK(h_wait_ok(client));
	CHECK(*maps_last <= *maps_first);
	CHECK(usmc_close(lfd) == 0);
}

static void case_handoff(int rounds)
{
	int maps_first = 0, maps_last = 0;
	uint32_t lgr = 0;

	forking_server(rounds, false, &maps_first, &maps_last, &lgr);
	printf("handoff: %d connections served by forked children after the parent's close, "
	       "all in link group %u, segment mappings %d then %d: ok\n", rounds, lgr, maps_first,
	       maps_last);
}

static void case_killed_holders(int rounds)
{
	int maps_first = 0, maps_last = 0;
	uint32_t lgr = 0;

	forking_server(rounds, true, &maps_first, &maps_last, &lgr);
	printf("killed_holders: %d connections ended by the parent after their holder was killed, "
	       "segment mappings %d then %d: ok\n", rounds, maps_first, maps_last);
}

/* ---- both_write ---- */

static void write_records(int fd, uint32_t tag)
{
	for (uint32_t i = 0; i < RECORDS; i++) {
		struct record r = { .tag = tag, .seq = i };

		r.sum = record_sum(&r);
		h_write_all(fd, &r, sizeof(r));
	}
}

static int write_records_child(void *arg)
{
	int fd = (int)(intptr_t)arg;

	write_records(fd, 'C');
	CHECK(usmc_close(fd) == 0);
	return 0;
}

static int read_records(void *arg)
{
	uint16_t port = (uint16_t)(uintptr_t)arg;
	int fd = h_connect(AF_INET, H_USMC, port);
	uint32_t next_p = 0, next_c = 0;
	struct record r;

	for (uint32_t n = 0; n < 2 * RECORDS; n++) {
		h_read_all(fd, &r, sizeof(r));
		CHECK(r.sum == record_sum(&r));
		if (r.tag == 'P')
			CHECK(r.seq == next_p++);
		else
			CHECK(r.tag == 'C' && r.seq == next_c++);
	}
	expect_eof(fd);
	h_check_mode(fd, USMC_MODE_SMCD);
	CHECK(usmc_close(fd) == 0);
	return 0;
}

static void case_both_write(void)
{
	uint16_t port;
	int lfd = h_listen(AF_INET, H_USMC, &port);
	pid_t reader = h_fork(read_records, (void *)(uintptr_t)port), child;
	int fd = usmc_accept(lfd, NULL, NULL);

	CHECK(fd >= 0);
	h_check_mode(fd, USMC_MODE_SMCD);
	child = h_fork(write_records_child, (void *)(intptr_t)fd);
	write_records(fd, 'P');
	CHECK(usmc_close(fd) == 0);
	CHECK(h_wait_ok(child));
	CHECK(h_wait_ok(reader));
	CHECK(usmc_close(lfd) == 0);
	printf("both_write: %d records from each process intact, EOF after the last close: ok\n",
	       RECORDS);
}

/* ---- holder_killed ---- */

static struct h_chan started;

/* Writes records until killed, telling the parent once a few are out. */
static int write_records_forever(void *arg)
{
	int fd = (int)(intptr_t)arg;

	for (uint32_t i = 0;; i++) {
		struct record r = { .tag = 'C', .seq = i };

		r.sum = record_sum(&r);
		h_write_all(fd, &r, sizeof(r));
		if (i == 64)
			h_chan_send(&started, 1);
	}
	return 0;
}

static int read_records_until_eof(void *arg)
{
	uint16_t port = (uint16_t)(uintptr_t)arg;
	int fd = h_connect(AF_INET, H_USMC, port);
	uint32_t next_p = 0, next_c = 0;
	struct record r;

	for (;;) {
		ssize_t n = 0;
		size_t got = 0;

		while (got < sizeof(r) && (n = usmc_read(fd, (uint8_t *)&r + got, sizeof(r) - got)) > 0)
			got += (size_t)n;
		if (got == 0 && n == 0)
			break;
		CHECK(got == sizeof(r) && r.sum == record_sum(&r));
		if (r.tag == 'P')
			CHECK(r.seq == next_p++);
		else
			CHECK(r.tag == 'C' && r.seq == next_c++ && next_p == 0);
	}
	CHECK(next_p == RECORDS && next_c > 0);
	h_check_mode(fd, USMC_MODE_SMCD);
	CHECK(usmc_close(fd) == 0);
	printf("holder_killed: %u records of the killed child, then %u of the parent, intact: ok\n",
	       next_c, next_p);
	fflush(stdout);
	return 0;
}

static void case_holder_killed(void)
{
	uint16_t port;
	int lfd = h_listen(AF_INET, H_USMC, &port), status;
	pid_t reader = h_fork(read_records_until_eof, (void *)(uintptr_t)port), child;
	int fd = usmc_accept(lfd, NULL, NULL);

	CHECK(fd >= 0);
	h_check_mode(fd, USMC_MODE_SMCD);
	h_chan_open(&started);
	child = h_fork(write_records_forever, (void *)(intptr_t)fd);
	h_chan_recv(&started);
	CHECK(kill(child, SIGKILL) == 0 && waitpid(child, &status, 0) == child);
	write_records(fd, 'P');
	CHECK(usmc_close(fd) == 0);
	CHECK(h_wait_ok(reader));
	CHECK(usmc_close(lfd) == 0);
}

/* ---- close_race ---- */

static int race_rounds, race_round;
static _Atomic int *race_go; /* shared: the round whose two holders may close */

/* A client that fails leaves the server's two holders waiting for nothing: they fail too. */
static void race_abandon(void)
{
	atomic_store(race_go, -1);
}

/*
 * Whether the TCP connection under the one that read end of file ended
 * in a reset: the flags in shared memory tell of the close before the
 * kernel's close sends its FIN (or, over an unread doorbell, its reset).
 */
static bool race_tcp_reset(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLRDHUP };
	int err = 0;
	socklen_t len = sizeof(err);

	CHECK(poll(&p, 1, 10000) == 1); /* the kernel's poll: FIN or reset */
	CHECK(usmc_getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0);
	CHECK(err == 0 || err == ECONNRESET);
	return err == ECONNRESET;
}

static int race_client(void *arg)
{
	uint16_t port = (uint16_t)(uintptr_t)arg;
	int eofs = 0, resets = 0;

	atexit(race_abandon);
	for (int i = 1; i <= race_rounds; i++) {
		int fd = h_connect(AF_INET, H_USMC, port);
		uint8_t b = 'x';
		ssize_t n;

		/* A byte each way: the connection is in shared memory, nothing left unread. */
		h_write_all(fd, &b, 1);
		h_read_all(fd, &b, 1);
		h_check_mode(fd, USMC_MODE_SMCD);
		/* Rings the server's doorbell, which nobody reads before the closes. */
		CHECK(usmc_shutdown(fd, SHUT_WR) == 0);
		atomic_store(race_go, i);
		n = usmc_read(fd, &b, 1);
		if (n == 0 && !race_tcp_reset(fd))
			eofs++;
		else if (n == 0 || (n < 0 && errno == ECONNRESET))
			resets++;
		else
			CHECK(!"EOF or reset");
		CHECK(usmc_close(fd) == 0);
	}
	printf("close_race: %d rounds, %d EOF, %d reset\n", race_rounds, eofs, resets);
	fflush(stdout);
	CHECK(resets == 0);
	return 0;
}

/* Both holders wait for the client's doorbell, then close at once. */
static void race_close(int fd, int round)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	while (atomic_load(race_go) != round)
		CHECK(atomic_load(race_go) != -1);
	CHECK(poll(&p, 1, -1) == 1); /* the kernel's poll: the doorbell is in */
	CHECK(usmc_close(fd) == 0);
}

static int race_child(void *arg)
{
	race_close((int)(intptr_t)arg, race_round);
	return 0;
}

static void case_close_race(int rounds)
{
	uint16_t port;
	int lfd = h_listen(AF_INET, H_USMC, &port);
	pid_t client;

	race_go = mmap(NULL, sizeof(*race_go), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
		       -1, 0);
	CHECK(race_go != MAP_FAILED);
	race_rounds = rounds;
	client = h_fork(race_client, (void *)(uintptr_t)port);
	for (int i = 1, child = 0; i <= rounds; i++) {
		int fd = usmc_accept(lfd, NULL, NULL);
		uint8_t b;

		CHECK(fd >= 0);
		/* The last round's child may still be closing: its slot may be this one's. */
		CHECK(!child || h_wait_ok(child));
		h_read_all(fd, &b, 1);
		h_write_all(fd, &b, 1);
		race_round = i;
		child = h_fork(race_child, (void *)(intptr_t)fd);
		race_close(fd, i);
		if (i == rounds)
			CHECK(h_wait_ok(child));
	}
	CHECK(h_wait_ok(client));
	CHECK(usmc_close(lfd) == 0);
}

/* ---- client_handoff ---- */

static int inherited_sfd, inherited_lfd;

static int finish_request(void *arg)
{
	int fd = (int)(intptr_t)arg;

	/* As with TCP, a copy of the server's end kept here would keep it open. */
	CHECK(usmc_close(inherited_sfd) == 0 && usmc_close(inherited_lfd) == 0);
	request(fd, 99);
	CHECK(usmc_shutdown(fd, SHUT_WR) == 0);
	expect_eof(fd);
	CHECK(usmc_close(fd) == 0);
	return 0;
}

static void case_client_handoff(void)
{
	uint16_t port;
	int lfd = h_listen(AF_INET, H_USMC, &port);
	int cfd = h_connect(AF_INET, H_USMC, port);
	int sfd = usmc_accept(lfd, NULL, NULL);
	pid_t child;

	CHECK(sfd >= 0);
	/* A byte each way settles the handshake before the fork. */
	h_write_all(cfd, "x", 1);
	h_read_all(sfd, (uint8_t[1]){ 0 }, 1);
	h_write_all(sfd, "y", 1);
	h_read_all(cfd, (uint8_t[1]){ 0 }, 1);
	h_check_mode(cfd, USMC_MODE_SMCD);
	inherited_sfd = sfd;
	inherited_lfd = lfd;
	child = h_fork(finish_request, (void *)(intptr_t)cfd);
	CHECK(usmc_close(cfd) == 0);
	serve(sfd);
	expect_eof(sfd);
	CHECK(usmc_close(sfd) == 0);
	CHECK(h_wait_ok(child));
	CHECK(usmc_close(lfd) == 0);
	printf("client_handoff: the client's child finished the exchange: ok\n");
}

int main(int argc, char **argv)
{
	const char *c = argc > 2 && !strcmp(argv[1], "--case") ? argv[2] : "";
	int rounds = argc > 4 && !strcmp(argv[3], "--rounds") ? atoi(argv[4]) : 50;

	signal(SIGPIPE, SIG_IGN);
	if (!strcmp(c, "handoff"))
		case_handoff(rounds);
	else if (!strcmp(c, "both_write"))
		case_both_write();
	else if (!strcmp(c, "client_handoff"))
		case_client_handoff();
	else if (!strcmp(c, "holder_killed"))
		case_holder_killed();
	else if (!strcmp(c, "close_race"))
		case_close_race(rounds);
	else if (!strcmp(c, "killed_holders"))
		case_killed_holders(argc > 4 ? rounds : 80);
	else {
		fprintf(stderr, "usage: fork_conn --case handoff [--rounds N]|both_write|client_handoff|"
				"holder_killed|close_race [--rounds N]|killed_holders [--rounds N]\n");
		return 2;
	}
	return 0;
}
