// SPDX-License-Identifier: MIT
/*
 * Rounds of peers that die, stop or leave at random points, against one
 * survivor process (this one), which plays client or server in turn:
 *
 *   kill -9 of the client or the server during the handshake (right after
 *   connect, before accept, inside accept) and during transfers of random
 *   sizes in either direction (after a random delay or byte count);
 *   SIGSTOP of the peer for a while, then SIGCONT: the transfer completes
 *   byte-exact;
 *   a peer that exits normally with data unread: the survivor sees what
 *   plain TCP shows in the same situation, measured in the same round;
 *   a forked child that exits (or closes its copy of the descriptor and
 *   exits) while this process keeps using the connection byte-exact.
 *
 * Whatever the survivor reads is a prefix of what was sent; a stream ends
 * in EOF, ECONNRESET or EPIPE, never a hang (every wait has a bound that
 * fails the test).  A connection whose peer was alive through the
 * handshake must be in shared memory, or have fallen back after a CLC
 * timeout (an overloaded machine may leave the peer no time to answer):
 * such rounds are counted and printed with their reason, and their bytes
 * and endings are checked over TCP just the same.  After all rounds the survivor holds no descriptor and
 * no segment mapping more than after the first, and the listener channel
 * name of every dead server is gone from /proc/net/unix.
 *
 *   crash_rounds [--rounds N] [--seed S] [--case KIND]
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "robust.h"

enum kind {
	K_CLIENT_HANDSHAKE, /* the client dies around its connect() */
	K_CLIENT_TRANSFER,
	K_SERVER_BEFORE_ACCEPT,
	K_SERVER_IN_ACCEPT,
	K_SERVER_TRANSFER,
	K_STOP_CONT,
	K_FORK_EXIT,        /* the forked child only exits */
	K_EXIT_UNREAD,      /* from here on: cases that run alone (--case) */
	K_FORK_CLOSE,       /* the forked child closes its copy of the descriptor first */
	K_COUNT
};

static const char *const kind_names[K_COUNT] = {
	"client_handshake", "client_transfer", "server_before_accept", "server_in_accept",
	"server_transfer", "stop_cont", "fork_exit", "exit_unread", "fork_close",
};

/* What the peer child does once its connection exists. */
struct plan {
	int family;
	enum h_kind peer_kind;
	uint16_t port;        /* the survivor's listener, for a client peer */
	bool peer_is_server;
	bool peer_sends;      /* else the survivor sends */
	uint64_t size;        /* bytes the sender offers */
	uint64_t seed;        /* pattern of the stream */
	uint64_t rng;         /* the child's own chunking */
	bool peer_in_accept;  /* the server accepts at once (else waits to be killed) */
	bool orderly;         /* the peer ends by itself: close, exit 0 */
};

/* Connections that fell back to TCP: by round kind and reason. */
struct fallback_count {
	int kind;
	uint32_t reason;
	int rounds;
};

static struct h_chan port_chan;
static struct fallback_count fallbacks[32];
static int outcomes[K_COUNT][3]; /* no connection, EOF or EPIPE, ECONNRESET */
static int unlike_tcp;
static enum kind current = K_COUNT;           /* exit_unread rounds where usmc differed from TCP */

static int connect_to(int family, enum h_kind kind, uint16_t port)
{
	int fd = h_socket(family, kind, 0);
	struct sockaddr_storage ss = { 0 };
	socklen_t len;

	if (family == AF_INET) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

		s4->sin_family = AF_INET;
		s4->sin_port = htons(port);
		s4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		len = sizeof(*s4);
	} else {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(port);
		s6->sin6_addr = in6addr_loopback;
		len = sizeof(*s6);
	}
	RCHECK(usmc_connect(fd, (struct sockaddr *)&ss, len) == 0);
	return fd;
}

/* The peer's side of the stream; killed peers never get past pause(). */
static int peer_stream(int fd, struct plan *p)
{
	uint64_t off = 0;

	if (p->peer_sends) {
		RCHECK(robust_send_pattern(fd, p->seed, 0, p->size, &p->rng, 1 << 16) == 0);
	} else {
		int rc = robust_recv_pattern(fd, p->seed, &off, p->size + 1, &p->rng, 1 << 16);

		RCHECK(p->orderly ? rc == 0 && off == p->size : (rc == 0 || rc == -1));
	}
	if (p->orderly) {
		RCHECK(usmc_close(fd) == 0);
		return 0;
	}
	for (;;)
		pause();
}

