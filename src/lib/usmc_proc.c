// SPDX-License-Identifier: MIT
/*
 * What /proc tells of other processes: which of them hold a socket.
 *
 * After fork() parent and child hold one kernel socket, and the kernel
 * closes it with its last descriptor.  A shared-memory connection follows:
 * a close publishes the end to the peer only where no other process of the
 * fork tree still holds the socket.  These walks happen only for
 * connections that went through a fork.  And this process's own id,
 * which a fork changes, and whether this process runs under a seccomp
 * filter.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "usmc_fork.h"
#include "usmc_lock.h"
#include "usmc_proc.h"
#include "usmc_sys.h"
#include "usmc_watch.h"

/* Bounds the walk of a fork tree: a server with more children is rare. */
#define TREE_MAX 4096

/* Threads may each store it at once, always the same value: relaxed atomics. */
static _Atomic pid_t cached_pid;
static pthread_once_t pid_once = PTHREAD_ONCE_INIT;
static _Atomic bool pid_once_done;

static void pid_after_fork(void)
{
	atomic_store_explicit(&cached_pid, 0, memory_order_relaxed);
}

static void pid_watch_fork(void)
{
	usmc_fork_watch(NULL, NULL, pid_after_fork);
}

pid_t usmc_pid(void)
{
	pid_t pid = atomic_load_explicit(&cached_pid, memory_order_relaxed);

	usmc_once(&pid_once, &pid_once_done, pid_watch_fork);
	if (!pid) {
		pid = getpid();
		atomic_store_explicit(&cached_pid, pid, memory_order_relaxed);
	}
	return pid;
}

static struct usmc_watch fd_limit_watch;
static _Atomic unsigned long fd_limit = ULONG_MAX; /* ULONG_MAX: not looked at yet */

unsigned long usmc_fd_limit(void)
{
	unsigned long limit = atomic_load(&fd_limit);
	struct rlimit rl;

	if (limit != ULONG_MAX && !usmc_watch_due(&fd_limit_watch))
		return limit;
	if (getrlimit(RLIMIT_NOFILE, &rl))
		return limit == ULONG_MAX ? 0 : limit;
	limit = rl.rlim_cur == RLIM_INFINITY ? 0 : (unsigned long)rl.rlim_cur;
	atomic_store(&fd_limit, limit);
	return limit;
}

struct fd_list {
	int *fds;
	int n, cap;
	bool failed;
};

bool proc_for_each_fd(pid_t pid, proc_fd_fn fn, void *arg)
{
	char dir[64], path[400], link[256];
	struct dirent *de;
	bool stopped = false;
	DIR *d;

	snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)pid);
	d = opendir(dir);
	if (!d)
		return false;
	while (!stopped && (de = readdir(d))) {
		ssize_t n;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		n = readlink(path, link, sizeof(link) - 1);
		if (n <= 0)
			continue;
		link[n] = 0;
		stopped = fn(atoi(de->d_name), link, path, arg);
	}
	closedir(d);
	return stopped;
}

static bool note_fd(int fd, const char *link, const char *path, void *arg)
{
	struct fd_list *l = arg;

	(void)link;
	(void)path;
	if (l->n == l->cap) {
		int cap = l->cap ? l->cap * 2 : 64;
		int *fds = realloc(l->fds, (size_t)cap * sizeof(*fds));

		if (!fds) {
			l->failed = true;
			return true;
		}
		l->fds = fds, l->cap = cap;
	}
	l->fds[l->n++] = fd;
	return false;
}

bool proc_fd_is(pid_t pid, int fd, const char *want)
{
	char path[64], link[64];
	ssize_t n;

	if (pid)
		snprintf(path, sizeof(path), "/proc/%d/fd/%d", (int)pid, fd);
	else
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = readlink(path, link, sizeof(link) - 1);
	if (n <= 0)
		return false;
	link[n] = 0;
	return !strcmp(link, want);
}

/*
 * A scan of a live process's descriptors is no snapshot: it may look at
 * 0 and 1 before an inetd-style child dup2()s the socket there, and at
 * the socket's old number after the child closed it, and see it nowhere.
 * So the numbers are listed first and then looked at from the highest
 * down, which sees a socket moved down either at its old number or at
 * its new one, and again from the lowest up, for a socket moved up.
 */
static bool holds_socket(pid_t pid, unsigned long inode, bool unseen_holds)
{
	struct fd_list l = { 0 };
	char want[32];
	bool found = false;

	snprintf(want, sizeof(want), "socket:[%lu]", inode);
	errno = 0;
	proc_for_each_fd(pid, note_fd, &l);
	/* Cannot tell: keep the connection open for the others. */
	if (l.failed || (unseen_holds && !l.n && (errno == EACCES || errno == EPERM))) {
		free(l.fds);
		return true;
	}
	for (int i = l.n - 1; i >= 0 && !found; i--)
		found = proc_fd_is(pid, l.fds[i], want);
	for (int i = 0; i < l.n && !found; i++)
		found = proc_fd_is(pid, l.fds[i], want);
	free(l.fds);
	return found;
}

