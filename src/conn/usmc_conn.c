// SPDX-License-Identifier: MIT
/*
 * The connection: its reset, by either side, and our abort of it (a
 * close with unread data, SO_LINGER {1, 0}, a peer that broke the
 * protocol); and the connections this process accepted in shared memory,
 * by token: a late Confirm or Decline of their client finds its
 * connection here until the connection closes (under usmc_lock()).
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "usmc_conn.h"
#include "usmc_proc.h"
#include "usmc_sock.h"
#include "usmc_stats.h"
#include "usmc_sys.h"
#include "usmc_wake.h"

static struct usmc_conn *srv_conns; /* accepted in shared memory, by token */

void af_srv_conn_add(struct usmc_conn *conn)
{
	conn->hs_next = srv_conns;
	if (srv_conns)
		srv_conns->hs_pprev = &conn->hs_next;
	srv_conns = conn;
	conn->hs_pprev = &srv_conns;
}

struct usmc_conn *af_srv_conn_find(struct usmc_lgr *lgr, uint64_t token)
{
	for (struct usmc_conn *c = srv_conns; c; c = c->hs_next)
		if (c->lgr == lgr && c->token == token)
			return c;
	return NULL;
}

/* At every close of a connection accepted here: no walk of the thousands kept open. */
void af_srv_conn_del(struct usmc_conn *conn)
{
	if (!conn->hs_pprev)
		return;
	*conn->hs_pprev = conn->hs_next;
	if (conn->hs_next)
		conn->hs_next->hs_pprev = conn->hs_pprev;
	conn->hs_pprev = NULL;
}

void usmc_conn_abort(struct usmc_sock *s)
{
	struct usmc_conn *conn = s->conn;
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };

	if (conn->sh->aborted)
		return;
	conn->sh->aborted = true;
	usmc_conn_set_reset(conn, ECONNRESET);
	conn_publish_flags(conn, CDC_PEER_CONN_ABORT);
	/*
	 * The peer learns it from the flag, and from a reset at close; only
	 * from the flag under a seccomp filter, which may kill for setsockopt
	 * (OpenSSH's pre-auth sandbox).
	 */
	if (!proc_seccomp_filtered(false))
		usmc_sys.setsockopt(s->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	usmc_conn_ring(s);
	usmc_stats_add(USMC_STAT_ABORTS, 1);
}

void usmc_conn_set_reset(struct usmc_conn *conn, int err)
{
	bool was = atomic_exchange(&conn->sh->reset, true);

	if (!was)
		atomic_store(&conn->sh->err, err);
}
