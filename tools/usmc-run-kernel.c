// SPDX-License-Identifier: MIT
/*
 * usmc-run-kernel - the --kernel half of usmc-run, a private helper.
 *
 *     usmc-run-kernel PROGRAM [ARGS...]
 *
 * Loads the BPF program that makes the TCP sockets of this process and
 * all its descendants IPPROTO_SMC (Linux 6.11+), runs PROGRAM, and stays
 * its parent, and the subreaper of whatever it leaves behind, until the
 * last of them has exited.  usmc-run --kernel executes it; it lives apart
 * so that only it, not usmc-run, needs libbpf.
 */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "usmc_kernel.h"

#ifndef IPPROTO_SMC
#define IPPROTO_SMC 256
#endif

/* Like env(1) and the shells: the program could not be run. */
#define EXIT_CANNOT_RUN 127

static int cannot_run(const char *why)
{
	fprintf(stderr, "usmc-run: --kernel: %s\n", why);
	return EXIT_CANNOT_RUN;
}

/* usmc-run is in scope itself: its test socket must come out SMC. */
static bool smc_for_me(void)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int proto = 0;
	socklen_t len = sizeof(proto);
	bool ok;

	if (fd < 0)
		return false;
	ok = getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &proto, &len) == 0 && proto == IPPROTO_SMC;
	close(fd);
	return ok;
}

/*
 * The scope is usmc-run's own process with its descendants: the program
 * is in it from fork on, and so are the orphans it leaves, which the
 * subreaper adopts.  Nothing can create a socket before the entry exists.
 */
static struct usmc_kernel *load_for_me(void)
{
	char why[USMC_KWHY_LEN];
	struct usmc_kernel *k;
	struct usmc_kentry self;

	if (usmc_kernel_check(0, why, sizeof(why)) ||
	    usmc_kentry_pid(getpid(), &self, why, sizeof(why))) {
		cannot_run(why);
		return NULL;
	}
	k = usmc_kernel_load(why, sizeof(why));
	if (!k) {
		cannot_run(why);
		return NULL;
	}
	if (usmc_kernel_add(k, &self, why, sizeof(why))) {
		cannot_run(why);
		usmc_kernel_close(k);
		return NULL;
	}
	if (!smc_for_me()) {
		cannot_run("the BPF program is attached but did not make a test socket SMC");
		usmc_kernel_close(k);
		return NULL;
	}
	return k;
}

/*
 * A signal from the terminal already reached everyone in its process
 * group; only those outside it, and signals sent to usmc-run alone, are
 * passed on.  The targets are usmc-run's children: the program, then
 * what it left behind.
 */
static void forward(int sig, const siginfo_t *si, pid_t child, bool child_alive)
{
	char path[64];
	FILE *children;
	int pid;

	snprintf(path, sizeof(path), "/proc/self/task/%d/children", (int)getpid());
	children = fopen(path, "re");
	if (!children) {
		if (child_alive && !(si->si_code == SI_KERNEL && getpgid(child) == getpgrp()))
			kill(child, sig);
		return;
	}
	while (fscanf(children, "%d", &pid) == 1)
		if (!(si->si_code == SI_KERNEL && getpgid(pid) == getpgrp()))
			kill(pid, sig);
	fclose(children);
}

/* Reaps until no descendant is left; the wait status of the program. */
static int supervise(pid_t child, const sigset_t *sigs)
{
	bool child_alive = true;
	int status = 0, st;
	siginfo_t si;
	pid_t pid;

	for (;;) {
		int sig = sigwaitinfo(sigs, &si);

		if (sig < 0 && errno == EINTR)
			continue;
		if (sig < 0)
			break;
		if (sig != SIGCHLD) {
			forward(sig, &si, child, child_alive);
			continue;
		}
		while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
			if (pid == child) {
				status = st;
				child_alive = false;
			}
		}
		if (pid < 0 && errno == ECHILD)
			break;
	}
	return status;
}

/* Ends like the program did: by its exit status, or by its signal. */
static int exit_like(int status)
{
	struct rlimit no_core = { 0, 0 };
	sigset_t sig;

	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	if (!WIFSIGNALED(status))
		return EXIT_CANNOT_RUN;
	/* The program has dumped core already, if it was to. */
	setrlimit(RLIMIT_CORE, &no_core);
	signal(WTERMSIG(status), SIG_DFL);
	sigemptyset(&sig);
	sigaddset(&sig, WTERMSIG(status));
	sigprocmask(SIG_UNBLOCK, &sig, NULL);
	raise(WTERMSIG(status));
	return 128 + WTERMSIG(status);
}

static int run_kernel(char **argv)
{
	struct usmc_kernel *k = load_for_me();
	sigset_t sigs, old;
	pid_t child;
	int status;

	if (!k)
		return EXIT_CANNOT_RUN;
	/* Daemons that double-fork stay below usmc-run, and in scope. */
	if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0) {
		usmc_kernel_close(k);
		return cannot_run("cannot become a child subreaper");
	}
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGCHLD);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGHUP);
	sigaddset(&sigs, SIGQUIT);
	sigprocmask(SIG_BLOCK, &sigs, &old);
	child = fork();
	if (child == 0) {
		sigprocmask(SIG_SETMASK, &old, NULL);
		execvp(argv[0], argv);
		fprintf(stderr, "usmc-run: cannot run %s: %s\n", argv[0], strerror(errno));
		_exit(EXIT_CANNOT_RUN);
	}
	if (child < 0) {
		usmc_kernel_close(k);
		return cannot_run("cannot fork");
	}
	status = supervise(child, &sigs);
	usmc_kernel_close(k);
	return exit_like(status);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: usmc-run --kernel [--] PROGRAM [ARGS...]\n");
		return 2;
	}
	return run_kernel(argv + 1);
}
