// SPDX-License-Identifier: MIT
/*
 * The usmc socket's state, as the program and usmc-stat see it, why a
 * socket is plain TCP, and whether a call on it waits (the socket:
 * usmc_sock.h; its table: usmc_fdtab.h).
 */
#include <fcntl.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "usmc.h"
#include "usmc_diag.h"
#include "usmc_log.h"
#include "usmc_proc.h"
#include "usmc_sock.h"
#include "usmc_stats.h"
#include "usmc_sys.h"

/* What a socket in a state shows: to usmc-stat (its diag slot) and to the program (usmc_info). */
struct sock_shown {
	enum usmc_diag_state diag;
	enum usmc_mode mode;
};

static struct sock_shown sock_shown(const struct usmc_sock *s, enum sock_state state)
{
	static const struct sock_shown shown[] = {
		[SOCK_PLAIN] = { DIAG_OPEN, USMC_MODE_NONE },
		[SOCK_INIT] = { DIAG_OPEN, USMC_MODE_NONE },
		[SOCK_LISTEN] = { DIAG_LISTEN, USMC_MODE_NONE },
		[SOCK_ACCEPTING] = { DIAG_HANDSHAKE, USMC_MODE_HANDSHAKE },
		[SOCK_PROPOSED] = { DIAG_HANDSHAKE, USMC_MODE_HANDSHAKE },
		[SOCK_SMC] = { DIAG_SMCD, USMC_MODE_SMCD },
	};

	/* A plain socket with a reason fell back; without one it never tried. */
	if (state == SOCK_PLAIN && s->reason)
		return (struct sock_shown){ DIAG_FALLBACK, USMC_MODE_FALLBACK };
	return (unsigned)state < sizeof(shown) / sizeof(shown[0]) ? shown[state] : shown[SOCK_INIT];
}

int usmc_sock_mode(const struct usmc_sock *s)
{
	return sock_shown(s, atomic_load(&s->state)).mode;
}

_Atomic int usmc_socks_proposed;

void usmc_sock_set_state(struct usmc_sock *s, enum sock_state state)
{
	struct usmc_diag_sock *d = s->diag;
	struct usmc_conn *conn = s->conn;
	bool was_proposed = atomic_load(&s->state) == SOCK_PROPOSED;

	if (was_proposed != (state == SOCK_PROPOSED))
		atomic_fetch_add(&usmc_socks_proposed, was_proposed ? -1 : 1);

	if (state == SOCK_SMC && conn) {
		d->lgr_id = conn->lgr->id;
		d->peer_pid = conn->lgr->peer_pid;
		d->rmb_size = conn->tx.size;
		d->peer_rmb_size = conn->rx_mapped ? conn->rx.size : 0;
	}
	d->reason = s->reason;
	d->by_peer = s->reason_by_peer;
	atomic_store_explicit(&d->state, sock_shown(s, state).diag, memory_order_release);
	atomic_store(&s->state, state);
}

void usmc_sock_fallback(struct usmc_sock *s, uint32_t reason, bool by_peer)
{
	s->reason = reason;
	s->reason_by_peer = by_peer;
	usmc_sock_set_state(s, SOCK_PLAIN);
	usmc_stats_fallback(reason);
	usmc_log_fallback(s->fd, reason, by_peer);
}

/* Set: every socket made from now on is plain TCP, for this reason. */
static _Atomic uint32_t plain_from_now;

void usmc_plain_from_now(uint32_t reason)
{
	atomic_store(&plain_from_now, reason);
}

uint32_t usmc_plain_reason(void)
{
	return atomic_load(&plain_from_now);
}

bool usmc_sock_nonblocking(struct usmc_sock *s, int flags)
{
	int fl;

	if (flags & MSG_DONTWAIT)
		return true;
	if (!proc_seccomp_filtered(false) && (fl = usmc_sys.fcntl(s->fd, F_GETFL)) >= 0)
		usmc_sock_note_nonblock(s, fl & O_NONBLOCK);
	return atomic_load_explicit(&s->nonblock, memory_order_relaxed);
}

void usmc_sock_note_nonblock(struct usmc_sock *s, bool on)
{
	atomic_store_explicit(&s->nonblock, on, memory_order_relaxed);
}
