// SPDX-License-Identifier: MIT
/*
 * The CDC area as a hostile peer could write it: a sequence of producer
 * and consumer cursors.  Whatever the peer publishes, the positions we
 * accept never run backwards, never pass their limits, and so never let
 * a read or write leave the ring.
 */
#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "usmc_cdc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint32_t ring = 16384u << (size ? data[0] % 10 : 0);
	uint64_t prod_seen = 0, cons = 0; /* we read the peer's ring */
	uint64_t tx_prod = 0, tx_cons_seen = 0; /* the peer reads ours */

	for (size_t off = 1; off + 9 <= size; off += 9) {
		uint64_t wire, pos;
		uint8_t op = data[off];

		memcpy(&wire, data + off + 1, sizeof(wire));
		switch (op % 4) {
		case 0: /* the peer publishes its producer cursor */
			if (cdc_cursor_advance(ring, prod_seen, wire, cons + ring, &pos) == 0) {
				assert(pos >= prod_seen && pos - cons <= ring);
				prod_seen = pos;
			}
			break;
		case 1: /* we consume some of it */
			cons += (prod_seen - cons) * (wire & 0xff) / 255;
			break;
		case 2: /* the peer publishes its consumer cursor of our ring */
			if (cdc_cursor_advance(ring, tx_cons_seen, wire, tx_prod, &pos) == 0) {
				assert(pos >= tx_cons_seen && pos <= tx_prod);
				tx_cons_seen = pos;
			}
			break;
		case 3: /* we produce into the space there is */
			tx_prod += (ring - (tx_prod - tx_cons_seen)) * (wire & 0xff) / 255;
			break;
		}
		/* What we would copy stays inside the ring. */
		assert(prod_seen - cons <= ring);
		assert(tx_prod - tx_cons_seen <= ring);
		/* Our own cursors survive the round trip through the wire format. */
		wire = cdc_cursor_from_pos(ring, prod_seen);
		assert(cdc_cursor_advance(ring, prod_seen, wire, prod_seen, &pos) == 0 &&
		       pos == prod_seen);
	}
	return 0;
}
