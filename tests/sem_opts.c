// SPDX-License-Identifier: MIT
/*
 * Socket options and queries: FIONREAD, SO_SNDBUF and SO_RCVBUF (which
 * also size the shared buffers), SO_ERROR, SO_PEEK_OFF, and what ss(8)
 * shows of the connection.
 */
#include <string.h>
#include <sys/ioctl.h>

#include "sem.h"

enum { CHECKED = 1 };

#define FIONREAD_LEN 3000
#define FIONREAD_FIRST 1000

static int unread_bytes(int fd)
{
	int n = -1;

	CHECK(usmc_ioctl(fd, FIONREAD, &n) == 0);
	CHECK(n >= 0);
	return n;
}

/* Waits, safely bounded, until at least want bytes are there to read. */
static void wait_unread(int fd, int want)
{
	int n = 0;

	CHECK(sem_wait_for(fd, POLLIN) & POLLIN);
	for (int waited = 0; waited < SEM_WAIT_MS; waited++) {
		n = unread_bytes(fd);
		if (n >= want)
			return;
		poll(NULL, 0, 1);
	}
	fprintf(stderr, "[%d] FIONREAD stays at %d, %d sent\n", (int)getpid(), n, want);
	CHECK(0);
}

static void fionread_client(struct sem_end *e)
{
	sem_send_pattern(e->fd, 121, 0, FIONREAD_LEN);
}

static void fionread_server(struct sem_end *e)
{
	CHECK(unread_bytes(e->fd) <= FIONREAD_LEN);
	wait_unread(e->fd, FIONREAD_LEN);
	CHECK(unread_bytes(e->fd) == FIONREAD_LEN);
	sem_recv_pattern(e->fd, 121, 0, FIONREAD_FIRST);
	CHECK(unread_bytes(e->fd) == FIONREAD_LEN - FIONREAD_FIRST);
	sem_recv_pattern(e->fd, 121, FIONREAD_FIRST, FIONREAD_LEN - FIONREAD_FIRST);
	CHECK(unread_bytes(e->fd) == 0);
}

/* ---- buffer sizes ---- */

#define BUF_XFER (1u << 20)

static void set_bufs(int fd, int size)
{
	CHECK(usmc_setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size)) == 0);
	CHECK(usmc_setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size)) == 0);
}

static void check_rmb(struct sem_end *e, uint32_t want)
{
	struct usmc_info info;

	if (e->self != H_USMC || e->peer != H_USMC)
		return; /* plain TCP has no shared buffers */
	CHECK(usmc_info(e->fd, &info, sizeof(info)) == 0);
	if (info.rmb_size != want || info.peer_rmb_size != want)
		fprintf(stderr, "[%d] rmb %u, peer rmb %u, expected %u\n", (int)getpid(),
			info.rmb_size, info.peer_rmb_size, want);
	CHECK(info.rmb_size == want && info.peer_rmb_size == want);
}

/* A megabyte each way, one after the other, through buffers of any size. */
static void bufs_client(struct sem_end *e, uint32_t rmb)
{
	check_rmb(e, rmb);
	sem_send_pattern(e->fd, 131, 0, BUF_XFER);
	sem_recv_pattern(e->fd, 132, 0, BUF_XFER);
	check_rmb(e, rmb);
}

static void bufs_server(struct sem_end *e, uint32_t rmb)
{
	check_rmb(e, rmb);
	sem_recv_pattern(e->fd, 131, 0, BUF_XFER);
	sem_send_pattern(e->fd, 132, 0, BUF_XFER);
	check_rmb(e, rmb);
}

/* Below the minimum: 16 KiB. */
static void prep_bufs_1k(int fd, bool server)
{
	(void)server;
	set_bufs(fd, 1000);
}

static void bufs_1k_client(struct sem_end *e)
{
	bufs_client(e, 16 << 10);
}

static void bufs_1k_server(struct sem_end *e)
{
	bufs_server(e, 16 << 10);
}

/* Rounded up to the next power of two. */
static void prep_bufs_40k(int fd, bool server)
{
	(void)server;
	set_bufs(fd, 40000);
}

static void bufs_40k_client(struct sem_end *e)
{
	bufs_client(e, 64 << 10);
}

static void bufs_40k_server(struct sem_end *e)
{
	bufs_server(e, 64 << 10);
}

/* Above the maximum: 8 MiB. */
static void prep_bufs_16m(int fd, bool server)
{
	(void)server;
	set_bufs(fd, 16 << 20);
}

static void bufs_16m_client(struct sem_end *e)
{
	bufs_client(e, 8 << 20);
}

static void bufs_16m_server(struct sem_end *e)
{
	bufs_server(e, 8 << 20);
}

/* ---- SO_ERROR ---- */

static int so_error(int fd)
{
	int err = -1;
	socklen_t len = sizeof(err);

	CHECK(usmc_getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0);
	CHECK(len == sizeof(err));
	return err;
}

