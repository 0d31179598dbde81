// SPDX-License-Identifier: MIT
/*
 * exec with an inherited connection: the server's process, or a child of
 * it, runs a new image (this program again, with --resume) that goes on
 * with the socket it inherited, as inetd's services and re-executing
 * servers do.  A socket that is close-on-exec ends with the exec, with
 * everything written before it delivered; an exec that fails leaves
 * everything as it was.  What was set on the socket before the exec is
 * diff_exec_state.c's; the new images of both start here (resume_step).
 */
#include <fcntl.h>
#include <sched.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "diff.h"
#include "diff_exec.h"
#include "diff_exec_state.h"

void step_argv(struct step_argv *a, struct end *e, const char *step, int fd)
{
	snprintf(a->fd, sizeof(a->fd), "%d", fd);
	snprintf(a->tell, sizeof(a->tell), "%d", e->tell);
	snprintf(a->hear, sizeof(a->hear), "%d", e->hear);
	snprintf(a->log, sizeof(a->log), "%d", diff_log_fd());
	a->argv[0] = "usmc_diff";
	a->argv[1] = "--resume";
	a->argv[2] = (char *)step;
	a->argv[3] = a->fd;
	a->argv[4] = a->tell;
	a->argv[5] = a->hear;
	a->argv[6] = a->log;
	a->argv[7] = NULL;
}

/* Runs this program again as step, on fd, with the other end's pipes and this end's log. */
void exec_step(struct end *e, const char *step, int fd)
{
	struct step_argv a;

	step_argv(&a, e, step, fd);
	execl("/proc/self/exe", a.argv[0], a.argv[1], a.argv[2], a.argv[3], a.argv[4], a.argv[5],
	      a.argv[6], (char *)NULL);
	fatal("exec");
}

/* The same through syscall(2): SYS_execve (raw_at 0) or SYS_execveat (1). */
static void exec_step_raw(struct end *e, const char *step, int fd, bool raw_at)
{
	struct step_argv a;

	step_argv(&a, e, step, fd);
	if (raw_at)
		syscall(SYS_execveat, AT_FDCWD, "/proc/self/exe", a.argv, environ, 0);
	else
		syscall(SYS_execve, "/proc/self/exe", a.argv, environ);
	fatal("exec");
}

pid_t spawn_step(struct end *e, const char *step, int fd, spawn_fn spawn, const char *path)
{
	posix_spawn_file_actions_t fa;
	struct step_argv a;
	pid_t pid;

	step_argv(&a, e, step, 0);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, fd, 0);
	posix_spawn_file_actions_adddup2(&fa, fd, 1);
	/* The service holds the socket on 0 and 1 only: its close(0) is its last. */
	if (fd > 1)
		posix_spawn_file_actions_addclose(&fa, fd);
	if (spawn(&pid, path, &fa, NULL, a.argv, environ))
		fatal("posix_spawn");
	posix_spawn_file_actions_destroy(&fa);
	return pid;
}

void reap(pid_t pid)
{
	int status;

	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
		fatal("the child did not end well");
	say("child exit %d", WEXITSTATUS(status));
}

/*
 * Forks a child with the socket on descriptor 0 and 1 (only 1 if !in) and
 * no other number of it: 0 in the child; in the server, which lets go of
 * its copy at once as inetd does, the child's pid.
 */
static pid_t fork_on_stdio(struct end *e, bool in)
{
	pid_t pid = fork();

	if (pid < 0)
		fatal("fork");
	if (pid == 0) {
		if ((in && dup2(e->fd, 0) != 0) || dup2(e->fd, 1) != 1)
			fatal("dup2");
		close(e->fd);
		return 0;
	}
	close(e->fd);
	e->fd = -1;
	return pid;
}

/* ---- the same process goes on in a new image ---- */

void exec_self_client(struct end *e)
{
	send_pattern(e->fd, 40, 0, 65536);
	expect(e, 1);
	send_pattern(e->fd, 40, 65536, 65536);
	recv_pattern(e->fd, 41, 0, 100000, "the new image's reply");
	recv_to_eof(e->fd, "then");
}

static void exec_self_server(struct end *e)
{
	recv_pattern(e->fd, 40, 0, 65536, "before exec");
	exec_step(e, "exec_self_after", e->fd);
}

