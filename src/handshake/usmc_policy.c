// SPDX-License-Identifier: MIT
/*
 * Per-connection policy, decided before connect(), and locality.
 *
 * Rules come from USMC_POLICY, or else from the file USMC_POLICY_FILE
 * (default /etc/usmc/policy; its syntax is read by usmc_policy_file.c).
 * One rule per line, or separated by ';'; '#' starts a comment:
 *
 *     tcp 10.0.0.0/8          # never try SMC toward this prefix
 *     tcp *:5432              # nor toward this port on any address
 *     smc 127.0.0.1:8000-8999
 *     tcp [::1]:22
 *
 * The first rule that matches decides; without a match, SMC is tried.
 * A statement that is not one is logged and ignored.  A file that changes
 * is read again at the next connect() after it, within a second.
 *
 * Shared memory is shared with processes of our own user only, unless a
 * line names other users it may be shared with.  Both ends must name each
 * other (by name or uid), or the connection stays TCP:
 *
 *     allow-user www-data 1001
 */
#include <arpa/inet.h>
#include <errno.h>
#include <ctype.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "usmc_addr.h"
#include "usmc_lock.h"
#include "usmc_log.h"
#include "usmc_policy.h"
#include "usmc_policy_file.h"
#include "usmc_watch.h"

static bool parse_prefix(struct usmc_rule *r, char *addr)
{
	char *slash = strchr(addr, '/');
	int max;

	if (slash)
		*slash++ = 0;
	if (!strcmp(addr, "*")) {
		r->family = 0;
		return !slash;
	}
	if (inet_pton(AF_INET, addr, r->addr) == 1)
		r->family = AF_INET, max = 32;
	else if (inet_pton(AF_INET6, addr, r->addr) == 1)
		r->family = AF_INET6, max = 128;
	else
		return false;
	r->prefix = max;
	if (slash) {
		char *end;
		long n = strtol(slash, &end, 10);

		if (*end || n < 0 || n > max)
			return false;
		r->prefix = (int)n;
	}
	return true;
}

static bool parse_ports(struct usmc_rule *r, const char *ports)
{
	char *end;
	long lo = strtol(ports, &end, 10), hi = lo;

	if (*end == '-')
		hi = strtol(end + 1, &end, 10);
	if (*end || lo < 1 || hi > 65535 || lo > hi)
		return false;
	r->port_lo = (uint16_t)lo;
	r->port_hi = (uint16_t)hi;
	return true;
}

bool usmc_rule_parse(struct usmc_rule *r, const char *text)
{
	char buf[128], *target, *ports = NULL, *colon;

	memset(r, 0, sizeof(*r));
	r->port_hi = 65535;
	if (strlen(text) >= sizeof(buf))
		return false;
	strcpy(buf, text);
	target = buf;
	while (*target && !isspace((unsigned char)*target))
		target++;
	if (!*target)
		return false;
	*target++ = 0;
	if (!strcmp(buf, "smc"))
		r->smc = true;
	else if (strcmp(buf, "tcp"))
		return false;
	while (isspace((unsigned char)*target))
		target++;
	if (*target == '[') {
		char *close = strchr(++target, ']');

		if (!close || (close[1] && close[1] != ':'))
			return false;
		*close = 0;
		if (close[1] == ':')
			ports = close + 2;
	} else if ((colon = strchr(target, ':')) && !strchr(colon + 1, ':')) {
		*colon = 0;
		ports = colon + 1;
	}
	if (!parse_prefix(r, target))
		return false;
	return !ports || parse_ports(r, ports);
}

/*
 * The rules in force.  A table, once published, is never changed or
 * freed: a connect() reads it without a lock while a reload publishes the
 * next one.  Tables a reload replaced stay on the retired list, so the
 * memory of the policies a process has seen is bounded by their number.
 */
struct policy_table {
	struct usmc_policy p;
	struct policy_table *retired;
};

