// SPDX-License-Identifier: MIT
/*
 * The descriptor table: which descriptors are usmc sockets.
 *
 * Several descriptors may name one socket (dup, dup2, dup3, F_DUPFD), as
 * they name one kernel socket: the entries share one struct usmc_sock,
 * counted, and the connection ends when its last descriptor is closed.
 * Internal system calls use s->fd, one of the descriptors still open.
 * The calls on descriptors are in usmc_fd.c.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "usmc_close.h"
#include "usmc_conn.h"
#include "usmc_diag.h"
#include "usmc_fdtab.h"
#include "usmc_fork.h"
#include "usmc_holders.h"
#include "usmc_lock.h"
#include "usmc_sock.h"

_Atomic(struct usmc_sock *) *_Atomic usmc_fdtab[FDTAB_CHUNKS];

/*
 * Which entries are set, a bit each, so that the table's walk
 * (usmc_fdtab_next) passes 64 empty entries with one load.  A fork's
 * handlers walk the table several times, in the parent and in the child:
 * a server that forks for each connection (dnsmasq, socat) scanned every
 * entry of each chunk made, twice a thousand and more a connection.  An
 * entry's bit is set before it is stored and again after, so a walk that
 * sees the entry sees its bit; it is cleared after the entry, and set
 * again if a new socket took the entry meanwhile.
 */
static _Atomic uint64_t fdtab_used[FDTAB_CHUNKS * FDTAB_CHUNK / 64];

/* Chunks up to here were made: a walk ends there, not at the table's millionth entry. */
static _Atomic int fdtab_chunks_top;

static void used_mark(int fd)
{
	atomic_fetch_or(&fdtab_used[fd / 64], 1ull << (fd % 64));
}

static void used_clear(int fd, _Atomic(struct usmc_sock *) *entry)
{
	atomic_fetch_and(&fdtab_used[fd / 64], ~(1ull << (fd % 64)));
	if (atomic_load(entry))
		used_mark(fd);
}

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
	for (int top = atomic_load(&fdtab_chunks_top), want = (fd >> FDTAB_CHUNK_BITS) + 1;
	     top < want && !atomic_compare_exchange_weak(&fdtab_chunks_top, &top, want);)
		;
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
		/* Its descriptor was closed behind our back: drop the entry, do not touch the descriptor. */
		usmc_lock();
		af_srv_conn_del(s->conn);
		usmc_unlock();
		usmc_conn_free(s->conn);
	}
	usmc_diag_free(s->diag, &s->diag_private);
	sock_free(s);
}

struct usmc_sock *usmc_fdtab_next(int *fd)
{
	int end = atomic_load(&fdtab_chunks_top) * FDTAB_CHUNK;

	for (int f = *fd; f >= 0 && f < end;) {
		_Atomic(struct usmc_sock *) *chunk = fdtab_chunk(f, false);
		struct usmc_sock *s;
		uint64_t used;

		if (!chunk) {
			/* A chunk never made: none of its descriptors is a socket. */
			f = (f | (FDTAB_CHUNK - 1)) + 1;
			continue;
		}
		used = atomic_load(&fdtab_used[f / 64]) >> (f % 64);
		if (!used) {
			f = (f | 63) + 1;
			continue;
		}
		f += __builtin_ctzll(used);
		s = atomic_load(&chunk[f & (FDTAB_CHUNK - 1)]);
		if (s) {
			*fd = f;
			return s;
		}
		f++;
	}
	return NULL;
}