static void exec_self_after(struct end *e)
{
	say("a new image");
	tell(e, 1);
	recv_pattern(e->fd, 40, 65536, 65536, "after exec");
	send_pattern(e->fd, 41, 0, 100000);
	say_rc("shutdown(SHUT_WR)", shutdown(e->fd, SHUT_WR));
	recv_to_eof(e->fd, "the rest");
}

static void exec_raw_server(struct end *e)
{
	recv_pattern(e->fd, 40, 0, 65536, "before exec");
	exec_step_raw(e, "exec_self_after", e->fd, false);
}

static void exec_raw_at_server(struct end *e)
{
	recv_pattern(e->fd, 40, 0, 65536, "before exec");
	exec_step_raw(e, "exec_self_after", e->fd, true);
}

/* The same again, through a second exec: an adopted connection handed over once more. */
static void exec_twice_server(struct end *e)
{
	recv_pattern(e->fd, 40, 0, 65536, "before exec");
	exec_step(e, "exec_again", e->fd);
}

static void exec_again(struct end *e)
{
	say("a first new image");
	exec_step(e, "exec_self_after", e->fd);
}

/* ---- inetd: a forked child runs the service on descriptors 0 and 1 ---- */

void service_client(struct end *e)
{
	send_pattern(e->fd, 42, 0, 70000);
	recv_pattern(e->fd, 43, 0, 70000, "the service's reply");
	recv_to_eof(e->fd, "then");
}

/* A forked child runs step on the socket as descriptors 0 and 1. */
static void inetd_step(struct end *e, const char *step)
{
	pid_t pid = fork_on_stdio(e, true);

	if (pid == 0)
		exec_step(e, step, 0);
	reap(pid);
}

static void exec_inetd_server(struct end *e)
{
	inetd_step(e, "service");
}

static void spawn_server(struct end *e)
{
	pid_t pid = spawn_step(e, "service", e->fd, posix_spawn, "/proc/self/exe");

	close(e->fd);
	e->fd = -1;
	reap(pid);
}

/* Reads the request on 0, answers on 1: the socket twice, under two numbers. */
static void service_after(struct end *e)
{
	(void)e;
	recv_pattern(0, 42, 0, 70000, "service request");
	send_pattern(1, 43, 0, 70000);
	say_rc("close(1)", close(1));
	say_rc("close(0)", close(0));
}

/* ---- a chain: exec, then fork, then exec again (git daemon, then upload-pack) ---- */

static void chain_mid_after(struct end *e)
{
	pid_t pid;

	say("the middle image");
	pid = fork();
	if (pid < 0)
		fatal("fork");
	if (pid == 0)
		exec_step(e, "service", 0);
	/* Lets go of its copy on 0 and 1, as a parent of a service does. */
	close(0);
	close(1);
	reap(pid);
}

static void exec_chain_server(struct end *e)
{
	inetd_step(e, "chain_mid");
}

/* ---- a spawned child writes and exits; the parent writes after it ---- */

static void spawn_then_parent_client(struct end *e)
{
	send_pattern(e->fd, 42, 0, 70000);
	recv_pattern(e->fd, 43, 0, 70000, "the child's part");
	/* The child's close is no end of the connection: the parent holds it. */
	expect(e, 1);
	say_mask("once the child ended", poll_now(e->fd, ALL_EVENTS));
	tell(e, 2);
	recv_pattern(e->fd, 52, 0, 50000, "the parent's part, after the child ended");
	recv_to_eof(e->fd, "then");
}

static void spawn_then_parent_server(struct end *e)
{
	reap(spawn_step(e, "service", e->fd, posix_spawn, "/proc/self/exe"));
	tell(e, 1);
	expect(e, 2);
	send_pattern(e->fd, 52, 0, 50000);
	say("the parent wrote 50000 bytes after its child");
}

/* ---- inetd again: the service uses stdio on stdin and stdout ---- */

static void stdio_service_client(struct end *e)
{
	char line[64];

	for (int i = 0; i < 2000; i++) {
		int len = snprintf(line, sizeof(line), "request %d\n", i);

		if (write(e->fd, line, (size_t)len) != len)
			fatal("write");
	}
	say_rc("shutdown(SHUT_WR)", shutdown(e->fd, SHUT_WR));
	recv_to_eof(e->fd, "the service's lines");
}

static void exec_stdio_server(struct end *e)
{
	inetd_step(e, "stdio_service");
}

