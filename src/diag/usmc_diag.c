// SPDX-License-Identifier: MIT
/*
 * The per-process socket table usmc-stat reads.
 */
#include "usmc_diag.h"

#include <fcntl.h>
#include <pthread.h>
#include <stddef.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "usmc_core.h"
#include "usmc_lock.h"
#include "usmc_proc.h"
#include "usmc_sys.h"

/* table_pid is stored after table: a reader that sees its pid sees its table. */
static struct usmc_diag_table *_Atomic table;
static _Atomic pid_t table_pid;
static _Atomic uint32_t free_hint; /* where a free slot may be: only a hint */

static size_t table_bytes(void)
{
	return offsetof(struct usmc_diag_table, sock) + USMC_DIAG_SLOTS * sizeof(struct usmc_diag_sock);
}

/*
 * The descriptor stays open: it is how usmc-stat finds the table.  Sealed
 * against resizing, since a process of this user could open it through
 * /proc and shrink it under our mapping (SIGBUS at the next slot we touch).
 */
static struct usmc_diag_table *table_create(void)
{
	int fd = memfd_create(USMC_DIAG_NAME, MFD_CLOEXEC | MFD_ALLOW_SEALING);
	struct usmc_diag_table *t;
	void *map;

	if (fd < 0)
		return NULL;
	fd = usmc_fd_lift(fd);
	if (ftruncate(fd, (off_t)table_bytes()) ||
	    usmc_sys.fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL)) {
		usmc_sys.close(fd);
		return NULL;
	}
	map = mmap(NULL, table_bytes(), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED) {
		usmc_sys.close(fd);
		return NULL;
	}
	t = map;
	t->version = USMC_DIAG_VERSION;
	t->pid = (int32_t)usmc_pid();
	t->nslots = USMC_DIAG_SLOTS;
	t->magic = USMC_DIAG_MAGIC;
	return t;
}

/* This process's table, made on first use; a forked child makes its own. */
static struct usmc_diag_table *table_get(void)
{
	pid_t pid = usmc_pid();

	if (atomic_load_explicit(&table_pid, memory_order_acquire) == pid)
		return atomic_load_explicit(&table, memory_order_relaxed);
	usmc_rank_lock(LOCK_DIAG);
	if (atomic_load_explicit(&table_pid, memory_order_relaxed) != pid) {
		atomic_store_explicit(&table, table_create(), memory_order_relaxed);
		atomic_store_explicit(&free_hint, 0, memory_order_relaxed);
		atomic_store_explicit(&table_pid, pid, memory_order_release);
	}
	usmc_rank_unlock(LOCK_DIAG);
	return atomic_load_explicit(&table, memory_order_relaxed);
}

_Static_assert(offsetof(struct usmc_diag_sock, state) == 0, "a slot's state comes first");

/* Claims a free slot without a lock: the state moves from free to open once. */
static struct usmc_diag_sock *slot_claim(struct usmc_diag_table *t)
{
	uint32_t hint = atomic_load_explicit(&free_hint, memory_order_relaxed);

	for (uint32_t n = 0; n < USMC_DIAG_SLOTS; n++) {
		uint32_t i = (hint + n) % USMC_DIAG_SLOTS, st = DIAG_FREE, high;

		if (atomic_load_explicit(&t->sock[i].state, memory_order_relaxed) != DIAG_FREE ||
		    !atomic_compare_exchange_strong(&t->sock[i].state, &st, DIAG_OPEN))
			continue;
		atomic_store_explicit(&free_hint, i + 1, memory_order_relaxed);
		high = atomic_load(&t->high);
		while (i + 1 > high && !atomic_compare_exchange_weak(&t->high, &high, i + 1))
			;
		return &t->sock[i];
	}
	return NULL;
}

struct usmc_diag_sock *usmc_diag_alloc(int fd, struct usmc_diag_sock *private_slot)
{
	struct usmc_diag_table *t = table_get();
	struct usmc_diag_sock *d = t ? slot_claim(t) : NULL;

	if (!d)
		d = private_slot;
	/* usmc-stat skips open slots: the rest may be cleared after the claim. */
	memset((char *)d + sizeof(d->state), 0, sizeof(*d) - sizeof(d->state));
	d->fd = fd;
	atomic_store_explicit(&d->state, DIAG_OPEN, memory_order_release);
	return d;
}

void usmc_diag_free(struct usmc_diag_sock *d, struct usmc_diag_sock *private_slot)
{
	struct usmc_diag_table *t = atomic_load_explicit(&table, memory_order_relaxed);
	uint32_t i;

	/* A slot of the table a forked child inherited stays its parent's. */
	if (!d || d == private_slot || !t || d < t->sock || d >= t->sock + USMC_DIAG_SLOTS ||
	    atomic_load_explicit(&table_pid, memory_order_relaxed) != usmc_pid())
		return;
	i = (uint32_t)(d - t->sock);
	atomic_store_explicit(&d->state, DIAG_FREE, memory_order_release);
	if (i < atomic_load_explicit(&free_hint, memory_order_relaxed))
		atomic_store_explicit(&free_hint, i, memory_order_relaxed);
}

/* Whether d is a slot of the table this process owns. */
static bool slot_is_ours(const struct usmc_diag_sock *d)
{
	struct usmc_diag_table *t = atomic_load_explicit(&table, memory_order_relaxed);

	return t && d >= t->sock && d < t->sock + USMC_DIAG_SLOTS &&
	       atomic_load_explicit(&table_pid, memory_order_relaxed) == usmc_pid();
}

void usmc_diag_snapshot(const struct usmc_diag_sock *d, struct usmc_diag_sock *private_slot)
{
	if (!d || d == private_slot)
		return;
	memcpy(private_slot, d, sizeof(*private_slot));
	private_slot->bytes_sent = atomic_load(&d->bytes_sent);
	private_slot->bytes_received = atomic_load(&d->bytes_received);
	atomic_store(&private_slot->state, atomic_load(&d->state));
}

/*
 * After fork, in the child: the table it inherited is its parent's (the
 * mapping is shared), and a socket it holds must be listed in its own, or
 * a connection the parent closed its copy of, such as a server's that
 * forks a child for each client, would vanish from usmc-stat while it
 * lives on.
 */
struct usmc_diag_sock *usmc_diag_adopt(struct usmc_diag_sock *d, struct usmc_diag_sock *private_slot)
{
	struct usmc_diag_sock copy, *mine;

	/* A private slot was copied with the child's memory: it is the child's already. */
	if (!d || d == private_slot || slot_is_ours(d))
		return d;
	memcpy(&copy, private_slot, sizeof(copy));
	mine = usmc_diag_alloc(copy.fd, private_slot);
	if (mine == private_slot)
		memcpy(mine, &copy, sizeof(copy));
	else
		memcpy((char *)mine + sizeof(mine->state), (char *)&copy + sizeof(copy.state),
		       sizeof(copy) - sizeof(copy.state));
	atomic_store_explicit(&mine->state, atomic_load(&copy.state), memory_order_release);
	return mine;
}
