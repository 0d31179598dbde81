/* SPDX-License-Identifier: MIT */
/*
 * What the BPF program and its loader agree on: map sizes and value
 * layouts.  Included by both sides, so only fixed-size kernel types.
 */
#ifndef USMC_KERNEL_MAPS_H
#define USMC_KERNEL_MAPS_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

#define USMC_KMAP_ENTRIES	1024	/* per scope map */
#define USMC_KCOMM_LEN		16	/* TASK_COMM_LEN */
#define USMC_KMAX_DEPTH		32	/* ancestors looked at, cgroups and processes */

/* Value of usmc_pids: the process's start, as field 22 of /proc/PID/stat. */
struct usmc_kpid {
	__u64 start_ticks;	/* 0: any process with this pid */
};

/*
 * Per-connection policy (usmc_policy.bpf.c): rule i of the table, first
 * match wins.  The same meaning as a rule of the userspace policy.
 */
#define USMC_KPOLICY_RULES	256
#define USMC_KPOLICY_NAME	"usmc"	/* the smc_hs_ctrl name net.smc.hs_ctrl selects */

struct usmc_kprule {
	__u8 family;		/* 0: any address; AF_INET (2) or AF_INET6 (10) */
	__u8 prefix;		/* bits of addr that must match, for people */
	__u8 smc;		/* 1: the SYN may carry the SMC option; 0: plain TCP */
	__u8 pad;
	__u16 port_lo;		/* peer port range, host order, inclusive */
	__u16 port_hi;
	__u32 addr[4];		/* network order; IPv4 in addr[0] */
	/*
	 * The prefix as a mask, made by the loader: the program then compares
	 * without branching on the prefix length, which keeps the verifier's
	 * walk through 256 rules short.
	 */
	__u32 mask[4];
};

/* Indexes of the policy's counter map. */
enum { USMC_KPOLICY_SMC, USMC_KPOLICY_TCP, USMC_KPOLICY_COUNTERS };

#endif
