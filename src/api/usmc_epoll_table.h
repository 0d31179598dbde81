/* SPDX-License-Identifier: MIT */
/*
 * The entries usmc's epoll keeps beside the kernel's sets (usmc_epoll.c):
 * which usmc descriptors, and which sets inside a set, were added to which
 * set with which events.  Everything here is called with LOCK_EPOLL held.
 */
#ifndef USMC_EPOLL_TABLE_H
#define USMC_EPOLL_TABLE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/epoll.h>

#include "usmc_sock.h"
#include "usmc_wait.h"

/*
 * An edge-triggered entry reports when the connection's state moved since
 * its last report: the doorbell that made the kernel's edge may have been
 * drained already.
 */
struct ep_entry {
	int epfd;
	int fd;
	struct epoll_event ev;
	bool nested;           /* fd is an epoll set itself */
	uint32_t kernel;       /* the events the kernel's entry asks for (ep_kernel_events) */
	bool fresh;            /* added or modified: what is ready now is an edge */
	bool disarmed;         /* EPOLLONESHOT fired: silent until modified */
	struct conn_view last; /* edge-triggered: the state last reported */
	struct ep_entry *next; /* the next of its set, in turn (ep_rotate_after) */
	struct ep_entry *hnext; /* the next in its bucket by set and data */
	struct ep_entry *fnext; /* the next in its bucket by descriptor */
};

/* Follows an epoll_ctl the kernel accepted: the entry is added, changed or dropped. */
void ep_track_locked(int epfd, int op, int fd, const struct epoll_event *ev, bool nested,
		     uint32_t kernel);
/* The first entry of a set, in turn order (then ->next), or NULL. */
struct ep_entry *ep_first(int epfd);
/* The entry of a set the kernel reports with ev's data, or NULL. */
struct ep_entry *ep_find_by_data(int epfd, const struct epoll_event *ev);
/* The set's entries up to last go behind the others: the next look begins after it. */
void ep_rotate_after(int epfd, struct ep_entry *last);
/* Whether any entry exists: a load without the lock, for the hot paths. */
bool ep_any(void);

#endif
