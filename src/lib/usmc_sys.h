/* SPDX-License-Identifier: MIT */
/*
 * The system calls usmc makes itself.
 *
 * When usmc is preloaded into a program it defines read(), socket() and
 * the rest, so a plain call to read() from inside usmc would come back to
 * usmc.  Every call that may be interposed therefore goes through this
 * table: libc's functions in a linked build, the next definitions after
 * ours (dlsym RTLD_NEXT) in the preloaded one.
 *
 * USMC_SYS_CALLS is the one list of those calls.  It makes the table, and
 * its binding in both builds; every socket call the preload exports is in
 * it (tests/interposed_names.sh checks both that and that no object of
 * the library names one of them directly), so the preload's wrappers pass
 * what is not usmc's to the same table.  The preload's version script is
 * made from this list (src/preload/usmc_preload_names.h): a new
 * interposed call is one line here and one wrapper.  (A libc that lacks
 * a call gets a stub answering ENOSYS; every entry but the void closefrom
 * returns an int, a long, a pid_t or an ssize_t.)
 */
#ifndef USMC_SYS_H
#define USMC_SYS_H

#include <stdbool.h>

#include <aio.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>

/* X(return type, name, parameter types) */
/* Taken over by an assembly stub (usmc_preload_syscall.c), where there is one. */
#if defined(__x86_64__) || defined(__aarch64__)
#define USMC_SYS_VFORK(X) X(pid_t, vfork, (void))
#else
#define USMC_SYS_VFORK(X)
#endif

