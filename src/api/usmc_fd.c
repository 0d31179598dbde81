// SPDX-License-Identifier: MIT
/*
 * The descriptor table: which descriptors are usmc sockets.
 *
 * Several descriptors may name one socket (dup, dup2, dup3, F_DUPFD), as
 * they name one kernel socket: the entries share one struct usmc_sock,
 * counted, and the connection ends when its last descriptor is closed.
 * Internal system calls use s->fd, one of the descriptors still open.
 * close() ends an entry, and with the socket's last its connection
 * (usmc_close.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/close_range.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "usmc.h"
#include "usmc_exec.h"
#include "usmc_poll.h"
#include "usmc_sock.h"
#include "usmc_sys.h"

_Atomic(struct usmc_sock *) *_Atomic usmc_fdtab[FDTAB_CHUNKS];

static _Atomic(struct usmc_sock *) *fdtab_chunk(int fd, bool create)
{
	_Atomic(struct usmc_sock *) *_Atomic *slot = &usmc_fdtab[fd >> FDTAB_CHUNK_BITS];
	_Atomic(struct usmc_sock *) *chunk = atomic_load(slot), *fresh;

	if (chunk || !create)
		return chunk;
	fresh = calloc(FDTAB_CHUNK, sizeof(*fresh));
	if (!fresh)
		return NULL;
	if (!atomic_compare_exchange_strong(slot, &chunk, fresh)) {
		free(fresh);
		return chunk;
	}
	return fresh;
}

/*
 * Descriptors found to be no TCP listener by accept()'s look for
 * listeners usmc did not make (af_listener_adopt): looked at once.
 * Cleared when usmc sees the descriptor closed or replaced; a mark left
 * by a close it did not see only keeps a later listener TCP.
 */
#define NOT_LISTENER_FDS 65536
static _Atomic uint64_t not_listener[NOT_LISTENER_FDS / 64];

void usmc_fd_mark_not_listener(int fd, bool on)
{
	uint64_t bit = 1ull << (fd % 64);

	if ((unsigned)fd >= NOT_LISTENER_FDS)
		return;
	if (on)
		atomic_fetch_or(&not_listener[fd / 64], bit);
	else if (atomic_load_explicit(&not_listener[fd / 64], memory_order_relaxed) & bit)
		atomic_fetch_and(&not_listener[fd / 64], ~bit);
}

bool usmc_fd_not_listener(int fd)
{
	return (unsigned)fd < NOT_LISTENER_FDS &&
	       (atomic_load_explicit(&not_listener[fd / 64], memory_order_relaxed) >> (fd % 64) & 1);
}

/*
 * One socket's memory kept for the next: short connections, one after
 * the other, then cost neither malloc nor free.
 */
static struct usmc_sock *_Atomic spare_sock;

#if defined(__SANITIZE_ADDRESS__)
#define USMC_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define USMC_ASAN 1
#endif
#endif

static struct usmc_sock *sock_alloc(void)
{
	struct usmc_sock *s = atomic_exchange(&spare_sock, NULL);

	return s ? s : malloc(sizeof(*s));
}

static void sock_free(struct usmc_sock *s)
{
#ifdef USMC_ASAN
	free(s); /* ASan sees every use after free */
#else
	free(atomic_exchange(&spare_sock, s));
#endif
}

static void sock_destroy(struct usmc_sock *s)
{
	if (s->conn) {
		/* Its descriptor was closed behind our back: forget, do not touch. */
		usmc_lock();
		af_conn_forget(s->conn);
		usmc_unlock();
		usmc_conn_free(s->conn);
	}
	usmc_diag_free(s->diag, &s->diag_private);
	sock_free(s);
}

/* Another descriptor of the same socket, or -1. */
static int fdtab_other_fd(const struct usmc_sock *s, int except)
{
	for (int c = 0; c < FDTAB_CHUNKS; c++) {
		_Atomic(struct usmc_sock *) *chunk = atomic_load(&usmc_fdtab[c]);

		for (int i = 0; chunk && i < FDTAB_CHUNK; i++) {
			int fd = c * FDTAB_CHUNK + i;

			if (fd != except && atomic_load(&chunk[i]) == s)
				return fd;
		}
	}
	return -1;
}

