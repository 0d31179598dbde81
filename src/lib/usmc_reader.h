/* SPDX-License-Identifier: MIT */
/*
 * Bounds-checked reader and writer for peer messages.
 *
 * Every byte a peer sends is read through struct usmc_reader: a read past
 * the end yields zeros and latches the error flag, so a parser checks once
 * at the end instead of after every field, and can never touch memory
 * outside the buffer it was given.
 */
#ifndef USMC_READER_H
#define USMC_READER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct usmc_reader {
	const uint8_t *buf;
	size_t len;
	size_t off;
	bool err;
};

static inline void usmc_reader_init(struct usmc_reader *r, const void *buf, size_t len)
{
	r->buf = buf;
	r->len = len;
	r->off = 0;
	r->err = false;
}

static inline size_t usmc_reader_left(const struct usmc_reader *r)
{
	return r->err ? 0 : r->len - r->off;
}

/* Copies n bytes out, or zeros and latches the error if fewer remain. */
static inline void usmc_read_bytes(struct usmc_reader *r, void *out, size_t n)
{
	if (r->err || n > r->len - r->off) {
		r->err = true;
		memset(out, 0, n);
		return;
	}
	memcpy(out, r->buf + r->off, n);
	r->off += n;
}

static inline uint8_t usmc_read_u8(struct usmc_reader *r)
{
	uint8_t v;

	usmc_read_bytes(r, &v, 1);
	return v;
}

/* Multi-byte fields are big-endian on the wire, as in SMC's CLC. */
static inline uint16_t usmc_read_be16(struct usmc_reader *r)
{
	uint8_t b[2];

	usmc_read_bytes(r, b, sizeof(b));
	return (uint16_t)(b[0] << 8 | b[1]);
}

static inline uint32_t usmc_read_be32(struct usmc_reader *r)
{
	uint8_t b[4];

	usmc_read_bytes(r, b, sizeof(b));
	return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

static inline uint64_t usmc_read_be64(struct usmc_reader *r)
{
	uint64_t hi = usmc_read_be32(r);

	return hi << 32 | usmc_read_be32(r);
}

struct usmc_writer {
	uint8_t *buf;
	size_t cap;
	size_t off;
	bool err;
};

static inline void usmc_writer_init(struct usmc_writer *w, void *buf, size_t cap)
{
	w->buf = buf;
	w->cap = cap;
	w->off = 0;
	w->err = false;
}

static inline void usmc_write_bytes(struct usmc_writer *w, const void *in, size_t n)
{
	if (w->err || n > w->cap - w->off) {
		w->err = true;
		return;
	}
	memcpy(w->buf + w->off, in, n);
	w->off += n;
}

static inline void usmc_write_u8(struct usmc_writer *w, uint8_t v)
{
	usmc_write_bytes(w, &v, 1);
}

static inline void usmc_write_be16(struct usmc_writer *w, uint16_t v)
{
	uint8_t b[2] = { (uint8_t)(v >> 8), (uint8_t)v };

	usmc_write_bytes(w, b, sizeof(b));
}

static inline void usmc_write_be32(struct usmc_writer *w, uint32_t v)
{
	uint8_t b[4] = { (uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v };

	usmc_write_bytes(w, b, sizeof(b));
}

static inline void usmc_write_be64(struct usmc_writer *w, uint64_t v)
{
	usmc_write_be32(w, (uint32_t)(v >> 32));
	usmc_write_be32(w, (uint32_t)v);
}

#endif /* USMC_READER_H */
