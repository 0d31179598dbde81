/* SPDX-License-Identifier: MIT */
/*
 * For the loader's own files: the reason lines usmc_kernel_check.c writes
 * and libbpf's messages.  The checks themselves are in usmc_kernel.h.
 */
#ifndef USMC_KERNEL_CHECK_H
#define USMC_KERNEL_CHECK_H

#include <stddef.h>

#define ENOTSUPP_KERNEL 524	/* the kernel's internal ENOTSUPP, seen by user space */

/* One line into why (nothing when why is NULL or len 0). */
void say(char *why, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* strerror of err or -err, with a name for ENOTSUPP_KERNEL. */
const char *err_str(int err);
/* libbpf prints to stderr by itself unless told otherwise. */
void quiet_libbpf(void);

#endif
