// SPDX-License-Identifier: MIT
/*
 * Limits a connection meets on a real host: a full tmpfs under the
 * registry and counters, a descriptor limit near the connection count, a
 * memory cgroup.  usmc falls back to TCP with a reason where it cannot
 * have shared memory, never dies of a signal, and every byte arrives.
 *
 *   limits --case shm_full      USMC_REGISTRY_DIR on a small tmpfs filled to
 *                               the brim (needs root: a private mount namespace)
 *   limits --case nofile N L    N connections at once, RLIMIT_NOFILE L on both sides
 *   limits --case nofile_prefork N L   the same, accepted by a forked worker of the
 *                               server (its listener shared: a prefork server)
 *   limits --case full_table    the client's descriptor table filled before the Accept
 *   limits --case memcg         8 MiB rings in a memory cgroup (v2, else v1) that
 *                               holds TCP's buffers, not all rings (needs root)
 *   limits --case memcg_later   a limit set on a cgroup that had none, seen by the
 *                               next ring's charge a second later (needs root)
 *
 * Exit 77: the host cannot run the case (printed why).
 */
#include <fcntl.h>
#include <sched.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "exhaust_pair.h"
#include "usmc_stats.h"

#define SKIP 77

/* ---- a full tmpfs ---- */

static const uint32_t no_registry[] = { USMC_DECL_ENV, USMC_DECL_PEERNOSMC };

/* A tmpfs of size bytes in a mount namespace of our own, or exit 77. */
static void private_tmpfs(char *dir, const char *size)
{
	char opts[64];

	if (unshare(CLONE_NEWNS) || mount("none", "/", "none", MS_REC | MS_PRIVATE, NULL)) {
		printf("skipped: no private mount namespace here (%s): needs root\n", strerror(errno));
		exit(SKIP);
	}
	RCHECK(mkdtemp(dir));
	snprintf(opts, sizeof(opts), "size=%s,mode=0700", size);
	RCHECK(mount("tmpfs", dir, "tmpfs", 0, opts) == 0);
}

/* Fills the file system of dir to its last page. */
static void fill(const char *dir)
{
	static char block[65536];
	char path[300];
	size_t chunk = sizeof(block);
	int fd;

	snprintf(path, sizeof(path), "%s/filler", dir);
	fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0600);
	RCHECK(fd >= 0);
	while (chunk) {
		if (write(fd, block, chunk) < 0) {
			RCHECK(errno == ENOSPC);
			chunk /= 2;
		}
	}
	RCHECK(close(fd) == 0);
}

/* The registry and counters files, as a process that never touched them leaves them: sparse. */
static void sparse_files(const char *dir)
{
	char path[300];
	struct stat st;
	int fd;

	RCHECK(stat("/proc/self/ns/net", &st) == 0);
	snprintf(path, sizeof(path), "%s/usmc-%u-%lu.6", dir, (unsigned)getuid(),
		 (unsigned long)st.st_ino);
	fd = open(path, O_RDWR | O_CREAT, 0600);
	RCHECK(fd >= 0 && ftruncate(fd, 1 << 20) == 0 && close(fd) == 0);
	setenv("USMC_REGISTRY_DIR", dir, 1);
	usmc_stats_path(path, sizeof(path), (unsigned)getuid());
	fd = open(path, O_RDWR | O_CREAT, 0600);
	RCHECK(fd >= 0 && ftruncate(fd, 1 << 20) == 0 && close(fd) == 0);
}

static void pair_both_servers(const char *dir, bool smc, const char *what)
{
	for (int plain = 0; plain < 2; plain++) {
		struct side cli = { H_USMC, .regdir = dir, .smc_ok = smc, ALLOW(no_registry) };
		struct side srv = { plain ? H_PLAIN : H_USMC, .regdir = dir, .smc_ok = smc,
				    ALLOW(no_registry) };
		struct setup st = { .client = cli, .server = srv, .nconns = 20 };

		if (smc && !plain)
			st.client.nallowed = st.server.nallowed = 0;
		printf("%s, %s server:\n", what, plain ? "plain" : "usmc");
		RCHECK(run_pair(&st) == st.nconns);
	}
}

static void case_shm_full(void)
{
	char empty[] = "/tmp/usmc-full-XXXXXX", sparse[] = "/tmp/usmc-sparse-XXXXXX";
	char early[] = "/tmp/usmc-early-XXXXXX";

	private_tmpfs(empty, "256k");
	fill(empty);
	pair_both_servers(empty, false, "registry on a full tmpfs");
	private_tmpfs(sparse, "4m");
	sparse_files(sparse);
	fill(sparse);
	pair_both_servers(sparse, false, "sparse registry and counters, tmpfs full");
	/* Made while there was room: its pages are there, so a full tmpfs changes nothing. */
	private_tmpfs(early, "4m");
	pair_both_servers(early, true, "registry made with room");
	fill(early);
	pair_both_servers(early, true, "registry made with room, tmpfs full since");
	printf("a full tmpfs: fallback with a reason, no signal, bytes exact\n");
}

