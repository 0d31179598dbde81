// SPDX-License-Identifier: MIT
/*
 * The registry: one small shared file per user and network namespace,
 * which tells clients which ports have a usmc listener and counts the
 * Proposals sent toward each (see usmc_core.h), and the Unix names of
 * the listeners' channels.
 */
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sched.h>
#include <signal.h>
#include <unistd.h>

#include "usmc_core.h"
#include "usmc_proc.h"
#include "usmc_registry.h"
#include "usmc_shared_file.h"
#include "usmc_stats.h"
#include "usmc_sys.h"

#define REG_PORTS 65536
/* Proposals listed at once on a user's link groups: a burst of connections' worth. */
#define REG_SLOTS 4096
/* Slots looked at from a cookie's place: a full stretch leaves the Proposal unlisted. */
#define REG_SLOT_PROBE 16
/*
 * A listed slot taken this long ago is reclaimed: its client died, or
 * never touched its socket again.  Without its slot a Proposal still
 * ends, as any does, by the client's own look after a CLC timeout.  A
 * refused one only once its client is gone: the client reads the wake
 * it owes only if it learns of the refusal from its slot.
 */
#define REG_SLOT_STALE_S 60

enum { RSLOT_FREE, RSLOT_BUSY, RSLOT_LISTED, RSLOT_REFUSED };
#define SLOT_STATE(tag) ((tag) & 3u)
#define SLOT_TAG(seq, state) (((seq) << 2) | (state))

struct reg_slot {
	_Atomic uint64_t tag;    /* a sequence number above the state: a reused slot never matches */
	_Atomic uint64_t cookie; /* the Proposal's: its client's TCP socket */
	_Atomic uint32_t since;  /* when it was taken, in seconds (now_seconds) */
	_Atomic uint32_t port;
	_Atomic int32_t pid;     /* the client's */
	uint32_t pad;
};

/*
 * Holders of shared queues (reg_holder_show): (q + 1) << 48 | port << 32 | pid,
 * q the queue whose entries it holds, 0 for none; 0 if free.
 */
#define REG_HOLDER_SLOTS 1024
#define REG_HOLDER_PROBE 16
/* Rounds through a full window before a look goes unseen (reg_holder_show). */
#define REG_HOLDER_ROUNDS 1000

/*
 * Rows of hand-back counts (reg_handed_add) and of side queues' passes
 * (reg_pass_begin), one per port's hash, one of each per queue.
 */
#define REG_ROWS 256

struct reg_row {
	_Atomic uint32_t handed[REG_QUEUES];
	_Atomic int32_t pass[REG_QUEUES]; /* the pid whose pass it is, or 0 */
};

static struct reg_port *reg_map;
/* The list of Proposals follows the ports' entries, the holders follow it, and the hand-backs. */
#define reg_slots ((struct reg_slot *)(reg_map + REG_PORTS))
#define reg_holders ((_Atomic uint64_t *)(reg_slots + REG_SLOTS))
#define reg_rows ((struct reg_row *)(reg_holders + REG_HOLDER_SLOTS))
static uid_t reg_uid;
static pthread_once_t reg_once = PTHREAD_ONCE_INIT;
static _Atomic bool reg_done;

unsigned long usmc_netns_inode(void)
{
	struct stat st;

	return stat("/proc/self/ns/net", &st) == 0 ? (unsigned long)st.st_ino : 0;
}

static void reg_open(void)
{
	const char *dir = getenv("USMC_REGISTRY_DIR");
	char path[256];

	snprintf(path, sizeof(path), "%s/usmc-%u-%lu.7", dir ? dir : "/dev/shm", (unsigned)getuid(),
		 usmc_netns_inode());
	reg_map = usmc_shared_file_map(path, REG_PORTS * sizeof(struct reg_port) +
						       REG_SLOTS * sizeof(struct reg_slot) +
						       REG_HOLDER_SLOTS * sizeof(uint64_t) +
						       REG_ROWS * sizeof(struct reg_row),
				       getuid());
	reg_uid = getuid();
	usmc_stats_open();
}

uid_t reg_owner(void)
{
	usmc_once(&reg_once, &reg_done, reg_open);
	return reg_uid;
}

