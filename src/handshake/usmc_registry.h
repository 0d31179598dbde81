/* SPDX-License-Identifier: MIT */
/*
 * The registry (usmc_registry.c): a small shared file per user and
 * network namespace that tells clients which ports have a usmc listener
 * and counts the Proposals sent to each, so neither a plain server nor a
 * plain client pays for a usmc peer that is not there; and the names of
 * a port's Unix listeners.
 */
#ifndef USMC_REGISTRY_H
#define USMC_REGISTRY_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

/* One registry entry per TCP port. */
/* Processes of one SO_REUSEPORT group that get shared memory: a few. */
#define REG_MEMBERS 4

struct reg_port {
	_Atomic int32_t pid;        /* the usmc process listening, or 0 */
	_Atomic uint32_t proposals; /* Proposals sent toward this port straight to its listener */
	_Atomic uint32_t read;      /* of them, read by the listener or one of its holders */
	_Atomic uint32_t flags;     /* REG_* */
	/* A shared listener's queue (REG_SHARED, usmc_queue.c): */
	_Atomic uint32_t queued;    /* Proposals put into it */
	_Atomic uint32_t settled;   /* Proposals taken out of it and answered */
	/* Proposals on link groups whose client listed them (reg_slot_take), in flight: */
	_Atomic uint32_t listed;
	_Atomic uint32_t swept;     /* when a holder last reclaimed its stale slots, in seconds */
	/* The processes of an SO_REUSEPORT group (REG_REUSEPORT), each its own queue: */
	_Atomic int32_t members[REG_MEMBERS];
};

/*
 * Several processes hold the listener (a prefork server's workers, after
 * fork): whichever accepts a connection must find its Proposal, so each
 * Proposal comes on a channel of its own, into the Unix listener's
 * backlog that all of them share (usmc_queue.c).
 */
#define REG_SHARED 1u
/*
 * A client found the listener's channel full (others fill its backlog):
 * the listener looks at it at its next accept, and clears this once it
 * has taken all it holds.
 */
#define REG_KNOCK 2u
/*
 * The port's listeners are an SO_REUSEPORT group: the kernel gives each
 * connection to one member, so each member has a queue of its own
 * (reg_member_addr) and a client puts its channel into every member's
 * (usmc_queue.c).  Set with REG_SHARED.
 */
#define REG_REUSEPORT 4u

/*
 * A Proposal sent on a link group reaches the one process at its other
 * end.  Once the listener is shared, another holder may accept its
 * connection and can never find it: the client lists the Proposal here
 * by its cookie while it waits for the answer, and that holder marks it
 * refused instead, then wakes the client through the connection itself
 * (usmc_listen.c): both ends fall back at once.  A slot is named by its
 * index and the tag it had when taken, which no later use of it repeats.
 */
/* Lists a Proposal toward port by our TCP socket's cookie: its slot, or -1 if the list is full. */
int reg_slot_take(uint16_t port, uint64_t cookie, uint64_t *tag);
/* Whether a holder refused the listed Proposal. */
bool reg_slot_refused(int slot, uint64_t tag);
/* Takes it off the list (*slot becomes -1): true if a holder refused it, whose wake is on its way. */
bool reg_slot_put(int *slot, uint64_t tag);
/*
 * A holder of port without the Proposal of cookie: true if it was
 * listed, and is now refused.  Cookie 0 (a client of another user): only
 * reclaims the port's stale slots.
 */
bool reg_slot_refuse(uint16_t port, uint64_t cookie);
/* No Proposal toward the port is listed. */
bool reg_slots_none(struct reg_port *reg);

/*
 * A process shows in the registry while it holds entries taken from a
 * port's shared queue (usmc_queue.c), by its pid: one killed meanwhile
 * (the OOM killer, a SIGKILL) holds nothing, where a count would stay up
 * for good and make every later look for a Proposal that is nowhere wait
 * a CLC timeout.  A holder killed but not reaped yet (kill(2) finds a
 * zombie) still shows until its parent reaps it.  A table apart, of a few
 * slots per port's hash: few processes look at once, and each port's
 * entry stays small (the registry is allocated whole, for every user and
 * network namespace).  Under usmc_lock: a process looks at one queue at
 * a time.  The slot taken, for reg_holder_hide, or -1 if the port's
 * slots stay full of live pids.
 */
int reg_holder_show(struct reg_port *reg);
void reg_holder_hide(struct reg_port *reg, int slot);

/*
 * The queues of a shared listener, as a holder's slot and the counts of
 * entries handed back name them: its side queues 0 to 7, its own
 * backlog, and another (the one of other users' clients, the rendezvous
 * directory's).  A mask of them; REG_Q_LOOKING also takes a holder that
 * holds nothing yet.
 */
#define REG_QUEUES 10
#define REG_Q_BACKLOG 8
#define REG_Q_OTHER 9
#define REG_Q_ALL ((1u << REG_QUEUES) - 1)
#define REG_Q_LOOKING (1u << 15)
/*
 * The holder in slot takes entries from queue q, and holds them until
 * it says q -1: set before it takes the first, cleared once it handed
 * the last back (reg_handed_add), so that a look for a Proposal knows
 * which holders may have it in hand.
 */
void reg_holder_holds(struct reg_port *reg, int slot, int q);
/* Whether a process holds entries of a queue of mask now (ours included); the slots of those gone are freed. */
bool reg_holders_any(struct reg_port *reg, uint32_t mask);
/*
 * Entries handed back into queue q (or refused there), counted after the
 * entry is in: the counts are shared by the ports of a hash, a change of
 * another's makes a look look again, never less.
 */
void reg_handed_add(struct reg_port *reg, int q);
/* The sum of the counts of the queues of mask. */
uint32_t reg_handed_sum(struct reg_port *reg, uint32_t mask);
/*
 * A pass through side queue q, one process's at a time: its entries go
 * round it (taken, looked at, put back at its tail) and no other pass
 * can miss one that is in hand meanwhile, so going round needs neither
 * a count nor a show.  A pass whose process is gone is taken over.
 * False if another's pass still goes on at deadline_ms.
 */
bool reg_pass_begin(struct reg_port *reg, int q, int64_t deadline_ms);
void reg_pass_end(struct reg_port *reg, int q);

/* Our network namespace's inode number, unique on the host: 0 if /proc does not say. */
unsigned long usmc_netns_inode(void);

/* The registry entry of a port, or NULL if there is no registry. */
struct reg_port *reg_port(uint16_t port);

/*
 * The Unix address of the channel of a port's listener run by uid; with
 * other_users, the one for clients of the users its policy allows.
 */
socklen_t reg_listener_addr(uid_t uid, uint16_t port, bool other_users, void *sun);
/*
 * Whose registry this process has: its user's when it first looked, kept
 * by a child that changes its user after a fork (a root master's workers,
 * which inherit the mapping).  Its listeners are that user's, and a
 * client looks for them, and checks their names, as that user's.
 */
uid_t reg_owner(void);
/* The Unix name of the queue of member pid of the port's SO_REUSEPORT group. */
socklen_t reg_member_addr(uid_t uid, uint16_t port, int32_t pid, void *sun);

#endif /* USMC_REGISTRY_H */
