// SPDX-License-Identifier: MIT
/*
 * Laps (usmc_cdc.h): a ring whose writer finds it full, or whose reader
 * lags at the end of a lap, takes all of its slot, as TCP's autotuning
 * grows a send buffer; a reader a lap behind a larger one loses nothing,
 * since the writer reaches no byte past it; a ring whose program set
 * SO_SNDBUF keeps that size; a new connection in the slot starts
 * small again, the pages past its first lap given back; and a writer
 * whose reader keeps up begins each lap at the ring's start.
 * Both ends are in this process, nonblocking, so that each step is
 * exact; every byte is checked against its pattern.
 *
 *   ring_laps        (USMC_BUFSIZE and USMC_BUFSIZE_MAX unset)
 */
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "harness.h"
#include "usmc_conn.h"
#include "usmc_fdtab.h"
#include "usmc_sock.h"

#define FIRST_SHIFT 16 /* 64 KiB, USMC_BUFSIZE's default */
#define LAP (1u << FIRST_SHIFT)
#define MAX_SHIFT 22   /* 4 MiB, USMC_BUFSIZE_MAX's */

static uint8_t buf[1 << 20], want[1 << 20];

static struct usmc_conn *conn_of(int fd)
{
	struct usmc_sock *s = usmc_sock_get(fd);

	CHECK(s && s->state == SOCK_SMC && s->conn);
	return s->conn;
}

/* The bytes of the writer's ring whose pages are allocated. */
static uint32_t seg_charged(const struct usmc_conn *w)
{
	return w->tx.seg->charged[w->tx.slot];
}

/* KiB resident in this process's writable mappings of segments (the rings we write). */
static uint64_t seg_rss_writable(void)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	char line[512];
	bool in = false;
	uint64_t kib = 0, n;

	CHECK(f != NULL);
	while (fgets(line, sizeof(line), f)) {
		char perms[8];

		if (sscanf(line, "%*x-%*x %7s", perms) == 1 && strchr(line, '/'))
			in = strstr(line, "usmc-seg") && perms[1] == 'w';
		else if (in && sscanf(line, "Rss: %" SCNu64, &n) == 1)
			kib += n;
	}
	fclose(f);
	return kib;
}

/* Writes the pattern from *sent on until the ring is full: what it took. */
static size_t fill(int fd, uint64_t *sent)
{
	size_t total = 0;

	for (;;) {
		ssize_t n;

		h_pattern(buf, sizeof(buf), 1, *sent);
		n = usmc_send(fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n < 0) {
			CHECK(errno == EAGAIN);
			return total;
		}
		*sent += (uint64_t)n;
		total += (size_t)n;
	}
}

/* Writes n bytes of the pattern, which must fit. */
static void send_exactly(int fd, uint64_t *sent, size_t n)
{
	h_pattern(buf, n, 1, *sent);
	CHECK(usmc_send(fd, buf, n, MSG_DONTWAIT) == (ssize_t)n);
	*sent += n;
}

/* Reads up to max bytes (all there are, if 0), each checked: how many. */
static size_t drain(int fd, uint64_t *got, size_t max)
{
	size_t total = 0;

	while (!max || total < max) {
		size_t len = max && max - total < sizeof(buf) ? max - total : sizeof(buf);
		ssize_t n = usmc_recv(fd, buf, len, MSG_DONTWAIT);

		if (n < 0) {
			CHECK(errno == EAGAIN);
			break;
		}
		CHECK(n > 0);
		h_pattern(want, (size_t)n, 1, *got);
		CHECK(memcmp(buf, want, (size_t)n) == 0);
		*got += (uint64_t)n;
		total += (size_t)n;
	}
	return total;
}

static void pair(int lfd, uint16_t port, int sndbuf, int *c, int *v)
{
	char b;

	*c = h_socket(AF_INET, H_USMC, 0);
	if (sndbuf)
		CHECK(usmc_setsockopt(*c, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf)) == 0);
	{
		struct sockaddr_storage ss;
		socklen_t len = h_loopback(AF_INET, port, &ss);

		CHECK(usmc_connect(*c, (struct sockaddr *)&ss, len) == 0);
	}
	*v = usmc_accept(lfd, NULL, NULL);
	CHECK(*v >= 0);
	h_write_all(*v, "x", 1);
	h_read_all(*c, &b, 1);
	h_check_mode(*c, USMC_MODE_SMCD);
	CHECK(usmc_fcntl(*c, F_SETFL, O_NONBLOCK) == 0 && usmc_fcntl(*v, F_SETFL, O_NONBLOCK) == 0);
}

