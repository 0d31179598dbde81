/* SPDX-License-Identifier: MIT */
/*
 * The counters of a test's own registry directory (USMC_REGISTRY_DIR), as
 * usmc-stat -s reads them: connection ends in shared memory, fallbacks,
 * fallbacks for a CLC timeout, and any other counter.
 */
#ifndef USMC_TEST_COUNTERS_H
#define USMC_TEST_COUNTERS_H

#include <fcntl.h>
#include <sys/mman.h>

#include "harness.h"
#include "usmc_stats.h"

/*
 * The counters file of uid, mapped read-only (munmap(f, sizeof(*f)) when
 * done); NULL if that user has none and may_lack.
 */
static inline struct usmc_stats_file *counters_map_of(unsigned uid, bool may_lack)
{
	struct usmc_stats_file *f;
	char path[256];
	int fd;

	usmc_stats_path(path, sizeof(path), uid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 && may_lack)
		return NULL;
	CHECK(fd >= 0);
	f = mmap(NULL, sizeof(*f), PROT_READ, MAP_SHARED, fd, 0);
	close(fd);
	CHECK(f != MAP_FAILED);
	return f;
}

/* Our user's counters file, which must be there. */
static inline struct usmc_stats_file *counters_map(void)
{
	return counters_map_of((unsigned)getuid(), false);
}

/* One counter's total in uid's file: 0 if that user has none. */
static inline uint64_t counter_of(unsigned uid, enum usmc_stat stat)
{
	struct usmc_stats_file *f = counters_map_of(uid, true);
	uint64_t n = f ? usmc_stats_total(f, stat) : 0;

	if (f)
		munmap(f, sizeof(*f));
	return n;
}

/* One counter's total, in our user's file (which must be there). */
static inline uint64_t counter(enum usmc_stat stat)
{
	struct usmc_stats_file *f = counters_map();
	uint64_t n = usmc_stats_total(f, stat);

	munmap(f, sizeof(*f));
	return n;
}

static inline void counters(uint64_t *smc, uint64_t *fallbacks, uint64_t *clc_timeouts)
{
	struct usmc_stats_file *f = counters_map();

	*smc = usmc_stats_total(f, USMC_STAT_SMC_CONNS);
	*fallbacks = usmc_stats_total(f, USMC_STAT_FALLBACKS);
	*clc_timeouts = 0;
	for (int i = 0; i < USMC_STATS_REASONS; i++)
		if (f->fallback[i].reason == USMC_DECL_TIMEOUT_CLC)
			*clc_timeouts = f->fallback[i].count;
	munmap(f, sizeof(*f));
}

#endif
