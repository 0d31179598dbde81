// SPDX-License-Identifier: MIT
/*
 * An epoll wait reports every ready descriptor of its set, even while one
 * of them is ready at every wait: within a few waits, as the kernel's
 * epoll does (all at once when there is room for them, in turns when
 * maxevents is smaller).
 *
 * The set holds two shared-memory connections and a pipe.  A wait that
 * finds nothing ready arms both connections, which then wait for their
 * doorbell; then connection A asks for EPOLLOUT, which a ring with room
 * always answers, the peer writes a reply on connection B and a byte goes
 * into the pipe.  B's reply is known only through its doorbell, which the
 * kernel reports: a wait that answers from A alone, never asking the
 * kernel, would report neither B nor the pipe again (a client of
 * redis-benchmark that had sent all its requests spun on EPOLLOUT while
 * the replies of the others waited for ever).  All three stay ready until
 * each was reported twice: with maxevents 1, in turns.  Each round's reply is
 * read and checked by length and checksum; no wait reports a descriptor
 * twice, though every other round B is both looked at in shared memory
 * and reported by the kernel for its doorbell.
 *
 *   epoll_every_ready [--maxevents N] [--rounds N]
 */
#include <string.h>
#include <sys/epoll.h>

#include "harness.h"

/* Waits allowed for every ready descriptor to be reported: many times what is needed. */
#define WAITS_MAX 1000

enum { TAG_A = 1, TAG_B, TAG_PIPE };

static struct h_chan to_peer, from_peer;

static size_t reply_len(int round)
{
	/* 5 bytes, as a "+OK\r\n", up to a reply that wraps the ring now and then. */
	return round % 4 == 3 ? 70000 + (size_t)round * 13 : 5 + (size_t)round % 7;
}

/* Connects A and B, then writes each round's reply on B when told to. */
static int peer(void *arg)
{
	uint16_t port = (uint16_t)h_chan_recv(&to_peer);
	int a = h_connect(AF_INET, H_USMC, port), b = h_connect(AF_INET, H_USMC, port);
	static uint8_t buf[80000];
	uint64_t round;
	char c;

	(void)arg;
	CHECK(a >= 0 && b >= 0);
	while ((round = h_chan_recv(&to_peer)) != UINT64_MAX) {
		h_pattern(buf, reply_len((int)round), round, 0);
		h_write_all(b, buf, reply_len((int)round));
		h_chan_send(&from_peer, round);
	}
	CHECK(usmc_read(a, &c, 1) == 0 && usmc_read(b, &c, 1) == 0);
	CHECK(usmc_close(a) == 0 && usmc_close(b) == 0);
	return 0;
}

static void ep_set(int ep, int op, int fd, uint32_t events, uint32_t tag)
{
	struct epoll_event ev = { .events = events, .data.u32 = tag };

	CHECK(usmc_epoll_ctl(ep, op, fd, &ev) == 0);
}

/*
 * Waits until A, B and the pipe were each reported twice, all three
 * staying ready (nothing is read meanwhile); how many waits it took.
 */
static int wait_all_reported(int ep, int maxevents)
{
	static const char *const name[] = { "", "A", "B", "the pipe" };
	struct epoll_event ev[16];
	int seen[TAG_PIPE + 1] = { 0 }, waits = 0;

	while ((seen[TAG_A] < 2 || seen[TAG_B] < 2 || seen[TAG_PIPE] < 2) && waits < WAITS_MAX) {
		bool in_call[TAG_PIPE + 1] = { false };
		int n = usmc_epoll_wait(ep, ev, maxevents, -1);

		CHECK(n > 0 && n <= maxevents);
		waits++;
		for (int i = 0; i < n; i++) {
			uint32_t tag = ev[i].data.u32;

			CHECK(tag >= TAG_A && tag <= TAG_PIPE);
			CHECK(!in_call[tag]); /* each descriptor once in a wait */
			in_call[tag] = true;
			CHECK(ev[i].events & (tag == TAG_A ? EPOLLOUT : EPOLLIN));
			seen[tag]++;
		}
	}
	for (int t = TAG_A; t <= TAG_PIPE; t++)
		if (seen[t] < 2)
			fprintf(stderr, "after %d waits, %s reported %d times\n", waits, name[t],
				seen[t]);
	CHECK(seen[TAG_A] >= 2 && seen[TAG_B] >= 2 && seen[TAG_PIPE] >= 2);
	return waits;
}

int main(int argc, char **argv)
{
	int maxevents = 16, rounds = 200, lfd, a, b, ep, pfd[2], most = 0;
	static uint8_t buf[80000], want[80000];
	struct epoll_event ev[16];
	uint16_t port;
	pid_t pid;
	char c;

	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--maxevents"))
			maxevents = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--rounds"))
			rounds = atoi(argv[i + 1]);
	}
	CHECK(maxevents >= 1 && maxevents <= 16 && rounds >= 1);
	h_chan_open(&to_peer);
	h_chan_open(&from_peer);
	pid = h_fork(peer, NULL);
	lfd = h_listen(AF_INET, H_USMC, &port);
	h_chan_send(&to_peer, port);
	a = usmc_accept(lfd, NULL, NULL);
	b = usmc_accept(lfd, NULL, NULL);
	CHECK(a >= 0 && b >= 0 && pipe(pfd) == 0);
	h_check_mode(a, USMC_MODE_SMCD);
	h_check_mode(b, USMC_MODE_SMCD);
	CHECK((ep = epoll_create1(EPOLL_CLOEXEC)) >= 0);
	ep_set(ep, EPOLL_CTL_ADD, b, EPOLLIN, TAG_B);
	ep_set(ep, EPOLL_CTL_ADD, a, EPOLLIN, TAG_A);
	ep_set(ep, EPOLL_CTL_ADD, pfd[0], EPOLLIN, TAG_PIPE);
	for (int round = 0; round < rounds; round++) {
		size_t len = reply_len(round);
		int waits;

		/* Nothing ready: both connections are armed and wait for their doorbell. */
		CHECK(usmc_epoll_wait(ep, ev, maxevents, 0) == 0);
		ep_set(ep, EPOLL_CTL_MOD, a, EPOLLOUT, TAG_A);
		/*
		 * Every other round B is modified too: looked at in every wait
		 * again, while the doorbell its arming asked for comes all the
		 * same, so that the kernel reports it beside.
		 */
		if (round % 2)
			ep_set(ep, EPOLL_CTL_MOD, b, EPOLLIN, TAG_B);
		h_chan_send(&to_peer, (uint64_t)round);
		CHECK(h_chan_recv(&from_peer) == (uint64_t)round);
		CHECK(write(pfd[1], "p", 1) == 1);
		waits = wait_all_reported(ep, maxevents);
		most = waits > most ? waits : most;
		h_read_all(b, buf, len);
		h_pattern(want, len, (uint64_t)round, 0);
		CHECK(h_fnv(H_FNV_INIT, buf, len) == h_fnv(H_FNV_INIT, want, len));
		CHECK(read(pfd[0], &c, 1) == 1 && c == 'p');
		ep_set(ep, EPOLL_CTL_MOD, a, EPOLLIN, TAG_A);
	}
	h_chan_send(&to_peer, UINT64_MAX);
	CHECK(usmc_close(a) == 0 && usmc_close(b) == 0 && usmc_close(lfd) == 0);
	CHECK(h_wait_ok(pid));
	printf("%d rounds, maxevents %d: a reply and a pipe beside an always writable connection "
	       "reported in turn within %d waits, checked: ok\n", rounds, maxevents, most);
	return 0;
}