/* ---- descriptors ---- */

static const uint32_t no_fd[] = { USMC_DECL_ENV, USMC_DECL_MEM, USMC_DECL_PEERNOSMC,
				  USMC_DECL_PEERDECL };

/*
 * n connections open at once at a descriptor limit that plain TCP fits in
 * (which is run first, to show it): usmc fits too, whatever its segments
 * hold, as long as the limit leaves it its few fixed descriptors.  Those
 * that do not get a segment fall back before their first byte; when the
 * table fills, the segments' descriptors go to the program's socket()
 * and accept(); no connection fails.  With prefork, a forked worker
 * accepts them, finding each Proposal in the backlog it shares with its
 * parent.
 */
static void case_nofile(int n, int limit, bool prefork)
{
	struct setup st = { .client = { H_USMC, .nofile = limit, .smc_ok = true, ALLOW(no_fd) },
			    .server = { H_USMC, .nofile = limit, .smc_ok = true, ALLOW(no_fd) },
			    .nconns = n, .concurrent = true, .prefork = prefork };
	struct setup tcp;
	struct rlimit rl;

	RCHECK(getrlimit(RLIMIT_NOFILE, &rl) == 0);
	if (rl.rlim_max < (rlim_t)limit) {
		printf("skipped: RLIMIT_NOFILE hard limit %llu < %d\n",
		       (unsigned long long)rl.rlim_max, limit);
		exit(SKIP);
	}
	/*
	 * A client of a prefork server keeps a channel and its spare for each
	 * connection in shared memory, which TCP does not: room for them, so
	 * that the server's table is the one that fills.
	 */
	if (prefork)
		st.client.nofile = rl.rlim_max < (rlim_t)(16 * n) ? (int)rl.rlim_max : 16 * n;
	tcp = st;
	tcp.client.kind = tcp.server.kind = H_PLAIN;
	printf("%d plain TCP connections at RLIMIT_NOFILE %d:\n", n, limit);
	RCHECK(run_pair(&tcp) == n);
	printf("%d connections at RLIMIT_NOFILE %d:\n", n, limit);
	RCHECK(run_pair(&st) == n);
}

/*
 * The descriptor table filled between the Proposal and its Accept, which
 * brings the server's new segment: the descriptor kept for it takes it,
 * and the connection goes on, whatever its mode, every byte checked.
 */
static int full_table_server(void *arg)
{
	uint16_t port;
	int lfd = h_listen(AF_INET, H_USMC, &port), fd;

	(void)arg;
	h_chan_send(&to_parent, port);
	RCHECK((fd = usmc_accept(lfd, NULL, NULL)) >= 0);
	serve_one(fd);
	RCHECK(usmc_close(fd) == 0 && usmc_close(lfd) == 0);
	return 0;
}

static void case_full_table(void)
{
	struct rlimit rl = { 256, 256 };
	pid_t srv = h_fork(full_table_server, NULL);
	int fd, n = 0;
	struct usmc_info info;

	RCHECK(setrlimit(RLIMIT_NOFILE, &rl) == 0);
	fd = h_connect(AF_INET, H_USMC, (uint16_t)h_chan_recv(&to_parent));
	while (dup(0) >= 0)
		n++;
	RCHECK(errno == EMFILE);
	client_send(fd, 1);
	client_check(fd, 1);
	RCHECK(usmc_info(fd, &info, sizeof(info)) == 0);
	printf("descriptor table filled (%d more) before the answer: mode %s, reason 0x%08x\n", n,
	       usmc_mode_str(info.mode), info.fallback_reason);
	RCHECK(info.mode == USMC_MODE_SMCD);
	RCHECK(usmc_close(fd) == 0);
	robust_reap_ok(srv);
}

/* ---- a memory cgroup ---- */

#define MEMCG_CONNS 8
#define MEMCG_BYTES (16u << 20) /* per connection: twice its 8 MiB ring */
#define MEMCG_MAX (48u << 20)
/*
 * What the client goes on to allocate once its connections are up: the
 * reserve a cgroup keeps from rings (an eighth of memory.max, 6 MiB here),
 * less a piece (256 KiB) that each side may charge in a race.
 */
