// SPDX-License-Identifier: MIT
/*
 * CLC messages as a hostile peer could send them: the parser must never
 * read outside the buffer, and whatever it accepts must be consistent
 * (valid ring descriptions) and encode back to the same bytes.
 */
#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "usmc_cdc.h"
#include "usmc_clc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t out[CLC_MAX_MSG_SIZE];
	struct clc_msg msg;
	int len;

	if (clc_msg_parse(data, size, &msg))
		return 0;
	if (msg.type == CLC_PROPOSAL)
		assert(clc_rmb_desc_valid(&msg.proposal.rmb));
	if (msg.type == CLC_ACCEPT) {
		const struct clc_rmb_desc *d = &msg.accept.rmb;

		assert(clc_rmb_desc_valid(d));
		assert((uint64_t)d->slot_off + CDC_SLOT_HDR + d->rmb_size <= d->seg_len);
	}
	len = clc_msg_encode(&msg, out, sizeof(out));
	assert(len == (int)size);
	assert(memcmp(out, data, size) == 0);
	return 0;
}
