// SPDX-License-Identifier: MIT
/*
 * A shared-memory connection whose last holder closes it, or exits without
 * closing it (exit(), no close: an inetd-style service, cat given a
 * socket as its stdin and stdout; _exit(), a kill).  The kernel's close
 * follows usmc's close or exit handler, if any, and the peer must read
 * what TCP would give it:
 *
 * - bell before close: the peer's doorbell is in the server's socket when
 *   the server calls close(): the close reads it, and the kernel's close
 *   is a FIN, with no reset after it (the client looks for one for
 *   200 ms: a reset would read as the end, as the cases below show, but
 *   `ss`, a capture and the peer's kernel would see it).
 * - bell before exit: the peer's doorbell is in the server's socket when
 *   the server calls exit(): the library's exit handler reads it, and the
 *   kernel's close is a FIN, with no reset after it (the client looks for
 *   one for 200 ms).
 * - bell after the drain: the peer counted a doorbell for a wait the server
 *   had just left, and its byte reaches the server's socket after the
 *   server's exit handler drained, before the kernel's close (as it may
 *   before any _exit or kill).  That close finds a byte unread and resets
 *   the TCP connection; the peer must still read end of file after the
 *   data, as from TCP, since the server had read everything.  The server
 *   runs its exit handler, waits until the byte is in its socket
 *   (FIONREAD), then _exit()s: the order is exact.
 * - bell after close: the byte reaches the socket after the kernel's
 *   close (the client writes it once the server has exited and it has
 *   read the FIN), which answers it with a reset after its FIN: end of
 *   file too.
 * - unread: the server exits with the peer's last bytes unread: the peer
 *   reads ECONNRESET, as TCP resets a connection closed with data unread.
 * - orderly: the server writes and exits: the peer reads the data, then
 *   end of file.
 *
 * In the four doorbell cases the client reads the data only once the
 * connection has ended, and first asks what TCP would show after the
 * peer's FIN: usmc_poll readable with POLLRDHUP, neither POLLHUP nor
 * POLLERR (a reset a doorbell caused is no hang-up: stunnel, say, drops
 * what it has not read on POLLHUP), and SO_ERROR 0.  Where the byte meets
 * a closed socket, the client first waits for the reset the kernel
 * answers it with (POLLERR on the TCP socket), so that the look can only
 * find the ending.
 *
 * The server is a program linked with usmc (no preload): its exit() is
 * seen by the library's own exit handler.  Every transfer is checked by
 * length and checksum.
 */
#include <errno.h>
#include <poll.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "usmc_conn.h"
#include "usmc_fdtab.h"
#include "usmc_sock.h"

enum kind {
	K_BELL_BEFORE_CLOSE,
	K_BELL_BEFORE_EXIT,
	K_BELL_AFTER_DRAIN,
	K_BELL_AFTER_CLOSE,
	K_UNREAD,
	K_ORDERLY,
	K_KINDS
};
static const char *const kind_name[K_KINDS] = { "bell before close", "bell before exit",
						 "bell after the drain", "bell after close",
						 "unread", "orderly" };
#define DATA 4096
#define UNREAD 100

static struct h_chan port_chan, to_server, to_client;

/* What exit() does before the kernel's close: the library's exit handler. */
void usmc_exit_drain(void);

/* Until the client's doorbell is in our socket. */
static void wait_queued(int fd)
{
	int queued = 0;

	for (int i = 0; i < 10000 && ioctl(fd, FIONREAD, &queued) == 0 && queued == 0; i++)
		usleep(1000);
	CHECK(queued == 1);
}

static int server(void *arg)
{
	enum kind kind = (enum kind)(intptr_t)arg;
	uint8_t buf[DATA];
	uint16_t port;
	int lfd = h_listen(AF_INET, H_USMC, &port), fd;

	h_chan_send(&port_chan, port);
	fd = usmc_accept(lfd, NULL, NULL);
	CHECK(fd >= 0);
	h_pattern(buf, sizeof(buf), kind, 0);
	h_write_all(fd, buf, sizeof(buf));
	/* The client's doorbell is counted, or what we leave unread is written. */
	CHECK(h_chan_recv(&to_server) == 1);
	h_check_mode(fd, USMC_MODE_SMCD);
	if (kind == K_BELL_AFTER_DRAIN)
		usmc_exit_drain();
	if (kind <= K_BELL_AFTER_DRAIN) {
		h_chan_send(&to_client, 1);
		wait_queued(fd);
	}
	if (kind == K_BELL_AFTER_DRAIN)
		_exit(0);
	if (kind == K_BELL_BEFORE_CLOSE)
		CHECK(usmc_close(fd) == 0);
	exit(0);
}