static int peer_client(void *arg)
{
	struct plan *p = arg;

	return peer_stream(connect_to(p->family, H_USMC, p->port), p);
}

static int peer_server(void *arg)
{
	struct plan *p = arg;
	uint16_t port;
	int lfd = h_listen(p->family, H_USMC, &port), fd;

	h_chan_send(&port_chan, port);
	if (!p->peer_in_accept)
		for (;;)
			pause();
	fd = usmc_accept(lfd, NULL, NULL);
	RCHECK(fd >= 0);
	return peer_stream(fd, p);
}

static void plan_random(struct plan *p, uint64_t *rng)
{
	static const uint64_t sizes[] = { 1, 100, 4096, 65536, 300000, 1 << 20, 4 << 20 };

	memset(p, 0, sizeof(*p));
	p->family = h_rand(rng) % 4 ? AF_INET : AF_INET6;
	p->peer_sends = h_rand(rng) & 1;
	p->size = robust_between(rng, 1, sizes[h_rand(rng) % 7]);
	p->seed = h_rand(rng);
	p->rng = h_rand(rng) | 1;
	p->peer_in_accept = true;
}

/* Reads or writes until the dead peer's end shows; returns its errno or 0 for EOF. */
static int survive(int fd, const struct plan *p, uint64_t done, uint64_t *rng)
{
	uint64_t off = done;
	int rc;

	if (p->peer_sends) {
		rc = robust_recv_pattern(fd, p->seed, &off, p->size - off + 1, rng, 1 << 16);
		RCHECK(rc == 0 || rc == ECONNRESET);
		RCHECK(off <= p->size);
		return rc;
	}
	/* A dead reader: writes must fail within a bounded amount of data. */
	for (int i = 0; i < 256; i++, off += 1 << 20) {
		rc = robust_send_pattern(fd, p->seed, off, 1 << 20, rng, 1 << 16);
		if (rc) {
			RCHECK(rc == EPIPE || rc == ECONNRESET);
			return rc == EPIPE ? 0 : rc;
		}
	}
	RCHECK(!"writes toward a dead peer never failed");
	return 0;
}

static void count_fallback(enum kind k, uint32_t reason)
{
	int i = 0;

	while (i < 31 && fallbacks[i].rounds && (fallbacks[i].kind != (int)k ||
						fallbacks[i].reason != reason))
		i++;
	fallbacks[i].kind = (int)k;
	fallbacks[i].reason = reason;
	fallbacks[i].rounds++;
}

/*
 * The mode of a connection whose peer was alive through the handshake:
 * shared memory, or TCP after a CLC timeout; any other fallback is a
 * fault.  A handshake still waiting for its answer (a sender may finish
 * first) is neither.  With peer_may_be_dead only counted: a peer killed
 * during the handshake leaves the survivor TCP for a reason of its own.
 */
static void check_mode(enum kind k, int fd, bool peer_may_be_dead)
{
	struct usmc_info info;

	RCHECK(usmc_info(fd, &info, sizeof(info)) == 0);
	if (info.mode != USMC_MODE_FALLBACK)
		return;
	count_fallback(k, info.fallback_reason);
	if (!peer_may_be_dead && info.fallback_reason != USMC_DECL_TIMEOUT_CLC)
		fprintf(stderr, "%s: fell back to TCP, reason 0x%08x (%s)\n", kind_names[k],
			info.fallback_reason, usmc_reason_str(info.fallback_reason));
	RCHECK(peer_may_be_dead || info.fallback_reason == USMC_DECL_TIMEOUT_CLC);
}

static void count_outcome(enum kind k, int fd, int rc)
{
	outcomes[k][fd < 0 ? 0 : rc == 0 ? 1 : 2]++;
}

/* Moves a part of the stream (the survivor's share) before the kill. */
static uint64_t transfer_part(int fd, const struct plan *p, uint64_t *rng)
{
	uint64_t part = robust_between(rng, 0, p->size), off = 0;

	if (p->peer_sends) {
		int rc = robust_recv_pattern(fd, p->seed, &off, part, rng, 1 << 16);

		if (rc != -1)
			fprintf(stderr, "%s: stream of %llu bytes ended (%d) after %llu of them\n",
				current < K_COUNT ? kind_names[current] : "warm-up", (unsigned long long)p->size, rc, (unsigned long long)off);
		RCHECK(rc == -1);
		return off;
	}
	/* A killed reader may not take all of it: offer what fits for sure. */
	if (part > 65536)
		part = 65536;
	RCHECK(robust_send_pattern(fd, p->seed, 0, part, rng, 1 << 16) == 0);
	return part;
}

