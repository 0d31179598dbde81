// SPDX-License-Identifier: MIT
/*
 * cdc_cursor_advance at each of its limits: what a peer may publish moves
 * a position forward by at most one ring and never past its limit, and
 * every other cursor is refused, including the ones that would land inside
 * the limit when read another way (a count equal to the ring size, a wrap
 * count two ahead).  Positions cross the 16-bit wrap count's roll-over.
 * Then laps of different sizes: a producer's cursor in the next lap is
 * taken only with a next shift that is a lap the ring can hold, and no
 * smaller than the current one; positions in the lap before keep its size.
 */
#include "harness.h"
#include "usmc_cdc.h"

#define RING 16384u

/* The wire cursor of wrap and count, as a peer may write anything. */
static uint64_t wire(uint16_t wrap, uint32_t count)
{
	union cdc_cursor c = { .wrap = wrap, .count = count };

	return c.acurs;
}

#define SHIFT 14 /* RING's */
#define MAX_SHIFT 20

/* Laps of RING bytes each, the current one holding seen. */
static struct cdc_laps laps_at(uint64_t seen)
{
	struct cdc_laps l = { .base = seen - seen % RING, .wrap = (uint16_t)(seen / RING),
			      .shift = SHIFT, .prev_shift = seen >= RING ? SHIFT : 0 };

	return l;
}

static uint64_t from_pos(uint64_t pos)
{
	struct cdc_laps l = laps_at(pos);

	return cdc_cursor_from_pos(&l, pos);
}

/* A producer's cursor, whose next lap (if the peer published it) is RING bytes too. */
static bool advance(uint64_t seen, uint64_t cursor, uint64_t limit, uint64_t *pos)
{
	struct cdc_laps l = laps_at(seen);

	*pos = ~0ull;
	return cdc_cursor_advance(&l, seen, cursor, limit, SHIFT, MAX_SHIFT, pos) == 0;
}

/* Laps that grow: 16 KiB, then 64 KiB from position RING on, then next_shift. */
static void growing_laps(void)
{
	struct cdc_laps l;
	uint64_t pos;
	uint32_t room;

	cdc_laps_init(&l, SHIFT);
	CHECK(cdc_lap_capacity(&l, 0) == RING);
	/* The producer ends the first lap: the next, four times as large, is taken. */
	CHECK(cdc_cursor_advance(&l, RING - 10, wire(1, 0), RING, SHIFT + 2, MAX_SHIFT, &pos) == 0 &&
	      pos == RING && l.wrap == 1 && l.base == RING && l.shift == SHIFT + 2 &&
	      l.prev_shift == SHIFT);
	/* The lap before keeps its size: offsets, room, capacity and the wire. */
	CHECK(cdc_lap_off(&l, RING - 4, &room) == RING - 4 && room == 4);
	CHECK(cdc_lap_capacity(&l, RING - 4) == RING);
	CHECK(cdc_cursor_from_pos(&l, RING - 4) == wire(0, RING - 4));
	CHECK(cdc_lap_off(&l, RING + 5, &room) == 5 && room == 4 * RING - 5);
	CHECK(cdc_lap_capacity(&l, RING + 5) == 4 * RING);
	CHECK(cdc_cursor_from_pos(&l, RING + 5) == wire(1, 5));
	CHECK(cdc_cursor_from_pos(&l, 5 * RING) == wire(2, 0));
	/* A consumer's cursor in the lap before, in this one; not past its lap. */
	CHECK(cdc_cursor_advance(&l, 0, wire(0, RING - 1), 2 * RING, 0, 0, &pos) == 0 &&
	      pos == RING - 1);
	CHECK(cdc_cursor_advance(&l, 0, wire(1, 4 * RING - 1), 6 * RING, 0, 0, &pos) == 0 &&
	      pos == 5 * RING - 1);
	CHECK(cdc_cursor_advance(&l, 0, wire(0, RING), ~0ull, 0, 0, &pos) < 0);
	CHECK(cdc_cursor_advance(&l, 0, wire(1, 4 * RING), ~0ull, 0, 0, &pos) < 0);
	/* No next lap for a consumer's cursor, nor one of a shift not published. */
	CHECK(cdc_cursor_advance(&l, RING, wire(2, 0), ~0ull, 0, MAX_SHIFT, &pos) < 0);
	/* A next shift too small, smaller than this lap's, or larger than the ring. */
	CHECK(cdc_cursor_advance(&l, RING, wire(2, 0), ~0ull, SHIFT - 1, MAX_SHIFT, &pos) < 0);
	CHECK(cdc_cursor_advance(&l, RING, wire(2, 0), ~0ull, SHIFT, MAX_SHIFT, &pos) < 0);
	CHECK(cdc_cursor_advance(&l, RING, wire(2, 0), ~0ull, MAX_SHIFT + 1, MAX_SHIFT, &pos) < 0);
	CHECK(l.wrap == 1 && l.shift == SHIFT + 2);
	/* A count past the next lap's size, or past the limit, with a good shift. */
	CHECK(cdc_cursor_advance(&l, RING, wire(2, 1u << MAX_SHIFT), ~0ull, MAX_SHIFT, MAX_SHIFT,
				 &pos) < 0);
	CHECK(cdc_cursor_advance(&l, RING, wire(2, 0), 5 * RING - 1, MAX_SHIFT, MAX_SHIFT, &pos) < 0);
	CHECK(l.wrap == 1 && l.base == RING);
	/* Into the largest lap. */
	CHECK(cdc_cursor_advance(&l, 2 * RING, wire(2, 7), 6 * RING, MAX_SHIFT, MAX_SHIFT, &pos) ==
		      0 &&
	      pos == 5 * RING + 7 && l.wrap == 2 && l.shift == MAX_SHIFT && l.prev_shift == SHIFT + 2);
	/* The first lap has none before it. */
	cdc_laps_init(&l, SHIFT);
	CHECK(cdc_cursor_advance(&l, 0, wire(0xffff, 0), ~0ull, 0, MAX_SHIFT, &pos) < 0);
}

