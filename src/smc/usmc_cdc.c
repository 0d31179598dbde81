// SPDX-License-Identifier: MIT
/*
 * CDC cursors: validation of what the peer publishes, and the doorbell.
 */
#include "usmc_cdc.h"
#include "usmc_sys.h"

#include <errno.h>
#include <stdbool.h>
#include <sys/socket.h>

void cdc_laps_init(struct cdc_laps *l, uint8_t shift)
{
	*l = (struct cdc_laps){ .shift = shift };
}

void cdc_lap_next(struct cdc_laps *l, uint32_t len, uint8_t shift)
{
	l->cut_len = l->prev_shift && l->prev_len < 1u << l->prev_shift ? l->prev_len : 0;
	l->base += len;
	l->wrap++;
	l->prev_shift = l->shift;
	l->prev_len = len;
	l->shift = shift;
}

/* Whether pos lies in the lap before the current one. */
static bool lap_is_prev(const struct cdc_laps *l, uint64_t pos)
{
	return pos < l->base && l->prev_shift;
}

uint32_t cdc_lap_off(const struct cdc_laps *l, uint64_t pos, uint32_t *room)
{
	uint32_t off, size;

	if (lap_is_prev(l, pos)) {
		size = l->prev_len;
		off = (uint32_t)(pos - (l->base - size));
	} else {
		size = cdc_lap_size(l);
		off = (uint32_t)(pos - l->base);
	}
	*room = off < size ? size - off : 0;
	return off;
}

size_t cdc_lap_piece(const struct cdc_laps *l, uint64_t pos, size_t left, uint32_t *off)
{
	uint32_t room;
	size_t most = CDC_PUBLISH_CHUNK(cdc_lap_size(l));

	*off = cdc_lap_off(l, pos, &room);
	most = most < room ? most : room;
	return left < most ? left : most;
}

uint32_t cdc_lap_capacity(const struct cdc_laps *l, uint64_t pos)
{
	return lap_is_prev(l, pos) ? l->prev_len : cdc_lap_size(l);
}

uint64_t cdc_cursor_from_pos(const struct cdc_laps *l, uint64_t pos)
{
	union cdc_cursor c = { 0 };

	if (lap_is_prev(l, pos)) {
		c.wrap = (uint16_t)(l->wrap - 1);
		c.count = (uint32_t)(pos - (l->base - l->prev_len));
	} else if (pos - l->base == cdc_lap_size(l)) {
		c.wrap = (uint16_t)(l->wrap + 1);
	} else {
		c.wrap = l->wrap;
		c.count = (uint32_t)(pos - l->base);
	}
	return c.acurs;
}

void cdc_lap_lengthen(struct cdc_laps *l, uint8_t shift)
{
	l->shift = shift;
}

/* A lap's shift as the peer published it, for a lap of at least min bytes' shift. */
static bool lap_shift_ok(uint8_t shift, uint8_t min, uint8_t max_shift)
{
	return shift >= CDC_LAP_SHIFT_MIN && shift >= min && shift <= max_shift;
}

int cdc_laps_first(struct cdc_laps *l, const struct cdc_area *peer, uint8_t max_shift)
{
	uint8_t shift = atomic_load_explicit(&peer->lap_shift[0], memory_order_acquire);

	if (!lap_shift_ok(shift, 0, max_shift))
		return -1;
	cdc_laps_init(l, shift);
	return 0;
}

/*
 * Where the wire cursor lies by laps l: in the current lap, or the one
 * before, up to its end if it ended early (a reader that caught up there
 * and has yet to see the next lap).
 */
static int lap_pos(const struct cdc_laps *l, union cdc_cursor c, uint64_t *pos)
{
	if (c.wrap == l->wrap && c.count < cdc_lap_size(l))
		*pos = l->base + c.count;
	else if (c.wrap == (uint16_t)(l->wrap - 1) && l->prev_shift && c.count <= l->prev_len &&
		 c.count < 1u << l->prev_shift)
		*pos = l->base - l->prev_len + c.count;
	else if (l->cut_len && c.wrap == (uint16_t)(l->wrap - 2) && c.count == l->cut_len)
		*pos = l->base - l->prev_len; /* the lap before began where that one ended */
	else
		return -1; /* another lap, or outside its lap */
	return 0;
}

