// SPDX-License-Identifier: MIT
/*
 * The cursor checks at each of their limits.  What a peer may publish
 * moves a position forward by at most one ring and never past its limit,
 * and every other cursor is refused, including the ones that would land
 * inside the limit when read another way (a count equal to the lap's size,
 * a wrap count two ahead).  Positions cross the 16-bit wrap count's
 * roll-over.  Then laps of different sizes: a lap lengthened at its end,
 * seen or unseen before the next begins; the shifts the peer publishes
 * taken only for laps the ring can hold, never shorter than the lap they
 * follow; positions in the lap before keeping its size.  Last, laps that
 * end early where their reader caught up, each cursor named the one way
 * both sides can agree on.
 */
#include "harness.h"
#include "usmc_cdc.h"

#define RING 16384u
#define SHIFT 14 /* RING's */
#define MAX_SHIFT 20

static struct cdc_area peer; /* the peer's CDC area: the shifts it publishes */

/* The wire cursor of wrap and count, as a peer may write anything. */
static uint64_t wire(uint16_t wrap, uint32_t count)
{
	union cdc_cursor c = { .wrap = wrap, .count = count };

	return c.acurs;
}

/* Laps of RING bytes each, the current one holding pos. */
static struct cdc_laps laps_at(uint64_t pos)
{
	struct cdc_laps l = { .base = pos - pos % RING, .wrap = (uint16_t)(pos / RING),
			      .shift = SHIFT, .prev_shift = pos >= RING ? SHIFT : 0,
			      .prev_len = pos >= RING ? RING : 0 };

	return l;
}

static uint64_t from_pos(uint64_t pos)
{
	struct cdc_laps l = laps_at(pos);

	return cdc_cursor_from_pos(&l, pos);
}

/* A producer's cursor seen from seen, our consumer at cons, every lap RING bytes. */
static bool prod(uint64_t seen, uint64_t cons, uint64_t cursor, uint64_t *pos)
{
	struct cdc_laps l = laps_at(seen);

	*pos = ~0ull;
	return cdc_prod_advance(&l, seen, cons, cursor, &peer, MAX_SHIFT, pos) == 0;
}

/* A consumer's cursor of our ring seen from seen, our producer at limit. */
static bool cons_at(uint64_t seen, uint64_t limit, uint64_t cursor, uint64_t *pos)
{
	struct cdc_laps l = laps_at(limit);

	*pos = ~0ull;
	return cdc_cons_advance(&l, seen, cursor, limit, pos) == 0;
}

static void fixed_laps(void)
{
	/* Around 0, around one wrap, and around the roll-over of the wrap count. */
	const uint64_t bases[] = { 0, RING - 1, RING, 65535ull * RING, 65535ull * RING + 100,
				   65536ull * RING - 1, 65536ull * RING, 3 * 65536ull * RING + 7 };
	uint64_t pos;

	peer.lap_shift[0] = peer.lap_shift[1] = SHIFT;
	peer.lap_len[0] = peer.lap_len[1] = RING;
	for (size_t i = 0; i < sizeof(bases) / sizeof(bases[0]); i++) {
		uint64_t seen = bases[i], full = seen + RING;
		uint16_t w = (uint16_t)(seen / RING);
		uint32_t c = (uint32_t)(seen % RING);

		/* The encoding round-trips. */
		CHECK(from_pos(seen) == wire(w, c));
		/* Standing still, one byte on, a full ring on (at the limit): taken. */
		CHECK(prod(seen, seen, from_pos(seen), &pos) && pos == seen);
		CHECK(prod(seen, seen, from_pos(seen + 1), &pos) && pos == seen + 1);
		CHECK(prod(seen, seen, from_pos(full), &pos) && pos == full);
		/* One byte past the limit. */
		CHECK(!prod(seen, seen, from_pos(full + 1), &pos));
		CHECK(!prod(seen, seen, wire((uint16_t)(w + 1), c + 1), &pos));
		/* A count that is no offset in the lap, even if its position would fit. */
		CHECK(!prod(seen, seen, wire(w, RING), &pos));
		CHECK(!prod(seen, seen, wire(w, RING + c), &pos));
		CHECK(!prod(seen, seen, wire(w, ~0u), &pos));
		/* A wrap count two or more ahead. */
		CHECK(!prod(seen, seen, wire((uint16_t)(w + 2), 0), &pos));
		CHECK(!prod(seen, seen, wire((uint16_t)(w + 2), c), &pos));
		CHECK(!prod(seen, seen, wire((uint16_t)(w + 0x8000), c), &pos));
		/* Backwards, in the same wrap or by a whole wrap; also while bytes are unread. */
		if (c)
			CHECK(!prod(seen, seen, wire(w, c - 1), &pos));
		if (c >= 2)
			CHECK(!prod(seen, seen - 2, wire(w, c - 1), &pos));
		CHECK(!prod(seen, seen, wire((uint16_t)(w - 1), c), &pos));
		/* The consumer: in this lap or the one before, up to our producer, not past it. */
		CHECK(cons_at(seen, full, from_pos(full), &pos) && pos == full);
		CHECK(cons_at(seen, full, from_pos(seen), &pos) && pos == seen);
		CHECK(!cons_at(seen, full - 1, from_pos(full), &pos));
		if (c)
			CHECK(!cons_at(seen, full, wire(w, c - 1), &pos));
		CHECK(!cons_at(seen, full, wire((uint16_t)(w + 2), c), &pos));
	}
	/* From the last wrap before the roll-over to the first after it. */
	CHECK(prod(65535ull * RING + 5, 65535ull * RING + 5, wire(0, 3), &pos) &&
	      pos == 65536ull * RING + 3);
}

