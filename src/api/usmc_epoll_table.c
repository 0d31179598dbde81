// SPDX-License-Identifier: MIT
/*
 * The entries of usmc's epoll (usmc_epoll_table.h), found without walking
 * them all: each set has its own list, in the order its waits take turns,
 * and two hash tables of one allocation find an entry by set and data
 * (what the kernel reports of it: a wait of nginx's at 1,000 connections
 * reports 512) and by descriptor (epoll_ctl, which wrk calls for every
 * request, and every close of the program, which nginx makes for the file
 * of every response).  Without the tables (no memory for them) the set's
 * list is walked, and every close walks all.
 */
#include <stdlib.h>

#include "usmc_epoll_table.h"
#include "usmc_lock.h"

/* A set that has entries, its list in turn order. */
struct ep_set_list {
	int epfd;
	unsigned entries;
	struct ep_entry *head;
};

static struct ep_set_list *ep_sets;
static size_t ep_nsets, ep_sets_room;
static size_t ep_count; /* entries of all sets; read without the lock by ep_any */

static struct ep_entry **ep_hash; /* ep_hash_size buckets by set and data, as many by descriptor */
static size_t ep_hash_size;

bool ep_any(void)
{
	return __atomic_load_n(&ep_count, __ATOMIC_RELAXED) != 0;
}

static struct ep_set_list *ep_set_find(int epfd)
{
	for (size_t i = 0; i < ep_nsets; i++)
		if (ep_sets[i].epfd == epfd)
			return &ep_sets[i];
	return NULL;
}

/* The set's list, made if it has none; NULL without the memory. */
static struct ep_set_list *ep_set_get(int epfd)
{
	struct ep_set_list *l = ep_set_find(epfd), *more;

	if (l)
		return l;
	if (ep_nsets == ep_sets_room) {
		size_t room = ep_sets_room ? 2 * ep_sets_room : 4;

		if (!(more = realloc(ep_sets, room * sizeof(*more))))
			return NULL;
		ep_sets = more;
		ep_sets_room = room;
	}
	l = &ep_sets[ep_nsets++];
	*l = (struct ep_set_list){ .epfd = epfd };
	return l;
}

/* Sets left without entries go (not during a walk of ep_sets: they move). */
static void ep_sets_prune(void)
{
	for (size_t i = 0; i < ep_nsets;)
		if (!ep_sets[i].entries)
			ep_sets[i] = ep_sets[--ep_nsets];
		else
			i++;
}

struct ep_entry *ep_first(int epfd)
{
	struct ep_set_list *l = ep_set_find(epfd);

	return l ? l->head : NULL;
}

static size_t ep_mix(uint64_t k, size_t size)
{
	return (size_t)((k * 0x9e3779b97f4a7c15ull) >> 32) & (size - 1);
}

static struct ep_entry **ep_data_bucket(struct ep_entry **table, size_t size, int epfd,
					uint64_t data)
{
	return &table[ep_mix(data ^ (uint64_t)(uint32_t)epfd << 40, size)];
}

static struct ep_entry **ep_fd_bucket(struct ep_entry **table, size_t size, int fd)
{
	return &table[size + ep_mix((uint32_t)fd, size)];
}

static void ep_hash_del(struct ep_entry *e)
{
	struct ep_entry **pp;

	if (!ep_hash)
		return;
	for (pp = ep_data_bucket(ep_hash, ep_hash_size, e->epfd, e->ev.data.u64); *pp;
	     pp = &(*pp)->hnext)
		if (*pp == e) {
			*pp = e->hnext;
			break;
		}
	for (pp = ep_fd_bucket(ep_hash, ep_hash_size, e->fd); *pp; pp = &(*pp)->fnext)
		if (*pp == e) {
			*pp = e->fnext;
			break;
		}
}

static void ep_hash_put(struct ep_entry **table, size_t size, struct ep_entry *e)
{
	struct ep_entry **b = ep_data_bucket(table, size, e->epfd, e->ev.data.u64);

	e->hnext = *b;
	*b = e;
	b = ep_fd_bucket(table, size, e->fd);
	e->fnext = *b;
	*b = e;
}

/* Twice the entries' number of buckets or more; if the memory is not there, longer chains. */
static void ep_hash_add(struct ep_entry *e)
{
	size_t size = ep_hash_size ? ep_hash_size : 64;
	struct ep_entry **table;

	while (size < 2 * ep_count)
		size *= 2;
	if (size != ep_hash_size && (table = calloc(2 * size, sizeof(*table)))) {
		for (size_t i = 0; i < ep_nsets; i++)
			for (struct ep_entry *o = ep_sets[i].head; o; o = o->next)
				if (o != e)
					ep_hash_put(table, size, o);
		free(ep_hash);
		ep_hash = table;
		ep_hash_size = size;
	}
	if (ep_hash)
		ep_hash_put(ep_hash, ep_hash_size, e);
}

