// SPDX-License-Identifier: MIT
/*
 * The library's fork handlers, in one list (usmc_fork.h): one
 * pthread_atfork for all of them, and the same list for the forks that
 * run none.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "usmc_fork.h"

/* As many modules as add handlers (locks, pid, descriptor table, holders, kick, bell...), and room. */
#define FORK_HANDLERS_MAX 12

struct fork_handlers {
	void (*prepare)(void), (*parent)(void), (*child)(void);
};

/*
 * An entry is written before the count that covers it is published
 * (release), and a fork reads the count first (acquire): a module adds
 * its handlers from its pthread_once, which may run in two threads at
 * once for two modules, hence the claim of a slot by fetch_add and the
 * ready count apart.
 */
static struct fork_handlers fork_list[FORK_HANDLERS_MAX];
static _Atomic unsigned fork_claimed, fork_ready;
static pthread_once_t fork_once = PTHREAD_ONCE_INIT;

static unsigned fork_count(void)
{
	return atomic_load_explicit(&fork_ready, memory_order_acquire);
}

/*
 * The entries whose prepare handlers this thread ran before its fork:
 * exactly those get their parent or child handler after it, though a
 * module of another thread may add its own meanwhile (its parent
 * handler would release what its prepare never took).
 */
static __thread unsigned fork_ran;

void usmc_fork_before(void)
{
	fork_ran = fork_count();
	for (unsigned i = fork_ran; i-- > 0;)
		if (fork_list[i].prepare)
			fork_list[i].prepare();
}

void usmc_fork_after(pid_t pid)
{
	unsigned n = fork_ran;

	for (unsigned i = 0; i < n; i++) {
		void (*f)(void) = pid == 0 ? fork_list[i].child : fork_list[i].parent;

		if (f)
			f();
	}
}

static void fork_parent(void)
{
	usmc_fork_after(1);
}

static void fork_child(void)
{
	usmc_fork_after(0);
}

static void fork_register(void)
{
	pthread_atfork(usmc_fork_before, fork_parent, fork_child);
}

void usmc_fork_watch(void (*prepare)(void), void (*parent)(void), void (*child)(void))
{
	unsigned i = atomic_fetch_add(&fork_claimed, 1);

	pthread_once(&fork_once, fork_register);
	if (i >= FORK_HANDLERS_MAX)
		abort(); /* a module more than the list has room for: a build's mistake */
	fork_list[i] = (struct fork_handlers){ prepare, parent, child };
	/* Published in the order claimed, so that the list has no hole. */
	for (unsigned want = i; !atomic_compare_exchange_weak_explicit(
		     &fork_ready, &want, i + 1, memory_order_release, memory_order_relaxed);
	     want = i)
		;
}
