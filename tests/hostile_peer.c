// SPDX-License-Identifier: MIT
/*
 * A hostile peer.  A usmc process completes a real handshake with the
 * victim (this test's main process), then writes its own CDC area, which
 * the victim reads, from outside the library's paths: cursors out of the
 * ring, running backwards, jumping wraps, claiming more than a ring, a
 * consumer ahead of the victim's producer, the abort flag flickering,
 * garbage in the wait counters, or plain silence.
 *
 * The victim holds three connections to the hostile process, all in one
 * link group, and one to a well-behaved process.  Only the attacked
 * connection may suffer (ECONNRESET, or for silence a wait that the
 * victim's own timeout ends); the other three must keep carrying data
 * byte-exact in both directions.  Every wait is bounded and fails the
 * test when the bound passes.
 *
 *   hostile_peer --case NAME
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "usmc_conn.h"
#include "usmc_fdtab.h"
#include "usmc_sock.h"
#include "usmc_sys.h"

enum role { ROLE_ATTACKED, ROLE_HEALTHY1, ROLE_HEALTHY2, ROLE_OTHER, NROLES };

#define HOSTILE_CONNS 3
#define HEALTHY_BYTES (1u << 20)
#define BOUND_MS 10000
#define CHUNK 65536

/* What the processes tell each other over pipes, outside the connections. */
enum step {
	STEP_GO = 1,
	STEP_SENT,
	STEP_READ,
	STEP_SEEN,
	STEP_ATTACKED,
	STEP_RESET_SEEN,
	STEP_WROTE_MORE,
};

static struct h_chan to_hostile, from_hostile, to_other;

struct hostile_case {
	const char *name;
	void (*hostile)(int fd); /* runs in the hostile process on its attacked end */
	void (*victim)(int fd);  /* runs in the victim on the attacked connection */
};

/* ---- small tools ---- */

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void say(struct h_chan *c, enum step step)
{
	h_chan_send(c, step);
}

/* Waits for one step; a peer that died or hangs fails the test. */
static void expect(struct h_chan *c, enum step step)
{
	struct pollfd p = { .fd = c->rd, .events = POLLIN };

	CHECK(poll(&p, 1, BOUND_MS) == 1);
	CHECK(h_chan_recv(c) == step);
}

static bool heard(struct h_chan *c)
{
	struct pollfd p = { .fd = c->rd, .events = POLLIN };

	return poll(&p, 1, 0) == 1;
}

static void wait_ready(int fd, short events)
{
	struct pollfd p = { .fd = fd, .events = events };

	CHECK(usmc_poll(&p, 1, BOUND_MS) == 1);
}

/* Called between chunks of a transfer, to disturb it. */
static void (*between_chunks)(int fd);

static void send_pattern(int fd, uint64_t seed, uint64_t off, size_t len)
{
	uint8_t buf[CHUNK];

	for (size_t done = 0; done < len;) {
		size_t n = len - done < sizeof(buf) ? len - done : sizeof(buf);

		h_pattern(buf, n, seed, off + done);
		h_write_all(fd, buf, n);
		done += n;
		if (between_chunks)
			between_chunks(fd);
	}
}

/* Reads exactly len bytes in random pieces; length and checksum must match. */
static void recv_pattern(int fd, uint64_t seed, uint64_t off, size_t len)
{
	uint8_t buf[CHUNK], want[CHUNK];
	uint64_t sum = H_FNV_INIT, expected = H_FNV_INIT, rng = seed * 7 + 1;
	size_t got = 0;

	while (got < len) {
		size_t ask = 1 + h_rand(&rng) % sizeof(buf);
		ssize_t n = usmc_read(fd, buf, ask < len - got ? ask : len - got);

		if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
			wait_ready(fd, POLLIN);
			continue;
		}
		CHECK(n > 0);
		h_pattern(want, (size_t)n, seed, off + got);
		sum = h_fnv(sum, buf, (size_t)n);
		expected = h_fnv(expected, want, (size_t)n);
		got += (size_t)n;
		if (between_chunks)
			between_chunks(fd);
	}
	CHECK(got == len);
	CHECK(sum == expected);
}

/* The end of an orderly close: EOF and not one byte more. */
static void expect_eof(int fd)
{
	char c;
	ssize_t n;

	do {
		wait_ready(fd, POLLIN);
		n = usmc_read(fd, &c, 1);
	} while (n < 0 && (errno == EAGAIN || errno == EINTR));
	CHECK(n == 0);
}

