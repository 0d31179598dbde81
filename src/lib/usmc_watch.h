/* SPDX-License-Identifier: MIT */
/*
 * A file an operator may change while programs run (the policy file, the
 * rendezvous directory's NAT map): looked at again at most once a second,
 * and read again only when it is another file or was written since.  A
 * look is a stat(); the hot paths that consult the file pay nothing else.
 */
#ifndef USMC_WATCH_H
#define USMC_WATCH_H

#include <stdatomic.h>
#include <stdbool.h>
#include <sys/stat.h>

struct usmc_watch {
	struct stat seen;       /* the file as last read (st_ino 0: none) */
	_Atomic long next_look; /* CLOCK_MONOTONIC_COARSE second of the next look */
};

/* Whether a second has passed since the last look: true for one caller in each. */
bool usmc_watch_due(struct usmc_watch *w);
/*
 * With the caller's lock: whether st, a stat of the file (NULL: there is
 * none), is not the file last seen; it becomes the file seen.
 */
bool usmc_watch_changed(struct usmc_watch *w, const struct stat *st);

#endif /* USMC_WATCH_H */
