// SPDX-License-Identifier: MIT
/*
 * Exhausted or refused resources: a new connection falls back to TCP with
 * a reason, or fails exactly where TCP fails, and nothing already written
 * is lost.  Every connection carries an indexed payload whose checksum
 * the server sends back.
 *
 *   exhaust --case nofile_client   low RLIMIT_NOFILE in the client
 *   exhaust --case nofile_server   low RLIMIT_NOFILE in the server
 *   exhaust --case memfd_client_eperm | memfd_client_enosys |
 *                  memfd_server_eperm | memfd_server_enosys
 *                                  memfd_create refused by a seccomp filter
 *   exhaust --case registry        USMC_REGISTRY_DIR cannot be written
 *   exhaust --case many [N]        N simultaneous connections, one link group
 *   exhaust --case close_early     the client writes and closes before the
 *                                  server, which cannot make buffers, accepts
 *
 * All usmc work happens in children, so that each applies its limit,
 * filter or environment before its first usmc call.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <netinet/in.h>
#include <stddef.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include "robust.h"

#define PAYLOAD_MAX 5000

struct side {
	enum h_kind kind;
	int nofile_extra;   /* > 0: RLIMIT_NOFILE this much above what is open */
	int memfd_errno;    /* > 0: memfd_create fails with it */
	const char *regdir; /* USMC_REGISTRY_DIR */
	bool smc_ok;        /* shared memory may happen */
	const uint32_t *allowed; /* fallback reasons that may happen */
	int nallowed;
};

struct setup {
	struct side client, server;
	int nconns;
	bool concurrent;    /* open all, then exchange; else one after the other */
	uint16_t port;
};

/* Modes and reasons one side saw. */
struct tally {
	int smc, fallback, refused;
	uint32_t lgr;       /* the link group of the first shared-memory connection */
	bool lgr_mixed;     /* another one appeared */
	uint32_t reasons[8];
	int reason_count[8];
};

static struct h_chan to_parent;

static void tally_add(struct tally *t, int fd)
{
	struct usmc_info info;
	int i;

	RCHECK(usmc_info(fd, &info, sizeof(info)) == 0);
	if (info.mode == USMC_MODE_SMCD) {
		if (t->smc++ == 0)
			t->lgr = info.lgr_id;
		t->lgr_mixed |= info.lgr_id != t->lgr;
		return;
	}
	if (info.mode != USMC_MODE_FALLBACK)
		return; /* a plain socket */
	t->fallback++;
	for (i = 0; i < 7 && t->reason_count[i] && t->reasons[i] != info.fallback_reason; i++)
		;
	t->reasons[i] = info.fallback_reason;
	t->reason_count[i]++;
}

static void tally_print(const char *who, const struct tally *t)
{
	printf("  %s: %d shared memory, %d fallback, %d refused (EMFILE)\n", who, t->smc,
	       t->fallback, t->refused);
	for (int i = 0; i < 8 && t->reason_count[i]; i++)
		printf("    %5d x 0x%08x %s\n", t->reason_count[i], t->reasons[i],
		       usmc_reason_str(t->reasons[i]));
}

/* What a side saw must be what its case allows. */
static void tally_check(const struct tally *t, const struct side *s)
{
	RCHECK(s->smc_ok || t->smc == 0);
	RCHECK(!t->lgr_mixed);
	for (int i = 0; i < 8 && t->reason_count[i]; i++) {
		bool ok = false;

		for (int j = 0; j < s->nallowed; j++)
			ok |= t->reasons[i] == s->allowed[j];
		if (!ok)
			fprintf(stderr, "unexpected fallback reason 0x%08x\n", t->reasons[i]);
		RCHECK(ok);
	}
}

static uint32_t payload_len(uint32_t index)
{
	return 1 + (index * 7919u) % PAYLOAD_MAX;
}

static uint64_t payload_sum(uint32_t index)
{
	uint8_t buf[PAYLOAD_MAX];

	h_pattern(buf, payload_len(index), index, 0);
	return h_fnv(H_FNV_INIT, buf, payload_len(index));
}

/* ---- what each side applies before its first usmc call ---- */

static void install_memfd_filter(int err)
{
#if defined(__x86_64__)
	const uint32_t arch = AUDIT_ARCH_X86_64;
#elif defined(__aarch64__)
	const uint32_t arch = AUDIT_ARCH_AARCH64;
#else
#error "add this architecture's AUDIT_ARCH"
#endif
	struct sock_filter code[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, arch, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_memfd_create, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ((uint32_t)err & SECCOMP_RET_DATA)),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { .len = sizeof(code) / sizeof(code[0]), .filter = code };

	RCHECK(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0);
	RCHECK(prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) == 0);
	RCHECK(syscall(__NR_memfd_create, "probe", 0) < 0 && errno == err);
}

