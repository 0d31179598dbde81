// SPDX-License-Identifier: MIT
/*
 * A network namespace of its own for each connection-rate measurement.
 *
 * Every short connection leaves a TIME_WAIT socket for a minute, and the
 * kernel's table of them is shared by the namespace: a measurement that
 * follows others starts with tens of thousands of them, up to the table's
 * limit, past which closes skip TIME_WAIT and get cheaper.  What one
 * transport's rate meant would then depend on what ran before it.  In a
 * fresh namespace each measurement starts from none.
 *
 * A namespace is kept (by a descriptor) for longer than a TIME_WAIT lives
 * (60 s: 256 measurements of at least a quarter second), so that the
 * kernel tears it down empty, rather than during a later measurement.
 * Without the privilege to make one, the benchmark stays in its own
 * namespace, on a fresh port per measurement.
 *
 * USMC_BENCH_NETNS="SERVER_NS CLIENT_NS ADDR" measures between two
 * namespaces instead (bench/netns-bench.sh makes them): the server end
 * enters the namespace file SERVER_NS (/run/netns/NAME) and listens on
 * every address, the client end enters CLIENT_NS and dials ADDR.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench.h"

#define NETNS_KEPT 256

static int home_ns = -1;
static int kept[NETNS_KEPT];
static int nkept;
static char made_dir[64];

static bool loopback_up(void)
{
	struct ifreq ifr = { .ifr_name = "lo" };
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	bool ok;

	if (fd < 0)
		return false;
	ok = ioctl(fd, SIOCGIFFLAGS, &ifr) == 0 &&
	     (ifr.ifr_flags |= IFF_UP, ioctl(fd, SIOCSIFFLAGS, &ifr) == 0);
	close(fd);
	return ok;
}

/*
 * Each namespace gets a usmc registry of its own: they go into a directory
 * of the benchmark's, removed at the end, unless the caller chose one.
 */
static void registry_dir_setup(void)
{
	if (getenv("USMC_REGISTRY_DIR"))
		return;
	snprintf(made_dir, sizeof(made_dir), "/dev/shm/usmc-bench.XXXXXX");
	if (!mkdtemp(made_dir)) {
		made_dir[0] = 0;
		return;
	}
	setenv("USMC_REGISTRY_DIR", made_dir, 1);
}

static struct {
	bool read, on;
	char ns[2][128];
	struct in_addr addr;
} cross;

static bool cross_load(void)
{
	const char *v = getenv("USMC_BENCH_NETNS");
	char addr[64];

	if (cross.read)
		return cross.on;
	cross.read = true;
	if (!v)
		return false;
	if (sscanf(v, "%127s %127s %63s", cross.ns[0], cross.ns[1], addr) != 3 ||
	    inet_pton(AF_INET, addr, &cross.addr) != 1) {
		fprintf(stderr, "usmc-bench: USMC_BENCH_NETNS=\"%s\" is not SERVER_NS CLIENT_NS ADDR\n",
			v);
		exit(2);
	}
	cross.on = true;
	return true;
}

bool netns_cross_enter(bool server, struct in_addr *addr)
{
	static pid_t entered; /* once per process: each end is one */
	int fd;

	if (!cross_load())
		return false;
	if (entered != getpid()) {
		fd = open(cross.ns[server ? 0 : 1], O_RDONLY | O_CLOEXEC);
		if (fd < 0 || setns(fd, CLONE_NEWNET)) {
			fprintf(stderr, "usmc-bench: cannot enter %s: %m\n", cross.ns[server ? 0 : 1]);
			_exit(1);
		}
		close(fd);
		entered = getpid();
	}
	*addr = server ? (struct in_addr){ .s_addr = htonl(INADDR_ANY) } : cross.addr;
	return true;
}

bool netns_fresh_enter(void)
{
	static bool refused;
	int fd;

	/* Between two namespaces given: those. */
	if (refused || cross_load())
		return false;
	if (home_ns < 0) {
		home_ns = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
		registry_dir_setup();
	}
	if (home_ns < 0 || unshare(CLONE_NEWNET)) {
		refused = true;
		fprintf(stderr, "usmc-bench: no network namespace of its own per measurement "
				"(%m); connection rates share one TIME_WAIT table\n");
		return false;
	}
	fd = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	if (nkept == NETNS_KEPT) {
		close(kept[0]);
		memmove(kept, kept + 1, sizeof(kept[0]) * (NETNS_KEPT - 1));
		nkept--;
	}
	if (fd >= 0)
		kept[nkept++] = fd;
	if (!loopback_up()) {
		netns_leave();
		return false;
	}
	return true;
}

void netns_leave(void)
{
	if (home_ns >= 0 && setns(home_ns, CLONE_NEWNET))
		fprintf(stderr, "usmc-bench: cannot return to the first network namespace: %m\n");
}

void netns_cleanup(void)
{
	DIR *d;
	struct dirent *e;

	while (nkept)
		close(kept[--nkept]);
	if (!made_dir[0] || !(d = opendir(made_dir)))
		return;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			unlinkat(dirfd(d), e->d_name, 0);
	closedir(d);
	rmdir(made_dir);
}
