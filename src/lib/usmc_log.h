/* SPDX-License-Identifier: MIT */
/*
 * usmc's log: configuration problems, and with USMC_DEBUG=1 every fallback
 * with its reason.
 *
 * It never writes to a descriptor of the application: under usmc-run,
 * standard error may be a client's TCP stream (an inetd service) or a
 * file the program owns.  So the destination is chosen explicitly:
 *
 *     USMC_LOG=syslog     the system log (the default)
 *     USMC_LOG=stderr     standard error, when the user asks for it
 *     USMC_LOG=/path      appended to a file, opened for each line
 *     USMC_LOG=off        nothing
 *
 * A file is opened and closed for each line rather than kept open: a
 * program that closes every descriptor it does not know (daemons do) would
 * otherwise close ours, and a later line would land in whatever the
 * program opened under that number.
 */
#ifndef USMC_LOG_H
#define USMC_LOG_H

#include <stdbool.h>
#include <stdint.h>

enum usmc_log_level {
	USMC_LOG_WARN,  /* always logged: a setting refused, a policy line ignored */
	USMC_LOG_DEBUG, /* only with USMC_DEBUG=1 */
};

void usmc_log(enum usmc_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Whether debug lines are wanted: one load of a flag, for hot paths. */
bool usmc_log_debug(void);

/*
 * An environment failure (USMC_DECL_ENV): the call that failed and its
 * errno, remembered per thread until the fallback it causes is logged.
 * Returns USMC_DECL_ENV, so that a site can say
 *     return usmc_env_fail("memfd_create");
 */
uint32_t usmc_env_fail(const char *call);

/* Logs a fallback (debug only): the reason, and for USMC_DECL_ENV the call. */
void usmc_log_fallback(int fd, uint32_t reason, bool by_peer);

#endif /* USMC_LOG_H */
