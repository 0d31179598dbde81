// SPDX-License-Identifier: MIT
/*
 * The state handed over across exec, as bytes (see usmc_exec.h).
 *
 * Layout, big-endian: "usmcexe3", the writer's pid, the holders' bell
 * (-1: none), the link group and connection counts; each link group with
 * its peer's segments, then its own with their slots; then the
 * connections; then the listeners, counted.  Everything is read through
 * usmc_reader, and checked before anything is mapped from it.
 */
#include <stdlib.h>
#include <string.h>

#include "usmc_cdc.h"
#include "usmc_clc.h"
#include "usmc_exec_state.h"
#include "usmc_reader.h"

static const char exec_magic[8] = "usmcexe3";

static void write_lgr(struct usmc_writer *w, const struct exec_lgr *l)
{
	usmc_write_be32(w, (uint32_t)l->chan);
	usmc_write_be32(w, l->role);
	usmc_write_be32(w, (uint32_t)l->peer_pid);
	usmc_write_be32(w, (uint32_t)l->peer_uid);
	usmc_write_be32(w, (uint32_t)l->owner_pid);
	usmc_write_be16(w, l->port);
	usmc_write_be32(w, l->nrseg);
	for (uint32_t i = 0; i < l->nrseg; i++) {
		usmc_write_be32(w, l->rseg[i].id);
		usmc_write_be32(w, (uint32_t)l->rseg[i].fd);
		usmc_write_be32(w, l->rseg[i].len);
	}
	usmc_write_be32(w, l->nlseg);
	for (uint32_t i = 0; i < l->nlseg; i++) {
		const struct exec_lseg *s = &l->lseg[i];

		usmc_write_be32(w, (uint32_t)s->fd);
		usmc_write_be32(w, (uint32_t)s->own_fd);
		usmc_write_be32(w, s->rmb_size);
		usmc_write_be32(w, s->nslots);
		usmc_write_u8(w, s->sent);
		for (uint32_t j = 0; j < s->nslots && j < SEG_MAX_SLOTS; j++) {
			usmc_write_u8(w, s->slot[j].state);
			usmc_write_be32(w, s->slot[j].peer_seg);
			usmc_write_be32(w, s->slot[j].peer_off);
			usmc_write_be32(w, s->slot[j].peer_gen);
		}
	}
}

static void write_sock(struct usmc_writer *w, const struct exec_sock *s)
{
	const int opts[] = { s->domain,      s->sndbuf,      s->rcvbuf,     s->nodelay,
			     s->busy_poll_us, s->rcvtimeo_ms, s->sndtimeo_ms, s->rcvlowat };

	usmc_write_be64(w, s->inode);
	usmc_write_be32(w, s->lgr);
	for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++)
		usmc_write_be32(w, (uint32_t)opts[i]);
	usmc_write_be32(w, s->flags);
	usmc_write_be32(w, s->tx_seg);
	usmc_write_be32(w, s->tx_slot);
	usmc_write_be32(w, s->rx_seg);
	usmc_write_be32(w, s->rx_off);
	usmc_write_be32(w, s->rx_size);
	usmc_write_be32(w, s->peer_gen);
	usmc_write_be64(w, s->token);
}

static void write_listen(struct usmc_writer *w, const struct exec_listen *l)
{
	usmc_write_be64(w, l->inode);
	usmc_write_be32(w, (uint32_t)l->ufd);
	for (int i = 0; i < SIDE_QUEUES; i++)
		usmc_write_be32(w, (uint32_t)l->side[i]);
	usmc_write_be16(w, l->port);
	usmc_write_be32(w, (uint32_t)l->owner);
	usmc_write_be32(w, (uint32_t)l->uid);
	usmc_write_u8(w, l->member);
}

/* Bytes of each record, as written above. */
#define HDR_BYTES 24
#define LGR_BYTES 30
#define RSEG_BYTES 12
#define LSEG_BYTES 17
#define SLOT_BYTES 13
#define SOCK_BYTES 80
#define LISTEN_BYTES (23 + 4 * SIDE_QUEUES)

size_t exec_state_size(const struct exec_state *st)
{
	size_t n = HDR_BYTES + 4 + (size_t)st->nsock * SOCK_BYTES + (size_t)st->nlisten * LISTEN_BYTES;

	for (uint32_t i = 0; i < st->nlgr; i++) {
		const struct exec_lgr *l = &st->lgr[i];

		n += LGR_BYTES + (size_t)l->nrseg * RSEG_BYTES;
		for (uint32_t j = 0; j < l->nlseg; j++)
			n += LSEG_BYTES + (size_t)l->lseg[j].nslots * SLOT_BYTES;
	}
	return n;
}

