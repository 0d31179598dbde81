/* SPDX-License-Identifier: MIT */
/*
 * CDC: connection data control (RFC 7609, 3.6).
 *
 * Each side of a connection owns one ring, the data it sends, in a slot of
 * its own segment; the peer maps that segment read-only.  The slot starts
 * with the owner's CDC area: its producer cursor into this ring, its
 * consumer cursor of the peer's ring, its connection state flags and its
 * wait sequence numbers.  So each side writes only its own memory, and
 * reads the peer's as untrusted input: every cursor is validated against
 * what the reader already knows before any byte is trusted.
 *
 * Cursors are SMC's: a wrap count and a byte offset in the ring, published
 * as one 64-bit atomic.  Locally usmc keeps monotonic 64-bit positions and
 * converts at the boundary.
 *
 * Laps: a ring's data need not use all of its slot.  Its writer starts it
 * small and, like TCP's autotuning of a send buffer, may give it more of
 * the slot, never less: lap w is the first 2^shift bytes of the slot, and
 * the cursor (w, count) names byte count of lap w, as RFC 7609's (wrap,
 * count) does of a ring of one size.  The writer publishes each lap's
 * shift (lap_shift[w & 1]) before any cursor of that lap; it can be at
 * most one lap ahead of its reader, so two entries suffice.  A writer
 * whose reader is still in the writer's lap may lengthen that lap, up to
 * the slot: the bytes past the old end were never part of it, so it has
 * room at once, even while its reader has read nothing of the lap.  It
 * publishes the longer shift before a cursor past the old end, and the
 * reader takes it when a cursor of its lap says more than the lap it
 * knew, or a cursor of the next lap says the lap has ended.
 *
 * A lap may also end early, where its reader caught up: a writer about to
 * go on into a part of the lap it has not written lately, and whose
 * reader has read all of it, begins the next lap at the slot's start
 * instead, as TCP's next segment takes a buffer the last one freed.  So a
 * connection that carries a request and its response at a time keeps
 * writing the same few cache lines and pages, however long it lives,
 * where a walk through the whole lap would bring every line and page of
 * it through the caches and the page tables.  Every lap's length, its size
 * or less, is published (lap_len[w & 1]) before the first cursor of the
 * lap after it.
 *
 * Doorbell: when one side waits, it bumps want_data or want_space in its
 * CDC area and sleeps on the kernel TCP socket.  The other side, after
 * publishing a cursor, sees the bump, counts the doorbell in its CDC area
 * (bells) and then writes one byte over the otherwise idle TCP
 * connection.  So the descriptor is readable when there may be something
 * to do, and the receiver knows how many bytes of its TCP stream are
 * doorbells: any byte past that count is no doorbell, and fails the
 * connection instead of being dropped.  usmc_wake.c has the protocol.
 */
#ifndef USMC_CDC_H
#define USMC_CDC_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>

/* Bytes before an RMB's data: the CDC area and room to grow. */
#define CDC_SLOT_HDR 256

/* Large copies publish their cursor every so many bytes (a quarter ring). */
#define CDC_PUBLISH_CHUNK(size) ((size) / 4)

/* Connection state flags (SMC's conn_state_flags). */
#define CDC_PEER_DONE_WRITING 0x1u /* shutdown(SHUT_WR): EOF after the data */
#define CDC_PEER_CONN_CLOSED  0x2u /* the peer closed its socket */
#define CDC_PEER_CONN_ABORT   0x4u /* the peer reset the connection */
/*
 * A client waits for the answer to its Proposal in a call that watches the
 * channel the answer comes on, or is inside its connect(), which looks at
 * the channel before it returns: the server rings no doorbell after its
 * Accept (a wait on TCP alone, a kernel epoll set, needs one).
 */
#define CDC_PEER_WATCHES_CHANNEL 0x8u
/*
 * And that call reads, or reports POLLIN from, our ring once it has the
 * Accept: the server's first data needs no doorbell while this is set
 * (usmc_tx.c).  Cleared before the call looks at the ring, or gives up.
 */
