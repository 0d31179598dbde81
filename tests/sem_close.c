// SPDX-License-Identifier: MIT
/*
 * Ends of connections: shutdown(SHUT_WR) and the half-closed direction,
 * writing to a peer that closed (EPIPE, SIGPIPE), and the resets TCP
 * sends for a close with unread data and for SO_LINGER {1, 0}.
 */
#include <signal.h>
#include <string.h>

#include "sem.h"

enum { CLOSED = 1, SENT = 2 };

#define UP_LEN 200000
#define DOWN_LEN 50000

static void expect_epipe(int fd)
{
	char c = 0;
	ssize_t n = usmc_send(fd, &c, 1, MSG_NOSIGNAL);

	if (n >= 0 || errno != EPIPE)
		fprintf(stderr, "[%d] send after shutdown: %zd (errno %d)\n", (int)getpid(), n,
			n < 0 ? errno : 0);
	CHECK(n < 0 && errno == EPIPE);
}

static void shutdown_wr_client(struct sem_end *e)
{
	sem_send_pattern(e->fd, 81, 0, UP_LEN);
	CHECK(usmc_shutdown(e->fd, SHUT_WR) == 0);
	/* Our own direction is closed for us... */
	expect_epipe(e->fd);
	/* ...but the other one still carries everything the peer sends. */
	sem_recv_pattern_to_eof(e->fd, 82, DOWN_LEN);
	sem_expect_eof(e->fd);
}

static void shutdown_wr_server(struct sem_end *e)
{
	sem_recv_pattern_to_eof(e->fd, 81, UP_LEN);
	sem_expect_eof(e->fd);
	sem_send_pattern(e->fd, 82, 0, DOWN_LEN);
	CHECK(usmc_shutdown(e->fd, SHUT_WR) == 0);
}

static void close_now(struct sem_end *e)
{
	CHECK(usmc_close(e->fd) == 0);
	e->fd = -1;
	sem_tell(e, CLOSED);
}

#define WRITE_TRIES 10000

/*
 * Writes after the peer closed until one fails.  TCP may take the first
 * ones: the peer answers them with a reset.  Returns the failing errno.
 */
static int write_until_error(int fd, int flags, int *accepted)
{
	static uint8_t buf[1000];

	for (*accepted = 0; *accepted < WRITE_TRIES; (*accepted)++) {
		ssize_t n = usmc_send(fd, buf, sizeof(buf), flags);

		if (n < 0) {
			CHECK(errno != EAGAIN && errno != EINTR);
			return errno;
		}
	}
	fprintf(stderr, "[%d] %d writes after the peer closed, all taken\n", (int)getpid(),
		WRITE_TRIES);
	CHECK(0);
	return 0;
}

static void epipe_client(struct sem_end *e)
{
	int accepted, err;

	sem_expect(e, CLOSED);
	err = write_until_error(e->fd, MSG_NOSIGNAL, &accepted);
	printf("write after peer close: %d taken, then errno %d (%s)\n", accepted, err,
	       strerror(err));
	/* What Linux TCP gives for this sequence. */
	CHECK(err == EPIPE);
	/* And so it stays. */
	expect_epipe(e->fd);
}

static volatile sig_atomic_t sigpipes;

static void count_sigpipe(int sig)
{
	(void)sig;
	sigpipes++;
}

static void sigpipe_client(struct sem_end *e)
{
	struct sigaction sa = { .sa_handler = count_sigpipe };
	int accepted, err;

	sigemptyset(&sa.sa_mask);
	CHECK(sigaction(SIGPIPE, &sa, NULL) == 0);
	sem_expect(e, CLOSED);
	err = write_until_error(e->fd, 0, &accepted);
	printf("write after peer close: %d taken, then errno %d (%s), %d SIGPIPE\n", accepted,
	       err, strerror(err), (int)sigpipes);
	CHECK(err == EPIPE);
	/* One signal for the one failed write, none for those taken. */
	CHECK(sigpipes == 1);
	sa.sa_handler = SIG_DFL;
	CHECK(sigaction(SIGPIPE, &sa, NULL) == 0);
}