size_t exec_state_encode(const struct exec_state *st, void *buf, size_t cap)
{
	struct usmc_writer w;

	usmc_writer_init(&w, buf, cap);
	usmc_write_bytes(&w, exec_magic, sizeof(exec_magic));
	usmc_write_be32(&w, (uint32_t)st->writer);
	usmc_write_be32(&w, (uint32_t)st->bell);
	usmc_write_be32(&w, st->nlgr);
	usmc_write_be32(&w, st->nsock);
	for (uint32_t i = 0; i < st->nlgr; i++)
		write_lgr(&w, &st->lgr[i]);
	for (uint32_t i = 0; i < st->nsock; i++)
		write_sock(&w, &st->sock[i]);
	usmc_write_be32(&w, st->nlisten);
	for (uint32_t i = 0; i < st->nlisten; i++)
		write_listen(&w, &st->listen[i]);
	return w.err ? 0 : w.off;
}

/* ---- parsing ---- */

static const struct exec_rseg *rseg_by_id(const struct exec_lgr *l, uint32_t id)
{
	for (uint32_t i = 0; i < l->nrseg; i++)
		if (l->rseg[i].id == id)
			return &l->rseg[i];
	return NULL;
}

/* Whether a ring of size bytes whose CDC area is at off fits in the peer's segment. */
static bool rring_fits(const struct exec_lgr *l, uint32_t seg, uint32_t off, uint32_t size)
{
	const struct exec_rseg *r = rseg_by_id(l, seg);

	return r && (uint64_t)off + CDC_SLOT_HDR + size <= r->len;
}

static bool read_rsegs(struct usmc_reader *r, struct exec_lgr *l)
{
	l->nrseg = usmc_read_be32(r);
	if (r->err || l->nrseg > LGR_MAX_SEGS || usmc_reader_left(r) < (size_t)l->nrseg * RSEG_BYTES)
		return false;
	l->rseg = calloc(l->nrseg ? l->nrseg : 1, sizeof(*l->rseg));
	if (!l->rseg)
		return false;
	for (uint32_t i = 0; i < l->nrseg; i++) {
		struct exec_rseg *s = &l->rseg[i];

		s->id = usmc_read_be32(r);
		s->fd = (int)usmc_read_be32(r);
		s->len = usmc_read_be32(r);
		if (s->id >= LGR_MAX_SEGS || s->len < CDC_SLOT_HDR || rseg_by_id(l, s->id) != s)
			return false;
	}
	return !r->err;
}

static bool read_slots(struct usmc_reader *r, const struct exec_lgr *l, struct exec_lseg *s)
{
	for (uint32_t j = 0; j < s->nslots; j++) {
		struct exec_slot *t = &s->slot[j];

		t->state = usmc_read_u8(r);
		t->peer_seg = usmc_read_be32(r);
		t->peer_off = usmc_read_be32(r);
		t->peer_gen = usmc_read_be32(r);
		if (t->state > SLOT_GIVEN)
			return false;
		if (t->peer_seg != EXEC_NO_SEG && !rring_fits(l, t->peer_seg, t->peer_off, 0))
			return false;
	}
	return !r->err;
}

static bool read_lsegs(struct usmc_reader *r, struct exec_lgr *l)
{
	l->nlseg = usmc_read_be32(r);
	if (r->err || l->nlseg > LGR_MAX_SEGS || usmc_reader_left(r) < (size_t)l->nlseg * LSEG_BYTES)
		return false;
	l->lseg = calloc(l->nlseg ? l->nlseg : 1, sizeof(*l->lseg));
	if (!l->lseg)
		return false;
	for (uint32_t i = 0; i < l->nlseg; i++) {
		struct exec_lseg *s = &l->lseg[i];
		uint64_t len;
		uint8_t sent;

		s->fd = (int)usmc_read_be32(r);
		s->own_fd = (int)usmc_read_be32(r);
		s->rmb_size = usmc_read_be32(r);
		s->nslots = usmc_read_be32(r);
		sent = usmc_read_u8(r);
		s->sent = sent;
		len = (uint64_t)(CDC_SLOT_HDR + (uint64_t)s->rmb_size) * s->nslots;
		if (sent > 1 || s->rmb_size == 0 || s->rmb_size > CLC_RMB_MAX || s->nslots == 0 ||
		    s->nslots > SEG_MAX_SLOTS || len > UINT32_MAX)
			return false;
		s->len = (uint32_t)len;
		if (!read_slots(r, l, s))
			return false;
	}
	return true;
}

static bool read_lgr(struct usmc_reader *r, struct exec_lgr *l)
{
	l->chan = (int)usmc_read_be32(r);
	l->role = usmc_read_be32(r);
	l->peer_pid = (pid_t)usmc_read_be32(r);
	l->peer_uid = (uid_t)usmc_read_be32(r);
	l->owner_pid = (pid_t)usmc_read_be32(r);
	l->port = usmc_read_be16(r);
	if (r->err || (l->role != LGR_CLIENT && l->role != LGR_SERVER))
		return false;
	return read_rsegs(r, l) && read_lsegs(r, l);
}

