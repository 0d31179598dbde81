/* SPDX-License-Identifier: MIT */
/* Files looked at again at most once a second (usmc_watch.h). */
#include <time.h>

#include "usmc_watch.h"

#define WATCH_SECONDS 1

/* The coarse clock is read in the vDSO: no system call on the hot path. */
static long coarse_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (long)ts.tv_sec;
}

bool usmc_watch_due(struct usmc_watch *w)
{
	long now = coarse_seconds(), next = atomic_load_explicit(&w->next_look, memory_order_relaxed);

	return now >= next &&
	       atomic_compare_exchange_strong(&w->next_look, &next, now + WATCH_SECONDS);
}

bool usmc_watch_changed(struct usmc_watch *w, const struct stat *st)
{
	const struct stat *o = &w->seen;
	bool changed;

	if (!st) {
		changed = o->st_ino != 0;
		w->seen.st_ino = 0;
		return changed;
	}
	changed = st->st_ino != o->st_ino || st->st_dev != o->st_dev || st->st_size != o->st_size ||
		  st->st_mtim.tv_sec != o->st_mtim.tv_sec || st->st_mtim.tv_nsec != o->st_mtim.tv_nsec;
	w->seen = *st;
	return changed;
}