#define CDC_PEER_READS_AFTER_ACCEPT 0x10u
/*
 * The owner's process exits, and was the connection's last holder: the
 * kernel closes its TCP socket next, without usmc.  What it still writes
 * until then comes as ever.  The peer writes on TCP from now on, as to a
 * peer that closed, and rings no more: its data meets the closing socket
 * as TCP's would (the end, then a reset that fails the next write), and
 * is never counted as left unread in our ring (usmc_wake.c).
 */
#define CDC_PEER_EXITING 0x20u

/*
 * A client's end of its TCP connection, for a server that accepts once the
 * client's socket is gone (closed or killed before the answer, its
 * FIN_WAIT2 over): written once, before the first byte the client writes
 * ahead of the answer (af_publish_end), in usmc_addr16's form (IPv4
 * v4-mapped, port in host order).
 */
struct cdc_tuple {
	uint8_t addr[16];
	uint16_t port;
	uint8_t set; /* 1 once published */
};

/* Whether t, a copy of the peer's, was published and names addr and port. */
static inline bool cdc_tuple_is(const struct cdc_tuple *t, const uint8_t addr[16], uint16_t port)
{
	return t->set == 1 && t->port == port && !memcmp(t->addr, addr, sizeof(t->addr));
}

union cdc_cursor {
	struct {
		uint16_t reserved;
		uint16_t wrap;
		uint32_t count;
	};
	uint64_t acurs;
};

/*
 * Written by the slot's owner, read by its peer.  The cursors move with
 * every write and read; the rest only when the owner waits or closes.
 * Each group has its own pair of cache lines (the spatial prefetcher
 * fetches lines in pairs), so that a writer checking want_data after each
 * write, or a reader checking want_space, keeps a line the other side does
 * not dirty at every step.
 */
struct cdc_area {
	_Alignas(128) _Atomic uint64_t prod; /* owner's producer cursor in this ring */
	_Atomic uint64_t cons;       /* owner's consumer cursor in the peer's ring */
	_Alignas(128) _Atomic uint32_t flags; /* CDC_PEER_*, as the peer will read them */
	_Atomic uint32_t want_data;  /* bumped while the owner waits for data */
	_Atomic uint32_t want_space; /* bumped while the owner waits for room */
	_Atomic uint32_t gen;        /* bumped each time the slot is reused */
	_Atomic uint32_t bells;      /* doorbells sent, each counted before its byte */
	_Atomic uint32_t bells_read; /* the peer's doorbells read from the TCP socket */
	_Atomic uint8_t lap_shift[2]; /* lap w of this ring is 1 << lap_shift[w & 1] bytes */
	_Atomic uint32_t lap_len[2];  /* lap w ended after lap_len[w & 1] bytes, its size or fewer */
	struct cdc_tuple orphan;     /* the owner's TCP end, once it closed before the answer */
	/*
	 * Urgent data (MSG_OOB), as SMC's urg_data_present: the position just
	 * past the owner's last urgent byte in this ring, or 0.  Published
	 * before the producer cursor that covers the byte, so a reader that
	 * has the byte knows it is urgent.
	 */
	_Alignas(8) _Atomic uint64_t urg;
	_Atomic uint32_t urg_bells;  /* TCP urgent bytes sent (cdc_ring_urgent), each counted first */
};

/*
 * Doorbells sent that the peer has yet to read, past which a side stops
 * ringing: an honest peer reads them at its next wait, so only one that
 * breaks the protocol gets there, and a blocking write() of a doorbell
 * never finds the send queue full.
 */
#define CDC_BELLS_OUTSTANDING_MAX 256u

_Static_assert(sizeof(struct cdc_area) <= CDC_SLOT_HDR, "CDC area fits its slot header");

/* The laps of one ring that a side's positions are in (kept by each side). */
struct cdc_laps {
	uint64_t base;      /* the position at which lap wrap begins */
	uint16_t wrap;      /* the current lap's wrap count */
	uint8_t shift;      /* the current lap is 1 << shift bytes */
	uint8_t prev_shift; /* the lap before, which ends at base; 0: none */
	uint32_t prev_len;  /* its length: 1 << prev_shift, or fewer if it ended early */
	/*
	 * The length of the lap before that one, if it ended early, else 0:
	 * a reader that caught up at that end, and has not looked since, still
	 * names it so (wrap - 2, its length) while we have filled the lap after.
	 */
	uint32_t cut_len;
};

