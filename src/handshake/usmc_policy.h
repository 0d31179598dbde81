/* SPDX-License-Identifier: MIT */
/*
 * The policy (usmc_policy.c): which peers to try SMC with, by the rules
 * of the policy file, and which users may share memory with us.
 */
#ifndef USMC_POLICY_H
#define USMC_POLICY_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>


struct usmc_rule {
	bool smc;         /* try SMC (true) or go straight to TCP */
	int family;       /* 0 for any address */
	uint8_t addr[16];
	int prefix;
	uint16_t port_lo;
	uint16_t port_hi;
};

/* Parses "smc|tcp ADDR[/PREFIX][:PORT[-PORT]]" ("*" for any address). */
bool usmc_rule_parse(struct usmc_rule *r, const char *text);
bool usmc_rule_matches(const struct usmc_rule *r, const struct sockaddr *addr);

/* Whether the policy lets a connection toward addr try SMC. */
bool usmc_policy_allows(const struct sockaddr *addr);
/* Whether shared memory may be shared with a process of this user. */
bool usmc_peer_user_allowed(uid_t uid);
/* The other users named by "allow-user" lines; their count. */
int usmc_policy_other_users(const uid_t **uids);
/* Whether addr is one of this host's (loopback, or an address of ours). */
bool usmc_addr_is_local(const struct sockaddr *addr);

#endif /* USMC_POLICY_H */
