// SPDX-License-Identifier: MIT
/*
 * Proposals across namespaces whose connection another listener took.
 *
 * A client in another namespace proposes to the listeners of the port it
 * dials (usmc_rendezvous.c).  A proxy in the server's namespace may get
 * the connection instead: a service mesh's sidecar captures inbound
 * connections with a REDIRECT (iptables or nft) to a port of its own and
 * connects on to the server itself.  The Proposal then waits in a backlog
 * whose reader never accepts its connection, and its client, with what it
 * wrote in its ring, waits a CLC timeout before it takes it back.  Where
 * the proxy is a usmc process of the client's user, it ends that wait:
 *
 * - The client lists its connection here once its connect() gave its
 *   socket an address and port: that address and port, the address and
 *   port it dialled, and its socket's cookie.
 * - The proxy, accepting a connection from another namespace with no
 *   Proposal of its own, learns from conntrack what the client dialled
 *   (SO_ORIGINAL_DST: the redirect was made in the proxy's namespace,
 *   whose conntrack made it), leaves a note of both ends, then looks for
 *   them in the list.  An entry it finds it marks refused, and it writes
 *   the client's cookie into the connection: the marker, which wakes the
 *   client and which it reads before its program does (usmc_settle.c).
 * - The client looks for a note after it listed.  List then look on one
 *   side, note then look on the other, each with a full fence between:
 *   one of the two sees the other.  A client that finds a note takes its
 *   Proposal back at once, and no marker comes unless its entry was
 *   refused too.
 * Either way both ends are TCP at once (USMC_DECL_REDIRECTED).  The
 * proxy also lists the redirect that gave it the connection
 * (rdv_redirect_set): the clients after it propose to the proxy itself.
 *
 * The marker goes only to a connection listed by a live client of our
 * user with both its ends: the one connection of that 4-tuple.  A client
 * of another user, a proxy that is not usmc's, and a destination NAT in
 * another namespace than the proxy's (no SO_ORIGINAL_DST there) still
 * cost the client a CLC timeout.  The file is the user's, mapped as the
 * registry is (usmc_shared_file.c), in the rendezvous directory: the
 * client's and the proxy's namespaces both see it.  Its times are
 * CLOCK_MONOTONIC's, one clock for the host's namespaces (not for a time
 * namespace that moves it: there entries look older or younger).
 */
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "usmc_addr.h"
#include "usmc_config.h"
#include "usmc_core.h"
#include "usmc_policy.h"
#include "usmc_proc.h"
#include "usmc_rendezvous.h"
#include "usmc_rendezvous_nat.h"
#include "usmc_rendezvous_taken.h"
#include "usmc_shared_file.h"
#include "usmc_sys.h"

/* linux/netfilter_ipv4.h and linux/netfilter_ipv6/ip6_tables.h: the same number. */
#define ORIGINAL_DST 80

#define TAKEN_SLOTS 1024
#define TAKEN_PROBE 16
#define TAKEN_NOTES 1024
#define TAKEN_NOTE_PROBE 4
/* Clients dialled a namespace of this host this recently: proxies look (rdv_taken_active). */
#define TAKEN_ACTIVE_MS 10000
/* An entry this old may be reclaimed (slot_stale). */
#define TAKEN_STALE_MS 60000

enum { TSLOT_FREE, TSLOT_BUSY, TSLOT_LISTED, TSLOT_REFUSED };
#define TSLOT_STATE(tag) ((tag) & 3u)
#define TSLOT_TAG(seq, state) (((seq) << 2) | (state))

/* Both ends of a connection: the client's address and the one it dialled, their ports. */
#define KEY_WORDS 5
struct taken_key {
	uint64_t w[KEY_WORDS];
};

struct taken_slot {
	_Atomic uint64_t tag;  /* a sequence number above the state, as the registry's slots */
	_Atomic uint64_t cookie;
	_Atomic int64_t since; /* ms, usmc_now_ms */
	_Atomic uint64_t pidns;
	_Atomic int32_t pid;
	uint32_t pad;
	_Atomic uint64_t key[KEY_WORDS];
};