/* ---- the hostile process's view of its own end ---- */

static struct usmc_conn *own_conn(int fd)
{
	struct usmc_sock *s = usmc_sock_get(fd);

	CHECK(s && s->state == SOCK_SMC && s->conn && s->conn->rx_mapped);
	return s->conn;
}

static void publish_prod(int fd, uint64_t wire)
{
	atomic_store_explicit(&own_conn(fd)->tx.cdc->prod, wire, memory_order_release);
	cdc_ring(fd, own_conn(fd)->tx.cdc);
}

static void publish_cons(int fd, uint64_t wire)
{
	atomic_store_explicit(&own_conn(fd)->tx.cdc->cons, wire, memory_order_release);
	cdc_ring(fd, own_conn(fd)->tx.cdc);
}

/* Our producer cursor as the library last published it. */
static union cdc_cursor current_prod(int fd)
{
	struct usmc_conn *conn = own_conn(fd);
	union cdc_cursor c = { .acurs = cdc_cursor_from_pos(conn->tx.size, conn->sh->tx_prod) };

	return c;
}

/* ---- the victim's checks on the attacked connection ---- */

/*
 * Reads until ECONNRESET: whatever arrives before must be the attacker's
 * pattern, at most max_bytes of it (what it produced legitimately).
 */
static uint64_t expect_reset(int fd, uint64_t max_bytes)
{
	uint8_t buf[CHUNK], want[CHUNK];
	int64_t deadline = now_ms() + BOUND_MS;
	uint64_t off = 0;

	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t n;

		CHECK(now_ms() < deadline);
		usmc_poll(&p, 1, 200);
		n = usmc_recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n < 0) {
			CHECK(errno == ECONNRESET);
			return off;
		}
		CHECK(n > 0); /* EOF would hide the attack */
		h_pattern(want, (size_t)n, ROLE_ATTACKED, off);
		CHECK(memcmp(buf, want, (size_t)n) == 0);
		off += (uint64_t)n;
		CHECK(off <= max_bytes);
	}
}

/* After the reset was reported: writes fail, reads end, nothing more arrives. */
static void expect_dead(int fd)
{
	char c = 'x';
	uint8_t buf[256];

	CHECK(usmc_send(fd, &c, 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0);
	CHECK(errno == EPIPE || errno == ECONNRESET);
	for (int i = 0; i < 3; i++) {
		struct pollfd p = { .fd = fd, .events = POLLIN };

		ssize_t n;

		usmc_poll(&p, 1, 100);
		n = usmc_recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n > 0)
			fprintf(stderr, "%zd bytes arrived after the reset was reported\n", n);
		CHECK(n <= 0);
	}
}

/* ---- the cases ---- */

static void hostile_prod_beyond(int fd)
{
	union cdc_cursor c = current_prod(fd);

	c.count = own_conn(fd)->tx.size; /* one past the last byte of the ring */
	publish_prod(fd, c.acurs);
	say(&from_hostile, STEP_ATTACKED);
}

static void victim_wait_reset(int fd)
{
	expect(&from_hostile, STEP_ATTACKED);
	expect_reset(fd, 0);
	expect_dead(fd);
}

/* Sends 1000 honest bytes and waits until the victim has read them. */
static void hostile_honest_prefix(int fd, enum step victim_step)
{
	send_pattern(fd, ROLE_ATTACKED, 0, 1000);
	say(&from_hostile, STEP_SENT);
	expect(&to_hostile, victim_step);
}

static void hostile_prod_backwards(int fd)
{
	hostile_honest_prefix(fd, STEP_READ);
	publish_prod(fd, cdc_cursor_from_pos(own_conn(fd)->tx.size, 500));
	say(&from_hostile, STEP_ATTACKED);
}

static void victim_prod_backwards(int fd)
{
	expect(&from_hostile, STEP_SENT);
	recv_pattern(fd, ROLE_ATTACKED, 0, 1000);
	say(&to_hostile, STEP_READ);
	expect(&from_hostile, STEP_ATTACKED);
	expect_reset(fd, 0);
	expect_dead(fd);
}

static void hostile_wrap_jump(int fd)
{
	union cdc_cursor c = current_prod(fd);

	c.wrap += 2;
	publish_prod(fd, c.acurs);
	say(&from_hostile, STEP_ATTACKED);
}

static void hostile_prod_overfull(int fd)
{
	union cdc_cursor c;

	hostile_honest_prefix(fd, STEP_SEEN);
	/* One wrap on, but less far than the last count: passes the wrap check only. */
	c = current_prod(fd);
	c.wrap += 1;
	c.count = 500;
	publish_prod(fd, c.acurs);
	say(&from_hostile, STEP_ATTACKED);
}

