/* SPDX-License-Identifier: MIT */
/*
 * usmc-bench: usmc against plain TCP and AF_UNIX, measured by real
 * processes over loopback.
 *
 * The main process never touches a socket.  Every measurement forks a
 * fresh server and a fresh client process (so no library state carries
 * over from one run to the next), each on a fresh listening port, and
 * collects what they report through pipes.
 */
#ifndef USMC_BENCH_H
#define USMC_BENCH_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "usmc.h"

/* The ways a connection is made; tcp first, every ratio is against it. */
enum transport {
	TR_TCP,
	TR_UNIX,
	TR_FALLBACK,        /* usmc client, plain TCP server */
	TR_FALLBACK_SERVER, /* plain TCP client, usmc server */
	TR_SMC,             /* usmc at both ends: shared memory */
	TR_COUNT
};

enum test_kind {
	T_CONNRATE,
	T_CONNRATE0,
	T_CONNRATE_PREFORK,
	T_PINGPONG,
	T_PINGPONG_EPOLL,
	T_STREAM,
	T_STREAM_X4,
	T_LIMIT,
	T_MEMORY, /* once per invocation, not per run */
	T_COUNT
};

/* One measurement: a test with its parameters, over one transport. */
struct job {
	enum test_kind test;
	enum transport tr;
	size_t msg_size;     /* pingpong message, stream write, connrate payload */
	int conns;           /* stream: parallel connections */
	double duration;     /* seconds */
	bool verify;         /* stream: checksum every byte */
	char unix_path[108]; /* abstract AF_UNIX name, fresh per run */
};

/* What one side of a measurement reports to the main process. */
struct side_result {
	int ok;              /* 0: the side failed, err says why */
	double value[2];     /* the figures: rate, or p50 and p99 */
	uint64_t count;      /* connections, round trips, or bytes */
	uint64_t checksum;
	int mode_wrong;      /* connections whose usmc_info mode was unexpected */
	int mode_seen;       /* the first unexpected mode */
	uint32_t reason;     /* and its fallback reason */
	char err[160];
};

/* net.c: transports */
const char *transport_name(enum transport tr);
int transport_by_name(const char *name);
/* A listener for the job's transport; *port gets the TCP port. */
int bench_listen(const struct job *j, uint16_t *port);
int bench_connect(const struct job *j, uint16_t port);
/* The mode usmc_info must report for the client or the server end. */
int expected_mode(enum transport tr, bool server);
/* Compares a connection's mode with the expected one, noting a mismatch. */
void check_mode(int fd, const struct job *j, bool server, struct side_result *r);
void set_nodelay(const struct job *j, int fd);
void set_nonblock(int fd);
/* Blocking loops; -1 on error or early EOF. */
int write_all(int fd, const void *buf, size_t len);
int read_all(int fd, void *buf, size_t len);
double now_sec(void);
void fail(struct side_result *r, const char *what);

/* tests.c: the client and server bodies, run in their own processes */
void client_run(const struct job *j, uint16_t port, struct side_result *r);
void server_run(const struct job *j, int lfd, int stop_fd, struct side_result *r);
/* connrate-prefork: the workers, waiting on the listener, before its port is told. */
void server_prefork(const struct job *j, int lfd, int stop_fd, struct side_result *r);

/* limit.c: what the machine allows */
struct limits {
	double memcpy_ring_gbs; /* 64 KiB blocks into a 256 KiB ring: cache */
	double memcpy_big_gbs;  /* 64 KiB blocks through 64 MiB: memory */
	double futex_us[2];     /* cross-process wake-up round trip, p50 and p99 */
	double pipe_us[2];
	double spin_us[2];      /* shared-memory round trip with neither side sleeping */
};
void limits_measure(double duration, struct limits *l);

/* memory.c: idle connections' memory; false if a measurement failed */
bool memory_run(const bool *trs);

/* stats.c */
double percentile(uint32_t *ns, size_t n, double p); /* sorts ns; microseconds */
double median(double *v, int n);                     /* sorts v */

/* netns.c: a network namespace per connection-rate measurement */
bool netns_fresh_enter(void); /* false: stays in the namespace it is in */
/*
 * With USMC_BENCH_NETNS: enters the server's or the client's namespace
 * and gives the address to listen on or to dial; false without it.
 */
bool netns_cross_enter(bool server, struct in_addr *addr);
void netns_leave(void);
void netns_cleanup(void);     /* at the end: namespaces kept, registries made */

/* report.c: results table, JSON and plots */
struct figure {
	const char *test;    /* e.g. "stream" */
	char variant[32];    /* e.g. "64KiB x1" */
	const char *metric;  /* e.g. "throughput" */
	const char *unit;
	size_t size;         /* message or write size, for the plots */
	int conns;
	double runs[TR_COUNT][64];
	int nruns[TR_COUNT];
};
void report_table(struct figure *f, int nfig, const bool *trs);
int report_json(const char *path, struct figure *f, int nfig, const bool *trs,
		const struct limits *lim, bool have_limits, int runs, double duration);
void report_limits(const struct limits *l);

#endif
