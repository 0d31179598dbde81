// SPDX-License-Identifier: MIT
/*
 * Files of this user's that its processes map together (usmc_shared_file.h).
 */
#include "usmc_shared_file.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "usmc_sys.h"

/*
 * Maps len bytes of a file of ours shared by this user's processes (the
 * registry, the counters), every page allocated first: these files live on
 * a tmpfs another user can fill, and a page first touched there when it
 * is full is SIGBUS, not an error.  The allocation fails instead, and the
 * caller goes on without the file.  Only a process of this user can
 * shrink the file afterwards, and that one may as well kill(2) us.
 */
void *usmc_shared_file_map(const char *path, size_t len, uid_t owner)
{
	struct stat st;
	void *map;
	int fd, err = 0;

	fd = usmc_sys.open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return NULL;
	/* Someone else's file, or not a plain file: do not trust it. */
	if (fstat(fd, &st) || st.st_uid != owner || !S_ISREG(st.st_mode) ||
	    (st.st_mode & 077) || ((size_t)st.st_size < len && ftruncate(fd, (off_t)len)))
		err = -1;
	/* A signal (a stop and continue, say) interrupts it; what it allocated stays. */
	while (!err && (err = posix_fallocate(fd, 0, (off_t)len)) == EINTR)
		err = 0;
	if (err || fstat(fd, &st) || (size_t)st.st_size < len) {
		usmc_sys.close(fd);
		return NULL;
	}
	map = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	usmc_sys.close(fd);
	return map == MAP_FAILED ? NULL : map;
}