#define MEMCG_GROW ((6u << 20) - (512u << 10))

static char memcg_dir[512];

static bool write_file(const char *dir, const char *name, const char *text)
{
	char path[600];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "we");
	return f && fputs(text, f) >= 0 && fclose(f) == 0;
}

/* Where a cgroup hierarchy of type (cgroup2, or cgroup with option opt) is mounted, or "". */
static void cgroup_mount(const char *want_type, const char *opt, char *mnt, size_t len)
{
	char line[1024], type[64], point[256], super[512];
	FILE *f = fopen("/proc/self/mountinfo", "re");

	mnt[0] = 0;
	while (f && !mnt[0] && fgets(line, sizeof(line), f)) {
		const char *dash = strstr(line, " - ");

		if (!dash || sscanf(dash + 3, "%63s %*s %511s", type, super) != 2 ||
		    strcmp(type, want_type) || (opt && !strstr(super, opt)) ||
		    sscanf(line, "%*s %*s %*s %*s %255s", point) != 1)
			continue;
		snprintf(mnt, len, "%s", point);
	}
	if (f)
		fclose(f);
}

static bool memcg_v1; /* memory.limit_in_bytes and memory.oom_control, not v2's files */

/*
 * A memory cgroup of max bytes under the root of the memory controller's
 * hierarchy, v2 or else v1 (as on hosts that still mount it), or exit 77
 * saying why.
 */
static void memcg_create(uint64_t max)
{
	char mnt[256], ctl[256] = "", path[600], text[32];
	FILE *f;

	cgroup_mount("cgroup2", NULL, mnt, sizeof(mnt));
	snprintf(path, sizeof(path), "%s/cgroup.controllers", mnt);
	f = mnt[0] ? fopen(path, "re") : NULL;
	if (f && !fgets(ctl, sizeof(ctl), f))
		ctl[0] = 0;
	if (f)
		fclose(f);
	if (!strstr(ctl, "memory")) {
		cgroup_mount("cgroup", "memory", mnt, sizeof(mnt));
		if (!mnt[0]) {
			printf("skipped: no memory controller here, in cgroup v2 or v1\n");
			exit(SKIP);
		}
		memcg_v1 = true;
	} else {
		write_file(mnt, "cgroup.subtree_control", "+memory");
	}
	snprintf(memcg_dir, sizeof(memcg_dir), "%s/usmc-limits-%d", mnt, (int)getpid());
	snprintf(text, sizeof(text), "%llu", (unsigned long long)max);
	if (mkdir(memcg_dir, 0755) ||
	    !write_file(memcg_dir, memcg_v1 ? "memory.limit_in_bytes" : "memory.max", text)) {
		printf("skipped: cannot make a memory cgroup in %s (%s): needs root\n", mnt,
		       strerror(errno));
		rmdir(memcg_dir);
		exit(SKIP);
	}
	if (memcg_v1)
		write_file(memcg_dir, "memory.memsw.limit_in_bytes", text); /* where swap is counted */
	else
		write_file(memcg_dir, "memory.swap.max", "0");
	printf("memory cgroup %s (v%d), %llu bytes\n", memcg_dir, memcg_v1 ? 1 : 2,
	       (unsigned long long)max);
}

static uint64_t memcg_oom_kills(void)
{
	char path[600], line[128];
	unsigned long long n = 0;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", memcg_dir,
		 memcg_v1 ? "memory.oom_control" : "memory.events");
	f = fopen(path, "re");
	RCHECK(f);
	while (fgets(line, sizeof(line), f))
		sscanf(line, "oom_kill %llu", &n);
	fclose(f);
	return n;
}

/* The cgroup's memory in use now, by the kernel's count. */
static uint64_t memcg_usage(void)
{
	char path[600];
	unsigned long long n = 0;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", memcg_dir,
		 memcg_v1 ? "memory.usage_in_bytes" : "memory.current");
	f = fopen(path, "re");
	RCHECK(f && fscanf(f, "%llu", &n) == 1);
	fclose(f);
	return n;
}

static void memcg_join(void)
{
	char pid[16];

	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	RCHECK(write_file(memcg_dir, "cgroup.procs", pid));
}

static int memcg_mode(int fd, enum h_kind kind)
{
	struct usmc_info info;

	if (kind == H_PLAIN)
		return 0;
	RCHECK(usmc_info(fd, &info, sizeof(info)) == 0);
	/*
	 * Shared memory, or fallback for want of memory: this side's, the
	 * peer's decline, or a client that had no room and so proposed nothing.
	 */
	RCHECK(info.mode == USMC_MODE_SMCD ||
	       (info.mode == USMC_MODE_FALLBACK && (info.fallback_reason == USMC_DECL_MEM ||
						     info.fallback_reason == USMC_DECL_PEERNOSMC)));
	return info.mode == USMC_MODE_SMCD;
}