#define USMC_SYS_CALLS(X)                                                                     \
	X(int, socket, (int, int, int))                                                       \
	X(int, socketpair, (int, int, int, int *))                                            \
	X(int, bind, (int, const struct sockaddr *, socklen_t))                               \
	X(int, listen, (int, int))                                                            \
	X(int, connect, (int, const struct sockaddr *, socklen_t))                            \
	X(int, accept, (int, struct sockaddr *, socklen_t *))                                 \
	X(int, accept4, (int, struct sockaddr *, socklen_t *, int))                           \
	X(int, shutdown, (int, int))                                                          \
	X(int, close, (int))                                                                  \
	X(int, fclose, (FILE *))                                                              \
	X(int, close_range, (unsigned int, unsigned int, int))                                \
	X(void, closefrom, (int))                                                             \
	X(int, dup, (int))                                                                    \
	X(int, dup2, (int, int))                                                              \
	X(int, dup3, (int, int, int))                                                         \
	X(int, fcntl, (int, int, ...))                                                        \
	X(int, fcntl64, (int, int, ...))                                                      \
	X(int, ioctl, (int, unsigned long, ...))                                              \
	X(int, getsockopt, (int, int, int, void *, socklen_t *))                              \
	X(int, setsockopt, (int, int, int, const void *, socklen_t))                          \
	X(int, getsockname, (int, struct sockaddr *, socklen_t *))                            \
	X(ssize_t, read, (int, void *, size_t))                                               \
	X(ssize_t, write, (int, const void *, size_t))                                        \
	X(ssize_t, readv, (int, const struct iovec *, int))                                   \
	X(ssize_t, writev, (int, const struct iovec *, int))                                  \
	X(ssize_t, preadv2, (int, const struct iovec *, int, off_t, int))                     \
	X(ssize_t, pwritev2, (int, const struct iovec *, int, off_t, int))                    \
	X(ssize_t, preadv64v2, (int, const struct iovec *, int, off64_t, int))                \
	X(ssize_t, pwritev64v2, (int, const struct iovec *, int, off64_t, int))               \
	X(ssize_t, recv, (int, void *, size_t, int))                                          \
	X(ssize_t, send, (int, const void *, size_t, int))                                    \
	X(ssize_t, recvfrom, (int, void *, size_t, int, struct sockaddr *, socklen_t *))      \
	X(ssize_t, sendto, (int, const void *, size_t, int, const struct sockaddr *, socklen_t)) \
	X(ssize_t, recvmsg, (int, struct msghdr *, int))                                      \
	X(ssize_t, sendmsg, (int, const struct msghdr *, int))                                \
	X(int, recvmmsg, (int, struct mmsghdr *, unsigned int, int, struct timespec *))       \
	X(int, sendmmsg, (int, struct mmsghdr *, unsigned int, int))                          \
	X(ssize_t, sendfile, (int, int, off_t *, size_t))                                     \
	X(ssize_t, sendfile64, (int, int, off64_t *, size_t))                                 \
	X(ssize_t, splice, (int, loff_t *, int, loff_t *, size_t, unsigned int))              \
	X(int, poll, (struct pollfd *, nfds_t, int))                                          \
	X(int, ppoll, (struct pollfd *, nfds_t, const struct timespec *, const sigset_t *))   \
	X(int, select, (int, fd_set *, fd_set *, fd_set *, struct timeval *))                 \
	X(int, pselect,                                                                       \
	  (int, fd_set *, fd_set *, fd_set *, const struct timespec *, const sigset_t *))     \
	X(int, epoll_ctl, (int, int, int, struct epoll_event *))                              \
	X(int, epoll_wait, (int, struct epoll_event *, int, int))                             \
	X(int, epoll_pwait, (int, struct epoll_event *, int, int, const sigset_t *))          \
	X(int, epoll_pwait2,                                                                  \
	  (int, struct epoll_event *, int, const struct timespec *, const sigset_t *))       \
	X(long, syscall, (long, ...))                                                         \
	X(pid_t, _Fork, (void))                                                               \
	USMC_SYS_VFORK(X)                                                                     \
	X(int, aio_read, (struct aiocb *))                                                    \
	X(int, aio_write, (struct aiocb *))                                                   \
	X(int, aio_read64, (struct aiocb64 *))                                                \
	X(int, aio_write64, (struct aiocb64 *))                                               \
	X(int, lio_listio, (int, struct aiocb *const[], int, struct sigevent *))              \
	X(int, lio_listio64, (int, struct aiocb64 *const[], int, struct sigevent *))          \
	X(int, clone, (int (*)(void *), void *, int, void *, ...))                            \
	X(int, prctl, (int, ...))                                                             \
	X(int, open, (const char *, int, ...))                                                \
	X(int, open64, (const char *, int, ...))                                              \
	X(int, openat, (int, const char *, int, ...))                                         \
	X(int, openat64, (int, const char *, int, ...))                                       \
	X(int, creat, (const char *, mode_t))                                                 \
	X(int, creat64, (const char *, mode_t))                                               \
	X(int, pipe, (int *))                                                                 \
	X(int, pipe2, (int *, int))                                                           \
	X(int, eventfd, (unsigned int, int))

#define USMC_SYS_MEMBER(ret, name, params) ret(*name) params;
struct usmc_sys {
	USMC_SYS_CALLS(USMC_SYS_MEMBER)
};
#undef USMC_SYS_MEMBER

extern struct usmc_sys usmc_sys;

/* Points the table at the definitions that follow usmc's own (preload). */
void usmc_sys_bind_next(void);
/* Whether it did: the program's libc calls pass usmc's wrappers first. */
bool usmc_sys_interposed(void);

/*
 * Whether a socket's peer has hung up, or an error waits on it, by a look
 * that reads nothing (poll): a TCP FIN or reset, a channel's other end
 * closed.
 */
bool usmc_fd_hung_up(int fd);

/*
 * Whether the kernel would restart a blocking socket call without a time
 * limit that a signal handler cut short, where usmc's own wait (a poll,
 * which the kernel never restarts) saw EINTR: poll does not tell which
 * signal came, so every handler installed must have SA_RESTART.
 */
bool usmc_signals_restart(void);

#endif /* USMC_SYS_H */