struct reg_port *reg_port(uint16_t port)
{
	usmc_once(&reg_once, &reg_done, reg_open);
	return reg_map ? &reg_map[port] : NULL;
}

/* An abstract Unix name, usmc/<uid>/<port> and what follows. */
__attribute__((format(printf, 2, 3))) static socklen_t reg_name(void *addr, const char *fmt, ...)
{
	struct sockaddr_un *sun = addr;
	va_list ap;
	int n;

	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	va_start(ap, fmt);
	n = vsnprintf(sun->sun_path + 1, sizeof(sun->sun_path) - 1, fmt, ap);
	va_end(ap);
	return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
}

socklen_t reg_listener_addr(uid_t uid, uint16_t port, bool other_users, void *addr)
{
	/* Abstract: it vanishes with the process, so no entry outlives it. */
	return reg_name(addr, "usmc/%u/%u%s", (unsigned)uid, (unsigned)port,
			other_users ? "/users" : "");
}

socklen_t reg_member_addr(uid_t uid, uint16_t port, int32_t pid, void *addr)
{
	return reg_name(addr, "usmc/%u/%u/m%d", (unsigned)uid, (unsigned)port, (int)pid);
}

/* ---- Proposals listed by cookie (usmc_registry.h) ---- */

/* Seconds on the host's monotonic clock, which every process of it shares. */
static uint32_t now_seconds(void)
{
	return (uint32_t)(usmc_now_ms() / 1000);
}

static uint32_t slot_home(uint64_t cookie)
{
	return (uint32_t)((cookie * 0x9e3779b97f4a7c15ull) >> 52) % REG_SLOTS;
}

/* A slot's list entry ends: its port counts one Proposal fewer. */
static void slot_unlist(struct reg_slot *sl)
{
	uint32_t port = atomic_load(&sl->port);

	if (port < REG_PORTS)
		atomic_fetch_sub(&reg_map[port].listed, 1);
}

/* A slot taken so long ago that it is reclaimed (REG_SLOT_STALE_S); *now: seconds, read once. */
static bool slot_stale(struct reg_slot *sl, uint64_t tag, uint32_t *now)
{
	if (SLOT_STATE(tag) != RSLOT_LISTED && SLOT_STATE(tag) != RSLOT_REFUSED)
		return false;
	if (!*now)
		*now = now_seconds();
	return *now - atomic_load(&sl->since) > REG_SLOT_STALE_S &&
	       (SLOT_STATE(tag) == RSLOT_LISTED ||
		(kill(atomic_load(&sl->pid), 0) < 0 && errno == ESRCH));
}

/*
 * A client killed while it proposed leaves its slot listed, and the
 * port's count above zero, which makes a shared listener look up each
 * plain client's connection instead of comparing counters.  A holder
 * that finds nothing listed for its connection while the count says
 * otherwise reclaims the port's stale slots, once a second at most.
 */
static void slots_sweep(uint16_t port)
{
	struct reg_port *reg = &reg_map[port];
	uint32_t now = now_seconds(), last = atomic_load(&reg->swept);

	if (last == now || !atomic_compare_exchange_strong(&reg->swept, &last, now))
		return;
	for (uint32_t i = 0; i < REG_SLOTS; i++) {
		struct reg_slot *sl = &reg_slots[i];
		uint64_t tag = atomic_load(&sl->tag);

		if (atomic_load(&sl->port) == port && slot_stale(sl, tag, &now) &&
		    atomic_compare_exchange_strong(&sl->tag, &tag, SLOT_TAG(tag >> 2, RSLOT_BUSY))) {
			slot_unlist(sl);
			atomic_store(&sl->tag, SLOT_TAG(tag >> 2, RSLOT_FREE));
		}
	}
}

