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
 * (usmc_queue.c): on a
 * channel of its own, whose server end goes into the backlog of each such
 * listener, and with its TCP socket itself beside its ring.
 *
 * Nothing can look up a socket of another namespace (sock_diag, socket
 * cookies), and NAT rewrites addresses, so the holder that accepted a
 * connection proves which Proposal is its own with the TCP socket that
 * came with it: the proposer's, owned by the proposer's user, whose local
 * address is the accepted socket's peer, and whose peer is the accepted
 * socket's local address or, through a destination NAT, the address the
 * client dialled.  No byte goes into either stream for it.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "usmc.h"
#include "usmc_addr.h"
#include "usmc_core.h"
#include "usmc_log.h"
#include "usmc_queue.h"
#include "usmc_registry.h"
#include "usmc_rendezvous.h"
#include "usmc_sockdiag.h"
#include "usmc_sys.h"

#define RDV_NAT_MAX  16
#define RDV_ADDR_MAX 64
#define RDV_PORTS_MAX 4

/* A destination NAT's addresses, and for a port it maps to another, both ports. */
struct rdv_prefix {
	uint8_t addr[16]; /* IPv4 as v4-mapped */
	int bits;
	uint16_t port, to; /* 0: every port, to itself */
};

struct rdv_nat {
	int n;
	struct rdv_prefix p[RDV_NAT_MAX];
};

static struct {
	char dir[56]; /* with a name of ours, within sun_path */
	bool on;
	struct rdv_nat nat;
	bool init_userns;
	uid_t overflow_uid;
} rdv;
static pthread_once_t rdv_once = PTHREAD_ONCE_INIT;
static _Atomic bool rdv_done;

/* An address as 16 bytes, IPv4 v4-mapped: false if it is neither. */
static bool addr16(const struct sockaddr *sa, uint8_t out[16], uint16_t *port)
{
	static const uint8_t mapped[12] = { [10] = 0xff, [11] = 0xff };
	int family = usmc_addr_plain(sa, out, port);

	*port = ntohs(*port);
	if (family == AF_INET) {
		memmove(out + 12, out, 4);
		memcpy(out, mapped, 12);
	}
	return family != 0;
}

static bool prefix_has(const struct rdv_prefix *p, const uint8_t a[16])
{
	int whole = p->bits / 8, rest = p->bits % 8;

	return !memcmp(p->addr, a, (size_t)whole) &&
	       (!rest || !((p->addr[whole] ^ a[whole]) & (0xff << (8 - rest))));
}

/* A port of a port map, "8080": false if it is none. */
static bool port_parse(const char *s, uint16_t *port)
{
	char *end;
	unsigned long v = strtoul(s, &end, 10);

	*port = (uint16_t)v;
	return *s && !*end && v > 0 && v < 65536;
}

/*
 * Addresses or prefixes, separated by commas or spaces, each perhaps with
 * a port map: 10.0.0.0/8, 172.17.0.1:8080=80, [fd00::1]:8080=80 (what
 * the destination NAT of the published port 8080 maps it to: port 80).
 */
static void nat_parse(const char *list, const char *from, struct rdv_nat *nat)
{
	char buf[1024], *save = NULL;

	snprintf(buf, sizeof(buf), "%s", list);
	for (char *tok = strtok_r(buf, ", \t\n", &save); tok && nat->n < RDV_NAT_MAX;
	     tok = strtok_r(NULL, ", \t\n", &save)) {
		struct rdv_prefix *p = &nat->p[nat->n];
		char *slash, *eq = strchr(tok, '='), *colon;
		struct in_addr a4;
		int max = 128;

		p->port = p->to = 0;
		if (eq) {
			*eq = 0;
			colon = strrchr(tok, ':');
			if (!colon || !port_parse(colon + 1, &p->port) || !port_parse(eq + 1, &p->to)) {
				usmc_log(USMC_LOG_WARN, "%s: %s has no port map PORT=PORT: ignored", from, tok);
				continue;
			}
			*colon = 0;
			if (*tok == '[' && colon[-1] == ']') {
				colon[-1] = 0;
				tok++;
			}
		}
		slash = strchr(tok, '/');
		if (slash)
			*slash = 0;
		if (inet_pton(AF_INET, tok, &a4) == 1) {
			memset(p->addr, 0, 10);
			p->addr[10] = p->addr[11] = 0xff;
			memcpy(p->addr + 12, &a4, 4);
			max = 32;
		} else if (inet_pton(AF_INET6, tok, p->addr) != 1) {
			usmc_log(USMC_LOG_WARN, "%s: %s is no address: ignored", from, tok);
			continue;
		}
		p->bits = slash ? atoi(slash + 1) : max;
		if (p->bits < 0 || p->bits > max) {
			usmc_log(USMC_LOG_WARN, "%s: /%s is no prefix length: ignored", from, slash + 1);
			continue;
		}
		p->bits += 128 - max;
		nat->n++;
	}
}

