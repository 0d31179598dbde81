// SPDX-License-Identifier: MIT
/*
 * POSIX AIO on sockets: glibc's threads move the bytes through its
 * internal read and write, out of the preload's sight.
 *
 *   - aio: AIO is each end's first use of the connection, before either
 *     answered the handshake: the connection is plain TCP from its start,
 *     and AIO moves its bytes (4 fallbacks: two connections, two ends).
 *   - aio_in_shm: a greeting first, in shared memory; then the client's
 *     AIO fails with ENOSYS (a system without AIO), and a program with a
 *     synchronous path for that reads and writes the same bytes; the
 *     server reads and writes.  Its next connection takes AIO.
 *   - sigio: signal-driven I/O.  The server's first call on the accepted
 *     connection asks for SIGIO (F_SETOWN, O_ASYNC) and then waits for
 *     the signal in sigtimedwait, out of usmc's sight: the signal must
 *     come for the request.
 */
#include <aio.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "diff.h"

/* One request, waited for; errno as the request ended.  -2: aio_* itself refused it. */
static ssize_t aio_once(int fd, void *buf, size_t len, bool out)
{
	struct aiocb cb;
	const struct aiocb *list[1] = { &cb };
	struct timespec ts = { .tv_sec = WAIT_MS / 1000 };
	int err;

	memset(&cb, 0, sizeof(cb));
	cb.aio_fildes = fd;
	cb.aio_buf = buf;
	cb.aio_nbytes = len;
	if ((out ? aio_write(&cb) : aio_read(&cb)) < 0)
		return -2;
	while ((err = aio_error(&cb)) == EINPROGRESS)
		if (aio_suspend(list, 1, &ts) < 0 && errno == EAGAIN)
			fatal("an AIO request still in progress after %d ms", WAIT_MS);
	errno = err;
	return aio_return(&cb);
}

/* aio_in_shm's server: read and write, so that bytes AIO put beside the rings would show. */
static bool no_aio;

/* All of len through AIO, or through read and write where AIO is not there (ENOSYS). */
static void aio_all(int fd, uint8_t *buf, size_t len, bool out)
{
	for (size_t done = 0; done < len;) {
		ssize_t n = no_aio ? (errno = ENOSYS, -2) : aio_once(fd, buf + done, len - done, out);

		if (n == -2 && errno == ENOSYS)
			n = out ? write(fd, buf + done, len - done) : read(fd, buf + done, len - done);
		if (n <= 0)
			fatal("%s after %zu of %zu bytes: %zd", out ? "write" : "read", done, len, n);
		done += (size_t)n;
	}
}

static void aio_client_run(struct end *e, bool greeted)
{
	uint8_t buf[4000];
	int fd;

	if (greeted)
		greet(e);
	pattern(buf, sizeof(buf), 91, 0);
	aio_all(e->fd, buf, sizeof(buf), true);
	say("4000 bytes sent");
	aio_all(e->fd, buf, 500, false);
	say("the reply: %s", pattern_ok(buf, 500, 92, 0) ? "500 bytes that match" : "DIFFERENT");
	/* The next connection: AIO itself, whatever the first took. */
	fd = connect_to(e);
	pattern(buf, 1000, 93, 0);
	say("second connection: aio_write of 1000: %zd", aio_once(fd, buf, 1000, true));
	say_rc("close", close(fd));
}

static void aio_server_run(struct end *e, bool greeted)
{
	uint8_t buf[4000];
	size_t got = 0;
	ssize_t n;
	int fd;

	if (greeted)
		greet(e);
	aio_all(e->fd, buf, sizeof(buf), false);
	say("the request: %s", pattern_ok(buf, sizeof(buf), 91, 0) ? "4000 bytes that match" : "DIFFERENT");
	pattern(buf, 500, 92, 0);
	aio_all(e->fd, buf, 500, true);
	fd = accept_one(e);
	while (got < 1000 && (n = aio_once(fd, buf + got, 1000 - got, false)) > 0)
		got += (size_t)n;
	say("second connection: aio_read: %zu bytes, %s", got,
	    pattern_ok(buf, got, 93, 0) ? "they match" : "DIFFERENT");
	say_rc("close", close(fd));
}

static void aio_client(struct end *e)
{
	aio_client_run(e, false);
}

static void aio_server(struct end *e)
{
	aio_server_run(e, false);
}

static void aio_in_shm_client(struct end *e)
{
	aio_client_run(e, true);
}

static void aio_in_shm_server(struct end *e)
{
	no_aio = true;
	aio_server_run(e, true);
}

/* The request goes once the server asked for SIGIO: the signal comes for bytes that arrive after. */
static void sigio_client(struct end *e)
{
	expect(e, 1);
	send_pattern(e->fd, 94, 0, 2000);
	recv_pattern(e->fd, 95, 0, 500, "the reply");
}

static void sigio_server(struct end *e)
{
	struct timespec ts = { .tv_sec = WAIT_MS / 1000 };
	sigset_t io;

	sigemptyset(&io);
	sigaddset(&io, SIGIO);
	sigprocmask(SIG_BLOCK, &io, NULL);
	say_rc("fcntl(F_SETOWN)", fcntl(e->fd, F_SETOWN, getpid()));
	say_rc("fcntl(F_SETFL, O_ASYNC)", fcntl(e->fd, F_SETFL, O_ASYNC));
	tell(e, 1);
	say("sigtimedwait: %s", sigtimedwait(&io, NULL, &ts) == SIGIO ? "SIGIO" : errno_name(errno));
	recv_pattern(e->fd, 94, 0, 2000, "the request");
	send_pattern(e->fd, 95, 0, 500);
}

const struct diff_case async_cases[] = {
	{ "aio", aio_client, aio_server, .fallbacks = 4 },
	{ "aio_in_shm", aio_in_shm_client, aio_in_shm_server, .conns = 1, .fallbacks = 2 },
	{ "sigio", sigio_client, sigio_server, .conns = 1 },
	{ NULL },
};