/* Another descriptor of the same socket, or -1. */
static int fdtab_other_fd(const struct usmc_sock *s, int except)
{
	struct usmc_sock *o;

	for (int fd = 0; (o = usmc_fdtab_next(&fd)); fd++)
		if (fd != except && o == s)
			return fd;
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
	if (s)
		used_mark(fd);
	old = atomic_exchange(&chunk[fd & (FDTAB_CHUNK - 1)], s);
	if (s)
		used_mark(fd);
	else
		used_clear(fd, &chunk[fd & (FDTAB_CHUNK - 1)]);
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

bool usmc_sock_put(int fd)
{
	struct usmc_sock *s = usmc_sock_get(fd);
	_Atomic(struct usmc_sock *) *chunk;

	if (!s)
		return false;
	chunk = fdtab_chunk(fd, false);
	atomic_store_explicit(&chunk[fd & (FDTAB_CHUNK - 1)], NULL, memory_order_release);
	used_clear(fd, &chunk[fd & (FDTAB_CHUNK - 1)]);
	if (!sock_unref(s, fd))
		return false;
	/*
	 * A fork's prepare handler walks the table with holders_lock written
	 * (usmc_holders.c), and may hold this socket from before it left the
	 * table: it is freed only outside that walk.
	 */
	usmc_holders_enter();
	usmc_diag_free(s->diag, &s->diag_private);
	sock_free(s);
	usmc_holders_leave();
	return true;
}

void usmc_sock_drop(struct usmc_sock *s)
{
	usmc_holders_enter();
	usmc_diag_free(s->diag, &s->diag_private);
	sock_free(s);
	usmc_holders_leave();
}

bool usmc_sock_alias(struct usmc_sock *s, int fd)
{
	atomic_fetch_add(&s->refs, 1);
	if (fdtab_set(fd, s))
		return true;
	atomic_fetch_sub(&s->refs, 1);
	return false;
}

/*
 * Before fork, each socket's usmc-stat slot is copied as it is now into
 * its private slot, which fork copies to the child: the table itself is
 * shared memory, where the parent's close may free the slot before the
 * child looks.  (Who holds a connection is counted in usmc_holders.c.)
 */
static void before_fork(void)
{
	struct usmc_sock *s;

	for (int fd = 0; (s = usmc_fdtab_next(&fd)); fd++)
		usmc_diag_snapshot(s->diag, &s->diag_private);
}

/*
 * In the child: its sockets are listed in its own usmc-stat table, from
 * the copies.  Not a plain TCP connection or a listener it only
 * inherited: those keep their copy, out of usmc-stat's sight (ss shows
 * the connection, the parent's table the listener), so that a server
 * that forks a child for each plain client (dnsmasq, socat) does not make
 * each child a table of its own, six system calls and a mapping of 4 MiB
 * at every connection.  What the child accepts or makes, and a
 * connection in shared memory or in its handshake, it lists in its own.
 */
static void adopt_diag_slots(void)
{
	struct usmc_sock *s;

	for (int fd = 0; (s = usmc_fdtab_next(&fd)); fd++) {
		struct usmc_diag_sock *old = s->diag;
		int state = atomic_load(&s->state);

		s->diag = state == SOCK_PLAIN || state == SOCK_LISTEN
				  ? &s->diag_private
				  : usmc_diag_adopt(old, &s->diag_private);
		if (s->conn && s->conn->diag == old)
			s->conn->diag = s->diag;
	}
}

/*
 * Prepare handlers run in the reverse of the order they were set, child
 * handlers in that order: first the locks' (a fork takes them after
 * holders_lock, and the child makes them anew before it adopts its
 * usmc-stat slots, which takes LOCK_DIAG), then the pid's (forgotten
 * first in the child), these, and the holders'.
 */
static void watch_fork(void)
{
	usmc_locks_watch_fork();
	(void)usmc_pid();
	usmc_fork_watch(before_fork, NULL, adopt_diag_slots);
	usmc_holders_watch_fork();
}

void usmc_fd_watch_fork(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	pthread_once(&once, watch_fork);
}

/*
 * As the library loads.  Set at a first use, under a lock of ours, a
 * handler would wait for glibc's lock of the handlers, which a fork in
 * another thread holds while its prepare handlers wait for ours.
 */
__attribute__((constructor)) static void watch_fork_at_load(void)
{
	usmc_fd_watch_fork();
}
