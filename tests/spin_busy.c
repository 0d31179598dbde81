// SPDX-License-Identifier: MIT
/*
 * A waiter does not spin in full while every CPU has work and it is
 * itself preempted by tasks of its weight (usmc_wait.c, spin_takes_cpu):
 * the spin would keep a CPU from a task that waits for one, often the
 * very peer it waits for, and a scheduler tick later that task runs.  The
 * effect is a matter of time, measured in BENCHMARKS.md ("Spinning on a
 * busy machine"); what is checked here is the decision.
 *
 * One CPU-bound process more than CPUs, of our weight.  The client first
 * runs until it sees both what the decision asks (more runnable tasks
 * than CPUs, and itself preempted: proc_cpus_busy, proc_thread_preempted),
 * as a thread that has had work to do would; then it plays ping-pong with
 * the server through shared memory (blocking reads and writes, 64 B each
 * way, every byte checked), both ends in shared memory.  A connection's
 * first waits would spin in full (nothing taught it otherwise), so the
 * client's must have been kept short: the counter spins_shortened grows.
 */
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "counters.h"
#include "harness.h"
#include "usmc_proc.h"

#define ROUNDS 200
#define MSG 64
#define PRIME_S 10

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

/* Runs until the host is busy and this thread was preempted lately. */
static void prime(void)
{
	time_t end = time(NULL) + PRIME_S;

	while (!(proc_cpus_busy() && proc_thread_preempted()))
		CHECK(time(NULL) < end);
}

static int client(void *arg)
{
	uint16_t port = (uint16_t)(uintptr_t)arg;
	uint8_t out[MSG], in[MSG];
	int fd;

	prime();
	fd = h_connect(AF_INET, H_USMC, port);
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
	int nhogs = cpus < 1 ? 2 : (int)cpus + 1;
	pid_t *hogs = calloc((size_t)nhogs, sizeof(*hogs));
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