static void victim_prod_overfull(int fd)
{
	uint8_t buf[1000];
	int64_t deadline = now_ms() + BOUND_MS;

	expect(&from_hostile, STEP_SENT);
	/* Peeking makes the victim accept the 1000 bytes without consuming them. */
	for (;;) {
		ssize_t n = usmc_recv(fd, buf, sizeof(buf), MSG_PEEK | MSG_DONTWAIT);

		if (n == (ssize_t)sizeof(buf))
			break;
		CHECK(n > 0 || errno == EAGAIN);
		CHECK(now_ms() < deadline);
		usleep(1000);
	}
	say(&to_hostile, STEP_SEEN);
	expect(&from_hostile, STEP_ATTACKED);
	expect_reset(fd, 0);
	expect_dead(fd);
}

/* The victim sends 100 bytes; the hostile side reads them, then lies about it. */
static void hostile_cons(int fd, int64_t delta)
{
	struct usmc_conn *conn = own_conn(fd);

	expect(&to_hostile, STEP_SENT);
	recv_pattern(fd, ROLE_OTHER + 1, 0, 100);
	say(&from_hostile, STEP_READ);
	expect(&to_hostile, STEP_SEEN);
	publish_cons(fd, cdc_cursor_from_pos(conn->rx.size, (uint64_t)((int64_t)conn->sh->rx_cons + delta)));
	say(&from_hostile, STEP_ATTACKED);
}

static void hostile_cons_ahead(int fd)
{
	hostile_cons(fd, 50);
}

static void hostile_cons_backwards(int fd)
{
	hostile_cons(fd, -60);
}

static void victim_cons(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLOUT };
	char c = 'x';

	send_pattern(fd, ROLE_OTHER + 1, 0, 100);
	say(&to_hostile, STEP_SENT);
	expect(&from_hostile, STEP_READ);
	/* Any look at the connection takes in the honest consumer cursor. */
	CHECK(usmc_poll(&p, 1, 0) == 1);
	say(&to_hostile, STEP_SEEN);
	expect(&from_hostile, STEP_ATTACKED);
	/*
	 * A write with room by the cursor last read need not look again; the
	 * next look at the cursor (here poll) finds it bad and resets.
	 */
	CHECK(usmc_poll(&p, 1, 0) == 1 && (p.revents & (POLLERR | POLLHUP)));
	CHECK(usmc_send(fd, &c, 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0);
	CHECK(errno == ECONNRESET);
	expect_dead(fd);
}

/* Produces while the abort flag goes on and off, until the victim has seen it. */
static void hostile_abort_flip(int fd)
{
	struct usmc_conn *conn = own_conn(fd);
	int64_t deadline = now_ms() + BOUND_MS;
	uint8_t buf[4096];
	uint64_t off = 0;
	ssize_t n;

	say(&from_hostile, STEP_ATTACKED);
	while (!heard(&to_hostile)) {
		CHECK(now_ms() < deadline);
		h_pattern(buf, sizeof(buf), ROLE_ATTACKED, off);
		n = usmc_send(fd, buf, sizeof(buf), MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n > 0)
			off += (uint64_t)n;
		atomic_fetch_or(&conn->tx.cdc->flags, CDC_PEER_CONN_ABORT);
		cdc_ring(fd, conn->tx.cdc);
		usleep(300);
		atomic_fetch_and(&conn->tx.cdc->flags, ~CDC_PEER_CONN_ABORT);
		usleep(300);
	}
	CHECK(h_chan_recv(&to_hostile) == STEP_RESET_SEEN);
	/* The flag is off for good now: the victim must not take this as a new life. */
	h_pattern(buf, sizeof(buf), ROLE_ATTACKED, off);
	n = usmc_send(fd, buf, sizeof(buf), MSG_DONTWAIT | MSG_NOSIGNAL);
	CHECK(n > 0);
	say(&from_hostile, STEP_WROTE_MORE);
}

static void victim_abort_flip(int fd)
{
	expect(&from_hostile, STEP_ATTACKED);
	expect_reset(fd, UINT64_MAX);
	say(&to_hostile, STEP_RESET_SEEN);
	expect(&from_hostile, STEP_WROTE_MORE);
	expect_dead(fd);
}

static uint64_t scribble_rng = 0x243f6a8885a308d3ull;

