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
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>

struct usmc_lgr;

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

/*
 * Puts channel ch into the backlog of the Unix listener at sun, on a
 * carrier: 0, or why not.  counted: its client counted its Proposal in
 * the registry (queued).  The listener must be uid's, which *cred, from
 * SO_PEERCRED, then names: abstract names are anyone's to take, and in a
 * user namespace an unmapped user shows as the overflow uid.  A client
 * passes its link group as keep: the carrier stays open there until its
 * Proposal is answered (lgr_carriers_close), since a Unix socket closed
 * while a channel is in flight costs a wake-up of the kernel's garbage
 * collector (usmc_queue.c).  A holder passes NULL.
 */
uint32_t af_carrier_send(const struct sockaddr_un *sun, socklen_t sun_len, uid_t uid, int ch,
			 bool counted, struct ucred *cred, struct usmc_lgr *keep);
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
/* Whether side queue side holds no entry; needs no descriptor. */
bool af_side_empty(int side);
/* Whether fd is one, as a state handed over across exec claims. */
bool af_side_is(int fd);

#endif /* USMC_QUEUE_SIDE_H */
