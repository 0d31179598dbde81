// SPDX-License-Identifier: MIT
/*
 * An Accept that a wait takes in together with the end of its channel is
 * still the answer.  The client proposes two connections and sleeps in a
 * read on the first; it is stopped while the server accepts the second,
 * writes a byte on each, closes and exits, so that when it runs again its
 * wait finds the second Accept and the channel's end at once.  The second
 * connection must be in shared memory with its byte: a wait that took the
 * end along with the Accept would leave the Accept unread, and the
 * connection would fall back to a TCP stream that carries only doorbells.
 */
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

static struct h_chan port_chan, to_main, to_server, to_client;

static int server(void *arg)
{
	uint16_t port;
	int lfd = h_listen(AF_INET, H_USMC, &port), a0, a1;

	(void)arg;
	h_chan_send(&port_chan, port);
	CHECK(h_chan_recv(&to_server) == 1);
	a0 = usmc_accept(lfd, NULL, NULL);
	CHECK(a0 >= 0);
	h_chan_send(&to_main, 2);
	CHECK(h_chan_recv(&to_server) == 3);
	a1 = usmc_accept(lfd, NULL, NULL);
	CHECK(a1 >= 0);
	h_check_mode(a1, USMC_MODE_SMCD);
	h_write_all(a0, "A", 1);
	h_write_all(a1, "B", 1);
	CHECK(usmc_close(a0) == 0 && usmc_close(a1) == 0 && usmc_close(lfd) == 0);
	return 0;
}

static int client(void *arg)
{
	uint16_t port = (uint16_t)h_chan_recv(&to_client);
	int c0 = h_connect(AF_INET, H_USMC, port), c1 = h_connect(AF_INET, H_USMC, port);
	uint64_t sum;
	char b;

	(void)arg;
	h_chan_send(&to_main, 1);
	/* Told once the server has accepted the first: its Accept is in. */
	CHECK(h_chan_recv(&to_client) == 4);
	h_chan_send(&to_main, 5);
	h_read_all(c0, &b, 1);
	CHECK(b == 'A');
	CHECK(h_read_to_eof(c0, &sum, 16, NULL) == 0);
	h_check_mode(c0, USMC_MODE_SMCD);
	h_read_all(c1, &b, 1);
	h_check_mode(c1, USMC_MODE_SMCD);
	CHECK(b == 'B');
	CHECK(h_read_to_eof(c1, &sum, 16, NULL) == 0);
	CHECK(usmc_close(c0) == 0 && usmc_close(c1) == 0);
	return 0;
}

int main(void)
{
	pid_t srv, cli;

	h_chan_open(&port_chan);
	h_chan_open(&to_main);
	h_chan_open(&to_server);
	h_chan_open(&to_client);
	srv = h_fork(server, NULL);
	cli = h_fork(client, NULL);
	h_chan_send(&to_client, h_chan_recv(&port_chan));
	CHECK(h_chan_recv(&to_main) == 1);
	h_chan_send(&to_server, 1);
	CHECK(h_chan_recv(&to_main) == 2);
	h_chan_send(&to_client, 4);
	CHECK(h_chan_recv(&to_main) == 5);
	/* The client sleeps in its read of the first connection: stop it there. */
	usleep(100 * 1000);
	CHECK(kill(cli, SIGSTOP) == 0);
	h_chan_send(&to_server, 3);
	CHECK(h_wait_ok(srv));
	CHECK(kill(cli, SIGCONT) == 0);
	CHECK(h_wait_ok(cli));
	printf("an Accept taken in with the channel's end: answered, in shared memory: ok\n");
	return 0;
}