/* A lap lengthened at its end, and the laps after it. */
static void growing_laps(void)
{
	struct cdc_laps l, copy;
	uint64_t pos;
	uint32_t room;

	cdc_laps_init(&l, SHIFT);
	peer.lap_shift[0] = peer.lap_shift[1] = SHIFT;
	/* Past the lap's end, in its wrap, before the peer published a longer lap: refused. */
	CHECK(cdc_prod_advance(&l, 0, 0, wire(0, RING + 5), &peer, MAX_SHIFT, &pos) < 0);
	/* Lengthened beyond the ring mapped, or shorter: refused. */
	peer.lap_shift[0] = MAX_SHIFT + 1;
	CHECK(cdc_prod_advance(&l, 0, 0, wire(0, RING + 5), &peer, MAX_SHIFT, &pos) < 0);
	peer.lap_shift[0] = SHIFT - 1;
	CHECK(cdc_prod_advance(&l, 0, 0, wire(0, RING), &peer, MAX_SHIFT, &pos) < 0);
	CHECK(l.shift == SHIFT);
	/* Lengthened to four times: the reader that had read nothing has room at once. */
	peer.lap_shift[0] = SHIFT + 2;
	CHECK(cdc_prod_advance(&l, 0, 0, wire(0, 4 * RING - 1), &peer, MAX_SHIFT, &pos) == 0 &&
	      pos == 4 * RING - 1 && l.wrap == 0 && l.shift == SHIFT + 2 && l.base == 0);
	CHECK(cdc_lap_off(&l, RING + 5, &room) == RING + 5 && room == 3 * RING - 5);
	/* But no more than that. */
	copy = l;
	CHECK(cdc_prod_advance(&copy, 0, 0, wire(0, 4 * RING), &peer, MAX_SHIFT, &pos) < 0);

	/* The next lap, as long: a position in the lap before keeps that lap's size. */
	peer.lap_shift[1] = SHIFT + 2;
	peer.lap_len[0] = 4 * RING;
	CHECK(cdc_prod_advance(&l, 4 * RING - 1, 2 * RING, wire(1, 7), &peer, MAX_SHIFT, &pos) == 0 &&
	      pos == 4 * RING + 7 && l.wrap == 1 && l.base == 4 * RING && l.prev_shift == SHIFT + 2);
	CHECK(cdc_lap_off(&l, 4 * RING - 4, &room) == 4 * RING - 4 && room == 4);
	CHECK(cdc_lap_capacity(&l, 4 * RING - 4) == 4 * RING);
	CHECK(cdc_cursor_from_pos(&l, 4 * RING - 4) == wire(0, 4 * RING - 4));
	CHECK(cdc_cursor_from_pos(&l, 4 * RING + 5) == wire(1, 5));
	CHECK(cdc_cursor_from_pos(&l, 8 * RING) == wire(2, 0));
	/* A consumer in the lap before, in this one; not past its lap. */
	CHECK(cdc_cons_advance(&l, 0, wire(0, 4 * RING - 1), 5 * RING, &pos) == 0 &&
	      pos == 4 * RING - 1);
	CHECK(cdc_cons_advance(&l, 0, wire(1, 3), 5 * RING, &pos) == 0 && pos == 4 * RING + 3);
	CHECK(cdc_cons_advance(&l, 0, wire(0, 4 * RING), ~0ull, &pos) < 0);
	/* No next lap for a consumer's cursor. */
	CHECK(cdc_cons_advance(&l, 0, wire(2, 0), ~0ull, &pos) < 0);
	/* Our consumer position more than a lap behind: refused. */
	copy = l;
	CHECK(cdc_prod_advance(&copy, 4 * RING + 7, 0, wire(1, 9), &peer, MAX_SHIFT, &pos) < 0);
	copy = l;
	CHECK(cdc_prod_advance(&copy, 4 * RING + 7, 4 * RING + 7, wire(1, 9), &peer, MAX_SHIFT,
			       &pos) == 0 && pos == 4 * RING + 9);

	/* A lap lengthened that the reader never saw lengthened still ends where the writer ended it. */
	cdc_laps_init(&l, SHIFT);
	peer.lap_shift[0] = peer.lap_shift[1] = SHIFT + 2;
	CHECK(cdc_prod_advance(&l, RING - 1, RING - 1, wire(1, 0), &peer, MAX_SHIFT, &pos) == 0 &&
	      pos == 4 * RING && l.wrap == 1 && l.base == 4 * RING && l.prev_shift == SHIFT + 2);
	/* Seen lengthened in its own wrap. */
	cdc_laps_init(&l, SHIFT);
	CHECK(cdc_prod_advance(&l, RING / 2, RING / 2, wire(0, 3 * RING), &peer, MAX_SHIFT, &pos) ==
		      0 &&
	      pos == 3 * RING && l.shift == SHIFT + 2 && l.wrap == 0);
	/* The next lap shorter than the one it follows: refused. */
	cdc_laps_init(&l, SHIFT + 2);
	peer.lap_shift[0] = SHIFT + 2;
	peer.lap_shift[1] = SHIFT;
	CHECK(cdc_prod_advance(&l, 4 * RING - 1, 4 * RING - 1, wire(1, 0), &peer, MAX_SHIFT, &pos) <
	      0);
	/* A lap before of another size than the current one keeps its own. */
	l = (struct cdc_laps){
		.base = RING, .wrap = 1, .shift = SHIFT + 2, .prev_shift = SHIFT, .prev_len = RING
	};
	CHECK(cdc_lap_off(&l, RING - 4, &room) == RING - 4 && room == 4);
	CHECK(cdc_lap_capacity(&l, RING - 4) == RING && cdc_lap_capacity(&l, RING) == 4 * RING);
	CHECK(cdc_cursor_from_pos(&l, RING - 4) == wire(0, RING - 4));
	CHECK(cdc_cons_advance(&l, 0, wire(0, RING - 1), ~0ull, &pos) == 0 && pos == RING - 1);
	CHECK(cdc_cons_advance(&l, 0, wire(0, RING), ~0ull, &pos) < 0);
	/* The first lap has none before it. */
	cdc_laps_init(&l, SHIFT);
	CHECK(cdc_cons_advance(&l, 0, wire(0xffff, 0), ~0ull, &pos) < 0);
	/* The first lap as the peer publishes it: one the ring mapped can hold, no smaller than CLC's. */
	peer.lap_shift[0] = MAX_SHIFT + 1;
	CHECK(cdc_laps_first(&l, &peer, MAX_SHIFT) < 0);
	peer.lap_shift[0] = CDC_LAP_SHIFT_MIN - 1;
	CHECK(cdc_laps_first(&l, &peer, MAX_SHIFT) < 0);
	peer.lap_shift[0] = MAX_SHIFT;
	CHECK(cdc_laps_first(&l, &peer, MAX_SHIFT) == 0 && l.shift == MAX_SHIFT && l.base == 0);
}

