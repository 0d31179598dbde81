/* SPDX-License-Identifier: MIT */
/*
 * Destination NAT toward listeners of other namespaces: which addresses a
 * NAT maps, and to which ports (usmc_rendezvous_nat.c).
 */
#ifndef USMC_RENDEZVOUS_NAT_H
#define USMC_RENDEZVOUS_NAT_H

#include <stdint.h>

#define RDV_NAT_MAX   16
#define RDV_PORTS_MAX 4
#define RDV_DIR_MAX   56 /* the directory's path, with a name of ours within sun_path */

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


/*
 * Addresses or prefixes, separated by commas or spaces, each perhaps with
 * a port map: 10.0.0.0/8, 172.17.0.1:8080=80, [fd00::1]:8080=80.  Added
 * to nat; what is not one is ignored with a warning naming from.
 */
void rdv_nat_parse(const char *list, const char *from, struct rdv_nat *nat);
/* The map of the directory dir's usmc-nat, as last looked at. */
void rdv_nat_file(const char *dir, struct rdv_nat *nat);
/*
 * Adds to ports[n..] the ports whose listeners may hold a connection to
 * a, port dport, through a destination NAT nat: how many there are now.
 */
int rdv_nat_ports(const struct rdv_nat *nat, const uint8_t a[16], uint16_t dport,
		  uint16_t ports[RDV_PORTS_MAX], int n);

#endif /* USMC_RENDEZVOUS_NAT_H */
