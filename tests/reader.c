// SPDX-License-Identifier: MIT
/*
 * The bounded reader and writer of peer messages at their exact limits.
 * Every buffer is a heap block of exactly the size under test, so that a
 * one-byte over-read or over-write faults under AddressSanitizer; without
 * it, the error flag and the values read still tell.  Then every CLC
 * message type, encoded into a block of its exact length, parses, and
 * each of its prefixes is refused; each check of the parser and of an RMB
 * description is tried on its own, at its limit.
 */
#include <string.h>

#include "harness.h"
#include "usmc_cdc.h"
#include "usmc_clc.h"
#include "usmc_reader.h"

/* A heap copy of exactly n bytes of src, so that byte n is outside it. */
static uint8_t *exact_copy(const void *src, size_t n)
{
	uint8_t *p = malloc(n ? n : 1);

	CHECK(p);
	memcpy(p, src, n);
	return p;
}

static void check_reads(void)
{
	static const uint8_t src[15] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15 };
	struct usmc_reader r;
	uint8_t out[16];

	/* Exactly the whole buffer: u8, be16, be32, be64 is 15 bytes. */
	for (size_t len = 0; len <= sizeof(src); len++) {
		uint8_t *buf = exact_copy(src, len);

		usmc_reader_init(&r, buf, len);
		uint8_t a = usmc_read_u8(&r);
		uint16_t b = usmc_read_be16(&r);
		uint32_t c = usmc_read_be32(&r);
		uint64_t d = usmc_read_be64(&r);

		if (len == sizeof(src)) {
			CHECK(!r.err && usmc_reader_left(&r) == 0);
			CHECK(a == 1 && b == 0x0203 && c == 0x04050607 && d == 0x08090a0b0c0d0e0fULL);
			/* One byte more than there is: zeros and the error, nothing read. */
			CHECK(usmc_read_u8(&r) == 0 && r.err && usmc_reader_left(&r) == 0);
		} else {
			CHECK(r.err && usmc_reader_left(&r) == 0);
		}
		free(buf);
	}
	/* read_bytes of exactly the length, of one more, and after an exact read. */
	for (size_t len = 1; len <= sizeof(src); len++) {
		uint8_t *buf = exact_copy(src, len);

		usmc_reader_init(&r, buf, len);
		usmc_read_bytes(&r, out, len);
		CHECK(!r.err && !memcmp(out, src, len) && usmc_reader_left(&r) == 0);
		usmc_read_bytes(&r, out, 1);
		CHECK(r.err && out[0] == 0);
		usmc_reader_init(&r, buf, len);
		memset(out, 0xee, sizeof(out));
		usmc_read_bytes(&r, out, len + 1);
		CHECK(r.err);
		for (size_t i = 0; i <= len; i++)
			CHECK(out[i] == 0);
		/* The error latches: a read that would fit yields zeros too. */
		usmc_read_bytes(&r, out, 1);
		CHECK(r.err && out[0] == 0 && usmc_reader_left(&r) == 0);
		free(buf);
	}
}

static void check_writes(void)
{
	struct usmc_writer w;

	for (size_t cap = 0; cap <= 15; cap++) {
		uint8_t *buf = malloc(cap ? cap : 1);

		CHECK(buf);
		usmc_writer_init(&w, buf, cap);
		usmc_write_u8(&w, 1);
		usmc_write_be16(&w, 0x0203);
		usmc_write_be32(&w, 0x04050607);
		usmc_write_be64(&w, 0x08090a0b0c0d0e0fULL);
		CHECK(w.err == (cap < 15));
		if (cap == 15) {
			for (size_t i = 0; i < 15; i++)
				CHECK(buf[i] == i + 1);
			usmc_write_u8(&w, 16);
			CHECK(w.err && w.off == 15);
		}
		CHECK(w.off <= cap);
		free(buf);
	}
}

static void check_clc(void)
{
	struct clc_msg in[4] = {
		{ .type = CLC_PROPOSAL, .version = CLC_VERSION, .token = 7,
		  .proposal = { .dst = { .family = AF_INET, .port = 80 }, .cookie = 9,
				.rmb = { .seg_id = 1, .seg_len = 1 << 20, .slot_off = 0,
					 .rmb_size = 1 << 16, .new_seg = 1 } } },
		{ .type = CLC_ACCEPT, .version = CLC_VERSION, .token = 7,
		  .accept = { .rmb = { .seg_id = 2, .seg_len = 1 << 20, .slot_off = 256,
				       .rmb_size = 1 << 14 } } },
		{ .type = CLC_CONFIRM, .version = CLC_VERSION, .token = 7 },
		{ .type = CLC_DECLINE, .version = CLC_VERSION, .token = 7,
		  .decline = { .reason = USMC_DECL_PEERNOSMC, .flags = CLC_DECL_MARKER } },
	};

	for (int t = 0; t < 4; t++) {
		uint8_t enc[CLC_MAX_MSG_SIZE];
		struct clc_msg out;
		int len = clc_msg_encode(&in[t], enc, sizeof(enc));

		CHECK(len > CLC_HDR_LEN + CLC_TRL_LEN);
		/* Encoding into a block one byte short fails without writing past it. */
		uint8_t *small = malloc((size_t)len - 1);

		CHECK(small && clc_msg_encode(&in[t], small, (size_t)len - 1) == -1);
		free(small);
		uint8_t *buf = exact_copy(enc, (size_t)len);

		CHECK(clc_msg_parse(buf, (size_t)len, &out) == 0);
		CHECK(out.type == in[t].type && out.token == 7);
		if (t == 0)
			CHECK(out.proposal.cookie == 9 && out.proposal.rmb.rmb_size == 1 << 16 &&
			      out.proposal.dst.port == 80);
		if (t == 3)
			CHECK(out.decline.reason == USMC_DECL_PEERNOSMC &&
			      out.decline.flags == CLC_DECL_MARKER);
		free(buf);
		/* Every prefix, with the length field claiming what is there. */
		for (int cut = 0; cut < len; cut++) {
			buf = exact_copy(enc, (size_t)cut);
			if (cut >= 7) {
				buf[5] = (uint8_t)(cut >> 8);
				buf[6] = (uint8_t)cut;
			}
			CHECK(clc_msg_parse(buf, (size_t)cut, &out) == USMC_DECL_SYNCERR);
			free(buf);
		}
	}
}