/* Laps that end early, where their reader caught up (usmc_tx.c's rewind). */
static void cut_laps(void)
{
	struct cdc_laps l, copy;
	uint64_t pos;
	uint32_t room;

	peer.lap_shift[0] = peer.lap_shift[1] = SHIFT;
	peer.lap_len[0] = 100;
	peer.lap_len[1] = RING;
	/* Read up to 100, where lap 0 ended: lap 1 begins there, at the ring's start. */
	cdc_laps_init(&l, SHIFT);
	CHECK(cdc_prod_advance(&l, 100, 100, wire(1, 5), &peer, MAX_SHIFT, &pos) == 0 && pos == 105 &&
	      l.wrap == 1 && l.base == 100 && l.prev_len == 100 && l.prev_shift == SHIFT);
	CHECK(cdc_lap_off(&l, 101, &room) == 1 && room == RING - 1);
	CHECK(cdc_lap_off(&l, 99, &room) == 99 && room == 1);
	CHECK(cdc_cursor_from_pos(&l, 100) == wire(1, 0));
	/* Ended before what it gave us, at 0, or past its size: refused. */
	for (uint32_t bad = 0; bad < 3; bad++) {
		peer.lap_len[0] = bad == 0 ? 99 : bad == 1 ? 0 : RING + 1;
		cdc_laps_init(&l, SHIFT);
		CHECK(cdc_prod_advance(&l, 100, 100, wire(1, 5), &peer, MAX_SHIFT, &pos) < 0);
	}
	/* Ended past what we read: its rest is read first, and the writer may not pass it. */
	peer.lap_len[0] = 200;
	cdc_laps_init(&l, SHIFT);
	CHECK(cdc_prod_advance(&l, 100, 100, wire(1, 100), &peer, MAX_SHIFT, &pos) == 0 &&
	      pos == 300 && l.base == 200);
	cdc_laps_init(&l, SHIFT);
	CHECK(cdc_prod_advance(&l, 100, 100, wire(1, 101), &peer, MAX_SHIFT, &pos) < 0);

	/* Lap 0 ended at 100 where we caught up, lap 1 filled before we looked: (2, 0). */
	peer.lap_len[0] = 100;
	cdc_laps_init(&l, SHIFT);
	CHECK(cdc_prod_advance(&l, 100, 100, wire(2, 0), &peer, MAX_SHIFT, &pos) == 0 &&
	      pos == 100 + RING && l.wrap == 2 && l.base == 100 + RING && l.prev_len == RING);
	/* Only from where lap 0 ended, only at lap 2's start. */
	cdc_laps_init(&l, SHIFT);
	CHECK(cdc_prod_advance(&l, 100, 99, wire(2, 0), &peer, MAX_SHIFT, &pos) < 0);
	cdc_laps_init(&l, SHIFT);
	CHECK(cdc_prod_advance(&l, 99, 99, wire(2, 0), &peer, MAX_SHIFT, &pos) < 0);
	cdc_laps_init(&l, SHIFT);
	CHECK(cdc_prod_advance(&l, 100, 100, wire(2, 1), &peer, MAX_SHIFT, &pos) < 0);

	/* The writer's side: lap 0 ended at 100, lap 1 full, lap 2 begun. */
	cdc_laps_init(&l, SHIFT);
	cdc_lap_next(&l, 100, SHIFT);
	/* A reader that caught up at 100 and has not seen lap 1 names it (0, 100). */
	CHECK(cdc_cons_advance(&l, 0, wire(0, 100), 100, &pos) == 0 && pos == 100);
	CHECK(cdc_cons_advance(&l, 0, wire(0, 101), ~0ull, &pos) < 0);
	CHECK(cdc_cons_advance(&l, 0, wire(0, 99), ~0ull, &pos) == 0 && pos == 99);
	cdc_lap_next(&l, RING, SHIFT);
	CHECK(l.cut_len == 100 && l.base == 100 + RING);
	CHECK(cdc_cons_advance(&l, 0, wire(0, 100), 100 + RING, &pos) == 0 && pos == 100);
	CHECK(cdc_cons_advance(&l, 0, wire(0, 99), ~0ull, &pos) < 0);
	CHECK(cdc_cons_advance(&l, 0, wire(1, 7), ~0ull, &pos) == 0 && pos == 107);
	/* A full lap has no second name for its end. */
	copy = l;
	cdc_lap_next(&copy, RING, SHIFT);
	CHECK(copy.cut_len == 0);
	CHECK(cdc_cons_advance(&copy, 0, wire(1, RING), ~0ull, &pos) < 0);
	CHECK(cdc_cons_advance(&copy, 0, wire(0, 100), ~0ull, &pos) < 0);
}

int main(void)
{
	fixed_laps();
	growing_laps();
	cut_laps();
	printf("cdc_cursor: ok\n");
	return 0;
}
