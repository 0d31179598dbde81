// SPDX-License-Identifier: MIT
/*
 * Wake-ups: doorbells that cannot be lost, and bytes that cannot pass for them.
 *
 * A waiter sleeps in poll() on the connection's TCP socket, which carries
 * nothing but doorbells: one byte the peer writes after publishing, when
 * it sees that we wait.  The protocol, for every waiter (a blocking read
 * or write, poll, epoll, in any thread of any process holding the socket):
 *
 *  1. arm: bump want_data / want_space in our CDC area, then a full fence;
 *  2. read the peer's doorbell count (its CDC area's bells): seen;
 *  3. register (thread id, seen) in one of the connection's sleeper slots;
 *  4. read doorbells, but never past the seen of any registered sleeper;
 *  5. look at the rings: ready, or
 *  6. poll() the TCP socket, with no timeout but the caller's;
 *  7. unregister, read the doorbells it has now seen, and look again.
 *
 * The peer publishes its cursor or flags, fences, reads want_*, and for a
 * bump it has not rung for it counts the bell (bells + 1) and then writes
 * its byte.  A change that step 5 missed was published after the look,
 * so its bell has a number past seen (had step 2 seen the count, step 5
 * would have seen the change), and no one reads that bell before the
 * sleeper unregisters: a drainer either saw the registration, or read its
 * count before the registration and so only bells whose change step 5
 * sees.  So a sleeper finds its TCP socket readable for as long as there
 * is a change it has not looked at, whichever thread or process reads
 * doorbells meanwhile, and wakes within the kernel's wake-up of the write:
 * no wait needs a timeout to make progress.  More sleepers than slots
 * (USMC_SLEEPERS on one connection at once) are the one inexact case:
 * those sleep a millisecond at a time.
 *
 * Reading doorbells is counted: each side publishes how many of the
 * peer's it read (bells_read).  Bytes past the peer's count, or bytes that
 * are not doorbells, are data that reached the socket outside usmc: the
 * connection resets (USMC_DECL_FOREIGN_BYTES) rather than drop them.  A
 * side stops ringing while CDC_BELLS_OUTSTANDING_MAX of its doorbells are
 * unread, so its blocking write() of one never waits.
 *
 * Under a seccomp filter only read(), write() and poll() touch the TCP
 * socket here: what a sandbox such as OpenSSH's allows.  Without one, a
 * drain takes its doorbells with recv(MSG_DONTWAIT), one call where
 * poll() and read() are two.  A write to a reset socket raises SIGPIPE
 * once its error was taken (or at once when the reset follows the peer's
 * FIN), so no doorbell is written after the peer closed, after its FIN or
 * once the TCP connection ended, and a write that meets a reset records
 * it.
 */
#include <errno.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "usmc.h"
#include "usmc_bell.h"
#include "usmc_channel.h"
#include "usmc_conn.h"
#include "usmc_holders.h"
#include "usmc_kick.h"
#include "usmc_proc.h"
#include "usmc_rx.h"
#include "usmc_sock.h"
#include "usmc_stats.h"
#include "usmc_sys.h"
#include "usmc_wait.h"
#include "usmc_wake.h"

/* Set when a registration found no slot: the caller sleeps briefly. */
static __thread bool wake_inexact;

static uint32_t wake_tid(void)
{
	static __thread pid_t tid, tid_pid;
	pid_t pid = usmc_pid();

	/* A forked child's thread has an id of its own. */
	if (tid_pid != pid) {
		tid = (pid_t)usmc_sys.syscall(SYS_gettid);
		tid_pid = pid;
	}
	return (uint32_t)tid;
}

static uint32_t peer_bells(const struct usmc_conn *conn)
{
	return atomic_load_explicit(&conn->rx.cdc->bells, memory_order_seq_cst);
}

/* Registers this thread as asleep on conn, having seen the peer's bells up to seen. */
static void sleeper_register(struct usmc_conn *conn, uint32_t seen)
{
	uint64_t me = (uint64_t)wake_tid() << 32;
	uint64_t v = me | seen;

	for (int i = 0; i < USMC_SLEEPERS; i++) {
		if ((atomic_load(&conn->sh->sleepers[i]) & ~0xffffffffull) == me) {
			atomic_store(&conn->sh->sleepers[i], v);
			return;
		}
	}
	for (int i = 0; i < USMC_SLEEPERS; i++) {
		uint64_t free_slot = 0;

		if (atomic_compare_exchange_strong(&conn->sh->sleepers[i], &free_slot, v))
			return;
	}
	wake_inexact = true;
}

