/* SPDX-License-Identifier: MIT */
/*
 * Test harness: real processes over real loopback sockets.
 *
 * A test forks its peers, talks over TCP on 127.0.0.1 or ::1, and checks
 * every transfer by length and checksum.  "usmc" peers make their sockets
 * with usmc_socket(); "plain" peers with socket(), so they are ordinary
 * TCP endpoints that usmc must interoperate with.  All I/O goes through
 * the usmc_ calls, which are the plain system calls on plain sockets.
 */
#ifndef USMC_TEST_HARNESS_H
#define USMC_TEST_HARNESS_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "plain.h"
#include "usmc.h"


/* How each end of a connection is made. */
enum h_kind { H_PLAIN = 0, H_USMC = 1 };

/* The three ways a behaviour runs: TCP, usmc falling back, shared memory. */
enum h_way { WAY_TCP, WAY_FALLBACK, WAY_SMC };

struct h_opts {
	int family;          /* AF_INET or AF_INET6 */
	enum h_kind client;
	enum h_kind server;
};

/* Parses --way tcp|fallback|fallback-server|smc and --family 4|6 into opts. */
void h_parse_way(int argc, char **argv, struct h_opts *o);
const char *h_way_name(const struct h_opts *o);
/* The mode usmc_info must report for an end of this kind against that peer. */
int h_expected_mode(enum h_kind self, enum h_kind peer);

int h_socket(int family, enum h_kind kind, int flags);
/* The loopback address of the family, with port. */
socklen_t h_loopback(int family, uint16_t port, struct sockaddr_storage *ss);
/* A listener on the loopback address with an ephemeral port. */
int h_listen(int family, enum h_kind kind, uint16_t *port);
int h_connect(int family, enum h_kind kind, uint16_t port);
int h_connect_flags(int family, enum h_kind kind, uint16_t port, int flags);

/*
 * A connection in shared memory between two ends of this process on the
 * listener lfd (port): the client's end in *client, the accepted one in
 * *server, the handshake settled by a byte from the server.
 */
void h_smc_pair(int lfd, uint16_t port, int *client, int *server);
/* RLIMIT_NOFILE raised to its hard limit, which must allow need. */
void h_raise_nofile(int need);

/* Runs fn(arg) in a child process that exits with fn's return value. */
pid_t h_fork(int (*fn)(void *), void *arg);
/* Waits for the child; true if it exited 0. */
bool h_wait_ok(pid_t pid);

/* A pipe to pass a port (or any small value) from a child to its parent. */
struct h_chan {
	int rd, wr;
};
void h_chan_open(struct h_chan *c);
void h_chan_send(struct h_chan *c, uint64_t v);
uint64_t h_chan_recv(struct h_chan *c);
/*
 * One server child and one client child, forked from a parent that makes
 * no usmc call: the server sends its port through *port_chan (opened
 * here), the client gets it as its argument.  Fails unless both exit 0.
 */
void h_run_pair(int (*server)(void *), int (*client)(void *), struct h_chan *port_chan);

/* Deterministic test data: byte i of stream seed. */
void h_pattern(uint8_t *buf, size_t len, uint64_t seed, uint64_t offset);
/* Incremental FNV-1a 64. */
uint64_t h_fnv(uint64_t h, const void *buf, size_t len);
#define H_FNV_INIT 0xcbf29ce484222325ull

uint64_t h_rand(uint64_t *state);

/* Blocking loops over usmc_write / usmc_read, with poll on EAGAIN. */
void h_write_all(int fd, const void *buf, size_t len);
/* Reads exactly len bytes; fails the test on EOF or error. */
void h_read_all(int fd, void *buf, size_t len);
/* Reads to EOF, returning the length and the checksum. */
uint64_t h_read_to_eof(int fd, uint64_t *sum, size_t chunk_max, uint64_t *rng);
/*
 * Writes size bytes of stream seed in writes of chunk_max bytes, or of
 * random sizes up to it if rng is set; returns their checksum.
 */
uint64_t h_write_stream(int fd, uint64_t size, uint64_t seed, size_t chunk_max, uint64_t *rng);
/*
 * A usmc connection to the loopback port that sends len bytes of stream
 * seed and half-closes; its descriptor, their checksum in *sum.
 */
int h_send_half(uint16_t port, size_t len, uint64_t seed, uint64_t *sum);

void h_check_mode(int fd, int mode);
/* What the connection's kernel TCP socket carried, both ways (TCP_INFO). */
uint64_t h_tcp_carried(int fd);
/*
 * Shared memory proven without asking usmc: of moved bytes, the TCP
 * socket carried no more than an eighth (doorbells, 64 bytes of slack).
 */
void h_check_shm_carried(int fd, uint64_t moved);

/* Lines of a text file that contain needle (to count mappings, names). */
int h_count_lines(const char *path, const char *needle);
/* Open descriptors of this process. */
int h_count_fds(void);
/* A registry directory of the test's own (USMC_REGISTRY_DIR): counters no other test counts in. */
void h_registry_own(const char *name);
/* Becomes uid (group, supplementary groups and all), with USMC_POLICY policy; needs root. */
void h_become(uid_t uid, const char *policy);
/*
 * Waits (10 s at most, then fails) until process or thread tid sleeps
 * where its wchan names needle: "poll_schedule_timeout" for poll(),
 * "epoll" for epoll_wait() (do_epoll_wait).
 */
void h_wait_wchan(pid_t tid, const char *needle);
/*
 * Traces pid, a child stopped by the SIGSTOP it raised after
 * PTRACE_TRACEME, from system call to system call (each entry and each
 * exit) until stop says so; pid is then held at that stop.
 */
struct __ptrace_syscall_info;
void h_trace_until(pid_t pid, bool (*stop)(const struct __ptrace_syscall_info *info, pid_t pid));
/*
 * Whether /proc/net/tcp lists a loopback socket of local port lport toward
 * port, in any state.  Its local port alone is not enough: a connection of
 * another test to another port may have the same.
 */
bool h_tcp_listed(unsigned lport, uint16_t port);
/*
 * A usmc client of port that writes len bytes of stream seed and closes
 * before any answer can have come (short_fin_wait2: its socket's
 * FIN_WAIT2 ends a second after, TCP_LINGER2): its local port.
 */
unsigned h_write_close(uint16_t port, uint64_t seed, size_t len, bool short_fin_wait2);

#endif
