// SPDX-License-Identifier: MIT
/*
 * TCP_DEFER_ACCEPT on a usmc listener (apache's AcceptFilter, nginx's
 * `deferred`): getsockopt answers as on a plain listener, and neither a
 * usmc client, whose data goes to its ring, nor a plain one waits for the
 * option's timeout to be accepted.  Set before and after listen(), for 1
 * and 30 seconds; the client writes first, as an HTTP client does.
 *
 * The one bound asserted is the wake-up the option would break: the
 * listener must report a connection within 10 s, against the kernel's 31 s
 * hold for 30 (and about 1 s per connection for 1, checked by count: 20
 * connections in less than their sum of holds).
 */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>

#include "robust.h"
#include "usmc_core.h"

#define LEN 10000

static int defer_get(int fd)
{
	int v = -1;
	socklen_t len = sizeof(v);

	RCHECK(usmc_getsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &v, &len) == 0);
	return v;
}

/* A listener with the option set before or after listen(). */
static int defer_listener(enum h_kind kind, int secs, bool before, uint16_t *port)
{
	struct sockaddr_storage ss;
	socklen_t len = h_loopback(AF_INET, 0, &ss);
	int fd = h_socket(AF_INET, kind, 0);

	RCHECK(usmc_bind(fd, (struct sockaddr *)&ss, len) == 0);
	if (before)
		RCHECK(usmc_setsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &secs, sizeof(secs)) == 0);
	RCHECK(usmc_listen(fd, 64) == 0);
	if (!before)
		RCHECK(usmc_setsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &secs, sizeof(secs)) == 0);
	len = sizeof(ss);
	RCHECK(getsockname(fd, (struct sockaddr *)&ss, &len) == 0);
	*port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
	return fd;
}

static int client(uint16_t port, enum h_kind kind, int n)
{
	uint8_t buf[LEN], back[LEN];

	for (int i = 0; i < n; i++) {
		int fd = h_connect(AF_INET, kind, port);

		RCHECK(fd >= 0);
		h_pattern(buf, sizeof(buf), (uint64_t)i, 0);
		h_write_all(fd, buf, sizeof(buf));
		h_read_all(fd, back, sizeof(back));
		RCHECK(!memcmp(buf, back, sizeof(buf)));
		h_check_mode(fd, kind == H_USMC ? USMC_MODE_SMCD : USMC_MODE_NONE);
		usmc_close(fd);
	}
	return 0;
}

static void round_of(int secs, bool before, enum h_kind kind, int n)
{
	uint16_t port, pport;
	int lfd = defer_listener(H_USMC, secs, before, &port);
	int plain = defer_listener(H_PLAIN, secs, before, &pport);
	int64_t start = usmc_now_ms();
	struct pollfd p = { .fd = lfd, .events = POLLIN };
	pid_t pid;

	RCHECK(defer_get(lfd) == defer_get(plain));
	usmc_close(plain);
	pid = fork();
	RCHECK(pid >= 0);
	if (pid == 0)
		exit(client(port, kind, n));
	for (int i = 0; i < n; i++) {
		uint8_t buf[LEN];
		int fd;

		RCHECK(usmc_poll(&p, 1, 10000) == 1);
		fd = usmc_accept(lfd, NULL, NULL);
		RCHECK(fd >= 0);
		h_read_all(fd, buf, sizeof(buf));
		h_write_all(fd, buf, sizeof(buf));
		h_check_mode(fd, kind == H_USMC ? USMC_MODE_SMCD : USMC_MODE_FALLBACK);
		usmc_close(fd);
	}
	RCHECK(h_wait_ok(pid));
	/* n connections each held for the option's second would take n seconds. */
	if (secs == 1)
		RCHECK(usmc_now_ms() - start < n * 1000);
	printf("TCP_DEFER_ACCEPT %d set %s listen(), reads back %d, %d %s connections\n", secs,
	       before ? "before" : "after", defer_get(lfd), n, kind == H_USMC ? "usmc" : "plain");
	usmc_close(lfd);
}

int main(void)
{
	setvbuf(stdout, NULL, _IONBF, 0);
	for (int before = 0; before < 2; before++) {
		round_of(30, before, H_USMC, 2);
		round_of(30, before, H_PLAIN, 2);
		round_of(1, before, H_USMC, 20);
	}
	return 0;
}
