// SPDX-License-Identifier: MIT
/*
 * stat_counters.c - usmc-stat -s, and -s --reset.
 *
 * The file is read, not mapped: another process of the user may resize
 * it, and a mapping would fault where it no longer reaches.  "Since" is
 * the file's change time: it is set when the file is made and when it is
 * reset here, and the processes' own counting, through their mappings of
 * tmpfs pages, does not move it.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "usmc.h"
#include "usmc_stats.h"

#include "stat_counters.h"

static const char *const stat_names[USMC_STAT_COUNT] = {
	[USMC_STAT_SMC_CONNS] = "smcd_connections",
	[USMC_STAT_FALLBACKS] = "fallbacks",
	[USMC_STAT_BYTES_SENT] = "bytes_sent",
	[USMC_STAT_BYTES_RECEIVED] = "bytes_received",
	[USMC_STAT_BELLS] = "doorbells",
	[USMC_STAT_LGR_CREATED] = "link_groups_created",
	[USMC_STAT_SEGMENTS] = "segments_created",
	[USMC_STAT_CLC_SENT] = "clc_messages_sent",
	[USMC_STAT_CLC_RECEIVED] = "clc_messages_received",
	[USMC_STAT_ABORTS] = "aborts",
	[USMC_STAT_SEGMENTS_REUSED] = "segments_reused",
	[USMC_STAT_HS_TIMER_WAKEUPS] = "handshake_timer_wakeups",
	[USMC_STAT_RINGS_GROWN] = "rings_grown",
	[USMC_STAT_EXEC_SECURE] = "exec_secure",
	[USMC_STAT_ORPHANS_DROPPED] = "orphans_dropped",
	[USMC_STAT_SPINS_SHORTENED] = "spins_shortened",
	[USMC_STAT_RINGS_REWOUND] = "rings_rewound",
};

/* The user's counters file, read whole and checked; NULL (said why) if there is none. */
static struct usmc_stats_file *read_counters(int *fdp, time_t *since)
{
	struct usmc_stats_file *st = malloc(sizeof(*st));
	char path[256];
	struct stat sb;
	ssize_t n;
	int fd;

	usmc_stats_path(path, sizeof(path), (unsigned)getuid());
	fd = open(path, (fdp ? O_RDWR : O_RDONLY) | O_CLOEXEC);
	if (fd < 0 || !st || fstat(fd, &sb)) {
		fprintf(stderr, "usmc-stat: no counters yet (%s: %s)\n", path, strerror(errno));
		free(st);
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	n = pread(fd, st, sizeof(*st), 0);
	if (n != (ssize_t)sizeof(*st) || st->magic != USMC_STATS_MAGIC ||
	    st->version != USMC_STATS_VERSION) {
		fprintf(stderr, "usmc-stat: %s is not a usmc counters file\n", path);
		free(st);
		close(fd);
		return NULL;
	}
	*since = sb.st_ctime;
	if (fdp)
		*fdp = fd;
	else
		close(fd);
	return st;
}

int counters_show(bool json)
{
	time_t since;
	struct usmc_stats_file *st = read_counters(NULL, &since);
	char when[64];

	if (!st)
		return 1;
	strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S %z", localtime(&since));
	if (json)
		printf("{\"uid\": %u, \"since\": %lld, \"seconds\": %lld, \"counters\": {",
		       (unsigned)getuid(), (long long)since, (long long)(time(NULL) - since));
	else
		printf("usmc counters (uid %u) since %s, %lld s ago\n", (unsigned)getuid(), when,
		       (long long)(time(NULL) - since));
	for (int i = 0; i < USMC_STAT_COUNT; i++)
		printf(json ? "%s\"%s\": %" PRIu64 : "%s  %-24s %" PRIu64 "\n",
		       json && i ? ", " : "", stat_names[i], usmc_stats_total(st, i));
	printf(json ? "}, \"fallbacks_by_reason\": {" : "fallbacks by reason\n");
	for (int i = 0, n = 0; i < USMC_STATS_REASONS; i++) {
		uint32_t r = atomic_load(&st->fallback[i].reason);

		if (!r)
			continue;
		if (json)
			printf("%s\"0x%08x\": %" PRIu64, n++ ? ", " : "", r,
			       atomic_load(&st->fallback[i].count));
		else
			printf("  0x%08x %-32s %" PRIu64 "\n", r, usmc_reason_str(r),
			       atomic_load(&st->fallback[i].count));
	}
	if (json)
		printf("}}\n");
	free(st);
	return 0;
}

int counters_reset(void)
{
	time_t since;
	int fd;
	struct usmc_stats_file *st = read_counters(&fd, &since);
	size_t start = offsetof(struct usmc_stats_file, fallback);
	char *zero;
	int rc = 0;

	if (!st)
		return 1;
	/* Everything after the header; processes counting meanwhile may lose an increment. */
	zero = calloc(1, sizeof(*st) - start);
	if (!zero || pwrite(fd, zero, sizeof(*st) - start, (off_t)start) != (ssize_t)(sizeof(*st) - start)) {
		fprintf(stderr, "usmc-stat: cannot reset the counters: %s\n", strerror(errno));
		rc = 1;
	}
	free(zero);
	free(st);
	close(fd);
	return rc;
}
