/* SPDX-License-Identifier: MIT */
/*
 * Shared by the files of the preload library.
 */
#ifndef USMC_PRELOAD_H
#define USMC_PRELOAD_H

/* The interposed names: the only ones the library exports. */
#define EXPORT __attribute__((visibility("default")))

/* Another name for the function f, with f's attributes (libc declares some nothrow). */
#ifdef __clang__
#define ALIAS_OF(f) __attribute__((alias(#f)))
#else
#define ALIAS_OF(f) __attribute__((alias(#f), copy(f)))
#endif

/* Points usmc's system calls past this library; every wrapper calls it first. */
void preload_bound(void);

/*
 * What a wrapper passes on when the descriptor is not usmc's goes to the
 * same table as usmc's own calls: usmc_sys (usmc_sys.h), which lists every
 * socket call exported here.
 */

#endif