static int accept_now(int lfd, int ms)
{
	struct pollfd pl = { .fd = lfd, .events = POLLIN };

	if (poll(&pl, 1, ms) != 1)
		return -1;
	return usmc_accept(lfd, NULL, NULL);
}

/* The survivor is the server; the client child dies. */
static void round_client_dies(enum kind k, uint64_t *rng)
{
	struct plan p;
	int lfd, fd;
	uint64_t done = 0;
	pid_t pid;

	plan_random(&p, rng);
	lfd = h_listen(p.family, H_USMC, &p.port);
	pid = h_fork(peer_client, &p);
	if (k == K_CLIENT_HANDSHAKE) {
		robust_sleep_us(robust_between(rng, 0, 4000));
		RCHECK(robust_kill_reap(pid));
		/* A connection the child made is queued by now; none if it died first. */
		fd = accept_now(lfd, 0);
	} else {
		fd = accept_now(lfd, 20000);
		RCHECK(fd >= 0);
		done = transfer_part(fd, &p, rng);
		check_mode(k, fd, false);
		RCHECK(robust_kill_reap(pid));
	}
	if (k == K_CLIENT_HANDSHAKE && fd >= 0)
		check_mode(k, fd, true);
	count_outcome(k, fd, fd >= 0 ? survive(fd, &p, done, rng) : 0);
	if (fd >= 0)
		RCHECK(usmc_close(fd) == 0);
	RCHECK(usmc_close(lfd) == 0);
}

/* The survivor is the client; the server child dies. */
static void round_server_dies(enum kind k, uint64_t *rng)
{
	struct plan p;
	uint64_t done = 0;
	uint16_t port;
	pid_t pid;
	int fd;

	plan_random(&p, rng);
	p.peer_in_accept = k != K_SERVER_BEFORE_ACCEPT;
	pid = h_fork(peer_server, &p);
	port = (uint16_t)h_chan_recv(&port_chan);
	fd = connect_to(p.family, H_USMC, port);
	if (k == K_SERVER_TRANSFER)
		done = transfer_part(fd, &p, rng);
	else
		robust_sleep_us(robust_between(rng, 0, 3000));
	if (k == K_SERVER_TRANSFER)
		check_mode(k, fd, false);
	RCHECK(robust_kill_reap(pid));
	RCHECK(!robust_unix_name_exists(port));
	count_outcome(k, fd, survive(fd, &p, done, rng));
	if (k != K_SERVER_TRANSFER)
		check_mode(k, fd, true);
	RCHECK(usmc_close(fd) == 0);
}

/*
 * An orderly end: the peer closes and exits first, so that our close
 * finds its link group hung up and lets it go.  (An idle link group whose
 * peer exits later stays until this process's next handshake.)
 */
static void close_after_peer(int fd, pid_t pid)
{
	RCHECK(usmc_shutdown(fd, SHUT_WR) == 0);
	robust_reap_ok(pid);
	RCHECK(usmc_close(fd) == 0);
}

/* The peer is stopped mid-transfer, then continued: every byte arrives. */
static void round_stop_cont(uint64_t *rng)
{
	struct plan p;
	int lfd = -1, fd, rc;
	uint64_t off;
	pid_t pid;

	plan_random(&p, rng);
	p.peer_is_server = h_rand(rng) & 1;
	p.orderly = true;
	p.size = robust_between(rng, 1, 8 << 20);
	if (p.peer_is_server) {
		pid = h_fork(peer_server, &p);
		fd = connect_to(p.family, H_USMC, (uint16_t)h_chan_recv(&port_chan));
	} else {
		lfd = h_listen(p.family, H_USMC, &p.port);
		pid = h_fork(peer_client, &p);
		fd = accept_now(lfd, 20000);
		RCHECK(fd >= 0);
	}
	off = transfer_part(fd, &p, rng);
	RCHECK(kill(pid, SIGSTOP) == 0);
	robust_sleep_us(robust_between(rng, 5000, 60000));
	RCHECK(kill(pid, SIGCONT) == 0);
	if (p.peer_sends) {
		rc = robust_recv_pattern(fd, p.seed, &off, p.size - off + 1, rng, 1 << 16);
		RCHECK(rc == 0 && off == p.size);
	} else {
		RCHECK(robust_send_pattern(fd, p.seed, off, p.size - off, rng, 1 << 16) == 0);
	}
	check_mode(K_STOP_CONT, fd, false);
	close_after_peer(fd, pid);
	if (lfd >= 0)
		RCHECK(usmc_close(lfd) == 0);
}

