// SPDX-License-Identifier: MIT
/*
 * What the machine allows, to read the transports' figures against.
 *
 * memcpy: a shared-memory stream copies every byte twice (into the ring,
 * out of it), on two cores at once, so one thread's memcpy bandwidth is
 * about its ceiling.  Measured into a 256 KiB ring (cache resident) and
 * through 64 MiB (memory).
 *
 * Wake-up round trip: two processes taking turns through shared memory,
 * sleeping in a futex, sleeping in a pipe read, or spinning.  A blocking
 * ping-pong over any transport needs at least two wake-ups per round trip.
 */
#include <linux/futex.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

#define BLOCK (64 << 10)

static double memcpy_gbs(size_t span, double duration)
{
	char *src = malloc(span < BLOCK ? BLOCK : span), *dst = malloc(span);
	uint64_t bytes = 0;
	double start, t;

	if (!src || !dst) {
		free(src);
		free(dst);
		return 0;
	}
	/* Touch every page first: page faults are not memcpy. */
	memset(src, 1, span < BLOCK ? BLOCK : span);
	memset(dst, 2, span);
	start = t = now_sec();
	for (size_t off = 0; t - start < duration; off = (off + BLOCK) % span) {
		memcpy(dst + off, src + (span > BLOCK ? off : 0), BLOCK);
		__asm__ volatile("" ::: "memory"); /* the copy must happen */
		bytes += BLOCK;
		if (off == 0 || bytes % (16 * BLOCK) == 0)
			t = now_sec();
	}
	free(src);
	free(dst);
	return (double)bytes / (t - start) / 1e9;
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
}

enum wake_kind { WAKE_FUTEX, WAKE_PIPE, WAKE_SPIN };

struct turn {
	_Atomic uint32_t seq; /* odd: the partner's turn, even: ours */
	_Atomic uint32_t stop;
};

static void futex_wait(_Atomic uint32_t *addr, uint32_t val)
{
	syscall(SYS_futex, addr, FUTEX_WAIT, val, NULL, NULL, 0);
}

static void futex_wake(_Atomic uint32_t *addr)
{
	syscall(SYS_futex, addr, FUTEX_WAKE, 1, NULL, NULL, 0);
}

/* Waits until seq becomes want; spins or sleeps. */
static void turn_wait(struct turn *t, uint32_t want, enum wake_kind kind)
{
	uint32_t v;

	while ((v = atomic_load_explicit(&t->seq, memory_order_acquire)) != want) {
		if (kind == WAKE_FUTEX)
			futex_wait(&t->seq, v);
		else
			cpu_relax();
	}
}

static void turn_pass(struct turn *t, uint32_t val, enum wake_kind kind)
{
	atomic_store_explicit(&t->seq, val, memory_order_release);
	if (kind == WAKE_FUTEX)
		futex_wake(&t->seq);
}

/* The partner: answers each odd seq with the next even one, until stop. */
static void partner(struct turn *t, int rd, int wr, enum wake_kind kind)
{
	char c;

	for (uint32_t seq = 1;; seq += 2) {
		if (kind == WAKE_PIPE) {
			if (read(rd, &c, 1) != 1 || write(wr, &c, 1) != 1)
				_exit(0);
			continue;
		}
		turn_wait(t, seq, kind);
		if (atomic_load(&t->stop))
			_exit(0);
		turn_pass(t, seq + 1, kind);
	}
}

static bool one_round(struct turn *t, uint32_t seq, int rd, int wr, enum wake_kind kind)
{
	char c = 1;

	if (kind == WAKE_PIPE)
		return write(wr, &c, 1) == 1 && read(rd, &c, 1) == 1;
	turn_pass(t, seq, kind);
	turn_wait(t, seq + 1, kind);
	return true;
}

static void wake_round_trip(enum wake_kind kind, double duration, double us[2])
{
	struct turn *t = mmap(NULL, sizeof(*t), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	uint32_t *ns = malloc(sizeof(*ns) << 20);
	int there[2], back[2];
	size_t n = 0;
	uint32_t seq = 1;
	pid_t pid;
	double end;

	us[0] = us[1] = 0;
	if (t == MAP_FAILED || !ns || pipe(there) || pipe(back)) {
		free(ns);
		return;
	}
	pid = fork();
	if (pid == 0) {
		close(there[1]);
		close(back[0]);
		partner(t, there[0], back[1], kind);
	}
	end = now_sec() + duration;
	while (pid > 0) {
		double t0 = now_sec(), t1;

		if (!one_round(t, seq, back[0], there[1], kind))
			break;
		t1 = now_sec();
		ns[n++] = (uint32_t)((t1 - t0) * 1e9);
		seq += 2;
		if (t1 >= end || n == 1u << 20)
			break;
	}
	/* The partner waits for seq: it finds stop set, and the pipe closed. */
	atomic_store(&t->stop, 1);
	turn_pass(t, seq, WAKE_FUTEX);
	close(there[1]);
	if (pid > 0)
		waitpid(pid, NULL, 0);
	close(there[0]);
	close(back[0]);
	close(back[1]);
	if (n) {
		us[0] = percentile(ns, n, 0.50);
		us[1] = percentile(ns, n, 0.99);
	}
	free(ns);
	munmap(t, sizeof(*t));
}

void limits_measure(double duration, struct limits *l)
{
	memset(l, 0, sizeof(*l));
	l->memcpy_ring_gbs = memcpy_gbs(256 << 10, duration);
	l->memcpy_big_gbs = memcpy_gbs(64 << 20, duration);
	wake_round_trip(WAKE_FUTEX, duration, l->futex_us);
	wake_round_trip(WAKE_PIPE, duration, l->pipe_us);
	wake_round_trip(WAKE_SPIN, duration, l->spin_us);
}