static void read_data(int fd, enum kind kind)
{
	uint8_t got[DATA], want[DATA];

	h_read_all(fd, got, sizeof(got));
	h_pattern(want, sizeof(want), kind, 0);
	CHECK(h_fnv(H_FNV_INIT, got, sizeof(got)) == h_fnv(H_FNV_INIT, want, sizeof(want)));
}

/* usmc_poll's answer for all it can say (it settles the handshake too). */
static short conn_revents(int fd, short events)
{
	struct pollfd p = { .fd = fd, .events = events };

	CHECK(usmc_poll(&p, 1, 10000) == 1);
	return p.revents;
}

/* The reset the kernel answers a byte to a closed socket with. */
static void wait_reset(int fd)
{
	struct pollfd p = { .fd = fd };

	for (int i = 0; i < 1000 && !(p.revents & POLLERR); i++) {
		CHECK(poll(&p, 1, 10) >= 0);
	}
	CHECK(p.revents & POLLERR);
}

/* The kernel's close was a FIN, and no reset follows it. */
static void no_reset(int fd)
{
	struct pollfd p = { .fd = fd };

	CHECK(poll(&p, 1, 200) >= 0);
	CHECK(!(p.revents & POLLERR));
}

/* The kernel's own write: the byte a doorbell is. */
static void ring_raw(int fd)
{
	static const char bell = 1;

	CHECK(write(fd, &bell, 1) == 1);
}

static void run(enum kind kind)
{
	struct usmc_sock *s;
	pid_t srv;
	char c;
	int fd, status;
	ssize_t n;

	h_chan_open(&port_chan);
	h_chan_open(&to_server);
	h_chan_open(&to_client);
	srv = h_fork(server, (void *)(intptr_t)kind);
	fd = h_connect(AF_INET, H_USMC, (uint16_t)h_chan_recv(&port_chan));
	if (kind <= K_BELL_AFTER_CLOSE) {
		/* The data stays unread until the connection has ended. */
		CHECK(conn_revents(fd, POLLIN) & POLLIN);
	} else {
		read_data(fd, kind);
	}
	h_check_mode(fd, USMC_MODE_SMCD);
	if (kind == K_UNREAD) {
		uint8_t buf[UNREAD];

		h_pattern(buf, sizeof(buf), kind, 1);
		h_write_all(fd, buf, sizeof(buf));
	}
	s = usmc_sock_get(fd);
	CHECK(s && s->conn && s->conn->rx_mapped);
	/* A doorbell counted before the server's close or exit, its byte written late. */
	if (kind <= K_BELL_AFTER_CLOSE)
		atomic_fetch_add(&s->conn->tx.cdc->bells, 1);
	h_chan_send(&to_server, 1);
	if (kind <= K_BELL_AFTER_DRAIN) {
		CHECK(h_chan_recv(&to_client) == 1);
		ring_raw(fd);
	}
	CHECK(waitpid(srv, &status, 0) == srv && WIFEXITED(status) && WEXITSTATUS(status) == 0);
	if (kind <= K_BELL_BEFORE_EXIT)
		no_reset(fd);
	if (kind == K_BELL_AFTER_CLOSE) {
		/* The FIN read first (usmc_poll drains it), then the reset. */
		CHECK(conn_revents(fd, POLLIN) & POLLIN);
		ring_raw(fd);
	}
	if (kind == K_BELL_AFTER_DRAIN || kind == K_BELL_AFTER_CLOSE)
		wait_reset(fd);
	if (kind <= K_BELL_AFTER_CLOSE) {
		/* What TCP shows after the peer's FIN: readable, no hang-up, no error. */
		short rev = conn_revents(fd, POLLIN | POLLOUT | POLLRDHUP);
		int err = -1;
		socklen_t len = sizeof(err);

		if ((rev & (POLLHUP | POLLERR)) || !(rev & POLLRDHUP))
			fprintf(stderr, "%s: revents %#x after the end\n", kind_name[kind], rev);
		CHECK(!(rev & (POLLHUP | POLLERR)) && (rev & POLLIN) && (rev & POLLRDHUP));
		CHECK(usmc_getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0);
		read_data(fd, kind);
	}
	n = usmc_read(fd, &c, 1);
	if (kind == K_UNREAD) {
		CHECK(n < 0 && errno == ECONNRESET);
	} else {
		if (n != 0)
			fprintf(stderr, "%s: read %zd (%s), not end of file\n", kind_name[kind], n,
				n < 0 ? strerror(errno) : "data");
		CHECK(n == 0);
	}
	CHECK(usmc_close(fd) == 0);
	close(port_chan.rd);
	close(port_chan.wr);
	close(to_server.rd);
	close(to_server.wr);
	close(to_client.rd);
	close(to_client.wr);
	printf("%s: ok\n", kind_name[kind]);
}

int main(void)
{
	h_registry_own("exit-bell");
	for (int k = 0; k < K_KINDS; k++)
		run((enum kind)k);
	return 0;
}
