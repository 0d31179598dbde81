// SPDX-License-Identifier: MIT
/*
 * cdc_cursor_advance at each of its limits: what a peer may publish moves
 * a position forward by at most one ring and never past its limit, and
 * every other cursor is refused, including the ones that would land inside
 * the limit when read another way (a count equal to the ring size, a wrap
 * count two ahead).  Positions cross the 16-bit wrap count's roll-over.
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

static bool advance(uint64_t seen, uint64_t cursor, uint64_t limit, uint64_t *pos)
{
	*pos = ~0ull;
	return cdc_cursor_advance(RING, seen, cursor, limit, pos) == 0;
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
		CHECK(cdc_cursor_from_pos(RING, seen) == wire(w, c));
		/* Standing still, one byte on, a full ring on (at the limit): taken. */
		CHECK(advance(seen, cdc_cursor_from_pos(RING, seen), full, &pos) && pos == seen);
		CHECK(advance(seen, cdc_cursor_from_pos(RING, seen + 1), full, &pos) &&
		      pos == seen + 1);
		CHECK(advance(seen, cdc_cursor_from_pos(RING, full), full, &pos) && pos == full);
		/* One byte past the limit, wherever the limit is. */
		CHECK(!advance(seen, cdc_cursor_from_pos(RING, seen + 1), seen, &pos));
		CHECK(!advance(seen, cdc_cursor_from_pos(RING, full), full - 1, &pos));
		/* A count that is no offset in the ring, even if its position would fit. */
		CHECK(!advance(seen, wire(w, RING), full, &pos));
		CHECK(!advance(seen, wire(w, RING + c), full + RING, &pos));
		CHECK(!advance(seen, wire(w, ~0u), ~0ull, &pos));
		/* More than a ring ahead, or a wrap count two or more ahead. */
		CHECK(!advance(seen, wire((uint16_t)(w + 1), c + 1), ~0ull, &pos) || c + 1 >= RING);
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
	printf("cdc_cursor: ok\n");
	return 0;
}
