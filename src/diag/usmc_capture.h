/* SPDX-License-Identifier: MIT */
/*
 * A packet capture of what moves through shared memory.
 *
 * Shared memory carries no packets, so tcpdump on lo sees only the
 * doorbells.  With USMC_CAPTURE=FILE a process writes the data of its
 * shared-memory connections to FILE as pcapng, one synthetic TCP segment
 * (IPv4 or IPv6, raw IP link type) per chunk copied, with the
 * connection's real addresses and ports and sequence numbers taken from
 * the CDC cursors, both directions: tcpdump -r and wireshark read it.
 *
 *     USMC_CAPTURE=/tmp/usmc-%p.pcapng   %p: the process id (several processes)
 *     USMC_CAPTURE_PORT=8080             only connections with this port at either end
 *
 * Off, it costs the data path one predictable branch per copy.
 */
#ifndef USMC_CAPTURE_H
#define USMC_CAPTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

extern bool usmc_capture_on;

/* Reads USMC_CAPTURE; called once with the configuration. */
void usmc_capture_init(void);

/*
 * The bytes iov holds from skip on, len of them, that fd sent (sent) or
 * received at stream position pos (the cursor before they were copied).
 */
void usmc_capture(int fd, bool sent, uint64_t pos, const struct iovec *iov, int iovcnt,
		  size_t skip, size_t len);

#endif /* USMC_CAPTURE_H */