static struct policy_table empty_table;
static _Atomic(struct policy_table *) table = &empty_table;
static struct {
	struct policy_table *retired;
	bool from_file;        /* USMC_POLICY not set: the file, which may change */
	const char *path;
	struct usmc_watch watch; /* the file as last read */
} src;
static pthread_once_t policy_once = PTHREAD_ONCE_INIT;
static _Atomic bool policy_done;

static void warn_stmt(void *arg, int line, const char *what, const char *stmt)
{
	usmc_log(USMC_LOG_WARN, "%s line %d: %s: '%.200s' ignored", (const char *)arg, line, what,
		 stmt);
}

static void publish(const char *text, size_t len, const char *origin)
{
	struct policy_table *t = calloc(1, sizeof(*t)), *old;

	if (!t || usmc_policy_parse(&t->p, text, len, warn_stmt, (void *)origin)) {
		usmc_log(USMC_LOG_WARN, "%s: no memory to read the policy", origin);
		if (t)
			usmc_policy_free(&t->p);
		free(t);
		return;
	}
	old = atomic_exchange(&table, t);
	if (old != &empty_table) {
		old->retired = src.retired;
		src.retired = old;
	}
}

/* With LOCK_POLICY_SRC held: reads the file again if it is not the one last read. */
static void file_refresh(bool first)
{
	struct stat st, before = src.watch.seen;
	size_t len;
	char *text;

	if (stat(src.path, &st)) {
		if (first && errno != ENOENT)
			usmc_log(USMC_LOG_WARN, "policy %s: %s", src.path, strerror(errno));
		else if (first && getenv("USMC_POLICY_FILE"))
			usmc_log(USMC_LOG_WARN, "policy %s does not exist: SMC is tried with every "
				 "peer", src.path);
		if (usmc_watch_changed(&src.watch, NULL)) /* removed: no rules any more */
			publish("", 0, src.path);
		return;
	}
	if (!usmc_watch_changed(&src.watch, &st) && !first)
		return;
	text = usmc_policy_read(src.path, &len);
	if (!text) {
		usmc_log(USMC_LOG_WARN, "policy %s: %s", src.path, strerror(errno));
		src.watch.seen = before; /* read again at the next look */
		return;
	}
	publish(text, len, src.path);
	free(text);
}

static const char *policy_path(void)
{
	const char *path = getenv("USMC_POLICY_FILE");

	return path && *path ? path : "/etc/usmc/policy";
}

static void policy_load(void)
{
	const char *env = getenv("USMC_POLICY");

	usmc_rank_lock(LOCK_POLICY_SRC);
	if (env) {
		publish(env, strlen(env), "USMC_POLICY");
	} else {
		src.from_file = true;
		src.path = policy_path();
		usmc_watch_due(&src.watch);
		file_refresh(true);
	}
	usmc_rank_unlock(LOCK_POLICY_SRC);
}

/* The table in force; a file that changed is read again, at most once a second. */
static const struct usmc_policy *policy_now(void)
{
	usmc_once(&policy_once, &policy_done, policy_load);
	if (src.from_file && usmc_watch_due(&src.watch)) {
		usmc_rank_lock(LOCK_POLICY_SRC);
		file_refresh(false);
		usmc_rank_unlock(LOCK_POLICY_SRC);
	}
	return &atomic_load_explicit(&table, memory_order_acquire)->p;
}

static bool prefix_match(const uint8_t *a, const uint8_t *b, int bits)
{
	int bytes = bits / 8, rest = bits % 8;

	if (memcmp(a, b, (size_t)bytes))
		return false;
	return !rest || ((a[bytes] ^ b[bytes]) & (0xff << (8 - rest))) == 0;
}

bool usmc_rule_matches(const struct usmc_rule *r, const struct sockaddr *sa)
{
	uint8_t addr[16];
	uint16_t port;
	int family = usmc_addr_plain(sa, addr, &port);

	port = ntohs(port);
	if (port < r->port_lo || port > r->port_hi)
		return false;
	if (!r->family)
		return true;
	return r->family == family && prefix_match(addr, r->addr, r->prefix);
}

