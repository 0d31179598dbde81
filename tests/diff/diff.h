/* SPDX-License-Identifier: MIT */
/*
 * The differential semantics suite: plain POSIX socket programs, each run
 * once as ordinary TCP and once under usmc-run, whose transcripts must be
 * identical.
 *
 * A case is a client and a server function, run in two processes over one
 * loopback connection (the harness connects them), or a client alone.
 * Each end writes what it observes as text lines: return values, errno
 * names, readiness masks, byte counts and checksums, never pids, ports,
 * addresses or times.  The two ends order their steps through a pair of
 * pipes, so no line depends on timing.
 *
 * Nothing here knows usmc: the programs call socket(), read(), poll() and
 * the rest directly, and usmc-run's preload library makes them usmc
 * programs.
 */
#ifndef USMC_DIFF_H
#define USMC_DIFF_H

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

/* Bound on every wait for an event that must come: a safety net, never a timing test. */
#define WAIT_MS 10000
/* Whole-process watchdog (SIGALRM) for waits that cannot be bounded, such as a blocking read. */
#define WATCHDOG_S 60

/* One end of a case. */
struct end {
	int fd;        /* the connected socket; -1 when the case connects itself */
	int lfd;       /* server: the listener (still open); client: -1 */
	int family;    /* AF_INET or AF_INET6 */
	uint16_t port; /* the listener's port */
	int tell;      /* pipe toward the other end */
	int hear;      /* pipe from the other end */
	bool server;
};

typedef void (*case_fn)(struct end *e);

struct diff_case {
	const char *name;
	case_fn client;
	case_fn server; /* NULL: the client runs alone */
	int family;     /* 0 or AF_INET: IPv4; AF_INET6 */
	bool raw;       /* the case makes its own connections: e->fd is -1 */
	int conns;      /* connections that must use shared memory under usmc-run */
	int fallbacks;  /* connections usmc must count as plain TCP under usmc-run */
};

/* The case tables of each file, each ended by an entry with a NULL name. */
extern const struct diff_case io_cases[];
extern const struct diff_case close_cases[];
extern const struct diff_case poll_cases[];
extern const struct diff_case epoll_cases[];
extern const struct diff_case sig_cases[];
extern const struct diff_case opt_cases[];
extern const struct diff_case exec_cases[];
extern const struct diff_case zcopy_cases[];
extern const struct diff_case stdio_cases[];
extern const struct diff_case async_cases[];
extern const struct diff_case alias_cases[];
extern const struct diff_case exec_way_cases[];
extern const struct diff_case edge_cases[];
extern const struct diff_case thread_cases[];
extern const struct diff_case exit_cases[];
extern const struct diff_case limit_cases[];
extern const struct diff_case refused_cases[];
extern const struct diff_case storm_cases[];
extern const struct diff_case fork_shut_cases[];

/* An end that an exec brought back: its step, from usmc_diff --resume's arguments. */
int resume_step(int argc, char **argv);
/* Where this end's lines go; an exec'd image takes them up with diff_resume_as. */
int diff_log_fd(void);
void diff_resume_as(const char *role, int log_fd);

/* ---- the transcript ---- */

/* One transcript line of this end, prefixed with its role. */
void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A failure of the harness or of the environment: says so and exits 1. */
void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
/* "what = rc" or "what = -1 ENAME". */
void say_rc(const char *what, long rc);
/* SIGPIPEs this process caught since count_sigpipes() set the handler that counts them. */
extern volatile sig_atomic_t sigpipes;
void count_sigpipes(void);
/* errno's symbolic name, as it appears in transcripts. */
const char *errno_name(int err);
/* "what: MASK", the mask as mask_str gives it. */
void say_mask(const char *what, unsigned mask);
/* A poll mask as "IN|RDNORM|OUT|WRNORM|...", "0" when empty. */
const char *mask_str(unsigned mask, char *buf, size_t len);
#define MASK_LEN 96

/* ---- the other end ---- */

