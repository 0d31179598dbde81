// SPDX-License-Identifier: MIT
/*
 * Link groups and their spare descriptors (their channel: usmc_channel.c;
 * segments and rings: usmc_seg.c).
 */
#include "usmc_core.h"
#include "usmc_channel.h"

#include <stdlib.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "usmc_proc.h"
#include "usmc_seg.h"
#include "usmc_seg_reuse.h"
#include "usmc_stats.h"
#include "usmc_sys.h"

static struct usmc_lgr *lgr_list;
static uint32_t lgr_next_id = 1;

void usmc_lock(void)
{
	usmc_rank_lock(LOCK_CORE);
}

void usmc_unlock(void)
{
	usmc_rank_unlock(LOCK_CORE);
}

int64_t usmc_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- link groups ---- */

struct usmc_lgr *lgr_new(int chan, enum lgr_role role, pid_t peer_pid, uid_t peer_uid)
{
	struct usmc_lgr *lgr = calloc(1, sizeof(*lgr));

	if (!lgr)
		return NULL;
	lgr->id = lgr_next_id++;
	lgr->chan = chan;
	lgr->role = role;
	lgr->peer_pid = peer_pid;
	lgr->peer_uid = peer_uid;
	lgr->owner_pid = usmc_pid();
	lgr->spare = -1;
	lgr->taker = -1;
	lgr->born = usmc_now_ms();
	lgr->backlog_tail = &lgr->backlog;
	lgr->next = lgr_list;
	lgr_list = lgr;
	usmc_stats_add(USMC_STAT_LGR_CREATED, 1);
	return lgr;
}

struct usmc_lgr *lgr_first(void)
{
	return lgr_list;
}

bool lgr_usable(const struct usmc_lgr *lgr)
{
	return !lgr->dead && lgr->owner_pid == usmc_pid();
}

void lgr_carriers_close(struct usmc_lgr *lgr)
{
	while (lgr->ncarriers)
		usmc_sys.close(lgr->carriers[--lgr->ncarriers]);
}

static void lgr_destroy(struct usmc_lgr *lgr)
{
	struct usmc_lgr **pp;

	for (pp = &lgr_list; *pp; pp = &(*pp)->next) {
		if (*pp == lgr) {
			*pp = lgr->next;
			break;
		}
	}
	for (uint32_t i = 0; i < lgr->nlseg; i++)
		seg_destroy(lgr->lseg[i]);
	for (uint32_t i = 0; i < lgr->nrseg; i++)
		seg_destroy(lgr->rseg[i]);
	lgr_backlog_free(lgr);
	if (lgr->chan >= 0)
		usmc_sys.close(lgr->chan);
	if (lgr->taker >= 0)
		usmc_sys.close(lgr->taker);
	lgr_carriers_close(lgr);
	lgr_spare_keep(lgr);
	free(lgr);
}

void lgr_terminate(struct usmc_lgr *lgr)
{
	lgr->dead = true;
	if (lgr->refs == 0)
		lgr_destroy(lgr);
}

/*
 * Drops a reference.  A link group goes with its last connection once its
 * peer is gone, which a look at its channel tells (a poll): a process that
 * made connections to peers that exit would otherwise keep each one's
 * channel and segments until its next read of them.  An idle one to a
 * live peer stays, for the next connection; if that peer goes later, the
 * next read of the channel finds it, and a Proposal that meets the end
 * goes on another link group.  A one-connection channel goes with its
 * connection.
 */
void lgr_put(struct usmc_lgr *lgr)
{
	if (--lgr->refs)
		return;
	if (lgr->oneshot && lgr->owner_pid == usmc_pid()) {
		seg_reuse_keep(lgr);
		lgr->dead = true;
	}
	if (!lgr->dead && lgr->owner_pid == usmc_pid() && usmc_fd_hung_up(lgr->chan))
		lgr->dead = true;
	if (lgr->dead)
		lgr_destroy(lgr);
}

/* ---- spare descriptors ---- */

/* Closes the spare a slot holds, if any: the one way a spare is closed. */
static void spare_close(_Atomic int *slot)
{
	int fd = atomic_exchange(slot, -1);

	if (fd >= 0)
		usmc_sys.close(fd);
}

void lgr_spare_close(struct usmc_lgr *lgr)
{
	spare_close(&lgr->spare);
}

/*
 * The spare of a link group that went, for the next one: one-connection
 * link groups (usmc_queue.c) would make and close one each.
 */
static _Atomic int spare_kept = -1;

void lgr_spare_keep(struct usmc_lgr *lgr)
{
	int fd = atomic_exchange(&lgr->spare, -1), none = -1;

	if (fd >= 0 && !atomic_compare_exchange_strong(&spare_kept, &none, fd))
		usmc_sys.close(fd);
}

void lgr_spare_kept_close(void)
{
	spare_close(&spare_kept);
}

bool lgr_spare_take(struct usmc_lgr *lgr)
{
	int fd, none = -1;

	if (atomic_load(&lgr->spare) >= 0)
		return true;
	fd = atomic_exchange(&spare_kept, -1);
	/* Not a copy of the channel: that would keep it open after we close it. */
	if (fd < 0)
		fd = usmc_fd_lift(usmc_sys.eventfd(0, EFD_CLOEXEC));
	if (fd < 0)
		return false;
	if (!atomic_compare_exchange_strong(&lgr->spare, &none, fd))
		usmc_sys.close(fd);
	return true;
}
