// SPDX-License-Identifier: MIT
/*
 * Carriers are anyone's to send (docs/HANDSHAKE.md, "Security"): a process
 * of the listener's user that speaks no usmc puts into a shared listener's
 * backlog, before any client connects,
 *  - a carrier bringing a listening seqpacket socket, one bringing a
 *    seqpacket socket never connected, and one bringing a datagram socket:
 *    none is a channel, and the holder that takes them drops them (the
 *    first two answer its peek with ENOTCONN, the third is of the wrong
 *    type);
 *  - a carrier bringing a channel whose Proposal, for no connection the
 *    holder has, has a second message behind it, which no client sends:
 *    the holder refuses it, a Decline of reason 0x04000000 (out of sync)
 *    on that channel.
 * The clients' connections to the worker that accepts behind them are all
 * in shared memory, their bytes checked by length and checksum.
 */
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "harness.h"
#include "usmc_clc.h"
#include "usmc_registry.h"

#define CLIENTS 8

static int lfd;
static struct h_chan ready;

/* Echoes length and checksum of CLIENTS connections, each in shared memory. */
static int worker(void *arg)
{
	struct pollfd p = { .fd = lfd, .events = POLLIN };

	(void)arg;
	/* Waiting on the listener marks it shared: clients then use the backlog. */
	CHECK(usmc_poll(&p, 1, 0) >= 0);
	h_chan_send(&ready, 1);
	for (int i = 0; i < CLIENTS; i++) {
		uint64_t reply[2];
		int fd = usmc_accept(lfd, NULL, NULL);

		CHECK(fd >= 0);
		reply[0] = h_read_to_eof(fd, &reply[1], 8192, NULL);
		h_check_mode(fd, USMC_MODE_SMCD);
		h_write_all(fd, reply, sizeof(reply));
		CHECK(usmc_close(fd) == 0);
	}
	return 0;
}

/* Puts fd into the listener's backlog on a carrier of our own, as a client would. */
static void carry(const struct sockaddr_un *sun, socklen_t len, int fd)
{
	char cbuf[CMSG_SPACE(sizeof(int))] = { 0 };
	/* Uncounted (PASU): the registry's count of Proposals is the clients' own. */
	struct iovec iov = { .iov_base = "usmcPASU", .iov_len = 8 };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			     .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
	int carrier = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fd, sizeof(int));
	CHECK(carrier >= 0);
	CHECK(connect(carrier, (const struct sockaddr *)sun, len) == 0);
	CHECK(sendmsg(carrier, &mh, 0) == 8);
	CHECK(close(carrier) == 0);
}

/* A channel with a Proposal for nobody's connection and a second message behind it. */
static int proposal_and_more(uint16_t port, int *channel)
{
	struct clc_msg msg = { .type = CLC_PROPOSAL, .version = CLC_VERSION };
	uint8_t buf[CLC_MAX_MSG_SIZE];
	int sv[2], n;

	msg.proposal.dst.family = AF_INET;
	msg.proposal.dst.port = port;
	msg.proposal.cookie = 0x5eed5eed5eedull;
	msg.proposal.rmb = (struct clc_rmb_desc){ .seg_len = 1u << 20, .rmb_size = 1u << 16 };
	n = clc_msg_encode(&msg, buf, sizeof(buf));
	CHECK(n > 0);
	CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == 0);
	CHECK(send(sv[0], buf, (size_t)n, 0) == n);
	CHECK(send(sv[0], buf, (size_t)n, 0) == n);
	*channel = sv[0];
	return sv[1];
}

int main(void)
{
	uint8_t buf[CLC_MAX_MSG_SIZE];
	struct sockaddr_un sun;
	struct pollfd p;
	struct clc_msg answer;
	uint16_t port;
	socklen_t len;
	pid_t pid;
	int junk[3], channel, theirs;
	ssize_t n;

	h_registry_own("hostile-carrier");
	lfd = h_listen(AF_INET, H_USMC, &port);
	h_chan_open(&ready);
	pid = h_fork(worker, NULL);
	CHECK(h_chan_recv(&ready) == 1);

	len = reg_listener_addr(getuid(), port, false, &sun);
	junk[0] = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	/* An abstract name of the kernel's choosing: a listener needs one. */
	CHECK(junk[0] >= 0 && bind(junk[0], (struct sockaddr *)&(sa_family_t){ AF_UNIX },
				   sizeof(sa_family_t)) == 0 && listen(junk[0], 1) == 0);
	junk[1] = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	junk[2] = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	CHECK(junk[1] >= 0 && junk[2] >= 0);
	for (int i = 0; i < 3; i++)
		carry(&sun, len, junk[i]);
	theirs = proposal_and_more(port, &channel);
	carry(&sun, len, theirs);
	CHECK(close(theirs) == 0);

	for (int i = 0; i < CLIENTS; i++) {
		uint64_t sum, reply[2];
		int fd = h_send_half(port, 4096 + (size_t)i * 1000, (uint64_t)i, &sum);

		h_read_all(fd, reply, sizeof(reply));
		CHECK(reply[0] == 4096 + (uint64_t)i * 1000 && reply[1] == sum);
		h_check_mode(fd, USMC_MODE_SMCD);
		CHECK(usmc_close(fd) == 0);
	}
	printf("%d connections in shared memory behind the junk carriers\n", CLIENTS);

	/* The channel with two messages was refused: its Decline is there. */
	p = (struct pollfd){ .fd = channel, .events = POLLIN };
	CHECK(poll(&p, 1, 10000) == 1);
	/* The holder closed it with our messages unread: the reset comes first. */
	do
		n = recv(channel, buf, sizeof(buf), MSG_DONTWAIT);
	while (n < 0 && errno == ECONNRESET);
	CHECK(n > 0 && clc_msg_parse(buf, (size_t)n, &answer) == 0);
	if (answer.type != CLC_DECLINE || answer.decline.reason != USMC_DECL_SYNCERR)
		fprintf(stderr, "answer type %u reason 0x%08x\n", answer.type, answer.decline.reason);
	CHECK(answer.type == CLC_DECLINE && answer.decline.reason == USMC_DECL_SYNCERR);
	printf("the Proposal with a message behind it: declined, out of sync\n");

	CHECK(h_wait_ok(pid));
	for (int i = 0; i < 3; i++)
		close(junk[i]);
	close(channel);
	CHECK(usmc_close(lfd) == 0);
	return 0;
}
