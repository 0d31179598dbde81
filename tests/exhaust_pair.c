// SPDX-License-Identifier: MIT
/* A client and a server under limits, connections checked (exhaust_pair.h). */
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
#include <sys/syscall.h>

#include "exhaust_pair.h"

#define PAYLOAD_MAX 5000

struct h_chan to_parent;

static void tally_add(struct tally *t, int fd)
{
	struct usmc_info info;
	int i;

	RCHECK(usmc_info(fd, &info, sizeof(info)) == 0);
	if (info.mode == USMC_MODE_SMCD) {
		t->smc++;
		for (i = 0; i < t->nlgrs && i < 64 && t->lgrs[i] != info.lgr_id; i++)
			;
		if (i == t->nlgrs && i < 64)
			t->lgrs[i] = info.lgr_id;
		if (i == t->nlgrs)
			t->nlgrs++;
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
	printf("  %s: %d shared memory (%d link group%s), %d fallback, %d refused (EMFILE)\n", who,
	       t->smc, t->nlgrs, t->nlgrs == 1 ? "" : "s", t->fallback, t->refused);
	for (int i = 0; i < 8 && t->reason_count[i]; i++)
		printf("    %5d x 0x%08x %s\n", t->reason_count[i], t->reasons[i],
		       usmc_reason_str(t->reasons[i]));
}

/* What a side saw must be what its case allows. */
static void tally_check(const struct tally *t, const struct side *s, bool prefork)
{
	RCHECK(s->smc_ok || t->smc == 0);
	/*
	 * A link group takes over 200 Proposals before the next is made; a
	 * connection to a prefork server has one of its own.
	 */
	RCHECK(prefork || t->nlgrs <= 1 + t->smc / 200);
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

void side_apply(const struct side *s)
{
	if (s->cgroup) {
		char path[512];
		FILE *f;

		snprintf(path, sizeof(path), "%s/cgroup.procs", s->cgroup);
		f = fopen(path, "we");
		RCHECK(f && fprintf(f, "%d\n", (int)getpid()) > 0 && fclose(f) == 0);
	}
	if (s->nofile > 0) {
		struct rlimit rl;

		RCHECK(getrlimit(RLIMIT_NOFILE, &rl) == 0);
		rl.rlim_cur = (rlim_t)s->nofile;
		RCHECK(setrlimit(RLIMIT_NOFILE, &rl) == 0);
	}
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

void serve_one(int fd)
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

/* Accepts the case's connections from lfd, and answers each. */
static int serve(struct setup *st, int lfd)
{
	int *held = calloc((size_t)st->nconns, sizeof(int)), nheld = 0;
	struct tally t = { 0 };

	RCHECK(held);
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
	tally_check(&t, &st->server, st->prefork);
	free(held);
	return 0;
}

/* A prefork server's worker: it accepts from the listener its parent made. */
static int worker(void *arg)
{
	struct setup *st = arg;

	return serve(st, st->lfd);
}

static int server(void *arg)
{
	struct setup *st = arg;
	int lfd;

	side_apply(&st->server);
	lfd = h_listen(AF_INET, st->server.kind, &st->port);
	side_limit(&st->server);
	if (st->prefork) {
		pid_t pid;

		st->lfd = lfd;
		pid = h_fork(worker, st);
		h_chan_send(&to_parent, st->port);
		robust_reap_ok(pid);
		RCHECK(usmc_close(lfd) == 0);
		return 0;
	}
	h_chan_send(&to_parent, st->port);
	return serve(st, lfd);
}

/* ---- client ---- */

void client_send(int fd, uint32_t index)
{
	uint8_t buf[PAYLOAD_MAX];
	uint32_t hdr[2] = { index, payload_len(index) };

	h_pattern(buf, hdr[1], index, 0);
	h_write_all(fd, hdr, sizeof(hdr));
	h_write_all(fd, buf, hdr[1]);
}

void client_check(int fd, uint32_t index)
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
		/* All at once: the server would wait for the rest, and we for its answers. */
		if (st->concurrent)
			fprintf(stderr, "socket() refused before all connections were open\n");
		RCHECK(!st->concurrent);
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
	/* What the program still gets for itself, past usmc's own calls. */
	for (int fd; st->count_files && (fd = dup(0)) >= 0;)
		t->files++;
	RCHECK(!st->count_files || errno == EMFILE);
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
	if (st->count_files)
		h_chan_send(&to_parent, (uint64_t)t.files);
	fflush(stdout);
	tally_check(&t, &st->client, st->prefork);
	return 0;
}

/*
 * One client against one server.  A client that stops at EMFILE leaves
 * the server waiting for connections that never come: a plain connection
 * for each of those, made here, lets it finish.
 */
int run_pair(struct setup *st)
{
	pid_t srv = h_fork(server, st), cli;
	int made;

	st->port = (uint16_t)h_chan_recv(&to_parent);
	cli = h_fork(client, st);
	fprintf(stderr, "server %d, client %d\n", (int)srv, (int)cli);
	made = (int)h_chan_recv(&to_parent);
	if (st->count_files)
		st->files = (int)h_chan_recv(&to_parent);
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