/* The descriptor limit that leaves exactly free new descriptors. */
static int limit_leaving(int free)
{
	int fd = 0;

	for (; free > 0; fd++)
		free -= fcntl(fd, F_GETFD) < 0;
	return fd;
}

static void side_apply(const struct side *s)
{
	if (s->regdir)
		setenv("USMC_REGISTRY_DIR", s->regdir, 1);
	if (s->memfd_errno)
		install_memfd_filter(s->memfd_errno);
}

/* After the listener exists: a server with no room for it is no server. */
static void side_limit(const struct side *s)
{
	if (s->nofile_extra) {
		struct rlimit rl;

		RCHECK(getrlimit(RLIMIT_NOFILE, &rl) == 0);
		rl.rlim_cur = (rlim_t)limit_leaving(s->nofile_extra);
		RCHECK(setrlimit(RLIMIT_NOFILE, &rl) == 0);
	}
}

/* ---- server ---- */

static void serve_one(int fd)
{
	uint8_t buf[PAYLOAD_MAX];
	uint32_t hdr[2];
	uint64_t sum;

	h_read_all(fd, hdr, sizeof(hdr));
	RCHECK(hdr[1] == payload_len(hdr[0]));
	h_read_all(fd, buf, hdr[1]);
	sum = h_fnv(H_FNV_INIT, buf, hdr[1]);
	RCHECK(sum == payload_sum(hdr[0]));
	h_write_all(fd, &sum, sizeof(sum));
}

/* Accepts; at EMFILE, as a careful server does, lets its oldest connection go. */
static int accept_or_shed(int lfd, int *held, int *nheld, struct tally *t)
{
	for (;;) {
		int fd = usmc_accept(lfd, NULL, NULL);

		if (fd >= 0)
			return fd;
		RCHECK(errno == EMFILE && *nheld > 0);
		t->refused++;
		RCHECK(usmc_close(held[0]) == 0);
		memmove(held, held + 1, (size_t)--*nheld * sizeof(*held));
	}
}

static int server(void *arg)
{
	struct setup *st = arg;
	int *held = calloc((size_t)st->nconns, sizeof(int)), nheld = 0, lfd;
	struct tally t = { 0 };

	RCHECK(held);
	side_apply(&st->server);
	lfd = h_listen(AF_INET, st->server.kind, &st->port);
	side_limit(&st->server);
	h_chan_send(&to_parent, st->port);
	for (int i = 0; i < st->nconns; i++) {
		int fd = accept_or_shed(lfd, held, &nheld, &t);

		tally_add(&t, fd);
		held[nheld++] = fd;
		if (!st->concurrent)
			serve_one(fd);
	}
	for (int i = 0; st->concurrent && i < nheld; i++)
		serve_one(held[i]);
	for (int i = 0; i < nheld; i++)
		RCHECK(usmc_close(held[i]) == 0);
	RCHECK(usmc_close(lfd) == 0);
	tally_print("server", &t);
	fflush(stdout);
	tally_check(&t, &st->server);
	free(held);
	return 0;
}

/* ---- client ---- */

static void client_send(int fd, uint32_t index)
{
	uint8_t buf[PAYLOAD_MAX];
	uint32_t hdr[2] = { index, payload_len(index) };

	h_pattern(buf, hdr[1], index, 0);
	h_write_all(fd, hdr, sizeof(hdr));
	h_write_all(fd, buf, hdr[1]);
}

static void client_check(int fd, uint32_t index)
{
	uint64_t sum;

	h_read_all(fd, &sum, sizeof(sum));
	RCHECK(sum == payload_sum(index));
}

/* A connection, or -1 where TCP itself refuses: socket() at EMFILE. */
static int client_connect(const struct setup *st, struct tally *t)
{
	int fd = st->client.kind == H_USMC ? usmc_socket(AF_INET, SOCK_STREAM, IPPROTO_SMC)
					   : socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(st->port),
				   .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };

	if (fd < 0) {
		RCHECK(errno == EMFILE);
		t->refused++;
		return -1;
	}
	/* connect() makes no descriptor in TCP: whatever usmc needs must not make it fail. */
	RCHECK(usmc_connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0);
	return fd;
}

/* Runs the connections; returns how many were made. */
static int client_run(const struct setup *st, struct tally *t)
{
	int *fds = calloc((size_t)st->nconns, sizeof(int)), made = 0;

	RCHECK(fds);
	for (int i = 0; i < st->nconns; i++) {
		fds[i] = client_connect(st, t);
		if (fds[i] < 0)
			break;
		made++;
		if (!st->concurrent) {
			client_send(fds[i], (uint32_t)i);
			client_check(fds[i], (uint32_t)i);
			tally_add(t, fds[i]);
		}
	}
	for (int i = 0; st->concurrent && i < made; i++)
		client_send(fds[i], (uint32_t)i);
	for (int i = 0; st->concurrent && i < made; i++) {
		client_check(fds[i], (uint32_t)i);
		tally_add(t, fds[i]);
	}
	for (int i = 0; i < made; i++)
		RCHECK(usmc_close(fds[i]) == 0);
	free(fds);
	return made;
}

