/* SPDX-License-Identifier: MIT */
/*
 * An IP address as the library compares it.  A v4-mapped IPv6 address
 * (an IPv6 socket's IPv4 peer) is the IPv4 address it maps: the policy,
 * locality, sock_diag's 4-tuple, the rendezvous directory and the capture
 * all see one address whichever socket family carried it.
 */
#ifndef USMC_ADDR_H
#define USMC_ADDR_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

/*
 * sa's address in addr (IPv4: its first 4 bytes; the rest zero) and its
 * port as the sockaddr has it (network order): AF_INET, AF_INET6, or 0
 * for any other family.
 */
static inline int usmc_addr_plain(const struct sockaddr *sa, uint8_t addr[16], uint16_t *port)
{
	memset(addr, 0, 16);
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *s4 = (const void *)sa;

		memcpy(addr, &s4->sin_addr, 4);
		*port = s4->sin_port;
		return AF_INET;
	}
	if (sa->sa_family != AF_INET6) {
		*port = 0;
		return 0;
	}
	const struct sockaddr_in6 *s6 = (const void *)sa;

	*port = s6->sin6_port;
	if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
		memcpy(addr, &s6->sin6_addr.s6_addr[12], 4);
		return AF_INET;
	}
	memcpy(addr, &s6->sin6_addr, 16);
	return AF_INET6;
}

/*
 * sa's address as 16 bytes, IPv4 v4-mapped, and its port in host order:
 * false for any other family.  The form the rendezvous directory lists
 * and compares addresses in.
 */
static inline bool usmc_addr16(const struct sockaddr *sa, uint8_t out[16], uint16_t *port)
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

#endif /* USMC_ADDR_H */
