// SPDX-License-Identifier: MIT
/*
 * The hostile peer's attacks through what it publishes (hostile_peer.c
 * runs them): its CDC area's cursors running out of the ring, backwards,
 * a wrap ahead or a ring too far, a consumer ahead or behind, the abort
 * flag flickering, garbage in the wait counters, plain silence, and bytes
 * on the TCP stream that are no doorbell.
 */
#include <errno.h>
#include <poll.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "hostile_cdc.h"
#include "hostile_peer.h"
#include "usmc_conn.h"

void hostile_prod_beyond(int fd)
{
	union cdc_cursor c = current_prod(fd);

	c.count = cdc_lap_size(&own_conn(fd)->sh->tx_laps); /* one past the lap's last byte */
	publish_prod(fd, c.acurs);
	say(&from_hostile, STEP_ATTACKED);
}

void victim_wait_reset(int fd)
{
	expect(&from_hostile, STEP_ATTACKED);
	expect_reset(fd, 0);
	expect_dead(fd);
}

/* Sends 1000 honest bytes and waits until the victim has read them. */
static void hostile_honest_prefix(int fd, enum step victim_step)
{
	send_pattern(fd, ROLE_ATTACKED, 0, 1000);
	say(&from_hostile, STEP_SENT);
	expect(&to_hostile, victim_step);
}

void hostile_prod_backwards(int fd)
{
	hostile_honest_prefix(fd, STEP_READ);
	publish_prod(fd, cdc_cursor_from_pos(&own_conn(fd)->sh->tx_laps, 500));
	say(&from_hostile, STEP_ATTACKED);
}

void victim_prod_backwards(int fd)
{
	expect(&from_hostile, STEP_SENT);
	recv_pattern(fd, ROLE_ATTACKED, 0, 1000);
	say(&to_hostile, STEP_READ);
	expect(&from_hostile, STEP_ATTACKED);
	expect_reset(fd, 0);
	expect_dead(fd);
}

void hostile_lap_beyond(int fd)
{
	struct usmc_conn *conn = own_conn(fd);
	union cdc_cursor c;

	hostile_honest_prefix(fd, STEP_READ);
	/* The next lap, said to be larger than the ring: its first byte would be in reach. */
	c = current_prod(fd);
	c.wrap += 1;
	c.count = 0;
	atomic_store(&conn->tx.cdc->lap_shift[1], (uint8_t)(__builtin_ctz(conn->tx.size) + 1));
	publish_prod(fd, c.acurs);
	say(&from_hostile, STEP_ATTACKED);
}

void hostile_wrap_jump(int fd)
{
	union cdc_cursor c = current_prod(fd);

	c.wrap += 2;
	publish_prod(fd, c.acurs);
	say(&from_hostile, STEP_ATTACKED);
}

void hostile_prod_overfull(int fd)
{
	union cdc_cursor c;

	hostile_honest_prefix(fd, STEP_SEEN);
	/* One lap on, of a size the ring holds, but a lap too far: passes the lap checks only. */
	c = current_prod(fd);
	c.wrap += 1;
	c.count = 500;
	atomic_store(&own_conn(fd)->tx.cdc->lap_shift[1], own_conn(fd)->sh->tx_laps.shift);
	publish_prod(fd, c.acurs);
	say(&from_hostile, STEP_ATTACKED);
}

void victim_prod_overfull(int fd)
{
	uint8_t buf[1000];
	int64_t deadline = now_ms() + BOUND_MS;

	expect(&from_hostile, STEP_SENT);
	/* Peeking makes the victim accept the 1000 bytes without consuming them. */
	for (;;) {
		ssize_t n = usmc_recv(fd, buf, sizeof(buf), MSG_PEEK | MSG_DONTWAIT);

		if (n == (ssize_t)sizeof(buf))
			break;
		CHECK(n > 0 || errno == EAGAIN);
		CHECK(now_ms() < deadline);
		usleep(1000);
	}
	say(&to_hostile, STEP_SEEN);
	expect(&from_hostile, STEP_ATTACKED);
	expect_reset(fd, 0);
	expect_dead(fd);
}

/* The victim sends 100 bytes; the hostile side reads them, then lies about it. */
static void hostile_cons(int fd, int64_t delta)
{
	struct usmc_conn *conn = own_conn(fd);

	expect(&to_hostile, STEP_SENT);
	recv_pattern(fd, ROLE_OTHER + 1, 0, 100);
	say(&from_hostile, STEP_READ);
	expect(&to_hostile, STEP_SEEN);
	publish_cons(fd, cdc_cursor_from_pos(&conn->sh->rx_laps,
					     (uint64_t)((int64_t)conn->sh->rx_cons + delta)));
	say(&from_hostile, STEP_ATTACKED);
}

void hostile_cons_ahead(int fd)
{
	hostile_cons(fd, 50);
}

void hostile_cons_backwards(int fd)
{
	hostile_cons(fd, -60);
}

