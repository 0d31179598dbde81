// SPDX-License-Identifier: MIT
/*
 * A hostile peer.  A usmc process completes a real handshake with the
 * victim (this test's main process), then writes its own CDC area, which
 * the victim reads, from outside the library's paths: cursors out of the
 * ring, running backwards, jumping wraps, claiming more than a ring, a
 * consumer ahead of the victim's producer, the abort flag flickering,
 * garbage in the wait counters, or plain silence.
 *
 * The victim holds three connections to the hostile process, all in one
 * link group, and one to a well-behaved process.  Only the attacked
 * connection may suffer (ECONNRESET, or for silence a wait that the
 * victim's own timeout ends); the other three must keep carrying data
 * byte-exact in both directions.  Every wait is bounded and fails the
 * test when the bound passes.
 *
 * Here are the processes and the tools the attacks share (hostile_peer.h);
 * the attacks are hostile_cdc.c's (what the peer publishes) and
 * hostile_segment.c's (the segments it is passed).
 *
 *   hostile_peer --case NAME
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "hostile_cdc.h"
#include "hostile_peer.h"
#include "hostile_segment.h"
#include "usmc_conn.h"
#include "usmc_fdtab.h"
#include "usmc_sock.h"
#include "usmc_sys.h"

struct h_chan to_hostile, from_hostile, to_other;

struct hostile_case {
	const char *name;
	void (*hostile)(int fd); /* runs in the hostile process on its attacked end */
	void (*victim)(int fd);  /* runs in the victim on the attacked connection */
};

/* ---- small tools ---- */

int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void say(struct h_chan *c, enum step step)
{
	h_chan_send(c, step);
}

/* Waits for one step; a peer that died or hangs fails the test. */
void expect(struct h_chan *c, enum step step)
{
	struct pollfd p = { .fd = c->rd, .events = POLLIN };

	CHECK(poll(&p, 1, BOUND_MS) == 1);
	CHECK(h_chan_recv(c) == step);
}

bool heard(struct h_chan *c)
{
	struct pollfd p = { .fd = c->rd, .events = POLLIN };

	return poll(&p, 1, 0) == 1;
}

static void wait_ready(int fd, short events)
{
	struct pollfd p = { .fd = fd, .events = events };

	CHECK(usmc_poll(&p, 1, BOUND_MS) == 1);
}

/* Called between chunks of a transfer, to disturb it. */
void (*between_chunks)(int fd);

void send_pattern(int fd, uint64_t seed, uint64_t off, size_t len)
{
	uint8_t buf[CHUNK];

	for (size_t done = 0; done < len;) {
		size_t n = len - done < sizeof(buf) ? len - done : sizeof(buf);

		h_pattern(buf, n, seed, off + done);
		h_write_all(fd, buf, n);
		done += n;
		if (between_chunks)
			between_chunks(fd);
	}
}

/* Reads exactly len bytes in random pieces; length and checksum must match. */
void recv_pattern(int fd, uint64_t seed, uint64_t off, size_t len)
{
	uint8_t buf[CHUNK], want[CHUNK];
	uint64_t sum = H_FNV_INIT, expected = H_FNV_INIT, rng = seed * 7 + 1;
	size_t got = 0;

	while (got < len) {
		size_t ask = 1 + h_rand(&rng) % sizeof(buf);
		ssize_t n = usmc_read(fd, buf, ask < len - got ? ask : len - got);

		if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
			wait_ready(fd, POLLIN);
			continue;
		}
		CHECK(n > 0);
		h_pattern(want, (size_t)n, seed, off + got);
		sum = h_fnv(sum, buf, (size_t)n);
		expected = h_fnv(expected, want, (size_t)n);
		got += (size_t)n;
		if (between_chunks)
			between_chunks(fd);
	}
	CHECK(got == len);
	CHECK(sum == expected);
}

/* The end of an orderly close: EOF and not one byte more. */
void expect_eof(int fd)
{
	char c;
	ssize_t n;

	do {
		wait_ready(fd, POLLIN);
		n = usmc_read(fd, &c, 1);
	} while (n < 0 && (errno == EAGAIN || errno == EINTR));
	CHECK(n == 0);
}

/* ---- the hostile process's view of its own end ---- */

struct usmc_conn *own_conn(int fd)
{
	struct usmc_sock *s = usmc_sock_get(fd);

	CHECK(s && s->state == SOCK_SMC && s->conn && s->conn->rx_mapped);
	return s->conn;
}