/*
 * The directory's port map, usmc-nat: written by the operator, who knows
 * the published ports (docker -p, a service's target port), once for every
 * container that sees the directory.  Read at each look, as containers
 * come and go; only root's or our own user's, and writable by its owner
 * alone.  It only says where a Proposal goes: no holder takes one without
 * the proof (prove), so a wrong map costs shared memory, never a connection.
 */
static void nat_file(struct rdv_nat *nat)
{
	char buf[1024], path[sizeof(rdv.dir) + 16];
	struct stat st;
	ssize_t n = -1;
	int fd;

	snprintf(path, sizeof(path), "%s/usmc-nat", rdv.dir);
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return;
	if (!fstat(fd, &st) && S_ISREG(st.st_mode) && (st.st_uid == 0 || st.st_uid == getuid()) &&
	    !(st.st_mode & 022))
		n = usmc_sys.read(fd, buf, sizeof(buf) - 1);
	usmc_sys.close(fd);
	if (n <= 0)
		return;
	buf[n] = 0;
	for (char *hash = strchr(buf, '#'); hash; hash = strchr(hash, '#'))
		while (*hash && *hash != '\n')
			*hash++ = ' ';
	nat_parse(buf, path, nat);
}

/*
 * The ports whose listeners may hold a connection to a, port dport,
 * through a destination NAT: dport itself for an address-only prefix, the
 * port a port map names for it.  How many.
 */
static int nat_ports(const struct rdv_nat *nat, const uint8_t a[16], uint16_t dport,
		     uint16_t ports[RDV_PORTS_MAX], int n)
{
	for (int i = 0; i < nat->n && n < RDV_PORTS_MAX; i++) {
		const struct rdv_prefix *p = &nat->p[i];
		uint16_t to = p->port ? p->to : dport;
		bool seen = false;

		if ((p->port && p->port != dport) || !prefix_has(p, a))
			continue;
		for (int j = 0; j < n; j++)
			seen |= ports[j] == to;
		if (!seen)
			ports[n++] = to;
	}
	return n;
}

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
		nat_parse(nat, "USMC_RENDEZVOUS_NAT", &rdv.nat);
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
		fclose(f);
	}
	f = fopen("/proc/self/uid_map", "re");
	if (f) {
		unsigned a, b, n;

		rdv.init_userns = fgets(map, sizeof(map), f) && sscanf(map, "%u %u %u", &a, &b, &n) == 3 &&
				  a == 0 && b == 0 && n == 4294967295u;
		fclose(f);
	}
	rdv.on = true;
}

bool rdv_enabled(void)
{
	usmc_once(&rdv_once, &rdv_done, rdv_load);
	return rdv.on;
}

bool rdv_uid_mapped(uid_t uid)
{
	return rdv_enabled() ? rdv.init_userns || uid != rdv.overflow_uid : true;
}

static socklen_t rdv_addr(const char *name, struct sockaddr_un *sun)
{
	int n;

	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	n = snprintf(sun->sun_path, sizeof(sun->sun_path), "%.55s/%.48s", rdv.dir, name);
	return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + (size_t)n + 1);
}

