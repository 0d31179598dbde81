// SPDX-License-Identifier: MIT
/*
 * Client connections waiting for their answer, by link group and token.
 *
 * Each answer the pump reads (af_usmc.c) finds its connection in one
 * bucket, where a list made every answer walk all of them (10,000 of
 * wrk's at once).  Chained by hs_next; the table doubles as it fills, and
 * never shrinks.  All under LOCK_CORE.
 */
#include <stdint.h>
#include <stdlib.h>

#include "usmc_cli_pending.h"
#include "usmc_conn.h"

#define CLI_BUCKETS_FIRST 64
static struct usmc_conn *cli_first[CLI_BUCKETS_FIRST];
static struct usmc_conn **cli_pending = cli_first;
static size_t cli_buckets = CLI_BUCKETS_FIRST, cli_count;

static struct usmc_conn **cli_bucket(const struct usmc_lgr *lgr, uint64_t token)
{
	uint64_t h = (token ^ (uint64_t)(uintptr_t)lgr) * 0x9e3779b97f4a7c15ull;

	return &cli_pending[(h >> 32) & (cli_buckets - 1)];
}

struct usmc_conn *af_cli_find(struct usmc_lgr *lgr, uint64_t token, bool unlink)
{
	if (!cli_count)
		return NULL;
	for (struct usmc_conn **pp = cli_bucket(lgr, token), *c; (c = *pp); pp = &c->hs_next) {
		if (c->lgr == lgr && c->token == token) {
			if (unlink) {
				*pp = c->hs_next;
				cli_count--;
			}
			return c;
		}
	}
	return NULL;
}

/* Twice the buckets, the connections hashed again; without the memory, the chains grow. */
static void cli_grow(void)
{
	size_t n = 2 * cli_buckets, old_n = cli_buckets;
	struct usmc_conn **old = cli_pending, **table = calloc(n, sizeof(*table));

	if (!table)
		return;
	cli_pending = table;
	cli_buckets = n;
	for (size_t b = 0; b < old_n; b++) {
		for (struct usmc_conn *c = old[b], *next; c; c = next) {
			struct usmc_conn **pp = cli_bucket(c->lgr, c->token);

			next = c->hs_next;
			c->hs_next = *pp;
			*pp = c;
		}
	}
	if (old != cli_first)
		free(old);
}

void af_cli_pending_add(struct usmc_conn *conn)
{
	struct usmc_conn **pp;

	if (cli_count >= cli_buckets)
		cli_grow();
	pp = cli_bucket(conn->lgr, conn->token);
	conn->hs_next = *pp;
	*pp = conn;
	cli_count++;
}

void af_cli_each(struct usmc_lgr *lgr, void (*fn)(struct usmc_conn *conn))
{
	for (size_t b = 0; b < cli_buckets; b++) {
		for (struct usmc_conn *c = cli_pending[b], *next; c; c = next) {
			next = c->hs_next;
			if (c->lgr == lgr)
				fn(c);
		}
	}
}