static void expect_so_error(int fd, int want)
{
	int err = so_error(fd);

	if (err != want)
		fprintf(stderr, "[%d] SO_ERROR %d, expected %d\n", (int)getpid(), err, want);
	CHECK(err == want);
}

static void so_error_client(struct sem_end *e)
{
	CHECK(so_error(e->fd) == 0);
	sem_send_pattern(e->fd, 141, 0, 5000);
	sem_recv_pattern(e->fd, 142, 0, 5000);
	CHECK(so_error(e->fd) == 0);
}

static void so_error_server(struct sem_end *e)
{
	CHECK(so_error(e->fd) == 0);
	sem_recv_pattern(e->fd, 141, 0, 5000);
	sem_send_pattern(e->fd, 142, 0, 5000);
	CHECK(so_error(e->fd) == 0);
}

/* A reset is reported once, by SO_ERROR if it asks first; then it reads as ended. */
static void so_error_reset_client(struct sem_end *e)
{
	sem_expect(e, CHECKED);
	CHECK(sem_wait_for(e->fd, POLLIN) & (POLLERR | POLLHUP));
	expect_so_error(e->fd, ECONNRESET);
	expect_so_error(e->fd, 0);
	sem_expect_eof(e->fd);
}

static void so_error_reset_server(struct sem_end *e)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };

	CHECK(usmc_setsockopt(e->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)) == 0);
	CHECK(usmc_close(e->fd) == 0);
	e->fd = -1;
	sem_tell(e, CHECKED);
}

/* ---- SO_PEEK_OFF: the kernel socket's own, so only where it carries the data ---- */

#define PEEK_OFF_LEN 100
#define PEEK_STEP 10

static void peek_off_client(struct sem_end *e)
{
	sem_send_pattern(e->fd, 151, 0, PEEK_OFF_LEN);
}

static void peek_step(int fd, uint64_t off)
{
	uint8_t buf[PEEK_STEP];

	CHECK(usmc_recv(fd, buf, sizeof(buf), MSG_PEEK) == PEEK_STEP);
	sem_check_pattern(buf, sizeof(buf), 151, off);
}

static void peek_off_server(struct sem_end *e)
{
	int off = 0;

	wait_unread(e->fd, PEEK_OFF_LEN);
	CHECK(usmc_setsockopt(e->fd, SOL_SOCKET, SO_PEEK_OFF, &off, sizeof(off)) == 0);
	/* Each peek goes on where the last one stopped. */
	peek_step(e->fd, 0);
	peek_step(e->fd, PEEK_STEP);
	peek_step(e->fd, 2 * PEEK_STEP);
	/* A read starts at the front, and pulls the peek offset back with it. */
	sem_recv_pattern(e->fd, 151, 0, 2 * PEEK_STEP);
	peek_step(e->fd, 3 * PEEK_STEP);
	sem_recv_pattern(e->fd, 151, 2 * PEEK_STEP, PEEK_OFF_LEN - 2 * PEEK_STEP);
}

/* ---- ss(8) ---- */

/* True if ss lists a TCP connection on port held by process pid. */
static bool ss_lists(uint16_t port, pid_t pid)
{
	char line[1024], port_s[16], pid_s[32];
	bool found = false;
	FILE *ss;

	snprintf(port_s, sizeof(port_s), ":%u ", (unsigned)port);
	snprintf(pid_s, sizeof(pid_s), "pid=%d,", (int)pid);
	fflush(NULL);
	ss = popen("ss -tpnH state established 2>&1", "r");
	CHECK(ss);
	while (fgets(line, sizeof(line), ss))
		if (strstr(line, port_s) && strstr(line, pid_s))
			found = true;
	CHECK(pclose(ss) == 0);
	return found;
}

/* The usmc end looks itself up; in plain TCP the client stands in for it. */
static void ss_check(struct sem_end *e)
{
	bool mine = e->self == H_USMC || (e->peer == H_PLAIN && !e->server);

	if (mine && !ss_lists(e->port, getpid())) {
		fprintf(stderr, "[%d] ss does not list port %u for this process\n", (int)getpid(),
			(unsigned)e->port);
		CHECK(0);
	}
}

static void ss_client(struct sem_end *e)
{
	ss_check(e);
	sem_tell(e, CHECKED);
}

static void ss_server(struct sem_end *e)
{
	sem_expect(e, CHECKED);
	ss_check(e);
}

const struct sem_case sem_opt_cases[] = {
	{ "fionread", fionread_client, fionread_server, NULL },
	{ "bufsize_1k", bufs_1k_client, bufs_1k_server, prep_bufs_1k },
	{ "bufsize_40k", bufs_40k_client, bufs_40k_server, prep_bufs_40k },
	{ "bufsize_16m", bufs_16m_client, bufs_16m_server, prep_bufs_16m },
	{ "so_error", so_error_client, so_error_server, NULL },
	{ "so_error_reset", so_error_reset_client, so_error_reset_server, NULL },
	{ "peek_off", peek_off_client, peek_off_server, NULL },
	{ "ss", ss_client, ss_server, NULL },
	{ NULL, NULL, NULL, NULL },
};