/* Drops one descriptor's hold on s; true if it was the last. */
static bool sock_unref(struct usmc_sock *s, int fd)
{
	if (atomic_fetch_sub(&s->refs, 1) > 1) {
		if (s->fd == fd)
			s->fd = fdtab_other_fd(s, fd);
		return false;
	}
	return true;
}

/* Points fd at s (or at nothing); a stale entry left there is dropped. */
static bool fdtab_set(int fd, struct usmc_sock *s)
{
	_Atomic(struct usmc_sock *) *chunk;
	struct usmc_sock *old;

	if ((unsigned)fd >= FDTAB_CHUNK * FDTAB_CHUNKS)
		return false;
	chunk = fdtab_chunk(fd, s != NULL);
	if (!chunk)
		return false;
	old = atomic_exchange(&chunk[fd & (FDTAB_CHUNK - 1)], s);
	if (old && old != s && sock_unref(old, fd))
		sock_destroy(old);
	return true;
}

struct usmc_sock *usmc_sock_new(int fd, int domain)
{
	struct usmc_sock *s = sock_alloc();

	if (!s)
		return NULL;
	memset(s, 0, sizeof(*s));
	s->fd = fd;
	s->refs = 1;
	s->domain = domain;
	s->state = SOCK_INIT;
	s->diag = usmc_diag_alloc(fd, &s->diag_private);
	/* A forked child lists the socket in its own usmc-stat table. */
	usmc_fd_watch_fork();
	if (!fdtab_set(fd, s)) {
		usmc_diag_free(s->diag, &s->diag_private);
		sock_free(s);
		return NULL;
	}
	return s;
}

bool usmc_sock_forget(int fd)
{
	struct usmc_sock *s = usmc_sock_get(fd);
	_Atomic(struct usmc_sock *) *chunk;

	if (!s)
		return false;
	chunk = fdtab_chunk(fd, false);
	atomic_store_explicit(&chunk[fd & (FDTAB_CHUNK - 1)], NULL, memory_order_release);
	if (!sock_unref(s, fd))
		return false;
	usmc_diag_free(s->diag, &s->diag_private);
	sock_free(s);
	return true;
}

bool usmc_sock_alias(struct usmc_sock *s, int fd)
{
	atomic_fetch_add(&s->refs, 1);
	if (fdtab_set(fd, s))
		return true;
	atomic_fetch_sub(&s->refs, 1);
	return false;
}

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

/* dup2 and dup3 close the target first: usmc must let go of it too. */
static int dup_onto(int oldfd, int newfd, int flags, bool three)
{
	int rc;

	if (oldfd == newfd)
		return three ? usmc_sys.dup3(oldfd, newfd, flags) : usmc_sys.dup2(oldfd, newfd);
	if (usmc_sys.fcntl(oldfd, F_GETFD) < 0)
		return -1; /* EBADF, and newfd stays open, as dup2 leaves it */
	usmc_release_fd(newfd);
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
		for (int c = 0; c < FDTAB_CHUNKS; c++) {
			_Atomic(struct usmc_sock *) *chunk = atomic_load(&usmc_fdtab[c]);

			for (int i = 0; chunk && i < FDTAB_CHUNK; i++) {
				unsigned int fd = (unsigned int)(c * FDTAB_CHUNK + i);

				if (fd >= first && fd <= last && atomic_load(&chunk[i]))
					usmc_release_fd((int)fd);
			}
		}
	}
	return usmc_sys.close_range(first, last, flags);
}

/*
 * Before fork, each socket's usmc-stat slot is copied as it is now into
 * its private slot, which fork copies to the child: the table itself is
 * shared memory, where the parent's close may free the slot before the
 * child looks.  (Who holds a connection is counted in usmc_holders.c.)
 */
static void before_fork(void)
{
	for (int c = 0; c < FDTAB_CHUNKS; c++) {
		_Atomic(struct usmc_sock *) *chunk = atomic_load(&usmc_fdtab[c]);

		for (int i = 0; chunk && i < FDTAB_CHUNK; i++) {
			struct usmc_sock *s = atomic_load(&chunk[i]);

			if (s)
				usmc_diag_snapshot(s->diag, &s->diag_private);
		}
	}
}