/* What the survivor's next read and write give after the peer left. */
struct after_exit {
	int read_rc;  /* bytes, or -errno */
	int write_rc;
};

static int exit_unread_server(void *arg)
{
	const struct plan *p = arg;
	uint16_t port;
	int lfd = h_listen(p->family, p->peer_kind, &port), fd, tries = 0;
	static uint8_t buf[65536];

	h_chan_send(&port_chan, port);
	fd = usmc_accept(lfd, NULL, NULL);
	RCHECK(fd >= 0);
	/* Wait for the whole message, read its first byte, and leave the rest. */
	while (usmc_recv(fd, buf, (size_t)p->size, MSG_PEEK) != (ssize_t)p->size) {
		RCHECK(++tries < 20000);
		robust_sleep_us(1000);
	}
	RCHECK(usmc_read(fd, buf, 1) == 1);
	exit(0);
}

/* One way (plain TCP or usmc): the peer exits with size bytes sent to it, one read. */
static struct after_exit exit_unread_way(enum h_kind kind, const struct plan *tmpl)
{
	struct plan p = *tmpl;
	struct after_exit r;
	uint8_t buf[65536];
	pid_t pid;
	uint16_t port;
	int fd;

	p.peer_kind = kind;
	pid = h_fork(exit_unread_server, &p);
	port = (uint16_t)h_chan_recv(&port_chan);
	fd = connect_to(p.family, kind, port);
	h_pattern(buf, (size_t)p.size, p.seed, 0);
	h_write_all(fd, buf, (size_t)p.size);
	robust_reap_ok(pid);
	RCHECK(!robust_unix_name_exists(port));
	robust_wait(fd, POLLIN, 20000);
	r.read_rc = (int)usmc_read(fd, buf, sizeof(buf));
	if (r.read_rc < 0)
		r.read_rc = -errno;
	if (kind == H_USMC)
		check_mode(K_EXIT_UNREAD, fd, false);
	robust_wait(fd, POLLOUT, 20000);
	r.write_rc = (int)usmc_send(fd, buf, 100, MSG_NOSIGNAL);
	/* The first write after a FIN may still be taken; the peer's reset follows. */
	if (r.write_rc > 0) {
		robust_wait(fd, POLLIN | POLLERR, 20000);
		r.write_rc = (int)usmc_send(fd, buf, 100, MSG_NOSIGNAL);
	}
	if (r.write_rc < 0)
		r.write_rc = -errno;
	RCHECK(usmc_close(fd) == 0);
	return r;
}

static void round_exit_unread(uint64_t *rng)
{
	struct plan p;
	struct after_exit tcp, smc;

	plan_random(&p, rng);
	/* The peer leaves unread bytes when size > 1, none when size == 1. */
	p.size = h_rand(rng) % 3 ? robust_between(rng, 2, 65536) : 1;
	tcp = exit_unread_way(H_PLAIN, &p);
	smc = exit_unread_way(H_USMC, &p);
	if (tcp.read_rc != smc.read_rc || tcp.write_rc != smc.write_rc) {
		fprintf(stderr, "peer exited, %llu bytes sent, %s unread: tcp read %d write %d, "
			"usmc read %d write %d\n", (unsigned long long)p.size,
			p.size > 1 ? "some" : "none", tcp.read_rc, tcp.write_rc, smc.read_rc,
			smc.write_rc);
		unlike_tcp++;
	}
	outcomes[K_EXIT_UNREAD][smc.read_rc == 0 ? 1 : 2]++;
}

struct leaver {
	int fd;
	bool close_first;
};

static int forked_child_leaves(void *arg)
{
	const struct leaver *l = arg;
	struct usmc_info info;

	RCHECK(usmc_info(l->fd, &info, sizeof(info)) == 0);
	if (l->close_first)
		RCHECK(usmc_close(l->fd) == 0);
	exit(0);
}

