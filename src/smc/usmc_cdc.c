// SPDX-License-Identifier: MIT
/*
 * CDC cursors: validation of what the peer publishes, and the doorbell.
 */
#include "usmc_cdc.h"
#include "usmc_sys.h"

#include <errno.h>
#include <stdbool.h>
#include <sys/socket.h>

uint64_t cdc_cursor_from_pos(uint32_t size, uint64_t pos)
{
	union cdc_cursor c = { 0 };

	c.wrap = (uint16_t)(pos / size);
	c.count = (uint32_t)(pos % size);
	return c.acurs;
}

int cdc_cursor_advance(uint32_t size, uint64_t seen, uint64_t wire, uint64_t limit,
		       uint64_t *pos)
{
	union cdc_cursor c = { .acurs = wire };
	uint16_t seen_wrap = (uint16_t)(seen / size);
	uint32_t seen_count = (uint32_t)(seen % size);
	uint64_t next;

	if (c.count >= size)
		return -1;
	if (c.wrap == seen_wrap) {
		if (c.count < seen_count)
			return -1; /* runs backwards */
		next = seen + (c.count - seen_count);
	} else if (c.wrap == (uint16_t)(seen_wrap + 1)) {
		if (c.count > seen_count)
			return -1; /* more than one ring ahead */
		next = seen + (size - seen_count) + c.count;
	} else {
		return -1; /* the wrap count jumped */
	}
	if (next > limit)
		return -1;
	*pos = next;
	return 0;
}

int cdc_ring(int fd, struct cdc_area *cdc)
{
	static const char bell = 1;
	ssize_t n;

	/* Counted first: the peer seeing the byte sees the count. */
	atomic_fetch_add_explicit(&cdc->bells, 1, memory_order_seq_cst);
	n = usmc_sys.write(fd, &bell, 1);
	return n < 0 ? -1 : 0;
}

bool cdc_all_bells(const char *buf, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (buf[i] != 1)
			return false;
	return true;
}

enum cdc_tcp_state cdc_drain_bells(int fd, int *err)
{
	char buf[64];

	/* Bounded: a peer flooding the idle TCP stream must not keep us here. */
	for (int i = 0; i < 64; i++) {
		ssize_t n = usmc_sys.recv(fd, buf, sizeof(buf), MSG_DONTWAIT);

		int state;

		/* Only doorbells travel on TCP; anything else was not meant for the rings. */
		if (n > 0 && !cdc_all_bells(buf, (size_t)n))
			return CDC_TCP_ALIEN;
		if (n > 0 || (state = cdc_read_end(n, err)) < 0)
			continue;
		return (enum cdc_tcp_state)state;
	}
	return CDC_TCP_OPEN;
}

int cdc_read_end(ssize_t n, int *err)
{
	if (n == 0)
		return CDC_TCP_EOF;
	if (errno == EINTR)
		return -1;
	if (errno == EAGAIN || errno == EWOULDBLOCK)
		return CDC_TCP_OPEN;
	*err = errno;
	return CDC_TCP_RESET;
}
