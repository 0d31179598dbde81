// SPDX-License-Identifier: MIT
/*
 * The connections this process accepted in shared memory, by token: a
 * late Confirm or Decline of their client finds its connection here until
 * the connection closes.  Under usmc_lock().
 */
#include <stddef.h>
#include <stdint.h>

#include "usmc_conn.h"

static struct usmc_conn *srv_conns; /* accepted in shared memory, by token */

void af_srv_conn_add(struct usmc_conn *conn)
{
	conn->hs_next = srv_conns;
	srv_conns = conn;
}

struct usmc_conn *af_srv_conn_find(struct usmc_lgr *lgr, uint64_t token)
{
	for (struct usmc_conn *c = srv_conns; c; c = c->hs_next)
		if (c->lgr == lgr && c->token == token)
			return c;
	return NULL;
}

void af_srv_conn_del(struct usmc_conn *conn)
{
	for (struct usmc_conn **pp = &srv_conns, *c; (c = *pp); pp = &c->hs_next) {
		if (c == conn) {
			*pp = c->hs_next;
			return;
		}
	}
}