/* Writing after our own shutdown(SHUT_WR): EPIPE, and SIGPIPE unless asked not to. */
static void sigpipe_shut_client(struct sem_end *e)
{
	struct sigaction sa = { .sa_handler = count_sigpipe };
	char c = 0;

	sigemptyset(&sa.sa_mask);
	CHECK(sigaction(SIGPIPE, &sa, NULL) == 0);
	CHECK(usmc_shutdown(e->fd, SHUT_WR) == 0);
	expect_epipe(e->fd);
	CHECK(sigpipes == 0);
	CHECK(usmc_write(e->fd, &c, 1) < 0 && errno == EPIPE);
	CHECK(sigpipes == 1);
	sa.sa_handler = SIG_DFL;
	CHECK(sigaction(SIGPIPE, &sa, NULL) == 0);
	sem_tell(e, SENT);
}

static void sigpipe_shut_server(struct sem_end *e)
{
	sem_expect(e, SENT);
	sem_expect_eof(e->fd);
}

/*
 * After a reset: the read reports it once, then the connection reads as
 * ended, and a write finds it closed.
 */
static void expect_reset_read(int fd)
{
	char c;
	ssize_t n = usmc_read(fd, &c, 1);

	if (n >= 0 || errno != ECONNRESET)
		fprintf(stderr, "[%d] read after reset: %zd (errno %d)\n", (int)getpid(), n,
			n < 0 ? errno : 0);
	CHECK(n < 0 && errno == ECONNRESET);
	sem_expect_eof(fd);
	expect_epipe(fd);
}

#define UNREAD_LEN 1000

static void sender_sees_reset(struct sem_end *e)
{
	sem_send_pattern(e->fd, 91, 0, UNREAD_LEN);
	sem_expect(e, CLOSED);
	expect_reset_read(e->fd);
}

static void closer_leaves_unread(struct sem_end *e)
{
	CHECK(sem_wait_for(e->fd, POLLIN) & POLLIN);
	close_now(e);
}

static void expect_reset_after_close(struct sem_end *e)
{
	sem_expect(e, CLOSED);
	expect_reset_read(e->fd);
}

static void linger_reset_close(struct sem_end *e)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };

	CHECK(usmc_setsockopt(e->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)) == 0);
	close_now(e);
}

/* The same, with data that did go both ways and was all read. */
static void linger_after_data_client(struct sem_end *e)
{
	sem_send_pattern(e->fd, 92, 0, UNREAD_LEN);
	sem_recv_pattern(e->fd, 93, 0, UNREAD_LEN);
	expect_reset_after_close(e);
}

static void linger_after_data_server(struct sem_end *e)
{
	sem_recv_pattern(e->fd, 92, 0, UNREAD_LEN);
	sem_send_pattern(e->fd, 93, 0, UNREAD_LEN);
	linger_reset_close(e);
}

/* Writing into a reset connection: the reset is reported once, then EPIPE. */
static void reset_write_client(struct sem_end *e)
{
	int accepted, err;

	sem_expect(e, CLOSED);
	CHECK(sem_wait_for(e->fd, POLLIN) & (POLLERR | POLLHUP));
	err = write_until_error(e->fd, MSG_NOSIGNAL, &accepted);
	if (accepted || err != ECONNRESET)
		fprintf(stderr, "[%d] write after reset: %d taken, then errno %d\n", (int)getpid(),
			accepted, err);
	CHECK(accepted == 0 && err == ECONNRESET);
	expect_epipe(e->fd);
	sem_expect_eof(e->fd);
}

const struct sem_case sem_close_cases[] = {
	{ "shutdown_wr", shutdown_wr_client, shutdown_wr_server, NULL },
	{ "epipe", epipe_client, close_now, NULL },
	{ "sigpipe", sigpipe_client, close_now, NULL },
	{ "sigpipe_shut", sigpipe_shut_client, sigpipe_shut_server, NULL },
	{ "close_unread", sender_sees_reset, closer_leaves_unread, NULL },
	{ "linger0", expect_reset_after_close, linger_reset_close, NULL },
	{ "linger0_after_data", linger_after_data_client, linger_after_data_server, NULL },
	{ "reset_write", reset_write_client, linger_reset_close, NULL },
	/* The same resets, with the client closing. */
	{ "close_unread_by_client", closer_leaves_unread, sender_sees_reset, NULL },
	{ "linger0_by_client", linger_reset_close, expect_reset_after_close, NULL },
	{ NULL, NULL, NULL, NULL },
};