void publish_prod(int fd, uint64_t wire)
{
	atomic_store_explicit(&own_conn(fd)->tx.cdc->prod, wire, memory_order_release);
	cdc_ring(fd, own_conn(fd)->tx.cdc, false);
}

void publish_cons(int fd, uint64_t wire)
{
	atomic_store_explicit(&own_conn(fd)->tx.cdc->cons, wire, memory_order_release);
	cdc_ring(fd, own_conn(fd)->tx.cdc, false);
}

/* Our producer cursor as the library last published it. */
union cdc_cursor current_prod(int fd)
{
	struct usmc_conn *conn = own_conn(fd);
	union cdc_cursor c = { .acurs = cdc_cursor_from_pos(&conn->sh->tx_laps, conn->sh->tx_prod) };

	return c;
}

/* ---- the victim's checks on the attacked connection ---- */

/*
 * Reads until ECONNRESET: whatever arrives before must be the attacker's
 * pattern, at most max_bytes of it (what it produced legitimately).
 */
uint64_t expect_reset(int fd, uint64_t max_bytes)
{
	uint8_t buf[CHUNK], want[CHUNK];
	int64_t deadline = now_ms() + BOUND_MS;
	uint64_t off = 0;

	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t n;

		CHECK(now_ms() < deadline);
		usmc_poll(&p, 1, 200);
		n = usmc_recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n < 0) {
			CHECK(errno == ECONNRESET);
			return off;
		}
		CHECK(n > 0); /* EOF would hide the attack */
		h_pattern(want, (size_t)n, ROLE_ATTACKED, off);
		CHECK(memcmp(buf, want, (size_t)n) == 0);
		off += (uint64_t)n;
		CHECK(off <= max_bytes);
	}
}

/* After the reset was reported: writes fail, reads end, nothing more arrives. */
void expect_dead(int fd)
{
	char c = 'x';
	uint8_t buf[256];

	CHECK(usmc_send(fd, &c, 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0);
	CHECK(errno == EPIPE || errno == ECONNRESET);
	for (int i = 0; i < 3; i++) {
		struct pollfd p = { .fd = fd, .events = POLLIN };

		ssize_t n;

		usmc_poll(&p, 1, 100);
		n = usmc_recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n > 0)
			fprintf(stderr, "%zd bytes arrived after the reset was reported\n", n);
		CHECK(n <= 0);
	}
}

static const struct hostile_case cases[] = {
	{ "prod_beyond", hostile_prod_beyond, victim_wait_reset },
	{ "prod_backwards", hostile_prod_backwards, victim_prod_backwards },
	{ "wrap_jump", hostile_wrap_jump, victim_wait_reset },
	{ "prod_overfull", hostile_prod_overfull, victim_prod_overfull },
	{ "lap_beyond", hostile_lap_beyond, victim_prod_backwards },
	{ "cons_ahead", hostile_cons_ahead, victim_cons },
	{ "cons_backwards", hostile_cons_backwards, victim_cons },
	{ "abort_flip", hostile_abort_flip, victim_abort_flip },
	{ "garbage_hints", hostile_garbage, victim_garbage },
	{ "silence", hostile_silence, victim_silence },
	{ "sealed", hostile_keeps_quiet, victim_sealed },
	{ "peer_write_map", hostile_write_map, victim_nothing },
	{ "peer_scribble", hostile_scribble, victim_wait_reset },
	{ "tcp_alien", hostile_tcp_alien, victim_wait_reset },
	{ "tcp_alien_counted", hostile_tcp_alien_counted, victim_wait_reset },
};

static const struct hostile_case *the_case;

/* ---- the processes ---- */

/* Connects, says which role the connection plays, and waits for the handshake. */
static int peer_connect(uint16_t port, enum role role)
{
	int fd = h_connect(AF_INET, H_USMC, port);
	uint64_t hello = role, ack;

	h_write_all(fd, &hello, sizeof(hello));
	h_read_all(fd, &ack, sizeof(ack));
	CHECK(ack == hello);
	h_check_mode(fd, USMC_MODE_SMCD);
	return fd;
}

/* The healthy exchange of one connection, as the victim's mirror image. */
static void peer_exchange(int fd, enum role role)
{
	recv_pattern(fd, 100 + role, 0, HEALTHY_BYTES);
	send_pattern(fd, 200 + role, 0, HEALTHY_BYTES);
	CHECK(usmc_close(fd) == 0);
}