void usmc_conn_disarm(struct usmc_sock *s)
{
	struct usmc_conn *conn = s->conn;
	uint64_t me = (uint64_t)wake_tid() << 32;

	for (int i = 0; i < USMC_SLEEPERS; i++) {
		uint64_t v = atomic_load(&conn->sh->sleepers[i]);

		if ((v & ~0xffffffffull) == me)
			atomic_compare_exchange_strong(&conn->sh->sleepers[i], &v, 0);
	}
}

bool usmc_wake_inexact(void)
{
	bool was = wake_inexact;

	wake_inexact = false;
	return was;
}

/* How many of the peer's bells up to seen may be read now: none a sleeper has not seen. */
static uint32_t bells_owed(const struct usmc_conn *conn, uint32_t seen)
{
	uint32_t limit = seen, owed;

	for (int i = 0; i < USMC_SLEEPERS; i++) {
		uint64_t v = atomic_load(&conn->sh->sleepers[i]);

		if (v && (int32_t)((uint32_t)v - limit) < 0)
			limit = (uint32_t)v;
	}
	owed = limit - atomic_load(&conn->tx.cdc->bells_read);
	return (int32_t)owed > 0 ? owed : 0;
}

/*
 * Whether the peer counted that many more urgent doorbells than we read
 * in the stream (those its later ones overtook: cdc_ring_urgent).  Most
 * never show, so the count bounds them only: a byte from outside usmc of
 * that value can pass for one, on a connection that sent urgent data.
 */
static bool urgent_bells_counted(const struct usmc_conn *conn, uint32_t urgent)
{
	uint32_t sent = atomic_load(&conn->rx.cdc->urg_bells);

	return sent - atomic_load(&conn->sh->urg_bells_read) >= urgent;
}

/*
 * Whether the TCP socket has something to read (a byte, its end, an
 * error): a peek that does not wait, or under a filter poll(); errno kept.
 */
static bool tcp_readable(int fd, bool peek)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	int saved = errno;
	bool readable;
	char c;

	if (!peek)
		return usmc_sys.poll(&p, 1, 0) > 0;
	readable = usmc_sys.recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) >= 0 ||
		   (errno != EAGAIN && errno != EWOULDBLOCK);
	errno = saved;
	return readable;
}

/*
 * Reads the doorbells owed, without blocking, and only by the drainer of
 * the moment: recv(MSG_DONTWAIT), one call; under a seccomp filter, which
 * may allow read() and poll() alone (OpenSSH's sandbox), read() only once
 * poll() says the socket is readable, since a bell is counted before its
 * byte is written and a blocking read() could wait for it.  With upto,
 * nothing more: what follows them (later doorbells, the peer's end, bytes
 * from outside usmc) keeps the socket readable for the next wait, whose
 * drain reads it; else a look past them records it now.
 */
static enum cdc_tcp_state drain_counted(struct usmc_sock *s, uint32_t seen, bool upto, int *err)
{
	struct usmc_conn *conn = s->conn;
	bool dontwait = !proc_seccomp_filtered(false);
	int saved = errno;
	char buf[64];

	/* Bounded: a peer flooding the idle TCP stream must not keep us here. */
	for (int i = 0; i < 64; i++) {
		uint32_t owed = bells_owed(conn, seen);
		bool probe = false;
		size_t want;
		ssize_t n;

		if (upto && !owed)
			return CDC_TCP_OPEN;
		/* Owed bells are read as they come; anything else is looked for first. */
		if ((!owed || !dontwait) && !tcp_readable(s->fd, dontwait))
			return CDC_TCP_OPEN;
		if (!owed) {
			/*
			 * Readable with every bell sent read: no bell, but what?  Unless
			 * the peer counted one since, which its byte then is: a sleeper's
			 * to see, looked at after it showed, as the peer counts first.
			 */
			if (peer_bells(conn) != atomic_load(&conn->tx.cdc->bells_read))
				return CDC_TCP_OPEN;
			probe = true;
			owed = 1;
		}
		want = owed < sizeof(buf) ? owed : sizeof(buf);
		int state;

		n = dontwait ? usmc_sys.recv(s->fd, buf, want, MSG_DONTWAIT)
			     : usmc_sys.read(s->fd, buf, want);
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			errno = saved;
			return CDC_TCP_OPEN;
		}
		if (n > 0) {
			uint32_t urgent;

			if (!cdc_all_bells(buf, (size_t)n, &urgent) || (probe && !urgent) ||
			    !urgent_bells_counted(conn, urgent))
				return CDC_TCP_ALIEN;
			atomic_fetch_add(&conn->sh->urg_bells_read, urgent);
			atomic_fetch_add(&conn->tx.cdc->bells_read, (uint32_t)n - urgent);
			/* An urgent doorbell took a doorbell's place in the read: look again. */
			if ((size_t)n < want && !urgent)
				return CDC_TCP_OPEN;
			continue;
		}
		if ((state = cdc_read_end(n, err)) >= 0)
			return (enum cdc_tcp_state)state;
	}
	return CDC_TCP_OPEN;
}

