/* SPDX-License-Identifier: MIT */
/*
 * How an entry of a shared listener's backlog travels (usmc_queue_side.c):
 * one message, a tag and the channel, on a carrier into the backlog or
 * into the listener's side queue, where a holder puts an entry that is not
 * its own for the holder that accepted its connection to find at once.
 */
#ifndef USMC_QUEUE_SIDE_H
#define USMC_QUEUE_SIDE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Bytes of an entry's tag. */
#define ENTRY_TAG_LEN 8

/* Whether buf, of n bytes, is an entry's tag; *counted as its sender said. */
bool af_entry_tagged(const void *buf, size_t n, bool *counted);
/*
 * Sends channel ch on fd, with whether its client counted its Proposal in
 * the registry (queued): true if sent, without waiting.
 */
bool af_entry_send(int fd, int ch, bool counted);
/*
 * The channel of the next entry on fd, *counted as it was sent; or -1,
 * with errno EAGAIN if none is there, or EBADMSG if what came was not an
 * entry (dropped).  Anyone may send a carrier: what comes is checked, a
 * seqpacket socket.
 */
int af_entry_recv(int fd, bool *counted);

/* A listener's side queues: an entry goes to one by its Proposal's cookie. */
#define SIDE_QUEUES 8

static inline unsigned af_side_of(uint64_t cookie)
{
	/* Socket cookies count up: a multiplicative hash spreads them. */
	return (unsigned)((cookie * 0x9e3779b97f4a7c15ull) >> 61) % SIDE_QUEUES;
}

/*
 * A listener's new side queues into side: true, or false with none made
 * (each -1: the holders then put entries back into the backlog).
 */
bool af_side_open(int side[SIDE_QUEUES]);
/* Whether fd is one, as a state handed over across exec claims. */
bool af_side_is(int fd);

#endif /* USMC_QUEUE_SIDE_H */