/* Garbage in the fields that are only hints: wait counters and generation. */
static void scribble(int fd)
{
	struct cdc_area *cdc = own_conn(fd)->tx.cdc;

	atomic_store(&cdc->want_data, (uint32_t)h_rand(&scribble_rng));
	atomic_store(&cdc->want_space, (uint32_t)h_rand(&scribble_rng));
	atomic_store(&cdc->gen, (uint32_t)h_rand(&scribble_rng));
	cdc_ring(fd, own_conn(fd)->tx.cdc);
}

static void hostile_garbage(int fd)
{
	between_chunks = scribble;
	recv_pattern(fd, ROLE_OTHER + 1, 0, HEALTHY_BYTES / 2);
	send_pattern(fd, ROLE_ATTACKED, 0, HEALTHY_BYTES / 2);
	between_chunks = NULL;
	CHECK(usmc_close(fd) == 0);
}

/* Hints are not cursors: garbage there must not break the connection. */
static void victim_garbage(int fd)
{
	send_pattern(fd, ROLE_OTHER + 1, 0, HEALTHY_BYTES / 2);
	recv_pattern(fd, ROLE_ATTACKED, 0, HEALTHY_BYTES / 2);
	expect_eof(fd);
}

static void hostile_silence(int fd)
{
	(void)fd;
	say(&from_hostile, STEP_ATTACKED);
}

/* A peer that never produces nor consumes: the victim's own bounds end every wait. */
static void victim_silence(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN | POLLOUT };
	uint8_t buf[CHUNK];
	uint64_t total = 0;
	ssize_t n;

	expect(&from_hostile, STEP_ATTACKED);
	memset(buf, 0x5a, sizeof(buf));
	while ((n = usmc_send(fd, buf, sizeof(buf), MSG_DONTWAIT | MSG_NOSIGNAL)) > 0) {
		total += (uint64_t)n;
		CHECK(total <= (16u << 20));
	}
	CHECK(n < 0 && errno == EAGAIN);
	CHECK(total > 0);
	CHECK(usmc_recv(fd, buf, sizeof(buf), MSG_DONTWAIT) < 0 && errno == EAGAIN);
	CHECK(usmc_poll(&p, 1, 300) == 0);
}

/* ---- descriptors received over the link group's channel ---- */

#define KEPT_MAX 16

static ssize_t (*real_recvmsg)(int, struct msghdr *, int);
static int kept_fds[KEPT_MAX];
static int nkept;

/* The library's recvmsg, keeping a duplicate of every descriptor passed. */
static ssize_t recvmsg_keeping_fds(int fd, struct msghdr *mh, int flags)
{
	ssize_t n = real_recvmsg(fd, mh, flags);

	if (n < 0 || !mh->msg_control)
		return n;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
		size_t count;

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < count && nkept < KEPT_MAX; i++) {
			int passed;

			memcpy(&passed, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
			kept_fds[nkept] = fcntl(passed, F_DUPFD_CLOEXEC, 0);
			CHECK(kept_fds[nkept] >= 0);
			nkept++;
		}
	}
	return n;
}

static void keep_passed_fds(void)
{
	real_recvmsg = usmc_sys.recvmsg;
	usmc_sys.recvmsg = recvmsg_keeping_fds;
}

static int count_maps(const char *name, const char *perms)
{
	char line[512];
	int n = 0;
	FILE *f = fopen("/proc/self/maps", "re");

	CHECK(f);
	while (fgets(line, sizeof(line), f))
		n += strstr(line, name) && strstr(line, perms);
	fclose(f);
	return n;
}

/* The peers' segments as the victim got them: sealed, and mapped read-only. */
static void victim_sealed(int fd)
{
	(void)fd;
	CHECK(nkept >= 2); /* one segment from each peer process */
	for (int i = 0; i < nkept; i++) {
		int seals = fcntl(kept_fds[i], F_GET_SEALS);
		struct stat st;

		CHECK(seals >= 0);
		CHECK((seals & (F_SEAL_SHRINK | F_SEAL_GROW)) == (F_SEAL_SHRINK | F_SEAL_GROW));
		/* What the victim got is read-only; the seals would stop a writable one too. */
		CHECK((fcntl(kept_fds[i], F_GETFL) & O_ACCMODE) == O_RDONLY);
		CHECK(ftruncate(kept_fds[i], 0) < 0);
		CHECK(fstat(kept_fds[i], &st) == 0 && st.st_size > 0);
		close(kept_fds[i]);
	}
	CHECK(count_maps("memfd:usmc-seg", " r--s ") >= 2);
}

