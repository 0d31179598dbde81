// SPDX-License-Identifier: MIT
/*
 * The calls on descriptors: dup, dup2, dup3, F_DUPFD, close and
 * close_range, over the descriptor table (usmc_fdtab.c).  close() ends
 * an entry, and with the socket's last its connection (usmc_close.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/close_range.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "usmc.h"
#include "usmc_close.h"
#include "usmc_conn.h"
#include "usmc_epoll.h"
#include "usmc_exec_child.h"
#include "usmc_fd.h"
#include "usmc_fdtab.h"
#include "usmc_holders.h"
#include "usmc_listen.h"
#include "usmc_listener.h"
#include "usmc_proc.h"
#include "usmc_seg.h"
#include "usmc_settle.h"
#include "usmc_sock.h"
#include "usmc_sys.h"
#include "usmc_wake.h"

/* A new descriptor for the socket of fd, as dup made it. */
static int adopt(int fd, int newfd)
{
	struct usmc_sock *s = usmc_sock_get(fd);

	if (newfd >= 0 && s && !usmc_vfork_child())
		usmc_sock_alias(s, newfd);
	return newfd;
}

int usmc_dup(int fd)
{
	return adopt(fd, usmc_sys.dup(fd));
}

int usmc_fcntl_dupfd(int fd, int cmd, int min)
{
	return adopt(fd, usmc_sys.fcntl(fd, cmd, min));
}

/* dup2 and dup3 close the target first: usmc must put its socket too. */
static int dup_onto(int oldfd, int newfd, int flags, bool three)
{
	int rc;

	if (oldfd == newfd)
		return three ? usmc_sys.dup3(oldfd, newfd, flags) : usmc_sys.dup2(oldfd, newfd);
	if (usmc_sys.fcntl(oldfd, F_GETFD) < 0)
		return -1; /* EBADF, and newfd stays open, as dup2 leaves it */
	usmc_fd_close(newfd);
	rc = three ? usmc_sys.dup3(oldfd, newfd, flags) : usmc_sys.dup2(oldfd, newfd);
	return adopt(oldfd, rc);
}

int usmc_dup2(int oldfd, int newfd)
{
	return dup_onto(oldfd, newfd, 0, false);
}

int usmc_dup3(int oldfd, int newfd, int flags)
{
	return dup_onto(oldfd, newfd, flags, true);
}

int usmc_close_range(unsigned int first, unsigned int last, int flags)
{
	if (!(flags & CLOSE_RANGE_CLOEXEC)) {
		int fd = first > INT_MAX ? INT_MAX : (int)first;

		for (; usmc_fdtab_next(&fd) && (unsigned int)fd <= last; fd++)
			usmc_fd_close(fd);
	}
	return usmc_sys.close_range(first, last, flags);
}

/* The close of a socket that the last call holding it does (usmc_close.h). */
static void close_held_finish(struct usmc_sock *s)
{
	usmc_closes_held_note(s, false);
	if (s->state == SOCK_PROPOSED)
		af_settle_before_close(s);
	if (s->state == SOCK_LISTEN)
		af_listener_close(s);
	else if (s->state == SOCK_SMC)
		usmc_close_conn_last(s, s->fd);
	usmc_sys.close(s->fd);
	usmc_sock_drop(s);
}

/*
 * The close of a socket's last descriptor, fd, while another thread's call
 * holds it: true if that call takes the close over, going on with a
 * descriptor of its own, and the program's number is free once closed.
 * Under a seccomp filter fcntl may be what kills: there the close is done
 * at once.
 */
static bool close_deferred(struct usmc_sock *s, int fd)
{
	int own;

	if (!(atomic_load(&s->calls) & ~USMC_CALLS_CLOSED) || proc_seccomp_filtered(false))
		return false;
	own = usmc_fd_lift(usmc_sys.fcntl(fd, F_DUPFD_CLOEXEC, 0));
	if (own < 0)
		return false;
	usmc_close_held_finish = close_held_finish;
	s->fd = own;
	atomic_fetch_add(&s->refs, 1);
	usmc_sock_put(fd);
	usmc_closes_held_note(s, true);
	/* The call returned meanwhile: nobody is left to close it but us. */
	if (!(atomic_fetch_or(&s->calls, USMC_CALLS_CLOSED) & ~USMC_CALLS_CLOSED))
		close_held_finish(s);
	return true;
}