static inline uint32_t cdc_lap_size(const struct cdc_laps *l)
{
	return 1u << l->shift;
}

/* The first lap, of 1 << shift bytes. */
void cdc_laps_init(struct cdc_laps *l, uint8_t shift);
/*
 * The peer's first lap, as it published it when it took the ring: 0, or
 * -1 if the ring mapped (1 << max_shift bytes) cannot hold it.
 */
int cdc_laps_first(struct cdc_laps *l, const struct cdc_area *peer, uint8_t max_shift);
/*
 * The current lap ends after len bytes (its size, or fewer where its
 * reader caught up) and the next, of 1 << shift bytes (never fewer than
 * this one's), begins there.
 */
void cdc_lap_next(struct cdc_laps *l, uint32_t len, uint8_t shift);
/* The current lap goes on to 1 << shift bytes (a writer's, only while its reader is in it). */
void cdc_lap_lengthen(struct cdc_laps *l, uint8_t shift);

/*
 * Where position pos (in the current lap or the one before) lies in the
 * ring, and in *room how many bytes of its lap follow it.
 */
uint32_t cdc_lap_off(const struct cdc_laps *l, uint64_t pos, uint32_t *room);

/*
 * The next piece of a copy of left bytes at position pos: its offset in
 * *off, and its length, up to its lap's end and to a publishing chunk, so
 * that the other side works on what came before while we copy the rest.
 * 0 only if pos lies in no lap we know.
 */
size_t cdc_lap_piece(const struct cdc_laps *l, uint64_t pos, size_t left, uint32_t *off);

/*
 * How many bytes the ring can hold unread from position pos of a reader
 * on: the length of pos's lap, since a writer in the next lap reaches no
 * byte past the reader's offset before the reader has left that lap.
 */
uint32_t cdc_lap_capacity(const struct cdc_laps *l, uint64_t pos);

/* The wire cursor of a position in the current lap, the one before, or at the lap's end. */
uint64_t cdc_cursor_from_pos(const struct cdc_laps *l, uint64_t pos);

/*
 * Moves the position of the peer's producer cursor forward to what it
 * published, wire; l, the laps of the peer's ring as we know them, moves
 * on with it (a lap lengthened, the next lap) by the shifts in the peer's
 * CDC area.  seen is the last position accepted, cons our consumer
 * position: the producer may be at most its lap's capacity ahead of it.
 * A shift below CDC_LAP_SHIFT_MIN, above max_shift (the ring mapped) or
 * shorter than the lap it follows is none.
 *
 * The next lap begins where the peer's lap_len says the current one
 * ended: at most its size, and never before what we accepted of it.  A
 * lap that ended early where we had read all of it, and the next, which
 * the writer filled before we looked, come as a cursor at the start of
 * the lap after them.
 *
 * On success *pos gets the new position, with seen <= *pos, and 0 is
 * returned.  A cursor that runs backwards, names another lap, points
 * outside its lap or passes the limit returns -1: the peer is misbehaving
 * and the connection must be aborted.
 */
int cdc_prod_advance(struct cdc_laps *l, uint64_t seen, uint64_t cons, uint64_t wire,
		     const struct cdc_area *peer, uint8_t max_shift, uint64_t *pos);

/*
 * The same for the peer's consumer cursor of our ring, whose laps l are
 * ours: in the current lap or the one before, seen <= *pos <= limit (our
 * producer position).
 */
int cdc_cons_advance(const struct cdc_laps *l, uint64_t seen, uint64_t wire, uint64_t limit,
		     uint64_t *pos);

/* The smallest lap a peer may publish: 16 KiB, CLC's smallest ring. */
#define CDC_LAP_SHIFT_MIN 14

/*
 * Counts one doorbell in cdc (ours) and writes its byte to the TCP socket:
 * send(MSG_NOSIGNAL), which raises no SIGPIPE on a socket the peer's
 * reset ended; under a seccomp filter (filtered) write(), which sandboxes
 * that refuse send() allow, and there the caller makes sure a write cannot
 * raise SIGPIPE.  Never blocks: a full send queue already holds bells the
 * peer has yet to drain.  0, or -1 with errno.
 */
