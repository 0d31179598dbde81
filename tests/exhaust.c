// SPDX-License-Identifier: MIT
/*
 * Exhausted or refused resources: a new connection falls back to TCP with
 * a reason, or fails exactly where TCP fails, and nothing already written
 * is lost.  Every connection carries an indexed payload whose checksum
 * the server sends back.
 *
 *   exhaust --case nofile_client   low RLIMIT_NOFILE in the client
 *   exhaust --case nofile_server   low RLIMIT_NOFILE in the server
 *   exhaust --case nofile_files    low RLIMIT_NOFILE in the client, which then
 *                                  needs descriptors of its own
 *   exhaust --case memfd_client_eperm | memfd_client_enosys |
 *                  memfd_server_eperm | memfd_server_enosys
 *                                  memfd_create refused by a seccomp filter
 *   exhaust --case registry        USMC_REGISTRY_DIR cannot be written
 *   exhaust --case many [N]        N simultaneous connections, one link group
 *   exhaust --case close_early     the client writes and closes before the
 *                                  server, which cannot make buffers, accepts
 *   exhaust --case close_orphan    the same, the server accepting only after
 *                                  the client's close gave up waiting
 *
 * All usmc work happens in children, so that each applies its limit,
 * filter or environment before its first usmc call.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stddef.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include "exhaust_pair.h"

/* ---- the cases ---- */

static const uint32_t no_room[] = { USMC_DECL_ENV, USMC_DECL_MEM, USMC_DECL_TIMEOUT_CLC,
				    USMC_DECL_PEERNOSMC, USMC_DECL_PEERDECL };
/* A server out of descriptors resets the channels it cannot take: no client waits out a timeout. */
static const uint32_t no_room_server[] = { USMC_DECL_ENV, USMC_DECL_MEM, USMC_DECL_PEERNOSMC,
					   USMC_DECL_PEERDECL };
/* memfd_create refused with anything but ENOMEM: the environment's doing. */
static const uint32_t refused_shm[] = { USMC_DECL_ENV };
/* The client that cannot propose is a plain peer to its server. */
static const uint32_t peer_refused_shm[] = { USMC_DECL_PEERNOSMC };
static const uint32_t no_registry[] = { USMC_DECL_ENV, USMC_DECL_PEERNOSMC };

/*
 * Each limit from one free descriptor up: usmc connections where TCP ones
 * fit, minus the three descriptors usmc keeps whatever the mode: the link
 * group's channel and its spare, and the socket table usmc-stat reads.
 * So few free descriptors are less than the eighth of the limit a new
 * segment must leave (at least 16): every connection here stays TCP.
 */
static void case_nofile_client(void)
{
	for (int extra = 1; extra <= 12; extra++) {
		struct setup usmc = { .client = { H_USMC, extra, .smc_ok = true, ALLOW(no_room) },
				      .server = { H_USMC, .smc_ok = true, ALLOW(no_room) },
				      .nconns = extra + 4 };
		struct setup tcp = usmc;
		int made_usmc, made_tcp;

		tcp.client.kind = H_PLAIN;
		printf("RLIMIT_NOFILE %d above the open descriptors:\n", extra);
		made_usmc = run_pair(&usmc);
		made_tcp = run_pair(&tcp);
		printf("  connections made: usmc %d, plain TCP %d\n", made_usmc, made_tcp);
		RCHECK(made_usmc <= made_tcp && made_usmc >= made_tcp - 3);
	}
}

/*
 * Two connections with a few descriptors free, then the program opens
 * descriptors of its own (dup, which usmc never sees) until EMFILE: it
 * gets as many as with plain TCP, less usmc's three.  A new segment with
 * less than an eighth of the limit free would take three more.
 */
static void case_nofile_files(void)
{
	for (int extra = 6; extra <= 12; extra++) {
		struct setup usmc = { .client = { H_USMC, extra, .smc_ok = true, ALLOW(no_room) },
				      .server = { H_USMC, .smc_ok = true, ALLOW(no_room) },
				      .nconns = 2, .count_files = true };
		struct setup tcp = usmc;

		tcp.client.kind = H_PLAIN;
		printf("RLIMIT_NOFILE %d above the open descriptors, 2 connections:\n", extra);
		RCHECK(run_pair(&usmc) == 2 && run_pair(&tcp) == 2);
		printf("  descriptors the program got after them: usmc %d, plain TCP %d\n", usmc.files,
		       tcp.files);
		RCHECK(usmc.files <= tcp.files && usmc.files >= tcp.files - 3);
	}
}

