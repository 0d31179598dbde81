/* SPDX-License-Identifier: MIT */
/*
 * Destination NAT for the rendezvous directory: the addresses a client
 * dials that a NAT maps to a listener of another namespace, from
 * USMC_RENDEZVOUS_NAT and the directory's usmc-nat, and the ports they map
 * to (docs/HANDSHAKE.md "Across network namespaces").
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "usmc_lock.h"
#include "usmc_log.h"
#include "usmc_rendezvous_nat.h"
#include "usmc_sys.h"
#include "usmc_watch.h"

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
void rdv_nat_parse(const char *list, const char *from, struct rdv_nat *nat)
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
 * container that sees the directory.  Looked at again at most once a
 * second (usmc_watch.h), as containers come and go; only root's or our own
 * user's, and writable by its owner alone.  It only says where a Proposal
 * goes: no holder takes one without the proof (usmc_rendezvous_proof.c),
 * so a wrong map costs shared memory, never a connection.
 */
static struct {
	struct usmc_watch watch;
	struct rdv_nat nat;
} map; /* LOCK_RDV_NAT: all of it */

/* With LOCK_RDV_NAT held: the file as it is now, or no map. */
static void map_read(const char *path)
{
	char buf[1024];
	struct stat st;
	ssize_t n = -1;
	int fd;

	fd = usmc_sys.open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0 || fstat(fd, &st)) {
		if (fd >= 0)
			usmc_sys.close(fd);
		if (usmc_watch_changed(&map.watch, NULL))
			map.nat.n = 0;
		return;
	}
	if (!usmc_watch_changed(&map.watch, &st)) {
		usmc_sys.close(fd);
		return;
	}
	map.nat.n = 0;
	if (S_ISREG(st.st_mode) && (st.st_uid == 0 || st.st_uid == getuid()) && !(st.st_mode & 022))
		n = usmc_sys.read(fd, buf, sizeof(buf) - 1);
	usmc_sys.close(fd);
	if (n <= 0)
		return;
	buf[n] = 0;
	for (char *hash = strchr(buf, '#'); hash; hash = strchr(hash, '#'))
		while (*hash && *hash != '\n')
			*hash++ = ' ';
	rdv_nat_parse(buf, path, &map.nat);
}

void rdv_nat_file(const char *dir, struct rdv_nat *nat)
{
	char path[RDV_DIR_MAX + 16];

	usmc_rank_lock(LOCK_RDV_NAT);
	if (usmc_watch_due(&map.watch)) {
		snprintf(path, sizeof(path), "%s/usmc-nat", dir);
		map_read(path);
	}
	*nat = map.nat;
	usmc_rank_unlock(LOCK_RDV_NAT);
}

/*
 * The ports whose listeners may hold a connection to a, port dport,
 * through a destination NAT: dport itself for an address-only prefix, the
 * port a port map names for it.  How many.
 */
int rdv_nat_ports(const struct rdv_nat *nat, const uint8_t a[16], uint16_t dport,
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