/* Unlinks e from its set's list at pp and frees it. */
static void ep_entry_del(struct ep_set_list *l, struct ep_entry **pp, struct ep_entry *e)
{
	*pp = e->next;
	ep_hash_del(e);
	l->entries--;
	__atomic_store_n(&ep_count, ep_count - 1, __ATOMIC_RELAXED);
	free(e);
}

static struct ep_entry *ep_find_by_fd(int epfd, int fd)
{
	struct ep_entry *e = ep_hash ? *ep_fd_bucket(ep_hash, ep_hash_size, fd) : ep_first(epfd);

	for (; e; e = ep_hash ? e->fnext : e->next)
		if (e->epfd == epfd && e->fd == fd)
			return e;
	return NULL;
}

struct ep_entry *ep_find_by_data(int epfd, const struct epoll_event *ev)
{
	struct ep_entry *e =
		ep_hash ? *ep_data_bucket(ep_hash, ep_hash_size, epfd, ev->data.u64) : ep_first(epfd);

	for (; e; e = ep_hash ? e->hnext : e->next)
		if (e->epfd == epfd && e->ev.data.u64 == ev->data.u64)
			return e;
	return NULL;
}

void ep_track_locked(int epfd, int op, int fd, const struct epoll_event *ev, bool nested,
		     uint32_t kernel)
{
	struct ep_entry **pp, *e = ep_find_by_fd(epfd, fd);
	struct ep_set_list *l;

	if (op == EPOLL_CTL_DEL && e) {
		l = ep_set_find(epfd);
		for (pp = &l->head; *pp != e; pp = &(*pp)->next)
			;
		ep_entry_del(l, pp, e);
		ep_sets_prune();
		return;
	}
	if (op == EPOLL_CTL_DEL || !ev)
		return;
	/* A modified entry is found by its new data from now on. */
	if (e && e->ev.data.u64 != ev->data.u64) {
		ep_hash_del(e);
		e->ev.data = ev->data;
		ep_hash_add(e);
	} else if (!e && (l = ep_set_get(epfd)) && (e = calloc(1, sizeof(*e)))) {
		e->epfd = epfd;
		e->fd = fd;
		e->ev.data = ev->data;
		e->next = l->head;
		l->head = e;
		l->entries++;
		__atomic_store_n(&ep_count, ep_count + 1, __ATOMIC_RELAXED);
		ep_hash_add(e);
	}
	ep_sets_prune();
	if (e) {
		e->ev = *ev;
		e->nested = nested;
		e->kernel = kernel;
		e->fresh = true;
		e->disarmed = false;
	}
}

/*
 * The entries up to last (the one that filled a wait's events) go to the
 * end of the set's list: the next wait looks first at those this one had
 * no room for, as the kernel's ready list takes its turns.  Without it, a
 * set with more connections ready than maxevents (nginx's 512 at 1,000
 * busy keep-alive connections) reported the same first ones again and
 * again, and the others' requests waited for seconds.
 */
void ep_rotate_after(int epfd, struct ep_entry *last)
{
	struct ep_set_list *l = ep_set_find(epfd);
	struct ep_entry *tail;

	if (!l || !last->next)
		return;
	for (tail = last->next; tail->next; tail = tail->next)
		;
	tail->next = l->head;
	l->head = last->next;
	last->next = NULL;
}

/* Whether closing fd may concern an entry: fd is in a set, or is a set. */
static bool ep_fd_concerned(int fd)
{
	if (!ep_hash || ep_set_find(fd))
		return true;
	for (struct ep_entry *e = *ep_fd_bucket(ep_hash, ep_hash_size, fd); e; e = e->fnext)
		if (e->fd == fd)
			return true;
	return false;
}

void usmc_epoll_fd_closed(int fd, int other_fd)
{
	/* Every close of the program passes here: most find no entry at all. */
	if (!ep_any())
		return;
	usmc_rank_lock(LOCK_EPOLL);
	/* Most, in no set and no set themselves, need no walk. */
	for (size_t i = 0, n = ep_fd_concerned(fd) ? ep_nsets : 0; i < n; i++) {
		struct ep_set_list *l = &ep_sets[i];
		struct ep_entry **pp = &l->head, *e;

		while ((e = *pp)) {
			/* The kernel drops an entry with its file's last descriptor, a set with its own. */
			if (e->epfd == fd || (e->fd == fd && other_fd < 0)) {
				ep_entry_del(l, pp, e);
				continue;
			}
			if (e->fd == fd) {
				ep_hash_del(e);
				e->fd = other_fd;
				ep_hash_add(e);
			}
			pp = &e->next;
		}
	}
	ep_sets_prune();
	usmc_rank_unlock(LOCK_EPOLL);
}