int reg_slot_take(uint16_t port, uint64_t cookie, uint64_t *tag_out)
{
	uint32_t home = slot_home(cookie), now = 0;

	if (!reg_port(port))
		return -1;
	for (uint32_t i = 0; i < REG_SLOT_PROBE; i++) {
		struct reg_slot *sl = &reg_slots[(home + i) % REG_SLOTS];
		uint64_t tag = atomic_load(&sl->tag), seq = tag >> 2;
		bool stale = SLOT_STATE(tag) != RSLOT_FREE && slot_stale(sl, tag, &now);

		if ((SLOT_STATE(tag) != RSLOT_FREE && !stale) ||
		    !atomic_compare_exchange_strong(&sl->tag, &tag, SLOT_TAG(seq + 1, RSLOT_BUSY)))
			continue;
		if (stale)
			slot_unlist(sl);
		atomic_store(&sl->cookie, cookie);
		atomic_store(&sl->port, port);
		atomic_store(&sl->since, now ? now : now_seconds());
		atomic_store(&sl->pid, usmc_pid());
		/* Counted before listed: a holder that sees no count finds no slot. */
		atomic_fetch_add(&reg_map[port].listed, 1);
		*tag_out = SLOT_TAG(seq + 1, RSLOT_LISTED);
		atomic_store(&sl->tag, *tag_out);
		return (int)((home + i) % REG_SLOTS);
	}
	return -1;
}

bool reg_slot_refused(int slot, uint64_t tag)
{
	return slot >= 0 && atomic_load(&reg_slots[slot].tag) == SLOT_TAG(tag >> 2, RSLOT_REFUSED);
}

bool reg_slot_put(int *slot, uint64_t tag)
{
	uint64_t seq = tag >> 2;
	struct reg_slot *sl;
	bool refused;

	if (*slot < 0)
		return false;
	sl = &reg_slots[*slot];
	*slot = -1;
	refused = !atomic_compare_exchange_strong(&sl->tag, &tag, SLOT_TAG(seq, RSLOT_BUSY));
	/* Reclaimed meanwhile (stale): somebody else's now, and uncounted already. */
	if (refused && (tag != SLOT_TAG(seq, RSLOT_REFUSED) ||
			!atomic_compare_exchange_strong(&sl->tag, &tag, SLOT_TAG(seq, RSLOT_BUSY))))
		return false;
	slot_unlist(sl);
	atomic_store(&sl->tag, SLOT_TAG(seq, RSLOT_FREE));
	return refused;
}

bool reg_slot_refuse(uint16_t port, uint64_t cookie)
{
	uint32_t home = slot_home(cookie);

	if (reg_slots_none(reg_port(port)))
		return false;
	for (uint32_t i = 0; cookie && i < REG_SLOT_PROBE; i++) {
		struct reg_slot *sl = &reg_slots[(home + i) % REG_SLOTS];
		uint64_t tag = atomic_load(&sl->tag);

		/* The tag again after the cookie: the cookie was the one listed with it. */
		if (SLOT_STATE(tag) == RSLOT_LISTED && atomic_load(&sl->cookie) == cookie &&
		    atomic_load(&sl->port) == port &&
		    atomic_compare_exchange_strong(&sl->tag, &tag, SLOT_TAG(tag >> 2, RSLOT_REFUSED)))
			return true;
	}
	slots_sweep(port);
	return false;
}

bool reg_slots_none(struct reg_port *reg)
{
	return !reg || !atomic_load_explicit(&reg->listed, memory_order_acquire);
}

/* ---- holders of a shared listener's queue (usmc_registry.h) ---- */

/* EPERM is a live process of a user it switched to. */
/*
 * Whether the process a registry word names lives.  The registry is every
 * process's of the user to write: a word that names no single process (0
 * or less, which kill() takes for a group or for all) names nobody.
 */
static bool holder_alive(int32_t pid)
{
	return pid > 0 && (kill(pid, 0) == 0 || errno != ESRCH);
}

/* The port's probe window: its first slot's index, and *port its number. */
static uint32_t holder_home(struct reg_port *reg, uint64_t *port)
{
	*port = (uint64_t)(reg - reg_map);
	/* The top bits of a Fibonacci hash: REG_HOLDER_SLOTS is 1 << 10. */
	return (uint32_t)*port * 0x9e3779b9u >> 22;
}

static _Atomic uint64_t *holder_at(uint32_t home, uint32_t i)
{
	return &reg_holders[(home + i % REG_HOLDER_PROBE) % REG_HOLDER_SLOTS];
}

