// SPDX-License-Identifier: MIT
/*
 * A listener made before fork() and accepted on by the child, as prefork
 * servers do.  The Proposal reaches the parent, which holds the listener's
 * channel, while the child gets the TCP connection: nobody can answer it.
 * The client must notice within a CLC timeout and fall back, the child
 * reads plain TCP, and every byte arrives.  The child's accept marks the
 * listener as shared, so later clients fall back without proposing.
 */
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"

static int lfd;
static struct h_chan chan;

#define ROUNDS 3

static int child_server(void *arg)
{
	(void)arg;
	for (int i = 0; i < ROUNDS; i++) {
		uint64_t sum, len, reply[2];
		int fd = usmc_accept(lfd, NULL, NULL);

		CHECK(fd >= 0);
		len = h_read_to_eof(fd, &sum, 8192, NULL);
		h_check_mode(fd, USMC_MODE_FALLBACK);
		reply[0] = len;
		reply[1] = sum;
		h_write_all(fd, reply, sizeof(reply));
		CHECK(usmc_close(fd) == 0);
	}
	return 0;
}

/* One connection to the child; the client's fallback reason. */
static uint32_t round_trip(uint16_t port)
{
	uint8_t buf[100000];
	uint64_t reply[2], sum;
	struct usmc_info info;
	int fd = h_connect(AF_INET, H_USMC, port);

	h_pattern(buf, sizeof(buf), 11, 0);
	sum = h_fnv(H_FNV_INIT, buf, sizeof(buf));
	h_write_all(fd, buf, sizeof(buf));
	CHECK(usmc_shutdown(fd, SHUT_WR) == 0);
	h_read_all(fd, reply, sizeof(reply));
	CHECK(reply[0] == sizeof(buf) && reply[1] == sum);
	CHECK(usmc_info(fd, &info, sizeof(info)) == 0);
	CHECK(info.mode == USMC_MODE_FALLBACK);
	CHECK(usmc_close(fd) == 0);
	return info.fallback_reason;
}

int main(void)
{
	uint32_t first, later;
	uint16_t port;
	pid_t pid;

	/* Long: the marked listener must end the first wait, not the timeout. */
	setenv("USMC_CLC_TIMEOUT_MS", "60000", 1);
	h_chan_open(&chan);
	lfd = h_listen(AF_INET, H_USMC, &port);
	pid = h_fork(child_server, NULL);
	/*
	 * The first proposes (nothing marked the listener yet) and waits: the
	 * child's accept marks it, and the client withdraws with that reason
	 * rather than wait out the timeout.
	 */
	first = round_trip(port);
	CHECK(first == USMC_DECL_LISTENSHARED);
	for (int i = 1; i < ROUNDS; i++) {
		later = round_trip(port);
		CHECK(later == USMC_DECL_LISTENSHARED);
	}
	CHECK(h_wait_ok(pid));
	printf("listener shared with a forked child: first client fell back (%s), "
	       "later ones at once (%s), bytes intact: ok\n",
	       usmc_reason_str(first), usmc_reason_str(later));
	return 0;
}
