// SPDX-License-Identifier: MIT
/*
 * Per-connection policy, decided before connect(), and locality.
 *
 * Rules come from USMC_POLICY, or else from the file USMC_POLICY_FILE
 * (default /etc/usmc/policy).  One rule per line, or separated by ';':
 *
 *     tcp 10.0.0.0/8          # never try SMC toward this prefix
 *     tcp *:5432              # nor toward this port on any address
 *     smc 127.0.0.1:8000-8999
 *     tcp [::1]:22
 *
 * The first rule that matches decides; without a match, SMC is tried.
 *
 * Shared memory is shared with processes of our own user only, unless a
 * line names other users it may be shared with.  Both ends must name each
 * other (by name or uid), or the connection stays TCP:
 *
 *     allow-user www-data 1001
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <pthread.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "usmc_policy.h"
#include "usmc_sock.h"

static struct usmc_rule rules[USMC_MAX_RULES];
static int nrules;
static uid_t allowed_uids[USMC_MAX_USERS];
static int nallowed;
/* Rules are read at the first connect, users at the first listen or connect. */
static pthread_once_t policy_once = PTHREAD_ONCE_INIT;
static pthread_once_t users_once = PTHREAD_ONCE_INIT;
static _Atomic bool policy_done, users_done;

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

/* A user name or a uid; false if neither. */
static bool parse_user(const char *word, uid_t *uid)
{
	struct passwd pw, *found = NULL;
	char buf[1024], *end;
	unsigned long n = strtoul(word, &end, 10);

	if (*word && !*end && n < (uid_t)-1) {
		*uid = (uid_t)n;
		return true;
	}
	if (getpwnam_r(word, &pw, buf, sizeof(buf), &found) || !found)
		return false;
	*uid = found->pw_uid;
	return true;
}

/* "allow-user NAME|UID ...": true if the line is one; its users taken if wanted. */
static bool parse_allow_users(char *line, bool take)
{
	static const char keyword[] = "allow-user";
	char *word, *save = NULL;

	if (strncmp(line, keyword, sizeof(keyword) - 1) ||
	    !isspace((unsigned char)line[sizeof(keyword) - 1]))
		return false;
	if (!take)
		return true;
	for (word = strtok_r(line + sizeof(keyword), " \t,", &save); word;
	     word = strtok_r(NULL, " \t,", &save)) {
		uid_t uid;

		if (!parse_user(word, &uid))
			fprintf(stderr, "usmc: ignoring unknown user '%s'\n", word);
		else if (uid != getuid() && nallowed < USMC_MAX_USERS)
			allowed_uids[nallowed++] = uid;
	}
	return true;
}

/* Each line of the text that is a rule (or, with users, an allow-user line). */
static void load_lines(const char *text, bool users)
{
	char line[256];
	const char *p = text;

	while (*p && nrules < USMC_MAX_RULES) {
		size_t n = strcspn(p, ";\n");
		char *s = line, *e;

		if (n >= sizeof(line))
			n = sizeof(line) - 1;
		memcpy(line, p, n);
		line[n] = 0;
		p += n + (p[n] ? 1 : 0);
		if ((e = strchr(s, '#')))
			*e = 0;
		while (isspace((unsigned char)*s))
			s++;
		e = s + strlen(s);
		while (e > s && isspace((unsigned char)e[-1]))
			*--e = 0;
		if (!*s || parse_allow_users(s, users) || users)
			continue;
		if (usmc_rule_parse(&rules[nrules], s))
			nrules++;
		else
			fprintf(stderr, "usmc: ignoring policy rule '%s'\n", s);
	}
}

static void load_policy_text(bool users)
{
	const char *env = getenv("USMC_POLICY");
	const char *path = getenv("USMC_POLICY_FILE");
	char text[8192];
	size_t n;
	FILE *f;

	if (env) {
		load_lines(env, users);
		return;
	}
	f = fopen(path ? path : "/etc/usmc/policy", "re");
	if (!f)
		return;
	n = fread(text, 1, sizeof(text) - 1, f);
	text[n] = 0;
	fclose(f);
	load_lines(text, users);
}

static void policy_load(void)
{
	load_policy_text(false);
}

static void users_load(void)
{
	load_policy_text(true);
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
	int family = sa->sa_family;

	if (family == AF_INET) {
		memcpy(addr, &((const struct sockaddr_in *)sa)->sin_addr, 4);
		port = ntohs(((const struct sockaddr_in *)sa)->sin_port);
	} else {
		const struct sockaddr_in6 *s6 = (const void *)sa;

		port = ntohs(s6->sin6_port);
		if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
			family = AF_INET;
			memcpy(addr, &s6->sin6_addr.s6_addr[12], 4);
		} else {
			memcpy(addr, &s6->sin6_addr, 16);
		}
	}
	if (port < r->port_lo || port > r->port_hi)
		return false;
	if (!r->family)
		return true;
	return r->family == family && prefix_match(addr, r->addr, r->prefix);
}

bool usmc_policy_allows(const struct sockaddr *addr)
{
	usmc_once(&policy_once, &policy_done, policy_load);
	for (int i = 0; i < nrules; i++)
		if (usmc_rule_matches(&rules[i], addr))
			return rules[i].smc;
	return true;
}

bool usmc_peer_user_allowed(uid_t uid)
{
	usmc_once(&users_once, &users_done, users_load);
	if (uid == getuid())
		return true;
	for (int i = 0; i < nallowed; i++)
		if (allowed_uids[i] == uid)
			return true;
	return false;
}

int usmc_policy_other_users(const uid_t **uids)
{
	usmc_once(&users_once, &users_done, users_load);
	*uids = allowed_uids;
	return nallowed;
}

/* ---- locality ---- */

#define LOCAL_MAX 64

static struct {
	pthread_mutex_t lock;
	time_t loaded;
	int n;
	struct sockaddr_storage addr[LOCAL_MAX];
} local = { .lock = PTHREAD_MUTEX_INITIALIZER };

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
	int family = sa->sa_family;
	bool found = false;
	time_t now;

	if (family == AF_INET) {
		memcpy(addr, &((const struct sockaddr_in *)sa)->sin_addr, 4);
	} else if (family == AF_INET6) {
		const struct in6_addr *a6 = &((const struct sockaddr_in6 *)sa)->sin6_addr;

		if (IN6_IS_ADDR_V4MAPPED(a6)) {
			family = AF_INET;
			memcpy(addr, &a6->s6_addr[12], 4);
		} else {
			memcpy(addr, a6, 16);
		}
	} else {
		return false;
	}
	if (family == AF_INET && (addr[0] == 127 || !memcmp(addr, any6, 4)))
		return true;
	if (family == AF_INET6 && (!memcmp(addr, lo6, 16) || !memcmp(addr, any6, 16)))
		return true;
	now = time(NULL);
	pthread_mutex_lock(&local.lock);
	if (now - local.loaded >= 2) {
		local_refresh();
		local.loaded = now;
	}
	for (int i = 0; i < local.n && !found; i++)
		found = same_host_addr(&local.addr[i], family, addr);
	pthread_mutex_unlock(&local.lock);
	return found;
}
