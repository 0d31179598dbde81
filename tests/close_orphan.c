// SPDX-License-Identifier: MIT
/*
 * A client writes, closes and exits before the server even accepts.  Its
 * close waits a CLC timeout for an answer that cannot come before the
 * accept, then leaves its ring to the server (af_orphan), with its end.
 * Its channel is gone by the server's answer, so the Accept cannot be
 * sent, and the Proposal must have outlived the link group: the server
 * reads the ring it mapped at accept(), every byte, then the end, in
 * shared memory.  Checked by length and checksum.
 *
 *   close_orphan            accepted while the client's socket finishes
 *                           its FIN_WAIT2, where sock_diag proves it
 *   close_orphan --late     accepted once that socket is gone (TCP_LINGER2
 *                           of a second): TCP would still hand over every
 *                           byte, and so must the ring, matched by the end
 *                           of the connection the client published; three
 *                           clients of one address, the first accepted
 *                           past usmc, so that the others' Proposals are
 *                           read together, and each must find its own
 *   close_orphan --dropped  the Proposal of a connection the server never
 *                           accepted through usmc is dropped, counted, as
 *                           the listener closes
 *   close_orphan --late-other-user (root)
 *                           as --late, with a client of another user whom
 *                           both policies allow: its published end is only
 *                           its word, which the server does not take, so
 *                           the connection is TCP and reads the end at once
 *                           (the bytes that such a client left in its ring
 *                           are lost: docs/SECURITY.md)
 */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "counters.h"
#include "harness.h"

#define LEN 3000
/* --late-other-user: the users of the server and of the client, as tests/cross_user.c's. */
#define SERVER_UID 64001
#define CLIENT_UID 64002

static uint16_t port;
static bool late;
static struct h_chan to_server, port_chan;


/* Client n writes a pattern of its own, and closes (late: its FIN_WAIT2 ends a second after). */
static int client(void *arg)
{
	h_chan_send(&to_server, h_write_close(port, 61 + ((uint64_t)(uintptr_t)arg << 8), LEN, late));
	return 0;
}

/* Accepts one connection, which must be in shared memory and bring client n's bytes. */
static void accept_checked(int lfd, int n)
{
	uint8_t want[LEN];
	uint64_t sum = H_FNV_INIT, len;
	int fd = usmc_accept(lfd, NULL, NULL);

	CHECK(fd >= 0);
	h_check_mode(fd, USMC_MODE_SMCD);
	len = h_read_to_eof(fd, &sum, 4096, NULL);
	h_pattern(want, sizeof(want), 61 + ((uint64_t)n << 8), 0);
	if (len != LEN)
		fprintf(stderr, "%llu bytes of %d\n", (unsigned long long)len, LEN);
	CHECK(len == LEN && sum == h_fnv(H_FNV_INIT, want, sizeof(want)));
	CHECK(usmc_close(fd) == 0);
}

/* The server, as SERVER_UID: the connection of the other user's late orphan is TCP, and ends. */
static int other_user_server(void *arg)
{
	struct usmc_info info;
	uint64_t sum = H_FNV_INIT, len;
	unsigned lport;
	int lfd, fd;

	(void)arg;
	h_become(SERVER_UID, "allow-user 64002");
	lfd = h_listen(AF_INET, H_USMC, &port);
	h_chan_send(&port_chan, port);
	lport = (unsigned)h_chan_recv(&to_server);
	for (int i = 0; i < 200 && h_tcp_listed(lport, port); i++)
		usleep(50 * 1000);
	CHECK(!h_tcp_listed(lport, port));
	fd = usmc_accept(lfd, NULL, NULL);
	CHECK(fd >= 0);
	len = h_read_to_eof(fd, &sum, 4096, NULL);
	CHECK(usmc_info(fd, &info, sizeof(info)) == 0);
	if (info.mode != USMC_MODE_FALLBACK || len)
		fprintf(stderr, "server: mode %s, %llu bytes\n", usmc_mode_str(info.mode),
			(unsigned long long)len);
	CHECK(info.mode == USMC_MODE_FALLBACK && len == 0);
	CHECK(usmc_close(fd) == 0 && usmc_close(lfd) == 0);
	return 0;
}

static int other_user_client(void *arg)
{
	h_become(CLIENT_UID, "allow-user 64001");
	return client(arg);
}

static int main_other_user(void)
{
	pid_t server;

	if (geteuid() != 0) {
		fprintf(stderr, "close_orphan: --late-other-user needs root\n");
		return 77;
	}
	h_chan_open(&port_chan);
	server = h_fork(other_user_server, NULL);
	port = (uint16_t)h_chan_recv(&port_chan);
	CHECK(h_wait_ok(h_fork(other_user_client, NULL)));
	CHECK(h_wait_ok(server));
	printf("close_orphan --late-other-user: the other user's published end not taken, "
	       "the connection TCP: ok\n");
	return 0;
}

int main(int argc, char **argv)
{
	bool dropped = argc > 1 && !strcmp(argv[1], "--dropped");
	unsigned lport[3];
	int lfd, plain;

	late = argc > 1 && !strncmp(argv[1], "--late", 6);
	CHECK(setenv("USMC_CLC_TIMEOUT_MS", "100", 1) == 0);
	h_chan_open(&to_server);
	if (late && !strcmp(argv[1], "--late-other-user"))
		return main_other_user();
	h_registry_own(late ? "close_orphan_late" : dropped ? "close_orphan_dropped"
							 : "close_orphan");
	lfd = h_listen(AF_INET, H_USMC, &port);
	/* Three when late, from one address: each connection must get its own client's bytes. */
	for (int n = 0; n < (late ? 3 : 1); n++) {
		CHECK(h_wait_ok(h_fork(client, (void *)(uintptr_t)n)));
		lport[n] = (unsigned)h_chan_recv(&to_server);
	}
	/* The FIN_WAIT2 of a second, and the timer's slack. */
	for (int n = 0; late && n < 3; n++) {
		for (int i = 0; i < 200 && h_tcp_listed(lport[n], port); i++)
			usleep(50 * 1000);
		CHECK(!h_tcp_listed(lport[n], port));
	}
	if (late || dropped) {
		/*
		 * The kernel's accept, past usmc: the first Proposal is never
		 * matched, and the next accept reads it with the others.
		 */
		plain = accept(lfd, NULL, NULL);
		CHECK(plain >= 0);
		close(plain);
	}
	if (dropped) {
		CHECK(h_wait_ok(h_fork(client, (void *)(uintptr_t)1)));
		h_chan_recv(&to_server);
	}
	accept_checked(lfd, late || dropped ? 1 : 0);
	if (late)
		accept_checked(lfd, 2);
	CHECK(usmc_close(lfd) == 0);
	if (late || dropped)
		CHECK(counter(USMC_STAT_ORPHANS_DROPPED) == 1);
	printf("close_orphan %s: %d bytes, then the end, in shared memory: ok\n", argc > 1 ? argv[1] : "",
	       LEN);
	return 0;
}