static int conn_drain_upto(struct usmc_sock *s, uint32_t seen, bool upto, bool tell);

void (*usmc_wake_drained)(struct usmc_sock *s);

/*
 * Whether a reset of the TCP connection is only our doorbells' doing:
 * nothing but doorbells went on TCP, and the peer did not abort (its
 * flags).  The peer's kernel socket then ended with doorbells unread, or
 * met one after it closed: one that reached it after the drain of its
 * close or exit, one it never drained (_exit, a kill).  TCP would have
 * ended that connection with a FIN, or with a reset if our data was
 * unread, which conn_tcp_ended tells by the ring.  A write after the
 * peer's close goes on TCP (usmc_tx.c), and the reset it meets is TCP's.
 * So is one from outside (ss -K on the peer), which reads as the end.
 */
static bool tcp_reset_is_ours(struct usmc_conn *conn)
{
	if (atomic_load(&conn->sh->tcp_data) || usmc_conn_refresh(conn) < 0)
		return false;
	return !(atomic_load(&conn->sh->peer_flags) & CDC_PEER_CONN_ABORT);
}

/* The TCP connection under a shared-memory one ended: record how. */
static void conn_tcp_ended(struct usmc_sock *s, int state, int err)
{
	struct usmc_conn *conn = s->conn;

	/*
	 * A reset that only our doorbells brought about is the end of file
	 * TCP would give: no POLLHUP or POLLERR while the peer's last data is
	 * unread, and no error for SO_ERROR (usmc_inet.c).  Below, a peer
	 * gone with our data unread still resets, as TCP's would.
	 */
	if (state == CDC_TCP_RESET && tcp_reset_is_ours(conn)) {
		state = CDC_TCP_EOF;
		err = 0;
	}
	atomic_store(&conn->sh->tcp_err, err);
	atomic_store(&conn->sh->tcp_state, state);
	/*
	 * An orderly close may still end in a TCP reset (doorbells left
	 * unread): the peer's flags, set before its close, tell the two apart.
	 */
	if (usmc_conn_refresh(conn) == 0 &&
	    !(atomic_load(&conn->sh->peer_flags) & (CDC_PEER_DONE_WRITING | CDC_PEER_CONN_CLOSED)) &&
	    (state == CDC_TCP_RESET || conn->sh->tx_cons_seen < conn->sh->tx_prod))
		/* Gone without closing, leaving our data unread: TCP would reset. */
		usmc_conn_set_reset(conn, state == CDC_TCP_RESET && err ? err : ECONNRESET);
}

/*
 * After the peer's FIN the kernel socket reads end of file even once a
 * reset followed (data we sent reached the closed peer); the reset shows
 * only as POLLERR, and a read takes its error.
 */
static int tcp_reset_after_eof(struct usmc_sock *s)
{
	struct usmc_conn_shared *sh = s->conn->sh;
	struct pollfd p = { .fd = s->fd };
	char c;
	int err;

	if (usmc_sys.poll(&p, 1, 0) <= 0 || !(p.revents & POLLERR))
		return CDC_TCP_EOF;
	/* Past the FIN a read never blocks: the error, or end of file again. */
	err = usmc_sys.read(s->fd, &c, 1) < 0 ? errno : EPIPE;
	/* Our doorbell met the closed peer: its error is taken, the end stays a FIN. */
	if (tcp_reset_is_ours(s->conn))
		return CDC_TCP_EOF;
	atomic_store(&sh->tcp_err, err);
	atomic_store(&sh->tcp_state, CDC_TCP_RESET);
	return CDC_TCP_RESET;
}

int usmc_conn_drain(struct usmc_sock *s)
{
	return s->conn->rx_mapped ? conn_drain_upto(s, peer_bells(s->conn), false, true)
				   : CDC_TCP_OPEN;
}

/*
 * Before the kernel's close: only a doorbell left unread turns its FIN
 * into a reset, and only one the peer counted can be on the way (it
 * counts before it writes).  With none owed, a look at the socket would
 * find nothing of ours: bytes from outside usmc, or the peer's end, are
 * for the kernel's close to answer, as TCP's would.
 */
