// SPDX-License-Identifier: MIT
/*
 * The usmc socket's state, as the program and usmc-stat see it, and why a
 * socket is plain TCP (the socket and its table: usmc_sock.h).
 */
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "usmc_diag.h"
#include "usmc_log.h"
#include "usmc_sock.h"
#include "usmc_stats.h"

static enum usmc_diag_state diag_state(const struct usmc_sock *s, enum sock_state state)
{
	switch (state) {
	case SOCK_LISTEN:
		return DIAG_LISTEN;
	case SOCK_PROPOSED:
		return DIAG_HANDSHAKE;
	case SOCK_SMC:
		return DIAG_SMCD;
	case SOCK_PLAIN:
		return s->reason ? DIAG_FALLBACK : DIAG_OPEN;
	default:
		return DIAG_OPEN;
	}
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
	atomic_store_explicit(&d->state, diag_state(s, state), memory_order_release);
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
