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

#endif
