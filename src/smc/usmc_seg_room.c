// SPDX-License-Identifier: MIT
/*
 * Room for a new segment's descriptors: whether usmc may take three more
 * and still leave the program an eighth of its descriptor limit.
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/resource.h>
#include <unistd.h>

#include "usmc_core.h"
#include "usmc_proc.h"
#include "usmc_seg_room.h"
#include "usmc_sys.h"

/*
 * Near the limit a count costs a read of every entry of /proc/self/fd:
 * at a limit of 1,024, a fifth of a prefork worker's time when each
 * connection wanted a segment of its own, and its accepts fell behind.
 * So a count that found no room holds for FD_FULL_MS (the connections
 * meanwhile stay TCP, as they would have), unless usmc gives descriptors
 * back.  One that found room does not: a segment is not all a connection
 * takes (its channel, a carrier, a spare), and segments let go uncounted
 * for half the room a count left ran the process out of descriptors.
 */
#define FD_FULL_MS 20
static _Atomic int64_t fd_full_until;

/*
 * Whether a new segment's three descriptors leave the program an eighth of
 * its descriptor limit (at least 16): near the limit new connections stay
 * TCP, and the descriptors left are the program's.  Looked at for each
 * new segment (once for every 64 connections of a link group, and for a
 * one-connection link group only when no kept segment serves it,
 * usmc_seg_reuse.c), and counted where it is near (above).
 */
bool seg_fd_room(void)
{
	struct rlimit rl;
	struct dirent *de;
	uint64_t open_fds = 0, keep;
	long slots;
	DIR *d;

	if (getrlimit(RLIMIT_NOFILE, &rl) || rl.rlim_cur == RLIM_INFINITY)
		return true;
	keep = rl.rlim_cur / 8 > 16 ? rl.rlim_cur / 8 : 16;
	/*
	 * Every open descriptor has a number below the size of the process's
	 * table: if that leaves the room, there is no need to count.  Only
	 * near the limit are they counted one by one, which with 10,000
	 * connections read 10,000 entries of /proc/self/fd at each new
	 * segment, every 64 connections.
	 */
	if (proc_status_number("/proc/self/status", "FDSize:", &slots) && slots > 0 &&
	    (uint64_t)slots + 3 + keep <= rl.rlim_cur)
		return true;
	if (usmc_now_ms() < atomic_load(&fd_full_until))
		return false;
	d = opendir("/proc/self/fd");
	if (!d) {
		/*
		 * No /proc: a chroot (haproxy's workers as Debian ships them).
		 * Descriptors come lowest first, so the lowest free number
		 * tells how full the table is, as a channel's does.
		 */
		int probe = usmc_sys.open("/", O_PATH | O_CLOEXEC);

		if (probe >= 0)
			usmc_sys.close(probe);
		return probe >= 0 && (uint64_t)probe + 3 + keep <= rl.rlim_cur;
	}
	while ((de = readdir(d)))
		open_fds += de->d_name[0] != '.';
	closedir(d);
	if (open_fds + 3 + keep > rl.rlim_cur) {
		atomic_store(&fd_full_until, usmc_now_ms() + FD_FULL_MS);
		return false;
	}
	return true;
}

void seg_fd_room_again(void)
{
	atomic_store(&fd_full_until, 0);
}