/* Parses a copy of enc (len bytes) with byte at changed to val, length field kept. */
static uint32_t parse_changed(const uint8_t *enc, size_t len, size_t at, uint8_t val)
{
	uint8_t *buf = exact_copy(enc, len);
	struct clc_msg out;
	uint32_t rc;

	buf[at] = val;
	rc = clc_msg_parse(buf, len, &out);
	free(buf);
	return rc;
}

/* Each check of the parser on its own, on an otherwise good Decline. */
static void check_clc_fields(void)
{
	struct clc_msg m = { .type = CLC_DECLINE, .version = CLC_VERSION, .token = 1,
			     .decline = { .reason = USMC_DECL_CNFERR } };
	uint8_t enc[CLC_MAX_MSG_SIZE + 1];
	int len = clc_msg_encode(&m, enc, sizeof(enc) - 1);
	uint8_t *buf;
	struct clc_msg out;

	CHECK(len > 0 && parse_changed(enc, (size_t)len, 0, enc[0]) == 0);
	CHECK(parse_changed(enc, (size_t)len, 7, CLC_VERSION + 1) == USMC_DECL_VERSMISMAT);
	CHECK(parse_changed(enc, (size_t)len, 0, 0) == USMC_DECL_SYNCERR);           /* eyecatcher */
	CHECK(parse_changed(enc, (size_t)len, 6, (uint8_t)(len - 1)) == USMC_DECL_SYNCERR);
	CHECK(parse_changed(enc, (size_t)len, 6, (uint8_t)(len + 1)) == USMC_DECL_SYNCERR);
	CHECK(parse_changed(enc, (size_t)len, (size_t)len - 1, 0) == USMC_DECL_SYNCERR); /* trailer */
	CHECK(parse_changed(enc, (size_t)len, (size_t)len - 5, 4) == USMC_DECL_SYNCERR); /* flags */
	/* A reason of 0 is no Decline. */
	CHECK(parse_changed(enc, (size_t)len, (size_t)len - 9, 0) == USMC_DECL_SYNCERR);
	/* A byte after the trailer, counted by the length field: refused. */
	enc[len] = 0;
	enc[6] = (uint8_t)(len + 1);
	buf = exact_copy(enc, (size_t)len + 1);
	CHECK(clc_msg_parse(buf, (size_t)len + 1, &out) == USMC_DECL_SYNCERR);
	free(buf);
}

/* The RMB descriptions the handshake accepts, at each limit. */
static void check_rmb_desc(void)
{
	const struct clc_rmb_desc good = { .seg_len = 1 << 20, .slot_off = 1024,
					   .rmb_size = 1 << 14 };
	struct clc_rmb_desc d = good;

	CHECK(clc_rmb_desc_valid(&d));
	d.slot_off = (1 << 20) - CDC_SLOT_HDR - (1 << 14); /* ends exactly at the segment's end */
	CHECK(clc_rmb_desc_valid(&d));
	d.seg_len -= 1; /* one byte short of the ring's end */
	CHECK(!clc_rmb_desc_valid(&d));
	d.seg_len += 1, d.slot_off += CDC_SLOT_HDR;
	CHECK(!clc_rmb_desc_valid(&d));
	d = good, d.slot_off = 1024 + CDC_SLOT_HDR / 2; /* the CDC area unaligned */
	CHECK(!clc_rmb_desc_valid(&d));
	d = good, d.rmb_size = CLC_RMB_MIN / 2;
	CHECK(!clc_rmb_desc_valid(&d));
	d = good, d.rmb_size = CLC_RMB_MAX, d.seg_len = CLC_RMB_MAX + 4096, d.slot_off = 0;
	CHECK(clc_rmb_desc_valid(&d));
	d.rmb_size = CLC_RMB_MAX * 2, d.seg_len = CLC_RMB_MAX * 2 + 4096;
	CHECK(!clc_rmb_desc_valid(&d));
	d = good, d.rmb_size = (1 << 14) + (1 << 13); /* no power of two */
	CHECK(!clc_rmb_desc_valid(&d));
	d = good, d.seg_len = CLC_SEG_MAX;
	CHECK(clc_rmb_desc_valid(&d));
	d.seg_len = CLC_SEG_MAX + 4096;
	CHECK(!clc_rmb_desc_valid(&d));
	d = good, d.new_seg = 2;
	CHECK(!clc_rmb_desc_valid(&d));
}

int main(void)
{
	check_reads();
	check_writes();
	check_clc();
	check_clc_fields();
	check_rmb_desc();
	printf("reader: ok\n");
	return 0;
}
