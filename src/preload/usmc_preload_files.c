// SPDX-License-Identifier: MIT
/*
 * The calls that make a program's other descriptors: files, pipes,
 * eventfds.  usmc's own descriptors count toward the program's
 * RLIMIT_NOFILE, and a connection to a prefork server keeps several.
 * nginx as Debian ships it (two workers, 768 connections each, the limit
 * of 1,024 systemd gives) answered "500 Internal Server Error" to a few
 * hundred clients at once: its open() of the file to serve met EMFILE.
 * So these calls do what socket() and accept() do (usmc_inet.c): at
 * EMFILE usmc gives back the descriptors its segments keep only for later
 * (usmc_fd_give_back), and the call is made again.  Nothing else changes:
 * each passes its arguments to the real call as it got them.
 */

/* The fortified inline wrappers of the libc headers would clash with our definitions. */
#undef _FORTIFY_SOURCE

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "usmc_fd.h"
#include "usmc_preload.h"
#include "usmc_sys.h"

/* The mode argument that open() and openat() take with O_CREAT or O_TMPFILE. */
#define MODE_ARG(flags, last, mode)                 \
	do {                                        \
		if (__OPEN_NEEDS_MODE(flags)) {     \
			va_list ap;                 \
			va_start(ap, last);         \
			mode = va_arg(ap, mode_t);  \
			va_end(ap);                 \
		}                                   \
	} while (0)

/* Made again once if it met EMFILE and usmc gave descriptors back. */
#define AGAIN(call)                                         \
	({                                                  \
		int fd_ = (call);                           \
		if (fd_ < 0 && usmc_fd_give_back())         \
			fd_ = (call);                       \
		fd_;                                        \
	})

EXPORT int open(const char *path, int flags, ...)
{
	mode_t mode = 0;

	MODE_ARG(flags, flags, mode);
	preload_bound();
	return AGAIN(usmc_sys.open(path, flags, mode));
}

EXPORT int openat(int dirfd, const char *path, int flags, ...)
{
	mode_t mode = 0;

	MODE_ARG(flags, flags, mode);
	preload_bound();
	return AGAIN(usmc_sys.openat(dirfd, path, flags, mode));
}

/* The fortified forms, for flags the compiler could not see: never with O_CREAT. */
EXPORT int __open_2(const char *path, int flags)
{
	preload_bound();
	return AGAIN(usmc_sys.open(path, flags));
}

EXPORT int __openat_2(int dirfd, const char *path, int flags)
{
	preload_bound();
	return AGAIN(usmc_sys.openat(dirfd, path, flags));
}

EXPORT int creat(const char *path, mode_t mode)
{
	preload_bound();
	return AGAIN(usmc_sys.creat(path, mode));
}

/* On the 64-bit machines usmc runs on, the 64 forms are the same calls. */
EXPORT int open64(const char *path, int flags, ...) ALIAS_OF(open);
EXPORT int openat64(int dirfd, const char *path, int flags, ...) ALIAS_OF(openat);
EXPORT int __open64_2(const char *path, int flags) ALIAS_OF(__open_2);
EXPORT int __openat64_2(int dirfd, const char *path, int flags) ALIAS_OF(__openat_2);
EXPORT int creat64(const char *path, mode_t mode) ALIAS_OF(creat);

EXPORT int pipe(int fds[2])
{
	preload_bound();
	return AGAIN(usmc_sys.pipe(fds));
}

EXPORT int pipe2(int fds[2], int flags)
{
	preload_bound();
	return AGAIN(usmc_sys.pipe2(fds, flags));
}

EXPORT int eventfd(unsigned int count, int flags)
{
	preload_bound();
	return AGAIN(usmc_sys.eventfd(count, flags));
}