int reg_holder_show(struct reg_port *reg)
{
	uint32_t me = (uint32_t)usmc_pid();
	uint64_t port;
	uint32_t home = holder_home(reg, &port);

	for (int round = 0; round < REG_HOLDER_ROUNDS; round++) {
		for (uint32_t i = 0; i < REG_HOLDER_PROBE; i++) {
			_Atomic uint64_t *at = holder_at(home, i);
			uint64_t v = atomic_load(at);

			/* Our own pid is stale: our looks take turns under usmc_lock. */
			if ((!v || (uint32_t)v == me || !holder_alive((int32_t)(uint32_t)v)) &&
			    atomic_compare_exchange_strong(at, &v, port << 32 | me))
				return (int)i;
		}
		/* Each of them gives its slot up at the end of its look. */
		sched_yield();
	}
	/*
	 * The window filled with live pids by a process of our user that is
	 * no holder: we look unseen, and another holder that misses its
	 * Proposal meanwhile falls back.
	 */
	return -1;
}

void reg_holder_hide(struct reg_port *reg, int slot)
{
	uint64_t port;

	if (slot >= 0)
		atomic_store(holder_at(holder_home(reg, &port), (uint32_t)slot), 0);
}

void reg_holder_holds(struct reg_port *reg, int slot, int q)
{
	uint64_t port;

	if (slot >= 0)
		atomic_store(holder_at(holder_home(reg, &port), (uint32_t)slot),
			     (uint64_t)(q + 1) << 48 | port << 32 | (uint32_t)usmc_pid());
}

bool reg_holders_any(struct reg_port *reg, uint32_t mask)
{
	bool any = false;
	uint64_t port;
	uint32_t home = holder_home(reg, &port);

	for (uint32_t i = 0; i < REG_HOLDER_PROBE; i++) {
		_Atomic uint64_t *at = holder_at(home, i);
		uint64_t v = atomic_load(at);
		uint32_t pid = (uint32_t)v, q = (uint32_t)(v >> 48);

		if (!v || (v >> 32 & 0xffff) != port)
			continue;
		if (pid != (uint32_t)usmc_pid() && !holder_alive((int32_t)pid))
			atomic_compare_exchange_strong(at, &v, 0);
		else if ((mask & REG_Q_LOOKING) || (q && q <= REG_QUEUES && (mask & 1u << (q - 1))))
			any = true;
	}
	return any;
}

static struct reg_row *row_of(struct reg_port *reg)
{
	uint32_t port = (uint32_t)(reg - reg_map);

	return &reg_rows[port * 0x9e3779b9u >> 24];
}

void reg_handed_add(struct reg_port *reg, int q)
{
	atomic_fetch_add(&row_of(reg)->handed[q], 1);
}

uint32_t reg_handed_sum(struct reg_port *reg, uint32_t mask)
{
	struct reg_row *row = row_of(reg);
	uint32_t sum = 0;

	for (int q = 0; q < REG_QUEUES; q++)
		if (mask & 1u << q)
			sum += atomic_load(&row->handed[q]);
	return sum;
}

bool reg_pass_begin(struct reg_port *reg, int q, int64_t deadline_ms)
{
	_Atomic int32_t *pass = &row_of(reg)->pass[q];
	int32_t me = (int32_t)usmc_pid();

	for (int tries = 0;; tries++) {
		int32_t v = atomic_load(pass);

		/* Our own pid is stale: our looks take turns under usmc_lock. */
		if ((!v || v == me || !holder_alive(v)) && atomic_compare_exchange_strong(pass, &v, me))
			return true;
		if (usmc_now_ms() >= deadline_ms)
			return false;
		/*
		 * A pass takes microseconds; one whose holder lost its CPU goes on
		 * when it gets it back, and spinning meanwhile would take a CPU
		 * from it, or from the peer: a few yields, then a millisecond at
		 * a time.
		 */
		if (tries < 16)
			sched_yield();
		else
			usmc_sys.poll(NULL, 0, 1);
	}
}

void reg_pass_end(struct reg_port *reg, int q)
{
	int32_t me = (int32_t)usmc_pid();

	atomic_compare_exchange_strong(&row_of(reg)->pass[q], &me, 0);
}
