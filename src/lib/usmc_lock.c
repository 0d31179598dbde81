// SPDX-License-Identifier: MIT
/*
 * The debug build's check of the lock order (usmc_lock.h): which ranks
 * this thread holds, and the abort that names the two ranks out of order.
 */
#include "usmc_lock.h"

#include <stdio.h>
#include <stdlib.h>

#include "usmc_sys.h"

#ifdef USMC_LOCK_ORDER
__thread uint32_t usmc_locks_held;

void usmc_lock_order_broken(enum usmc_lock_rank taking)
{
	char msg[96];
	int held = 31 - __builtin_clz(usmc_locks_held);
	int n = snprintf(msg, sizeof(msg), "usmc: lock order broken: rank %d taken holding rank %d\n",
			 (int)taking, held);

	usmc_sys.write(2, msg, (size_t)n);
	abort();
}
#endif
