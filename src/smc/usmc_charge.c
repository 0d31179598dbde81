// SPDX-License-Identifier: MIT
/*
 * Charging a ring's pages before the connection is agreed.  A memfd's
 * pages are charged to the memory cgroup when first touched; touched in
 * the middle of a transfer, past the cgroup's limit, they bring the OOM
 * killer.  So a slot's pages are allocated (fallocate) when the slot is
 * first taken, before the Proposal or Accept that offers it, and only if
 * the cgroup and its ancestors have room for them and a reserve to spare:
 * a charge past memory.max kills even from a system call, it does not
 * fail.  No room means fallback (0x01010000), before any byte moves.
 *
 * The reserve is the application's, not ours: the memory it would have
 * had under TCP to grow into after its connections are up.  It is a part
 * of each limit (an eighth, at least 4 MiB), for the whole cgroup rather
 * than for one process: a client and its server in one cgroup both charge
 * down to it, and then both go on allocating.  Page cache that can be
 * dropped (inactive files) counts as room, as the kernel would reclaim it
 * before it killed.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "usmc.h"
#include "usmc_charge.h"
#include "usmc_core.h"
#include "usmc_sys.h"

/* The least reserve a limit keeps; a larger limit keeps a part of itself. */
#define CHARGE_RESERVE_MIN (4u << 20)
#define CHARGE_RESERVE_SHIFT 3
/* v1 writes no limit as the largest page count it has, v2 as "max". */
#define CHARGE_NO_LIMIT (1ull << 62)
/*
 * A ring is charged a piece at a time, the room looked at before each:
 * the look and the charge are not one step, and the processes of a
 * cgroup (a client and its server) charge at once.  Pieces small beside
 * the reserve keep what several of them take between a look and a charge
 * inside it.
 */
#define CHARGE_PIECE (256u << 10)

static struct {
	char dir[PATH_MAX]; /* our memory cgroup's directory */
	size_t root_len;    /* the length of its hierarchy's mount point */
	bool v2;
	bool found;
} memcg;
static pthread_once_t memcg_once = PTHREAD_ONCE_INIT;
static _Atomic bool memcg_done;

/* Where the file system of type fstype (with option opt, if given) is mounted. */
static bool mount_point(const char *fstype, const char *opt, char *out, size_t len)
{
	char line[2048], mnt[1024], type[64], super[1024], want[80];
	bool found = false;
	FILE *f = fopen("/proc/self/mountinfo", "re");

	snprintf(want, sizeof(want), ",%s,", opt ? opt : "");
	while (f && !found && fgets(line, sizeof(line), f)) {
		const char *dash = strstr(line, " - ");
		char opts[1030];

		if (!dash || sscanf(line, "%*s %*s %*s %*s %1023s", mnt) != 1 ||
		    sscanf(dash + 3, "%63s %*s %1023s", type, super) != 2 || strcmp(type, fstype))
			continue;
		snprintf(opts, sizeof(opts), ",%s,", super);
		found = !opt || strstr(opts, want);
	}
	if (f)
		usmc_sys.fclose(f);
	if (found)
		snprintf(out, len, "%s", mnt);
	return found;
}

/* Our memory cgroup: v1's memory hierarchy if there is one, else v2's. */
static void memcg_find(void)
{
	char line[1024], v1[PATH_MAX / 2] = "", v2[PATH_MAX / 2] = "", mnt[PATH_MAX / 2];
	FILE *f = fopen("/proc/self/cgroup", "re");

	while (f && fgets(line, sizeof(line), f)) {
		char *ctrl = strchr(line, ':'), *path = ctrl ? strchr(ctrl + 1, ':') : NULL;
		char list[256];

		if (!path)
			continue;
		path[strcspn(path, "\n")] = 0;
		snprintf(list, sizeof(list), ",%.*s,", (int)(path - ctrl - 1), ctrl + 1);
		if (strstr(list, ",memory,"))
			snprintf(v1, sizeof(v1), "%s", path + 1);
		else if (!strncmp(line, "0::", 3))
			snprintf(v2, sizeof(v2), "%s", path + 1);
	}
	if (f)
		usmc_sys.fclose(f);
	if (v1[0] && mount_point("cgroup", "memory", mnt, sizeof(mnt)))
		memcg.v2 = false;
	else if (v2[0] && mount_point("cgroup2", NULL, mnt, sizeof(mnt)))
		memcg.v2 = true;
	else
		return;
	memcg.root_len = strlen(mnt);
	snprintf(memcg.dir, sizeof(memcg.dir), "%s%s", mnt, memcg.v2 ? v2 : v1);
	memcg.found = true;
}

