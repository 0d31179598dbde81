// SPDX-License-Identifier: MIT
/*
 * The entries of usmc's epoll (usmc_epoll_table.h), found without walking
 * them all: each set has its own list of all its entries, and its ready
 * list (those a wait looks at, in the order waits take turns, as the
 * kernel's ready list: a set with more ready than a wait has room for
 * reports each in turn), and two hash tables of one allocation find an entry by set and data
 * (what the kernel reports of it: a wait of nginx's at 1,000 connections
 * reports 512) and by descriptor (epoll_ctl, which wrk calls for every
 * request, and every close of the program, which nginx makes for the file
 * of every response).  Without the tables (no memory for them) the set's
 * list is walked, and every close walks all.
 */
#include <stdlib.h>

#include "usmc_epoll_table.h"
#include "usmc_lock.h"

/* A set that has entries (or a sleeper), its list and its ready list. */
struct ep_set_list {
	int epfd;
	unsigned entries;
	struct ep_entry *head;
	struct ep_entry *rhead, *rtail; /* the ready list, in turn order */
	unsigned ready;                 /* entries on it */
	unsigned sleeping;              /* threads in the kernel's wait on the set */
};

static struct ep_set_list *ep_sets;
static size_t ep_nsets, ep_sets_room;
static size_t ep_count; /* entries of all sets; read without the lock by ep_any */

__thread bool ep_locked;

void ep_lock(void)
{
	usmc_rank_lock(LOCK_EPOLL);
	ep_locked = true;
}

void ep_unlock(void)
{
	ep_locked = false;
	usmc_rank_unlock(LOCK_EPOLL);
}

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

/* Sets left without entries or sleepers go (not during a walk of ep_sets: they move). */
static void ep_sets_prune(void)
{
	for (size_t i = 0; i < ep_nsets;)
		if (!ep_sets[i].entries && !ep_sets[i].sleeping)
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

bool ep_ready_push(struct ep_entry *e)
{
	struct ep_set_list *l = ep_set_find(e->epfd);

	if (!l || e->queued)
		return false;
	e->queued = true;
	e->rnext = NULL;
	e->rprev = l->rtail;
	if (l->rtail)
		l->rtail->rnext = e;
	else
		l->rhead = e;
	l->rtail = e;
	l->ready++;
	return true;
}

static void ep_ready_unlink(struct ep_set_list *l, struct ep_entry *e)
{
	if (!e->queued)
		return;
	if (e->rprev)
		e->rprev->rnext = e->rnext;
	else
		l->rhead = e->rnext;
	if (e->rnext)
		e->rnext->rprev = e->rprev;
	else
		l->rtail = e->rprev;
	e->queued = false;
	e->rprev = e->rnext = NULL;
	l->ready--;
}

void ep_ready_drop(struct ep_entry *e)
{
	struct ep_set_list *l = ep_set_find(e->epfd);

	if (l)
		ep_ready_unlink(l, e);
}

void ep_ready_requeue(struct ep_entry *e)
{
	struct ep_set_list *l = ep_set_find(e->epfd);

	if (!l || !e->queued || l->rtail == e)
		return;
	ep_ready_unlink(l, e);
	ep_ready_push(e);
}

struct ep_entry *ep_ready_first(int epfd)
{
	struct ep_set_list *l = ep_set_find(epfd);

	return l ? l->rhead : NULL;
}

unsigned ep_ready_count(int epfd)
{
	struct ep_set_list *l = ep_set_find(epfd);

	return l ? l->ready : 0;
}

void ep_ready_push_every(void)
{
	for (size_t i = 0; i < ep_nsets; i++)
		for (struct ep_entry *e = ep_sets[i].head; e; e = e->next)
			ep_ready_push(e);
}

void ep_for_sleeping(void (*fn)(int epfd))
{
	for (size_t i = 0; i < ep_nsets; i++)
		if (ep_sets[i].sleeping)
			fn(ep_sets[i].epfd);
}

unsigned ep_set_sleeping(int epfd, int delta)
{
	struct ep_set_list *l = delta > 0 ? ep_set_get(epfd) : ep_set_find(epfd);
	unsigned n;

	if (!l)
		return 0;
	n = l->sleeping += (unsigned)delta;
	if (delta < 0 && !n)
		ep_sets_prune();
	return n;
}

void ep_for_fd(int fd, void (*fn)(struct ep_entry *, void *), void *arg)
{
	struct ep_entry *e, *next;

	if (ep_hash) {
		for (e = *ep_fd_bucket(ep_hash, ep_hash_size, fd); e; e = next) {
			next = e->fnext;
			if (e->fd == fd)
				fn(e, arg);
		}
		return;
	}
	for (size_t i = 0; i < ep_nsets; i++)
		for (e = ep_sets[i].head; e; e = next) {
			next = e->next;
			if (e->fd == fd)
				fn(e, arg);
		}
}

/* Unlinks e from its set's lists and frees it. */
static void ep_entry_del(struct ep_set_list *l, struct ep_entry *e)
{
	ep_ready_unlink(l, e);
	if (e->prev)
		e->prev->next = e->next;
	else
		l->head = e->next;
	if (e->next)
		e->next->prev = e->prev;
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
	struct ep_entry *e = ep_find_by_fd(epfd, fd);
	struct ep_set_list *l;

	if (op == EPOLL_CTL_DEL && e) {
		ep_entry_del(ep_set_find(epfd), e);
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
		if (l->head)
			l->head->prev = e;
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
		/* Added or changed: the next wait looks at it. */
		ep_ready_push(e);
	}
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

/*
 * An entry whose descriptor was closed: the kernel drops it with its
 * file's last descriptor; else it goes on under *other_fd, the file's
 * other, hashed again in the table as it is (no growth: the count of
 * entries is the same).
 */
static void ep_fd_gone(struct ep_entry *e, void *other_fd)
{
	int other = *(int *)other_fd;

	if (other < 0) {
		ep_entry_del(ep_set_find(e->epfd), e);
		return;
	}
	ep_hash_del(e);
	e->fd = other;
	if (ep_hash)
		ep_hash_put(ep_hash, ep_hash_size, e);
}

void usmc_epoll_fd_closed(int fd, int other_fd)
{
	struct ep_set_list *l;

	/* Every close of the program passes here: most find no entry at all. */
	if (!ep_any())
		return;
	ep_lock();
	/* Most, in no set and no set themselves, need nothing more. */
	if (ep_fd_concerned(fd)) {
		/* A set goes with its own last descriptor, and its entries with it. */
		if ((l = ep_set_find(fd)))
			while (l->head)
				ep_entry_del(l, l->head);
		/*
		 * The entries of fd, found by descriptor: a walk of every set at
		 * every close of a connection in one was an nginx worker's
		 * largest cost of the library at 10,000 connections.
		 */
		ep_for_fd(fd, ep_fd_gone, &other_fd);
	}
	ep_sets_prune();
	ep_unlock();
}