/* fgets on stdin, printf on stdout (fully buffered on a socket), fclose(stdin), exit flushes. */
static void stdio_service_after(struct end *e)
{
	char line[64];
	int n = 0;

	(void)e;
	while (fgets(line, sizeof(line), stdin))
		printf("%d: %s", n++, line);
	say("service: %d lines, feof(stdin) %d, fileno(stdout) %d", n, feof(stdin) != 0,
	    fileno(stdout));
	/* Descriptor 1 still holds the socket: the rest goes on. */
	say_rc("fclose(stdin)", fclose(stdin));
	printf("after fclose(stdin)\n");
	exit(0);
}

/* ---- children that libc or a shell starts: vfork, sh -c, system(), popen() ---- */

/*
 * vfork, and argv on the socket as descriptors 0 and 1, as Python's
 * subprocess and dash start children; the server reaps it.
 */
static void vfork_exec(struct end *e, char *const argv[])
{
	pid_t pid = vfork();

	if (pid < 0)
		fatal("vfork");
	if (pid == 0) {
		if (dup2(e->fd, 0) != 0 || dup2(e->fd, 1) != 1)
			_exit(126);
		close(e->fd);
		execv(argv[0], argv);
		_exit(127);
	}
	close(e->fd);
	e->fd = -1;
	reap(pid);
}

static void exec_vfork_server(struct end *e)
{
	char stell[16], shear[16], slog[16];
	char *argv[] = { "/proc/self/exe", "--resume", "service", "0", stell, shear, slog, NULL };

	snprintf(stell, sizeof(stell), "%d", e->tell);
	snprintf(shear, sizeof(shear), "%d", e->hear);
	snprintf(slog, sizeof(slog), "%d", diff_log_fd());
	vfork_exec(e, argv);
	/* The parent's own table is untouched by the child's dup2 and close. */
	say_rc("the parent's fd 0 is still not a socket: getsockopt",
	       getsockopt(0, SOL_SOCKET, SO_TYPE, &(int){ 0 }, &(socklen_t){ sizeof(int) }));
}

/*
 * A vfork child (or clone()'s with CLONE_VM) that moves the socket to
 * descriptor 0 and closes it, then exits: the child's descriptors are its
 * own, so the parent goes on with the connection under its own number.
 */
static void vfork_parent_goes_on_client(struct end *e)
{
	send_pattern(e->fd, 57, 0, 70000);
	recv_pattern(e->fd, 58, 0, 70000, "the parent's answer");
	recv_to_eof(e->fd, "then");
}

static int clone_vm_child(void *arg)
{
	int fd = *(int *)arg;

	if (dup2(fd, 0) != 0)
		return 126;
	close(fd);
	return 0;
}

/* vfork, or clone() with CLONE_VM | CLONE_VFORK (a child of our memory that is no thread). */
static void vfork_parent_goes_on(struct end *e, bool by_clone)
{
	static uint64_t stack[8192];
	pid_t pid;

	if (by_clone) {
		pid = clone(clone_vm_child, stack + 8192, CLONE_VM | CLONE_VFORK | SIGCHLD, &e->fd);
	} else if ((pid = vfork()) == 0) {
		_exit(clone_vm_child(&e->fd));
	}
	if (pid < 0)
		fatal(by_clone ? "clone" : "vfork");
	reap(pid);
	recv_pattern(e->fd, 57, 0, 70000, "after the child");
	send_pattern(e->fd, 58, 0, 70000);
	say_rc("the parent's fd 0 is still not a socket: getsockopt",
	       getsockopt(0, SOL_SOCKET, SO_TYPE, &(int){ 0 }, &(socklen_t){ sizeof(int) }));
}

static void vfork_parent_goes_on_server(struct end *e)
{
	vfork_parent_goes_on(e, false);
}

static void clone_vm_parent_goes_on_server(struct end *e)
{
	vfork_parent_goes_on(e, true);
}

/* The client of a cat: what it sends comes back. */
static void echo_client(struct end *e)
{
	send_pattern(e->fd, 53, 0, 90000);
	say_rc("shutdown(SHUT_WR)", shutdown(e->fd, SHUT_WR));
	recv_pattern(e->fd, 53, 0, 90000, "echoed");
	recv_to_eof(e->fd, "then");
}