/*
 * The application's memory grows after its connections are up, with its
 * rings still held: what it would have had under TCP must still be there.
 */
static void memcg_grow(void)
{
	volatile uint8_t *more = malloc(MEMCG_GROW);

	RCHECK(more);
	for (size_t i = 0; i < MEMCG_GROW; i += 4096)
		more[i] = 1;
	free((void *)more);
}

static uint16_t memcg_port;

static int memcg_server(void *arg)
{
	enum h_kind kind = *(enum h_kind *)arg;
	int lfd, fds[MEMCG_CONNS], smc = 0;
	uint8_t *buf = malloc(1 << 20);

	RCHECK(buf);
	memcg_join();
	memset(buf, 0, 1 << 20); /* the application's memory before its connections */
	lfd = h_listen(AF_INET, kind, &memcg_port);
	h_chan_send(&to_parent, memcg_port);
	for (int i = 0; i < MEMCG_CONNS; i++)
		RCHECK((fds[i] = usmc_accept(lfd, NULL, NULL)) >= 0);
	for (int i = 0; i < MEMCG_CONNS; i++) {
		uint64_t sum = H_FNV_INIT;

		for (uint32_t off = 0; off < MEMCG_BYTES; off += 1 << 20) {
			h_read_all(fds[i], buf, 1 << 20);
			sum = h_fnv(sum, buf, 1 << 20);
		}
		h_write_all(fds[i], &sum, sizeof(sum));
		smc += memcg_mode(fds[i], kind);
	}
	for (int i = 0; i < MEMCG_CONNS; i++)
		RCHECK(usmc_close(fds[i]) == 0);
	printf("  server: %d of %d in shared memory\n", smc, MEMCG_CONNS);
	fflush(stdout);
	return 0;
}

static int memcg_client(void *arg)
{
	enum h_kind kind = *(enum h_kind *)arg;
	int fds[MEMCG_CONNS], smc = 0, fallback = 0;
	uint8_t *buf = malloc(1 << 20);

	RCHECK(buf);
	memcg_join();
	memset(buf, 0, 1 << 20);
	for (int i = 0; i < MEMCG_CONNS; i++)
		fds[i] = h_connect(AF_INET, kind, memcg_port);
	for (int i = 0; i < MEMCG_CONNS; i++) {
		uint64_t sum = H_FNV_INIT, got;

		for (uint32_t off = 0; off < MEMCG_BYTES; off += 1 << 20) {
			h_pattern(buf, 1 << 20, (uint64_t)i, off);
			sum = h_fnv(sum, buf, 1 << 20);
			h_write_all(fds[i], buf, 1 << 20);
		}
		h_read_all(fds[i], &got, sizeof(got));
		RCHECK(got == sum);
		if (memcg_mode(fds[i], kind))
			smc++;
		else
			fallback += kind == H_USMC;
	}
	/*
	 * The kernel's count says the room is there before it is taken: a
	 * cgroup a little over its limit may still get by through reclaim,
	 * which would hide a reserve too small.
	 */
	printf("  in use before growing: %llu KiB\n", (unsigned long long)memcg_usage() >> 10);
	RCHECK(kind == H_PLAIN || memcg_usage() + MEMCG_GROW <= MEMCG_MAX);
	memcg_grow();
	for (int i = 0; i < MEMCG_CONNS; i++)
		RCHECK(usmc_close(fds[i]) == 0);
	printf("  client: %d of %d in shared memory, %d fell back (0x%08x)\n", smc, MEMCG_CONNS,
	       fallback, USMC_DECL_MEM);
	fflush(stdout);
	/* The rings of all of them cannot fit: some must have fallen back. */
	RCHECK(kind == H_PLAIN || fallback > 0);
	return 0;
}

/*
 * Connections of 8 MiB rings, all open at once, in a cgroup whose
 * memory.max holds TCP's buffers but not every ring: TCP first, then
 * usmc, which must fall back for the rings that do not fit, not be killed,
 * and leave both sides room to grow by what they could under TCP.
 */