static void hostile_keeps_quiet(int fd)
{
	(void)fd;
}

/*
 * The hostile side holds the victim's memfd for a moment after it is
 * passed: the descriptor it got does not map writable.
 */
static void hostile_write_map(int fd)
{
	(void)fd;
	CHECK(nkept >= 1);
	for (int i = 0; i < nkept; i++) {
		struct stat st;
		void *p;

		CHECK(fstat(kept_fds[i], &st) == 0 && st.st_size > 0);
		p = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, kept_fds[i], 0);
		if (p != MAP_FAILED)
			fprintf(stderr, "the victim's segment (%lld bytes) maps writable in its peer\n",
				(long long)st.st_size);
		CHECK(p == MAP_FAILED);
		close(kept_fds[i]);
	}
}

/*
 * A peer of the same user can still open the victim's segment again,
 * writable, through /proc.  It overwrites the victim's CDC area and ring
 * of the attacked connection: the victim reads nothing back from there
 * (its own state is in a memfd the peer never gets), so only what the
 * peer itself reads is garbage, and its own library resets the connection.
 */
/* A byte on the TCP stream that is no doorbell: data past the rings, lost unless reset. */
static void hostile_tcp_alien(int fd)
{
	CHECK(send(fd, "x", 1, MSG_NOSIGNAL) == 1);
	say(&from_hostile, STEP_ATTACKED);
}

/* The same byte, counted as a doorbell is first: only what it is tells it apart. */
static void hostile_tcp_alien_counted(int fd)
{
	atomic_fetch_add(&own_conn(fd)->tx.cdc->bells, 1);
	hostile_tcp_alien(fd);
}

static void hostile_scribble(int fd)
{
	struct usmc_conn *conn = own_conn(fd);
	char path[40], b;
	uint8_t *p;
	int rw;

	CHECK(nkept >= 1);
	snprintf(path, sizeof(path), "/proc/self/fd/%d", kept_fds[0]);
	rw = open(path, O_RDWR | O_CLOEXEC);
	CHECK(rw >= 0);
	p = mmap(NULL, conn->rx.seg->len, PROT_READ | PROT_WRITE, MAP_SHARED, rw, 0);
	CHECK(p != MAP_FAILED);
	memset(p + conn->rx.slot, 0xa5, CDC_SLOT_HDR + conn->rx.size);
	munmap(p, conn->rx.seg->len);
	close(rw);
	CHECK(usmc_recv(fd, &b, 1, MSG_DONTWAIT) < 0 && errno == ECONNRESET);
	say(&from_hostile, STEP_ATTACKED);
}

static void victim_nothing(int fd)
{
	(void)fd;
}

static const struct hostile_case cases[] = {
	{ "prod_beyond", hostile_prod_beyond, victim_wait_reset },
	{ "prod_backwards", hostile_prod_backwards, victim_prod_backwards },
	{ "wrap_jump", hostile_wrap_jump, victim_wait_reset },
	{ "prod_overfull", hostile_prod_overfull, victim_prod_overfull },
	{ "cons_ahead", hostile_cons_ahead, victim_cons },
	{ "cons_backwards", hostile_cons_backwards, victim_cons },
	{ "abort_flip", hostile_abort_flip, victim_abort_flip },
	{ "garbage_hints", hostile_garbage, victim_garbage },
	{ "silence", hostile_silence, victim_silence },
	{ "sealed", hostile_keeps_quiet, victim_sealed },
	{ "peer_write_map", hostile_write_map, victim_nothing },
	{ "peer_scribble", hostile_scribble, victim_wait_reset },
	{ "tcp_alien", hostile_tcp_alien, victim_wait_reset },
	{ "tcp_alien_counted", hostile_tcp_alien_counted, victim_wait_reset },
};

static const struct hostile_case *the_case;

/* ---- the processes ---- */

/* Connects, says which role the connection plays, and waits for the handshake. */
static int peer_connect(uint16_t port, enum role role)
{
	int fd = h_connect(AF_INET, H_USMC, port);
	uint64_t hello = role, ack;

	h_write_all(fd, &hello, sizeof(hello));
	h_read_all(fd, &ack, sizeof(ack));
	CHECK(ack == hello);
	h_check_mode(fd, USMC_MODE_SMCD);
	return fd;
}

/* The healthy exchange of one connection, as the victim's mirror image. */
static void peer_exchange(int fd, enum role role)
{
	recv_pattern(fd, 100 + role, 0, HEALTHY_BYTES);
	send_pattern(fd, 200 + role, 0, HEALTHY_BYTES);
	CHECK(usmc_close(fd) == 0);
}

