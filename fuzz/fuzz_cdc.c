// SPDX-License-Identifier: MIT
/*
 * The CDC area as a hostile peer could write it: a sequence of producer
 * and consumer cursors, the shifts of the laps to come, and urgent marks.
 * Whatever the peer publishes, the positions we accept never run
 * backwards, never pass their limits, and every byte between them lies
 * inside the ring, in a lap we know the size of; a live urgent mark lies
 * in what we have not read, and a read stops at it as TCP's does.
 */
#include <assert.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "usmc_cdc.h"

/* Every position from lo to hi lies in a known lap, inside a ring of 1 << max bytes. */
static void check_inside(const struct cdc_laps *l, uint64_t lo, uint64_t hi, uint8_t max)
{
	while (lo < hi) {
		uint32_t room, off = cdc_lap_off(l, lo, &room);

		assert(room > 0 && (uint64_t)off + room <= 1ull << max);
		lo += room < hi - lo ? room : hi - lo;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t max = (uint8_t)(CDC_LAP_SHIFT_MIN + (size ? data[0] % 10 : 0));
	struct cdc_area peer = { 0 };
	struct cdc_laps rx, tx;
	uint64_t prod_seen = 0, cons = 0; /* we read the peer's ring */
	uint64_t tx_prod = 0, tx_cons_seen = 0; /* the peer reads ours */
	struct cdc_urg urg = { 0 };

	cdc_laps_init(&rx, CDC_LAP_SHIFT_MIN);
	cdc_laps_init(&tx, CDC_LAP_SHIFT_MIN);
	for (size_t off = 1; off + 10 <= size; off += 10) {
		uint64_t wire, pos;
		uint8_t op = data[off], shift = data[off + 9];

		memcpy(&wire, data + off + 1, sizeof(wire));
		switch (op % 6) {
		case 0: /* the peer publishes its producer cursor, and maybe its laps' shifts and lengths */
			atomic_store(&peer.lap_shift[shift & 1], shift >> 1);
			if (shift & 0x80)
				atomic_store(&peer.lap_len[shift & 1], (uint32_t)(wire >> 40));
			if (cdc_prod_advance(&rx, prod_seen, cons, wire, &peer, max, &pos) == 0) {
				assert(pos >= prod_seen && pos - cons <= 1ull << max);
				prod_seen = pos;
			}
			break;
		case 1: { /* we read some of it, as far as the urgent mark lets us */
			uint64_t from = cons, may;
			bool at_mark = false, pass = false, copied = shift & 1;

			urg.inline_ = shift & 2;
			may = cdc_urg_limit(&urg, &from, prod_seen - cons, copied, &at_mark, &pass);
			assert(from >= cons && from - cons <= 1 && from + may <= prod_seen);
			assert(!at_mark || (copied && !may));
			if (urg.state != CDC_URG_NONE) {
				/* Stops at the mark once it took anything; passes it only from it. */
				assert(!copied || urg.mark != cons || at_mark);
				assert(urg.mark < from || from + may <= urg.mark ||
				       (urg.inline_ && urg.mark == from && !copied));
				assert(!pass || (urg.mark == cons && !urg.inline_));
			}
			cons = from + may * (wire & 0xff) / 255;
			if (urg.state != CDC_URG_NONE && cons > urg.mark)
				urg.state = CDC_URG_NONE;
			break;
		}
		case 2: /* the peer publishes its consumer cursor of our ring */
			if (cdc_cons_advance(&tx, tx_cons_seen, wire, tx_prod, &pos) == 0) {
				assert(pos >= tx_cons_seen && pos <= tx_prod);
				tx_cons_seen = pos;
			}
			break;
		case 3: /* we produce into the space there is, lap by lap, lengthening as we may */
			/* A lap our reader read all of may end early (usmc_tx.c). */
			if (tx_cons_seen == tx_prod && tx_prod > tx.base && (shift & 4))
				cdc_lap_next(&tx, (uint32_t)(tx_prod - tx.base), tx.shift);
			for (uint64_t n = (cdc_lap_capacity(&tx, tx_cons_seen) - (tx_prod - tx_cons_seen)) *
					  (wire & 0xff) / 255;
			     n;) {
				uint32_t room;

				cdc_lap_off(&tx, tx_prod, &room);
				room = room < n ? room : (uint32_t)n;
				tx_prod += room;
				n -= room;
				if (tx_prod != tx.base + cdc_lap_size(&tx))
					continue;
				if (shift % 2 && tx.shift < max)
					cdc_lap_lengthen(&tx, max);
				else
					cdc_lap_next(&tx, cdc_lap_size(&tx), tx.shift);
			}
			break;
		case 4: /* the peer marks an urgent byte near what it produced */
			wire = cons + wire % ((2ull << max) + 1);
			/* fall through */
		case 5: /* or anywhere */
			if (cdc_urg_update(&urg, wire, cons, prod_seen)) {
				assert(urg.state == CDC_URG_VALID);
				check_inside(&rx, urg.mark, urg.mark + 1, max);
			}
			break;
		}
		/* A live mark lies in what we have not read; a byte there, only once produced. */
		assert(urg.state == CDC_URG_NONE || urg.mark >= cons);
		assert(urg.state != CDC_URG_VALID || urg.mark < prod_seen);
		/* What we would copy stays inside the ring, in laps we know. */
		assert(prod_seen - cons <= cdc_lap_capacity(&rx, cons));
		check_inside(&rx, cons, prod_seen, max);
		assert(tx_prod - tx_cons_seen <= cdc_lap_capacity(&tx, tx_cons_seen));
		check_inside(&tx, tx_cons_seen, tx_prod, max);
		/* Our own cursors survive the round trip through the wire format. */
		{
			struct cdc_laps copy = rx;

			wire = cdc_cursor_from_pos(&rx, cons);
			assert(cdc_cons_advance(&copy, cons, wire, cons, &pos) == 0 && pos == cons);
		}
	}
	return 0;
}
