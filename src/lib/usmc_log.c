// SPDX-License-Identifier: MIT
/*
 * usmc_log.c - where usmc's few messages go (see usmc_log.h for why
 * never to the application's standard error unless asked).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <syslog.h>
#include <unistd.h>

#include "usmc.h"
#include "usmc_config.h"
#include "usmc_log.h"
#include "usmc_sys.h"

enum sink { SINK_SYSLOG, SINK_STDERR, SINK_FILE, SINK_OFF };

static struct {
	enum sink sink;
	bool debug;
	const char *bad;       /* a USMC_LOG that names no destination */
	const char *bad_debug; /* a USMC_DEBUG that is no boolean */
	char path[256];
} log_cfg;
static _Atomic bool bad_said;
static pthread_once_t log_once = PTHREAD_ONCE_INIT;

static __thread struct {
	const char *call;
	int err;
} env_failure;

static void log_load(void)
{
	const char *v = getenv("USMC_LOG"), *d = getenv("USMC_DEBUG");

	/* Not usmc_env_bool(): its warning would come back here, inside the once. */
	if (d && *d && !usmc_parse_bool(d, &log_cfg.debug))
		log_cfg.bad_debug = d;
	if (!v || !*v || !strcmp(v, "syslog"))
		log_cfg.sink = SINK_SYSLOG;
	else if (!strcmp(v, "stderr"))
		log_cfg.sink = SINK_STDERR;
	else if (!strcmp(v, "off") || !strcmp(v, "none"))
		log_cfg.sink = SINK_OFF;
	else if (v[0] == '/' && strlen(v) < sizeof(log_cfg.path))
		log_cfg.sink = SINK_FILE, strcpy(log_cfg.path, v);
	else
		log_cfg.sink = SINK_SYSLOG, log_cfg.bad = v;
}

static void log_init(void)
{
	pthread_once(&log_once, log_load);
	if ((log_cfg.bad || log_cfg.bad_debug) && !atomic_exchange(&bad_said, true)) {
		if (log_cfg.bad)
			usmc_log(USMC_LOG_WARN, "USMC_LOG=%s names no destination (syslog, stderr, "
				 "off or an absolute path): the system log is used", log_cfg.bad);
		if (log_cfg.bad_debug)
			usmc_log(USMC_LOG_WARN, "USMC_DEBUG=%s is not a boolean: off",
				 log_cfg.bad_debug);
	}
}

bool usmc_log_debug(void)
{
	log_init();
	return log_cfg.debug;
}

/* All of a line at once, so that lines of several processes do not mix. */
static void write_line(int fd, const char *line, size_t len)
{
	while (len > 0) {
		ssize_t n = usmc_sys.write(fd, line, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		line += n;
		len -= (size_t)n;
	}
}

/*
 * One datagram to /dev/log, on a socket of its own for this line: not
 * syslog(3), which shares the program's openlog() and with LOG_PERROR
 * would copy our line to the program's standard error.
 */
static void send_syslog(int severity, const char *line, size_t len)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX, .sun_path = "/dev/log" };
	char msg[600];
	int fd, n;

	n = snprintf(msg, sizeof(msg), "<%d>%.*s", LOG_USER | severity, (int)len, line);
	fd = usmc_sys.socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	if (usmc_sys.connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0)
		usmc_sys.send(fd, msg, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL);
	usmc_sys.close(fd);
}

void usmc_log(enum usmc_log_level level, const char *fmt, ...)
{
	char line[512];
	int saved = errno, n, fd;
	va_list ap;

	log_init();
	if ((level == USMC_LOG_DEBUG && !log_cfg.debug) || log_cfg.sink == SINK_OFF)
		goto out;
	n = snprintf(line, sizeof(line), "usmc[%d]: ", (int)getpid());
	va_start(ap, fmt);
	n += vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	switch (log_cfg.sink) {
	case SINK_SYSLOG:
		send_syslog(level == USMC_LOG_WARN ? LOG_WARNING : LOG_DEBUG, line, (size_t)n);
		break;
	case SINK_STDERR:
		line[n++] = '\n';
		write_line(STDERR_FILENO, line, (size_t)n);
		break;
	case SINK_FILE:
		fd = usmc_sys.open(log_cfg.path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
		if (fd < 0)
			break;
		line[n++] = '\n';
		write_line(fd, line, (size_t)n);
		usmc_sys.close(fd);
		break;
	case SINK_OFF:
		break;
	}
out:
	errno = saved;
}

uint32_t usmc_env_fail(const char *call)
{
	env_failure.call = call;
	env_failure.err = errno;
	return USMC_DECL_ENV;
}

void usmc_log_fallback(int fd, uint32_t reason, bool by_peer)
{
	if (!usmc_log_debug())
		return;
	if (reason == USMC_DECL_ENV && env_failure.call)
		usmc_log(USMC_LOG_DEBUG, "fd %d: fallback 0x%08x (%s%s): %s: %s", fd, reason,
			 by_peer ? "peer: " : "", usmc_reason_str(reason), env_failure.call,
			 strerror(env_failure.err));
	else
		usmc_log(USMC_LOG_DEBUG, "fd %d: fallback 0x%08x (%s%s)", fd, reason,
			 by_peer ? "peer: " : "", usmc_reason_str(reason));
	env_failure.call = NULL;
}
