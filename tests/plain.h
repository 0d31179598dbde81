/* SPDX-License-Identifier: MIT */
/*
 * For the test programs that know nothing of usmc (usmc-run takes them
 * over): a check that names the failing line, and the checksum the other
 * tests use.
 */
#ifndef USMC_TEST_PLAIN_H
#define USMC_TEST_PLAIN_H

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define CHECK(cond)                                                                     \
	do {                                                                            \
		if (!(cond)) {                                                          \
			fprintf(stderr, "%s:%d: [%d] check failed: %s (errno %d: %m)\n", \
				__FILE__, __LINE__, (int)getpid(), #cond, errno);       \
			exit(1);                                                        \
		}                                                                       \
	} while (0)

#define FNV_INIT 0xcbf29ce484222325ull

/* Incremental FNV-1a 64. */
static inline uint64_t fnv(uint64_t h, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len--)
		h = (h ^ *p++) * 0x100000001b3ull;
	return h;
}

#endif
