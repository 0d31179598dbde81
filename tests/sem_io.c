// SPDX-License-Identifier: MIT
/*
 * Data calls: non-blocking reads and writes, short reads, scatter and
 * gather, sendmsg and recvmsg, MSG_PEEK, MSG_WAITALL, MSG_DONTWAIT.
 */
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#include "sem.h"
#include "usmc_stats.h"

enum { GO = 1, DRAINED };

/* Beyond this a writer toward a peer that does not read has lost its bound. */
#define FILL_LIMIT (64u << 20)

/* Bytes written after the fill, to show the connection still works. */
#define AFTER_FILL 1000

/*
 * Writes the stream until the kernel (or the ring) is full and says
 * EAGAIN, without waiting.  Returns how many bytes went in.
 */
static size_t fill_until_eagain(int fd, int flags)
{
	static uint8_t buf[65536];
	size_t total = 0;

	for (;;) {
		ssize_t n;

		h_pattern(buf, sizeof(buf), 11, total);
		n = usmc_send(fd, buf, sizeof(buf), flags);
		if (n < 0) {
			CHECK(errno == EAGAIN || errno == EWOULDBLOCK);
			return total;
		}
		CHECK(n > 0 && (size_t)n <= sizeof(buf));
		total += (size_t)n;
		CHECK(total < FILL_LIMIT);
	}
}

static void expect_eagain_read(int fd, int flags)
{
	char buf[16];
	ssize_t n = usmc_recv(fd, buf, sizeof(buf), flags);

	if (n >= 0)
		fprintf(stderr, "[%d] read on an empty socket gave %zd\n", (int)getpid(), n);
	CHECK(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
}

/* The writer fills, the reader drains it all, then both go on. */
static void fill_client(struct sem_end *e, int flags)
{
	size_t total;

	sem_expect(e, GO);
	total = fill_until_eagain(e->fd, flags);
	CHECK(total > 0);
	sem_tell(e, total);
	sem_expect(e, DRAINED);
	/* The peer emptied its side: there is room again. */
	CHECK(sem_wait_for(e->fd, POLLOUT) & POLLOUT);
	sem_send_pattern(e->fd, 11, total, AFTER_FILL);
	CHECK(usmc_shutdown(e->fd, SHUT_WR) == 0);
}

static void fill_server(struct sem_end *e, int flags)
{
	uint64_t total;

	expect_eagain_read(e->fd, flags);
	sem_tell(e, GO);
	total = sem_hear(e);
	sem_recv_pattern(e->fd, 11, 0, total);
	sem_tell(e, DRAINED);
	sem_recv_pattern(e->fd, 11, total, AFTER_FILL);
	sem_expect_eof(e->fd);
}

static void nonblock_client(struct sem_end *e)
{
	sem_set_nonblock(e->fd, true);
	fill_client(e, 0);
}

static void nonblock_server(struct sem_end *e)
{
	sem_set_nonblock(e->fd, true);
	fill_server(e, 0);
}

/* The sockets stay blocking; the flag alone must keep each call from waiting. */
static void dontwait_client(struct sem_end *e)
{
	fill_client(e, MSG_DONTWAIT);
}

static void dontwait_server(struct sem_end *e)
{
	fill_server(e, MSG_DONTWAIT);
}

#define SMALL_READS 1000
#define SMALL_BUF 7

static void partial_read_client(struct sem_end *e)
{
	sem_send_pattern(e->fd, 21, 0, SMALL_READS);
}

static void partial_read_server(struct sem_end *e)
{
	uint8_t all[SMALL_READS];
	size_t got = 0;

	while (got < SMALL_READS) {
		ssize_t n = usmc_read(e->fd, all + got, SMALL_BUF);

		CHECK(n > 0 && n <= SMALL_BUF);
		got += (size_t)n;
	}
	sem_check_pattern(all, sizeof(all), 21, 0);
}

/* Advances an iovec array past n bytes that went through. */
static void iov_advance(struct iovec **iov, int *cnt, size_t n)
{
	while (*cnt && n >= (*iov)->iov_len) {
		n -= (*iov)->iov_len;
		(*iov)++;
		(*cnt)--;
	}
	if (*cnt) {
		(*iov)->iov_base = (uint8_t *)(*iov)->iov_base + n;
		(*iov)->iov_len -= n;
	}
}

/* Odd sizes, so that pieces straddle each other's boundaries. */
static const size_t wsizes[] = { 1, 100, 7000, 65536, 3, 30000 };
static const size_t rsizes[] = { 13, 1000, 50000 };
#define NW (sizeof(wsizes) / sizeof(wsizes[0]))
#define NR (sizeof(rsizes) / sizeof(rsizes[0]))
#define RSIZES_TOTAL (13 + 1000 + 50000)

static size_t wsizes_total(void)
{
	size_t t = 0;

	for (size_t i = 0; i < NW; i++)
		t += wsizes[i];
	return t;
}

/* Lays iov over buf in the given pieces. */
static void iov_carve(struct iovec *iov, uint8_t *buf, const size_t *sizes, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		iov[i].iov_base = buf;
		iov[i].iov_len = sizes[i];
		buf += sizes[i];
	}
}

