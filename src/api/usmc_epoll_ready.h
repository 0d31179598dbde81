/* SPDX-License-Identifier: MIT */
/*
 * The ready lists of epoll sets and the looks of waits at them
 * (usmc_epoll_ready.c), and what those looks need of usmc_epoll.c.
 * All but ep_ready_now, ep_watch_drains, ep_armed_disarm and
 * ep_sleep_end are called with LOCK_EPOLL held.
 */
#ifndef USMC_EPOLL_READY_H
#define USMC_EPOLL_READY_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/epoll.h>

#include "usmc_epoll_table.h"
#include "usmc_sock.h"

/*
 * The events to report for an entry now: none, or what is ready.  With
 * consume, the report counts: an edge is used up, a one-shot entry fires.
 */
uint32_t ep_entry_events(struct usmc_sock *s, struct ep_entry *e, bool consume);
/* An entry that is a set inside this one: readable when the inner set has something (usmc_epoll.c). */
uint32_t ep_nested_events(struct ep_entry *e, bool arm);
/* The sleep on a set is over: its sockets, and those of sets inside, keep no doorbell for us. */
void ep_set_disarm(int epfd, int depth);

/*
 * How a wait looks at its set's ready list: first, when the wait begins;
 * again and again while it spins; and armed, before it sleeps.  An entry
 * with nothing to report leaves the list (its peer asked to ring at the
 * next change) at an arming look, or at the first look of a wait after
 * the one before found nothing either: a spin that finds what the peer
 * answers then costs the peer no doorbell.
 */
enum ep_look_kind { EP_LOOK_FIRST, EP_LOOK_SPIN, EP_LOOK_ARM };

/*
 * usmc descriptors with something to report now, from the set's ready
 * list, each entry looked at once at most; armed first if the look is
 * EP_LOOK_ARM (the entries that stay on the list).  An arming look that
 * finds nothing counts the thread among the set's sleepers: ep_sleep_end
 * after the sleep.  Takes LOCK_EPOLL.
 */
int ep_ready_now(int epfd, struct epoll_event *events, int maxevents, enum ep_look_kind kind);
/*
 * Whether a look of this thread since ep_looked_reset met a connection
 * that another process holds too: its sleep watches the holders' bell
 * (usmc_bell.h), for a shutdown there.
 */
bool ep_looked_shared(void);
void ep_looked_reset(void);
/* Takes back the registrations of this thread's last arming look.  Takes LOCK_EPOLL. */
void ep_armed_disarm(int epfd);
/* From the first usmc socket added to a set on, drains elsewhere tell epoll (ep_drained). */
void ep_watch_drains(void);
/* The set whose kernel events this thread filters now, or -1: ep_drained wakes none of its sleepers. */
extern __thread int ep_filtering;
/* After the kernel's wait that an arming look began.  Takes LOCK_EPOLL. */
void ep_sleep_end(int epfd);

#endif /* USMC_EPOLL_READY_H */
