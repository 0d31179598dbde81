/* SPDX-License-Identifier: MIT */
/* Files of this user's that its processes map together: the registry, the counters. */
#ifndef USMC_SHARED_FILE_H
#define USMC_SHARED_FILE_H

#include <stddef.h>
#include <sys/types.h>

/*
 * A shared mapping of len bytes of a file of user owner's (the registry,
 * the counters), its pages allocated; NULL if that cannot be.
 */
void *usmc_shared_file_map(const char *path, size_t len, uid_t owner);

#endif
