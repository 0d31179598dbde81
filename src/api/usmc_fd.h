/* SPDX-License-Identifier: MIT */
/*
 * The calls on descriptors (usmc_fd.c): dup, dup2, dup3, F_DUPFD, close
 * and close_range over the descriptor table, and the end of the
 * process's holds at exit.
 */
#ifndef USMC_FD_H
#define USMC_FD_H

#include <stdbool.h>
#include <sys/socket.h>

/* Everything close() does to a usmc socket but the kernel's close. */
void usmc_fd_close(int fd);
/* fcntl F_DUPFD and F_DUPFD_CLOEXEC: the new descriptor names the socket too. */
int usmc_fcntl_dupfd(int fd, int cmd, int min);

/*
 * Before a call whose bytes the kernel moves out of usmc's sight (POSIX
 * AIO, whose threads use libc's internal read and write): 0 if fd is not
 * a usmc connection, or is plain TCP once a proposed connection's answer
 * is in; -1 ENOSYS on a shared-memory connection, whose bytes are not in
 * the kernel socket.  Every later socket of the process is plain TCP
 * (USMC_DECL_ENV), so that such calls work on them.
 */
int usmc_fd_kernel_io(int fd);

/*
 * Before msg goes out: a connection in shared memory among its
 * descriptors (SCM_RIGHTS) reaches a process that knows nothing of its
 * rings and would read doorbell bytes as data.  It is reset (both ends
 * read ECONNRESET, never those bytes), and every later connection of the
 * process is plain TCP (USMC_DECL_PASSED), which it may hand on.
 */
void usmc_fd_passing(const struct msghdr *msg);

/*
 * A call of the program that makes a descriptor failed, errno set: true
 * if it met EMFILE and usmc gave back descriptors its segments keep only
 * for later (lgr_give_back_fds), so that the call may be made again;
 * false with errno as it was.
 */
bool usmc_fd_give_back(void);

/* Before the process exits: ends its holds, drains the doorbells where it was the last holder. */
void usmc_exit_drain(void);

#endif /* USMC_FD_H */