void victim_cons(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLOUT };
	char c = 'x';

	send_pattern(fd, ROLE_OTHER + 1, 0, 100);
	say(&to_hostile, STEP_SENT);
	expect(&from_hostile, STEP_READ);
	/* Any look at the connection takes in the honest consumer cursor. */
	CHECK(usmc_poll(&p, 1, 0) == 1);
	say(&to_hostile, STEP_SEEN);
	expect(&from_hostile, STEP_ATTACKED);
	/*
	 * A write with room by the cursor last read need not look again; the
	 * next look at the cursor (here poll) finds it bad and resets.
	 */
	CHECK(usmc_poll(&p, 1, 0) == 1 && (p.revents & (POLLERR | POLLHUP)));
	CHECK(usmc_send(fd, &c, 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0);
	CHECK(errno == ECONNRESET);
	expect_dead(fd);
}

/* Produces while the abort flag goes on and off, until the victim has seen it. */
void hostile_abort_flip(int fd)
{
	struct usmc_conn *conn = own_conn(fd);
	int64_t deadline = now_ms() + BOUND_MS;
	uint8_t buf[4096];
	uint64_t off = 0;
	ssize_t n;

	say(&from_hostile, STEP_ATTACKED);
	while (!heard(&to_hostile)) {
		CHECK(now_ms() < deadline);
		h_pattern(buf, sizeof(buf), ROLE_ATTACKED, off);
		n = usmc_send(fd, buf, sizeof(buf), MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n > 0)
			off += (uint64_t)n;
		atomic_fetch_or(&conn->tx.cdc->flags, CDC_PEER_CONN_ABORT);
		cdc_ring(fd, conn->tx.cdc, false);
		usleep(300);
		atomic_fetch_and(&conn->tx.cdc->flags, ~CDC_PEER_CONN_ABORT);
		usleep(300);
	}
	CHECK(h_chan_recv(&to_hostile) == STEP_RESET_SEEN);
	/* The flag is off for good now: the victim must not take this as a new life. */
	h_pattern(buf, sizeof(buf), ROLE_ATTACKED, off);
	n = usmc_send(fd, buf, sizeof(buf), MSG_DONTWAIT | MSG_NOSIGNAL);
	CHECK(n > 0);
	say(&from_hostile, STEP_WROTE_MORE);
}

void victim_abort_flip(int fd)
{
	expect(&from_hostile, STEP_ATTACKED);
	expect_reset(fd, UINT64_MAX);
	say(&to_hostile, STEP_RESET_SEEN);
	expect(&from_hostile, STEP_WROTE_MORE);
	expect_dead(fd);
}

static uint64_t scribble_rng = 0x243f6a8885a308d3ull;

/* Garbage in the fields that are only hints: wait counters and generation. */
static void scribble(int fd)
{
	struct cdc_area *cdc = own_conn(fd)->tx.cdc;

	atomic_store(&cdc->want_data, (uint32_t)h_rand(&scribble_rng));
	atomic_store(&cdc->want_space, (uint32_t)h_rand(&scribble_rng));
	atomic_store(&cdc->gen, (uint32_t)h_rand(&scribble_rng));
	cdc_ring(fd, own_conn(fd)->tx.cdc, false);
}

void hostile_garbage(int fd)
{
	between_chunks = scribble;
	recv_pattern(fd, ROLE_OTHER + 1, 0, HEALTHY_BYTES / 2);
	send_pattern(fd, ROLE_ATTACKED, 0, HEALTHY_BYTES / 2);
	between_chunks = NULL;
	CHECK(usmc_close(fd) == 0);
}

/* Hints are not cursors: garbage there must not break the connection. */
void victim_garbage(int fd)
{
	send_pattern(fd, ROLE_OTHER + 1, 0, HEALTHY_BYTES / 2);
	recv_pattern(fd, ROLE_ATTACKED, 0, HEALTHY_BYTES / 2);
	expect_eof(fd);
}

void hostile_silence(int fd)
{
	(void)fd;
	say(&from_hostile, STEP_ATTACKED);
}

/* A peer that never produces nor consumes: the victim's own bounds end every wait. */
void victim_silence(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN | POLLOUT };
	uint8_t buf[CHUNK];
	uint64_t total = 0;
	ssize_t n;

	expect(&from_hostile, STEP_ATTACKED);
	memset(buf, 0x5a, sizeof(buf));
	while ((n = usmc_send(fd, buf, sizeof(buf), MSG_DONTWAIT | MSG_NOSIGNAL)) > 0) {
		total += (uint64_t)n;
		CHECK(total <= (16u << 20));
	}
	CHECK(n < 0 && errno == EAGAIN);
	CHECK(total > 0);
	CHECK(usmc_recv(fd, buf, sizeof(buf), MSG_DONTWAIT) < 0 && errno == EAGAIN);
	CHECK(usmc_poll(&p, 1, 300) == 0);
}

/* A byte on the TCP stream that is no doorbell: data past the rings, lost unless reset. */
void hostile_tcp_alien(int fd)
{
	CHECK(send(fd, "x", 1, MSG_NOSIGNAL) == 1);
	say(&from_hostile, STEP_ATTACKED);
}

/* The same byte, counted as a doorbell is first: only what it is tells it apart. */
void hostile_tcp_alien_counted(int fd)
{
	atomic_fetch_add(&own_conn(fd)->tx.cdc->bells, 1);
	hostile_tcp_alien(fd);
}