int main(void)
{
	/* Around 0, around one wrap, and around the roll-over of the wrap count. */
	const uint64_t bases[] = { 0, RING - 1, RING, 65535ull * RING, 65535ull * RING + 100,
				   65536ull * RING - 1, 65536ull * RING, 3 * 65536ull * RING + 7 };
	uint64_t pos;

	for (size_t i = 0; i < sizeof(bases) / sizeof(bases[0]); i++) {
		uint64_t seen = bases[i], full = seen + RING;
		uint16_t w = (uint16_t)(seen / RING);
		uint32_t c = (uint32_t)(seen % RING);

		/* The encoding round-trips. */
		CHECK(from_pos(seen) == wire(w, c));
		/* Standing still, one byte on, a full ring on (at the limit): taken. */
		CHECK(advance(seen, from_pos(seen), full, &pos) && pos == seen);
		CHECK(advance(seen, from_pos(seen + 1), full, &pos) &&
		      pos == seen + 1);
		CHECK(advance(seen, from_pos(full), full, &pos) && pos == full);
		/* One byte past the limit, wherever the limit is. */
		CHECK(!advance(seen, from_pos(seen + 1), seen, &pos));
		CHECK(!advance(seen, from_pos(full), full - 1, &pos));
		/* A count that is no offset in the ring, even if its position would fit. */
		CHECK(!advance(seen, wire(w, RING), full, &pos));
		CHECK(!advance(seen, wire(w, RING + c), full + RING, &pos));
		CHECK(!advance(seen, wire(w, ~0u), ~0ull, &pos));
		/* More than a ring ahead, or a wrap count two or more ahead. */
		CHECK(!advance(seen, wire((uint16_t)(w + 1), c + 1), full, &pos));
		CHECK(!advance(seen, wire((uint16_t)(w + 2), 0), ~0ull, &pos));
		CHECK(!advance(seen, wire((uint16_t)(w + 2), c), ~0ull, &pos));
		CHECK(!advance(seen, wire((uint16_t)(w + 0x8000), c), ~0ull, &pos));
		/* Backwards, in the same wrap or by a whole wrap. */
		if (c)
			CHECK(!advance(seen, wire(w, c - 1), ~0ull, &pos));
		CHECK(!advance(seen, wire((uint16_t)(w - 1), c), ~0ull, &pos));
	}
	/* From the last wrap before the roll-over to the first after it. */
	CHECK(advance(65535ull * RING + 5, wire(0, 3), 65536ull * RING + RING, &pos) &&
	      pos == 65536ull * RING + 3);
	growing_laps();
	printf("cdc_cursor: ok\n");
	return 0;
}
