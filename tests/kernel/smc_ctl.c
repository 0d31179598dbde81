// SPDX-License-Identifier: MIT
/*
 * smc_ctl: the kernel SMC settings the kernel tests need, through the same
 * generic netlink code as usmc-stat --kernel.
 *
 *   smc_ctl ueid-add EID   add a user EID (upper case, digits, '.', '-');
 *                          without one the kernel never proposes SMC-Rv2,
 *                          the only SMC-R that soft-RoCE (RoCEv2) can do
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "stat_kernel_genl.h"

int main(int argc, char **argv)
{
	int rc;

	if (argc != 3 || strcmp(argv[1], "ueid-add")) {
		fprintf(stderr, "usage: smc_ctl ueid-add EID\n");
		return 2;
	}
	rc = kernel_ueid_add(argv[2]);
	if (rc) {
		fprintf(stderr, "smc_ctl: ueid-add %s: %s\n", argv[2],
			rc == -ENOENT ? "the kernel has no SMC (no SMC_GEN_NETLINK family)" : strerror(-rc));
		return 1;
	}
	return 0;
}