static bool read_sock(struct usmc_reader *r, const struct exec_state *st, struct exec_sock *s)
{
	int *opts[] = { &s->domain,      &s->sndbuf,      &s->rcvbuf,      &s->nodelay,
			&s->busy_poll_us, &s->rcvtimeo_ms, &s->sndtimeo_ms, &s->rcvlowat };
	const struct exec_lgr *l;

	s->inode = usmc_read_be64(r);
	s->lgr = usmc_read_be32(r);
	for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++)
		*opts[i] = (int)usmc_read_be32(r);
	s->flags = usmc_read_be32(r);
	s->tx_seg = usmc_read_be32(r);
	s->tx_slot = usmc_read_be32(r);
	s->rx_seg = usmc_read_be32(r);
	s->rx_off = usmc_read_be32(r);
	s->rx_size = usmc_read_be32(r);
	s->peer_gen = usmc_read_be32(r);
	s->token = usmc_read_be64(r);
	if (r->err || s->lgr >= st->nlgr)
		return false;
	l = &st->lgr[s->lgr];
	return s->tx_seg < l->nlseg && s->tx_slot < l->lseg[s->tx_seg].nslots &&
	       l->lseg[s->tx_seg].slot[s->tx_slot].state == SLOT_USED && s->rx_size > 0 &&
	       s->rx_size <= CLC_RMB_MAX && rring_fits(l, s->rx_seg, s->rx_off, s->rx_size);
}

int exec_state_parse(const void *buf, size_t len, struct exec_state *st)
{
	struct usmc_reader r;
	char magic[sizeof(exec_magic)];

	memset(st, 0, sizeof(*st));
	usmc_reader_init(&r, buf, len);
	usmc_read_bytes(&r, magic, sizeof(magic));
	st->writer = (pid_t)usmc_read_be32(&r);
	st->bell = (int)usmc_read_be32(&r);
	st->nlgr = usmc_read_be32(&r);
	st->nsock = usmc_read_be32(&r);
	if (r.err || memcmp(magic, exec_magic, sizeof(magic)) || st->bell < -1 ||
	    st->nlgr > EXEC_MAX_LGRS ||
	    st->nsock > EXEC_MAX_SOCKS || usmc_reader_left(&r) < (size_t)st->nsock * SOCK_BYTES)
		goto bad;
	st->lgr = calloc(st->nlgr ? st->nlgr : 1, sizeof(*st->lgr));
	st->sock = calloc(st->nsock ? st->nsock : 1, sizeof(*st->sock));
	if (!st->lgr || !st->sock)
		goto bad;
	for (uint32_t i = 0; i < st->nlgr; i++)
		if (!read_lgr(&r, &st->lgr[i]))
			goto bad;
	for (uint32_t i = 0; i < st->nsock; i++)
		if (!read_sock(&r, st, &st->sock[i]))
			goto bad;
	st->nlisten = usmc_read_be32(&r);
	if (r.err || st->nlisten > EXEC_MAX_LISTENS ||
	    usmc_reader_left(&r) != (size_t)st->nlisten * LISTEN_BYTES)
		goto bad;
	st->listen = calloc(st->nlisten ? st->nlisten : 1, sizeof(*st->listen));
	if (!st->listen)
		goto bad;
	for (uint32_t i = 0; i < st->nlisten; i++) {
		struct exec_listen *l = &st->listen[i];
		uint8_t member;

		l->inode = usmc_read_be64(&r);
		l->ufd = (int)usmc_read_be32(&r);
		for (int k = 0; k < SIDE_QUEUES; k++) {
			l->side[k] = (int)usmc_read_be32(&r);
			/* All of them, or none. */
			if (l->side[k] < -1 || l->side[k] == l->ufd || (l->side[k] < 0) != (l->side[0] < 0))
				goto bad;
		}
		l->port = usmc_read_be16(&r);
		l->owner = (pid_t)usmc_read_be32(&r);
		l->uid = (uid_t)usmc_read_be32(&r);
		member = usmc_read_u8(&r);
		l->member = member == 1;
		if (r.err || l->ufd < 0 || !l->port || l->owner <= 0 || member > 1)
			goto bad;
	}
	return 0;
bad:
	exec_state_free(st);
	return -1;
}

void exec_state_free(struct exec_state *st)
{
	for (uint32_t i = 0; st->lgr && i < st->nlgr; i++) {
		free(st->lgr[i].lseg);
		free(st->lgr[i].rseg);
	}
	free(st->lgr);
	free(st->sock);
	free(st->listen);
	memset(st, 0, sizeof(*st));
}