/* A shell on the socket (vfork, then the shell's own vfork for cat). */
static void exec_vfork_sh_server(struct end *e)
{
	char *argv[] = { "/bin/sh", "-c", "cat; exit 3", NULL };

	vfork_exec(e, argv);
}

/* A forked child with the socket on 0 and 1 runs system("cat"). */
static void exec_system_server(struct end *e)
{
	pid_t pid = fork_on_stdio(e, true);

	if (pid == 0) {
		int rc = system("cat");

		say("system(cat): exited %d", WIFEXITED(rc) ? WEXITSTATUS(rc) : -1);
		exit(0);
	}
	reap(pid);
}

static void popen_client(struct end *e)
{
	recv_pattern(e->fd, 54, 0, 80000, "what popen's cat wrote");
	recv_to_eof(e->fd, "then");
}

/* A forked child with the socket on 1 writes through popen("cat", "w"). */
static void exec_popen_server(struct end *e)
{
	pid_t pid = fork_on_stdio(e, false);

	if (pid == 0) {
		uint8_t buf[80000];
		FILE *p = popen("cat", "w");

		if (!p)
			fatal("popen");
		pattern(buf, sizeof(buf), 54, 0);
		say("fwrite into popen: %zu", fwrite(buf, 1, sizeof(buf), p));
		say("pclose: exited %d", WEXITSTATUS(pclose(p)));
		exit(0);
	}
	reap(pid);
}

/* ---- a close-on-exec connection beside an inherited one ---- */

static void exec_cloexec_client(struct end *e)
{
	int second = connect_to(e);

	tell(e, 1);
	recv_pattern(second, 44, 0, 50000, "close-on-exec socket");
	recv_to_eof(second, "then");
	recv_pattern(e->fd, 45, 0, 80000, "inherited socket");
	recv_to_eof(e->fd, "then");
	close(second);
}

/* The client's second connection, once it says it made it, close-on-exec. */
static int accept_cloexec(struct end *e)
{
	int second;

	expect(e, 1);
	second = accept_one(e);
	if (fcntl(second, F_SETFD, FD_CLOEXEC))
		fatal("fcntl");
	return second;
}

static void exec_cloexec_server(struct end *e)
{
	int second = accept_cloexec(e);

	send_pattern(second, 44, 0, 50000);
	send_pattern(e->fd, 45, 0, 30000);
	exec_step(e, "exec_cloexec_after", e->fd);
}

static void exec_cloexec_after(struct end *e)
{
	send_pattern(e->fd, 45, 30000, 50000);
	say("the inherited socket: 50000 more written");
}

/*
 * A child spawned with one connection, beside a close-on-exec one the
 * parent writes on once the child ended: the child was never a holder of
 * that one, and its end is the parent's close alone.
 */
static void spawn_cloexec_client(struct end *e)
{
	int second = connect_to(e);

	tell(e, 1);
	service_client(e);
	expect(e, 2);
	say_mask("the parent's socket once the child ended", poll_now(second, ALL_EVENTS));
	tell(e, 3);
	recv_pattern(second, 44, 0, 50000, "the parent's socket, after its child ended");
	recv_to_eof(second, "then");
	close(second);
}

static void spawn_cloexec_server(struct end *e)
{
	int second = accept_cloexec(e);

	spawn_server(e);
	tell(e, 2);
	expect(e, 3);
	send_pattern(second, 44, 0, 50000);
	say_rc("close", close(second));
}

/* Only the close-on-exec socket: nothing to hand over. */
static void exec_only_cloexec_client(struct end *e)
{
	recv_pattern(e->fd, 46, 0, 60000, "close-on-exec socket");
	recv_to_eof(e->fd, "then");
}

static void exec_only_cloexec_server(struct end *e)
{
	if (fcntl(e->fd, F_SETFD, FD_CLOEXEC))
		fatal("fcntl");
	send_pattern(e->fd, 46, 0, 60000);
	exec_step(e, "nothing", -1);
}

static void nothing_after(struct end *e)
{
	(void)e;
	say("a new image without the socket");
}

/* ---- an exec that fails ---- */

static void exec_fail_client(struct end *e)
{
	send_pattern(e->fd, 47, 0, 20000);
	recv_pattern(e->fd, 48, 0, 20000, "reply");
	recv_to_eof(e->fd, "then");
}

