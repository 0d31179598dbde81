// SPDX-License-Identifier: MIT
/*
 * Segments kept from one connection to a shared listener for the next
 * (usmc_seg_reuse.c), and only for a reader that could read them already.
 *
 * Two listeners, each accepted on by a forked worker (so both are
 * shared, and every connection has link groups of its own).  The test's
 * process is the client:
 *
 *  1. Two connections at once to worker 1: the worker answers the first
 *     and closes it, then the second, while the client has read neither.
 *     The first's segment is not free (the client may still read its
 *     ring): the second must get another, or the first's bytes are
 *     overwritten.  Both are read after, and checked.
 *  2. A third connection, both closed: each side reuses a segment.
 *  3. A connection to the other listener: the client's kept segment was
 *     seen by worker 1's listener only, so it is not reused there.
 *  4. A forked child of the client connects to worker 1: neither the
 *     parent's kept segments nor worker 1's, kept for the parent, serve it.
 *
 * Every transfer is checked by length and checksum and is in shared
 * memory on both ends; the counters of the test's own registry directory
 * say what was made and what reused.
 */
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "counters.h"
#include "harness.h"

#define LEN 4000 /* fits any ring: a worker writes it all and closes */

struct spec {
	uint64_t seed, len;
};

static int ready[2];

/*
 * Answers each connection with len bytes of its seed's pattern, and
 * closes; len 0 ends.  It waits on the listener first, which marks it
 * shared, and only then says it is ready: a connection proposed before
 * would go to the maker, on a link group of many connections.
 */
static int worker(void *arg)
{
	int lfd = (int)(intptr_t)arg;
	struct pollfd p = { .fd = lfd, .events = POLLIN };

	CHECK(usmc_poll(&p, 1, 0) >= 0);
	CHECK(write(ready[1], "r", 1) == 1);
	for (;;) {
		static uint8_t buf[LEN];
		struct spec sp;
		int fd = usmc_accept(lfd, NULL, NULL);

		CHECK(fd >= 0);
		h_read_all(fd, &sp, sizeof(sp));
		CHECK(sp.len <= LEN);
		h_pattern(buf, sp.len, sp.seed, 0);
		h_write_all(fd, buf, sp.len);
		h_check_mode(fd, USMC_MODE_SMCD);
		CHECK(usmc_close(fd) == 0);
		if (!sp.len)
			return 0;
	}
}

static int ask(uint16_t port, uint64_t seed, uint64_t len)
{
	struct spec sp = { seed, len };
	int fd = h_connect(AF_INET, H_USMC, port);

	h_write_all(fd, &sp, sizeof(sp));
	return fd;
}

/* Reads a whole answer and checks it, its mode and where it travelled. */
static void check_answer(int fd, uint64_t seed)
{
	static uint8_t want[LEN];
	uint64_t sum;

	CHECK(h_read_to_eof(fd, &sum, LEN, NULL) == LEN);
	h_pattern(want, LEN, seed, 0);
	CHECK(sum == h_fnv(H_FNV_INIT, want, LEN));
	h_check_mode(fd, USMC_MODE_SMCD);
	h_check_shm_carried(fd, LEN);
	CHECK(usmc_close(fd) == 0);
}

static void round_trip(uint16_t port, uint64_t seed)
{
	check_answer(ask(port, seed, LEN), seed);
}

/* Counts made and reused since the last look. */
static void expect(const char *step, uint64_t made, uint64_t reused)
{
	static uint64_t made0, reused0;
	uint64_t m = counter(USMC_STAT_SEGMENTS), r = counter(USMC_STAT_SEGMENTS_REUSED);

	printf("%s: %llu segments made, %llu reused\n", step, (unsigned long long)(m - made0),
	       (unsigned long long)(r - reused0));
	fflush(stdout);
	CHECK(m - made0 == made && r - reused0 == reused);
	made0 = m;
	reused0 = r;
}

static int child(void *arg)
{
	round_trip((uint16_t)(uintptr_t)arg, 5);
	return 0;
}

int main(void)
{
	char dir[] = "/tmp/usmc-seg-reuse-XXXXXX";
	uint16_t port1, port2;
	int l1, l2, a, b;
	pid_t w1, w2;

	CHECK(mkdtemp(dir));
	setenv("USMC_REGISTRY_DIR", dir, 1);
	setenv("USMC_CLC_TIMEOUT_MS", "5000", 1);
	l1 = h_listen(AF_INET, H_USMC, &port1);
	l2 = h_listen(AF_INET, H_USMC, &port2);
	CHECK(pipe(ready) == 0);
	w1 = h_fork(worker, (void *)(intptr_t)l1);
	w2 = h_fork(worker, (void *)(intptr_t)l2);
	for (int i = 0; i < 2; i++)
		CHECK(read(ready[0], &(char){ 0 }, 1) == 1);

	a = ask(port1, 1, LEN);
	b = ask(port1, 2, LEN);
	check_answer(b, 2);
	check_answer(a, 1);
	expect("two at once, neither read before both were answered", 4, 0);

	round_trip(port1, 3);
	expect("a third, the first two closed", 0, 2);

	round_trip(port2, 4);
	expect("another listener", 2, 0);

	CHECK(h_wait_ok(h_fork(child, (void *)(uintptr_t)port1)));
	expect("a forked child of the client", 2, 0);

	CHECK(usmc_close(ask(port1, 0, 0)) == 0);
	CHECK(usmc_close(ask(port2, 0, 0)) == 0);
	CHECK(h_wait_ok(w1) && h_wait_ok(w2));
	printf("segments reused only once free, and only for a reader that had them: ok\n");
	return 0;
}