/* A forked child of the survivor exits halfway; the connection goes on. */
static void round_fork(enum kind k, uint64_t *rng)
{
	struct leaver leaver;
	struct plan p;
	uint64_t off = 0;
	pid_t pid, child;
	int fd, rc;

	plan_random(&p, rng);
	p.peer_is_server = true;
	p.orderly = true;
	p.size = robust_between(rng, 2, 4 << 20);
	pid = h_fork(peer_server, &p);
	fd = connect_to(p.family, H_USMC, (uint16_t)h_chan_recv(&port_chan));
	off = transfer_part(fd, &p, rng);
	leaver.fd = fd;
	leaver.close_first = k == K_FORK_CLOSE;
	child = h_fork(forked_child_leaves, &leaver);
	robust_reap_ok(child);
	if (p.peer_sends) {
		rc = robust_recv_pattern(fd, p.seed, &off, p.size - off + 1, rng, 1 << 16);
		RCHECK(rc == 0 && off == p.size);
	} else {
		RCHECK(robust_send_pattern(fd, p.seed, off, p.size - off, rng, 1 << 16) == 0);
	}
	check_mode(k, fd, false);
	close_after_peer(fd, pid);
}

static void run_round(enum kind k, uint64_t *rng)
{
	switch (k) {
	case K_CLIENT_HANDSHAKE:
	case K_CLIENT_TRANSFER:
		round_client_dies(k, rng);
		break;
	case K_SERVER_BEFORE_ACCEPT:
	case K_SERVER_IN_ACCEPT:
	case K_SERVER_TRANSFER:
		round_server_dies(k, rng);
		break;
	case K_STOP_CONT:
		round_stop_cont(rng);
		break;
	case K_EXIT_UNREAD:
		round_exit_unread(rng);
		break;
	default:
		round_fork(k, rng);
		break;
	}
}

/* Both roles once, so that per-process tables exist before counting. */
static void warm_up(void)
{
	static const enum kind kinds[] = { K_CLIENT_TRANSFER, K_SERVER_TRANSFER, K_STOP_CONT,
					   K_FORK_EXIT };
	uint64_t rng = 1;

	for (int i = 0; i < 4; i++)
		run_round(kinds[i], &rng);
}

static int kind_by_name(const char *name)
{
	for (int k = 0; k < K_COUNT; k++)
		if (!strcmp(name, kind_names[k]))
			return k;
	fprintf(stderr, "unknown case %s\n", name);
	exit(2);
}

int main(int argc, char **argv)
{
	int rounds = 200, only = -1, fds_first, maps_first;
	uint64_t rng;

	robust_seed = (uint64_t)time(NULL);
	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--rounds"))
			rounds = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--seed"))
			robust_seed = strtoull(argv[i + 1], NULL, 0);
		else if (!strcmp(argv[i], "--case"))
			only = kind_by_name(argv[i + 1]);
	}
	printf("crash_rounds: seed %llu, %d rounds\n", (unsigned long long)robust_seed, rounds);
	h_chan_open(&port_chan);
	warm_up();
	fds_first = h_count_fds();
	maps_first = robust_segment_maps();
	rng = robust_seed * 2 + 1;
	for (int r = 0; r < rounds; r++) {
		int k = only >= 0 ? only : (int)(h_rand(&rng) % K_EXIT_UNREAD);

		current = (enum kind)k;
		snprintf(robust_where, sizeof(robust_where), " round %d (%s)", r, kind_names[k]);
		run_round((enum kind)k, &rng);
	}
	if (h_count_fds() > fds_first || robust_segment_maps() > maps_first) {
		fprintf(stderr, "after the first round: %d fds, %d mappings; now %d, %d\n", fds_first,
			maps_first, h_count_fds(), robust_segment_maps());
		robust_list_fds();
	}
	RCHECK(h_count_fds() <= fds_first);
	RCHECK(robust_segment_maps() <= maps_first);
	for (int k = 0; k < K_COUNT; k++)
		if (outcomes[k][0] + outcomes[k][1] + outcomes[k][2])
			printf("  %-22s no connection %3d, EOF/EPIPE %3d, ECONNRESET %3d\n",
			       kind_names[k], outcomes[k][0], outcomes[k][1], outcomes[k][2]);
	for (int i = 0; i < 32 && fallbacks[i].rounds; i++)
		printf("  %-22s fell back to TCP %3d, reason 0x%08x (%s)\n",
		       kind_names[fallbacks[i].kind], fallbacks[i].rounds, fallbacks[i].reason,
		       usmc_reason_str(fallbacks[i].reason));
	RCHECK(unlike_tcp == 0);
	printf("%d rounds: survivor saw every end, bytes exact, nothing leaked: ok\n", rounds);
	return 0;
}