bool proc_holds_socket(pid_t pid, unsigned long inode)
{
	return holds_socket(pid, inode, false);
}

/* Appends the children of every thread of pid to the list. */
static void add_children(pid_t pid, pid_t *list, int *n)
{
	char dir[64], path[400];
	struct dirent *de;
	DIR *d;

	snprintf(dir, sizeof(dir), "/proc/%d/task", (int)pid);
	d = opendir(dir);
	while (d && (de = readdir(d))) {
		FILE *f;
		int child;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s/children", dir, de->d_name);
		f = fopen(path, "re");
		while (f && *n < TREE_MAX && fscanf(f, "%d", &child) == 1)
			list[(*n)++] = child;
		if (f)
			usmc_sys.fclose(f);
	}
	if (d)
		closedir(d);
}

/*
 * A forking server closes each connection right after its fork, often
 * before the child has run: the child has the socket at the same number,
 * since its table is a copy.  The kernel lists a process's children in
 * the order they were made: the newest, most likely the holder, is
 * looked at first, one link per child.
 */
bool proc_pid_holds_socket_at(pid_t pid, int fd, unsigned long inode)
{
	char want[32];

	snprintf(want, sizeof(want), "socket:[%lu]", inode);
	return proc_fd_is(pid, fd, want);
}

bool proc_child_holds_socket_at(int fd, unsigned long inode)
{
	pid_t *list = malloc(TREE_MAX * sizeof(*list));
	char want[32];
	bool found = false;
	int n = 0;

	if (!list)
		return false;
	snprintf(want, sizeof(want), "socket:[%lu]", inode);
	add_children(getpid(), list, &n);
	while (n > 0 && !found)
		found = proc_fd_is(list[--n], fd, want);
	free(list);
	return found;
}

/*
 * A filter never goes away, and a child inherits it: once one is seen or
 * installed, the process is filtered for good.  "None" holds for the
 * process that read it.  Preloaded, also for its forked children: every
 * filter installed through libc passes our prctl() or syscall()
 * (proc_seccomp_note).  A program linked with the library is not seen
 * installing one, so its forked child reads again, since a sandbox is
 * typically installed right after fork (OpenSSH's pre-auth child).
 */
static _Atomic bool seccomp_on;
static _Atomic pid_t seccomp_none_pid;

void proc_seccomp_note(void)
{
	atomic_store_explicit(&seccomp_on, true, memory_order_relaxed);
}

/* The start of a small file of /proc, NUL-terminated: false if it could not be read. */
static bool proc_read(const char *path, char *buf, size_t size)
{
	int fd = usmc_sys.open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return false;
	n = usmc_sys.read(fd, buf, size - 1);
	usmc_sys.close(fd);
	if (n <= 0)
		return false;
	buf[n] = 0;
	return true;
}

bool proc_status_number(const char *path, const char *name, long *value)
{
	char buf[4096], want[32], *line;

	*value = 0;
	if (!proc_read(path, buf, sizeof(buf)))
		return false;
	snprintf(want, sizeof(want), "\n%s", name);
	line = strstr(buf, want);
	if (line)
		*value = strtol(line + strlen(want), NULL, 10);
	return true;
}

static bool seccomp_read(void)
{
	long mode;

	/* Mode 0 is none; 1 strict, 2 filter.  A kernel without the line has none. */
	return !proc_status_number("/proc/thread-self/status", "Seccomp:", &mode) || mode != 0;
}

bool proc_seccomp_filtered(bool fresh)
{
	pid_t none = atomic_load_explicit(&seccomp_none_pid, memory_order_relaxed);

	if (atomic_load_explicit(&seccomp_on, memory_order_relaxed))
		return true;
	if (!fresh && none && (none == usmc_pid() || usmc_sys_interposed()))
		return false;
	if (seccomp_read()) {
		proc_seccomp_note();
		return true;
	}
	atomic_store_explicit(&seccomp_none_pid, usmc_pid(), memory_order_relaxed);
	return false;
}

#define CPUS_LOOK_NS 1000000
static _Atomic int64_t cpus_looked_ns; /* CLOCK_MONOTONIC of the last look */
static _Atomic bool cpus_busy;
static _Atomic long cpus_online;

static int64_t monotonic_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* "0.52 0.58 0.59 3/245 1234": the runnable tasks come before the '/'. */
static bool cpus_read_busy(void)
{
	long online = atomic_load_explicit(&cpus_online, memory_order_relaxed);
	char buf[128], *slash;

	if (proc_seccomp_filtered(false))
		return false;
	if (!online) {
		online = sysconf(_SC_NPROCESSORS_ONLN);
		atomic_store_explicit(&cpus_online, online, memory_order_relaxed);
	}
	if (!proc_read("/proc/loadavg", buf, sizeof(buf)))
		return false;
	slash = strchr(buf, '/');
	if (!slash)
		return false;
	while (slash > buf && slash[-1] != ' ')
		slash--;
	return online > 0 && strtol(slash, NULL, 10) > online;
}

