/* SPDX-License-Identifier: MIT */
/* Policy rules: which peers to try SMC with. */
#ifndef USMC_POLICY_H
#define USMC_POLICY_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>


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

#endif /* USMC_POLICY_H */