/* A number in a cgroup file ("max" is no limit); false if there is none. */
static bool read_u64(const char *dir, const char *name, uint64_t *v)
{
	char path[PATH_MAX + 32], buf[32] = "";
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "re");
	if (!f)
		return false;
	if (!fgets(buf, sizeof(buf), f))
		buf[0] = 0;
	usmc_sys.fclose(f);
	if (!strncmp(buf, "max", 3)) {
		*v = UINT64_MAX;
		return true;
	}
	return sscanf(buf, "%lu", (unsigned long *)v) == 1;
}

/* Page cache of a cgroup that reclaim drops first: inactive files, its subtree's. */
static uint64_t memcg_reclaimable(const char *dir)
{
	char path[PATH_MAX + 32], line[128];
	const char *key = memcg.v2 ? "inactive_file " : "total_inactive_file ";
	unsigned long long v = 0;
	FILE *f;

	snprintf(path, sizeof(path), "%s/memory.stat", dir);
	f = fopen(path, "re");
	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, key, strlen(key)) && sscanf(line + strlen(key), "%llu", &v) == 1)
			break;
	if (f)
		usmc_sys.fclose(f);
	return v;
}

/* Room beyond its reserve under a limit of max with cur in use, less cache if counted. */
static uint64_t limit_room(uint64_t max, uint64_t cur, uint64_t cache)
{
	uint64_t reserve = max >> CHARGE_RESERVE_SHIFT, used = cur > cache ? cur - cache : 0;

	reserve = reserve > CHARGE_RESERVE_MIN ? reserve : CHARGE_RESERVE_MIN;
	return max > used + reserve ? max - used - reserve : 0;
}

/*
 * Until when (usmc_now_ms) no level of our cgroup had a limit when last
 * looked at.  Most machines have none, and a connection whose rings take
 * new pages charges a few times, each look a file a level: the answer is
 * kept for a second.  A limit set within that second is seen at the next
 * look after it; lowering a limit below what a cgroup uses brings
 * reclaim and the OOM killer whatever we do.
 */
#define CHARGE_UNLIMITED_MS 1000
static _Atomic int64_t memcg_unlimited_until;

/*
 * Whether every memory limit from our cgroup up to the root leaves want
 * bytes beyond its reserve.  A level without a limit costs one file, and
 * the page cache (memory.stat) is read only where the plain count falls
 * short: a charge comes a piece at a time, each piece looked at again.
 */
static bool memcg_has_room(uint64_t want)
{
	int64_t now = usmc_now_ms();
	bool limited = false;
	char dir[PATH_MAX];

	if (now < atomic_load_explicit(&memcg_unlimited_until, memory_order_relaxed))
		return true;
	snprintf(dir, sizeof(dir), "%s", memcg.dir);
	for (;;) {
		uint64_t max, cur;
		char *slash;

		if (read_u64(dir, memcg.v2 ? "memory.max" : "memory.limit_in_bytes", &max) &&
		    max < CHARGE_NO_LIMIT) {
			limited = true;
			if (read_u64(dir, memcg.v2 ? "memory.current" : "memory.usage_in_bytes", &cur) &&
			    limit_room(max, cur, 0) < want &&
			    limit_room(max, cur, memcg_reclaimable(dir)) < want)
				return false;
		}
		slash = strrchr(dir, '/');
		if (!slash || (size_t)(slash - dir) < memcg.root_len)
			break;
		*slash = 0;
	}
	if (!limited)
		atomic_store_explicit(&memcg_unlimited_until, now + CHARGE_UNLIMITED_MS,
				      memory_order_relaxed);
	return true;
}

uint32_t usmc_charge(int fd, uint64_t off, uint64_t len)
{
	uint64_t done = 0, piece;

	usmc_once(&memcg_once, &memcg_done, memcg_find);
	if (memcg.found && !memcg_has_room(len))
		return USMC_DECL_MEM;
	for (; done < len; done += piece) {
		piece = len - done < CHARGE_PIECE ? len - done : CHARGE_PIECE;
		if (done && memcg.found && !memcg_has_room(piece))
			goto undo;
		/* A signal interrupts it; what it allocated stays, so go on. */
		while (fallocate(fd, 0, (off_t)(off + done), (off_t)piece))
			if (errno != EINTR)
				goto undo;
	}
	return 0;
undo:
	/* What was charged goes back to the application, whose memory it is. */
	fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)done);
	return USMC_DECL_MEM;
}
