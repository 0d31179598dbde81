// SPDX-License-Identifier: MIT
/*
 * The holders of a connection: the processes of a fork tree that share it.
 *
 * After fork() parent and child hold one kernel socket, and the kernel
 * ends the TCP connection with the socket's last close.  A shared-memory
 * connection ends the same way: its last holder publishes the close (CDC
 * peer_conn_closed) and reads the doorbells left in the TCP socket before
 * the kernel's close, whose FIN they would otherwise turn into a reset.
 * Which process is the last is counted, not guessed from what /proc shows
 * at one moment (two processes closing at once would each see the other
 * and neither end it).  The count is in the connection's own state
 * (struct usmc_conn_shared, in its slot of the segment's own memfd),
 * which every holder maps, and it counts processes, not descriptors (a
 * process's dups are its usmc_sock's refs):
 *
 *  - a new connection has one holder, the process that made it;
 *  - fork() counts the child before it exists: the prepare handler adds
 *    one for every connection the process holds, so that a parent that
 *    closes at once (a forking server) leaves the count to its child.  A
 *    fork and a close in another thread exclude each other (holders_lock):
 *    the child gets both the descriptor and its count, or neither.  A
 *    connection another thread made after the prepare handler's look is
 *    counted by the child itself, unless its count is already zero;
 *  - a program spawned with the connection (posix_spawn, system, popen,
 *    an exec from a vfork child) is counted before the spawn, for each
 *    connection it inherits, and the count is taken back if the spawn or
 *    the exec fails (usmc_exec.c).  A vfork child that does not exec
 *    holds nothing of usmc's: its close and dup2 leave usmc's tables,
 *    which are its parent's, alone, and it is not counted;
 *  - exec keeps the count, the process is the same: the new image takes
 *    the process's holds over with the state handed to it, and ends the
 *    hold of each connection whose descriptors the exec closed;
 *  - a process's hold ends once: with the close of its last descriptor of
 *    the socket, or at exit() (usmc_exit_drain).  The process whose
 *    decrement reaches zero is the last holder: it ends the connection.
 *
 * A holder that never ends its hold (killed with -9, an _exit() without
 * close, a program exec'd without usmc) leaves the count above zero for
 * good.  So a closer whose decrement leaves holders looks in /proc
 * whether any process of the fork tree still holds the socket; if none
 * does, it takes the rest of the count to zero itself, unless it changed
 * meanwhile, and is the last.  Exactly one process ends the connection:
 * the owner of the link group frees the slot when it is the last, and
 * the slot may then carry a new connection at once, so a second "last"
 * would publish into a stranger's state.  For the same reason the count
 * carries the slot's generation (its CDC area's gen when the connection
 * began): a count of a slot reused since is no longer this connection's.
 *
 * A count too high is safe (the look in /proc decides), one too low is
 * not (a close would end the connection under a holder still using it),
 * so wherever a process cannot be sure, it counts one more: a failed
 * fork, a spawn that failed with more connections than it recorded, a
 * hold the exec could not hand over.  Left to /proc, several holders
 * closing at once with such a stale count may each still see the other,
 * and the end is then the kernel's alone.
 */
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include "usmc_conn.h"
#include "usmc_fdtab.h"
#include "usmc_fork.h"
#include "usmc_bell.h"
#include "usmc_holders.h"
#include "usmc_proc.h"
#include "usmc_sock.h"

/* Readers: closes.  Writer: a fork, from its prepare handler to its end. */
static pthread_rwlock_t holders_lock = PTHREAD_RWLOCK_INITIALIZER;
static sigset_t fork_mask;  /* the forking thread's signal mask */
static _Atomic uint32_t fork_count; /* forks since this image started, each counted as it begins */

/* The count word: the slot's generation, and the number of holders. */
#define HOLDERS(gen, n) ((uint64_t)(gen) << 32 | (n))
#define HOLDERS_GONE UINT32_MAX /* the slot carries another connection now */

/* One more holder, unless the connection has ended (its count is zero or gone). */
static bool holders_add(struct usmc_conn *conn)
{
	uint64_t w = atomic_load(&conn->sh->holders);

	while (w >> 32 == conn->holders_gen && (uint32_t)w &&
	       !atomic_compare_exchange_weak(&conn->sh->holders, &w, w + 1))
		;
	return w >> 32 == conn->holders_gen && (uint32_t)w;
}

/* One holder fewer, never below floor: how many are left, or HOLDERS_GONE. */
static uint32_t holders_sub(struct usmc_conn *conn, uint32_t floor)
{
	uint64_t w = atomic_load(&conn->sh->holders);

	while (w >> 32 == conn->holders_gen && (uint32_t)w > floor &&
	       !atomic_compare_exchange_weak(&conn->sh->holders, &w, w - 1))
		;
	if (w >> 32 != conn->holders_gen)
		return HOLDERS_GONE;
	return (uint32_t)w > floor ? (uint32_t)w - 1 : (uint32_t)w;
}

