// SPDX-License-Identifier: MIT
/*
 * A waiter does not spin in full while every CPU has work (usmc_wait.c,
 * spin_takes_cpu): the spin would keep a CPU from a task that waits for
 * one, often the very peer it waits for, and a scheduler tick later that
 * task runs.  The effect is a matter of time, measured in BENCHMARKS.md;
 * what is checked here is the decision.
 *
 * With a CPU-bound process on every CPU but one, a client and a server
 * play ping-pong through shared memory (blocking reads and writes, 64 B
 * each way, every byte checked), both ends in shared memory: one task
 * more than CPUs whenever both ends run, so that a waiter that spins
 * keeps the other from a CPU.  Their waits must have kept their spins
 * short: the counter spins_shortened grows.
 */
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "counters.h"
#include "harness.h"

#define ROUNDS 2000
#define MSG 64

static struct h_chan port_chan;

static int server(void *arg)
{
	uint16_t port;
	int lfd, fd;
	uint8_t buf[MSG];

	(void)arg;
	lfd = h_listen(AF_INET, H_USMC, &port);
	h_chan_send(&port_chan, port);
	fd = usmc_accept(lfd, NULL, NULL);
	CHECK(fd >= 0);
	for (int i = 0; i < ROUNDS; i++) {
		h_read_all(fd, buf, sizeof(buf));
		h_write_all(fd, buf, sizeof(buf));
	}
	h_check_mode(fd, USMC_MODE_SMCD);
	CHECK(usmc_close(fd) == 0);
	CHECK(usmc_close(lfd) == 0);
	return 0;
}

static int client(void *arg)
{
	int fd = h_connect(AF_INET, H_USMC, (uint16_t)(uintptr_t)arg);
	uint8_t out[MSG], in[MSG];

	for (uint32_t i = 0; i < ROUNDS; i++) {
		h_pattern(out, sizeof(out), i, 0);
		h_write_all(fd, out, sizeof(out));
		h_read_all(fd, in, sizeof(in));
		CHECK(h_fnv(H_FNV_INIT, in, sizeof(in)) == h_fnv(H_FNV_INIT, out, sizeof(out)));
	}
	h_check_mode(fd, USMC_MODE_SMCD);
	CHECK(usmc_close(fd) == 0);
	return 0;
}

static int hog(void *arg)
{
	volatile unsigned long n = 0;

	(void)arg;
	for (;;)
		n++;
	return 0;
}

int main(void)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	int nhogs = cpus <= 1 ? 0 : (int)cpus - 1;
	pid_t *hogs = calloc((size_t)nhogs + 1, sizeof(*hogs));
	uint64_t before, busy;

	CHECK(hogs);
	h_registry_own("spin-busy");
	before = counter_of((unsigned)getuid(), USMC_STAT_SPINS_SHORTENED);
	for (int i = 0; i < nhogs; i++)
		hogs[i] = h_fork(hog, NULL);
	h_run_pair(server, client, &port_chan);
	for (int i = 0; i < nhogs; i++) {
		kill(hogs[i], SIGKILL);
		waitpid(hogs[i], NULL, 0);
	}
	free(hogs);
	busy = counter(USMC_STAT_SPINS_SHORTENED);
	printf("spin_busy: %d hogs on %ld CPUs: %llu of %d waits kept short\n", nhogs, cpus,
	       (unsigned long long)(busy - before), 2 * ROUNDS);
	CHECK(busy > before);
	printf("spin_busy: ok\n");
	return 0;
}
