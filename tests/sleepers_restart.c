// SPDX-License-Identifier: MIT
/*
 * More readers asleep on one connection than it has sleeper slots
 * (USMC_SLEEPERS): the ones without a slot sleep a millisecond at a time,
 * since no doorbell is counted for them.  A signal handled with
 * SA_RESTART must restart their blocking reads as the kernel restarts
 * TCP's: each read returns its byte, never -1 EINTR, however short the
 * sleep it was in.  A helper thread signals every reader again and again
 * until all are done; the server writes one byte a reader once they all
 * wait, each checked.
 *
 *   sleepers_restart
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include "harness.h"
#include "usmc_conn.h"

#define READERS (USMC_SLEEPERS + 4)

static int fd;
static pthread_t readers[READERS];
static atomic_int started, finished, interrupted;
static atomic_bool stop;

static void on_usr1(int sig)
{
	(void)sig;
}

static void *reader(void *arg)
{
	char b;
	ssize_t n;

	(void)arg;
	atomic_fetch_add(&started, 1);
	n = usmc_read(fd, &b, 1);
	if (n < 0 && errno == EINTR)
		atomic_fetch_add(&interrupted, 1);
	else
		CHECK(n == 1 && b == 'x');
	atomic_fetch_add(&finished, 1);
	return NULL;
}

static void *kicker(void *arg)
{
	struct timespec pause = { 0, 200 * 1000 };

	(void)arg;
	while (!atomic_load(&stop)) {
		for (int i = 0; i < READERS; i++)
			pthread_kill(readers[i], SIGUSR1);
		nanosleep(&pause, NULL);
	}
	return NULL;
}

static int server(void *arg)
{
	int lfd = *(int *)arg, c = usmc_accept(lfd, NULL, NULL);
	char go, bytes[READERS];

	CHECK(c >= 0);
	h_read_all(c, &go, 1);
	memset(bytes, 'x', sizeof(bytes));
	/* One at a time, each a change that wakes whoever sleeps. */
	for (int i = 0; i < READERS; i++) {
		struct timespec gap = { 0, 2 * 1000 * 1000 };

		h_write_all(c, bytes + i, 1);
		nanosleep(&gap, NULL);
	}
	h_read_all(c, &go, 1);
	CHECK(usmc_close(c) == 0);
	return 0;
}

int main(void)
{
	struct sigaction sa = { .sa_handler = on_usr1, .sa_flags = SA_RESTART };
	struct timespec settle = { 0, 50 * 1000 * 1000 };
	uint16_t port;
	int lfd = h_listen(AF_INET, H_USMC, &port);
	pid_t srv = h_fork(server, &lfd);
	pthread_t kick;

	sigemptyset(&sa.sa_mask);
	CHECK(sigaction(SIGUSR1, &sa, NULL) == 0);
	fd = h_connect(AF_INET, H_USMC, port);
	for (int i = 0; i < READERS; i++)
		CHECK(pthread_create(&readers[i], NULL, reader, NULL) == 0);
	while (atomic_load(&started) < READERS)
		nanosleep(&settle, NULL);
	/* Let them reach their sleeps, under signals already. */
	CHECK(pthread_create(&kick, NULL, kicker, NULL) == 0);
	nanosleep(&settle, NULL);
	h_write_all(fd, "g", 1);
	/* The kicker stops before any reader is joined: a joined thread is gone. */
	while (atomic_load(&finished) < READERS)
		nanosleep(&settle, NULL);
	atomic_store(&stop, true);
	CHECK(pthread_join(kick, NULL) == 0);
	for (int i = 0; i < READERS; i++)
		CHECK(pthread_join(readers[i], NULL) == 0);
	h_write_all(fd, "e", 1);
	CHECK(h_wait_ok(srv));
	h_check_mode(fd, USMC_MODE_SMCD);
	printf("%d readers on one connection, %d slots: %d reads cut short by SA_RESTART signals\n",
	       READERS, USMC_SLEEPERS, atomic_load(&interrupted));
	CHECK(atomic_load(&interrupted) == 0 && atomic_load(&finished) == READERS);
	CHECK(usmc_close(fd) == 0 && usmc_close(lfd) == 0);
	return 0;
}