void usmc_conn_drain_owed(struct usmc_sock *s)
{
	struct usmc_conn *conn = s->conn;

	/* An end the kernel socket read already comes after every byte before it. */
	if (conn->rx_mapped && peer_bells(conn) != atomic_load(&conn->tx.cdc->bells_read) &&
	    atomic_load(&conn->sh->tcp_state) == CDC_TCP_OPEN)
		conn_drain_upto(s, peer_bells(conn), true, false);
}

void usmc_conn_drain_seen(struct usmc_sock *s)
{
	struct usmc_conn *conn = s->conn;
	uint64_t avail;
	uint32_t seen;

	if (!conn->rx_mapped || peer_bells(conn) == atomic_load(&conn->tx.cdc->bells_read))
		return;
	usmc_conn_want(s, POLLIN);
	seen = peer_bells(conn);
	if (usmc_rx_avail(s, &avail) == 0 && !avail)
		conn_drain_upto(s, seen, true, true);
}

/*
 * Reads the doorbells up to the seen-th, and those that sleepers have
 * seen; without upto, what follows them too (drain_counted).  With tell,
 * a drain that read any, or found the end, says so (usmc_wake_drained).
 */
static int conn_drain_upto(struct usmc_sock *s, uint32_t seen, bool upto, bool tell)
{
	struct usmc_conn *conn = s->conn;
	uint32_t me = wake_tid(), idle = 0, read_before;
	int err = 0, state;

	state = atomic_load(&conn->sh->tcp_state);
	if (state == CDC_TCP_EOF)
		return tcp_reset_after_eof(s);
	if (state != CDC_TCP_OPEN)
		return state;
	/* Another thread reads the doorbells now: its caller looks at the rings after. */
	if (!atomic_compare_exchange_strong(&conn->sh->drainer, &idle, me))
		return CDC_TCP_OPEN;
	read_before = atomic_load(&conn->tx.cdc->bells_read);
	state = drain_counted(s, seen, upto, &err);
	atomic_store(&conn->sh->drainer, 0);
	if (state == CDC_TCP_ALIEN) {
		/* Data that reached the socket outside usmc cannot be put in order: say so. */
		s->reason = USMC_DECL_FOREIGN_BYTES;
		usmc_conn_abort(s);
	} else if (state != CDC_TCP_OPEN) {
		conn_tcp_ended(s, state, err);
	}
	/* The doorbells read here no longer make the socket readable to an epoll set: tell it. */
	if (tell && usmc_wake_drained &&
	    (state != CDC_TCP_OPEN || atomic_load(&conn->tx.cdc->bells_read) != read_before))
		usmc_wake_drained(s);
	return state == CDC_TCP_ALIEN ? CDC_TCP_OPEN : state;
}

void usmc_wake_look_again(struct usmc_sock *s)
{
	void (*tell)(struct usmc_sock *s) = usmc_wake_drained;

	if (tell)
		tell(s);
}

/*
 * Whether a byte may go on the TCP socket: not once it ended, nor to a
 * peer that closed, which waits for nothing and whose socket answers a
 * write with a reset.
 */
static bool ring_allowed(struct usmc_sock *s, bool filtered)
{
	struct usmc_conn *conn = s->conn;
	uint32_t closed = CDC_PEER_CONN_CLOSED | CDC_PEER_CONN_ABORT | CDC_PEER_EXITING;

	if (atomic_load(&conn->sh->tcp_state) != CDC_TCP_OPEN)
		return false;
	if (conn->rx_mapped &&
	    ((atomic_load(&conn->sh->peer_flags) |
	      atomic_load_explicit(&conn->rx.cdc->flags, memory_order_relaxed)) & closed))
		return false;
	/*
	 * Past the peer's FIN, a reset that follows leaves EPIPE for the next
	 * write, with SIGPIPE.  A doorbell is sent with MSG_NOSIGNAL, and a
	 * reset it brings from a peer gone without a word is told from TCP's
	 * (conn_tcp_ended); only a write(), under a seccomp filter, needs the
	 * look at the socket first.
	 */
	return !filtered || !usmc_fd_hung_up(s->fd);
}

