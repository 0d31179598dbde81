// SPDX-License-Identifier: MIT
/*
 * The rendezvous directory: shared memory between network namespaces.
 *
 * Abstract Unix names and the registry exist per network namespace, so a
 * client in one namespace cannot find a listener in another by them.  A
 * directory both can see can: /run/usmc, or USMC_RENDEZVOUS_DIR, on a
 * plain host simply there for every `ip netns` namespace (they share the
 * mount namespace), bind-mounted into containers.  A listener binds a Unix
 * listener there beside its abstract one, `usmc-<port>-<netns>`, and
 * lists its namespace's addresses in `usmc-ns-<netns>`.  A client whose
 * destination is not a local address, and is an address listed for a
 * namespace with a listener on its port (a routed veth, a bridge), or
 * lies in a prefix of USMC_RENDEZVOUS_NAT or of the directory's port map
 * usmc-nat (addresses that a destination NAT maps to this host's
 * namespaces: docker's published ports, a service range, and the port
 * each maps to where it changes it), proposes as to a shared listener
 * (usmc_queue.c): on a channel of its own, whose server end goes into the
 * backlog of each such listener, and with its TCP socket itself beside its
 * ring.  The holder that accepted the connection proves which Proposal is
 * its own with that socket (usmc_rendezvous_proof.c); the NAT's addresses
 * and ports are read in usmc_rendezvous_nat.c.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "usmc.h"
#include "usmc_addr.h"
#include "usmc_core.h"
#include "usmc_log.h"
#include "usmc_proc.h"
#include "usmc_queue.h"
#include "usmc_queue_side.h"
#include "usmc_registry.h"
#include "usmc_rendezvous.h"
#include "usmc_rendezvous_nat.h"
#include "usmc_sys.h"

static struct {
	char dir[RDV_DIR_MAX];
	bool on;
	struct rdv_nat nat;
	bool init_userns;
	uid_t overflow_uid;
} rdv;
static pthread_once_t rdv_once = PTHREAD_ONCE_INIT;
static _Atomic bool rdv_done;

static void rdv_load(void)
{
	const char *dir = getenv("USMC_RENDEZVOUS_DIR"), *nat = getenv("USMC_RENDEZVOUS_NAT");
	char map[128] = "";
	struct stat st;
	FILE *f;

	if (!dir)
		dir = "/run/usmc";
	if (!*dir || stat(dir, &st) || !S_ISDIR(st.st_mode))
		return;
	if (strlen(dir) >= sizeof(rdv.dir)) {
		usmc_log(USMC_LOG_WARN, "USMC_RENDEZVOUS_DIR=%s is too long: no rendezvous", dir);
		return;
	}
	snprintf(rdv.dir, sizeof(rdv.dir), "%s", dir);
	if (nat)
		rdv_nat_parse(nat, "USMC_RENDEZVOUS_NAT", &rdv.nat);
	/*
	 * In a user namespace, a peer whose user has no mapping shows as the
	 * overflow uid, which may also be one of ours: never trusted there.
	 */
	rdv.overflow_uid = 65534;
	f = fopen("/proc/sys/kernel/overflowuid", "re");
	if (f) {
		unsigned u;

		if (fscanf(f, "%u", &u) == 1)
			rdv.overflow_uid = u;
		usmc_sys.fclose(f);
	}
	f = fopen("/proc/self/uid_map", "re");
	if (f) {
		unsigned a, b, n;

		rdv.init_userns = fgets(map, sizeof(map), f) && sscanf(map, "%u %u %u", &a, &b, &n) == 3 &&
				  a == 0 && b == 0 && n == 4294967295u;
		usmc_sys.fclose(f);
	}
	rdv.on = true;
}

bool rdv_enabled(void)
{
	usmc_once(&rdv_once, &rdv_done, rdv_load);
	return rdv.on;
}

const char *rdv_dir(const struct rdv_nat **nat)
{
	*nat = &rdv.nat;
	return rdv.dir;
}

bool rdv_uid_mapped(uid_t uid)
{
	return rdv_enabled() ? rdv.init_userns || uid != rdv.overflow_uid : true;
}

socklen_t rdv_addr(const char *name, struct sockaddr_un *sun)
{
	int n;

	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	n = snprintf(sun->sun_path, sizeof(sun->sun_path), "%.55s/%.48s", rdv.dir, name);
	return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + (size_t)n + 1);
}

socklen_t rdv_listener_addr(uint16_t port, int32_t member, struct sockaddr_un *sun)
{
	char name[48];

	if (member)
		snprintf(name, sizeof(name), "usmc-%u-%lu-m%d", (unsigned)port, usmc_netns_inode(),
			 (int)member);
	else
		snprintf(name, sizeof(name), "usmc-%u-%lu", (unsigned)port, usmc_netns_inode());
	return rdv_addr(name, sun);
}