void tell(struct end *e, uint64_t v);
uint64_t hear(struct end *e);
/* hear, bounded by ms: false if nothing came (a backstop against a read that never returns). */
bool hear_within(struct end *e, int ms, uint64_t *v);
/* Waits for the other end to send exactly v. */
void expect(struct end *e, uint64_t v);

/* ---- sockets ---- */

socklen_t loopback(int family, uint16_t port, struct sockaddr_storage *ss);
/* A connected socket toward the case's listener, or fatal. */
int connect_to(struct end *e);
/* A listener on the loopback address, its port in *port, or fatal. */
int listen_any(int family, uint16_t *port);
/* The next connection on the case's listener, or fatal. */
int accept_one(struct end *e);
/* A TCP socket of the family (type may carry SOCK_NONBLOCK), or fatal. */
int tcp_socket(int family, int type);
void set_nonblock(int fd, bool on);
/* Reaps child pid within WAIT_MS (true), or kills it and reaps it then (false, asleep for good). */
bool reap_within_wait(pid_t pid, int *status);
/* poll on one descriptor, bounded by WAIT_MS: revents, 0 on timeout. */
short wait_for(int fd, short events);
/* poll on one descriptor with timeout 0: revents. */
short poll_now(int fd, short events);
/* The events a readiness line reports. */
#define ALL_EVENTS (POLLIN | POLLPRI | POLLOUT | POLLRDNORM | POLLWRNORM | POLLRDHUP)

/* ---- data ---- */

/* Byte i of stream seed. */
void pattern(uint8_t *buf, size_t len, uint64_t seed, uint64_t off);
/* FNV-1a 32 of buf, continued from h (start with SUM_INIT). */
uint32_t sum32(uint32_t h, const void *buf, size_t len);
#define SUM_INIT 0x811c9dc5u

/* Writes bytes off..off+len of stream seed with plain write(); fatal on error. */
void send_pattern(int fd, uint64_t seed, uint64_t off, size_t len);
/* An unlinked temporary file of len bytes of stream seed, positioned at its start. */
int pattern_file(uint64_t seed, size_t len);
/* Reads exactly len bytes; says "what: N bytes, pattern ok|BAD" (or the short count). */
void recv_pattern(int fd, uint64_t seed, uint64_t off, size_t len, const char *what);
/* Reads to EOF; says "what: N bytes, sum XXXXXXXX" and how the read ended. */
void recv_to_eof(int fd, const char *what);
/*
 * 100 bytes each way, the client's first: afterwards both ends are past
 * the start of the connection (under usmc-run, the client's handshake is
 * settled by its first read, so its later calls meet shared memory).
 */
void greet(struct end *e);
/*
 * Toward a peer that closed: writes until the peer's reset makes a write
 * fail; says the first write and the failure.
 */
void write_until_epipe(int fd, int flags);
/* Sets up an io_uring, as a process does that declines every connection's Proposal from then on. */
void ring_setup(void);
/* A request of 100 bytes, pattern seed, at off, and its reply, seed + 1: whether the reply matches. */
bool request_reply(int fd, uint64_t seed, uint64_t off);
/* The other end of request_reply: reads the request, checks it, replies. */
void reply_request(int fd, uint64_t seed, uint64_t off);
/*
 * A prefork worker's part (a forked child): waits on the listener it
 * shares, says GO (1, as each case numbers it), then accepts conns connections and answers each
 * one's request (seed); numbers: says each descriptor's number from its
 * first.
 */
void prefork_serve(struct end *e, uint64_t seed, int conns, bool numbers);
/*
 * Sets the soft RLIMIT_NOFILE to want, or to the hard limit if lower;
 * fatal, saying why, if the hard limit is below need.
 */
void nofile_set(unsigned long need, unsigned long want);
/* Says whether buf holds bytes off.. of stream seed. */
bool pattern_ok(const uint8_t *buf, size_t len, uint64_t seed, uint64_t off);

#endif