static void writev_client(struct sem_end *e)
{
	size_t total = wsizes_total();
	uint8_t *buf = malloc(total);
	struct iovec iov_all[NW], *iov = iov_all;
	int cnt = NW;

	CHECK(buf);
	h_pattern(buf, total, 31, 0);
	iov_carve(iov_all, buf, wsizes, NW);
	while (cnt) {
		ssize_t n = usmc_writev(e->fd, iov, cnt);

		CHECK(n > 0);
		iov_advance(&iov, &cnt, (size_t)n);
	}
	free(buf);
}

static void readv_server(struct sem_end *e)
{
	size_t total = wsizes_total(), got = 0;
	uint8_t *all = malloc(total);
	uint8_t *scratch = malloc(RSIZES_TOTAL);
	struct iovec iov[NR];

	CHECK(all && scratch);
	iov_carve(iov, scratch, rsizes, NR);
	while (got < total) {
		ssize_t n = usmc_readv(e->fd, iov, NR);

		CHECK(n > 0 && got + (size_t)n <= total);
		/* The bytes fill the pieces in order: scratch holds them contiguously. */
		memcpy(all + got, scratch, (size_t)n);
		got += (size_t)n;
	}
	sem_check_pattern(all, total, 31, 0);
	free(scratch);
	free(all);
}

static void sendmsg_client(struct sem_end *e)
{
	size_t total = wsizes_total(), sent = 0;
	uint8_t *buf = malloc(total);
	struct iovec iov_all[NW], *iov = iov_all;
	int cnt = NW;

	CHECK(buf);
	h_pattern(buf, total, 41, 0);
	iov_carve(iov_all, buf, wsizes, NW);
	while (cnt) {
		struct msghdr mh = { .msg_iov = iov, .msg_iovlen = (size_t)cnt };
		ssize_t n = usmc_sendmsg(e->fd, &mh, MSG_NOSIGNAL);

		CHECK(n > 0);
		sent += (size_t)n;
		iov_advance(&iov, &cnt, (size_t)n);
	}
	CHECK(sent == total);
	free(buf);
}

static void recvmsg_server(struct sem_end *e)
{
	size_t total = wsizes_total(), got = 0;
	uint8_t *all = malloc(total), *scratch = malloc(RSIZES_TOTAL);
	struct sockaddr_storage name;
	struct iovec iov[NR];

	CHECK(all && scratch);
	iov_carve(iov, scratch, rsizes, NR);
	while (got < total) {
		struct msghdr mh = { .msg_name = &name, .msg_namelen = sizeof(name),
				     .msg_iov = iov, .msg_iovlen = NR };
		ssize_t n = usmc_recvmsg(e->fd, &mh, 0);

		CHECK(n > 0 && got + (size_t)n <= total);
		/* A stream socket names no sender and truncates nothing. */
		CHECK(mh.msg_namelen == 0);
		CHECK(mh.msg_flags == 0);
		memcpy(all + got, scratch, (size_t)n);
		got += (size_t)n;
	}
	sem_check_pattern(all, total, 41, 0);
	free(scratch);
	free(all);
}

#define PEEK_LEN 100

static void peek_client(struct sem_end *e)
{
	sem_send_pattern(e->fd, 51, 0, PEEK_LEN);
}

/*
 * The user's bytes_received counter (usmc-stat -s), or 0 if there is none.
 * Only meaningful where the test has a registry directory of its own
 * (USMC_REGISTRY_DIR), which no other process counts in.
 */
static uint64_t counted_received(void)
{
	struct usmc_stats_file *f;
	char path[256];
	uint64_t n;
	int fd;

	usmc_stats_path(path, sizeof(path), (unsigned)getuid());
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	f = mmap(NULL, sizeof(*f), PROT_READ, MAP_SHARED, fd, 0);
	close(fd);
	CHECK(f != MAP_FAILED);
	n = usmc_stats_total(f, USMC_STAT_BYTES_RECEIVED);
	munmap(f, sizeof(*f));
	return n;
}

