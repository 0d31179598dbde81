/* SPDX-License-Identifier: MIT */
/*
 * The epoll entries usmc keeps beside the kernel's sets: which usmc
 * sockets (and which epoll sets, nested) were added to which set, with
 * which events.  Every operation takes what it needs, not a walk of all:
 * an entry is found by its descriptor, or by the data the kernel reports
 * for it, and a wait walks only the entries that may have something to
 * report (the active list).  All of it under ep_lock (usmc_epoll.c).
 */
#ifndef USMC_EPOLL_TABLE_H
#define USMC_EPOLL_TABLE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/types.h>

#include "usmc_sock.h"

/*
 * An edge-triggered entry reports when the connection's state moved since
 * its last report: the doorbell that made the kernel's edge may have been
 * drained already.
 */
struct ep_entry {
	int epfd;
	int fd;
	struct epoll_event ev;
	bool nested;         /* fd is an epoll set itself */
	uint32_t kernel;     /* the events the kernel's entry asks for (ep_kernel_events) */
	bool fresh;          /* added or modified: what is ready now is an edge */
	bool disarmed;       /* EPOLLONESHOT fired: silent until modified */
	bool quiet;          /* armed as key, looked at after, and nothing to report */
	bool active;         /* on the active list */
	uint32_t key;        /* its sleeper's key (usmc_wake.c): top bit set, no thread id */
	uint32_t round;      /* the round of a wait that last reported it (usmc_epoll.c) */
	pid_t pid;           /* the process that made it: a forked child has a copy */
	struct conn_view last; /* edge-triggered: the state last reported */
	struct ep_entry *all_next, *all_prev;
	struct ep_entry *fd_next;   /* the chain of its descriptor's bucket */
	struct ep_entry *data_next; /* the chain of its (set, data) bucket */
	struct ep_entry *act_next, *act_prev;
};

/* The entry of fd in epfd, or NULL. */
struct ep_entry *ep_table_find(int epfd, int fd);
/* A new entry of fd in epfd, active, with a key of its own; NULL without memory. */
struct ep_entry *ep_table_add(int epfd, int fd);
/* The entry's events and data are ev from now on. */
void ep_table_set_event(struct ep_entry *e, const struct epoll_event *ev);
/* The entry moves to another descriptor of the same file. */
void ep_table_move_fd(struct ep_entry *e, int fd);
void ep_table_remove(struct ep_entry *e);
/* The entry of epfd whose data the kernel reported, or NULL. */
struct ep_entry *ep_table_by_data(int epfd, const struct epoll_event *ev);
/* Off the active list (quiet, or nothing usmc need look at again), or back on it. */
void ep_table_set_active(struct ep_entry *e, bool active);
/*
 * An active entry just reported goes to the end of the active list, as the
 * kernel's ready list does: a wait with room for fewer events than are
 * ready reports the others next time.
 */
void ep_table_requeue(struct ep_entry *e);
/* Whether epfd has any entry. */
bool ep_table_has_set(int epfd);
/* A thread begins (in) or ends a wait on epfd; whether one is in a wait on it now. */
void ep_table_waiting(int epfd, bool in);
bool ep_table_waited(int epfd);

/* Walks: every entry, the active ones, those of one descriptor (check e->fd). */
struct ep_entry *ep_table_all(void);
struct ep_entry *ep_table_active(void);
struct ep_entry *ep_table_of_fd(int fd);
/* Whether there is any entry at all: a lock-free look, for the common case of none. */
bool ep_table_empty(void);

#endif /* USMC_EPOLL_TABLE_H */