static int hostile_main(void *arg)
{
	uint16_t port = (uint16_t)h_chan_recv(&to_hostile);
	int fds[HOSTILE_CONNS];

	(void)arg;
	if (the_case->hostile == hostile_write_map || the_case->hostile == hostile_scribble)
		keep_passed_fds();
	for (int r = 0; r < HOSTILE_CONNS; r++)
		fds[r] = peer_connect(port, (enum role)r);
	expect(&to_hostile, STEP_GO);
	the_case->hostile(fds[ROLE_ATTACKED]);
	for (int r = ROLE_HEALTHY1; r < HOSTILE_CONNS; r++)
		peer_exchange(fds[r], (enum role)r);
	usmc_close(fds[ROLE_ATTACKED]);
	return 0;
}

static int other_main(void *arg)
{
	uint16_t port = (uint16_t)h_chan_recv(&to_other);

	(void)arg;
	peer_exchange(peer_connect(port, ROLE_OTHER), ROLE_OTHER);
	return 0;
}

/* Accepts the four connections and sorts them by the role their first word names. */
static void victim_accept(int lfd, int fds[NROLES])
{
	for (int i = 0; i < NROLES; i++)
		fds[i] = -1;
	for (int i = 0; i < NROLES; i++) {
		uint64_t role;
		int fd;

		wait_ready(lfd, POLLIN);
		fd = usmc_accept(lfd, NULL, NULL);
		CHECK(fd >= 0);
		h_read_all(fd, &role, sizeof(role));
		CHECK(role < NROLES && fds[role] < 0);
		fds[role] = fd;
		h_write_all(fd, &role, sizeof(role));
		h_check_mode(fd, USMC_MODE_SMCD);
	}
}

static uint32_t lgr_of(int fd)
{
	struct usmc_info info;

	CHECK(usmc_info(fd, &info, sizeof(info)) == 0);
	return info.lgr_id;
}

static void victim_run(void)
{
	uint16_t port;
	int lfd, fds[NROLES];
	pid_t hostile, other;

	if (the_case->victim == victim_sealed)
		keep_passed_fds();
	hostile = h_fork(hostile_main, NULL);
	other = h_fork(other_main, NULL);
	lfd = h_listen(AF_INET, H_USMC, &port);
	h_chan_send(&to_hostile, port);
	h_chan_send(&to_other, port);
	victim_accept(lfd, fds);
	/* The attacked connection shares its link group with two healthy ones. */
	CHECK(lgr_of(fds[ROLE_ATTACKED]) == lgr_of(fds[ROLE_HEALTHY1]));
	CHECK(lgr_of(fds[ROLE_ATTACKED]) == lgr_of(fds[ROLE_HEALTHY2]));
	CHECK(lgr_of(fds[ROLE_ATTACKED]) != lgr_of(fds[ROLE_OTHER]));
	say(&to_hostile, STEP_GO);
	the_case->victim(fds[ROLE_ATTACKED]);
	for (int r = ROLE_HEALTHY1; r < NROLES; r++) {
		send_pattern(fds[r], 100 + (uint64_t)r, 0, HEALTHY_BYTES);
		recv_pattern(fds[r], 200 + (uint64_t)r, 0, HEALTHY_BYTES);
		expect_eof(fds[r]);
		h_check_mode(fds[r], USMC_MODE_SMCD);
		CHECK(usmc_close(fds[r]) == 0);
	}
	CHECK(usmc_close(fds[ROLE_ATTACKED]) == 0);
	CHECK(h_wait_ok(hostile));
	CHECK(h_wait_ok(other));
	CHECK(usmc_close(lfd) == 0);
}

int main(int argc, char **argv)
{
	const char *name = NULL;

	for (int i = 1; i + 1 < argc; i++)
		if (!strcmp(argv[i], "--case"))
			name = argv[i + 1];
	for (size_t i = 0; name && i < sizeof(cases) / sizeof(cases[0]); i++)
		if (!strcmp(cases[i].name, name))
			the_case = &cases[i];
	if (!the_case) {
		fprintf(stderr, "usage: hostile_peer --case NAME\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	h_chan_open(&to_hostile);
	h_chan_open(&from_hostile);
	h_chan_open(&to_other);
	victim_run();
	printf("hostile peer, %s: attacked connection handled, the other three byte-exact\n", name);
	return 0;
}