static void peek_server(struct sem_end *e)
{
	uint8_t buf[PEEK_LEN];
	struct usmc_info before, after;
	ssize_t first, second;

	CHECK(sem_wait_for(e->fd, POLLIN) & POLLIN);
	bool own_counters = getenv("USMC_REGISTRY_DIR") != NULL;
	uint64_t counted = counted_received();

	CHECK(usmc_info(e->fd, &before, sizeof(before)) == 0);
	first = usmc_recv(e->fd, buf, PEEK_LEN / 2, MSG_PEEK);
	CHECK(first > 0 && first <= PEEK_LEN / 2);
	sem_check_pattern(buf, (size_t)first, 51, 0);
	/* Peeking again sees the same bytes from the start, and no fewer. */
	memset(buf, 0, sizeof(buf));
	second = usmc_recv(e->fd, buf, PEEK_LEN, MSG_PEEK);
	CHECK(second >= first && second <= PEEK_LEN);
	sem_check_pattern(buf, (size_t)second, 51, 0);
	/* Peeked bytes are not received yet: the counters say so. */
	CHECK(usmc_info(e->fd, &after, sizeof(after)) == 0);
	CHECK(after.bytes_received == before.bytes_received);
	CHECK(!own_counters || counted_received() == counted);
	/* What was peeked is still there for the read, and counted once read. */
	sem_recv_pattern(e->fd, 51, 0, PEEK_LEN);
	CHECK(usmc_info(e->fd, &after, sizeof(after)) == 0);
	CHECK(after.bytes_received ==
	      before.bytes_received + (after.mode == USMC_MODE_SMCD ? PEEK_LEN : 0));
	CHECK(!own_counters ||
	      counted_received() == counted + (after.mode == USMC_MODE_SMCD ? PEEK_LEN : 0));
}

#define WAITALL_PIECES 4
#define WAITALL_PIECE 1000

/*
 * The reader is (very likely) asleep in recv() by the time each piece
 * comes; the pause only makes that likely, the result must not depend on it.
 */
static void waitall_client(struct sem_end *e)
{
	sem_expect(e, GO);
	for (int i = 0; i < WAITALL_PIECES; i++) {
		poll(NULL, 0, 20);
		sem_send_pattern(e->fd, 61, (uint64_t)i * WAITALL_PIECE, WAITALL_PIECE);
	}
}

static void waitall_server(struct sem_end *e)
{
	uint8_t buf[WAITALL_PIECES * WAITALL_PIECE];
	ssize_t n;

	sem_tell(e, GO);
	n = usmc_recv(e->fd, buf, sizeof(buf), MSG_WAITALL);
	if (n != (ssize_t)sizeof(buf))
		fprintf(stderr, "[%d] MSG_WAITALL gave %zd of %zu\n", (int)getpid(), n, sizeof(buf));
	CHECK(n == (ssize_t)sizeof(buf));
	sem_check_pattern(buf, sizeof(buf), 61, 0);
}

/* MSG_WAITALL ends early at end of file, with what came. */
static void waitall_eof_client(struct sem_end *e)
{
	sem_expect(e, GO);
	sem_send_pattern(e->fd, 71, 0, WAITALL_PIECE);
	CHECK(usmc_shutdown(e->fd, SHUT_WR) == 0);
}

static void waitall_eof_server(struct sem_end *e)
{
	uint8_t buf[WAITALL_PIECES * WAITALL_PIECE];
	ssize_t n;

	sem_tell(e, GO);
	n = usmc_recv(e->fd, buf, sizeof(buf), MSG_WAITALL);
	CHECK(n == WAITALL_PIECE);
	sem_check_pattern(buf, WAITALL_PIECE, 71, 0);
	sem_expect_eof(e->fd);
}

const struct sem_case sem_io_cases[] = {
	{ "nonblock", nonblock_client, nonblock_server, NULL },
	{ "dontwait", dontwait_client, dontwait_server, NULL },
	{ "partial_read", partial_read_client, partial_read_server, NULL },
	{ "readv_writev", writev_client, readv_server, NULL },
	{ "sendmsg_recvmsg", sendmsg_client, recvmsg_server, NULL },
	{ "peek", peek_client, peek_server, NULL },
	{ "waitall", waitall_client, waitall_server, NULL },
	{ "waitall_eof", waitall_eof_client, waitall_eof_server, NULL },
	{ NULL, NULL, NULL, NULL },
};