static void case_nofile_server(void)
{
	/* So few free descriptors make no segment: the server's connections stay TCP. */
	for (int extra = 1; extra <= 4; extra++) {
		struct setup st = { .client = { H_USMC, .smc_ok = true, ALLOW(no_room_server) },
				    .server = { H_USMC, extra, .smc_ok = true, ALLOW(no_room) },
				    .nconns = 20 };

		printf("server RLIMIT_NOFILE %d above the open descriptors:\n", extra);
		RCHECK(run_pair(&st) == st.nconns);
	}
}

static void case_memfd(bool client_side, int err)
{
	struct side refused = { H_USMC, .memfd_errno = err, ALLOW(refused_shm) };
	struct side other = { H_USMC, ALLOW(peer_refused_shm) };
	struct setup st = { .client = client_side ? refused : other,
			    .server = client_side ? other : refused, .nconns = 20 };

	/* A client whose server refused declines nothing itself: it gets the server's reason. */
	if (!client_side) {
		st.client.allowed = refused_shm;
		st.client.nallowed = 1;
	}
	printf("memfd_create refused with %s in the %s:\n", strerror(err),
	       client_side ? "client" : "server");
	RCHECK(run_pair(&st) == st.nconns);
}

/* A directory nobody here may create files in; root ignores modes. */
static const char *unwritable_dir(char *tmpl)
{
	char probe[300];
	int fd;

	RCHECK(mkdtemp(tmpl));
	RCHECK(chmod(tmpl, 0500) == 0);
	snprintf(probe, sizeof(probe), "%s/probe", tmpl);
	fd = open(probe, O_RDWR | O_CREAT, 0600);
	if (fd < 0)
		return tmpl;
	close(fd);
	unlink(probe);
	return "/proc";
}

static void case_registry(void)
{
	char tmpl[] = "/tmp/usmc-noregistry-XXXXXX";
	const char *dir = unwritable_dir(tmpl);

	for (int which = 0; which < 3; which++) {
		struct side bad = { H_USMC, .regdir = dir, ALLOW(no_registry) };
		struct side good = { H_USMC, ALLOW(no_registry) };
		struct setup st = { .client = which != 1 ? bad : good,
				    .server = which != 0 ? bad : good, .nconns = 10 };

		printf("registry directory %s unusable by the %s:\n", dir,
		       which == 0 ? "client" : which == 1 ? "server" : "client and server");
		RCHECK(run_pair(&st) == st.nconns);
	}
	RCHECK(rmdir(tmpl) == 0);
}

static const uint32_t crowded[] = { USMC_DECL_MAX_DMB, USMC_DECL_MEM, USMC_DECL_ENV };

static void case_many(int n)
{
	struct rlimit rl;
	struct setup st = { .client = { H_USMC, .smc_ok = true, ALLOW(crowded) },
			    .server = { H_USMC, .smc_ok = true, ALLOW(crowded) },
			    .nconns = n, .concurrent = true };

	RCHECK(getrlimit(RLIMIT_NOFILE, &rl) == 0);
	if (rl.rlim_cur < (rlim_t)n + 64) {
		rl.rlim_cur = rl.rlim_max < (rlim_t)n + 64 ? rl.rlim_max : (rlim_t)n + 64;
		RCHECK(setrlimit(RLIMIT_NOFILE, &rl) == 0);
	}
	if (rl.rlim_cur < (rlim_t)n + 64) {
		n = (int)rl.rlim_cur - 64;
		st.nconns = n;
		printf("descriptor limit %llu: %d connections\n", (unsigned long long)rl.rlim_cur, n);
	}
	/* Small rings: thousands of connections in a few megabytes. */
	setenv("USMC_BUFSIZE", "16384", 1);
	/* A server busy with thousands of accepts answers late: the default wait. */
	unsetenv("USMC_CLC_TIMEOUT_MS");
	printf("%d simultaneous connections between two processes:\n", n);
	RCHECK(run_pair(&st) == n);
}