/* In the child: its sockets are listed in its own usmc-stat table, from the copies. */
static void adopt_diag_slots(void)
{
	usmc_diag_after_fork();
	for (int c = 0; c < FDTAB_CHUNKS; c++) {
		_Atomic(struct usmc_sock *) *chunk = atomic_load(&usmc_fdtab[c]);

		for (int i = 0; chunk && i < FDTAB_CHUNK; i++) {
			struct usmc_sock *s = atomic_load(&chunk[i]);
			struct usmc_diag_sock *old;

			if (!s)
				continue;
			old = s->diag;
			s->diag = usmc_diag_adopt(old, &s->diag_private);
			if (s->conn && s->conn->diag == old)
				s->conn->diag = s->diag;
		}
	}
}

static void watch_fork(void)
{
	/* Child handlers run in the order they were set: the pid is forgotten first. */
	(void)usmc_pid();
	pthread_atfork(before_fork, NULL, adopt_diag_slots);
}

void usmc_fd_watch_fork(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	pthread_once(&once, watch_fork);
}

void usmc_release_fd(int fd)
{
	struct usmc_sock *s = usmc_sock_get(fd);

	/* A vfork child's descriptors are not those usmc's tables (its parent's) name. */
	if ((s || usmc_epoll_tracking()) && usmc_vfork_child())
		return;
	if (!s) {
		usmc_fd_mark_not_listener(fd, false);
		usmc_epoll_fd_closed(fd, -1);
		return;
	}
	/* Another descriptor still names the socket: the connection goes on. */
	if (atomic_load(&s->refs) > 1) {
		usmc_sock_forget(fd);
		usmc_epoll_fd_closed(fd, s->fd);
		return;
	}
	usmc_epoll_fd_closed(fd, -1);
	if (s->state == SOCK_SMC) {
		usmc_close_conn_last(s, fd);
		usmc_sock_forget(fd);
		return;
	}
	/* A handshake is settled by the process that proposed, in a fork's parent. */
	if (s->conn && s->conn->lgr->owner_pid != usmc_pid()) {
		usmc_holder_drop(s->conn);
		usmc_conn_free(s->conn);
		s->conn = NULL;
		usmc_sock_forget(fd);
		return;
	}
	if (s->state == SOCK_PROPOSED)
		af_resolve_before_close(s);
	if (s->state == SOCK_LISTEN)
		af_listener_close(s);
	else if (s->state == SOCK_SMC)
		usmc_close_conn_last(s, fd);
	usmc_sock_forget(fd);
}

int usmc_close(int fd)
{
	struct usmc_sock *s = usmc_sock_get(fd);
	/* A fork meanwhile would give the child the descriptor without its count. */
	bool guard = s && atomic_load(&s->state) == SOCK_SMC;
	int rc;

	if (guard)
		usmc_holders_enter();
	usmc_release_fd(fd);
	rc = usmc_sys.close(fd);
	if (guard)
		usmc_holders_leave();
	return rc;
}

/*
 * At exit the kernel closes the descriptors without usmc: the process's
 * holds end here, and doorbells left unread on a connection's TCP socket
 * would turn its FIN into a reset, so the connection's last holder drains
 * them first, as close() does.  Only that: other threads may still be
 * inside a call on the socket.
 */
void usmc_exit_drain(void)
{
	/* A vfork child's exit: the table and the holds are its parent's. */
	if (usmc_vfork_child())
		return;
	for (int c = 0; c < FDTAB_CHUNKS; c++) {
		_Atomic(struct usmc_sock *) *chunk = atomic_load(&usmc_fdtab[c]);

		for (int i = 0; chunk && i < FDTAB_CHUNK; i++) {
			struct usmc_sock *s = atomic_load(&chunk[i]);
			int fd = c * FDTAB_CHUNK + i;

			if (!s || s->fd != fd || atomic_load(&s->state) != SOCK_SMC || !s->conn)
				continue;
			if (usmc_holder_last(s->conn, fd, 0))
				usmc_conn_drain(s);
		}
	}
}