/* Lists our namespace's addresses for clients of other namespaces: written whole, then renamed. */
static void rdv_list_addrs(void)
{
	uint8_t list[RDV_ADDR_MAX][16];
	struct sockaddr_un tmp, dst;
	struct ifaddrs *ifa;
	char name[48];
	uint16_t port;
	int n = 0, fd;

	if (getifaddrs(&ifa))
		return;
	for (struct ifaddrs *i = ifa; i && n < RDV_ADDR_MAX; i = i->ifa_next)
		if (i->ifa_addr && usmc_addr16(i->ifa_addr, list[n], &port))
			n++;
	freeifaddrs(ifa);
	snprintf(name, sizeof(name), ".usmc-ns-%lu.%d", usmc_netns_inode(), (int)usmc_pid());
	rdv_addr(name, &tmp);
	snprintf(name, sizeof(name), "usmc-ns-%lu", usmc_netns_inode());
	rdv_addr(name, &dst);
	fd = usmc_sys.open(tmp.sun_path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd < 0)
		return;
	if (usmc_sys.write(fd, list, (size_t)n * 16) != (ssize_t)n * 16 ||
	    rename(tmp.sun_path, dst.sun_path))
		unlink(tmp.sun_path);
	usmc_sys.close(fd);
}

/* The path of our namespace's list of redirects. */
static void rdv_redirects_path(struct sockaddr_un *sun)
{
	char name[48];

	snprintf(name, sizeof(name), "usmc-redirect-%lu", usmc_netns_inode());
	rdv_addr(name, sun);
}

int rdv_redirects_read(const char *path, struct rdv_redirect list[RDV_REDIRECTS_MAX])
{
	int fd = usmc_sys.open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	struct stat st;
	ssize_t n = 0;

	if (fd < 0)
		return 0;
	if (!fstat(fd, &st) && S_ISREG(st.st_mode) && st.st_uid == getuid())
		n = usmc_sys.read(fd, list, RDV_REDIRECTS_MAX * sizeof(list[0]));
	usmc_sys.close(fd);
	return n > 0 ? (int)((size_t)n / sizeof(list[0])) : 0;
}

/*
 * Our namespace's redirects, as usmc-redirect-<netns> lists them (ours
 * only), edited: port goes to to (0: itself), and with to_gone, every
 * port that went there goes to itself.  Written whole and renamed, as the
 * addresses are, and only if it changed: each write makes every client
 * read the directory again.
 */
static void rdv_redirects_edit(uint16_t port, uint16_t to, uint16_t to_gone)
{
	struct rdv_redirect list[RDV_REDIRECTS_MAX];
	struct sockaddr_un tmp, dst;
	bool changed = false, found = false;
	int n, kept = 0, fd;
	char name[48];

	rdv_redirects_path(&dst);
	n = rdv_redirects_read(dst.sun_path, list);
	for (int i = 0; i < n; i++) {
		struct rdv_redirect r = list[i];

		if ((to_gone && r.to == to_gone) || (port && r.port == port && !to)) {
			changed = true;
			continue;
		}
		if (port && r.port == port) {
			changed |= r.to != to;
			r.to = to;
			found = true;
		}
		list[kept++] = r;
	}
	if (port && to && !found && kept < RDV_REDIRECTS_MAX) {
		list[kept++] = (struct rdv_redirect){ port, to };
		changed = true;
	}
	if (!changed)
		return;
	snprintf(name, sizeof(name), ".usmc-redirect-%lu.%d", usmc_netns_inode(), (int)usmc_pid());
	rdv_addr(name, &tmp);
	fd = usmc_sys.open(tmp.sun_path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd < 0)
		return;
	if (usmc_sys.write(fd, list, (size_t)kept * sizeof(list[0])) !=
		    (ssize_t)((size_t)kept * sizeof(list[0])) ||
	    rename(tmp.sun_path, dst.sun_path))
		unlink(tmp.sun_path);
	usmc_sys.close(fd);
}

/* Whether our namespace lists redirects: one stat where a read is three calls. */
static bool rdv_redirects_listed(void)
{
	struct sockaddr_un dst;
	struct stat st;

	rdv_redirects_path(&dst);
	return !lstat(dst.sun_path, &st);
}

/*
 * The redirect this process listed last, and when: each connection a
 * redirect gives a proxy without a Proposal (a plain client's, one of
 * another user) would read the list again; once a second is enough.
 */
static _Atomic uint32_t redirect_last;
static _Atomic int64_t redirect_last_at;

void rdv_redirect_set(uint16_t port, uint16_t to)
{
	uint32_t pair;
	int64_t now;

	if (to == port)
		to = 0;
	if (!rdv_enabled())
		return;
	/* Most often a plain client's connection, straight to its port: nothing to forget. */
	if (!to) {
		if (rdv_redirects_listed())
			rdv_redirects_edit(port, 0, 0);
		return;
	}
	pair = (uint32_t)port << 16 | to;
	now = usmc_now_ms();
	if (atomic_load(&redirect_last) == pair && now - atomic_load(&redirect_last_at) < 1000)
		return;
	rdv_redirects_edit(port, to, 0);
	atomic_store(&redirect_last_at, now);
	atomic_store(&redirect_last, pair);
}