socklen_t rdv_listener_addr(uint16_t port, struct sockaddr_un *sun)
{
	char name[48];

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
		if (i->ifa_addr && addr16(i->ifa_addr, list[n], &port))
			n++;
	freeifaddrs(ifa);
	snprintf(name, sizeof(name), ".usmc-ns-%lu.%d", usmc_netns_inode(), (int)usmc_pid());
	rdv_addr(name, &tmp);
	snprintf(name, sizeof(name), "usmc-ns-%lu", usmc_netns_inode());
	rdv_addr(name, &dst);
	fd = open(tmp.sun_path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd < 0)
		return;
	if (usmc_sys.write(fd, list, (size_t)n * 16) != (ssize_t)n * 16 ||
	    rename(tmp.sun_path, dst.sun_path))
		unlink(tmp.sun_path);
	usmc_sys.close(fd);
}

int rdv_listen(uint16_t port, ino_t *ino)
{
	struct sockaddr_un sun;
	socklen_t len;
	struct stat st;
	int fd;

	if (!rdv_enabled())
		return -1;
	len = rdv_listener_addr(port, &sun);
	fd = usmc_sys.socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (usmc_sys.bind(fd, (struct sockaddr *)&sun, len) && errno == EADDRINUSE) {
		int probe = usmc_sys.socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

		/* Left by a listener that died: ours to take if it is our user's and nobody listens. */
		if (probe >= 0 && !lstat(sun.sun_path, &st) && S_ISSOCK(st.st_mode) &&
		    st.st_uid == geteuid() && usmc_sys.connect(probe, (struct sockaddr *)&sun, len) &&
		    errno == ECONNREFUSED)
			unlink(sun.sun_path);
		if (probe >= 0)
			usmc_sys.close(probe);
		if (usmc_sys.bind(fd, (struct sockaddr *)&sun, len))
			goto fail;
	}
	/* Our user's only: the channel carries our TCP socket, which no one else may hold. */
	if (lstat(sun.sun_path, &st) || chmod(sun.sun_path, 0600) || usmc_sys.listen(fd, SOMAXCONN))
		goto fail;
	*ino = st.st_ino;
	rdv_list_addrs();
	return fd;
fail:
	usmc_sys.close(fd);
	return -1;
}

void rdv_unlisten(uint16_t port, ino_t ino)
{
	struct sockaddr_un sun;
	struct stat st;

	rdv_listener_addr(port, &sun);
	if (!lstat(sun.sun_path, &st) && st.st_ino == ino)
		unlink(sun.sun_path);
}

