/* SPDX-License-Identifier: MIT */
/*
 * One client process against one server process, each under its own
 * limit, filter or environment, applied before its first usmc call; every
 * connection carries an indexed payload whose checksum the server sends
 * back, and each side tallies the modes and reasons it saw.
 */
#ifndef USMC_TEST_EXHAUST_PAIR_H
#define USMC_TEST_EXHAUST_PAIR_H

#include "robust.h"

#define PAYLOAD_MAX 5000

struct side {
	enum h_kind kind;
	int nofile_extra;   /* > 0: RLIMIT_NOFILE this much above what is open */
	int memfd_errno;    /* > 0: memfd_create fails with it */
	const char *regdir; /* USMC_REGISTRY_DIR */
	int nofile;         /* > 0: RLIMIT_NOFILE, before the first usmc call */
	const char *cgroup; /* a cgroup v2 directory to join first */
	bool smc_ok;        /* shared memory may happen */
	const uint32_t *allowed; /* fallback reasons that may happen */
	int nallowed;
};

struct setup {
	struct side client, server;
	int nconns;
	bool concurrent;    /* open all, then exchange; else one after the other */
	bool prefork;       /* a forked worker of the server accepts (a shared listener) */
	bool count_files;   /* then the client opens descriptors until EMFILE ... */
	int files;          /* ... and run_pair says how many it got */
	uint16_t port;
	int lfd;            /* the server's listener, which its worker accepts from */
};

/* Modes and reasons one side saw. */
struct tally {
	int smc, fallback, refused, files;
	/*
	 * The link groups the shared-memory connections are in: one, or, for a
	 * burst the server accepts slower than it comes, one more for every
	 * few hundred Proposals it had not read (lgr_crowded).
	 */
	uint32_t lgrs[64];
	int nlgrs;          /* distinct ones, up to 64 (65: more) */
	uint32_t reasons[8];
	int reason_count[8];
};


#define ALLOW(list) .allowed = list, .nallowed = (int)(sizeof(list) / sizeof(list[0]))

/* Where the children report (the server its port, the client how many it made). */
extern struct h_chan to_parent;

/*
 * Runs st's connections from a client to a server, both children; returns
 * how many the client made (the rest are made plain, so the server ends).
 */
int run_pair(struct setup *st);
void side_apply(const struct side *s);
void serve_one(int fd);
void client_send(int fd, uint32_t index);
void client_check(int fd, uint32_t index);

#endif
