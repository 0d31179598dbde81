// SPDX-License-Identifier: MIT
/*
 * exec from a vfork child (see usmc_exec.h).
 *
 * A vfork child (Python's subprocess, dash, posix_spawn's own clone) runs
 * in its parent's memory until it execs or exits, with a descriptor table
 * of its own.  usmc's state there is the parent's: a dup2, close or
 * close_range of the child must not change it (the child's descriptor
 * numbers are not the parent's), so those calls leave usmc's tables alone
 * in such a child and are only the system calls.
 *
 * Its exec hands over what the new image inherits all the same, as a
 * posix_spawn does: the connections are those whose socket the child
 * holds under any number (found by inode, since the child may have moved
 * it to 0 and 1 and closed the rest), and every descriptor the new image
 * needs is opened anew from the parent's /proc/PID/fd, since the child may
 * have closed the parent's numbers.  What is allocated here is freed
 * before the exec: the child's heap is the parent's.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "usmc_bell.h"
#include "usmc_conn.h"
#include "usmc_exec_child.h"
#include "usmc_exec_state.h"
#include "usmc_fdtab.h"
#include "usmc_holders.h"
#include "usmc_proc.h"
#include "usmc_rx.h"
#include "usmc_sock.h"
#include "usmc_sys.h"

/*
 * Whether a vfork child may be running usmc's code: VFORK_ANY until the
 * preload says it sees every way a program starts one through libc
 * (vfork, __vfork, clone and raw clones with CLONE_VM), then VFORK_NONE
 * until one is started, VFORK_SEEN for ever after.  A child runs on the
 * thread that started it, after the store: it reads VFORK_SEEN.  So a
 * process that never starts one asks no getpid at each close.
 */
enum { VFORK_ANY, VFORK_NONE, VFORK_SEEN };
static _Atomic int vfork_watch = VFORK_ANY;

void usmc_vfork_watched(void)
{
	int any = VFORK_ANY;

	atomic_compare_exchange_strong(&vfork_watch, &any, VFORK_NONE);
}

void usmc_vfork_coming(void)
{
	usmc_holders_vforking();
	atomic_store(&vfork_watch, VFORK_SEEN);
}

bool usmc_vfork_child(void)
{
	if (atomic_load_explicit(&vfork_watch, memory_order_relaxed) == VFORK_NONE)
		return false;
	/* fork resets usmc_pid (usmc_fork.h); vfork runs no handler. */
	return (pid_t)usmc_sys.syscall(SYS_getpid) != usmc_pid();
}

uint64_t exec_sock_inode(int fd, bool vforked)
{
	char path[64], link[64];
	unsigned long long inode;
	struct stat st;
	ssize_t n;

	if (!vforked)
		return fstat(fd, &st) ? 0 : (uint64_t)st.st_ino;
	snprintf(path, sizeof(path), "/proc/%d/fd/%d", (int)usmc_pid(), fd);
	n = readlink(path, link, sizeof(link) - 1);
	if (n <= 0)
		return 0;
	link[n] = '\0';
	return sscanf(link, "socket:[%llu]", &inode) == 1 ? inode : 0;
}

static bool note_inherited(int fd, const char *link, const char *path, void *arg)
{
	struct exec_child *c = arg;
	unsigned long long inode;
	int fl;

	(void)path;
	if (sscanf(link, "socket:[%llu]", &inode) != 1)
		return false;
	fl = usmc_sys.fcntl(fd, F_GETFD);
	if (fl < 0 || (fl & FD_CLOEXEC))
		return false;
	if (c->n == c->cap) {
		uint32_t cap = c->cap ? 2 * c->cap : 16;
		struct exec_child_fd *v = realloc(c->v, cap * sizeof(*v));

		if (!v)
			return c->failed = true;
		c->v = v;
		c->cap = cap;
	}
	c->v[c->n++] = (struct exec_child_fd){ fd, inode };
	return false;
}

bool exec_child_scan(struct exec_child *c)
{
	*c = (struct exec_child){ 0 };
	proc_for_each_fd((pid_t)usmc_sys.syscall(SYS_getpid), note_inherited, c);
	return !c->failed;
}

