/* SPDX-License-Identifier: MIT */
/*
 * Settings from the environment (usmc(7) lists them), read once per
 * process.  A value that cannot be used is never taken silently: it is
 * clamped to its range or refused for the default, with one log line.
 */
#ifndef USMC_CONFIG_H
#define USMC_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

/* USMC_BUFSIZE's default, net/smc's net.smc.wmem: a request and its response need no more. */
#define USMC_BUFSIZE_DEFAULT (64 << 10)

struct usmc_config {
	bool disabled;        /* USMC_DISABLE */
	uint32_t bufsize;     /* USMC_BUFSIZE: a ring's first lap, by default */
	uint32_t bufsize_max; /* USMC_BUFSIZE_MAX: the most later laps may grow to */
	int clc_timeout_ms;   /* USMC_CLC_TIMEOUT_MS */
	int spin_us;          /* USMC_SPIN_US: busy wait before sleeping */
	int busy_poll_us;     /* USMC_BUSY_POLL: spin this long, like SO_BUSY_POLL */
};

const struct usmc_config *usmc_config(void);

/* How long a CLC exchange may wait for the peer (USMC_CLC_TIMEOUT_MS). */
int usmc_clc_timeout_ms(void);

/* Ring size for a wish in bytes, a power of two in the CLC's range (0: the default). */
uint32_t usmc_ring_size(int wish);
/*
 * A new ring's size and its first lap's: both the wish's if the program
 * set one (as SO_SNDBUF stops TCP's autotuning), else USMC_BUFSIZE for
 * the first lap and USMC_BUFSIZE_MAX for the ring.
 */
void usmc_ring_sizes(int wish, uint32_t *size, uint32_t *first);

/*
 * One variable: a boolean (1/0, true/false, yes/no, on/off, any case), or
 * a whole number with an optional k, m or g suffix (powers of 1024),
 * clamped to [min, max].  Unset or empty gives def.
 */
bool usmc_env_bool(const char *name, bool def);
long usmc_env_long(const char *name, long def, long min, long max);

/* The parsers behind them, for tools that check a value: false if it is not one. */
bool usmc_parse_bool(const char *text, bool *out);
bool usmc_parse_size(const char *text, long *out);

#endif /* USMC_CONFIG_H */
