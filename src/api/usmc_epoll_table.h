/* SPDX-License-Identifier: MIT */
/*
 * The entries usmc's epoll keeps beside the kernel's sets (usmc_epoll.c):
 * which usmc descriptors, and which sets inside a set, were added to which
 * set with which events.  Everything here but ep_lock is called with
 * LOCK_EPOLL held.
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
	struct ep_entry *next; /* the next of its set (walks of them all) */
	struct ep_entry *prev; /* the one before, or NULL at the head: taken out without a walk */
	bool queued;           /* on its set's ready list */
	bool missed;           /* a wait's first look found nothing: the next one asks for a doorbell */
	struct ep_entry *rprev, *rnext; /* its neighbours on the ready list */
	struct ep_entry *hnext; /* the next in its bucket by set and data */
	struct ep_entry *fnext; /* the next in its bucket by descriptor */
};

/*
 * LOCK_EPOLL, and whether this thread holds it: a drain of doorbells
 * under it (ep_filter, an arm) tells ep_drained, which then takes no lock.
 */
void ep_lock(void);
void ep_unlock(void);
extern __thread bool ep_locked;

/* Follows an epoll_ctl the kernel accepted: the entry is added, changed or dropped. */
void ep_track_locked(int epfd, int op, int fd, const struct epoll_event *ev, bool nested,
		     uint32_t kernel);
/* The first entry of a set, in turn order (then ->next), or NULL. */
struct ep_entry *ep_first(int epfd);
/* The entry of a set the kernel reports with ev's data, or NULL. */
struct ep_entry *ep_find_by_data(int epfd, const struct epoll_event *ev);
/*
 * Each set's ready list: the entries that may have something to report,
 * in the order waits take turns.  A wait looks at these only (usmc_epoll.c).
 */
/* Puts e on its set's ready list, at the end; true if it was not on it. */
bool ep_ready_push(struct ep_entry *e);
/* The first entry of the set's ready list, or NULL; then ->rnext. */
struct ep_entry *ep_ready_first(int epfd);
/* How many entries the set's ready list holds. */
unsigned ep_ready_count(int epfd);
/* e, looked at, goes behind the others of its list (it stays ready). */
void ep_ready_requeue(struct ep_entry *e);
/* e leaves its set's ready list. */
void ep_ready_drop(struct ep_entry *e);
/* Calls fn for each entry of fd, in any set; fn may take its entry out, or rename it. */
void ep_for_fd(int fd, void (*fn)(struct ep_entry *, void *), void *arg);
/* The threads asleep in the kernel's wait on a set: delta +1, -1, or 0 to read. */
unsigned ep_set_sleeping(int epfd, int delta);
/* Every entry of every set goes on its ready list (a fork may share them all now). */
void ep_ready_push_every(void);
/* Calls fn with each set that a thread sleeps on in the kernel's wait. */
void ep_for_sleeping(void (*fn)(int epfd));
/* Whether any entry exists: a load without the lock, for the hot paths. */
bool ep_any(void);

#endif