static void exec_fail_server(struct end *e)
{
	char *argv[] = { "none", NULL };

	recv_pattern(e->fd, 47, 0, 20000, "request");
	say_rc("execv(/nonexistent)", execv("/nonexistent/usmc-diff", argv));
	send_pattern(e->fd, 48, 0, 20000);
}

const struct diff_case exec_cases[] = {
	{ "exec_self", exec_self_client, exec_self_server, .conns = 1 },
	{ "exec_raw", exec_self_client, exec_raw_server, .conns = 1 },
	{ "exec_raw_at", exec_self_client, exec_raw_at_server, .conns = 1 },
	{ "exec_inetd", service_client, exec_inetd_server, .conns = 1 },
	{ "exec_spawn", service_client, spawn_server, .conns = 1 },
	{ "exec_cloexec", exec_cloexec_client, exec_cloexec_server, .conns = 2 },
	{ "exec_only_cloexec", exec_only_cloexec_client, exec_only_cloexec_server, .conns = 1 },
	{ "exec_spawn_cloexec", spawn_cloexec_client, spawn_cloexec_server, .conns = 2 },
	{ "exec_fail", exec_fail_client, exec_fail_server, .conns = 1 },
	{ "exec_vfork", service_client, exec_vfork_server, .conns = 1 },
	{ "exec_vfork_sh", echo_client, exec_vfork_sh_server, .conns = 1 },
	{ "exec_vfork_parent", vfork_parent_goes_on_client, vfork_parent_goes_on_server,
	  .conns = 1 },
	{ "exec_clone_vm_parent", vfork_parent_goes_on_client, clone_vm_parent_goes_on_server,
	  .conns = 1 },
	{ "exec_system", echo_client, exec_system_server, .conns = 1 },
	{ "exec_popen", popen_client, exec_popen_server, .conns = 1 },
	{ "exec_stdio", stdio_service_client, exec_stdio_server, .conns = 1 },
	{ "exec_twice", exec_self_client, exec_twice_server, .conns = 1 },
	{ "exec_chain", service_client, exec_chain_server, .conns = 1 },
	{ "exec_shut_wr", exec_shut_wr_client, exec_shut_wr_server, .conns = 1 },
	{ "exec_spawn_parent", spawn_then_parent_client, spawn_then_parent_server, .conns = 1 },
	{ "exec_shut_rd", exec_read_ends_client, exec_shut_rd_server, .conns = 1 },
	{ "exec_rcvtimeo", exec_read_ends_client, exec_rcvtimeo_server, .conns = 1 },
	{ "exec_linger", exec_linger_client, exec_linger_server, .conns = 1 },
	{ "exec_rcvlowat", exec_rcvlowat_client, exec_rcvlowat_server, .conns = 1 },
	{ "exec_reconnect", exec_reconnect_client, exec_reconnect_server, .raw = true, .conns = 2 },
	{ "exec_child_shut", exec_child_shut_client, exec_child_shut_server, .conns = 1 },
	{ "exec_spawn_shut", exec_child_shut_client, exec_spawn_shut_server, .conns = 1 },
	{ "exec_vfork_shut", exec_child_shut_client, exec_vfork_shut_server, .conns = 1 },
	{ NULL },
};

static const struct {
	const char *name;
	case_fn fn;
} steps[] = {
	{ "exec_self_after", exec_self_after },
	{ "service", service_after },
	{ "stdio_service", stdio_service_after },
	{ "chain_mid", chain_mid_after },
	{ "exec_again", exec_again },
	{ "after_shut_wr", after_shut_wr },
	{ "after_shut_rd", read_after_exec },
	{ "after_rcvtimeo", read_after_exec },
	{ "after_linger", after_linger },
	{ "after_rcvlowat", after_rcvlowat },
	{ "reconnect_after", reconnect_after },
	{ "exec_cloexec_after", exec_cloexec_after },
	{ "nothing", nothing_after },
	{ "read_exit", read_exit },
};

int resume_step(int argc, char **argv)
{
	struct end e = { .fd = -1, .lfd = -1, .server = true };

	if (argc != 7)
		return 2;
	e.fd = atoi(argv[3]);
	e.tell = atoi(argv[4]);
	e.hear = atoi(argv[5]);
	diff_resume_as("srv", atoi(argv[6]));
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		if (strcmp(steps[i].name, argv[2]))
			continue;
		steps[i].fn(&e);
		if (e.fd > 1)
			close(e.fd);
		return 0;
	}
	return 2;
}
