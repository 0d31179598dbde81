// SPDX-License-Identifier: MIT
/*
 * kill -9 of a peer, in the middle of a transfer or of the handshake.
 * The survivor sees EOF or ECONNRESET (never a hang: every wait here has
 * a safety bound that fails the test), the bytes it did get are a prefix
 * of what was sent, and afterwards it holds no descriptor, mapping or
 * registry entry more than before the connection.
 *
 *   kill_peer --kill client|server|server-before-accept|client-before-accept|client-channel|
 *                    client-before-decline|client-after-fin-wait2 [--rounds N]
 *
 * client-before-accept: the client writes, and is killed before the server
 * accepts, its Proposal unanswered.  TCP would hand over what it wrote and
 * then the end; so must its ring, which the server maps with the Proposal,
 * once the client's channel has ended: every byte, then the end.
 *
 * client-after-fin-wait2: the same, and the server accepts only once the
 * client's socket is gone from the kernel, its FIN_WAIT2 over (TCP_LINGER2
 * of a second): no socket is left to prove the Proposal by, and TCP still
 * holds what the client wrote for the server's accept.
 *
 * client-before-decline: the same, and the server declines the Proposal
 * (it took to io_uring): nobody is left to replay what the client wrote,
 * and the server's read reports ECONNRESET, never a quiet end of file.
 *
 * client-channel: no kill; the client gives its link group up with its
 * Proposal unanswered (as it does when the server stops reading its
 * channel), so the channel ends while the client lives, and it goes on
 * over TCP, replaying what it wrote.  The server must not take the ring
 * of that Proposal as a killed client's: every byte once, then the end.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "af_usmc.h"
#include "usmc_core.h"
#include "usmc_sock.h"

static const char *victim = "client";
static struct h_chan to_parent, to_child;

/* Writes the pattern until the connection breaks. */
static int writer(int fd)
{
	uint8_t buf[65536];
	uint64_t off = 0;

	for (;;) {
		ssize_t n;

		h_pattern(buf, sizeof(buf), 5, off);
		n = usmc_send(fd, buf, sizeof(buf), MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno;
		off += (uint64_t)n;
	}
}

/* Reads until EOF or reset, checking every byte against the pattern. */
static int reader(int fd, bool report, uint64_t off)
{
	uint8_t buf[65536], want[65536];
	bool told = false;

	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t n;

		CHECK(usmc_poll(&p, 1, 10000) == 1);
		n = usmc_read(fd, buf, sizeof(buf));
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n < 0)
			return errno;
		if (n == 0)
			return 0;
		h_pattern(want, (size_t)n, 5, off);
		CHECK(memcmp(buf, want, (size_t)n) == 0);
		off += (uint64_t)n;
		if (report && !told && off >= (1 << 20)) {
			h_chan_send(&to_parent, off);
			told = true;
		}
	}
}

static int child_client(void *arg)
{
	uint16_t port = (uint16_t)(uintptr_t)arg;
	int fd = h_connect(AF_INET, H_USMC, port);

	if (!strcmp(victim, "client"))
		return writer(fd);
	return reader(fd, true, 0);
}

static int child_server(void *arg)
{
	uint16_t port;
	int lfd = h_listen(AF_INET, H_USMC, &port), fd;

	(void)arg;
	h_chan_send(&to_parent, port);
	if (!strcmp(victim, "server-before-accept")) {
		pause();
		return 0;
	}
	fd = usmc_accept(lfd, NULL, NULL);
	CHECK(fd >= 0);
	return reader(fd, true, 0);
}

#define EARLY_LEN 3000

/* Writes, says so (with its port), and waits for its answer until it is killed. */
static int child_client_early(void *arg)
{
	uint8_t buf[EARLY_LEN];
	int fd = h_connect(AF_INET, H_USMC, (uint16_t)(uintptr_t)arg);
	struct sockaddr_in a;
	socklen_t alen = sizeof(a);

	CHECK(getsockname(fd, (struct sockaddr *)&a, &alen) == 0);
	if (!strcmp(victim, "client-after-fin-wait2"))
		CHECK(setsockopt(fd, IPPROTO_TCP, TCP_LINGER2, &(int){ 1 }, sizeof(int)) == 0);
	h_pattern(buf, sizeof(buf), 5, 0);
	h_write_all(fd, buf, sizeof(buf));
	h_chan_send(&to_parent, ntohs(a.sin_port));
	pause();
	return 0;
}

/* Writes, gives its link groups up, and goes on over TCP: its bytes replayed, then its end. */
static int child_client_gives_up(void *arg)
{
	uint8_t buf[EARLY_LEN];
	int fd = h_connect(AF_INET, H_USMC, (uint16_t)(uintptr_t)arg);

	h_pattern(buf, sizeof(buf), 5, 0);
	h_write_all(fd, buf, sizeof(buf));
	usmc_lock();
	for (struct usmc_lgr *lgr = lgr_first(), *next; lgr; lgr = next) {
		next = lgr->next;
		af_lgr_fail(lgr);
	}
	usmc_unlock();
	h_chan_send(&to_parent, 1);
	h_chan_recv(&to_child);
	CHECK(usmc_shutdown(fd, SHUT_WR) == 0);
	h_check_mode(fd, USMC_MODE_FALLBACK);
	CHECK(usmc_read(fd, buf, 1) == 0);
	return 0;
}

static void kill_and_reap(pid_t pid)
{
	CHECK(kill(pid, SIGKILL) == 0);
	CHECK(!h_wait_ok(pid));
}