/* Whether the namespace ns lists the address a, in a file of our own user's. */
static bool ns_has(const char *ns, const uint8_t a[16])
{
	uint8_t list[RDV_ADDR_MAX][16];
	struct sockaddr_un sun;
	char name[48];
	struct stat st;
	ssize_t n = 0;
	int fd;

	snprintf(name, sizeof(name), "usmc-ns-%s", ns);
	rdv_addr(name, &sun);
	fd = open(sun.sun_path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return false;
	if (!fstat(fd, &st) && S_ISREG(st.st_mode) && st.st_uid == getuid())
		n = usmc_sys.read(fd, list, sizeof(list));
	usmc_sys.close(fd);
	for (ssize_t i = 0; i + 1 <= n / 16; i++)
		if (!memcmp(list[i], a, 16))
			return true;
	return false;
}

/* The listener of port a directory entry names, "usmc-<port>-<netns>": its netns, or NULL. */
static const char *listener_ns(const char *name, uint16_t *port)
{
	const char *ns;
	char *end;
	unsigned long v;

	if (strncmp(name, "usmc-", 5) || !isdigit((unsigned char)name[5]))
		return NULL;
	v = strtoul(name + 5, &end, 10);
	ns = end + 1;
	if (*end != '-' || !v || v > 65535 || !*ns || strspn(ns, "0123456789") != strlen(ns))
		return NULL;
	*port = (uint16_t)v;
	return ns;
}

uint32_t rdv_targets_find(const struct sockaddr *dst, uint16_t port, struct rdv_targets *t)
{
	uint16_t nat_to[RDV_PORTS_MAX];
	struct rdv_nat file = { 0 };
	char own[24];
	uint8_t a[16];
	uint16_t dport;
	int nnat;
	struct dirent *e;
	DIR *d;

	t->n = 0;
	if (!rdv_enabled() || !addr16(dst, a, &dport))
		return USMC_DECL_NOSMCDEV;
	nat_file(&file);
	nnat = nat_ports(&rdv.nat, a, port, nat_to, 0);
	nnat = nat_ports(&file, a, port, nat_to, nnat);
	snprintf(own, sizeof(own), "%lu", usmc_netns_inode());
	d = opendir(rdv.dir);
	if (!d)
		return USMC_DECL_NOSMCDEV;
	while ((e = readdir(d)) && t->n < RDV_TARGETS_MAX) {
		uint16_t lport;
		const char *ns = listener_ns(e->d_name, &lport);
		bool nat = false;

		if (!ns || !strcmp(ns, own))
			continue;
		for (int i = 0; i < nnat; i++)
			nat |= nat_to[i] == lport;
		/* Not through a NAT: the namespace has the very address and port we dial. */
		if (!nat && (lport != port || !ns_has(ns, a)))
			continue;
		t->len[t->n] = rdv_addr(e->d_name, &t->sun[t->n]);
		t->n++;
	}
	closedir(d);
	return t->n ? 0 : USMC_DECL_NOSMCDEV;
}

void rdv_reuse_key(const struct rdv_targets *t, uint16_t port, struct reuse_key *key)
{
	struct stat st;

	if (t->n != 1 || t->sun[0].sun_path[0] == 0 || stat(t->sun[0].sun_path, &st))
		return;
	*key = (struct reuse_key){ REUSE_LISTENER, getuid(), 0, port, (uint64_t)st.st_ino };
}

uint32_t rdv_post(struct usmc_lgr *lgr, const struct rdv_targets *t)
{
	uint32_t reason = USMC_DECL_PEERNOSMC;
	int posted = 0;

	for (int i = 0; i < t->n; i++) {
		struct ucred cred;
		uint32_t r = af_carrier_send(&t->sun[i], t->len[i], getuid(), lgr->taker, false, &cred);

		if (!r)
			posted++;
		else if (reason == USMC_DECL_PEERNOSMC)
			reason = r;
	}
	return posted ? 0 : reason;
}

static bool same_addr(const struct sockaddr *x, const struct sockaddr *y)
{
	uint8_t a[16], b[16];
	uint16_t pa, pb;

	return addr16(x, a, &pa) && addr16(y, b, &pb) && pa == pb && !memcmp(a, b, 16);
}

static uint16_t port_of(const struct sockaddr *sa)
{
	uint8_t a[16];
	uint16_t port = 0;

	addr16(sa, a, &port);
	return port;
}

static bool same_clc_addr(const struct sockaddr *x, const struct clc_addr *c)
{
	struct sockaddr_storage ss = { .ss_family = c->family };

	if (c->family == AF_INET) {
		((struct sockaddr_in *)&ss)->sin_port = htons(c->port);
		memcpy(&((struct sockaddr_in *)&ss)->sin_addr, c->addr, 4);
	} else {
		((struct sockaddr_in6 *)&ss)->sin6_port = htons(c->port);
		memcpy(&((struct sockaddr_in6 *)&ss)->sin6_addr, c->addr, 16);
	}
	return same_addr(x, (struct sockaddr *)&ss);
}

/*
 * Whether a socket that dialled tp from tl may be the other end of the
 * connection we accepted (al, from ap) with its source rewritten on the
 * way: it dialled our very address (a masquerade); or, through a
 * destination NAT, its source port is our peer's (a masquerade keeps a
 * source port that is free), or our peer is the address it dialled (a
 * proxy there relayed it: docker's userland proxy connects from the
 * bridge's address, which a container dials for a published port).  Not
 * a proof: a refusal only makes the Proposal's connection TCP, whichever
 * holder it went to.
 */
static bool rewritten(const struct sockaddr *tp, const struct sockaddr *tl,
		      const struct sockaddr *al, const struct sockaddr *ap)
{
	uint8_t a[16], b[16];
	uint16_t pa, pb;

	if (same_addr(tp, al) || port_of(tl) == port_of(ap))
		return true;
	return addr16(tp, a, &pa) && addr16(ap, b, &pb) && !memcmp(a, b, 16);
}

/* The descriptors that came with the channel's first message, left with it: how many. */
static int peek_fds(int ch, int fds[2])
{
	char cbuf[CMSG_SPACE(4 * sizeof(int))];
	uint8_t buf[CLC_MAX_MSG_SIZE];
	struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			     .msg_controllen = sizeof(cbuf) };
	int n = 0;
	ssize_t got;

	/* A peek with room for them installs copies; the message keeps its own. */
	do
		got = usmc_sys.recvmsg(ch, &mh, MSG_PEEK | MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	while (got < 0 && errno == EINTR);
	if (got <= 0)
		return 0;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		for (size_t i = 0; i < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int); i++) {
			int fd;

			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
			if (n < 2)
				fds[n++] = fd;
			else
				usmc_sys.close(fd);
		}
	}
	return n;
}

