// SPDX-License-Identifier: MIT
/*
 * The state an exec hands to the new image, as the environment could name
 * any descriptor: whatever the bytes, parsing either refuses them or
 * yields counts, ranges and references that hold (every slot inside its
 * segment, every connection's rings inside theirs), and writing the
 * result again gives the same bytes.
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "usmc_exec_state.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct exec_state st;
	uint8_t *again;
	size_t n;

	if (exec_state_parse(data, size, &st))
		return 0;
	for (uint32_t i = 0; i < st.nsock; i++) {
		const struct exec_lgr *l = &st.lgr[st.sock[i].lgr];

		assert(st.sock[i].lgr < st.nlgr);
		assert(st.sock[i].tx_seg < l->nlseg);
		assert(st.sock[i].tx_slot < l->lseg[st.sock[i].tx_seg].nslots);
	}
	n = exec_state_size(&st);
	assert(n == size);
	again = malloc(n);
	assert(again && exec_state_encode(&st, again, n) == n);
	assert(memcmp(again, data, n) == 0);
	free(again);
	exec_state_free(&st);
	return 0;
}