void usmc_fd_close(int fd)
{
	struct usmc_sock *s = usmc_sock_get(fd);

	/*
	 * A vfork child's descriptors are not those usmc's tables (its
	 * parent's) name.  The question costs no system call in a process
	 * that never started such a child (usmc_vfork_child).
	 */
	if ((s || usmc_epoll_tracking()) && usmc_vfork_child())
		return;
	if (!s) {
		usmc_fd_mark_not_listener(fd, false);
		usmc_epoll_fd_closed(fd, -1);
		return;
	}
	/* Another descriptor still names the socket: the connection goes on. */
	if (atomic_load(&s->refs) > 1) {
		usmc_sock_put(fd);
		usmc_epoll_fd_closed(fd, s->fd);
		return;
	}
	usmc_epoll_fd_closed(fd, -1);
	/* A close is a use: one never used is answered as at accept, then closed as any. */
	if (af_sock_used(s) == SOCK_SMC) {
		/* Another thread sleeps in a read or write of it: the close is its call's. */
		if (close_deferred(s, fd))
			return;
		usmc_close_conn_last(s, fd);
		usmc_sock_put(fd);
		return;
	}
	/* A handshake is settled by the process that proposed, in a fork's parent. */
	if (s->conn && s->conn->lgr->owner_pid != usmc_pid()) {
		usmc_holder_put(s->conn);
		usmc_conn_free(s->conn);
		s->conn = NULL;
		usmc_sock_put(fd);
		return;
	}
	/* Another thread is inside a call on it (accept(), a read waiting for the answer). */
	if (close_deferred(s, fd))
		return;
	if (s->state == SOCK_PROPOSED)
		af_settle_before_close(s);
	if (s->state == SOCK_LISTEN)
		af_listener_close(s);
	else if (s->state == SOCK_SMC)
		usmc_close_conn_last(s, fd);
	usmc_sock_put(fd);
}

int usmc_close(int fd)
{
	struct usmc_sock *s = usmc_sock_get(fd);
	/*
	 * A fork meanwhile would give the child the descriptor without its
	 * count, or walk the table while the socket's state is freed.
	 */
	bool guard = s != NULL;
	int rc;

	if (guard)
		usmc_holders_enter();
	usmc_fd_close(fd);
	rc = usmc_sys.close(fd);
	if (guard)
		usmc_holders_leave();
	return rc;
}

/*
 * At exit the kernel closes the descriptors without usmc: the process's
 * holds end here, and doorbells left unread on a connection's TCP socket
 * would turn its FIN into a reset, so the connection's last holder drains
 * them first, as close() does, and tells the peer that the close comes
 * (usmc_close_at_exit).  Only that: other threads may still be inside a
 * call on the socket, writing what the peer reads until the kernel's FIN.
 * A doorbell that reaches the socket after the drain still brings a
 * reset, which the peer tells from TCP's (usmc_wake.c).
 */
void usmc_exit_drain(void)
{
	struct usmc_sock *s;

	/* A vfork child's exit: the table and the holds are its parent's. */
	if (usmc_vfork_child())
		return;
	af_accept_finish_all();
	for (int fd = 0; (s = usmc_fdtab_next(&fd)); fd++) {
		if (s->fd != fd || atomic_load(&s->state) != SOCK_SMC || !s->conn)
			continue;
		if (usmc_holder_last(s->conn, fd, 0))
			usmc_close_at_exit(s);
	}
}

/*
 * A program linked with usmc that exits without closing: the same, after
 * its own exit handlers and the destructors of what it links.  Not under
 * the preload, whose exit handler does it once the stdio streams on usmc
 * sockets are flushed (usmc_preload_stdio.c): destructors run before that
 * handler, and a process's holds end once.
 */
__attribute__((destructor)) static void exit_drain_at_unload(void)
{
	if (!usmc_sys_interposed())
		usmc_exit_drain();
}

/* A proposed connection's answer, waited for (a signal does not end the wait); its state then. */
static int settled_state(struct usmc_sock *s)
{
	int err = errno;

	af_sock_used(s);
	while (atomic_load(&s->state) == SOCK_PROPOSED && af_settle(s, -1) < 0 && errno == EINTR)
		;
	errno = err;
	return atomic_load(&s->state);
}

int usmc_fd_kernel_io(int fd)
{
	struct usmc_sock *s = usmc_sock_get(fd);
	int err = errno, state;

	if (!s)
		return 0;
	usmc_plain_from_now(USMC_DECL_ENV);
	state = settled_state(s);
	if (state == SOCK_PROPOSED || state == SOCK_SMC) {
		errno = ENOSYS;
		return -1;
	}
	errno = err;
	return 0;
}

/*
 * A process that hands connections on (Node.js's cluster primary accepts
 * each connection and passes it to a worker) cannot keep them in shared
 * memory: the receiver's reads and writes are the kernel's.  What the
 * first one already moved there is lost to the receiver, so that one is
 * reset, loudly: the peer reads ECONNRESET at once, and the receiver the
 * end once the peer closes, after no more than a doorbell the peer rang
 * as the reset came, never the peer's data.  A listener passed is safe
 * (its clients' Proposals go unanswered and fall back).
 */
void usmc_fd_passing(const struct msghdr *msg)
{
	for (struct cmsghdr *c = CMSG_FIRSTHDR(msg); c; c = CMSG_NXTHDR((struct msghdr *)msg, c)) {
		size_t n;

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < n; i++) {
			struct usmc_sock *s;
			int fd;

			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
			s = usmc_sock_get(fd);
			if (!s || atomic_load(&s->state) < SOCK_ACCEPTING)
				continue;
			/* Set first: one not used yet is declined, and the receiver has all of it on TCP. */
			usmc_plain_from_now(USMC_DECL_PASSED);
			if (settled_state(s) == SOCK_SMC && s->conn) {
				usmc_conn_abort(s);
				/* Doorbells the peer rang before it saw the end: not the receiver's data. */
				usmc_conn_drain_owed(s);
			}
		}
	}
}

bool usmc_fd_give_back(void)
{
	int err = errno;

	if (err == EMFILE && lgr_give_back_fds())
		return true;
	errno = err;
	return false;
}
