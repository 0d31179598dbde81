// SPDX-License-Identifier: MIT
/*
 * CLC message encoding and the parser of peer-sent messages.
 */
#include "usmc_clc.h"

#include <sys/socket.h>

#include "usmc.h"
#include "usmc_cdc.h"
#include "usmc_reader.h"

/* "USMC" in EBCDIC, as SMC's eyecatchers are. */
static const uint8_t clc_eyecatcher[4] = { 0xe4, 0xe2, 0xd4, 0xc3 };

static void write_addr(struct usmc_writer *w, const struct clc_addr *a)
{
	usmc_write_be16(w, a->family);
	usmc_write_be16(w, a->port);
	usmc_write_bytes(w, a->addr, sizeof(a->addr));
}

static void read_addr(struct usmc_reader *r, struct clc_addr *a)
{
	a->family = usmc_read_be16(r);
	a->port = usmc_read_be16(r);
	usmc_read_bytes(r, a->addr, sizeof(a->addr));
}

static void write_rmb(struct usmc_writer *w, const struct clc_rmb_desc *d)
{
	usmc_write_be32(w, d->seg_id);
	usmc_write_be32(w, d->seg_len);
	usmc_write_be32(w, d->slot_off);
	usmc_write_be32(w, d->rmb_size);
	usmc_write_u8(w, d->new_seg);
}

static void read_rmb(struct usmc_reader *r, struct clc_rmb_desc *d)
{
	d->seg_id = usmc_read_be32(r);
	d->seg_len = usmc_read_be32(r);
	d->slot_off = usmc_read_be32(r);
	d->rmb_size = usmc_read_be32(r);
	d->new_seg = usmc_read_u8(r);
}

static void write_body(struct usmc_writer *w, const struct clc_msg *m)
{
	usmc_write_be64(w, m->token);
	switch (m->type) {
	case CLC_PROPOSAL:
		write_addr(w, &m->proposal.dst);
		usmc_write_be64(w, m->proposal.cookie);
		usmc_write_be32(w, m->proposal.rcvbuf);
		write_rmb(w, &m->proposal.rmb);
		break;
	case CLC_ACCEPT:
		write_rmb(w, &m->accept.rmb);
		break;
	case CLC_CONFIRM:
		break;
	case CLC_DECLINE:
		usmc_write_be32(w, m->decline.reason);
		usmc_write_u8(w, m->decline.flags);
		break;
	default:
		w->err = true;
	}
}

int clc_msg_encode(const struct clc_msg *msg, void *buf, size_t cap)
{
	struct usmc_writer w;
	uint8_t *len_field;

	usmc_writer_init(&w, buf, cap);
	usmc_write_bytes(&w, clc_eyecatcher, sizeof(clc_eyecatcher));
	usmc_write_u8(&w, msg->type);
	usmc_write_be16(&w, 0); /* length, filled in below */
	usmc_write_u8(&w, msg->version);
	write_body(&w, msg);
	usmc_write_bytes(&w, clc_eyecatcher, sizeof(clc_eyecatcher));
	if (w.err)
		return -1;
	len_field = w.buf + 5;
	len_field[0] = (uint8_t)(w.off >> 8);
	len_field[1] = (uint8_t)w.off;
	return (int)w.off;
}

static int addr_valid(const struct clc_addr *a)
{
	return a->family == AF_INET || a->family == AF_INET6;
}

int clc_rmb_desc_valid(const struct clc_rmb_desc *d)
{
	uint64_t end = (uint64_t)d->slot_off + CDC_SLOT_HDR + d->rmb_size;

	if (d->rmb_size < CLC_RMB_MIN || d->rmb_size > CLC_RMB_MAX)
		return 0;
	if (d->rmb_size & (d->rmb_size - 1))
		return 0;
	/* The CDC area holds atomics: it must be aligned. */
	if (d->slot_off % CDC_SLOT_HDR)
		return 0;
	return d->seg_len <= CLC_SEG_MAX && end <= d->seg_len && d->new_seg <= 1;
}

static int body_valid(const struct clc_msg *m)
{
	switch (m->type) {
	case CLC_PROPOSAL:
		return addr_valid(&m->proposal.dst) && clc_rmb_desc_valid(&m->proposal.rmb);
	case CLC_ACCEPT:
		return clc_rmb_desc_valid(&m->accept.rmb);
	case CLC_CONFIRM:
		return 1;
	case CLC_DECLINE:
		return m->decline.reason != 0 && (m->decline.flags & ~(CLC_DECL_MARKER | CLC_DECL_WITHDRAW)) == 0;
	}
	return 0;
}

static void read_body(struct usmc_reader *r, struct clc_msg *m)
{
	m->token = usmc_read_be64(r);
	switch (m->type) {
	case CLC_PROPOSAL:
		read_addr(r, &m->proposal.dst);
		m->proposal.cookie = usmc_read_be64(r);
		m->proposal.rcvbuf = usmc_read_be32(r);
		read_rmb(r, &m->proposal.rmb);
		break;
	case CLC_ACCEPT:
		read_rmb(r, &m->accept.rmb);
		break;
	case CLC_CONFIRM:
		break;
	case CLC_DECLINE:
		m->decline.reason = usmc_read_be32(r);
		m->decline.flags = usmc_read_u8(r);
		break;
	default:
		r->err = true;
	}
}

uint32_t clc_msg_parse(const void *buf, size_t len, struct clc_msg *msg)
{
	struct usmc_reader r;
	uint8_t eye[4], trl[4];
	uint16_t length;

	memset(msg, 0, sizeof(*msg));
	usmc_reader_init(&r, buf, len);
	usmc_read_bytes(&r, eye, sizeof(eye));
	msg->type = usmc_read_u8(&r);
	length = usmc_read_be16(&r);
	msg->version = usmc_read_u8(&r);
	if (r.err || memcmp(eye, clc_eyecatcher, sizeof(eye)) || length != len)
		return USMC_DECL_SYNCERR;
	if (msg->version != CLC_VERSION)
		return USMC_DECL_VERSMISMAT;
	read_body(&r, msg);
	usmc_read_bytes(&r, trl, sizeof(trl));
	if (r.err || usmc_reader_left(&r) || memcmp(trl, clc_eyecatcher, sizeof(trl)))
		return USMC_DECL_SYNCERR;
	return body_valid(msg) ? 0 : USMC_DECL_SYNCERR;
}
