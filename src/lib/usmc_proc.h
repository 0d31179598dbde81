/* SPDX-License-Identifier: MIT */
/* What /proc tells of processes: their descriptors, the fork tree's sockets. */
#ifndef USMC_PROC_H
#define USMC_PROC_H

#include <stdbool.h>
#include <sys/types.h>

/* This process's id, without a system call; right again after fork(). */
pid_t usmc_pid(void);
/*
 * RLIMIT_NOFILE's soft limit, 0 for none: looked at again at most once a
 * second, since every connection to a shared listener asks.  Only for a
 * hint (a channel's descriptor near the limit): a limit the program
 * lowered shows within a second, and what must not outgrow it (a new
 * segment's descriptors) asks the kernel itself.
 */
unsigned long usmc_fd_limit(void);

/*
 * The number after name ("FDSize:") in a /proc status file such as
 * /proc/self/status: false if the file cannot be read, *value 0 if it has
 * no such line.
 */
bool proc_status_number(const char *path, const char *name, long *value);

/*
 * A descriptor usmc keeps as long as a connection or link group (a
 * segment's memfds, a channel, a spare), moved above the numbers the
 * program's own take: fd itself if it is there already or nothing is free
 * up there, else a close-on-exec copy, fd closed.
 */
int usmc_fd_lift(int fd);

/* Called with a descriptor's number, what its link names and its /proc path; true stops. */
typedef bool (*proc_fd_fn)(int fd, const char *link, const char *path, void *arg);

/* Calls fn for each open descriptor of pid; true if fn stopped the walk. */
bool proc_for_each_fd(pid_t pid, proc_fd_fn fn, void *arg);
/* Whether pid's descriptor fd (0: the caller's own) is what /proc names want ("anon_inode:[eventfd]", say). */
bool proc_fd_is(pid_t pid, int fd, const char *want);
/* Whether process pid holds the socket with this inode (false if we cannot tell). */
bool proc_holds_socket(pid_t pid, unsigned long inode);
/* Whether process pid holds the socket with this inode at descriptor fd: one link. */
bool proc_pid_holds_socket_at(pid_t pid, int fd, unsigned long inode);
/* Whether one of our own children holds the socket at our descriptor's number. */
bool proc_child_holds_socket_at(int fd, unsigned long inode);
/*
 * Whether a process of the fork tree under root, or under us, other than
 * us holds it; true also where we cannot tell (a process we may not look at).
 */
bool proc_tree_holds_socket(pid_t root, unsigned long inode);
/*
 * Whether this process may run under a seccomp filter, or we cannot tell
 * (/proc refused, as OpenSSH's sandbox refuses open with EACCES): such a
 * filter may answer a call it does not list with death (SIGSYS), so what
 * is not needed is not called there.  fresh: looks at
 * /proc/thread-self/status (one open and read) unless a filter was seen
 * already; otherwise the look is made once per process, and a filter the
 * process installs itself afterwards is seen only through
 * proc_seccomp_note, which the preload's prctl() and syscall() call.
 */
bool proc_seccomp_filtered(bool fresh);
void proc_seccomp_note(void);
/*
 * Whether every CPU has work: more tasks runnable on the host than CPUs
 * online, the caller included (/proc/loadavg's count of runnable tasks,
 * the kernel's nr_running()).  A waiter that spins then keeps a CPU from
 * a task that waits for one, which may be the peer it waits for.  Looked
 * at again at most once a millisecond; false where we cannot tell (a
 * seccomp filter, /proc refused).
 */
bool proc_cpus_busy(void);
/*
 * Whether the calling thread was preempted (an involuntary switch,
 * getrusage's ru_nivcsw) in the last 16 ms or so, as its looks, a
 * millisecond apart at least, found: it had to give its CPU to a task that
 * weighs as much as it does.  A nice 19 batch job beside it hardly ever
 * takes its CPU; one more task of its own weight than CPUs does every
 * slice.  False where we cannot tell (a seccomp filter).
 */
bool proc_thread_preempted(void);

#endif
