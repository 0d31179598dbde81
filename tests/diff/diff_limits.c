// SPDX-License-Identifier: MIT
/*
 * A program near its descriptor limit.  usmc's own descriptors count
 * toward RLIMIT_NOFILE, and a connection to a prefork server keeps
 * several; the program must still make the descriptors it could make on
 * plain TCP: files, pipes, eventfds.  (nginx as Debian ships it, at the
 * 1,024 that systemd gives, answered a few hundred clients at once with
 * "500 Internal Server Error": its open() met EMFILE.)
 */
#include <fcntl.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "diff.h"

enum { GO = 1, DONE };

#define LIM_CONNS  8
#define LIM_NOFILE 128
/* Descriptors the worker makes beside its connections: what plain TCP leaves it, and more. */
#define LIM_FILES  64
#define LIM_PIPES  8

static void files_client(struct end *e)
{
	int fds[LIM_CONNS];

	expect(e, GO); /* the worker waits on the listener */
	for (int i = 0; i < LIM_CONNS; i++) {
		fds[i] = connect_to(e);
		say("connection %d: reply %s", i + 2,
		    request_reply(fds[i], 97, (uint64_t)i * 100) ? "matches" : "DIFFERS");
	}
	expect(e, DONE);
	for (int i = 0; i < LIM_CONNS; i++)
		close(fds[i]);
}

/* What the worker makes once its connections are open, each kind until it fails. */
static void files_make(void)
{
	int files = 0, pipes = 0, efd;

	for (int fd; files < LIM_FILES && (fd = open("/dev/null", O_RDONLY)) >= 0; files++)
		;
	for (int p[2]; pipes < LIM_PIPES && pipe(p) == 0; pipes++)
		;
	efd = eventfd(0, 0);
	say("worker: %d of %d files, %d of %d pipes, %s eventfd", files, LIM_FILES, pipes,
	    LIM_PIPES, efd >= 0 ? "an" : "no");
}

static void files_server(struct end *e)
{
	int status;
	pid_t pid = fork();

	if (pid < 0)
		fatal("fork");
	if (pid == 0) {
		nofile_set(LIM_NOFILE, LIM_NOFILE);
		prefork_serve(e, 97, LIM_CONNS, false);
		files_make();
		_exit(0);
	}
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status))
		fatal("the worker did not end well");
	tell(e, DONE);
}

const struct diff_case limit_cases[] = {
	{ "files_beside_conns", files_client, files_server, .conns = 1 + LIM_CONNS },
	{ NULL },
};