/* The count as it is now, in *left: false if it reached zero (another holder ended it) or is gone. */
static bool holders_left(struct usmc_conn *conn, uint32_t *left)
{
	uint64_t w = atomic_load(&conn->sh->holders);

	*left = (uint32_t)w;
	return w >> 32 == conn->holders_gen && (uint32_t)w;
}

/*
 * left holders are counted, and none may be alive: if /proc shows no
 * other process holding the socket, the rest of the count goes to zero
 * and we are the last, unless another holder's decrement came first.
 */
static bool holders_claim(struct usmc_conn *conn, int fd, unsigned long inode, uint32_t left)
{
	pid_t child = atomic_load_explicit(&conn->sh->fork_child, memory_order_relaxed);
	struct stat st;

	/* Asked for only here: most closes are the only holder's. */
	if (!inode && fd >= 0 && fstat(fd, &st) == 0)
		inode = (unsigned long)st.st_ino;
	/*
	 * A forking server's close of what it handed to a child: that child is
	 * proof enough, where the whole tree's look reads every descriptor of
	 * every other child first (postgres: about 330 links per connection).
	 * The child the connection last went to says where it is (fork_child):
	 * one link, before the list of our children is read.
	 */
	if (fd >= 0 && inode &&
	    ((child > 0 && child != usmc_pid() && proc_pid_holds_socket_at(child, fd, inode)) ||
	     proc_child_holds_socket_at(fd, inode)))
		return false;
	/* The child closed meanwhile, as it often does at once: it was the last. */
	if (!holders_left(conn, &left))
		return false;
	for (;;) {
		uint64_t w = HOLDERS(conn->holders_gen, left);

		if (proc_tree_holds_socket(conn->lgr->owner_pid, inode))
			return false;
		if (atomic_compare_exchange_strong(&conn->sh->holders, &w,
						   HOLDERS(conn->holders_gen, 0)))
			return true;
		if (w >> 32 != conn->holders_gen || !(uint32_t)w)
			return false;
		left = (uint32_t)w;
	}
}

void usmc_holders_init(struct usmc_conn *conn)
{
	conn->holders_gen = atomic_load(&conn->tx.cdc->gen);
	atomic_store(&conn->sh->holders, HOLDERS(conn->holders_gen, 1));
	atomic_store(&conn->holds, true);
	usmc_holders_watch_fork();
}

void usmc_holders_adopt(struct usmc_conn *conn, bool holds)
{
	conn->holders_gen = (uint32_t)(atomic_load(&conn->sh->holders) >> 32);
	atomic_store(&conn->holds, holds);
}

bool usmc_holder_last(struct usmc_conn *conn, int fd, unsigned long inode)
{
	bool last = false;
	uint32_t left;

	usmc_holders_enter();
	/* A process whose hold has ended, or was never counted, leaves the end to the holders. */
	if (conn->sh && atomic_exchange(&conn->holds, false)) {
		left = holders_sub(conn, 0);
		last = left == 0 || (left != HOLDERS_GONE && holders_claim(conn, fd, inode, left));
	}
	usmc_holders_leave();
	return last;
}

void usmc_holder_put(struct usmc_conn *conn)
{
	usmc_holders_enter();
	if (conn->sh && atomic_exchange(&conn->holds, false))
		holders_sub(conn, 0);
	usmc_holders_leave();
}

void usmc_holders_enter(void)
{
	pthread_rwlock_rdlock(&holders_lock);
}

void usmc_holders_leave(void)
{
	pthread_rwlock_unlock(&holders_lock);
}

_Atomic uint32_t usmc_holders_epoch;
void (*usmc_holders_forking)(void);

bool usmc_holder_add(struct usmc_conn *conn)
{
	atomic_fetch_add(&usmc_holders_epoch, 1);
	return holders_add(conn);
}

bool usmc_holders_shared(const struct usmc_conn *conn)
{
	uint64_t w = atomic_load_explicit(&conn->sh->holders, memory_order_relaxed);

	return w >> 32 != conn->holders_gen || (uint32_t)w != 1;
}

/*
 * Whether no other process of the tree holds the socket fd names, by
 * /proc.  Not while a fork of ours is under way: it counts its child
 * before the child exists.  The count itself is left as it is: a count
 * too high only costs looks, and a close makes the same look before it
 * ends the connection (holders_claim).
 */