int cdc_ring(int fd, struct cdc_area *cdc, bool filtered);

/*
 * Counts one urgent doorbell in cdc (ours) and sends it as TCP's urgent
 * byte, for an urgent write in shared memory whose mark cdc_area.urg
 * holds: the peer's kernel raises SIGURG and POLLPRI for it, as for TCP's
 * own, and mostly keeps it out of its stream.  One that a later one
 * overtook before its reader came to it stays in the stream, as TCP's
 * does, and so does every one once the kernel socket had SO_OOBINLINE
 * before shared memory: a byte of its own value, CDC_URGENT_BELL, that
 * the reader of doorbells counts apart.  0, or -1 with errno.
 */
int cdc_ring_urgent(int fd, struct cdc_area *cdc);
/* Takes TCP's urgent byte that cdc_ring_urgent sent, if it came: its mark is read. */
void cdc_urgent_taken(int fd);

/* What draining the doorbells found out about the TCP connection. */
enum cdc_tcp_state {
	CDC_TCP_OPEN = 0,
	CDC_TCP_EOF,   /* the peer's TCP socket is closed */
	CDC_TCP_RESET, /* reset or another error: see *err */
	CDC_TCP_ALIEN, /* bytes that are no doorbell: the peer broke the protocol */
};

/*
 * Urgent data, as the reader keeps it (TCP's urg_data and urg_seq; net/smc's
 * urg_state and urg_curs): the peer's last mark, its state and its byte.
 */
enum cdc_urg_state {
	CDC_URG_NONE,   /* none, or read past */
	CDC_URG_NOTYET, /* marked, the byte not produced yet */
	CDC_URG_VALID,  /* there, not taken by recv(MSG_OOB) */
	CDC_URG_READ,   /* taken by recv(MSG_OOB); the read still stops at it */
};

struct cdc_urg {
	uint64_t seen;  /* the peer's cdc_area.urg as last read */
	uint64_t mark;  /* position of the urgent byte */
	uint8_t state;  /* enum cdc_urg_state */
	uint8_t byte;
	bool inline_;   /* SO_OOBINLINE: the byte stays in the stream */
};

/*
 * Takes the peer's urgent word, wire, read after its producer cursor,
 * cons and prod_seen our positions in its ring.  A newer mark takes the
 * place of the last, as TCP's urgent pointer does; one in what we read
 * already is ignored, one past what the peer produced waits (NOTYET).
 * True when the byte at u->mark has just come: the caller reads it into
 * u->byte (the mark then lies in [cons, prod_seen)).
 */
bool cdc_urg_update(struct cdc_urg *u, uint64_t wire, uint64_t cons, uint64_t prod_seen);

/*
 * How many of the avail bytes from *from on a read may take, as TCP's
 * tcp_recvmsg: it stops before the urgent byte, and at it once it took
 * anything (copied: *at_mark); one that begins at it goes past it, which
 * without SO_OOBINLINE takes it out of the stream: *pass, and *from moves
 * past it.
 */
uint64_t cdc_urg_limit(const struct cdc_urg *u, uint64_t *from, uint64_t avail, size_t copied,
		       bool *at_mark, bool *pass);

/* The bytes a doorbell and an urgent doorbell are on the TCP stream. */
#define CDC_BELL        1
#define CDC_URGENT_BELL 2

/*
 * Whether n bytes read from the TCP socket are all doorbells or urgent
 * doorbells; *urgent gets how many are urgent.
 */
bool cdc_all_bells(const char *buf, size_t n, uint32_t *urgent);
/*
 * What a read of the TCP socket that returned n <= 0 (errno set) says of
 * it: an enum cdc_tcp_state (*err for a reset), or -1 to read again.
 */
int cdc_read_end(ssize_t n, int *err);

/* Consumes pending doorbell bytes, uncounted, without blocking (a connection handed to no one). */
enum cdc_tcp_state cdc_drain_bells(int fd, int *err);

#endif /* USMC_CDC_H */