struct taken_note {
	_Atomic uint64_t seq;  /* odd while it is written */
	_Atomic int64_t at;    /* ms */
	_Atomic uint64_t key[KEY_WORDS];
};

struct taken_file {
	_Atomic int64_t active_until; /* ms */
	uint64_t pad[7];
	struct taken_slot slot[TAKEN_SLOTS];
	struct taken_note note[TAKEN_NOTES];
};

static struct taken_file *taken;
static uint64_t taken_pidns;
static pthread_once_t taken_once = PTHREAD_ONCE_INIT;
static _Atomic bool taken_done;

static void taken_open(void)
{
	const struct rdv_nat *nat;
	char path[RDV_DIR_MAX + 32];
	struct stat st;

	if (!rdv_enabled())
		return;
	snprintf(path, sizeof(path), "%s/usmc-taken-%u", rdv_dir(&nat), (unsigned)getuid());
	taken = usmc_shared_file_map(path, sizeof(*taken), getuid());
	taken_pidns = stat("/proc/self/ns/pid", &st) == 0 ? (uint64_t)st.st_ino : 0;
}

static struct taken_file *taken_file(void)
{
	usmc_once(&taken_once, &taken_done, taken_open);
	return taken;
}

static void key_make(struct taken_key *k, const uint8_t from[16], uint16_t from_port,
		     const uint8_t to[16], uint16_t to_port)
{
	memcpy(&k->w[0], from, 16);
	memcpy(&k->w[2], to, 16);
	k->w[4] = (uint64_t)from_port << 16 | to_port;
}

static uint32_t key_home(const struct taken_key *k, uint32_t n)
{
	uint64_t h = 0;

	for (int i = 0; i < KEY_WORDS; i++)
		h = (h ^ k->w[i]) * 0x9e3779b97f4a7c15ull;
	return (uint32_t)(h >> 40) % n;
}

static bool key_is(_Atomic uint64_t *w, const struct taken_key *k)
{
	for (int i = 0; i < KEY_WORDS; i++)
		if (atomic_load_explicit(&w[i], memory_order_relaxed) != k->w[i])
			return false;
	return true;
}

static void key_store(_Atomic uint64_t *w, const struct taken_key *k)
{
	for (int i = 0; i < KEY_WORDS; i++)
		atomic_store_explicit(&w[i], k->w[i], memory_order_relaxed);
}

void rdv_taken_active(void)
{
	struct taken_file *t = taken_file();
	int64_t now;

	if (!t)
		return;
	/* Written seldom: every client of the user crossing namespaces writes the same line. */
	now = usmc_now_ms();
	if (atomic_load_explicit(&t->active_until, memory_order_relaxed) < now + TAKEN_ACTIVE_MS / 2)
		atomic_store(&t->active_until, now + TAKEN_ACTIVE_MS);
}

/*
 * Whether the client of an entry may still wait for its answer: alive
 * where its pid means something here, else listed within a few CLC
 * timeouts (a client killed meanwhile in another pid namespace).
 */
static bool slot_live(struct taken_slot *sl, int64_t now)
{
	int64_t age = now - atomic_load(&sl->since);

	if (atomic_load(&sl->pidns) == taken_pidns && taken_pidns)
		return age < TAKEN_STALE_MS && (kill(atomic_load(&sl->pid), 0) == 0 || errno != ESRCH);
	return age < 4 * (int64_t)usmc_clc_timeout_ms();
}

/*
 * An entry taken so long ago that it is reclaimed.  A listed one: its
 * client died, or never looked again, and loses nothing but the
 * proxy's refusal.  A refused one only once its client is gone for
 * certain (its pid, in our pid namespace): a client that looks later
 * reads the marker out of its stream only if its entry still says
 * refused, and would give the eight bytes to its program otherwise.
 */