/*
 * The proof for a passed TCP socket tcp and our accepted socket acc: tcp
 * is a TCP socket of the proposer's user, named by the Proposal's cookie,
 * connected to the destination the Proposal names, and its local address
 * is acc's peer: the two ends of one connection.  Its peer is acc's local
 * address, or under a destination NAT the address the client dialled.
 */
static enum rdv_proof prove(int tcp, const struct clc_msg *msg, uid_t uid, int acc)
{
	struct sockaddr_storage tl, tp, al, ap;
	socklen_t len = sizeof(tl);
	struct tcp_info ti = { 0 };
	uint64_t cookie = 0;
	int proto = 0;
	struct stat st;

	if (fstat(tcp, &st) || !S_ISSOCK(st.st_mode) || st.st_uid != uid || !rdv_uid_mapped(uid))
		return PROOF_NO;
	if (usmc_sys.getsockopt(tcp, SOL_SOCKET, SO_PROTOCOL, &proto, &(socklen_t){ sizeof(proto) }) ||
	    proto != IPPROTO_TCP ||
	    usmc_sys.getsockopt(tcp, SOL_SOCKET, SO_COOKIE, &cookie, &(socklen_t){ sizeof(cookie) }) ||
	    cookie != msg->proposal.cookie)
		return PROOF_NO;
	if (usmc_sys.getsockname(tcp, (struct sockaddr *)&tl, &len) ||
	    getpeername(tcp, (struct sockaddr *)&tp, &(socklen_t){ sizeof(tp) }) ||
	    usmc_sys.getsockname(acc, (struct sockaddr *)&al, &(socklen_t){ sizeof(al) }) ||
	    getpeername(acc, (struct sockaddr *)&ap, &(socklen_t){ sizeof(ap) }) ||
	    !same_clc_addr((struct sockaddr *)&tp, &msg->proposal.dst))
		return PROOF_NO;
	if (same_addr((struct sockaddr *)&tl, (struct sockaddr *)&ap))
		return PROOF_YES;
	/*
	 * Looks like ours, connected, and yet no connection from its address
	 * reached us: its source was rewritten on the way.  (One of ours that
	 * is still to be accepted sock_diag would find.)
	 */
	if (!rewritten((struct sockaddr *)&tp, (struct sockaddr *)&tl, (struct sockaddr *)&al,
		       (struct sockaddr *)&ap) ||
	    usmc_sys.getsockopt(tcp, IPPROTO_TCP, TCP_INFO, &ti, &(socklen_t){ sizeof(ti) }) ||
	    ti.tcpi_state != TCP_ESTABLISHED ||
	    af_socket_diag((struct sockaddr *)&al, (struct sockaddr *)&tl, NULL, NULL))
		return PROOF_NO;
	return PROOF_SNAT;
}

enum rdv_proof rdv_prove(int ch, const struct clc_msg *msg, uid_t uid, int acc)
{
	int fds[2] = { -1, -1 }, n = peek_fds(ch, fds);
	enum rdv_proof r = n == 2 ? prove(fds[1], msg, uid, acc) : PROOF_NO;

	for (int i = 0; i < n; i++)
		usmc_sys.close(fds[i]);
	return r;
}
