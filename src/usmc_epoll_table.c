// SPDX-License-Identifier: MIT
/*
 * The table of epoll entries (usmc_epoll_table.h): a list of all, two hash
 * tables (by descriptor, by set and data) and the active list, with a
 * count of entries per set.  A program with 10,000 connections in one set
 * changes, closes and waits on them at the cost of the ones it touches.
 */
#include "usmc_epoll_table.h"

#include <stddef.h>
#include <stdlib.h>

#include "usmc_core.h"

#define EP_BUCKETS 4096 /* a power of two */

static struct ep_entry *all, *active, *active_tail;
static struct ep_entry *by_fd[EP_BUCKETS], *by_data[EP_BUCKETS];
static uint32_t next_key;

/* Entries per set, for ep_table_has_set. */
struct ep_set_count {
	int epfd;
	unsigned n;
	unsigned waiters; /* threads in a wait on the set now */
	struct ep_set_count *next;
};
static struct ep_set_count *sets[EP_BUCKETS];

static unsigned fd_bucket(int fd)
{
	return (unsigned)fd & (EP_BUCKETS - 1);
}

static unsigned data_bucket(int epfd, uint64_t data)
{
	uint64_t h = (data ^ ((uint64_t)(unsigned)epfd << 32)) * 0x9e3779b97f4a7c15ull;

	return (unsigned)(h >> 52) & (EP_BUCKETS - 1);
}

/* Unlinks e from a singly linked chain. */
static void chain_del(struct ep_entry **head, struct ep_entry *e, size_t link)
{
	for (struct ep_entry **pp = head; *pp;
	     pp = (struct ep_entry **)((char *)*pp + link)) {
		if (*pp == e) {
			*pp = *(struct ep_entry **)((char *)e + link);
			return;
		}
	}
}

static void set_count(int epfd, int delta)
{
	struct ep_set_count **pp = &sets[fd_bucket(epfd)], *c;

	for (; (c = *pp); pp = &c->next)
		if (c->epfd == epfd)
			break;
	if (!c && delta > 0 && (c = calloc(1, sizeof(*c)))) {
		c->epfd = epfd;
		c->next = sets[fd_bucket(epfd)];
		sets[fd_bucket(epfd)] = c;
		pp = &sets[fd_bucket(epfd)];
	}
	if (!c)
		return;
	c->n += (unsigned)delta;
	if (c->n == 0) {
		*pp = c->next;
		free(c);
	}
}

struct ep_entry *ep_table_find(int epfd, int fd)
{
	for (struct ep_entry *e = by_fd[fd_bucket(fd)]; e; e = e->fd_next)
		if (e->epfd == epfd && e->fd == fd)
			return e;
	return NULL;
}

/* Links e into the active list between prev and next (NULL: an end). */
static void active_link(struct ep_entry *e, struct ep_entry *prev, struct ep_entry *next)
{
	e->act_prev = prev;
	e->act_next = next;
	if (prev)
		prev->act_next = e;
	else
		active = e;
	if (next)
		next->act_prev = e;
	else
		active_tail = e;
}

void ep_table_set_active(struct ep_entry *e, bool on)
{
	if (e->active == on)
		return;
	e->active = on;
	if (on) {
		active_link(e, NULL, active);
		return;
	}
	if (e->act_prev)
		e->act_prev->act_next = e->act_next;
	else
		active = e->act_next;
	if (e->act_next)
		e->act_next->act_prev = e->act_prev;
	else
		active_tail = e->act_prev;
}

void ep_table_requeue(struct ep_entry *e)
{
	if (!e->active || e == active_tail)
		return;
	ep_table_set_active(e, false);
	e->active = true;
	active_link(e, active_tail, NULL);
}

struct ep_entry *ep_table_add(int epfd, int fd)
{
	struct ep_entry *e = calloc(1, sizeof(*e));

	if (!e)
		return NULL;
	e->epfd = epfd;
	e->fd = fd;
	e->key = 0x80000000u | (++next_key & 0x7fffffffu);
	e->pid = usmc_pid();
	e->all_next = all;
	if (all)
		all->all_prev = e;
	__atomic_store_n(&all, e, __ATOMIC_RELAXED);
	e->fd_next = by_fd[fd_bucket(fd)];
	by_fd[fd_bucket(fd)] = e;
	e->data_next = by_data[data_bucket(epfd, 0)];
	by_data[data_bucket(epfd, 0)] = e;
	ep_table_set_active(e, true);
	set_count(epfd, 1);
	return e;
}

void ep_table_set_event(struct ep_entry *e, const struct epoll_event *ev)
{
	chain_del(&by_data[data_bucket(e->epfd, e->ev.data.u64)], e,
		  offsetof(struct ep_entry, data_next));
	e->ev = *ev;
	e->data_next = by_data[data_bucket(e->epfd, ev->data.u64)];
	by_data[data_bucket(e->epfd, ev->data.u64)] = e;
}

void ep_table_move_fd(struct ep_entry *e, int fd)
{
	chain_del(&by_fd[fd_bucket(e->fd)], e, offsetof(struct ep_entry, fd_next));
	e->fd = fd;
	e->fd_next = by_fd[fd_bucket(fd)];
	by_fd[fd_bucket(fd)] = e;
}

void ep_table_remove(struct ep_entry *e)
{
	ep_table_set_active(e, false);
	chain_del(&by_fd[fd_bucket(e->fd)], e, offsetof(struct ep_entry, fd_next));
	chain_del(&by_data[data_bucket(e->epfd, e->ev.data.u64)], e,
		  offsetof(struct ep_entry, data_next));
	if (e->all_prev)
		e->all_prev->all_next = e->all_next;
	else
		__atomic_store_n(&all, e->all_next, __ATOMIC_RELAXED);
	if (e->all_next)
		e->all_next->all_prev = e->all_prev;
	set_count(e->epfd, -1);
	free(e);
}

struct ep_entry *ep_table_by_data(int epfd, const struct epoll_event *ev)
{
	for (struct ep_entry *e = by_data[data_bucket(epfd, ev->data.u64)]; e; e = e->data_next)
		if (e->epfd == epfd && e->ev.data.u64 == ev->data.u64)
			return e;
	return NULL;
}

static struct ep_set_count *set_find(int epfd)
{
	for (struct ep_set_count *c = sets[fd_bucket(epfd)]; c; c = c->next)
		if (c->epfd == epfd)
			return c;
	return NULL;
}

bool ep_table_has_set(int epfd)
{
	return set_find(epfd) != NULL;
}

void ep_table_waiting(int epfd, bool in)
{
	struct ep_set_count *c = set_find(epfd);

	if (c && (in || c->waiters))
		c->waiters += in ? 1 : -1u;
}

bool ep_table_waited(int epfd)
{
	struct ep_set_count *c = set_find(epfd);

	return c && c->waiters;
}

struct ep_entry *ep_table_all(void)
{
	return all;
}

struct ep_entry *ep_table_active(void)
{
	return active;
}

struct ep_entry *ep_table_of_fd(int fd)
{
	return by_fd[fd_bucket(fd)];
}

bool ep_table_empty(void)
{
	return __atomic_load_n(&all, __ATOMIC_RELAXED) == NULL;
}