static bool slot_stale(struct taken_slot *sl, uint64_t tag, int64_t now)
{
	if (TSLOT_STATE(tag) != TSLOT_LISTED && TSLOT_STATE(tag) != TSLOT_REFUSED)
		return false;
	if (now - atomic_load(&sl->since) <= TAKEN_STALE_MS)
		return false;
	return TSLOT_STATE(tag) == TSLOT_LISTED ||
	       (taken_pidns && atomic_load(&sl->pidns) == taken_pidns &&
		kill(atomic_load(&sl->pid), 0) < 0 && errno == ESRCH);
}

/* A note of the key written within a CLC timeout. */
static bool noted(struct taken_file *t, const struct taken_key *k, int64_t now)
{
	uint32_t home = key_home(k, TAKEN_NOTES);

	for (uint32_t i = 0; i < TAKEN_NOTE_PROBE; i++) {
		struct taken_note *n = &t->note[(home + i) % TAKEN_NOTES];
		uint64_t seq = atomic_load(&n->seq);
		bool same = !(seq & 1) && key_is(n->key, k) &&
			    now - atomic_load(&n->at) < usmc_clc_timeout_ms();

		/* The note was not rewritten while we read it. */
		if (same && atomic_load(&n->seq) == seq)
			return true;
	}
	return false;
}

/* Writes a note of the key over the oldest at its place. */
static void note(struct taken_file *t, const struct taken_key *k, int64_t now)
{
	uint32_t home = key_home(k, TAKEN_NOTES), pick = home;
	int64_t oldest = INT64_MAX;
	struct taken_note *n;
	uint64_t seq;

	for (uint32_t i = 0; i < TAKEN_NOTE_PROBE; i++) {
		int64_t at = atomic_load(&t->note[(home + i) % TAKEN_NOTES].at);

		if (at < oldest) {
			oldest = at;
			pick = (home + i) % TAKEN_NOTES;
		}
	}
	n = &t->note[pick];
	seq = atomic_load(&n->seq);
	/* Another proxy writes it now: this note is lost, and its client waits as before. */
	if ((seq & 1) || !atomic_compare_exchange_strong(&n->seq, &seq, seq + 1))
		return;
	key_store(n->key, k);
	atomic_store(&n->at, now);
	atomic_store(&n->seq, seq + 2);
}

int rdv_taken_list(const struct sockaddr *local, const struct sockaddr *dialled, uint64_t cookie,
		   uint64_t *tag_out, bool *was_noted)
{
	struct taken_file *t = taken_file();
	uint8_t from[16], to[16];
	uint16_t from_port, to_port;
	struct taken_key k;
	int64_t now;
	int slot = -1;

	*was_noted = false;
	if (!t || !usmc_addr16(local, from, &from_port) || !usmc_addr16(dialled, to, &to_port))
		return -1;
	key_make(&k, from, from_port, to, to_port);
	now = usmc_now_ms();
	for (uint32_t i = 0, home = key_home(&k, TAKEN_SLOTS); i < TAKEN_PROBE && slot < 0; i++) {
		struct taken_slot *sl = &t->slot[(home + i) % TAKEN_SLOTS];
		uint64_t tag = atomic_load(&sl->tag), seq = tag >> 2;
		bool stale = slot_stale(sl, tag, now);

		if ((TSLOT_STATE(tag) != TSLOT_FREE && !stale) ||
		    !atomic_compare_exchange_strong(&sl->tag, &tag, TSLOT_TAG(seq + 1, TSLOT_BUSY)))
			continue;
		atomic_store(&sl->cookie, cookie);
		atomic_store(&sl->since, now);
		atomic_store(&sl->pidns, taken_pidns);
		atomic_store(&sl->pid, usmc_pid());
		key_store(sl->key, &k);
		*tag_out = TSLOT_TAG(seq + 1, TSLOT_LISTED);
		atomic_store(&sl->tag, *tag_out);
		slot = (int)((home + i) % TAKEN_SLOTS);
	}
	/* Listed, then a look at the notes: see the top of this file. */
	atomic_thread_fence(memory_order_seq_cst);
	*was_noted = noted(t, &k, now);
	return slot;
}