static bool holders_alone(struct usmc_conn *conn, int fd)
{
	struct stat st;
	bool alone;

	/* A fork holds the lock to write from its count to the child's birth. */
	if (pthread_rwlock_tryrdlock(&holders_lock) != 0)
		return false;
	alone = atomic_load(&conn->holds) && fstat(fd, &st) == 0 &&
		!proc_tree_holds_socket(conn->lgr->owner_pid, (unsigned long)st.st_ino);
	pthread_rwlock_unlock(&holders_lock);
	return alone;
}

bool usmc_holders_shared_now(struct usmc_conn *conn, int fd)
{
	uint64_t w = atomic_load(&conn->sh->holders);

	if (w >> 32 != conn->holders_gen || (uint32_t)w <= 1)
		return usmc_holders_shared(conn);
	/* A new holder changes the count: what /proc showed holds until then. */
	if (w != conn->recount_word) {
		conn->recount_word = w;
		conn->recount_asks = 0;
		conn->recount_next = 1;
		conn->recount_alone = false;
	}
	if (conn->recount_alone)
		return false;
	/* Each look in /proc reads every descriptor of the tree: fewer as the sharing lasts. */
	if (++conn->recount_asks < conn->recount_next)
		return true;
	conn->recount_next = 2 * conn->recount_asks;
	conn->recount_alone = holders_alone(conn, fd) && atomic_load(&conn->sh->holders) == w;
	return !conn->recount_alone;
}

void usmc_holder_sub(struct usmc_conn *conn)
{
	/* The spawning process holds it still: the count never reaches zero here. */
	holders_sub(conn, 1);
}

/* Calls fn for each connection of the descriptor table, once per socket. */
static void each_conn(void (*fn)(struct usmc_conn *conn))
{
	struct usmc_sock *s;

	for (int fd = 0; (s = usmc_fdtab_next(&fd)); fd++)
		if (s->conn && s->conn->sh && atomic_load(&s->conn->holds) &&
		    s->conn->fork_seen != fork_count)
			fn(s->conn);
}

static void count_for_child(struct usmc_conn *conn)
{
	conn->fork_seen = fork_count;
	holders_add(conn);
}

/* In the child: a connection the prepare handler did not count. */
static void count_self(struct usmc_conn *conn)
{
	conn->fork_seen = fork_count;
	if (!holders_add(conn))
		atomic_store(&conn->holds, false);
}

/*
 * Signals stay blocked until the fork is done: a handler that closed a
 * socket would wait for the lock its own thread holds.
 */
static void fork_prepare(void)
{
	sigset_t all;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &fork_mask);
	/* Before the count: a child that shares a connection shares the bell too. */
	usmc_bell_prepare();
	pthread_rwlock_wrlock(&holders_lock);
	fork_count++;
	atomic_fetch_add(&usmc_holders_epoch, 1);
	each_conn(count_for_child);
	if (usmc_holders_forking)
		usmc_holders_forking();
}

static void fork_parent(void)
{
	pthread_rwlock_unlock(&holders_lock);
	pthread_sigmask(SIG_SETMASK, &fork_mask, NULL);
}

/* In the child, me: this process holds the connection now, its parent may look for it. */
static void note_child(struct usmc_conn *conn, pid_t me)
{
	atomic_store_explicit(&conn->sh->fork_child, (int32_t)me, memory_order_relaxed);
	if (conn->fork_seen != fork_count)
		count_self(conn);
}

static void fork_child(void)
{
	/* The lock is the parent thread's: the child starts with a fresh one. */
	pthread_rwlock_t fresh = PTHREAD_RWLOCK_INITIALIZER;
	/* Not the cached pid: its own handler may not have run yet. */
	pid_t me = getpid();
	struct usmc_sock *s;

	holders_lock = fresh;
	for (int fd = 0; (s = usmc_fdtab_next(&fd)); fd++)
		if (s->conn && s->conn->sh && atomic_load(&s->conn->holds))
			note_child(s->conn, me);
	pthread_sigmask(SIG_SETMASK, &fork_mask, NULL);
}

/* The process has had a connection, and its forks count holders. */
static _Atomic bool holders_watched;

static void watch_fork(void)
{
	usmc_fork_watch(fork_prepare, fork_parent, fork_child);
	atomic_store(&holders_watched, true);
}

void usmc_holders_vforking(void)
{
	/* As fork_prepare does: a child that takes a connection over by exec shares the bell. */
	if (atomic_load(&holders_watched))
		usmc_bell_prepare();
}

uint32_t usmc_holders_forks(void)
{
	return atomic_load_explicit(&fork_count, memory_order_relaxed);
}

void usmc_holders_watch_fork(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	pthread_once(&once, watch_fork);
}
