/* SPDX-License-Identifier: MIT */
/*
 * For the test programs that know nothing of usmc (usmc-run takes them
 * over): a check that names the failing line, the checksum the other
 * tests use, and the loopback address.
 */
#ifndef USMC_TEST_PLAIN_H
#define USMC_TEST_PLAIN_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define CHECK(cond)                                                                     \
	do {                                                                            \
		if (!(cond)) {                                                          \
			fprintf(stderr, "%s:%d: [%d] check failed: %s (errno %d: %m)\n", \
				__FILE__, __LINE__, (int)getpid(), #cond, errno);       \
			exit(1);                                                        \
		}                                                                       \
	} while (0)

#define FNV_INIT 0xcbf29ce484222325ull

/* Incremental FNV-1a 64. */
static inline uint64_t fnv(uint64_t h, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len--)
		h = (h ^ *p++) * 0x100000001b3ull;
	return h;
}

/* All of buf, however many writes it takes (EINTR taken as one more try). */
static inline void write_all(int fd, const void *buf, size_t len)
{
	for (size_t off = 0; off < len;) {
		ssize_t n = write(fd, (const char *)buf + off, len - off);

		if (n < 0 && errno == EINTR)
			continue;
		CHECK(n > 0);
		off += (size_t)n;
	}
}

/* The loopback address of the family (AF_INET or AF_INET6) at port, in *ss. */
static inline socklen_t loopback_addr(int family, uint16_t port, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (family == AF_INET6) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;

		a->sin6_family = AF_INET6;
		a->sin6_port = htons(port);
		a->sin6_addr = in6addr_loopback;
		return sizeof(*a);
	}
	struct sockaddr_in *a = (struct sockaddr_in *)ss;

	a->sin_family = AF_INET;
	a->sin_port = htons(port);
	a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	return sizeof(*a);
}

/* A TCP listener on the IPv4 loopback address, at an ephemeral port (in *port). */
static inline int loopback_listen(uint16_t *port)
{
	struct sockaddr_storage ss;
	socklen_t len = loopback_addr(AF_INET, 0, &ss);
	int lfd = socket(AF_INET, SOCK_STREAM, 0);

	CHECK(lfd >= 0 && bind(lfd, (struct sockaddr *)&ss, len) == 0 && listen(lfd, 8) == 0);
	len = sizeof(ss);
	CHECK(getsockname(lfd, (struct sockaddr *)&ss, &len) == 0);
	*port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
	return lfd;
}

#endif