int cdc_prod_advance(struct cdc_laps *l, uint64_t seen, uint64_t cons, uint64_t wire,
		     const struct cdc_area *peer, uint8_t max_shift, uint64_t *pos)
{
	union cdc_cursor c = { .acurs = wire };
	struct cdc_laps n = *l;
	uint64_t next;
	/*
	 * Laps to pass: the next; or this one and the next, at the start of
	 * the one after (the check of cons below holds only if this one
	 * ended where we had read all of it).
	 */
	int laps = c.wrap == (uint16_t)(l->wrap + 1)                 ? 1
		   : c.wrap == (uint16_t)(l->wrap + 2) && !c.count ? 2
								   : 0;

	/* Past the lap we knew, in it or in the next: it may have been lengthened. */
	if ((c.wrap == l->wrap && c.count >= cdc_lap_size(l)) || laps) {
		uint8_t shift = atomic_load_explicit(&peer->lap_shift[l->wrap & 1], memory_order_acquire);

		if (lap_shift_ok(shift, l->shift, max_shift))
			cdc_lap_lengthen(&n, shift);
	}
	for (; laps; laps--) {
		uint8_t shift = atomic_load_explicit(&peer->lap_shift[(uint16_t)(n.wrap + 1) & 1],
						     memory_order_acquire);
		uint32_t len = atomic_load_explicit(&peer->lap_len[n.wrap & 1], memory_order_acquire);

		/* The lap ended within itself, and not before what it gave us. */
		if (!lap_shift_ok(shift, n.shift, max_shift) || !len || len > cdc_lap_size(&n) ||
		    len < seen - n.base)
			return -1;
		cdc_lap_next(&n, len, shift);
	}
	/* Our own position must lie in a lap we know, as an honest writer's does. */
	if (lap_pos(&n, c, &next) < 0 || cons < n.base - n.prev_len)
		return -1;
	if (next < seen || next < cons || next - cons > cdc_lap_capacity(&n, cons))
		return -1; /* runs backwards, or more than the ring ahead of us */
	*l = n;
	*pos = next;
	return 0;
}

int cdc_cons_advance(const struct cdc_laps *l, uint64_t seen, uint64_t wire, uint64_t limit,
		     uint64_t *pos)
{
	union cdc_cursor c = { .acurs = wire };
	uint64_t next;

	if (lap_pos(l, c, &next) < 0 || next < seen || next > limit)
		return -1;
	*pos = next;
	return 0;
}

int cdc_ring(int fd, struct cdc_area *cdc, bool filtered)
{
	static const char bell = CDC_BELL;
	ssize_t n;

	/* Counted first: the peer seeing the byte sees the count. */
	atomic_fetch_add_explicit(&cdc->bells, 1, memory_order_seq_cst);
	n = filtered ? usmc_sys.write(fd, &bell, 1)
		     : usmc_sys.send(fd, &bell, 1, MSG_NOSIGNAL | MSG_DONTWAIT);
	return n < 0 ? -1 : 0;
}

bool cdc_urg_update(struct cdc_urg *u, uint64_t wire, uint64_t cons, uint64_t prod_seen)
{
	if (wire != u->seen) {
		u->seen = wire;
		if (wire > cons) {
			u->mark = wire - 1;
			u->state = CDC_URG_NOTYET;
		}
	}
	if (u->state != CDC_URG_NOTYET || u->mark >= prod_seen)
		return false;
	u->state = CDC_URG_VALID;
	return true;
}

uint64_t cdc_urg_limit(const struct cdc_urg *u, uint64_t *from, uint64_t avail, size_t copied,
		       bool *at_mark, bool *pass)
{
	if (u->state == CDC_URG_NONE || u->mark < *from)
		return avail;
	if (u->mark > *from)
		return u->mark - *from < avail ? u->mark - *from : avail;
	if (copied) {
		*at_mark = true;
		return 0;
	}
	if (u->inline_ || !avail)
		return avail;
	*pass = true;
	(*from)++;
	return avail - 1;
}

int cdc_ring_urgent(int fd, struct cdc_area *cdc)
{
	static const char urgent = CDC_URGENT_BELL;

	atomic_fetch_add_explicit(&cdc->urg_bells, 1, memory_order_seq_cst);
	return usmc_sys.send(fd, &urgent, 1, MSG_OOB | MSG_DONTWAIT | MSG_NOSIGNAL) < 0 ? -1 : 0;
}

void cdc_urgent_taken(int fd)
{
	int saved = errno;
	char c;

	usmc_sys.recv(fd, &c, 1, MSG_OOB | MSG_DONTWAIT);
	errno = saved;
}

bool cdc_all_bells(const char *buf, size_t n, uint32_t *urgent)
{
	*urgent = 0;
	for (size_t i = 0; i < n; i++) {
		if (buf[i] == CDC_URGENT_BELL)
			(*urgent)++;
		else if (buf[i] != CDC_BELL)
			return false;
	}
	return true;
}

enum cdc_tcp_state cdc_drain_bells(int fd, int *err)
{
	char buf[64];

	/* Bounded: a peer flooding the idle TCP stream must not keep us here. */
	for (int i = 0; i < 64; i++) {
		ssize_t n = usmc_sys.recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
		uint32_t urgent;
		int state;

		/* Only doorbells travel on TCP; anything else was not meant for the rings. */
		if (n > 0 && !cdc_all_bells(buf, (size_t)n, &urgent))
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