bool rdv_taken_refused(int slot, uint64_t tag)
{
	return slot >= 0 && taken &&
	       atomic_load(&taken->slot[slot].tag) == TSLOT_TAG(tag >> 2, TSLOT_REFUSED);
}

bool rdv_taken_put(int *slot, uint64_t tag)
{
	uint64_t seq = tag >> 2;
	struct taken_slot *sl;
	bool refused;

	if (*slot < 0 || !taken)
		return false;
	sl = &taken->slot[*slot];
	*slot = -1;
	refused = !atomic_compare_exchange_strong(&sl->tag, &tag, TSLOT_TAG(seq, TSLOT_FREE));
	/* Reclaimed meanwhile (stale): somebody else's now. */
	if (refused && (tag != TSLOT_TAG(seq, TSLOT_REFUSED) ||
			!atomic_compare_exchange_strong(&sl->tag, &tag, TSLOT_TAG(seq, TSLOT_FREE))))
		return false;
	return refused;
}

/* What the client dialled, as conntrack saw it before the redirect. */
static bool original_dst(int fd, int family, struct sockaddr_storage *ss)
{
	socklen_t len = family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);

	return usmc_sys.getsockopt(fd, family == AF_INET ? SOL_IP : SOL_IPV6, ORIGINAL_DST, ss,
				   &len) == 0;
}

uint64_t rdv_taken_refuse(int fd, const struct sockaddr *peer, uint16_t lport)
{
	struct taken_file *t = taken_file();
	struct sockaddr_storage orig;
	uint8_t from[16], to[16];
	uint16_t from_port, to_port;
	struct taken_key k;
	int64_t now;
	int family;

	/*
	 * No client of our user dialled a namespace of this host lately: a
	 * client of another host's costs no system call here.
	 */
	if (!t || (now = usmc_now_ms()) >= atomic_load(&t->active_until))
		return 0;
	/* An IPv6 socket's IPv4 peer came through IPv4's conntrack. */
	family = usmc_addr_plain(peer, from, &from_port);
	if (!family || !original_dst(fd, family, &orig) || !usmc_addr16(peer, from, &from_port) ||
	    !usmc_addr16((struct sockaddr *)&orig, to, &to_port))
		return 0;
	/*
	 * A redirect here gave us a connection dialled to another port of
	 * ours: clients to come propose to us, also those who found no
	 * listener of theirs on the port they dial (a connection to it that
	 * came straight says the redirect is gone).  Not a destination NAT of
	 * an address not ours, which clients dialling ours do not pass.
	 */
	if (usmc_addr_is_local((struct sockaddr *)&orig))
		rdv_redirect_set(to_port, lport);
	key_make(&k, from, from_port, to, to_port);
	note(t, &k, now);
	/* Noted, then a look at the list: see the top of this file. */
	atomic_thread_fence(memory_order_seq_cst);
	for (uint32_t i = 0, home = key_home(&k, TAKEN_SLOTS); i < TAKEN_PROBE; i++) {
		struct taken_slot *sl = &t->slot[(home + i) % TAKEN_SLOTS];
		uint64_t tag = atomic_load(&sl->tag), cookie;

		if (TSLOT_STATE(tag) != TSLOT_LISTED || !key_is(sl->key, &k))
			continue;
		cookie = atomic_load(&sl->cookie);
		/* The tag again after the key and cookie: they were the ones listed with it. */
		if (slot_live(sl, now) &&
		    atomic_compare_exchange_strong(&sl->tag, &tag, TSLOT_TAG(tag >> 2, TSLOT_REFUSED)))
			return cookie;
		return 0;
	}
	return 0;
}
