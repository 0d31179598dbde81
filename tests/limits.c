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

	if (unshare(CLONE_NEWNS) || mount("none", "/", NULL, MS_REC | MS_PRIVATE, NULL)) {
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
	snprintf(path, sizeof(path), "%s/usmc-%u-%lu.2", dir, (unsigned)getuid(),
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
	private_tmpfs(sparse, "2m");
	sparse_files(sparse);
	fill(sparse);
	pair_both_servers(sparse, false, "sparse registry and counters, tmpfs full");
	/* Made while there was room: its pages are there, so a full tmpfs changes nothing. */
	private_tmpfs(early, "2m");
	pair_both_servers(early, true, "registry made with room");
	fill(early);
	pair_both_servers(early, true, "registry made with room, tmpfs full since");
	printf("a full tmpfs: fallback with a reason, no signal, bytes exact\n");
}

/* ---- descriptors ---- */

static const uint32_t no_fd[] = { USMC_DECL_ENV, USMC_DECL_MEM, USMC_DECL_PEERNOSMC,
				  USMC_DECL_PEERDECL };

/*
 * n connections open at once at a descriptor limit that TCP fits in with
 * room to spare and usmc only if it keeps few descriptors of its own:
 * those that do not fit fall back before their first byte, and no
 * connection fails.
 */
static void case_nofile(int n, int limit)
{
	struct setup st = { .client = { H_USMC, .nofile = limit, .smc_ok = true, ALLOW(no_fd) },
			    .server = { H_USMC, .nofile = limit, .smc_ok = true, ALLOW(no_fd) },
			    .nconns = n, .concurrent = true };
	struct rlimit rl;

	RCHECK(getrlimit(RLIMIT_NOFILE, &rl) == 0);
	if (rl.rlim_max < (rlim_t)limit) {
		printf("skipped: RLIMIT_NOFILE hard limit %llu < %d\n",
		       (unsigned long long)rl.rlim_max, limit);
		exit(SKIP);
	}
	printf("%d connections at RLIMIT_NOFILE %d:\n", n, limit);
	RCHECK(run_pair(&st) == n);
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
	} else if (!strcmp(c, "nofile") && argc > 4) {
		case_nofile(atoi(argv[3]), atoi(argv[4]));
	} else {
		fprintf(stderr, "usage: limits --case shm_full | nofile CONNS LIMIT\n");
		return 2;
	}
	printf("%s: ok\n", c);
	return 0;
}