bool proc_cpus_busy(void)
{
	int64_t now = monotonic_ns();
	int64_t then = atomic_load_explicit(&cpus_looked_ns, memory_order_relaxed);
	bool busy;

	/* One thread looks; the others take what the last look found. */
	if (now - then < CPUS_LOOK_NS ||
	    !atomic_compare_exchange_strong(&cpus_looked_ns, &then, now))
		return atomic_load_explicit(&cpus_busy, memory_order_relaxed);
	busy = cpus_read_busy();
	atomic_store_explicit(&cpus_busy, busy, memory_order_relaxed);
	return busy;
}

#define PREEMPT_LOOK_NS 1000000
#define PREEMPT_WINDOW_NS 16000000
static __thread int64_t preempt_looked_ns; /* CLOCK_MONOTONIC of this thread's last look */
static __thread int64_t preempt_seen_ns;   /* of the last look that found it preempted */
static __thread long preempt_nivcsw;       /* its involuntary switches at the last look */

bool proc_thread_preempted(void)
{
	int64_t now = monotonic_ns(), then = preempt_looked_ns;
	struct rusage ru;

	if (now - then >= PREEMPT_LOOK_NS) {
		preempt_looked_ns = now;
		if (proc_seccomp_filtered(false) || getrusage(RUSAGE_THREAD, &ru))
			return false;
		/* A look long ago says nothing of now: it only sets the count to compare with. */
		if (then && now - then <= PREEMPT_WINDOW_NS && ru.ru_nivcsw != preempt_nivcsw)
			preempt_seen_ns = now;
		preempt_nivcsw = ru.ru_nivcsw;
	}
	return preempt_seen_ns && now - preempt_seen_ns < PREEMPT_WINDOW_NS;
}

/*
 * Where usmc's own long-lived descriptors go: from half of RLIMIT_NOFILE
 * where it is below 2048, else from a quarter of it (at least 1024, at most
 * FD_LIFT_MAX), so that the numbers below stay the program's, as they
 * would be without usmc.  Programs size their tables by the
 * numbers they get: wrk's event loop takes 10 + 3 descriptors a
 * connection, select() those below FD_SETSIZE (1024), and a connection to
 * a prefork server keeps about eight descriptors of usmc's.  A fixed 1024
 * put ours among the program's own as soon as it had a thousand (wrk
 * with 1,000 connections to a prefork nginx failed six in ten).  A quarter
 * keeps the kernel's table, which grows to a power of two past the
 * highest number, within half the limit, where fd_room_for_segment need
 * not count; the bound keeps it at 16,384 entries (128 KiB) for a
 * process with a large limit (a container's 1,048,576).  A process under a
 * seccomp filter usmc knows of keeps them where they are (fcntl may be
 * refused); the look that proc_seccomp_filtered would make is not made
 * here, since it would stand for the process from then on, and a forked
 * child makes its first descriptor (usmc-stat's table) before its
 * program can install a filter (OpenSSH's pre-auth child).
 */
#define FD_LIFT_MAX 8192

int usmc_fd_lift(int fd)
{
	unsigned long limit = usmc_fd_limit();
	unsigned long base = 1024;
	int high;

	if (limit && limit < 2048)
		base = limit / 2;
	else if (limit / 4 > base)
		base = limit / 4 < FD_LIFT_MAX ? limit / 4 : FD_LIFT_MAX;
	if (fd < 0 || (unsigned long)fd >= base || base < 64 ||
	    atomic_load_explicit(&seccomp_on, memory_order_relaxed))
		return fd;
	high = usmc_sys.fcntl(fd, F_DUPFD_CLOEXEC, (int)base);
	if (high < 0)
		return fd;
	usmc_sys.close(fd);
	return high;
}

bool proc_tree_holds_socket(pid_t root, unsigned long inode)
{
	pid_t self = getpid(), *list = malloc(TREE_MAX * sizeof(*list));
	bool found = false;
	int n = 0;

	/* Our own subtree too: the root may have exited, its children moved away. */
	if (!list)
		return true; /* cannot tell: keep the connection open for the others */
	list[n++] = root;
	if (root != self)
		list[n++] = self;
	for (int i = 0; i < n && !found; i++) {
		bool seen = false;

		for (int j = 0; j < i && !seen; j++)
			seen = list[j] == list[i];
		if (seen)
			continue;
		/*
		 * A process we may not look at (another user's, or we are in a
		 * seccomp sandbox such as OpenSSH's, which answers EACCES) may
		 * hold it: nothing seen is no proof of nothing.
		 */
		found = list[i] != self && holds_socket(list[i], inode, true);
		add_children(list[i], list, &n);
	}
	free(list);
	return found;
}
