/* SPDX-License-Identifier: MIT */
/*
 * Counters (net/smc's smc_stats), shared by all usmc processes of a user
 * in one small file, so that usmc-stat -s shows the host's totals.  Like
 * smc_stats they are spread out (smc_stats per CPU, here per thread): every
 * write and read adds its bytes, and one cache line that all of them
 * updated would bounce between the CPUs of every streaming connection on
 * the host.  usmc-stat adds the slots up.
 */
#ifndef USMC_STATS_H
#define USMC_STATS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

enum usmc_stat {
	USMC_STAT_SMC_CONNS,      /* connections that used shared memory */
	USMC_STAT_FALLBACKS,      /* connections that fell back to TCP: the reasons' sum */
	USMC_STAT_BYTES_SENT,     /* through shared memory */
	USMC_STAT_BYTES_RECEIVED, /* through shared memory */
	USMC_STAT_BELLS,          /* doorbells rung */
	USMC_STAT_LGR_CREATED,
	USMC_STAT_SEGMENTS,
	USMC_STAT_CLC_SENT,
	USMC_STAT_CLC_RECEIVED,
	USMC_STAT_ABORTS,         /* connections reset: a misbehaving peer, a close with unread data or SO_LINGER {1, 0} */
	USMC_STAT_SEGMENTS_REUSED, /* a one-connection link group's segment, kept for the next */
	/*
	 * Handshakes that a wait settled when its time slice ended, not an
	 * event (usmc_proposed_wait_ms): an answer that came with nothing on
	 * TCP to wake an epoll wait (no Accept's doorbell, no marker), or a
	 * Proposal given up after a CLC timeout.
	 */
	USMC_STAT_HS_TIMER_WAKEUPS,
	USMC_STAT_RINGS_GROWN,    /* laps that gave a ring more of its slot, its reader lagging */
	/*
	 * Execs the kernel runs in secure-execution mode (AT_SECURE) with
	 * this library in LD_PRELOAD by a path, which the loader then
	 * ignores: the new image runs without usmc, plain TCP.
	 */
	USMC_STAT_EXEC_SECURE,
	/*
	 * Proposals of clients that closed before the answer, dropped
	 * unmatched when the last listener of their port in the process
	 * closed: their connections were never accepted here.
	 */
	USMC_STAT_ORPHANS_DROPPED,
	/*
	 * Waits that would have spun in full and spun short, every CPU
	 * having work and the waiter preempted lately (usmc_wait.c): the
	 * spin would have kept one from a task waiting for it.
	 */
	USMC_STAT_SPINS_SHORTENED,
	/*
	 * Laps our writer ended early to begin again at the ring's start, its
	 * reader having read all of them (usmc_tx.c).
	 */
	USMC_STAT_RINGS_REWOUND,
	USMC_STAT_COUNT
};

/* Fallbacks by reason: a small table of (reason, count). */
#define USMC_STATS_REASONS 32

/* A thread counts in the slot of its thread id; threads may share one. */
#define USMC_STATS_SLOTS 64

struct usmc_stats_slot {
	_Alignas(128) _Atomic uint64_t counter[USMC_STAT_COUNT];
};

struct usmc_stats_file {
	uint32_t magic;
	uint32_t version;
	/* First, so that a fallback touches one page, the table and a slot. */
	struct {
		_Atomic uint32_t reason;
		uint32_t pad;
		_Atomic uint64_t count;
	} fallback[USMC_STATS_REASONS];
	_Atomic uint64_t fallback_other; /* reasons beyond the table's */
	struct usmc_stats_slot slot[USMC_STATS_SLOTS];
};

#define USMC_STATS_MAGIC 0x75736d63u /* "usmc" */
#define USMC_STATS_VERSION 3

void usmc_stats_add(enum usmc_stat stat, uint64_t n);
/*
 * Maps the counters file now, as the registry is opened: a process that
 * changes its root afterwards (haproxy's workers chroot to an empty
 * directory) still counts where usmc-stat reads, as its forks do.
 */
void usmc_stats_open(void);
/* A counter's total over the slots. */
uint64_t usmc_stats_total(const struct usmc_stats_file *f, enum usmc_stat stat);
void usmc_stats_fallback(uint32_t reason);

/* The path of the counters file for a user. */
int usmc_stats_path(char *buf, size_t len, unsigned uid);

#endif /* USMC_STATS_H */