/*
 * The client writes and closes while its Proposal is unanswered; the
 * server, whose memfd_create is refused, accepts only then and declines.
 *   - close_early: the server accepts while the client's close waits for
 *     its answer: the close must have waited and replayed its bytes into
 *     TCP.
 *   - close_orphan: the server accepts only after the client's close gave
 *     up waiting (a CLC timeout) and left its ring to the server: nobody
 *     is left to replay the bytes into TCP.  The server's end is reset:
 *     its read fails with ECONNRESET, never an end of file that would
 *     hide the lost bytes.
 */
static struct h_chan closing;
static bool orphaned;

static int close_server(void *arg)
{
	struct side *srv = arg;
	uint16_t port;
	uint8_t byte;
	ssize_t n;
	int lfd, fd;

	side_apply(srv);
	lfd = h_listen(AF_INET, H_USMC, &port);
	h_chan_send(&to_parent, port);
	h_chan_recv(&closing);
	fd = usmc_accept(lfd, NULL, NULL);
	RCHECK(fd >= 0);
	if (orphaned) {
		n = usmc_read(fd, &byte, 1);
		printf("server: read after a Decline nobody replays: %zd (%s)\n", n,
		       n < 0 ? strerror(errno) : "bytes or the end");
		RCHECK(n < 0 && errno == ECONNRESET);
	} else {
		serve_one(fd);
		h_check_mode(fd, USMC_MODE_FALLBACK);
	}
	RCHECK(usmc_close(fd) == 0 && usmc_close(lfd) == 0);
	return 0;
}

static void case_close(bool orphan)
{
	struct side srv = { H_USMC, .memfd_errno = EPERM };
	struct usmc_info info;
	pid_t pid;
	int fd;

	orphaned = orphan;
	/* Long, so that the server's accept surely comes inside the close. */
	if (!orphan)
		setenv("USMC_CLC_TIMEOUT_MS", "20000", 1);
	h_chan_open(&closing);
	pid = h_fork(close_server, &srv);
	fd = h_connect(AF_INET, H_USMC, (uint16_t)h_chan_recv(&to_parent));
	client_send(fd, 7);
	RCHECK(usmc_info(fd, &info, sizeof(info)) == 0 && info.mode == USMC_MODE_HANDSHAKE);
	if (orphan)
		RCHECK(usmc_close(fd) == 0);
	h_chan_send(&closing, 1);
	if (!orphan)
		RCHECK(usmc_close(fd) == 0);
	RCHECK(h_wait_ok(pid));
	printf(orphan ? "closed before the answer, declined once the close gave up: reset\n"
		      : "closed before the answer, server declined: bytes replayed into TCP\n");
}

int main(int argc, char **argv)
{
	const char *c = argc > 2 && !strcmp(argv[1], "--case") ? argv[2] : "";

	robust_seed = 0;
	/* A safety bound: a hang ends the test (children inherit nothing of it). */
	alarm(55);
	h_chan_open(&to_parent);
	/* A lone server at an answer's wait must not hold a client long. */
	setenv("USMC_CLC_TIMEOUT_MS", "300", 1);
	if (!strcmp(c, "nofile_client"))
		case_nofile_client();
	else if (!strcmp(c, "nofile_server"))
		case_nofile_server();
	else if (!strcmp(c, "nofile_files"))
		case_nofile_files();
	else if (!strncmp(c, "memfd_", 6))
		case_memfd(strstr(c, "client") != NULL, strstr(c, "eperm") ? EPERM : ENOSYS);
	else if (!strcmp(c, "registry"))
		case_registry();
	else if (!strcmp(c, "close_early") || !strcmp(c, "close_orphan"))
		case_close(!strcmp(c, "close_orphan"));
	else if (!strcmp(c, "many"))
		case_many(argc > 3 ? atoi(argv[3]) : 10000);
	else {
		fprintf(stderr, "usage: exhaust --case nofile_client|nofile_server|nofile_files|memfd_{client,server}_"
				"{eperm,enosys}|registry|close_early|close_orphan|many [N]\n");
		return 2;
	}
	printf("%s: every connection fell back or failed as TCP does, bytes exact: ok\n", c);
	return 0;
}