static int client(void *arg)
{
	struct setup *st = arg;
	struct tally t = { 0 };
	int made;

	side_apply(&st->client);
	side_limit(&st->client);
	made = client_run(st, &t);
	tally_print(st->client.kind == H_USMC ? "usmc client" : "plain client", &t);
	h_chan_send(&to_parent, (uint64_t)made);
	fflush(stdout);
	tally_check(&t, &st->client);
	return 0;
}

/*
 * One client against one server.  A client that stops at EMFILE leaves
 * the server waiting for connections that never come: a plain connection
 * for each of those, made here, lets it finish.
 */
static int run_pair(struct setup *st)
{
	pid_t srv = h_fork(server, st), cli;
	int made;

	st->port = (uint16_t)h_chan_recv(&to_parent);
	cli = h_fork(client, st);
	fprintf(stderr, "server %d, client %d\n", (int)srv, (int)cli);
	made = (int)h_chan_recv(&to_parent);
	robust_reap_ok(cli);
	for (int i = made; i < st->nconns; i++) {
		int fd = h_connect(AF_INET, H_PLAIN, st->port);

		client_send(fd, (uint32_t)i);
		client_check(fd, (uint32_t)i);
		RCHECK(close(fd) == 0);
	}
	robust_reap_ok(srv);
	return made;
}

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

#define ALLOW(list) .allowed = list, .nallowed = (int)(sizeof(list) / sizeof(list[0]))

/*
 * Each limit from one free descriptor up: usmc connections where TCP ones
 * fit, minus the descriptors usmc keeps: the link group's channel, the
 * socket table usmc-stat reads, our segment's two memfds (its read-only
 * copy for the peer while the handshake runs) and the peer's segment.
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
		RCHECK(made_usmc <= made_tcp && made_usmc >= made_tcp - 6);
	}
}

static void case_nofile_server(void)
{
	/* Past 15 connections the server needs a second segment, and a descriptor for it. */
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
 * The client's close must have waited for that answer and replayed its
 * bytes into TCP.
 */
static struct h_chan closing;

static int close_early_server(void *arg)
{
	struct side *srv = arg;
	uint16_t port;
	int lfd, fd;

	side_apply(srv);
	lfd = h_listen(AF_INET, H_USMC, &port);
	h_chan_send(&to_parent, port);
	h_chan_recv(&closing);
	fd = usmc_accept(lfd, NULL, NULL);
	RCHECK(fd >= 0);
	serve_one(fd);
	h_check_mode(fd, USMC_MODE_FALLBACK);
	RCHECK(usmc_close(fd) == 0 && usmc_close(lfd) == 0);
	return 0;
}

static void case_close_early(void)
{
	struct side srv = { H_USMC, .memfd_errno = EPERM };
	struct usmc_info info;
	pid_t pid;
	int fd;

	/* Long, so that the server's accept surely comes inside the close. */
	setenv("USMC_CLC_TIMEOUT_MS", "20000", 1);
	h_chan_open(&closing);
	pid = h_fork(close_early_server, &srv);
	fd = h_connect(AF_INET, H_USMC, (uint16_t)h_chan_recv(&to_parent));
	client_send(fd, 7);
	RCHECK(usmc_info(fd, &info, sizeof(info)) == 0 && info.mode == USMC_MODE_HANDSHAKE);
	h_chan_send(&closing, 1);
	RCHECK(usmc_close(fd) == 0);
	RCHECK(h_wait_ok(pid));
	printf("closed before the answer, server declined: bytes replayed into TCP\n");
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
	else if (!strncmp(c, "memfd_", 6))
		case_memfd(strstr(c, "client") != NULL, strstr(c, "eperm") ? EPERM : ENOSYS);
	else if (!strcmp(c, "registry"))
		case_registry();
	else if (!strcmp(c, "close_early"))
		case_close_early();
	else if (!strcmp(c, "many"))
		case_many(argc > 3 ? atoi(argv[3]) : 10000);
	else {
		fprintf(stderr, "usage: exhaust --case nofile_client|nofile_server|memfd_{client,server}_"
				"{eperm,enosys}|registry|close_early|many [N]\n");
		return 2;
	}
	printf("%s: every connection fell back or failed as TCP does, bytes exact: ok\n", c);
	return 0;
}