static void case_memcg(void)
{
	for (int k = 0; k < 2; k++) {
		enum h_kind kind = k ? H_USMC : H_PLAIN;
		pid_t srv, cli;

		memcg_create(MEMCG_MAX);
		printf("%s: %d connections of %u MiB, memory.max %u MiB:\n", k ? "usmc" : "plain TCP",
		       MEMCG_CONNS, MEMCG_BYTES >> 20, MEMCG_MAX >> 20);
		fflush(stdout);
		srv = h_fork(memcg_server, &kind);
		memcg_port = (uint16_t)h_chan_recv(&to_parent);
		cli = h_fork(memcg_client, &kind);
		robust_reap_ok(cli);
		robust_reap_ok(srv);
		printf("  OOM kills: %llu\n", (unsigned long long)memcg_oom_kills());
		RCHECK(memcg_oom_kills() == 0);
		RCHECK(rmdir(memcg_dir) == 0);
	}
}

/*
 * A cgroup without a limit is looked at once a second (usmc_charge.c): a
 * limit set meanwhile must be seen by the first charge after that second.
 * One connection while there is none; then a limit that leaves room for
 * a ring but not beyond the reserve kept for the application; a second
 * later, the next connection's ring (the next slot of the same segment,
 * charged only now) must not be charged: the client falls back for want
 * of memory, with no OOM kill.
 */
static int memcg_later_child(void *arg)
{
	uint64_t limit;
	struct usmc_info info;
	char text[32], b;
	uint16_t port;
	int lfd, c1, s1, c2, s2;

	(void)arg;
	memcg_join();
	lfd = h_listen(AF_INET, H_USMC, &port);
	h_smc_pair(lfd, port, &c1, &s1);
	/* Room for an 8 MiB ring, but not beyond the reserve of an eighth (at least 4 MiB). */
	limit = memcg_usage() + (10u << 20);
	snprintf(text, sizeof(text), "%llu", (unsigned long long)limit);
	RCHECK(write_file(memcg_dir, memcg_v1 ? "memory.limit_in_bytes" : "memory.max", text));
	usleep(1100 * 1000);
	c2 = h_connect(AF_INET, H_USMC, port);
	RCHECK((s2 = usmc_accept(lfd, NULL, NULL)) >= 0);
	h_write_all(s2, "y", 1);
	h_read_all(c2, &b, 1);
	RCHECK(b == 'y');
	RCHECK(usmc_info(c2, &info, sizeof(info)) == 0);
	printf("  limit %llu KiB set a second ago: second connection %s (0x%08x)\n",
	       (unsigned long long)limit >> 10,
	       info.mode == USMC_MODE_SMCD ? "in shared memory" : "fell back", info.fallback_reason);
	fflush(stdout);
	RCHECK(info.mode == USMC_MODE_FALLBACK && info.fallback_reason == USMC_DECL_MEM);
	for (int fd = 0, fds[] = { c1, s1, c2, s2, lfd }; fd < 5; fd++)
		RCHECK(usmc_close(fds[fd]) == 0);
	return 0;
}

static void case_memcg_later(void)
{
	/* No limit yet: written as the largest count (v1) or "max" (v2). */
	memcg_create(UINT64_MAX >> 1);
	RCHECK(write_file(memcg_dir, memcg_v1 ? "memory.limit_in_bytes" : "memory.max",
			  memcg_v1 ? "-1" : "max"));
	robust_reap_ok(h_fork(memcg_later_child, NULL));
	printf("  OOM kills: %llu\n", (unsigned long long)memcg_oom_kills());
	RCHECK(memcg_oom_kills() == 0);
	RCHECK(rmdir(memcg_dir) == 0);
}

int main(int argc, char **argv)
{
	const char *c = argc > 2 && !strcmp(argv[1], "--case") ? argv[2] : "";

	robust_seed = 0;
	/* A safety bound: a child that died leaves its parent waiting for its word. */
	alarm(60);
	h_chan_open(&to_parent);
	setenv("USMC_CLC_TIMEOUT_MS", "2000", 1);
	if (!strcmp(c, "shm_full")) {
		case_shm_full();
	} else if (!strcmp(c, "memcg") || !strcmp(c, "memcg_later")) {
		setenv("USMC_BUFSIZE", "8388608", 1);
		(strcmp(c, "memcg") ? case_memcg_later : case_memcg)();
	} else if (!strcmp(c, "full_table")) {
		case_full_table();
	} else if ((!strcmp(c, "nofile") || !strcmp(c, "nofile_prefork")) && argc > 4) {
		case_nofile(atoi(argv[3]), atoi(argv[4]), !strcmp(c, "nofile_prefork"));
	} else {
		fprintf(stderr, "usage: limits --case shm_full | nofile CONNS LIMIT | "
				"nofile_prefork CONNS LIMIT | full_table | memcg | memcg_later\n");
		return 2;
	}
	printf("%s: ok\n", c);
	return 0;
}
