// SPDX-License-Identifier: MIT
/*
 * A server stalled between taking a Proposal and answering it, for longer
 * than the client waits (USMC_CLC_TIMEOUT_MS is small here): both ends
 * must end in the same mode with every byte delivered, or the connection
 * must fail loudly on both ends.  Never one end in shared memory and the
 * other on TCP.
 *
 *   hs_stall --case short   the stall ends while the client still waits
 *                           for the answer to its withdrawal: request and
 *                           reply arrive checked, both ends in one mode
 *   hs_stall --case long    the stall outlasts the client's last bound:
 *                           the client's connection is reset, and the
 *                           server sees an error too, never a clean reply
 *   hs_stall --case dropped the server stalls after the kernel's accept,
 *                           before it read the Proposal: it reads the
 *                           withdrawal after it, drops it, and both ends
 *                           are TCP with request and reply checked
 *
 * The stall sits where the server has taken the Proposal and makes its
 * ring: this program's memfd_create, which the library's call resolves to,
 * sleeps once in the server before making the segment; or, for dropped,
 * in its accept4 on the TCP listener.
 */
#include <netinet/in.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>

#include "robust.h"

#define TIMEOUT_MS 30
#define REQ_LEN 3000
#define REPLY_LEN 5000

static _Atomic int stall_ms; /* > 0: the next segment waits this long */

int memfd_create(const char *name, unsigned int flags)
{
	int ms = stall_ms;

	if (ms > 0 && !strcmp(name, "usmc-seg")) {
		stall_ms = 0;
		robust_sleep_us((uint64_t)ms * 1000);
	}
	return (int)syscall(SYS_memfd_create, name, flags);
}

static _Atomic int accept_stall_ms; /* > 0: the next accept on accept_stall_fd waits */
static int accept_stall_fd = -1;

int accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
	int rc = (int)syscall(SYS_accept4, fd, addr, len, flags), ms = accept_stall_ms;

	if (rc >= 0 && fd == accept_stall_fd && ms > 0) {
		accept_stall_ms = 0;
		robust_sleep_us((uint64_t)ms * 1000);
	}
	return rc;
}

struct result {
	int mode;
	uint32_t reason; /* client: its fallback reason */
	int err;       /* errno that ended the exchange, 0 if none */
	uint64_t sum;  /* of what was read */
	uint64_t len;
};

static uint64_t pattern_sum(uint64_t seed, size_t len)
{
	uint8_t buf[REPLY_LEN];

	h_pattern(buf, len, seed, 0);
	return h_fnv(H_FNV_INIT, buf, len);
}

static int end_mode(int fd, uint32_t *reason)
{
	struct usmc_info info;

	RCHECK(usmc_info(fd, &info, sizeof(info)) == 0);
	*reason = info.fallback_reason;
	return info.mode;
}

