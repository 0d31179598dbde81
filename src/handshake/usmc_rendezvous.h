/* SPDX-License-Identifier: MIT */
/*
 * The rendezvous directory: handshakes between network namespaces of one
 * host (usmc_rendezvous.c, docs/SECURITY.md "Across network namespaces").
 */
#ifndef USMC_RENDEZVOUS_H
#define USMC_RENDEZVOUS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>

#include "usmc_clc.h"

struct usmc_lgr;
struct reuse_key;

/* Listeners of other namespaces a Proposal goes to, at most. */
#define RDV_TARGETS_MAX 8

struct rdv_targets {
	int n;
	struct sockaddr_un sun[RDV_TARGETS_MAX];
	socklen_t len[RDV_TARGETS_MAX];
	uint64_t file[RDV_TARGETS_MAX]; /* its socket file, by inode and change time */
	bool here; /* a namespace of the directory lists the address, or a NAT rule names it */
};

/* A namespace's addresses, usmc-ns-<netns>, at most. */
#define RDV_ADDR_MAX 64

struct rdv_nat;

/* Whether the directory is configured and there (USMC_RENDEZVOUS_DIR, else /run/usmc). */
bool rdv_enabled(void);
/* Once enabled: the directory, and the prefixes of USMC_RENDEZVOUS_NAT into *nat. */
const char *rdv_dir(const struct rdv_nat **nat);
/* The address of an entry of the directory, by its name. */
socklen_t rdv_addr(const char *name, struct sockaddr_un *sun);
/* False for the overflow uid in a user namespace: the stand-in of an unmapped user. */
bool rdv_uid_mapped(uid_t uid);
/*
 * Binds the port's Unix listener in the directory, beside the abstract
 * one, and lists our namespace's addresses there: its descriptor, or -1
 * (*ino: the socket file's inode, for rdv_unlisten).  A member of an
 * SO_REUSEPORT group binds one of its own (member: its pid, else 0), as
 * it does in the abstract namespace: the kernel gives each connection to
 * one member, and the client puts its channel into every member's.
 */
int rdv_listen(uint16_t port, int32_t member, ino_t *ino);
void rdv_unlisten(uint16_t port, int32_t member, ino_t ino);
/* The address of our own namespace's Unix listener of port (of member) in the directory. */
socklen_t rdv_listener_addr(uint16_t port, int32_t member, struct sockaddr_un *sun);
/*
 * Whom a client's segment toward the targets may serve next: the holders
 * of the one listener, told by its socket file (a listener bound there
 * later is another); none if there are several.
 */
void rdv_reuse_key(const struct rdv_targets *t, uint16_t port, struct reuse_key *key);
/*
 * A namespace's redirects (a REDIRECT rule, as a mesh's inbound capture
 * has), learned by the listener they give connections to
 * (usmc_rendezvous_taken.c): connections dialled to port go to port to.
 * Listed in the directory's usmc-redirect-<netns> for clients of other
 * namespaces, who propose to the listener of to instead.
 */
#define RDV_REDIRECTS_MAX 16
struct rdv_redirect {
	uint16_t port, to;
};
/* Our namespace's port goes to to (to 0, or port: to itself again). */
void rdv_redirect_set(uint16_t port, uint16_t to);
/* The listener of to went: the ports it took go to themselves again. */
void rdv_redirects_drop(uint16_t to);
/* The redirects a usmc-redirect-<netns> at path lists, our user's only: how many. */
int rdv_redirects_read(const char *path, struct rdv_redirect list[RDV_REDIRECTS_MAX]);
/* Puts the server's end of a pair's channel into each target's backlog: 0 if one took it. */
uint32_t rdv_post(struct usmc_lgr *lgr, const struct rdv_targets *t);

#endif /* USMC_RENDEZVOUS_H */