bool usmc_policy_allows(const struct sockaddr *addr)
{
	const struct usmc_policy *p = policy_now();

	for (int i = 0; i < p->nrules; i++)
		if (usmc_rule_matches(&p->rules[i], addr))
			return p->rules[i].smc;
	return true;
}

/*
 * The users are those of the policy as first read: a listener makes its
 * rendezvous for other users at listen() (af_usmc.c), so a reload could
 * not give an existing listener new ones.  Rules, checked at each
 * connect(), follow the file.
 */
static struct {
	const uid_t *uids;
	int n;
} users;
static pthread_once_t users_once = PTHREAD_ONCE_INIT;
static _Atomic bool users_done;

static void users_load(void)
{
	const char *env = getenv("USMC_POLICY"), *path = policy_path();
	struct usmc_policy p;
	size_t len = env ? strlen(env) : 0;
	char *text = env ? NULL : usmc_policy_read(path, &len);
	uid_t me = getuid();

	/* Read on its own: the rules are read at the first connect, maybe after a fork. */
	if ((!env && !text) || usmc_policy_parse(&p, env ? env : text, len, NULL, NULL)) {
		free(text);
		return;
	}
	free(text);
	for (int i = 0; i < p.nusers; i++)
		if (p.users[i] != me)
			p.users[users.n++] = p.users[i];
	users.uids = p.users;
	p.users = NULL;
	usmc_policy_free(&p);
}

bool usmc_peer_user_allowed(uid_t uid)
{
	usmc_once(&users_once, &users_done, users_load);
	if (uid == getuid())
		return true;
	for (int i = 0; i < users.n; i++)
		if (users.uids[i] == uid)
			return true;
	return false;
}

int usmc_policy_other_users(const uid_t **uids)
{
	usmc_once(&users_once, &users_done, users_load);
	*uids = users.uids;
	return users.n;
}

/* ---- locality ---- */

#define LOCAL_MAX 64

static struct {
	time_t loaded;
	int n;
	struct sockaddr_storage addr[LOCAL_MAX];
} local;

static void local_refresh(void)
{
	struct ifaddrs *ifa, *i;

	local.n = 0;
	if (getifaddrs(&ifa))
		return;
	for (i = ifa; i && local.n < LOCAL_MAX; i = i->ifa_next) {
		if (!i->ifa_addr || (i->ifa_addr->sa_family != AF_INET &&
				     i->ifa_addr->sa_family != AF_INET6))
			continue;
		memcpy(&local.addr[local.n++], i->ifa_addr,
		       i->ifa_addr->sa_family == AF_INET ? sizeof(struct sockaddr_in)
							 : sizeof(struct sockaddr_in6));
	}
	freeifaddrs(ifa);
}

static bool same_host_addr(const struct sockaddr_storage *a, int family, const uint8_t *addr)
{
	if (a->ss_family != family)
		return false;
	if (family == AF_INET)
		return !memcmp(&((const struct sockaddr_in *)a)->sin_addr, addr, 4);
	return !memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr, addr, 16);
}

bool usmc_addr_is_local(const struct sockaddr *sa)
{
	static const uint8_t any6[16], lo6[16] = { [15] = 1 };
	uint8_t addr[16];
	uint16_t port;
	int family = usmc_addr_plain(sa, addr, &port);
	bool found = false;
	time_t now;

	if (!family)
		return false;
	if (family == AF_INET && (addr[0] == 127 || !memcmp(addr, any6, 4)))
		return true;
	if (family == AF_INET6 && (!memcmp(addr, lo6, 16) || !memcmp(addr, any6, 16)))
		return true;
	now = time(NULL);
	usmc_rank_lock(LOCK_POLICY_LOCAL);
	if (now - local.loaded >= 2) {
		local_refresh();
		local.loaded = now;
	}
	for (int i = 0; i < local.n && !found; i++)
		found = same_host_addr(&local.addr[i], family, addr);
	usmc_rank_unlock(LOCK_POLICY_LOCAL);
	return found;
}
