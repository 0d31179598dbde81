// SPDX-License-Identifier: MIT
/*
 * The per-process socket table usmc-stat reads.
 */
#include "usmc_diag.h"

#include <pthread.h>
#include <stddef.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "usmc_core.h"
#include "usmc_sys.h"

static struct usmc_diag_table *table;
static pid_t table_pid;
static uint32_t free_hint;
static pthread_mutex_t diag_lock = PTHREAD_MUTEX_INITIALIZER;

static size_t table_bytes(void)
{
	return offsetof(struct usmc_diag_table, sock) + USMC_DIAG_SLOTS * sizeof(struct usmc_diag_sock);
}

/* The descriptor stays open: it is how usmc-stat finds the table. */
static void table_create(void)
{
	int fd = memfd_create(USMC_DIAG_NAME, MFD_CLOEXEC);
	void *map;

	table = NULL;
	table_pid = usmc_pid();
	if (fd < 0)
		return;
	if (ftruncate(fd, (off_t)table_bytes())) {
		usmc_sys.close(fd);
		return;
	}
	map = mmap(NULL, table_bytes(), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED) {
		usmc_sys.close(fd);
		return;
	}
	table = map;
	table->version = USMC_DIAG_VERSION;
	table->pid = (int32_t)table_pid;
	table->nslots = USMC_DIAG_SLOTS;
	table->magic = USMC_DIAG_MAGIC;
	free_hint = 0;
}

struct usmc_diag_sock *usmc_diag_alloc(int fd, struct usmc_diag_sock *private_slot)
{
	struct usmc_diag_sock *d = NULL;

	pthread_mutex_lock(&diag_lock);
	/* A forked child keeps its own table, not its parent's. */
	if (table_pid != usmc_pid())
		table_create();
	for (uint32_t n = 0; table && n < USMC_DIAG_SLOTS && !d; n++) {
		uint32_t i = (free_hint + n) % USMC_DIAG_SLOTS;

		if (atomic_load_explicit(&table->sock[i].state, memory_order_relaxed) == DIAG_FREE) {
			d = &table->sock[i];
			free_hint = i + 1;
			if (i + 1 > atomic_load(&table->high))
				atomic_store(&table->high, i + 1);
		}
	}
	if (!d)
		d = private_slot;
	memset((void *)d, 0, sizeof(*d));
	d->fd = fd;
	atomic_store_explicit(&d->state, DIAG_OPEN, memory_order_release);
	pthread_mutex_unlock(&diag_lock);
	return d;
}

void usmc_diag_free(struct usmc_diag_sock *d, struct usmc_diag_sock *private_slot)
{
	if (!d || d == private_slot)
		return;
	pthread_mutex_lock(&diag_lock);
	if (table && d >= table->sock && d < table->sock + USMC_DIAG_SLOTS) {
		atomic_store_explicit(&d->state, DIAG_FREE, memory_order_release);
		if ((uint32_t)(d - table->sock) < free_hint)
			free_hint = (uint32_t)(d - table->sock);
	}
	pthread_mutex_unlock(&diag_lock);
}