static int hostile_main(void *arg)
{
	uint16_t port = (uint16_t)h_chan_recv(&to_hostile);
	int fds[HOSTILE_CONNS];

	(void)arg;
	if (the_case->hostile == hostile_write_map || the_case->hostile == hostile_scribble)
		keep_passed_fds();
	for (int r = 0; r < HOSTILE_CONNS; r++)
		fds[r] = peer_connect(port, (enum role)r);
	expect(&to_hostile, STEP_GO);
	the_case->hostile(fds[ROLE_ATTACKED]);
	for (int r = ROLE_HEALTHY1; r < HOSTILE_CONNS; r++)
		peer_exchange(fds[r], (enum role)r);
	usmc_close(fds[ROLE_ATTACKED]);
	return 0;
}

static int other_main(void *arg)
{
	uint16_t port = (uint16_t)h_chan_recv(&to_other);

	(void)arg;
	peer_exchange(peer_connect(port, ROLE_OTHER), ROLE_OTHER);
	return 0;
}

/* Accepts the four connections and sorts them by the role their first word names. */
static void victim_accept(int lfd, int fds[NROLES])
{
	for (int i = 0; i < NROLES; i++)
		fds[i] = -1;
	for (int i = 0; i < NROLES; i++) {
		uint64_t role;
		int fd;

		wait_ready(lfd, POLLIN);
		fd = usmc_accept(lfd, NULL, NULL);
		CHECK(fd >= 0);
		h_read_all(fd, &role, sizeof(role));
		CHECK(role < NROLES && fds[role] < 0);
		fds[role] = fd;
		h_write_all(fd, &role, sizeof(role));
		h_check_mode(fd, USMC_MODE_SMCD);
	}
}

static uint32_t lgr_of(int fd)
{
	struct usmc_info info;

	CHECK(usmc_info(fd, &info, sizeof(info)) == 0);
	return info.lgr_id;
}

static void victim_run(void)
{
	uint16_t port;
	int lfd, fds[NROLES];
	pid_t hostile, other;

	if (the_case->victim == victim_sealed)
		keep_passed_fds();
	hostile = h_fork(hostile_main, NULL);
	other = h_fork(other_main, NULL);
	lfd = h_listen(AF_INET, H_USMC, &port);
	h_chan_send(&to_hostile, port);
	h_chan_send(&to_other, port);
	victim_accept(lfd, fds);
	/* The attacked connection shares its link group with two healthy ones. */
	CHECK(lgr_of(fds[ROLE_ATTACKED]) == lgr_of(fds[ROLE_HEALTHY1]));
	CHECK(lgr_of(fds[ROLE_ATTACKED]) == lgr_of(fds[ROLE_HEALTHY2]));
	CHECK(lgr_of(fds[ROLE_ATTACKED]) != lgr_of(fds[ROLE_OTHER]));
	say(&to_hostile, STEP_GO);
	the_case->victim(fds[ROLE_ATTACKED]);
	for (int r = ROLE_HEALTHY1; r < NROLES; r++) {
		send_pattern(fds[r], 100 + (uint64_t)r, 0, HEALTHY_BYTES);
		recv_pattern(fds[r], 200 + (uint64_t)r, 0, HEALTHY_BYTES);
		expect_eof(fds[r]);
		h_check_mode(fds[r], USMC_MODE_SMCD);
		CHECK(usmc_close(fds[r]) == 0);
	}
	CHECK(usmc_close(fds[ROLE_ATTACKED]) == 0);
	CHECK(h_wait_ok(hostile));
	CHECK(h_wait_ok(other));
	CHECK(usmc_close(lfd) == 0);
}

int main(int argc, char **argv)
{
	const char *name = NULL;

	for (int i = 1; i + 1 < argc; i++)
		if (!strcmp(argv[i], "--case"))
			name = argv[i + 1];
	for (size_t i = 0; name && i < sizeof(cases) / sizeof(cases[0]); i++)
		if (!strcmp(cases[i].name, name))
			the_case = &cases[i];
	if (!the_case) {
		fprintf(stderr, "usage: hostile_peer --case NAME\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	h_chan_open(&to_hostile);
	h_chan_open(&from_hostile);
	h_chan_open(&to_other);
	victim_run();
	printf("hostile peer, %s: attacked connection handled, the other three byte-exact\n", name);
	return 0;
}
