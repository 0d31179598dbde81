/* SPDX-License-Identifier: MIT */
/*
 * TCP semantics, written once and run three ways.
 *
 * Each case is a client and a server function, run in two processes over
 * one loopback connection.  The assertions are what Linux TCP does; the
 * same must hold when usmc falls back and when it moves the data through
 * shared memory.  The two ends talk out of band over a pair of pipes, so
 * that order never depends on timing.
 */
#ifndef USMC_TEST_SEM_H
#define USMC_TEST_SEM_H

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"

/* Safety bound on every wait for an event that must come. */
#define SEM_WAIT_MS 10000

/* One end of the connection under test. */
struct sem_end {
	const struct h_opts *opts;
	bool server;
	int fd;           /* the connected socket */
	uint16_t port;    /* the listener's port */
	int tell_fd;      /* pipe to the other end */
	int hear_fd;      /* pipe from the other end */
	enum h_kind self; /* how this end's socket was made */
	enum h_kind peer;
};

/* Sets socket options before connect() or listen(). */
typedef void (*sem_prep_fn)(int fd, bool server);
typedef void (*sem_run_fn)(struct sem_end *e);

struct sem_case {
	const char *name;
	sem_run_fn client;
	sem_run_fn server;
	sem_prep_fn prep;
};

/* Out-of-band messages between the two ends. */
void sem_tell(struct sem_end *e, uint64_t v);
uint64_t sem_hear(struct sem_end *e);
/* Waits for the other end to send exactly v. */
void sem_expect(struct sem_end *e, uint64_t v);

void sem_set_nonblock(int fd, bool on);
/* usmc_poll on one descriptor: its revents, 0 on timeout. */
short sem_poll1(int fd, short events, int timeout_ms);
/* Waits (safely bounded) until one of events is reported; returns revents. */
short sem_wait_for(int fd, short events);

/* Sends len bytes of stream seed from offset off; checks what arrives. */
void sem_send_pattern(int fd, uint64_t seed, uint64_t off, size_t len);
void sem_recv_pattern(int fd, uint64_t seed, uint64_t off, size_t len);
/* Checks that buf holds bytes off..off+len of stream seed. */
void sem_check_pattern(const uint8_t *buf, size_t len, uint64_t seed, uint64_t off);
/* Reads until EOF; fails unless it sees exactly len bytes of stream seed. */
void sem_recv_pattern_to_eof(int fd, uint64_t seed, size_t len);
/* Reads once more and expects 0, end of file. */
void sem_expect_eof(int fd);

/* The case tables of each file, ended by an entry with a NULL name. */
extern const struct sem_case sem_io_cases[];
extern const struct sem_case sem_close_cases[];
extern const struct sem_case sem_poll_cases[];
extern const struct sem_case sem_opt_cases[];

#endif