int main(void)
{
	uint16_t port;
	int lfd = h_listen(AF_INET, H_USMC, &port), c, v;
	uint64_t sent = 0, got = 0, rss_before, rss_after;
	struct usmc_conn *w;
	struct usmc_seg *seg;
	uint32_t slot;

	pair(lfd, port, 0, &c, &v);
	w = conn_of(c);
	/*
	 * The first lap fills, by a write it could not take whole, while the
	 * reader has read nothing: at its end the lap goes on into the whole
	 * slot, and the writer has the room at once.
	 */
	CHECK(w->sh->tx_laps.shift == FIRST_SHIFT && seg_charged(w) == 1u << FIRST_SHIFT);
	CHECK(fill(c, &sent) == 1u << MAX_SHIFT);
	/* At the end of the longer lap the next begins, as long; the writer may fill what is read. */
	CHECK(w->sh->tx_laps.shift == MAX_SHIFT && w->sh->tx_laps.wrap == 1 &&
	      w->sh->tx_laps.base == 1u << MAX_SHIFT);
	CHECK(drain(v, &got, 1000) == 1000);
	CHECK(fill(c, &sent) == 1000);
	/* The reader, a lap behind, reads the rest of the first lap intact, then the next. */
	CHECK(drain(v, &got, 0) == 1u << MAX_SHIFT);
	CHECK(conn_of(v)->sh->rx_laps.shift == MAX_SHIFT && conn_of(v)->sh->rx_laps.wrap == 1);
	/* Filled again and again, it grows no further. */
	for (int round = 0; round < 6; round++) {
		fill(c, &sent);
		drain(v, &got, 0);
	}
	CHECK(sent == got && w->sh->tx_laps.shift == MAX_SHIFT && w->tx.size == 1u << MAX_SHIFT);
	seg = w->tx.seg;
	slot = w->tx.slot;
	CHECK(seg_charged(w) == 1u << MAX_SHIFT);
	CHECK(usmc_close(c) == 0 && usmc_close(v) == 0);

	/*
	 * A new connection in that slot starts with the first lap's pages
	 * only.  Writes that each fit, with the reader half a lap behind in
	 * the same lap, lengthen the lap too, before it is full.
	 */
	sent = got = 0;
	pair(lfd, port, 0, &c, &v);
	w = conn_of(c);
	CHECK(w->tx.seg == seg && w->tx.slot == slot);
	CHECK(w->sh->tx_laps.shift == FIRST_SHIFT && seg_charged(w) == 1u << FIRST_SHIFT);
	for (int i = 0; i < 4; i++)
		send_exactly(c, &sent, 1u << (FIRST_SHIFT - 2));
	CHECK(w->sh->tx_laps.shift == MAX_SHIFT && w->sh->tx_laps.wrap == 0);
	CHECK(fill(c, &sent) == (1u << MAX_SHIFT) - (1u << FIRST_SHIFT));
	CHECK(drain(v, &got, 0) == sent);
	CHECK(usmc_close(c) == 0 && usmc_close(v) == 0);

	/*
	 * A writer a lap ahead of its reader that finds the ring full gets
	 * no room at once; it remembers, and its next lap is longer, though
	 * the reader has caught up by then.  (The lap ends by a write within
	 * the block where the reader caught up: one that went on into the
	 * next would begin a lap at the ring's start instead, below.)
	 */
	sent = got = 0;
	pair(lfd, port, 0, &c, &v);
	w = conn_of(c);
	send_exactly(c, &sent, LAP - (3 << 10));
	CHECK(drain(v, &got, 0) == LAP - (3 << 10));
	send_exactly(c, &sent, 3 << 10); /* to the lap's end */
	CHECK(w->sh->tx_laps.shift == FIRST_SHIFT && w->sh->tx_laps.wrap == 1);
	CHECK(fill(c, &sent) == LAP - (3 << 10));
	drain(v, &got, 0);
	CHECK(got == sent && w->sh->tx_laps.shift == FIRST_SHIFT);
	send_exactly(c, &sent, 8 << 10);
	CHECK(w->sh->tx_laps.shift == MAX_SHIFT && w->sh->tx_laps.wrap == 2 &&
	      w->sh->tx_laps.base == 2 * LAP - (3 << 10));
	CHECK(drain(v, &got, 0) == 8 << 10 && got == sent);
	CHECK(usmc_close(c) == 0 && usmc_close(v) == 0);

	/*
	 * A reader that keeps up: each write that would go on into a block
	 * of the ring not written lately begins a lap at the ring's start
	 * instead, so that 2 MiB of 1 KiB messages, each read before the
	 * next, never leave the ring's first block.
	 */
	sent = got = 0;
	pair(lfd, port, 0, &c, &v);
	w = conn_of(c);
	for (int i = 0; i < 2048; i++) {
		send_exactly(c, &sent, 1000);
		CHECK(drain(v, &got, 0) == 1000);
		CHECK(w->sh->tx_prod - w->sh->tx_laps.base <= 4096);
	}
	CHECK(got == sent && w->sh->tx_laps.shift == FIRST_SHIFT && w->sh->tx_laps.wrap >= 500);
	/* A reader that does not keep up leaves the lap as it is. */
	send_exactly(c, &sent, 3000);
	send_exactly(c, &sent, 3000);
	CHECK(w->sh->tx_prod - w->sh->tx_laps.base > 4096);
	CHECK(drain(v, &got, 0) == 6000 && got == sent);
	CHECK(usmc_close(c) == 0 && usmc_close(v) == 0);

	/*
	 * A reader less than half a lap behind, but behind more than the
	 * piece that ends the lap: the lap goes on rather than leave the
	 * writer a lap ahead, with only the lap's room should the reader
	 * stall.  (Above, a reader that had read all before that piece left
	 * the lap as it was.)
	 */
	sent = got = 0;
	pair(lfd, port, 0, &c, &v);
	w = conn_of(c);
	send_exactly(c, &sent, 50 << 10);
	CHECK(drain(v, &got, 38 << 10) == 38 << 10);
	send_exactly(c, &sent, 25 << 10); /* across the lap's end, 12 KiB more behind */
	CHECK(w->sh->tx_laps.shift == MAX_SHIFT && w->sh->tx_laps.wrap == 0);
	CHECK(fill(c, &sent) == (1u << MAX_SHIFT) - (37 << 10));
	CHECK(drain(v, &got, 0) == sent - (38 << 10) && got == sent);
	CHECK(usmc_close(c) == 0 && usmc_close(v) == 0);

	/* SO_SNDBUF: a ring of that size, filled lap after lap, never grows. */
	sent = got = 0;
	pair(lfd, port, 65536, &c, &v);
	w = conn_of(c);
	CHECK(w->tx.size == 65536 && w->sh->tx_laps.shift == 16);
	for (int round = 0; round < 8; round++) {
		CHECK(fill(c, &sent) > 0);
		drain(v, &got, 0);
	}
	CHECK(sent == got && sent >= 8 * 65536 && w->sh->tx_laps.shift == 16);
	CHECK(usmc_close(c) == 0 && usmc_close(v) == 0);

	/*
	 * By the kernel's count: a ring grown to its slot by a burst of
	 * 1 MiB, then carrying 4 MB of 1,000-byte messages each read before
	 * the next, keeps the pages the burst touched.  Walking on through
	 * the lap would map the other 3 MiB of it into the writer's page
	 * tables (Rss of the writable segment mappings, /proc/self/smaps).
	 */
	sent = got = 0;
	pair(lfd, port, 0, &c, &v);
	w = conn_of(c);
	send_exactly(c, &sent, 1u << 20);
	CHECK(w->sh->tx_laps.shift == MAX_SHIFT);
	CHECK(drain(v, &got, 0) == sent);
	send_exactly(c, &sent, 1000);
	CHECK(drain(v, &got, 0) == 1000);
	rss_before = seg_rss_writable();
	for (int i = 0; i < 4000; i++) {
		send_exactly(c, &sent, 1000);
		CHECK(drain(v, &got, 0) == 1000);
	}
	rss_after = seg_rss_writable();
	printf("writable segment mappings: %llu KiB resident before 4,000 messages, %llu KiB after\n",
	       (unsigned long long)rss_before, (unsigned long long)rss_after);
	CHECK(got == sent && rss_after <= rss_before + 16);
	CHECK(usmc_close(c) == 0 && usmc_close(v) == 0 && usmc_close(lfd) == 0);
	printf("ring_laps: ok\n");
	return 0;
}