void rdv_redirects_drop(uint16_t to)
{
	if (rdv_enabled() && rdv_redirects_listed())
		rdv_redirects_edit(0, 0, to);
}

/* A socket file of ours that nobody listens on any more (its listener died without closing). */
static void rdv_drop_if_dead(const struct sockaddr_un *sun, socklen_t len)
{
	int probe = usmc_sys.socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	struct stat st;

	if (probe >= 0 && !lstat(sun->sun_path, &st) && S_ISSOCK(st.st_mode) &&
	    st.st_uid == geteuid() && usmc_sys.connect(probe, (const struct sockaddr *)sun, len) &&
	    errno == ECONNREFUSED)
		unlink(sun->sun_path);
	if (probe >= 0)
		usmc_sys.close(probe);
}

/*
 * The names of members of the port's SO_REUSEPORT group in our namespace
 * whose process died without closing: gone, so that clients no longer
 * try them.  Each name has its member's pid, which no later member reuses
 * while the file stays, so a new member clears them as it joins.
 */
static void rdv_drop_dead_members(uint16_t port)
{
	char prefix[48];
	struct dirent *e;
	size_t n;
	DIR *d = opendir(rdv.dir);

	if (!d)
		return;
	n = (size_t)snprintf(prefix, sizeof(prefix), "usmc-%u-%lu-m", (unsigned)port,
			     usmc_netns_inode());
	while ((e = readdir(d))) {
		struct sockaddr_un sun;
		socklen_t len;

		if (strncmp(e->d_name, prefix, n))
			continue;
		len = rdv_addr(e->d_name, &sun);
		rdv_drop_if_dead(&sun, len);
	}
	closedir(d);
}

int rdv_listen(uint16_t port, int32_t member, ino_t *ino)
{
	struct sockaddr_un sun, tmp;
	socklen_t len, tmp_len;
	struct stat st;
	char name[48];
	int fd;

	if (!rdv_enabled())
		return -1;
	len = rdv_listener_addr(port, member, &sun);
	/*
	 * Bound and listening under a name of our own first, then renamed into
	 * place: a name in the directory is always listened on.  Bound under
	 * its own name, a member that had not listened yet refused a connect,
	 * and another member clearing the names of dead ones took it away.
	 */
	snprintf(name, sizeof(name), ".usmc-%u-%lu.%d", (unsigned)port, usmc_netns_inode(),
		 (int)usmc_pid());
	tmp_len = rdv_addr(name, &tmp);
	fd = usmc_fd_lift(usmc_sys.socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
	if (fd < 0)
		return -1;
	if (member)
		rdv_drop_dead_members(port);
	/* Left by a listener that died: ours to take if it is our user's and nobody listens. */
	if (!lstat(sun.sun_path, &st))
		rdv_drop_if_dead(&sun, len);
	if (!lstat(sun.sun_path, &st))
		goto fail;
	/* Ours by its pid: one left there is a dead process's of the same pid. */
	unlink(tmp.sun_path);
	/* Our user's only: the channel carries our TCP socket, which no one else may hold. */
	if (usmc_sys.bind(fd, (struct sockaddr *)&tmp, tmp_len) || lstat(tmp.sun_path, &st) ||
	    chmod(tmp.sun_path, 0600) || usmc_sys.listen(fd, SOMAXCONN) ||
	    rename(tmp.sun_path, sun.sun_path)) {
		unlink(tmp.sun_path);
		goto fail;
	}
	*ino = st.st_ino;
	rdv_list_addrs();
	return fd;
fail:
	usmc_sys.close(fd);
	return -1;
}

void rdv_unlisten(uint16_t port, int32_t member, ino_t ino)
{
	struct sockaddr_un sun;
	struct stat st;

	rdv_listener_addr(port, member, &sun);
	if (!lstat(sun.sun_path, &st) && st.st_ino == ino)
		unlink(sun.sun_path);
	/* The last of the port's listeners here: a member's fellows may still take its redirects. */
	if (!member)
		rdv_redirects_drop(port);
}

void rdv_reuse_key(const struct rdv_targets *t, uint16_t port, struct reuse_key *key)
{
	if (t->n == 1)
		*key = (struct reuse_key){ REUSE_LISTENER, getuid(), 0, port, t->file[0] };
}

uint32_t rdv_post(struct usmc_lgr *lgr, const struct rdv_targets *t)
{
	uint32_t reason = USMC_DECL_PEERNOSMC;
	int posted = 0;

	for (int i = 0; i < t->n; i++) {
		struct ucred cred;
		uint32_t r = af_carrier_send(&t->sun[i], t->len[i], getuid(), lgr->taker, false, &cred, lgr);

		if (!r)
			posted++;
		else if (reason == USMC_DECL_PEERNOSMC)
			reason = r;
	}
	return posted ? 0 : reason;
}

