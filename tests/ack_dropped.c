// SPDX-License-Identifier: MIT
/*
 * The last ACK of the kernel's handshake dropped, as a full accept queue
 * drops it in a storm: the client is connected, the server's side is
 * still a request that no accept() can take.  TCP's client completes the
 * handshake with its first data.  A usmc client writes its request into
 * its ring, nothing on TCP, and waits for its answer: it must not wait
 * for an accept that cannot come, but give its Proposal up after a CLC
 * timeout and replay the request into TCP, whose data completes the
 * server's side.  Waiting as for a connection in the accept queue, it
 * waited for good.
 *
 * An nftables rule of its own (needs root) drops every segment to the
 * listener's port that is a bare ACK; data, SYN and FIN pass.  The
 * listener is a forked worker's, shared, as a prefork server's.
 */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#define REQUEST_LEN 3000
#define TABLE "usmc_ack_dropped"

static int lfd;
static struct h_chan ready;

static void rule_drop(void)
{
	if (system("nft delete table inet " TABLE " 2>/dev/null") < 0)
		return;
}

/* The worker: answers one request with its length and checksum. */
static int worker(void *arg)
{
	struct pollfd p = { .fd = lfd, .events = POLLIN };
	uint8_t buf[REQUEST_LEN];
	uint64_t reply[2];
	int fd;

	(void)arg;
	usmc_poll(&p, 1, 0);
	h_chan_send(&ready, 1);
	fd = usmc_accept(lfd, NULL, NULL);
	CHECK(fd >= 0);
	h_read_all(fd, buf, sizeof(buf));
	reply[0] = sizeof(buf);
	reply[1] = h_fnv(H_FNV_INIT, buf, sizeof(buf));
	h_write_all(fd, reply, sizeof(reply));
	CHECK(usmc_close(fd) == 0);
	return 0;
}

int main(void)
{
	uint8_t buf[REQUEST_LEN];
	uint64_t reply[2];
	struct usmc_info info;
	char cmd[512];
	uint16_t port;
	pid_t w;
	int fd;

	if (geteuid() != 0) {
		fprintf(stderr, "ack_dropped: needs root (nftables)\n");
		return 77;
	}
	lfd = h_listen(AF_INET, H_USMC, &port);
	h_chan_open(&ready);
	w = h_fork(worker, NULL);
	h_chan_recv(&ready);
	rule_drop();
	atexit(rule_drop);
	snprintf(cmd, sizeof(cmd),
		 "nft add table inet " TABLE " && "
		 "nft add chain inet " TABLE " in '{ type filter hook input priority -300; }' && "
		 "nft add rule inet " TABLE " in tcp dport %u 'tcp flags & (fin|syn|rst|psh|ack) == ack' "
		 "meta length 52 drop",
		 (unsigned)port);
	if (system(cmd) != 0) {
		fprintf(stderr, "ack_dropped: nft could not add its rule\n");
		return 77;
	}
	fd = h_connect(AF_INET, H_USMC, port);
	h_pattern(buf, sizeof(buf), 5, 0);
	h_write_all(fd, buf, sizeof(buf));
	h_read_all(fd, reply, sizeof(reply));
	CHECK(reply[0] == sizeof(buf) && reply[1] == h_fnv(H_FNV_INIT, buf, sizeof(buf)));
	CHECK(usmc_info(fd, &info, sizeof(info)) == 0);
	printf("request and reply whole; mode %d, %s\n", info.mode,
	       usmc_reason_str(info.fallback_reason));
	CHECK(info.mode == USMC_MODE_FALLBACK);
	CHECK(usmc_close(fd) == 0);
	CHECK(h_wait_ok(w));
	printf("the handshake's last ACK dropped: the client gave up its Proposal and TCP carried "
	       "the request: ok\n");
	return 0;
}
