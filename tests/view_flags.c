// SPDX-License-Identifier: MIT
/*
 * The peer's flags in the first look.  A shutdown(SHUT_WR) the peer
 * published while we were not waiting rang for no one; the very look
 * that decides whether we sleep must show it, or a wait armed just after
 * it sleeps on a doorbell that never comes (a server's read in a burst
 * of connections slept so, beside other work, about once in a hundred
 * runs).  The view a wait takes is checked here, and a poll with no
 * timeout, which must report the end at once as TCP does.  Both ends
 * are in this process.
 *
 *   view_flags
 */
#include <poll.h>
#include <sys/socket.h>

#include "harness.h"
#include "usmc_conn.h"
#include "usmc_fdtab.h"
#include "usmc_sock.h"
#include "usmc_wait.h"

int main(void)
{
	uint16_t port;
	int lfd = h_listen(AF_INET, H_USMC, &port), c, v;
	struct pollfd p;
	struct conn_view view;
	struct usmc_sock *s;
	char b;

	for (int round = 0; round < 2; round++) {
		h_smc_pair(lfd, port, &c, &v);
		CHECK(usmc_shutdown(c, SHUT_WR) == 0);
		if (round == 0) {
			/* A poll that looks once: POLLIN and POLLRDHUP, as TCP reports a FIN. */
			p = (struct pollfd){ .fd = v, .events = POLLIN | POLLRDHUP };
			CHECK(usmc_poll(&p, 1, 0) == 1 && (p.revents & (POLLIN | POLLRDHUP)) ==
								   (POLLIN | POLLRDHUP));
		} else {
			/* The view a wait takes before it sleeps. */
			s = usmc_sock_get(v);
			CHECK(s && s->conn && usmc_conn_view(s, &view) == 0);
			CHECK(view.flags & CDC_PEER_DONE_WRITING);
		}
		CHECK(usmc_read(v, &b, 1) == 0);
		CHECK(usmc_close(c) == 0 && usmc_close(v) == 0);
	}
	CHECK(usmc_close(lfd) == 0);
	printf("view_flags: ok\n");
	return 0;
}