/* The child's descriptor of the parent's socket, or -1. */
static int child_fd_of(const struct exec_child *c, int parent_fd)
{
	uint64_t inode = exec_sock_inode(parent_fd, true);

	for (uint32_t i = 0; inode && i < c->n; i++)
		if (c->v[i].inode == inode)
			return c->v[i].fd;
	return -1;
}

bool exec_child_holds(const struct exec_child *c, int parent_fd)
{
	return child_fd_of(c, parent_fd) >= 0;
}

void exec_child_free(struct exec_child *c)
{
	free(c->v);
	*c = (struct exec_child){ 0 };
}

/* The parent's descriptor opened anew in this child, inherited by the exec. */
static bool reopen(int *fd, int flags)
{
	char path[64];

	if (*fd < 0)
		return true;
	snprintf(path, sizeof(path), "/proc/%d/fd/%d", (int)usmc_pid(), *fd);
	*fd = usmc_sys.open(path, flags);
	return *fd >= 0;
}

/*
 * The holders' bell for a vfork child's exec: the parent's descriptor, if
 * this child's table still holds that very file at its number (kcmp: the
 * spawn's file actions may have put another there), kept open across the
 * exec in this child's table alone; else -1.
 */
int exec_child_bell(void)
{
	int bell = usmc_bell_fd();

	if (bell < 0 || usmc_sys.syscall(SYS_kcmp, (long)usmc_sys.syscall(SYS_getpid),
					 (long)usmc_pid(), 0 /* KCMP_FILE */, (long)bell, (long)bell) != 0)
		return -1;
	return usmc_sys.fcntl(bell, F_SETFD, 0) ? -1 : bell;
}

bool exec_child_reopen(struct exec_state *st)
{
	for (uint32_t i = 0; i < st->nlgr; i++) {
		struct exec_lgr *l = &st->lgr[i];
		bool ok = l->chan < 0;

		for (uint32_t j = 0; ok && j < l->nrseg; j++)
			ok = reopen(&l->rseg[j].fd, O_RDONLY);
		for (uint32_t j = 0; ok && j < l->nlseg; j++)
			ok = reopen(&l->lseg[j].fd, O_RDWR) && reopen(&l->lseg[j].own_fd, O_RDWR);
		if (!ok)
			return false;
	}
	return true;
}

/*
 * Ends a connection the new image cannot take over: the peer sees a reset
 * (the abort flag, and TCP's RST), the program a TCP socket with nothing
 * queued (connect to AF_UNSPEC resets the connection and drops what the
 * kernel holds, doorbells included): its reads fail, its writes get EPIPE.
 */
static void break_conn(struct usmc_sock *s, int fd, bool vforked)
{
	struct sockaddr sa = { .sa_family = AF_UNSPEC };

	if (vforked) {
		/* s->fd names another file in this child, if any: the flags alone. */
		s->conn->sh->aborted = true;
		usmc_conn_set_reset(s->conn, ECONNRESET);
		conn_publish_flags(s->conn, CDC_PEER_CONN_ABORT);
	} else {
		usmc_conn_abort(s);
	}
	usmc_sys.connect(fd, &sa, sizeof(sa));
}

void usmc_exec_break_inherited(void)
{
	bool vforked = usmc_vfork_child();
	struct exec_child child = { 0 };
	struct usmc_sock *s;

	if (vforked && !exec_child_scan(&child)) {
		exec_child_free(&child);
		return;
	}
	usmc_lock();
	for (int fd = 0; (s = usmc_fdtab_next(&fd)); fd++) {
		int at = -1, fl;

		if (s->state != SOCK_SMC || !s->conn || !s->conn->sh)
			continue;
		if (vforked) {
			at = child_fd_of(&child, fd);
		} else {
			fl = usmc_sys.fcntl(fd, F_GETFD);
			at = fl >= 0 && !(fl & FD_CLOEXEC) ? fd : -1;
		}
		if (at >= 0)
			break_conn(s, at, vforked);
	}
	usmc_unlock();
	exec_child_free(&child);
}