/* Reads up to cap bytes or EOF; the errno that ended it, 0 on EOF or cap. */
static int read_upto(int fd, struct result *r, size_t cap)
{
	uint8_t buf[REPLY_LEN];

	r->sum = H_FNV_INIT;
	while (r->len < cap) {
		ssize_t n = usmc_read(fd, buf, cap - r->len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno;
		if (n == 0)
			break;
		r->sum = h_fnv(r->sum, buf, (size_t)n);
		r->len += (uint64_t)n;
	}
	return 0;
}

static int write_pattern(int fd, uint64_t seed, size_t len)
{
	uint8_t buf[REPLY_LEN];
	size_t off = 0;

	h_pattern(buf, len, seed, 0);
	while (off < len) {
		ssize_t n = usmc_write(fd, buf + off, len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno;
		off += (size_t)n;
	}
	return 0;
}

struct server_arg {
	struct h_chan port, result;
	int stall;
	bool stall_accept;
	int nconns;
};

/*
 * Accepts the connections, then reads each request and answers it.  The
 * second accept reads what the client sent on the channel meanwhile,
 * its withdrawal of the first Proposal among it.
 */
static int server(void *argp)
{
	struct server_arg *a = argp;
	uint16_t port;
	int lfd = h_listen(AF_INET, H_USMC, &port), fd[2];

	if (a->stall_accept) {
		accept_stall_fd = lfd;
		accept_stall_ms = a->stall;
	} else {
		stall_ms = a->stall;
	}
	h_chan_send(&a->port, port);
	for (int i = 0; i < a->nconns; i++) {
		fd[i] = usmc_accept(lfd, NULL, NULL);
		RCHECK(fd[i] >= 0);
	}
	for (int i = 0; i < a->nconns; i++) {
		struct result r = { 0 };

		r.err = read_upto(fd[i], &r, REQ_LEN);
		r.mode = end_mode(fd[i], &r.reason);
		if (!r.err && r.len == REQ_LEN)
			r.err = write_pattern(fd[i], 10 + (uint64_t)i, REPLY_LEN);
		if (!r.err && usmc_close(fd[i]) < 0)
			r.err = errno;
		else if (r.err)
			usmc_close(fd[i]);
		h_chan_send(&a->result, (uint64_t)r.mode << 56 | (uint64_t)r.err << 40 | r.len);
		h_chan_send(&a->result, r.sum);
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct server_arg a;
	struct result cli[2] = { { 0 } }, srv;
	bool long_stall = argc > 2 && !strcmp(argv[2], "long");
	bool dropped = argc > 2 && !strcmp(argv[2], "dropped");
	uint16_t port;
	uint64_t v;
	pid_t pid;
	int fd[2];

	setenv("USMC_CLC_TIMEOUT_MS", "30", 1);
	/* Short: past the client's withdrawal; long: past every bound it has. */
	a.stall = long_stall ? 60 * TIMEOUT_MS : 6 * TIMEOUT_MS;
	a.nconns = long_stall || dropped ? 1 : 2;
	a.stall_accept = dropped;
	h_chan_open(&a.port);
	h_chan_open(&a.result);
	pid = h_fork(server, &a);
	port = (uint16_t)h_chan_recv(&a.port);
	for (int i = 0; i < a.nconns; i++) {
		fd[i] = h_connect(AF_INET, H_USMC, port);
		RCHECK(fd[i] >= 0);
		cli[i].err = write_pattern(fd[i], 1 + (uint64_t)i, REQ_LEN);
	}
	for (int i = 0; i < a.nconns; i++) {
		if (!cli[i].err)
			cli[i].err = read_upto(fd[i], &cli[i], REPLY_LEN);
		cli[i].mode = end_mode(fd[i], &cli[i].reason);
		usmc_close(fd[i]);
	}
	for (int i = 0; i < a.nconns; i++) {
		v = h_chan_recv(&a.result);
		srv.mode = (int)(v >> 56);
		srv.err = (int)(v >> 40 & 0xffff);
		srv.len = v & 0xffffffffffull;
		srv.sum = h_chan_recv(&a.result);
		printf("%s stall, connection %d: client %s, %llu bytes, %s; server %s, %llu bytes, %s\n",
		       argc > 2 ? argv[2] : "short", i, usmc_mode_str(cli[i].mode),
		       (unsigned long long)cli[i].len, cli[i].err ? strerror(cli[i].err) : "ok",
		       usmc_mode_str(srv.mode), (unsigned long long)srv.len,
		       srv.err ? strerror(srv.err) : "ok");
		if (long_stall) {
			/* Loud on both ends: the client reset, the server not told all went well. */
			RCHECK(cli[i].err == ECONNRESET);
			RCHECK(srv.err != 0);
			continue;
		}
		RCHECK(cli[i].err == 0 && srv.err == 0);
		RCHECK(srv.len == REQ_LEN && srv.sum == pattern_sum(1 + (uint64_t)i, REQ_LEN));
		RCHECK(cli[i].len == REPLY_LEN && cli[i].sum == pattern_sum(10 + (uint64_t)i, REPLY_LEN));
		RCHECK(cli[i].mode == srv.mode);
		/* Withdrawn before the server read the Proposal: TCP, told by the server. */
		if (dropped)
			RCHECK(cli[i].mode == USMC_MODE_FALLBACK && cli[i].reason == USMC_DECL_TIMEOUT_CLC);
	}
	RCHECK(h_wait_ok(pid));
	return 0;
}