void usmc_conn_ring(struct usmc_sock *s)
{
	struct usmc_conn *conn = s->conn;
	bool filtered;

	/* The count first: it is in memory, where ring_allowed's look is a system call. */
	if (conn->rx_mapped && atomic_load(&conn->tx.cdc->bells) -
					  atomic_load_explicit(&conn->rx.cdc->bells_read,
							       memory_order_relaxed) >=
				      CDC_BELLS_OUTSTANDING_MAX)
		return;
	filtered = proc_seccomp_filtered(false);
	if (!ring_allowed(s, filtered))
		return;
	if (cdc_ring(s->fd, conn->tx.cdc, filtered) < 0 &&
	    (errno == ECONNRESET || errno == EPIPE)) {
		conn_tcp_ended(s, CDC_TCP_RESET, errno);
	}
	usmc_stats_add(USMC_STAT_BELLS, 1);
}

void usmc_conn_ring_urgent(struct usmc_sock *s)
{
	int saved = errno;

	if (s->conn->rx_mapped && ring_allowed(s, proc_seccomp_filtered(false)) &&
	    cdc_ring_urgent(s->fd, s->conn->tx.cdc) < 0 &&
	    (errno == ECONNRESET || errno == EPIPE))
		conn_tcp_ended(s, CDC_TCP_RESET, errno);
	errno = saved;
}

bool usmc_conn_urgent_watched(void)
{
	return !proc_seccomp_filtered(false);
}

void usmc_conn_urgent_taken(struct usmc_sock *s)
{
	if (usmc_conn_urgent_watched())
		cdc_urgent_taken(s->fd);
}

void usmc_conn_want(struct usmc_sock *s, short events)
{
	struct usmc_conn *conn = s->conn;

	if (events & POLLIN)
		atomic_fetch_add_explicit(&conn->tx.cdc->want_data, 1, memory_order_relaxed);
	if (events & POLLOUT)
		atomic_fetch_add_explicit(&conn->tx.cdc->want_space, 1, memory_order_relaxed);
	atomic_thread_fence(memory_order_seq_cst);
}

void usmc_conn_arm(struct usmc_sock *s, short events)
{
	struct usmc_conn *conn = s->conn;

	usmc_conn_want(s, events);
	if (conn->rx_mapped)
		sleeper_register(conn, peer_bells(conn));
	/*
	 * Only doorbells the peer counted need reading before the sleep: with
	 * none owed, a look at the socket (a system call for each connection
	 * an epoll set holds) would find nothing, and anything else there, an
	 * end or bytes that are no doorbell, wakes the sleep and is read then.
	 */
	if (conn->rx_mapped && peer_bells(conn) != atomic_load(&conn->tx.cdc->bells_read))
		usmc_conn_drain(s);
}

/* Whether a blocking read (POLLIN) or write (POLLOUT) can go on. */
static bool sleep_ready(struct usmc_sock *s, short events)
{
	struct conn_view v;

	if (usmc_conn_view(s, &v) < 0)
		return true;
	/* Any byte: the read takes it, whatever SO_RCVLOWAT asks of a wake-up. */
	if ((events & POLLIN) && v.avail)
		return true;
	return usmc_conn_view_revents(s, &v, events) != 0;
}

int usmc_conn_sleep(struct usmc_sock *s, short events, int timeout_ms)
{
	struct usmc_lgr *lgr = s->conn->lgr;
	struct pollfd p[4] = { { .fd = s->fd, .events = POLLIN },
			       { .fd = lgr_watched_chan(lgr), .events = POLLIN },
			       { .fd = -1, .events = POLLIN },
			       { .fd = -1, .events = POLLIN } };
	/* Only a call without a time limit restarts, even if the wait below is short. */
	bool endless = timeout_ms < 0;
	int rc;

	usmc_conn_arm(s, events);
	/* Before the look: a shutdown by another thread kicks the sleep, by another process rings. */
	p[2].fd = usmc_kick_enter();
	p[3].fd = usmc_bell_enter(usmc_holders_shared(s->conn));
	if (sleep_ready(s, events)) {
		usmc_kick_leave(p[2].fd);
		usmc_conn_disarm(s);
		usmc_wake_inexact();
		return 0;
	}
	if (usmc_wake_inexact() && (timeout_ms < 0 || timeout_ms > 1))
		timeout_ms = 1;
	/* Unused entries have fd -1, which poll() passes over. */
	rc = usmc_sys.poll(p, 4, timeout_ms);
	usmc_kick_leave(p[2].fd);
	usmc_conn_disarm(s);
	/* As the kernel: SA_RESTART restarts a socket call, unless it has a timeout. */
	if (rc < 0 && errno == EINTR && endless && usmc_signals_restart())
		return 0;
	if (rc < 0)
		return -1;
	if (rc > 0 && p[1].revents)
		lgr_take_in(lgr, p[1].revents);
	if (rc > 0 && p[0].revents)
		usmc_conn_drain(s);
	return 0;
}
