// SPDX-License-Identifier: MIT
/*
 * usmc_config.c - the environment's settings, parsed strictly.
 *
 * A setting that is misspelt must not quietly mean something else: in
 * earlier versions USMC_DISABLE=true left usmc on and USMC_BUFSIZE=1G
 * gave 256 KiB, and neither said so.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "usmc_capture.h"
#include "usmc_clc.h"
#include "usmc_config.h"
#include "usmc_core.h"
#include "usmc_log.h"

static pthread_once_t config_once = PTHREAD_ONCE_INIT;
static _Atomic bool config_done;
static struct usmc_config config;

bool usmc_parse_bool(const char *text, bool *out)
{
	static const char *const yes[] = { "1", "true", "yes", "on", "y" };
	static const char *const no[] = { "0", "false", "no", "off", "n" };

	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (!strcasecmp(text, yes[i]))
			return *out = true, true;
		if (!strcasecmp(text, no[i]))
			return *out = false, true;
	}
	return false;
}

bool usmc_parse_size(const char *text, long *out)
{
	char *end;
	long n;
	int shift = 0;

	if (!isdigit((unsigned char)*text))
		return false;
	errno = 0;
	n = strtol(text, &end, 0);
	if (errno)
		return false;
	switch (*end) {
	case 'k': case 'K': shift = 10, end++; break;
	case 'm': case 'M': shift = 20, end++; break;
	case 'g': case 'G': shift = 30, end++; break;
	}
	if (shift && (*end == 'i' || *end == 'I') && (end[1] == 'b' || end[1] == 'B'))
		end += 2; /* 256KiB */
	else if (shift && (*end == 'b' || *end == 'B'))
		end++; /* 256kB */
	if (*end || n > (LONG_MAX >> shift))
		return false;
	*out = n << shift;
	return true;
}

bool usmc_env_bool(const char *name, bool def)
{
	const char *v = getenv(name);
	bool b;

	if (!v || !*v)
		return def;
	if (usmc_parse_bool(v, &b))
		return b;
	usmc_log(USMC_LOG_WARN, "%s=%s is not a boolean (1/0, true/false, yes/no, on/off): %s",
		 name, v, def ? "on" : "off");
	return def;
}

long usmc_env_long(const char *name, long def, long min, long max)
{
	const char *v = getenv(name);
	long n;

	if (!v || !*v)
		return def;
	if (!usmc_parse_size(v, &n)) {
		usmc_log(USMC_LOG_WARN, "%s=%s is not a number: %ld is used", name, v, def);
		return def;
	}
	if (n < min || n > max) {
		long clamped = n < min ? min : max;

		usmc_log(USMC_LOG_WARN, "%s=%s is outside %ld..%ld: %ld is used", name, v, min, max,
			 clamped);
		return clamped;
	}
	return n;
}

static void config_load(void)
{
	config.disabled = usmc_env_bool("USMC_DISABLE", false);
	config.bufsize = usmc_ring_size(
		(int)usmc_env_long("USMC_BUFSIZE", USMC_BUFSIZE_DEFAULT, CLC_RMB_MIN, CLC_RMB_MAX));
	/* A ring size asked for stays that size, unless a largest is asked for too. */
	config.bufsize_max = usmc_ring_size((int)usmc_env_long(
		"USMC_BUFSIZE_MAX", getenv("USMC_BUFSIZE") ? (long)config.bufsize : 4l << 20,
		(long)config.bufsize, CLC_RMB_MAX));
	config.clc_timeout_ms = (int)usmc_env_long("USMC_CLC_TIMEOUT_MS", 2000, 10, 600000);
	config.spin_us = (int)usmc_env_long("USMC_SPIN_US", 20, 0, 1000000);
	config.busy_poll_us = (int)usmc_env_long("USMC_BUSY_POLL", 0, 0, 10000000);
	usmc_capture_init();
}

const struct usmc_config *usmc_config(void)
{
	usmc_once(&config_once, &config_done, config_load);
	return &config;
}

int usmc_clc_timeout_ms(void)
{
	return usmc_config()->clc_timeout_ms;
}

uint32_t usmc_ring_size(int wish)
{
	uint32_t size = CLC_RMB_MIN;

	if (wish <= 0)
		return usmc_config()->bufsize;
	while (size < (uint32_t)wish && size < CLC_RMB_MAX)
		size <<= 1;
	return size;
}

void usmc_ring_sizes(int wish, uint32_t *size, uint32_t *first)
{
	if (wish > 0) {
		*size = *first = usmc_ring_size(wish);
		return;
	}
	*first = usmc_config()->bufsize;
	*size = usmc_config()->bufsize_max;
}
