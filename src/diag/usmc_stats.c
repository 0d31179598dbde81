// SPDX-License-Identifier: MIT
/*
 * Shared counters.  Without the file (no /dev/shm, another owner, no room
 * left there) the counters are kept in process memory: statistics never
 * stop a connection.
 */
#include "usmc_core.h"
#include "usmc_shared_file.h"
#include "usmc_stats.h"
#include "usmc_sys.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static struct usmc_stats_file local_stats;
static struct usmc_stats_file *stats = &local_stats;
static pthread_once_t stats_once = PTHREAD_ONCE_INIT;
static _Atomic bool stats_done;

int usmc_stats_path(char *buf, size_t len, unsigned uid)
{
	const char *dir = getenv("USMC_REGISTRY_DIR");

	return snprintf(buf, len, "%s/usmc-%u-stats.%d", dir ? dir : "/dev/shm", uid,
			USMC_STATS_VERSION);
}

/*
 * The file of the user whose files this process makes: its effective
 * user.  That is its real user but in a process that changed one without
 * the other (squid's master, real user proxy and effective root, before
 * it execs its worker): a file it made in the real user's name would be
 * root's, of no use to it and in the way of that user's processes.
 */
static void stats_open(void)
{
	struct usmc_stats_file *map;
	char path[256];

	usmc_stats_path(path, sizeof(path), (unsigned)geteuid());
	map = usmc_shared_file_map(path, sizeof(*stats), geteuid());
	if (!map)
		return;
	if (map->magic != USMC_STATS_MAGIC) {
		map->version = USMC_STATS_VERSION;
		map->magic = USMC_STATS_MAGIC;
	}
	stats = map;
}

void usmc_stats_open(void)
{
	usmc_once(&stats_once, &stats_done, stats_open);
}

/* The thread's slot: its id spreads the threads of all processes. */
static __thread __attribute__((tls_model("initial-exec"))) int thread_slot = -1;

void usmc_stats_add(enum usmc_stat stat, uint64_t n)
{
	usmc_once(&stats_once, &stats_done, stats_open);
	if (thread_slot < 0)
		thread_slot = (int)((unsigned)gettid() % USMC_STATS_SLOTS);
	atomic_fetch_add_explicit(&stats->slot[thread_slot].counter[stat], n, memory_order_relaxed);
}

uint64_t usmc_stats_total(const struct usmc_stats_file *f, enum usmc_stat stat)
{
	uint64_t sum = 0;

	if (stat == USMC_STAT_FALLBACKS) {
		for (int i = 0; i < USMC_STATS_REASONS; i++)
			sum += atomic_load_explicit(&f->fallback[i].count, memory_order_relaxed);
		return sum + atomic_load_explicit(&f->fallback_other, memory_order_relaxed);
	}
	for (int i = 0; i < USMC_STATS_SLOTS; i++)
		sum += atomic_load_explicit(&f->slot[i].counter[stat], memory_order_relaxed);
	return sum;
}

/* One line touched per fallback: the total is the sum of the reasons. */
void usmc_stats_fallback(uint32_t reason)
{
	usmc_once(&stats_once, &stats_done, stats_open);
	for (int i = 0; i < USMC_STATS_REASONS; i++) {
		uint32_t r = atomic_load_explicit(&stats->fallback[i].reason, memory_order_relaxed);

		if (r == 0 && !atomic_compare_exchange_strong(&stats->fallback[i].reason, &r, reason) &&
		    r != reason)
			continue;
		if (r == 0 || r == reason) {
			atomic_fetch_add_explicit(&stats->fallback[i].count, 1, memory_order_relaxed);
			return;
		}
	}
	atomic_fetch_add_explicit(&stats->fallback_other, 1, memory_order_relaxed);
}