/* The survivor's check after the peer died: bounded, then nothing left. */
static void survive(int fd, bool survivor_writes, uint64_t read_so_far)
{
	int rc = survivor_writes ? writer(fd) : reader(fd, false, read_so_far);

	if (survivor_writes)
		CHECK(rc == EPIPE || rc == ECONNRESET);
	else
		CHECK(rc == 0 || rc == ECONNRESET);
	CHECK(usmc_close(fd) == 0);
	/* The link group went with it: its segments and the peer's are unmapped. */
	CHECK(h_count_lines("/proc/self/maps", "memfd:usmc-seg") == 0);
}

static void round_client_dies(void)
{
	uint16_t port;
	int lfd = h_listen(AF_INET, H_USMC, &port), fd;
	pid_t pid = h_fork(child_client, (void *)(uintptr_t)port);
	uint64_t off = 0;

	fd = usmc_accept(lfd, NULL, NULL);
	CHECK(fd >= 0);
	/* Read a while, then kill the writer in the middle of its stream. */
	while (off < (1 << 20)) {
		uint8_t buf[65536], want[65536];
		ssize_t n = usmc_read(fd, buf, sizeof(buf));

		CHECK(n > 0);
		h_pattern(want, (size_t)n, 5, off);
		CHECK(memcmp(buf, want, (size_t)n) == 0);
		off += (uint64_t)n;
	}
	kill_and_reap(pid);
	survive(fd, false, off);
	CHECK(usmc_close(lfd) == 0);
}

static void round_server_dies(bool before_accept)
{
	pid_t pid = h_fork(child_server, NULL);
	uint16_t port = (uint16_t)h_chan_recv(&to_parent);
	int fd = h_connect(AF_INET, H_USMC, port);
	char name[64];

	if (!before_accept) {
		uint8_t buf[65536];

		/* The server reads a megabyte, says so, and is killed. */
		for (uint64_t off = 0; off < (2 << 20); off += sizeof(buf)) {
			h_pattern(buf, sizeof(buf), 5, off);
			if (usmc_send(fd, buf, sizeof(buf), MSG_NOSIGNAL) < 0)
				break;
			struct pollfd p = { .fd = to_parent.rd, .events = POLLIN };

			if (poll(&p, 1, 0) == 1)
				break;
		}
		h_chan_recv(&to_parent);
	}
	kill_and_reap(pid);
	survive(fd, true, 0);
	/* The listener's registry entry went with its process. */
	snprintf(name, sizeof(name), "@usmc/%u/%u", (unsigned)getuid(), port);
	CHECK(h_count_lines("/proc/net/unix", name) == 0);
}

static void round_client_dies_before_accept(bool gives_up, bool declines, bool late)
{
	uint8_t want[EARLY_LEN];
	uint64_t sum = H_FNV_INIT;
	uint16_t port;
	int lfd = h_listen(AF_INET, H_USMC, &port), fd;
	pid_t pid = h_fork(gives_up ? child_client_gives_up : child_client_early,
			   (void *)(uintptr_t)port);
	unsigned lport = (unsigned)h_chan_recv(&to_parent);

	if (!gives_up)
		kill_and_reap(pid);
	/* Its FIN_WAIT2 over: the kernel has no socket of the client's left. */
	for (int i = 0; late && i < 500 && h_tcp_listed(lport, port); i++)
		usleep(10000);
	CHECK(!late || !h_tcp_listed(lport, port));
	if (declines)
		usmc_plain_from_now(USMC_DECL_ENV);
	fd = usmc_accept(lfd, NULL, NULL);
	usmc_plain_from_now(0);
	if (declines) {
		uint8_t c;

		CHECK(fd >= 0);
		CHECK(usmc_read(fd, &c, 1) == -1 && errno == ECONNRESET);
		CHECK(usmc_close(fd) == 0 && usmc_close(lfd) == 0);
		return;
	}
	if (gives_up) {
		h_chan_send(&to_child, 1);
		h_check_mode(fd, USMC_MODE_FALLBACK);
	}
	CHECK(fd >= 0);
	h_pattern(want, sizeof(want), 5, 0);
	CHECK(h_read_to_eof(fd, &sum, 4096, NULL) == EARLY_LEN);
	CHECK(sum == h_fnv(H_FNV_INIT, want, sizeof(want)));
	CHECK(usmc_close(fd) == 0);
	CHECK(usmc_close(lfd) == 0);
	CHECK(!gives_up || h_wait_ok(pid));
	CHECK(h_count_lines("/proc/self/maps", "memfd:usmc-seg") == 0);
}

int main(int argc, char **argv)
{
	int rounds = 10, fds_before = 0, maps_before = 0;

	for (int i = 1; i + 1 < argc; i++) {
		if (!strcmp(argv[i], "--kill"))
			victim = argv[i + 1];
		if (!strcmp(argv[i], "--rounds"))
			rounds = atoi(argv[i + 1]);
	}
	h_chan_open(&to_parent);
	h_chan_open(&to_child);
	signal(SIGPIPE, SIG_IGN);
	CHECK(rounds >= 2);
	/* The first round makes the per-process tables; count after it. */
	for (int r = 0; r < rounds; r++) {
		if (r == 1) {
			fds_before = h_count_fds();
			maps_before = h_count_lines("/proc/self/maps", "memfd:usmc-seg");
		}
		if (!strcmp(victim, "client"))
			round_client_dies();
		else if (!strncmp(victim, "client-", 7))
			round_client_dies_before_accept(!strcmp(victim, "client-channel"),
							!strcmp(victim, "client-before-decline"),
							!strcmp(victim, "client-after-fin-wait2"));
		else
			round_server_dies(!strcmp(victim, "server-before-accept"));
	}
	CHECK(h_count_fds() == fds_before);
	CHECK(h_count_lines("/proc/self/maps", "memfd:usmc-seg") == maps_before);
	printf("kill -9 of the %s, %d rounds: survivor saw the end, nothing leaked\n", victim, rounds);
	return 0;
}
